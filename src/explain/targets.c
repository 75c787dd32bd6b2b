/* Segmentation and embedding targets: the argmax pixel counts of a segmentation output, the region
 * (argmax / box / mask PNG) whose class score a map explains, and the reference vector of an
 * embedding (parsed text, or the embedding of a reference image).
 *
 * Segmentation (pytorch-grad-cam's SemanticSegmentationTarget): the score of class k is
 * Σ_{y,x} output[k, y, x] · mask[y, x] on the output grid (H × W), mask 0/1:
 *   argmax  mask = (argmax over classes of output[:, y, x] == k), from the image's own forward;
 *   box     x0,y0,x1,y1 in image pixels (inclusive): output pixels whose centre, mapped through
 *           the crop onto the image, lies in [x0, x1 + 1) × [y0, y1 + 1);
 *   mask    a PNG of the output's or the model input's width × height; nonzero pixels are
 *           inside (an input-sized mask is sampled at the output pixels' centres).
 * Embedding (SimilarityToConceptTarget): cos(embedding, reference). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "explain/explain_internal.h"

int camd__seg_pixels(const camd_explainer *e, const float *out, camd_explain_item *item,
                     camd_error *err) {
  int K = e->n_classes;
  size_t hw = (size_t)e->seg_h * (size_t)e->seg_w;
  long *px = calloc((size_t)K, sizeof(long));
  if (!px) return camd_error_set(err, CAMD_E_NOMEM, "explain: out of memory");
  for (size_t i = 0; i < hw; i++) {
    int best = 0;
    float bv = out[i];
    for (int k = 1; k < K; k++) {
      float v = out[(size_t)k * hw + i];
      if (v > bv || (isnan(bv) && !isnan(v))) bv = v, best = k;
    }
    px[best]++;
  }
  free(item->seg_pixels);
  item->seg_pixels = px;
  item->n_seg_classes = K;
  item->seg_width = e->seg_w;
  item->seg_height = e->seg_h;
  return 0;
}

/* The 0/1 mask of a PNG region on the output grid into mask[hw]. */
static int mask_from_png(const camd_explainer *e, const camd_explain_input *in,
                         const camd_explain_limits *lim, float *mask, camd_error *err) {
  camd_image img = {0};
  camd_image_info info;
  int rc = camd_image_decode(in->mask, in->mask_len, &lim->image, &img, &info, err);
  if (rc) return camd_error_prefix(err, rc, "mask: ");
  int W = e->seg_w, H = e->seg_h;
  size_t iw = e->cfg.preprocess.width, ih = e->cfg.preprocess.height;
  bool out_size = img.width == (size_t)W && img.height == (size_t)H;
  if (!out_size && !(img.width == iw && img.height == ih)) {
    rc = camd_error_set(err, CAMD_E_INVALID,
                        "mask: the PNG is %zu×%zu; it must be the model output's %d×%d or the "
                        "model input's %zu×%zu (width × height)",
                        img.width, img.height, W, H, iw, ih);
    camd_image_free(&img);
    return rc;
  }
  for (int y = 0; y < H; y++) {
    for (int x = 0; x < W; x++) {
      size_t sx = out_size ? (size_t)x : (size_t)(((double)x + 0.5) * (double)iw / W);
      size_t sy = out_size ? (size_t)y : (size_t)(((double)y + 0.5) * (double)ih / H);
      const unsigned char *p = img.pixels + (sy * img.width + sx) * (size_t)img.channels;
      bool inside = false;
      for (int c = 0; c < img.channels && c < 3; c++) inside |= p[c] != 0;
      if (img.channels == 2 || img.channels == 4) inside &= p[img.channels - 1] != 0; /* alpha */
      mask[(size_t)y * W + x] = inside ? 1.0f : 0.0f;
    }
  }
  camd_image_free(&img);
  return 0;
}

/* The 0/1 mask of box b (image pixels, inclusive) on the output grid, through the crop. */
static int mask_from_box(const camd_explainer *e, const int *b, size_t img_w, size_t img_h,
                         const camd_crop *crop, float *mask, camd_error *err) {
  if ((size_t)b[2] >= img_w || (size_t)b[3] >= img_h)
    return camd_error_set(err, CAMD_E_INVALID,
                          "option box=%d,%d,%d,%d: must lie inside the image (x 0..%zu, y 0..%zu)",
                          b[0], b[1], b[2], b[3], img_w - 1, img_h - 1);
  int W = e->seg_w, H = e->seg_h;
  for (int y = 0; y < H; y++) {
    double iy = crop->y + ((double)y + 0.5) * crop->h / H;
    for (int x = 0; x < W; x++) {
      double ix = crop->x + ((double)x + 0.5) * crop->w / W;
      bool inside = ix >= b[0] && ix < b[2] + 1.0 && iy >= b[1] && iy < b[3] + 1.0;
      mask[(size_t)y * W + x] = inside ? 1.0f : 0.0f;
    }
  }
  return 0;
}

int camd__seg_target(const camd_explainer *e, const camd_explain_options *o,
                     const camd_explain_input *in, const camd_explain_limits *lim, const float *out,
                     size_t img_w, size_t img_h, const camd_crop *crop, int k, float *mask,
                     camd_cam_target *t, camd_explain_map *m, camd_error *err) {
  int W = e->seg_w, H = e->seg_h, K = e->n_classes;
  size_t hw = (size_t)W * (size_t)H;
  int rc = 0;
  if (o->has_box) {
    m->region = "box";
    rc = mask_from_box(e, o->box, img_w, img_h, crop, mask, err);
  } else if (in->mask) {
    m->region = "mask";
    rc = mask_from_png(e, in, lim, mask, err);
  } else {
    m->region = "argmax";
    for (size_t i = 0; i < hw; i++) {
      int best = 0;
      float bv = out[i];
      for (int c = 1; c < K; c++) {
        float v = out[(size_t)c * hw + i];
        if (v > bv || (isnan(bv) && !isnan(v))) bv = v, best = c;
      }
      mask[i] = best == k ? 1.0f : 0.0f;
    }
  }
  if (rc) return rc;
  long n = 0;
  double score = 0.0;
  for (size_t i = 0; i < hw; i++) {
    if (mask[i] == 0.0f) continue;
    n++;
    score += (double)out[(size_t)k * hw + i];
  }
  if (n == 0 && strcmp(m->region, "argmax"))
    return camd_error_set(err, CAMD_E_INVALID,
                          "the %s covers no pixel of the model output's %d×%d grid", m->region, W,
                          H);
  if (!isfinite(score))
    return camd_error_set(err, CAMD_E_UNUSABLE,
                          "class %d: the model's output in the %s is not finite (NaN or inf)", k,
                          m->region);
  m->region_pixels = n;
  m->target = (camd_explain_class){k, e->labels[k], (float)score, NAN};
  *t = (camd_cam_target){CAMD_TARGET_WEIGHTED, (size_t)k * hw, hw, mask};
  return 0;
}

int camd__parse_reference(const char *text, float *dst, int n, camd_error *err) {
  const char *s = text;
  while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
  bool bracket = *s == '[';
  if (bracket) s++;
  int count = 0;
  double norm = 0.0;
  for (;;) {
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    if (bracket && *s == ']' && count == 0) break;
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s)
      return camd_error_set(err, CAMD_E_INVALID,
                            "option reference: value %d is not a number; give %d numbers as a "
                            "JSON array or a comma list",
                            count, n);
    if (!isfinite(v) || fabs(v) > 3.4e38)
      return camd_error_set(err, CAMD_E_INVALID,
                            "option reference: value %d is not a finite float32 (NaN, inf or out "
                            "of range)",
                            count);
    if (count < n) dst[count] = (float)v;
    norm += v * v;
    count++;
    s = end;
    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
    if (*s == ',') {
      s++;
      continue;
    }
    break;
  }
  if (bracket && *s++ != ']')
    return camd_error_set(err, CAMD_E_INVALID, "option reference: the JSON array is not closed");
  while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') s++;
  if (*s)
    return camd_error_set(err, CAMD_E_INVALID,
                          "option reference: unexpected text after value %d; give %d numbers as "
                          "a JSON array or a comma list",
                          count, n);
  if (count != n)
    return camd_error_set(err, CAMD_E_INVALID,
                          "option reference: %d values; the model's embedding has %d", count, n);
  if (!(norm > 0.0))
    return camd_error_set(err, CAMD_E_INVALID,
                          "option reference: the vector is zero; a cosine similarity needs a "
                          "non-zero reference");
  return 0;
}
