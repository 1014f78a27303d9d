/* main.c: the `cnf` command-line tool: global options and dispatch.
 *
 *   cnf [--threads N] <command> [options]
 *     commands: init logp sample grid train eval gradcheck plot toy pde integrate compare
 *   cnf --help | --version
 *
 * The commands live in commands.c, the option parser in args.c; only this
 * file's main returns an exit status to the shell (docs/cli.md). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_mpi.h"
#include "cnf.h"

typedef struct command {
  const char *name;
  int (*run)(int argc, char **argv, size_t threads);
  const char *about;
} command;

static const command commands[] = {
    {"init", cnf__cli_init, "create a flow with random parameters and save it"},
    {"logp", cnf__cli_logp, "log-density of every row of a CSV file"},
    {"sample", cnf__cli_sample, "draw samples with their log-densities"},
    {"grid", cnf__cli_grid, "log-density of a 2-D model on a square grid"},
    {"train", cnf__cli_train, "train a flow by maximum likelihood (adjoint + Adam)"},
    {"eval", cnf__cli_eval, "mean negative log-likelihood of a CSV file"},
    {"gradcheck", cnf__cli_gradcheck, "adjoint gradient against finite differences"},
    {"plot", cnf__cli_plot, "density heat map (2-D) or pairwise scatter plots as PNG"},
    {"toy", cnf__cli_toy, "samples of one of FFJORD's ten 2-D toy sets"},
    {"pde", cnf__cli_pde, "a PDE benchmark against its closed form (training-free)"},
    {"integrate", cnf__cli_integrate, "integral over [0, 1]^n by importance sampling with a flow"},
    {"compare", cnf__cli_compare, "train several flow types on the same data and compare them"},
};

static void print_help(FILE *fp) {
  fprintf(fp,
          "usage: cnf [--threads N] <command> [options]\n"
          "       cnf --help | --version\n\n"
          "Continuous normalizing flows (FFJORD) integrated with SUNDIALS CVODE.\n\n"
          "commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].about);
  fprintf(fp,
          "\nglobal options:\n"
          "  --threads N   threads splitting the batch (default: the cores; results are\n"
          "                reproducible for a given N)\n"
          "  --help        print this help and exit\n"
          "  --version     print the version and exit\n\n"
          "'cnf <command> --help' describes a command.  Exit status: 0 success, 2 bad input\n"
          "or usage, 3 solver failure, 1 any other failure.\n");
}

int main(int argc, char **argv) {
  cnf_gsl_errors_off(); /* a failed GSL allocation is an error message, not an abort */
  cnf__cli_mpi_init(&argc, &argv); /* under mpirun: ranks, docs/cli.md */
  size_t threads = 0;
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++) {
    const char *w = argv[i];
    if (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0) {
      print_help(stdout);
      return CNF_CLI_OK;
    }
    if (strcmp(w, "--version") == 0) {
      printf("cnf %s\n", CNF_VERSION_STRING);
      return CNF_CLI_OK;
    }
    const char *v = NULL;
    if (strcmp(w, "--threads") == 0) {
      if (i + 1 >= argc) {
        cnf__cli_error(NULL, "option --threads needs a value (N)");
        return CNF_CLI_EUSAGE;
      }
      v = argv[++i];
    } else if (strncmp(w, "--threads=", 10) == 0) {
      v = w + 10;
    } else {
      cnf__cli_error(NULL, "unknown option '%s' (see 'cnf --help')", w);
      return CNF_CLI_EUSAGE;
    }
    if (threads != 0) {
      cnf__cli_error(NULL, "option --threads given more than once");
      return CNF_CLI_EUSAGE;
    }
    if (cnf__cli_parse_threads(v, &threads) != 0) {
      cnf__cli_error(NULL, "--threads: expected a whole number from 1 to 64, found '%s'", v);
      return CNF_CLI_EUSAGE;
    }
  }
  if (i >= argc) {
    print_help(stderr);
    return CNF_CLI_EUSAGE;
  }
  for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++)
    if (strcmp(argv[i], commands[k].name) == 0)
      return commands[k].run(argc - i - 1, argv + i + 1, threads);
  cnf__cli_error(NULL, "unknown command '%s' (see 'cnf --help')", argv[i]);
  return CNF_CLI_EUSAGE;
}
