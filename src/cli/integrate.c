/* integrate.c: `cnf integrate`, integration on [0, 1]^n by importance
 * sampling (cnf_integrate.h): N draws of a sampler q, weights
 * w = f(x) / q(x), and the estimate with its standard error, the exact
 * value, the pull, the weights' relative spread and the unweighting
 * efficiency, one `name value` per line; the uniform sampler's figures
 * (same N and seed) follow as the baseline, then the solver statistics.
 *
 * Samplers: the training-free linear field (q = N(1/2, A^2/2 I), A from
 * --width, by default the integrand's alpha) or, with --learned, a flow
 * trained first by minimising KL(q || f / I). */
#define _POSIX_C_SOURCE 200809L
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cnf.h"
#include "cnf_integrate.h"

static int conv_integrand(const char *s, void *d) {
  return cnf_integrand_parse(s, (cnf_integrand_kind *)d);
}

static void print_result(const char *prefix, const cnf_integrate_result *r) {
  printf(
      "%sestimate %.10g\n%sstderr %.6g\n%sexact %.10g\n%spull %.4f\n%srel_spread %.6g\n"
      "%sefficiency %.6g\n%szero_frac %.6g\n",
      prefix, r->estimate, prefix, r->std_error, prefix, r->exact, prefix, r->pull, prefix,
      r->rel_spread, prefix, r->efficiency, prefix, r->zero_frac);
}

/* Train the learned sampler and draw N points from it; exit status. */
static int learned(const char *cmd, cnf_ctx *ctx, const run_args *a, const cnf_mlp_config *cfg,
                   const cnf_integrand *f, double init_scale, double lam, size_t threads, double *x,
                   double *logq, cnf_stats *st) {
  cnf_integrate_flow *fl = NULL;
  double *losses = NULL;
  int status = CNF_CLI_OK;
  cnf_stats fwd, bwd;
  cnf_stats_clear(&fwd);
  cnf_stats_clear(&bwd);
  int rc = cnf_integrate_flow_create(&fl, ctx, cfg, a->seed, init_scale);
  /* the run's threads split the batch, as for the other commands' flows */
  if (rc == 0) rc = cnf_integrate_flow_set_threads(fl, threads);
  if (rc == 0 && (losses = cnf__cli_alloc(cmd, a->iters, 1, "losses", &status)) == NULL)
    goto cleanup;
  double t0 = cnf__cli_now();
  if (rc == 0)
    rc = cnf_integrate_flow_train(fl, f, &a->opt, &a->train, a->iters, a->minibatch, a->seed,
                                  losses, &fwd, &bwd);
  double train_wall = cnf__cli_now() - t0;
  if (rc == 0)
    rc = lam > 0 ? cnf_integrate_flow_sample_defensive(fl, &a->opt, a->n, lam, a->seed, x, logq, st)
                 : cnf_integrate_flow_sample(fl, &a->opt, a->n, a->seed, x, logq, NULL, st);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  /* the loss's running mean over the first and the last tenth of the steps */
  const size_t m = a->iters / 10 > 0 ? a->iters / 10 : 1;
  double first = 0.0, last = 0.0;
  for (size_t i = 0; i < m; i++) first += losses[i], last += losses[a->iters - 1 - i];
  char hid[128];
  printf(
      "defensive %g\nhidden %s\nparams %zu\niters %zu\nbatch %zu\nlr %g\n"
      "loss_first %.6g\nloss_last %.6g\ntrain_nfe_fwd %ld\ntrain_nfe_bwd %ld\ntrain_seconds %.3f\n",
      lam, cnf_mlp_format_hidden(cfg, hid, sizeof hid), cnf_integrate_flow_param_count(fl),
      a->iters, a->minibatch, a->train.lr, first / (double)m, last / (double)m, fwd.nfe, bwd.nfe,
      train_wall);
cleanup:
  free(losses);
  cnf_integrate_flow_free(fl);
  return status;
}

/* The threads in force (the command's --threads, else the global one, else
 * the machine's cores, at most 64: the rule of cnf__cli_begin). */
int cnf__cli_integrate(int argc, char **argv, size_t threads) {
  const char *cmd = "integrate";
  run_args a;
  cnf__cli_args_default(&a);
  cnf_integrand f = {(cnf_integrand_kind)-1, 0, CNF_INTEGRAND_ALPHA};
  double width = CNF_INTEGRAND_ALPHA, init_scale = 0.1, lam = 0.0;
  int learn = 0;
  a.n = 10000;
  a.opt.rtol = a.opt.atol = 1e-8;
  a.opt.max_steps = 1000000;
  a.hidden = "32-32";
  a.iters = 200;
  a.minibatch = 256;
  a.train.lr = 5e-3;
  const cnf_cli_opt opts[] = {
      ROW("integrand", 0, CNF_CLI_CHOICE, &f.kind, 0, 0, conv_integrand, 1, "gauss|camel|poly",
          "the integrand on [0, 1]^n (alpha = 0.2)"),
      ROW("dim", 0, CNF_CLI_SIZE, &a.dim, 1, 10000, NULL, 1, "N", "dimension n"),
      ROW("samples", 'n', CNF_CLI_SIZE, &a.n, 2, 100000000, NULL, 0, "N",
          "samples of the estimate (10000)"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S",
          "seed of samples, probes and the network (0)"),
      ROW("width", 0, CNF_CLI_POS, &width, 0, 0, NULL, 0, "A",
          "training-free sampler N(1/2, A^2/2 I) (0.2)"),
      ROW("learned", 0, CNF_CLI_FLAG, &learn, 0, 0, NULL, 0, "",
          "train a flow by KL(q || f/I) first and sample from it"),
      ROW("iters", 0, CNF_CLI_SIZE, &a.iters, 1, (size_t)1 << 30, NULL, 0, "N",
          "--learned: Adam steps (200)"),
      ROW("batch", 0, CNF_CLI_SIZE, &a.minibatch, 1, 1000000, NULL, 0, "B",
          "--learned: base points per step (256)"),
      ROW("hidden", 0, CNF_CLI_STR, &a.hidden, 0, 0, NULL, 0, "H1-H2-...",
          "--learned: hidden layer sizes (32-32)"),
      ROW("lr", 0, CNF_CLI_POS, &a.train.lr, 0, 0, NULL, 0, "LR",
          "--learned: Adam step size (5e-3)"),
      ROW("init-scale", 0, CNF_CLI_NONNEG, &init_scale, 0, 0, NULL, 0, "S",
          "--learned: factor on the last layer's initial weights (0.1)"),
      ROW("defensive", 0, CNF_CLI_NONNEG, &lam, 0, 0, NULL, 0, "L",
          "--learned: share L of uniform draws in the sampler, 0 to 1 (0)"),
      ROW("adjoint", 0, CNF_CLI_CHOICE, &a.opt.adjoint, 0, 0, cnf__cli_conv_adjoint, 0,
          "backsolve|checkpoint", "--learned: adjoint method (checkpoint)"),
      TRACE_ROW(a, "exact"),
      TOL_ROWS(a, "1e-8", "1e-8", "1000000"),
      RUN_ROWS(a),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf integrate --integrand gauss|camel|poly --dim N [options]",
      "Estimate the integral of f over [0, 1]^n by importance sampling: N draws x of q,\n"
      "weights w = f(x) / q(x) (0 outside the cube).  q is the linear field's\n"
      "N(1/2, A^2/2 I), integrated by the solver with its log-density, or with --learned\n"
      "an MLP flow into the cube (sigmoid) trained by minimising KL(q || f/I) with adjoint\n"
      "gradients.  Prints the estimate, stderr, exact, pull = (estimate - exact) / stderr,\n"
      "rel_spread = sd(w) / mean(w), efficiency = mean(w) / max(w) and zero_frac, then the\n"
      "same for the uniform sampler (uniform_*), then solver statistics."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  status = CNF_CLI_OK;
  f.dim = a.dim;
  const size_t n = a.dim, N = a.n;
  if (lam > 1) {
    cnf__cli_error(cmd, "--defensive: expected a share from 0 to 1, found %g", lam);
    return CNF_CLI_EUSAGE;
  }
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, n);
  if (learn && cnf_mlp_parse_hidden(&cfg, a.hidden) != 0) {
    cnf__cli_error(cmd, "--hidden: expected sizes like 32-32, found '%s'", a.hidden);
    return CNF_CLI_EUSAGE;
  }
  if (!learn && fabs(width - sqrt(2.0)) < 1e-12) {
    cnf__cli_error(cmd, "--width: A = sqrt 2 makes the field zero; choose another width");
    return CNF_CLI_EUSAGE;
  }

  cnf_ctx *ctx = NULL;
  double *x = NULL, *logq = NULL, *w = NULL;
  if (cnf_ctx_create(&ctx) != 0) {
    cnf__cli_error(cmd, "cannot create a library context");
    return CNF_CLI_EFAIL;
  }
  if ((x = cnf__cli_alloc(cmd, N, n, "samples", &status)) == NULL ||
      (logq = cnf__cli_alloc(cmd, N, 1, "samples", &status)) == NULL ||
      (w = cnf__cli_alloc(cmd, N, 1, "samples", &status)) == NULL)
    goto cleanup;

  printf("integrand %s\ndim %zu\nsamples %zu\nsampler %s\n", cnf_integrand_name(f.kind), n, N,
         learn ? "learned" : "linear");
  if (!learn) printf("width %g\n", width);
  printf("trace %s\nprobes %zu\nmethod %s\nrtol %g\natol %g\n", cnf_trace_name(a.opt.trace),
         a.opt.trace == CNF_TRACE_EXACT ? n : a.opt.probes, cnf_method_name(a.opt.method),
         a.opt.rtol, a.opt.atol);
  cnf_stats st;
  cnf_stats_clear(&st);
  cnf_integrate_result res, uni;
  double t0 = cnf__cli_now();
  int rc = 0;
  if (learn) {
    if ((status = learned(cmd, ctx, &a, &cfg, &f, init_scale, lam, cnf__cli_threads(), x, logq,
                          &st)) != CNF_CLI_OK)
      goto cleanup;
  } else {
    rc = cnf_integrate_linear(ctx, n, width, &a.opt, N, a.seed, x, logq, &st);
  }
  double wall = cnf__cli_now() - t0;
  if (a.verbose) cnf__cli_report(&a, N, &st, wall);
  if (rc == 0) rc = cnf_integrate_weights(ctx, &f, N, x, logq, w, &res);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  print_result("", &res);
  if (!isnan(res.kl)) printf("kl %.6g\n", res.kl);
  /* Gauss with the matching width: the weights are the cube's indicator,
   * so any deviation inside is the solver's (state and trace) error */
  if (!learn && f.kind == CNF_INTEGRAND_GAUSS && width == f.alpha) {
    double ind_err = 0.0;
    for (size_t b = 0; b < N; b++)
      if (w[b] > 0) ind_err = fmax(ind_err, fabs(w[b] - 1.0));
    printf("indicator_err %.6g\n", ind_err);
  }

  /* the baseline: uniform draws, w = f(x) */
  rc = cnf_integrate_uniform(n, N, a.seed, x, logq);
  if (rc == 0) rc = cnf_integrate_weights(ctx, &f, N, x, logq, NULL, &uni);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  print_result("uniform_", &uni);
  printf(
      "solves %ld\nnfe %ld\nnsteps %ld\nnetf %ld\nnni %ld\nnjtv %ld\nnli %ld\nwall_seconds %.6f\n",
      st.solves, st.nfe, st.nsteps, st.netf, st.nni, st.njtv, st.nli, wall);
cleanup:
  free(x), free(logq), free(w);
  cnf_ctx_free(ctx);
  return status;
}
