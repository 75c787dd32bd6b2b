/* camd HTTP service (server/): its configuration and the daemon, what `camd serve` calls.
 *
 * Configuration: one key table (src/server/config.c) drives the JSON file, CAMD_* environment
 * variables, --flags and `camd serve --help`; defaults < file < environment < flags.
 * Ownership: camd_server_config is plain data owned by the caller; its list entries
 * (cors_origins, api_keys) are malloc'd and released by camd_server_config_free.
 * The daemon (camd_server_run) serves until SIGTERM/SIGINT; one server per process.
 */
#ifndef CAMD_SERVER_H
#define CAMD_SERVER_H

#include <stdio.h>

#include "camd/explain.h"
#include "camd/status.h"

#define CAMD_SERVER_MAX_MODELS 64
#define CAMD_SERVER_MAX_KEYS 64
#define CAMD_SERVER_MAX_ORIGINS 32
/* The highest max_options a configuration may set (option fields per request). */
#define CAMD_SERVER_MAX_OPTIONS 4096
/* Longest X-Request-Id the server keeps (longer or unsafe ids are replaced by a generated one). */
#define CAMD_REQUEST_ID_MAX 128

typedef struct camd_server_config {
  char listen[256];     /* IPv4/IPv6 literal address to bind */
  long port;            /* 0 = any free port (logged at start) */
  long workers;         /* compute worker threads */
  long io_threads;      /* libmicrohttpd polling threads (epoll) */
  long blas_threads;    /* engine threads per worker; 0 = cores / workers */
  long queue_length;    /* jobs waiting for a worker; beyond it: 503 */
  long max_batch;       /* images one worker runs as one batch (<= CAMD_EXPLAIN_MAX_BATCH) */
  long batch_window_us; /* how long a worker waits to fill a batch */
  long max_instances;   /* images (KServe instances) per request (<= CAMD_EXPLAIN_MAX_BATCH) */
  long max_body_bytes;  /* request body cap */
  long max_image_pixels, max_image_width, max_image_height;
  long max_header_bytes;  /* MHD_OPTION_CONNECTION_MEMORY_LIMIT */
  long request_timeout_s; /* MHD_OPTION_CONNECTION_TIMEOUT (idle seconds) */
  long max_connections;   /* MHD_OPTION_CONNECTION_LIMIT */
  long max_connections_per_ip;
  long max_option_bytes;    /* length of one option value */
  long max_options;         /* option fields per request */
  long drain_timeout_s;     /* SIGTERM: how long queued jobs may still run */
  long retry_after_s;       /* Retry-After on 503 */
  long max_model_bytes;     /* a model's .onnx file, and its external data, each (bytes) */
  long max_tensor_elements; /* elements of any one tensor a model declares (per image) */
  char *cors_origins[CAMD_SERVER_MAX_ORIGINS]; /* "*" allowed; malloc'd */
  int n_cors_origins;
  char *api_keys[CAMD_SERVER_MAX_KEYS]; /* malloc'd; "KEY" or "KEY:scope+scope" */
  int n_api_keys;
  int n_api_keys_inline; /* the first entries, from api_keys; the rest from api_keys_file */
  char api_keys_file[4096];
  char tls_cert[4096]; /* PEM certificate chain; with tls_key: HTTPS (TLS 1.2+) */
  char tls_key[4096];  /* PEM private key */
  char tls_ca[4096];   /* PEM CA certificates: clients must present a certificate they signed */
  char default_model[CAMD_NAME_MAX];
  char log_level[16]; /* debug, info, warn, error */
  camd_model_config models[CAMD_SERVER_MAX_MODELS];
  int n_models;

  /* DICOM */
  long max_frames;         /* NumberOfFrames cap (checked before any pixel is decoded) */
  char dicom_uid_root[41]; /* UID root of Secondary Captures; "" = 2.25 (UUID-derived UIDs) */

  /* Quality metrics: extra forwards one image may ask for (more is 413) */
  long max_quality_forwards;
  /* Masked forwards one image may cost a CAM method (more is 413) */
  long max_cam_forwards;
  /* 1: each worker explains a blank image with the default model once (its default method, or
   * gradcam for one that costs masked forwards), right after start (while
   * /readyz may already answer 200), so the first requests do not pay for laying out the plan,
   * creating the convolution kernels and first-touching the worker's memory; 0: off */
  long warmup;
} camd_server_config;

/* The defaults (the key table's default column). */
void camd_server_config_init(camd_server_config *c);
/* Releases the list entries; c can be initialised again. */
void camd_server_config_free(camd_server_config *c);
/* Layers: defaults < file (--config / CAMD_CONFIG, default config/camd.json when present)
 * < CAMD_* environment < flags. Returns 0, 1 when --help was printed, or a negative status with
 * err naming the key and the bad value. */
int camd_server_config_load(camd_server_config *c, int argc, char **argv, camd_error *err);
/* `camd serve --help`: every key with its environment variable, flag, meaning and default. */
void camd_server_config_help(FILE *f);

/* Sets the log level, loads the models, starts the workers and the daemon, waits for
 * SIGTERM/SIGINT, drains, stops. Returns 0 after a clean shutdown, a negative status (err
 * filled) when startup failed. cfg must stay valid until it returns. */
int camd_server_run(camd_server_config *cfg, camd_error *err);

#endif
