/* camd image module: decode PNG/JPEG/DICOM (with EXIF orientation), window high-bit-depth gray
 * values for display, preprocess to a model tensor, and turn a CAM heatmap into pictures
 * (upsample, colormaps, overlay, mask, bbox, PNG encode). DICOM specifics: camd/dicom.h. */
#ifndef CAMD_IMAGE_H
#define CAMD_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/core.h" /* camd_parallel */
#include "camd/status.h"

/* ---- the image type ---------------------------------------------------------------------------
 * 8-bit pixels, row-major, channels interleaved, no row padding: pixel (x, y) channel c is
 * pixels[(y * width + x) * channels + c]. channels is 1 (gray), 3 (RGB) or 4 (RGBA).
 * The struct is caller-owned; `pixels` is malloc'd and owned by the struct: release it with
 * camd_image_free. A zero-initialised camd_image is a valid empty image. Not thread-safe to
 * mutate; concurrent reads are fine. */
typedef struct camd_image {
  size_t width;
  size_t height;
  int channels;
  unsigned char *pixels;
} camd_image;

/* Allocates zero-filled pixels for width x height x channels (1, 3 or 4; width, height >= 1).
 * Any previous content of `img` is NOT freed. Errors: CAMD_E_INVALID, CAMD_E_LIMIT (size
 * overflows), CAMD_E_NOMEM. On error `img` is left empty. */
int camd_image_alloc(camd_image *img, size_t width, size_t height, int channels, camd_error *err);
/* Frees the pixels and resets `img` to empty. Safe on an empty image and on NULL. */
void camd_image_free(camd_image *img);

/* ---- decoding ----------------------------------------------------------------------------------
 */
typedef enum camd_image_format {
  CAMD_IMAGE_FORMAT_UNKNOWN = 0,
  CAMD_IMAGE_FORMAT_PNG = 1,
  CAMD_IMAGE_FORMAT_JPEG = 2,
  CAMD_IMAGE_FORMAT_DICOM = 3
} camd_image_format;

/* Identifies the format from the magic bytes (PNG signature, JPEG SOI + marker, DICOM Part 10
 * "DICM" at offset 128). */
camd_image_format camd_image_sniff(const void *data, size_t len);
/* "png", "jpeg", "dicom" or "unknown". Static string. */
const char *camd_image_format_name(camd_image_format format);

/* Limits checked against the image header BEFORE any pixel memory is allocated. They apply
 * to the image as delivered (after EXIF rotation, so width/height may be swapped with respect
 * to the file's header). A limit of 0 means "no limit" for that field. */
typedef struct camd_image_limits {
  size_t max_width;
  size_t max_height;
  size_t max_pixels; /* width * height */
} camd_image_limits;
/* Defaults: 32768 x 32768, 64 Mi pixels. */
void camd_image_limits_default(camd_image_limits *limits);

/* What the decoder saw in the file (optional output of camd_image_decode). */
typedef struct camd_image_info {
  camd_image_format format;
  size_t file_width; /* as stored in the file, before orientation */
  size_t file_height;
  int file_channels; /* colour components in the file: 1 gray, 2 gray+alpha, 3, 4 (RGBA/CMYK) */
  int bit_depth;     /* 1..16 for PNG (per sample, before conversion), 8 for JPEG, BitsStored for
                        DICOM */
  int orientation;   /* EXIF orientation 1..8 that was applied (1 when absent or not JPEG) */
  bool had_alpha;    /* an alpha channel or tRNS was present and has been dropped */
} camd_image_info;

/* Decodes a PNG, JPEG or DICOM file held in memory into an RGB 8-bit image (out->channels == 3).
 *  - PNG: any bit depth / colour type / interlacing; 16-bit samples are reduced to their high
 *    byte (v >> 8, as PIL does for RGB); gray is replicated to RGB (1/2/4-bit gray scaled to
 *    0..255); palette
 *    expanded; alpha (channel or tRNS) is DROPPED, not composited (same as PIL's
 *    Image.convert('RGB')).
 *  - JPEG: grayscale, YCbCr/RGB, CMYK/YCCK (Adobe inverted CMYK is converted as PIL does:
 *    R = 255 - min(255, C' + K') with the inverted samples); progressive; EXIF orientation
 *    (APP1 "Exif", IFD0 tag 0x0112, values 1..8) is applied so the output is upright. A
 *    malformed EXIF block is ignored (orientation 1), never an error.
 *  - Any libjpeg warning (e.g. truncated data, corrupt entropy data) is an error.
 *  - DICOM Part 10: frame 0 through the whole pixel pipeline of camd_dicom_decode with the
 *    file's own window (CAMD_WINDOW_DEFAULT), gray replicated to RGB; the DICOM limits are
 *    camd_dicom_limits_default with `limits` as the frame limits. Callers that need a frame, a
 *    window, the metadata or the modality values use camd/dicom.h directly. An unsupported
 *    transfer syntax is CAMD_E_MEDIA naming it.
 * `limits` may be NULL (defaults). `info` may be NULL. `out` must be empty (or freed); on
 * success it owns new pixels, on error it stays empty (never a partial image).
 * Errors: CAMD_E_MEDIA (not PNG/JPEG; message names the supported formats), CAMD_E_LIMIT
 * (message names the limit and its value), CAMD_E_FORMAT (corrupt/truncated; carries the
 * library's message), CAMD_E_UNSUPPORTED, CAMD_E_NOMEM, CAMD_E_INVALID.
 * Thread-safe (no shared state). */
int camd_image_decode(const void *data, size_t len, const camd_image_limits *limits,
                      camd_image *out, camd_image_info *info, camd_error *err);

/* Decodes a gray PNG (gray or gray+alpha, 1 to 16 bits, any interlace) to its sample values
 * without conversion: width*height floats, row-major, 0 .. 2^bit_depth - 1 (alpha dropped), in a
 * malloc'd array the caller frees. For the window step (camd_window_gray) on 16-bit PNGs, where
 * camd_image_decode keeps only the high byte. Limits as camd_image_decode (NULL = defaults).
 * Errors: CAMD_E_MEDIA (not a PNG), CAMD_E_UNSUPPORTED (a colour PNG), CAMD_E_LIMIT,
 * CAMD_E_FORMAT, CAMD_E_NOMEM; outputs are NULL/0 on error. Thread-safe. */
int camd_png_decode_gray(const void *data, size_t len, const camd_image_limits *limits,
                         float **values, size_t *width, size_t *height, int *bit_depth,
                         camd_error *err);

/* Converts an image to RGB (3 channels) in place semantics: `out` receives a new image (must be
 * empty); gray is replicated, alpha dropped. */
int camd_image_to_rgb(const camd_image *in, camd_image *out, camd_error *err);
/* Converts to 8-bit luma (1 channel) with ITU-R 601-2 weights exactly as PIL's convert('L'):
 * L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16. `out` must be empty. */
int camd_image_to_gray(const camd_image *in, camd_image *out, camd_error *err);

/* Resizes with PIL's BILINEAR filter (Image.resize(size, Image.BILINEAR)): a triangle filter
 * whose support is scaled by the factor when shrinking (antialiasing), separable,
 * horizontal pass first, 8-bit fixed-point arithmetic. Matches PIL within +-1 level (usually
 * exactly). Any channel count. `out` must be empty. */
int camd_image_resize(const camd_image *in, size_t width, size_t height, camd_image *out,
                      camd_error *err);

/* ---- windowing: high-bit-depth gray values to 8-bit display levels ----------------------------
 * The VOI step of the DICOM pixel pipeline (PS3.3 C.11.2), usable for any gray source whose values
 * have more than 8 bits (DICOM modality values, 16-bit PNG samples). */

typedef enum camd_window_kind {
  /* the source's own VOI transform number `index` (DICOM: VOI LUT Sequence items first, else the
   * WindowCenter/WindowWidth pairs, as pydicom's apply_voi_lut); when the source has none, AUTO,
   * and the result says so (camd_window_used.fallback) */
  CAMD_WINDOW_DEFAULT = 0,
  /* min..max of the frame's values onto 0..255 (LINEAR_EXACT with centre (min+max)/2, width
   * max-min; a constant frame maps to 0) */
  CAMD_WINDOW_AUTO = 1,
  /* centre/width with the DICOM LINEAR function (PS3.3 C.11.2.1.2.1); presets are EXPLICIT */
  CAMD_WINDOW_EXPLICIT = 2
} camd_window_kind;

/* A requested window. Plain value type (no pointers). */
typedef struct camd_window {
  camd_window_kind kind;
  unsigned index; /* DEFAULT: which of the source's VOI transforms, 0 = first */
  double center;  /* EXPLICIT */
  double width;   /* EXPLICIT, >= 1 */
  char name[16];  /* the preset's name when parsed from one ("lung"), else "" */
} camd_window;

/* Parses a window option (case-insensitive names, surrounding spaces ignored):
 *   "dicom" (DEFAULT, index 0), "dicom:N" (DEFAULT, index N), "auto",
 *   "C,W" (EXPLICIT; finite numbers, W >= 1), or a preset: "lung" -600,1500,
 *   "mediastinum" 50,350, "bone" 400,1800, "brain" 40,80, "soft_tissue" 40,400.
 * Errors: CAMD_E_INVALID with a message listing the accepted forms; `out` is untouched. */
int camd_window_parse(const char *text, camd_window *out, camd_error *err);
/* The option's canonical text ("dicom", "dicom:1", "auto", "lung", "40,400") into buf. */
void camd_window_format(const camd_window *w, char *buf, size_t size);

typedef enum camd_voi_function {
  CAMD_VOI_LINEAR = 0,       /* PS3.3 C.11.2.1.2.1: c - 0.5, w - 1 (w >= 1) */
  CAMD_VOI_LINEAR_EXACT = 1, /* PS3.3 C.11.2.1.3.2 (w > 0) */
  CAMD_VOI_SIGMOID = 2       /* PS3.3 C.11.2.1.3.1 (w > 0) */
} camd_voi_function;
/* "LINEAR", "LINEAR_EXACT", "SIGMOID". Static string. */
const char *camd_voi_function_name(camd_voi_function f);

/* A source's own VOI transform: a window or a lookup table (VOI LUT Sequence item). The LUT data
 * is borrowed (not owned) from whoever built the struct. */
typedef struct camd_voi {
  bool is_lut;
  camd_voi_function function; /* window */
  double center, width;       /* window */
  int64_t first_mapped;       /* LUT: input value mapped to data[0] */
  size_t entries;             /* LUT: number of entries (>= 1) */
  int bits;                   /* LUT: output range 0 .. 2^bits - 1 (1..16) */
  const uint16_t *data;       /* LUT: `entries` values */
  char explanation[65];       /* WindowCenterWidthExplanation / LUTExplanation (may be "") */
} camd_voi;

typedef enum camd_window_source {
  CAMD_WINDOW_FROM_FILE_WINDOW = 0, /* the source's WindowCenter/WindowWidth pair `index` */
  CAMD_WINDOW_FROM_FILE_LUT = 1,    /* the source's VOI LUT Sequence item `index` */
  CAMD_WINDOW_FROM_AUTO = 2,        /* min..max of the frame */
  CAMD_WINDOW_FROM_REQUEST = 3      /* explicit centre/width or a preset */
} camd_window_source;

/* The window actually applied (for the JSON answer and the overlay). Plain value type. */
typedef struct camd_window_used {
  camd_window_kind requested;
  camd_window_source source;
  bool fallback;              /* DEFAULT was requested but unusable: AUTO was applied */
  char fallback_reason[128];  /* why (e.g. "the file has no VOI window or VOI LUT") */
  unsigned index;             /* FILE_WINDOW / FILE_LUT: which one */
  camd_voi_function function; /* the function applied (windows; LUT: LINEAR, unused) */
  double center, width;       /* the window applied (NaN for a LUT) */
  char name[16];              /* preset name, or "" */
  char explanation[65];       /* the file's explanation text for that VOI, or "" */
  bool inverted;              /* MONOCHROME1: the display levels were inverted */
} camd_window_used;

/* One VOI transform on n values: out[i] = round(255 * t), t in [0, 1] the transform's output
 * scaled by its output range (window: PS3.3 C.11.2.1.2/3 with y_min = 0, y_max = 1; LUT: entry /
 * (2^bits - 1), inputs below first_mapped take entry 0 and above the table its last entry, the
 * input is floor(value)); then out[i] = 255 - out[i] when `invert`. NaN values give level 0.
 * Errors: CAMD_E_INVALID (bad window width for its function, empty or malformed LUT). */
int camd_voi_apply(const float *values, size_t n, const camd_voi *voi, bool invert,
                   unsigned char *out, camd_error *err);

/* The window step: gray values (width x height, row-major) -> 8-bit gray image (`out`, must be
 * empty) with the requested window. `file_vois` (may be NULL when n_file_vois == 0) are the
 * source's own VOI transforms, used by CAMD_WINDOW_DEFAULT; `invert` (MONOCHROME1) inverts the
 * display levels after the VOI. `used` (may be NULL) receives what was applied.
 * Errors: CAMD_E_INVALID (bad request: EXPLICIT width < 1, non-finite centre; a DEFAULT index
 * beyond the source's VOIs when it has some), CAMD_E_NOMEM. On error `out` stays empty.
 * Thread-safe. */
int camd_window_gray(const float *values, size_t width, size_t height, const camd_window *window,
                     const camd_voi *file_vois, size_t n_file_vois, bool invert, camd_image *out,
                     camd_window_used *used, camd_error *err);

/* ---- preprocessing to a model tensor -----------------------------------------------------------
 */
typedef enum camd_resize_mode {
  /* resize the whole image to width x height (aspect ratio not kept) */
  CAMD_RESIZE_STRETCH = 0,
  /* torchvision Resize(resize_shorter) + CenterCrop((height, width)): shorter side to S,
   * longer side to int(S * long / short); then a centred crop whose offsets are
   * round((resized - crop) / 2) with Python's round-half-to-even; where the crop is larger
   * than the resized image, the missing pixels are 0 (before normalisation), as torchvision
   * pads. */
  CAMD_RESIZE_SHORTER = 1
} camd_resize_mode;

typedef struct camd_preprocess_opts {
  camd_resize_mode mode;
  size_t width;          /* tensor width (W), >= 1 */
  size_t height;         /* tensor height (H), >= 1 */
  size_t resize_shorter; /* S for CAMD_RESIZE_SHORTER, >= 1; ignored for STRETCH */
  float mean[3];         /* per output channel (after bgr reordering); [0] used for gray */
  float std[3];          /* per output channel; must be non-zero and finite */
  float scale;           /* value = (pixel * scale - mean) / std; 1/255 for ToTensor() */
  bool bgr;              /* channel order B, G, R in the tensor (3 channels only) */
  int channels;          /* 3 (RGB/BGR) or 1 (PIL 'L' luma of the RGB image) */
  bool channels_last;    /* write NHWC (the model's layout) instead of NCHW */
} camd_preprocess_opts;

/* Defaults: SHORTER, 224 x 224, S = 256, ImageNet mean (0.485, 0.456, 0.406) and std
 * (0.229, 0.224, 0.225), scale 1/255, RGB, 3 channels. */
void camd_preprocess_opts_default(camd_preprocess_opts *opts);

/* The rectangle of the ORIGINAL image (continuous pixel coordinates: pixel (i, j) covers
 * [i, i+1) x [j, j+1)) that the tensor covers. It may extend beyond the image when the crop
 * is larger than the resized image (padding). */
typedef struct camd_crop {
  double x;
  double y;
  double w;
  double h;
} camd_crop;

/* Resizes/crops `img` (1, 3 or 4 channels; alpha ignored) as `opts` says and writes a float32
 * NCHW tensor with N = 1: out[c * H * W + y * W + x], channels = opts->channels (NHWC with
 * opts->channels_last: out[(y * W + x) * channels + c], the same values). The resize is
 * camd_image_resize's (PIL BILINEAR, on 8-bit values, rounded to 8 bits like torchvision's PIL
 * path), then scale/mean/std. For channels == 1 the image is converted to luma first, then
 * resized (as PIL's img.convert('L').resize(...)).
 * `out_len` is the number of floats available; it must be >= channels * H * W.
 * `crop` (may be NULL) receives the geometry. Errors: CAMD_E_INVALID (bad options, named),
 * CAMD_E_SHAPE (out_len too small), CAMD_E_NOMEM. Thread-safe. */
int camd_preprocess(const camd_image *img, const camd_preprocess_opts *opts, float *out,
                    size_t out_len, camd_crop *crop, camd_error *err);
/* The same with the resize's rows split over par's threads (NULL: the calling thread): the same
 * tensor at any thread count. */
int camd_preprocess_parallel(const camd_image *img, const camd_preprocess_opts *opts,
                             const camd_parallel *par, float *out, size_t out_len, camd_crop *crop,
                             camd_error *err);

/* ---- heatmap post-processing -------------------------------------------------------------------
 * A heatmap is a float array, row-major, h x w (map[y * w + x]). */

/* Maps a heatmap that covers `crop` (in the original image's coordinates, as returned by
 * camd_preprocess) onto an out_w x out_h grid (normally the original image size) by bilinear
 * interpolation with half-pixel centres and edge clamping (cv2.resize INTER_LINEAR, no
 * antialiasing; the same as pytorch-grad-cam's upsampling when the crop is the whole image).
 * Output pixels whose centre falls outside the crop rectangle get `outside` (e.g. 0 or NAN).
 * `out` is caller-owned with out_w * out_h floats. Errors: CAMD_E_INVALID. */
int camd_heatmap_upsample(const float *map, size_t w, size_t h, const camd_crop *crop, size_t out_w,
                          size_t out_h, float outside, float *out, camd_error *err);

typedef enum camd_colormap {
  CAMD_COLORMAP_JET = 0,     /* matplotlib 'jet' (piecewise-linear segment data) */
  CAMD_COLORMAP_TURBO = 1,   /* Google Turbo, Du/Mikhailov's published polynomial approximation */
  CAMD_COLORMAP_VIRIDIS = 2, /* matplotlib 'viridis', Zucker's published 6th-degree fit */
  CAMD_COLORMAP_INFERNO = 3, /* matplotlib 'inferno', Zucker's published 6th-degree fit */
  CAMD_COLORMAP_GRAY = 4     /* black to white */
} camd_colormap;
/* Table entries are rounded to the nearest level (matplotlib truncates: jet and gray differ from
 * matplotlib's bytes by at most 1). The polynomial maps deviate from matplotlib's tables by at
 * most 4 (viridis), 9 (inferno) and 32 (turbo, only near the two ends) levels. */

/* Parses "jet", "turbo", "viridis", "inferno", "gray" (or "grey"). CAMD_E_INVALID otherwise,
 * with a message listing the names. */
int camd_colormap_parse(const char *name, camd_colormap *out, camd_error *err);
const char *camd_colormap_name(camd_colormap cmap);
/* The 256-entry RGB table of a colormap (static, read-only, thread-safe): entry i is the colour
 * of value i / 255. NULL for an unknown colormap. */
const unsigned char *camd_colormap_table(camd_colormap cmap);

/* Colours a heatmap: value v in [0, 1] -> table entry min(255, floor(v * 256)) (matplotlib's
 * lookup). Values below 0 take the first colour and above 1 the last (matplotlib's clipping,
 * documented, not an error); NaN is CAMD_E_INVALID. `out` (must be empty) becomes a w x h
 * RGB image. */
int camd_heatmap_colorize(const float *map, size_t w, size_t h, camd_colormap cmap, camd_image *out,
                          camd_error *err);

/* Alpha-blends `overlay` (RGB) over `base` (RGB or gray; same width/height):
 * out = round((1 - alpha) * base + alpha * overlay), alpha in [0, 1]. `out` must be empty and
 * becomes RGB. Errors: CAMD_E_INVALID, CAMD_E_SHAPE (size mismatch), CAMD_E_NOMEM. */
int camd_image_blend(const camd_image *base, const camd_image *overlay, float alpha,
                     camd_image *out, camd_error *err);

/* The overlay of a heatmap in one pass, without the colorized image in between: pixel i is
 * camd_image_blend's value of camd_heatmap_colorize's colour of map[i] over base (the same
 * bytes), and where map[i] is NaN (outside the explained crop) base's own colour. `out` becomes
 * a malloc'd RGB image of base's size; rows are split over par's threads (NULL: the calling
 * thread), the bytes are the same at any thread count. Errors: CAMD_E_INVALID, CAMD_E_NOMEM. */
int camd_heatmap_overlay(const float *map, const camd_image *base, camd_colormap cmap, float alpha,
                         const camd_parallel *par, camd_image *out, camd_error *err);

/* Encodes an image (1 channel gray, 3 RGB or 4 RGBA; 8-bit) as PNG into a malloc'd buffer the
 * caller frees. level: zlib level 0..9, or -1 for the default (6); levels 0..2 also use one fixed
 * row filter (Average) and zlib's run-length strategy (fast path), higher levels an adaptive
 * filter per row. Errors: CAMD_E_INVALID, CAMD_E_NOMEM. Thread-safe. */
int camd_png_encode(const camd_image *img, int level, unsigned char **data, size_t *len,
                    camd_error *err);
/* The same on the threads par lends (NULL: the calling thread): pieces of rows are compressed
 * in parallel; the bytes are the same whatever the threads. */
int camd_png_encode_parallel(const camd_image *img, int level, const camd_parallel *par,
                             unsigned char **data, size_t *len, camd_error *err);

/* Location of the maximum (first in row-major order on ties; NaN values are skipped).
 * Errors: CAMD_E_INVALID (empty map or all NaN). */
int camd_heatmap_peak(const float *map, size_t w, size_t h, size_t *x, size_t *y, float *value,
                      camd_error *err);

typedef enum camd_bbox_mode {
  /* bounding box of the largest 8-connected component of the above-threshold pixels (the CAM
   * paper's localisation: threshold 0.2 of the max, largest connected component). Ties between
   * equally large components go to the one containing the first pixel in row-major order. */
  CAMD_BBOX_LARGEST_COMPONENT = 0,
  /* bounding box of every pixel above the threshold */
  CAMD_BBOX_ALL = 1
} camd_bbox_mode;

typedef struct camd_bbox {
  bool found;    /* false when no pixel qualifies (e.g. max <= 0) */
  size_t x0, y0; /* inclusive top-left pixel */
  size_t x1, y1; /* inclusive bottom-right pixel */
  size_t pixels; /* pixels in the chosen region */
} camd_bbox;

/* A pixel qualifies when map >= threshold * max(map) and max(map) > 0 (NaN never qualifies).
 * threshold in [0, 1]. Allocates scratch of up to 8*w*h bytes (runs of qualifying pixels, freed
 * before returning). Errors: CAMD_E_INVALID, CAMD_E_NOMEM. */
int camd_heatmap_bbox(const float *map, size_t w, size_t h, float threshold, camd_bbox_mode mode,
                      camd_bbox *box, camd_error *err);

/* Binary mask: a w x h gray image (must be empty on entry), 255 where the pixel qualifies as in
 * camd_heatmap_bbox (map >= threshold * max, max > 0), 0 elsewhere. */
int camd_heatmap_mask(const float *map, size_t w, size_t h, float threshold, camd_image *out,
                      camd_error *err);

#endif
