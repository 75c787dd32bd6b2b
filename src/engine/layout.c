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
 *   - every other op (elementwise, Concat, Slice, Pad, LayerNormalization, MatMul by a constant,
 *     ...) keeps the layout its 4-D activation inputs of known layout share (undecided when they
 *     disagree); an undecided input does not veto it. A residual Add of a channels-last map and
 *     the undecided result of a window partition/merge (Swin's attention: Reshape, Transpose,
 *     Reshape back) is channels-last, as its known input: the two are added element by element.
 *     A MatMul of two activations (attention) decides nothing.
 * Then the graph is walked backwards, deciding what the forward walk left undecided from how a
 * value is read:
 *   - the data input of an op that reads NCHW (Conv, the pools, ...) is NCHW;
 *   - the input of a Transpose whose output is decided is its output's layout permuted back
 *     (torchvision's Swin ends with permute(0, 3, 1, 2) before the average pool: its input is
 *     NHWC);
 *   - an undecided input of a layout-keeping op (as above) with the shape of the op's decided
 *     output takes the output's layout.
   - the input of a Slice, Concat or Pad (which move data along axes without permuting them)
 *     has its decided output's layout whatever its shape (Swin's cyclic shift, a roll exported
 *     as Slices and Concats of the channels-last map, is channels-last all along).
 * Attention internals: the operands and result of an attention product (a MatMul of two
 * activations) and every undecided value connected to them through ops that neither regroup
 * elements nor define a layout (Transpose, Gather, Softmax, elementwise: Swin's and MaxViT's
 * queries, keys, values, attention scores and weights, [batch x windows, heads, tokens, dim])
 * are marked `attention`: their axes are windows, heads and tokens, not a map, so they are never
 * CAM layers, whatever their rank. A value whose layout the walks decided is never marked.
 * A graph with no channels-last value at all is read as NCHW throughout (attention internals
 * excepted), as camd always did: only graphs that do go channels-last can have undecided 4-D
 * values (the user then says which with the `layer_layout` setting).
 *
 * Token maps (vision transformers): a graph whose patch embedding is a Conv with kernel equal to
 * stride and no padding, on a graph input, with a square h × w output grid, gets every 3-D batched
 * float activation [N, T, C] with T - h·w in [0, CAMD_TOKENS_MAX_PREFIX] marked TOKENS (the
 * class token and register tokens come first, as ViT / DeiT / DINOv2 place them). CAM methods
 * read such a value as the h × w map of its last h·w tokens.
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

/* Ops that keep their 4-D activation inputs' layout (everything not listed above), except a
 * MatMul of two activations: its last axis comes from its second input. */
static bool keeps_layout(const camd_graph *g, const camd_node *n) {
  if (defines_nchw(n->op_type) || regroups(n->op_type) || !strcmp(n->op_type, "Transpose")) {
    return false;
  }
  if (!strcmp(n->op_type, "MatMul") && n->n_in == 2 && n->in[1] >= 0 && !g->values[n->in[1]].data) {
    return false;
  }
  return true;
}

/* Ops that move data along axes without permuting them: an input has the output's layout. */
static bool moves_along_axes(const char *op) {
  return !strcmp(op, "Slice") || !strcmp(op, "Concat") || !strcmp(op, "Pad");
}

/* Inverse of transpose_layout: the input layout that gives `out` through n's perm. */
static camd_layout transpose_layout_back(camd_layout out, const camd_node *n) {
  for (int in = CAMD_LAYOUT_NCHW; in <= CAMD_LAYOUT_NHWC; in++) {
    if (transpose_layout((camd_layout)in, n) == out) return (camd_layout)in;
  }
  return CAMD_LAYOUT_UNKNOWN;
}

static bool is_activation4(const camd_value *v) {
  return !v->data && v->batched && v->dtype == CAMD_FLOAT32 && v->shape.ndim == 4;
}

/* Patch grid side of the graph's patch embedding (see the top comment), 0 when there is none. */
static int64_t patch_grid(const camd_graph *g) {
  for (int k = 0; k < g->n_nodes; k++) {
    const camd_node *n = &g->nodes[k];
    if (strcmp(n->op_type, "Conv") != 0 || n->n_in < 2 || n->in[0] < 0) continue;
    if (!g->values[n->in[0]].is_input) continue;
    const camd_node_attr *ks = camd__attr_find(n, "kernel_shape");
    const camd_node_attr *st = camd__attr_find(n, "strides");
    const camd_node_attr *pads = camd__attr_find(n, "pads");
    if (!ks || !st || ks->type != CAMD_ATTR_INTS || st->type != CAMD_ATTR_INTS || ks->n != 2 ||
        st->n != 2 || ks->ints[0] != st->ints[0] || ks->ints[1] != st->ints[1] || ks->ints[0] < 2) {
      continue;
    }
    bool padded = false;
    for (size_t i = 0; pads && pads->type == CAMD_ATTR_INTS && i < pads->n; i++) {
      padded |= pads->ints[i] != 0;
    }
    const camd_value *out = &g->values[n->out[0]];
    if (padded || out->shape.ndim != 4 || out->shape.dims[2] != out->shape.dims[3]) continue;
    return out->shape.dims[2];
  }
  return 0;
}

static void mark_tokens(camd_graph *g) {
  const int64_t side = patch_grid(g);
  if (side < 2) return;
  for (int i = 0; i < g->n_values; i++) {
    camd_value *v = &g->values[i];
    if (v->data || !v->batched || v->dtype != CAMD_FLOAT32 || v->shape.ndim != 3) continue;
    if (v->shape.dims[0] != 1) continue; /* attention internals: batch x heads on axis 0 */
    const int64_t prefix = v->shape.dims[1] - side * side;
    int64_t h;
    if (prefix < 0 || prefix > CAMD_TOKENS_MAX_PREFIX) continue;
    if (!camd_layout_geometry(&v->shape, CAMD_LAYOUT_TOKENS, NULL, &h, NULL) || h != side) continue;
    v->layout = CAMD_LAYOUT_TOKENS;
  }
}

static bool is_activation(const camd_value *v) {
  return !v->data && v->batched && v->dtype == CAMD_FLOAT32;
}

/* A value the attention marking may take: an undecided activation. */
static bool attention_candidate(const camd_value *v) {
  return is_activation(v) && !v->attention && v->layout == CAMD_LAYOUT_UNKNOWN;
}

/* Marks attention internals (see the top comment): seeds at every attention product, then
 * spreads forwards and backwards through ops that keep positions (not Reshape-like, not
 * defining NCHW) until nothing changes. */
static void mark_attention(camd_graph *g) {
  for (int i = 0; i < g->n_values; i++) g->values[i].attention = false;
  for (int k = 0; k < g->n_nodes; k++) {
    const camd_node *n = &g->nodes[k];
    if (strcmp(n->op_type, "MatMul") != 0 || n->n_in != 2 || n->in[0] < 0 || n->in[1] < 0 ||
        !is_activation(&g->values[n->in[0]]) || !is_activation(&g->values[n->in[1]])) {
      continue;
    }
    for (int i = 0; i < 2; i++) {
      if (attention_candidate(&g->values[n->in[i]])) g->values[n->in[i]].attention = true;
    }
    if (attention_candidate(&g->values[n->out[0]])) g->values[n->out[0]].attention = true;
  }
  for (bool changed = true; changed;) {
    changed = false;
    for (int k = 0; k < g->n_nodes; k++) {
      const camd_node *n = &g->nodes[k];
      if (defines_nchw(n->op_type) || regroups(n->op_type)) continue;
      bool in_marked = false, out_marked = false;
      for (int i = 0; i < n->n_in; i++) in_marked |= n->in[i] >= 0 && g->values[n->in[i]].attention;
      for (int j = 0; j < n->n_out; j++) out_marked |= g->values[n->out[j]].attention;
      if (in_marked) {
        for (int j = 0; j < n->n_out; j++) {
          camd_value *v = &g->values[n->out[j]];
          if (attention_candidate(v)) changed = v->attention = true;
        }
      }
      if (out_marked) {
        for (int i = 0; i < n->n_in; i++) {
          camd_value *v = n->in[i] >= 0 ? &g->values[n->in[i]] : NULL;
          if (v && attention_candidate(v)) changed = v->attention = true;
        }
      }
    }
  }
}

void camd__graph_infer_layouts(camd_graph *g) {
  bool any_nhwc = false;
  for (int i = 0; i < g->n_values; i++) {
    camd_value *v = &g->values[i];
    if (!v->is_input || !is_activation4(v)) v->layout = CAMD_LAYOUT_UNKNOWN;
    any_nhwc |= v->layout == CAMD_LAYOUT_NHWC;
  }
  mark_tokens(g);
  for (int k = 0; k < g->n_nodes; k++) {
    const camd_node *n = &g->nodes[k];
    camd_layout common = CAMD_LAYOUT_UNKNOWN;
    bool agree = true, seen = false;
    for (int i = 0; i < n->n_in; i++) {
      if (n->in[i] < 0 || !is_activation4(&g->values[n->in[i]])) continue;
      camd_layout l = (camd_layout)g->values[n->in[i]].layout;
      if (l == CAMD_LAYOUT_UNKNOWN) continue;
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
    } else if (keeps_layout(g, n) && seen && agree) {
      out = common;
    }
    for (int j = 0; j < n->n_out; j++) {
      camd_value *v = &g->values[n->out[j]];
      if (v->layout == CAMD_LAYOUT_TOKENS) continue;
      v->layout = is_activation4(v) ? out : CAMD_LAYOUT_UNKNOWN;
      any_nhwc |= v->layout == CAMD_LAYOUT_NHWC;
    }
  }
  for (int k = g->n_nodes - 1; k >= 0; k--) {
    const camd_node *n = &g->nodes[k];
    const camd_value *o = n->n_out > 0 ? &g->values[n->out[0]] : NULL;
    const camd_layout out = o && is_activation4(o) ? (camd_layout)o->layout : CAMD_LAYOUT_UNKNOWN;
    for (int i = 0; i < n->n_in; i++) {
      if (n->in[i] < 0) continue;
      camd_value *v = &g->values[n->in[i]];
      if (!is_activation4(v) || v->layout != CAMD_LAYOUT_UNKNOWN || v->is_input) continue;
      camd_layout l = CAMD_LAYOUT_UNKNOWN;
      if (defines_nchw(n->op_type)) {
        l = i == 0 ? CAMD_LAYOUT_NCHW : CAMD_LAYOUT_UNKNOWN;
      } else if (!strcmp(n->op_type, "Transpose")) {
        l = out != CAMD_LAYOUT_UNKNOWN ? transpose_layout_back(out, n) : CAMD_LAYOUT_UNKNOWN;
      } else if (out != CAMD_LAYOUT_UNKNOWN && keeps_layout(g, n) &&
                 (camd_shape_equal(&v->shape, &o->shape) || moves_along_axes(n->op_type))) {
        l = out;
      }
      v->layout = l;
      any_nhwc |= l == CAMD_LAYOUT_NHWC;
    }
  }
  mark_attention(g);
  if (any_nhwc) return;
  for (int i = 0; i < g->n_values; i++) {
    camd_value *v = &g->values[i];
    if (is_activation4(v) && !v->attention) v->layout = CAMD_LAYOUT_NCHW;
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
  if (layout == CAMD_LAYOUT_TOKENS) {
    if (s->ndim != 3 || s->dims[1] < 1) return false;
    int64_t side = 1;
    while ((side + 1) * (side + 1) <= s->dims[1]) side++;
    if (s->dims[1] - side * side > CAMD_TOKENS_MAX_PREFIX || side < 2) return false;
    if (c) *c = s->dims[2];
    if (h) *h = side;
    if (w) *w = side;
    return true;
  }
  if (s->ndim != 4 || (layout != CAMD_LAYOUT_NCHW && layout != CAMD_LAYOUT_NHWC)) return false;
  bool last = layout == CAMD_LAYOUT_NHWC;
  if (c) *c = s->dims[last ? 3 : 1];
  if (h) *h = s->dims[last ? 1 : 2];
  if (w) *w = s->dims[last ? 2 : 3];
  return true;
}

int64_t camd_layout_token_prefix(const camd_shape *s, camd_layout layout) {
  int64_t h, w;
  if (layout != CAMD_LAYOUT_TOKENS || !camd_layout_geometry(s, layout, NULL, &h, &w)) return 0;
  return s->dims[1] - h * w;
}

const char *camd_layout_name(camd_layout layout) {
  switch (layout) {
    case CAMD_LAYOUT_NCHW:
      return "NCHW";
    case CAMD_LAYOUT_NHWC:
      return "NHWC";
    case CAMD_LAYOUT_TOKENS:
      return "tokens";
    default:
      return "unknown";
  }
}
