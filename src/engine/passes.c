/* Load-time passes: the ordered list of graph rewrites camd_graph_finalize runs on every model.
 *
 * A pass rewrites the graph in place before it is frozen. It must keep every named value's
 * meaning (design.md §3): a value a CAM method can name either stays computed or stays reachable
 * through a derived-value node (an op with a grad_view hook, see op.h). A pass reports how many
 * places it changed (logged at debug level) and returns 0 or a negative status; it never leaves
 * the graph half-rewritten on a status other than CAMD_E_NOMEM (the model is then not built).
 * Adding a rewrite = one function + one line in `passes` below.
 */
#include "engine/passes.h"

#include "camd/core.h"
#include "engine/dnnl.h"
#include "engine/fold_bn.h"

typedef struct camd__pass {
  const char *name;
  int (*run)(camd_graph *g, int *changed, camd_error *err);
} camd__pass;

static const camd__pass passes[] = {
    {"fold_batchnorm", camd__fold_batchnorm},
    {"onednn_convolutions", camd__conv_attach_dnnl}, /* after folding: the final weights */
};

int camd__graph_run_passes(camd_graph *g, camd_error *err) {
  for (size_t i = 0; i < sizeof(passes) / sizeof(passes[0]); i++) {
    int changed = 0;
    int rc = passes[i].run(g, &changed, err);
    if (rc) return camd_error_prefix(err, rc, "load-time pass %s: ", passes[i].name);
    camd_log(CAMD_LOG_DEBUG, "pass %s: %d rewrite(s)", passes[i].name, changed);
  }
  return 0;
}
