/* libFuzzer target for the DICOM module: parse arbitrary bytes as a Part 10 file, decode frames
 * through the pixel pipeline with a window chosen from the input, write a Secondary Capture of the
 * result and read it back; checks the documented contract at every step.
 *
 * Build: tests/fuzz/build.sh (libFuzzer; see tests/fuzz/README.md); the ctest suite
 * (tests/fuzz/suite.cmake) replays tests/fuzz/corpus/dicom/ plus mutations without libFuzzer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "camd/dicom.h"
#include "camd/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Failures on client data are 4xx with a message; never an internal error. */
static void check_client_error(int rc, const camd_error *err) {
  if (rc != CAMD_E_MEDIA && rc != CAMD_E_FORMAT && rc != CAMD_E_LIMIT && rc != CAMD_E_UNSUPPORTED &&
      rc != CAMD_E_INVALID)
    abort();
  if (camd_status_http(rc) / 100 != 4 || err->status != rc || err->message[0] == '\0') abort();
}

/* Monochrome (not colour, not PALETTE COLOR): the only frames with a window and modality values. */
static bool is_gray(const camd_dicom_info *info) {
  return info->samples_per_pixel == 1 && strcmp(info->photometric, "PALETTE COLOR") != 0;
}

static void check_frame(const camd_dicom_info *info, const camd_dicom_frame *f, bool gray_values) {
  const camd_image *im = &f->image;
  if (!im->pixels || im->width != info->columns || im->height != info->rows) abort();
  if (im->channels != (is_gray(info) ? 1 : 3)) abort();
  if (!f->stored || f->samples != info->samples_per_pixel) abort();
  if (is_gray(info) && gray_values && !f->values) abort();
  if (!is_gray(info) && f->values) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* small limits keep each input fast; the limit path itself is part of what is fuzzed */
  camd_dicom_limits lim;
  camd_dicom_limits_default(&lim);
  lim.max_frames = 64;
  lim.image.max_width = lim.image.max_height = 2048;
  lim.image.max_pixels = (size_t)1 << 20;
  camd_error err = {0};
  camd_dicom *dcm = (camd_dicom *)1;
  camd_dicom_info info;
  int rc = camd_dicom_open(data, size, &lim, &dcm, &info, &err);
  if (rc) {
    if (dcm) abort(); /* contract: no handle on error */
    check_client_error(rc, &err);
    /* camd_image_decode (default frame/byte limits, same frame limits) agrees */
    camd_image img = {0};
    if (rc != CAMD_E_LIMIT && camd_image_sniff(data, size) == CAMD_IMAGE_FORMAT_DICOM) {
      camd_image_limits il = lim.image;
      if (camd_image_decode(data, size, &il, &img, NULL, &err) == 0) abort();
      if (img.pixels) abort();
    }
    return 0;
  }
  if (!dcm || info.rows == 0 || info.columns == 0 || info.frames == 0 || info.frames > 64 ||
      (info.samples_per_pixel != 1 && info.samples_per_pixel != 3))
    abort();
  if (memcmp(&info, camd_dicom_get_info(dcm), sizeof(info)) != 0) abort();

  /* a window chosen from the input: dicom, dicom:1, auto, a preset, an explicit one */
  static const char *windows[] = {"dicom", "dicom:1", "auto", "lung", "40,400", "brain"};
  camd_dicom_decode_opts o;
  memset(&o, 0, sizeof(o));
  if (camd_window_parse(windows[size % 6], &o.window, &err) != 0) abort();
  o.want_stored = true;
  o.want_values = (size & 1) != 0;
  if (!is_gray(&info) && (o.window.kind != CAMD_WINDOW_DEFAULT || o.window.index != 0)) {
    /* a window on a colour frame is refused (not ignored); then decode without one */
    camd_dicom_frame wf;
    if (camd_dicom_decode(dcm, &o, &wf, &err) != CAMD_E_INVALID || wf.image.pixels) abort();
    memset(&o.window, 0, sizeof(o.window));
  }
  size_t frames[2] = {0, info.frames - 1};
  camd_dicom_frame f0 = {0};
  for (int k = 0; k < (info.frames > 1 ? 2 : 1); k++) {
    o.frame = frames[k];
    camd_dicom_frame f;
    rc = camd_dicom_decode(dcm, &o, &f, &err);
    if (rc) {
      if (f.image.pixels || f.stored || f.values) abort(); /* never a partial frame */
      check_client_error(rc, &err);
      continue;
    }
    check_frame(&info, &f, o.want_values);
    if (is_gray(&info) && f.window.requested != o.window.kind) abort();
    if (k == 0)
      f0 = f;
    else
      camd_dicom_frame_free(&f);
  }
  /* an out-of-range frame is refused */
  o.frame = info.frames;
  camd_dicom_frame bad;
  if (camd_dicom_decode(dcm, &o, &bad, &err) != CAMD_E_INVALID || bad.image.pixels) abort();

  /* Secondary Capture of the decoded frame, read back */
  if (f0.image.pixels) {
    camd_dicom_sc_opts so;
    memset(&so, 0, sizeof(so));
    so.model_name = "fuzz";
    so.method = "gradcam";
    so.camd_version = CAMD_VERSION;
    unsigned char *out = NULL;
    size_t len = 0;
    camd_dicom_sc_uids u;
    rc = camd_dicom_write_sc(dcm, &f0.image, &so, &out, &len, &u, &err);
    if (rc == 0) {
      camd_dicom *back = NULL;
      camd_dicom_info bi;
      if (camd_dicom_open(out, len, NULL, &back, &bi, &err) != 0) abort();
      if (bi.columns != info.columns || bi.rows != info.rows || bi.samples_per_pixel != 3 ||
          strcmp(bi.study_instance_uid, info.study_instance_uid) != 0 ||
          strcmp(bi.sop_instance_uid, u.sop_instance_uid) != 0)
        abort();
      camd_dicom_frame bf;
      if (camd_dicom_decode(back, NULL, &bf, &err) != 0) abort();
      camd_image rgb = {0};
      if (camd_image_to_rgb(&f0.image, &rgb, &err) != 0) abort();
      if (memcmp(bf.image.pixels, rgb.pixels, rgb.width * rgb.height * 3) != 0) abort();
      camd_image_free(&rgb);
      camd_dicom_frame_free(&bf);
      camd_dicom_close(back);
      free(out);
    } else {
      if (rc != CAMD_E_INVALID || out) abort(); /* e.g. the source lacks its UIDs */
    }
  }
  camd_dicom_frame_free(&f0);
  camd_dicom_close(dcm);
  return 0;
}
