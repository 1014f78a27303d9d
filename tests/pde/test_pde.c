/* test_pde.c: the benchmark PDE problems of cnf_pde.h, training-free.
 *
 * 1. Ops: for every field (P1a linear with both A choices, P2 heat, P3 OU)
 *    jvp and f_div, with probes and exact (v == NULL), against central
 *    differences of f at random points, h = 1e-5 (error O(h^2 f''') plus
 *    O(eps |f| / h), well below the 1e-6 allowed).
 * 2. Closed forms: the OU moments satisfy their ODEs (central differences
 *    in t); the Gaussian metrics on known cases.
 * 3. Accuracy bars, exact trace, rtol = atol = 1e-8: samples of p0 are
 *    integrated by cnf_dyn_solve and log p0(x0) + Delta(T) is compared with
 *    the closed-form log p_T(x(T)): LPE (the mean) <= 1e-6 and its max
 *    <= 1e-5, with two documented exceptions (P1a rotation at d = 128 is
 *    held to the bar at 1e-9; P2's reverse direction to 1e-5).
 * 4. Hutchinson: Rademacher K = 1 on the diagonal-plus-skew P1a field gives
 *    the exact-trace answer; on dense A the empirical variance of v.Av
 *    matches 2|S|_F^2 (Gaussian) and 2 sum_{i!=j} S_ij^2 (Rademacher)
 *    within 10% (N = 20000 probes: a few percent standard error).
 * 5. P3's sample moments after the solve match m_T, Sigma_T within a few
 *    standard errors.
 * 6. P4, the double well: the 1-D finite-volume solver (mass, stationary
 *    state, observed orders), the extrapolated reference (closed forms at
 *    t = 0, order under refinement), the field's ops, Euler-Maruyama
 *    against the reference, and the training-free LPE within the
 *    reference's own Fokker-Planck residual.
 * 7. The problem object, the metrics over time and the learner: the suites
 *    of test_pde_learn.c, run from here. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>

#include "cnf_dynamics.h"
#include "cnf_pde.h"
#include "pde_tests.h"
#include "test_util.h"

#define TOL 1e-8
#define LPE_BAR 1e-6
#define LOG2PI 1.8378770664093454836

cnf_ctx *new_ctx(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_FATAL(cnf_ctx_create(&ctx) == 0 && ctx != NULL);
  return ctx;
}

cnf_options options(double tol) {
  cnf_options o;
  cnf_options_default(&o);
  o.method = CNF_METHOD_ADAMS;
  o.rtol = o.atol = tol;
  o.max_steps = 100000;
  return o;
}

static double *dalloc(size_t n) {
  double *p = calloc(n ? n : 1, sizeof(double));
  CU_ASSERT_FATAL(p != NULL);
  return p;
}

static double wall(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void std_normal_logp(size_t D, size_t B, const double *x, double *lp) {
  for (size_t b = 0; b < B; b++) {
    double q = 0.0;
    for (size_t i = 0; i < D; i++) q += x[b * D + i] * x[b * D + i];
    lp[b] = -0.5 * ((double)D * LOG2PI + q);
  }
}

/* ---- 1. ops against central differences ------------------------------------ */

/* jvp (given v and v == NULL) and f_div (given v and exact) at B random
 * points z (scaled by zscale) at time t, against central differences. */
static void check_ops(cnf_dyn *dyn, const double *theta, double t,
                      double zscale, uint64_t seed, const char *name) {
  enum { B = 3, K = 2 };
  const size_t D = cnf_dyn_dim(dyn);
  const double h = 1e-5;
  double *z = dalloc(B * D), *v = dalloc(K * B * D), *zp = dalloc(B * D),
         *fp = dalloc(B * D), *fm = dalloc(B * D), *fd = dalloc((D + K) * B * D),
         *jv = dalloc((D + K) * B * D), *dz = dalloc(B * D), *f0 = dalloc(B * D),
         *e = dalloc(D * B * D);
  double div[B], ref[B];
  fill_uniform(z, B * D, -zscale, zscale, seed);
  fill_gauss(v, K * B * D, seed + 1);
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_reserve(dyn, B, D), 0);
  CU_ASSERT_EQUAL(cnf_dyn_f(dyn, t, B, z, theta, f0), 0);
  /* directional differences along the K probes */
  for (size_t k = 0; k < K; k++) {
    for (size_t i = 0; i < B * D; i++) zp[i] = z[i] + h * v[k * B * D + i];
    CU_ASSERT_EQUAL(cnf_dyn_f(dyn, t, B, zp, theta, fp), 0);
    for (size_t i = 0; i < B * D; i++) zp[i] = z[i] - h * v[k * B * D + i];
    CU_ASSERT_EQUAL(cnf_dyn_f(dyn, t, B, zp, theta, fm), 0);
    for (size_t i = 0; i < B * D; i++) fd[k * B * D + i] = (fp[i] - fm[i]) / (2 * h);
  }
  char what[96];
  CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, t, B, K, z, theta, v, dz, jv), 0);
  snprintf(what, sizeof what, "%s: jvp dz = f", name);
  CHECK_CLOSE(dz, f0, B * D, 1e-14, 1e-14, what);
  snprintf(what, sizeof what, "%s: jvp (probes)", name);
  CHECK_CLOSE(jv, fd, K * B * D, 1e-6, 1e-6, what);
  CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, t, B, K, z, theta, v, NULL, jv), 0);
  snprintf(what, sizeof what, "%s: jvp without dz", name);
  CHECK_CLOSE(jv, fd, K * B * D, 1e-6, 1e-6, what);
  for (size_t b = 0; b < B; b++) {
    ref[b] = 0.0;
    for (size_t k = 0; k < K; k++)
      for (size_t i = 0; i < D; i++)
        ref[b] += v[(k * B + b) * D + i] * fd[(k * B + b) * D + i];
  }
  memset(dz, 0, B * D * sizeof *dz);
  CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, t, B, K, z, theta, v, dz, div), 0);
  snprintf(what, sizeof what, "%s: f_div dz = f", name);
  CHECK_CLOSE(dz, f0, B * D, 1e-14, 1e-14, what);
  snprintf(what, sizeof what, "%s: f_div (probes)", name);
  CHECK_CLOSE(div, ref, B, 1e-6, 1e-6, what);
  /* exact: unit vectors, every row */
  for (size_t k = 0; k < D; k++)
    for (size_t b = 0; b < B; b++) e[(k * B + b) * D + k] = 1.0;
  for (size_t k = 0; k < D; k++) {
    memcpy(zp, z, B * D * sizeof *zp);
    for (size_t b = 0; b < B; b++) zp[b * D + k] += h;
    CU_ASSERT_EQUAL(cnf_dyn_f(dyn, t, B, zp, theta, fp), 0);
    for (size_t b = 0; b < B; b++) zp[b * D + k] -= 2 * h;
    CU_ASSERT_EQUAL(cnf_dyn_f(dyn, t, B, zp, theta, fm), 0);
    for (size_t i = 0; i < B * D; i++) fd[k * B * D + i] = (fp[i] - fm[i]) / (2 * h);
  }
  CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, t, B, D, z, theta, NULL, NULL, jv), 0);
  snprintf(what, sizeof what, "%s: jvp (v NULL: columns of J)", name);
  CHECK_CLOSE(jv, fd, D * B * D, 1e-6, 1e-6, what);
  /* and the same columns through explicit unit vectors */
  CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, t, B, D, z, theta, e, NULL, jv), 0);
  snprintf(what, sizeof what, "%s: jvp (explicit unit vectors)", name);
  CHECK_CLOSE(jv, fd, D * B * D, 1e-6, 1e-6, what);
  for (size_t b = 0; b < B; b++) {
    ref[b] = 0.0;
    for (size_t k = 0; k < D; k++) ref[b] += fd[(k * B + b) * D + k];
  }
  CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, t, B, D, z, theta, NULL, dz, div), 0);
  snprintf(what, sizeof what, "%s: f_div exact trace", name);
  CHECK_CLOSE(div, ref, B, 1e-6, 1e-6, what);
  free(z), free(v), free(zp), free(fp), free(fm), free(fd), free(jv), free(dz);
  free(f0), free(e);
}

static double *p1a_theta(cnf_pde_amat kind, size_t D, uint64_t seed) {
  double *theta = dalloc(D * D + D);
  CU_ASSERT_EQUAL(cnf_pde_p1a_matrix(NULL, kind, D, 0.5, 2.0, seed, theta), 0);
  return theta;
}

static void test_ops_p1a(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t dims[] = {2, 5, 16};
  for (size_t n = 0; n < 3; n++) {
    const size_t D = dims[n];
    cnf_dyn *dyn = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
    for (int kind = 0; kind < 2; kind++) {
      double *theta = p1a_theta((cnf_pde_amat)kind, D, 10 + D);
      char name[64];
      snprintf(name, sizeof name, "P1a %s d=%zu", kind ? "dense" : "rotation", D);
      check_ops(dyn, theta, 0.3, 2.0, 100 + D, name);
      free(theta);
    }
    cnf_dyn_free(dyn);
  }
  cnf_ctx_free(ctx);
}

static void test_ops_heat(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t dims[] = {2, 3, 10};
  const double times[] = {0.0, 0.05, 0.7};
  for (size_t n = 0; n < 3; n++) {
    cnf_pde_heat *h = NULL;
    cnf_dyn *dyn = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_pde_heat_create(&h, ctx, dims[n]), 0);
    CU_ASSERT_EQUAL_FATAL(cnf_pde_heat_dyn(&dyn, ctx, h), 0);
    cnf_pde_heat_free(h); /* the field holds its own copy */
    CU_ASSERT_STRING_EQUAL(cnf_dyn_name(dyn), "pde-heat");
    CU_ASSERT_EQUAL(cnf_dyn_param_count(dyn), 0);
    for (size_t k = 0; k < 3; k++) {
      char name[64];
      snprintf(name, sizeof name, "P2 d=%zu t=%g", dims[n], times[k]);
      /* points between the modes, where the responsibilities mix */
      check_ops(dyn, NULL, times[k], 2.2, 200 + 10 * n + k, name);
    }
    cnf_dyn_free(dyn);
  }
  cnf_ctx_free(ctx);
}

static void test_ops_ou(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t dims[] = {2, 5, 12};
  const double times[] = {0.0, 0.4, 2.0};
  for (size_t n = 0; n < 3; n++) {
    cnf_pde_ou *ou = NULL;
    cnf_dyn *dyn = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_pde_ou_create(&ou, ctx, dims[n], 7), 0);
    CU_ASSERT_EQUAL_FATAL(cnf_pde_ou_dyn(&dyn, ctx, ou), 0);
    for (size_t k = 0; k < 3; k++) {
      char name[64];
      snprintf(name, sizeof name, "P3 d=%zu t=%g", dims[n], times[k]);
      check_ops(dyn, NULL, times[k], 2.0, 300 + 10 * n + k, name);
      /* the trace is -tr A + tr Sigma_t^{-1} everywhere */
      double z[2 * 12] = {0}, dz[2 * 12], div[2];
      fill_gauss(z, 2 * dims[n], 5);
      CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, times[k], 2, dims[n], z, NULL, NULL, dz, div), 0);
      CHECK_NEAR(div[0], cnf_pde_ou_div(ou, times[k]), 1e-12);
      CHECK_NEAR(div[1], cnf_pde_ou_div(ou, times[k]), 1e-12);
      /* the batched GEMM path (after reserve) against the row-by-row one
       * of a field that was never reserved */
      cnf_dyn *rows = NULL;
      double v[2 * 2 * 12], f1[2 * 12], f2[2 * 12], j1[2 * 2 * 12], j2[2 * 2 * 12], d1[2], d2[2];
      fill_gauss(v, 2 * 2 * dims[n], 6);
      CU_ASSERT_EQUAL_FATAL(cnf_pde_ou_dyn(&rows, ctx, ou), 0);
      CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, times[k], 2, 2, z, NULL, v, f1, j1), 0);
      CU_ASSERT_EQUAL(cnf_dyn_jvp(rows, times[k], 2, 2, z, NULL, v, f2, j2), 0);
      CHECK_CLOSE(f1, f2, 2 * dims[n], 1e-13, 1e-13, "P3: f, GEMM against rows");
      CHECK_CLOSE(j1, j2, 2 * 2 * dims[n], 1e-13, 1e-13, "P3: jvp, GEMM against rows");
      CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, times[k], 2, 2, z, NULL, v, f1, d1), 0);
      CU_ASSERT_EQUAL(cnf_dyn_f_div(rows, times[k], 2, 2, z, NULL, v, f2, d2), 0);
      CHECK_CLOSE(d1, d2, 2, 1e-13, 1e-13, "P3: f_div, GEMM against rows");
      cnf_dyn_free(rows);
    }
    cnf_dyn_free(dyn);
    cnf_pde_ou_free(ou);
  }
  cnf_ctx_free(ctx);
}

/* ---- 2. closed forms and metrics ---------------------------------------------- */

/* m' = -A (m - b), Sigma' = -A Sigma - Sigma A + 2 I, by central
 * differences in t; A symmetric positive definite. */
static void test_ou_moment_odes(void) {
  cnf_ctx *ctx = new_ctx();
  enum { D = 6 };
  cnf_pde_ou *ou = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_pde_ou_create(&ou, ctx, D, 11), 0);
  const double *A = cnf_pde_ou_A(ou), *b = cnf_pde_ou_b(ou);
  for (size_t i = 0; i < D; i++)
    for (size_t j = 0; j < D; j++) CU_ASSERT_EQUAL(A[i * D + j], A[j * D + i]);
  double m0[D], S0[D * D], mp[D], Sp[D * D], mm[D], Sm[D * D];
  cnf_pde_ou_moments(ou, 0.0, m0, S0);
  for (size_t i = 0; i < D; i++) {
    CHECK_NEAR(m0[i], 0.0, 1e-14);
    for (size_t j = 0; j < D; j++) CHECK_NEAR(S0[i * D + j], i == j, 1e-13);
  }
  const double h = 1e-5;
  const double ts[] = {0.3, 1.0, 2.0};
  for (int n = 0; n < 3; n++) {
    const double t = ts[n];
    cnf_pde_ou_moments(ou, t, m0, S0);
    cnf_pde_ou_moments(ou, t + h, mp, Sp);
    cnf_pde_ou_moments(ou, t - h, mm, Sm);
    double dm[D], rm[D], dS[D * D], rS[D * D];
    for (size_t i = 0; i < D; i++) {
      dm[i] = (mp[i] - mm[i]) / (2 * h);
      rm[i] = 0.0;
      for (size_t j = 0; j < D; j++) rm[i] -= A[i * D + j] * (m0[j] - b[j]);
      for (size_t j = 0; j < D; j++) {
        dS[i * D + j] = (Sp[i * D + j] - Sm[i * D + j]) / (2 * h);
        double s = 2.0 * (i == j);
        for (size_t k = 0; k < D; k++)
          s -= A[i * D + k] * S0[k * D + j] + S0[i * D + k] * A[k * D + j];
        rS[i * D + j] = s;
      }
    }
    CHECK_CLOSE(dm, rm, D, 1e-7, 1e-7, "OU: dm/dt = -A (m - b)");
    CHECK_CLOSE(dS, rS, D * D, 1e-7, 1e-7, "OU: dSigma/dt = -A S - S A + 2I");
  }
  /* the Gaussian log-density integrates the covariance: at x = m_t it is
   * -(d log 2 pi + log det Sigma_t)/2 */
  double lp;
  cnf_pde_ou_moments(ou, 1.0, m0, S0);
  CU_ASSERT_EQUAL(cnf_pde_ou_logp(ou, 1.0, 1, m0, &lp), 0);
  double lp2;
  double x1[D];
  memcpy(x1, m0, sizeof x1);
  x1[0] += 1e-3;
  CU_ASSERT_EQUAL(cnf_pde_ou_logp(ou, 1.0, 1, x1, &lp2), 0);
  CU_ASSERT_TRUE(lp2 < lp);
  cnf_pde_ou_free(ou);
  cnf_ctx_free(ctx);
}

/* The heat problem's log p_t integrates to 1 in d = 2 (a grid sum) and its
 * sampler's mean is sum_k w_k mu_k = (-0.2, -0.2, 0...). */
static void test_heat_closed_form(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_pde_heat *h = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_pde_heat_create(&h, ctx, 2), 0);
  const double ts[] = {0.0, 1.0};
  for (int n = 0; n < 2; n++) {
    const double step = 0.02;
    double mass = 0.0, x[2], lp;
    for (int i = -400; i <= 400; i++)
      for (int j = -400; j <= 400; j++) {
        x[0] = i * step;
        x[1] = j * step;
        cnf_pde_heat_logp(h, ts[n], 1, x, &lp);
        mass += exp(lp) * step * step;
      }
    CHECK_NEAR(mass, 1.0, 1e-8);
  }
  enum { N = 20000 };
  double *xs = dalloc(2 * N), m[2];
  CU_ASSERT_EQUAL(cnf_pde_heat_sample(h, 0.0, 3, N, xs), 0);
  CU_ASSERT_EQUAL(cnf_pde_sample_moments(2, N, xs, m, NULL), 0);
  /* per-coordinate variance <= 0.0625 + 4 */
  CHECK_NEAR(m[0], -0.2, 4 * sqrt(4.1 / N));
  CHECK_NEAR(m[1], -0.2, 4 * sqrt(4.1 / N));
  free(xs);
  cnf_pde_heat_free(h);
  CU_ASSERT_EQUAL(cnf_pde_heat_create(&h, ctx, 1), CNF_EINVAL);
  cnf_ctx_free(ctx);
}

static void test_metrics(void) {
  cnf_ctx *ctx = new_ctx();
  /* W2^2 between N(m, S) and N(m', S') with commuting S: |dm|^2 +
   * sum (sqrt s_i - sqrt s'_i)^2 */
  double m1[2] = {0, 0}, S1[4] = {1, 0, 0, 4}, m2[2] = {1, 0}, S2[4] = {4, 0, 0, 1};
  cnf_pde_gauss_err e;
  CU_ASSERT_EQUAL(cnf_pde_gauss_errors(ctx, 2, m2, S2, m1, S1, &e), 0);
  CHECK_NEAR(e.w2sq, 1.0 + 1.0 + 1.0, 1e-12);
  CHECK_NEAR(e.mean_rel, 1.0, 1e-15);
  CHECK_NEAR(e.cov_rel, sqrt(18.0 / 17.0), 1e-14);
  CU_ASSERT_EQUAL(cnf_pde_gauss_errors(ctx, 2, m1, S1, m1, S1, &e), 0);
  CHECK_NEAR(e.w2sq, 0.0, 1e-12);
  CHECK_NEAR(e.cov_rel, 0.0, 0.0);
  /* a rotated pair: W2 is invariant */
  const double c = cos(0.7), s = sin(0.7);
  double R[4] = {c, -s, s, c}, T1[4], T2[4];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) {
      T1[i * 2 + j] = R[i * 2] * S1[0] * R[j * 2] + R[i * 2 + 1] * S1[3] * R[j * 2 + 1];
      T2[i * 2 + j] = R[i * 2] * S2[0] * R[j * 2] + R[i * 2 + 1] * S2[3] * R[j * 2 + 1];
    }
  CU_ASSERT_EQUAL(cnf_pde_gauss_errors(ctx, 2, m2, T2, m1, T1, &e), 0);
  CHECK_NEAR(e.w2sq, 3.0, 1e-12);
  double a[3] = {1, 2, 3}, b[3] = {1.5, 2, 1};
  double mean, max;
  cnf_pde_lpe(3, a, b, &mean, &max);
  CHECK_NEAR(mean, 2.5 / 3, 1e-15);
  CHECK_NEAR(max, 2.0, 0.0);
  double A[4];
  CU_ASSERT_EQUAL(cnf_pde_p1a_matrix(ctx, CNF_PDE_A_ROTATION, 2, 0.5, 2.0, 0, A), 0);
  CHECK_NEAR(cnf_pde_hutch_var(CNF_TRACE_RADEMACHER, 2, A), 0.0, 0.0);
  CHECK_NEAR(cnf_pde_hutch_var(CNF_TRACE_GAUSS, 2, A), 2 * 2 * 0.25, 1e-15);
  cnf_ctx_free(ctx);
}

/* ---- 3. accuracy bars ------------------------------------------------------ */

/* Prints the LPE (mean, max, per dimension), the solver's work and time;
 * checks mean <= bar and max <= 10 bar. */
static void report_lpe(const char *name, size_t D, size_t B, double tol,
                       const double *lp_hat, const double *lp, double bar,
                       double secs, const cnf_stats *st) {
  double mean, max;
  cnf_pde_lpe(B, lp_hat, lp, &mean, &max);
  printf("\n    %-16s d=%3zu B=%3zu tol %.0e: LPE mean %.2e max %.2e (LPE/d "
         "%.1e) steps %ld nfe %ld %.3fs",
         name, D, B, tol, mean, max, mean / (double)D, st->nsteps, st->nfe, secs);
  CU_ASSERT_TRUE(mean <= bar);
  CU_ASSERT_TRUE(max <= 10.0 * bar);
}

/* LPE = d x (relative state error) here: the log-density error at the
 * exact x(T) (Delta alone) is ~1e-13, the rest is x(T)'s error seen through
 * log p_T's gradient (|grad| ~ |x0| ~ sqrt(d), and CVODE's error is nearly
 * proportional to x).  At d = 128 the rotation field reaches LPE ~1.7e-6 at
 * rtol = atol = 1e-8 for any gamma, omega tried (0.1..1, 1..2; BDF worse,
 * one solve per sample no better), so that one case is held to the bar at
 * 1e-9 (measured 5e-7) and its 1e-8 figure is printed. */
static void test_lpe_p1a(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t dims[] = {2, 16, 128};
  const size_t Bs[] = {200, 200, 64};
  const double T = 1.0;
  for (size_t n = 0; n < 3; n++) {
    const size_t D = dims[n], B = Bs[n];
    cnf_dyn *dyn = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
    for (int kind = 0; kind < 2; kind++) {
      const int tight = kind == CNF_PDE_A_ROTATION && D == 128;
      for (int pass = 0; pass <= tight; pass++) {
        const double tol = pass ? TOL / 10 : TOL;
        const double bar = tight && !pass ? 1e-5 : LPE_BAR;
        double *theta = p1a_theta((cnf_pde_amat)kind, D, 40 + D);
        double *z = dalloc(B * D), *ref = dalloc(B * D), *lp0 = dalloc(B),
               *delta = dalloc(B), *lp = dalloc(B);
        fill_gauss(z, B * D, 500 + D);
        std_normal_logp(D, B, z, lp0);
        CU_ASSERT_EQUAL(cnf_pde_p1a_flow(ctx, D, theta, T, B, z, ref), 0);
        cnf_options o = options(tol);
        cnf_stats st;
        cnf_stats_clear(&st);
        double t0 = wall();
        CU_ASSERT_EQUAL(cnf_dyn_solve(dyn, theta, &o, 0.0, T, B, 0, NULL, z, delta, &st), 0);
        double secs = wall() - t0;
        CU_ASSERT_EQUAL(cnf_pde_p1a_logp(ctx, D, theta, T, B, z, lp), 0);
        for (size_t b = 0; b < B; b++) lp0[b] += delta[b];
        report_lpe(kind ? "P1a dense" : "P1a rotation", D, B, tol, lp0, lp,
                   bar, secs, &st);
        double err = 0.0;
        for (size_t i = 0; i < B * D; i++) err = fmax(err, fabs(z[i] - ref[i]));
        /* the part due to Delta alone: the closed form at the exact x(T) */
        CU_ASSERT_EQUAL(cnf_pde_p1a_logp(ctx, D, theta, T, B, ref, lp), 0);
        double dmean, dmax;
        cnf_pde_lpe(B, lp0, lp, &dmean, &dmax);
        printf("\n      |x - expm(TA) x0| %.1e; LPE at the exact x(T) %.1e", err,
               dmean);
        CU_ASSERT_TRUE(err < 1e-6);
        CU_ASSERT_TRUE(dmax < 1e-10);
        free(theta), free(z), free(ref), free(lp0), free(delta), free(lp);
      }
    }
    cnf_dyn_free(dyn);
  }
  cnf_ctx_free(ctx);
}

/* Forward: samples of p0 to T.  Reverse (the direction diffusion models
 * use): samples of p_T back to 0, log p0(x(0)) = log p_T(x(T)) + Delta with
 * Delta integrated from T to 0.  The reverse flow ends on modes of width
 * 0.25, where |grad log p0| ~ |x - mu| / 0.0625 magnifies the state error
 * (measured LPE 2e-7 at d = 2, 5e-6 at d = 10 at tol 1e-8): the reverse
 * direction is held to 1e-5, not the forward bar. */
static void test_lpe_heat(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t dims[] = {2, 10};
  const size_t Bs[] = {200, 100};
  const double T = 1.0;
  for (size_t n = 0; n < 2; n++) {
    const size_t D = dims[n], B = Bs[n];
    cnf_pde_heat *h = NULL;
    cnf_dyn *dyn = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_pde_heat_create(&h, ctx, D), 0);
    CU_ASSERT_EQUAL_FATAL(cnf_pde_heat_dyn(&dyn, ctx, h), 0);
    double *z = dalloc(B * D), *lp0 = dalloc(B), *delta = dalloc(B),
           *lp = dalloc(B), *lph = dalloc(B);
    for (int dir = 0; dir < 2; dir++) {
      const double ta = dir ? T : 0.0, tb = dir ? 0.0 : T;
      CU_ASSERT_EQUAL(cnf_pde_heat_sample(h, ta, 900 + D + dir, B, z), 0);
      CU_ASSERT_EQUAL(cnf_pde_heat_logp(h, ta, B, z, lp0), 0);
      memset(delta, 0, B * sizeof *delta);
      cnf_options o = options(TOL);
      cnf_stats st;
      cnf_stats_clear(&st);
      double t0 = wall();
      CU_ASSERT_EQUAL(cnf_dyn_solve(dyn, NULL, &o, ta, tb, B, 0, NULL, z, delta, &st), 0);
      double secs = wall() - t0;
      CU_ASSERT_EQUAL(cnf_pde_heat_logp(h, tb, B, z, lp), 0);
      for (size_t b = 0; b < B; b++) lph[b] = lp0[b] + delta[b];
      report_lpe(dir ? "P2 heat reverse" : "P2 heat forward", D, B, TOL, lph,
                 lp, dir ? 1e-5 : LPE_BAR, secs, &st);
    }
    cnf_dyn_free(dyn);
    cnf_pde_heat_free(h);
    free(z), free(lp0), free(delta), free(lp), free(lph);
  }
  cnf_ctx_free(ctx);
}

static void test_lpe_ou(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t dims[] = {2, 10, 30};
  const size_t Bs[] = {200, 400, 64};
  const double T = 2.0;
  for (size_t n = 0; n < 3; n++) {
    const size_t D = dims[n], B = Bs[n];
    cnf_pde_ou *ou = NULL;
    cnf_dyn *dyn = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_pde_ou_create(&ou, ctx, D, 21 + D), 0);
    CU_ASSERT_EQUAL_FATAL(cnf_pde_ou_dyn(&dyn, ctx, ou), 0);
    double *z = dalloc(B * D), *lp0 = dalloc(B), *delta = dalloc(B),
           *lp = dalloc(B);
    fill_gauss(z, B * D, 700 + D);
    std_normal_logp(D, B, z, lp0);
    cnf_options o = options(TOL);
    cnf_stats st;
    cnf_stats_clear(&st);
    double t0 = wall();
    CU_ASSERT_EQUAL(cnf_dyn_solve(dyn, NULL, &o, 0.0, T, B, 0, NULL, z, delta, &st), 0);
    double secs = wall() - t0;
    CU_ASSERT_EQUAL(cnf_pde_ou_logp(ou, T, B, z, lp), 0);
    for (size_t b = 0; b < B; b++) lp0[b] += delta[b];
    report_lpe("P3 OU", D, B, TOL, lp0, lp, LPE_BAR, secs, &st);
    if (D == 10) {
      /* 5. sample moments of x(T) against m_T, Sigma_T */
      double *m = dalloc(D), *S = dalloc(D * D), *mh = dalloc(D),
             *Sh = dalloc(D * D);
      cnf_pde_ou_moments(ou, T, m, S);
      CU_ASSERT_EQUAL(cnf_pde_sample_moments(D, B, z, mh, Sh), 0);
      double zm = 0.0, zs = 0.0;
      for (size_t i = 0; i < D; i++) {
        zm = fmax(zm, fabs(mh[i] - m[i]) / sqrt(S[i * D + i] / (double)B));
        for (size_t j = 0; j < D; j++) {
          const double se = sqrt((S[i * D + i] * S[j * D + j] +
                                  S[i * D + j] * S[i * D + j]) / (double)B);
          zs = fmax(zs, fabs(Sh[i * D + j] - S[i * D + j]) / se);
        }
      }
      cnf_pde_gauss_err e;
      CU_ASSERT_EQUAL(cnf_pde_gauss_errors(ctx, D, mh, Sh, m, S, &e), 0);
      printf("\n    P3 moments d=%zu B=%zu: max |mean err|/se %.2f, max |cov "
             "err|/se %.2f, mean rel %.3f cov rel %.3f W2^2 %.4f",
             D, B, zm, zs, e.mean_rel, e.cov_rel, e.w2sq);
      CU_ASSERT_TRUE(zm <= 4.0);
      CU_ASSERT_TRUE(zs <= 5.0);
      free(m), free(S), free(mh), free(Sh);
    }
    cnf_dyn_free(dyn);
    cnf_pde_ou_free(ou);
    free(z), free(lp0), free(delta), free(lp);
  }
  cnf_ctx_free(ctx);
}

/* ---- 4. Hutchinson ------------------------------------------------------------ */

static void test_rademacher_rotation(void) {
  cnf_ctx *ctx = new_ctx();
  enum { D = 16, B = 50 };
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  double *theta = p1a_theta(CNF_PDE_A_ROTATION, D, 0);
  double z0[B * D], z1[B * D], z2[B * D], d1[B] = {0}, d2[B] = {0},
         eps[B * D];
  fill_gauss(z0, B * D, 61);
  memcpy(z1, z0, sizeof z0);
  memcpy(z2, z0, sizeof z0);
  CU_ASSERT_EQUAL(cnf_probes_draw(CNF_TRACE_RADEMACHER, 62, 1, B, D, eps), 0);
  cnf_options o = options(TOL);
  CU_ASSERT_EQUAL(cnf_dyn_solve(dyn, theta, &o, 0.0, 1.0, B, 0, NULL, z1, d1, NULL), 0);
  CU_ASSERT_EQUAL(cnf_dyn_solve(dyn, theta, &o, 0.0, 1.0, B, 1, eps, z2, d2, NULL), 0);
  double worst = 0.0;
  for (size_t b = 0; b < B; b++) worst = fmax(worst, fabs(d1[b] - d2[b]));
  printf("\n    Rademacher K=1 vs exact trace, d=%d: max |Delta diff| %.1e, "
         "Delta = %.15g (closed form %.15g)", D, worst, d1[0], 0.5 * D);
  CU_ASSERT_TRUE(worst <= 1e-12);
  CHECK_NEAR(d1[0], 0.5 * D, 1e-10); /* -T tr A, tr A = -gamma D */
  free(theta);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void test_hutchinson_variance(void) {
  cnf_ctx *ctx = new_ctx();
  enum { D = 16, N = 20000 };
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  double *theta = p1a_theta(CNF_PDE_A_DENSE, D, 77);
  double *z = dalloc((size_t)N * D), *dz = dalloc((size_t)N * D),
         *eps = dalloc((size_t)N * D), *div = dalloc(N);
  fill_gauss(z, (size_t)N * D, 78);
  double trA = 0.0;
  for (size_t i = 0; i < D; i++) trA += theta[i * D + i];
  const cnf_trace kinds[2] = {CNF_TRACE_GAUSS, CNF_TRACE_RADEMACHER};
  for (int k = 0; k < 2; k++) {
    CU_ASSERT_EQUAL(cnf_probes_draw(kinds[k], 80 + k, 1, N, D, eps), 0);
    CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, 0.0, N, 1, z, theta, eps, dz, div), 0);
    double mean = 0.0, var = 0.0;
    for (size_t b = 0; b < N; b++) mean += div[b];
    mean /= N;
    for (size_t b = 0; b < N; b++) var += (div[b] - mean) * (div[b] - mean);
    var /= N - 1;
    const double ref = cnf_pde_hutch_var(kinds[k], D, theta);
    printf("\n    %-10s d=%d N=%d: mean %.4f (tr A %.4f), variance %.4f, closed "
           "form %.4f (ratio %.3f)",
           cnf_trace_name(kinds[k]), D, N, mean, trA, var, ref, var / ref);
    CU_ASSERT_TRUE(fabs(var / ref - 1.0) <= 0.10);
    CU_ASSERT_TRUE(fabs(mean - trA) <= 5.0 * sqrt(ref / N));
  }
  free(theta), free(z), free(dz), free(eps), free(div);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void test_bad_args(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = NULL;
  cnf_pde_ou *ou = NULL;
  double A[4];
  CU_ASSERT_EQUAL(cnf_pde_p1a_matrix(ctx, CNF_PDE_A_DENSE, 0, 0, 0, 0, A), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_pde_p1a_matrix(ctx, (cnf_pde_amat)7, 2, 0, 0, 0, A), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_pde_ou_create(&ou, ctx, 0, 1), CNF_EINVAL);
  CU_ASSERT_PTR_NULL(ou);
  CU_ASSERT_EQUAL(cnf_pde_heat_dyn(&dyn, ctx, NULL), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_pde_ou_dyn(&dyn, ctx, NULL), CNF_EINVAL);
  CU_ASSERT_PTR_NULL(dyn);
  cnf_ctx_free(ctx);
}


/* P1b, the cubic field, d = 2..1000, T = 0.5 and 2 (rotated Q up to
 * d = 100, the identity at 1000), against the closed forms:
 *  - x(T) to 1e-5 (absolute; rtol 1e-8 in an RMS norm over up to 1000
 *    components), and Delta(T) = (3/2) sum log(1 + 2 T y0_i^2), the
 *    integral of the divergence along the trajectory, to 1e-6 (relative to
 *    max(1, |Delta|)): the log-density change the CNF machinery computes;
 *  - the LPE (docs/design.md, section 10), log p0(x0) + Delta against log p_T at the
 *    computed x(T): p_T's support ends where 2 T y_i^2 = 1, and near that
 *    edge log p_T is so steep that the state's error (1e-8 relative) is
 *    magnified into 1e-6..1e-4 (growing with d); it is reported and held
 *    to 1e-3 only.
 * Then Adams against BDF on points with |y0| ~ 10 (Jacobian eigenvalues
 * down to -300 at t = 0), printing steps, RHS evaluations and J v. */
static void test_lpe_cubic(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t dims[] = {2, 10, 100, 1000}, Bs[] = {100, 50, 16, 4};
  const double Ts[] = {0.5, 2.0};
  for (size_t n = 0; n < 4; n++) {
    const size_t D = dims[n], B = Bs[n];
    double *Q = D <= 100 ? dalloc(D * D) : NULL;
    if (Q != NULL) random_orthogonal(Q, D, 700 + D);
    cnf_dyn *dyn = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_dyn_cubic_create(&dyn, ctx, D, Q), 0);
    double *x0 = dalloc(B * D), *z = dalloc(B * D), *xr = dalloc(B * D), *delta = dalloc(B),
           *lp0 = dalloc(B), *lp = dalloc(B), *lph = dalloc(B);
    fill_gauss(x0, B * D, 710 + D);
    std_normal_logp(D, B, x0, lp0);
    for (int k = 0; k < 2; k++) {
      cnf_options o = options(TOL);
      cnf_stats st;
      cnf_stats_clear(&st);
      memcpy(z, x0, B * D * sizeof *z);
      memset(delta, 0, B * sizeof *delta);
      double t0 = wall();
      CU_ASSERT_EQUAL(cnf_dyn_solve(dyn, NULL, &o, 0.0, Ts[k], B, 0, NULL, z, delta, &st), 0);
      double secs = wall() - t0;
      CU_ASSERT_EQUAL(cnf_pde_p1b_flow(ctx, D, Q, Ts[k], B, x0, xr), 0);
      double ex = 0.0;
      for (size_t i = 0; i < B * D; i++) ex = fmax(ex, fabs(z[i] - xr[i]));
      CU_ASSERT_TRUE(ex <= 1e-5);
      /* Delta against the closed-form integral from x0 */
      double ed = 0.0, *y0 = dalloc(D);
      for (size_t b = 0; b < B; b++) {
        for (size_t i = 0; i < D; i++) { /* y0 = Q^T x0 */
          double acc = 0.0;
          for (size_t j = 0; j < D; j++) acc += (Q ? Q[j * D + i] : (double)(i == j)) * x0[b * D + j];
          y0[i] = acc;
        }
        double dref = 0.0;
        for (size_t i = 0; i < D; i++) dref += 1.5 * log1p(2.0 * Ts[k] * y0[i] * y0[i]);
        ed = fmax(ed, fabs(delta[b] - dref) / fmax(1.0, fabs(dref)));
      }
      free(y0);
      printf("\n    P1b d=%zu T=%g: max |x - x(T)| %.2e, Delta error %.2e", D, Ts[k], ex, ed);
      CU_ASSERT_TRUE(ed <= 1e-6);
      CU_ASSERT_EQUAL(cnf_pde_p1b_logp(ctx, D, Q, Ts[k], B, z, lp), 0);
      for (size_t b = 0; b < B; b++) lph[b] = lp0[b] + delta[b];
      report_lpe(Ts[k] < 1 ? "P1b T=0.5" : "P1b T=2", D, B, TOL, lph, lp, 1e-3, secs, &st);
    }
    cnf_dyn_free(dyn);
    free(Q), free(x0), free(z), free(xr), free(delta), free(lp0), free(lp), free(lph);
  }
  /* stiff points: Adams against BDF */
  const size_t D = 10, B = 8;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_cubic_create(&dyn, ctx, D, NULL), 0);
  double x0[80], z[80], delta[8];
  fill_gauss(x0, B * D, 731);
  for (size_t i = 0; i < B * D; i++) x0[i] *= 10.0;
  for (int m = 0; m < 2; m++) {
    cnf_options o = options(TOL);
    o.method = m ? CNF_METHOD_BDF : CNF_METHOD_ADAMS;
    cnf_stats st;
    cnf_stats_clear(&st);
    memcpy(z, x0, sizeof z);
    memset(delta, 0, sizeof delta);
    CU_ASSERT_EQUAL(cnf_dyn_solve(dyn, NULL, &o, 0.0, 2.0, B, 0, NULL, z, delta, &st), 0);
    printf("\n    P1b |y0| ~ 10, d=10, T=2, %s: steps %ld, RHS evaluations %ld, J v %ld",
           cnf_method_name(o.method), st.nsteps, st.nfe, st.njtv);
  }
  printf(" ");
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* log p_t at arbitrary points by a backward solve (cnf_dyn_logp_at) with
 * p0 given as a callback: P2 from its mixture p0 and P3 from N(0, I), at
 * points that are not samples of anything (a uniform box), against the
 * closed forms. */
static int heat_p0(void *user, size_t B, size_t D, const double *x, double *logp) {
  (void)D;
  return cnf_pde_heat_logp(user, 0.0, B, x, logp);
}

static int normal_p0(void *user, size_t B, size_t D, const double *x, double *logp) {
  (void)user;
  for (size_t b = 0; b < B; b++) logp[b] = cnf_log_normal(x + b * D, D);
  return 0;
}

static void test_logp_at(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t D = 3, B = 50;
  const double T = 0.8;
  double *x = dalloc(B * D), *lp = dalloc(B), *ref = dalloc(B);
  fill_uniform(x, B * D, -3.0, 3.0, 1234);
  cnf_options o = options(TOL);
  double mean = 0, max = 0;
  /* P2 */
  cnf_pde_heat *h = NULL;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_pde_heat_create(&h, ctx, D), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_pde_heat_dyn(&dyn, ctx, h), 0);
  cnf_density p0 = {heat_p0, NULL, h};
  CU_ASSERT_EQUAL(cnf_dyn_logp_at(dyn, NULL, &o, &p0, 0.0, T, B, 0, NULL, x, lp, NULL), 0);
  CU_ASSERT_EQUAL(cnf_pde_heat_logp(h, T, B, x, ref), 0);
  cnf_pde_lpe(B, lp, ref, &mean, &max);
  printf("\n  P2 log p_t at box points: LPE mean %.3g max %.3g", mean, max);
  CU_ASSERT_TRUE(mean <= LPE_BAR && max <= 10 * LPE_BAR);
  cnf_dyn_free(dyn);
  cnf_pde_heat_free(h);
  /* P3 */
  cnf_pde_ou *ou = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_pde_ou_create(&ou, ctx, D, 77), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_pde_ou_dyn(&dyn, ctx, ou), 0);
  cnf_density n0 = {normal_p0, NULL, NULL};
  CU_ASSERT_EQUAL(cnf_dyn_logp_at(dyn, NULL, &o, &n0, 0.0, T, B, 0, NULL, x, lp, NULL), 0);
  CU_ASSERT_EQUAL(cnf_pde_ou_logp(ou, T, B, x, ref), 0);
  cnf_pde_lpe(B, lp, ref, &mean, &max);
  printf("\n  P3 log p_t at box points: LPE mean %.3g max %.3g ", mean, max);
  CU_ASSERT_TRUE(mean <= LPE_BAR && max <= 10 * LPE_BAR);
  /* errors: no callback */
  cnf_density none = {NULL, NULL, NULL};
  CU_ASSERT_EQUAL(cnf_dyn_logp_at(dyn, NULL, &o, &none, 0.0, T, B, 0, NULL, x, lp, NULL),
                  CNF_EINVAL);
  cnf_dyn_free(dyn);
  cnf_pde_ou_free(ou);
  free(x), free(lp), free(ref);
  cnf_ctx_free(ctx);
}

/* ---- P4: the double-well reference and field ----------------------------------- */

#define DW_L 5.0

static double dw_V(double y) { return 0.25 * y * y * y * y - 2.0 * y * y; }

/* p (N+1) = p0 at the nodes of the grid of N cells on [-5, 5] */
static double *dw_p0_nodes(size_t N) {
  double *p = dalloc(N + 1), h = 2 * DW_L / (double)N;
  for (size_t i = 0; i <= N; i++) p[i] = exp(cnf_pde_dw_p0_1d(-DW_L + (double)i * h));
  return p;
}

/* The base solver: mass conserved to round-off (1000 implicit Euler
 * steps), positivity, and the stationary state exp(-V/D)/Z1 (Z1 by GSL's
 * quadrature) reached at T = 1000: the slowest mode decays like
 * (1 + 0.03 dt)^(-steps) ~ e^-30 at D = 1 (faster at D = 2), and the scheme is exact at the nodes for
 * exp(-V/D), so what remains is the midpoint sum of p0's mass (~1e-16)
 * and round-off. */
static void test_fp1d_mass_stationary(void) {
  const size_t N = 400;
  const double h = 2 * DW_L / (double)N;
  const double Ds[] = {1.0, 2.0};
  for (int k = 0; k < 2; k++) {
    double *p = dw_p0_nodes(N), m0 = 0.0, m1 = 0.0, e = 0.0, pmin = 1.0;
    for (size_t i = 0; i <= N; i++) m0 += h * p[i];
    CU_ASSERT_EQUAL(cnf_pde_fp1d_solve(NULL, Ds[k], DW_L, N, 1000.0, 1000, p), 0);
    const double lz = cnf_pde_dw_logZ1(Ds[k]);
    for (size_t i = 0; i <= N; i++) {
      const double y = -DW_L + (double)i * h, q = exp(-dw_V(y) / Ds[k] - lz);
      m1 += h * p[i];
      pmin = fmin(pmin, p[i]);
      if (q > 1e-8) e = fmax(e, fabs(p[i] / q - 1.0));
    }
    printf("\n    1-D solver D=%g: mass %.17g -> %.17g, stationary rel. err %.2e", Ds[k], m0, m1,
           e);
    CHECK_NEAR(m0, 1.0, 1e-14);
    CHECK_NEAR(m1, m0, 1e-10);
    CU_ASSERT_TRUE(pmin > 0.0);
    CU_ASSERT_TRUE(e < 1e-9);
    free(p);
  }
  /* Z1 against the trapezoid sum of exp(-V) on a fine grid (spectrally
   * accurate for a smooth, rapidly decaying integrand) */
  double z = 0.0;
  for (int i = -60000; i <= 60000; i++) z += exp(-dw_V(i * 1e-4)) * 1e-4;
  CHECK_NEAR(cnf_pde_dw_logZ1(1.0), log(z), 1e-12);
  CU_ASSERT_EQUAL(cnf_pde_fp1d_solve(NULL, 0.0, DW_L, N, 1.0, 1, NULL), CNF_EINVAL);
}

/* Max |p_N - p_ref| at the nodes of the coarsest grid (every grid nests
 * in the next: vertex grids on [-5, 5]). */
static double fp1d_err(size_t N, size_t steps, size_t Nref, size_t steps_ref, double T) {
  double *p = dw_p0_nodes(N), *r = dw_p0_nodes(Nref), e = 0.0;
  CU_ASSERT_EQUAL(cnf_pde_fp1d_solve(NULL, 1.0, DW_L, N, T, steps, p), 0);
  CU_ASSERT_EQUAL(cnf_pde_fp1d_solve(NULL, 1.0, DW_L, Nref, T, steps_ref, r), 0);
  const size_t f = Nref / N;
  for (size_t i = 0; i <= N; i++) e = fmax(e, fabs(p[i] - r[i * f]));
  free(p), free(r);
  return e;
}

/* Observed orders of the base solver at T = 0.5: in space, with the same
 * 100 steps on every grid (the time error is then common to all grids and
 * cancels in the differences), N = 100, 200, 400 against 1600: order 2
 * (1.9..2.1); in time, N = 200 with 25, 50, 100 steps against 3200: order
 * 1 (0.9..1.1). */
static void test_fp1d_orders(void) {
  double es[3], et[3];
  for (int k = 0; k < 3; k++) {
    es[k] = fp1d_err(100u << k, 100, 1600, 100, 0.5);
    et[k] = fp1d_err(200, 25u << k, 200, 3200, 0.5);
  }
  for (int k = 0; k < 2; k++) {
    const double os = log2(es[k] / es[k + 1]), ot = log2(et[k] / et[k + 1]);
    printf("\n    1-D solver: space %.2e -> %.2e (order %.2f), time %.2e -> %.2e (order %.2f)",
           es[k], es[k + 1], os, et[k], et[k + 1], ot);
    CU_ASSERT_TRUE(os > 1.9 && os < 2.1);
    CU_ASSERT_TRUE(ot > 0.9 && ot < 1.1);
  }
}

static cnf_pde_dw *dw_new(cnf_ctx *ctx, size_t d, double T, size_t cells, const double *Q) {
  cnf_pde_dw_config c;
  cnf_pde_dw_config_default(&c, d, T);
  c.cells = cells;
  c.Q = Q;
  cnf_pde_dw *dw = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_pde_dw_create(&dw, ctx, &c), 0);
  return dw;
}

/* The extrapolated reference: at t = 0 it is log p0 (exact: the degree-5
 * interpolant of a quadratic), with mass Phi(-0.5/0.3) left of 0 (Simpson
 * on 256 cells, h = 0.04: error h^4 max|p0''''| / 180 ~ 5e-7) and
 * KL(p0 || p_inf) = -H(p0) + E[V]/D + log Z1 in closed form; over time the
 * mass stays 1.  Refinement: log p1 at t = 0.3 on N = 64, 128 cells against
 * 1024, weighted by p1 over [-3, 3]: observed order about 4 (> 3.3). */
static void test_dw_reference(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_pde_dw *dw = dw_new(ctx, 3, 1.0, 256, NULL);
  const double m = 0.5, s2 = 0.09;
  const double EV = 0.25 * (m * m * m * m + 6 * m * m * s2 + 3 * s2 * s2) - 2 * (m * m + s2);
  const double kl0 = -0.5 * log(2 * M_PI * M_E * s2) + EV + cnf_pde_dw_logZ1(1.0);
  printf("\n    t=0: mass left %.12f (Phi: %.12f), KL %.10f (closed form %.10f)",
         cnf_pde_dw_mass_left(dw, 0.0), 0.5 * erfc(m / sqrt(2 * s2)),
         cnf_pde_dw_kl_inf(dw, 0.0), 3 * kl0);
  CHECK_NEAR(cnf_pde_dw_mass_left(dw, 0.0), 0.5 * erfc(m / sqrt(2 * s2)), 5e-7);
  CHECK_NEAR(cnf_pde_dw_kl_inf(dw, 0.0), 3 * kl0, 1e-8);
  double y[7] = {-3, -1.7, -0.4, 0.1, 0.5, 1.3, 2.6}, l[7], ref[7];
  CU_ASSERT_EQUAL(cnf_pde_dw_eval1(dw, 0.0, 7, y, l, NULL, NULL), 0);
  for (int i = 0; i < 7; i++) ref[i] = cnf_pde_dw_p0_1d(y[i]);
  CHECK_CLOSE(l, ref, 7, 1e-12, 1e-12, "P4 reference at t = 0 is log p0");
  /* mass over time: the left well's plus the right's, by quadrature of the
   * interpolated log-density */
  for (double t = 0.25; t <= 1.0; t += 0.25) {
    double mass = 0.0;
    for (int i = -6000; i <= 6000; i++) {
      double yi = i * 1e-3, li;
      cnf_pde_dw_eval1(dw, t, 1, &yi, &li, NULL, NULL);
      mass += exp(li) * 1e-3;
    }
    CHECK_NEAR(mass, 1.0, 1e-7);
  }
  cnf_pde_dw_free(dw);
  /* refinement */
  cnf_pde_dw *r[3] = {dw_new(ctx, 1, 0.3, 64, NULL), dw_new(ctx, 1, 0.3, 128, NULL),
                      dw_new(ctx, 1, 0.3, 1024, NULL)};
  double err[2] = {0, 0};
  for (int i = -300; i <= 300; i++) {
    double yi = i * 0.01, lr, la;
    cnf_pde_dw_eval1(r[2], 0.3, 1, &yi, &lr, NULL, NULL);
    for (int k = 0; k < 2; k++) {
      cnf_pde_dw_eval1(r[k], 0.3, 1, &yi, &la, NULL, NULL);
      err[k] += exp(lr) * fabs(la - lr) * 0.01;
    }
  }
  const double order = log2(err[0] / err[1]);
  printf("\n    reference E|l_N - l_1024| at t=0.3: N=64 %.2e, N=128 %.2e (order %.2f)", err[0],
         err[1], order);
  CU_ASSERT_TRUE(order > 3.3);
  CU_ASSERT_TRUE(err[1] < 1e-5);
  for (int k = 0; k < 3; k++) cnf_pde_dw_free(r[k]);
  cnf_pde_dw_config c;
  cnf_pde_dw_config_default(&c, 2, 1.0);
  c.cells = 1002;
  CU_ASSERT_EQUAL(cnf_pde_dw_create(&dw, ctx, &c), CNF_EINVAL);
  CU_ASSERT_PTR_NULL(dw);
  cnf_ctx_free(ctx);
}

/* The field's jvp and f_div against central differences, with and
 * without a rotation, at times inside the levels' first (fast) stretch and
 * later, and at points beyond the grid (the stationary tail). */
static void test_ops_dw(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t dims[] = {1, 3, 6};
  const double times[] = {0.0, 0.013, 0.77};
  for (size_t n = 0; n < 3; n++) {
    double *Q = dalloc(dims[n] * dims[n]);
    CU_ASSERT_EQUAL(cnf_pde_random_orthogonal(ctx, dims[n], 5 + n, Q), 0);
    double orth = 0.0; /* |Q^T Q - I| */
    for (size_t i = 0; i < dims[n]; i++)
      for (size_t j = 0; j < dims[n]; j++) {
        double q = 0.0;
        for (size_t k = 0; k < dims[n]; k++) q += Q[k * dims[n] + i] * Q[k * dims[n] + j];
        orth = fmax(orth, fabs(q - (i == j)));
      }
    CU_ASSERT_TRUE(orth < 1e-14);
    for (int rot = 0; rot < 2; rot++) {
      cnf_pde_dw *dw = dw_new(ctx, dims[n], 1.0, 128, rot ? Q : NULL);
      cnf_dyn *dyn = NULL;
      CU_ASSERT_EQUAL_FATAL(cnf_pde_dw_dyn(&dyn, ctx, dw), 0);
      cnf_pde_dw_free(dw); /* the field shares the table */
      CU_ASSERT_STRING_EQUAL(cnf_dyn_name(dyn), "pde-double-well");
      for (size_t k = 0; k < 3; k++) {
        char name[64];
        snprintf(name, sizeof name, "P4 d=%zu%s t=%g", dims[n], rot ? " rotated" : "", times[k]);
        check_ops(dyn, NULL, times[k], 2.8, 400 + 10 * n + k, name);
        snprintf(name, sizeof name, "P4 d=%zu%s t=%g beyond the grid", dims[n],
                 rot ? " rotated" : "", times[k]);
        check_ops(dyn, NULL, times[k], 6.5, 450 + 10 * n + k, name);
      }
      cnf_dyn_free(dyn);
    }
    free(Q);
  }
  cnf_ctx_free(ctx);
}

/* The interpolant's Fokker-Planck residual R = l_t - V'' - V' l_y
 * - D (l_yy + l_y^2) (l_t by central differences in t), integrated
 * against p1 over y and over [0, T] (midpoint rule, 40 times): the
 * reference's contribution to the mean LPE of one coordinate. */
static double dw_residual(cnf_pde_dw *dw, double T) {
  double tot = 0.0;
  const double ht = 1e-6, dy = 0.005;
  for (int k = 0; k < 40; k++) {
    const double t = (k + 0.5) * T / 40;
    double e = 0.0;
    for (double y = -4.0; y <= 4.0; y += dy) {
      double l, l1, l2, lp, lm;
      cnf_pde_dw_eval1(dw, t + ht, 1, &y, &lp, NULL, NULL);
      cnf_pde_dw_eval1(dw, t - ht, 1, &y, &lm, NULL, NULL);
      cnf_pde_dw_eval1(dw, t, 1, &y, &l, &l1, &l2);
      const double R = (lp - lm) / (2 * ht) - (3 * y * y - 4) - (y * y * y - 4 * y) * l1 -
                       (l2 + l1 * l1);
      e += fabs(R) * exp(l) * dy;
    }
    tot += e * T / 40;
  }
  return tot;
}

/* Training-free LPE at d = 2 and 10 (rotated), T = 1, exact trace, tol
 * 1e-8, on a 500-cell reference.  Along the flow d/dt log p differs from
 * -div v by the interpolant's residual R in each coordinate, so the mean
 * LPE is bounded by d int E|R| dt (measured: about 1e-6 per coordinate)
 * plus the solver's share (about 1e-7): the bar is 3 d int E|R| dt +
 * 1e-6, and also mean <= 1e-6 d (measured 2e-7 at d = 2, 6e-7 at d = 10). */
static void test_lpe_dw(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t dims[] = {2, 10}, Bs[] = {200, 100};
  const double T = 1.0;
  double rbar = -1.0;
  for (size_t n = 0; n < 2; n++) {
    const size_t D = dims[n], B = Bs[n];
    double *Q = dalloc(D * D);
    random_orthogonal(Q, D, 800 + D);
    cnf_pde_dw *dw = dw_new(ctx, D, T, 500, n ? Q : NULL);
    if (rbar < 0) rbar = dw_residual(dw, T);
    cnf_dyn *dyn = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_pde_dw_dyn(&dyn, ctx, dw), 0);
    double *z = dalloc(B * D), *lp0 = dalloc(B), *delta = dalloc(B), *lp = dalloc(B);
    CU_ASSERT_EQUAL(cnf_pde_dw_sample0(dw, 810 + D, B, z), 0);
    CU_ASSERT_EQUAL(cnf_pde_dw_logp0(dw, B, z, lp0), 0);
    cnf_options o = options(TOL);
    cnf_stats st;
    cnf_stats_clear(&st);
    double t0 = wall();
    CU_ASSERT_EQUAL(cnf_dyn_solve(dyn, NULL, &o, 0.0, T, B, 0, NULL, z, delta, &st), 0);
    double secs = wall() - t0;
    CU_ASSERT_EQUAL(cnf_pde_dw_logp(dw, T, B, z, lp), 0);
    for (size_t b = 0; b < B; b++) lp0[b] += delta[b];
    const double bar = fmin(3.0 * (double)D * rbar + 1e-6, 1e-6 * (double)D);
    printf("\n    reference residual int E|R| dt = %.2e per coordinate; bar %.2e", rbar, bar);
    report_lpe(n ? "P4 rotated" : "P4", D, B, TOL, lp0, lp, bar, secs, &st);
    cnf_dyn_free(dyn);
    cnf_pde_dw_free(dw);
    free(Q), free(z), free(lp0), free(delta), free(lp);
  }
  cnf_ctx_free(ctx);
}

/* Euler-Maruyama paths (dt = 1e-3, 4000 paths of d = 2) against the
 * reference: the fraction of coordinates left of 0 at t = 1 within 4
 * standard errors (plus the scheme's O(dt) bias, ~1e-3) of the reference's
 * mass; the marginal W2 of the paths is small against the W2 of p0. */
static void test_dw_em(void) {
  cnf_ctx *ctx = new_ctx();
  enum { B = 4000, D = 2 };
  cnf_pde_dw *dw = dw_new(ctx, D, 1.0, 256, NULL);
  double *x = dalloc(B * D), w2em, w20;
  CU_ASSERT_EQUAL(cnf_pde_dw_sample0(dw, 91, B, x), 0);
  CU_ASSERT_EQUAL(cnf_pde_dw_w2_marginals(ctx, dw, 1.0, B, x, &w20), 0);
  CU_ASSERT_EQUAL(cnf_pde_dw_em(dw, 92, 0.0, 1.0, 1e-3, B, x), 0);
  CU_ASSERT_EQUAL(cnf_pde_dw_w2_marginals(ctx, dw, 1.0, B, x, &w2em), 0);
  double left = 0.0;
  for (size_t i = 0; i < (size_t)B * D; i++) left += x[i] < 0;
  left /= (double)B * D;
  const double ml = cnf_pde_dw_mass_left(dw, 1.0), se = sqrt(ml * (1 - ml) / (B * D));
  printf("\n    EM: left fraction %.4f, reference %.4f (se %.4f); W2 of the marginals %.3f "
         "(p0's %.3f)", left, ml, se, w2em, w20);
  CU_ASSERT_TRUE(fabs(left - ml) <= 4 * se + 2e-3);
  CU_ASSERT_TRUE(w2em < 0.1 && w20 > 1.0);
  free(x);
  cnf_pde_dw_free(dw);
  cnf_ctx_free(ctx);
}

static const test_entry ops_tests[] = {
    {"P1a linear: jvp and f_div against differences", test_ops_p1a},
    {"P2 heat: jvp and f_div against differences", test_ops_heat},
    {"P3 OU: jvp and f_div against differences", test_ops_ou},
    {"P4 double-well: jvp and f_div against differences", test_ops_dw},
    {NULL, NULL},
};

static const test_entry closed_tests[] = {
    {"P3 moments solve their ODEs", test_ou_moment_odes},
    {"P2 density integrates to 1, sampler mean", test_heat_closed_form},
    {"metrics: LPE, Gaussian W2, Hutchinson variances", test_metrics},
    {"bad arguments", test_bad_args},
    {"P4 1-D solver: mass, positivity, stationary exp(-V/D)/Z", test_fp1d_mass_stationary},
    {"P4 1-D solver: observed orders in space and time", test_fp1d_orders},
    {"P4 reference: p0, mass, KL at t = 0; order under refinement", test_dw_reference},
    {"P4 Euler-Maruyama against the reference", test_dw_em},
    {NULL, NULL},
};

static const test_entry bar_tests[] = {
    {"P1a LPE <= 1e-6 (d = 2, 16, 128)", test_lpe_p1a},
    {"P1b x(T) and Delta to closed form (d = 2..1000; T = 0.5, 2), LPE, Adams vs BDF",
     test_lpe_cubic},
    {"P2 LPE <= 1e-6 forward, 1e-5 reverse (d = 2, 10)", test_lpe_heat},
    {"P3 LPE <= 1e-6 (d = 2, 10, 30), moments", test_lpe_ou},
    {"Rademacher K=1 on diag+skew A is exact", test_rademacher_rotation},
    {"Hutchinson variance on dense A within 10%", test_hutchinson_variance},
    {"log p_t at arbitrary points by a backward solve", test_logp_at},
    {"P4 LPE (d = 2, 10 rotated) within the reference's residual", test_lpe_dw},
    {NULL, NULL},
};

int main(void) {
  static const char *const names[] = {"field ops",      "closed forms",      "accuracy bars",
                                      "problem object", "report over time", "learner"};
  static const test_entry *const tests[] = {ops_tests,         closed_tests,     bar_tests,
                                            pde_problem_tests, pde_report_tests, pde_learn_tests};
  return run_suites(names, tests, 6);
}
