/* Elementwise activations Relu, LeakyRelu, Clip, Sigmoid, HardSigmoid, HardSwish, Tanh, Erf,
 * Gelu, Sqrt, Pow (constant scalar exponent), Identity and Dropout (inference only): forward and
 * input-gradient backward.
 *
 * Gradients at kinks follow PyTorch: Relu passes where y > 0, LeakyRelu uses the slope 1 only
 * where x > 0, Clip/HardSigmoid pass strictly inside the linear range (hardtanh's rule), and
 * HardSwish uses x/3 + 1/2 on [-3, 3]. Every kernel is one flat loop over the tensor.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/cpu.h"
#include "engine/op.h"
#include "engine/pool.h"

typedef struct act_params {
  float alpha, beta; /* LeakyRelu alpha; HardSigmoid alpha, beta; Pow exponent (alpha) */
  bool tanh_approx;  /* Gelu approximate = "tanh" */
  float lo, hi;      /* Clip range */
} act_params;

static size_t act_count(const camd_op_ctx *ctx) {
  return camd_shape_count(&ctx->in[0].shape);
}

static int act_check_io(const camd_node *node, int max_in, camd_error *err) {
  if (node->n_in < 1 || node->n_in > max_in || node->in[0] < 0) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects 1 to %d inputs, got %d", max_in,
                            node->n_in);
  }
  if (node->n_out != 1) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED, "expects 1 output, got %d", node->n_out);
  }
  return 0;
}

/* Input 0 must be float32. */
static int act_check_float(camd_graph *g, const camd_node *node, camd_error *err) {
  camd_shape s;
  camd_dtype dt;
  const void *data;
  int rc = camd__node_input(g, node, 0, &s, &dt, &data);
  if (rc) return camd__node_error(err, node, rc, "input 0 is missing");
  if (dt != CAMD_FLOAT32) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED, "input 0 is not float32");
  }
  return 0;
}

static int act_prepare_plain(camd_graph *g, camd_node *node, camd_error *err) {
  int rc = act_check_io(node, 1, err);
  return rc ? rc : act_check_float(g, node, err);
}

static act_params *act_params_new(camd_graph *g, camd_node *node, camd_error *err) {
  act_params *p = camd__node_params_alloc(g, sizeof *p);
  if (!p) camd__node_error(err, node, CAMD_E_NOMEM, "out of memory");
  node->params = p;
  return p;
}

static int act_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                     camd_error *err) {
  (void)node;
  (void)err;
  out[0] = in[0];
  return 0;
}

/* ---- Relu ---- */
static void relu_range(void *arg, int64_t b, int64_t e) {
  const camd_op_ctx *ctx = arg;
  const float *restrict x = ctx->in[0].data;
  float *restrict y = ctx->out[0].data;
  for (int64_t i = b; i < e; i++) y[i] = x[i] > 0.f ? x[i] : 0.f;
}

static void relu_forward(const camd_op_ctx *ctx) {
  camd__pool_range(ctx->pool, (int64_t)act_count(ctx), CAMD_POOL_CHUNK, relu_range, (void *)ctx);
}

static void relu_backward(const camd_op_ctx *ctx) {
  const float *y = ctx->out[0].data, *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  size_t n = act_count(ctx);
  if (ctx->guided) {
    for (size_t i = 0; i < n; i++) gx[i] += y[i] > 0.f && gy[i] > 0.f ? gy[i] : 0.f;
    return;
  }
  for (size_t i = 0; i < n; i++) gx[i] += y[i] > 0.f ? gy[i] : 0.f;
}

/* ---- LeakyRelu ---- */
static int leakyrelu_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  int rc = act_prepare_plain(g, node, err);
  if (rc) return rc;
  act_params *p = act_params_new(g, node, err);
  if (!p) return CAMD_E_NOMEM;
  return camd__attr_float(node, "alpha", 0.01f, &p->alpha, err);
}

static void leakyrelu_forward(const camd_op_ctx *ctx) {
  const act_params *p = ctx->params;
  const float *x = ctx->in[0].data;
  float *y = ctx->out[0].data;
  const float alpha = p->alpha;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) y[i] = x[i] >= 0.f ? x[i] : alpha * x[i];
}

static void leakyrelu_backward(const camd_op_ctx *ctx) {
  const act_params *p = ctx->params;
  const float *x = ctx->in[0].data, *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  const float alpha = p->alpha;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) gx[i] += x[i] > 0.f ? gy[i] : alpha * gy[i];
}

/* ---- Clip ---- */
/* Opset 11+: optional scalar constant input `which` (1 = min, 2 = max) into *v. */
static int clip_bound_input(camd_graph *g, const camd_node *node, int which, float *v,
                            camd_error *err) {
  if (node->n_in <= which || node->in[which] < 0) return 0;
  camd_shape s;
  camd_dtype dt;
  const void *data;
  const char *what = which == 1 ? "min" : "max";
  int rc = camd__node_input(g, node, which, &s, &dt, &data);
  if (rc) return camd__node_error(err, node, rc, "input '%s' is missing", what);
  if (!data || !(node->in_const & (1u << which))) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "input '%s' must be a constant (computed bounds are not supported)",
                            what);
  }
  if (dt != CAMD_FLOAT32 || camd_shape_count(&s) != 1) {
    return camd__node_error(err, node, CAMD_E_INVALID, "input '%s' must be a float32 scalar", what);
  }
  *v = *(const float *)data;
  return 0;
}

static int clip_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  int rc = act_check_io(node, node->opset >= 11 ? 3 : 1, err);
  if (!rc) rc = act_check_float(g, node, err);
  if (rc) return rc;
  act_params *p = act_params_new(g, node, err);
  if (!p) return CAMD_E_NOMEM;
  p->lo = -FLT_MAX;
  p->hi = FLT_MAX;
  if (node->opset < 11) {
    rc = camd__attr_float(node, "min", -FLT_MAX, &p->lo, err);
    if (!rc) rc = camd__attr_float(node, "max", FLT_MAX, &p->hi, err);
  } else {
    rc = clip_bound_input(g, node, 1, &p->lo, err);
    if (!rc) rc = clip_bound_input(g, node, 2, &p->hi, err);
  }
  return rc;
}

static void clip_range(void *arg, int64_t b, int64_t e) {
  const camd_op_ctx *ctx = arg;
  const act_params *p = ctx->params;
  const float *restrict x = ctx->in[0].data;
  float *restrict y = ctx->out[0].data;
  const float lo = p->lo, hi = p->hi;
  /* NaN propagates; min > max gives max everywhere (ONNX). */
  for (int64_t i = b; i < e; i++) {
    float v = x[i] < lo ? lo : x[i];
    y[i] = v > hi ? hi : v;
  }
}

static void clip_forward(const camd_op_ctx *ctx) {
  camd__pool_range(ctx->pool, (int64_t)act_count(ctx), CAMD_POOL_CHUNK, clip_range, (void *)ctx);
}

static void clip_backward(const camd_op_ctx *ctx) {
  const act_params *p = ctx->params;
  const float *x = ctx->in[0].data, *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  const float lo = p->lo, hi = p->hi;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) gx[i] += (x[i] > lo && x[i] < hi) ? gy[i] : 0.f;
}

/* ---- Sigmoid ----
 * y = 1 / (1 + exp(-x)) with exp as Cephes' expf: e^t = 2^k * p(r), k = round(t * log2 e) (by
 * the 1.5 * 2^23 trick: round to nearest even), r = t - k ln 2 in two exact-ish parts, p a
 * degree-7 polynomial (about 1 ulp). t is clamped to [-87, 88] so 2^k stays a normal float (the
 * result is then off by less than 1e-38 in absolute terms). Plain C compiled once per instruction
 * set and vectorised by the compiler: the same operations in the same order on every path (no
 * FMA contraction in ISO C mode), so generic, AVX2 and AVX-512 give the same bits. About 15x
 * faster than glibc's expf in a scalar loop. no-trapping-math only lets the compiler turn the
 * clamps into blends (no effect on any result). */
#define SIGMOID_KERNEL(NAME, TARGET)                                               \
  static TARGET void NAME(const float *restrict x, float *restrict y, int64_t n) { \
    for (int64_t i = 0; i < n; i++) {                                              \
      float t = -x[i];                                                             \
      t = t > -87.0f ? t : -87.0f;                                                 \
      t = t < 88.0f ? t : 88.0f;                                                   \
      const float k = (t * 1.44269504088896341f + 12582912.0f) - 12582912.0f;      \
      float r = t - k * 0.693359375f;                                              \
      r = r - k * -2.12194440e-4f;                                                 \
      const float z = r * r;                                                       \
      float p = 1.9875691500e-4f;                                                  \
      p = p * r + 1.3981999507e-3f;                                                \
      p = p * r + 8.3334519073e-3f;                                                \
      p = p * r + 4.1665795894e-2f;                                                \
      p = p * r + 1.6666665459e-1f;                                                \
      p = p * r + 5.0000001201e-1f;                                                \
      p = p * z + r + 1.0f;                                                        \
      const int32_t bits = ((int32_t)k + 127) << 23;                               \
      float scale;                                                                 \
      memcpy(&scale, &bits, sizeof scale);                                         \
      y[i] = 1.0f / (1.0f + p * scale);                                            \
    }                                                                              \
  }
SIGMOID_KERNEL(sigmoid_generic, __attribute__((optimize("no-trapping-math"))))
#if defined(__x86_64__)
SIGMOID_KERNEL(sigmoid_avx2, __attribute__((target("avx2,fma"), optimize("no-trapping-math"))))
SIGMOID_KERNEL(sigmoid_avx512, __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"),
                                              optimize("no-trapping-math"))))
#endif

typedef void (*sigmoid_fn)(const float *restrict x, float *restrict y, int64_t n);

typedef struct sigmoid_job {
  const float *x;
  float *y;
  sigmoid_fn fn;
  bool silu; /* y = x * sigmoid(x) */
} sigmoid_job;

static void sigmoid_range(void *arg, int64_t b, int64_t e) {
  const sigmoid_job *j = arg;
  if (!j->silu) {
    j->fn(j->x + b, j->y + b, e - b);
    return;
  }
  /* SiLU: sigmoid into a tile on the stack (stored as float, as the Sigmoid op stores it), then
   * the Mul's one product while the tile is in L1. (One loop doing both, the sigmoid kernel
   * ending in x * s, measured 3x slower than the two ops apart on this AMD EPYC; not analysed.) */
  enum { TILE = 1024 };
  float s[TILE];
  for (int64_t t = b; t < e; t += TILE) {
    const int64_t n = e - t < TILE ? e - t : TILE;
    const float *x = j->x + t;
    float *y = j->y + t;
    j->fn(x, s, n);
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * s[i];
  }
}

/* With the plan's SiLU fusion (plan.c: ctx->post is CAMD_POST_MUL_INPUT) the output is the
 * Mul's: x · σ(x), σ(x) rounded to float first as the Sigmoid would store it, then the one float
 * product the Mul would compute (the same bits as the two ops). */
static void sigmoid_forward(const camd_op_ctx *ctx) {
  const bool silu = ctx->post && ctx->post->kind == CAMD_POST_MUL_INPUT;
  sigmoid_job j = {ctx->in[0].data, ctx->out[0].data, sigmoid_generic, silu};
#if defined(__x86_64__)
  const camd__cpu_level level = camd__cpu();
  if (level == CAMD_CPU_AVX512) j.fn = sigmoid_avx512;
  if (level == CAMD_CPU_AVX2) j.fn = sigmoid_avx2;
#endif
  camd__pool_range(ctx->pool, (int64_t)act_count(ctx), CAMD_POOL_CHUNK, sigmoid_range, &j);
}

static void sigmoid_backward(const camd_op_ctx *ctx) {
  const float *y = ctx->out[0].data, *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) gx[i] += gy[i] * (1.f - y[i]) * y[i];
}

/* ---- HardSigmoid: y = max(0, min(1, alpha*x + beta)) ---- */
static int hardsigmoid_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  int rc = act_prepare_plain(g, node, err);
  if (rc) return rc;
  act_params *p = act_params_new(g, node, err);
  if (!p) return CAMD_E_NOMEM;
  rc = camd__attr_float(node, "alpha", 0.2f, &p->alpha, err);
  if (!rc) rc = camd__attr_float(node, "beta", 0.5f, &p->beta, err);
  return rc;
}

static void hardsigmoid_forward(const camd_op_ctx *ctx) {
  const act_params *p = ctx->params;
  const float *x = ctx->in[0].data;
  float *y = ctx->out[0].data;
  const float alpha = p->alpha, beta = p->beta;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) {
    float t = alpha * x[i] + beta;
    t = t > 0.f ? t : 0.f;
    y[i] = t < 1.f ? t : 1.f;
  }
}

static void hardsigmoid_backward(const camd_op_ctx *ctx) {
  const act_params *p = ctx->params;
  const float *x = ctx->in[0].data, *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  const float alpha = p->alpha, beta = p->beta;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) {
    float t = alpha * x[i] + beta;
    gx[i] += (t > 0.f && t < 1.f) ? alpha * gy[i] : 0.f;
  }
}

/* ---- HardSwish: y = x * relu6(x + 3) / 6 ---- */
static void hardswish_forward(const camd_op_ctx *ctx) {
  const float *x = ctx->in[0].data;
  float *y = ctx->out[0].data;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) {
    float t = x[i] + 3.f;
    t = t > 0.f ? t : 0.f;
    t = t < 6.f ? t : 6.f;
    y[i] = x[i] * t / 6.f;
  }
}

static void hardswish_backward(const camd_op_ctx *ctx) {
  const float *x = ctx->in[0].data, *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) {
    float d = x[i] < -3.f ? 0.f : (x[i] <= 3.f ? x[i] / 3.f + 0.5f : 1.f);
    gx[i] += gy[i] * d;
  }
}

/* ---- Tanh ---- */
static void tanh_forward(const camd_op_ctx *ctx) {
  const float *x = ctx->in[0].data;
  float *y = ctx->out[0].data;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

static void tanh_backward(const camd_op_ctx *ctx) {
  const float *y = ctx->out[0].data, *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) gx[i] += gy[i] * (1.f - y[i] * y[i]);
}

/* ---- Erf (the exact GELU's pattern: x * 0.5 * (1 + erf(x / sqrt 2))) ---- */
static void erf_forward(const camd_op_ctx *ctx) {
  const float *x = ctx->in[0].data;
  float *y = ctx->out[0].data;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) y[i] = erff(x[i]);
}

static void erf_backward(const camd_op_ctx *ctx) {
  const float *x = ctx->in[0].data, *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  size_t n = act_count(ctx);
  const float c = 1.1283791670955126f; /* 2 / sqrt(pi) */
  for (size_t i = 0; i < n; i++) gx[i] += gy[i] * c * expf(-x[i] * x[i]);
}

/* ---- Gelu (opset 20): approximate "none" (erf) or "tanh" ---- */
static int gelu_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  int rc = act_prepare_plain(g, node, err);
  if (rc) return rc;
  act_params *p = act_params_new(g, node, err);
  if (!p) return CAMD_E_NOMEM;
  const char *a = camd__attr_string(node, "approximate", "none");
  if (strcmp(a, "none") != 0 && strcmp(a, "tanh") != 0) {
    return camd__node_error(err, node, CAMD_E_INVALID,
                            "approximate must be \"none\" or \"tanh\", got \"%s\"", a);
  }
  p->tanh_approx = strcmp(a, "tanh") == 0;
  return 0;
}

#define GELU_K 0.7978845608028654 /* sqrt(2 / pi) */
static void gelu_forward(const camd_op_ctx *ctx) {
  const act_params *p = ctx->params;
  const float *x = ctx->in[0].data;
  float *y = ctx->out[0].data;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) {
    const double v = x[i];
    const double c = p->tanh_approx ? 0.5 * (1.0 + tanh(GELU_K * (v + 0.044715 * v * v * v)))
                                    : 0.5 * (1.0 + erf(v * 0.7071067811865476));
    y[i] = (float)(v * c);
  }
}

static void gelu_backward(const camd_op_ctx *ctx) {
  const act_params *p = ctx->params;
  const float *x = ctx->in[0].data, *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) {
    const double v = x[i];
    double d;
    if (p->tanh_approx) {
      const double t = tanh(GELU_K * (v + 0.044715 * v * v * v));
      d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * GELU_K * (1.0 + 3.0 * 0.044715 * v * v);
    } else {
      d = 0.5 * (1.0 + erf(v * 0.7071067811865476)) + v * exp(-0.5 * v * v) * 0.3989422804014327;
    }
    gx[i] += (float)(gy[i] * d);
  }
}

/* ---- Sqrt ---- */
static void sqrt_forward(const camd_op_ctx *ctx) {
  const float *x = ctx->in[0].data;
  float *y = ctx->out[0].data;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) y[i] = sqrtf(x[i]);
}

static void sqrt_backward(const camd_op_ctx *ctx) {
  const float *y = ctx->out[0].data, *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) gx[i] += gy[i] * 0.5f / y[i];
}

/* ---- Pow with a constant scalar exponent (the decomposed LayerNorm's x^2) ----
 * Exponent 2 is x * x (as PyTorch's pow(x, 2)); others powf. Gradient to the base only. */
static int pow_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  if (node->n_in != 2 || node->in[0] < 0 || node->in[1] < 0 || node->n_out != 1) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects inputs X, Y and one output");
  }
  int rc = act_check_float(g, node, err);
  if (rc) return rc;
  camd_shape s;
  camd_dtype dt;
  const void *data;
  rc = camd__node_input(g, node, 1, &s, &dt, &data);
  if (rc) return camd__node_error(err, node, rc, "input 'Y' is missing");
  if (!data || !(node->in_const & CAMD_IN(1)) || camd_shape_count(&s) != 1) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "the exponent must be a constant scalar (computed or per-element "
                            "exponents are not supported)");
  }
  act_params *p = act_params_new(g, node, err);
  if (!p) return CAMD_E_NOMEM;
  p->alpha = dt == CAMD_INT64 ? (float)*(const int64_t *)data : *(const float *)data;
  return 0;
}

static int pow_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                     camd_error *err) {
  return camd__broadcast_shape(&in[0], &in[1], &out[0]) == 0
             ? 0
             : camd__node_error(err, node, CAMD_E_SHAPE, "exponent does not broadcast");
}

static void pow_forward(const camd_op_ctx *ctx) {
  const act_params *p = ctx->params;
  const float *x = ctx->in[0].data;
  float *y = ctx->out[0].data;
  const float e = p->alpha;
  size_t n = act_count(ctx);
  if (e == 2.f) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] * x[i];
  } else {
    for (size_t i = 0; i < n; i++) y[i] = powf(x[i], e);
  }
}

static void pow_backward(const camd_op_ctx *ctx) {
  const act_params *p = ctx->params;
  const float *x = ctx->in[0].data, *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  const float e = p->alpha;
  size_t n = act_count(ctx);
  if (e == 2.f) {
    for (size_t i = 0; i < n; i++) gx[i] += gy[i] * 2.f * x[i];
  } else {
    for (size_t i = 0; i < n; i++) gx[i] += gy[i] * e * powf(x[i], e - 1.f);
  }
}

/* ---- Identity / Dropout (inference: identity) ---- */
static void copy_forward(const camd_op_ctx *ctx) {
  memcpy(ctx->out[0].data, ctx->in[0].data, act_count(ctx) * sizeof(float));
}

static void copy_backward(const camd_op_ctx *ctx) {
  const float *gy = ctx->grad_out[0].data;
  float *gx = ctx->grad_in[0].data;
  if (!gy || !gx) return;
  size_t n = act_count(ctx);
  for (size_t i = 0; i < n; i++) gx[i] += gy[i];
}

/* Dropout: inference only. `ratio` (input 1 from opset 12, attribute before) is ignored; a
 * constant true `training_mode` (input 2) or the `mask` output cannot be honoured. Before
 * opset 7 the `is_test` attribute is ignored: an inference engine always runs the test mode. */
static int dropout_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  if (node->n_in < 1 || node->n_in > 3 || node->in[0] < 0) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects 1 to 3 inputs, got %d", node->n_in);
  }
  if (node->n_out < 1 || node->n_out > 2) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects 1 or 2 outputs, got %d",
                            node->n_out);
  }
  if (node->n_out == 2) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "the 'mask' output is not supported (inference engine)");
  }
  int rc = act_check_float(g, node, err);
  if (rc) return rc;
  if (node->n_in == 3 && node->in[2] >= 0) {
    camd_shape s;
    camd_dtype dt;
    const void *data;
    rc = camd__node_input(g, node, 2, &s, &dt, &data);
    if (rc) return camd__node_error(err, node, rc, "input 'training_mode' is missing");
    if (!data) {
      return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                              "input 'training_mode' must be a constant false");
    }
    bool on = false;
    size_t n = camd_shape_count(&s);
    for (size_t i = 0; i < n; i++) {
      if (dt == CAMD_INT64 ? ((const int64_t *)data)[i] != 0 : ((const float *)data)[i] != 0.f) {
        on = true;
      }
    }
    if (on) {
      return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                              "training_mode=true is not supported (inference engine)");
    }
  }
  return 0;
}

#define ACT_DESC_POST(name, lo, hi, prep, fwd, bwd, needs_in, needs_out, post)                     \
  {                                                                                                \
    .op_type = name, .opset_min = lo, .opset_max = hi, .prepare = prep, .infer = act_infer,        \
    .forward = fwd, .backward = bwd, .bwd_needs_inputs = needs_in, .bwd_needs_outputs = needs_out, \
    .grad_inputs = 0x1, .as_post_op = post                                                         \
  }
#define ACT_DESC(name, lo, hi, prep, fwd, bwd, needs_in, needs_out) \
  ACT_DESC_POST(name, lo, hi, prep, fwd, bwd, needs_in, needs_out, NULL)

/* Relu and Clip as a producer's post-op (plan-time fusion; same float operations). */
static bool relu_as_post_op(const camd_node *n, camd_post_op *po) {
  (void)n;
  *po = (camd_post_op){CAMD_POST_RELU, 0.0f, 0.0f};
  return true;
}

static bool clip_as_post_op(const camd_node *n, camd_post_op *po) {
  const act_params *p = n->params;
  if (!p) return false;
  *po = (camd_post_op){CAMD_POST_CLIP, p->lo, p->hi};
  return true;
}

/* Opset ranges: later versions of these ops only add types (bfloat16, float8, optional). */
const camd_op_desc camd__op_relu = ACT_DESC_POST("Relu", 1, 22, act_prepare_plain, relu_forward,
                                                 relu_backward, 0, true, relu_as_post_op);
const camd_op_desc camd__op_leakyrelu = ACT_DESC("LeakyRelu", 1, 22, leakyrelu_prepare,
                                                 leakyrelu_forward, leakyrelu_backward, 1, false);
/* 1..10: min/max attributes; 11..22: optional constant inputs. */
const camd_op_desc camd__op_clip = ACT_DESC_POST("Clip", 1, 22, clip_prepare, clip_forward,
                                                 clip_backward, 1, false, clip_as_post_op);
const camd_op_desc camd__op_sigmoid =
    ACT_DESC("Sigmoid", 1, 22, act_prepare_plain, sigmoid_forward, sigmoid_backward, 0, true);
const camd_op_desc camd__op_hardsigmoid = ACT_DESC(
    "HardSigmoid", 1, 22, hardsigmoid_prepare, hardsigmoid_forward, hardsigmoid_backward, 1, false);
const camd_op_desc camd__op_hardswish = ACT_DESC("HardSwish", 14, 22, act_prepare_plain,
                                                 hardswish_forward, hardswish_backward, 1, false);
const camd_op_desc camd__op_tanh =
    ACT_DESC("Tanh", 1, 22, act_prepare_plain, tanh_forward, tanh_backward, 0, true);
const camd_op_desc camd__op_identity =
    ACT_DESC("Identity", 1, 22, act_prepare_plain, copy_forward, copy_backward, 0, false);
const camd_op_desc camd__op_dropout =
    ACT_DESC("Dropout", 1, 22, dropout_prepare, copy_forward, copy_backward, 0, false);
const camd_op_desc camd__op_erf =
    ACT_DESC("Erf", 9, 22, act_prepare_plain, erf_forward, erf_backward, 1, false);
const camd_op_desc camd__op_gelu =
    ACT_DESC("Gelu", 20, 22, gelu_prepare, gelu_forward, gelu_backward, 1, false);
const camd_op_desc camd__op_sqrt =
    ACT_DESC("Sqrt", 6, 22, act_prepare_plain, sqrt_forward, sqrt_backward, 0, true);
/* Pow: the output must have X's shape (a scalar exponent); bit 1 of grad_inputs is clear. */
const camd_op_desc camd__op_pow = {.op_type = "Pow",
                                   .opset_min = 7,
                                   .opset_max = 22,
                                   .prepare = pow_prepare,
                                   .infer = pow_infer,
                                   .forward = pow_forward,
                                   .backward = pow_backward,
                                   .bwd_needs_inputs = CAMD_IN(0),
                                   .grad_inputs = CAMD_IN(0)};
