/* HTTP front end internals shared by http.c (daemon, routing, responses, lifecycle) and
 * body.c (request body accumulation and parsing into options and images): the server state,
 * the per-request context and the functions one file calls in the other. */
#ifndef CAMD_SERVER_HTTP_INTERNAL_H
#define CAMD_SERVER_HTTP_INTERNAL_H

#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "camd/core.h"
#include "camd/explain.h"
#include "server/server.h"

/* ------------------------------------------------------------------------------------------ */
/* server state (one server per process) */

typedef struct camd__http_state {
  camd_server_config *cfg;
  struct MHD_Daemon *daemon;
  camd_explainer *models[CAMD_SERVER_MAX_MODELS];
  int default_model;
  atomic_int ready;    /* models loaded, workers running */
  atomic_int draining; /* SIGTERM received */
  atomic_long open_requests;
  unsigned char key_hashes[CAMD_SERVER_MAX_KEYS][32];
  int n_keys;
  bool access_log;
  uint64_t id_seed;
  atomic_ulong id_counter;
} camd__http_state;

/* The one server of the process (http.c). */
extern camd__http_state camd__http_srv;

typedef enum body_kind { BODY_NONE = 0, BODY_RAW, BODY_JSON, BODY_FORM } body_kind;

typedef struct kv {
  char *key;
  camd_buf value;
} kv;

typedef struct req {
  struct MHD_Connection *conn;
  char request_id[130];
  uint64_t start_ns;
  camd__route route;
  char method[12];
  char path[256];
  int model_index; /* -1: not (yet) known */
  bool predict_only, want_png, is_post, first_done;
  body_kind kind;
  size_t received;
  camd_buf body;                /* raw image or JSON text */
  struct MHD_PostProcessor *pp; /* multipart */
  camd_buf form_image;
  int form_images;
  kv *fields; /* form option fields (and "model") */
  int n_fields, cap_fields;
  int cur_field; /* form field receiving data, -1 none */
  /* the first error recorded; answered in the final call */
  int err_status; /* a camd status (CAMD_E_*), 0 none */
  char err_msg[600];
  const char *allow; /* Allow header for 405 */
  /* the job */
  camd__job job;
  camd_explain_input inputs[256];
  unsigned char *decoded[256];
  int n_decoded;
  bool submitted;
  atomic_bool job_done;
  /* answer */
  int status;
  size_t bytes_out;
} req;

typedef struct opt_list {
  const char *keys[4096];
  char *values[4096];
  bool owned[4096];
  int n;
} opt_list;

/* Context of camd__http_query_iter: the request, the option list, the model named. */
typedef struct query_ctx {
  req *r;
  opt_list *l;
  const char *model;
} query_ctx;

/* ---- http.c ---- */
/* Records the request's first error: a camd status (its HTTP status and code come from the
 * status table) and a message; answered in the final handler call. */
void camd__http_record(req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void camd__http_record_camd(req *r, const camd_error *e, int fallback);
/* Model index by name (len bytes), -1 if unknown. */
int camd__http_find_model(const char *name, size_t len);
/* Frees everything a request owns, and the request. */
void camd__http_req_free(req *r);

/* ---- body.c ---- */
/* libmicrohttpd post-processor callback for multipart/form-data bodies. */
enum MHD_Result camd__http_form_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *filename, const char *content_type,
                                     const char *transfer_encoding, const char *data, uint64_t off,
                                     size_t size);
/* One upload call's bytes, with the body cap; errors are recorded in r. */
void camd__http_absorb(req *r, const char *data, size_t size);
/* MHD_get_connection_values callback adding query-string options to an opt_list. */
enum MHD_Result camd__http_query_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value);
void camd__http_opts_free(opt_list *l);
/* Turns the accumulated body into options, the model name and the job's inputs (see body.c). */
void camd__http_collect_body(req *r, opt_list *l, json_t **root, const char **model);

#endif
