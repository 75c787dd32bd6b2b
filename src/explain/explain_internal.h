/* explain/ internals: the explainer object and helpers shared by the module's files. */
#ifndef CAMD_EXPLAIN_INTERNAL_H
#define CAMD_EXPLAIN_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/cam.h"
#include "camd/explain.h"

/* Largest labels file accepted (bytes) and longest label (bytes). */
#define CAMD_LABELS_MAX_BYTES ((size_t)16 << 20)
#define CAMD_LABEL_MAX 1024
/* Largest number of outputs (classes) a model may have. */
#define CAMD_EXPLAIN_MAX_CLASSES 1000000
/* Largest output of a segmentation model (classes × height × width per image). */
#define CAMD_EXPLAIN_MAX_SEG_VALUES ((size_t)1 << 24)

struct camd_explainer {
  atomic_int refs;
  uint64_t uid; /* process-unique id: keys the per-ctx sessions */
  camd_model_config cfg;
  camd_model *model;
  char sha256[65];
  char **labels;           /* n_labels strings (from the file, or "class_<i>") */
  int n_labels;            /* == n_classes */
  camd_model_task task;    /* resolved: CLASSIFICATION, SEGMENTATION or EMBEDDING */
  int n_classes;           /* classification: n_outputs; segmentation: K; embedding: 1 */
  int seg_h, seg_w;        /* segmentation: the output planes' height and width */
  int input_id, output_id; /* value ids of model input 0 and output 0 */
  /* Output activation found in the graph (CAMD_SCORES_RAW if none) and the logits: the value fed
   * into it (== output_id when none). Scores and default gradients use the logits; probabilities
   * come from `activation` applied to them (softmax of the logits is the model's own softmax). */
  camd_score_activation graph_activation;
  int logit_id;
  camd_output_activation activation; /* resolved: SOFTMAX, SIGMOID or NONE */
  size_t in_count;                   /* per-sample floats of input 0 */
  int n_outputs;                     /* per-sample count of output 0 */
  int default_layer_id;              /* -1 when the model has no CAM layer */
  char default_layer[CAMD_LAYER_NAME_MAX];
  camd_cam_method default_method;
};

/* The layout of CAM layer `id` of e's model: the graph's, else `want` (a request's
 * layer_layout), else the config's layer_layout; CAMD_E_INVALID naming layer_layout when `want`
 * contradicts the graph or nothing decides. out may be NULL. */
int camd__explain_layer_layout(const camd_explainer *e, int id, camd_layout want, camd_layout *out,
                               camd_error *err);

/* Resolves a target class text (index or label, exact then case-insensitive) against e.
 * Returns the class index or -1. */
int camd__explain_find_label(const camd_explainer *e, const char *text);

/* Checks that `name` is a usable CAM layer of e's model; the error lists the CAM layers. */
int camd__explain_check_layer(const camd_explainer *e, const char *name, int *id, camd_error *err);
/* The `layer` option: one layer or a comma-separated list of up to CAMD_CAM_MAX_LAYERS (fused,
 * camd_cam_compute_layers) into ids[] and *n; each checked as camd__explain_check_layer, errors
 * name the bad item (and the CAM layers); empty items and repeated layers are refused. */
int camd__explain_check_layers(const camd_explainer *e, const char *list, int *ids, int *n,
                               camd_error *err);

/* A float option as JSON with the digits a user typed (7 significant), not its binary
 * expansion (0.2f → 0.2, not 0.200000003). NULL-safe JSON null for non-finite values. */
struct json_t;
struct json_t *camd__json_float(float f);

/* Name of the resize mode / activation as users type them. */
const char *camd__resize_name(camd_resize_mode m);
const char *camd__activation_name(camd_output_activation a);
/* "RGB", "BGR" or "L" (one channel). */
const char *camd__channel_order_name(const camd_preprocess_opts *pp);

/* Quality metrics (quality.c): per-ctx scratch, created on first use. */
typedef struct camd__quality_ws camd__quality_ws;
void camd__quality_ws_free(camd__quality_ws *ws);
/* Computes the metrics o->metrics asks for of one map (lw × lh, after relu/normalize) of class
 * cls on the preprocessed input x (one image), whose logits came from the explanation's forward;
 * the perturbed inputs run on s in batches of its max batch. q's curves are malloc'd (the
 * caller's item owns them, also on error). */
int camd__quality_map(camd__quality_ws **ws, camd_session *s, const camd_explainer *e,
                      const camd_explain_options *o, const float *x, const float *logits, int cls,
                      const float *map, int lw, int lh, struct camd_explain_quality *q,
                      camd_error *err);

/* ---- segmentation and embedding targets (targets.c) ---- */
/* item->seg_pixels from one image's segmentation output `out` (K × H × W). */
int camd__seg_pixels(const camd_explainer *e, const float *out, camd_explain_item *item,
                     camd_error *err);
/* The target of class k for one image of a segmentation model: its region (option box, else the
 * image's mask PNG, else argmax) as a 0/1 mask on the output grid in mask[H × W] (the caller's,
 * alive for the CAM call), *t (weighted sum of plane k) and m's target / region / region_pixels.
 * Errors: CAMD_E_INVALID for a box outside the image, a mask of the wrong size, a region that
 * covers no output pixel; CAMD_E_UNUSABLE for a non-finite score. */
int camd__seg_target(const camd_explainer *e, const camd_explain_options *o,
                     const camd_explain_input *in, const camd_explain_limits *lim, const float *out,
                     size_t img_w, size_t img_h, const camd_crop *crop, int k, float *mask,
                     camd_cam_target *t, camd_explain_map *m, camd_error *err);
/* Parses an embedding reference ("[a, b, ...]" or "a,b,..."): exactly n finite float32 values,
 * not all zero, into dst[n]; CAMD_E_INVALID naming what is wrong. */
int camd__parse_reference(const char *text, float *dst, int n, camd_error *err);

#endif
