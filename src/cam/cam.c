/* CAM front door: method table, request checks, workspace, per-method dispatch, aug_smooth,
 * post-processing and the box IoU metric.
 *
 * One compute call = one image and several target classes. Gradient methods run one forward
 * (retaining the target layer, backward target = layer) and one partial backward per class,
 * seeded with d score / d output. The other methods combine the activation with weights from
 * the model head (`cam`), from extra batched forwards (Score-CAM family, Ablation-CAM) or from
 * a principal component (Eigen-CAM). Maps are returned raw, at the layer's resolution.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cam/cam_internal.h"
#include "camd/core.h"

/* ---- method table ---- */

static const struct {
  const char *name;
  bool grad;
  const char *desc;
} methods[] = {
#define CAMD__CAM_ROW(e, name, grad, desc) {name, grad, desc},
    CAMD_CAM_METHODS(CAMD__CAM_ROW)
#undef CAMD__CAM_ROW
};

int camd_cam_method_parse(const char *name, camd_cam_method *out, camd_error *err) {
  if (name) {
    for (int i = 0; i < CAMD_CAM_METHOD_COUNT; i++) {
      if (strcmp(name, methods[i].name) == 0) {
        *out = (camd_cam_method)i;
        return 0;
      }
    }
  }
  char list[512];
  size_t pos = 0;
  list[0] = '\0';
  for (int i = 0; i < CAMD_CAM_METHOD_COUNT && pos < sizeof(list); i++) {
    int n = snprintf(list + pos, sizeof(list) - pos, "%s%s", i ? ", " : "", methods[i].name);
    if (n < 0) break;
    pos += (size_t)n;
  }
  return camd_error_set(err, CAMD_E_INVALID, "unknown CAM method '%s'; methods are: %s",
                        name ? name : "(null)", list);
}

const char *camd_cam_method_name(camd_cam_method m) {
  return (unsigned)m < CAMD_CAM_METHOD_COUNT ? methods[m].name : "unknown";
}

const char *camd_cam_method_description(camd_cam_method m) {
  return (unsigned)m < CAMD_CAM_METHOD_COUNT ? methods[m].desc : "unknown method";
}

bool camd_cam_method_needs_gradient(camd_cam_method m) {
  return (unsigned)m < CAMD_CAM_METHOD_COUNT && methods[m].grad;
}

void camd_cam_request_init(camd_cam_request *r) {
  memset(r, 0, sizeof(*r));
  r->method = CAMD_CAM_GRADCAM;
  r->layer = -1;
  r->output = -1;
  r->score = CAMD_SCORE_LOGIT;
  r->n_samples = 8;
  r->noise_std = 0.3f;
  r->seed = 0;
  r->max_batch = 16;
  r->finer_alpha = 1.0f;
  r->finer_compare = 3;
}

/* ---- workspace: chain of blocks used as a bump allocator ---- */

struct camd__ws_block {
  camd__ws_block *next;
  size_t cap, used; /* bytes */
  unsigned char *data;
};

#define WS_ALIGN 64
#define WS_MIN_BLOCK ((size_t)4 << 20)

int camd_cam_workspace_create(camd_cam_workspace **out, camd_error *err) {
  *out = calloc(1, sizeof(**out));
  if (!*out) return camd_error_set(err, CAMD_E_NOMEM, "out of memory creating a CAM workspace");
  return 0;
}

void camd_cam_workspace_destroy(camd_cam_workspace *w) {
  if (!w) return;
  camd__ws_block *b = w->head;
  while (b) {
    camd__ws_block *next = b->next;
    free(b->data);
    free(b);
    b = next;
  }
  free(w->fused);
  free(w->fused_logits);
  free(w);
}

static void ws_rewind(camd_cam_workspace *w) {
  for (camd__ws_block *b = w->head; b; b = b->next) b->used = 0;
  w->cur = w->head;
}

static void *ws_bytes(camd_cam_workspace *w, size_t bytes) {
  if (bytes > SIZE_MAX - WS_ALIGN) return NULL;
  bytes = (bytes + WS_ALIGN - 1) / WS_ALIGN * WS_ALIGN;
  if (bytes == 0) bytes = WS_ALIGN;
  while (w->cur && w->cur->cap - w->cur->used < bytes) w->cur = w->cur->next;
  if (!w->cur) {
    camd__ws_block *b = calloc(1, sizeof(*b));
    if (!b) return NULL;
    b->cap = bytes > WS_MIN_BLOCK ? bytes : WS_MIN_BLOCK;
    b->data = aligned_alloc(WS_ALIGN, b->cap);
    if (!b->data) {
      free(b);
      return NULL;
    }
    /* Append at the end of the chain: earlier blocks keep their order for the next call. */
    camd__ws_block **tail = &w->head;
    while (*tail) tail = &(*tail)->next;
    *tail = b;
    w->cur = b;
  }
  void *p = w->cur->data + w->cur->used;
  w->cur->used += bytes;
  return p;
}

void *camd__ws_array(camd_cam_workspace *w, size_t n, size_t size) {
  size_t bytes;
  if (!camd_size_mul(n, size, &bytes)) return NULL;
  return ws_bytes(w, bytes);
}

float *camd__ws_floats(camd_cam_workspace *w, size_t n) {
  return camd__ws_array(w, n, sizeof(float));
}

double *camd__ws_doubles(camd_cam_workspace *w, size_t n) {
  return camd__ws_array(w, n, sizeof(double));
}

/* ---- scores ---- */

void camd__score_seed(camd_cam_score score, const float *logits, int n_out, int c, float *seed) {
  memset(seed, 0, sizeof(float) * (size_t)n_out);
  if (score == CAMD_SCORE_SOFTMAX) {
    double mx = logits[0], sum = 0.0;
    for (int j = 1; j < n_out; j++) mx = logits[j] > mx ? logits[j] : mx;
    for (int j = 0; j < n_out; j++) sum += exp((double)logits[j] - mx);
    double pc = exp((double)logits[c] - mx) / sum;
    /* d p_c / d z_j = p_c (δ_cj − p_j) */
    for (int j = 0; j < n_out; j++) {
      double pj = exp((double)logits[j] - mx) / sum;
      seed[j] = (float)(pc * ((j == c ? 1.0 : 0.0) - pj));
    }
  } else if (score == CAMD_SCORE_SIGMOID) {
    double sg = 1.0 / (1.0 + exp(-(double)logits[c]));
    seed[c] = (float)(sg * (1.0 - sg));
  } else {
    seed[c] = 1.0f;
  }
}

double camd__score_value(camd_cam_score score, const float *logits, int n_out, int c) {
  if (score == CAMD_SCORE_SOFTMAX) {
    double mx = logits[0], sum = 0.0;
    for (int j = 1; j < n_out; j++) mx = logits[j] > mx ? logits[j] : mx;
    for (int j = 0; j < n_out; j++) sum += exp((double)logits[j] - mx);
    return exp((double)logits[c] - mx) / sum;
  }
  if (score == CAMD_SCORE_SIGMOID) return 1.0 / (1.0 + exp(-(double)logits[c]));
  return logits[c];
}

static double dot_norms(const float *out, const float *ref, size_t n, double *xx, double *rr) {
  double xr = 0.0, a = 0.0, b = 0.0;
  for (size_t i = 0; i < n; i++) {
    xr += (double)out[i] * ref[i];
    a += (double)out[i] * out[i];
    b += (double)ref[i] * ref[i];
  }
  *xx = a;
  *rr = b;
  return xr;
}

void camd__target_seed(const camd_cam_request *req, int k, const float *out, int n_out,
                       float *seed) {
  const camd_cam_target *t = req->targets ? &req->targets[k] : NULL;
  if (!t || t->kind == CAMD_TARGET_CLASS) {
    camd__score_seed(req->score, out, n_out, req->classes[k], seed);
    return;
  }
  memset(seed, 0, sizeof(float) * (size_t)n_out);
  if (t->kind == CAMD_TARGET_WEIGHTED) {
    memcpy(seed + t->offset, t->weights, sizeof(float) * t->count);
    return;
  }
  /* d cos / d x = r / (|x| |r|) - cos x / |x|^2 (zero where |x| |r| is below 1e-8) */
  double xx, rr, xr = dot_norms(out, t->weights, t->count, &xx, &rr);
  double nx = sqrt(xx), nr = sqrt(rr);
  if (nx * nr <= 1e-8) return;
  double cs = xr / (nx * nr);
  for (size_t i = 0; i < t->count; i++)
    seed[i] = (float)((double)t->weights[i] / (nx * nr) - cs * (double)out[i] / xx);
}

double camd__target_value(const camd_cam_request *req, int k, const float *out, int n_out) {
  const camd_cam_target *t = req->targets ? &req->targets[k] : NULL;
  if (!t || t->kind == CAMD_TARGET_CLASS)
    return camd__score_value(req->score, out, n_out, req->classes[k]);
  if (t->kind == CAMD_TARGET_WEIGHTED) {
    double acc = 0.0;
    for (size_t i = 0; i < t->count; i++) acc += (double)t->weights[i] * out[t->offset + i];
    return acc;
  }
  double xx, rr, xr = dot_norms(out, t->weights, t->count, &xx, &rr);
  double d = sqrt(xx) * sqrt(rr);
  return xr / (d > 1e-8 ? d : 1e-8);
}

/* ---- map helpers ---- */

void camd__weighted_sum(const float *act, const double *weights, int channels, int hw, float *map) {
  for (int p = 0; p < hw; p++) {
    double acc = 0.0;
    for (int c = 0; c < channels; c++) acc += weights[c] * act[(size_t)c * hw + p];
    map[p] = (float)acc;
  }
}

void camd__channel_sum(const float *x, int channels, int hw, float *map) {
  for (int p = 0; p < hw; p++) {
    double acc = 0.0;
    for (int c = 0; c < channels; c++) acc += x[(size_t)c * hw + p];
    map[p] = (float)acc;
  }
}

int camd__backward(camd__cam_ctx *ctx, const float *seed, camd_error *err) {
  uint64_t t0 = camd_now_ns();
  int rc = camd_session_backward(ctx->s, ctx->req->output, seed, err);
  ctx->ns_backward += camd_now_ns() - t0;
  return rc;
}

/* finercam's seed: d S / d z for S = N / D, N = Σ_k p_k (z_c − α z_k), D = Σ_k p_k + 1e-9 over
 * the comparison classes k (the finer_compare classes ≠ c nearest z_c in logit; ties: lower
 * index), p = softmax(z) (pytorch-grad-cam's FinerWeightedTarget, weights differentiated). */
static int finer_seed(camd__cam_ctx *ctx, const float *z, int c, float *seed) {
  const int n = ctx->n_out, want = ctx->req->finer_compare;
  const double alpha = ctx->req->finer_alpha;
  int *cmp = ctx->finer_classes;
  int nk = 0;
  for (; nk < want; nk++) {
    int best = -1;
    double bd = 0.0;
    for (int j = 0; j < n; j++) {
      bool taken = j == c;
      for (int i = 0; i < nk && !taken; i++) taken = cmp[i] == j;
      if (taken) continue;
      double d = fabs((double)z[j] - z[c]);
      if (isnan(d)) d = INFINITY;
      if (best < 0 || d < bd) {
        best = j;
        bd = d;
      }
    }
    if (best < 0) break;
    cmp[nk] = best;
  }
  double mx = z[0], sum = 0.0;
  for (int j = 1; j < n; j++) mx = z[j] > mx ? z[j] : mx;
  for (int j = 0; j < n; j++) sum += exp((double)z[j] - mx);
  double N = 0.0, P = 0.0;
  for (int i = 0; i < nk; i++) {
    double pk = exp((double)z[cmp[i]] - mx) / sum;
    N += pk * ((double)z[c] - alpha * z[cmp[i]]);
    P += pk;
  }
  double D = P + 1e-9;
  for (int j = 0; j < n; j++) {
    double pj = exp((double)z[j] - mx) / sum;
    bool in = false;
    for (int i = 0; i < nk && !in; i++) in = cmp[i] == j;
    double dn = -pj * N + (j == c ? P : 0.0);
    double dd = -pj * P;
    if (in) {
      dn += pj * ((double)z[c] - alpha * z[j]) - alpha * pj;
      dd += pj;
    }
    seed[j] = (float)((dn * D - N * dd) / (D * D));
  }
  return nk;
}

/* Seed of the backward for target k of one item with outputs z (FinerCAM: its comparison score
 * of class targets; every other method: the target's own score, camd__target_seed). */
static void class_seed(camd__cam_ctx *ctx, const float *z, int k, float *seed) {
  if (ctx->req->method == CAMD_CAM_FINERCAM) {
    finer_seed(ctx, z, ctx->req->classes[k], seed);
  } else {
    camd__target_seed(ctx->req, k, z, ctx->n_out, seed);
  }
}

static bool is_polycam(camd_cam_method method) {
  return method == CAMD_CAM_POLYCAM_PLUS || method == CAMD_CAM_POLYCAM_MINUS ||
         method == CAMD_CAM_POLYCAM_PLUSMINUS;
}

/* Map from per-channel weights: Σ_c w_c A_c, or the principal component of w_c A_c. */
static int finish_weights(camd__cam_ctx *ctx, const float *act, const double *weights, float *map,
                          camd_error *err) {
  if (!ctx->req->eigen_smooth) {
    camd__weighted_sum(act, weights, ctx->channels, ctx->hw, map);
    return 0;
  }
  size_t hw = (size_t)ctx->hw;
  for (int c = 0; c < ctx->channels; c++) {
    for (size_t p = 0; p < hw; p++) {
      ctx->xbuf[c * hw + p] = (float)(weights[c] * act[c * hw + p]);
    }
  }
  return camd__projection(ctx, ctx->xbuf, map, err);
}

/* Map from an elementwise-weighted activation in ctx->xbuf. */
static int finish_elementwise(camd__cam_ctx *ctx, float *map, camd_error *err) {
  if (ctx->req->eigen_smooth) return camd__projection(ctx, ctx->xbuf, map, err);
  camd__channel_sum(ctx->xbuf, ctx->channels, ctx->hw, map);
  return 0;
}

/* Grad-CAM++ channel weights (pytorch-grad-cam's closed form with grads² and grads³). */
static void gradcampp_weights(const float *act, const float *grad, int channels, int hw,
                              double *weights) {
  for (int c = 0; c < channels; c++) {
    const float *a = act + (size_t)c * hw, *g = grad + (size_t)c * hw;
    double sum_a = 0.0;
    for (int p = 0; p < hw; p++) sum_a += a[p];
    double wsum = 0.0;
    for (int p = 0; p < hw; p++) {
      double g1 = g[p];
      if (g1 <= 0.0) continue; /* ReLU(grad) · alpha; alpha is 0 where grad == 0 */
      double g2 = g1 * g1, g3 = g2 * g1;
      double alpha = g2 / (2.0 * g2 + sum_a * g3 + 1e-6);
      wsum += g1 * alpha;
    }
    weights[c] = wsum;
  }
}

/* One class's map for a gradient method from activation and gradient (channels × hw). */
static int gradient_map(camd__cam_ctx *ctx, const float *act, const float *grad, double *weights,
                        float *map, camd_error *err) {
  int C = ctx->channels, hw = ctx->hw;
  size_t n = (size_t)C * (size_t)hw;
  float *x = ctx->xbuf;
  switch (ctx->req->method) {
    case CAMD_CAM_GRADCAM:
    case CAMD_CAM_FINERCAM:
      for (int c = 0; c < C; c++) {
        double acc = 0.0;
        for (int p = 0; p < hw; p++) acc += grad[(size_t)c * hw + p];
        weights[c] = acc / hw;
      }
      return finish_weights(ctx, act, weights, map, err);
    case CAMD_CAM_GRADCAMPP:
    case CAMD_CAM_SMOOTHGRADCAMPP:
      gradcampp_weights(act, grad, C, hw, weights);
      return finish_weights(ctx, act, weights, map, err);
    case CAMD_CAM_XGRADCAM:
      for (int c = 0; c < C; c++) {
        double sa = 0.0, sga = 0.0;
        for (int p = 0; p < hw; p++) {
          sa += act[(size_t)c * hw + p];
          sga += (double)grad[(size_t)c * hw + p] * act[(size_t)c * hw + p];
        }
        weights[c] = sga / (sa + 1e-7);
      }
      return finish_weights(ctx, act, weights, map, err);
    case CAMD_CAM_HIRESCAM:
      for (size_t i = 0; i < n; i++) x[i] = grad[i] * act[i];
      return finish_elementwise(ctx, map, err);
    case CAMD_CAM_GRADCAM_ELEMENTWISE:
      for (size_t i = 0; i < n; i++) {
        float v = grad[i] * act[i];
        x[i] = v > 0.0f ? v : 0.0f;
      }
      return finish_elementwise(ctx, map, err);
    case CAMD_CAM_LAYERCAM:
      for (size_t i = 0; i < n; i++) x[i] = (grad[i] > 0.0f ? grad[i] : 0.0f) * act[i];
      return finish_elementwise(ctx, map, err);
    case CAMD_CAM_EIGENGRADCAM:
      for (size_t i = 0; i < n; i++) x[i] = grad[i] * act[i];
      return camd__projection(ctx, x, map, err);
    default:
      return camd_error_set(err, CAMD_E_INTERNAL, "method '%s' is not a gradient method",
                            camd_cam_method_name(ctx->req->method));
  }
}

/* Checks that the layer value of the last forward has the expected geometry; returns it
 * channel-major (batch × C × hw). */
const float *camd__layer_value(camd__cam_ctx *ctx, int batch, camd_error *err) {
  camd_shape sh;
  int64_t c = 0, h = 0, w = 0;
  const float *a = camd_session_value(ctx->s, ctx->req->layer, &sh);
  if (!a || !camd_layout_geometry(&sh, ctx->layer_layout, &c, &h, &w) || sh.dims[0] != batch ||
      c != ctx->channels || h * w != ctx->hw) {
    camd_error_set(err, CAMD_E_INTERNAL, "the engine did not keep the target layer's activation");
    return NULL;
  }
  return camd__cam_layer_nchw(ctx, a, batch, ctx->layer_nchw);
}

/* The gradient at the layer from the last backward, channel-major (batch × C × hw). */
const float *camd__layer_grad(camd__cam_ctx *ctx, int batch) {
  const float *g = camd_session_grad(ctx->s, ctx->req->layer, NULL);
  return g ? camd__cam_layer_nchw(ctx, g, batch, ctx->grad_nchw) : NULL;
}

const float *camd__output_value(camd__cam_ctx *ctx, int batch, camd_error *err) {
  camd_shape sh;
  const float *o = camd_session_value(ctx->s, ctx->req->output, &sh);
  if (!o || camd_shape_count(&sh) != (size_t)batch * (size_t)ctx->n_out) {
    camd_error_set(err, CAMD_E_INTERNAL, "the engine did not keep the score output");
    return NULL;
  }
  return o;
}

/* select_topk: the req->n_classes best classes of ctx->logits, best first (ties: lower index
 * first; NaN ranks below every number), into ctx->selected. A partial selection: K passes. */
void camd__select_classes(camd__cam_ctx *ctx) {
  const int k_max = ctx->req->n_classes;
  for (int k = 0; k < k_max; k++) {
    int best = -1;
    float bv = 0.0f;
    for (int c = 0; c < ctx->n_out; c++) {
      bool taken = false;
      for (int j = 0; j < k && !taken; j++) taken = ctx->selected[j] == c;
      if (taken) continue;
      float v = isnan(ctx->logits[c]) ? -INFINITY : ctx->logits[c];
      if (best < 0 || v > bv) {
        best = c;
        bv = v;
      }
    }
    ctx->selected[k] = best;
  }
  ctx->select_pending = false;
}

/* Clean forward of one image: keeps layer + output, copies the output into ctx->logits (and
 * chooses the target classes when they are still pending). */
int camd__clean_forward(camd__cam_ctx *ctx, const float *input, bool with_grad, const float **act,
                        camd_error *err) {
  int retain[2] = {ctx->req->layer, ctx->req->output};
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  o.retain = retain;
  o.n_retain = 2;
  o.grad_to = with_grad ? ctx->req->layer : -1;
  int rc = camd__forward(ctx, 1, input, &o, err);
  if (rc) return rc;
  const float *out = camd__output_value(ctx, 1, err);
  if (!out) return err ? err->status : CAMD_E_INTERNAL;
  memcpy(ctx->logits, out, sizeof(float) * (size_t)ctx->n_out);
  if (ctx->select_pending) camd__select_classes(ctx);
  if (act) {
    *act = camd__layer_value(ctx, 1, err);
    if (!*act) return err ? err->status : CAMD_E_INTERNAL;
  }
  return 0;
}

int camd__nomem(camd_error *err) {
  return camd_error_set(err, CAMD_E_NOMEM, "out of memory in the CAM workspace");
}

/* Smooth Grad-CAM++: Grad-CAM++ maps of n_samples noisy copies of the input, averaged. */
static int smoothgradcampp(camd__cam_ctx *ctx, const float *input, float *maps, camd_error *err) {
  const camd_cam_request *req = ctx->req;
  int rc = camd__clean_forward(ctx, input, false, NULL, err);
  if (rc) return rc;
  int b = ctx->batch;
  size_t in_count = ctx->in_count, hw = (size_t)ctx->hw;
  float *batch_in = camd__ws_floats(ctx->w, (size_t)b * in_count);
  float *seed = camd__ws_floats(ctx->w, (size_t)b * (size_t)ctx->n_out);
  float *item_map = camd__ws_floats(ctx->w, hw);
  double *weights = camd__ws_doubles(ctx->w, (size_t)ctx->channels);
  if (!batch_in || !seed || !item_map || !weights) return camd__nomem(err);
  memset(maps, 0, sizeof(float) * hw * (size_t)req->n_classes);
  camd_rng rng;
  camd_rng_seed(&rng, req->seed);
  int retain[2] = {req->layer, req->output};
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  o.retain = retain;
  o.n_retain = 2;
  o.grad_to = req->layer;
  for (int s0 = 0; s0 < req->n_samples; s0 += b) {
    int nb = req->n_samples - s0 < b ? req->n_samples - s0 : b;
    /* Noise is drawn sample by sample, element by element (NCHW), from one seeded stream. */
    for (size_t i = 0; i < (size_t)nb * in_count; i++) {
      batch_in[i] = input[i % in_count] + (float)(req->noise_std * camd_rng_normal(&rng));
    }
    rc = camd__forward(ctx, nb, batch_in, &o, err);
    if (rc) return rc;
    const float *out = camd__output_value(ctx, nb, err);
    if (!out) return err ? err->status : CAMD_E_INTERNAL;
    for (int k = 0; k < req->n_classes; k++) {
      for (int i = 0; i < nb; i++) {
        camd__target_seed(req, k, out + (size_t)i * ctx->n_out, ctx->n_out,
                          seed + (size_t)i * ctx->n_out);
      }
      rc = camd__backward(ctx, seed, err);
      if (rc) return rc;
      const float *act = camd__layer_value(ctx, nb, err);
      const float *grad = camd__layer_grad(ctx, nb);
      if (!act || !grad) {
        return camd_error_set(err, CAMD_E_INTERNAL, "no gradient at the target layer");
      }
      size_t per = (size_t)ctx->channels * hw;
      for (int i = 0; i < nb; i++) {
        rc = gradient_map(ctx, act + i * per, grad + i * per, weights, item_map, err);
        if (rc) return rc;
        float *dst = maps + (size_t)k * hw;
        for (size_t p = 0; p < hw; p++) dst[p] += item_map[p] / (float)req->n_samples;
      }
    }
  }
  return 0;
}

/* shapleycam's finite-difference step: the layer is scaled by 1 ± SHAPLEY_EPS. */
#define SHAPLEY_EPS 1e-2

static void scale_layer_hook(void *hook_ctx, int value_id, float *data, const camd_shape *shape) {
  (void)value_id;
  float f = *(const float *)hook_ctx;
  size_t n = camd_shape_count(shape);
  for (size_t i = 0; i < n; i++) data[i] *= f;
}

/* sums[c] += scale · Σ_p d target_k / d layer[c, p], the target seeded from outputs `out`. */
static int add_gradient_sums(camd__cam_ctx *ctx, const float *out, size_t k, float *seed,
                             double scale, double *sums, camd_error *err) {
  size_t hw = (size_t)ctx->hw, C = (size_t)ctx->channels;
  camd__target_seed(ctx->req, (int)k, out, ctx->n_out, seed);
  int rc = camd__backward(ctx, seed, err);
  if (rc) return rc;
  const float *g = camd__layer_grad(ctx, 1);
  if (!g) return camd_error_set(err, CAMD_E_INTERNAL, "no gradient at the target layer");
  for (size_t c = 0; c < C; c++) {
    double acc = 0.0;
    for (size_t p = 0; p < hw; p++) acc += g[c * hw + p];
    sums[c] += scale * acc;
  }
  return 0;
}

/* ShapleyCAM: per class, weights = spatial mean of g − ½·H·A with H·A ≈ (g(A(1+ε)) −
 * g(A(1−ε))) / 2ε, each gradient seeded from the score of its own (perturbed) forward; the
 * map Σ_c w_c A_c of the clean activation. */
static int shapleycam(camd__cam_ctx *ctx, const float *input, float *maps, camd_error *err) {
  const camd_cam_request *req = ctx->req;
  size_t hw = (size_t)ctx->hw, C = (size_t)ctx->channels, per = C * hw;
  size_t nk = (size_t)req->n_classes;
  float *act = camd__ws_floats(ctx->w, per);
  double *wsum = camd__ws_doubles(ctx->w, nk * C); /* per class: Σ_p g, then −½ Σ_p HA */
  float *seed = camd__ws_floats(ctx->w, (size_t)ctx->n_out);
  double *weights = camd__ws_doubles(ctx->w, C);
  if (!act || !wsum || !seed || !weights) return camd__nomem(err);
  int rc = camd__clean_forward(ctx, input, true, NULL, err);
  if (rc) return rc;
  const float *a = camd__layer_value(ctx, 1, err);
  if (!a) return err ? err->status : CAMD_E_INTERNAL;
  memcpy(act, a, sizeof(float) * per);
  memset(wsum, 0, sizeof(double) * nk * C);
  for (size_t k = 0; k < nk; k++) {
    rc = add_gradient_sums(ctx, ctx->logits, k, seed, 1.0, wsum + k * C, err);
    if (rc) return rc;
  }
  int retain[2] = {req->layer, req->output};
  for (int side = 0; side < 2; side++) {
    float factor = side == 0 ? (float)(1.0 + SHAPLEY_EPS) : (float)(1.0 - SHAPLEY_EPS);
    /* ±½·(g₊ − g₋)/2ε, the sign of this side's share of −½·H·A. */
    double share = (side == 0 ? -0.5 : 0.5) / (2.0 * SHAPLEY_EPS);
    camd_forward_opts o;
    camd_forward_opts_init(&o);
    o.retain = retain;
    o.n_retain = 2;
    o.grad_to = req->layer;
    o.hook_value = req->layer;
    o.hook = scale_layer_hook;
    o.hook_ctx = &factor;
    rc = camd__forward(ctx, 1, input, &o, err);
    if (rc) return rc;
    const float *out = camd__output_value(ctx, 1, err);
    if (!out) return err ? err->status : CAMD_E_INTERNAL;
    for (size_t k = 0; k < nk; k++) {
      rc = add_gradient_sums(ctx, out, k, seed, share, wsum + k * C, err);
      if (rc) return rc;
    }
  }
  for (size_t k = 0; k < nk; k++) {
    for (size_t c = 0; c < C; c++) weights[c] = wsum[k * C + c] / (double)hw;
    rc = finish_weights(ctx, act, weights, maps + k * hw, err);
    if (rc) return rc;
  }
  return 0;
}

/* pytorch-grad-cam's scale_cam_image without the resize: m − min, then / (max + 1e-7). */
void camd__scale_unit(float *m, size_t n) {
  float lo = m[0];
  for (size_t i = 1; i < n; i++) lo = m[i] < lo ? m[i] : lo;
  float hi = 0.0f;
  for (size_t i = 0; i < n; i++) {
    m[i] -= lo;
    hi = m[i] > hi ? m[i] : hi;
  }
  double scale = 1.0 / (1e-7 + (double)hi);
  for (size_t i = 0; i < n; i++) m[i] = (float)(m[i] * scale);
}

/* Maps for one (possibly augmented) input into maps[n_classes × hw]. */
static int compute_one(camd__cam_ctx *ctx, const float *input, float *maps, camd_error *err) {
  const camd_cam_request *req = ctx->req;
  size_t hw = (size_t)ctx->hw, C = (size_t)ctx->channels;
  const float *act = NULL;
  int rc;
  switch (req->method) {
    case CAMD_CAM_CAM: {
      double *weights = camd__ws_doubles(ctx->w, C * (size_t)req->n_classes);
      if (!weights) return camd__nomem(err);
      rc = camd__clean_forward(ctx, input, false, &act, err); /* first: it may choose the classes */
      if (rc) return rc;
      rc = camd__cam_head_weights(ctx->m, req->layer, ctx->layer_layout, req->output, req->classes,
                                  req->n_classes, ctx->channels, weights, err);
      if (rc) return rc;
      for (int k = 0; k < req->n_classes; k++) {
        rc = finish_weights(ctx, act, weights + k * C, maps + k * hw, err);
        if (rc) return rc;
      }
      return 0;
    }
    case CAMD_CAM_EIGENCAM:
    case CAMD_CAM_KPCACAM: /* one class-independent map */
      rc = camd__clean_forward(ctx, input, false, &act, err);
      if (rc) return rc;
      rc = req->method == CAMD_CAM_EIGENCAM ? camd__projection(ctx, act, maps, err)
                                            : camd__kernel_projection(ctx, act, maps, err);
      if (rc) return rc;
      for (int k = 1; k < req->n_classes; k++) memcpy(maps + k * hw, maps, sizeof(float) * hw);
      return 0;
    case CAMD_CAM_SCORECAM:
    case CAMD_CAM_SSCAM:
    case CAMD_CAM_ISCAM:
    case CAMD_CAM_ABLATIONCAM:
    case CAMD_CAM_POLYCAM_PLUS:
    case CAMD_CAM_POLYCAM_MINUS:
    case CAMD_CAM_POLYCAM_PLUSMINUS: { /* channel weights from extra (masked) forwards */
      double *weights = camd__ws_doubles(ctx->w, C * (size_t)req->n_classes);
      float *copy = camd__ws_floats(ctx->w, C * hw);
      if (!weights || !copy) return camd__nomem(err);
      rc = camd__clean_forward(ctx, input, false, &act, err);
      if (rc) return rc;
      memcpy(copy, act, sizeof(float) * C * hw); /* the extra forwards overwrite the session */
      rc = is_polycam(req->method) ? camd__polycam_weights(ctx, input, copy, weights, err)
           : req->method == CAMD_CAM_ABLATIONCAM
               ? camd__ablation_weights(ctx, input, weights, err)
               : camd__score_weights(ctx, input, copy, weights, err);
      if (rc) return rc;
      for (int k = 0; k < req->n_classes; k++) { /* Poly-CAM: Σ_c w_c A_c (no eigen_smooth) */
        rc = finish_weights(ctx, copy, weights + k * C, maps + k * hw, err);
        if (rc) return rc;
      }
      return 0;
    }
    case CAMD_CAM_SMOOTHGRADCAMPP:
      return smoothgradcampp(ctx, input, maps, err);
    case CAMD_CAM_SHAPLEYCAM:
      return shapleycam(ctx, input, maps, err);
    case CAMD_CAM_GUIDEDBACKPROP:
    case CAMD_CAM_GUIDEDGRADCAM:
      return camd__guided_maps(ctx, input, maps, err);
    case CAMD_CAM_FULLGRAD:
      return camd__fullgrad_maps(ctx, input, maps, err);
    default:
      break;
  }
  /* Gradient methods: one forward, one backward per class. */
  rc = camd__clean_forward(ctx, input, true, NULL, err);
  if (rc) return rc;
  float *seed = camd__ws_floats(ctx->w, (size_t)ctx->n_out);
  double *weights = camd__ws_doubles(ctx->w, C);
  if (!seed || !weights) return camd__nomem(err);
  for (int k = 0; k < req->n_classes; k++) {
    class_seed(ctx, ctx->logits, k, seed);
    rc = camd__backward(ctx, seed, err);
    if (rc) return rc;
    act = camd__layer_value(ctx, 1, err);
    const float *grad = camd__layer_grad(ctx, 1);
    if (!act || !grad) {
      return camd_error_set(err, CAMD_E_INTERNAL, "no gradient at the target layer");
    }
    rc = gradient_map(ctx, act, grad, weights, maps + k * hw, err);
    if (rc) return rc;
  }
  return 0;
}

/* ---- request checks ---- */

static int check_request(camd_session *s, const camd_cam_request *req, camd__cam_ctx *ctx,
                         camd_error *err) {
  const camd_model *m = camd_session_model(s);
  if ((unsigned)req->method >= CAMD_CAM_METHOD_COUNT) {
    return camd_error_set(err, CAMD_E_INVALID, "unknown CAM method %d", (int)req->method);
  }
  camd_value_info li;
  if (camd_model_value_info(m, req->layer, &li) != 0 || !camd_model_is_cam_layer(m, req->layer)) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "target layer %d is not a 4-D activation with spatial size > 1; pick "
                          "a convolutional feature map (see `camd inspect`)",
                          req->layer);
  }
  camd_value_info oi;
  if (camd_model_value_info(m, req->output, &oi) != 0 || oi.is_constant || !oi.batched ||
      oi.dtype != CAMD_FLOAT32) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "score output %d is not a float activation of the model", req->output);
  }
  size_t n_out = camd_shape_count(&oi.shape);
  if (n_out < 1 || n_out > (1u << 24)) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "score output '%s' has %zu values per image",
                          oi.name, n_out);
  }
  if (!req->classes && req->n_classes == 0 && req->select_topk != 0) {
    if (req->select_topk < 1 || req->select_topk > 1024 || (size_t)req->select_topk > n_out) {
      return camd_error_set(err, CAMD_E_INVALID,
                            "select_topk=%d: must be within 1..%zu (the output's classes, at "
                            "most 1024)",
                            req->select_topk, n_out < 1024 ? n_out : (size_t)1024);
    }
  } else if (!req->classes || req->n_classes < 1 || req->n_classes > 1024) {
    return camd_error_set(err, CAMD_E_INVALID, "give between 1 and 1024 target classes (got %d)",
                          req->n_classes);
  }
  for (int k = 0; req->classes && k < req->n_classes; k++) {
    if (req->classes[k] < 0 || (size_t)req->classes[k] >= n_out) {
      return camd_error_set(err, CAMD_E_INVALID, "target class %d is outside 0..%zu of output '%s'",
                            req->classes[k], n_out - 1, oi.name);
    }
  }
  for (int k = 0; req->targets && k < req->n_classes; k++) {
    const camd_cam_target *t = &req->targets[k];
    if (!req->classes || req->score != CAMD_SCORE_LOGIT || req->method == CAMD_CAM_CAM ||
        req->method == CAMD_CAM_FINERCAM)
      return camd_error_set(err, CAMD_E_INVALID,
                            "mask and similarity targets need explicit classes, the logit score "
                            "and a method other than cam and finercam (which compare classes)");
    if ((t->kind != CAMD_TARGET_WEIGHTED && t->kind != CAMD_TARGET_COSINE) || !t->weights ||
        t->count < 1 || t->offset > n_out || t->count > n_out - t->offset ||
        (t->kind == CAMD_TARGET_COSINE && (t->offset != 0 || t->count != n_out)))
      return camd_error_set(err, CAMD_E_INVALID,
                            "target %d: kind %d over values %zu..+%zu does not fit output '%s' "
                            "(%zu values)",
                            k, (int)t->kind, t->offset, t->count, oi.name, n_out);
  }
  if (req->score != CAMD_SCORE_LOGIT && req->score != CAMD_SCORE_SOFTMAX &&
      req->score != CAMD_SCORE_SIGMOID) {
    return camd_error_set(err, CAMD_E_INVALID, "unknown score function %d", (int)req->score);
  }
  bool noisy = req->method == CAMD_CAM_SMOOTHGRADCAMPP || req->method == CAMD_CAM_SSCAM ||
               req->method == CAMD_CAM_ISCAM;
  if (noisy && (req->n_samples < 1 || req->n_samples > 1024)) {
    return camd_error_set(err, CAMD_E_INVALID, "n_samples must be in 1..1024 for %s (got %d)",
                          camd_cam_method_name(req->method), req->n_samples);
  }
  if (noisy && !(req->noise_std >= 0.0f && req->noise_std <= 1e6f)) {
    return camd_error_set(err, CAMD_E_INVALID, "noise_std must be a finite value >= 0");
  }
  if (req->method == CAMD_CAM_FINERCAM) {
    if (req->score != CAMD_SCORE_LOGIT) {
      return camd_error_set(err, CAMD_E_INVALID,
                            "finercam compares the classes' raw outputs: use score=logit");
    }
    if (req->finer_compare < 1 || req->finer_compare > 64 || (size_t)req->finer_compare >= n_out) {
      return camd_error_set(err, CAMD_E_INVALID,
                            "finercam: finer_compare=%d must be within 1..%zu (fewer than the "
                            "output's %zu classes, at most 64)",
                            req->finer_compare, n_out - 1 < 64 ? n_out - 1 : (size_t)64, n_out);
    }
    if (!(req->finer_alpha >= 0.0f && req->finer_alpha <= 100.0f)) {
      return camd_error_set(err, CAMD_E_INVALID, "finercam: finer_alpha must be within 0..100");
    }
  }
  if (req->kpca_gamma != 0.0f && !(req->kpca_gamma >= (float)CAMD_KPCA_GAMMA_MIN &&
                                   req->kpca_gamma <= (float)CAMD_KPCA_GAMMA_MAX)) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "kpca_gamma must be 0 (1 / channels) or within %g..%g (got %g)",
                          CAMD_KPCA_GAMMA_MIN, CAMD_KPCA_GAMMA_MAX, (double)req->kpca_gamma);
  }
  camd_value_info ii;
  if (camd_model_num_inputs(m) != 1 || camd_model_value_info(m, camd_model_input(m, 0), &ii) != 0) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "CAM methods need a model with one input");
  }
  memset(ctx, 0, sizeof(*ctx));
  ctx->s = s;
  ctx->m = m;
  ctx->req = req;
  int rc = camd__cam_layer_layout(m, req, &ctx->layer_layout, err);
  if (rc) return rc;
  int64_t lc = 0, lh = 0, lw = 0;
  if (!camd_layout_geometry(&li.shape, ctx->layer_layout, &lc, &lh, &lw)) {
    char shp[96];
    camd_shape_format(&li.shape, shp, sizeof(shp));
    return camd_error_set(err, CAMD_E_INVALID, "layer '%s' %s cannot be read as %s", li.name, shp,
                          camd_layout_name(ctx->layer_layout));
  }
  if (ctx->layer_layout == CAMD_LAYOUT_TOKENS && req->method == CAMD_CAM_CAM) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "cam needs a convolutional layer followed by global average pooling "
                          "and a linear layer; layer '%s' is a transformer token map: use "
                          "gradcam",
                          li.name);
  }
  if (lh * lw < 2) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "layer '%s' read as %s has a 1 x 1 map; pick a convolutional feature "
                          "map (see `camd inspect`)",
                          li.name, camd_layout_name(ctx->layer_layout));
  }
  if (req->method == CAMD_CAM_KPCACAM && lh * lw > CAMD_KPCA_MAX_POSITIONS) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "kpcacam works on layers of at most %d positions (its kernel matrix is "
                          "positions × positions); layer '%s' has %lld × %lld: pick a deeper "
                          "layer",
                          CAMD_KPCA_MAX_POSITIONS, li.name, (long long)lh, (long long)lw);
  }
  ctx->token_prefix = camd_layout_token_prefix(&li.shape, ctx->layer_layout);
  ctx->channels = (int)lc;
  ctx->lh = (int)lh;
  ctx->lw = (int)lw;
  ctx->hw = ctx->lh * ctx->lw;
  ctx->n_out = (int)n_out;
  ctx->in_count = camd_shape_count(&ii.shape);
  ctx->in_layout = CAMD_LAYOUT_NCHW;
  if (ii.shape.ndim == 4) {
    camd_layout il = camd_model_value_layout(m, camd_model_input(m, 0));
    if (il == CAMD_LAYOUT_NHWC) ctx->in_layout = il;
    int64_t c, h, w;
    camd_layout_geometry(&ii.shape, ctx->in_layout, &c, &h, &w);
    ctx->in_c = (int)c;
    ctx->in_h = (int)h;
    ctx->in_w = (int)w;
  }
  /* Maps at the input's resolution from a backward to the input. */
  bool is_guided = req->method == CAMD_CAM_GUIDEDBACKPROP ||
                   req->method == CAMD_CAM_GUIDEDGRADCAM || req->method == CAMD_CAM_FULLGRAD;
  bool is_poly = is_polycam(req->method);
  if ((is_guided || is_poly) && (req->aug_smooth || req->eigen_smooth)) {
    return camd_error_set(err, CAMD_E_INVALID, "%s does not combine with %s",
                          camd_cam_method_name(req->method),
                          req->aug_smooth ? "aug_smooth" : "eigen_smooth");
  }
  bool needs_image = is_guided || is_poly || req->aug_smooth || req->method == CAMD_CAM_SCORECAM ||
                     req->method == CAMD_CAM_SSCAM || req->method == CAMD_CAM_ISCAM;
  if (needs_image && ctx->in_h == 0) {
    return camd_error_set(
        err, CAMD_E_UNSUPPORTED, "%s needs a 4-D image input (N, C, H, W); input '%s' is not",
        req->aug_smooth ? "aug_smooth" : camd_cam_method_name(req->method), ii.name);
  }
  int b = req->max_batch > 0 ? req->max_batch : 1;
  int sb = camd_session_max_batch(s);
  ctx->batch = b < sb ? b : sb;
  return 0;
}

/* ---- compute ---- */

int camd_cam_compute(camd_session *s, camd_cam_workspace *w, const float *input,
                     const camd_cam_request *req, camd_cam_maps *out, camd_error *err) {
  if (!s || !w || !input || !req || !out) {
    return camd_error_set(err, CAMD_E_INVALID, "camd_cam_compute: missing argument");
  }
  uint64_t t0 = camd_now_ns();
  camd__cam_ctx ctx;
  int rc = check_request(s, req, &ctx, err);
  if (rc) return rc;
  ctx.w = w;
  ws_rewind(w);
  /* With select_topk the methods see a request whose classes the first clean forward fills. */
  camd_cam_request sel = *req;
  if (!req->classes) {
    sel.n_classes = req->select_topk;
    ctx.selected = ws_bytes(w, sizeof(int) * (size_t)sel.n_classes);
    if (!ctx.selected) return camd__nomem(err);
    sel.classes = ctx.selected;
    ctx.select_pending = true;
    ctx.req = req = &sel;
  }
  const bool in_res = req->method == CAMD_CAM_GUIDEDBACKPROP ||
                      req->method == CAMD_CAM_GUIDEDGRADCAM || req->method == CAMD_CAM_FULLGRAD;
  size_t hw = in_res ? (size_t)ctx.in_h * (size_t)ctx.in_w : (size_t)ctx.hw;
  size_t nmap = hw * (size_t)req->n_classes;
  float *maps = camd__ws_floats(w, nmap);
  ctx.logits = camd__ws_floats(w, (size_t)ctx.n_out);
  ctx.xbuf = camd__ws_floats(w, (size_t)ctx.channels * (size_t)ctx.hw); /* at the layer's h × w */
  if (req->method == CAMD_CAM_FINERCAM) {
    ctx.finer_classes = ws_bytes(w, sizeof(int) * (size_t)req->finer_compare);
    if (!ctx.finer_classes) return camd__nomem(err);
  }
  if (!maps || !ctx.logits || !ctx.xbuf) return camd__nomem(err);
  /* Channels-last models: the methods see channel-major copies (cam_layout.c). */
  int items = ctx.batch > 1 ? ctx.batch : 1;
  if (ctx.layer_layout != CAMD_LAYOUT_NCHW) {
    ctx.layer_nchw = camd__ws_floats(w, (size_t)items * (size_t)ctx.channels * hw);
    ctx.grad_nchw = camd__ws_floats(w, (size_t)items * (size_t)ctx.channels * hw);
    if (!ctx.layer_nchw || !ctx.grad_nchw) return camd__nomem(err);
  }
  if (ctx.in_layout == CAMD_LAYOUT_NHWC) {
    float *canon = camd__ws_floats(w, ctx.in_count);
    ctx.fwd_in = camd__ws_floats(w, (size_t)items * ctx.in_count);
    if (!canon || !ctx.fwd_in) return camd__nomem(err);
    ctx.fwd_cap = items;
    camd__cam_to_channels_first(input, 1, ctx.in_c, (size_t)ctx.in_h * (size_t)ctx.in_w, canon);
    input = canon;
  }
  if (!req->aug_smooth) {
    rc = compute_one(&ctx, input, maps, err);
  } else {
    /* {horizontal flip, identity} × intensity {0.9, 1.1, 1}; the un-augmented image runs last
     * so ctx.logits ends up holding its output. Raw maps are flipped back and averaged. */
    static const struct {
      bool flip;
      float mult;
    } augs[6] = {{true, 0.9f},  {true, 1.0f},  {true, 1.1f},
                 {false, 0.9f}, {false, 1.1f}, {false, 1.0f}};
    float *aug = camd__ws_floats(w, ctx.in_count);
    float *tmp = camd__ws_floats(w, nmap);
    if (!aug || !tmp) return camd__nomem(err);
    /* Classes to choose: from the un-augmented image, before the augmented runs. */
    if (ctx.select_pending && (rc = camd__clean_forward(&ctx, input, false, NULL, err))) return rc;
    memset(maps, 0, sizeof(float) * nmap);
    size_t W = (size_t)ctx.in_w, rows = ctx.in_count / W;
    for (int a = 0; a < 6 && rc == 0; a++) {
      for (size_t r = 0; r < rows; r++) {
        for (size_t x = 0; x < W; x++) {
          aug[r * W + x] = input[r * W + (augs[a].flip ? W - 1 - x : x)] * augs[a].mult;
        }
      }
      rc = compute_one(&ctx, aug, tmp, err);
      for (size_t r = 0; rc == 0 && r < nmap / (size_t)ctx.lw; r++) {
        for (int x = 0; x < ctx.lw; x++) {
          maps[r * ctx.lw + x] += tmp[r * ctx.lw + (augs[a].flip ? ctx.lw - 1 - x : x)] / 6.0f;
        }
      }
    }
  }
  if (rc) return rc;
  out->width = in_res ? ctx.in_w : ctx.lw;
  out->height = in_res ? ctx.in_h : ctx.lh;
  out->maps = maps;
  out->logits = ctx.logits;
  out->n_outputs = ctx.n_out;
  out->classes = req->classes;
  out->n_classes = req->n_classes;
  out->ms_forward = (double)ctx.ns_forward / 1e6;
  out->ms_backward = (double)ctx.ns_backward / 1e6;
  double total = (double)(camd_now_ns() - t0) / 1e6;
  out->ms_cam = total - out->ms_forward - out->ms_backward;
  if (out->ms_cam < 0) out->ms_cam = 0;
  return 0;
}

/* ---- multi-layer fusion ---- */

bool camd__grow_floats(float **buf, size_t *cap, size_t n) {
  if (n <= *cap) return true;
  float *nb = realloc(*buf, n * sizeof(float));
  if (!nb) return false;
  *buf = nb;
  *cap = n;
  return true;
}

const char *camd__value_name(const camd_model *m, int id) {
  camd_value_info vi;
  return camd_model_value_info(m, id, &vi) == 0 && vi.name ? vi.name : "?";
}

int camd__compute_layer(camd_session *s, camd_cam_workspace *w, const float *input,
                        camd_cam_request *one, int layer, camd_layout layout, camd_cam_maps *lm,
                        camd_error *err) {
  one->layer = layer;
  one->layer_layout = layout;
  int rc = camd_cam_compute(s, w, input, one, lm, err);
  if (rc) {
    return camd_error_prefix(err, rc,
                             "layer '%s': ", camd__value_name(camd_session_model(s), layer));
  }
  return 0;
}

int camd__fused_first(camd_cam_workspace *w, const camd_cam_maps *lm, size_t plane,
                      size_t extra_planes, camd_cam_request *one, camd_cam_maps *out,
                      camd_error *err) {
  size_t need;
  if (!camd_size_mul(plane, (size_t)lm->n_classes + extra_planes, &need) ||
      !camd__grow_floats(&w->fused, &w->fused_cap, need) ||
      !camd__grow_floats(&w->fused_logits, &w->logits_cap, (size_t)lm->n_outputs)) {
    return camd__nomem(err);
  }
  memcpy(w->fused_logits, lm->logits, sizeof(float) * (size_t)lm->n_outputs);
  memcpy(w->fused_classes, lm->classes, sizeof(int) * (size_t)lm->n_classes);
  one->classes = w->fused_classes;
  one->n_classes = lm->n_classes;
  one->select_topk = 0;
  out->logits = w->fused_logits;
  out->n_outputs = lm->n_outputs;
  out->classes = w->fused_classes;
  out->n_classes = lm->n_classes;
  out->ms_forward = out->ms_backward = out->ms_cam = 0;
  return 0;
}

void camd__fused_add_times(camd_cam_maps *out, const camd_cam_maps *lm, uint64_t t0) {
  out->ms_forward += lm->ms_forward;
  out->ms_backward += lm->ms_backward;
  out->ms_cam += lm->ms_cam + (double)(camd_now_ns() - t0) / 1e6;
}

int camd_cam_compute_layers(camd_session *s, camd_cam_workspace *w, const float *input,
                            const camd_cam_request *req, const int *layers,
                            const camd_layout *layouts, int n_layers, camd_cam_maps *out,
                            camd_error *err) {
  if (!s || !w || !input || !req || !out || !layers || !layouts) {
    return camd_error_set(err, CAMD_E_INVALID, "camd_cam_compute_layers: missing argument");
  }
  if (n_layers < 1 || n_layers > CAMD_CAM_MAX_LAYERS) {
    return camd_error_set(err, CAMD_E_INVALID, "give between 1 and %d layers to fuse (got %d)",
                          CAMD_CAM_MAX_LAYERS, n_layers);
  }
  const camd_model *m = camd_session_model(s);
  for (int i = 0; i < n_layers; i++) {
    for (int j = 0; j < i; j++) {
      if (layers[j] == layers[i]) {
        return camd_error_set(err, CAMD_E_INVALID, "layer '%s' is given twice in the layer list",
                              camd__value_name(m, layers[i]));
      }
    }
  }
  if (is_polycam(req->method)) {
    return camd__polycam_layers(s, w, input, req, layers, layouts, n_layers, out, err);
  }
  if (n_layers > 1 && req->method == CAMD_CAM_FULLGRAD) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "fullgrad uses every biased layer of the model and no CAM layer: give "
                          "one layer (it is not used), not a list of %d",
                          n_layers);
  }
  camd_cam_request one = *req;
  one.layer = layers[0];
  one.layer_layout = layouts[0];
  if (n_layers == 1) return camd_cam_compute(s, w, input, &one, out, err);
  camd_value_info ii;
  int64_t ic = 0, ih = 0, iw = 0;
  if (camd_model_num_inputs(m) != 1 || camd_model_value_info(m, camd_model_input(m, 0), &ii) != 0 ||
      ii.shape.ndim != 4 ||
      !camd_layout_geometry(&ii.shape,
                            camd_model_value_layout(m, camd_model_input(m, 0)) == CAMD_LAYOUT_NHWC
                                ? CAMD_LAYOUT_NHWC
                                : CAMD_LAYOUT_NCHW,
                            &ic, &ih, &iw) ||
      ih < 1 || iw < 1 || ih * iw > ((int64_t)1 << 26)) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "fusing several layers needs a model whose one input is a 4-D image");
  }
  size_t plane = (size_t)ih * (size_t)iw;
  int n_classes = 0;
  for (int l = 0; l < n_layers; l++) {
    camd_cam_maps lm;
    int rc = camd__compute_layer(s, w, input, &one, layers[l], layouts[l], &lm, err);
    if (rc) return rc;
    uint64_t t0 = camd_now_ns();
    if (l == 0) {
      /* n_classes fused maps and an upsampling plane */
      rc = camd__fused_first(w, &lm, plane, 1, &one, out, err);
      if (rc) return rc;
      n_classes = lm.n_classes;
      memset(w->fused, 0, sizeof(float) * plane * (size_t)n_classes);
    }
    float *up = w->fused + plane * (size_t)n_classes;
    size_t lplane = (size_t)lm.width * (size_t)lm.height;
    for (int k = 0; k < n_classes; k++) {
      float *src = lm.maps + (size_t)k * lplane;
      for (size_t i = 0; i < lplane; i++) src[i] = src[i] > 0.0f ? src[i] : 0.0f;
      camd__scale_unit(src, lplane);
      camd__bilinear(src, lm.height, lm.width, up, (int)ih, (int)iw);
      float *dst = w->fused + (size_t)k * plane;
      for (size_t i = 0; i < plane; i++) dst[i] += up[i] / (float)n_layers;
    }
    camd__fused_add_times(out, &lm, t0);
  }
  for (int k = 0; k < n_classes; k++) camd__scale_unit(w->fused + (size_t)k * plane, plane);
  out->width = (int)iw;
  out->height = (int)ih;
  out->maps = w->fused;
  return 0;
}

/* ---- post-processing and metrics ---- */

void camd_cam_postprocess(float *map, size_t count, bool relu, bool minmax) {
  if (relu) {
    for (size_t i = 0; i < count; i++) map[i] = map[i] > 0.0f ? map[i] : 0.0f;
  }
  if (!minmax || count == 0) return;
  float lo = map[0], hi = map[0];
  for (size_t i = 1; i < count; i++) {
    lo = map[i] < lo ? map[i] : lo;
    hi = map[i] > hi ? map[i] : hi;
  }
  if (!(hi > lo)) {
    memset(map, 0, sizeof(float) * count);
    return;
  }
  double scale = 1.0 / ((double)hi - (double)lo);
  for (size_t i = 0; i < count; i++) map[i] = (float)(((double)map[i] - lo) * scale);
}

double camd_box_iou(double ax0, double ay0, double ax1, double ay1, double bx0, double by0,
                    double bx1, double by1) {
  double aw = ax1 - ax0, ah = ay1 - ay0, bw = bx1 - bx0, bh = by1 - by0;
  if (!(aw > 0) || !(ah > 0) || !(bw > 0) || !(bh > 0)) return 0.0;
  double iw = fmin(ax1, bx1) - fmax(ax0, bx0), ih = fmin(ay1, by1) - fmax(ay0, by0);
  if (!(iw > 0) || !(ih > 0)) return 0.0;
  double inter = iw * ih;
  return inter / (aw * ah + bw * bh - inter);
}
