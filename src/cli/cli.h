/* cli.h: internals of the `cnf` command-line tool: exit statuses, the
 * table-driven option parser (args.c) and the commands (commands.c).
 *
 * The tool is a thin client of the public headers (cnf_model.h above
 * all): it parses options, reads and writes files through the library,
 * prints, and maps library status codes to exit statuses.  It holds no
 * numerics and no loops over samples, parameters or steps of its own. */
#ifndef CNF_CLI_H
#define CNF_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "cnf.h"
#include "cnf_model.h"

/* Exit statuses: a contract with scripts (docs/cli.md). */
enum {
  CNF_CLI_OK = 0,     /* success */
  CNF_CLI_EFAIL = 1,  /* any other failure, e.g. the output cannot be written */
  CNF_CLI_EUSAGE = 2, /* bad input or usage: options, CSV, model file */
  CNF_CLI_ESOLVER = 3 /* the ODE solver gave up (cnf_is_solver_error), or a
                         result is not finite (CNF_ENONFINITE) */
};

/* ---- options ---------------------------------------------------------- */

typedef enum cnf_cli_kind {
  CNF_CLI_FLAG,   /* no value; dest is int, set to 1 */
  CNF_CLI_STR,    /* dest is const char *, pointing into argv */
  CNF_CLI_POS,    /* dest is double, finite and > 0 */
  CNF_CLI_NONNEG, /* dest is double, finite and >= 0 */
  CNF_CLI_SIZE,   /* dest is size_t in [min, max], decimal digits only */
  CNF_CLI_LONG,   /* dest is long in [min, max], decimal digits only */
  CNF_CLI_U64,    /* dest is uint64_t, decimal digits only */
  CNF_CLI_CHOICE  /* dest as conv writes it; conv returns 0 for a known name */
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

/* ---- shared by the commands ---------------------------------------------- */

/* Largest output we try to allocate (bytes): keeps absurd -n or --size
 * values a clear usage error instead of an allocation failure. */
#define CNF_CLI_MAX_BYTES ((size_t)1 << 38)

/* Everything any command can be given; each command's table points into
 * one of these. */
typedef struct run_args {
  const char *model, *in, *out, *hidden, *flow;
  cnf_options opt;
  cnf_layer layer;
  cnf_act act;
  uint64_t seed;
  size_t dim, blocks, n, size, threads;
  double time, range;
  int verbose;
  /* training and checks (train.c) */
  const char *data, *val, *resume, *name, *init;
  cnf_objective objective;
  double fm_sigma;
  cnf_train_options train;
  size_t iters, minibatch, save_every, log_every, val_every, params, dims, test_n;
  int standardize, fixed_time, no_seminorm;
  double step, threshold;
} run_args;

void cnf__cli_args_default(run_args *a);
int cnf__cli_conv_trace(const char *s, void *d);
int cnf__cli_conv_method(const char *s, void *d);
int cnf__cli_conv_layer(const char *s, void *d);
int cnf__cli_conv_act(const char *s, void *d);
int cnf__cli_conv_adjoint(const char *s, void *d);
int cnf__cli_conv_objective(const char *s, void *d);
static inline int cnf__cli_conv_precision(const char *s, void *d) {
  return cnf_precision_parse(s, (cnf_precision *)d);
}

#define ROW(name, sh, kind, dest, min, max, conv, req, meta, help) \
  { name, sh, kind, dest, min, max, conv, req, meta, help }
#define END_ROW ROW(NULL, 0, CNF_CLI_FLAG, NULL, 0, 0, NULL, 0, NULL, NULL)
#define LMAX ((size_t)LONG_MAX)

/* The solver rows shared by logp, sample and grid. */
// clang-format off
/* The solver rows shared by the commands that integrate, in pieces so a
 * command with other defaults (train, eval, gradcheck) says so in its
 * usage; SOLVER_ROWS is the usual set. */
#define TRACE_ROW(a, dflt)                                                                         \
  ROW("trace", 0, CNF_CLI_CHOICE, &(a).opt.trace, 0, 0, cnf__cli_conv_trace, 0,                    \
      "exact|gauss|rademacher",                                                                    \
      "trace of df/dz: exact, or Hutchinson with Gaussian or Rademacher probes (" dflt ")")
#define TOL_ROWS(a, RT, AT, ST)                                                                     \
  ROW("rtol", 0, CNF_CLI_POS, &(a).opt.rtol, 0, 0, NULL, 0, "R", "relative tolerance (" RT ")"),   \
  ROW("atol", 0, CNF_CLI_POS, &(a).opt.atol, 0, 0, NULL, 0, "A",                                   \
      "absolute tolerance on z (" AT ")"),                                                         \
  ROW("atol-logp", 0, CNF_CLI_POS, &(a).opt.atol_logp, 0, 0, NULL, 0, "A",                         \
      "absolute tolerance on log p (= --atol)"),                                                   \
  ROW("max-steps", 0, CNF_CLI_LONG, &(a).opt.max_steps, 1, LMAX, NULL, 0, "N",                     \
      "solver steps per solve before giving up (" ST ")")
#define RUN_ROWS(a)                                                                                \
  ROW("probes", 0, CNF_CLI_SIZE, &(a).opt.probes, 1, 100000, NULL, 0, "K",                         \
      "Hutchinson probes per sample (1)"),                                                         \
  ROW("method", 0, CNF_CLI_CHOICE, &(a).opt.method, 0, 0, cnf__cli_conv_method, 0, "adams|bdf",    \
      "CVODE method: Adams + fixed point, or BDF + SPGMR (adams)"),                                \
  ROW("verbose", 0, CNF_CLI_FLAG, &(a).verbose, 0, 0, NULL, 0, "",                                 \
      "print options, solver statistics and wall time to stderr"),                                 \
  ROW("threads", 0, CNF_CLI_SIZE, &(a).threads, 1, 64, NULL, 0, "N",                               \
      "threads splitting the batch (the cores; also accepted before the command)"),                \
  ROW("precision", 0, CNF_CLI_CHOICE, &(a).opt.precision, 0, 0, cnf__cli_conv_precision, 0,        \
      "double|single", "network arithmetic: float64, or float32 GEMMs and activations (double)")
#define BATCH_ROW(a, dflt)                                                                         \
  ROW("batch", 0, CNF_CLI_SIZE, &(a).opt.batch, 1, SIZE_MAX, NULL, 0, "B",                         \
      "rows integrated as one ODE system (" dflt ")")
#define SOLVER_ROWS(a)                                                                             \
  TRACE_ROW(a, "exact"), TOL_ROWS(a, "1e-5", "1e-5", "20000"), RUN_ROWS(a), BATCH_ROW(a, "all rows")
// clang-format on

/* Print the library's message for status rc and return the exit status
 * (solver failure 3, bad input 2, other 1).  reading: the failure concerns
 * an input file, so I/O errors are bad input. */
int cnf__cli_lib_fail(const char *cmd, cnf_ctx *ctx, int rc, int reading);
/* rows * cols doubles (malloc), or NULL with a message and *status set. */
double *cnf__cli_alloc(const char *cmd, size_t rows, size_t cols, const char *what, int *status);
double cnf__cli_now(void);
/* The --verbose report of a solve, "name value" per line, to stderr. */
void cnf__cli_report(const run_args *a, size_t rows, const cnf_stats *st, double wall);
/* Create the context and load the model (any kind: the file says which),
 * with the run's threads; prints and returns an exit status on failure. */
int cnf__cli_open_model(const char *cmd, const char *path, cnf_ctx **ctx, cnf_model **m);
/* 1 if name is one of the toy sets (cnf_toy_names). */
int cnf__cli_is_toy(const char *name);
/* "swissroll, circles, ..." into buf (n bytes). */
void cnf__cli_toy_list(char *buf, size_t n);
/* Data from a toy name (n samples of the stream ("data", 0) of seed) or
 * a CSV file (D columns, 0: any): *x (malloc), rows and columns.  Returns
 * an exit status. */
int cnf__cli_load_data(const char *cmd, cnf_ctx *ctx, const char *spec, size_t n, uint64_t seed,
                       size_t D, double **x, size_t *N, size_t *cols);
/* The --flow value: "cnf" or a preset (exit status 2 with the list
 * otherwise); -1 to go on. */
int cnf__cli_check_flow(const char *cmd, const char *flow);
/* The model a spec describes, from run_args (--flow, --dim or D, --hidden,
 * --blocks, --layer, --act, --time) and seed; an exit status. */
int cnf__cli_create_model(const char *cmd, cnf_ctx *ctx, const run_args *a, size_t D,
                          cnf_model **m);

/* The run's threads (--threads, else the cores), settled by cnf__cli_begin. */
size_t cnf__cli_threads(void);
/* Give the model the run's threads (--threads, else the cores); status. */
int cnf__cli_use_threads(const char *cmd, cnf_model *m);
int cnf__cli_write_table(const char *cmd, cnf_ctx *ctx, const char *path, const char *const *names,
                         size_t rows, size_t cols, const double *data);
/* The start of every command: parse argv against opts, print the usage on
 * --help, settle the run's threads (the command's --threads, else the global
 * one, else the cores; OpenBLAS gets one) and fill *local_threads with the
 * count given.  Returns an exit
 * status when the command is done (help, bad usage), -1 to go on. */
int cnf__cli_begin(const char *cmd, const cnf_cli_opt *opts, const cnf_cli_usage *u, int argc,
                   char **argv, size_t *local_threads, size_t global_threads);
/* Read a CSV of points whose column count must be D (0: any) into *x
 * (release with cnf_free); an exit status, with a message naming the file,
 * the line and `whose` count D is ("the model's dimension") on failure. */
int cnf__cli_read_points(const char *cmd, cnf_ctx *ctx, const char *path, size_t D,
                         const char *whose, double **x, size_t *rows, size_t *cols);
/* Column names x1..xD then `last`, in one allocation (free the array). */
const char **cnf__cli_column_names(size_t D, const char *last);

/* ---- commands ---------------------------------------------------------- */

/* Each command takes the words after its name and the thread count given
 * before it (0: none given), and returns an exit status. */
int cnf__cli_init(int argc, char **argv, size_t threads);
int cnf__cli_logp(int argc, char **argv, size_t threads);
int cnf__cli_sample(int argc, char **argv, size_t threads);
int cnf__cli_grid(int argc, char **argv, size_t threads);
int cnf__cli_toy(int argc, char **argv, size_t threads);
int cnf__cli_train(int argc, char **argv, size_t threads);
int cnf__cli_eval(int argc, char **argv, size_t threads);
int cnf__cli_gradcheck(int argc, char **argv, size_t threads);
int cnf__cli_plot(int argc, char **argv, size_t threads);
/* cnf plot --kind paths|times (plot_time.c): draw the trajectories of n
 * points (the first n of data (nd, D), or a grid over [-L, L]^2 for 2-D,
 * or samples) or a strip of `times` heat maps of the density at t = 0 ..
 * S, into a->out; po carries the labels.  Returns an exit status. */
int cnf__cli_plot_time(const char *cmd, cnf_ctx *ctx, cnf_model *m, const run_args *a,
                       cnf_plot_options *po, const char *kind, size_t times, const double *data,
                       size_t nd, const char *model);
int cnf__cli_pde(int argc, char **argv, size_t threads);
int cnf__cli_integrate(int argc, char **argv, size_t threads);

int cnf__cli_compare(int argc, char **argv, size_t threads);

/* The options that describe a new model (init, train). */
#define MODEL_ROWS(a)                                                                              \
  ROW("flow", 0, CNF_CLI_STR, &(a).flow, 0, 0, NULL, 0, "FLOW",                                    \
      "cnf (continuous), realnvp, nice, maf, iaf, planar, radial, affine, elementwise (cnf)"),     \
  ROW("hidden", 0, CNF_CLI_STR, &(a).hidden, 0, 0, NULL, 0, "H1-H2-...",                           \
      "hidden widths: cnf 64-64-64 ('0' for none); the discrete flows' conditioners 64-64"),       \
  ROW("blocks", 0, CNF_CLI_SIZE, &(a).blocks, 1, 1000, NULL, 0, "K",                               \
      "blocks (cnf 1; realnvp, nice, maf, iaf 4; planar, radial 16; affine 1; elementwise 2)"),    \
  ROW("layer", 0, CNF_CLI_CHOICE, &(a).layer, 0, 0, cnf__cli_conv_layer, 0,                        \
      "concatsquash|concat|ignore", "cnf: time conditioning of each layer (concatsquash)"),        \
  ROW("act", 0, CNF_CLI_CHOICE, &(a).act, 0, 0, cnf__cli_conv_act, 0, "tanh|softplus",             \
      "cnf: activation between layers (tanh)"),                                                    \
  ROW("time", 0, CNF_CLI_POS, &(a).time, 0, 0, NULL, 0, "T", "cnf: end time of every block (0.5)")

/* Parse a thread count for the global --threads: 1..1024. */
int cnf__cli_parse_threads(const char *s, size_t *out);

#endif /* CNF_CLI_H */
