/* cli.h: internals of the `cnf` command-line tool: exit statuses, the
 * table-driven option parser (args.c) and the commands (commands.c).
 *
 * The tool is a thin client of include/cnf.h: it parses options, reads and
 * writes files through the library, and maps library status codes to exit
 * statuses.  It holds no numerics of its own. */
#ifndef CNF_CLI_H
#define CNF_CLI_H

#include <stddef.h>
#include <stdint.h>

/* Exit statuses: a contract with scripts (docs/cli.md). */
enum {
  CNF_CLI_OK = 0,     /* success */
  CNF_CLI_EFAIL = 1,  /* any other failure, e.g. the output cannot be written */
  CNF_CLI_EUSAGE = 2, /* bad input or usage: options, CSV, model file */
  CNF_CLI_ESOLVER = 3 /* the ODE solver gave up (cnf_is_solver_error) */
};

/* ---- options ---------------------------------------------------------- */

typedef enum cnf_cli_kind {
  CNF_CLI_FLAG,  /* no value; dest is int, set to 1 */
  CNF_CLI_STR,   /* dest is const char *, pointing into argv */
  CNF_CLI_POS,   /* dest is double, finite and > 0 */
  CNF_CLI_SIZE,  /* dest is size_t in [min, max], decimal digits only */
  CNF_CLI_LONG,  /* dest is long in [min, max], decimal digits only */
  CNF_CLI_U64,   /* dest is uint64_t, decimal digits only */
  CNF_CLI_CHOICE /* dest as conv writes it; conv returns 0 for a known name */
} cnf_cli_kind;

/* One row of an option table.  Tables end with a row whose name is NULL. */
typedef struct cnf_cli_opt {
  const char *name; /* long name without "--", e.g. "rtol" */
  char short_name;  /* "-n" style alias, or 0 */
  cnf_cli_kind kind;
  void *dest;                             /* where the value goes (see cnf_cli_kind) */
  size_t min, max;                        /* bounds for CNF_CLI_SIZE and CNF_CLI_LONG */
  int (*conv)(const char *s, void *dest); /* CNF_CLI_CHOICE only */
  int required;                           /* 1: the command fails without it */
  const char *meta;                       /* value placeholder in the usage text, e.g. "R" */
  const char *help;                       /* one line, including the default */
} cnf_cli_opt;

/* A command's usage text: a synopsis, a paragraph and the table. */
typedef struct cnf_cli_usage {
  const char *synopsis; /* e.g. "cnf logp --model MODEL --in X.csv [options]" */
  const char *about;    /* what the command does and writes */
} cnf_cli_usage;

/* Parse argv[0..argc) (the words after the command name) against opts.
 * Accepts "--name value", "--name=value" and "-c value".  Every option at
 * most once; no positional words.  Returns CNF_CLI_OK, or CNF_CLI_EUSAGE after
 * printing "cnf <cmd>: <why>" to stderr.  *help is set when --help or -h
 * was given; parsing stops there and the caller prints the usage. */
int cnf__cli_parse(const char *cmd, const cnf_cli_opt *opts, int argc, char **argv, int *help);

/* Print the usage of a command to stdout, generated from the table. */
void cnf__cli_print_usage(const cnf_cli_usage *u, const cnf_cli_opt *opts);

/* Print "cnf <cmd>: <message>" to stderr (printf-formatted). */
void cnf__cli_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* ---- commands ---------------------------------------------------------- */

/* Each command takes the words after its name and the thread count given
 * before it (0: none given), and returns an exit status. */
int cnf__cli_init(int argc, char **argv, size_t threads);
int cnf__cli_logp(int argc, char **argv, size_t threads);
int cnf__cli_sample(int argc, char **argv, size_t threads);
int cnf__cli_grid(int argc, char **argv, size_t threads);

/* Parse a thread count for the global --threads: 1..1024. */
int cnf__cli_parse_threads(const char *s, size_t *out);

#endif /* CNF_CLI_H */
