/* pde_learned_ou.c: the learned mode on the library alone: an MLP field
 * (32-32) is regressed on the velocity of P3 (Ornstein-Uhlenbeck, d = 2,
 * T = 2) by cnf_pde_learn, then 400 samples of p0 are carried through it
 * and reported at 21 times by cnf_pde_report_times, as `cnf pde --problem
 * ou --dim 2 --learned --iters 300 --hidden 32-32 -n 400` does (the same
 * seed 0 and streams, so the same figures).  Bound: mean LPE <= 0.15 at T
 * (0.061 measured; 1.1 after a single step). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cnf_dynamics.h"
#include "cnf_pde.h"

enum { D = 2, B = 400, M = 21 };

int main(void) {
  cnf_ctx *ctx = NULL;
  cnf_pde_problem *pb = NULL;
  cnf_dyn *mlp = NULL;
  double *theta = NULL, loss = NAN;
  static cnf_pde_metrics rows[M];
  if (cnf_ctx_create(&ctx) != 0) return 1;
  cnf_pde_problem_config pc;
  cnf_pde_problem_config_default(&pc, CNF_PDE_P3, D);
  int rc = cnf_pde_problem_create(&pb, ctx, &pc);
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, D);
  if (rc == 0) rc = cnf_mlp_parse_hidden(&cfg, "32-32");
  if (rc == 0 && (theta = malloc(cnf_mlp_param_count(&cfg) * sizeof(double))) == NULL) rc = 1;
  if (rc == 0) rc = cnf_dyn_mlp_create(&mlp, ctx, &cfg);
  if (rc == 0) rc = cnf_mlp_init_params(&cfg, cnf_seed_derive(0, "pde-init", 0), theta);
  cnf_pde_learn_options lo;
  cnf_pde_learn_options_default(&lo);
  lo.iters = 300;
  if (rc == 0) rc = cnf_pde_learn(ctx, pb, mlp, theta, &lo, &loss);
  cnf_options opt;
  cnf_options_default(&opt);
  opt.rtol = opt.atol = 1e-8;
  if (rc == 0) rc = cnf_pde_report_times(ctx, pb, mlp, theta, &opt, B, 0, M, NULL, rows, NULL);
  for (size_t k = 0; k < M && rc == 0; k += 5)
    printf("P3 learned d=%d t=%.1f: LPE mean %.3g, W2 %.3f\n", D, rows[k].t, rows[k].lpe_mean,
           rows[k].w2);
  if (rc == 0) printf("final regression loss %.3g\n", loss);
  if (rc != 0) fprintf(stderr, "pde_learned_ou: %s\n", cnf_ctx_errmsg(ctx));
  const int ok = rc == 0 && rows[M - 1].lpe_mean <= 0.15;
  free(theta);
  cnf_dyn_free(mlp);
  cnf_pde_problem_free(pb);
  cnf_ctx_free(ctx);
  return ok ? 0 : 1;
}
