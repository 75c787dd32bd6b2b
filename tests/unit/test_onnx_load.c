/* ONNX loader tests on the models tests/onnx/make_models.py writes: structure (names, shapes,
 * constants, aliases), folding, unsupported-op listing, external data confinement, limits and
 * forward outputs against the generator's numpy references. */
#include <stdlib.h>
#include <string.h>

#include "camd/engine.h"
#include "camd/graph.h"
#include "camd/onnx.h"
#include "helper_onnx.h"
#include "testlib.h"

static camd_model *load_ok(const char *file) {
  camd_error err = {0};
  camd_model *m = NULL;
  int rc = camd_onnx_load(camd_test_onnx_path(file), NULL, &m, &err);
  CHECK_MSG(rc == 0 && m, "%s: %d %s", file, rc, err.message);
  return rc == 0 ? m : NULL;
}

/* Loads `file`, expects failure with `status` and every string of `needles` in the message. */
static void load_fails(const char *file, int status, const char *const *needles) {
  camd_error err = {0};
  camd_model *m = NULL;
  int rc = camd_onnx_load(camd_test_onnx_path(file), NULL, &m, &err);
  CHECK_MSG(rc == status, "%s: expected status %d, got %d (%s)", file, status, rc, err.message);
  CHECK(m == NULL);
  CHECK_EQ_INT(err.status, status);
  for (const char *const *n = needles; n && *n; n++)
    CHECK_MSG(strstr(err.message, *n) != NULL, "%s: message lacks \"%s\": %s", file, *n,
              err.message);
  camd_model_release(m);
}

static void check_shape(const camd_shape *s, int ndim, const int64_t *dims) {
  CHECK_EQ_INT(s->ndim, ndim);
  for (int i = 0; i < ndim && i < s->ndim; i++) CHECK_EQ_INT(s->dims[i], dims[i]);
}

static bool value_info(const camd_model *m, const char *name, camd_value_info *vi) {
  int id = camd_model_find_value(m, name);
  CHECK_MSG(id >= 0, "value '%s' not found", name);
  if (id < 0) return false;
  CHECK_EQ_INT(camd_model_value_info(m, id, vi), 0);
  return true;
}

/* Runs a forward with the generator's input file (batch 2) and compares output 0 against the
 * numpy reference. */
static void check_forward(camd_model *m, const char *stem) {
  char in_name[256], out_name[256];
  snprintf(in_name, sizeof(in_name), "%s.input.bin", stem);
  snprintf(out_name, sizeof(out_name), "%s.output.bin", stem);
  size_t n_in = 0, n_out = 0;
  float *x = camd_test_read_f32(camd_test_onnx_path(in_name), &n_in);
  float *ref = camd_test_read_f32(camd_test_onnx_path(out_name), &n_out);
  CHECK(x && ref);
  camd_session *s = NULL;
  camd_error err = {0};
  int rc = camd_session_create(m, 2, &s, &err);
  CHECK_MSG(rc == 0, "%s: session_create: %s", stem, err.message);
  if (rc == 0 && x && ref) {
    int batch = camd_model_max_batch(m) >= 2 ? 2 : 1;
    size_t per_in = n_in / 2, per_out = n_out / 2;
    for (int start = 0; start < 2; start += batch) {
      rc = camd_session_forward(s, batch, x + (size_t)start * per_in, NULL, &err);
      CHECK_MSG(rc == 0, "%s: forward: %s", stem, err.message);
      if (rc != 0) break;
      camd_shape shape;
      const float *y = camd_session_value(s, camd_model_output(m, 0), &shape);
      CHECK(y != NULL);
      CHECK_EQ_INT(camd_shape_count(&shape), per_out * (size_t)batch);
      for (size_t k = 0; y && k < per_out * (size_t)batch; k++)
        CHECK_NEAR(y[k], ref[(size_t)start * per_out + k], 1e-4);
    }
  }
  camd_session_destroy(s);
  free(x);
  free(ref);
}

static void test_cnn_structure(void) {
  camd_model *m = load_ok("cnn.onnx");
  if (!m) return;
  CHECK_EQ_INT(camd_model_num_inputs(m), 1);
  CHECK_EQ_INT(camd_model_num_outputs(m), 1);
  camd_value_info vi;
  CHECK_EQ_INT(camd_model_value_info(m, camd_model_input(m, 0), &vi), 0);
  CHECK(strcmp(vi.name, "input") == 0);
  check_shape(&vi.shape, 4, (const int64_t[]){1, 3, 8, 8}); /* symbolic batch "N" -> 1 */
  CHECK(vi.batched && vi.is_input && !vi.is_constant);
  CHECK_EQ_INT(camd_model_value_info(m, camd_model_output(m, 0), &vi), 0);
  CHECK(strcmp(vi.name, "logits") == 0);
  check_shape(&vi.shape, 2, (const int64_t[]){1, 5});
  if (value_info(m, "conv.weight", &vi)) {
    CHECK(vi.is_constant && vi.dtype == CAMD_FLOAT32);
    check_shape(&vi.shape, 4, (const int64_t[]){4, 3, 3, 3});
  }
  if (value_info(m, "relu_out", &vi)) check_shape(&vi.shape, 4, (const int64_t[]){1, 4, 8, 8});
  if (value_info(m, "gap_out", &vi)) check_shape(&vi.shape, 4, (const int64_t[]){1, 4, 1, 1});
  /* Identity and Dropout are aliases, not nodes */
  CHECK(camd_model_find_value(m, "flat_id") == camd_model_find_value(m, "flat"));
  CHECK(camd_model_find_value(m, "drop_out") == camd_model_find_value(m, "relu_out"));
  bool seen_conv = false, seen_generated = false;
  for (int i = 0; i < camd_model_num_nodes(m); i++) {
    const char *op = camd_model_node_op(m, i), *name = camd_model_node_name(m, i);
    CHECK(strcmp(op, "Identity") != 0 && strcmp(op, "Dropout") != 0);
    if (!strcmp(name, "conv")) seen_conv = !strcmp(op, "Conv");
    if (!strcmp(name, "Flatten_4")) seen_generated = !strcmp(op, "Flatten");
  }
  CHECK(seen_conv);
  CHECK(seen_generated);
  CHECK_EQ_INT(camd_model_param_count(m), 4 * 27 + 4 + 5 * 4 + 5);
  camd_model_release(m);
}

/* Pads of zeros are aliases of their input (a graph output keeps an Identity); a Pad that pads
 * stays a node; the forward matches numpy's np.pad / mean reference. */
static int count_ops(const camd_model *m, const char *op) {
  int n = 0;
  for (int i = 0; i < camd_model_num_nodes(m); i++) n += !strcmp(camd_model_node_op(m, i), op);
  return n;
}

static void test_noop_pad(void) {
  camd_model *m = load_ok("pad_noop.onnx");
  if (m) {
    CHECK_EQ_INT(count_ops(m, "Pad"), 1);      /* pad_ones */
    CHECK_EQ_INT(count_ops(m, "Identity"), 1); /* pad_out, the graph output */
    CHECK(camd_model_find_value(m, "p") == camd_model_find_value(m, "r"));
    CHECK(camd_model_find_value(m, "pa") == camd_model_find_value(m, "r"));
    check_forward(m, "pad_noop");
  }
  camd_model_release(m);
  m = load_ok("pad_noop_v2.onnx");
  if (m) {
    CHECK_EQ_INT(count_ops(m, "Pad"), 0);
    CHECK(camd_model_find_value(m, "p") == camd_model_find_value(m, "x"));
    check_forward(m, "pad_noop_v2");
  }
  camd_model_release(m);
}

static void test_cnn_forward(void) {
  camd_model *m = load_ok("cnn.onnx");
  if (m) check_forward(m, "cnn");
  camd_model_release(m);
}

static void test_shape_subgraph(void) {
  camd_model *m = load_ok("shape_subgraph.onnx");
  if (!m) return;
  camd_value_info vi;
  if (value_info(m, "newshape", &vi)) {
    CHECK(vi.is_constant && vi.dtype == CAMD_INT64);
    check_shape(&vi.shape, 1, (const int64_t[]){2});
  }
  for (int i = 0; i < camd_model_num_nodes(m); i++) {
    const char *op = camd_model_node_op(m, i);
    CHECK(strcmp(op, "Shape") && strcmp(op, "Gather") && strcmp(op, "Concat") &&
          strcmp(op, "Unsqueeze") && strcmp(op, "Constant"));
  }
  if (value_info(m, "flat", &vi)) check_shape(&vi.shape, 2, (const int64_t[]){1, 18});
  check_forward(m, "shape_subgraph");
  camd_model_release(m);
}

static void test_fold(void) {
  camd_model *m = load_ok("fold.onnx");
  if (!m) return;
  camd_value_info vi;
  if (value_info(m, "sq", &vi)) {
    CHECK(vi.is_constant && vi.dtype == CAMD_FLOAT32);
    check_shape(&vi.shape, 1, (const int64_t[]){6});
  }
  if (value_info(m, "z3", &vi)) {
    CHECK(vi.is_constant);
    check_shape(&vi.shape, 2, (const int64_t[]){1, 6});
  }
  if (value_info(m, "y", &vi)) CHECK(!vi.is_constant && vi.batched);
  /* only the two Adds on the real input remain as nodes */
  CHECK_EQ_INT(camd_model_num_nodes(m), 2);
  check_forward(m, "fold");
  camd_model_release(m);
}

/* Expand, Tile and Where on activations stay engine nodes and match numpy's result. */
static void test_runtime_expand_tile_where(void) {
  camd_model *m = load_ok("rtops.onnx");
  if (!m) return;
  CHECK_EQ_INT(camd_model_num_nodes(m), 4);
  CHECK(camd_model_max_batch(m) >= 2);
  check_forward(m, "rtops");
  /* input gradient of sum(seed * y) through Where, Tile and Expand, at batch 2 */
  size_t n_x = 0, n_seed = 0, n_grad = 0;
  float *x = camd_test_read_f32(camd_test_onnx_path("rtops.input.bin"), &n_x);
  float *seed = camd_test_read_f32(camd_test_onnx_path("rtops.seed.bin"), &n_seed);
  float *gref = camd_test_read_f32(camd_test_onnx_path("rtops.grad.bin"), &n_grad);
  CHECK(x && seed && gref && n_x == 8 && n_seed == 48 && n_grad == 8);
  camd_session *s = NULL;
  camd_error err = {0};
  CHECK_MSG(camd_session_create(m, 2, &s, &err) == 0, "%s", err.message);
  if (s && x && seed && gref && n_x == 8 && n_seed == 48 && n_grad == 8) {
    camd_forward_opts o;
    camd_forward_opts_init(&o);
    o.grad_to = camd_model_input(m, 0);
    CHECK_MSG(camd_session_forward(s, 2, x, &o, &err) == 0, "%s", err.message);
    CHECK_MSG(camd_session_backward(s, camd_model_output(m, 0), seed, &err) == 0, "%s",
              err.message);
    const float *g = camd_session_grad(s, camd_model_input(m, 0), NULL);
    CHECK(g != NULL);
    for (size_t k = 0; g && k < n_grad; k++) CHECK_NEAR(g[k], gref[k], 1e-5);
  }
  camd_session_destroy(s);
  free(x);
  free(seed);
  free(gref);
  camd_model_release(m);
}

static void test_unsupported_lists_all(void) {
  load_fails(
      "unsupported.onnx", CAMD_E_UNSUPPORTED,
      (const char *const[]){
          "unsupported operators: ", "'Foo' (node 'n1', opset 13)",
          "'Bar' (nodes 'a', 'b', opset 13)",
          "'Range' (node 'range_act', opset 13; supported only when start, limit and delta are "
          "constants at load",
          "'Einsum' (node 'ein_elementwise', opset 13; supported only as a "
          "batched matrix product",
          "'FusedThing' (node 'custom', domain 'com.example')", "supported:", NULL});
  camd_error err = {0};
  camd_model *m = NULL;
  camd_onnx_load(camd_test_onnx_path("unsupported.onnx"), NULL, &m, &err);
  CHECK(strstr(err.message, "ok_relu") == NULL); /* a supported node is not listed */
  /* the "supported:" list is the engine's op table (camd_op_count / camd_op_name) */
  CHECK(camd_op_count() > 20);
  CHECK(camd_op_name(-1) == NULL && camd_op_name(camd_op_count()) == NULL);
  for (int i = 0; i < camd_op_count(); i++) {
    const char *name = camd_op_name(i);
    int mn = 0, mx = 0;
    CHECK_MSG(name && camd_op_supported(name, 0, &mn, &mx) == false && mn > 0 && mx >= mn &&
                  camd_op_supported(name, mn, NULL, NULL),
              "op %d '%s'", i, name ? name : "(null)");
    char item[64];
    snprintf(item, sizeof(item), " %s", name ? name : "");
    CHECK_MSG(strstr(strstr(err.message, "supported:"), item), "'%s' is not listed", name);
  }
  CHECK(strstr(err.message, "supported: ") && strstr(err.message, " Conv,"));
}

static void test_initializer_as_input(void) {
  camd_model *m = load_ok("init_input.onnx");
  if (!m) return;
  CHECK_EQ_INT(camd_model_num_inputs(m), 1);
  camd_value_info vi;
  CHECK_EQ_INT(camd_model_value_info(m, camd_model_input(m, 0), &vi), 0);
  CHECK(strcmp(vi.name, "x") == 0);
  if (value_info(m, "bias", &vi)) CHECK(vi.is_constant && !vi.is_input);
  check_forward(m, "init_input");
  camd_model_release(m);
}

static void test_typed_fields(void) {
  camd_model *m = load_ok("typed.onnx");
  if (!m) return;
  camd_value_info vi;
  if (value_info(m, "h", &vi)) CHECK(vi.is_constant && vi.dtype == CAMD_FLOAT32);
  check_forward(m, "typed");
  camd_model_release(m);
}

static void test_alias_output(void) {
  camd_model *m = load_ok("alias_out.onnx");
  if (!m) return;
  CHECK(camd_model_find_value(m, "c") == camd_model_find_value(m, "r")); /* Cast to float */
  CHECK_EQ_INT(camd_model_num_nodes(m), 2);
  if (camd_model_num_nodes(m) == 2) {
    CHECK(strcmp(camd_model_node_op(m, 0), "Relu") == 0);
    CHECK(strcmp(camd_model_node_op(m, 1), "Identity") == 0); /* Dropout -> graph output */
    CHECK(strcmp(camd_model_node_name(m, 1), "drop") == 0);
  }
  camd_value_info vi;
  CHECK_EQ_INT(camd_model_value_info(m, camd_model_output(m, 0), &vi), 0);
  CHECK(strcmp(vi.name, "y") == 0);
  check_forward(m, "alias_out");
  camd_model_release(m);
}

static void test_external_data(void) {
  camd_model *m = load_ok("external.onnx");
  if (m) check_forward(m, "external");
  camd_model_release(m);
  load_fails("ext_absolute.onnx", CAMD_E_INVALID,
             (const char *const[]){"conv.weight", "absolute or contains '..'", NULL});
  load_fails("ext_dotdot.onnx", CAMD_E_INVALID, (const char *const[]){"conv.weight", NULL});
  load_fails("ext_dotdot_inner.onnx", CAMD_E_INVALID, (const char *const[]){"'..'", NULL});
  load_fails("ext_symlink.onnx", CAMD_E_INVALID,
             (const char *const[]){"conv.weight", "outside the model's directory", NULL});
  load_fails("ext_missing.onnx", CAMD_E_IO, (const char *const[]){"no_such_file.bin", NULL});
  load_fails("ext_past_end.onnx", CAMD_E_FORMAT,
             (const char *const[]){"offset 100000", "conv.weight", NULL});
  load_fails("ext_bad_length.onnx", CAMD_E_FORMAT,
             (const char *const[]){"has 8 bytes but its shape and type need 432", NULL});

  /* a buffer without a base directory may not reference files */
  size_t len = 0;
  unsigned char *data = camd_test_read_file(camd_test_onnx_path("external.onnx"), &len);
  CHECK(data != NULL);
  camd_error err = {0};
  m = NULL;
  CHECK_EQ_INT(camd_onnx_load_buffer(data, len, NULL, NULL, &m, &err), CAMD_E_INVALID);
  CHECK(m == NULL && strstr(err.message, "without a base directory"));
  /* the total external byte limit is enforced */
  camd_onnx_options o = {.max_external_bytes = 100};
  CHECK_EQ_INT(camd_onnx_load(camd_test_onnx_path("external.onnx"), &o, &m, &err), CAMD_E_LIMIT);
  CHECK(m == NULL && strstr(err.message, "max_external_bytes"));
  free(data);
}

/* Loads with options; NULL on failure (checked). */
static camd_model *load_opts(const char *file, const camd_onnx_options *o) {
  camd_error err = {0};
  camd_model *m = NULL;
  int rc = camd_onnx_load(camd_test_onnx_path(file), o, &m, &err);
  CHECK_MSG(rc == 0 && m, "%s: %d %s", file, rc, err.message);
  return rc == 0 ? m : NULL;
}

/* Every loader-only arithmetic op on constants (fold_math.onnx): folded, only the Adds on the
 * input remain, and the numbers are numpy's. */
static void test_fold_math(void) {
  camd_model *m = load_ok("fold_math.onnx");
  if (!m) return;
  for (int i = 0; i < camd_model_num_nodes(m); i++)
    CHECK_MSG(
        !strcmp(camd_model_node_op(m, i), "Add") || !strcmp(camd_model_node_op(m, i), "Identity"),
        "node %s (%s) was not folded", camd_model_node_name(m, i), camd_model_node_op(m, i));
  check_forward(m, "fold_math");
  camd_model_release(m);
  load_fails("fold_div0.onnx", CAMD_E_INVALID,
             (const char *const[]){"div_by_zero", "division by zero", NULL});
}

/* ScatterND on constants (Swin's attention mask) folds at load: only the Add remains. */
static void test_fold_scatternd(void) {
  camd_model *m = load_ok("scatternd.onnx");
  if (!m) return;
  CHECK_EQ_INT(camd_model_num_nodes(m), 1);
  check_forward(m, "scatternd");
  camd_model_release(m);
}

/* Einsum as MaxViT exports it: a Transpose + MatMul and a MatMul, forward vs numpy's einsum. */
static void test_einsum(void) {
  camd_model *m = load_ok("einsum.onnx");
  if (!m) return;
  int matmuls = 0, transposes = 0;
  for (int i = 0; i < camd_model_num_nodes(m); i++) {
    matmuls += !strcmp(camd_model_node_op(m, i), "MatMul");
    transposes += !strcmp(camd_model_node_op(m, i), "Transpose");
  }
  CHECK_EQ_INT(matmuls, 2);
  CHECK_EQ_INT(transposes, 1);
  check_forward(m, "einsum");
  camd_model_release(m);
}

/* TF "SAME" padding computed from a free input size: the size comes from the options, the
 * shape arithmetic folds, the Pad runs with constant pads. */
static void test_pad_same(void) {
  camd_onnx_options o = {.input_height = 7, .input_width = 10, .input_channels = 3};
  camd_model *m = load_opts("pad_same.onnx", &o);
  if (!m) return;
  camd_value_info vi;
  if (value_info(m, "pads", &vi)) {
    CHECK(vi.is_constant && vi.dtype == CAMD_INT64);
    const int64_t *p = camd_model_constant_data(m, camd_model_find_value(m, "pads"));
    /* 7: (4-1)*2+3-7 = 2 -> 1/1; 10: (5-1)*2+3-10 = 1 -> 0/1 */
    const int64_t want[8] = {0, 0, 1, 0, 0, 0, 1, 1};
    for (int i = 0; p && i < 8; i++) CHECK_EQ_INT(p[i], want[i]);
  }
  if (value_info(m, "y", &vi)) check_shape(&vi.shape, 4, (const int64_t[]){1, 2, 4, 5});
  for (int i = 0; i < camd_model_num_nodes(m); i++) {
    const char *op = camd_model_node_op(m, i);
    CHECK_MSG(!strcmp(op, "Pad") || !strcmp(op, "Conv"), "node %s left", op);
  }
  check_forward(m, "pad_same");
  camd_model_release(m);
  /* Without the size the error names the setting that gives it. */
  load_fails("pad_same.onnx", CAMD_E_INVALID,
             (const char *const[]){"'x'", "[N, 2, H, W]", "input_size", NULL});
}

/* Free sizes, layouts of the input and of the values after it. */
static void test_layouts_and_sizes(void) {
  camd_onnx_options o = {.input_height = 5, .input_width = 6};
  camd_model *m = load_opts("dynamic.onnx", &o);
  camd_value_info vi;
  if (m && camd_model_value_info(m, camd_model_input(m, 0), &vi) == 0) {
    check_shape(&vi.shape, 4, (const int64_t[]){1, 3, 5, 6});
    CHECK_EQ_INT(camd_model_value_layout(m, camd_model_input(m, 0)), CAMD_LAYOUT_NCHW);
  }
  camd_model_release(m);

  m = load_ok("nhwc.onnx");
  if (m) {
    CHECK_EQ_INT(camd_model_value_layout(m, camd_model_input(m, 0)), CAMD_LAYOUT_NHWC);
    CHECK_EQ_INT(camd_model_value_layout(m, camd_model_find_value(m, "x_nchw")), CAMD_LAYOUT_NCHW);
    CHECK_EQ_INT(camd_model_value_layout(m, camd_model_find_value(m, "r")), CAMD_LAYOUT_NCHW);
    CHECK_EQ_INT(camd_model_value_layout(m, camd_model_find_value(m, "r_nhwc")), CAMD_LAYOUT_NHWC);
    CHECK_EQ_INT(camd_model_value_layout(m, camd_model_find_value(m, "r2")), CAMD_LAYOUT_NHWC);
    /* a Reshape regroups: the graph does not decide its 4-D result */
    CHECK_EQ_INT(camd_model_value_layout(m, camd_model_find_value(m, "r3")), CAMD_LAYOUT_UNKNOWN);
    /* [1, 5, 7, 4] channels-last is a CAM layer with a 5 x 7 map; the suggestion is the last
     * layer of known layout (r2, not the undecided r3) */
    CHECK(camd_model_is_cam_layer(m, camd_model_find_value(m, "r2")));
    CHECK_EQ_INT(camd_model_suggest_cam_layer(m), camd_model_find_value(m, "r2"));
    int64_t c, h, w;
    camd_value_info ri;
    camd_model_value_info(m, camd_model_find_value(m, "r2"), &ri);
    CHECK(camd_layout_geometry(&ri.shape, CAMD_LAYOUT_NHWC, &c, &h, &w));
    CHECK(c == 4 && h == 5 && w == 7);
  }
  camd_model_release(m);
  /* The option overrides the detection: read as NCHW, the input has 5 channels. */
  o = (camd_onnx_options){.input_layout = CAMD_LAYOUT_NCHW};
  m = load_opts("nhwc.onnx", &o);
  if (m) CHECK_EQ_INT(camd_model_value_layout(m, camd_model_input(m, 0)), CAMD_LAYOUT_NCHW);
  camd_model_release(m);
  /* [N, H, W, 3]: channels-last by its trailing 3; the free height and width from the options */
  o = (camd_onnx_options){.input_height = 4, .input_width = 6};
  m = load_opts("nhwc_free.onnx", &o);
  if (m && camd_model_value_info(m, camd_model_input(m, 0), &vi) == 0) {
    check_shape(&vi.shape, 4, (const int64_t[]){1, 4, 6, 3});
    CHECK_EQ_INT(camd_model_value_layout(m, camd_model_input(m, 0)), CAMD_LAYOUT_NHWC);
  }
  camd_model_release(m);
  /* [N, a, b, c]: the layout is not in the shape; the message names the setting. */
  load_fails("ambiguous.onnx", CAMD_E_INVALID,
             (const char *const[]){"'x'", "[N, a, b, c]", "layout", "NHWC", NULL});
  o = (camd_onnx_options){
      .input_layout = CAMD_LAYOUT_NHWC, .input_height = 4, .input_width = 3, .input_channels = 1};
  m = load_opts("ambiguous.onnx", &o);
  if (m && camd_model_value_info(m, camd_model_input(m, 0), &vi) == 0)
    check_shape(&vi.shape, 4, (const int64_t[]){1, 4, 3, 1});
  camd_model_release(m);
}

/* QDQ: int8 weights dequantised at load (per channel, with zero points), the activation's
 * Quantize/Dequantize pair passed through. */
static void test_qdq(void) {
  camd_model *m = load_ok("qdq.onnx");
  if (!m) return;
  camd_value_info vi;
  if (value_info(m, "w", &vi)) CHECK(vi.is_constant && vi.dtype == CAMD_FLOAT32);
  CHECK_EQ_INT(camd_model_num_nodes(m), 1);
  check_forward(m, "qdq");
  camd_model_release(m);
}

static void test_rejections(void) {
  load_fails("dynamic.onnx", CAMD_E_INVALID,
             (const char *const[]){"'x'", "[N, 3, H, W]", "input_size", NULL});
  load_fails("bad_raw.onnx", CAMD_E_FORMAT,
             (const char *const[]){"initializer 'bias'", "raw_data has 16 bytes", "need 20", NULL});
  load_fails("no_such_model.onnx", CAMD_E_IO, (const char *const[]){"no_such_model", NULL});

  camd_error err = {0};
  camd_model *m = NULL;
  camd_onnx_options o = {.max_file_bytes = 100};
  CHECK_EQ_INT(camd_onnx_load(camd_test_onnx_path("cnn.onnx"), &o, &m, &err), CAMD_E_LIMIT);
  CHECK(m == NULL && strstr(err.message, "max_file_bytes"));
  CHECK_EQ_INT(camd_onnx_load_buffer("", 0, NULL, NULL, &m, &err), CAMD_E_FORMAT);
  static const char junk[] = "this is not a protobuf \xff\xff\xff\xff";
  CHECK_EQ_INT(camd_onnx_load_buffer(junk, sizeof(junk), NULL, NULL, &m, &err), CAMD_E_FORMAT);
  CHECK(m == NULL);
  CHECK_EQ_INT(camd_onnx_load_buffer(junk, sizeof(junk), NULL, NULL, NULL, NULL), CAMD_E_INVALID);
}

CAMD_TEST_MAIN(CAMD_TEST(test_cnn_structure), CAMD_TEST(test_cnn_forward),
               CAMD_TEST(test_shape_subgraph), CAMD_TEST(test_fold), CAMD_TEST(test_fold_scatternd),
               CAMD_TEST(test_einsum), CAMD_TEST(test_runtime_expand_tile_where),
               CAMD_TEST(test_unsupported_lists_all), CAMD_TEST(test_initializer_as_input),
               CAMD_TEST(test_typed_fields), CAMD_TEST(test_alias_output), CAMD_TEST(test_noop_pad),
               CAMD_TEST(test_external_data), CAMD_TEST(test_rejections), CAMD_TEST(test_fold_math),
               CAMD_TEST(test_pad_same), CAMD_TEST(test_layouts_and_sizes), CAMD_TEST(test_qdq))
