/* Model configuration entries: defaults and the strict JSON parser (one "models" entry). */
#include <ctype.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "camd/cam.h"
#include "explain/explain_internal.h"

#define CONFIG_MAX_TEXT ((size_t)1 << 20)
#define CONFIG_MAX_DIM 16384
#define CONFIG_MAX_SHORTER 65536

void camd_model_config_init(camd_model_config *cfg) {
  memset(cfg, 0, sizeof(*cfg));
  camd_preprocess_opts_default(&cfg->preprocess);
  cfg->activation = CAMD_ACTIVATION_AUTO;
  snprintf(cfg->default_method, sizeof(cfg->default_method), "gradcam");
}

const char *camd__resize_name(camd_resize_mode m) {
  return m == CAMD_RESIZE_STRETCH ? "stretch" : "shorter";
}

const char *camd__channel_order_name(const camd_preprocess_opts *pp) {
  return pp->channels == 1 ? "L" : pp->bgr ? "BGR" : "RGB";
}

const char *camd__activation_name(camd_output_activation a) {
  switch (a) {
    case CAMD_ACTIVATION_SOFTMAX:
      return "softmax";
    case CAMD_ACTIVATION_SIGMOID:
      return "sigmoid";
    case CAMD_ACTIVATION_AUTO:
      return "auto";
    default:
      return "none";
  }
}

/* Keys that only document the model (ignored, any value). */
static bool is_metadata_key(const char *k) {
  return !strcmp(k, "description") || !strcmp(k, "training") || !strncmp(k, "test_accuracy", 13) ||
         !strncmp(k, "torchvision_", 12);
}

typedef struct cfg_parse {
  camd_model_config *cfg;
  const char *base_dir;
  camd_error *err;
  char who[CAMD_NAME_MAX + 32]; /* "model 'x'" or "model entry" */
} cfg_parse;

#define FAIL(P, ...) camd_error_set((P)->err, CAMD_E_INVALID, __VA_ARGS__)

static int get_string(cfg_parse *p, const char *key, json_t *v, char *dst, size_t cap) {
  if (!json_is_string(v)) return FAIL(p, "%s: \"%s\" must be a string", p->who, key);
  size_t n = json_string_length(v);
  const char *s = json_string_value(v);
  if (n >= cap)
    return FAIL(p, "%s: \"%s\" is %zu bytes long; the limit is %zu", p->who, key, n, cap - 1);
  if (strlen(s) != n) return FAIL(p, "%s: \"%s\" contains a NUL character", p->who, key);
  memcpy(dst, s, n + 1);
  return 0;
}

static int get_path(cfg_parse *p, const char *key, json_t *v, char *dst, size_t cap) {
  char tmp[4096];
  int rc = get_string(p, key, v, tmp, sizeof(tmp));
  if (rc) return rc;
  if (!tmp[0]) return FAIL(p, "%s: \"%s\" is empty; give a file path", p->who, key);
  int n;
  if (tmp[0] == '/' || !p->base_dir || !p->base_dir[0])
    n = snprintf(dst, cap, "%s", tmp);
  else
    n = snprintf(dst, cap, "%s/%s", p->base_dir, tmp);
  if (n < 0 || (size_t)n >= cap)
    return FAIL(p, "%s: \"%s\" resolves to a path longer than %zu bytes", p->who, key, cap - 1);
  return 0;
}

static int get_int(cfg_parse *p, const char *key, json_t *v, long long lo, long long hi,
                   long long *out) {
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
    return FAIL(p, "%s: \"%s\" must be an integer within %lld..%lld", p->who, key, lo, hi);
  *out = json_integer_value(v);
  return 0;
}

static int get_float(cfg_parse *p, const char *key, json_t *v, double *out) {
  if (!json_is_number(v) || !isfinite(json_number_value(v)))
    return FAIL(p, "%s: \"%s\" must be a finite number", p->who, key);
  double d = json_number_value(v);
  if (fabs(d) > 3.0e38) return FAIL(p, "%s: \"%s\" = %g is outside float range", p->who, key, d);
  *out = d;
  return 0;
}

/* mean / std: an array of 3 numbers (or 1, used for every channel). */
static int get_triple(cfg_parse *p, const char *key, json_t *v, bool nonzero, float out[3]) {
  size_t n = json_is_array(v) ? json_array_size(v) : 0;
  if (n != 1 && n != 3)
    return FAIL(p, "%s: \"%s\" must be an array of 3 numbers (or 1 for every channel)", p->who,
                key);
  for (size_t i = 0; i < 3; i++) {
    double d;
    json_t *e = json_array_get(v, n == 1 ? 0 : i);
    if (!json_is_number(e) || !isfinite(json_number_value(e)))
      return FAIL(p, "%s: \"%s\"[%zu] must be a finite number", p->who, key, n == 1 ? 0 : i);
    d = json_number_value(e);
    if (nonzero && fabs(d) < FLT_MIN) /* 0 as a float (or subnormal: 1/std overflows) */
      return FAIL(p, "%s: \"%s\"[%zu] is 0 (or below %g); a standard deviation must be non-zero",
                  p->who, key, n == 1 ? 0 : i, (double)FLT_MIN);
    if (fabs(d) > 3.0e38)
      return FAIL(p, "%s: \"%s\"[%zu] = %g is outside float range", p->who, key, n == 1 ? 0 : i, d);
    out[i] = (float)d;
  }
  return 0;
}

static int get_choice(cfg_parse *p, const char *key, json_t *v, const char *const *choices, int n,
                      const char *list, int *out) {
  if (json_is_string(v)) {
    for (int i = 0; i < n; i++) {
      if (!strcmp(json_string_value(v), choices[i])) {
        *out = i;
        return 0;
      }
    }
    return FAIL(p, "%s: \"%s\" is \"%.100s\"; valid values are %s", p->who, key,
                json_string_value(v), list);
  }
  return FAIL(p, "%s: \"%s\" must be a string, one of %s", p->who, key, list);
}

/* ---- the key table: one row per setting (its alias is another spelling of it) ---- */

/* Settings that several keys write: each may be given once, under one spelling. */
enum { S_PATH, S_WIDTH, S_HEIGHT, S_SHORTER, S_ACT, S_BGR, S_COUNT };
#define SLOT(s) (1u << (s))

typedef struct cfg_key cfg_key;
typedef int (*cfg_setter)(cfg_parse *p, const cfg_key *k, const char *key, json_t *v);
struct cfg_key {
  const char *name;
  const char *alias; /* another accepted spelling, or NULL */
  unsigned slots;    /* SLOT(S_*) bits this key sets (checked against the other spellings) */
  cfg_setter set;
  size_t offset, cap; /* set_string: the camd_model_config field */
};

static int set_string(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  return get_string(p, key, v, (char *)p->cfg + k->offset, k->cap);
}

static int set_path(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  return get_path(p, key, v, p->cfg->path, sizeof(p->cfg->path));
}

static int set_labels(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  camd_model_config *c = p->cfg;
  if (json_is_null(v)) {
    c->labels_path[0] = 0;
    return 0;
  }
  return get_path(p, key, v, c->labels_path, sizeof(c->labels_path));
}

static int set_input_size(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k, (void)key;
  long long w = 0, h = 0;
  int rc;
  if (json_is_integer(v)) {
    if ((rc = get_int(p, "input_size", v, 1, CONFIG_MAX_DIM, &w))) return rc;
    h = w;
  } else if (json_is_array(v) && json_array_size(v) == 2) {
    if ((rc = get_int(p, "input_size[0] (width)", json_array_get(v, 0), 1, CONFIG_MAX_DIM, &w)) ||
        (rc = get_int(p, "input_size[1] (height)", json_array_get(v, 1), 1, CONFIG_MAX_DIM, &h)))
      return rc;
  } else {
    return FAIL(p, "%s: \"input_size\" must be an integer N (N x N) or [width, height]", p->who);
  }
  p->cfg->preprocess.width = (size_t)w;
  p->cfg->preprocess.height = (size_t)h;
  p->cfg->width_given = p->cfg->height_given = true;
  return 0;
}

static int set_width(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  long long w = 0;
  int rc = get_int(p, key, v, 1, CONFIG_MAX_DIM, &w);
  if (!rc) p->cfg->preprocess.width = (size_t)w;
  if (!rc) p->cfg->width_given = true;
  return rc;
}

static int set_height(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  long long h = 0;
  int rc = get_int(p, key, v, 1, CONFIG_MAX_DIM, &h);
  if (!rc) p->cfg->preprocess.height = (size_t)h;
  if (!rc) p->cfg->height_given = true;
  return rc;
}

static int set_resize(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  static const char *const modes[] = {"stretch", "shorter"};
  int m = 0;
  int rc = get_choice(p, key, v, modes, 2, "\"stretch\", \"shorter\"", &m);
  if (!rc) p->cfg->preprocess.mode = m == 0 ? CAMD_RESIZE_STRETCH : CAMD_RESIZE_SHORTER;
  return rc;
}

static int set_shorter(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  long long s = 0;
  int rc = get_int(p, key, v, 1, CONFIG_MAX_SHORTER, &s);
  if (!rc) p->cfg->preprocess.resize_shorter = (size_t)s;
  return rc;
}

static int set_mean(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  return get_triple(p, key, v, false, p->cfg->preprocess.mean);
}

static int set_std(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  return get_triple(p, key, v, true, p->cfg->preprocess.std);
}

static int set_scale(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  double d = 0.0;
  int rc = get_float(p, key, v, &d);
  if (rc) return rc;
  if (fabs(d) < FLT_MIN) /* 0 as a float */
    return FAIL(p,
                "%s: \"scale\" must be non-zero, at least %g in magnitude (1/255 = "
                "0.00392156862745098 for ToTensor())",
                p->who, (double)FLT_MIN);
  p->cfg->preprocess.scale = (float)d;
  return 0;
}

static int set_bgr(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k, (void)key;
  if (!json_is_boolean(v)) return FAIL(p, "%s: \"bgr\" must be true or false", p->who);
  p->cfg->preprocess.bgr = json_is_true(v);
  return 0;
}

static int set_channel_order(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  static const char *const orders[] = {"RGB", "BGR"};
  int m = 0;
  int rc = get_choice(p, key, v, orders, 2, "\"RGB\", \"BGR\"", &m);
  if (!rc) p->cfg->preprocess.bgr = m == 1;
  return rc;
}

static int set_channels(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k, (void)key;
  if (!json_is_integer(v) || (json_integer_value(v) != 1 && json_integer_value(v) != 3))
    return FAIL(p, "%s: \"channels\" must be 1 (gray) or 3 (colour)", p->who);
  p->cfg->preprocess.channels = (int)json_integer_value(v);
  return 0;
}

static int set_uid_root(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  char root[sizeof(p->cfg->dicom_uid_root)];
  int rc = get_string(p, key, v, root, sizeof(root));
  if (rc) return rc;
  if (root[0] && !camd_dicom_uid_root_valid(root))
    return FAIL(p,
                "%s: \"dicom_uid_root\" '%s' is not a UID root (digits and dots, no leading "
                "zeros, at most 40 characters; e.g. your organisation's root, or 2.25)",
                p->who, root);
  memcpy((char *)p->cfg + k->offset, root, sizeof(root));
  return 0;
}

static int set_default_method(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  camd_model_config *c = p->cfg;
  camd_cam_method m;
  int rc = set_string(p, k, key, v);
  if (!rc && (rc = camd_cam_method_parse(c->default_method, &m, p->err)))
    return camd_error_prefix(p->err, rc, "%s: \"default_method\": ", p->who);
  return rc;
}

static int set_activation(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  static const char *const acts[] = {"softmax", "sigmoid", "none", "auto"};
  int m = 0;
  int rc = get_choice(p, key, v, acts, 4, "\"softmax\", \"sigmoid\", \"none\", \"auto\"", &m);
  if (!rc) p->cfg->activation = (camd_output_activation)m;
  return rc;
}

/* layout (the image input's) and layer_layout (explained layers the graph does not decide):
 * "auto" = UNKNOWN (0), NCHW = 1, NHWC = 2; k->offset is the camd_layout field. */
static int set_layout(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  static const char *const l[] = {"auto", "NCHW", "NHWC"};
  int m = 0;
  int rc = get_choice(p, key, v, l, 3, "\"NCHW\", \"NHWC\", \"auto\"", &m);
  if (!rc) *(camd_layout *)((char *)p->cfg + k->offset) = (camd_layout)m;
  return rc;
}

/* task: what output 0 is ("auto" detects a segmentation output; embeddings must be named). */
static int set_task(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  static const char *const l[] = {"auto", "classification", "segmentation", "embedding"};
  int m = 0;
  int rc = get_choice(p, key, v, l, 4,
                      "\"auto\", \"classification\", \"segmentation\", \"embedding\"", &m);
  if (!rc) p->cfg->task = (camd_model_task)m;
  return rc;
}

/* crop, interpolation: checked, one value each (what camd runs). */

static int set_crop(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  static const char *const l[] = {"center"};
  int m = 0;
  return get_choice(p, key, v, l, 1,
                    "\"center\" (resize \"shorter\" crops the centre; \"stretch\" does not crop)",
                    &m);
}

static int set_interpolation(cfg_parse *p, const cfg_key *k, const char *key, json_t *v) {
  (void)k;
  static const char *const l[] = {"bilinear"};
  int m = 0;
  return get_choice(p, key, v, l, 1, "\"bilinear\" (PIL's BILINEAR, the only one)", &m);
}

#define FIELD(f) offsetof(camd_model_config, f), sizeof(((camd_model_config *)0)->f)
/* Every key a model entry may carry ("name" is read first, by parse_entry). Aliases are the
 * spellings the scripts in models/ write. */
static const cfg_key keys[] = {
    {"path", "onnx", SLOT(S_PATH), set_path, 0, 0},
    {"labels", NULL, 0, set_labels, 0, 0},
    {"input_size", NULL, SLOT(S_WIDTH) | SLOT(S_HEIGHT), set_input_size, 0, 0},
    {"width", "input_width", SLOT(S_WIDTH), set_width, 0, 0},
    {"height", "input_height", SLOT(S_HEIGHT), set_height, 0, 0},
    {"resize", NULL, 0, set_resize, 0, 0},
    {"resize_shorter", "resize_size", SLOT(S_SHORTER), set_shorter, 0, 0},
    {"mean", NULL, 0, set_mean, 0, 0},
    {"std", NULL, 0, set_std, 0, 0},
    {"scale", NULL, 0, set_scale, 0, 0},
    {"bgr", NULL, SLOT(S_BGR), set_bgr, 0, 0},
    {"channel_order", NULL, SLOT(S_BGR), set_channel_order, 0, 0},
    {"channels", NULL, 0, set_channels, 0, 0},
    {"default_layer", NULL, 0, set_string, FIELD(default_layer)},
    {"default_method", NULL, 0, set_default_method, FIELD(default_method)},
    {"activation", "output_activation", SLOT(S_ACT), set_activation, 0, 0},
    {"input_name", NULL, 0, set_string, FIELD(input_name)},
    {"output_name", NULL, 0, set_string, FIELD(output_name)},
    {"layout", NULL, 0, set_layout, FIELD(layout)},
    {"layer_layout", NULL, 0, set_layout, FIELD(layer_layout)},
    {"crop", NULL, 0, set_crop, 0, 0},
    {"interpolation", NULL, 0, set_interpolation, 0, 0},
    {"dicom_uid_root", NULL, 0, set_uid_root, FIELD(dicom_uid_root)},
    {"task", NULL, 0, set_task, 0, 0},
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const cfg_key *find_key(const char *name) {
  for (size_t i = 0; i < N_KEYS; i++)
    if (!strcmp(keys[i].name, name) || (keys[i].alias && !strcmp(keys[i].alias, name)))
      return &keys[i];
  return NULL;
}

static int unknown_key(cfg_parse *p, const char *key) {
  char list[1024];
  size_t used = (size_t)snprintf(list, sizeof(list), "name");
  for (size_t i = 0; i < N_KEYS && used < sizeof(list); i++)
    used +=
        (size_t)snprintf(list + used, sizeof(list) - used,
                         keys[i].alias ? ", %s (alias %s)" : ", %s", keys[i].name, keys[i].alias);
  return FAIL(p,
              "%s: unknown key \"%.100s\"; keys are: %s; informational: description, training, "
              "test_accuracy*, torchvision_*",
              p->who, key, list);
}

/* Sets one key (k, spelled `key`), checking that no other spelling already set its settings. */
static int apply_key(cfg_parse *p, const char **seen, const cfg_key *k, const char *key,
                     json_t *v) {
  for (int s = 0; s < S_COUNT; s++) {
    if (!(k->slots & SLOT(s))) continue;
    if (seen[s])
      return FAIL(p, "%s: \"%s\" and \"%s\" set the same thing; give only one", p->who, seen[s],
                  key);
    seen[s] = key;
  }
  return k->set(p, k, key, v);
}

/* Rules across keys, checked once the entry (or a key set alone) is complete. */
static int check_entry(cfg_parse *p) {
  if (p->cfg->preprocess.bgr && p->cfg->preprocess.channels != 3)
    return FAIL(p, "%s: \"bgr\" / \"channel_order\": BGR needs \"channels\": 3", p->who);
  return 0;
}

/* "model 'x'" once the name is known, else "model entry". */
static void set_who(cfg_parse *p) {
  if (p->cfg->name[0]) snprintf(p->who, sizeof(p->who), "model '%.127s'", p->cfg->name);
}

static int parse_name(cfg_parse *p, json_t *obj) {
  camd_model_config *c = p->cfg;
  json_t *jn = json_object_get(obj, "name");
  if (!jn) return FAIL(p, "%s: \"name\" is missing; every model needs a name", p->who);
  int rc = get_string(p, "name", jn, c->name, sizeof(c->name));
  if (rc) return rc;
  if (!c->name[0]) return FAIL(p, "%s: \"name\" is empty", p->who);
  for (const char *s = c->name; *s; s++) {
    if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
      return FAIL(p,
                  "%s: name \"%s\" contains '%c'; names may only use letters, digits, '.', '_' "
                  "and '-'",
                  p->who, c->name, *s);
  }
  set_who(p);
  return 0;
}

static int parse_entry(cfg_parse *p, json_t *obj) {
  const char *seen[S_COUNT] = {0};
  /* The name first, so every later message can say which model it is about. */
  int rc = parse_name(p, obj);
  if (rc) return rc;
  const char *key;
  json_t *v;
  json_object_foreach(obj, key, v) {
    if (!strcmp(key, "name") || is_metadata_key(key)) continue;
    const cfg_key *k = find_key(key);
    if (!k) return unknown_key(p, key);
    if ((rc = apply_key(p, seen, k, key, v))) return rc;
  }
  if (!seen[S_PATH]) return FAIL(p, "%s: \"path\" (the .onnx file) is missing", p->who);
  return check_entry(p);
}

int camd_model_config_set(camd_model_config *cfg, const char *key, json_t *value,
                          const char *base_dir, camd_error *err) {
  if (!cfg || !key || !value)
    return camd_error_set(err, CAMD_E_INVALID, "model config: no config, key or value");
  camd_model_config tmp = *cfg;
  cfg_parse p = {&tmp, base_dir, err, "model entry"};
  set_who(&p);
  const cfg_key *k = find_key(key);
  if (!k) return unknown_key(&p, key);
  const char *seen[S_COUNT] = {0};
  int rc = apply_key(&p, seen, k, key, value);
  if (!rc) rc = check_entry(&p);
  if (!rc) *cfg = tmp;
  return rc;
}

int camd_model_config_from_json_text(const char *json_text, const char *base_dir,
                                     camd_model_config *cfg, camd_error *err) {
  if (!json_text || !cfg)
    return camd_error_set(err, CAMD_E_INVALID, "model entry: no JSON text or no config");
  size_t len = strlen(json_text);
  if (len > CONFIG_MAX_TEXT)
    return camd_error_set(err, CAMD_E_LIMIT, "model entry: %zu bytes of JSON; the limit is %zu",
                          len, CONFIG_MAX_TEXT);
  json_error_t jerr;
  json_t *root = json_loadb(json_text, len, JSON_REJECT_DUPLICATES, &jerr);
  if (!root)
    return camd_error_set(err, CAMD_E_FORMAT, "model entry: invalid JSON at line %d column %d: %s",
                          jerr.line, jerr.column, jerr.text);
  camd_model_config tmp;
  camd_model_config_init(&tmp);
  cfg_parse p = {&tmp, base_dir, err, "model entry"};
  int rc;
  if (!json_is_object(root))
    rc = camd_error_set(err, CAMD_E_INVALID,
                        "model entry: must be a JSON object, e.g. "
                        "{\"name\": \"resnet18\", \"path\": \"resnet18.onnx\"}");
  else
    rc = parse_entry(&p, root);
  json_decref(root);
  if (rc == 0) *cfg = tmp;
  return rc;
}
