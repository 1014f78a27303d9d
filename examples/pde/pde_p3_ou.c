/* pde_p3_ou.c: P3, the Ornstein-Uhlenbeck Fokker-Planck equation, d = 10,
 * T = 2, followed at 21 times in one solve (cnf_dyn_solve_times): at each
 * time the LPE against N(m_t, Sigma_t) and the Gaussian W2 of the samples.
 * Bound: mean LPE <= 1e-6 at every time at rtol = atol = 1e-8. */
#include <math.h>
#include <stdio.h>

#include "cnf_dynamics.h"
#include "cnf_pde.h"

enum { D = 10, B = 400, M = 21 };

int main(void) {
  const double T = 2.0;
  static double x[B * D], xs[M * B * D], ds[M * B], delta[B], lp0[B], lh[B], lp[B];
  static double m[D], S[D * D], mh[D], Sh[D * D], tout[M];
  cnf_ctx *ctx = NULL;
  cnf_pde_ou *ou = NULL;
  cnf_dyn *dyn = NULL;
  if (cnf_ctx_create(&ctx) != 0) return 1;
  int rc = cnf_pde_ou_create(&ou, ctx, D, 3), ok = 1;
  if (rc == 0) rc = cnf_pde_ou_dyn(&dyn, ctx, ou);
  if (rc == 0) rc = cnf_probes_draw(CNF_TRACE_GAUSS, 5, 1, B, D, x);
  for (size_t b = 0; b < B; b++) lp0[b] = cnf_log_normal(x + b * D, D);
  for (size_t k = 0; k < M; k++) tout[k] = T * (double)k / (M - 1);
  cnf_options opt;
  cnf_options_default(&opt);
  opt.rtol = opt.atol = 1e-8;
  if (rc == 0)
    rc = cnf_dyn_solve_times(dyn, NULL, &opt, 0.0, M, tout, B, 0, NULL, x, delta, xs, ds, NULL);
  for (size_t k = 0; k < M && rc == 0; k++) {
    const double *xk = xs + k * B * D;
    cnf_pde_gauss_err ge;
    for (size_t b = 0; b < B; b++) lh[b] = lp0[b] + ds[k * B + b];
    rc = cnf_pde_ou_logp(ou, tout[k], B, xk, lp);
    cnf_pde_ou_moments(ou, tout[k], m, S);
    if (rc == 0) rc = cnf_pde_sample_moments(D, B, xk, mh, Sh);
    if (rc == 0) rc = cnf_pde_gauss_errors(ctx, D, mh, Sh, m, S, &ge);
    double mean, max;
    cnf_pde_lpe(B, lh, lp, &mean, &max);
    printf("P3 d=%d t=%.1f: LPE mean %.3g max %.3g, W2 %.3f\n", D, tout[k], mean, max,
           sqrt(ge.w2sq));
    ok = ok && mean <= 1e-6;
  }
  if (rc != 0) fprintf(stderr, "pde_p3_ou: %s\n", cnf_ctx_errmsg(ctx));
  cnf_dyn_free(dyn);
  cnf_pde_ou_free(ou);
  cnf_ctx_free(ctx);
  return rc == 0 && ok ? 0 : 1;
}
