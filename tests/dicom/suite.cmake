# DICOM suite (label "dicom"): make_cases.py writes the decoding cases and their references
# (pydicom + numpy, GDCM's gdcmconv for codecs pydicom lacks) into the build tree; test_dicom
# checks camd against them and writes Secondary Captures; check_sc.py validates those with
# dciodvfy (dicom3tools) and reads them back with pydicom.
set(CAMD_DICOM_CASES_DIR ${CMAKE_BINARY_DIR}/tests/dicom/cases)
add_test(NAME dicom.make_cases
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/make_cases.py ${CAMD_DICOM_CASES_DIR})
set_tests_properties(dicom.make_cases PROPERTIES FIXTURES_SETUP camd_dicom_cases
  LABELS "dicom;python" TIMEOUT 600)
add_executable(test_dicom ${CMAKE_CURRENT_LIST_DIR}/test_dicom.c)
target_link_libraries(test_dicom PRIVATE camd_test_helpers)
target_compile_definitions(test_dicom PRIVATE CAMD_DICOM_CASES_DIR="${CAMD_DICOM_CASES_DIR}")
add_test(NAME dicom.test_dicom COMMAND test_dicom)
set_tests_properties(dicom.test_dicom PROPERTIES FIXTURES_REQUIRED camd_dicom_cases
  FIXTURES_SETUP camd_dicom_sc LABELS "unit;dicom" TIMEOUT 600)
add_test(NAME dicom.check_sc
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_sc.py ${CAMD_DICOM_CASES_DIR})
set_tests_properties(dicom.check_sc PROPERTIES FIXTURES_REQUIRED "camd_dicom_cases;camd_dicom_sc"
  DEPENDS dicom.test_dicom LABELS "dicom;python" TIMEOUT 300)

# DICOM through the service (labels "dicom;service"): make_chexnet.py exports a CheXNet-style
# DenseNet-121 (14 findings + Sigmoid, seeded) and a 1-channel CNN with Debian's torch and writes
# the PyTorch references (probabilities, Grad-CAM) for pydicom's CT_small / MR_small;
# test_dicom_service.py runs the real `camd serve` against them and validates the Secondary
# Captures with dciodvfy + pydicom (check_sc.py).
set(CAMD_DICOM_SVC_DIR ${CMAKE_BINARY_DIR}/tests/dicom/service)
add_test(NAME dicom.service_fixtures
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/make_chexnet.py ${CAMD_DICOM_SVC_DIR})
set_tests_properties(dicom.service_fixtures PROPERTIES FIXTURES_SETUP camd_dicom_service
  LABELS "dicom;service;python" TIMEOUT 900)
add_test(NAME dicom.service
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_dicom_service.py $<TARGET_FILE:camd>
          ${CAMD_DICOM_SVC_DIR})
set_tests_properties(dicom.service PROPERTIES FIXTURES_REQUIRED camd_dicom_service
  LABELS "dicom;service" TIMEOUT 600 RUN_SERIAL TRUE)
