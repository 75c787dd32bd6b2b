/* Prometheus metrics: request counts by route and status, latency histograms by model and
 * method, stage durations, batch sizes, queue depth and in-flight requests. One mutex. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "server/metrics.h"

static const char *const route_names[CAMD_ROUTE_COUNT] = {
    "none",  "explain", "predict", "explain_any", "models",
    "model", "health",  "ready",   "metrics",     "static"};

const char *camd__route_name(camd__route r) {
  return (r >= 0 && r < CAMD_ROUTE_COUNT) ? route_names[r] : "none";
}

static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
#define N_BUCKETS (sizeof(buckets) / sizeof(buckets[0]))
#define MAX_STATUSES 24
#define MAX_METHODS 16

typedef struct histo {
  uint64_t counts[N_BUCKETS + 1];
  double sum;
  uint64_t n;
} histo;

typedef struct method_stats {
  char method[32];
  histo latency;
  double stage_sum[CAMD_STAGE_COUNT];
  uint64_t stage_n;
} method_stats;

typedef struct model_stats {
  char name[CAMD_NAME_MAX];
  method_stats methods[MAX_METHODS];
  int n_methods;
} model_stats;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int statuses[MAX_STATUSES];
static uint64_t counts[CAMD_ROUTE_COUNT][MAX_STATUSES];
static int n_statuses;
static model_stats *models;
static int n_models;
static long inflight;
static uint64_t batch_counts[9]; /* 1,2,3,4,8,16,32,64,+Inf */
static double batch_sum;
static uint64_t batch_n;
static uint64_t dropped_client_gone;

int camd__metrics_init(const char *const *model_names, int n, camd_error *err) {
  models = calloc((size_t)(n > 0 ? n : 1), sizeof(*models));
  if (!models) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  for (int i = 0; i < n; i++)
    snprintf(models[i].name, sizeof(models[i].name), "%s", model_names[i]);
  n_models = n;
  return 0;
}

void camd__metrics_free(void) {
  free(models);
  models = NULL;
  n_models = 0;
}

void camd__metrics_request(camd__route route, int http_status) {
  if (route < 0 || route >= CAMD_ROUTE_COUNT) route = CAMD_ROUTE_NONE;
  pthread_mutex_lock(&mu);
  int s = 0;
  while (s < n_statuses && statuses[s] != http_status) s++;
  if (s == n_statuses && n_statuses < MAX_STATUSES) statuses[n_statuses++] = http_status;
  if (s < n_statuses) counts[route][s]++;
  pthread_mutex_unlock(&mu);
}

static void histo_add(histo *h, double v) {
  size_t b = 0;
  while (b < N_BUCKETS && v > buckets[b]) b++;
  h->counts[b]++;
  h->sum += v;
  h->n++;
}

void camd__metrics_run(int model_index, const char *method, double seconds,
                       const camd_explain_timings *t) {
  pthread_mutex_lock(&mu);
  if (model_index >= 0 && model_index < n_models) {
    model_stats *m = &models[model_index];
    int k = 0;
    while (k < m->n_methods && strcmp(m->methods[k].method, method)) k++;
    if (k == m->n_methods && m->n_methods < MAX_METHODS) {
      snprintf(m->methods[k].method, sizeof(m->methods[k].method), "%s", method);
      m->n_methods++;
    }
    if (k < m->n_methods) {
      histo_add(&m->methods[k].latency, seconds);
      if (t) {
        for (int s = 0; s < CAMD_STAGE_COUNT; s++) m->methods[k].stage_sum[s] += t->ms[s] / 1e3;
        m->methods[k].stage_n++;
      }
    }
  }
  pthread_mutex_unlock(&mu);
}

void camd__metrics_batch(int images) {
  static const int bb[8] = {1, 2, 3, 4, 8, 16, 32, 64};
  pthread_mutex_lock(&mu);
  int b = 0;
  while (b < 8 && images > bb[b]) b++;
  batch_counts[b]++;
  batch_sum += images;
  batch_n++;
  pthread_mutex_unlock(&mu);
}

void camd__metrics_dropped(void) {
  pthread_mutex_lock(&mu);
  dropped_client_gone++;
  pthread_mutex_unlock(&mu);
}

void camd__metrics_inflight(int delta) {
  pthread_mutex_lock(&mu);
  inflight += delta;
  pthread_mutex_unlock(&mu);
}

static void render_histo(camd_buf *b, const char *name, const char *labels, const histo *h) {
  uint64_t cum = 0;
  for (size_t i = 0; i < N_BUCKETS; i++) {
    cum += h->counts[i];
    camd_buf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", name, labels, buckets[i],
                    (unsigned long long)cum);
  }
  cum += h->counts[N_BUCKETS];
  camd_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", name, labels, (unsigned long long)cum);
  camd_buf_printf(b, "%s_sum{%s} %.6f\n%s_count{%s} %llu\n", name, labels, h->sum, name, labels,
                  (unsigned long long)h->n);
}

char *camd__metrics_render(int queue_depth, size_t *len) {
  camd_buf b;
  camd_buf_init(&b);
  pthread_mutex_lock(&mu);
  camd_buf_printf(&b,
                  "# HELP camd_requests_total HTTP requests by route and status.\n"
                  "# TYPE camd_requests_total counter\n");
  for (int r = 0; r < CAMD_ROUTE_COUNT; r++) {
    for (int s = 0; s < n_statuses; s++) {
      if (!counts[r][s]) continue;
      camd_buf_printf(&b, "camd_requests_total{route=\"%s\",status=\"%d\"} %llu\n", route_names[r],
                      statuses[s], (unsigned long long)counts[r][s]);
    }
  }
  camd_buf_printf(&b,
                  "# HELP camd_inflight_requests Requests being received, queued or run.\n"
                  "# TYPE camd_inflight_requests gauge\ncamd_inflight_requests %ld\n",
                  inflight);
  camd_buf_printf(&b,
                  "# HELP camd_queue_depth Jobs waiting for a worker.\n"
                  "# TYPE camd_queue_depth gauge\ncamd_queue_depth %d\n",
                  queue_depth);
  camd_buf_printf(&b,
                  "# HELP camd_run_seconds Explain/predict run time (queue excluded) by "
                  "model and method.\n# TYPE camd_run_seconds histogram\n");
  for (int i = 0; i < n_models; i++) {
    for (int k = 0; k < models[i].n_methods; k++) {
      char labels[256];
      snprintf(labels, sizeof(labels), "model=\"%s\",method=\"%s\"", models[i].name,
               models[i].methods[k].method);
      render_histo(&b, "camd_run_seconds", labels, &models[i].methods[k].latency);
    }
  }
  camd_buf_printf(&b,
                  "# HELP camd_stage_seconds Time spent per pipeline stage.\n"
                  "# TYPE camd_stage_seconds summary\n");
  for (int i = 0; i < n_models; i++) {
    for (int k = 0; k < models[i].n_methods; k++) {
      const method_stats *m = &models[i].methods[k];
      for (int s = 0; s < CAMD_STAGE_COUNT; s++) {
        camd_buf_printf(&b,
                        "camd_stage_seconds_sum{model=\"%s\",method=\"%s\",stage=\"%s\"} %.6f\n"
                        "camd_stage_seconds_count{model=\"%s\",method=\"%s\",stage=\"%s\"} %llu\n",
                        models[i].name, m->method, camd_explain_stage_name(s), m->stage_sum[s],
                        models[i].name, m->method, camd_explain_stage_name(s),
                        (unsigned long long)m->stage_n);
      }
    }
  }
  camd_buf_printf(&b,
                  "# HELP camd_batch_size Images per engine run (dynamic batching).\n"
                  "# TYPE camd_batch_size histogram\n");
  static const char *const bl[9] = {"1", "2", "3", "4", "8", "16", "32", "64", "+Inf"};
  uint64_t cum = 0;
  for (int i = 0; i < 9; i++) {
    cum += batch_counts[i];
    camd_buf_printf(&b, "camd_batch_size_bucket{le=\"%s\"} %llu\n", bl[i], (unsigned long long)cum);
  }
  camd_buf_printf(&b, "camd_batch_size_sum %.0f\ncamd_batch_size_count %llu\n", batch_sum,
                  (unsigned long long)batch_n);
  camd_buf_printf(&b,
                  "# HELP camd_jobs_dropped_total Queued jobs dropped before they ran.\n"
                  "# TYPE camd_jobs_dropped_total counter\n"
                  "camd_jobs_dropped_total{reason=\"client_gone\"} %llu\n",
                  (unsigned long long)dropped_client_gone);
  pthread_mutex_unlock(&mu);
  if (b.failed) {
    camd_buf_free(&b);
    return NULL;
  }
  return camd_buf_take(&b, len);
}
