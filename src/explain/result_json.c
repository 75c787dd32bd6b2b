/* The JSON of an explain result: the one place where explain's answers are written (the README's
 * "Response (explain)"; the server adds only its envelope). Keys are set in the order clients
 * see them; jansson keeps insertion order. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "camd/core.h"
#include "explain/explain_internal.h"

static const char *const stage_names[] = {
#define STAGE_NAME(e, name) name,
    CAMD_EXPLAIN_STAGES(STAGE_NAME)
#undef STAGE_NAME
};
_Static_assert(sizeof(stage_names) / sizeof(stage_names[0]) == CAMD_STAGE_COUNT,
               "one name per timed stage");
_Static_assert(sizeof(((camd_explain_timings *)0)->ms) / sizeof(double) == CAMD_STAGE_COUNT,
               "camd_explain_timings holds one time per stage");

const char *camd_explain_stage_name(camd_explain_stage s) {
  return (unsigned)s < CAMD_STAGE_COUNT ? stage_names[s] : NULL;
}

static json_t *jreal(double v) {
  return isfinite(v) ? json_real(v) : json_null();
}

/* ---- blobs (PNG, DICOM) in the JSON text ----
 * jansson validates a string's UTF-8 when it is made and writes it character by character
 * through its UTF-8 iterator: for a 400x300 overlay (290 KB of base64) that was ~37 million
 * instructions, 4-5 ms of an explain request. So the tree holds a short reference string
 * "<nonce>:<item>:<blob>" in place of each blob, and camd_explain_json_text writes the blob's
 * base64 straight into the text where its reference stands. The nonce is 128 random bits drawn
 * once per process and never written out: no string a client sends can equal a reference. */
enum { BLOB_SLOTS_PER_MAP = 4, NONCE_HEX = 32 };
static char blob_nonce[NONCE_HEX + 1];
static pthread_once_t blob_nonce_once = PTHREAD_ONCE_INIT;

static void blob_nonce_init(void) {
  unsigned char r[NONCE_HEX / 2];
  size_t got = 0;
  while (got < sizeof(r)) {
    ssize_t k = getrandom(r + got, sizeof(r) - got, 0);
    if (k <= 0) break;
    got += (size_t)k;
  }
  if (got < sizeof(r)) { /* no entropy source: clock and addresses still make it unguessable
                          * enough for a marker that never leaves the process */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t mix[2] = {(uint64_t)ts.tv_nsec ^ (uint64_t)(uintptr_t)&got,
                       (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)r};
    memcpy(r, mix, sizeof(r));
  }
  for (size_t i = 0; i < sizeof(r); i++) snprintf(blob_nonce + 2 * i, 3, "%02x", r[i]);
}

/* Blob `slot` of item it: maps in order (mask, heatmap, overlay, dicom each), then attachments. */
static const camd_explain_blob *item_blob(const camd_explain_item *it, long slot) {
  long maps = (long)it->n_maps * BLOB_SLOTS_PER_MAP;
  if (slot < 0) return NULL;
  if (slot < maps) {
    const camd_explain_map *m = &it->maps[slot / BLOB_SLOTS_PER_MAP];
    const camd_explain_blob *b[BLOB_SLOTS_PER_MAP] = {&m->mask, &m->heatmap, &m->overlay,
                                                      &m->dicom};
    return b[slot % BLOB_SLOTS_PER_MAP];
  }
  return slot - maps < it->n_attachments ? &it->attachments[slot - maps].blob : NULL;
}

/* The reference string standing for blob `slot` of item `item`; NULL when out of memory. */
static json_t *jblob(int item, long slot) {
  pthread_once(&blob_nonce_once, blob_nonce_init);
  char ref[NONCE_HEX + 48];
  snprintf(ref, sizeof(ref), "%s:%d:%ld", blob_nonce, item, slot);
  return json_string_nocheck(ref);
}

/* Sets key to v; false when v is NULL (out of memory) or the set fails. */
static bool put(json_t *obj, const char *key, json_t *v) {
  return v && json_object_set_new(obj, key, v) == 0;
}

/* Set / append that clear *ok when out of memory (v or obj NULL, or jansson failing): every
 * allocation failure ends in a NULL result, never in an answer with a value missing. */
static void oset(bool *ok, json_t *obj, const char *key, json_t *v) {
  if (!v || json_object_set_new(obj, key, v)) *ok = false; /* jansson drops v on failure */
}
static void aapp(bool *ok, json_t *arr, json_t *v) {
  if (!v || json_array_append_new(arr, v)) *ok = false;
}
/* obj, or NULL (obj released) when !ok. */
static json_t *checked(json_t *obj, bool ok) {
  if (ok) return obj;
  json_decref(obj);
  return NULL;
}

static json_t *class_json(const camd_explain_class *c) {
  json_t *o = json_object();
  bool ok = o != NULL;
  oset(&ok, o, "index", json_integer(c->index));
  oset(&ok, o, "label", json_string(c->label));
  oset(&ok, o, "score", jreal(c->score));
  oset(&ok, o, "probability", jreal(c->probability));
  return checked(o, ok);
}

/* raw / peak / bbox / mask / heatmap / overlay of one map, as its options asked. */
static bool map_outputs_json(const camd_explain_map *m, int item, long map, unsigned outputs,
                             json_t *x) {
  const long slot = map * BLOB_SLOTS_PER_MAP;
  if (outputs & CAMD_OUT_RAW) {
    json_t *vals = json_array();
    bool ok = vals != NULL;
    size_t count = (size_t)m->raw_width * (size_t)m->raw_height;
    for (size_t i = 0; ok && m->raw && i < count; i++) aapp(&ok, vals, jreal(m->raw[i]));
    vals = checked(vals, ok);
    if (!vals || !put(x, "raw",
                      json_pack("{s:i, s:i, s:o}", "width", m->raw_width, "height", m->raw_height,
                                "values", vals)))
      return false;
  }
  if (outputs & CAMD_OUT_BBOX) {
    const camd_bbox *b = &m->bbox;
    bool ok = put(x, "peak",
                  m->has_peak ? json_pack("{s:I, s:I, s:o}", "x", (json_int_t)m->peak_x, "y",
                                          (json_int_t)m->peak_y, "value", jreal(m->peak_value))
                              : json_null());
    ok = ok && put(x, "bbox",
                   b->found ? json_pack("{s:I, s:I, s:I, s:I, s:I}", "x0", (json_int_t)b->x0, "y0",
                                        (json_int_t)b->y0, "x1", (json_int_t)b->x1, "y1",
                                        (json_int_t)b->y1, "pixels", (json_int_t)b->pixels)
                            : json_null());
    if (!ok) return false;
  }
  if ((outputs & CAMD_OUT_MASK) && !put(x, "mask", jblob(item, slot))) return false;
  if ((outputs & CAMD_OUT_HEATMAP) && !put(x, "heatmap", jblob(item, slot + 1))) return false;
  if ((outputs & CAMD_OUT_OVERLAY) && !put(x, "overlay", jblob(item, slot + 2))) return false;
  if ((outputs & CAMD_OUT_DICOM) && m->dicom.data &&
      !put(x, "secondary_capture",
           json_pack("{s:s, s:s, s:o}", "series_instance_uid", m->dicom_uids.series_instance_uid,
                     "sop_instance_uid", m->dicom_uids.sop_instance_uid, "data",
                     jblob(item, slot + 3))))
    return false;
  return true;
}

static json_t *jcurve(const double *v, int n) {
  json_t *a = json_array();
  bool ok = a != NULL;
  for (int i = 0; ok && v && i < n; i++) aapp(&ok, a, jreal(v[i]));
  return checked(a, ok);
}

/* "quality" of one map (options metrics / quality): see camd_explain_map.quality. */
static json_t *quality_json(const camd_explain_map *m) {
  const struct camd_explain_quality *q = &m->quality;
  json_t *j = json_object();
  if (!j) return NULL;
  bool ok = put(j, "score", jreal(q->score)) && put(j, "forwards", json_integer(q->forwards)) &&
            put(j, "ms", jreal(q->ms));
  if (ok && (q->metrics & CAMD_METRIC_DROP_INCREASE))
    ok = put(j, "drop_increase",
             json_pack("{s:o, s:o, s:b}", "masked_score", jreal(q->masked), "average_drop",
                       jreal(q->average_drop), "increase_in_confidence", q->increase));
  if (ok && (q->metrics & CAMD_METRIC_DELETION))
    ok = put(j, "deletion",
             json_pack("{s:o, s:i, s:o}", "auc", jreal(q->deletion_auc), "steps", q->steps, "curve",
                       jcurve(q->deletion, q->steps + 1)));
  if (ok && (q->metrics & CAMD_METRIC_INSERTION))
    ok = put(j, "insertion",
             json_pack("{s:o, s:i, s:o}", "auc", jreal(q->insertion_auc), "steps", q->steps,
                       "curve", jcurve(q->insertion, q->steps + 1)));
  if (ok && (q->metrics & CAMD_METRIC_ROAD)) {
    json_t *pct = json_array();
    bool pct_ok = pct != NULL;
    for (int i = 0; pct_ok && i < CAMD_ROAD_LEVELS; i++)
      aapp(&pct_ok, pct, json_integer(10 * (i + 1)));
    pct = checked(pct, pct_ok);
    ok = put(j, "road",
             json_pack("{s:o, s:o, s:o, s:o, s:o}", "percentiles", pct, "morf",
                       jcurve(q->road_morf, CAMD_ROAD_LEVELS), "lerf",
                       jcurve(q->road_lerf, CAMD_ROAD_LEVELS), "morf_mean",
                       jreal(q->road_morf_mean), "lerf_mean", jreal(q->road_lerf_mean)));
  }
  if (!ok) {
    json_decref(j);
    return NULL;
  }
  return j;
}

static const char *window_source_name(camd_window_source s) {
  switch (s) {
    case CAMD_WINDOW_FROM_FILE_WINDOW:
      return "file_window";
    case CAMD_WINDOW_FROM_FILE_LUT:
      return "file_voi_lut";
    case CAMD_WINDOW_FROM_AUTO:
      return "auto";
    case CAMD_WINDOW_FROM_REQUEST:
      return "request";
  }
  return "unknown";
}

/* The window applied to a gray source: {center, width (null for a VOI LUT), function, source,
 * index? (the file's VOI), name? (preset), explanation?, fallback? (why DEFAULT fell back to
 * auto), inverted}. */
static json_t *window_json(const camd_window_used *w) {
  json_t *j = json_object();
  bool ok = j != NULL;
  oset(&ok, j, "center", jreal(w->center));
  oset(&ok, j, "width", jreal(w->width));
  oset(&ok, j, "function", json_string(camd_voi_function_name(w->function)));
  oset(&ok, j, "source", json_string(window_source_name(w->source)));
  if (w->source == CAMD_WINDOW_FROM_FILE_WINDOW || w->source == CAMD_WINDOW_FROM_FILE_LUT)
    oset(&ok, j, "index", json_integer(w->index));
  if (w->name[0]) oset(&ok, j, "name", json_string(w->name));
  if (w->explanation[0]) oset(&ok, j, "explanation", json_string(w->explanation));
  if (w->fallback) oset(&ok, j, "fallback", json_string(w->fallback_reason));
  oset(&ok, j, "inverted", json_boolean(w->inverted));
  return checked(j, ok);
}

/* A UID as JSON: the text, or null when the file had none (or an invalid one). */
static json_t *juid(const char *uid) {
  return uid[0] ? json_string(uid) : json_null();
}

/* "dicom" of a DICOM input: what the portal needs to match the answer to what it shows (UIDs,
 * frame, geometry, the window) and each map's peak and box in the frame's own pixel grid. Never
 * anything of the patient. */
static json_t *dicom_json(const camd_explain_item *it) {
  const camd_dicom_info *d = &it->dicom;
  json_t *j = json_object();
  bool ok = j != NULL;
  oset(&ok, j, "study_instance_uid", juid(d->study_instance_uid));
  oset(&ok, j, "series_instance_uid", juid(d->series_instance_uid));
  oset(&ok, j, "sop_instance_uid", juid(d->sop_instance_uid));
  oset(&ok, j, "sop_class_uid", juid(d->sop_class_uid));
  oset(&ok, j, "modality", json_string(d->modality));
  oset(&ok, j, "transfer_syntax",
       json_pack("{s:s, s:s}", "uid", d->transfer_syntax_uid, "name", d->transfer_syntax_name));
  oset(&ok, j, "frame", json_integer((json_int_t)it->frame));
  oset(&ok, j, "frames", json_integer((json_int_t)d->frames));
  oset(&ok, j, "rows", json_integer((json_int_t)d->rows));
  oset(&ok, j, "columns", json_integer((json_int_t)d->columns));
  oset(&ok, j, "photometric", json_string(d->photometric));
  oset(&ok, j, "pixel_spacing",
       d->has_pixel_spacing
           ? json_pack("[o, o]", jreal(d->pixel_spacing[0]), jreal(d->pixel_spacing[1]))
           : json_null());
  oset(&ok, j, "window", it->windowed ? window_json(&it->window) : json_null());
  json_t *maps = json_array();
  for (int k = 0; ok && maps && k < it->n_maps; k++) {
    const camd_explain_map *m = &it->maps[k];
    const camd_bbox *b = &m->bbox;
    aapp(&ok, maps,
         json_pack("{s:i, s:s, s:o, s:o, s:o}", "index", m->target.index, "label", m->target.label,
                   "probability", jreal(m->target.probability), "peak",
                   m->has_peak ? json_pack("{s:I, s:I, s:o}", "x", (json_int_t)m->peak_x, "y",
                                           (json_int_t)m->peak_y, "value", jreal(m->peak_value))
                               : json_null(),
                   "bbox",
                   b->found ? json_pack("{s:I, s:I, s:I, s:I, s:I}", "x0", (json_int_t)b->x0, "y0",
                                        (json_int_t)b->y0, "x1", (json_int_t)b->x1, "y1",
                                        (json_int_t)b->y1, "pixels", (json_int_t)b->pixels)
                            : json_null()));
  }
  oset(&ok, j, "maps", checked(maps, ok));
  return checked(j, ok);
}

static json_t *explanations_json(const camd_explain_result *r, const camd_explain_item *it,
                                 int item) {
  json_t *exps = json_array();
  for (int k = 0; exps && k < it->n_maps; k++) {
    const camd_explain_map *m = &it->maps[k];
    json_t *x = class_json(&m->target);
    bool ok = true;
    aapp(&ok, exps, x);
    if (ok && m->region) {
      json_t *t = json_pack("{s:s}", "kind", m->region);
      if (t && !strncmp(m->region, "reference", 9))
        oset(&ok, x, "similarity", jreal(m->target.score));
      else if (t && ok)
        oset(&ok, t, "pixels", json_integer((json_int_t)m->region_pixels));
      if (ok) oset(&ok, x, "region", checked(t, ok));
    }
    if (ok) oset(&ok, x, "method", json_string(camd_cam_method_name(r->options.method)));
    if (ok) oset(&ok, x, "layer", json_string(r->layer));
    if (!ok || !map_outputs_json(m, item, k, r->options.outputs, x) ||
        (m->quality.metrics && !put(x, "quality", quality_json(m)))) {
      json_decref(exps);
      return NULL;
    }
  }
  return exps;
}

static json_t *attachments_json(const camd_explain_item *it, int item) {
  json_t *a = json_object();
  long first = (long)it->n_maps * BLOB_SLOTS_PER_MAP;
  for (int k = 0; a && k < it->n_attachments; k++) {
    if (!put(a, it->attachments[k].name, jblob(item, first + k))) {
      json_decref(a);
      return NULL;
    }
  }
  return a;
}

/* The model's preprocessing as the options echo shows it. */
static json_t *preprocessing_json(const camd_preprocess_opts *pp) {
  json_t *pre = json_object(), *mean = json_array(), *std = json_array();
  bool ok = pre && mean && std;
  if (!ok) {
    json_decref(mean);
    json_decref(std);
    return checked(pre, false);
  }
  oset(&ok, pre, "resize", json_string(camd__resize_name(pp->mode)));
  if (pp->mode == CAMD_RESIZE_SHORTER)
    oset(&ok, pre, "resize_shorter", json_integer((json_int_t)pp->resize_shorter));
  oset(&ok, pre, "width", json_integer((json_int_t)pp->width));
  oset(&ok, pre, "height", json_integer((json_int_t)pp->height));
  oset(&ok, pre, "scale", camd__json_float(pp->scale));
  for (int c = 0; c < pp->channels; c++) {
    aapp(&ok, mean, camd__json_float(pp->mean[c]));
    aapp(&ok, std, camd__json_float(pp->std[c]));
  }
  oset(&ok, pre, "mean", mean);
  oset(&ok, pre, "std", std);
  oset(&ok, pre, "channel_order", json_string(camd__channel_order_name(pp)));
  return checked(pre, ok);
}

/* The explanation options of the echo (not with predict_only). */
static bool explain_options_json(const camd_explain_result *r, json_t *j) {
  const camd_explain_options *o = &r->options;
  bool ok = true;
  oset(&ok, j, "method", json_string(camd_cam_method_name(o->method)));
  oset(&ok, j, "layer", json_string(r->layer));
  oset(&ok, j, "layer_layout",
       json_string(o->layer_layout == CAMD_LAYOUT_UNKNOWN ? "auto"
                                                          : camd_layout_name(o->layer_layout)));
  if (o->n_targets) {
    json_t *t = json_array();
    for (int i = 0; t && i < o->n_targets; i++) aapp(&ok, t, json_integer(o->targets[i]));
    oset(&ok, j, "target", checked(t, ok));
  } else {
    char buf[32];
    snprintf(buf, sizeof(buf), "top%d", o->target_topk);
    oset(&ok, j, "target", json_string(buf));
  }
  if (o->has_box) {
    json_t *b = json_array();
    for (int i = 0; b && i < 4; i++) aapp(&ok, b, json_integer(o->box[i]));
    oset(&ok, j, "box", checked(b, ok));
  }
  oset(&ok, j, "score", json_string(camd_explain_score_name(o->score)));
  oset(&ok, j, "relu", json_boolean(o->relu));
  oset(&ok, j, "normalize", json_string(camd_explain_normalize_name(o->normalize)));
  oset(&ok, j, "aug_smooth", json_boolean(o->aug_smooth));
  oset(&ok, j, "eigen_smooth", json_boolean(o->eigen_smooth));
  oset(&ok, j, "colormap", json_string(camd_colormap_name(o->colormap)));
  oset(&ok, j, "alpha", camd__json_float(o->alpha));
  json_t *outs = json_array();
  for (int i = 0; outs && i < CAMD_OUT_COUNT; i++)
    if (o->outputs & (1u << i)) aapp(&ok, outs, json_string(camd_explain_output_name(i)));
  oset(&ok, j, "outputs", checked(outs, ok));
  oset(&ok, j, "bbox_threshold", camd__json_float(o->bbox_threshold));
  oset(&ok, j, "n_samples", json_integer(o->n_samples));
  oset(&ok, j, "noise_std", camd__json_float(o->noise_std));
  oset(&ok, j, "seed", json_integer((json_int_t)o->seed));
  oset(&ok, j, "finer_alpha", camd__json_float(o->finer_alpha));
  oset(&ok, j, "finer_compare", json_integer(o->finer_compare));
  oset(&ok, j, "gamma",
       o->kpca_gamma > 0.0f ? camd__json_float(o->kpca_gamma) : json_string("auto"));
  json_t *metrics = json_array();
  for (int i = 0; metrics && i < CAMD_METRIC_COUNT; i++)
    if (o->metrics & (1u << i)) aapp(&ok, metrics, json_string(camd_explain_metric_name(i)));
  oset(&ok, j, "metrics", checked(metrics, ok));
  oset(&ok, j, "quality_steps", json_integer(o->quality_steps));
  oset(&ok, j, "road_noise", camd__json_float(o->road_noise));
  return ok;
}

static json_t *options_json(const camd_explain_result *r) {
  const camd_explainer *e = r->explainer;
  json_t *j = json_object();
  if (!j) return NULL;
  bool ok = r->predict_only || explain_options_json(r, j);
  oset(&ok, j, "topk", json_integer(r->options.topk));
  char window[64];
  camd_window_format(&r->options.window, window, sizeof(window));
  oset(&ok, j, "window", json_string(window));
  oset(&ok, j, "frame", json_integer((json_int_t)r->options.frame));
  oset(&ok, j, "activation", json_string(camd__activation_name(e->activation)));
  oset(&ok, j, "preprocessing", preprocessing_json(&e->cfg.preprocess));
  return checked(j, ok);
}

static json_t *timings_json(const camd_explain_timings *t) {
  json_t *j = json_object();
  bool ok = j != NULL;
  for (int s = 0; ok && s < CAMD_STAGE_COUNT; s++)
    oset(&ok, j, stage_names[s], json_real(t->ms[s]));
  if (ok) oset(&ok, j, "total", json_real(t->total_ms));
  if (ok) oset(&ok, j, "batch_size", json_integer(t->batch_size));
  return checked(j, ok);
}

/* Segmentation: {width, height, classes: [{index, label, pixels, fraction}]}, the topk classes
 * that win the most output pixels (argmax), most first (ties: lower index), none with 0 pixels. */
static json_t *segmentation_json(const camd_explain_result *r, const camd_explain_item *it) {
  json_t *j = json_pack("{s:i, s:i}", "width", it->seg_width, "height", it->seg_height);
  json_t *cl = json_array();
  bool ok = j && cl;
  double total = (double)it->seg_width * (double)it->seg_height;
  unsigned char *used = calloc((size_t)it->n_seg_classes, 1);
  ok = ok && used;
  for (int k = 0; ok && k < r->options.topk && k < it->n_seg_classes; k++) {
    int best = -1;
    for (int c = 0; c < it->n_seg_classes; c++)
      if (!used[c] && (best < 0 || it->seg_pixels[c] > it->seg_pixels[best])) best = c;
    if (best < 0 || it->seg_pixels[best] == 0) break;
    used[best] = 1;
    aapp(&ok, cl,
         json_pack("{s:i, s:s, s:I, s:o}", "index", best, "label",
                   camd_explainer_label(r->explainer, best), "pixels",
                   (json_int_t)it->seg_pixels[best], "fraction",
                   jreal((double)it->seg_pixels[best] / total)));
  }
  free(used);
  if (j)
    oset(&ok, j, "classes", checked(cl, ok));
  else
    json_decref(cl);
  return checked(j, ok);
}

static json_t *predictions_json(const camd_explain_item *it) {
  json_t *preds = json_array();
  bool ok = preds != NULL;
  for (int k = 0; ok && k < it->n_predictions; k++)
    aapp(&ok, preds, class_json(&it->predictions[k]));
  return checked(preds, ok);
}

json_t *camd_explain_item_json(const camd_explain_result *r, int i, int index) {
  if (!r || !r->explainer || i < 0 || i >= r->n_items || r->items[i].status) return NULL;
  const camd_explain_item *it = &r->items[i];
  const camd_explainer *e = r->explainer;
  json_t *obj = json_object();
  if (!obj) return NULL;
  bool ok = put(obj, "model", json_pack("{s:s, s:s}", "name", e->cfg.name, "sha256", e->sha256)) &&
            put(obj, "camd_version", json_string(CAMD_VERSION));
  if (ok && !r->predict_only)
    ok = put(obj, "method", json_string(camd_cam_method_name(r->options.method))) &&
         put(obj, "layer", json_string(r->layer));
  bool dicom = it->info.format == CAMD_IMAGE_FORMAT_DICOM;
  json_t *image =
      json_pack("{s:i, s:I, s:I, s:s, s:i}", "index", index, "width", (json_int_t)it->width,
                "height", (json_int_t)it->height, "format", camd_image_format_name(it->info.format),
                "orientation", it->info.orientation);
  if (!ok || (image && it->windowed && !dicom && !put(image, "window", window_json(&it->window)))) {
    json_decref(image);
    image = NULL;
  }
  ok = ok && put(obj, "image", image) && (!dicom || put(obj, "dicom", dicom_json(it))) &&
       put(obj, "input",
           json_pack("{s:I, s:I, s:{s:o, s:o, s:o, s:o}}", "width", (json_int_t)it->input_width,
                     "height", (json_int_t)it->input_height, "crop", "x", jreal(it->crop.x), "y",
                     jreal(it->crop.y), "width", jreal(it->crop.w), "height", jreal(it->crop.h))) &&
       (it->seg_pixels       ? put(obj, "segmentation", segmentation_json(r, it))
        : it->embedding_size ? put(obj, "embedding",
                                   json_pack("{s:i, s:o}", "size", it->embedding_size, "norm",
                                             jreal(it->embedding_norm)))
                             : put(obj, "predictions", predictions_json(it)));
  if (ok && !r->predict_only) ok = put(obj, "explanations", explanations_json(r, it, i));
  if (ok && it->n_attachments) ok = put(obj, "attachments", attachments_json(it, i));
  ok = ok && put(obj, "options", options_json(r)) &&
       put(obj, "timings_ms", timings_json(&r->timings));
  if (!ok) {
    json_decref(obj);
    return NULL;
  }
  return obj;
}

static int dump_to_buf(const char *buffer, size_t size, void *data) {
  return camd_buf_append(data, buffer, size) ? 0 : -1;
}

/* The blob a reference at text[0..] ("<nonce>:<item>:<slot>" up to its closing quote) names, and
 * the reference's length; NULL when it names none. */
static const camd_explain_blob *parse_blob_ref(const char *text, const camd_explain_result *r,
                                               size_t *ref_len) {
  char *end;
  const char *p = text + NONCE_HEX;
  if (*p++ != ':') return NULL;
  long item = strtol(p, &end, 10);
  if (end == p || *end != ':' || !r || item < 0 || item >= r->n_items) return NULL;
  p = end + 1;
  long slot = strtol(p, &end, 10);
  if (end == p || *end != '"') return NULL;
  *ref_len = (size_t)(end - text);
  return item_blob(&r->items[item], slot);
}

char *camd_explain_json_text(const json_t *j, const camd_explain_result *r, size_t *len) {
  /* json_dump_callback into a camd_buf rather than json_dumps: jansson 2.14 can drop a failed
   * append inside json_dumps and return text with a piece missing; the buffer remembers any
   * failed append, and then there is no text at all. */
  if (!j) return NULL;
  camd_buf b;
  camd_buf_init(&b);
  if (json_dump_callback(j, dump_to_buf, &b, JSON_COMPACT | JSON_REAL_PRECISION(9)) || b.failed ||
      !camd_buf_append(&b, "", 0) || !b.data) {
    camd_buf_free(&b);
    return NULL;
  }
  size_t text_len = 0;
  char *text = camd_buf_take(&b, &text_len);
  pthread_once(&blob_nonce_once, blob_nonce_init);
  /* Pass 1 sizes the answer, pass 2 writes it: text between references, base64 for each. */
  size_t total = 0, ref_len = 0, refs = 0;
  char *out = NULL;
  for (int pass = 0; pass < 2; pass++) {
    size_t o = 0;
    const char *from = text, *q;
    while ((q = strstr(from, blob_nonce)) != NULL) {
      const camd_explain_blob *blob = parse_blob_ref(q, r, &ref_len);
      if (!blob) { /* cannot happen: only jblob writes the nonce */
        free(text);
        free(out);
        return NULL;
      }
      size_t n = (size_t)(q - from);
      if (out) memcpy(out + o, from, n);
      o += n;
      o += out ? camd_base64_encode_into(blob->data, blob->len, out + o)
               : camd_base64_encoded_len(blob->len);
      from = q + ref_len;
      refs++;
    }
    size_t n = text_len - (size_t)(from - text);
    if (out) memcpy(out + o, from, n + 1); /* with the NUL */
    o += n;
    if (pass == 0) {
      total = o;
      if (!refs || !(out = malloc(total + 1))) break;
    }
  }
  if (!refs) {
    if (len) *len = text_len;
    return text;
  }
  free(text);
  if (out && len) *len = total;
  return out;
}
