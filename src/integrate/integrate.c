/* integrate.c: the integrands of cnf_integrate.h with their closed-form
 * integrals and log-gradients, the weighted estimate, and the uniform and
 * training-free (linear field) samplers.
 *
 * Integrands (alpha the peak width, c = -n log(alpha sqrt pi)):
 *   gauss  log f = c - |x - 1/2|^2 / alpha^2,
 *          grad  = -2 (x - 1/2) / alpha^2;
 *   camel  log f = c + log(1/2) + logsumexp(a_1, a_2),
 *          a_k = -|x - m_k|^2 / alpha^2, m_1 = 1/3, m_2 = 2/3 (all coordinates),
 *          grad  = -2 sum_k pi_k (x - m_k) / alpha^2, pi = softmax(a);
 *   poly   log f = log S, S = sum x_i (1 - x_i), grad_i = (1 - 2 x_i) / S.
 * Each one-dimensional factor of gauss integrates to
 *   int_0^1 exp(-(x - 1/2)^2 / alpha^2) dx / (alpha sqrt pi) = erf(1/(2 alpha)),
 * and of camel's first peak to (erf(2/(3 alpha)) + erf(1/(3 alpha))) / 2 (the
 * second peak, its mirror image, gives the same).
 *
 * The training-free sampler: x' = kappa x + beta from x(0) = z gives
 *   x(t) = e^{kappa t} z + (beta / kappa)(e^{kappa t} - 1),
 * so beta = kappa / (2 (e^kappa - 1)) puts the mean of x(1) at 1/2, and
 * tr J = n kappa gives Delta(1) = -n kappa: log q(x(1)) = log N(z) + n |kappa|,
 * the density of N(1/2, e^{2 kappa} I) = N(1/2, alpha^2/2 I).  Its Gauss
 * weights are then exactly the cube's indicator. */
#include <gsl/gsl_rng.h>
#include <math.h>
#include <string.h>

#include "cnf_integrate.h"
#include "core.h"
#include "integrate_impl.h"

#define LOG_SQRT_PI 0.57236494292470008707 /* log(sqrt(pi)) */
#define LN2 0.69314718055994530942
#define SQRT2 1.41421356237309504880

static const char *const kind_names[] = {"gauss", "camel", "poly"};

const char *cnf_integrand_name(cnf_integrand_kind k) {
  return (unsigned)k < 3 ? kind_names[k] : "?";
}

int cnf_integrand_parse(const char *s, cnf_integrand_kind *out) {
  for (int i = 0; s != NULL && i < 3; i++)
    if (strcmp(s, kind_names[i]) == 0) {
      *out = (cnf_integrand_kind)i;
      return 0;
    }
  return CNF_EINVAL;
}

static int valid(const cnf_integrand *f) {
  return f != NULL && (unsigned)f->kind < 3 && f->dim > 0 &&
         (f->kind == CNF_INTEGRAND_POLY || (f->alpha > 0 && isfinite(f->alpha)));
}

double cnf_integrand_exact(const cnf_integrand *f) {
  if (!valid(f)) return NAN;
  const double n = (double)f->dim, a = f->alpha;
  switch (f->kind) {
    case CNF_INTEGRAND_GAUSS:
      return pow(erf(1.0 / (2.0 * a)), n);
    case CNF_INTEGRAND_CAMEL:
      return pow(0.5 * (erf(1.0 / (3.0 * a)) + erf(2.0 / (3.0 * a))), n);
    default:
      return n / 6.0;
  }
}

int cnf_integrand_logf(const cnf_integrand *f, size_t B, const double *x, double *logf,
                       double *grad) {
  if (!valid(f) || (B > 0 && (x == NULL || logf == NULL))) return CNF_EINVAL;
  const size_t n = f->dim;
  const double ia2 = f->kind == CNF_INTEGRAND_POLY ? 0.0 : 1.0 / (f->alpha * f->alpha);
  const double c = f->kind == CNF_INTEGRAND_POLY ? 0.0 : -(double)n * (log(f->alpha) + LOG_SQRT_PI);
  for (size_t b = 0; b < B; b++) {
    const double *xb = x + b * n;
    double *gb = grad != NULL ? grad + b * n : NULL;
    int inside = 1;
    for (size_t i = 0; i < n; i++)
      if (!(xb[i] >= 0.0 && xb[i] <= 1.0)) inside = 0; /* NaN counts as outside */
    if (!inside) {
      logf[b] = -INFINITY;
      if (gb != NULL) memset(gb, 0, n * sizeof(double));
      continue;
    }
    if (f->kind == CNF_INTEGRAND_GAUSS) {
      double q = 0.0;
      for (size_t i = 0; i < n; i++) q += (xb[i] - 0.5) * (xb[i] - 0.5);
      logf[b] = c - q * ia2;
      if (gb != NULL)
        for (size_t i = 0; i < n; i++) gb[i] = -2.0 * ia2 * (xb[i] - 0.5);
    } else if (f->kind == CNF_INTEGRAND_CAMEL) {
      double q1 = 0.0, q2 = 0.0;
      for (size_t i = 0; i < n; i++) {
        q1 += (xb[i] - 1.0 / 3.0) * (xb[i] - 1.0 / 3.0);
        q2 += (xb[i] - 2.0 / 3.0) * (xb[i] - 2.0 / 3.0);
      }
      const double a1 = -q1 * ia2, a2 = -q2 * ia2, m = fmax(a1, a2);
      const double e1 = exp(a1 - m), e2 = exp(a2 - m);
      logf[b] = c - LN2 + m + log(e1 + e2);
      if (gb != NULL) {
        const double p1 = e1 / (e1 + e2), p2 = 1.0 - p1;
        for (size_t i = 0; i < n; i++)
          gb[i] = -2.0 * ia2 * (p1 * (xb[i] - 1.0 / 3.0) + p2 * (xb[i] - 2.0 / 3.0));
      }
    } else {
      double S = 0.0;
      for (size_t i = 0; i < n; i++) S += xb[i] * (1.0 - xb[i]);
      logf[b] = S > 0 ? log(S) : -INFINITY;
      if (gb != NULL)
        for (size_t i = 0; i < n; i++) gb[i] = S > 0 ? (1.0 - 2.0 * xb[i]) / S : 0.0;
    }
  }
  return 0;
}

/* ---- the estimate ----------------------------------------------------------- */

int cnf_integrate_weights(cnf_ctx *ctx, const cnf_integrand *f, size_t N, const double *x,
                          const double *logq, double *w, cnf_integrate_result *res) {
  if (!valid(f) || N < 2 || x == NULL || logq == NULL || res == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "integrate: need a valid integrand, N >= 2 samples, "
                     "points, their log q and a result");
  const size_t n = f->dim, chunk = 1024;
  double lf[1024];
  double sum = 0.0, wmax = 0.0, sumlog = 0.0;
  size_t zeros = 0;
  /* two passes: the mean, then the squared deviations (no cancellation) */
  for (int pass = 0; pass < 2; pass++) {
    const double mean = sum / (double)N;
    double ss = 0.0;
    for (size_t b0 = 0; b0 < N; b0 += chunk) {
      const size_t Bc = N - b0 < chunk ? N - b0 : chunk;
      cnf_integrand_logf(f, Bc, x + b0 * n, lf, NULL);
      for (size_t b = 0; b < Bc; b++) {
        const double lq = logq[b0 + b];
        if (!isfinite(lq) && lf[b] != -INFINITY)
          return CNF_ERROR(ctx, CNF_ENONFINITE, "integrate: log q of sample %zu is %g", b0 + b, lq);
        const double wb = lf[b] == -INFINITY ? 0.0 : exp(lf[b] - lq);
        if (pass == 0) {
          sum += wb;
          if (wb > wmax) wmax = wb;
          if (wb == 0.0) zeros++;
          sumlog += lf[b] - lq; /* log w */
          if (w != NULL) w[b0 + b] = wb;
        } else {
          ss += (wb - mean) * (wb - mean);
        }
      }
    }
    if (pass == 1) {
      const double sd = sqrt(ss / (double)(N - 1));
      res->samples = N;
      res->estimate = mean;
      res->std_error = sd / sqrt((double)N);
      res->exact = cnf_integrand_exact(f);
      const double diff = mean - res->exact;
      res->pull = res->std_error > 0 ? diff / res->std_error
                  : diff == 0        ? 0.0
                                     : copysign(INFINITY, diff);
      res->rel_spread = mean > 0 ? sd / mean : INFINITY;
      res->efficiency = wmax > 0 ? mean / wmax : 0.0;
      res->zero_frac = (double)zeros / (double)N;
      res->kl = zeros > 0 ? NAN : log(res->exact) - sumlog / (double)N;
    }
  }
  if (!isfinite(sum))
    return CNF_ERROR(ctx, CNF_ENONFINITE, "integrate: the weights' sum overflowed");
  return 0;
}

/* ---- samplers -------------------------------------------------------------- */

int cnf_integrate_uniform(size_t n, size_t N, uint64_t seed, double *x, double *logq) {
  if (n == 0 || (N > 0 && (x == NULL || logq == NULL))) return CNF_EINVAL;
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (r == NULL) return CNF_ENOMEM;
  gsl_rng_set(r, cnf__seed32(seed));
  for (size_t i = 0; i < N * n; i++) x[i] = gsl_rng_uniform(r);
  for (size_t b = 0; b < N; b++) logq[b] = 0.0;
  gsl_rng_free(r);
  return 0;
}

static double linear_kappa(double alpha) {
  return log(alpha / SQRT2);
}

int cnf_integrate_linear_theta(size_t n, double alpha, double *theta) {
  const double kappa = linear_kappa(alpha);
  if (n == 0 || theta == NULL || !(alpha > 0) || !isfinite(alpha) || kappa == 0.0)
    return CNF_EINVAL;
  /* beta / kappa = 1 / (2 (e^kappa - 1)); expm1 keeps it accurate near 0 */
  const double beta = kappa / (2.0 * expm1(kappa));
  memset(theta, 0, (n * n + n) * sizeof(double));
  for (size_t i = 0; i < n; i++) {
    theta[i * n + i] = kappa;
    theta[n * n + i] = beta;
  }
  return 0;
}

int cnf_integrate_linear(cnf_ctx *ctx, size_t n, double alpha, const cnf_options *opt, size_t N,
                         uint64_t seed, double *x, double *logq, cnf_stats *st) {
  if (opt == NULL || x == NULL || logq == NULL || N == 0 || n == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "integrate: bad arguments to the linear sampler");
  cnf_options o;
  int rc = cnf__options_read(ctx, opt, &o);
  if (rc != 0) return rc;
  opt = &o;
  const size_t Bmax = opt->batch > 0 && opt->batch < N ? opt->batch : N;
  const size_t K = opt->trace == CNF_TRACE_EXACT ? 0 : (opt->probes > 0 ? opt->probes : 1);
  cnf_dyn *dyn = NULL;
  double *theta = NULL, *eps = NULL, *lz = NULL;
  CNF_TRY(cnf_dyn_linear_create(&dyn, ctx, n));
  theta = cnf__dalloc(ctx, n * n + n);
  lz = cnf__dalloc(ctx, Bmax);
  eps = K > 0 ? cnf__dalloc(ctx, K * Bmax * n) : NULL;
  if (theta == NULL || lz == NULL || (K > 0 && eps == NULL)) CNF_TRY(CNF_ENOMEM);
  if (cnf_integrate_linear_theta(n, alpha, theta) != 0)
    CNF_TRY(CNF_ERROR(ctx, CNF_EINVAL,
                      "integrate: the linear sampler needs alpha > 0, "
                      "alpha != sqrt 2 (got %g)",
                      alpha));
  CNF_TRY(cnf_probes_draw(CNF_TRACE_GAUSS, seed, 1, N, n, x)); /* z */
  for (size_t b = 0; b < N; b++) logq[b] = cnf_log_normal(x + b * n, n);
  for (size_t b0 = 0, c = 0; b0 < N; b0 += Bmax, c++) {
    const size_t Bc = N - b0 < Bmax ? N - b0 : Bmax;
    double *delta = logq + b0; /* Delta lands on log N(z) ... */
    memcpy(lz, delta, Bc * sizeof(double));
    memset(delta, 0, Bc * sizeof(double));
    if (K > 0)
      rc = cnf_probes_draw(opt->trace, cnf_seed_derive(seed, CNF__IS_LINEAR_PROBES, c), K, Bc,
                           n, eps);
    if (rc == 0) rc = cnf_dyn_solve(dyn, theta, opt, 0.0, 1.0, Bc, K, eps, x + b0 * n, delta, st);
    for (size_t b = 0; b < Bc; b++) delta[b] += lz[b]; /* ... and log N(z) is added back */
    if (rc != 0) goto cleanup;
  }
cleanup:
  cnf__free(theta);
  cnf__free(lz);
  cnf__free(eps);
  cnf_dyn_free(dyn);
  return rc;
}
