/* camd_image basics: allocation, format sniffing (PNG, JPEG, DICOM), limits, decode dispatch,
 * colour conversions. */
#include <stdlib.h>
#include <string.h>

#include "image/dicom_internal.h"
#include "image/image_internal.h"

int camd_image_alloc(camd_image *img, size_t width, size_t height, int channels, camd_error *err) {
  img->width = img->height = 0;
  img->channels = 0;
  img->pixels = NULL;
  if (width == 0 || height == 0)
    return camd_error_set(err, CAMD_E_INVALID, "image size %zux%zu is empty", width, height);
  if (channels != 1 && channels != 3 && channels != 4)
    return camd_error_set(err, CAMD_E_INVALID, "image channels must be 1, 3 or 4, not %d",
                          channels);
  size_t n;
  if (!camd_size_mul(width, height, &n) || !camd_size_mul(n, (size_t)channels, &n))
    return camd_error_set(err, CAMD_E_LIMIT, "image size %zux%zux%d overflows", width, height,
                          channels);
  unsigned char *p = calloc(n, 1);
  if (!p)
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory allocating a %zux%zux%d image", width,
                          height, channels);
  img->width = width;
  img->height = height;
  img->channels = channels;
  img->pixels = p;
  return 0;
}

void camd_image_free(camd_image *img) {
  if (!img) return;
  free(img->pixels);
  img->pixels = NULL;
  img->width = img->height = 0;
  img->channels = 0;
}

camd_image_format camd_image_sniff(const void *data, size_t len) {
  static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const unsigned char *p = data;
  if (!p) return CAMD_IMAGE_FORMAT_UNKNOWN;
  if (len >= 8 && memcmp(p, png_sig, 8) == 0) return CAMD_IMAGE_FORMAT_PNG;
  /* SOI followed by the start of another marker */
  if (len >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return CAMD_IMAGE_FORMAT_JPEG;
  /* DICOM Part 10: 128-byte preamble, then "DICM" */
  if (len >= 132 && memcmp(p + 128, "DICM", 4) == 0) return CAMD_IMAGE_FORMAT_DICOM;
  return CAMD_IMAGE_FORMAT_UNKNOWN;
}

const char *camd_image_format_name(camd_image_format format) {
  switch (format) {
    case CAMD_IMAGE_FORMAT_PNG:
      return "png";
    case CAMD_IMAGE_FORMAT_JPEG:
      return "jpeg";
    case CAMD_IMAGE_FORMAT_DICOM:
      return "dicom";
    case CAMD_IMAGE_FORMAT_UNKNOWN:
      break;
  }
  return "unknown";
}

void camd_image_limits_default(camd_image_limits *limits) {
  limits->max_width = 32768;
  limits->max_height = 32768;
  limits->max_pixels = (size_t)64 * 1024 * 1024;
}

int camd__image_check_limits(const camd_image_limits *limits, size_t width, size_t height,
                             camd_error *err) {
  camd_image_limits def;
  if (!limits) {
    camd_image_limits_default(&def);
    limits = &def;
  }
  if (width == 0 || height == 0)
    return camd_error_set(err, CAMD_E_FORMAT, "image has an empty size %zux%zu", width, height);
  if (limits->max_width && width > limits->max_width)
    return camd_error_set(err, CAMD_E_LIMIT, "image width %zu exceeds the limit max_width=%zu",
                          width, limits->max_width);
  if (limits->max_height && height > limits->max_height)
    return camd_error_set(err, CAMD_E_LIMIT, "image height %zu exceeds the limit max_height=%zu",
                          height, limits->max_height);
  size_t pixels;
  if (!camd_size_mul(width, height, &pixels) || (limits->max_pixels && pixels > limits->max_pixels))
    return camd_error_set(err, CAMD_E_LIMIT,
                          "image of %zux%zu pixels exceeds the limit max_pixels=%zu", width, height,
                          limits->max_pixels);
  /* Our own invariant: 4 bytes per pixel must fit in size_t (checked once here). */
  size_t bytes;
  if (!camd_size_mul(pixels, 4, &bytes))
    return camd_error_set(err, CAMD_E_LIMIT, "image of %zux%zu pixels is too large", width, height);
  return 0;
}

int camd_image_decode(const void *data, size_t len, const camd_image_limits *limits,
                      camd_image *out, camd_image_info *info, camd_error *err) {
  out->width = out->height = 0;
  out->channels = 0;
  out->pixels = NULL;
  camd_image_info local;
  if (!info) info = &local;
  memset(info, 0, sizeof(*info));
  info->orientation = 1;
  if (!data && len) return camd_error_set(err, CAMD_E_INVALID, "image data is NULL");
  camd_image_format f = camd_image_sniff(data, len);
  info->format = f;
  switch (f) {
    case CAMD_IMAGE_FORMAT_PNG:
      return camd__png_decode(data, len, limits, out, info, err);
    case CAMD_IMAGE_FORMAT_JPEG:
      return camd__jpeg_decode(data, len, limits, out, info, err);
    case CAMD_IMAGE_FORMAT_DICOM:
      return camd__dicom_decode_image(data, len, limits, out, info, err);
    case CAMD_IMAGE_FORMAT_UNKNOWN:
      break;
  }
  if (len == 0)
    return camd_error_set(err, CAMD_E_MEDIA,
                          "empty image data; supported formats: PNG, JPEG, DICOM Part 10");
  return camd_error_set(err, CAMD_E_MEDIA,
                        "unrecognised image format (first bytes do not match any supported "
                        "format); supported formats: PNG, JPEG, DICOM Part 10");
}

static int check_image(const camd_image *in, camd_error *err) {
  if (!in || !in->pixels || in->width == 0 || in->height == 0)
    return camd_error_set(err, CAMD_E_INVALID, "empty input image");
  if (in->channels != 1 && in->channels != 3 && in->channels != 4)
    return camd_error_set(err, CAMD_E_INVALID, "image channels must be 1, 3 or 4, not %d",
                          in->channels);
  return 0;
}

int camd_image_to_rgb(const camd_image *in, camd_image *out, camd_error *err) {
  int rc = check_image(in, err);
  if (rc) return rc;
  rc = camd_image_alloc(out, in->width, in->height, 3, err);
  if (rc) return rc;
  size_t n = in->width * in->height;
  const unsigned char *s = in->pixels;
  unsigned char *d = out->pixels;
  int c = in->channels;
  for (size_t i = 0; i < n; i++) {
    if (c == 1) {
      d[3 * i] = d[3 * i + 1] = d[3 * i + 2] = s[i];
    } else {
      d[3 * i] = s[c * i];
      d[3 * i + 1] = s[c * i + 1];
      d[3 * i + 2] = s[c * i + 2];
    }
  }
  return 0;
}

int camd_image_to_gray(const camd_image *in, camd_image *out, camd_error *err) {
  int rc = check_image(in, err);
  if (rc) return rc;
  rc = camd_image_alloc(out, in->width, in->height, 1, err);
  if (rc) return rc;
  size_t n = in->width * in->height;
  const unsigned char *s = in->pixels;
  unsigned char *d = out->pixels;
  int c = in->channels;
  if (c == 1) {
    memcpy(d, s, n);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    uint32_t l = (uint32_t)s[c * i] * 19595u + (uint32_t)s[c * i + 1] * 38470u +
                 (uint32_t)s[c * i + 2] * 7471u + 0x8000u;
    d[i] = (unsigned char)(l >> 16);
  }
  return 0;
}
