/* First principal component of a layer activation (Eigen-CAM, Eigen-Grad-CAM, eigen_smooth).
 *
 * The activation x (C × HW, channel-major) is read as the HW × C matrix M whose rows are
 * positions. pytorch-grad-cam's get_2d_projection centres M's columns, takes the SVD and
 * projects the rows on the first right singular vector v: p = Mc · v. We get v without an SVD
 * from the smaller Gram matrix: for C <= HW, v is the top eigenvector of Mcᵀ·Mc (C × C); else
 * u, the top eigenvector of Mc·Mcᵀ (HW × HW), gives v = Mcᵀ·u / |Mcᵀ·u|. The top eigenvector
 * comes from repeated squaring of the (normalised) Gram matrix, which converges to the rank-1
 * projector v·vᵀ in a few dozen BLAS multiplications whatever the eigengap, followed by a few
 * power iterations in double precision on the Gram matrix itself.
 *
 * The SVD leaves the sign of v free (LAPACK's choice decides it in pytorch-grad-cam). We fix
 * it: p is made to correlate non-negatively with Σ_c x[c] (the map without the projection);
 * on an exact tie its largest-magnitude entry is made positive.
 */
#include <math.h>
#include <string.h>

#include "cam/cam_internal.h"

#define SQUARINGS_MAX 40
#define REFINE_STEPS 8

static float max_abs(const float *a, size_t n) {
  float m = 0.0f;
  for (size_t i = 0; i < n; i++) m = fabsf(a[i]) > m ? fabsf(a[i]) : m;
  return m;
}

/* Top eigenvector (unit norm) of the symmetric PSD matrix g (n × n) into e. p and q are n × n
 * scratch. Returns false when g is zero. */
static bool top_eigenvector(const float *g, int n, float *p, float *q, double *e, double *t) {
  size_t nn = (size_t)n * (size_t)n;
  float m = max_abs(g, nn);
  if (!(m > 0.0f)) return false;
  for (size_t i = 0; i < nn; i++) p[i] = g[i] / m;
  for (int it = 0; it < SQUARINGS_MAX; it++) {
    camd_gemm(false, false, n, n, n, 1.0f, p, n, p, n, 0.0f, q, n);
    float mq = max_abs(q, nn);
    if (!(mq > 0.0f)) break;
    float diff = 0.0f;
    for (size_t i = 0; i < nn; i++) {
      q[i] /= mq;
      float d = fabsf(q[i] - p[i]);
      diff = d > diff ? d : diff;
    }
    memcpy(p, q, sizeof(float) * nn);
    if (diff < 1e-6f) break;
  }
  /* p ≈ v·vᵀ: its column with the largest diagonal entry is parallel to v. */
  int j = 0;
  for (int i = 1; i < n; i++) {
    if (p[(size_t)i * n + i] > p[(size_t)j * n + j]) j = i;
  }
  double norm = 0.0;
  for (int i = 0; i < n; i++) {
    e[i] = p[(size_t)i * n + j];
    norm += e[i] * e[i];
  }
  if (!(norm > 0.0)) {
    for (int i = 0; i < n; i++) e[i] = 1.0; /* degenerate: start the power steps from 1s */
    norm = n;
  }
  norm = sqrt(norm);
  for (int i = 0; i < n; i++) e[i] /= norm;
  for (int step = 0; step < REFINE_STEPS; step++) {
    double tn = 0.0;
    for (int r = 0; r < n; r++) {
      double acc = 0.0;
      const float *row = g + (size_t)r * n;
      for (int c = 0; c < n; c++) acc += (double)row[c] * e[c];
      t[r] = acc;
      tn += acc * acc;
    }
    if (!(tn > 0.0)) return false;
    tn = sqrt(tn);
    for (int r = 0; r < n; r++) e[r] = t[r] / tn;
  }
  return true;
}

int camd__projection(camd__cam_ctx *ctx, const float *x, float *map, camd_error *err) {
  int C = ctx->channels, HW = ctx->hw;
  int n = C <= HW ? C : HW;
  size_t xn = (size_t)C * (size_t)HW, nn = (size_t)n * (size_t)n;
  int big = C > HW ? C : HW;
  if (!ctx->pj_f) {
    ctx->pj_f = camd__ws_floats(ctx->w, xn + 3 * nn);
    ctx->pj_d = camd__ws_doubles(ctx->w, 3 * (size_t)big);
    if (!ctx->pj_f || !ctx->pj_d) {
      ctx->pj_f = NULL;
      return camd_error_set(err, CAMD_E_NOMEM,
                            "out of memory for the principal component of a %d × %d matrix", HW, C);
    }
  }
  float *xc = ctx->pj_f, *g = xc + xn, *p = g + nn, *q = p + nn;
  double *e = ctx->pj_d, *t = e + big, *v = t + big;
  /* Centre each channel (column of M). */
  for (int c = 0; c < C; c++) {
    const float *src = x + (size_t)c * HW;
    double mean = 0.0;
    for (int i = 0; i < HW; i++) mean += src[i];
    mean /= HW;
    for (int i = 0; i < HW; i++) xc[(size_t)c * HW + i] = (float)(src[i] - mean);
  }
  if (C <= HW) {
    camd_gemm(false, true, C, C, HW, 1.0f, xc, HW, xc, HW, 0.0f, g, C); /* Mcᵀ·Mc */
  } else {
    camd_gemm(true, false, HW, HW, C, 1.0f, xc, HW, xc, HW, 0.0f, g, HW); /* Mc·Mcᵀ */
  }
  if (!top_eigenvector(g, n, p, q, e, t)) {
    memset(map, 0, sizeof(float) * (size_t)HW);
    return 0;
  }
  if (C <= HW) {
    memcpy(v, e, sizeof(double) * (size_t)C);
  } else {
    double vn = 0.0;
    for (int c = 0; c < C; c++) {
      double acc = 0.0;
      for (int i = 0; i < HW; i++) acc += (double)xc[(size_t)c * HW + i] * e[i];
      v[c] = acc;
      vn += acc * acc;
    }
    if (!(vn > 0.0)) {
      memset(map, 0, sizeof(float) * (size_t)HW);
      return 0;
    }
    vn = sqrt(vn);
    for (int c = 0; c < C; c++) v[c] /= vn;
  }
  /* p = Mc · v, and its correlation with the un-projected map Σ_c x[c]. */
  double dot = 0.0;
  int arg = 0;
  for (int i = 0; i < HW; i++) {
    double acc = 0.0, ref = 0.0;
    for (int c = 0; c < C; c++) {
      acc += (double)xc[(size_t)c * HW + i] * v[c];
      ref += x[(size_t)c * HW + i];
    }
    t[i] = acc;
    dot += acc * ref;
    if (fabs(acc) > fabs(t[arg])) arg = i;
  }
  double sign = dot < 0.0 || (dot == 0.0 && t[arg] < 0.0) ? -1.0 : 1.0;
  for (int i = 0; i < HW; i++) map[i] = (float)(sign * t[i]);
  return 0;
}

/* Kernel PCA (kpcacam). The rows x_i (positions) of the centred matrix give the RBF kernel
 * K_ij = exp(−γ|x_i − x_j|²) (centring does not change it); Kc = K − 1K − K1 + 1K1 (1 = the
 * n × n matrix of 1/n) is PSD, its top eigenpair (λ, α) gives the projections √λ·α. */
int camd__kernel_projection(camd__cam_ctx *ctx, const float *x, float *map, camd_error *err) {
  int C = ctx->channels, n = ctx->hw;
  size_t nn = (size_t)n * (size_t)n;
  int big = C > n ? C : n;
  if (!ctx->kp_f) {
    ctx->kp_f = camd__ws_floats(ctx->w, 3 * nn);
    ctx->kp_d = camd__ws_doubles(ctx->w, 3 * (size_t)big + nn);
    if (!ctx->kp_f || !ctx->kp_d) {
      ctx->kp_f = NULL;
      return camd_error_set(err, CAMD_E_NOMEM,
                            "out of memory for the %d × %d kernel matrix of kpcacam", n, n);
    }
  }
  float *kc = ctx->kp_f, *p = kc + nn, *q = p + nn;
  double *e = ctx->kp_d, *t = e + big, *rowmean = t + big, *kd = rowmean + big;
  /* Squared distances through |xi|² + |xj|² − 2 xi·xj would lose digits to cancellation:
   * summed directly, in double, over channels. */
  const double gamma = ctx->req->kpca_gamma > 0.0f ? (double)ctx->req->kpca_gamma : 1.0 / C;
  for (int i = 0; i < n; i++) {
    kd[(size_t)i * n + i] = 1.0;
    for (int j = i + 1; j < n; j++) {
      double d2 = 0.0;
      for (int c = 0; c < C; c++) {
        double d = (double)x[(size_t)c * n + i] - x[(size_t)c * n + j];
        d2 += d * d;
      }
      kd[(size_t)i * n + j] = kd[(size_t)j * n + i] = exp(-gamma * d2);
    }
  }
  double total = 0.0;
  for (int i = 0; i < n; i++) {
    double acc = 0.0;
    for (int j = 0; j < n; j++) acc += kd[(size_t)i * n + j];
    rowmean[i] = acc / n;
    total += acc;
  }
  total /= (double)n * (double)n;
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < n; j++) {
      kc[(size_t)i * n + j] = (float)(kd[(size_t)i * n + j] - rowmean[i] - rowmean[j] + total);
    }
  }
  if (!top_eigenvector(kc, n, p, q, e, t)) {
    memset(map, 0, sizeof(float) * (size_t)n);
    return 0;
  }
  /* λ = eᵀ·Kc·e (Rayleigh quotient, e unit) from the double kernel. */
  double lambda = 0.0;
  for (int i = 0; i < n; i++) {
    double acc = 0.0;
    for (int j = 0; j < n; j++) {
      acc += (kd[(size_t)i * n + j] - rowmean[i] - rowmean[j] + total) * e[j];
    }
    lambda += e[i] * acc;
  }
  double scale = lambda > 0.0 ? sqrt(lambda) : 0.0;
  /* Sign: correlate non-negatively with Σ_c x[c] (ties: largest-magnitude entry positive). */
  double dot = 0.0;
  int arg = 0;
  for (int i = 0; i < n; i++) {
    double ref = 0.0;
    for (int c = 0; c < C; c++) ref += x[(size_t)c * n + i];
    dot += e[i] * ref;
    if (fabs(e[i]) > fabs(e[arg])) arg = i;
  }
  double sign = dot < 0.0 || (dot == 0.0 && e[arg] < 0.0) ? -1.0 : 1.0;
  for (int i = 0; i < n; i++) map[i] = (float)(sign * scale * e[i]);
  return 0;
}
