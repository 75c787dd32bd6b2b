# Default model suite: camd's accuracy and logits on the held-out Fashion-MNIST scene set.
# models/heldout.py (Debian's PyTorch) writes the set and reference logits into the build tree
# (fixture), then test_default_model runs camd on it.
set(CAMD_MODELS_HELDOUT_DIR ${CMAKE_BINARY_DIR}/tests/models/heldout)

add_test(NAME models.heldout_data
  COMMAND ${CAMD_PYTHON} ${CMAKE_SOURCE_DIR}/models/heldout.py
          --out ${CAMD_MODELS_HELDOUT_DIR} --n 500
          --config ${CMAKE_SOURCE_DIR}/models/fashion_cam.json)
set_tests_properties(models.heldout_data PROPERTIES
  FIXTURES_SETUP camd_models_heldout LABELS "models;python" TIMEOUT 600)

add_executable(test_default_model ${CMAKE_CURRENT_LIST_DIR}/test_default_model.c)
target_link_libraries(test_default_model PRIVATE camd_lib)
target_compile_options(test_default_model PRIVATE -Werror)

add_test(NAME models.default_model
  COMMAND test_default_model
          ${CMAKE_SOURCE_DIR}/models/fashion_cam.onnx
          ${CMAKE_SOURCE_DIR}/models/fashion_cam.json
          ${CAMD_MODELS_HELDOUT_DIR})
set_tests_properties(models.default_model PROPERTIES
  FIXTURES_REQUIRED camd_models_heldout LABELS models TIMEOUT 600)

# The scene generator itself (determinism, boxes vs masks, split independence).
add_test(NAME models.scenes
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_scenes.py)
set_tests_properties(models.scenes PROPERTIES LABELS "models;python" TIMEOUT 120)
