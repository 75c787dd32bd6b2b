/* Deflate (RFC 1951) with Huffman codes only, for the PNG encoder's fast levels: every byte is a
 * literal, each block of up to HUFF_BLOCK bytes gets its own dynamic code (or is stored when that
 * is smaller). PNG rows after the Average filter are mostly small residuals, so the matches that
 * zlib looks for buy little (zlib's own Huffman-only strategy was 3.6 % larger than its run-length
 * one on a 400x300 photo overlay) and the code does not pay their search: about one table lookup
 * and one shift per byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "image/image_internal.h"

enum {
  HUFF_BLOCK = 16384, /* bytes per block (zlib's default symbol buffer at memLevel 8) */
  LIT_SYMS = 257,     /* 0..255 and end-of-block */
  CL_SYMS = 19,       /* code-length alphabet */
  MAX_BITS = 15,
  MAX_CL_BITS = 7
};

/* Order in which the code-length code's lengths are sent (RFC 1951 3.2.7). */
static const uint8_t cl_order[CL_SYMS] = {16, 17, 18, 0, 8,  7, 9,  6, 10, 5,
                                          11, 4,  12, 3, 13, 2, 14, 1, 15};

typedef struct bit_writer {
  unsigned char *p;
  uint64_t acc; /* pending bits, LSB first */
  int n;        /* pending bit count, < 32 after every put */
} bit_writer;

static inline void put_bits(bit_writer *b, uint32_t v, int len) {
  b->acc |= (uint64_t)v << b->n;
  b->n += len;
  if (b->n >= 32) {
    b->p[0] = (unsigned char)b->acc;
    b->p[1] = (unsigned char)(b->acc >> 8);
    b->p[2] = (unsigned char)(b->acc >> 16);
    b->p[3] = (unsigned char)(b->acc >> 24);
    b->p += 4;
    b->acc >>= 32;
    b->n -= 32;
  }
}

static inline void store_le64(unsigned char *p, uint64_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  memcpy(p, &v, 8);
#else
  for (int k = 0; k < 8; k++) p[k] = (unsigned char)(v >> (8 * k));
#endif
}

/* Writes out the pending bits, zero-padded to a byte boundary. */
static void align_byte(bit_writer *b) {
  while (b->n > 0) {
    *b->p++ = (unsigned char)b->acc;
    b->acc >>= 8;
    b->n -= 8;
  }
  b->acc = 0;
  b->n = 0;
}

/* Sorts m keys (frequency << 16 | symbol, frequencies below 2^32, all keys distinct) in
 * increasing order: LSD radix sort on the frequency, 8 bits a pass, passes while bits are left;
 * stable, and the keys come in symbol order, so ties fall in symbol order as in a sort of the
 * whole key. */
static void sort_keys(uint64_t *key, int m) {
  uint64_t tmp[LIT_SYMS], *a = key, *b = tmp;
  uint64_t all = 0;
  for (int i = 0; i < m; i++) all |= key[i] >> 16;
  for (int shift = 16; shift < 48 && (all >> (shift - 16)) != 0; shift += 8) {
    int count[257] = {0};
    for (int i = 0; i < m; i++) count[(a[i] >> shift & 255) + 1]++;
    for (int d = 0; d < 256; d++) count[d + 1] += count[d];
    for (int i = 0; i < m; i++) b[count[a[i] >> shift & 255]++] = a[i];
    uint64_t *t = a;
    a = b;
    b = t;
  }
  if (a != key) memcpy(key, a, (size_t)m * sizeof(*key));
}

/* Huffman code lengths (at most `limit` bits) for nsym symbols of frequencies freq; unused
 * symbols get 0. Two queues over the symbols sorted by frequency; when the longest code is over
 * the limit the frequencies are halved (kept non-zero) and the code rebuilt, which ends at the
 * latest when all are equal (depth ceil(log2 nsym) <= limit for both alphabets here). With a
 * single used symbol it gets length 1 (the caller completes the code). */
static void huff_lengths(const uint32_t *freq_in, int nsym, int limit, uint8_t *len) {
  uint32_t freq[LIT_SYMS];
  uint64_t key[LIT_SYMS];
  uint64_t weight[2 * LIT_SYMS];
  int parent[2 * LIT_SYMS], depth[2 * LIT_SYMS];
  memcpy(freq, freq_in, (size_t)nsym * sizeof(uint32_t));
  memset(len, 0, (size_t)nsym);
  for (;;) {
    int m = 0;
    for (int s = 0; s < nsym; s++)
      if (freq[s]) key[m++] = (uint64_t)freq[s] << 16 | (uint64_t)s;
    if (m == 0) return;
    if (m == 1) {
      len[key[0] & 0xffff] = 1;
      return;
    }
    sort_keys(key, m);
    for (int i = 0; i < m; i++) weight[i] = key[i] >> 16;
    int leaf = 0, inner = m;
    for (int next = m; next < 2 * m - 1; next++) {
      int pick[2];
      for (int t = 0; t < 2; t++) {
        if (leaf < m && (inner >= next || weight[leaf] <= weight[inner]))
          pick[t] = leaf++;
        else
          pick[t] = inner++;
      }
      weight[next] = weight[pick[0]] + weight[pick[1]];
      parent[pick[0]] = parent[pick[1]] = next;
    }
    depth[2 * m - 2] = 0;
    int longest = 0;
    for (int i = 2 * m - 3; i >= 0; i--) {
      depth[i] = depth[parent[i]] + 1;
      if (i < m && depth[i] > longest) longest = depth[i];
    }
    if (longest <= limit) {
      for (int i = 0; i < m; i++) len[key[i] & 0xffff] = (uint8_t)depth[i];
      return;
    }
    for (int s = 0; s < nsym; s++)
      if (freq[s]) freq[s] = (freq[s] >> 1) | 1;
  }
}

/* Canonical codes (RFC 1951 3.2.2) of the lengths, bit-reversed for LSB-first output. */
static void huff_codes(const uint8_t *len, int nsym, uint16_t *code) {
  int count[MAX_BITS + 1] = {0}, next[MAX_BITS + 2];
  for (int s = 0; s < nsym; s++) count[len[s]]++;
  count[0] = 0;
  next[1] = 0;
  for (int b = 1; b <= MAX_BITS; b++) next[b + 1] = (next[b] + count[b]) << 1;
  for (int s = 0; s < nsym; s++) {
    const int l = len[s];
    if (!l) continue;
    unsigned c = (unsigned)next[l]++, r = 0;
    for (int i = 0; i < l; i++, c >>= 1) r = r << 1 | (c & 1u);
    code[s] = (uint16_t)r;
  }
}

/* A code that a decoder accepts needs at least two codes: a lone symbol gets a partner. */
static void complete_single(uint8_t *len, int nsym) {
  int used = 0, first = -1;
  for (int s = 0; s < nsym; s++)
    if (len[s]) used++, first = first < 0 ? s : first;
  if (used == 1) len[first == 0 ? 1 : 0] = 1;
}

/* One code-length token: symbol 0..18 and its extra bits. */
typedef struct cl_token {
  uint8_t sym, extra;
} cl_token;

/* Run-length codes of the 258 lengths (257 literal/length codes, one unused distance code). */
static int cl_tokens(const uint8_t *lens, int n, cl_token *out) {
  int t = 0;
  for (int i = 0; i < n;) {
    const uint8_t v = lens[i];
    int run = 1;
    while (i + run < n && lens[i + run] == v) run++;
    i += run;
    if (v == 0) {
      while (run >= 11) {
        const int k = run < 138 ? run : 138;
        out[t++] = (cl_token){18, (uint8_t)(k - 11)};
        run -= k;
      }
      if (run >= 3) {
        out[t++] = (cl_token){17, (uint8_t)(run - 3)};
        run = 0;
      }
    } else {
      out[t++] = (cl_token){v, 0};
      run--;
      while (run >= 3) {
        const int k = run < 6 ? run : 6;
        out[t++] = (cl_token){16, (uint8_t)(k - 3)};
        run -= k;
      }
    }
    while (run-- > 0) out[t++] = (cl_token){v, 0};
  }
  return t;
}

static const uint8_t cl_extra_bits[CL_SYMS] = {[16] = 2, [17] = 3, [18] = 7};

/* freq[0..255] = how often each byte value occurs in data[0..n). Four tables: runs of one value
 * (most of a filtered image) would otherwise chain every increment on the previous one. */
static void count_bytes(const unsigned char *data, size_t n, uint32_t *freq) {
  uint32_t t[4][256];
  memset(t, 0, sizeof(t));
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    t[0][data[i]]++;
    t[1][data[i + 1]]++;
    t[2][data[i + 2]]++;
    t[3][data[i + 3]]++;
  }
  for (; i < n; i++) t[0][data[i]]++;
  for (int s = 0; s < 256; s++) freq[s] = t[0][s] + t[1][s] + t[2][s] + t[3][s];
}

/* The literals of a block, three bytes per step (three codes of at most 15 bits: with fewer than 8
 * pending bits, 52 bits, within the 64-bit accumulator), with the writer's
 * state in registers: after each step the whole bytes of the accumulator are stored as one
 * 8-byte little-endian word and the pointer advances by them, so fewer than 8 bits stay pending
 * and there is no branch. The word may write up to 7 bytes past the data, inside the output's
 * bound (camd__deflate_huffman_bound has 16 bytes of slack past any block that is not stored). */
static void put_literals(bit_writer *b, const unsigned char *data, size_t n, const uint16_t *code,
                         const uint8_t *lens) {
  uint32_t c[256];
  uint8_t l[256];
  for (int s = 0; s < 256; s++) c[s] = code[s], l[s] = lens[s];
  /* leave put_bits' invariant (< 32 pending) for one of < 8 */
  while (b->n >= 8) {
    *b->p++ = (unsigned char)b->acc;
    b->acc >>= 8;
    b->n -= 8;
  }
  unsigned char *p = b->p;
  uint64_t acc = b->acc;
  unsigned nb = (unsigned)b->n;
  size_t i = 0;
  for (; i + 2 < n; i += 3) {
    const unsigned x = data[i], y = data[i + 1], z = data[i + 2];
    const uint64_t codes =
        (uint64_t)c[x] | (uint64_t)c[y] << l[x] | (uint64_t)c[z] << (l[x] + l[y]);
    acc |= codes << nb;
    nb += (unsigned)l[x] + l[y] + l[z];
    store_le64(p, acc);
    p += nb >> 3;
    acc >>= nb & ~7u;
    nb &= 7u;
  }
  for (; i < n; i++) {
    acc |= (uint64_t)c[data[i]] << nb;
    nb += l[data[i]];
    store_le64(p, acc);
    p += nb >> 3;
    acc >>= nb & ~7u;
    nb &= 7u;
  }
  b->p = p;
  b->acc = acc;
  b->n = (int)nb;
}

/* One block of n (<= 65535) bytes: dynamic Huffman, or stored when that is no larger. */
static void huff_block(bit_writer *b, const unsigned char *data, size_t n, bool final) {
  uint32_t freq[LIT_SYMS];
  count_bytes(data, n, freq);
  freq[256] = 1;
  uint8_t lens[LIT_SYMS + 1];
  huff_lengths(freq, LIT_SYMS, MAX_BITS, lens);
  lens[LIT_SYMS] = 0; /* the one distance code: unused */
  cl_token tok[LIT_SYMS + 1];
  const int nt = cl_tokens(lens, LIT_SYMS + 1, tok);
  uint32_t cl_freq[CL_SYMS] = {0};
  for (int i = 0; i < nt; i++) cl_freq[tok[i].sym]++;
  uint8_t cl_len[CL_SYMS];
  huff_lengths(cl_freq, CL_SYMS, MAX_CL_BITS, cl_len);
  complete_single(cl_len, CL_SYMS);
  int ncl = CL_SYMS;
  while (ncl > 4 && cl_len[cl_order[ncl - 1]] == 0) ncl--;
  uint64_t bits = 3 + 5 + 5 + 4 + 3 * (uint64_t)ncl;
  for (int i = 0; i < nt; i++) bits += cl_len[tok[i].sym] + cl_extra_bits[tok[i].sym];
  for (int s = 0; s < LIT_SYMS; s++) bits += (uint64_t)freq[s] * lens[s];
  /* stored: 3 header bits, padding to the byte, LEN and NLEN, the bytes */
  const uint64_t stored = (uint64_t)((b->n + 3 + 7) / 8 * 8 - b->n) + 32 + 8 * (uint64_t)n;
  if (stored <= bits) {
    put_bits(b, final ? 1u : 0u, 3); /* BFINAL, BTYPE 00 */
    align_byte(b);
    const unsigned len16 = (unsigned)n, nlen16 = ~len16 & 0xffffu;
    unsigned char hdr[4] = {(unsigned char)len16, (unsigned char)(len16 >> 8),
                            (unsigned char)nlen16, (unsigned char)(nlen16 >> 8)};
    memcpy(b->p, hdr, 4);
    memcpy(b->p + 4, data, n);
    b->p += 4 + n;
    return;
  }
  uint16_t code[LIT_SYMS], cl_code[CL_SYMS];
  huff_codes(lens, LIT_SYMS, code);
  huff_codes(cl_len, CL_SYMS, cl_code);
  put_bits(b, (final ? 1u : 0u) | 2u << 1, 3); /* BFINAL, BTYPE 10 */
  put_bits(b, LIT_SYMS - 257, 5);              /* HLIT */
  put_bits(b, 0, 5);                           /* HDIST: one distance code */
  put_bits(b, (uint32_t)(ncl - 4), 4);         /* HCLEN */
  for (int i = 0; i < ncl; i++) put_bits(b, cl_len[cl_order[i]], 3);
  for (int i = 0; i < nt; i++) {
    put_bits(b, cl_code[tok[i].sym], cl_len[tok[i].sym]);
    if (cl_extra_bits[tok[i].sym]) put_bits(b, tok[i].extra, cl_extra_bits[tok[i].sym]);
  }
  put_literals(b, data, n, code, lens);
  put_bits(b, code[256], lens[256]);
}

size_t camd__deflate_huffman_bound(size_t n) {
  /* every block at worst stored (5 bytes of header, 3 bits of padding), plus the final empty
   * stored block and the pending bits */
  return n + (n / HUFF_BLOCK + 1) * 5 + 16;
}

size_t camd__deflate_huffman(const unsigned char *data, size_t n, bool last, unsigned char *out) {
  bit_writer b = {out, 0, 0};
  size_t off = 0;
  do {
    const size_t k = n - off < HUFF_BLOCK ? n - off : HUFF_BLOCK;
    huff_block(&b, data + off, k, last && off + k == n);
    off += k;
  } while (off < n);
  if (!last) { /* a sync flush: an empty stored block ends the piece on a byte boundary */
    put_bits(&b, 0, 3);
    align_byte(&b);
    static const unsigned char empty[4] = {0, 0, 0xff, 0xff};
    memcpy(b.p, empty, 4);
    b.p += 4;
  }
  align_byte(&b);
  return (size_t)(b.p - out);
}

/* ---- Adler-32 (RFC 1950 8.2) ----
 * a = 1 + sum of the bytes, b = sum of the a's after each byte, both mod 65521. Over n bytes
 * x_0 .. x_{n-1} starting from (a, b): a' = a + sum x_i, b' = b + n a + sum (n - i) x_i. The sums
 * are reduced every ADLER_NMAX bytes, the most that keep b below 2^32 (zlib's NMAX). */
enum { ADLER_MOD = 65521, ADLER_NMAX = 5552 };

static uint32_t adler32_scalar(uint32_t adler, const unsigned char *p, size_t n) {
  uint32_t a = adler & 0xffff, b = adler >> 16;
  while (n > 0) {
    size_t k = n < ADLER_NMAX ? n : ADLER_NMAX;
    n -= k;
    while (k--) {
      a += *p++;
      b += a;
    }
    a %= ADLER_MOD;
    b %= ADLER_MOD;
  }
  return b << 16 | a;
}

#if defined(__x86_64__)
/* 16 bytes a step: with m steps of a run (byte i of step c weighs 16 (m - 1 - c) + 16 - j in
 * the sum for b), `prev` adds up the step sums seen before each step (times 16 at the end) and
 * `wsum` the sums of (16 - j) x_j; psadbw gives the plain sums. Runs of ADLER_NMAX bytes (a
 * multiple of 16), then the scalar loop for the tail. */
__attribute__((target("ssse3"))) static uint32_t adler32_ssse3(uint32_t adler,
                                                               const unsigned char *p, size_t n) {
  uint32_t a = adler & 0xffff, b = adler >> 16;
  const __m128i weights = _mm_setr_epi8(16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1);
  const __m128i ones = _mm_set1_epi16(1), zero = _mm_setzero_si128();
  while (n >= 16) {
    size_t k = n < ADLER_NMAX ? n & ~(size_t)15 : ADLER_NMAX;
    n -= k;
    b += (uint32_t)k * a; /* k * a < 5552 * 65521 < 2^32 - 65521 */
    __m128i sum = zero, prev = zero, wsum = zero;
    for (; k > 0; k -= 16, p += 16) {
      const __m128i v = _mm_loadu_si128((const __m128i *)p);
      prev = _mm_add_epi32(prev, sum);
      sum = _mm_add_epi32(sum, _mm_sad_epu8(v, zero));
      wsum = _mm_add_epi32(wsum, _mm_madd_epi16(_mm_maddubs_epi16(v, weights), ones));
    }
    /* sum and prev: two 64-bit lanes (their low halves); wsum: four 32-bit lanes */
    const uint32_t s = (uint32_t)_mm_cvtsi128_si32(sum) +
                       (uint32_t)_mm_cvtsi128_si32(_mm_unpackhi_epi64(sum, sum));
    const uint32_t pv = (uint32_t)_mm_cvtsi128_si32(prev) +
                        (uint32_t)_mm_cvtsi128_si32(_mm_unpackhi_epi64(prev, prev));
    wsum = _mm_add_epi32(wsum, _mm_shuffle_epi32(wsum, 0x4e));
    wsum = _mm_add_epi32(wsum, _mm_shuffle_epi32(wsum, 0xb1));
    a += s;
    b += 16 * (pv % ADLER_MOD) + (uint32_t)_mm_cvtsi128_si32(wsum) % ADLER_MOD;
    a %= ADLER_MOD;
    b %= ADLER_MOD;
  }
  return adler32_scalar(b << 16 | a, p, n);
}
#endif

uint32_t camd__adler32(uint32_t adler, const unsigned char *p, size_t n) {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("ssse3")) return adler32_ssse3(adler, p, n);
#endif
  return adler32_scalar(adler, p, n);
}

uint32_t camd__adler32_combine(uint32_t adler1, uint32_t adler2, size_t len2) {
  /* Appending bytes y_0 .. y_{n-1} (Adler-32 (a2, b2) from the start value 1) to a stream with
   * (a1, b1): a = a1 + a2 - 1, b = b1 + n (a1 - 1) + b2, mod 65521 (RFC 1950: a starts at 1,
   * so a2 - 1 is the bytes' sum and b2 - n the sum of their weighted bytes). */
  const uint32_t rem = (uint32_t)(len2 % ADLER_MOD);
  const uint32_t a1 = adler1 & 0xffff, b1 = adler1 >> 16, a2 = adler2 & 0xffff, b2 = adler2 >> 16;
  uint32_t a = (a1 + a2 + ADLER_MOD - 1) % ADLER_MOD;
  uint32_t b = (uint32_t)(((uint64_t)b1 + b2 + (uint64_t)rem * ((a1 + ADLER_MOD - 1) % ADLER_MOD)) %
                          ADLER_MOD);
  return b << 16 | a;
}
