/* Base64 (RFC 4648): encode with the standard alphabet; decode standard or URL-safe, strictly. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "camd/core.h"

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t camd_base64_encoded_len(size_t len) {
  return (len / 3 + (len % 3 != 0)) * 4;
}

/* The two characters of every 12-bit value: one lookup per half of a 3-byte group. */
static char b64_pairs[4096][2];
static pthread_once_t b64_pairs_once = PTHREAD_ONCE_INIT;

static void b64_pairs_build(void) {
  for (int v = 0; v < 4096; v++) {
    b64_pairs[v][0] = b64_alphabet[v >> 6];
    b64_pairs[v][1] = b64_alphabet[v & 63];
  }
}

#if defined(__x86_64__)
/* 12 input bytes -> 16 characters a step with SSSE3 (while 16 bytes can be loaded); returns the
 * input bytes done. Group g (bytes s0 s1 s2) is shuffled into 32-bit lane g as the bytes
 * s1 s0 s2 s1: the low 16-bit word holds s0 s1 (c0 in bits 15..10, c1 in 9..4), the high word
 * s1 s2 (c2 in 11..6, c3 in 5..0). Two masks and two 16-bit multiplies (high half for c0 and c2,
 * low half for c1 and c3) move each 6-bit value to its own byte; then the character is the value
 * plus an offset chosen by its range: 'A' for 0..25, 'a' - 26 for 26..51, '0' - 52 for 52..61,
 * '+' - 62 and '/' - 63 (the range as a small index: saturating value - 51, or 13 below 26). */
__attribute__((target("ssse3"))) static size_t b64_encode_ssse3(const unsigned char *in, size_t len,
                                                                char *out) {
  const __m128i shuf = _mm_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
  const __m128i mask_hi = _mm_set1_epi32(0x0fc0fc00), mul_hi = _mm_set1_epi32(0x04000040);
  const __m128i mask_lo = _mm_set1_epi32(0x003f03f0), mul_lo = _mm_set1_epi32(0x01000010);
  const __m128i offsets =
      _mm_setr_epi8('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                    '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0);
  size_t i = 0, o = 0;
  for (; i + 16 <= len; i += 12, o += 16) {
    const __m128i v = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(in + i)), shuf);
    const __m128i c02 = _mm_mulhi_epu16(_mm_and_si128(v, mask_hi), mul_hi);
    const __m128i c13 = _mm_mullo_epi16(_mm_and_si128(v, mask_lo), mul_lo);
    const __m128i idx = _mm_or_si128(c02, c13);
    __m128i range = _mm_subs_epu8(idx, _mm_set1_epi8(51));
    range = _mm_or_si128(range,
                         _mm_and_si128(_mm_cmpgt_epi8(_mm_set1_epi8(26), idx), _mm_set1_epi8(13)));
    _mm_storeu_si128((__m128i *)(out + o), _mm_add_epi8(idx, _mm_shuffle_epi8(offsets, range)));
  }
  return i;
}
#endif

size_t camd_base64_encode_into(const void *data, size_t len, char *out) {
  const unsigned char *in = data;
  size_t o = 0, i = 0;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("ssse3")) {
    i = b64_encode_ssse3(in, len, out);
    o = i / 3 * 4;
  }
#endif
  pthread_once(&b64_pairs_once, b64_pairs_build);
  for (; i + 3 <= len; i += 3, o += 4) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    memcpy(out + o, b64_pairs[v >> 12], 2);
    memcpy(out + o + 2, b64_pairs[v & 4095], 2);
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
    out[o++] = '=';
    out[o++] = '=';
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = b64_alphabet[v >> 18 & 63];
    out[o++] = b64_alphabet[v >> 12 & 63];
    out[o++] = b64_alphabet[v >> 6 & 63];
    out[o++] = '=';
  }
  return o;
}

char *camd_base64_encode(const void *data, size_t len, size_t *out_len) {
  size_t groups = len / 3 + (len % 3 != 0);
  size_t n;
  if (!camd_size_mul(groups, 4, &n) || !camd_size_add(n, 1, &n)) return NULL;
  char *out = malloc(n);
  if (!out) return NULL;
  size_t o = camd_base64_encode_into(data, len, out);
  out[o] = '\0';
  if (out_len) *out_len = o;
  return out;
}

/* Value of one base64 character (both alphabets), -1 if invalid. */
static int b64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

static bool b64_space(unsigned char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

unsigned char *camd_base64_decode(const char *text, size_t len, size_t *out_len, camd_error *err) {
  if (!text && len) {
    camd_error_set(err, CAMD_E_INVALID, "base64: NULL input");
    return NULL;
  }
  /* Upper bound: 3 bytes per 4 characters, plus one partial group. */
  size_t cap = len / 4 * 3 + 3;
  unsigned char *out = malloc(cap ? cap : 1);
  if (!out) {
    camd_error_set(err, CAMD_E_NOMEM, "base64: out of memory decoding %zu characters", len);
    return NULL;
  }
  size_t o = 0, pads = 0;
  int std_seen = 0, url_seen = 0;
  uint32_t acc = 0;
  unsigned nchar = 0; /* characters in the current group */
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    if (b64_space(c)) continue;
    if (c == '=') {
      pads++;
      continue;
    }
    int v = b64_value(c);
    if (v < 0 || pads) {
      free(out);
      if (v < 0)
        camd_error_set(err, CAMD_E_FORMAT, "base64: invalid character 0x%02x at offset %zu", c, i);
      else
        camd_error_set(err, CAMD_E_FORMAT, "base64: data after '=' padding at offset %zu", i);
      return NULL;
    }
    if (c == '+' || c == '/') std_seen = 1;
    if (c == '-' || c == '_') url_seen = 1;
    acc = acc << 6 | (uint32_t)v;
    if (++nchar == 4) {
      out[o++] = (unsigned char)(acc >> 16);
      out[o++] = (unsigned char)(acc >> 8);
      out[o++] = (unsigned char)acc;
      acc = 0;
      nchar = 0;
    }
  }
  const char *why = NULL;
  if (std_seen && url_seen)
    why = "mixes the standard and URL-safe alphabets";
  else if (nchar == 1)
    why = "has a dangling final character (length is not valid)";
  else if (pads && (pads > 2 || (nchar == 0) || nchar + pads != 4))
    why = "has misplaced '=' padding";
  else if (nchar == 2 && (acc & 0xF))
    why = "has non-zero trailing bits";
  else if (nchar == 3 && (acc & 0x3))
    why = "has non-zero trailing bits";
  if (why) {
    free(out);
    camd_error_set(err, CAMD_E_FORMAT, "base64: input %s", why);
    return NULL;
  }
  if (nchar == 2) {
    out[o++] = (unsigned char)(acc >> 4);
  } else if (nchar == 3) {
    out[o++] = (unsigned char)(acc >> 10);
    out[o++] = (unsigned char)(acc >> 2);
  }
  if (out_len) *out_len = o;
  return out;
}
