/* Failure path of CAMD_ASSERT (engine_assert.h): report the broken invariant, then abort. */
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine_assert.h"

void camd__assert_fail(const char *cond, const char *file, int line) {
  fprintf(stderr, "camd: internal error: %s:%d: assertion '%s' failed\n", file, line, cond);
  fflush(stderr);
  abort();
}
