/* learned.c: the learned importance sampler of cnf_integrate.h: an MLP
 * field carries z ~ N(0, I) on t in [0, 1] to y = z(1), and x = s(y)
 * (the logistic sigmoid, coordinate by coordinate) lands in the open cube.
 * With Delta(1) = -int_0^1 tr J dt (cnf_dyn_solve's convention),
 *
 *     log q(x) = log N(z) + Delta(1) - sum_i log s'(y_i),
 *     log s'(y) = log s(y) + log s(-y) = -|y| - 2 log(1 + e^{-|y|}).
 *
 * Training minimises L = E_z[log q(x) - log f(x)] = KL(q || f / I) - log I
 * over theta by the reparameterisation: z is held fixed, so L depends on
 * theta through y and Delta(1) only, and its terminal seeds are
 *
 *     dL/dy_i = d/dy_i [-log s'(y_i) - log f(s(y))] / B
 *             = [(2 s(y_i) - 1) - (d log f / dx_i) s'(y_i)] / B,
 *     dL/dDelta = 1 / B,
 *
 * (d log s'(y) / dy = (1 - s) - s = 1 - 2 s), which cnf_dyn_grad carries
 * back to dL/dtheta.  Adam (cnf_adam_update) takes the steps. */
#include <math.h>
#include <string.h>

#include "cnf_integrate.h"
#include "core.h"
#include "integrate_impl.h"

struct cnf_integrate_flow {
  cnf_ctx *ctx;
  cnf_dyn *dyn;
  cnf_mlp_config cfg;
  size_t n, P;
  double *theta, *grad, *m, *v; /* (P) each: parameters, gradient, Adam moments */
  long steps;                   /* Adam updates made */
  long iter;                    /* training steps tried (seeds the batches) */
  /* the terminal loss's workspace, sized for Bcap rows */
  size_t Bcap;
  double *logn, *x, *lf, *g; /* (B), (B, n), (B), (B, n) */
};

static inline double sigmoid(double y) {
  if (y >= 0) return 1.0 / (1.0 + exp(-y));
  const double e = exp(y);
  return e / (1.0 + e);
}

static inline double log_dsigmoid(double y) {
  return -fabs(y) - 2.0 * log1p(exp(-fabs(y)));
}

int cnf_integrate_flow_create(cnf_integrate_flow **out, cnf_ctx *ctx, const cnf_mlp_config *cfg,
                              uint64_t seed, double init_scale) {
  if (out == NULL || cfg == NULL || !(init_scale >= 0) || !isfinite(init_scale))
    return CNF_ERROR(ctx, CNF_EINVAL, "integrate: a flow needs a network and init_scale >= 0");
  *out = NULL;
  const size_t P = cnf_mlp_param_count(cfg);
  if (P == 0) return CNF_ERROR(ctx, CNF_EINVAL, "integrate: invalid network configuration");
  int rc = 0;
  cnf_integrate_flow *fl = cnf__calloc(1, sizeof *fl);
  if (fl == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "integrate: out of memory");
  fl->ctx = ctx;
  fl->cfg = *cfg;
  fl->n = cfg->dim;
  fl->P = P;
  CNF_TRY(cnf_dyn_mlp_create(&fl->dyn, ctx, cfg));
  fl->theta = cnf__dalloc(ctx, P);
  fl->grad = cnf__dalloc(ctx, P);
  fl->m = cnf__dalloc(ctx, P);
  fl->v = cnf__dalloc(ctx, P);
  if (!fl->theta || !fl->grad || !fl->m || !fl->v) CNF_TRY(CNF_ENOMEM);
  memset(fl->m, 0, P * sizeof(double));
  memset(fl->v, 0, P * sizeof(double));
  CNF_TRY(cnf_mlp_init_params(cfg, seed, fl->theta));
  /* the last layer: W (n, H), b (n), then wb, wg, bg (concatsquash) or wt
   * (concat); scale everything but the gate (wg, bg) */
  {
    const size_t H = cfg->n_hidden > 0 ? cfg->hidden[cfg->n_hidden - 1] : cfg->dim, n = cfg->dim;
    const size_t extra = cfg->layer == CNF_LAYER_CONCATSQUASH ? 3
                         : cfg->layer == CNF_LAYER_CONCAT     ? 1
                                                              : 0;
    const size_t scaled = n * H + n + (extra > 0 ? n : 0);
    double *last = fl->theta + P - (n * H + n + extra * n);
    for (size_t i = 0; i < scaled; i++) last[i] *= init_scale;
  }
  *out = fl;
  return 0;
cleanup:
  cnf_integrate_flow_free(fl);
  return rc;
}

static void free_work(cnf_integrate_flow *fl) {
  cnf__free(fl->logn), cnf__free(fl->x), cnf__free(fl->lf), cnf__free(fl->g);
  fl->logn = fl->x = fl->lf = fl->g = NULL;
  fl->Bcap = 0;
}

void cnf_integrate_flow_free(cnf_integrate_flow *fl) {
  if (fl == NULL) return;
  cnf_dyn_free(fl->dyn);
  cnf__free(fl->theta), cnf__free(fl->grad), cnf__free(fl->m), cnf__free(fl->v);
  free_work(fl);
  cnf__free(fl);
}

int cnf_integrate_flow_set_threads(cnf_integrate_flow *fl, size_t n) {
  if (fl == NULL) return CNF_EINVAL;
  return cnf_dyn_mlp_set_threads(fl->dyn, n);
}

size_t cnf_integrate_flow_param_count(const cnf_integrate_flow *fl) {
  return fl ? fl->P : 0;
}
double *cnf_integrate_flow_params(cnf_integrate_flow *fl) {
  return fl ? fl->theta : NULL;
}

static int reserve(cnf_integrate_flow *fl, size_t B) {
  if (B <= fl->Bcap) return 0;
  free_work(fl);
  fl->logn = cnf__dalloc(fl->ctx, B);
  fl->x = cnf__dalloc(fl->ctx, B * fl->n);
  fl->lf = cnf__dalloc(fl->ctx, B);
  fl->g = cnf__dalloc(fl->ctx, B * fl->n);
  if (!fl->logn || !fl->x || !fl->lf || !fl->g) {
    free_work(fl);
    return CNF_ENOMEM;
  }
  fl->Bcap = B;
  return 0;
}

typedef struct kl_user {
  cnf_integrate_flow *fl;
  const cnf_integrand *f;
} kl_user;

/* The terminal loss of cnf_dyn_grad (see the top of the file). */
static int kl_loss(void *user, size_t B, size_t n, const double *y, const double *delta,
                   double *loss, double *gy, double *gdelta) {
  kl_user *u = user;
  cnf_integrate_flow *fl = u->fl;
  double *x = fl->x, *lf = fl->lf, *g = fl->g;
  for (size_t i = 0; i < B * n; i++) x[i] = sigmoid(y[i]);
  int rc = cnf_integrand_logf(u->f, B, x, lf, g);
  if (rc != 0) return rc;
  const double iB = 1.0 / (double)B;
  double L = 0.0;
  for (size_t b = 0; b < B; b++) {
    double lq = fl->logn[b] + delta[b];
    for (size_t i = 0; i < n; i++) {
      const double yi = y[b * n + i], s = x[b * n + i], ds = s * sigmoid(-yi);
      lq -= log_dsigmoid(yi);
      gy[b * n + i] = iB * ((2.0 * s - 1.0) - g[b * n + i] * ds);
    }
    L += lq - lf[b];
    gdelta[b] = iB;
  }
  *loss = L * iB;
  return isfinite(*loss) ? 0 : CNF_ENONFINITE;
}

int cnf_integrate_flow_loss_grad(cnf_integrate_flow *fl, const cnf_integrand *f,
                                 const cnf_options *opt, size_t B, const double *z, size_t K,
                                 const double *eps, double *loss, double *grad, cnf_stats *fwd,
                                 cnf_stats *bwd) {
  if (fl == NULL || f == NULL || opt == NULL || z == NULL || loss == NULL || B == 0 ||
      (eps != NULL && K == 0))
    return CNF_ERROR(fl ? fl->ctx : NULL, CNF_EINVAL, "integrate: bad arguments to loss_grad");
  if (f->dim != fl->n)
    return CNF_ERROR(fl->ctx, CNF_EDIM, "integrate: the integrand has n = %zu, the flow %zu",
                     f->dim, fl->n);
  int rc = reserve(fl, B);
  if (rc != 0) return CNF_ERROR(fl->ctx, rc, "integrate: out of memory for %zu rows", B);
  for (size_t b = 0; b < B; b++) fl->logn[b] = cnf_log_normal(z + b * fl->n, fl->n);
  kl_user u = {fl, f};
  rc = cnf_dyn_grad(fl->dyn, fl->theta, opt, 0.0, 1.0, B, eps ? K : 0, eps, z, kl_loss, &u, loss,
                    NULL, NULL, NULL, grad, fwd, bwd);
  if (rc == CNF_ENONFINITE && cnf_ctx_errcode(fl->ctx) != CNF_ENONFINITE)
    rc = CNF_ERROR(fl->ctx, rc, "integrate: the loss is not finite (a sample left the cube?)");
  return rc;
}

int cnf_integrate_flow_train(cnf_integrate_flow *fl, const cnf_integrand *f, const cnf_options *opt,
                             const cnf_train_options *to, size_t iters, size_t B, uint64_t seed,
                             double *losses, cnf_stats *fwd, cnf_stats *bwd) {
  if (fl == NULL || to == NULL || opt == NULL || B == 0 || !(to->lr > 0))
    return CNF_ERROR(fl ? fl->ctx : NULL, CNF_EINVAL, "integrate: bad arguments to train");
  cnf_options o;
  int rc = cnf__options_read(fl->ctx, opt, &o);
  if (rc != 0) return rc;
  opt = &o;
  const size_t n = fl->n;
  const size_t K = opt->trace == CNF_TRACE_EXACT ? 0 : (opt->probes > 0 ? opt->probes : 1);
  double *z = cnf__dalloc(fl->ctx, B * n), *eps = K ? cnf__dalloc(fl->ctx, K * B * n) : NULL;
  if (z == NULL || (K > 0 && eps == NULL)) CNF_TRY(CNF_ENOMEM);
  for (size_t it = 0; it < iters; it++) {
    const uint64_t i = (uint64_t)fl->iter++;
    CNF_TRY(cnf_probes_draw(CNF_TRACE_GAUSS, cnf_seed_derive(seed, CNF__IS_TRAIN_POINTS, i),
                            1, B, n, z));
    if (K > 0)
      CNF_TRY(cnf_probes_draw(opt->trace, cnf_seed_derive(seed, CNF__IS_TRAIN_PROBES, i), K,
                              B, n, eps));
    double L = 0.0;
    CNF_TRY(cnf_integrate_flow_loss_grad(fl, f, opt, B, z, K, eps, &L, fl->grad, fwd, bwd));
    for (size_t p = 0; p < fl->P; p++)
      if (!isfinite(fl->grad[p]))
        CNF_TRY(CNF_ERROR(fl->ctx, CNF_ENONFINITE, "integrate: non-finite gradient at step %zu",
                          (size_t)i));
    if (losses != NULL) losses[it] = L;
    cnf_adam_update(to, ++fl->steps, fl->P, fl->grad, fl->theta, fl->m, fl->v);
  }
cleanup:
  cnf__free(z);
  cnf__free(eps);
  return rc;
}

int cnf_integrate_flow_sample(cnf_integrate_flow *fl, const cnf_options *opt, size_t N,
                              uint64_t seed, double *x, double *logq, double *y, cnf_stats *st) {
  if (fl == NULL || opt == NULL || x == NULL || logq == NULL || N == 0)
    return CNF_ERROR(fl ? fl->ctx : NULL, CNF_EINVAL, "integrate: bad arguments to sample");
  cnf_options o;
  int rc = cnf__options_read(fl->ctx, opt, &o);
  if (rc != 0) return rc;
  opt = &o;
  const size_t n = fl->n, Bmax = opt->batch > 0 && opt->batch < N ? opt->batch : N;
  const size_t K = opt->trace == CNF_TRACE_EXACT ? 0 : (opt->probes > 0 ? opt->probes : 1);
  double *eps = K ? cnf__dalloc(fl->ctx, K * Bmax * n) : NULL, *lz = cnf__dalloc(fl->ctx, Bmax);
  if (lz == NULL || (K > 0 && eps == NULL)) CNF_TRY(CNF_ENOMEM);
  CNF_TRY(cnf_probes_draw(CNF_TRACE_GAUSS, cnf_seed_derive(seed, CNF__IS_SAMPLE_POINTS, 0), 1,
                          N, n, x)); /* z, then y */
  for (size_t b0 = 0, c = 0; b0 < N; b0 += Bmax, c++) {
    const size_t Bc = N - b0 < Bmax ? N - b0 : Bmax;
    double *yc = x + b0 * n, *delta = logq + b0;
    for (size_t b = 0; b < Bc; b++) lz[b] = cnf_log_normal(yc + b * n, n);
    memset(delta, 0, Bc * sizeof(double));
    if (K > 0)
      CNF_TRY(cnf_probes_draw(opt->trace, cnf_seed_derive(seed, CNF__IS_SAMPLE_PROBES, c), K,
                              Bc, n, eps));
    CNF_TRY(cnf_dyn_solve(fl->dyn, fl->theta, opt, 0.0, 1.0, Bc, K, eps, yc, delta, st));
    for (size_t b = 0; b < Bc; b++) {
      double lq = lz[b] + delta[b];
      for (size_t i = 0; i < n; i++) lq -= log_dsigmoid(yc[b * n + i]);
      delta[b] = lq;
    }
  }
  if (y != NULL) memcpy(y, x, N * n * sizeof(double));
  for (size_t i = 0; i < N * n; i++) x[i] = sigmoid(x[i]);
cleanup:
  cnf__free(eps);
  cnf__free(lz);
  return rc;
}

/* log N(x; 0, I) of the base, the initial density of cnf_dyn_logp_at. */
static int base_logp(void *user, size_t B, size_t D, const double *x, double *logp) {
  (void)user;
  for (size_t b = 0; b < B; b++) logp[b] = cnf_log_normal(x + b * D, D);
  return 0;
}

int cnf_integrate_flow_logq(cnf_integrate_flow *fl, const cnf_options *opt, size_t N,
                            const double *x, uint64_t seed, double *logq, cnf_stats *st) {
  if (fl == NULL || opt == NULL || x == NULL || logq == NULL || N == 0)
    return CNF_ERROR(fl ? fl->ctx : NULL, CNF_EINVAL, "integrate: bad arguments to logq");
  cnf_options o;
  int rc = cnf__options_read(fl->ctx, opt, &o);
  if (rc != 0) return rc;
  opt = &o;
  const size_t n = fl->n, Bmax = opt->batch > 0 && opt->batch < N ? opt->batch : N;
  const size_t K = opt->trace == CNF_TRACE_EXACT ? 0 : (opt->probes > 0 ? opt->probes : 1);
  double *y = cnf__dalloc(fl->ctx, Bmax * n), *eps = K ? cnf__dalloc(fl->ctx, K * Bmax * n) : NULL;
  size_t *idx = cnf__calloc(Bmax, sizeof *idx);
  const cnf_density p0 = {base_logp, NULL, NULL};
  if (y == NULL || idx == NULL || (K > 0 && eps == NULL)) CNF_TRY(CNF_ENOMEM);
  for (size_t b0 = 0, c = 0; b0 < N; b0 += Bmax, c++) {
    const size_t Bc = N - b0 < Bmax ? N - b0 : Bmax;
    /* the rows strictly inside the cube, as y = logit(x) */
    size_t m = 0;
    for (size_t b = 0; b < Bc; b++) {
      const double *xb = x + (b0 + b) * n;
      int inside = 1;
      for (size_t i = 0; i < n; i++) inside &= xb[i] > 0.0 && xb[i] < 1.0;
      logq[b0 + b] = -INFINITY;
      if (!inside) continue;
      for (size_t i = 0; i < n; i++) y[m * n + i] = log(xb[i]) - log1p(-xb[i]);
      idx[m++] = b0 + b;
    }
    if (m == 0) continue;
    if (K > 0)
      CNF_TRY(cnf_probes_draw(opt->trace, cnf_seed_derive(seed, CNF__IS_LOGQ_PROBES, c), K, m,
                              n, eps));
    if (reserve(fl, m) != 0) CNF_TRY(CNF_ERROR(fl->ctx, CNF_ENOMEM, "integrate: out of memory"));
    double *lp = fl->lf; /* the loss's workspace, free between calls */
    CNF_TRY(cnf_dyn_logp_at(fl->dyn, fl->theta, opt, &p0, 0.0, 1.0, m, K, eps, y, lp, st));
    for (size_t j = 0; j < m; j++) {
      double lq = lp[j];
      for (size_t i = 0; i < n; i++) lq -= log_dsigmoid(y[j * n + i]);
      logq[idx[j]] = lq;
    }
  }
cleanup:
  cnf__free(y);
  cnf__free(eps);
  cnf__free(idx);
  return rc;
}

int cnf_integrate_flow_sample_defensive(cnf_integrate_flow *fl, const cnf_options *opt, size_t N,
                                        double lam, uint64_t seed, double *x, double *logq,
                                        cnf_stats *st) {
  if (fl == NULL || !(lam >= 0 && lam <= 1))
    return CNF_ERROR(fl ? fl->ctx : NULL, CNF_EINVAL,
                     "integrate: the defensive share must lie in [0, 1] (got %g)", lam);
  const size_t n = fl->n, Nu = (size_t)floor(lam * (double)N + 0.5), Nq = N - Nu;
  const double l = (double)Nu / (double)N;
  int rc = 0;
  if (Nu > 0) {
    CNF_TRY(cnf_integrate_uniform(n, Nu, cnf_seed_derive(seed, CNF__IS_UNIFORM, 0), x, logq));
    CNF_TRY(cnf_integrate_flow_logq(fl, opt, Nu, x, seed, logq, st));
  }
  if (Nq > 0)
    CNF_TRY(cnf_integrate_flow_sample(fl, opt, Nq, seed, x + Nu * n, logq + Nu, NULL, st));
  /* log((1 - l) q + l), computed without overflow either way */
  for (size_t b = 0; b < N && l > 0; b++) {
    const double a = log1p(-l) + logq[b], c = log(l), mx = fmax(a, c);
    logq[b] = l == 1 ? c : mx + log1p(exp(fmin(a, c) - mx));
  }
cleanup:
  return rc;
}
