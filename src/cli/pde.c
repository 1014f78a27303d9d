/* pde.c: `cnf pde`, the training-free PDE benchmarks of cnf_pde.h: samples
 * of p0 are carried to time T by the problem's probability-flow field, and
 * the log-density the CNF machinery computes along the way,
 * log p0(x0) + Delta(T), is compared with the closed-form log p_T at the
 * computed x(T).  Prints the metrics (LPE; moments and Gaussian W2 where
 * p_T is Gaussian) and the solver statistics, one `name value` per line.
 *
 * Problems: liouville-linear (P1a, v = A x), cubic (P1b, v = -x^3), heat
 * (P2, from a Gaussian mixture), ou (P3, Ornstein-Uhlenbeck) and
 * double-well (P4, against a 1-D finite-volume reference).  P4, and P3 or
 * P4 with --learned (an MLP field regressed on the velocity), are followed
 * at 21 times (pde_learn.c). */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_pde.h"

typedef enum { P1A, P1B, P2, P3, P4 } problem;
static const char *const problem_names[] = {"liouville-linear", "cubic", "heat", "ou",
                                            "double-well"};
static const double default_time[] = {1.0, 0.5, 1.0, 2.0, 1.0}; /* docs/design.md, section 10 */

static int conv_problem(const char *s, void *d) {
  for (int i = 0; i < 5; i++)
    if (strcmp(s, problem_names[i]) == 0) {
      *(problem *)d = (problem)i;
      return 0;
    }
  return -1;
}

static int conv_matrix(const char *s, void *d) {
  if (strcmp(s, "rotation") == 0) *(cnf_pde_amat *)d = CNF_PDE_A_ROTATION;
  else if (strcmp(s, "dense") == 0) *(cnf_pde_amat *)d = CNF_PDE_A_DENSE;
  else return -1;
  return 0;
}

/* The options of the problems followed over time (P3 learned, P4). */
typedef struct over_time {
  double diffusion;
  size_t cells;
  int rotate, learned;
  const char *plot, *out;
} over_time;

/* P4, or P3/P4 with --learned: set up the problem, train if asked, report
 * at 21 times, plot if asked.  Returns an exit status. */
static int run_over_time(const char *cmd, run_args *a, problem prob, const over_time *ov) {
  const size_t D = a->dim;
  const double T = a->time > 0 ? a->time : default_time[prob];
  int status = CNF_CLI_OK, rc = 0;
  cnf_ctx *ctx = NULL;
  cnf_dyn *mlp = NULL;
  double *Q = NULL, *theta = NULL;
  pde_setup p = {D, T, NULL, NULL, NULL, NULL};
  if (cnf_ctx_create(&ctx) != 0) {
    cnf__cli_error(cmd, "cannot create a library context");
    return CNF_CLI_EFAIL;
  }
  const double w0 = cnf__cli_now();
  if (prob == P3) {
    rc = cnf_pde_ou_create(&p.ou, ctx, D, a->seed);
    if (rc == 0) rc = cnf_pde_ou_dyn(&p.field, ctx, p.ou);
  } else {
    cnf_pde_dw_config c;
    cnf_pde_dw_config_default(&c, D, T);
    c.diffusion = ov->diffusion;
    if (ov->cells > 0) c.cells = ov->cells;
    if (ov->rotate) {
      if ((Q = cnf__cli_alloc(cmd, D, D, "rotation", &status)) == NULL) goto cleanup;
      rc = cnf_pde_random_orthogonal(ctx, D, a->seed ^ 0x0a7eULL, Q);
      c.Q = p.Q = Q;
    }
    if (rc == 0) rc = cnf_pde_dw_create(&p.dw, ctx, &c);
    if (rc == 0) rc = cnf_pde_dw_dyn(&p.field, ctx, p.dw);
  }
  if (rc != 0) {
    status = rc == CNF_EINVAL ? (cnf__cli_error(cmd, "%s", cnf_ctx_errmsg(ctx)), CNF_CLI_EUSAGE)
                              : cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  printf("problem %s\ndim %zu\ntime %g\nsamples %zu\ntrace %s\nprobes %zu\nmethod %s\nrtol %g\n"
         "atol %g\n",
         problem_names[prob], D, T, a->n, cnf_trace_name(a->opt.trace),
         a->opt.trace == CNF_TRACE_EXACT ? D : a->opt.probes, cnf_method_name(a->opt.method),
         a->opt.rtol, a->opt.atol);
  if (p.dw != NULL)
    printf("diffusion %g\nrotated %d\nreference_seconds %.3f\n", ov->diffusion, ov->rotate,
           cnf__cli_now() - w0);
  cnf_dyn *dyn = p.field;
  if (ov->learned) {
    cnf_mlp_config cfg;
    cnf_mlp_config_default(&cfg, D);
    if (cnf_mlp_parse_hidden(&cfg, a->hidden) != 0) {
      cnf__cli_error(cmd, "--hidden: expected sizes like 64-64, got '%s'", a->hidden);
      status = CNF_CLI_EUSAGE;
      goto cleanup;
    }
    const size_t P = cnf_mlp_param_count(&cfg);
    if ((theta = cnf__cli_alloc(cmd, P, 1, "parameters", &status)) == NULL) goto cleanup;
    rc = cnf_dyn_mlp_create(&mlp, ctx, &cfg);
    /* the run's threads split the network's batches (cnf__cli_begin) */
    if (rc == 0 && cnf__cli_threads() > 1) rc = cnf_dyn_mlp_set_threads(mlp, cnf__cli_threads());
    if (rc == 0) rc = cnf_mlp_init_params(&cfg, a->seed ^ 0x3317ULL, theta);
    if (rc != 0) {
      status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
      goto cleanup;
    }
    double loss = NAN;
    const double w1 = cnf__cli_now();
    status = cnf__cli_pde_train(cmd, ctx, &p, mlp, theta, a->iters, a->minibatch, a->train.lr,
                                a->seed, &loss);
    if (status != CNF_CLI_OK) goto cleanup;
    char hid[128];
    printf("learned 1\nhidden %s\nparams %zu\niters %zu\nminibatch %zu\nlr %g\ntrain_loss "
           "%.6g\ntrain_seconds %.3f\n",
           cnf_mlp_format_hidden(&cfg, hid, sizeof hid), P, a->iters, a->minibatch, a->train.lr,
           loss, cnf__cli_now() - w1);
    dyn = mlp;
  }
  status = cnf__cli_pde_times(cmd, ctx, a, &p, dyn, theta, ov->out);
  if (status == CNF_CLI_OK && ov->plot != NULL)
    status = cnf__cli_pde_plot(cmd, ctx, a, &p, dyn, theta, ov->plot);
cleanup:
  free(Q), free(theta);
  cnf_dyn_free(mlp);
  cnf_dyn_free(p.field);
  cnf_pde_ou_free(p.ou);
  cnf_pde_dw_free(p.dw);
  cnf_ctx_free(ctx);
  return status;
}

int cnf__cli_pde(int argc, char **argv, size_t threads) {
  const char *cmd = "pde";
  run_args a;
  cnf__cli_args_default(&a);
  problem prob = (problem)-1;
  cnf_pde_amat amat = CNF_PDE_A_ROTATION;
  a.n = 1000;
  a.time = -1.0; /* not given: the problem's T */
  a.opt.rtol = a.opt.atol = 1e-8;
  a.opt.max_steps = 1000000;
  a.iters = 2000;
  a.minibatch = 256;
  a.hidden = "64-64";
  a.train.lr = 3e-3;
  over_time ov = {1.0, 0, 0, 0, NULL, NULL};
  const cnf_cli_opt opts[] = {
      ROW("problem", 0, CNF_CLI_CHOICE, &prob, 0, 0, conv_problem, 1,
          "liouville-linear|cubic|heat|ou|double-well", "the benchmark problem (docs/pde.md)"),
      ROW("dim", 0, CNF_CLI_SIZE, &a.dim, 1, 100000, NULL, 1, "D", "dimension (heat: >= 2)"),
      ROW("time", 0, CNF_CLI_POS, &a.time, 0, 0, NULL, 0, "T",
          "end time (1, 0.5, 1, 2, 1 for the five problems)"),
      ROW("samples", 'n', CNF_CLI_SIZE, &a.n, 2, 10000000, NULL, 0, "N", "samples of p0 (1000)"),
      ROW("matrix", 0, CNF_CLI_CHOICE, &amat, 0, 0, conv_matrix, 0, "rotation|dense",
          "liouville-linear: A = -I/2 + 2 rotations, or N(0, 1/D) - I (rotation)"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S", "seed of samples, probes, A (0)"),
      ROW("diffusion", 0, CNF_CLI_POS, &ov.diffusion, 0, 0, NULL, 0, "D",
          "double-well: diffusion D of dX = -V'(X) dt + sqrt(2D) dW, 0.1..100 (1)"),
      ROW("cells", 0, CNF_CLI_SIZE, &ov.cells, 16, 1000000, NULL, 0, "N",
          "double-well: cells of the 1-D reference on [-5, 5], a multiple of 4 (1000)"),
      ROW("rotate", 0, CNF_CLI_FLAG, &ov.rotate, 0, 0, NULL, 0, "",
          "double-well: x = Q y with a random orthogonal Q (a dense Jacobian)"),
      ROW("learned", 0, CNF_CLI_FLAG, &ov.learned, 0, 0, NULL, 0, "",
          "ou, double-well: regress an MLP field on the velocity, then report it"),
      ROW("iters", 0, CNF_CLI_SIZE, &a.iters, 1, 100000000, NULL, 0, "N",
          "--learned: Adam iterations (2000)"),
      ROW("hidden", 0, CNF_CLI_STR, &a.hidden, 0, 0, NULL, 0, "H1-H2..",
          "--learned: hidden layer sizes (64-64)"),
      ROW("lr", 0, CNF_CLI_POS, &a.train.lr, 0, 0, NULL, 0, "R",
          "--learned: Adam's step size, decayed by a cosine to 0 (3e-3)"),
      ROW("minibatch", 0, CNF_CLI_SIZE, &a.minibatch, 16, 1000000, NULL, 0, "B",
          "--learned: samples per iteration, 16 times of B/16 each (256)"),
      ROW("out", 'o', CNF_CLI_STR, &ov.out, 0, 0, NULL, 0, "FILE.csv",
          "ou --learned, double-well: the table over the 21 times"),
      ROW("plot", 0, CNF_CLI_STR, &ov.plot, 0, 0, NULL, 0, "FILE.png",
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
  status = CNF_CLI_OK;
  const size_t D = a.dim, B = a.n;
  const double T = a.time > 0 ? a.time : default_time[prob];
  a.opt.report_var = a.opt.trace != CNF_TRACE_EXACT && a.opt.probes >= 2; /* trace_var */
  if (prob == P2 && D < 2) {
    cnf__cli_error(cmd, "--dim: the heat problem needs D >= 2");
    return CNF_CLI_EUSAGE;
  }
  if (ov.learned && prob != P3 && prob != P4) {
    cnf__cli_error(cmd, "--learned: only the ou and double-well problems have a learned mode");
    return CNF_CLI_EUSAGE;
  }
  if (ov.plot != NULL && (prob != P4 || D != 1)) {
    cnf__cli_error(cmd, "--plot draws the 1-D double-well density: it needs --problem "
                        "double-well --dim 1");
    return CNF_CLI_EUSAGE;
  }
  if (prob == P4 && T > 1000) {
    cnf__cli_error(cmd, "--time: the double-well reference covers T <= 1000, not %g", T);
    return CNF_CLI_EUSAGE;
  }
  if (prob == P4 && ov.rotate && D > 4096) {
    cnf__cli_error(cmd, "--rotate: a dense rotation of dimension %zu is too large (at most 4096)",
                   D);
    return CNF_CLI_EUSAGE;
  }
  if (prob == P4 || ov.learned) return run_over_time(cmd, &a, prob, &ov);
  if (ov.out != NULL) {
    cnf__cli_error(cmd, "--out: only for double-well, or ou with --learned");
    return CNF_CLI_EUSAGE;
  }

  cnf_ctx *ctx = NULL;
  cnf_dyn *dyn = NULL;
  cnf_pde_heat *heat = NULL;
  cnf_pde_ou *ou = NULL;
  double *A = NULL, *theta = NULL, *x0 = NULL, *z = NULL, *delta = NULL, *lp0 = NULL,
         *lp = NULL, *eps = NULL, *m = NULL, *S = NULL, *mh = NULL, *Sh = NULL, *E = NULL;
  if (cnf_ctx_create(&ctx) != 0) {
    cnf__cli_error(cmd, "cannot create a library context");
    return CNF_CLI_EFAIL;
  }
  const size_t K = a.opt.trace == CNF_TRACE_EXACT ? 0 : a.opt.probes;
  if ((x0 = cnf__cli_alloc(cmd, B, D, "samples", &status)) == NULL ||
      (z = cnf__cli_alloc(cmd, B, D, "samples", &status)) == NULL ||
      (delta = cnf__cli_alloc(cmd, B, 1, "samples", &status)) == NULL ||
      (lp0 = cnf__cli_alloc(cmd, B, 1, "samples", &status)) == NULL ||
      (lp = cnf__cli_alloc(cmd, B, 1, "samples", &status)) == NULL ||
      (K > 0 && (eps = cnf__cli_alloc(cmd, K * B, D, "probes", &status)) == NULL))
    goto cleanup;

  /* the field, and samples of p0 with their log-densities */
  int rc = 0;
  const int gaussian_p0 = prob != P2;
  if (gaussian_p0) {
    rc = cnf_probes_draw(CNF_TRACE_GAUSS, a.seed ^ 0x5a3b1eULL, 1, B, D, x0);
    for (size_t b = 0; b < B && rc == 0; b++) lp0[b] = cnf_log_normal(x0 + b * D, D);
  }
  switch (prob) {
    case P1A:
      A = cnf__cli_alloc(cmd, D, D, "matrix", &status);
      theta = A ? calloc(D * D + D, sizeof(double)) : NULL;
      if (theta == NULL) {
        status = CNF_CLI_EFAIL;
        goto cleanup;
      }
      if (rc == 0) rc = cnf_pde_p1a_matrix(ctx, amat, D, 0.5, 2.0, a.seed, A);
      if (rc == 0) memcpy(theta, A, D * D * sizeof(double));
      if (rc == 0) rc = cnf_dyn_linear_create(&dyn, ctx, D);
      break;
    case P1B:
      if (rc == 0) rc = cnf_dyn_cubic_create(&dyn, ctx, D, NULL);
      break;
    case P2:
      rc = cnf_pde_heat_create(&heat, ctx, D);
      if (rc == 0) rc = cnf_pde_heat_dyn(&dyn, ctx, heat);
      if (rc == 0) rc = cnf_pde_heat_sample(heat, 0.0, a.seed, B, x0);
      if (rc == 0) rc = cnf_pde_heat_logp(heat, 0.0, B, x0, lp0);
      break;
    case P3:
      if (rc == 0) rc = cnf_pde_ou_create(&ou, ctx, D, a.seed);
      if (rc == 0) rc = cnf_pde_ou_dyn(&dyn, ctx, ou);
      break;
    case P4: /* run_over_time */
      break;
  }
  if (rc == 0 && K > 0) rc = cnf_probes_draw(a.opt.trace, a.seed ^ 0x9e0beULL, K, B, D, eps);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }

  /* one solve of all samples, then the closed form at x(T) */
  memcpy(z, x0, B * D * sizeof(double));
  memset(delta, 0, B * sizeof(double)); /* Delta(0) = 0 */
  cnf_stats st;
  cnf_stats_clear(&st);
  double t0 = cnf__cli_now();
  rc = cnf_dyn_solve(dyn, theta, &a.opt, 0.0, T, B, K, eps, z, delta, &st);
  double wall = cnf__cli_now() - t0;
  if (rc == 0) {
    if (prob == P1A) rc = cnf_pde_p1a_logp(ctx, D, A, T, B, z, lp);
    if (prob == P1B) rc = cnf_pde_p1b_logp(ctx, D, NULL, T, B, z, lp);
    if (prob == P2) rc = cnf_pde_heat_logp(heat, T, B, z, lp);
    if (prob == P3) rc = cnf_pde_ou_logp(ou, T, B, z, lp);
  }
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  for (size_t b = 0; b < B; b++) lp0[b] += delta[b]; /* the computed log p_T */
  double lpe_mean = 0, lpe_max = 0;
  cnf_pde_lpe(B, lp0, lp, &lpe_mean, &lpe_max);
  printf("problem %s\ndim %zu\ntime %g\nsamples %zu\ntrace %s\nprobes %zu\nmethod %s\nrtol %g\n"
         "atol %g\n",
         problem_names[prob], D, T, B, cnf_trace_name(a.opt.trace), K ? K : D,
         cnf_method_name(a.opt.method), a.opt.rtol, a.opt.atol);
  printf("lpe_mean %.6g\nlpe_max %.6g\nlpe_per_dim %.6g\n", lpe_mean, lpe_max,
         lpe_mean / (double)D);

  /* Gaussian p_T: moments and W2 */
  if (prob == P1A || prob == P3) {
    m = calloc(D, sizeof(double)), S = calloc(D * D, sizeof(double));
    mh = calloc(D, sizeof(double)), Sh = calloc(D * D, sizeof(double));
    E = calloc(D * D, sizeof(double));
    if (!m || !S || !mh || !Sh || !E) {
      status = CNF_CLI_EFAIL;
      goto cleanup;
    }
    if (prob == P3) {
      cnf_pde_ou_moments(ou, T, m, S);
    } else if ((rc = cnf_pde_expm(ctx, D, A, T, E)) == 0) {
      /* p_T = N(0, E E^T) */
      for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j < D; j++) {
          double s = 0.0;
          for (size_t k = 0; k < D; k++) s += E[i * D + k] * E[j * D + k];
          S[i * D + j] = s;
        }
    }
    cnf_pde_gauss_err ge;
    if (rc == 0) rc = cnf_pde_sample_moments(D, B, z, mh, Sh);
    if (rc == 0) rc = cnf_pde_gauss_errors(ctx, D, mh, Sh, m, S, &ge);
    if (rc != 0) {
      status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
      goto cleanup;
    }
    printf("mean_rel_err %.6g\ncov_rel_err %.6g\nw2sq %.6g\n", ge.mean_rel, ge.cov_rel, ge.w2sq);
  }
  printf("solves %ld\nnfe %ld\nnsteps %ld\nnetf %ld\nnni %ld\nnjtv %ld\nnli %ld\nwall_seconds %.6f\n",
         st.solves, st.nfe, st.nsteps, st.netf, st.nni, st.njtv, st.nli, wall);
  cnf__cli_print_trace_var(&st);
cleanup:
  free(A), free(theta), free(x0), free(z), free(delta), free(lp0), free(lp), free(eps);
  free(m), free(S), free(mh), free(Sh), free(E);
  cnf_dyn_free(dyn);
  cnf_pde_heat_free(heat);
  cnf_pde_ou_free(ou);
  cnf_ctx_free(ctx);
  return status;
}
