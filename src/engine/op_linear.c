/* Linear ops: Gemm (opset 1..22) and MatMul (opset 1..22), forward and input-gradient backward,
 * every product through camd_gemm.
 *
 * Gemm: Y[M, N] = alpha * op(A) · op(B) + beta * C, C unidirectionally broadcast to [M, N]
 * (pre-filled into Y, then GEMM with beta 1). The common case is a batched A [batch, K] and a
 * constant B [N, K] with transB = 1. transA with a batched A would move the batch off the
 * leading axis and is rejected.
 * MatMul: numpy semantics. 1-D operands are promoted ([K] -> [1, K] for A, [K, 1] for B, the
 * added axis dropped from the result); batch dims broadcast. When B has no batch dims, all of
 * A's leading dims fold into the rows of one GEMM: [rows, K] · [K, N].
 * Backward adds alpha * dY · op(B)ᵀ into dA (and op(A)ᵀ · dY into dB when B is not a
 * constant); broadcast batch items accumulate through beta = 1.
 * Batch invariance: an item's result must not depend on how many items run with it, but a BLAS
 * picks other kernels for other matrix sizes (OpenBLAS: gemv-like and "small matrix" paths)
 * and sums in another order. So when A is a batched activation, every product that involves
 * it runs one batch item at a time (same sizes whatever the batch).
 */
#include <limits.h>
#include <string.h>

#include "engine/cpu.h"
#include "engine/op.h"
#include "engine/pool.h"

static bool fits_int(int64_t v) {
  return v >= 0 && v <= INT_MAX;
}

/* ================================ Gemm ================================ */

typedef struct gemm_params {
  float alpha, beta;
  bool trans_a, trans_b;
  bool has_c;
} gemm_params;

/* C viewed as [cm, cn] with cm in {1, M}, cn in {1, N}. */
static int gemm_c_view(const camd_shape *c, int64_t m, int64_t n, int64_t *cm, int64_t *cn) {
  *cm = 1;
  *cn = 1;
  if (c->ndim > 2) return -1;
  if (c->ndim >= 1) *cn = c->dims[c->ndim - 1];
  if (c->ndim == 2) *cm = c->dims[0];
  if ((*cm != 1 && *cm != m) || (*cn != 1 && *cn != n)) return -1;
  return 0;
}

static void gemm_dims(const gemm_params *p, const camd_shape *a, const camd_shape *b, int64_t *m,
                      int64_t *k, int64_t *kb, int64_t *n) {
  *m = p->trans_a ? a->dims[1] : a->dims[0];
  *k = p->trans_a ? a->dims[0] : a->dims[1];
  *kb = p->trans_b ? b->dims[1] : b->dims[0];
  *n = p->trans_b ? b->dims[0] : b->dims[1];
}

/* A is a batched [batch, K] activation: its rows are batch items. */
static bool per_item_rows(const camd_op_ctx *ctx, const gemm_params *p) {
  return !p->trans_a && (ctx->node->in_batched & 1u) && ctx->in[0].shape.dims[0] > 1;
}

#define GEMM_COLS 256 /* output columns per task of a one-row product */

/* y[j] = alpha * (x · W[j, :]) (+ beta * y[j] when beta != 0) for n rows of W [n, k] (row
 * stride ldw): a classifier at batch 1, memory-bound on W. One pass over each row, reading W
 * once (OpenBLAS's sgemm packs W first: 0.26 -> 0.16 ms for MobileNetV2's 1000 x 1280 with W
 * out of cache, a throw-away driver). The sum has a fixed shape: ROW_LANES partial sums over
 * k (lane l takes k = l mod ROW_LANES, in k order), then halved pairwise (lanes l and l + h for
 * h = 8, 4, 2, 1). Plain float products and sums, no FMA contraction in ISO C mode, so every
 * variant below computes the same bits. */
#define ROW_LANES 16
#define ROW_DOT_KERNEL(NAME, TARGET)                                                          \
  static TARGET void NAME(const float *restrict x, const float *restrict w, int64_t ldw,      \
                          int64_t k, int64_t n, float alpha, float beta, float *restrict y) { \
    for (int64_t j = 0; j < n; j++) {                                                         \
      const float *restrict wr = w + j * ldw;                                                 \
      float acc[ROW_LANES] = {0};                                                             \
      int64_t q = 0;                                                                          \
      for (; q + ROW_LANES <= k; q += ROW_LANES)                                              \
        for (int l = 0; l < ROW_LANES; l++) acc[l] += x[q + l] * wr[q + l];                   \
      for (int l = 0; q + l < k; l++) acc[l] += x[q + l] * wr[q + l];                         \
      for (int h = ROW_LANES / 2; h > 0; h /= 2)                                              \
        for (int l = 0; l < h; l++) acc[l] += acc[l + h];                                     \
      y[j] = beta != 0.0f ? alpha * acc[0] + beta * y[j] : alpha * acc[0];                    \
    }                                                                                         \
  }
ROW_DOT_KERNEL(row_dot_generic, )
#if defined(__x86_64__)
ROW_DOT_KERNEL(row_dot_avx2, __attribute__((target("avx2,fma"))))
ROW_DOT_KERNEL(row_dot_avx512,
               __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma"))))
#endif

typedef void (*row_dot_fn)(const float *restrict x, const float *restrict w, int64_t ldw, int64_t k,
                           int64_t n, float alpha, float beta, float *restrict y);

static row_dot_fn row_dot_pick(void) {
#if defined(__x86_64__)
  const camd__cpu_level level = camd__cpu();
  if (level == CAMD_CPU_AVX512) return row_dot_avx512;
  if (level == CAMD_CPU_AVX2) return row_dot_avx2;
#endif
  return row_dot_generic;
}

typedef struct gemm_row_job {
  const gemm_params *p;
  const float *a, *b;
  float *y;
  int lda, ldb, n, k;
  float beta;
  int64_t chunks; /* column chunks per row */
  row_dot_fn row_dot;
} gemm_row_job;

static void task_gemm_row(void *arg, int64_t t, int thread) {
  (void)thread;
  const gemm_row_job *j = arg;
  const int64_t i = t / j->chunks, c0 = t % j->chunks * GEMM_COLS;
  const int64_t nc = j->n - c0 < GEMM_COLS ? j->n - c0 : GEMM_COLS;
  if (j->p->trans_b) { /* W [N, K]: output column c is the dot product with row c */
    j->row_dot(j->a + i * j->lda, j->b + c0 * j->ldb, j->ldb, j->k, nc, j->p->alpha, j->beta,
               j->y + i * j->n + c0);
    return;
  }
  camd_gemm(false, false, 1, (int)nc, j->k, j->p->alpha, j->a + i * j->lda, j->lda, j->b + c0,
            j->ldb, j->beta, j->y + i * j->n + c0, j->n);
}

static void gemm_forward(const camd_op_ctx *ctx) {
  const gemm_params *p = ctx->params;
  const camd_shape *as = &ctx->in[0].shape, *bs = &ctx->in[1].shape;
  int64_t m, k, kb, n;
  gemm_dims(p, as, bs, &m, &k, &kb, &n);
  float *y = ctx->out[0].data;
  float beta = 0.0f;
  if (p->has_c && p->beta != 0.0f) {
    int64_t cm, cn;
    const float *c = ctx->in[2].data;
    gemm_c_view(&ctx->in[2].shape, m, n, &cm, &cn);
    for (int64_t i = 0; i < m; i++) {
      const float *cr = c + (cm == 1 ? 0 : i * cn);
      float *yr = y + i * n;
      if (cn == 1) {
        for (int64_t j = 0; j < n; j++) yr[j] = cr[0];
      } else {
        memcpy(yr, cr, (size_t)n * sizeof(float));
      }
    }
    beta = p->beta;
  }
  const int lda = (int)as->dims[1], ldb = (int)bs->dims[1];
  if (per_item_rows(ctx, p) || (m == 1 && !p->trans_a)) {
    /* One row per batch item (see the top comment), in chunks of GEMM_COLS output columns
     * over the session's pool (a classifier's 1000 outputs): the same calls whatever the
     * batch and the threads. */
    gemm_row_job j = {p,
                      ctx->in[0].data,
                      ctx->in[1].data,
                      y,
                      lda,
                      ldb,
                      (int)n,
                      (int)k,
                      beta,
                      (n + GEMM_COLS - 1) / GEMM_COLS,
                      row_dot_pick()};
    camd__pool_for(ctx->pool, m * j.chunks, task_gemm_row, &j);
    return;
  }
  camd_gemm(p->trans_a, p->trans_b, (int)m, (int)n, (int)k, p->alpha, ctx->in[0].data, lda,
            ctx->in[1].data, ldb, beta, y, (int)n);
}

/* dA[i, :] += alpha * Σ_j dY[i, j] · B[j, :] for B [N, K] (transB) over the non-zero dY[i, j]
 * only, when at most one in SPARSE_SEED of them is non-zero: a class score's seed is one-hot, so
 * a classifier's backward reads one row of its weights (8 KB of ResNet-50's 8 MB) instead of all
 * of them. Returns false (nothing done) for a denser row. A one-hot seed gives the bits of the
 * dense product (the other terms are exact zeros); for several non-zeros the sum runs in j order.
 * The choice depends on the row's values only, so an item's gradient is the same alone or
 * batched. */
#define SPARSE_SEED 8
static bool sparse_row_grad(const gemm_params *p, const float *dy, int64_t n, const float *b,
                            int64_t ldb, int64_t k, float *da) {
  int64_t nnz = 0;
  for (int64_t j = 0; j < n; j++) nnz += dy[j] != 0.0f;
  if (nnz * SPARSE_SEED > n) return false;
  for (int64_t j = 0; j < n; j++) {
    if (dy[j] == 0.0f) continue;
    const float s = p->alpha * dy[j], *row = b + j * ldb;
    for (int64_t c = 0; c < k; c++) da[c] += s * row[c];
  }
  return true;
}

static void gemm_backward(const camd_op_ctx *ctx) {
  const gemm_params *p = ctx->params;
  const float *dy = ctx->grad_out[0].data;
  if (!dy) return;
  const camd_shape *as = &ctx->in[0].shape, *bs = &ctx->in[1].shape;
  int64_t m, k, kb, n;
  gemm_dims(p, as, bs, &m, &k, &kb, &n);
  const int lda = (int)as->dims[1], ldb = (int)bs->dims[1];
  float *da = ctx->grad_in[0].data;
  if (da && !p->trans_a && p->trans_b && (m == 1 || per_item_rows(ctx, p))) {
    /* item by item: the sparse rows by their non-zero seeds, the others as below */
    for (int64_t i = 0; i < m; i++) {
      if (!sparse_row_grad(p, dy + i * n, n, ctx->in[1].data, ldb, k, da + i * k))
        camd_gemm(false, !p->trans_b, 1, (int)k, (int)n, p->alpha, dy + i * n, (int)n,
                  ctx->in[1].data, ldb, 1.0f, da + i * k, (int)k);
    }
  } else if (da) {
    if (per_item_rows(ctx, p)) { /* dA[i, K] += alpha * dY[i] · op(B)ᵀ, item by item */
      for (int64_t i = 0; i < m; i++) {
        camd_gemm(false, !p->trans_b, 1, (int)k, (int)n, p->alpha, dy + i * n, (int)n,
                  ctx->in[1].data, ldb, 1.0f, da + i * k, (int)k);
      }
    } else if (!p->trans_a) { /* dA[M, K] += alpha * dY · op(B)ᵀ */
      camd_gemm(false, !p->trans_b, (int)m, (int)k, (int)n, p->alpha, dy, (int)n, ctx->in[1].data,
                ldb, 1.0f, da, (int)k);
    } else { /* A is [K, M]: dA += alpha * op(B) · dYᵀ */
      camd_gemm(p->trans_b, true, (int)k, (int)m, (int)n, p->alpha, ctx->in[1].data, ldb, dy,
                (int)n, 1.0f, da, (int)m);
    }
  }
  float *db = ctx->grad_in[1].data;
  if (db) {
    if (!p->trans_b) { /* dB[K, N] += alpha * op(A)ᵀ · dY */
      camd_gemm(!p->trans_a, false, (int)k, (int)n, (int)m, p->alpha, ctx->in[0].data, lda, dy,
                (int)n, 1.0f, db, (int)n);
    } else { /* B is [N, K]: dB += alpha * dYᵀ · op(A) */
      camd_gemm(true, p->trans_a, (int)n, (int)k, (int)m, p->alpha, dy, (int)n, ctx->in[0].data,
                lda, 1.0f, db, (int)k);
    }
  }
  float *dc = p->has_c ? ctx->grad_in[2].data : NULL;
  if (dc) {
    int64_t cm, cn;
    gemm_c_view(&ctx->in[2].shape, m, n, &cm, &cn);
    for (int64_t i = 0; i < m; i++) {
      float *cr = dc + (cm == 1 ? 0 : i * cn);
      const float *gr = dy + i * n;
      if (cn == 1) {
        float s = 0.0f;
        for (int64_t j = 0; j < n; j++) s += gr[j];
        cr[0] += p->beta * s;
      } else {
        for (int64_t j = 0; j < n; j++) cr[j] += p->beta * gr[j];
      }
    }
  }
}

static int gemm_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  if (node->n_in < 2 || node->n_in > 3 || node->in[0] < 0 || node->in[1] < 0) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects inputs A, B and optional C");
  }
  if (node->n_out != 1) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects exactly one output");
  }
  int64_t ta = 0, tb = 0;
  float alpha = 1.0f, beta = 1.0f;
  int rc = camd__attr_int(node, "transA", 0, &ta, err);
  if (!rc) rc = camd__attr_int(node, "transB", 0, &tb, err);
  if (!rc) rc = camd__attr_float(node, "alpha", 1.0f, &alpha, err);
  if (!rc) rc = camd__attr_float(node, "beta", 1.0f, &beta, err);
  if (rc) return rc;
  for (int i = 0; i < node->n_in; i++) {
    if (node->in[i] < 0) continue;
    camd_shape s;
    camd_dtype t;
    const void *d;
    if (camd__node_input(g, node, i, &s, &t, &d)) {
      return camd__node_error(err, node, CAMD_E_INVALID, "bad input %d", i);
    }
    if (t != CAMD_FLOAT32) {
      return camd__node_error(err, node, CAMD_E_UNSUPPORTED, "only float32 inputs are supported");
    }
    if (i < 2 && s.ndim != 2) {
      return camd__node_error(err, node, CAMD_E_SHAPE, "input %s has rank %d, expected 2",
                              i == 0 ? "A" : "B", s.ndim);
    }
  }
  if (ta && (node->in_batched & 1u)) {
    return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                            "transA = 1 with a batched A would mix the batch into the reduction");
  }
  gemm_params *p = camd__node_params_alloc(g, sizeof(*p));
  if (!p) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  p->alpha = alpha;
  p->beta = beta;
  p->trans_a = ta != 0;
  p->trans_b = tb != 0;
  p->has_c = node->n_in == 3 && node->in[2] >= 0;
  node->params = p;
  node->scratch_floats = 0;
  node->bwd_scratch_floats = 0;
  return 0;
}

static int gemm_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                      camd_error *err) {
  const gemm_params *p = node->params;
  if (!p) return camd__node_error(err, node, CAMD_E_STATE, "not prepared");
  if (in[0].ndim != 2 || in[1].ndim != 2) {
    return camd__node_error(err, node, CAMD_E_SHAPE, "A and B must have rank 2");
  }
  int64_t m, k, kb, n;
  gemm_dims(p, &in[0], &in[1], &m, &k, &kb, &n);
  if (k != kb) {
    return camd__node_error(err, node, CAMD_E_SHAPE,
                            "inner dimensions differ: op(A) is [%lld, %lld], op(B) is [%lld, %lld]",
                            (long long)m, (long long)k, (long long)kb, (long long)n);
  }
  if (!fits_int(m) || !fits_int(n) || !fits_int(k) || !fits_int(in[0].dims[1]) ||
      !fits_int(in[1].dims[1])) {
    return camd__node_error(err, node, CAMD_E_LIMIT, "matrix too large");
  }
  if (p->has_c) {
    int64_t cm, cn;
    if (gemm_c_view(&in[2], m, n, &cm, &cn)) {
      char buf[96];
      camd_shape_format(&in[2], buf, sizeof(buf));
      return camd__node_error(err, node, CAMD_E_SHAPE, "C %s does not broadcast to [%lld, %lld]",
                              buf, (long long)m, (long long)n);
    }
  }
  out[0].ndim = 2;
  out[0].dims[0] = m;
  out[0].dims[1] = n;
  return 0;
}

/* =============================== MatMul =============================== */

typedef struct mm_geom {
  int64_t m, k, n;
  int nb;                      /* broadcast batch rank */
  int64_t ob[CAMD_MAX_DIMS];   /* broadcast batch dims */
  int64_t astr[CAMD_MAX_DIMS]; /* element stride of A per batch dim (0 when broadcast) */
  int64_t bstr[CAMD_MAX_DIMS];
  int64_t nbatch;    /* product of ob */
  bool fold;         /* B has no batch dims: A's rows fold into one GEMM */
  bool a_vec, b_vec; /* 1-D operands */
} mm_geom;

static int mm_plan(const camd_shape *a, const camd_shape *b, mm_geom *g) {
  memset(g, 0, sizeof(*g));
  if (a->ndim < 1 || b->ndim < 1) return -1;
  g->a_vec = a->ndim == 1;
  g->b_vec = b->ndim == 1;
  g->m = g->a_vec ? 1 : a->dims[a->ndim - 2];
  g->k = a->dims[a->ndim - 1];
  const int64_t kb = g->b_vec ? b->dims[0] : b->dims[b->ndim - 2];
  g->n = g->b_vec ? 1 : b->dims[b->ndim - 1];
  if (g->k != kb) return -1;
  const int anb = g->a_vec ? 0 : a->ndim - 2, bnb = g->b_vec ? 0 : b->ndim - 2;
  g->nb = anb > bnb ? anb : bnb;
  int64_t sa = g->m * g->k, sb = g->k * g->n;
  g->nbatch = 1;
  for (int d = g->nb - 1; d >= 0; d--) {
    const int ia = d - (g->nb - anb), ib = d - (g->nb - bnb);
    const int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (da != db && da != 1 && db != 1) return -1;
    g->ob[d] = da > db ? da : db;
    g->astr[d] = da == 1 ? 0 : sa;
    g->bstr[d] = db == 1 ? 0 : sb;
    sa *= da;
    sb *= db;
    g->nbatch *= g->ob[d];
  }
  g->fold = bnb == 0;
  return 0;
}

/* Offsets of A and B for flat batch index i. */
static void mm_offsets(const mm_geom *g, int64_t i, int64_t *ao, int64_t *bo) {
  int64_t a = 0, b = 0;
  for (int d = g->nb - 1; d >= 0; d--) {
    const int64_t idx = i % g->ob[d];
    i /= g->ob[d];
    a += idx * g->astr[d];
    b += idx * g->bstr[d];
  }
  *ao = a;
  *bo = b;
}

/* Batch items among the folded rows of A (1 when A is not batched). */
static int64_t mm_items(const camd_op_ctx *ctx) {
  const camd_shape *as = &ctx->in[0].shape;
  return (ctx->node->in_batched & 1u) && as->ndim >= 2 ? as->dims[0] : 1;
}

static void matmul_forward(const camd_op_ctx *ctx) {
  mm_geom g;
  mm_plan(&ctx->in[0].shape, &ctx->in[1].shape, &g);
  const float *a = ctx->in[0].data, *b = ctx->in[1].data;
  float *y = ctx->out[0].data;
  const int m = (int)g.m, k = (int)g.k, n = (int)g.n;
  if (g.fold) { /* [rows, K] · [K, N], one batch item's rows at a time (top comment) */
    const int64_t items = mm_items(ctx), rows = g.nbatch * g.m / items;
    for (int64_t i = 0; i < items; i++) {
      camd_gemm(false, false, (int)rows, n, k, 1.0f, a + i * rows * k, k, b, n, 0.0f,
                y + i * rows * n, n);
    }
    return;
  }
  for (int64_t i = 0; i < g.nbatch; i++) {
    int64_t ao, bo;
    mm_offsets(&g, i, &ao, &bo);
    camd_gemm(false, false, m, n, k, 1.0f, a + ao, k, b + bo, n, 0.0f, y + i * g.m * g.n, n);
  }
}

static void matmul_backward(const camd_op_ctx *ctx) {
  const float *dy = ctx->grad_out[0].data;
  if (!dy) return;
  mm_geom g;
  mm_plan(&ctx->in[0].shape, &ctx->in[1].shape, &g);
  const float *a = ctx->in[0].data, *b = ctx->in[1].data;
  float *da = ctx->grad_in[0].data, *db = ctx->grad_in[1].data;
  const int m = (int)g.m, k = (int)g.k, n = (int)g.n;
  if (g.fold) {
    const int64_t items = mm_items(ctx), rows = g.nbatch * g.m / items;
    for (int64_t i = 0; da && i < items; i++) {
      camd_gemm(false, true, (int)rows, k, n, 1.0f, dy + i * rows * n, n, b, n, 1.0f,
                da + i * rows * k, k);
    }
    if (db) {
      camd_gemm(true, false, k, n, (int)(g.nbatch * g.m), 1.0f, a, k, dy, n, 1.0f, db, n);
    }
    return;
  }
  for (int64_t i = 0; i < g.nbatch; i++) {
    int64_t ao, bo;
    mm_offsets(&g, i, &ao, &bo);
    const float *dyi = dy + i * g.m * g.n;
    if (da) camd_gemm(false, true, m, k, n, 1.0f, dyi, n, b + bo, n, 1.0f, da + ao, k);
    if (db) camd_gemm(true, false, k, n, m, 1.0f, a + ao, k, dyi, n, 1.0f, db + bo, n);
  }
}

static int matmul_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  if (node->n_in != 2 || node->in[0] < 0 || node->in[1] < 0 || node->n_out != 1) {
    return camd__node_error(err, node, CAMD_E_INVALID, "expects inputs A, B and one output");
  }
  for (int i = 0; i < 2; i++) {
    camd_shape s;
    camd_dtype t;
    const void *d;
    if (camd__node_input(g, node, i, &s, &t, &d)) {
      return camd__node_error(err, node, CAMD_E_INVALID, "bad input %d", i);
    }
    if (t != CAMD_FLOAT32) {
      return camd__node_error(err, node, CAMD_E_UNSUPPORTED, "only float32 inputs are supported");
    }
  }
  node->scratch_floats = 0;
  node->bwd_scratch_floats = 0;
  return 0;
}

static int matmul_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                        camd_error *err) {
  mm_geom g;
  if (mm_plan(&in[0], &in[1], &g)) {
    char ba[96], bb[96];
    camd_shape_format(&in[0], ba, sizeof(ba));
    camd_shape_format(&in[1], bb, sizeof(bb));
    return camd__node_error(err, node, CAMD_E_SHAPE, "cannot multiply %s by %s", ba, bb);
  }
  if (!fits_int(g.m) || !fits_int(g.k) || !fits_int(g.n) || !fits_int(g.nbatch * g.m)) {
    return camd__node_error(err, node, CAMD_E_LIMIT, "matrix too large");
  }
  int r = 0;
  for (int d = 0; d < g.nb; d++) out[0].dims[r++] = g.ob[d];
  if (!g.a_vec) out[0].dims[r++] = g.m;
  if (!g.b_vec) out[0].dims[r++] = g.n;
  out[0].ndim = r;
  return 0;
}

const camd_op_desc camd__op_gemm = {.op_type = "Gemm",
                                    .opset_min = 1,
                                    .opset_max = 22,
                                    .prepare = gemm_prepare,
                                    .infer = gemm_infer,
                                    .forward = gemm_forward,
                                    .backward = gemm_backward,
                                    .bwd_needs_inputs = CAMD_IN(0) | CAMD_IN(1),
                                    .bwd_needs_outputs = false,
                                    .grad_inputs = CAMD_IN(0) | CAMD_IN(1) | CAMD_IN(2)};
const camd_op_desc camd__op_matmul = {.op_type = "MatMul",
                                      .opset_min = 1,
                                      .opset_max = 22,
                                      .prepare = matmul_prepare,
                                      .infer = matmul_infer,
                                      .forward = matmul_forward,
                                      .backward = matmul_backward,
                                      .bwd_needs_inputs = CAMD_IN(0) | CAMD_IN(1),
                                      .bwd_needs_outputs = false,
                                      .grad_inputs = CAMD_IN(0) | CAMD_IN(1)};
