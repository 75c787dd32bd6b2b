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
 *
 * Threads. Each (item, group) is split into tasks for the session's pool (engine/pool.h), by a
 * rule that looks at the shapes only, never at the thread count, so exactly the same BLAS calls
 * run whatever the threads (single-threaded BLAS; every output element is one call's sum):
 *   gemm, >= CONV_TASKS bands   one task per band: im2col into the thread's scratch slice,
 *                               then Y_band = W · col.
 *   gemm, fewer bands           im2col of every band into shared scratch (parallel over
 *                               bands), then tasks (band, chunk of W's rows) of >= CONV_MIN_ROWS.
 *   1x1                         tasks over row chunks of W.
 *   depthwise                   one output plane per task.
 * The padded copy is filled in parallel over channel blocks. Backward runs on one thread.
 */
#include <limits.h>
#include <string.h>

#include "engine/cpu.h"
#include "engine/dnnl.h"
#include "engine/graph_internal.h"
#include "engine/op.h"
#include "engine/op_window.h"
#include "engine/pool.h"

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
  int64_t col_floats; /* column band + slack (a thread's scratch slice) */
  int64_t pad_floats; /* padded copy (+ slack), in the shared scratch */
  /* Parallel split, fixed at load from the shapes alone (never from the thread count, so the
   * same BLAS calls run whatever the threads; see "Threads" above). */
  int64_t n_bands; /* gemm kind: bands of p->band output rows */
  bool whole_col;  /* gemm kind, few bands: im2col of the whole output into shared scratch,
                      then GEMMs over (band, row chunk of W) */
  int64_t m_chunk; /* rows of W per GEMM task (gemm whole_col, 1x1 row split) */
  int64_t n_chunk; /* columns per GEMM task (1x1: the whole plane) */
  bool dw_tmp;     /* depthwise 3x3 stride 1: a thread scratch slice for the padded plane */
  /* oneDNN convolution (dnnl.h; load-time pass camd__conv_attach_dnnl, graph-owned), used when
   * the plan gives this node a channel-blocked input or output; NULL: camd's kernels only. */
  const camd__dnnl_conv *dnnl;
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
static void pad_input(const conv_params *p, const float *restrict x, float *restrict pbuf,
                      int64_t c0, int64_t c1) {
  const int64_t PH = p->ph, PWF = p->pwf, H = p->h, W = p->w, S = p->nph;
  for (int64_t c = c0; c < c1; c++) {
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
  if (c1 == p->cg) memset(pbuf + p->cg * S * PH * PWF, 0, CONV_SLACK * sizeof(float));
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

/* Depthwise forward kernel, compiled once per instruction set (op_dw_kernel.h) and chosen at
 * run time (engine/cpu.h: the CPU's level, lowered by CAMD_CPU). ISO C mode keeps GCC from
 * contracting a*b+c into FMA, so every variant computes the same bits. */
#define DW_NAME dw_plane_forward_generic
#define DW_TARGET
#include "engine/op_dw_kernel.h"
#if defined(__x86_64__)
#define DW_NAME dw_plane_forward_avx2
#define DW_TARGET __attribute__((target("avx2,fma")))
#include "engine/op_dw_kernel.h"
#define DW_NAME dw_plane_forward_avx512
#define DW_TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")))
#include "engine/op_dw_kernel.h"
#endif

typedef void (*dw_plane_fn)(const conv_params *p, const float *restrict xc,
                            const float *restrict wm, float bias, float *restrict ym,
                            float *restrict tmp);

static dw_plane_fn dw_plane_forward_for(camd__cpu_level level) {
#if defined(__x86_64__)
  if (level == CAMD_CPU_AVX512) return dw_plane_forward_avx512;
  if (level == CAMD_CPU_AVX2) return dw_plane_forward_avx2;
#endif
  (void)level;
  return dw_plane_forward_generic;
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

/* One (item, group) of a forward: what the parallel tasks below share. */
typedef struct conv_job {
  const conv_params *p;
  const camd_op_ctx *ctx;
  const float *xg, *wg, *bg; /* bg: this group's bias or NULL */
  const float *src;          /* im2col source: xg or the padded copy */
  float *yg;
  float *col; /* whole_col: the shared column matrix */
  float *pbuf;
} conv_job;

#define PAD_CHANNELS 8 /* channels per padding task */

static void task_pad(void *arg, int64_t i, int thread) {
  (void)thread;
  const conv_job *j = arg;
  const int64_t c0 = i * PAD_CHANNELS,
                c1 = c0 + PAD_CHANNELS < j->p->cg ? c0 + PAD_CHANNELS : j->p->cg;
  pad_input(j->p, j->xg, j->pbuf, c0, c1);
}

/* Rows [m0, m1) of W_g times columns [c0, c1) of the column matrix `col` (ld ldb) into Y_g. */
static void conv_gemm_rows(const conv_job *j, int64_t m0, int64_t m1, const float *col, int64_t ldb,
                           int64_t c0, int64_t c1) {
  const conv_params *p = j->p;
  const int64_t ohw = p->oh * p->ow, kdim = p->cg * p->kh * p->kw;
  if (j->bg) fill_bias(j->yg + m0 * ohw, j->bg + m0, m1 - m0, ohw, c0, c1);
  camd_gemm(false, false, (int)(m1 - m0), (int)(c1 - c0), (int)kdim, 1.0f, j->wg + m0 * kdim,
            (int)kdim, col, (int)ldb, j->bg ? 1.0f : 0.0f, j->yg + m0 * ohw + c0, (int)ohw);
  if (j->ctx->post) {
    for (int64_t m = m0; m < m1; m++)
      camd__post_op_apply(j->ctx->post, j->yg + m * ohw + c0, c1 - c0);
  }
}

static void band_rows(const conv_params *p, int64_t band, int64_t *r0, int64_t *r1) {
  *r0 = band * p->band;
  *r1 = *r0 + p->band < p->oh ? *r0 + p->band : p->oh;
}

/* gemm kind, one band per task: im2col into the thread's slice, then all of W. */
static void task_band(void *arg, int64_t band, int thread) {
  const conv_job *j = arg;
  const conv_params *p = j->p;
  float *col = j->ctx->thread_scratch + (size_t)thread * j->ctx->thread_stride;
  int64_t r0, r1;
  band_rows(p, band, &r0, &r1);
  im2col(p, j->src, r0, r1, col);
  conv_gemm_rows(j, 0, p->mg, col, (r1 - r0) * p->ow, r0 * p->ow, r1 * p->ow);
}

/* gemm kind, whole_col: im2col of one band into the shared column matrix. */
static void task_im2col(void *arg, int64_t band, int thread) {
  (void)thread;
  const conv_job *j = arg;
  int64_t r0, r1;
  band_rows(j->p, band, &r0, &r1);
  im2col(j->p, j->src, r0, r1, j->col + band * j->p->col_floats);
}

/* gemm kind, whole_col: task (band, row chunk of W). */
static void task_band_rows(void *arg, int64_t i, int thread) {
  (void)thread;
  const conv_job *j = arg;
  const conv_params *p = j->p;
  const int64_t n_m = (p->mg + p->m_chunk - 1) / p->m_chunk, band = i / n_m;
  const int64_t m0 = (i % n_m) * p->m_chunk, m1 = m0 + p->m_chunk < p->mg ? m0 + p->m_chunk : p->mg;
  int64_t r0, r1;
  band_rows(p, band, &r0, &r1);
  conv_gemm_rows(j, m0, m1, j->col + band * p->col_floats, (r1 - r0) * p->ow, r0 * p->ow,
                 r1 * p->ow);
}

/* 1x1 kind: task (row chunk of W, column chunk of X). */
static void task_1x1(void *arg, int64_t i, int thread) {
  (void)thread;
  const conv_job *j = arg;
  const conv_params *p = j->p;
  const int64_t hw = p->h * p->w, n_c = (hw + p->n_chunk - 1) / p->n_chunk;
  const int64_t m0 = (i / n_c) * p->m_chunk, m1 = m0 + p->m_chunk < p->mg ? m0 + p->m_chunk : p->mg;
  const int64_t c0 = (i % n_c) * p->n_chunk, c1 = c0 + p->n_chunk < hw ? c0 + p->n_chunk : hw;
  if (j->bg) fill_bias(j->yg + m0 * hw, j->bg + m0, m1 - m0, hw, c0, c1);
  camd_gemm(false, false, (int)(m1 - m0), (int)(c1 - c0), (int)p->cg, 1.0f, j->wg + m0 * p->cg,
            (int)p->cg, j->xg + c0, (int)hw, j->bg ? 1.0f : 0.0f, j->yg + m0 * hw + c0, (int)hw);
  if (j->ctx->post) {
    for (int64_t m = m0; m < m1; m++)
      camd__post_op_apply(j->ctx->post, j->yg + m * hw + c0, c1 - c0);
  }
}

/* Depthwise: one output plane per task (all items). */
typedef struct dw_job {
  const conv_params *p;
  const camd_op_ctx *ctx;
  const float *x, *w, *b;
  float *y;
  dw_plane_fn plane;
} dw_job;

static void task_dw(void *arg, int64_t i, int thread) {
  const dw_job *j = arg;
  const conv_params *p = j->p;
  const int64_t n = i / p->m, m = i % p->m, mult = p->m / p->c;
  const int64_t hw = p->h * p->w, ohw = p->oh * p->ow, kk = p->kh * p->kw;
  float *tmp = p->dw_tmp ? j->ctx->thread_scratch + (size_t)thread * j->ctx->thread_stride : NULL;
  float *y = j->y + (n * p->m + m) * ohw;
  j->plane(p, j->x + (n * p->c + m / mult) * hw, j->w + m * kk, j->b ? j->b[m] : 0.0f, y, tmp);
  camd__post_op_apply(j->ctx->post, y, ohw);
}

/* W [M, C/group, kh, kw] for camd's kernels: the constant, rebuilt first when the oneDNN pass
 * dropped its pages (dnnl.h). */
static const float *conv_weights(const camd_op_ctx *ctx) {
  const conv_params *p = ctx->params;
  return p->dnnl ? camd__dnnl_conv_nchw_weights(p->dnnl) : ctx->in[1].data;
}

static void conv_forward(const camd_op_ctx *ctx) {
  const conv_params *p = ctx->params;
  const int64_t batch = ctx->in[0].shape.dims[0];
  const float *x = ctx->in[0].data;
  const float *b = p->has_bias ? ctx->in[2].data : NULL;
  float *y = ctx->out[0].data;
  const int64_t hw = p->h * p->w, ohw = p->oh * p->ow, kk = p->kh * p->kw;

  if (p->dnnl && ctx->dnnl && /* prepared by the plan's layout pass (plan_layout.c) */
      camd__dnnl_conv_forward(ctx->dnnl, p->dnnl, ctx->node_index, ctx->post, ctx->sum_in, x,
                              ctx->in_blocked & 1u, y, ctx->out_blocked & 1u, batch, ctx->pool))
    return;
  const float *w = conv_weights(ctx);
  if (p->batch_gemm) { /* Y[n, M] = X[n, C] · W[M, C]ᵀ, item by item (batch invariance:
                        * a BLAS sums in another order for another number of rows) */
    for (int64_t n = 0; n < batch; n++) {
      if (b) memcpy(y + n * p->m, b, (size_t)p->m * sizeof(float));
      camd_gemm(false, true, 1, (int)p->m, (int)p->c, 1.0f, x + n * p->c, (int)p->c, w, (int)p->c,
                b ? 1.0f : 0.0f, y + n * p->m, (int)p->m);
      camd__post_op_apply(ctx->post, y + n * p->m, p->m);
    }
    return;
  }
  if (p->kind == CONV_DEPTHWISE) {
    dw_job dj = {p, ctx, x, w, b, y, dw_plane_forward_for(camd__cpu())};
    camd__pool_for(ctx->pool, batch * p->m, task_dw, &dj);
    return;
  }
  for (int64_t n = 0; n < batch; n++) {
    for (int64_t g = 0; g < p->group; g++) {
      conv_job j = {.p = p, .ctx = ctx};
      j.xg = x + (n * p->c + g * p->cg) * hw;
      j.wg = w + g * p->mg * p->cg * kk;
      j.bg = b ? b + g * p->mg : NULL;
      j.yg = y + (n * p->m + g * p->mg) * ohw;
      if (p->kind == CONV_1X1) {
        const int64_t tasks =
            ((p->mg + p->m_chunk - 1) / p->m_chunk) * ((hw + p->n_chunk - 1) / p->n_chunk);
        camd__pool_for(ctx->pool, tasks, task_1x1, &j);
        continue;
      }
      j.src = j.xg;
      if (p->pad_copy) {
        j.pbuf = ctx->scratch;
        camd__pool_for(ctx->pool, (p->cg + PAD_CHANNELS - 1) / PAD_CHANNELS, task_pad, &j);
        j.src = j.pbuf;
      }
      if (!p->whole_col) {
        camd__pool_for(ctx->pool, p->n_bands, task_band, &j);
      } else {
        j.col = ctx->scratch + p->pad_floats;
        camd__pool_for(ctx->pool, p->n_bands, task_im2col, &j);
        camd__pool_for(ctx->pool, p->n_bands * ((p->mg + p->m_chunk - 1) / p->m_chunk),
                       task_band_rows, &j);
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
  const float *w = conv_weights(ctx);
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
        float *col = ctx->scratch + p->pad_floats;
        float *dst = dxg;
        if (p->pad_copy) {
          dst = ctx->scratch;
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

/* Parallel split (see "Threads"): about CONV_TASKS tasks per (item, group), decided from the
 * shapes only. A GEMM task keeps at least CONV_MIN_ROWS rows of W. */
#define CONV_TASKS 4
#define CONV_MIN_ROWS 32

static int64_t round16(int64_t v) {
  return (v + 15) / 16 * 16;
}

/* Rows of W per task when `bands` column blocks already give that many tasks. */
static int64_t row_chunk(int64_t rows, int64_t bands) {
  int64_t parts = (CONV_TASKS + bands - 1) / bands;
  int64_t chunk = round16((rows + parts - 1) / parts);
  if (chunk < CONV_MIN_ROWS) chunk = CONV_MIN_ROWS;
  return chunk < rows ? chunk : rows;
}

static bool fits_int(int64_t v) {
  return v >= 0 && v <= INT_MAX;
}

/* X and W (a constant), and the optional constant B: types, ranks, the group split. */
static int conv_check_inputs(camd_graph *g, camd_node *node, camd_shape *xs, camd_shape *ws,
                             int64_t *group, bool *has_bias, camd_error *err) {
  if (node->n_in < 2 || node->n_in > 3 || node->in[0] < 0 || node->in[1] < 0) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects inputs X, W and optional B");
  }
  if (node->n_out != 1) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects exactly one output");
  }
  camd_shape bs;
  camd_dtype xt, wt, bt;
  const void *xd, *wd, *bd;
  if (camd__node_input(g, node, 0, xs, &xt, &xd) || camd__node_input(g, node, 1, ws, &wt, &wd)) {
    return camd__node_error(err, node, CAMD_E_INVALID, "missing input X or W");
  }
  if (xt != CAMD_FLOAT32 || wt != CAMD_FLOAT32) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED, "only float32 X and W are supported");
  }
  if (xs->ndim < 3 || xs->ndim > 4) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "input X has rank %d; only 1-D (N,C,L) and 2-D (N,C,H,W) "
                            "convolutions are supported",
                            xs->ndim);
  }
  if (!wd || !(node->in_const & 2u)) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "weight W is computed at run time; camd needs convolution weights as "
                            "constant initializers (re-export the model with constant folding)");
  }
  if (ws->ndim != xs->ndim) {
    return camd__node_error(err, node, CAMD_E_SHAPE, "weight W has rank %d, X has rank %d",
                            ws->ndim, xs->ndim);
  }
  int rc = camd__attr_int(node, "group", 1, group, err);
  if (rc) return rc;
  const int64_t c = xs->dims[1], m = ws->dims[0], cg = ws->dims[1];
  if (*group < 1 || c % *group != 0 || m % *group != 0 || cg * *group != c) {
    return camd__node_error(err, node, CAMD_E_SHAPE,
                            "group %lld does not fit X channels %lld, W [%lld, %lld, ...]",
                            (long long)*group, (long long)c, (long long)m, (long long)cg);
  }
  *has_bias = node->n_in == 3 && node->in[2] >= 0;
  if (*has_bias) {
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
  return 0;
}

/* Scratch of each path (forward block, per thread, backward) and the kernel details. */
static int conv_plan_scratch(camd_node *node, conv_params *p, camd_error *err) {
  const int64_t kk = p->kh * p->kw, hw = p->h * p->w, cg = p->cg;
  if (p->kind == CONV_GEMM) {
    p->band = conv_band(cg * kk, p->ow, p->oh);
    p->ph = (p->oh - 1) * p->sh + (p->kh - 1) * p->dh + 1;
    p->pw = (p->ow - 1) * p->sw + (p->kw - 1) * p->dw + 1;
    /* Copy (and split strided columns into phases) when a tap reads padding, or when a
     * strided kernel wider than 1 would otherwise gather the same input kw times. */
    p->pad_copy =
        p->pt > 0 || p->pl > 0 || p->ph > p->h || p->pw > p->w || (p->sw > 1 && p->kw > 1);
    p->nph = p->pad_copy ? p->sw : 1;
    p->pwf = (p->pw + p->nph - 1) / p->nph;
    /* Whole 64-byte lines (the session's block and its slices start on 64-byte lines). */
    p->col_floats = round16(cg * kk * p->band * p->ow + CONV_SLACK);
    p->pad_floats = p->pad_copy ? round16(cg * p->nph * p->ph * p->pwf + CONV_SLACK) : 0;
    p->n_bands = (p->oh + p->band - 1) / p->band;
    p->whole_col = p->n_bands < CONV_TASKS;
    p->m_chunk = row_chunk(p->mg, p->n_bands);
    if (!fits_int(p->pad_floats + p->n_bands * p->col_floats)) {
      return camd__node_error(err, node, CAMD_E_LIMIT, "convolution is too large");
    }
    node->scratch_floats =
        (size_t)(p->pad_floats + (p->whole_col ? p->n_bands * p->col_floats : 0));
    node->thread_scratch_floats = p->whole_col ? 0 : (size_t)p->col_floats;
    node->bwd_scratch_floats = (size_t)(p->pad_floats + p->col_floats);
  } else {
    /* 1x1: chunks of W's rows. (Column chunks were tried: with OpenBLAS's Haswell kernels they
     * round differently enough to push the oracle's kink-sensitive resnet50 gradient past its
     * threshold; row chunks keep it where the unsplit GEMM had it.) */
    p->m_chunk = row_chunk(p->mg, 1);
    p->n_chunk = hw;
    node->scratch_floats = 0;
    node->thread_scratch_floats = 0;
    node->bwd_scratch_floats = 0;
    if (p->kind == CONV_DEPTHWISE && p->kh == p->kw && (p->kh == 3 || p->kh == 5) && p->sh == 1 &&
        p->sw == 1 && p->dh == 1 && p->dw == 1 && p->pt >= 0 &&
        p->pl >= 0) { /* padded plane + flat result (op_dw_kernel.h) */
      const int64_t k1 = p->kh - 1;
      p->dw_tmp = true;
      node->thread_scratch_floats =
          (size_t)round16((p->oh + k1) * (p->ow + k1) + k1 + p->oh * (p->ow + k1) + CONV_SLACK);
    }
  }
  return 0;
}

static int conv_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  camd_shape xs, ws;
  int64_t group = 1;
  conv_params tmp;
  memset(&tmp, 0, sizeof(tmp));
  int rc = conv_check_inputs(g, node, &xs, &ws, &group, &tmp.has_bias, err);
  if (rc) return rc;
  const int nsp = xs.ndim - 2;
  const int64_t c = xs.dims[1], m = ws.dims[0], cg = ws.dims[1];
  rc = camd__window_parse(node, nsp, &ws.dims[2], false, &tmp.win, err);
  if (rc) return rc;
  rc = camd__window_resolve(node, &tmp.win, &xs.dims[2], &tmp.geom, err);
  if (rc) return rc;

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
  return conv_plan_scratch(node, p, err);
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

extern const camd_op_desc camd__op_conv;

const camd__dnnl_conv *camd__conv_dnnl(const camd_node *n) {
  if (n->op != &camd__op_conv || !n->params) return NULL;
  return ((const conv_params *)n->params)->dnnl;
}

int camd__conv_attach_dnnl_node(camd_graph *g, camd_node *n, bool *attached, camd_error *err) {
  *attached = false;
  if (n->op != &camd__op_conv || !n->params) return 0;
  conv_params *p = n->params;
  if (p->nsp != 2) return 0;
  const camd__dnnl_conv_geom geo = {p->c,  p->m,  p->group, p->h,  p->w,  p->oh, p->ow, p->kh,
                                    p->kw, p->sh, p->sw,    p->dh, p->dw, p->pt, p->pl};
  camd_shape ws, bs;
  camd_dtype wt, bt;
  const void *wd = NULL, *bd = NULL;
  if (camd__node_input(g, n, 1, &ws, &wt, &wd) ||
      (p->has_bias && camd__node_input(g, n, 2, &bs, &bt, &bd)) || !wd)
    return 0;
  /* W's pages may go when nothing else reads it (another node, a graph output). */
  const int wv = n->in[1];
  bool only_reader = !g->values[wv].is_output;
  for (int k = 0; k < g->n_nodes && only_reader; k++) {
    const camd_node *o = &g->nodes[k];
    for (int q = 0; q < o->n_in && only_reader; q++) only_reader = o == n || o->in[q] != wv;
  }
  camd__dnnl_conv *c = NULL;
  int rc = camd__dnnl_conv_attach(g, n, &geo, (float *)wd, bd, only_reader, &c, err);
  if (rc) return rc;
  p->dnnl = c;
  *attached = c != NULL;
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
                                    .grad_inputs = CAMD_IN(0),
                                    .accepts_post_op = true};
