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

# Exporter matrix (issue 15): ResNet-18 and MobileNetV2 with seeded weights, each exported in every
# shape exporters write (NHWC input, channels-last maps, tf2onnx / Keras graphs, free sizes, TF
# "SAME" padding, whole-map pooling heads, MatMul heads, ':0' names, QDQ weights), explained by
# every CAM method through the server and the CLI and compared with the plain export. One camd
# process per model (both in parallel under ctest -j2); label "slow": not in the sanitizer run.
foreach(model resnet18 mobilenet_v2)
  set(fix ${CMAKE_BINARY_DIR}/tests/exporters/matrix_${model})
  add_test(NAME exporters.matrix_fixture.${model}
    COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/make_matrix.py ${fix} ${model})
  set_tests_properties(exporters.matrix_fixture.${model} PROPERTIES
    FIXTURES_SETUP camd_exporters_matrix_${model} LABELS "exporters;python;slow" TIMEOUT 900)
  add_test(NAME exporters.matrix.${model}
    COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/check_matrix.py $<TARGET_FILE:camd> ${fix})
  set_tests_properties(exporters.matrix.${model} PROPERTIES
    FIXTURES_REQUIRED camd_exporters_matrix_${model} LABELS "exporters;python;slow" TIMEOUT 1200)
endforeach()
