/* PNG decode (libpng, from memory, any colour type/depth/interlace -> RGB8, or a gray PNG's sample
 * values at their bit depth) and encode (to memory).
 *
 * libpng reports errors by longjmp. Every function that calls setjmp here does only that and
 * keeps all state it changes after setjmp in a context struct owned by its caller, so no
 * automatic variable of the setjmp frame is modified between setjmp and longjmp. */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "image/image_internal.h"

/* ---- shared error handling ---- */
typedef struct pngx_errstate {
  jmp_buf jmp;
  char message[256];
} pngx_errstate;

static void pngx_error_cb(png_structp png, png_const_charp msg) {
  pngx_errstate *es = png_get_error_ptr(png);
  snprintf(es->message, sizeof(es->message), "%s", msg ? msg : "unknown libpng error");
  longjmp(es->jmp, 1);
}

static void pngx_warning_cb(png_structp png, png_const_charp msg) {
  /* Warnings are about ancillary data (bad CRC in a text chunk, iCCP profile quirks...);
   * pixel-affecting problems are errors in libpng. Ignored on purpose. */
  (void)png;
  (void)msg;
}

/* ---- decode ---- */
typedef struct pngx_reader {
  const unsigned char *data;
  size_t len;
  size_t pos;
} pngx_reader;

static void pngx_read_cb(png_structp png, png_bytep out, size_t n) {
  pngx_reader *r = png_get_io_ptr(png);
  if (n > r->len - r->pos) png_error(png, "truncated PNG data (unexpected end of file)");
  memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

typedef struct pngx_decode_ctx {
  pngx_errstate es;
  pngx_reader rd;
  const camd_image_limits *limits;
  camd_image_info *info;
  camd_error *err;
  png_structp png;
  png_infop pinfo;
  unsigned char *raw; /* decoded rows, channels_out per pixel (owned until converted) */
  png_bytep *rows;    /* row pointers into raw */
  int rc;             /* non-zero: failure not raised through libpng (limits, memory) */
  size_t width, height;
  int channels;     /* channels in raw after transformations (1..4) */
  bool gray_values; /* camd_png_decode_gray: keep gray samples at their depth, no conversion */
  int sample_bytes; /* bytes per sample in raw (2 for 16-bit gray values, else 1) */
} pngx_decode_ctx;

/* Runs libpng under setjmp. Returns 0 on success, 1 when libpng raised an error, 2 when we
 * stopped for our own reason (ctx->rc set). */
static int pngx_decode_run(pngx_decode_ctx *c) {
  if (setjmp(c->es.jmp)) return 1;
  png_set_read_fn(c->png, &c->rd, pngx_read_cb);
  png_read_info(c->png, c->pinfo);
  png_uint_32 w = 0, h = 0;
  int depth = 0, ctype = 0, interlace = 0;
  png_get_IHDR(c->png, c->pinfo, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
  c->info->file_width = w;
  c->info->file_height = h;
  c->info->bit_depth = depth;
  c->info->file_channels = png_get_channels(c->png, c->pinfo);
  c->info->had_alpha =
      (ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(c->png, c->pinfo, PNG_INFO_tRNS);
  c->rc = camd__image_check_limits(c->limits, w, h, c->err);
  if (c->rc) return 2;
  c->sample_bytes = 1;
  if (c->gray_values) {
    /* gray samples as stored: 1/2/4-bit unpacked without scaling, 16-bit kept (big endian in
     * raw), alpha dropped */
    if (ctype != PNG_COLOR_TYPE_GRAY && ctype != PNG_COLOR_TYPE_GRAY_ALPHA) {
      c->rc = camd_error_set(c->err, CAMD_E_UNSUPPORTED,
                             "the PNG is not gray (colour type %d): gray sample values need a "
                             "gray PNG",
                             ctype);
      return 2;
    }
    if (ctype == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_strip_alpha(c->png);
    if (depth < 8) png_set_packing(c->png);
    if (depth == 16) c->sample_bytes = 2;
  } else {
    /* Transformations: palette -> RGB (tRNS not expanded: alpha is dropped anyway), low-depth
     * gray -> 8 bits, 16 -> 8 bits by taking the high byte. */
    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
    if ((ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA) && depth < 8)
      png_set_expand_gray_1_2_4_to_8(c->png);
    if (depth == 16) png_set_strip_16(c->png);
  }
  png_set_interlace_handling(c->png);
  png_read_update_info(c->png, c->pinfo);
  int ch = png_get_channels(c->png, c->pinfo);
  size_t rowbytes = png_get_rowbytes(c->png, c->pinfo);
  if (ch < 1 || ch > 4 || rowbytes != (size_t)w * (size_t)ch * (size_t)c->sample_bytes) {
    c->rc = camd_error_set(c->err, CAMD_E_INTERNAL, "unexpected PNG row layout (%d channels)", ch);
    return 2;
  }
  c->width = w;
  c->height = h;
  c->channels = ch;
  /* sizes were checked by camd__image_check_limits: w*h*4 fits in size_t (ch * sample_bytes is
   * at most 4: 16-bit values are 1 channel) */
  c->raw = malloc((size_t)w * h * (size_t)ch * (size_t)c->sample_bytes);
  c->rows = malloc(sizeof(png_bytep) * h);
  if (!c->raw || !c->rows) {
    c->rc = camd_error_set(c->err, CAMD_E_NOMEM, "out of memory decoding a %ux%u PNG", (unsigned)w,
                           (unsigned)h);
    return 2;
  }
  for (size_t y = 0; y < h; y++) c->rows[y] = c->raw + y * rowbytes;
  png_read_image(c->png, c->rows);
  png_read_end(c->png, NULL);
  return 0;
}

/* Creates the decoder, runs it on c (rd, limits, info, err, gray_values set) and frees it:
 * 0 with c->raw filled, else the status. c->raw is the caller's to free in every case. */
static int pngx_decode_checked(pngx_decode_ctx *c) {
  c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c->es, pngx_error_cb, pngx_warning_cb);
  if (!c->png) return camd_error_set(c->err, CAMD_E_NOMEM, "out of memory creating a PNG decoder");
  c->pinfo = png_create_info_struct(c->png);
  if (!c->pinfo) {
    png_destroy_read_struct(&c->png, NULL, NULL);
    return camd_error_set(c->err, CAMD_E_NOMEM, "out of memory creating a PNG decoder");
  }
  int r = pngx_decode_run(c);
  png_destroy_read_struct(&c->png, &c->pinfo, NULL);
  free(c->rows);
  c->rows = NULL;
  if (r == 1) return camd_error_set(c->err, CAMD_E_FORMAT, "invalid PNG: %s", c->es.message);
  return r == 2 ? c->rc : 0;
}

int camd__png_decode(const unsigned char *data, size_t len, const camd_image_limits *limits,
                     camd_image *out, camd_image_info *info, camd_error *err) {
  pngx_decode_ctx c;
  memset(&c, 0, sizeof(c));
  c.rd.data = data;
  c.rd.len = len;
  c.limits = limits;
  c.info = info;
  c.err = err;
  int rc = pngx_decode_checked(&c);
  if (!rc) {
    rc = camd_image_alloc(out, c.width, c.height, 3, err);
    if (rc == 0) {
      size_t n = c.width * c.height;
      const unsigned char *s = c.raw;
      unsigned char *d = out->pixels;
      int ch = c.channels;
      for (size_t i = 0; i < n; i++) {
        if (ch <= 2) { /* gray, gray+alpha */
          d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s[ch * i];
        } else { /* RGB, RGBA */
          d[3 * i] = s[ch * i];
          d[3 * i + 1] = s[ch * i + 1];
          d[3 * i + 2] = s[ch * i + 2];
        }
      }
    }
  }
  free(c.raw);
  if (rc == 0) info->file_channels = info->file_channels ? info->file_channels : c.channels;
  return rc;
}

int camd_png_decode_gray(const void *data, size_t len, const camd_image_limits *limits,
                         float **values, size_t *width, size_t *height, int *bit_depth,
                         camd_error *err) {
  *values = NULL;
  *width = *height = 0;
  *bit_depth = 0;
  if (camd_image_sniff(data, len) != CAMD_IMAGE_FORMAT_PNG)
    return camd_error_set(err, CAMD_E_MEDIA, "not a PNG file");
  camd_image_info info;
  memset(&info, 0, sizeof(info));
  pngx_decode_ctx c;
  memset(&c, 0, sizeof(c));
  c.rd.data = data;
  c.rd.len = len;
  c.limits = limits;
  c.info = &info;
  c.err = err;
  c.gray_values = true;
  int rc = pngx_decode_checked(&c);
  if (!rc) {
    size_t n = c.width * c.height;
    float *v = malloc(n * sizeof(float));
    if (!v) {
      rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory for %zu gray values", n);
    } else {
      const unsigned char *s = c.raw;
      for (size_t i = 0; i < n; i++)
        v[i] = c.sample_bytes == 2 ? (float)((unsigned)s[2 * i] << 8 | s[2 * i + 1]) : s[i];
      *values = v;
      *width = c.width;
      *height = c.height;
      *bit_depth = info.bit_depth;
    }
  }
  free(c.raw);
  return rc;
}

/* ---- encode ---- */
typedef struct pngx_writer {
  camd_buf buf;
} pngx_writer;

static void pngx_write_cb(png_structp png, png_bytep p, size_t n) {
  pngx_writer *w = png_get_io_ptr(png);
  if (!camd_buf_append(&w->buf, p, n)) png_error(png, "out of memory writing PNG");
}

static void pngx_flush_cb(png_structp png) {
  (void)png;
}

typedef struct pngx_encode_ctx {
  pngx_errstate es;
  pngx_writer wr;
  const camd_image *img;
  int level;
  png_structp png;
  png_infop pinfo;
  png_bytep *rows;
} pngx_encode_ctx;

static int pngx_encode_run(pngx_encode_ctx *c) {
  if (setjmp(c->es.jmp)) return 1;
  png_set_write_fn(c->png, &c->wr, pngx_write_cb, pngx_flush_cb);
  int ctype = c->img->channels == 1   ? PNG_COLOR_TYPE_GRAY
              : c->img->channels == 3 ? PNG_COLOR_TYPE_RGB
                                      : PNG_COLOR_TYPE_RGB_ALPHA;
  png_set_IHDR(c->png, c->pinfo, (png_uint_32)c->img->width, (png_uint_32)c->img->height, 8, ctype,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(c->png, c->level);
  /* Fast levels: one fixed filter (Average) instead of libpng's per-row trial of all five: for
   * photo-like overlays about 3x less time at a few % more bytes (tests/bench numbers). And
   * zlib's run-length strategy (matches at distance 1 only) instead of level 1's hash chains:
   * on 400x300 overlays of four photos, two CT/MR frames and noise it was faster on 6 of 7
   * (noise 7.6 -> 3.0 ms, photos ~15 % faster) and smaller on 5 of 7 (CT 163 -> 139 KB). */
  if (c->level >= 1 && c->level <= 2) {
    png_set_filter(c->png, PNG_FILTER_TYPE_BASE, PNG_FILTER_AVG);
    png_set_compression_strategy(c->png, Z_RLE);
  }
  png_write_info(c->png, c->pinfo);
  png_write_image(c->png, c->rows);
  png_write_end(c->png, NULL);
  return 0;
}

int camd_png_encode(const camd_image *img, int level, unsigned char **data, size_t *len,
                    camd_error *err) {
  *data = NULL;
  *len = 0;
  if (!img || !img->pixels || img->width == 0 || img->height == 0)
    return camd_error_set(err, CAMD_E_INVALID, "cannot encode an empty image");
  if (img->channels != 1 && img->channels != 3 && img->channels != 4)
    return camd_error_set(err, CAMD_E_INVALID, "PNG encode: channels must be 1, 3 or 4, not %d",
                          img->channels);
  if (img->width > 0x7fffffffu || img->height > 0x7fffffffu)
    return camd_error_set(err, CAMD_E_INVALID, "PNG encode: %zux%zu is too large for PNG",
                          img->width, img->height);
  if (level < -1 || level > 9)
    return camd_error_set(err, CAMD_E_INVALID, "PNG compression level %d is not in -1..9", level);
  pngx_encode_ctx c;
  memset(&c, 0, sizeof(c));
  camd_buf_init(&c.wr.buf);
  c.img = img;
  c.level = level < 0 ? 6 : level;
  size_t stride = img->width * (size_t)img->channels;
  c.rows = malloc(sizeof(png_bytep) * img->height);
  if (!c.rows) return camd_error_set(err, CAMD_E_NOMEM, "out of memory encoding PNG");
  for (size_t y = 0; y < img->height; y++) c.rows[y] = img->pixels + y * stride;
  c.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c.es, pngx_error_cb, pngx_warning_cb);
  c.pinfo = c.png ? png_create_info_struct(c.png) : NULL;
  if (!c.png || !c.pinfo) {
    png_destroy_write_struct(&c.png, &c.pinfo);
    free(c.rows);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory creating a PNG encoder");
  }
  int r = pngx_encode_run(&c);
  png_destroy_write_struct(&c.png, &c.pinfo);
  free(c.rows);
  if (r != 0 || c.wr.buf.failed) {
    bool oom = c.wr.buf.failed;
    camd_buf_free(&c.wr.buf);
    if (oom) return camd_error_set(err, CAMD_E_NOMEM, "out of memory encoding PNG");
    return camd_error_set(err, CAMD_E_INTERNAL, "PNG encode failed: %s", c.es.message);
  }
  size_t n = 0;
  char *p = camd_buf_take(&c.wr.buf, &n);
  if (!p) return camd_error_set(err, CAMD_E_NOMEM, "out of memory encoding PNG");
  *data = (unsigned char *)p;
  *len = n;
  return 0;
}
