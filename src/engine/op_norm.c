/* BatchNormalization in inference mode (opset 1..22) and LayerNormalization (opset 17..22).
 * BatchNormalization: y = x * a + b per channel, with a = scale / sqrt(var + epsilon) and b = B -
 * mean * a precomputed at load time from the constant inputs. Backward: dx += dy * a. training_mode
 * = 1 (or the training outputs) is rejected. Before opset 9, spatial = 0 means one statistic per
 * element of C x D1 x ... Dn. LayerNormalization: see its section below.
 */
#include <math.h>
#include <string.h>

#include "engine/op.h"
#include "engine/pool.h"

typedef struct bn_params {
  int64_t nch;   /* number of (a, b) pairs: C, or C * inner when spatial = 0 */
  int64_t inner; /* elements each pair applies to within one sample: spatial size or 1 */
  int ndim;      /* input rank */
  float *a;      /* nch multipliers */
  float *b;      /* nch offsets */
} bn_params;

/* Planes [begin, end) of the batch's (item, channel) planes: y = x * a + b. */
static void bn_forward_planes(void *arg, int64_t begin, int64_t end) {
  const camd_op_ctx *ctx = arg;
  const bn_params *p = ctx->params;
  const int64_t inner = p->inner;
  for (int64_t q = begin; q < end; q++) {
    const int64_t c = q % p->nch;
    const float a = p->a[c], b = p->b[c];
    const float *xs = ctx->in[0].data + q * inner;
    float *ys = ctx->out[0].data + q * inner;
    for (int64_t i = 0; i < inner; i++) ys[i] = xs[i] * a + b;
    /* a fused Relu / Clip, while the plane is in cache */
    camd__post_op_apply(ctx->post, ys, inner);
  }
}

/* Elementwise, so split over the session's threads in pieces of whole planes (~CAMD_POOL_CHUNK
 * floats, fixed by the shape): the same bits at any thread count (DenseNet's pre-activation
 * BatchNormalizations over whole concatenations are not folded into a convolution; the Relu after
 * each is fused into it at plan time: one pass over the concatenation instead of two). */
static void bn_forward(const camd_op_ctx *ctx) {
  const bn_params *p = ctx->params;
  const int64_t planes = ctx->in[0].shape.dims[0] * p->nch;
  int64_t per = CAMD_POOL_CHUNK / (p->inner > 0 ? p->inner : 1);
  camd__pool_range(ctx->pool, planes, per > 0 ? per : 1, bn_forward_planes, (void *)ctx);
}

static void bn_backward(const camd_op_ctx *ctx) {
  const bn_params *p = ctx->params;
  float *dx = ctx->grad_in[0].data;
  const float *dy = ctx->grad_out[0].data;
  if (!dx || !dy) return;
  const int64_t batch = ctx->in[0].shape.dims[0], inner = p->inner;
  for (int64_t n = 0; n < batch; n++) {
    for (int64_t c = 0; c < p->nch; c++) {
      const float a = p->a[c];
      const float *g = dy + (n * p->nch + c) * inner;
      float *d = dx + (n * p->nch + c) * inner;
      for (int64_t i = 0; i < inner; i++) d[i] += g[i] * a;
    }
  }
}

static int bn_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  if (node->n_in != 5) {
    return camd__node_error(err, node, CAMD_E_INVALID,
                            "expects 5 inputs (X, scale, B, mean, var), got %d", node->n_in);
  }
  int64_t training = 0, spatial = 1;
  float eps = 1e-5f;
  int rc = camd__attr_int(node, "training_mode", 0, &training, err);
  if (!rc) rc = camd__attr_int(node, "spatial", 1, &spatial, err);
  if (!rc) rc = camd__attr_float(node, "epsilon", 1e-5f, &eps, err);
  if (rc) return rc;
  if (training != 0 || node->n_out != 1) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "training mode (training_mode = 1 or running-statistics outputs) is "
                            "not supported; export the model in eval mode");
  }
  if (node->opset >= 9) spatial = 1; /* the attribute was removed in opset 9 */
  camd_shape xs;
  camd_dtype xt;
  const void *xd;
  if (node->in[0] < 0 || camd__node_input(g, node, 0, &xs, &xt, &xd)) {
    return camd__node_error(err, node, CAMD_E_INVALID, "missing input X");
  }
  if (xt != CAMD_FLOAT32) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED, "only float32 input is supported");
  }
  if (xs.ndim < 2) {
    return camd__node_error(err, node, CAMD_E_SHAPE, "input X has rank %d, expected >= 2", xs.ndim);
  }
  int64_t inner = 1;
  for (int i = 2; i < xs.ndim; i++) inner *= xs.dims[i];
  const int64_t nch = spatial ? xs.dims[1] : xs.dims[1] * inner;
  const float *v[4];
  static const char *const names[4] = {"scale", "B", "mean", "var"};
  for (int i = 0; i < 4; i++) {
    camd_shape s;
    camd_dtype t;
    const void *d = NULL;
    if (node->in[i + 1] < 0 || camd__node_input(g, node, i + 1, &s, &t, &d)) {
      return camd__node_error(err, node, CAMD_E_INVALID, "missing input %s", names[i]);
    }
    if (!d || t != CAMD_FLOAT32) {
      return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                              "input %s must be a float32 constant initializer", names[i]);
    }
    if ((int64_t)camd_shape_count(&s) != nch) {
      char buf[96];
      camd_shape_format(&s, buf, sizeof(buf));
      return camd__node_error(err, node, CAMD_E_SHAPE,
                              "input %s has shape %s, expected %lld values", names[i], buf,
                              (long long)nch);
    }
    v[i] = d;
  }
  bn_params *p = camd__node_params_alloc(g, sizeof(*p) + 2 * (size_t)nch * sizeof(float));
  if (!p) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  p->nch = nch;
  p->inner = spatial ? inner : 1;
  p->ndim = xs.ndim;
  p->a = (float *)(p + 1);
  p->b = p->a + nch;
  for (int64_t c = 0; c < nch; c++) {
    const double a = (double)v[0][c] / sqrt((double)v[3][c] + (double)eps);
    p->a[c] = (float)a;
    p->b[c] = (float)((double)v[1][c] - (double)v[2][c] * a);
  }
  node->params = p;
  node->scratch_floats = 0;
  node->bwd_scratch_floats = 0;
  return 0;
}

static int bn_infer(const camd_node *node, const camd_shape *in, camd_shape *out, camd_error *err) {
  const bn_params *p = node->params;
  if (!p) return camd__node_error(err, node, CAMD_E_STATE, "not prepared");
  int64_t per = 1;
  for (int i = 1; i < in[0].ndim; i++) per *= in[0].dims[i];
  if (in[0].ndim != p->ndim || per != p->nch * p->inner) {
    char buf[96];
    camd_shape_format(&in[0], buf, sizeof(buf));
    return camd__node_error(err, node, CAMD_E_SHAPE,
                            "input X %s does not match the shape the node was loaded with", buf);
  }
  out[0] = in[0];
  return 0;
}

const camd_op_desc camd__op_batchnormalization = {.op_type = "BatchNormalization",
                                                  .opset_min = 1,
                                                  .opset_max = 22,
                                                  .prepare = bn_prepare,
                                                  .infer = bn_infer,
                                                  .forward = bn_forward,
                                                  .backward = bn_backward,
                                                  .bwd_needs_inputs = 0,
                                                  .bwd_needs_outputs = false,
                                                  .grad_inputs = CAMD_IN(0),
                                                  .accepts_post_op = true};

/* ---- LayerNormalization (opset 17..22) ----
 * Y = (X - mean) / sqrt(var + epsilon) * Scale + B over the axes [axis, rank) of X: rows of D
 * elements. Scale and B are float32 constants of D values (B optional). Sums are in double.
 * Backward (input X only), with xhat = (x - mean) * rstd and gs = dy * scale:
 *   dx = rstd * (gs - mean(gs) - xhat * mean(gs * xhat)).
 * The optional Mean / InvStdDev outputs (training) are rejected. */
typedef struct ln_params {
  int axis;  /* normalised, 0 <= axis < rank */
  int ndim;  /* input rank */
  int64_t d; /* elements per row */
  float eps;
  float *scale; /* d values */
  float *bias;  /* d values (zeros when B is absent) */
} ln_params;

typedef struct ln_job {
  const camd_op_ctx *ctx;
  int64_t d;
} ln_job;

/* Mean and 1 / sqrt(var + eps) of one row, in double. */
static void ln_stats(const float *x, int64_t d, float eps, double *mean, double *rstd) {
  double s = 0.0;
  for (int64_t i = 0; i < d; i++) s += x[i];
  const double m = s / (double)d;
  double v = 0.0;
  for (int64_t i = 0; i < d; i++) v += ((double)x[i] - m) * ((double)x[i] - m);
  *mean = m;
  *rstd = 1.0 / sqrt(v / (double)d + (double)eps);
}

static void ln_forward_rows(void *arg, int64_t b, int64_t e) {
  const ln_job *j = arg;
  const ln_params *p = j->ctx->params;
  const int64_t d = j->d;
  for (int64_t r = b; r < e; r++) {
    const float *x = (const float *)j->ctx->in[0].data + r * d;
    float *y = j->ctx->out[0].data + r * d;
    double m, rs;
    ln_stats(x, d, p->eps, &m, &rs);
    for (int64_t i = 0; i < d; i++) {
      y[i] = (float)(((double)x[i] - m) * rs) * p->scale[i] + p->bias[i];
    }
  }
}

static int64_t ln_rows(const camd_op_ctx *ctx, int64_t d) {
  return (int64_t)camd_shape_count(&ctx->in[0].shape) / d;
}

static void ln_forward(const camd_op_ctx *ctx) {
  const ln_params *p = ctx->params;
  ln_job j = {ctx, p->d};
  const int64_t chunk = p->d >= 4096 ? 1 : 4096 / p->d;
  camd__pool_range(ctx->pool, ln_rows(ctx, p->d), chunk, ln_forward_rows, &j);
}

static void ln_backward(const camd_op_ctx *ctx) {
  const ln_params *p = ctx->params;
  float *dx = ctx->grad_in[0].data;
  const float *dy = ctx->grad_out[0].data;
  if (!dx || !dy) return;
  const int64_t d = p->d, rows = ln_rows(ctx, d);
  for (int64_t r = 0; r < rows; r++) {
    const float *x = (const float *)ctx->in[0].data + r * d, *g = dy + r * d;
    float *o = dx + r * d;
    double m, rs;
    ln_stats(x, d, p->eps, &m, &rs);
    double sg = 0.0, sgx = 0.0;
    for (int64_t i = 0; i < d; i++) {
      const double gs = (double)g[i] * p->scale[i];
      sg += gs;
      sgx += gs * ((double)x[i] - m) * rs;
    }
    sg /= (double)d;
    sgx /= (double)d;
    for (int64_t i = 0; i < d; i++) {
      const double xh = ((double)x[i] - m) * rs, gs = (double)g[i] * p->scale[i];
      o[i] += (float)(rs * (gs - sg - xh * sgx));
    }
  }
}

static int ln_const_input(camd_graph *g, const camd_node *node, int i, int64_t d, const float **out,
                          camd_error *err) {
  static const char *const names[3] = {"X", "Scale", "B"};
  camd_shape s;
  camd_dtype t;
  const void *data = NULL;
  *out = NULL;
  if (node->n_in <= i || node->in[i] < 0) return 0;
  if (camd__node_input(g, node, i, &s, &t, &data)) {
    return camd__node_error(err, node, CAMD_E_INVALID, "missing input %s", names[i]);
  }
  if (!data || t != CAMD_FLOAT32) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "input %s must be a float32 constant initializer", names[i]);
  }
  if ((int64_t)camd_shape_count(&s) != d) {
    char buf[96];
    camd_shape_format(&s, buf, sizeof(buf));
    return camd__node_error(err, node, CAMD_E_SHAPE,
                            "input %s has shape %s, expected the %lld values of one normalised row",
                            names[i], buf, (long long)d);
  }
  *out = data;
  return 0;
}

static int ln_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  if (node->n_in < 2 || node->n_in > 3 || node->in[0] < 0 || node->in[1] < 0) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects inputs X, Scale and optional B");
  }
  if (node->n_out != 1) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "the Mean and InvStdDev outputs (training) are not supported");
  }
  camd_shape xs;
  camd_dtype xt;
  const void *xd;
  if (camd__node_input(g, node, 0, &xs, &xt, &xd)) {
    return camd__node_error(err, node, CAMD_E_INVALID, "missing input X");
  }
  if (xt != CAMD_FLOAT32) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED, "only float32 input is supported");
  }
  int64_t axis = -1;
  float eps = 1e-5f;
  int rc = camd__attr_int(node, "axis", -1, &axis, err);
  if (!rc) rc = camd__attr_float(node, "epsilon", 1e-5f, &eps, err);
  if (rc) return rc;
  if (xs.ndim < 1 || axis < -xs.ndim || axis >= xs.ndim) {
    return camd__node_error(err, node, CAMD_E_INVALID, "axis %lld is out of range for rank %d",
                            (long long)axis, xs.ndim);
  }
  if (axis < 0) axis += xs.ndim;
  if (!(eps >= 0.f)) {
    return camd__node_error(err, node, CAMD_E_INVALID, "epsilon must be >= 0");
  }
  int64_t d = 1;
  for (int i = (int)axis; i < xs.ndim; i++) d *= xs.dims[i];
  if (d < 1) return camd__node_error(err, node, CAMD_E_SHAPE, "normalised rows are empty");
  const float *scale, *bias;
  rc = ln_const_input(g, node, 1, d, &scale, err);
  if (!rc) rc = ln_const_input(g, node, 2, d, &bias, err);
  if (rc) return rc;
  ln_params *p = camd__node_params_alloc(g, sizeof(*p) + 2 * (size_t)d * sizeof(float));
  if (!p) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  p->axis = (int)axis;
  p->ndim = xs.ndim;
  p->d = d;
  p->eps = eps;
  p->scale = (float *)(p + 1);
  p->bias = p->scale + d;
  memcpy(p->scale, scale, (size_t)d * sizeof(float));
  if (bias) memcpy(p->bias, bias, (size_t)d * sizeof(float));
  node->params = p;
  /* Normalising over the batch axis mixes batch items: run one item at a time. */
  if (axis == 0 && (node->in_batched & 1u)) camd__node_mark_batch_mixed(g);
  return 0;
}

static int ln_infer(const camd_node *node, const camd_shape *in, camd_shape *out, camd_error *err) {
  const ln_params *p = node->params;
  if (!p) return camd__node_error(err, node, CAMD_E_STATE, "not prepared");
  int64_t d = 1;
  for (int i = p->axis; i < in[0].ndim; i++) d *= in[0].dims[i];
  if (in[0].ndim != p->ndim || d != p->d) {
    char buf[96];
    camd_shape_format(&in[0], buf, sizeof(buf));
    return camd__node_error(err, node, CAMD_E_SHAPE,
                            "input X %s does not match the shape the node was loaded with", buf);
  }
  out[0] = in[0];
  return 0;
}

const camd_op_desc camd__op_layernormalization = {.op_type = "LayerNormalization",
                                                  .opset_min = 17,
                                                  .opset_max = 22,
                                                  .prepare = ln_prepare,
                                                  .infer = ln_infer,
                                                  .forward = ln_forward,
                                                  .backward = ln_backward,
                                                  .bwd_needs_inputs = CAMD_IN(0),
                                                  .bwd_needs_outputs = false,
                                                  .grad_inputs = CAMD_IN(0)};
