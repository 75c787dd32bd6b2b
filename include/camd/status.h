/* camd status codes: one X-macro table gives the enum, names, HTTP statuses and messages. */
#ifndef CAMD_STATUS_H
#define CAMD_STATUS_H

#include <stddef.h>

/* X(NAME, value, http_status, code_string, default_message) */
#define CAMD_STATUS_MAP(X)                                                                         \
  X(OK, 0, 200, "ok", "success")                                                                   \
  X(E_NOMEM, -1, 500, "out_of_memory", "out of memory")                                            \
  X(E_INVALID, -2, 400, "invalid_argument", "invalid argument")                                    \
  X(E_NOT_FOUND, -3, 404, "not_found", "not found")                                                \
  X(E_UNSUPPORTED, -4, 422, "unsupported", "unsupported feature")                                  \
  X(E_FORMAT, -5, 400, "bad_format", "malformed input data")                                       \
  X(E_IO, -6, 500, "io_error", "input/output error")                                               \
  X(E_LIMIT, -7, 413, "limit_exceeded", "a configured limit was exceeded")                         \
  X(E_SHAPE, -8, 422, "shape_mismatch", "tensor shapes do not fit")                                \
  X(E_STATE, -9, 500, "bad_state", "operation not valid in the current state")                     \
  X(E_BUSY, -10, 503, "overloaded", "server is overloaded")                                        \
  X(E_TIMEOUT, -11, 503, "timeout", "operation timed out")                                         \
  X(E_MEDIA, -12, 415, "unsupported_media_type", "unsupported media type")                         \
  X(E_UNUSABLE, -13, 422, "unprocessable", "input is well-formed but cannot be used")              \
  X(E_INTERNAL, -14, 500, "internal", "internal error (a bug in camd)")

typedef enum camd_status {
#define CAMD__STATUS_ENUM(name, value, http, code, msg) CAMD_##name = value,
  CAMD_STATUS_MAP(CAMD__STATUS_ENUM)
#undef CAMD__STATUS_ENUM
} camd_status;

/* Short machine-readable code ("invalid_argument"); "unknown" for values not in the table. */
const char *camd_status_code(int status);
/* Generic human message for a status. */
const char *camd_status_message(int status);
/* HTTP status that corresponds to a camd status (500 for unknown values). */
int camd_status_http(int status);

/* Caller-owned error detail. Functions that take a `camd_error *` (may be NULL) fill it on
 * failure with the status they return and a message a user can act on. */
#define CAMD_ERROR_MESSAGE_MAX 1024
typedef struct camd_error {
  int status;
  char message[CAMD_ERROR_MESSAGE_MAX];
} camd_error;

/* Fill `err` (if non-NULL) with status and a printf-style message; returns `status` so callers
 * can write `return camd_error_set(err, CAMD_E_INVALID, "...")`. */
int camd_error_set(camd_error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prefix the existing message with context ("loading 'x.onnx': ..."); returns err->status. */
int camd_error_prefix(camd_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reset to OK with an empty message. */
void camd_error_clear(camd_error *err);

#endif
