/* The explain pipeline for a batch of images (design.md §1) and its JSON result.
 *
 * decode (limits) → preprocess (crop geometry kept) → predict (or score=output on a model with
 * its own softmax): one batched forward → explain: per image camd_cam_compute (otherwise ONE
 * forward per image: the predictions and, for topK, the target classes come from that forward's
 * logits; then the partial backward per class; the CAM methods take one image at a time) → per
 * map: ReLU/normalise →
 * upsample onto the ORIGINAL image through the crop → peak/bbox/mask → colormap + overlay →
 * PNG → base64 → JSON.
 *
 * A camd_explain_ctx belongs to one worker thread. It keeps one engine session per explainer
 * (created on first use, reused), the CAM workspace and the scratch buffers, so a request
 * allocates only its images, pictures and JSON. Sessions of explainers that nobody else holds
 * any more (the server dropped the model) are destroyed at the next run.
 */
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "explain/explain_internal.h"

#define CTX_SESSIONS 16
#define CTX_MAX_BATCH 256
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
  unsigned char *outside;
  size_t outside_cap;
  struct rank {
    float v;
    int i;
  } * rank;
  size_t rank_cap;
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
  if (max_batch < 1 || max_batch > CTX_MAX_BATCH)
    return camd_error_set(err, CAMD_E_INVALID, "explain: max batch %d is outside 1..%d", max_batch,
                          CTX_MAX_BATCH);
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
  free(ctx->outside);
  free(ctx->rank);
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
  if (rc) return camd_error_prefix(err, "model '%s': ", e->cfg.name);
  free_slot->e = camd_explainer_retain(e);
  free_slot->s = s;
  free_slot->used = ctx->clock;
  *out = s;
  return 0;
}

static json_t *jreal(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

static double ms_since(uint64_t t0) {
  return (double)(camd_now_ns() - t0) / 1e6;
}

static int cmp_rank(const void *a, const void *b) {
  const struct rank *x = a, *y = b;
  if (x->v != y->v) return x->v > y->v ? -1 : 1; /* NaN compares equal: index order */
  return (x->i > y->i) - (x->i < y->i);
}

/* Sorts the classes of one image by output, best first (ties: lower index first). */
static int rank_classes(camd_explain_ctx *ctx, const float *logits, int n, camd_error *err) {
  int rc = GROW(ctx, rank, (size_t)n, err);
  if (rc) return rc;
  for (int i = 0; i < n; i++)
    ctx->rank[i] = (struct rank){isnan(logits[i]) ? -INFINITY : logits[i], i};
  qsort(ctx->rank, (size_t)n, sizeof(*ctx->rank), cmp_rank);
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

static json_t *class_json(const camd_explainer *e, const float *logits, int c) {
  json_t *o = json_object();
  json_object_set_new(o, "index", json_integer(c));
  json_object_set_new(o, "label", json_string(e->labels[c]));
  json_object_set_new(o, "score", jreal(logits[c]));
  json_object_set_new(o, "probability", jreal(probability(e->activation, logits, e->n_outputs, c)));
  return o;
}

static int png_base64(const camd_image *img, json_t *obj, const char *key, unsigned char **keep,
                      size_t *keep_len, camd_error *err) {
  unsigned char *png = NULL;
  size_t len = 0;
  int rc = camd_png_encode(img, PNG_LEVEL, &png, &len, err);
  if (rc) return rc;
  char *b64 = camd_base64_encode(png, len, NULL);
  if (!b64) {
    free(png);
    return camd_error_set(err, CAMD_E_NOMEM, "explain: out of memory encoding the %s", key);
  }
  json_object_set_new(obj, key, json_string(b64));
  free(b64);
  if (keep && !*keep) {
    *keep = png;
    *keep_len = len;
  } else {
    free(png);
  }
  return 0;
}

typedef struct render_args {
  const camd_explain_options *o;
  const camd_image *img;
  const camd_crop *crop;
  bool minmax;
  unsigned char **first_png;
  size_t *first_png_len;
} render_args;

/* Post-processes one raw map (lw × lh) and writes raw / peak / bbox / mask / heatmap / overlay
 * into x as the options ask. */
static int render_map(camd_explain_ctx *ctx, const render_args *a, const float *raw, int lw, int lh,
                      json_t *x, camd_error *err) {
  const camd_explain_options *o = a->o;
  size_t count = (size_t)lw * (size_t)lh;
  int rc = GROW(ctx, map, count, err);
  if (rc) return rc;
  memcpy(ctx->map, raw, count * sizeof(float));
  camd_cam_postprocess(ctx->map, count, o->relu, a->minmax);
  if (o->outputs & CAMD_OUT_RAW) {
    json_t *vals = json_array();
    for (size_t i = 0; i < count; i++) json_array_append_new(vals, jreal(ctx->map[i]));
    json_object_set_new(x, "raw",
                        json_pack("{s:i, s:i, s:o}", "width", lw, "height", lh, "values", vals));
  }
  unsigned need_up = CAMD_OUT_OVERLAY | CAMD_OUT_HEATMAP | CAMD_OUT_MASK | CAMD_OUT_BBOX;
  if (!(o->outputs & need_up)) return 0;

  size_t W = a->img->width, H = a->img->height, npx = W * H;
  if ((rc = GROW(ctx, up, npx, err)) || (rc = GROW(ctx, outside, npx, err))) return rc;
  rc = camd_heatmap_upsample(ctx->map, (size_t)lw, (size_t)lh, a->crop, W, H, NAN, ctx->up, err);
  if (rc) return rc;

  if (o->outputs & CAMD_OUT_BBOX) {
    size_t px, py;
    float pv;
    if (camd_heatmap_peak(ctx->up, W, H, &px, &py, &pv, NULL) == 0)
      json_object_set_new(x, "peak",
                          json_pack("{s:I, s:I, s:o}", "x", (json_int_t)px, "y", (json_int_t)py,
                                    "value", jreal(pv)));
    else
      json_object_set_new(x, "peak", json_null());
    camd_bbox box;
    if ((rc = camd_heatmap_bbox(ctx->up, W, H, o->bbox_threshold, CAMD_BBOX_LARGEST_COMPONENT, &box,
                                err)))
      return rc;
    if (box.found)
      json_object_set_new(x, "bbox",
                          json_pack("{s:I, s:I, s:I, s:I, s:I}", "x0", (json_int_t)box.x0, "y0",
                                    (json_int_t)box.y0, "x1", (json_int_t)box.x1, "y1",
                                    (json_int_t)box.y1, "pixels", (json_int_t)box.pixels));
    else
      json_object_set_new(x, "bbox", json_null());
  }
  if (o->outputs & CAMD_OUT_MASK) {
    camd_image mask = {0};
    if ((rc = camd_heatmap_mask(ctx->up, W, H, o->bbox_threshold, &mask, err))) return rc;
    rc = png_base64(&mask, x, "mask", NULL, NULL, err);
    camd_image_free(&mask);
    if (rc) return rc;
  }
  if (!(o->outputs & (CAMD_OUT_OVERLAY | CAMD_OUT_HEATMAP))) return 0;
  /* Pixels outside the crop have no heat: colour them as 0, keep the photo in the overlay. */
  bool any_outside = false;
  for (size_t i = 0; i < npx; i++) {
    bool out = isnan(ctx->up[i]);
    ctx->outside[i] = out;
    if (out) {
      ctx->up[i] = 0.0f;
      any_outside = true;
    }
  }
  camd_image heat = {0}, over = {0};
  if ((rc = camd_heatmap_colorize(ctx->up, W, H, o->colormap, &heat, err))) return rc;
  if (o->outputs & CAMD_OUT_HEATMAP) rc = png_base64(&heat, x, "heatmap", NULL, NULL, err);
  if (!rc && (o->outputs & CAMD_OUT_OVERLAY)) {
    rc = camd_image_blend(a->img, &heat, o->alpha, &over, err);
    if (!rc && any_outside) {
      for (size_t i = 0; i < npx; i++)
        if (ctx->outside[i]) memcpy(over.pixels + 3 * i, a->img->pixels + 3 * i, 3);
    }
    if (!rc) rc = png_base64(&over, x, "overlay", a->first_png, a->first_png_len, err);
  }
  camd_image_free(&heat);
  camd_image_free(&over);
  return rc;
}

static json_t *options_json(const camd_explain_options *o, const camd_explainer *e,
                            const char *layer, bool predict_only) {
  json_t *j = json_object();
  if (!predict_only) {
    json_object_set_new(j, "method", json_string(o->method));
    json_object_set_new(j, "layer", json_string(layer));
    if (o->n_targets) {
      json_t *t = json_array();
      for (int i = 0; i < o->n_targets; i++) json_array_append_new(t, json_integer(o->targets[i]));
      json_object_set_new(j, "target", t);
    } else {
      char buf[32];
      snprintf(buf, sizeof(buf), "top%d", o->target_topk);
      json_object_set_new(j, "target", json_string(buf));
    }
    json_object_set_new(j, "score", json_string(o->score));
    json_object_set_new(j, "relu", json_boolean(o->relu));
    json_object_set_new(j, "normalize", json_string(o->normalize));
    json_object_set_new(j, "aug_smooth", json_boolean(o->aug_smooth));
    json_object_set_new(j, "eigen_smooth", json_boolean(o->eigen_smooth));
    json_object_set_new(j, "colormap", json_string(camd_colormap_name(o->colormap)));
    json_object_set_new(j, "alpha", camd__json_float(o->alpha));
    json_t *outs = json_array();
    static const char *const names[] = {"overlay", "heatmap", "mask", "raw", "bbox"};
    for (int i = 0; i < 5; i++)
      if (o->outputs & (1u << i)) json_array_append_new(outs, json_string(names[i]));
    json_object_set_new(j, "outputs", outs);
    json_object_set_new(j, "bbox_threshold", camd__json_float(o->bbox_threshold));
    json_object_set_new(j, "n_samples", json_integer(o->n_samples));
    json_object_set_new(j, "noise_std", camd__json_float(o->noise_std));
    json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
  }
  json_object_set_new(j, "topk", json_integer(o->topk));
  json_object_set_new(j, "activation", json_string(camd__activation_name(e->activation)));
  const camd_preprocess_opts *pp = &e->cfg.preprocess;
  json_t *pre = json_object(), *mean = json_array(), *std = json_array();
  json_object_set_new(pre, "resize", json_string(camd__resize_name(pp->mode)));
  if (pp->mode == CAMD_RESIZE_SHORTER)
    json_object_set_new(pre, "resize_shorter", json_integer((json_int_t)pp->resize_shorter));
  json_object_set_new(pre, "width", json_integer((json_int_t)pp->width));
  json_object_set_new(pre, "height", json_integer((json_int_t)pp->height));
  json_object_set_new(pre, "scale", camd__json_float(pp->scale));
  for (int c = 0; c < pp->channels; c++) {
    json_array_append_new(mean, camd__json_float(pp->mean[c]));
    json_array_append_new(std, camd__json_float(pp->std[c]));
  }
  json_object_set_new(pre, "mean", mean);
  json_object_set_new(pre, "std", std);
  json_object_set_new(pre, "channel_order",
                      json_string(pp->channels == 1 ? "L"
                                  : pp->bgr         ? "BGR"
                                                    : "RGB"));
  json_object_set_new(j, "preprocessing", pre);
  return j;
}

/* Everything validated before any image is touched. */
typedef struct run_plan {
  camd_cam_method method;
  int layer_id;
  const char *layer;
  camd_cam_score score;
  int score_value; /* value the score is read from: the logits, or output 0 for score=output */
  bool minmax;
} run_plan;

static int plan_run(const camd_explainer *e, const camd_explain_options *o, bool predict_only,
                    run_plan *p, camd_error *err) {
  memset(p, 0, sizeof(*p));
  p->layer_id = -1;
  p->score_value = e->logit_id;
  p->layer = "";
  if (o->topk < 1 || o->topk > e->n_outputs)
    return camd_error_set(err, CAMD_E_INVALID,
                          "option topk=%d: must be within 1..%d (the model's number of classes)",
                          o->topk, e->n_outputs);
  if (predict_only) return 0;
  if (camd_cam_method_parse(o->method, &p->method, err))
    return camd_error_prefix(err, "option method: ");
  p->layer = o->layer[0] ? o->layer : e->default_layer;
  if (!p->layer[0])
    return camd_error_set(err, CAMD_E_UNUSABLE,
                          "model '%s' has no layer camd can use by default; give option layer "
                          "(see the model's \"layers\")",
                          e->cfg.name);
  if (camd__explain_check_layer(e, p->layer, &p->layer_id, err))
    return camd_error_prefix(err, "option layer: ");
  if (o->n_targets < 0 || o->n_targets > CAMD_MAX_TARGETS)
    return camd_error_set(err, CAMD_E_INVALID, "option target: %d targets; the limit is %d",
                          o->n_targets, CAMD_MAX_TARGETS);
  for (int i = 0; i < o->n_targets; i++) {
    if (o->targets[i] < 0 || o->targets[i] >= e->n_outputs)
      return camd_error_set(err, CAMD_E_INVALID,
                            "option target: class %d is outside 0..%d (model '%s')", o->targets[i],
                            e->n_outputs - 1, e->cfg.name);
  }
  if (!o->n_targets &&
      (o->target_topk < 1 || o->target_topk > CAMD_MAX_TARGETS || o->target_topk > e->n_outputs))
    return camd_error_set(err, CAMD_E_INVALID, "option target=top%d: K must be within 1..%d",
                          o->target_topk,
                          e->n_outputs < CAMD_MAX_TARGETS ? e->n_outputs : CAMD_MAX_TARGETS);
  if (!strcmp(o->score, "logit")) {
    p->score = CAMD_SCORE_LOGIT;
  } else if (!strcmp(o->score, "output")) { /* output 0 as it is (the logits for most models) */
    p->score = CAMD_SCORE_LOGIT;
    p->score_value = e->output_id;
  } else if (!strcmp(o->score, "softmax"))
    p->score = CAMD_SCORE_SOFTMAX;
  else if (!strcmp(o->score, "sigmoid"))
    p->score = CAMD_SCORE_SIGMOID;
  else
    return camd_error_set(err, CAMD_E_INVALID,
                          "option score='%.20s': valid: logit, softmax, sigmoid", o->score);
  if (!strcmp(o->normalize, "minmax"))
    p->minmax = true;
  else if (strcmp(o->normalize, "none"))
    return camd_error_set(err, CAMD_E_INVALID, "option normalize='%.20s': valid: minmax, none",
                          o->normalize);
  if (!(o->alpha >= 0.0f && o->alpha <= 1.0f) ||
      !(o->bbox_threshold >= 0.0f && o->bbox_threshold <= 1.0f))
    return camd_error_set(err, CAMD_E_INVALID,
                          "options alpha and bbox_threshold must be within 0..1");
  if (o->outputs & ~0x1Fu)
    return camd_error_set(err, CAMD_E_INVALID, "option outputs: unknown bits 0x%x", o->outputs);
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

typedef struct timings {
  double decode, preprocess, forward, backward, cam, render;
} timings;

/* Explains image i: one camd_cam_compute, then one render per target class. */
static int explain_image(camd_explain_ctx *ctx, camd_session *s, camd_explainer *e,
                         const camd_explain_options *o, const run_plan *p, bool have_logits, int i,
                         const camd_image *img, const camd_crop *crop, json_t *exps, timings *tm,
                         camd_explain_result *result, camd_error *err) {
  float *logits = ctx->logits + (size_t)i * e->n_outputs;
  int rc;
  camd_cam_request req;
  camd_cam_request_init(&req);
  req.method = p->method;
  req.layer = p->layer_id;
  req.output = p->score_value;
  int ranked[CAMD_MAX_TARGETS];
  if (o->n_targets) {
    req.classes = o->targets;
    req.n_classes = o->n_targets;
  } else if (have_logits) { /* a prediction forward ran: rank its logits */
    if ((rc = rank_classes(ctx, logits, e->n_outputs, err))) return rc;
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
  req.max_batch = camd_session_max_batch(s);
  camd_cam_maps maps;
  memset(&maps, 0, sizeof(maps));
  if ((rc = camd_cam_compute(s, ctx->ws, ctx->tensor + (size_t)i * e->in_count, &req, &maps, err)))
    return rc;
  tm->forward += maps.ms_forward;
  tm->backward += maps.ms_backward;
  tm->cam += maps.ms_cam;
  const int *classes = maps.classes, n_classes = maps.n_classes;
  if (!have_logits) {
    if (!maps.logits || maps.n_outputs != e->n_outputs)
      return camd_error_set(err, CAMD_E_INTERNAL, "explain: CAM returned %d outputs, expected %d",
                            maps.n_outputs, e->n_outputs);
    memcpy(logits, maps.logits, sizeof(float) * (size_t)e->n_outputs);
  }
  uint64_t t = camd_now_ns();
  render_args ra = {o, img, crop, p->minmax, &result->png, &result->png_len};
  size_t plane = (size_t)maps.width * (size_t)maps.height;
  for (int k = 0; k < n_classes; k++) {
    json_t *x = class_json(e, logits, classes[k]);
    json_object_set_new(x, "method", json_string(camd_cam_method_name(p->method)));
    json_object_set_new(x, "layer", json_string(p->layer));
    json_array_append_new(exps, x);
    if ((rc = render_map(ctx, &ra, maps.maps + (size_t)k * plane, maps.width, maps.height, x, err)))
      return rc;
  }
  tm->render += ms_since(t);
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
                          "explain: ctx, explainer, options and inputs are "
                          "required");
  if (n_inputs < 1 || n_inputs > ctx->max_batch)
    return camd_error_set(err, CAMD_E_LIMIT,
                          "explain: %d images in one request; this worker takes 1..%d", n_inputs,
                          ctx->max_batch);
  uint64_t t_start = camd_now_ns();
  run_plan p;
  int rc = plan_run(e, o, predict_only, &p, err);
  if (rc) return rc;
  camd_image_limits dl;
  camd_image_limits_default(&dl);
  const camd_image_limits *lim = limits ? &limits->image : &dl;
  camd_session *s = NULL;
  if ((rc = get_session(ctx, e, &s, err))) return rc;

  camd_image *imgs = calloc((size_t)n_inputs, sizeof(*imgs));
  camd_image_info *infos = calloc((size_t)n_inputs, sizeof(*infos));
  camd_crop *crops = calloc((size_t)n_inputs, sizeof(*crops));
  json_t *objs = json_array();
  timings tm = {0};
  if (!imgs || !infos || !crops || !objs) {
    rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory");
    goto done;
  }
  /* Decode and preprocess every image first: a bad image fails the call before any compute. */
  if ((rc = GROW(ctx, tensor, (size_t)n_inputs * e->in_count, err)) ||
      (rc = GROW(ctx, logits, (size_t)n_inputs * (size_t)e->n_outputs, err)))
    goto done;
  for (int i = 0; i < n_inputs; i++) {
    uint64_t t = camd_now_ns();
    rc = camd_image_decode(inputs[i].data, inputs[i].len, lim, &imgs[i], &infos[i], err);
    tm.decode += ms_since(t);
    if (rc) {
      camd_error_prefix(err, "image %d: ", i);
      goto done;
    }
    t = camd_now_ns();
    rc = camd_preprocess(&imgs[i], &e->cfg.preprocess, ctx->tensor + (size_t)i * e->in_count,
                         e->in_count, &crops[i], err);
    tm.preprocess += ms_since(t);
    if (rc) {
      camd_error_prefix(err, "image %d: preprocessing: ", i);
      goto done;
    }
  }
  /* One forward per image: the CAM's own forward gives the logits (and chooses top-K targets
   * from them). A prediction forward runs first only for predict, or when the score is read from
   * another value than the logits (score=output on a model with its own softmax). */
  bool have_logits = predict_only || p.score_value != e->logit_id;
  if (have_logits && (rc = predict_batch(ctx, s, e, n_inputs, &tm.forward, err))) goto done;

  for (int i = 0; i < n_inputs; i++) {
    json_t *obj = json_object();
    json_array_append_new(objs, obj);
    json_object_set_new(obj, "model",
                        json_pack("{s:s, s:s}", "name", e->cfg.name, "sha256", e->sha256));
    json_object_set_new(obj, "camd_version", json_string(CAMD_VERSION));
    if (!predict_only) {
      json_object_set_new(obj, "method", json_string(camd_cam_method_name(p.method)));
      json_object_set_new(obj, "layer", json_string(p.layer));
    }
    json_object_set_new(
        obj, "image",
        json_pack("{s:i, s:I, s:I, s:s, s:i}", "index", i, "width", (json_int_t)imgs[i].width,
                  "height", (json_int_t)imgs[i].height, "format",
                  camd_image_format_name(infos[i].format), "orientation", infos[i].orientation));
    json_object_set_new(
        obj, "input",
        json_pack("{s:I, s:I, s:{s:o, s:o, s:o, s:o}}", "width",
                  (json_int_t)e->cfg.preprocess.width, "height",
                  (json_int_t)e->cfg.preprocess.height, "crop", "x", jreal(crops[i].x), "y",
                  jreal(crops[i].y), "width", jreal(crops[i].w), "height", jreal(crops[i].h)));
    json_object_set_new(obj, "predictions", json_null()); /* filled below, listed first */
    json_t *exps = NULL;
    if (!predict_only) {
      exps = json_array();
      json_object_set_new(obj, "explanations", exps);
      rc = explain_image(ctx, s, e, o, &p, have_logits, i, &imgs[i], &crops[i], exps, &tm, result,
                         err);
      if (rc) {
        camd_error_prefix(err, "image %d: ", i);
        goto done;
      }
    }
    const float *logits = ctx->logits + (size_t)i * e->n_outputs;
    if ((rc = rank_classes(ctx, logits, e->n_outputs, err))) goto done;
    json_t *preds = json_array();
    for (int k = 0; k < o->topk; k++)
      json_array_append_new(preds, class_json(e, logits, ctx->rank[k].i));
    json_object_set_new(obj, "predictions", preds);
    json_object_set_new(obj, "options", options_json(o, e, p.layer, predict_only));
  }
  double total = ms_since(t_start);
  for (int i = 0; i < n_inputs; i++) {
    json_t *t = json_object();
    json_object_set_new(t, "decode", json_real(tm.decode));
    json_object_set_new(t, "preprocess", json_real(tm.preprocess));
    json_object_set_new(t, "forward", json_real(tm.forward));
    json_object_set_new(t, "backward", json_real(tm.backward));
    json_object_set_new(t, "cam", json_real(tm.cam));
    json_object_set_new(t, "render", json_real(tm.render));
    json_object_set_new(t, "total", json_real(total));
    json_object_set_new(t, "batch_size", json_integer(n_inputs));
    json_object_set_new(json_array_get(objs, (size_t)i), "timings_ms", t);
  }
  json_t *top = n_inputs == 1 ? json_array_get(objs, 0) : objs;
  result->json = json_dumps(top, JSON_COMPACT | JSON_REAL_PRECISION(9));
  if (!result->json) {
    rc = camd_error_set(err, CAMD_E_NOMEM, "explain: out of memory writing the JSON result");
    goto done;
  }
  result->json_len = strlen(result->json);
  rc = 0;
done:
  json_decref(objs);
  if (imgs)
    for (int i = 0; i < n_inputs; i++) camd_image_free(&imgs[i]);
  free(imgs);
  free(infos);
  free(crops);
  if (rc) camd_explain_result_free(result);
  return rc;
}

void camd_explain_result_free(camd_explain_result *r) {
  if (!r) return;
  free(r->json);
  free(r->png);
  memset(r, 0, sizeof(*r));
}
