/* Status table lookups and the caller-owned error struct (camd_error). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "camd/status.h"

typedef struct camd__status_entry {
  int value;
  int http;
  const char *code;
  const char *message;
} camd__status_entry;

static const camd__status_entry camd__status_table[] = {
#define CAMD__STATUS_ROW(name, value, http, code, msg) {value, http, code, msg},
    CAMD_STATUS_MAP(CAMD__STATUS_ROW)
#undef CAMD__STATUS_ROW
};

static const camd__status_entry *status_lookup(int status) {
  for (size_t i = 0; i < sizeof(camd__status_table) / sizeof(camd__status_table[0]); i++) {
    if (camd__status_table[i].value == status) return &camd__status_table[i];
  }
  return NULL;
}

const char *camd_status_code(int status) {
  const camd__status_entry *e = status_lookup(status);
  return e ? e->code : "unknown";
}

const char *camd_status_message(int status) {
  const camd__status_entry *e = status_lookup(status);
  return e ? e->message : "unknown error";
}

int camd_status_http(int status) {
  const camd__status_entry *e = status_lookup(status);
  return e ? e->http : 500;
}

int camd_error_set(camd_error *err, int status, const char *fmt, ...) {
  if (!err) return status;
  err->status = status;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
  return status;
}

int camd_error_prefix(camd_error *err, int status, const char *fmt, ...) {
  if (!err) return status;
  char prefix[CAMD_ERROR_MESSAGE_MAX];
  char old[CAMD_ERROR_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(prefix, sizeof(prefix), fmt, ap);
  va_end(ap);
  memcpy(old, err->message, sizeof(old));
  old[sizeof(old) - 1] = '\0';
  /* Concatenate by hand (snprintf("%s%s") trips -Werror=format-truncation at -O2). */
  size_t np = strnlen(prefix, sizeof(err->message) - 1);
  size_t no = strnlen(old, sizeof(err->message) - 1 - np);
  memcpy(err->message, prefix, np);
  memcpy(err->message + np, old, no);
  err->message[np + no] = '\0';
  err->status = status;
  return status;
}

void camd_error_clear(camd_error *err) {
  if (!err) return;
  err->status = 0;
  err->message[0] = '\0';
}
