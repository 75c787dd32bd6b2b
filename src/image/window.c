/* Windowing: high-bit-depth gray values to 8-bit display levels (the DICOM VOI step, PS3.3
 * C.11.2: LINEAR, LINEAR_EXACT and SIGMOID windows, VOI LUTs; min-max auto window; presets). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/image_internal.h"

static const struct {
  const char *name;
  double center, width;
} presets[] = {
    {"lung", -600, 1500}, {"mediastinum", 50, 350}, {"bone", 400, 1800},
    {"brain", 40, 80},    {"soft_tissue", 40, 400},
};

#define WINDOW_FORMS                                                                             \
  "dicom, dicom:N (the file's N-th VOI, 0 = first), auto, C,W (centre,width, width >= 1) or a "  \
  "preset: lung (-600,1500), mediastinum (50,350), bone (400,1800), brain (40,80), soft_tissue " \
  "(40,400)"

static bool parse_double(const char *s, const char *end, double *out) {
  char buf[64];
  while (s < end && isspace((unsigned char)*s)) s++;
  while (end > s && isspace((unsigned char)end[-1])) end--;
  size_t n = (size_t)(end - s);
  if (n == 0 || n >= sizeof(buf)) return false;
  memcpy(buf, s, n);
  buf[n] = '\0';
  char *e = NULL;
  errno = 0;
  double v = strtod(buf, &e);
  if (errno || *e || !isfinite(v)) return false;
  *out = v;
  return true;
}

int camd_window_parse(const char *text, camd_window *out, camd_error *err) {
  if (!text || !out) return camd_error_set(err, CAMD_E_INVALID, "window: no value");
  char t[64];
  while (isspace((unsigned char)*text)) text++;
  size_t n = strlen(text);
  while (n && isspace((unsigned char)text[n - 1])) n--;
  if (n == 0 || n >= sizeof(t))
    return camd_error_set(err, CAMD_E_INVALID, "window '%.40s' is not valid; use " WINDOW_FORMS,
                          text);
  for (size_t i = 0; i < n; i++) t[i] = (char)tolower((unsigned char)text[i]);
  t[n] = '\0';
  camd_window w;
  memset(&w, 0, sizeof(w));
  if (!strcmp(t, "dicom")) {
    w.kind = CAMD_WINDOW_DEFAULT;
  } else if (!strncmp(t, "dicom:", 6)) {
    const char *p = t + 6;
    char *e = NULL;
    errno = 0;
    unsigned long idx = (*p >= '0' && *p <= '9') ? strtoul(p, &e, 10) : 1000000;
    if (errno || !e || *e || idx > 1000)
      return camd_error_set(err, CAMD_E_INVALID,
                            "window '%s': N in dicom:N must be a number from 0 to 1000", t);
    w.kind = CAMD_WINDOW_DEFAULT;
    w.index = (unsigned)idx;
  } else if (!strcmp(t, "auto")) {
    w.kind = CAMD_WINDOW_AUTO;
  } else {
    bool found = false;
    for (size_t i = 0; i < sizeof(presets) / sizeof(presets[0]); i++) {
      if (!strcmp(t, presets[i].name)) {
        w.kind = CAMD_WINDOW_EXPLICIT;
        w.center = presets[i].center;
        w.width = presets[i].width;
        snprintf(w.name, sizeof(w.name), "%s", presets[i].name);
        found = true;
      }
    }
    if (!found) {
      const char *comma = strchr(t, ',');
      if (!comma || !parse_double(t, comma, &w.center) || !parse_double(comma + 1, t + n, &w.width))
        return camd_error_set(err, CAMD_E_INVALID, "window '%s' is not valid; use " WINDOW_FORMS,
                              t);
      if (w.width < 1)
        return camd_error_set(err, CAMD_E_INVALID,
                              "window '%s': the width must be at least 1 (DICOM LINEAR window)", t);
      w.kind = CAMD_WINDOW_EXPLICIT;
    }
  }
  *out = w;
  return 0;
}

void camd_window_format(const camd_window *w, char *buf, size_t size) {
  if (!size) return;
  switch (w->kind) {
    case CAMD_WINDOW_DEFAULT:
      if (w->index)
        snprintf(buf, size, "dicom:%u", w->index);
      else
        snprintf(buf, size, "dicom");
      return;
    case CAMD_WINDOW_AUTO:
      snprintf(buf, size, "auto");
      return;
    case CAMD_WINDOW_EXPLICIT:
      if (w->name[0])
        snprintf(buf, size, "%s", w->name);
      else
        snprintf(buf, size, "%.17g,%.17g", w->center, w->width);
      return;
  }
  snprintf(buf, size, "?");
}

const char *camd_voi_function_name(camd_voi_function f) {
  switch (f) {
    case CAMD_VOI_LINEAR:
      return "LINEAR";
    case CAMD_VOI_LINEAR_EXACT:
      return "LINEAR_EXACT";
    case CAMD_VOI_SIGMOID:
      return "SIGMOID";
  }
  return "?";
}

/* Why a VOI cannot be applied, or NULL. */
static const char *voi_problem(const camd_voi *v) {
  if (v->is_lut) {
    if (!v->data || v->entries == 0) return "the VOI LUT is empty";
    if (v->bits < 1 || v->bits > 16) return "the VOI LUT's bits per entry are not 1..16";
    return NULL;
  }
  if (!isfinite(v->center) || !isfinite(v->width)) return "the window is not finite";
  if (v->function == CAMD_VOI_LINEAR && v->width < 1)
    return "the window width is below 1 (DICOM LINEAR function)";
  if (v->function != CAMD_VOI_LINEAR && !(v->width > 0)) return "the window width is not positive";
  return NULL;
}

static unsigned char level(double t) {
  if (!(t > 0)) return 0; /* also NaN */
  if (t >= 1) return 255;
  return (unsigned char)floor(t * 255.0 + 0.5);
}

int camd_voi_apply(const float *values, size_t n, const camd_voi *voi, bool invert,
                   unsigned char *out, camd_error *err) {
  if ((!values || !out) && n) return camd_error_set(err, CAMD_E_INVALID, "VOI: NULL buffer");
  if (!voi) return camd_error_set(err, CAMD_E_INVALID, "VOI: none given");
  const char *why = voi_problem(voi);
  if (why) return camd_error_set(err, CAMD_E_INVALID, "VOI: %s", why);
  if (voi->is_lut) {
    double top = (double)((1u << voi->bits) - 1);
    for (size_t i = 0; i < n; i++) {
      double x = values[i];
      unsigned char l = 0;
      if (!isnan(x)) {
        double k = floor(x - (double)voi->first_mapped);
        size_t idx = k <= 0 ? 0 : k >= (double)(voi->entries - 1) ? voi->entries - 1 : (size_t)k;
        l = level(voi->data[idx] / top);
      }
      out[i] = invert ? (unsigned char)(255 - l) : l;
    }
    return 0;
  }
  double c = voi->center, w = voi->width;
  if (voi->function == CAMD_VOI_LINEAR) {
    c -= 0.5;
    w -= 1;
  }
  for (size_t i = 0; i < n; i++) {
    double x = values[i], t;
    if (isnan(x)) {
      t = 0;
    } else if (voi->function == CAMD_VOI_SIGMOID) {
      t = 1.0 / (1.0 + exp(-4.0 * (x - c) / w));
    } else if (x <= c - w / 2) {
      t = 0;
    } else if (x > c + w / 2) {
      t = 1;
    } else {
      t = (x - c) / w + 0.5; /* w > 0 here: w == 0 leaves no value between the two bounds */
    }
    unsigned char l = level(t);
    out[i] = invert ? (unsigned char)(255 - l) : l;
  }
  return 0;
}

/* min..max of the finite values onto 0..255; a constant (or all-NaN) frame maps to 0. */
static void apply_auto(const float *v, size_t n, bool invert, unsigned char *out,
                       camd_window_used *used) {
  double lo = INFINITY, hi = -INFINITY;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(v[i])) continue;
    if (v[i] < lo) lo = v[i];
    if (v[i] > hi) hi = v[i];
  }
  double range = hi - lo;
  for (size_t i = 0; i < n; i++) {
    unsigned char l = 0;
    if (range > 0 && !isnan(v[i])) l = level((v[i] - lo) / range);
    out[i] = invert ? (unsigned char)(255 - l) : l;
  }
  used->source = CAMD_WINDOW_FROM_AUTO;
  used->function = CAMD_VOI_LINEAR_EXACT;
  used->center = lo <= hi ? (lo + hi) / 2 : 0;
  used->width = lo <= hi ? range : 0;
}

int camd_window_gray(const float *values, size_t width, size_t height, const camd_window *window,
                     const camd_voi *file_vois, size_t n_file_vois, bool invert, camd_image *out,
                     camd_window_used *used, camd_error *err) {
  camd_window_used local;
  if (!used) used = &local;
  memset(used, 0, sizeof(*used));
  out->width = out->height = 0;
  out->channels = 0;
  out->pixels = NULL;
  if (!values || !window) return camd_error_set(err, CAMD_E_INVALID, "window: NULL argument");
  if (n_file_vois && !file_vois)
    return camd_error_set(err, CAMD_E_INVALID, "window: NULL file VOIs");
  used->requested = window->kind;
  used->inverted = invert;
  used->index = window->index;
  snprintf(used->name, sizeof(used->name), "%s", window->name);
  camd_voi req;
  const camd_voi *voi = NULL;
  switch (window->kind) {
    case CAMD_WINDOW_DEFAULT:
      if (n_file_vois == 0) {
        used->fallback = true;
        snprintf(used->fallback_reason, sizeof(used->fallback_reason),
                 "the image has no VOI window or VOI LUT: auto (min-max) window used");
        break;
      }
      if (window->index >= n_file_vois)
        return camd_error_set(err, CAMD_E_INVALID,
                              "window dicom:%u: the image has %zu VOI transform(s) (dicom:0 to "
                              "dicom:%zu)",
                              window->index, n_file_vois, n_file_vois - 1);
      voi = &file_vois[window->index];
      if (voi_problem(voi)) {
        used->fallback = true;
        snprintf(used->fallback_reason, sizeof(used->fallback_reason),
                 "the image's VOI %u is unusable (%s): auto (min-max) window used", window->index,
                 voi_problem(voi));
        voi = NULL;
      }
      break;
    case CAMD_WINDOW_AUTO:
      break;
    case CAMD_WINDOW_EXPLICIT:
      memset(&req, 0, sizeof(req));
      req.function = CAMD_VOI_LINEAR;
      req.center = window->center;
      req.width = window->width;
      if (voi_problem(&req))
        return camd_error_set(err, CAMD_E_INVALID, "window %g,%g: %s", window->center,
                              window->width, voi_problem(&req));
      voi = &req;
      break;
    default:
      return camd_error_set(err, CAMD_E_INVALID, "window: unknown kind %d", (int)window->kind);
  }
  int rc = camd_image_alloc(out, width, height, 1, err);
  if (rc) return rc;
  size_t n = width * height;
  if (!voi) {
    apply_auto(values, n, invert, out->pixels, used);
    return 0;
  }
  rc = camd_voi_apply(values, n, voi, invert, out->pixels, err);
  if (rc) {
    camd_image_free(out);
    return rc;
  }
  if (window->kind == CAMD_WINDOW_EXPLICIT) {
    used->source = CAMD_WINDOW_FROM_REQUEST;
  } else {
    used->source = voi->is_lut ? CAMD_WINDOW_FROM_FILE_LUT : CAMD_WINDOW_FROM_FILE_WINDOW;
    snprintf(used->explanation, sizeof(used->explanation), "%s", voi->explanation);
  }
  used->function = voi->is_lut ? CAMD_VOI_LINEAR : voi->function;
  used->center = voi->is_lut ? NAN : voi->center;
  used->width = voi->is_lut ? NAN : voi->width;
  return 0;
}
