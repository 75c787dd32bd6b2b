/* The JSON of an explain result: the one place where explain's answers are written (the README's
 * "Response (explain)"; the server adds only its envelope). Keys are set in the order clients
 * see them; jansson keeps insertion order. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* A base64 string of the blob; NULL when out of memory. */
static json_t *jbase64(const camd_explain_blob *b) {
  char *text = camd_base64_encode(b->data, b->len, NULL);
  json_t *j = text ? json_string(text) : NULL;
  free(text);
  return j;
}

/* Sets key to v; false when v is NULL (out of memory) or the set fails. */
static bool put(json_t *obj, const char *key, json_t *v) {
  return v && json_object_set_new(obj, key, v) == 0;
}

static json_t *class_json(const camd_explain_class *c) {
  json_t *o = json_object();
  if (!o) return NULL;
  json_object_set_new(o, "index", json_integer(c->index));
  json_object_set_new(o, "label", json_string(c->label));
  json_object_set_new(o, "score", jreal(c->score));
  json_object_set_new(o, "probability", jreal(c->probability));
  return o;
}

/* raw / peak / bbox / mask / heatmap / overlay of one map, as its options asked. */
static bool map_outputs_json(const camd_explain_map *m, unsigned outputs, json_t *x) {
  if (outputs & CAMD_OUT_RAW) {
    json_t *vals = json_array();
    size_t count = (size_t)m->raw_width * (size_t)m->raw_height;
    for (size_t i = 0; vals && m->raw && i < count; i++)
      json_array_append_new(vals, jreal(m->raw[i]));
    if (!put(x, "raw",
             json_pack("{s:i, s:i, s:o}", "width", m->raw_width, "height", m->raw_height, "values",
                       vals)))
      return false;
  }
  if (outputs & CAMD_OUT_BBOX) {
    const camd_bbox *b = &m->bbox;
    put(x, "peak",
        m->has_peak ? json_pack("{s:I, s:I, s:o}", "x", (json_int_t)m->peak_x, "y",
                                (json_int_t)m->peak_y, "value", jreal(m->peak_value))
                    : json_null());
    put(x, "bbox",
        b->found ? json_pack("{s:I, s:I, s:I, s:I, s:I}", "x0", (json_int_t)b->x0, "y0",
                             (json_int_t)b->y0, "x1", (json_int_t)b->x1, "y1", (json_int_t)b->y1,
                             "pixels", (json_int_t)b->pixels)
                 : json_null());
  }
  if ((outputs & CAMD_OUT_MASK) && !put(x, "mask", jbase64(&m->mask))) return false;
  if ((outputs & CAMD_OUT_HEATMAP) && !put(x, "heatmap", jbase64(&m->heatmap))) return false;
  if ((outputs & CAMD_OUT_OVERLAY) && !put(x, "overlay", jbase64(&m->overlay))) return false;
  if ((outputs & CAMD_OUT_DICOM) && m->dicom.data &&
      !put(x, "secondary_capture",
           json_pack("{s:s, s:s, s:o}", "series_instance_uid", m->dicom_uids.series_instance_uid,
                     "sop_instance_uid", m->dicom_uids.sop_instance_uid, "data",
                     jbase64(&m->dicom))))
    return false;
  return true;
}

static json_t *jcurve(const double *v, int n) {
  json_t *a = json_array();
  for (int i = 0; a && v && i < n; i++) json_array_append_new(a, jreal(v[i]));
  return a;
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
    for (int i = 0; pct && i < CAMD_ROAD_LEVELS; i++)
      json_array_append_new(pct, json_integer(10 * (i + 1)));
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
  if (!j) return NULL;
  json_object_set_new(j, "center", jreal(w->center));
  json_object_set_new(j, "width", jreal(w->width));
  json_object_set_new(j, "function", json_string(camd_voi_function_name(w->function)));
  json_object_set_new(j, "source", json_string(window_source_name(w->source)));
  if (w->source == CAMD_WINDOW_FROM_FILE_WINDOW || w->source == CAMD_WINDOW_FROM_FILE_LUT)
    json_object_set_new(j, "index", json_integer(w->index));
  if (w->name[0]) json_object_set_new(j, "name", json_string(w->name));
  if (w->explanation[0]) json_object_set_new(j, "explanation", json_string(w->explanation));
  if (w->fallback) json_object_set_new(j, "fallback", json_string(w->fallback_reason));
  json_object_set_new(j, "inverted", json_boolean(w->inverted));
  return j;
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
  if (!j) return NULL;
  json_object_set_new(j, "study_instance_uid", juid(d->study_instance_uid));
  json_object_set_new(j, "series_instance_uid", juid(d->series_instance_uid));
  json_object_set_new(j, "sop_instance_uid", juid(d->sop_instance_uid));
  json_object_set_new(j, "sop_class_uid", juid(d->sop_class_uid));
  json_object_set_new(j, "modality", json_string(d->modality));
  json_object_set_new(
      j, "transfer_syntax",
      json_pack("{s:s, s:s}", "uid", d->transfer_syntax_uid, "name", d->transfer_syntax_name));
  json_object_set_new(j, "frame", json_integer((json_int_t)it->frame));
  json_object_set_new(j, "frames", json_integer((json_int_t)d->frames));
  json_object_set_new(j, "rows", json_integer((json_int_t)d->rows));
  json_object_set_new(j, "columns", json_integer((json_int_t)d->columns));
  json_object_set_new(j, "photometric", json_string(d->photometric));
  json_object_set_new(j, "pixel_spacing",
                      d->has_pixel_spacing ? json_pack("[o, o]", jreal(d->pixel_spacing[0]),
                                                       jreal(d->pixel_spacing[1]))
                                           : json_null());
  json_object_set_new(j, "window", it->windowed ? window_json(&it->window) : json_null());
  json_t *maps = json_array();
  for (int k = 0; maps && k < it->n_maps; k++) {
    const camd_explain_map *m = &it->maps[k];
    const camd_bbox *b = &m->bbox;
    json_array_append_new(
        maps,
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
  if (!put(j, "maps", maps)) {
    json_decref(j);
    return NULL;
  }
  return j;
}

static json_t *explanations_json(const camd_explain_result *r, const camd_explain_item *it) {
  json_t *exps = json_array();
  for (int k = 0; exps && k < it->n_maps; k++) {
    const camd_explain_map *m = &it->maps[k];
    json_t *x = class_json(&m->target);
    if (!x || json_array_append_new(exps, x)) break;
    json_object_set_new(x, "method", json_string(camd_cam_method_name(r->options.method)));
    json_object_set_new(x, "layer", json_string(r->layer));
    if (!map_outputs_json(m, r->options.outputs, x) ||
        (m->quality.metrics && !put(x, "quality", quality_json(m)))) {
      json_decref(exps);
      return NULL;
    }
  }
  return exps;
}

static json_t *attachments_json(const camd_explain_item *it) {
  json_t *a = json_object();
  for (int k = 0; a && k < it->n_attachments; k++) {
    if (!put(a, it->attachments[k].name, jbase64(&it->attachments[k].blob))) {
      json_decref(a);
      return NULL;
    }
  }
  return a;
}

/* The model's preprocessing as the options echo shows it. */
static json_t *preprocessing_json(const camd_preprocess_opts *pp) {
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
  json_object_set_new(pre, "channel_order", json_string(camd__channel_order_name(pp)));
  return pre;
}

/* The explanation options of the echo (not with predict_only). */
static void explain_options_json(const camd_explain_result *r, json_t *j) {
  const camd_explain_options *o = &r->options;
  json_object_set_new(j, "method", json_string(camd_cam_method_name(o->method)));
  json_object_set_new(j, "layer", json_string(r->layer));
  json_object_set_new(
      j, "layer_layout",
      json_string(o->layer_layout == CAMD_LAYOUT_UNKNOWN ? "auto"
                                                         : camd_layout_name(o->layer_layout)));
  if (o->n_targets) {
    json_t *t = json_array();
    for (int i = 0; i < o->n_targets; i++) json_array_append_new(t, json_integer(o->targets[i]));
    json_object_set_new(j, "target", t);
  } else {
    char buf[32];
    snprintf(buf, sizeof(buf), "top%d", o->target_topk);
    json_object_set_new(j, "target", json_string(buf));
  }
  json_object_set_new(j, "score", json_string(camd_explain_score_name(o->score)));
  json_object_set_new(j, "relu", json_boolean(o->relu));
  json_object_set_new(j, "normalize", json_string(camd_explain_normalize_name(o->normalize)));
  json_object_set_new(j, "aug_smooth", json_boolean(o->aug_smooth));
  json_object_set_new(j, "eigen_smooth", json_boolean(o->eigen_smooth));
  json_object_set_new(j, "colormap", json_string(camd_colormap_name(o->colormap)));
  json_object_set_new(j, "alpha", camd__json_float(o->alpha));
  json_t *outs = json_array();
  for (int i = 0; i < CAMD_OUT_COUNT; i++)
    if (o->outputs & (1u << i))
      json_array_append_new(outs, json_string(camd_explain_output_name(i)));
  json_object_set_new(j, "outputs", outs);
  json_object_set_new(j, "bbox_threshold", camd__json_float(o->bbox_threshold));
  json_object_set_new(j, "n_samples", json_integer(o->n_samples));
  json_object_set_new(j, "noise_std", camd__json_float(o->noise_std));
  json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
  json_t *metrics = json_array();
  for (int i = 0; i < CAMD_METRIC_COUNT; i++)
    if (o->metrics & (1u << i))
      json_array_append_new(metrics, json_string(camd_explain_metric_name(i)));
  json_object_set_new(j, "metrics", metrics);
  json_object_set_new(j, "quality_steps", json_integer(o->quality_steps));
  json_object_set_new(j, "road_noise", camd__json_float(o->road_noise));
}

static json_t *options_json(const camd_explain_result *r) {
  const camd_explainer *e = r->explainer;
  json_t *j = json_object();
  if (!j) return NULL;
  if (!r->predict_only) explain_options_json(r, j);
  json_object_set_new(j, "topk", json_integer(r->options.topk));
  char window[64];
  camd_window_format(&r->options.window, window, sizeof(window));
  json_object_set_new(j, "window", json_string(window));
  json_object_set_new(j, "frame", json_integer((json_int_t)r->options.frame));
  json_object_set_new(j, "activation", json_string(camd__activation_name(e->activation)));
  json_object_set_new(j, "preprocessing", preprocessing_json(&e->cfg.preprocess));
  return j;
}

static json_t *timings_json(const camd_explain_timings *t) {
  json_t *j = json_object();
  for (int s = 0; j && s < CAMD_STAGE_COUNT; s++)
    json_object_set_new(j, stage_names[s], json_real(t->ms[s]));
  json_object_set_new(j, "total", json_real(t->total_ms));
  json_object_set_new(j, "batch_size", json_integer(t->batch_size));
  return j;
}

static json_t *predictions_json(const camd_explain_item *it) {
  json_t *preds = json_array();
  for (int k = 0; preds && k < it->n_predictions; k++)
    json_array_append_new(preds, class_json(&it->predictions[k]));
  return preds;
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
       put(obj, "predictions", predictions_json(it));
  if (ok && !r->predict_only) ok = put(obj, "explanations", explanations_json(r, it));
  if (ok && it->n_attachments) ok = put(obj, "attachments", attachments_json(it));
  ok = ok && put(obj, "options", options_json(r)) &&
       put(obj, "timings_ms", timings_json(&r->timings));
  if (!ok) {
    json_decref(obj);
    return NULL;
  }
  return obj;
}

char *camd_explain_json_text(const json_t *j, size_t *len) {
  char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
  if (text && len) *len = strlen(text);
  return text;
}
