/* Engine-private graph and model layout, shared by the builder, the planner and the session. */
#ifndef CAMD_ENGINE_GRAPH_INTERNAL_H
#define CAMD_ENGINE_GRAPH_INTERNAL_H

#include <stdatomic.h>

#include "camd/core.h"
#include "camd/engine.h"
#include "camd/graph.h"
#include "engine/op.h"

typedef struct camd_value {
  const char *name; /* arena-owned; "" for unnamed values */
  camd_shape shape; /* per-sample shape: dims[0] == 1 for batched values */
  camd_dtype dtype;
  bool batched;
  bool is_input;
  bool is_output;
  void *data;   /* constant data (malloc'd, owned by the graph) or NULL for activations */
  int producer; /* node index or -1 */
  /* camd_layout of a 4-D activation: declared for inputs, inferred at finalize for the rest */
  unsigned char layout;
  /* inside an attention block (layout.c): queries, keys, values, attention weights and their
   * products, laid out per window / head rather than as a map; never a CAM layer */
  bool attention;
} camd_value;

typedef struct camd_alias {
  const char *name;
  int id;
} camd_alias;

struct camd_graph {
  camd_arena arena; /* names, attributes, node arrays, op params */
  camd_value *values;
  int n_values, cap_values;
  camd_node *nodes;
  int n_nodes, cap_nodes;
  camd_alias *aliases;
  int n_aliases, cap_aliases;
  int *inputs;
  int n_inputs, cap_inputs;
  int *outputs;
  int n_outputs, cap_outputs;
  bool batch_mixed; /* some op moves or folds the batch axis */
};

struct camd_model {
  atomic_int refcount;
  camd_graph *graph; /* frozen; owned */
  char *source_path; /* malloc'd, may be NULL */
  int max_batch;
  int suggested_layer;
  size_t param_count;
};

/* Engine limit on the batch of one run. */
#define CAMD_ENGINE_MAX_BATCH 256
/* Limit on inputs/outputs per node (bit masks are unsigned). */
#define CAMD_NODE_MAX_IO 32
_Static_assert(CAMD_NODE_MAX_IO <= sizeof(unsigned) * 8, "node input masks are unsigned bit sets");

/* Sets every value's layout from the declared input layouts (layout.c; run at finalize,
 * after the load-time rewrites). */
void camd__graph_infer_layouts(camd_graph *g);

/* Infers the output shapes of node n given the current shapes of its inputs in `shapes`
 * (indexed by value id); writes them into shapes[out ids]. */
int camd__graph_infer_node(const camd_graph *g, const camd_node *n, camd_shape *shapes,
                           camd_error *err);

#endif
