/* camd's Huffman-only deflate (src/image/png_deflate.c) decoded by zlib's inflate: byte
 * distributions from one value to uniform noise (stored blocks), skewed ones whose optimal codes
 * are longer than 15 bits (length limiting), block edges, and streams cut into pieces (sync
 * flushes) that must concatenate into one stream; camd's Adler-32 against zlib's. */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "camd/core.h"
#include "image/image_internal.h"
#include "testlib.h"

/* Inflates a raw deflate stream; returns the bytes out, or -1 on a zlib error. */
static long inflate_raw(const unsigned char *in, size_t n, unsigned char *out, size_t cap) {
  z_stream z;
  memset(&z, 0, sizeof(z));
  if (inflateInit2(&z, -15) != Z_OK) return -1;
  z.next_in = (unsigned char *)in;
  z.avail_in = (uInt)n;
  z.next_out = out;
  z.avail_out = (uInt)cap;
  int rc = inflate(&z, Z_FINISH);
  long got = rc == Z_STREAM_END && z.avail_in == 0 ? (long)(cap - z.avail_out) : -1;
  inflateEnd(&z);
  return got;
}

/* Encodes data in `pieces` pieces (all but the last ending in a sync flush), inflates the
 * concatenation and compares. Returns the compressed size. */
static size_t round_trip(const char *what, const unsigned char *data, size_t n, int pieces) {
  unsigned char *enc = malloc(camd__deflate_huffman_bound(n) * (size_t)pieces + 64);
  unsigned char *dec = malloc(n + 1);
  size_t len = 0, off = 0;
  for (int p = 0; p < pieces; p++) {
    const size_t k = p + 1 == pieces ? n - off : n / (size_t)pieces;
    len += camd__deflate_huffman(data + off, k, p + 1 == pieces, enc + len);
    CHECK_MSG(len <= camd__deflate_huffman_bound(n) * (size_t)(p + 1), "%s: over the bound", what);
    off += k;
  }
  const long got = inflate_raw(enc, len, dec, n + 1);
  CHECK_MSG(got == (long)n, "%s (%zu bytes, %d pieces): inflate gave %ld", what, n, pieces, got);
  if (got == (long)n) CHECK_MSG(!memcmp(dec, data, n), "%s: inflated bytes differ", what);
  free(enc);
  free(dec);
  return len;
}

static void test_distributions(void) {
  camd_rng r;
  camd_rng_seed(&r, 3);
  const size_t sizes[] = {1, 2, 100, 16383, 16384, 16385, 50000, 200000};
  unsigned char *d = malloc(200000);
  for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
    const size_t n = sizes[si];
    for (int kind = 0; kind < 6; kind++) {
      for (size_t i = 0; i < n; i++) {
        const uint32_t u = camd_rng_next(&r);
        switch (kind) {
          case 0:
            d[i] = 0;
            break; /* one value */
          case 1:
            d[i] = u & 1 ? 7 : 200;
            break; /* two values */
          case 2:
            d[i] = (unsigned char)u;
            break; /* noise: stored */
          case 3:
            d[i] = (unsigned char)(u % 9 + 124);
            break;  /* small residuals */
          case 4: { /* geometric: value v with probability 2^-(v+1), codes past 15 bits */
            int v = 0;
            while (v < 40 && (u >> v & 1u)) v++;
            d[i] = (unsigned char)(v * 5);
            break;
          }
          default:
            d[i] = (unsigned char)(i % 251);
            break; /* every value, flat */
        }
      }
      char what[64];
      snprintf(what, sizeof what, "kind %d, %zu bytes", kind, n);
      const size_t len = round_trip(what, d, n, 1);
      if (n >= 2) round_trip(what, d, n, n >= 3 ? 3 : 2);
      if (kind == 2 && n >= 16384) /* noise never grows by more than the stored headers */
        CHECK_MSG(len <= n + (n / 16384 + 1) * 5 + 1, "%s: %zu bytes", what, len);
      if (kind == 0 && n >= 16384) CHECK_MSG(len < n / 7, "%s: %zu bytes", what, len);
    }
  }
  free(d);
}

/* A distribution whose unlimited Huffman code needs more than 15 bits: Fibonacci frequencies
 * 1, 2, 3, 5, ... of 18 values (10944 bytes, one block; the end-of-block code has frequency 1)
 * give an optimal code 18 bits deep, so the coder must limit the lengths (deflate cannot express
 * a length over 15), and still beat a stored block. */
static void test_length_limit(void) {
  enum { SYMS = 18 };
  size_t freq[SYMS], n = 0, f0 = 1, f1 = 2;
  for (int s = 0; s < SYMS; s++) {
    freq[s] = f0;
    n += f0;
    const size_t f2 = f0 + f1;
    f0 = f1, f1 = f2;
  }
  unsigned char *d = malloc(n);
  size_t k = 0;
  for (int s = 0; s < SYMS; s++)
    for (size_t i = 0; i < freq[s]; i++) d[k++] = (unsigned char)(s * 3);
  camd_rng r; /* shuffled */
  camd_rng_seed(&r, 11);
  for (size_t i = n - 1; i > 0; i--) {
    const size_t j = camd_rng_next(&r) % (i + 1);
    const unsigned char t = d[i];
    d[i] = d[j], d[j] = t;
  }
  const size_t len = round_trip("Fibonacci frequencies", d, n, 1);
  CHECK_MSG(len < n / 3, "Fibonacci frequencies: %zu of %zu bytes", len, n);
  round_trip("Fibonacci frequencies", d, n, 2);
  free(d);
}

/* camd__adler32 and camd__adler32_combine against zlib's adler32 / adler32_combine: every length
 * 0..300 at several alignments and start values, runs of 0xff (the largest sums) across the
 * reduction interval's edges, and random splits of a 1 MB buffer combined. */
static void test_adler32(void) {
  enum { N = 1 << 20 };
  unsigned char *d = malloc(N + 64);
  camd_rng r;
  camd_rng_seed(&r, 5);
  for (size_t i = 0; i < N + 64; i++) d[i] = (unsigned char)camd_rng_next(&r);
  int bad = 0;
  static const uint32_t starts[] = {1, 0, 0xfff0fff0u, 0x12345678u % 65521u << 16 | 7};
  for (size_t si = 0; si < 4; si++)
    for (size_t off = 0; off < 17; off += 3)
      for (size_t n = 0; n <= 300; n++) {
        const uint32_t want = (uint32_t)adler32(starts[si], d + off, (uInt)n);
        if (camd__adler32(starts[si], d + off, n) != want && bad++ < 3)
          CHECK_MSG(0, "adler32 start %08x offset %zu length %zu", starts[si], off, n);
      }
  unsigned char *ff = malloc(N);
  memset(ff, 0xff, N);
  static const size_t lens[] = {5551, 5552, 5553, 5552 * 2 + 15, 5552 * 3 + 16, 65536, N};
  for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++)
    for (size_t si = 0; si < 4; si++) {
      const uint32_t s0 = si == 2 ? 65520u << 16 | 65520u : starts[si];
      if (camd__adler32(s0, ff, lens[li]) != (uint32_t)adler32(s0, ff, (uInt)lens[li]) && bad++ < 6)
        CHECK_MSG(0, "adler32 of %zu bytes 0xff from %08x", lens[li], s0);
      if (camd__adler32(s0, d + 1, lens[li]) != (uint32_t)adler32(s0, d + 1, (uInt)lens[li]) &&
          bad++ < 6)
        CHECK_MSG(0, "adler32 of %zu random bytes from %08x", lens[li], s0);
    }
  for (int t = 0; t < 200; t++) {
    const size_t n1 = camd_rng_next(&r) % N, n2 = camd_rng_next(&r) % (N - n1 + 1);
    const uint32_t a1 = camd__adler32(1, d, n1), a2 = camd__adler32(1, d + n1, n2);
    const uint32_t want = (uint32_t)adler32_combine(a1, a2, (z_off_t)n2);
    if ((camd__adler32_combine(a1, a2, n2) != want ||
         want != (uint32_t)adler32(adler32(0L, Z_NULL, 0), d, (uInt)(n1 + n2))) &&
        bad++ < 9)
      CHECK_MSG(0, "adler32_combine of %zu + %zu bytes", n1, n2);
  }
  CHECK_EQ_INT(bad, 0);
  free(ff);
  free(d);
}

CAMD_TEST_MAIN({"distributions", test_distributions}, {"length_limit", test_length_limit},
               {"adler32", test_adler32})
