/* fm.c: flow matching (Lipman et al. 2023, "Flow Matching for Generative
 * Modeling") and minibatch OT flow matching (Tong et al. 2023, "Improving
 * and Generalizing Flow-Based Generative Models with Minibatch Optimal
 * Transport"), in cnf's time convention: data x at t = 0, the latent
 * z ~ N(0, I) at t = T.  Implements the batch draw, the OT pairing and the
 * loss with its parameter gradient; the training loop, the model file and
 * the command line live elsewhere.
 *
 * The path.  For a data row x, a noise row z, e ~ N(0, I) and s in [0, 1],
 *
 *     x_s = (1 - s) x + s z + sigma e,    tau = s T,
 *
 * a straight line from x (tau = 0) to z (tau = T), blurred by sigma >= 0
 * (Tong et al.'s Gaussian path of constant width; sigma = 0 is Lipman et
 * al.'s linear path with sigma_min = 0, i.e. rectified flow's path).  The
 * conditional velocity in cnf's time is the derivative in tau:
 *
 *     u(x, z) = d x_s / d tau = (z - x) / T,
 *
 * constant along the line and independent of e (the width does not change).
 *
 * The marginal velocity.  Let p_tau be the density of x_s when
 * (x, z, e, s = tau / T) are drawn from data x coupling noise, and
 *
 *     v*(tau, y) = E[u | x_s = y]
 *
 * the average of the conditional velocities of the lines through y.  Each
 * conditional density q(y | x, z) = N(y; (1 - s) x + s z, sigma^2 I)
 * solves the continuity equation with the velocity u (it translates at
 * speed u without changing shape), and the continuity equation is linear
 * in the pair (density, flux): summing the conditional fluxes q u over
 * (x, z) gives p_tau v*.  So v* carries p_0 (the data, blurred by sigma)
 * to p_T (N(0, I), blurred by sigma: N(0, (1 + sigma^2) I)), and a field
 * f ~= v* is a CNF of the data with the standard normal base, up to the
 * blur, which is of order sigma^2 in the densities.
 *
 * The loss and why its gradient is unbiased.  With s ~ U[0, 1),
 *
 *     L_c(theta) = E |f(tau, x_s; theta) - u|^2
 *                = E |f - v*|^2 + E |u - v*|^2 + 2 E[(f - v*) . (v* - u)],
 *
 * and the cross term vanishes: conditioned on (tau, x_s) the factor f - v*
 * is fixed and E[u - v* | tau, x_s] = 0 by the definition of v*.  The
 * second term does not depend on theta.  Hence grad L_c equals the
 * gradient of the marginal regression E |f - v*|^2, which cannot be
 * computed, and the minibatch mean of |f - u|^2 gives an unbiased estimate
 * of it (Lipman et al., theorem 2).  The minimum of L_c is E |u - v*|^2,
 * not 0: the loss value does not fall to zero even for a perfect field.
 * Any coupling of x and z works the same way, in particular the minibatch
 * OT pairing below (its v* is that of the coupling it induces).
 *
 * The minibatch loss and its gradient:
 *
 *     L = (1/B) sum_b |f_b - u_b|^2,   f_b = f(s_b T, x_s_b),
 *     dL/dtheta = sum_b (2 (f_b - u_b) / B)^T df_b/dtheta,
 *
 * one per-row reverse sweep (cnf_dyn_vjp_rows) whose output seed
 * a_b + 2 ck_b f_b, with a_b = -2 u_b / B and ck_b = 1 / B, is that
 * 2 (f_b - u_b) / B, so f need not be known before the sweep: one forward
 * and one reverse pass per step.
 *
 * Why not divide by D.  The squared norm is summed over the D coordinates,
 * as in Lipman et al.: the loss is the expected squared velocity error per
 * sample, the quantity in which the known bounds on the distance between
 * the flow's distribution and the data's are stated, and a per-sample
 * number like the maximum-likelihood loss (nats per sample).  A 1/D
 * factor would only rescale the loss and its gradient, which Adam's steps
 * do not see.  tau is uniform on [0, T), so the regression weighs all
 * times of the flow equally.  T is a constant here: flow matching does not
 * train it.
 *
 * OT pairing.  With B data and B noise rows of weight 1/B each, every
 * vertex of the transport polytope is a permutation (Birkhoff-von
 * Neumann), so the exact minibatch OT plan under |x - z|^2 is the optimal
 * assignment of assign.c, and pairing by it is sampling from that plan. */
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>
#include <math.h>
#include <string.h>

#include "cnf_fm.h"
#include "core.h"
#include "dyn_impl.h"

int cnf_fm_pair_ot(cnf_ctx *ctx, size_t B, size_t D, const double *x, double *z, size_t *perm,
                   double *total) {
  if (B > 0 && (x == NULL || z == NULL || D == 0))
    return CNF_ERROR(ctx, CNF_EINVAL, "fm: pair_ot needs x, z (B, D) and D > 0");
  if (B == 0) {
    if (total != NULL) *total = 0.0;
    return 0;
  }
  if (B > SIZE_MAX / sizeof(double) / B)
    return CNF_ERROR(ctx, CNF_EINVAL, "fm: batch %zu too large for a cost matrix", B);
  double *cost = cnf__malloc(B * B * sizeof(double));
  double *zc = cnf__malloc(B * D * sizeof(double));
  size_t *col = cnf__malloc(B * sizeof(size_t));
  int rc = 0;
  if (cost == NULL || zc == NULL || col == NULL) {
    rc = CNF_ERROR(ctx, CNF_ENOMEM, "fm: out of memory for the %zu x %zu cost matrix", B, B);
    goto cleanup;
  }
  cnf_assign_sqeuclid_cost(B, D, x, z, cost);
  CNF_TRY(cnf_assign_solve(ctx, B, cost, col, NULL, NULL, total));
  memcpy(zc, z, B * D * sizeof(double));
  for (size_t b = 0; b < B; b++) memcpy(z + b * D, zc + col[b] * D, D * sizeof(double));
  if (perm != NULL) memcpy(perm, col, B * sizeof(size_t));
cleanup:
  cnf__free(cost);
  cnf__free(zc);
  cnf__free(col);
  return rc;
}

int cnf_fm_batch(cnf_ctx *ctx, cnf_fm_coupling coupling, uint64_t seed, size_t B, size_t D,
                 const double *x, double *z, double *s, double *e) {
  if (B == 0 || D == 0 || z == NULL || s == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "fm: batch needs B, D > 0 and the arrays z, s");
  if (coupling != CNF_FM_INDEPENDENT && coupling != CNF_FM_OT)
    return CNF_ERROR(ctx, CNF_EINVAL, "fm: unknown coupling %d", (int)coupling);
  if (coupling == CNF_FM_OT && x == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "fm: the OT coupling needs the data x");
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (r == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "fm: out of memory for a generator");
  gsl_rng_set(r, cnf__seed32(seed));
  for (size_t i = 0; i < B * D; i++) z[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
  for (size_t b = 0; b < B; b++) s[b] = gsl_rng_uniform(r);
  if (e != NULL)
    for (size_t i = 0; i < B * D; i++) e[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
  gsl_rng_free(r);
  return coupling == CNF_FM_OT ? cnf_fm_pair_ot(ctx, B, D, x, z, NULL, NULL) : 0;
}

void cnf_fm_path(size_t D, double T, double sigma, double s, const double *x, const double *z,
                 const double *e, double *xt, double *u) {
  for (size_t i = 0; i < D; i++) {
    xt[i] = (1.0 - s) * x[i] + s * z[i] + (e != NULL ? sigma * e[i] : 0.0);
    if (u != NULL) u[i] = (z[i] - x[i]) / T;
  }
}

/* A field's positive (recoverable, in CVODE's sense) return code is an
 * error here: there is no step to retry. */
static int field_rc(cnf_ctx *ctx, const cnf_dyn *dyn, int rc, const char *op) {
  if (rc > 0)
    return CNF_ERROR(ctx, CNF_ERHS, "fm: field '%s' failed in %s (code %d)", cnf_dyn_name(dyn), op,
                     rc);
  return rc;
}

int cnf_fm_regress(cnf_dyn *dyn, const double *theta, size_t B, const double *tau,
                   const double *x, const double *u, double *loss, double *grad) {
  if (dyn == NULL) return CNF_ERROR(NULL, CNF_EINVAL, "fm: regress needs a field");
  cnf_ctx *ctx = dyn->ctx;
  const size_t D = dyn->D, P = dyn->P;
  if (B == 0 || tau == NULL || x == NULL || u == NULL || loss == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "fm: regress needs B > 0 and tau (B), x, u (B, D), loss");
  if (P > 0 && theta == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "fm: field '%s' needs its %zu parameters", cnf_dyn_name(dyn),
                     P);
  /* a, f (B, D), then ck (B) */
  double *mem = cnf__dalloc(ctx, 2 * B * D + B);
  if (mem == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "fm: out of memory for %zu rows", B);
  double *a = mem, *f = mem + B * D, *ck = f + B * D;
  int rc = cnf_dyn_reserve(dyn, B, 0);
  if (rc != 0) rc = CNF_ERROR(ctx, CNF_ENOMEM, "fm: out of memory for %zu rows", B);
  if (rc == 0 && grad == NULL) {
    rc = field_rc(ctx, dyn, cnf_dyn_f_rows(dyn, tau, B, x, theta, f), "f");
  } else if (rc == 0) {
    /* L = (1/B) sum |f|^2 - (2/B) u.f + const: the seeds a = -(2/B) u and
     * ck = 1/B give one forward and one reverse pass, and f on the way */
    for (size_t i = 0; i < B * D; i++) a[i] = -2.0 * u[i] / (double)B;
    for (size_t b = 0; b < B; b++) ck[b] = 1.0 / (double)B;
    memset(grad, 0, P * sizeof(double));
    rc = field_rc(ctx, dyn, cnf_dyn_vjp_rows(dyn, tau, B, x, theta, a, ck, f, NULL, grad), "vjp");
  }
  if (rc == 0) {
    double sum = 0.0;
    for (size_t i = 0; i < B * D; i++) sum += (f[i] - u[i]) * (f[i] - u[i]);
    *loss = sum / (double)B;
    if (!isfinite(*loss))
      rc = CNF_ERROR(ctx, CNF_ENONFINITE, "fm: the loss is not finite (%g)", *loss);
  }
  cnf__free(mem);
  return rc;
}

int cnf_fm_loss_grad(cnf_dyn *dyn, const double *theta, double T, double sigma, size_t B,
                     const double *x, const double *z, const double *s, const double *e,
                     double *loss, double *grad) {
  if (dyn == NULL) return CNF_ERROR(NULL, CNF_EINVAL, "fm: loss_grad needs a field");
  cnf_ctx *ctx = dyn->ctx;
  const size_t D = dyn->D;
  if (B == 0 || x == NULL || z == NULL || s == NULL || loss == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "fm: loss_grad needs B > 0 and x, z (B, D), s (B), loss");
  if (!(T > 0) || !isfinite(T) || !(sigma >= 0) || !isfinite(sigma))
    return CNF_ERROR(ctx, CNF_EINVAL, "fm: need T > 0 and sigma >= 0 (got T = %g, sigma = %g)", T,
                     sigma);
  if (sigma > 0 && e == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "fm: sigma = %g > 0 needs the path noise e (B, D)", sigma);
  for (size_t b = 0; b < B; b++)
    if (!(s[b] >= 0.0 && s[b] <= 1.0))
      return CNF_ERROR(ctx, CNF_EINVAL, "fm: path position s[%zu] = %g is not in [0, 1]", b, s[b]);
  /* xt, u (B, D) each, then tau (B) */
  double *mem = cnf__dalloc(ctx, 2 * B * D + B);
  if (mem == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "fm: out of memory for %zu rows", B);
  double *xt = mem, *u = mem + B * D, *tau = mem + 2 * B * D;
  for (size_t b = 0; b < B; b++) {
    tau[b] = s[b] * T;
    cnf_fm_path(D, T, sigma, s[b], x + b * D, z + b * D, e != NULL ? e + b * D : NULL, xt + b * D,
                u + b * D);
  }
  int rc = cnf_fm_regress(dyn, theta, B, tau, xt, u, loss, grad);
  cnf__free(mem);
  return rc;
}
