/* Elementwise binary ops Add, Sub, Mul, Div: numpy broadcasting (legacy axis broadcast before
 * opset 7), forward and input-gradient backward (summed over broadcast axes).
 *
 * Both operands may be batched (a residual Add), or one may be a constant of any rank. Every
 * run collapses the broadcast into a camd__bc_loop, so same-shape, scalar and per-channel
 * operands end up as one long innermost loop over contiguous or constant data; the op is
 * chosen by a switch outside the element loops.
 */
#include <string.h>

#include "engine/op.h"
#include "engine/op_bcast.h"
#include "engine/pool.h"

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV };

typedef struct binary_params {
  bool legacy;    /* opset < 7 */
  bool legacy_bc; /* opset < 7 with broadcast=1: B is aligned to A at `axis` */
  bool has_axis;  /* legacy axis attribute given (else suffix alignment) */
  int64_t axis;
} binary_params;

/* ---- shapes ---- */

/* Shape B is viewed as: identical except for legacy broadcasting, where B's dims are placed at
 * A's axis `axis` (suffix by default) by appending ones. */
static int binary_view_b(const camd_node *node, const camd_shape *a, const camd_shape *b,
                         camd_shape *bv, camd_error *err) {
  const binary_params *p = node->params;
  *bv = *b;
  if (!p || !p->legacy) return 0;
  if (!p->legacy_bc) {
    if (!camd_shape_equal(a, b)) {
      char sa[128], sb[128];
      camd_shape_format(a, sa, sizeof sa);
      camd_shape_format(b, sb, sizeof sb);
      return camd__node_error(err, node, CAMD_E_SHAPE,
                              "inputs %s and %s differ and broadcast=0 (opset %d)", sa, sb,
                              node->opset);
    }
    return 0;
  }
  if (camd_shape_count(b) == 1) {
    bv->ndim = 0;
    return 0;
  }
  int64_t start = p->has_axis ? p->axis : a->ndim - b->ndim;
  if (start < 0 && p->has_axis) start += a->ndim;
  if (start < 0 || start + b->ndim > a->ndim) {
    return camd__node_error(err, node, CAMD_E_SHAPE,
                            "legacy broadcast axis %lld does not fit B (rank %d) into A (rank %d)",
                            (long long)p->axis, b->ndim, a->ndim);
  }
  int nd = a->ndim - (int)start;
  for (int d = b->ndim; d < nd; d++) bv->dims[d] = 1;
  bv->ndim = nd;
  return 0;
}

static int binary_shapes(const camd_node *node, const camd_shape *a, const camd_shape *b,
                         camd_shape *bv, camd_shape *out, camd_error *err) {
  int rc = binary_view_b(node, a, b, bv, err);
  if (rc) return rc;
  if (camd__broadcast_shape(a, bv, out) != 0) {
    char sa[128], sb[128];
    camd_shape_format(a, sa, sizeof sa);
    camd_shape_format(b, sb, sizeof sb);
    return camd__node_error(err, node, CAMD_E_SHAPE, "cannot broadcast %s with %s", sa, sb);
  }
  return 0;
}

static int binary_infer(const camd_node *node, const camd_shape *in, camd_shape *out,
                        camd_error *err) {
  camd_shape bv;
  return binary_shapes(node, &in[0], &in[1], &bv, &out[0], err);
}

/* Loop over the output: operand 0 is A, operand 1 is B. */
static void binary_loop(const camd_op_ctx *ctx, camd__bc_loop *l, camd_shape *out) {
  camd_shape bv;
  int64_t st[CAMD_BC_MAX_OPS][CAMD_BC_MAX_DIMS];
  /* Shapes were validated by infer for this run; errors cannot happen here. */
  binary_shapes(ctx->node, &ctx->in[0].shape, &ctx->in[1].shape, &bv, out, NULL);
  camd__bc_strides(&ctx->in[0].shape, out->ndim, out->dims, st[0]);
  camd__bc_strides(&bv, out->ndim, out->dims, st[1]);
  camd__bc_setup(l, out->ndim, out->dims, 2, st);
}

static int binary_prepare(camd_graph *g, camd_node *node, camd_error *err) {
  if (node->n_in != 2 || node->n_out != 1) {
    return camd__node_error(err, node, CAMD_E_INVALID,
                            "expects 2 inputs and 1 output, got %d and %d", node->n_in,
                            node->n_out);
  }
  for (int i = 0; i < 2; i++) {
    camd_shape s;
    camd_dtype dt;
    const void *data;
    int rc = camd__node_input(g, node, i, &s, &dt, &data);
    if (rc) return camd__node_error(err, node, rc, "input %d is missing", i);
    if (dt != CAMD_FLOAT32) {
      return camd__node_error(err, node, CAMD_E_UNSUPPORTED,
                              "input %d is not float32 (integer arithmetic is only supported "
                              "when the loader folds it)",
                              i);
    }
  }
  if (node->opset < 7) {
    binary_params *p = camd__node_params_alloc(g, sizeof *p);
    if (!p) return camd__node_error(err, node, CAMD_E_NOMEM, "out of memory");
    int64_t bc = 0, axis = 0;
    int rc = camd__attr_int(node, "broadcast", 0, &bc, err);
    if (!rc) rc = camd__attr_int(node, "axis", 0, &axis, err);
    if (rc) return rc;
    p->legacy = true;
    p->legacy_bc = bc != 0;
    p->has_axis = camd__attr_find(node, "axis") != NULL;
    p->axis = axis;
    node->params = p;
  }
  return 0;
}

/* ---- forward ---- */

/* One innermost run: o[i] = a[i*sa] OP b[i*sb]. Written as an inline function called with
 * literal strides on the hot paths so each case compiles to its own vectorisable loop. */
static inline void binary_run(int kind, float *restrict o, const float *restrict a, int64_t sa,
                              const float *restrict b, int64_t sb, int64_t n) {
  switch (kind) {
    case BIN_ADD:
      for (int64_t i = 0; i < n; i++) o[i] = a[i * sa] + b[i * sb];
      break;
    case BIN_SUB:
      for (int64_t i = 0; i < n; i++) o[i] = a[i * sa] - b[i * sb];
      break;
    case BIN_MUL:
      for (int64_t i = 0; i < n; i++) o[i] = a[i * sa] * b[i * sb];
      break;
    default:
      for (int64_t i = 0; i < n; i++) o[i] = a[i * sa] / b[i * sb];
      break;
  }
}

typedef struct bin_job {
  int kind;
  float *o;
  const float *a, *b;
} bin_job;

static void bin_same_range(void *arg, int64_t b0, int64_t e) {
  const bin_job *j = arg;
  binary_run(j->kind, j->o + b0, j->a + b0, 1, j->b + b0, 1, e - b0);
}

/* Broadcast case: innermost runs [r0, r1) of the collapsed loop (each run is an output row). */
typedef struct bin_bc_job {
  int kind;
  float *o;
  const float *a, *b;
  camd__bc_loop l;
} bin_bc_job;

static void bin_rows_range(void *arg, int64_t r0, int64_t r1) {
  const bin_bc_job *j = arg;
  const camd__bc_loop *l = &j->l;
  const int kind = j->kind;
  const int64_t n = l->dims[l->nd - 1], sa = l->st[0][l->nd - 1], sb = l->st[1][l->nd - 1];
  int64_t idx[CAMD_BC_MAX_DIMS] = {0}, off[2];
  camd__bc_seek(l, 2, r0, idx, off);
  const float *a = j->a, *b = j->b;
  float *orow = j->o + r0 * n;
  for (int64_t r = r0; r < r1; r++, orow += n) {
    if (sa == 1 && sb == 1) {
      binary_run(kind, orow, a + off[0], 1, b + off[1], 1, n);
    } else if (sa == 1 && sb == 0) {
      binary_run(kind, orow, a + off[0], 1, b + off[1], 0, n);
    } else if (sa == 0 && sb == 1) {
      binary_run(kind, orow, a + off[0], 0, b + off[1], 1, n);
    } else {
      binary_run(kind, orow, a + off[0], sa, b + off[1], sb, n);
    }
    camd__bc_next(l, 2, idx, off);
  }
}

static void binary_forward(const camd_op_ctx *ctx, int kind) {
  camd__bc_loop l;
  camd_shape out;
  binary_loop(ctx, &l, &out);
  const float *a = ctx->in[0].data, *b = ctx->in[1].data;
  float *o = ctx->out[0].data;
  int64_t n = l.dims[l.nd - 1], sa = l.st[0][l.nd - 1], sb = l.st[1][l.nd - 1];
  if (l.nd == 1 && sa == 1 && sb == 1) { /* same shapes: one long run, split over threads */
    bin_job j = {kind, o, a, b};
    camd__pool_range(ctx->pool, n, CAMD_POOL_CHUNK, bin_same_range, &j);
    return;
  }
  /* Broadcast (squeeze-excite's [N,C,H,W] x [N,C,1,1], per-channel constants): pieces of whole
   * runs of about CAMD_POOL_CHUNK elements (elementwise: any split gives the same bits). */
  bin_bc_job j = {kind, o, a, b, l};
  const int64_t rows = camd__bc_rows(&l),
                per = n > 0 && n < CAMD_POOL_CHUNK ? CAMD_POOL_CHUNK / n : 1;
  camd__pool_range(ctx->pool, rows, per, bin_rows_range, &j);
}

static void add_forward(const camd_op_ctx *ctx) {
  binary_forward(ctx, BIN_ADD);
}
static void sub_forward(const camd_op_ctx *ctx) {
  binary_forward(ctx, BIN_SUB);
}
static void mul_forward(const camd_op_ctx *ctx) {
  binary_forward(ctx, BIN_MUL);
}
static void div_forward(const camd_op_ctx *ctx) {
  binary_forward(ctx, BIN_DIV);
}

/* ---- backward ---- */

/* Contribution of output element i to the gradient of input `which` (0 = A, 1 = B). */
#define BIN_TERM(kind, which, g, a, b)                          \
  ((kind) == BIN_ADD   ? (g)                                    \
   : (kind) == BIN_SUB ? ((which) == 0 ? (g) : -(g))            \
   : (kind) == BIN_MUL ? ((which) == 0 ? (g) * (b) : (g) * (a)) \
                       : ((which) == 0 ? (g) / (b) : -(g) * (((a) / (b)) / (b))))

/* One innermost run of the gradient of input `which`: t is that input's gradient with stride st
 * (0: the run is reduced into one element). a/b are only read by Mul and Div. */
static inline void binary_grad_run(int kind, int which, float *restrict t, int64_t st,
                                   const float *restrict g, const float *restrict a, int64_t sa,
                                   const float *restrict b, int64_t sb, int64_t n) {
  if (st == 0) {
    double s = 0;
    switch (kind) {
      case BIN_ADD:
        for (int64_t i = 0; i < n; i++) s += g[i];
        break;
      case BIN_SUB:
        for (int64_t i = 0; i < n; i++) s += BIN_TERM(BIN_SUB, which, g[i], 0.f, 0.f);
        break;
      case BIN_MUL:
        for (int64_t i = 0; i < n; i++) s += BIN_TERM(BIN_MUL, which, g[i], a[i * sa], b[i * sb]);
        break;
      default:
        for (int64_t i = 0; i < n; i++) s += BIN_TERM(BIN_DIV, which, g[i], a[i * sa], b[i * sb]);
        break;
    }
    t[0] += (float)s;
    return;
  }
  switch (kind) {
    case BIN_ADD:
      for (int64_t i = 0; i < n; i++) t[i * st] += g[i];
      break;
    case BIN_SUB:
      for (int64_t i = 0; i < n; i++) t[i * st] += BIN_TERM(BIN_SUB, which, g[i], 0.f, 0.f);
      break;
    case BIN_MUL:
      for (int64_t i = 0; i < n; i++) {
        t[i * st] += BIN_TERM(BIN_MUL, which, g[i], a[i * sa], b[i * sb]);
      }
      break;
    default:
      for (int64_t i = 0; i < n; i++) {
        t[i * st] += BIN_TERM(BIN_DIV, which, g[i], a[i * sa], b[i * sb]);
      }
      break;
  }
}

static void binary_grad(const camd_op_ctx *ctx, const camd__bc_loop *l, int kind, int which) {
  float *t = ctx->grad_in[which].data;
  const float *g = ctx->grad_out[0].data;
  /* Add/Sub backward does not read the inputs (they may not be kept). */
  bool reads = kind == BIN_MUL || kind == BIN_DIV;
  const float *a = reads ? ctx->in[0].data : NULL, *b = reads ? ctx->in[1].data : NULL;
  int64_t n = l->dims[l->nd - 1], sa = l->st[0][l->nd - 1], sb = l->st[1][l->nd - 1];
  int64_t st = which == 0 ? sa : sb;
  int64_t rows = camd__bc_rows(l), idx[CAMD_BC_MAX_DIMS] = {0}, off[2] = {0};
  for (int64_t r = 0; r < rows; r++) {
    float *tr = t + off[which];
    const float *gr = g + r * n;
    const float *ar = a ? a + off[0] : NULL, *br = b ? b + off[1] : NULL;
    if (st == 1 && sa == 1 && sb == 1) {
      binary_grad_run(kind, which, tr, 1, gr, ar, 1, br, 1, n);
    } else if (st == 1 && sb == 0) {
      binary_grad_run(kind, which, tr, 1, gr, ar, 1, br, 0, n);
    } else if (st == 1 && sa == 0) {
      binary_grad_run(kind, which, tr, 1, gr, ar, 0, br, 1, n);
    } else if (st == 0 && sa == 1 && sb == 0) {
      binary_grad_run(kind, which, tr, 0, gr, ar, 1, br, 0, n);
    } else if (st == 0 && sa == 0 && sb == 1) {
      binary_grad_run(kind, which, tr, 0, gr, ar, 0, br, 1, n);
    } else {
      binary_grad_run(kind, which, tr, st, gr, ar, sa, br, sb, n);
    }
    camd__bc_next(l, 2, idx, off);
  }
}

static void binary_backward(const camd_op_ctx *ctx, int kind) {
  if (!ctx->grad_out[0].data) return;
  if (!ctx->grad_in[0].data && !ctx->grad_in[1].data) return;
  camd__bc_loop l;
  camd_shape out;
  binary_loop(ctx, &l, &out);
  for (int which = 0; which < 2; which++) {
    if (ctx->grad_in[which].data) binary_grad(ctx, &l, kind, which);
  }
}

static void add_backward(const camd_op_ctx *ctx) {
  binary_backward(ctx, BIN_ADD);
}
static void sub_backward(const camd_op_ctx *ctx) {
  binary_backward(ctx, BIN_SUB);
}
static void mul_backward(const camd_op_ctx *ctx) {
  binary_backward(ctx, BIN_MUL);
}
static void div_backward(const camd_op_ctx *ctx) {
  binary_backward(ctx, BIN_DIV);
}

/* Opset 1..6: legacy `broadcast`/`axis` attributes; 7..14: numpy broadcasting; later versions
 * only add types. */
#define BINARY_DESC(name, fwd, bwd, needs)                                             \
  {                                                                                    \
    .op_type = name, .opset_min = 1, .opset_max = 22, .prepare = binary_prepare,       \
    .infer = binary_infer, .forward = fwd, .backward = bwd, .bwd_needs_inputs = needs, \
    .bwd_needs_outputs = false, .grad_inputs = 0x3                                     \
  }

const camd_op_desc camd__op_add = BINARY_DESC("Add", add_forward, add_backward, 0);
const camd_op_desc camd__op_sub = BINARY_DESC("Sub", sub_forward, sub_backward, 0);
const camd_op_desc camd__op_mul = BINARY_DESC("Mul", mul_forward, mul_backward, 0x3);
const camd_op_desc camd__op_div = BINARY_DESC("Div", div_forward, div_backward, 0x3);
