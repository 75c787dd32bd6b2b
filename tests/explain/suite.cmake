# Explain suite: make_fixture.py (Debian's PyTorch) exports resnet18 and a tiny CNN with seeded
# random weights, writes chelsea as PNG/JPEG and PyTorch references (fixture); check_explain.py
# runs `camd explain` and compares with PIL and PyTorch; test_explain_options uses the fixture.
set(CAMD_EXPLAIN_FIXTURE_DIR ${CMAKE_BINARY_DIR}/tests/explain/fixture)
add_test(NAME explain.fixture
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/make_fixture.py ${CAMD_EXPLAIN_FIXTURE_DIR})
set_tests_properties(explain.fixture PROPERTIES FIXTURES_SETUP camd_explain_fixture
  LABELS "explain;python" TIMEOUT 600 SKIP_RETURN_CODE 77)
foreach(case png jpeg errors config fused)
  add_test(NAME explain.${case}
    COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_explain.py $<TARGET_FILE:camd>
            ${CAMD_EXPLAIN_FIXTURE_DIR} ${case})
  set_tests_properties(explain.${case} PROPERTIES FIXTURES_REQUIRED camd_explain_fixture
    LABELS "explain;python" TIMEOUT 600)
endforeach()
if(TARGET test_explain_options)
  target_compile_definitions(test_explain_options PRIVATE
    CAMD_EXPLAIN_FIXTURE_DIR="${CAMD_EXPLAIN_FIXTURE_DIR}")
  set_tests_properties(unit.test_explain_options PROPERTIES FIXTURES_REQUIRED camd_explain_fixture
    LABELS "unit;explain")
endif()
