/* train.c: maximum-likelihood training with Adam.
 *
 * Step i (counting from 0) on a minibatch: seed the flow's generator with
 * a value derived from (seed, i), so the probes of the step are a function
 * of (seed, i) alone; compute L and dL/dtheta, dL/dT by the adjoint; then
 *
 *   g = dL/dtheta + wd theta,   m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
 *   theta -= lr (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps),
 *
 * t counting the updates made (a failed step updates nothing, so it does
 * not advance t, though it advances i so that a rerun draws a new batch)
 * (PyTorch's Adam with weight_decay).  The end time T_k = s_k^2 is trained
 * through s_k (dL/ds = 2 s dL/dT, no weight decay), as FFJORD
 * parameterises it, and kept above T_min. */
#include <math.h>
#include <string.h>

#include <gsl/gsl_rng.h>

#include "train_impl.h"

struct cnf_train {
  cnf_flow *flow;
  cnf_train_options to;
  double *grad;    /* (blocks * P + blocks): dL/dtheta, then dL/dT_k */
  double *grad_T;  /* (blocks), the tail of grad */
};

void cnf_train_options_default(cnf_train_options *to) {
  memset(to, 0, sizeof *to);
  to->lr = 1e-3;
  to->weight_decay = 1e-5;
  to->beta1 = 0.9;
  to->beta2 = 0.999;
  to->eps = 1e-8;
  to->learn_T = 1;
  to->T_min = 1e-3;
}

void cnf_flow_clear_train_state(cnf_flow *f) {
  cnf__train_state_free(f->train);
  f->train = NULL;
}

int cnf_train_create(cnf_train **out, cnf_flow *f, const cnf_train_options *to,
                     uint64_t seed) {
  if (f == NULL) return CNF_EINVAL;
  if (out == NULL || to == NULL)
    return CNF_ERROR(f->ctx, CNF_EINVAL, "train: %s is NULL", out == NULL ? "out" : "options");
  *out = NULL;
  if (!(to->lr > 0) || !(to->weight_decay >= 0) || !(to->beta1 >= 0 && to->beta1 < 1) ||
      !(to->beta2 >= 0 && to->beta2 < 1) || !(to->eps > 0) || !(to->T_min > 0))
    return CNF_ERROR(f->ctx, CNF_EINVAL, "train: need lr > 0, weight decay >= 0, "
                     "betas in [0, 1), eps > 0 and T_min > 0");
  const size_t n = f->blocks * f->P + f->blocks;
  if (f->train != NULL && f->train->n != n)
    return CNF_ERROR(f->ctx, CNF_ECORRUPT, "train: stored optimizer state has %zu entries, "
                     "the flow needs %zu", f->train->n, n);
  cnf_train *tr = cnf__calloc(1, sizeof *tr);
  if (tr == NULL) return CNF_ERROR(f->ctx, CNF_ENOMEM, "train: out of memory");
  tr->flow = f;
  tr->to = *to;
  tr->grad = cnf__dalloc(f->ctx, f->blocks * f->P + f->blocks);
  tr->grad_T = tr->grad ? tr->grad + f->blocks * f->P : NULL;
  if (f->train == NULL) {
    f->train = cnf__train_state_new(n);
    if (f->train != NULL) f->train->seed = seed;
  }
  if (tr->grad == NULL || tr->grad_T == NULL || f->train == NULL) {
    cnf_train_free(tr);
    return CNF_ERROR(f->ctx, CNF_ENOMEM, "train: out of memory");
  }
  *out = tr;
  return 0;
}

void cnf_train_free(cnf_train *tr) {
  if (tr == NULL) return;
  cnf__free(tr->grad);
  cnf__free(tr);
}

long cnf_train_iteration(const cnf_train *tr) { return tr->flow->train->iter; }
uint64_t cnf_train_seed(const cnf_train *tr) { return tr->flow->train->seed; }

int cnf_train_batch_indices(uint64_t seed, long iter, size_t N, size_t B,
                            size_t *idx) {
  if (idx == NULL || B == 0 || B > N) return CNF_EINVAL;
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (r == NULL) return CNF_ENOMEM;
  gsl_rng_set(r, cnf__seed32(cnf_seed_derive(seed, "batch", (uint64_t)iter)));
  /* Floyd's algorithm: B distinct indices without an N-sized array, then
   * a shuffle so their order is random too */
  size_t n = 0;
  for (size_t j = N - B; j < N; j++) {
    size_t t = gsl_rng_uniform_int(r, j + 1), pick = t;
    for (size_t i = 0; i < n; i++)
      if (idx[i] == t) {
        pick = j;
        break;
      }
    idx[n++] = pick;
  }
  for (size_t i = B; i-- > 1;) {
    size_t j = gsl_rng_uniform_int(r, i + 1), t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  gsl_rng_free(r);
  return 0;
}

void cnf_adam_update(const cnf_train_options *to, long t, size_t n,
                     const double *grad, double *theta, double *m, double *v) {
  const double c1 = 1.0 - pow(to->beta1, (double)t), c2 = 1.0 - pow(to->beta2, (double)t);
  for (size_t i = 0; i < n; i++) {
    double g = grad[i] + to->weight_decay * theta[i];
    m[i] = to->beta1 * m[i] + (1.0 - to->beta1) * g;
    v[i] = to->beta2 * v[i] + (1.0 - to->beta2) * g * g;
    theta[i] -= to->lr * (m[i] / c1) / (sqrt(v[i] / c2) + to->eps);
  }
}

int cnf__train_grad(cnf_train *tr, const cnf_options *opt, size_t B, const double *x,
                    cnf_train_report *rep) {
  cnf_flow *f = tr->flow;
  cnf_train_state *st = f->train;
  cnf_train_report local;
  memset(&local, 0, sizeof local);
  const long iter = st->iter;
  st->iter++; /* a failed step counts too: a rerun must not repeat it */
  cnf_flow_seed(f, cnf_seed_derive(st->seed, "probes", (uint64_t)iter));
  double parts[3] = {NAN, 0.0, 0.0};
  int rc = cnf__flow_loss_grad(f, opt, B, x, &local.loss, parts, tr->grad, tr->grad_T,
                               &local.fwd, &local.bwd);
  local.nll = parts[0], local.kinetic = parts[1], local.jacobian = parts[2];
  if (rep != NULL) *rep = local;
  return rc;
}

double *cnf__train_grad_buf(cnf_train *tr, size_t *n) {
  *n = tr->flow->blocks * tr->flow->P + tr->flow->blocks;
  return tr->grad;
}

int cnf__train_check(cnf_train *tr, cnf_train_report *rep) {
  cnf_flow *f = tr->flow;
  const size_t nP = f->blocks * f->P;
  double gn = 0.0;
  for (size_t i = 0; i < nP; i++) gn += tr->grad[i] * tr->grad[i];
  for (size_t k = 0; k < f->blocks; k++)
    if (!isfinite(tr->grad_T[k])) gn = NAN;
  rep->grad_norm = sqrt(gn);
  if (!(isfinite(gn) && isfinite(rep->loss)))
    return CNF_ERROR(f->ctx, CNF_ENONFINITE, "step %ld: the loss or its gradient is not finite "
                     "(loss %g, |grad| %g); the update was skipped", f->train->iter, rep->loss,
                     rep->grad_norm);
  return 0;
}

void cnf__train_apply(cnf_train *tr) {
  cnf_flow *f = tr->flow;
  cnf_train_state *st = f->train;
  const size_t nP = f->blocks * f->P;
  const cnf_train_options *to = &tr->to;
  const long t = ++st->updates;
  const double c1 = 1.0 - pow(to->beta1, (double)t), c2 = 1.0 - pow(to->beta2, (double)t);
  double *m = st->m, *v = st->v;
  cnf_adam_update(to, t, nP, tr->grad, f->theta, m, v);
  if (to->learn_T) {
    for (size_t k = 0; k < f->blocks; k++) {
      double s = sqrt(f->T[k]), g = 2.0 * s * tr->grad_T[k];
      double *mk = &m[nP + k], *vk = &v[nP + k];
      *mk = to->beta1 * *mk + (1.0 - to->beta1) * g;
      *vk = to->beta2 * *vk + (1.0 - to->beta2) * g * g;
      s -= to->lr * (*mk / c1) / (sqrt(*vk / c2) + to->eps);
      f->T[k] = fmax(s * s, to->T_min);
    }
  }
}

int cnf_train_step(cnf_train *tr, const cnf_options *opt, size_t B,
                   const double *x, cnf_train_report *rep) {
  cnf_train_report local;
  int rc = cnf__train_grad(tr, opt, B, x, &local);
  if (rc == 0) rc = cnf__train_check(tr, &local);
  if (rep != NULL) *rep = local;
  if (rc != 0) return rc;
  cnf__train_apply(tr);
  return 0;
}
