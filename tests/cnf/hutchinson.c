/* hutchinson.c: the statistics of the Hutchinson trace estimator as the
 * library computes it (cnf_probes_draw + f_div), and the probes
 * themselves.
 *
 * For a probe eps with E[eps eps^T] = I, E[eps^T J eps] = tr J.  With
 * S = (J + J^T)/2 the variance is
 *   Gaussian:    2 ||S||_F^2
 *   Rademacher:  2 sum_{i != j} S_ij^2    (eps_i^2 = 1: the diagonal is exact)
 * so Rademacher is exact for a diagonal J, and for diagonal plus
 * skew-symmetric (the skew part contributes eps^T K eps = 0).
 *
 * Each statistical check draws N probes from a fixed seed and allows four
 * standard errors: the mean's SE is sd / sqrt(N); the sample variance's is
 * sqrt((m4 - s^4) / N) with m4 the fourth central moment. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf_pde.h"
#include "cnf_testing.h"
#include "dyn_impl.h"

#define N_PROBES 20000

typedef struct moments {
  double mean, var, se_mean, se_var;
} moments;

static moments moments_of(const double *x, size_t n) {
  moments m = {0};
  for (size_t i = 0; i < n; i++) m.mean += x[i];
  m.mean /= (double)n;
  double m2 = 0.0, m4 = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = x[i] - m.mean;
    m2 += d * d;
    m4 += d * d * d * d;
  }
  m.var = m2 / (double)(n - 1);
  m4 /= (double)n;
  m.se_mean = sqrt(m.var / (double)n);
  m.se_var = sqrt(fmax(m4 - m.var * m.var, 0.0) / (double)n);
  return m;
}

/* N estimates eps_b^T J eps_b at one point z: the point repeated N times
 * with one probe per row (K = 1), so one f_div call gives them all. */
static double *estimates(cnf_dyn *dyn, const double *theta, const double *z,
                         cnf_trace kind, uint64_t seed, size_t N) {
  const size_t D = cnf_dyn_dim(dyn);
  double *zr = malloc(N * D * sizeof *zr), *eps = malloc(N * D * sizeof *eps),
         *f = malloc(N * D * sizeof *f), *est = malloc(N * sizeof *est);
  for (size_t b = 0; b < N; b++) memcpy(zr + b * D, z, D * sizeof *z);
  CU_ASSERT_EQUAL(cnf_probes_draw(kind, seed, 1, N, D, eps), 0);
  CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, 0.29, N, 1, zr, theta, eps, f, est), 0);
  free(zr), free(eps), free(f);
  return est;
}

static double exact_trace(cnf_dyn *dyn, const double *theta, const double *z) {
  const size_t D = cnf_dyn_dim(dyn);
  double f[16], tr = NAN;
  CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, 0.29, 1, D, z, theta, NULL, f, &tr), 0);
  return tr;
}

/* The mean of many probes of a random MLP lies within 4 SE of tr J. */
static void run_mlp_mean(cnf_trace kind, uint64_t seed) {
  cnf_ctx *ctx = new_ctx();
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 4);
  cfg.n_hidden = 2;
  cfg.hidden[0] = cfg.hidden[1] = 16;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_mlp_create(&dyn, ctx, &cfg), 0);
  const size_t P = cnf_dyn_param_count(dyn);
  double *theta = malloc(P * sizeof *theta);
  CU_ASSERT_EQUAL(cnf_mlp_init_params(&cfg, 4242, theta), 0);
  for (size_t p = 0; p < P; p++) theta[p] *= 2.0;
  const double z[4] = {0.31, -1.27, 0.83, 0.05};
  const double tr = exact_trace(dyn, theta, z);
  double *est = estimates(dyn, theta, z, kind, seed, N_PROBES);
  moments m = moments_of(est, N_PROBES);
  printf("\n  %s: tr J = %.6f, mean of %d probes %.6f (SE %.2g, %.2f SE), sd %.4f",
         cnf_trace_name(kind), tr, N_PROBES, m.mean, m.se_mean,
         fabs(m.mean - tr) / m.se_mean, sqrt(m.var));
  CU_ASSERT_TRUE(m.var > 0.0); /* a non-diagonal J: the estimator varies */
  CHECK_NEAR(m.mean, tr, 4.0 * m.se_mean);
  free(est);
  free(theta);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void test_mlp_mean_gauss(void) { run_mlp_mean(CNF_TRACE_GAUSS, 11); }
static void test_mlp_mean_rademacher(void) { run_mlp_mean(CNF_TRACE_RADEMACHER, 12); }

/* The linear field: mean tr A, variance in closed form. */
static void run_linear_variance(cnf_trace kind, uint64_t seed) {
  cnf_ctx *ctx = new_ctx();
  const size_t D = 4;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  double theta[20];
  fill_gauss(theta, D * D + D, 1301);
  const double *A = theta;
  double tr = 0.0, var = 0.0;
  for (size_t i = 0; i < D; i++) {
    tr += A[i * D + i];
    for (size_t j = 0; j < D; j++) {
      double s = 0.5 * (A[i * D + j] + A[j * D + i]);
      if (kind == CNF_TRACE_GAUSS || i != j) var += 2.0 * s * s;
    }
  }
  const double z[4] = {0.7, -0.2, 1.1, -0.9};
  double *est = estimates(dyn, theta, z, kind, seed, N_PROBES);
  moments m = moments_of(est, N_PROBES);
  printf("\n  %s: variance %.5f, closed form %.5f (SE %.2g, %.2f SE); mean %.5f, tr A %.5f",
         cnf_trace_name(kind), m.var, var, m.se_var, fabs(m.var - var) / m.se_var,
         m.mean, tr);
  CHECK_NEAR(m.mean, tr, 4.0 * m.se_mean);
  CHECK_NEAR(m.var, var, 4.0 * m.se_var);
  free(est);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void test_linear_variance_gauss(void) { run_linear_variance(CNF_TRACE_GAUSS, 21); }
static void test_linear_variance_rademacher(void) {
  run_linear_variance(CNF_TRACE_RADEMACHER, 22);
}

/* Rademacher probes give tr A exactly for A diagonal, and for diagonal
 * plus skew-symmetric. */
static void test_rademacher_exact(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t D = 5, N = 2000;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  double theta[30], r[25];
  fill_gauss(r, D * D, 1401);
  for (int skew = 0; skew <= 1; skew++) {
    memset(theta, 0, sizeof theta);
    double tr = 0.0;
    for (size_t i = 0; i < D; i++) {
      theta[i * D + i] = 1.3 * r[i * D + i];
      tr += theta[i * D + i];
      for (size_t j = 0; skew && j < i; j++) {
        theta[i * D + j] = r[i * D + j];
        theta[j * D + i] = -r[i * D + j];
      }
    }
    const double z[5] = {0.4, -0.6, 0.1, 2.2, -1.3};
    double *est = estimates(dyn, theta, z, CNF_TRACE_RADEMACHER, 31 + skew, N);
    double worst = 0.0;
    for (size_t b = 0; b < N; b++) worst = fmax(worst, fabs(est[b] - tr));
    printf("\n  %s: max |eps^T A eps - tr A| over %zu probes = %.3g",
           skew ? "diagonal + skew" : "diagonal", N, worst);
    CU_ASSERT_TRUE(worst <= 1e-14);
    /* Gaussian probes are not exact here: the check has power */
    double *g = estimates(dyn, theta, z, CNF_TRACE_GAUSS, 41 + skew, 10);
    double gworst = 0.0;
    for (size_t b = 0; b < 10; b++) gworst = fmax(gworst, fabs(g[b] - tr));
    CU_ASSERT_TRUE(gworst > 1e-3);
    free(g);
    free(est);
  }
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* cnf_dyn_solve reports the sample variance of the K probe values at each
 * evaluation (cnf_stats.trace_var_*).  For v = A z with P1a's dense A the
 * Jacobian is constant, so the mean over B samples estimates one probe's
 * variance, 2 |S|_F^2 (Gaussian) or 2 sum_{i != j} S_ij^2 (Rademacher),
 * from B (K - 1) degrees of freedom: with B = 400, K = 8 its relative
 * standard error is about 3%, and the bar is 10% (docs/design.md, section 10). */
static void run_solve_variance(cnf_trace kind) {
  cnf_ctx *ctx = new_ctx();
  const size_t D = 16, B = 400, K = 8;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  double *theta = calloc(D * D + D, sizeof *theta), *z = malloc(B * D * sizeof *z);
  double *eps = malloc(K * B * D * sizeof *eps), *delta = calloc(B, sizeof *delta);
  CU_ASSERT_EQUAL_FATAL(cnf_pde_p1a_matrix(ctx, CNF_PDE_A_DENSE, D, 0, 0, 3, theta), 0);
  fill_gauss(z, B * D, 77);
  CU_ASSERT_EQUAL_FATAL(cnf_probes_draw(kind, 78, K, B, D, eps), 0);
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = 1e-8;
  cnf_stats st;
  cnf_stats_clear(&st);
  /* only when asked for */
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_solve(dyn, theta, &o, 0.0, 0.5, B, K, eps, z, delta, &st), 0);
  CU_ASSERT_EQUAL(st.trace_var_n, 0);
  o.report_var = 1;
  cnf_stats_clear(&st);
  fill_gauss(z, B * D, 77);
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_solve(dyn, theta, &o, 0.0, 0.5, B, K, eps, z, delta, &st), 0);
  const double closed = cnf_pde_hutch_var(kind, D, theta);
  const double got = st.trace_var_sum / (double)st.trace_var_n;
  printf("\n  %s: empirical variance %.4f over %ld terms, closed form %.4f (%.1f%%)",
         cnf_trace_name(kind), got, st.trace_var_n, closed, 100.0 * (got / closed - 1.0));
  CU_ASSERT_EQUAL(st.trace_var_n, st.nfe * (long)B);
  CU_ASSERT_TRUE(fabs(got / closed - 1.0) <= 0.1);
  /* the exact trace and single probes report nothing */
  cnf_stats_clear(&st);
  fill_gauss(z, B * D, 77);
  CU_ASSERT_EQUAL(cnf_dyn_solve(dyn, theta, &o, 0.0, 0.5, B, 1, eps, z, delta, &st), 0);
  CU_ASSERT_EQUAL(st.trace_var_n, 0);
  CU_ASSERT_EQUAL(cnf_dyn_solve(dyn, theta, &o, 0.0, 0.5, B, 0, NULL, z, delta, &st), 0);
  CU_ASSERT_EQUAL(st.trace_var_n, 0);
  free(theta), free(z), free(eps), free(delta);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void test_solve_variance_gauss(void) { run_solve_variance(CNF_TRACE_GAUSS); }
static void test_solve_variance_rademacher(void) { run_solve_variance(CNF_TRACE_RADEMACHER); }

/* RNODE's integrals carried along the solve, on P1a's rotation field
 * A = -g I + w blockdiag([0 -1; 1 0]) (D even): |A z|^2 = (g^2 + w^2) |z|^2
 * and |z(t)|^2 = e^{-2 g t} |z0|^2, so
 *   E_K(T) = (g^2 + w^2) |z0|^2 (1 - e^{-2 g T}) / (2 g),
 *   E_J(T) = T |A|_F^2 = T D (g^2 + w^2)                 (exact trace),
 *   E_J(T) = T (g^2 + w^2) (1/K) sum_k |eps_k|^2          (Hutchinson). */
static void test_rnode_integrals(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t D = 6, B = 3, K = 2;
  const double g = 0.4, w = 1.3, T = 1.7, c = g * g + w * w;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  double theta[6 * 6 + 6] = {0}, z0[18], z[18], delta[3], ereg[6], eps[2 * 3 * 6];
  CU_ASSERT_EQUAL_FATAL(cnf_pde_p1a_matrix(ctx, CNF_PDE_A_ROTATION, D, g, w, 0, theta), 0);
  fill_gauss(z0, B * D, 91);
  fill_gauss(eps, K * B * D, 92);
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = 1e-11;
  for (int hutch = 0; hutch <= 1; hutch++) {
    memcpy(z, z0, sizeof z);
    memset(delta, 0, sizeof delta);
    memset(ereg, 0, sizeof ereg);
    CU_ASSERT_EQUAL_FATAL(cnf__dyn_solve_aug(dyn, theta, &o, 0.0, 1, &T, B, K,
                                             hutch ? eps : NULL, 2, z, delta, ereg, NULL, NULL,
                                             NULL),
                          0);
    double ek[3], ej[3];
    for (size_t b = 0; b < B; b++) {
      double n2 = 0.0, e2 = 0.0;
      for (size_t i = 0; i < D; i++) n2 += z0[b * D + i] * z0[b * D + i];
      for (size_t k = 0; k < K; k++)
        for (size_t i = 0; i < D; i++) e2 += eps[(k * B + b) * D + i] * eps[(k * B + b) * D + i];
      ek[b] = c * n2 * (1.0 - exp(-2.0 * g * T)) / (2.0 * g);
      ej[b] = hutch ? T * c * e2 / (double)K : T * (double)D * c;
    }
    CHECK_CLOSE(ereg, ek, B, 1e-8, 0.0, hutch ? "E_K (Hutchinson solve)" : "E_K (exact solve)");
    CHECK_CLOSE(ereg + B, ej, B, 1e-8, 0.0, hutch ? "E_J, Gaussian probes" : "E_J = T |A|_F^2");
  }
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

const test_entry hutchinson_tests[] = {
    {"solve: empirical Gaussian variance within 10% of 2 |S|_F^2", test_solve_variance_gauss},
    {"solve: empirical Rademacher variance within 10%", test_solve_variance_rademacher},
    {"RNODE integrals on the rotation field: closed form", test_rnode_integrals},
    {"MLP: mean of Gaussian probes within 4 SE of tr J", test_mlp_mean_gauss},
    {"MLP: mean of Rademacher probes within 4 SE of tr J", test_mlp_mean_rademacher},
    {"linear: Gaussian variance = 2 ||S||_F^2", test_linear_variance_gauss},
    {"linear: Rademacher variance = 2 sum_{i!=j} S_ij^2", test_linear_variance_rademacher},
    {"Rademacher exact for diagonal (+ skew) A", test_rademacher_exact},
    {NULL, NULL},
};

/* ---- probes ---------------------------------------------------------- */

#define N_DRAW 200000

static void test_probes_deterministic(void) {
  const size_t K = 3, B = 50, D = 7, n = K * B * D;
  double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
  for (int kind = CNF_TRACE_GAUSS; kind <= CNF_TRACE_RADEMACHER; kind++) {
    CU_ASSERT_EQUAL(cnf_probes_draw((cnf_trace)kind, 2024, K, B, D, x), 0);
    CU_ASSERT_EQUAL(cnf_probes_draw((cnf_trace)kind, 2024, K, B, D, y), 0);
    CU_ASSERT_EQUAL(memcmp(x, y, n * sizeof *x), 0);
    CU_ASSERT_EQUAL(cnf_probes_draw((cnf_trace)kind, 2025, K, B, D, y), 0);
    size_t same = 0;
    for (size_t i = 0; i < n; i++) same += x[i] == y[i];
    /* another seed, another stream (Rademacher agrees half the time) */
    CU_ASSERT_TRUE(kind == CNF_TRACE_GAUSS ? same == 0 : same < 0.6 * n);
  }
  CU_ASSERT_EQUAL(cnf_probes_draw(CNF_TRACE_EXACT, 1, K, B, D, x), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_probes_draw(CNF_TRACE_GAUSS, 1, K, B, D, NULL), CNF_EINVAL);
  free(x), free(y);
}

static void test_probes_rademacher(void) {
  double *x = malloc(N_DRAW * sizeof *x);
  CU_ASSERT_EQUAL(cnf_probes_draw(CNF_TRACE_RADEMACHER, 7, 1, N_DRAW, 1, x), 0);
  size_t bad = 0, plus = 0;
  for (size_t i = 0; i < N_DRAW; i++) {
    bad += !(x[i] == 1.0 || x[i] == -1.0);
    plus += x[i] == 1.0;
  }
  CU_ASSERT_EQUAL(bad, 0);
  /* the count of +1 is Binomial(n, 1/2): SE sqrt(n)/2 */
  CHECK_NEAR((double)plus, 0.5 * N_DRAW, 4.0 * 0.5 * sqrt((double)N_DRAW));
  free(x);
}

static void test_probes_gauss(void) {
  double *x = malloc(N_DRAW * sizeof *x);
  CU_ASSERT_EQUAL(cnf_probes_draw(CNF_TRACE_GAUSS, 8, 10, 100, N_DRAW / 1000, x), 0);
  moments m = moments_of(x, N_DRAW);
  double m4 = 0.0;
  for (size_t i = 0; i < N_DRAW; i++) m4 += x[i] * x[i] * x[i] * x[i];
  m4 /= N_DRAW;
  const double n = N_DRAW;
  printf("\n  gauss: mean %.4g, variance %.5f, fourth moment %.4f", m.mean, m.var, m4);
  /* N(0, 1): SE of the mean 1/sqrt(n), of the variance sqrt(2/n), of the
   * fourth moment sqrt((105 - 9)/n) */
  CHECK_NEAR(m.mean, 0.0, 4.0 / sqrt(n));
  CHECK_NEAR(m.var, 1.0, 4.0 * sqrt(2.0 / n));
  CHECK_NEAR(m4, 3.0, 4.0 * sqrt(96.0 / n));
  free(x);
}

const test_entry probes_tests[] = {
    {"same seed, same probes; other seed, other probes", test_probes_deterministic},
    {"Rademacher entries are exactly +-1, half each", test_probes_rademacher},
    {"Gaussian mean 0, variance 1, fourth moment 3", test_probes_gauss},
    {NULL, NULL},
};
