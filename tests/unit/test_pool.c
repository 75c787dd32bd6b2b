/* Engine thread pool (src/engine/pool.h): every task of every loop runs exactly once, at any
 * thread and task count, over many back-to-back loops (the claim/close protocol), and a thread
 * that is held up inside its own share never stalls the loop (the others take its tasks). */
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "engine/pool.h"
#include "testlib.h"

#define MAX_TASKS 1000

typedef struct count_job {
  atomic_int runs[MAX_TASKS];
  atomic_int bad_thread;
  int threads;
} count_job;

static void count_task(void *arg, int64_t i, int thread) {
  count_job *j = arg;
  if (thread < 0 || thread >= j->threads) atomic_fetch_add(&j->bad_thread, 1);
  atomic_fetch_add(&j->runs[i], 1);
}

/* n tasks, `loops` times in a row: each index exactly `loops` times, thread ids in range. */
static void test_every_task_once(void) {
  static const int64_t ns[] = {0, 1, 2, 3, 5, 17, 64, MAX_TASKS};
  static count_job j;
  for (int threads = 1; threads <= 4; threads++) {
    camd__pool *p = NULL;
    camd_error err = {0};
    CHECK(camd__pool_create(threads, &p, &err) == 0);
    if (!p) return;
    CHECK_EQ_INT(camd__pool_threads(p), threads);
    for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++) {
      const int64_t n = ns[k];
      const int loops = n <= 64 ? 2000 : 50;
      for (int64_t i = 0; i < MAX_TASKS; i++) atomic_store(&j.runs[i], 0);
      atomic_store(&j.bad_thread, 0);
      j.threads = threads;
      for (int l = 0; l < loops; l++) camd__pool_for(p, n, count_task, &j);
      int wrong = 0;
      for (int64_t i = 0; i < MAX_TASKS; i++)
        wrong += atomic_load(&j.runs[i]) != (i < n ? loops : 0);
      CHECK_MSG(wrong == 0, "threads %d, n %lld: %d tasks not run exactly %d times", threads,
                (long long)n, wrong, loops);
      CHECK_EQ_INT(atomic_load(&j.bad_thread), 0);
    }
    camd__pool_destroy(p);
  }
}

/* Two threads, 4 tasks: task 2 (the start of the helper's share) waits until task 3 (the rest
 * of that share) has run. Whichever thread runs task 2, the other one must take task 3 from
 * that share, or the loop never ends (a bounded wait: the test fails instead of hanging). */
typedef struct steal_job {
  atomic_int done3, timed_out;
} steal_job;

static void steal_task(void *arg, int64_t i, int thread) {
  (void)thread;
  steal_job *j = arg;
  if (i == 3) atomic_store(&j->done3, 1);
  if (i != 2) return;
  const struct timespec pause = {0, 100000};
  for (int k = 0; k < 20000 && !atomic_load(&j->done3); k++) nanosleep(&pause, NULL);
  if (!atomic_load(&j->done3)) atomic_store(&j->timed_out, 1);
}

static void test_held_share_is_taken(void) {
  camd__pool *p = NULL;
  camd_error err = {0};
  CHECK(camd__pool_create(2, &p, &err) == 0);
  if (!p) return;
  for (int l = 0; l < 200; l++) {
    steal_job j;
    atomic_init(&j.done3, 0);
    atomic_init(&j.timed_out, 0);
    camd__pool_for(p, 4, steal_task, &j);
    CHECK_MSG(!atomic_load(&j.timed_out), "loop %d: task 3 waited for the thread held in task 2",
              l);
    if (atomic_load(&j.timed_out)) break;
  }
  camd__pool_destroy(p);
}

typedef struct range_job {
  atomic_int covered[MAX_TASKS];
} range_job;

static void range_fn(void *arg, int64_t b, int64_t e) {
  range_job *j = arg;
  for (int64_t i = b; i < e; i++) atomic_fetch_add(&j->covered[i], 1);
}

/* camd__pool_range: pieces cover [0, n) exactly once, the last one shorter. */
static void test_range(void) {
  camd__pool *p = NULL;
  camd_error err = {0};
  CHECK(camd__pool_create(3, &p, &err) == 0);
  if (!p) return;
  static range_job j;
  for (int64_t i = 0; i < MAX_TASKS; i++) atomic_store(&j.covered[i], 0);
  camd__pool_range(p, 997, 64, range_fn, &j);
  int wrong = 0;
  for (int64_t i = 0; i < MAX_TASKS; i++) wrong += atomic_load(&j.covered[i]) != (i < 997);
  CHECK_EQ_INT(wrong, 0);
  camd__pool_destroy(p);
}

static void test_bad_thread_count(void) {
  camd__pool *p = NULL;
  camd_error err = {0};
  CHECK(camd__pool_create(0, &p, &err) != 0 && p == NULL);
  CHECK(camd__pool_create(CAMD_POOL_MAX_THREADS + 1, &p, &err) != 0 && p == NULL);
}

CAMD_TEST_MAIN(CAMD_TEST(test_every_task_once), CAMD_TEST(test_held_share_is_taken),
               CAMD_TEST(test_range), CAMD_TEST(test_bad_thread_count))
