/* Server configuration: one key table drives the defaults, the JSON file, CAMD_* environment
 * variables, command-line flags and `camd serve --help`. Each key's default is written once, in
 * its row, as the text a flag would give; camd_server_config_init applies it through the flag
 * parser, so the default, its range check and the help cannot disagree. (The README's table is
 * checked against --help by tests/service/test_api.py.) */
#include <ctype.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "camd/core.h"
#include "camd/server.h"
#include "server/http_internal.h"

typedef enum key_kind { K_LONG, K_STR, K_LIST, K_MODELS } key_kind;

typedef struct key_desc {
  const char *name;
  key_kind kind;
  size_t offset;   /* K_LONG: long; K_STR: char[size]; K_LIST: char *[max] + count */
  size_t size;     /* K_STR: buffer size; K_LIST: count offset */
  long lo, hi;     /* K_LONG range; K_LIST: max entries in hi */
  const char *def; /* the default as the text a flag would give, set by camd_server_config_init
                      through the same parser and shown by --help; NULL: empty (the help text
                      then says what that means in brackets) */
  const char *help;
} key_desc;

#define OFF(f) offsetof(camd_server_config, f)
#define KL(n, lo, hi, def, help) \
  { #n, K_LONG, OFF(n), 0, lo, hi, def, help }
#define KS(n, def, help) \
  { #n, K_STR, OFF(n), sizeof(((camd_server_config *)0)->n), 0, 0, def, help }

static const key_desc keys[] = {
    KS(listen, "127.0.0.1", "address to bind (IPv4 or IPv6 literal)"),
    KL(port, 0, 65535, "8080", "TCP port; 0 picks a free one and logs it"),
    KL(workers, 1, 256, "2", "compute worker threads"),
    KL(io_threads, 1, 64, "1", "network (epoll) threads"),
    KL(blas_threads, 0, 256, "0", "engine threads per worker; 0 = cores / workers"),
    KL(queue_length, 1, 1000000, "64", "jobs waiting for a worker before 503"),
    KL(max_batch, 1, CAMD_EXPLAIN_MAX_BATCH, "4",
       "images a worker runs as one batch (dynamic batching)"),
    KL(batch_window_us, 0, 1000000, "2000",
       "how long a worker waits to fill a batch while requests arrive closer together, µs"),
    KL(max_instances, 1, CAMD_EXPLAIN_MAX_BATCH, "8", "images (KServe instances) per request"),
    KL(max_body_bytes, 1024, 2147483647L, "16777216", "request body cap in bytes"),
    KL(max_image_pixels, 1, 4294967295L, "40000000", "decoded image width × height cap"),
    KL(max_image_width, 1, 1048576, "16384", "decoded image width cap"),
    KL(max_image_height, 1, 1048576, "16384", "decoded image height cap"),
    KL(max_frames, 1, 1000000, "4096", "DICOM frames (NumberOfFrames) cap"),
    KL(max_quality_forwards, 1, 1000000, "1024",
       "extra forwards of the quality metrics per image (options quality / metrics)"),
    KL(max_cam_forwards, 1, 100000000, "8192",
       "masked forwards per image of scorecam, sscam, iscam, ablationcam and polycam"),
    KL(max_header_bytes, 4096, 16777216, "32768", "per-connection memory for headers"),
    KL(request_timeout_s, 1, 3600, "30", "idle seconds before a connection is closed"),
    KL(max_connections, 1, 1000000, "512", "simultaneous connections"),
    KL(max_connections_per_ip, 0, 1000000, "64", "connections per client IP; 0 = no limit"),
    KL(max_option_bytes, 16, 1048576, "4096", "length of one option value in bytes"),
    KL(max_options, 1, CAMD_SERVER_MAX_OPTIONS, "64", "option fields per request"),
    KL(drain_timeout_s, 0, 3600, "20", "on SIGTERM, seconds queued jobs may still run"),
    KL(warmup, 0, 1, "1",
       "1: each worker explains a blank image with the default model once after start (its "
       "default method, or gradcam when that one costs masked forwards; the first requests "
       "then find the plan laid out and the memory touched); 0: off"),
    KL(retry_after_s, 1, 3600, "1", "Retry-After seconds sent with 503"),
    KL(max_model_bytes, 1024, 1099511627776L, "2147483648",
       "a model's .onnx file, and its external data, each at most this many bytes"),
    KL(max_tensor_elements, 1, 4294967296L, "268435456",
       "elements of any one tensor a model declares (per image); checked at load"),
    {"cors_origins", K_LIST, OFF(cors_origins), OFF(n_cors_origins), 0, CAMD_SERVER_MAX_ORIGINS,
     NULL, "allowed CORS origins (JSON array or comma list; \"*\" = any) [none]"},
    {"api_keys", K_LIST, OFF(api_keys), OFF(n_api_keys), 0, CAMD_SERVER_MAX_KEYS, NULL,
     "accepted bearer tokens (array or comma list), each KEY or KEY:scope+scope (scopes "
     "predict, explain, metrics, admin; none given = admin); none = no auth [none]"},
    KS(api_keys_file, NULL,
       "file with one API key (KEY or KEY:scopes) per line (# comments); re-read on SIGHUP "
       "[none]"),
    KS(tls_cert, NULL,
       "PEM certificate (chain) file; with tls_key the server speaks HTTPS only, TLS 1.2+; "
       "re-read on SIGHUP [none: plain HTTP]"),
    KS(tls_key, NULL, "PEM private key file of tls_cert; re-read on SIGHUP [none]"),
    KS(tls_ca, NULL,
       "PEM CA file: clients must present a certificate it signed (mutual TLS); re-read on "
       "SIGHUP [none: no client certificates]"),
    KS(default_model, NULL, "model used by POST /v1/explain without a model [first model]"),
    KS(log_level, "info", "debug, info, warn or error"),
    KS(dicom_uid_root, NULL,
       "UID root of DICOM Secondary Captures (a model's own dicom_uid_root wins) [2.25: UUIDs]"),
    {"models", K_MODELS, OFF(models), 0, 0, CAMD_SERVER_MAX_MODELS, NULL,
     "array of model entries (name, path, labels, preprocessing, ...); env/flag: JSON text"},
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static int set_text(camd_server_config *c, const key_desc *k, const char *text, const char *src,
                    camd_error *err);

void camd_server_config_init(camd_server_config *c) {
  memset(c, 0, sizeof(*c));
  for (size_t i = 0; i < N_KEYS; i++)
    if (keys[i].def) set_text(c, &keys[i], keys[i].def, "default", NULL); /* tested to succeed */
}

static void list_clear(char **items, int *n) {
  for (int i = 0; i < *n; i++) free(items[i]);
  *n = 0;
}

void camd_server_config_free(camd_server_config *c) {
  list_clear(c->cors_origins, &c->n_cors_origins);
  list_clear(c->api_keys, &c->n_api_keys);
}

void camd_server_config_help(FILE *f) {
  fprintf(f,
          "usage: camd serve [--config FILE] [--KEY VALUE ...]\n\n"
          "Runs the HTTP service. Settings come from, lowest priority first: built-in defaults,\n"
          "the JSON config file (--config FILE or CAMD_CONFIG; default config/camd.json when it\n"
          "exists), CAMD_<KEY> environment variables, then --<key> flags (underscores may be\n"
          "written as dashes; --key=value also works). Unknown keys and bad values are startup\n"
          "errors.\n\nkeys (file key / environment variable / flag):\n");
  for (size_t i = 0; i < N_KEYS; i++) {
    char env[64], flag[64];
    size_t j = 0;
    for (; j < 40 && keys[i].name[j]; j++) {
      env[j] = (char)toupper((unsigned char)keys[i].name[j]);
      flag[j] = keys[i].name[j] == '_' ? '-' : keys[i].name[j];
    }
    env[j] = flag[j] = 0;
    fprintf(f, "  %-24s CAMD_%-24s --%s\n      %s", keys[i].name, env, flag, keys[i].help);
    if (keys[i].def) fprintf(f, " [%s]", keys[i].def);
    fputc('\n', f);
  }
  fprintf(f, "\n  %-24s CAMD_%-24s --%s\n      %s\n", "(config file)", "CONFIG", "config",
          "JSON configuration file");
}

static int bad(camd_error *err, const char *src, const char *key, const char *fmt, const char *v) {
  char what[512];
  snprintf(what, sizeof(what), fmt, v ? v : "");
  return camd_error_set(err, CAMD_E_INVALID, "%s: bad value for '%s': %s", src, key, what);
}

static int set_long_text(camd_server_config *c, const key_desc *k, const char *text,
                         const char *src, camd_error *err) {
  long long v;
  if (camd_parse_int(text, k->lo, k->hi, &v)) {
    char msg[256];
    snprintf(msg, sizeof(msg), "'%%s' is not an integer in [%ld, %ld]", k->lo, k->hi);
    return bad(err, src, k->name, msg, text);
  }
  *(long *)((char *)c + k->offset) = (long)v;
  return 0;
}

static int set_str_text(camd_server_config *c, const key_desc *k, const char *text, const char *src,
                        camd_error *err) {
  if (strlen(text) >= k->size) {
    char msg[128];
    snprintf(msg, sizeof(msg), "longer than %zu bytes", k->size - 1);
    return bad(err, src, k->name, "%s", msg);
  }
  snprintf((char *)c + k->offset, k->size, "%s", text);
  return 0;
}

static int list_add(camd_server_config *c, const key_desc *k, const char *item, size_t len,
                    const char *src, camd_error *err) {
  char **items = (char **)((char *)c + k->offset);
  int *n = (int *)((char *)c + k->size);
  while (len && isspace((unsigned char)*item)) item++, len--;
  while (len && isspace((unsigned char)item[len - 1])) len--;
  if (!len) return 0;
  if (*n >= k->hi) {
    char msg[64];
    snprintf(msg, sizeof(msg), "more than %ld entries", k->hi);
    return bad(err, src, k->name, "%s", msg);
  }
  if (len > 1024) return bad(err, src, k->name, "%s", "an entry is longer than 1024 bytes");
  items[*n] = strndup(item, len);
  if (!items[*n]) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  (*n)++;
  return 0;
}

static int set_list_text(camd_server_config *c, const key_desc *k, const char *text,
                         const char *src, camd_error *err) {
  list_clear((char **)((char *)c + k->offset), (int *)((char *)c + k->size));
  const char *p = text;
  for (;;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    int rc = list_add(c, k, p, len, src, err);
    if (rc) return rc;
    if (!comma) break;
    p = comma + 1;
  }
  return 0;
}

static int set_models_json(camd_server_config *c, json_t *arr, const char *base_dir,
                           const char *src, camd_error *err) {
  if (!json_is_array(arr)) return bad(err, src, "models", "%s", "expected an array of objects");
  if (json_array_size(arr) > CAMD_SERVER_MAX_MODELS) {
    char msg[64];
    snprintf(msg, sizeof(msg), "more than %d models", CAMD_SERVER_MAX_MODELS);
    return bad(err, src, "models", "%s", msg);
  }
  c->n_models = 0;
  size_t i;
  json_t *m;
  json_array_foreach(arr, i, m) {
    if (!json_is_object(m)) return bad(err, src, "models", "%s", "entries must be objects");
    char *text = json_dumps(m, JSON_COMPACT);
    if (!text) return camd_error_set(err, CAMD_E_NOMEM, "out of memory");
    camd_model_config *mc = &c->models[c->n_models];
    camd_model_config_init(mc);
    int rc = camd_model_config_from_json_text(text, base_dir, mc, err);
    free(text);
    if (rc) return camd_error_prefix(err, rc, "%s: models[%zu]: ", src, i);
    for (int j = 0; j < c->n_models; j++) {
      if (!strcmp(c->models[j].name, mc->name)) {
        return camd_error_set(err, CAMD_E_INVALID, "%s: models[%zu]: duplicate model name '%s'",
                              src, i, mc->name);
      }
    }
    c->n_models++;
  }
  return 0;
}

/* Sets key k from text (environment variable or flag). */
static int set_text(camd_server_config *c, const key_desc *k, const char *text, const char *src,
                    camd_error *err) {
  switch (k->kind) {
    case K_LONG:
      return set_long_text(c, k, text, src, err);
    case K_STR:
      return set_str_text(c, k, text, src, err);
    case K_LIST:
      return set_list_text(c, k, text, src, err);
    case K_MODELS: {
      json_error_t je;
      json_t *arr = json_loads(text, JSON_REJECT_DUPLICATES, &je);
      if (!arr) return bad(err, src, k->name, "not JSON: %s", je.text);
      char cwd[4096];
      if (!getcwd(cwd, sizeof(cwd))) snprintf(cwd, sizeof(cwd), ".");
      int rc = set_models_json(c, arr, cwd, src, err);
      json_decref(arr);
      return rc;
    }
  }
  return CAMD_E_INTERNAL;
}

static const key_desc *find_key(const char *name, size_t len) {
  for (size_t i = 0; i < N_KEYS; i++) {
    const char *kn = keys[i].name;
    if (strlen(kn) != len) continue;
    size_t j = 0;
    for (; j < len; j++) {
      char ch = name[j] == '-' ? '_' : name[j];
      if (ch != kn[j]) break;
    }
    if (j == len) return &keys[i];
  }
  return NULL;
}

static void known_keys(char *out, size_t cap) {
  size_t used = 0;
  out[0] = 0;
  for (size_t i = 0; i < N_KEYS && used < cap; i++) {
    int n = snprintf(out + used, cap - used, "%s%s", i ? ", " : "", keys[i].name);
    if (n < 0) break;
    used += (size_t)n;
  }
}

static int load_file(camd_server_config *c, const char *path, camd_error *err) {
  json_error_t je;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    return camd_error_set(err, CAMD_E_INVALID, "config file '%s': line %d column %d: %s", path,
                          je.line, je.column, je.text);
  }
  if (!json_is_object(root)) {
    json_decref(root);
    return camd_error_set(err, CAMD_E_INVALID, "config file '%s': expected a JSON object", path);
  }
  char base_dir[4096];
  if (camd_path_dirname(path, base_dir, sizeof(base_dir))) {
    json_decref(root);
    return camd_error_set(err, CAMD_E_INVALID, "config file '%.200s...': the path is too long",
                          path);
  }
  char src[4200];
  snprintf(src, sizeof(src), "config file '%s'", path);
  const char *name;
  json_t *v;
  int rc = 0;
  json_object_foreach(root, name, v) {
    const key_desc *k = NULL;
    for (size_t i = 0; i < N_KEYS; i++) {
      if (!strcmp(keys[i].name, name)) k = &keys[i];
    }
    if (!k) {
      char list[1024];
      known_keys(list, sizeof(list));
      rc = camd_error_set(err, CAMD_E_INVALID, "%s: unknown key '%s'; known keys: %s", src, name,
                          list);
      break;
    }
    switch (k->kind) {
      case K_LONG:
        if (!json_is_integer(v)) {
          rc = bad(err, src, name, "%s", "expected an integer");
        } else {
          char text[32];
          snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(v));
          rc = set_long_text(c, k, text, src, err);
        }
        break;
      case K_STR:
        rc = json_is_string(v) ? set_str_text(c, k, json_string_value(v), src, err)
                               : bad(err, src, name, "%s", "expected a string");
        break;
      case K_LIST:
        if (json_is_string(v)) {
          rc = set_list_text(c, k, json_string_value(v), src, err);
        } else if (json_is_array(v)) {
          list_clear((char **)((char *)c + k->offset), (int *)((char *)c + k->size));
          size_t i;
          json_t *item;
          json_array_foreach(v, i, item) {
            if (!json_is_string(item)) {
              rc = bad(err, src, name, "%s", "expected an array of strings");
              break;
            }
            rc = list_add(c, k, json_string_value(item), strlen(json_string_value(item)), src, err);
            if (rc) break;
          }
        } else {
          rc = bad(err, src, name, "%s", "expected an array of strings");
        }
        break;
      case K_MODELS:
        rc = set_models_json(c, v, base_dir, src, err);
        break;
    }
    if (rc) break;
  }
  json_decref(root);
  return rc;
}

static int load_keys_file(camd_server_config *c, camd_error *err) {
  unsigned char *data = NULL;
  size_t len = 0;
  int rc = camd_read_file(c->api_keys_file, 1 << 20, &data, &len, err);
  if (rc) return camd_error_prefix(err, rc, "api_keys_file: ");
  const key_desc *k = find_key("api_keys", 8);
  const char *p = (const char *)data, *end = p + len;
  while (p < end && !rc) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
    const char *q = p;
    while (q < p + l && isspace((unsigned char)*q)) q++;
    if (q < p + l && *q != '#') rc = list_add(c, k, p, l, "api_keys_file", err);
    p += l + 1;
  }
  free(data);
  return rc;
}

static const char *const scope_names[] = {"predict", "explain", "metrics", "admin"};

int camd__server_key_parse(const char *entry, unsigned char hash[32], unsigned *scopes,
                           camd_error *err) {
  for (const char *p = entry; *p; p++) {
    if (*p <= ' ' || *p > '~') {
      return camd_error_set(err, CAMD_E_INVALID,
                            "an API key contains a space or a non-printable character");
    }
  }
  const char *colon = strrchr(entry, ':');
  size_t key_len = colon ? (size_t)(colon - entry) : strlen(entry);
  *scopes = CAMD__SCOPE_ALL;
  if (colon) {
    *scopes = 0;
    const char *p = colon + 1;
    for (;;) {
      size_t n = strcspn(p, "+");
      unsigned bit = 0;
      for (unsigned i = 0; i < sizeof(scope_names) / sizeof(scope_names[0]); i++)
        if (strlen(scope_names[i]) == n && !strncmp(p, scope_names[i], n)) bit = 1u << i;
      if (!bit) {
        return camd_error_set(err, CAMD_E_INVALID,
                              "an API key's scope '%.*s' is unknown (after the last ':'); scopes "
                              "are predict, explain, metrics, admin, joined with '+'",
                              (int)(n > 32 ? 32 : n), p);
      }
      *scopes |= bit == CAMD__SCOPE_ADMIN ? CAMD__SCOPE_ALL : bit;
      if (!p[n]) break;
      p += n + 1;
    }
  }
  if (key_len == 0) return camd_error_set(err, CAMD_E_INVALID, "an API key is empty");
  camd_sha256 sh;
  camd_sha256_init(&sh);
  camd_sha256_update(&sh, entry, key_len);
  camd_sha256_final(&sh, hash);
  return 0;
}

int camd__server_keys_file_read(const camd_server_config *c, camd_server_config *out,
                                camd_error *err) {
  camd_server_config_init(out);
  snprintf(out->api_keys_file, sizeof(out->api_keys_file), "%s", c->api_keys_file);
  int rc = load_keys_file(out, err);
  if (rc) camd_server_config_free(out);
  return rc;
}

static const char *const log_levels[] = {"debug", "info", "warn", "error"}; /* camd_log_level */

int camd__server_log_level(const camd_server_config *c) {
  for (int i = 0; i < 4; i++)
    if (!strcmp(c->log_level, log_levels[i])) return i;
  return -1;
}

static int validate(camd_server_config *c, camd_error *err) {
  if (camd__server_log_level(c) < 0) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "bad value for 'log_level': '%s'; valid: debug, info, warn, error",
                          c->log_level);
  }
  if (c->dicom_uid_root[0] && !camd_dicom_uid_root_valid(c->dicom_uid_root)) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "bad value for 'dicom_uid_root': '%s' is not a UID root (digits and "
                          "dots, no leading zeros, at most 40 characters)",
                          c->dicom_uid_root);
  }
  for (int i = 0; i < c->n_models; i++)
    if (!c->models[i].dicom_uid_root[0])
      memcpy(c->models[i].dicom_uid_root, c->dicom_uid_root, sizeof(c->dicom_uid_root));
  if (c->n_models == 0) {
    return camd_error_set(err, CAMD_E_INVALID,
                          "no models configured: give a config file with a \"models\" array "
                          "(--config FILE) or set 'models' (CAMD_MODELS / --models)");
  }
  if (c->default_model[0]) {
    bool found = false;
    for (int i = 0; i < c->n_models; i++) found |= !strcmp(c->models[i].name, c->default_model);
    if (!found) {
      return camd_error_set(err, CAMD_E_INVALID,
                            "bad value for 'default_model': no model named '%s' is configured",
                            c->default_model);
    }
  } else {
    snprintf(c->default_model, sizeof(c->default_model), "%s", c->models[0].name);
  }
  for (int i = 0; i < c->n_api_keys; i++) {
    unsigned char hash[32];
    unsigned scopes;
    int rc = camd__server_key_parse(c->api_keys[i], hash, &scopes, err);
    if (rc) {
      return camd_error_prefix(err, rc, "bad value for '%s': entry %d: ",
                               i < c->n_api_keys_inline ? "api_keys" : "api_keys_file",
                               i < c->n_api_keys_inline ? i : i - c->n_api_keys_inline);
    }
  }
  return 0;
}

int camd_server_config_load(camd_server_config *c, int argc, char **argv, camd_error *err) {
  /* Pass 1: --help and the config file path. */
  const char *config_path = getenv("CAMD_CONFIG");
  bool explicit_path = config_path && *config_path;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      camd_server_config_help(stdout);
      return 1;
    }
    if (!strcmp(argv[i], "--config")) {
      if (i + 1 >= argc) return camd_error_set(err, CAMD_E_INVALID, "--config needs a value");
      config_path = argv[++i];
      explicit_path = true;
    } else if (!strncmp(argv[i], "--config=", 9)) {
      config_path = argv[i] + 9;
      explicit_path = true;
    }
  }
  struct stat st;
  if (!explicit_path && stat("config/camd.json", &st) == 0) config_path = "config/camd.json";
  if (config_path && *config_path) {
    int rc = load_file(c, config_path, err);
    if (rc) return rc;
  }
  /* Environment. */
  for (size_t i = 0; i < N_KEYS; i++) {
    char env[64] = "CAMD_";
    size_t j = 0;
    for (; j < 50 && keys[i].name[j]; j++)
      env[5 + j] = (char)toupper((unsigned char)keys[i].name[j]);
    env[5 + j] = 0;
    const char *v = getenv(env);
    if (!v) continue;
    char src[96];
    snprintf(src, sizeof(src), "environment variable %s", env);
    int rc = set_text(c, &keys[i], v, src, err);
    if (rc) return rc;
  }
  /* Flags. */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--config")) {
      i++;
      continue;
    }
    if (!strncmp(a, "--config=", 9)) continue;
    if (strncmp(a, "--", 2) != 0) {
      return camd_error_set(err, CAMD_E_INVALID, "unexpected argument '%s' (see camd serve --help)",
                            a);
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    const key_desc *k = find_key(name, nlen);
    if (!k) {
      char list[1024];
      known_keys(list, sizeof(list));
      return camd_error_set(err, CAMD_E_INVALID,
                            "unknown flag '%.*s'; keys are: %s (see camd serve --help)",
                            (int)(nlen + 2), a, list);
    }
    const char *value;
    if (eq) {
      value = eq + 1;
    } else {
      if (i + 1 >= argc) return camd_error_set(err, CAMD_E_INVALID, "%s needs a value", a);
      value = argv[++i];
    }
    char src[128];
    snprintf(src, sizeof(src), "flag --%.*s", (int)nlen, name);
    int rc = set_text(c, k, value, src, err);
    if (rc) return rc;
  }
  c->n_api_keys_inline = c->n_api_keys;
  if (c->api_keys_file[0]) {
    int rc = load_keys_file(c, err);
    if (rc) return rc;
  }
  return validate(c, err);
}
