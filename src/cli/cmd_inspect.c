/* `camd inspect`: inputs, outputs, op counts, parameters and CAM layers of an ONNX model. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "camd/engine.h"
#include "camd/onnx.h"
#include "cli/cli.h"

static void inspect_usage(FILE *f) {
  fprintf(f,
          "usage: camd inspect MODEL.onnx [--json] [--size W[xH]] [--layout L]\n\n"
          "Prints the model's inputs and outputs, operator counts, parameter count, every layer\n"
          "usable as a CAM target (4-D activations with spatial size > 1, transformer token\n"
          "maps) with its shape, layout (NCHW, NHWC, tokens, or unknown: then the layer_layout\n"
          "setting decides) and producing operator, and the layer camd suggests by default.\n"
          "Values inside attention blocks (queries, keys, values, attention weights) are not\n"
          "maps: they are counted, not listed.\n\n"
          "options:\n"
          "  --json          machine-readable output\n"
          "  --size W[xH]    fixes a free (symbolic) input height and width\n"
          "  --layout L      NCHW | NHWC: the image input's layout (default: from its shape)\n");
}

static json_t *shape_json(const camd_shape *s) {
  json_t *a = json_array();
  for (int i = 0; i < s->ndim; i++) json_array_append_new(a, json_integer(s->dims[i]));
  return a;
}

/* --size W[xH] into lo's free input sizes; 0, or 2 (usage error, printed). */
static int parse_size(const char *arg, camd_onnx_options *lo) {
  long long w = 0, h = 0;
  char wbuf[32];
  const char *x = strchr(arg, 'x');
  size_t wl = x ? (size_t)(x - arg) : strlen(arg);
  snprintf(wbuf, sizeof(wbuf), "%.*s", (int)(wl < sizeof(wbuf) ? wl : sizeof(wbuf) - 1), arg);
  bool ok = wl < sizeof(wbuf) && !camd_parse_int(wbuf, 1, 16384, &w) &&
            (x ? !camd_parse_int(x + 1, 1, 16384, &h) : (h = w, true));
  if (!ok) {
    fprintf(stderr, "camd inspect: --size '%s': expected W or WxH within 1..16384\n", arg);
    return 2;
  }
  lo->input_width = w;
  lo->input_height = h;
  return 0;
}

/* The model described as JSON (what --json prints; the text form is read from it). */
static json_t *describe(camd_model *m, const char *path) {
  json_t *root = json_object();
  json_object_set_new(root, "model", json_string(path));
  json_t *ins = json_array(), *outs = json_array(), *ops = json_object(), *layers = json_array();
  for (int i = 0; i < camd_model_num_inputs(m); i++) {
    camd_value_info vi;
    camd_model_value_info(m, camd_model_input(m, i), &vi);
    json_t *in = json_pack("{s:s, s:o}", "name", vi.name, "shape", shape_json(&vi.shape));
    camd_layout il = camd_model_value_layout(m, camd_model_input(m, i));
    if (il != CAMD_LAYOUT_UNKNOWN)
      json_object_set_new(in, "layout", json_string(camd_layout_name(il)));
    json_array_append_new(ins, in);
  }
  for (int i = 0; i < camd_model_num_outputs(m); i++) {
    camd_value_info vi, li;
    int logits;
    camd_score_activation act = camd_model_score_activation(m, camd_model_output(m, i), &logits);
    camd_model_value_info(m, camd_model_output(m, i), &vi);
    camd_model_value_info(m, logits, &li);
    json_t *o = json_pack("{s:s, s:o, s:s}", "name", vi.name, "shape", shape_json(&vi.shape),
                          "activation", camd_score_activation_name(act));
    if (act != CAMD_SCORES_RAW) json_object_set_new(o, "logits", json_string(li.name));
    json_array_append_new(outs, o);
  }
  for (int i = 0; i < camd_model_num_nodes(m); i++) {
    const char *op = camd_model_node_op(m, i);
    json_t *c = json_object_get(ops, op);
    json_object_set_new(ops, op, json_integer(c ? json_integer_value(c) + 1 : 1));
  }
  int attention = 0;
  for (int v = 0; v < camd_model_num_values(m); v++) {
    attention += camd_model_is_attention_value(m, v);
    if (!camd_model_is_cam_layer(m, v)) continue;
    camd_value_info vi;
    camd_model_value_info(m, v, &vi);
    if (!vi.name[0]) continue;
    json_array_append_new(
        layers,
        json_pack("{s:s, s:o, s:s, s:s?}", "name", vi.name, "shape", shape_json(&vi.shape),
                  "layout", camd_layout_name(camd_model_value_layout(m, v)), "op", vi.producer_op));
  }
  int sug = camd_model_suggest_cam_layer(m);
  camd_value_info sv;
  if (sug >= 0) camd_model_value_info(m, sug, &sv);
  json_object_set_new(root, "inputs", ins);
  json_object_set_new(root, "outputs", outs);
  json_object_set_new(root, "nodes", json_integer(camd_model_num_nodes(m)));
  json_object_set_new(root, "op_counts", ops);
  json_object_set_new(root, "parameters", json_integer((json_int_t)camd_model_param_count(m)));
  json_object_set_new(root, "max_batch", json_integer(camd_model_max_batch(m)));
  json_object_set_new(root, "cam_layers", layers);
  json_object_set_new(root, "attention_values", json_integer(attention));
  json_object_set_new(root, "suggested_layer", sug >= 0 ? json_string(sv.name) : json_null());
  return root;
}

static void print_value(const char *what, camd_model *m, int v, const char *note) {
  char sh[128];
  camd_value_info vi;
  camd_model_value_info(m, v, &vi);
  camd_shape_format(&vi.shape, sh, sizeof(sh));
  printf("%s %s %s%s\n", what, vi.name, sh, note);
}

/* The text form of describe()'s JSON. */
static void print_text(camd_model *m, json_t *root, const char *path) {
  size_t idx;
  json_t *it;
  printf("model: %s\n", path);
  json_array_foreach(json_object_get(root, "inputs"), idx, it) {
    const char *lay = json_string_value(json_object_get(it, "layout"));
    char note[64];
    snprintf(note, sizeof(note), "%s%s (first axis is the batch)", lay ? " " : "", lay ? lay : "");
    print_value("input: ", m, camd_model_input(m, (int)idx), note);
  }
  json_array_foreach(json_object_get(root, "outputs"), idx, it) {
    const char *logits = json_string_value(json_object_get(it, "logits"));
    char note[600] = "";
    if (logits)
      snprintf(note, sizeof(note), " (the model's own %s of logits '%.500s')",
               json_string_value(json_object_get(it, "activation")), logits);
    print_value("output:", m, camd_model_output(m, (int)idx), note);
  }
  printf("nodes: %d, parameters: %zu%s\n", camd_model_num_nodes(m), camd_model_param_count(m),
         camd_model_max_batch(m) == 1 ? " (runs one image at a time)" : "");
  printf("operators:");
  const char *key;
  json_object_foreach(json_object_get(root, "op_counts"), key, it)
      printf(" %s×%lld", key, (long long)json_integer_value(it));
  json_t *layers = json_object_get(root, "cam_layers");
  printf("\nCAM layers (%zu):\n", json_array_size(layers));
  int sug = camd_model_suggest_cam_layer(m);
  json_array_foreach(layers, idx, it) {
    const char *name = json_string_value(json_object_get(it, "name"));
    int v = camd_model_find_value(m, name);
    camd_value_info vi;
    camd_model_value_info(m, v, &vi);
    char sh[128];
    camd_shape_format(&vi.shape, sh, sizeof(sh));
    printf("  %-48s %-20s %-7s %s%s\n", name, sh, camd_layout_name(camd_model_value_layout(m, v)),
           vi.producer_op ? vi.producer_op : "", v == sug ? "   <- suggested" : "");
  }
  json_int_t attention = json_integer_value(json_object_get(root, "attention_values"));
  if (attention)
    printf(
        "(%lld values inside attention blocks — queries, keys, values, attention weights — "
        "are not maps and not listed)\n",
        (long long)attention);
  const char *s = json_string_value(json_object_get(root, "suggested_layer"));
  printf("suggested layer: %s\n", s ? s : "(none: no 4-D activation)");
}

int camd_cli_inspect(int argc, char **argv) {
  const char *path = NULL;
  bool as_json = false;
  camd_onnx_options lo = {0};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      inspect_usage(stdout);
      return 0;
    } else if (!strcmp(argv[i], "--json")) {
      as_json = true;
    } else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
      if (parse_size(argv[++i], &lo)) return 2;
    } else if (!strcmp(argv[i], "--layout") && i + 1 < argc) {
      i++;
      if (!strcmp(argv[i], "NCHW")) {
        lo.input_layout = CAMD_LAYOUT_NCHW;
      } else if (!strcmp(argv[i], "NHWC")) {
        lo.input_layout = CAMD_LAYOUT_NHWC;
      } else {
        fprintf(stderr, "camd inspect: --layout '%s': valid values are NCHW, NHWC\n", argv[i]);
        return 2;
      }
    } else if (argv[i][0] == '-') {
      fprintf(stderr,
              "camd inspect: unknown option '%s'; options are --json, --size, --layout, --help\n",
              argv[i]);
      return 2;
    } else if (!path) {
      path = argv[i];
    } else {
      fprintf(stderr, "camd inspect: unexpected argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (!path) {
    inspect_usage(stderr);
    return 2;
  }
  camd_error err = {0};
  camd_model *m = NULL;
  if (camd_onnx_load(path, &lo, &m, &err)) {
    fprintf(stderr, "camd inspect: %s\n", err.message);
    return 1;
  }
  json_t *root = describe(m, path);
  if (as_json) {
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text) puts(text);
    free(text);
  } else {
    print_text(m, root, path);
  }
  json_decref(root);
  camd_model_release(m);
  return 0;
}
