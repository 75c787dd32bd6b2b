/* Unit tests for core utilities: base64 (RFC 4648 vectors), sha256 (FIPS 180-4 vectors), arena,
 * buf, read_file limits, rng, log level filter, the status table and the error struct, the strict
 * number parsers, path helpers. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "camd/core.h"
#include "testlib.h"

static void test_base64_encode_rfc4648(void) {
  static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    size_t n = 0;
    char *e = camd_base64_encode(in[i], strlen(in[i]), &n);
    CHECK(e != NULL);
    if (!e) continue;
    CHECK_MSG(strcmp(e, out[i]) == 0, "encode('%s') = '%s'", in[i], e);
    CHECK_EQ_INT(n, strlen(out[i]));
    free(e);
  }
}

/* Every 12-bit half of a group (the encoder looks up two characters per half), against a
 * character-at-a-time encoder written from RFC 4648 here, and back through the decoder. */
static void test_base64_encode_all_halves(void) {
  static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  enum { GROUPS = 4096 };
  unsigned char *in = malloc(3 * GROUPS + 2);
  char *want = malloc(4 * GROUPS + 5);
  for (uint32_t k = 0; k < GROUPS; k++) {
    uint32_t v = k << 12 | (4095u - k);
    in[3 * k] = (unsigned char)(v >> 16);
    in[3 * k + 1] = (unsigned char)(v >> 8);
    in[3 * k + 2] = (unsigned char)v;
  }
  in[3 * GROUPS] = 0xfb, in[3 * GROUPS + 1] = 0xff;
  for (size_t tail = 0; tail <= 2; tail++) {
    size_t len = 3 * GROUPS + tail, o = 0;
    for (size_t i = 0; i < len; i += 3) {
      uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
                   (i + 2 < len ? in[i + 2] : 0);
      want[o++] = alpha[v >> 18];
      want[o++] = alpha[v >> 12 & 63];
      want[o++] = i + 1 < len ? alpha[v >> 6 & 63] : '=';
      want[o++] = i + 2 < len ? alpha[v & 63] : '=';
    }
    size_t n = 0;
    char *e = camd_base64_encode(in, len, &n);
    CHECK(e && n == o && memcmp(e, want, o) == 0 && e[o] == '\0');
    camd_error err = {0};
    size_t dn = 0;
    unsigned char *d = e ? camd_base64_decode(e, n, &dn, &err) : NULL;
    CHECK(d && dn == len && memcmp(d, in, len) == 0);
    free(d);
    free(e);
  }
  free(in);
  free(want);
}

/* camd_base64_encode at every length 0..100 and offsets 0..15 of random bytes (the vector loop
 * and its scalar tail meet at every position) against a character-at-a-time encoder. */
static void test_base64_encode_lengths(void) {
  static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  unsigned char in[128];
  char want[200];
  camd_rng r;
  camd_rng_seed(&r, 3);
  int bad = 0;
  for (int round = 0; round < 20; round++) {
    for (size_t k = 0; k < sizeof(in); k++) in[k] = (unsigned char)camd_rng_next(&r);
    for (size_t off = 0; off < 16; off++)
      for (size_t len = 0; len + off <= 112; len++) {
        const unsigned char *p = in + off;
        size_t o = 0;
        for (size_t i = 0; i < len; i += 3) {
          uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < len ? (uint32_t)p[i + 1] << 8 : 0) |
                       (i + 2 < len ? p[i + 2] : 0);
          want[o++] = alpha[v >> 18];
          want[o++] = alpha[v >> 12 & 63];
          want[o++] = i + 1 < len ? alpha[v >> 6 & 63] : '=';
          want[o++] = i + 2 < len ? alpha[v & 63] : '=';
        }
        size_t n = 0;
        char *e = camd_base64_encode(p, len, &n);
        if (!(e && n == o && memcmp(e, want, o) == 0 && e[o] == '\0') && bad++ < 3)
          CHECK_MSG(0, "base64 of %zu bytes at offset %zu", len, off);
        free(e);
      }
  }
  CHECK_EQ_INT(bad, 0);
}

static void test_base64_decode_rfc4648(void) {
  static const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  static const char *enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  static const char *nopad[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    for (int v = 0; v < 2; v++) {
      const char *t = v ? nopad[i] : enc[i];
      camd_error err = {0};
      size_t n = 99;
      unsigned char *d = camd_base64_decode(t, strlen(t), &n, &err);
      CHECK_MSG(d != NULL, "decode('%s'): %s", t, err.message);
      if (!d) continue;
      CHECK_EQ_INT(n, strlen(in[i]));
      CHECK(memcmp(d, in[i], n) == 0);
      free(d);
    }
  }
}

static void test_base64_urlsafe_whitespace(void) {
  /* bytes fb ff fe: standard "+//+", URL-safe "-__-" */
  const unsigned char want[] = {0xfb, 0xff, 0xbf, 0xfe};
  camd_error err = {0};
  size_t n = 0;
  unsigned char *d = camd_base64_decode("+/+/\n/g==", 9, &n, &err);
  CHECK(d != NULL);
  if (d) {
    CHECK_EQ_INT(n, 4);
    CHECK(memcmp(d, want, 4) == 0);
    free(d);
  }
  d = camd_base64_decode(" -_-_ /g ", 9, &n, &err);
  CHECK(d == NULL); /* mixes '/' and '-_' */
  d = camd_base64_decode(" -_-_\r\n\t_g ", 11, &n, &err);
  CHECK(d != NULL);
  if (d) {
    CHECK_EQ_INT(n, 4);
    CHECK(memcmp(d, want, 4) == 0);
    free(d);
  }
}

static void test_base64_strict(void) {
  static const char *bad[] = {
      "Zm9v!", "Z", "Zm9vY", "Zg=", "Zg===", "Zg==Zg==", "=Zg", "Zh==", "Zm9=", "Zm\x80v"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    camd_error err = {0};
    size_t n = 0;
    unsigned char *d = camd_base64_decode(bad[i], strlen(bad[i]), &n, &err);
    CHECK_MSG(d == NULL, "'%s' accepted", bad[i]);
    free(d);
    CHECK_EQ_INT(err.status, CAMD_E_FORMAT);
    CHECK(err.message[0] != '\0');
  }
}

static void test_base64_roundtrip_binary(void) {
  unsigned char data[257];
  for (int i = 0; i < 257; i++) data[i] = (unsigned char)(i * 7 + 3);
  for (size_t len = 0; len <= 257; len += 1) {
    size_t n = 0, m = 0;
    char *e = camd_base64_encode(data, len, &n);
    CHECK(e != NULL);
    unsigned char *d = camd_base64_decode(e, n, &m, NULL);
    CHECK(d != NULL && m == len && (len == 0 || memcmp(d, data, len) == 0));
    free(e);
    free(d);
  }
}

static void test_sha256_fips(void) {
  char hex[65];
  camd_sha256_hex("abc", 3, hex);
  CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
  const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  camd_sha256_hex(m448, strlen(m448), hex);
  CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
  camd_sha256_hex("", 0, hex);
  CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
  const char *m896 =
      "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlm"
      "nopqrsmnopqrstnopqrstu";
  camd_sha256_hex(m896, strlen(m896), hex);
  CHECK(strcmp(hex, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1") == 0);
}

static void test_sha256_million_a(void) {
  /* Fed in odd-sized chunks to exercise the partial-block path. */
  static unsigned char chunk[997];
  memset(chunk, 'a', sizeof(chunk));
  camd_sha256 h;
  camd_sha256_init(&h);
  size_t left = 1000000;
  while (left) {
    size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
    camd_sha256_update(&h, chunk, n);
    left -= n;
  }
  unsigned char d[32];
  camd_sha256_final(&h, d);
  static const unsigned char want[32] = {0xcd, 0xc7, 0x6e, 0x5c, 0x99, 0x14, 0xfb, 0x92,
                                         0x81, 0xa1, 0xc7, 0xe2, 0x84, 0xd7, 0x3e, 0x67,
                                         0xf1, 0x80, 0x9a, 0x48, 0xa4, 0x97, 0x20, 0x0e,
                                         0x04, 0x6d, 0x39, 0xcc, 0xc7, 0x11, 0x2c, 0xd0};
  CHECK(memcmp(d, want, 32) == 0);
}

static void test_arena(void) {
  camd_arena a;
  camd_arena_init(&a, 100);
  for (size_t i = 1; i < 300; i += 7) {
    unsigned char *p = camd_arena_alloc(&a, i);
    CHECK(p != NULL);
    if (!p) break;
    CHECK(((uintptr_t)p % 32) == 0);
    int zero = 1;
    for (size_t k = 0; k < i; k++) zero &= p[k] == 0;
    CHECK(zero);
    memset(p, 0xAB, i);
  }
  char *s = camd_arena_strdup(&a, "hello arena");
  CHECK(s && strcmp(s, "hello arena") == 0);
  CHECK(camd_arena_alloc(&a, SIZE_MAX - 8) == NULL);
  camd_arena_free(&a);
  CHECK(a.head == NULL);
  void *p = camd_arena_alloc(&a, 10); /* reusable after free */
  CHECK(p != NULL && ((uintptr_t)p % 32) == 0);
  camd_arena_free(&a);
}

static void test_buf(void) {
  camd_buf b;
  camd_buf_init(&b);
  CHECK(camd_buf_append(&b, "ab", 2));
  for (int i = 0; i < 1000; i++) CHECK(camd_buf_printf(&b, "%d,", i % 10));
  CHECK_EQ_INT(b.len, 2 + 2000);
  CHECK(b.data[b.len] == '\0');
  CHECK(memcmp(b.data, "ab0,1,2,", 8) == 0);
  size_t n = 0;
  char *t = camd_buf_take(&b, &n);
  CHECK(t != NULL && n == 2002 && b.data == NULL && b.len == 0);
  free(t);
  t = camd_buf_take(&b, &n); /* empty buffer gives an empty string */
  CHECK(t != NULL && n == 0 && t[0] == '\0');
  free(t);
  camd_buf_free(&b);
}

static void test_read_file(void) {
  char path[512];
  const char *tmp = getenv("TMPDIR");
  snprintf(path, sizeof(path), "%s/camd_test_core_XXXXXX", tmp ? tmp : "/tmp");
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return;
  static unsigned char data[200000];
  for (size_t i = 0; i < sizeof(data); i++) data[i] = (unsigned char)(i * 31);
  CHECK(write(fd, data, sizeof(data)) == (ssize_t)sizeof(data));
  close(fd);
  unsigned char *d = NULL;
  size_t n = 0;
  camd_error err = {0};
  CHECK_EQ_INT(camd_read_file(path, sizeof(data), &d, &n, &err), 0);
  CHECK(n == sizeof(data) && d && memcmp(d, data, n) == 0);
  free(d);
  CHECK_EQ_INT(camd_read_file(path, sizeof(data) - 1, &d, &n, &err), CAMD_E_LIMIT);
  CHECK(d == NULL && strstr(err.message, "199999") != NULL);
  CHECK_EQ_INT(camd_read_file(path, SIZE_MAX, &d, &n, &err), 0);
  free(d);
  unlink(path);
  CHECK_EQ_INT(camd_read_file(path, 10, &d, &n, &err), CAMD_E_NOT_FOUND);
}

static void test_rng_time(void) {
  camd_rng a, b;
  camd_rng_seed(&a, 42);
  camd_rng_seed(&b, 42);
  for (int i = 0; i < 10; i++) CHECK(camd_rng_next(&a) == camd_rng_next(&b));
  double sum = 0, sq = 0;
  const int n = 200000;
  for (int i = 0; i < n; i++) {
    double u = camd_rng_uniform(&a);
    CHECK(u >= 0.0 && u < 1.0);
    double z = camd_rng_normal(&a);
    sum += z;
    sq += z * z;
  }
  CHECK_NEAR(sum / n, 0.0, 0.02);
  CHECK_NEAR(sq / n, 1.0, 0.02);
  uint64_t t0 = camd_now_ns(), t1 = camd_now_ns();
  CHECK(t1 >= t0);
}

/* Runs camd_log at `level` with the filter at `min`, stderr captured; the bytes written. */
static size_t log_capture(camd_log_level min, camd_log_level level, const char *text, char *out,
                          size_t cap) {
  char path[512];
  const char *tmp = getenv("TMPDIR");
  snprintf(path, sizeof(path), "%s/camd_test_log_XXXXXX", tmp ? tmp : "/tmp");
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  if (fd < 0) return 0;
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  camd_log_set_level(min);
  camd_log(level, "%s", text);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  camd_log_set_level(CAMD_LOG_INFO);
  ssize_t n = pread(fd, out, cap - 1, 0);
  close(fd);
  unlink(path);
  out[n > 0 ? n : 0] = 0;
  return n > 0 ? (size_t)n : 0;
}

/* The level filter drops lower levels; a line is one line (embedded newlines replaced). */
static void test_log(void) {
  char buf[4096];
  CHECK_EQ_INT(log_capture(CAMD_LOG_ERROR, CAMD_LOG_INFO, "dropped", buf, sizeof(buf)), 0);
  CHECK_EQ_INT(log_capture(CAMD_LOG_WARN, CAMD_LOG_DEBUG, "dropped", buf, sizeof(buf)), 0);
  size_t n = log_capture(CAMD_LOG_ERROR, CAMD_LOG_ERROR, "kept\nsecond", buf, sizeof(buf));
  CHECK(n > 0 && buf[n - 1] == '\n' && strchr(buf, '\n') == buf + n - 1);
  CHECK(strstr(buf, " error ") && strstr(buf, "kept second"));
  n = log_capture(CAMD_LOG_DEBUG, CAMD_LOG_WARN, "w", buf, sizeof(buf));
  CHECK(n > 0 && strstr(buf, " warn  w"));
}

static void test_parse_numbers(void) {
  long long v = 42;
  CHECK(camd_parse_int("-17", -100, 100, &v) == 0 && v == -17);
  CHECK(camd_parse_int("+5", 0, 10, &v) == 0 && v == 5);
  CHECK(camd_parse_int("9223372036854775807", 0, 9223372036854775807LL, &v) == 0);
  const char *bad_int[] = {"",  " 5", "5 ", "0x10", "1e3", "5.0", "+", "-", "99999999999999999999",
                           "11"};
  for (size_t i = 0; i < sizeof(bad_int) / sizeof(bad_int[0]); i++) {
    v = 42;
    CHECK_MSG(camd_parse_int(bad_int[i], 0, 10, &v) == -1 && v == 42, "'%s'", bad_int[i]);
  }
  CHECK(camd_parse_int(NULL, 0, 10, &v) == -1);
  double d = 7;
  CHECK(camd_parse_double("1e-1", &d) == 0 && d == 0.1);
  CHECK(camd_parse_double(".5", &d) == 0 && d == 0.5);
  CHECK(camd_parse_double("-3.", &d) == 0 && d == -3.0);
  const char *bad_f[] = {"", "nan", "inf", "0x1p3", " 1", "1 ", ".", "1e", "1e400", "1,5", "e5"};
  for (size_t i = 0; i < sizeof(bad_f) / sizeof(bad_f[0]); i++) {
    d = 7;
    CHECK_MSG(camd_parse_double(bad_f[i], &d) == -1 && d == 7, "'%s'", bad_f[i]);
  }
}

static void test_path_dirname(void) {
  const char *cases[][2] = {{"a/b.onnx", "a"},  {"/x.json", "/"},      {"x.json", "."},
                            {"/a/b/c", "/a/b"}, {"a/b/", "a/b"},       {"", "."},
                            {"./m.onnx", "."},  {"../m/l.txt", "../m"}};
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char out[64];
    CHECK_MSG(camd_path_dirname(cases[i][0], out, sizeof(out)) == 0 && !strcmp(out, cases[i][1]),
              "'%s' -> '%s'", cases[i][0], out);
  }
  char small[4];
  CHECK(camd_path_dirname("abcd/e", small, sizeof(small)) == -1);
  CHECK(camd_path_dirname("abc/e", small, sizeof(small)) == 0 && !strcmp(small, "abc"));
}

/* One code per meaning: values and codes unique; every error status maps to a 4xx/5xx. */
static void test_status_table(void) {
  static const struct {
    int value, http;
    const char *code;
  } rows[] = {
#define ROW(name, value, http, code, msg) {value, http, code},
      CAMD_STATUS_MAP(ROW)
#undef ROW
  };
  size_t n = sizeof(rows) / sizeof(rows[0]);
  for (size_t i = 0; i < n; i++) {
    CHECK_EQ_INT(camd_status_http(rows[i].value), rows[i].http);
    CHECK(!strcmp(camd_status_code(rows[i].value), rows[i].code));
    if (rows[i].value) CHECK_MSG(rows[i].http >= 400 && rows[i].http <= 599, "%s", rows[i].code);
    for (size_t j = 0; j < i; j++) {
      CHECK_MSG(rows[i].value != rows[j].value, "value %d twice", rows[i].value);
      CHECK_MSG(strcmp(rows[i].code, rows[j].code), "code %s twice", rows[i].code);
    }
  }
  CHECK(!strcmp(camd_status_code(12345), "unknown"));
  CHECK_EQ_INT(camd_status_http(12345), 500);
}

/* The callee's status survives prefixing, with or without an error struct. */
static void test_error_prefix(void) {
  CHECK_EQ_INT(camd_error_prefix(NULL, CAMD_E_NOMEM, "ctx %d: ", 1), CAMD_E_NOMEM);
  CHECK_EQ_INT(camd_error_prefix(NULL, CAMD_E_IO, "ctx: "), CAMD_E_IO);
  camd_error err = {0};
  camd_error_set(&err, CAMD_E_IO, "cannot read '%s'", "x");
  CHECK_EQ_INT(camd_error_prefix(&err, CAMD_E_IO, "model '%s': ", "m"), CAMD_E_IO);
  CHECK_EQ_INT(err.status, CAMD_E_IO);
  CHECK(!strcmp(err.message, "model 'm': cannot read 'x'"));
  /* a long prefix truncates, never overflows */
  char big[2 * CAMD_ERROR_MESSAGE_MAX];
  memset(big, 'a', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  CHECK_EQ_INT(camd_error_prefix(&err, CAMD_E_NOMEM, "%s", big), CAMD_E_NOMEM);
  CHECK_EQ_INT(strlen(err.message), CAMD_ERROR_MESSAGE_MAX - 1);
}

CAMD_TEST_MAIN(CAMD_TEST(test_base64_encode_rfc4648), CAMD_TEST(test_base64_encode_all_halves),
               CAMD_TEST(test_base64_encode_lengths), CAMD_TEST(test_base64_decode_rfc4648),
               CAMD_TEST(test_base64_urlsafe_whitespace), CAMD_TEST(test_base64_strict),
               CAMD_TEST(test_base64_roundtrip_binary), CAMD_TEST(test_sha256_fips),
               CAMD_TEST(test_sha256_million_a), CAMD_TEST(test_arena), CAMD_TEST(test_buf),
               CAMD_TEST(test_read_file), CAMD_TEST(test_rng_time), CAMD_TEST(test_log),
               CAMD_TEST(test_status_table), CAMD_TEST(test_error_prefix),
               CAMD_TEST(test_parse_numbers), CAMD_TEST(test_path_dirname))
