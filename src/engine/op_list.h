/* The op table: X(ONNX op type, descriptor symbol). One source file per op family defines the
 * descriptors; op_table.c turns this list into the lookup table. */
#ifndef CAMD_ENGINE_OP_LIST_H
#define CAMD_ENGINE_OP_LIST_H

#define CAMD_OP_LIST(X)                              \
  /* op_conv.c */                                    \
  X(Conv, camd__op_conv)                             \
  /* op_pool.c */                                    \
  X(MaxPool, camd__op_maxpool)                       \
  X(AveragePool, camd__op_averagepool)               \
  X(GlobalAveragePool, camd__op_globalaveragepool)   \
  X(GlobalMaxPool, camd__op_globalmaxpool)           \
  /* op_norm.c */                                    \
  X(BatchNormalization, camd__op_batchnormalization) \
  X(LayerNormalization, camd__op_layernormalization) \
  /* op_linear.c */                                  \
  X(Gemm, camd__op_gemm)                             \
  X(MatMul, camd__op_matmul)                         \
  /* op_activation.c */                              \
  X(Relu, camd__op_relu)                             \
  X(LeakyRelu, camd__op_leakyrelu)                   \
  X(Clip, camd__op_clip)                             \
  X(Sigmoid, camd__op_sigmoid)                       \
  X(HardSigmoid, camd__op_hardsigmoid)               \
  X(HardSwish, camd__op_hardswish)                   \
  X(Tanh, camd__op_tanh)                             \
  X(Erf, camd__op_erf)                               \
  X(Gelu, camd__op_gelu)                             \
  X(Sqrt, camd__op_sqrt)                             \
  X(Pow, camd__op_pow)                               \
  X(Identity, camd__op_identity)                     \
  X(Dropout, camd__op_dropout)                       \
  /* op_binary.c */                                  \
  X(Add, camd__op_add)                               \
  X(Sub, camd__op_sub)                               \
  X(Mul, camd__op_mul)                               \
  X(Div, camd__op_div)                               \
  /* op_expand.c */                                  \
  X(Expand, camd__op_expand)                         \
  X(Tile, camd__op_tile)                             \
  X(Where, camd__op_where)                           \
  /* op_reduce.c */                                  \
  X(ReduceMean, camd__op_reducemean)                 \
  X(Softmax, camd__op_softmax)                       \
  X(LogSoftmax, camd__op_logsoftmax)                 \
  /* op_shape.c */                                   \
  X(Flatten, camd__op_flatten)                       \
  X(Reshape, camd__op_reshape)                       \
  X(Transpose, camd__op_transpose)                   \
  X(Squeeze, camd__op_squeeze)                       \
  X(Unsqueeze, camd__op_unsqueeze)                   \
  /* op_concat.c */                                  \
  X(Concat, camd__op_concat)                         \
  X(Split, camd__op_split)                           \
  X(Slice, camd__op_slice)                           \
  X(Pad, camd__op_pad)                               \
  X(Gather, camd__op_gather)                         \
  /* op_resize.c */                                  \
  X(Resize, camd__op_resize)

#endif
