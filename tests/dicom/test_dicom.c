/* Tests for the DICOM decoder and Secondary Capture writer: every case of tests/dicom/make_cases.py
 * (stored values, modality values and display levels against pydicom + numpy or GDCM; errors with
 * their status and message), the writer's output for tests/dicom/check_sc.py (dciodvfy, pydicom),
 * and self-contained checks of the window parser, sniffing and limits. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "camd/core.h"
#include "camd/dicom.h"
#include "camd/image.h"
#include "testlib.h"

#ifndef CAMD_DICOM_CASES_DIR
#define CAMD_DICOM_CASES_DIR ""
#endif

static const char *cases_dir(void) {
  const char *d = getenv("CAMD_DICOM_CASES");
  return d && *d ? d : CAMD_DICOM_CASES_DIR;
}

static unsigned char *load(const char *path, size_t *len) {
  unsigned char *d = NULL;
  camd_error err = {0};
  if (camd_read_file(path, (size_t)1 << 30, &d, len, &err) != 0) return NULL;
  return d;
}

static bool contains_ci(const char *hay, const char *needle) {
  size_t n = strlen(needle);
  for (const char *p = hay; *p; p++) {
    size_t i = 0;
    while (i < n && p[i] && tolower((unsigned char)p[i]) == tolower((unsigned char)needle[i])) i++;
    if (i == n) return true;
  }
  return n == 0;
}

/* ---- manifest cases ---- */
static int n_decode, n_error, n_sc, n_stored_checked;

static void case_decode(char **f) {
  /* decode FILE FRAME WINDOW W H CH COLOR_MODEL STORED VALUES DISPLAY TOL FALLBACK REF
   * (COLOR_MODEL with '~' for a space: PALETTE~COLOR) */
  const char *file = f[1], *wtext = f[3], *stored = f[8], *values = f[9], *display = f[10];
  char cm[32];
  snprintf(cm, sizeof(cm), "%s", f[7]);
  for (char *p = cm; *p; p++)
    if (*p == '~') *p = ' ';
  size_t frame = strtoul(f[2], NULL, 10), w = strtoul(f[4], NULL, 10), h = strtoul(f[5], NULL, 10);
  int ch = atoi(f[6]);
  double tol = atof(f[11]);
  const char *fallback = f[12], *ref = f[13];
  char what[600];
  snprintf(what, sizeof(what), "%s frame %zu window %s (ref %s)", file, frame, wtext, ref);
  size_t len = 0;
  unsigned char *data = load(file, &len);
  CHECK_MSG(data != NULL, "cannot read %s", file);
  if (!data) return;
  n_decode++;
  camd_error err = {0};
  camd_dicom *dcm = NULL;
  camd_dicom_info info;
  int rc = camd_dicom_open(data, len, NULL, &dcm, &info, &err);
  free(data);
  CHECK_MSG(rc == 0, "%s: open: %s", what, err.message);
  if (rc) return;
  CHECK_MSG(info.columns == w && info.rows == h, "%s: info %zux%zu", what, info.columns, info.rows);
  camd_dicom_decode_opts o;
  memset(&o, 0, sizeof(o));
  o.frame = frame;
  o.want_stored = o.want_values = true;
  rc = camd_window_parse(wtext, &o.window, &err);
  CHECK_MSG(rc == 0, "%s: window: %s", what, err.message);
  camd_dicom_frame fr;
  rc = camd_dicom_decode(dcm, &o, &fr, &err);
  CHECK_MSG(rc == 0, "%s: decode: %s", what, err.message);
  if (rc) {
    camd_dicom_close(dcm);
    return;
  }
  CHECK_MSG(fr.image.width == w && fr.image.height == h && fr.image.channels == ch,
            "%s: image %zux%zux%d", what, fr.image.width, fr.image.height, fr.image.channels);
  size_t n = w * h;
  if (fr.image.width == w && fr.image.height == h && fr.image.channels == ch) {
    /* stored values: exact, when camd's samples are in the reference's colour model */
    size_t slen = 0;
    unsigned char *sref = strcmp(stored, "-") ? load(stored, &slen) : NULL;
    if (sref && !strcmp(cm, fr.stored_color_model)) {
      CHECK_MSG(slen == n * (size_t)fr.samples * 8, "%s: stored ref size", what);
      size_t bad = 0, first = 0;
      for (size_t i = 0; slen == n * (size_t)fr.samples * 8 && i < slen / 8; i++) {
        int64_t r;
        memcpy(&r, sref + 8 * i, 8);
        if (fr.stored[i] != r && !bad++) first = i;
      }
      CHECK_MSG(bad == 0, "%s: %zu stored values differ (first at %zu)", what, bad, first);
      n_stored_checked++;
    }
    free(sref);
    /* modality values */
    size_t vlen = 0;
    unsigned char *vref = strcmp(values, "-") ? load(values, &vlen) : NULL;
    if (vref) {
      CHECK_MSG(fr.values && vlen == n * 8, "%s: values", what);
      double worst = 0;
      for (size_t i = 0; fr.values && i < n; i++) {
        double r;
        memcpy(&r, vref + 8 * i, 8);
        double d = fabs((double)fr.values[i] - r) / fmax(1.0, fabs(r));
        if (d > worst) worst = d;
      }
      CHECK_MSG(worst <= 1e-6, "%s: modality values differ by %g (relative)", what, worst);
    }
    free(vref);
    /* display levels within tol of the reference (+0.001 for float32 modality values) */
    size_t dlen = 0;
    unsigned char *dref = load(display, &dlen);
    CHECK_MSG(dref && dlen == n * (size_t)ch * 8, "%s: display ref", what);
    if (dref && dlen == n * (size_t)ch * 8) {
      double worst = 0;
      size_t at = 0;
      for (size_t i = 0; i < n * (size_t)ch; i++) {
        double r;
        memcpy(&r, dref + 8 * i, 8);
        double d = fabs((double)fr.image.pixels[i] - r);
        if (d > worst) {
          worst = d;
          at = i;
        }
      }
      CHECK_MSG(worst <= tol + 1e-3, "%s: display differs by %.4f at sample %zu (tol %g)", what,
                worst, at, tol);
    }
    free(dref);
    if (strcmp(fallback, "-"))
      CHECK_MSG(fr.window.fallback == (atoi(fallback) == 1), "%s: fallback %d", what,
                (int)fr.window.fallback);
  }
  camd_dicom_frame_free(&fr);
  camd_dicom_close(dcm);
}

static void case_error(char **f) {
  /* error FILE FRAME WINDOW STATUS WORDS */
  const char *file = f[1], *wtext = f[3], *status = f[4], *words = f[5];
  size_t len = 0;
  unsigned char *data = load(file, &len);
  CHECK_MSG(data != NULL, "cannot read %s", file);
  if (!data) return;
  n_error++;
  camd_error err = {0};
  camd_dicom *dcm = NULL;
  int rc = camd_dicom_open(data, len, NULL, &dcm, NULL, &err);
  free(data);
  camd_dicom_frame fr = {0};
  if (rc == 0) {
    camd_dicom_decode_opts o;
    memset(&o, 0, sizeof(o));
    o.frame = strtoul(f[2], NULL, 10);
    rc = camd_window_parse(wtext, &o.window, &err);
    if (rc == 0) rc = camd_dicom_decode(dcm, &o, &fr, &err);
    CHECK_MSG(rc != 0 || fr.image.pixels, "%s", file);
    if (rc) CHECK_MSG(fr.image.pixels == NULL && fr.stored == NULL, "%s: partial frame", file);
    camd_dicom_frame_free(&fr);
    camd_dicom_close(dcm);
  } else {
    CHECK_MSG(dcm == NULL, "%s: handle on error", file);
  }
  CHECK_MSG(rc != 0 && !strcmp(camd_status_code(rc), status),
            "%s frame %s window %s: got %s (%s),"
            " want %s",
            file, f[2], wtext, rc ? camd_status_code(rc) : "success", err.message, status);
  CHECK_MSG(rc == 0 || camd_status_http(rc) / 100 == 4, "%s: HTTP %d is not a 4xx", file,
            camd_status_http(rc));
  CHECK_MSG(rc == 0 || strlen(err.message) > 10, "%s: no message", file);
  if (rc && strcmp(words, "-")) {
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", words);
    for (char *p = buf; *p; p++)
      if (*p == '~') *p = ' ';
    for (char *tok = strtok(buf, "|"); tok; tok = strtok(NULL, "|"))
      CHECK_MSG(contains_ci(err.message, tok), "%s: message '%s' lacks '%s'", file, err.message,
                tok);
  }
}

/* Decodes frame `frame` of a file with its stored values; NULL handle on failure (reported). */
static int decode_stored(const char *file, size_t frame, camd_dicom_frame *fr, camd_error *err) {
  size_t len = 0;
  unsigned char *data = load(file, &len);
  if (!data) return camd_error_set(err, CAMD_E_IO, "cannot read %s", file);
  camd_dicom *dcm = NULL;
  int rc = camd_dicom_open(data, len, NULL, &dcm, NULL, err);
  free(data);
  if (rc) return rc;
  camd_dicom_decode_opts o;
  memset(&o, 0, sizeof(o));
  o.frame = frame;
  o.want_stored = true;
  rc = camd_dicom_decode(dcm, &o, fr, err);
  camd_dicom_close(dcm);
  return rc;
}

/* Largest |camd stored value - reference| (int64 file), or INFINITY when sizes differ. */
static double stored_diff(const camd_dicom_frame *fr, const char *ref) {
  size_t len = 0;
  unsigned char *r = load(ref, &len);
  size_t n = fr->image.width * fr->image.height * (size_t)fr->samples;
  double worst = (r && len == n * 8) ? 0 : INFINITY;
  for (size_t i = 0; r && len == n * 8 && i < n; i++) {
    int64_t v;
    memcpy(&v, r + 8 * i, 8);
    worst = fmax(worst, fabs((double)(fr->stored[i] - v)));
  }
  free(r);
  return worst;
}

static int n_near, n_nocrash;

static void case_near(char **f) {
  /* near FILE FRAME REF TOL SOURCE SOURCE_TOL: a lossy frame's stored values within TOL of
   * another decoder's (REF) and within SOURCE_TOL of the uncompressed source */
  camd_dicom_frame fr;
  camd_error err = {0};
  int rc = decode_stored(f[1], strtoul(f[2], NULL, 10), &fr, &err);
  CHECK_MSG(rc == 0, "%s: %s", f[1], err.message);
  if (rc) return;
  n_near++;
  double d_ref = stored_diff(&fr, f[3]), d_src = stored_diff(&fr, f[5]);
  CHECK_MSG(d_ref <= atof(f[4]), "%s: %g from the other decoder (tol %s)", f[1], d_ref, f[4]);
  CHECK_MSG(d_src <= atof(f[6]), "%s: %g from the source (tol %s)", f[1], d_src, f[6]);
  printf("%s: max |diff| %g vs OpenJPH's decode, %g vs the source\n", f[1], d_ref, d_src);
  camd_dicom_frame_free(&fr);
}

static void case_nocrash(char **f) {
  /* nocrash FILE: a damaged file decodes or fails with a 4xx, without crashing */
  camd_dicom_frame fr;
  camd_error err = {0};
  int rc = decode_stored(f[1], 0, &fr, &err);
  n_nocrash++;
  CHECK_MSG(rc == 0 || camd_status_http(rc) / 100 == 4, "%s: %s", f[1], err.message);
  if (rc == 0) camd_dicom_frame_free(&fr);
}

/* 16-bit / low-depth gray PNG through camd_png_decode_gray and the window step */
static int n_png;
static double max_abs_diff(const unsigned char *img, const char *ref, size_t n) {
  size_t len = 0;
  unsigned char *r = load(ref, &len);
  if (!r || len != n * 8) {
    free(r);
    return INFINITY;
  }
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    double v;
    memcpy(&v, r + 8 * i, 8);
    worst = fmax(worst, fabs((double)img[i] - v));
  }
  free(r);
  return worst;
}

static void case_pnggray(char **f) {
  /* pnggray FILE W H DEPTH VALUES AUTO WIN C W */
  size_t len = 0, vlen = 0;
  unsigned char *data = load(f[1], &len), *vref = load(f[5], &vlen);
  CHECK_MSG(data && vref, "cannot read %s", f[1]);
  size_t w = strtoul(f[2], NULL, 10), h = strtoul(f[3], NULL, 10), n = w * h;
  float *v = NULL;
  size_t ow = 0, oh = 0;
  int depth = 0;
  camd_error err = {0};
  int rc = data ? camd_png_decode_gray(data, len, NULL, &v, &ow, &oh, &depth, &err) : -1;
  CHECK_MSG(rc == 0, "%s: %s", f[1], err.message);
  if (rc == 0 && vref) {
    n_png++;
    CHECK(ow == w && oh == h && depth == atoi(f[4]) && vlen == n * 8);
    size_t bad = 0;
    for (size_t i = 0; i < n && vlen == n * 8; i++) {
      double r;
      memcpy(&r, vref + 8 * i, 8);
      if ((double)v[i] != r) bad++;
    }
    CHECK_MSG(bad == 0, "%s: %zu values differ from PIL", f[1], bad);
    camd_window win;
    camd_image img = {0};
    camd_window_used used;
    /* DEFAULT on a source without VOIs falls back to auto, and says so */
    CHECK(camd_window_parse("dicom", &win, &err) == 0);
    CHECK(camd_window_gray(v, w, h, &win, NULL, 0, false, &img, &used, &err) == 0);
    CHECK(used.fallback && used.source == CAMD_WINDOW_FROM_AUTO);
    CHECK_MSG(max_abs_diff(img.pixels, f[6], n) <= 0.5 + 1e-3, "%s: auto window", f[1]);
    camd_image_free(&img);
    char spec[96];
    snprintf(spec, sizeof(spec), "%s,%s", f[8], f[9]);
    CHECK(camd_window_parse(spec, &win, &err) == 0);
    CHECK(camd_window_gray(v, w, h, &win, NULL, 0, false, &img, &used, &err) == 0);
    CHECK(!used.fallback && used.source == CAMD_WINDOW_FROM_REQUEST);
    CHECK_MSG(max_abs_diff(img.pixels, f[7], n) <= 0.5 + 1e-3, "%s: window %s", f[1], spec);
    camd_image_free(&img);
  }
  free(v);
  free(data);
  free(vref);
}

static void case_pnggrayerr(char **f) {
  size_t len = 0;
  unsigned char *data = load(f[1], &len);
  float *v = (float *)1;
  size_t w = 1, h = 1;
  int depth = 1;
  camd_error err = {0};
  int rc = camd_png_decode_gray(data, len, NULL, &v, &w, &h, &depth, &err);
  CHECK_MSG(rc != 0 && !strcmp(camd_status_code(rc), f[2]) && v == NULL && w == 0, "%s: %d %s",
            f[1], rc, err.message);
  free(data);
}

/* A deterministic heatmap overlay on the frame (what the explain pipeline will send). */
static int make_overlay(const camd_image *base, camd_image *over) {
  size_t w = base->width, h = base->height;
  float *map = malloc(w * h * sizeof(float));
  if (!map) return -1;
  for (size_t y = 0; y < h; y++)
    for (size_t x = 0; x < w; x++) {
      double dx = ((double)x - 0.3 * (double)w) / (double)w,
             dy = ((double)y - 0.6 * (double)h) / (double)h;
      map[y * w + x] = (float)exp(-(dx * dx + dy * dy) * 12);
    }
  camd_image heat = {0};
  camd_error err = {0};
  int rc = camd_heatmap_colorize(map, w, h, CAMD_COLORMAP_JET, &heat, &err);
  if (!rc) rc = camd_image_blend(base, &heat, 0.4f, over, &err);
  camd_image_free(&heat);
  free(map);
  return rc;
}

static void case_sc(char **f, FILE *scm) {
  /* sc NAME FILE FRAME UID_ROOT */
  const char *name = f[1], *file = f[2], *root = strcmp(f[4], "-") ? f[4] : NULL;
  size_t frame = strtoul(f[3], NULL, 10);
  size_t len = 0;
  unsigned char *data = load(file, &len);
  CHECK_MSG(data != NULL, "cannot read %s", file);
  if (!data) return;
  n_sc++;
  camd_error err = {0};
  camd_dicom *dcm = NULL;
  int rc = camd_dicom_open(data, len, NULL, &dcm, NULL, &err);
  free(data);
  CHECK_MSG(rc == 0, "sc %s: open: %s", name, err.message);
  if (rc) return;
  camd_dicom_decode_opts o;
  memset(&o, 0, sizeof(o));
  o.frame = frame;
  camd_dicom_frame fr;
  rc = camd_dicom_decode(dcm, &o, &fr, &err);
  CHECK_MSG(rc == 0, "sc %s: decode: %s", name, err.message);
  camd_image over = {0};
  if (rc == 0) CHECK(make_overlay(&fr.image, &over) == 0);
  if (over.pixels) {
    camd_dicom_sc_opts so;
    memset(&so, 0, sizeof(so));
    so.uid_root = root;
    so.model_name = "densenet121-chexnet-test";
    so.model_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    so.method = "gradcam";
    so.layer = "features.denseblock4";
    so.target = "Effusion";
    so.camd_version = CAMD_VERSION;
    so.frame = frame;
    unsigned char *out = NULL;
    size_t olen = 0;
    camd_dicom_sc_uids u;
    rc = camd_dicom_write_sc(dcm, &over, &so, &out, &olen, &u, &err);
    CHECK_MSG(rc == 0, "sc %s: write: %s", name, err.message);
    if (rc == 0) {
      char p[1024];
      snprintf(p, sizeof(p), "%s/sc/%s.dcm", cases_dir(), name);
      FILE *o1 = fopen(p, "wb");
      CHECK(o1 && fwrite(out, 1, olen, o1) == olen);
      if (o1) fclose(o1);
      snprintf(p, sizeof(p), "%s/sc/%s.rgb", cases_dir(), name);
      FILE *o2 = fopen(p, "wb");
      size_t nb = over.width * over.height * 3;
      CHECK(o2 && fwrite(over.pixels, 1, nb, o2) == nb);
      if (o2) fclose(o2);
      fprintf(scm, "%s %s %zu %s %s %s\n", name, file, frame, root ? root : "2.25",
              u.series_instance_uid, u.sop_instance_uid);
      /* the output decodes with camd too, same size, RGB */
      camd_dicom *back = NULL;
      camd_dicom_info bi;
      CHECK_MSG(camd_dicom_open(out, olen, NULL, &back, &bi, &err) == 0, "sc %s: reopen: %s", name,
                err.message);
      if (back) {
        CHECK(bi.columns == over.width && bi.rows == over.height && bi.samples_per_pixel == 3);
        CHECK(!strcmp(bi.series_instance_uid, u.series_instance_uid));
        camd_dicom_frame bf;
        if (camd_dicom_decode(back, NULL, &bf, &err) == 0) {
          CHECK_MSG(!memcmp(bf.image.pixels, over.pixels, over.width * over.height * 3),
                    "sc %s: pixels differ after a round trip through camd", name);
          camd_dicom_frame_free(&bf);
        }
        camd_dicom_close(back);
      }
      /* a second instance gets new UIDs */
      unsigned char *out2 = NULL;
      size_t olen2 = 0;
      camd_dicom_sc_uids u2;
      CHECK(camd_dicom_write_sc(dcm, &over, &so, &out2, &olen2, &u2, &err) == 0);
      CHECK(strcmp(u.sop_instance_uid, u2.sop_instance_uid) != 0);
      CHECK(strcmp(u.series_instance_uid, u2.series_instance_uid) != 0);
      free(out2);
    }
    free(out);
    /* refusals */
    so.uid_root = "1.2.03";
    CHECK(camd_dicom_write_sc(dcm, &over, &so, &out, &olen, NULL, &err) == CAMD_E_INVALID);
    so.uid_root = "1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19";
    CHECK(camd_dicom_write_sc(dcm, &over, &so, &out, &olen, NULL, &err) == CAMD_E_INVALID);
    so.uid_root = root;
    so.method = NULL;
    CHECK(camd_dicom_write_sc(dcm, &over, &so, &out, &olen, NULL, &err) == CAMD_E_INVALID);
    so.method = "gradcam";
    camd_image small = over;
    small.width -= 1;
    CHECK(camd_dicom_write_sc(dcm, &small, &so, &out, &olen, NULL, &err) == CAMD_E_INVALID);
    CHECK(out == NULL);
  }
  camd_image_free(&over);
  camd_dicom_frame_free(&fr);
  camd_dicom_close(dcm);
}

static void test_manifest(void) {
  char p[1024];
  snprintf(p, sizeof(p), "%s/manifest.txt", cases_dir());
  FILE *m = fopen(p, "r");
  CHECK_MSG(m != NULL, "no manifest at %s (run tests/dicom/make_cases.py)", p);
  if (!m) return;
  snprintf(p, sizeof(p), "%s/sc", cases_dir());
  mkdir(p, 0755);
  snprintf(p, sizeof(p), "%s/sc/manifest.txt", cases_dir());
  FILE *scm = fopen(p, "w");
  CHECK(scm != NULL);
  char line[8192];
  while (scm && fgets(line, sizeof(line), m)) {
    char *f[16] = {0};
    int nf = 0;
    for (char *tok = strtok(line, " \n"); tok && nf < 16; tok = strtok(NULL, " \n")) f[nf++] = tok;
    if (nf == 0) continue;
    if (!strcmp(f[0], "decode") && nf == 14)
      case_decode(f);
    else if (!strcmp(f[0], "error") && nf == 6)
      case_error(f);
    else if (!strcmp(f[0], "sc") && nf == 5)
      case_sc(f, scm);
    else if (!strcmp(f[0], "pnggray") && nf == 10)
      case_pnggray(f);
    else if (!strcmp(f[0], "pnggrayerr") && nf == 3)
      case_pnggrayerr(f);
    else if (!strcmp(f[0], "near") && nf == 7)
      case_near(f);
    else if (!strcmp(f[0], "nocrash") && nf == 2)
      case_nocrash(f);
    else
      CHECK_MSG(0, "bad manifest line: %s (%d fields)", f[0], nf);
  }
  fclose(m);
  if (scm) fclose(scm);
  printf(
      "dicom cases: %d decoded (%d with stored values compared), %d errors, %d secondary "
      "captures, %d gray PNGs, %d lossy frames near another decoder, %d damaged files\n",
      n_decode, n_stored_checked, n_error, n_sc, n_png, n_near, n_nocrash);
  CHECK(n_decode > 200 && n_error > 80 && n_sc >= 5 && n_png >= 3 && n_near >= 2 && n_nocrash >= 1);
}

/* ---- self-contained checks ---- */
static void test_window_parse(void) {
  camd_window w;
  camd_error err = {0};
  CHECK(camd_window_parse(" DICOM ", &w, &err) == 0 && w.kind == CAMD_WINDOW_DEFAULT &&
        w.index == 0);
  CHECK(camd_window_parse("dicom:3", &w, &err) == 0 && w.kind == CAMD_WINDOW_DEFAULT &&
        w.index == 3);
  CHECK(camd_window_parse("auto", &w, &err) == 0 && w.kind == CAMD_WINDOW_AUTO);
  CHECK(camd_window_parse("lung", &w, &err) == 0 && w.kind == CAMD_WINDOW_EXPLICIT &&
        w.center == -600 && w.width == 1500 && !strcmp(w.name, "lung"));
  CHECK(camd_window_parse("mediastinum", &w, &err) == 0 && w.center == 50 && w.width == 350);
  CHECK(camd_window_parse("bone", &w, &err) == 0 && w.center == 400 && w.width == 1800);
  CHECK(camd_window_parse("brain", &w, &err) == 0 && w.center == 40 && w.width == 80);
  CHECK(camd_window_parse("soft_tissue", &w, &err) == 0 && w.center == 40 && w.width == 400);
  CHECK(camd_window_parse("-600, 1500.5", &w, &err) == 0 && w.kind == CAMD_WINDOW_EXPLICIT &&
        w.center == -600 && w.width == 1500.5 && w.name[0] == 0);
  const char *bad[] = {"",        "dicom:", "dicom:-1", "dicom:x", "dicom:100000",
                       "lungs",   "40",     "40,0.5",   "40,",     ",400",
                       "nan,400", "40,inf", "1e999,4",  "40;400",  "40,400,1"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    camd_window keep = {CAMD_WINDOW_AUTO, 7, 1, 2, "x"};
    w = keep;
    CHECK_MSG(camd_window_parse(bad[i], &w, &err) == CAMD_E_INVALID, "'%s' accepted", bad[i]);
    CHECK_MSG(w.index == 7 && w.kind == CAMD_WINDOW_AUTO, "'%s' changed the window", bad[i]);
  }
  CHECK(contains_ci(err.message, "soft_tissue"));
  char buf[64];
  camd_window_parse("dicom:2", &w, &err);
  camd_window_format(&w, buf, sizeof(buf));
  CHECK(!strcmp(buf, "dicom:2"));
  camd_window_parse("bone", &w, &err);
  camd_window_format(&w, buf, sizeof(buf));
  CHECK(!strcmp(buf, "bone"));
  camd_window_parse("10,20", &w, &err);
  camd_window_format(&w, buf, sizeof(buf));
  CHECK(!strcmp(buf, "10,20"));
}

/* The VOI functions at points computed by hand from PS3.3 C.11.2.1.2/3. */
static void test_voi_points(void) {
  camd_error err = {0};
  float x[] = {-1000, 39.5f - 199.5f, 39.5f - 199.5f + 1, 39.5f, 239.0f, 240.0f, NAN};
  unsigned char o[7];
  camd_voi v = {0};
  v.function = CAMD_VOI_LINEAR;
  v.center = 40;
  v.width = 400; /* c' = 39.5, w' = 399: bounds 39.5 -+ 199.5 */
  CHECK(camd_voi_apply(x, 7, &v, false, o, &err) == 0);
  CHECK(o[0] == 0 && o[1] == 0);
  CHECK(o[2] == 1);                  /* ((-159 - 39.5) / 399 + 0.5) * 255 = 0.639 -> 1 */
  CHECK(o[3] == 128);                /* 0.5 * 255 = 127.5 -> 128 */
  CHECK(o[4] == 255 && o[5] == 255); /* 239 = 39.5 + 199.5: (199.5/399 + .5)*255 = 255 */
  CHECK(o[6] == 0);
  CHECK(camd_voi_apply(x, 7, &v, true, o, &err) == 0 && o[0] == 255 && o[3] == 127);
  v.width = 0.5;
  CHECK(camd_voi_apply(x, 7, &v, false, o, &err) == CAMD_E_INVALID);
  v.function = CAMD_VOI_SIGMOID;
  v.width = 100;
  CHECK(camd_voi_apply(x, 7, &v, false, o, &err) == 0 && o[0] == 0);
  CHECK(o[3] == 126); /* 255 / (1 + exp(-4 * -0.5 / 100)) = 126.24 */
  uint16_t lut[4] = {0, 100, 200, 255};
  camd_voi l = {0};
  l.is_lut = true;
  l.first_mapped = -1;
  l.entries = 4;
  l.bits = 8;
  l.data = lut;
  float y[] = {-5, -1, 0.9f, 1, 2, 99};
  unsigned char q[6];
  CHECK(camd_voi_apply(y, 6, &l, false, q, &err) == 0);
  CHECK(q[0] == 0 && q[1] == 0 && q[2] == 100 && q[3] == 200 && q[4] == 255 && q[5] == 255);
}

static void test_sniff_and_limits(void) {
  char p[1024];
  snprintf(p, sizeof(p), "%s/synth/multiframe.dcm", cases_dir());
  size_t len = 0;
  unsigned char *d = load(p, &len);
  CHECK_MSG(d != NULL, "no %s", p);
  if (!d) return;
  CHECK(camd_image_sniff(d, len) == CAMD_IMAGE_FORMAT_DICOM);
  CHECK(!strcmp(camd_image_format_name(CAMD_IMAGE_FORMAT_DICOM), "dicom"));
  CHECK(camd_image_sniff(d, 131) == CAMD_IMAGE_FORMAT_UNKNOWN);
  /* camd_image_decode: frame 0, the file's window, RGB; equals camd_dicom_decode's gray */
  camd_image img = {0};
  camd_image_info ii;
  camd_error err = {0};
  CHECK(camd_image_decode(d, len, NULL, &img, &ii, &err) == 0);
  CHECK(ii.format == CAMD_IMAGE_FORMAT_DICOM && img.channels == 3 && img.width == 30 &&
        img.height == 20 && ii.bit_depth == 16);
  camd_dicom *dcm = NULL;
  CHECK(camd_dicom_open(d, len, NULL, &dcm, NULL, &err) == 0);
  camd_dicom_frame fr;
  if (dcm && camd_dicom_decode(dcm, NULL, &fr, &err) == 0) {
    bool same = img.pixels != NULL;
    for (size_t i = 0; same && i < 600; i++)
      same = img.pixels[3 * i] == fr.image.pixels[i] && img.pixels[3 * i + 2] == fr.image.pixels[i];
    CHECK(same);
    CHECK(fr.stored == NULL && fr.values == NULL); /* not asked for */
    camd_dicom_frame_free(&fr);
  }
  camd_dicom_close(dcm);
  camd_image_free(&img);
  /* limits: each one named in the message */
  camd_dicom_limits lim;
  camd_dicom_limits_default(&lim);
  lim.max_bytes = len - 1;
  CHECK(camd_dicom_open(d, len, &lim, &dcm, NULL, &err) == CAMD_E_LIMIT && dcm == NULL);
  CHECK(contains_ci(err.message, "max_bytes"));
  camd_dicom_limits_default(&lim);
  lim.max_frames = 2;
  CHECK(camd_dicom_open(d, len, &lim, &dcm, NULL, &err) == CAMD_E_LIMIT);
  CHECK(contains_ci(err.message, "max_frames=2"));
  camd_dicom_limits_default(&lim);
  lim.image.max_width = 29;
  CHECK(camd_dicom_open(d, len, &lim, &dcm, NULL, &err) == CAMD_E_LIMIT);
  CHECK(contains_ci(err.message, "max_width=29"));
  camd_image_limits il = {0, 0, 599};
  CHECK(camd_image_decode(d, len, &il, &img, &ii, &err) == CAMD_E_LIMIT && img.pixels == NULL);
  /* a deflated data set may not inflate beyond max_bytes (4.6 KB -> 262 KB here) */
  snprintf(p, sizeof(p), "%s/synth/deflated.dcm", cases_dir());
  size_t dlen = 0;
  unsigned char *dd = load(p, &dlen);
  CHECK_MSG(dd != NULL, "no %s", p);
  if (dd) {
    camd_dicom_limits_default(&lim);
    lim.max_bytes = 100000;
    CHECK(camd_dicom_open(dd, dlen, &lim, &dcm, NULL, &err) == CAMD_E_LIMIT && dcm == NULL);
    CHECK(contains_ci(err.message, "inflates beyond the limit max_bytes=100000"));
    lim.max_bytes = 300000;
    CHECK(camd_dicom_open(dd, dlen, &lim, &dcm, NULL, &err) == 0);
    camd_dicom_close(dcm);
    free(dd);
  }
  /* every prefix of the file fails cleanly (or, at full length, succeeds) */
  for (size_t cut = 0; cut < len; cut += (cut < 400 ? 1 : 97)) {
    int rc = camd_dicom_open(d, cut, NULL, &dcm, NULL, &err);
    CHECK_MSG(rc == CAMD_E_MEDIA || rc == CAMD_E_FORMAT, "prefix %zu: %d %s", cut, rc, err.message);
    if (!rc) camd_dicom_close(dcm);
  }
  free(d);
}

CAMD_TEST_MAIN(CAMD_TEST(test_window_parse), CAMD_TEST(test_voi_points),
               CAMD_TEST(test_sniff_and_limits), CAMD_TEST(test_manifest))
