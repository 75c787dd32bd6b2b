/* Engine-private CPU feature level for run-time kernel dispatch (cpu.c). */
#ifndef CAMD_ENGINE_CPU_H
#define CAMD_ENGINE_CPU_H

typedef enum camd__cpu_level {
  CAMD_CPU_GENERIC = 0, /* baseline x86-64 (SSE2) or any other architecture */
  CAMD_CPU_AVX2 = 1,    /* AVX2 + FMA */
  CAMD_CPU_AVX512 = 2   /* AVX-512 F/VL/BW/DQ */
} camd__cpu_level;

/* The best level this CPU supports, lowered by the environment's CAMD_CPU ("avx2" or
 * "generic"; a level the CPU lacks is never chosen). Computed once; thread-safe. */
camd__cpu_level camd__cpu(void);

#endif
