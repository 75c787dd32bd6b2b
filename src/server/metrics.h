/* Prometheus metrics (metrics.c): requests by route and status, run latency by model and method,
 * stage times, batch sizes, in-flight requests. Every function is thread-safe. */
#ifndef CAMD_SERVER_METRICS_H
#define CAMD_SERVER_METRICS_H

#include <stddef.h>

#include "camd/explain.h"

typedef enum camd__route {
  CAMD_ROUTE_NONE = 0,
  CAMD_ROUTE_EXPLAIN,
  CAMD_ROUTE_PREDICT,
  CAMD_ROUTE_EXPLAIN_ANY, /* POST /v1/explain */
  CAMD_ROUTE_MODELS,
  CAMD_ROUTE_MODEL,
  CAMD_ROUTE_HEALTH,
  CAMD_ROUTE_READY,
  CAMD_ROUTE_METRICS,
  CAMD_ROUTE_STATIC,
  CAMD_ROUTE_COUNT
} camd__route;
const char *camd__route_name(camd__route r);

int camd__metrics_init(const char *const *model_names, int n_models, camd_error *err);
void camd__metrics_free(void);
void camd__metrics_request(camd__route route, int http_status);
/* A request answered from an explain/predict run: run seconds by model and method, and the run's
 * stage timings (t may be NULL). */
void camd__metrics_run(int model_index, const char *method, double seconds,
                       const camd_explain_timings *t);
/* One engine run of `images` images (dynamic batching: several requests may share it). */
void camd__metrics_batch(int images);
void camd__metrics_inflight(int delta);
/* A queued job dropped because its client closed the connection before it ran. */
void camd__metrics_dropped(void);
/* Prometheus text exposition with the current queue depth; malloc'd (NULL: out of memory). */
char *camd__metrics_render(int queue_depth, size_t *len);

#endif
