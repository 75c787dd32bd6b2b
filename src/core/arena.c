/* Bump arena: 32-byte aligned, zero-filled allocations carved from linked blocks, freed at once. */
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"

#define ARENA_ALIGN 32u

struct camd_arena_block {
  camd_arena_block *next;
  size_t size; /* usable bytes in data */
  size_t used;
  /* data follows the header, starting at an ARENA_ALIGN boundary */
};

/* Header size rounded up so data starts aligned relative to the (aligned) block start. */
#define ARENA_HEADER ((sizeof(camd_arena_block) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1))

static unsigned char *block_data(camd_arena_block *b) {
  return (unsigned char *)b + ARENA_HEADER;
}

void camd_arena_init(camd_arena *a, size_t block_size) {
  a->head = NULL;
  a->block_size = block_size ? block_size : 64 * 1024;
}

void *camd_arena_alloc(camd_arena *a, size_t size) {
  size_t rounded;
  if (!camd_size_add(size ? size : 1, ARENA_ALIGN - 1, &rounded)) return NULL;
  rounded &= ~(size_t)(ARENA_ALIGN - 1);
  camd_arena_block *b = a->head;
  if (!b || b->size - b->used < rounded) {
    size_t cap = a->block_size > rounded ? a->block_size : rounded;
    cap = (cap + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    size_t total;
    if (!camd_size_add(cap, ARENA_HEADER, &total)) return NULL;
    b = aligned_alloc(ARENA_ALIGN, total);
    if (!b) return NULL;
    b->size = cap;
    b->used = 0;
    b->next = a->head;
    a->head = b;
  }
  void *p = block_data(b) + b->used;
  b->used += rounded;
  memset(p, 0, rounded);
  return p;
}

char *camd_arena_strdup(camd_arena *a, const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s);
  char *p = camd_arena_alloc(a, n + 1);
  if (p) memcpy(p, s, n + 1);
  return p;
}

void camd_arena_free(camd_arena *a) {
  camd_arena_block *b = a->head;
  while (b) {
    camd_arena_block *next = b->next;
    free(b);
    b = next;
  }
  a->head = NULL;
}
