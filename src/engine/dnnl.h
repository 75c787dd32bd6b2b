/* oneDNN convolutions on channel-blocked tensors (nChw16c / nChw8c): load-time weights, per-worker
 * primitives, the plan-time layout pass's questions.
 *
 * Blocked layout. A blocked value holds its per-item [C, H, W] as [C/B][H][W][B] (B = 16 with
 * AVX-512, 8 with AVX2), items one after another, so it needs exactly the floats of its NCHW form
 * (only values with C % B == 0 are ever blocked). Its shape in the engine stays the logical
 * [N, C, H, W]: element-wise ops over inputs of equal shape do not care about the order.
 *
 * Slices. Each convolution is cut at load into output-channel slices of whole blocks (at most
 * two, by the shape alone): a slice's weights, bias, output (blocked or NCHW, per item) and, for
 * depthwise, input are contiguous sub-tensors, so a slice is one primitive over its own
 * pointers. Slices of equal size share a primitive.
 *
 * Channels-last. A small dense 3x3 that is not Winograd (dnnl.c nhwc_candidate) runs oneDNN's
 * brgemm kernel, which reads and writes NHWC: the input is reordered to NHWC per item, each
 * slice's NHWC output back to the slice's blocked or NCHW output. The values stay blocked/NCHW.
 *
 * Ownership.
 *   camd__dnnl_conv     one per Conv node that oneDNN can run (jit/brgconv, not gemm or ref);
 *                       built at model load by camd__dnnl_conv_attach, allocated in the graph's
 *                       arena (freed with the model), immutable afterwards except the lazily
 *                       rebuilt NCHW weights (below), shared by every worker: geometry, memory
 *                       descriptors, the weights reordered once (per slice) into the format
 *                       oneDNN chose.
 *   NCHW weights        the graph's constant. When only this Conv reads it (and the blocked
 *                       slices take exactly its size), it is reordered in place at load: the
 *                       constant's buffer then holds the blocked weights, one copy in memory and
 *                       no new pages. camd__dnnl_conv_nchw_weights builds an NCHW copy (in the
 *                       graph's arena, once, under a mutex, published with release/acquire)
 *                       the first time a backward, a fallback kernel or camd_model_constant_data
 *                       needs it. Winograd weights (3x3 stride 1 on AVX-512) are larger than the
 *                       NCHW ones and not plainly blocked: they are a copy in the graph's arena
 *                       and the constant stays.
 *   camd__dnnl_worker   one per session (worker), owned by it: one oneDNN stream per session
 *                       thread, the primitives for the convolutions its plans run (created at
 *                       plan time, never per request) and one scratch block (one oneDNN
 *                       scratchpad per thread + the reorder buffers), grown at plan time only.
 * The engine object is process-wide (created once, never freed).
 *
 * Threads. Debian's libdnnl runs on OpenMP (libgomp), but camd never lets it start a team: the
 * OpenMP thread count is a per-thread setting, set to 1 on every thread that runs or creates a
 * primitive, and the session's own pool (engine/pool.h) runs the slices of every batch item in
 * parallel, each slice single-threaded. Items and slices are fixed by the shapes, so a result
 * depends neither on the batch nor on the thread count.
 *
 * Without CAMD_ONEDNN (CMake) every function reports "not available" and nothing is blocked.
 * At run time it is on unless CAMD_ONEDNN=0 (see src/engine/README.md).
 */
#ifndef CAMD_ENGINE_DNNL_H
#define CAMD_ENGINE_DNNL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/op.h"
#include "engine/pool.h"

typedef struct camd__dnnl_conv camd__dnnl_conv;
typedef struct camd__dnnl_worker camd__dnnl_worker;

/* Channel block of the blocked layout (16 or 8); 0 when oneDNN is not used in this process. */
int camd__dnnl_block(void);

/* Convolution geometry (2-D, per item). */
typedef struct camd__dnnl_conv_geom {
  int64_t c, m, group, h, w, oh, ow, kh, kw, sh, sw, dh, dw, pt, pl;
} camd__dnnl_conv_geom;

/* Load time: a oneDNN convolution for node (weights w [M, C/group, kh, kw], bias b [M] or NULL),
 * or *out = NULL when oneDNN cannot run it fast (no jit implementation, channels that would need
 * more than half again as many to fill whole blocks, oneDNN off). C or M that are not whole
 * blocks (24, 40 with blocks of 16) run on zero-padded blocked copies made by the input and
 * output reorders; such values themselves stay NCHW. may_drop: w (a graph constant) is read by this
 * node only, so it may be reordered in place (then only camd__dnnl_conv_nchw_weights gives the NCHW
 * weights). Returns 0, or CAMD_E_NOMEM. */
int camd__dnnl_conv_attach(camd_graph *g, const camd_node *node, const camd__dnnl_conv_geom *geo,
                           float *w, const float *b, bool may_drop, camd__dnnl_conv **out,
                           camd_error *err);
/* The convolution's NCHW weights [M, C/group, kh, kw]: the graph constant, or a copy built
 * once from the blocked weights when those replaced it. Thread-safe; NULL only when that one
 * allocation fails. */
const float *camd__dnnl_conv_nchw_weights(const camd__dnnl_conv *conv);

/* The oneDNN convolution attached to node n (a Conv), or NULL (op_conv.c). */
const camd__dnnl_conv *camd__conv_dnnl(const camd_node *n);
/* Load time (op_conv.c): attaches a oneDNN convolution to Conv node n when oneDNN can run it. */
int camd__conv_attach_dnnl_node(camd_graph *g, camd_node *n, bool *attached, camd_error *err);
/* Load-time pass (passes.c): the above for every node, after BatchNorm folding. */
int camd__conv_attach_dnnl(camd_graph *g, int *changed, camd_error *err);

/* Whether conv's input may be blocked (C % block == 0; otherwise oneDNN reads it as NCHW). */
bool camd__dnnl_conv_src_blockable(const camd__dnnl_conv *conv);
/* Whether the convolution runs oneDNN's Winograd kernels (3x3 stride 1 on AVX-512; see dnnl.c's
 * winograd_candidate; CAMD_WINOGRAD=0 turns them off). */
bool camd__dnnl_conv_winograd(const camd__dnnl_conv *conv);

/* ---- per worker ---- */
int camd__dnnl_worker_create(int n_nodes, int threads, camd__dnnl_worker **out, camd_error *err);
void camd__dnnl_worker_destroy(camd__dnnl_worker *w);
/* Sets the calling thread's OpenMP thread count to 1 (cheap; call per forward). */
void camd__dnnl_worker_bind(const camd__dnnl_worker *w);
/* Plan time: makes sure node `node_index`'s primitive with post-op `post` (NULL: none; after
 * a `sum` post-op when sum: y = conv(x) + y, a fused residual Add) exists,
 * plus the reorders for an NCHW input (src_nchw) / NCHW output (dst_nchw). Returns 0, or
 * CAMD_E_UNSUPPORTED when oneDNN has no fast primitive for it (the caller then uses camd's own
 * kernel), or CAMD_E_NOMEM. */
int camd__dnnl_worker_prepare(camd__dnnl_worker *w, const camd__dnnl_conv *conv, int node_index,
                              const camd_post_op *post, bool sum, bool src_nchw, bool dst_nchw,
                              camd_error *err);
/* Run time: y = post(conv(x) [+ sum_in]) for `batch` items (sum_in: blocked, y blocked), x / y
 * blocked or NCHW as told (sum_in may be y itself: the plan gave y the addend's buffer); the
 * primitives were prepared for exactly these arguments. The (item, slice) tasks run on pool (the
 * session's; NULL: the calling thread). False when a primitive is missing (the caller then runs
 * camd's own kernel). */
bool camd__dnnl_conv_forward(camd__dnnl_worker *w, const camd__dnnl_conv *conv, int node_index,
                             const camd_post_op *post, const float *sum_in, const float *x,
                             bool x_blocked, float *y, bool y_blocked, int64_t batch,
                             camd__pool *pool);

#endif
