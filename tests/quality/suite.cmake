# Quality metrics on request (options quality / metrics): the real server against a PyTorch
# reference written from the papers' definitions (test_quality_service.py exports its own small
# seeded CNN). quality.py (the localisation benchmark) and tests/bench/sanity_randomization.py
# are benchmarks, not tests.
add_test(NAME quality.service
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_quality_service.py $<TARGET_FILE:camd>
          ${CMAKE_BINARY_DIR}/tests/quality/work)
set_tests_properties(quality.service PROPERTIES LABELS "quality;service;python" TIMEOUT 600
  SKIP_RETURN_CODE 77)
