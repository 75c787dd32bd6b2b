/* `camd serve`: loads the configuration (file, CAMD_* environment, flags) and runs the server. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "camd/server.h"
#include "cli/cli.h"

int camd_cli_serve(int argc, char **argv) {
  camd_server_config *cfg = malloc(sizeof(*cfg));
  if (!cfg) {
    fprintf(stderr, "camd serve: out of memory\n");
    return 1;
  }
  camd_server_config_init(cfg);
  camd_error err = {0};
  int rc = camd_server_config_load(cfg, argc, argv, &err);
  if (rc == 1) {
    camd_server_config_free(cfg);
    free(cfg);
    return 0;
  }
  if (rc) {
    fprintf(stderr, "camd serve: configuration error: %s\n", err.message);
    camd_server_config_free(cfg);
    free(cfg);
    return 2;
  }
  rc = camd_server_run(cfg, &err);
  if (rc) fprintf(stderr, "camd serve: startup failed: %s\n", err.message);
  camd_server_config_free(cfg);
  free(cfg);
  return rc ? 1 : 0;
}
