/* camd status codes: one X-macro table gives the enum, names, HTTP statuses and messages. */
#ifndef CAMD_STATUS_H
#define CAMD_STATUS_H

#include <stddef.h>

/* X(NAME, value, http_status, code_string, default_message). One code per meaning: every error
 * camd reports, the HTTP layer's included, is a row here (the README lists them). Values are
 * stable; a retired value is not reused. */
#define CAMD_STATUS_MAP(X)                                                            \
  X(OK, 0, 200, "ok", "success")                                                      \
  X(E_NOMEM, -1, 500, "out_of_memory", "out of memory")                               \
  X(E_INVALID, -2, 400, "invalid_argument", "invalid argument")                       \
  X(E_NOT_FOUND, -3, 404, "not_found", "not found")                                   \
  X(E_UNSUPPORTED, -4, 422, "unsupported", "unsupported feature")                     \
  X(E_FORMAT, -5, 400, "bad_format", "malformed input data")                          \
  X(E_IO, -6, 500, "io_error", "input/output error")                                  \
  X(E_LIMIT, -7, 413, "limit_exceeded", "a configured limit was exceeded")            \
  X(E_SHAPE, -8, 422, "shape_mismatch", "tensor shapes do not fit")                   \
  X(E_STATE, -9, 500, "bad_state", "operation not valid in the current state")        \
  X(E_BUSY, -10, 503, "overloaded", "server is overloaded")                           \
  X(E_MEDIA, -12, 415, "unsupported_media_type", "unsupported media type")            \
  X(E_UNUSABLE, -13, 422, "unprocessable", "input is well-formed but cannot be used") \
  X(E_INTERNAL, -14, 500, "internal", "internal error (a bug in camd)")               \
  X(E_MODEL_NOT_FOUND, -15, 404, "model_not_found", "no such model")                  \
  X(E_BAD_JSON, -16, 400, "bad_json", "the body is not valid JSON")                   \
  X(E_BAD_BASE64, -17, 400, "bad_base64", "invalid base64")                           \
  X(E_UNAUTHORIZED, -18, 401, "unauthorized", "a valid API key is required")          \
  X(E_METHOD, -19, 405, "method_not_allowed", "HTTP method not allowed")              \
  X(E_NOT_ACCEPTABLE, -20, 406, "not_acceptable", "no acceptable response type")      \
  X(E_LENGTH_REQUIRED, -21, 411, "length_required", "the request needs a length")     \
  X(E_NOT_READY, -22, 503, "not_ready", "not ready (models loading)")                 \
  X(E_SHUTTING_DOWN, -23, 503, "shutting_down", "the server is shutting down")        \
  X(E_FORBIDDEN, -24, 403, "forbidden", "the API key may not use this route")

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
/* Prefixes err's message (err may be NULL) with context ("loading 'x.onnx': ...") and returns
 * `status`, the status of the failure being passed up (stored in err->status too), so callers
 * write `return camd_error_prefix(err, rc, "...")` and keep NOMEM/IO/... whether or not they
 * were given an error struct. */
int camd_error_prefix(camd_error *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reset to OK with an empty message. */
void camd_error_clear(camd_error *err);

#endif
