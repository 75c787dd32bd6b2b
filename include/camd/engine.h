/* camd engine: immutable shared models and per-worker sessions (forward, partial backward).
 *
 * A camd_model is an immutable graph of values and nodes, reference-counted and shared by all
 * threads without locks. A camd_session belongs to one thread at a time and owns every
 * activation, gradient and scratch buffer, and its own kernel threads; it is sized for a
 * maximum batch at creation and does not allocate while running once each kind of run (plan:
 * kept values, backward target, batch size rounded up to a power of two) has been used once.
 *
 * Batch convention: every non-constant value has the batch as its leading axis. Shapes
 * reported by the model are per-sample shapes (dims[0] == 1 for batched values); a run with
 * batch b has dims[0] == b. Models whose graph mixes the batch axis (e.g. a Reshape that
 * folds it) report camd_model_max_batch() == 1 and a session runs them one item at a time.
 */
#ifndef CAMD_ENGINE_H
#define CAMD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/core.h" /* camd_parallel */
#include "camd/status.h"

#define CAMD_MAX_DIMS 8

typedef struct camd_shape {
  int ndim;
  int64_t dims[CAMD_MAX_DIMS];
} camd_shape;

/* Number of elements (product of dims; 1 for a scalar). */
size_t camd_shape_count(const camd_shape *s);
bool camd_shape_equal(const camd_shape *a, const camd_shape *b);
/* "[1, 64, 56, 56]" into buf (always NUL-terminated). */
void camd_shape_format(const camd_shape *s, char *buf, size_t size);

typedef enum camd_dtype { CAMD_FLOAT32 = 1, CAMD_INT64 = 7 } camd_dtype;

/* Where a 4-D activation keeps its channels: [N, C, H, W] or [N, H, W, C] (channels-last, as
 * TensorFlow / Keras exports keep many values). TOKENS: a transformer's token sequence
 * [N, T, C] whose last h·w tokens are the patch grid in row-major order, after T - h·w prefix
 * tokens (class / register tokens, at most CAMD_TOKENS_MAX_PREFIX); read as the h × w map
 * (channels last). UNKNOWN: the graph does not decide it. */
typedef enum camd_layout {
  CAMD_LAYOUT_UNKNOWN = 0,
  CAMD_LAYOUT_NCHW = 1,
  CAMD_LAYOUT_NHWC = 2,
  CAMD_LAYOUT_TOKENS = 3
} camd_layout;
#define CAMD_TOKENS_MAX_PREFIX 8
/* "NCHW", "NHWC", "tokens" or "unknown". */
const char *camd_layout_name(camd_layout layout);
/* Channels, height and width of a shape read in `layout` (each pointer may be NULL): 4-D for
 * NCHW / NHWC; 3-D [N, T, C] for TOKENS, whose grid is the largest square h = w with
 * T - h·w <= CAMD_TOKENS_MAX_PREFIX (the loader marks a value TOKENS only when that square is
 * the patch grid of the model's patch-embedding convolution). False for other ranks, an
 * UNKNOWN layout, or a token count with no such grid. */
bool camd_layout_geometry(const camd_shape *s, camd_layout layout, int64_t *c, int64_t *h,
                          int64_t *w);
/* Prefix tokens (class / register) of a TOKENS shape: T - h·w; 0 for other layouts. */
int64_t camd_layout_token_prefix(const camd_shape *s, camd_layout layout);

typedef struct camd_model camd_model;
typedef struct camd_session camd_session;

/* What the engine knows about one value of the graph. Strings are owned by the model. */
typedef struct camd_value_info {
  const char *name;
  camd_shape shape; /* per-sample shape (dims[0] == 1 when batched) */
  camd_dtype dtype;
  bool is_constant;          /* initializer / folded constant */
  bool is_input;             /* graph input */
  bool is_output;            /* graph output */
  bool batched;              /* leading axis is the batch */
  int producer;              /* node index, -1 for inputs and constants */
  const char *producer_op;   /* op type of the producer ("Conv"), NULL if none */
  const char *producer_name; /* node name of the producer, NULL if none */
} camd_value_info;

/* ---- model (immutable, shared, reference-counted; thread-safe) ---- */
/* Adds a reference; returns m. */
camd_model *camd_model_retain(camd_model *m);
/* Drops a reference; the last one frees the model. NULL is ignored. */
void camd_model_release(camd_model *m);

int camd_model_num_values(const camd_model *m);
/* Fills info for value id (0 <= id < num_values); returns 0 or CAMD_E_INVALID. */
int camd_model_value_info(const camd_model *m, int id, camd_value_info *info);
/* Value id by name (aliases such as Identity outputs included), or -1. */
int camd_model_find_value(const camd_model *m, const char *name);
int camd_model_num_inputs(const camd_model *m);   /* non-constant graph inputs */
int camd_model_input(const camd_model *m, int i); /* value id */
int camd_model_num_outputs(const camd_model *m);
int camd_model_output(const camd_model *m, int i); /* value id */
int camd_model_num_nodes(const camd_model *m);
/* Op type and node name of node i (owned by the model). */
const char *camd_model_node_op(const camd_model *m, int i);
const char *camd_model_node_name(const camd_model *m, int i);
/* Inputs and outputs of node i as value ids (-1 = absent optional input); the arrays are
 * owned by the model. Returns 0 or CAMD_E_INVALID for a bad node index. */
int camd_model_node_io(const camd_model *m, int i, const int **in, int *n_in, const int **out,
                       int *n_out);
/* Attribute `name` of node i (the struct is defined in camd/graph.h; owned by the model), or
 * NULL when the node has no such attribute. */
struct camd_attr;
const struct camd_attr *camd_model_node_attr(const camd_model *m, int i, const char *name);
/* Data of constant value id (float32 or int64 as camd_value_info.dtype says; owned by the
 * model), or NULL when the value is not a constant. */
const void *camd_model_constant_data(const camd_model *m, int id);
/* Number of float parameters held by constants (weights). */
size_t camd_model_param_count(const camd_model *m);
/* 1 when the graph cannot run several batch items at once, else the engine's limit (large). */
int camd_model_max_batch(const camd_model *m);
/* Layout of value id (a 4-D activation): the input layout the loader declared, NCHW after
 * ops that define it (Conv, pools, BatchNormalization), permuted by Transpose, kept by
 * elementwise and data-movement ops (an undecided input does not veto a decided one: Swin's
 * residual Add), UNKNOWN after Reshape-like ops in a graph that has channels-last values (a
 * graph with none is NCHW throughout) unless a reader decides it (the input of a Conv / pool is
 * NCHW, of a decided Transpose its permutation back, of a layout-keeping op with its decided
 * output's shape that layout); TOKENS for the token sequences of a vision transformer
 * (layout.c). UNKNOWN for other values. */
camd_layout camd_model_value_layout(const camd_model *m, int id);
/* True when value id is a 4-D batched float activation with spatial size > 1 in its layout
 * (any 4-D activation when its layout is UNKNOWN: the caller must then be told the layout), or
 * a token sequence of layout TOKENS; never an attention internal (below). */
bool camd_model_is_cam_layer(const camd_model *m, int id);
/* True when value id is inside an attention block: an operand or result of an attention
 * product (a MatMul of two activations), or an undecided value connected to one through ops
 * that keep positions (Transpose, Gather, Softmax, elementwise), e.g. Swin's queries, keys,
 * values and attention weights [batch x windows, heads, tokens, dim]. Such a value is not a
 * map; camd_model_check_target refuses it naming the suggested layer. */
bool camd_model_is_attention_value(const camd_model *m, int id);
/* Suggested default CAM layer: the last 4-D activation of known layout with spatial size > 1
 * on the path to output 0 (the one before global pooling); in a transformer, the last token map
 * produced before the last attention product (a MatMul of two activations, which mixes the
 * tokens: later token maps only receive gradient at the class token). In a transformer with 4-D
 * maps (Swin: its last attention product after its last Conv) the same rule picks the last map
 * before the last attention product (the last block's norm1, as pytorch-grad-cam's Swin
 * example), a Pad that pads nothing standing for its input. Returns a value id or -1 if the
 * model has none. */
int camd_model_suggest_cam_layer(const camd_model *m);
/* What a value's numbers are, as class scores. */
typedef enum camd_score_activation {
  CAMD_SCORES_RAW = 0,        /* no activation found: the values are the logits themselves */
  CAMD_SCORES_SOFTMAX = 1,    /* class probabilities: a Softmax over all of an item's values */
  CAMD_SCORES_SIGMOID = 2,    /* independent (multi-label) probabilities: an elementwise Sigmoid */
  CAMD_SCORES_LOG_SOFTMAX = 3 /* log-probabilities: a LogSoftmax over all of an item's values */
} camd_score_activation;
/* Whether value id (usually output 0) is the result of an output activation: a Softmax or
 * LogSoftmax over all of an item's values, or an elementwise Sigmoid, followed only by views that
 * keep the values' order (Identity, Reshape, Flatten, Squeeze, Unsqueeze, Dropout). Returns the
 * activation and, in *logits (optional), the value fed into it (an activation with the same
 * per-item count and order: the logits); CAMD_SCORES_RAW and *logits = id otherwise. */
camd_score_activation camd_model_score_activation(const camd_model *m, int id, int *logits);
/* "softmax", "sigmoid", "log_softmax" or "none". */
const char *camd_score_activation_name(camd_score_activation a);
/* Reports why a value cannot be a CAM/backward target ("layer 'x' not found; layers are: ...")
 * Returns 0 if usable. */
int camd_model_check_target(const camd_model *m, const char *name, int *id, camd_error *err);

/* ---- session (per worker; not thread-safe; one owner thread at a time) ---- */
int camd_session_create(camd_model *m, int max_batch, camd_session **out, camd_error *err);
void camd_session_destroy(camd_session *s);
int camd_session_max_batch(const camd_session *s);
const camd_model *camd_session_model(const camd_session *s);

/* Called after value `value_id` was computed during a forward; may modify `data` in place
 * (shape has the run's batch). Used by ablation-style methods. */
typedef void (*camd_forward_hook)(void *ctx, int value_id, float *data, const camd_shape *shape);

typedef struct camd_forward_opts {
  const int *retain; /* value ids readable after forward (camd_session_value) */
  int n_retain;
  int grad_to;    /* value id backward will reach, or -1 for forward only */
  int hook_value; /* value id to call hook on, or -1 */
  camd_forward_hook hook;
  void *hook_ctx;
  /* Shared-input runs (ablation-style methods): every batch item has the same input (only
   * item 0 of `input` is read); nodes that do not depend on hook_value run once at batch 1 and
   * their results are replicated, the hook makes the items differ, and only the rest of the
   * graph runs at the full batch. Needs hook_value >= 0. */
  bool shared_input;
  /* Shared-input runs only: the caller promises the input is the same as in the previous
   * shared-input run with the same options (and this batch is not larger). The nodes before
   * the hook are then not run again: their results, kept from that run, are reused, and only
   * the hook value's producer and the rest of the graph run ("re-run from the layer"). */
  bool reuse_prefix;
} camd_forward_opts;
/* Initialise opts to "nothing retained, no backward, no hook". */
void camd_forward_opts_init(camd_forward_opts *o);

/* Runs the graph on `batch` items. `input` holds batch × per-sample count floats of model input
 * 0 in NCHW order (copied). Graph outputs are always readable afterwards. Returns 0 or a
 * negative status (CAMD_E_INVALID for a batch outside [1, max_batch]). */
int camd_session_forward(camd_session *s, int batch, const float *input,
                         const camd_forward_opts *opts, camd_error *err);
/* Same for models with several inputs: inputs[i] feeds model input i (camd_model_input). */
int camd_session_forward_multi(camd_session *s, int batch, const float *const *inputs,
                               const camd_forward_opts *opts, camd_error *err);
/* Data of a value computed by the last forward (retained, output, or constant); NULL if it
 * was not kept. `shape` (optional) receives the shape with the run's batch. Valid until the
 * next forward. */
const float *camd_session_value(camd_session *s, int value_id, camd_shape *shape);

/* Back-propagates from graph value `from` (usually output 0) seeded with `seed` (batch ×
 * per-sample count floats: d score / d from) down to opts.grad_to of the last forward.
 * Can be called several times after one forward (several targets). */
int camd_session_backward(camd_session *s, int from, const float *seed, camd_error *err);
/* The same with guided backpropagation (Springenberg 2015): every Relu passes the gradient only
 * where its input and the incoming gradient are both > 0 (other ops as in the plain backward).
 * With opts.grad_to = the model input it gives the guided gradient of the input. */
int camd_session_backward_guided(camd_session *s, int from, const float *seed, camd_error *err);
/* Backward observer: during a backward, called for every node on the backward path once per
 * output value a gradient reached, just before that node back-propagates it. `grad` is then the
 * complete d seed / d value_id (every reader of the value has run), in the value's own layout
 * with `shape` (the run's batch). The buffer is recycled right after the node: read or copy it
 * in the call. `node` is the node index (camd_model_node_op / _io). The observer must not call
 * the session. */
typedef void (*camd_backward_observer)(void *ctx, int node, int value_id, const float *grad,
                                       const camd_shape *shape);
/* camd_session_backward (guided: camd_session_backward_guided) that calls `observer` as above.
 * With opts.grad_to = the model input every node between the input and `from` is observed
 * (FullGrad reads each biased layer's output gradient this way). The plain backwards do not
 * pay for it: one branch per node. */
int camd_session_backward_observed(camd_session *s, int from, const float *seed, bool guided,
                                   camd_backward_observer observer, void *observer_ctx,
                                   camd_error *err);
/* Gradient of the last backward at value_id (the grad_to value, or any value on the path);
 * NULL if not available. Valid until the next forward/backward. */
const float *camd_session_grad(camd_session *s, int value_id, camd_shape *shape);

/* Bytes the session has allocated (activations, gradients, scratch, per-value tables). */
size_t camd_session_bytes(const camd_session *s);

/* Threads a session's kernels use (its own pool: the calling thread + threads - 1 helpers).
 * A new session takes camd_engine_default_threads(). Results do not depend on the thread count:
 * kernels split their outputs, never a sum. Returns 0, CAMD_E_INVALID (outside 1..64) or
 * CAMD_E_NOMEM; on failure the session keeps its previous threads. */
int camd_session_set_threads(camd_session *s, int threads, camd_error *err);
int camd_session_threads(const camd_session *s);
/* The session's threads lent as a parallel loop for work outside the graph (explain's PNG
 * encoding). Valid while the session lives and keeps its thread count; run it only from the
 * session's owner thread, between forwards. */
camd_parallel camd_session_parallel(camd_session *s);
/* Batch items the session has forwarded since it was created (a forward of batch 4 counts 4):
 * what an explanation cost in forwards (Score-CAM skips channels whose activation repeats). */
uint64_t camd_session_forward_items(const camd_session *s);
/* Convolutions the last forward ran through oneDNN on channel-blocked tensors (0 when camd was
 * built without oneDNN, CAMD_ONEDNN=0 or the CPU lacks AVX2; see src/engine/dnnl.h). */
int camd_session_onednn_convs(const camd_session *s);
/* Of those, the convolutions that ran oneDNN's Winograd kernels (3x3 stride 1, AVX-512 only;
 * CAMD_WINOGRAD=0 turns them off). */
int camd_session_winograd_convs(const camd_session *s);
/* Per-node forward timing (for `camd bench --profile`): when on, every forward adds each
 * node's wall time to a table indexed by node (camd_model_num_nodes entries, nanoseconds; owned
 * by the session, valid until profiling is turned off). Turning it on again zeroes the table. */
int camd_session_set_profiling(camd_session *s, bool on, camd_error *err);
const uint64_t *camd_session_profile(const camd_session *s);
/* Default thread count of new sessions: set by camd_blas_set_threads (threads per worker),
 * else the environment's CAMD_THREADS, else the number of online cores (at most 64). */
int camd_engine_default_threads(void);

/* ---- matrix multiply: every GEMM in camd goes through this one function ----
 * C[m×n] = alpha * op(A)[m×k] · op(B)[k×n] + beta * C, row-major, lda/ldb/ldc as in BLAS. */
void camd_gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
               int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* Threads per worker: the default thread count of sessions created from now on (see
 * camd_session_set_threads). The BLAS library itself always runs single-threaded inside the
 * engine's own threads. (Kept under this name: `--blas-threads` / `blas_threads` set it.) */
void camd_blas_set_threads(int n);
int camd_blas_get_threads(void);
/* OpenBLAS 0.3.21 picks its kernels from the CPU model when the library loads and falls back
 * to slow SSE3 kernels on CPUs it does not recognise. When OPENBLAS_CORETYPE is unset (and
 * CAMD_BLAS_AUTOTUNE is not "0"), sets it from the CPU's instruction sets (SkylakeX for
 * AVX-512, Haswell for AVX2+FMA, as lowered by CAMD_CPU=avx2|generic, the same level camd's own
 * kernels dispatch on) and re-executes the program with `argv` so the library sees it. Returns only
 * when nothing was changed or exec failed. Call first thing in main(). */
void camd_blas_autotune_exec(char **argv);

#endif
