/* The DICOM pixel pipeline on one fetched frame: stored values -> Modality LUT -> VOI (window.c)
 * -> MONOCHROME1 inversion -> 8-bit gray; colour: YBR -> RGB, samples scaled to 8 bits. Also the
 * C side of camd/dicom.h (decode entry point, limits, frame release) and camd_image_decode's
 * DICOM branch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image/dicom_internal.h"
#include "image/image_internal.h"

void camd_dicom_limits_default(camd_dicom_limits *limits) {
  limits->max_bytes = (size_t)1 << 30;
  limits->max_frames = 4096;
  camd_image_limits_default(&limits->image);
}

void camd__dicom_raw_free(camd__dicom_raw *raw) {
  if (!raw) return;
  free(raw->data);
  memset(raw, 0, sizeof(*raw));
}

void camd_dicom_frame_free(camd_dicom_frame *f) {
  if (!f) return;
  camd_image_free(&f->image);
  free(f->stored);
  free(f->values);
  memset(f, 0, sizeof(*f));
}

/* ---- stored values ---- */
typedef struct sample_reader {
  const camd__dicom_raw *raw;
  size_t n;  /* pixels in the frame */
  int spp;   /* samples per pixel */
  int bytes; /* bytes per sample (native, BitsAllocated >= 8) */
  int ba, bs, shift, pr;
  uint64_t mask;
} sample_reader;

/* Bytes the frame needs in raw->data. */
static size_t needed_bytes(const sample_reader *r) {
  const camd__dicom_raw *raw = r->raw;
  if (raw->kind == CAMD__DICOM_RAW_INT32) return r->n * (size_t)r->spp * 4;
  if (r->ba == 1) return (raw->bit_offset + r->n * (size_t)r->spp + 7) / 8;
  size_t samples = raw->ybr422_packed ? r->n * 2 : r->n * (size_t)r->spp;
  return samples * (size_t)r->bytes;
}

static uint64_t load(const unsigned char *p, int bytes, bool be) {
  uint64_t v = 0;
  for (int k = 0; k < bytes; k++) v |= (uint64_t)p[be ? bytes - 1 - k : k] << (8 * k);
  return v;
}

/* Stored value of sample c of pixel i. */
static int64_t stored_at(const sample_reader *r, size_t i, int c) {
  const camd__dicom_raw *raw = r->raw;
  if (raw->kind == CAMD__DICOM_RAW_INT32) {
    int32_t v;
    memcpy(&v, raw->data + (i * (size_t)r->spp + (size_t)c) * 4, 4);
    return v;
  }
  uint64_t word;
  if (r->ba == 1) {
    size_t bit = raw->bit_offset + i * (size_t)r->spp + (size_t)c;
    word = (raw->data[bit / 8] >> (bit % 8)) & 1u;
  } else {
    size_t s;
    if (raw->ybr422_packed) /* Y1 Y2 Cb Cr per pair of pixels */
      s = (i / 2) * 4 + (c == 0 ? i % 2 : (size_t)c + 1);
    else if (raw->planar)
      s = (size_t)c * r->n + i;
    else
      s = i * (size_t)r->spp + (size_t)c;
    word = load(raw->data + s * (size_t)r->bytes, r->bytes, raw->big_endian);
  }
  uint64_t v = (word >> r->shift) & r->mask;
  if (r->pr && ((v >> (r->bs - 1)) & 1u)) return (int64_t)(v | ~r->mask); /* sign-extend */
  return (int64_t)v;
}

static double modality(const camd_dicom_info *info, const camd__dicom_pixmod *pm, int64_t s) {
  if (info->has_modality_lut) {
    const camd__dicom_lut *l = &pm->modality_lut;
    int64_t k = s - l->first_mapped;
    size_t idx = k <= 0 ? 0 : (uint64_t)k >= l->entries ? l->entries - 1 : (size_t)k;
    return l->data[idx];
  }
  if (info->has_rescale) return (double)s * info->rescale_slope + info->rescale_intercept;
  return (double)s;
}

/* The file's VOI transforms for CAMD_WINDOW_DEFAULT: VOI LUT Sequence items when present (as
 * pydicom's apply_voi_lut prefers them), else the window pairs. */
static size_t file_vois(const camd_dicom_info *info, const camd__dicom_pixmod *pm, camd_voi *vois) {
  size_t n = 0;
  if (info->n_voi_luts) {
    for (size_t i = 0; i < info->n_voi_luts; i++, n++) {
      const camd__dicom_lut *l = &pm->voi_luts[i];
      memset(&vois[n], 0, sizeof(vois[n]));
      vois[n].is_lut = true;
      vois[n].first_mapped = l->first_mapped;
      vois[n].entries = l->entries;
      vois[n].bits = l->bits;
      vois[n].data = l->data;
      memcpy(vois[n].explanation, l->explanation, sizeof(vois[n].explanation));
    }
    return n;
  }
  for (size_t i = 0; i < info->n_windows; i++, n++) {
    memset(&vois[n], 0, sizeof(vois[n]));
    vois[n].function = info->voi_function;
    vois[n].center = info->window_center[i];
    vois[n].width = info->window_width[i];
    memcpy(vois[n].explanation, pm->window_explanation[i], sizeof(vois[n].explanation));
  }
  return n;
}

static unsigned char to8(double v, double top) {
  if (!(v > 0)) return 0;
  if (v >= top) return 255;
  return (unsigned char)floor(v * 255.0 / top + 0.5);
}

int camd__dicom_pipeline(const camd_dicom_info *info, const camd__dicom_pixmod *pm,
                         const camd__dicom_raw *raw, const camd_dicom_decode_opts *opts,
                         camd_dicom_frame *out, camd_error *err) {
  sample_reader r;
  memset(&r, 0, sizeof(r));
  r.raw = raw;
  r.n = info->rows * info->columns; /* fits: checked against the limits at open */
  r.spp = info->samples_per_pixel;
  r.ba = info->bits_allocated;
  r.bytes = r.ba / 8;
  r.bs = info->bits_stored; /* 1..32, checked at open */
  r.shift = info->high_bit + 1 - info->bits_stored;
  r.mask = ((uint64_t)1 << r.bs) - 1;
  r.pr = info->pixel_representation;
  if (raw->kind == CAMD__DICOM_RAW_NATIVE && raw->planar && raw->ybr422_packed)
    return camd_error_set(err, CAMD_E_FORMAT, "YBR_FULL_422 with PlanarConfiguration 1");
  if (raw->len < needed_bytes(&r))
    return camd_error_set(err, CAMD_E_FORMAT, "frame %zu has %zu bytes of samples, %zu needed",
                          opts->frame, raw->len, needed_bytes(&r));
  size_t n = r.n, ns = n * (size_t)r.spp;
  out->frame = opts->frame;
  out->samples = r.spp;
  snprintf(out->stored_color_model, sizeof(out->stored_color_model), "%s", raw->color_model);
  if (opts->want_stored) {
    out->stored = malloc(ns * sizeof(int64_t));
    if (!out->stored) return camd_error_set(err, CAMD_E_NOMEM, "out of memory for stored values");
    for (size_t i = 0; i < n; i++)
      for (int c = 0; c < r.spp; c++)
        out->stored[i * (size_t)r.spp + (size_t)c] = stored_at(&r, i, c);
  }

  if (pm->palette) { /* PALETTE COLOR: stored value -> Red/Green/Blue LUT entries */
    int rc = camd_image_alloc(&out->image, info->columns, info->rows, 3, err);
    if (rc) return rc;
    const camd__dicom_lut *l = pm->palette_luts;
    double top = (double)(((uint64_t)1 << l[0].bits) - 1);
    unsigned char *o = out->image.pixels;
    for (size_t i = 0; i < n; i++) {
      /* below the first mapped value: entry 0; beyond the last: the last entry (PS3.3
       * C.7.6.3.1.5) */
      int64_t k = stored_at(&r, i, 0) - l[0].first_mapped;
      size_t idx = k <= 0 ? 0 : (uint64_t)k >= l[0].entries ? l[0].entries - 1 : (size_t)k;
      for (int c = 0; c < 3; c++) o[3 * i + (size_t)c] = to8(l[c].data[idx], top);
    }
    return 0;
  }

  if (r.spp == 1) {
    float *v = malloc(n * sizeof(float));
    if (!v) return camd_error_set(err, CAMD_E_NOMEM, "out of memory for modality values");
    for (size_t i = 0; i < n; i++) v[i] = (float)modality(info, pm, stored_at(&r, i, 0));
    camd_voi vois[CAMD__DICOM_MAX_VOI_LUTS + CAMD_DICOM_MAX_WINDOWS];
    size_t nv = file_vois(info, pm, vois);
    out->monochrome1 = !strcmp(info->photometric, "MONOCHROME1");
    int rc = camd_window_gray(v, info->columns, info->rows, &opts->window, vois, nv,
                              out->monochrome1, &out->image, &out->window, err);
    if (rc || !opts->want_values)
      free(v);
    else
      out->values = v;
    return rc;
  }

  /* colour */
  int rc = camd_image_alloc(&out->image, info->columns, info->rows, 3, err);
  if (rc) return rc;
  double top = (double)(((uint64_t)1 << info->bits_stored) - 1);
  bool ybr = !strcmp(raw->color_model, "YBR_FULL") || !strcmp(raw->color_model, "YBR_FULL_422");
  double half = (double)((uint64_t)1 << (info->bits_stored - 1));
  unsigned char *o = out->image.pixels;
  for (size_t i = 0; i < n; i++) {
    double s0 = (double)stored_at(&r, i, 0), s1 = (double)stored_at(&r, i, 1),
           s2 = (double)stored_at(&r, i, 2);
    if (ybr) { /* PS3.3 C.7.6.3.1.2, full range */
      double y = s0, cb = s1 - half, cr = s2 - half;
      s0 = y + 1.402 * cr;
      s1 = y - (0.114 * 1.772 / 0.587) * cb - (0.299 * 1.402 / 0.587) * cr;
      s2 = y + 1.772 * cb;
    }
    o[3 * i] = to8(s0, top);
    o[3 * i + 1] = to8(s1, top);
    o[3 * i + 2] = to8(s2, top);
  }
  return 0;
}

int camd_dicom_decode(camd_dicom *dcm, const camd_dicom_decode_opts *opts, camd_dicom_frame *out,
                      camd_error *err) {
  if (!out) return camd_error_set(err, CAMD_E_INVALID, "camd_dicom_decode: out is NULL");
  memset(out, 0, sizeof(*out));
  if (!dcm) return camd_error_set(err, CAMD_E_INVALID, "camd_dicom_decode: no DICOM handle");
  camd_dicom_decode_opts def;
  if (!opts) {
    memset(&def, 0, sizeof(def));
    opts = &def;
  }
  const camd_dicom_info *info = camd_dicom_get_info(dcm);
  if (opts->frame >= info->frames)
    return camd_error_set(err, CAMD_E_INVALID,
                          "frame %zu out of range: the file has %zu frame(s) (0 to %zu)",
                          opts->frame, info->frames, info->frames - 1);
  bool gray = info->samples_per_pixel == 1 && strcmp(info->photometric, "PALETTE COLOR") != 0;
  if (!gray && (opts->window.kind != CAMD_WINDOW_DEFAULT || opts->window.index != 0)) {
    char text[64];
    camd_window_format(&opts->window, text, sizeof(text));
    return camd_error_set(err, CAMD_E_INVALID,
                          "option window='%s' applies to grayscale images only (DICOM "
                          "MONOCHROME1/MONOCHROME2, gray PNG); this DICOM frame is colour (%s): "
                          "leave the window option out for it",
                          text, info->photometric);
  }
  if (gray && opts->window.kind == CAMD_WINDOW_EXPLICIT &&
      !(opts->window.width >= 1 && isfinite(opts->window.width) && isfinite(opts->window.center)))
    return camd_error_set(err, CAMD_E_INVALID, "window %g,%g: the width must be at least 1",
                          opts->window.center, opts->window.width);
  camd__dicom_raw raw;
  int rc = camd__dicom_raw_frame(dcm, opts->frame, &raw, err);
  if (rc) return rc;
  rc = camd__dicom_pipeline(info, camd__dicom_get_pixmod(dcm), &raw, opts, out, err);
  camd__dicom_raw_free(&raw);
  if (rc) camd_dicom_frame_free(out);
  return rc;
}

int camd__dicom_decode_image(const unsigned char *data, size_t len, const camd_image_limits *limits,
                             camd_image *out, camd_image_info *info, camd_error *err) {
  camd_dicom_limits dl;
  camd_dicom_limits_default(&dl);
  if (limits) dl.image = *limits;
  camd_dicom *dcm = NULL;
  camd_dicom_info di;
  int rc = camd_dicom_open(data, len, &dl, &dcm, &di, err);
  if (rc) return rc;
  info->file_width = di.columns;
  info->file_height = di.rows;
  info->file_channels = di.samples_per_pixel;
  info->bit_depth = di.bits_stored;
  camd_dicom_frame f;
  rc = camd_dicom_decode(dcm, NULL, &f, err);
  camd_dicom_close(dcm);
  if (rc) return rc;
  if (f.image.channels == 3) {
    *out = f.image;
    f.image.pixels = NULL;
  } else {
    rc = camd_image_to_rgb(&f.image, out, err);
  }
  camd_dicom_frame_free(&f);
  return rc;
}
