/* Operator checker: one-node graph, engine forward vs a double-precision reference, engine
 * backward vs central finite differences of that reference (in double). */
#ifndef CAMD_OPCHECK_H
#define CAMD_OPCHECK_H

#include <stdint.h>

#include "camd/engine.h"
#include "camd/graph.h"

#define OPCHECK_MAX_IO 8

/* Double-precision reference forward: inputs[i] has in_shapes[i] (batched inputs include the
 * batch), outputs[j] must be filled for out_shapes[j] (the shapes the engine inferred). Int64
 * inputs are passed in int_inputs (NULL for float inputs). */
typedef void (*opcheck_ref_fn)(void *ctx, const double *const *inputs, const camd_shape *in_shapes,
                               double *const *outputs, const camd_shape *out_shapes);

typedef struct opcheck_spec {
  const char *op_type;
  int opset;
  int n_in;
  camd_shape in_shapes[OPCHECK_MAX_IO]; /* batched inputs: dims[0] is the batch (same for all) */
  unsigned in_const;  /* bit i: input i is a float constant (random weights), not batched */
  unsigned in_absent; /* bit i: input i is absent (optional input left empty) */
  const int64_t *int_inputs[OPCHECK_MAX_IO]; /* non-NULL: input i is an int64 constant */
  const float *float_values[OPCHECK_MAX_IO]; /* non-NULL: use these values instead of random */
  int n_out;
  const camd_attr *attrs;
  int n_attrs;
  opcheck_ref_fn ref;
  void *ref_ctx;
  unsigned grad_check; /* bit i: check the gradient reaching batched input i */
  double fwd_tol;      /* max abs diff allowed, relative to max(1, max|ref|); 0 = 1e-5 */
  double grad_tol;     /* max abs diff allowed, relative to max(1e-3, max|fd|); 0 = 1e-3 */
  uint64_t seed;
  const char *label; /* printed in failure messages */
} opcheck_spec;

/* Returns the number of failures (0 = pass); prints what differs. Also runs the op through
 * a second session with batch 1 per item and checks it gives the same outputs. */
int opcheck_run(const opcheck_spec *spec);

/* Helpers to fill camd_attr arrays. */
camd_attr opcheck_attr_int(const char *name, int64_t v);
camd_attr opcheck_attr_float(const char *name, float v);
camd_attr opcheck_attr_ints(const char *name, const int64_t *v, size_t n);
camd_attr opcheck_attr_string(const char *name, const char *s);
camd_shape opcheck_shape(int ndim, ...); /* opcheck_shape(4, 2, 3, 5, 5) */

/* Index arithmetic for the references, written per element from the ONNX spec (independent of
 * the engine's strided walks). */
/* Multi-index c[s->ndim] of the row-major flat index f into shape s. */
void opcheck_unravel(size_t f, const camd_shape *s, int64_t *c);
/* Flat index into an operand of shape s under numpy broadcasting: s is right-aligned against an
 * output of rank out_ndim and its axes of size 1 read element 0; oidx is the output multi-index. */
size_t opcheck_bidx(const camd_shape *s, int out_ndim, const int64_t *oidx);

#endif
