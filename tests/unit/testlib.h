/* Minimal unit-test helpers: flat CHECK macros that count failures, and a test list runner. */
#ifndef CAMD_TESTLIB_H
#define CAMD_TESTLIB_H

#include <math.h>
#include <stdio.h>
#include <string.h>

extern int camd_test_failures;

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      camd_test_failures++;                                                    \
    }                                                                          \
  } while (0)

#define CHECK_MSG(cond, ...)                                                   \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
      camd_test_failures++;                                                    \
    }                                                                          \
  } while (0)

#define CHECK_EQ_INT(a, b)                                                                      \
  do {                                                                                          \
    long long ca_ = (long long)(a), cb_ = (long long)(b);                                       \
    if (ca_ != cb_) {                                                                           \
      fprintf(stderr, "%s:%d: CHECK failed: %s == %s (%lld vs %lld)\n", __FILE__, __LINE__, #a, \
              #b, ca_, cb_);                                                                    \
      camd_test_failures++;                                                                     \
    }                                                                                           \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                                      \
  do {                                                                                             \
    double ca_ = (double)(a), cb_ = (double)(b);                                                   \
    if (!(fabs(ca_ - cb_) <= (tol))) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: |%s - %s| <= %g (%.9g vs %.9g)\n", __FILE__, __LINE__, \
              #a, #b, (double)(tol), ca_, cb_);                                                    \
      camd_test_failures++;                                                                        \
    }                                                                                              \
  } while (0)

typedef struct camd_test_case {
  const char *name;
  void (*fn)(void);
} camd_test_case;

/* Runs every case (or only the one named by argv[1]); prints "N passed, M failed" and returns
 * the process exit code. */
int camd_test_run(const camd_test_case *cases, int n, int argc, char **argv);

#define CAMD_TEST_MAIN(...)                                                              \
  int main(int argc, char **argv) {                                                      \
    static const camd_test_case cases_[] = {__VA_ARGS__};                                \
    return camd_test_run(cases_, (int)(sizeof(cases_) / sizeof(cases_[0])), argc, argv); \
  }
#define CAMD_TEST(fn) \
  { #fn, fn }

#endif
