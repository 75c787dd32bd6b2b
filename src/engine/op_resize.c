/* Resize (opsets 10-21) on the spatial axes of an N×C×H×W tensor: nearest and (bi)linear modes,
 * half_pixel / pytorch_half_pixel / align_corners / asymmetric coordinates, scales or sizes
 * given as constants (computed sizes are folded at load), forward and input-gradient backward.
 *
 * Per output coordinate x (axis of input length L, output length O, scale s):
 *   half_pixel          (x + 0.5) / s - 0.5
 *   pytorch_half_pixel  O > 1 ? (x + 0.5) / s - 0.5 : 0
 *   align_corners       O > 1 ? x * (L - 1) / (O - 1) : 0
 *   asymmetric          x / s
 * s is the given scale, or O / L when sizes are given (as the ONNX reference computes it).
 * linear: the coordinate is clamped to [0, L - 1]; i0 = floor, i1 = min(i0 + 1, L - 1), weights
 * 1 - f and f (the ONNX reference and torch's bilinear / align_corners interpolate alike).
 * nearest: nearest_mode round_prefer_floor (default), round_prefer_ceil, floor or ceil of the
 * coordinate, then clamped to [0, L - 1]. The backward scatters each output gradient into the
 * input positions it was interpolated from, with the same weights.
 */
#include <math.h>
#include <string.h>

#include "engine/op.h"

#define RESIZE_MAX_SIDE 65536 /* output height / width cap: keeps sizes far from overflow */

typedef enum resize_coord {
  COORD_HALF_PIXEL,
  COORD_PYTORCH_HALF_PIXEL,
  COORD_ALIGN_CORNERS,
  COORD_ASYMMETRIC
} resize_coord;
typedef enum resize_nearest {
  NEAR_ROUND_FLOOR,
  NEAR_ROUND_CEIL,
  NEAR_FLOOR,
  NEAR_CEIL
} resize_nearest;

typedef struct resize_params {
  bool linear; /* else nearest */
  resize_coord coord;
  resize_nearest nearest;
  bool by_sizes; /* output H, W given (out_h/out_w); else scaled (scale_h/scale_w) */
  int64_t out_h, out_w;
  double scale_h, scale_w;
} resize_params;

static bool has_input(const camd_node *n, int i) {
  return i < n->n_in && n->in[i] >= 0;
}

/* Constant input i as up to 4 values (doubles); *count = 0 for an empty tensor. */
static int const_values(camd_graph *g, const camd_node *n, int i, const char *what, bool ints,
                        double *out, size_t *count, camd_error *err) {
  camd_shape s;
  camd_dtype dt;
  const void *data = NULL;
  int rc = camd__node_input(g, n, i, &s, &dt, &data);
  if (rc < 0) return camd__node_error(err, n, rc, "input '%s' is missing", what);
  size_t c = camd_shape_count(&s);
  if (c == 0) {
    *count = 0;
    return 0;
  }
  if (!data || dt != (ints ? CAMD_INT64 : CAMD_FLOAT32))
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "input '%s' must be a constant %s tensor (computed at load)", what,
                            ints ? "int64" : "float32");
  if (c != 4)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "input '%s' has %zu entries; Resize is supported on 4-D N×C×H×W "
                            "tensors",
                            what, c);
  for (size_t k = 0; k < c; k++)
    out[k] = ints ? (double)((const int64_t *)data)[k] : (double)((const float *)data)[k];
  *count = c;
  return 0;
}

static int resize_prepare(camd_graph *g, camd_node *n, camd_error *err) {
  if (n->n_in < 2 || n->n_out != 1)
    return camd__node_error(err, n, CAMD_E_INVALID, "needs the data input and scales or sizes");
  camd_shape xs;
  camd_dtype xdt;
  int rc = camd__node_input(g, n, 0, &xs, &xdt, NULL);
  if (rc < 0) return camd__node_error(err, n, rc, "data input is missing");
  if (xdt != CAMD_FLOAT32 || xs.ndim != 4)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "only 4-D float32 N×C×H×W data is supported (rank %d)", xs.ndim);
  resize_params *p = camd__node_params_alloc(g, sizeof(*p));
  if (!p) return camd__node_error(err, n, CAMD_E_NOMEM, "out of memory");

  const char *mode = camd__attr_string(n, "mode", "nearest");
  if (!strcmp(mode, "linear") || !strcmp(mode, "bilinear"))
    p->linear = true;
  else if (strcmp(mode, "nearest"))
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "mode '%s' is not supported (supported: nearest, linear)", mode);
  const char *ct = camd__attr_string(n, "coordinate_transformation_mode",
                                     n->opset >= 11 ? "half_pixel" : "asymmetric");
  if (!strcmp(ct, "half_pixel"))
    p->coord = COORD_HALF_PIXEL;
  else if (!strcmp(ct, "pytorch_half_pixel"))
    p->coord = COORD_PYTORCH_HALF_PIXEL;
  else if (!strcmp(ct, "align_corners"))
    p->coord = COORD_ALIGN_CORNERS;
  else if (!strcmp(ct, "asymmetric"))
    p->coord = COORD_ASYMMETRIC;
  else
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "coordinate_transformation_mode '%s' is not supported (supported: "
                            "half_pixel, pytorch_half_pixel, align_corners, asymmetric)",
                            ct);
  const char *nm = camd__attr_string(n, "nearest_mode", "round_prefer_floor");
  if (!strcmp(nm, "round_prefer_floor"))
    p->nearest = NEAR_ROUND_FLOOR;
  else if (!strcmp(nm, "round_prefer_ceil"))
    p->nearest = NEAR_ROUND_CEIL;
  else if (!strcmp(nm, "floor"))
    p->nearest = NEAR_FLOOR;
  else if (!strcmp(nm, "ceil"))
    p->nearest = NEAR_CEIL;
  else
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "nearest_mode '%s' is not supported", nm);
  int64_t antialias = 0;
  if ((rc = camd__attr_int(n, "antialias", 0, &antialias, err)) < 0) return rc;
  if (antialias)
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "antialias=1 is not supported");
  const char *kar = camd__attr_string(n, "keep_aspect_ratio_policy", "stretch");
  if (strcmp(kar, "stretch"))
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "keep_aspect_ratio_policy '%s' is not supported (only stretch)", kar);
  if (camd__attr_find(n, "axes"))
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED, "attribute 'axes' is not supported");

  /* Opset 10: (X, scales). Opset 11+: (X, roi, scales, sizes), exactly one of scales / sizes. */
  int scales_at = n->opset >= 11 ? 2 : 1, sizes_at = n->opset >= 11 ? 3 : -1;
  double scales[4], sizes[4];
  size_t n_scales = 0, n_sizes = 0;
  if (has_input(n, scales_at) &&
      (rc = const_values(g, n, scales_at, "scales", false, scales, &n_scales, err)) < 0)
    return rc;
  if (sizes_at >= 0 && has_input(n, sizes_at) &&
      (rc = const_values(g, n, sizes_at, "sizes", true, sizes, &n_sizes, err)) < 0)
    return rc;
  if ((n_scales == 0) == (n_sizes == 0))
    return camd__node_error(err, n, CAMD_E_INVALID, "give exactly one of scales and sizes");
  if (n_sizes) {
    /* C keeps its size. sizes[0] is the batch the graph was folded or exported with (a folded
     * Shape gives 1); the output keeps each run's batch, as for every other op. */
    if (sizes[0] < 1 || sizes[1] != (double)xs.dims[1])
      return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                              "only the spatial axes (H, W) may be resized");
    if (sizes[2] < 1 || sizes[3] < 1 || sizes[2] > RESIZE_MAX_SIDE || sizes[3] > RESIZE_MAX_SIDE)
      return camd__node_error(err, n, CAMD_E_INVALID, "sizes %g×%g outside 1..%d", sizes[2],
                              sizes[3], RESIZE_MAX_SIDE);
    p->by_sizes = true;
    p->out_h = (int64_t)sizes[2];
    p->out_w = (int64_t)sizes[3];
  } else {
    if (scales[0] != 1.0 || scales[1] != 1.0)
      return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                              "only the spatial axes (H, W) may be resized (scales %g, %g on N, C)",
                              scales[0], scales[1]);
    for (int k = 2; k < 4; k++)
      if (!(scales[k] > 0.0) || scales[k] > RESIZE_MAX_SIDE)
        return camd__node_error(err, n, CAMD_E_INVALID, "scale %g must be > 0", scales[k]);
    p->scale_h = scales[2];
    p->scale_w = scales[3];
  }
  n->params = p;
  return 0;
}

static int resize_infer(const camd_node *n, const camd_shape *in, camd_shape *out,
                        camd_error *err) {
  const resize_params *p = n->params;
  if (in[0].ndim != 4)
    return camd__node_error(err, n, CAMD_E_SHAPE, "data has rank %d, expected 4", in[0].ndim);
  out[0] = in[0];
  if (p->by_sizes) {
    out[0].dims[2] = p->out_h;
    out[0].dims[3] = p->out_w;
  } else {
    double h = floor((double)in[0].dims[2] * p->scale_h),
           w = floor((double)in[0].dims[3] * p->scale_w);
    if (h < 1 || w < 1 || h > RESIZE_MAX_SIDE || w > RESIZE_MAX_SIDE)
      return camd__node_error(err, n, CAMD_E_SHAPE, "output %g×%g outside 1..%d", h, w,
                              RESIZE_MAX_SIDE);
    out[0].dims[2] = (int64_t)h;
    out[0].dims[3] = (int64_t)w;
  }
  return 0;
}

/* Where output index x of an axis (in → out, scale) reads: i0, i1 and the weight of i1
 * (linear), or i0 alone with weight 0 (nearest). */
typedef struct tap {
  int64_t i0, i1;
  float f;
} tap;

static tap axis_tap(const resize_params *p, int64_t x, int64_t in, int64_t out, double scale) {
  double s = p->by_sizes ? (double)out / (double)in : scale, c;
  switch (p->coord) {
    case COORD_HALF_PIXEL:
      c = ((double)x + 0.5) / s - 0.5;
      break;
    case COORD_PYTORCH_HALF_PIXEL:
      c = out > 1 ? ((double)x + 0.5) / s - 0.5 : 0.0;
      break;
    case COORD_ALIGN_CORNERS:
      c = out > 1 ? (double)x * (double)(in - 1) / (double)(out - 1) : 0.0;
      break;
    default:
      c = (double)x / s;
      break;
  }
  tap t;
  if (p->linear) {
    if (c < 0.0) c = 0.0;
    if (c > (double)(in - 1)) c = (double)(in - 1);
    t.i0 = (int64_t)floor(c);
    t.i1 = t.i0 + 1 < in ? t.i0 + 1 : t.i0;
    t.f = (float)(c - (double)t.i0);
    return t;
  }
  double r;
  switch (p->nearest) {
    case NEAR_ROUND_FLOOR:
      r = c == floor(c) + 0.5 ? floor(c) : round(c);
      break;
    case NEAR_ROUND_CEIL:
      r = c == floor(c) + 0.5 ? ceil(c) : round(c);
      break;
    case NEAR_FLOOR:
      r = floor(c);
      break;
    default:
      r = ceil(c);
      break;
  }
  if (r < 0.0) r = 0.0;
  if (r > (double)(in - 1)) r = (double)(in - 1);
  t.i0 = t.i1 = (int64_t)r;
  t.f = 0.0f;
  return t;
}

/* forward (grad false): y[o] = Σ w x[i]; backward (grad true): gx[i] += w gy[o]. */
static void resize_run(const resize_params *p, const camd_shape *is, const camd_shape *os,
                       const float *src, float *dst, bool grad) {
  int64_t planes = is->dims[0] * is->dims[1], ih = is->dims[2], iw = is->dims[3];
  int64_t oh = os->dims[2], ow = os->dims[3];
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *a = grad ? src + pl * oh * ow : src + pl * ih * iw;
    float *b = grad ? dst + pl * ih * iw : dst + pl * oh * ow;
    for (int64_t y = 0; y < oh; y++) {
      tap ty = axis_tap(p, y, ih, oh, p->scale_h);
      for (int64_t x = 0; x < ow; x++) {
        tap tx = axis_tap(p, x, iw, ow, p->scale_w);
        float wy1 = ty.f, wy0 = 1.0f - wy1, wx1 = tx.f, wx0 = 1.0f - wx1;
        int64_t i00 = ty.i0 * iw + tx.i0, i01 = ty.i0 * iw + tx.i1, i10 = ty.i1 * iw + tx.i0,
                i11 = ty.i1 * iw + tx.i1;
        if (!grad) {
          b[y * ow + x] =
              p->linear ? wy0 * (wx0 * a[i00] + wx1 * a[i01]) + wy1 * (wx0 * a[i10] + wx1 * a[i11])
                        : a[i00];
        } else if (p->linear) {
          float gy = a[y * ow + x];
          b[i00] += wy0 * wx0 * gy;
          b[i01] += wy0 * wx1 * gy;
          b[i10] += wy1 * wx0 * gy;
          b[i11] += wy1 * wx1 * gy;
        } else {
          b[i00] += a[y * ow + x];
        }
      }
    }
  }
}

static void resize_forward(const camd_op_ctx *ctx) {
  resize_run(ctx->params, &ctx->in[0].shape, &ctx->out[0].shape, ctx->in[0].data, ctx->out[0].data,
             false);
}

static void resize_backward(const camd_op_ctx *ctx) {
  if (!ctx->grad_in[0].data || !ctx->grad_out[0].data) return;
  resize_run(ctx->params, &ctx->in[0].shape, &ctx->out[0].shape, ctx->grad_out[0].data,
             ctx->grad_in[0].data, true);
}

const camd_op_desc camd__op_resize = {.op_type = "Resize",
                                      .opset_min = 10,
                                      .opset_max = 21,
                                      .prepare = resize_prepare,
                                      .infer = resize_infer,
                                      .forward = resize_forward,
                                      .backward = resize_backward,
                                      .bwd_needs_inputs = 0,
                                      .bwd_needs_outputs = false,
                                      .grad_inputs = CAMD_IN(0)};
