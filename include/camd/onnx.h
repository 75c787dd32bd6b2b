/* camd ONNX loader: an ONNX model file (protobuf) → an immutable engine model.
 *
 * The loader decodes the protobuf, checks every operator against the engine's op table first
 * (one error listing all unsupported operators), converts initializers to float32 / int64
 * constants (held once, by the model), folds shape sub-graphs (Shape, Gather, Concat, ...)
 * into constants (every node whose inputs are constants or shapes, to a fixed point), and
 * builds the engine graph with camd/graph.h, declaring the image input's layout (NCHW/NHWC).
 * External tensor data is read only from files inside the model's directory. Thread-safe: loads
 * share no state.
 */
#ifndef CAMD_ONNX_H
#define CAMD_ONNX_H

#include <stddef.h>

#include "camd/engine.h"
#include "camd/status.h"

/* Default limits used when an option is 0. */
#define CAMD_ONNX_DEFAULT_MAX_FILE_BYTES ((size_t)2 << 30)     /* 2 GiB */
#define CAMD_ONNX_DEFAULT_MAX_EXTERNAL_BYTES ((size_t)8 << 30) /* 8 GiB in total */
/* Elements of one tensor (per image for activations): 2^28 = 1 GiB of float32. */
#define CAMD_ONNX_DEFAULT_MAX_TENSOR_ELEMENTS ((size_t)1 << 28)
#define CAMD_ONNX_DEFAULT_MAX_NODES 100000
/* Protobuf message nesting (graphs in attributes, nested types); checked before decoding, whose
 * recursion would otherwise overflow the stack. */
#define CAMD_ONNX_MAX_NESTING 64

typedef struct camd_onnx_options {
  size_t max_file_bytes;     /* largest accepted .onnx file / buffer; 0 = default 2 GiB */
  size_t max_external_bytes; /* total bytes read from external data files; 0 = default */
  /* Elements of any one tensor the model declares: initializers (checked before they are
   * allocated), graph inputs and every node output (per image, checked as the graph is built,
   * before any session allocates them); 0 = default 2^28. */
  size_t max_tensor_elements;
  size_t max_nodes; /* nodes in the graph; 0 = default 100000 */
  /* The image input (every 4-D graph input): its layout, UNKNOWN = decided from its shape (a
   * trailing 1 or 3 after a larger or symbolic second axis is NHWC, else NCHW; a shape that
   * cannot tell, such as [N, ?, ?, ?], is an error naming the config key "layout"). */
  camd_layout input_layout;
  /* Sizes for symbolic (free) dimensions of the image input, 0 = not given: a free height or
   * width without a size given is an error naming the config key "input_size"; a free
   * channel axis takes input_channels. Fixed dimensions are kept as the file says. */
  int64_t input_height, input_width, input_channels;
} camd_onnx_options;

/* Loads the ONNX file at `path` into an immutable model (refcount 1; the caller owns it and
 * frees it with camd_model_release). External data files are resolved relative to the
 * directory of `path`. `opts` may be NULL (defaults). On failure returns a negative CAMD_E_*
 * status, *out stays NULL and `err` (may be NULL) names the file, node or tensor at fault:
 * CAMD_E_IO (cannot read), CAMD_E_LIMIT (too large: file, external data, a tensor's elements,
 * node count, nesting), CAMD_E_FORMAT (not a valid ONNX file),
 * CAMD_E_UNSUPPORTED (operators/types camd lacks; all of them listed), CAMD_E_INVALID. */
int camd_onnx_load(const char *path, const camd_onnx_options *opts, camd_model **out,
                   camd_error *err);

/* Same from a buffer holding the .onnx bytes (not retained after the call). `base_dir` is the
 * directory external data is resolved against; NULL forbids external data. */
int camd_onnx_load_buffer(const void *data, size_t len, const char *base_dir,
                          const camd_onnx_options *opts, camd_model **out, camd_error *err);

#endif
