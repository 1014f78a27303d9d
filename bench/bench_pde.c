/* bench_pde.c: the cost and accuracy of carrying samples through the PDE
 * fields of cnf_pde.h, exact trace against Hutchinson.
 *
 * Problems: P2 (heat equation from a Gaussian mixture, T = 1) and P3
 * (Ornstein-Uhlenbeck, T = 2), d = 10, 100, 1000.  For each: B samples of
 * p0 (B = 1000, or 100 at d = 1000) are integrated as one system by
 * cnf_dyn_solve (Adams, rtol = atol = 1e-8) with
 *
 *   exact   the field's own divergence (closed form: O(d) per sample for
 *           P2, a constant for P3)
 *   K = 1, 4, 16   Hutchinson with K Gaussian probes per sample, held fixed
 *           along each trajectory, from the field's jvp
 *
 * and the table reports the time per 1000 samples (the process's CPU time
 * of the solve, which leaves out waiting for a core on a shared machine,
 * and beside it the wall time; scaled by 1000 / B; the best of up to 3
 * runs while they total under a second of CPU time; run with
 * OPENBLAS_NUM_THREADS=1 so that CPU time is the one thread's), the
 * right-hand-side evaluations (NFE), the mean LPE against the
 * closed-form log p_T, and Hutchinson's empirical variance of one probe
 * (cnf_stats' trace_var, K >= 2).
 *
 * Usage: bench_pde [--quick] (d = 10, 100 only).  Markdown on standard
 * output, progress on standard error. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnf.h"
#include "cnf_dynamics.h"
#include "cnf_pde.h"

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now(void) { return clock_s(CLOCK_MONOTONIC); }
static double cpu(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }

static void *xalloc(size_t n) {
  void *p = calloc(n ? n : 1, 1);
  if (p == NULL) {
    fprintf(stderr, "bench_pde: out of memory\n");
    exit(1);
  }
  return p;
}

typedef struct problem {
  const char *name;
  double T;
  cnf_pde_heat *heat;
  cnf_pde_ou *ou;
} problem;

static int run_case(cnf_ctx *ctx, const problem *p, cnf_dyn *dyn, size_t d, size_t B, size_t K) {
  double *x0 = xalloc(B * d * sizeof(double)), *x = xalloc(B * d * sizeof(double));
  double *lp0 = xalloc(B * sizeof(double)), *lp = xalloc(B * sizeof(double));
  double *delta = xalloc(B * sizeof(double)), *eps = K ? xalloc(K * B * d * sizeof(double)) : NULL;
  int rc = 0;
  if (p->heat != NULL) {
    rc = cnf_pde_heat_sample(p->heat, 0.0, 1, B, x0);
    if (rc == 0) rc = cnf_pde_heat_logp(p->heat, 0.0, B, x0, lp0);
  } else {
    rc = cnf_probes_draw(CNF_TRACE_GAUSS, 1, 1, B, d, x0);
    for (size_t b = 0; b < B; b++) lp0[b] = cnf_log_normal(x0 + b * d, d);
  }
  if (rc == 0 && K > 0) rc = cnf_probes_draw(CNF_TRACE_GAUSS, 2, K, B, d, eps);
  cnf_options opt;
  cnf_options_default(&opt);
  opt.rtol = opt.atol = 1e-8;
  opt.max_steps = 1000000;
  double best = INFINITY, best_wall = INFINITY, total = 0.0;
  cnf_stats st;
  for (int rep = 0; rep < 3 && rc == 0 && total < 1.0; rep++) {
    memcpy(x, x0, B * d * sizeof(double));
    memset(delta, 0, B * sizeof(double));
    cnf_stats_clear(&st);
    const double t0 = now(), c0 = cpu();
    rc = cnf_dyn_solve(dyn, NULL, &opt, 0.0, p->T, B, K, eps, x, delta, &st);
    const double s = cpu() - c0, w = now() - t0;
    total += s;
    best = fmin(best, s);
    best_wall = fmin(best_wall, w);
  }
  if (rc == 0)
    rc = p->heat ? cnf_pde_heat_logp(p->heat, p->T, B, x, lp) : cnf_pde_ou_logp(p->ou, p->T, B, x, lp);
  if (rc == 0) {
    for (size_t b = 0; b < B; b++) lp0[b] += delta[b];
    double mean, max;
    cnf_pde_lpe(B, lp0, lp, &mean, &max);
    char var[32] = "";
    if (st.trace_var_n > 0) snprintf(var, sizeof var, "%.3g", st.trace_var_sum / (double)st.trace_var_n);
    char k[16];
    snprintf(k, sizeof k, "%zu", K);
    printf("| %s | %zu | %zu | %s | %.3g | %.3g | %ld | %.2e | %s |\n", p->name, d, B,
           K ? k : "exact", best * 1000.0 / (double)B, best_wall * 1000.0 / (double)B, st.nfe,
           mean, var);
    fflush(stdout);
  } else {
    fprintf(stderr, "bench_pde: %s d=%zu K=%zu: %s\n", p->name, d, K, cnf_ctx_errmsg(ctx));
  }
  free(x0), free(x), free(lp0), free(lp), free(delta), free(eps);
  return rc;
}

int main(int argc, char **argv) {
  int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  const size_t dims[] = {10, 100, 1000}, nd = quick ? 2 : 3;
  const size_t Ks[] = {0, 1, 4, 16};
  const char *thr = getenv("OPENBLAS_NUM_THREADS");
  printf("Adams, rtol = atol = 1e-8, Gaussian probes; OPENBLAS_NUM_THREADS=%s\n\n",
         thr ? thr : "(unset)");
  printf("| problem | d | B | trace (K) | CPU s / 1000 samples | wall s / 1000 | NFE | LPE mean "
         "| trace var |\n");
  printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0) return 1;
  int rc = 0;
  for (int pi = 0; pi < 2 && rc == 0; pi++)
    for (size_t i = 0; i < nd && rc == 0; i++) {
      const size_t d = dims[i], B = d >= 1000 ? 100 : 1000;
      problem p = {pi ? "P3 OU" : "P2 heat", pi ? 2.0 : 1.0, NULL, NULL};
      cnf_dyn *dyn = NULL;
      const double t0 = now();
      rc = pi ? cnf_pde_ou_create(&p.ou, ctx, d, 1) : cnf_pde_heat_create(&p.heat, ctx, d);
      if (rc == 0) rc = pi ? cnf_pde_ou_dyn(&dyn, ctx, p.ou) : cnf_pde_heat_dyn(&dyn, ctx, p.heat);
      fprintf(stderr, "%s d=%zu: set up in %.2f s\n", p.name, d, now() - t0);
      for (size_t k = 0; k < 4 && rc == 0; k++) {
        fprintf(stderr, "  K=%zu ...\n", Ks[k]);
        rc = run_case(ctx, &p, dyn, d, B, Ks[k]);
      }
      cnf_dyn_free(dyn);
      cnf_pde_heat_free(p.heat);
      cnf_pde_ou_free(p.ou);
    }
  if (rc != 0) fprintf(stderr, "bench_pde: %s\n", cnf_ctx_errmsg(ctx));
  cnf_ctx_free(ctx);
  return rc == 0 ? 0 : 1;
}
