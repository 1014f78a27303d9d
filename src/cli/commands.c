/* commands.c: the commands of the `cnf` tool: init, logp, sample, grid.
 *
 * Each command parses its options (args.c), does its work through
 * include/cnf.h and returns an exit status (cli.h).  Output is produced
 * only after every computation has succeeded, and files are written by the
 * library atomically (temporary name, fsync, rename), so a failing command
 * never leaves a partial or clobbered --out file.
 *
 * Mapping of library codes to exit statuses, in one place (cnf__cli_lib_fail):
 * solver failures and non-finite results -> 3; malformed, damaged, non-finite
 * or mismatched input and unreadable input files -> 2; out of memory and
 * output errors -> 1. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cnf.h"
#include "dflow.h"

/* ---- init --------------------------------------------------------------- */

int cnf__cli_init(int argc, char **argv, size_t threads) {
  const char *cmd = "init";
  int flow_status = cnf__cli_flow_dispatch(cmd, &argc, argv, threads);
  if (flow_status >= 0) return flow_status;
  run_args a;
  cnf__cli_args_default(&a);
  const cnf_cli_opt opts[] = {
      ROW("dim", 0, CNF_CLI_SIZE, &a.dim, 1, 100000, NULL, 1, "D", "data dimension D"),
      ROW("hidden", 0, CNF_CLI_STR, &a.hidden, 0, 0, NULL, 0, "H1-H2-...",
          "hidden layer widths, '0' for none (64-64-64)"),
      ROW("layer", 0, CNF_CLI_CHOICE, &a.layer, 0, 0, cnf__cli_conv_layer, 0,
          "concatsquash|concat|ignore", "time conditioning of each layer (concatsquash)"),
      ROW("act", 0, CNF_CLI_CHOICE, &a.act, 0, 0, cnf__cli_conv_act, 0, "tanh|softplus",
          "activation between layers (tanh)"),
      ROW("blocks", 0, CNF_CLI_SIZE, &a.blocks, 1, 1000, NULL, 0, "K", "stacked CNF blocks (1)"),
      ROW("time", 0, CNF_CLI_POS, &a.time, 0, 0, NULL, 0, "T", "end time of every block (0.5)"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S",
          "seed of the initial parameters (0)"),
      ROW("out", 0, CNF_CLI_STR, &a.out, 0, 0, NULL, 1, "MODEL", "model file to write"),
      ROW("threads", 0, CNF_CLI_SIZE, &a.threads, 1, 64, NULL, 0, "N", "threads (no effect on init)"),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf init --dim D --out MODEL [options]",
      "Create a flow with randomly initialised parameters (uniform in +-1/sqrt(fan_in), as\n"
      "PyTorch's nn.Linear) and save it as a model file (docs/model-format.md)."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  status = CNF_CLI_OK;

  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, a.dim);
  cfg.layer = a.layer;
  cfg.act = a.act;
  if (cnf_mlp_parse_hidden(&cfg, a.hidden) != 0) {
    cnf__cli_error(cmd,
                   "--hidden: expected widths such as 64-64-64 (at most %d layers of 1 to "
                   "1000000 units) or 0, found '%s'",
                   CNF_MAX_HIDDEN, a.hidden);
    return CNF_CLI_EUSAGE;
  }
  size_t P = cnf_mlp_param_count(&cfg);
  if (P == 0 || P > CNF_CLI_MAX_PARAMS / a.blocks) {
    cnf__cli_error(cmd, "network too large: %zu blocks of %zu parameters (at most %zu in all)",
                   a.blocks, P, CNF_CLI_MAX_PARAMS);
    return CNF_CLI_EUSAGE;
  }
  cnf_ctx *ctx = NULL;
  cnf_flow *flow = NULL;
  int rc = cnf_ctx_create(&ctx);
  if (rc != 0) {
    cnf__cli_error(cmd, "cannot create a library context: %s", cnf_strerror(rc));
    return CNF_CLI_EFAIL;
  }
  rc = cnf_flow_create(&flow, ctx, &cfg, a.blocks, a.time, a.seed);
  if (rc != 0)
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
  else if ((rc = cnf_flow_save(flow, a.out)) != 0)
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
  cnf_flow_free(flow);
  cnf_ctx_free(ctx);
  return status;
}

/* ---- logp ---------------------------------------------------------------- */

int cnf__cli_logp(int argc, char **argv, size_t threads) {
  const char *cmd = "logp";
  if (cnf__cli_model_is_stack(argc, argv)) return cnf__cli_dflow_run(cmd, argc, argv, threads);
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
      "'logp', in input order, 17 significant digits."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  status = CNF_CLI_OK;

  cnf_ctx *ctx = NULL;
  cnf_flow *flow = NULL;
  double *x = NULL, *logp = NULL; /* (rows, D), (rows) */
  size_t rows = 0, cols = 0;
  status = cnf__cli_open_model(cmd, a.model, &ctx, &flow);
  if (status != CNF_CLI_OK) goto cleanup;
  status = cnf__cli_read_points(cmd, ctx, a.in, cnf_flow_dim(flow), "the model's dimension", &x,
                                &rows, &cols);
  if (status != CNF_CLI_OK) goto cleanup;
  int rc;
  logp = cnf__cli_alloc(cmd, rows, 1, "log-densities", &status);
  if (logp == NULL) goto cleanup;
  cnf_flow_seed(flow, a.seed);
  cnf_stats st;
  cnf_stats_clear(&st);
  double t0 = cnf__cli_now();
  rc = cnf_flow_logp(flow, &a.opt, rows, x, logp, &st);
  if (a.verbose) cnf__cli_report(&a, rows, &st, cnf__cli_now() - t0);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  const char *const names[] = {"logp"};
  status = cnf__cli_write_table(cmd, ctx, a.out, names, rows, 1, logp);
cleanup:
  free(logp);
  cnf_free(x);
  cnf_flow_free(flow);
  cnf_ctx_free(ctx);
  return status;
}

/* ---- sample -------------------------------------------------------------- */

int cnf__cli_sample(int argc, char **argv, size_t threads) {
  const char *cmd = "sample";
  if (cnf__cli_model_is_stack(argc, argv)) return cnf__cli_dflow_run(cmd, argc, argv, threads);
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
      "Draw N samples: z ~ N(0, I), integrated backward through the blocks to x.  Writes\n"
      "columns x1..xD,logp, with log p(x) from the same solve."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  status = CNF_CLI_OK;

  cnf_ctx *ctx = NULL;
  cnf_flow *flow = NULL;
  double *x = NULL, *logp = NULL, *table = NULL; /* (N, D), (N), (N, D + 1) */
  const char **names = NULL;
  status = cnf__cli_open_model(cmd, a.model, &ctx, &flow);
  if (status != CNF_CLI_OK) goto cleanup;
  const size_t D = cnf_flow_dim(flow), N = a.n;
  if ((table = cnf__cli_alloc(cmd, N, D + 1, "samples", &status)) == NULL ||
      (x = cnf__cli_alloc(cmd, N, D, "samples", &status)) == NULL ||
      (logp = cnf__cli_alloc(cmd, N, 1, "samples", &status)) == NULL)
    goto cleanup;
  if ((names = cnf__cli_column_names(D, "logp")) == NULL) {
    cnf__cli_error(cmd, "out of memory");
    status = CNF_CLI_EFAIL;
    goto cleanup;
  }
  cnf_flow_seed(flow, a.seed);
  cnf_stats st;
  cnf_stats_clear(&st);
  double t0 = cnf__cli_now();
  int rc = cnf_flow_sample(flow, &a.opt, N, x, logp, &st);
  if (a.verbose) cnf__cli_report(&a, N, &st, cnf__cli_now() - t0);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  for (size_t b = 0; b < N; b++) {
    memcpy(table + b * (D + 1), x + b * D, D * sizeof(double));
    table[b * (D + 1) + D] = logp[b];
  }
  status = cnf__cli_write_table(cmd, ctx, a.out, names, N, D + 1, table);
cleanup:
  free(names);
  free(table);
  free(x);
  free(logp);
  cnf_flow_free(flow);
  cnf_ctx_free(ctx);
  return status;
}

/* ---- grid ----------------------------------------------------------------- */

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
  status = CNF_CLI_OK;

  if (!(a.range <= 1e150)) {
    cnf__cli_error(cmd, "--range: expected a number up to 1e150, found %g", a.range);
    return CNF_CLI_EUSAGE;
  }

  cnf_ctx *ctx = NULL;
  cnf_flow *flow = NULL;
  double *x = NULL, *logp = NULL, *table = NULL; /* (G*G, 2), (G*G), (G*G, 3) */
  status = cnf__cli_open_model(cmd, a.model, &ctx, &flow);
  if (status != CNF_CLI_OK) goto cleanup;
  if (cnf_flow_dim(flow) != 2) {
    cnf__cli_error(cmd, "%s: the model has dimension %zu; grid needs a 2-D model", a.model,
                   cnf_flow_dim(flow));
    status = CNF_CLI_EUSAGE;
    goto cleanup;
  }
  const size_t G = a.size, N = G * G;
  if ((table = cnf__cli_alloc(cmd, N, 3, "grid", &status)) == NULL ||
      (x = cnf__cli_alloc(cmd, N, 2, "grid", &status)) == NULL ||
      (logp = cnf__cli_alloc(cmd, N, 1, "grid", &status)) == NULL)
    goto cleanup;
  for (size_t j = 0; j < G; j++)
    for (size_t i = 0; i < G; i++) {
      /* exactly -L and L at the ends */
      double *p = x + 2 * (j * G + i);
      p[0] = i == G - 1 ? a.range : -a.range + 2.0 * a.range * (double)i / (double)(G - 1);
      p[1] = j == G - 1 ? a.range : -a.range + 2.0 * a.range * (double)j / (double)(G - 1);
    }
  cnf_flow_seed(flow, a.seed);
  cnf_stats st;
  cnf_stats_clear(&st);
  double t0 = cnf__cli_now();
  int rc = cnf_flow_logp(flow, &a.opt, N, x, logp, &st);
  if (a.verbose) cnf__cli_report(&a, N, &st, cnf__cli_now() - t0);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  for (size_t b = 0; b < N; b++) {
    table[3 * b] = x[2 * b];
    table[3 * b + 1] = x[2 * b + 1];
    table[3 * b + 2] = logp[b];
  }
  const char *const names[] = {"x1", "x2", "logp"};
  status = cnf__cli_write_table(cmd, ctx, a.out, names, N, 3, table);
cleanup:
  free(table);
  free(x);
  free(logp);
  cnf_flow_free(flow);
  cnf_ctx_free(ctx);
  return status;
}
