/* Value layouts: which axis of a 4-D activation holds the channels (NCHW or NHWC).
 *
 * ONNX fixes NCHW only for the ops that read spatial structure (Conv, the pools,
 * BatchNormalization, ...). Exporters from channels-last frameworks (tf2onnx, Keras, TFLite
 * converters) keep activations as [N, H, W, C] between Transpose nodes, so a value's layout is
 * a property of the graph, decided once when the model is frozen:
 *   - a graph input has the layout the loader declared (camd_graph_set_input_layout);
 *   - the outputs of ops that interpret their input as NCHW are NCHW;
 *   - a Transpose permutes its input's layout (NCHW with perm [0,2,3,1] gives NHWC, NHWC with
 *     [0,3,1,2] gives NCHW, any other result is undecided);
 *   - ops that change the rank or regroup elements (Reshape, Flatten, Squeeze, Unsqueeze, ...)
 *     leave a 4-D result undecided;
 *   - every other op (elementwise, Concat, Slice, Pad, ...) keeps the layout its 4-D activation
 *     inputs share (undecided when they disagree).
 * A graph with no channels-last value at all is read as NCHW throughout, as camd always did:
 * only graphs that do go channels-last can have undecided 4-D values (the user then says which
 * with the `layer_layout` setting).
 */
#include <string.h>

#include "engine/graph_internal.h"

/* Ops whose outputs are NCHW by the ONNX definition of the op. */
static bool defines_nchw(const char *op) {
  static const char *const ops[] = {"Conv",
                                    "ConvTranspose",
                                    "MaxPool",
                                    "AveragePool",
                                    "LpPool",
                                    "GlobalAveragePool",
                                    "GlobalMaxPool",
                                    "GlobalLpPool",
                                    "BatchNormalization",
                                    "InstanceNormalization",
                                    "LRN",
                                    "DepthToSpace",
                                    "SpaceToDepth",
                                    "BnInverse"};
  for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
    if (!strcmp(op, ops[i])) return true;
  }
  return false;
}

/* Ops that regroup an item's elements: a 4-D result has no inherited layout. */
static bool regroups(const char *op) {
  static const char *const ops[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze"};
  for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
    if (!strcmp(op, ops[i])) return true;
  }
  return false;
}

/* The logical axis order of a layout: axis i of the tensor holds logical dim order[i] of
 * (N, C, H, W). */
static const int nchw_order[4] = {0, 1, 2, 3}, nhwc_order[4] = {0, 2, 3, 1};

static camd_layout transpose_layout(camd_layout in, const camd_node *n) {
  const camd_node_attr *a = camd__attr_find(n, "perm");
  if (in == CAMD_LAYOUT_UNKNOWN || !a || a->type != CAMD_ATTR_INTS || a->n != 4) {
    return CAMD_LAYOUT_UNKNOWN;
  }
  const int *order = in == CAMD_LAYOUT_NCHW ? nchw_order : nhwc_order;
  int out[4];
  for (int i = 0; i < 4; i++) {
    if (a->ints[i] < 0 || a->ints[i] > 3) return CAMD_LAYOUT_UNKNOWN;
    out[i] = order[a->ints[i]];
  }
  if (!memcmp(out, nchw_order, sizeof(out))) return CAMD_LAYOUT_NCHW;
  if (!memcmp(out, nhwc_order, sizeof(out))) return CAMD_LAYOUT_NHWC;
  return CAMD_LAYOUT_UNKNOWN;
}

static bool is_activation4(const camd_value *v) {
  return !v->data && v->batched && v->dtype == CAMD_FLOAT32 && v->shape.ndim == 4;
}

void camd__graph_infer_layouts(camd_graph *g) {
  bool any_nhwc = false;
  for (int i = 0; i < g->n_values; i++) {
    camd_value *v = &g->values[i];
    if (!v->is_input || !is_activation4(v)) v->layout = CAMD_LAYOUT_UNKNOWN;
    any_nhwc |= v->layout == CAMD_LAYOUT_NHWC;
  }
  for (int k = 0; k < g->n_nodes; k++) {
    const camd_node *n = &g->nodes[k];
    camd_layout common = CAMD_LAYOUT_UNKNOWN;
    bool agree = true, seen = false;
    for (int i = 0; i < n->n_in; i++) {
      if (n->in[i] < 0 || !is_activation4(&g->values[n->in[i]])) continue;
      camd_layout l = (camd_layout)g->values[n->in[i]].layout;
      if (seen && l != common) agree = false;
      common = l;
      seen = true;
    }
    camd_layout out = CAMD_LAYOUT_UNKNOWN;
    if (defines_nchw(n->op_type)) {
      out = CAMD_LAYOUT_NCHW;
    } else if (!strcmp(n->op_type, "Transpose")) {
      out = n->n_in > 0 && n->in[0] >= 0 ? transpose_layout(g->values[n->in[0]].layout, n)
                                         : CAMD_LAYOUT_UNKNOWN;
    } else if (!regroups(n->op_type) && seen && agree) {
      out = common;
    }
    for (int j = 0; j < n->n_out; j++) {
      camd_value *v = &g->values[n->out[j]];
      v->layout = is_activation4(v) ? out : CAMD_LAYOUT_UNKNOWN;
      any_nhwc |= v->layout == CAMD_LAYOUT_NHWC;
    }
  }
  if (any_nhwc) return;
  for (int i = 0; i < g->n_values; i++) {
    camd_value *v = &g->values[i];
    if (is_activation4(v)) v->layout = CAMD_LAYOUT_NCHW;
  }
}

int camd_graph_set_input_layout(camd_graph *g, int value_id, camd_layout layout, camd_error *err) {
  if (value_id < 0 || value_id >= g->n_values || !g->values[value_id].is_input ||
      g->values[value_id].shape.ndim != 4 ||
      (layout != CAMD_LAYOUT_NCHW && layout != CAMD_LAYOUT_NHWC)) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "camd_graph_set_input_layout: value %d is not a 4-D graph input or the "
                          "layout is not NCHW/NHWC",
                          value_id);
  }
  g->values[value_id].layout = layout;
  return 0;
}

camd_layout camd_model_value_layout(const camd_model *m, int id) {
  if (id < 0 || id >= m->graph->n_values) return CAMD_LAYOUT_UNKNOWN;
  return (camd_layout)m->graph->values[id].layout;
}

bool camd_layout_geometry(const camd_shape *s, camd_layout layout, int64_t *c, int64_t *h,
                          int64_t *w) {
  if (s->ndim != 4 || (layout != CAMD_LAYOUT_NCHW && layout != CAMD_LAYOUT_NHWC)) return false;
  bool last = layout == CAMD_LAYOUT_NHWC;
  if (c) *c = s->dims[last ? 3 : 1];
  if (h) *h = s->dims[last ? 1 : 2];
  if (w) *w = s->dims[last ? 2 : 3];
  return true;
}

const char *camd_layout_name(camd_layout layout) {
  switch (layout) {
    case CAMD_LAYOUT_NCHW:
      return "NCHW";
    case CAMD_LAYOUT_NHWC:
      return "NHWC";
    default:
      return "unknown";
  }
}
