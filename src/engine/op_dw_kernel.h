/* Depthwise convolution forward of one plane: included by op_conv.c once per instruction set,
 * with DW_NAME (function name) and DW_TARGET (GCC target attribute, or empty) defined.
 * No include guard on purpose. */
#ifndef CAMD_DW_KERNEL_ONCE
#define CAMD_DW_KERNEL_ONCE
#define DW_CAT2(a, b) a##b
#define DW_CAT(a, b) DW_CAT2(a, b)
#define DW3_MAX_W 512 /* widest input row the 3x3 fast path splits into phases on the stack */
/* Copies one input plane into tmp zero-padded to (OH + K - 1) x (OW + K - 1) for a KxK stride-1
 * kernel, plus K - 1 zeros after it (the flat loops' last junk columns read that far). */
static void dw_pad_plane(const conv_params *p, const float *restrict xc, float *restrict pad,
                         int64_t K) {
  const int64_t W = p->w, PW = p->ow + K - 1, PH = p->oh + K - 1;
  const int64_t c1 = p->pl + W < PW ? p->pl + W : PW; /* columns [pl, c1) come from the row */
  for (int64_t r = 0; r < PH; r++) {
    const int64_t ih = r - p->pt;
    float *dst = pad + r * PW;
    if (ih < 0 || ih >= p->h) {
      memset(dst, 0, (size_t)PW * sizeof(float));
      continue;
    }
    for (int64_t c = 0; c < p->pl; c++) dst[c] = 0.0f;
    memcpy(dst + p->pl, xc + ih * W, (size_t)(c1 - p->pl) * sizeof(float));
    for (int64_t c = c1; c < PW; c++) dst[c] = 0.0f;
  }
  for (int64_t c = 0; c < K - 1; c++) pad[PH * PW + c] = 0.0f;
}
#endif
#define DW3_NAME DW_CAT(DW_NAME, _3x3)
#define DW5_NAME DW_CAT(DW_NAME, _5x5)

/* 5x5, stride 1, dilation 1 (EfficientNet's): the plane zero-padded in tmp, then one flat pass
 * per kernel row over every output position of the padded width (four junk columns per row),
 * accumulating in tmp; per element the taps are added in (ki, kj) order from the bias, as
 * DW_NAME below does (padding taps add w * 0). Returns false if it does not apply. */
static DW_TARGET bool DW5_NAME(const conv_params *p, const float *restrict xc,
                               const float *restrict wm, float bias, float *restrict ym,
                               float *restrict tmp) {
  if (!tmp || p->kh != 5 || p->kw != 5 || p->dh != 1 || p->dw != 1 || p->sh != 1 || p->sw != 1 ||
      p->pl < 0 || p->pt < 0)
    return false;
  const int64_t OW = p->ow, PW = OW + 4, PH = p->oh + 4, n = p->oh * PW;
  float *restrict pad = tmp, *restrict acc = tmp + PH * PW + 4;
  dw_pad_plane(p, xc, pad, 5);
  for (int64_t i = 0; i < n; i++) acc[i] = bias;
  for (int64_t ki = 0; ki < 5; ki++) {
    const float *restrict r = pad + ki * PW;
    const float w0 = wm[ki * 5], w1 = wm[ki * 5 + 1], w2 = wm[ki * 5 + 2];
    const float w3 = wm[ki * 5 + 3], w4 = wm[ki * 5 + 4];
    for (int64_t i = 0; i < n; i++) {
      float a = acc[i];
      a += w0 * r[i];
      a += w1 * r[i + 1];
      a += w2 * r[i + 2];
      a += w3 * r[i + 3];
      a += w4 * r[i + 4];
      acc[i] = a;
    }
  }
  for (int64_t o = 0; o < p->oh; o++) memcpy(ym + o * OW, acc + o * PW, (size_t)OW * sizeof(float));
  return true;
}

/* 3x3, dilation 1, stride 1 or 2: one pass per output row. For each valid kernel row ki and
 * column kj, t[ki][kj][q] is the input under tap (ki, kj) of output column q (stride 2 reads rows
 * split into even/odd phases, so every stream is contiguous). Columns whose three taps are all
 * inside the row ([qa, qb)) run a loop of 3, 6 or 9 products the compiler vectorises; the edge
 * columns run the general per-tap loop. Per element the taps are added in (ki, kj) order, exactly
 * as DW_NAME below does, so both compute the same bits (the stride-1 flat path below adds the
 * padding taps as w * 0, which can only turn a -0 result into +0). Returns false if it does not
 * apply. */
static DW_TARGET bool DW3_NAME(const conv_params *p, const float *restrict xc,
                               const float *restrict wm, float bias, float *restrict ym,
                               float *restrict tmp) {
  const int64_t W = p->w, OW = p->ow, S = p->sw;
  if (p->kh != 3 || p->kw != 3 || p->dh != 1 || p->dw != 1 || p->sh != S || (S != 1 && S != 2) ||
      W > DW3_MAX_W || p->pl > 2 || p->pl < 0)
    return false;
  if (S == 1 && tmp) {
    /* Stride 1: the plane zero-padded to (OH + 2) x (OW + 2) in tmp, then ONE flat loop over
     * every output position of the padded width (two junk columns per row), so even 7x7 planes
     * run in full vectors; the valid columns are copied out. The padding taps add w * 0. */
    const int64_t PW = OW + 2, PH = p->oh + 2, n = p->oh * PW;
    float *restrict pad = tmp, *restrict acc = tmp + PH * PW + 2;
    dw_pad_plane(p, xc, pad, 3);
    const float *r0 = pad, *r1 = pad + PW, *r2 = pad + 2 * PW;
    const float w00 = wm[0], w01 = wm[1], w02 = wm[2], w10 = wm[3], w11 = wm[4], w12 = wm[5];
    const float w20 = wm[6], w21 = wm[7], w22 = wm[8];
    for (int64_t i = 0; i < n; i++) {
      float a = bias;
      a += w00 * r0[i];
      a += w01 * r0[i + 1];
      a += w02 * r0[i + 2];
      a += w10 * r1[i];
      a += w11 * r1[i + 1];
      a += w12 * r1[i + 2];
      a += w20 * r2[i];
      a += w21 * r2[i + 1];
      a += w22 * r2[i + 2];
      acc[i] = a;
    }
    for (int64_t o = 0; o < p->oh; o++)
      memcpy(ym + o * OW, acc + o * PW, (size_t)OW * sizeof(float));
    return true;
  }
  float phase[3][2][DW3_MAX_W / 2 + 2];
  /* Interior columns: 0 <= q*S - pl and q*S - pl + 2 <= W - 1. */
  int64_t qa = (p->pl + S - 1) / S, qb = W - 3 + p->pl >= 0 ? (W - 3 + p->pl) / S + 1 : 0;
  if (qb > OW) qb = OW;
  if (qa > qb) qa = qb;
  for (int64_t o = 0; o < p->oh; o++) {
    float *restrict yr = ym + o * OW;
    const float *t[3][3];
    float w[3][3];
    int nv = 0;
    for (int64_t ki = 0; ki < 3; ki++) {
      const int64_t ih = o * p->sh + ki - p->pt;
      if (ih < 0 || ih >= p->h) continue;
      const float *xrow = xc + ih * W;
      for (int64_t kj = 0; kj < 3; kj++) {
        const int64_t d = kj - p->pl; /* input column of output q: q*S + d */
        if (S == 1) {
          t[nv][kj] = xrow + d;
        } else {
          const int64_t f = d >= 0 ? d % 2 : (d % 2 + 2) % 2; /* phase of q*2 + d */
          t[nv][kj] = phase[nv][f] + (d - f) / 2;
        }
        w[nv][kj] = wm[ki * 3 + kj];
      }
      if (S == 2) {
        for (int64_t j = 0; 2 * j < W; j++) phase[nv][0][j] = xrow[2 * j];
        for (int64_t j = 0; 2 * j + 1 < W; j++) phase[nv][1][j] = xrow[2 * j + 1];
      }
      nv++;
    }
    if (nv == 3) {
      for (int64_t q = qa; q < qb; q++) {
        float acc = bias;
        acc += w[0][0] * t[0][0][q];
        acc += w[0][1] * t[0][1][q];
        acc += w[0][2] * t[0][2][q];
        acc += w[1][0] * t[1][0][q];
        acc += w[1][1] * t[1][1][q];
        acc += w[1][2] * t[1][2][q];
        acc += w[2][0] * t[2][0][q];
        acc += w[2][1] * t[2][1][q];
        acc += w[2][2] * t[2][2][q];
        yr[q] = acc;
      }
    } else if (nv == 2) {
      for (int64_t q = qa; q < qb; q++) {
        float acc = bias;
        acc += w[0][0] * t[0][0][q];
        acc += w[0][1] * t[0][1][q];
        acc += w[0][2] * t[0][2][q];
        acc += w[1][0] * t[1][0][q];
        acc += w[1][1] * t[1][1][q];
        acc += w[1][2] * t[1][2][q];
        yr[q] = acc;
      }
    } else if (nv == 1) {
      for (int64_t q = qa; q < qb; q++) {
        float acc = bias;
        acc += w[0][0] * t[0][0][q];
        acc += w[0][1] * t[0][1][q];
        acc += w[0][2] * t[0][2][q];
        yr[q] = acc;
      }
    } else {
      for (int64_t q = qa; q < qb; q++) yr[q] = bias;
    }
    /* Edge columns: the taps that land inside the row, in (ki, kj) order. */
    for (int64_t q = 0; q < OW; q++) {
      if (q == qa) q = qb;
      if (q >= OW) break;
      float acc = bias;
      for (int64_t ki = 0; ki < 3; ki++) {
        const int64_t ih = o * p->sh + ki - p->pt;
        if (ih < 0 || ih >= p->h) continue;
        for (int64_t kj = 0; kj < 3; kj++) {
          const int64_t iw = q * S + kj - p->pl;
          if (iw >= 0 && iw < W) acc += wm[ki * 3 + kj] * xc[ih * W + iw];
        }
      }
      yr[q] = acc;
    }
  }
  return true;
}

/* Output row by output row, so the row being summed stays in L1; per element the taps are
 * added in (ki, kj) order. Tap kj's valid output columns [ow0, ow1) are the same for every row. */
static DW_TARGET void DW_NAME(const conv_params *p, const float *restrict xc,
                              const float *restrict wm, float bias, float *restrict ym,
                              float *restrict tmp) {
  if (DW3_NAME(p, xc, wm, bias, ym, tmp) || DW5_NAME(p, xc, wm, bias, ym, tmp)) return;
  const int64_t W = p->w, OW = p->ow, KW = p->kw;
  int64_t ow0[16], ow1[16]; /* per kj (kernels wider than 16 compute their range per row) */
  const bool cached = KW <= 16;
  for (int64_t kj = 0; cached && kj < KW; kj++) {
    camd__window_range(kj * p->dw - p->pl, p->sw, W, OW, &ow0[kj], &ow1[kj]);
  }
  for (int64_t o = 0; o < p->oh; o++) {
    float *restrict yr = ym + o * OW;
    for (int64_t q = 0; q < OW; q++) yr[q] = bias;
    for (int64_t ki = 0; ki < p->kh; ki++) {
      const int64_t ih = o * p->sh + ki * p->dh - p->pt;
      if (ih < 0 || ih >= p->h) continue;
      const float *xrow = xc + ih * W;
      for (int64_t kj = 0; kj < KW; kj++) {
        const int64_t offw = kj * p->dw - p->pl;
        int64_t q0, q1;
        if (cached) {
          q0 = ow0[kj];
          q1 = ow1[kj];
        } else {
          camd__window_range(offw, p->sw, W, OW, &q0, &q1);
        }
        const float wv = wm[ki * KW + kj];
        const float *xr = xrow + offw;
        if (p->sw == 1) {
          for (int64_t q = q0; q < q1; q++) yr[q] += wv * xr[q];
        } else {
          const int64_t st = p->sw;
          for (int64_t q = q0; q < q1; q++) yr[q] += wv * xr[q * st];
        }
      }
    }
  }
}

#undef DW3_NAME
#undef DW5_NAME
#undef DW_NAME
#undef DW_TARGET
