/* Engine-private: the load-time pass list (passes.c). */
#ifndef CAMD_ENGINE_PASSES_H
#define CAMD_ENGINE_PASSES_H

#include "engine/graph_internal.h"

/* Runs every load-time pass in order on g (before it is frozen); 0 or the first failure. */
int camd__graph_run_passes(camd_graph *g, camd_error *err);

#endif
