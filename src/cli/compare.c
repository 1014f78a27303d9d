/* compare.c: `cnf compare`: several flow types trained on the same data with
 * the same seed, minibatches and iteration budget, then measured alike:
 *
 *   test NLL (nats), parameters, training seconds per iteration, sampling
 *   and density-evaluation seconds per 1000 points, and for the CNF the
 *   right-hand side evaluations per solve (NFE) of the density evaluation.
 *
 * Every flow models standardized data (the training rows' means and
 * standard deviations) and reports densities in the units of x.  The table
 * goes to standard output and to PREFIX.csv and PREFIX.md; for 2-D data the
 * learned densities go side by side to PREFIX.png, over [-L, L]^2 in
 * standard deviations around the data mean.  Files are written to a
 * temporary name, synced and renamed. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define MAX_FLOWS 16

typedef struct result {
  char name[32];
  size_t params;
  double nll, train_s, sample_s, density_s, nfe;
  size_t skipped; /* failed training steps, skipped */
  int ok;
} result;

/* text to path, atomically (cnf_file_write) */
static int write_atomic(const char *cmd, cnf_ctx *ctx, const char *path, const char *text) {
  int rc = cnf_file_write(ctx, path, text, strlen(text));
  return rc != 0 ? cnf__cli_lib_fail(cmd, ctx, rc, 0) : CNF_CLI_OK;
}

typedef struct cmp_args {
  run_args a;
  const char *flows, *test, *cnf_hidden, *prefix;
  size_t ntest;
} cmp_args;

/* one flow: train on the rows, then measure; grid (G*G, 2) in x units ->
 * glp (G*G) */
static int run_one(const char *cmd, cmp_args *c, const char *flow, const double *data, size_t N,
                   const double *test, size_t NT, size_t D, const double *mean, const double *sd,
                   const double *grid, size_t G2, double *glp, result *res) {
  run_args a = c->a;
  cnf_ctx *ctx = NULL;
  cnf_model *m = NULL;
  const size_t ns = 1000;
  double *lp = malloc((NT > ns ? NT : ns) * sizeof(double)), *xs = malloc(ns * D * sizeof(double));
  int rc = 0, status = CNF_CLI_OK;
  memset(res, 0, sizeof *res);
  snprintf(res->name, sizeof res->name, "%s", flow);
  res->nfe = NAN;
  if (!lp || !xs || cnf_ctx_create(&ctx) != 0) {
    cnf__cli_error(cmd, "out of memory");
    status = CNF_CLI_EFAIL;
    goto cleanup;
  }
  /* cnf-fm and cnf-ot-fm: the CNF trained by (OT) flow matching */
  cnf_objective obj = CNF_OBJECTIVE_MLE;
  const int is_cnf = strncmp(flow, "cnf", 3) == 0;
  if (is_cnf && flow[3] == '-') cnf_objective_parse(flow + 4, &obj);
  a.flow = is_cnf ? "cnf" : flow;
  if (is_cnf) a.hidden = c->cnf_hidden, a.blocks = 0;
  if ((status = cnf__cli_create_model(cmd, ctx, &a, D, &m)) != CNF_CLI_OK) goto cleanup;
  if (is_cnf && (status = cnf__cli_use_threads(cmd, m)) != CNF_CLI_OK) goto cleanup;
  if ((rc = cnf_model_set_standardization(m, mean, sd)) != 0) goto fail;
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  fo.iters = (long)a.iters, fo.batch = a.minibatch, fo.seed = a.seed, fo.train = a.train;
  fo.objective = obj;
  fo.opt.trace = cnf_trace_for_dim(D);
  cnf_fit_data fd = {data, N, D, NULL, NULL};
  cnf_fit_result fr;
  double t0 = cnf__cli_now();
  rc = cnf_fit(m, &fd, &fo, &fr);
  res->skipped = (size_t)fr.failed;
  if (rc != 0) goto fail;
  res->train_s = (cnf__cli_now() - t0) / (double)a.iters;
  res->params = cnf_model_param_count(m);
  /* test NLL, with the training trace (exact up to 2-D, an unbiased
   * estimate above) */
  cnf_options eo = fo.opt;
  eo.batch = 1000;
  cnf_stats st;
  cnf_stats_clear(&st);
  cnf_model_seed(m, a.seed);
  if ((rc = cnf_model_nll(m, &eo, NT, test, &res->nll, &st)) != 0) goto fail;
  if (st.solves > 0) res->nfe = (double)st.nfe / (double)st.solves;
  /* density and sampling time per 1000 points */
  const size_t nd = NT < ns ? NT : ns;
  t0 = cnf__cli_now();
  if ((rc = cnf_model_logp(m, &eo, nd, test, lp, NULL)) != 0) goto fail;
  res->density_s = (cnf__cli_now() - t0) * 1000.0 / (double)nd;
  cnf_model_seed(m, a.seed);
  t0 = cnf__cli_now();
  if ((rc = cnf_model_sample(m, &eo, ns, xs, lp, NULL)) != 0) goto fail;
  res->sample_s = cnf__cli_now() - t0;
  if (grid != NULL && (rc = cnf_model_logp(m, &eo, G2, grid, glp, NULL)) != 0) goto fail;
  res->ok = 1;
  goto cleanup;
fail:
  /* this flow failed: its row says so and the comparison goes on */
  fprintf(stderr, "cnf compare: %s failed: %s\n", flow,
          cnf_ctx_errmsg(ctx)[0] ? cnf_ctx_errmsg(ctx) : cnf_strerror(rc));
  res->ok = 0;
  res->nll = res->train_s = res->sample_s = res->density_s = NAN;
cleanup:
  free(lp), free(xs);
  cnf_model_free(m);
  cnf_ctx_free(ctx);
  return status;
}

int cnf__cli_compare(int argc, char **argv, size_t threads) {
  const char *cmd = "compare";
  cmp_args c;
  memset(&c, 0, sizeof c);
  cnf__cli_args_default(&c.a);
  run_args *a = &c.a;
  a->iters = 500, a->minibatch = 256, a->blocks = 0, a->size = 150, a->range = 3;
  c.ntest = 5000;
  c.prefix = "compare";
  const cnf_cli_opt opts[] = {
      ROW("data", 0, CNF_CLI_STR, &a->data, 0, 0, NULL, 1, "NAME|FILE.csv",
          "a toy set (20000 training samples) or a CSV file of training rows"),
      ROW("test", 0, CNF_CLI_STR, &c.test, 0, 0, NULL, 0, "FILE.csv",
          "test rows (toy: --test-n fresh samples; CSV: its last 10% of rows, held out)"),
      ROW("flows", 0, CNF_CLI_STR, &c.flows, 0, 0, NULL, 1, "F1,F2,...",
          "flows to compare: cnf, cnf-fm, cnf-ot-fm (the CNF trained by flow matching),\n"
          "realnvp, nice, maf, iaf, planar, radial, affine, elementwise"),
      ROW("iters", 0, CNF_CLI_SIZE, &a->iters, 1, (size_t)1 << 40, NULL, 0, "N",
          "training steps of every flow (500)"),
      ROW("seed", 0, CNF_CLI_U64, &a->seed, 0, 0, NULL, 0, "S",
          "seed of the parameters, minibatches and samples (0)"),
      ROW("batch", 0, CNF_CLI_SIZE, &a->minibatch, 1, 1000000, NULL, 0, "B", "minibatch (256)"),
      ROW("lr", 0, CNF_CLI_POS, &a->train.lr, 0, 0, NULL, 0, "LR", "Adam step size (1e-3)"),
      ROW("blocks", 0, CNF_CLI_SIZE, &a->blocks, 1, 1000, NULL, 0, "K",
          "blocks of the discrete flows (each flow's default)"),
      ROW("hidden", 0, CNF_CLI_STR, &a->hidden, 0, 0, NULL, 0, "H1-H2-...",
          "conditioner widths of the discrete flows (64-64)"),
      ROW("cnf-hidden", 0, CNF_CLI_STR, &c.cnf_hidden, 0, 0, NULL, 0, "H1-H2-...",
          "hidden widths of the CNF (64-64-64)"),
      ROW("test-n", 0, CNF_CLI_SIZE, &c.ntest, 1, 10000000, NULL, 0, "N",
          "toy sets: test samples (5000)"),
      ROW("out", 0, CNF_CLI_STR, &c.prefix, 0, 0, NULL, 0, "PREFIX",
          "write PREFIX.csv, PREFIX.md and (2-D) PREFIX.png (compare)"),
      ROW("grid", 0, CNF_CLI_SIZE, &a->size, 2, 1024, NULL, 0, "G",
          "2-D: G x G pixels a panel (150)"),
      ROW("range", 0, CNF_CLI_POS, &a->range, 0, 0, NULL, 0, "L",
          "2-D: panels over mean +- L standard deviations (3)"),
      ROW("threads", 0, CNF_CLI_SIZE, &a->threads, 1, 64, NULL, 0, "N",
          "threads splitting the CNF's batch (the cores); the discrete flows use one"),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf compare --data NAME|FILE.csv --flows cnf,realnvp,maf,... [options]",
      "Train each flow on the same standardized data with the same seed, minibatches and\n"
      "iteration budget, then print test NLL (nats), parameters, training seconds per\n"
      "iteration, sampling and density seconds per 1000 points and the CNF's NFE per solve.\n"
      "The CNF uses the exact trace up to 2-D, Gaussian Hutchinson above (its NLL is then an\n"
      "unbiased estimate)."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a->threads, threads);
  if (status >= 0) return status;
  cnf_ctx *wctx = NULL; /* for the output files */
  size_t failed = 0;     /* flows whose run failed */
  if (strlen(c.prefix) > 4000) {
    cnf__cli_error(cmd, "--out: the prefix is longer than 4000 characters");
    return CNF_CLI_EUSAGE;
  }
  /* the flow list */
  char list[1024], *names[MAX_FLOWS];
  size_t nf = 0;
  snprintf(list, sizeof list, "%s", c.flows);
  char *save = NULL;
  for (char *t = strtok_r(list, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
    const int fm = strcmp(t, "cnf-fm") == 0 || strcmp(t, "cnf-ot-fm") == 0;
    if ((!cnf_model_known_flow(t) && !fm) || nf >= MAX_FLOWS) {
      cnf__cli_error(cmd,
                     "--flows: '%s' is not one of cnf, cnf-fm, cnf-ot-fm, realnvp, nice, maf, "
                     "iaf, planar, radial, affine, elementwise (at most %d)",
                     t, MAX_FLOWS);
      return CNF_CLI_EUSAGE;
    }
    names[nf++] = t;
  }
  if (nf == 0) {
    cnf__cli_error(cmd, "--flows: no flow named");
    return CNF_CLI_EUSAGE;
  }
  double *data = NULL, *test = NULL, *grid = NULL, *glp = NULL, *mean = NULL, *sd = NULL;
  size_t N = 0, D = 0, NT = 0, Dt = 0;
  result res[MAX_FLOWS];
  char *text = NULL;
  if (cnf_ctx_create(&wctx) != 0) {
    cnf__cli_error(cmd, "cannot create a library context");
    return CNF_CLI_EFAIL;
  }
  status = cnf__cli_load_data(cmd, wctx, a->data, 20000, a->seed, 0, &data, &N, &D);
  if (status != CNF_CLI_OK) goto cleanup;
  const uint64_t test_seed = cnf_seed_derive(a->seed, "test", 0);
  if (c.test != NULL) {
    status = cnf__cli_load_data(cmd, wctx, c.test, c.ntest, test_seed, D, &test, &NT, &Dt);
    if (status != CNF_CLI_OK) goto cleanup;
  } else if (cnf__cli_is_toy(a->data)) {
    NT = c.ntest;
    test = malloc(NT * D * sizeof(double));
    if (test) cnf_toy_sample(a->data, NT, test_seed, test);
  } else {
    NT = N / 10;
    if (NT == 0 || N - NT < 2) {
      cnf__cli_error(cmd, "%s: too few rows (%zu) to hold out a test set; give --test", a->data, N);
      status = CNF_CLI_EUSAGE;
      goto cleanup;
    }
    N -= NT;
    test = malloc(NT * D * sizeof(double));
    if (test) memcpy(test, data + N * D, NT * D * sizeof(double));
  }
  mean = malloc(D * sizeof(double)), sd = malloc(D * sizeof(double));
  if (test == NULL || mean == NULL || sd == NULL) {
    cnf__cli_error(cmd, "out of memory");
    status = CNF_CLI_EFAIL;
    goto cleanup;
  }
  cnf_moments(N, D, data, mean, sd);
  const size_t G = a->size, G2 = G * G;
  if (D == 2) {
    grid = malloc(G2 * 2 * sizeof(double)), glp = calloc(nf * G2, sizeof(double));
    if (grid == NULL || glp == NULL) {
      cnf__cli_error(cmd, "out of memory");
      status = CNF_CLI_EFAIL;
      goto cleanup;
    }
    cnf_plot_grid(a->range, G, grid);
    for (size_t i = 0; i < G2; i++)
      for (size_t k = 0; k < 2; k++) grid[2 * i + k] = mean[k] + sd[k] * grid[2 * i + k];
  }
  fprintf(stderr,
          "compare: %zu training rows, %zu test rows, D = %zu, %zu iterations of batch %zu\n", N,
          NT, D, a->iters, a->minibatch < N ? a->minibatch : N);
  for (size_t k = 0; k < nf; k++) {
    status = run_one(cmd, &c, names[k], data, N, test, NT, D, mean, sd, grid, G2,
                     glp ? glp + k * G2 : NULL, &res[k]);
    if (status != CNF_CLI_OK) goto cleanup;
    failed += !res[k].ok;
    fprintf(stderr, "compare: %-12s test NLL %.4f (%.4g s/iter, %zu failed steps skipped)\n",
            names[k], res[k].nll, res[k].train_s, res[k].skipped);
  }
  /* the table: stdout, CSV, Markdown */
  size_t cap = 4096 + nf * 512;
  text = malloc(cap);
  if (text == NULL) {
    status = CNF_CLI_EFAIL;
    goto cleanup;
  }
  printf("%-12s %12s %10s %14s %16s %17s %8s\n", "flow", "test_nll", "params", "train_s_iter",
         "sample_s_per1k", "density_s_per1k", "nfe");
  for (size_t k = 0; k < nf; k++)
    printf("%-12s %12.4f %10zu %14.5f %16.5f %17.5f %8.1f\n", res[k].name, res[k].nll,
           res[k].params, res[k].train_s, res[k].sample_s, res[k].density_s, res[k].nfe);
  size_t n = 0;
  n += (size_t)snprintf(text + n, cap - n,
                        "flow,test_nll,params,train_s_per_iter,sample_s_per_1000,"
                        "density_s_per_1000,nfe\n");
  for (size_t k = 0; k < nf; k++) /* nfe: nan for the discrete flows */
    n += (size_t)snprintf(text + n, cap - n, "%s,%.10g,%zu,%.6g,%.6g,%.6g,%.6g\n", res[k].name,
                          res[k].nll, res[k].params, res[k].train_s, res[k].sample_s,
                          res[k].density_s, res[k].nfe);
  char path[4096];
  snprintf(path, sizeof path, "%s.csv", c.prefix);
  if ((status = write_atomic(cmd, wctx, path, text)) != CNF_CLI_OK) goto cleanup;
  n = 0;
  n += (size_t)snprintf(text + n, cap - n,
                        "| flow | test NLL (nats) | parameters | train s/iter | sample s/1000 | "
                        "density s/1000 | NFE |\n|---|---:|---:|---:|---:|---:|---:|\n");
  for (size_t k = 0; k < nf; k++) {
    char nfe[32] = "-";
    if (!isnan(res[k].nfe)) snprintf(nfe, sizeof nfe, "%.1f", res[k].nfe);
    n += (size_t)snprintf(text + n, cap - n, "| %s | %.4f | %zu | %.4g | %.4g | %.4g | %s |\n",
                          res[k].name, res[k].nll, res[k].params, res[k].train_s, res[k].sample_s,
                          res[k].density_s, nfe);
  }
  snprintf(path, sizeof path, "%s.md", c.prefix);
  if ((status = write_atomic(cmd, wctx, path, text)) != CNF_CLI_OK) goto cleanup;
  if (D == 2) {
    snprintf(path, sizeof path, "%s.png", c.prefix);
    int rc = cnf_plot_heatmaps(wctx, nf, G, glp, a->range, NULL, 0, path);
    if (rc != 0) status = cnf__cli_lib_fail(cmd, wctx, rc, 0);
  }
  if (status == CNF_CLI_OK && failed > 0) {
    cnf__cli_error(cmd, "%zu of %zu flows failed (their rows say nan); the others are written",
                   failed, nf);
    status = CNF_CLI_ESOLVER;
  }
cleanup:
  cnf_ctx_free(wctx);
  free(data), free(grid), free(glp), free(mean), free(sd), free(text);
  free(test);
  return status;
}
