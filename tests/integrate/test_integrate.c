/* test_integrate.c: importance-sampling integration on [0, 1]^n
 * (cnf_integrate.h).
 *
 * 1. Integrands: the closed-form integrals against tensor Gauss-Legendre
 *    quadrature (n = 1, 2; 1e-12), log f's gradient against central
 *    differences, -inf and zero gradient outside the cube.
 * 2. The summary of weights against hand formulas, and the uniform sampler
 *    against moments known in closed form (polynomial: relative spread
 *    6 / sqrt(180 n)).
 * 3. The training-free bar: the linear field's log q equals the closed-form
 *    log N(x; 1/2, alpha^2/2 I), the Gauss weights equal the cube's
 *    indicator (to the solver's error), and their mean and relative
 *    variance match P = erf(1/(2 alpha))^n and (1 - P)/P within 3 standard
 *    errors, n = 2, 4, 8, 16.  For weights w in {0, 1}, mean p_hat:
 *      Var(p_hat) = P (1 - P) / N,
 *      r_hat = s^2 / p_hat^2 = N/(N - 1) (1 - p_hat) / p_hat = g(p_hat),
 *      g(p) = 1/p - 1, g'(p) = -1/p^2, so by the delta method
 *      SE(r_hat) = sqrt(P (1 - P) / N) / P^2 = sqrt((1 - P) / (N P^3)).
 * 4. Hutchinson: Rademacher probes are exact (J = kappa I is diagonal);
 *    Gaussian probes give log w = kappa (mean_k |eps_k|^2 - n) inside the
 *    cube: mean 0 and variance 2 n kappa^2 / K, checked within 4 standard
 *    errors (those of a scaled chi-square with nu = n K degrees of freedom:
 *    Var(s^2) = sigma^4 (2 + 12 / nu) / N).
 * 5. Errors: bad integrands, too few samples, a width of sqrt 2, NaN log q.
 * 6. The learned sampler: the KL loss's adjoint gradient (exact trace with
 *    both adjoints, fixed Gaussian probes) against central differences of
 *    the loss written out independently (1e-6 normwise, docs/design.md, section 10);
 *    log q in closed form when f = 0 (the logit-normal) and against a
 *    backward solve for a random field; the defensive mixture's log q; a
 *    short training on Camel (n = 2) that lowers the loss and beats the
 *    uniform sampler's relative spread by more than 2x, reproducibly. */
#include <gsl/gsl_integration.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf_integrate.h"
#include "test_util.h"

#define ALPHA CNF_INTEGRAND_ALPHA

static double *dalloc(size_t n) {
  double *p = calloc(n ? n : 1, sizeof(double));
  CU_ASSERT_FATAL(p != NULL);
  return p;
}

static cnf_integrand integrand(cnf_integrand_kind k, size_t n) {
  cnf_integrand f = {k, n, ALPHA};
  return f;
}

/* ---- 1. integrands ----------------------------------------------------------- */

/* int over [0,1]^n (n = 1, 2) of exp(log f) by tensor Gauss-Legendre with
 * 128 nodes per axis (a precomputed GSL table): the integrands are entire and
 * the rule converges far below 1e-12. */
static double quadrature(const cnf_integrand *f) {
  enum { M = 128 }; /* a tabulated rule (exact nodes) */
  gsl_integration_glfixed_table *t = gsl_integration_glfixed_table_alloc(M);
  CU_ASSERT_FATAL(t != NULL);
  double xs[M], ws[M];
  for (size_t i = 0; i < M; i++) gsl_integration_glfixed_point(0.0, 1.0, i, &xs[i], &ws[i], t);
  double sum = 0.0, lf;
  if (f->dim == 1) {
    for (size_t i = 0; i < M; i++) {
      cnf_integrand_logf(f, 1, &xs[i], &lf, NULL);
      sum += ws[i] * exp(lf);
    }
  } else {
    for (size_t i = 0; i < M; i++)
      for (size_t j = 0; j < M; j++) {
        double x[2] = {xs[i], xs[j]};
        cnf_integrand_logf(f, 1, x, &lf, NULL);
        sum += ws[i] * ws[j] * exp(lf);
      }
  }
  gsl_integration_glfixed_table_free(t);
  return sum;
}

static void test_exact_values(void) {
  for (int k = 0; k < 3; k++)
    for (size_t n = 1; n <= 2; n++) {
      cnf_integrand f = integrand((cnf_integrand_kind)k, n);
      double q = quadrature(&f), e = cnf_integrand_exact(&f);
      CHECK_NEAR(e, q, 1e-12 * fabs(q));
    }
  /* P5's exact values (docs/design.md, section 10, "The PDE benchmark problems") at n = 16, 96 */
  cnf_integrand g = integrand(CNF_INTEGRAND_GAUSS, 16), p = integrand(CNF_INTEGRAND_POLY, 96);
  CHECK_NEAR(cnf_integrand_exact(&g), pow(erf(2.5), 16), 1e-15);
  CHECK_NEAR(cnf_integrand_exact(&p), 16.0, 1e-14);
  /* camel's n-dim integral is the n-th power of its 1-D one */
  cnf_integrand c1 = integrand(CNF_INTEGRAND_CAMEL, 1), c4 = integrand(CNF_INTEGRAND_CAMEL, 4);
  CHECK_NEAR(cnf_integrand_exact(&c4), pow(quadrature(&c1), 4), 1e-12);
}

static double logf_at(const double *x, void *user) {
  double lf;
  cnf_integrand_logf(user, 1, x, &lf, NULL);
  return lf;
}

static void test_gradients(void) {
  enum { B = 4 };
  for (int k = 0; k < 3; k++)
    for (size_t n = 1; n <= 5; n += 2) {
      cnf_integrand f = integrand((cnf_integrand_kind)k, n);
      double x[B * 5], lf[B], g[B * 5], fd[B * 5];
      fill_uniform(x, B * n, 0.05, 0.95, 100 + (uint64_t)(10 * k) + n);
      CU_ASSERT_EQUAL(cnf_integrand_logf(&f, B, x, lf, g), 0);
      for (size_t b = 0; b < B; b++) {
        CHECK_NEAR(lf[b], logf_at(x + b * n, &f), 0.0); /* batched = one at a time */
        for (size_t i = 0; i < n; i++)
          fd[b * n + i] = central_diff(logf_at, x + b * n, i, 1e-5, &f);
      }
      /* h = 1e-5: truncation h^2 |f'''| / 6 and rounding 1e-16 |log f| / h,
       * both below 1e-8 relative */
      char label[64];
      snprintf(label, sizeof label, "grad log f, %s n=%zu", cnf_integrand_name(f.kind), n);
      CHECK_CLOSE(g, fd, B * n, 1e-7, 1e-7, label);
    }
}

static void test_outside(void) {
  cnf_integrand f = integrand(CNF_INTEGRAND_CAMEL, 3);
  double x[4 * 3] = {0.5, -1e-12, 0.5, 0.5, 0.5, 1.0 + 1e-12, NAN, 0.5, 0.5, 0.0, 1.0, 0.5};
  double lf[4], g[12];
  memset(g, 0xff, sizeof g); /* NaN bytes: must be overwritten */
  CU_ASSERT_EQUAL(cnf_integrand_logf(&f, 4, x, lf, g), 0);
  for (int b = 0; b < 3; b++) {
    CU_ASSERT_TRUE(lf[b] == -INFINITY);
    for (int i = 0; i < 3; i++) CU_ASSERT_EQUAL(g[b * 3 + i], 0.0);
  }
  CU_ASSERT_TRUE(isfinite(lf[3])); /* the cube is closed */
  /* the polynomial vanishes at the corners */
  cnf_integrand p = integrand(CNF_INTEGRAND_POLY, 2);
  double corner[2] = {0.0, 1.0};
  CU_ASSERT_EQUAL(cnf_integrand_logf(&p, 1, corner, lf, g), 0);
  CU_ASSERT_TRUE(lf[0] == -INFINITY && g[0] == 0.0 && g[1] == 0.0);
}

/* ---- 2. the summary and the uniform sampler ------------------------------------ */

static void test_summary(void) {
  /* poly in 1-D with log q = 0: w = x (1 - x) */
  cnf_integrand f = integrand(CNF_INTEGRAND_POLY, 1);
  double x[5] = {0.1, 0.25, 0.5, 0.8, 1.5}, lq[5] = {0, 0, 0, 0, 0}, w[5];
  const double want[5] = {0.09, 0.1875, 0.25, 0.16, 0.0};
  cnf_integrate_result r;
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_weights(NULL, &f, 5, x, lq, w, &r), 0);
  CHECK_CLOSE(w, want, 5, 1e-15, 1e-300, "weights");
  double mean = (0.09 + 0.1875 + 0.25 + 0.16) / 5, ss = 0;
  for (int i = 0; i < 5; i++) ss += (want[i] - mean) * (want[i] - mean);
  double sd = sqrt(ss / 4);
  CU_ASSERT_EQUAL(r.samples, 5);
  CHECK_NEAR(r.estimate, mean, 1e-16);
  CHECK_NEAR(r.std_error, sd / sqrt(5.0), 1e-16);
  CHECK_NEAR(r.exact, 1.0 / 6.0, 1e-16);
  CHECK_NEAR(r.pull, (mean - 1.0 / 6.0) / (sd / sqrt(5.0)), 1e-12);
  CHECK_NEAR(r.rel_spread, sd / mean, 1e-14);
  CHECK_NEAR(r.efficiency, mean / 0.25, 1e-15);
  CHECK_NEAR(r.zero_frac, 0.2, 0);
  CU_ASSERT_TRUE(isnan(r.kl)); /* a zero weight: KL(q || f/I) is infinite */
  cnf_integrate_result r4;     /* the first four rows: no zero weight */
  CU_ASSERT_EQUAL(cnf_integrate_weights(NULL, &f, 4, x, lq, NULL, &r4), 0);
  CHECK_NEAR(r4.kl, log(1.0 / 6.0) - (log(0.09) + log(0.1875) + log(0.25) + log(0.16)) / 4, 1e-14);
  /* a log q shifts every weight by the same factor */
  for (int i = 0; i < 5; i++) lq[i] = -log(2.0);
  cnf_integrate_result r2;
  CU_ASSERT_EQUAL(cnf_integrate_weights(NULL, &f, 5, x, lq, NULL, &r2), 0);
  CHECK_NEAR(r2.estimate, 2 * mean, 1e-15);
  CHECK_NEAR(r2.rel_spread, r.rel_spread, 1e-14);
}

static void test_uniform(void) {
  enum { N = 40000 };
  double *x = dalloc(N * 18), *lq = dalloc(N);
  /* poly: w = sum x_i (1 - x_i), terms of mean 1/6, variance 1/180, so the
   * relative spread is sqrt(n / 180) / (n / 6); its sample value carries
   * a relative error sqrt((kurt - 1) / (4 N)) < 0.5% here */
  const size_t n = 18;
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_uniform(n, N, 7, x, lq), 0);
  for (size_t i = 0; i < N * n; i++) CU_ASSERT_TRUE(x[i] >= 0 && x[i] < 1);
  cnf_integrand f = integrand(CNF_INTEGRAND_POLY, n);
  cnf_integrate_result r;
  CU_ASSERT_EQUAL(cnf_integrate_weights(NULL, &f, N, x, lq, NULL, &r), 0);
  const double spread = 6.0 / sqrt(180.0 * (double)n);
  printf("\n  uniform poly n=18: estimate %.6f +- %.6f (exact 3), rel_spread %.5f (%.5f) ",
         r.estimate, r.std_error, r.rel_spread, spread);
  CHECK_NEAR(r.std_error, spread * 3.0 / sqrt((double)N), 0.03 * spread * 3.0 / sqrt((double)N));
  CU_ASSERT_TRUE(fabs(r.pull) < 3.0);
  CHECK_NEAR(r.rel_spread, spread, 0.03 * spread);
  /* the same seed gives the same points; another seed others */
  double *x2 = dalloc(N * n);
  CU_ASSERT_EQUAL(cnf_integrate_uniform(n, N, 7, x2, lq), 0);
  CU_ASSERT_EQUAL(memcmp(x, x2, N * n * sizeof(double)), 0);
  CU_ASSERT_EQUAL(cnf_integrate_uniform(n, N, 8, x2, lq), 0);
  CU_ASSERT_NOT_EQUAL(memcmp(x, x2, N * n * sizeof(double)), 0);
  free(x), free(x2), free(lq);
}

/* ---- 3. the training-free bar ---------------------------------------------------- */

static cnf_options options(double tol) {
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = tol;
  o.max_steps = 100000;
  return o;
}

static void test_linear_theta(void) {
  const size_t n = 3;
  double th[12];
  CU_ASSERT_EQUAL(cnf_integrate_linear_theta(n, ALPHA, th), 0);
  const double kappa = log(ALPHA / sqrt(2.0)), beta = kappa / (2 * (exp(kappa) - 1));
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) CHECK_NEAR(th[i * n + j], i == j ? kappa : 0.0, 1e-15);
  for (size_t i = 0; i < n; i++) CHECK_NEAR(th[n * n + i], beta, 1e-15);
  /* x(1) = e^kappa z + (beta / kappa)(e^kappa - 1) by the closed form of the
   * linear ODE: the parameters put its mean at 1/2 */
  CHECK_NEAR(th[n * n] / th[0] * (exp(th[0]) - 1), 0.5, 1e-15);
  CHECK_NEAR(exp(kappa), ALPHA / sqrt(2.0), 1e-15);
}

static void test_gauss_bar(void) {
  enum { N = 20000 };
  const size_t dims[] = {2, 4, 8, 16};
  const cnf_options opt = options(1e-10);
  const double s2 = ALPHA * ALPHA / 2; /* q's variance per coordinate */
  cnf_ctx *ctx = NULL;
  CU_ASSERT_FATAL(cnf_ctx_create(&ctx) == 0);
  for (size_t c = 0; c < 4; c++) {
    const size_t n = dims[c];
    double *x = dalloc(N * n), *lq = dalloc(N), *w = dalloc(N);
    cnf_stats st;
    cnf_stats_clear(&st);
    int rc = cnf_integrate_linear(ctx, n, ALPHA, &opt, N, 1000 + n, x, lq, &st);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    /* log q against the closed form of N(1/2, alpha^2/2 I) at the computed x */
    double lq_err = 0.0;
    for (size_t b = 0; b < N; b++) {
      double q = 0.0;
      for (size_t i = 0; i < n; i++) q += (x[b * n + i] - 0.5) * (x[b * n + i] - 0.5);
      const double exact = -0.5 * (double)n * log(6.283185307179586 * s2) - 0.5 * q / s2;
      lq_err = fmax(lq_err, fabs(lq[b] - exact));
    }
    cnf_integrand f = integrand(CNF_INTEGRAND_GAUSS, n);
    cnf_integrate_result r;
    CU_ASSERT_EQUAL_FATAL(cnf_integrate_weights(ctx, &f, N, x, lq, w, &r), 0);
    double ind_err = 0.0;
    for (size_t b = 0; b < N; b++)
      if (w[b] != 0.0) ind_err = fmax(ind_err, fabs(w[b] - 1.0));
    const double P = pow(erf(1 / (2 * ALPHA)), (double)n), rel = (1 - P) / P;
    const double se_p = sqrt(P * (1 - P) / N), se_r = sqrt((1 - P) / (N * P * P * P));
    const double r_hat = r.rel_spread * r.rel_spread;
    printf(
        "\n  n=%2zu: mean %.6f (P %.6f, %+.2f se), rel var %.3e (%.3e, %+.2f se), "
        "|w - 1| %.1e, log q err %.1e, nfe %ld",
        n, r.estimate, P, (r.estimate - P) / se_p, r_hat, rel, (r_hat - rel) / se_r, ind_err,
        lq_err, st.nfe);
    CU_ASSERT_TRUE(fabs(r.estimate - P) <= 3 * se_p);
    CU_ASSERT_TRUE(fabs(r_hat - rel) <= 3 * se_r);
    CHECK_NEAR(r.exact, P, 1e-15);
    /* at rtol = atol = 1e-10 x and Delta carry errors of ~1e-9, and log f's
     * gradient is 2 |x - 1/2| / alpha^2 <= 25 per coordinate: measured
     * 3e-8; a trace or state defect shows at the size of the field's terms */
    CU_ASSERT_TRUE(ind_err <= 1e-6);
    CU_ASSERT_TRUE(lq_err <= 1e-6);
    /* every weight is 0 or ~1, so the efficiency is the mean over the max */
    CHECK_NEAR(r.efficiency, r.estimate, 2e-6);
    free(x), free(lq), free(w);
  }
  printf(" ");
  cnf_ctx_free(ctx);
}

/* ---- 4. Hutchinson ------------------------------------------------------------- */

static void test_hutchinson(void) {
  enum { N = 4000 };
  const size_t n = 8;
  cnf_ctx *ctx = NULL;
  CU_ASSERT_FATAL(cnf_ctx_create(&ctx) == 0);
  cnf_options opt = options(1e-9);
  double *x = dalloc(N * n), *x2 = dalloc(N * n), *lq = dalloc(N), *lq2 = dalloc(N);
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_linear(ctx, n, ALPHA, &opt, N, 5, x, lq, NULL), 0);
  /* Rademacher: eps^T (kappa I) eps = kappa n exactly */
  opt.trace = CNF_TRACE_RADEMACHER;
  opt.probes = 1;
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_linear(ctx, n, ALPHA, &opt, N, 5, x2, lq2, NULL), 0);
  CHECK_CLOSE(x2, x, N * n, 0, 1e-13, "x, Rademacher against exact");
  CHECK_CLOSE(lq2, lq, N, 1e-13, 1e-12, "log q, Rademacher against exact");
  /* Gaussian probes: the trace estimate is kappa mean_k |eps_k|^2, so
   * log w - log w_exact = kappa (mean_k |eps_k|^2 - n), a scaled chi-square */
  const double kappa = log(ALPHA / sqrt(2.0));
  for (size_t K = 1; K <= 4; K *= 4) {
    opt.trace = CNF_TRACE_GAUSS;
    opt.probes = K;
    CU_ASSERT_EQUAL_FATAL(cnf_integrate_linear(ctx, n, ALPHA, &opt, N, 5, x2, lq2, NULL), 0);
    CHECK_CLOSE(x2, x, N * n, 0, 1e-7,
                "x, Gaussian probes against exact (step control sees Delta)");
    double m = 0.0, ss = 0.0;
    for (size_t b = 0; b < N; b++) m += lq[b] - lq2[b]; /* log w_K - log w_exact */
    m /= N;
    for (size_t b = 0; b < N; b++) ss += (lq[b] - lq2[b] - m) * (lq[b] - lq2[b] - m);
    const double var = ss / (N - 1), want = 2.0 * (double)n * kappa * kappa / (double)K;
    const double nu = (double)(n * K), se_var = want * sqrt((2 + 12 / nu) / N);
    printf("\n  Gaussian K=%zu: mean %.4f (0 +- %.4f), var %.4f (%.4f +- %.4f)", K, m,
           sqrt(want / N), var, want, se_var);
    CU_ASSERT_TRUE(fabs(m) <= 4 * sqrt(want / N));
    CU_ASSERT_TRUE(fabs(var - want) <= 4 * se_var);
  }
  printf(" ");
  free(x), free(x2), free(lq), free(lq2);
  cnf_ctx_free(ctx);
}

/* ---- 5. errors ------------------------------------------------------------------ */

static void test_errors(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_FATAL(cnf_ctx_create(&ctx) == 0);
  double x[4] = {0.5, 0.5, 0.5, 0.5}, lf[2], lq[2] = {0, NAN};
  cnf_integrand bad[] = {{CNF_INTEGRAND_GAUSS, 0, ALPHA},
                         {CNF_INTEGRAND_CAMEL, 2, 0.0},
                         {CNF_INTEGRAND_GAUSS, 2, NAN},
                         {(cnf_integrand_kind)7, 2, ALPHA}};
  for (int i = 0; i < 4; i++) {
    CU_ASSERT_EQUAL(cnf_integrand_logf(&bad[i], 2, x, lf, NULL), CNF_EINVAL);
    CU_ASSERT_TRUE(isnan(cnf_integrand_exact(&bad[i])));
  }
  cnf_integrand_kind k;
  CU_ASSERT_EQUAL(cnf_integrand_parse("camel", &k), 0);
  CU_ASSERT_EQUAL(k, CNF_INTEGRAND_CAMEL);
  CU_ASSERT_EQUAL(cnf_integrand_parse("Camel", &k), CNF_EINVAL);
  CU_ASSERT_STRING_EQUAL(cnf_integrand_name(CNF_INTEGRAND_POLY), "poly");
  /* poly ignores alpha */
  cnf_integrand p = {CNF_INTEGRAND_POLY, 2, 0.0};
  CU_ASSERT_EQUAL(cnf_integrand_logf(&p, 2, x, lf, NULL), 0);

  cnf_integrand f = integrand(CNF_INTEGRAND_GAUSS, 2);
  cnf_integrate_result r;
  CU_ASSERT_EQUAL(cnf_integrate_weights(ctx, &f, 1, x, lq, NULL, &r), CNF_EINVAL);
  CU_ASSERT_TRUE(strstr(cnf_ctx_errmsg(ctx), "N >= 2") != NULL);
  CU_ASSERT_EQUAL(cnf_integrate_weights(ctx, &f, 2, x, lq, NULL, &r), CNF_ENONFINITE);
  CU_ASSERT_TRUE(strstr(cnf_ctx_errmsg(ctx), "sample 1") != NULL);

  double th[6];
  CU_ASSERT_EQUAL(cnf_integrate_linear_theta(2, sqrt(2.0), th), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_integrate_linear_theta(2, -0.1, th), CNF_EINVAL);
  cnf_options opt = options(1e-6);
  CU_ASSERT_EQUAL(cnf_integrate_linear(ctx, 2, sqrt(2.0), &opt, 2, 0, x, lq, NULL), CNF_EINVAL);
  CU_ASSERT_TRUE(strstr(cnf_ctx_errmsg(ctx), "alpha") != NULL);
  CU_ASSERT_EQUAL(cnf_integrate_linear(ctx, 2, ALPHA, NULL, 2, 0, x, lq, NULL), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_integrate_uniform(0, 2, 0, x, lq), CNF_EINVAL);

  /* the learned sampler: bad configurations, and a solver failure during
   * training leaves the parameters as they were */
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  cnf_mlp_parse_hidden(&cfg, "4");
  cnf_integrate_flow *fl = NULL;
  CU_ASSERT_EQUAL(cnf_integrate_flow_create(&fl, ctx, &cfg, 0, -1.0), CNF_EINVAL);
  CU_ASSERT_PTR_NULL(fl);
  cfg.dim = 0;
  CU_ASSERT_EQUAL(cnf_integrate_flow_create(&fl, ctx, &cfg, 0, 0.1), CNF_EINVAL);
  cfg.dim = 2;
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_flow_create(&fl, ctx, &cfg, 0, 1.0), 0);
  const size_t P = cnf_integrate_flow_param_count(fl);
  double *before = dalloc(P);
  memcpy(before, cnf_integrate_flow_params(fl), P * sizeof(double));
  cnf_train_options to;
  cnf_train_options_default(&to);
  opt.max_steps = 2;
  int rc = cnf_integrate_flow_train(fl, &f, &opt, &to, 3, 16, 0, NULL, NULL, NULL);
  CU_ASSERT_TRUE(cnf_is_solver_error(rc));
  CU_ASSERT_EQUAL(memcmp(before, cnf_integrate_flow_params(fl), P * sizeof(double)), 0);
  CU_ASSERT_EQUAL(cnf_integrate_flow_sample_defensive(fl, &opt, 4, -0.1, 0, x, lq, NULL),
                  CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_integrate_flow_logq(fl, &opt, 0, x, 0, lq, NULL), CNF_EINVAL);
  free(before);
  cnf_integrate_flow_free(fl);
  cnf_integrate_flow_free(NULL);
  cnf_ctx_free(ctx);
}

/* ---- 6. the learned sampler ------------------------------------------------------ */

static cnf_integrate_flow *small_flow(cnf_ctx *ctx, size_t n, const char *hidden, double scale,
                                      uint64_t seed) {
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, n);
  CU_ASSERT_FATAL(cnf_mlp_parse_hidden(&cfg, hidden) == 0);
  cnf_integrate_flow *fl = NULL;
  CU_ASSERT_FATAL(cnf_integrate_flow_create(&fl, ctx, &cfg, seed, scale) == 0 && fl != NULL);
  return fl;
}

/* The KL loss written out independently: a forward solve of the same
 * network (8-8 hidden) with the flow's parameters, x = 1/(1 + e^-y),
 * log q = log N(z) + Delta - sum log(x (1 - x)), L = mean(log q - log f). */
typedef struct loss_case {
  cnf_dyn *dyn;
  const double *theta;
  const cnf_integrand *f;
  const cnf_options *opt;
  size_t B, K;
  const double *z, *eps;
} loss_case;

static double direct_loss(const double *theta, void *user) {
  loss_case *c = user;
  const size_t n = c->f->dim, B = c->B;
  double y[64], delta[16], x[64], lf[16];
  CU_ASSERT_FATAL(B * n <= 64 && B <= 16);
  memcpy(y, c->z, B * n * sizeof(double));
  memset(delta, 0, sizeof delta);
  CU_ASSERT_FATAL(cnf_dyn_solve(c->dyn, theta, c->opt, 0.0, 1.0, B, c->eps ? c->K : 0, c->eps, y,
                                delta, NULL) == 0);
  for (size_t i = 0; i < B * n; i++) x[i] = 1.0 / (1.0 + exp(-y[i]));
  cnf_integrand_logf(c->f, B, x, lf, NULL);
  double L = 0.0;
  for (size_t b = 0; b < B; b++) {
    double lq = cnf_log_normal(c->z + b * n, n) + delta[b];
    for (size_t i = 0; i < n; i++) lq -= log(x[b * n + i] * (1.0 - x[b * n + i]));
    L += lq - lf[b];
  }
  return L / (double)B;
}

static void test_learned_grad(void) {
  enum { n = 2, B = 4, K = 2 };
  cnf_ctx *ctx = NULL;
  CU_ASSERT_FATAL(cnf_ctx_create(&ctx) == 0);
  cnf_integrand f = integrand(CNF_INTEGRAND_CAMEL, n);
  cnf_integrate_flow *fl = small_flow(ctx, n, "8-8", 1.0, 3);
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, n);
  cnf_mlp_parse_hidden(&cfg, "8-8");
  cnf_dyn *dyn = NULL;
  CU_ASSERT_FATAL(cnf_dyn_mlp_create(&dyn, ctx, &cfg) == 0);
  const size_t P = cnf_integrate_flow_param_count(fl);
  CU_ASSERT_EQUAL_FATAL(P, cnf_mlp_param_count(&cfg));
  double *theta = dalloc(P), *g = dalloc(P), *fd = dalloc(P);
  memcpy(theta, cnf_integrate_flow_params(fl), P * sizeof(double));
  double z[B * n], eps[K * B * n];
  fill_gauss(z, B * n, 21);
  fill_gauss(eps, K * B * n, 22);
  cnf_options opt = options(1e-11);
  for (int c = 0; c < 3; c++) {
    /* exact trace with both adjoints, then fixed Gaussian probes */
    opt.adjoint = c == 1 ? CNF_ADJOINT_BACKSOLVE : CNF_ADJOINT_CHECKPOINT;
    loss_case lc = {dyn, theta, &f, &opt, B, K, z, c == 2 ? eps : NULL};
    double L = 0.0;
    memset(g, 0, P * sizeof(double));
    CU_ASSERT_EQUAL_FATAL(
        cnf_integrate_flow_loss_grad(fl, &f, &opt, B, z, K, lc.eps, &L, g, NULL, NULL), 0);
    CHECK_NEAR(L, direct_loss(theta, &lc), 1e-9);
    /* central differences, h = 1e-4: truncation ~1e-8 times the third
     * derivative, solver noise ~1e-11 / 1e-4 = 1e-7 */
    double md = 0.0, mx = 0.0;
    for (size_t p = 0; p < P; p++) {
      fd[p] = central_diff(direct_loss, theta, p, 1e-4, &lc);
      md = fmax(md, fabs(g[p] - fd[p]));
      mx = fmax(mx, fabs(fd[p]));
    }
    printf("\n  %s: L %.6f, |adjoint - fd| / |fd| = %.2e (max |fd| %.3f, P %zu)",
           c == 0   ? "exact, checkpoint"
           : c == 1 ? "exact, backsolve"
                    : "Gaussian K=2",
           L, md / mx, mx, P);
    CU_ASSERT_TRUE(md / mx <= 1e-6);
  }
  printf(" ");
  /* a wrong dimension is refused */
  cnf_integrand f3 = integrand(CNF_INTEGRAND_CAMEL, 3);
  double L;
  CU_ASSERT_EQUAL(cnf_integrate_flow_loss_grad(fl, &f3, &opt, B, z, 0, NULL, &L, g, NULL, NULL),
                  CNF_EDIM);
  free(theta), free(g), free(fd);
  cnf_dyn_free(dyn);
  cnf_integrate_flow_free(fl);
  cnf_ctx_free(ctx);
}

static void test_learned_logq(void) {
  enum { n = 3, N = 40 };
  cnf_ctx *ctx = NULL;
  CU_ASSERT_FATAL(cnf_ctx_create(&ctx) == 0);
  cnf_options opt = options(1e-10);
  double x[N * n], y[N * n], lq[N], lq2[N];
  /* init_scale 0: f = 0, q is the logit-normal:
   * log q = log N(logit x) - sum log(x (1 - x)) */
  cnf_integrate_flow *fl = small_flow(ctx, n, "8-8", 0.0, 4);
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_flow_sample(fl, &opt, N, 9, x, lq, y, NULL), 0);
  for (size_t b = 0; b < N; b++) {
    double want = cnf_log_normal(y + b * n, n);
    for (size_t i = 0; i < n; i++) {
      const double xi = x[b * n + i];
      CHECK_NEAR(y[b * n + i], log(xi / (1 - xi)), 1e-12 * (1 + fabs(y[b * n + i])));
      want -= log(xi * (1 - xi));
    }
    CHECK_NEAR(lq[b], want, 1e-12);
  }
  cnf_integrate_flow_free(fl);
  /* a random field: the forward sample's log q against the backward solve's */
  fl = small_flow(ctx, n, "8-8", 1.0, 4);
  cnf_stats st;
  cnf_stats_clear(&st);
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_flow_sample(fl, &opt, N, 9, x, lq, NULL, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_flow_logq(fl, &opt, N, x, 9, lq2, &st), 0);
  CHECK_CLOSE(lq2, lq, N, 0, 1e-7, "log q: backward solve against the sample's");
  CU_ASSERT_EQUAL(st.solves, 1);
  /* and this field is not the logit-normal: the check above has teeth */
  double dmax = 0.0;
  for (size_t b = 0; b < N; b++) {
    double ln = 0.0;
    for (size_t i = 0; i < n; i++) {
      const double xi = x[b * n + i], yi = log(xi / (1 - xi));
      ln += -0.5 * yi * yi - 0.5 * 1.8378770664093454836 - log(xi * (1 - xi));
    }
    dmax = fmax(dmax, fabs(ln - lq[b]));
  }
  CU_ASSERT_TRUE(dmax > 0.1);
  /* faces and outside points: -inf */
  double xb[2 * n] = {0.0, 0.5, 0.5, 0.5, 1.2, 0.5};
  CU_ASSERT_EQUAL(cnf_integrate_flow_logq(fl, &opt, 2, xb, 0, lq2, NULL), 0);
  CU_ASSERT_TRUE(lq2[0] == -INFINITY && lq2[1] == -INFINITY);
  /* the defensive mixture: lam = 1 is the uniform sampler (log q = 0);
   * lam = 1/4 of 8 rows puts 2 uniform rows first, and every log q_lam
   * equals log((1 - lam) q + lam) with q from the backward solve */
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_flow_sample_defensive(fl, &opt, 8, 1.0, 5, x, lq, NULL), 0);
  for (size_t b = 0; b < 8; b++) CU_ASSERT_EQUAL(lq[b], 0.0);
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_flow_sample_defensive(fl, &opt, 8, 0.25, 5, x, lq, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_flow_logq(fl, &opt, 8, x, 5, lq2, NULL), 0);
  for (size_t b = 0; b < 8; b++) {
    CHECK_NEAR(lq[b], log(0.75 * exp(lq2[b]) + 0.25), 1e-7);
    CU_ASSERT_TRUE(lq[b] >= log(0.25));
  }
  CU_ASSERT_EQUAL(cnf_integrate_flow_sample_defensive(fl, &opt, 8, 1.5, 5, x, lq, NULL),
                  CNF_EINVAL);
  cnf_integrate_flow_free(fl);
  cnf_ctx_free(ctx);
}

static void test_learned_training(void) {
  enum { n = 2, N = 4000, ITERS = 60 };
  cnf_ctx *ctx = NULL;
  CU_ASSERT_FATAL(cnf_ctx_create(&ctx) == 0);
  cnf_integrand f = integrand(CNF_INTEGRAND_CAMEL, n);
  cnf_options opt = options(1e-5);
  cnf_train_options to;
  cnf_train_options_default(&to);
  to.lr = 1e-2;
  cnf_integrate_flow *fl = small_flow(ctx, n, "16-16", 0.1, 1);
  double losses[ITERS], *x = dalloc(N * n), *lq = dalloc(N);
  cnf_integrate_result before, after, uni;
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_flow_sample_defensive(fl, &opt, N, 0.05, 2, x, lq, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_weights(ctx, &f, N, x, lq, NULL, &before), 0);
  CU_ASSERT_EQUAL_FATAL(
      cnf_integrate_flow_train(fl, &f, &opt, &to, ITERS, 128, 7, losses, NULL, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_flow_sample_defensive(fl, &opt, N, 0.05, 2, x, lq, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_weights(ctx, &f, N, x, lq, NULL, &after), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_uniform(n, N, 2, x, lq), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_integrate_weights(ctx, &f, N, x, lq, NULL, &uni), 0);
  double first = 0, last = 0;
  for (int i = 0; i < 10; i++) first += losses[i] / 10, last += losses[ITERS - 1 - i] / 10;
  printf(
      "\n  camel n=2: loss %.4f -> %.4f (>= -log I = %.4f); rel_spread %.3f -> %.3f, "
      "uniform %.3f; pull %.2f ",
      first, last, -log(after.exact), before.rel_spread, after.rel_spread, uni.rel_spread,
      after.pull);
  /* the loss is KL - log I >= -log I, and falls by far more than its
   * minibatch noise */
  CU_ASSERT_TRUE(last < first - 0.1);
  CU_ASSERT_TRUE(last > -log(after.exact) - 0.05);
  CU_ASSERT_TRUE(after.rel_spread < 0.5 * uni.rel_spread);
  CU_ASSERT_TRUE(after.rel_spread < before.rel_spread);
  CU_ASSERT_TRUE(fabs(after.pull) < 4);
  /* the same seed replays the same steps bit for bit */
  cnf_integrate_flow *fl2 = small_flow(ctx, n, "16-16", 0.1, 1);
  double l2[5];
  CU_ASSERT_EQUAL(cnf_integrate_flow_train(fl2, &f, &opt, &to, 5, 128, 7, l2, NULL, NULL), 0);
  CU_ASSERT_EQUAL(memcmp(l2, losses, sizeof l2), 0);
  cnf_integrate_flow_free(fl2);
  free(x), free(lq);
  cnf_integrate_flow_free(fl);
  cnf_ctx_free(ctx);
}

int main(void) {
  static const test_entry integrands[] = {
      {"exact integrals against quadrature", test_exact_values},
      {"log f gradients against central differences", test_gradients},
      {"outside the cube", test_outside},
      {NULL, NULL},
  };
  static const test_entry estimate[] = {
      {"summary of weights by hand", test_summary},
      {"uniform sampler: polynomial spread in closed form", test_uniform},
      {NULL, NULL},
  };
  static const test_entry linear[] = {
      {"linear field parameters", test_linear_theta},
      {"Gauss weights: indicator, mean and relative variance (n = 2..16)", test_gauss_bar},
      {"Hutchinson: Rademacher exact, Gaussian chi-square", test_hutchinson},
      {"errors", test_errors},
      {NULL, NULL},
  };
  static const test_entry flow[] = {
      {"KL gradient: adjoint against central differences", test_learned_grad},
      {"log q: closed form at f = 0, backward solve, defensive mixture", test_learned_logq},
      {"training on Camel beats the uniform sampler", test_learned_training},
      {NULL, NULL},
  };
  static const char *const names[] = {"integrands", "estimate", "training-free", "learned"};
  static const test_entry *const suites[] = {integrands, estimate, linear, flow};
  return run_suites(names, suites, 4);
}
