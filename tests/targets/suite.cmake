# Segmentation, embedding and per-image targets: the real server against PyTorch Grad-CAM with
# pytorch-grad-cam's SemanticSegmentationTarget / SimilarityToConceptTarget (the script exports
# its own seeded FCN-ResNet50, DeepLabV3-ResNet50 and ResNet-18 embedding).
add_test(NAME targets.service
  COMMAND ${CAMD_PYTHON} ${CMAKE_CURRENT_LIST_DIR}/test_targets_service.py $<TARGET_FILE:camd>
          ${CMAKE_BINARY_DIR}/tests/targets/work)
set_tests_properties(targets.service PROPERTIES LABELS "targets;service;python" TIMEOUT 900
  SKIP_RETURN_CODE 77)
