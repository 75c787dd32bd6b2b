/* camd command line entry point: picks OpenBLAS's kernel for this CPU, then dispatches. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"

/* OpenBLAS (0.3.21, DYNAMIC_ARCH) chooses its kernels from the CPU model when the library
 * loads; on CPUs it does not know (e.g. a virtual "Intel Xeon Processor") it falls back to the
 * SSE3 "Prescott" kernels, about 3x slower. When the environment does not choose a core type,
 * choose one from the instruction sets the CPU reports and re-execute once so the library
 * sees it. CAMD_BLAS_AUTOTUNE=0 turns this off; an existing OPENBLAS_CORETYPE always wins. */
static void choose_blas_core(char **argv) {
  const char *opt = getenv("CAMD_BLAS_AUTOTUNE");
  if (getenv("OPENBLAS_CORETYPE") || (opt && !strcmp(opt, "0"))) return;
  const char *core = NULL;
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    core = "SkylakeX";
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    core = "Haswell";
  }
  if (!core) return;
  setenv("OPENBLAS_CORETYPE", core, 1);
  setenv("CAMD_BLAS_AUTOTUNE", "0", 1); /* never loop */
  execv("/proc/self/exe", argv);
  /* exec failed: carry on with the library's own choice. */
}

int main(int argc, char **argv) {
  choose_blas_core(argv);
  return camd_cli_main(argc, argv);
}
