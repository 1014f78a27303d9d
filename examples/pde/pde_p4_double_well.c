/* pde_p4_double_well.c: P4, double-well Langevin dynamics
 * dX = -V'(X) dt + sqrt(2) dW, V = sum x^4/4 - 2 x^2, from N(0.5, 0.3^2 I),
 * d = 10, rotated by a random orthogonal Q, T = 1.  The reference is a 1-D
 * finite-volume solve (500 cells); samples of p0 are carried by its
 * probability-flow field and compared with it, and the mass in the left
 * well and the KL divergence to p_inf are printed.
 * Bound: mean LPE <= 1e-5 (the reference's residual allows about 1e-6 per
 * coordinate) at rtol = atol = 1e-8. */
#include <stdio.h>
#include <stdlib.h>

#include "cnf_dynamics.h"
#include "cnf_pde.h"

enum { D = 10, B = 200 };

int main(void) {
  static double Q[D * D], x[B * D], delta[B], lp0[B], lp[B];
  cnf_ctx *ctx = NULL;
  cnf_pde_dw *dw = NULL;
  cnf_dyn *dyn = NULL;
  if (cnf_ctx_create(&ctx) != 0) return 1;
  cnf_pde_dw_config cfg;
  cnf_pde_dw_config_default(&cfg, D, 1.0);
  cfg.cells = 500;
  cfg.Q = Q;
  int rc = cnf_pde_random_orthogonal(ctx, D, 9, Q);
  if (rc == 0) rc = cnf_pde_dw_create(&dw, ctx, &cfg);
  if (rc == 0) rc = cnf_pde_dw_dyn(&dyn, ctx, dw);
  if (rc == 0) rc = cnf_pde_dw_sample0(dw, 1, B, x);
  if (rc == 0) rc = cnf_pde_dw_logp0(dw, B, x, lp0);
  cnf_options opt;
  cnf_options_default(&opt);
  opt.rtol = opt.atol = 1e-8;
  cnf_stats st;
  cnf_stats_clear(&st);
  if (rc == 0) rc = cnf_dyn_solve(dyn, NULL, &opt, 0.0, cfg.T, B, 0, NULL, x, delta, &st);
  if (rc == 0) rc = cnf_pde_dw_logp(dw, cfg.T, B, x, lp);
  if (rc != 0) {
    fprintf(stderr, "pde_p4_double_well: %s\n", cnf_ctx_errmsg(ctx));
    return 1;
  }
  for (size_t b = 0; b < B; b++) lp0[b] += delta[b];
  double mean, max;
  cnf_pde_lpe(B, lp0, lp, &mean, &max);
  printf("P4 d=%d T=%g: LPE mean %.3g max %.3g, nfe %ld; left-well mass %.4f, KL to p_inf %.4f\n",
         D, cfg.T, mean, max, st.nfe, cnf_pde_dw_mass_left(dw, cfg.T), cnf_pde_dw_kl_inf(dw, cfg.T));
  cnf_dyn_free(dyn);
  cnf_pde_dw_free(dw);
  cnf_ctx_free(ctx);
  return mean <= 1e-5 ? 0 : 1;
}
