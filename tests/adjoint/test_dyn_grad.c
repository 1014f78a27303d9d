/* test_dyn_grad.c: the adjoint of one solve of a user field with respect
 * to the field's own parameters and the initial state (cnf_dyn_grad),
 * against the closed form of the linear field.
 *
 * Field f = A z + b (cnf_dyn_linear_create, theta = [A, b]), D = 4, A dense
 * (P1a's N(0, 1/D) - I), from t0 to t1.  With tau = t1 - t0 the end state
 * is z1 = E z0 + c where [E c; 0 1] = expm(tau [A b; 0 0]), and
 *     delta1 = -tau tr A                          (exact trace)
 *     delta1_b = -tau (1/K) sum_k eps_kb' A eps_kb  (Hutchinson).
 * The loss L = (1/B) sum_b (|z1_b|^2 / 2 + u . z1_b + 0.3 delta1_b) is then
 * a closed-form function of theta, whose central differences (h = 1e-5,
 * truncation ~1e-10, rounding ~1e-11 relative) are the reference for
 * dL/dtheta; dL/dz0_b = E' (z1_b + u) / B exactly.  The adjoint at
 * rtol = atol = 1e-10 must match both to 1e-6 relative (normwise), the
 * bar for the adjoint gradient with respect to A (docs/design.md, section 10).
 * A wrong sign or a missing trace term moves the gradient by O(1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf.h"
#include "cnf_dynamics.h"
#include "cnf_pde.h"
#include "test_util.h"

#define D 4
#define B 5
#define K 3
#define NP (D * D + D)

static cnf_ctx *ctx;
static double z0[B * D], u[D], eps[K * B * D];

typedef struct run {
  double tau;
  const double *eps; /* NULL: exact trace */
} run;

/* The closed-form loss of theta (NP). */
static double closed_loss(const double *theta, const run *r, double *z1) {
  const double *A = theta, *b = theta + D * D;
  double M[(D + 1) * (D + 1)], E[(D + 1) * (D + 1)];
  memset(M, 0, sizeof M);
  for (size_t i = 0; i < D; i++) {
    for (size_t j = 0; j < D; j++) M[i * (D + 1) + j] = A[i * D + j];
    M[i * (D + 1) + D] = b[i];
  }
  CU_ASSERT_EQUAL_FATAL(cnf_pde_expm(ctx, D + 1, M, r->tau, E), 0);
  double L = 0.0, trA = 0.0;
  for (size_t i = 0; i < D; i++) trA += A[i * D + i];
  for (size_t s = 0; s < B; s++) {
    double z[D], delta = -r->tau * trA;
    for (size_t i = 0; i < D; i++) {
      z[i] = E[i * (D + 1) + D];
      for (size_t j = 0; j < D; j++) z[i] += E[i * (D + 1) + j] * z0[s * D + j];
      L += 0.5 * z[i] * z[i] + u[i] * z[i];
      if (z1 != NULL) z1[s * D + i] = z[i];
    }
    if (r->eps != NULL) {
      delta = 0.0;
      for (size_t k = 0; k < K; k++) {
        const double *e = r->eps + (k * B + s) * D;
        for (size_t i = 0; i < D; i++)
          for (size_t j = 0; j < D; j++) delta -= r->tau * e[i] * A[i * D + j] * e[j] / K;
      }
    }
    L += 0.3 * delta;
  }
  return L / B;
}

/* The terminal loss for cnf_dyn_grad: the same L of (z1, delta1). */
static int terminal(void *user, size_t nb, size_t d, const double *z1, const double *delta1,
                    double *loss, double *gz1, double *gdelta1) {
  (void)user;
  double L = 0.0;
  for (size_t s = 0; s < nb; s++) {
    for (size_t i = 0; i < d; i++) {
      double z = z1[s * d + i];
      L += 0.5 * z * z + u[i] * z;
      gz1[s * d + i] = (z + u[i]) / (double)nb;
    }
    L += 0.3 * delta1[s];
    gdelta1[s] = 0.3 / (double)nb;
  }
  *loss = L / (double)nb;
  return 0;
}

static double rel_err(const double *a, const double *ref, size_t n) {
  double md = 0.0, mx = 0.0;
  for (size_t i = 0; i < n; i++) {
    md = fmax(md, fabs(a[i] - ref[i]));
    mx = fmax(mx, fabs(ref[i]));
  }
  return md / mx;
}

static void grad_case(double t0, double t1, const double *probes, cnf_adjoint variant) {
  if (ctx == NULL) {
    CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
    fill_gauss(z0, B * D, 11);
    fill_gauss(u, D, 12);
    fill_gauss(eps, K * B * D, 13);
  }
  double theta[NP];
  CU_ASSERT_EQUAL_FATAL(cnf_pde_p1a_matrix(ctx, CNF_PDE_A_DENSE, D, 0, 0, 5, theta), 0);
  fill_gauss(theta + D * D, D, 14);
  run r = {t1 - t0, probes};

  /* reference: central differences of the closed form, and dL/dz0 */
  double fd[NP], z1ref[B * D], gz0ref[B * D], E[(D + 1) * (D + 1)];
  const double L = closed_loss(theta, &r, z1ref);
  for (size_t p = 0; p < NP; p++) {
    const double h = 1e-5, old = theta[p];
    theta[p] = old + h;
    double Lp = closed_loss(theta, &r, NULL);
    theta[p] = old - h;
    double Lm = closed_loss(theta, &r, NULL);
    theta[p] = old;
    fd[p] = (Lp - Lm) / (2 * h);
  }
  CU_ASSERT_EQUAL_FATAL(cnf_pde_expm(ctx, D, theta, r.tau, E), 0); /* e^{tau A} (D, D) */
  for (size_t s = 0; s < B; s++)
    for (size_t j = 0; j < D; j++) {
      double g = 0.0;
      for (size_t i = 0; i < D; i++) g += E[i * D + j] * (z1ref[s * D + i] + u[i]);
      gz0ref[s * D + j] = g / B;
    }

  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = 1e-10;
  o.adjoint = variant;
  double loss = NAN, z1[B * D], d1[B], gz0[B * D], gth[NP];
  cnf_stats fwd, bwd;
  cnf_stats_clear(&fwd);
  cnf_stats_clear(&bwd);
  int rc = cnf_dyn_grad(dyn, theta, &o, t0, t1, B, K, probes, z0, terminal, NULL, &loss, z1, d1,
                        gz0, gth, &fwd, &bwd);
  if (rc != 0) printf("\n  %s\n", cnf_ctx_errmsg(ctx));
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  double eth = rel_err(gth, fd, NP), ez = rel_err(gz0, gz0ref, B * D);
  printf("\n  %s, %s, t %g -> %g: loss %.3e off, dL/dtheta %.2e, dL/dz0 %.2e "
         "(forward %ld RHS, backward %ld RHS + %ld quadrature)",
         cnf_adjoint_name(variant), probes ? "Gaussian K = 3" : "exact", t0, t1, fabs(loss - L),
         eth, ez, fwd.nfe, bwd.nfe, bwd.nquad);
  CHECK_NEAR(loss, L, 1e-8 * fabs(L));
  CU_ASSERT_TRUE(eth <= 1e-6);
  CU_ASSERT_TRUE(ez <= 1e-6);
  CU_ASSERT_TRUE(bwd.nquad > 0);

  /* no parameter gradient wanted: no quadrature, the same dL/dz0 */
  double gz0b[B * D];
  cnf_stats_clear(&bwd);
  CU_ASSERT_EQUAL(cnf_dyn_grad(dyn, theta, &o, t0, t1, B, K, probes, z0, terminal, NULL, &loss,
                               NULL, NULL, gz0b, NULL, NULL, &bwd),
                  0);
  CU_ASSERT_EQUAL(bwd.nquad, 0);
  CU_ASSERT_TRUE(rel_err(gz0b, gz0ref, B * D) <= 1e-6);
  cnf_dyn_free(dyn);
}

static void test_exact(void) {
  grad_case(0.0, 1.0, NULL, CNF_ADJOINT_BACKSOLVE);
  grad_case(0.0, 1.0, NULL, CNF_ADJOINT_CHECKPOINT);
}

static void test_hutchinson(void) {
  grad_case(0.25, 1.5, eps, CNF_ADJOINT_BACKSOLVE);
  grad_case(0.25, 1.5, eps, CNF_ADJOINT_CHECKPOINT);
}

static void test_backward_in_time(void) {
  grad_case(1.0, 0.0, NULL, CNF_ADJOINT_BACKSOLVE);
  grad_case(1.0, 0.0, eps, CNF_ADJOINT_CHECKPOINT);
}

static int failing(void *user, size_t nb, size_t d, const double *z1, const double *delta1,
                   double *loss, double *gz1, double *gdelta1) {
  (void)user, (void)nb, (void)d, (void)z1, (void)delta1, (void)gz1, (void)gdelta1;
  *loss = 0.0;
  return CNF_EDIM;
}

static void test_errors(void) {
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  cnf_options o;
  cnf_options_default(&o);
  double theta[NP] = {0}, loss, g[B * D];
  CU_ASSERT_EQUAL(cnf_dyn_grad(dyn, NULL, &o, 0, 1, B, K, NULL, z0, terminal, NULL, &loss, NULL,
                               NULL, g, NULL, NULL, NULL),
                  CNF_EINVAL); /* parameters missing */
  CU_ASSERT_EQUAL(cnf_dyn_grad(dyn, theta, &o, 1, 1, B, K, NULL, z0, terminal, NULL, &loss, NULL,
                               NULL, g, NULL, NULL, NULL),
                  CNF_EINVAL); /* empty interval */
  CU_ASSERT_EQUAL(cnf_dyn_grad(dyn, theta, &o, 0, 1, B, K, NULL, z0, failing, NULL, &loss, NULL,
                               NULL, g, NULL, NULL, NULL),
                  CNF_EDIM); /* the loss's own error comes back */
  cnf_dyn_free(dyn);
  /* a field without a vjp op */
  CU_ASSERT_EQUAL_FATAL(cnf_pde_p1a_matrix(ctx, CNF_PDE_A_DENSE, D, 0, 0, 5, theta), 0);
  cnf_pde_heat *h = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_pde_heat_create(&h, ctx, 2), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_pde_heat_dyn(&dyn, ctx, h), 0);
  CU_ASSERT_EQUAL(cnf_dyn_grad(dyn, NULL, &o, 0, 1, 1, 1, NULL, z0, terminal, NULL, &loss, NULL,
                               NULL, g, NULL, NULL, NULL),
                  CNF_EUNSUPPORTED);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "vjp"));
  cnf_dyn_free(dyn);
  cnf_pde_heat_free(h);
  cnf_ctx_free(ctx);
  ctx = NULL;
}

static const test_entry tests[] = {
    {"linear field, exact trace: dL/dtheta and dL/dz0 against the closed form", test_exact},
    {"linear field, Gaussian probes, t0 = 0.25", test_hutchinson},
    {"integrating backward in time (t1 < t0)", test_backward_in_time},
    {"errors", test_errors},
    {NULL, NULL},
};

int main(void) {
  const char *const names[] = {"dyn_grad"};
  const test_entry *const all[] = {tests};
  return run_suites(names, all, 1);
}
