/* ONNX loader internals shared by the files of src/onnx (only src/onnx includes onnx.pb-c.h). */
#ifndef CAMD_ONNX_INTERNAL_H
#define CAMD_ONNX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/engine.h"
#include "camd/graph.h"
#include "camd/onnx.h"
#include "camd/status.h"
#include "onnx.pb-c.h"

/* Largest constant (elements) the loader creates by folding. Shape sub-graphs are tiny; a
 * larger result of an op the engine implements is left to the engine, of a loader-only op
 * (ConstantOfShape, Range, ...) is an error. */
#define CAMD__ONNX_MAX_FOLD_ELEMS ((size_t)1 << 22)
/* Largest total (elements) of every constant the loader creates by folding in one model: many
 * nodes each just under the per-node cap must not add up to gigabytes. */
#define CAMD__ONNX_MAX_FOLD_TOTAL ((size_t)1 << 25)

/* State of one load. */
typedef struct camd__onnx_ctx {
  camd_graph *g;
  const char *base_dir;      /* directory for external data; NULL = external data forbidden */
  size_t max_external_bytes; /* limit on the total read from external files */
  size_t external_bytes;     /* read so far */
  int opset;                 /* default-domain opset of the model */
  camd_onnx_options opts;    /* the caller's options (zeroed when none were given) */
  size_t folded_elems;       /* elements created by folding so far */
} camd__onnx_ctx;

/* A decoded tensor: float32 or int64 data, malloc'd and owned by whoever holds the struct
 * (camd_graph_add_constant takes it over). data is never NULL after a successful decode. */
typedef struct camd__onnx_tensor {
  camd_dtype dtype;
  camd_shape shape;
  void *data;
} camd__onnx_tensor;

/* Decodes a TensorProto (raw_data, typed fields or external data) into float32 (float,
 * double, float16, bfloat16) or int64 (integer and bool types). `what` names it in messages
 * ("initializer 'w'"). On failure nothing is allocated. */
int camd__onnx_tensor_decode(camd__onnx_ctx *ctx, const Onnx__TensorProto *t, const char *what,
                             camd__onnx_tensor *out, camd_error *err);
/* camd__onnx_tensor_decode for an initializer the caller's message owns and decodes once: a
 * little-endian float32 raw_data buffer is taken over (out->data is protobuf-c's malloc'd copy;
 * t->raw_data is emptied), so 100 MB of weights are not copied once more at load. */
int camd__onnx_initializer_decode(camd__onnx_ctx *ctx, Onnx__TensorProto *t, const char *what,
                                  camd__onnx_tensor *out, camd_error *err);
/* Element count of shape with overflow check; false on overflow. */
bool camd__onnx_shape_count(const camd_shape *s, size_t *count);
/* Name of an ONNX TensorProto.DataType ("float", "int64", ...). */
const char *camd__onnx_type_name(int32_t data_type);

/* ---- Einsum as MatMul (onnx_einsum.c) ---- */
/* True when `equation` is a batched matrix product camd runs as MatMul (see onnx_einsum.c):
 * *rank = the operands' rank, *transpose_b = B is contracted on its last axis. */
bool camd__onnx_einsum_matmul(const char *equation, int *rank, bool *transpose_b);
/* Adds node n (Einsum, inputs ids) as [Transpose of B +] MatMul producing n's output. */
int camd__onnx_add_einsum(camd__onnx_ctx *ctx, const Onnx__NodeProto *n, const char *name,
                          const int *ids, camd_error *err);

/* ---- constant folding (onnx_fold.c) ---- */
/* True for op types the loader evaluates itself when their inputs are constants. */
bool camd__onnx_fold_known(const char *op_type);
/* True for op types that only the loader implements (no engine op): they must fold. */
bool camd__onnx_loader_only(const char *op_type);
/* True when the node's outputs are computable at load from its inputs' constness (`const_in`:
 * every present input is constant). Shape/Size/Constant fold regardless of their inputs. */
bool camd__onnx_fold_possible(const char *op_type, bool const_in);
/* Comma-separated names of the ops the loader folds (loader_only: those the engine lacks, else
 * those it also runs) into buf (always terminated); returns the full length. */
size_t camd__onnx_fold_list(char *buf, size_t size, bool loader_only);
/* Evaluates the node and adds its outputs to the graph as constants. Returns 0 when folded,
 * 1 when this node cannot be folded (the caller hands it to the engine), negative on error. */
int camd__onnx_fold(camd__onnx_ctx *ctx, const Onnx__NodeProto *node, const char *node_name,
                    camd_error *err);

/* ---- string set (onnx_names.c): stores the given pointers, not copies ---- */
typedef struct camd__onnx_names {
  const char **keys;
  size_t cap, n;
} camd__onnx_names;
int camd__onnx_names_add(camd__onnx_names *s, const char *key);
bool camd__onnx_names_has(const camd__onnx_names *s, const char *key);
void camd__onnx_names_free(camd__onnx_names *s);

/* Never-NULL view of a protobuf string field. */
static inline const char *camd__onnx_str(const char *s) {
  return s ? s : "";
}

#endif
