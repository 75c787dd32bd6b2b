/* JPEG decode from memory with libjpeg-turbo: gray, YCbCr/RGB, CMYK/YCCK (Adobe inverted),
 * progressive; EXIF orientation applied; every libjpeg warning is treated as an error.
 *
 * libjpeg reports errors through error_exit, which must not return: it longjmps back to
 * jpgx_decode_run. That function keeps all its mutable state in the caller-owned context, so no
 * automatic variable of the setjmp frame changes between setjmp and longjmp. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "image/image_internal.h"

typedef struct jpgx_errstate {
  struct jpeg_error_mgr mgr; /* first member: libjpeg hands us a pointer to it */
  jmp_buf jmp;
  char message[JMSG_LENGTH_MAX];
} jpgx_errstate;

static void jpgx_error_exit_cb(j_common_ptr cinfo) {
  jpgx_errstate *es = (jpgx_errstate *)cinfo->err;
  cinfo->err->format_message(cinfo, es->message);
  longjmp(es->jmp, 1);
}

static void jpgx_emit_message_cb(j_common_ptr cinfo, int level) {
  /* level < 0: a warning (corrupt data, premature end of data...). A warning means the decoded
   * pixels are not what the file describes, so it fails the decode. Trace messages (>= 0) are
   * ignored. */
  if (level < 0) jpgx_error_exit_cb(cinfo);
}

static void jpgx_output_message_cb(j_common_ptr cinfo) {
  (void)cinfo; /* library code: silent */
}

/* Progressive files can hold any number of scans, each a full pass over the coefficients: a
 * small file with thousands of scans costs minutes of CPU. Cap them, as libjpeg-turbo's own
 * TurboJPEG API does with TJFLAG_LIMITSCANS. */
#define JPEG_MAX_SCANS 500

static void jpgx_progress_cb(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  j_decompress_ptr d = (j_decompress_ptr)cinfo;
  if (d->input_scan_number > JPEG_MAX_SCANS) {
    jpgx_errstate *es = (jpgx_errstate *)cinfo->err;
    snprintf(es->message, sizeof(es->message), "more than %d progressive scans", JPEG_MAX_SCANS);
    longjmp(es->jmp, 1);
  }
}

typedef struct jpgx_decode_ctx {
  jpgx_errstate es;
  struct jpeg_decompress_struct cinfo;
  struct jpeg_progress_mgr progress;
  bool created;
  const unsigned char *data;
  size_t len;
  const camd_image_limits *limits;
  camd_image_info *info;
  camd_error *err;
  int rc;             /* our own failure (limits, memory) */
  unsigned char *raw; /* decoded samples, `comps` per pixel */
  size_t width, height;
  int comps;
  bool adobe_cmyk; /* CMYK samples stored inverted (Adobe) */
  int orientation;
} jpgx_decode_ctx;

static int jpgx_decode_run(jpgx_decode_ctx *c) {
  if (setjmp(c->es.jmp)) return 1;
  jpeg_create_decompress(&c->cinfo);
  c->created = true;
  c->progress.progress_monitor = jpgx_progress_cb;
  c->cinfo.progress = &c->progress;
  jpeg_mem_src(&c->cinfo, c->data, (unsigned long)c->len);
  jpeg_save_markers(&c->cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&c->cinfo, TRUE);
  for (jpeg_saved_marker_ptr m = c->cinfo.marker_list; m; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
      c->orientation = camd__exif_orientation(m->data, m->data_length);
      break;
    }
  }
  size_t fw = c->cinfo.image_width, fh = c->cinfo.image_height;
  c->info->file_width = fw;
  c->info->file_height = fh;
  c->info->file_channels = c->cinfo.num_components;
  c->info->bit_depth = c->cinfo.data_precision;
  size_t ow, oh;
  camd__oriented_size(c->orientation, fw, fh, &ow, &oh);
  c->rc = camd__image_check_limits(c->limits, ow, oh, c->err);
  if (c->rc) return 2;
  switch (c->cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
      c->cinfo.out_color_space = JCS_GRAYSCALE;
      break;
    case JCS_CMYK:
    case JCS_YCCK:
      c->cinfo.out_color_space = JCS_CMYK;
      c->adobe_cmyk = c->cinfo.saw_Adobe_marker;
      break;
    default:
      c->cinfo.out_color_space = JCS_RGB;
      break;
  }
  jpeg_start_decompress(&c->cinfo);
  int comps = c->cinfo.output_components;
  if (c->cinfo.output_width != fw || c->cinfo.output_height != fh || comps < 1 || comps > 4) {
    c->rc = camd_error_set(c->err, CAMD_E_INTERNAL, "unexpected JPEG output layout");
    return 2;
  }
  c->width = fw;
  c->height = fh;
  c->comps = comps;
  size_t stride = fw * (size_t)comps; /* fits: limits checked w*h*4 */
  c->raw = malloc(stride * fh);
  if (!c->raw) {
    c->rc = camd_error_set(c->err, CAMD_E_NOMEM, "out of memory decoding a %zux%zu JPEG", fw, fh);
    return 2;
  }
  while (c->cinfo.output_scanline < c->cinfo.output_height) {
    JSAMPROW row = c->raw + (size_t)c->cinfo.output_scanline * stride;
    if (jpeg_read_scanlines(&c->cinfo, &row, 1) != 1) {
      /* with a memory source this only happens on suspension, i.e. no more data */
      c->rc = camd_error_set(c->err, CAMD_E_FORMAT, "invalid JPEG: premature end of data");
      return 2;
    }
  }
  jpeg_finish_decompress(&c->cinfo);
  return 0;
}

/* round(a * b / 255) for a, b in 0..255 */
static unsigned char mul_div255(unsigned a, unsigned b) {
  return (unsigned char)((a * b + 127) / 255);
}

int camd__jpeg_decode(const unsigned char *data, size_t len, const camd_image_limits *limits,
                      camd_image *out, camd_image_info *info, camd_error *err) {
  if (len > (size_t)(unsigned long)-1)
    return camd_error_set(err, CAMD_E_LIMIT, "JPEG data of %zu bytes is too large", len);
  jpgx_decode_ctx *c = calloc(1, sizeof(*c));
  if (!c) return camd_error_set(err, CAMD_E_NOMEM, "out of memory creating a JPEG decoder");
  c->data = data;
  c->len = len;
  c->limits = limits;
  c->info = info;
  c->err = err;
  c->orientation = 1;
  c->cinfo.err = jpeg_std_error(&c->es.mgr);
  c->es.mgr.error_exit = jpgx_error_exit_cb;
  c->es.mgr.emit_message = jpgx_emit_message_cb;
  c->es.mgr.output_message = jpgx_output_message_cb;
  int r = jpgx_decode_run(c);
  if (c->created) jpeg_destroy_decompress(&c->cinfo);
  int rc = 0;
  if (r == 1)
    rc = camd_error_set(err, CAMD_E_FORMAT, "invalid JPEG: %s", c->es.message);
  else if (r == 2)
    rc = c->rc;
  if (rc == 0 && c->comps == 3) { /* RGB as decoded: the image takes the samples, no copy */
    out->pixels = c->raw;
    out->width = c->width;
    out->height = c->height;
    out->channels = 3;
    c->raw = NULL;
  } else if (rc == 0) {
    rc = camd_image_alloc(out, c->width, c->height, 3, err);
  }
  if (rc == 0) {
    size_t n = c->width * c->height;
    const unsigned char *s = c->raw;
    unsigned char *d = out->pixels;
    for (size_t i = 0; c->raw && i < n; i++) {
      if (c->comps == 1) {
        d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s[i];
      } else {
        /* CMYK: with ink amounts C, M, Y, K (0 = none), R = round((255-C)(255-K)/255) etc.,
         * as PIL converts. Adobe files store 255 - ink, i.e. 255 - C is the stored value. */
        const unsigned char *p = s + 4 * i;
        unsigned nc = c->adobe_cmyk ? p[0] : 255u - p[0];
        unsigned nm = c->adobe_cmyk ? p[1] : 255u - p[1];
        unsigned ny = c->adobe_cmyk ? p[2] : 255u - p[2];
        unsigned nk = c->adobe_cmyk ? p[3] : 255u - p[3];
        d[3 * i] = mul_div255(nc, nk);
        d[3 * i + 1] = mul_div255(nm, nk);
        d[3 * i + 2] = mul_div255(ny, nk);
      }
    }
    info->orientation = c->orientation;
    rc = camd__image_orient(out, c->orientation, err);
    if (rc) camd_image_free(out);
  }
  free(c->raw);
  free(c);
  return rc;
}
