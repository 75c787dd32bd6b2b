/* Conv (ONNX opset 1..22): 1-D and 2-D convolution forward and input-gradient backward.
 *
 * Layout. X is NCHW (a 1-D conv N,C,L runs as H = 1), W is [M, C/group, kh, kw] (a constant:
 * it is never differentiated), optional B is [M]. Y is [N, M, OH, OW]. Write Cg = C/group,
 * Mg = M/group, K = kh*kw, OHW = OH*OW. Every kernel loops over the batch one item at a time;
 * scratch is sized for one item and one group.
 *
 * Three kernels, chosen once at load time:
 *   gemm       im2col then GEMM per (item, group), in bands of output rows so the column
 *              buffer stays in cache (about CAMD_CONV_BAND_FLOATS floats, >= 256 columns):
 *                col[Cg*K, band*OW]  row (c*kh + i)*kw + j holds x[c, oh*sh - pt + i*dh,
 *                                    ow*sw - pl + j*dw] (zero in the padding)
 *                Y_g[Mg, band rows] = W_g[Mg, Cg*K] · col   (ldc = OHW; bias pre-filled, beta 1)
 *              backward per band: col = W_gᵀ[Cg*K, Mg] · dY_g[Mg, band rows], col2im adds it
 *              back (into a padded gradient buffer, whose interior is then added into dX).
 *   1x1        kernel 1x1, stride 1, no padding: X_g[Cg, H*W] already is the column matrix, so
 *                Y_g[Mg, HW] = W_g[Mg, Cg] · X_g[Cg, HW] and dX_g[Cg, HW] += W_gᵀ · dY_g.
 *              When additionally H*W == 1 and group == 1 (squeeze-excitation style heads) it
 *              is Y[n, M] = X[n, C] · Wᵀ, dX[n, C] += dY[n, M] · W per item n (one row per
 *              call whatever the batch: batch-invariant sums).
 *   depthwise  group == C > 1 (Cg == 1, M = C * multiplier): direct loops per output plane,
 *              no im2col. For each kernel tap the valid output rectangle is computed once,
 *              so the inner loop is a branch-free axpy over one output row.
 * Borders without per-element checks: when any tap can read padding (or the kernel is strided
 * and wider than 1), each group's input is first copied once into a zero-padded buffer whose
 * rows are split into sw column phases (see pad_input). Every im2col row is then one
 * contiguous run copied in 8-float blocks (no library call per short row; the buffers carry
 * CONV_SLACK floats of slack for the overrun). Otherwise im2col reads X directly.
 * Every matrix product goes through camd_gemm.
 */
#include <limits.h>
#include <string.h>

#include "engine/op.h"
#include "engine/op_window.h"

enum { CONV_GEMM = 0, CONV_1X1, CONV_DEPTHWISE };

/* Floats of slack after the column band and the padded copy (8-float block copies). */
#define CONV_SLACK 16

typedef struct conv_params {
  camd__window win;
  camd__window_geom geom; /* resolved for the graph's per-sample input shape */
  int nsp;
  int kind;
  bool batch_gemm; /* 1x1 with H*W == 1 and group == 1: one GEMM for the whole batch */
  bool has_bias;
  int64_t c, m, group, cg, mg;
  int64_t kh, kw, sh, sw, dh, dw, pt, pl;
  int64_t h, w, oh, ow;
  int64_t band;       /* output rows per im2col band (gemm kind) */
  int64_t ph, pw;     /* padded input plane covering every tap (gemm kind) */
  bool pad_copy;      /* im2col reads a zero-padded, phase-split copy (see pad_input) */
  int64_t nph, pwf;   /* column phases (sw when pad_copy, else 1) and columns per phase */
  int64_t col_floats; /* column band + slack; the padded copy follows it in scratch */
} conv_params;

/* ---- padding, im2col, col2im ---- */

/* Copies n (rounded up to 8) floats in 8-float blocks: no library call for short rows. The
 * caller guarantees 8 floats of slack after both ranges. (No restrict: keeps GCC from turning
 * the loop back into a memcpy call.) */
static inline void copy_blocks8(float *d, const float *s, int64_t n) {
  for (int64_t q = 0; q < n; q += 8) memcpy(d + q, s + q, 8 * sizeof(float));
}

/* Copies one group's input planes into the padded buffer, zero outside the input. With a
 * column stride sw > 1 each padded row is split into sw phases (phase f holds padded columns
 * f, f + sw, f + 2 sw, ...), so every tap of im2col reads one contiguous run:
 *   pbuf[((c * sw + f) * PH + r) * PWF + j] = xpad[c, r, j * sw + f]. */
static void pad_input(const conv_params *p, const float *restrict x, float *restrict pbuf) {
  const int64_t PH = p->ph, PWF = p->pwf, H = p->h, W = p->w, S = p->nph;
  for (int64_t c = 0; c < p->cg; c++) {
    const float *xc = x + c * H * W;
    for (int64_t f = 0; f < S; f++) {
      int64_t j0, j1; /* phase columns whose input column f + j*S - pl is inside [0, W) */
      camd__window_range(f - p->pl, S, W, PWF, &j0, &j1);
      float *pf = pbuf + (c * S + f) * PH * PWF;
      for (int64_t r = 0; r < PH; r++) {
        float *dst = pf + r * PWF;
        const int64_t ih = r - p->pt;
        if (ih < 0 || ih >= H || j1 <= j0) {
          memset(dst, 0, (size_t)PWF * sizeof(float));
          continue;
        }
        const float *xr = xc + ih * W + f - p->pl;
        if (j0 > 0) memset(dst, 0, (size_t)j0 * sizeof(float));
        if (S == 1) {
          memcpy(dst + j0, xr + j0, (size_t)(j1 - j0) * sizeof(float));
        } else {
          for (int64_t j = j0; j < j1; j++) dst[j] = xr[j * S];
        }
        if (j1 < PWF) memset(dst + j1, 0, (size_t)(PWF - j1) * sizeof(float));
      }
    }
  }
  memset(pbuf + p->cg * S * PH * PWF, 0, CONV_SLACK * sizeof(float));
}

/* Start of the run tap (ki, kj) of channel c reads for output row 0, and the distance between
 * output rows. From the padded buffer when p->pad_copy, else from the input itself. */
static inline const float *tap_base(const conv_params *p, const float *src, int64_t c, int64_t ki,
                                    int64_t kj, int64_t *row_step) {
  if (p->pad_copy) {
    const int64_t off = kj * p->dw, f = off % p->nph;
    *row_step = p->sh * p->pwf;
    return src + ((c * p->nph + f) * p->ph + ki * p->dh) * p->pwf + off / p->nph;
  }
  *row_step = p->sh * p->w;
  return src + (c * p->h + ki * p->dh) * p->w + kj * p->dw;
}

/* Column matrix of output rows [r0, r1): Cg*K rows of (r1 - r0) * OW columns; row
 * (c*kh + i)*kw + j holds xpad[c, o*sh + i*dh, q*sw + j*dw]. */
static void im2col(const conv_params *p, const float *src, int64_t r0, int64_t r1, float *col) {
  const int64_t OW = p->ow, ncol = (r1 - r0) * OW;
  for (int64_t c = 0; c < p->cg; c++) {
    for (int64_t ki = 0; ki < p->kh; ki++) {
      for (int64_t kj = 0; kj < p->kw; kj++) {
        float *row = col + ((c * p->kh + ki) * p->kw + kj) * ncol;
        int64_t step;
        const float *base = tap_base(p, src, c, ki, kj, &step);
        for (int64_t o = r0; o < r1; o++) {
          float *d = row + (o - r0) * OW;
          const float *sr = base + o * step;
          if (p->pad_copy) {
            copy_blocks8(d, sr, OW); /* contiguous run, slack after the buffers */
          } else if (p->sw == 1) {
            memcpy(d, sr, (size_t)OW * sizeof(float));
          } else {
            const int64_t st = p->sw;
            for (int64_t q = 0; q < OW; q++) d[q] = sr[q * st];
          }
        }
      }
    }
  }
}

/* Transpose of im2col: adds the band's columns into dst (the padded gradient buffer when
 * p->pad_copy, else dX itself). */
static void col2im_add(const conv_params *p, const float *restrict col, int64_t r0, int64_t r1,
                       float *dst) {
  const int64_t OW = p->ow, ncol = (r1 - r0) * OW;
  for (int64_t c = 0; c < p->cg; c++) {
    for (int64_t ki = 0; ki < p->kh; ki++) {
      for (int64_t kj = 0; kj < p->kw; kj++) {
        const float *row = col + ((c * p->kh + ki) * p->kw + kj) * ncol;
        int64_t step;
        float *base = (float *)tap_base(p, dst, c, ki, kj, &step);
        for (int64_t o = r0; o < r1; o++) {
          const float *restrict sr = row + (o - r0) * OW;
          float *restrict d = base + o * step;
          if (p->pad_copy || p->sw == 1) {
            for (int64_t q = 0; q < OW; q++) d[q] += sr[q];
          } else {
            const int64_t st = p->sw;
            for (int64_t q = 0; q < OW; q++) d[q * st] += sr[q];
          }
        }
      }
    }
  }
}

/* Adds the input part of the padded gradient buffer into dx (inverse of pad_input). */
static void unpad_add(const conv_params *p, const float *restrict pbuf, float *restrict dx) {
  const int64_t PH = p->ph, PWF = p->pwf, H = p->h, W = p->w, S = p->nph;
  for (int64_t c = 0; c < p->cg; c++) {
    for (int64_t f = 0; f < S; f++) {
      int64_t j0, j1;
      camd__window_range(f - p->pl, S, W, PWF, &j0, &j1);
      const float *pf = pbuf + (c * S + f) * PH * PWF;
      for (int64_t r = 0; r < PH; r++) {
        const int64_t ih = r - p->pt;
        if (ih < 0 || ih >= H) continue;
        const float *s = pf + r * PWF;
        float *d = dx + (c * H + ih) * W;
        for (int64_t j = j0; j < j1; j++) d[j * S + f - p->pl] += s[j];
      }
    }
  }
}

/* ---- depthwise direct loops (one input plane -> one output plane) ---- */

static void dw_plane_forward(const conv_params *p, const float *restrict xc,
                             const float *restrict wm, float bias, float *restrict ym) {
  const int64_t W = p->w, OW = p->ow, ohw = p->oh * p->ow;
  for (int64_t i = 0; i < ohw; i++) ym[i] = bias;
  for (int64_t ki = 0; ki < p->kh; ki++) {
    const int64_t offh = ki * p->dh - p->pt;
    int64_t oh0, oh1;
    camd__window_range(offh, p->sh, p->h, p->oh, &oh0, &oh1);
    for (int64_t kj = 0; kj < p->kw; kj++) {
      const int64_t offw = kj * p->dw - p->pl;
      int64_t ow0, ow1;
      camd__window_range(offw, p->sw, W, OW, &ow0, &ow1);
      const float wv = wm[ki * p->kw + kj];
      for (int64_t o = oh0; o < oh1; o++) {
        float *yr = ym + o * OW;
        const float *xr = xc + (o * p->sh + offh) * W + offw;
        if (p->sw == 1) {
          for (int64_t q = ow0; q < ow1; q++) yr[q] += wv * xr[q];
        } else {
          const int64_t s = p->sw;
          for (int64_t q = ow0; q < ow1; q++) yr[q] += wv * xr[q * s];
        }
      }
    }
  }
}

static void dw_plane_backward(const conv_params *p, const float *restrict dy,
                              const float *restrict wm, float *restrict dxc) {
  const int64_t W = p->w, OW = p->ow;
  for (int64_t ki = 0; ki < p->kh; ki++) {
    const int64_t offh = ki * p->dh - p->pt;
    int64_t oh0, oh1;
    camd__window_range(offh, p->sh, p->h, p->oh, &oh0, &oh1);
    for (int64_t kj = 0; kj < p->kw; kj++) {
      const int64_t offw = kj * p->dw - p->pl;
      int64_t ow0, ow1;
      camd__window_range(offw, p->sw, W, OW, &ow0, &ow1);
      const float wv = wm[ki * p->kw + kj];
      for (int64_t o = oh0; o < oh1; o++) {
        const float *yr = dy + o * OW;
        float *xr = dxc + (o * p->sh + offh) * W + offw;
        if (p->sw == 1) {
          for (int64_t q = ow0; q < ow1; q++) xr[q] += wv * yr[q];
        } else {
          const int64_t s = p->sw;
          for (int64_t q = ow0; q < ow1; q++) xr[q * s] += wv * yr[q];
        }
      }
    }
  }
}

/* ---- forward / backward ---- */

/* Columns [c0, c1) of each of the m rows (length ld) of y get that row's bias. */
static void fill_bias(float *y, const float *bias, int64_t m, int64_t ld, int64_t c0, int64_t c1) {
  for (int64_t r = 0; r < m; r++) {
    float *row = y + r * ld;
    const float bv = bias[r];
    for (int64_t i = c0; i < c1; i++) row[i] = bv;
  }
}

static void conv_forward(const camd_op_ctx *ctx) {
  const conv_params *p = ctx->params;
  const int64_t batch = ctx->in[0].shape.dims[0];
  const float *x = ctx->in[0].data, *w = ctx->in[1].data;
  const float *b = p->has_bias ? ctx->in[2].data : NULL;
  float *y = ctx->out[0].data;
  const int64_t hw = p->h * p->w, ohw = p->oh * p->ow, kk = p->kh * p->kw;

  if (p->batch_gemm) { /* Y[n, M] = X[n, C] · W[M, C]ᵀ, item by item (batch invariance:
                        * a BLAS sums in another order for another number of rows) */
    for (int64_t n = 0; n < batch; n++) {
      if (b) memcpy(y + n * p->m, b, (size_t)p->m * sizeof(float));
      camd_gemm(false, true, 1, (int)p->m, (int)p->c, 1.0f, x + n * p->c, (int)p->c, w, (int)p->c,
                b ? 1.0f : 0.0f, y + n * p->m, (int)p->m);
    }
    return;
  }
  for (int64_t n = 0; n < batch; n++) {
    const float *xn = x + n * p->c * hw;
    float *yn = y + n * p->m * ohw;
    if (p->kind == CONV_DEPTHWISE) {
      const int64_t mult = p->m / p->c;
      for (int64_t m = 0; m < p->m; m++) {
        dw_plane_forward(p, xn + (m / mult) * hw, w + m * kk, b ? b[m] : 0.0f, yn + m * ohw);
      }
      continue;
    }
    for (int64_t g = 0; g < p->group; g++) {
      float *yg = yn + g * p->mg * ohw;
      const float *wg = w + g * p->mg * p->cg * kk;
      const float *xg = xn + g * p->cg * hw;
      const float beta = b ? 1.0f : 0.0f;
      if (p->kind == CONV_1X1) {
        if (b) fill_bias(yg, b + g * p->mg, p->mg, ohw, 0, ohw);
        camd_gemm(false, false, (int)p->mg, (int)ohw, (int)p->cg, 1.0f, wg, (int)p->cg, xg, (int)hw,
                  beta, yg, (int)ohw);
      } else {
        float *col = ctx->scratch;
        const float *src = xg;
        if (p->pad_copy) {
          float *pbuf = ctx->scratch + p->col_floats;
          pad_input(p, xg, pbuf);
          src = pbuf;
        }
        for (int64_t r0 = 0; r0 < p->oh; r0 += p->band) {
          const int64_t r1 = r0 + p->band < p->oh ? r0 + p->band : p->oh;
          const int ncol = (int)((r1 - r0) * p->ow);
          im2col(p, src, r0, r1, col);
          if (b) fill_bias(yg, b + g * p->mg, p->mg, ohw, r0 * p->ow, r1 * p->ow);
          camd_gemm(false, false, (int)p->mg, ncol, (int)(p->cg * kk), 1.0f, wg, (int)(p->cg * kk),
                    col, ncol, beta, yg + r0 * p->ow, (int)ohw);
        }
      }
    }
  }
}

static void conv_backward(const camd_op_ctx *ctx) {
  const conv_params *p = ctx->params;
  float *dx = ctx->grad_in[0].data;
  const float *dy = ctx->grad_out[0].data;
  if (!dx || !dy) return;
  const int64_t batch = ctx->in[0].shape.dims[0];
  const float *w = ctx->in[1].data;
  const int64_t hw = p->h * p->w, ohw = p->oh * p->ow, kk = p->kh * p->kw;

  if (p->batch_gemm) { /* dX[n, C] += dY[n, M] · W[M, C], item by item */
    for (int64_t n = 0; n < batch; n++) {
      camd_gemm(false, false, 1, (int)p->c, (int)p->m, 1.0f, dy + n * p->m, (int)p->m, w, (int)p->c,
                1.0f, dx + n * p->c, (int)p->c);
    }
    return;
  }
  for (int64_t n = 0; n < batch; n++) {
    float *dxn = dx + n * p->c * hw;
    const float *dyn = dy + n * p->m * ohw;
    if (p->kind == CONV_DEPTHWISE) {
      const int64_t mult = p->m / p->c;
      for (int64_t m = 0; m < p->m; m++) {
        dw_plane_backward(p, dyn + m * ohw, w + m * kk, dxn + (m / mult) * hw);
      }
      continue;
    }
    for (int64_t g = 0; g < p->group; g++) {
      const float *dyg = dyn + g * p->mg * ohw;
      const float *wg = w + g * p->mg * p->cg * kk;
      float *dxg = dxn + g * p->cg * hw;
      if (p->kind == CONV_1X1) {
        camd_gemm(true, false, (int)p->cg, (int)hw, (int)p->mg, 1.0f, wg, (int)p->cg, dyg, (int)ohw,
                  1.0f, dxg, (int)hw);
      } else {
        float *col = ctx->scratch;
        float *dst = dxg;
        if (p->pad_copy) {
          dst = ctx->scratch + p->col_floats;
          memset(dst, 0, (size_t)(p->cg * p->nph * p->ph * p->pwf) * sizeof(float));
        }
        for (int64_t r0 = 0; r0 < p->oh; r0 += p->band) {
          const int64_t r1 = r0 + p->band < p->oh ? r0 + p->band : p->oh;
          const int ncol = (int)((r1 - r0) * p->ow);
          camd_gemm(true, false, (int)(p->cg * kk), ncol, (int)p->mg, 1.0f, wg, (int)(p->cg * kk),
                    dyg + r0 * p->ow, (int)ohw, 0.0f, col, ncol);
          col2im_add(p, col, r0, r1, dst);
        }
        if (p->pad_copy) unpad_add(p, dst, dxg);
      }
    }
  }
}

/* ---- load time ---- */

/* Output rows per im2col band: the column buffer stays near CAMD_CONV_BAND_FLOATS (so it is
 * still in cache when the GEMM reads it) while each GEMM keeps at least BAND_MIN_COLS columns. */
#ifndef CAMD_CONV_BAND_FLOATS
#define CAMD_CONV_BAND_FLOATS (256 * 1024)
#endif
#define BAND_MIN_COLS 256
static int64_t conv_band(int64_t rows, int64_t ow, int64_t oh) {
  int64_t cols = CAMD_CONV_BAND_FLOATS / rows;
  if (cols < BAND_MIN_COLS) cols = BAND_MIN_COLS;
  int64_t band = (cols + ow - 1) / ow;
  if (band < 1) band = 1;
  if (band > oh) band = oh;
  return band;
}

static bool fits_int(int64_t v) {
  return v >= 0 && v <= INT_MAX;
}

static int conv_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  if (node->n_in < 2 || node->n_in > 3 || node->in[0] < 0 || node->in[1] < 0) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects inputs X, W and optional B");
  }
  if (node->n_out != 1) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects exactly one output");
  }
  camd_shape xs, ws, bs;
  camd_dtype xt, wt, bt;
  const void *xd, *wd, *bd;
  if (camd__node_input(g, node, 0, &xs, &xt, &xd) || camd__node_input(g, node, 1, &ws, &wt, &wd)) {
    return camd__node_error(err, node, CAMD_E_INVALID, "missing input X or W");
  }
  if (xt != CAMD_FLOAT32 || wt != CAMD_FLOAT32) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED, "only float32 X and W are supported");
  }
  if (xs.ndim < 3 || xs.ndim > 4) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "input X has rank %d; only 1-D (N,C,L) and 2-D (N,C,H,W) "
                            "convolutions are supported",
                            xs.ndim);
  }
  if (!wd || !(node->in_const & 2u)) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "weight W is computed at run time; camd needs convolution weights as "
                            "constant initializers (re-export the model with constant folding)");
  }
  if (ws.ndim != xs.ndim) {
    return camd__node_error(err, node, CAMD_E_SHAPE, "weight W has rank %d, X has rank %d", ws.ndim,
                            xs.ndim);
  }
  const int nsp = xs.ndim - 2;
  int64_t group = 1;
  int rc = camd__attr_int(node, "group", 1, &group, err);
  if (rc) return rc;
  const int64_t c = xs.dims[1], m = ws.dims[0], cg = ws.dims[1];
  if (group < 1 || c % group != 0 || m % group != 0 || cg * group != c) {
    return camd__node_error(err, node, CAMD_E_SHAPE,
                            "group %lld does not fit X channels %lld, W [%lld, %lld, ...]",
                            (long long)group, (long long)c, (long long)m, (long long)cg);
  }
  conv_params tmp;
  memset(&tmp, 0, sizeof(tmp));
  rc = camd__window_parse(node, nsp, &ws.dims[2], false, &tmp.win, err);
  if (rc) return rc;
  rc = camd__window_resolve(node, &tmp.win, &xs.dims[2], &tmp.geom, err);
  if (rc) return rc;

  tmp.has_bias = node->n_in == 3 && node->in[2] >= 0;
  if (tmp.has_bias) {
    if (camd__node_input(g, node, 2, &bs, &bt, &bd)) {
      return camd__node_error(err, node, CAMD_E_INVALID, "bad bias input");
    }
    if (!bd || !(node->in_const & 4u) || bt != CAMD_FLOAT32) {
      return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                              "bias B must be a float32 constant initializer");
    }
    if (bs.ndim != 1 || bs.dims[0] != m) {
      return camd__node_error(err, node, CAMD_E_SHAPE, "bias B must have shape [%lld]",
                              (long long)m);
    }
  }
  const camd__window *win = &tmp.win;
  const camd__window_geom *geo = &tmp.geom;
  tmp.nsp = nsp;
  tmp.c = c;
  tmp.m = m;
  tmp.group = group;
  tmp.cg = cg;
  tmp.mg = m / group;
  tmp.kh = win->kernel[0];
  tmp.kw = win->kernel[1];
  tmp.sh = win->stride[0];
  tmp.sw = win->stride[1];
  tmp.dh = win->dil[0];
  tmp.dw = win->dil[1];
  tmp.pt = geo->pad_begin[0];
  tmp.pl = geo->pad_begin[1];
  tmp.h = geo->in[0];
  tmp.w = geo->in[1];
  tmp.oh = geo->out[0];
  tmp.ow = geo->out[1];
  const int64_t kk = tmp.kh * tmp.kw, hw = tmp.h * tmp.w, ohw = tmp.oh * tmp.ow;
  const bool unit = tmp.kh == 1 && tmp.kw == 1 && tmp.sh == 1 && tmp.sw == 1 &&
                    geo->pad_begin[0] == 0 && geo->pad_begin[1] == 0 && geo->pad_end[0] == 0 &&
                    geo->pad_end[1] == 0;
  if (group > 1 && cg == 1) {
    tmp.kind = CONV_DEPTHWISE;
  } else if (unit) {
    tmp.kind = CONV_1X1;
  } else {
    tmp.kind = CONV_GEMM;
  }
  tmp.batch_gemm = tmp.kind == CONV_1X1 && group == 1 && hw == 1;
  /* camd_gemm takes int dimensions: everything one GEMM sees must fit. */
  if (!fits_int(cg * kk) || !fits_int(ohw) || !fits_int(hw) || !fits_int(m) || !fits_int(c) ||
      !fits_int(cg * kk * ohw) || !fits_int(m * ohw) || !fits_int(c * hw)) {
    return camd__node_error(err, node, CAMD_E_LIMIT, "convolution is too large");
  }
  conv_params *p = camd__node_params_alloc(g, sizeof(*p));
  if (!p) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  *p = tmp;
  node->params = p;
  if (tmp.kind == CONV_GEMM) {
    p->band = conv_band(cg * kk, tmp.ow, tmp.oh);
    p->ph = (tmp.oh - 1) * tmp.sh + (tmp.kh - 1) * tmp.dh + 1;
    p->pw = (tmp.ow - 1) * tmp.sw + (tmp.kw - 1) * tmp.dw + 1;
    /* Copy (and split strided columns into phases) when a tap reads padding, or when a
     * strided kernel wider than 1 would otherwise gather the same input kw times. */
    p->pad_copy =
        tmp.pt > 0 || tmp.pl > 0 || p->ph > tmp.h || p->pw > tmp.w || (tmp.sw > 1 && tmp.kw > 1);
    p->nph = p->pad_copy ? tmp.sw : 1;
    p->pwf = (p->pw + p->nph - 1) / p->nph;
    p->col_floats = cg * kk * p->band * tmp.ow + CONV_SLACK;
    const int64_t pad_floats = p->pad_copy ? cg * p->nph * p->ph * p->pwf + CONV_SLACK : 0;
    if (!fits_int(p->col_floats + pad_floats)) {
      return camd__node_error(err, node, CAMD_E_LIMIT, "convolution is too large");
    }
    /* Whole 64-byte lines (the session allocates scratch with aligned_alloc(64, ...)). */
    node->scratch_floats = ((size_t)(p->col_floats + pad_floats) + 15) / 16 * 16;
    node->bwd_scratch_floats = node->scratch_floats;
  } else {
    node->scratch_floats = 0;
    node->bwd_scratch_floats = 0;
  }
  return 0;
}

static int conv_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                      camd_error *err) {
  const conv_params *p = node->params;
  const camd_shape *x = &in[0];
  if (!p) return camd__node_error(err, node, CAMD_E_STATE, "not prepared");
  if (x->ndim != p->nsp + 2 || x->dims[1] != p->c || x->dims[x->ndim - 1] != p->w ||
      (p->nsp == 2 && x->dims[2] != p->h)) {
    char buf[96];
    camd_shape_format(x, buf, sizeof(buf));
    return camd__node_error(err, node, CAMD_E_SHAPE,
                            "input X %s does not match the shape the node was loaded with", buf);
  }
  if (!fits_int(x->dims[0]) || (p->batch_gemm && !fits_int(x->dims[0] * p->c))) {
    return camd__node_error(err, node, CAMD_E_LIMIT, "batch too large");
  }
  out[0].ndim = x->ndim;
  out[0].dims[0] = x->dims[0];
  out[0].dims[1] = p->m;
  if (p->nsp == 2) {
    out[0].dims[2] = p->oh;
    out[0].dims[3] = p->ow;
  } else {
    out[0].dims[2] = p->ow;
  }
  return 0;
}

const camd_op_desc camd__op_conv = {.op_type = "Conv",
                                    .opset_min = 1,
                                    .opset_max = 22,
                                    .prepare = conv_prepare,
                                    .infer = conv_infer,
                                    .forward = conv_forward,
                                    .backward = conv_backward,
                                    .bwd_needs_inputs = CAMD_IN(1),
                                    .bwd_needs_outputs = false,
                                    .grad_inputs = CAMD_IN(0)};
