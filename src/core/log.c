/* Thread-safe logging: one line per call to stderr, filtered by a global minimum level. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "camd/core.h"

static atomic_int log_min_level = CAMD_LOG_INFO;
static pthread_mutex_t log_mutex = PTHREAD_MUTEX_INITIALIZER;

void camd_log_set_level(camd_log_level level) {
  atomic_store(&log_min_level, (int)level);
}

static const char *level_name(camd_log_level level) {
  switch (level) {
    case CAMD_LOG_DEBUG:
      return "debug";
    case CAMD_LOG_INFO:
      return "info";
    case CAMD_LOG_WARN:
      return "warn";
    case CAMD_LOG_ERROR:
      return "error";
  }
  return "log";
}

void camd_log(camd_log_level level, const char *fmt, ...) {
  if ((int)level < atomic_load(&log_min_level)) return;
  /* Format into a local buffer first so the line is written with one call under the lock. */
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000000L, level_name(level));
  if (n < 0) n = 0;
  size_t used = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
  va_end(ap);
  if (m > 0) used += (size_t)m < sizeof(line) - used ? (size_t)m : sizeof(line) - used - 1;
  /* Embedded newlines would break the one-line-per-call contract: replace them. */
  for (size_t i = 0; i < used; i++) {
    if (line[i] == '\n' || line[i] == '\r') line[i] = ' ';
  }
  line[used++] = '\n';
  pthread_mutex_lock(&log_mutex);
  fwrite(line, 1, used, stderr);
  fflush(stderr);
  pthread_mutex_unlock(&log_mutex);
}
