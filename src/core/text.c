/* Text helpers every module shares: the one strict number parser pair (decimal integers and
 * finite decimal floats, no spaces, hex, inf or nan) and the directory part of a path. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"

/* [+-]?[0-9]+ */
static bool is_int_text(const char *s) {
  if (*s == '+' || *s == '-') s++;
  if (!isdigit((unsigned char)*s)) return false;
  while (isdigit((unsigned char)*s)) s++;
  return *s == 0;
}

int camd_parse_int(const char *s, long long lo, long long hi, long long *out) {
  if (!s || !is_int_text(s)) return -1;
  errno = 0;
  char *end;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < lo || v > hi) return -1;
  *out = v;
  return 0;
}

/* [+-]?(digits[.digits*]|.digits)([eE][+-]?digits)? */
static bool is_float_text(const char *p) {
  if (*p == '+' || *p == '-') p++;
  bool digits = false;
  while (isdigit((unsigned char)*p)) p++, digits = true;
  if (*p == '.') {
    p++;
    while (isdigit((unsigned char)*p)) p++, digits = true;
  }
  if (!digits) return false;
  if (*p == 'e' || *p == 'E') {
    p++;
    if (*p == '+' || *p == '-') p++;
    if (!isdigit((unsigned char)*p)) return false;
    while (isdigit((unsigned char)*p)) p++;
  }
  return *p == 0;
}

int camd_parse_double(const char *s, double *out) {
  if (!s || !is_float_text(s)) return -1;
  errno = 0;
  char *end;
  double v = strtod(s, &end);
  if (errno == ERANGE || *end || !isfinite(v)) return -1;
  *out = v;
  return 0;
}

int camd_path_dirname(const char *path, char *out, size_t cap) {
  const char *slash = strrchr(path, '/');
  const char *dir = ".";
  size_t n = 1;
  if (slash == path) {
    dir = "/";
  } else if (slash) {
    dir = path;
    n = (size_t)(slash - path);
  }
  if (n >= cap) return -1;
  memcpy(out, dir, n);
  out[n] = '\0';
  return 0;
}
