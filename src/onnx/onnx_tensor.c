/* ONNX TensorProto decoding: dtype conversion, exact size checks and confined external data. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "camd/core.h"
#include "onnx/onnx_internal.h"

enum {
  T_FLOAT = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT,
  T_UINT8 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
  T_INT8 = ONNX__TENSOR_PROTO__DATA_TYPE__INT8,
  T_UINT16 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT16,
  T_INT16 = ONNX__TENSOR_PROTO__DATA_TYPE__INT16,
  T_INT32 = ONNX__TENSOR_PROTO__DATA_TYPE__INT32,
  T_INT64 = ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
  T_BOOL = ONNX__TENSOR_PROTO__DATA_TYPE__BOOL,
  T_FLOAT16 = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16,
  T_DOUBLE = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE,
  T_UINT32 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT32,
  T_UINT64 = ONNX__TENSOR_PROTO__DATA_TYPE__UINT64,
  T_BFLOAT16 = ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16
};

const char *camd__onnx_type_name(int32_t t) {
  switch (t) {
    case T_FLOAT:
      return "float";
    case T_UINT8:
      return "uint8";
    case T_INT8:
      return "int8";
    case T_UINT16:
      return "uint16";
    case T_INT16:
      return "int16";
    case T_INT32:
      return "int32";
    case T_INT64:
      return "int64";
    case ONNX__TENSOR_PROTO__DATA_TYPE__STRING:
      return "string";
    case T_BOOL:
      return "bool";
    case T_FLOAT16:
      return "float16";
    case T_DOUBLE:
      return "double";
    case T_UINT32:
      return "uint32";
    case T_UINT64:
      return "uint64";
    case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64:
      return "complex64";
    case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128:
      return "complex128";
    case T_BFLOAT16:
      return "bfloat16";
    default:
      return "unknown";
  }
}

/* Bytes per element in raw_data; 0 for types camd cannot convert. */
static size_t elem_bytes(int32_t t) {
  switch (t) {
    case T_UINT8:
    case T_INT8:
    case T_BOOL:
      return 1;
    case T_UINT16:
    case T_INT16:
    case T_FLOAT16:
    case T_BFLOAT16:
      return 2;
    case T_FLOAT:
    case T_INT32:
    case T_UINT32:
      return 4;
    case T_INT64:
    case T_DOUBLE:
    case T_UINT64:
      return 8;
    default:
      return 0;
  }
}

static bool is_float_type(int32_t t) {
  return t == T_FLOAT || t == T_DOUBLE || t == T_FLOAT16 || t == T_BFLOAT16;
}

bool camd__onnx_shape_count(const camd_shape *s, size_t *count) {
  size_t n = 1;
  for (int i = 0; i < s->ndim; i++) {
    if (s->dims[i] < 0 || !camd_size_mul(n, (size_t)s->dims[i], &n)) return false;
  }
  *count = n;
  return true;
}

static float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (man << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (man << 13);
  } else if (man == 0) {
    bits = sign;
  } else { /* subnormal: normalise */
    int e = -1;
    do {
      man <<= 1;
      e++;
    } while (!(man & 0x400));
    bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

static uint64_t read_le(const unsigned char *p, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v |= (uint64_t)p[i] << (8 * i);
  return v;
}

/* One raw little-endian element of type t → float32 or int64 slot. */
static void convert_raw(int32_t t, const unsigned char *p, float *f, int64_t *i) {
  uint64_t v = read_le(p, elem_bytes(t));
  switch (t) {
    case T_FLOAT: {
      uint32_t b = (uint32_t)v;
      memcpy(f, &b, 4);
      break;
    }
    case T_DOUBLE: {
      double d;
      memcpy(&d, &v, 8);
      *f = (float)d;
      break;
    }
    case T_FLOAT16:
      *f = half_to_float((uint16_t)v);
      break;
    case T_BFLOAT16: {
      uint32_t b = (uint32_t)v << 16;
      memcpy(f, &b, 4);
      break;
    }
    case T_INT8:
      *i = (int8_t)(uint8_t)v;
      break;
    case T_INT16:
      *i = (int16_t)(uint16_t)v;
      break;
    case T_INT32:
      *i = (int32_t)(uint32_t)v;
      break;
    case T_BOOL:
      *i = v != 0;
      break;
    default:
      *i = (int64_t)v;
      break; /* uint8/16/32/64, int64 */
  }
}

/* Typed field element k → float / int64 slot. `fields` tells which repeated field is used. */
static void convert_typed(const Onnx__TensorProto *t, size_t k, float *f, int64_t *i) {
  switch (t->data_type) {
    case T_FLOAT:
      *f = t->float_data[k];
      break;
    case T_DOUBLE:
      *f = (float)t->double_data[k];
      break;
    case T_INT64:
      *i = t->int64_data[k];
      break;
    case T_UINT32:
    case T_UINT64:
      *i = (int64_t)t->uint64_data[k];
      break;
    case T_FLOAT16:
      *f = half_to_float((uint16_t)t->int32_data[k]);
      break;
    case T_BFLOAT16: {
      uint32_t b = (uint32_t)(uint16_t)t->int32_data[k] << 16;
      memcpy(f, &b, 4);
      break;
    }
    case T_BOOL:
      *i = t->int32_data[k] != 0;
      break;
    default:
      *i = t->int32_data[k];
      break; /* int32/16/8, uint16/8 */
  }
}

static size_t typed_count(const Onnx__TensorProto *t) {
  switch (t->data_type) {
    case T_FLOAT:
      return t->n_float_data;
    case T_DOUBLE:
      return t->n_double_data;
    case T_INT64:
      return t->n_int64_data;
    case T_UINT32:
    case T_UINT64:
      return t->n_uint64_data;
    default:
      return t->n_int32_data;
  }
}

static const char *typed_field_name(int32_t t) {
  switch (t) {
    case T_FLOAT:
      return "float_data";
    case T_DOUBLE:
      return "double_data";
    case T_INT64:
      return "int64_data";
    case T_UINT32:
    case T_UINT64:
      return "uint64_data";
    default:
      return "int32_data";
  }
}

/* Strict decimal parse of a non-negative integer (external data offset/length). */
/* A decimal byte count (the core's strict integer parser, 0..INT64_MAX). */
static bool parse_size(const char *s, size_t *out) {
  long long v;
  if (camd_parse_int(s, 0, INT64_MAX, &v)) return false;
  *out = (size_t)v;
  return true;
}

/* Rejects absolute paths and any ".." component (either separator). */
static bool location_is_safe(const char *loc) {
  if (!*loc || loc[0] == '/' || loc[0] == '\\') return false;
  const char *p = loc;
  while (*p) {
    size_t n = strcspn(p, "/\\");
    if (n == 2 && p[0] == '.' && p[1] == '.') return false;
    p += n;
    if (*p) p++;
  }
  return true;
}

/* Opens external data file `loc` (relative, no "..") of a model in base_dir, refusing a file
 * that resolves outside the directory (a symbolic link). 0 with *fd open, or an error. */
static int open_inside(const char *base_dir, const char *loc, const char *what, int *fd,
                       camd_error *err) {
  int rc = 0;
  char *joined = NULL, *rfile = NULL;
  char *rbase = realpath(base_dir, NULL);
  if (!rbase) {
    rc = camd_error_set(err, CAMD_E_IO, "%s: model directory '%s': %s", what, base_dir,
                        strerror(errno));
    goto done;
  }
  size_t lb = strlen(rbase), ll = strlen(loc), jl;
  if (!camd_size_add(lb, ll, &jl) || !camd_size_add(jl, 2, &jl) || !(joined = malloc(jl))) {
    rc = camd_error_set(err, CAMD_E_NOMEM, "%s: out of memory", what);
    goto done;
  }
  memcpy(joined, rbase, lb);
  joined[lb] = '/';
  memcpy(joined + lb + 1, loc, ll + 1);
  rfile = realpath(joined, NULL);
  if (!rfile) {
    rc = camd_error_set(err, CAMD_E_IO, "%s: cannot open external data file '%s': %s", what, loc,
                        strerror(errno));
    goto done;
  }
  bool root = lb == 1 && rbase[0] == '/';
  if (!root && (strncmp(rfile, rbase, lb) != 0 || rfile[lb] != '/')) {
    rc = camd_error_set(err, CAMD_E_INVALID,
                        "%s: external data file '%s' resolves to '%s', outside the model's "
                        "directory '%s' (symbolic link?)",
                        what, loc, rfile, rbase);
    goto done;
  }
  *fd = open(rfile, O_RDONLY | O_CLOEXEC);
  if (*fd < 0)
    rc = camd_error_set(err, CAMD_E_IO, "%s: cannot open external data file '%s': %s", what, loc,
                        strerror(errno));
done:
  free(rfile);
  free(joined);
  free(rbase);
  return rc;
}

/* Reads exactly `nbytes` of external data for tensor t into a malloc'd buffer. */
static int read_external(camd__onnx_ctx *ctx, const Onnx__TensorProto *t, const char *what,
                         size_t nbytes, unsigned char **out, camd_error *err) {
  const char *loc = NULL, *off_s = NULL, *len_s = NULL;
  for (size_t k = 0; k < t->n_external_data; k++) {
    const Onnx__StringStringEntryProto *e = t->external_data[k];
    const char *key = camd__onnx_str(e->key);
    if (strcmp(key, "location") == 0)
      loc = camd__onnx_str(e->value);
    else if (strcmp(key, "offset") == 0)
      off_s = camd__onnx_str(e->value);
    else if (strcmp(key, "length") == 0)
      len_s = camd__onnx_str(e->value);
  }
  if (!loc || !*loc)
    return camd_error_set(err, CAMD_E_FORMAT, "%s: external data without a 'location' entry", what);
  if (!ctx->base_dir)
    return camd_error_set(err, CAMD_E_INVALID,
                          "%s: uses external data file '%s', but the model was given as a "
                          "buffer without a base directory; load it from its file instead",
                          what, loc);
  if (!location_is_safe(loc))
    return camd_error_set(err, CAMD_E_INVALID,
                          "%s: external data location '%s' is absolute or contains '..'; it "
                          "must be a relative path inside the model's directory",
                          what, loc);
  size_t offset = 0, length = 0;
  if (off_s && !parse_size(off_s, &offset))
    return camd_error_set(err, CAMD_E_FORMAT, "%s: external data offset '%s' is not a number", what,
                          off_s);
  if (len_s && !parse_size(len_s, &length))
    return camd_error_set(err, CAMD_E_FORMAT, "%s: external data length '%s' is not a number", what,
                          len_s);

  int fd = -1, rc = open_inside(ctx->base_dir, loc, what, &fd, err);
  if (rc) return rc;
  unsigned char *buf = NULL;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    rc = camd_error_set(err, CAMD_E_IO, "%s: cannot open external data file '%s': %s", what, loc,
                        strerror(errno));
    goto done;
  }
  if (!S_ISREG(st.st_mode)) {
    rc = camd_error_set(err, CAMD_E_INVALID, "%s: external data '%s' is not a regular file", what,
                        loc);
    goto done;
  }
  size_t fsize = (size_t)st.st_size;
  if (offset > fsize) {
    rc = camd_error_set(err, CAMD_E_FORMAT,
                        "%s: external data offset %zu is past the end of '%s' (%zu bytes)", what,
                        offset, loc, fsize);
    goto done;
  }
  if (!len_s) length = fsize - offset;
  if (length > fsize - offset) {
    rc = camd_error_set(err, CAMD_E_FORMAT,
                        "%s: external data range [%zu, %zu + %zu) is past the end of '%s' "
                        "(%zu bytes); the file is truncated",
                        what, offset, offset, length, loc, fsize);
    goto done;
  }
  if (length != nbytes) {
    rc = camd_error_set(err, CAMD_E_FORMAT,
                        "%s: external data has %zu bytes but its shape and type need %zu", what,
                        length, nbytes);
    goto done;
  }
  size_t total;
  if (!camd_size_add(ctx->external_bytes, length, &total) || total > ctx->max_external_bytes) {
    rc = camd_error_set(err, CAMD_E_LIMIT,
                        "%s: external data would bring the total read to more than %zu bytes "
                        "(max_external_bytes)",
                        what, ctx->max_external_bytes);
    goto done;
  }
  buf = malloc(length ? length : 1);
  if (!buf) {
    rc = camd_error_set(err, CAMD_E_NOMEM, "%s: out of memory for %zu bytes", what, length);
    goto done;
  }
  for (size_t got = 0; got < length;) {
    ssize_t r = pread(fd, buf + got, length - got, (off_t)(offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      rc = camd_error_set(err, CAMD_E_IO, "%s: reading external data '%s' failed: %s", what, loc,
                          r < 0 ? strerror(errno) : "unexpected end of file");
      goto done;
    }
    got += (size_t)r;
  }
  ctx->external_bytes = total;
  *out = buf;
  buf = NULL;
done:
  close(fd);
  free(buf);
  return rc;
}

int camd__onnx_tensor_decode(camd__onnx_ctx *ctx, const Onnx__TensorProto *t, const char *what,
                             camd__onnx_tensor *out, camd_error *err) {
  memset(out, 0, sizeof(*out));
  int32_t type = t->has_data_type ? t->data_type : 0;
  size_t eb = elem_bytes(type);
  if (!eb)
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "%s: element type %s (%d) is not supported; camd converts float, "
                          "double, float16, bfloat16, integer and bool tensors",
                          what, camd__onnx_type_name(type), (int)type);
  if (t->n_dims > CAMD_MAX_DIMS)
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "%s: %zu dimensions (camd supports up to %d)",
                          what, t->n_dims, CAMD_MAX_DIMS);
  if (t->segment)
    return camd_error_set(err, CAMD_E_UNSUPPORTED, "%s: segmented tensors are not supported", what);
  camd_shape shape = {.ndim = (int)t->n_dims};
  for (size_t k = 0; k < t->n_dims; k++) {
    if (t->dims[k] < 0)
      return camd_error_set(err, CAMD_E_FORMAT, "%s: negative dimension %lld at axis %zu", what,
                            (long long)t->dims[k], k);
    shape.dims[k] = t->dims[k];
  }
  size_t count, nbytes, outbytes;
  if (!camd__onnx_shape_count(&shape, &count) || !camd_size_mul(count, eb, &nbytes) ||
      !camd_size_mul(count, 8, &outbytes))
    return camd_error_set(err, CAMD_E_FORMAT, "%s: element count overflows", what);
  if (ctx->opts.max_tensor_elements && count > ctx->opts.max_tensor_elements)
    return camd_error_set(err, CAMD_E_LIMIT,
                          "%s has %zu elements; the limit is %zu (max_tensor_elements)", what,
                          count, ctx->opts.max_tensor_elements);

  const unsigned char *raw = NULL;
  unsigned char *ext = NULL;
  bool external =
      t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  if (external) {
    int rc = read_external(ctx, t, what, nbytes, &ext, err);
    if (rc < 0) return rc;
    raw = ext;
  } else if (t->has_raw_data) {
    if (t->raw_data.len != nbytes)
      return camd_error_set(err, CAMD_E_FORMAT,
                            "%s: raw_data has %zu bytes but %zu elements of %s need %zu", what,
                            t->raw_data.len, count, camd__onnx_type_name(type), nbytes);
    raw = t->raw_data.data;
  } else if (typed_count(t) != count) {
    return camd_error_set(err, CAMD_E_FORMAT,
                          "%s: %s has %zu values but the shape needs %zu (no raw_data)", what,
                          typed_field_name(type), typed_count(t), count);
  }

  bool is_float = is_float_type(type);
  out->dtype = is_float ? CAMD_FLOAT32 : CAMD_INT64;
  out->shape = shape;
  size_t bytes = is_float ? count * 4 : outbytes; /* count*4 <= count*8: no overflow */
  out->data = malloc(bytes ? bytes : 1);
  if (!out->data) {
    free(ext);
    return camd_error_set(err, CAMD_E_NOMEM, "%s: out of memory for %zu bytes", what, bytes);
  }
  float *f = out->data;
  int64_t *i = out->data;
  float fv = 0;
  int64_t iv = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  if (raw && type == T_FLOAT) { /* the weights: already little-endian float32 */
    memcpy(f, raw, count * 4);
    free(ext);
    return 0;
  }
#endif
  for (size_t k = 0; k < count; k++) {
    if (raw)
      convert_raw(type, raw + k * eb, &fv, &iv);
    else
      convert_typed(t, k, &fv, &iv);
    if (is_float)
      f[k] = fv;
    else
      i[k] = iv;
  }
  free(ext);
  return 0;
}

int camd__onnx_initializer_decode(camd__onnx_ctx *ctx, Onnx__TensorProto *t, const char *what,
                                  camd__onnx_tensor *out, camd_error *err) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const bool external =
      t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
  const int32_t type = t->has_data_type ? t->data_type : 0;
  if (type == T_FLOAT && !external && !t->segment && t->has_raw_data && t->raw_data.data &&
      t->n_dims <= CAMD_MAX_DIMS) {
    camd_shape shape = {.ndim = (int)t->n_dims};
    bool ok = true;
    for (size_t k = 0; k < t->n_dims; k++) {
      ok = ok && t->dims[k] >= 0;
      shape.dims[k] = t->dims[k];
    }
    size_t count, nbytes;
    if (ok && camd__onnx_shape_count(&shape, &count) && camd_size_mul(count, 4, &nbytes) &&
        nbytes == t->raw_data.len && nbytes > 0) {
      memset(out, 0, sizeof(*out));
      out->dtype = CAMD_FLOAT32;
      out->shape = shape;
      out->data = t->raw_data.data; /* protobuf-c's copy, malloc'd (the default allocator) */
      t->raw_data.data = NULL;
      t->raw_data.len = 0;
      return 0;
    }
  }
#endif
  /* Anything else (and every error message) goes the general way. */
  return camd__onnx_tensor_decode(ctx, t, what, out, err);
}
