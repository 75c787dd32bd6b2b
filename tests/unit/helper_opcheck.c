/* Operator checker: engine forward vs a double reference, backward vs finite differences. */
#include "opcheck.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"

camd_attr opcheck_attr_int(const char *name, int64_t v) {
  camd_attr a;
  memset(&a, 0, sizeof(a));
  a.name = name;
  a.type = CAMD_ATTR_INT;
  a.i = v;
  return a;
}

camd_attr opcheck_attr_float(const char *name, float v) {
  camd_attr a;
  memset(&a, 0, sizeof(a));
  a.name = name;
  a.type = CAMD_ATTR_FLOAT;
  a.f = v;
  return a;
}

camd_attr opcheck_attr_ints(const char *name, const int64_t *v, size_t n) {
  camd_attr a;
  memset(&a, 0, sizeof(a));
  a.name = name;
  a.type = CAMD_ATTR_INTS;
  a.ints = v;
  a.n = n;
  return a;
}

camd_attr opcheck_attr_string(const char *name, const char *s) {
  camd_attr a;
  memset(&a, 0, sizeof(a));
  a.name = name;
  a.type = CAMD_ATTR_STRING;
  a.s = s;
  return a;
}

camd_shape opcheck_shape(int ndim, ...) {
  camd_shape s;
  memset(&s, 0, sizeof(s));
  s.ndim = ndim;
  va_list ap;
  va_start(ap, ndim);
  for (int i = 0; i < ndim && i < CAMD_MAX_DIMS; i++) s.dims[i] = va_arg(ap, int);
  va_end(ap);
  return s;
}

void opcheck_unravel(size_t f, const camd_shape *s, int64_t *c) {
  for (int d = s->ndim - 1; d >= 0; d--) {
    c[d] = (int64_t)(f % (size_t)s->dims[d]);
    f /= (size_t)s->dims[d];
  }
}

size_t opcheck_bidx(const camd_shape *s, int out_ndim, const int64_t *oidx) {
  size_t off = 0;
  for (int d = 0; d < s->ndim; d++) {
    int k = d + (out_ndim - s->ndim);
    int64_t i = s->dims[d] == 1 ? 0 : oidx[k];
    off = off * (size_t)s->dims[d] + (size_t)i;
  }
  return off;
}

typedef struct checker {
  const opcheck_spec *spec;
  camd_model *model;
  int batch;
  int in_ids[OPCHECK_MAX_IO];
  int out_ids[OPCHECK_MAX_IO];
  int batched_inputs[OPCHECK_MAX_IO]; /* spec input index per model input */
  int n_batched;
  float *fdata[OPCHECK_MAX_IO];  /* float data of every float input (batched or const) */
  double *ddata[OPCHECK_MAX_IO]; /* double copies for the reference */
  double *ref_out[OPCHECK_MAX_IO];
  camd_shape out_shapes[OPCHECK_MAX_IO];
  size_t in_count[OPCHECK_MAX_IO];
  size_t out_count[OPCHECK_MAX_IO];
} checker;

static const char *label(const opcheck_spec *s) {
  return s->label ? s->label : s->op_type;
}

static int build(checker *c) {
  const opcheck_spec *s = c->spec;
  camd_error err = {0};
  camd_graph *g = camd_graph_new();
  camd_rng rng;
  camd_rng_seed(&rng, s->seed ? s->seed : 12345);
  c->batch = 0;
  for (int i = 0; i < s->n_in; i++) {
    c->in_ids[i] = -1;
    c->in_count[i] = camd_shape_count(&s->in_shapes[i]);
    if (s->in_absent & (1u << i)) continue;
    if (s->int_inputs[i]) {
      size_t n = c->in_count[i];
      int64_t *d = malloc(sizeof(int64_t) * (n ? n : 1));
      memcpy(d, s->int_inputs[i], sizeof(int64_t) * n);
      char name[32];
      snprintf(name, sizeof(name), "int%d", i);
      c->in_ids[i] = camd_graph_add_constant(g, name, CAMD_INT64, &s->in_shapes[i], d, &err);
      if (c->in_ids[i] < 0) goto fail;
      continue;
    }
    size_t n = c->in_count[i];
    c->fdata[i] = malloc(sizeof(float) * (n ? n : 1));
    c->ddata[i] = malloc(sizeof(double) * (n ? n : 1));
    for (size_t e = 0; e < n; e++) {
      float v =
          s->float_values[i] ? s->float_values[i][e] : (float)(camd_rng_uniform(&rng) * 4.0 - 2.0);
      c->fdata[i][e] = v;
      c->ddata[i][e] = v;
    }
    char name[32];
    snprintf(name, sizeof(name), "in%d", i);
    if (s->in_const & (1u << i)) {
      float *d = malloc(sizeof(float) * (n ? n : 1));
      memcpy(d, c->fdata[i], sizeof(float) * n);
      c->in_ids[i] = camd_graph_add_constant(g, name, CAMD_FLOAT32, &s->in_shapes[i], d, &err);
    } else {
      int b = (int)s->in_shapes[i].dims[0];
      if (c->batch && b != c->batch) {
        fprintf(stderr, "[%s] batched inputs disagree on the batch\n", label(s));
        camd_graph_free(g);
        return 1;
      }
      c->batch = b;
      c->in_ids[i] = camd_graph_add_input(g, name, &s->in_shapes[i], &err);
      c->batched_inputs[c->n_batched++] = i;
    }
    if (c->in_ids[i] < 0) goto fail;
  }
  if (!c->batch) {
    fprintf(stderr, "[%s] the spec has no batched input\n", label(s));
    camd_graph_free(g);
    return 1;
  }
  const char *out_names[OPCHECK_MAX_IO];
  char names[OPCHECK_MAX_IO][16];
  for (int j = 0; j < s->n_out; j++) {
    snprintf(names[j], sizeof(names[j]), "out%d", j);
    out_names[j] = names[j];
  }
  if (camd_graph_add_node(g, s->op_type, "node", s->opset, s->n_in, c->in_ids, s->n_out, out_names,
                          s->attrs, s->n_attrs, c->out_ids, &err)) {
    goto fail;
  }
  for (int j = 0; j < s->n_out; j++) {
    if (camd_graph_mark_output(g, c->out_ids[j], &err)) goto fail;
  }
  if (camd_graph_finalize(g, NULL, &c->model, &err)) {
    fprintf(stderr, "[%s] finalize: %s\n", label(s), err.message);
    return 1;
  }
  return 0;
fail:
  fprintf(stderr, "[%s] graph: %s\n", label(s), err.message);
  camd_graph_free(g);
  return 1;
}

static void run_ref(checker *c, double **outs) {
  const opcheck_spec *s = c->spec;
  const double *ins[OPCHECK_MAX_IO];
  for (int i = 0; i < s->n_in; i++) ins[i] = c->ddata[i];
  s->ref(s->ref_ctx, ins, s->in_shapes, outs, c->out_shapes);
}

static int forward(checker *c, camd_session *ses, int grad_to, camd_error *err) {
  const float *inputs[OPCHECK_MAX_IO];
  for (int k = 0; k < c->n_batched; k++) inputs[k] = c->fdata[c->batched_inputs[k]];
  camd_forward_opts o;
  camd_forward_opts_init(&o);
  o.grad_to = grad_to;
  return camd_session_forward_multi(ses, c->batch, inputs, &o, err);
}

static double max_abs(const double *a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
  return m;
}

static int check_forward(checker *c, camd_session *ses) {
  const opcheck_spec *s = c->spec;
  camd_error err = {0};
  int fails = 0;
  if (forward(c, ses, -1, &err)) {
    fprintf(stderr, "[%s] forward: %s\n", label(s), err.message);
    return 1;
  }
  for (int j = 0; j < s->n_out; j++) {
    const float *o = camd_session_value(ses, c->out_ids[j], &c->out_shapes[j]);
    c->out_count[j] = camd_shape_count(&c->out_shapes[j]);
    c->ref_out[j] = calloc(c->out_count[j] + 1, sizeof(double));
    if (!o) {
      fprintf(stderr, "[%s] output %d not readable\n", label(s), j);
      fails++;
    }
  }
  if (fails || !s->ref) return fails;
  run_ref(c, c->ref_out);
  double tol = s->fwd_tol > 0 ? s->fwd_tol : 1e-5;
  for (int j = 0; j < s->n_out; j++) {
    const float *o = camd_session_value(ses, c->out_ids[j], NULL);
    double scale = fmax(1.0, max_abs(c->ref_out[j], c->out_count[j]));
    double worst = 0;
    size_t worst_i = 0;
    for (size_t e = 0; e < c->out_count[j]; e++) {
      double d = fabs((double)o[e] - c->ref_out[j][e]);
      if (!(d <= worst)) {
        worst = d;
        worst_i = e;
      }
    }
    if (!(worst <= tol * scale)) {
      char sh[128];
      camd_shape_format(&c->out_shapes[j], sh, sizeof(sh));
      fprintf(stderr, "[%s] forward output %d %s: max |diff| %.3g at %zu (got %.7g, ref %.7g)\n",
              label(s), j, sh, worst, worst_i, (double)o[worst_i], c->ref_out[j][worst_i]);
      fails++;
    }
  }
  return fails;
}

static int check_gradient(checker *c, camd_session *ses, int in_idx, int out_idx) {
  const opcheck_spec *s = c->spec;
  camd_error err = {0};
  int fails = 0;
  size_t n_out = c->out_count[out_idx];
  size_t n_in = c->in_count[in_idx];
  camd_rng rng;
  camd_rng_seed(&rng, 777 + (uint64_t)in_idx * 31 + (uint64_t)out_idx);
  float *seed = malloc(sizeof(float) * (n_out + 1));
  for (size_t e = 0; e < n_out; e++) seed[e] = (float)(camd_rng_uniform(&rng) * 2.0 - 1.0);
  if (forward(c, ses, c->in_ids[in_idx], &err) ||
      camd_session_backward(ses, c->out_ids[out_idx], seed, &err)) {
    fprintf(stderr, "[%s] backward to input %d: %s\n", label(s), in_idx, err.message);
    free(seed);
    return 1;
  }
  const float *grad = camd_session_grad(ses, c->in_ids[in_idx], NULL);
  if (!grad) {
    fprintf(stderr, "[%s] no gradient at input %d\n", label(s), in_idx);
    free(seed);
    return 1;
  }
  double *outs_p[OPCHECK_MAX_IO], *outs_m[OPCHECK_MAX_IO];
  for (int j = 0; j < s->n_out; j++) {
    outs_p[j] = calloc(c->out_count[j] + 1, sizeof(double));
    outs_m[j] = calloc(c->out_count[j] + 1, sizeof(double));
  }
  /* Check every element for small inputs, a deterministic sample of 300 otherwise. */
  size_t n_check = n_in <= 600 ? n_in : 300;
  double *fd = malloc(sizeof(double) * (n_check + 1));
  size_t *idx = malloc(sizeof(size_t) * (n_check + 1));
  for (size_t t = 0; t < n_check; t++) {
    size_t e = n_in <= 600 ? t : (size_t)(camd_rng_next(&rng) % n_in);
    idx[t] = e;
    double x = c->ddata[in_idx][e];
    double h = 1e-6 * fmax(1.0, fabs(x));
    c->ddata[in_idx][e] = x + h;
    run_ref(c, outs_p);
    c->ddata[in_idx][e] = x - h;
    run_ref(c, outs_m);
    c->ddata[in_idx][e] = x;
    double acc = 0;
    for (size_t o = 0; o < n_out; o++)
      acc += (double)seed[o] * (outs_p[out_idx][o] - outs_m[out_idx][o]);
    fd[t] = acc / (2 * h);
  }
  double scale = fmax(1e-3, max_abs(fd, n_check));
  double tol = s->grad_tol > 0 ? s->grad_tol : 1e-3;
  double worst = 0;
  size_t worst_t = 0;
  for (size_t t = 0; t < n_check; t++) {
    double d = fabs((double)grad[idx[t]] - fd[t]);
    if (!(d <= worst)) {
      worst = d;
      worst_t = t;
    }
  }
  if (!(worst <= tol * scale)) {
    fprintf(stderr,
            "[%s] gradient d out%d / d in%d: max |diff| %.3g (scale %.3g) at element %zu: "
            "engine %.7g, finite differences %.7g\n",
            label(s), out_idx, in_idx, worst, scale, idx[worst_t], (double)grad[idx[worst_t]],
            fd[worst_t]);
    fails++;
  }
  for (int j = 0; j < s->n_out; j++) {
    free(outs_p[j]);
    free(outs_m[j]);
  }
  free(fd);
  free(idx);
  free(seed);
  return fails;
}

/* Runs each batch item alone and checks it reproduces the batched outputs. */
static int check_per_item(checker *c, camd_session *ses) {
  const opcheck_spec *s = c->spec;
  if (c->batch < 2) return 0;
  camd_session *one = NULL;
  camd_error err = {0};
  if (camd_model_max_batch(c->model) < c->batch) return 0;
  if (forward(c, ses, -1, &err)) return 1;
  float *batched[OPCHECK_MAX_IO];
  for (int j = 0; j < s->n_out; j++) {
    batched[j] = malloc(sizeof(float) * (c->out_count[j] + 1));
    memcpy(batched[j], camd_session_value(ses, c->out_ids[j], NULL),
           sizeof(float) * c->out_count[j]);
  }
  int fails = 0;
  if (camd_session_create(c->model, 1, &one, &err)) {
    fprintf(stderr, "[%s] session: %s\n", label(s), err.message);
    fails++;
  }
  for (int b = 0; one && b < c->batch && !fails; b++) {
    const float *inputs[OPCHECK_MAX_IO];
    for (int k = 0; k < c->n_batched; k++) {
      int i = c->batched_inputs[k];
      inputs[k] = c->fdata[i] + (size_t)b * (c->in_count[i] / (size_t)c->batch);
    }
    if (camd_session_forward_multi(one, 1, inputs, NULL, &err)) {
      fprintf(stderr, "[%s] per-item forward: %s\n", label(s), err.message);
      fails++;
      break;
    }
    for (int j = 0; j < s->n_out; j++) {
      size_t per = c->out_count[j] / (size_t)c->batch;
      const float *o = camd_session_value(one, c->out_ids[j], NULL);
      for (size_t e = 0; e < per; e++) {
        float want = batched[j][(size_t)b * per + e];
        if (memcmp(&o[e], &want, sizeof(float)) != 0) { /* batch-invariant: bit for bit */
          fprintf(stderr, "[%s] item %d alone differs from the batch at output %d[%zu]: %g vs %g\n",
                  label(s), b, j, e, (double)o[e], (double)want);
          fails++;
          break;
        }
      }
    }
  }
  camd_session_destroy(one);
  for (int j = 0; j < s->n_out; j++) free(batched[j]);
  return fails;
}

/* The forward at 1 thread and at 3 threads: the kernels split outputs, never sums, so the
 * outputs must be identical bit for bit. */
static int check_threads(checker *c, camd_session *ses) {
  const opcheck_spec *s = c->spec;
  camd_error err = {0};
  float *ref[OPCHECK_MAX_IO] = {0};
  int fails = 0;
  for (int pass = 0; pass < 2 && !fails; pass++) {
    if (camd_session_set_threads(ses, pass ? 3 : 1, &err) || forward(c, ses, -1, &err)) {
      fprintf(stderr, "[%s] threads: %s\n", label(s), err.message);
      fails++;
      break;
    }
    for (int j = 0; j < s->n_out && !fails; j++) {
      const float *o = camd_session_value(ses, c->out_ids[j], NULL);
      size_t bytes = sizeof(float) * c->out_count[j];
      if (!pass) {
        ref[j] = malloc(bytes + 1);
        memcpy(ref[j], o, bytes);
      } else if (memcmp(ref[j], o, bytes) != 0) {
        fprintf(stderr, "[%s] output %d differs between 1 and 3 threads\n", label(s), j);
        fails++;
      }
    }
  }
  for (int j = 0; j < OPCHECK_MAX_IO; j++) free(ref[j]);
  return fails;
}

int opcheck_run(const opcheck_spec *spec) {
  checker c;
  memset(&c, 0, sizeof(c));
  c.spec = spec;
  int fails = build(&c);
  camd_session *ses = NULL;
  camd_error err = {0};
  if (!fails && camd_session_create(c.model, c.batch, &ses, &err)) {
    fprintf(stderr, "[%s] session: %s\n", label(spec), err.message);
    fails++;
  }
  if (!fails) fails += check_forward(&c, ses);
  if (!fails && spec->ref) {
    for (int i = 0; i < spec->n_in; i++) {
      if (!(spec->grad_check & (1u << i))) continue;
      for (int j = 0; j < spec->n_out; j++) fails += check_gradient(&c, ses, i, j);
    }
  }
  if (!fails) fails += check_per_item(&c, ses);
  if (!fails) fails += check_threads(&c, ses);
  camd_session_destroy(ses);
  camd_model_release(c.model);
  for (int i = 0; i < OPCHECK_MAX_IO; i++) {
    free(c.fdata[i]);
    free(c.ddata[i]);
    free(c.ref_out[i]);
  }
  if (fails) fprintf(stderr, "[%s] %d check(s) failed\n", label(spec), fails);
  return fails;
}
