/* Shape utilities: element counts, formatting, numpy broadcasting, strides. */
#include <stdio.h>
#include <string.h>

#include "engine/op.h"

size_t camd_shape_count(const camd_shape *s) {
  size_t n = 1;
  for (int i = 0; i < s->ndim; i++) n *= (size_t)s->dims[i];
  return n;
}

bool camd_shape_equal(const camd_shape *a, const camd_shape *b) {
  if (a->ndim != b->ndim) return false;
  for (int i = 0; i < a->ndim; i++) {
    if (a->dims[i] != b->dims[i]) return false;
  }
  return true;
}

void camd_shape_format(const camd_shape *s, char *buf, size_t size) {
  if (!size) return;
  size_t pos = 0;
  buf[0] = '\0';
  pos += (size_t)snprintf(buf + pos, size - pos, "[");
  for (int i = 0; i < s->ndim && pos < size; i++) {
    pos += (size_t)snprintf(buf + pos, size - pos, "%s%lld", i ? ", " : "", (long long)s->dims[i]);
  }
  if (pos < size) snprintf(buf + pos, size - pos, "]");
}

int camd__broadcast_shape(const camd_shape *a, const camd_shape *b, camd_shape *out) {
  int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
  if (nd > CAMD_MAX_DIMS) return CAMD_E_SHAPE;
  camd_shape r;
  r.ndim = nd;
  for (int i = 0; i < nd; i++) {
    int ia = i - (nd - a->ndim), ib = i - (nd - b->ndim);
    int64_t da = ia >= 0 ? a->dims[ia] : 1;
    int64_t db = ib >= 0 ? b->dims[ib] : 1;
    if (da == db || db == 1)
      r.dims[i] = da;
    else if (da == 1)
      r.dims[i] = db;
    else
      return CAMD_E_SHAPE;
  }
  *out = r;
  return 0;
}

void camd__shape_strides(const camd_shape *s, int64_t *strides) {
  int64_t st = 1;
  for (int i = s->ndim - 1; i >= 0; i--) {
    strides[i] = st;
    st *= s->dims[i];
  }
}
