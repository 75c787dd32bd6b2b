/* Failure injection: the n-th allocation after camd_fault_arm(n) fails (see core.h). Compiled
 * into every build; the allocation wrappers exist only with CAMD_FAULT_INJECT, where CMake links
 * the executables with -Wl,--wrap=malloc,... so camd's calls land here. */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"

#ifdef CAMD_FAULT_INJECT

static atomic_long countdown; /* > 0: armed; the allocation that takes it from 1 to 0 fails */
static atomic_long counted;
static atomic_bool fired;

bool camd_fault_enabled(void) {
  return true;
}

void camd_fault_arm(long n) {
  atomic_store(&countdown, 0);
  atomic_store(&counted, 0);
  atomic_store(&fired, false);
  if (n > 0) atomic_store(&countdown, n);
}

bool camd_fault_fired(void) {
  return atomic_load(&fired);
}

long camd_fault_count(void) {
  return atomic_load(&counted);
}

/* True when this allocation is the one to fail. */
static bool fail_now(void) {
  if (atomic_load_explicit(&countdown, memory_order_relaxed) <= 0) return false;
  long left = atomic_fetch_sub(&countdown, 1);
  if (left <= 0) return false; /* another thread took the last one */
  atomic_fetch_add(&counted, 1);
  if (left != 1) return false;
  atomic_store(&fired, true);
  errno = ENOMEM;
  return true;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

void *__wrap_malloc(size_t n) {
  return fail_now() ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size) {
  return fail_now() ? NULL : __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n) {
  return fail_now() ? NULL : __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t align, size_t n) {
  return fail_now() ? NULL : __real_aligned_alloc(align, n);
}
char *__wrap_strdup(const char *s) {
  return fail_now() ? NULL : __real_strdup(s);
}
char *__wrap_strndup(const char *s, size_t n) {
  return fail_now() ? NULL : __real_strndup(s, n);
}

#else

bool camd_fault_enabled(void) {
  return false;
}
void camd_fault_arm(long n) {
  (void)n;
}
bool camd_fault_fired(void) {
  return false;
}
long camd_fault_count(void) {
  return 0;
}

#endif
