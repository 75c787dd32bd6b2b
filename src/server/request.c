/* One HTTP request's context: allocation with a copy of the limits, its first recorded error
 * ("the first error wins": later stages keep draining the body and the final handler call
 * answers it), and the cleanup the request-completed callback runs. */
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "server/http_internal.h"

camd__request *camd__request_new(struct MHD_Connection *conn, const camd__http_limits *lim) {
  camd__request *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  r->conn = conn;
  r->lim = *lim;
  /* the request's arrays hold this many (the configuration keeps the limits below them) */
  if (r->lim.max_instances > CAMD_EXPLAIN_MAX_BATCH) r->lim.max_instances = CAMD_EXPLAIN_MAX_BATCH;
  if (r->lim.max_options > CAMD_SERVER_MAX_OPTIONS) r->lim.max_options = CAMD_SERVER_MAX_OPTIONS;
  r->start_ns = camd_now_ns();
  r->model_index = -1;
  camd_buf_init(&r->body);
  camd_buf_init(&r->form_image);
  return r;
}

void camd__request_free(camd__request *r) {
  if (!r) return;
  if (r->pp) MHD_destroy_post_processor(r->pp);
  camd_buf_free(&r->body);
  camd_buf_free(&r->form_image);
  for (int i = 0; i < r->n_fields; i++) {
    free(r->fields[i].key);
    camd_buf_free(&r->fields[i].value);
  }
  free(r->fields);
  for (int i = 0; i < r->n_decoded; i++) free(r->decoded[i]);
  for (int i = 0; i < r->n_owned; i++) free(r->owned[i]);
  free(r->owned);
  free(r->job.body);
  free(r);
}

void camd__http_record(camd__request *r, int status, const char *fmt, ...) {
  if (r->err_status) return; /* the first error wins */
  r->err_status = status;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->err_msg, sizeof(r->err_msg), fmt, ap);
  va_end(ap);
}

void camd__http_record_camd(camd__request *r, const camd_error *e, int fallback) {
  int st = e->status ? e->status : fallback;
  camd__http_record(r, st, "%s", e->message[0] ? e->message : camd_status_message(st));
}
