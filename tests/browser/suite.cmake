# Browser test (labels "browser;network"): headless Chromium drives the demo page; SKIPPED without
# node, playwright-core (npm ci into ${CMAKE_BINARY_DIR}/npm/browser: the first run needs the npm
# registry) or /usr/bin/chromium. Screenshot artefact: ${CMAKE_BINARY_DIR}/browser-artifacts/demo.png
add_test(NAME browser.demo
  COMMAND ${CAMD_PYTHON} ${CMAKE_SOURCE_DIR}/tests/browser/run_browser.py $<TARGET_FILE:camd>
          ${CMAKE_BINARY_DIR}/service-fixtures ${CMAKE_BINARY_DIR}/browser-artifacts)
set_tests_properties(browser.demo PROPERTIES LABELS "browser;network" SKIP_RETURN_CODE 77
  TIMEOUT 300 FIXTURES_REQUIRED camd_service ENVIRONMENT "CAMD_NPM_DIR=${CMAKE_BINARY_DIR}/npm/browser")
