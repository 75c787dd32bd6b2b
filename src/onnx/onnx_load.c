/* ONNX loader entry points: decode the protobuf, check every operator up front, then build the
 * engine graph (inputs, initializers, nodes with folding and aliases, outputs) and freeze it.
 *
 * Order of work, so that a bad model fails fast and with the most useful message:
 *   1. size limit, nesting depth (a scan of the wire format: the decoder recurses), protobuf
 *      decoding, node count, default-domain opset;
 *   2. a scan over all nodes that propagates "is constant" by name (initializers, Constant,
 *      Shape, foldable nodes on constants) and collects EVERY unsupported operator into one
 *      message;
 *   3. the build: graph inputs (per-sample shapes, symbolic batch), initializers copied into
 *      malloc'd buffers owned by the graph, nodes in file order, outputs;
 *   4. the protobuf message is freed, then the graph is finalized into a model.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "camd/core.h"
#include "camd/onnx.h"
#include "onnx/onnx_internal.h"

#define MAX_NODE_ARITY 65536 /* inputs / outputs / attributes per node */
#define MAX_GROUPS 24        /* distinct unsupported operator types listed */
#define MAX_GROUP_NODES 3    /* node names listed per unsupported type */

/* ---- small helpers ---- */

/* Bounded string builder: appends until full (the error message size). */
typedef struct sbuf {
  char buf[CAMD_ERROR_MESSAGE_MAX];
  size_t len;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
  if (b->len + 1 >= sizeof(b->buf)) return;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(b->buf + b->len, sizeof(b->buf) - b->len, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  b->len += (size_t)n;
  if (b->len >= sizeof(b->buf)) b->len = sizeof(b->buf) - 1;
}

static bool is_default_domain(const char *d) {
  return !d || !*d || !strcmp(d, "ai.onnx");
}

/* Node name as the engine and messages use it: the file's name or "<op_type>_<index>". */
static const char *node_name(const Onnx__NodeProto *n, size_t idx, char *buf, size_t size) {
  if (n->name && n->name[0]) return n->name;
  snprintf(buf, size, "%.200s_%zu", camd__onnx_str(n->op_type), idx);
  return buf;
}

/* Attribute type, inferred from the set fields for old files that leave it UNDEFINED. */
static int attr_type(const Onnx__AttributeProto *a) {
  if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED) return a->type;
  if (a->n_floats) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
  if (a->n_ints) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  if (a->has_s) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
  if (a->t) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
  if (a->g) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH;
  if (a->has_i) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  if (a->has_f) return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

static const char *attr_type_name(int t) {
  switch (t) {
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
      return "FLOAT";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
      return "INT";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
      return "STRING";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR:
      return "TENSOR";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
      return "GRAPH";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
      return "FLOATS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
      return "INTS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS:
      return "STRINGS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS:
      return "TENSORS";
    case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS:
      return "GRAPHS";
    default:
      return "UNDEFINED";
  }
}

static int64_t node_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def) {
  for (size_t k = 0; k < n->n_attribute; k++) {
    const Onnx__AttributeProto *a = n->attribute[k];
    if (a->name && !strcmp(a->name, name) && a->has_i) return a->i;
  }
  return def;
}

static bool is_alias_op(const char *op) {
  return !strcmp(op, "Identity") || !strcmp(op, "Dropout");
}

/* A Pad that pads nothing is its input (PyTorch exports AvgPool2d with a Pad of zeros before it:
 * DenseNet's transitions): true when the pads are a constant of zeros of the right length (an
 * input from opset 11, an attribute before) and the mode is one ONNX defines, so the node passes
 * its input through as Identity does. Anything else goes to the engine's Pad, which checks it. */
static bool is_noop_pad(const camd__onnx_ctx *ctx, const Onnx__NodeProto *n, const int *ids) {
  if (strcmp(n->op_type, "Pad") || n->n_input < 1 || ids[0] < 0) return false;
  for (size_t k = 0; k < n->n_attribute; k++) {
    const Onnx__AttributeProto *a = n->attribute[k];
    if (!a->name || strcmp(a->name, "mode")) continue;
    static const char *const modes[] = {"constant", "reflect", "edge", "wrap"};
    bool known = false;
    for (size_t m = 0; m < sizeof(modes) / sizeof(modes[0]); m++)
      known |= a->s.len == strlen(modes[m]) && !memcmp(a->s.data, modes[m], a->s.len);
    if (!known) return false;
  }
  camd_shape data_shape;
  camd_dtype dt;
  const void *data = NULL;
  bool batched;
  if (camd_graph_value(ctx->g, ids[0], &data_shape, &dt, &data, &batched) < 0 || data) return false;
  size_t want = 2 * (size_t)data_shape.ndim, count = 0;
  const int64_t *pads = NULL;
  if (ctx->opset < 11) {
    for (size_t k = 0; k < n->n_attribute; k++) {
      const Onnx__AttributeProto *a = n->attribute[k];
      if (a->name && !strcmp(a->name, "pads")) pads = a->ints, count = a->n_ints;
    }
  } else {
    camd_shape s;
    if (n->n_input < 2 || ids[1] < 0 ||
        camd_graph_value(ctx->g, ids[1], &s, &dt, &data, &batched) < 0 || !data || dt != CAMD_INT64)
      return false;
    pads = data, count = camd_shape_count(&s);
    if (n->n_input >= 4 && ids[3] >= 0) { /* axes: pads cover only those */
      if (camd_graph_value(ctx->g, ids[3], &s, &dt, &data, &batched) < 0 || !data) return false;
      want = 2 * camd_shape_count(&s);
    }
  }
  if (!pads || count != want) return false;
  for (size_t k = 0; k < count; k++) {
    if (pads[k] != 0) return false;
  }
  return true;
}

/* QuantizeLinear / DequantizeLinear on an activation: camd computes in float, so the pair an
 * activation goes through (QDQ models) is passed through; weights are dequantised at load (the
 * folder evaluates DequantizeLinear on constants). */
static bool is_qdq_passthrough(const char *op, bool const_in) {
  return !const_in && (!strcmp(op, "QuantizeLinear") || !strcmp(op, "DequantizeLinear"));
}

/* True when the loader folds this node (a Constant, or a foldable op on constants). */
static bool foldable(const char *op, bool const_in, size_t n_input) {
  return camd__onnx_fold_possible(op, const_in) && (n_input > 0 || !strcmp(op, "Constant"));
}

static bool any_output_in(const Onnx__NodeProto *n, const camd__onnx_names *outs) {
  for (size_t k = 0; k < n->n_output; k++) {
    if (n->output[k][0] && camd__onnx_names_has(outs, n->output[k])) return true;
  }
  return false;
}

/* ---- step 2: the up-front operator scan ---- */

typedef enum why {
  W_NONE = 0,
  W_UNKNOWN,     /* the engine has no such op */
  W_OPSET,       /* the engine has it, not at this opset */
  W_DOMAIN,      /* custom / non-default domain */
  W_NEEDS_CONST, /* loader-only op on non-constant inputs */
  W_EINSUM,      /* Einsum whose equation is not a batched matrix product */
} why;

typedef struct group {
  const char *op, *domain;
  why why;
  int min, max;
  size_t nodes[MAX_GROUP_NODES];
  size_t n_nodes;
} group;

typedef struct scan_state {
  group groups[MAX_GROUPS];
  size_t n_groups, more_types;
} scan_state;

static void scan_add(scan_state *s, const Onnx__NodeProto *n, size_t idx, why w, int mn, int mx) {
  const char *op = camd__onnx_str(n->op_type), *dom = camd__onnx_str(n->domain);
  for (size_t k = 0; k < s->n_groups; k++) {
    group *g = &s->groups[k];
    if (g->why == w && !strcmp(g->op, op) && !strcmp(g->domain, dom)) {
      if (g->n_nodes < MAX_GROUP_NODES) g->nodes[g->n_nodes] = idx;
      g->n_nodes++;
      return;
    }
  }
  if (s->n_groups == MAX_GROUPS) {
    s->more_types++;
    return;
  }
  group *g = &s->groups[s->n_groups++];
  *g = (group){.op = op, .domain = dom, .why = w, .min = mn, .max = mx, .n_nodes = 1};
  g->nodes[0] = idx;
}

/* Which engine op a node needs, or W_NONE when the engine supports it. */
static why engine_check(const char *op, int opset, int *mn, int *mx) {
  if (camd_op_supported(op, opset, mn, mx)) return W_NONE;
  return *mn == 0 && *mx == 0 ? W_UNKNOWN : W_OPSET;
}

/* Einsum (opset 12+) runs when its equation is a batched matrix product (onnx_einsum.c). */
static why einsum_check(const Onnx__NodeProto *n, int opset, int *mn, int *mx) {
  *mn = 12;
  *mx = 22;
  if (opset < *mn || opset > *mx) return W_OPSET;
  char eq[128] = "";
  for (size_t k = 0; k < n->n_attribute; k++) {
    const Onnx__AttributeProto *at = n->attribute[k];
    if (!at->name || strcmp(at->name, "equation") != 0 || !at->has_s) continue;
    size_t len = at->s.len < sizeof(eq) - 1 ? at->s.len : sizeof(eq) - 1;
    memcpy(eq, at->s.data, len);
    eq[len] = 0;
  }
  int rank;
  bool tb;
  return n->n_input == 2 && camd__onnx_einsum_matmul(eq, &rank, &tb) ? W_NONE : W_EINSUM;
}

/* Why a loader-only op on a run-time input fails the load. */
static const char *needs_const_why(const char *op) {
  /* Range's output length is computed from its inputs' values, and camd runs no graph whose
   * shapes depend on data: start, limit and delta must fold to constants at load. */
  if (!strcmp(op, "Range"))
    return "supported only when start, limit and delta are constants at load: its output length "
           "would depend on run-time values";
  return "supported only when its inputs are constants";
}

static void format_unsupported(const scan_state *s, const Onnx__GraphProto *gp, int opset,
                               sbuf *b) {
  sb_printf(b, "unsupported operators: ");
  for (size_t k = 0; k < s->n_groups; k++) {
    const group *g = &s->groups[k];
    sb_printf(b, "%s'%s' (node%s ", k ? ", " : "", g->op, g->n_nodes > 1 ? "s" : "");
    for (size_t j = 0; j < g->n_nodes && j < MAX_GROUP_NODES; j++) {
      char buf[256];
      sb_printf(b, "%s'%s'", j ? ", " : "",
                node_name(gp->node[g->nodes[j]], g->nodes[j], buf, sizeof(buf)));
    }
    if (g->n_nodes > MAX_GROUP_NODES) sb_printf(b, " and %zu more", g->n_nodes - MAX_GROUP_NODES);
    switch (g->why) {
      case W_DOMAIN:
        sb_printf(b, ", domain '%s')", g->domain);
        break;
      case W_OPSET:
        sb_printf(b, ", opset %d; camd supports opsets %d-%d)", opset, g->min, g->max);
        break;
      case W_NEEDS_CONST:
        sb_printf(b, ", opset %d; %s)", opset, needs_const_why(g->op));
        break;
      case W_EINSUM:
        sb_printf(b,
                  ", opset %d; supported only as a batched matrix product such as "
                  "'bhid,bhjd->bhij')",
                  opset);
        break;
      default:
        sb_printf(b, ", opset %d)", opset);
        break;
    }
  }
  if (s->more_types) sb_printf(b, " and %zu more operator types", s->more_types);
  sb_printf(b, "; supported:");
  bool first = true;
  for (int i = 0; i < camd_op_count(); i++) {
    sb_printf(b, "%s %s", first ? "" : ",", camd_op_name(i));
    first = false;
  }
  char folded[1024];
  camd__onnx_fold_list(folded, sizeof(folded), true);
  sb_printf(b, "%s; evaluated at load only, when their inputs are constants or shapes: %s",
            first ? " (none)" : "", folded);
}

/* Collects every unsupported operator before anything is built. */
static int scan_nodes(const camd__onnx_ctx *ctx, const Onnx__GraphProto *gp,
                      const camd__onnx_names *outs, camd_error *err) {
  camd__onnx_names consts = {0};
  scan_state *s = calloc(1, sizeof(*s));
  int rc = 0;
  if (!s) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  for (size_t k = 0; k < gp->n_initializer && rc == 0; k++) {
    if (gp->initializer[k]->name) rc = camd__onnx_names_add(&consts, gp->initializer[k]->name);
  }
  for (size_t i = 0; i < gp->n_node && rc == 0; i++) {
    const Onnx__NodeProto *n = gp->node[i];
    const char *op = camd__onnx_str(n->op_type);
    if (!*op) {
      rc = camd_error_set(err, CAMD_E_FORMAT, "node %zu ('%s') has no op_type", i,
                          camd__onnx_str(n->name));
      break;
    }
    bool const_in = true;
    for (size_t k = 0; k < n->n_input; k++) {
      if (n->input[k][0] && !camd__onnx_names_has(&consts, n->input[k])) const_in = false;
    }
    bool out_const = false, is_out = any_output_in(n, outs);
    int mn = 0, mx = 0;
    why w = W_NONE;
    if (!is_default_domain(n->domain)) {
      w = W_DOMAIN;
    } else if (is_alias_op(op) || is_qdq_passthrough(op, const_in) ||
               (!strcmp(op, "Cast") && !const_in)) {
      if (!strcmp(op, "Cast") &&
          node_attr_int(n, "to", 0) != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        w = W_NEEDS_CONST;
      } else {
        out_const = const_in && n->n_input > 0;
        if (is_out) w = engine_check("Identity", ctx->opset, &mn, &mx);
      }
    } else if (foldable(op, const_in, n->n_input)) {
      out_const = true;
    } else if (camd__onnx_loader_only(op)) {
      w = W_NEEDS_CONST;
    } else if (!strcmp(op, "Einsum")) {
      w = einsum_check(n, ctx->opset, &mn, &mx);
    } else {
      w = engine_check(op, ctx->opset, &mn, &mx);
    }
    if (w != W_NONE) scan_add(s, n, i, w, mn, mx);
    for (size_t k = 0; out_const && k < n->n_output && rc == 0; k++) {
      if (n->output[k][0]) rc = camd__onnx_names_add(&consts, n->output[k]);
    }
  }
  if (rc == CAMD_E_NOMEM) rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  if (rc == 0 && s->n_groups) {
    sbuf *b = calloc(1, sizeof(*b));
    if (!b) {
      rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory");
    } else {
      format_unsupported(s, gp, ctx->opset, b);
      rc = camd_error_set(err, CAMD_E_UNSUPPORTED, "%s", b->buf);
      free(b);
    }
  }
  camd__onnx_names_free(&consts);
  free(s);
  return rc;
}

/* ---- step 3: the build ---- */

/* A value's elements (per image when batched) against max_tensor_elements. */
static int check_value_elements(camd__onnx_ctx *ctx, int id, const char *what, camd_error *err) {
  camd_shape s;
  camd_dtype dt;
  const void *data = NULL;
  bool batched;
  int rc = camd_graph_value(ctx->g, id, &s, &dt, &data, &batched);
  if (rc < 0) return rc;
  if (batched && s.ndim > 0) s.dims[0] = 1;
  size_t count;
  if (!camd__onnx_shape_count(&s, &count) || count > ctx->opts.max_tensor_elements) {
    char n[32] = "more than 2^64";
    if (camd__onnx_shape_count(&s, &count)) snprintf(n, sizeof(n), "%zu", count);
    return camd_error_set(err, CAMD_E_LIMIT,
                          "%s has %s elements%s; the limit is %zu (max_tensor_elements)", what, n,
                          batched ? " per image" : "", ctx->opts.max_tensor_elements);
  }
  return 0;
}

/* A non-image input: every dimension but the batch must be fixed in the file. */
static int fixed_input(const char *name, const camd_shape *s, const char *const *sym,
                       camd_error *err) {
  for (int d = 1; d < s->ndim; d++) {
    if (sym[d])
      return camd_error_set(err, CAMD_E_UNSUPPORTED,
                            "graph input '%s': dimension %d is symbolic ('%s'); camd fixes free "
                            "sizes only for 4-D image inputs: re-export the model with fixed "
                            "sizes",
                            name, d, sym[d]);
  }
  return 0;
}

/* The layout of a 4-D image input from its shape (-1 = symbolic): a trailing 1 or 3 after a
 * larger (or free) second axis is channels-last. */
static camd_layout detect_layout(const camd_shape *s) {
  int64_t d1 = s->dims[1], d3 = s->dims[3];
  if ((d3 == 1 || d3 == 3) && (d1 < 0 || d1 > d3)) return CAMD_LAYOUT_NHWC;
  return d1 >= 0 ? CAMD_LAYOUT_NCHW : CAMD_LAYOUT_UNKNOWN;
}

/* A 4-D image input: decides its layout and fixes its free dimensions from the options. */
static int image_input(camd__onnx_ctx *ctx, const char *name, camd_shape *s, const char *const *sym,
                       camd_layout *layout, camd_error *err) {
  const camd_onnx_options *o = &ctx->opts;
  char shp[96];
  size_t pos = (size_t)snprintf(shp, sizeof(shp), "[N");
  for (int d = 1; d < 4 && pos < sizeof(shp); d++) {
    if (sym[d])
      pos += (size_t)snprintf(shp + pos, sizeof(shp) - pos, ", %.16s", sym[d]);
    else
      pos += (size_t)snprintf(shp + pos, sizeof(shp) - pos, ", %lld", (long long)s->dims[d]);
  }
  if (pos < sizeof(shp)) snprintf(shp + pos, sizeof(shp) - pos, "]");
  *layout = o->input_layout != CAMD_LAYOUT_UNKNOWN ? o->input_layout : detect_layout(s);
  if (*layout != CAMD_LAYOUT_NCHW && *layout != CAMD_LAYOUT_NHWC)
    return camd_error_set(err, CAMD_E_INVALID,
                          "graph input '%s' has shape %s: its layout cannot be told from the "
                          "shape; set the model's layout (config key \"layout\": \"NCHW\" or "
                          "\"NHWC\", CLI --layout)",
                          name, shp);
  bool last = *layout == CAMD_LAYOUT_NHWC;
  int ax_c = last ? 3 : 1, ax_h = last ? 1 : 2, ax_w = last ? 2 : 3;
  if (sym[ax_h] || sym[ax_w]) {
    if (o->input_height <= 0 || o->input_width <= 0)
      return camd_error_set(err, CAMD_E_INVALID,
                            "graph input '%s' has shape %s (%s): its height and width are free; "
                            "set the model's input_size (config key \"input_size\": [width, "
                            "height], CLI --size WxH) to fix them",
                            name, shp, camd_layout_name(*layout));
    if (sym[ax_h]) s->dims[ax_h] = o->input_height;
    if (sym[ax_w]) s->dims[ax_w] = o->input_width;
  }
  if (sym[ax_c]) {
    if (o->input_channels <= 0)
      return camd_error_set(err, CAMD_E_INVALID,
                            "graph input '%s' has shape %s (%s): its channel count is free; "
                            "set the model's channels (config key \"channels\")",
                            name, shp, camd_layout_name(*layout));
    s->dims[ax_c] = o->input_channels;
  }
  return 0;
}

static int add_inputs(camd__onnx_ctx *ctx, const Onnx__GraphProto *gp,
                      const camd__onnx_names *inits, camd_error *err) {
  for (size_t i = 0; i < gp->n_input; i++) {
    const Onnx__ValueInfoProto *vi = gp->input[i];
    const char *name = camd__onnx_str(vi->name);
    if (!*name) return camd_error_set(err, CAMD_E_FORMAT, "graph input %zu has no name", i);
    if (camd__onnx_names_has(inits, name)) continue; /* an initializer: a constant */
    if (camd_graph_find(ctx->g, name) >= 0)
      return camd_error_set(err, CAMD_E_FORMAT, "graph input '%s' is listed twice", name);
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
      return camd_error_set(err, CAMD_E_UNSUPPORTED,
                            "graph input '%s' is not a tensor; camd feeds float32 tensors only",
                            name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
      return camd_error_set(err, CAMD_E_UNSUPPORTED,
                            "graph input '%s' has element type %s; camd feeds float32 inputs "
                            "only (re-export the model with a float input)",
                            name, camd__onnx_type_name(tt->elem_type));
    const Onnx__TensorShapeProto *sp = tt->shape;
    if (!sp)
      return camd_error_set(err, CAMD_E_UNSUPPORTED,
                            "graph input '%s' has no shape; re-export the model with a fixed "
                            "input shape such as [N, 3, 224, 224]",
                            name);
    if (sp->n_dim < 1 || sp->n_dim > CAMD_MAX_DIMS)
      return camd_error_set(err, CAMD_E_UNSUPPORTED,
                            "graph input '%s' has %zu dimensions; camd needs a batched input "
                            "with 1 to %d dimensions ([N, ...])",
                            name, sp->n_dim, CAMD_MAX_DIMS);
    camd_shape shape = {.ndim = (int)sp->n_dim};
    const char *sym[CAMD_MAX_DIMS] = {NULL}; /* names of the free dimensions */
    for (size_t d = 0; d < sp->n_dim; d++) {
      const Onnx__TensorShapeProto__Dimension *dim = sp->dim[d];
      bool fixed = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      if (d == 0) {
        shape.dims[0] = fixed && dim->dim_value > 0 ? dim->dim_value : -1;
        continue;
      }
      if (!fixed) {
        sym[d] = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                         dim->dim_param && dim->dim_param[0]
                     ? dim->dim_param
                     : "?";
        shape.dims[d] = -1;
        continue;
      }
      if (dim->dim_value <= 0)
        return camd_error_set(err, CAMD_E_FORMAT, "graph input '%s': dimension %zu is %lld", name,
                              d, (long long)dim->dim_value);
      shape.dims[d] = dim->dim_value;
    }
    camd_layout layout = CAMD_LAYOUT_UNKNOWN;
    int rc = shape.ndim == 4 ? image_input(ctx, name, &shape, sym, &layout, err)
                             : fixed_input(name, &shape, sym, err);
    if (rc < 0) return rc;
    int id = camd_graph_add_input(ctx->g, name, &shape, err);
    if (id < 0) return id;
    char what[300];
    snprintf(what, sizeof(what), "graph input '%.256s'", name);
    if ((rc = check_value_elements(ctx, id, what, err)) < 0) return rc;
    if (layout != CAMD_LAYOUT_UNKNOWN &&
        (rc = camd_graph_set_input_layout(ctx->g, id, layout, err)) < 0)
      return rc;
  }
  return 0;
}

static int add_initializers(camd__onnx_ctx *ctx, const Onnx__GraphProto *gp, camd_error *err) {
  if (gp->n_sparse_initializer)
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "the model has %zu sparse initializers; camd supports dense ones only",
                          gp->n_sparse_initializer);
  for (size_t i = 0; i < gp->n_initializer; i++) {
    Onnx__TensorProto *t = gp->initializer[i]; /* the message is ours (load_buffer) */
    const char *name = camd__onnx_str(t->name);
    if (!*name) return camd_error_set(err, CAMD_E_FORMAT, "initializer %zu has no name", i);
    if (camd_graph_find(ctx->g, name) >= 0)
      return camd_error_set(err, CAMD_E_FORMAT, "initializer '%s' is defined twice", name);
    char what[300];
    snprintf(what, sizeof(what), "initializer '%.256s'", name);
    camd__onnx_tensor ct;
    int rc = camd__onnx_initializer_decode(ctx, t, what, &ct, err);
    if (rc < 0) return rc;
    rc = camd_graph_add_constant(ctx->g, name, ct.dtype, &ct.shape, ct.data, err);
    if (rc < 0) return rc;
  }
  return 0;
}

/* Converts the node's attributes for camd_graph_add_node. STRING values are copied to
 * NUL-terminated buffers (*strs, freed by the caller); arrays point into the message. */
static int convert_attrs(const Onnx__NodeProto *n, const char *name, camd_attr *attrs, char **strs,
                         camd_error *err) {
  const char *op = camd__onnx_str(n->op_type);
  for (size_t k = 0; k < n->n_attribute; k++) {
    const Onnx__AttributeProto *a = n->attribute[k];
    const char *an = camd__onnx_str(a->name);
    camd_attr *c = &attrs[k];
    if (!*an)
      return camd_error_set(err, CAMD_E_FORMAT, "node '%s' (%s): attribute %zu has no name", name,
                            op, k);
    c->name = an;
    int t = attr_type(a);
    switch (t) {
      case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
        c->type = CAMD_ATTR_FLOAT;
        c->f = a->f;
        break;
      case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
        c->type = CAMD_ATTR_INT;
        c->i = a->i;
        break;
      case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
        c->type = CAMD_ATTR_STRING;
        strs[k] = malloc(a->s.len + 1);
        if (!strs[k]) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
        if (a->s.len) memcpy(strs[k], a->s.data, a->s.len);
        strs[k][a->s.len] = '\0';
        c->s = strs[k];
        break;
      case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
        c->type = CAMD_ATTR_FLOATS;
        c->floats = a->floats;
        c->n = a->n_floats;
        break;
      case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
        c->type = CAMD_ATTR_INTS;
        c->ints = a->ints;
        c->n = a->n_ints;
        break;
      default:
        return camd_error_set(err, CAMD_E_UNSUPPORTED,
                              "node '%s' (%s): attribute '%s' has type %s, which camd does not "
                              "support on this operator",
                              name, op, an, attr_type_name(t));
    }
  }
  return 0;
}

static int add_engine_node(camd__onnx_ctx *ctx, const Onnx__NodeProto *n, const char *op,
                           const char *name, int n_in, const int *ids, bool no_attrs,
                           camd_error *err) {
  size_t na = no_attrs ? 0 : n->n_attribute;
  camd_attr *attrs = calloc(na ? na : 1, sizeof(camd_attr));
  char **strs = calloc(na ? na : 1, sizeof(char *));
  int *out_ids = calloc(n->n_output ? n->n_output : 1, sizeof(int));
  int rc = 0;
  if (!attrs || !strs || !out_ids) {
    rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  } else if (!no_attrs) {
    rc = convert_attrs(n, name, attrs, strs, err);
  }
  /* Trailing optional outputs left unnamed ("") are not produced (ONNX: absent outputs). */
  size_t n_out = n->n_output;
  while (n_out > 1 && (!n->output[n_out - 1] || !n->output[n_out - 1][0])) n_out--;
  if (rc == 0) {
    rc = camd_graph_add_node(ctx->g, op, name, ctx->opset, n_in, ids, (int)n_out,
                             (const char *const *)n->output, attrs, (int)na, out_ids, err);
  }
  for (size_t k = 0; rc >= 0 && k < n_out; k++) {
    char what[400];
    snprintf(what, sizeof(what), "node '%.128s' (%.32s): output '%.128s'", name, op, n->output[k]);
    if (out_ids[k] >= 0) rc = check_value_elements(ctx, out_ids[k], what, err);
  }
  for (size_t k = 0; strs && k < na; k++) free(strs[k]);
  free(strs);
  free(attrs);
  free(out_ids);
  return rc < 0 ? rc : 0;
}

static int add_node(camd__onnx_ctx *ctx, const Onnx__NodeProto *n, size_t idx,
                    const camd__onnx_names *outs, camd_error *err) {
  char buf[256];
  const char *name = node_name(n, idx, buf, sizeof(buf));
  const char *op = camd__onnx_str(n->op_type);
  if (n->n_input > MAX_NODE_ARITY || n->n_output > MAX_NODE_ARITY ||
      n->n_attribute > MAX_NODE_ARITY)
    return camd_error_set(err, CAMD_E_LIMIT,
                          "node '%s' (%s): too many inputs, outputs or "
                          "attributes",
                          name, op);
  for (size_t k = 0; k < n->n_output; k++) {
    if (n->output[k][0] && camd_graph_find(ctx->g, n->output[k]) >= 0)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "node '%s' (%s): output '%s' is already defined (value names must "
                            "be unique)",
                            name, op, n->output[k]);
  }
  int *ids = calloc(n->n_input ? n->n_input : 1, sizeof(int));
  if (!ids) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  int rc = 0;
  bool const_in = true;
  for (size_t k = 0; k < n->n_input; k++) {
    ids[k] = -1;
    if (!n->input[k][0]) continue;
    ids[k] = camd_graph_find(ctx->g, n->input[k]);
    if (ids[k] < 0) {
      rc = camd_error_set(err, CAMD_E_FORMAT,
                          "node '%s' (%s): input '%s' is not a graph input, an initializer or "
                          "the output of an earlier node (nodes must be in topological order)",
                          name, op, n->input[k]);
      goto done;
    }
    camd_shape s;
    camd_dtype dt;
    const void *data = NULL;
    bool batched;
    rc = camd_graph_value(ctx->g, ids[k], &s, &dt, &data, &batched);
    if (rc < 0) goto done;
    if (!data) const_in = false;
  }
  bool is_out = any_output_in(n, outs);
  bool cast_alias = !strcmp(op, "Cast") && !const_in;
  if (is_alias_op(op) || cast_alias || is_qdq_passthrough(op, const_in) ||
      (!const_in && is_noop_pad(ctx, n, ids))) {
    if (n->n_input < 1 || ids[0] < 0 || n->n_output < 1 || !n->output[0][0]) {
      rc = camd_error_set(err, CAMD_E_FORMAT, "node '%s' (%s): needs one input and one output",
                          name, op);
    } else if (!is_out) {
      rc = camd_graph_add_alias(ctx->g, n->output[0], ids[0], err);
    } else { /* a graph output keeps its own value: an Identity node (Dropout's extra inputs,
              * attributes and mask output are dropped) */
      rc = add_engine_node(ctx, n, "Identity", name, 1, ids, true, err);
    }
    goto done;
  }
  if (foldable(op, const_in, n->n_input)) {
    rc = camd__onnx_fold(ctx, n, name, err);
    if (rc <= 0) goto done;
    if (camd__onnx_loader_only(op)) {
      rc = camd_error_set(err, CAMD_E_UNSUPPORTED, "node '%s' (%s): %s", name, op,
                          needs_const_why(op));
      goto done;
    }
  }
  if (!strcmp(op, "Einsum")) {
    rc = camd__onnx_add_einsum(ctx, n, name, ids, err);
    if (rc == 0 && n->output[0][0]) {
      char what[400];
      snprintf(what, sizeof(what), "node '%.128s' (Einsum): output '%.128s'", name, n->output[0]);
      rc = check_value_elements(ctx, camd_graph_find(ctx->g, n->output[0]), what, err);
    }
    goto done;
  }
  rc = add_engine_node(ctx, n, op, name, (int)n->n_input, ids, false, err);
done:
  free(ids);
  return rc < 0 ? rc : 0;
}

static int mark_outputs(camd__onnx_ctx *ctx, const Onnx__GraphProto *gp, camd_error *err) {
  if (gp->n_output == 0) return camd_error_set(err, CAMD_E_FORMAT, "the graph has no outputs");
  for (size_t i = 0; i < gp->n_output; i++) {
    const char *name = camd__onnx_str(gp->output[i]->name);
    int id = camd_graph_find(ctx->g, name);
    if (id < 0)
      return camd_error_set(err, CAMD_E_FORMAT, "graph output '%s' is not produced by any node",
                            name);
    camd_shape shape;
    camd_dtype dt;
    const void *data = NULL;
    bool batched;
    int rc = camd_graph_value(ctx->g, id, &shape, &dt, &data, &batched);
    if (rc < 0) return rc;
    if (data)
      return camd_error_set(err, CAMD_E_UNSUPPORTED,
                            "graph output '%s' is a constant (it does not depend on any input)",
                            name);
    rc = camd_graph_mark_output(ctx->g, id, err);
    if (rc < 0) return rc;
  }
  return 0;
}

static int model_opset(const Onnx__ModelProto *m, int *opset, camd_error *err) {
  for (size_t k = 0; k < m->n_opset_import; k++) {
    const Onnx__OperatorSetIdProto *o = m->opset_import[k];
    if (!is_default_domain(o->domain)) continue;
    if (!o->has_version || o->version < 1 || o->version > 10000)
      return camd_error_set(err, CAMD_E_FORMAT, "invalid opset version %lld for the ONNX domain",
                            (long long)o->version);
    *opset = (int)o->version;
    return 0;
  }
  return camd_error_set(err, CAMD_E_FORMAT,
                        "the model imports no opset of the default ONNX domain (opset_import)");
}

/* Builds the graph for a decoded model; returns it in *out or frees it on failure. */
static int build_graph(camd__onnx_ctx *ctx, const Onnx__ModelProto *m, camd_error *err) {
  const Onnx__GraphProto *gp = m->graph;
  if (!gp) return camd_error_set(err, CAMD_E_FORMAT, "the model has no graph");
  if (gp->n_node > ctx->opts.max_nodes)
    return camd_error_set(err, CAMD_E_LIMIT, "the graph has %zu nodes; the limit is %zu",
                          gp->n_node, ctx->opts.max_nodes);
  int rc = model_opset(m, &ctx->opset, err);
  if (rc < 0) return rc;
  camd__onnx_names outs = {0}, inits = {0};
  for (size_t i = 0; i < gp->n_output && rc == 0; i++) {
    if (gp->output[i]->name) rc = camd__onnx_names_add(&outs, gp->output[i]->name);
  }
  for (size_t i = 0; i < gp->n_initializer && rc == 0; i++) {
    if (gp->initializer[i]->name) rc = camd__onnx_names_add(&inits, gp->initializer[i]->name);
  }
  if (rc < 0) {
    rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory");
    goto done;
  }
  if ((rc = scan_nodes(ctx, gp, &outs, err)) < 0) goto done;
  ctx->g = camd_graph_new();
  if (!ctx->g) {
    rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory");
    goto done;
  }
  if ((rc = add_inputs(ctx, gp, &inits, err)) < 0) goto done;
  if ((rc = add_initializers(ctx, gp, err)) < 0) goto done;
  for (size_t i = 0; i < gp->n_node && rc == 0; i++) rc = add_node(ctx, gp->node[i], i, &outs, err);
  if (rc < 0) goto done;
  rc = mark_outputs(ctx, gp, err);
done:
  if (rc < 0 && ctx->g) {
    camd_graph_free(ctx->g);
    ctx->g = NULL;
  }
  camd__onnx_names_free(&outs);
  camd__onnx_names_free(&inits);
  return rc;
}

/* ---- step 1: protobuf nesting, before protobuf-c's recursive decoder sees the bytes ---- */

/* The onnx.proto messages that can nest (directly or through each other) and the fields that
 * lead from one to the next; every other sub-message has a fixed depth. */
typedef enum pb_msg {
  PB_LEAF,
  PB_MODEL,
  PB_TRAINING,
  PB_GRAPH,
  PB_NODE,
  PB_ATTR,
  PB_VALUE_INFO,
  PB_TYPE,
  PB_TYPE_SEQ,
  PB_TYPE_MAP,
  PB_FUNCTION
} pb_msg;

static pb_msg pb_child(pb_msg m, uint64_t field) {
  switch (m) {
    case PB_MODEL:
      return field == 7    ? PB_GRAPH
             : field == 20 ? PB_TRAINING
             : field == 25 ? PB_FUNCTION
                           : PB_LEAF;
    case PB_TRAINING:
      return field == 1 || field == 2 ? PB_GRAPH : PB_LEAF;
    case PB_GRAPH:
      return field == 1 ? PB_NODE : field >= 11 && field <= 13 ? PB_VALUE_INFO : PB_LEAF;
    case PB_NODE:
      return field == 5 ? PB_ATTR : PB_LEAF;
    case PB_ATTR:
      return field == 6 || field == 11 ? PB_GRAPH : field == 14 || field == 15 ? PB_TYPE : PB_LEAF;
    case PB_VALUE_INFO:
      return field == 2 ? PB_TYPE : PB_LEAF;
    case PB_TYPE: /* sequence_type, map_type, optional_type */
      return field == 4 || field == 9 ? PB_TYPE_SEQ : field == 5 ? PB_TYPE_MAP : PB_LEAF;
    case PB_TYPE_SEQ:
      return field == 1 ? PB_TYPE : PB_LEAF;
    case PB_TYPE_MAP:
      return field == 2 ? PB_TYPE : PB_LEAF;
    case PB_FUNCTION:
      return field == 7 ? PB_NODE : PB_LEAF;
    default:
      return PB_LEAF;
  }
}

static bool pb_varint(const unsigned char **p, const unsigned char *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    unsigned char b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

/* Fails when messages nest deeper than CAMD_ONNX_MAX_NESTING. Malformed bytes end the scan
 * quietly: the decoder reports them. Iterative (an explicit stack), linear in the bytes. */
static int check_nesting(const unsigned char *data, size_t len, camd_error *err) {
  struct {
    const unsigned char *p, *end;
    pb_msg m;
  } st[CAMD_ONNX_MAX_NESTING + 1];
  int top = 0;
  st[0].p = data;
  st[0].end = data + len;
  st[0].m = PB_MODEL;
  while (top >= 0) {
    if (st[top].p >= st[top].end) {
      top--;
      continue;
    }
    const unsigned char *end = st[top].end;
    uint64_t key, v;
    if (!pb_varint(&st[top].p, end, &key)) return 0;
    switch (key & 7) {
      case 0:
        if (!pb_varint(&st[top].p, end, &v)) return 0;
        break;
      case 1:
        if (end - st[top].p < 8) return 0;
        st[top].p += 8;
        break;
      case 5:
        if (end - st[top].p < 4) return 0;
        st[top].p += 4;
        break;
      case 2: {
        if (!pb_varint(&st[top].p, end, &v) || v > (uint64_t)(end - st[top].p)) return 0;
        const unsigned char *sub = st[top].p;
        st[top].p += v;
        pb_msg c = pb_child(st[top].m, key >> 3);
        if (c == PB_LEAF) break;
        if (top == CAMD_ONNX_MAX_NESTING)
          return camd_error_set(err, CAMD_E_LIMIT,
                                "the model nests graphs or types more than %d levels deep",
                                CAMD_ONNX_MAX_NESTING);
        top++;
        st[top].p = sub;
        st[top].end = sub + v;
        st[top].m = c;
        break;
      }
      default:
        return 0; /* groups (3, 4) and invalid wire types: the decoder rejects them */
    }
  }
  return 0;
}

static int load_buffer(const void *data, size_t len, const char *base_dir, const char *source,
                       const camd_onnx_options *opts, camd_model **out, camd_error *err) {
  if (!out) return camd_error_set(err, CAMD_E_INVALID, "camd_onnx_load: out is NULL");
  *out = NULL;
  size_t max_file =
      opts && opts->max_file_bytes ? opts->max_file_bytes : CAMD_ONNX_DEFAULT_MAX_FILE_BYTES;
  if (len > max_file)
    return camd_error_set(err, CAMD_E_LIMIT,
                          "the model is %zu bytes; the limit is %zu bytes (max_file_bytes)", len,
                          max_file);
  if (!data || len == 0) return camd_error_set(err, CAMD_E_FORMAT, "the model is empty (0 bytes)");
  int rc = check_nesting(data, len, err);
  if (rc < 0) return rc;
  Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, data);
  if (!m)
    return camd_error_set(err, CAMD_E_FORMAT,
                          "not a valid ONNX model: protobuf decoding failed (the file is "
                          "truncated, corrupt or not an .onnx file)");
  camd__onnx_ctx ctx = {
      .opts = opts ? *opts : (camd_onnx_options){0},
      .base_dir = base_dir,
      .max_external_bytes = opts && opts->max_external_bytes ? opts->max_external_bytes
                                                             : CAMD_ONNX_DEFAULT_MAX_EXTERNAL_BYTES,
  };
  if (!ctx.opts.max_tensor_elements)
    ctx.opts.max_tensor_elements = CAMD_ONNX_DEFAULT_MAX_TENSOR_ELEMENTS;
  if (!ctx.opts.max_nodes) ctx.opts.max_nodes = CAMD_ONNX_DEFAULT_MAX_NODES;
  rc = build_graph(&ctx, m, err);
  /* the float weights were taken over, the rest copied */
  onnx__model_proto__free_unpacked(m, NULL);
  if (rc < 0) return rc;
  return camd_graph_finalize(ctx.g, source, out, err);
}

int camd_onnx_load_buffer(const void *data, size_t len, const char *base_dir,
                          const camd_onnx_options *opts, camd_model **out, camd_error *err) {
  return load_buffer(data, len, base_dir, "(memory)", opts, out, err);
}

/* Reads the file after checking its size against the limit. */
static int read_model_file(const char *path, size_t max, unsigned char **data, size_t *len,
                           camd_error *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return camd_error_set(err, CAMD_E_IO, "cannot open: %s", strerror(errno));
  struct stat st;
  int rc = 0;
  unsigned char *buf = NULL;
  if (fstat(fd, &st) != 0) {
    rc = camd_error_set(err, CAMD_E_IO, "cannot stat: %s", strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    rc = camd_error_set(err, CAMD_E_IO, "not a regular file");
  } else if ((uint64_t)st.st_size > (uint64_t)max) {
    rc = camd_error_set(err, CAMD_E_LIMIT,
                        "the file is %lld bytes; the limit is %zu bytes (max_file_bytes)",
                        (long long)st.st_size, max);
  } else if (!(buf = malloc(st.st_size ? (size_t)st.st_size : 1))) {
    rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory for %lld bytes", (long long)st.st_size);
  } else {
    size_t size = (size_t)st.st_size, got = 0;
    while (got < size) {
      ssize_t r = read(fd, buf + got, size - got);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) {
        rc = camd_error_set(err, CAMD_E_IO, "read failed: %s",
                            r < 0 ? strerror(errno) : "file shrank while reading");
        break;
      }
      got += (size_t)r;
    }
    *len = got;
  }
  close(fd);
  if (rc < 0) {
    free(buf);
    return rc;
  }
  *data = buf;
  return 0;
}

int camd_onnx_load(const char *path, const camd_onnx_options *opts, camd_model **out,
                   camd_error *err) {
  if (out) *out = NULL;
  if (!path || !out) return camd_error_set(err, CAMD_E_INVALID, "camd_onnx_load: NULL argument");
  size_t max_file =
      opts && opts->max_file_bytes ? opts->max_file_bytes : CAMD_ONNX_DEFAULT_MAX_FILE_BYTES;
  unsigned char *data = NULL;
  size_t len = 0;
  char *dir_copy = strdup(path);
  if (!dir_copy) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  int rc = read_model_file(path, max_file, &data, &len, err);
  if (rc == 0) rc = load_buffer(data, len, dirname(dir_copy), path, opts, out, err);
  free(data);
  free(dir_copy);
  if (rc < 0) camd_error_prefix(err, rc, "loading '%s': ", path);
  return rc;
}
