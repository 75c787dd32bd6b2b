/* Private interface between the DICOM toolkit layer (dicom.cc, C++) and the C pixel pipeline
 * (dicom_pixels.c): the pixel module and LUTs read at open, and one frame's raw samples. */
#ifndef CAMD_DICOM_INTERNAL_H
#define CAMD_DICOM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "camd/dicom.h"

#define CAMD__DICOM_MAX_VOI_LUTS 8 /* VOI LUT Sequence items beyond this many are ignored */

/* A Modality or VOI LUT (PS3.3 C.11.1, C.11.2); data malloc'd, owned by the handle. */
typedef struct camd__dicom_lut {
  int64_t first_mapped; /* LUTDescriptor[1], signed when PixelRepresentation is 1 */
  size_t entries;       /* LUTDescriptor[0], 0 read as 65536 */
  int bits;             /* LUTDescriptor[2] */
  uint16_t *data;
  char explanation[65];
} camd__dicom_lut;

/* What the pixel pipeline needs beyond camd_dicom_info (owned by the handle). */
typedef struct camd__dicom_pixmod {
  camd__dicom_lut modality_lut; /* valid when info.has_modality_lut */
  camd__dicom_lut voi_luts[CAMD__DICOM_MAX_VOI_LUTS];
  char window_explanation[CAMD_DICOM_MAX_WINDOWS][65];
  /* PALETTE COLOR: the Red, Green and Blue Palette Color LUTs (PS3.3 C.7.6.3.1.5-6), same
   * entries, first mapped value and bits (8 or 16); valid when `palette` */
  bool palette;
  camd__dicom_lut palette_luts[3];
} camd__dicom_pixmod;

const camd__dicom_pixmod *camd__dicom_get_pixmod(const camd_dicom *dcm);

typedef enum camd__dicom_raw_kind {
  /* DICOM packing: BitsAllocated bits per sample (1, 8, 16, 32), samples interleaved or planar
   * per `planar`; stored value = bits [HighBit - BitsStored + 1, HighBit] of each sample. */
  CAMD__DICOM_RAW_NATIVE = 0,
  /* one int32_t per sample (host order), interleaved, already the stored value (JPEG 2000:
   * OpenJPEG's output with pydicom's sign corrections) */
  CAMD__DICOM_RAW_INT32 = 1
} camd__dicom_raw_kind;

/* One frame's samples as the toolkit hands them over. */
typedef struct camd__dicom_raw {
  camd__dicom_raw_kind kind;
  unsigned char *data; /* malloc'd, owned by the struct (camd__dicom_raw_free) */
  size_t len;          /* bytes in data */
  bool big_endian;     /* NATIVE: samples are big endian (Explicit VR Big Endian files) */
  size_t bit_offset;   /* NATIVE, BitsAllocated 1: the frame's first pixel is bit bit_offset of
                          data[0] (LSB first) */
  bool ybr422_packed;  /* NATIVE YBR_FULL_422: Y1 Y2 Cb Cr per pair of pixels (PS3.3 C.7.6.3.1.2) */
  int planar;          /* NATIVE: 1 when samples are stored plane by plane */
  char color_model[17]; /* photometric of the decoded samples (JPEG codecs turn YBR into RGB) */
} camd__dicom_raw;

/* Fetches (and for compressed syntaxes decompresses) frame `frame` (< info.frames).
 * Errors: CAMD_E_FORMAT (codec failure or a decoded frame of the wrong size, with the toolkit's
 * message), CAMD_E_NOMEM. */
int camd__dicom_raw_frame(camd_dicom *dcm, size_t frame, camd__dicom_raw *out, camd_error *err);
void camd__dicom_raw_free(camd__dicom_raw *raw);

/* The pixel pipeline on a fetched frame (dicom_pixels.c). */
int camd__dicom_pipeline(const camd_dicom_info *info, const camd__dicom_pixmod *pm,
                         const camd__dicom_raw *raw, const camd_dicom_decode_opts *opts,
                         camd_dicom_frame *out, camd_error *err);

/* camd_image_decode's DICOM branch: frame 0, DEFAULT window, RGB output (image.c). */
int camd__dicom_decode_image(const unsigned char *data, size_t len, const camd_image_limits *limits,
                             camd_image *out, camd_image_info *info, camd_error *err);

#ifdef __cplusplus
}
#endif

#endif
