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

struct camd__pool {
  int threads;
  helper *helpers;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_uint gen;     /* bumped once per loop */
  atomic_int sleepers; /* helpers waiting on cv */
  atomic_bool stop;    /* destroy: helpers exit */
  atomic_int finished; /* helpers done with the current loop */
  atomic_llong next;   /* next task index */
  int64_t n;           /* tasks of the current loop */
  camd__pool_fn fn;
  void *arg;
};

static void run_tasks(camd__pool *p, int thread) {
  for (;;) {
    int64_t i = atomic_fetch_add(&p->next, 1);
    if (i >= p->n) return;
    p->fn(p->arg, i, thread);
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
    run_tasks(p, h->index);
    atomic_fetch_add(&p->finished, 1);
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
  p->fn = fn;
  p->arg = arg;
  p->n = n;
  atomic_store(&p->next, 0);
  atomic_store(&p->finished, 0);
  atomic_fetch_add(&p->gen, 1); /* publishes fn/arg/n (sequentially consistent) */
  if (atomic_load(&p->sleepers) > 0) {
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
  }
  run_tasks(p, 0);
  /* Helpers finish their last task; yield now and then in case one was descheduled (a busy
   * machine) rather than burn the core it needs. */
  for (unsigned spins = 0; atomic_load(&p->finished) < p->threads - 1; spins++) {
    if (spins % 256 == 255)
      sched_yield();
    else
      CPU_RELAX();
  }
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
