/* HTTP request bodies: accumulation with the body cap (raw image, JSON, multipart form via
 * libmicrohttpd's post processor), query-string and form options, JSON / KServe v1 parsing with
 * base64 images, and the options applied over a model's defaults. Limits come from the request's
 * own copy (r->lim): no server state is read here, so tests/fuzz/fuzz_body.c runs this file as
 * the daemon does. */
#include <ctype.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "camd/core.h"
#include "server/http_internal.h"

/* ------------------------------------------------------------------------------------------ */
/* body accumulation */

/* Target data keys: not bounded by max_option_bytes (a mask PNG, a reference image or vector is
 * larger than an option), only by max_body_bytes. */
static bool is_target_data(const char *key) {
  return !strcmp(key, "mask") || !strcmp(key, "reference") || !strcmp(key, "reference_image");
}

/* Hands p to the request (freed with it); NULL (p freed, error recorded) when out of memory. */
static void *keep(camd__request *r, void *p) {
  if (!p) {
    camd__http_record(r, CAMD_E_NOMEM, "out of memory");
    return NULL;
  }
  if (r->n_owned == r->cap_owned) {
    int cap = r->cap_owned ? 2 * r->cap_owned : 8;
    void **o = realloc(r->owned, sizeof(*o) * (size_t)cap);
    if (!o) {
      free(p);
      camd__http_record(r, CAMD_E_NOMEM, "out of memory");
      return NULL;
    }
    r->owned = o;
    r->cap_owned = cap;
  }
  return r->owned[r->n_owned++] = p;
}

/* Skips a "data:...," prefix of base64 text; false (recorded 400) when the comma is missing. */
static bool strip_data_url(camd__request *r, const char *what, const char **data, size_t *len) {
  if (*len <= 5 || strncmp(*data, "data:", 5) != 0) return true;
  const char *comma = memchr(*data, ',', *len);
  if (!comma) {
    camd__http_record(r, CAMD_E_FORMAT, "%s: a data: URL without a comma", what);
    return false;
  }
  *len -= (size_t)(comma + 1 - *data);
  *data = comma + 1;
  return true;
}

/* A mask / reference_image value: image bytes (a file part) as they are, else base64 text (a
 * data: URL allowed) decoded into memory the request owns. */
static bool target_blob(camd__request *r, const char *what, const char *data, size_t len,
                        const void **out, size_t *out_len) {
  if (camd_image_sniff(data, len) != CAMD_IMAGE_FORMAT_UNKNOWN) {
    *out = data;
    *out_len = len;
    return true;
  }
  if (!strip_data_url(r, what, &data, &len)) return false;
  camd_error e = {0};
  size_t n = 0;
  unsigned char *bytes = camd_base64_decode(data, len, &n, &e);
  if (!bytes) {
    camd__http_record(r, e.status == CAMD_E_NOMEM ? CAMD_E_NOMEM : CAMD_E_BAD_BASE64,
                      "%s is neither %san image file nor valid base64: %s", what,
                      strstr(what, "mask") ? "'argmax', " : "", e.message);
    return false;
  }
  if (!n) {
    free(bytes);
    camd__http_record(r, CAMD_E_INVALID, "%s is empty", what);
    return false;
  }
  if (!keep(r, bytes)) return false;
  *out = bytes;
  *out_len = n;
  return true;
}

static int field_index(camd__request *r, const char *key) {
  for (int i = 0; i < r->n_fields; i++) {
    if (!strcmp(r->fields[i].key, key)) return i;
  }
  return -1;
}

static int add_field(camd__request *r, const char *key) {
  if (r->n_fields >= r->lim.max_options) {
    camd__http_record(r, CAMD_E_LIMIT, "more than max_options = %ld option fields",
                      r->lim.max_options);
    return -1;
  }
  if (strlen(key) > 64) {
    camd__http_record(r, CAMD_E_INVALID, "option name '%.64s...' is too long", key);
    return -1;
  }
  if (r->n_fields == r->cap_fields) {
    int cap = r->cap_fields ? r->cap_fields * 2 : 8;
    camd__http_field *f = realloc(r->fields, sizeof(camd__http_field) * (size_t)cap);
    if (!f) {
      camd__http_record(r, CAMD_E_NOMEM, "out of memory");
      return -1;
    }
    r->fields = f;
    r->cap_fields = cap;
  }
  camd__http_field *f = &r->fields[r->n_fields];
  f->key = strdup(key);
  camd_buf_init(&f->value);
  if (!f->key) {
    camd__http_record(r, CAMD_E_NOMEM, "out of memory");
    return -1;
  }
  return r->n_fields++;
}

static bool append_field(camd__request *r, int i, const char *data, size_t size) {
  camd__http_field *f = &r->fields[i];
  if (f->value.len + size > (size_t)r->lim.max_option_bytes && !is_target_data(f->key)) {
    camd__http_record(r, CAMD_E_LIMIT, "option '%.64s' is longer than max_option_bytes = %ld",
                      f->key, r->lim.max_option_bytes);
    return false;
  }
  camd_buf_append(&f->value, data, size);
  if (f->value.failed) {
    camd__http_record(r, CAMD_E_NOMEM, "out of memory");
    return false;
  }
  return true;
}

enum MHD_Result camd__http_form_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *filename, const char *content_type,
                                     const char *transfer_encoding, const char *data, uint64_t off,
                                     size_t size) {
  (void)kind, (void)filename, (void)content_type, (void)transfer_encoding;
  camd__request *r = cls;
  if (r->err_status || !key) return MHD_YES;
  /* the image: field "image", or a file part sent as application/dicom under any name */
  bool dicom_part = content_type && !strncasecmp(content_type, "application/dicom", 17);
  if (!strcmp(key, "image") || dicom_part) {
    if (off == 0) {
      if (++r->form_images > 1) {
        camd__http_record(r, CAMD_E_INVALID,
                          "more than one image in the form ('image' fields or application/dicom "
                          "parts)");
        return MHD_YES;
      }
    }
    camd_buf_append(&r->form_image, data, size);
    if (r->form_image.failed) camd__http_record(r, CAMD_E_NOMEM, "out of memory");
    return MHD_YES;
  }
  int i = field_index(r, key);
  if (off == 0 && i >= 0) {
    camd__http_record(r, CAMD_E_INVALID, "option '%.64s' is given twice", key);
    return MHD_YES;
  }
  if (i < 0) i = add_field(r, key);
  if (i < 0) return MHD_YES;
  if (size) append_field(r, i, data, size);
  return MHD_YES;
}

void camd__http_absorb(camd__request *r, const char *data, size_t size) {
  r->received += size;
  if (r->err_status) return; /* discarding */
  if (r->received > (size_t)r->lim.max_body_bytes) {
    camd__http_record(r, CAMD_E_LIMIT, "request body exceeds the limit max_body_bytes = %ld",
                      r->lim.max_body_bytes);
    camd_buf_free(&r->body);
    camd_buf_free(&r->form_image);
    return;
  }
  if (r->kind == CAMD__BODY_FORM) {
    if (!r->pp) {
      r->pp = MHD_create_post_processor(r->conn, 64 * 1024, camd__http_form_iter, r);
      if (!r->pp) {
        camd__http_record(r, CAMD_E_FORMAT,
                          "malformed multipart/form-data header (missing boundary?)");
        return;
      }
    }
    if (MHD_post_process(r->pp, data, size) != MHD_YES) {
      camd__http_record(r, CAMD_E_FORMAT, "malformed multipart/form-data body");
    }
    return;
  }
  camd_buf_append(&r->body, data, size);
  if (r->body.failed) camd__http_record(r, CAMD_E_NOMEM, "out of memory");
}

/* ------------------------------------------------------------------------------------------ */
/* building the job */

void camd__http_opts_free(camd__opt_list *l) {
  for (int i = 0; i < l->n; i++) {
    if (l->owned[i]) free(l->values[i]);
  }
  free(l->keys);
  free(l->values);
  free(l->owned);
  memset(l, 0, sizeof(*l));
}

/* Room for one more option; false when out of memory. */
static bool opts_grow(camd__opt_list *l) {
  if (l->n < l->cap) return true;
  int cap = l->cap ? l->cap * 2 : 16;
  const char **keys = realloc(l->keys, sizeof(*keys) * (size_t)cap);
  if (keys) l->keys = keys;
  char **values = keys ? realloc(l->values, sizeof(*values) * (size_t)cap) : NULL;
  if (values) l->values = values;
  bool *owned = values ? realloc(l->owned, sizeof(*owned) * (size_t)cap) : NULL;
  if (!owned) return false;
  l->owned = owned;
  l->cap = cap;
  return true;
}

static bool opts_add(camd__request *r, camd__opt_list *l, const char *key, char *value,
                     bool owned) {
  if (l->n >= r->lim.max_options) {
    if (owned) free(value);
    camd__http_record(r, CAMD_E_LIMIT, "more than max_options = %ld options", r->lim.max_options);
    return false;
  }
  if (strlen(value) > (size_t)r->lim.max_option_bytes && !is_target_data(key)) {
    if (owned) free(value);
    camd__http_record(r, CAMD_E_LIMIT, "option '%.64s' is longer than max_option_bytes = %ld", key,
                      r->lim.max_option_bytes);
    return false;
  }
  if (!opts_grow(l)) {
    if (owned) free(value);
    camd__http_record(r, CAMD_E_NOMEM, "out of memory");
    return false;
  }
  l->keys[l->n] = key;
  l->values[l->n] = value;
  l->owned[l->n] = owned;
  l->n++;
  return true;
}

enum MHD_Result camd__http_query_iter(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value) {
  (void)kind;
  camd__query_ctx *q = cls;
  if (!strcmp(key, "model")) {
    q->model = value ? value : "";
    return MHD_YES;
  }
  return opts_add(q->r, q->l, key, (char *)(value ? value : ""), false) ? MHD_YES : MHD_NO;
}

/* JSON option value → text (strings as is, numbers/bools printed, arrays comma-joined). */
static char *json_option_text(json_t *v) {
  if (json_is_string(v)) return strdup(json_string_value(v));
  if (json_is_true(v)) return strdup("true");
  if (json_is_false(v)) return strdup("false");
  if (json_is_number(v)) return json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
  if (json_is_array(v)) {
    camd_buf b;
    camd_buf_init(&b);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
      if (!json_is_string(e) && !json_is_number(e)) {
        camd_buf_free(&b);
        return NULL;
      }
      char *t = json_option_text(e);
      if (!t) {
        camd_buf_free(&b);
        return NULL;
      }
      if (i) camd_buf_append(&b, ",", 1);
      camd_buf_append(&b, t, strlen(t));
      free(t);
    }
    if (!b.data) camd_buf_append(&b, "", 0);
    if (b.failed || !b.data) {
      camd_buf_free(&b);
      return strdup("");
    }
    return camd_buf_take(&b, NULL);
  }
  return NULL;
}

static bool add_json_option(camd__request *r, camd__opt_list *l, const char *key, json_t *v) {
  char *text = json_option_text(v);
  if (!text) {
    camd__http_record(r, CAMD_E_INVALID,
                      "option '%.64s' must be a string, number, boolean or array of those", key);
    return false;
  }
  return opts_add(r, l, key, text, true);
}

/* Decodes one base64 image (a "data:...;base64," prefix is allowed) into r->inputs. */
static bool add_b64_image(camd__request *r, json_t *v, const char *what) {
  if (!json_is_string(v)) {
    camd__http_record(r, CAMD_E_INVALID, "%s must be a base64 string", what);
    return false;
  }
  if (r->n_decoded >= r->lim.max_instances) {
    camd__http_record(r, CAMD_E_LIMIT, "more than max_instances = %ld images",
                      r->lim.max_instances);
    return false;
  }
  const char *s = json_string_value(v);
  size_t len = json_string_length(v);
  if (!strip_data_url(r, what, &s, &len)) return false;
  camd_error e = {0};
  size_t out_len = 0;
  unsigned char *bytes = camd_base64_decode(s, len, &out_len, &e);
  if (!bytes) {
    camd__http_record(r, e.status == CAMD_E_NOMEM ? CAMD_E_NOMEM : CAMD_E_BAD_BASE64,
                      "%s is not valid base64: %s", what, e.message);
    return false;
  }
  if (out_len == 0) {
    free(bytes);
    camd__http_record(r, CAMD_E_INVALID, "%s is empty", what);
    return false;
  }
  r->decoded[r->n_decoded] = bytes;
  r->inputs[r->n_decoded].data = bytes;
  r->inputs[r->n_decoded].len = out_len;
  r->n_decoded++;
  return true;
}

/* KServe instances[i]: besides "image", this image's own target, box, mask, reference or
 * reference_image (copied: the JSON is released before the job runs). */
static bool instance_targets(camd__request *r, json_t *inst, size_t i, camd_explain_input *in) {
  const char *key;
  json_t *v;
  json_object_foreach(inst, key, v) {
    if (!strcmp(key, "image")) continue;
    char what[96];
    snprintf(what, sizeof(what), "instances[%zu].%.32s", i, key);
    bool text = !strcmp(key, "target") || !strcmp(key, "box") || !strcmp(key, "reference");
    if (!text && strcmp(key, "mask") && strcmp(key, "reference_image")) {
      camd__http_record(r, CAMD_E_INVALID,
                        "%s: an instance takes image and its own target, box, mask, reference or "
                        "reference_image; other options go in \"parameters\"",
                        what);
      return false;
    }
    char *t = json_option_text(v);
    if (!t) {
      camd__http_record(r, CAMD_E_INVALID, "%s must be a string, number or array of those", what);
      return false;
    }
    if (!keep(r, t)) return false;
    if (!strcmp(key, "target")) {
      in->target = t;
    } else if (!strcmp(key, "box")) {
      in->box = t;
    } else if (!strcmp(key, "reference")) {
      in->reference = t;
    } else if (!strcmp(key, "mask")) {
      if (!target_blob(r, what, t, strlen(t), &in->mask, &in->mask_len)) return false;
    } else if (!target_blob(r, what, t, strlen(t), &in->reference_image,
                            &in->reference_image_len)) {
      return false;
    }
  }
  return true;
}

static bool parse_json_body(camd__request *r, camd__opt_list *l, json_t **root_out,
                            const char **model) {
  json_error_t je;
  json_t *root =
      json_loadb(r->body.data ? r->body.data : "", r->body.len, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    camd__http_record(r, CAMD_E_BAD_JSON, "the body is not valid JSON: line %d column %d: %s",
                      je.line, je.column, je.text);
    return false;
  }
  *root_out = root;
  if (!json_is_object(root)) {
    camd__http_record(r, CAMD_E_BAD_JSON, "the JSON body must be an object");
    return false;
  }
  json_t *instances = json_object_get(root, "instances");
  const char *key;
  json_t *v;
  json_object_foreach(root, key, v) {
    if (!strcmp(key, "instances") || (!instances && !strcmp(key, "image"))) continue;
    if (!strcmp(key, "model")) {
      if (!json_is_string(v)) {
        camd__http_record(r, CAMD_E_INVALID, "'model' must be a string");
        return false;
      }
      *model = json_string_value(v);
    } else if (!strcmp(key, "parameters") && json_is_object(v)) {
      const char *pk;
      json_t *pv;
      json_object_foreach(v, pk, pv) {
        if (!add_json_option(r, l, pk, pv)) return false;
      }
    } else if (!add_json_option(r, l, key, v)) {
      return false;
    }
  }
  if (instances) {
    r->job.kserve = true;
    if (!json_is_array(instances) || json_array_size(instances) == 0) {
      camd__http_record(r, CAMD_E_INVALID, "'instances' must be a non-empty array");
      return false;
    }
    if (json_array_size(instances) > (size_t)r->lim.max_instances) {
      camd__http_record(r, CAMD_E_LIMIT, "%zu instances exceed the limit max_instances = %ld",
                        json_array_size(instances), r->lim.max_instances);
      return false;
    }
    size_t i;
    json_t *inst;
    json_array_foreach(instances, i, inst) {
      char what[64];
      snprintf(what, sizeof(what), "instances[%zu].image.b64", i);
      json_t *img = json_is_object(inst) ? json_object_get(inst, "image") : NULL;
      if (!img && json_is_object(inst)) img = inst;
      json_t *b64 = json_is_object(img) ? json_object_get(img, "b64") : img;
      if (!b64) {
        camd__http_record(r, CAMD_E_INVALID,
                          "instances[%zu] has no image ({\"image\": {\"b64\": ...}})", i);
        return false;
      }
      if (!add_b64_image(r, b64, what)) return false;
      if (img != inst && !instance_targets(r, inst, i, &r->inputs[r->n_decoded - 1])) return false;
    }
    return true;
  }
  json_t *img = json_object_get(root, "image");
  if (!img) {
    camd__http_record(r, CAMD_E_INVALID,
                      "the JSON body has no \"image\" (base64 PNG, JPEG or DICOM)");
    return false;
  }
  if (json_is_object(img)) img = json_object_get(img, "b64");
  return add_b64_image(r, img, "'image'");
}

/* Turns the accumulated body into options (appended to l), the model name (*model, when the
 * body names one) and r->inputs / r->job.n_inputs; errors are recorded in r. *root receives the
 * parsed JSON (it owns the strings l and *model point into; caller decrefs). */
void camd__http_collect_body(camd__request *r, camd__opt_list *l, json_t **root,
                             const char **model) {
  if (!r->err_status) {
    if (r->kind == CAMD__BODY_RAW) {
      if (!r->body.len) {
        camd__http_record(r, CAMD_E_INVALID, "the request body is empty; send the image bytes");
      } else {
        r->inputs[0].data = r->body.data;
        r->inputs[0].len = r->body.len;
        r->job.n_inputs = 1;
      }
    } else if (r->kind == CAMD__BODY_JSON) {
      if (parse_json_body(r, l, root, model)) r->job.n_inputs = r->n_decoded;
    } else if (r->kind == CAMD__BODY_FORM) {
      for (int i = 0; i < r->n_fields && !r->err_status; i++) {
        camd__http_field *f = &r->fields[i];
        bool image_part = f->value.data && camd_image_sniff(f->value.data, f->value.len) !=
                                               CAMD_IMAGE_FORMAT_UNKNOWN;
        if (!strcmp(f->key, "model")) {
          *model = f->value.data ? f->value.data : "";
        } else if (image_part && !strcmp(f->key, "mask")) {
          r->tgt_mask = f->value.data;
          r->tgt_mask_len = f->value.len;
        } else if (image_part && !strcmp(f->key, "reference_image")) {
          r->tgt_ref_image = f->value.data;
          r->tgt_ref_image_len = f->value.len;
        } else {
          opts_add(r, l, r->fields[i].key, r->fields[i].value.data ? r->fields[i].value.data : "",
                   false);
        }
      }
      if (!r->err_status) {
        if (!r->form_images || !r->form_image.len) {
          camd__http_record(r, CAMD_E_INVALID, "the form has no (non-empty) 'image' file field");
        } else {
          r->inputs[0].data = r->form_image.data;
          r->inputs[0].len = r->form_image.len;
          r->job.n_inputs = 1;
        }
      }
    }
  }
}

void camd__http_apply_options(camd__request *r, const camd_explainer *e, const camd__opt_list *l,
                              camd_explain_options *o) {
  camd_explain_options_init(o, e);
  for (int i = 0; i < l->n && !r->err_status; i++) {
    camd_error ce = {0};
    const char *k = l->keys[i], *v = l->values[i];
    if (!strcmp(k, "reference")) {
      r->tgt_reference = keep(r, strdup(v));
    } else if (!strcmp(k, "reference_image")) {
      target_blob(r, "reference_image", v, strlen(v), &r->tgt_ref_image, &r->tgt_ref_image_len);
    } else if (!strcmp(k, "mask") && strcmp(v, "argmax")) {
      target_blob(r, "mask", v, strlen(v), &r->tgt_mask, &r->tgt_mask_len);
    } else if (camd_explain_options_set(o, e, k, v, &ce)) {
      camd__http_record_camd(r, &ce, CAMD_E_INVALID);
    }
  }
  /* The request's target data goes to every image that does not carry its own. */
  for (int i = 0; i < r->job.n_inputs; i++) {
    camd_explain_input *in = &r->inputs[i];
    if (!in->mask) in->mask = r->tgt_mask, in->mask_len = r->tgt_mask_len;
    if (!in->reference_image)
      in->reference_image = r->tgt_ref_image, in->reference_image_len = r->tgt_ref_image_len;
    if (!in->reference) in->reference = r->tgt_reference;
  }
}
