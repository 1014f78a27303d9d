/* cnf_integrate.h: integration on the unit cube [0, 1]^n by importance
 * sampling with flows (the i-Flow benchmark, P5 of docs/design.md, section 10).
 *
 * For x ~ q on R^n and f = 0 outside the cube, the weights w = f(x) / q(x)
 * give I_hat = mean w, an unbiased estimate of I = int_{[0,1]^n} f, with
 * standard error sd(w) / sqrt(N).  The samplers here:
 *
 * - uniform: x ~ U[0, 1]^n, q = 1 (the baseline);
 * - linear (training-free): the linear field x' = kappa x + beta on [0, 1]
 *   from z ~ N(0, I), kappa = log(alpha / sqrt 2),
 *   beta = kappa / (2 (e^kappa - 1)), so x(1) = e^kappa z + 1/2 and
 *   Delta(1) = -n kappa: q = N(1/2, alpha^2/2 I), integrated by the solver;
 * - learned: an MLP field carries z ~ N(0, I) on [0, 1] to y, and a
 *   sigmoid x_i = s(y_i) maps y into the cube:
 *       log q(x) = log N(z) + Delta(1) - sum_i log s'(y_i),
 *   trained by minimising E_q[log q - log f] = KL(q || f / I) - log I with
 *   adjoint gradients (cnf_dyn_grad).
 *
 * Functions return 0 or a negative CNF_E* code, recorded in ctx when one
 * is given.  Arrays are row-major, one sample per row.  A learned sampler
 * (cnf_integrate_flow) and its context are used from one thread at a time
 * (cnf.h, "Thread safety"); the functions that take only a context
 * (cnf_integrate_linear) may run on several threads with one context
 * each; integrands are only read. */
#ifndef CNF_INTEGRATE_H
#define CNF_INTEGRATE_H

#include "cnf.h"
#include "cnf_dynamics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- integrands ------------------------------------------------------------ */

typedef enum cnf_integrand_kind {
  /* (alpha sqrt pi)^-n exp(-sum (x_i - 1/2)^2 / alpha^2); I = erf(1/(2 alpha))^n */
  CNF_INTEGRAND_GAUSS = 0,
  /* 1/2 (alpha sqrt pi)^-n [exp(-sum (x_i - 1/3)^2 / alpha^2)
   *                         + exp(-sum (x_i - 2/3)^2 / alpha^2)];
   * I = (1/2 [erf(1/(3 alpha)) + erf(2/(3 alpha))])^n */
  CNF_INTEGRAND_CAMEL = 1,
  /* sum (x_i - x_i^2); I = n / 6 */
  CNF_INTEGRAND_POLY = 2
} cnf_integrand_kind;

/* The width of the benchmark's Gauss and Camel peaks. */
#define CNF_INTEGRAND_ALPHA 0.2

typedef struct cnf_integrand {
  cnf_integrand_kind kind;
  size_t dim;   /* n >= 1 */
  double alpha; /* peak width (> 0) of gauss and camel; unused by poly */
} cnf_integrand;

/* "gauss", "camel", "poly"; parse returns 0 or CNF_EINVAL (no context: no
 * message). */
const char *cnf_integrand_name(cnf_integrand_kind k);
int cnf_integrand_parse(const char *s, cnf_integrand_kind *out);

/* The closed-form integral over the cube; NAN for an invalid integrand. */
double cnf_integrand_exact(const cnf_integrand *f);

/* log f (B) at B points x (B, n), -inf outside the cube (and where f = 0),
 * and, when grad (B, n) is not NULL, grad_x log f (0 where log f = -inf).
 * CNF_EINVAL for an invalid integrand or NULL arrays (no context: no
 * message). */
int cnf_integrand_logf(const cnf_integrand *f, size_t B, const double *x, double *logf,
                       double *grad);

/* ---- the estimate from weighted samples ------------------------------------ */

typedef struct cnf_integrate_result {
  size_t samples;    /* N */
  double estimate;   /* I_hat = mean w */
  double std_error;  /* sigma_I = sd(w) / sqrt(N), sd with divisor N - 1 */
  double exact;      /* I (closed form) */
  double pull;       /* (I_hat - I) / sigma_I */
  double rel_spread; /* sd(w) / mean(w) */
  double efficiency; /* unweighting efficiency mean(w) / max(w) */
  double zero_frac;  /* fraction of samples with w = 0 (outside the cube) */
  double kl;         /* KL(q || f / I) = log I - mean log w; NAN if some w = 0 */
} cnf_integrate_result;

/* Weights w (N, may be NULL) = exp(log f(x) - logq) of N samples x (N, n)
 * with log-densities logq (N) of their sampler, and their summary.  Points
 * outside the cube weigh 0.  N >= 2. */
int cnf_integrate_weights(cnf_ctx *ctx, const cnf_integrand *f, size_t N, const double *x,
                          const double *logq, double *w, cnf_integrate_result *res);

/* ---- samplers ------------------------------------------------------------- */

/* x (N, n) uniform on the cube from a seeded stream, logq (N) = 0.
 * CNF_EINVAL for n = 0 or NULL arrays, CNF_ENOMEM (no context: no
 * message). */
int cnf_integrate_uniform(size_t n, size_t N, uint64_t seed, double *x, double *logq);

/* theta (n n + n) = [kappa I, beta 1] of cnf_dyn_linear_create for the
 * training-free sampler q = N(1/2, alpha^2/2 I): kappa = log(alpha / sqrt 2),
 * beta = kappa / (2 (e^kappa - 1)).  alpha > 0, alpha != sqrt 2; other
 * values give CNF_EINVAL (no context: no message). */
int cnf_integrate_linear_theta(size_t n, double alpha, double *theta);

/* N draws of the training-free sampler by the solver: z ~ N(0, I) (from
 * seed) integrated by the linear field from t = 0 to 1 (opt: tolerances,
 * method; the trace by opt->trace with opt->probes probes per sample drawn
 * from seed; rows in systems of opt->batch, 0: all), giving x (N, n) and
 * logq (N) = log N(z) + Delta(1).  st (may be NULL) is added to. */
int cnf_integrate_linear(cnf_ctx *ctx, size_t n, double alpha, const cnf_options *opt, size_t N,
                         uint64_t seed, double *x, double *logq, cnf_stats *st);

/* ---- the learned sampler ------------------------------------------------------ */

/* An MLP field z' = f(t, z; theta) (cnf_dyn_mlp_create) on t in [0, 1] with
 * the sigmoid into the cube, and the Adam state that trains it. */
typedef struct cnf_integrate_flow cnf_integrate_flow;

/* cfg->dim is n.  theta from cnf_mlp_init_params(seed), then the last
 * layer's weights, bias and time term multiplied by init_scale (>= 0): 0
 * starts at f = 0, i.e. x = s(z), the logit-normal; small values start
 * near it. */
int cnf_integrate_flow_create(cnf_integrate_flow **out, cnf_ctx *ctx, const cnf_mlp_config *cfg,
                              uint64_t seed, double init_scale);
void cnf_integrate_flow_free(cnf_integrate_flow *fl);
/* Split the network's batch over n threads (cnf_dyn_mlp_set_threads; 1,
 * the default, is serial).  A given n gives the same bits every run. */
int cnf_integrate_flow_set_threads(cnf_integrate_flow *fl, size_t n);
/* theta (P): the flow's own array; writes change the flow. */
size_t cnf_integrate_flow_param_count(const cnf_integrate_flow *fl);
double *cnf_integrate_flow_params(cnf_integrate_flow *fl);

/* The loss L = (1/B) sum_b [log q(x_b) - log f(x_b)] at B base points z
 * (B, n) (the reparameterised KL(q || f / I) - log I), with the trace exact
 * (eps NULL) or the mean over K probes eps (K, B, n), and grad (P, may be
 * NULL) = dL/dtheta by the adjoint (cnf_dyn_grad; opt->adjoint).  The
 * seeds at t = 1: with x = s(y) and g = grad_x log f,
 *     dL/dy_b = ((2 s(y_b) - 1) - g_b s'(y_b)) / B,   dL/dDelta_b = 1 / B.
 * All B rows are one ODE system.  fwd, bwd (may be NULL) are added to. */
int cnf_integrate_flow_loss_grad(cnf_integrate_flow *fl, const cnf_integrand *f,
                                 const cnf_options *opt, size_t B, const double *z, size_t K,
                                 const double *eps, double *loss, double *grad, cnf_stats *fwd,
                                 cnf_stats *bwd);

/* iters Adam steps (cnf_adam_update with `to`; to->learn_T and T_min are
 * not used) on fresh batches of B base points, and probes when opt->trace
 * is not exact (opt->probes per point), drawn from (seed, step number), so
 * a run is reproducible.  Steps count on across calls.  losses (iters, may
 * be NULL) receives each step's loss.  A failed step (solver, non-finite
 * loss or gradient) leaves theta unchanged and returns its code. */
int cnf_integrate_flow_train(cnf_integrate_flow *fl, const cnf_integrand *f, const cnf_options *opt,
                             const cnf_train_options *to, size_t iters, size_t B, uint64_t seed,
                             double *losses, cnf_stats *fwd, cnf_stats *bwd);

/* N draws x (N, n) of q with logq (N): z ~ N(0, I) from seed, the forward
 * solve to y = z(1) (the trace as opt->trace, probes from seed; systems of
 * opt->batch rows, 0: all), x = s(y) and
 *     log q(x) = log N(z) + Delta(1) - sum_i log s'(y_i).
 * y (N, n, may be NULL) receives the points before the sigmoid. */
int cnf_integrate_flow_sample(cnf_integrate_flow *fl, const cnf_options *opt, size_t N,
                              uint64_t seed, double *x, double *logq, double *y, cnf_stats *st);

/* log q (N) at N points x (N, n) of the open cube: y = logit(x) is
 * integrated backward from t = 1 to 0 (cnf_dyn_logp_at, the trace exact or
 * Hutchinson by opt->trace with probes from seed), and
 *     log q(x) = log N(z(0)) - int_0^1 div f dt - sum_i log s'(y_i).
 * Points on the cube's faces or outside get -inf. */
int cnf_integrate_flow_logq(cnf_integrate_flow *fl, const cnf_options *opt, size_t N,
                            const double *x, uint64_t seed, double *logq, cnf_stats *st);

/* The defensive mixture q_lam = (1 - lam) q + lam U (Hesterberg 1995):
 * N_u = round(lam N) rows x (N, n) uniform on the cube, then N - N_u drawn
 * from q (cnf_integrate_flow_sample), and logq (N) = log q_lam(x) with
 * lam = N_u / N, q at the uniform rows by cnf_integrate_flow_logq.  With
 * the counts fixed, mean f / q_lam is still unbiased (the balance
 * heuristic of multiple importance sampling), and the weights are bounded
 * by f / lam, so their variance is finite even where q's tails are thin
 * (the sigmoid of Gaussian tails vanishes faster than any power at the
 * cube's faces).  0 <= lam <= 1. */
int cnf_integrate_flow_sample_defensive(cnf_integrate_flow *fl, const cnf_options *opt, size_t N,
                                        double lam, uint64_t seed, double *x, double *logq,
                                        cnf_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* CNF_INTEGRATE_H */
