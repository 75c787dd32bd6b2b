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
                           const float *w, const float *b, camd__dnnl_conv **out, camd_error *err) {
  (void)g, (void)node, (void)geo, (void)w, (void)b, (void)err;
  *out = NULL;
  return 0;
}
bool camd__dnnl_conv_src_blockable(const camd__dnnl_conv *conv) {
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
                             bool x_blocked, float *y, bool y_blocked, int64_t batch) {
  (void)w, (void)conv, (void)node_index, (void)post, (void)sum_in, (void)x, (void)x_blocked,
      (void)y;
  (void)y_blocked, (void)batch;
  return false;
}

#else

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>

struct camd__dnnl_conv {
  camd__dnnl_conv_geom geo;
  bool src_blocked; /* C % block == 0: the primitive reads blocked input */
  bool has_bias;
  const float *bias;                                  /* graph constant */
  float *weights;                                     /* arena, in wei_md's format */
  dnnl_memory_desc_t src_md, wei_md, bias_md, dst_md; /* N = 1 */
  dnnl_memory_desc_t src_nchw_md, dst_nchw_md;
  dnnl_dims_t strides, dilates, pad_l, pad_r;
};

/* ---- process-wide engine and block size ---- */

static dnnl_engine_t engine;
static int block;

static void init_once(void) {
  /* Opt-in for now (CAMD_ONEDNN=1): with it on by default oracle.regnet_y_400mf's block3
   * gradient lands just past the oracle's kink rule (1.085 % of elements, limit 1 %). */
  const char *env = getenv("CAMD_ONEDNN");
  if (!env || strcmp(env, "1") != 0) return;
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

/* The convolution's primitive descriptor (weights md NULL: oneDNN chooses); NULL on failure. */
static dnnl_primitive_desc_t conv_pd(const camd__dnnl_conv *c, const dnnl_memory_desc_t *wei_md,
                                     const camd_post_op *post, bool sum) {
  dnnl_memory_desc_t wany;
  if (!wei_md) {
    const camd__dnnl_conv_geom *g = &c->geo;
    if (g->group == 1) {
      dnnl_dims_t wd = {g->m, g->c, g->kh, g->kw};
      dnnl_memory_desc_init_by_tag(&wany, 4, wd, dnnl_f32, dnnl_format_tag_any);
    } else {
      dnnl_dims_t wd = {g->group, g->m / g->group, g->c / g->group, g->kh, g->kw};
      dnnl_memory_desc_init_by_tag(&wany, 5, wd, dnnl_f32, dnnl_format_tag_any);
    }
    wei_md = &wany;
  }
  dnnl_convolution_desc_t cd;
  if (dnnl_dilated_convolution_forward_desc_init(
          &cd, dnnl_forward_inference, dnnl_convolution_direct, &c->src_md, wei_md,
          c->has_bias ? &c->bias_md : NULL, &c->dst_md, c->strides, c->dilates, c->pad_l,
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

int camd__dnnl_conv_attach(camd_graph *g, const camd_node *node, const camd__dnnl_conv_geom *geo,
                           const float *w, const float *b, camd__dnnl_conv **out, camd_error *err) {
  (void)node;
  *out = NULL;
  const int B = camd__dnnl_block();
  if (!B || geo->m % B != 0) return 0;
  if (geo->group > 1 && !(geo->group == geo->c && geo->group == geo->m)) return 0;
  if (geo->group == 1 && geo->oh * geo->ow == 1) return 0; /* a matrix-vector product */
  camd__dnnl_conv tmp;
  memset(&tmp, 0, sizeof(tmp));
  tmp.geo = *geo;
  tmp.src_blocked = geo->c % B == 0;
  if (geo->group > 1 && !tmp.src_blocked) return 0;
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
  dnnl_dims_t sd = {1, geo->c, geo->h, geo->w}, dd = {1, geo->m, geo->oh, geo->ow}, bd = {geo->m};
  if (dnnl_memory_desc_init_by_tag(&tmp.src_md, 4, sd, dnnl_f32,
                                   tmp.src_blocked ? blocked_tag() : dnnl_nchw) != dnnl_success ||
      dnnl_memory_desc_init_by_tag(&tmp.src_nchw_md, 4, sd, dnnl_f32, dnnl_nchw) != dnnl_success ||
      dnnl_memory_desc_init_by_tag(&tmp.dst_md, 4, dd, dnnl_f32, blocked_tag()) != dnnl_success ||
      dnnl_memory_desc_init_by_tag(&tmp.dst_nchw_md, 4, dd, dnnl_f32, dnnl_nchw) != dnnl_success ||
      dnnl_memory_desc_init_by_tag(&tmp.bias_md, 1, bd, dnnl_f32, dnnl_a) != dnnl_success)
    return 0;
  dnnl_primitive_desc_t pd = conv_pd(&tmp, NULL, NULL, false);
  if (!pd) return 0;
  tmp.wei_md = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
  dnnl_primitive_desc_destroy(pd);
  /* The weights once, in oneDNN's format, 64-byte aligned in the graph's arena. */
  const size_t bytes = dnnl_memory_desc_get_size(&tmp.wei_md);
  camd__dnnl_conv *c = camd__node_params_alloc(g, sizeof(*c));
  unsigned char *raw = camd__node_params_alloc(g, bytes + 64);
  if (!c || !raw) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  tmp.weights = (float *)(raw + (64 - (uintptr_t)raw % 64) % 64);
  dnnl_memory_desc_t user;
  if (geo->group == 1) {
    dnnl_dims_t wd = {geo->m, geo->c, geo->kh, geo->kw};
    dnnl_memory_desc_init_by_tag(&user, 4, wd, dnnl_f32, dnnl_oihw);
  } else {
    dnnl_dims_t wd = {geo->group, geo->m / geo->group, geo->c / geo->group, geo->kh, geo->kw};
    dnnl_memory_desc_init_by_tag(&user, 5, wd, dnnl_f32, dnnl_goihw);
  }
  if (reorder_now(&user, w, &tmp.wei_md, tmp.weights)) return 0; /* the arena keeps the bytes */
  *c = tmp;
  *out = c;
  return 0;
}

bool camd__dnnl_conv_src_blockable(const camd__dnnl_conv *conv) {
  return conv && conv->src_blocked;
}

int camd__conv_attach_dnnl(camd_graph *g, int *changed, camd_error *err) {
  *changed = 0;
  if (!camd__dnnl_block()) return 0;
  /* On the loading thread alone: no OpenMP team is left behind for a thread that may never
   * run a forward (the server's main thread). */
  const int omp_threads = omp_get_max_threads();
  omp_set_num_threads(1);
  int rc = 0;
  for (int k = 0; k < g->n_nodes && !rc; k++) {
    bool attached = false;
    rc = camd__conv_attach_dnnl_node(g, &g->nodes[k], &attached, err);
    *changed += attached;
  }
  omp_set_num_threads(omp_threads);
  return rc;
}

/* ---- per worker ---- */

/* Variants of a node's convolution: bit 0 = with the node's activation post-op, bit 1 = after
 * a sum post-op (fused residual Add). */
#define NODE_VARIANTS 4
typedef struct node_prims {
  dnnl_primitive_t conv[NODE_VARIANTS];
  camd_post_op post1; /* the activation of variants 1 and 3 */
  bool have_post1;
  size_t scratch_bytes[NODE_VARIANTS];
  dnnl_memory_t scratch_mem[NODE_VARIANTS];
  dnnl_primitive_t rsrc, rdst; /* NCHW -> blocked input, blocked -> NCHW output */
  dnnl_memory_t src_nchw, src, wei, bias, dst, dst_nchw;
} node_prims;

struct camd__dnnl_worker {
  int threads;
  int n_nodes;
  dnnl_stream_t stream;
  node_prims *nodes;
  void *block_mem; /* scratchpad | input reorder buffer | output reorder buffer */
  size_t scratch_bytes, src_bytes, dst_bytes;
};

int camd__dnnl_worker_create(int n_nodes, int threads, camd__dnnl_worker **out, camd_error *err) {
  *out = NULL;
  if (!camd__dnnl_block()) return 0;
  camd__dnnl_worker *w = calloc(1, sizeof(*w));
  if (!w || !(w->nodes = calloc((size_t)n_nodes + 1, sizeof(node_prims)))) {
    free(w);
    return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  }
  w->threads = threads;
  w->n_nodes = n_nodes;
  if (dnnl_stream_create(&w->stream, engine, dnnl_stream_default_flags) != dnnl_success) {
    free(w->nodes);
    free(w);
    return camd_error_set(err, CAMD_E_NOMEM, "oneDNN: cannot create a stream");
  }
  *out = w;
  return 0;
}

static void destroy_mem(dnnl_memory_t m) {
  if (m) dnnl_memory_destroy(m);
}

void camd__dnnl_worker_destroy(camd__dnnl_worker *w) {
  if (!w) return;
  for (int i = 0; i < w->n_nodes; i++) {
    node_prims *n = &w->nodes[i];
    for (int k = 0; k < NODE_VARIANTS; k++) {
      if (n->conv[k]) dnnl_primitive_destroy(n->conv[k]);
      destroy_mem(n->scratch_mem[k]);
    }
    if (n->rsrc) dnnl_primitive_destroy(n->rsrc);
    if (n->rdst) dnnl_primitive_destroy(n->rdst);
    destroy_mem(n->src_nchw);
    destroy_mem(n->src);
    destroy_mem(n->wei);
    destroy_mem(n->bias);
    destroy_mem(n->dst);
    destroy_mem(n->dst_nchw);
  }
  free(w->nodes);
  if (w->stream) dnnl_stream_destroy(w->stream);
  free(w->block_mem);
  free(w);
}

void camd__dnnl_worker_bind(const camd__dnnl_worker *w) {
  if (w && omp_get_max_threads() != w->threads) omp_set_num_threads(w->threads);
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
  void *m = aligned_alloc(64, scratch + src + dst + 64);
  if (!m) return camd_error_set(err, CAMD_E_NOMEM, "out of memory (oneDNN scratch)");
  memset(m, 0, scratch + src + dst + 64); /* first touch at plan time */
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

int camd__dnnl_worker_prepare(camd__dnnl_worker *w, const camd__dnnl_conv *c, int node_index,
                              const camd_post_op *post, bool sum, bool src_nchw, bool dst_nchw,
                              camd_error *err) {
  if (!w || !c || node_index < 0 || node_index >= w->n_nodes) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN is not used here");
  }
  camd__dnnl_worker_bind(w);
  node_prims *n = &w->nodes[node_index];
  const bool has_post = post && post->kind != CAMD_POST_NONE;
  const int k = (has_post ? 1 : 0) | (sum ? 2 : 0);
  if (has_post && n->have_post1 && !same_post(&n->post1, post)) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN: a second post-op for one node");
  }
  if (!n->src) { /* the memory objects, data set per run */
    if (dnnl_memory_create(&n->src_nchw, &c->src_nchw_md, engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&n->src, &c->src_md, engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&n->wei, &c->wei_md, engine, c->weights) ||
        dnnl_memory_create(&n->bias, &c->bias_md, engine, (void *)c->bias) ||
        dnnl_memory_create(&n->dst, &c->dst_md, engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&n->dst_nchw, &c->dst_nchw_md, engine, DNNL_MEMORY_NONE)) {
      return camd_error_set(err, CAMD_E_NOMEM, "oneDNN: out of memory");
    }
  }
  if (!n->conv[k]) {
    dnnl_primitive_desc_t pd = conv_pd(c, &c->wei_md, has_post ? post : NULL, sum);
    if (!pd) return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN: no fast convolution");
    const dnnl_memory_desc_t *smd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    n->scratch_bytes[k] = dnnl_memory_desc_get_size(smd);
    int bad = dnnl_memory_create(&n->scratch_mem[k], smd, engine, DNNL_MEMORY_NONE) ||
              dnnl_primitive_create(&n->conv[k], pd);
    dnnl_primitive_desc_destroy(pd);
    if (bad) return camd_error_set(err, CAMD_E_NOMEM, "oneDNN: cannot create a primitive");
    if (has_post) n->post1 = *post, n->have_post1 = true;
  }
  if (src_nchw && c->src_blocked && !n->rsrc && make_reorder(&c->src_nchw_md, &c->src_md, &n->rsrc))
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN: no input reorder");
  if (dst_nchw && !n->rdst && make_reorder(&c->dst_md, &c->dst_nchw_md, &n->rdst))
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "oneDNN: no output reorder");
  const camd__dnnl_conv_geom *g = &c->geo;
  return grow_block(w, n->scratch_bytes[k],
                    src_nchw && c->src_blocked ? (size_t)(g->c * g->h * g->w) * sizeof(float) : 0,
                    dst_nchw ? (size_t)(g->m * g->oh * g->ow) * sizeof(float) : 0, err);
}

bool camd__dnnl_conv_forward(camd__dnnl_worker *w, const camd__dnnl_conv *c, int node_index,
                             const camd_post_op *post, const float *sum_in, const float *x,
                             bool x_blocked, float *y, bool y_blocked, int64_t batch) {
  node_prims *n = &w->nodes[node_index];
  const int k = (post && post->kind != CAMD_POST_NONE ? 1 : 0) | (sum_in ? 2 : 0);
  if (!n->conv[k] || (!x_blocked && c->src_blocked && !n->rsrc) || (!y_blocked && !n->rdst))
    return false;
  const camd__dnnl_conv_geom *g = &c->geo;
  const int64_t in_item = g->c * g->h * g->w, out_item = g->m * g->oh * g->ow;
  unsigned char *base = w->block_mem;
  float *tmp_src = (float *)(base + w->scratch_bytes);
  float *tmp_dst = (float *)(base + w->scratch_bytes + w->src_bytes);
  dnnl_memory_set_data_handle(n->scratch_mem[k], base);
  for (int64_t i = 0; i < batch; i++) {
    const float *xi = x + i * in_item;
    float *yi = y + i * out_item;
    if (!x_blocked && c->src_blocked) {
      dnnl_memory_set_data_handle(n->src_nchw, (void *)xi);
      dnnl_memory_set_data_handle(n->src, tmp_src);
      dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, n->src_nchw}, {DNNL_ARG_TO, n->src}};
      dnnl_primitive_execute(n->rsrc, w->stream, 2, ra);
    } else {
      dnnl_memory_set_data_handle(n->src, (void *)xi);
    }
    if (sum_in) memcpy(yi, sum_in + i * out_item, (size_t)out_item * sizeof(float));
    dnnl_memory_set_data_handle(n->dst, y_blocked ? yi : tmp_dst);
    dnnl_exec_arg_t a[5] = {{DNNL_ARG_SRC, n->src},
                            {DNNL_ARG_WEIGHTS, n->wei},
                            {DNNL_ARG_DST, n->dst},
                            {DNNL_ARG_SCRATCHPAD, n->scratch_mem[k]},
                            {DNNL_ARG_BIAS, n->bias}};
    dnnl_primitive_execute(n->conv[k], w->stream, c->has_bias ? 5 : 4, a);
    if (!y_blocked) {
      dnnl_memory_set_data_handle(n->dst_nchw, yi);
      dnnl_exec_arg_t ra[2] = {{DNNL_ARG_FROM, n->dst}, {DNNL_ARG_TO, n->dst_nchw}};
      dnnl_primitive_execute(n->rdst, w->stream, 2, ra);
    }
  }
  dnnl_stream_wait(w->stream);
  return true;
}

#endif
