/* Graph builder: values, constants and nodes added in topological order, checked as they come.
 *
 * Every node is resolved against the op table and prepared when it is added, so its output
 * shapes are known immediately. A node whose inputs are all constants is evaluated at load
 * and its outputs become constants (the run-time graph holds only compute on activations).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/graph_internal.h"

static int grow(void **arr, int *cap, int need, size_t elem) {
  if (need <= *cap) return 0;
  int ncap = *cap ? *cap * 2 : 16;
  while (ncap < need) ncap *= 2;
  void *p = realloc(*arr, (size_t)ncap * elem);
  if (!p) return CAMD_E_NOMEM;
  *arr = p;
  *cap = ncap;
  return 0;
}

camd_graph *camd_graph_new(void) {
  camd_graph *g = calloc(1, sizeof(*g));
  if (!g) return NULL;
  camd_arena_init(&g->arena, 64 * 1024);
  return g;
}

void camd_graph_free(camd_graph *g) {
  if (!g) return;
  for (int i = 0; i < g->n_values; i++) free(g->values[i].data);
  free(g->values);
  free(g->nodes);
  free(g->aliases);
  free(g->inputs);
  free(g->outputs);
  camd_arena_free(&g->arena);
  free(g);
}

int camd_graph_find(const camd_graph *g, const char *name) {
  if (!name || !name[0]) return -1;
  for (int i = g->n_values - 1; i >= 0; i--) {
    if (strcmp(g->values[i].name, name) == 0) return i;
  }
  for (int i = 0; i < g->n_aliases; i++) {
    if (strcmp(g->aliases[i].name, name) == 0) return g->aliases[i].id;
  }
  return -1;
}

int camd_graph_num_values(const camd_graph *g) {
  return g->n_values;
}

int camd_graph_value(const camd_graph *g, int id, camd_shape *shape, camd_dtype *dtype,
                     const void **data, bool *batched) {
  if (id < 0 || id >= g->n_values) return CAMD_E_INVALID;
  const camd_value *v = &g->values[id];
  if (shape) *shape = v->shape;
  if (dtype) *dtype = v->dtype;
  if (data) *data = v->data;
  if (batched) *batched = v->batched;
  return 0;
}

static int check_shape(const camd_shape *s, bool allow_zero, camd_error *err, const char *what) {
  if (s->ndim < 0 || s->ndim > CAMD_MAX_DIMS) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "%s has rank %d; camd supports ranks 0..%d",
                          what, s->ndim, CAMD_MAX_DIMS);
  }
  size_t count = 1;
  for (int i = 0; i < s->ndim; i++) {
    if (s->dims[i] < 0 || (!allow_zero && s->dims[i] == 0)) {
      return camd_error_set(err, CAMD_E_FORMAT, "%s has invalid dimension %lld at axis %d", what,
                            (long long)s->dims[i], i);
    }
    if (!camd_size_mul(count, (size_t)s->dims[i], &count) || count > ((size_t)1 << 40)) {
      return camd_error_set(err, CAMD_E_LIMIT, "%s is too large", what);
    }
  }
  return 0;
}

/* Appends a value; the name is copied. Returns id or negative status. */
static int add_value(camd_graph *g, const char *name, camd_error *err) {
  if (name && name[0] && camd_graph_find(g, name) >= 0) {
    return camd_error_set(err, CAMD_E_FORMAT, "value name '%s' is defined twice", name);
  }
  if (g->n_values >= (1 << 24) ||
      grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof(camd_value))) {
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory adding value '%s'", name ? name : "");
  }
  camd_value *v = &g->values[g->n_values];
  memset(v, 0, sizeof(*v));
  v->name = camd_arena_strdup(&g->arena, name ? name : "");
  if (!v->name) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  v->producer = -1;
  v->dtype = CAMD_FLOAT32;
  return g->n_values++;
}

int camd_graph_add_input(camd_graph *g, const char *name, const camd_shape *shape,
                         camd_error *err) {
  camd_shape s = *shape;
  if (s.ndim < 1) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "input '%s' is a scalar; camd needs a batched input (N, ...)", name);
  }
  s.dims[0] = 1;
  char what[300];
  snprintf(what, sizeof(what), "input '%s'", name);
  int rc = check_shape(&s, false, err, what);
  if (rc) return rc;
  int id = add_value(g, name, err);
  if (id < 0) return id;
  if (grow((void **)&g->inputs, &g->cap_inputs, g->n_inputs + 1, sizeof(int))) {
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  }
  g->inputs[g->n_inputs++] = id;
  g->values[id].shape = s;
  g->values[id].batched = true;
  g->values[id].is_input = true;
  return id;
}

int camd_graph_add_constant(camd_graph *g, const char *name, camd_dtype dtype,
                            const camd_shape *shape, void *data, camd_error *err) {
  char what[300];
  snprintf(what, sizeof(what), "constant '%s'", name ? name : "");
  int rc = check_shape(shape, true, err, what);
  if (rc) {
    free(data);
    return rc;
  }
  if (dtype != CAMD_FLOAT32 && dtype != CAMD_INT64) {
    free(data);
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "constant '%s' has unsupported dtype %d",
                          name ? name : "", (int)dtype);
  }
  int id = add_value(g, name, err);
  if (id < 0) {
    free(data);
    return id;
  }
  g->values[id].shape = *shape;
  g->values[id].dtype = dtype;
  g->values[id].data = data;
  return id;
}

int camd_graph_add_alias(camd_graph *g, const char *name, int value_id, camd_error *err) {
  if (value_id < 0 || value_id >= g->n_values) {
    return camd_error_set(err, CAMD_E_INVALID, "alias '%s' refers to no value", name);
  }
  if (camd_graph_find(g, name) >= 0) {
    return camd_error_set(err, CAMD_E_FORMAT, "value name '%s' is defined twice", name);
  }
  if (grow((void **)&g->aliases, &g->cap_aliases, g->n_aliases + 1, sizeof(camd_alias))) {
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  }
  const char *copy = camd_arena_strdup(&g->arena, name);
  if (!copy) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  g->aliases[g->n_aliases].name = copy;
  g->aliases[g->n_aliases].id = value_id;
  g->n_aliases++;
  return 0;
}

int camd_graph_mark_output(camd_graph *g, int value_id, camd_error *err) {
  if (value_id < 0 || value_id >= g->n_values) {
    return camd_error_set(err, CAMD_E_INVALID, "output refers to no value");
  }
  if (grow((void **)&g->outputs, &g->cap_outputs, g->n_outputs + 1, sizeof(int))) {
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  }
  g->outputs[g->n_outputs++] = value_id;
  g->values[value_id].is_output = true;
  return 0;
}

/* ---- helpers for ops ---- */

void camd__node_mark_batch_mixed(camd_graph *g) {
  g->batch_mixed = true;
}

void *camd__node_params_alloc(camd_graph *g, size_t size) {
  return camd_arena_alloc(&g->arena, size ? size : 1);
}

const camd_node_attr *camd__attr_find(const camd_node *n, const char *name) {
  for (int i = 0; i < n->n_attrs; i++) {
    if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
  }
  return NULL;
}

int camd__node_error(camd_error *err, const camd_node *n, int status, const char *fmt, ...) {
  if (!err) return status;
  char msg[CAMD_ERROR_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return camd_error_set(err, status, "node '%s' (%s): %s", n->name, n->op_type, msg);
}

int camd__attr_int(const camd_node *n, const char *name, int64_t def, int64_t *out,
                   camd_error *err) {
  const camd_node_attr *a = camd__attr_find(n, name);
  if (!a) {
    *out = def;
    return 0;
  }
  if (a->type != CAMD_ATTR_INT) {
    return camd__node_error(err, n, CAMD_E_FORMAT, "attribute '%s' must be an integer", name);
  }
  *out = a->i;
  return 0;
}

int camd__attr_float(const camd_node *n, const char *name, float def, float *out, camd_error *err) {
  const camd_node_attr *a = camd__attr_find(n, name);
  if (!a) {
    *out = def;
    return 0;
  }
  if (a->type == CAMD_ATTR_INT) {
    *out = (float)a->i;
    return 0;
  }
  if (a->type != CAMD_ATTR_FLOAT) {
    return camd__node_error(err, n, CAMD_E_FORMAT, "attribute '%s' must be a float", name);
  }
  *out = a->f;
  return 0;
}

int camd__attr_ints(const camd_node *n, const char *name, const int64_t **out, size_t *count,
                    camd_error *err) {
  const camd_node_attr *a = camd__attr_find(n, name);
  *out = NULL;
  *count = 0;
  if (!a) return 0;
  if (a->type == CAMD_ATTR_INT) { /* a single int where a list is expected */
    *out = &a->i;
    *count = 1;
    return 0;
  }
  if (a->type != CAMD_ATTR_INTS) {
    return camd__node_error(err, n, CAMD_E_FORMAT, "attribute '%s' must be a list of integers",
                            name);
  }
  *out = a->ints;
  *count = a->n;
  return 0;
}

const char *camd__attr_string(const camd_node *n, const char *name, const char *def) {
  const camd_node_attr *a = camd__attr_find(n, name);
  if (!a || a->type != CAMD_ATTR_STRING || !a->s) return def;
  return a->s;
}

int camd__node_input(const camd_graph *g, const camd_node *n, int i, camd_shape *shape,
                     camd_dtype *dtype, const void **data) {
  if (i < 0 || i >= n->n_in || n->in[i] < 0) return CAMD_E_INVALID;
  return camd_graph_value(g, n->in[i], shape, dtype, data, NULL);
}

/* ---- adding nodes ---- */

static int copy_attrs(camd_graph *g, camd_node *n, const camd_attr *attrs, int n_attrs,
                      camd_error *err) {
  if (n_attrs < 0 || n_attrs > 1024) {
    return camd__node_error(err, n, CAMD_E_FORMAT, "too many attributes (%d)", n_attrs);
  }
  n->attrs = camd_arena_alloc(&g->arena, sizeof(camd_node_attr) * (size_t)(n_attrs ? n_attrs : 1));
  if (!n->attrs) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  for (int i = 0; i < n_attrs; i++) {
    camd_node_attr *d = &n->attrs[i];
    *d = attrs[i];
    d->name = camd_arena_strdup(&g->arena, attrs[i].name ? attrs[i].name : "");
    if (!d->name) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
    d->s = NULL;
    d->ints = NULL;
    d->floats = NULL;
    if (attrs[i].type == CAMD_ATTR_STRING) {
      d->s = camd_arena_strdup(&g->arena, attrs[i].s ? attrs[i].s : "");
      if (!d->s) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
    } else if (attrs[i].type == CAMD_ATTR_INTS || attrs[i].type == CAMD_ATTR_FLOATS) {
      size_t elem = attrs[i].type == CAMD_ATTR_INTS ? sizeof(int64_t) : sizeof(float);
      size_t bytes;
      if (attrs[i].n > (1u << 24) || !camd_size_mul(attrs[i].n, elem, &bytes)) {
        return camd__node_error(err, n, CAMD_E_FORMAT, "attribute '%s' is too long", d->name);
      }
      void *p = camd_arena_alloc(&g->arena, bytes ? bytes : 1);
      if (!p) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
      const void *src = attrs[i].type == CAMD_ATTR_INTS ? (const void *)attrs[i].ints
                                                        : (const void *)attrs[i].floats;
      if (bytes && !src) {
        return camd__node_error(err, n, CAMD_E_FORMAT, "attribute '%s' has no data", d->name);
      }
      if (bytes) memcpy(p, src, bytes);
      if (attrs[i].type == CAMD_ATTR_INTS)
        d->ints = p;
      else
        d->floats = p;
    }
  }
  n->n_attrs = n_attrs;
  return 0;
}

int camd__graph_infer_node(const camd_graph *g, const camd_node *n, camd_shape *shapes,
                           camd_error *err) {
  camd_shape in[CAMD_NODE_MAX_IO], out[CAMD_NODE_MAX_IO];
  for (int i = 0; i < n->n_in; i++) {
    if (n->in[i] < 0) {
      memset(&in[i], 0, sizeof(in[i]));
      in[i].ndim = -1;
    } else {
      in[i] = shapes[n->in[i]];
    }
  }
  memset(out, 0, sizeof(camd_shape) * (size_t)n->n_out);
  int rc = n->op->infer(n, in, out, err);
  if (rc) return rc;
  for (int j = 0; j < n->n_out; j++) {
    char what[300];
    snprintf(what, sizeof(what), "output %d of node '%s' (%s)", j, n->name, n->op_type);
    rc = check_shape(&out[j], true, err, what);
    if (rc) return rc;
    shapes[n->out[j]] = out[j];
  }
  (void)g;
  return 0;
}

/* Evaluates a node whose inputs are all constants; its outputs become constants. */
static int fold_constant_node(camd_graph *g, camd_node *n, camd_error *err) {
  camd_tensor in[CAMD_NODE_MAX_IO], out[CAMD_NODE_MAX_IO];
  int rc = 0;
  float *scratch = NULL;
  memset(out, 0, sizeof(out));
  for (int i = 0; i < n->n_in; i++) {
    memset(&in[i], 0, sizeof(in[i]));
    in[i].shape.ndim = -1;
    if (n->in[i] < 0) continue;
    const camd_value *v = &g->values[n->in[i]];
    in[i].shape = v->shape;
    if (v->dtype == CAMD_FLOAT32) in[i].data = v->data;
  }
  for (int j = 0; j < n->n_out; j++) {
    camd_value *v = &g->values[n->out[j]];
    size_t count = camd_shape_count(&v->shape);
    out[j].shape = v->shape;
    out[j].data = calloc(count ? count : 1, sizeof(float));
    if (!out[j].data) {
      rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory folding node '%s'", n->name);
      goto done;
    }
  }
  if (n->scratch_floats + n->thread_scratch_floats) {
    scratch = calloc(n->scratch_floats + n->thread_scratch_floats, sizeof(float));
    if (!scratch) {
      rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory folding node '%s'", n->name);
      goto done;
    }
  }
  /* Kernels may assume non-empty tensors: every output empty means nothing to compute, and an
   * empty float input that should make a non-empty output is refused. */
  bool all_empty = true;
  for (int j = 0; j < n->n_out; j++) all_empty &= camd_shape_count(&out[j].shape) == 0;
  for (int i = 0; i < n->n_in && !all_empty; i++) {
    if (in[i].data && camd_shape_count(&in[i].shape) == 0) {
      rc = camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "input %d has no elements; camd does not compute on empty tensors", i);
      goto done;
    }
  }
  camd_op_ctx ctx = {.node = n,
                     .params = n->params,
                     .in = in,
                     .out = out,
                     .scratch = scratch,
                     .thread_scratch = scratch ? scratch + n->scratch_floats : NULL};
  if (!all_empty) n->op->forward(&ctx);
  for (int j = 0; j < n->n_out; j++) {
    camd_value *v = &g->values[n->out[j]];
    v->data = out[j].data;
    v->producer = -1;
    out[j].data = NULL;
  }
done:
  for (int j = 0; j < n->n_out; j++) free(out[j].data);
  free(scratch);
  return rc;
}

int camd_graph_add_node(camd_graph *g, const char *op_type, const char *node_name, int opset,
                        int n_in, const int *inputs, int n_out, const char *const *output_names,
                        const camd_attr *attrs, int n_attrs, int *out_ids, camd_error *err) {
  const camd_op_desc *desc = camd__op_find(op_type);
  char gen_name[64];
  if (!node_name || !node_name[0]) {
    snprintf(gen_name, sizeof(gen_name), "%s_%d", op_type ? op_type : "node", g->n_nodes);
    node_name = gen_name;
  }
  if (!desc || !desc->prepare) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "node '%s': unsupported operator '%s'",
                          node_name, op_type ? op_type : "(null)");
  }
  if (opset < desc->opset_min || opset > desc->opset_max) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "node '%s': operator '%s' at opset %d is not supported (camd supports "
                          "opsets %d..%d)",
                          node_name, op_type, opset, desc->opset_min, desc->opset_max);
  }
  if (n_in < 0 || n_in > CAMD_NODE_MAX_IO || n_out < 1 || n_out > CAMD_NODE_MAX_IO) {
    return camd_error_set(err, CAMD_E_FORMAT, "node '%s': %d inputs / %d outputs not supported",
                          node_name, n_in, n_out);
  }
  if (grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof(camd_node))) {
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  }
  camd_node *n = &g->nodes[g->n_nodes];
  memset(n, 0, sizeof(*n));
  n->op = desc;
  n->op_type = camd_arena_strdup(&g->arena, op_type);
  n->name = camd_arena_strdup(&g->arena, node_name);
  n->opset = opset;
  n->n_in = n_in;
  n->n_out = n_out;
  n->in = camd_arena_alloc(&g->arena, sizeof(int) * (size_t)(n_in ? n_in : 1));
  n->out = camd_arena_alloc(&g->arena, sizeof(int) * (size_t)n_out);
  if (!n->op_type || !n->name || !n->in || !n->out) {
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  }
  bool any_batched = false, all_const = true;
  for (int i = 0; i < n_in; i++) {
    int id = inputs[i];
    if (id < -1 || id >= g->n_values) {
      return camd__node_error(err, n, CAMD_E_FORMAT, "input %d refers to no value", i);
    }
    n->in[i] = id;
    if (id < 0) continue;
    const camd_value *v = &g->values[id];
    if (v->data) {
      n->in_const |= 1u << i;
    } else {
      all_const = false;
      if (v->batched) {
        n->in_batched |= 1u << i;
        any_batched = true;
      }
    }
  }
  int rc = copy_attrs(g, n, attrs, n_attrs, err);
  if (rc) return rc;
  rc = desc->prepare(g, n, err);
  if (rc) return rc;
  /* Output values. */
  for (int j = 0; j < n_out; j++) {
    const char *oname = output_names ? output_names[j] : NULL;
    int id = add_value(g, oname, err);
    if (id < 0) return id;
    n = &g->nodes[g->n_nodes]; /* values array may not move nodes, but keep it obvious */
    n->out[j] = id;
    g->values[id].producer = g->n_nodes;
    g->values[id].batched = any_batched;
  }
  /* Shape inference at the load-time batch (1). */
  {
    camd_shape *shapes = malloc(sizeof(camd_shape) * (size_t)g->n_values);
    if (!shapes) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
    for (int i = 0; i < n_in; i++) {
      if (n->in[i] >= 0) shapes[n->in[i]] = g->values[n->in[i]].shape;
    }
    rc = camd__graph_infer_node(g, n, shapes, err);
    if (!rc) {
      for (int j = 0; j < n_out; j++) {
        g->values[n->out[j]].shape = shapes[n->out[j]];
        if (any_batched && (shapes[n->out[j]].ndim < 1 || shapes[n->out[j]].dims[0] != 1)) {
          g->batch_mixed = true;
        }
      }
    }
    free(shapes);
    if (rc) return rc;
  }
  for (int j = 0; j < n_out; j++) {
    if (out_ids) out_ids[j] = n->out[j];
  }
  if (!(all_const && n_in > 0)) {
    /* Kernels may assume non-empty tensors: an activation without elements (a model that
     * slices a map down to nothing) is refused here, not read out of bounds at run time. */
    for (int j = 0; j < n_out; j++) {
      const camd_shape *os = &g->values[n->out[j]].shape;
      if (camd_shape_count(os) == 0) {
        char buf[96];
        camd_shape_format(os, buf, sizeof(buf));
        return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                                "output %d has no elements (shape %s); camd does not run empty "
                                "activations",
                                j, buf);
      }
    }
  }
  if (all_const && n_in > 0) {
    /* Evaluate now; the node does not enter the run-time graph. */
    rc = fold_constant_node(g, n, err);
    if (rc) return rc;
    return 0;
  }
  g->n_nodes++;
  return 0;
}
