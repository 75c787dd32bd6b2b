/* Engine thread pool (see pool.h): helpers that spin, then sleep, between data-parallel loops. */
#include "engine/pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

/* Task assignment. Thread t owns the contiguous share [begin(t), end(t)) of a loop's n tasks
 * (t * n / T .. (t + 1) * n / T): task i runs on the same thread in every loop of the same n,
 * and the k-th part of one op's output is made by the thread that makes (and then reads) the
 * k-th part of the next one's (output-channel slices, elementwise pieces, batch items are all
 * in memory order). Measured on the 2-vCPU VM: a line written by the other core is read at
 * ~30 GB/s against ~70-90 GB/s from the own L2, and a cache line round trip costs ~500 ns, so
 * "whoever claims first" (the earlier pool) cost the small memory-bound operators more than
 * the second core gained. A thread that runs out of its own share takes the remaining tasks
 * of the others (a helper that is asleep or descheduled never stalls a loop).
 *
 * Claims. Each share has its own cache line and word `work` = (loop generation << 32) | next
 * index, claimed by compare-and-swap, so a claim can only succeed for the loop it was meant
 * for. A thread adds the number of tasks it ran to `done` once, after its last one; the caller
 * waits for `done` == n, never for every helper to check in. When the loop is over the caller
 * closes every share (index CLOSED) before it writes the next loop's fn/arg/n/ends, so a late
 * helper can neither claim a task of a finished loop nor act on half-written arguments (all
 * these accesses are sequentially consistent: a helper that read a new end can no longer win
 * the compare-and-swap of the old loop). */
#define CLOSED 0xffffffffull

typedef struct share {
  _Alignas(64) atomic_ullong work; /* (generation << 32) | next task index of this share */
  atomic_llong end;                /* one past this share's last task */
} share;

struct camd__pool {
  int threads;
  helper *helpers;
  share *shares; /* [threads], cache-line aligned */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  _Alignas(64) atomic_uint gen;   /* bumped once per loop (wakes the helpers) */
  atomic_int sleepers;            /* helpers waiting on cv */
  atomic_bool stop;               /* destroy: helpers exit */
  _Alignas(64) atomic_llong done; /* tasks of the current loop finished */
  _Alignas(64) camd__pool_fn fn;
  void *arg;
};

/* Runs the tasks of share v of loop g; returns how many, or -1 when the loop is over. */
static int64_t run_share(camd__pool *p, unsigned g, int v, int thread) {
  share *s = &p->shares[v];
  int64_t ran = 0;
  for (;;) {
    unsigned long long w = atomic_load(&s->work);
    if ((unsigned)(w >> 32) != g) return ran ? ran : -1;
    const unsigned long long i = w & CLOSED;
    if (i == CLOSED) return ran ? ran : -1;
    if ((long long)i >= atomic_load(&s->end)) return ran;
    if (!atomic_compare_exchange_weak(&s->work, &w, w + 1)) continue;
    p->fn(p->arg, (int64_t)i, thread);
    ran++;
  }
}

/* Runs tasks of loop generation `g`: the own share first, then what is left of the others'. */
static void run_tasks(camd__pool *p, unsigned g, int thread) {
  int64_t ran = 0;
  for (int k = 0; k < p->threads; k++) {
    const int64_t r = run_share(p, g, (thread + k) % p->threads, thread);
    if (r < 0) break;
    ran += r;
  }
  if (ran) atomic_fetch_add(&p->done, ran);
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
  camd__pool *p = aligned_alloc(64, (sizeof(*p) + 63) / 64 * 64);
  share *shares = aligned_alloc(64, (size_t)threads * sizeof(share));
  if (!p || !shares) {
    free(p), free(shares);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory creating a thread pool");
  }
  memset(p, 0, sizeof(*p));
  p->threads = 1;
  p->shares = shares;
  for (int t = 0; t < threads; t++) {
    atomic_init(&shares[t].work, CLOSED);
    atomic_init(&shares[t].end, 0);
  }
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
  free(p->shares);
  free(p);
}

int camd__pool_threads(const camd__pool *p) {
  return p ? p->threads : 1;
}

/* First task of thread t's share of n tasks (t = T: n). Fewer tasks than threads: one each,
 * from the caller on, so the caller always has work of its own. */
static int64_t share_begin(int64_t n, int threads, int t) {
  if (n < threads) return t < n ? t : n;
  return n * t / threads;
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
  atomic_store(&p->done, 0);
  const unsigned g = atomic_load(&p->gen) + 1;
  for (int t = 0; t < p->threads; t++) { /* end first: a share opens with its work word */
    atomic_store(&p->shares[t].end, share_begin(n, p->threads, t + 1));
    atomic_store(&p->shares[t].work,
                 ((unsigned long long)g << 32) | (unsigned long long)share_begin(n, p->threads, t));
  }
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
  for (int t = 0; t < p->threads; t++)
    atomic_store(&p->shares[t].work, ((unsigned long long)g << 32) | CLOSED);
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
