/* metrics.c: a field's density against a problem's reference over time
 * (cnf_pde.h, "metrics over time").
 *
 * B samples x0 of p0 (stream "pde-x0") and, for Hutchinson's trace, K
 * probes per sample (stream "pde-probes") go through the field in one
 * solve with dx/dt = v, dDelta/dt = -div v, so that the computed density
 * is log p_hat_t(x(t)) = log p0(x0) + Delta(t).  At each output time t:
 *   LPE        mean and max over samples of |log p_hat_t - log p_t| at x(t);
 *   Gaussian   (P1a, P3) the samples' mean and covariance against m_t,
 *              Sigma_t, and the Gaussian W2^2 (cnf_pde_gauss_errors);
 *   P4         the marginals' 1-D W2 against the reference, the fraction
 *              of coordinates y = Q^T x below 0 against the reference's
 *              left-well mass; at the last time KL(p_t || p_inf) of the
 *              reference and the flow's estimate
 *              E_{x ~ p_hat}[log p_hat(x) - log p_inf(x)] over its samples.
 * Also the data of the 1-D density plot: the reference density and the
 * field's, the latter by backward solves to p0 (cnf_dyn_logp_at). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <string.h>
#include <time.h>

#include "cnf_pde.h"
#include "core.h"

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Workspace of one report; every pointer NULL or owned. */
typedef struct report_ws {
  double *tk;               /* (m) the times when the caller gave none */
  double *z, *delta;        /* (B, d), (B) */
  double *zo, *dout;        /* (m, B, d), (m, B) */
  double *lp0, *lp, *lh;    /* (B) each */
  double *eps;              /* (K, B, d) */
  double *mo, *S, *mh, *Sh; /* Gaussian: (d), (d, d), (d), (d, d) */
} report_ws;

static void report_ws_free(report_ws *w) {
  double *all[] = {w->tk, w->z,   w->delta, w->zo, w->dout, w->lp0, w->lp,
                   w->lh, w->eps, w->mo,    w->S,  w->mh,   w->Sh};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) cnf__free(all[i]);
}

/* The metrics of the samples zk (B, d) with computed log-densities lh (B)
 * at time t (lp: (B) scratch). */
static int metrics_at(cnf_ctx *ctx, cnf_pde_problem *pb, report_ws *w, size_t B, double t,
                      const double *zk, cnf_pde_metrics *row) {
  const size_t d = cnf_pde_problem_dim(pb);
  cnf_pde_dw *dw = cnf_pde_problem_dw(pb);
  row->t = t;
  row->lpe_mean = row->lpe_max = row->mean_rel = row->cov_rel = row->w2sq = row->w2 = NAN;
  row->mass_left = row->mass_left_ref = NAN;
  int rc = cnf_pde_problem_logp(pb, t, B, zk, w->lp);
  if (rc != 0) return rc;
  cnf_pde_lpe(B, w->lh, w->lp, &row->lpe_mean, &row->lpe_max);
  if (cnf_pde_problem_is_gaussian(pb)) {
    cnf_pde_gauss_err ge;
    if ((rc = cnf_pde_problem_moments(pb, t, w->mo, w->S)) != 0) return rc;
    if ((rc = cnf_pde_sample_moments(d, B, zk, w->mh, w->Sh)) != 0)
      return CNF_ERROR(ctx, rc, "PDE report: sample moments of %zu samples failed", B);
    if ((rc = cnf_pde_gauss_errors(ctx, d, w->mh, w->Sh, w->mo, w->S, &ge)) != 0) return rc;
    row->mean_rel = ge.mean_rel, row->cov_rel = ge.cov_rel, row->w2sq = ge.w2sq;
    row->w2 = sqrt(ge.w2sq);
  } else if (dw != NULL) {
    if ((rc = cnf_pde_dw_w2_marginals(ctx, dw, t, B, zk, &row->w2)) != 0) return rc;
    row->mass_left = cnf_pde_dw_left_fraction(dw, B, zk);
    row->mass_left_ref = cnf_pde_dw_mass_left(dw, t);
  }
  return 0;
}

int cnf_pde_report_times(cnf_ctx *ctx, cnf_pde_problem *pb, cnf_dyn *dyn, const double *theta,
                         const cnf_options *opt, size_t B, uint64_t seed, size_t m,
                         const double *times, cnf_pde_metrics *rows, cnf_pde_report *rep) {
  if (pb == NULL || dyn == NULL || opt == NULL || rows == NULL || m == 0 || B < 2)
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "PDE report: needs a problem, a field, options, m >= 1 rows and B >= 2 "
                     "samples (B = %zu, m = %zu)",
                     B, m);
  const size_t d = cnf_pde_problem_dim(pb);
  if (cnf_dyn_dim(dyn) != d)
    return CNF_ERROR(ctx, CNF_EDIM, "PDE report: the field has dimension %zu, the problem %zu",
                     cnf_dyn_dim(dyn), d);
  for (size_t k = 0; times != NULL && k < m; k++)
    if (!(times[k] >= 0) || (k > 0 && !(times[k] > times[k - 1])))
      return CNF_ERROR(ctx, CNF_EINVAL,
                       "PDE report: times must be >= 0 and increasing (time %zu is %g)", k,
                       times[k]);
  const size_t K = opt->trace == CNF_TRACE_EXACT ? 0 : opt->probes;
  const int gaussian = cnf_pde_problem_is_gaussian(pb);
  report_ws w;
  memset(&w, 0, sizeof w);
  int rc = 0;
  if ((times == NULL && (w.tk = cnf__dalloc(ctx, m)) == NULL) ||
      (w.z = cnf__dalloc(ctx, B * d)) == NULL || (w.delta = cnf__dalloc(ctx, B)) == NULL ||
      (w.zo = cnf__dalloc(ctx, m * B * d)) == NULL || (w.dout = cnf__dalloc(ctx, m * B)) == NULL ||
      (w.lp0 = cnf__dalloc(ctx, B)) == NULL || (w.lp = cnf__dalloc(ctx, B)) == NULL ||
      (w.lh = cnf__dalloc(ctx, B)) == NULL ||
      (K > 0 && (w.eps = cnf__dalloc(ctx, K * B * d)) == NULL) ||
      (gaussian &&
       ((w.mo = cnf__dalloc(ctx, d)) == NULL || (w.S = cnf__dalloc(ctx, d * d)) == NULL ||
        (w.mh = cnf__dalloc(ctx, d)) == NULL || (w.Sh = cnf__dalloc(ctx, d * d)) == NULL)))
    CNF_TRY(CNF_ENOMEM);
  const double T = cnf_pde_problem_time(pb);
  if (times == NULL) {
    for (size_t k = 0; k < m; k++) w.tk[k] = m == 1 ? T : T * (double)k / (double)(m - 1);
    times = w.tk;
  }

  /* samples of p0 and their log-densities, the probes */
  CNF_TRY(cnf_pde_problem_sample(pb, 0.0, cnf_seed_derive(seed, "pde-x0", 0), B, w.z));
  CNF_TRY(cnf_pde_problem_logp0(pb, B, w.z, w.lp0));
  if (K > 0) {
    rc = cnf_probes_draw(opt->trace, cnf_seed_derive(seed, "pde-probes", 0), K, B, d, w.eps);
    if (rc != 0) CNF_TRY(CNF_ERROR(ctx, rc, "PDE report: drawing %zu probes failed", K));
  }

  /* one solve: m = 1 straight to the time, else with dense output */
  cnf_stats st;
  cnf_stats_clear(&st);
  memset(w.delta, 0, B * sizeof(double)); /* Delta(0) = 0 */
  const double w0 = now_seconds();
  if (m > 1) {
    CNF_TRY(cnf_dyn_solve_times(dyn, theta, opt, 0.0, m, times, B, K, w.eps, w.z, w.delta, w.zo,
                                w.dout, &st));
  } else {
    if (times[0] > 0)
      CNF_TRY(cnf_dyn_solve(dyn, theta, opt, 0.0, times[0], B, K, w.eps, w.z, w.delta, &st));
    memcpy(w.zo, w.z, B * d * sizeof(double));
    memcpy(w.dout, w.delta, B * sizeof(double));
  }
  const double solve_seconds = now_seconds() - w0;

  for (size_t k = 0; k < m; k++) {
    const double *zk = w.zo + k * B * d;
    for (size_t b = 0; b < B; b++) w.lh[b] = w.lp0[b] + w.dout[k * B + b]; /* log p_hat */
    /* non-finite results are errors (cnf__check_finite), not NaN metrics */
    CNF_TRY(cnf__check_finite(ctx, "PDE report", "the field's sample", zk, B, d));
    CNF_TRY(cnf__check_finite(ctx, "PDE report", "the field's log-density", w.lh, B, 1));
    CNF_TRY(metrics_at(ctx, pb, &w, B, times[k], zk, rows + k));
  }
  if (rep != NULL) {
    rep->kl_inf_ref = rep->kl_inf_flow = NAN;
    cnf_pde_dw *dw = cnf_pde_problem_dw(pb);
    if (dw != NULL) { /* w.lh holds log p_hat at the last time */
      CNF_TRY(cnf_pde_dw_logp_inf(dw, B, w.zo + (m - 1) * B * d, w.lp));
      double kl = 0.0;
      for (size_t b = 0; b < B; b++) kl += (w.lh[b] - w.lp[b]) / (double)B;
      rep->kl_inf_flow = kl;
      rep->kl_inf_ref = cnf_pde_dw_kl_inf(dw, times[m - 1]);
    }
    rep->stats = st;
    rep->solve_seconds = solve_seconds;
  }
cleanup:
  report_ws_free(&w);
  return rc;
}

/* p0 of the problem as a cnf_density for cnf_dyn_logp_at */
static int p0_logp(void *user, size_t B, size_t D, const double *x, double *logp) {
  (void)D;
  return cnf_pde_problem_logp0(user, B, x, logp);
}

int cnf_pde_density_curves(cnf_ctx *ctx, cnf_pde_problem *pb, cnf_dyn *dyn, const double *theta,
                           const cnf_options *opt, double x_lo, double x_hi, size_t G, size_t nt,
                           const double *times, double *x, double *curves) {
  if (pb == NULL || dyn == NULL || opt == NULL || times == NULL || x == NULL || curves == NULL ||
      G < 2 || nt == 0 || !(x_hi > x_lo))
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "PDE density curves: bad arguments (G = %zu >= 2, nt = %zu >= 1, "
                     "[%g, %g])",
                     G, nt, x_lo, x_hi);
  if (cnf_pde_problem_dim(pb) != 1 || cnf_dyn_dim(dyn) != 1)
    return CNF_ERROR(ctx, CNF_EDIM, "PDE density curves: the problem and the field must be 1-D");
  double *lp = cnf__dalloc(ctx, G);
  if (lp == NULL) return CNF_ENOMEM;
  for (size_t i = 0; i < G; i++) x[i] = x_lo + (x_hi - x_lo) * (double)i / (double)(G - 1);
  cnf_density p0 = {p0_logp, NULL, pb};
  int rc = 0;
  for (size_t k = 0; k < nt && rc == 0; k++) {
    double *ref = curves + 2 * k * G, *mod = ref + G;
    rc = cnf_pde_problem_logp(pb, times[k], G, x, lp);
    for (size_t i = 0; i < G && rc == 0; i++) ref[i] = exp(lp[i]);
    if (rc == 0) rc = cnf_dyn_logp_at(dyn, theta, opt, &p0, 0.0, times[k], G, 0, NULL, x, lp, NULL);
    if (rc == 0)
      rc = cnf__check_finite(ctx, "PDE density curves", "the field's log-density", lp, G, 1);
    for (size_t i = 0; i < G && rc == 0; i++) mod[i] = exp(lp[i]);
  }
  cnf__free(lp);
  return rc;
}
