# CAM suite: gen_cam_refs.py (Debian's PyTorch) exports models and writes reference maps for
# every CAM method (fixture, cached per model by script hash), then test_cam compares camd's
# maps with them, one ctest per model (cam.<model>, label "cam").
set(CAMD_CAM_MODELS resnet50 densenet121 mobilenet_v2 vgg16 efficientnet_b0
  CACHE STRING "Models the CAM suite covers")
set(CAMD_CAM_REFS_DIR ${CMAKE_BINARY_DIR}/cam_refs CACHE PATH
  "Where the CAM reference maps are generated (shared by several build trees)")

add_executable(test_cam ${CMAKE_CURRENT_LIST_DIR}/test_cam.c)
target_link_libraries(test_cam PRIVATE camd_lib)

string(REPLACE ";" "," _camd_cam_list "${CAMD_CAM_MODELS}")
add_test(NAME cam.generate
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/gen_cam_refs.py --out ${CAMD_CAM_REFS_DIR}
          --models ${_camd_cam_list})
# (A full regeneration took 17 min on the shared 2-core machine, 8 of them resnet50's Poly-CAM
# reference: 128 float64 resnet50 forwards of masked inputs.)
set_tests_properties(cam.generate PROPERTIES
  FIXTURES_SETUP camd_cam_refs LABELS "cam;python" TIMEOUT 2400)

foreach(model ${CAMD_CAM_MODELS})
  add_test(NAME cam.${model} COMMAND test_cam ${CAMD_CAM_REFS_DIR} ${model})
  set_tests_properties(cam.${model} PROPERTIES
    FIXTURES_REQUIRED camd_cam_refs LABELS cam TIMEOUT 600)
endforeach()
