/* CPU feature level for the engine's run-time kernel dispatch, with the CAMD_CPU override. */
#include "engine/cpu.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static camd__cpu_level level;

static void detect(void) {
  camd__cpu_level l = CAMD_CPU_GENERIC;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) l = CAMD_CPU_AVX2;
  if (l == CAMD_CPU_AVX2 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq"))
    l = CAMD_CPU_AVX512;
#endif
  const char *env = getenv("CAMD_CPU");
  if (env && !strcmp(env, "generic")) l = CAMD_CPU_GENERIC;
  if (env && !strcmp(env, "avx2") && l > CAMD_CPU_AVX2) l = CAMD_CPU_AVX2;
  level = l;
}

camd__cpu_level camd__cpu(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, detect);
  return level;
}
