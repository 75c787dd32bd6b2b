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
  fprintf(f,
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
          "  --profile        also print the forward time per operator kind (ms per run, %%)\n");
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

/* Runs `runs` profiled forwards and prints "profile" lines: kind, ms per run, share. */
static int print_profile(camd_model *m, camd_session *s, int batch, const float *input, int runs,
                         int threads, camd_error *err) {
  camd_forward_opts fwd;
  camd_forward_opts_init(&fwd);
  int rc = camd_session_set_profiling(s, true, err);
  for (int i = 0; !rc && i < runs; i++) rc = camd_session_forward(s, batch, input, &fwd, err);
  const uint64_t *ns = camd_session_profile(s);
  int nn = camd_model_num_nodes(m);
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
  if (!rc) rc = camd_session_set_profiling(s, false, err);
  return rc;
}

int camd_cli_bench(int argc, char **argv) {
  const char *model_path = NULL, *layer = NULL, *threads_list = "1,2", *dump = NULL,
             *input_path = NULL;
  int batch = 1, runs = 20, warmup = 3;
  bool profile = false;
  long seed = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      bench_usage(stdout);
      return 0;
    }
    if (!strcmp(a, "--profile")) {
      profile = true;
      continue;
    }
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    bool takes = !strcmp(a, "--threads") || !strcmp(a, "--layer") || !strcmp(a, "--batch") ||
                 !strcmp(a, "--runs") || !strcmp(a, "--warmup") || !strcmp(a, "--seed") ||
                 !strcmp(a, "--dump-output") || !strcmp(a, "--input");
    if (takes && !val) {
      fprintf(stderr, "camd bench: %s needs a value\n", a);
      return 2;
    }
    if (!strcmp(a, "--threads"))
      threads_list = val;
    else if (!strcmp(a, "--layer"))
      layer = val;
    else if (!strcmp(a, "--dump-output"))
      dump = val;
    else if (!strcmp(a, "--input"))
      input_path = val;
    else if (!strcmp(a, "--batch") || !strcmp(a, "--runs") || !strcmp(a, "--warmup") ||
             !strcmp(a, "--seed")) {
      long v;
      if (camd_cli_parse_long(val, &v) || v < (strcmp(a, "--warmup") ? 1 : 0) || v > 100000) {
        fprintf(stderr, "camd bench: %s must be an integer >= %d, got '%s'\n", a,
                strcmp(a, "--warmup") ? 1 : 0, val);
        return 2;
      }
      if (!strcmp(a, "--batch"))
        batch = (int)v;
      else if (!strcmp(a, "--runs"))
        runs = (int)v;
      else if (!strcmp(a, "--warmup"))
        warmup = (int)v;
      else
        seed = v;
    } else if (a[0] == '-') {
      fprintf(stderr,
              "camd bench: unknown option '%s'; options are --threads, --layer, --batch, --runs, "
              "--warmup, --seed, --dump-output, --input\n",
              a);
      return 2;
    } else if (!model_path) {
      model_path = a;
      continue;
    } else {
      fprintf(stderr, "camd bench: unexpected argument '%s'\n", a);
      return 2;
    }
    i++;
  }
  if (!model_path) {
    bench_usage(stderr);
    return 2;
  }
  camd_error err = {0};
  camd_model *m = NULL;
  if (camd_onnx_load(model_path, NULL, &m, &err)) {
    fprintf(stderr, "camd bench: %s\n", err.message);
    return 1;
  }
  int rc = 1;
  camd_session *s = NULL;
  float *input = NULL, *seedv = NULL;
  double *times = NULL;
  int layer_id = camd_model_suggest_cam_layer(m);
  if (layer && camd_model_check_target(m, layer, &layer_id, &err)) {
    fprintf(stderr, "camd bench: %s\n", err.message);
    goto done;
  }
  if (camd_session_create(m, batch, &s, &err)) {
    fprintf(stderr, "camd bench: %s\n", err.message);
    goto done;
  }
  if (camd_session_max_batch(s) < batch) {
    fprintf(stderr, "camd bench: this model runs one image at a time; use --batch 1\n");
    goto done;
  }
  camd_value_info in_info, out_info;
  camd_model_value_info(m, camd_model_input(m, 0), &in_info);
  camd_model_value_info(m, camd_model_output(m, 0), &out_info);
  size_t in_count = camd_shape_count(&in_info.shape) * (size_t)batch;
  size_t out_count = camd_shape_count(&out_info.shape) * (size_t)batch;
  input = malloc(in_count * sizeof(float));
  seedv = calloc(out_count, sizeof(float));
  times = malloc(sizeof(double) * (size_t)runs);
  if (!input || !seedv || !times) {
    fprintf(stderr, "camd bench: out of memory\n");
    goto done;
  }
  if (input_path) {
    unsigned char *data = NULL;
    size_t len = 0;
    if (camd_read_file(input_path, in_count * sizeof(float), &data, &len, &err) ||
        len != in_count * sizeof(float)) {
      fprintf(stderr, "camd bench: --input must hold exactly %zu float32 values: %s\n", in_count,
              err.message);
      free(data);
      goto done;
    }
    memcpy(input, data, len);
    free(data);
  } else {
    camd_rng r;
    camd_rng_seed(&r, (uint64_t)seed);
    for (size_t i = 0; i < in_count; i++) input[i] = (float)camd_rng_normal(&r);
  }
  camd_value_info layer_info;
  if (layer_id >= 0) camd_model_value_info(m, layer_id, &layer_info);
  char *list = strdup(threads_list);
  if (!list) {
    fprintf(stderr, "camd bench: out of memory\n");
    goto done;
  }
  for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
    long nt;
    if (camd_cli_parse_long(tok, &nt) || nt < 1 || nt > 256) {
      fprintf(stderr, "camd bench: bad thread count '%s' in --threads\n", tok);
      free(list);
      goto done;
    }
    camd_blas_set_threads((int)nt);
    if (camd_session_set_threads(s, (int)nt, &err)) {
      fprintf(stderr, "camd bench: %s\n", err.message);
      free(list);
      goto done;
    }
    camd_forward_opts fwd;
    camd_forward_opts_init(&fwd);
    for (int i = 0; i < warmup; i++) camd_session_forward(s, batch, input, &fwd, &err);
    for (int i = 0; i < runs; i++) {
      uint64_t t0 = camd_now_ns();
      if (camd_session_forward(s, batch, input, &fwd, &err)) {
        fprintf(stderr, "camd bench: %s\n", err.message);
        free(list);
        goto done;
      }
      times[i] = (double)(camd_now_ns() - t0) / 1e6;
    }
    double fwd_ms = median(times, runs);
    if (profile && print_profile(m, s, batch, input, runs, (int)nt, &err)) {
      fprintf(stderr, "camd bench: %s\n", err.message);
      free(list);
      goto done;
    }
    const float *out = camd_session_value(s, camd_model_output(m, 0), NULL);
    if (dump) {
      FILE *f = fopen(dump, "wb");
      if (!f || fwrite(out, sizeof(float), out_count, f) != out_count) {
        fprintf(stderr, "camd bench: cannot write '%s'\n", dump);
        if (f) fclose(f);
        free(list);
        goto done;
      }
      fclose(f);
      dump = NULL;
    }
    /* Seed: the top class of each item. */
    size_t per_out = out_count / (size_t)batch;
    memset(seedv, 0, out_count * sizeof(float));
    for (int b = 0; b < batch; b++) {
      size_t best = 0;
      for (size_t k = 1; k < per_out; k++) {
        if (out[b * per_out + k] > out[b * per_out + best]) best = k;
      }
      seedv[b * per_out + best] = 1.0f;
    }
    double fb_ms = NAN, bwd_ms = NAN;
    if (layer_id >= 0) {
      camd_forward_opts gopt;
      camd_forward_opts_init(&gopt);
      gopt.grad_to = layer_id;
      double *btimes = malloc(sizeof(double) * (size_t)runs);
      if (!btimes) {
        free(list);
        goto done;
      }
      for (int i = 0; i < warmup + runs; i++) {
        uint64_t t0 = camd_now_ns();
        if (camd_session_forward(s, batch, input, &gopt, &err)) {
          fprintf(stderr, "camd bench: %s\n", err.message);
          free(btimes);
          free(list);
          goto done;
        }
        uint64_t t1 = camd_now_ns();
        if (camd_session_backward(s, camd_model_output(m, 0), seedv, &err)) {
          fprintf(stderr, "camd bench: %s\n", err.message);
          free(btimes);
          free(list);
          goto done;
        }
        uint64_t t2 = camd_now_ns();
        if (i >= warmup) {
          times[i - warmup] = (double)(t2 - t0) / 1e6;
          btimes[i - warmup] = (double)(t2 - t1) / 1e6;
        }
      }
      fb_ms = median(times, runs);
      bwd_ms = median(btimes, runs);
      free(btimes);
    }
    printf(
        "{\"model\": \"%s\", \"threads\": %ld, \"batch\": %d, \"runs\": %d, "
        "\"forward_ms_median\": %.3f, \"forward_backward_ms_median\": %.3f, "
        "\"backward_ms_median\": %.3f, \"layer\": \"%s\", \"session_mib\": %.1f}\n",
        model_path, nt, batch, runs, fwd_ms, fb_ms, bwd_ms, layer_id >= 0 ? layer_info.name : "",
        (double)camd_session_bytes(s) / 1048576.0);
    fflush(stdout);
  }
  free(list);
  rc = 0;
done:
  free(input);
  free(seedv);
  free(times);
  camd_session_destroy(s);
  camd_model_release(m);
  return rc;
}
