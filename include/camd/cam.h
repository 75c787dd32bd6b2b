/* camd CAM methods: class activation maps from an engine session (design.md §4).
 *
 * Every method works on one preprocessed image tensor and produces, for each requested target
 * class, a map at the target layer's spatial resolution (h × w of the layer activation). The
 * engine does the forward and partial backward; this module only combines activations,
 * gradients and extra forwards. It never allocates per request beyond a caller-sized workspace
 * owned by a camd_cam_workspace (one per worker), never prints, and uses no image code.
 *
 * Conventions (formulas as pytorch-grad-cam implements the papers; tests/cam checks each one
 * against PyTorch):
 *   - gradients are d score / d layer with score = logit, softmax probability or sigmoid of
 *     the class (req->score); one forward serves every class, one partial backward per class.
 *   - gradcam++: weights Σ ReLU(g)·g² / (2g² + ΣA·g³ + 1e-6) (0 where g == 0); xgradcam:
 *     Σ g·A / (ΣA + 1e-7).
 *   - eigen maps (eigencam, eigengradcam, eigen_smooth): projection of the mean-centred
 *     (h·w × C) matrix on its first right singular vector; the SVD's free sign is fixed so the
 *     map correlates non-negatively with the channel sum of the same matrix.
 *   - scorecam: channels upsampled bilinearly (align_corners = false) to the input size,
 *     min-max normalised ((m − min) / (max − min + 1e-8)), input × mask scored, weights =
 *     softmax over channels of the scores. sscam averages each channel's score over
 *     n_samples inputs x·M + ε_s (ε_s shared by all channels); iscam over x·(i/n)·M,
 *     i = 1..n; both then take the softmax like scorecam.
 *   - ablationcam: the channel is set to zero; weight (s − s_k) / s (s − s_k when s == 0).
 *     Costs ceil(C / batch) forwards of the graph before the layer: prefer a session with a
 *     large max batch, or a layer with few channels.
 *   - smoothgradcam++: mean of the Grad-CAM++ maps of input + ε_s, s < n_samples.
 *   - noise: ε = float(noise_std · N(0,1)) from camd_rng seeded with req->seed, drawn sample by
 *     sample, element by element (NCHW): the same request gives the same map.
 *   - finercam: Grad-CAM weights of the gradient of pytorch-grad-cam's FinerWeightedTarget
 *     (see finer_alpha below); needs score = logit (it compares raw logits).
 *   - shapleycam: weights = spatial mean of (g − ½·H·A), H the Hessian of the score with
 *     respect to the layer, H·A by a central finite difference of the gradient along the
 *     activation itself: (g(A·(1+ε)) − g(A·(1−ε))) / 2ε, ε = 1e-2 (two extra forwards of the
 *     graph with the layer scaled, one backward per class each). Autograd's H·A is 0 where the
 *     graph after the layer is piecewise linear (ReLU, pooling, linear): the difference agrees
 *     up to the ReLU kinks crossed between A·(1±ε).
 *   - kpcacam: kernel PCA of the (h·w × C) activation rows (centred), RBF kernel
 *     exp(−γ|xi − xj|²), γ = req->kpca_gamma or 1/C (scikit-learn's default), the double-centred
 * kernel matrix's top eigenvector α scaled by √λ (KernelPCA.fit_transform); sign as the eigen maps.
 * Layers of at most 1024 positions.
 *   - guidedbackprop: the gradient of the score at the model input with every Relu's backward
 *     passing only where its input and its incoming gradient are > 0 (pytorch-grad-cam's
 *     GuidedBackpropReLUModel: only Relu, not Clip/ReLU6), reduced to one plane as the maximum
 *     over channels of its absolute value (Simonyan 2014's saliency convention; pytorch-grad-cam
 *     returns the 3 channels and deprocesses them for display). guidedgradcam: that plane
 *     × the Grad-CAM map of the layer ReLU'd, scaled (m − min) / (max − min + 1e-7) and resized
 *     bilinearly to the input (pytorch-grad-cam's cam × gb). Both at the model input's h × w;
 *     they refuse aug_smooth and eigen_smooth.
 *   - fullgrad: Σ_c S(|x_c · ∂y/∂x_c|) + Σ_layers resize(Σ_c S(|b_c · ∂y/∂z_c|)) over every
 *     Conv with a bias (BatchNorm folded in at load: the folded bias at the BN's output) and every
 *     BatchNormalization left unfolded (its bias B − mean·scale/√(var + ε)), S(m) = (m − min) /
 *     (max − min + 1e-7) per channel plane, resize bilinear to the input (pytorch-grad-cam's
 *     FullGrad; cam_fullgrad.c says where the folded bias differs from it). One forward and one
 *     backward to the input per class, every biased layer's output gradient read during that
 *     backward (camd_session_backward_observed). `layer` is not used (only checked, as every
 *     request names one): FullGrad always uses every biased layer. At the input's h × w; refuses
 *     aug_smooth, eigen_smooth and layer lists.
 *   - aug_smooth: the raw maps of the 6 augmented inputs (horizontal flip or not × input
 *     multiplied by 0.9, 1, 1.1) are flipped back and averaged (before ReLU/normalisation, so
 *     "none" normalisation stays comparable across images).
 */
#ifndef CAMD_CAM_H
#define CAMD_CAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/engine.h"
#include "camd/status.h"

/* X(enum suffix, name as users type it, needs gradients, one-line description) */
#define CAMD_CAM_METHODS(X)                                                                       \
  X(CAM, "cam", false, "Zhou 2016: weights of the linear layer after global average pooling")     \
  X(GRADCAM, "gradcam", true, "Selvaraju 2017: channel weights = spatial mean of gradients")      \
  X(HIRESCAM, "hirescam", true, "activations × gradients elementwise, summed over channels")      \
  X(GRADCAM_ELEMENTWISE, "gradcam-elementwise", true,                                             \
    "ReLU(activations × gradients) elementwise, summed over channels")                            \
  X(GRADCAMPP, "gradcam++", true, "Chattopadhay 2018: second-order weighting of gradients")       \
  X(XGRADCAM, "xgradcam", true, "Fu 2020: gradients weighted by normalised activations")          \
  X(LAYERCAM, "layercam", true, "Jiang 2021: ReLU(gradients) × activations, per position")        \
  X(EIGENCAM, "eigencam", false, "first principal component of the activations (class-agnostic)") \
  X(EIGENGRADCAM, "eigengradcam", true, "first principal component of activations × gradients")   \
  X(SCORECAM, "scorecam", false, "Wang 2020: score of the input masked by each channel")          \
  X(ABLATIONCAM, "ablationcam", false, "Desai 2020: score drop when each channel is zeroed")      \
  X(SMOOTHGRADCAMPP, "smoothgradcam++", true, "Grad-CAM++ averaged over noisy inputs")            \
  X(SSCAM, "sscam", false, "Score-CAM with noise added to the masked inputs (smoothed)")          \
  X(ISCAM, "iscam", false, "Score-CAM with integrated (progressively scaled) masks")              \
  X(FINERCAM, "finercam", true,                                                                   \
    "Zhang 2025: Grad-CAM of the class score minus its most similar classes' scores")             \
  X(SHAPLEYCAM, "shapleycam", true,                                                               \
    "Cai 2024: Grad-CAM with weights gradient - 1/2 Hessian x activation (finite difference)")    \
  X(KPCACAM, "kpcacam", false,                                                                    \
    "Karmani 2024: first kernel (RBF) principal component of activations")                        \
  X(GUIDEDBACKPROP, "guidedbackprop", true,                                                       \
    "Springenberg 2015: guided-backpropagation gradient of the input (max |.| over channels)")    \
  X(GUIDEDGRADCAM, "guidedgradcam", true,                                                         \
    "Selvaraju 2017: guided backpropagation x Grad-CAM upsampled to the input")                   \
  X(FULLGRAD, "fullgrad", true,                                                                   \
    "Srinivas 2019: input x gradient plus every biased layer's bias x gradient (all layers)")     \
  X(POLYCAM_PLUS, "polycam-plus", false,                                                          \
    "Englebert 2022 PCAM+: high-resolution map refined over one layer per stage, weights = "      \
    "score of the input masked by each channel")                                                  \
  X(POLYCAM_MINUS, "polycam-minus", false,                                                        \
    "Englebert 2022 PCAM-: Poly-CAM, weights = score drop when each channel's region is masked "  \
    "out")                                                                                        \
  X(POLYCAM_PLUSMINUS, "polycam-plusminus", false,                                                \
    "Englebert 2022 PCAM+-: Poly-CAM, weights = PCAM+ and PCAM- combined (two forwards per "      \
    "channel)")

/* clang-format off */
typedef enum camd_cam_method {
#define CAMD__CAM_ENUM(e, name, grad, desc) CAMD_CAM_##e,
  CAMD_CAM_METHODS(CAMD__CAM_ENUM)
#undef CAMD__CAM_ENUM
  CAMD_CAM_METHOD_COUNT
} camd_cam_method;
/* clang-format on */

/* "gradcam" → CAMD_CAM_GRADCAM; CAMD_E_INVALID with the list of names otherwise. */
int camd_cam_method_parse(const char *name, camd_cam_method *out, camd_error *err);
const char *camd_cam_method_name(camd_cam_method m);
const char *camd_cam_method_description(camd_cam_method m);
bool camd_cam_method_needs_gradient(camd_cam_method m);

typedef enum camd_cam_score {
  CAMD_SCORE_LOGIT = 0,   /* the raw output (default) */
  CAMD_SCORE_SOFTMAX = 1, /* softmax probability of the class */
  CAMD_SCORE_SIGMOID = 2  /* sigmoid of the class logit (multi-label) */
} camd_cam_score;

/* What one map explains when it is not a class of the output (camd_cam_request.targets). */
typedef enum camd_cam_target_kind {
  CAMD_TARGET_CLASS = 0, /* output value `classes[k]` under req->score (the default) */
  /* Σ_i weights[i] · output[offset + i], i < count: a segmentation model's class plane times a
   * mask (pytorch-grad-cam's SemanticSegmentationTarget); d score / d output = the weights. */
  CAMD_TARGET_WEIGHTED,
  /* cos(output, weights) = output · w / max(|output| |w|, 1e-8) over all count = n_out values: an
   * embedding's similarity to a reference (pytorch-grad-cam's SimilarityToConceptTarget). */
  CAMD_TARGET_COSINE
} camd_cam_target_kind;

typedef struct camd_cam_target {
  camd_cam_target_kind kind;
  size_t offset, count;
  const float *weights; /* count values, borrowed (the caller keeps them alive for the call) */
} camd_cam_target;

typedef struct camd_cam_request {
  camd_cam_method method;
  int layer;          /* value id of the target layer (4-D activation) */
  int output;         /* value id of the score output (usually camd_model_output(m, 0)) */
  const int *classes; /* target class per map; NULL with n_classes 0 when select_topk is set */
  int n_classes;
  int select_topk; /* classes == NULL, n_classes == 0: explain the image's own top-K classes
                      (highest output first, ties: lower index first; NaN ranks last), chosen
                      from the same forward that computes the maps (one forward per image) */
  camd_cam_score score;
  /* NULL: every map explains its class (classes[k]). Else n_classes entries: map k explains
   * targets[k] (classes[k] is still reported); needs score LOGIT, explicit classes, and a
   * method other than `cam` (which reads class weights from the head). */
  const camd_cam_target *targets;
  bool aug_smooth;   /* average over {identity, horizontal flip} × intensity {0.9, 1, 1.1} */
  bool eigen_smooth; /* replace the weighted map by the first principal component of the
                        weighted activations (pytorch-grad-cam's eigen_smooth) */
  int n_samples;     /* noise methods: number of noisy samples */
  float noise_std;   /* noise methods: standard deviation of the Gaussian noise */
  uint64_t seed;     /* noise methods: same seed, same noise, same map */
  int max_batch;     /* extra forwards (score/ablation/noise) are batched by this many
                        (capped by the session's max batch) */
  /* finercam: the score is Σ_k p_k (z_c − alpha·z_k) / (Σ_k p_k + 1e-9) over the finer_compare
   * classes k ≠ c whose logits are nearest z_c (ties: lower index first), p = softmax of the
   * logits (differentiated too). Defaults alpha 1, 3 classes (pytorch-grad-cam's). */
  float finer_alpha;
  int finer_compare;
  /* kpcacam: γ of the RBF kernel exp(−γ|xi − xj|²); 0 = 1 / channels (scikit-learn's default).
   * Else within CAMD_KPCA_GAMMA_MIN..CAMD_KPCA_GAMMA_MAX. */
  float kpca_gamma;
  /* The layer's layout (NCHW / NHWC) when the graph does not decide it; UNKNOWN: the graph's
   * (camd_model_value_layout). Must agree with the graph's when both are known. */
  camd_layout layer_layout;
} camd_cam_request;

#define CAMD_KPCA_GAMMA_MIN 1e-9
#define CAMD_KPCA_GAMMA_MAX 1e6

/* Defaults: gradcam, layer/output -1 (caller sets them), logit score, no smoothing,
 * n_samples 8, noise_std 0.3, seed 0, max_batch 16. */
void camd_cam_request_init(camd_cam_request *r);

/* Per-worker workspace for the CAM methods (grows on first use of a size, then reused).
 * Owned by the caller; not thread-safe. */
typedef struct camd_cam_workspace camd_cam_workspace;
int camd_cam_workspace_create(camd_cam_workspace **out, camd_error *err);
void camd_cam_workspace_destroy(camd_cam_workspace *w);

/* Result geometry of camd_cam_compute. */
typedef struct camd_cam_maps {
  int width, height; /* layer resolution (the input's for the guided methods and fullgrad) */
  float *maps;       /* n_classes × height × width, raw (before ReLU and normalisation);
                        owned by the workspace, valid until its next use */
  float *logits;     /* the image's output values (count = n_outputs), owned by workspace */
  int n_outputs;
  const int *classes; /* the class of each map (req->classes, or the selected top K); owned by
                         the workspace */
  int n_classes;
  double ms_forward, ms_backward, ms_cam; /* time spent */
} camd_cam_maps;

/* Computes the maps for one image (`input`: one preprocessed tensor, per-sample size of model
 * input 0, in the model input's layout: NCHW or NHWC). Channels-last layers and inputs give the
 * same maps as their channel-first equivalents (the noise of the smoothing methods is drawn in
 * NCHW order). The forward is run here; several classes reuse one forward, and with select_topk
 * the classes are chosen from that forward's output (no separate prediction forward). The session
 * must have max batch >= the request's max_batch for the batched methods (score/ablation), else
 * they run with the session's max batch. `cam` refuses models where the layer does not feed a
 * global average pool followed by a linear layer, with a message that says why and suggests
 * gradcam (CAMD_E_UNSUPPORTED). Bad layer/output/class/options: CAMD_E_INVALID. */
int camd_cam_compute(camd_session *s, camd_cam_workspace *w, const float *input,
                     const camd_cam_request *req, camd_cam_maps *out, camd_error *err);

/* Most layers camd_cam_compute_layers fuses. */
#define CAMD_CAM_MAX_LAYERS 8

/* Multi-layer fusion (pytorch-grad-cam's BaseCAM with several target layers): the request's
 * method runs on each of layers[0..n_layers) (layouts[i]: that layer's layout, as
 * req->layer_layout; req->layer is ignored), each class's map is ReLU'd, scaled (m − min) /
 * (max − min + 1e-7), resized bilinearly (align_corners = false) to the model input's h × w,
 * the layers' maps averaged, and the average scaled the same way again. out->width/height are
 * then the input's, and out->maps hold the fused maps in [0, 1] (owned by the workspace).
 * Costs one camd_cam_compute per layer (the classes chosen by select_topk come from the first
 * layer's forward). n_layers == 1 is camd_cam_compute on that layer (maps at its resolution).
 * n_layers outside 1..CAMD_CAM_MAX_LAYERS, a layer given twice, or a model input that is not a
 * 4-D image (for n_layers > 1): CAMD_E_INVALID. */
int camd_cam_compute_layers(camd_session *s, camd_cam_workspace *w, const float *input,
                            const camd_cam_request *req, const int *layers,
                            const camd_layout *layouts, int n_layers, camd_cam_maps *out,
                            camd_error *err);

/* Poly-CAM (Englebert 2022; methods polycam-plus / -minus / -plusminus) through
 * camd_cam_compute_layers: layers[0..n_layers) are the refinement layers in forward order
 * (shallow, high resolution first; each layer's h and w at most the previous one's, else
 * CAMD_E_INVALID). Per layer l and class, M_l = ReLU(Σ_k w_k A_k) with the variant's weights
 * from masked forwards (the channel min-max normalised at the layer's resolution, then resized
 * bilinearly to the input: the mask); from the deepest layer up, P_L = M_L and
 *   P_l = ReLU(M_l / LNorm_l(M_l) · Up(P_{l+1})),
 * LNorm_l(M) = max(Up(Down(M)), 1e-12), Down / Up bilinear (align_corners = false) to layer
 * l+1's and back to layer l's h × w (the local mean of M over each coarse cell: for a factor-2
 * step Down is exactly 2 × 2 average pooling). out: P_0 at layers[0]'s resolution, raw
 * (non-negative, not normalised), owned by the workspace. camd_cam_compute with a Poly-CAM
 * method gives one layer's M_l (before the ReLU). */

/* Poly-CAM's default layers: the end of every stage of the model up to layer `last`: for each
 * spatial size (h × w) a layer of `last`'s layout takes between `last`'s and the input's (both
 * ends excluded for the input, included for `last`), the last such layer in graph order, kept
 * when its h and w are at least those of every later kept layer; the deepest `max` of them,
 * ending with `last`, in forward order into ids. Returns how many (>= 1; only `last` when its
 * layout is not NCHW / NHWC or the input is not a 4-D image). */
int camd_cam_stage_layers(const camd_model *m, int last, int *ids, int max);

/* Post-processing in place on one h × w map: optional ReLU, then normalisation ("minmax":
 * (x - min) / (max - min), all zeros when max == min; "none": unchanged). */
void camd_cam_postprocess(float *map, size_t count, bool relu, bool minmax);

/* Localisation-quality metrics for the benchmark (tests/quality): pointing game hit, box IoU. */
double camd_box_iou(double ax0, double ay0, double ax1, double ay1, double bx0, double by0,
                    double bx1, double by1);

#endif
