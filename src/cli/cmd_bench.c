/* `camd bench`: forward and forward+backward-to-layer latency of an ONNX model (medians). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "camd/engine.h"
#include "camd/onnx.h"
#include "cli/cli.h"

static void bench_usage(FILE *f) {
  fprintf(
      f,
      "usage: camd bench MODEL.onnx [options]\n\n"
      "Measures the engine on random input (seeded): the median latency of a forward pass,\n"
      "and of a forward pass that keeps what backward needs plus one backward pass from the\n"
      "top class's logit to the CAM layer. One JSON line per thread count on stdout.\n\n"
      "options:\n"
      "  --threads LIST   comma-separated engine thread counts (default 1,2)\n"
      "  --layer NAME     backward target (default: the model's suggested CAM layer)\n"
      "  --batch N        images per run (default 1)\n"
      "  --runs N         timed runs per measurement, >= 1 (default 20)\n"
      "  --warmup N       untimed runs first (default 3)\n"
      "  --seed N         input seed (default 1)\n"
      "  --dump-output F  write the first run's output 0 as raw float32 to F\n"
      "  --input F        read the input tensor (raw float32, batch × per-sample) from F\n"
      "  --profile        also print the forward time per operator kind (ms per run: the sum of\n"
      "                   its nodes' median times; %%)\n"
      "  --profile-nodes  also print the forward time of every node (median ms per run, output "
      "shape)\n");
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(double), cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Operator kind of node i for the profile: Conv split into depthwise / grouped / 1x1 / KxK. */
static void node_kind(const camd_model *m, int i, char *buf, size_t size) {
  const char *op = camd_model_node_op(m, i);
  snprintf(buf, size, "%s", op);
  if (strcmp(op, "Conv") != 0) return;
  const int *in, *out;
  int n_in, n_out;
  camd_value_info x, w;
  if (camd_model_node_io(m, i, &in, &n_in, &out, &n_out) || n_in < 2 ||
      camd_model_value_info(m, in[0], &x) || camd_model_value_info(m, in[1], &w) ||
      w.shape.ndim != 4)
    return;
  if (w.shape.dims[1] == 1 && x.shape.dims[1] > 1)
    snprintf(buf, size, "Conv depthwise %lldx%lld", (long long)w.shape.dims[2],
             (long long)w.shape.dims[3]);
  else if (w.shape.dims[1] != x.shape.dims[1])
    snprintf(buf, size, "Conv grouped");
  else
    snprintf(buf, size, "Conv %lldx%lld", (long long)w.shape.dims[2], (long long)w.shape.dims[3]);
}

static int cmp_u64(const void *a, const void *b) {
  const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Runs `runs` profiled forwards and prints "profile" lines: kind, ms per run (the sum of its
 * nodes' median times), share. */
static int print_profile(camd_model *m, camd_session *s, int batch, const float *input, int runs,
                         int threads, bool per_node, camd_error *err) {
  camd_forward_opts fwd;
  camd_forward_opts_init(&fwd);
  int rc = camd_session_set_profiling(s, true, err);
  const int nn = camd_model_num_nodes(m);
  /* Per node, the median of its per-run times (a shared machine's outliers do not count). */
  uint64_t *per_run = calloc((size_t)runs * (size_t)(nn + 1), sizeof(uint64_t));
  uint64_t *ns = calloc((size_t)nn + 1, sizeof(uint64_t));
  if (!rc && (!per_run || !ns)) rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  for (int i = 0; !rc && i < runs; i++) {
    const uint64_t *sum = camd_session_profile(s);
    uint64_t *before = per_run + (size_t)i * (size_t)(nn + 1);
    memcpy(before, sum, sizeof(uint64_t) * (size_t)(nn + 1));
    rc = camd_session_forward(s, batch, input, &fwd, err);
    sum = camd_session_profile(s);
    for (int k = 0; !rc && k <= nn; k++) before[k] = sum[k] - before[k];
  }
  uint64_t *col = rc ? NULL : malloc(sizeof(uint64_t) * (size_t)runs);
  if (!rc && !col) rc = camd_error_set(err, CAMD_E_NOMEM, "out of memory");
  for (int k = 0; !rc && k <= nn; k++) { /* ns[k]: median over the runs, times runs */
    for (int i = 0; i < runs; i++) col[i] = per_run[(size_t)i * (size_t)(nn + 1) + (size_t)k];
    qsort(col, (size_t)runs, sizeof(uint64_t), cmp_u64);
    ns[k] = col[runs / 2] * (uint64_t)runs;
  }
  free(col);
  free(per_run);
  char(*kinds)[48] = calloc((size_t)nn + 1, sizeof(*kinds));
  double *tot = calloc((size_t)nn + 1, sizeof(double));
  int nk = 0;
  double all = 0;
  for (int i = 0; !rc && kinds && tot && i < nn; i++) {
    if (!ns[i]) continue;
    char k[48];
    node_kind(m, i, k, sizeof(k));
    int j = 0;
    while (j < nk && strcmp(kinds[j], k)) j++;
    if (j == nk) snprintf(kinds[nk++], sizeof(kinds[0]), "%s", k);
    tot[j] += (double)ns[i] / 1e6 / runs;
    all += (double)ns[i] / 1e6 / runs;
  }
  for (int i = 0; !rc && per_node && i < nn; i++) { /* every node, graph order */
    if (!ns[i]) continue;
    char k[48], shape[64] = "";
    node_kind(m, i, k, sizeof(k));
    const int *in, *out;
    int n_in, n_out;
    camd_value_info y;
    if (!camd_model_node_io(m, i, &in, &n_in, &out, &n_out) && n_out > 0 &&
        !camd_model_value_info(m, out[0], &y)) {
      for (int d = 0, at = 0; d < y.shape.ndim && at < (int)sizeof(shape) - 1; d++)
        at += snprintf(shape + at, sizeof(shape) - (size_t)at, "%s%lld", d ? "x" : "",
                       (long long)y.shape.dims[d]);
    }
    printf("node threads=%d %4d %-24s %-20s %8.3f ms %s\n", threads, i, k, shape,
           (double)ns[i] / 1e6 / runs, camd_model_node_name(m, i));
  }
  for (int pass = 0; !rc && kinds && tot && pass < nk; pass++) { /* largest first */
    int best = -1;
    for (int j = 0; j < nk; j++)
      if (tot[j] >= 0 && (best < 0 || tot[j] > tot[best])) best = j;
    printf("profile threads=%d %-24s %8.3f ms %5.1f %%\n", threads, kinds[best], tot[best],
           all > 0 ? 100.0 * tot[best] / all : 0.0);
    tot[best] = -1;
  }
  free(kinds);
  free(tot);
  free(ns);
  if (!rc) rc = camd_session_set_profiling(s, false, err);
  return rc;
}

typedef struct bench_args {
  const char *model_path, *layer, *threads_list, *dump, *input_path;
  int batch, runs, warmup;
  long long seed;
  bool profile, profile_nodes;
} bench_args;

/* 0, 1 for --help, or 2 for a usage error. */
static int parse_bench_args(int argc, char **argv, bench_args *a) {
  *a = (bench_args){.threads_list = "1,2", .batch = 1, .runs = 20, .warmup = 3, .seed = 1};
  static const char *const with_value[] = {"--threads", "--layer", "--batch",       "--runs",
                                           "--warmup",  "--seed",  "--dump-output", "--input"};
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) return 1;
    if (!strcmp(f, "--profile")) {
      a->profile = true;
      continue;
    }
    if (!strcmp(f, "--profile-nodes")) {
      a->profile = a->profile_nodes = true;
      continue;
    }
    if (f[0] != '-') {
      if (a->model_path) {
        fprintf(stderr, "camd bench: unexpected argument '%s'\n", f);
        return 2;
      }
      a->model_path = f;
      continue;
    }
    size_t k = 0, n = sizeof(with_value) / sizeof(with_value[0]);
    while (k < n && strcmp(f, with_value[k])) k++;
    if (k == n) {
      fprintf(stderr,
              "camd bench: unknown option '%s'; options are --threads, --layer, --batch, --runs, "
              "--warmup, --seed, --dump-output, --input, --profile, --profile-nodes\n",
              f);
      return 2;
    }
    const char *val = i + 1 < argc ? argv[++i] : NULL;
    if (!val) {
      fprintf(stderr, "camd bench: %s needs a value\n", f);
      return 2;
    }
    long long v = 0;
    int lo = strcmp(f, "--warmup") ? 1 : 0;
    bool number = k >= 2 && k <= 5; /* --batch, --runs, --warmup, --seed */
    if (number && camd_parse_int(val, lo, 100000, &v)) {
      fprintf(stderr, "camd bench: %s must be an integer within %d..100000, got '%s'\n", f, lo,
              val);
      return 2;
    }
    switch (k) {
      case 0:
        a->threads_list = val;
        break;
      case 1:
        a->layer = val;
        break;
      case 2:
        a->batch = (int)v;
        break;
      case 3:
        a->runs = (int)v;
        break;
      case 4:
        a->warmup = (int)v;
        break;
      case 5:
        a->seed = v;
        break;
      case 6:
        a->dump = val;
        break;
      default:
        a->input_path = val;
        break;
    }
  }
  if (!a->model_path) {
    bench_usage(stderr);
    return 2;
  }
  return 0;
}

/* What the measurements share: the model, its session, the input and the timing buffers. */
typedef struct bench {
  const bench_args *a;
  camd_model *m;
  camd_session *s;
  int layer_id; /* backward target, -1: none */
  camd_value_info layer_info;
  float *input, *seedv;
  size_t in_count, out_count;
  double *times, *btimes;
  camd_error err;
} bench;

/* Loads the model and makes the session, the input (--input or seeded normal) and the buffers. */
static int bench_setup(bench *b) {
  const bench_args *a = b->a;
  if (camd_onnx_load(a->model_path, NULL, &b->m, &b->err)) return 1;
  b->layer_id = camd_model_suggest_cam_layer(b->m);
  if ((a->layer && camd_model_check_target(b->m, a->layer, &b->layer_id, &b->err)) ||
      camd_session_create(b->m, a->batch, &b->s, &b->err))
    return 1;
  if (camd_session_max_batch(b->s) < a->batch)
    return camd_error_set(&b->err, CAMD_E_UNSUPPORTED,
                          "this model runs one image at a time; use --batch 1");
  if (b->layer_id >= 0) camd_model_value_info(b->m, b->layer_id, &b->layer_info);
  camd_value_info in_info, out_info;
  camd_model_value_info(b->m, camd_model_input(b->m, 0), &in_info);
  camd_model_value_info(b->m, camd_model_output(b->m, 0), &out_info);
  b->in_count = camd_shape_count(&in_info.shape) * (size_t)a->batch;
  b->out_count = camd_shape_count(&out_info.shape) * (size_t)a->batch;
  b->input = malloc(b->in_count * sizeof(float));
  b->seedv = calloc(b->out_count, sizeof(float));
  b->times = malloc(sizeof(double) * (size_t)a->runs);
  b->btimes = malloc(sizeof(double) * (size_t)a->runs);
  if (!b->input || !b->seedv || !b->times || !b->btimes)
    return camd_error_set(&b->err, CAMD_E_NOMEM, "out of memory");
  if (!a->input_path) {
    camd_rng r;
    camd_rng_seed(&r, (uint64_t)a->seed);
    for (size_t i = 0; i < b->in_count; i++) b->input[i] = (float)camd_rng_normal(&r);
    return 0;
  }
  unsigned char *data = NULL;
  size_t len = 0, want = b->in_count * sizeof(float);
  int rc = camd_read_file(a->input_path, want, &data, &len, &b->err);
  if (!rc && len != want) rc = camd_error_set(&b->err, CAMD_E_INVALID, "it holds %zu bytes", len);
  if (rc)
    camd_error_prefix(&b->err, rc, "--input must hold exactly %zu float32 values: ", b->in_count);
  else
    memcpy(b->input, data, len);
  free(data);
  return rc;
}

/* --dump-output: the first run's output 0 as raw float32. */
static int dump_output(bench *b, const float *out) {
  FILE *f = fopen(b->a->dump, "wb");
  bool ok = f && fwrite(out, sizeof(float), b->out_count, f) == b->out_count;
  if (f) ok = fclose(f) == 0 && ok;
  return ok ? 0 : camd_error_set(&b->err, CAMD_E_IO, "cannot write '%s'", b->a->dump);
}

/* Backward seed: 1 at the top class of each item of the last forward. */
static void seed_top_class(bench *b, const float *out) {
  int batch = b->a->batch;
  size_t per_out = b->out_count / (size_t)batch;
  memset(b->seedv, 0, b->out_count * sizeof(float));
  for (int i = 0; i < batch; i++) {
    size_t best = 0;
    for (size_t k = 1; k < per_out; k++)
      if (out[i * per_out + k] > out[i * per_out + best]) best = k;
    b->seedv[i * per_out + best] = 1.0f;
  }
}

/* Median forward+backward and backward-alone times (warmup runs first). */
static int time_backward(bench *b, double *fb_ms, double *bwd_ms) {
  const bench_args *a = b->a;
  camd_forward_opts gopt;
  camd_forward_opts_init(&gopt);
  gopt.grad_to = b->layer_id;
  for (int i = 0; i < a->warmup + a->runs; i++) {
    uint64_t t0 = camd_now_ns();
    if (camd_session_forward(b->s, a->batch, b->input, &gopt, &b->err)) return 1;
    uint64_t t1 = camd_now_ns();
    if (camd_session_backward(b->s, camd_model_output(b->m, 0), b->seedv, &b->err)) return 1;
    uint64_t t2 = camd_now_ns();
    if (i >= a->warmup) {
      b->times[i - a->warmup] = (double)(t2 - t0) / 1e6;
      b->btimes[i - a->warmup] = (double)(t2 - t1) / 1e6;
    }
  }
  *fb_ms = median(b->times, a->runs);
  *bwd_ms = median(b->btimes, a->runs);
  return 0;
}

/* One thread count: the medians, printed as one JSON line. */
static int measure(bench *b, long long nt) {
  const bench_args *a = b->a;
  camd_blas_set_threads((int)nt);
  if (camd_session_set_threads(b->s, (int)nt, &b->err)) return 1;
  camd_forward_opts fwd;
  camd_forward_opts_init(&fwd);
  for (int i = 0; i < a->warmup; i++) camd_session_forward(b->s, a->batch, b->input, &fwd, &b->err);
  for (int i = 0; i < a->runs; i++) {
    uint64_t t0 = camd_now_ns();
    if (camd_session_forward(b->s, a->batch, b->input, &fwd, &b->err)) return 1;
    b->times[i] = (double)(camd_now_ns() - t0) / 1e6;
  }
  double fwd_ms = median(b->times, a->runs), fwd_min_ms = b->times[0]; /* sorted now */
  const int onednn_convs = camd_session_onednn_convs(b->s); /* of the forward just timed */
  const int winograd_convs = camd_session_winograd_convs(b->s);
  if (a->profile &&
      print_profile(b->m, b->s, a->batch, b->input, a->runs, (int)nt, a->profile_nodes, &b->err))
    return 1;
  const float *out = camd_session_value(b->s, camd_model_output(b->m, 0), NULL);
  if (a->dump && dump_output(b, out)) return 1;
  seed_top_class(b, out);
  double fb_ms = NAN, bwd_ms = NAN;
  if (b->layer_id >= 0 && time_backward(b, &fb_ms, &bwd_ms)) return 1;
  printf(
      "{\"model\": \"%s\", \"threads\": %lld, \"batch\": %d, \"runs\": %d, "
      "\"forward_ms_median\": %.3f, \"forward_ms_min\": %.3f, "
      "\"forward_backward_ms_median\": %.3f, "
      "\"backward_ms_median\": %.3f, \"layer\": \"%s\", \"session_mib\": %.1f, "
      "\"onednn_convs\": %d, \"winograd_convs\": %d}\n",
      a->model_path, nt, a->batch, a->runs, fwd_ms, fwd_min_ms, fb_ms, bwd_ms,
      b->layer_id >= 0 ? b->layer_info.name : "", (double)camd_session_bytes(b->s) / 1048576.0,
      onednn_convs, winograd_convs);
  fflush(stdout);
  return 0;
}

int camd_cli_bench(int argc, char **argv) {
  bench_args a;
  int rc = parse_bench_args(argc, argv, &a);
  if (rc == 1) bench_usage(stdout);
  if (rc) return rc == 1 ? 0 : rc;
  bench b = {.a = &a, .layer_id = -1};
  char *list = NULL;
  rc = bench_setup(&b);
  if (!rc && !(list = strdup(a.threads_list)))
    rc = camd_error_set(&b.err, CAMD_E_NOMEM, "out of memory");
  char *save = NULL;
  for (char *tok = list ? strtok_r(list, ",", &save) : NULL; !rc && tok;
       tok = strtok_r(NULL, ",", &save)) {
    long long nt;
    if (camd_parse_int(tok, 1, 256, &nt))
      rc = camd_error_set(&b.err, CAMD_E_INVALID, "bad thread count '%s' in --threads", tok);
    else
      rc = measure(&b, nt);
  }
  if (rc) fprintf(stderr, "camd bench: %s\n", b.err.message);
  free(list);
  free(b.input);
  free(b.seedv);
  free(b.times);
  free(b.btimes);
  camd_session_destroy(b.s);
  camd_model_release(b.m);
  return rc ? 1 : 0;
}
