/* EXIF orientation: a bounds-checked reader for the IFD0 Orientation tag (0x0112) of an APP1
 * "Exif" payload, and the eight pixel transpositions that make an oriented image upright. */
#include <stdlib.h>
#include <string.h>

#include "image/image_internal.h"

static unsigned rd16(const unsigned char *p, bool le) {
  return le ? (unsigned)p[0] | (unsigned)p[1] << 8 : (unsigned)p[0] << 8 | p[1];
}

static uint32_t rd32(const unsigned char *p, bool le) {
  return le ? (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24
            : (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int camd__exif_orientation(const unsigned char *data, size_t len) {
  static const unsigned char magic[6] = {'E', 'x', 'i', 'f', 0, 0};
  if (!data || len < 6 + 8 || memcmp(data, magic, 6) != 0) return 1;
  const unsigned char *t = data + 6; /* TIFF header; offsets are relative to it */
  size_t tlen = len - 6;
  bool le;
  if (t[0] == 'I' && t[1] == 'I')
    le = true;
  else if (t[0] == 'M' && t[1] == 'M')
    le = false;
  else
    return 1;
  if (rd16(t + 2, le) != 42) return 1;
  uint32_t ifd = rd32(t + 4, le);
  if (ifd < 8 || ifd > tlen || tlen - ifd < 2) return 1;
  unsigned count = rd16(t + ifd, le);
  size_t pos = (size_t)ifd + 2;
  for (unsigned i = 0; i < count; i++, pos += 12) {
    if (pos > tlen || tlen - pos < 12) return 1; /* directory runs past the segment */
    unsigned tag = rd16(t + pos, le);
    if (tag != 0x0112) continue;
    unsigned type = rd16(t + pos + 2, le);
    uint32_t n = rd32(t + pos + 4, le);
    unsigned v;
    if (type == 3 && n >= 1)
      v = rd16(t + pos + 8, le); /* SHORT, inline */
    else if (type == 4 && n >= 1)
      v = rd32(t + pos + 8, le); /* LONG (non-standard), inline */
    else
      return 1;
    return v >= 1 && v <= 8 ? (int)v : 1;
  }
  return 1;
}

void camd__oriented_size(int orientation, size_t w, size_t h, size_t *ow, size_t *oh) {
  bool swap = orientation >= 5 && orientation <= 8;
  *ow = swap ? h : w;
  *oh = swap ? w : h;
}

int camd__image_orient(camd_image *img, int orientation, camd_error *err) {
  if (orientation <= 1 || orientation > 8) return 0;
  size_t W = img->width, H = img->height;
  size_t ow, oh;
  camd__oriented_size(orientation, W, H, &ow, &oh);
  camd_image dst;
  int rc = camd_image_alloc(&dst, ow, oh, img->channels, err);
  if (rc) return rc;
  size_t c = (size_t)img->channels;
  const unsigned char *s = img->pixels;
  unsigned char *d = dst.pixels;
  for (size_t y = 0; y < oh; y++) {
    for (size_t x = 0; x < ow; x++) {
      size_t sx, sy; /* source pixel of destination (x, y) */
      switch (orientation) {
        case 2:
          sx = W - 1 - x, sy = y;
          break; /* mirror horizontal */
        case 3:
          sx = W - 1 - x, sy = H - 1 - y;
          break; /* rotate 180 */
        case 4:
          sx = x, sy = H - 1 - y;
          break; /* mirror vertical */
        case 5:
          sx = y, sy = x;
          break; /* transpose */
        case 6:
          sx = y, sy = H - 1 - x;
          break; /* rotate 90 clockwise */
        case 7:
          sx = W - 1 - y, sy = H - 1 - x;
          break; /* transverse */
        default:
          sx = W - 1 - y, sy = x;
          break; /* 8: rotate 90 counter-clockwise */
      }
      memcpy(d + (y * ow + x) * c, s + (sy * W + sx) * c, c);
    }
  }
  camd_image_free(img);
  *img = dst;
  return 0;
}
