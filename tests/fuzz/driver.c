/* Standalone driver for the fuzz targets (no libFuzzer): feeds every file named on the command
 * line (directories: every regular file in them, sorted) to LLVMFuzzerTestOneInput, then a fixed
 * number of deterministic mutations of each (bit flips, byte changes, truncation, insertion,
 * deletion, duplication, splicing with another input). Same inputs on every run, so a failure
 * reproduces; the ctest suite (tests/fuzz/suite.cmake) runs it under the sanitizer build.
 *   driver [-n MUTATIONS_PER_FILE] [-s SEED] [-max_len N] FILE_OR_DIR...
 * CAMD_FUZZ_MUTATIONS overrides -n. Prints the input being run when CAMD_FUZZ_VERBOSE is set. */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

typedef struct input {
  char *name;
  uint8_t *data;
  size_t len;
} input;

static input *inputs;
static size_t n_inputs, cap_inputs;

static void add_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "driver: cannot open %s\n", path);
    exit(2);
  }
  uint8_t *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len == cap) {
      cap = cap ? cap * 2 : 4096;
      uint8_t *nb = realloc(buf, cap);
      if (!nb) exit(3);
      buf = nb;
    }
    size_t got = fread(buf + len, 1, cap - len, f);
    len += got;
    if (got == 0) break;
  }
  fclose(f);
  if (n_inputs == cap_inputs) {
    cap_inputs = cap_inputs ? cap_inputs * 2 : 64;
    input *ni = realloc(inputs, cap_inputs * sizeof(*ni));
    if (!ni) exit(3);
    inputs = ni;
  }
  inputs[n_inputs].name = strdup(path);
  inputs[n_inputs].data = buf;
  inputs[n_inputs].len = len;
  n_inputs++;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void add_path(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "driver: no such file or directory: %s\n", path);
    exit(2);
  }
  if (!S_ISDIR(st.st_mode)) {
    add_file(path);
    return;
  }
  DIR *d = opendir(path);
  if (!d) exit(2);
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **nn = realloc(names, cap * sizeof(*nn));
      if (!nn) exit(3);
      names = nn;
    }
    size_t l = strlen(path) + strlen(de->d_name) + 2;
    names[n] = malloc(l);
    if (!names[n]) exit(3);
    snprintf(names[n], l, "%s/%s", path, de->d_name);
    n++;
  }
  closedir(d);
  qsort(names, n, sizeof(*names), cmp_names);
  for (size_t i = 0; i < n; i++) {
    if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) add_file(names[i]);
    free(names[i]);
  }
  free(names);
}

static uint64_t rng_state;
static uint64_t rnd(void) { /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 0x2545F4914F6CDD1DULL;
}
static size_t below(size_t n) {
  return n ? (size_t)(rnd() % n) : 0;
}

static const uint8_t interesting[] = {0x00, 0x01, 0x7f, 0x80, 0xff, '\n', '=', ',', '"',
                                      '{',  '}',  '[',  ']',  ':',  '-',  '0', '9', '/'};

/* One mutation of src into dst (capacity cap); returns the new length. */
static size_t mutate(const input *src, uint8_t *dst, size_t cap) {
  size_t len = src->len < cap ? src->len : cap;
  memcpy(dst, src->data, len);
  int rounds = 1 + (int)below(4);
  for (int r = 0; r < rounds; r++) {
    switch (below(8)) {
      case 0: /* flip a bit */
        if (len) dst[below(len)] ^= (uint8_t)(1u << below(8));
        break;
      case 1: /* random byte */
        if (len) dst[below(len)] = (uint8_t)rnd();
        break;
      case 2: /* interesting byte */
        if (len) dst[below(len)] = interesting[below(sizeof(interesting))];
        break;
      case 3: /* truncate */
        len = below(len + 1);
        break;
      case 4: { /* insert a byte */
        if (len >= cap) break;
        size_t at = below(len + 1);
        memmove(dst + at + 1, dst + at, len - at);
        dst[at] = below(2) ? (uint8_t)rnd() : interesting[below(sizeof(interesting))];
        len++;
        break;
      }
      case 5: { /* delete a range */
        if (!len) break;
        size_t at = below(len), n = 1 + below(len - at < 16 ? len - at : 16);
        memmove(dst + at, dst + at + n, len - at - n);
        len -= n;
        break;
      }
      case 6: { /* duplicate a range */
        if (!len) break;
        size_t at = below(len), n = 1 + below(len - at < 64 ? len - at : 64);
        if (len + n > cap) break;
        size_t to = below(len + 1);
        uint8_t tmp[64];
        memcpy(tmp, dst + at, n);
        memmove(dst + to + n, dst + to, len - to);
        memcpy(dst + to, tmp, n);
        len += n;
        break;
      }
      default: { /* splice: keep a prefix, append the tail of another input */
        const input *o = &inputs[below(n_inputs)];
        size_t keep = below(len + 1), from = below(o->len + 1);
        size_t n = o->len - from;
        if (keep + n > cap) n = cap - keep;
        memcpy(dst + keep, o->data + from, n);
        len = keep + n;
        break;
      }
    }
  }
  return len;
}

static void run(const char *what, const uint8_t *data, size_t len, int verbose) {
  if (verbose) fprintf(stderr, "driver: %s (%zu bytes)\n", what, len);
  /* an exact-size copy so ASan catches reads past the end */
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) exit(3);
  if (len) memcpy(copy, data, len);
  LLVMFuzzerTestOneInput(copy, len);
  free(copy);
}

int main(int argc, char **argv) {
  long mutations = 200;
  uint64_t seed = 0x9E3779B97F4A7C15ULL;
  size_t max_len = 1 << 20;
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i += 2) {
    if (i + 1 >= argc) break;
    if (!strcmp(argv[i], "-n"))
      mutations = strtol(argv[i + 1], NULL, 10);
    else if (!strcmp(argv[i], "-s"))
      seed = strtoull(argv[i + 1], NULL, 0);
    else if (!strcmp(argv[i], "-max_len"))
      max_len = (size_t)strtoull(argv[i + 1], NULL, 10);
    else {
      fprintf(stderr, "driver: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  const char *env = getenv("CAMD_FUZZ_MUTATIONS");
  if (env) mutations = strtol(env, NULL, 10);
  int verbose = getenv("CAMD_FUZZ_VERBOSE") != NULL;
  for (; i < argc; i++) add_path(argv[i]);
  if (!n_inputs) {
    fprintf(stderr, "driver: no inputs\n");
    return 2;
  }
  run("(empty input)", (const uint8_t *)"", 0, verbose);
  size_t cap = max_len;
  uint8_t *buf = malloc(cap);
  if (!buf) return 3;
  unsigned long runs = 1;
  for (size_t k = 0; k < n_inputs; k++) {
    input *in = &inputs[k];
    run(in->name, in->data, in->len < max_len ? in->len : max_len, verbose);
    runs++;
    rng_state = seed ^ (0x100000001B3ULL * (k + 1));
    for (long m = 0; m < mutations; m++) {
      size_t len = mutate(in, buf, cap);
      if (verbose) fprintf(stderr, "driver: mutation %ld of ", m);
      run(in->name, buf, len, verbose);
      runs++;
    }
  }
  printf("driver: %lu inputs from %zu files ran cleanly\n", runs, n_inputs);
  free(buf);
  for (size_t k = 0; k < n_inputs; k++) {
    free(inputs[k].name);
    free(inputs[k].data);
  }
  free(inputs);
  return 0;
}
