/* pde.c: `cnf pde`, the PDE benchmarks of cnf_pde.h: samples of p0 are
 * carried to time T by a field (the problem's probability-flow field, or
 * with --learned an MLP regressed on it), and the log-density the CNF
 * machinery computes along the way, log p0(x0) + Delta(t), is compared with
 * the closed-form or reference log p_t at the computed x(t).  Prints the
 * metrics (LPE; moments and W2; the double well's masses and KL) and the
 * solver statistics, one `name value` per line.
 *
 * Problems: liouville-linear (P1a, v = A x), cubic (P1b, v = -x^3), heat
 * (P2, from a Gaussian mixture), ou (P3, Ornstein-Uhlenbeck) and
 * double-well (P4, against a 1-D finite-volume reference).  P4, and P3 or
 * P4 with --learned, are reported at 21 times.  The numerics are the
 * library's (cnf_pde_problem_create, cnf_pde_learn, cnf_pde_report_times,
 * cnf_pde_density_curves): this file parses, calls and prints. */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cnf.h"
#include "cnf_dynamics.h"
#include "cnf_pde.h"

#define NTIMES 21 /* the report over time: 21 equally spaced times in [0, T] */

static int conv_problem(const char *s, void *d) {
  return cnf_pde_kind_parse(s, d) == 0 ? 0 : -1;
}

static int conv_matrix(const char *s, void *d) {
  if (strcmp(s, "rotation") == 0)
    *(cnf_pde_amat *)d = CNF_PDE_A_ROTATION;
  else if (strcmp(s, "dense") == 0)
    *(cnf_pde_amat *)d = CNF_PDE_A_DENSE;
  else
    return -1;
  return 0;
}

/* The options beyond run_args. */
typedef struct pde_opts {
  cnf_pde_problem_config pc;
  int learned;
  const char *plot, *out;
} pde_opts;

static void print_trace_var(const cnf_stats *st) {
  if (st->trace_var_n > 0)
    printf("trace_var %.6g\ntrace_var_terms %ld\n", st->trace_var_sum / (double)st->trace_var_n,
           st->trace_var_n);
}

/* --learned: an MLP field of --hidden regressed on the problem's velocity;
 * prints the training lines.  *mlp and *theta are the caller's to free. */
static int learn(const char *cmd, cnf_ctx *ctx, const run_args *a, cnf_pde_problem *pb,
                 cnf_dyn **mlp, double **theta) {
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, cnf_pde_problem_dim(pb));
  if (cnf_mlp_parse_hidden(&cfg, a->hidden) != 0) {
    cnf__cli_error(cmd, "--hidden: expected sizes like 64-64, got '%s'", a->hidden);
    return CNF_CLI_EUSAGE;
  }
  const size_t P = cnf_mlp_param_count(&cfg);
  int status = CNF_CLI_OK;
  if ((*theta = cnf__cli_alloc(cmd, P, 1, "parameters", &status)) == NULL) return status;
  int rc = cnf_dyn_mlp_create(mlp, ctx, &cfg);
  /* the run's threads split the network's batches (cnf__cli_begin) */
  if (rc == 0 && cnf__cli_threads() > 1) rc = cnf_dyn_mlp_set_threads(*mlp, cnf__cli_threads());
  if (rc == 0) rc = cnf_mlp_init_params(&cfg, cnf_seed_derive(a->seed, "pde-init", 0), *theta);
  cnf_pde_learn_options lo;
  cnf_pde_learn_options_default(&lo);
  lo.iters = a->iters, lo.minibatch = a->minibatch, lo.lr = a->train.lr, lo.seed = a->seed;
  double loss = NAN;
  const double w0 = cnf__cli_now();
  if (rc == 0) rc = cnf_pde_learn(ctx, pb, *mlp, *theta, &lo, &loss);
  if (rc != 0) return cnf__cli_lib_fail(cmd, ctx, rc, 0);
  char hid[128];
  printf(
      "learned 1\nhidden %s\nparams %zu\niters %zu\nminibatch %zu\nlr %g\ntrain_loss "
      "%.6g\ntrain_seconds %.3f\n",
      cnf_mlp_format_hidden(&cfg, hid, sizeof hid), P, a->iters, a->minibatch, a->train.lr, loss,
      cnf__cli_now() - w0);
  return CNF_CLI_OK;
}

/* The 21-time table: one block per time, then the final time's figures. */
static void print_over_time(const cnf_pde_metrics *rows, const cnf_pde_report *rep, size_t d,
                            int dw) {
  for (size_t k = 0; k < NTIMES; k++) {
    const cnf_pde_metrics *r = rows + k;
    printf("lpe_mean@%g %.6g\nw2@%g %.6g\n", r->t, r->lpe_mean, r->t, r->w2);
    if (dw)
      printf("mass_left@%g %.6g\nmass_left_ref@%g %.6g\n", r->t, r->mass_left, r->t,
             r->mass_left_ref);
  }
  const cnf_pde_metrics *f = rows + NTIMES - 1;
  printf("lpe_mean %.6g\nlpe_max %.6g\nlpe_per_dim %.6g\nw2 %.6g\n", f->lpe_mean, f->lpe_max,
         f->lpe_mean / (double)d, f->w2);
  if (dw)
    printf("mass_left %.6g\nmass_left_ref %.6g\nkl_inf_ref %.6g\nkl_inf_flow %.6g\n", f->mass_left,
           f->mass_left_ref, rep->kl_inf_ref, rep->kl_inf_flow);
}

/* --out: the 21-time table as CSV (OU: no well masses). */
static int write_csv(const char *cmd, cnf_ctx *ctx, const char *path, const cnf_pde_metrics *rows,
                     int dw) {
  static const char *const names[] = {"t",  "lpe_mean",  "lpe_max",
                                      "w2", "mass_left", "mass_left_ref"};
  const size_t cols = dw ? 6 : 4;
  double table[NTIMES * 6];
  for (size_t k = 0; k < NTIMES; k++) {
    const double row[6] = {rows[k].t,  rows[k].lpe_mean,  rows[k].lpe_max,
                           rows[k].w2, rows[k].mass_left, rows[k].mass_left_ref};
    memcpy(table + k * cols, row, cols * sizeof(double));
  }
  return cnf__cli_write_table(cmd, ctx, path, names, NTIMES, cols, table);
}

/* --plot: the 1-D double well's reference (solid) and the field's (dashed)
 * densities at 0.1 T, 0.25 T, 0.5 T and T. */
static int plot(const char *cmd, cnf_ctx *ctx, const run_args *a, cnf_pde_problem *pb, cnf_dyn *dyn,
                const double *theta, const char *path) {
  enum { G = 400, NT = 4 };
  const double T = cnf_pde_problem_time(pb);
  const double times[NT] = {0.1 * T, 0.25 * T, 0.5 * T, T};
  // clang-format off
  static const unsigned char rgb[2 * NT * 3] = { /* per time: solid, then dashed */
      31, 119, 180,   31, 119, 180,   /* blue */
      255, 127, 14,   255, 127, 14,   /* orange */
      44, 160, 44,    44, 160, 44,    /* green */
      214, 39, 40,    214, 39, 40};   /* red */
  // clang-format on
  static const int dashed[2 * NT] = {0, 1, 0, 1, 0, 1, 0, 1};
  double x[G], y[2 * NT * G];
  int rc = cnf_pde_density_curves(ctx, pb, dyn, theta, &a->opt, -3.5, 3.5, G, NT, times, x, y);
  char names[2 * NT][64], title[128];
  const char *keys[2 * NT];
  for (size_t k = 0; k < 2 * NT; k++) {
    snprintf(names[k], sizeof names[k], "%s, t = %g", k % 2 ? "CNF" : "reference", times[k / 2]);
    keys[k] = names[k];
  }
  snprintf(title, sizeof title, "Double-well Fokker-Planck density, d = 1, T = %g", T);
  cnf_plot_options po;
  cnf_plot_options_default(&po);
  po.title = title, po.xlabel = "x", po.ylabel = "density p(t, x)", po.names = keys;
  if (rc == 0) rc = cnf_plot_lines_with(ctx, &po, path, 800, 480, G, x, 2 * NT, y, rgb, dashed);
  if (rc != 0) return cnf__cli_lib_fail(cmd, ctx, rc, 0);
  printf("plot %s\nplot_x_range -3.5 3.5\nplot_times %g %g %g %g\n", path, times[0], times[1],
         times[2], times[3]);
  return CNF_CLI_OK;
}

/* Build the problem, learn if asked, report at T or over 21 times, write
 * the table and the plot if asked.  Returns an exit status. */
static int run(const char *cmd, const run_args *a, const pde_opts *po) {
  const cnf_pde_kind kind = po->pc.kind;
  const int over_time = kind == CNF_PDE_P4 || po->learned;
  const size_t m = over_time ? NTIMES : 1;
  int status = CNF_CLI_OK;
  cnf_ctx *ctx = NULL;
  cnf_pde_problem *pb = NULL;
  cnf_dyn *mlp = NULL;
  double *theta = NULL;
  cnf_pde_metrics rows[NTIMES];
  cnf_pde_report rep;
  if (cnf_ctx_create(&ctx) != 0) {
    cnf__cli_error(cmd, "cannot create a library context");
    return CNF_CLI_EFAIL;
  }
  const double w0 = cnf__cli_now();
  int rc = cnf_pde_problem_create(&pb, ctx, &po->pc);
  if (rc != 0) {
    status = rc == CNF_EINVAL ? (cnf__cli_error(cmd, "%s", cnf_ctx_errmsg(ctx)), CNF_CLI_EUSAGE)
                              : cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  const size_t D = cnf_pde_problem_dim(pb);
  printf(
      "problem %s\ndim %zu\ntime %g\nsamples %zu\ntrace %s\nprobes %zu\nmethod %s\nrtol %g\n"
      "atol %g\n",
      cnf_pde_kind_name(kind), D, cnf_pde_problem_time(pb), a->n, cnf_trace_name(a->opt.trace),
      a->opt.trace == CNF_TRACE_EXACT ? D : a->opt.probes, cnf_method_name(a->opt.method),
      a->opt.rtol, a->opt.atol);
  if (kind == CNF_PDE_P4)
    printf("diffusion %g\nrotated %d\nreference_seconds %.3f\n", po->pc.diffusion, po->pc.rotate,
           cnf__cli_now() - w0);
  cnf_dyn *dyn = cnf_pde_problem_field(pb);
  const double *th = cnf_pde_problem_theta(pb);
  if (po->learned) {
    if ((status = learn(cmd, ctx, a, pb, &mlp, &theta)) != CNF_CLI_OK) goto cleanup;
    dyn = mlp, th = theta;
  }
  rc = cnf_pde_report_times(ctx, pb, dyn, th, &a->opt, a->n, a->seed, m, NULL, rows, &rep);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  if (over_time) {
    print_over_time(rows, &rep, D, kind == CNF_PDE_P4);
  } else {
    printf("lpe_mean %.6g\nlpe_max %.6g\nlpe_per_dim %.6g\n", rows[0].lpe_mean, rows[0].lpe_max,
           rows[0].lpe_mean / (double)D);
    if (cnf_pde_problem_is_gaussian(pb))
      printf("mean_rel_err %.6g\ncov_rel_err %.6g\nw2sq %.6g\n", rows[0].mean_rel, rows[0].cov_rel,
             rows[0].w2sq);
  }
  const cnf_stats *st = &rep.stats;
  printf(
      "solves %ld\nnfe %ld\nnsteps %ld\nnetf %ld\nnni %ld\nnjtv %ld\nnli %ld\nwall_seconds "
      "%.6f\n",
      st->solves, st->nfe, st->nsteps, st->netf, st->nni, st->njtv, st->nli, rep.solve_seconds);
  print_trace_var(st);
  if (po->out != NULL) status = write_csv(cmd, ctx, po->out, rows, kind == CNF_PDE_P4);
  if (status == CNF_CLI_OK && po->plot != NULL) status = plot(cmd, ctx, a, pb, dyn, th, po->plot);
cleanup:
  free(theta);
  cnf_dyn_free(mlp);
  cnf_pde_problem_free(pb);
  cnf_ctx_free(ctx);
  return status;
}

int cnf__cli_pde(int argc, char **argv, size_t threads) {
  const char *cmd = "pde";
  run_args a;
  cnf__cli_args_default(&a);
  pde_opts po = {.learned = 0, .plot = NULL, .out = NULL};
  cnf_pde_problem_config_default(&po.pc, (cnf_pde_kind)-1, 0);
  a.n = 1000;
  a.time = -1.0; /* not given: the problem's T */
  a.opt.rtol = a.opt.atol = 1e-8;
  a.opt.max_steps = 1000000;
  a.iters = 2000;
  a.minibatch = 256;
  a.hidden = "64-64";
  a.train.lr = 3e-3;
  const cnf_cli_opt opts[] = {
      ROW("problem", 0, CNF_CLI_CHOICE, &po.pc.kind, 0, 0, conv_problem, 1,
          "liouville-linear|cubic|heat|ou|double-well", "the benchmark problem (docs/pde.md)"),
      ROW("dim", 0, CNF_CLI_SIZE, &a.dim, 1, 100000, NULL, 1, "D", "dimension (heat: >= 2)"),
      ROW("time", 0, CNF_CLI_POS, &a.time, 0, 0, NULL, 0, "T",
          "end time (1, 0.5, 1, 2, 1 for the five problems)"),
      ROW("samples", 'n', CNF_CLI_SIZE, &a.n, 2, 10000000, NULL, 0, "N", "samples of p0 (1000)"),
      ROW("matrix", 0, CNF_CLI_CHOICE, &po.pc.matrix, 0, 0, conv_matrix, 0, "rotation|dense",
          "liouville-linear: A = -I/2 + 2 rotations, or N(0, 1/D) - I (rotation)"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S", "seed of samples, probes, A (0)"),
      ROW("diffusion", 0, CNF_CLI_POS, &po.pc.diffusion, 0, 0, NULL, 0, "D",
          "double-well: diffusion D of dX = -V'(X) dt + sqrt(2D) dW, 0.1..100 (1)"),
      ROW("cells", 0, CNF_CLI_SIZE, &po.pc.cells, 16, 1000000, NULL, 0, "N",
          "double-well: cells of the 1-D reference on [-5, 5], a multiple of 4 (1000)"),
      ROW("rotate", 0, CNF_CLI_FLAG, &po.pc.rotate, 0, 0, NULL, 0, "",
          "double-well: x = Q y with a random orthogonal Q (a dense Jacobian)"),
      ROW("learned", 0, CNF_CLI_FLAG, &po.learned, 0, 0, NULL, 0, "",
          "ou, double-well: regress an MLP field on the velocity, then report it"),
      ROW("iters", 0, CNF_CLI_SIZE, &a.iters, 1, 100000000, NULL, 0, "N",
          "--learned: Adam iterations (2000)"),
      ROW("hidden", 0, CNF_CLI_STR, &a.hidden, 0, 0, NULL, 0, "H1-H2..",
          "--learned: hidden layer sizes (64-64)"),
      ROW("lr", 0, CNF_CLI_POS, &a.train.lr, 0, 0, NULL, 0, "R",
          "--learned: Adam's step size, decayed by a cosine to 0 (3e-3)"),
      ROW("minibatch", 0, CNF_CLI_SIZE, &a.minibatch, 16, 1000000, NULL, 0, "B",
          "--learned: samples per iteration, 16 times of B/16 each (256)"),
      ROW("out", 'o', CNF_CLI_STR, &po.out, 0, 0, NULL, 0, "FILE.csv",
          "ou --learned, double-well: the table over the 21 times"),
      ROW("plot", 0, CNF_CLI_STR, &po.plot, 0, 0, NULL, 0, "FILE.png|.svg|.pdf",
          "double-well --dim 1: reference (solid) and field (dashed) densities"),
      TRACE_ROW(a, "exact"),
      TOL_ROWS(a, "1e-8", "1e-8", "1000000"),
      RUN_ROWS(a),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf pde --problem NAME --dim D [options]",
      "Carry N samples of p0 to time T with the problem's probability-flow field and compare\n"
      "the log-density the solver computes, log p0(x0) + Delta(T), with the closed form at\n"
      "x(T): prints lpe_mean, lpe_max, lpe_per_dim, and for the Gaussian problems\n"
      "(liouville-linear, ou) mean_rel_err, cov_rel_err, w2sq; then solver statistics.\n"
      "double-well, and ou or double-well with --learned, report at 21 times in [0, T]\n"
      "(lpe_mean@t, w2@t, mass_left@t) and at T (KL to p_inf for the double well)."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  const cnf_pde_kind prob = po.pc.kind;
  const size_t D = a.dim;
  const double T = a.time > 0 ? a.time : cnf_pde_default_time(prob);
  po.pc.d = D, po.pc.T = T, po.pc.seed = a.seed;
  a.opt.report_var = a.opt.trace != CNF_TRACE_EXACT && a.opt.probes >= 2; /* trace_var */
  if (prob == CNF_PDE_P2 && D < 2) {
    cnf__cli_error(cmd, "--dim: the heat problem needs D >= 2");
    return CNF_CLI_EUSAGE;
  }
  if (po.learned && prob != CNF_PDE_P3 && prob != CNF_PDE_P4) {
    cnf__cli_error(cmd, "--learned: only the ou and double-well problems have a learned mode");
    return CNF_CLI_EUSAGE;
  }
  if (po.plot != NULL && (prob != CNF_PDE_P4 || D != 1)) {
    cnf__cli_error(cmd,
                   "--plot draws the 1-D double-well density: it needs --problem "
                   "double-well --dim 1");
    return CNF_CLI_EUSAGE;
  }
  if (prob == CNF_PDE_P4 && T > 1000) {
    cnf__cli_error(cmd, "--time: the double-well reference covers T <= 1000, not %g", T);
    return CNF_CLI_EUSAGE;
  }
  if (prob == CNF_PDE_P4 && po.pc.rotate && D > 4096) {
    cnf__cli_error(cmd, "--rotate: a dense rotation of dimension %zu is too large (at most 4096)",
                   D);
    return CNF_CLI_EUSAGE;
  }
  if (po.out != NULL && prob != CNF_PDE_P4 && !po.learned) {
    cnf__cli_error(cmd, "--out: only for double-well, or ou with --learned");
    return CNF_CLI_EUSAGE;
  }
  return run(cmd, &a, &po);
}
