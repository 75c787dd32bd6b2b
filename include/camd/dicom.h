/* camd DICOM: decode DICOM Part 10 images (frames, metadata, pixel pipeline) and write Secondary
 * Capture instances of an overlay, behind a C API (the toolkit, DCMTK + OpenJPEG, stays inside
 * src/image/dicom.cc; OpenJPEG decodes JPEG 2000 and High-Throughput JPEG 2000).
 *
 * Pixel pipeline of camd_dicom_decode, in this order (PS3.3 C.7.6.3, C.11):
 *   stored values (BitsAllocated/BitsStored/HighBit/PixelRepresentation, PlanarConfiguration,
 *   YBR_FULL_422 expansion) -> Modality LUT (RescaleSlope/Intercept or Modality LUT Sequence;
 *   monochrome only) -> VOI (window or VOI LUT Sequence, camd_window_gray) -> MONOCHROME1
 *   inversion -> 8-bit gray; colour: YBR_FULL/YBR_FULL_422 -> RGB, samples scaled to 8 bits;
 *   PALETTE COLOR: stored value -> Red/Green/Blue Palette Color LUT entry (values below the first
 *   mapped value take entry 0, beyond the last the last entry), 16-bit entries scaled to 8 bits
 *   as colour samples are (round(v * 255 / 65535)); no Modality LUT or VOI.
 *
 * Privacy: nothing here logs, and camd_dicom_info carries no patient data (only UIDs, geometry and
 * pixel attributes). The patient and study modules stay inside the opaque handle, from which
 * camd_dicom_write_sc copies them into the derived instance. DCMTK's own logger is switched off. */
#ifndef CAMD_DICOM_H
#define CAMD_DICOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/image.h"
#include "camd/status.h"

/* ---- limits -----------------------------------------------------------------------------------
 * Checked against the file's declared attributes BEFORE any pixel data is decoded. 0 = no limit. */
typedef struct camd_dicom_limits {
  size_t max_bytes;        /* size of the Part 10 buffer */
  size_t max_frames;       /* NumberOfFrames */
  camd_image_limits image; /* Columns (width) x Rows (height) of one frame */
} camd_dicom_limits;
/* Defaults: 1 GiB, 4096 frames, camd_image_limits_default. */
void camd_dicom_limits_default(camd_dicom_limits *limits);

/* ---- what the file says (no patient data) ------------------------------------------------------
 * Strings are NUL-terminated, trimmed of DICOM padding; "" when absent. UIDs are kept only when
 * they are valid UIDs (digits and dots, at most 64 characters), otherwise "". */
#define CAMD_DICOM_MAX_WINDOWS 16 /* windows beyond this many are ignored */
typedef struct camd_dicom_info {
  char sop_class_uid[65];
  char sop_instance_uid[65];
  char study_instance_uid[65];
  char series_instance_uid[65];
  char modality[17];
  char transfer_syntax_uid[65];
  char transfer_syntax_name[96]; /* e.g. "JPEG 2000 (Lossless only)" */
  size_t rows;                   /* frame height */
  size_t columns;                /* frame width */
  size_t frames;                 /* NumberOfFrames, 1 when absent */
  int samples_per_pixel;         /* 1 or 3 */
  char photometric[17];          /* MONOCHROME1, MONOCHROME2, RGB, YBR_FULL, YBR_FULL_422, ... */
  int bits_allocated, bits_stored, high_bit, pixel_representation, planar_configuration;
  bool has_pixel_spacing;
  double pixel_spacing[2]; /* PixelSpacing: row spacing (between rows), column spacing, in mm */
  bool has_rescale;
  double rescale_slope, rescale_intercept; /* 1 and 0 when absent */
  char rescale_type[17];                   /* RescaleType ("HU") or "" */
  bool has_modality_lut;                   /* Modality LUT Sequence present (used instead) */
  size_t n_windows;                        /* WindowCenter/WindowWidth pairs */
  double window_center[CAMD_DICOM_MAX_WINDOWS];
  double window_width[CAMD_DICOM_MAX_WINDOWS];
  camd_voi_function voi_function; /* VOILUTFunction, LINEAR when absent */
  size_t n_voi_luts;              /* VOI LUT Sequence items */
  bool has_voi_lut;               /* n_voi_luts > 0 */
} camd_dicom_info;

/* ---- decoding ----------------------------------------------------------------------------------
 */

/* The parsed file (DCMTK data set, pixel module, LUTs, patient/study modules). Opaque; owned by
 * the caller of camd_dicom_open, released with camd_dicom_close. One thread at a time per handle
 * (decoding a frame touches the toolkit's caches); different handles are independent. */
typedef struct camd_dicom camd_dicom;

/* Parses a DICOM Part 10 file held in memory ("DICM" at offset 128; the data is copied, the
 * caller may free it afterwards) and validates everything needed to decode a frame: transfer
 * syntax supported, Pixel Data present, pixel module consistent, limits, and for native
 * (uncompressed) data that Pixel Data holds every declared frame. Pixel data is NOT decoded here.
 * `limits` may be NULL (defaults); `info` may be NULL.
 * Errors (message says what to do):
 *   CAMD_E_MEDIA  no "DICM" magic (not a Part 10 file), or a transfer syntax camd cannot decode
 *                 (the message names its UID and name and lists the supported ones);
 *   CAMD_E_LIMIT  bytes, frames, Columns, Rows or pixels over the limit (named, with its value);
 *   CAMD_E_FORMAT corrupt or truncated file, no Pixel Data, missing or inconsistent pixel
 *                 attributes, Pixel Data shorter than the declared frames;
 *   CAMD_E_UNSUPPORTED valid but not handled (e.g. segmented palette colour LUTs, Float Pixel
 *                 Data, BitsAllocated 12, colour with 1 bit);
 *   CAMD_E_NOMEM, CAMD_E_INVALID (NULL arguments).
 * On error *out is NULL. Thread-safe. */
int camd_dicom_open(const void *data, size_t len, const camd_dicom_limits *limits, camd_dicom **out,
                    camd_dicom_info *info, camd_error *err);
/* Releases the handle. NULL is fine. */
void camd_dicom_close(camd_dicom *dcm);
/* The info filled at open (owned by the handle, valid until close). */
const camd_dicom_info *camd_dicom_get_info(const camd_dicom *dcm);

typedef struct camd_dicom_decode_opts {
  size_t frame; /* 0-based frame index, < info.frames */
  /* monochrome only (a colour or PALETTE COLOR frame with anything but DEFAULT index 0 is
   * CAMD_E_INVALID); zero-initialised = CAMD_WINDOW_DEFAULT index 0 */
  camd_window window;
  bool want_stored; /* also return the stored values (camd_dicom_frame.stored) */
  bool want_values; /* also return the modality values (camd_dicom_frame.values) */
} camd_dicom_decode_opts;

/* One decoded frame. Caller-owned struct; its arrays are malloc'd and owned by it: release with
 * camd_dicom_frame_free. A zero-initialised struct is a valid empty frame. */
typedef struct camd_dicom_frame {
  camd_image image; /* display image: 1 channel (monochrome) or 3 (RGB), same size as the frame */
  size_t frame;     /* which frame */
  int samples;      /* samples per pixel of `stored` (1 or 3) */
  /* stored values, width*height*samples, interleaved, sign-extended per PixelRepresentation;
   * colour samples in `stored_color_model` (YBR_FULL_422 expanded to one Cb/Cr per pixel).
   * NULL unless opts.want_stored. */
  int64_t *stored;
  char stored_color_model[17]; /* colour model of `stored` after decompression (JPEG codecs
                                  convert YBR to RGB), or the photometric of a monochrome frame */
  /* modality values (rescale or Modality LUT applied; the stored value when neither is present),
   * width*height, monochrome only. NULL for colour frames or unless opts.want_values. */
  float *values;
  camd_window_used window; /* monochrome: the window applied; colour: zeroed */
  bool monochrome1;        /* MONOCHROME1: the display levels were inverted */
} camd_dicom_frame;

/* Decodes one frame through the pixel pipeline (see the top of this header). `opts` may be NULL
 * (frame 0, DEFAULT window). `out` must be empty; on error it stays empty.
 * Errors: CAMD_E_INVALID (frame out of range, with the valid range; bad window; a window on a
 * colour frame), CAMD_E_FORMAT
 * (the codec failed: corrupt compressed data, decoded size differs from the declared one),
 * CAMD_E_UNSUPPORTED, CAMD_E_NOMEM. */
int camd_dicom_decode(camd_dicom *dcm, const camd_dicom_decode_opts *opts, camd_dicom_frame *out,
                      camd_error *err);
void camd_dicom_frame_free(camd_dicom_frame *frame);

/* ---- writing a Secondary Capture of an overlay -----------------------------------------------
 * Secondary Capture Image Storage (1.2.840.10008.5.1.4.1.1.7), Explicit VR Little Endian, RGB
 * 8-bit, in the SAME study as the source: the Patient, Clinical Trial Subject, General Study and
 * Patient Study modules (and SpecificCharacterSet) are copied from the source; a new
 * SeriesInstanceUID and SOPInstanceUID are generated under `uid_root`. ImageType
 * DERIVED\SECONDARY, BurnedInAnnotation YES, Source Image Sequence -> the source SOP Class /
 * Instance (and frame number for multi-frame sources), PixelSpacing copied, and the algorithm
 * named in SeriesDescription, DerivationDescription, Derivation Code Sequence, ImageComments and a
 * Contributing Equipment Sequence item. */
typedef struct camd_dicom_sc_opts {
  /* UID root (digits and dots, at most 40 characters) under which the Series and SOP Instance
   * UIDs are generated as root.<random decimal>; NULL or "" -> "2.25" (UUID-derived UIDs,
   * ISO/IEC 9834-8). */
  const char *uid_root;
  const char *model_name;         /* required */
  const char *model_sha256;       /* may be NULL */
  const char *method;             /* required, e.g. "gradcam" */
  const char *layer;              /* may be NULL */
  const char *target;             /* the explained class/label, may be NULL */
  const char *camd_version;       /* required */
  const char *series_description; /* NULL -> "camd <method> <model>" (at most 64 characters) */
  int series_number;              /* 0 -> 9001 */
  int instance_number;            /* 0 -> 1 */
  size_t frame;                   /* the source frame the overlay shows */
  /* A SeriesInstanceUID to reuse (several overlays of one request in one series); NULL or "" ->
   * a new one under uid_root. Must be a valid UID when given. */
  const char *series_instance_uid;
} camd_dicom_sc_opts;

/* True when `root` is usable as camd_dicom_sc_opts.uid_root: digits and dots, no empty component,
 * no leading zeros, at most 40 characters. */
bool camd_dicom_uid_root_valid(const char *root);

typedef struct camd_dicom_sc_uids {
  char series_instance_uid[65];
  char sop_instance_uid[65];
} camd_dicom_sc_uids;

/* Writes the Secondary Capture for `overlay` (RGB or gray 8-bit, exactly info.columns x info.rows;
 * gray is replicated) into a malloc'd buffer the caller frees. Strings from opts are reduced to
 * printable ASCII without backslashes and cut to each attribute's maximum length. `uids` may be
 * NULL. Errors: CAMD_E_INVALID (missing option, bad UID root, overlay size differs from the frame,
 * frame out of range, the source lacks SOP Class/Instance or Study Instance UID), CAMD_E_NOMEM,
 * CAMD_E_INTERNAL (the toolkit failed to encode). Same threading rule as camd_dicom_decode. */
int camd_dicom_write_sc(const camd_dicom *src, const camd_image *overlay,
                        const camd_dicom_sc_opts *opts, unsigned char **data, size_t *len,
                        camd_dicom_sc_uids *uids, camd_error *err);

#endif
