# Source lint (label "lint", hermetic): clang-format --dry-run -Werror over every C file, cppcheck
# over src/
# (clang-tidy is not run: clang 14's analyser reports the false positives .clang-tidy lists on
# every va_list use and error path, and the compile database carries GCC-only flags.)
add_test(NAME lint.format COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/format.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(lint.format PROPERTIES LABELS lint TIMEOUT 300 SKIP_RETURN_CODE 77)
# The README's error table lists every code of the status table with its HTTP status.
add_test(NAME lint.readme_codes
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/readme_codes.py ${CMAKE_SOURCE_DIR})
set_tests_properties(lint.readme_codes PROPERTIES LABELS lint TIMEOUT 60)
# cppcheck (warning, portability, performance) over src/ reports nothing.
add_test(NAME lint.cppcheck COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/cppcheck.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(lint.cppcheck PROPERTIES LABELS lint TIMEOUT 600 SKIP_RETURN_CODE 77)
