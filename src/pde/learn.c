/* learn.c: regression of a parametric field on a problem's velocity
 * (cnf_pde.h, "learned fields").
 *
 *   L(theta) = E_{t ~ U[0,T], x ~ p_t} |v_theta(x, t) - v(x, t)|^2,
 *
 * estimated per iteration i on G stratified times t_g = (g + u_g) T / G
 * (u_g uniform) with S samples each, N = G S:
 *   L_i = (1/N) sum_g sum_s |v_theta(x_gs, t_g) - v(x_gs, t_g)|^2,
 * the regression of flow matching (cnf_fm_regress, cnf_fm.h) on the N rows
 * with their times: one forward and one reverse pass of the field per
 * iteration.  Adam takes the step at the rate lr (1 + cos(pi i / iters)) / 2.
 *
 * Samples of p_t: exact for P1a..P3 (cnf_pde_problem_sample).  For P4 a
 * bank of `paths` Euler-Maruyama paths is stored at levels k dl, dl = T /
 * levels, k = 0..levels; a sample at t is a random path of level
 * k = floor(t / dl) advanced by EM from k dl to t with fresh noise, so the
 * EM cost per sample is at most dl / em_dt steps.
 *
 * Streams (cnf_seed_derive of o->seed): "pde-time", index i: one GSL
 * generator per iteration draws u_g and then, for P4, the S path indices
 * of time g; "pde-paths", index 0: the bank's p0 samples, 1..levels: the
 * bank's noise from level k - 1 to k, levels + 1 + i G + g: the samples
 * (P1a..P3) or the EM noise (P4) of time g of iteration i. */
#include <gsl/gsl_rng.h>
#include <math.h>
#include <string.h>

#include "cnf_fm.h"
#include "cnf_pde.h"
#include "core.h"
#include "pde_impl.h"

void cnf_pde_learn_options_default(cnf_pde_learn_options *o) {
  memset(o, 0, sizeof *o);
  o->iters = 2000;
  o->minibatch = 256;
  o->groups = 16;
  o->lr = 3e-3;
  o->bank_paths = 2048;
  o->bank_levels = 50;
  o->em_dt = 1e-3;
}

/* Fill bank ((levels + 1) paths, d): level 0 samples of p0, level k + 1
 * level k advanced by EM over [k dl, (k + 1) dl]. */
static int fill_bank(cnf_ctx *ctx, cnf_pde_dw *dw, const cnf_pde_learn_options *o, size_t d,
                     double dl, double *bank) {
  const size_t n = o->bank_paths;
  int rc = cnf_pde_dw_sample0(dw, cnf_seed_derive(o->seed, "pde-paths", 0), n, bank);
  for (size_t k = 0; k < o->bank_levels && rc == 0; k++) {
    double *next = bank + (k + 1) * n * d;
    memcpy(next, bank + k * n * d, n * d * sizeof(double));
    rc = cnf_pde_dw_em(dw, cnf_seed_derive(o->seed, "pde-paths", k + 1), (double)k * dl,
                       (double)(k + 1) * dl, o->em_dt, n, next);
  }
  if (rc != 0)
    return CNF_ERROR(ctx, rc, "PDE learner: the Euler-Maruyama paths of the double well failed: %s",
                     cnf_strerror(rc));
  return 0;
}

int cnf_pde_learn(cnf_ctx *ctx, cnf_pde_problem *pb, cnf_dyn *dyn, double *theta,
                  const cnf_pde_learn_options *o, double *final_loss) {
  if (pb == NULL || dyn == NULL || theta == NULL || o == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "PDE learner: NULL argument");
  if (o->iters == 0 || o->minibatch == 0 || o->groups == 0 || !(o->lr > 0) || !isfinite(o->lr))
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "PDE learner: iters, minibatch, groups and lr must be positive (%zu, %zu, "
                     "%zu, %g)",
                     o->iters, o->minibatch, o->groups, o->lr);
  cnf_pde_dw *dw = cnf_pde_problem_dw(pb);
  if (dw != NULL && (o->bank_paths == 0 || o->bank_levels == 0 || !(o->em_dt > 0)))
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "PDE learner: the double well needs bank_paths, bank_levels, em_dt > 0");
  const size_t d = cnf_pde_problem_dim(pb), P = cnf_dyn_param_count(dyn);
  if (cnf_dyn_dim(dyn) != d)
    return CNF_ERROR(ctx, CNF_EDIM, "PDE learner: the field has dimension %zu, the problem %zu",
                     cnf_dyn_dim(dyn), d);
  const size_t G = o->groups, S = o->minibatch / G > 0 ? o->minibatch / G : 1, N = S * G;
  const size_t L = o->bank_levels;
  const double T = cnf_pde_problem_time(pb), dl = T / (double)L;
  cnf_dyn *field = cnf_pde_problem_field(pb);
  const double *ftheta = cnf_pde_problem_theta(pb);
  int rc = 0;
  double *ws = cnf__dalloc(ctx, 2 * N * d + N + 3 * P), *bank = NULL;
  gsl_rng *r = cnf__pde_rng(0);
  if (ws == NULL || r == NULL ||
      (dw != NULL && (bank = cnf__dalloc(ctx, (L + 1) * o->bank_paths * d)) == NULL))
    CNF_TRY(CNF_ERROR(ctx, CNF_ENOMEM, "PDE learner: out of memory"));
  double *xa = ws, *va = xa + N * d, *tau = va + N * d; /* (N, d), (N, d), (N) */
  double *g = tau + N, *m1 = g + P, *m2 = m1 + P;
  memset(m1, 0, 2 * P * sizeof(double));
  if (dw != NULL) CNF_TRY(fill_bank(ctx, dw, o, d, dl, bank));
  cnf_train_options to;
  cnf_train_options_default(&to);
  to.weight_decay = 0.0;
  double loss = NAN;
  for (size_t it = 0; it < o->iters; it++) {
    gsl_rng_set(r, cnf__seed32(cnf_seed_derive(o->seed, "pde-time", it)));
    for (size_t gi = 0; gi < G; gi++) {
      const double t = ((double)gi + gsl_rng_uniform(r)) * T / (double)G;
      double *x = xa + gi * S * d, *v = va + gi * S * d;
      const uint64_t s2 = cnf_seed_derive(o->seed, "pde-paths", L + 1 + it * G + gi);
      if (dw == NULL) {
        CNF_TRY(cnf_pde_problem_sample(pb, t, s2, S, x));
      } else {
        size_t k = (size_t)(t / dl);
        if (k >= L) k = L - 1;
        for (size_t b = 0; b < S; b++) {
          const size_t j = (size_t)gsl_rng_uniform_int(r, o->bank_paths);
          memcpy(x + b * d, bank + (k * o->bank_paths + j) * d, d * sizeof(double));
        }
        rc = cnf_pde_dw_em(dw, s2, fmin((double)k * dl, t), t, o->em_dt, S, x);
        if (rc != 0) CNF_TRY(CNF_ERROR(ctx, rc, "PDE learner: Euler-Maruyama failed"));
      }
      CNF_TRY(cnf_dyn_f(field, t, S, x, ftheta, v));
      for (size_t b = 0; b < S; b++) tau[gi * S + b] = t;
    }
    rc = cnf_fm_regress(dyn, theta, N, tau, xa, va, &loss, g);
    if (rc == CNF_ENONFINITE)
      CNF_TRY(CNF_ERROR(ctx, CNF_ENONFINITE,
                        "PDE learner: the regression loss is not finite at iteration %zu", it + 1));
    CNF_TRY(rc);
    to.lr = o->lr * 0.5 * (1.0 + cos(3.14159265358979323846 * (double)it / (double)o->iters));
    cnf_adam_update(&to, (long)it + 1, P, g, theta, m1, m2);
    if (o->report != NULL && o->report(o->user, it, loss) != 0) break;
  }
  if (final_loss != NULL) *final_loss = loss;
cleanup:
  if (r != NULL) gsl_rng_free(r);
  cnf__free(ws);
  cnf__free(bank);
  return rc;
}
