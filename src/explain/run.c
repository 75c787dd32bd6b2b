/* The explain pipeline for a batch of images (design.md §1), producing a camd_explain_result
 * (its JSON is written by result_json.c).
 *
 * decode (limits; DICOM: the `frame` through the pixel pipeline with the `window`, the handle kept
 * for the Secondary Captures; a gray PNG with a `window`: its samples windowed) → preprocess (crop
 * geometry kept) → predict (or score=output on a model with
 * its own softmax): one batched forward → explain: per image camd_cam_compute (otherwise ONE
 * forward per image: the predictions and, for topK, the target classes come from that forward's
 * logits; then the partial backward per class; the CAM methods take one image at a time) → per
 * map: ReLU/normalise →
 * upsample onto the ORIGINAL image through the crop → peak/bbox/mask → colormap + overlay →
 * PNG bytes in the result.
 *
 * Images fail one by one: a failure while decoding or explaining image i is recorded in item i
 * (status + message) and the other images go on. Images that decoded are packed into the
 * tensor slots 0..n_ok-1 (slot[i]), so the batched forward sees only real images.
 *
 * A camd_explain_ctx belongs to one worker thread. It keeps one engine session per explainer
 * (created on first use, reused), the CAM workspace and the scratch buffers, so a request
 * allocates only its images, pictures and JSON. Sessions of explainers that nobody else holds
 * any more (the server dropped the model) are destroyed at the next run.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "explain/explain_internal.h"

#define CTX_SESSIONS 16
#define PNG_LEVEL 1 /* fast path of camd_png_encode: ~3x faster than 3, a few % larger */

typedef struct ctx_slot {
  camd_explainer *e; /* retained */
  camd_session *s;
  uint64_t used;
} ctx_slot;

struct camd_explain_ctx {
  int max_batch;
  ctx_slot slots[CTX_SESSIONS];
  uint64_t clock;
  camd_cam_workspace *ws;
  float *tensor;
  size_t tensor_cap;
  float *logits;
  size_t logits_cap;
  float *map;
  size_t map_cap;
  float *up;
  size_t up_cap;
  struct rank {
    float v;
    int i;
  } * rank;
  size_t rank_cap;
  camd__quality_ws *quality;
  float *tmasks; /* segmentation targets: one H × W mask per map */
  size_t tmasks_cap;
  float *refvec; /* embedding target: the reference vector */
  size_t refvec_cap;
  float *reftensor; /* embedding target: the reference image, preprocessed */
  size_t reftensor_cap;
};

static int grow(void **p, size_t *cap, size_t n, size_t elem, camd_error *err) {
  if (n <= *cap) return 0;
  size_t bytes;
  if (!camd_size_mul(n, elem, &bytes))
    return camd_error_set(err, CAMD_E_LIMIT, "explain: buffer of %zu items overflows", n);
  void *q = realloc(*p, bytes);
  if (!q) return camd_error_set(err, CAMD_E_NOMEM, "explain: out of memory (%zu bytes)", bytes);
  *p = q;
  *cap = n;
  return 0;
}
#define GROW(ctx, field, n, err) \
  grow((void **)&(ctx)->field, &(ctx)->field##_cap, (n), sizeof(*(ctx)->field), (err))

int camd_explain_ctx_create(int max_batch, camd_explain_ctx **out, camd_error *err) {
  if (!out) return camd_error_set(err, CAMD_E_INVALID, "camd_explain_ctx_create: out is NULL");
  *out = NULL;
  if (max_batch < 1 || max_batch > CAMD_EXPLAIN_MAX_BATCH)
    return camd_error_set(err, CAMD_E_INVALID, "explain: max batch %d is outside 1..%d", max_batch,
                          CAMD_EXPLAIN_MAX_BATCH);
  camd_explain_ctx *ctx = calloc(1, sizeof(*ctx));
  if (!ctx) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  ctx->max_batch = max_batch;
  int rc = camd_cam_workspace_create(&ctx->ws, err);
  if (rc) {
    free(ctx);
    return rc;
  }
  *out = ctx;
  return 0;
}

static void slot_clear(ctx_slot *sl) {
  camd_session_destroy(sl->s);
  camd_explainer_release(sl->e);
  memset(sl, 0, sizeof(*sl));
}

void camd_explain_ctx_destroy(camd_explain_ctx *ctx) {
  if (!ctx) return;
  for (int i = 0; i < CTX_SESSIONS; i++) slot_clear(&ctx->slots[i]);
  camd_cam_workspace_destroy(ctx->ws);
  free(ctx->tensor);
  free(ctx->logits);
  free(ctx->map);
  free(ctx->up);
  free(ctx->rank);
  camd__quality_ws_free(ctx->quality);
  free(ctx->tmasks);
  free(ctx->refvec);
  free(ctx->reftensor);
  free(ctx);
}

/* The worker's session for e: reused when present, else created (dropping sessions of
 * explainers only this ctx still holds, then the least recently used one if all are busy). */
static int get_session(camd_explain_ctx *ctx, camd_explainer *e, camd_session **out,
                       camd_error *err) {
  ctx->clock++;
  ctx_slot *free_slot = NULL, *lru = NULL;
  for (int i = 0; i < CTX_SESSIONS; i++) {
    ctx_slot *sl = &ctx->slots[i];
    if (sl->e == e) {
      sl->used = ctx->clock;
      *out = sl->s;
      return 0;
    }
    if (sl->e && atomic_load(&sl->e->refs) == 1) slot_clear(sl); /* model was dropped */
    if (!sl->e && !free_slot) free_slot = sl;
    if (sl->e && (!lru || sl->used < lru->used)) lru = sl;
  }
  if (!free_slot) {
    slot_clear(lru);
    free_slot = lru;
  }
  camd_session *s = NULL;
  int rc = camd_session_create(e->model, ctx->max_batch, &s, err);
  if (rc) return camd_error_prefix(err, rc, "model '%s': ", e->cfg.name);
  free_slot->e = camd_explainer_retain(e);
  free_slot->s = s;
  free_slot->used = ctx->clock;
  *out = s;
  return 0;
}

static double ms_since(uint64_t t0) {
  return (double)(camd_now_ns() - t0) / 1e6;
}

static int cmp_rank(const void *a, const void *b) {
  const struct rank *x = a, *y = b;
  if (x->v != y->v) return x->v > y->v ? -1 : 1; /* NaN compares equal: index order */
  return (x->i > y->i) - (x->i < y->i);
}

/* The k best classes of one image by output, best first (ties: lower index first; NaN ranks as
 * -inf) in ctx->rank[0, k): a sorted insertion into the k kept so far when k is small against
 * n (ImageNet's top 5 of 1000: ~1000 comparisons instead of a sort's ~10000), else a sort. */
static int rank_classes(camd_explain_ctx *ctx, const float *logits, int n, int k, camd_error *err) {
  int rc = GROW(ctx, rank, (size_t)n, err);
  if (rc) return rc;
  if (k > n) k = n;
  if (k <= 0) return 0;
  if ((int64_t)k * 16 > n) {
    for (int i = 0; i < n; i++)
      ctx->rank[i] = (struct rank){isnan(logits[i]) ? -INFINITY : logits[i], i};
    qsort(ctx->rank, (size_t)n, sizeof(*ctx->rank), cmp_rank);
    return 0;
  }
  int kept = 0;
  for (int i = 0; i < n; i++) {
    const struct rank r = {isnan(logits[i]) ? -INFINITY : logits[i], i};
    if (kept == k && cmp_rank(&r, &ctx->rank[k - 1]) >= 0) continue; /* not better than the last */
    int j = kept < k ? kept++ : k - 1;
    while (j > 0 && cmp_rank(&r, &ctx->rank[j - 1]) < 0) {
      ctx->rank[j] = ctx->rank[j - 1];
      j--;
    }
    ctx->rank[j] = r;
  }
  return 0;
}

/* Probability of class c under the model's output activation (NAN for "none"), from the logits
 * (for a model that ends in its own softmax or sigmoid, the values fed into it: the model's own
 * probabilities, computed once, in double). */
static double probability(camd_output_activation a, const float *logits, int n, int c) {
  if (a == CAMD_ACTIVATION_SIGMOID) return 1.0 / (1.0 + exp(-(double)logits[c]));
  if (a != CAMD_ACTIVATION_SOFTMAX) return NAN;
  double mx = -INFINITY, sum = 0.0;
  for (int i = 0; i < n; i++)
    if (logits[i] > mx) mx = logits[i];
  for (int i = 0; i < n; i++) sum += exp((double)logits[i] - mx);
  return exp((double)logits[c] - mx) / sum;
}

static camd_explain_class class_of(const camd_explainer *e, const float *logits, int c) {
  return (camd_explain_class){c, e->labels[c], logits[c],
                              probability(e->activation, logits, e->n_outputs, c)};
}

/* PNG on the session's threads (pieces of rows; the same bytes at any thread count). */
static int encode_png(const camd_parallel *par, const camd_image *img, camd_explain_blob *out,
                      camd_error *err) {
  return camd_png_encode_parallel(img, PNG_LEVEL, par, &out->data, &out->len, err);
}

/* What a Secondary Capture names: the method and layer of the run. */
typedef struct run_plan_view {
  camd_cam_method method;
  const char *layer;
} run_plan_view;

typedef struct render_args {
  const camd_explain_options *o;
  const camd_image *img;
  const camd_crop *crop;
  bool minmax;
  /* DICOM input: the source (for the Secondary Captures) and the item its maps belong to */
  camd_dicom *dcm;
  const camd_explainer *e;
  const run_plan_view *view;
  camd_explain_item *item;
  int map_index;
  camd_parallel par; /* the session's threads, for the PNGs */
} render_args;

/* Peak and bounding box of the upsampled map (CAMD_OUT_BBOX, and always for DICOM input). */
static int locate(camd_explain_ctx *ctx, const render_args *a, size_t W, size_t H,
                  camd_explain_map *m, camd_error *err) {
  m->has_peak = camd_heatmap_peak(ctx->up, W, H, &m->peak_x, &m->peak_y, &m->peak_value, NULL) == 0;
  return camd_heatmap_bbox(ctx->up, W, H, a->o->bbox_threshold, CAMD_BBOX_LARGEST_COMPONENT,
                           &m->bbox, err);
}

/* The Secondary Capture of one overlay (CAMD_OUT_DICOM): same study as the source, one new series
 * per image shared by its maps (instance numbers 1, 2, ... in map order). */
static int write_sc(const render_args *a, const camd_image *over, camd_explain_map *m,
                    camd_error *err) {
  camd_dicom_sc_opts so;
  memset(&so, 0, sizeof(so));
  so.uid_root = a->e->cfg.dicom_uid_root;
  so.model_name = a->e->cfg.name;
  so.model_sha256 = a->e->sha256;
  so.method = camd_cam_method_name(a->view->method);
  so.layer = a->view->layer;
  so.target = m->target.label;
  so.camd_version = CAMD_VERSION;
  so.instance_number = a->map_index + 1;
  so.frame = a->item->frame;
  if (a->map_index > 0) so.series_instance_uid = a->item->maps[0].dicom_uids.series_instance_uid;
  int rc =
      camd_dicom_write_sc(a->dcm, over, &so, &m->dicom.data, &m->dicom.len, &m->dicom_uids, err);
  return rc ? camd_error_prefix(err, rc, "writing the DICOM Secondary Capture: ") : 0;
}

/* Heatmap and overlay PNGs of the upsampled map (CAMD_OUT_HEATMAP / CAMD_OUT_OVERLAY), and the
 * overlay as a DICOM Secondary Capture (CAMD_OUT_DICOM). Pixels outside the crop (NaN in ctx->up)
 * have no heat: the overlay keeps the photo there, the heatmap colours them as 0. */
static int draw(camd_explain_ctx *ctx, const render_args *a, size_t W, size_t H,
                camd_explain_map *m, camd_error *err) {
  const camd_explain_options *o = a->o;
  int rc = 0;
  if (o->outputs & (CAMD_OUT_OVERLAY | CAMD_OUT_DICOM)) {
    camd_image over = {0};
    rc = camd_heatmap_overlay(ctx->up, a->img, o->colormap, o->alpha, &a->par, &over, err);
    if (!rc && (o->outputs & CAMD_OUT_OVERLAY)) rc = encode_png(&a->par, &over, &m->overlay, err);
    if (!rc && (o->outputs & CAMD_OUT_DICOM) && a->dcm) rc = write_sc(a, &over, m, err);
    camd_image_free(&over);
  }
  if (!rc && (o->outputs & CAMD_OUT_HEATMAP)) {
    size_t npx = W * H;
    for (size_t i = 0; i < npx; i++)
      if (isnan(ctx->up[i])) ctx->up[i] = 0.0f;
    camd_image heat = {0};
    rc = camd_heatmap_colorize(ctx->up, W, H, o->colormap, &heat, err);
    if (!rc) rc = encode_png(&a->par, &heat, &m->heatmap, err);
    camd_image_free(&heat);
  }
  return rc;
}

/* Post-processes one raw map (lw × lh) and fills raw / peak / bbox / mask / heatmap / overlay
 * of m as the options ask. */
static int render_map(camd_explain_ctx *ctx, const render_args *a, const float *raw, int lw, int lh,
                      camd_explain_map *m, camd_error *err) {
  const camd_explain_options *o = a->o;
  size_t count = (size_t)lw * (size_t)lh;
  int rc = GROW(ctx, map, count, err);
  if (rc) return rc;
  memcpy(ctx->map, raw, count * sizeof(float));
  camd_cam_postprocess(ctx->map, count, o->relu, a->minmax);
  if (o->outputs & CAMD_OUT_RAW) {
    if (!(m->raw = malloc(count * sizeof(float))))
      return camd_error_set(err, CAMD_E_NOMEM, "explain: out of memory for the raw map");
    memcpy(m->raw, ctx->map, count * sizeof(float));
    m->raw_width = lw;
    m->raw_height = lh;
  }
  unsigned need_up =
      CAMD_OUT_OVERLAY | CAMD_OUT_HEATMAP | CAMD_OUT_MASK | CAMD_OUT_BBOX | CAMD_OUT_DICOM;
  bool dicom = a->item->info.format == CAMD_IMAGE_FORMAT_DICOM; /* "dicom" reports peak/bbox */
  if (!(o->outputs & need_up) && !dicom) return 0;

  size_t W = a->img->width, H = a->img->height, npx = W * H;
  if ((rc = GROW(ctx, up, npx, err))) return rc;
  rc = camd_heatmap_upsample(ctx->map, (size_t)lw, (size_t)lh, a->crop, W, H, NAN, ctx->up, err);
  if (rc) return rc;
  if (((o->outputs & CAMD_OUT_BBOX) || dicom) && (rc = locate(ctx, a, W, H, m, err))) return rc;
  if (o->outputs & CAMD_OUT_MASK) {
    camd_image mask = {0};
    if ((rc = camd_heatmap_mask(ctx->up, W, H, o->bbox_threshold, &mask, err))) return rc;
    rc = encode_png(&a->par, &mask, &m->mask, err);
    camd_image_free(&mask);
    if (rc) return rc;
  }
  if (!(o->outputs & (CAMD_OUT_OVERLAY | CAMD_OUT_HEATMAP | CAMD_OUT_DICOM))) return 0;
  return draw(ctx, a, W, H, m, err);
}

/* Everything validated before any image is touched. */
typedef struct run_plan {
  camd_cam_method method;
  int layer_ids[CAMD_CAM_MAX_LAYERS]; /* the layer, or the layers fused */
  camd_layout layouts[CAMD_CAM_MAX_LAYERS];
  int n_layers;
  const char *layer;                /* as the option gave it (a comma list when fused) */
  char stages[CAMD_LAYER_NAME_MAX]; /* Poly-CAM given one layer: its stage list, named */
  camd_cam_score score;
  int score_value; /* value the score is read from: the logits, or output 0 for score=output */
  bool minmax;
} run_plan;

static int plan_targets(const camd_explainer *e, const camd_explain_options *o, camd_error *err) {
  if (o->n_targets < 0 || o->n_targets > CAMD_MAX_TARGETS)
    return camd_error_set(err, CAMD_E_INVALID, "option target: %d targets; the limit is %d",
                          o->n_targets, CAMD_MAX_TARGETS);
  for (int i = 0; i < o->n_targets; i++) {
    if (o->targets[i] < 0 || o->targets[i] >= e->n_classes)
      return camd_error_set(err, CAMD_E_INVALID,
                            "option target: class %d is outside 0..%d (model '%s')", o->targets[i],
                            e->n_classes - 1, e->cfg.name);
  }
  if (!o->n_targets &&
      (o->target_topk < 1 || o->target_topk > CAMD_MAX_TARGETS || o->target_topk > e->n_classes))
    return camd_error_set(err, CAMD_E_INVALID, "option target=top%d: K must be within 1..%d",
                          o->target_topk,
                          e->n_classes < CAMD_MAX_TARGETS ? e->n_classes : CAMD_MAX_TARGETS);
  if (o->has_box && e->task != CAMD_TASK_SEGMENTATION)
    return camd_error_set(err, CAMD_E_INVALID,
                          "option box applies to segmentation models; model '%s' is a %s model",
                          e->cfg.name, camd_model_task_name(e->task));
  if (e->task == CAMD_TASK_EMBEDDING && (o->n_targets > 1 || o->target_topk != 1))
    return camd_error_set(err, CAMD_E_INVALID,
                          "option target: model '%s' is an embedding model; its one target is the "
                          "similarity to the reference (option reference or reference_image)",
                          e->cfg.name);
  return 0;
}

/* What segmentation and embedding targets cannot be combined with. */
static int plan_task(const camd_explainer *e, const camd_explain_options *o, camd_error *err) {
  if (e->task == CAMD_TASK_CLASSIFICATION) return 0;
  const char *task = camd_model_task_name(e->task);
  if (o->method == CAMD_CAM_CAM)
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "method cam reads class weights from a classifier's head; model '%s' is "
                          "a %s model: use gradcam or another method",
                          e->cfg.name, task);
  if (o->metrics)
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "quality metrics score a class probability; model '%s' is a %s model",
                          e->cfg.name, task);
  if (o->score != CAMD_EXPLAIN_SCORE_LOGIT && o->score != CAMD_EXPLAIN_SCORE_OUTPUT)
    return camd_error_set(err, CAMD_E_INVALID,
                          "option score=%s: model '%s' is a %s model, whose target is %s of the "
                          "raw output; valid: logit, output",
                          camd_explain_score_name(o->score), e->cfg.name, task,
                          e->task == CAMD_TASK_SEGMENTATION ? "a masked sum" : "a cosine");
  return 0;
}

/* Poly-CAM given one layer (the default one when the request names none): the ends of the
 * model's stages up to it (camd_cam_stage_layers), shallowest dropped while the names do not fit
 * the echo; p->layer then names them. */
static void plan_stage_layers(const camd_explainer *e, run_plan *p) {
  int ids[CAMD_CAM_MAX_LAYERS];
  int n = camd_cam_stage_layers(e->model, p->layer_ids[0], ids, CAMD_CAM_MAX_LAYERS);
  for (int first = 0; first < n; first++) {
    size_t len = 0;
    bool fits = true;
    for (int i = first; i < n && fits; i++) {
      camd_value_info vi;
      fits = camd_model_value_info(e->model, ids[i], &vi) == 0 && vi.name;
      int w = fits ? snprintf(p->stages + len, sizeof(p->stages) - len, "%s%s",
                              i > first ? "," : "", vi.name)
                   : -1;
      fits = w >= 0 && (size_t)w < sizeof(p->stages) - len;
      if (fits) len += (size_t)w;
    }
    if (!fits) continue;
    p->n_layers = n - first;
    memmove(p->layer_ids, ids + first, sizeof(int) * (size_t)p->n_layers);
    p->layer = p->stages;
    return;
  }
}

/* Masked forwards one image costs the plan's method (0 for the gradient and activation
 * methods): the channels of every layer it masks, × n_samples (sscam, iscam), × 2 (both masks of
 * polycam-plusminus), × 6 with aug_smooth (two flips × three intensities). */
static long cam_forwards(const camd_explainer *e, const camd_explain_options *o,
                         const run_plan *p) {
  long per_channel;
  switch (p->method) {
    case CAMD_CAM_SCORECAM:
    case CAMD_CAM_ABLATIONCAM:
    case CAMD_CAM_POLYCAM_PLUS:
    case CAMD_CAM_POLYCAM_MINUS:
      per_channel = 1;
      break;
    case CAMD_CAM_POLYCAM_PLUSMINUS:
      per_channel = 2;
      break;
    case CAMD_CAM_SSCAM:
    case CAMD_CAM_ISCAM:
      per_channel = o->n_samples;
      break;
    default:
      return 0;
  }
  long channels = 0;
  for (int i = 0; i < p->n_layers; i++) {
    camd_value_info vi;
    if (camd_model_value_info(e->model, p->layer_ids[i], &vi)) continue;
    const int axis = p->layouts[i] == CAMD_LAYOUT_NHWC     ? 3
                     : p->layouts[i] == CAMD_LAYOUT_TOKENS ? 2
                                                           : 1;
    if (axis < vi.shape.ndim) channels += (long)vi.shape.dims[axis];
  }
  return channels * per_channel * (o->aug_smooth ? 6 : 1);
}

static int plan_run(const camd_explainer *e, const camd_explain_options *o, bool predict_only,
                    run_plan *p, camd_error *err) {
  memset(p, 0, sizeof(*p));
  p->n_layers = 0;
  p->score_value = e->logit_id;
  p->layer = "";
  if (o->topk < 1 || o->topk > e->n_classes)
    return camd_error_set(err, CAMD_E_INVALID,
                          "option topk=%d: must be within 1..%d (the model's number of classes)",
                          o->topk, e->n_classes);
  if (predict_only) return 0;
  if ((unsigned)o->method >= CAMD_CAM_METHOD_COUNT)
    return camd_error_set(err, CAMD_E_INVALID, "option method: unknown method %d", (int)o->method);
  p->method = o->method;
  p->layer = o->layer[0] ? o->layer : e->default_layer;
  if (!p->layer[0])
    return camd_error_set(err, CAMD_E_UNUSABLE,
                          "model '%s' has no layer camd can use by default; give option layer "
                          "(see the model's \"layers\")",
                          e->cfg.name);
  int rc = camd__explain_check_layers(e, p->layer, p->layer_ids, &p->n_layers, err);
  if (rc) return camd_error_prefix(err, rc, "option layer: ");
  if (p->n_layers == 1 &&
      (p->method == CAMD_CAM_POLYCAM_PLUS || p->method == CAMD_CAM_POLYCAM_MINUS ||
       p->method == CAMD_CAM_POLYCAM_PLUSMINUS))
    plan_stage_layers(e, p);
  for (int i = 0; i < p->n_layers; i++) {
    rc = camd__explain_layer_layout(e, p->layer_ids[i], o->layer_layout, &p->layouts[i], err);
    if (rc) return camd_error_prefix(err, rc, "option layer: ");
  }
  rc = plan_targets(e, o, err);
  if (rc || (rc = plan_task(e, o, err))) return rc;
  switch (o->score) {
    case CAMD_EXPLAIN_SCORE_OUTPUT: /* output 0 as it is (the logits for most models) */
      p->score_value = e->output_id;
      /* fall through */
    case CAMD_EXPLAIN_SCORE_LOGIT:
      p->score = CAMD_SCORE_LOGIT;
      break;
    case CAMD_EXPLAIN_SCORE_SOFTMAX:
      p->score = CAMD_SCORE_SOFTMAX;
      break;
    case CAMD_EXPLAIN_SCORE_SIGMOID:
      p->score = CAMD_SCORE_SIGMOID;
      break;
    default:
      return camd_error_set(
          err, CAMD_E_INVALID,
          "option score: unknown value %d; valid: logit, softmax, sigmoid, output", (int)o->score);
  }
  if ((unsigned)o->normalize >= CAMD_NORMALIZE_COUNT)
    return camd_error_set(err, CAMD_E_INVALID,
                          "option normalize: unknown value %d; valid: "
                          "minmax, none",
                          (int)o->normalize);
  p->minmax = o->normalize == CAMD_NORMALIZE_MINMAX;
  if (!(o->alpha >= 0.0f && o->alpha <= 1.0f) ||
      !(o->bbox_threshold >= 0.0f && o->bbox_threshold <= 1.0f))
    return camd_error_set(err, CAMD_E_INVALID,
                          "options alpha and bbox_threshold must be within 0..1");
  if (o->outputs & ~CAMD_OUT_ALL)
    return camd_error_set(err, CAMD_E_INVALID, "option outputs: unknown bits 0x%x", o->outputs);
  if (o->metrics & ~CAMD_METRIC_ALL)
    return camd_error_set(err, CAMD_E_INVALID, "option metrics: unknown bits 0x%x", o->metrics);
  if (o->metrics && (o->quality_steps < 1 || o->quality_steps > CAMD_QUALITY_STEPS_MAX ||
                     !(o->road_noise >= 0.0f && o->road_noise <= 1.0f)))
    return camd_error_set(err, CAMD_E_INVALID,
                          "options quality_steps (1..%d) and road_noise (0..1) out of range",
                          CAMD_QUALITY_STEPS_MAX);
  return 0;
}

/* Batched forward of n preprocessed images (chunks of the session's max batch): the logits
 * (the values fed into the model's own output activation, if it ends in one). */
static int predict_batch(camd_explain_ctx *ctx, camd_session *s, const camd_explainer *e, int n,
                         double *ms, camd_error *err) {
  int mb = camd_session_max_batch(s);
  camd_forward_opts fo;
  camd_forward_opts_init(&fo);
  fo.retain = &e->logit_id;
  fo.n_retain = 1;
  uint64_t t = camd_now_ns();
  for (int i0 = 0; i0 < n; i0 += mb) {
    int b = n - i0 < mb ? n - i0 : mb;
    int rc = camd_session_forward(s, b, ctx->tensor + (size_t)i0 * e->in_count, &fo, err);
    if (rc) return rc;
    camd_shape shp;
    const float *outv = camd_session_value(s, e->logit_id, &shp);
    if (!outv || camd_shape_count(&shp) != (size_t)b * (size_t)e->n_outputs)
      return camd_error_set(err, CAMD_E_INTERNAL, "explain: logits '%d' missing after forward",
                            e->logit_id);
    memcpy(ctx->logits + (size_t)i0 * e->n_outputs, outv,
           (size_t)b * (size_t)e->n_outputs * sizeof(float));
  }
  *ms += ms_since(t);
  return 0;
}

/* The embedding of a reference image (PNG / JPEG) into ctx->refvec, from a forward of its own. */
static int embed_reference(camd_explain_ctx *ctx, camd_session *s, const camd_explainer *e,
                           const camd_explain_input *in, const camd_explain_limits *lim,
                           camd_explain_timings *tm, camd_error *err) {
  camd_image img = {0};
  camd_image_info info;
  camd_crop crop;
  uint64_t t = camd_now_ns();
  int rc = camd_image_decode(in->reference_image, in->reference_image_len, &lim->image, &img, &info,
                             err);
  if (!rc && !(rc = GROW(ctx, reftensor, e->in_count, err)))
    rc = camd_preprocess(&img, &e->cfg.preprocess, ctx->reftensor, e->in_count, &crop, err);
  camd_image_free(&img);
  tm->ms[CAMD_STAGE_DECODE] += ms_since(t);
  if (rc) return camd_error_prefix(err, rc, "reference_image: ");
  camd_forward_opts fo;
  camd_forward_opts_init(&fo);
  fo.retain = &e->logit_id;
  fo.n_retain = 1;
  t = camd_now_ns();
  rc = camd_session_forward(s, 1, ctx->reftensor, &fo, err);
  tm->ms[CAMD_STAGE_FORWARD] += ms_since(t);
  if (rc) return rc;
  camd_shape shp;
  const float *v = camd_session_value(s, e->logit_id, &shp);
  if (!v || camd_shape_count(&shp) != (size_t)e->n_outputs)
    return camd_error_set(err, CAMD_E_INTERNAL, "explain: the reference embedding is missing");
  double norm = 0.0;
  for (int i = 0; i < e->n_outputs; i++) norm += (double)v[i] * v[i];
  if (!isfinite(norm) || !(norm > 0.0))
    return camd_error_set(err, CAMD_E_UNUSABLE,
                          "reference_image: its embedding is %s; a cosine similarity needs a "
                          "finite, non-zero reference",
                          isfinite(norm) ? "zero" : "not finite");
  memcpy(ctx->refvec, v, sizeof(float) * (size_t)e->n_outputs);
  return 0;
}

/* Segmentation / embedding models: the targets of one image (req->classes / targets) and what
 * each map explains (maps[k].target, region, region_pixels). */
static int task_targets(camd_explain_ctx *ctx, camd_session *s, camd_explainer *e,
                        const camd_explain_options *o, const camd_explain_input *in,
                        const camd_explain_limits *lim, const float *out,
                        const camd_explain_item *item, int *classes, camd_cam_target *tg,
                        camd_explain_map *maps, int *n, camd_explain_timings *tm, camd_error *err) {
  int rc;
  if (e->task == CAMD_TASK_EMBEDDING) {
    if ((in->reference != NULL) == (in->reference_image != NULL))
      return camd_error_set(err, CAMD_E_INVALID,
                            "model '%s' is an embedding model: give exactly one of reference "
                            "(%d numbers) and reference_image",
                            e->cfg.name, e->n_outputs);
    if ((rc = GROW(ctx, refvec, (size_t)e->n_outputs, err))) return rc;
    rc = in->reference ? camd__parse_reference(in->reference, ctx->refvec, e->n_outputs, err)
                       : embed_reference(ctx, s, e, in, lim, tm, err);
    if (rc) return rc;
    if (!(item->embedding_norm > 0.0) || !isfinite(item->embedding_norm))
      return camd_error_set(err, CAMD_E_UNUSABLE,
                            "the image's embedding is %s; its cosine similarity is undefined",
                            isfinite(item->embedding_norm) ? "zero" : "not finite");
    classes[0] = 0;
    tg[0] = (camd_cam_target){CAMD_TARGET_COSINE, 0, (size_t)e->n_outputs, ctx->refvec};
    double xr = 0.0, rr = 0.0;
    for (int i = 0; i < e->n_outputs; i++) {
      xr += (double)out[i] * ctx->refvec[i];
      rr += (double)ctx->refvec[i] * ctx->refvec[i];
    }
    maps[0].region = in->reference ? "reference" : "reference_image";
    maps[0].region_pixels = 0;
    maps[0].target =
        (camd_explain_class){0, e->labels[0], (float)(xr / (item->embedding_norm * sqrt(rr))), NAN};
    *n = 1;
    return 0;
  }
  /* segmentation: explicit classes, else the K classes that win the most pixels */
  if (o->n_targets) {
    memcpy(classes, o->targets, sizeof(int) * (size_t)o->n_targets);
    *n = o->n_targets;
  } else {
    for (int k = 0; k < o->target_topk; k++) {
      int best = -1;
      for (int c = 0; c < e->n_classes; c++) {
        bool used = false;
        for (int j = 0; j < k; j++) used |= classes[j] == c;
        if (!used && (best < 0 || item->seg_pixels[c] > item->seg_pixels[best])) best = c;
      }
      classes[k] = best;
    }
    *n = o->target_topk;
  }
  size_t hw = (size_t)e->seg_h * (size_t)e->seg_w;
  if ((rc = GROW(ctx, tmasks, (size_t)*n * hw, err))) return rc;
  for (int k = 0; k < *n; k++) {
    rc = camd__seg_target(e, o, in, lim, out, item->width, item->height, &item->crop, classes[k],
                          ctx->tmasks + (size_t)k * hw, &tg[k], &maps[k], err);
    if (rc) return rc;
  }
  return 0;
}

/* Explains the image in tensor slot `slot`: one camd_cam_compute, then one render per target
 * class, into item->maps. */
static int explain_image(camd_explain_ctx *ctx, camd_session *s, camd_explainer *e,
                         const camd_explain_options *o, const run_plan *p, bool have_logits,
                         int slot, const camd_image *img, camd_dicom *dcm, camd_explain_item *item,
                         const camd_explain_input *in, const camd_explain_limits *lim,
                         camd_explain_timings *tm, camd_error *err) {
  float *logits = ctx->logits + (size_t)slot * e->n_outputs;
  int rc;
  /* Per-image targets (KServe instances[i].target / box) override the request's. */
  camd_explain_options own;
  if (in->target || in->box) {
    own = *o;
    if ((in->target && (rc = camd_explain_options_set(&own, e, "target", in->target, err))) ||
        (in->box && (rc = camd_explain_options_set(&own, e, "box", in->box, err))) ||
        (rc = plan_targets(e, &own, err)))
      return rc;
    o = &own;
  }
  camd_cam_target tg[CAMD_MAX_TARGETS];
  camd_explain_map task_maps[CAMD_MAX_TARGETS];
  int task_classes[CAMD_MAX_TARGETS], n_task = 0;
  memset(task_maps, 0, sizeof(task_maps));
  if (e->task != CAMD_TASK_CLASSIFICATION &&
      (rc = task_targets(ctx, s, e, o, in, lim, logits, item, task_classes, tg, task_maps, &n_task,
                         tm, err)))
    return rc;
  camd_cam_request req;
  camd_cam_request_init(&req);
  req.method = p->method;
  req.output = p->score_value;
  int ranked[CAMD_MAX_TARGETS];
  if (n_task) {
    req.classes = task_classes;
    req.n_classes = n_task;
    req.targets = tg;
  } else if (o->n_targets) {
    req.classes = o->targets;
    req.n_classes = o->n_targets;
  } else if (have_logits) { /* a prediction forward ran: rank its logits */
    if ((rc = rank_classes(ctx, logits, e->n_outputs, o->target_topk, err))) return rc;
    for (int k = 0; k < o->target_topk; k++) ranked[k] = ctx->rank[k].i;
    req.classes = ranked;
    req.n_classes = o->target_topk;
  } else {
    req.select_topk = o->target_topk; /* chosen from the CAM's own forward (the logits) */
  }
  req.score = p->score;
  req.aug_smooth = o->aug_smooth;
  req.eigen_smooth = o->eigen_smooth;
  req.n_samples = o->n_samples;
  req.noise_std = o->noise_std;
  req.seed = o->seed;
  req.finer_alpha = o->finer_alpha;
  req.finer_compare = o->finer_compare;
  req.kpca_gamma = o->kpca_gamma;
  req.max_batch = camd_session_max_batch(s);
  camd_cam_maps maps;
  memset(&maps, 0, sizeof(maps));
  if ((rc = camd_cam_compute_layers(s, ctx->ws, ctx->tensor + (size_t)slot * e->in_count, &req,
                                    p->layer_ids, p->layouts, p->n_layers, &maps, err)))
    return rc;
  tm->ms[CAMD_STAGE_FORWARD] += maps.ms_forward;
  tm->ms[CAMD_STAGE_BACKWARD] += maps.ms_backward;
  tm->ms[CAMD_STAGE_CAM] += maps.ms_cam;
  const int *classes = maps.classes, n_classes = maps.n_classes;
  if (!have_logits) {
    if (!maps.logits || maps.n_outputs != e->n_outputs)
      return camd_error_set(err, CAMD_E_INTERNAL, "explain: CAM returned %d outputs, expected %d",
                            maps.n_outputs, e->n_outputs);
    memcpy(logits, maps.logits, sizeof(float) * (size_t)e->n_outputs);
  }
  uint64_t t = camd_now_ns();
  if (!(item->maps = calloc((size_t)n_classes, sizeof(*item->maps))))
    return camd_error_set(err, CAMD_E_NOMEM, "explain: out of memory");
  run_plan_view view = {p->method, p->layer};
  render_args ra = {o, img,   &item->crop, p->minmax, dcm,
                    e, &view, item,        0,         camd_session_parallel(s)};
  size_t plane = (size_t)maps.width * (size_t)maps.height;
  double q_ms = 0.0;
  for (int k = 0; k < n_classes; k++) {
    ra.map_index = k;
    camd_explain_map *m = &item->maps[item->n_maps++];
    if (n_task) {
      m->target = task_maps[k].target;
      m->region = task_maps[k].region;
      m->region_pixels = task_maps[k].region_pixels;
    } else {
      m->target = class_of(e, logits, classes[k]);
    }
    if ((rc = render_map(ctx, &ra, maps.maps + (size_t)k * plane, maps.width, maps.height, m, err)))
      return rc;
    /* ctx->map holds the map as returned (after relu/normalize) */
    uint64_t tq = camd_now_ns();
    if (o->metrics && (rc = camd__quality_map(
                           &ctx->quality, s, e, o, ctx->tensor + (size_t)slot * e->in_count, logits,
                           classes[k], ctx->map, maps.width, maps.height, &m->quality, err)))
      return camd_error_prefix(err, rc, "class %d: ", classes[k]);
    q_ms += ms_since(tq);
  }
  tm->ms[CAMD_STAGE_QUALITY] += q_ms;
  tm->ms[CAMD_STAGE_RENDER] += ms_since(t) - q_ms;
  return 0;
}

/* The topk predictions of the image in tensor slot `slot`. */
static int predictions(camd_explain_ctx *ctx, const camd_explainer *e, int topk, int slot,
                       camd_explain_item *item, camd_error *err) {
  const float *logits = ctx->logits + (size_t)slot * e->n_outputs;
  int rc = rank_classes(ctx, logits, e->n_outputs, topk, err);
  if (rc) return rc;
  if (!(item->predictions = calloc((size_t)topk, sizeof(*item->predictions))))
    return camd_error_set(err, CAMD_E_NOMEM, "explain: out of memory");
  for (int k = 0; k < topk; k++) item->predictions[k] = class_of(e, logits, ctx->rank[k].i);
  item->n_predictions = topk;
  return 0;
}

static void item_free(camd_explain_item *it) {
  for (int k = 0; k < it->n_maps; k++) {
    camd_explain_map *m = &it->maps[k];
    free(m->raw);
    free(m->mask.data);
    free(m->heatmap.data);
    free(m->overlay.data);
    free(m->dicom.data);
    free(m->quality.deletion);
    free(m->quality.insertion);
  }
  free(it->maps);
  free(it->predictions);
  free(it->seg_pixels);
  for (int k = 0; k < it->n_attachments; k++) free(it->attachments[k].blob.data);
  free(it->message);
}

/* Records the failure of one image (status rc, the message of ie) and drops what it had. */
static void item_fail(camd_explain_item *it, int rc, const camd_error *ie) {
  item_free(it);
  memset(it, 0, sizeof(*it));
  it->status = rc;
  it->message = strdup(ie->message[0] ? ie->message : camd_status_message(rc));
}

/* A DICOM file: the requested frame through the pixel pipeline with the request's window, as RGB
 * (gray replicated: a 1-channel model's luma of it is the gray level itself) for the model and
 * the overlay. The handle stays open in *dcm_out for the Secondary Captures. */
static int decode_dicom(const camd_explain_input *in, const camd_explain_options *o,
                        const camd_explain_limits *lim, camd_image *img, camd_explain_item *item,
                        camd_dicom **dcm_out, camd_error *err) {
  camd_dicom_limits dl;
  camd_dicom_limits_default(&dl);
  dl.image = lim->image;
  if (lim->max_frames) dl.max_frames = lim->max_frames;
  camd_dicom *dcm = NULL;
  int rc = camd_dicom_open(in->data, in->len, &dl, &dcm, &item->dicom, err);
  if (rc) return rc;
  camd_dicom_decode_opts dop;
  memset(&dop, 0, sizeof(dop));
  dop.frame = o->frame;
  dop.window = o->window;
  camd_dicom_frame fr;
  memset(&fr, 0, sizeof(fr));
  rc = camd_dicom_decode(dcm, &dop, &fr, err);
  if (!rc && fr.image.channels == 3) {
    *img = fr.image;
    memset(&fr.image, 0, sizeof(fr.image));
  } else if (!rc) {
    rc = camd_image_to_rgb(&fr.image, img, err);
  }
  if (!rc) {
    item->frame = o->frame;
    item->windowed = fr.samples == 1 && fr.image.channels == 1; /* not PALETTE COLOR */
    if (item->windowed) item->window = fr.window;
    item->info.format = CAMD_IMAGE_FORMAT_DICOM;
    item->info.file_width = item->dicom.columns;
    item->info.file_height = item->dicom.rows;
    item->info.file_channels = item->dicom.samples_per_pixel;
    item->info.bit_depth = item->dicom.bits_stored;
    item->info.orientation = 1;
  }
  camd_dicom_frame_free(&fr);
  if (rc) {
    camd_dicom_close(dcm);
    return rc;
  }
  *dcm_out = dcm;
  return 0;
}

/* A gray PNG with an explicit window option: its samples (up to 16 bits) through the window. */
static int decode_png_windowed(const camd_explain_input *in, const camd_explain_options *o,
                               const camd_explain_limits *lim, camd_image *img,
                               camd_explain_item *item, camd_error *err) {
  float *values = NULL;
  size_t w = 0, h = 0;
  int bits = 0;
  int rc = camd_png_decode_gray(in->data, in->len, &lim->image, &values, &w, &h, &bits, err);
  if (rc == CAMD_E_UNSUPPORTED) {
    char text[64];
    camd_window_format(&o->window, text, sizeof(text));
    return camd_error_set(err, CAMD_E_INVALID,
                          "option window='%s' applies to gray images (DICOM monochrome, gray "
                          "PNG); this PNG is in colour",
                          text);
  }
  if (rc) return rc;
  camd_image gray = {0};
  rc = camd_window_gray(values, w, h, &o->window, NULL, 0, false, &gray, &item->window, err);
  free(values);
  if (!rc) rc = camd_image_to_rgb(&gray, img, err);
  camd_image_free(&gray);
  if (rc) return rc;
  item->windowed = true;
  item->info.format = CAMD_IMAGE_FORMAT_PNG;
  item->info.file_width = w;
  item->info.file_height = h;
  item->info.file_channels = 1;
  item->info.bit_depth = bits;
  item->info.orientation = 1;
  return 0;
}

/* Decodes one input as the options say: DICOM (frame, window), a gray PNG with a window option,
 * else camd_image_decode. Options that do not apply to the format are CAMD_E_INVALID. */
static int decode_input(const camd_explain_input *in, const camd_explain_options *o,
                        const camd_explain_limits *lim, camd_image *img, camd_explain_item *item,
                        camd_dicom **dcm, camd_error *err) {
  camd_image_format f = camd_image_sniff(in->data, in->len);
  if (f == CAMD_IMAGE_FORMAT_DICOM) return decode_dicom(in, o, lim, img, item, dcm, err);
  const char *name = camd_image_format_name(f);
  if (o->frame)
    return camd_error_set(err, CAMD_E_INVALID,
                          "option frame=%u applies to DICOM files; this image is %s", o->frame,
                          name);
  if (o->outputs & CAMD_OUT_DICOM)
    return camd_error_set(err, CAMD_E_INVALID,
                          "a DICOM answer (Accept: application/dicom or outputs=dicom) needs a "
                          "DICOM input; this image is %s",
                          name);
  bool windowed = o->window.kind != CAMD_WINDOW_DEFAULT || o->window.index != 0;
  if (windowed && f == CAMD_IMAGE_FORMAT_PNG)
    return decode_png_windowed(in, o, lim, img, item, err);
  if (windowed && f != CAMD_IMAGE_FORMAT_UNKNOWN) {
    char text[64];
    camd_window_format(&o->window, text, sizeof(text));
    return camd_error_set(err, CAMD_E_INVALID,
                          "option window='%s' applies to DICOM and gray PNG images; this image "
                          "is %s",
                          text, name);
  }
  return camd_image_decode(in->data, in->len, &lim->image, img, &item->info, err);
}

/* Decodes and preprocesses image i into tensor slot `slot`; failures go to the item. */
static int decode_one(camd_explain_ctx *ctx, camd_session *s, const camd_explainer *e,
                      const camd_explain_input *in, const camd_explain_options *o,
                      const camd_explain_limits *lim, int slot, camd_image *img, camd_dicom **dcm,
                      camd_explain_item *item, camd_explain_timings *tm) {
  camd_error ie = {0};
  uint64_t t = camd_now_ns();
  int rc = decode_input(in, o, lim, img, item, dcm, &ie);
  tm->ms[CAMD_STAGE_DECODE] += ms_since(t);
  if (rc) {
    item_fail(item, rc, &ie);
    return rc;
  }
  item->width = img->width;
  item->height = img->height;
  item->input_width = e->cfg.preprocess.width;
  item->input_height = e->cfg.preprocess.height;
  t = camd_now_ns();
  const camd_parallel par = camd_session_parallel(s); /* the resize on the session's threads */
  rc = camd_preprocess_parallel(img, &e->cfg.preprocess, &par,
                                ctx->tensor + (size_t)slot * e->in_count, e->in_count, &item->crop,
                                &ie);
  tm->ms[CAMD_STAGE_PREPROCESS] += ms_since(t);
  if (rc) {
    camd_error_prefix(&ie, rc, "preprocessing: ");
    item_fail(item, rc, &ie);
  }
  return rc;
}

/* Allocates the result's items and records what the run is. */
static int result_start(camd_explain_result *r, camd_explainer *e, const camd_explain_options *o,
                        const run_plan *p, int n, bool predict_only, camd_error *err) {
  if (!(r->items = calloc((size_t)n, sizeof(*r->items))))
    return camd_error_set(err, CAMD_E_NOMEM, "explain: out of memory");
  r->n_items = n;
  r->explainer = camd_explainer_retain(e);
  r->options = *o;
  r->predict_only = predict_only;
  snprintf(r->layer, sizeof(r->layer), "%s", p->layer);
  r->timings.batch_size = n;
  return 0;
}

/* The first failed image: its status, and err naming it. */
static int first_failure(const camd_explain_result *r, camd_error *err) {
  for (int i = 0; i < r->n_items; i++) {
    const camd_explain_item *it = &r->items[i];
    if (it->status)
      return camd_error_set(err, it->status, "image %d: %s", i,
                            it->message ? it->message : camd_status_message(it->status));
  }
  return 0;
}

int camd_explain_run(camd_explain_ctx *ctx, camd_explainer *e, const camd_explain_options *o,
                     const camd_explain_input *inputs, int n_inputs, bool predict_only,
                     const camd_explain_limits *limits, camd_explain_result *result,
                     camd_error *err) {
  if (!result) return camd_error_set(err, CAMD_E_INVALID, "explain: result is NULL");
  memset(result, 0, sizeof(*result));
  if (!ctx || !e || !o || !inputs)
    return camd_error_set(err, CAMD_E_INVALID,
                          "explain: ctx, explainer, options and inputs are required");
  if (n_inputs < 1 || n_inputs > ctx->max_batch)
    return camd_error_set(err, CAMD_E_LIMIT,
                          "explain: %d images in one request; this worker takes 1..%d", n_inputs,
                          ctx->max_batch);
  uint64_t t_start = camd_now_ns();
  run_plan p;
  int rc = plan_run(e, o, predict_only, &p, err);
  if (rc) return rc;
  camd_explain_limits dl;
  memset(&dl, 0, sizeof(dl));
  camd_image_limits_default(&dl.image);
  const camd_explain_limits *lim = limits ? limits : &dl;
  if (!predict_only && o->metrics) {
    long cap =
        lim->max_quality_forwards > 0 ? lim->max_quality_forwards : CAMD_QUALITY_FORWARDS_DEFAULT;
    long per_map = camd_explain_quality_forwards(o);
    int n_maps = o->n_targets ? o->n_targets : o->target_topk;
    if (per_map * n_maps > cap)
      return camd_error_set(err, CAMD_E_LIMIT,
                            "quality metrics need %ld forwards per image (%d map%s x %ld: "
                            "drop_increase 1, deletion and insertion quality_steps=%d each, road "
                            "%d); the limit max_quality_forwards is %ld",
                            per_map * n_maps, n_maps, n_maps == 1 ? "" : "s", per_map,
                            o->quality_steps, 2 * CAMD_ROAD_LEVELS, cap);
  }
  if (!predict_only) {
    const long cap = lim->max_cam_forwards > 0 ? lim->max_cam_forwards : CAMD_CAM_FORWARDS_DEFAULT;
    const long need = cam_forwards(e, o, &p);
    if (need > cap)
      return camd_error_set(err, CAMD_E_LIMIT,
                            "method %s needs %ld masked forwards per image (layer '%s'); the "
                            "limit max_cam_forwards is %ld",
                            camd_cam_method_name(p.method), need, p.layer, cap);
  }
  camd_session *s = NULL;
  if ((rc = get_session(ctx, e, &s, err))) return rc;

  camd_image *imgs = calloc((size_t)n_inputs, sizeof(*imgs));
  camd_dicom **dcms = calloc((size_t)n_inputs, sizeof(*dcms)); /* DICOM inputs' handles */
  int *slot = calloc((size_t)n_inputs, sizeof(*slot));
  camd_explain_timings *tm = &result->timings;
  bool per_image = false;
  int n_ok = 0;
  if (!imgs || !dcms || !slot) {
    rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory");
    goto done;
  }
  if ((rc = result_start(result, e, o, &p, n_inputs, predict_only, err)) ||
      (rc = GROW(ctx, tensor, (size_t)n_inputs * e->in_count, err)) ||
      (rc = GROW(ctx, logits, (size_t)n_inputs * (size_t)e->n_outputs, err)))
    goto done;
  /* Decode and preprocess every image first: the good ones fill slots 0..n_ok-1. */
  for (int i = 0; i < n_inputs; i++) {
    slot[i] = n_ok;
    if (decode_one(ctx, s, e, &inputs[i], o, lim, n_ok, &imgs[i], &dcms[i], &result->items[i],
                   tm) == 0)
      n_ok++;
  }
  /* The logits come from a prediction forward when they decide the targets, or when the score
   * is read from another value than the logits (score=output on a model with its own softmax). */
  bool have_logits =
      predict_only || p.score_value != e->logit_id || e->task != CAMD_TASK_CLASSIFICATION;
  if (have_logits && n_ok &&
      (rc = predict_batch(ctx, s, e, n_ok, &tm->ms[CAMD_STAGE_FORWARD], err)))
    goto done;

  for (int i = 0; i < n_inputs; i++) {
    camd_explain_item *it = &result->items[i];
    if (it->status) continue;
    camd_error ie = {0};
    /* Segmentation / embedding: from the prediction forward, before the targets need them.
     * Classification: after the explanation, whose forward may be the one that made the logits. */
    const float *out = ctx->logits + (size_t)slot[i] * e->n_outputs;
    rc = 0;
    if (e->task == CAMD_TASK_SEGMENTATION) {
      rc = camd__seg_pixels(e, out, it, &ie);
    } else if (e->task == CAMD_TASK_EMBEDDING) {
      double norm = 0.0;
      for (int j = 0; j < e->n_outputs; j++) norm += (double)out[j] * out[j];
      it->embedding_size = e->n_outputs;
      it->embedding_norm = sqrt(norm);
    }
    if (rc ||
        (!predict_only && (rc = explain_image(ctx, s, e, o, &p, have_logits, slot[i], &imgs[i],
                                              dcms[i], it, &inputs[i], lim, tm, &ie))) ||
        (e->task == CAMD_TASK_CLASSIFICATION &&
         (rc = predictions(ctx, e, o->topk, slot[i], it, &ie))))
      item_fail(it, rc, &ie);
  }
  tm->total_ms = ms_since(t_start);
  per_image = true; /* from here on, a failure belongs to an image and the result stays */
  rc = first_failure(result, err);
done:
  if (imgs)
    for (int i = 0; i < n_inputs; i++) camd_image_free(&imgs[i]);
  if (dcms)
    for (int i = 0; i < n_inputs; i++) camd_dicom_close(dcms[i]);
  free(imgs);
  free(dcms);
  free(slot);
  if (rc && !per_image) camd_explain_result_free(result);
  return rc;
}

void camd_explain_result_free(camd_explain_result *r) {
  if (!r) return;
  for (int i = 0; i < r->n_items; i++) item_free(&r->items[i]);
  free(r->items);
  camd_explainer_release(r->explainer);
  memset(r, 0, sizeof(*r));
}
