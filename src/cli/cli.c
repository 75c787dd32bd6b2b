/* CLI dispatcher: `camd serve | explain | inspect | bench`, with --help for each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "camd/core.h"
#include "cli/cli.h"

static void usage(FILE *f) {
  fprintf(f,
          "camd %s — explain image classifiers (CAM, Grad-CAM and family)\n\n"
          "usage: camd <command> [options]\n\n"
          "commands:\n"
          "  serve     run the HTTP service\n"
          "  explain   explain one image from the command line\n"
          "  inspect   describe an ONNX model and its CAM layers\n"
          "  bench     measure forward and backward latency of a model\n\n"
          "Run `camd <command> --help` for the options of a command.\n",
          CAMD_VERSION);
}

typedef struct camd__command {
  const char *name;
  int (*fn)(int argc, char **argv);
} camd__command;

static const camd__command commands[] = {
    {"bench", camd_cli_bench},
    {"explain", camd_cli_explain},
    {"inspect", camd_cli_inspect},
    {"serve", camd_cli_serve},
};

int camd_cli_main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) {
    printf("camd %s\n", CAMD_VERSION);
    return 0;
  }
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
    if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
  }
  fprintf(stderr, "camd: unknown command '%s'; commands are: serve, explain, inspect, bench\n",
          argv[1]);
  return 2;
}
