/* Engine-private thread pool: one per session, used by the kernels for data-parallel loops.
 *
 * A pool of T threads is the calling thread plus T - 1 helpers it owns. camd__pool_for(p, n, fn,
 * arg) runs fn(arg, i, t) for every i in [0, n) and returns when all have finished; t in [0, T)
 * names the thread running i, so fn can use a private scratch slice. Thread t preferably runs
 * the contiguous share [t * n / T, (t + 1) * n / T) (so the thread that wrote one part of a tensor
 * reads it in the next loop); a thread that is done with its share takes what is left of the
 * others', so which thread runs which i is not guaranteed and results must not depend on t: a
 * kernel splits its output into disjoint parts and never splits one reduction across tasks. That
 * keeps every result independent of the thread count and of scheduling (tests/unit/test_ops_conv.c
 * checks it bit for bit). Helpers spin briefly after a loop (back-to-back kernels of one forward
 * pay no wake-up), then sleep on a condition variable. A pool is used by one thread at a time (its
 * session's owner).
 */
#ifndef CAMD_ENGINE_POOL_H
#define CAMD_ENGINE_POOL_H

#include <stdint.h>

#include "camd/status.h"

typedef struct camd__pool camd__pool;
typedef void (*camd__pool_fn)(void *arg, int64_t i, int thread);

/* A pool of `threads` (1..CAMD_POOL_MAX_THREADS; 1 starts no helper). */
#define CAMD_POOL_MAX_THREADS 64
int camd__pool_create(int threads, camd__pool **out, camd_error *err);
/* Stops and joins the helpers; NULL is ignored. */
void camd__pool_destroy(camd__pool *p);
/* Thread count (1 for NULL). */
int camd__pool_threads(const camd__pool *p);
/* Runs fn(arg, i, thread) for i in [0, n) on the pool (inline when p is NULL, has one thread or
 * n == 1). */
void camd__pool_for(camd__pool *p, int64_t n, camd__pool_fn fn, void *arg);

/* Runs fn(arg, begin, end) over [0, n) cut into pieces of `chunk` elements (the last may be
 * shorter): elementwise kernels. The pieces depend on n and chunk only. */
typedef void (*camd__pool_range_fn)(void *arg, int64_t begin, int64_t end);
#define CAMD_POOL_CHUNK 16384 /* elements per piece for memory-bound elementwise loops */
void camd__pool_range(camd__pool *p, int64_t n, int64_t chunk, camd__pool_range_fn fn, void *arg);

#endif
