/* test_ode.c: integration of the augmented system (z, Delta),
 * dz/dt = f, dDelta/dt = -tr J, by cnf_dyn_solve with Adams and BDF,
 * against closed forms:
 *
 *   linear    f = A z:        z(T) = expm(T A) z0,   Delta(T) = -T tr A
 *   decay     A = -c I:       z(T) = exp(-c T) z0,   Delta(T) = c D T
 *   rotation  A = -A^T:       |z| conserved,         Delta = 0
 *   cubic     f = -Q y^3:     y(t) = y0 / sqrt(1 + 2 t y0^2) (y = Q^T z),
 *                             Delta(T) = (3/2) sum log(1 + 2 T y0_i^2)
 *   stiff     A with eigenvalues -1 and -1000 (GSL's rhs_stiff)
 *
 * forward and, where the backward flow is not violently expanding,
 * backward (from T to 0 the state returns to z0 and Delta runs from 0 to
 * -Delta(T)), with both methods.
 *
 * Tolerances.  CVODE keeps each step's local error below rtol |y| + atol
 * (in an RMS norm); the global error is the sum of the local errors, each
 * carried to the end by the flow, so it grows with the number of steps and
 * with the growth kappa of perturbations along the solve.  At rtol = atol =
 * 1e-9 the measured global errors of these problems are 1 to 55 times the
 * tolerance (printed below; oscillatory ones the largest, and the ratio
 * grows as the tolerance tightens).  The checks allow 100 kappa times the
 * tolerance, kappa from the closed form: 1 for the forward contracting and
 * orthogonal flows, and e.g. exp(c T) for decay run backward.  An error in
 * the math (a sign, a missing factor) shows up at O(1).
 *
 * Then: statistics, reuse of one field's solver across solves, the time
 * range f is evaluated on, and the failures: too much work, a right-hand
 * side failing fatally, recoverably, or with NaN from t = 0.2 on, and bad
 * options and arguments. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>

#include "cnf_dynamics.h"
#include "test_util.h"

#define TOL 1e-9
#define GLOBAL 100.0 /* allowed global error / (kappa tol), see above */

static const cnf_method methods[2] = {CNF_METHOD_ADAMS, CNF_METHOD_BDF};

static cnf_ctx *new_ctx(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_FATAL(cnf_ctx_create(&ctx) == 0 && ctx != NULL);
  return ctx;
}

static cnf_options options(cnf_method m, double tol) {
  cnf_options o;
  cnf_options_default(&o);
  o.method = m;
  o.rtol = o.atol = tol;
  return o;
}

/* max |a - b| / (tol (1 + |b|)): the error in units of the tolerance. */
static double err_units(const double *a, const double *b, size_t n, double tol) {
  double w = 0.0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(a[i] - b[i]) / (tol * (1.0 + fabs(b[i])));
    w = e > w || isnan(e) ? e : w;
  }
  return w;
}

/* The error of a in units of tol, at most GLOBAL * kappa. */
#define CHECK_UNITS(a, b, n, tol, kappa, what)                              \
  do {                                                                      \
    double u_ = err_units((a), (b), (n), (tol)), k_ = (kappa);              \
    printf("\n    %-40s error %7.3f x tol (allowed %.3g)", (what), u_,       \
           GLOBAL * k_);                                                    \
    CU_ASSERT_TRUE(u_ <= GLOBAL * k_);                                      \
  } while (0)

/* z (B, D) rows mapped by M (D, D): out_b = M z_b. */
static void rows_times(const double *M, size_t D, size_t B, const double *z,
                       double *out) {
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < D; i++) {
      double s = 0.0;
      for (size_t j = 0; j < D; j++) s += M[i * D + j] * z[b * D + j];
      out[b * D + i] = s;
    }
}

/* E = expm(T A), by GSL. */
static void expm(const double *A, size_t D, double T, double *E) {
  gsl_matrix *a = gsl_matrix_alloc(D, D), *e = gsl_matrix_alloc(D, D);
  for (size_t i = 0; i < D; i++)
    for (size_t j = 0; j < D; j++) gsl_matrix_set(a, i, j, T * A[i * D + j]);
  CU_ASSERT_EQUAL(gsl_linalg_exponential_ss(a, e, GSL_PREC_DOUBLE), 0);
  for (size_t i = 0; i < D; i++)
    for (size_t j = 0; j < D; j++) E[i * D + j] = gsl_matrix_get(e, i, j);
  gsl_matrix_free(a);
  gsl_matrix_free(e);
}

/* kappa = max over s in [0, T] of ||expm(s A)||_inf: how much the flow can
 * grow a perturbation (sign = -1: the backward flow). */
static double growth(const double *A, size_t D, double T, double sign) {
  double E[64], k = 1.0;
  CU_ASSERT_FATAL(D <= 8);
  for (int i = 1; i <= 20; i++) {
    expm(A, D, sign * T * i / 20.0, E);
    for (size_t r = 0; r < D; r++) {
      double row = 0.0;
      for (size_t c = 0; c < D; c++) row += fabs(E[r * D + c]);
      k = fmax(k, row);
    }
  }
  return k;
}

static double trace(const double *A, size_t D) {
  double s = 0.0;
  for (size_t i = 0; i < D; i++) s += A[i * D + i];
  return s;
}

/* One solve of the augmented system (a shorthand). */
static int solve(cnf_dyn *dyn, const double *theta, const cnf_options *o,
                 double t0, double t1, size_t B, size_t K, const double *eps,
                 double *z, double *delta, cnf_stats *st) {
  return cnf_dyn_solve(dyn, theta, o, t0, t1, B, K, eps, z, delta, st);
}

/* ---- the linear family --------------------------------------------------- */

/* Forward from 0 to T and back, against expm; theta = [A, 0]. */
static void linear_round_trip(const double *A, size_t D, double T,
                              const char *name) {
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  enum { B = 3, DM = 6 };
  CU_ASSERT_FATAL(D <= DM);
  double theta[DM * DM + DM] = {0}, E[DM * DM], z0[B * DM], ref[B * DM],
         z[B * DM], delta[B], dref[B];
  memcpy(theta, A, D * D * sizeof *A);
  fill_gauss(z0, B * D, 900 + D);
  expm(A, D, T, E);
  rows_times(E, D, B, z0, ref);
  for (size_t b = 0; b < B; b++) dref[b] = -T * trace(A, D);
  const double kf = growth(A, D, T, 1.0), kb = growth(A, D, T, -1.0);
  printf("\n  %s (D = %zu, T = %g, kappa forward %.3g, backward %.3g):", name, D,
         T, kf, kb);
  for (int m = 0; m < 2; m++) {
    cnf_options o = options(methods[m], TOL);
    char what[64];
    memcpy(z, z0, B * D * sizeof *z);
    memset(delta, 0, sizeof delta);
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, T, B, 0, NULL, z, delta, NULL), 0);
    snprintf(what, sizeof what, "%s z(T) = expm(TA) z0", cnf_method_name(methods[m]));
    CHECK_UNITS(z, ref, B * D, TOL, kf, what);
    snprintf(what, sizeof what, "%s Delta(T) = -T tr A", cnf_method_name(methods[m]));
    CHECK_UNITS(delta, dref, B, TOL, 1.0, what);
    /* backward from the exact z(T) recovers z0, Delta runs to +T tr A */
    memcpy(z, ref, B * D * sizeof *z);
    memset(delta, 0, sizeof delta);
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, T, 0.0, B, 0, NULL, z, delta, NULL), 0);
    for (size_t b = 0; b < B; b++) dref[b] = -dref[b];
    snprintf(what, sizeof what, "%s backward z(0) = z0", cnf_method_name(methods[m]));
    CHECK_UNITS(z, z0, B * D, TOL, kb, what);
    snprintf(what, sizeof what, "%s backward Delta(0) = T tr A", cnf_method_name(methods[m]));
    CHECK_UNITS(delta, dref, B, TOL, 1.0, what);
    for (size_t b = 0; b < B; b++) dref[b] = -dref[b];
  }
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void test_linear_expm(void) {
  double A[16];
  fill_gauss(A, 16, 1001);
  for (size_t i = 0; i < 16; i++) A[i] *= 0.6;
  linear_round_trip(A, 4, 1.3, "random A");
}

/* Output at 21 times along ONE solve: each z(t_k) = expm(t_k A) z0 and
 * Delta(t_k) = -t_k tr A, the same as a separate solve to t_k within the
 * tolerance, and fewer RHS evaluations than the separate solves; a time
 * equal to t0 gives the initial state; non-monotone times are refused. */
static void test_output_times(void) {
  cnf_ctx *ctx = new_ctx();
  enum { D = 4, B = 3, M = 21 };
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  double theta[D * D + D] = {0}, z0[B * D], tout[M], zo[M * B * D], dout[M * B];
  fill_gauss(theta, D * D, 1002);
  for (size_t i = 0; i < D * D; i++) theta[i] *= 0.5;
  fill_gauss(z0, B * D, 1003);
  for (size_t k = 0; k < M; k++) tout[k] = 2.0 * (double)k / (M - 1); /* 0, 0.1, ..., 2 */
  const double kf = growth(theta, D, 2.0, 1.0);
  for (int m = 0; m < 2; m++) {
    cnf_options o = options(methods[m], TOL);
    double z[B * D], delta[B] = {0}, E[D * D], ref[B * D], dref[B];
    memcpy(z, z0, sizeof z);
    cnf_stats one, many;
    cnf_stats_clear(&one);
    cnf_stats_clear(&many);
    CU_ASSERT_EQUAL_FATAL(
        cnf_dyn_solve_times(dyn, theta, &o, 0.0, M, tout, B, 0, NULL, z, delta, zo, dout, &one), 0);
    CU_ASSERT_EQUAL(one.solves, 1);
    CHECK_UNITS(zo, z0, B * D, TOL, 1.0, "t = t0 gives the initial state");
    for (size_t k = 1; k < M; k++) {
      expm(theta, D, tout[k], E);
      rows_times(E, D, B, z0, ref);
      for (size_t b = 0; b < B; b++) dref[b] = -tout[k] * trace(theta, D);
      CHECK_UNITS(zo + k * B * D, ref, B * D, TOL, kf, "z(t_k) = expm(t_k A) z0");
      CHECK_UNITS(dout + k * B, dref, B, TOL, 1.0, "Delta(t_k) = -t_k tr A");
      /* a separate solve to t_k */
      double zs[B * D], ds[B] = {0};
      memcpy(zs, z0, sizeof zs);
      CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, tout[k], B, 0, NULL, zs, ds, &many), 0);
      CHECK_UNITS(zo + k * B * D, zs, B * D, TOL, kf, "dense output = separate solve");
    }
    CHECK_UNITS(z, zo + (M - 1) * B * D, B * D, 1e-15, 1.0, "final state = last output");
    printf("\n  %s: one solve %ld RHS evaluations, 20 separate solves %ld",
           cnf_method_name(methods[m]), one.nfe, many.nfe);
    CU_ASSERT_TRUE(one.nfe < many.nfe);
  }
  /* non-monotone or non-finite times */
  double bad[3] = {0.5, 0.2, 1.0}, z[B * D], delta[B] = {0};
  cnf_options o = options(CNF_METHOD_ADAMS, TOL);
  memcpy(z, z0, sizeof z);
  CU_ASSERT_EQUAL(cnf_dyn_solve_times(dyn, theta, &o, 0.0, 3, bad, B, 0, NULL, z, delta, NULL,
                                      NULL, NULL),
                  CNF_EINVAL);
  bad[1] = NAN;
  CU_ASSERT_EQUAL(cnf_dyn_solve_times(dyn, theta, &o, 0.0, 3, bad, B, 0, NULL, z, delta, NULL,
                                      NULL, NULL),
                  CNF_EINVAL);
  CU_ASSERT_EQUAL(memcmp(z, z0, sizeof z), 0); /* untouched */
  printf(" ");
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void test_decay(void) {
  const size_t D = 3;
  const double c = 2.5;
  double A[9] = {0};
  for (size_t i = 0; i < D; i++) A[i * D + i] = -c;
  linear_round_trip(A, D, 1.1, "decay A = -2.5 I");
  /* and against the scalar closed form, not only expm */
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  double theta[12] = {0}, z0[3] = {1.7, -0.4, 2.385}, z[3], ref[3], delta = 0.0,
         dref = c * D * 1.1;
  memcpy(theta, A, sizeof A);
  for (size_t i = 0; i < D; i++) ref[i] = exp(-c * 1.1) * z0[i];
  for (int m = 0; m < 2; m++) {
    cnf_options o = options(methods[m], TOL);
    memcpy(z, z0, sizeof z);
    delta = 0.0;
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, 1.1, 1, 0, NULL, z, &delta, NULL), 0);
    CHECK_UNITS(z, ref, D, TOL, 1.0, "z(T) = exp(-cT) z0");
    CHECK_UNITS(&delta, &dref, 1, TOL, 1.0, "Delta(T) = c D T");
  }
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* A skew-symmetric A: a rotation, |z| conserved, divergence exactly 0. */
static void test_rotation(void) {
  const size_t D = 4, B = 2;
  const double T = 2.0;
  double G[16], theta[20] = {0}, z0[8], z[8], delta[2], E[16], ref[8];
  fill_gauss(G, 16, 1101);
  for (size_t i = 0; i < D; i++)
    for (size_t j = 0; j < D; j++) theta[i * D + j] = 0.8 * (G[i * D + j] - G[j * D + i]);
  fill_gauss(z0, B * D, 1102);
  expm(theta, D, T, E);
  rows_times(E, D, B, z0, ref);
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  printf("\n  rotation (D = 4, T = 2):");
  for (int m = 0; m < 2; m++) {
    cnf_options o = options(methods[m], TOL);
    memcpy(z, z0, sizeof z);
    delta[0] = delta[1] = 0.0;
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, T, B, 0, NULL, z, delta, NULL), 0);
    CHECK_UNITS(z, ref, B * D, TOL, 1.0, cnf_method_name(methods[m]));
    double n0[2] = {0}, n1[2] = {0};
    for (size_t b = 0; b < B; b++)
      for (size_t i = 0; i < D; i++) {
        n0[b] += z0[b * D + i] * z0[b * D + i];
        n1[b] += z[b * D + i] * z[b * D + i];
      }
    for (size_t b = 0; b < B; b++) n0[b] = sqrt(n0[b]), n1[b] = sqrt(n1[b]);
    CHECK_UNITS(n1, n0, B, TOL, 1.0, "|z(T)| = |z0|");
    /* tr A is a sum of exact zeros: Delta stays exactly 0 */
    CU_ASSERT_EQUAL(delta[0], 0.0);
    CU_ASSERT_EQUAL(delta[1], 0.0);
  }
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* Rademacher probes of a diagonal A are exact, so the Hutchinson solve
 * gives the exact-trace solve's Delta (and z) to rounding. */
static void test_hutchinson_diagonal(void) {
  const size_t D = 4, B = 3, K = 2;
  double theta[20] = {0}, d[4], z0[12], z[12], zh[12], delta[3], dh[3], eps[24];
  fill_uniform(d, D, -1.5, 1.0, 1201);
  for (size_t i = 0; i < D; i++) theta[i * D + i] = d[i];
  fill_gauss(z0, B * D, 1202);
  CU_ASSERT_EQUAL(cnf_probes_draw(CNF_TRACE_RADEMACHER, 5, K, B, D, eps), 0);
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  for (int m = 0; m < 2; m++) {
    cnf_options o = options(methods[m], TOL);
    memcpy(z, z0, sizeof z);
    memcpy(zh, z0, sizeof zh);
    memset(delta, 0, sizeof delta);
    memset(dh, 0, sizeof dh);
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, 0.9, B, 0, NULL, z, delta, NULL), 0);
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, 0.9, B, K, eps, zh, dh, NULL), 0);
    CHECK_CLOSE(dh, delta, B, 1e-14, 1e-14, "Rademacher Delta = exact Delta");
    CHECK_CLOSE(zh, z, B * D, 1e-14, 1e-14, "Rademacher z = exact z");
    double dref = -0.9 * trace(theta, D);
    CHECK_NEAR(delta[0], dref, 10.0 * TOL * (1 + fabs(dref))); /* tr A integrated */
  }
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* ---- the cubic field ---------------------------------------------------- */

/* Q y(T) with y(t) = y0 / sqrt(1 + 2 t y0^2) into z, and Delta(T). */
static void cubic_exact(const double *Q, size_t D, const double *y0, double T,
                        double *z, double *delta) {
  double y[8];
  *delta = 0.0;
  for (size_t i = 0; i < D; i++) {
    double q = 1.0 + 2.0 * T * y0[i] * y0[i];
    y[i] = y0[i] / sqrt(q);
    *delta += 1.5 * log(q);
  }
  rows_times(Q, D, 1, y, z);
}


/* B samples y0 (B, D): forward from 0 to T and, if backward, from T back
 * to 0, with both methods; the steps of each method's forward solve go to
 * steps.  Run backward the flow expands: kappa = max (1 + 2 T y0_i^2)^(3/2),
 * the growth of dy(0)/dy(T). */
static void cubic_run(const double *Q, size_t D, size_t B, const double *y0,
                      double T, double tol, int backward, long steps[2],
                      const char *name) {
  double zT[16], dT[4], z0[16], z[16], delta[4], d0[4], kb = 1.0;
  CU_ASSERT_FATAL(B * D <= 16 && B <= 4);
  for (size_t b = 0; b < B; b++) {
    cubic_exact(Q, D, y0 + b * D, 0.0, z0 + b * D, &d0[b]);
    cubic_exact(Q, D, y0 + b * D, T, zT + b * D, &dT[b]);
    for (size_t i = 0; i < D; i++)
      kb = fmax(kb, pow(1.0 + 2.0 * T * y0[b * D + i] * y0[b * D + i], 1.5));
  }
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_cubic_create(&dyn, ctx, D, Q), 0);
  printf("\n  %s (T = %g, tol %g, kappa backward %.3g):", name, T, tol, kb);
  for (int m = 0; m < 2; m++) {
    cnf_options o = options(methods[m], tol);
    cnf_stats st;
    cnf_stats_clear(&st);
    memcpy(z, z0, B * D * sizeof *z);
    memset(delta, 0, sizeof delta);
    int rc = solve(dyn, NULL, &o, 0.0, T, B, 0, NULL, z, delta, &st);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) printf("\n    %s", cnf_ctx_errmsg(ctx));
    steps[m] = st.nsteps;
    printf("\n    %s: %ld steps, %ld RHS evaluations, %ld nonlinear "
           "convergence failures", cnf_method_name(methods[m]), st.nsteps,
           st.nfe, st.nncf);
    CHECK_UNITS(z, zT, B * D, tol, 1.0, "z(T)");
    CHECK_UNITS(delta, dT, B, tol, 1.0, "Delta(T) = 1.5 sum log(1 + 2T y0^2)");
    if (!backward) continue;
    memcpy(z, zT, B * D * sizeof *z);
    memset(delta, 0, sizeof delta);
    rc = solve(dyn, NULL, &o, T, 0.0, B, 0, NULL, z, delta, NULL);
    CU_ASSERT_EQUAL(rc, 0);
    for (size_t b = 0; b < B; b++) d0[b] = -dT[b];
    CHECK_UNITS(z, z0, B * D, tol, kb, "backward z(0) = z0");
    CHECK_UNITS(delta, d0, B, tol, kb, "backward Delta(0) = -Delta(T)");
  }
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void test_cubic(void) {
  double Q[9], I3[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};
  random_orthogonal(Q, 3, 1301);
  const double y0[6] = {0.8, -1.3, 0.4, 1.1, 0.05, -0.7};
  long steps[2];
  cubic_run(I3, 3, 2, y0, 1.5, TOL, 1, steps, "cubic, Q = I");
  cubic_run(Q, 3, 2, y0, 1.5, TOL, 1, steps, "cubic, random Q");
}

/* |y0| ~ 10: J's eigenvalues -3 y_i^2 start near -300, yet the cubic field
 * is not stiff: lambda_i(t) = -3 y0_i^2 / (1 + 2 t y0_i^2) >= -3 / (2 t),
 * never large against the time scale t on which y itself changes, so
 * fixed-point Adams is not held back (it takes fewer steps than BDF here
 * for every T and tolerance tried).  Checked forward only: backward, the
 * flow expands perturbations by (1 + 2 T y0^2)^(3/2) ~ 1e5. */
static void test_cubic_large(void) {
  double Q[9];
  random_orthogonal(Q, 3, 1401);
  const double y0[3] = {10.0, -8.5, 0.3};
  long steps[2];
  cubic_run(Q, 3, 1, y0, 20.0, 1e-6, 0, steps, "cubic, |y0| ~ 10");
  printf("\n    steps: adams %ld, bdf %ld", steps[0], steps[1]);
}

/* The stiff case of GSL's ode tests (rhs_stiff): A = [998 1998; -999 -1999]
 * with eigenvalues -1 and -1000.  From z0 = (1, 0):
 *   z(t) = (2 e^-t - e^-1000t, -e^-t + e^-1000t),  Delta(T) = -T tr A = 1001 T.
 * After the fast mode has died (t ~ 0.01) Adams with fixed-point iteration
 * needs h |lambda| < 1, so h < 1e-3, while BDF's steps follow e^-t. */
static void test_stiff(void) {
  const double T = 2.0, tol = 1e-6;
  double theta[6] = {998.0, 1998.0, -999.0, -1999.0, 0.0, 0.0};
  const double ref[2] = {2.0 * exp(-T) - exp(-1000.0 * T), -exp(-T) + exp(-1000.0 * T)};
  const double dref = 1001.0 * T;
  long steps[2] = {0, 0};
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, 2), 0);
  printf("\n  stiff linear (eigenvalues -1, -1000; T = %g, tol %g):", T, tol);
  for (int m = 0; m < 2; m++) {
    cnf_options o = options(methods[m], tol);
    cnf_stats st;
    cnf_stats_clear(&st);
    double z[2] = {1.0, 0.0}, delta = 0.0;
    int rc = solve(dyn, theta, &o, 0.0, T, 1, 0, NULL, z, &delta, &st);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) printf("\n    %s", cnf_ctx_errmsg(ctx));
    steps[m] = st.nsteps;
    printf("\n    %s: %ld steps, %ld RHS evaluations, %ld nonlinear convergence "
           "failures, %ld J v", cnf_method_name(methods[m]), st.nsteps, st.nfe,
           st.nncf, st.njtv);
    CHECK_UNITS(z, ref, 2, tol, 1.0, "z(T)");
    CHECK_UNITS(&delta, &dref, 1, tol, 1.0, "Delta(T) = 1001 T");
  }
  printf("\n    steps: adams %ld, bdf %ld", steps[0], steps[1]);
  CU_ASSERT_TRUE(steps[1] < steps[0] / 5);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* ---- statistics and reuse ------------------------------------------------ */

static void test_stats(void) {
  const size_t D = 3, B = 2;
  double theta[12], z[6], delta[2] = {0};
  fill_gauss(theta, D * D + D, 1501);
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  for (int m = 0; m < 2; m++) {
    cnf_options o = options(methods[m], 1e-7);
    cnf_stats st;
    cnf_stats_clear(&st);
    fill_gauss(z, B * D, 1502);
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, 1.0, B, 0, NULL, z, delta, &st), 0);
    printf("\n  %s: solves %ld, steps %ld, nfe %ld, netf %ld, nni %ld, nncf %ld, "
           "njtv %ld, nli %ld, last h %.3g", cnf_method_name(methods[m]), st.solves,
           st.nsteps, st.nfe, st.netf, st.nni, st.nncf, st.njtv, st.nli, st.last_h);
    CU_ASSERT_EQUAL(st.solves, 1);
    CU_ASSERT_TRUE(st.nsteps > 5);
    CU_ASSERT_TRUE(st.nfe >= st.nsteps);
    CU_ASSERT_TRUE(st.nni >= st.nsteps);
    CU_ASSERT_TRUE(st.netf >= 0 && st.nncf >= 0);
    CU_ASSERT_TRUE(st.last_h > 0.0 && st.last_h <= 1.0);
    if (methods[m] == CNF_METHOD_BDF) {
      CU_ASSERT_TRUE(st.njtv > 0); /* the field's jvp is used */
      CU_ASSERT_TRUE(st.nli > 0);
    } else {
      CU_ASSERT_EQUAL(st.njtv, 0);
      CU_ASSERT_EQUAL(st.nli, 0);
    }
    /* a second solve, backward, adds to the same counters */
    cnf_stats before = st;
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, 1.0, 0.0, B, 0, NULL, z, delta, &st), 0);
    CU_ASSERT_EQUAL(st.solves, 2);
    CU_ASSERT_TRUE(st.nsteps > before.nsteps && st.nfe > before.nfe);
    CU_ASSERT_TRUE(st.last_h < 0.0); /* the step of a backward solve */
    /* st == NULL is accepted */
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, 1.0, B, 0, NULL, z, delta, NULL), 0);
  }
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* One field solves many problems: its solver is reused (CVodeReInit) or
 * rebuilt when the size or the method changes; every result equals that of
 * a fresh field. */
static void test_reuse(void) {
  const size_t D = 3;
  double theta[12], zs[4][9], ds[4][3] = {{0}}, zf[9], df[3];
  fill_gauss(theta, D * D + D, 1601);
  static const struct {
    size_t B;
    cnf_method m;
  } seq[4] = {{3, CNF_METHOD_ADAMS}, {3, CNF_METHOD_ADAMS}, {2, CNF_METHOD_BDF},
              {3, CNF_METHOD_ADAMS}};
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  for (int i = 0; i < 4; i++) {
    cnf_options o = options(seq[i].m, 1e-8);
    fill_gauss(zs[i], seq[i].B * D, 1610 + i);
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, 0.8, seq[i].B, 0, NULL, zs[i], ds[i], NULL), 0);
  }
  for (int i = 0; i < 4; i++) {
    cnf_dyn *fresh = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&fresh, ctx, D), 0);
    cnf_options o = options(seq[i].m, 1e-8);
    fill_gauss(zf, seq[i].B * D, 1610 + i);
    memset(df, 0, sizeof df);
    CU_ASSERT_EQUAL(solve(fresh, theta, &o, 0.0, 0.8, seq[i].B, 0, NULL, zf, df, NULL), 0);
    CHECK_CLOSE(zs[i], zf, seq[i].B * D, 1e-15, 1e-15, "reused solver z = fresh z");
    CHECK_CLOSE(ds[i], df, seq[i].B, 1e-15, 1e-15, "reused solver Delta = fresh Delta");
    cnf_dyn_free(fresh);
  }
  /* t0 == t1 leaves the state alone */
  double z1[3] = {0.1, 0.2, 0.3}, d1 = 0.7;
  cnf_options o = options(CNF_METHOD_ADAMS, 1e-8);
  CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.4, 0.4, 1, 0, NULL, z1, &d1, NULL), 0);
  CU_ASSERT_TRUE(z1[0] == 0.1 && z1[1] == 0.2 && z1[2] == 0.3 && d1 == 0.7);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* ---- a user field that fails on request ---------------------------------- */

/* f = -z (with only the f op, so the solver runs dyn.c's fallbacks), and
 * from t >= 0.2 on it returns `code`, or writes NaN when nan is set. */
typedef struct failing {
  size_t D;
  int code;
  int nan;
  long calls_failed;
} failing;

static int failing_f(void *sv, double t, size_t B, const double *z,
                     const double *theta, double *dz) {
  (void)theta;
  failing *s = sv;
  for (size_t i = 0; i < B * s->D; i++) dz[i] = -z[i];
  if (t >= 0.2 && (s->code != 0 || s->nan)) {
    s->calls_failed++;
    if (s->nan) dz[0] = NAN;
    return s->code;
  }
  return 0;
}

static const cnf_dyn_type failing_type = {.name = "failing", .f = failing_f};

/* Solve the failing field from 0 to 1 with method m; returns the status. */
static int run_failing(int code, int nan, cnf_method m, cnf_ctx *ctx, long *failed) {
  failing s = {2, code, nan, 0};
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_create(&dyn, ctx, &failing_type, &s, 0, 2, 0), 0);
  double z[4] = {1.0, -0.5, 0.25, 2.0}, delta[2] = {0};
  cnf_options o = options(m, 1e-6);
  cnf_ctx_clear_error(ctx);
  int rc = solve(dyn, NULL, &o, 0.0, 1.0, 2, 0, NULL, z, delta, NULL);
  printf("\n  %s, %s: %s: %s", nan ? "NaN" : code < 0 ? "f returns -1" : "f returns +1",
         cnf_method_name(m), cnf_errname(rc), cnf_ctx_errmsg(ctx));
  CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), rc);
  *failed = s.calls_failed;
  cnf_dyn_free(dyn);
  return rc;
}

static void test_rhs_fatal(void) {
  cnf_ctx *ctx = new_ctx();
  for (int m = 0; m < 2; m++) {
    long failed = 0;
    int rc = run_failing(-1, 0, methods[m], ctx, &failed);
    CU_ASSERT_EQUAL(rc, CNF_ERHS);
    CU_ASSERT_EQUAL(failed, 1); /* a fatal failure is not retried */
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "CV_RHSFUNC_FAIL"));
    /* the message names the time of the failure: in [0.2, 1) */
    const char *at = strstr(cnf_ctx_errmsg(ctx), "at t = ");
    CU_ASSERT_PTR_NOT_NULL(at);
    if (at != NULL) {
      double tf = atof(at + 7);
      CU_ASSERT_TRUE(tf >= 0.2 && tf < 1.0);
    }
  }
  cnf_ctx_free(ctx);
}

static void test_rhs_recoverable(void) {
  cnf_ctx *ctx = new_ctx();
  for (int m = 0; m < 2; m++) {
    long failed = 0;
    int rc = run_failing(+1, 0, methods[m], ctx, &failed);
    CU_ASSERT_TRUE(cnf_is_solver_error(rc));
    CU_ASSERT_TRUE(failed > 1); /* the solver retried */
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "CV_"));
  }
  cnf_ctx_free(ctx);
}

static void test_rhs_nan(void) {
  cnf_ctx *ctx = new_ctx();
  for (int m = 0; m < 2; m++) {
    long failed = 0;
    int rc = run_failing(0, 1, methods[m], ctx, &failed);
    CU_ASSERT_TRUE(cnf_is_solver_error(rc));
    CU_ASSERT_TRUE(failed > 1); /* NaN is a recoverable failure: retried */
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "CV_"));
  }
  cnf_ctx_free(ctx);
}

static void test_too_much_work(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, 2), 0);
  double theta[6] = {0.0, 1.0, -1.0, 0.0, 0.0, 0.0};
  for (int m = 0; m < 2; m++) {
    double z[2] = {1.0, 0.0}, delta = 0.0;
    cnf_options o = options(methods[m], 1e-8);
    o.max_steps = 3;
    cnf_ctx_clear_error(ctx);
    int rc = solve(dyn, theta, &o, 0.0, 10.0, 1, 0, NULL, z, &delta, NULL);
    printf("\n  %s: %s: %s", cnf_method_name(methods[m]), cnf_errname(rc),
           cnf_ctx_errmsg(ctx));
    CU_ASSERT_EQUAL(rc, CNF_ETOOMUCHWORK);
    CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), CNF_ETOOMUCHWORK);
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "CV_TOO_MUCH_WORK"));
    /* the same field solves again afterwards */
    o.max_steps = 20000;
    z[0] = 1.0, z[1] = 0.0, delta = 0.0;
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, 1.0, 1, 0, NULL, z, &delta, NULL), 0);
    double ref[2] = {cos(1.0), -sin(1.0)};
    CHECK_UNITS(z, ref, 2, 1e-8, 1.0, "recovered: rotation by 1 rad");
  }
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void test_bad_options(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, 2), 0);
  double theta[6] = {-1.0, 0.0, 0.0, -1.0, 0.0, 0.0}, eps[2] = {1.0, -1.0};
  double z[2] = {1.0, 2.0}, delta = 0.5;
  static const double bad_rtol[] = {0.0, -1e-6, NAN};
  for (size_t i = 0; i < 3; i++) {
    cnf_options o = options(CNF_METHOD_ADAMS, 1e-6);
    o.rtol = bad_rtol[i];
    cnf_ctx_clear_error(ctx);
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, 1.0, 1, 0, NULL, z, &delta, NULL),
                    CNF_EINVAL);
    CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), CNF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "rtol"));
  }
  cnf_options o = options(CNF_METHOD_BDF, 1e-6);
  o.max_steps = 0;
  CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, 1.0, 1, 0, NULL, z, &delta, NULL), CNF_EINVAL);
  o = options(CNF_METHOD_ADAMS, 1e-6);
  CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, INFINITY, 1, 0, NULL, z, &delta, NULL),
                  CNF_EINVAL);
  CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, 1.0, 0, 0, NULL, z, &delta, NULL), CNF_EINVAL);
  CU_ASSERT_EQUAL(solve(dyn, NULL, &o, 0.0, 1.0, 1, 0, NULL, z, &delta, NULL), CNF_EINVAL);
  CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, 1.0, 1, 0, eps, z, &delta, NULL), CNF_EINVAL);
  CU_ASSERT_EQUAL(solve(dyn, theta, NULL, 0.0, 1.0, 1, 0, NULL, z, &delta, NULL), CNF_EINVAL);
  CU_ASSERT_EQUAL(solve(NULL, theta, &o, 0.0, 1.0, 1, 0, NULL, z, &delta, NULL), CNF_EINVAL);
  /* refused calls leave the state alone */
  CU_ASSERT_TRUE(z[0] == 1.0 && z[1] == 2.0 && delta == 0.5);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* A field with only f under BDF: the solver's J v comes from dyn.c's
 * differences; the result agrees with Adams at tight tolerances. */
static int tanh_f(void *sv, double t, size_t B, const double *z,
                  const double *theta, double *dz) {
  (void)sv;
  for (size_t b = 0; b < B; b++) {
    const double *zb = z + b * 2;
    dz[b * 2 + 0] = tanh(theta[0] * zb[0] + theta[1] * zb[1] + t);
    dz[b * 2 + 1] = tanh(theta[2] * zb[0] + theta[3] * zb[1] - t);
  }
  return 0;
}

static void test_user_field_methods(void) {
  static const cnf_dyn_type tanh_type = {.name = "tanh2", .f = tanh_f};
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_create(&dyn, ctx, &tanh_type, NULL, 0, 2, 4), 0);
  double theta[4] = {-1.2, 0.7, -0.4, -0.9}, z[2][4], d[2][2] = {{0}};
  for (int m = 0; m < 2; m++) {
    cnf_options o = options(methods[m], 1e-10);
    cnf_stats st;
    cnf_stats_clear(&st);
    fill_gauss(z[m], 4, 1701);
    CU_ASSERT_EQUAL(solve(dyn, theta, &o, 0.0, 1.5, 2, 0, NULL, z[m], d[m], &st), 0);
    if (methods[m] == CNF_METHOD_BDF) CU_ASSERT_TRUE(st.njtv > 0);
  }
  CHECK_UNITS(z[1], z[0], 4, 1e-10, 1.0, "f-only field: bdf z = adams z");
  CHECK_UNITS(d[1], d[0], 2, 1e-10, 1.0, "f-only field: bdf Delta = adams Delta");
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* The solver never evaluates the field outside [t0, t1] (CVODE's stop
 * time), in either direction: a field may be undefined beyond its ends. */
typedef struct t_range {
  double lo, hi;
} t_range;

static int recording_f(void *sv, double t, size_t B, const double *z,
                       const double *theta, double *dz) {
  (void)theta;
  t_range *r = sv;
  r->lo = fmin(r->lo, t);
  r->hi = fmax(r->hi, t);
  for (size_t i = 0; i < 2 * B; i++) dz[i] = -1.7 * z[i];
  return 0;
}

static void test_time_range(void) {
  static const cnf_dyn_type rec_type = {.name = "recording", .f = recording_f};
  cnf_ctx *ctx = new_ctx();
  t_range r;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_create(&dyn, ctx, &rec_type, &r, 0, 2, 0), 0);
  static const double ends[2][2] = {{0.0, 0.7}, {0.7, 0.0}};
  for (int m = 0; m < 2; m++)
    for (int d = 0; d < 2; d++) {
      cnf_options o = options(methods[m], 1e-4);
      double z[2] = {1.0, -2.0}, delta = 0.0;
      r.lo = INFINITY, r.hi = -INFINITY;
      CU_ASSERT_EQUAL(solve(dyn, NULL, &o, ends[d][0], ends[d][1], 1, 0, NULL, z, &delta, NULL), 0);
      CU_ASSERT_TRUE(r.lo >= 0.0 && r.hi <= 0.7);
      CU_ASSERT_TRUE(r.hi - r.lo > 0.69); /* and it did cover the interval */
    }
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static const test_entry analytic_tests[] = {
    {"linear: z(T) = expm(TA) z0, Delta = -T tr A, and back", test_linear_expm},
    {"exponential decay", test_decay},
    {"output at 21 times along one solve", test_output_times},
    {"rotation: |z| conserved, Delta = 0", test_rotation},
    {"Rademacher with diagonal A = exact trace", test_hutchinson_diagonal},
    {"cubic field: closed form, forward and backward", test_cubic},
    {"cubic field, |y0| ~ 10 (not stiff: steps printed)", test_cubic_large},
    {"stiff linear (GSL's rhs_stiff): BDF takes fewer steps", test_stiff},
    {"f-only field: BDF (difference J v) agrees with Adams", test_user_field_methods},
    {NULL, NULL},
};

static const test_entry solver_tests[] = {
    {"statistics", test_stats},
    {"one solver reused across sizes and methods", test_reuse},
    {"f is evaluated only within [t0, t1], both directions", test_time_range},
    {NULL, NULL},
};

static const test_entry failure_tests[] = {
    {"max_steps = 3: CNF_ETOOMUCHWORK, CV_TOO_MUCH_WORK", test_too_much_work},
    {"f returns -1 from t = 0.2: CNF_ERHS", test_rhs_fatal},
    {"f returns +1 from t = 0.2: a solver error", test_rhs_recoverable},
    {"f gives NaN from t = 0.2: a solver error", test_rhs_nan},
    {"bad options and arguments: CNF_EINVAL", test_bad_options},
    {NULL, NULL},
};

int main(void) {
  static const char *const names[] = {"analytic solutions", "solver", "failures"};
  static const test_entry *const tests[] = {analytic_tests, solver_tests, failure_tests};
  return run_suites(names, tests, 3);
}
