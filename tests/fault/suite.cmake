# Allocation-failure sweeps (label "fault"; hermetic: loopback only). They need a build
# configured with -DCAMD_FAULT_INJECT=ON (the Makefile's asan-test does that, so LeakSanitizer
# checks every failure path); other builds do not register them.
if(CAMD_FAULT_INJECT)
  add_executable(test_fault_explain ${CMAKE_CURRENT_LIST_DIR}/test_fault_explain.c)
  target_link_libraries(test_fault_explain PRIVATE camd_lib PkgConfig::JANSSON)
  add_test(NAME fault.explain
    COMMAND test_fault_explain ${CMAKE_BINARY_DIR}/service-fixtures/tiny.onnx
            ${CMAKE_BINARY_DIR}/service-fixtures/small.png)
  add_test(NAME fault.http
    COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/fault_http.py $<TARGET_FILE:camd>
            ${CMAKE_BINARY_DIR}/service-fixtures)
  set_tests_properties(fault.explain fault.http PROPERTIES FIXTURES_REQUIRED camd_service
    LABELS "fault;service" SKIP_RETURN_CODE 77 TIMEOUT 900 RUN_SERIAL TRUE)
endif()
