/* Load-time constant evaluator internals shared by onnx_fold.c (shape and data-movement ops,
 * dispatch) and onnx_fold_math.c (elementwise, reductions, quantisation).
 *
 * A fold evaluates one node whose inputs are constants (or, for Shape/Size, whose input has a
 * static shape) and adds its outputs to the graph as constants. Integers and bools are held as
 * int64 (bools as 0/1), every float type as float32. Results are capped at
 * CAMD__ONNX_MAX_FOLD_ELEMS elements, checked before allocation.
 */
#ifndef CAMD_ONNX_FOLD_H
#define CAMD_ONNX_FOLD_H

#include "onnx/onnx_internal.h"

typedef struct camd__fold {
  camd__onnx_ctx *ctx;
  const Onnx__NodeProto *node;
  const char *name;
  camd_error *err;
} camd__fold;

/* A constant input: borrowed data owned by the graph. */
typedef struct camd__fold_view {
  camd_dtype dtype;
  camd_shape shape;
  const void *data;
  size_t count;
} camd__fold_view;

/* Sets err to "node 'name' (op): <message>" and returns status. */
int camd__fold_err(camd__fold *f, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Bytes per element of a folded dtype (8 for int64, 4 for float32). */
size_t camd__fold_esize(camd_dtype d);
/* The node's attribute `name`, or NULL. */
const Onnx__AttributeProto *camd__fold_attr(const Onnx__NodeProto *n, const char *name);
/* Integer / float / integer-list attribute with a default (absent: *out = def, *present false). */
int camd__fold_attr_int(camd__fold *f, const char *name, int64_t def, int64_t *out);
int camd__fold_attr_float(camd__fold *f, const char *name, float def, float *out);
int camd__fold_attr_ints(camd__fold *f, const char *name, const int64_t **v, size_t *n,
                         bool *present);
/* True when optional input k is given (non-empty name). */
bool camd__fold_has_input(const camd__fold *f, size_t k);
/* Constant input k into *v: 0, 1 when it is not a constant (the node cannot fold), or a
 * negative status. */
int camd__fold_input(camd__fold *f, size_t k, camd__fold_view *v);
/* Input k as int64 scalar or 1-D list (same return convention). */
int camd__fold_ints(camd__fold *f, size_t k, const int64_t **vals, size_t *n);
/* Output buffer for `count` elements of dt. Above the fold cap an op the engine also runs is
 * left to the engine (*rc = 1), a loader-only op fails (*rc < 0); NULL in both cases. */
void *camd__fold_alloc(camd__fold *f, size_t count, camd_dtype dt, int *rc);
/* Adds output k as a constant of shape s; takes ownership of data in every case. */
int camd__fold_emit(camd__fold *f, size_t k, camd_dtype dt, const camd_shape *s, void *data);
/* Normalises axis into [0, rank) or fails with a message. */
int camd__fold_axis(camd__fold *f, int64_t axis, int rank, int64_t *out);
/* numpy broadcast of a and b into o; false when they do not broadcast. */
bool camd__fold_bcast(const camd_shape *a, const camd_shape *b, camd_shape *o);
/* Offset into `in` of the element broadcast to flat position k of `out`. */
size_t camd__fold_bcast_offset(const camd_shape *in, const camd_shape *out, size_t k);

/* Folds of onnx_fold_math.c: 0 folded, 1 not foldable here (left to the engine), < 0 error. */
int camd__fold_unary(camd__fold *f);      /* Ceil Floor Round Neg Abs Sqrt Reciprocal Sign Not */
int camd__fold_arith(camd__fold *f);      /* Add Sub Mul Div Mod Pow Max Min, comparisons, logic */
int camd__fold_clip(camd__fold *f);       /* Clip (attributes before opset 11, inputs after) */
int camd__fold_reduce(camd__fold *f);     /* ReduceSum ReduceProd ReduceMax ReduceMin ReduceMean */
int camd__fold_dequantize(camd__fold *f); /* DequantizeLinear */

#endif
