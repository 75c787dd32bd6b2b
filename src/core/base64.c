/* Base64 (RFC 4648): encode with the standard alphabet; decode standard or URL-safe, strictly. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

size_t camd_base64_encode_into(const void *data, size_t len, char *out) {
  const unsigned char *in = data;
  size_t o = 0, i = 0;
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
