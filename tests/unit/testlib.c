/* Unit-test runner: runs named cases, counts failed CHECKs per case. */
#include "testlib.h"

int camd_test_failures = 0;

int camd_test_run(const camd_test_case *cases, int n, int argc, char **argv) {
  int passed = 0, failed = 0;
  for (int i = 0; i < n; i++) {
    if (argc > 1 && strcmp(argv[1], cases[i].name) != 0) continue;
    int before = camd_test_failures;
    cases[i].fn();
    if (camd_test_failures == before) {
      passed++;
      printf("ok   %s\n", cases[i].name);
    } else {
      failed++;
      printf("FAIL %s\n", cases[i].name);
    }
    fflush(stdout);
  }
  printf("%d passed, %d failed\n", passed, failed);
  if (passed + failed == 0) {
    fprintf(stderr, "no test named '%s'\n", argc > 1 ? argv[1] : "");
    return 1;
  }
  return failed ? 1 : 0;
}
