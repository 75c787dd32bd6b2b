/* camd graph builder: how a model format (ONNX) turns into an engine model.
 *
 * Build a camd_graph in topological order (inputs, constants, nodes), then freeze it into an
 * immutable camd_model with camd_graph_finalize. Every camd_graph_add_node call resolves the op
 * by exact ONNX type and opset, runs its load-time checks and infers output shapes at once, so
 * a loader can read shapes (e.g. for folding Shape sub-graphs) while it builds. Not
 * thread-safe; one owner.
 */
#ifndef CAMD_GRAPH_H
#define CAMD_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/engine.h"
#include "camd/status.h"

typedef enum camd_attr_type {
  CAMD_ATTR_FLOAT = 1,
  CAMD_ATTR_INT = 2,
  CAMD_ATTR_STRING = 3,
  CAMD_ATTR_FLOATS = 6,
  CAMD_ATTR_INTS = 7
} camd_attr_type;

/* One node attribute as given to camd_graph_add_node (copied by the graph). */
typedef struct camd_attr {
  const char *name;
  camd_attr_type type;
  int64_t i;           /* INT */
  float f;             /* FLOAT */
  const char *s;       /* STRING (NUL-terminated) */
  const int64_t *ints; /* INTS */
  const float *floats; /* FLOATS */
  size_t n;            /* element count for INTS / FLOATS */
} camd_attr;

typedef struct camd_graph camd_graph;

camd_graph *camd_graph_new(void);
/* Frees a graph that was not finalized (NULL ignored). */
void camd_graph_free(camd_graph *g);

/* True when the engine implements op_type at this opset; min_opset and max_opset (optional) receive
 * the supported range when the op type is known (else 0,0). */
bool camd_op_supported(const char *op_type, int opset, int *min_opset, int *max_opset);
/* The operator types the engine's op table lists: camd_op_name(0 .. camd_op_count() - 1), in
 * table order (NULL out of range). Static strings. */
int camd_op_count(void);
const char *camd_op_name(int i);

/* Adds a batched float32 graph input. `shape` is per-sample: dims[0] is the batch and is
 * stored as 1 (whatever was given, including 0 or -1 for a symbolic batch). Every other dim
 * must be > 0. Returns the value id (>= 0) or a negative status. */
int camd_graph_add_input(camd_graph *g, const char *name, const camd_shape *shape, camd_error *err);

/* Declares the layout of a 4-D graph input (NCHW or NHWC); the layouts of the other values
 * follow from the graph when it is finalized (camd_model_value_layout). A 4-D input left
 * undeclared is read as NCHW when nothing in the graph is channels-last. */
int camd_graph_set_input_layout(camd_graph *g, int value_id, camd_layout layout, camd_error *err);

/* Adds a constant; the graph takes ownership of `data` (malloc'd, count(shape) elements of
 * dtype) even on failure. Returns the value id or a negative status. */
int camd_graph_add_constant(camd_graph *g, const char *name, camd_dtype dtype,
                            const camd_shape *shape, void *data, camd_error *err);

/* Adds a node. inputs[i] is a value id or -1 for an absent optional input. Output values are
 * created with the given names (an empty name makes an unnamed value). On success output ids
 * are written to out_ids (n_out entries) and 0 is returned; on failure a negative status with
 * a message naming the node. */
int camd_graph_add_node(camd_graph *g, const char *op_type, const char *node_name, int opset,
                        int n_in, const int *inputs, int n_out, const char *const *output_names,
                        const camd_attr *attrs, int n_attrs, int *out_ids, camd_error *err);

/* Makes `name` another name of value id (e.g. the output of an elided Identity). */
int camd_graph_add_alias(camd_graph *g, const char *name, int value_id, camd_error *err);
/* Marks a value as a graph output (order of calls = output order). */
int camd_graph_mark_output(camd_graph *g, int value_id, camd_error *err);

/* Lookup and read-only access while building. */
int camd_graph_find(const camd_graph *g, const char *name);
int camd_graph_num_values(const camd_graph *g);
/* Shape/dtype of a value; *data receives constant data or NULL for activations. */
int camd_graph_value(const camd_graph *g, int id, camd_shape *shape, camd_dtype *dtype,
                     const void **data, bool *batched);

/* Freezes the graph into a model (refcount 1, caller owns it). Runs the load-time passes
 * (src/engine/passes.c: BatchNorm folding) and the batch check. Nodes no output needs stay in
 * the graph (a run executes only the nodes its plan needs). Consumes `g` in every case. */
int camd_graph_finalize(camd_graph *g, const char *source_path, camd_model **out, camd_error *err);

#endif
