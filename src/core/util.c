/* Small utilities: whole-file reads with a size cap, the monotonic clock, a seeded RNG, lent
 * parallel loops. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "camd/core.h"

int camd_read_file(const char *path, size_t max_bytes, unsigned char **data, size_t *len,
                   camd_error *err) {
  *data = NULL;
  *len = 0;
  if (max_bytes == SIZE_MAX) max_bytes = SIZE_MAX - 1; /* max_bytes + 1 must not wrap */
  FILE *f = fopen(path, "rb");
  if (!f) {
    int e = errno;
    return camd_error_set(err, e == ENOENT ? CAMD_E_NOT_FOUND : CAMD_E_IO, "cannot open '%s': %s",
                          path, strerror(e));
  }
  /* Read in chunks rather than trusting a size from stat: works on pipes and growing files. */
  size_t cap = 0, n = 0;
  unsigned char *buf = NULL;
  int rc = 0;
  for (;;) {
    if (n == cap) {
      if (cap > max_bytes) {
        rc = camd_error_set(err, CAMD_E_LIMIT, "'%s' is larger than the limit of %zu bytes", path,
                            max_bytes);
        break;
      }
      size_t ncap = cap ? cap * 2 : 65536;
      if (ncap < cap || ncap > max_bytes + 1) ncap = max_bytes + 1; /* +1 detects "too big" */
      if (ncap == cap) {
        rc = camd_error_set(err, CAMD_E_LIMIT, "'%s' is larger than the limit of %zu bytes", path,
                            max_bytes);
        break;
      }
      unsigned char *p = realloc(buf, ncap);
      if (!p) {
        rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory reading '%s'", path);
        break;
      }
      buf = p;
      cap = ncap;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (got == 0) {
      if (ferror(f)) rc = camd_error_set(err, CAMD_E_IO, "error reading '%s'", path);
      break;
    }
  }
  fclose(f);
  if (rc == 0 && n > max_bytes) {
    rc = camd_error_set(err, CAMD_E_LIMIT, "'%s' is larger than the limit of %zu bytes", path,
                        max_bytes);
  }
  if (rc != 0) {
    free(buf);
    return rc;
  }
  if (!buf) {
    buf = malloc(1);
    if (!buf) return camd_error_set(err, CAMD_E_NOMEM, "out of memory reading '%s'", path);
  }
  *data = buf;
  *len = n;
  return 0;
}

void camd_parallel_for(const camd_parallel *par, int64_t n, camd_parallel_fn fn, void *arg) {
  if (n <= 0) return;
  if (par && par->run && n > 1) {
    par->run(par->ctx, n, fn, arg);
    return;
  }
  for (int64_t i = 0; i < n; i++) fn(arg, i);
}

uint64_t camd_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void camd_rng_seed(camd_rng *r, uint64_t seed) {
  r->s = seed;
}

/* splitmix64 (Steele, Lea, Flood 2014). */
uint64_t camd_rng_next(camd_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

double camd_rng_uniform(camd_rng *r) {
  return (double)(camd_rng_next(r) >> 11) * 0x1.0p-53;
}

double camd_rng_normal(camd_rng *r) {
  double u1 = camd_rng_uniform(r);
  double u2 = camd_rng_uniform(r);
  /* 1 - u1 is in (0, 1], so the log is finite. */
  return sqrt(-2.0 * log(1.0 - u1)) * cos(2.0 * 3.14159265358979323846 * u2);
}

int camd_file_map_open(const char *path, size_t max_bytes, camd_mapped_file *m, camd_error *err) {
  memset(m, 0, sizeof(*m));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
      close(fd);
      return camd_error_set(err, CAMD_E_LIMIT, "'%s' is larger than the limit of %zu bytes", path,
                            max_bytes);
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p != MAP_FAILED) {
      close(fd);
      m->mapped = p;
      m->mapped_len = (size_t)st.st_size;
      m->data = p;
      m->len = (size_t)st.st_size;
      return 0;
    }
  }
  if (fd >= 0) close(fd);
  /* Not a regular file, empty, or the mapping failed: read it (with its error messages). */
  int rc = camd_read_file(path, max_bytes, &m->buf, &m->len, err);
  m->data = m->buf;
  return rc;
}

void camd_file_unmap(camd_mapped_file *m) {
  if (!m) return;
  if (m->mapped) munmap(m->mapped, m->mapped_len);
  free(m->buf);
  memset(m, 0, sizeof(*m));
}
