# Deployment lint (labels "lint;network"): Kubernetes manifests validated offline against the API
# schemas (npm kubernetes-models) and the Dockerfiles linted (npm dockerfile-utils). The npm
# packages go into the build tree (the first run needs the npm registry: label "network").
# SKIPPED when node/npm are missing or the npm install fails.
foreach(part manifests dockerfile)
  add_test(NAME lint.k8s_${part} COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/run.sh ${part})
  set_tests_properties(lint.k8s_${part} PROPERTIES LABELS "lint;network" TIMEOUT 900
    SKIP_RETURN_CODE 77 RESOURCE_LOCK camd_k8s_npm
    ENVIRONMENT "CAMD_NPM_DIR=${CMAKE_BINARY_DIR}/npm/k8s")
endforeach()
