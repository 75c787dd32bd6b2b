# Service tests: the real camd binary on 127.0.0.1 driven over HTTP (label "service").
# Fixtures (two tiny seeded CNNs exported with Debian's torch, images, a config) are made once.
set(CAMD_SERVICE_FIX ${CMAKE_BINARY_DIR}/service-fixtures)
set(CAMD_SERVICE_DIR ${CMAKE_SOURCE_DIR}/tests/service)
add_test(NAME service.fixtures
  COMMAND ${CAMD_PYTHON} ${CAMD_SERVICE_DIR}/make_fixtures.py ${CAMD_SERVICE_FIX})
set_tests_properties(service.fixtures PROPERTIES FIXTURES_SETUP camd_service LABELS service
  TIMEOUT 300 SKIP_RETURN_CODE 77)

add_test(NAME service.api
  COMMAND ${CAMD_PYTHON} ${CAMD_SERVICE_DIR}/test_api.py $<TARGET_FILE:camd> ${CAMD_SERVICE_FIX})
set_tests_properties(service.api PROPERTIES TIMEOUT 300)

foreach(mode concurrency batching overload sigterm rss)
  add_test(NAME service.${mode}
    COMMAND ${CAMD_PYTHON} ${CAMD_SERVICE_DIR}/test_load.py $<TARGET_FILE:camd> ${CAMD_SERVICE_FIX}
            ${mode})
  set_tests_properties(service.${mode} PROPERTIES TIMEOUT 600)
endforeach()

add_test(NAME service.default_config
  COMMAND ${CAMD_PYTHON} ${CAMD_SERVICE_DIR}/test_default_config.py $<TARGET_FILE:camd>
          ${CAMD_SERVICE_FIX} ${CMAKE_SOURCE_DIR})
set_tests_properties(service.default_config PROPERTIES TIMEOUT 300)

# TLS (certificates made by the test with openssl; curl, openssl s_client, Python ssl), mutual
# TLS and the SIGHUP certificate reload.
add_test(NAME service.tls
  COMMAND ${CAMD_PYTHON} ${CAMD_SERVICE_DIR}/test_tls.py $<TARGET_FILE:camd> ${CAMD_SERVICE_FIX})
set_tests_properties(service.tls PROPERTIES TIMEOUT 300)

# API key scopes (401 vs 403) and key rotation on SIGHUP.
add_test(NAME service.keys
  COMMAND ${CAMD_PYTHON} ${CAMD_SERVICE_DIR}/test_keys.py $<TARGET_FILE:camd> ${CAMD_SERVICE_FIX})
set_tests_properties(service.keys PROPERTIES TIMEOUT 300)

# A client that closes its connection while its job waits in the queue: the job is dropped.
add_test(NAME service.disconnect
  COMMAND ${CAMD_PYTHON} ${CAMD_SERVICE_DIR}/test_disconnect.py $<TARGET_FILE:camd>
          ${CAMD_SERVICE_FIX})
set_tests_properties(service.disconnect PROPERTIES TIMEOUT 600)

# What libmicrohttpd answers by itself (431, 414, 400, 505) before camd sees a request.
add_test(NAME service.mhd_errors
  COMMAND ${CAMD_PYTHON} ${CAMD_SERVICE_DIR}/test_mhd_errors.py $<TARGET_FILE:camd>
          ${CAMD_SERVICE_FIX})
set_tests_properties(service.mhd_errors PROPERTIES TIMEOUT 120)

# The workers' warm-up (config key warmup): logged per worker, not counted, same answers.
add_test(NAME service.warmup
  COMMAND ${CAMD_PYTHON} ${CAMD_SERVICE_DIR}/test_warmup.py $<TARGET_FILE:camd>
          ${CAMD_SERVICE_FIX})
set_tests_properties(service.warmup PROPERTIES TIMEOUT 300)

set(CAMD_SERVICE_TESTS service.warmup service.api service.tls service.keys service.disconnect service.mhd_errors service.default_config service.concurrency service.batching service.overload
  service.sigterm service.rss)
set_tests_properties(${CAMD_SERVICE_TESTS} PROPERTIES FIXTURES_REQUIRED camd_service
  LABELS service SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
# Assertions that depend on timing (a batch forms within the window, a burst overflows the
# queue, requests finish before SIGTERM, six requests queue behind one slow job before it ends):
# label "timing", run by `make check` after the hermetic tier and never under the sanitizers. service.concurrency compares answers under
# load with the answer alone (invariance, not correctness: that is the oracle/cam/explain
# suites' job); service.rss bounds memory growth.
set_tests_properties(service.batching service.overload service.sigterm service.disconnect
  PROPERTIES LABELS "service;timing")
# RSS growth is meaningless under ASan (quarantine, shadow memory, allocator caches); leaks are
# LeakSanitizer's job there.
if(CAMD_SANITIZE)
  set_tests_properties(service.rss PROPERTIES DISABLED TRUE)
endif()
