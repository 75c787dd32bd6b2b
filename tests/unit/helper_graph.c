/* Helpers for unit tests that build small graphs by hand (see helper_graph.h). */
#include "helper_graph.h"

#include <stdlib.h>
#include <string.h>

#include "testlib.h"

float *camd_test_copy_floats(const float *src, size_t n) {
  float *d = malloc(n * sizeof(float));
  memcpy(d, src, n * sizeof(float));
  return d;
}

int64_t *camd_test_copy_ints(const int64_t *src, size_t n) {
  int64_t *d = malloc(n * sizeof(int64_t));
  memcpy(d, src, n * sizeof(int64_t));
  return d;
}

int camd_test_node(camd_graph *g, const char *op, const char *name, int n_in, const int *in,
                   const camd_attr *attrs, int n_attrs) {
  camd_error err = {0};
  int out = -1;
  const char *names[1] = {name};
  int rc = camd_graph_add_node(g, op, name, 13, n_in, in, 1, names, attrs, n_attrs, &out, &err);
  CHECK_MSG(rc == 0, "%s: %s", name, err.message);
  return out;
}
