/* oneDNN convolutions on channel-blocked tensors: weights at load, primitives per worker (see
 * dnnl.h for the layout, the ownership and the threads). */
#include "engine/dnnl.h"

#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "engine/cpu.h"
#include "engine/graph_internal.h"

#ifndef CAMD_HAVE_ONEDNN

int camd__dnnl_block(void) {
  return 0;
}
int camd__conv_attach_dnnl(camd_graph *g, int *changed, camd_error *err) {
  (void)g, (void)err;
  *changed = 0;
  return 0;
}
int camd__dnnl_conv_attach(camd_graph *g, const camd_node *node, const camd__dnnl_conv_geom *geo,
                           float *w, const float *b, bool may_drop, camd__dnnl_conv **out,
                           camd_error *err) {
  (void)g, (void)node, (void)geo, (void)w, (void)b, (void)may_drop, (void)err;
  *out = NULL;
  return 0;
}
bool camd__dnnl_conv_src_blockable(const camd__dnnl_conv *conv) {
  (void)conv;
  return false;
}
bool camd__dnnl_conv_winograd(const camd__dnnl_conv *conv) {
  (void)conv;
  return false;
}
int camd__dnnl_worker_create(int n_nodes, int threads, camd__dnnl_worker **out, camd_error *err) {
  (void)n_nodes, (void)threads, (void)err;
  *out = NULL;
  return 0;
}
void camd__dnnl_worker_destroy(camd__dnnl_worker *w) {
  (void)w;
}
void camd__dnnl_worker_bind(const camd__dnnl_worker *w) {
  (void)w;
}
int camd__dnnl_worker_prepare(camd__dnnl_worker *w, const camd__dnnl_conv *conv, int node_index,
                              const camd_post_op *post, bool sum, bool src_nchw, bool dst_nchw,
                              camd_error *err) {
  (void)w, (void)conv, (void)node_index, (void)post, (void)sum, (void)src_nchw, (void)dst_nchw;
  return camd_error_set(err, CAMD_E_UNSUPPORTED, "camd was built without oneDNN");
}
bool camd__dnnl_conv_forward(camd__dnnl_worker *w, const camd__dnnl_conv *conv, int node_index,
                             const camd_post_op *post, const float *sum_in, const float *x,
                             bool x_blocked, float *y, bool y_blocked, int64_t batch,
                             camd__pool *pool) {
  (void)w, (void)conv, (void)node_index, (void)post, (void)sum_in, (void)x, (void)x_blocked,
      (void)y;
  (void)y_blocked, (void)batch, (void)pool;
  return false;
}
const float *camd__dnnl_conv_nchw_weights(const camd__dnnl_conv *conv) {
  (void)conv;
  return NULL;
}

#else

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdatomic.h>

/* Output-channel slices per convolution (a shape rule, never the thread count: the same
 * primitives run whatever the threads, so the bits do not depend on them). */
#define SLICES_MAX 2
/* Floats per input reorder piece at least (a shape rule): ~64 KiB, as the elementwise kernels. */
#define REORDER_PIECE_FLOATS 16384
/* Distinct slice shapes (blocks split as evenly as possible: at most two sizes). */
#define SHAPES 2

typedef struct slice_shape {
  int64_t ms;                         /* output channels of the slice */
  dnnl_memory_desc_t src_md, wei_md;  /* src: the whole input (group 1) or the slice's channels */
  dnnl_memory_desc_t bias_md, dst_md; /* N = 1 */
  dnnl_memory_desc_t dst_nchw_md;     /* the slice's output channels in NCHW */
  dnnl_memory_desc_t dst_blk_md;      /* channels-last convolutions: the slice's output blocked */
} slice_shape;

struct camd__dnnl_conv {
  camd__dnnl_conv_geom geo;
  bool src_blocked; /* C % block == 0: the primitive reads blocked input */
  /* C % block != 0 and the primitive reads a blocked copy whose channels are padded with zeros
   * to whole blocks (made per item by the input reorder); M % block != 0 likewise gives a
   * padded blocked output that the output reorder writes back as NCHW (the value itself is
   * never blocked: only values whose channels are whole blocks are). */
  bool src_padded;
  /* Channels-last: the primitive (oneDNN's brgemm convolution) reads the whole input as NHWC
   * (a reorder per item) and writes each slice NHWC into the worker's output buffer, reordered
   * from there into the slice's blocked or NCHW output (nhwc_candidate). */
  bool nhwc;
  bool has_bias;
  const float *bias; /* graph constant */
  int n_slices, n_shapes;
  int64_t m0[SLICES_MAX + 1];     /* slice s: output channels [m0[s], m0[s + 1]) */
  int shape_of[SLICES_MAX];       /* slice -> shape */
  size_t wei_off[SLICES_MAX + 1]; /* floats: slice s's weights at weights + wei_off[s] */
  slice_shape shapes[SHAPES];
  float *weights; /* arena, every slice in its shape's wei_md format */
  dnnl_dims_t strides, dilates, pad_l, pad_r;
  dnnl_alg_kind_t algorithm; /* direct, or Winograd (winograd_candidate) */
  /* The NCHW weights [M, C/group, kh, kw]. When `nchw_lazy`, the graph's constant buffer (read
   * by this node only) was reordered in place into `weights` at load, and `nchw` is built from
   * it (in the graph's arena, under lazy_lock) the first time a backward, a fallback kernel or
   * camd_model_constant_data needs it; otherwise `nchw` is the constant itself. */
  float *nchw;
  bool nchw_lazy;
  atomic_int nchw_ready;
  camd_graph *graph;
};

/* ---- process-wide engine and block size ---- */

static dnnl_engine_t engine;
static int block;
static bool winograd; /* Winograd kernels allowed (CAMD_WINOGRAD=0 turns them off) */
static pthread_mutex_t lazy_lock = PTHREAD_MUTEX_INITIALIZER; /* NCHW rebuilds, arena appends */

static void init_once(void) {
  /* On unless CAMD_ONEDNN=0 (the off switch: camd's own im2col + OpenBLAS kernels). */
  const char *env = getenv("CAMD_ONEDNN");
  if (env && strcmp(env, "0") == 0) return;
  camd__cpu_level level = camd__cpu();
  if (level == CAMD_CPU_AVX512) {
    if (dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx512_core) != dnnl_success) return;
    block = 16;
  } else if (level == CAMD_CPU_AVX2) {
    if (dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2) != dnnl_success) return;
    block = 8;
  } else {
    return;
  }
  const char *wenv = getenv("CAMD_WINOGRAD");
  winograd = !(wenv && strcmp(wenv, "0") == 0);
  if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) {
    engine = NULL;
    block = 0;
  }
}

int camd__dnnl_block(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, init_once);
  return block;
}

/* oneDNN runs single-threaded on whichever camd thread calls it (the OpenMP thread count is a
 * per-thread setting): no OpenMP team is ever started. */
static inline void omp_one(void) {
  if (omp_get_max_threads() != 1) omp_set_num_threads(1);
}

static dnnl_format_tag_t blocked_tag(void) {
  return block == 16 ? dnnl_nChw16c : dnnl_nChw8c;
}

/* A fast implementation: jit or brgemm kernels, not the gemm fallbacks or the reference loops. */
static bool fast_impl(const_dnnl_primitive_desc_t pd) {
  const char *impl = NULL;
  if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
    return false;
  if (strstr(impl, "gemm:") == impl || strstr(impl, "ref")) return false;
  return strstr(impl, "jit") || strstr(impl, "brg");
}

static void fill_post_ops(dnnl_primitive_attr_t attr, const camd_post_op *post, bool sum) {
  const bool act = post && post->kind != CAMD_POST_NONE;
  if (!act && !sum) return;
  dnnl_post_ops_t po;
  if (dnnl_post_ops_create(&po) != dnnl_success) return;
  if (sum) dnnl_post_ops_append_sum(po, 1.0f); /* dst = conv + dst: the residual Add, first */
  if (!act) {
  } else if (post->kind == CAMD_POST_RELU) {
    dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
  } else {
    dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip, post->lo, post->hi);
  }
  dnnl_primitive_attr_set_post_ops(attr, po);
  dnnl_post_ops_destroy(po);
}

/* The user (NCHW-side) weights descriptor of a slice of ms output channels. */
static void user_wei_md(const camd__dnnl_conv_geom *g, int64_t ms, dnnl_format_tag_t tag,
                        dnnl_memory_desc_t *md) {
  if (g->group == 1) {
    dnnl_dims_t wd = {ms, g->c, g->kh, g->kw};
    dnnl_memory_desc_init_by_tag(md, 4, wd, dnnl_f32, tag == dnnl_format_tag_any ? tag : dnnl_oihw);
  } else { /* depthwise: a slice of ms groups */
    dnnl_dims_t wd = {ms, 1, 1, g->kh, g->kw};
    dnnl_memory_desc_init_by_tag(md, 5, wd, dnnl_f32,
                                 tag == dnnl_format_tag_any ? tag : dnnl_goihw);
  }
}

/* Slice shape k's primitive descriptor (wei_md NULL: oneDNN chooses); NULL on failure. */
static dnnl_primitive_desc_t conv_pd(const camd__dnnl_conv *c, int k,
                                     const dnnl_memory_desc_t *wei_md, const camd_post_op *post,
                                     bool sum) {
  const slice_shape *s = &c->shapes[k];
  dnnl_memory_desc_t wany;
  if (!wei_md) {
    user_wei_md(&c->geo, s->ms, dnnl_format_tag_any, &wany);
    wei_md = &wany;
  }
  dnnl_convolution_desc_t cd;
  if (dnnl_dilated_convolution_forward_desc_init(
          &cd, dnnl_forward_inference, c->algorithm, &s->src_md, wei_md,
          c->has_bias ? &s->bias_md : NULL, &s->dst_md, c->strides, c->dilates, c->pad_l,
          c->pad_r) != dnnl_success)
    return NULL;
  dnnl_primitive_attr_t attr;
  if (dnnl_primitive_attr_create(&attr) != dnnl_success) return NULL;
  dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
  fill_post_ops(attr, post, sum);
  dnnl_primitive_desc_t pd = NULL;
  if (dnnl_primitive_desc_create(&pd, &cd, attr, engine, NULL) != dnnl_success) pd = NULL;
  dnnl_primitive_attr_destroy(attr);
  if (pd && !fast_impl(pd)) {
    dnnl_primitive_desc_destroy(pd);
    pd = NULL;
  }
  return pd;
}

/* One reorder src -> dst (both in memory), run now on a temporary stream. */
static int reorder_now(const dnnl_memory_desc_t *smd, const void *src,
                       const dnnl_memory_desc_t *dmd, void *dst) {
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_t prim = NULL;
  dnnl_memory_t ms = NULL, md = NULL;
  dnnl_stream_t st = NULL;
  int ok =
      dnnl_reorder_primitive_desc_create(&pd, smd, engine, dmd, engine, NULL) == dnnl_success &&
      dnnl_primitive_create(&prim, pd) == dnnl_success &&
      dnnl_memory_create(&ms, smd, engine, (void *)src) == dnnl_success &&
      dnnl_memory_create(&md, dmd, engine, dst) == dnnl_success &&
      dnnl_stream_create(&st, engine, dnnl_stream_default_flags) == dnnl_success;
  if (ok) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, ms}, {DNNL_ARG_TO, md}};
    ok = dnnl_primitive_execute(prim, st, 2, args) == dnnl_success &&
         dnnl_stream_wait(st) == dnnl_success;
  }
  if (st) dnnl_stream_destroy(st);
  if (ms) dnnl_memory_destroy(ms);
  if (md) dnnl_memory_destroy(md);
  if (prim) dnnl_primitive_destroy(prim);
  if (pd) dnnl_primitive_desc_destroy(pd);
  return ok ? 0 : -1;
}

/* Element offset of logical index idx[] in a blocked descriptor (outer strides, then the inner
 * blocks row-major): the inverse weight reorder without any allocation, so it cannot fail. */
static int64_t blocked_offset(const dnnl_memory_desc_t *md, const int64_t *idx) {
  const dnnl_blocking_desc_t *b = &md->format_desc.blocking;
  int64_t blk[DNNL_MAX_NDIMS];
  for (int d = 0; d < md->ndims; d++) blk[d] = 1;
  for (int j = 0; j < b->inner_nblks; j++) blk[b->inner_idxs[j]] *= b->inner_blks[j];
  int64_t off = md->offset0;
  for (int d = 0; d < md->ndims; d++) off += idx[d] / blk[d] * b->strides[d];
  int64_t inner = 0;
  for (int j = 0; j < b->inner_nblks; j++) {
    const int d = (int)b->inner_idxs[j];
    blk[d] /= b->inner_blks[j];
    inner = inner * b->inner_blks[j] + idx[d] / blk[d] % b->inner_blks[j];
  }
  return off + inner;
}

/* Whether every slice's weights are in a plain blocked format blocked_offset understands. */
static bool weights_invertible(const camd__dnnl_conv *c) {
  for (int k = 0; k < c->n_shapes; k++) {
    const dnnl_memory_desc_t *md = &c->shapes[k].wei_md;
    if (md->format_kind != dnnl_blocked || md->extra.flags != 0) return false;
  }
  return true;
}

/* Rebuilds the NCHW weights [M, C/group, kh, kw] from the blocked slices. */
static void unreorder_weights(const camd__dnnl_conv *c) {
  const camd__dnnl_conv_geom *g = &c->geo;
  const int64_t cg = g->c / g->group, kk = g->kh * g->kw;
  for (int s = 0; s < c->n_slices; s++) {
    const dnnl_memory_desc_t *md = &c->shapes[c->shape_of[s]].wei_md;
    const float *src = c->weights + c->wei_off[s];
    for (int64_t o = 0; o < c->m0[s + 1] - c->m0[s]; o++) {
      float *dst = c->nchw + (c->m0[s] + o) * cg * kk;
      for (int64_t i = 0; i < cg; i++) {
        for (int64_t y = 0; y < g->kh; y++) {
          for (int64_t x = 0; x < g->kw; x++) {
            const int64_t i4[4] = {o, i, y, x}, i5[5] = {o, 0, 0, y, x};
            dst[(i * g->kh + y) * g->kw + x] = src[blocked_offset(md, g->group == 1 ? i4 : i5)];
          }
        }
      }
    }
  }
}

const float *camd__dnnl_conv_nchw_weights(const camd__dnnl_conv *cc) {
  camd__dnnl_conv *c = (camd__dnnl_conv *)cc; /* the lazily built copy is the mutable part */
  if (!c->nchw_lazy || atomic_load_explicit(&c->nchw_ready, memory_order_acquire)) return c->nchw;
  pthread_mutex_lock(&lazy_lock);
  if (!atomic_load_explicit(&c->nchw_ready, memory_order_relaxed)) {
    const camd__dnnl_conv_geom *g = &c->geo;
    const size_t n = (size_t)(g->m * (g->c / g->group) * g->kh * g->kw);
    c->nchw = camd__node_params_alloc(c->graph, n * sizeof(float));
    if (c->nchw) {
      unreorder_weights(c);
      atomic_store_explicit(&c->nchw_ready, 1, memory_order_release);
    }
  }
  pthread_mutex_unlock(&lazy_lock);
  return c->nchw;
}

/* Whether a convolution gets oneDNN's Winograd kernels (3x3, stride 1, no dilation, dense):
 * twice as fast as direct on AVX-512, for transformed weights 16/9 (F(2,3)) or 4 (F(4,3)) times
 * the size. Off with CAMD_WINOGRAD=0; on a 7x7 or smaller output the gain does not pay for the
 * memory (measured on ResNet-50's layer4: 1.8 ms for 34 MB). */
static bool winograd_candidate(const camd__dnnl_conv_geom *g) {
  return winograd && g->group == 1 && g->kh == 3 && g->kw == 3 && g->sh == 1 && g->sw == 1 &&
         g->dh == 1 && g->dw == 1 && g->oh * g->ow > 49;
}

/* Whether a direct convolution runs channels-last (oneDNN 2.6's brgemm kernels, which it offers
 * for NHWC only): dense 3x3 that is not Winograd, whole blocks in and out, at least 128 outputs
 * (DenseNet-121's 128 -> 32 were ~2 % slower at 2 threads), an input of at most 2^18 floats
 * (its reorder per item stays small). Measured single-threaded on ResNet-50's
 * shapes (2 slices): 512 -> 512 at 7x7 1.17 -> 0.89 ms, stride 2 from 14x14 1.27 -> 1.01, from
 * 28x28 1.15 -> 0.98 (throw-away driver against Debian's libdnnl 2.6.3). */
static bool nhwc_candidate(const camd__dnnl_conv_geom *g, int B) {
  const char *env = getenv("CAMD_DNNL_NHWC");
  if (env && !strcmp(env, "0")) return false;
  return B == 16 && g->group == 1 && g->kh == 3 && g->kw == 3 && g->c % B == 0 && g->m % B == 0 &&
         g->m >= 128 && g->c * g->h * g->w <= (1 << 18);
}

/* Fills c's slice shapes (descriptors, and the weights format oneDNN chose for c->algorithm);
 * -1 when oneDNN has no fast kernel for one of them. */
static int slice_shapes_init(camd__dnnl_conv *c) {
  const camd__dnnl_conv_geom *geo = &c->geo;
  c->n_shapes = 0;
  for (int s = 0; s < c->n_slices; s++) {
    const int64_t ms = c->m0[s + 1] - c->m0[s];
    int k = 0;
    while (k < c->n_shapes && c->shapes[k].ms != ms) k++;
    c->shape_of[s] = k;
    if (k < c->n_shapes) continue;
    c->n_shapes++;
    slice_shape *sh = &c->shapes[k];
    sh->ms = ms;
    dnnl_dims_t ssd = {1, geo->group == 1 ? geo->c : ms, geo->h, geo->w};
    dnnl_dims_t dd = {1, ms, geo->oh, geo->ow}, bd = {ms};
    const dnnl_format_tag_t stag = c->nhwc                           ? dnnl_nhwc
                                   : c->src_blocked || c->src_padded ? blocked_tag()
                                                                     : dnnl_nchw;
    if (dnnl_memory_desc_init_by_tag(&sh->src_md, 4, ssd, dnnl_f32, stag) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&sh->dst_md, 4, dd, dnnl_f32,
                                     c->nhwc ? dnnl_nhwc : blocked_tag()) != dnnl_success ||
        dnnl_memory_desc_init_by_tag(&sh->dst_blk_md, 4, dd, dnnl_f32, blocked_tag()) !=
            dnnl_success ||
        dnnl_memory_desc_init_by_tag(&sh->dst_nchw_md, 4, dd, dnnl_f32, dnnl_nchw) !=
            dnnl_success ||
        dnnl_memory_desc_init_by_tag(&sh->bias_md, 1, bd, dnnl_f32, dnnl_a) != dnnl_success)
      return -1;
    dnnl_primitive_desc_t pd = conv_pd(c, k, NULL, NULL, false);
    if (!pd) return -1;
    sh->wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_primitive_desc_destroy(pd);
  }
  return 0;
}

/* Whether channels n are worth running on oneDNN when n % B != 0: the padding to whole blocks
 * costs at most half of n (24 -> 32, 40 -> 48; not 20 -> 32). */
static bool padding_pays(int64_t n, int B) {
  const int64_t padded = (n + B - 1) / B * B;
  return 2 * padded <= 3 * n;
}

/* Whether every slice shape of c gets oneDNN's brgemm convolution. */
static bool brg_impl(const camd__dnnl_conv *c) {
  for (int k = 0; k < c->n_shapes; k++) {
    dnnl_primitive_desc_t pd = conv_pd(c, k, &c->shapes[k].wei_md, NULL, false);
    const char *impl = NULL;
    const bool brg =
        pd && dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success &&
        impl && strstr(impl, "brg");
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (!brg) return false;
  }
  return true;
}

/* Every slice shape of tmp (Winograd first when it is a candidate, else or when oneDNN has
 * none for it, direct); -1 when oneDNN has no fast kernel. */
static int attach_shapes(camd__dnnl_conv *tmp) {
  const camd__dnnl_conv_geom *geo = &tmp->geo;
  tmp->algorithm = winograd_candidate(geo) ? dnnl_convolution_winograd : dnnl_convolution_direct;
  tmp->nhwc = false;
  if (slice_shapes_init(tmp) == 0) {
    if (tmp->algorithm == dnnl_convolution_winograd || !nhwc_candidate(geo, block)) return 0;
    tmp->nhwc = true; /* channels-last when oneDNN has its brgemm kernel for it */
    if (slice_shapes_init(tmp) == 0 && brg_impl(tmp)) return 0;
    tmp->nhwc = false;
    return slice_shapes_init(tmp);
  }
  if (tmp->algorithm != dnnl_convolution_winograd) return -1;
  tmp->algorithm = dnnl_convolution_direct; /* no Winograd kernel here (an AVX2 CPU): direct */
  return slice_shapes_init(tmp);
}

/* Load-time scratch for the in-place weight reorder (one slice), kept across a pass. */
static _Thread_local float *reorder_tmp;
static _Thread_local size_t reorder_tmp_floats;

int camd__dnnl_conv_attach(camd_graph *g, const camd_node *node, const camd__dnnl_conv_geom *geo,
                           float *w, const float *b, bool may_drop, camd__dnnl_conv **out,
                           camd_error *err) {
  (void)node;
  *out = NULL;
  const int B = camd__dnnl_block();
  if (!B) return 0;
  if (geo->group > 1 && !(geo->group == geo->c && geo->group == geo->m && geo->m % B == 0))
    return 0;
  if (!padding_pays(geo->m, B)) return 0;
  if (geo->group == 1 && geo->oh * geo->ow == 1) return 0; /* a matrix-vector product */
  camd__dnnl_conv tmp;
  memset(&tmp, 0, sizeof(tmp));
  tmp.geo = *geo;
  tmp.src_blocked = geo->c % B == 0;
  tmp.has_bias = b != NULL;
  tmp.bias = b;
  /* Bottom/right padding that gives oneDNN's output size (floor division) the node's: the
   * last window may end before the input does (a strided 1x1), then no padding. */
  const int64_t keh = (geo->kh - 1) * geo->dh + 1, kew = (geo->kw - 1) * geo->dw + 1;
  int64_t pb = (geo->oh - 1) * geo->sh + keh - geo->h - geo->pt;
  int64_t pr = (geo->ow - 1) * geo->sw + kew - geo->w - geo->pl;
  if (pb < 0) pb = 0;
  if (pr < 0) pr = 0;
  if ((geo->h + geo->pt + pb - keh) / geo->sh + 1 != geo->oh ||
      (geo->w + geo->pl + pr - kew) / geo->sw + 1 != geo->ow)
    return 0;
  tmp.strides[0] = geo->sh, tmp.strides[1] = geo->sw;
  tmp.dilates[0] = geo->dh - 1, tmp.dilates[1] = geo->dw - 1;
  tmp.pad_l[0] = geo->pt, tmp.pad_l[1] = geo->pl;
  tmp.pad_r[0] = pb, tmp.pad_r[1] = pr;
  /* Slices of whole blocks, as even as possible (at most two sizes); with M % B != 0 the last
   * slice ends at M (its blocked output padded to a whole block). */
  const int64_t nb = (geo->m + B - 1) / B;
  tmp.n_slices = (int)(nb < SLICES_MAX ? nb : SLICES_MAX);
  for (int s = 0; s <= tmp.n_slices; s++) {
    const int64_t m0 = B * (s * nb / tmp.n_slices);
    tmp.m0[s] = m0 < geo->m ? m0 : geo->m;
  }
  /* The input read as it is (blocked, or NCHW: the first layer's few channels), else, for a
   * dense convolution whose C is not whole blocks, through a zero-padded blocked copy. */
  int rc = attach_shapes(&tmp);
  if (rc != 0 && !tmp.src_blocked && geo->group == 1 && padding_pays(geo->c, B)) {
    tmp.src_padded = true;
    rc = attach_shapes(&tmp);
  }
  if (rc != 0) return 0;
  size_t floats = 0;
  for (int s = 0; s < tmp.n_slices; s++) {
    tmp.wei_off[s] = floats;
    const size_t bytes = dnnl_memory_desc_get_size(&tmp.shapes[tmp.shape_of[s]].wei_md);
    floats += (bytes / sizeof(float) + 15) / 16 * 16; /* each slice 64-byte aligned */
  }
  tmp.wei_off[tmp.n_slices] = floats;
  const int64_t per_m = geo->group == 1 ? geo->c * geo->kh * geo->kw : geo->kh * geo->kw;
  /* In place when W is this node's alone and every slice takes exactly its NCHW floats: slice
   * s's blocked weights then overwrite its own NCHW rows (through a one-slice buffer), and no
   * second copy is ever made (no new pages: the load-time cost is the reorder itself). */
  bool in_place = may_drop && weights_invertible(&tmp) && floats == (size_t)(geo->m * per_m);
  for (int s = 0; in_place && s < tmp.n_slices; s++)
    in_place = tmp.wei_off[s] == (size_t)(tmp.m0[s] * per_m);
  camd__dnnl_conv *c = camd__node_params_alloc(g, sizeof(*c));
  if (!c) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  if (in_place) {
    tmp.weights = w;
    size_t most = 0;
    for (int s = 0; s < tmp.n_slices; s++) {
      if (tmp.wei_off[s + 1] - tmp.wei_off[s] > most) most = tmp.wei_off[s + 1] - tmp.wei_off[s];
    }
    if (most > reorder_tmp_floats) {
      free(reorder_tmp);
      reorder_tmp_floats = 0;
      if (!(reorder_tmp = aligned_alloc(64, most * sizeof(float))))
        return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
      reorder_tmp_floats = most;
    }
  } else { /* a copy, 64-byte aligned in the graph's arena */
    unsigned char *raw = camd__node_params_alloc(g, floats * sizeof(float) + 64);
    if (!raw) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
    tmp.weights = (float *)(raw + (64 - (uintptr_t)raw % 64) % 64);
    /* Padded channels (C or M not whole blocks) must multiply as zeros whatever is in the
     * padded input channels; oneDNN's reorder zero-pads too, this does not rely on it. */
    memset(tmp.weights, 0, floats * sizeof(float));
  }
  for (int s = 0; s < tmp.n_slices; s++) {
    const slice_shape *sh = &tmp.shapes[tmp.shape_of[s]];
    dnnl_memory_desc_t user;
    user_wei_md(geo, sh->ms, dnnl_oihw, &user);
    float *dst = in_place ? reorder_tmp : tmp.weights + tmp.wei_off[s];
    if (reorder_now(&user, w + tmp.m0[s] * per_m, &sh->wei_md, dst)) {
      if (in_place && s > 0) /* earlier slices are blocked already: W is no longer NCHW */
        return camd_error_set(err, CAMD_E_NOMEM, "oneDNN: a weight reorder failed");
      return 0; /* oneDNN not used for this node (the arena keeps the bytes) */
    }
    if (in_place) {
      memcpy(tmp.weights + tmp.wei_off[s], dst,
             (tmp.wei_off[s + 1] - tmp.wei_off[s]) * sizeof(float));
    }
  }
  tmp.nchw = in_place ? NULL : w;
  tmp.nchw_lazy = in_place;
  tmp.graph = g;
  *c = tmp;
  atomic_init(&c->nchw_ready, 0);
  *out = c;
  return 0;
}

bool camd__dnnl_conv_src_blockable(const camd__dnnl_conv *conv) {
  return conv && conv->src_blocked;
}

bool camd__dnnl_conv_winograd(const camd__dnnl_conv *conv) {
  return conv && conv->algorithm == dnnl_convolution_winograd;
}

int camd__conv_attach_dnnl(camd_graph *g, int *changed, camd_error *err) {
  *changed = 0;
  if (!camd__dnnl_block()) return 0;
  omp_one(); /* no OpenMP team for the loading thread */
  int rc = 0;
  for (int k = 0; k < g->n_nodes && !rc; k++) {
    bool attached = false;
    rc = camd__conv_attach_dnnl_node(g, &g->nodes[k], &attached, err);
    *changed += attached;
  }
  free(reorder_tmp);
  reorder_tmp = NULL;
  reorder_tmp_floats = 0;
  return rc;
}

/* ---- per worker ---- */

/* Variants of a node's convolution: bit 0 = with the node's activation post-op, bit 1 = after
 * a sum post-op (fused residual Add). */
#define NODE_VARIANTS 4

/* One thread's memory objects for one slice shape of a node (data handles set per run). */
typedef struct slice_mem {
  dnnl_memory_t src, wei, bias, dst, dst_nchw, dst_blk, scratch[NODE_VARIANTS];
} slice_mem;

typedef struct node_prims {
  dnnl_primitive_t conv[SHAPES][NODE_VARIANTS];
  size_t scratch_bytes[SHAPES][NODE_VARIANTS];
  camd_post_op post1; /* the activation of variants 1 and 3 */
  bool have_post1;
  dnnl_primitive_t rdst[SHAPES]; /* a slice's blocked (channels-last: NHWC) output -> NCHW */
  /* Channels-last convolutions: a slice's NHWC output -> blocked, and the whole input, blocked
   * (0) or NCHW (1), -> NHWC; memory objects [from 0, from 1, to] (run on the calling thread). */
  dnnl_primitive_t rdst_blk[SHAPES], rnhwc[2];
  dnnl_memory_t nhwc_mem[3];
  /* NCHW -> blocked input reorder in pieces of `rsrc_per` channel blocks (the last piece may
   * be shorter: primitive 1), run on the pool; memory objects [threads][2][from, to]. */
  dnnl_primitive_t rsrc[2];
  int64_t rsrc_per;
  dnnl_memory_t *rsrc_mem;
  slice_mem *mem; /* [threads][SHAPES] */
} node_prims;

struct camd__dnnl_worker {
  int threads;
  int n_nodes;
  dnnl_stream_t *streams; /* one per pool thread */
  node_prims *nodes;
  void *block_mem; /* threads x scratchpad | input reorder buffer | output reorder buffer */
  size_t scratch_bytes, src_bytes, dst_bytes;
};

int camd__dnnl_worker_create(int n_nodes, int threads, camd__dnnl_worker **out, camd_error *err) {
  *out = NULL;
  if (!camd__dnnl_block()) return 0;
  camd__dnnl_worker *w = calloc(1, sizeof(*w));
  if (!w || !(w->nodes = calloc((size_t)n_nodes + 1, sizeof(node_prims))) ||
      !(w->streams = calloc((size_t)threads, sizeof(dnnl_stream_t)))) {
    if (w) free(w->nodes);
    free(w);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  }
  w->threads = threads;
  w->n_nodes = n_nodes;
  for (int t = 0; t < threads; t++) {
    if (dnnl_stream_create(&w->streams[t], engine, dnnl_stream_default_flags) != dnnl_success) {
      w->streams[t] = NULL;
      camd__dnnl_worker_destroy(w);
      return camd_error_set(err, CAMD_E_NOMEM, "oneDNN: cannot create a stream");
    }
  }
  *out = w;
  return 0;
}

static void destroy_mem(dnnl_memory_t m) {
  if (m) dnnl_memory_destroy(m);
}

static void destroy_prim(dnnl_primitive_t p) {
  if (p) dnnl_primitive_destroy(p);
}

void camd__dnnl_worker_destroy(camd__dnnl_worker *w) {
  if (!w) return;
  for (int i = 0; i < w->n_nodes; i++) {
    node_prims *n = &w->nodes[i];
    for (int k = 0; k < SHAPES; k++) {
      for (int v = 0; v < NODE_VARIANTS; v++) destroy_prim(n->conv[k][v]);
      destroy_prim(n->rdst[k]);
      destroy_prim(n->rdst_blk[k]);
    }
    destroy_prim(n->rnhwc[0]), destroy_prim(n->rnhwc[1]);
    for (int q = 0; q < 3; q++) destroy_mem(n->nhwc_mem[q]);
    destroy_prim(n->rsrc[0]), destroy_prim(n->rsrc[1]);
    for (int q = 0; n->rsrc_mem && q < w->threads * 4; q++) destroy_mem(n->rsrc_mem[q]);
    free(n->rsrc_mem);
    for (int q = 0; n->mem && q < w->threads * SHAPES; q++) {
      slice_mem *m = &n->mem[q];
      destroy_mem(m->src), destroy_mem(m->wei), destroy_mem(m->bias);
      destroy_mem(m->dst), destroy_mem(m->dst_nchw), destroy_mem(m->dst_blk);
      for (int v = 0; v < NODE_VARIANTS; v++) destroy_mem(m->scratch[v]);
    }
    free(n->mem);
  }
  free(w->nodes);
  for (int t = 0; w->streams && t < w->threads; t++) {
    if (w->streams[t]) dnnl_stream_destroy(w->streams[t]);
  }
  free(w->streams);
  free(w->block_mem);
  free(w);
}

void camd__dnnl_worker_bind(const camd__dnnl_worker *w) {
  (void)w;
  omp_one();
}

static size_t round64(size_t b) {
  return (b + 63) / 64 * 64;
}

/* Grows the worker's scratch block to hold the three parts. */
static int grow_block(camd__dnnl_worker *w, size_t scratch, size_t src, size_t dst,
                      camd_error *err) {
  scratch = round64(scratch), src = round64(src), dst = round64(dst);
  if (scratch <= w->scratch_bytes && src <= w->src_bytes && dst <= w->dst_bytes) return 0;
  if (scratch < w->scratch_bytes) scratch = w->scratch_bytes;
  if (src < w->src_bytes) src = w->src_bytes;
  if (dst < w->dst_bytes) dst = w->dst_bytes;
  const size_t total = scratch * (size_t)w->threads + src + dst + 64;
  void *m = aligned_alloc(64, total);
  if (!m) return camd_error_set(err, CAMD_E_NOMEM, "out of memory (oneDNN scratch)");
  memset(m, 0, total); /* first touch at plan time */
  free(w->block_mem);
  w->block_mem = m;
  w->scratch_bytes = scratch, w->src_bytes = src, w->dst_bytes = dst;
  return 0;
}

static bool same_post(const camd_post_op *a, const camd_post_op *b) {
  return a->kind == b->kind && (a->kind != CAMD_POST_CLIP || (a->lo == b->lo && a->hi == b->hi));
}

static int make_reorder(const dnnl_memory_desc_t *s, const dnnl_memory_desc_t *d,
                        dnnl_primitive_t *out) {
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_attr_t attr = NULL;
  int rc = -1;
  if (dnnl_primitive_attr_create(&attr) != dnnl_success) return -1;
  dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
  if (dnnl_reorder_primitive_desc_create(&pd, s, engine, d, engine, attr) == dnnl_success &&
      dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)) ==
          0 &&
      dnnl_primitive_create(out, pd) == dnnl_success)
    rc = 0;
  if (pd) dnnl_primitive_desc_destroy(pd);
  dnnl_primitive_attr_destroy(attr);
  return rc;
}

static bool mem_new(dnnl_memory_t *m, const dnnl_memory_desc_t *md, void *data) {
  return *m || dnnl_memory_create(m, md, engine, data) == dnnl_success;
}

int camd__dnnl_worker_prepare(camd__dnnl_worker *w, const camd__dnnl_conv *c, int node_index,
                              const camd_post_op *post, bool sum, bool src_nchw, bool dst_nchw,
                              camd_error *err) {
  if (!w || !c || node_index < 0 || node_index >= w->n_nodes) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN is not used here");
  }
  omp_one();          /* primitives made for one thread */
  if (c->nhwc && sum) /* the addend would have to be reordered to NHWC first: not fused */
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN: no sum on a channels-last conv");
  node_prims *n = &w->nodes[node_index];
  const bool has_post = post && post->kind != CAMD_POST_NONE;
  const int v = (has_post ? 1 : 0) | (sum ? 2 : 0);
  if (has_post && n->have_post1 && !same_post(&n->post1, post)) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN: a second post-op for one node");
  }
  if (!n->mem && !(n->mem = calloc((size_t)w->threads * SHAPES, sizeof(slice_mem))))
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  size_t scratch = 0;
  for (int k = 0; k < c->n_shapes; k++) {
    const slice_shape *sh = &c->shapes[k];
    if (!n->conv[k][v]) {
      dnnl_primitive_desc_t pd = conv_pd(c, k, &sh->wei_md, has_post ? post : NULL, sum);
      if (!pd) return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN: no fast convolution");
      const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
      n->scratch_bytes[k][v] = dnnl_memory_desc_get_size(smd);
      bool bad = dnnl_primitive_create(&n->conv[k][v], pd) != dnnl_success;
      for (int t = 0; t < w->threads && !bad; t++)
        bad = !mem_new(&n->mem[t * SHAPES + k].scratch[v], smd, DNNL_MEMORY_NONE);
      dnnl_primitive_desc_destroy(pd);
      if (bad) return camd_error_set(err, CAMD_E_NOMEM, "oneDNN: cannot create a primitive");
    }
    if (n->scratch_bytes[k][v] > scratch) scratch = n->scratch_bytes[k][v];
    for (int t = 0; t < w->threads; t++) { /* the memory objects, data set per run */
      slice_mem *m = &n->mem[t * SHAPES + k];
      if (!mem_new(&m->src, &sh->src_md, DNNL_MEMORY_NONE) ||
          !mem_new(&m->wei, &sh->wei_md, DNNL_MEMORY_NONE) ||
          !mem_new(&m->bias, &sh->bias_md, DNNL_MEMORY_NONE) ||
          !mem_new(&m->dst, &sh->dst_md, DNNL_MEMORY_NONE) ||
          !mem_new(&m->dst_nchw, &sh->dst_nchw_md, DNNL_MEMORY_NONE) ||
          !mem_new(&m->dst_blk, &sh->dst_blk_md, DNNL_MEMORY_NONE))
        return camd_error_set(err, CAMD_E_NOMEM, "oneDNN: out of memory");
    }
    if (dst_nchw && !n->rdst[k] && make_reorder(&sh->dst_md, &sh->dst_nchw_md, &n->rdst[k]))
      return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN: no output reorder");
    if (c->nhwc && !dst_nchw && !n->rdst_blk[k] &&
        make_reorder(&sh->dst_md, &sh->dst_blk_md, &n->rdst_blk[k]))
      return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN: no output reorder");
  }
  if (c->nhwc && !n->rnhwc[src_nchw ? 1 : 0]) { /* the whole input -> NHWC */
    const int f = src_nchw ? 1 : 0;
    dnnl_memory_desc_t from;
    dnnl_dims_t d = {1, c->geo.c, c->geo.h, c->geo.w};
    if (dnnl_memory_desc_init_by_tag(&from, 4, d, dnnl_f32, f ? dnnl_nchw : blocked_tag()) !=
            dnnl_success ||
        make_reorder(&from, &c->shapes[0].src_md, &n->rnhwc[f]))
      return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN: no input reorder");
    if (!mem_new(&n->nhwc_mem[f], &from, DNNL_MEMORY_NONE) ||
        !mem_new(&n->nhwc_mem[2], &c->shapes[0].src_md, DNNL_MEMORY_NONE))
      return camd_error_set(err, CAMD_E_NOMEM, "oneDNN: out of memory");
  }
  if (has_post) n->post1 = *post, n->have_post1 = true;
  const camd__dnnl_conv_geom *g = &c->geo;
  const bool src_reorder = ((src_nchw && c->src_blocked) || c->src_padded) && !c->nhwc;
  const int64_t hw = g->h * g->w, nb = (g->c + block - 1) / block; /* input blocks (padded) */
  if (src_reorder && !n->rsrc[0]) {
    int64_t per = (REORDER_PIECE_FLOATS + block * hw - 1) / (block * hw);
    if (per > nb) per = nb;
    /* Channels of a full piece and of the last one, which ends at C: with C not whole blocks
     * its blocked copy is padded, and the reorder writes the padding as zeros. */
    const int64_t pieces = (nb + per - 1) / per;
    const int64_t chans[2] = {per * block, g->c - (pieces - 1) * per * block};
    if (!(n->rsrc_mem = calloc((size_t)w->threads * 4, sizeof(dnnl_memory_t))))
      return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
    for (int k = 0; k < 2; k++) {
      dnnl_memory_desc_t from, to;
      dnnl_dims_t d = {1, chans[k], g->h, g->w};
      if (dnnl_memory_desc_init_by_tag(&from, 4, d, dnnl_f32, dnnl_nchw) != dnnl_success ||
          dnnl_memory_desc_init_by_tag(&to, 4, d, dnnl_f32, blocked_tag()) != dnnl_success ||
          make_reorder(&from, &to, &n->rsrc[k]))
        return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN: no input reorder");
      for (int t = 0; t < w->threads; t++) {
        if (!mem_new(&n->rsrc_mem[t * 4 + k * 2], &from, DNNL_MEMORY_NONE) ||
            !mem_new(&n->rsrc_mem[t * 4 + k * 2 + 1], &to, DNNL_MEMORY_NONE))
          return camd_error_set(err, CAMD_E_NOMEM, "oneDNN: out of memory");
      }
    }
    n->rsrc_per = per;
  }
  /* The reorder buffers: the blocked input and the blocked output, channels padded to whole
   * blocks when they are not. */
  const int64_t mp = (g->m + block - 1) / block * block;
  return grow_block(w, scratch,
                    src_reorder || c->nhwc ? (size_t)(nb * block * hw) * sizeof(float) : 0,
                    dst_nchw || c->nhwc ? (size_t)(mp * g->oh * g->ow) * sizeof(float) : 0, err);
}

typedef struct slice_job {
  camd__dnnl_worker *w;
  const camd__dnnl_conv *c;
  node_prims *n;
  int variant;
  const float *src;    /* item 0's input (blocked, or NCHW when the conv reads NCHW) */
  const float *sum_in; /* item 0's addend or NULL */
  float *y;            /* item 0's output */
  bool y_blocked;
  int64_t in_item, out_item; /* floats per item of src / y */
} slice_job;

/* Task i: slice i % n_slices of item i / n_slices. */
static void run_slice(void *arg, int64_t i, int t) {
  const slice_job *j = arg;
  const camd__dnnl_conv *c = j->c;
  const camd__dnnl_conv_geom *g = &c->geo;
  const int s = (int)(i % c->n_slices), k = c->shape_of[s];
  const int64_t item = i / c->n_slices, m0 = c->m0[s], ms = c->m0[s + 1] - m0;
  omp_one();
  slice_mem *m = &j->n->mem[t * SHAPES + k];
  const float *src = j->src + item * j->in_item + (g->group == 1 ? 0 : m0 * g->h * g->w);
  float *ys = j->y + item * j->out_item + m0 * g->oh * g->ow;
  const size_t out_bytes = (size_t)(ms * g->oh * g->ow) * sizeof(float);
  const float *sum = j->sum_in ? j->sum_in + item * j->out_item + m0 * g->oh * g->ow : NULL;
  if (sum && sum != ys) memcpy(ys, sum, out_bytes); /* else y took the addend's buffer */
  unsigned char *base = j->w->block_mem;
  float *tmp_dst = (float *)(base + j->w->scratch_bytes * (size_t)j->w->threads + j->w->src_bytes) +
                   m0 * g->oh * g->ow;
  dnnl_memory_set_data_handle(m->src, (void *)src);
  dnnl_memory_set_data_handle(m->wei, c->weights + c->wei_off[s]);
  dnnl_memory_set_data_handle(m->dst, j->y_blocked && !c->nhwc ? ys : tmp_dst);
  dnnl_memory_set_data_handle(m->scratch[j->variant], base + j->w->scratch_bytes * (size_t)t);
  if (c->has_bias) dnnl_memory_set_data_handle(m->bias, (void *)(c->bias + m0));
  dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, m->src},
                          {DNNL_ARG_WEIGHTS, m->wei},
                          {DNNL_ARG_DST, m->dst},
                          {DNNL_ARG_SCRATCHPAD, m->scratch[j->variant]},
                          {DNNL_ARG_BIAS, m->bias}};
  dnnl_primitive_execute(j->n->conv[k][j->variant], j->w->streams[t], c->has_bias ? 5 : 4, a);
  if (!j->y_blocked) {
    dnnl_memory_set_data_handle(m->dst_nchw, ys);
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, m->dst}, {DNNL_ARG_TO, m->dst_nchw}};
    dnnl_primitive_execute(j->n->rdst[k], j->w->streams[t], 2, ra);
  } else if (c->nhwc) {
    dnnl_memory_set_data_handle(m->dst_blk, ys);
    dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, m->dst}, {DNNL_ARG_TO, m->dst_blk}};
    dnnl_primitive_execute(j->n->rdst_blk[k], j->w->streams[t], 2, ra);
  }
  dnnl_stream_wait(j->w->streams[t]);
}

/* NCHW -> blocked input reorder in pieces of whole channel blocks on the pool (a plain copy:
 * the split cannot change a bit). Piece i: blocks [i * per, (i + 1) * per), one oneDNN reorder
 * (jit, 1.1-1.7x faster than 4x4 SSE transposes single-threaded). */
typedef struct src_reorder_job {
  camd__dnnl_worker *w;
  const node_prims *n;
  const float *x; /* one item, NCHW */
  float *dst;     /* one item, [ceil(C/B)][H][W][B] */
  int64_t pieces, hw;
} src_reorder_job;

static void src_reorder_piece(void *arg, int64_t i, int t) {
  const src_reorder_job *j = arg;
  const int64_t per = j->n->rsrc_per, off = i * per * block * j->hw;
  const int k = i + 1 < j->pieces ? 0 : 1; /* the last piece ends at C */
  dnnl_memory_t from = j->n->rsrc_mem[t * 4 + k * 2], to = j->n->rsrc_mem[t * 4 + k * 2 + 1];
  omp_one();
  dnnl_memory_set_data_handle(from, (void *)(j->x + off));
  dnnl_memory_set_data_handle(to, j->dst + off);
  dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  dnnl_primitive_execute(j->n->rsrc[k], j->w->streams[t], 2, ra);
  dnnl_stream_wait(j->w->streams[t]);
}

bool camd__dnnl_conv_forward(camd__dnnl_worker *w, const camd__dnnl_conv *c, int node_index,
                             const camd_post_op *post, const float *sum_in, const float *x,
                             bool x_blocked, float *y, bool y_blocked, int64_t batch,
                             camd__pool *pool) {
  node_prims *n = &w->nodes[node_index];
  const int v = (post && post->kind != CAMD_POST_NONE ? 1 : 0) | (sum_in ? 2 : 0);
  const bool src_reorder = ((!x_blocked && c->src_blocked) || c->src_padded) && !c->nhwc;
  for (int k = 0; k < c->n_shapes; k++) {
    if (!n->conv[k][v] || (!y_blocked && !n->rdst[k]) || (c->nhwc && y_blocked && !n->rdst_blk[k]))
      return false;
  }
  if (src_reorder && !n->rsrc[0]) return false;
  if (c->nhwc && (sum_in || !n->rnhwc[x_blocked ? 0 : 1])) return false;
  const camd__dnnl_conv_geom *g = &c->geo;
  const int64_t in_item = g->c * g->h * g->w, out_item = g->m * g->oh * g->ow;
  float *tmp_src = (float *)((unsigned char *)w->block_mem + w->scratch_bytes * (size_t)w->threads);
  slice_job j = {w, c, n, v, x, sum_in, y, y_blocked, in_item, out_item};
  if (c->nhwc) { /* per item: the input to NHWC here, then the slices */
    for (int64_t i = 0; i < batch; i++) {
      const int f = x_blocked ? 0 : 1;
      omp_one();
      dnnl_memory_set_data_handle(n->nhwc_mem[f], (void *)(x + i * in_item));
      dnnl_memory_set_data_handle(n->nhwc_mem[2], tmp_src);
      dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, n->nhwc_mem[f]}, {DNNL_ARG_TO, n->nhwc_mem[2]}};
      dnnl_primitive_execute(n->rnhwc[f], w->streams[0], 2, ra);
      dnnl_stream_wait(w->streams[0]);
      j.src = tmp_src, j.y = y + i * out_item;
      camd__pool_for(pool, c->n_slices, run_slice, &j);
    }
    return true;
  }
  if (!src_reorder && y_blocked) { /* every (item, slice) at once */
    camd__pool_for(pool, batch * c->n_slices, run_slice, &j);
    return true;
  }
  for (int64_t i = 0; i < batch; i++) { /* one item at a time through the reorder buffers */
    j.src = x + i * in_item, j.y = y + i * out_item,
    j.sum_in = sum_in ? sum_in + i * out_item : NULL;
    if (src_reorder) { /* whole blocks per piece, the pieces on the pool */
      const int64_t nb = (g->c + block - 1) / block, per = n->rsrc_per;
      src_reorder_job rj = {w, n, j.src, tmp_src, (nb + per - 1) / per, g->h * g->w};
      camd__pool_for(pool, rj.pieces, src_reorder_piece, &rj);
      j.src = tmp_src;
    }
    camd__pool_for(pool, c->n_slices, run_slice, &j);
  }
  return true;
}

#endif
