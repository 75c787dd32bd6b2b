/* CLI internals: one entry point per subcommand. */
#ifndef CAMD_CLI_H
#define CAMD_CLI_H

#include <stdbool.h>

int camd_cli_main(int argc, char **argv);
int camd_cli_bench(int argc, char **argv);
int camd_cli_inspect(int argc, char **argv);
int camd_cli_serve(int argc, char **argv);
int camd_cli_explain(int argc, char **argv);

#endif
