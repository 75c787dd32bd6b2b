/* Growable byte buffer / string builder (camd_buf); the owner frees it with camd_buf_free. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"

void camd_buf_init(camd_buf *b) {
  b->data = NULL;
  b->len = 0;
  b->cap = 0;
  b->failed = false;
}

void camd_buf_free(camd_buf *b) {
  free(b->data);
  camd_buf_init(b);
}

/* Ensures room for `extra` more bytes plus the terminating NUL. */
static bool buf_reserve(camd_buf *b, size_t extra) {
  if (b->failed) return false;
  size_t need;
  if (!camd_size_add(b->len, extra, &need) || !camd_size_add(need, 1, &need)) {
    b->failed = true;
    return false;
  }
  if (need <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) {
    if (!camd_size_mul(cap, 2, &cap)) {
      cap = need;
      break;
    }
  }
  char *p = realloc(b->data, cap);
  if (!p) {
    b->failed = true;
    return false;
  }
  b->data = p;
  b->cap = cap;
  return true;
}

bool camd_buf_append(camd_buf *b, const void *data, size_t len) {
  if (!buf_reserve(b, len)) return false;
  if (len) memcpy(b->data + b->len, data, len);
  b->len += len;
  b->data[b->len] = '\0';
  return true;
}

bool camd_buf_printf(camd_buf *b, const char *fmt, ...) {
  if (b->failed) return false;
  va_list ap;
  va_start(ap, fmt);
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0 || !buf_reserve(b, (size_t)n)) {
    if (n < 0) b->failed = true;
    va_end(ap2);
    return false;
  }
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
  va_end(ap2);
  b->len += (size_t)n;
  return true;
}

char *camd_buf_take(camd_buf *b, size_t *len) {
  if (!b->data && buf_reserve(b, 0)) b->data[0] = '\0';
  char *p = b->failed ? NULL : b->data;
  if (len) *len = p ? b->len : 0;
  if (!p) free(b->data);
  camd_buf_init(b);
  return p;
}
