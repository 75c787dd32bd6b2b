/* Layouts in the CAM methods: every method computes on channel-major data (the image as
 * C × H × W, the layer as C × h·w); models that keep the image or the layer channels-last
 * (NHWC, as TensorFlow / Keras exports do) are read and fed through these helpers.
 *
 *   - the image: camd_cam_compute receives it in the model's layout and makes a channel-major
 *     copy once; camd__forward writes each batch back in the model's layout. So the noise of
 *     the smoothing methods, Score-CAM's masks and aug_smooth's flips are the same numbers, in
 *     the same order, whatever the model's layout (the maps match the NCHW export's).
 *   - the layer: its activation and gradient are copied channel-major after each forward /
 *     backward (layer_nchw / grad_nchw); Ablation-CAM zeroes a channel in place through the
 *     layout (cam_score.c).
 *   - token maps (layout TOKENS, vision transformers): [T, C] per item whose last h·w tokens are
 *     the grid; read like an NHWC layer after dropping the prefix (class / register) tokens, as
 *     pytorch-grad-cam's reshape_transform does. Gradients of the prefix tokens are not part of
 *     the map.
 */
#include <string.h>

#include "cam/cam_internal.h"
#include "camd/core.h"

void camd__cam_to_channels_first(const float *src, int items, int channels, size_t hw, float *dst) {
  size_t per = (size_t)channels * hw;
  for (int i = 0; i < items; i++) {
    const float *s = src + (size_t)i * per;
    float *d = dst + (size_t)i * per;
    for (size_t p = 0; p < hw; p++) {
      for (int c = 0; c < channels; c++) d[(size_t)c * hw + p] = s[p * (size_t)channels + c];
    }
  }
}

void camd__cam_to_channels_last(const float *src, int items, int channels, size_t hw, float *dst) {
  size_t per = (size_t)channels * hw;
  for (int i = 0; i < items; i++) {
    const float *s = src + (size_t)i * per;
    float *d = dst + (size_t)i * per;
    for (int c = 0; c < channels; c++) {
      for (size_t p = 0; p < hw; p++) d[p * (size_t)channels + c] = s[(size_t)c * hw + p];
    }
  }
}

int camd__cam_layer_layout(const camd_model *m, const camd_cam_request *req, camd_layout *out,
                           camd_error *err) {
  camd_layout graph = camd_model_value_layout(m, req->layer);
  camd_layout want = req->layer_layout;
  camd_value_info li;
  camd_model_value_info(m, req->layer, &li);
  if (want != CAMD_LAYOUT_UNKNOWN && want != CAMD_LAYOUT_NCHW && want != CAMD_LAYOUT_NHWC &&
      want != CAMD_LAYOUT_TOKENS) {
    return camd_error_set(err, CAMD_E_INVALID, "unknown layer layout %d", (int)want);
  }
  if (graph != CAMD_LAYOUT_UNKNOWN && want != CAMD_LAYOUT_UNKNOWN && graph != want) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "layer '%s' is %s in the model's graph, but layer_layout says %s; "
                          "remove layer_layout (camd reads the graph's layout)",
                          li.name, camd_layout_name(graph), camd_layout_name(want));
  }
  *out = graph != CAMD_LAYOUT_UNKNOWN ? graph : want;
  if (*out == CAMD_LAYOUT_UNKNOWN) {
    char shp[96];
    camd_shape_format(&li.shape, shp, sizeof(shp));
    return camd_error_set(err, CAMD_E_INVALID,
                          "layer '%s' %s: the graph does not tell whether its channels are on "
                          "axis 1 (NCHW) or axis 3 (NHWC); set layer_layout to \"NCHW\" or "
                          "\"NHWC\"",
                          li.name, shp);
  }
  return 0;
}

/* The batch of channel-major inputs in the model's layout (the session reads it). */
int camd__forward(camd__cam_ctx *ctx, int batch, const float *input, const camd_forward_opts *opts,
                  camd_error *err) {
  if (ctx->in_layout == CAMD_LAYOUT_NHWC) {
    int items = opts && opts->shared_input ? 1 : batch;
    if (items > ctx->fwd_cap) {
      return camd_error_set(err, CAMD_E_INTERNAL, "CAM forward of %d items, room for %d", items,
                            ctx->fwd_cap);
    }
    camd__cam_to_channels_last(input, items, ctx->in_c, (size_t)ctx->in_h * (size_t)ctx->in_w,
                               ctx->fwd_in);
    input = ctx->fwd_in;
  }
  uint64_t t0 = camd_now_ns();
  int rc = camd_session_forward(ctx->s, batch, input, opts, err);
  ctx->ns_forward += camd_now_ns() - t0;
  return rc;
}

const float *camd__cam_layer_nchw(camd__cam_ctx *ctx, const float *data, int batch, float *dst) {
  if (ctx->layer_layout == CAMD_LAYOUT_TOKENS) {
    const size_t hw = (size_t)ctx->hw, pre = (size_t)ctx->token_prefix, c = (size_t)ctx->channels;
    for (int i = 0; i < batch; i++) {
      camd__cam_to_channels_first(data + (size_t)i * (pre + hw) * c + pre * c, 1, ctx->channels, hw,
                                  dst + (size_t)i * c * hw);
    }
    return dst;
  }
  if (ctx->layer_layout != CAMD_LAYOUT_NHWC) return data;
  camd__cam_to_channels_first(data, batch, ctx->channels, (size_t)ctx->hw, dst);
  return dst;
}
