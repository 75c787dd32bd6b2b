/* Input-gradient CAM methods: guided backpropagation, guided Grad-CAM and FullGrad.
 *
 * Their maps are at the model input's resolution (in_h × in_w), from a backward that reaches
 * the input: guided backprop through ReLUs that pass only positive gradients
 * (camd_session_backward_guided), FullGrad through an observer that adds every biased layer's
 * term on the way (cam_fullgrad.c).
 */
#include <math.h>
#include <string.h>

#include "cam/cam_internal.h"
#include "camd/core.h"

/* One forward whose backward can reach the model input (guided backprop, FullGrad); *out: the
 * model's output. */
static int forward_to_input(camd__cam_ctx *ctx, const float *input, const float **out,
                            camd_error *err) {
  int retain[1] = {ctx->req->output};
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  o.retain = retain;
  o.n_retain = 1;
  o.grad_to = camd_model_input(ctx->m, 0);
  int rc = camd__forward(ctx, 1, input, &o, err);
  if (rc) return rc;
  *out = camd__output_value(ctx, 1, err);
  return *out ? 0 : err ? err->status : CAMD_E_INTERNAL;
}

/* The model input's gradient after a backward, channels first (gin: in_count floats of scratch
 * for an NHWC input); NULL with err filled when there is none. */
static const float *input_grad(camd__cam_ctx *ctx, float *gin, camd_error *err) {
  const float *g = camd_session_grad(ctx->s, camd_model_input(ctx->m, 0), NULL);
  if (!g) {
    camd_error_set(err, CAMD_E_INTERNAL, "no gradient at the model input");
    return NULL;
  }
  if (ctx->in_layout != CAMD_LAYOUT_NHWC) return g;
  camd__cam_to_channels_first(g, 1, ctx->in_c, (size_t)ctx->in_h * (size_t)ctx->in_w, gin);
  return gin;
}

/* Grad-CAM maps first (guidedgradcam: its forward retains the layer), then the guided pass. */
int camd__guided_maps(camd__cam_ctx *ctx, const float *input, float *maps, camd_error *err) {
  const camd_cam_request *req = ctx->req;
  const bool with_cam = req->method == CAMD_CAM_GUIDEDGRADCAM;
  size_t hw = (size_t)ctx->hw, C = (size_t)ctx->channels;
  size_t plane = (size_t)ctx->in_h * (size_t)ctx->in_w, nk = (size_t)req->n_classes;
  float *seed = camd__ws_floats(ctx->w, (size_t)ctx->n_out);
  float *cams = camd__ws_floats(ctx->w, with_cam ? nk * hw : 1);
  float *up = camd__ws_floats(ctx->w, plane);
  float *gin = camd__ws_floats(ctx->w, ctx->in_count);
  double *weights = camd__ws_doubles(ctx->w, C);
  if (!seed || !cams || !up || !gin || !weights) return camd__nomem(err);
  int rc = camd__clean_forward(ctx, input, with_cam, NULL, err);
  if (rc) return rc;
  for (size_t k = 0; with_cam && k < nk; k++) {
    camd__target_seed(req, k, ctx->logits, ctx->n_out, seed);
    rc = camd__backward(ctx, seed, err);
    if (rc) return rc;
    const float *act = camd__layer_value(ctx, 1, err);
    const float *grad = camd__layer_grad(ctx, 1);
    if (!act || !grad) return camd_error_set(err, CAMD_E_INTERNAL, "no gradient at the layer");
    for (size_t c = 0; c < C; c++) {
      double acc = 0.0;
      for (size_t p = 0; p < hw; p++) acc += grad[c * hw + p];
      weights[c] = acc / (double)hw;
    }
    camd__weighted_sum(act, weights, (int)C, (int)hw, cams + k * hw);
  }
  const float *out = NULL;
  if ((rc = forward_to_input(ctx, input, &out, err))) return rc;
  for (size_t k = 0; k < nk; k++) {
    camd__target_seed(req, k, out, ctx->n_out, seed);
    uint64_t t0 = camd_now_ns();
    rc = camd_session_backward_guided(ctx->s, req->output, seed, err);
    ctx->ns_backward += camd_now_ns() - t0;
    if (rc) return rc;
    const float *g = input_grad(ctx, gin, err);
    if (!g) return err ? err->status : CAMD_E_INTERNAL;
    const int C_in = ctx->in_c;
    float *dst = maps + k * plane;
    for (size_t p = 0; p < plane; p++) {
      float m = 0.0f;
      for (int c = 0; c < C_in; c++) {
        float v = fabsf(g[(size_t)c * plane + p]);
        m = v > m ? v : m;
      }
      dst[p] = m;
    }
    if (with_cam) {
      float *cam = cams + k * hw;
      for (size_t p = 0; p < hw; p++) cam[p] = cam[p] > 0.0f ? cam[p] : 0.0f;
      camd__scale_unit(cam, hw);
      camd__bilinear(cam, ctx->lh, ctx->lw, up, ctx->in_h, ctx->in_w);
      for (size_t p = 0; p < plane; p++) dst[p] *= up[p];
    }
  }
  return 0;
}

/* FullGrad into maps[n_classes × in_h × in_w]: one forward to the input, then per class one
 * backward whose observer adds each biased layer's term (cam_fullgrad.c), and the input term. */
int camd__fullgrad_maps(camd__cam_ctx *ctx, const float *input, float *maps, camd_error *err) {
  const camd_cam_request *req = ctx->req;
  const size_t plane = (size_t)ctx->in_h * (size_t)ctx->in_w, nk = (size_t)req->n_classes;
  camd__fullgrad fg;
  int rc = camd__fullgrad_prepare(ctx, &fg, err);
  if (rc) return rc;
  float *seed = camd__ws_floats(ctx->w, (size_t)ctx->n_out);
  float *gin = camd__ws_floats(ctx->w, ctx->in_count);
  if (!seed || !gin) return camd__nomem(err);
  const float *out = NULL;
  if ((rc = forward_to_input(ctx, input, &out, err))) return rc;
  memcpy(ctx->logits, out, sizeof(float) * (size_t)ctx->n_out);
  if (ctx->select_pending) camd__select_classes(ctx);
  for (size_t k = 0; k < nk; k++) {
    fg.map = maps + k * plane;
    memset(fg.map, 0, sizeof(float) * plane);
    camd__target_seed(req, (int)k, ctx->logits, ctx->n_out, seed);
    uint64_t t0 = camd_now_ns();
    rc = camd_session_backward_observed(ctx->s, req->output, seed, false, camd__fullgrad_observe,
                                        &fg, err);
    ctx->ns_backward += camd_now_ns() - t0;
    if (rc) return rc;
    const float *g = input_grad(ctx, gin, err);
    if (!g) return err ? err->status : CAMD_E_INTERNAL;
    camd__fullgrad_input_term(&fg, input, g);
  }
  return 0;
}
