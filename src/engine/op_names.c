/* The operators the engine implements, by name (camd_op_count / camd_op_name in camd/graph.h):
 * the public view of op_list.h, for messages that list them (the ONNX loader's). */
#include "camd/graph.h"
#include "engine/op_list.h"

static const char *const op_names[] = {
#define CAMD__OP_NAME(type, sym) #type,
    CAMD_OP_LIST(CAMD__OP_NAME)
#undef CAMD__OP_NAME
};

int camd_op_count(void) {
  return (int)(sizeof(op_names) / sizeof(op_names[0]));
}

const char *camd_op_name(int i) {
  return i >= 0 && i < camd_op_count() ? op_names[i] : NULL;
}
