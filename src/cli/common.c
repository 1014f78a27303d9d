/* common.c: helpers shared by the commands of the `cnf` tool: defaults,
 * option converters, the mapping of library codes to exit statuses, output
 * tables and the --verbose report. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_mpi.h"
#include "cnf.h"

void cnf__cli_args_default(run_args *a) {
  memset(a, 0, sizeof *a);
  cnf_options_default(&a->opt);
  a->flow = "cnf";
  a->layer = CNF_LAYER_CONCATSQUASH;
  a->act = CNF_ACT_TANH;
  a->time = 0.5;
  a->range = 4.0;
  a->size = 100;
  cnf_train_options_default(&a->train);
  a->iters = 1000;
  a->minibatch = 100;
  a->save_every = 100;
  a->log_every = 100;
  a->val_every = 100;
  a->params = 200;
  a->dims = 6;
  a->step = 1e-4;
  a->threshold = 1e-4;
}

int cnf__cli_conv_trace(const char *s, void *d) {
  return cnf_trace_parse(s, (cnf_trace *)d);
}
int cnf__cli_conv_method(const char *s, void *d) {
  return cnf_method_parse(s, (cnf_method *)d);
}
int cnf__cli_conv_layer(const char *s, void *d) {
  return cnf_layer_parse(s, (cnf_layer *)d);
}
int cnf__cli_conv_adjoint(const char *s, void *d) {
  return cnf_adjoint_parse(s, (cnf_adjoint *)d);
}
int cnf__cli_conv_objective(const char *s, void *d) {
  return cnf_objective_parse(s, (cnf_objective *)d);
}
int cnf__cli_conv_act(const char *s, void *d) {
  return cnf_act_parse(s, (cnf_act *)d);
}

/* ---- helpers ------------------------------------------------------------ */

/* Print the library's message for status rc and return the exit status.
 * reading: the failure concerns an input file, so I/O errors are bad input. */
int cnf__cli_lib_fail(const char *cmd, cnf_ctx *ctx, int rc, int reading) {
  const char *msg = ctx != NULL ? cnf_ctx_errmsg(ctx) : "";
  if (msg[0] == '\0') msg = cnf_strerror(rc);
  cnf__cli_error(cmd, "%s", msg);
  if (cnf_is_solver_error(rc)) return CNF_CLI_ESOLVER;
  switch (rc) {
    case CNF_EINVAL:
    case CNF_EDIM:
    case CNF_EFORMAT:
    case CNF_ECORRUPT:
    case CNF_EVERSION:
      return CNF_CLI_EUSAGE;
    case CNF_ENONFINITE: /* in the input as read, or in a computed result */
      return reading ? CNF_CLI_EUSAGE : CNF_CLI_ESOLVER;
    case CNF_EIO:
    case CNF_EUNSUPPORTED: /* e.g. a model file of an unregistered field class */
      return reading ? CNF_CLI_EUSAGE : CNF_CLI_EFAIL;
    default:
      return CNF_CLI_EFAIL;
  }
}

/* n doubles, or NULL (with a message) if n * 8 bytes is too large or
 * unavailable; *status is set to the exit status for that case. */
double *cnf__cli_alloc(const char *cmd, size_t rows, size_t cols, const char *what, int *status) {
  if (cols != 0 && rows > CNF_CLI_MAX_BYTES / sizeof(double) / cols) {
    cnf__cli_error(cmd, "%s: %zu x %zu values is too large", what, rows, cols);
    *status = CNF_CLI_EUSAGE;
    return NULL;
  }
  double *p = malloc((rows * cols > 0 ? rows * cols : 1) * sizeof(double));
  if (p == NULL) {
    cnf__cli_error(cmd, "%s: out of memory for %zu x %zu values", what, rows, cols);
    *status = CNF_CLI_EFAIL;
  }
  return p;
}

double cnf__cli_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0.0;
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The threads of this run: the command's --threads, else the global one,
 * else the machine's cores (per rank under mpirun).  They split the network's batch (each flow
 * the command opens gets them); OpenBLAS runs one thread inside each. */
static size_t cli_threads = 1;

static void apply_threads(size_t global, size_t local) {
  cli_threads = local ? local : global ? global : cnf_threads_default();
  if (cli_threads > 64) cli_threads = 64;
  openblas_set_num_threads(1);
}

size_t cnf__cli_threads(void) { return cli_threads; }

int cnf__cli_use_threads(const char *cmd, cnf_model *m) {
  int rc = cnf_model_set_threads(m, cli_threads);
  if (rc != 0) return cnf__cli_lib_fail(cmd, NULL, rc, 0);
  return CNF_CLI_OK;
}

/* The --verbose report: options, statistics and wall time, one
 * "name value" pair per line. */
void cnf__cli_report(const run_args *a, size_t rows, const cnf_stats *st, double wall) {
  const cnf_options *o = &a->opt;
  size_t threads = cli_threads;
  fprintf(stderr,
          "rows %zu\nrtol %g\natol %g\nmethod %s\ntrace %s\nprobes %zu\nbatch %zu\n"
          "max_steps %ld\nthreads %zu\nseed %llu\n",
          rows, o->rtol, o->atol, cnf_method_name(o->method), cnf_trace_name(o->trace), o->probes,
          o->batch > 0 && o->batch < rows ? o->batch : rows, o->max_steps, threads,
          (unsigned long long)a->seed);
  fprintf(stderr,
          "solves %ld\nnfe %ld\nnsteps %ld\nnetf %ld\nnni %ld\nnncf %ld\nnjtv %ld\nnli %ld\n"
          "wall_seconds %.6f\n",
          st->solves, st->nfe, st->nsteps, st->netf, st->nni, st->nncf, st->njtv, st->nli, wall);
}

/* Create the context and load the model; prints and returns an exit
 * status on failure. */
int cnf__cli_open_model(const char *cmd, const char *path, cnf_ctx **ctx, cnf_model **m) {
  *m = NULL;
  int rc = cnf_ctx_create(ctx);
  if (rc != 0) {
    cnf__cli_error(cmd, "cannot create a library context: %s", cnf_strerror(rc));
    return CNF_CLI_EFAIL;
  }
  rc = cnf_model_load(m, *ctx, path);
  if (rc == 0) rc = cnf__cli_mpi_attach(*ctx);
  if (rc != 0) return cnf__cli_lib_fail(cmd, *ctx, rc, 1);
  return cnf__cli_use_threads(cmd, *m);
}

int cnf__cli_check_flow(const char *cmd, const char *flow) {
  if (cnf_model_known_flow(flow)) return -1;
  cnf__cli_error(cmd, "--flow: expected cnf, realnvp, nice, maf, iaf, planar, radial, affine or "
                      "elementwise, found '%s'", flow);
  return CNF_CLI_EUSAGE;
}

int cnf__cli_create_model(const char *cmd, cnf_ctx *ctx, const run_args *a, size_t D,
                          cnf_model **m) {
  int status = cnf__cli_check_flow(cmd, a->flow);
  if (status >= 0) return status;
  cnf_model_spec spec;
  cnf_model_spec_default(&spec, a->flow, D);
  spec.hidden = a->hidden;
  spec.blocks = a->blocks;
  spec.layer = a->layer;
  spec.act = a->act;
  spec.T = a->time;
  int rc = cnf_model_create(m, ctx, &spec, a->seed);
  return rc != 0 ? cnf__cli_lib_fail(cmd, ctx, rc, 0) : CNF_CLI_OK;
}

/* Write a (rows, cols) table under the given column names (a .npy path:
 * the numbers alone, cnf_npy_write). */
int cnf__cli_write_table(const char *cmd, cnf_ctx *ctx, const char *path, const char *const *names,
                         size_t rows, size_t cols, const double *data) {
  if (!cnf__cli_mpi_writer()) return CNF_CLI_OK; /* rank 0 writes */
  int rc = cnf_npy_path(path) ? cnf_npy_write(ctx, path, rows, cols, data)
                              : cnf_csv_write(ctx, path, names, rows, cols, data);
  return rc != 0 ? cnf__cli_lib_fail(cmd, ctx, rc, 0) : CNF_CLI_OK;
}

/* Column names x1..xD then `last`, in one allocation (free the array). */
const char **cnf__cli_column_names(size_t D, const char *last) {
  const size_t width = 24;
  char **names = malloc((D + 1) * sizeof(char *) + D * width);
  if (names == NULL) return NULL;
  char *text = (char *)(names + D + 1);
  for (size_t j = 0; j < D; j++) {
    names[j] = text + j * width;
    snprintf(names[j], width, "x%zu", j + 1);
  }
  names[D] = (char *)last;
  return (const char **)names;
}

int cnf__cli_begin(const char *cmd, const cnf_cli_opt *opts, const cnf_cli_usage *u, int argc,
                   char **argv, size_t *local_threads, size_t global_threads) {
  int help = 0;
  int status = cnf__cli_parse(cmd, opts, argc, argv, &help);
  if (status != CNF_CLI_OK) return status;
  if (help) {
    cnf__cli_print_usage(u, opts);
    return CNF_CLI_OK;
  }
  apply_threads(global_threads, *local_threads);
  if (*local_threads == 0) *local_threads = global_threads;
  return -1;
}

/* Read a CSV or, by the extension, a .npy file whose column count must be
 * D (0: any); exit status. */
int cnf__cli_read_points(const char *cmd, cnf_ctx *ctx, const char *path, size_t D,
                         const char *whose, double **x, size_t *rows, size_t *cols) {
  int rc = cnf_npy_path(path) ? cnf_npy_read(ctx, path, x, rows, cols)
                              : cnf_csv_read(ctx, path, x, rows, cols);
  if (rc != 0) return cnf__cli_lib_fail(cmd, ctx, rc, 1);
  if (D != 0 && *cols != D) {
    /* every row has the first row's field count, so line 1 shows it */
    cnf__cli_error(cmd, "%s%s: %zu column%s, expected %zu (%s)",
                   strcmp(path, "-") == 0 ? "<stdin>" : path, cnf_npy_path(path) ? "" : ":1", *cols,
                   *cols == 1 ? "" : "s", D, whose);
    cnf_free(*x);
    *x = NULL;
    return CNF_CLI_EUSAGE;
  }
  return CNF_CLI_OK;
}

int cnf__cli_is_toy(const char *name) {
  for (const char *const *t = cnf_toy_names(); *t != NULL; t++)
    if (strcmp(*t, name) == 0) return 1;
  return 0;
}

void cnf__cli_toy_list(char *buf, size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  for (const char *const *t = cnf_toy_names(); *t != NULL && used < n; t++) {
    int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", *t);
    if (w < 0) break;
    used += (size_t)w;
  }
}

int cnf__cli_load_data(const char *cmd, cnf_ctx *ctx, const char *spec, size_t n, uint64_t seed,
                       size_t D, double **x, size_t *N, size_t *cols) {
  *x = NULL;
  int status = CNF_CLI_OK;
  if (cnf__cli_is_toy(spec)) {
    if (D != 0 && D != 2) {
      cnf__cli_error(cmd, "%s is a 2-D toy set; the model is %zu-D", spec, D);
      return CNF_CLI_EUSAGE;
    }
    if ((*x = cnf__cli_alloc(cmd, n, 2, "data", &status)) == NULL) return status;
    cnf_toy_sample(spec, n, cnf_seed_derive(seed, "data", 0), *x);
    *N = n, *cols = 2;
    return CNF_CLI_OK;
  }
  double *rows = NULL;
  status = cnf__cli_read_points(cmd, ctx, spec, D, "the model's dimension", &rows, N, cols);
  if (status == CNF_CLI_OK && (*x = cnf__cli_alloc(cmd, *N, *cols, "data", &status)) != NULL)
    memcpy(*x, rows, *N * *cols * sizeof(double));
  cnf_free(rows);
  return status;
}
