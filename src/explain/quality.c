/* Quality metrics of one explanation map, computed with the model itself (options metrics /
 * quality). Everything happens on the model input x (the preprocessed tensor, C × H × W in the
 * input's layout), with the class score p(·) = the target's probability under the model's
 * activation (softmax / sigmoid; the logit itself for activation "none"):
 *
 *   saliency s   the map as returned (after relu / normalize; non-finite values read as 0),
 *                upsampled to H × W bilinearly (half-pixel centres, edge clamp: PyTorch's
 *                align_corners=False), in double. Pixels are ranked by s, most relevant first
 *                (ties: lower pixel index first). m = (s - min s) / (max s - min s) (0 when s is
 *                constant).
 *   drop_increase (Chattopadhay et al. 2018): masked = p(x ⊙ m) (m on every channel);
 *                average_drop = 100 · max(0, p(x) - masked) / p(x); increase = masked > p(x).
 *   deletion / insertion (Petsiuk et al. 2018): N steps; step k (0..N) changes the first
 *                floor(k · H·W / N) ranked pixels (every channel): deletion sets them to 0 (the
 *                preprocessed zero, i.e. the normalisation mean), insertion starts from a blurred
 *                copy of x and puts them back. AUC = trapezoid rule over the N + 1 scores on
 *                [0, 1]. Blur: 11 × 11 separable Gaussian, σ = 5 px, per channel; at the borders
 *                only the taps inside the image count (weights renormalised).
 *   road (Rong et al. 2022): at 10 %, 20 %, ..., 90 % (floor(l · H·W / 10) pixels) the most
 *                (MoRF) or least (LeRF) relevant pixels are removed and imputed by the noisy
 *                linear imputation: every removed pixel equals the weighted mean of its in-image
 *                8-neighbours (weights 1/6 edge, 1/12 diagonal), known pixels fixed; one sparse
 *                symmetric positive definite system per channel, solved by Jacobi-preconditioned
 *                conjugate gradients in double to a relative residual of 1e-9; then Gaussian
 *                noise of std road_noise (camd_rng seeded from the request's seed, the class and
 *                the level) is added to every imputed value.
 *
 * p(x) comes from the explanation's own forward (the logits the caller passes); the perturbed
 * inputs go through the session in batches of its max batch.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "explain/explain_internal.h"

#define BLUR_RADIUS 5
#define BLUR_SIGMA 5.0
#define CG_TOL 1e-9

typedef struct rank_item {
  double v;
  int i;
} rank_item;

struct camd__quality_ws {
  float *batch;
  size_t batch_cap;
  double **dst;
  size_t dst_cap;
  double *sal, *tmp, *cg;
  size_t sal_cap, tmp_cap, cg_cap;
  rank_item *rank;
  size_t rank_cap;
  int *order, *vid, *unknown;
  size_t order_cap, vid_cap, unknown_cap;
  float *blur;
  size_t blur_cap;
};

static int grow(void **p, size_t *cap, size_t n, size_t elem, camd_error *err) {
  if (n <= *cap) return 0;
  size_t bytes;
  if (!camd_size_mul(n, elem, &bytes))
    return camd_error_set(err, CAMD_E_LIMIT, "quality: buffer of %zu items overflows", n);
  void *q = realloc(*p, bytes);
  if (!q) return camd_error_set(err, CAMD_E_NOMEM, "quality: out of memory (%zu bytes)", bytes);
  *p = q;
  *cap = n;
  return 0;
}
#define GROW(ws, field, n, err) \
  grow((void **)&(ws)->field, &(ws)->field##_cap, (n), sizeof(*(ws)->field), (err))

void camd__quality_ws_free(camd__quality_ws *ws) {
  if (!ws) return;
  free(ws->batch);
  free(ws->dst);
  free(ws->sal);
  free(ws->tmp);
  free(ws->cg);
  free(ws->rank);
  free(ws->order);
  free(ws->vid);
  free(ws->unknown);
  free(ws->blur);
  free(ws);
}

/* Geometry of the model input. */
typedef struct geo {
  int C;
  size_t W, H, HW, count;
  bool nhwc;
} geo;

static size_t at(const geo *g, int c, size_t p) {
  return g->nhwc ? p * (size_t)g->C + (size_t)c : (size_t)c * g->HW + p;
}

/* The class score under the model's activation, in double. */
static double class_score(const camd_explainer *e, const float *l, int c) {
  if (e->activation == CAMD_ACTIVATION_SIGMOID) return 1.0 / (1.0 + exp(-(double)l[c]));
  if (e->activation != CAMD_ACTIVATION_SOFTMAX) return l[c];
  double mx = -INFINITY, sum = 0.0;
  for (int i = 0; i < e->n_outputs; i++)
    if (l[i] > mx) mx = l[i];
  for (int i = 0; i < e->n_outputs; i++) sum += exp((double)l[i] - mx);
  return exp((double)l[c] - mx) / sum;
}

/* Batched forwards of perturbed inputs: next() hands out a tensor slot whose score goes to *dst,
 * flush() runs what is pending. */
typedef struct runner {
  camd__quality_ws *ws;
  camd_session *s;
  const camd_explainer *e;
  int cls, mb, fill, forwards;
} runner;

static int flush(runner *r, camd_error *err) {
  if (!r->fill) return 0;
  const camd_explainer *e = r->e;
  camd_forward_opts fo;
  camd_forward_opts_init(&fo);
  fo.retain = &e->logit_id;
  fo.n_retain = 1;
  int rc = camd_session_forward(r->s, r->fill, r->ws->batch, &fo, err);
  if (rc) return camd_error_prefix(err, rc, "quality metrics: ");
  camd_shape shp;
  const float *l = camd_session_value(r->s, e->logit_id, &shp);
  if (!l || camd_shape_count(&shp) != (size_t)r->fill * (size_t)e->n_outputs)
    return camd_error_set(err, CAMD_E_INTERNAL, "quality metrics: logits missing after forward");
  for (int i = 0; i < r->fill; i++)
    *r->ws->dst[i] = class_score(e, l + (size_t)i * (size_t)e->n_outputs, r->cls);
  r->forwards += r->fill;
  r->fill = 0;
  return 0;
}

static float *next(runner *r, double *dst) {
  r->ws->dst[r->fill] = dst;
  return r->ws->batch + (size_t)r->fill * r->e->in_count;
}

static int commit(runner *r, camd_error *err) {
  return ++r->fill == r->mb ? flush(r, err) : 0;
}

static int cmp_rank(const void *a, const void *b) {
  const rank_item *x = a, *y = b;
  if (x->v != y->v) return x->v > y->v ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

static double map_at(const float *map, int lw, size_t y, size_t x) {
  double v = map[y * (size_t)lw + x];
  return isfinite(v) ? v : 0.0;
}

/* Bilinear upsampling of the lw × lh map to W × H (align_corners=False), in double. */
static void upsample(const float *map, int lw, int lh, size_t W, size_t H, double *out) {
  for (size_t y = 0; y < H; y++) {
    double sy = (((double)y + 0.5) * lh) / (double)H - 0.5;
    if (sy < 0) sy = 0;
    size_t y0 = (size_t)sy;
    if (y0 > (size_t)lh - 1) y0 = (size_t)lh - 1;
    size_t y1 = y0 + 1 < (size_t)lh ? y0 + 1 : y0;
    double fy = sy - (double)y0;
    for (size_t x = 0; x < W; x++) {
      double sx = (((double)x + 0.5) * lw) / (double)W - 0.5;
      if (sx < 0) sx = 0;
      size_t x0 = (size_t)sx;
      if (x0 > (size_t)lw - 1) x0 = (size_t)lw - 1;
      size_t x1 = x0 + 1 < (size_t)lw ? x0 + 1 : x0;
      double fx = sx - (double)x0;
      double a00 = map_at(map, lw, y0, x0), a01 = map_at(map, lw, y0, x1);
      double a10 = map_at(map, lw, y1, x0), a11 = map_at(map, lw, y1, x1);
      double top = a00 + fx * (a01 - a00), bot = a10 + fx * (a11 - a10);
      out[y * W + x] = top + fy * (bot - top);
    }
  }
}

/* Separable Gaussian blur of every channel of x into out (weights renormalised at borders). */
static void blur(const geo *g, const float *x, double *tmp, float *out) {
  double w[2 * BLUR_RADIUS + 1];
  for (int i = -BLUR_RADIUS; i <= BLUR_RADIUS; i++)
    w[i + BLUR_RADIUS] = exp(-(double)(i * i) / (2.0 * BLUR_SIGMA * BLUR_SIGMA));
  long W = (long)g->W, H = (long)g->H;
  for (int c = 0; c < g->C; c++) {
    for (long y = 0; y < H; y++)
      for (long xx = 0; xx < W; xx++) {
        double acc = 0.0, norm = 0.0;
        for (int i = -BLUR_RADIUS; i <= BLUR_RADIUS; i++) {
          if (xx + i < 0 || xx + i >= W) continue;
          acc += w[i + BLUR_RADIUS] * x[at(g, c, (size_t)(y * W + xx + i))];
          norm += w[i + BLUR_RADIUS];
        }
        tmp[y * W + xx] = acc / norm;
      }
    for (long y = 0; y < H; y++)
      for (long xx = 0; xx < W; xx++) {
        double acc = 0.0, norm = 0.0;
        for (int i = -BLUR_RADIUS; i <= BLUR_RADIUS; i++) {
          if (y + i < 0 || y + i >= H) continue;
          acc += w[i + BLUR_RADIUS] * tmp[(y + i) * W + xx];
          norm += w[i + BLUR_RADIUS];
        }
        out[at(g, c, (size_t)(y * W + xx))] = (float)(acc / norm);
      }
  }
}

static double auc(const double *v, int n) { /* n + 1 points on [0, 1] */
  double a = 0.0;
  for (int k = 0; k < n; k++) a += (v[k] + v[k + 1]) / 2.0;
  return a / n;
}

static size_t part(size_t k, size_t n, size_t HW) {
  return (size_t)(((unsigned long long)k * HW) / n);
}

/* ---- ROAD: noisy linear imputation ---- */

static const int nb_dy[8] = {-1, -1, -1, 0, 0, 1, 1, 1};
static const int nb_dx[8] = {-1, 0, 1, -1, 1, -1, 0, 1};
static const double nb_w[8] = {1.0 / 12, 1.0 / 6,  1.0 / 12, 1.0 / 6,
                               1.0 / 6,  1.0 / 12, 1.0 / 6,  1.0 / 12};

/* Removes the n_rm pixels order[first .. first + n_rm) of x (in dst, a copy of x) and imputes
 * them. The system of unknown i (pixel p): D_i u_i - Σ_{removed neighbours j} w_ij u_j =
 * Σ_{kept neighbours k} w_ik x_k, D_i = Σ of its in-image neighbours' weights: symmetric
 * positive definite (every group of removed pixels touches a kept one while any is kept). Its
 * neighbour table (up to 8 unknowns per row) is built once; the channels run as independent
 * conjugate-gradient solves in one loop (values interleaved [i][c]). */
static int road_impute(camd__quality_ws *ws, const geo *g, const float *x, const int *order,
                       size_t first, size_t n_rm, float noise, uint64_t seed, float *dst,
                       camd_error *err) {
  int rc;
  const int C = g->C;
  size_t nc;
  if (!camd_size_mul(n_rm, (size_t)C, &nc))
    return camd_error_set(err, CAMD_E_LIMIT, "quality: ROAD system too large");
  /* cg: u, r, z, d, q (n·C each), diag (n), weights (8n); nbr (8n ints) in unknown[n..] */
  if ((rc = GROW(ws, vid, g->HW, err)) || (rc = GROW(ws, unknown, 9 * n_rm, err)) ||
      (rc = GROW(ws, cg, 5 * nc + 9 * n_rm, err)))
    return rc;
  memcpy(dst, x, g->count * sizeof(float));
  if (!n_rm) return 0;
  for (size_t p = 0; p < g->HW; p++) ws->vid[p] = -1;
  for (size_t k = 0; k < n_rm; k++) ws->vid[order[first + k]] = 0;
  size_t n = 0;
  for (size_t p = 0; p < g->HW; p++)
    if (ws->vid[p] == 0) {
      ws->vid[p] = (int)n;
      ws->unknown[n++] = (int)p;
    }
  double *u = ws->cg, *r = u + nc, *z = r + nc, *d = z + nc, *q = d + nc, *diag = q + nc,
         *nw = diag + n;
  int *nb = ws->unknown + n;
  long W = (long)g->W, H = (long)g->H;
  double bnorm[8] = {0}, rz[8] = {0}, rz_new[8], dq[8], rnorm[8], alpha[8];
  if (C > 8) return camd_error_set(err, CAMD_E_UNSUPPORTED, "quality: ROAD takes <= 8 channels");
  for (size_t i = 0; i < n; i++) {
    long p = ws->unknown[i], py = p / W, px = p % W;
    double dg = 0.0;
    double *ri = r + i * (size_t)C;
    for (int c = 0; c < C; c++) ri[c] = 0.0;
    for (int k = 0; k < 8; k++) {
      nb[8 * i + (size_t)k] = -1;
      nw[8 * i + (size_t)k] = 0.0;
      long qy = py + nb_dy[k], qx = px + nb_dx[k];
      if (qy < 0 || qy >= H || qx < 0 || qx >= W) continue;
      dg += nb_w[k];
      int j = ws->vid[qy * W + qx];
      if (j >= 0) {
        nb[8 * i + (size_t)k] = j;
        nw[8 * i + (size_t)k] = nb_w[k];
      } else {
        for (int c = 0; c < C; c++) ri[c] += nb_w[k] * x[at(g, c, (size_t)(qy * W + qx))];
      }
    }
    diag[i] = dg;
    for (int c = 0; c < C; c++) {
      u[i * (size_t)C + (size_t)c] = 0.0; /* u0 = 0: r0 = b */
      bnorm[c] += ri[c] * ri[c];
      z[i * (size_t)C + (size_t)c] = ri[c] / dg;
      d[i * (size_t)C + (size_t)c] = ri[c] / dg;
      rz[c] += ri[c] * ri[c] / dg;
    }
  }
  for (int c = 0; c < C; c++) bnorm[c] = sqrt(bnorm[c]);
  size_t max_iter = 10 * n + 1000;
  for (size_t it = 0;; it++) {
    bool done = true;
    for (int c = 0; c < C; c++) {
      rnorm[c] = 0.0;
      dq[c] = 0.0;
      rz_new[c] = 0.0;
    }
    for (size_t k = 0; k < nc; k++) rnorm[k % (size_t)C] += r[k] * r[k];
    for (int c = 0; c < C; c++)
      if (sqrt(rnorm[c]) > CG_TOL * bnorm[c]) done = false;
    if (done) break;
    if (it == max_iter)
      return camd_error_set(err, CAMD_E_INTERNAL,
                            "quality metrics: ROAD imputation did not converge (%zu unknowns, "
                            "%zu iterations)",
                            n, it);
    for (size_t i = 0; i < n; i++) { /* q = M d */
      const int *ni = nb + 8 * i;
      const double *wi = nw + 8 * i;
      for (int c = 0; c < C; c++) {
        double acc = diag[i] * d[i * (size_t)C + (size_t)c];
        for (int k = 0; k < 8; k++)
          if (ni[k] >= 0) acc -= wi[k] * d[(size_t)ni[k] * (size_t)C + (size_t)c];
        q[i * (size_t)C + (size_t)c] = acc;
        dq[c] += d[i * (size_t)C + (size_t)c] * acc;
      }
    }
    for (int c = 0; c < C; c++) alpha[c] = dq[c] > 0.0 ? rz[c] / dq[c] : 0.0;
    for (size_t i = 0; i < n; i++)
      for (int c = 0; c < C; c++) {
        size_t k = i * (size_t)C + (size_t)c;
        u[k] += alpha[c] * d[k];
        r[k] -= alpha[c] * q[k];
        z[k] = r[k] / diag[i];
        rz_new[c] += r[k] * z[k];
      }
    for (int c = 0; c < C; c++) {
      double beta = rz[c] > 0.0 ? rz_new[c] / rz[c] : 0.0;
      rz[c] = rz_new[c];
      rz_new[c] = beta; /* reused as beta below */
    }
    for (size_t k = 0; k < nc; k++) d[k] = z[k] + rz_new[k % (size_t)C] * d[k];
  }
  for (size_t i = 0; i < n; i++)
    for (int c = 0; c < C; c++)
      dst[at(g, c, (size_t)ws->unknown[i])] = (float)u[i * (size_t)C + (size_t)c];
  if (noise > 0.0f) { /* pixel by pixel (increasing index), channel by channel */
    camd_rng rng;
    camd_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++)
      for (int c = 0; c < C; c++) {
        float *v = &dst[at(g, c, (size_t)ws->unknown[i])];
        *v = (float)((double)*v + (double)noise * camd_rng_normal(&rng));
      }
  }
  return 0;
}

int camd__quality_map(camd__quality_ws **wsp, camd_session *s, const camd_explainer *e,
                      const camd_explain_options *o, const float *x, const float *logits, int cls,
                      const float *map, int lw, int lh, struct camd_explain_quality *q,
                      camd_error *err) {
  uint64_t t0 = camd_now_ns();
  memset(q, 0, sizeof(*q));
  if (!o->metrics) return 0;
  if (lw < 1 || lh < 1) return camd_error_set(err, CAMD_E_INTERNAL, "quality: empty map");
  if (!*wsp && !(*wsp = calloc(1, sizeof(**wsp))))
    return camd_error_set(err, CAMD_E_NOMEM, "quality: out of memory");
  camd__quality_ws *ws = *wsp;
  geo g;
  g.W = e->cfg.preprocess.width;
  g.H = e->cfg.preprocess.height;
  g.HW = g.W * g.H;
  g.count = e->in_count;
  g.nhwc = e->cfg.preprocess.channels_last;
  if (!g.HW || g.count % g.HW)
    return camd_error_set(err, CAMD_E_INTERNAL, "quality: input of %zu values is not C x %zu x %zu",
                          g.count, g.H, g.W);
  g.C = (int)(g.count / g.HW);
  int mb = camd_session_max_batch(s), N = o->quality_steps, rc;
  if (N < 1 || N > CAMD_QUALITY_STEPS_MAX)
    return camd_error_set(err, CAMD_E_INVALID, "option quality_steps=%d: must be within 1..%d", N,
                          CAMD_QUALITY_STEPS_MAX);
  if ((rc = GROW(ws, batch, (size_t)mb * g.count, err)) || (rc = GROW(ws, dst, (size_t)mb, err)) ||
      (rc = GROW(ws, sal, g.HW, err)) || (rc = GROW(ws, tmp, g.HW, err)) ||
      (rc = GROW(ws, rank, g.HW, err)) || (rc = GROW(ws, order, g.HW, err)) ||
      (rc = GROW(ws, blur, g.count, err)))
    return rc;
  /* saliency, ranking, normalised mask (in ws->sal) */
  upsample(map, lw, lh, g.W, g.H, ws->sal);
  double mn = INFINITY, mx = -INFINITY;
  for (size_t p = 0; p < g.HW; p++) {
    ws->rank[p] = (rank_item){ws->sal[p], (int)p};
    if (ws->sal[p] < mn) mn = ws->sal[p];
    if (ws->sal[p] > mx) mx = ws->sal[p];
  }
  qsort(ws->rank, g.HW, sizeof(*ws->rank), cmp_rank);
  for (size_t p = 0; p < g.HW; p++) ws->order[p] = ws->rank[p].i;
  for (size_t p = 0; p < g.HW; p++) ws->sal[p] = mx > mn ? (ws->sal[p] - mn) / (mx - mn) : 0.0;

  q->metrics = o->metrics;
  q->score = class_score(e, logits, cls);
  q->steps = N;
  runner r = {ws, s, e, cls, mb, 0, 0};
  if (o->metrics & CAMD_METRIC_DROP_INCREASE) {
    float *t = next(&r, &q->masked);
    for (int c = 0; c < g.C; c++)
      for (size_t p = 0; p < g.HW; p++) t[at(&g, c, p)] = (float)(x[at(&g, c, p)] * ws->sal[p]);
    if ((rc = commit(&r, err))) return rc;
  }
  if (o->metrics & CAMD_METRIC_DELETION) {
    if (!(q->deletion = calloc((size_t)N + 1, sizeof(double))))
      return camd_error_set(err, CAMD_E_NOMEM, "quality: out of memory");
    q->deletion[0] = q->score;
    for (int k = 1; k <= N; k++) {
      float *t = next(&r, &q->deletion[k]);
      memcpy(t, x, g.count * sizeof(float));
      size_t n = part((size_t)k, (size_t)N, g.HW);
      for (size_t j = 0; j < n; j++)
        for (int c = 0; c < g.C; c++) t[at(&g, c, (size_t)ws->order[j])] = 0.0f;
      if ((rc = commit(&r, err))) return rc;
    }
  }
  if (o->metrics & CAMD_METRIC_INSERTION) {
    if (!(q->insertion = calloc((size_t)N + 1, sizeof(double))))
      return camd_error_set(err, CAMD_E_NOMEM, "quality: out of memory");
    q->insertion[N] = q->score;
    blur(&g, x, ws->tmp, ws->blur);
    for (int k = 0; k < N; k++) {
      float *t = next(&r, &q->insertion[k]);
      memcpy(t, ws->blur, g.count * sizeof(float));
      size_t n = part((size_t)k, (size_t)N, g.HW);
      for (size_t j = 0; j < n; j++)
        for (int c = 0; c < g.C; c++) {
          size_t i = at(&g, c, (size_t)ws->order[j]);
          t[i] = x[i];
        }
      if ((rc = commit(&r, err))) return rc;
    }
  }
  if (o->metrics & CAMD_METRIC_ROAD) {
    for (int l = 1; l <= CAMD_ROAD_LEVELS; l++) {
      size_t n = part((size_t)l, CAMD_ROAD_LEVELS + 1, g.HW);
      for (int morf = 1; morf >= 0; morf--) {
        uint64_t seed =
            o->seed ^ ((uint64_t)(unsigned)cls << 20) ^ ((uint64_t)l << 4) ^ (uint64_t)morf;
        float *t = next(&r, morf ? &q->road_morf[l - 1] : &q->road_lerf[l - 1]);
        if ((rc = road_impute(ws, &g, x, ws->order, morf ? 0 : g.HW - n, n, o->road_noise, seed, t,
                              err)) ||
            (rc = commit(&r, err)))
          return rc;
      }
    }
  }
  if ((rc = flush(&r, err))) return rc;
  if (o->metrics & CAMD_METRIC_DROP_INCREASE) {
    q->average_drop = q->score > 0.0 ? 100.0 * fmax(0.0, q->score - q->masked) / q->score : NAN;
    q->increase = q->masked > q->score;
  }
  if (q->deletion) q->deletion_auc = auc(q->deletion, N);
  if (q->insertion) q->insertion_auc = auc(q->insertion, N);
  if (o->metrics & CAMD_METRIC_ROAD) {
    for (int l = 0; l < CAMD_ROAD_LEVELS; l++) {
      q->road_morf_mean += q->road_morf[l] / CAMD_ROAD_LEVELS;
      q->road_lerf_mean += q->road_lerf[l] / CAMD_ROAD_LEVELS;
    }
  }
  q->forwards = r.forwards;
  q->ms = (double)(camd_now_ns() - t0) / 1e6;
  return 0;
}
