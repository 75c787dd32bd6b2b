/* Tests for the image module: decode/resize/preprocess/heatmap helpers against the independent
 * references that tests/image/make_cases.py writes (PIL, ImageMagick, torchvision, torch,
 * matplotlib, skimage), plus self-contained checks (limits, corrupt input, PNG round trip). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "camd/image.h"
#include "testlib.h"

#ifndef CAMD_IMAGE_CASES_DIR
#define CAMD_IMAGE_CASES_DIR ""
#endif

static const char *cases_dir(void) {
  const char *d = getenv("CAMD_IMAGE_CASES");
  return d && *d ? d : CAMD_IMAGE_CASES_DIR;
}

static unsigned char *load(const char *name, size_t *len) {
  char p[1024];
  snprintf(p, sizeof(p), "%s/%s", cases_dir(), name);
  unsigned char *d = NULL;
  camd_error err = {0};
  if (camd_read_file(p, (size_t)1 << 30, &d, len, &err) != 0) {
    fprintf(stderr, "cannot read %s: %s\n", p, err.message);
    return NULL;
  }
  return d;
}

static int status_from_name(const char *s) {
  if (strcmp(s, "FORMAT") == 0) return CAMD_E_FORMAT;
  if (strcmp(s, "MEDIA") == 0) return CAMD_E_MEDIA;
  if (strcmp(s, "LIMIT") == 0) return CAMD_E_LIMIT;
  return 1;
}

/* Max absolute difference between two byte arrays. */
static int max_diff(const unsigned char *a, const unsigned char *b, size_t n) {
  int m = 0;
  for (size_t i = 0; i < n; i++) {
    int d = abs((int)a[i] - (int)b[i]);
    if (d > m) m = d;
  }
  return m;
}

/* ---- manifest-driven cases ---- */
static int n_decode, n_error, n_resize, n_pre, n_cmap, n_up, n_bbox, n_colorize;

static void case_decode(const char *file, const char *ref, size_t w, size_t h, int tol) {
  size_t len = 0, rlen = 0;
  unsigned char *data = load(file, &len), *refpix = load(ref, &rlen);
  CHECK_MSG(data && refpix, "%s", file);
  if (data && refpix) {
    camd_image img = {0};
    camd_image_info info;
    camd_error err = {0};
    int rc = camd_image_decode(data, len, NULL, &img, &info, &err);
    CHECK_MSG(rc == 0, "%s: %s", file, err.message);
    if (rc == 0) {
      CHECK_MSG(img.width == w && img.height == h && img.channels == 3,
                "%s: got %zux%zux%d, want %zux%zux3", file, img.width, img.height, img.channels, w,
                h);
      if (img.width == w && img.height == h && rlen == w * h * 3) {
        int d = max_diff(img.pixels, refpix, rlen);
        CHECK_MSG(d <= tol, "%s: max diff %d > %d", file, d, tol);
        if (d) fprintf(stderr, "note: %s: max diff %d vs PIL\n", file, d);
      }
    }
    camd_image_free(&img);
    n_decode++;
  }
  free(data);
  free(refpix);
}

static void case_error(const char *file, const char *status) {
  size_t len = 0;
  unsigned char *data = load(file, &len);
  CHECK_MSG(data, "%s", file);
  if (!data) return;
  camd_image img = {0};
  camd_error err = {0};
  int rc = camd_image_decode(data, len, NULL, &img, NULL, &err);
  CHECK_MSG(rc == status_from_name(status), "%s: rc %d (%s), want %s", file, rc, err.message,
            status);
  CHECK_MSG(img.pixels == NULL && img.width == 0, "%s: partial image left", file);
  CHECK_MSG(err.message[0] != '\0', "%s: empty message", file);
  if (rc == CAMD_E_MEDIA) CHECK(strstr(err.message, "PNG") && strstr(err.message, "JPEG"));
  camd_image_free(&img);
  free(data);
  n_error++;
}

static void case_resize(const char *src, size_t sw, size_t sh, const char *ref, size_t dw,
                        size_t dh) {
  size_t slen = 0, rlen = 0;
  unsigned char *s = load(src, &slen), *r = load(ref, &rlen);
  CHECK(s && r && slen == sw * sh * 3 && rlen == dw * dh * 3);
  if (s && r && slen == sw * sh * 3 && rlen == dw * dh * 3) {
    camd_image in = {sw, sh, 3, s}, out = {0};
    camd_error err = {0};
    int rc = camd_image_resize(&in, dw, dh, &out, &err);
    CHECK_MSG(rc == 0, "%s: %s", src, err.message);
    if (rc == 0) {
      int d = max_diff(out.pixels, r, rlen);
      size_t off = 0;
      for (size_t i = 0; i < rlen; i++) off += out.pixels[i] != r[i];
      CHECK_MSG(d <= 1, "%s -> %zux%zu: max diff %d", src, dw, dh, d);
      if (off)
        fprintf(stderr, "note: %s -> %zux%zu: %zu of %zu samples off by 1\n", src, dw, dh, off,
                rlen);
    }
    camd_image_free(&out);
    n_resize++;
  }
  free(s);
  free(r);
}

static void case_preprocess(const char *file, const char *ref, const char *mode, size_t W, size_t H,
                            size_t S, int channels, int bgr) {
  size_t len = 0, rlen = 0;
  unsigned char *data = load(file, &len), *r = load(ref, &rlen);
  size_t n = W * H * (size_t)channels;
  CHECK_MSG(data && r && rlen == n * 4, "%s", ref);
  if (data && r && rlen == n * 4) {
    camd_image img = {0};
    camd_error err = {0};
    CHECK_EQ_INT(camd_image_decode(data, len, NULL, &img, NULL, &err), 0);
    camd_preprocess_opts o;
    camd_preprocess_opts_default(&o);
    o.mode = strcmp(mode, "stretch") == 0 ? CAMD_RESIZE_STRETCH : CAMD_RESIZE_SHORTER;
    o.width = W;
    o.height = H;
    o.resize_shorter = S;
    o.channels = channels;
    o.bgr = bgr != 0;
    if (bgr) { /* mean/std given in tensor channel order */
      float m0 = o.mean[0], s0 = o.std[0];
      o.mean[0] = o.mean[2], o.std[0] = o.std[2];
      o.mean[2] = m0, o.std[2] = s0;
    }
    float *t = malloc(n * sizeof(float));
    camd_crop crop;
    int rc = camd_preprocess(&img, &o, t, n, &crop, &err);
    CHECK_MSG(rc == 0, "%s: %s", ref, err.message);
    if (rc == 0) {
      const float *want = (const float *)r;
      double worst = 0; /* in 8-bit levels */
      for (size_t c = 0; c < (size_t)channels; c++) {
        for (size_t i = 0; i < W * H; i++) {
          double d = fabs((double)t[c * W * H + i] - want[c * W * H + i]) * o.std[c] * 255.0;
          if (d > worst) worst = d;
        }
      }
      CHECK_MSG(worst <= 1.0 + 1e-3, "%s: max diff %.4f levels", ref, worst);
      if (worst > 1e-3) fprintf(stderr, "note: %s: max diff %.4f levels\n", ref, worst);
    }
    free(t);
    camd_image_free(&img);
    n_pre++;
  }
  free(data);
  free(r);
}

static void case_colormap(const char *name, const char *ref, int tol) {
  size_t rlen = 0;
  unsigned char *r = load(ref, &rlen);
  camd_colormap cm;
  camd_error err = {0};
  CHECK_MSG(camd_colormap_parse(name, &cm, &err) == 0, "%s", err.message);
  const unsigned char *lut = camd_colormap_table(cm);
  CHECK(r && rlen == 768 && lut);
  if (r && rlen == 768 && lut) {
    int d = max_diff(lut, r, 768);
    CHECK_MSG(d <= tol, "colormap %s: max diff %d > %d", name, d, tol);
    fprintf(stderr, "note: colormap %s: max diff vs matplotlib %d\n", name, d);
    n_cmap++;
  }
  free(r);
}

static void case_colorize(const char *name, const char *vals, size_t n, const char *ref) {
  size_t vlen = 0, rlen = 0;
  unsigned char *v = load(vals, &vlen), *r = load(ref, &rlen);
  CHECK(v && r && vlen == n * 4 && rlen == n * 3);
  if (v && r && vlen == n * 4 && rlen == n * 3) {
    camd_colormap cm;
    camd_error err = {0};
    camd_colormap_parse(name, &cm, &err);
    camd_image out = {0};
    CHECK_EQ_INT(camd_heatmap_colorize((const float *)v, n, 1, cm, &out, &err), 0);
    /* matplotlib truncates its table to bytes, camd rounds: at most 1 level apart */
    if (out.pixels) CHECK_MSG(max_diff(out.pixels, r, rlen) <= 1, "colorize %s", name);
    camd_image_free(&out);
    n_colorize++;
  }
  free(v);
  free(r);
}

static void case_upsample(const char *map, size_t w, size_t h, double cx, double cy, double cw,
                          double ch, size_t ow, size_t oh, const char *ref) {
  size_t mlen = 0, rlen = 0;
  unsigned char *m = load(map, &mlen), *r = load(ref, &rlen);
  CHECK(m && r && mlen == w * h * 4 && rlen == ow * oh * 4);
  if (m && r && mlen == w * h * 4 && rlen == ow * oh * 4) {
    float *out = malloc(ow * oh * sizeof(float));
    camd_crop crop = {cx, cy, cw, ch};
    camd_error err = {0};
    CHECK_EQ_INT(camd_heatmap_upsample((const float *)m, w, h, &crop, ow, oh, 0.0f, out, &err), 0);
    double worst = 0;
    const float *want = (const float *)r;
    for (size_t i = 0; i < ow * oh; i++) {
      double d = fabs((double)out[i] - want[i]);
      if (d > worst) worst = d;
    }
    CHECK_MSG(worst <= 1e-5, "%s: max diff %g", map, worst);
    free(out);
    n_up++;
  }
  free(m);
  free(r);
}

static void case_bbox(const char *map, size_t w, size_t h, double thr, const size_t want[10]) {
  size_t mlen = 0;
  unsigned char *m = load(map, &mlen);
  CHECK(m && mlen == w * h * 4);
  if (m && mlen == w * h * 4) {
    camd_bbox b;
    camd_error err = {0};
    CHECK_EQ_INT(camd_heatmap_bbox((const float *)m, w, h, (float)thr, CAMD_BBOX_LARGEST_COMPONENT,
                                   &b, &err),
                 0);
    CHECK_MSG(b.found && b.x0 == want[0] && b.y0 == want[1] && b.x1 == want[2] && b.y1 == want[3] &&
                  b.pixels == want[4],
              "%s: got (%zu,%zu)-(%zu,%zu) %zu px", map, b.x0, b.y0, b.x1, b.y1, b.pixels);
    CHECK_EQ_INT(camd_heatmap_bbox((const float *)m, w, h, (float)thr, CAMD_BBOX_ALL, &b, &err), 0);
    CHECK_MSG(b.found && b.x0 == want[5] && b.y0 == want[6] && b.x1 == want[7] && b.y1 == want[8] &&
                  b.pixels == want[9],
              "%s (all): got (%zu,%zu)-(%zu,%zu) %zu px", map, b.x0, b.y0, b.x1, b.y1, b.pixels);
    camd_image mask = {0};
    CHECK_EQ_INT(camd_heatmap_mask((const float *)m, w, h, (float)thr, &mask, &err), 0);
    size_t on = 0;
    for (size_t i = 0; mask.pixels && i < w * h; i++) on += mask.pixels[i] == 255;
    CHECK_EQ_INT(on, want[9]);
    camd_image_free(&mask);
    n_bbox++;
  }
  free(m);
}

static void test_manifest_cases(void) {
  if (!cases_dir()[0]) {
    printf("skip: no cases directory (run via ctest: image.make_cases fixture)\n");
    return;
  }
  char p[1024];
  snprintf(p, sizeof(p), "%s/manifest.txt", cases_dir());
  FILE *f = fopen(p, "r");
  CHECK_MSG(f != NULL, "cannot open %s", p);
  if (!f) return;
  char line[1024];
  while (fgets(line, sizeof(line), f)) {
    char kind[32], a[256], b[256], c[256];
    size_t w, h, x, y;
    int tol, i1, i2;
    double d1, d2, d3, d4;
    if (sscanf(line, "%31s", kind) != 1) continue;
    if (strcmp(kind, "decode") == 0 &&
        sscanf(line, "%*s %255s %255s %zu %zu %d", a, b, &w, &h, &tol) == 5) {
      case_decode(a, b, w, h, tol);
    } else if (strcmp(kind, "error") == 0 && sscanf(line, "%*s %255s %255s", a, b) == 2) {
      case_error(a, b);
    } else if (strcmp(kind, "resize") == 0 &&
               sscanf(line, "%*s %255s %zu %zu %255s %zu %zu", a, &w, &h, b, &x, &y) == 6) {
      case_resize(a, w, h, b, x, y);
    } else if (strcmp(kind, "preprocess") == 0 &&
               sscanf(line, "%*s %255s %255s %255s %zu %zu %zu %d %d", a, b, c, &w, &h, &x, &i1,
                      &i2) == 8) {
      case_preprocess(a, b, c, w, h, x, i1, i2);
    } else if (strcmp(kind, "colormap") == 0 &&
               sscanf(line, "%*s %255s %255s %d", a, b, &tol) == 3) {
      case_colormap(a, b, tol);
    } else if (strcmp(kind, "colorize") == 0 &&
               sscanf(line, "%*s %255s %255s %zu %255s", a, b, &w, c) == 4) {
      case_colorize(a, b, w, c);
    } else if (strcmp(kind, "upsample") == 0 &&
               sscanf(line, "%*s %255s %zu %zu %lf %lf %lf %lf %zu %zu %255s", a, &w, &h, &d1, &d2,
                      &d3, &d4, &x, &y, b) == 10) {
      case_upsample(a, w, h, d1, d2, d3, d4, x, y, b);
    } else if (strcmp(kind, "bbox") == 0) {
      size_t want[10];
      if (sscanf(line, "%*s %255s %zu %zu %lf %zu %zu %zu %zu %zu %zu %zu %zu %zu %zu", a, &w, &h,
                 &d1, &want[0], &want[1], &want[2], &want[3], &want[4], &want[5], &want[6],
                 &want[7], &want[8], &want[9]) == 14)
        case_bbox(a, w, h, d1, want);
      else
        CHECK_MSG(0, "bad bbox line: %s", line);
    } else {
      CHECK_MSG(0, "bad manifest line: %s", line);
    }
  }
  fclose(f);
  printf(
      "cases: %d decode, %d error, %d resize, %d preprocess, %d colormap, %d colorize, "
      "%d upsample, %d bbox\n",
      n_decode, n_error, n_resize, n_pre, n_cmap, n_colorize, n_up, n_bbox);
  CHECK(n_decode >= 40 && n_error >= 15 && n_resize >= 8 && n_pre >= 10 && n_cmap == 5 &&
        n_up >= 4 && n_bbox >= 3);
}

/* ---- limits: checked on the header, before pixels ---- */
static void test_limits(void) {
  if (!cases_dir()[0]) return;
  size_t len = 0;
  unsigned char *data = load("wide1x20000.png", &len);
  CHECK(data != NULL);
  if (!data) return;
  camd_image img = {0};
  camd_error err = {0};
  camd_image_limits lim = {10000, 0, 0};
  CHECK_EQ_INT(camd_image_decode(data, len, &lim, &img, NULL, &err), CAMD_E_LIMIT);
  CHECK(strstr(err.message, "max_width=10000") != NULL);
  CHECK(img.pixels == NULL);
  lim = (camd_image_limits){0, 0, 19999};
  CHECK_EQ_INT(camd_image_decode(data, len, &lim, &img, NULL, &err), CAMD_E_LIMIT);
  CHECK(strstr(err.message, "max_pixels=19999") != NULL);
  lim = (camd_image_limits){20000, 1, 20000};
  CHECK_EQ_INT(camd_image_decode(data, len, &lim, &img, NULL, &err), 0);
  camd_image_free(&img);
  free(data);
  /* EXIF rotation swaps the dimensions the limits see: exif6.jpg is 64x40 stored, 40x64 out */
  data = load("exif6.jpg", &len);
  CHECK(data != NULL);
  if (!data) return;
  lim = (camd_image_limits){0, 63, 0};
  CHECK_EQ_INT(camd_image_decode(data, len, &lim, &img, NULL, &err), CAMD_E_LIMIT);
  CHECK(strstr(err.message, "max_height=63") != NULL);
  camd_image_info info;
  lim = (camd_image_limits){40, 64, 0};
  CHECK_EQ_INT(camd_image_decode(data, len, &lim, &img, &info, &err), 0);
  CHECK(info.orientation == 6 && info.file_width == 64 && img.width == 40 && img.height == 64);
  camd_image_free(&img);
  free(data);
}

/* ---- every prefix of a valid file must fail cleanly or decode fully (no crash) ---- */
static void test_truncation_sweep(void) {
  if (!cases_dir()[0]) return;
  const char *files[] = {"palette_trns.png", "interlaced_rgba.png", "exif6.jpg", "cmyk_pil.jpg",
                         "gray16.png"};
  for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
    size_t len = 0;
    unsigned char *data = load(files[f], &len);
    CHECK(data != NULL);
    if (!data) continue;
    size_t step = len / 97 + 1;
    for (size_t n = 0; n < len; n += step) {
      camd_image img = {0};
      camd_error err = {0};
      int rc = camd_image_decode(data, n, NULL, &img, NULL, &err);
      CHECK_MSG(rc == CAMD_E_FORMAT || rc == CAMD_E_MEDIA, "%s[:%zu]: rc %d", files[f], n, rc);
      CHECK(img.pixels == NULL);
      camd_image_free(&img);
    }
    free(data);
  }
}

/* ---- PNG encoder round trip through our decoder; files for PIL's check ---- */
static void write_file(const char *name, const void *d, size_t n) {
  if (!cases_dir()[0]) return;
  char p[1024];
  snprintf(p, sizeof(p), "%s/%s", cases_dir(), name);
  FILE *f = fopen(p, "wb");
  CHECK(f != NULL);
  if (!f) return;
  CHECK(fwrite(d, 1, n, f) == n);
  fclose(f);
}

/* A lent parallel loop that runs the tasks in reverse order: the encoder's bytes must not depend
 * on the order or threads its pieces run on. */
static void reverse_run(void *ctx, int64_t n, camd_parallel_fn fn, void *arg) {
  (*(int *)ctx)++;
  for (int64_t i = n - 1; i >= 0; i--) fn(arg, i);
}

typedef struct {
  int64_t n, next;
  pthread_mutex_t mu;
  camd_parallel_fn fn;
  void *arg;
} thread_loop;

static void *thread_loop_main(void *p) {
  thread_loop *l = p;
  for (;;) {
    pthread_mutex_lock(&l->mu);
    int64_t i = l->next++;
    pthread_mutex_unlock(&l->mu);
    if (i >= l->n) return NULL;
    l->fn(l->arg, i);
  }
}

/* Three real threads taking tasks as they come. */
static void threads_run(void *ctx, int64_t n, camd_parallel_fn fn, void *arg) {
  (void)ctx;
  thread_loop l = {n, 0, PTHREAD_MUTEX_INITIALIZER, fn, arg};
  pthread_t t[3];
  for (int k = 0; k < 3; k++) CHECK(pthread_create(&t[k], NULL, thread_loop_main, &l) == 0);
  for (int k = 0; k < 3; k++) pthread_join(t[k], NULL);
}

/* Encodes with camd_png_encode (several sizes: one piece, several pieces of rows, a row longer than
 * a piece), decodes with camd's decoder (libpng), checks the pixels, checks that two parallel
 * runs give the same bytes, and writes the PNGs for check_encoded.py (PIL). */
static void test_png_roundtrip(void) {
  camd_rng rng;
  camd_rng_seed(&rng, 7);
  const int chans[] = {1, 3, 4};
  const size_t sizes[][2] = {{57, 33}, {311, 420}, {30000, 3}};
  const int levels[] = {-1, 1, 9, 0, 2, 6};
  int reverse_calls = 0;
  for (int s = 0; s < 3; s++) {
    size_t w = sizes[s][0], h = sizes[s][1];
    for (int k = 0; k < 3; k++) {
      camd_image img = {0};
      camd_error err = {0};
      CHECK_EQ_INT(camd_image_alloc(&img, w, h, chans[k], &err), 0);
      if (!img.pixels) continue;
      size_t n = w * h * (size_t)chans[k];
      for (size_t i = 0; i < n; i++) /* noise, ramps and runs: every filter gets chosen */
        img.pixels[i] = (unsigned char)(i % 5 == 0           ? camd_rng_next(&rng)
                                        : (i / 997) % 3 == 0 ? 40
                                                             : i * 3);
      int level = levels[(s * 3 + k) % 6];
      unsigned char *png = NULL, *png_rev = NULL, *png_thr = NULL;
      size_t len = 0, len_rev = 0, len_thr = 0;
      CHECK_EQ_INT(camd_png_encode(&img, level, &png, &len, &err), 0);
      camd_parallel rev = {reverse_run, &reverse_calls}, thr = {threads_run, NULL};
      CHECK_EQ_INT(camd_png_encode_parallel(&img, level, &rev, &png_rev, &len_rev, &err), 0);
      CHECK_EQ_INT(camd_png_encode_parallel(&img, level, &thr, &png_thr, &len_thr, &err), 0);
      CHECK_MSG(png && png_rev && len == len_rev && !memcmp(png, png_rev, len),
                "%zux%zu c%d level %d: bytes differ with the pieces in reverse order", w, h,
                chans[k], level);
      CHECK_MSG(png && png_thr && len == len_thr && !memcmp(png, png_thr, len),
                "%zux%zu c%d level %d: bytes differ on 3 threads", w, h, chans[k], level);
      camd_image back = {0};
      camd_image_info info;
      CHECK_EQ_INT(camd_image_decode(png, len, NULL, &back, &info, &err), 0);
      CHECK(back.width == w && back.height == h && info.file_channels == chans[k]);
      if (back.pixels) {
        int same = 1;
        for (size_t i = 0; i < w * h; i++) {
          for (int c = 0; c < 3; c++) {
            unsigned char want = img.pixels[i * (size_t)chans[k] + (chans[k] == 1 ? 0 : c)];
            same &= back.pixels[i * 3 + (size_t)c] == want;
          }
        }
        CHECK_MSG(same, "%zux%zu c%d level %d: decoded pixels differ", w, h, chans[k], level);
      }
      char name[64];
      snprintf(name, sizeof(name), "encoded_c%d_%zux%zu.png", chans[k], w, h);
      write_file(name, png, len);
      snprintf(name, sizeof(name), "encoded_c%d_%zux%zu.raw", chans[k], w, h);
      write_file(name, img.pixels, n);
      free(png);
      free(png_rev);
      free(png_thr);
      camd_image_free(&back);
      camd_image_free(&img);
    }
  }
  CHECK(reverse_calls > 0); /* the lent loop was used (images of several pieces) */
  camd_image empty = {0};
  unsigned char *png = NULL;
  size_t len = 0;
  CHECK_EQ_INT(camd_png_encode(&empty, -1, &png, &len, NULL), CAMD_E_INVALID);
}

/* ---- small hand-checked cases (no python needed) ---- */
static void test_sniff_and_media(void) {
  static const unsigned char gif[] = "GIF89a\x01\x00\x01\x00";
  camd_image img = {0};
  camd_error err = {0};
  CHECK(camd_image_sniff(gif, 10) == CAMD_IMAGE_FORMAT_UNKNOWN);
  CHECK_EQ_INT(camd_image_decode(gif, 10, NULL, &img, NULL, &err), CAMD_E_MEDIA);
  CHECK(strstr(err.message, "PNG") && strstr(err.message, "JPEG"));
  CHECK_EQ_INT(camd_image_decode(NULL, 0, NULL, &img, NULL, &err), CAMD_E_MEDIA);
  static const unsigned char soi[] = {0xFF, 0xD8, 0xFF, 0xE0, 0, 0};
  CHECK(camd_image_sniff(soi, 6) == CAMD_IMAGE_FORMAT_JPEG);
  CHECK_EQ_INT(camd_image_decode(soi, 6, NULL, &img, NULL, &err), CAMD_E_FORMAT);
  CHECK(img.pixels == NULL);
}

static void test_gray_and_blend(void) {
  /* PIL 'L' weights: L = (R*299 + G*587 + B*114) / 1000 rounded via 16-bit fixed point */
  unsigned char px[] = {255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 30};
  camd_image in = {4, 1, 3, px}, g = {0}, ov = {0}, out = {0};
  camd_error err = {0};
  CHECK_EQ_INT(camd_image_to_gray(&in, &g, &err), 0);
  if (g.pixels) {
    CHECK_EQ_INT(g.pixels[0], 76); /* PIL: Image.new('RGB',(1,1),(255,0,0)).convert('L') */
    CHECK_EQ_INT(g.pixels[1], 150);
    CHECK_EQ_INT(g.pixels[2], 29);
    CHECK_EQ_INT(g.pixels[3], 124);
  }
  float map[4] = {0.0f, 0.5f, 1.0f, 0.25f};
  CHECK_EQ_INT(camd_heatmap_colorize(map, 4, 1, CAMD_COLORMAP_GRAY, &ov, &err), 0);
  CHECK_EQ_INT(camd_image_blend(&in, &ov, 0.5f, &out, &err), 0);
  if (out.pixels && ov.pixels) {
    /* gray table: value v -> floor(v*256) clipped: 0, 128, 255, 64 */
    CHECK_EQ_INT(ov.pixels[3], 128);
    CHECK_EQ_INT(ov.pixels[9], 64);
    CHECK_EQ_INT(out.pixels[0], 128); /* (255 + 0) / 2 = 127.5 -> 128 */
    CHECK_EQ_INT(out.pixels[4], 192); /* (255 + 128) / 2 = 191.5 -> 192 */
  }
  camd_image_free(&out);
  CHECK_EQ_INT(camd_image_blend(&in, &ov, 1.5f, &out, &err), CAMD_E_INVALID);
  camd_image other = {0};
  camd_image_alloc(&other, 3, 1, 3, &err);
  CHECK_EQ_INT(camd_image_blend(&in, &other, 0.5f, &out, &err), CAMD_E_SHAPE);
  float nanmap[1] = {NAN};
  camd_image tmp = {0};
  CHECK_EQ_INT(camd_heatmap_colorize(nanmap, 1, 1, CAMD_COLORMAP_JET, &tmp, &err), CAMD_E_INVALID);
  camd_colormap cm;
  CHECK_EQ_INT(camd_colormap_parse("rainbow", &cm, &err), CAMD_E_INVALID);
  CHECK(strstr(err.message, "viridis") != NULL);
  camd_image_free(&other);
  camd_image_free(&ov);
  camd_image_free(&g);
}

static void test_peak_bbox_hand(void) {
  /* two components: 3 pixels diagonal (8-connected) and 2 pixels; plus a zero map */
  float m[5 * 4] = {1, 0, 0,    0, 0,     //
                    0, 1, 0,    0, 0.9f,  //
                    0, 0, 0.5f, 0, 0.9f,  //
                    0, 0, 0,    0, 0.1f};
  size_t x, y;
  float v;
  camd_error err = {0};
  CHECK_EQ_INT(camd_heatmap_peak(m, 5, 4, &x, &y, &v, &err), 0);
  CHECK(x == 0 && y == 0 && v == 1.0f);
  camd_bbox b;
  CHECK_EQ_INT(camd_heatmap_bbox(m, 5, 4, 0.2f, CAMD_BBOX_LARGEST_COMPONENT, &b, &err), 0);
  CHECK(b.found && b.x0 == 0 && b.y0 == 0 && b.x1 == 2 && b.y1 == 2 && b.pixels == 3);
  CHECK_EQ_INT(camd_heatmap_bbox(m, 5, 4, 0.2f, CAMD_BBOX_ALL, &b, &err), 0);
  CHECK(b.found && b.x0 == 0 && b.y0 == 0 && b.x1 == 4 && b.y1 == 2 && b.pixels == 5);
  float z[4] = {0, 0, 0, 0};
  CHECK_EQ_INT(camd_heatmap_bbox(z, 2, 2, 0.2f, CAMD_BBOX_ALL, &b, &err), 0);
  CHECK(!b.found);
  CHECK_EQ_INT(camd_heatmap_bbox(m, 5, 4, 1.5f, CAMD_BBOX_ALL, &b, &err), CAMD_E_INVALID);
  float n2[2] = {NAN, NAN};
  CHECK_EQ_INT(camd_heatmap_peak(n2, 2, 1, &x, &y, &v, &err), CAMD_E_INVALID);
}

/* Largest 8-connected component by flood fill (the plain algorithm, written here as the
 * reference for the run-based one): components visited in raster order of their first pixel,
 * the first of the largest wins. */
static camd_bbox ref_largest(const float *m, size_t w, size_t h, float thr) {
  camd_bbox best = {0};
  unsigned char *seen = calloc(w * h, 1);
  size_t *stack = malloc(w * h * sizeof(size_t));
  for (size_t s = 0; s < w * h; s++) {
    if (seen[s] || !(m[s] >= thr)) continue;
    camd_bbox cur = {true, s % w, s / w, s % w, s / w, 0};
    size_t top = 0;
    stack[top++] = s;
    seen[s] = 1;
    while (top) {
      size_t i = stack[--top], x = i % w, y = i / w;
      cur.pixels++;
      cur.x0 = x < cur.x0 ? x : cur.x0, cur.x1 = x > cur.x1 ? x : cur.x1;
      cur.y0 = y < cur.y0 ? y : cur.y0, cur.y1 = y > cur.y1 ? y : cur.y1;
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
          long long nx = (long long)x + dx, ny = (long long)y + dy;
          if (nx < 0 || ny < 0 || nx >= (long long)w || ny >= (long long)h) continue;
          size_t j = (size_t)ny * w + (size_t)nx;
          if (!seen[j] && m[j] >= thr) seen[j] = 1, stack[top++] = j;
        }
    }
    if (cur.pixels > best.pixels) best = cur;
  }
  free(seen);
  free(stack);
  return best;
}

/* The largest component on random maps (sparse to dense, with NaN, ties, 1-pixel-wide and
 * 1-pixel-high maps) against the flood-fill reference. */
static void test_bbox_random(void) {
  camd_rng r;
  camd_rng_seed(&r, 2024);
  int mismatches = 0;
  for (int t = 0; t < 400; t++) {
    size_t w = 1 + (size_t)(camd_rng_uniform(&r) * 40), h = 1 + (size_t)(camd_rng_uniform(&r) * 30);
    const double density = camd_rng_uniform(&r);
    float *m = malloc(w * h * sizeof(float));
    for (size_t i = 0; i < w * h; i++) {
      const double u = camd_rng_uniform(&r);
      m[i] = u < 0.02 ? NAN : u < density ? 0.5f + (float)camd_rng_uniform(&r) * 0.5f : 0.1f;
    }
    m[(size_t)(camd_rng_uniform(&r) * (double)(w * h)) % (w * h)] = 1.0f; /* max 1: thr = 0.3 */
    camd_bbox got;
    camd_error err = {0};
    CHECK_EQ_INT(camd_heatmap_bbox(m, w, h, 0.3f, CAMD_BBOX_LARGEST_COMPONENT, &got, &err), 0);
    const camd_bbox want = ref_largest(m, w, h, 0.3f);
    if (got.found != want.found || got.pixels != want.pixels || got.x0 != want.x0 ||
        got.x1 != want.x1 || got.y0 != want.y0 || got.y1 != want.y1) {
      if (mismatches++ < 3)
        CHECK_MSG(0,
                  "%zux%zu map %d: got %zu px [%zu,%zu]x[%zu,%zu], want %zu px [%zu,%zu]x[%zu,%zu]",
                  w, h, t, got.pixels, got.x0, got.x1, got.y0, got.y1, want.pixels, want.x0,
                  want.x1, want.y0, want.y1);
    }
    free(m);
  }
  CHECK_EQ_INT(mismatches, 0);
}

static void test_preprocess_errors(void) {
  unsigned char px[12] = {0};
  camd_image in = {2, 2, 3, px};
  camd_preprocess_opts o;
  camd_preprocess_opts_default(&o);
  float t[3 * 224 * 224];
  camd_error err = {0};
  camd_crop crop;
  CHECK_EQ_INT(camd_preprocess(&in, &o, t, 10, &crop, &err), CAMD_E_SHAPE);
  o.std[1] = 0;
  CHECK_EQ_INT(camd_preprocess(&in, &o, t, 3 * 224 * 224, &crop, &err), CAMD_E_INVALID);
  camd_preprocess_opts_default(&o);
  o.channels = 2;
  CHECK_EQ_INT(camd_preprocess(&in, &o, t, 3 * 224 * 224, &crop, &err), CAMD_E_INVALID);
  camd_preprocess_opts_default(&o);
  CHECK_EQ_INT(camd_preprocess(&in, &o, t, 3 * 224 * 224, &crop, &err), 0);
  /* 2x2 -> 256x256 -> centre 224 at offset 16: crop is (16/128, 16/128, 224/128, 224/128) */
  CHECK_NEAR(crop.x, 0.125, 1e-12);
  CHECK_NEAR(crop.y, 0.125, 1e-12);
  CHECK_NEAR(crop.w, 1.75, 1e-12);
  CHECK_NEAR(t[0], (0 - 0.485) / 0.229, 1e-5);
}

/* channels_last writes the same values in NHWC order (BGR and gray included). */
static void test_preprocess_nhwc(void) {
  enum { IW = 7, IH = 5, TW = 6, TH = 4 };
  unsigned char px[IW * IH * 3];
  for (int i = 0; i < IW * IH * 3; i++) px[i] = (unsigned char)(i * 37 % 251);
  camd_image in = {IW, IH, 3, px};
  for (int variant = 0; variant < 3; variant++) {
    camd_preprocess_opts o;
    camd_preprocess_opts_default(&o);
    o.width = TW;
    o.height = TH;
    o.resize_shorter = 5;
    o.bgr = variant == 1;
    o.channels = variant == 2 ? 1 : 3;
    float a[3 * TW * TH], b[3 * TW * TH];
    camd_error err = {0};
    CHECK_EQ_INT(camd_preprocess(&in, &o, a, 3 * TW * TH, NULL, &err), 0);
    o.channels_last = true;
    CHECK_EQ_INT(camd_preprocess(&in, &o, b, 3 * TW * TH, NULL, &err), 0);
    int nc = o.channels;
    for (int c = 0; c < nc; c++)
      for (int p = 0; p < TW * TH; p++)
        CHECK_MSG(a[c * TW * TH + p] == b[p * nc + c], "variant %d: channel %d pixel %d", variant,
                  c, p);
  }
}

/* A camd_parallel that runs the tasks last to first (any order must give the same bytes). */
static void run_reversed(void *ctx, int64_t n, camd_parallel_fn fn, void *arg) {
  (void)ctx;
  for (int64_t i = n - 1; i >= 0; i--) fn(arg, i);
}

/* camd_heatmap_overlay (one pass) against the documented formula computed here, pixel by pixel:
 * NaN -> the base colour; else table entry min(255, floor(max(v, 0) * 256)) blended as
 * floor((1 - alpha) * base + alpha * colour + 0.5) in double; and against the two-step
 * camd_heatmap_colorize + camd_image_blend it replaces. Maps hold NaN, values below 0 and above
 * 1, and values on both sides of every k / 256 step; bases are gray, RGB and RGBA; sizes give one
 * task, several and a row longer than a task. */
static void test_overlay_fused(void) {
  static const size_t sizes[][2] = {{1, 1}, {300, 200}, {70001, 2}, {17, 3}};
  static const float alphas[] = {0.0f, 0.37f, 0.5f, 1.0f, 0.8f};
  camd_rng r;
  camd_rng_seed(&r, 12);
  camd_parallel rev = {run_reversed, NULL};
  for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
    const size_t w = sizes[si][0], h = sizes[si][1], n = w * h;
    float *map = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
      const double u = camd_rng_uniform(&r);
      const int k = (int)(camd_rng_uniform(&r) * 257);
      map[i] = u < 0.05   ? NAN
               : u < 0.1  ? -0.25f
               : u < 0.15 ? 1.5f
               : u < 0.5  ? (float)k / 256.0f - (u < 0.3 ? 1e-7f : 0.0f)
                          : (float)camd_rng_uniform(&r);
    }
    map[n - 1] = NAN; /* at least one pixel outside */
    for (int bc = 1; bc <= 4; bc++) {
      if (bc == 2) continue;
      camd_image base = {0};
      camd_error err = {0};
      CHECK_EQ_INT(camd_image_alloc(&base, w, h, bc, &err), 0);
      for (size_t i = 0; i < n * (size_t)bc; i++)
        base.pixels[i] = (unsigned char)(camd_rng_next(&r) >> 56);
      for (size_t ai = 0; ai < sizeof(alphas) / sizeof(alphas[0]); ai++) {
        const camd_colormap cm = (camd_colormap)((si + ai + (size_t)bc) % 5);
        const unsigned char *lut = camd_colormap_table(cm);
        const double a = alphas[ai];
        camd_image out = {0}, out2 = {0}, heat = {0}, blend = {0};
        CHECK_EQ_INT(camd_heatmap_overlay(map, &base, cm, alphas[ai], NULL, &out, &err), 0);
        CHECK_EQ_INT(camd_heatmap_overlay(map, &base, cm, alphas[ai], &rev, &out2, &err), 0);
        CHECK(out.channels == 3 && out.width == w && out.height == h);
        CHECK_MSG(memcmp(out.pixels, out2.pixels, 3 * n) == 0, "overlay: threads change bytes");
        /* the two-step path, NaN as 0 then the photo put back */
        float *zero = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) zero[i] = isnan(map[i]) ? 0.0f : map[i];
        CHECK_EQ_INT(camd_heatmap_colorize(zero, w, h, cm, &heat, &err), 0);
        CHECK_EQ_INT(camd_image_blend(&base, &heat, alphas[ai], &blend, &err), 0);
        size_t bad = 0, bad2 = 0;
        for (size_t i = 0; i < n; i++) {
          for (int c = 0; c < 3; c++) {
            const unsigned bv = base.pixels[i * (size_t)bc + (bc == 1 ? 0 : (size_t)c)];
            unsigned want;
            if (isnan(map[i])) {
              want = bv;
            } else {
              double s = (double)map[i] * 256.0;
              int k = s < 0 ? 0 : s >= 255.0 ? 255 : (int)s;
              want = (unsigned)floor((1.0 - a) * bv + a * lut[3 * k + c] + 0.5);
            }
            if (out.pixels[3 * i + (size_t)c] != want) bad++;
            unsigned two = isnan(map[i]) ? bv : blend.pixels[3 * i + (size_t)c];
            if (out.pixels[3 * i + (size_t)c] != two) bad2++;
          }
        }
        CHECK_MSG(bad == 0, "overlay %zux%zu base %d alpha %g: %zu values off the formula", w, h,
                  bc, a, bad);
        CHECK_MSG(bad2 == 0, "overlay %zux%zu base %d alpha %g: %zu values off colorize+blend", w,
                  h, bc, a, bad2);
        free(zero);
        camd_image_free(&out);
        camd_image_free(&out2);
        camd_image_free(&heat);
        camd_image_free(&blend);
      }
      camd_image_free(&base);
    }
    free(map);
  }
  camd_image base = {0}, out = {0};
  camd_error err = {0};
  float one = 0.5f;
  CHECK_EQ_INT(camd_image_alloc(&base, 1, 1, 3, &err), 0);
  CHECK_EQ_INT(camd_heatmap_overlay(&one, &base, CAMD_COLORMAP_JET, 1.5f, NULL, &out, &err),
               CAMD_E_INVALID);
  CHECK_EQ_INT(camd_heatmap_overlay(&one, &base, (camd_colormap)9, 0.5f, NULL, &out, &err),
               CAMD_E_INVALID);
  CHECK(out.pixels == NULL);
  camd_image_free(&base);
}

/* camd_preprocess_parallel with tasks run last to first against camd_preprocess on one thread
 * (itself checked against PIL + torchvision by the manifest cases): the same floats, for
 * gray/RGB/RGBA inputs, both resize modes, shrinking, enlarging and a crop larger than the
 * resized image (padding). */
static void test_preprocess_parallel(void) {
  static const size_t sizes[][2] = {{400, 300}, {37, 500}, {1201, 803}, {16, 9}, {224, 224}};
  camd_parallel rev = {run_reversed, NULL};
  camd_rng r;
  camd_rng_seed(&r, 7);
  for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
    for (int ic = 1; ic <= 4; ic++) {
      if (ic == 2) continue;
      camd_image in = {0};
      camd_error err = {0};
      CHECK_EQ_INT(camd_image_alloc(&in, sizes[si][0], sizes[si][1], ic, &err), 0);
      for (size_t i = 0; i < in.width * in.height * (size_t)ic; i++)
        in.pixels[i] = (unsigned char)((i * 7 + (i / in.width) * 3) ^ (camd_rng_next(&r) >> 61));
      for (int variant = 0; variant < 4; variant++) {
        camd_preprocess_opts o;
        camd_preprocess_opts_default(&o);
        o.mode = variant == 1 ? CAMD_RESIZE_STRETCH : CAMD_RESIZE_SHORTER;
        o.channels = variant == 2 ? 1 : 3;
        o.resize_shorter = variant == 3 ? 200 : 232;
        if (variant == 3) o.width = o.height = 256; /* larger than the resized side: padding */
        o.channels_last = variant == 3;
        const size_t n = o.width * o.height * (size_t)o.channels;
        float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
        camd_crop ca, cb;
        CHECK_EQ_INT(camd_preprocess(&in, &o, a, n, &ca, &err), 0);
        CHECK_EQ_INT(camd_preprocess_parallel(&in, &o, &rev, b, n, &cb, &err), 0);
        CHECK_MSG(memcmp(a, b, n * sizeof(float)) == 0, "preprocess %zux%zux%d variant %d differs",
                  in.width, in.height, ic, variant);
        CHECK(memcmp(&ca, &cb, sizeof(ca)) == 0);
        free(a);
        free(b);
      }
      camd_image_free(&in);
    }
  }
}

/* PIL's BILINEAR resize (Image.resize; libImaging/Resample.c's definition) written plainly as the
 * reference: per axis, triangle weights over the footprint, normalised, 22-bit fixed point
 * (rounded half away from zero); horizontal pass first, each pass rounds (+ 2^21, >> 22) and
 * clips to 0..255; sums in 64 bits. */
static void ref_axis(size_t n_in, size_t n_out, size_t j, size_t *first, size_t *count,
                     int64_t *k) {
  const double scale = (double)n_in / (double)n_out, fs = scale < 1.0 ? 1.0 : scale;
  const double center = ((double)j + 0.5) * scale, support = fs;
  double lo = center - support + 0.5, hi = center + support + 0.5;
  size_t xmin = lo <= 0.0 ? 0 : (size_t)lo, xmax = hi <= 0.0 ? 0 : (size_t)hi;
  if (xmax > n_in) xmax = n_in;
  double w[64], sum = 0.0;
  *first = xmin;
  *count = xmax - xmin;
  for (size_t t = 0; t < *count; t++) {
    double x = fabs(((double)(t + xmin) - center + 0.5) / fs);
    w[t] = x < 1.0 ? 1.0 - x : 0.0;
    sum += w[t];
  }
  for (size_t t = 0; t < *count; t++) {
    double f = (sum != 0.0 ? w[t] / sum : 0.0) * (double)(1 << 22);
    k[t] = (int64_t)(f < 0 ? f - 0.5 : f + 0.5);
  }
}

static unsigned char ref_clip(int64_t acc) {
  int64_t v = acc >> 22;
  return (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void ref_resize(const camd_image *in, size_t ow, size_t oh, unsigned char *out) {
  const size_t ch = (size_t)in->channels;
  unsigned char *tmp = malloc(ow * in->height * ch);
  for (size_t x = 0; x < ow; x++) {
    size_t f, n;
    int64_t k[64];
    ref_axis(in->width, ow, x, &f, &n, k);
    for (size_t y = 0; y < in->height; y++)
      for (size_t c = 0; c < ch; c++) {
        int64_t acc = (int64_t)1 << 21;
        for (size_t t = 0; t < n; t++) acc += k[t] * in->pixels[(y * in->width + f + t) * ch + c];
        tmp[(y * ow + x) * ch + c] =
            ow == in->width ? in->pixels[(y * in->width + x) * ch + c] : ref_clip(acc);
      }
  }
  for (size_t y = 0; y < oh; y++) {
    size_t f, n;
    int64_t k[64];
    ref_axis(in->height, oh, y, &f, &n, k);
    for (size_t x = 0; x < ow * ch; x++) {
      int64_t acc = (int64_t)1 << 21;
      for (size_t t = 0; t < n; t++) acc += k[t] * tmp[(f + t) * ow * ch + x];
      out[y * ow * ch + x] = oh == in->height ? tmp[y * ow * ch + x] : ref_clip(acc);
    }
  }
  free(tmp);
}

/* camd_image_resize (its SIMD row kernels included, and the scalar tail at the right edge)
 * against the reference above: random RGB/gray/RGBA images, shrinking and enlarging, widths where
 * the last taps reach the row's last pixel, extreme byte values (rounding and clipping). */
static void test_resize_reference(void) {
  static const size_t sizes[][4] = {{400, 300, 224, 256}, {400, 300, 341, 256},  {37, 500, 17, 230},
                                    {5, 3, 9, 7},         {1201, 803, 300, 200}, {64, 64, 63, 65},
                                    {3, 2, 1, 1},         {640, 97, 640, 33},    {97, 640, 33, 640},
                                    {2, 2, 300, 3}};
  camd_rng r;
  camd_rng_seed(&r, 99);
  int bad = 0;
  for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++)
    for (int ic = 1; ic <= 4; ic++) {
      if (ic == 2) continue;
      camd_image in = {0}, out = {0};
      camd_error err = {0};
      CHECK_EQ_INT(camd_image_alloc(&in, sizes[si][0], sizes[si][1], ic, &err), 0);
      for (size_t i = 0; i < in.width * in.height * (size_t)ic; i++) {
        const uint64_t u = camd_rng_next(&r);
        in.pixels[i] = (u >> 60) < 3 ? (unsigned char)((u >> 59 & 1) * 255) : (unsigned char)u;
      }
      const size_t ow = sizes[si][2], oh = sizes[si][3];
      unsigned char *want = malloc(ow * oh * (size_t)ic);
      ref_resize(&in, ow, oh, want);
      CHECK_EQ_INT(camd_image_resize(&in, ow, oh, &out, &err), 0);
      if (memcmp(out.pixels, want, ow * oh * (size_t)ic) != 0 && bad++ < 3)
        CHECK_MSG(0, "resize %zux%zux%d -> %zux%zu differs from the reference", in.width, in.height,
                  ic, ow, oh);
      free(want);
      camd_image_free(&out);
      camd_image_free(&in);
    }
  CHECK_EQ_INT(bad, 0);
}

/* camd_heatmap_peak (vectorised maximum, then the first equal value) against a plain scan that
 * keeps the first of equals and skips NaN: random maps with NaN runs, ties of the maximum, -inf,
 * signed zeros as maximum, all-NaN maps, lengths that are not multiples of the vector width. The
 * bbox's threshold (max x threshold) is checked with the all-pixels mode against a plain count. */
static void test_peak_random(void) {
  camd_rng r;
  camd_rng_seed(&r, 31);
  int bad = 0;
  for (int t = 0; t < 3000; t++) {
    const size_t w = 1 + camd_rng_next(&r) % 23, h = 1 + camd_rng_next(&r) % 7, n = w * h;
    const int kind = (int)(camd_rng_next(&r) % 6);
    float *m = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
      const uint64_t u = camd_rng_next(&r) % 100;
      m[i] = kind == 0   ? (float)(camd_rng_next(&r) % 5) /* many ties */
             : kind == 1 ? (u < 50    ? NAN
                            : (u & 1) ? 0.0f
                                      : -0.0f)
             : kind == 2 ? (u < 70 ? NAN : -INFINITY)
             : kind == 3 ? NAN
                         : (u < 20 ? NAN : (float)camd_rng_uniform(&r) * 2.0f - 1.0f);
    }
    size_t best = n; /* reference */
    for (size_t i = 0; i < n; i++)
      if (!isnan(m[i]) && (best == n || m[i] > m[best])) best = i;
    size_t x = 0, y = 0;
    float v = 0;
    camd_error err = {0};
    const int rc = camd_heatmap_peak(m, w, h, &x, &y, &v, &err);
    const bool ok = best == n ? rc == CAMD_E_INVALID
                              : rc == 0 && x == best % w && y == best / w &&
                                    memcmp(&v, &m[best], sizeof(v)) == 0;
    if (!ok && bad++ < 3) CHECK_MSG(0, "peak of %zux%zu map %d (kind %d)", w, h, t, kind);
    camd_bbox b;
    CHECK_EQ_INT(camd_heatmap_bbox(m, w, h, 0.5f, CAMD_BBOX_ALL, &b, &err), 0);
    size_t want = 0;
    if (best < n && m[best] > 0)
      for (size_t i = 0; i < n; i++) want += !isnan(m[i]) && m[i] >= 0.5f * m[best];
    if (b.pixels != want && bad++ < 3)
      CHECK_MSG(0, "bbox pixels of %zux%zu map %d: %zu, want %zu", w, h, t, b.pixels, want);
    free(m);
  }
  CHECK_EQ_INT(bad, 0);
}

/* One axis of the upsample's sampling (design.md: sample centre in crop units, clamped), as the
 * direct per-pixel formula: first sample, weight of the second. */
static void ref_up_axis(size_t X, double cx, double cw, size_t n, size_t *i0, size_t *i1,
                        float *f) {
  const double u = ((double)X + 0.5 - cx) / cw * (double)n - 0.5, fl = floor(u);
  double t = u - fl;
  if (fl < 0) {
    *i0 = 0;
    t = 0;
  } else if (fl >= (double)(n - 1)) {
    *i0 = n - 1;
    t = 0;
  } else {
    *i0 = (size_t)fl;
  }
  *i1 = *i0 + 1 < n ? *i0 + 1 : *i0;
  *f = (float)t;
}

/* camd_heatmap_upsample against the direct per-pixel bilinear formula (interpolate along x in
 * the two source rows, then along y, in float), bit for bit: random maps (1x1 to 30x20), crops
 * inside, partly outside and covering more than the image, output sizes from 1x1 to 401x303. */
static void test_upsample_direct(void) {
  camd_rng r;
  camd_rng_seed(&r, 77);
  int bad = 0;
  for (int t = 0; t < 300; t++) {
    const size_t w = 1 + camd_rng_next(&r) % 30, h = 1 + camd_rng_next(&r) % 20;
    const size_t ow = 1 + camd_rng_next(&r) % 401, oh = 1 + camd_rng_next(&r) % 303;
    camd_crop crop = {(camd_rng_uniform(&r) - 0.3) * (double)ow,
                      (camd_rng_uniform(&r) - 0.3) * (double)oh,
                      (0.05 + camd_rng_uniform(&r) * 1.3) * (double)ow,
                      (0.05 + camd_rng_uniform(&r) * 1.3) * (double)oh};
    if (t % 7 == 0) crop = (camd_crop){0, 0, (double)ow, (double)oh};
    float *m = malloc(w * h * sizeof(float)), *got = malloc(ow * oh * sizeof(float));
    for (size_t i = 0; i < w * h; i++) m[i] = (float)camd_rng_uniform(&r) * 3.0f - 1.0f;
    camd_error err = {0};
    CHECK_EQ_INT(camd_heatmap_upsample(m, w, h, &crop, ow, oh, NAN, got, &err), 0);
    for (size_t Y = 0; Y < oh; Y++)
      for (size_t X = 0; X < ow; X++) {
        const double cx = (double)X + 0.5, cy = (double)Y + 0.5;
        float want = NAN;
        if (cx >= crop.x && cx < crop.x + crop.w && cy >= crop.y && cy < crop.y + crop.h) {
          size_t a, b, y0, y1;
          float fx, fy;
          ref_up_axis(X, crop.x, crop.w, w, &a, &b, &fx);
          ref_up_axis(Y, crop.y, crop.h, h, &y0, &y1, &fy);
          const float *r0 = m + y0 * w, *r1 = m + y1 * w;
          const float top = r0[a] + (r0[b] - r0[a]) * fx, bot = r1[a] + (r1[b] - r1[a]) * fx;
          want = top + (bot - top) * fy;
        }
        const float g = got[Y * ow + X];
        if (!(isnan(want) ? isnan(g) : memcmp(&g, &want, sizeof(g)) == 0) && bad++ < 3)
          CHECK_MSG(0, "upsample %zux%zu -> %zux%zu at (%zu, %zu): %.9g, want %.9g", w, h, ow, oh,
                    X, Y, (double)g, (double)want);
      }
    free(m);
    free(got);
  }
  CHECK_EQ_INT(bad, 0);
}

CAMD_TEST_MAIN(CAMD_TEST(test_manifest_cases), CAMD_TEST(test_limits),
               CAMD_TEST(test_truncation_sweep), CAMD_TEST(test_png_roundtrip),
               CAMD_TEST(test_sniff_and_media), CAMD_TEST(test_gray_and_blend),
               CAMD_TEST(test_overlay_fused), CAMD_TEST(test_peak_bbox_hand),
               CAMD_TEST(test_bbox_random), CAMD_TEST(test_preprocess_errors),
               CAMD_TEST(test_preprocess_nhwc), CAMD_TEST(test_preprocess_parallel),
               CAMD_TEST(test_resize_reference), CAMD_TEST(test_peak_random),
               CAMD_TEST(test_upsample_direct))
