/* camd command line entry point: picks OpenBLAS's kernels for this CPU, then dispatches. */
#include "camd/core.h"
#include "camd/engine.h"
#include "cli/cli.h"

int main(int argc, char **argv) {
  /* See camd_blas_autotune_exec: without it OpenBLAS runs SSE3 kernels on CPUs it does not
   * know (3-6x slower); an OPENBLAS_CORETYPE set by the environment always wins. */
  camd_blas_autotune_exec(argv);
  camd_alloc_policy_loading(); /* the server switches to camd_alloc_policy_serving once loaded */
  return camd_cli_main(argc, argv);
}
