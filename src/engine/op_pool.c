/* Pooling ops (opset 1..22): MaxPool, AveragePool (1-D and 2-D windows with strides, pads,
 * dilations, ceil_mode, auto_pad) and GlobalAveragePool / GlobalMaxPool (any rank), forward
 * and input-gradient backward.
 *
 * Window taps that fall into padding are skipped (MaxPool) or counted as zeros in the divisor
 * (AveragePool with count_include_pad; only padding inside [-pad_begin, size + pad_end) counts,
 * never the extra area ceil_mode adds, as PyTorch does). MaxPool's backward recomputes the
 * argmax from the input; ties go to the first maximum in row-major window order.
 */
#include <math.h>
#include <string.h>

#include "engine/dnnl.h"
#include "engine/op.h"
#include "engine/op_window.h"
#include "engine/pool.h"

typedef struct pool_params {
  int nsp;
  bool is_max;
  bool count_include_pad;
  int64_t c, h, w, oh, ow;
  int64_t kh, kw, sh, sw, dh, dw, pt, pl, pb, pr; /* pads: top, left, bottom, right */
} pool_params;

/* Window taps of output o along one axis: k in [lo, hi) lands in [0, size). */
static inline void taps(int64_t start, int64_t dil, int64_t size, int64_t k, int64_t *lo,
                        int64_t *hi) {
  if (start >= 0 && start + (k - 1) * dil < size) { /* interior: no division */
    *lo = 0;
    *hi = k;
    return;
  }
  camd__window_range(start, dil, size, k, lo, hi);
}

/* Runs fn over the planes in pieces of about CAMD_POOL_CHUNK input elements, on the session's
 * pool (one plane's result never depends on the split). */
static void pool_planes(const camd_op_ctx *ctx, int64_t planes, int64_t plane_elems,
                        camd__pool_range_fn fn) {
  const int64_t per =
      plane_elems > 0 && plane_elems < CAMD_POOL_CHUNK ? CAMD_POOL_CHUNK / plane_elems : 1;
  camd__pool_range(ctx->pool, planes, per, fn, (void *)ctx);
}

/* Output row loops shared by the forward kernels: for output row oh, every valid window row
 * i and kernel column j, the output columns [q0, q1) whose tap is inside the input form one
 * run, so the inner loop runs along an output row without bounds checks. */
static void maxpool_planes(void *arg, int64_t pl0, int64_t pl1) {
  const camd_op_ctx *ctx = arg;
  const pool_params *p = ctx->params;
  const int64_t hw = p->h * p->w, ohw = p->oh * p->ow, OW = p->ow;
  for (int64_t pl = pl0; pl < pl1; pl++) {
    const float *x = ctx->in[0].data + pl * hw;
    float *y = ctx->out[0].data + pl * ohw;
    for (int64_t oh = 0; oh < p->oh; oh++) {
      const int64_t hs = oh * p->sh - p->pt;
      int64_t i0, i1;
      taps(hs, p->dh, p->h, p->kh, &i0, &i1);
      float *restrict yr = y + oh * OW;
      for (int64_t q = 0; q < OW; q++) yr[q] = -INFINITY;
      for (int64_t i = i0; i < i1; i++) {
        const float *xr = x + (hs + i * p->dh) * p->w;
        for (int64_t j = 0; j < p->kw; j++) {
          const int64_t off = j * p->dw - p->pl;
          int64_t q0, q1;
          camd__window_range(off, p->sw, p->w, OW, &q0, &q1);
          const float *restrict xs = xr + off;
          if (p->sw == 1) {
            for (int64_t q = q0; q < q1; q++) {
              const float v = xs[q];
              yr[q] = (v > yr[q] || isnan(v)) ? v : yr[q];
            }
          } else {
            const int64_t st = p->sw;
            for (int64_t q = q0; q < q1; q++) {
              const float v = xs[q * st];
              yr[q] = (v > yr[q] || isnan(v)) ? v : yr[q];
            }
          }
        }
      }
    }
  }
}

/* One output row band [oh0, oh1) of one channel block of a channel-blocked input (engine/dnnl.h:
 * per item [C/B][H][W][B]): the NCHW kernel's taps in its order, B channels at a time, so
 * every output element is the same max (NaN rule included) as in NCHW. */
static inline void maxpool_block_rows(const pool_params *p, const float *x, float *y, int64_t oh0,
                                      int64_t oh1, const int64_t B) {
  const int64_t OW = p->ow;
  for (int64_t oh = oh0; oh < oh1; oh++) {
    const int64_t hs = oh * p->sh - p->pt;
    int64_t i0, i1;
    taps(hs, p->dh, p->h, p->kh, &i0, &i1);
    float *restrict yr = y + oh * OW * B;
    for (int64_t q = 0; q < OW * B; q++) yr[q] = -INFINITY;
    for (int64_t i = i0; i < i1; i++) {
      const float *xr = x + (hs + i * p->dh) * p->w * B;
      for (int64_t j = 0; j < p->kw; j++) {
        const int64_t off = j * p->dw - p->pl;
        int64_t q0, q1;
        camd__window_range(off, p->sw, p->w, OW, &q0, &q1);
        for (int64_t q = q0; q < q1; q++) {
          const float *restrict xs = xr + (off + q * p->sw) * B;
          float *restrict ys = yr + q * B;
          for (int64_t b = 0; b < B; b++) {
            const float v = xs[b];
            ys[b] = (v > ys[b] || isnan(v)) ? v : ys[b];
          }
        }
      }
    }
  }
}

/* Output rows per task of the blocked kernel: about CAMD_POOL_CHUNK input elements (a shape
 * rule; one output's value never depends on the split). */
static int64_t maxpool_block_band(const pool_params *p, int64_t B) {
  const int64_t per_row = p->sh * p->w * B;
  const int64_t rows = per_row < CAMD_POOL_CHUNK ? CAMD_POOL_CHUNK / per_row : 1;
  return rows < p->oh ? rows : p->oh;
}

/* Task t: band t % bands of block t / bands (blocks of every item in a row). */
static void maxpool_blocked_task(void *arg, int64_t t, int thread) {
  (void)thread;
  const camd_op_ctx *ctx = arg;
  const pool_params *p = ctx->params;
  const int64_t B = camd__dnnl_block(), band = maxpool_block_band(p, B);
  const int64_t bands = (p->oh + band - 1) / band, blk = t / bands, oh0 = t % bands * band;
  const int64_t oh1 = oh0 + band < p->oh ? oh0 + band : p->oh;
  const float *x = ctx->in[0].data + blk * p->h * p->w * B;
  float *y = ctx->out[0].data + blk * p->oh * p->ow * B;
  if (B == 16)
    maxpool_block_rows(p, x, y, oh0, oh1, 16);
  else
    maxpool_block_rows(p, x, y, oh0, oh1, B);
}

static void maxpool_forward(const camd_op_ctx *ctx) {
  const pool_params *p = ctx->params;
  if (ctx->in_blocked & 1u) { /* the layout pass blocks input and output together */
    const int64_t B = camd__dnnl_block(), band = maxpool_block_band(p, B);
    const int64_t blocks = ctx->in[0].shape.dims[0] * (p->c / B);
    camd__pool_for(ctx->pool, blocks * ((p->oh + band - 1) / band), maxpool_blocked_task,
                   (void *)ctx);
    return;
  }
  pool_planes(ctx, ctx->in[0].shape.dims[0] * p->c, p->h * p->w, maxpool_planes);
}

static void maxpool_backward(const camd_op_ctx *ctx) {
  const pool_params *p = ctx->params;
  float *dx = ctx->grad_in[0].data;
  const float *dy = ctx->grad_out[0].data;
  if (!dx || !dy) return;
  const int64_t planes = ctx->in[0].shape.dims[0] * p->c;
  const int64_t hw = p->h * p->w, ohw = p->oh * p->ow;
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *x = ctx->in[0].data + pl * hw;
    float *dxp = dx + pl * hw;
    const float *dyp = dy + pl * ohw;
    for (int64_t oh = 0; oh < p->oh; oh++) {
      const int64_t hs = oh * p->sh - p->pt;
      int64_t i0, i1;
      taps(hs, p->dh, p->h, p->kh, &i0, &i1);
      for (int64_t ow = 0; ow < p->ow; ow++) {
        const int64_t ws = ow * p->sw - p->pl;
        int64_t j0, j1;
        taps(ws, p->dw, p->w, p->kw, &j0, &j1);
        float best = -INFINITY;
        int64_t arg = -1;
        for (int64_t i = i0; i < i1; i++) {
          const int64_t row = (hs + i * p->dh) * p->w + ws;
          for (int64_t j = j0; j < j1; j++) {
            const float v = x[row + j * p->dw];
            if (v > best || isnan(v) || arg < 0) {
              best = v;
              arg = row + j * p->dw;
            }
          }
        }
        if (arg >= 0) dxp[arg] += dyp[oh * p->ow + ow];
      }
    }
  }
}

/* Divisor of AveragePool output (oh, ow). */
static inline float avg_divisor(const pool_params *p, int64_t hs, int64_t ws, int64_t i0,
                                int64_t i1, int64_t j0, int64_t j1) {
  if (!p->count_include_pad) return (float)((i1 - i0) * (j1 - j0));
  int64_t a0, a1, b0, b1; /* taps inside the explicitly padded extent */
  taps(hs + p->pt, p->dh, p->h + p->pt + p->pb, p->kh, &a0, &a1);
  taps(ws + p->pl, p->dw, p->w + p->pl + p->pr, p->kw, &b0, &b1);
  return (float)((a1 - a0) * (b1 - b0));
}

static void avgpool_planes(void *arg, int64_t pl0, int64_t pl1) {
  const camd_op_ctx *ctx = arg;
  const pool_params *p = ctx->params;
  const int64_t hw = p->h * p->w, ohw = p->oh * p->ow, OW = p->ow;
  for (int64_t pl = pl0; pl < pl1; pl++) {
    const float *x = ctx->in[0].data + pl * hw;
    float *y = ctx->out[0].data + pl * ohw;
    for (int64_t oh = 0; oh < p->oh; oh++) {
      const int64_t hs = oh * p->sh - p->pt;
      int64_t i0, i1;
      taps(hs, p->dh, p->h, p->kh, &i0, &i1);
      float *restrict yr = y + oh * OW;
      for (int64_t q = 0; q < OW; q++) yr[q] = 0.0f;
      for (int64_t i = i0; i < i1; i++) {
        const float *xr = x + (hs + i * p->dh) * p->w;
        for (int64_t j = 0; j < p->kw; j++) {
          const int64_t off = j * p->dw - p->pl;
          int64_t q0, q1;
          camd__window_range(off, p->sw, p->w, OW, &q0, &q1);
          const float *restrict xs = xr + off;
          if (p->sw == 1) {
            for (int64_t q = q0; q < q1; q++) yr[q] += xs[q];
          } else {
            const int64_t st = p->sw;
            for (int64_t q = q0; q < q1; q++) yr[q] += xs[q * st];
          }
        }
      }
      for (int64_t ow = 0; ow < OW; ow++) {
        const int64_t ws = ow * p->sw - p->pl;
        int64_t j0, j1;
        taps(ws, p->dw, p->w, p->kw, &j0, &j1);
        const float div = avg_divisor(p, hs, ws, i0, i1, j0, j1);
        yr[ow] = div > 0.0f ? yr[ow] / div : 0.0f;
      }
    }
  }
}

static void avgpool_forward(const camd_op_ctx *ctx) {
  const pool_params *p = ctx->params;
  pool_planes(ctx, ctx->in[0].shape.dims[0] * p->c, p->h * p->w, avgpool_planes);
}

static void avgpool_backward(const camd_op_ctx *ctx) {
  const pool_params *p = ctx->params;
  float *dx = ctx->grad_in[0].data;
  const float *dy = ctx->grad_out[0].data;
  if (!dx || !dy) return;
  const int64_t planes = ctx->in[0].shape.dims[0] * p->c;
  const int64_t hw = p->h * p->w, ohw = p->oh * p->ow;
  for (int64_t pl = 0; pl < planes; pl++) {
    float *dxp = dx + pl * hw;
    const float *dyp = dy + pl * ohw;
    for (int64_t oh = 0; oh < p->oh; oh++) {
      const int64_t hs = oh * p->sh - p->pt;
      int64_t i0, i1;
      taps(hs, p->dh, p->h, p->kh, &i0, &i1);
      for (int64_t ow = 0; ow < p->ow; ow++) {
        const int64_t ws = ow * p->sw - p->pl;
        int64_t j0, j1;
        taps(ws, p->dw, p->w, p->kw, &j0, &j1);
        const float div = avg_divisor(p, hs, ws, i0, i1, j0, j1);
        if (div <= 0.0f) continue;
        const float g = dyp[oh * p->ow + ow] / div;
        for (int64_t i = i0; i < i1; i++) {
          float *xr = dxp + (hs + i * p->dh) * p->w + ws;
          for (int64_t j = j0; j < j1; j++) xr[j * p->dw] += g;
        }
      }
    }
  }
}

static int pool_prepare(camd_graph *g, camd_node *node, camd_error *err, bool is_max) {
  if (node->n_in != 1 || node->in[0] < 0) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects one input");
  }
  if (node->n_out != 1) {
    return camd__node_error(
        err, node, CAMD_E_UNSUPPORTED,
        is_max ? "the Indices output of MaxPool is not supported" : "expects exactly one output");
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
  if (xs.ndim < 3 || xs.ndim > 4) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "input has rank %d; only 1-D and 2-D pooling is supported", xs.ndim);
  }
  camd__window win;
  camd__window_geom geo;
  int rc = camd__window_parse(node, xs.ndim - 2, NULL, true, &win, err);
  if (rc) return rc;
  rc = camd__window_resolve(node, &win, &xs.dims[2], &geo, err);
  if (rc) return rc;
  int64_t cip = 0;
  if (!is_max) {
    rc = camd__attr_int(node, "count_include_pad", 0, &cip, err);
    if (rc) return rc;
  }
  pool_params *p = camd__node_params_alloc(g, sizeof(*p));
  if (!p) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  p->nsp = xs.ndim - 2;
  p->is_max = is_max;
  p->count_include_pad = cip != 0;
  p->c = xs.dims[1];
  p->h = geo.in[0];
  p->w = geo.in[1];
  p->oh = geo.out[0];
  p->ow = geo.out[1];
  p->kh = win.kernel[0];
  p->kw = win.kernel[1];
  p->sh = win.stride[0];
  p->sw = win.stride[1];
  p->dh = win.dil[0];
  p->dw = win.dil[1];
  p->pt = geo.pad_begin[0];
  p->pl = geo.pad_begin[1];
  p->pb = geo.pad_end[0];
  p->pr = geo.pad_end[1];
  node->params = p;
  node->scratch_floats = 0;
  node->bwd_scratch_floats = 0;
  return 0;
}

static int maxpool_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  return pool_prepare(g, node, err, true);
}
static int avgpool_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  return pool_prepare(g, node, err, false);
}

static int pool_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                      camd_error *err) {
  const pool_params *p = node->params;
  const camd_shape *x = &in[0];
  if (!p) return camd__node_error(err, node, CAMD_E_STATE, "not prepared");
  if (x->ndim != p->nsp + 2 || x->dims[1] != p->c || x->dims[x->ndim - 1] != p->w ||
      (p->nsp == 2 && x->dims[2] != p->h)) {
    char buf[96];
    camd_shape_format(x, buf, sizeof(buf));
    return camd__node_error(err, node, CAMD_E_SHAPE,
                            "input %s does not match the shape the node was loaded with", buf);
  }
  out[0] = *x;
  if (p->nsp == 2) {
    out[0].dims[2] = p->oh;
    out[0].dims[3] = p->ow;
  } else {
    out[0].dims[2] = p->ow;
  }
  return 0;
}

/* ---- global pools: any rank >= 3, the plane is everything after N, C ---- */

static int global_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  if (node->n_in != 1 || node->in[0] < 0 || node->n_out != 1) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects one input and one output");
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
  if (xs.ndim < 3) {
    return camd__node_error(err, node, CAMD_E_SHAPE, "input has rank %d, expected >= 3", xs.ndim);
  }
  node->scratch_floats = 0;
  node->bwd_scratch_floats = 0;
  return 0;
}

static int global_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                        camd_error *err) {
  if (in[0].ndim < 3) {
    return camd__node_error(err, node, CAMD_E_SHAPE, "input has rank %d, expected >= 3",
                            in[0].ndim);
  }
  out[0] = in[0];
  for (int i = 2; i < in[0].ndim; i++) out[0].dims[i] = 1;
  return 0;
}

static int64_t plane_size(const camd_shape *s) {
  int64_t n = 1;
  for (int i = 2; i < s->ndim; i++) n *= s->dims[i];
  return n;
}

#define GAP_MAX_BLOCK 16 /* widest channel block (dnnl.h: 16 or 8) */

static void gap_planes(void *arg, int64_t pl0, int64_t pl1) {
  const camd_op_ctx *ctx = arg;
  const camd_shape *s = &ctx->in[0].shape;
  const int64_t sz = plane_size(s);
  /* A channel-blocked input (engine/dnnl.h, [C/B][plane][B] per item): the same sums, read
   * with stride B. */
  const int64_t blk = ctx->in_blocked & 1u ? camd__dnnl_block() : 1, ch = s->dims[1];
  if (blk > 1 && blk <= GAP_MAX_BLOCK) {
    /* A whole channel block at a time, all its lanes side by side (contiguous reads the
     * compiler vectorises): per channel exactly the chains and the final order of the NCHW
     * path below, so the same bits. Channels of the block outside [pl0, pl1) are summed and
     * not stored. */
    for (int64_t pl = pl0; pl < pl1;) {
      const int64_t n = pl / ch, c0 = pl % ch / blk * blk;
      const float *x = ctx->in[0].data + (n * ch + c0) * sz;
      double acc[8][GAP_MAX_BLOCK] = {{0}};
      for (int64_t i = 0; i < sz; i++) {
        double *a = acc[i % 8];
        const float *xi = x + i * blk;
        for (int64_t k = 0; k < blk; k++) a[k] += xi[k];
      }
      const int64_t end = n * ch + c0 + blk < pl1 ? n * ch + c0 + blk : pl1;
      for (; pl < end; pl++) {
        const int64_t k = pl % ch - c0;
        const double sum = ((acc[0][k] + acc[1][k]) + (acc[2][k] + acc[3][k])) +
                           ((acc[4][k] + acc[5][k]) + (acc[6][k] + acc[7][k]));
        ctx->out[0].data[pl] = (float)(sum / (double)sz);
      }
    }
    return;
  }
  for (int64_t pl = pl0; pl < pl1; pl++) {
    if (blk > 1) {
      const int64_t n = pl / ch, c = pl % ch;
      const float *x = ctx->in[0].data + (n * ch + c / blk * blk) * sz + c % blk;
      double acc[8] = {0};
      int64_t i = 0;
      for (; i + 8 <= sz; i += 8) {
        for (int k = 0; k < 8; k++) acc[k] += x[(i + k) * blk];
      }
      for (; i < sz; i++) acc[i % 8] += x[i * blk];
      const double sum =
          ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
      ctx->out[0].data[pl] = (float)(sum / (double)sz);
      continue;
    }
    const float *x = ctx->in[0].data + pl * sz;
    /* Eight double partial sums (independent chains the compiler can vectorise), added in a
     * fixed order: the same bits whatever the split, and double precision as before. */
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= sz; i += 8) {
      for (int k = 0; k < 8; k++) acc[k] += x[i + k];
    }
    for (; i < sz; i++) acc[i % 8] += x[i];
    const double sum =
        ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    ctx->out[0].data[pl] = (float)(sum / (double)sz);
  }
}

static void gap_forward(const camd_op_ctx *ctx) {
  const camd_shape *s = &ctx->in[0].shape;
  pool_planes(ctx, s->dims[0] * s->dims[1], plane_size(s), gap_planes);
}

static void gap_backward(const camd_op_ctx *ctx) {
  float *dx = ctx->grad_in[0].data;
  const float *dy = ctx->grad_out[0].data;
  if (!dx || !dy) return;
  const camd_shape *s = &ctx->in[0].shape;
  const int64_t planes = s->dims[0] * s->dims[1], sz = plane_size(s);
  const float inv = 1.0f / (float)sz;
  for (int64_t pl = 0; pl < planes; pl++) {
    const float g = dy[pl] * inv;
    float *d = dx + pl * sz;
    for (int64_t i = 0; i < sz; i++) d[i] += g;
  }
}

static void gmp_planes(void *arg, int64_t pl0, int64_t pl1) {
  const camd_op_ctx *ctx = arg;
  const camd_shape *s = &ctx->in[0].shape;
  const int64_t sz = plane_size(s);
  for (int64_t pl = pl0; pl < pl1; pl++) {
    const float *x = ctx->in[0].data + pl * sz;
    float best = x[0];
    for (int64_t i = 1; i < sz; i++) {
      if (x[i] > best || isnan(x[i])) best = x[i];
    }
    ctx->out[0].data[pl] = best;
  }
}

static void gmp_forward(const camd_op_ctx *ctx) {
  const camd_shape *s = &ctx->in[0].shape;
  pool_planes(ctx, s->dims[0] * s->dims[1], plane_size(s), gmp_planes);
}

static void gmp_backward(const camd_op_ctx *ctx) {
  float *dx = ctx->grad_in[0].data;
  const float *dy = ctx->grad_out[0].data;
  if (!dx || !dy) return;
  const camd_shape *s = &ctx->in[0].shape;
  const int64_t planes = s->dims[0] * s->dims[1], sz = plane_size(s);
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *x = ctx->in[0].data + pl * sz;
    int64_t arg = 0;
    float best = x[0];
    for (int64_t i = 1; i < sz; i++) {
      if (x[i] > best || isnan(x[i])) {
        best = x[i];
        arg = i;
      }
    }
    dx[pl * sz + arg] += dy[pl];
  }
}

const camd_op_desc camd__op_maxpool = {.op_type = "MaxPool",
                                       .opset_min = 1,
                                       .opset_max = 22,
                                       .prepare = maxpool_prepare,
                                       .infer = pool_infer,
                                       .forward = maxpool_forward,
                                       .backward = maxpool_backward,
                                       .bwd_needs_inputs = CAMD_IN(0),
                                       .bwd_needs_outputs = false,
                                       .grad_inputs = CAMD_IN(0)};
const camd_op_desc camd__op_averagepool = {.op_type = "AveragePool",
                                           .opset_min = 1,
                                           .opset_max = 22,
                                           .prepare = avgpool_prepare,
                                           .infer = pool_infer,
                                           .forward = avgpool_forward,
                                           .backward = avgpool_backward,
                                           .bwd_needs_inputs = 0,
                                           .bwd_needs_outputs = false,
                                           .grad_inputs = CAMD_IN(0)};
const camd_op_desc camd__op_globalaveragepool = {.op_type = "GlobalAveragePool",
                                                 .opset_min = 1,
                                                 .opset_max = 22,
                                                 .prepare = global_prepare,
                                                 .infer = global_infer,
                                                 .forward = gap_forward,
                                                 .backward = gap_backward,
                                                 .bwd_needs_inputs = 0,
                                                 .bwd_needs_outputs = false,
                                                 .grad_inputs = CAMD_IN(0)};
const camd_op_desc camd__op_globalmaxpool = {.op_type = "GlobalMaxPool",
                                             .opset_min = 1,
                                             .opset_max = 22,
                                             .prepare = global_prepare,
                                             .infer = global_infer,
                                             .forward = gmp_forward,
                                             .backward = gmp_backward,
                                             .bwd_needs_inputs = CAMD_IN(0),
                                             .bwd_needs_outputs = false,
                                             .grad_inputs = CAMD_IN(0)};
