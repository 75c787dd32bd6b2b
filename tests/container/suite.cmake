# Container tests (label "container", the host tier: rootful podman, images in the host's podman
# storage). container.image builds the Dockerfile with podman (base image made locally with
# debootstrap), runs it, explains an image over HTTP, stops it (exit 0, < 2 s: a timed check).
# podman's settings come from CONTAINERS_CONF in the build tree; /etc/containers is not written.
# SKIPPED (77) without podman or root. Building compiles camd inside the image: minutes.
add_test(NAME container.image COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/run.sh)
set_tests_properties(container.image PROPERTIES LABELS container TIMEOUT 5400
  SKIP_RETURN_CODE 77 RUN_SERIAL TRUE
  ENVIRONMENT "CONTAINERS_CONF=${CMAKE_BINARY_DIR}/containers/containers.conf")
# docker/compose.yaml: three replicas behind nginx, with the image container.image built.
add_test(NAME container.compose COMMAND bash ${CMAKE_CURRENT_LIST_DIR}/compose.sh)
set_tests_properties(container.compose PROPERTIES LABELS container TIMEOUT 1200
  SKIP_RETURN_CODE 77 RUN_SERIAL TRUE DEPENDS container.image
  ENVIRONMENT "CONTAINERS_CONF=${CMAKE_BINARY_DIR}/containers/containers.conf")
