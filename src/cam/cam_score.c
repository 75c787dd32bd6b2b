/* Channel weights from extra forwards: Score-CAM, SS-CAM, IS-CAM and Ablation-CAM.
 *
 * Score-CAM (Wang 2020, as pytorch-grad-cam computes it): each channel A_k of the target
 * activation is upsampled bilinearly to the input size, min-max normalised to a mask M_k
 * ((M - min) / (max - min + 1e-8)), and the input masked by it is scored; the class weights
 * are the softmax over channels of those scores. Variants, same softmax:
 *   sscam  score_k = mean over s of score(x ∘ M_k + ε_s), ε_s ~ N(0, noise_std²) per element,
 *          s = 0..n_samples-1; ε_s is the same for every channel: camd_rng seeded with
 *          req->seed, drawn sample by sample, element by element in NCHW order.
 *   iscam  score_k = mean over i = 1..n_samples of score(x ∘ (i / n_samples) M_k).
 * Masked inputs are scored in batches of ctx->batch. Channels whose activation plane repeats
 * another's bit for bit (dead channels: all zero) have the same mask, masked inputs and scores
 * (a forward does not depend on its batch or batch position), so each distinct plane is scored
 * once and its scores copied: exact, and on trained networks a real share of a deep layer's
 * channels.
 *
 * Ablation-CAM (Desai 2020): channel k of the target activation is set to zero and the class
 * score s_k recomputed; weight = (s - s_k) / s with s the unablated score (s - s_k when s == 0).
 * The batch shares the input: the graph up to the layer runs once per batch (at batch 1) and a
 * forward hook zeroes a different channel in every batch item, so the cost is
 * ceil(C / batch) forwards of the graph before the layer plus C of the graph after it.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cam/cam_internal.h"
#include "camd/core.h"

void camd__bilinear(const float *src, int h, int w, float *dst, int oh, int ow) {
  float sy = (float)h / (float)oh, sx = (float)w / (float)ow;
  for (int y = 0; y < oh; y++) {
    float fy = sy * ((float)y + 0.5f) - 0.5f;
    if (fy < 0.0f) fy = 0.0f;
    int y0 = (int)fy;
    int y1 = y0 < h - 1 ? y0 + 1 : y0;
    float ly = fy - (float)y0;
    for (int x = 0; x < ow; x++) {
      float fx = sx * ((float)x + 0.5f) - 0.5f;
      if (fx < 0.0f) fx = 0.0f;
      int x0 = (int)fx;
      int x1 = x0 < w - 1 ? x0 + 1 : x0;
      float lx = fx - (float)x0;
      const float *r0 = src + (size_t)y0 * w, *r1 = src + (size_t)y1 * w;
      dst[(size_t)y * ow + x] = (1.0f - ly) * ((1.0f - lx) * r0[x0] + lx * r0[x1]) +
                                ly * ((1.0f - lx) * r1[x0] + lx * r1[x1]);
    }
  }
}

/* Mask of channel k at input resolution into mask[in_h × in_w]. */
static void channel_mask(const camd__cam_ctx *ctx, const float *act, int k, float *mask) {
  size_t n = (size_t)ctx->in_h * (size_t)ctx->in_w;
  camd__bilinear(act + (size_t)k * ctx->hw, ctx->lh, ctx->lw, mask, ctx->in_h, ctx->in_w);
  float lo = mask[0], hi = mask[0];
  for (size_t i = 1; i < n; i++) {
    lo = mask[i] < lo ? mask[i] : lo;
    hi = mask[i] > hi ? mask[i] : hi;
  }
  float range = hi - lo + 1e-8f;
  for (size_t i = 0; i < n; i++) mask[i] = (mask[i] - lo) / range;
}

/* first[k] = the first channel whose plane act[c][hw] equals channel k's bit for bit (k when
 * none); returns the number of distinct planes. An FNV-1a hash over the planes' 32-bit words
 * first, memcmp on equal hashes. */
static int distinct_planes(const float *act, int C, size_t hw, uint64_t *hash, int *first) {
  int n = 0;
  for (int k = 0; k < C; k++) {
    const float *plane = act + (size_t)k * hw;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < hw; i++) {
      uint32_t bits;
      memcpy(&bits, plane + i, sizeof(bits));
      h = (h ^ bits) * 1099511628211ull;
    }
    hash[k] = h;
    first[k] = k;
    for (int j = 0; j < k; j++) {
      if (first[j] == j && hash[j] == h &&
          !memcmp(act + (size_t)j * hw, act + (size_t)k * hw, hw * sizeof(float))) {
        first[k] = j;
        break;
      }
    }
    n += first[k] == k;
  }
  return n;
}

/* scores[c × n_classes] → weights[k × C + c] = softmax over c of scores[c][k]. */
static void softmax_channels(const double *scores, int C, int n_classes, double *weights) {
  for (int k = 0; k < n_classes; k++) {
    double mx = scores[k];
    for (int c = 1; c < C; c++) {
      double s = scores[(size_t)c * n_classes + k];
      mx = s > mx ? s : mx;
    }
    double sum = 0.0;
    for (int c = 0; c < C; c++) sum += exp(scores[(size_t)c * n_classes + k] - mx);
    for (int c = 0; c < C; c++) {
      weights[(size_t)k * C + c] = exp(scores[(size_t)c * n_classes + k] - mx) / sum;
    }
  }
}

int camd__score_weights(camd__cam_ctx *ctx, const float *input, const float *act, double *weights,
                        camd_error *err) {
  const camd_cam_request *req = ctx->req;
  int C = ctx->channels, b = ctx->batch;
  int reps = req->method == CAMD_CAM_SCORECAM ? 1 : req->n_samples;
  size_t in_count = ctx->in_count, plane = (size_t)ctx->in_h * (size_t)ctx->in_w;
  float *batch_in = camd__ws_floats(ctx->w, (size_t)b * in_count);
  float *mask = camd__ws_floats(ctx->w, plane);
  double *scores = camd__ws_doubles(ctx->w, (size_t)C * (size_t)req->n_classes);
  if (!batch_in || !mask || !scores) {
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory for %s's masked inputs",
                          camd_cam_method_name(req->method));
  }
  /* SS-CAM noise: the stream restarts at every channel's first sample, so sample r gets the
   * same noise for every channel without storing n_samples input-sized tensors. */
  camd_rng rng;
  camd_rng_seed(&rng, req->seed);
  memset(scores, 0, sizeof(double) * (size_t)C * (size_t)req->n_classes);
  int retain[1] = {req->output};
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  o.retain = retain;
  o.n_retain = 1;
  /* The channels to score: one per distinct activation plane (`todo`, in channel order). */
  uint64_t *hash = camd__ws_array(ctx->w, (size_t)C, sizeof(uint64_t));
  int *first = camd__ws_array(ctx->w, (size_t)C, sizeof(int));
  int *todo = camd__ws_array(ctx->w, (size_t)C, sizeof(int));
  if (!hash || !first || !todo) {
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory for %s's channel list",
                          camd_cam_method_name(req->method));
  }
  const int distinct = distinct_planes(act, C, (size_t)ctx->hw, hash, first);
  for (int k = 0, n = 0; k < C; k++) {
    if (first[k] == k) todo[n++] = k;
  }
  long total = (long)distinct * reps;
  int mask_of = -1, rc = 0;
  for (long j0 = 0; j0 < total && !rc; j0 += b) {
    int nb = total - j0 < b ? (int)(total - j0) : b;
    for (int i = 0; i < nb; i++) {
      int k = todo[(j0 + i) / reps], r = (int)((j0 + i) % reps);
      if (k != mask_of) {
        channel_mask(ctx, act, k, mask);
        mask_of = k;
      }
      float scale = req->method == CAMD_CAM_ISCAM ? (float)(r + 1) / (float)reps : 1.0f;
      float *dst = batch_in + (size_t)i * in_count;
      for (size_t e = 0; e < in_count; e++) {
        float mv = mask[e % plane];
        dst[e] = req->method == CAMD_CAM_ISCAM ? input[e] * (scale * mv) : input[e] * mv;
      }
      if (req->method == CAMD_CAM_SSCAM) {
        if (r == 0) camd_rng_seed(&rng, req->seed);
        for (size_t e = 0; e < in_count; e++) {
          dst[e] += (float)(req->noise_std * camd_rng_normal(&rng));
        }
      }
    }
    if ((rc = camd__forward(ctx, nb, batch_in, &o, err))) break;
    camd_shape sh;
    const float *out = camd_session_value(ctx->s, req->output, &sh);
    if (!out) {
      rc = camd_error_set(err, CAMD_E_INTERNAL, "the score output was not kept");
      break;
    }
    for (int i = 0; i < nb; i++) {
      int k = todo[(j0 + i) / reps];
      for (int t = 0; t < req->n_classes; t++) {
        scores[(size_t)k * req->n_classes + t] +=
            camd__target_value(req, t, out + (size_t)i * ctx->n_out, ctx->n_out) / reps;
      }
    }
  }
  for (int k = 0; k < C && !rc; k++) { /* repeated planes: their first channel's scores */
    if (first[k] != k) {
      memcpy(scores + (size_t)k * req->n_classes, scores + (size_t)first[k] * req->n_classes,
             sizeof(double) * (size_t)req->n_classes);
    }
  }
  if (rc) return rc;
  softmax_channels(scores, C, req->n_classes, weights);
  return 0;
}

typedef struct ablate_ctx {
  int first;    /* channel ablated in batch item 0 */
  int channels; /* C */
  size_t hw;
  bool nhwc;     /* the layer keeps its channels last */
  size_t prefix; /* token maps: class / register tokens before the grid (not ablated) */
} ablate_ctx;

static void ablate_hook(void *p, int value_id, float *data, const camd_shape *shape) {
  (void)value_id;
  const ablate_ctx *a = p;
  int64_t batch = shape->dims[0];
  for (int64_t i = 0; i < batch; i++) {
    int c = a->first + (int)i;
    if (c >= a->channels) break;
    float *item = data + (size_t)i * a->channels * (a->hw + a->prefix) + a->prefix * a->channels;
    if (a->nhwc) {
      for (size_t q = 0; q < a->hw; q++) item[q * a->channels + (size_t)c] = 0.0f;
    } else {
      memset(item + (size_t)c * a->hw, 0, sizeof(float) * a->hw);
    }
  }
}

int camd__ablation_weights(camd__cam_ctx *ctx, const float *input, double *weights,
                           camd_error *err) {
  const camd_cam_request *req = ctx->req;
  int C = ctx->channels, b = ctx->batch, nc = req->n_classes;
  double *base = camd__ws_doubles(ctx->w, (size_t)nc);
  if (!base) return camd_error_set(err, CAMD_E_NOMEM, "out of memory for ablation scores");
  for (int t = 0; t < nc; t++) {
    base[t] = camd__target_value(req, t, ctx->logits, ctx->n_out);
  }
  ablate_ctx a = {0, C, (size_t)ctx->hw, ctx->layer_layout != CAMD_LAYOUT_NCHW,
                  (size_t)ctx->token_prefix};
  int retain[1] = {req->output};
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  o.retain = retain;
  o.n_retain = 1;
  o.hook_value = req->layer;
  o.hook = ablate_hook;
  o.hook_ctx = &a;
  o.shared_input = true;
  for (int c0 = 0; c0 < C; c0 += b) {
    int nb = C - c0 < b ? C - c0 : b;
    a.first = c0;
    o.reuse_prefix = c0 > 0; /* same image: only the layer's producer and what follows re-run */
    int rc = camd__forward(ctx, nb, input, &o, err);
    if (rc) return rc;
    const float *out = camd_session_value(ctx->s, req->output, NULL);
    if (!out) return camd_error_set(err, CAMD_E_INTERNAL, "the score output was not kept");
    for (int i = 0; i < nb; i++) {
      for (int t = 0; t < nc; t++) {
        double s = camd__target_value(req, t, out + (size_t)i * ctx->n_out, ctx->n_out);
        double d = base[t] - s;
        weights[(size_t)t * C + c0 + i] = base[t] != 0.0 ? d / base[t] : d;
      }
    }
  }
  return 0;
}
