/* Sliding-window geometry shared by Conv and the pooling ops: attribute parsing (kernel_shape,
 * strides, dilations, pads, auto_pad, ceil_mode) and output size / effective padding.
 *
 * Windows are always described in 2-D: index 0 is H, index 1 is W. A 1-D op (N, C, L) uses
 * H = 1 with a unit kernel, so kernels only need 2-D loops.
 */
#ifndef CAMD_ENGINE_OP_WINDOW_H
#define CAMD_ENGINE_OP_WINDOW_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/op.h"

enum { CAMD__PAD_NOTSET = 0, CAMD__PAD_SAME_UPPER, CAMD__PAD_SAME_LOWER, CAMD__PAD_VALID };

typedef struct camd__window {
  int nsp; /* spatial dims of the node: 1 or 2 */
  int64_t kernel[2], stride[2], dil[2];
  int64_t pad_begin[2], pad_end[2]; /* explicit pads (auto_pad NOTSET) */
  int auto_pad;
  bool ceil_mode;
} camd__window;

/* Resolved geometry for one input spatial size. */
typedef struct camd__window_geom {
  int64_t in[2], out[2];
  int64_t pad_begin[2], pad_end[2]; /* effective pads after auto_pad */
} camd__window_geom;

/* Parses the window attributes of node n with nsp spatial dims (1 or 2). kernel: kernel size
 * per spatial dim when known from elsewhere (Conv's W), or NULL to require kernel_shape.
 * allow_ceil: read ceil_mode (pools). Returns 0 or CAMD_E_INVALID / CAMD_E_UNSUPPORTED. */
int camd__window_parse(const camd_node *n, int nsp, const int64_t *kernel, bool allow_ceil,
                       camd__window *w, camd_error *err);

/* Output size and effective pads for input spatial dims in (nsp entries, the node's own
 * order). Returns 0 or CAMD_E_SHAPE (message via node n) if the window does not fit. */
int camd__window_resolve(const camd_node *n, const camd__window *w, const int64_t *in,
                         camd__window_geom *geom, camd_error *err);

/* First and one-past-last output index o in [0, out) whose tap o*stride + off lands in
 * [0, size). Always lo <= hi. */
static inline void camd__window_range(int64_t off, int64_t stride, int64_t size, int64_t out,
                                      int64_t *lo, int64_t *hi) {
  int64_t a = off >= 0 ? 0 : (-off + stride - 1) / stride;
  int64_t b = size - off <= 0 ? 0 : (size - off + stride - 1) / stride;
  if (a > out) a = out;
  if (b > out) b = out;
  if (b < a) b = a;
  *lo = a;
  *hi = b;
}

#endif
