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

#include "cli.h"
#include "cnf.h"
#include "cnf_integrate.h"

static int conv_integrand(const char *s, void *d) {
  return cnf_integrand_parse(s, (cnf_integrand_kind *)d);
}

static void print_result(const char *prefix, const cnf_integrate_result *r) {
  printf("%sestimate %.10g\n%sstderr %.6g\n%sexact %.10g\n%spull %.4f\n%srel_spread %.6g\n"
         "%sefficiency %.6g\n%szero_frac %.6g\n",
         prefix, r->estimate, prefix, r->std_error, prefix, r->exact, prefix, r->pull, prefix,
         r->rel_spread, prefix, r->efficiency, prefix, r->zero_frac);
}

int cnf__cli_integrate(int argc, char **argv, size_t threads) {
  const char *cmd = "integrate";
  run_args a;
  cnf__cli_args_default(&a);
  cnf_integrand f = {(cnf_integrand_kind)-1, 0, CNF_INTEGRAND_ALPHA};
  double width = CNF_INTEGRAND_ALPHA;
  a.n = 10000;
  a.opt.rtol = a.opt.atol = 1e-8;
  a.opt.max_steps = 1000000;
  const cnf_cli_opt opts[] = {
      ROW("integrand", 0, CNF_CLI_CHOICE, &f.kind, 0, 0, conv_integrand, 1, "gauss|camel|poly",
          "the integrand on [0, 1]^n (alpha = 0.2)"),
      ROW("dim", 0, CNF_CLI_SIZE, &a.dim, 1, 10000, NULL, 1, "N", "dimension n"),
      ROW("samples", 'n', CNF_CLI_SIZE, &a.n, 2, 100000000, NULL, 0, "N",
          "samples of the estimate (10000)"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S", "seed of samples and probes (0)"),
      ROW("width", 0, CNF_CLI_POS, &width, 0, 0, NULL, 0, "A",
          "training-free sampler N(1/2, A^2/2 I) (0.2)"),
      TRACE_ROW(a, "exact"),
      TOL_ROWS(a, "1e-8", "1e-8", "1000000"),
      RUN_ROWS(a),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf integrate --integrand gauss|camel|poly --dim N [options]",
      "Estimate the integral of f over [0, 1]^n by importance sampling: N draws x of q,\n"
      "weights w = f(x) / q(x) (0 outside the cube).  q is the linear field's\n"
      "N(1/2, A^2/2 I), integrated by the solver with its log-density.  Prints the\n"
      "estimate, stderr, exact, pull = (estimate - exact) / stderr, rel_spread = sd(w) /\n"
      "mean(w), efficiency = mean(w) / max(w) and zero_frac, then the same for the uniform\n"
      "sampler (uniform_*), then solver statistics."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  status = CNF_CLI_OK;
  f.dim = a.dim;
  const size_t n = a.dim, N = a.n;
  if (fabs(width - sqrt(2.0)) < 1e-12) {
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

  cnf_stats st;
  cnf_stats_clear(&st);
  cnf_integrate_result res, uni;
  double t0 = cnf__cli_now();
  int rc = cnf_integrate_linear(ctx, n, width, &a.opt, N, a.seed, x, logq, &st);
  double wall = cnf__cli_now() - t0;
  if (rc == 0) rc = cnf_integrate_weights(ctx, &f, N, x, logq, w, &res);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  /* Gauss with the matching width: the weights are the cube's indicator,
   * so any deviation inside is the solver's (state and trace) error */
  double ind_err = NAN;
  if (f.kind == CNF_INTEGRAND_GAUSS && width == f.alpha) {
    ind_err = 0.0;
    for (size_t b = 0; b < N; b++)
      if (w[b] > 0) ind_err = fmax(ind_err, fabs(w[b] - 1.0));
  }

  printf("integrand %s\ndim %zu\nsamples %zu\nsampler linear\nwidth %g\ntrace %s\nprobes %zu\n"
         "method %s\nrtol %g\natol %g\n",
         cnf_integrand_name(f.kind), n, N, width, cnf_trace_name(a.opt.trace),
         a.opt.trace == CNF_TRACE_EXACT ? n : a.opt.probes, cnf_method_name(a.opt.method),
         a.opt.rtol, a.opt.atol);
  print_result("", &res);
  if (!isnan(ind_err)) printf("indicator_err %.6g\n", ind_err);

  /* the baseline: uniform draws, w = f(x) */
  rc = cnf_integrate_uniform(n, N, a.seed, x, logq);
  if (rc == 0) rc = cnf_integrate_weights(ctx, &f, N, x, logq, NULL, &uni);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  print_result("uniform_", &uni);
  printf("solves %ld\nnfe %ld\nnsteps %ld\nnetf %ld\nnni %ld\nnjtv %ld\nnli %ld\nwall_seconds %.6f\n",
         st.solves, st.nfe, st.nsteps, st.netf, st.nni, st.njtv, st.nli, wall);
cleanup:
  free(x), free(logq), free(w);
  cnf_ctx_free(ctx);
  return status;
}
