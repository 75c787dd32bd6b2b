/* `camd explain`: explain one image from the command line (thin front end over explain/). */
#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/cam.h"
#include "camd/core.h"
#include "camd/explain.h"
#include "cli/cli.h"

#define EXPLAIN_MAX_IMAGE_BYTES ((size_t)256 << 20)
#define EXPLAIN_MAX_CONFIG_BYTES ((size_t)16 << 20)
#define EXPLAIN_MAX_OPTS 64

static void explain_usage(FILE *f) {
  fprintf(f,
          "usage: camd explain (--model M.onnx [--labels L.txt] | --config camd.json --name NAME)\n"
          "                    --image X.jpg [options]\n\n"
          "Classifies the image and explains the target class(es) with a CAM-family heatmap.\n"
          "Prints a summary (or the full JSON with --json -) and writes the overlay with --out.\n\n"
          "model:\n"
          "  --model FILE          ONNX model (overrides the config entry's path)\n"
          "  --labels FILE         one label per line, as many as the model has outputs\n"
          "  --config FILE         camd config; its \"models\" array holds model entries (other\n"
          "                        top-level keys belong to `camd serve` and are ignored here)\n"
          "  --name NAME           the entry of --config to use\n"
          "preprocessing (defaults: ImageNet; a --config entry sets its own, flags override):\n"
          "  --size W[xH]          tensor size (default 224x224)\n"
          "  --resize MODE         stretch | shorter (default shorter: torchvision Resize(S) +\n"
          "                        CenterCrop(H, W))\n"
          "  --resize-shorter S    shorter side before the centre crop (default 256)\n"
          "  --scale X             pixel multiplier before mean/std (default 1/255)\n"
          "  --mean A,B,C          per-channel mean (default 0.485,0.456,0.406)\n"
          "  --std A,B,C           per-channel std (default 0.229,0.224,0.225)\n"
          "  --bgr                 channel order B,G,R\n"
          "  --gray                one luma channel (PIL convert('L'))\n"
          "  --layout L            NCHW | NHWC | auto: the image input's layout (default auto:\n"
          "                        NHWC when the input ends in 1 or 3 after a larger axis)\n"
          "  --activation A        auto | softmax | sigmoid | none: turns outputs into\n"
          "                        probabilities (default auto: the model's own softmax or\n"
          "                        sigmoid if its graph ends in one, else softmax)\n"
          "explanation:\n"
          "  --method M            gradcam (default, or the entry's default_method), cam,\n"
          "                        hirescam, gradcam-elementwise, gradcam++, xgradcam, layercam,\n"
          "                        eigencam, eigengradcam, scorecam, ablationcam,\n"
          "                        smoothgradcam++, sscam, iscam, finercam, shapleycam,\n"
          "                        kpcacam, guidedbackprop, guidedgradcam, fullgrad,\n"
          "                        polycam-plus, polycam-minus, polycam-plusminus\n"
          "  --target T            class index, label (exact, case-insensitive), comma list of\n"
          "                        them, or topK (default top1)\n"
          "  --layer NAME          target layer (default: the entry's default_layer, else the\n"
          "                        last spatial activation before global pooling); A,B,...:\n"
          "                        layers to fuse (Poly-CAM: its layers in forward order;\n"
          "                        one layer: the stage ends up to it)\n"
          "  --layer-layout L      NCHW | NHWC: the layer's layout where the graph does not\n"
          "                        decide it (default auto: the graph's)\n"
          "  --topk N              predictions to report (default 5)\n"
          "  --score S             logit | softmax | sigmoid | output: what is\n"
          "                        differentiated (default logit: for a model that ends in\n"
          "                        its own softmax/sigmoid, the logits fed into it; output:\n"
          "                        the model's output as it is)\n"
          "  --no-relu             keep negative map values (default: ReLU)\n"
          "  --normalize N         minmax | none (default minmax)\n"
          "  --aug-smooth          average over flips and intensity scalings\n"
          "  --eigen-smooth        first principal component of the weighted activations\n"
          "  --n-samples N         noise-based methods: samples (default 16)\n"
          "  --noise-std X         noise-based methods: noise std (default 0.2)\n"
          "  --seed N              noise seed (default 0)\n"
          "  --finer-alpha X       finercam: alpha of the comparison score (default 1)\n"
          "  --finer-compare N     finercam: nearest classes compared (default 3)\n"
          "  --gamma X             kpcacam: RBF kernel gamma (default auto = 1/channels)\n"
          "output:\n"
          "  --colormap C          jet (default), turbo, viridis, inferno, gray\n"
          "  --alpha X             overlay opacity 0..1 (default 0.5)\n"
          "  --outputs LIST        overlay,heatmap,mask,raw,bbox,dicom / all / none (default\n"
          "                        overlay,bbox) — the JSON carries them (PNGs in base64;\n"
          "                        dicom: a Secondary Capture per map, DICOM input only)\n"
          "  --bbox-threshold X    mask/bbox threshold, fraction of the max (default 0.2)\n"
          "  --window W            gray DICOM / PNG: dicom (the file's, default), dicom:N,\n"
          "                        auto, C,W, lung, mediastinum, bone, brain, soft_tissue\n"
          "  --frame N             DICOM multi-frame: 0-based frame (default 0)\n"
          "quality (extra forwards per map: drop_increase 1, deletion N, insertion N, road 18):\n"
          "  --quality             every metric below, in the JSON beside each map\n"
          "  --metrics LIST        drop_increase,deletion,insertion,road / all / none\n"
          "  --quality-steps N     deletion/insertion steps (default 16)\n"
          "  --road-noise X        ROAD imputation noise std (default 0.01)\n"
          "  --box X0,Y0,X1,Y1     segmentation models: explain the class score in this box\n"
          "                        (image pixels, inclusive; default: where the class wins)\n"
          "  --out FILE            write the overlay PNG of the first target\n"
          "  --json FILE           write the full JSON result ('-' = stdout)\n"
          "  --predict             classify only (no explanation)\n\n"
          "exit status: 0 success, 1 failure (model, image or computation), 2 usage error\n");
}

typedef struct kv {
  const char *flag, *key, *value;
} kv;

typedef struct explain_args {
  const char *model, *labels, *config, *name, *image, *out, *json;
  const char *size, *resize, *resize_shorter, *scale, *mean, *std, *activation, *layout;
  bool bgr, gray, predict;
  kv opts[EXPLAIN_MAX_OPTS];
  int n_opts;
} explain_args;

/* Flags that map 1:1 to explain options. */
static const struct {
  const char *flag, *key, *fixed; /* fixed: value for flags without argument */
} option_flags[] = {
    {"--method", "method", NULL},
    {"--target", "target", NULL},
    {"--layer", "layer", NULL},
    {"--layer-layout", "layer_layout", NULL},
    {"--topk", "topk", NULL},
    {"--score", "score", NULL},
    {"--no-relu", "relu", "false"},
    {"--normalize", "normalize", NULL},
    {"--aug-smooth", "aug_smooth", "true"},
    {"--eigen-smooth", "eigen_smooth", "true"},
    {"--n-samples", "n_samples", NULL},
    {"--noise-std", "noise_std", NULL},
    {"--seed", "seed", NULL},
    {"--finer-alpha", "finer_alpha", NULL},
    {"--finer-compare", "finer_compare", NULL},
    {"--gamma", "gamma", NULL},
    {"--colormap", "colormap", NULL},
    {"--alpha", "alpha", NULL},
    {"--outputs", "outputs", NULL},
    {"--bbox-threshold", "bbox_threshold", NULL},
    {"--window", "window", NULL},
    {"--frame", "frame", NULL},
    {"--quality", "quality", "true"},
    {"--metrics", "metrics", NULL},
    {"--quality-steps", "quality_steps", NULL},
    {"--road-noise", "road_noise", NULL},
    {"--box", "box", NULL},
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "camd explain: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n(see `camd explain --help`)\n");
  va_end(ap);
  return 2;
}

/* Returns 0, 1 for --help, or 2 for a usage error. */
static int parse_args(int argc, char **argv, explain_args *a) {
  static const struct {
    const char *flag;
    size_t off;
  } str_flags[] = {
      {"--model", offsetof(explain_args, model)},
      {"--labels", offsetof(explain_args, labels)},
      {"--config", offsetof(explain_args, config)},
      {"--name", offsetof(explain_args, name)},
      {"--image", offsetof(explain_args, image)},
      {"--out", offsetof(explain_args, out)},
      {"--json", offsetof(explain_args, json)},
      {"--size", offsetof(explain_args, size)},
      {"--resize", offsetof(explain_args, resize)},
      {"--resize-shorter", offsetof(explain_args, resize_shorter)},
      {"--scale", offsetof(explain_args, scale)},
      {"--mean", offsetof(explain_args, mean)},
      {"--std", offsetof(explain_args, std)},
      {"--activation", offsetof(explain_args, activation)},
      {"--layout", offsetof(explain_args, layout)},
  };
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) return 1;
    if (!strcmp(f, "--bgr")) {
      a->bgr = true;
      continue;
    }
    if (!strcmp(f, "--gray")) {
      a->gray = true;
      continue;
    }
    if (!strcmp(f, "--predict")) {
      a->predict = true;
      continue;
    }
    bool done = false;
    for (size_t k = 0; k < sizeof(str_flags) / sizeof(str_flags[0]) && !done; k++) {
      if (strcmp(f, str_flags[k].flag)) continue;
      if (i + 1 >= argc) return usage_error("%s needs a value", f);
      const char **dst = (const char **)((char *)a + str_flags[k].off);
      if (*dst) return usage_error("%s is given twice", f);
      *dst = argv[++i];
      done = true;
    }
    for (size_t k = 0; k < sizeof(option_flags) / sizeof(option_flags[0]) && !done; k++) {
      if (strcmp(f, option_flags[k].flag)) continue;
      const char *v = option_flags[k].fixed;
      if (!v) {
        if (i + 1 >= argc) return usage_error("%s needs a value", f);
        v = argv[++i];
      }
      if (a->n_opts == EXPLAIN_MAX_OPTS) return usage_error("too many options");
      a->opts[a->n_opts++] = (kv){f, option_flags[k].key, v};
      done = true;
    }
    if (done) continue;
    if (f[0] == '-')
      return usage_error(
          "unknown option '%s'; options are --model, --labels, --config, "
          "--name, --image, --method, --target, --layer, --layer-layout, --topk, --score, "
          "--no-relu, --normalize, --aug-smooth, --eigen-smooth, --n-samples, "
          "--noise-std, --seed, --finer-alpha, --finer-compare, --gamma, --colormap, --alpha, "
          "--outputs, "
          "--bbox-threshold, --window, --frame, --quality, --metrics, --quality-steps, "
          "--road-noise, --box, --out, --json, --predict, --size, --resize, "
          "--resize-shorter, --scale, --mean, --std, --bgr, --gray, "
          "--activation, --layout, --help",
          f);
    return usage_error("unexpected argument '%s'; give the image with --image", f);
  }
  if (!a->image) return usage_error("--image is required");
  if (!a->model && !a->config)
    return usage_error("give --model M.onnx or --config FILE --name NAME");
  if (a->config && !a->name) return usage_error("--config needs --name NAME");
  if (a->name && !a->config) return usage_error("--name needs --config FILE");
  return 0;
}

/* Finds entry `name` in the config file's "models" array. 0, 1 (failure) or 2 (usage). */
static int load_config_entry(const char *path, const char *name, camd_model_config *cfg) {
  camd_error err = {0};
  unsigned char *data = NULL;
  size_t len = 0;
  if (camd_read_file(path, EXPLAIN_MAX_CONFIG_BYTES, &data, &len, &err)) {
    fprintf(stderr, "camd explain: --config: %s\n", err.message);
    return 1;
  }
  json_error_t jerr;
  json_t *root = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
  free(data);
  if (!root) {
    fprintf(stderr, "camd explain: --config '%s': invalid JSON at line %d column %d: %s\n", path,
            jerr.line, jerr.column, jerr.text);
    return 1;
  }
  json_t *models = json_object_get(root, "models");
  if (!json_is_object(root) || !json_is_array(models)) {
    fprintf(stderr, "camd explain: --config '%s': needs a top-level \"models\" array\n", path);
    json_decref(root);
    return 1;
  }
  json_t *entry = NULL;
  size_t i;
  json_t *m;
  json_array_foreach(models, i, m) {
    const char *n = json_string_value(json_object_get(m, "name"));
    if (n && !strcmp(n, name)) {
      entry = m;
      break;
    }
  }
  if (!entry) {
    fprintf(stderr, "camd explain: --name '%s': no such model in '%s'; models are:", name, path);
    json_array_foreach(models, i, m) {
      const char *n = json_string_value(json_object_get(m, "name"));
      fprintf(stderr, "%s %s", i ? "," : "", n ? n : "(unnamed)");
    }
    fprintf(stderr, "\n");
    json_decref(root);
    return 2;
  }
  char *text = json_dumps(entry, JSON_COMPACT);
  char dir[4096];
  int rc = !text ? camd_error_set(&err, CAMD_E_NOMEM, "out of memory")
           : camd_path_dirname(path, dir, sizeof(dir))
               ? camd_error_set(&err, CAMD_E_INVALID, "the path is too long")
               : camd_model_config_from_json_text(text, dir, cfg, &err);
  free(text);
  json_decref(root);
  if (rc) {
    fprintf(stderr, "camd explain: --config '%s': %s\n", path, err.message);
    return 1;
  }
  return 0;
}

/* Sets model key `key` from the value of `flag` (v, consumed; NULL when the flag's text is not
 * of the form `syntax`). The explain config parser owns the rules (ranges, names, cross-key
 * checks): the CLI only turns its flag syntax into JSON. */
static int set_model_key(camd_model_config *cfg, const char *flag, const char *text,
                         const char *syntax, const char *key, json_t *v) {
  if (!v) return usage_error("%s '%s': expected %s", flag, text, syntax);
  camd_error err = {0};
  int rc = camd_model_config_set(cfg, key, v, NULL, &err);
  json_decref(v);
  return rc ? usage_error("%s: %s", flag, err.message) : 0;
}

/* "A" or "A,B,..." (numbers; integers when `integers`) as a JSON array (one integer alone as a
 * number); NULL when an item is not a number. sep is the separator ("," or "x"). */
static json_t *flag_numbers(const char *s, char sep, bool integers) {
  json_t *arr = json_array();
  const char *p = s;
  for (;;) {
    const char *end = strchr(p, sep);
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char item[64];
    long long i;
    double d;
    json_t *v = NULL;
    if (len < sizeof(item)) {
      memcpy(item, p, len);
      item[len] = 0;
      if (integers && !camd_parse_int(item, LLONG_MIN, LLONG_MAX, &i))
        v = json_integer((json_int_t)i);
      else if (!integers && !camd_parse_double(item, &d))
        v = json_real(d);
    }
    if (!v || json_array_append_new(arr, v)) {
      json_decref(arr);
      return NULL;
    }
    if (!end) break;
    p = end + 1;
  }
  if (integers && json_array_size(arr) == 1) { /* "W": one number */
    json_t *one = json_incref(json_array_get(arr, 0));
    json_decref(arr);
    return one;
  }
  return arr;
}

/* The CLI's name for a model given by path: its file name without extension, [A-Za-z0-9_-]. */
static void name_from_path(const char *path, char *name, size_t cap) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = 0;
  for (; base[n] && base[n] != '.' && n + 1 < cap; n++) {
    char c = base[n];
    bool ok = isalnum((unsigned char)c) || c == '_' || c == '-';
    name[n] = ok ? c : '_';
  }
  name[n] = 0;
  if (!n) snprintf(name, cap, "model");
}

/* Applies the preprocessing and model flags over cfg. 0 or 2. */
static int apply_model_flags(const explain_args *a, camd_model_config *cfg) {
  int rc = 0;
  if (a->model) {
    if (!a->config) name_from_path(a->model, cfg->name, sizeof(cfg->name));
    rc = set_model_key(cfg, "--model", a->model, "a path", "path", json_string(a->model));
  }
  if (!rc && a->labels)
    rc = set_model_key(cfg, "--labels", a->labels, "a path", "labels", json_string(a->labels));
  if (!rc && a->size)
    rc = set_model_key(cfg, "--size", a->size, "W or WxH (integers)", "input_size",
                       flag_numbers(a->size, 'x', true));
  if (!rc && a->resize)
    rc = set_model_key(cfg, "--resize", a->resize, "a name", "resize", json_string(a->resize));
  if (!rc && a->resize_shorter) {
    long long n = 0;
    json_t *v =
        camd_parse_int(a->resize_shorter, LLONG_MIN, LLONG_MAX, &n) ? NULL : json_integer(n);
    rc = set_model_key(cfg, "--resize-shorter", a->resize_shorter, "an integer", "resize_shorter",
                       v);
  }
  if (!rc && a->scale) {
    double d = 0;
    json_t *v = camd_parse_double(a->scale, &d) ? NULL : json_real(d);
    rc = set_model_key(cfg, "--scale", a->scale, "a number", "scale", v);
  }
  if (!rc && a->mean)
    rc = set_model_key(cfg, "--mean", a->mean, "numbers A,B,C (or one for every channel)", "mean",
                       flag_numbers(a->mean, ',', false));
  if (!rc && a->std)
    rc = set_model_key(cfg, "--std", a->std, "numbers A,B,C (or one for every channel)", "std",
                       flag_numbers(a->std, ',', false));
  if (!rc && a->gray) rc = set_model_key(cfg, "--gray", "", "", "channels", json_integer(1));
  if (!rc && a->bgr) rc = set_model_key(cfg, "--bgr", "", "", "bgr", json_true());
  if (!rc && a->layout)
    rc = set_model_key(cfg, "--layout", a->layout, "a name", "layout", json_string(a->layout));
  if (!rc && a->activation)
    rc = set_model_key(cfg, "--activation", a->activation, "a name", "activation",
                       json_string(a->activation));
  return rc;
}

/* Applies the explain option flags; e NULL = syntax-only pass (labels and layers later). */
static int apply_options(const explain_args *a, const camd_explainer *e, camd_explain_options *o) {
  camd_error err = {0};
  for (int i = 0; i < a->n_opts; i++) {
    const kv *p = &a->opts[i];
    if (!e && (!strcmp(p->key, "target") || !strcmp(p->key, "layer") || !strcmp(p->key, "topk")))
      continue;
    if (camd_explain_options_set(o, e, p->key, p->value, &err)) {
      fprintf(stderr, "camd explain: %s: %s\n", p->flag, err.message);
      return 2;
    }
  }
  return 0;
}

static int write_file(const char *path, const void *data, size_t len) {
  FILE *f = !strcmp(path, "-") ? stdout : fopen(path, "wb");
  if (!f) {
    perror(path);
    return 1;
  }
  bool ok = fwrite(data, 1, len, f) == len;
  if (f == stdout)
    ok = fflush(f) == 0 && ok;
  else
    ok = fclose(f) == 0 && ok;
  if (!ok) {
    fprintf(stderr, "camd explain: cannot write '%s'\n", path);
    return 1;
  }
  return 0;
}

static void print_summary(const camd_explain_result *r) {
  const camd_explain_item *it = &r->items[0];
  printf("model %s  image %zux%zu\n", camd_explainer_config(r->explainer)->name, it->width,
         it->height);
  printf("predictions:\n");
  for (int i = 0; i < it->n_predictions; i++) {
    const camd_explain_class *p = &it->predictions[i];
    printf("  %2d. %5d  %-30s score %10.4f", i + 1, p->index, p->label, (double)p->score);
    if (isfinite(p->probability)) printf("  p %.4f", p->probability);
    printf("\n");
  }
  if (it->n_maps) {
    printf("explanations (%s, layer %s):\n", camd_cam_method_name(r->options.method), r->layer);
    for (int i = 0; i < it->n_maps; i++) {
      const camd_explain_map *m = &it->maps[i];
      printf("  %5d  %-30s", m->target.index, m->target.label);
      if ((r->options.outputs & CAMD_OUT_BBOX) && m->has_peak)
        printf("  peak (%zu, %zu)", m->peak_x, m->peak_y);
      if ((r->options.outputs & CAMD_OUT_BBOX) && m->bbox.found)
        printf("  bbox [%zu, %zu, %zu, %zu]", m->bbox.x0, m->bbox.y0, m->bbox.x1, m->bbox.y1);
      printf("\n");
    }
  }
  printf("total %.1f ms\n", r->timings.total_ms);
}

/* Writes the result's JSON (one image: one object) to path. */
static int write_json(const char *path, const camd_explain_result *r) {
  json_t *j = camd_explain_item_json(r, 0, 0);
  size_t len = 0;
  char *text = camd_explain_json_text(j, r, &len);
  json_decref(j);
  if (!text) {
    fprintf(stderr, "camd explain: out of memory writing the JSON result\n");
    return 1;
  }
  int rc = write_file(path, text, len);
  free(text);
  if (!rc && !strcmp(path, "-")) putchar('\n');
  return rc;
}

int camd_cli_explain(int argc, char **argv) {
  explain_args a;
  memset(&a, 0, sizeof(a));
  int rc = parse_args(argc, argv, &a);
  if (rc == 1) {
    explain_usage(stdout);
    return 0;
  }
  if (rc) return rc;

  camd_model_config cfg;
  camd_model_config_init(&cfg);
  if (a.config && (rc = load_config_entry(a.config, a.name, &cfg))) return rc;
  if ((rc = apply_model_flags(&a, &cfg))) return rc;

  /* Syntax of every option before the (slow) model load. */
  camd_explain_options o;
  camd_explain_options_init(&o, NULL);
  if ((rc = apply_options(&a, NULL, &o))) return rc;
  if (a.out) {
    if (a.predict) return usage_error("--out needs an explanation (not with --predict)");
    o.outputs |= CAMD_OUT_OVERLAY;
  }

  camd_error err = {0};
  camd_explainer *e = NULL;
  camd_explain_ctx *ctx = NULL;
  unsigned char *image = NULL;
  size_t image_len = 0;
  camd_explain_result res = {0};
  if (camd_read_file(a.image, EXPLAIN_MAX_IMAGE_BYTES, &image, &image_len, &err)) {
    fprintf(stderr, "camd explain: --image: %s\n", err.message);
    return 1;
  }
  if (camd_explainer_open(&cfg, &e, &err)) {
    fprintf(stderr, "camd explain: %s\n", err.message);
    rc = 1;
    goto done;
  }
  /* Now with the model: defaults from the entry, labels and layers resolved. */
  unsigned outputs = o.outputs;
  camd_explain_options_init(&o, e);
  if ((rc = apply_options(&a, e, &o))) goto done;
  bool outputs_given = false;
  for (int i = 0; i < a.n_opts; i++) outputs_given |= !strcmp(a.opts[i].key, "outputs");
  if (outputs_given || a.out) o.outputs = outputs;

  /* Methods with extra forwards (Score-CAM, Ablation-CAM, noise) batch them by 8. */
  camd_cam_method m = o.method;
  bool extra = !a.predict && m != CAMD_CAM_CAM && m != CAMD_CAM_EIGENCAM &&
               (!camd_cam_method_needs_gradient(m) || m == CAMD_CAM_SMOOTHGRADCAMPP);
  if (camd_explain_ctx_create(extra ? 8 : 1, &ctx, &err)) {
    fprintf(stderr, "camd explain: %s\n", err.message);
    rc = 1;
    goto done;
  }
  camd_explain_input in = {.data = image, .len = image_len};
  if (camd_explain_run(ctx, e, &o, &in, 1, a.predict, NULL, &res, &err)) {
    /* Options were validated above, so what is left is the image or the computation. */
    fprintf(stderr, "camd explain: %s: %s\n", a.image, err.message);
    rc = 1;
    goto done;
  }
  if (a.out) {
    const camd_explain_item *it = &res.items[0];
    const camd_explain_blob *png = it->n_maps ? &it->maps[0].overlay : NULL;
    if (!png || !png->data) {
      fprintf(stderr, "camd explain: no overlay was produced\n");
      rc = 1;
      goto done;
    }
    if ((rc = write_file(a.out, png->data, png->len))) goto done;
  }
  if (a.json) {
    if ((rc = write_json(a.json, &res))) goto done;
  } else {
    print_summary(&res);
    if (a.out) printf("overlay written to %s\n", a.out);
  }
  rc = 0;
done:
  camd_explain_result_free(&res);
  camd_explain_ctx_destroy(ctx);
  camd_explainer_release(e);
  free(image);
  return rc;
}
