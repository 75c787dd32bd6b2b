/* CAM module internals: the workspace layout and the helpers shared by the method files. */
#ifndef CAMD_CAM_INTERNAL_H
#define CAMD_CAM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/cam.h"
#include "camd/engine.h"

/* The workspace is a chain of blocks used as a bump allocator: a compute call rewinds the
 * cursor to the first block and carves its buffers in order; a carve that does not fit moves to
 * the next block, allocating one only when the chain is exhausted. Once a worker has served a
 * request of a given size, the same request runs without allocating. */
typedef struct camd__ws_block camd__ws_block;
struct camd_cam_workspace {
  camd__ws_block *head, *cur;
  /* camd_cam_compute_layers' results, which outlive the per-layer computations: fused maps and
   * an upsampling plane (fused_cap floats), the classes and the logits (logits_cap floats). */
  float *fused, *fused_logits;
  size_t fused_cap, logits_cap;
  int fused_classes[1024];
};

/* Everything the methods need about one compute call, resolved once. */
typedef struct camd__cam_ctx {
  camd_session *s;
  const camd_model *m;
  camd_cam_workspace *w;
  const camd_cam_request *req;
  int channels;         /* C of the target layer */
  int hw;               /* h × w of the target layer */
  int lh, lw;           /* layer height, width */
  int n_out;            /* per-sample count of the score output */
  size_t in_count;      /* per-sample count of model input 0 */
  int in_c, in_h, in_w; /* model input geometry (4-D inputs; 0 otherwise) */
  int batch;            /* batch of the extra forwards (score, ablation, noise methods) */
  float *logits;        /* n_out floats: the output of the last "clean" forward */
  float *xbuf;          /* channels × hw scratch (weighted activations), carved once per call */
  float *pj_f;          /* projection scratch (carved on first use): xc, gram, two n × n */
  double *pj_d;         /* projection scratch: three vectors of max(channels, hw) */
  float *kp_f;          /* kernel projection scratch (carved on first use): three hw × hw */
  double *kp_d;         /* kernel projection scratch: three vectors of max(channels, hw) */

  /* Layouts (cam_layout.c): the methods work on channel-major copies. The model input's layout
   * and, for NHWC inputs, room for fwd_cap inputs written in it; the layer's layout and, for an
   * NHWC layer, channel-major copies of its activation and gradient (batch × C × hw). */
  camd_layout in_layout, layer_layout;
  int64_t token_prefix; /* TOKENS layer: class / register tokens before the grid */
  float *fwd_in;
  int fwd_cap;
  float *layer_nchw, *grad_nchw;

  uint64_t ns_forward, ns_backward; /* time spent in the engine */
  /* select_topk requests: req points at a copy whose classes are `selected`, chosen by the
   * first clean forward while select_pending is set. */
  int *selected;
  bool select_pending;
  int *finer_classes; /* finercam: room for req->finer_compare comparison classes */
} camd__cam_ctx;

/* Timed engine forward (accumulates into ctx->ns_forward) of `batch` channel-major inputs,
 * written in the model's layout first (cam_layout.c). */
int camd__forward(camd__cam_ctx *ctx, int batch, const float *input, const camd_forward_opts *opts,
                  camd_error *err);

/* ---- shared by the method files (cam.c) ---- */
/* Timed partial backward from the score output seeded with seed[n_out] (ctx->ns_backward). */
int camd__backward(camd__cam_ctx *ctx, const float *seed, camd_error *err);
/* Checks that the layer value of the last forward has the expected geometry; returns it
 * channel-major (batch × C × hw), NULL with err filled otherwise. */
const float *camd__layer_value(camd__cam_ctx *ctx, int batch, camd_error *err);
/* The gradient at the layer from the last backward, channel-major (batch × C × hw); NULL when
 * there is none. */
const float *camd__layer_grad(camd__cam_ctx *ctx, int batch);
/* The score output of the last forward (batch × n_out); NULL with err filled otherwise. */
const float *camd__output_value(camd__cam_ctx *ctx, int batch, camd_error *err);
/* select_topk: the req->n_classes best classes of ctx->logits into ctx->selected. */
void camd__select_classes(camd__cam_ctx *ctx);
/* Clean forward of one image: keeps layer + output (gradient to the layer when with_grad),
 * copies the output into ctx->logits, chooses pending classes; *act (when act is not NULL):
 * the layer's activation, channel-major. */
int camd__clean_forward(camd__cam_ctx *ctx, const float *input, bool with_grad, const float **act,
                        camd_error *err);
/* CAMD_E_NOMEM "out of memory in the CAM workspace". */
int camd__nomem(camd_error *err);
/* pytorch-grad-cam's scale_cam_image without the resize: m − min, then / (max + 1e-7). */
void camd__scale_unit(float *m, size_t n);

/* Grows *buf (malloc'd, *cap floats) to at least n floats; false when out of memory. */
bool camd__grow_floats(float **buf, size_t *cap, size_t n);

/* ---- several layers (cam.c): camd_cam_compute_layers and camd__polycam_layers ---- */
/* The name of value id for messages ("?" when it has none). */
const char *camd__value_name(const camd_model *m, int id);
/* camd_cam_compute of `one` at layer `layer` (read in `layout`, both stored into `one`) into
 * *lm; an error is prefixed with the layer's name. */
int camd__compute_layer(camd_session *s, camd_cam_workspace *w, const float *input,
                        camd_cam_request *one, int layer, camd_layout layout, camd_cam_maps *lm,
                        camd_error *err);
/* After the first layer: grows w->fused to plane × (lm->n_classes + extra_planes) floats, keeps
 * lm's logits and classes in the workspace and points `one` at those classes (the other layers
 * explain the classes the first one chose); fills out's logits, classes and counts and zeroes
 * its times. */
int camd__fused_first(camd_cam_workspace *w, const camd_cam_maps *lm, size_t plane,
                      size_t extra_planes, camd_cam_request *one, camd_cam_maps *out,
                      camd_error *err);
/* Adds one layer's times to out: its engine time, and its CAM time plus the fusion since t0. */
void camd__fused_add_times(camd_cam_maps *out, const camd_cam_maps *lm, uint64_t t0);

/* ---- Poly-CAM (cam_poly.c) ---- */
/* Per-class channel weights (n_classes × channels) of a Poly-CAM variant from masked forwards of
 * the clean input; `act` is a copy of the layer's activation, ctx->logits the clean output. */
int camd__polycam_weights(camd__cam_ctx *ctx, const float *input, const float *act, double *weights,
                          camd_error *err);
/* camd_cam_compute_layers for the Poly-CAM methods (the refinement, camd/cam.h). */
int camd__polycam_layers(camd_session *s, camd_cam_workspace *w, const float *input,
                         const camd_cam_request *req, const int *layers, const camd_layout *layouts,
                         int n_layers, camd_cam_maps *out, camd_error *err);

/* ---- input-gradient methods (cam_input_grad.c): maps[n_classes × in_h × in_w] ---- */
/* Guided backpropagation (and guided Grad-CAM): a forward to the layer for Grad-CAM
 * (guidedgradcam), then a forward to the input and one guided backward per class. */
int camd__guided_maps(camd__cam_ctx *ctx, const float *input, float *maps, camd_error *err);
/* FullGrad: one forward to the input, then per class one backward whose observer adds each
 * biased layer's term (cam_fullgrad.c), and the input term. */
int camd__fullgrad_maps(camd__cam_ctx *ctx, const float *input, float *maps, camd_error *err);

/* ---- layouts (cam_layout.c) ---- */
/* items × (hw × channels) → items × (channels × hw), and back. */
void camd__cam_to_channels_first(const float *src, int items, int channels, size_t hw, float *dst);
void camd__cam_to_channels_last(const float *src, int items, int channels, size_t hw, float *dst);
/* The target layer's layout: the graph's, or req->layer_layout when the graph does not decide
 * it; CAMD_E_INVALID naming layer_layout when neither does or they contradict each other. */
int camd__cam_layer_layout(const camd_model *m, const camd_cam_request *req, camd_layout *out,
                           camd_error *err);
/* `batch` items of the layer's activation or gradient as the engine holds them → channel-major
 * (data itself for an NCHW layer, else a copy into dst; a token map drops its prefix tokens). */
const float *camd__cam_layer_nchw(camd__cam_ctx *ctx, const float *data, int batch, float *dst);

/* Carves n floats / doubles (64-byte aligned) from the workspace; NULL when out of memory. */
float *camd__ws_floats(camd_cam_workspace *w, size_t n);
double *camd__ws_doubles(camd_cam_workspace *w, size_t n);
/* n items of `size` bytes each (64-byte aligned) from the workspace; NULL when out of memory. */
void *camd__ws_array(camd_cam_workspace *w, size_t n, size_t size);

/* d score / d output for class c of one item (n_out logits) into seed[n_out]. */
void camd__score_seed(camd_cam_score score, const float *logits, int n_out, int c, float *seed);
/* The score of class c for one item's outputs. */
double camd__score_value(camd_cam_score score, const float *logits, int n_out, int c);

/* Map k's target (req->targets[k], else class req->classes[k] under req->score): its d score /
 * d output into seed[n_out], and its score, for one item's outputs. */
void camd__target_seed(const camd_cam_request *req, int k, const float *out, int n_out,
                       float *seed);
double camd__target_value(const camd_cam_request *req, int k, const float *out, int n_out);

/* map[hw] = Σ_c weights[c] · act[c][hw] (double accumulation). */
void camd__weighted_sum(const float *act, const double *weights, int channels, int hw, float *map);
/* map[hw] = Σ_c x[c][hw]. */
void camd__channel_sum(const float *x, int channels, int hw, float *map);

/* First principal component of the (hw × channels) matrix whose column c is x[c][·]: the
 * mean-centred rows projected on the first right singular vector (pytorch-grad-cam's
 * get_2d_projection). Sign convention: the projection is made to correlate non-negatively with
 * Σ_c x[c][·] (the un-projected map); when that correlation is exactly 0, its entry of largest
 * magnitude is made positive. Scratch comes from the workspace (carved once per call). */
int camd__projection(camd__cam_ctx *ctx, const float *x, float *map, camd_error *err);

/* Most positions kpcacam accepts (its kernel matrix is positions × positions). */
#define CAMD_KPCA_MAX_POSITIONS 1024

/* Kernel PCA (RBF kernel, gamma = req->kpca_gamma, default 1 / channels) of the same (hw ×
 * channels) matrix, centred: the centred kernel matrix's top eigenvector scaled by the square root
 * of its eigenvalue (scikit-learn's KernelPCA(n_components=1).fit_transform); sign as
 * camd__projection. hw must be <= CAMD_KPCA_MAX_POSITIONS (checked by the caller). */
int camd__kernel_projection(camd__cam_ctx *ctx, const float *x, float *map, camd_error *err);

/* FullGrad (cam_fullgrad.c): the biased layers of the model and the map being summed. */
typedef struct camd__fullgrad {
  const camd__cam_ctx *ctx;
  int *slot;         /* per node: index of its biased layer, or -1 */
  size_t *offset;    /* per biased layer: first of its channels in bias */
  double *bias;      /* every biased layer's per-channel bias, in node order */
  int n_layers;      /* biased layers found */
  double *layer_sum; /* one layer's Σ_c S(|b_c g_c|) (largest layer plane) */
  float *plane, *up; /* the same as float; resized to the input's h × w */
  float *map;        /* in_h × in_w: the class's map being summed (set by the caller) */
  int observed;      /* biased layers whose term was non-zero in this backward */
} camd__fullgrad;

/* Finds the biased layers (Conv with a constant bias, BatchNormalization; 4-D outputs) and
 * carves the scratch from the workspace. */
int camd__fullgrad_prepare(camd__cam_ctx *ctx, camd__fullgrad *fg, camd_error *err);
/* camd_backward_observer: adds a biased layer's resized Σ_c S(|b_c · g_c|) to fg->map. */
void camd__fullgrad_observe(void *fg, int node, int value_id, const float *grad,
                            const camd_shape *shape);
/* Adds Σ_c S(|x_c · g_c|) of the channel-major input x and its gradient g to fg->map. */
void camd__fullgrad_input_term(const camd__fullgrad *fg, const float *x, const float *g);

/* `cam` (Zhou 2016): the class weights of the linear layer after global pooling of the layer
 * (read in `layout`). weights_out[k*channels + c] for class k of req->classes. Reports
 * CAMD_E_UNSUPPORTED with the reason when the head is not global pooling → (Flatten/Reshape) →
 * Gemm/MatMul(+Add) with constant weights. */
int camd__cam_head_weights(const camd_model *m, int layer, camd_layout layout, int output,
                           const int *classes, int n_classes, int channels, double *weights_out,
                           camd_error *err);

/* Bilinear resize of one h × w plane to oh × ow (align_corners = false, like
 * torch.nn.functional.interpolate(mode="bilinear")). */
void camd__bilinear(const float *src, int h, int w, float *dst, int oh, int ow);

/* Score-CAM family and Ablation-CAM: per-class channel weights (n_classes × channels) from
 * extra forwards. `act` is a copy of the target activation of the clean input. */
int camd__score_weights(camd__cam_ctx *ctx, const float *input, const float *act, double *weights,
                        camd_error *err);
int camd__ablation_weights(camd__cam_ctx *ctx, const float *input, double *weights,
                           camd_error *err);

#endif
