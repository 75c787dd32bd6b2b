/* The job pool (pool.c): a bounded FIFO of explain jobs, worker threads, dynamic batching, and
 * the JSON error body every answer of the server uses.
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
#ifndef CAMD_SERVER_POOL_H
#define CAMD_SERVER_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "camd/explain.h"
#include "camd/server.h"

typedef struct camd__job camd__job;
struct camd__job {
  /* set by the submitter */
  camd_explainer *explainer; /* borrowed (models live as long as the pool) */
  int model_index;
  camd_explain_options opts; /* jobs batch together when camd_explain_options_equal */
  bool predict_only;
  bool want_png;
  bool want_dicom;            /* Accept: application/dicom: the Secondary Capture of the one map */
  camd_explain_input *inputs; /* n_inputs images, borrowed from the request */
  int n_inputs;
  bool kserve; /* answer {"predictions": [...]} */
  char request_id[CAMD_REQUEST_ID_MAX + 1];
  int client_fd; /* the suspended connection's socket (-1: unknown): a job whose client has
                    closed it by the time a worker takes the job is dropped, not run */
  void (*done)(camd__job *job); /* called by the worker once the answer is stored */
  void *done_arg;
  /* pool bookkeeping */
  uint64_t enqueued_ns;
  camd__job *next;
  /* set by the worker */
  int http_status;
  char *body; /* malloc'd response body (JSON, PNG or DICOM) */
  size_t body_len;
  const char *body_type; /* static media type of body; NULL = application/json */
  double queue_ms, run_ms;
  double answer_ms; /* writing the answer after the run (JSON text with the base64 PNGs) */
  uint64_t done_ns; /* camd_now_ns when the answer was handed back (set by `done`) */
  int batch_size;
  bool dropped; /* the client was gone: not run */
};

/* Starts `workers` threads, each with its own camd_explain_ctx sized for max_batch images.
 * warm (borrowed, NULL = none; it must outlive the pool): each worker first explains a blank
 * image of warm's input size with warm's default options (gradcam instead of a method that
 * costs masked forwards) and drops the result (config key
 * warmup), before it takes jobs; not counted in the metrics, failures only logged. */
int camd__pool_start(const camd_server_config *cfg, camd_explainer *warm, camd_error *err);
/* Pushes a job. `before_push(arg)` runs under the pool lock once the job is sure to be
 * accepted (the caller suspends its connection there). CAMD_E_BUSY when the queue is full,
 * CAMD_E_SHUTTING_DOWN when the pool is stopping. */
int camd__pool_submit(camd__job *job, void (*before_push)(void *), void *arg, camd_error *err);
int camd__pool_queue_depth(void);
/* Waits until queue and workers are idle or deadline_ns (camd_now_ns clock); then fails every
 * job still queued with 503 and stops the workers (after their current batch). */
void camd__pool_drain_and_stop(uint64_t deadline_ns);

/* Builds the error body {"error": {"status", "code", "message"}, "request_id"} of a camd status
 * (HTTP status and code from the status table; message "" = the table's message); malloc'd. */
char *camd__error_json(int status, const char *message, const char *request_id, size_t *len);

#endif
