/* Depthwise convolution forward of one plane: included by op_conv.c once per instruction set,
 * with DW_NAME (function name) and DW_TARGET (GCC target attribute, or empty) defined.
 * No include guard on purpose. */
/* Output row by output row, so the row being summed stays in L1; per element the taps are
 * added in (ki, kj) order. Tap kj's valid output columns [ow0, ow1) are the same for every row. */
static DW_TARGET void DW_NAME(const conv_params *p, const float *restrict xc,
                              const float *restrict wm, float bias, float *restrict ym) {
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

#undef DW_NAME
#undef DW_TARGET
