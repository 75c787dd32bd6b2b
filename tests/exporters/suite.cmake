# Exporter suite: one seeded torchvision model exported in the shapes exporters write (softmax-,
# log-softmax- and sigmoid-ended graphs, views after the softmax, ...) must explain like the plain
# export (metamorphic checks against it and against PyTorch's logits; label "exporters").
set(CAMD_EXPORTERS_FIX ${CMAKE_BINARY_DIR}/tests/exporters/fixture)
add_test(NAME exporters.fixture
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/make_variants.py ${CAMD_EXPORTERS_FIX})
set_tests_properties(exporters.fixture PROPERTIES FIXTURES_SETUP camd_exporters
  LABELS "exporters;python" TIMEOUT 600)
add_test(NAME exporters.variants
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_variants.py $<TARGET_FILE:camd>
          ${CAMD_EXPORTERS_FIX})
set_tests_properties(exporters.variants PROPERTIES FIXTURES_REQUIRED camd_exporters
  LABELS "exporters;python" TIMEOUT 600)
