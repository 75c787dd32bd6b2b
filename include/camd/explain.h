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

typedef enum camd_output_activation {
  CAMD_ACTIVATION_SOFTMAX = 0,
  CAMD_ACTIVATION_SIGMOID = 1,
  CAMD_ACTIVATION_NONE = 2
} camd_output_activation;

/* One model entry of the configuration. Strings are caller-owned (copied by camd_explainer_open). */
typedef struct camd_model_config {
  char name[CAMD_NAME_MAX];      /* URL-safe: [A-Za-z0-9._-]+ */
  char path[4096];               /* .onnx file */
  char labels_path[4096];        /* one label per line; "" = none (labels are "class_<i>") */
  camd_preprocess_opts preprocess;
  char default_layer[CAMD_LAYER_NAME_MAX]; /* "" = the engine's suggestion */
  char default_method[32];       /* "" = gradcam */
  camd_output_activation activation;
} camd_model_config;

/* Fills defaults (ImageNet preprocessing, softmax, gradcam). */
void camd_model_config_init(camd_model_config *cfg);

typedef struct camd_explainer camd_explainer;

/* Loads the model and labels; checks the default layer and method. Caller owns the result
 * (camd_explainer_release). Errors name the model and the file. */
int camd_explainer_open(const camd_model_config *cfg, camd_explainer **out, camd_error *err);
camd_explainer *camd_explainer_retain(camd_explainer *e);
void camd_explainer_release(camd_explainer *e);
const camd_model_config *camd_explainer_config(const camd_explainer *e);
camd_model *camd_explainer_model(const camd_explainer *e); /* borrowed */
const char *camd_explainer_sha256(const camd_explainer *e); /* hex of the .onnx file */
int camd_explainer_num_labels(const camd_explainer *e);
const char *camd_explainer_label(const camd_explainer *e, int index); /* NULL if out of range */
const char *camd_explainer_default_layer(const camd_explainer *e);
/* Metadata JSON of the model (input, preprocessing, labels count, layers usable as targets with
 * shapes, default layer and method, supported methods). malloc'd text; caller frees. */
char *camd_explainer_info_json(const camd_explainer *e);

typedef enum camd_explain_output {
  CAMD_OUT_OVERLAY = 1 << 0, /* base64 PNG: heatmap over the image at the original size */
  CAMD_OUT_HEATMAP = 1 << 1, /* base64 PNG: colour heatmap alone at the original size */
  CAMD_OUT_MASK = 1 << 2,    /* base64 PNG: binary mask (>= threshold × max) */
  CAMD_OUT_RAW = 1 << 3,     /* the map's values at layer resolution (width, height, values) */
  CAMD_OUT_BBOX = 1 << 4     /* peak and bounding box (original image coordinates) */
} camd_explain_output;

#define CAMD_MAX_TARGETS 16

typedef struct camd_explain_options {
  char method[32];                         /* "gradcam", "cam", ... */
  char layer[CAMD_LAYER_NAME_MAX];         /* "" = model default */
  /* Targets: explicit class indices, or top-k when n_targets == 0. */
  int targets[CAMD_MAX_TARGETS];
  int n_targets;
  int target_topk;                         /* explain the k best classes (default 1) */
  int topk;                                /* predictions to report (default 5) */
  char score[16];                          /* "logit" (default), "softmax", "sigmoid" */
  bool relu;                               /* default true */
  char normalize[16];                      /* "minmax" (default) or "none" */
  bool aug_smooth, eigen_smooth;
  camd_colormap colormap;                  /* default jet */
  float alpha;                             /* overlay opacity, default 0.5 */
  unsigned outputs;                        /* CAMD_OUT_* bits, default OVERLAY|BBOX */
  float bbox_threshold;                    /* default 0.2 */
  int n_samples;                           /* noise-based methods (default 16) */
  float noise_std;                         /* default 0.2 (in input units) */
  uint64_t seed;                           /* default 0: same request, same map */
} camd_explain_options;

/* Defaults, taking the default method and layer from the explainer (e may be NULL). */
void camd_explain_options_init(camd_explain_options *o, const camd_explainer *e);
/* Sets one option from text: keys method, layer, target (index, label, comma list, or "topK"),
 * topk, score, relu, normalize, aug_smooth, eigen_smooth, colormap, alpha, outputs (comma list),
 * bbox_threshold, n_samples, noise_std, seed. Labels are resolved against e (may be NULL).
 * Unknown keys and bad values are CAMD_E_INVALID with a message naming the key, the value and
 * the valid choices. */
int camd_explain_options_set(camd_explain_options *o, const camd_explainer *e, const char *key,
                             const char *value, camd_error *err);

typedef struct camd_explain_ctx camd_explain_ctx;
/* max_batch: the largest number of images one call may carry. */
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
  char *json;              /* malloc'd JSON text of the result (one object per image, or an
                              array when n_inputs > 1); caller frees */
  size_t json_len;
  unsigned char *png;      /* first image's first overlay PNG (when asked for), malloc'd */
  size_t png_len;
  int status;              /* 0, or the per-image failure status when only some failed */
} camd_explain_result;

/* Explains (or, with predict_only, only classifies) n_inputs images as one batch (n_inputs <=
 * ctx max batch). Every image must decode; the first failure fails the call with its status
 * (400 bad image, 413 limits, 415 media, 422 unusable) and a message naming the image index.
 * JSON per image: model {name, sha256}, camd_version, method, layer, image {width, height},
 * predictions [{index, label, score, probability}], explanations [{index, label, score,
 * overlay?, heatmap?, mask?, raw?{width,height,values}, peak?{x,y,value}, bbox?{x0,y0,x1,y1}}],
 * options (echo), timings_ms {decode, preprocess, forward, backward, cam, render, total}. */
int camd_explain_run(camd_explain_ctx *ctx, camd_explainer *e, const camd_explain_options *o,
                     const camd_explain_input *inputs, int n_inputs, bool predict_only,
                     const camd_explain_limits *limits, camd_explain_result *result,
                     camd_error *err);
void camd_explain_result_free(camd_explain_result *r);

/* ---- configuration file (config/camd.json) ---- */
typedef struct camd_server_config camd_server_config; /* defined by server/ */

/* Parses one model entry object given as JSON text (used by the CLI's --config/--name and the
 * server's config loader). Unknown keys are errors naming the key. Paths are resolved relative
 * to base_dir when not absolute. */
int camd_model_config_from_json_text(const char *json_text, const char *base_dir,
                                     camd_model_config *cfg, camd_error *err);

#endif
