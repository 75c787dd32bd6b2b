/* camd explain pipeline: the one path both front ends (CLI, HTTP server) use.
 *
 *   image bytes → decode → preprocess → forward (+ backward to the layer) → CAM method →
 *   ReLU/normalise → upsample to the original size → colormap + overlay → PNG
 *
 * Objects:
 *   camd_model_config  what a config file says about one model (plain data, caller-owned).
 *   camd_explainer     a loaded model + labels + config: immutable, reference-counted, shared by
 *                      every worker thread without locks.
 *   camd_explain_ctx   per-worker state (one engine session per explainer, created lazily and
 *                      reused; scratch buffers). One thread at a time.
 *   camd_explain_options  the options of one request, typed (enums and numbers), parsed from
 *                      key/value strings (CLI flags, query strings, multipart fields and JSON
 *                      bodies all go through camd_explain_options_set).
 *   camd_explain_result   what one run produced, per image (camd_explain_item): predictions,
 *                      one map per target class with its pictures (PNG bytes), the image and
 *                      input geometry, a status; plus the run's timings. Plain data owned by the
 *                      caller (camd_explain_result_free).
 * JSON: camd_explain_item_json writes one item the way the README documents it; it is the only
 * place the result's JSON is written (the server adds its envelope: request_id, KServe's
 * {"predictions": [...]}). Only explain/, server/ and cli/ include <jansson.h>.
 */
#ifndef CAMD_EXPLAIN_H
#define CAMD_EXPLAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/cam.h"
#include "camd/dicom.h"
#include "camd/engine.h"
#include "camd/image.h"
#include "camd/status.h"

struct json_t; /* jansson's; explain.h does not include <jansson.h> */

#define CAMD_NAME_MAX 128
#define CAMD_LAYER_NAME_MAX 512

/* How output 0's values become probabilities. AUTO (the default): the model's own activation
 * when its graph ends in one (Softmax, Sigmoid, LogSoftmax; see camd_model_score_activation),
 * else softmax. An explicit value must agree with an activation the graph ends in. */
typedef enum camd_output_activation {
  CAMD_ACTIVATION_SOFTMAX = 0,
  CAMD_ACTIVATION_SIGMOID = 1,
  CAMD_ACTIVATION_NONE = 2,
  CAMD_ACTIVATION_AUTO = 3
} camd_output_activation;

/* What output 0 of a model is (config key task). AUTO (the default): SEGMENTATION when output
 * 0 is 4-D [N, K, H, W] with H × W > 1, else CLASSIFICATION. An embedding cannot be told from
 * logits by its shape: it needs task "embedding". */
typedef enum camd_model_task {
  CAMD_TASK_AUTO = 0,
  CAMD_TASK_CLASSIFICATION = 1,
  CAMD_TASK_SEGMENTATION = 2, /* output [N, K, H, W]: K class score planes */
  CAMD_TASK_EMBEDDING = 3     /* output [N, D] (any shape): one D-vector per image */
} camd_model_task;
/* "auto", "classification", "segmentation", "embedding"; NULL out of range. */
const char *camd_model_task_name(camd_model_task t);

/* One model entry of the configuration. Plain data, caller-owned (copied by
 * camd_explainer_open). */
typedef struct camd_model_config {
  char name[CAMD_NAME_MAX]; /* URL-safe: [A-Za-z0-9._-]+ */
  char path[4096];          /* .onnx file */
  char labels_path[4096];   /* one label per line; "" = none (labels are "class_<i>") */
  camd_preprocess_opts preprocess;
  char default_layer[CAMD_LAYER_NAME_MAX]; /* "" = the engine's suggestion */
  char default_method[32];                 /* "" = gradcam */
  camd_output_activation activation;
  /* UID root of the Secondary Captures written for this model (config key dicom_uid_root; ""
   * = the server's dicom_uid_root, else "2.25": UUID-derived UIDs). */
  char dicom_uid_root[41];
  /* Optional checks against the loaded model ("" = not checked): the names of input 0 and
   * output 0 (config keys input_name / output_name). */
  char input_name[CAMD_LAYER_NAME_MAX];
  char output_name[CAMD_LAYER_NAME_MAX];
  /* Layout of the image input (config key layout: "NCHW", "NHWC"; UNKNOWN = "auto", from the
   * input's shape); the preprocessing writes it. */
  camd_layout layout;
  /* Layout of explained layers the graph does not decide (config key layer_layout; UNKNOWN =
   * the graph's; the request option of the same name overrides it). */
  camd_layout layer_layout;
  /* Whether the config / CLI gave the width / height (input_size): only given sizes fix a
   * model's free (symbolic) height and width at load. */
  bool width_given, height_given;
  /* Load limits (the server's max_model_bytes / max_tensor_elements; 0 = the ONNX loader's
   * defaults): bytes of the .onnx file and, separately, of its external data; elements of any one
   * tensor the model declares (camd_onnx_options). Not keys of a model entry. */
  size_t max_model_bytes;
  size_t max_tensor_elements;
  camd_model_task task; /* config key task (AUTO) */
} camd_model_config;

/* Fills defaults (ImageNet preprocessing, activation auto, gradcam). */
void camd_model_config_init(camd_model_config *cfg);

typedef struct camd_explainer camd_explainer;

/* Loads the model and labels; checks the default layer and method. Caller owns the result
 * (camd_explainer_release). The model's free height / width are fixed from the config's
 * input_size (an error naming input_size when it was not given), and its input layout is the
 * config's layout or the one the loader detects. Checks: one 4-D float input whose channels,
 * height and width (read in its layout) equal the preprocessing's; output 0 has 1..1000000 values
 * per image; the labels file has exactly that many lines (UTF-8, none empty, <= 1024 bytes each; a
 * BOM, CRLF and a missing final newline are accepted); input_name/output_name when set. The sha256
 * is of the .onnx file's bytes (read once, then loaded from memory). Errors name the model and the
 * file: CAMD_E_NOT_FOUND/IO (files), CAMD_E_FORMAT (not ONNX), CAMD_E_UNSUPPORTED (ops, several
 * inputs), CAMD_E_INVALID (mismatches, labels, defaults). */
int camd_explainer_open(const camd_model_config *cfg, camd_explainer **out, camd_error *err);
camd_explainer *camd_explainer_retain(camd_explainer *e);
void camd_explainer_release(camd_explainer *e);
const camd_model_config *camd_explainer_config(const camd_explainer *e);
camd_model *camd_explainer_model(const camd_explainer *e);  /* borrowed */
const char *camd_explainer_sha256(const camd_explainer *e); /* hex of the .onnx file */
int camd_explainer_num_labels(const camd_explainer *e);
/* The activation that turns output 0 into probabilities (AUTO resolved: softmax, sigmoid or
 * none), and whether it was found in the graph (then output 0 holds probabilities, or
 * log-probabilities, and explanations differentiate the logits fed into it by default). */
camd_output_activation camd_explainer_activation(const camd_explainer *e, bool *from_graph);
/* Label of class index (from the file, else "class_<i>"); NULL if out of range. */
const char *camd_explainer_label(const camd_explainer *e, int index);
/* The config's default_layer, else the engine's suggestion; "" when the model has none. */
const char *camd_explainer_default_layer(const camd_explainer *e);
/* Metadata JSON of the model: {name, sha256, camd_version, input {name, shape}, output {name,
 * shape, activation}, preprocessing {resize, resize_shorter?, width, height, channels,
 * channel_order, scale, mean, std}, task (classification | segmentation | embedding), num_labels,
 * labels_file (bool), labels [..], layers [{name, shape, op}] (usable as targets), default_layer
 * (or null), default_method, methods [{name, description, needs_gradient}], colormaps [..], outputs
 * [..]}. malloc'd text; caller frees (NULL when out of memory). Thread-safe. */
char *camd_explainer_info_json(const camd_explainer *e);

/* Outputs a request may ask for: X(enum suffix, name as users type it). Bit i of
 * camd_explain_options.outputs is the i-th entry. */
#define CAMD_EXPLAIN_OUTPUTS(X)                                                                    \
  X(OVERLAY, "overlay") /* PNG: heatmap over the image at the original size */                     \
  X(HEATMAP, "heatmap") /* PNG: colour heatmap alone at the original size */                       \
  X(MASK, "mask")       /* PNG: binary mask (>= threshold × max) */                               \
  X(RAW, "raw")         /* the map at layer resolution, after relu/normalize, before upsampling */ \
  X(BBOX, "bbox")       /* peak and bounding box (original image coordinates): largest             \
                           8-connected region >= bbox_threshold × max */                          \
  X(DICOM, "dicom")     /* DICOM Secondary Capture of the overlay, one per map (DICOM input only;  \
                           not part of "all") */

/* clang-format off */
enum {
#define CAMD__OUT_INDEX(e, name) CAMD__OUT_INDEX_##e,
  CAMD_EXPLAIN_OUTPUTS(CAMD__OUT_INDEX)
#undef CAMD__OUT_INDEX
  CAMD_OUT_COUNT
};
typedef enum camd_explain_output {
#define CAMD__OUT_BIT(e, name) CAMD_OUT_##e = 1u << CAMD__OUT_INDEX_##e,
  CAMD_EXPLAIN_OUTPUTS(CAMD__OUT_BIT)
#undef CAMD__OUT_BIT
} camd_explain_output;
/* clang-format on */
#define CAMD_OUT_ALL ((1u << CAMD_OUT_COUNT) - 1u)
/* What outputs=all asks for: every picture output (not the DICOM object). */
#define CAMD_OUT_ALL_PICTURES (CAMD_OUT_ALL & ~CAMD_OUT_DICOM)
/* Name of output bit i (0..CAMD_OUT_COUNT-1), e.g. "overlay"; NULL out of range. */
const char *camd_explain_output_name(int i);

/* What the explanation differentiates. */
typedef enum camd_explain_score {
  CAMD_EXPLAIN_SCORE_LOGIT = 0, /* the logits (for a model that ends in its own softmax or
                                   sigmoid, the values fed into it); the default */
  CAMD_EXPLAIN_SCORE_SOFTMAX,   /* softmax of the logits */
  CAMD_EXPLAIN_SCORE_SIGMOID,   /* sigmoid of the class logit */
  CAMD_EXPLAIN_SCORE_OUTPUT,    /* output 0 as it is */
  CAMD_EXPLAIN_SCORE_COUNT
} camd_explain_score;
/* "logit", "softmax", "sigmoid", "output"; NULL out of range. */
const char *camd_explain_score_name(camd_explain_score s);

/* How a map is scaled before it is drawn. */
typedef enum camd_explain_normalize {
  CAMD_NORMALIZE_MINMAX = 0, /* per map to 0..1 (the default) */
  CAMD_NORMALIZE_NONE,       /* raw values, comparable across images */
  CAMD_NORMALIZE_COUNT
} camd_explain_normalize;
/* "minmax", "none"; NULL out of range. */
const char *camd_explain_normalize_name(camd_explain_normalize n);

#define CAMD_MAX_TARGETS 16

/* The options of one request. Plain data; compare two with camd_explain_options_equal. */
typedef struct camd_explain_options {
  camd_cam_method method;          /* default gradcam (or the model's default_method) */
  char layer[CAMD_LAYER_NAME_MAX]; /* "" = model default */
  camd_layout layer_layout;        /* the layer's layout (UNKNOWN = the graph's, else the
                                      config's layer_layout); must agree with the graph's */
  /* Targets: explicit class indices, or top-k when n_targets == 0. */
  int targets[CAMD_MAX_TARGETS];
  int n_targets;
  int target_topk;                  /* explain the k best classes (default 1) */
  int topk;                         /* predictions to report (default 5) */
  camd_explain_score score;         /* default logit */
  bool relu;                        /* default true */
  camd_explain_normalize normalize; /* default minmax */
  bool aug_smooth, eigen_smooth;
  camd_colormap colormap; /* default jet */
  float alpha;            /* overlay opacity, default 0.5 */
  unsigned outputs;       /* CAMD_OUT_* bits, default OVERLAY|BBOX */
  float bbox_threshold;   /* default 0.2 */
  int n_samples;          /* noise-based methods (default 16) */
  float noise_std;        /* default 0.2 (in input units) */
  uint64_t seed;          /* default 0: same request, same map */
  float finer_alpha;      /* finercam: α of the comparison score (default 1; 0..100) */
  int finer_compare;      /* finercam: number of nearest classes compared (default 3; 1..64) */
  float kpca_gamma;       /* kpcacam: RBF γ (option gamma; 0 = "auto", 1 / channels) */
  /* Gray sources with more than 8 bits (DICOM monochrome frames, gray PNG): the window that
   * maps their values to display levels (default: the DICOM file's own, "dicom"; a PNG keeps
   * its high byte unless a window is given). The model and the overlay see the same image. */
  camd_window window;
  uint32_t frame; /* DICOM multi-frame: 0-based frame (default 0) */
  /* Quality metrics computed for every map (CAMD_METRIC_* bits; default none): option quality
   * (true = all) or metrics (a list). They cost extra forwards (camd_explain_quality_forwards). */
  unsigned metrics;
  int quality_steps; /* deletion / insertion steps N (default 16) */
  float road_noise;  /* ROAD: std of the noise added to imputed values (default 0.01) */
  /* Segmentation models: the region whose class score is explained (option box, in image
   * pixels, inclusive; has_box false = mask=argmax, or the image's mask PNG when it has one). */
  bool has_box;
  int box[4]; /* x0, y0, x1, y1 */
} camd_explain_options;

/* Quality metrics (option metrics / quality): X(enum suffix, name). */
#define CAMD_EXPLAIN_METRICS(X)     \
  X(DROP_INCREASE, "drop_increase") \
  X(DELETION, "deletion")           \
  X(INSERTION, "insertion")         \
  X(ROAD, "road")

/* clang-format off */
enum {
#define CAMD__METRIC_BIT(e, name) CAMD_METRIC_BIT_##e,
  CAMD_EXPLAIN_METRICS(CAMD__METRIC_BIT)
#undef CAMD__METRIC_BIT
  CAMD_METRIC_COUNT
};
/* clang-format on */
#define CAMD_METRIC_DROP_INCREASE (1u << CAMD_METRIC_BIT_DROP_INCREASE)
#define CAMD_METRIC_DELETION (1u << CAMD_METRIC_BIT_DELETION)
#define CAMD_METRIC_INSERTION (1u << CAMD_METRIC_BIT_INSERTION)
#define CAMD_METRIC_ROAD (1u << CAMD_METRIC_BIT_ROAD)
#define CAMD_METRIC_ALL \
  (CAMD_METRIC_DROP_INCREASE | CAMD_METRIC_DELETION | CAMD_METRIC_INSERTION | CAMD_METRIC_ROAD)
#define CAMD_QUALITY_STEPS_MAX 1024
/* ROAD's removal fractions: 10 %, 20 %, ..., 90 % of the input's pixels (Rong et al. 2022). */
#define CAMD_ROAD_LEVELS 9
/* Largest number of quality forwards per image when the caller gives no limit. */
#define CAMD_QUALITY_FORWARDS_DEFAULT 1024
/* Masked forwards one image may cost a CAM method (camd_explain_limits.max_cam_forwards). */
#define CAMD_CAM_FORWARDS_DEFAULT 8192
/* "drop_increase", "deletion", "insertion", "road"; NULL out of range (bit index). */
const char *camd_explain_metric_name(int bit);
/* Extra forwards the metrics of o cost for one map: drop_increase 1, deletion N, insertion N,
 * road 2 x CAMD_ROAD_LEVELS (the unperturbed image's score comes from the explanation's own
 * forward). */
long camd_explain_quality_forwards(const camd_explain_options *o);

/* Defaults (listed above), taking the default method and layer from the explainer (e may be
 * NULL); topk is capped at the model's number of classes. */
void camd_explain_options_init(camd_explain_options *o, const camd_explainer *e);
/* True when a and b ask for the same run (field by field; only the first n_targets targets and
 * the layer text count), so their images may share one camd_explain_run. */
bool camd_explain_options_equal(const camd_explain_options *a, const camd_explain_options *b);
/* Sets one option from text: keys method, layer, target (index, label, comma list, or "topK"),
 * layer_layout (NCHW | NHWC | auto), topk, score, relu, normalize, aug_smooth, eigen_smooth,
 * colormap, alpha, outputs (comma list), bbox_threshold, n_samples, noise_std, seed, window
 * (camd_window_parse: dicom, dicom:N, auto, C,W, lung, mediastinum, bone, brain, soft_tissue),
 * frame (0..1000000; checked against the file when it is decoded), quality (boolean: every
 * metric or none), metrics (comma list of drop_increase, deletion, insertion, road; all; none),
 * quality_steps (1..1024), road_noise (0..1), finer_alpha (finercam's α: number 0..100),
 * finer_compare (finercam's number of compared classes: integer 1..64, fewer than the model's
 * classes), gamma (kpcacam's RBF γ: "auto" = 1 / channels, or a number 1e-9..1e6),
 * box (x0,y0,x1,y1: integers 0..1000000, x0 <= x1,
 * y0 <= y1; segmentation models), mask ("argmax" only: mask PNGs and embedding references are
 * per-image data, camd_explain_input). Labels are
 * resolved against e (may be NULL). Unknown keys and bad values are CAMD_E_INVALID with a message
 * naming the key, the value and the valid choices; on error *o is unchanged. Values are at most
 * 4096 bytes.
 *  - target: "topK" (K = 1..16, <= classes); else the whole text as one label (labels may
 *    contain commas); else a comma list (<= 16, no repeats, spaces around items ignored) of
 *    class indices (0..classes-1) or labels. Labels match exactly first, then ignoring ASCII
 *    case (first match wins). Without e only indices and topK are accepted.
 *  - layer: "" = model default; with e it must be a CAM layer (error lists them, deepest first).
 *  - numbers are strict decimal text (no spaces, hex, inf, nan): topk 1..1000 (<= classes),
 *    alpha and bbox_threshold 0..1, n_samples 1..256, noise_std 0..100, seed 0..2^53-1.
 *  - booleans: true/false/1/0/yes/no/on/off; outputs: overlay,heatmap,mask,raw,bbox,dicom, all
 *    (every picture output, not dicom), none;
 *    score: logit|softmax|sigmoid|output; normalize: minmax|none; colormap: camd_colormap_parse. */
int camd_explain_options_set(camd_explain_options *o, const camd_explainer *e, const char *key,
                             const char *value, camd_error *err);

typedef struct camd_explain_ctx camd_explain_ctx;
/* The most images one call (one engine batch) may carry. */
#define CAMD_EXPLAIN_MAX_BATCH 256
/* max_batch (1..CAMD_EXPLAIN_MAX_BATCH): the largest number of images one call may carry; also
 * the batch of the engine sessions (extra forwards of Score-/Ablation-CAM are batched by it).
 * The ctx keeps one session per explainer used (up to 16, least recently used evicted; sessions
 * of explainers no one else holds any more are dropped at the next run). */
int camd_explain_ctx_create(int max_batch, camd_explain_ctx **out, camd_error *err);
void camd_explain_ctx_destroy(camd_explain_ctx *ctx);

typedef struct camd_explain_input {
  const void *data; /* encoded image bytes (PNG / JPEG / DICOM Part 10), borrowed */
  size_t len;
  /* What this image's maps explain, when the request's options do not say it for every image
   * (all optional, borrowed; NULL / 0 = not given):
   *   target     option target for this image alone (KServe instances[i].target)
   *   box        option box for this image alone (segmentation)
   *   mask       segmentation: PNG bytes of the region (nonzero pixels are inside; size = the
   *              model output's or the model input's width × height)
   *   reference  embedding: the reference vector as text ("0.1,0.2,..." or "[0.1, 0.2, ...]")
   *   reference_image  embedding: an encoded image whose embedding is the reference */
  const char *target;
  const char *box;
  const void *mask;
  size_t mask_len;
  const char *reference;
  const void *reference_image;
  size_t reference_image_len;
} camd_explain_input;

typedef struct camd_explain_limits {
  camd_image_limits image;
  size_t max_frames; /* DICOM NumberOfFrames (0 = camd_dicom_limits_default's) */
  /* Quality metrics: the most extra forwards one image may ask for (its maps x
   * camd_explain_quality_forwards; 0 = CAMD_QUALITY_FORWARDS_DEFAULT). More is CAMD_E_LIMIT. */
  long max_quality_forwards;
  /* Score-CAM, SS-CAM, IS-CAM, Ablation-CAM and Poly-CAM: the most masked forwards one image may
   * cost (each layer's channels, × n_samples for sscam / iscam, × 2 for polycam-plusminus, × 6
   * with aug_smooth; 0 = CAMD_CAM_FORWARDS_DEFAULT). More is CAMD_E_LIMIT, before any work. */
  long max_cam_forwards;
} camd_explain_limits;

/* ---- results ---- */

/* Timed pipeline stages: X(enum suffix, name). The names are the keys of "timings_ms" and the
 * stage label of the server's camd_stage_seconds metric. */
#define CAMD_EXPLAIN_STAGES(X) \
  X(DECODE, "decode")          \
  X(PREPROCESS, "preprocess")  \
  X(FORWARD, "forward")        \
  X(BACKWARD, "backward")      \
  X(CAM, "cam")                \
  X(RENDER, "render")          \
  X(QUALITY, "quality")

/* clang-format off */
typedef enum camd_explain_stage {
#define CAMD__STAGE_ENUM(e, name) CAMD_STAGE_##e,
  CAMD_EXPLAIN_STAGES(CAMD__STAGE_ENUM)
#undef CAMD__STAGE_ENUM
  CAMD_STAGE_COUNT
} camd_explain_stage;
/* clang-format on */
/* "decode", "preprocess", ...; NULL out of range. */
const char *camd_explain_stage_name(camd_explain_stage s);

/* Where one run spent its time (milliseconds, the whole call: every image of the batch). */
typedef struct camd_explain_timings {
  double ms[CAMD_STAGE_COUNT]; /* by camd_explain_stage */
  double total_ms;             /* the whole call, stages and bookkeeping */
  int batch_size;              /* images in the call */
} camd_explain_timings;

/* One class of one image: a prediction, or the target of an explanation. */
typedef struct camd_explain_class {
  int index;
  const char *label;  /* owned by the result's explainer */
  float score;        /* the logit (the value fed into the model's own activation, if any) */
  double probability; /* under the model's activation; NAN for activation "none" */
} camd_explain_class;

/* Bytes of an encoded file (a PNG, or a format-specific object). malloc'd, owned by the result;
 * a consumer may take `data` (set it to NULL) before camd_explain_result_free. */
typedef struct camd_explain_blob {
  unsigned char *data;
  size_t len;
} camd_explain_blob;

/* One explanation: the map of one target class and what the options asked to make of it. */
typedef struct camd_explain_map {
  camd_explain_class target;
  /* Segmentation and embedding targets: what was explained, as static text ("argmax", "box",
   * "mask": segmentation, target.score = Σ mask · output[class] over region_pixels output pixels;
   * "reference", "reference_image": embedding, target.score = the cosine similarity); NULL for a
   * class target. */
  const char *region;
  long region_pixels;
  float *raw; /* CAMD_OUT_RAW: raw_height × raw_width values at layer resolution, after
                 relu/normalize (non-finite values are written as JSON null); else NULL */
  int raw_width, raw_height;
  /* CAMD_OUT_BBOX, in original image pixels: the peak (has_peak false when the map has no
   * finite value) and the box (bbox.found false when no pixel reaches the threshold). */
  bool has_peak;
  size_t peak_x, peak_y;
  float peak_value;
  camd_bbox bbox;
  /* PNGs at the original image size, when asked for (else data NULL). Pixels outside the crop
   * show the photo in the overlay and heat 0 elsewhere. */
  camd_explain_blob mask, heatmap, overlay;
  /* CAMD_OUT_DICOM: the Secondary Capture of the overlay (application/dicom) and its UIDs (the
   * maps of one image share one series). */
  camd_explain_blob dicom;
  camd_dicom_sc_uids dicom_uids;
  /* Quality metrics (options metrics / quality; computed on the model input, see quality.c):
   * `metrics` says which were computed (0: none). Scores are the target's probability under the
   * model's activation (its logit for activation "none"). */
  struct camd_explain_quality {
    unsigned metrics;
    int forwards;        /* extra forwards spent on this map */
    double ms;           /* time spent on this map's metrics */
    double score;        /* on the unperturbed input (the explanation's forward) */
    double masked;       /* drop_increase: on the input multiplied by the normalised map */
    double average_drop; /* 100 x max(0, score - masked) / score (percent; lower is better) */
    bool increase;       /* masked > score (Increase in Confidence; its mean over images) */
    int steps;           /* deletion / insertion: N; curves have N + 1 points */
    double *deletion, *insertion;       /* the curves (malloc'd, owned), NULL when not computed */
    double deletion_auc, insertion_auc; /* lower / higher is better */
    double road_morf[CAMD_ROAD_LEVELS], road_lerf[CAMD_ROAD_LEVELS];
    double road_morf_mean, road_lerf_mean; /* lower / higher is better */
  } quality;
} camd_explain_map;

/* A format-specific output of one image (e.g. a DICOM object beside or instead of the overlay
 * PNG): the JSON carries it base64-encoded under "attachments"."<name>". */
typedef struct camd_explain_attachment {
  const char *name;       /* static text, a JSON key */
  const char *media_type; /* static text, e.g. "application/dicom" */
  camd_explain_blob blob;
} camd_explain_attachment;
#define CAMD_EXPLAIN_MAX_ATTACHMENTS 4

/* What one image of the call produced. */
typedef struct camd_explain_item {
  int status;           /* 0, or why this image failed (the other images are still complete) */
  char *message;        /* status != 0: what failed, without the "image N: " prefix (malloc'd; NULL
                           when out of memory) */
  size_t width, height; /* decoded image, after EXIF orientation */
  camd_image_info info; /* format, orientation, geometry as stored in the file */
  /* DICOM input (info.format == CAMD_IMAGE_FORMAT_DICOM): what the file says (UIDs, geometry;
   * no patient data) and which frame was explained. */
  camd_dicom_info dicom;
  size_t frame;
  /* A window was applied (DICOM monochrome, or a gray PNG with option window): which. */
  bool windowed;
  camd_window_used window;
  size_t input_width, input_height; /* the model input */
  camd_crop crop;                   /* the part of the image (in its pixels) the input covers */
  camd_explain_class *predictions;  /* topk, best first; malloc'd */
  int n_predictions;
  camd_explain_map *maps; /* one per target class, in target order (none with predict_only) */
  int n_maps;
  camd_explain_attachment attachments[CAMD_EXPLAIN_MAX_ATTACHMENTS];
  int n_attachments;
  /* Segmentation models (no predictions): how many pixels of the output grid (seg_width ×
   * seg_height) each class wins (argmax over classes; ties: the lower index), malloc'd. */
  long *seg_pixels;
  int n_seg_classes, seg_width, seg_height;
  /* Embedding models (no predictions): the size and L2 norm of the image's embedding. */
  int embedding_size;
  double embedding_norm;
} camd_explain_item;

/* What one camd_explain_run produced. Owns everything it points to; free with
 * camd_explain_result_free. Read-only for consumers (except taking a blob's data). */
typedef struct camd_explain_result {
  camd_explainer *explainer;    /* retained: model name, sha256, labels, preprocessing */
  camd_explain_options options; /* as run; method is the one used */
  bool predict_only;
  char layer[CAMD_LAYER_NAME_MAX]; /* the CAM layer used ("" with predict_only) */
  camd_explain_item *items;        /* one per input, in input order */
  int n_items;
  camd_explain_timings timings;
} camd_explain_result;

/* Explains (or, with predict_only, only classifies) n_inputs images (1..ctx max batch, else
 * CAMD_E_LIMIT). Options are re-validated against e first. Predictions come from one batched
 * forward when they decide the targets (topK) or with predict_only; explanations run per image
 * (one forward + backward shared by its targets).
 * Images fail one by one: an image that does not decode (CAMD_E_FORMAT 400, CAMD_E_LIMIT 413
 * limits, CAMD_E_MEDIA 415, CAMD_E_UNSUPPORTED 422) or whose explanation fails gets its status
 * and message in its item, and the others are still computed. The call then returns the first
 * failed image's status with err naming it ("image 1: ..."); 0 when every image succeeded.
 * Errors of the call itself (options, n_inputs, out of memory before any image) leave the
 * result empty (n_items 0). Free the result with camd_explain_result_free in every case.
 * With normalize "none" the pictures clip the raw values to [0, 1].
 * One thread per ctx; explainers may be shared. */
int camd_explain_run(camd_explain_ctx *ctx, camd_explainer *e, const camd_explain_options *o,
                     const camd_explain_input *inputs, int n_inputs, bool predict_only,
                     const camd_explain_limits *limits, camd_explain_result *result,
                     camd_error *err);
void camd_explain_result_free(camd_explain_result *r);

/* The JSON of item i of r, with "image"."index" = index (the image's position in the caller's
 * request), as a new jansson reference (NULL when the item failed or out of memory):
 *   model {name, sha256}, camd_version, method, layer (not with predict_only),
 *   image {index, width, height, format, orientation, window? (a gray PNG with option window)},
 *   dicom? (DICOM input: {study/series/sop_instance_uid, sop_class_uid, modality,
 *   transfer_syntax {uid, name}, frame, frames, rows, columns, photometric, pixel_spacing
 *   ([row, column] or null), window (null for colour), maps [{index, label, probability, peak,
 *   bbox}] in the frame's pixels}; no patient data),
 *   input {width, height, crop {x, y, width, height}: the part of the original image the tensor
 *   covers},
 *   predictions [{index, label, score (raw output), probability (model activation; null for
 *   "none")}] (topk, best first),
 *   explanations [{index, label, score, probability, method, layer, raw? {width, height,
 *   values}, peak? {x, y, value}, bbox? {x0, y0, x1, y1, pixels} (inclusive; null if none),
 *   mask?, heatmap?, overlay? (base64 PNGs), secondary_capture? {series_instance_uid,
 *   sop_instance_uid, data (base64 DICOM)}, quality? {score, forwards, ms, drop_increase?
 *   {masked_score, average_drop, increase_in_confidence}, deletion? / insertion? {auc, steps,
 *   curve}, road? {percentiles, morf, lerf, morf_mean, lerf_mean}}}] (not with predict_only),
 *   attachments? {name: base64} (format-specific outputs, when there are any),
 *   options (echo of the effective options, window and frame included), timings_ms {decode,
 * preprocess, forward, backward, cam, render, quality, total, batch_size} (for the whole call).
 * The blobs (mask, heatmap, overlay, secondary_capture data, attachments) are references in the
 * tree; camd_explain_json_text(j, r, ...) writes them as base64. */
struct json_t *camd_explain_item_json(const camd_explain_result *r, int i, int index);
/* Compact JSON text of j with the precision explain's numbers need (9 significant digits);
 * malloc'd, NUL-terminated (caller frees; *len without the NUL); NULL when out of memory.
 * The item JSON stands in for its PNG/DICOM blobs with short references; this writes them as
 * base64, read from r, which must be the result the items of j were made from and still hold
 * its blobs (NULL when j holds no item). The tree itself never holds the base64. */
char *camd_explain_json_text(const struct json_t *j, const camd_explain_result *r, size_t *len);

/* ---- configuration file (config/camd.json) ---- */

/* Parses one model entry object given as JSON text (used by the CLI's --config/--name and the
 * server's config loader). Keys: name (required, [A-Za-z0-9._-]+), path (alias onnx,
 * required), labels (path or null), input_size (N or [width, height]) or width (alias
 * input_width) / height (alias input_height) (1..16384), resize ("stretch"|"shorter"),
 * resize_shorter (alias resize_size, 1..65536), mean / std ([a, b, c] or [a]; std non-zero),
 * scale (non-zero), bgr (bool) or channel_order ("RGB"|"BGR"), channels (1|3), default_layer,
 * default_method (a camd_cam_method name), activation (alias output_activation:
 * "softmax"|"sigmoid"|"none"), input_name, output_name (checked against the model at open),
 * layout ("NCHW" | "NHWC" | "auto"), layer_layout ("NCHW" | "NHWC" | "auto"), task ("auto" |
 * "classification" | "segmentation" | "embedding"), crop ("center"
 * only), interpolation ("bilinear" only). Documentation
 * keys are accepted and ignored: description, training, test_accuracy*, torchvision_*.
 * Unknown keys, duplicate keys, a setting given under two aliases, wrong types and values out
 * of range are CAMD_E_INVALID (CAMD_E_FORMAT for invalid JSON, CAMD_E_LIMIT above 1 MiB) with
 * a message naming the model, the key and the valid values; cfg is untouched on error.
 * Relative paths are resolved against base_dir (NULL or "" = as given). */
int camd_model_config_from_json_text(const char *json_text, const char *base_dir,
                                     camd_model_config *cfg, camd_error *err);
/* Sets one key of a model entry (any key above but name) from its JSON value, with the checks
 * and messages of camd_model_config_from_json_text: the CLI's model flags go through here, so
 * the rules live in one place. Relative paths resolve against base_dir (NULL = as given). The
 * rules across keys are checked after the change (bgr needs 3 channels). On error cfg is
 * unchanged. */
int camd_model_config_set(camd_model_config *cfg, const char *key, struct json_t *value,
                          const char *base_dir, camd_error *err);

#endif
