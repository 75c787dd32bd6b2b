/* Unit tests for Resize: engine vs a double reference written from the ONNX operator spec
 * (coordinate transform, then the spec's neighbour rule with edge padding), gradients vs
 * finite differences, inferred shapes, and load errors for what camd does not support. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "camd/engine.h"
#include "camd/graph.h"
#include "opcheck.h"
#include "testlib.h"

enum { CT_HALF_PIXEL, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS, CT_ASYMMETRIC };
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL };
static const char *const ct_names[] = {"half_pixel", "pytorch_half_pixel", "align_corners",
                                       "asymmetric"};
static const char *const nm_names[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};

typedef struct resize_ref {
  bool linear;
  int ct, nm;
  bool by_scales;
  double scale[2]; /* H, W (given scales) */
  int64_t expect_h, expect_w;
} resize_ref;

/* The spec's get_original_coordinate. */
static double original(const resize_ref *r, double x, double scale, double len_in, double len_out) {
  switch (r->ct) {
    case CT_HALF_PIXEL:
      return (x + 0.5) / scale - 0.5;
    case CT_PYTORCH_HALF_PIXEL:
      return len_out > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    case CT_ALIGN_CORNERS:
      return len_out == 1 ? 0.0 : x * (len_in - 1) / (len_out - 1);
    default:
      return x / scale;
  }
}

/* Value of plane at (i, j), indices outside repeated from the edge (the spec pads by edge). */
static double at_edge(const double *plane, int64_t h, int64_t w, int64_t i, int64_t j) {
  i = i < 0 ? 0 : i >= h ? h - 1 : i;
  j = j < 0 ? 0 : j >= w ? w - 1 : j;
  return plane[i * w + j];
}

static int64_t nearest_index(const resize_ref *r, double c, int64_t len) {
  double f = floor(c), v;
  if (r->nm == NM_FLOOR)
    v = f;
  else if (r->nm == NM_CEIL)
    v = ceil(c);
  else if (c - f == 0.5)
    v = r->nm == NM_ROUND_PREFER_FLOOR ? f : f + 1;
  else
    v = floor(c + 0.5);
  int64_t i = (int64_t)v;
  return i < 0 ? 0 : i >= len ? len - 1 : i;
}

static void ref_resize(void *ctx, const double *const *in, const camd_shape *is, double *const *out,
                       const camd_shape *os) {
  const resize_ref *r = ctx;
  CHECK_EQ_INT(os[0].dims[2], r->expect_h);
  CHECK_EQ_INT(os[0].dims[3], r->expect_w);
  int64_t planes = is[0].dims[0] * is[0].dims[1], ih = is[0].dims[2], iw = is[0].dims[3];
  int64_t oh = os[0].dims[2], ow = os[0].dims[3];
  double sh = r->by_scales ? r->scale[0] : (double)oh / (double)ih;
  double sw = r->by_scales ? r->scale[1] : (double)ow / (double)iw;
  for (int64_t p = 0; p < planes; p++) {
    const double *x = in[0] + p * ih * iw;
    for (int64_t i = 0; i < oh; i++) {
      for (int64_t j = 0; j < ow; j++) {
        double ci = original(r, (double)i, sh, (double)ih, (double)oh);
        double cj = original(r, (double)j, sw, (double)iw, (double)ow);
        double v;
        if (r->linear) {
          /* The spec's linear: neighbours floor(c) and floor(c) + 1 (edge-padded), ratio c -
           * floor(c); a coordinate outside [0, len - 1] is clamped first. */
          ci = ci < 0 ? 0 : ci > (double)(ih - 1) ? (double)(ih - 1) : ci;
          cj = cj < 0 ? 0 : cj > (double)(iw - 1) ? (double)(iw - 1) : cj;
          int64_t i0 = (int64_t)floor(ci), j0 = (int64_t)floor(cj);
          double a = ci - (double)i0, b = cj - (double)j0;
          v = (1 - a) *
                  ((1 - b) * at_edge(x, ih, iw, i0, j0) + b * at_edge(x, ih, iw, i0, j0 + 1)) +
              a * ((1 - b) * at_edge(x, ih, iw, i0 + 1, j0) +
                   b * at_edge(x, ih, iw, i0 + 1, j0 + 1));
        } else {
          v = x[nearest_index(r, ci, ih) * iw + nearest_index(r, cj, iw)];
        }
        out[0][(p * oh + i) * ow + j] = v;
      }
    }
  }
}

#define RUN(spec) CHECK_MSG(opcheck_run(&(spec)) == 0, "%s", (spec).label)

/* One Resize case: sizes (4 ints) or scales (4 floats), opset 11+ (X, roi, scales, sizes) or
 * opset 10 (X, scales). */
static void resize_case(const char *label, int opset, camd_shape in, bool linear, int ct, int nm,
                        const int64_t *sizes, const float *scales, int64_t eh, int64_t ew) {
  resize_ref r = {linear, ct, nm, scales != NULL, {0, 0}, eh, ew};
  if (scales) r.scale[0] = scales[2], r.scale[1] = scales[3];
  opcheck_spec s;
  memset(&s, 0, sizeof(s));
  s.op_type = "Resize";
  s.opset = opset;
  s.in_shapes[0] = in;
  s.n_out = 1;
  s.ref = ref_resize;
  s.ref_ctx = &r;
  s.grad_check = 1u;
  s.label = label;
  int scales_at = opset >= 11 ? 2 : 1;
  s.n_in = opset >= 11 ? 4 : 2;
  if (opset >= 11) {
    s.in_absent |= 1u << 1; /* roi */
    s.in_shapes[1] = opcheck_shape(1, 0);
  }
  if (scales) {
    s.in_shapes[scales_at] = opcheck_shape(1, 4);
    s.in_const |= 1u << scales_at;
    s.float_values[scales_at] = scales;
    if (opset >= 11) {
      s.in_absent |= 1u << 3;
      s.in_shapes[3] = opcheck_shape(1, 0);
    }
  } else {
    s.in_absent |= 1u << 2;
    s.in_shapes[2] = opcheck_shape(1, 0);
    s.in_shapes[3] = opcheck_shape(1, 4);
    s.int_inputs[3] = sizes;
  }
  camd_attr a[3];
  s.attrs = a;
  a[s.n_attrs++] = opcheck_attr_string("mode", linear ? "linear" : "nearest");
  a[s.n_attrs++] = opcheck_attr_string("coordinate_transformation_mode", ct_names[ct]);
  a[s.n_attrs++] = opcheck_attr_string("nearest_mode", nm_names[nm]);
  RUN(s);
}

static void test_linear(void) {
  static const int64_t up[] = {2, 3, 7, 9}, down[] = {2, 2, 3, 1}, up2[] = {2, 2, 10, 8};
  static const float sc[] = {1.0f, 1.0f, 2.0f, 1.5f}, sc_frac[] = {1.0f, 1.0f, 0.6f, 2.5f};
  resize_case("linear half_pixel sizes up", 13, opcheck_shape(4, 2, 3, 3, 4), true, CT_HALF_PIXEL,
              0, up, NULL, 7, 9);
  resize_case("linear half_pixel sizes x4 (torch interpolate)", 17, opcheck_shape(4, 2, 2, 5, 2),
              true, CT_HALF_PIXEL, 0, up2, NULL, 10, 8);
  resize_case("linear pytorch_half_pixel down to width 1", 13, opcheck_shape(4, 2, 2, 6, 5), true,
              CT_PYTORCH_HALF_PIXEL, 0, down, NULL, 3, 1);
  resize_case("linear half_pixel down to width 1", 13, opcheck_shape(4, 2, 2, 6, 5), true,
              CT_HALF_PIXEL, 0, down, NULL, 3, 1);
  resize_case("linear align_corners scales", 11, opcheck_shape(4, 2, 2, 3, 4), true,
              CT_ALIGN_CORNERS, 0, NULL, sc, 6, 6);
  resize_case("linear asymmetric fractional scales", 19, opcheck_shape(4, 2, 2, 5, 3), true,
              CT_ASYMMETRIC, 0, NULL, sc_frac, 3, 7);
}

static void test_nearest(void) {
  static const int64_t sz[] = {2, 2, 7, 5};
  static const float sc[] = {1.0f, 1.0f, 2.0f, 3.0f}, sc_down[] = {1.0f, 1.0f, 0.5f, 0.75f};
  resize_case("nearest asymmetric floor x2 x3 (torch nearest)", 13, opcheck_shape(4, 2, 2, 3, 4),
              false, CT_ASYMMETRIC, NM_FLOOR, NULL, sc, 6, 12);
  resize_case("nearest half_pixel round_prefer_floor sizes", 13, opcheck_shape(4, 2, 2, 4, 3),
              false, CT_HALF_PIXEL, NM_ROUND_PREFER_FLOOR, sz, NULL, 7, 5);
  resize_case("nearest half_pixel round_prefer_ceil sizes", 13, opcheck_shape(4, 2, 2, 4, 3), false,
              CT_HALF_PIXEL, NM_ROUND_PREFER_CEIL, sz, NULL, 7, 5);
  resize_case("nearest align_corners ceil down", 13, opcheck_shape(4, 2, 2, 6, 8), false,
              CT_ALIGN_CORNERS, NM_CEIL, NULL, sc_down, 3, 6);
  resize_case("nearest opset 10 (X, scales)", 10, opcheck_shape(4, 2, 2, 3, 4), false,
              CT_ASYMMETRIC, NM_ROUND_PREFER_FLOOR, NULL, sc, 6, 12);
}

/* A Resize node on x (per-sample shape xs) with int64 sizes (or float scales) must fail to load
 * with a message containing `want`. */
static void expect_load_error(const int64_t *sizes, const float *scales, const camd_attr *attrs,
                              int n_attrs, const char *want) {
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_shape xs = opcheck_shape(4, 1, 3, 4, 4), four = opcheck_shape(1, 4);
  int ins[4] = {camd_graph_add_input(g, "x", &xs, &err), -1, -1, -1};
  if (sizes) {
    int64_t *d = malloc(4 * sizeof(int64_t));
    memcpy(d, sizes, 4 * sizeof(int64_t));
    ins[3] = camd_graph_add_constant(g, "sizes", CAMD_INT64, &four, d, &err);
  }
  if (scales) {
    float *d = malloc(4 * sizeof(float));
    memcpy(d, scales, 4 * sizeof(float));
    ins[2] = camd_graph_add_constant(g, "scales", CAMD_FLOAT32, &four, d, &err);
  }
  int outs[1];
  int rc = camd_graph_add_node(g, "Resize", "bad", 13, 4, ins, 1, NULL, attrs, n_attrs, outs, &err);
  CHECK_MSG(rc < 0, "expected a load error containing '%s'", want);
  if (rc < 0)
    CHECK_MSG(strstr(err.message, want) != NULL && strstr(err.message, "'bad'") != NULL,
              "message '%s' lacks '%s'", err.message, want);
  camd_graph_free(g);
}

static void test_load_errors(void) {
  static const int64_t ok[] = {1, 3, 8, 8}, channels[] = {1, 6, 8, 8}, zero[] = {1, 3, 0, 8};
  static const float sc[] = {1, 1, 2, 2}, sc_c[] = {1, 2, 2, 2};
  camd_attr cubic = opcheck_attr_string("mode", "cubic");
  expect_load_error(ok, NULL, &cubic, 1, "mode 'cubic' is not supported");
  camd_attr crop = opcheck_attr_string("coordinate_transformation_mode", "tf_crop_and_resize");
  expect_load_error(ok, NULL, &crop, 1, "not supported");
  camd_attr aa = opcheck_attr_int("antialias", 1);
  expect_load_error(ok, NULL, &aa, 1, "antialias");
  expect_load_error(channels, NULL, NULL, 0, "only the spatial axes");
  expect_load_error(NULL, sc_c, NULL, 0, "only the spatial axes");
  expect_load_error(zero, NULL, NULL, 0, "outside 1..");
  expect_load_error(ok, sc, NULL, 0, "exactly one of scales and sizes");
  expect_load_error(NULL, NULL, NULL, 0, "exactly one of scales and sizes");
}

static void test_opset_range(void) {
  int lo = 0, hi = 0;
  CHECK(camd_op_supported("Resize", 13, &lo, &hi));
  CHECK_EQ_INT(lo, 10);
  CHECK_EQ_INT(hi, 21);
  CHECK(!camd_op_supported("Resize", 9, NULL, NULL));
}

CAMD_TEST_MAIN(CAMD_TEST(test_linear), CAMD_TEST(test_nearest), CAMD_TEST(test_load_errors),
               CAMD_TEST(test_opset_range))
