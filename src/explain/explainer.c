/* Explainers: a loaded model + its labels + its config, immutable and shared; metadata JSON. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "camd/core.h"
#include "camd/onnx.h"
#include "explain/explain_internal.h"

static atomic_uint_fast64_t next_uid = 1;

/* True when s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static bool utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t len;
    unsigned min;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80, c &= 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800, c &= 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, c &= 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      c = (c << 6) | (s[i + k] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

/* Stores n labels: one block holding the pointer array followed by the strings. */
static int labels_alloc(camd_explainer *e, int n, size_t text_bytes, camd_error *err) {
  size_t ptrs = (size_t)n * sizeof(char *), total;
  if (!camd_size_add(ptrs, text_bytes, &total) || !(e->labels = malloc(total ? total : 1)))
    return camd_error_set(err, CAMD_E_NOMEM, "model '%s': out of memory for %d labels", e->cfg.name,
                          n);
  e->n_labels = n;
  return 0;
}

static int load_labels(camd_explainer *e, const char *output_name, camd_error *err) {
  const char *path = e->cfg.labels_path;
  int n_out = e->n_classes;
  if (e->task == CAMD_TASK_EMBEDDING) {
    /* One target, the similarity to a reference; an embedding's values are not classes. */
    if (path[0])
      return camd_error_set(err, CAMD_E_INVALID,
                            "model '%s': an embedding model (task \"embedding\") takes no labels "
                            "file; its one target is the similarity to a reference",
                            e->cfg.name);
    int rc = labels_alloc(e, 1, 11, err);
    if (rc) return rc;
    e->labels[0] = (char *)(e->labels + 1);
    memcpy(e->labels[0], "similarity", 11);
    return 0;
  }
  if (!path[0]) {
    /* No file: "class_<i>". */
    int rc = labels_alloc(e, n_out, (size_t)n_out * 18, err);
    if (rc) return rc;
    char *text = (char *)(e->labels + n_out);
    for (int i = 0; i < n_out; i++) {
      e->labels[i] = text;
      text += snprintf(text, 18, "class_%d", i) + 1;
    }
    return 0;
  }
  unsigned char *data = NULL;
  size_t len = 0;
  int rc = camd_read_file(path, CAMD_LABELS_MAX_BYTES, &data, &len, err);
  if (rc) return camd_error_prefix(err, rc, "model '%s': labels: ", e->cfg.name);
  size_t start = 0;
  if (len >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF) start = 3; /* BOM */
  /* Count lines: a final newline does not start another line. */
  size_t lines = 0;
  for (size_t i = start; i < len; i++)
    if (data[i] == '\n') lines++;
  if (len > start && data[len - 1] != '\n') lines++;
  if (lines != (size_t)n_out) {
    free(data);
    return camd_error_set(err, CAMD_E_INVALID,
                          "model '%s': labels file '%s' has %zu lines but output '%s' has %d "
                          "%s; give exactly one label per line for each class",
                          e->cfg.name, path, lines, output_name, n_out,
                          e->task == CAMD_TASK_SEGMENTATION ? "classes (planes)" : "values");
  }
  if ((rc = labels_alloc(e, n_out, len - start + 1, err))) {
    free(data);
    return rc;
  }
  char *text = (char *)(e->labels + n_out);
  size_t pos = start;
  for (int i = 0; i < n_out; i++) {
    size_t end = pos;
    while (end < len && data[end] != '\n') end++;
    size_t l = end - pos;
    if (l > 0 && data[pos + l - 1] == '\r') l--;
    const char *bad = NULL;
    if (l == 0)
      bad = "is empty";
    else if (l > CAMD_LABEL_MAX)
      bad = "is longer than 1024 bytes";
    else if (memchr(data + pos, 0, l))
      bad = "contains a NUL byte";
    else if (!utf8_valid(data + pos, l))
      bad = "is not valid UTF-8";
    if (bad) {
      free(data);
      free(e->labels);
      e->labels = NULL;
      e->n_labels = 0;
      return camd_error_set(err, CAMD_E_INVALID, "model '%s': labels file '%s': line %d %s",
                            e->cfg.name, path, i + 1, bad);
    }
    memcpy(text, data + pos, l);
    text[l] = 0;
    e->labels[i] = text;
    text += l + 1;
    pos = end + 1;
  }
  free(data);
  return 0;
}

/* The graph's own output activation (if any) decides what output 0 holds; an explicit config
 * value must agree with it (a second softmax over probabilities is a silently wrong answer). */
static int resolve_activation(camd_explainer *e, const camd_value_info *out, camd_error *err) {
  const camd_model_config *c = &e->cfg;
  e->graph_activation = camd_model_score_activation(e->model, e->output_id, &e->logit_id);
  camd_output_activation found = CAMD_ACTIVATION_AUTO;
  if (e->graph_activation == CAMD_SCORES_SIGMOID) {
    found = CAMD_ACTIVATION_SIGMOID;
  } else if (e->graph_activation != CAMD_SCORES_RAW) {
    found = CAMD_ACTIVATION_SOFTMAX; /* softmax and log-softmax: softmax of the logits */
  }
  if (found == CAMD_ACTIVATION_AUTO) {
    e->activation = c->activation == CAMD_ACTIVATION_AUTO ? CAMD_ACTIVATION_SOFTMAX : c->activation;
    return 0;
  }
  if (c->activation != CAMD_ACTIVATION_AUTO && c->activation != found) {
    camd_value_info li;
    camd_model_value_info(e->model, e->logit_id, &li);
    return camd_error_set(err, CAMD_E_INVALID,
                          "model '%s': output '%s' comes from a %s over '%s' in the model itself, "
                          "but the config says activation \"%s\"; remove the key (or set \"auto\") "
                          "so camd reports the model's own probabilities",
                          c->name, out->name, camd_score_activation_name(e->graph_activation),
                          li.name, camd__activation_name(c->activation));
  }
  e->activation = found;
  return 0;
}

static int check_model(camd_explainer *e, camd_error *err) {
  const camd_model_config *c = &e->cfg;
  camd_model *m = e->model;
  if (camd_model_num_inputs(m) != 1)
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "model '%s': has %d inputs; camd explains models with one image input",
                          c->name, camd_model_num_inputs(m));
  if (camd_model_num_outputs(m) < 1)
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "model '%s': has no output", c->name);
  camd_value_info in, out;
  e->input_id = camd_model_input(m, 0);
  e->output_id = camd_model_output(m, 0);
  camd_model_value_info(m, e->input_id, &in);
  camd_model_value_info(m, e->output_id, &out);
  if (c->input_name[0] && strcmp(c->input_name, in.name))
    return camd_error_set(err, CAMD_E_INVALID,
                          "model '%s': config says input_name '%s' but the model's input is '%s'",
                          c->name, c->input_name, in.name);
  if (c->output_name[0] && strcmp(c->output_name, out.name))
    return camd_error_set(err, CAMD_E_INVALID,
                          "model '%s': config says output_name '%s' but the model's output 0 is "
                          "'%s'",
                          c->name, c->output_name, out.name);
  char shp[128];
  camd_shape_format(&in.shape, shp, sizeof(shp));
  camd_preprocess_opts *pp = &e->cfg.preprocess;
  camd_layout layout = camd_model_value_layout(m, e->input_id);
  int64_t ch = 0, h = 0, w = 0;
  bool nhwc = layout == CAMD_LAYOUT_NHWC;
  if (in.dtype != CAMD_FLOAT32 || !camd_layout_geometry(&in.shape, layout, &ch, &h, &w) ||
      ch != pp->channels || h != (int64_t)pp->height || w != (int64_t)pp->width) {
    char want[96];
    if (nhwc)
      snprintf(want, sizeof(want), "[1, %zu, %zu, %d] (NHWC: height, width, channels)", pp->height,
               pp->width, pp->channels);
    else
      snprintf(want, sizeof(want), "[1, %d, %zu, %zu] (NCHW: channels, height, width)",
               pp->channels, pp->height, pp->width);
    return camd_error_set(err, CAMD_E_INVALID,
                          "model '%s': input '%s' is float %s but the preprocessing makes %s; set "
                          "channels and input_size (or --size/--gray)%s to match the model",
                          c->name, in.name, shp, want,
                          c->layout == CAMD_LAYOUT_UNKNOWN ? " and layout (or --layout)" : "");
  }
  pp->channels_last = nhwc; /* the preprocessing writes the model's layout */
  camd_shape_format(&out.shape, shp, sizeof(shp));
  e->in_count = camd_shape_count(&in.shape);
  size_t n_out = camd_shape_count(&out.shape);
  bool planes = out.shape.ndim == 4 && out.shape.dims[2] * out.shape.dims[3] > 1;
  e->task = c->task == CAMD_TASK_AUTO ? (planes ? CAMD_TASK_SEGMENTATION : CAMD_TASK_CLASSIFICATION)
                                      : c->task;
  size_t max_out =
      e->task == CAMD_TASK_SEGMENTATION ? CAMD_EXPLAIN_MAX_SEG_VALUES : CAMD_EXPLAIN_MAX_CLASSES;
  if (out.dtype != CAMD_FLOAT32 || n_out < 1 || n_out > max_out)
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "model '%s': output '%s' (%s) must be float with 1..%zu values per image "
                          "(task %s)",
                          c->name, out.name, shp, max_out, camd_model_task_name(e->task));
  e->n_outputs = (int)n_out;
  e->n_classes = (int)n_out;
  if (e->task == CAMD_TASK_SEGMENTATION) {
    if (!planes)
      return camd_error_set(err, CAMD_E_INVALID,
                            "model '%s': task \"segmentation\" needs output 0 as [N, classes, "
                            "height, width]; output '%s' is %s",
                            c->name, out.name, shp);
    e->n_classes = (int)out.shape.dims[1];
    e->seg_h = (int)out.shape.dims[2];
    e->seg_w = (int)out.shape.dims[3];
  } else if (e->task == CAMD_TASK_EMBEDDING) {
    e->n_classes = 1;
  }
  int rc = resolve_activation(e, &out, err);
  if (rc) return rc;
  return load_labels(e, out.name, err);
}

static int resolve_defaults(camd_explainer *e, camd_error *err) {
  const camd_model_config *c = &e->cfg;
  e->default_layer_id = -1;
  if (c->default_layer[0]) {
    int id, rc = camd_model_check_target(e->model, c->default_layer, &id, err);
    if (rc) return camd_error_prefix(err, rc, "model '%s': default_layer: ", c->name);
    if (!camd_model_is_cam_layer(e->model, id))
      return camd_error_set(err, CAMD_E_INVALID,
                            "model '%s': default_layer '%s' is not a 4-D activation with "
                            "spatial size > 1 (see `camd inspect`)",
                            c->name, c->default_layer);
    if ((rc = camd__explain_layer_layout(e, id, CAMD_LAYOUT_UNKNOWN, NULL, err)))
      return camd_error_prefix(err, rc, "model '%s': default_layer: ", c->name);
    e->default_layer_id = id;
    snprintf(e->default_layer, sizeof(e->default_layer), "%s", c->default_layer);
  } else {
    int id = camd_model_suggest_cam_layer(e->model);
    camd_value_info vi;
    if (id >= 0 && !camd_model_value_info(e->model, id, &vi) && vi.name && vi.name[0]) {
      e->default_layer_id = id;
      snprintf(e->default_layer, sizeof(e->default_layer), "%s", vi.name);
    }
  }
  int rc = camd_cam_method_parse(c->default_method[0] ? c->default_method : "gradcam",
                                 &e->default_method, err);
  if (rc) return camd_error_prefix(err, rc, "model '%s': default_method: ", c->name);
  return 0;
}

typedef struct hash_job {
  const unsigned char *data;
  size_t len;
  char *hex;
} hash_job;

static void *hash_main(void *arg) {
  hash_job *j = arg;
  camd_sha256_hex(j->data, j->len, j->hex);
  return NULL;
}

int camd_explainer_open(const camd_model_config *cfg, camd_explainer **out, camd_error *err) {
  if (!out) return camd_error_set(err, CAMD_E_INVALID, "camd_explainer_open: out is NULL");
  *out = NULL;
  if (!cfg || !cfg->name[0])
    return camd_error_set(err, CAMD_E_INVALID, "model config: the model needs a name");
  if (!cfg->path[0])
    return camd_error_set(err, CAMD_E_INVALID, "model '%s': no .onnx path given", cfg->name);
  camd_explainer *e = calloc(1, sizeof(*e));
  if (!e) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  atomic_init(&e->refs, 1);
  e->uid = atomic_fetch_add(&next_uid, 1);
  e->cfg = *cfg;
  e->cfg.name[sizeof(e->cfg.name) - 1] = 0;
  e->cfg.path[sizeof(e->cfg.path) - 1] = 0;
  e->cfg.labels_path[sizeof(e->cfg.labels_path) - 1] = 0;
  e->cfg.default_layer[sizeof(e->cfg.default_layer) - 1] = 0;
  e->cfg.default_method[sizeof(e->cfg.default_method) - 1] = 0;

  camd_mapped_file file;
  size_t max_bytes = cfg->max_model_bytes ? cfg->max_model_bytes : CAMD_ONNX_DEFAULT_MAX_FILE_BYTES;
  int rc = camd_file_map_open(e->cfg.path, max_bytes, &file, err);
  if (rc) {
    camd_error_prefix(err, rc, "model '%s'%s: ", e->cfg.name,
                      rc == CAMD_E_LIMIT ? " (max_model_bytes)" : "");
    goto fail;
  }
  /* The file's SHA-256 on a second thread while this one decodes it (startup time). */
  hash_job hj = {file.data, file.len, e->sha256};
  pthread_t hash_thread;
  const bool hashing = pthread_create(&hash_thread, NULL, hash_main, &hj) == 0;
  if (!hashing) hash_main(&hj);
  char dir[sizeof(e->cfg.path)];
  camd_path_dirname(e->cfg.path, dir, sizeof(dir)); /* fits: dir is as large as the path */
  /* What the config says about the image input: its layout, and sizes for free dimensions. */
  camd_onnx_options lo = {
      .input_layout = e->cfg.layout,
      .input_height = e->cfg.height_given ? (int64_t)e->cfg.preprocess.height : 0,
      .input_width = e->cfg.width_given ? (int64_t)e->cfg.preprocess.width : 0,
      .input_channels = e->cfg.preprocess.channels,
      .max_file_bytes = max_bytes,
      .max_external_bytes = cfg->max_model_bytes,
      .max_tensor_elements = cfg->max_tensor_elements,
  };
  rc = camd_onnx_load_buffer(file.data, file.len, dir, &lo, &e->model, err);
  if (hashing) pthread_join(hash_thread, NULL);
  camd_file_unmap(&file);
  if (rc) {
    camd_error_prefix(err, rc, "model '%s' ('%s'): ", e->cfg.name, e->cfg.path);
    goto fail;
  }
  if ((rc = check_model(e, err)) || (rc = resolve_defaults(e, err))) goto fail;
  *out = e;
  return 0;
fail:
  camd_explainer_release(e);
  return rc;
}

const char *camd_model_task_name(camd_model_task t) {
  static const char *const names[] = {"auto", "classification", "segmentation", "embedding"};
  return (unsigned)t < 4 ? names[t] : NULL;
}

camd_explainer *camd_explainer_retain(camd_explainer *e) {
  if (e) atomic_fetch_add(&e->refs, 1);
  return e;
}

void camd_explainer_release(camd_explainer *e) {
  if (!e || atomic_fetch_sub(&e->refs, 1) != 1) return;
  camd_model_release(e->model);
  free(e->labels);
  free(e);
}

const camd_model_config *camd_explainer_config(const camd_explainer *e) {
  return &e->cfg;
}
camd_model *camd_explainer_model(const camd_explainer *e) {
  return e->model;
}
const char *camd_explainer_sha256(const camd_explainer *e) {
  return e->sha256;
}
int camd_explainer_num_labels(const camd_explainer *e) {
  return e->n_labels;
}
camd_output_activation camd_explainer_activation(const camd_explainer *e, bool *from_graph) {
  if (from_graph) *from_graph = e->graph_activation != CAMD_SCORES_RAW;
  return e->activation;
}

const char *camd_explainer_label(const camd_explainer *e, int index) {
  return e && index >= 0 && index < e->n_labels ? e->labels[index] : NULL;
}
const char *camd_explainer_default_layer(const camd_explainer *e) {
  return e->default_layer;
}

int camd__explain_layer_layout(const camd_explainer *e, int id, camd_layout want, camd_layout *out,
                               camd_error *err) {
  camd_layout graph = camd_model_value_layout(e->model, id);
  camd_value_info vi;
  camd_model_value_info(e->model, id, &vi);
  if (graph != CAMD_LAYOUT_UNKNOWN && want != CAMD_LAYOUT_UNKNOWN && graph != want)
    return camd_error_set(err, CAMD_E_INVALID,
                          "layer '%s' is %s in the model's graph but layer_layout says %s; "
                          "remove layer_layout (or set \"auto\")",
                          vi.name, camd_layout_name(graph), camd_layout_name(want));
  /* The config's layer_layout covers the layers the graph does not decide. */
  camd_layout l = graph != CAMD_LAYOUT_UNKNOWN  ? graph
                  : want != CAMD_LAYOUT_UNKNOWN ? want
                                                : e->cfg.layer_layout;
  if (l == CAMD_LAYOUT_UNKNOWN) {
    char shp[96];
    camd_shape_format(&vi.shape, shp, sizeof(shp));
    return camd_error_set(err, CAMD_E_INVALID,
                          "layer '%s' %s: the graph does not tell whether its channels are on "
                          "axis 1 or axis 3; set layer_layout to \"NCHW\" or \"NHWC\"",
                          vi.name, shp);
  }
  if (out) *out = l;
  return 0;
}

int camd__explain_find_label(const camd_explainer *e, const char *text) {
  int found = -1;
  for (int i = 0; i < e->n_labels; i++) {
    if (!strcmp(e->labels[i], text)) return i;
    if (found < 0 && !strcasecmp(e->labels[i], text)) found = i;
  }
  return found;
}

json_t *camd__json_float(float f) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.7g", (double)f);
  double d = strtod(buf, NULL);
  return isfinite(d) ? json_real(d) : json_null();
}

static json_t *shape_json(const camd_shape *s) {
  json_t *a = json_array();
  for (int i = 0; i < s->ndim; i++) json_array_append_new(a, json_integer(s->dims[i]));
  return a;
}

static json_t *triple_json(const float *v, int n) {
  json_t *a = json_array();
  for (int i = 0; i < n; i++) json_array_append_new(a, camd__json_float(v[i]));
  return a;
}

char *camd_explainer_info_json(const camd_explainer *e) {
  const camd_model_config *c = &e->cfg;
  const camd_preprocess_opts *pp = &c->preprocess;
  camd_value_info in, out;
  camd_model_value_info(e->model, e->input_id, &in);
  camd_model_value_info(e->model, e->output_id, &out);

  json_t *root = json_object();
  json_object_set_new(root, "name", json_string(c->name));
  json_object_set_new(root, "sha256", json_string(e->sha256));
  json_object_set_new(root, "camd_version", json_string(CAMD_VERSION));
  json_object_set_new(
      root, "input",
      json_pack("{s:s, s:o, s:s}", "name", in.name, "shape", shape_json(&in.shape), "layout",
                camd_layout_name(camd_model_value_layout(e->model, e->input_id))));
  json_t *output =
      json_pack("{s:s, s:o, s:s, s:s}", "name", out.name, "shape", shape_json(&out.shape),
                "activation", camd__activation_name(e->activation), "activation_source",
                e->graph_activation != CAMD_SCORES_RAW  ? "model"
                : c->activation == CAMD_ACTIVATION_AUTO ? "default"
                                                        : "config");
  if (e->graph_activation != CAMD_SCORES_RAW) {
    camd_value_info li;
    camd_model_value_info(e->model, e->logit_id, &li);
    json_object_set_new(output, "graph_activation",
                        json_string(camd_score_activation_name(e->graph_activation)));
    json_object_set_new(output, "logits", json_string(li.name));
  }
  json_object_set_new(root, "output", output);
  json_t *pre = json_object();
  json_object_set_new(pre, "resize", json_string(camd__resize_name(pp->mode)));
  if (pp->mode == CAMD_RESIZE_SHORTER)
    json_object_set_new(pre, "resize_shorter", json_integer((json_int_t)pp->resize_shorter));
  json_object_set_new(pre, "width", json_integer((json_int_t)pp->width));
  json_object_set_new(pre, "height", json_integer((json_int_t)pp->height));
  json_object_set_new(pre, "channels", json_integer(pp->channels));
  json_object_set_new(pre, "channel_order", json_string(camd__channel_order_name(pp)));
  json_object_set_new(pre, "scale", camd__json_float(pp->scale));
  json_object_set_new(pre, "mean", triple_json(pp->mean, pp->channels));
  json_object_set_new(pre, "std", triple_json(pp->std, pp->channels));
  json_object_set_new(root, "preprocessing", pre);

  json_object_set_new(root, "task", json_string(camd_model_task_name(e->task)));
  json_object_set_new(root, "num_labels", json_integer(e->n_labels));
  json_object_set_new(root, "labels_file", json_boolean(c->labels_path[0] != 0));
  json_t *labels = json_array();
  for (int i = 0; i < e->n_labels; i++) json_array_append_new(labels, json_string(e->labels[i]));
  json_object_set_new(root, "labels", labels);

  json_t *layers = json_array();
  for (int v = 0; v < camd_model_num_values(e->model); v++) {
    if (!camd_model_is_cam_layer(e->model, v)) continue;
    camd_value_info vi;
    if (camd_model_value_info(e->model, v, &vi) || !vi.name || !vi.name[0]) continue;
    json_t *l = json_pack("{s:s, s:o, s:s}", "name", vi.name, "shape", shape_json(&vi.shape),
                          "layout", camd_layout_name(camd_model_value_layout(e->model, v)));
    if (vi.producer_op) json_object_set_new(l, "op", json_string(vi.producer_op));
    json_array_append_new(layers, l);
  }
  json_object_set_new(root, "layers", layers);
  json_object_set_new(root, "default_layer",
                      e->default_layer[0] ? json_string(e->default_layer) : json_null());
  json_object_set_new(root, "default_method", json_string(camd_cam_method_name(e->default_method)));
  json_t *methods = json_array();
  for (int m = 0; m < CAMD_CAM_METHOD_COUNT; m++)
    json_array_append_new(
        methods, json_pack("{s:s, s:s, s:b}", "name", camd_cam_method_name((camd_cam_method)m),
                           "description", camd_cam_method_description((camd_cam_method)m),
                           "needs_gradient", camd_cam_method_needs_gradient((camd_cam_method)m)));
  json_object_set_new(root, "methods", methods);
  json_t *cmaps = json_array();
  for (int i = CAMD_COLORMAP_JET; i <= CAMD_COLORMAP_GRAY; i++)
    json_array_append_new(cmaps, json_string(camd_colormap_name((camd_colormap)i)));
  json_object_set_new(root, "colormaps", cmaps);
  json_t *outputs = json_array();
  for (int i = 0; i < CAMD_OUT_COUNT; i++)
    json_array_append_new(outputs, json_string(camd_explain_output_name(i)));
  json_object_set_new(root, "outputs", outputs);
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
  json_decref(root);
  return text;
}
