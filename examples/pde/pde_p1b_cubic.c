/* pde_p1b_cubic.c: P1b, the stiff cubic field v = -x^3 (elementwise),
 * d = 10, T = 0.5: x(T) against y0 / sqrt(1 + 2 T y0^2) and the
 * log-density against the closed form, with Adams and then BDF (steps,
 * RHS evaluations and Jacobian-vector products printed).
 * Bounds: |x - x(T)| <= 1e-5 and mean LPE <= 1e-5 at rtol = atol = 1e-8
 * (p_T's support ends where 2 T y^2 = 1, where log p_T is steep). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cnf_dynamics.h"
#include "cnf_pde.h"

int main(void) {
  enum { D = 10, B = 100 };
  const double T = 0.5;
  static double x0[B * D], x[B * D], xr[B * D], delta[B], lp0[B], lp[B];
  cnf_ctx *ctx = NULL;
  cnf_dyn *dyn = NULL;
  if (cnf_ctx_create(&ctx) != 0) return 1;
  int rc = cnf_dyn_cubic_create(&dyn, ctx, D, NULL), ok = 1;
  if (rc == 0) rc = cnf_probes_draw(CNF_TRACE_GAUSS, 11, 1, B, D, x0);
  if (rc == 0) rc = cnf_pde_p1b_flow(ctx, D, NULL, T, B, x0, xr);
  for (int m = 0; m < 2 && rc == 0; m++) {
    cnf_options opt;
    cnf_options_default(&opt);
    opt.rtol = opt.atol = 1e-8;
    opt.method = m ? CNF_METHOD_BDF : CNF_METHOD_ADAMS;
    cnf_stats st;
    cnf_stats_clear(&st);
    memcpy(x, x0, sizeof x);
    memset(delta, 0, sizeof delta);
    rc = cnf_dyn_solve(dyn, NULL, &opt, 0.0, T, B, 0, NULL, x, delta, &st);
    if (rc == 0) rc = cnf_pde_p1b_logp(ctx, D, NULL, T, B, x, lp);
    if (rc != 0) break;
    double ex = 0.0, mean, max;
    for (size_t i = 0; i < B * D; i++) ex = fmax(ex, fabs(x[i] - xr[i]));
    for (size_t b = 0; b < B; b++) lp0[b] = cnf_log_normal(x0 + b * D, D) + delta[b];
    cnf_pde_lpe(B, lp0, lp, &mean, &max);
    printf("P1b d=%d T=%g %s: max |x - x(T)| %.2e, LPE mean %.3g max %.3g; steps %ld, nfe %ld, "
           "J v %ld\n",
           D, T, cnf_method_name(opt.method), ex, mean, max, st.nsteps, st.nfe, st.njtv);
    ok = ok && ex <= 1e-5 && mean <= 1e-5;
  }
  if (rc != 0) fprintf(stderr, "pde_p1b_cubic: %s\n", cnf_ctx_errmsg(ctx));
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
  return rc == 0 && ok ? 0 : 1;
}
