/* Job pool: a bounded FIFO of explain jobs, N worker threads each owning a camd_explain_ctx,
 * dynamic batching (a worker gathers the compatible queued jobs, and waits up to the batch
 * window for more while jobs arrive closer together than the window), and the drain used at
 * shutdown. See pool.h for the hand-off protocol. */
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "camd/core.h"
#include "camd/image.h"
#include "server/metrics.h"
#include "server/pool.h"

typedef struct worker {
  pthread_t thread;
  camd_explain_ctx *ctx;
  int index;
} worker;

static struct {
  pthread_mutex_t mu;
  pthread_cond_t work; /* new job or stopping */
  pthread_cond_t idle; /* a batch finished */
  camd__job *head, *tail;
  int depth, running;
  bool stopping;
  worker *workers;
  int n_workers;
  long queue_length, max_batch, batch_window_us;
  /* Arrivals: when the last job was queued, and a running mean of the gaps between arrivals,
   * each counted up to the window (3/4 old + 1/4 new, ns). A worker waits for a batch to fill only
   * while jobs arrive closer together than the window; see worker_main. */
  uint64_t last_arrival_ns, arrival_gap_ns;
  camd_explain_limits limits;
  camd_explainer *warm;    /* borrowed: the model each worker explains once at start, or NULL */
  unsigned char *warm_png; /* the blank image for it (malloc'd, freed when the pool stops) */
  size_t warm_png_len;
} pool;

/* Fills job with the error answer of a camd status. */
static void job_error(camd__job *job, int status, const char *msg) {
  free(job->body);
  job->body = camd__error_json(status, msg, job->request_id, &job->body_len);
  job->http_status = job->body ? camd_status_http(status) : 500;
  job->body_type = NULL;
}

char *camd__error_json(int status, const char *message, const char *request_id, size_t *len) {
  const char *msg = message && *message ? message : camd_status_message(status);
  json_t *m = json_string(msg);
  char safe[CAMD_ERROR_MESSAGE_MAX];
  if (!m) { /* not UTF-8 (a request's bytes quoted in the message): bytes >= 0x80 become '?' */
    size_t i = 0;
    for (; msg[i] && i + 1 < sizeof(safe); i++)
      safe[i] = (unsigned char)msg[i] >= 0x80 ? '?' : msg[i];
    safe[i] = 0;
    m = json_string(safe);
  }
  json_t *root = m ? json_pack("{s:{s:i,s:s,s:o}}", "error", "status", camd_status_http(status),
                               "code", camd_status_code(status), "message", m)
                   : NULL;
  if (!root) return NULL;
  if (request_id && *request_id) json_object_set_new(root, "request_id", json_string(request_id));
  char *text = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  if (text && len) *len = strlen(text);
  return text;
}

int camd__pool_queue_depth(void) {
  pthread_mutex_lock(&pool.mu);
  int d = pool.depth;
  pthread_mutex_unlock(&pool.mu);
  return d;
}

int camd__pool_submit(camd__job *job, void (*before_push)(void *), void *arg, camd_error *err) {
  pthread_mutex_lock(&pool.mu);
  if (pool.stopping) {
    pthread_mutex_unlock(&pool.mu);
    return camd_error_set(err, CAMD_E_SHUTTING_DOWN,
                          "the server is shutting down; retry on another instance");
  }
  if (pool.depth >= pool.queue_length) {
    pthread_mutex_unlock(&pool.mu);
    return camd_error_set(err, CAMD_E_BUSY,
                          "the job queue is full (queue_length = %ld); retry later",
                          pool.queue_length);
  }
  if (before_push) before_push(arg);
  job->next = NULL;
  job->enqueued_ns = camd_now_ns();
  /* Gaps count up to the window (after an idle minute, two close arrivals re-open it). */
  const uint64_t window_ns = (uint64_t)pool.batch_window_us * 1000u;
  uint64_t gap = pool.last_arrival_ns ? job->enqueued_ns - pool.last_arrival_ns : window_ns;
  if (gap > window_ns) gap = window_ns;
  pool.arrival_gap_ns = pool.last_arrival_ns ? pool.arrival_gap_ns / 4 * 3 + gap / 4 : gap;
  pool.last_arrival_ns = job->enqueued_ns;
  if (pool.tail) {
    pool.tail->next = job;
  } else {
    pool.head = job;
  }
  pool.tail = job;
  pool.depth++;
  pthread_cond_broadcast(&pool.work);
  pthread_mutex_unlock(&pool.mu);
  return 0;
}

static bool compatible(const camd__job *a, const camd__job *b) {
  return a->explainer == b->explainer && a->predict_only == b->predict_only &&
         camd_explain_options_equal(&a->opts, &b->opts);
}

/* Removes from the queue every job compatible with first that still fits. Lock held. */
static void gather(camd__job **jobs, int *n, int *images) {
  camd__job *prev = NULL, *j = pool.head;
  while (j && *images < pool.max_batch && *n < CAMD_EXPLAIN_MAX_BATCH) {
    camd__job *next = j->next;
    if (compatible(jobs[0], j) && *images + j->n_inputs <= pool.max_batch) {
      if (prev) {
        prev->next = next;
      } else {
        pool.head = next;
      }
      if (pool.tail == j) pool.tail = prev;
      pool.depth--;
      j->next = NULL;
      jobs[(*n)++] = j;
      *images += j->n_inputs;
    } else {
      prev = j;
    }
    j = next;
  }
}

static camd__job *pop_head(void) {
  camd__job *j = pool.head;
  if (!j) return NULL;
  pool.head = j->next;
  if (!pool.head) pool.tail = NULL;
  pool.depth--;
  j->next = NULL;
  return j;
}

/* Stores the JSON text of root (consumed) as the job's answer. */
static void set_json_answer(camd__job *job, json_t *root, const camd_explain_result *res) {
  size_t len = 0;
  char *text = camd_explain_json_text(root, res, &len);
  json_decref(root);
  if (!text) {
    job_error(job, CAMD_E_NOMEM, "out of memory while writing the result");
    return;
  }
  free(job->body);
  job->body = text;
  job->body_len = len;
  job->body_type = NULL;
  job->http_status = 200;
}

/* Accept: image/png: the overlay of the job's first image's first explanation, handed over. */
static void set_png_answer(camd__job *job, camd_explain_item *it) {
  camd_explain_blob *png = it->n_maps ? &it->maps[0].overlay : NULL;
  if (!png || !png->data) {
    job_error(job, CAMD_E_UNUSABLE, "the result has no overlay image to return");
    return;
  }
  free(job->body);
  job->body = (char *)png->data;
  job->body_len = png->len;
  png->data = NULL;
  job->body_type = "image/png";
  job->http_status = 200;
}

/* Accept: application/dicom: the Secondary Capture of the job's one image and one map (the
 * handler refused requests with more), handed over. */
static void set_dicom_answer(camd__job *job, camd_explain_item *it) {
  camd_explain_blob *dcm = it->n_maps ? &it->maps[0].dicom : NULL;
  if (!dcm || !dcm->data) {
    job_error(job, CAMD_E_UNUSABLE, "the result has no DICOM Secondary Capture to return");
    return;
  }
  free(job->body);
  job->body = (char *)dcm->data;
  job->body_len = dcm->len;
  dcm->data = NULL;
  job->body_type = "application/dicom";
  job->http_status = 200;
}

/* The answer of one job from its items res->items[off .. off + n_inputs): the first failed
 * image's error, the overlay PNG, the KServe envelope {"predictions": [...], "request_id"}, or
 * the one result object with "request_id". Image indices count within the job. */
static void answer_job(camd__job *job, camd_explain_result *res, int off, double run_s) {
  for (int k = 0; k < job->n_inputs; k++) {
    const camd_explain_item *it = &res->items[off + k];
    if (!it->status) continue;
    char msg[CAMD_ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof(msg), "image %d: %s", k,
             it->message ? it->message : camd_status_message(it->status));
    job_error(job, it->status, msg);
    return;
  }
  camd__metrics_run(job->model_index,
                    job->predict_only ? "predict" : camd_cam_method_name(job->opts.method), run_s,
                    &res->timings);
  if (job->want_png) {
    set_png_answer(job, &res->items[off]);
    return;
  }
  if (job->want_dicom) {
    set_dicom_answer(job, &res->items[off]);
    return;
  }
  json_t *root;
  if (job->kserve) {
    json_t *preds = json_array();
    for (int k = 0; preds && k < job->n_inputs; k++) {
      if (json_array_append_new(preds, camd_explain_item_json(res, off + k, k))) {
        json_decref(preds);
        preds = NULL;
      }
    }
    root = preds ? json_pack("{s:o}", "predictions", preds) : NULL;
  } else {
    root = camd_explain_item_json(res, off, 0);
  }
  if (root && json_object_set_new(root, "request_id", json_string(job->request_id))) {
    json_decref(root);
    root = NULL;
  }
  set_json_answer(job, root, res);
}

static void run_jobs(worker *w, camd__job **jobs, int n) {
  int total = 0;
  for (int i = 0; i < n; i++) total += jobs[i]->n_inputs;
  camd_explain_input *inputs = calloc((size_t)total, sizeof(*inputs));
  if (!inputs) {
    for (int i = 0; i < n; i++) job_error(jobs[i], CAMD_E_NOMEM, "out of memory");
    return;
  }
  int off = 0;
  for (int i = 0; i < n; i++) {
    memcpy(inputs + off, jobs[i]->inputs, sizeof(*inputs) * (size_t)jobs[i]->n_inputs);
    off += jobs[i]->n_inputs;
  }
  camd_explain_result res;
  camd_error err = {0};
  uint64_t t0 = camd_now_ns();
  int rc = camd_explain_run(w->ctx, jobs[0]->explainer, &jobs[0]->opts, inputs, total,
                            jobs[0]->predict_only, &pool.limits, &res, &err);
  double run_s = (double)(camd_now_ns() - t0) / 1e9;
  free(inputs);
  camd__metrics_batch(total);
  off = 0;
  for (int i = 0; i < n; i++) {
    camd__job *job = jobs[i];
    job->run_ms = run_s * 1e3;
    job->batch_size = total;
    if (res.n_items == total) {
      const uint64_t a0 = camd_now_ns();
      answer_job(job, &res, off, run_s);
      job->answer_ms = (double)(camd_now_ns() - a0) / 1e6;
    } else { /* the run failed as a whole (options, out of memory): every job gets the error */
      int st = rc ? rc : CAMD_E_INTERNAL;
      job_error(job, st, err.message);
    }
    off += job->n_inputs;
  }
  camd_explain_result_free(&res);
}

/* True when the peer has closed the connection (end of stream or an error on the socket). The
 * connection is suspended, so libmicrohttpd does not read it: bytes a client pipelines behind
 * its request are still there (not gone); a client that half-closes its sending side while it
 * waits counts as gone (libmicrohttpd would close such a connection as well). TLS: the raw
 * socket is inspected, so a close_notify alert alone is not seen, the FIN after it is. */
static bool client_gone(int fd) {
  if (fd < 0) return false;
  struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
  if (poll(&p, 1, 0) <= 0) return false;
  if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) return true;
  if (!(p.revents & (POLLIN | POLLRDHUP))) return false;
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0;
}

/* Removes (and answers) the jobs whose clients are gone; returns how many remain. */
static int drop_gone(camd__job **jobs, int n) {
  int kept = 0;
  for (int i = 0; i < n; i++) {
    if (client_gone(jobs[i]->client_fd)) {
      jobs[i]->dropped = true; /* no answer: the handler closes the connection */
      camd__metrics_dropped();
      jobs[i]->done(jobs[i]);
    } else {
      jobs[kept++] = jobs[i];
    }
  }
  return kept;
}

/* The worker's first run (config key warmup): a whole explain of a blank image with the
 * model's default options. The first request of a worker used to pay for it: ResNet-50's took
 * 124 ms against 66 (the session's plan laid out, oneDNN's kernels created, 3 240 page faults of
 * first-touched memory). A default method that costs masked forwards (Score-CAM: 512 of them
 * on a ResNet-50 layer4; the limit below refuses it before any work) is replaced by gradcam,
 * whose forward and backward plan every method shares most of: the warm-up stays one forward.
 * A failure (a model that needs more than an image, e.g. an embedding reference) is logged and
 * changes nothing: requests then warm the worker up as before. */
static void warm_up(worker *w) {
  if (!pool.warm) return; /* set only once its image exists (camd__pool_start) */
  const uint64_t t0 = camd_now_ns();
  camd_explain_options o;
  camd_explain_options_init(&o, pool.warm);
  const camd_explain_input in = {.data = pool.warm_png, .len = pool.warm_png_len};
  camd_explain_limits lim = pool.limits;
  lim.max_cam_forwards = 1;
  lim.max_quality_forwards = 1;
  camd_explain_result res;
  camd_error err = {0};
  int rc = camd_explain_run(w->ctx, pool.warm, &o, &in, 1, false, &lim, &res, &err);
  camd_explain_result_free(&res);
  if (rc == CAMD_E_LIMIT &&
      camd_explain_options_set(&o, pool.warm, "method", "gradcam", &err) == 0) {
    err = (camd_error){0};
    rc = camd_explain_run(w->ctx, pool.warm, &o, &in, 1, false, &lim, &res, &err);
    camd_explain_result_free(&res);
  }
  const char *name = camd_explainer_config(pool.warm)->name;
  if (rc)
    camd_log(CAMD_LOG_INFO, "worker %d: warm-up with model '%s' skipped: %s", w->index, name,
             err.message);
  else
    camd_log(CAMD_LOG_INFO, "worker %d: warmed up with model '%s' (%s) in %.0f ms", w->index, name,
             camd_cam_method_name(o.method), (double)(camd_now_ns() - t0) / 1e6);
}

/* A mid-gray RGB PNG of the model's input size (224 x 224 when it has none) into pool.warm_png. */
static int make_warm_png(const camd_explainer *e, camd_error *err) {
  const camd_preprocess_opts *pp = &camd_explainer_config(e)->preprocess;
  const size_t wd = pp->width ? pp->width : 224, ht = pp->height ? pp->height : 224;
  camd_image img = {0};
  int rc = camd_image_alloc(&img, wd, ht, 3, err);
  if (rc) return rc;
  memset(img.pixels, 128, wd * ht * 3);
  rc = camd_png_encode(&img, 1, &pool.warm_png, &pool.warm_png_len, err);
  camd_image_free(&img);
  return rc;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  camd__job *jobs[CAMD_EXPLAIN_MAX_BATCH];
  warm_up(w);
  for (;;) {
    pthread_mutex_lock(&pool.mu);
    while (!pool.head && !pool.stopping) pthread_cond_wait(&pool.work, &pool.mu);
    if (!pool.head) {
      pthread_mutex_unlock(&pool.mu);
      break;
    }
    int n = 0, images = 0;
    jobs[n++] = pop_head();
    images = jobs[0]->n_inputs;
    pool.running++;
    /* Wait up to the batch window for more jobs only while they arrive closer together than
     * the window: a lone client's request (the next one comes after this answer) or a slow
     * trickle would only wait the window out for nothing. Queued jobs are gathered anyway. */
    const uint64_t window_ns = (uint64_t)pool.batch_window_us * 1000u;
    if (pool.max_batch > 1 && images < pool.max_batch && pool.arrival_gap_ns >= window_ns)
      gather(jobs, &n, &images);
    else if (pool.max_batch > 1 && images < pool.max_batch) {
      uint64_t deadline = jobs[0]->enqueued_ns + window_ns;
      for (;;) {
        gather(jobs, &n, &images);
        if (images >= pool.max_batch || pool.stopping || camd_now_ns() >= deadline) break;
        struct timespec ts = {(time_t)(deadline / 1000000000u), (long)(deadline % 1000000000u)};
        pthread_cond_timedwait(&pool.work, &pool.mu, &ts);
      }
    }
    pthread_mutex_unlock(&pool.mu);
    uint64_t start = camd_now_ns();
    for (int i = 0; i < n; i++) jobs[i]->queue_ms = (double)(start - jobs[i]->enqueued_ns) / 1e6;
    n = drop_gone(jobs, n);
    if (n) run_jobs(w, jobs, n);
    /* Hand every answer back; after done() the job belongs to the network thread again. */
    for (int i = 0; i < n; i++) jobs[i]->done(jobs[i]);
    pthread_mutex_lock(&pool.mu);
    pool.running--;
    pthread_cond_broadcast(&pool.idle);
    pthread_mutex_unlock(&pool.mu);
  }
  return NULL;
}

int camd__pool_start(const camd_server_config *cfg, camd_explainer *warm, camd_error *err) {
  memset(&pool, 0, sizeof(pool));
  if (warm) {
    camd_error werr = {0};
    if (make_warm_png(warm, &werr) == 0)
      pool.warm = warm;
    else
      camd_log(CAMD_LOG_WARN, "warm-up skipped: %s", werr.message);
  }
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&pool.mu, NULL);
  pthread_cond_init(&pool.work, &ca);
  pthread_cond_init(&pool.idle, &ca);
  pthread_condattr_destroy(&ca);
  pool.queue_length = cfg->queue_length;
  pool.max_batch = cfg->max_batch;
  pool.batch_window_us = cfg->batch_window_us;
  pool.limits.image.max_width = (size_t)cfg->max_image_width;
  pool.limits.image.max_height = (size_t)cfg->max_image_height;
  pool.limits.image.max_pixels = (size_t)cfg->max_image_pixels;
  pool.limits.max_frames = (size_t)cfg->max_frames;
  pool.limits.max_quality_forwards = cfg->max_quality_forwards;
  pool.limits.max_cam_forwards = cfg->max_cam_forwards;
  pool.workers = calloc((size_t)cfg->workers, sizeof(worker));
  if (!pool.workers) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  int ctx_batch = (int)(cfg->max_batch > cfg->max_instances ? cfg->max_batch : cfg->max_instances);
  for (int i = 0; i < cfg->workers; i++) {
    worker *w = &pool.workers[i];
    w->index = i;
    int rc = camd_explain_ctx_create(ctx_batch, &w->ctx, err);
    if (rc) {
      camd_error_prefix(err, rc, "worker %d: ", i);
      pool.stopping = true;
      camd__pool_drain_and_stop(0);
      return rc;
    }
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
      camd_explain_ctx_destroy(w->ctx);
      w->ctx = NULL;
      pool.stopping = true;
      camd__pool_drain_and_stop(0);
      return camd_error_set(err, CAMD_E_NOMEM, "cannot start worker thread %d", i);
    }
    pool.n_workers++;
  }
  return 0;
}

void camd__pool_drain_and_stop(uint64_t deadline_ns) {
  pthread_mutex_lock(&pool.mu);
  while ((pool.head || pool.running) && camd_now_ns() < deadline_ns) {
    struct timespec ts = {(time_t)(deadline_ns / 1000000000u), (long)(deadline_ns % 1000000000u)};
    pthread_cond_timedwait(&pool.idle, &pool.mu, &ts);
  }
  pool.stopping = true;
  camd__job *rest = pool.head;
  pool.head = pool.tail = NULL;
  pool.depth = 0;
  pthread_cond_broadcast(&pool.work);
  pthread_mutex_unlock(&pool.mu);
  int cancelled = 0;
  while (rest) {
    camd__job *next = rest->next;
    job_error(rest, CAMD_E_SHUTTING_DOWN,
              "the server is shutting down and the drain timeout expired before this job "
              "ran; retry on another instance");
    rest->done(rest);
    rest = next;
    cancelled++;
  }
  if (cancelled) camd_log(CAMD_LOG_WARN, "drain timeout: %d queued job(s) answered 503", cancelled);
  for (int i = 0; i < pool.n_workers; i++) pthread_join(pool.workers[i].thread, NULL);
  for (int i = 0; i < pool.n_workers; i++) {
    camd_explain_ctx_destroy(pool.workers[i].ctx);
  }
  free(pool.workers);
  pool.workers = NULL;
  pool.n_workers = 0;
  free(pool.warm_png);
  pool.warm_png = NULL;
  pool.warm = NULL;
}
