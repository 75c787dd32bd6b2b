# ONNX loader suite: generate the tiny test models once (fixture), then the C tests load them.
set(CAMD_ONNX_MODELS_DIR ${CMAKE_BINARY_DIR}/onnx_models)
add_test(NAME onnx.make_models
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/make_models.py ${CAMD_ONNX_MODELS_DIR})
set_tests_properties(onnx.make_models PROPERTIES FIXTURES_SETUP camd_onnx_models LABELS onnx
  TIMEOUT 120)
foreach(t test_onnx_load test_onnx_robust)
  if(TARGET ${t})
    target_compile_definitions(${t} PRIVATE CAMD_ONNX_TEST_DIR="${CAMD_ONNX_MODELS_DIR}")
    set_tests_properties(unit.${t} PROPERTIES FIXTURES_REQUIRED camd_onnx_models
      LABELS "unit;onnx")
  endif()
endforeach()
