/* FullGrad (Srinivas & Fleuret 2019): input-gradient and per-layer bias-gradient saliency.
 *
 * As pytorch-grad-cam's FullGrad: map = Σ_c S(|x_c · ∂y/∂x_c|) + Σ_layers R(Σ_c S(|b_c ·
 * ∂y/∂z_c|)) over every layer with a per-channel bias, where S(m) = (m − min) / (max(m − min) +
 * 1e-7) per channel plane and R is the bilinear resize (align_corners = false) to the input's
 * h × w. Resize is linear, so each layer's channels are scaled and summed at the layer's
 * resolution and the sum is resized once.
 *
 * Biased layers, read from the loaded graph:
 *   - Conv with a constant bias (4-D output): its bias, at its output. camd folds a following
 *     BatchNormalization into the Conv at load (fold_bn.c), so this bias is then
 *     a·b_conv + (B − mean·a), a = scale / √(var + ε), and its output is the BN's output: for
 *     the usual bias-free Conv + BN (torchvision) exactly the peer's BatchNorm2d term (BN's
 *     "effective bias" at the BN output), with no separate Conv term (the peer has none either:
 *     its Conv has no bias). For a Conv *with* a bias followed by BN, the peer sums two terms
 *     (|b_conv · ∂y/∂conv| and |b_bn · ∂y/∂bn|), camd one term of the folded bias; before the
 *     abs the two agree (∂y/∂conv = a · ∂y/∂bn), after abs and per-channel scaling they differ.
 *   - BatchNormalization left unfolded (after a Concat or an Add, e.g. DenseNet's
 *     pre-activation BNs): its effective bias B − mean·a at its output (the peer's BN term).
 * Layers whose plane is 1 × 1 (squeeze-excite convolutions) give S(m) = 0, as in the peer.
 * The classifier's Gemm bias is not a 2-D bias layer (the peer skips nn.Linear too).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam/cam_internal.h"
#include "camd/core.h"
#include "camd/graph.h"

/* Data of a node's input i when it is a float constant of `count` values, else NULL. */
static const float *constant_floats(const camd_model *m, const int *in, int n_in, int i,
                                    int64_t count) {
  if (i >= n_in || in[i] < 0) return NULL;
  camd_value_info vi;
  if (camd_model_value_info(m, in[i], &vi) != 0 || !vi.is_constant || vi.dtype != CAMD_FLOAT32 ||
      (int64_t)camd_shape_count(&vi.shape) != count)
    return NULL;
  return camd_model_constant_data(m, in[i]);
}

/* C and h·w of `value` when it is a batched 4-D float activation (per-sample shape). */
static bool output_plane(const camd_model *m, int value, int64_t *c, int64_t *hw) {
  camd_value_info vi;
  if (camd_model_value_info(m, value, &vi) != 0 || vi.is_constant || !vi.batched ||
      vi.dtype != CAMD_FLOAT32 || vi.shape.ndim != 4 || vi.shape.dims[0] != 1)
    return false;
  *c = vi.shape.dims[1];
  *hw = vi.shape.dims[2] * vi.shape.dims[3];
  return *c > 0 && *hw > 0;
}

/* Bias of node k into bias[C] (double) when it is a biased layer (see above); false otherwise. */
static bool layer_bias(const camd_model *m, int k, int64_t C, double *bias) {
  const char *op = camd_model_node_op(m, k);
  const int *in, *out;
  int n_in, n_out;
  if (!op || camd_model_node_io(m, k, &in, &n_in, &out, &n_out) != 0 || n_out < 1) return false;
  if (!strcmp(op, "Conv")) {
    const float *b = constant_floats(m, in, n_in, 2, C);
    if (!b) return false;
    for (int64_t c = 0; c < C; c++) bias[c] = b[c];
    return true;
  }
  if (!strcmp(op, "BatchNormalization")) {
    const float *scale = constant_floats(m, in, n_in, 1, C),
                *B = constant_floats(m, in, n_in, 2, C), *mean = constant_floats(m, in, n_in, 3, C),
                *var = constant_floats(m, in, n_in, 4, C);
    if (!scale || !B || !mean || !var) return false;
    const camd_attr *a = camd_model_node_attr(m, k, "epsilon");
    double eps = a && a->type == CAMD_ATTR_FLOAT ? a->f : 1e-5;
    for (int64_t c = 0; c < C; c++)
      bias[c] = (double)B[c] - (double)mean[c] * scale[c] / sqrt((double)var[c] + eps);
    return true;
  }
  return false;
}

int camd__fullgrad_prepare(camd__cam_ctx *ctx, camd__fullgrad *fg, camd_error *err) {
  const camd_model *m = ctx->m;
  const int nn = camd_model_num_nodes(m);
  memset(fg, 0, sizeof(*fg));
  fg->slot = (int *)camd__ws_floats(ctx->w, (size_t)nn + 1); /* int-sized cells */
  if (!fg->slot) return camd_error_set(err, CAMD_E_NOMEM, "out of memory in the CAM workspace");
  size_t total_c = 0, max_hw = 0;
  int n_layers = 0;
  for (int k = 0; k < nn; k++) {
    fg->slot[k] = -1;
    const char *op = camd_model_node_op(m, k);
    const int *in, *out;
    int n_in, n_out;
    int64_t C, hw;
    if (!op || (strcmp(op, "Conv") && strcmp(op, "BatchNormalization")) ||
        camd_model_node_io(m, k, &in, &n_in, &out, &n_out) != 0 || n_out < 1 ||
        !output_plane(m, out[0], &C, &hw))
      continue;
    fg->slot[k] = n_layers++;
    total_c += (size_t)C;
    if ((size_t)hw > max_hw) max_hw = (size_t)hw;
  }
  fg->bias = camd__ws_doubles(ctx->w, total_c + 1);
  fg->offset = (size_t *)camd__ws_doubles(ctx->w, (size_t)n_layers + 1); /* 8-byte cells */
  fg->layer_sum = camd__ws_doubles(ctx->w, max_hw + 1);
  fg->up = camd__ws_floats(ctx->w, (size_t)ctx->in_h * (size_t)ctx->in_w);
  fg->plane = camd__ws_floats(ctx->w, max_hw + 1);
  if (!fg->bias || !fg->offset || !fg->layer_sum || !fg->up || !fg->plane)
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory in the CAM workspace");
  size_t off = 0;
  for (int k = 0; k < nn; k++) {
    if (fg->slot[k] < 0) continue;
    const int *in, *out;
    int n_in, n_out;
    int64_t C, hw;
    camd_model_node_io(m, k, &in, &n_in, &out, &n_out);
    output_plane(m, out[0], &C, &hw);
    if (!layer_bias(m, k, C, fg->bias + off)) {
      fg->slot[k] = -1; /* a Conv without bias, a BN with non-constant statistics */
      continue;
    }
    fg->offset[fg->slot[k]] = off;
    fg->n_layers++;
    off += (size_t)C;
  }
  fg->ctx = ctx;
  return 0;
}

/* Backward observer: a biased layer's output gradient → R(Σ_c S(|b_c · g_c|)) added to fg->map. */
void camd__fullgrad_observe(void *obs_ctx, int node, int value_id, const float *grad,
                            const camd_shape *shape) {
  camd__fullgrad *fg = obs_ctx;
  const camd__cam_ctx *ctx = fg->ctx;
  if (fg->slot[node] < 0 || shape->ndim != 4 || shape->dims[0] != 1) return;
  const int *in, *out;
  int n_in, n_out;
  if (camd_model_node_io(ctx->m, node, &in, &n_in, &out, &n_out) != 0 || out[0] != value_id) return;
  const size_t C = (size_t)shape->dims[1], h = (size_t)shape->dims[2], w = (size_t)shape->dims[3];
  const size_t hw = h * w;
  if (hw < 2) return; /* S of a 1 × 1 plane is 0 */
  const double *b = fg->bias + fg->offset[fg->slot[node]];
  double *sum = fg->layer_sum;
  memset(sum, 0, sizeof(double) * hw);
  bool any = false;
  for (size_t c = 0; c < C; c++) {
    const float *g = grad + c * hw;
    const double bc = fabs(b[c]);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t p = 0; p < hw; p++) {
      double v = bc * fabs((double)g[p]);
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
    }
    if (!(hi > lo)) continue; /* constant plane: S = 0 */
    const double scale = 1.0 / (hi - lo + 1e-7);
    for (size_t p = 0; p < hw; p++) sum[p] += (bc * fabs((double)g[p]) - lo) * scale;
    any = true;
  }
  if (!any) return;
  const size_t plane = (size_t)ctx->in_h * (size_t)ctx->in_w;
  for (size_t p = 0; p < hw; p++) fg->plane[p] = (float)sum[p];
  camd__bilinear(fg->plane, (int)h, (int)w, fg->up, ctx->in_h, ctx->in_w);
  for (size_t p = 0; p < plane; p++) fg->map[p] += fg->up[p];
  fg->observed++;
}

void camd__fullgrad_input_term(const camd__fullgrad *fg, const float *x, const float *g) {
  const camd__cam_ctx *ctx = fg->ctx;
  const size_t plane = (size_t)ctx->in_h * (size_t)ctx->in_w;
  for (int c = 0; c < ctx->in_c; c++) {
    const float *xc = x + (size_t)c * plane, *gc = g + (size_t)c * plane;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t p = 0; p < plane; p++) {
      double v = fabs((double)xc[p] * gc[p]);
      lo = v < lo ? v : lo;
      hi = v > hi ? v : hi;
    }
    if (!(hi > lo)) continue;
    const double scale = 1.0 / (hi - lo + 1e-7);
    for (size_t p = 0; p < plane; p++)
      fg->map[p] += (float)((fabs((double)xc[p] * gc[p]) - lo) * scale);
  }
}
