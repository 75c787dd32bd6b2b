# Oracle suite: PyTorch exports torchvision models + reference data (oracle.generate), then
# test_oracle compares camd with them, one ctest per model (oracle.<model>, label "oracle").
# Generation is cached per model (script hash in meta.json); the data lives in
# ${CMAKE_BINARY_DIR}/oracle. Limit the models with -DCAMD_ORACLE_MODELS="resnet18;vgg16".
# The transformer-sized models (CAMD_ORACLE_SLOW_MODELS) also carry the label "slow": the
# sanitizer tier leaves them out.
set(CAMD_ORACLE_ALL_MODELS
  resnet18 resnet50 vgg16 mobilenet_v2 mobilenet_v3_large densenet121 efficientnet_b0
  squeezenet1_1 shufflenet_v2_x1_0 googlenet inception_v3 regnet_y_400mf convnext_tiny vit_b_16
  swin_t efficientnet_v2_s maxvit_t)
# efficientnet_v2_s: its residual branches are scaled by 0.5 (gen_oracle.py calm_residuals);
# without that the randomised model is ill-conditioned on its own (PyTorch float32 vs float64:
# 2.3e-2 on the logits) and the generator refuses it. swin_t (~35 s) and maxvit_t (~20 s) are
# not "slow".
set(CAMD_ORACLE_SLOW_MODELS convnext_tiny vit_b_16)
set(CAMD_ORACLE_MODELS "${CAMD_ORACLE_ALL_MODELS}" CACHE STRING "Models the oracle suite covers")
set(CAMD_ORACLE_DIR ${CMAKE_BINARY_DIR}/oracle CACHE PATH
  "Where the oracle data is generated (shared by several build trees)")

add_executable(test_oracle ${CMAKE_CURRENT_LIST_DIR}/test_oracle.c)
target_link_libraries(test_oracle PRIVATE camd_lib)

string(REPLACE ";" "," _camd_oracle_list "${CAMD_ORACLE_MODELS}")
add_test(NAME oracle.generate
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/gen_oracle.py --out ${CAMD_ORACLE_DIR}
          --models ${_camd_oracle_list})
set_tests_properties(oracle.generate PROPERTIES
  FIXTURES_SETUP oracle LABELS oracle TIMEOUT 1800 SKIP_RETURN_CODE 77)

foreach(model ${CAMD_ORACLE_MODELS})
  add_test(NAME oracle.${model} COMMAND test_oracle ${CAMD_ORACLE_DIR} ${model})
  set(_camd_oracle_labels oracle)
  set(_camd_oracle_timeout 900)
  if(model IN_LIST CAMD_ORACLE_SLOW_MODELS)
    list(APPEND _camd_oracle_labels slow)
    set(_camd_oracle_timeout 1800)
  endif()
  set_tests_properties(oracle.${model} PROPERTIES
    FIXTURES_REQUIRED oracle LABELS "${_camd_oracle_labels}" TIMEOUT ${_camd_oracle_timeout})
endforeach()
