/* Request options: defaults and the one strict key=value parser every front end uses. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "camd/cam.h"
#include "camd/core.h"
#include "explain/explain_internal.h"

#define OPTION_VALUE_MAX 4096
#define TOPK_MAX 1000
#define N_SAMPLES_MAX 256
#define CAMD__STR2(x) #x
#define CAMD__STR(x) CAMD__STR2(x)
#define NOISE_STD_MAX 100.0
#define FINER_ALPHA_MAX 100.0
#define FINER_COMPARE_MAX 64
#define SEED_MAX 9007199254740991LL /* 2^53 - 1: exact in every JSON client */
#define FRAME_MAX 1000000           /* option frame; the file's NumberOfFrames decides at decode */

#define OPTION_KEYS                                                                      \
  "method, layer, layer_layout, target, topk, score, relu, normalize, aug_smooth, "      \
  "eigen_smooth, colormap, alpha, outputs, bbox_threshold, n_samples, noise_std, seed, " \
  "finer_alpha, finer_compare, gamma, window, frame, quality, metrics, quality_steps, "  \
  "road_noise, box, mask (segmentation), reference, reference_image (embedding)"
#define METRIC_NAMES "drop_increase, deletion, insertion, road (or all, none)"
#define ROAD_NOISE_MAX 1.0
#define OUTPUT_NAMES "overlay, heatmap, mask, raw, bbox, dicom (or all, none)"
#define BOOL_NAMES "true, false, 1, 0, yes, no, on, off"

static const char *const output_names[] = {
#define OUT_NAME(e, name) name,
    CAMD_EXPLAIN_OUTPUTS(OUT_NAME)
#undef OUT_NAME
};
_Static_assert(sizeof(output_names) / sizeof(output_names[0]) == CAMD_OUT_COUNT,
               "one name per CAMD_OUT_* bit");
_Static_assert(CAMD_OUT_ALL == (CAMD_OUT_OVERLAY | CAMD_OUT_HEATMAP | CAMD_OUT_MASK | CAMD_OUT_RAW |
                                CAMD_OUT_BBOX | CAMD_OUT_DICOM),
               "CAMD_OUT_ALL covers every output");
static const char *const metric_names[] = {
#define METRIC_NAME(e, name) name,
    CAMD_EXPLAIN_METRICS(METRIC_NAME)
#undef METRIC_NAME
};
_Static_assert(sizeof(metric_names) / sizeof(metric_names[0]) == CAMD_METRIC_COUNT,
               "one name per CAMD_METRIC_* bit");
static const char *const score_names[CAMD_EXPLAIN_SCORE_COUNT] = {"logit", "softmax", "sigmoid",
                                                                  "output"};
static const char *const normalize_names[CAMD_NORMALIZE_COUNT] = {"minmax", "none"};

const char *camd_explain_output_name(int i) {
  return i >= 0 && i < CAMD_OUT_COUNT ? output_names[i] : NULL;
}
const char *camd_explain_metric_name(int bit) {
  return bit >= 0 && bit < CAMD_METRIC_COUNT ? metric_names[bit] : NULL;
}
long camd_explain_quality_forwards(const camd_explain_options *o) {
  long n = 0, steps = o->quality_steps;
  if (o->metrics & CAMD_METRIC_DROP_INCREASE) n += 1;
  if (o->metrics & CAMD_METRIC_DELETION) n += steps;
  if (o->metrics & CAMD_METRIC_INSERTION) n += steps;
  if (o->metrics & CAMD_METRIC_ROAD) n += 2 * CAMD_ROAD_LEVELS;
  return n;
}
const char *camd_explain_score_name(camd_explain_score s) {
  return (unsigned)s < CAMD_EXPLAIN_SCORE_COUNT ? score_names[s] : NULL;
}
const char *camd_explain_normalize_name(camd_explain_normalize n) {
  return (unsigned)n < CAMD_NORMALIZE_COUNT ? normalize_names[n] : NULL;
}

/* Index of name in names[n] (exact), -1 when absent. */
static int find_name(const char *const *names, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (!strcmp(names[i], name)) return i;
  return -1;
}

void camd_explain_options_init(camd_explain_options *o, const camd_explainer *e) {
  memset(o, 0, sizeof(*o));
  o->method = e ? e->default_method : CAMD_CAM_GRADCAM;
  if (e) snprintf(o->layer, sizeof(o->layer), "%s", e->default_layer);
  o->layer_layout = CAMD_LAYOUT_UNKNOWN; /* the graph's, else the config's layer_layout */
  o->n_targets = 0;
  o->target_topk = 1;
  o->topk = 5;
  if (e && e->n_labels < o->topk) o->topk = e->n_labels;
  o->score = CAMD_EXPLAIN_SCORE_LOGIT;
  o->relu = true;
  o->normalize = CAMD_NORMALIZE_MINMAX;
  o->aug_smooth = false;
  o->eigen_smooth = false;
  o->colormap = CAMD_COLORMAP_JET;
  o->alpha = 0.5f;
  o->outputs = CAMD_OUT_OVERLAY | CAMD_OUT_BBOX;
  o->bbox_threshold = 0.2f;
  o->n_samples = 16;
  o->noise_std = 0.2f;
  o->seed = 0;
  o->finer_alpha = 1.0f;
  o->finer_compare = 3;
  o->kpca_gamma = 0.0f;                 /* auto: 1 / channels */
  o->window.kind = CAMD_WINDOW_DEFAULT; /* the DICOM file's own first window */
  o->frame = 0;
  o->metrics = 0;
  o->quality_steps = 16;
  o->road_noise = 0.01f;
}

/* A field added to camd_explain_options must be compared here (and echoed by result_json.c's
 * options_json): this assert stops the build until the new size is written below. */
_Static_assert(sizeof(camd_explain_options) == 744 || sizeof(void *) != 8,
               "camd_explain_options changed: update camd_explain_options_equal and the echo");

bool camd_explain_options_equal(const camd_explain_options *a, const camd_explain_options *b) {
  if (a->method != b->method || strcmp(a->layer, b->layer) || a->layer_layout != b->layer_layout ||
      a->n_targets != b->n_targets || a->target_topk != b->target_topk || a->topk != b->topk ||
      a->score != b->score || a->relu != b->relu || a->normalize != b->normalize ||
      a->aug_smooth != b->aug_smooth || a->eigen_smooth != b->eigen_smooth ||
      a->colormap != b->colormap || a->alpha != b->alpha || a->outputs != b->outputs ||
      a->bbox_threshold != b->bbox_threshold || a->n_samples != b->n_samples ||
      a->noise_std != b->noise_std || a->seed != b->seed || a->frame != b->frame ||
      a->finer_alpha != b->finer_alpha || a->finer_compare != b->finer_compare ||
      a->kpca_gamma != b->kpca_gamma || a->window.kind != b->window.kind ||
      a->window.index != b->window.index || a->window.center != b->window.center ||
      a->window.width != b->window.width || strcmp(a->window.name, b->window.name) ||
      a->metrics != b->metrics || a->quality_steps != b->quality_steps ||
      a->road_noise != b->road_noise || a->has_box != b->has_box ||
      memcmp(a->box, b->box, sizeof(a->box)))
    return false;
  for (int i = 0; i < a->n_targets && i < CAMD_MAX_TARGETS; i++)
    if (a->targets[i] != b->targets[i]) return false;
  return true;
}

/* [+-]?[0-9]+: an integer as text (camd_parse_int then says whether it is in range). */
static bool is_int_text(const char *s) {
  s += *s == '+' || *s == '-';
  return *s && strspn(s, "0123456789") == strlen(s);
}

static int parse_bool(const char *v, bool *out) {
  static const char *const t[] = {"true", "1", "yes", "on"}, *const f[] = {"false", "0", "no",
                                                                           "off"};
  for (int i = 0; i < 4; i++) {
    if (!strcasecmp(v, t[i])) return *out = true, 0;
    if (!strcasecmp(v, f[i])) return *out = false, 0;
  }
  return -1;
}

static int bad(camd_error *err, const char *key, const char *value, const char *why) {
  return camd_error_set(err, CAMD_E_INVALID, "option %s='%.200s': %s", key, value, why);
}

/* Copies [s, s+n) without surrounding spaces into dst (cap bytes); false when too long. */
static bool trimmed(const char *s, size_t n, char *dst, size_t cap) {
  while (n && isspace((unsigned char)*s)) s++, n--;
  while (n && isspace((unsigned char)s[n - 1])) n--;
  if (n >= cap) return false;
  memcpy(dst, s, n);
  dst[n] = 0;
  return true;
}

/* True when label contains the whole text, or one of its words of 3+ letters (ignoring case). */
static bool label_similar(const char *label, const char *text) {
  if (strcasestr(label, text)) return true;
  char word[64];
  const char *s = text;
  while (*s) {
    while (*s && !isalnum((unsigned char)*s)) s++;
    size_t n = 0;
    while (isalnum((unsigned char)s[n])) n++;
    if (n >= 3 && n < sizeof(word)) {
      memcpy(word, s, n);
      word[n] = 0;
      if (strcasestr(label, word)) return true;
    }
    s += n;
  }
  return false;
}

/* Appends up to 5 labels similar to `text` to msg. */
static void suggest_labels(const camd_explainer *e, const char *text, char *msg, size_t cap) {
  int shown = 0;
  size_t len = strlen(msg);
  for (int i = 0; i < e->n_labels && shown < 5 && len + 1 < cap; i++) {
    if (!label_similar(e->labels[i], text)) continue;
    int n = snprintf(msg + len, cap - len, "%s%d '%.60s'", shown ? ", " : "; similar labels: ", i,
                     e->labels[i]);
    if (n < 0) break;
    len += (size_t)n < cap - len ? (size_t)n : cap - len - 1;
    shown++;
  }
}

/* "layer 'x' not found; CAM layers (deepest first): ..." or the engine's reason. */
int camd__explain_check_layer(const camd_explainer *e, const char *name, int *id, camd_error *err) {
  int v = camd_model_find_value(e->model, name);
  if (v < 0) {
    char msg[CAMD_ERROR_MESSAGE_MAX - 64];
    size_t len = 0, cap = sizeof(msg) - 40;
    int shown = 0, total = 0;
    len = (size_t)snprintf(
        msg, sizeof(msg),
        "layer '%.200s' not found; CAM layers (deepest first, default '%.200s'): ", name,
        e->default_layer);
    for (int i = camd_model_num_values(e->model) - 1; i >= 0; i--) {
      camd_value_info vi;
      if (!camd_model_is_cam_layer(e->model, i) || camd_model_value_info(e->model, i, &vi) ||
          !vi.name || !vi.name[0])
        continue;
      total++;
      size_t need = strlen(vi.name) + 4;
      if (shown == total - 1 && len < cap && need < cap - len) {
        len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s'%s'", shown ? ", " : "", vi.name);
        shown++;
      }
    }
    if (total > shown) snprintf(msg + len, sizeof(msg) - len, " and %d more", total - shown);
    return camd_error_set(err, CAMD_E_INVALID, "%s", msg);
  }
  int rc = camd_model_check_target(e->model, name, &v, err);
  if (rc) return rc;
  if (!camd_model_is_cam_layer(e->model, v))
    return camd_error_set(
        err, CAMD_E_INVALID,
        "layer '%.200s' is not a 4-D activation with spatial size > 1 or a token map; see the "
        "model's \"layers\" (GET /v1/models/{name} or `camd inspect`)",
        name);
  *id = v;
  return 0;
}

int camd__explain_check_layers(const camd_explainer *e, const char *list, int *ids, int *n,
                               camd_error *err) {
  *n = 0;
  int items = 1;
  for (const char *c = list; *c; c++) items += *c == ',';
  if (items > CAMD_CAM_MAX_LAYERS)
    return camd_error_set(err, CAMD_E_INVALID,
                          "%d layers in '%.200s'; at most %d are fused per request", items, list,
                          CAMD_CAM_MAX_LAYERS);
  const char *s = list;
  for (;;) {
    const char *comma = strchr(s, ',');
    size_t len = comma ? (size_t)(comma - s) : strlen(s);
    char item[512];
    if (!trimmed(s, len, item, sizeof(item)))
      return camd_error_set(err, CAMD_E_INVALID, "layer names are at most 511 bytes");
    if (!item[0])
      return camd_error_set(err, CAMD_E_INVALID,
                            "'%.200s' has an empty item; give one layer or a comma-separated "
                            "list of up to %d layers to fuse",
                            list, CAMD_CAM_MAX_LAYERS);
    int rc = camd__explain_check_layer(e, item, &ids[*n], err);
    if (rc) return rc;
    for (int j = 0; j < *n; j++)
      if (ids[j] == ids[*n])
        return camd_error_set(err, CAMD_E_INVALID, "layer '%.200s' is given twice", item);
    (*n)++;
    if (!comma) break;
    s = comma + 1;
  }
  return 0;
}

static int resolve_one_target(const camd_explainer *e, const char *item, const char *whole,
                              int *out, camd_error *err) {
  long long idx;
  int max = e ? e->n_labels - 1 : CAMD_EXPLAIN_MAX_CLASSES - 1;
  char msg[CAMD_ERROR_MESSAGE_MAX];
  if (is_int_text(item)) {
    if (camd_parse_int(item, 0, max, &idx)) {
      snprintf(msg, sizeof(msg), "class index %.40s is outside 0..%d%s", item, max,
               e ? " (the model's classes)" : "");
      return bad(err, "target", whole, msg);
    }
    *out = (int)idx;
    return 0;
  }
  if (!e) {
    snprintf(msg, sizeof(msg),
             "'%.100s' is not a class index and labels cannot be resolved without a model; "
             "valid: an index, a label, a comma list, or topK",
             item);
    return bad(err, "target", whole, msg);
  }
  int i = camd__explain_find_label(e, item);
  if (i < 0) {
    snprintf(msg, sizeof(msg),
             "'%.100s' is neither a class index (0..%d) nor a label of model '%s' (labels match "
             "exactly, ignoring case); valid: an index, a label, a comma list, or topK (K = "
             "1..%d)",
             item, max, e->cfg.name, CAMD_MAX_TARGETS);
    suggest_labels(e, item, msg, sizeof(msg));
    return bad(err, "target", whole, msg);
  }
  *out = i;
  return 0;
}

static int set_target(camd_explain_options *o, const camd_explainer *e, const char *v,
                      camd_error *err) {
  char msg[256];
  /* topK */
  if (!strncasecmp(v, "top", 3) && is_int_text(v + 3) && v[3] != '+' && v[3] != '-') {
    long long k;
    int kmax = CAMD_MAX_TARGETS;
    if (e && e->n_labels < kmax) kmax = e->n_labels;
    if (camd_parse_int(v + 3, 1, kmax, &k)) {
      snprintf(msg, sizeof(msg), "K must be within 1..%d%s", kmax,
               e && e->n_labels < CAMD_MAX_TARGETS ? " (the model's number of classes)"
                                                   : " (the most targets per request)");
      return bad(err, "target", v, msg);
    }
    o->n_targets = 0;
    o->target_topk = (int)k;
    return 0;
  }
  /* A whole label first: labels may contain commas ("tabby, tabby cat"). */
  if (e && !is_int_text(v)) {
    int i = camd__explain_find_label(e, v);
    if (i >= 0) {
      o->targets[0] = i;
      o->n_targets = 1;
      return 0;
    }
  }
  int targets[CAMD_MAX_TARGETS], n = 0;
  const char *s = v;
  for (;;) {
    const char *comma = strchr(s, ',');
    size_t len = comma ? (size_t)(comma - s) : strlen(s);
    char item[CAMD_LABEL_MAX + 1];
    if (!trimmed(s, len, item, sizeof(item)))
      return bad(err, "target", v, "an item is longer than 1024 bytes");
    if (!item[0])
      return bad(err, "target", v,
                 "empty item; valid: an index, a label, a comma list of them, or topK");
    if (n == CAMD_MAX_TARGETS) {
      snprintf(msg, sizeof(msg), "more than %d targets; the limit is %d per request",
               CAMD_MAX_TARGETS, CAMD_MAX_TARGETS);
      return bad(err, "target", v, msg);
    }
    int rc = resolve_one_target(e, item, v, &targets[n], err);
    if (rc) return rc;
    for (int j = 0; j < n; j++) {
      if (targets[j] == targets[n]) {
        snprintf(msg, sizeof(msg), "class %d is given twice", targets[n]);
        return bad(err, "target", v, msg);
      }
    }
    n++;
    if (!comma) break;
    s = comma + 1;
  }
  memcpy(o->targets, targets, sizeof(int) * (size_t)n);
  o->n_targets = n;
  return 0;
}

/* A comma-separated list of names (names[0..n-1], "all" = all_bits, "none") into bits; the
 * error names `key`, the unknown `what` and the valid list. */
static int parse_name_bits(const char *key, const char *what, const char *v,
                           const char *const *names, int n, unsigned all_bits, const char *valid,
                           unsigned *out, camd_error *err) {
  unsigned bits = 0;
  const char *s = v;
  for (;;) {
    const char *comma = strchr(s, ',');
    size_t len = comma ? (size_t)(comma - s) : strlen(s);
    char item[32], msg[256];
    if (!trimmed(s, len, item, sizeof(item)) || !item[0]) {
      snprintf(msg, sizeof(msg), "valid items (comma-separated): %s", valid);
      return bad(err, key, v, msg);
    }
    int k = 0;
    while (k < n && strcasecmp(item, names[k])) k++;
    if (k < n) {
      bits |= 1u << k;
    } else if (!strcasecmp(item, "all")) {
      bits |= all_bits;
    } else if (strcasecmp(item, "none")) {
      snprintf(msg, sizeof(msg), "unknown %s '%s'; valid: %s", what, item, valid);
      return bad(err, key, v, msg);
    }
    if (!comma) break;
    s = comma + 1;
  }
  *out = bits;
  return 0;
}

static int set_outputs(camd_explain_options *o, const char *v, camd_error *err) {
  return parse_name_bits("outputs", "output", v, output_names, CAMD_OUT_COUNT,
                         CAMD_OUT_ALL_PICTURES, OUTPUT_NAMES, &o->outputs, err);
}

static int set_metrics(camd_explain_options *o, const char *v, camd_error *err) {
  return parse_name_bits("metrics", "metric", v, metric_names, CAMD_METRIC_COUNT, CAMD_METRIC_ALL,
                         METRIC_NAMES, &o->metrics, err);
}

/* box=x0,y0,x1,y1: image pixels, inclusive, x0 <= x1 and y0 <= y1 (checked against the image
 * when it is decoded). */
static int set_box(camd_explain_options *o, const char *v, camd_error *err) {
  int b[4];
  const char *s = v;
  for (int i = 0; i < 4; i++) {
    const char *comma = strchr(s, ',');
    size_t len = comma ? (size_t)(comma - s) : strlen(s);
    char item[32];
    long long n;
    if ((i < 3) != (comma != NULL) || !trimmed(s, len, item, sizeof(item)) ||
        camd_parse_int(item, 0, 1000000, &n))
      return bad(err, "box", v,
                 "must be x0,y0,x1,y1: four integers 0..1000000 in image pixels (inclusive)");
    b[i] = (int)n;
    s = comma ? comma + 1 : s;
  }
  if (b[0] > b[2] || b[1] > b[3]) return bad(err, "box", v, "needs x0 <= x1 and y0 <= y1");
  memcpy(o->box, b, sizeof(b));
  o->has_box = true;
  return 0;
}

static int set_unit_float(const char *key, const char *v, float *dst, camd_error *err) {
  double d;
  if (camd_parse_double(v, &d) || d < 0.0 || d > 1.0)
    return bad(err, key, v, "must be a number within 0..1");
  *dst = (float)d;
  return 0;
}

int camd_explain_options_set(camd_explain_options *o, const camd_explainer *e, const char *key,
                             const char *value, camd_error *err) {
  if (!o || !key) return camd_error_set(err, CAMD_E_INVALID, "options: no option or key");
  if (!value) return camd_error_set(err, CAMD_E_INVALID, "option %.100s: needs a value", key);
  size_t vlen = strlen(value);
  if (vlen > OPTION_VALUE_MAX)
    return camd_error_set(err, CAMD_E_INVALID,
                          "option %.100s: value is %zu bytes long; the limit is %d", key, vlen,
                          OPTION_VALUE_MAX);
  const char *v = value;
  long long n;
  double d;
  bool b;
  if (!strcmp(key, "method")) {
    camd_cam_method m;
    int rc = camd_cam_method_parse(v, &m, err);
    if (rc) return camd_error_prefix(err, rc, "option method='%.100s': ", v);
    o->method = m;
  } else if (!strcmp(key, "layer")) {
    if (vlen >= sizeof(o->layer)) return bad(err, key, v, "layer names are at most 511 bytes");
    int ids[CAMD_CAM_MAX_LAYERS], n_ids;
    int rc = e && vlen ? camd__explain_check_layers(e, v, ids, &n_ids, err) : 0;
    if (rc) return camd_error_prefix(err, rc, "option layer: ");
    memcpy(o->layer, v, vlen + 1);
  } else if (!strcmp(key, "layer_layout")) {
    if (!strcmp(v, "NCHW"))
      o->layer_layout = CAMD_LAYOUT_NCHW;
    else if (!strcmp(v, "NHWC"))
      o->layer_layout = CAMD_LAYOUT_NHWC;
    else if (!strcmp(v, "tokens"))
      o->layer_layout = CAMD_LAYOUT_TOKENS;
    else if (!strcmp(v, "auto"))
      o->layer_layout = CAMD_LAYOUT_UNKNOWN;
    else
      return bad(err, key, v, "valid: NCHW, NHWC, tokens, auto (the graph's layout)");
  } else if (!strcmp(key, "target")) {
    return set_target(o, e, v, err);
  } else if (!strcmp(key, "topk")) {
    int kmax = e && e->n_labels < TOPK_MAX ? e->n_labels : TOPK_MAX;
    if (camd_parse_int(v, 1, kmax, &n)) {
      char msg[96];
      snprintf(msg, sizeof(msg), "must be an integer within 1..%d%s", kmax,
               kmax < TOPK_MAX ? " (the model's number of classes)" : "");
      return bad(err, key, v, msg);
    }
    o->topk = (int)n;
  } else if (!strcmp(key, "score")) {
    int i = find_name(score_names, CAMD_EXPLAIN_SCORE_COUNT, v);
    if (i < 0) return bad(err, key, v, "valid: logit, softmax, sigmoid, output");
    o->score = (camd_explain_score)i;
  } else if (!strcmp(key, "relu")) {
    if (parse_bool(v, &b)) return bad(err, key, v, "valid: " BOOL_NAMES);
    o->relu = b;
  } else if (!strcmp(key, "normalize")) {
    int i = find_name(normalize_names, CAMD_NORMALIZE_COUNT, v);
    if (i < 0) return bad(err, key, v, "valid: minmax, none");
    o->normalize = (camd_explain_normalize)i;
  } else if (!strcmp(key, "aug_smooth")) {
    if (parse_bool(v, &b)) return bad(err, key, v, "valid: " BOOL_NAMES);
    o->aug_smooth = b;
  } else if (!strcmp(key, "eigen_smooth")) {
    if (parse_bool(v, &b)) return bad(err, key, v, "valid: " BOOL_NAMES);
    o->eigen_smooth = b;
  } else if (!strcmp(key, "colormap")) {
    camd_colormap c;
    int rc = camd_colormap_parse(v, &c, err);
    if (rc) return camd_error_prefix(err, rc, "option colormap='%.100s': ", v);
    o->colormap = c;
  } else if (!strcmp(key, "alpha")) {
    return set_unit_float(key, v, &o->alpha, err);
  } else if (!strcmp(key, "outputs")) {
    return set_outputs(o, v, err);
  } else if (!strcmp(key, "bbox_threshold")) {
    return set_unit_float(key, v, &o->bbox_threshold, err);
  } else if (!strcmp(key, "n_samples")) {
    if (camd_parse_int(v, 1, N_SAMPLES_MAX, &n))
      return bad(err, key, v, "must be an integer within 1.." CAMD__STR(N_SAMPLES_MAX));
    o->n_samples = (int)n;
  } else if (!strcmp(key, "noise_std")) {
    if (camd_parse_double(v, &d) || d < 0.0 || d > NOISE_STD_MAX)
      return bad(err, key, v, "must be a number within 0..100 (input units)");
    o->noise_std = (float)d;
  } else if (!strcmp(key, "seed")) {
    if (camd_parse_int(v, 0, SEED_MAX, &n))
      return bad(err, key, v, "must be an integer within 0..9007199254740991 (2^53 - 1)");
    o->seed = (uint64_t)n;
  } else if (!strcmp(key, "finer_alpha")) {
    if (camd_parse_double(v, &d) || d < 0.0 || d > FINER_ALPHA_MAX)
      return bad(err, key, v, "must be a number within 0..100 (finercam's alpha)");
    o->finer_alpha = (float)d;
  } else if (!strcmp(key, "finer_compare")) {
    /* Fewer than the model's classes: the class itself is not compared with. */
    int kmax = e && e->n_outputs - 1 < FINER_COMPARE_MAX ? e->n_outputs - 1 : FINER_COMPARE_MAX;
    if (kmax < 1 || camd_parse_int(v, 1, kmax, &n)) {
      char msg[128];
      snprintf(msg, sizeof(msg), "must be an integer within 1..%d (finercam's compared classes%s)",
               kmax, kmax < FINER_COMPARE_MAX ? ": fewer than the model's outputs" : "");
      return bad(err, key, v, msg);
    }
    o->finer_compare = (int)n;
  } else if (!strcmp(key, "gamma")) {
    if (!strcmp(v, "auto")) {
      o->kpca_gamma = 0.0f;
    } else if (camd_parse_double(v, &d) || d < CAMD_KPCA_GAMMA_MIN || d > CAMD_KPCA_GAMMA_MAX) {
      return bad(err, key, v,
                 "must be auto (1 / channels) or a number within 1e-09..1e+06 (kpcacam's RBF "
                 "kernel gamma)");
    } else {
      o->kpca_gamma = (float)d;
    }
  } else if (!strcmp(key, "window")) {
    camd_window w;
    int rc = camd_window_parse(v, &w, err);
    if (rc) return camd_error_prefix(err, rc, "option window='%.100s': ", v);
    o->window = w;
  } else if (!strcmp(key, "frame")) {
    if (camd_parse_int(v, 0, FRAME_MAX, &n))
      return bad(err, key, v,
                 "must be an integer within 0.." CAMD__STR(FRAME_MAX) " (0 = the first frame)");
    o->frame = (uint32_t)n;
  } else if (!strcmp(key, "quality")) {
    if (parse_bool(v, &b)) return bad(err, key, v, "valid: " BOOL_NAMES);
    o->metrics = b ? CAMD_METRIC_ALL : 0;
  } else if (!strcmp(key, "metrics")) {
    return set_metrics(o, v, err);
  } else if (!strcmp(key, "quality_steps")) {
    if (camd_parse_int(v, 1, CAMD_QUALITY_STEPS_MAX, &n))
      return bad(err, key, v, "must be an integer within 1.." CAMD__STR(CAMD_QUALITY_STEPS_MAX));
    o->quality_steps = (int)n;
  } else if (!strcmp(key, "box")) {
    return set_box(o, v, err);
  } else if (!strcmp(key, "mask")) {
    if (strcmp(v, "argmax"))
      return bad(err, key, v,
                 "valid: argmax (the pixels where the target class wins); a mask PNG is sent as "
                 "a file part or base64 in the body");
    o->has_box = false;
  } else if (!strcmp(key, "road_noise")) {
    if (camd_parse_double(v, &d) || d < 0.0 || d > ROAD_NOISE_MAX)
      return bad(err, key, v, "must be a number within 0..1 (input units)");
    o->road_noise = (float)d;
  } else {
    return camd_error_set(err, CAMD_E_INVALID, "unknown option '%.100s'; options are: " OPTION_KEYS,
                          key);
  }
  return 0;
}
