# Deployment lint (label "lint"): Kubernetes manifests validated offline against the API
# schemas (npm kubernetes-models) and the Dockerfiles linted (npm dockerfile-utils).
# SKIPPED when node/npm are missing or the npm install fails.
foreach(part manifests dockerfile)
  add_test(NAME lint.k8s_${part} COMMAND sh ${CMAKE_CURRENT_LIST_DIR}/run.sh ${part})
  set_tests_properties(lint.k8s_${part} PROPERTIES LABELS lint TIMEOUT 900
    SKIP_RETURN_CODE 77 RESOURCE_LOCK camd_k8s_npm)
endforeach()
