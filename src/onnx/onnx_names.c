/* A small open-addressing string set used by the ONNX loader to look names up in O(1). */
#include <stdlib.h>
#include <string.h>

#include "onnx/onnx_internal.h"

static uint64_t names_hash(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

static int names_grow(camd__onnx_names *s) {
  size_t cap = s->cap ? s->cap * 2 : 64;
  if (cap < s->cap || cap > SIZE_MAX / sizeof(char *)) return CAMD_E_NOMEM;
  const char **keys = calloc(cap, sizeof(char *));
  if (!keys) return CAMD_E_NOMEM;
  for (size_t i = 0; i < s->cap; i++) {
    if (!s->keys[i]) continue;
    size_t j = names_hash(s->keys[i]) & (cap - 1);
    while (keys[j]) j = (j + 1) & (cap - 1);
    keys[j] = s->keys[i];
  }
  free(s->keys);
  s->keys = keys;
  s->cap = cap;
  return 0;
}

int camd__onnx_names_add(camd__onnx_names *s, const char *key) {
  if (camd__onnx_names_has(s, key)) return 0;
  if ((s->n + 1) * 2 > s->cap) {
    int rc = names_grow(s);
    if (rc < 0) return rc;
  }
  size_t j = names_hash(key) & (s->cap - 1);
  while (s->keys[j]) j = (j + 1) & (s->cap - 1);
  s->keys[j] = key;
  s->n++;
  return 0;
}

bool camd__onnx_names_has(const camd__onnx_names *s, const char *key) {
  if (!s->cap) return false;
  size_t j = names_hash(key) & (s->cap - 1);
  while (s->keys[j]) {
    if (strcmp(s->keys[j], key) == 0) return true;
    j = (j + 1) & (s->cap - 1);
  }
  return false;
}

void camd__onnx_names_free(camd__onnx_names *s) {
  free(s->keys);
  s->keys = NULL;
  s->cap = s->n = 0;
}
