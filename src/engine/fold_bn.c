/* Load-time rewrite: fold BatchNormalization into the preceding Conv, keeping the Conv's own
 * output available as a CAM target.
 *
 * Conv → X → BatchNormalization → Y with per-channel a = scale / sqrt(var + eps) and
 * b = B - mean · a becomes Conv' → Y with W' = a · W and bias' = a · bias + b: one pass over
 * memory fewer per block. X is then no longer computed on the way to the output, so the BN
 * node is turned into an internal "BnInverse" node Y → X computing X = (Y - b) / a. It only
 * runs when someone asks for X (a kept value). BnInverse is an ordinary op (forward, backward
 * dY += dX / a) with a grad_view hook (op.h): a backward that targets X stops at Y and the hook
 * answers dX = a · dY. Folding is skipped when X has other consumers or is a graph output, when
 * the weights are not constants, or when some a is zero or not finite (X could not be recovered
 * from Y). This is the first pass of the load-time pass list (passes.c).
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/fold_bn.h"

typedef struct bn_inverse_params {
  int64_t channels;
  float *a; /* channels multipliers (non-zero) */
  float *b; /* channels offsets */
} bn_inverse_params;

static int bn_inverse_infer(const camd_node *n, const camd_shape *in, camd_shape *out,
                            camd_error *err) {
  (void)n;
  (void)err;
  out[0] = in[0];
  return 0;
}

/* Per channel c: out[n, c, :] (+)= (in[n, c, :] - sub[c]) · m_c with m_c = 1 / a_c when invert,
 * else a_c (sub may be NULL). */
static void per_channel(const bn_inverse_params *p, const camd_shape *s, const float *in,
                        const float *sub, bool invert, bool accumulate, float *out) {
  size_t inner = camd_shape_count(s) / (size_t)(s->dims[0] * p->channels);
  for (int64_t n = 0; n < s->dims[0]; n++) {
    for (int64_t c = 0; c < p->channels; c++) {
      const float m = invert ? 1.0f / p->a[c] : p->a[c], b = sub ? sub[c] : 0.0f;
      size_t base = ((size_t)n * (size_t)p->channels + (size_t)c) * inner;
      if (accumulate) {
        for (size_t i = 0; i < inner; i++) out[base + i] += (in[base + i] - b) * m;
      } else {
        for (size_t i = 0; i < inner; i++) out[base + i] = (in[base + i] - b) * m;
      }
    }
  }
}

static void bn_inverse_forward(const camd_op_ctx *ctx) { /* X = (Y - b) / a */
  const bn_inverse_params *p = ctx->params;
  per_channel(p, &ctx->in[0].shape, ctx->in[0].data, p->b, true, false, ctx->out[0].data);
}

static void bn_inverse_backward(const camd_op_ctx *ctx) { /* dY += dX / a */
  if (!ctx->grad_in[0].data || !ctx->grad_out[0].data) return;
  per_channel(ctx->params, &ctx->in[0].shape, ctx->grad_out[0].data, NULL, true, true,
              ctx->grad_in[0].data);
}

static void bn_inverse_grad_view(const camd_op_ctx *ctx) { /* dX = a · dY */
  per_channel(ctx->params, &ctx->in[0].shape, ctx->grad_in[0].data, NULL, false, false,
              ctx->grad_out[0].data);
}

/* Not an ONNX op (no prepare, not in the op table): created only by this pass. */
const camd_op_desc camd__op_bn_inverse = {.op_type = "BnInverse",
                                          .infer = bn_inverse_infer,
                                          .forward = bn_inverse_forward,
                                          .backward = bn_inverse_backward,
                                          .grad_inputs = CAMD_IN(0),
                                          .grad_view = bn_inverse_grad_view};

static int count_consumers(const camd_graph *g, int v) {
  int c = 0;
  for (int k = 0; k < g->n_nodes; k++) {
    for (int i = 0; i < g->nodes[k].n_in; i++) c += g->nodes[k].in[i] == v;
  }
  return c;
}

static const float *const_float(const camd_graph *g, int v, size_t want) {
  if (v < 0) return NULL;
  const camd_value *val = &g->values[v];
  if (!val->data || val->dtype != CAMD_FLOAT32) return NULL;
  if (camd_shape_count(&val->shape) != want) return NULL;
  return val->data;
}

/* BatchNormalization's per-channel multiplier scale / sqrt(var + eps), in double. */
static double bn_multiplier(float scale, float var, float eps) {
  return (double)scale / sqrt((double)var + (double)eps);
}

/* Returns 1 if folded, 0 if skipped, negative on error. */
static int fold_one(camd_graph *g, int bn_index, camd_error *err) {
  camd_node *bn = &g->nodes[bn_index];
  if (bn->n_in != 5 || bn->n_out != 1 || bn->in[0] < 0) return 0;
  int x = bn->in[0], y = bn->out[0];
  int conv_index = g->values[x].producer;
  if (conv_index < 0) return 0;
  camd_node *conv = &g->nodes[conv_index];
  if (conv->op != camd__op_find("Conv") || conv->n_out != 1) return 0;
  if (g->values[x].is_output || count_consumers(g, x) != 1) return 0;
  if (g->values[x].shape.ndim < 3) return 0;
  int64_t ch = g->values[x].shape.dims[1];
  int w = conv->n_in > 1 ? conv->in[1] : -1;
  int bias = conv->n_in > 2 ? conv->in[2] : -1;
  if (w < 0 || !g->values[w].data || g->values[w].dtype != CAMD_FLOAT32) return 0;
  size_t wcount = camd_shape_count(&g->values[w].shape);
  if (g->values[w].shape.dims[0] != ch || wcount % (size_t)ch) return 0;
  const float *scale = const_float(g, bn->in[1], (size_t)ch);
  const float *shift = const_float(g, bn->in[2], (size_t)ch);
  const float *mean = const_float(g, bn->in[3], (size_t)ch);
  const float *var = const_float(g, bn->in[4], (size_t)ch);
  const float *bias_data = bias >= 0 ? const_float(g, bias, (size_t)ch) : NULL;
  if (!scale || !shift || !mean || !var || (bias >= 0 && !bias_data)) return 0;
  int64_t training = 0, spatial = 1;
  float eps = 1e-5f;
  if (camd__attr_int(bn, "training_mode", 0, &training, NULL) ||
      camd__attr_int(bn, "spatial", 1, &spatial, NULL) ||
      camd__attr_float(bn, "epsilon", 1e-5f, &eps, NULL) || training ||
      (bn->opset < 9 && !spatial)) {
    return 0;
  }
  bn_inverse_params *p = camd__node_params_alloc(g, sizeof(*p) + 2 * (size_t)ch * sizeof(float));
  if (!p) return camd_error_set(err, CAMD_E_NOMEM, "out of memory folding BatchNormalization");
  p->channels = ch;
  p->a = (float *)(p + 1);
  p->b = p->a + ch;
  for (int64_t c = 0; c < ch; c++) {
    double a = bn_multiplier(scale[c], var[c], eps);
    if (!(a != 0.0) || !isfinite(a) || !isfinite(1.0 / a) || !isfinite((float)a)) {
      return 0; /* X not recoverable */
    }
    p->a[c] = (float)a;
    p->b[c] = (float)((double)shift[c] - (double)mean[c] * a);
  }
  /* Scale the weights in place when this Conv is their only user (weights held once), else
   * into a fresh constant; the same for the bias. */
  size_t per = wcount / (size_t)ch;
  bool w_own = count_consumers(g, w) == 1;
  bool b_own = bias >= 0 && count_consumers(g, bias) == 1;
  float *nw = w_own ? g->values[w].data : malloc(wcount * sizeof(float));
  float *nb = b_own ? g->values[bias].data : malloc((size_t)ch * sizeof(float));
  if (!nw || !nb) {
    if (!w_own) free(nw);
    if (!b_own) free(nb);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory folding BatchNormalization");
  }
  const float *wd = g->values[w].data;
  /* Folded weights and bias are computed in double from the file's values and rounded once
   * (not from the float-rounded a and b, which would round twice). */
  for (int64_t c = 0; c < ch; c++) {
    const double a = bn_multiplier(scale[c], var[c], eps);
    for (size_t i = 0; i < per; i++) nw[(size_t)c * per + i] = (float)(wd[(size_t)c * per + i] * a);
    double b0 = bias_data ? (double)bias_data[c] : 0.0;
    nb[c] = (float)((b0 - (double)mean[c]) * a + (double)shift[c]);
  }
  int nw_id = w, nb_id = bias;
  if (!w_own) {
    camd_shape wshape = g->values[w].shape;
    nw_id = camd_graph_add_constant(g, "", CAMD_FLOAT32, &wshape, nw, err);
    if (nw_id < 0) {
      if (!b_own) free(nb);
      return nw_id;
    }
  }
  if (!b_own) {
    camd_shape bshape = {1, {ch}};
    nb_id = camd_graph_add_constant(g, "", CAMD_FLOAT32, &bshape, nb, err);
    if (nb_id < 0) return nb_id;
  }
  conv = &g->nodes[conv_index];
  bn = &g->nodes[bn_index];
  int *in = camd__node_params_alloc(g, sizeof(int) * 3);
  if (!in) return camd_error_set(err, CAMD_E_NOMEM, "out of memory folding BatchNormalization");
  in[0] = conv->in[0];
  in[1] = nw_id;
  in[2] = nb_id;
  conv->in = in;
  conv->n_in = 3;
  conv->in_const = CAMD_IN(1) | CAMD_IN(2);
  int rc = conv->op->prepare(g, conv, err);
  if (rc) return rc;
  conv->out[0] = y;
  g->values[y].producer = conv_index;
  /* The BN node becomes Y → X. */
  bn->op = &camd__op_bn_inverse;
  bn->op_type = "BnInverse";
  bn->in[0] = y;
  bn->out[0] = x;
  bn->n_in = 1;
  bn->in_const = 0;
  bn->in_batched = CAMD_IN(0);
  bn->params = p;
  bn->scratch_floats = 0;
  bn->bwd_scratch_floats = 0;
  g->values[x].producer = bn_index;
  return 1;
}

int camd__fold_batchnorm(camd_graph *g, int *folded, camd_error *err) {
  int count = 0;
  const camd_op_desc *bn_op = camd__op_find("BatchNormalization");
  for (int k = 0; k < g->n_nodes; k++) {
    if (g->nodes[k].op != bn_op) continue;
    int rc = fold_one(g, k, err);
    if (rc < 0) return rc;
    count += rc;
  }
  /* BnInverse nodes consume Y, produced by the Conv placed earlier: still topological. */
  if (folded) *folded = count;
  return 0;
}
