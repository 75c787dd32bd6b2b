/* PIL-compatible BILINEAR resampling (antialiased when shrinking) and preprocessing of an image
 * into a normalised float NCHW tensor (torchvision Resize + CenterCrop + ToTensor + Normalize).
 *
 * The resampler follows PIL's definition of Image.resize(BILINEAR): output pixel i of an axis
 * of n_in -> n_out samples is centred at (i + 0.5) * s in input coordinates (s = n_in / n_out);
 * the triangle filter's support is max(s, 1), so shrinking averages over the footprint. Weights
 * are normalised, converted to 22-bit fixed point, and each pass rounds to 8 bits; the
 * horizontal pass runs first. Doing the same arithmetic gives PIL's pixels. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "image/image_internal.h"

#define RS_PRECISION_BITS 22 /* 32 - 8 (sample) - 2 (headroom) */

/* Filter taps for a range of output samples along one axis. */
typedef struct rs_axis {
  size_t taps;   /* max taps per output sample */
  size_t *first; /* first input sample per output sample */
  size_t *count; /* taps used per output sample */
  int32_t *k;    /* taps * n fixed-point weights */
} rs_axis;

static void rs_axis_free(rs_axis *a) {
  free(a->first);
  free(a->count);
  free(a->k);
  memset(a, 0, sizeof(*a));
}

static double triangle(double x) {
  x = fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

/* Weights for output samples o0 .. o0 + n - 1 (all within [0, n_out)) of an n_in -> n_out
 * resize. */
static int rs_axis_init(rs_axis *a, size_t n_in, size_t n_out, size_t o0, size_t n,
                        camd_error *err) {
  memset(a, 0, sizeof(*a));
  double scale = (double)n_in / (double)n_out;
  double fscale = scale < 1.0 ? 1.0 : scale;
  double support = 1.0 * fscale;
  size_t taps = (size_t)ceil(support) * 2 + 1;
  size_t nk;
  if (!camd_size_mul(taps, n, &nk) || !camd_size_mul(nk, sizeof(int32_t), &nk))
    return camd_error_set(err, CAMD_E_LIMIT, "resize filter too large");
  double *w = malloc(taps * sizeof(double));
  a->first = malloc(n * sizeof(size_t));
  a->count = malloc(n * sizeof(size_t));
  a->k = calloc(1, nk);
  if (!w || !a->first || !a->count || !a->k) {
    free(w);
    rs_axis_free(a);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory for resize filter");
  }
  a->taps = taps;
  double inv = 1.0 / fscale;
  for (size_t j = 0; j < n; j++) {
    double center = ((double)(o0 + j) + 0.5) * scale;
    double lo = center - support + 0.5, hi = center + support + 0.5;
    size_t xmin = lo <= 0.0 ? 0 : (size_t)lo; /* truncation as in the reference */
    size_t xmax = hi <= 0.0 ? 0 : (size_t)hi;
    if (xmax > n_in) xmax = n_in;
    size_t cnt = xmax > xmin ? xmax - xmin : 0;
    if (cnt > taps) cnt = taps; /* cannot happen: the footprint spans at most 2*support+1 */
    double sum = 0.0;
    for (size_t t = 0; t < cnt; t++) {
      w[t] = triangle(((double)(t + xmin) - center + 0.5) * inv);
      sum += w[t];
    }
    for (size_t t = 0; t < cnt; t++) {
      double v = sum != 0.0 ? w[t] / sum : 0.0;
      double f = v * (double)(1 << RS_PRECISION_BITS);
      a->k[j * taps + t] = (int32_t)(v < 0 ? f - 0.5 : f + 0.5);
    }
    a->first[j] = xmin;
    a->count[j] = cnt;
  }
  free(w);
  return 0;
}

static inline unsigned char rs_clip8(int32_t acc) {
  int32_t v = acc >> RS_PRECISION_BITS;
  return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* One RGB row of the horizontal pass: output pixels j0 .. j0 + nx - 1 from src. */
static void rs_row_h3(const unsigned char *src, const rs_axis *ax, size_t j0, size_t nx,
                      unsigned char *dst) {
  for (size_t j = j0; j < j0 + nx; j++) {
    const int32_t *k = ax->k + j * ax->taps;
    const unsigned char *s = src + ax->first[j] * 3;
    const size_t n = ax->count[j];
    int32_t r = (int32_t)1 << (RS_PRECISION_BITS - 1), g = r, b = r;
    for (size_t t = 0; t < n; t++) {
      r += (int32_t)s[3 * t] * k[t];
      g += (int32_t)s[3 * t + 1] * k[t];
      b += (int32_t)s[3 * t + 2] * k[t];
    }
    dst[3 * j] = rs_clip8(r);
    dst[3 * j + 1] = rs_clip8(g);
    dst[3 * j + 2] = rs_clip8(b);
  }
}

#if defined(__x86_64__)
/* rs_row_h3 with SSE4.1: a pixel's three sums in one vector (4 lanes, the fourth unused), one
 * 32-bit multiply per tap for the three channels. The same integer sums, so the same bytes. A
 * tap loads 4 bytes (its RGB and the next byte): pixels whose last tap is the row's last input
 * pixel go through the scalar loop (`safe`: output pixels before them). */
__attribute__((target("sse4.1"))) static void rs_row_h3_sse41(const unsigned char *src,
                                                              const rs_axis *ax, size_t nx,
                                                              size_t safe, unsigned char *dst) {
  const __m128i half = _mm_set1_epi32((int32_t)1 << (RS_PRECISION_BITS - 1));
  size_t j = 0;
  for (; j < safe; j++) {
    const int32_t *k = ax->k + j * ax->taps;
    const unsigned char *s = src + ax->first[j] * 3;
    const size_t n = ax->count[j];
    __m128i acc = half;
    for (size_t t = 0; t < n; t++) {
      int32_t px;
      memcpy(&px, s + 3 * t, 4);
      const __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(px));
      acc = _mm_add_epi32(acc, _mm_mullo_epi32(v, _mm_set1_epi32(k[t])));
    }
    /* >> 22, then saturation to 0..255 (int32 -> int16 -> uint8: the same as rs_clip8) */
    const __m128i q = _mm_srai_epi32(acc, RS_PRECISION_BITS);
    const __m128i b = _mm_packus_epi16(_mm_packs_epi32(q, q), _mm_setzero_si128());
    const uint32_t rgbx = (uint32_t)_mm_cvtsi128_si32(b);
    dst[3 * j] = (unsigned char)rgbx;
    dst[3 * j + 1] = (unsigned char)(rgbx >> 8);
    dst[3 * j + 2] = (unsigned char)(rgbx >> 16);
  }
  if (j < nx) rs_row_h3(src, ax, j, nx - j, dst);
}
#endif

/* One resize's passes, split in tasks of rows (each output byte is computed the same way
 * whichever task and thread computes it). */
typedef struct rs_job {
  const camd_image *in;
  const rs_axis *ax, *ay;
  size_t ch, nx, ny;
  unsigned char *tmp; /* horizontal pass output: tmp_rows x nx pixels */
  size_t tmp_rows, ylo;
  long long cx0;
  camd_image *out;
  size_t ox, oy, row;
  bool need_h, need_v;
  int32_t *acc;          /* vertical pass: `row` sums per task */
  size_t h_rows, v_rows; /* rows per task of each pass */
  bool sse41;            /* the CPU has SSE4.1: rs_row_h3_sse41 for RGB rows */
  size_t safe;           /* leading output columns whose taps end before the row's last pixel */
} rs_job;

/* Rows per task: about RS_TASK_WORK multiply-adds, at least one row. */
enum { RS_TASK_WORK = 1 << 17 };
static size_t rs_rows_per_task(size_t rows, size_t work_per_row) {
  size_t r = RS_TASK_WORK / (work_per_row ? work_per_row : 1);
  if (r == 0) r = 1;
  return r < rows ? r : rows ? rows : 1;
}

/* Horizontal pass of tmp rows [task * h_rows, ...): input rows ylo + y -> tmp row y (nx columns).
 * Sums fit 32 bits: the weights are >= 0 (triangle) and add up to 2^22 (+ at most taps / 2 of
 * rounding), so a sum is below 2^21 + 255 * (2^22 + taps) < 2^31 and equals the 64-bit one of
 * the reference. */
static void rs_h_task(void *arg, int64_t task) {
  const rs_job *j = arg;
  const rs_axis *ax = j->ax;
  const size_t ch = j->ch, nx = j->nx;
  size_t y0 = (size_t)task * j->h_rows, y1 = y0 + j->h_rows;
  if (y1 > j->tmp_rows) y1 = j->tmp_rows;
  for (size_t y = y0; y < y1; y++) {
    const unsigned char *src = j->in->pixels + (j->ylo + y) * j->in->width * ch;
    unsigned char *dst = j->tmp + y * nx * ch;
    if (!j->need_h) {
      memcpy(dst, src + (size_t)j->cx0 * ch, nx * ch);
      continue;
    }
    if (ch == 3) {
#if defined(__x86_64__)
      if (j->sse41) {
        rs_row_h3_sse41(src, ax, nx, j->safe, dst);
        continue;
      }
#endif
      rs_row_h3(src, ax, 0, nx, dst);
      continue;
    }
    for (size_t x = 0; x < nx; x++) {
      const int32_t *k = ax->k + x * ax->taps;
      size_t f = ax->first[x], n = ax->count[x];
      for (size_t c = 0; c < ch; c++) {
        int32_t acc = (int32_t)1 << (RS_PRECISION_BITS - 1);
        for (size_t t = 0; t < n; t++) acc += (int32_t)src[(f + t) * ch + c] * k[t];
        dst[x * ch + c] = rs_clip8(acc);
      }
    }
  }
}

/* Vertical pass of output rows [task * v_rows, ...): each a weighted sum of whole tmp rows
 * (contiguous: the loop over the row vectorises). */
static void rs_v_task(void *arg, int64_t task) {
  const rs_job *j = arg;
  const size_t row = j->row;
  size_t i0 = (size_t)task * j->v_rows, i1 = i0 + j->v_rows;
  if (i1 > j->ny) i1 = j->ny;
  int32_t *acc = j->acc ? j->acc + (size_t)task * row : NULL;
  for (size_t i = i0; i < i1; i++) {
    unsigned char *dst = j->out->pixels + ((j->oy + i) * j->out->width + j->ox) * j->ch;
    if (!j->need_v) {
      memcpy(dst, j->tmp + i * row, row);
      continue;
    }
    const int32_t *k = j->ay->k + i * j->ay->taps;
    size_t f = j->ay->first[i] - j->ylo, n = j->ay->count[i];
    for (size_t x = 0; x < row; x++) acc[x] = (int32_t)1 << (RS_PRECISION_BITS - 1);
    for (size_t t = 0; t < n; t++) {
      const unsigned char *s = j->tmp + (f + t) * row;
      const int32_t kt = k[t];
      for (size_t x = 0; x < row; x++) acc[x] += (int32_t)s[x] * kt;
    }
    for (size_t x = 0; x < row; x++) dst[x] = rs_clip8(acc[x]);
  }
}

int camd__resize_region(const camd_image *in, size_t rw, size_t rh, long long x0, long long y0,
                        size_t out_w, size_t out_h, const camd_parallel *par, camd_image *out,
                        camd_error *err) {
  int rc = camd_image_alloc(out, out_w, out_h, in->channels, err);
  if (rc) return rc;
  if (rw == 0 || rh == 0) return 0;
  /* Output columns/rows that fall inside the resized image. */
  long long cx0 = x0 < 0 ? 0 : x0, cy0 = y0 < 0 ? 0 : y0;
  long long cx1 = x0 + (long long)out_w, cy1 = y0 + (long long)out_h;
  if (cx1 > (long long)rw) cx1 = (long long)rw;
  if (cy1 > (long long)rh) cy1 = (long long)rh;
  if (cx1 <= cx0 || cy1 <= cy0) return 0; /* all padding */
  size_t nx = (size_t)(cx1 - cx0), ny = (size_t)(cy1 - cy0);
  size_t ch = (size_t)in->channels;
  rs_axis ax, ay;
  bool need_h = rw != in->width, need_v = rh != in->height;
  rc = rs_axis_init(&ax, in->width, rw, (size_t)cx0, nx, err);
  if (rc) {
    camd_image_free(out);
    return rc;
  }
  rc = rs_axis_init(&ay, in->height, rh, (size_t)cy0, ny, err);
  if (rc) {
    rs_axis_free(&ax);
    camd_image_free(out);
    return rc;
  }
  /* Rows of the input that the vertical pass reads. */
  size_t ylo = ay.first[0], yhi = ay.first[ny - 1] + ay.count[ny - 1];
  if (!need_v) {
    ylo = (size_t)cy0;
    yhi = (size_t)cy1;
  }
  size_t tmp_rows = yhi > ylo ? yhi - ylo : 0;
  unsigned char *tmp = malloc((tmp_rows ? tmp_rows : 1) * nx * ch);
  if (!tmp) {
    rs_axis_free(&ax);
    rs_axis_free(&ay);
    camd_image_free(out);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory resizing");
  }
  /* Vertical pass accumulators: one row per task. */
  size_t ox = (size_t)(cx0 - x0), oy = (size_t)(cy0 - y0), row = nx * ch;
  rs_job j = {.in = in,
              .ax = &ax,
              .ay = &ay,
              .ch = ch,
              .nx = nx,
              .ny = ny,
              .tmp = tmp,
              .tmp_rows = tmp_rows,
              .ylo = ylo,
              .cx0 = cx0,
              .out = out,
              .ox = ox,
              .oy = oy,
              .row = row,
              .need_h = need_h,
              .need_v = need_v};
#if defined(__x86_64__)
  j.sse41 = __builtin_cpu_supports("sse4.1");
#endif
  while (j.safe < nx && ax.first[j.safe] + ax.count[j.safe] < in->width) j.safe++;
  j.h_rows = rs_rows_per_task(tmp_rows, row * (need_h ? ax.taps : 1));
  j.v_rows = rs_rows_per_task(ny, row * (need_v ? ay.taps : 1));
  const size_t h_tasks = (tmp_rows + j.h_rows - 1) / j.h_rows,
               v_tasks = (ny + j.v_rows - 1) / j.v_rows;
  if (need_v && !(j.acc = malloc(v_tasks * row * sizeof(int32_t)))) {
    free(tmp);
    rs_axis_free(&ax);
    rs_axis_free(&ay);
    camd_image_free(out);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory resizing");
  }
  camd_parallel_for(par, (int64_t)h_tasks, rs_h_task, &j);
  camd_parallel_for(par, (int64_t)v_tasks, rs_v_task, &j);
  free(j.acc);
  free(tmp);
  rs_axis_free(&ax);
  rs_axis_free(&ay);
  return 0;
}

int camd_image_resize(const camd_image *in, size_t width, size_t height, camd_image *out,
                      camd_error *err) {
  out->pixels = NULL;
  out->width = out->height = 0;
  out->channels = 0;
  if (!in || !in->pixels || in->width == 0 || in->height == 0)
    return camd_error_set(err, CAMD_E_INVALID, "resize: empty input image");
  if (width == 0 || height == 0)
    return camd_error_set(err, CAMD_E_INVALID, "resize: target size %zux%zu is empty", width,
                          height);
  if (width > (size_t)LLONG_MAX / 2 || height > (size_t)LLONG_MAX / 2)
    return camd_error_set(err, CAMD_E_INVALID, "resize: target size too large");
  return camd__resize_region(in, width, height, 0, 0, width, height, NULL, out, err);
}

void camd_preprocess_opts_default(camd_preprocess_opts *o) {
  memset(o, 0, sizeof(*o));
  o->mode = CAMD_RESIZE_SHORTER;
  o->width = 224;
  o->height = 224;
  o->resize_shorter = 256;
  o->mean[0] = 0.485f;
  o->mean[1] = 0.456f;
  o->mean[2] = 0.406f;
  o->std[0] = 0.229f;
  o->std[1] = 0.224f;
  o->std[2] = 0.225f;
  o->scale = 1.0f / 255.0f;
  o->bgr = false;
  o->channels = 3;
}

/* Python's round() for a multiple of 0.5: halves go to the even neighbour. `twice` = 2 * x. */
static long long round_half_even_half(long long twice) {
  long long q = twice / 2, r = twice % 2;
  if (r == 0) return q;
  /* x = q + 0.5 (or q - 0.5 for negatives); pick the even one of the two neighbours */
  long long lo = twice < 0 ? q - 1 : q, hi = lo + 1;
  return (lo % 2 == 0) ? lo : hi;
}

/* Crop offset along one axis (torchvision CenterCrop, including its zero padding). */
static long long center_offset(size_t size, size_t crop) {
  if (crop > size) return -(long long)((crop - size) / 2);
  return round_half_even_half((long long)(size - crop));
}

#define PP_MAX_DIM ((size_t)1 << 20)

int camd_preprocess(const camd_image *img, const camd_preprocess_opts *o, float *out,
                    size_t out_len, camd_crop *crop, camd_error *err) {
  return camd_preprocess_parallel(img, o, NULL, out, out_len, crop, err);
}

int camd_preprocess_parallel(const camd_image *img, const camd_preprocess_opts *o,
                             const camd_parallel *par, float *out, size_t out_len, camd_crop *crop,
                             camd_error *err) {
  if (!img || !img->pixels || img->width == 0 || img->height == 0)
    return camd_error_set(err, CAMD_E_INVALID, "preprocess: empty input image");
  if (img->channels != 1 && img->channels != 3 && img->channels != 4)
    return camd_error_set(err, CAMD_E_INVALID, "preprocess: image channels must be 1, 3 or 4");
  if (!o) return camd_error_set(err, CAMD_E_INVALID, "preprocess: options are NULL");
  if (o->width == 0 || o->height == 0 || o->width > PP_MAX_DIM || o->height > PP_MAX_DIM)
    return camd_error_set(err, CAMD_E_INVALID,
                          "preprocess: tensor size %zux%zu must be within 1..%zu", o->width,
                          o->height, PP_MAX_DIM);
  if (o->channels != 1 && o->channels != 3)
    return camd_error_set(err, CAMD_E_INVALID, "preprocess: channels must be 1 or 3, not %d",
                          o->channels);
  if (o->bgr && o->channels != 3)
    return camd_error_set(err, CAMD_E_INVALID, "preprocess: bgr needs 3 channels");
  if (o->mode != CAMD_RESIZE_STRETCH && o->mode != CAMD_RESIZE_SHORTER)
    return camd_error_set(err, CAMD_E_INVALID, "preprocess: unknown resize mode %d", (int)o->mode);
  if (o->mode == CAMD_RESIZE_SHORTER && (o->resize_shorter == 0 || o->resize_shorter > PP_MAX_DIM))
    return camd_error_set(err, CAMD_E_INVALID,
                          "preprocess: resize_shorter %zu must be within 1..%zu", o->resize_shorter,
                          PP_MAX_DIM);
  if (!isfinite(o->scale) || o->scale == 0.0f)
    return camd_error_set(err, CAMD_E_INVALID, "preprocess: scale must be finite and non-zero");
  for (int c = 0; c < o->channels; c++) {
    if (!isfinite(o->mean[c]) || !isfinite(o->std[c]) || o->std[c] == 0.0f)
      return camd_error_set(err, CAMD_E_INVALID,
                            "preprocess: mean[%d]/std[%d] must be finite and std non-zero", c, c);
  }
  size_t W = o->width, H = o->height, plane = W * H, need = plane * (size_t)o->channels;
  if (!out || out_len < need)
    return camd_error_set(err, CAMD_E_SHAPE,
                          "preprocess: output buffer holds %zu floats, %zu needed", out_len, need);

  /* Resized size and crop offsets. */
  size_t rw = W, rh = H;
  long long ox = 0, oy = 0;
  if (o->mode == CAMD_RESIZE_SHORTER) {
    size_t w = img->width, h = img->height, S = o->resize_shorter;
    size_t sh = w <= h ? w : h, lg = w <= h ? h : w;
    double nl = (double)S * (double)lg / (double)sh;
    if (nl > (double)PP_MAX_DIM * 64)
      return camd_error_set(err, CAMD_E_INVALID,
                            "preprocess: resizing %zux%zu to shorter side %zu is too large", w, h,
                            S);
    size_t new_long = (size_t)nl; /* int() truncation as torchvision */
    if (w <= h) {
      rw = S;
      rh = new_long;
    } else {
      rw = new_long;
      rh = S;
    }
    if (rw == 0 || rh == 0)
      return camd_error_set(err, CAMD_E_INVALID,
                            "preprocess: %zux%zu resized to shorter side %zu has an empty side", w,
                            h, S);
    ox = center_offset(rw, W);
    oy = center_offset(rh, H);
  }

  camd_image src = {0}, res = {0};
  const camd_image *use = img;
  int rc = 0;
  if (o->channels == 1) {
    rc = camd_image_to_gray(img, &src, err);
    if (rc) return rc;
    use = &src;
  }
  rc = camd__resize_region(use, rw, rh, ox, oy, W, H, par, &res, err);
  camd_image_free(&src);
  if (rc) return rc;

  size_t ich = (size_t)res.channels;
  /* NCHW: channel c's plane at c * H * W; NHWC: pixel i's channels at i * C. */
  size_t nc = (size_t)o->channels, cstep = o->channels_last ? 1 : plane;
  size_t pstep = o->channels_last ? nc : 1;
  for (int c = 0; c < o->channels; c++) {
    int sc = (o->channels == 1 || ich == 1) ? 0 : (o->bgr ? 2 - c : c);
    float mean = o->mean[c];
    /* A byte has 256 values: each one's float, computed as for every pixel, looked up. */
    float lut[256];
    for (int b = 0; b < 256; b++) {
      float v = (float)b * o->scale;
      lut[b] = (v - mean) / o->std[c];
    }
    float *dst = out + (size_t)c * cstep;
    const unsigned char *px = res.pixels + sc;
    if (pstep == 1 && ich == 3) {
      for (size_t i = 0; i < plane; i++) dst[i] = lut[px[3 * i]];
    } else {
      for (size_t i = 0; i < plane; i++) dst[i * pstep] = lut[px[i * ich]];
    }
  }
  camd_image_free(&res);

  if (crop) {
    double fx = (double)img->width / (double)rw, fy = (double)img->height / (double)rh;
    crop->x = (double)ox * fx;
    crop->y = (double)oy * fy;
    crop->w = (double)W * fx;
    crop->h = (double)H * fy;
  }
  return 0;
}
