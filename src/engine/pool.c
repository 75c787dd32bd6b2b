/* Engine thread pool (see pool.h): helpers that spin, then sleep, between data-parallel loops. */
#include "engine/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Spins (pause instructions) a helper makes before it sleeps: roughly 50-100 µs. */
#define POOL_SPINS 4000

typedef struct helper {
  struct camd__pool *pool;
  int index;
  pthread_t thread;
} helper;

/* Tasks are claimed from one 64-bit word, `work` = (loop generation << 32) | next task index,
 * by compare-and-swap, so a claim can only succeed for the loop it was meant for. The caller
 * waits for the tasks to be *done* (`done` == n), never for every helper to check in: a helper
 * that is asleep or descheduled when a loop starts (a busy machine) leaves its share to the
 * threads that are running, instead of stalling the loop until the scheduler runs it. When the
 * loop is over the caller closes `work` (index CLOSED) before it writes the next loop's fn/arg/n,
 * so a late helper can neither claim a task of a finished loop nor read a half-written one. */
#define CLOSED 0xffffffffull

struct camd__pool {
  int threads;
  helper *helpers;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_uint gen;     /* bumped once per loop (wakes the helpers) */
  atomic_int sleepers; /* helpers waiting on cv */
  atomic_bool stop;    /* destroy: helpers exit */
  atomic_ullong work;  /* (generation << 32) | next task index, see above */
  atomic_llong done;   /* tasks of the current loop finished */
  atomic_llong n;      /* tasks of the current loop (read by late helpers: atomic) */
  camd__pool_fn fn;
  void *arg;
};

/* Runs tasks of loop generation `g` until none is left (or the loop is not g's any more). */
static void run_tasks(camd__pool *p, unsigned g, int thread) {
  for (;;) {
    unsigned long long w = atomic_load(&p->work);
    if ((unsigned)(w >> 32) != g) return;
    const unsigned long long i = w & CLOSED;
    if (i == CLOSED || (long long)i >= atomic_load_explicit(&p->n, memory_order_relaxed)) return;
    if (!atomic_compare_exchange_weak(&p->work, &w, w + 1)) continue;
    p->fn(p->arg, (int64_t)i, thread);
    atomic_fetch_add(&p->done, 1);
  }
}

static void *helper_main(void *argp) {
  helper *h = argp;
  camd__pool *p = h->pool;
  unsigned seen = 0;
  for (;;) {
    unsigned g = atomic_load(&p->gen);
    for (int s = 0; s < POOL_SPINS && g == seen && !atomic_load(&p->stop); s++) {
      CPU_RELAX();
      g = atomic_load(&p->gen);
    }
    if (g == seen && !atomic_load(&p->stop)) {
      pthread_mutex_lock(&p->mu);
      atomic_fetch_add(&p->sleepers, 1);
      while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop)) {
        pthread_cond_wait(&p->cv, &p->mu);
      }
      atomic_fetch_sub(&p->sleepers, 1);
      pthread_mutex_unlock(&p->mu);
    }
    if (atomic_load(&p->stop)) return NULL;
    seen = g;
    run_tasks(p, g, h->index);
  }
}

int camd__pool_create(int threads, camd__pool **out, camd_error *err) {
  *out = NULL;
  if (threads < 1 || threads > CAMD_POOL_MAX_THREADS) {
    return camd_error_set(err, CAMD_E_INVALID, "thread count %d is outside 1..%d", threads,
                          CAMD_POOL_MAX_THREADS);
  }
  camd__pool *p = calloc(1, sizeof(*p));
  if (!p) return camd_error_set(err, CAMD_E_NOMEM, "out of memory creating a thread pool");
  p->threads = 1;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  if (threads > 1) {
    p->helpers = calloc((size_t)threads - 1, sizeof(helper));
    if (!p->helpers) {
      camd__pool_destroy(p);
      return camd_error_set(err, CAMD_E_NOMEM, "out of memory creating a thread pool");
    }
  }
  for (int i = 1; i < threads; i++) {
    helper *h = &p->helpers[i - 1];
    h->pool = p;
    h->index = i;
    if (pthread_create(&h->thread, NULL, helper_main, h) != 0) {
      camd__pool_destroy(p);
      return camd_error_set(err, CAMD_E_NOMEM, "cannot start engine thread %d of %d", i, threads);
    }
    p->threads++;
  }
  *out = p;
  return 0;
}

void camd__pool_destroy(camd__pool *p) {
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->stop, true);
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  for (int i = 1; i < p->threads; i++) pthread_join(p->helpers[i - 1].thread, NULL);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  free(p->helpers);
  free(p);
}

int camd__pool_threads(const camd__pool *p) {
  return p ? p->threads : 1;
}

void camd__pool_for(camd__pool *p, int64_t n, camd__pool_fn fn, void *arg) {
  if (n <= 0) return;
  if (!p || p->threads == 1 || n == 1) {
    for (int64_t i = 0; i < n; i++) fn(arg, i, 0);
    return;
  }
  if (n >= (int64_t)CLOSED) { /* beyond the claim word's index: one thread (never in practice) */
    for (int64_t i = 0; i < n; i++) fn(arg, i, 0);
    return;
  }
  p->fn = fn;
  p->arg = arg;
  atomic_store_explicit(&p->n, n, memory_order_relaxed);
  atomic_store(&p->done, 0);
  const unsigned g = atomic_load(&p->gen) + 1;
  atomic_store(&p->work, (unsigned long long)g << 32); /* publishes fn/arg/n: task 0 next */
  atomic_store(&p->gen, g);
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  run_tasks(p, g, 0);
  /* Tasks a helper claimed may still run; yield now and then in case it was descheduled (a
   * busy machine) rather than burn the core it needs. */
  for (unsigned spins = 0; atomic_load(&p->done) < n; spins++) {
    if (spins % 256 == 255)
      sched_yield();
    else
      CPU_RELAX();
  }
  atomic_store(&p->work, ((unsigned long long)g << 32) | CLOSED);
}

typedef struct range_job {
  camd__pool_range_fn fn;
  void *arg;
  int64_t n, chunk;
} range_job;

static void range_task(void *arg, int64_t i, int thread) {
  (void)thread;
  const range_job *j = arg;
  const int64_t b = i * j->chunk, e = b + j->chunk < j->n ? b + j->chunk : j->n;
  j->fn(j->arg, b, e);
}

void camd__pool_range(camd__pool *p, int64_t n, int64_t chunk, camd__pool_range_fn fn, void *arg) {
  if (n <= 0) return;
  if (chunk < 1) chunk = 1;
  range_job j = {fn, arg, n, chunk};
  camd__pool_for(p, (n + chunk - 1) / chunk, range_task, &j);
}
