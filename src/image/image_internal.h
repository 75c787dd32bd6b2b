/* Private declarations shared by the image module's files (decoders, EXIF, resampler). */
#ifndef CAMD_IMAGE_INTERNAL_H
#define CAMD_IMAGE_INTERNAL_H

#include "camd/core.h"
#include "camd/image.h"

/* Checks width x height (as delivered, after orientation) against limits (NULL = defaults).
 * Returns 0 or CAMD_E_LIMIT naming the limit and its value. */
int camd__image_check_limits(const camd_image_limits *limits, size_t width, size_t height,
                             camd_error *err);

/* Format decoders: same contract as camd_image_decode for their format. `out` is empty on
 * entry and on error. */
int camd__png_decode(const unsigned char *data, size_t len, const camd_image_limits *limits,
                     camd_image *out, camd_image_info *info, camd_error *err);
int camd__jpeg_decode(const unsigned char *data, size_t len, const camd_image_limits *limits,
                      camd_image *out, camd_image_info *info, camd_error *err);

/* Reads the EXIF orientation (1..8) from the payload of an APP1 segment (starting with
 * "Exif\0\0"). Returns 1 when absent or malformed. Never reads outside [data, data + len). */
int camd__exif_orientation(const unsigned char *data, size_t len);

/* Applies EXIF orientation `o` (1..8): `*img` is replaced by the upright image (swapped
 * dimensions for 5..8). Returns 0 or CAMD_E_NOMEM (img unchanged). */
int camd__image_orient(camd_image *img, int orientation, camd_error *err);

/* Output dimensions after orientation. */
void camd__oriented_size(int orientation, size_t w, size_t h, size_t *ow, size_t *oh);

/* PIL-compatible BILINEAR resampling of a region: computes the pixels
 * [x0, x0 + out_w) x [y0, y0 + out_h) of `in` resized to rw x rh; pixels outside
 * [0, rw) x [0, rh) are 0. `out` must be empty; becomes out_w x out_h with in->channels. Rows are
 * split over par's threads (NULL: the calling thread); the bytes do not depend on it. */
int camd__resize_region(const camd_image *in, size_t rw, size_t rh, long long x0, long long y0,
                        size_t out_w, size_t out_h, const camd_parallel *par, camd_image *out,
                        camd_error *err);

/* Raw deflate (RFC 1951) of data[0, n) with Huffman codes only (png_deflate.c): blocks of 16 KB,
 * each with its own dynamic code or stored. `last`: the final block ends the stream; otherwise
 * the output ends with an empty stored block (a sync flush), so pieces written this way and
 * concatenated are one stream. out must hold camd__deflate_huffman_bound(n) bytes; returns the
 * bytes written. */
size_t camd__deflate_huffman_bound(size_t n);
size_t camd__deflate_huffman(const unsigned char *data, size_t n, bool last, unsigned char *out);

/* Adler-32 (RFC 1950) of p[0, n) continuing from `adler` (1 for a new stream), as zlib's
 * adler32 (SSSE3 when the CPU has it). camd__adler32_combine: the Adler-32 of two streams one
 * after the other from theirs and the second's length, as zlib's adler32_combine. */
uint32_t camd__adler32(uint32_t adler, const unsigned char *p, size_t n);
uint32_t camd__adler32_combine(uint32_t adler1, uint32_t adler2, size_t len2);

#endif
