/* `cam` (Zhou et al. 2016): finds the global-pool → linear head after the target layer in the
 * graph and reads the class weights from the linear layer's constant weight matrix.
 *
 * Accepted head: layer → (Transposes between NCHW and NHWC) → global pooling → any chain of
 * Flatten / Reshape / Squeeze / Identity / Dropout / order-keeping Transpose → Gemm (constant B,
 * transA = 0) or MatMul (constant B) [+ Add of a constant] → (shape-only ops) → the score
 * output. Global pooling, as exporters write it: GlobalAveragePool, an AveragePool whose kernel
 * is the whole map (tfjs / Keras conversions), ReduceMean over the layout's H and W axes
 * (channels-last Keras heads), and the max-pooling forms of each (GMP networks, which the CAM
 * paper treats the same way). With such a head the class score is Σ_c w_kc · pool(A_c) + b_k, so
 * Σ_c w_kc A_c is the class activation map.
 */
#include <stdio.h>
#include <string.h>

#include "cam/cam_internal.h"
#include "camd/graph.h"

static bool is_shape_only(const char *op) {
  return strcmp(op, "Flatten") == 0 || strcmp(op, "Reshape") == 0 || strcmp(op, "Squeeze") == 0 ||
         strcmp(op, "Identity") == 0 || strcmp(op, "Dropout") == 0;
}

static int first_output(const camd_model *m, int node);

/* Nodes that read value v; returns how many (writes up to max node indices into nodes). */
static int consumers(const camd_model *m, int v, int *nodes, int max) {
  int count = 0;
  for (int k = 0; k < camd_model_num_nodes(m); k++) {
    const int *in;
    int n_in;
    if (camd_model_node_io(m, k, &in, &n_in, NULL, NULL) != 0) continue;
    for (int i = 0; i < n_in; i++) {
      if (in[i] == v) {
        if (count < max) nodes[count] = k;
        count++;
        break;
      }
    }
  }
  return count;
}

static int first_output(const camd_model *m, int node) {
  const int *out;
  int n_out;
  if (camd_model_node_io(m, node, NULL, NULL, &out, &n_out) != 0 || n_out < 1) return -1;
  return out[0];
}

/* The reduced axes of a Reduce* node (attribute before opset 18, input from 18); false when they
 * are not known constants. */
static bool reduce_axes(const camd_model *m, int k, int64_t *axes, size_t *n) {
  const camd_attr *a = camd_model_node_attr(m, k, "axes");
  if (a && a->type == CAMD_ATTR_INTS) {
    if (a->n > CAMD_MAX_DIMS) return false;
    *n = a->n;
    for (size_t i = 0; i < *n; i++) axes[i] = a->ints[i];
    return true;
  }
  const int *in;
  int n_in;
  camd_value_info vi;
  if (camd_model_node_io(m, k, &in, &n_in, NULL, NULL) != 0 || n_in < 2 || in[1] < 0 ||
      camd_model_value_info(m, in[1], &vi) != 0 || vi.dtype != CAMD_INT64) {
    return false;
  }
  const int64_t *d = camd_model_constant_data(m, in[1]);
  size_t cnt = camd_shape_count(&vi.shape);
  if (!d || cnt > CAMD_MAX_DIMS) return false;
  *n = cnt;
  for (size_t i = 0; i < cnt; i++) axes[i] = d[i];
  return true;
}

/* True when node k (ReduceMean / ReduceMax) reduces exactly the spatial axes of its 4-D input
 * read in `layout` (2, 3 for NCHW; 1, 2 for NHWC). */
static bool is_spatial_reduce(const camd_model *m, int k, camd_layout layout) {
  int64_t axes[CAMD_MAX_DIMS];
  size_t n = 0;
  if (!reduce_axes(m, k, axes, &n) || n != 2) return false;
  int h_ax = layout == CAMD_LAYOUT_NHWC ? 1 : 2, w_ax = h_ax + 1;
  bool has_h = false, has_w = false;
  for (size_t i = 0; i < n; i++) {
    int64_t ax = axes[i] < 0 ? axes[i] + 4 : axes[i];
    has_h |= ax == h_ax;
    has_w |= ax == w_ax;
  }
  return has_h && has_w;
}

/* True when pooling node k (AveragePool / MaxPool) on an NCHW input covers the whole map: its
 * kernel is the map's size, without padding, so its output is 1 x 1 (how tfjs / Keras
 * conversions write GlobalAveragePooling2D). */
static bool is_whole_map_pool(const camd_model *m, int k, const camd_value_info *in) {
  const camd_attr *ks = camd_model_node_attr(m, k, "kernel_shape");
  const camd_attr *pads = camd_model_node_attr(m, k, "pads");
  const camd_attr *ap = camd_model_node_attr(m, k, "auto_pad");
  const camd_attr *dil = camd_model_node_attr(m, k, "dilations");
  if (!ks || ks->type != CAMD_ATTR_INTS || ks->n != 2 || in->shape.ndim != 4) return false;
  if (ks->ints[0] != in->shape.dims[2] || ks->ints[1] != in->shape.dims[3]) return false;
  if (ap && ap->type == CAMD_ATTR_STRING && ap->s && strcmp(ap->s, "NOTSET") != 0 &&
      strcmp(ap->s, "VALID") != 0)
    return false;
  for (size_t i = 0; pads && pads->type == CAMD_ATTR_INTS && i < pads->n; i++) {
    if (pads->ints[i] != 0) return false;
  }
  for (size_t i = 0; dil && dil->type == CAMD_ATTR_INTS && i < dil->n; i++) {
    if (dil->ints[i] != 1) return false;
  }
  camd_value_info oi;
  int out = first_output(m, k);
  return out >= 0 && camd_model_value_info(m, out, &oi) == 0 && oi.shape.ndim == 4 &&
         oi.shape.dims[2] == 1 && oi.shape.dims[3] == 1;
}

/* True when node k pools value v (layout `layout`) over the whole map: GlobalAveragePool /
 * GlobalMaxPool, a whole-map AveragePool / MaxPool, or ReduceMean / ReduceMax over H and W. */
static bool is_global_pool(const camd_model *m, int k, int v, camd_layout layout) {
  const char *op = camd_model_node_op(m, k);
  camd_value_info vi;
  if (camd_model_value_info(m, v, &vi) != 0) return false;
  if (!strcmp(op, "ReduceMean") || !strcmp(op, "ReduceMax")) return is_spatial_reduce(m, k, layout);
  if (layout != CAMD_LAYOUT_NCHW) return false;
  if (!strcmp(op, "GlobalAveragePool") || !strcmp(op, "GlobalMaxPool")) return true;
  if (!strcmp(op, "AveragePool") || !strcmp(op, "MaxPool")) return is_whole_map_pool(m, k, &vi);
  return false;
}

/* The layout a Transpose node k gives a 4-D value of layout `in` (UNKNOWN if neither). */
static camd_layout transposed(const camd_model *m, int k, camd_layout in) {
  const camd_attr *a = camd_model_node_attr(m, k, "perm");
  if (!a || a->type != CAMD_ATTR_INTS || a->n != 4) return CAMD_LAYOUT_UNKNOWN;
  static const int64_t to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};
  const int64_t *want = in == CAMD_LAYOUT_NCHW ? to_nhwc : to_nchw;
  if (!memcmp(a->ints, want, sizeof(to_nhwc))) {
    return in == CAMD_LAYOUT_NCHW ? CAMD_LAYOUT_NHWC : CAMD_LAYOUT_NCHW;
  }
  static const int64_t ident[4] = {0, 1, 2, 3};
  return memcmp(a->ints, ident, sizeof(ident)) ? CAMD_LAYOUT_UNKNOWN : in;
}

/* A Transpose that moves only size-1 axes keeps the element order (a pooled [1, 1, 1, C] made
 * [1, C, 1, 1]): shape-only. */
static bool order_preserving_transpose(const camd_model *m, int k) {
  const camd_attr *a = camd_model_node_attr(m, k, "perm");
  const int *in;
  int n_in;
  camd_value_info vi;
  if (!a || a->type != CAMD_ATTR_INTS || camd_model_node_io(m, k, &in, &n_in, NULL, NULL) != 0 ||
      n_in < 1 || camd_model_value_info(m, in[0], &vi) != 0 || (int)a->n != vi.shape.ndim) {
    return false;
  }
  int64_t last = -1;
  for (size_t i = 0; i < a->n; i++) {
    int64_t ax = a->ints[i];
    if (ax < 0 || ax >= vi.shape.ndim) return false;
    if (vi.shape.dims[ax] == 1) continue;
    if (ax < last) return false;
    last = ax;
  }
  return true;
}

static int refuse(camd_error *err, const char *layer, const char *why) {
  return camd_error_set(err, CAMD_E_UNSUPPORTED,
                        "method 'cam' needs the target layer to feed global pooling and then a "
                        "linear layer; for layer '%s' %s. Use 'gradcam' instead (it equals "
                        "'cam' up to scale on such heads and works on any layer)",
                        layer, why);
}

int camd__cam_head_weights(const camd_model *m, int layer, camd_layout layout, int output,
                           const int *classes, int n_classes, int channels, double *weights_out,
                           camd_error *err) {
  camd_value_info li, oi;
  if (camd_model_value_info(m, layer, &li) != 0 || camd_model_value_info(m, output, &oi) != 0) {
    return camd_error_set(err, CAMD_E_INVALID, "cam: bad layer or output value id");
  }
  char why[512];
  int nodes[8];
  int pool = -1, src = layer;
  camd_layout cur = layout;
  /* From the layer, through Transposes between NCHW and NHWC (tf2onnx puts one before the
   * pooling), to the global pooling. */
  for (int hops = 0; pool < 0 && hops < 8; hops++) {
    int nc = consumers(m, src, nodes, 8);
    for (int i = 0; i < nc && i < 8 && pool < 0; i++) {
      if (is_global_pool(m, nodes[i], src, cur)) pool = nodes[i];
    }
    if (pool >= 0) break;
    camd_layout next = CAMD_LAYOUT_UNKNOWN;
    if (nc == 1 && !strcmp(camd_model_node_op(m, nodes[0]), "Transpose"))
      next = transposed(m, nodes[0], cur);
    if (next == CAMD_LAYOUT_UNKNOWN) {
      size_t pos = (size_t)snprintf(why, sizeof(why),
                                    "no global pooling (GlobalAveragePool, an AveragePool over "
                                    "the whole map, ReduceMean over H and W) reads it (read by:");
      for (int j = 0; j < nc && j < 8 && pos < sizeof(why); j++) {
        pos +=
            (size_t)snprintf(why + pos, sizeof(why) - pos, " %s", camd_model_node_op(m, nodes[j]));
      }
      if (pos < sizeof(why)) snprintf(why + pos, sizeof(why) - pos, "%s)", nc ? "" : " nothing");
      return refuse(err, li.name, why);
    }
    src = first_output(m, nodes[0]);
    cur = next;
  }
  if (pool < 0) return refuse(err, li.name, "no global pooling reads it");
  int v = first_output(m, pool);
  int linear = -1, next;
  /* Shape-only ops, then the linear layer. */
  for (;;) {
    if (consumers(m, v, &next, 1) != 1) {
      return refuse(err, li.name, "the pooled value is not read by exactly one node");
    }
    const char *op = camd_model_node_op(m, next);
    if (is_shape_only(op) || (!strcmp(op, "Transpose") && order_preserving_transpose(m, next))) {
      v = first_output(m, next);
      continue;
    }
    if (strcmp(op, "Gemm") != 0 && strcmp(op, "MatMul") != 0) {
      snprintf(why, sizeof(why), "the pooled value goes into %s ('%s'), not a linear layer", op,
               camd_model_node_name(m, next));
      return refuse(err, li.name, why);
    }
    linear = next;
    break;
  }
  const int *in;
  int n_in;
  camd_model_node_io(m, linear, &in, &n_in, NULL, NULL);
  bool gemm = strcmp(camd_model_node_op(m, linear), "Gemm") == 0;
  camd_value_info wi;
  if (n_in < 2 || in[0] != v || camd_model_value_info(m, in[1], &wi) != 0 || !wi.is_constant ||
      wi.dtype != CAMD_FLOAT32 || wi.shape.ndim != 2) {
    return refuse(err, li.name, "the linear layer's weight is not a constant 2-D matrix");
  }
  const float *wdata = camd_model_constant_data(m, in[1]);
  bool trans_b = false;
  double alpha = 1.0;
  if (gemm) {
    const camd_attr *a = camd_model_node_attr(m, linear, "transA");
    if (a && a->type == CAMD_ATTR_INT && a->i != 0) {
      return refuse(err, li.name, "the Gemm transposes its activation input (transA = 1)");
    }
    a = camd_model_node_attr(m, linear, "transB");
    trans_b = a && a->type == CAMD_ATTR_INT && a->i != 0;
    a = camd_model_node_attr(m, linear, "alpha");
    if (a && a->type == CAMD_ATTR_FLOAT) alpha = a->f;
  }
  int64_t rows = wi.shape.dims[0], cols = wi.shape.dims[1];
  int64_t k_dim = trans_b ? cols : rows, n_dim = trans_b ? rows : cols;
  if (k_dim != channels) {
    snprintf(why, sizeof(why), "the linear layer has %lld inputs but the layer has %d channels",
             (long long)k_dim, channels);
    return refuse(err, li.name, why);
  }
  /* From the linear layer to the score output: an optional constant Add (MatMul bias), then
   * shape-only ops. */
  v = first_output(m, linear);
  while (v != output) {
    if (consumers(m, v, &next, 1) != 1) break;
    const char *op = camd_model_node_op(m, next);
    const int *nin;
    int nn;
    camd_model_node_io(m, next, &nin, &nn, NULL, NULL);
    bool const_add = false;
    if (strcmp(op, "Add") == 0 && nn == 2) {
      int other = nin[0] == v ? nin[1] : nin[0];
      camd_value_info bi;
      const_add = camd_model_value_info(m, other, &bi) == 0 && bi.is_constant;
    }
    if (!const_add && !is_shape_only(op)) break;
    v = first_output(m, next);
  }
  if (v != output) {
    snprintf(why, sizeof(why),
             "the linear layer's result does not reach the score output '%s' unchanged "
             "(pick the logits as output)",
             oi.name);
    return refuse(err, li.name, why);
  }
  if (n_dim != (int64_t)camd_shape_count(&oi.shape)) {
    return refuse(err, li.name, "the linear layer's output count differs from the score output");
  }
  for (int k = 0; k < n_classes; k++) {
    int64_t cls = classes[k];
    for (int c = 0; c < channels; c++) {
      float wv = trans_b ? wdata[cls * k_dim + c] : wdata[(int64_t)c * n_dim + cls];
      weights_out[(size_t)k * channels + c] = alpha * wv;
    }
  }
  return 0;
}
