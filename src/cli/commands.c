/* commands.c: the commands of the `cnf` tool that make or evaluate a model:
 * init, logp, sample, grid, eval, plot.  Every one works on every model
 * kind (cnf_model.h): a CNF, a CNF of a registered field class, a discrete
 * or mixed stack; the model file says which.
 *
 * Each command parses its options (args.c), does its work through the
 * library and returns an exit status (cli.h).  Output is produced only
 * after every computation has succeeded, and files are written by the
 * library atomically (temporary name, fsync, rename), so a failing command
 * never leaves a partial or clobbered --out file.
 *
 * Mapping of library codes to exit statuses, in one place (cnf__cli_lib_fail):
 * solver failures and non-finite results -> 3; malformed, damaged, non-finite
 * or mismatched input and unreadable input files -> 2; out of memory and
 * output errors -> 1. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---- init --------------------------------------------------------------- */

int cnf__cli_init(int argc, char **argv, size_t threads) {
  const char *cmd = "init";
  run_args a;
  cnf__cli_args_default(&a);
  const cnf_cli_opt opts[] = {
      ROW("dim", 0, CNF_CLI_SIZE, &a.dim, 1, 100000, NULL, 1, "D", "data dimension D"),
      MODEL_ROWS(a),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S",
          "seed of the initial parameters (0)"),
      ROW("out", 0, CNF_CLI_STR, &a.out, 0, 0, NULL, 1, "MODEL", "model file to write"),
      ROW("threads", 0, CNF_CLI_SIZE, &a.threads, 1, 64, NULL, 0, "N", "threads (no effect on init)"),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf init --dim D --out MODEL [--flow FLOW] [options]",
      "Create a flow with randomly initialised parameters (LeCun's uniform initialisation\n"
      "over each unit's inputs) and save it as a model file (docs/model-format.md)."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  cnf_ctx *ctx = NULL;
  cnf_model *m = NULL;
  int rc = cnf_ctx_create(&ctx);
  if (rc != 0) {
    cnf__cli_error(cmd, "cannot create a library context: %s", cnf_strerror(rc));
    return CNF_CLI_EFAIL;
  }
  status = cnf__cli_create_model(cmd, ctx, &a, a.dim, &m);
  if (status == CNF_CLI_OK && (rc = cnf_model_save(m, a.out)) != 0)
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
  cnf_model_free(m);
  cnf_ctx_free(ctx);
  return status;
}

/* ---- the commands on a model file --------------------------------------- */

/* What logp, sample, grid, eval and plot share: the model, its context and
 * the rows read or made. */
typedef struct session {
  const char *cmd;
  cnf_ctx *ctx;
  cnf_model *m;
  size_t D;
} session;

static int open_session(session *s, const char *cmd, const run_args *a) {
  memset(s, 0, sizeof *s);
  s->cmd = cmd;
  int status = cnf__cli_open_model(cmd, a->model, &s->ctx, &s->m);
  if (status == CNF_CLI_OK) {
    s->D = cnf_model_dim(s->m);
    cnf_model_seed(s->m, a->seed);
  }
  return status;
}

static void close_session(session *s) {
  cnf_model_free(s->m);
  cnf_ctx_free(s->ctx);
}

/* log p of x (N, D) into lp, with the --verbose report. */
static int session_logp(session *s, const run_args *a, size_t N, const double *x, double *lp) {
  cnf_stats st;
  cnf_stats_clear(&st);
  const double t0 = cnf__cli_now();
  int rc = cnf_model_logp(s->m, &a->opt, N, x, lp, &st);
  if (a->verbose) cnf__cli_report(a, N, &st, cnf__cli_now() - t0);
  return rc != 0 ? cnf__cli_lib_fail(s->cmd, s->ctx, rc, 0) : CNF_CLI_OK;
}

int cnf__cli_logp(int argc, char **argv, size_t threads) {
  const char *cmd = "logp";
  run_args a;
  cnf__cli_args_default(&a);
  const cnf_cli_opt opts[] = {
      ROW("model", 0, CNF_CLI_STR, &a.model, 0, 0, NULL, 1, "MODEL", "model file"),
      ROW("in", 0, CNF_CLI_STR, &a.in, 0, 0, NULL, 1, "X.csv",
          "points, one per row, D columns, optional header; '-' reads stdin"),
      ROW("out", 0, CNF_CLI_STR, &a.out, 0, 0, NULL, 0, "OUT.csv",
          "output file, column 'logp' (standard output)"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S", "seed of the Hutchinson probes (0)"),
      SOLVER_ROWS(a),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf logp --model MODEL --in X.csv [options]",
      "Write log p(x) of every row x of X.csv: one row per input row under the header\n"
      "'logp', in input order, 17 significant digits.  Solver options apply to continuous\n"
      "blocks and layers; a discrete flow ignores them."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  session s;
  double *x = NULL, *lp = NULL;
  size_t rows = 0, cols = 0;
  if ((status = open_session(&s, cmd, &a)) != CNF_CLI_OK) goto cleanup;
  status = cnf__cli_read_points(cmd, s.ctx, a.in, s.D, "the model's dimension", &x, &rows, &cols);
  if (status != CNF_CLI_OK) goto cleanup;
  if ((lp = cnf__cli_alloc(cmd, rows, 1, "log-densities", &status)) == NULL) goto cleanup;
  if ((status = session_logp(&s, &a, rows, x, lp)) != CNF_CLI_OK) goto cleanup;
  const char *const names[] = {"logp"};
  status = cnf__cli_write_table(cmd, s.ctx, a.out, names, rows, 1, lp);
cleanup:
  free(lp);
  cnf_free(x);
  close_session(&s);
  return status;
}

int cnf__cli_eval(int argc, char **argv, size_t threads) {
  const char *cmd = "eval";
  run_args a;
  cnf__cli_args_default(&a);
  a.opt.batch = 1000;
  const cnf_cli_opt opts[] = {
      ROW("model", 0, CNF_CLI_STR, &a.model, 0, 0, NULL, 1, "MODEL", "model file"),
      ROW("in", 0, CNF_CLI_STR, &a.in, 0, 0, NULL, 1, "X.csv", "points, one per row"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S", "seed of the Hutchinson probes (0)"),
      TRACE_ROW(a, "exact"),
      TOL_ROWS(a, "1e-5", "1e-5", "20000"),
      RUN_ROWS(a),
      BATCH_ROW(a, "1000"),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf eval --model MODEL --in X.csv [options]",
      "Print 'nll <mean negative log-likelihood in nats>' of the rows of X.csv on stdout\n"
      "(exact trace by default, 1000 rows per solve), solver statistics on stderr."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  session s;
  double *x = NULL;
  size_t rows = 0, cols = 0;
  if ((status = open_session(&s, cmd, &a)) != CNF_CLI_OK) goto cleanup;
  status = cnf__cli_read_points(cmd, s.ctx, a.in, s.D, "the model's dimension", &x, &rows, &cols);
  if (status != CNF_CLI_OK) goto cleanup;
  cnf_stats st;
  cnf_stats_clear(&st);
  double nll = NAN, t0 = cnf__cli_now();
  int rc = cnf_model_nll(s.m, &a.opt, rows, x, &nll, &st);
  const double wall = cnf__cli_now() - t0;
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, s.ctx, rc, 0);
    goto cleanup;
  }
  printf("nll %.10g\n", nll);
  if (a.verbose)
    cnf__cli_report(&a, rows, &st, wall);
  else
    fprintf(stderr, "rows %zu\nnfe %ld\nsolves %ld\nnsteps %ld\nwall_seconds %.6f\n", rows, st.nfe,
            st.solves, st.nsteps, wall);
cleanup:
  cnf_free(x);
  close_session(&s);
  return status;
}

int cnf__cli_sample(int argc, char **argv, size_t threads) {
  const char *cmd = "sample";
  run_args a;
  cnf__cli_args_default(&a);
  const cnf_cli_opt opts[] = {
      ROW("model", 0, CNF_CLI_STR, &a.model, 0, 0, NULL, 1, "MODEL", "model file"),
      ROW("samples", 'n', CNF_CLI_SIZE, &a.n, 1, SIZE_MAX, NULL, 1, "N", "number of samples"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S",
          "seed of the base samples and the Hutchinson probes (0)"),
      ROW("out", 0, CNF_CLI_STR, &a.out, 0, 0, NULL, 0, "OUT.csv",
          "output file, columns x1..xD,logp (standard output)"),
      SOLVER_ROWS(a),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf sample --model MODEL -n N [options]",
      "Draw N samples: z ~ N(0, I) mapped to x by the inverse of the flow.  Writes columns\n"
      "x1..xD,logp, with log p(x) from the same computation."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  session s;
  double *x = NULL, *lp = NULL, *table = NULL; /* (N, D), (N), (N, D + 1) */
  const char **names = NULL;
  if ((status = open_session(&s, cmd, &a)) != CNF_CLI_OK) goto cleanup;
  const size_t D = s.D, N = a.n;
  if ((table = cnf__cli_alloc(cmd, N, D + 1, "samples", &status)) == NULL ||
      (x = cnf__cli_alloc(cmd, N, D, "samples", &status)) == NULL ||
      (lp = cnf__cli_alloc(cmd, N, 1, "samples", &status)) == NULL)
    goto cleanup;
  if ((names = cnf__cli_column_names(D, "logp")) == NULL) {
    cnf__cli_error(cmd, "out of memory");
    status = CNF_CLI_EFAIL;
    goto cleanup;
  }
  cnf_stats st;
  cnf_stats_clear(&st);
  double t0 = cnf__cli_now();
  int rc = cnf_model_sample(s.m, &a.opt, N, x, lp, &st);
  if (a.verbose) cnf__cli_report(&a, N, &st, cnf__cli_now() - t0);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, s.ctx, rc, 0);
    goto cleanup;
  }
  for (size_t b = 0; b < N; b++) {
    memcpy(table + b * (D + 1), x + b * D, D * sizeof(double));
    table[b * (D + 1) + D] = lp[b];
  }
  status = cnf__cli_write_table(cmd, s.ctx, a.out, names, N, D + 1, table);
cleanup:
  free(names);
  free(table);
  free(x);
  free(lp);
  close_session(&s);
  return status;
}

int cnf__cli_grid(int argc, char **argv, size_t threads) {
  const char *cmd = "grid";
  run_args a;
  cnf__cli_args_default(&a);
  const cnf_cli_opt opts[] = {
      ROW("model", 0, CNF_CLI_STR, &a.model, 0, 0, NULL, 1, "MODEL", "model file (2-D)"),
      ROW("range", 0, CNF_CLI_POS, &a.range, 0, 0, NULL, 0, "L", "grid over [-L, L]^2 (4)"),
      ROW("size", 0, CNF_CLI_SIZE, &a.size, 2, 10000, NULL, 0, "G", "G x G points (100)"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S", "seed of the Hutchinson probes (0)"),
      ROW("out", 0, CNF_CLI_STR, &a.out, 0, 0, NULL, 0, "OUT.csv",
          "output file, columns x1,x2,logp (standard output)"),
      SOLVER_ROWS(a),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf grid --model MODEL [options]",
      "Write log p on a G x G grid over [-L, L]^2 of a 2-D model: columns x1,x2,logp,\n"
      "G*G rows, x1 varying fastest (row j*G + i holds x1 = g_i, x2 = g_j with\n"
      "g_i = -L + 2L i/(G-1))."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  if (!(a.range <= 1e150)) {
    cnf__cli_error(cmd, "--range: expected a number up to 1e150, found %g", a.range);
    return CNF_CLI_EUSAGE;
  }
  session s;
  double *x = NULL, *lp = NULL, *table = NULL; /* (G*G, 2), (G*G), (G*G, 3) */
  if ((status = open_session(&s, cmd, &a)) != CNF_CLI_OK) goto cleanup;
  if (s.D != 2) {
    cnf__cli_error(cmd, "%s: the model has dimension %zu; grid needs a 2-D model", a.model, s.D);
    status = CNF_CLI_EUSAGE;
    goto cleanup;
  }
  const size_t G = a.size, N = G * G;
  if ((table = cnf__cli_alloc(cmd, N, 3, "grid", &status)) == NULL ||
      (x = cnf__cli_alloc(cmd, N, 2, "grid", &status)) == NULL ||
      (lp = cnf__cli_alloc(cmd, N, 1, "grid", &status)) == NULL)
    goto cleanup;
  cnf_grid_points(a.range, G, x);
  if ((status = session_logp(&s, &a, N, x, lp)) != CNF_CLI_OK) goto cleanup;
  for (size_t b = 0; b < N; b++) {
    table[3 * b] = x[2 * b];
    table[3 * b + 1] = x[2 * b + 1];
    table[3 * b + 2] = lp[b];
  }
  const char *const names[] = {"x1", "x2", "logp"};
  status = cnf__cli_write_table(cmd, s.ctx, a.out, names, N, 3, table);
cleanup:
  free(table);
  free(x);
  free(lp);
  close_session(&s);
  return status;
}

/* ---- plot ------------------------------------------------------------------ */

int cnf__cli_plot(int argc, char **argv, size_t threads) {
  const char *cmd = "plot";
  run_args a;
  cnf__cli_args_default(&a);
  a.size = 200;
  a.n = 0; /* 2000, paths 400 */
  const char *kind = "density";
  size_t times = 5;
  cnf_plot_options po;
  cnf_plot_options_default(&po);
  const cnf_cli_opt opts[] = {
      ROW("model", 0, CNF_CLI_STR, &a.model, 0, 0, NULL, 1, "MODEL", "model file"),
      ROW("out", 0, CNF_CLI_STR, &a.out, 0, 0, NULL, 1, "FILE.png|.svg|.pdf",
          "figure to write, in the format of its extension"),
      ROW("range", 0, CNF_CLI_POS, &a.range, 0, 0, NULL, 0, "L",
          "2-D: heat map over [-L, L]^2 (4)"),
      ROW("grid", 0, CNF_CLI_SIZE, &a.size, 2, 4096, NULL, 0, "G", "2-D: G x G grid points (200)"),
      ROW("size", 0, CNF_CLI_SIZE, &po.size, 64, 4096, NULL, 0, "S",
          "side of one panel in pixels (points in SVG, PDF) (400)"),
      ROW("log", 0, CNF_CLI_FLAG, &po.log_density, 0, 0, NULL, 0, "", "2-D: colour by log p(x)"),
      ROW("data", 0, CNF_CLI_STR, &a.data, 0, 0, NULL, 0, "NAME|FILE.csv",
          "data to overlay: a toy set name or a CSV file"),
      ROW("samples", 'n', CNF_CLI_SIZE, &a.n, 1, 10000000, NULL, 0, "N",
          "above 2-D: samples to scatter (2000); 2-D: toy points overlaid (2000); paths: "
          "points (400)"),
      ROW("kind", 0, CNF_CLI_STR, &kind, 0, 0, NULL, 0, "density|paths|times",
          "density (samples above 2-D), trajectories from data to latent, or the density at "
          "several times (density)"),
      ROW("times", 0, CNF_CLI_SIZE, &times, 2, 64, NULL, 0, "K", "times: panels from 0 to T (5)"),
      ROW("dims", 0, CNF_CLI_SIZE, &a.dims, 1, 64, NULL, 0, "K",
          "above 2-D: first K coordinates (6)"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S", "seed (0)"),
      SOLVER_ROWS(a),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf plot --model MODEL --out FILE.png [options]",
      "2-D model: a heat map of the learned density p(x) over [-L, L]^2 (viridis, x1 to the\n"
      "right, x2 up, a colour bar), with data points in white.  Above 2-D: pairwise scatter\n"
      "plots of samples (orange) over the data (grey), histograms on the diagonal, named by\n"
      "the data's CSV header.  --kind paths: trajectories of a grid (or of --data rows)\n"
      "from data to latent; --kind times: the 2-D density at K times from 0 to T (continuous\n"
      "models).  Titled, with axes in data units; PNG, SVG or PDF."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  session s;
  double *data = NULL, *x = NULL, *lp = NULL;
  char **header = NULL;
  size_t nd = 0, cols = 0, hcols = 0;
  if (a.n == 0) a.n = strcmp(kind, "paths") == 0 ? 400 : 2000;
  if ((status = open_session(&s, cmd, &a)) != CNF_CLI_OK) goto cleanup;
  const size_t D = s.D;
  if (a.data != NULL) {
    status = cnf__cli_load_data(cmd, s.ctx, a.data, a.n, a.seed, D, &data, &nd, &cols);
    if (status != CNF_CLI_OK) goto cleanup;
  }
  /* the files by their names, without directories; a CSV header names
   * the axes (2-D) or the coordinates */
  const char *model = strrchr(a.model, '/') ? strrchr(a.model, '/') + 1 : a.model;
  const char *dname = a.data && strrchr(a.data, '/') ? strrchr(a.data, '/') + 1 : a.data;
  char title[512];
  if (D == 2)
    snprintf(title, sizeof title, "%s of %s", po.log_density ? "Log-density" : "Density", model);
  else
    snprintf(title, sizeof title, "Samples of %s%s%s", model, dname ? " against " : "",
             dname ? dname : "");
  if (a.data != NULL && !cnf__cli_is_toy(a.data) &&
      cnf_csv_header(s.ctx, a.data, &header, &hcols) == 0 && hcols == D) {
    po.names = (const char *const *)header;
    if (D == 2) po.xlabel = header[0], po.ylabel = header[1], po.names = NULL;
  }
  po.title = title, po.data_name = dname, po.sample_name = "flow samples";
  if (strcmp(kind, "density") != 0) {
    status = cnf__cli_plot_time(cmd, s.ctx, s.m, &a, &po, kind, times, data, nd, model);
    goto cleanup;
  }
  int rc;
  if (D == 2) {
    const size_t G = a.size;
    if ((x = cnf__cli_alloc(cmd, G * G, 2, "grid", &status)) == NULL ||
        (lp = cnf__cli_alloc(cmd, G * G, 1, "grid", &status)) == NULL)
      goto cleanup;
    cnf_plot_grid(a.range, G, x);
    rc = cnf_model_logp(s.m, &a.opt, G * G, x, lp, NULL);
    if (rc == 0) rc = cnf_plot_heatmaps_with(s.ctx, &po, 1, G, lp, a.range, data, nd, a.out);
  } else {
    if ((x = cnf__cli_alloc(cmd, a.n, D, "samples", &status)) == NULL) goto cleanup;
    rc = cnf_model_sample(s.m, &a.opt, a.n, x, NULL, NULL);
    if (rc == 0) rc = cnf_plot_pairs_of_with(s.ctx, &po, x, a.n, D, a.dims, data, nd, a.out);
  }
  if (rc != 0) status = cnf__cli_lib_fail(cmd, s.ctx, rc, 0);
cleanup:
  free(data), free(x), free(lp);
  cnf_free(header);
  close_session(&s);
  return status;
}
