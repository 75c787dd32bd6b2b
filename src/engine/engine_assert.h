/* Engine-private invariant checks: CAMD_ASSERT for camd's own invariants (never for input).
 *
 * CAMD_ASSERT(cond) prints "camd: internal error: FILE:LINE: cond" and aborts when cond is false.
 * It states facts the engine's own code guarantees (a plan fits the session block, a value has a
 * buffer when it is read); data from a file or a request is checked with an error status instead.
 * The checks are on unless the build defines CAMD_NO_ASSERTS (CMake option CAMD_ASSERTS=OFF);
 * they sit outside the kernels' inner loops, so they cost nothing measurable.
 */
#ifndef CAMD_ENGINE_ASSERT_H
#define CAMD_ENGINE_ASSERT_H

void camd__assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));

#ifndef CAMD_NO_ASSERTS
#define CAMD_ASSERT(c) ((c) ? (void)0 : camd__assert_fail(#c, __FILE__, __LINE__))
#else
#define CAMD_ASSERT(c) ((void)sizeof(c))
#endif

#endif
