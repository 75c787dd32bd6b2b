/* Heatmap post-processing: upsampling through the crop geometry, colormaps (computed from
 * their published definitions), alpha blending, peak, thresholded bounding box and mask. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "image/image_internal.h"

int camd_heatmap_upsample(const float *map, size_t w, size_t h, const camd_crop *crop, size_t out_w,
                          size_t out_h, float outside, float *out, camd_error *err) {
  if (!map || !out || !crop || w == 0 || h == 0 || out_w == 0 || out_h == 0)
    return camd_error_set(err, CAMD_E_INVALID, "heatmap upsample: empty map or output");
  if (!isfinite(crop->x) || !isfinite(crop->y) || !(crop->w > 0) || !(crop->h > 0) ||
      !isfinite(crop->w) || !isfinite(crop->h))
    return camd_error_set(err, CAMD_E_INVALID, "heatmap upsample: invalid crop rectangle");
  /* Per-column source positions (x) are computed once. Sample centre of output pixel X in crop
   * units: u = (X + 0.5 - crop.x) / crop.w * w - 0.5, clamped to [0, w - 1]; the same for rows.
   * Each map row is interpolated along x once (lerp[y][X] = r[a] + (r[b] - r[a]) t, the value the
   * direct formula computes for that row), then an output row is top + (bot - top) fy of two of
   * them: the same floats as interpolating per pixel, in contiguous loops. Columns inside the
   * crop are one interval [xa, xb) (c >= crop.x && c < crop.x + crop.w is monotone in X). */
  size_t *x0 = malloc(out_w * sizeof(size_t)), *x1 = malloc(out_w * sizeof(size_t));
  float *fx = malloc(out_w * sizeof(float));
  size_t lerp_n;
  float *lerp = camd_size_mul(out_w, h, &lerp_n) && camd_size_mul(lerp_n, sizeof(float), &lerp_n)
                    ? malloc(lerp_n)
                    : NULL;
  if (!x0 || !x1 || !fx || !lerp) {
    free(x0);
    free(x1);
    free(fx);
    free(lerp);
    return camd_error_set(err, CAMD_E_NOMEM, "heatmap upsample: out of memory");
  }
  size_t xa = out_w, xb = out_w;
  for (size_t X = 0; X < out_w; X++) {
    double c = (double)X + 0.5;
    const bool in = c >= crop->x && c < crop->x + crop->w;
    if (in && xa == out_w) xa = X;
    if (!in && xa != out_w && xb == out_w) xb = X;
    double u = (c - crop->x) / crop->w * (double)w - 0.5;
    double fl = floor(u);
    double f = u - fl;
    if (fl < 0) {
      x0[X] = 0;
      f = 0;
    } else if (fl >= (double)(w - 1)) {
      x0[X] = w - 1;
      f = 0;
    } else {
      x0[X] = (size_t)fl;
    }
    fx[X] = (float)f;
    x1[X] = x0[X] + 1 < w ? x0[X] + 1 : x0[X];
  }
  for (size_t y = 0; y < h && xa < xb; y++) {
    const float *r = map + y * w;
    float *l = lerp + y * out_w;
    for (size_t X = xa; X < xb; X++) {
      const size_t a = x0[X], b = x1[X];
      l[X] = r[a] + (r[b] - r[a]) * fx[X];
    }
  }
  for (size_t Y = 0; Y < out_h; Y++) {
    double c = (double)Y + 0.5;
    bool yin = c >= crop->y && c < crop->y + crop->h;
    double v = (c - crop->y) / crop->h * (double)h - 0.5;
    double fl = floor(v);
    double fyd = v - fl;
    size_t y0;
    if (fl < 0) {
      y0 = 0;
      fyd = 0;
    } else if (fl >= (double)(h - 1)) {
      y0 = h - 1;
      fyd = 0;
    } else {
      y0 = (size_t)fl;
    }
    size_t y1 = y0 + 1 < h ? y0 + 1 : y0;
    const float fy = (float)fyd;
    const float *restrict top = lerp + y0 * out_w, *restrict bot = lerp + y1 * out_w;
    float *restrict dst = out + Y * out_w;
    if (!yin || xa >= xb) {
      for (size_t X = 0; X < out_w; X++) dst[X] = outside;
      continue;
    }
    for (size_t X = 0; X < xa; X++) dst[X] = outside;
    for (size_t X = xa; X < xb; X++) dst[X] = top[X] + (bot[X] - top[X]) * fy;
    for (size_t X = xb; X < out_w; X++) dst[X] = outside;
  }
  free(x0);
  free(x1);
  free(fx);
  free(lerp);
  return 0;
}

/* ---- colormaps ---- */
static const char *const cmap_names[] = {"jet", "turbo", "viridis", "inferno", "gray"};
#define CMAP_COUNT 5

int camd_colormap_parse(const char *name, camd_colormap *out, camd_error *err) {
  if (name) {
    for (int i = 0; i < CMAP_COUNT; i++) {
      if (strcmp(name, cmap_names[i]) == 0) {
        *out = (camd_colormap)i;
        return 0;
      }
    }
    if (strcmp(name, "grey") == 0) {
      *out = CAMD_COLORMAP_GRAY;
      return 0;
    }
  }
  return camd_error_set(err, CAMD_E_INVALID,
                        "unknown colormap '%s'; expected one of: jet, turbo, viridis, inferno, "
                        "gray",
                        name ? name : "(null)");
}

const char *camd_colormap_name(camd_colormap cmap) {
  return (int)cmap >= 0 && (int)cmap < CMAP_COUNT ? cmap_names[cmap] : "unknown";
}

/* matplotlib's 'jet' segment data: (x, y) knots per channel, linear in between. */
typedef struct knot {
  double x, y;
} knot;
static const knot jet_r[] = {{0, 0}, {0.35, 0}, {0.66, 1}, {0.89, 1}, {1, 0.5}};
static const knot jet_g[] = {{0, 0}, {0.125, 0}, {0.375, 1}, {0.64, 1}, {0.91, 0}, {1, 0}};
static const knot jet_b[] = {{0, 0.5}, {0.11, 1}, {0.34, 1}, {0.65, 0}, {1, 0}};

static double piecewise(const knot *k, size_t n, double x) {
  if (x <= k[0].x) return k[0].y;
  for (size_t i = 1; i < n; i++) {
    if (x <= k[i].x)
      return k[i - 1].y + (k[i].y - k[i - 1].y) * (x - k[i - 1].x) / (k[i].x - k[i - 1].x);
  }
  return k[n - 1].y;
}

/* Evaluates c[0] + c[1] x + ... + c[deg] x^deg (Horner). */
static double poly(const double *c, int deg, double x) {
  double v = c[deg];
  for (int i = deg - 1; i >= 0; i--) v = v * x + c[i];
  return v;
}

/* Turbo: Anton Mikhailov's (Google, 2019) polynomial approximation, degree 5 per channel. */
static const double turbo_c[3][6] = {
    {0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943},
    {0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604},
    {0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973}};
/* viridis / inferno: Matt Zucker's published least-squares 6th-degree fits to matplotlib's
 * tables, coefficients c0..c6 per channel. */
static const double viridis_c[3][7] = {
    {0.2777273272234177, 0.1050930431085774, -0.3308618287255563, -4.634230498983486,
     6.228269936347081, 4.776384997670288, -5.435455855934631},
    {0.005407344544966578, 1.404613529898575, 0.214847559468213, -5.799100973351585,
     14.17993336680509, -13.74514537774601, 4.645852612178535},
    {0.3340998053353061, 1.384590162594685, 0.09509516302823659, -19.33244095627987,
     56.69055260068105, -65.35303263337234, 26.3124352495832}};
static const double inferno_c[3][7] = {
    {0.0002189403691192265, 0.1065134194856116, 11.60249308247187, -41.70399613139459,
     77.162935699427, -71.31942824499214, 25.13112622477341},
    {0.001651004631001012, 0.5639564367884091, -3.972853965665698, 17.43639888205313,
     -33.40235894210092, 32.62606426397723, -12.24266895238567},
    {-0.01948089843709184, 3.932712388889277, -15.9423941062914, 44.35414519872813,
     -81.80730925738993, 73.20951985803202, -23.07032500287172}};

static unsigned char cmap_tables[CMAP_COUNT][256 * 3];
static pthread_once_t cmap_once = PTHREAD_ONCE_INIT;

/* Colour 0..1 -> nearest byte, after clipping to [0, 1] (the polynomials overshoot slightly).
 * matplotlib's bytes=True truncates instead, so tables differ from it by at most 1 level. */
static unsigned char to_byte(double v) {
  if (!(v > 0)) v = 0;
  if (v > 1) v = 1;
  return (unsigned char)floor(v * 255.0 + 0.5);
}

static void cmap_build(void) {
  for (int i = 0; i < 256; i++) {
    double x = i / 255.0;
    double rgb[CMAP_COUNT][3];
    rgb[CAMD_COLORMAP_JET][0] = piecewise(jet_r, sizeof(jet_r) / sizeof(jet_r[0]), x);
    rgb[CAMD_COLORMAP_JET][1] = piecewise(jet_g, sizeof(jet_g) / sizeof(jet_g[0]), x);
    rgb[CAMD_COLORMAP_JET][2] = piecewise(jet_b, sizeof(jet_b) / sizeof(jet_b[0]), x);
    for (int c = 0; c < 3; c++) {
      rgb[CAMD_COLORMAP_TURBO][c] = poly(turbo_c[c], 5, x);
      rgb[CAMD_COLORMAP_VIRIDIS][c] = poly(viridis_c[c], 6, x);
      rgb[CAMD_COLORMAP_INFERNO][c] = poly(inferno_c[c], 6, x);
      rgb[CAMD_COLORMAP_GRAY][c] = x;
    }
    for (int m = 0; m < CMAP_COUNT; m++)
      for (int c = 0; c < 3; c++) cmap_tables[m][i * 3 + c] = to_byte(rgb[m][c]);
  }
}

const unsigned char *camd_colormap_table(camd_colormap cmap) {
  if ((int)cmap < 0 || (int)cmap >= CMAP_COUNT) return NULL;
  pthread_once(&cmap_once, cmap_build);
  return cmap_tables[cmap];
}

int camd_heatmap_colorize(const float *map, size_t w, size_t h, camd_colormap cmap, camd_image *out,
                          camd_error *err) {
  out->pixels = NULL;
  out->width = out->height = 0;
  out->channels = 0;
  const unsigned char *lut = camd_colormap_table(cmap);
  if (!lut) return camd_error_set(err, CAMD_E_INVALID, "unknown colormap %d", (int)cmap);
  if (!map) return camd_error_set(err, CAMD_E_INVALID, "colorize: map is NULL");
  int rc = camd_image_alloc(out, w, h, 3, err);
  if (rc) return rc;
  size_t n = w * h;
  for (size_t i = 0; i < n; i++) {
    float v = map[i];
    if (isnan(v)) {
      camd_image_free(out);
      return camd_error_set(err, CAMD_E_INVALID, "colorize: NaN at pixel (%zu, %zu)", i % w, i / w);
    }
    double s = (double)v * 256.0;
    size_t idx = s < 0 ? 0 : s >= 255.0 ? 255 : (size_t)s;
    memcpy(out->pixels + 3 * i, lut + 3 * idx, 3);
  }
  return 0;
}

int camd_image_blend(const camd_image *base, const camd_image *overlay, float alpha,
                     camd_image *out, camd_error *err) {
  out->pixels = NULL;
  out->width = out->height = 0;
  out->channels = 0;
  if (!base || !overlay || !base->pixels || !overlay->pixels)
    return camd_error_set(err, CAMD_E_INVALID, "blend: empty image");
  if (!(alpha >= 0.0f && alpha <= 1.0f))
    return camd_error_set(err, CAMD_E_INVALID, "blend: alpha %g is not in [0, 1]", (double)alpha);
  if (base->width != overlay->width || base->height != overlay->height)
    return camd_error_set(err, CAMD_E_SHAPE, "blend: base is %zux%zu but overlay is %zux%zu",
                          base->width, base->height, overlay->width, overlay->height);
  if (overlay->channels != 3 || (base->channels != 1 && base->channels != 3 && base->channels != 4))
    return camd_error_set(err, CAMD_E_INVALID,
                          "blend: overlay must be RGB and base gray/RGB/RGBA (got %d over %d)",
                          overlay->channels, base->channels);
  int rc = camd_image_alloc(out, base->width, base->height, 3, err);
  if (rc) return rc;
  size_t n = base->width * base->height, bc = (size_t)base->channels;
  double a = alpha, b = 1.0 - a;
  /* v is within [0, 255], so truncating v + 0.5 is floor(v + 0.5) (round half up) without a
   * libm call, and the RGB loop vectorises: same bytes, ~8x fewer instructions. */
  const unsigned char *bp = base->pixels, *op = overlay->pixels;
  unsigned char *o = out->pixels;
  if (bc == 3) {
    for (size_t i = 0; i < 3 * n; i++) o[i] = (unsigned char)(b * bp[i] + a * op[i] + 0.5);
  } else {
    for (size_t i = 0; i < n; i++)
      for (size_t c = 0; c < 3; c++)
        o[i * 3 + c] =
            (unsigned char)(b * bp[i * bc + (bc == 1 ? 0 : c)] + a * op[i * 3 + c] + 0.5);
  }
  return 0;
}

/* camd_heatmap_overlay's work: rows [y0, y1) per task. */
typedef struct overlay_job {
  const float *map;
  const camd_image *base;
  double bterm[256];     /* (1 - alpha) * v */
  double aterm[256 * 3]; /* alpha * colour channel of table entry k */
  size_t rows_per_task;
  unsigned char *out;
} overlay_job;

static void overlay_rows(void *arg, int64_t task) {
  const overlay_job *j = arg;
  const size_t w = j->base->width, bc = (size_t)j->base->channels;
  size_t y0 = (size_t)task * j->rows_per_task, y1 = y0 + j->rows_per_task;
  if (y1 > j->base->height) y1 = j->base->height;
  if (bc == 3) { /* the photo as decoded: RGB */
    /* locals that the byte stores cannot alias (no reload of the job's fields per pixel), and
     * the three bytes read before any is written */
    const double *restrict bt = j->bterm, *restrict at = j->aterm;
    const unsigned char *restrict px = j->base->pixels;
    const float *restrict map = j->map;
    unsigned char *restrict out = j->out;
    for (size_t i = y0 * w; i < y1 * w; i++) {
      const unsigned char *bp = px + 3 * i;
      unsigned char *o = out + 3 * i;
      const unsigned r = bp[0], g = bp[1], b = bp[2];
      const float v = map[i];
      if (isnan(v)) {
        o[0] = (unsigned char)r, o[1] = (unsigned char)g, o[2] = (unsigned char)b;
        continue;
      }
      const double s = (double)v * 256.0;
      const size_t idx = s < 0 ? 0 : s >= 255.0 ? 255 : (size_t)s;
      const double *a = at + 3 * idx;
      o[0] = (unsigned char)(bt[r] + a[0] + 0.5);
      o[1] = (unsigned char)(bt[g] + a[1] + 0.5);
      o[2] = (unsigned char)(bt[b] + a[2] + 0.5);
    }
    return;
  }
  for (size_t i = y0 * w; i < y1 * w; i++) {
    const unsigned char *bp = j->base->pixels + i * bc;
    unsigned char *o = j->out + 3 * i;
    const float v = j->map[i];
    if (isnan(v)) { /* outside: the photo */
      for (size_t c = 0; c < 3; c++) o[c] = bp[bc == 1 ? 0 : c];
      continue;
    }
    /* as camd_heatmap_colorize and camd_image_blend: the same doubles added in the same order */
    const double s = (double)v * 256.0;
    const size_t idx = s < 0 ? 0 : s >= 255.0 ? 255 : (size_t)s;
    const double *a = j->aterm + 3 * idx;
    for (size_t c = 0; c < 3; c++)
      o[c] = (unsigned char)(j->bterm[bp[bc == 1 ? 0 : c]] + a[c] + 0.5);
  }
}

enum { OVERLAY_TASK_PIXELS = 1 << 15 };

int camd_heatmap_overlay(const float *map, const camd_image *base, camd_colormap cmap, float alpha,
                         const camd_parallel *par, camd_image *out, camd_error *err) {
  out->pixels = NULL;
  out->width = out->height = 0;
  out->channels = 0;
  const unsigned char *lut = camd_colormap_table(cmap);
  if (!lut) return camd_error_set(err, CAMD_E_INVALID, "unknown colormap %d", (int)cmap);
  if (!map || !base || !base->pixels || base->width == 0 || base->height == 0)
    return camd_error_set(err, CAMD_E_INVALID, "overlay: empty map or image");
  if (!(alpha >= 0.0f && alpha <= 1.0f))
    return camd_error_set(err, CAMD_E_INVALID, "overlay: alpha %g is not in [0, 1]", (double)alpha);
  if (base->channels != 1 && base->channels != 3 && base->channels != 4)
    return camd_error_set(err, CAMD_E_INVALID, "overlay: base must be gray/RGB/RGBA (got %d)",
                          base->channels);
  overlay_job *j = malloc(sizeof(*j));
  if (!j) return camd_error_set(err, CAMD_E_NOMEM, "overlay: out of memory");
  out->pixels = malloc(base->width * base->height * 3); /* sizes of a valid image: no overflow */
  if (!out->pixels) {
    free(j);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory for a %zux%zu overlay", base->width,
                          base->height);
  }
  out->width = base->width;
  out->height = base->height;
  out->channels = 3;
  const double a = alpha, b = 1.0 - a;
  for (int v = 0; v < 256; v++) j->bterm[v] = b * v;
  for (int k = 0; k < 256 * 3; k++) j->aterm[k] = a * lut[k];
  j->map = map;
  j->base = base;
  j->out = out->pixels;
  j->rows_per_task = OVERLAY_TASK_PIXELS / base->width;
  if (j->rows_per_task == 0) j->rows_per_task = 1;
  camd_parallel_for(par, (int64_t)((base->height + j->rows_per_task - 1) / j->rows_per_task),
                    overlay_rows, j);
  free(j);
  return 0;
}

/* The largest value of map[0, n) that is not NaN (false when all are NaN). Four lanes with SSE:
 * maxps(v, m) is `v > m ? v : m`, which keeps m when v is NaN, so the lanes skip NaN as the
 * scalar loop does; only the sign of a zero maximum can depend on the order, and callers compare
 * with == or > 0, where -0 and 0 are the same. */
static bool map_max(const float *map, size_t n, float *mx) {
  float m = -INFINITY;
  bool any = false;
  size_t i = 0;
#if defined(__SSE2__)
  __m128 vm = _mm_set1_ps(-INFINITY), ord = _mm_setzero_ps();
  for (; i + 4 <= n; i += 4) {
    const __m128 v = _mm_loadu_ps(map + i);
    vm = _mm_max_ps(v, vm);
    ord = _mm_or_ps(ord, _mm_cmpord_ps(v, v));
  }
  float lanes[4];
  _mm_storeu_ps(lanes, vm);
  for (int k = 0; k < 4; k++) m = lanes[k] > m ? lanes[k] : m;
  any = _mm_movemask_ps(ord) != 0;
#endif
  for (; i < n; i++) {
    if (isnan(map[i])) continue;
    if (!any || map[i] > m) m = map[i];
    any = true;
  }
  *mx = m;
  return any;
}

int camd_heatmap_peak(const float *map, size_t w, size_t h, size_t *x, size_t *y, float *value,
                      camd_error *err) {
  if (!map || w == 0 || h == 0) return camd_error_set(err, CAMD_E_INVALID, "peak: empty map");
  /* the first value equal to the maximum: the one a scan keeping the first of equals finds */
  size_t n = w * h, best = 0;
  float mx;
  if (!map_max(map, n, &mx)) return camd_error_set(err, CAMD_E_INVALID, "peak: map is all NaN");
#if defined(__SSE2__)
  const __m128 vmx = _mm_set1_ps(mx);
  for (; best + 4 <= n; best += 4) {
    const int hit = _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(map + best), vmx));
    if (hit) {
      best += (size_t)__builtin_ctz((unsigned)hit);
      break;
    }
  }
#endif
  while (!(map[best] == mx)) best++;
  if (x) *x = best % w;
  if (y) *y = best / w;
  if (value) *value = map[best];
  return 0;
}

/* Threshold value, or false when nothing can qualify (max <= 0 or all NaN). */
static bool qualify_threshold(const float *map, size_t n, float threshold, float *thr) {
  float mx;
  if (!map_max(map, n, &mx) || !(mx > 0)) return false;
  *thr = threshold * mx;
  return true;
}

static int check_map_threshold(const float *map, size_t w, size_t h, float threshold,
                               const char *what, camd_error *err) {
  size_t n;
  if (!map || w == 0 || h == 0 || !camd_size_mul(w, h, &n))
    return camd_error_set(err, CAMD_E_INVALID, "%s: empty map", what);
  if (!(threshold >= 0.0f && threshold <= 1.0f))
    return camd_error_set(err, CAMD_E_INVALID, "%s: threshold %g is not in [0, 1]", what,
                          (double)threshold);
  return 0;
}

/* A run of qualifying pixels [x0, x1] on row y, and its union-find parent (a run index). */
typedef struct bbox_run {
  uint32_t y, x0, x1, parent;
} bbox_run;

static uint32_t run_root(bbox_run *r, uint32_t i) {
  while (r[i].parent != i) {
    r[i].parent = r[r[i].parent].parent; /* path halving */
    i = r[i].parent;
  }
  return i;
}

/* Largest 8-connected component of the pixels >= thr (NaN never qualifies), by runs: each row's
 * runs are joined (union-find, the root being the component's first run in raster order) with
 * the runs of the row above that touch them, diagonals included. Ties go to the component whose
 * first pixel comes first in raster order. About two comparisons per pixel. */
static int largest_component(const float *map, size_t w, size_t h, float thr, camd_bbox *box,
                             camd_error *err) {
  /* At most ceil(w / 2) runs per row. */
  size_t max_runs;
  if (w > UINT32_MAX / 2 || h > UINT32_MAX || !camd_size_mul((w + 1) / 2, h, &max_runs) ||
      max_runs >= UINT32_MAX)
    return camd_error_set(err, CAMD_E_INVALID, "bbox: a %zux%zu map is too large", w, h);
  bbox_run *runs = malloc(max_runs * sizeof(*runs));
  if (!runs)
    return camd_error_set(err, CAMD_E_NOMEM, "bbox: out of memory for a %zux%zu map", w, h);
  uint32_t n = 0, prev0 = 0, prev1 = 0; /* runs of the row above: [prev0, prev1) */
  for (size_t y = 0; y < h; y++) {
    const float *row = map + y * w;
    const uint32_t cur0 = n;
    uint32_t p = prev0;
    for (size_t x = 0; x < w;) {
      if (!(row[x] >= thr)) { /* NaN compares false */
        x++;
        continue;
      }
      size_t x1 = x;
      while (x1 + 1 < w && row[x1 + 1] >= thr) x1++;
      bbox_run *r = &runs[n];
      *r = (bbox_run){(uint32_t)y, (uint32_t)x, (uint32_t)x1, n};
      /* Runs above that touch [x - 1, x1 + 1]: skip those ending left of it. */
      while (p < prev1 && (size_t)runs[p].x1 + 1 < x) p++;
      for (uint32_t q = p; q < prev1 && runs[q].x0 <= x1 + 1; q++) {
        uint32_t a = run_root(runs, q), b = run_root(runs, n);
        if (a != b) { /* the earlier run becomes the root */
          if (a < b)
            runs[b].parent = a;
          else
            runs[a].parent = b;
        }
      }
      n++;
      x = x1 + 1;
    }
    prev0 = cur0, prev1 = n;
  }
  /* Per root: pixels and extent (gathered in the runs' own slots, roots first in index order). */
  camd_bbox *comp = n ? calloc(n, sizeof(*comp)) : NULL;
  if (n && !comp) {
    free(runs);
    return camd_error_set(err, CAMD_E_NOMEM, "bbox: out of memory for a %zux%zu map", w, h);
  }
  for (uint32_t i = 0; i < n; i++) {
    const uint32_t root = run_root(runs, i);
    camd_bbox *c = &comp[root];
    const bbox_run *r = &runs[i];
    if (!c->found) {
      *c = (camd_bbox){true, r->x0, r->y, r->x1, r->y, 0};
    }
    if (r->x0 < c->x0) c->x0 = r->x0;
    if (r->x1 > c->x1) c->x1 = r->x1;
    if (r->y > c->y1) c->y1 = r->y;
    c->pixels += (size_t)(r->x1 - r->x0) + 1;
  }
  for (uint32_t i = 0; i < n; i++) {
    if (comp[i].found && comp[i].pixels > box->pixels) *box = comp[i];
  }
  free(comp);
  free(runs);
  return 0;
}

int camd_heatmap_bbox(const float *map, size_t w, size_t h, float threshold, camd_bbox_mode mode,
                      camd_bbox *box, camd_error *err) {
  memset(box, 0, sizeof(*box));
  int rc = check_map_threshold(map, w, h, threshold, "bbox", err);
  if (rc) return rc;
  if (mode != CAMD_BBOX_LARGEST_COMPONENT && mode != CAMD_BBOX_ALL)
    return camd_error_set(err, CAMD_E_INVALID, "bbox: unknown mode %d", (int)mode);
  size_t n = w * h;
  float thr;
  if (!qualify_threshold(map, n, threshold, &thr)) return 0;
#define QUAL(i) (!isnan(map[i]) && map[i] >= thr)
  if (mode == CAMD_BBOX_ALL) {
    for (size_t i = 0; i < n; i++) {
      if (!QUAL(i)) continue;
      size_t x = i % w, y = i / w;
      if (!box->found) {
        box->found = true;
        box->x0 = box->x1 = x;
        box->y0 = box->y1 = y;
      }
      if (x < box->x0) box->x0 = x;
      if (x > box->x1) box->x1 = x;
      if (y > box->y1) box->y1 = y;
      box->pixels++;
    }
    return 0;
  }
#undef QUAL
  return largest_component(map, w, h, thr, box, err);
}

int camd_heatmap_mask(const float *map, size_t w, size_t h, float threshold, camd_image *out,
                      camd_error *err) {
  out->pixels = NULL;
  out->width = out->height = 0;
  out->channels = 0;
  int rc = check_map_threshold(map, w, h, threshold, "mask", err);
  if (rc) return rc;
  rc = camd_image_alloc(out, w, h, 1, err);
  if (rc) return rc;
  size_t n = w * h;
  float thr;
  if (!qualify_threshold(map, n, threshold, &thr)) return 0;
  for (size_t i = 0; i < n; i++) out->pixels[i] = (!isnan(map[i]) && map[i] >= thr) ? 255 : 0;
  return 0;
}
