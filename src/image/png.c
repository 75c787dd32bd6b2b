/* PNG decode (libpng, from memory, any colour type/depth/interlace -> RGB8, or a gray PNG's sample
 * values at their bit depth) and encode (zlib, to memory, on lent threads: see "encode").
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

/* ---- encode ----
 * Written here rather than through libpng so that one image can be compressed on several threads
 * with the same bytes as on one: the rows are cut into pieces of ~64 KB of filtered data (the cut
 * depends on the image's geometry only), each piece is filtered and deflated on its own (a raw
 * deflate stream ended by a sync flush, the last by the final block: their concatenation is one
 * deflate stream) and written as its own IDAT chunk with its CRC; the zlib header goes before
 * the first piece and the Adler-32 of all filtered bytes (camd__adler32_combine of the pieces')
 * after the last. Filters: levels 0..2 use Average on every row (fast path), higher levels pick per
 * row the filter with the least sum of |signed bytes| (the heuristic of the PNG specification, as
 * libpng). The fast levels 1 and 2 deflate with camd's Huffman-only coder (png_deflate.c: ~4x
 * faster than zlib's run-length strategy at level 1, which it replaced, for 3-4 % more bytes on
 * photo overlays); level 0 and levels 3..9 use zlib. */
enum { PNG_PIECE_BYTES = 1 << 16 };

static const unsigned char png_signature[8] = {137, 80, 78, 71, 13, 10, 26, 10};

typedef struct png_piece {
  unsigned char *idat; /* length(4) "IDAT" data crc(4); NULL when it failed */
  size_t idat_len;     /* bytes of the chunk's data */
  uint32_t adler;      /* Adler-32 of this piece's filtered bytes */
  size_t raw_len;      /* filtered bytes of this piece */
  uLong crc;           /* CRC of "IDAT" + data written so far (the last piece's trailer is not) */
  bool nomem;
} png_piece;

typedef struct png_job {
  const camd_image *img;
  int level;
  size_t stride, rows_per_piece, pieces;
  png_piece *piece;
} png_job;

static void put_be32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24);
  p[1] = (unsigned char)(v >> 16);
  p[2] = (unsigned char)(v >> 8);
  p[3] = (unsigned char)v;
}

static inline unsigned char paeth(int a, int b, int c) {
  int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
  return (unsigned char)(pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
}

/* Row `cur` (prev: the row above, NULL for the first) filtered with `type` into out[1..]. */
static void filter_row(int type, const unsigned char *cur, const unsigned char *prev, size_t n,
                       size_t bpp, unsigned char *out) {
  out[0] = (unsigned char)type;
  unsigned char *o = out + 1;
  for (size_t i = 0; i < n; i++) {
    int a = i >= bpp ? cur[i - bpp] : 0, b = prev ? prev[i] : 0;
    int c = prev && i >= bpp ? prev[i - bpp] : 0;
    int pred = type == 1   ? a
               : type == 2 ? b
               : type == 3 ? (a + b) >> 1
               : type == 4 ? paeth(a, b, c)
                           : 0;
    o[i] = (unsigned char)(cur[i] - pred);
  }
}

static uint64_t filtered_cost(const unsigned char *f, size_t n) {
  uint64_t s = 0;
  for (size_t i = 1; i <= n; i++) s += (uint64_t)abs((int)(signed char)f[i]);
  return s;
}

/* Filters rows [y0, y1) into raw (rows of 1 + stride bytes). try: scratch of 1 + stride bytes. */
static void filter_rows(const png_job *j, size_t y0, size_t y1, unsigned char *raw,
                        unsigned char *try) {
  const camd_image *img = j->img;
  size_t n = j->stride, bpp = (size_t)img->channels;
  for (size_t y = y0; y < y1; y++) {
    const unsigned char *cur = img->pixels + y * n, *prev = y ? cur - n : NULL;
    unsigned char *out = raw + (y - y0) * (n + 1);
    if (j->level <= 2) {
      filter_row(3, cur, prev, n, bpp, out);
      continue;
    }
    uint64_t best = UINT64_MAX;
    for (int t = 0; t < 5; t++) {
      filter_row(t, cur, prev, n, bpp, try);
      uint64_t cost = filtered_cost(try, n);
      if (cost < best) {
        best = cost;
        memcpy(out, try, n + 1);
      }
    }
  }
}

/* Rows filtered with Average (the fast levels): out = cur - (left + up) / 2, per byte. */
static void filter_rows_average(const png_job *j, size_t y0, size_t y1, unsigned char *raw) {
  const camd_image *img = j->img;
  const size_t n = j->stride, bpp = (size_t)img->channels;
  for (size_t y = y0; y < y1; y++) {
    const unsigned char *cur = img->pixels + y * n;
    unsigned char *o = raw + (y - y0) * (n + 1);
    *o++ = 3;
    if (y == 0) {
      for (size_t i = 0; i < bpp; i++) o[i] = cur[i];
      for (size_t i = bpp; i < n; i++) o[i] = (unsigned char)(cur[i] - (cur[i - bpp] >> 1));
      continue;
    }
    const unsigned char *prev = cur - n;
    for (size_t i = 0; i < bpp; i++) o[i] = (unsigned char)(cur[i] - (prev[i] >> 1));
    for (size_t i = bpp; i < n; i++)
      o[i] = (unsigned char)(cur[i] - ((cur[i - bpp] + prev[i]) >> 1));
  }
}

/* Deflates one piece into its IDAT chunk (length, type, data; the CRC is written at assembly):
 * camd's Huffman-only deflate at the fast levels 1 and 2 (png_deflate.c), zlib otherwise. */
static void encode_piece(void *arg, int64_t k) {
  png_job *j = arg;
  png_piece *pc = &j->piece[k];
  size_t y0 = (size_t)k * j->rows_per_piece;
  size_t y1 = y0 + j->rows_per_piece < j->img->height ? y0 + j->rows_per_piece : j->img->height;
  bool first = k == 0, last = (size_t)k + 1 == j->pieces;
  const bool huffman = j->level >= 1 && j->level <= 2;
  pc->raw_len = (y1 - y0) * (j->stride + 1);
  unsigned char *raw = malloc(pc->raw_len + j->stride + 1);
  z_stream z;
  memset(&z, 0, sizeof(z));
  if (!raw ||
      (!huffman && deflateInit2(&z, j->level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)) {
    free(raw);
    pc->nomem = true;
    return;
  }
  if (j->level <= 2)
    filter_rows_average(j, y0, y1, raw);
  else
    filter_rows(j, y0, y1, raw, raw + pc->raw_len);
  pc->adler = camd__adler32(1, raw, pc->raw_len);
  /* deflateBound covers the final block; a sync flush adds at most 10 bytes. Room for the zlib
   * header (first piece), the Adler-32 trailer (last) and the chunk's length/type/CRC. */
  size_t bound = (huffman ? camd__deflate_huffman_bound(pc->raw_len)
                          : deflateBound(&z, (uLong)pc->raw_len)) +
                 16,
         head = 8 + (first ? 2 : 0);
  pc->idat = malloc(head + bound + (last ? 4 : 0) + 4);
  if (!pc->idat) {
    if (!huffman) deflateEnd(&z);
    free(raw);
    pc->nomem = true;
    return;
  }
  size_t out_len;
  bool ok = true;
  if (huffman) {
    out_len = camd__deflate_huffman(raw, pc->raw_len, last, pc->idat + head);
  } else {
    z.next_in = raw;
    z.avail_in = (uInt)pc->raw_len;
    z.next_out = pc->idat + head;
    z.avail_out = (uInt)bound;
    int zr = deflate(&z, last ? Z_FINISH : Z_SYNC_FLUSH);
    ok = last ? zr == Z_STREAM_END : zr == Z_OK && z.avail_in == 0 && z.avail_out > 0;
    out_len = bound - z.avail_out;
    deflateEnd(&z);
  }
  free(raw);
  if (!ok) { /* cannot happen with deflateBound's room; reported as out of memory */
    free(pc->idat);
    pc->idat = NULL;
    pc->nomem = true;
    return;
  }
  if (first) {
    /* CMF 0x78: deflate, 32 KB window; FLG: the level class, and a check making CMF*256+FLG a
     * multiple of 31. */
    static const unsigned char flg[4] = {0x01, 0x5e, 0x9c, 0xda};
    int cls = j->level <= 1 ? 0 : j->level <= 5 ? 1 : j->level == 6 ? 2 : 3;
    pc->idat[8] = 0x78;
    pc->idat[9] = flg[cls];
  }
  pc->idat_len = out_len + (first ? 2 : 0);
  memcpy(pc->idat + 4, "IDAT", 4);
  pc->crc = crc32(crc32(0L, Z_NULL, 0), pc->idat + 4, (uInt)(4 + pc->idat_len));
}

static int png_assemble(png_job *j, unsigned char **data, size_t *len, camd_error *err) {
  png_piece *lastp = &j->piece[j->pieces - 1];
  uint32_t adler = j->piece[0].adler;
  for (size_t k = 1; k < j->pieces; k++)
    adler = camd__adler32_combine(adler, j->piece[k].adler, j->piece[k].raw_len);
  unsigned char trailer[4];
  put_be32(trailer, (uint32_t)adler);
  memcpy(lastp->idat + 8 + lastp->idat_len, trailer, 4);
  lastp->crc = crc32(lastp->crc, trailer, 4);
  lastp->idat_len += 4;
  size_t total = sizeof(png_signature) + 25 + 12;
  for (size_t k = 0; k < j->pieces; k++) {
    if (j->piece[k].idat_len > 0x7fffffffu)
      return camd_error_set(err, CAMD_E_INVALID, "PNG encode: an IDAT chunk would be too large");
    total += 12 + j->piece[k].idat_len;
  }
  unsigned char *out = malloc(total), *p = out;
  if (!out) return camd_error_set(err, CAMD_E_NOMEM, "out of memory encoding PNG");
  memcpy(p, png_signature, 8);
  p += 8;
  unsigned char ihdr[17] = {'I', 'H', 'D', 'R'};
  static const unsigned char color_type[5] = {0, 0, 0, 2, 6}; /* by channels: gray, RGB, RGBA */
  put_be32(ihdr + 4, (uint32_t)j->img->width);
  put_be32(ihdr + 8, (uint32_t)j->img->height);
  ihdr[12] = 8; /* bit depth; compression, filter method and interlace stay 0 */
  ihdr[13] = color_type[j->img->channels];
  put_be32(p, 13);
  memcpy(p + 4, ihdr, 17);
  put_be32(p + 21, (uint32_t)crc32(crc32(0L, Z_NULL, 0), ihdr, 17));
  p += 25;
  for (size_t k = 0; k < j->pieces; k++) {
    png_piece *pc = &j->piece[k];
    put_be32(pc->idat, (uint32_t)pc->idat_len);
    put_be32(pc->idat + 8 + pc->idat_len, (uint32_t)pc->crc);
    memcpy(p, pc->idat, 12 + pc->idat_len);
    p += 12 + pc->idat_len;
  }
  static const unsigned char iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
  memcpy(p, iend, 12);
  *data = out;
  *len = total;
  return 0;
}

int camd_png_encode_parallel(const camd_image *img, int level, const camd_parallel *par,
                             unsigned char **data, size_t *len, camd_error *err) {
  *data = NULL;
  *len = 0;
  if (!img || !img->pixels || img->width == 0 || img->height == 0)
    return camd_error_set(err, CAMD_E_INVALID, "cannot encode an empty image");
  if (img->channels != 1 && img->channels != 3 && img->channels != 4)
    return camd_error_set(err, CAMD_E_INVALID, "PNG encode: channels must be 1, 3 or 4, not %d",
                          img->channels);
  if (img->width > 0x7fffffffu || img->height > 0x7fffffffu ||
      img->width * (size_t)img->channels >= 0x7fffffffu) /* a row must fit one deflate call */
    return camd_error_set(err, CAMD_E_INVALID, "PNG encode: %zux%zu is too large for PNG",
                          img->width, img->height);
  if (level < -1 || level > 9)
    return camd_error_set(err, CAMD_E_INVALID, "PNG compression level %d is not in -1..9", level);
  png_job j = {img, level < 0 ? 6 : level, img->width * (size_t)img->channels, 0, 0, NULL};
  /* Pieces of about PNG_PIECE_BYTES (at least one row; a row is at most ~2 GB, within uInt). */
  j.rows_per_piece = PNG_PIECE_BYTES / (j.stride + 1);
  if (j.rows_per_piece == 0) j.rows_per_piece = 1;
  j.pieces = (img->height + j.rows_per_piece - 1) / j.rows_per_piece;
  j.piece = calloc(j.pieces, sizeof(*j.piece));
  if (!j.piece) return camd_error_set(err, CAMD_E_NOMEM, "out of memory encoding PNG");
  camd_parallel_for(par, (int64_t)j.pieces, encode_piece, &j);
  int rc = 0;
  for (size_t k = 0; k < j.pieces && !rc; k++)
    if (j.piece[k].nomem) rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory encoding PNG");
  if (!rc) rc = png_assemble(&j, data, len, err);
  for (size_t k = 0; k < j.pieces; k++) free(j.piece[k].idat);
  free(j.piece);
  return rc;
}

int camd_png_encode(const camd_image *img, int level, unsigned char **data, size_t *len,
                    camd_error *err) {
  return camd_png_encode_parallel(img, level, NULL, data, len, err);
}
