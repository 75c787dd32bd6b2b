/* camd explain pipeline: the one path both front ends (CLI, HTTP server) use.
 *
 *   image bytes → decode → preprocess → forward (+ backward to the layer) → CAM method →
 *   ReLU/normalise → upsample to the original size → colormap + overlay → PNG → base64 → JSON
 *
 * Objects:
 *   camd_model_config  what a config file says about one model (plain data, caller-owned).
 *   camd_explainer     a loaded model + labels + config: immutable, reference-counted, shared by
 *                      every worker thread without locks.
 *   camd_explain_ctx   per-worker state (one engine session per explainer, created lazily and
 *                      reused; scratch buffers). One thread at a time.
 *   camd_explain_options  the options of one request (method, targets, layer, outputs, ...),
 *                      parsed from key/value strings (CLI flags, query strings, multipart fields
 *                      and JSON bodies all go through camd_explain_options_set).
 * Only explain/ and server/ include <jansson.h>; results come back as JSON text.
 */
#ifndef CAMD_EXPLAIN_H
#define CAMD_EXPLAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/engine.h"
#include "camd/image.h"
#include "camd/status.h"

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
 * channel_order, scale, mean, std}, num_labels, labels_file (bool), labels [..], layers [{name,
 * shape, op}] (usable as targets), default_layer (or null), default_method, methods [{name,
 * description, needs_gradient}], colormaps [..], outputs [..]}. malloc'd text; caller frees
 * (NULL when out of memory). Thread-safe. */
char *camd_explainer_info_json(const camd_explainer *e);

typedef enum camd_explain_output {
  CAMD_OUT_OVERLAY = 1 << 0, /* base64 PNG: heatmap over the image at the original size */
  CAMD_OUT_HEATMAP = 1 << 1, /* base64 PNG: colour heatmap alone at the original size */
  CAMD_OUT_MASK = 1 << 2,    /* base64 PNG: binary mask (>= threshold × max) */
  CAMD_OUT_RAW = 1 << 3,     /* the map at layer resolution (width, height, values), after
                                relu/normalize as requested, before upsampling */
  CAMD_OUT_BBOX = 1 << 4     /* peak and bounding box (original image coordinates): largest
                                8-connected region >= bbox_threshold × max */
} camd_explain_output;

#define CAMD_MAX_TARGETS 16

typedef struct camd_explain_options {
  char method[32];                 /* "gradcam", "cam", ... */
  char layer[CAMD_LAYER_NAME_MAX]; /* "" = model default */
  camd_layout layer_layout;        /* the layer's layout (UNKNOWN = the graph's, else the
                                      config's layer_layout); must agree with the graph's */
  /* Targets: explicit class indices, or top-k when n_targets == 0. */
  int targets[CAMD_MAX_TARGETS];
  int n_targets;
  int target_topk;    /* explain the k best classes (default 1) */
  int topk;           /* predictions to report (default 5) */
  char score[16];     /* "logit" (default), "softmax", "sigmoid", "output" */
  bool relu;          /* default true */
  char normalize[16]; /* "minmax" (default) or "none" */
  bool aug_smooth, eigen_smooth;
  camd_colormap colormap; /* default jet */
  float alpha;            /* overlay opacity, default 0.5 */
  unsigned outputs;       /* CAMD_OUT_* bits, default OVERLAY|BBOX */
  float bbox_threshold;   /* default 0.2 */
  int n_samples;          /* noise-based methods (default 16) */
  float noise_std;        /* default 0.2 (in input units) */
  uint64_t seed;          /* default 0: same request, same map */
} camd_explain_options;

/* Defaults (listed above), taking the default method and layer from the explainer (e may be
 * NULL); topk is capped at the model's number of classes. */
void camd_explain_options_init(camd_explain_options *o, const camd_explainer *e);
/* Sets one option from text: keys method, layer, target (index, label, comma list, or "topK"),
 * layer_layout (NCHW | NHWC | auto), topk, score, relu, normalize, aug_smooth, eigen_smooth,
 * colormap, alpha, outputs (comma list), bbox_threshold, n_samples, noise_std, seed. Labels are
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
 *  - booleans: true/false/1/0/yes/no/on/off; outputs: overlay,heatmap,mask,raw,bbox, all, none;
 *    score: logit|softmax|sigmoid; normalize: minmax|none; colormap: camd_colormap_parse. */
int camd_explain_options_set(camd_explain_options *o, const camd_explainer *e, const char *key,
                             const char *value, camd_error *err);

typedef struct camd_explain_ctx camd_explain_ctx;
/* max_batch (1..256): the largest number of images one call may carry; also the batch of the
 * engine sessions (extra forwards of Score-/Ablation-CAM are batched by it). The ctx keeps one
 * session per explainer used (up to 16, least recently used evicted; sessions of explainers
 * no one else holds any more are dropped at the next run). */
int camd_explain_ctx_create(int max_batch, camd_explain_ctx **out, camd_error *err);
void camd_explain_ctx_destroy(camd_explain_ctx *ctx);

typedef struct camd_explain_input {
  const void *data; /* encoded image bytes (PNG / JPEG), borrowed */
  size_t len;
} camd_explain_input;

typedef struct camd_explain_limits {
  camd_image_limits image;
} camd_explain_limits;

typedef struct camd_explain_result {
  char *json; /* malloc'd JSON text of the result (one object per image, or an
                 array when n_inputs > 1); caller frees */
  size_t json_len;
  unsigned char *png; /* first image's first overlay PNG (when asked for), malloc'd */
  size_t png_len;
  int status; /* 0, or the per-image failure status when only some failed */
} camd_explain_result;

/* Explains (or, with predict_only, only classifies) n_inputs images (1..ctx max batch, else
 * CAMD_E_LIMIT). Options are re-validated against e first. Every image must decode; the first
 * failure fails the call with its status (CAMD_E_FORMAT 400 bad image, CAMD_E_LIMIT 413 limits,
 * CAMD_E_MEDIA 415, CAMD_E_UNSUPPORTED 422) and a message naming the image index ("image 1:
 * ..."). Predictions come from one batched forward when they decide the targets (topK) or with
 * predict_only; explanations run per image (one forward + backward shared by its targets).
 * JSON per image (an array of them when n_inputs > 1):
 *   model {name, sha256}, camd_version, method, layer (not with predict_only),
 *   image {index, width, height, format, orientation}, input {width, height, crop {x, y,
 *   width, height}: the part of the original image the tensor covers},
 *   predictions [{index, label, score (raw output), probability (model activation; null for
 *   "none")}] (topk, best first),
 *   explanations [{index, label, score, probability, method, layer, raw? {width, height,
 *   values}, peak? {x, y, value}, bbox? {x0, y0, x1, y1, pixels} (inclusive; null if none),
 *   mask?, heatmap?, overlay? (base64 PNGs at the original size; pixels outside the crop show
 *   the photo in the overlay and heat 0 elsewhere)}],
 *   options (echo of the effective options), timings_ms {decode, preprocess, forward,
 *   backward, cam, render, total, batch_size} (for the whole call).
 * With normalize "none" the pictures clip the raw values to [0, 1]. On error *result is empty.
 * One thread per ctx; explainers may be shared. */
int camd_explain_run(camd_explain_ctx *ctx, camd_explainer *e, const camd_explain_options *o,
                     const camd_explain_input *inputs, int n_inputs, bool predict_only,
                     const camd_explain_limits *limits, camd_explain_result *result,
                     camd_error *err);
void camd_explain_result_free(camd_explain_result *r);

/* ---- configuration file (config/camd.json) ---- */
typedef struct camd_server_config camd_server_config; /* defined by server/ */

/* Parses one model entry object given as JSON text (used by the CLI's --config/--name and the
 * server's config loader). Keys: name (required, [A-Za-z0-9._-]+), path (alias onnx,
 * required), labels (path or null), input_size (N or [width, height]) or width (alias
 * input_width) / height (alias input_height) (1..16384), resize ("stretch"|"shorter"),
 * resize_shorter (alias resize_size, 1..65536), mean / std ([a, b, c] or [a]; std non-zero),
 * scale (non-zero), bgr (bool) or channel_order ("RGB"|"BGR"), channels (1|3), default_layer,
 * default_method (a camd_cam_method name), activation (alias output_activation:
 * "softmax"|"sigmoid"|"none"), input_name, output_name (checked against the model at open),
 * layout ("NCHW" | "NHWC" | "auto"), layer_layout ("NCHW" | "NHWC" | "auto"), crop ("center"
 * only), interpolation ("bilinear" only). Documentation
 * keys are accepted and ignored: description, training, test_accuracy*, torchvision_*.
 * Unknown keys, duplicate keys, a setting given under two aliases, wrong types and values out
 * of range are CAMD_E_INVALID (CAMD_E_FORMAT for invalid JSON, CAMD_E_LIMIT above 1 MiB) with
 * a message naming the model, the key and the valid values; cfg is untouched on error.
 * Relative paths are resolved against base_dir (NULL or "" = as given). */
int camd_model_config_from_json_text(const char *json_text, const char *base_dir,
                                     camd_model_config *cfg, camd_error *err);

#endif
