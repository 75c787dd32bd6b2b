/* camd core utilities: logging, bump arena, growable strings, base64, sha256, safe size math,
 * strict number parsing, paths, files, time, random numbers. */
#ifndef CAMD_CORE_H
#define CAMD_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/status.h"

#define CAMD_VERSION "0.1.0"

/* ---- logging (thread-safe; writes one line to stderr) ---- */
typedef enum camd_log_level {
  CAMD_LOG_DEBUG = 0,
  CAMD_LOG_INFO = 1,
  CAMD_LOG_WARN = 2,
  CAMD_LOG_ERROR = 3
} camd_log_level;
void camd_log_set_level(camd_log_level level);
void camd_log(camd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- checked size arithmetic: return false on overflow ---- */
static inline bool camd_size_mul(size_t a, size_t b, size_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}
static inline bool camd_size_add(size_t a, size_t b, size_t *out) {
  return !__builtin_add_overflow(a, b, out);
}

/* ---- bump arena: many small allocations freed together. Not thread-safe; one owner. ---- */
typedef struct camd_arena_block camd_arena_block;
typedef struct camd_arena {
  camd_arena_block *head;
  size_t block_size;
} camd_arena;
void camd_arena_init(camd_arena *a, size_t block_size);
/* 32-byte aligned, zero-filled; NULL when out of memory. Owned by the arena. */
void *camd_arena_alloc(camd_arena *a, size_t size);
char *camd_arena_strdup(camd_arena *a, const char *s);
/* Frees every block; the arena can be reused afterwards. */
void camd_arena_free(camd_arena *a);

/* ---- growable byte buffer / string builder. Owner frees with camd_buf_free. ---- */
typedef struct camd_buf {
  char *data; /* always NUL-terminated when len > 0 or after any append */
  size_t len;
  size_t cap;
  bool failed; /* set once an allocation failed; further appends are ignored */
} camd_buf;
void camd_buf_init(camd_buf *b);
void camd_buf_free(camd_buf *b);
bool camd_buf_append(camd_buf *b, const void *data, size_t len);
bool camd_buf_printf(camd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (malloc'd, NUL-terminated; caller frees) and resets b. */
char *camd_buf_take(camd_buf *b, size_t *len);

/* ---- base64 (RFC 4648, standard alphabet) ---- */
/* Returns a malloc'd NUL-terminated string (caller frees) or NULL on out of memory. */
char *camd_base64_encode(const void *data, size_t len, size_t *out_len);
/* Characters the encoding of len bytes takes (no NUL), and the encoding written into out (which
 * holds at least that many); returns the characters written. */
size_t camd_base64_encoded_len(size_t len);
size_t camd_base64_encode_into(const void *data, size_t len, char *out);
/* Decodes standard or URL-safe base64, ignoring ASCII whitespace; padding optional. Returns a
 * malloc'd buffer (caller frees) or NULL with err filled (CAMD_E_FORMAT / CAMD_E_NOMEM). */
unsigned char *camd_base64_decode(const char *text, size_t len, size_t *out_len, camd_error *err);

/* ---- SHA-256 ---- */
typedef struct camd_sha256 {
  uint32_t state[8];
  uint64_t bytes;
  unsigned char block[64];
  size_t fill;
} camd_sha256;
void camd_sha256_init(camd_sha256 *h);
void camd_sha256_update(camd_sha256 *h, const void *data, size_t len);
void camd_sha256_final(camd_sha256 *h, unsigned char digest[32]);
/* Writes 64 hex chars + NUL into hex[65]. */
void camd_sha256_hex(const void *data, size_t len, char hex[65]);

/* ---- files ---- */
/* Reads a whole file (at most max_bytes) into a malloc'd buffer the caller frees. */
int camd_read_file(const char *path, size_t max_bytes, unsigned char **data, size_t *len,
                   camd_error *err);
/* A whole file (at most max_bytes), read-only: a private mapping of a regular file (no copy,
 * pages prefaulted), else read into a malloc'd buffer. Close with camd_file_unmap. */
typedef struct camd_mapped_file {
  const unsigned char *data;
  size_t len;
  void *mapped; /* the mapping (munmap), or NULL */
  size_t mapped_len;
  unsigned char *buf; /* the fallback buffer (free), or NULL */
} camd_mapped_file;
int camd_file_map_open(const char *path, size_t max_bytes, camd_mapped_file *m, camd_error *err);
void camd_file_unmap(camd_mapped_file *m);

/* ---- text ---- */
/* Strict decimal integer in [lo, hi]: [+-]?[0-9]+ and nothing else (no spaces, hex, or trailing
 * text). 0, or -1 (out untouched) when s is NULL, not of that form or out of range. */
int camd_parse_int(const char *s, long long lo, long long hi, long long *out);
/* Strict finite decimal float: [+-]?(digits[.digits]|.digits)([eE][+-]?digits)? (no spaces, hex,
 * inf, nan; overflow fails). 0 or -1 (out untouched). */
int camd_parse_double(const char *s, double *out);
/* The directory part of a path: what comes before the last '/' ("a/b.onnx" -> "a"), "/" for a
 * file in the root, "." without a '/'. 0, or -1 when it needs cap bytes or more. */
int camd_path_dirname(const char *path, char *out, size_t cap);

/* ---- lent threads ----
 * A parallel loop a caller lends to a library function that has no threads of its own (the image
 * module's encoders): run(ctx, n, fn, arg) calls fn(arg, i) for every i in [0, n) and returns when
 * all have finished, in any order and on any of its threads. A NULL camd_parallel (or run) means
 * "on the calling thread". Results must not depend on which thread ran which i. */
typedef void (*camd_parallel_fn)(void *arg, int64_t i);
typedef struct camd_parallel {
  void (*run)(void *ctx, int64_t n, camd_parallel_fn fn, void *arg);
  void *ctx;
} camd_parallel;
/* Runs the loop on par's threads, or inline when par or par->run is NULL. */
void camd_parallel_for(const camd_parallel *par, int64_t n, camd_parallel_fn fn, void *arg);

/* ---- process-wide allocation policy (glibc's malloc thresholds; no-ops elsewhere) ----
 * For the process owner (the command line), never for library code. loading: blocks below 64 MiB
 * come from the heap, so loading a model faults in far fewer pages (see alloc_policy.c). serving:
 * called once when the models are loaded: the heap's free pages go back to the kernel, then
 * thresholds suited to requests. */
void camd_alloc_policy_loading(void);
void camd_alloc_policy_serving(void);

/* ---- time ---- */
/* Monotonic clock in nanoseconds. */
uint64_t camd_now_ns(void);

/* ---- deterministic random numbers (splitmix64 / xoshiro-style); one per owner ---- */
typedef struct camd_rng {
  uint64_t s;
} camd_rng;
void camd_rng_seed(camd_rng *r, uint64_t seed);
uint64_t camd_rng_next(camd_rng *r);
/* uniform in [0, 1) */
double camd_rng_uniform(camd_rng *r);
/* standard normal (Box-Muller) */
double camd_rng_normal(camd_rng *r);

/* ---- failure injection (test builds configured with -DCAMD_FAULT_INJECT=ON) ----
 * Those builds link camd with -Wl,--wrap for malloc, calloc, realloc, aligned_alloc, strdup and
 * strndup: every allocation camd's own code makes (and jansson's, once the server or a test sets
 * json_set_alloc_funcs(malloc, free)) goes through a counter. camd_fault_arm(n) makes the n-th
 * allocation from now (any thread) return NULL with errno ENOMEM, once; n = 0 disarms. Allocations
 * inside other libraries (libmicrohttpd, libpng, libjpeg, OpenBLAS, DCMTK) are not counted. In
 * other builds the functions do nothing and camd_fault_enabled() is false. */
bool camd_fault_enabled(void);
void camd_fault_arm(long n);
/* Whether the armed failure happened; allocations counted since the last camd_fault_arm. */
bool camd_fault_fired(void);
long camd_fault_count(void);

#endif
