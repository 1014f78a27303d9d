/* pde_p1a_linear.c: P1a, the Liouville equation of the linear field
 * v = A x (A with N(0, 1/d) entries minus I), d = 16: samples of N(0, I)
 * carried to T = 1 with the exact trace, and log p0(x0) + Delta(T) against
 * the closed form log p_T(x(T)) = log N(expm(-T A) x) - T tr A.
 * Bound: mean LPE <= 1e-6 at rtol = atol = 1e-8. */
#include <stdio.h>
#include <stdlib.h>

#include "cnf_dynamics.h"
#include "cnf_pde.h"

int main(void) {
  enum { D = 16, B = 200 };
  const double T = 1.0;
  static double theta[D * D + D], x[B * D], delta[B], lp0[B], lp[B];
  cnf_ctx *ctx = NULL;
  cnf_dyn *dyn = NULL;
  if (cnf_ctx_create(&ctx) != 0) return 1;
  /* theta = [A, b = 0] for the linear field */
  int rc = cnf_pde_p1a_matrix(ctx, CNF_PDE_A_DENSE, D, 0, 0, 42, theta);
  if (rc == 0) rc = cnf_dyn_linear_create(&dyn, ctx, D);
  if (rc == 0) rc = cnf_probes_draw(CNF_TRACE_GAUSS, 7, 1, B, D, x); /* x0 ~ N(0, I) */
  for (size_t b = 0; b < B; b++) lp0[b] = cnf_log_normal(x + b * D, D);
  cnf_options opt;
  cnf_options_default(&opt);
  opt.rtol = opt.atol = 1e-8;
  cnf_stats st;
  cnf_stats_clear(&st);
  if (rc == 0) rc = cnf_dyn_solve(dyn, theta, &opt, 0.0, T, B, 0, NULL, x, delta, &st);
  if (rc == 0) rc = cnf_pde_p1a_logp(ctx, D, theta, T, B, x, lp);
  if (rc != 0) {
    fprintf(stderr, "pde_p1a_linear: %s\n", cnf_ctx_errmsg(ctx));
    return 1;
  }
  for (size_t b = 0; b < B; b++) lp0[b] += delta[b];
  double mean, max;
  cnf_pde_lpe(B, lp0, lp, &mean, &max);
  printf("P1a d=%d T=%g: LPE mean %.3g max %.3g, nfe %ld\n", D, T, mean, max, st.nfe);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
  return mean <= 1e-6 ? 0 : 1;
}
