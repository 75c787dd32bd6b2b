/* Op lookup: the descriptors named in op_list.h, found by exact op type. */
#include <string.h>

#include "engine/op.h"
#include "engine/op_list.h"

#define CAMD__OP_DECLARE(type, sym) extern const camd_op_desc sym;
CAMD_OP_LIST(CAMD__OP_DECLARE)
#undef CAMD__OP_DECLARE

static const camd_op_desc *const camd__op_table[] = {
#define CAMD__OP_ENTRY(type, sym) &sym,
    CAMD_OP_LIST(CAMD__OP_ENTRY)
#undef CAMD__OP_ENTRY
};

const camd_op_desc *camd__op_find(const char *op_type) {
  if (!op_type) return NULL;
  for (size_t i = 0; i < sizeof(camd__op_table) / sizeof(camd__op_table[0]); i++) {
    if (strcmp(camd__op_table[i]->op_type, op_type) == 0) return camd__op_table[i];
  }
  return NULL;
}

bool camd_op_supported(const char *op_type, int opset, int *min_opset, int *max_opset) {
  const camd_op_desc *d = camd__op_find(op_type);
  if (min_opset) *min_opset = d ? d->opset_min : 0;
  if (max_opset) *max_opset = d ? d->opset_max : 0;
  return d && d->prepare && opset >= d->opset_min && opset <= d->opset_max;
}
