/* Einsum as a batched matrix product: the equations vision transformers export (MaxViT's
 * attention, "bghid,bghjd->bghij" and "bghij,bghjd->bghid") become MatMul, with a Transpose of
 * the second operand's last two axes when it is contracted on its last axis.
 *
 * Accepted: two operands of the same rank r >= 2, explicit output ("->"), no ellipsis, letters
 * only; the first r - 2 letters (the batch axes) are the same in both operands and the output,
 * in the same order; the last two are A = (i, k), B = (k, j) or (j, k), output (i, j) with
 * i, j, k distinct and not batch letters. Anything else stays unsupported (the load fails,
 * listing the node with every other unsupported one). The engine's MatMul and Transpose carry
 * forward and backward, so nothing here computes. */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "onnx/onnx_internal.h"

#define EINSUM_MAX_RANK 8

/* The letters of one term (spaces dropped, as ONNX allows them); -1 when a character is not a
 * letter, a letter repeats or the term is too long. */
static int term_letters(const char *s, size_t len, char *out) {
  int n = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == ' ') continue;
    if (!isalpha((unsigned char)s[i]) || n == EINSUM_MAX_RANK) return -1;
    for (int j = 0; j < n; j++) {
      if (out[j] == s[i]) return -1;
    }
    out[n++] = s[i];
  }
  return n;
}

bool camd__onnx_einsum_matmul(const char *eq, int *rank, bool *transpose_b) {
  if (!eq) return false;
  const char *comma = strchr(eq, ','), *arrow = strstr(eq, "->");
  if (!comma || !arrow || comma > arrow || strchr(comma + 1, ',')) return false;
  char a[EINSUM_MAX_RANK], b[EINSUM_MAX_RANK], o[EINSUM_MAX_RANK];
  int na = term_letters(eq, (size_t)(comma - eq), a);
  int nb = term_letters(comma + 1, (size_t)(arrow - comma - 1), b);
  int no = term_letters(arrow + 2, strlen(arrow + 2), o);
  if (na < 2 || nb != na || no != na) return false;
  const int r = na, nbatch = r - 2;
  for (int i = 0; i < nbatch; i++) {
    if (a[i] != b[i] || a[i] != o[i]) return false;
  }
  const char ai = a[r - 2], ak = a[r - 1];
  if (o[r - 2] != ai) return false;
  const char oj = o[r - 1];
  bool tb;
  if (b[r - 2] == ak && b[r - 1] == oj) {
    tb = false;
  } else if (b[r - 1] == ak && b[r - 2] == oj) {
    tb = true;
  } else {
    return false;
  }
  if (ai == ak || ai == oj || ak == oj) return false;
  for (int i = 0; i < nbatch; i++) {
    if (a[i] == ai || a[i] == ak || a[i] == oj) return false;
  }
  *rank = r;
  *transpose_b = tb;
  return true;
}

int camd__onnx_add_einsum(camd__onnx_ctx *ctx, const Onnx__NodeProto *n, const char *name,
                          const int *ids, camd_error *err) {
  char eqbuf[128] = "";
  for (size_t k = 0; k < n->n_attribute; k++) {
    const Onnx__AttributeProto *at = n->attribute[k];
    if (!at->name || strcmp(at->name, "equation") != 0 || !at->has_s) continue;
    size_t len = at->s.len < sizeof(eqbuf) - 1 ? at->s.len : sizeof(eqbuf) - 1;
    memcpy(eqbuf, at->s.data, len);
    eqbuf[len] = 0;
  }
  int rank = 0;
  bool tb = false;
  if (n->n_input != 2 || n->n_output != 1 || ids[0] < 0 || ids[1] < 0 ||
      !camd__onnx_einsum_matmul(eqbuf, &rank, &tb)) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "node '%s' (Einsum): equation '%s' is not a batched matrix product "
                          "such as 'bhid,bhjd->bhij' (two inputs, one output)",
                          name, eqbuf);
  }
  camd_shape sa, sb;
  camd_dtype da, db;
  const void *pa = NULL, *pb = NULL;
  bool ba, bb;
  int rc = camd_graph_value(ctx->g, ids[0], &sa, &da, &pa, &ba);
  if (rc == 0) rc = camd_graph_value(ctx->g, ids[1], &sb, &db, &pb, &bb);
  if (rc < 0) return rc;
  if (sa.ndim != rank || sb.ndim != rank || da != CAMD_FLOAT32 || db != CAMD_FLOAT32 || pa || pb ||
      !ba || !bb) {
    return camd_error_set(err, CAMD_E_UNSUPPORTED,
                          "node '%s' (Einsum): equation '%s' runs on two float activations of "
                          "rank %d computed from the input",
                          name, eqbuf, rank);
  }
  for (int i = 1; i < rank - 2; i++) {
    /* Equal letters mean equal sizes (ONNX broadcasts only through an ellipsis), where MatMul
     * would broadcast an axis of 1. */
    if (sa.dims[i] != sb.dims[i]) {
      return camd_error_set(err, CAMD_E_FORMAT,
                            "node '%s' (Einsum): axis %d is %lld in one operand and %lld in the "
                            "other",
                            name, i, (long long)sa.dims[i], (long long)sb.dims[i]);
    }
  }
  int in[2] = {ids[0], ids[1]};
  if (tb) {
    int64_t perm[EINSUM_MAX_RANK];
    for (int i = 0; i < rank; i++) perm[i] = i;
    perm[rank - 2] = rank - 1;
    perm[rank - 1] = rank - 2;
    camd_attr pa_attr = {.name = "perm", .type = CAMD_ATTR_INTS, .ints = perm, .n = (size_t)rank};
    char tname[300];
    snprintf(tname, sizeof(tname), "%.250s/einsum_b_transposed", n->output[0]);
    if (camd_graph_find(ctx->g, tname) >= 0) {
      return camd_error_set(err, CAMD_E_FORMAT, "node '%s' (Einsum): value name '%s' is taken",
                            name, tname);
    }
    const char *tnames[1] = {tname};
    rc = camd_graph_add_node(ctx->g, "Transpose", tname, 13, 1, &ids[1], 1, tnames, &pa_attr, 1,
                             &in[1], err);
    if (rc < 0) return rc;
  }
  int out = -1;
  rc = camd_graph_add_node(ctx->g, "MatMul", name, 13, 2, in, 1, (const char *const *)n->output,
                           NULL, 0, &out, err);
  return rc < 0 ? rc : 0;
}
