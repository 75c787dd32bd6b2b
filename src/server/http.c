/* The HTTP front end: libmicrohttpd daemon (internal epoll threads), routing, limits, auth,
 * CORS, the suspend/queue/resume hand-off to the job pool, responses, access log, readiness and
 * graceful shutdown. Request bodies are accumulated and parsed in body.c.
 *
 * Handler calls for one request (MHD_AccessHandlerCallback):
 *   first call      allocate the request context, route, check Content-Length against the body
 *                   cap (413 at once), decide the body kind; nothing else is answered yet so
 *                   the body is always read (or discarded) and keep-alive survives errors.
 *   upload calls    accumulate with a hard cap; once an error is recorded the rest is
 *                   discarded; crossing the cap records 413.
 *   final call      answer recorded errors; else parse the body, build the job, suspend the
 *                   connection and push the job (a full queue answers 503 without suspending).
 *   resumed call    the worker stored the answer: queue it.
 * Everything a request owns is freed in the request-completed callback. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "camd/core.h"
#include "camd/engine.h"
#include "server/http_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* server state (one server per process; type in http_internal.h) */

camd__http_state camd__http_srv;

/* ------------------------------------------------------------------------------------------ */
/* small helpers */

static bool ieq_prefix(const char *s, const char *prefix) {
  return s && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

int camd__http_find_model(const char *name, size_t len) {
  for (int i = 0; i < camd__http_srv.cfg->n_models; i++) {
    const char *n = camd__http_srv.cfg->models[i].name;
    if (strlen(n) == len && !memcmp(n, name, len)) return i;
  }
  return -1;
}

static bool sane_request_id(const char *s) {
  if (!s) return false;
  size_t n = strlen(s);
  if (n == 0 || n > CAMD_REQUEST_ID_MAX) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (!isalnum(c) && c != '-' && c != '_' && c != '.' && c != ':') return false;
  }
  return true;
}

/* A fresh id: the splitmix64 output for this request's counter value (unique per process). */
static void new_request_id(char *out, size_t cap) {
  uint64_t n = atomic_fetch_add(&camd__http_srv.id_counter, 1);
  camd_rng rng;
  camd_rng_seed(&rng, camd__http_srv.id_seed + n * 0x9e3779b97f4a7c15ull);
  snprintf(out, cap, "%016llx", (unsigned long long)camd_rng_next(&rng));
}

/* The bearer token against every key (constant time: SHA-256 digests, all compared): 0 when a
 * key with the needed scope matches (or no keys are configured), CAMD_E_UNAUTHORIZED when no key
 * matches, CAMD_E_FORBIDDEN when the key lacks the scope. */
static int authorize(struct MHD_Connection *conn, unsigned scope) {
  pthread_rwlock_rdlock(&camd__http_srv.keys_lock);
  int n_keys = camd__http_srv.n_keys;
  if (n_keys == 0) {
    pthread_rwlock_unlock(&camd__http_srv.keys_lock);
    return 0;
  }
  const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  unsigned found = 0, scopes = 0;
  if (h && strncasecmp(h, "Bearer ", 7) == 0) {
    const char *tok = h + 7;
    while (*tok == ' ') tok++;
    size_t len = strlen(tok);
    while (len && tok[len - 1] == ' ') len--;
    unsigned char d[32];
    camd_sha256 sh;
    camd_sha256_init(&sh);
    camd_sha256_update(&sh, tok, len);
    camd_sha256_final(&sh, d);
    for (int k = 0; k < n_keys; k++) {
      unsigned diff = 0;
      for (int i = 0; i < 32; i++) diff |= (unsigned)(d[i] ^ camd__http_srv.key_hashes[k][i]);
      unsigned match = (unsigned)(diff == 0);
      found |= match;
      scopes |= camd__http_srv.key_scopes[k] & (0u - match);
    }
  }
  pthread_rwlock_unlock(&camd__http_srv.keys_lock);
  if (!found) return CAMD_E_UNAUTHORIZED;
  return !scope || (scopes & scope) ? 0 : CAMD_E_FORBIDDEN;
}

/* Fills the key table from the entries (validated by the configuration). */
static int set_keys(char *const *entries, int n, camd_error *err) {
  unsigned char hashes[CAMD_SERVER_MAX_KEYS][32] = {{0}};
  unsigned scopes[CAMD_SERVER_MAX_KEYS] = {0};
  for (int k = 0; k < n && k < CAMD_SERVER_MAX_KEYS; k++) {
    int rc = camd__server_key_parse(entries[k], hashes[k], &scopes[k], err);
    if (rc) return camd_error_prefix(err, rc, "API key %d: ", k);
  }
  pthread_rwlock_wrlock(&camd__http_srv.keys_lock);
  memcpy(camd__http_srv.key_hashes, hashes, sizeof(hashes));
  memcpy(camd__http_srv.key_scopes, scopes, sizeof(scopes));
  camd__http_srv.n_keys = n;
  pthread_rwlock_unlock(&camd__http_srv.keys_lock);
  return 0;
}

/* SIGHUP: api_keys (from the configuration) plus api_keys_file read again. A file that cannot
 * be read or parsed, or that would leave no key at all (authentication off), keeps the
 * previous keys. */
static void reload_keys(const camd_server_config *cfg) {
  if (!cfg->api_keys_file[0]) return;
  camd_error e = {0};
  camd_server_config *f = malloc(sizeof(*f));
  if (!f) {
    camd_log(CAMD_LOG_WARN, "SIGHUP: API keys not reloaded: out of memory");
    return;
  }
  int rc = camd__server_keys_file_read(cfg, f, &e);
  char *all[CAMD_SERVER_MAX_KEYS];
  int n = 0;
  for (int i = 0; !rc && i < cfg->n_api_keys_inline; i++) all[n++] = cfg->api_keys[i];
  for (int i = 0; !rc && i < f->n_api_keys; i++) {
    if (n == CAMD_SERVER_MAX_KEYS) {
      rc = camd_error_set(&e, CAMD_E_LIMIT, "more than %d keys", CAMD_SERVER_MAX_KEYS);
      break;
    }
    all[n++] = f->api_keys[i];
  }
  if (!rc && n == 0)
    rc = camd_error_set(&e, CAMD_E_INVALID,
                        "the file has no key (an empty key set would turn authentication off)");
  if (!rc) rc = set_keys(all, n, &e);
  if (rc)
    camd_log(CAMD_LOG_WARN, "SIGHUP: API keys not reloaded (the previous stay): %s", e.message);
  else
    camd_log(CAMD_LOG_INFO, "SIGHUP: %d API key(s) loaded (%d from %s)", n, f->n_api_keys,
             cfg->api_keys_file);
  camd_server_config_free(f);
  free(f);
}

static const char *allowed_origin(struct MHD_Connection *conn) {
  const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
  if (!origin) return NULL;
  for (int i = 0; i < camd__http_srv.cfg->n_cors_origins; i++) {
    if (!strcmp(camd__http_srv.cfg->cors_origins[i], "*") ||
        !strcmp(camd__http_srv.cfg->cors_origins[i], origin)) {
      return origin;
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* responses */

/* The answer when even the error body cannot be allocated (static: needs no memory). */
static const char OOM_BODY[] =
    "{\"error\":{\"status\":500,\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";

/* Failure-injection builds: X-Camd-Fault-Alloc: N arms the N-th allocation from the start of
 * the request to fail; the answer says whether it did (X-Camd-Fault: fired | not-fired) and
 * disarms. */
static void fault_report(struct MHD_Response *resp) {
#ifdef CAMD_FAULT_INJECT
  if (camd_fault_count() || camd_fault_fired()) {
    MHD_add_response_header(resp, "X-Camd-Fault", camd_fault_fired() ? "fired" : "not-fired");
    camd_fault_arm(0);
  }
#else
  (void)resp;
#endif
}

static enum MHD_Result respond(camd__request *r, int status, const char *ctype, void *body,
                               size_t len, enum MHD_ResponseMemoryMode mode) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
  if (!resp) {
    if (mode == MHD_RESPMEM_MUST_FREE) free(body);
    return MHD_NO;
  }
  fault_report(resp);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  MHD_add_response_header(resp, "X-Request-Id", r->request_id);
  if (r->route != CAMD_ROUTE_STATIC) MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  const char *origin = allowed_origin(r->conn);
  if (origin) {
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
    MHD_add_response_header(resp, "Vary", "Origin");
  }
  if (status == 503) {
    char ra[32];
    snprintf(ra, sizeof(ra), "%ld", camd__http_srv.cfg->retry_after_s);
    MHD_add_response_header(resp, "Retry-After", ra);
  }
  if (status == 401) MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"camd\"");
  if (status == 405 && r->allow) MHD_add_response_header(resp, "Allow", r->allow);
  if (atomic_load(&camd__http_srv.draining)) MHD_add_response_header(resp, "Connection", "close");
  if (r->route == CAMD_ROUTE_STATIC) {
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'self'; img-src 'self' data: blob:; "
                            "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'");
  }
  r->status = status;
  r->bytes_out = len;
  enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)status, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result respond_oom(camd__request *r) {
  return respond(r, 500, "application/json", (void *)OOM_BODY, sizeof(OOM_BODY) - 1,
                 MHD_RESPMEM_PERSISTENT);
}

static enum MHD_Result respond_json_text(camd__request *r, int status, char *text) {
  if (!text) return respond_oom(r);
  return respond(r, status, "application/json", text, strlen(text), MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result respond_json(camd__request *r, int status, json_t *obj) {
  char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
  json_decref(obj);
  return respond_json_text(r, status, text);
}

/* The error answer of a camd status (its HTTP status and code come from the status table). */
static enum MHD_Result respond_error(camd__request *r, int status, const char *msg) {
  size_t len = 0;
  char *text = camd__error_json(status, msg, r->request_id, &len);
  if (!text) return respond_oom(r);
  return respond(r, camd_status_http(status), "application/json", text, len, MHD_RESPMEM_MUST_FREE);
}

/* ------------------------------------------------------------------------------------------ */
/* routing */

static const char *const GET_ALLOW = "GET, HEAD, OPTIONS";
static const char *const POST_ALLOW = "POST, OPTIONS";

/* Sets r->route, r->model_index, r->predict_only; returns the Allow value of the route or NULL
 * when the path is unknown (404 recorded). */
static const char *route(camd__request *r, const char *url) {
  r->model_index = -1;
  if (!strcmp(url, "/healthz") || !strcmp(url, "/v2/health/live")) {
    r->route = CAMD_ROUTE_HEALTH;
    return GET_ALLOW;
  }
  if (!strcmp(url, "/readyz") || !strcmp(url, "/v2/health/ready")) {
    r->route = CAMD_ROUTE_READY;
    return GET_ALLOW;
  }
  if (!strcmp(url, "/metrics")) {
    r->route = CAMD_ROUTE_METRICS;
    return GET_ALLOW;
  }
  if (!strcmp(url, "/v1/models") || !strcmp(url, "/v1/models/")) {
    r->route = CAMD_ROUTE_MODELS;
    return GET_ALLOW;
  }
  if (!strcmp(url, "/v1/explain")) {
    r->route = CAMD_ROUTE_EXPLAIN_ANY;
    return POST_ALLOW;
  }
  if (!strncmp(url, "/v1/models/", 11)) {
    const char *name = url + 11;
    size_t n = strcspn(name, "/:");
    const char *rest = name + n;
    int m = camd__http_find_model(name, n);
    if (!*rest) {
      r->route = CAMD_ROUTE_MODEL;
    } else if (!strcmp(rest, "/explain") || !strcmp(rest, ":explain")) {
      r->route = CAMD_ROUTE_EXPLAIN;
    } else if (!strcmp(rest, "/predict") || !strcmp(rest, ":predict")) {
      r->route = CAMD_ROUTE_PREDICT;
      r->predict_only = true;
    } else {
      camd__http_record(r, CAMD_E_NOT_FOUND,
                        "no route for '%.200s'; see GET /v1/models for the API", url);
      return NULL;
    }
    if (m < 0) {
      camd__http_record(r, CAMD_E_MODEL_NOT_FOUND,
                        "unknown model '%.*s'; GET /v1/models lists the models",
                        (int)(n > 128 ? 128 : n), name);
      return r->route == CAMD_ROUTE_MODEL ? GET_ALLOW : POST_ALLOW;
    }
    r->model_index = m;
    return r->route == CAMD_ROUTE_MODEL ? GET_ALLOW : POST_ALLOW;
  }
  for (size_t i = 0; i < camd__www_count; i++) {
    const char *name = camd__www_files[i].name;
    if ((!strcmp(url, "/") && !strcmp(name, "index.html")) ||
        (url[0] == '/' && !strcmp(url + 1, name))) {
      r->route = CAMD_ROUTE_STATIC;
      return GET_ALLOW;
    }
  }
  camd__http_record(r, CAMD_E_NOT_FOUND, "no route for '%.200s'; see GET /v1/models for the API",
                    url);
  return NULL;
}

/* Accept negotiation for explain routes: JSON (default), PNG or DICOM (only when named: no
 * wildcard selects it); false when none. */
static bool negotiate(const char *accept, bool *png, bool *dicom) {
  *png = *dicom = false;
  if (!accept || !*accept) return true;
  double json_q = -1, png_q = -1, dicom_q = -1;
  const char *p = accept;
  while (*p) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    char item[128];
    snprintf(item, sizeof(item), "%.*s", (int)(len < 127 ? len : 127), p);
    double q = 1;
    char *semi = strchr(item, ';');
    if (semi) {
      *semi = 0;
      char *qp = strstr(semi + 1, "q=");
      if (qp) q = strtod(qp + 2, NULL);
    }
    char *t = item;
    while (*t == ' ' || *t == '\t') t++;
    size_t tl = strlen(t);
    while (tl && (t[tl - 1] == ' ' || t[tl - 1] == '\t')) t[--tl] = 0;
    if (!strcasecmp(t, "application/json") || !strcasecmp(t, "application/*")) {
      if (q > json_q) json_q = q;
    } else if (!strcasecmp(t, "*/*")) {
      if (q > json_q) json_q = q;
      if (q * 0.5 > png_q && png_q < 0) png_q = -1; /* wildcard prefers JSON */
    } else if (!strcasecmp(t, "image/png") || !strcasecmp(t, "image/*")) {
      if (q > png_q) png_q = q;
    } else if (!strcasecmp(t, "application/dicom")) {
      if (q > dicom_q) dicom_q = q;
    }
    if (!end) break;
    p = end + 1;
  }
  if (json_q <= 0 && png_q <= 0 && dicom_q <= 0) return false;
  *dicom = dicom_q > json_q && dicom_q > png_q;
  *png = !*dicom && png_q > json_q;
  return true;
}

/* ------------------------------------------------------------------------------------------ */
/* first call */

static void first_call(camd__request *r, struct MHD_Connection *conn, const char *url,
                       const char *method) {
  const char *allow = route(r, url);
  r->allow = allow;
  bool is_options = !strcmp(method, "OPTIONS");
  if (r->err_status) return;
  bool is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
  r->is_post = !strcmp(method, "POST");
  if (is_options) return; /* answered in the final call */
  if ((allow == GET_ALLOW && !is_get) || (allow == POST_ALLOW && !r->is_post)) {
    camd__http_record(r, CAMD_E_METHOD, "%s is not allowed on %.200s; allowed: %s", method, url,
                      allow);
    return;
  }
  bool protected = r->route != CAMD_ROUTE_HEALTH && r->route != CAMD_ROUTE_READY &&
                   r->route != CAMD_ROUTE_STATIC;
  unsigned scope = r->route == CAMD_ROUTE_PREDICT   ? CAMD__SCOPE_PREDICT
                   : r->route == CAMD_ROUTE_METRICS ? CAMD__SCOPE_METRICS
                   : r->route == CAMD_ROUTE_EXPLAIN || r->route == CAMD_ROUTE_EXPLAIN_ANY
                       ? CAMD__SCOPE_EXPLAIN
                       : 0;
  int auth = protected ? authorize(conn, scope) : 0;
  if (auth == CAMD_E_UNAUTHORIZED) {
    camd__http_record(r, CAMD_E_UNAUTHORIZED,
                      "a valid API key is required: send 'Authorization: Bearer <key>'");
    return;
  }
  if (auth == CAMD_E_FORBIDDEN) {
    camd__http_record(r, CAMD_E_FORBIDDEN, "this API key does not have the '%s' scope",
                      scope == CAMD__SCOPE_PREDICT   ? "predict"
                      : scope == CAMD__SCOPE_METRICS ? "metrics"
                                                     : "explain");
    return;
  }
  if (!r->is_post) return;
  /* POST explain/predict: length, media type, Accept */
  const char *cl =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
  const char *te =
      MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
  bool chunked = te && strcasestr(te, "chunked");
  if (!cl && !chunked) {
    camd__http_record(r, CAMD_E_LENGTH_REQUIRED,
                      "POST needs a Content-Length header or chunked Transfer-Encoding");
    return;
  }
  long long n;
  if (cl && camd_parse_int(cl, 0, LLONG_MAX, &n) == 0) {
    if (n > r->lim.max_body_bytes) {
      camd__http_record(r, CAMD_E_LIMIT,
                        "request body of %lld bytes exceeds the limit max_body_bytes = %ld", n,
                        r->lim.max_body_bytes);
      return;
    }
  }
  bool png = false, dicom = false;
  if (!negotiate(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT), &png,
                 &dicom)) {
    camd__http_record(
        r, CAMD_E_NOT_ACCEPTABLE,
        "the Accept header allows none of application/json, image/png, application/dicom");
    return;
  }
  if ((png || dicom) && r->predict_only) {
    camd__http_record(r, CAMD_E_NOT_ACCEPTABLE,
                      "predict answers application/json only (no overlay image)");
    return;
  }
  r->want_png = png;
  r->want_dicom = dicom;
  const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
  if (ieq_prefix(ct, "multipart/form-data")) {
    r->kind = CAMD__BODY_FORM;
  } else if (ieq_prefix(ct, "application/json")) {
    r->kind = CAMD__BODY_JSON;
  } else if (ieq_prefix(ct, "image/png") || ieq_prefix(ct, "image/jpeg") ||
             ieq_prefix(ct, "image/jpg") || ieq_prefix(ct, "application/dicom") ||
             ieq_prefix(ct, "application/octet-stream")) {
    r->kind = CAMD__BODY_RAW;
  } else {
    camd__http_record(
        r, CAMD_E_MEDIA,
        "Content-Type '%.100s' is not supported; send multipart/form-data, application/json, "
        "image/png, image/jpeg or application/dicom",
        ct ? ct : "(none)");
  }
}

static void job_done(camd__job *job) {
  camd__request *r = job->done_arg;
  job->done_ns = camd_now_ns();
  atomic_store(&r->job_done, true);
  MHD_resume_connection(r->conn);
}

static void suspend_cb(void *arg) {
  camd__request *r = arg;
  MHD_suspend_connection(r->conn);
}

static enum MHD_Result send_recorded(camd__request *r) {
  return respond_error(r, r->err_status, r->err_msg);
}

static enum MHD_Result start_job(camd__request *r) {
  if (!atomic_load(&camd__http_srv.ready)) {
    return respond_error(r, CAMD_E_NOT_READY, "the models are still loading; retry shortly");
  }
  if (r->kind == CAMD__BODY_FORM && r->pp) {
    if (MHD_destroy_post_processor(r->pp) != MHD_YES) {
      camd__http_record(r, CAMD_E_FORMAT, "the multipart/form-data body is truncated or malformed");
    }
    r->pp = NULL;
  }
  if (r->err_status) return send_recorded(r);
  camd__opt_list opts = {0}, *l = &opts;
  json_t *root = NULL;
  camd__query_ctx q = {r, l, NULL};
  MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, camd__http_query_iter, &q);
  const char *model = q.model;
  camd__http_collect_body(r, l, &root, &model);
  if (!r->err_status && r->route == CAMD_ROUTE_EXPLAIN_ANY) {
    r->model_index =
        model ? camd__http_find_model(model, strlen(model)) : camd__http_srv.default_model;
    if (r->model_index < 0) {
      camd__http_record(r, CAMD_E_MODEL_NOT_FOUND,
                        "unknown model '%.128s'; GET /v1/models lists the models", model);
    }
  } else if (!r->err_status && model &&
             r->model_index != camd__http_find_model(model, strlen(model))) {
    camd__http_record(r, CAMD_E_INVALID, "'model' = '%.128s' contradicts the model in the URL",
                      model);
  }
  camd__job *job = &r->job;
  if (!r->err_status) {
    camd_explainer *e = camd__http_srv.models[r->model_index];
    camd__http_apply_options(r, e, l, &job->opts);
    if (r->want_png) job->opts.outputs |= CAMD_OUT_OVERLAY;
    if (r->want_dicom) {
      /* One object answers one map: several images or targets are refused, not truncated. */
      job->opts.outputs |= CAMD_OUT_DICOM;
      int maps = job->opts.n_targets ? job->opts.n_targets : job->opts.target_topk;
      if (r->job.n_inputs > 1 || maps > 1)
        camd__http_record(r, CAMD_E_INVALID,
                          "Accept: application/dicom answers one Secondary Capture: one image and "
                          "one target; this request has %d image(s) and %d target(s). Ask for "
                          "application/json with outputs=dicom to get one Secondary Capture per "
                          "map (explanations[].secondary_capture)",
                          r->job.n_inputs, maps);
    }
    job->explainer = e;
    job->model_index = r->model_index;
    job->predict_only = r->predict_only;
    job->want_png = r->want_png;
    job->want_dicom = r->want_dicom;
    job->inputs = r->inputs;
    snprintf(job->request_id, sizeof(job->request_id), "%s", r->request_id);
    job->done = job_done;
    job->done_arg = r;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    job->client_fd = ci ? (int)ci->connect_fd : -1;
  }
  camd__http_opts_free(l);
  json_decref(root);
  if (r->err_status) return send_recorded(r);
  camd_error ce = {0};
  int rc = camd__pool_submit(job, suspend_cb, r, &ce);
  if (rc) {
    return respond_error(r, rc, ce.message); /* CAMD_E_BUSY or CAMD_E_SHUTTING_DOWN */
  }
  r->submitted = true;
  return MHD_YES;
}

static enum MHD_Result send_job(camd__request *r) {
  camd__job *job = &r->job;
  char *body = job->body;
  job->body = NULL;
  /* A worker leaves no body only when even its error answer could not be allocated. */
  if (!body) return respond_error(r, CAMD_E_NOMEM, "out of memory while writing the answer");
  return respond(r, job->http_status, job->body_type ? job->body_type : "application/json", body,
                 job->body_len, MHD_RESPMEM_MUST_FREE);
}

/* ------------------------------------------------------------------------------------------ */
/* GET routes */

static enum MHD_Result send_models(camd__request *r) {
  json_t *arr = json_array();
  for (int i = 0; i < camd__http_srv.cfg->n_models; i++) {
    camd_explainer *e = camd__http_srv.models[i];
    const camd_model_config *c = camd_explainer_config(e);
    json_array_append_new(
        arr, json_pack("{s:s,s:s,s:b,s:i,s:s,s:s,s:s}", "name", c->name, "sha256",
                       camd_explainer_sha256(e), "default", i == camd__http_srv.default_model,
                       "labels", camd_explainer_num_labels(e), "default_method",
                       c->default_method[0] ? c->default_method : "gradcam", "default_layer",
                       camd_explainer_default_layer(e) ? camd_explainer_default_layer(e) : "",
                       "url", ""));
    json_t *m = json_array_get(arr, (size_t)i);
    char url[200];
    snprintf(url, sizeof(url), "/v1/models/%s", c->name);
    json_object_set_new(m, "url", json_string(url));
  }
  return respond_json(r, 200,
                      json_pack("{s:o,s:s}", "models", arr, "default_model",
                                camd__http_srv.cfg->models[camd__http_srv.default_model].name));
}

static enum MHD_Result send_get(camd__request *r) {
  switch (r->route) {
    case CAMD_ROUTE_HEALTH:
      return respond_json(r, 200, json_pack("{s:s}", "status", "ok"));
    case CAMD_ROUTE_READY:
      if (atomic_load(&camd__http_srv.draining)) {
        return respond_error(r, CAMD_E_NOT_READY, "the server is draining (shutting down)");
      }
      if (!atomic_load(&camd__http_srv.ready)) {
        return respond_error(r, CAMD_E_NOT_READY, "the models are still loading");
      }
      return respond_json(r, 200, json_pack("{s:s}", "status", "ready"));
    case CAMD_ROUTE_METRICS: {
      size_t len = 0;
      char *text = camd__metrics_render(camd__pool_queue_depth(), &len);
      if (!text) return respond_error(r, CAMD_E_NOMEM, "out of memory");
      return respond(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len,
                     MHD_RESPMEM_MUST_FREE);
    }
    case CAMD_ROUTE_MODELS:
      if (!atomic_load(&camd__http_srv.ready)) {
        return respond_error(r, CAMD_E_NOT_READY, "the models are still loading");
      }
      return send_models(r);
    case CAMD_ROUTE_MODEL: {
      if (!atomic_load(&camd__http_srv.ready)) {
        return respond_error(r, CAMD_E_NOT_READY, "the models are still loading");
      }
      char *text = camd_explainer_info_json(camd__http_srv.models[r->model_index]);
      if (!text) return respond_error(r, CAMD_E_NOMEM, "out of memory");
      return respond_json_text(r, 200, text);
    }
    case CAMD_ROUTE_STATIC: {
      const char *url = r->path;
      for (size_t i = 0; i < camd__www_count; i++) {
        const camd__www_file *f = &camd__www_files[i];
        if ((!strcmp(url, "/") && !strcmp(f->name, "index.html")) || !strcmp(url + 1, f->name)) {
          const char *dot = strrchr(f->name, '.');
          const char *ct = "application/octet-stream";
          if (dot && !strcmp(dot, ".html")) ct = "text/html; charset=utf-8";
          if (dot && !strcmp(dot, ".js")) ct = "text/javascript; charset=utf-8";
          if (dot && !strcmp(dot, ".css")) ct = "text/css; charset=utf-8";
          if (dot && !strcmp(dot, ".png")) ct = "image/png";
          if (dot && !strcmp(dot, ".svg")) ct = "image/svg+xml";
          return respond(r, 200, ct, (void *)f->data, f->len, MHD_RESPMEM_PERSISTENT);
        }
      }
      return respond_error(r, CAMD_E_NOT_FOUND, "no such file");
    }
    default:
      return respond_error(r, CAMD_E_NOT_FOUND, "no such route");
  }
}

static enum MHD_Result send_options(camd__request *r) {
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  if (!resp) return MHD_NO;
  const char *allow = r->allow ? r->allow : GET_ALLOW;
  MHD_add_response_header(resp, "Allow", allow);
  MHD_add_response_header(resp, "X-Request-Id", r->request_id);
  const char *origin = allowed_origin(r->conn);
  if (origin) {
    MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
    MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                            "Authorization, Content-Type, Accept, X-Request-Id");
    MHD_add_response_header(resp, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    MHD_add_response_header(resp, "Vary", "Origin");
  }
  r->status = 204;
  enum MHD_Result ret = MHD_queue_response(r->conn, 204, resp);
  MHD_destroy_response(resp);
  return ret;
}

/* ------------------------------------------------------------------------------------------ */
/* the handler */

/* The marker context of requests whose own context could not be allocated: only its address
 * is used (*con_cls), never its fields, so MHD threads share it without a lock. */
static camd__request oom_request;

/* 500 out_of_memory on a connection that has no request context (nothing of it is shared). */
static enum MHD_Result respond_oom_without_context(struct MHD_Connection *conn) {
  struct MHD_Response *resp = MHD_create_response_from_buffer(
      sizeof(OOM_BODY) - 1, (void *)OOM_BODY, MHD_RESPMEM_PERSISTENT);
  if (!resp) return MHD_NO;
  fault_report(resp);
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  MHD_add_response_header(resp, "Cache-Control", "no-store");
  MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
  enum MHD_Result ret = MHD_queue_response(conn, 500, resp);
  MHD_destroy_response(resp);
  return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls) {
  (void)cls, (void)version;
  camd__request *r = *con_cls;
  if (r == &oom_request) { /* answered 500 in the first call; discard the body */
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (!r) {
    const camd_server_config *cfg = camd__http_srv.cfg;
    const camd__http_limits lim = {cfg->max_body_bytes, cfg->max_options, cfg->max_option_bytes,
                                   cfg->max_instances};
#ifdef CAMD_FAULT_INJECT
    const char *fault = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Camd-Fault-Alloc");
    if (fault) camd_fault_arm(atol(fault));
#endif
    r = camd__request_new(conn, &lim);
    if (!r) { /* answer from static memory: a context that is never freed */
      *con_cls = &oom_request;
      atomic_fetch_add(&camd__http_srv.open_requests, 1);
      return respond_oom_without_context(conn);
    }
    *con_cls = r;
    snprintf(r->method, sizeof(r->method), "%.11s", method);
    snprintf(r->path, sizeof(r->path), "%.255s", url);
    for (char *p = r->path; *p; p++) /* the access log is JSON: no invalid UTF-8 */
      if ((unsigned char)*p >= 0x80) *p = '?';
    for (char *p = r->method; *p; p++)
      if ((unsigned char)*p >= 0x80) *p = '?';
    const char *rid = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (sane_request_id(rid)) {
      snprintf(r->request_id, sizeof(r->request_id), "%s", rid);
    } else {
      new_request_id(r->request_id, sizeof(r->request_id));
    }
    atomic_fetch_add(&camd__http_srv.open_requests, 1);
    camd__metrics_inflight(1);
    first_call(r, conn, url, method);
    /* The only answer given before the body: a declared length over the cap. */
    if (r->err_status == CAMD_E_LIMIT) return send_recorded(r);
    return MHD_YES;
  }
  if (r->status) { /* already answered; discard whatever still arrives */
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (*upload_data_size) {
    camd__http_absorb(r, upload_data, *upload_data_size);
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (r->submitted) {
    if (!atomic_load(&r->job_done)) return MHD_YES; /* cannot happen: suspended until done */
    if (r->job.dropped) return MHD_NO; /* the client is gone: close without an answer */
    return send_job(r);
  }
  if (!strcmp(r->method, "OPTIONS")) return r->allow ? send_options(r) : send_recorded(r);
  if (r->err_status) return send_recorded(r);
  if (r->is_post) return start_job(r);
  return send_get(r);
}

/* ------------------------------------------------------------------------------------------ */
/* completion: access log, metrics, cleanup */

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
  (void)cls, (void)conn;
  camd__request *r = *con_cls;
  if (!r) return;
  *con_cls = NULL;
  if (r == &oom_request) {
    camd__metrics_request(CAMD_ROUTE_NONE, 500);
    atomic_fetch_sub(&camd__http_srv.open_requests, 1);
    return;
  }
  const uint64_t end_ns = camd_now_ns();
  double ms = (double)(end_ns - r->start_ns) / 1e6;
  camd__metrics_request(r->route, r->status);
  camd__metrics_inflight(-1);
  if (camd__http_srv.access_log) {
    char remote[INET6_ADDRSTRLEN] = "";
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
      const struct sockaddr *sa = ci->client_addr;
      if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, remote, sizeof(remote));
      } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, remote, sizeof(remote));
      }
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);
    json_t *line =
        json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:i,s:I,s:I,s:f}", "ts", when, "type", "access",
                  "request_id", r->request_id, "remote", remote, "method", r->method, "path",
                  r->path, "status", r->status, "bytes_in", (json_int_t)r->received, "bytes_out",
                  (json_int_t)r->bytes_out, "duration_ms", ms);
    if (line) {
      json_object_set_new(line, "route", json_string(camd__route_name(r->route)));
      if (r->model_index >= 0) {
        json_object_set_new(line, "model",
                            json_string(camd__http_srv.cfg->models[r->model_index].name));
      }
      if (r->submitted) {
        json_object_set_new(
            line, "method_cam",
            json_string(r->job.predict_only ? "predict"
                                            : camd_cam_method_name(r->job.opts.method)));
        json_object_set_new(line, "queue_ms", json_real(r->job.queue_ms));
        json_object_set_new(line, "run_ms", json_real(r->job.run_ms));
        /* after the run: the answer's writing (worker), then its way out (resume, queue, send) */
        json_object_set_new(line, "answer_ms", json_real(r->job.answer_ms));
        if (r->job.done_ns)
          json_object_set_new(line, "reply_ms", json_real((double)(end_ns - r->job.done_ns) / 1e6));
        json_object_set_new(line, "batch", json_integer(r->job.batch_size));
        if (r->job.dropped) json_object_set_new(line, "dropped", json_string("client_gone"));
      }
      if (r->err_status && r->status == camd_status_http(r->err_status)) {
        json_object_set_new(line, "error", json_string(r->err_msg));
      }
      if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        json_object_set_new(line, "terminated", json_integer((json_int_t)toe));
      }
      char *text = json_dumps(line, JSON_COMPACT);
      json_decref(line);
      if (text) {
        size_t n = strlen(text);
        text[n] = '\n'; /* replace the NUL: written with one call, never parsed as a string */
        fwrite(text, 1, n + 1, stderr);
        fflush(stderr);
        free(text);
      }
    }
  }
  camd__request_free(r);
  atomic_fetch_sub(&camd__http_srv.open_requests, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
  (void)cls;
  char line[1024];
  vsnprintf(line, sizeof(line), fmt, ap);
  size_t n = strlen(line);
  while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
  camd_log(CAMD_LOG_WARN, "libmicrohttpd: %s", line);
}

/* ------------------------------------------------------------------------------------------ */
/* lifecycle */

static int start_daemon(camd_server_config *cfg, camd_error *err) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof(ss));
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG;
  struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
  if (inet_pton(AF_INET, cfg->listen, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)cfg->port);
  } else if (inet_pton(AF_INET6, cfg->listen, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)cfg->port);
    flags |= MHD_USE_IPv6;
  } else {
    return camd_error_set(err, CAMD_E_INVALID,
                          "bad value for 'listen': '%s' is not an IPv4 or IPv6 address",
                          cfg->listen);
  }
  struct MHD_OptionItem opts[16];
  int n = 0;
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
  opts[n++] =
      (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->max_connections, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                      (intptr_t)cfg->request_timeout_s, NULL};
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                      (intptr_t)cfg->max_header_bytes, NULL};
  if (cfg->max_connections_per_ip > 0) {
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                        (intptr_t)cfg->max_connections_per_ip, NULL};
  }
  if (camd__tls_enabled()) {
    flags |= MHD_USE_TLS;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_CERT_CALLBACK, 0,
                                        (void *)(intptr_t)camd__tls_cert_cb};
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)CAMD__TLS_PRIORITIES};
  }
  if (cfg->io_threads > 1) {
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)cfg->io_threads, NULL};
  }
  opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  camd__http_srv.daemon = MHD_start_daemon(
      flags, (uint16_t)cfg->port, NULL, NULL, handler, NULL, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
      NULL, MHD_OPTION_ARRAY, opts, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
  if (!camd__http_srv.daemon) {
    return camd_error_set(err, CAMD_E_IO, "cannot listen on %s port %ld (address in use?%s)",
                          cfg->listen, cfg->port,
                          camd__tls_enabled() ? " or TLS setup failed: see the log above" : "");
  }
  return 0;
}

static int load_models(camd_server_config *cfg, camd_error *err) {
  for (int i = 0; i < cfg->n_models; i++) {
    cfg->models[i].max_model_bytes = (size_t)cfg->max_model_bytes;
    cfg->models[i].max_tensor_elements = (size_t)cfg->max_tensor_elements;
    uint64_t t0 = camd_now_ns();
    int rc = camd_explainer_open(&cfg->models[i], &camd__http_srv.models[i], err);
    if (rc)
      return camd_error_prefix(err, rc, "model '%s' (%s): ", cfg->models[i].name,
                               cfg->models[i].path);
    camd_log(CAMD_LOG_INFO, "model '%s' loaded from %s in %.0f ms (sha256 %.16s...)",
             cfg->models[i].name, cfg->models[i].path, (double)(camd_now_ns() - t0) / 1e6,
             camd_explainer_sha256(camd__http_srv.models[i]));
  }
  return 0;
}

static void release_models(void) {
  for (int i = 0; i < CAMD_SERVER_MAX_MODELS; i++) {
    if (camd__http_srv.models[i]) camd_explainer_release(camd__http_srv.models[i]);
    camd__http_srv.models[i] = NULL;
  }
}

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
  unsigned char c = (unsigned char)sig;
  int saved = errno;
  if (write(sig_pipe[1], &c, 1) < 0) {
  }
  errno = saved;
}

/* SIGHUP: the API key file and the TLS certificate files are read again (the listener stays;
 * new handshakes get the new certificate). A file that fails to load keeps the previous
 * contents, with a warning. */
static void reload(camd_server_config *cfg) {
  reload_keys(cfg);
  camd_error e = {0};
  if (camd__tls_enabled()) {
    if (camd__tls_reload(&e))
      camd_log(CAMD_LOG_WARN, "SIGHUP: TLS certificates not reloaded (the previous stay): %s",
               e.message);
    else
      camd_log(CAMD_LOG_INFO, "SIGHUP: TLS certificates reloaded");
  }
}

int camd_server_run(camd_server_config *cfg, camd_error *err) {
  memset(&camd__http_srv, 0, sizeof(camd__http_srv));
  camd__http_srv.cfg = cfg;
  int level = camd__server_log_level(cfg);
  if (level >= 0) camd_log_set_level((camd_log_level)level);
  json_object_seed(0);
#ifdef CAMD_FAULT_INJECT
  json_set_alloc_funcs(malloc, free); /* jansson's allocations through the counted wrappers */
#endif
  camd__http_srv.access_log = strcmp(cfg->log_level, "warn") && strcmp(cfg->log_level, "error");
  camd_rng rng;
  camd_rng_seed(&rng, camd_now_ns() ^ ((uint64_t)getpid() << 32));
  camd__http_srv.id_seed = camd_rng_next(&rng);
  for (int i = 0; i < cfg->n_models; i++) {
    if (!strcmp(cfg->models[i].name, cfg->default_model)) camd__http_srv.default_model = i;
  }
  pthread_rwlock_init(&camd__http_srv.keys_lock, NULL);
  int krc = set_keys(cfg->api_keys, cfg->n_api_keys, err);
  if (krc) return krc;

  /* Engine threads per worker × workers ≤ cores (camd_blas_set_threads: new sessions). */
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  if (cores < 1) cores = 1;
  long blas = cfg->blas_threads ? cfg->blas_threads : cores / cfg->workers;
  if (blas < 1) blas = 1;
  camd_blas_set_threads((int)blas);
  if (blas * cfg->workers > cores) {
    camd_log(CAMD_LOG_WARN, "workers (%ld) x blas_threads (%ld) exceeds the %ld cores",
             cfg->workers, blas, cores);
  }

  /* Signals: a handler (run by whichever thread the kernel picks, including OpenBLAS's own
   * threads created before main) writes to a pipe this thread waits on. A vanished client must
   * not kill the process. */
  if (pipe(sig_pipe) != 0) return camd_error_set(err, CAMD_E_IO, "pipe: %s", strerror(errno));
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  const char **names = calloc((size_t)cfg->n_models, sizeof(char *));
  if (!names) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  for (int i = 0; i < cfg->n_models; i++) names[i] = cfg->models[i].name;
  int rc = camd__metrics_init(names, cfg->n_models, err);
  free(names);
  if (rc) return rc;

  rc = camd__tls_init(cfg, err);
  if (!rc) rc = start_daemon(cfg, err);
  if (rc) {
    camd__tls_free();
    camd__metrics_free();
    return rc;
  }
  const union MHD_DaemonInfo *di =
      MHD_get_daemon_info(camd__http_srv.daemon, MHD_DAEMON_INFO_BIND_PORT);
  unsigned port = di ? di->port : (unsigned)cfg->port;
  camd_log(CAMD_LOG_INFO, "loading %d model(s); workers %ld, blas_threads %ld, max_batch %ld",
           cfg->n_models, cfg->workers, blas, cfg->max_batch);
  rc = load_models(cfg, err);
  if (!rc) camd_alloc_policy_serving(); /* the weights are in place: request-time thresholds */
  if (!rc)
    rc = camd__pool_start(
        cfg, cfg->warmup ? camd__http_srv.models[camd__http_srv.default_model] : NULL, err);
  if (rc) {
    MHD_stop_daemon(camd__http_srv.daemon);
    release_models();
    camd__tls_free();
    camd__metrics_free();
    return rc;
  }
  atomic_store(&camd__http_srv.ready, 1);
  camd_log(CAMD_LOG_INFO, "camd %s listening on %s://%s%s%s:%u/ (ready)", CAMD_VERSION,
           camd__tls_enabled() ? "https" : "http", strchr(cfg->listen, ':') ? "[" : "", cfg->listen,
           strchr(cfg->listen, ':') ? "]" : "", port);

  unsigned char sig = 0;
  for (;;) {
    if (read(sig_pipe[0], &sig, 1) != 1) continue;
    if (sig != SIGHUP) break;
    reload(cfg);
  }
  camd_log(CAMD_LOG_INFO, "%s received: draining (stop accepting, finish queued jobs within %ld s)",
           sig == SIGINT ? "SIGINT" : "SIGTERM", cfg->drain_timeout_s);
  atomic_store(&camd__http_srv.draining, 1);
  MHD_socket lfd = MHD_quiesce_daemon(camd__http_srv.daemon);
  if (lfd != MHD_INVALID_SOCKET) close(lfd);
  uint64_t deadline = camd_now_ns() + (uint64_t)cfg->drain_timeout_s * 1000000000ull;
  /* Requests still uploading may submit jobs while we drain; they are accepted until the
   * pool stops, then answered 503 by the handler. */
  camd__pool_drain_and_stop(deadline);
  /* Give resumed connections time to send their answers (bounded). */
  uint64_t flush_deadline = camd_now_ns() + 2000000000ull;
  while (atomic_load(&camd__http_srv.open_requests) > 0 && camd_now_ns() < flush_deadline) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  long left = atomic_load(&camd__http_srv.open_requests);
  MHD_stop_daemon(camd__http_srv.daemon);
  camd__http_srv.daemon = NULL;
  release_models();
  camd__tls_free();
  camd__metrics_free();
  signal(SIGTERM, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
  close(sig_pipe[0]);
  close(sig_pipe[1]);
  camd_log(CAMD_LOG_INFO, "stopped (%ld request(s) still open were closed)", left);
  return 0;
}
