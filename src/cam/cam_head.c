/* `cam` (Zhou et al. 2016): finds the global-average-pool → linear head after the target layer
 * in the graph and reads the class weights from the linear layer's constant weight matrix.
 *
 * Accepted head: layer → GlobalAveragePool (or ReduceMean over axes 2,3) → any chain of
 * Flatten / Reshape / Squeeze / Identity / Dropout → Gemm (constant B, transA = 0) or MatMul
 * (constant B) [+ Add of a constant] → (shape-only ops) → the score output. With such a head the
 * class score is Σ_c w_kc · mean(A_c) + b_k, so Σ_c w_kc A_c is the class activation map.
 */
#include <stdio.h>
#include <string.h>

#include "cam/cam_internal.h"
#include "camd/graph.h"

static bool is_shape_only(const char *op) {
  return strcmp(op, "Flatten") == 0 || strcmp(op, "Reshape") == 0 || strcmp(op, "Squeeze") == 0 ||
         strcmp(op, "Identity") == 0 || strcmp(op, "Dropout") == 0;
}

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

/* True when node k (ReduceMean) averages exactly the spatial axes 2 and 3 of a 4-D input. */
static bool is_spatial_mean(const camd_model *m, int k) {
  int64_t axes[CAMD_MAX_DIMS];
  size_t n = 0;
  const camd_attr *a = camd_model_node_attr(m, k, "axes");
  if (a && a->type == CAMD_ATTR_INTS) {
    n = a->n < CAMD_MAX_DIMS ? a->n : 0;
    for (size_t i = 0; i < n; i++) axes[i] = a->ints[i];
  } else {
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
    n = cnt;
    for (size_t i = 0; i < n; i++) axes[i] = d[i];
  }
  if (n != 2) return false;
  bool has2 = false, has3 = false;
  for (size_t i = 0; i < n; i++) {
    int64_t ax = axes[i] < 0 ? axes[i] + 4 : axes[i];
    has2 |= ax == 2;
    has3 |= ax == 3;
  }
  return has2 && has3;
}

static int refuse(camd_error *err, const char *layer, const char *why) {
  return camd_error_set(err, CAMD_E_UNSUPPORTED,
                        "method 'cam' needs the target layer to feed global average pooling and "
                        "then a linear layer; for layer '%s' %s. Use 'gradcam' instead (it equals "
                        "'cam' up to scale on such heads and works on any layer)",
                        layer, why);
}

int camd__cam_head_weights(const camd_model *m, int layer, int output, const int *classes,
                           int n_classes, int channels, double *weights_out, camd_error *err) {
  camd_value_info li, oi;
  if (camd_model_value_info(m, layer, &li) != 0 || camd_model_value_info(m, output, &oi) != 0) {
    return camd_error_set(err, CAMD_E_INVALID, "cam: bad layer or output value id");
  }
  char why[512];
  int nodes[8];
  int nc = consumers(m, layer, nodes, 8);
  int pool = -1;
  for (int i = 0; i < nc && i < 8; i++) {
    const char *op = camd_model_node_op(m, nodes[i]);
    if (strcmp(op, "GlobalAveragePool") == 0 ||
        (strcmp(op, "ReduceMean") == 0 && is_spatial_mean(m, nodes[i]))) {
      pool = nodes[i];
      break;
    }
  }
  if (pool < 0) {
    size_t pos = (size_t)snprintf(why, sizeof(why), "no global average pooling reads it (read by:");
    for (int i = 0; i < nc && i < 8 && pos < sizeof(why); i++) {
      pos += (size_t)snprintf(why + pos, sizeof(why) - pos, " %s", camd_model_node_op(m, nodes[i]));
    }
    if (pos < sizeof(why)) snprintf(why + pos, sizeof(why) - pos, "%s)", nc ? "" : " nothing");
    return refuse(err, li.name, why);
  }
  int v = first_output(m, pool);
  int linear = -1, next;
  /* Shape-only ops, then the linear layer. */
  for (;;) {
    if (consumers(m, v, &next, 1) != 1) {
      return refuse(err, li.name, "the pooled value is not read by exactly one node");
    }
    const char *op = camd_model_node_op(m, next);
    if (is_shape_only(op)) {
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
