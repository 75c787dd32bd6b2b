# Fuzz targets as regression tests: each tests/fuzz/fuzz_<t>.c is linked with driver.c (a main()
# that replays tests/fuzz/corpus/<t>/ plus a fixed set of deterministic mutations of it), so the
# ordinary and the sanitizer builds (make asan-test) exercise every parser on every run.
# libFuzzer builds of the same targets: tests/fuzz/build.sh (see tests/fuzz/README.md).
set(CAMD_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})
set(CAMD_FUZZ_MUTATIONS 2000 CACHE STRING "deterministic mutations per corpus file in the fuzz.* tests")
foreach(t onnx image options model_config body base64 dicom)
  add_executable(fuzz_${t}_regress ${CAMD_FUZZ_DIR}/fuzz_${t}.c ${CAMD_FUZZ_DIR}/driver.c)
  target_link_libraries(fuzz_${t}_regress PRIVATE camd_lib)
  target_include_directories(fuzz_${t}_regress PRIVATE ${CMAKE_SOURCE_DIR}/src)
  target_compile_definitions(fuzz_${t}_regress PRIVATE CAMD_FUZZ_DATA_DIR="${CAMD_FUZZ_DIR}/data")
  add_test(NAME fuzz.${t}
    COMMAND fuzz_${t}_regress -n ${CAMD_FUZZ_MUTATIONS} ${CAMD_FUZZ_DIR}/corpus/${t})
  set_tests_properties(fuzz.${t} PROPERTIES LABELS "unit;fuzz" TIMEOUT 600)
  if(t STREQUAL "dicom")
    # HTJ2K frames are decoded in a forked child (OpenJPEG's HT decoder asserts on bad
    # code-blocks): tens of ms per mutated HTJ2K input under ASan on a loaded machine
    set_tests_properties(fuzz.dicom PROPERTIES TIMEOUT 1200)
  endif()
  # What the libFuzzer campaign (campaign.sh) found beyond the seeds, replayed as it is.
  add_test(NAME fuzz.${t}.campaign
    COMMAND fuzz_${t}_regress -n 0 ${CAMD_FUZZ_DIR}/corpus-campaign/${t})
  set_tests_properties(fuzz.${t}.campaign PROPERTIES LABELS "unit;fuzz" TIMEOUT 600
                       ENVIRONMENT "CAMD_FUZZ_MUTATIONS=0")
endforeach()
