/* HTTP front end internals shared by http.c (daemon, routing, responses, lifecycle), request.c
 * (the per-request context and its first error) and body.c (request bodies into options and
 * images). body.c and request.c see no server state: what they need (the limits) is copied
 * into the request when it starts.
 *   http.c ──► body.c ──► request.c ◄── http.c
 */
#ifndef CAMD_SERVER_HTTP_INTERNAL_H
#define CAMD_SERVER_HTTP_INTERNAL_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "camd/core.h"
#include "camd/explain.h"
#include "camd/server.h"
#include "server/metrics.h"
#include "server/pool.h"
#include "server/www.h"

/* ------------------------------------------------------------------------------------------ */
/* server state (one server per process; http.c) */

typedef struct camd__http_state {
  camd_server_config *cfg;
  struct MHD_Daemon *daemon;
  camd_explainer *models[CAMD_SERVER_MAX_MODELS];
  int default_model;
  atomic_int ready;    /* models loaded, workers running */
  atomic_int draining; /* SIGTERM received */
  atomic_long open_requests;
  pthread_rwlock_t keys_lock; /* key_hashes, key_scopes, n_keys (SIGHUP replaces them) */
  unsigned char key_hashes[CAMD_SERVER_MAX_KEYS][32];
  unsigned key_scopes[CAMD_SERVER_MAX_KEYS]; /* CAMD__SCOPE_* bits */
  int n_keys;
  bool access_log;
  uint64_t id_seed;
  atomic_ulong id_counter;
} camd__http_state;

extern camd__http_state camd__http_srv;

/* ------------------------------------------------------------------------------------------ */
/* TLS (tls.c) */

/* TLS 1.2 and 1.3 only. */
#define CAMD__TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* Loads tls_cert / tls_key (/ tls_ca) when configured; 0 without TLS. */
int camd__tls_init(const camd_server_config *cfg, camd_error *err);
bool camd__tls_enabled(void);
/* Re-reads the files (SIGHUP); on error the current certificates stay. */
int camd__tls_reload(camd_error *err);
void camd__tls_free(void);
/* MHD_OPTION_HTTPS_CERT_CALLBACK (gnutls_certificate_retrieve_function2). */
int camd__tls_cert_cb(gnutls_session_t s, const gnutls_datum_t *req_ca_dn, int nreqs,
                      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                      gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey);

/* API key scopes: what a key may call (GET /v1/models* needs only a valid key). */
#define CAMD__SCOPE_PREDICT 1u /* POST .../predict */
#define CAMD__SCOPE_EXPLAIN 2u /* POST .../explain, /v1/explain */
#define CAMD__SCOPE_METRICS 4u /* GET /metrics */
#define CAMD__SCOPE_ADMIN 8u   /* every scope, present and future */
#define CAMD__SCOPE_ALL 15u
/* One api_keys entry ("KEY" = admin, or "KEY:scope+scope", split at the last ':'): the SHA-256
 * of the key and its scopes. Keys are printable ASCII without spaces. */
int camd__server_key_parse(const char *entry, unsigned char hash[32], unsigned *scopes,
                           camd_error *err);
/* Reads c->api_keys_file again into out->api_keys (out is initialised here; on success the
 * caller frees it with camd_server_config_free). */
int camd__server_keys_file_read(const camd_server_config *c, camd_server_config *out,
                                camd_error *err);

/* The camd_log_level that cfg->log_level names (config.c); -1 when it names none. */
int camd__server_log_level(const camd_server_config *c);

/* ------------------------------------------------------------------------------------------ */
/* one request (request.c) */

/* The limits body parsing applies (a copy of the configuration's, taken when the request
 * starts). */
typedef struct camd__http_limits {
  long max_body_bytes;   /* request body */
  long max_options;      /* option fields, <= CAMD_SERVER_MAX_OPTIONS */
  long max_option_bytes; /* one option value */
  long max_instances;    /* images, <= CAMD_EXPLAIN_MAX_BATCH */
} camd__http_limits;

typedef enum camd__body_kind {
  CAMD__BODY_NONE = 0,
  CAMD__BODY_RAW,  /* the image bytes */
  CAMD__BODY_JSON, /* {"image": ...} or KServe {"instances": [...]} */
  CAMD__BODY_FORM  /* multipart/form-data */
} camd__body_kind;

/* A form field (an option or "model"). */
typedef struct camd__http_field {
  char *key;
  camd_buf value;
} camd__http_field;

typedef struct camd__request {
  struct MHD_Connection *conn; /* NULL outside a daemon (the body fuzzer) */
  camd__http_limits lim;
  char request_id[CAMD_REQUEST_ID_MAX + 1];
  uint64_t start_ns;
  camd__route route;
  char method[12];
  char path[256];
  int model_index; /* -1: not (yet) known */
  bool predict_only, want_png, want_dicom, is_post;
  camd__body_kind kind;
  size_t received;
  camd_buf body;                /* raw image or JSON text */
  struct MHD_PostProcessor *pp; /* multipart */
  camd_buf form_image;
  int form_images;
  camd__http_field *fields; /* form option fields (and "model") */
  int n_fields, cap_fields;
  /* the first error recorded; answered in the final call */
  int err_status; /* a camd status (CAMD_E_*), 0 none */
  char err_msg[600];
  const char *allow; /* Allow header for 405 */
  /* the job */
  camd__job job;
  camd_explain_input inputs[CAMD_EXPLAIN_MAX_BATCH];
  unsigned char *decoded[CAMD_EXPLAIN_MAX_BATCH]; /* base64-decoded images (owned) */
  int n_decoded;
  /* Target data (segmentation mask, embedding reference): the request's, applied to every
   * image that does not carry its own (KServe instances[i]); borrowed from `fields` or owned. */
  const void *tgt_mask, *tgt_ref_image;
  size_t tgt_mask_len, tgt_ref_image_len;
  const char *tgt_reference;
  void **owned; /* decoded masks / reference images and copied texts, freed with the request */
  int n_owned, cap_owned;
  bool submitted;
  atomic_bool job_done;
  /* answer */
  int status;
  size_t bytes_out;
} camd__request;

/* A new request context with a copy of lim; NULL when out of memory. */
camd__request *camd__request_new(struct MHD_Connection *conn, const camd__http_limits *lim);
/* Frees everything a request owns, and the request. */
void camd__request_free(camd__request *r);
/* Records the request's first error: a camd status (its HTTP status and code come from the
 * status table) and a message; answered in the final handler call. */
void camd__http_record(camd__request *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void camd__http_record_camd(camd__request *r, const camd_error *e, int fallback);

/* ------------------------------------------------------------------------------------------ */
/* bodies (body.c) */

/* Options of one request, in the order they were given (query string first, then the body). */
typedef struct camd__opt_list {
  const char **keys;
  char **values;
  bool *owned; /* values[i] is malloc'd */
  int n, cap;
} camd__opt_list;

/* Context of camd__http_query_iter: the request, the option list, the model named. */
typedef struct camd__query_ctx {
  camd__request *r;
  camd__opt_list *l;
  const char *model;
} camd__query_ctx;

/* libmicrohttpd post-processor callback for multipart/form-data bodies. */
enum MHD_Result camd__http_form_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *filename, const char *content_type,
                                     const char *transfer_encoding, const char *data, uint64_t off,
                                     size_t size);
/* One upload call's bytes, with the body cap; errors are recorded in r. */
void camd__http_absorb(camd__request *r, const char *data, size_t size);
/* MHD_get_connection_values callback adding query-string options to an opt_list. */
enum MHD_Result camd__http_query_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value);
void camd__http_opts_free(camd__opt_list *l);
/* Turns the accumulated body into options (appended to l), the model name (*model, when the
 * body names one) and r->inputs / r->job.n_inputs; errors are recorded in r. *root receives the
 * parsed JSON (it owns the strings l and *model point into; caller decrefs). */
void camd__http_collect_body(camd__request *r, camd__opt_list *l, json_t **root,
                             const char **model);
/* Options of l over the explainer's defaults into *o (e may be NULL: no labels, no layers);
 * the first bad option is recorded in r. */
void camd__http_apply_options(camd__request *r, const camd_explainer *e, const camd__opt_list *l,
                              camd_explain_options *o);

#endif
