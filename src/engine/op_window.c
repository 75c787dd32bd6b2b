/* Sliding-window geometry shared by Conv and the pooling ops (see op_window.h). */
#include "engine/op_window.h"

#include <string.h>

/* Largest kernel/stride/dilation/pad accepted: keeps every product far from overflow. */
#define WINDOW_MAX ((int64_t)1 << 24)

static int read_ints(const camd_node *n, const char *name, size_t want, int64_t min_value,
                     int64_t *dst, camd_error *err) {
  const int64_t *v = NULL;
  size_t count = 0;
  int rc = camd__attr_ints(n, name, &v, &count, err);
  if (rc) return rc;
  if (count == 0) return 0; /* absent: keep defaults */
  if (count != want) {
    return camd__node_error(err, n, CAMD_E_INVALID, "attribute '%s' has %zu values, expected %zu",
                            name, count, want);
  }
  for (size_t i = 0; i < count; i++) {
    if (v[i] < min_value || v[i] > WINDOW_MAX) {
      return camd__node_error(err, n, CAMD_E_INVALID,
                              "attribute '%s' value %lld is out of range [%lld, %lld]", name,
                              (long long)v[i], (long long)min_value, (long long)WINDOW_MAX);
    }
    dst[i] = v[i];
  }
  return 1;
}

int camd__window_parse(const camd_node *n, int nsp, const int64_t *kernel, bool allow_ceil,
                       camd__window *w, camd_error *err) {
  memset(w, 0, sizeof(*w));
  if (nsp < 1 || nsp > 2) {
    return camd__node_error(err, n, CAMD_E_UNSUPPORTED,
                            "%d spatial dimensions are not supported (only 1-D and 2-D)", nsp);
  }
  w->nsp = nsp;
  for (int i = 0; i < 2; i++) {
    w->kernel[i] = w->stride[i] = w->dil[i] = 1;
    w->pad_begin[i] = w->pad_end[i] = 0;
  }
  const int base = 2 - nsp; /* first real spatial index in the 2-D description */
  int64_t tmp[4];
  int rc = read_ints(n, "kernel_shape", (size_t)nsp, 1, tmp, err);
  if (rc < 0) return rc;
  if (rc == 1) {
    for (int i = 0; i < nsp; i++) {
      if (kernel && kernel[i] != tmp[i]) {
        return camd__node_error(err, n, CAMD_E_INVALID,
                                "kernel_shape[%d] = %lld does not match the weight's %lld", i,
                                (long long)tmp[i], (long long)kernel[i]);
      }
      w->kernel[base + i] = tmp[i];
    }
  } else if (kernel) {
    for (int i = 0; i < nsp; i++) {
      if (kernel[i] < 1 || kernel[i] > WINDOW_MAX) {
        return camd__node_error(err, n, CAMD_E_INVALID, "kernel size %lld is out of range",
                                (long long)kernel[i]);
      }
      w->kernel[base + i] = kernel[i];
    }
  } else {
    return camd__node_error(err, n, CAMD_E_INVALID, "attribute 'kernel_shape' is required");
  }
  rc = read_ints(n, "strides", (size_t)nsp, 1, tmp, err);
  if (rc < 0) return rc;
  if (rc == 1) memcpy(&w->stride[base], tmp, (size_t)nsp * sizeof(int64_t));
  rc = read_ints(n, "dilations", (size_t)nsp, 1, tmp, err);
  if (rc < 0) return rc;
  if (rc == 1) memcpy(&w->dil[base], tmp, (size_t)nsp * sizeof(int64_t));
  rc = read_ints(n, "pads", (size_t)(2 * nsp), 0, tmp, err);
  if (rc < 0) return rc;
  if (rc == 1) {
    for (int i = 0; i < nsp; i++) {
      w->pad_begin[base + i] = tmp[i];
      w->pad_end[base + i] = tmp[nsp + i];
    }
  }
  const char *ap = camd__attr_string(n, "auto_pad", "NOTSET");
  if (strcmp(ap, "NOTSET") == 0 || ap[0] == '\0') {
    w->auto_pad = CAMD__PAD_NOTSET;
  } else if (strcmp(ap, "SAME_UPPER") == 0) {
    w->auto_pad = CAMD__PAD_SAME_UPPER;
  } else if (strcmp(ap, "SAME_LOWER") == 0) {
    w->auto_pad = CAMD__PAD_SAME_LOWER;
  } else if (strcmp(ap, "VALID") == 0) {
    w->auto_pad = CAMD__PAD_VALID;
  } else {
    return camd__node_error(err, n, CAMD_E_INVALID,
                            "auto_pad '%s' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID",
                            ap);
  }
  if (allow_ceil) {
    int64_t c = 0;
    rc = camd__attr_int(n, "ceil_mode", 0, &c, err);
    if (rc) return rc;
    w->ceil_mode = c != 0;
  }
  return 0;
}

int camd__window_resolve(const camd_node *n, const camd__window *w, const int64_t *in,
                         camd__window_geom *geom, camd_error *err) {
  const int base = 2 - w->nsp;
  for (int i = 0; i < 2; i++) {
    const int64_t size = i < base ? 1 : in[i - base];
    const int64_t k = w->kernel[i], s = w->stride[i], d = w->dil[i];
    const int64_t dk = (k - 1) * d + 1; /* dilated kernel extent */
    int64_t pb = w->pad_begin[i], pe = w->pad_end[i], out;
    geom->in[i] = size;
    if (w->auto_pad == CAMD__PAD_SAME_UPPER || w->auto_pad == CAMD__PAD_SAME_LOWER) {
      out = (size + s - 1) / s;
      int64_t total = (out - 1) * s + dk - size;
      if (total < 0) total = 0;
      pb = w->auto_pad == CAMD__PAD_SAME_UPPER ? total / 2 : total - total / 2;
      pe = total - pb;
    } else {
      if (w->auto_pad == CAMD__PAD_VALID) pb = pe = 0;
      const int64_t span = size + pb + pe - dk;
      if (span < 0) {
        return camd__node_error(err, n, CAMD_E_SHAPE,
                                "window extent %lld is larger than the padded input %lld",
                                (long long)dk, (long long)(size + pb + pe));
      }
      out = (w->ceil_mode ? (span + s - 1) / s : span / s) + 1;
      /* The last window must start inside the input or the leading padding. */
      if (w->ceil_mode && (out - 1) * s >= size + pb) out--;
    }
    if (out < 1) {
      return camd__node_error(err, n, CAMD_E_SHAPE, "output spatial size would be %lld",
                              (long long)out);
    }
    geom->out[i] = out;
    geom->pad_begin[i] = pb;
    geom->pad_end[i] = pe;
  }
  return 0;
}
