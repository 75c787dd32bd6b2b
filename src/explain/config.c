/* Model configuration entries: defaults and the strict JSON parser (one "models" entry). */
#include <ctype.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
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

/* Every key a model entry may carry. Aliases are the spellings the scripts in models/ write. */
#define CONFIG_KEYS                                                                           \
  "name, path (alias onnx), labels, input_size, width (alias input_width), height (alias "    \
  "input_height), resize, resize_shorter (alias resize_size), mean, std, scale, bgr, "        \
  "channel_order, channels, default_layer, default_method, activation (alias "                \
  "output_activation), input_name, output_name, layout, crop, interpolation; informational: " \
  "description, training, test_accuracy*, torchvision_*"

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

/* Alias bookkeeping: each canonical setting may be given once, under one spelling. */
enum { S_PATH, S_WIDTH, S_HEIGHT, S_SHORTER, S_ACT, S_BGR, S_COUNT };

static int claim(cfg_parse *p, const char **seen, int slot, const char *key) {
  if (seen[slot])
    return FAIL(p, "%s: \"%s\" and \"%s\" set the same thing; give only one", p->who, seen[slot],
                key);
  seen[slot] = key;
  return 0;
}

static int parse_entry(cfg_parse *p, json_t *obj) {
  camd_model_config *c = p->cfg;
  const char *seen[S_COUNT] = {0};
  bool have_name = false;
  const char *key;
  json_t *v;
  int rc = 0;

  /* The name first, so every later message can say which model it is about. */
  json_t *jn = json_object_get(obj, "name");
  if (!jn) return FAIL(p, "%s: \"name\" is missing; every model needs a name", p->who);
  if ((rc = get_string(p, "name", jn, c->name, sizeof(c->name)))) return rc;
  if (!c->name[0]) return FAIL(p, "%s: \"name\" is empty", p->who);
  for (const char *s = c->name; *s; s++) {
    if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
      return FAIL(p,
                  "%s: name \"%s\" contains '%c'; names may only use letters, digits, '.', '_' "
                  "and '-'",
                  p->who, c->name, *s);
  }
  have_name = true;
  snprintf(p->who, sizeof(p->who), "model '%.127s'", c->name);

  json_object_foreach(obj, key, v) {
    if (!strcmp(key, "name")) {
      continue;
    } else if (!strcmp(key, "path") || !strcmp(key, "onnx")) {
      if ((rc = claim(p, seen, S_PATH, key))) return rc;
      if ((rc = get_path(p, key, v, c->path, sizeof(c->path)))) return rc;
    } else if (!strcmp(key, "labels")) {
      if (json_is_null(v)) {
        c->labels_path[0] = 0;
      } else if ((rc = get_path(p, key, v, c->labels_path, sizeof(c->labels_path)))) {
        return rc;
      }
    } else if (!strcmp(key, "input_size")) {
      long long w, h;
      if (json_is_integer(v)) {
        if ((rc = get_int(p, key, v, 1, CONFIG_MAX_DIM, &w))) return rc;
        h = w;
      } else if (json_is_array(v) && json_array_size(v) == 2) {
        if ((rc = get_int(p, "input_size[0] (width)", json_array_get(v, 0), 1, CONFIG_MAX_DIM, &w)))
          return rc;
        if ((rc =
                 get_int(p, "input_size[1] (height)", json_array_get(v, 1), 1, CONFIG_MAX_DIM, &h)))
          return rc;
      } else {
        return FAIL(p, "%s: \"input_size\" must be an integer N (N x N) or [width, height]",
                    p->who);
      }
      if ((rc = claim(p, seen, S_WIDTH, key)) || (rc = claim(p, seen, S_HEIGHT, key))) return rc;
      c->preprocess.width = (size_t)w;
      c->preprocess.height = (size_t)h;
    } else if (!strcmp(key, "width") || !strcmp(key, "input_width")) {
      long long w;
      if ((rc = claim(p, seen, S_WIDTH, key))) return rc;
      if ((rc = get_int(p, key, v, 1, CONFIG_MAX_DIM, &w))) return rc;
      c->preprocess.width = (size_t)w;
    } else if (!strcmp(key, "height") || !strcmp(key, "input_height")) {
      long long h;
      if ((rc = claim(p, seen, S_HEIGHT, key))) return rc;
      if ((rc = get_int(p, key, v, 1, CONFIG_MAX_DIM, &h))) return rc;
      c->preprocess.height = (size_t)h;
    } else if (!strcmp(key, "resize")) {
      static const char *const modes[] = {"stretch", "shorter"};
      int m;
      if ((rc = get_choice(p, key, v, modes, 2, "\"stretch\", \"shorter\"", &m))) return rc;
      c->preprocess.mode = m == 0 ? CAMD_RESIZE_STRETCH : CAMD_RESIZE_SHORTER;
    } else if (!strcmp(key, "resize_shorter") || !strcmp(key, "resize_size")) {
      long long s;
      if ((rc = claim(p, seen, S_SHORTER, key))) return rc;
      if ((rc = get_int(p, key, v, 1, CONFIG_MAX_SHORTER, &s))) return rc;
      c->preprocess.resize_shorter = (size_t)s;
    } else if (!strcmp(key, "mean")) {
      if ((rc = get_triple(p, key, v, false, c->preprocess.mean))) return rc;
    } else if (!strcmp(key, "std")) {
      if ((rc = get_triple(p, key, v, true, c->preprocess.std))) return rc;
    } else if (!strcmp(key, "scale")) {
      double d = 0.0;
      if ((rc = get_float(p, key, v, &d))) return rc;
      if (fabs(d) < FLT_MIN) /* 0 as a float */
        return FAIL(p,
                    "%s: \"scale\" must be non-zero, at least %g in magnitude (1/255 = "
                    "0.00392156862745098 for ToTensor())",
                    p->who, (double)FLT_MIN);
      c->preprocess.scale = (float)d;
    } else if (!strcmp(key, "bgr")) {
      if (!json_is_boolean(v)) return FAIL(p, "%s: \"bgr\" must be true or false", p->who);
      if ((rc = claim(p, seen, S_BGR, key))) return rc;
      c->preprocess.bgr = json_is_true(v);
    } else if (!strcmp(key, "channel_order")) {
      static const char *const orders[] = {"RGB", "BGR"};
      int m;
      if ((rc = claim(p, seen, S_BGR, key))) return rc;
      if ((rc = get_choice(p, key, v, orders, 2, "\"RGB\", \"BGR\"", &m))) return rc;
      c->preprocess.bgr = m == 1;
    } else if (!strcmp(key, "channels")) {
      long long n;
      if (!json_is_integer(v) || (json_integer_value(v) != 1 && json_integer_value(v) != 3))
        return FAIL(p, "%s: \"channels\" must be 1 (gray) or 3 (colour)", p->who);
      n = json_integer_value(v);
      c->preprocess.channels = (int)n;
    } else if (!strcmp(key, "default_layer")) {
      if ((rc = get_string(p, key, v, c->default_layer, sizeof(c->default_layer)))) return rc;
    } else if (!strcmp(key, "default_method")) {
      camd_cam_method m;
      if ((rc = get_string(p, key, v, c->default_method, sizeof(c->default_method)))) return rc;
      if ((rc = camd_cam_method_parse(c->default_method, &m, p->err)))
        return camd_error_prefix(p->err, rc, "%s: \"default_method\": ", p->who);
    } else if (!strcmp(key, "activation") || !strcmp(key, "output_activation")) {
      static const char *const acts[] = {"softmax", "sigmoid", "none", "auto"};
      int m;
      if ((rc = claim(p, seen, S_ACT, key))) return rc;
      if ((rc = get_choice(p, key, v, acts, 4, "\"softmax\", \"sigmoid\", \"none\", \"auto\"", &m)))
        return rc;
      c->activation = (camd_output_activation)m;
    } else if (!strcmp(key, "input_name")) {
      if ((rc = get_string(p, key, v, c->input_name, sizeof(c->input_name)))) return rc;
    } else if (!strcmp(key, "output_name")) {
      if ((rc = get_string(p, key, v, c->output_name, sizeof(c->output_name)))) return rc;
    } else if (!strcmp(key, "layout")) {
      static const char *const l[] = {"NCHW"};
      int m;
      if ((rc = get_choice(p, key, v, l, 1, "\"NCHW\" (the only layout camd runs)", &m))) return rc;
    } else if (!strcmp(key, "crop")) {
      static const char *const l[] = {"center"};
      int m;
      if ((rc = get_choice(p, key, v, l, 1,
                           "\"center\" (resize \"shorter\" crops the centre; \"stretch\" does "
                           "not crop)",
                           &m)))
        return rc;
    } else if (!strcmp(key, "interpolation")) {
      static const char *const l[] = {"bilinear"};
      int m;
      if ((rc = get_choice(p, key, v, l, 1, "\"bilinear\" (PIL's BILINEAR, the only one)", &m)))
        return rc;
    } else if (is_metadata_key(key)) {
      continue;
    } else {
      return FAIL(p, "%s: unknown key \"%.100s\"; keys are: " CONFIG_KEYS, p->who, key);
    }
  }
  (void)have_name;
  if (!seen[S_PATH]) return FAIL(p, "%s: \"path\" (the .onnx file) is missing", p->who);
  if (c->preprocess.bgr && c->preprocess.channels != 3)
    return FAIL(p, "%s: \"bgr\" / \"channel_order\": BGR needs \"channels\": 3", p->who);
  return 0;
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
