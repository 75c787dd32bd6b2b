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

# Hostile models (overflowing and huge declared shapes, nesting, cycles, size limits) against
# the real binary: refused with a message, in bounded time and memory.
add_test(NAME onnx.make_hostile
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/make_hostile.py ${CMAKE_BINARY_DIR}/onnx_hostile)
set_tests_properties(onnx.make_hostile PROPERTIES FIXTURES_SETUP camd_onnx_hostile LABELS onnx
  TIMEOUT 300 SKIP_RETURN_CODE 77)
add_test(NAME onnx.hostile
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_hostile.py $<TARGET_FILE:camd>
          ${CMAKE_BINARY_DIR}/onnx_hostile)
set_tests_properties(onnx.hostile PROPERTIES FIXTURES_REQUIRED camd_onnx_hostile LABELS onnx
  TIMEOUT 600 SKIP_RETURN_CODE 77)
