/* The one GEMM entry point of camd (cblas_sgemm today), engine thread defaults, BLAS tuning. */
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "camd/engine.h"
#include "engine/blas.h"
#include "engine/cpu.h"

void camd_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    /* C = beta * C (BLAS semantics for an empty inner dimension). */
    for (int i = 0; i < m; i++) {
      for (int j = 0; j < n; j++)
        c[(size_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(size_t)i * ldc + j];
    }
    return;
  }
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
              trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

static atomic_int default_threads; /* 0: not set */

void camd_blas_set_threads(int n) {
  if (n < 1) n = 1;
  if (n > 64) n = 64;
  atomic_store(&default_threads, n);
}

int camd_blas_get_threads(void) {
  return camd_engine_default_threads();
}

int camd_engine_default_threads(void) {
  int n = atomic_load(&default_threads);
  if (n > 0) return n;
  const char *env = getenv("CAMD_THREADS");
  long v = env ? strtol(env, NULL, 10) : 0;
  if (v < 1) v = sysconf(_SC_NPROCESSORS_ONLN);
  if (v < 1) v = 1;
  return v > 64 ? 64 : (int)v;
}

static void blas_one_thread(void) {
  openblas_set_num_threads(1);
}

void camd__blas_single_thread(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, blas_one_thread);
}

void camd_blas_autotune_exec(char **argv) {
  const char *opt = getenv("CAMD_BLAS_AUTOTUNE");
  if (getenv("OPENBLAS_CORETYPE") || (opt && !strcmp(opt, "0"))) return;
  /* The same level camd's own kernels use (CAMD_CPU=avx2|generic lowers both). */
  const char *core = NULL;
  switch (camd__cpu()) {
    case CAMD_CPU_AVX512:
      core = "SkylakeX";
      break;
    case CAMD_CPU_AVX2:
      core = "Haswell";
      break;
    default:
      core = getenv("CAMD_CPU") ? "Prescott" : NULL; /* SSE3 kernels when asked for generic */
      break;
  }
  if (!core) return;
  setenv("OPENBLAS_CORETYPE", core, 1);
  /* While re-executing anyway: large allocations (model file, weights, session blocks) on
   * transparent huge pages where the kernel offers them (madvise mode), so loading 100 MB of
   * weights takes a few hundred page faults instead of ~75 000 (startup time). */
  if (!getenv("GLIBC_TUNABLES")) setenv("GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", 1);
  setenv("CAMD_BLAS_AUTOTUNE", "0", 1); /* never loop */
  execv("/proc/self/exe", argv);
  /* exec failed: carry on with the library's own choice. */
}
