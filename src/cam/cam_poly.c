/* Poly-CAM (Englebert, Cornu & De Vleeschouwer, ICPR 2022): masked-forward weights per layer and
 * the recursive high-resolution refinement over one layer per stage.
 *
 * Weights of channel k of a layer's activation A for a class score s (the request's score; the
 * paper scores with the softmax probability):
 *   Norm(A_k) = (A_k − min) / (max − min) at the layer's resolution (0 when max == min),
 *   M_k = Up(Norm(A_k)) bilinear (align_corners = false) to the input's h × w,
 *   polycam-plus       w_k = s(X ∘ M_k)                                  (PCAM+)
 *   polycam-minus      w_k = ReLU(s(X) − s(X ∘ (1 − M_k)))               (PCAM−)
 *   polycam-plusminus  w_k = ReLU(s(X ∘ M_k) + s(X) − s(X ∘ (1 − M_k)))  (PCAM±)
 * One masked forward per channel (two for PCAM±), batched by ctx->batch like Score-CAM. The
 * layer's map is Σ_k w_k A_k; the refinement over the layers (camd__polycam_layers) is described
 * in camd/cam.h.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cam/cam_internal.h"
#include "camd/core.h"

/* Norm(A_k) resized to the input into mask[in_h × in_w] (norm: scratch of hw floats). */
static void polycam_mask(const camd__cam_ctx *ctx, const float *act, int k, float *norm,
                         float *mask) {
  const float *a = act + (size_t)k * ctx->hw;
  float lo = a[0], hi = a[0];
  for (int p = 1; p < ctx->hw; p++) {
    lo = a[p] < lo ? a[p] : lo;
    hi = a[p] > hi ? a[p] : hi;
  }
  float range = hi - lo;
  for (int p = 0; p < ctx->hw; p++) norm[p] = range > 0.0f ? (a[p] - lo) / range : 0.0f;
  camd__bilinear(norm, ctx->lh, ctx->lw, mask, ctx->in_h, ctx->in_w);
}

int camd__polycam_weights(camd__cam_ctx *ctx, const float *input, const float *act, double *weights,
                          camd_error *err) {
  const camd_cam_request *req = ctx->req;
  const int C = ctx->channels, b = ctx->batch, nc = req->n_classes;
  const bool plus = req->method != CAMD_CAM_POLYCAM_MINUS;
  const bool minus = req->method != CAMD_CAM_POLYCAM_PLUS;
  const int per = plus && minus ? 2 : 1; /* masked inputs per channel */
  const size_t in_count = ctx->in_count, plane = (size_t)ctx->in_h * (size_t)ctx->in_w;
  float *batch_in = camd__ws_floats(ctx->w, (size_t)b * in_count);
  float *mask = camd__ws_floats(ctx->w, plane);
  float *norm = camd__ws_floats(ctx->w, (size_t)ctx->hw);
  double *base = camd__ws_doubles(ctx->w, (size_t)nc);
  if (!batch_in || !mask || !norm || !base) {
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory for %s's masked inputs",
                          camd_cam_method_name(req->method));
  }
  for (int t = 0; t < nc; t++) base[t] = camd__target_value(req, t, ctx->logits, ctx->n_out);
  /* weights[t × C + k] accumulates s(X ∘ M_k) (plus side) − s(X ∘ (1 − M_k)) (minus side). */
  for (int t = 0; t < nc; t++) {
    for (int k = 0; k < C; k++) weights[(size_t)t * C + k] = minus ? base[t] : 0.0;
  }
  int retain[1] = {req->output};
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  o.retain = retain;
  o.n_retain = 1;
  const long total = (long)C * per;
  int mask_of = -1;
  for (long j0 = 0; j0 < total; j0 += b) {
    int nb = total - j0 < b ? (int)(total - j0) : b;
    for (int i = 0; i < nb; i++) {
      int k = (int)((j0 + i) / per);
      bool inverse = minus && (!plus || (j0 + i) % per == 1);
      if (k != mask_of) {
        polycam_mask(ctx, act, k, norm, mask);
        mask_of = k;
      }
      float *dst = batch_in + (size_t)i * in_count;
      for (size_t e = 0; e < in_count; e++) {
        float mv = mask[e % plane];
        dst[e] = input[e] * (inverse ? 1.0f - mv : mv);
      }
    }
    int rc = camd__forward(ctx, nb, batch_in, &o, err);
    if (rc) return rc;
    const float *out = camd__output_value(ctx, nb, err);
    if (!out) return err ? err->status : CAMD_E_INTERNAL;
    for (int i = 0; i < nb; i++) {
      int k = (int)((j0 + i) / per);
      bool inverse = minus && (!plus || (j0 + i) % per == 1);
      for (int t = 0; t < nc; t++) {
        double s = camd__target_value(req, t, out + (size_t)i * ctx->n_out, ctx->n_out);
        weights[(size_t)t * C + k] += inverse ? -s : s;
      }
    }
  }
  if (minus) {
    for (size_t i = 0; i < (size_t)nc * (size_t)C; i++)
      weights[i] = weights[i] > 0.0 ? weights[i] : 0.0;
  }
  return 0;
}

/* ---- the refinement over the layers ---- */

/* One refinement step for one class: p (ph × pw, the coarser result) and m (h × w, this layer's
 * map, ReLU'd here) → out (h × w). scratch: 2 × h × w floats. */
static void refine(const float *p, int ph, int pw, float *m, int h, int w, float *scratch,
                   float *out) {
  size_t n = (size_t)h * (size_t)w;
  float *down = scratch, *local = scratch + n;
  for (size_t i = 0; i < n; i++) m[i] = m[i] > 0.0f ? m[i] : 0.0f;
  camd__bilinear(m, h, w, down, ph, pw);
  camd__bilinear(down, ph, pw, local, h, w);
  camd__bilinear(p, ph, pw, out, h, w);
  for (size_t i = 0; i < n; i++) {
    float l = local[i] > 1e-12f ? local[i] : 1e-12f;
    float v = m[i] / l * out[i];
    out[i] = v > 0.0f ? v : 0.0f;
  }
}

int camd__polycam_layers(camd_session *s, camd_cam_workspace *w, const float *input,
                         const camd_cam_request *req, const int *layers, const camd_layout *layouts,
                         int n_layers, camd_cam_maps *out, camd_error *err) {
  const camd_model *m = camd_session_model(s);
  int hs[CAMD_CAM_MAX_LAYERS] = {0}, ws[CAMD_CAM_MAX_LAYERS] = {0};
  camd_cam_request one = *req;
  for (int l = 0; l < n_layers; l++) {
    camd_value_info vi;
    int64_t c = 0, h = 0, wd = 0;
    camd_layout lay;
    one.layer = layers[l];
    one.layer_layout = layouts[l];
    if (camd_model_value_info(m, layers[l], &vi) != 0 || !camd_model_is_cam_layer(m, layers[l]))
      return camd_error_set(err, CAMD_E_INVALID,
                            "target layer %d is not a 4-D activation with spatial size > 1; pick "
                            "a convolutional feature map (see `camd inspect`)",
                            layers[l]);
    int rc = camd__cam_layer_layout(m, &one, &lay, err);
    if (rc) return camd_error_prefix(err, rc, "layer '%s': ", vi.name ? vi.name : "?");
    if (!camd_layout_geometry(&vi.shape, lay, &c, &h, &wd) || h < 1 || wd < 1 ||
        h * wd > ((int64_t)1 << 26))
      return camd_error_set(err, CAMD_E_INVALID, "layer '%s' cannot be read as %s",
                            vi.name ? vi.name : "?", camd_layout_name(lay));
    hs[l] = (int)h;
    ws[l] = (int)wd;
    if (l > 0 && (hs[l] > hs[l - 1] || ws[l] > ws[l - 1])) {
      return camd_error_set(err, CAMD_E_INVALID,
                            "%s refines from the deepest layer up: give its layers in forward "
                            "order, shallow (high resolution) first; layer '%s' (%d × %d) comes "
                            "after '%s' (%d × %d)",
                            camd_cam_method_name(req->method), vi.name ? vi.name : "?", hs[l],
                            ws[l], camd__value_name(m, layers[l - 1]), hs[l - 1], ws[l - 1]);
    }
  }
  const size_t plane0 = (size_t)hs[0] * (size_t)ws[0];
  int n_classes = 0;
  float *result = NULL, *scratch = NULL;
  for (int l = n_layers - 1; l >= 0; l--) {
    camd_cam_maps lm;
    int rc = camd__compute_layer(s, w, input, &one, layers[l], layouts[l], &lm, err);
    if (rc) return rc;
    uint64_t t0 = camd_now_ns();
    const size_t lplane = (size_t)lm.width * (size_t)lm.height;
    if (l == n_layers - 1) { /* the deepest layer chooses the classes */
      /* n_classes results at the finest plane, then the step's output and 2 scratch planes */
      rc = camd__fused_first(w, &lm, plane0, 3, &one, out, err);
      if (rc) return rc;
      n_classes = lm.n_classes;
      result = w->fused;
      scratch = w->fused + plane0 * (size_t)n_classes;
      for (int k = 0; k < n_classes; k++) {
        const float *src = lm.maps + (size_t)k * lplane;
        float *dst = result + (size_t)k * plane0;
        for (size_t i = 0; i < lplane; i++) dst[i] = src[i] > 0.0f ? src[i] : 0.0f;
      }
    } else {
      for (int k = 0; k < n_classes; k++) {
        float *res = result + (size_t)k * plane0, *step = scratch + 2 * plane0;
        refine(res, hs[l + 1], ws[l + 1], lm.maps + (size_t)k * lplane, hs[l], ws[l], scratch,
               step);
        memcpy(res, step, sizeof(float) * lplane);
      }
    }
    camd__fused_add_times(out, &lm, t0);
  }
  out->width = ws[0];
  out->height = hs[0];
  out->maps = result;
  return 0;
}

/* ---- default layers: the ends of the stages ---- */

int camd_cam_stage_layers(const camd_model *m, int last, int *ids, int max) {
  if (max < 1) return 0;
  ids[0] = last;
  camd_value_info li, ii;
  camd_layout lay = camd_model_value_layout(m, last);
  int64_t c, lh, lw, ih, iw;
  if ((lay != CAMD_LAYOUT_NCHW && lay != CAMD_LAYOUT_NHWC) ||
      camd_model_value_info(m, last, &li) != 0 ||
      !camd_layout_geometry(&li.shape, lay, &c, &lh, &lw) || camd_model_num_inputs(m) != 1 ||
      camd_model_value_info(m, camd_model_input(m, 0), &ii) != 0 || ii.shape.ndim != 4)
    return 1;
  camd_layout il = camd_model_value_layout(m, camd_model_input(m, 0)) == CAMD_LAYOUT_NHWC
                       ? CAMD_LAYOUT_NHWC
                       : CAMD_LAYOUT_NCHW;
  if (!camd_layout_geometry(&ii.shape, il, &c, &ih, &iw)) return 1;
  /* Walk back from `last`: a layer is kept when it is the last one (in graph order) of its size
   * and its size is strictly larger than that of the layer kept after it, in both axes or one
   * (the other equal), and smaller than the input's. */
  int n = 1;
  int64_t kh = lh, kw = lw;
  for (int v = last - 1; v >= 0 && n < max; v--) {
    camd_value_info vi;
    int64_t h, w;
    if (!camd_model_is_cam_layer(m, v) || camd_model_value_layout(m, v) != lay ||
        camd_model_value_info(m, v, &vi) != 0 || !vi.name || !vi.name[0] ||
        !camd_layout_geometry(&vi.shape, lay, &c, &h, &w))
      continue;
    if (h < kh || w < kw || (h == kh && w == kw)) continue; /* deeper or same stage */
    if (h >= ih && w >= iw) continue;                       /* the input's resolution */
    ids[n++] = v;
    kh = h;
    kw = w;
  }
  /* ids hold last, then shallower: reverse into forward order. */
  for (int i = 0; i < n / 2; i++) {
    int t = ids[i];
    ids[i] = ids[n - 1 - i];
    ids[n - 1 - i] = t;
  }
  return n;
}
