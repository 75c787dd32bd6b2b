/* Helpers for unit tests that build small graphs by hand: constant data the graph takes over,
 * and one-output nodes. */
#ifndef CAMD_TEST_HELPER_GRAPH_H
#define CAMD_TEST_HELPER_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "camd/graph.h"

/* malloc'd copies of n values, for camd_graph_add_constant (which takes ownership). */
float *camd_test_copy_floats(const float *src, size_t n);
int64_t *camd_test_copy_ints(const int64_t *src, size_t n);
/* Adds an opset-13 node `op` named `name` with one output of the same name; returns the output's
 * value id, or -1 with a failed CHECK naming the node. */
int camd_test_node(camd_graph *g, const char *op, const char *name, int n_in, const int *in,
                   const camd_attr *attrs, int n_attrs);

#endif
