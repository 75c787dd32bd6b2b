# Image suite: make_cases.py writes edge-case images and independent references (PIL,
# ImageMagick, torchvision, torch, matplotlib, skimage) into the build tree (fixture); the unit
# test test_image reads them; check_encoded.py then decodes test_image's PNGs with PIL.
set(CAMD_IMAGE_CASES_DIR ${CMAKE_BINARY_DIR}/tests/image/cases)
add_test(NAME image.make_cases
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/make_cases.py ${CAMD_IMAGE_CASES_DIR})
set_tests_properties(image.make_cases PROPERTIES FIXTURES_SETUP camd_image_cases
  LABELS "image;python" TIMEOUT 300)
if(TARGET test_image)
  target_compile_definitions(test_image PRIVATE CAMD_IMAGE_CASES_DIR="${CAMD_IMAGE_CASES_DIR}")
  set_tests_properties(unit.test_image PROPERTIES FIXTURES_REQUIRED camd_image_cases
    FIXTURES_SETUP camd_image_encoded LABELS "unit;image")
  add_test(NAME image.check_encoded
    COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_encoded.py ${CAMD_IMAGE_CASES_DIR})
  set_tests_properties(image.check_encoded PROPERTIES
    FIXTURES_REQUIRED "camd_image_cases;camd_image_encoded" DEPENDS unit.test_image
    LABELS "image;python" TIMEOUT 60)
endif()
