/* Engine-private: BatchNormalization folding into Conv (fold_bn.c). */
#ifndef CAMD_ENGINE_FOLD_BN_H
#define CAMD_ENGINE_FOLD_BN_H

#include "engine/graph_internal.h"

/* The internal op a folded BatchNormalization node becomes: X = (Y - b) / a. */
extern const camd_op_desc camd__op_bn_inverse;

/* Folds every eligible Conv → BatchNormalization pair; *folded receives the count. */
int camd__fold_batchnorm(camd_graph *g, int *folded, camd_error *err);

/* dX = a · dY for a BnInverse node n (X = n's output, Y = its input), any batch. */
void camd__bn_inverse_grad(const camd_node *n, const camd_shape *shape, const float *dy, float *dx);

#endif
