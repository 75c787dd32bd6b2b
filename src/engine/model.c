/* Model: freezing a built graph (batch check, counts, default CAM layer, output activation) and
 * read-only queries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/dnnl.h"
#include "engine/graph_internal.h"
#include "engine/passes.h"

/* Runs shape inference for batch 2 and reports whether every batched value keeps the batch as
 * its leading axis (then any batch works). */
static bool batch_axis_preserved(const camd_graph *g) {
  if (g->batch_mixed) return false;
  bool ok = true;
  camd_shape *shapes = malloc(sizeof(camd_shape) * (size_t)(g->n_values ? g->n_values : 1));
  if (!shapes) return false;
  for (int i = 0; i < g->n_values; i++) {
    shapes[i] = g->values[i].shape;
    if (g->values[i].batched && shapes[i].ndim > 0) shapes[i].dims[0] = 2;
  }
  for (int k = 0; k < g->n_nodes && ok; k++) {
    const camd_node *n = &g->nodes[k];
    camd_shape saved[CAMD_NODE_MAX_IO];
    for (int j = 0; j < n->n_out; j++) saved[j] = shapes[n->out[j]];
    if (camd__graph_infer_node(g, n, shapes, NULL) != 0) {
      ok = false;
      break;
    }
    for (int j = 0; j < n->n_out; j++) {
      if (!camd_shape_equal(&saved[j], &shapes[n->out[j]])) ok = false;
    }
  }
  free(shapes);
  return ok;
}

/* marks[v] = 1 for every value output `target` depends on (including itself). */
static void mark_ancestors(const camd_graph *g, int target, unsigned char *marks) {
  memset(marks, 0, (size_t)g->n_values);
  marks[target] = 1;
  for (int k = g->n_nodes - 1; k >= 0; k--) {
    const camd_node *n = &g->nodes[k];
    bool needed = false;
    for (int j = 0; j < n->n_out; j++) needed |= marks[n->out[j]] != 0;
    if (!needed) continue;
    for (int i = 0; i < n->n_in; i++) {
      if (n->in[i] >= 0) marks[n->in[i]] = 1;
    }
  }
}

bool camd_model_is_cam_layer(const camd_model *m, int id) {
  if (id < 0 || id >= m->graph->n_values) return false;
  const camd_value *v = &m->graph->values[id];
  if (v->layout == CAMD_LAYOUT_TOKENS) return true;
  if (v->data || !v->batched || v->dtype != CAMD_FLOAT32 || v->shape.ndim != 4 || v->attention)
    return false;
  int64_t h, w;
  if (!camd_layout_geometry(&v->shape, (camd_layout)v->layout, NULL, &h, &w)) return true;
  return h * w > 1;
}

static int suggest_layer(const camd_model *m) {
  const camd_graph *g = m->graph;
  if (g->n_outputs < 1) return -1;
  unsigned char *marks = malloc((size_t)g->n_values + 1);
  if (!marks) return -1;
  mark_ancestors(g, g->outputs[0], marks);
  /* The last attention product (MatMul of two activations) on the path to output 0: token maps
   * after it reach the output through the class token only. */
  int last_mix = -1;
  for (int k = 0; k < g->n_nodes; k++) {
    const camd_node *n = &g->nodes[k];
    if (strcmp(n->op_type, "MatMul") != 0 || n->n_in != 2 || n->in[0] < 0 || n->in[1] < 0) continue;
    const camd_value *a = &g->values[n->in[0]], *b = &g->values[n->in[1]];
    if (!a->data && a->batched && !b->data && b->batched && marks[n->out[0]]) last_mix = k;
  }
  /* A transformer on channels-last maps (Swin: N x H x W x C): its last attention product
   * comes after its last convolution (the patch embedding). The suggestion is then the last map
   * before that product too, as pytorch-grad-cam's Swin example takes the last block's norm1.
   * A CNN with an attention block followed by more convolutions, and a model whose maps are
   * NCHW throughout (MaxViT: attention inside window partitions of NCHW maps, whose undecided
   * partitions read as NCHW), keep their last map. */
  int last_conv = -1;
  bool channels_last = false;
  for (int k = 0; k < g->n_nodes; k++) {
    if (!strcmp(g->nodes[k].op_type, "Conv") && marks[g->nodes[k].out[0]]) last_conv = k;
  }
  for (int v = 0; v < g->n_values; v++) channels_last |= g->values[v].layout == CAMD_LAYOUT_NHWC;
  const bool maps_before_mix = channels_last && last_mix > last_conv;
  int best = -1, best_pos = -2;
  for (int v = 0; v < g->n_values; v++) {
    if (!marks[v] || !camd_model_is_cam_layer(m, v) || !g->values[v].layout) continue;
    int pos = g->values[v].producer;
    if (g->values[v].layout == CAMD_LAYOUT_TOKENS && pos >= last_mix) continue;
    if (maps_before_mix && pos >= last_mix) continue;
    /* A Pad that pads nothing (Swin's window padding at 7 x 7) copies its input: name the
     * input, the map the user's model defines. */
    if (pos >= 0 && !strcmp(g->nodes[pos].op_type, "Pad") && g->nodes[pos].in[0] >= 0 &&
        camd_shape_equal(&g->values[g->nodes[pos].in[0]].shape, &g->values[v].shape)) {
      continue;
    }
    if (pos > best_pos) {
      best_pos = pos;
      best = v;
    }
  }
  free(marks);
  return best;
}

int camd_graph_finalize(camd_graph *g, const char *source_path, camd_model **out, camd_error *err) {
  *out = NULL;
  if (g->n_inputs < 1) {
    camd_graph_free(g);
    return camd_error_set(err, CAMD_E_FORMAT, "the model has no (non-constant) input");
  }
  if (g->n_outputs < 1) {
    camd_graph_free(g);
    return camd_error_set(err, CAMD_E_FORMAT, "the model has no output");
  }
  for (int i = 0; i < g->n_outputs; i++) {
    const camd_value *v = &g->values[g->outputs[i]];
    if (v->data || !v->batched) {
      camd_error_set(err, CAMD_E_UNSUPPORTED,
                     "output '%s' does not depend on the input; camd needs outputs computed "
                     "from the image",
                     v->name);
      camd_graph_free(g);
      return CAMD_E_UNSUPPORTED;
    }
  }
  int rc = camd__graph_run_passes(g, err);
  if (rc) {
    camd_graph_free(g);
    return rc;
  }
  camd_model *m = calloc(1, sizeof(*m));
  if (!m) {
    camd_graph_free(g);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  }
  atomic_init(&m->refcount, 1);
  m->graph = g;
  if (source_path) m->source_path = strdup(source_path);
  m->max_batch = batch_axis_preserved(g) ? CAMD_ENGINE_MAX_BATCH : 1;
  for (int i = 0; i < g->n_values; i++) {
    if (g->values[i].data && g->values[i].dtype == CAMD_FLOAT32) {
      m->param_count += camd_shape_count(&g->values[i].shape);
    }
  }
  camd__graph_infer_layouts(g);
  m->suggested_layer = suggest_layer(m);
  *out = m;
  return 0;
}

camd_model *camd_model_retain(camd_model *m) {
  if (m) atomic_fetch_add(&m->refcount, 1);
  return m;
}

void camd_model_release(camd_model *m) {
  if (!m) return;
  if (atomic_fetch_sub(&m->refcount, 1) != 1) return;
  camd_graph_free(m->graph);
  free(m->source_path);
  free(m);
}

int camd_model_num_values(const camd_model *m) {
  return m->graph->n_values;
}

int camd_model_value_info(const camd_model *m, int id, camd_value_info *info) {
  if (id < 0 || id >= m->graph->n_values) return CAMD_E_INVALID;
  const camd_value *v = &m->graph->values[id];
  info->name = v->name;
  info->shape = v->shape;
  info->dtype = v->dtype;
  info->is_constant = v->data != NULL;
  info->is_input = v->is_input;
  info->is_output = v->is_output;
  info->batched = v->batched;
  info->producer = v->producer;
  info->producer_op = v->producer >= 0 ? m->graph->nodes[v->producer].op_type : NULL;
  info->producer_name = v->producer >= 0 ? m->graph->nodes[v->producer].name : NULL;
  return 0;
}

int camd_model_find_value(const camd_model *m, const char *name) {
  return camd_graph_find(m->graph, name);
}
int camd_model_num_inputs(const camd_model *m) {
  return m->graph->n_inputs;
}
int camd_model_input(const camd_model *m, int i) {
  return i >= 0 && i < m->graph->n_inputs ? m->graph->inputs[i] : -1;
}
int camd_model_num_outputs(const camd_model *m) {
  return m->graph->n_outputs;
}
int camd_model_output(const camd_model *m, int i) {
  return i >= 0 && i < m->graph->n_outputs ? m->graph->outputs[i] : -1;
}
int camd_model_num_nodes(const camd_model *m) {
  return m->graph->n_nodes;
}
const char *camd_model_node_op(const camd_model *m, int i) {
  return i >= 0 && i < m->graph->n_nodes ? m->graph->nodes[i].op_type : NULL;
}
const char *camd_model_node_name(const camd_model *m, int i) {
  return i >= 0 && i < m->graph->n_nodes ? m->graph->nodes[i].name : NULL;
}
int camd_model_node_io(const camd_model *m, int i, const int **in, int *n_in, const int **out,
                       int *n_out) {
  if (i < 0 || i >= m->graph->n_nodes) return CAMD_E_INVALID;
  const camd_node *n = &m->graph->nodes[i];
  if (in) *in = n->in;
  if (n_in) *n_in = n->n_in;
  if (out) *out = n->out;
  if (n_out) *n_out = n->n_out;
  return 0;
}
const struct camd_attr *camd_model_node_attr(const camd_model *m, int i, const char *name) {
  if (i < 0 || i >= m->graph->n_nodes) return NULL;
  return camd__attr_find(&m->graph->nodes[i], name);
}
const void *camd_model_constant_data(const camd_model *m, int id) {
  if (id < 0 || id >= m->graph->n_values) return NULL;
  for (int k = 0; k < m->graph->n_nodes; k++) { /* conv weights oneDNN may have dropped */
    const camd__dnnl_conv *c = camd__conv_dnnl(&m->graph->nodes[k]);
    if (c && m->graph->nodes[k].in[1] == id) return camd__dnnl_conv_nchw_weights(c);
  }
  return m->graph->values[id].data;
}
size_t camd_model_param_count(const camd_model *m) {
  return m->param_count;
}
int camd_model_max_batch(const camd_model *m) {
  return m->max_batch;
}
int camd_model_suggest_cam_layer(const camd_model *m) {
  return m->suggested_layer;
}

/* Appends up to ~600 bytes of CAM-layer names to msg. */
static void list_layers(const camd_model *m, char *msg, size_t size) {
  size_t pos = strlen(msg);
  int listed = 0, total = 0;
  for (int v = 0; v < m->graph->n_values; v++) {
    if (!camd_model_is_cam_layer(m, v) || !m->graph->values[v].name[0]) continue;
    total++;
    if (pos + strlen(m->graph->values[v].name) + 8 < size && pos < 700) {
      pos += (size_t)snprintf(msg + pos, size - pos, "%s'%s'", listed ? ", " : "",
                              m->graph->values[v].name);
      listed++;
    }
  }
  if (total > listed && pos < size) {
    snprintf(msg + pos, size - pos, " and %d more (see `camd inspect`)", total - listed);
  }
}

bool camd_model_is_attention_value(const camd_model *m, int id) {
  return id >= 0 && id < m->graph->n_values && m->graph->values[id].attention;
}

int camd_model_check_target(const camd_model *m, const char *name, int *id, camd_error *err) {
  int v = camd_model_find_value(m, name);
  char msg[CAMD_ERROR_MESSAGE_MAX];
  if (v < 0) {
    snprintf(msg, sizeof(msg), "layer '%s' not found; layers are: ", name);
    list_layers(m, msg, sizeof(msg));
    return camd_error_set(err, CAMD_E_INVALID, "%s", msg);
  }
  const camd_value *val = &m->graph->values[v];
  if (val->data || !val->batched) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "layer '%s' is a constant (weights), not an activation", name);
  }
  if (val->attention) {
    const int sug = m->suggested_layer;
    snprintf(msg, sizeof(msg),
             "layer '%.200s' is inside an attention block (queries, keys, values or attention "
             "weights, laid out per window and head, not a spatial map), so it is not a CAM "
             "layer; the suggested layer is '%.200s'; CAM layers are: ",
             name, sug >= 0 ? m->graph->values[sug].name : "(none)");
    list_layers(m, msg, sizeof(msg));
    return camd_error_set(err, CAMD_E_INVALID, "%s", msg);
  }
  unsigned char *marks = malloc((size_t)m->graph->n_values + 1);
  if (!marks) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  mark_ancestors(m->graph, m->graph->outputs[0], marks);
  bool reaches = marks[v] != 0;
  free(marks);
  if (!reaches) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "layer '%s' does not feed the model's output '%s', so no gradient "
                          "reaches it",
                          name, m->graph->values[m->graph->outputs[0]].name);
  }
  if (id) *id = v;
  return 0;
}

/* ---- output activation ---- */

/* Ops that only re-view an item's values in the same order (or, at inference, copy them). */
static bool is_order_preserving_view(const camd_node *n) {
  static const char *const views[] = {"Identity", "Reshape",   "Flatten",
                                      "Squeeze",  "Unsqueeze", "Dropout"};
  for (size_t i = 0; i < sizeof(views) / sizeof(views[0]); i++) {
    if (!strcmp(n->op->op_type, views[i])) return true;
  }
  return false;
}

camd_score_activation camd_model_score_activation(const camd_model *m, int id, int *logits) {
  const camd_graph *g = m->graph;
  if (logits) *logits = id;
  if (id < 0 || id >= g->n_values) return CAMD_SCORES_RAW;
  const size_t count = camd_shape_count(&g->values[id].shape);
  int v = id;
  for (int steps = 0; steps < g->n_nodes; steps++) {
    const camd_value *val = &g->values[v];
    if (val->producer < 0 || !val->batched || val->dtype != CAMD_FLOAT32) break;
    const camd_node *n = &g->nodes[val->producer];
    if (n->n_in < 1 || n->in[0] < 0) break;
    const camd_value *src = &g->values[n->in[0]];
    /* The value fed in: an activation of the image with the item's values in the same order. */
    if (src->data || !src->batched || src->dtype != CAMD_FLOAT32 ||
        camd_shape_count(&src->shape) != count) {
      break;
    }
    camd_score_activation act = CAMD_SCORES_RAW;
    if (!strcmp(n->op->op_type, "Sigmoid")) {
      act = CAMD_SCORES_SIGMOID;
    } else if (!strcmp(n->op->op_type, "Softmax") || !strcmp(n->op->op_type, "LogSoftmax")) {
      /* Only a softmax over all of an item's values makes them class probabilities. */
      if (!camd__softmax_covers_item(n, &src->shape)) break;
      act = n->op->op_type[0] == 'S' ? CAMD_SCORES_SOFTMAX : CAMD_SCORES_LOG_SOFTMAX;
    } else if (is_order_preserving_view(n)) {
      v = n->in[0];
      continue;
    } else {
      break;
    }
    if (logits) *logits = n->in[0];
    return act;
  }
  return CAMD_SCORES_RAW;
}

const char *camd_score_activation_name(camd_score_activation a) {
  switch (a) {
    case CAMD_SCORES_SOFTMAX:
      return "softmax";
    case CAMD_SCORES_SIGMOID:
      return "sigmoid";
    case CAMD_SCORES_LOG_SOFTMAX:
      return "log_softmax";
    default:
      return "none";
  }
}
