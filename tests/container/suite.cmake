# Container test (label "container"): builds the Dockerfile with podman (base image made
# locally with debootstrap), runs it, explains an image over HTTP, stops it (exit 0, < 2 s).
# SKIPPED (77) without podman or root. Building compiles camd inside the image: minutes.
add_test(NAME container.image COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run.sh)
set_tests_properties(container.image PROPERTIES LABELS container TIMEOUT 5400
  SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
# docker/compose.yaml: three replicas behind nginx, with the image container.image built.
add_test(NAME container.compose COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/compose.sh)
set_tests_properties(container.compose PROPERTIES LABELS container TIMEOUT 1200
  SKIP_RETURN_CODE 77 RUN_SERIAL TRUE DEPENDS container.image)
