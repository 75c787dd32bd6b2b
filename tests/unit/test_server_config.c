/* Unit tests of the server configuration (src/server/config.c): the defaults the README documents
 * come out of the key table's default column; the file/env/flag layers and their errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "camd/server.h"
#include "testlib.h"

static void test_defaults(void) {
  camd_server_config *c = malloc(sizeof(*c));
  CHECK(c != NULL);
  if (!c) return;
  memset(c, 0x5A, sizeof(*c));
  camd_server_config_init(c);
  /* the README's "Configuration" table */
  CHECK(!strcmp(c->listen, "127.0.0.1"));
  CHECK_EQ_INT(c->port, 8080);
  CHECK_EQ_INT(c->workers, 2);
  CHECK_EQ_INT(c->io_threads, 1);
  CHECK_EQ_INT(c->blas_threads, 0);
  CHECK_EQ_INT(c->queue_length, 64);
  CHECK_EQ_INT(c->max_batch, 4);
  CHECK_EQ_INT(c->batch_window_us, 2000);
  CHECK_EQ_INT(c->max_instances, 8);
  CHECK_EQ_INT(c->max_body_bytes, 16777216);
  CHECK_EQ_INT(c->max_image_pixels, 40000000);
  CHECK_EQ_INT(c->max_image_width, 16384);
  CHECK_EQ_INT(c->max_image_height, 16384);
  CHECK_EQ_INT(c->max_header_bytes, 32768);
  CHECK_EQ_INT(c->request_timeout_s, 30);
  CHECK_EQ_INT(c->max_connections, 512);
  CHECK_EQ_INT(c->max_connections_per_ip, 64);
  CHECK_EQ_INT(c->max_option_bytes, 4096);
  CHECK_EQ_INT(c->max_options, 64);
  CHECK_EQ_INT(c->drain_timeout_s, 20);
  CHECK_EQ_INT(c->retry_after_s, 1);
  CHECK(!strcmp(c->log_level, "info"));
  CHECK(c->n_cors_origins == 0 && c->n_api_keys == 0 && c->n_models == 0);
  CHECK(!c->api_keys_file[0] && !c->default_model[0]);
  camd_server_config_free(c);
  free(c);
}

/* Flags over the environment over the defaults; bad values name their source. */
static void test_layers(void) {
  camd_server_config *c = malloc(sizeof(*c));
  CHECK(c != NULL);
  if (!c) return;
  camd_server_config_init(c);
  CHECK(chdir("/") == 0); /* no config/camd.json to pick up */
  unsetenv("CAMD_CONFIG");
  setenv("CAMD_PORT", "9000", 1);
  setenv("CAMD_WORKERS", "3", 1);
  char *argv[] = {"serve",    "--port",
                  "9100",     "--max-batch=8",
                  "--models", "[{\"name\": \"m\", \"path\": \"m.onnx\"}]",
                  NULL};
  camd_error err = {0};
  int rc = camd_server_config_load(c, 6, argv, &err);
  CHECK_MSG(rc == 0, "%s", err.message);
  CHECK_EQ_INT(c->port, 9100);
  CHECK_EQ_INT(c->workers, 3);
  CHECK_EQ_INT(c->max_batch, 8);
  CHECK(c->n_models == 1 && !strcmp(c->default_model, "m"));
  camd_server_config_free(c);

  camd_server_config_init(c);
  setenv("CAMD_PORT", " 9000", 1); /* strict numbers: no spaces */
  rc = camd_server_config_load(c, 1, argv, &err);
  CHECK_EQ_INT(rc, CAMD_E_INVALID);
  CHECK(strstr(err.message, "CAMD_PORT") && strstr(err.message, "[0, 65535]"));
  unsetenv("CAMD_PORT");
  unsetenv("CAMD_WORKERS");
  char *bad[] = {"serve", "--max-batch", "257", NULL};
  camd_server_config_init(c);
  CHECK_EQ_INT(camd_server_config_load(c, 3, bad, &err), CAMD_E_INVALID);
  CHECK(strstr(err.message, "--max-batch") && strstr(err.message, "[1, 256]"));
  camd_server_config_free(c);
  free(c);
}

CAMD_TEST_MAIN(CAMD_TEST(test_defaults), CAMD_TEST(test_layers))
