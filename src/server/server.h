/* server/ internals: configuration, job pool (queue + workers + batching), metrics, daemon.
 *
 * Hand-off between the network threads and the workers (see http.c for the handler side):
 *   1. An MHD handler that holds a complete, validated body builds a camd__job, SUSPENDS its
 *      connection and pushes the job under the pool lock (camd__pool_submit). A full queue is
 *      refused before suspending, and the handler answers 503 at once.
 *   2. A worker pops the job (and, when batching, compatible jobs queued within the batch
 *      window), runs camd_explain_run, stores the HTTP answer in the job, marks it done and
 *      calls the job's `done` callback, which resumes the connection. After that call the
 *      worker never touches the job again.
 *   3. MHD calls the handler again; it sees the finished job and queues the response.
 * The job is owned by the request context (freed in the request-completed callback).
 */
#ifndef CAMD_SERVER_H
#define CAMD_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "camd/explain.h"

#define CAMD_SERVER_MAX_MODELS 64
#define CAMD_SERVER_MAX_KEYS 64
#define CAMD_SERVER_MAX_ORIGINS 32

struct camd_server_config {
  char listen[256];     /* IPv4/IPv6 literal address to bind */
  long port;            /* 0 = any free port (logged at start) */
  long workers;         /* compute worker threads */
  long io_threads;      /* libmicrohttpd polling threads (epoll) */
  long blas_threads;    /* engine threads per worker; 0 = cores / workers */
  long queue_length;    /* jobs waiting for a worker; beyond it: 503 */
  long max_batch;       /* images one worker runs as one batch */
  long batch_window_us; /* how long a worker waits to fill a batch */
  long max_instances;   /* images (KServe instances) per request */
  long max_body_bytes;  /* request body cap */
  long max_image_pixels, max_image_width, max_image_height;
  long max_header_bytes;  /* MHD_OPTION_CONNECTION_MEMORY_LIMIT */
  long request_timeout_s; /* MHD_OPTION_CONNECTION_TIMEOUT (idle seconds) */
  long max_connections;   /* MHD_OPTION_CONNECTION_LIMIT */
  long max_connections_per_ip;
  long max_option_bytes;                       /* length of one option value */
  long max_options;                            /* option fields per request */
  long drain_timeout_s;                        /* SIGTERM: how long queued jobs may still run */
  long retry_after_s;                          /* Retry-After on 503 */
  char *cors_origins[CAMD_SERVER_MAX_ORIGINS]; /* "*" allowed; malloc'd */
  int n_cors_origins;
  char *api_keys[CAMD_SERVER_MAX_KEYS]; /* malloc'd */
  int n_api_keys;
  char api_keys_file[4096];
  char default_model[CAMD_NAME_MAX];
  char log_level[16];
  camd_model_config models[CAMD_SERVER_MAX_MODELS];
  int n_models;
};

/* ---- configuration (config.c) ---- */
void camd__server_config_init(camd_server_config *c);
void camd__server_config_free(camd_server_config *c);
/* Layers: defaults < file (--config / CAMD_CONFIG, default config/camd.json when present)
 * < CAMD_* environment < flags. Returns 0, 1 when --help was printed, or a negative status with
 * err naming the key and the bad value. */
int camd__server_config_load(camd_server_config *c, int argc, char **argv, camd_error *err);
void camd__server_config_help(FILE *f);

/* ---- metrics (metrics.c); all functions thread-safe ---- */
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
/* A finished explain/predict run: total seconds by model and method, and stage timings. */
void camd__metrics_run(int model_index, const char *method, double seconds, const double *stage_ms,
                       int batch_size);
void camd__metrics_inflight(int delta);
/* Prometheus text exposition; malloc'd. */
char *camd__metrics_render(size_t *len);

/* Stage names of timings_ms, in the order camd__metrics_run takes them. */
#define CAMD_STAGE_COUNT 6
extern const char *const camd__stage_names[CAMD_STAGE_COUNT];

/* ---- job pool (pool.c) ---- */
typedef struct camd__job camd__job;
struct camd__job {
  /* set by the submitter */
  camd_explainer *explainer; /* borrowed (models live as long as the pool) */
  int model_index;
  camd_explain_options opts; /* memset 0 before init so jobs compare with memcmp */
  bool predict_only;
  bool want_png;
  camd_explain_input *inputs; /* n_inputs images, borrowed from the request */
  int n_inputs;
  bool kserve; /* answer {"predictions": [...]} */
  char request_id[130];
  void (*done)(camd__job *job); /* called by the worker once the answer is stored */
  void *done_arg;
  /* pool bookkeeping */
  uint64_t enqueued_ns;
  camd__job *next;
  /* set by the worker */
  int http_status;
  char *body; /* malloc'd response body (JSON or PNG) */
  size_t body_len;
  bool body_is_png;
  double queue_ms, run_ms;
  int batch_size;
};

/* Starts `workers` threads, each with its own camd_explain_ctx sized for max_batch images. */
int camd__pool_start(const camd_server_config *cfg, camd_error *err);
/* Pushes a job. `before_push(arg)` runs under the pool lock once the job is sure to be
 * accepted (the caller suspends its connection there). CAMD_E_BUSY when the queue is full,
 * CAMD_E_STATE when the pool is stopping. */
int camd__pool_submit(camd__job *job, void (*before_push)(void *), void *arg, camd_error *err);
int camd__pool_queue_depth(void);
/* Waits until queue and workers are idle or deadline_ns (camd_now_ns clock); then fails every
 * job still queued with 503 and stops the workers (after their current batch). */
void camd__pool_drain_and_stop(uint64_t deadline_ns);
/* Fills job with an error answer (JSON {"error": ...}). */
void camd__job_set_error(camd__job *job, int http_status, const char *code, const char *msg);

/* Builds the error body {"error": {"status", "code", "message"}, "request_id"} (malloc'd). */
char *camd__error_json(int http_status, const char *code, const char *message,
                       const char *request_id, size_t *len);

/* ---- the daemon (http.c) ---- */
/* Loads models, starts workers and the daemon, waits for SIGTERM/SIGINT, drains, stops.
 * Returns 0 after a clean shutdown, a negative status (err filled) when startup failed. */
int camd__server_run(camd_server_config *cfg, camd_error *err);

/* Fuzzing entry point (tests/fuzz/fuzz_body.c), not used by the server: runs the body parsing
 * of a POST request (kind 0 raw image, 1 JSON/KServe, 2 multipart form given as a replay of the
 * post-processor's callbacks, encoded as described in http.c) under cfg's limits, then applies
 * the options with camd_explain_options_set (no explainer). Returns the HTTP status of the
 * recorded error, 0 when the body is accepted, negative when a contract is broken. Not
 * thread-safe (it borrows the server's global configuration pointer). */
int camd__server_parse_body_for_fuzz(camd_server_config *cfg, int kind, const void *data,
                                     size_t len);

/* Embedded files (generated at build time from src/server/www/). */
typedef struct camd__www_file {
  const char *name;
  const unsigned char *data;
  size_t len;
} camd__www_file;
extern const camd__www_file camd__www_files[];
extern const size_t camd__www_count;

#endif
