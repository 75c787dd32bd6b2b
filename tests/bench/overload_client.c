/* Overload client (benchmark, not a test): N keep-alive connections POST one body as fast as the
 * server answers, for a fixed time, and print how fast 503 (+ Retry-After) and 200 come back.
 *
 * Written in C so the client's own queueing does not hide the server's: soak.py's 32 Python
 * threads share one interpreter lock, and on a 2-core machine their scheduling delay was most of
 * the measured 503 latency. Each connection is one thread blocked in the kernel between requests.
 *
 *   overload_client --port P --path /v1/models/m/explain --body image.jpg
 *                   [--content-type image/jpeg] [--clients 32] [--seconds 5] [--host 127.0.0.1]
 *
 * Loopback only (the host must be a 127.x.x.x address); the run stops by itself after --seconds.
 * Output: one line per status class with count, p50, p99, max (ms, wall time from the first byte
 * written to the last byte of the answer read), how many 503s carried Retry-After, and
 * reconnects. Exit 0 when the run completed (whatever the statuses), 2 on a usage error. */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

enum { MAX_CLIENTS = 1024, HEADER_CAP = 16384 };

typedef struct {
  double *ms;
  size_t n, cap;
} latency_list;

typedef struct {
  latency_list busy, ok, other;
  long no_retry_after, reconnects, io_errors;
} client_result;

static struct {
  struct sockaddr_in addr;
  const char *head;
  size_t head_len;
  const char *body;
  size_t body_len;
  double deadline_s;
} run;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static bool latency_push(latency_list *l, double ms) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? 2 * l->cap : 1024;
    double *p = realloc(l->ms, cap * sizeof(*p));
    if (!p) return false;
    l->ms = p;
    l->cap = cap;
  }
  l->ms[l->n++] = ms;
  return true;
}

static int connect_loopback(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  struct timeval tv = {30, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (connect(fd, (const struct sockaddr *)&run.addr, sizeof(run.addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static bool write_all(int fd) {
  struct iovec iov[2] = {{(void *)run.head, run.head_len}, {(void *)run.body, run.body_len}};
  int iovcnt = 2;
  struct iovec *v = iov;
  while (iovcnt > 0) {
    ssize_t w = writev(fd, v, iovcnt);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    size_t left = (size_t)w;
    while (iovcnt > 0 && left >= v->iov_len) {
      left -= v->iov_len;
      v++;
      iovcnt--;
    }
    if (iovcnt > 0) {
      v->iov_base = (char *)v->iov_base + left;
      v->iov_len -= left;
    }
  }
  return true;
}

/* Case-insensitive search for a header line "name:" inside the header block. */
static const char *find_header(const char *hdr, const char *name) {
  size_t n = strlen(name);
  for (const char *p = strstr(hdr, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
    if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') return p + 3 + n;
  }
  return NULL;
}

/* Reads one answer; returns its status (> 0), or -1 on an I/O or framing error. Sets *close_after
 * when the server said Connection: close. */
static int read_answer(int fd, char *buf, bool *retry_after, bool *close_after) {
  size_t have = 0;
  char *end = NULL;
  while (!end) {
    if (have == HEADER_CAP - 1) return -1;
    ssize_t r = read(fd, buf + have, HEADER_CAP - 1 - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    have += (size_t)r;
    buf[have] = '\0';
    end = strstr(buf, "\r\n\r\n");
  }
  end[2] = '\0'; /* header block ends with its last CRLF */
  int status = 0;
  if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1) return -1;
  const char *cl = find_header(buf, "Content-Length");
  const char *conn = find_header(buf, "Connection");
  *retry_after = find_header(buf, "Retry-After") != NULL;
  *close_after = conn && strstr(conn, "close") != NULL;
  if (!cl) return -1; /* camd always sends a length */
  long long body = strtoll(cl, NULL, 10);
  long long got = (long long)(have - (size_t)(end + 4 - buf));
  while (got < body) {
    char sink[16384];
    long long want = body - got < (long long)sizeof(sink) ? body - got : (long long)sizeof(sink);
    ssize_t r = read(fd, sink, (size_t)want);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += r;
  }
  return got == body ? status : -1;
}

static void *client_main(void *arg) {
  client_result *res = arg;
  char *buf = malloc(HEADER_CAP);
  if (!buf) return NULL;
  int fd = -1;
  while (now_s() < run.deadline_s) {
    if (fd < 0) {
      fd = connect_loopback();
      if (fd < 0) {
        res->io_errors++;
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
        continue;
      }
    }
    double t0 = now_s();
    bool retry_after = false, close_after = false;
    int status = write_all(fd) ? read_answer(fd, buf, &retry_after, &close_after) : -1;
    double ms = (now_s() - t0) * 1e3;
    if (status < 0) {
      res->io_errors++;
      close(fd);
      fd = -1;
      res->reconnects++;
      continue;
    }
    latency_list *l = status == 503 ? &res->busy : status == 200 ? &res->ok : &res->other;
    if (!latency_push(l, ms)) break;
    if (status == 503 && !retry_after) res->no_retry_after++;
    if (close_after) {
      close(fd);
      fd = -1;
      res->reconnects++;
    }
  }
  if (fd >= 0) close(fd);
  free(buf);
  return NULL;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double percentile(const latency_list *l, double p) {
  size_t i = (size_t)(p * (double)(l->n - 1) + 0.5);
  return l->ms[i];
}

static void print_class(const char *name, latency_list *l) {
  if (!l->n) {
    printf("%-6s 0 answers\n", name);
    return;
  }
  qsort(l->ms, l->n, sizeof(double), cmp_double);
  size_t under10 = 0;
  while (under10 < l->n && l->ms[under10] < 10.0) under10++;
  printf(
      "%-6s %zu answers: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms; %zu (%.1f %%) "
      "under 10 ms\n",
      name, l->n, percentile(l, 0.5), percentile(l, 0.9), percentile(l, 0.99), l->ms[l->n - 1],
      under10, 100.0 * (double)under10 / (double)l->n);
}

static bool merge_into(latency_list *dst, const latency_list *src) {
  for (size_t i = 0; i < src->n; i++)
    if (!latency_push(dst, src->ms[i])) return false;
  return true;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *data = NULL;
  size_t cap = 0, n = 0;
  for (;;) {
    if (n == cap) {
      cap = cap ? 2 * cap : 65536;
      char *p = realloc(data, cap);
      if (!p) break;
      data = p;
    }
    size_t r = fread(data + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  bool ok = !ferror(f) && data;
  fclose(f);
  if (!ok) {
    free(data);
    return NULL;
  }
  *len = n;
  return data;
}

static int usage(const char *msg) {
  fprintf(stderr,
          "overload_client: %s\nusage: overload_client --port P --path PATH --body FILE "
          "[--content-type T] [--clients N (1..%d)] [--seconds S (0..600)] [--host 127.x.x.x]\n",
          msg, MAX_CLIENTS);
  return 2;
}

int main(int argc, char **argv) {
  const char *host = "127.0.0.1", *path = NULL, *body_file = NULL, *ctype = "image/jpeg";
  long port = 0, clients = 32;
  double seconds = 5;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v) return usage("every option takes a value");
    i++;
    if (!strcmp(a, "--port"))
      port = strtol(v, NULL, 10);
    else if (!strcmp(a, "--path"))
      path = v;
    else if (!strcmp(a, "--body"))
      body_file = v;
    else if (!strcmp(a, "--content-type"))
      ctype = v;
    else if (!strcmp(a, "--clients"))
      clients = strtol(v, NULL, 10);
    else if (!strcmp(a, "--seconds"))
      seconds = strtod(v, NULL);
    else if (!strcmp(a, "--host"))
      host = v;
    else
      return usage("unknown option");
  }
  if (port < 1 || port > 65535) return usage("--port must be 1..65535");
  if (!path || path[0] != '/') return usage("--path must start with '/'");
  if (!body_file) return usage("--body is required");
  if (clients < 1 || clients > MAX_CLIENTS) return usage("--clients out of range");
  if (!(seconds > 0 && seconds <= 600)) return usage("--seconds out of range");
  memset(&run.addr, 0, sizeof(run.addr));
  run.addr.sin_family = AF_INET;
  run.addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &run.addr.sin_addr) != 1 ||
      (ntohl(run.addr.sin_addr.s_addr) >> 24) != 127)
    return usage("--host must be a loopback IPv4 address (127.x.x.x)");
  size_t body_len = 0;
  char *body = read_file(body_file, &body_len);
  if (!body) return usage("cannot read --body");
  char head[2048];
  int hn = snprintf(head, sizeof(head),
                    "POST %s HTTP/1.1\r\nHost: %s:%ld\r\nContent-Type: %s\r\n"
                    "Content-Length: %zu\r\n\r\n",
                    path, host, port, ctype, body_len);
  if (hn < 0 || (size_t)hn >= sizeof(head)) {
    free(body);
    return usage("--path or --content-type too long");
  }
  run.head = head;
  run.head_len = (size_t)hn;
  run.body = body;
  run.body_len = body_len;
  run.deadline_s = now_s() + seconds;

  client_result *res = calloc((size_t)clients, sizeof(*res));
  pthread_t *tid = calloc((size_t)clients, sizeof(*tid));
  if (!res || !tid) return 1;
  long started = 0;
  for (; started < clients; started++)
    if (pthread_create(&tid[started], NULL, client_main, &res[started]) != 0) break;
  client_result all = {0};
  for (long i = 0; i < started; i++) {
    pthread_join(tid[i], NULL);
    if (!merge_into(&all.busy, &res[i].busy) || !merge_into(&all.ok, &res[i].ok) ||
        !merge_into(&all.other, &res[i].other))
      return 1;
    all.no_retry_after += res[i].no_retry_after;
    all.reconnects += res[i].reconnects;
    all.io_errors += res[i].io_errors;
    free(res[i].busy.ms);
    free(res[i].ok.ms);
    free(res[i].other.ms);
  }
  printf("overload_client: %ld connections for %.1f s to %s:%ld %s (%zu-byte body)\n", started,
         seconds, host, port, path, body_len);
  print_class("503", &all.busy);
  print_class("200", &all.ok);
  print_class("other", &all.other);
  printf("503 without Retry-After: %ld; reconnects: %ld; I/O errors: %ld\n", all.no_retry_after,
         all.reconnects, all.io_errors);
  free(all.busy.ms);
  free(all.ok.ms);
  free(all.other.ms);
  free(res);
  free(tid);
  free(body);
  return 0;
}
