/* pde_learn.c: the parts of `cnf pde` that follow a density over time
 * (cli_pde.h): the 21-time report of a field (the problem's own or a
 * learned one) for P3 (ou) and P4 (double-well), the regression of a
 * time-dependent MLP on the known velocity (--learned), and the P4 plot of
 * learned against reference 1-D densities.
 *
 * Regression: L(theta) = E_{t ~ U[0,T], x ~ p_t} |v_theta(x, t) - v(x, t)|^2,
 * estimated per iteration on G = 16 stratified times t_g = (g + u_g) T / G
 * with S = minibatch / G samples each: for P3 from the closed form
 * N(m_t, Sigma_t); for P4 from seeded Euler-Maruyama paths (a bank of 2048
 * paths stored at 50 levels, each sample advanced by EM from the level
 * below t to t).  The gradient, dL/dtheta = sum_g a_g^T dv_theta/dtheta
 * with a_g = 2 (v_theta - v) / N, is one vector-Jacobian product per time
 * (cnf_dyn_vjp), and Adam (cnf_adam_update) takes the step, its rate
 * decaying by a cosine to 0 over the iterations. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_pde.h"

#define NTIMES 21
#define GROUPS 16
#define BANK_PATHS 2048
#define BANK_LEVELS 50
#define EM_DT 1e-3

/* splitmix64: uniforms for the times and path indices */
static uint64_t mix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
static double unif(uint64_t *s) { return (double)(mix(s) >> 11) * 0x1p-53; }

void cnf__cli_print_trace_var(const cnf_stats *st) {
  if (st->trace_var_n > 0)
    printf("trace_var %.6g\ntrace_var_terms %ld\n", st->trace_var_sum / (double)st->trace_var_n,
           st->trace_var_n);
}

static int p0_logp(void *user, size_t B, size_t D, const double *x, double *logp) {
  (void)D;
  return cnf_pde_dw_logp0(user, B, x, logp);
}

int cnf__cli_pde_train(const char *cmd, cnf_ctx *ctx, const pde_setup *p, cnf_dyn *mlp,
                       double *theta, size_t iters, size_t minibatch, double lr, uint64_t seed,
                       double *final_loss) {
  const size_t d = p->d, P = cnf_dyn_param_count(mlp);
  const size_t S = minibatch / GROUPS > 0 ? minibatch / GROUPS : 1, N = S * GROUPS;
  int status = CNF_CLI_OK, rc = 0;
  double *x = calloc(S * d, sizeof(double)), *v = calloc(S * d, sizeof(double)),
         *vt = calloc(S * d, sizeof(double)), *a = calloc(S * d, sizeof(double)),
         *gz = calloc(S * d, sizeof(double)), *g = calloc(P, sizeof(double)),
         *m1 = calloc(P, sizeof(double)), *m2 = calloc(P, sizeof(double)), *bank = NULL;
  if (!x || !v || !vt || !a || !gz || !g || !m1 || !m2) {
    cnf__cli_error(cmd, "out of memory for training");
    status = CNF_CLI_EFAIL;
    goto cleanup;
  }
  const double dl = p->T / BANK_LEVELS;
  if (p->dw != NULL) { /* the EM bank: BANK_PATHS paths at BANK_LEVELS + 1 levels */
    bank = cnf__cli_alloc(cmd, (size_t)(BANK_LEVELS + 1) * BANK_PATHS, d, "paths", &status);
    if (bank == NULL) goto cleanup;
    rc = cnf_pde_dw_sample0(p->dw, seed ^ 0xb4a7ULL, BANK_PATHS, bank);
    for (size_t k = 0; k < BANK_LEVELS && rc == 0; k++) {
      double *next = bank + (k + 1) * BANK_PATHS * d;
      memcpy(next, bank + k * BANK_PATHS * d, BANK_PATHS * d * sizeof(double));
      rc = cnf_pde_dw_em(p->dw, seed * 1000003ULL + k, (double)k * dl, (double)(k + 1) * dl,
                         EM_DT, BANK_PATHS, next);
    }
    if (rc != 0) {
      cnf__cli_error(cmd, "the Euler-Maruyama paths of the double well failed: %s",
                     cnf_strerror(rc));
      status = CNF_CLI_EFAIL;
      goto cleanup;
    }
  }
  cnf_train_options to;
  cnf_train_options_default(&to);
  to.weight_decay = 0.0;
  uint64_t st = seed ^ 0x7e57ULL;
  double loss = 0.0;
  for (size_t it = 0; it < iters && rc == 0; it++) {
    memset(g, 0, P * sizeof(double));
    loss = 0.0;
    for (size_t gi = 0; gi < GROUPS && rc == 0; gi++) {
      const double t = ((double)gi + unif(&st)) * p->T / GROUPS;
      const uint64_t s2 = seed + 7919ULL * (it * GROUPS + gi + 1);
      if (p->ou != NULL) {
        rc = cnf_pde_ou_sample(p->ou, t, s2, S, x);
      } else {
        size_t k = (size_t)(t / dl);
        if (k >= BANK_LEVELS) k = BANK_LEVELS - 1;
        for (size_t b = 0; b < S; b++) {
          const size_t j = (size_t)(unif(&st) * BANK_PATHS) % BANK_PATHS;
          memcpy(x + b * d, bank + (k * BANK_PATHS + j) * d, d * sizeof(double));
        }
        rc = cnf_pde_dw_em(p->dw, s2, fmin((double)k * dl, t), t, EM_DT, S, x);
      }
      if (rc == 0) rc = cnf_dyn_f(p->field, t, S, x, NULL, v);
      if (rc == 0) rc = cnf_dyn_f(mlp, t, S, x, theta, vt);
      for (size_t i = 0; i < S * d && rc == 0; i++) {
        const double e = vt[i] - v[i];
        loss += e * e / (double)N;
        a[i] = 2.0 * e / (double)N;
      }
      if (rc == 0) rc = cnf_dyn_vjp(mlp, t, S, 0, x, theta, a, NULL, NULL, NULL, gz, g);
    }
    if (rc != 0) break;
    if (!isfinite(loss)) {
      cnf__cli_error(cmd, "the regression loss is not finite at iteration %zu", it + 1);
      status = CNF_CLI_EFAIL;
      goto cleanup;
    }
    to.lr = lr * 0.5 * (1.0 + cos(3.14159265358979323846 * (double)it / (double)iters));
    cnf_adam_update(&to, (long)it + 1, P, g, theta, m1, m2);
  }
  if (rc != 0) status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
  *final_loss = loss;
cleanup:
  free(x), free(v), free(vt), free(a), free(gz), free(g), free(m1), free(m2), free(bank);
  return status;
}

int cnf__cli_pde_times(const char *cmd, cnf_ctx *ctx, const run_args *a, const pde_setup *p,
                       cnf_dyn *dyn, const double *theta, const char *out_csv) {
  const size_t d = p->d, B = a->n;
  const size_t K = a->opt.trace == CNF_TRACE_EXACT ? 0 : a->opt.probes;
  int status = CNF_CLI_OK, rc = 0;
  double tout[NTIMES], table[NTIMES * 6];
  double *x0 = NULL, *z = NULL, *delta = NULL, *zo = NULL, *dout = NULL, *lp0 = NULL,
         *lp = NULL, *lh = NULL, *eps = NULL, *m = NULL, *S = NULL, *mh = NULL, *Sh = NULL;
  if ((x0 = cnf__cli_alloc(cmd, B, d, "samples", &status)) == NULL ||
      (z = cnf__cli_alloc(cmd, B, d, "samples", &status)) == NULL ||
      (zo = cnf__cli_alloc(cmd, NTIMES * B, d, "samples", &status)) == NULL ||
      (delta = cnf__cli_alloc(cmd, B, 1, "samples", &status)) == NULL ||
      (dout = cnf__cli_alloc(cmd, NTIMES * B, 1, "samples", &status)) == NULL ||
      (lp0 = cnf__cli_alloc(cmd, B, 1, "samples", &status)) == NULL ||
      (lp = cnf__cli_alloc(cmd, B, 1, "samples", &status)) == NULL ||
      (lh = cnf__cli_alloc(cmd, B, 1, "samples", &status)) == NULL ||
      (m = cnf__cli_alloc(cmd, d, 1, "moments", &status)) == NULL ||
      (mh = cnf__cli_alloc(cmd, d, 1, "moments", &status)) == NULL ||
      (S = cnf__cli_alloc(cmd, d, d, "moments", &status)) == NULL ||
      (Sh = cnf__cli_alloc(cmd, d, d, "moments", &status)) == NULL ||
      (K > 0 && (eps = cnf__cli_alloc(cmd, K * B, d, "probes", &status)) == NULL))
    goto cleanup;
  for (size_t k = 0; k < NTIMES; k++) tout[k] = p->T * (double)k / (NTIMES - 1);
  /* samples of p0 */
  if (p->ou != NULL) {
    rc = cnf_probes_draw(CNF_TRACE_GAUSS, a->seed ^ 0x5a3b1eULL, 1, B, d, x0);
    for (size_t b = 0; b < B && rc == 0; b++) lp0[b] = cnf_log_normal(x0 + b * d, d);
  } else {
    rc = cnf_pde_dw_sample0(p->dw, a->seed ^ 0x5a3b1eULL, B, x0);
    if (rc == 0) rc = cnf_pde_dw_logp0(p->dw, B, x0, lp0);
  }
  if (rc == 0 && K > 0) rc = cnf_probes_draw(a->opt.trace, a->seed ^ 0x9e0beULL, K, B, d, eps);
  memcpy(z, x0, B * d * sizeof(double));
  memset(delta, 0, B * sizeof(double));
  cnf_stats st;
  cnf_stats_clear(&st);
  const double w0 = cnf__cli_now();
  if (rc == 0)
    rc = cnf_dyn_solve_times(dyn, theta, &a->opt, 0.0, NTIMES, tout, B, K, eps, z, delta, zo,
                             dout, &st);
  const double wall = cnf__cli_now() - w0;
  double lmean = 0, lmax = 0, w2 = 0, left = 0, left_ref = 0;
  for (size_t k = 0; k < NTIMES && rc == 0; k++) {
    const double t = tout[k];
    const double *zk = zo + k * B * d;
    for (size_t b = 0; b < B; b++) lh[b] = lp0[b] + dout[k * B + b];
    rc = p->ou != NULL ? cnf_pde_ou_logp(p->ou, t, B, zk, lp) : cnf_pde_dw_logp(p->dw, t, B, zk, lp);
    if (rc != 0) break;
    cnf_pde_lpe(B, lh, lp, &lmean, &lmax);
    if (p->ou != NULL) {
      cnf_pde_gauss_err ge;
      cnf_pde_ou_moments(p->ou, t, m, S);
      rc = cnf_pde_sample_moments(d, B, zk, mh, Sh);
      if (rc == 0) rc = cnf_pde_gauss_errors(ctx, d, mh, Sh, m, S, &ge);
      w2 = rc == 0 ? sqrt(ge.w2sq) : NAN;
    } else {
      rc = cnf_pde_dw_w2_marginals(ctx, p->dw, t, B, zk, &w2);
      /* the fraction of coordinates y_i = (Q^T x)_i left of 0 */
      left = 0.0;
      for (size_t b = 0; b < B && rc == 0; b++) {
        double acc = 0.0;
        for (size_t i = 0; i < d; i++) {
          double yi = 0.0;
          for (size_t j = 0; j < d; j++) yi += (p->Q ? p->Q[j * d + i] : (double)(i == j)) * zk[b * d + j];
          acc += yi < 0;
        }
        left += acc / (double)(B * d);
      }
      left_ref = cnf_pde_dw_mass_left(p->dw, t);
    }
    double *row = table + k * 6;
    row[0] = t, row[1] = lmean, row[2] = lmax, row[3] = w2, row[4] = left, row[5] = left_ref;
    printf("lpe_mean@%g %.6g\nw2@%g %.6g\n", t, lmean, t, w2);
    if (p->dw != NULL) printf("mass_left@%g %.6g\nmass_left_ref@%g %.6g\n", t, left, t, left_ref);
  }
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  /* the final time */
  printf("lpe_mean %.6g\nlpe_max %.6g\nlpe_per_dim %.6g\nw2 %.6g\n", lmean, lmax,
         lmean / (double)d, w2);
  if (p->dw != NULL) {
    /* KL(p_T || p_inf): the reference's, and the flow's estimate
     * mean(log p_hat(x_T) - log p_inf(x_T)) over its own samples */
    double kl = 0.0;
    rc = cnf_pde_dw_logp_inf(p->dw, B, zo + (NTIMES - 1) * B * d, lp);
    for (size_t b = 0; b < B && rc == 0; b++) kl += (lh[b] - lp[b]) / (double)B;
    printf("mass_left %.6g\nmass_left_ref %.6g\nkl_inf_ref %.6g\nkl_inf_flow %.6g\n", left,
           left_ref, cnf_pde_dw_kl_inf(p->dw, p->T), kl);
  }
  printf("solves %ld\nnfe %ld\nnsteps %ld\nnetf %ld\nnni %ld\nnjtv %ld\nnli %ld\nwall_seconds "
         "%.6f\n",
         st.solves, st.nfe, st.nsteps, st.netf, st.nni, st.njtv, st.nli, wall);
  cnf__cli_print_trace_var(&st);
  if (out_csv != NULL) {
    static const char *const names[] = {"t", "lpe_mean", "lpe_max", "w2", "mass_left",
                                        "mass_left_ref"};
    const size_t cols = p->dw != NULL ? 6 : 4; /* OU: no well masses */
    for (size_t k = 0; k < NTIMES; k++)
      for (size_t c = 0; c < cols; c++) table[k * cols + c] = table[k * 6 + c];
    status = cnf__cli_write_table(cmd, ctx, out_csv, names, NTIMES, cols, table);
  }
cleanup:
  free(x0), free(z), free(delta), free(zo), free(dout), free(lp0), free(lp), free(lh), free(eps);
  free(m), free(S), free(mh), free(Sh);
  return status;
}

int cnf__cli_pde_plot(const char *cmd, cnf_ctx *ctx, const run_args *a, const pde_setup *p,
                      cnf_dyn *dyn, const double *theta, const char *path) {
  enum { G = 400, NT = 4 };
  const double frac[NT] = {0.1, 0.25, 0.5, 1.0};
  static const unsigned char colours[NT][3] = {
      {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}};
  if (p->dw == NULL || p->d != 1) {
    cnf__cli_error(cmd, "--plot draws the 1-D double-well density: it needs --problem "
                        "double-well --dim 1");
    return CNF_CLI_EUSAGE;
  }
  double x[G], y[2 * NT * G], lp[G];
  unsigned char rgb[2 * NT * 3];
  int dashed[2 * NT];
  for (size_t i = 0; i < G; i++) x[i] = -3.5 + 7.0 * (double)i / (G - 1);
  cnf_density p0 = {p0_logp, NULL, p->dw};
  int rc = 0;
  for (size_t k = 0; k < NT && rc == 0; k++) {
    const double t = frac[k] * p->T;
    rc = cnf_pde_dw_logp(p->dw, t, G, x, lp);
    for (size_t i = 0; i < G; i++) y[(2 * k) * G + i] = exp(lp[i]);
    if (rc == 0)
      rc = cnf_dyn_logp_at(dyn, theta, &a->opt, &p0, 0.0, t, G, 0, NULL, x, lp, NULL);
    for (size_t i = 0; i < G; i++) y[(2 * k + 1) * G + i] = exp(lp[i]);
    for (int s = 0; s < 2; s++) {
      memcpy(rgb + (2 * k + (size_t)s) * 3, colours[k], 3);
      dashed[2 * k + (size_t)s] = s;
    }
  }
  char names[2 * NT][64], title[128];
  const char *keys[2 * NT];
  for (size_t k = 0; k < 2 * NT; k++) {
    snprintf(names[k], sizeof names[k], "%s, t = %g", k % 2 ? "CNF" : "reference",
             frac[k / 2] * p->T);
    keys[k] = names[k];
  }
  snprintf(title, sizeof title, "Double-well Fokker-Planck density, d = 1, T = %g", p->T);
  cnf_plot_options po;
  cnf_plot_options_default(&po);
  po.title = title, po.xlabel = "x", po.ylabel = "density p(t, x)", po.names = keys;
  if (rc == 0) rc = cnf_plot_lines_with(ctx, &po, path, 800, 480, G, x, 2 * NT, y, rgb, dashed);
  if (rc != 0) return cnf__cli_lib_fail(cmd, ctx, rc, 0);
  printf("plot %s\nplot_x_range -3.5 3.5\nplot_times", path);
  for (size_t k = 0; k < NT; k++) printf(" %g", frac[k] * p->T);
  printf("\n");
  return CNF_CLI_OK;
}
