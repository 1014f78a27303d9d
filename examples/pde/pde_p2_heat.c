/* pde_p2_heat.c: P2, the heat equation dp/dt = D lap p from a mixture of
 * four Gaussians, d = 10, T = 1: samples of p0 carried by v = -D grad log
 * p_t, forward (p0 -> p_T) and in reverse (samples of p_T back to 0).
 * Bounds: mean LPE <= 1e-6 forward and 1e-5 in reverse (the reverse flow
 * ends on modes of width 0.25, where log p0 is steep) at rtol = atol = 1e-8. */
#include <stdio.h>
#include <string.h>

#include "cnf_dynamics.h"
#include "cnf_pde.h"

int main(void) {
  enum { D = 10, B = 100 };
  const double T = 1.0;
  static double x[B * D], delta[B], lpa[B], lpb[B];
  cnf_ctx *ctx = NULL;
  cnf_pde_heat *h = NULL;
  cnf_dyn *dyn = NULL;
  if (cnf_ctx_create(&ctx) != 0) return 1;
  int rc = cnf_pde_heat_create(&h, ctx, D), ok = 1;
  if (rc == 0) rc = cnf_pde_heat_dyn(&dyn, ctx, h);
  cnf_options opt;
  cnf_options_default(&opt);
  opt.rtol = opt.atol = 1e-8;
  for (int dir = 0; dir < 2 && rc == 0; dir++) {
    const double ta = dir ? T : 0.0, tb = dir ? 0.0 : T, bar = dir ? 1e-5 : 1e-6;
    rc = cnf_pde_heat_sample(h, ta, 100 + dir, B, x);
    if (rc == 0) rc = cnf_pde_heat_logp(h, ta, B, x, lpa);
    memset(delta, 0, sizeof delta);
    cnf_stats st;
    cnf_stats_clear(&st);
    if (rc == 0) rc = cnf_dyn_solve(dyn, NULL, &opt, ta, tb, B, 0, NULL, x, delta, &st);
    if (rc == 0) rc = cnf_pde_heat_logp(h, tb, B, x, lpb);
    if (rc != 0) break;
    for (size_t b = 0; b < B; b++) lpa[b] += delta[b];
    double mean, max;
    cnf_pde_lpe(B, lpa, lpb, &mean, &max);
    printf("P2 d=%d %s: LPE mean %.3g max %.3g, nfe %ld\n", D, dir ? "reverse" : "forward", mean,
           max, st.nfe);
    ok = ok && mean <= bar;
  }
  if (rc != 0) fprintf(stderr, "pde_p2_heat: %s\n", cnf_ctx_errmsg(ctx));
  cnf_dyn_free(dyn);
  cnf_pde_heat_free(h);
  cnf_ctx_free(ctx);
  return rc == 0 && ok ? 0 : 1;
}
