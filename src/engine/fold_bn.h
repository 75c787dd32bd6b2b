/* Engine-private: BatchNormalization folding into Conv (fold_bn.c), a load-time pass. */
#ifndef CAMD_ENGINE_FOLD_BN_H
#define CAMD_ENGINE_FOLD_BN_H

#include "engine/graph_internal.h"

/* The internal op a folded BatchNormalization node becomes: X = (Y - b) / a (grad_view: dX = a dY).
 */
extern const camd_op_desc camd__op_bn_inverse;

/* Folds every eligible Conv → BatchNormalization pair; *folded receives the count. */
int camd__fold_batchnorm(camd_graph *g, int *folded, camd_error *err);

#endif
