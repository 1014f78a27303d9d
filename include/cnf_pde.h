/* cnf_pde.h: benchmark PDE problems with closed-form answers (see
 * docs/design.md, section 10, "The PDE benchmark problems"):
 * probability-flow velocity fields as cnf_dyn fields with exact divergence
 * and Jacobian-vector products, the closed-form log p_t, seeded samplers
 * and the error metrics.
 *
 * With dx/dt = v(x, t) and dDelta/dt = -div v (cnf_dyn_solve),
 *     log p_t(x(t)) = log p_0(x(0)) + Delta(t).
 *
 * P1a  v = A x (use cnf_dyn_linear_create with theta = [A, 0]).
 * P2   heat equation dp/dt = D lap p from a 4-component Gaussian mixture.
 * P3   Ornstein-Uhlenbeck Fokker-Planck, drift -A (x - b), diffusion I.
 * P4   double-well Langevin, separable, against a 1-D finite-volume solve.
 *
 * Functions return 0 or a negative CNF_E* code, recorded with a message in
 * ctx when one is given.  The problem objects (cnf_pde_heat, cnf_pde_ou,
 * cnf_pde_dw) keep no context once created, so their logp, sample, eval1
 * and em functions, like cnf_pde_sample_moments, return the code without a
 * message.  Thread safety: a problem object owns workspaces, so one object
 * is used from one thread at a time; distinct objects may be used from
 * distinct threads at once. */
#ifndef CNF_PDE_H
#define CNF_PDE_H

#include "cnf.h"
#include "cnf_dynamics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- P1a: linear field v = A x, p0 = N(0, I) ----------------------------- */

typedef enum cnf_pde_amat {
  /* A = -gamma I + omega blockdiag([[0, -1], [1, 0]]) (an odd D leaves the
   * last coordinate with -gamma only): Rademacher variance 0. */
  CNF_PDE_A_ROTATION = 0,
  /* A_ij ~ N(0, 1/D) (seeded) minus I: a dense symmetric part. */
  CNF_PDE_A_DENSE = 1
} cnf_pde_amat;

/* Fill A (D, D) row-major.  gamma and omega are used by the rotation kind,
 * seed by the dense one. */
int cnf_pde_p1a_matrix(cnf_ctx *ctx, cnf_pde_amat kind, size_t D, double gamma,
                       double omega, uint64_t seed, double *A);
/* E (D, D) = expm(t A), by GSL. */
int cnf_pde_expm(cnf_ctx *ctx, size_t D, const double *A, double t, double *E);
/* x (B, D) = expm(t A) x0 row by row (x may not alias x0). */
int cnf_pde_p1a_flow(cnf_ctx *ctx, size_t D, const double *A, double t,
                     size_t B, const double *x0, double *x);
/* log p_t(x) (B) for p0 = N(0, I): log N(expm(-t A) x) - t tr A. */
int cnf_pde_p1a_logp(cnf_ctx *ctx, size_t D, const double *A, double t,
                     size_t B, const double *x, double *logp);

/* ---- P1b: stiff cubic field v = -Q (Q^T x)^3, p0 = N(0, I) ----------------
 * The field is cnf_dyn_cubic_create(D, Q) (Q orthogonal, NULL: I).  With
 * y0 = Q^T x0: y_i(t) = y0_i / sqrt(1 + 2 t y0_i^2), x(t) = Q y(t), and
 * log p_t(x) = log p0(Q y0) - (3/2) sum_i log(1 - 2 t y_i^2), y = Q^T x,
 * y0_i = y_i / sqrt(1 - 2 t y_i^2): p_t lives where 2 t y_i^2 < 1 for all i
 * (log p_t = -inf elsewhere).  Jacobian eigenvalues -3 y_i^2. */

/* x (B, D) = x(t) from x0 (B, D) (x may alias x0). */
int cnf_pde_p1b_flow(cnf_ctx *ctx, size_t D, const double *Q, double t, size_t B,
                     const double *x0, double *x);
/* log p_t(x) (B). */
int cnf_pde_p1b_logp(cnf_ctx *ctx, size_t D, const double *Q, double t, size_t B,
                     const double *x, double *logp);

/* ---- P2: heat equation from a Gaussian mixture ---------------------------
 * p0 = sum_k w_k N(mu_k, 0.25^2 I), w = (0.1, 0.2, 0.3, 0.4),
 * mu = (+2 e1, -2 e1, +2 e2, -2 e2), D = 1/2, d >= 2. */

typedef struct cnf_pde_heat cnf_pde_heat;

int cnf_pde_heat_create(cnf_pde_heat **out, cnf_ctx *ctx, size_t d);
void cnf_pde_heat_free(cnf_pde_heat *h);
/* The field v = -D s(x, t) (no parameters, P = 0) with exact f_div and jvp.
 * The field holds its own copy of the problem; h may be freed after. */
int cnf_pde_heat_dyn(cnf_dyn **out, cnf_ctx *ctx, const cnf_pde_heat *h);
/* log p_t(x) (B). */
int cnf_pde_heat_logp(const cnf_pde_heat *h, double t, size_t B,
                      const double *x, double *logp);
/* x (B, d): B samples of p_t (t = 0: of p0) from a seeded stream. */
int cnf_pde_heat_sample(const cnf_pde_heat *h, double t, uint64_t seed,
                        size_t B, double *x);

/* ---- P3: Ornstein-Uhlenbeck ----------------------------------------------
 * dX = -A (X - b) dt + sqrt(2) dW, X0 ~ N(0, I), A SPD = G G^T / d + I/2
 * with G_ij ~ N(0, 1) and b ~ N(0, I), both from `seed`.  With A = Q L Q^T:
 *   m_t = (I - e^{-tA}) b,  Sigma_t = A^{-1}(I - e^{-2tA}) + e^{-2tA}. */

typedef struct cnf_pde_ou cnf_pde_ou;

int cnf_pde_ou_create(cnf_pde_ou **out, cnf_ctx *ctx, size_t d, uint64_t seed);
void cnf_pde_ou_free(cnf_pde_ou *ou);
const double *cnf_pde_ou_A(const cnf_pde_ou *ou); /* (d, d) */
const double *cnf_pde_ou_b(const cnf_pde_ou *ou); /* (d) */
/* v = -A (x - b) + Sigma_t^{-1} (x - m_t), exact f_div and jvp, P = 0.
 * The field holds its own copy of the problem. */
int cnf_pde_ou_dyn(cnf_dyn **out, cnf_ctx *ctx, const cnf_pde_ou *ou);
/* m (d) = m_t, S (d, d) = Sigma_t; either may be NULL. */
void cnf_pde_ou_moments(const cnf_pde_ou *ou, double t, double *m, double *S);
/* div v = -tr A + tr Sigma_t^{-1} (constant in x). */
double cnf_pde_ou_div(const cnf_pde_ou *ou, double t);
/* log N(x; m_t, Sigma_t) (B). */
int cnf_pde_ou_logp(cnf_pde_ou *ou, double t, size_t B, const double *x,
                    double *logp);
/* x (B, d): B samples of p_t = N(m_t, Sigma_t) from a seeded stream. */
int cnf_pde_ou_sample(cnf_pde_ou *ou, double t, uint64_t seed, size_t B, double *x);

/* ---- P4: double-well Langevin ------------------------------------------------
 * dY = -V'(Y) dt + sqrt(2 Dc) dW, V(y) = sum_i (y_i^4/4 - 2 y_i^2) (wells at
 * +-2, barrier 4), Y0 ~ N(0.5 1, 0.3^2 I), and X = Q Y for an optional
 * orthogonal Q (a dense Jacobian).  The problem separates:
 * p_t(x) = prod_i p1(y_i, t), y = Q^T x, with p1 from a 1-D finite-volume
 * solve (Scharfetter-Gummel flux, implicit Euler), Richardson-extrapolated
 * in the step and the grid to O(h^4) (src/pde/dw.c states the scheme).
 * Stationary: p_inf(x) = prod_i exp(-V(y_i)/Dc) / Z1. */

/* The base 1-D solver: p (N+1) holds p(y_i) at nodes y_i = -L + 2 L i / N
 * and is advanced in place over time T by `steps` implicit Euler steps of
 * dp/dt = d/dy (V' p) + Dc d2p/dy2 with zero flux at +-L.  The mass
 * (2L/N) sum_i p_i is conserved to round-off, positivity is kept, and
 * exp(-V(y_i)/Dc) is an exact stationary state.  N >= 4. */
int cnf_pde_fp1d_solve(cnf_ctx *ctx, double Dc, double L, size_t N, double T, size_t steps,
                       double *p);
/* log Z1 = log int exp(-V(y)/Dc) dy (GSL quadrature over the line). */
double cnf_pde_dw_logZ1(double Dc);
/* log p0 of one coordinate: log N(y; 0.5, 0.3^2). */
double cnf_pde_dw_p0_1d(double y);

typedef struct cnf_pde_dw_config {
  size_t d;         /* dimension */
  double T;         /* the reference covers [0, T] (times beyond are clamped) */
  double diffusion; /* Dc, 1; 0.1 <= Dc <= 100 */
  double L;         /* the 1-D grid spans [-L, L], 5 */
  size_t cells;     /* N, a multiple of 4, 1000 (h = 0.01): the reference's
                       error is O(h^4) (the fine grid has 2N cells) */
  const double *Q;  /* (d, d) orthogonal, copied; NULL: the identity */
} cnf_pde_dw_config;

void cnf_pde_dw_config_default(cnf_pde_dw_config *c, size_t d, double T);

typedef struct cnf_pde_dw cnf_pde_dw;

/* Solve the 1-D reference (at the default grid about 0.3 s for T = 1 and
 * 1 s for T = 5; the time grows like cells^2). */
int cnf_pde_dw_create(cnf_pde_dw **out, cnf_ctx *ctx, const cnf_pde_dw_config *cfg);
void cnf_pde_dw_free(cnf_pde_dw *dw);
size_t cnf_pde_dw_dim(const cnf_pde_dw *dw);
double cnf_pde_dw_diffusion(const cnf_pde_dw *dw);
double cnf_pde_dw_end_time(const cnf_pde_dw *dw);
/* The probability-flow field v(x, t) = Q v1(Q^T x), v1_i = -V'(y_i)
 * - Dc d/dy log p1(y_i, t), with exact f_div (sum_i v1'(y_i)) and jvp,
 * P = 0.  It shares the reference's table (dw may be freed after). */
int cnf_pde_dw_dyn(cnf_dyn **out, cnf_ctx *ctx, const cnf_pde_dw *dw);
/* The 1-D reference at n points y: l = log p1(y, t), score = dl/dy,
 * dscore = d2l/dy2 (any output may be NULL). */
int cnf_pde_dw_eval1(cnf_pde_dw *dw, double t, size_t n, const double *y, double *l,
                     double *score, double *dscore);
/* log p_t(x) (B) from the reference; log p0 and log p_inf in closed form. */
int cnf_pde_dw_logp(cnf_pde_dw *dw, double t, size_t B, const double *x, double *logp);
int cnf_pde_dw_logp0(cnf_pde_dw *dw, size_t B, const double *x, double *logp);
int cnf_pde_dw_logp_inf(cnf_pde_dw *dw, size_t B, const double *x, double *logp);
/* x (B, d): B samples of p0 from a seeded stream. */
int cnf_pde_dw_sample0(cnf_pde_dw *dw, uint64_t seed, size_t B, double *x);
/* Euler-Maruyama: x (B, d) advanced in place from t0 to t1 by equal steps
 * of at most dt, noise from a seeded stream. */
int cnf_pde_dw_em(cnf_pde_dw *dw, uint64_t seed, double t0, double t1, double dt, size_t B,
                  double *x);
/* Mass of one coordinate in the left well, int_{-inf}^0 p1(y, t) dy
 * (Simpson on the grid); the right well holds the rest. */
double cnf_pde_dw_mass_left(cnf_pde_dw *dw, double t);
/* The samples' counterpart: the fraction of the B d coordinates y_i of
 * y = Q^T x (x: (B, d)) below 0; NaN for bad arguments. */
double cnf_pde_dw_left_fraction(cnf_pde_dw *dw, size_t B, const double *x);
/* KL(p_t || p_inf) = d int p1 log(p1 / p1_inf) dy. */
double cnf_pde_dw_kl_inf(cnf_pde_dw *dw, double t);
/* The 1-D W2 distance of each marginal y_i of the samples x (B, d),
 * y = Q^T x, from p1(., t) (sorted samples against the reference's
 * quantiles at (k + 1/2)/B), averaged over i. */
int cnf_pde_dw_w2_marginals(cnf_ctx *ctx, cnf_pde_dw *dw, double t, size_t B, const double *x,
                            double *w2);

/* Q (d, d): a random orthogonal matrix from a seeded stream (the Q factor
 * of a Gaussian matrix, GSL's QR). */
int cnf_pde_random_orthogonal(cnf_ctx *ctx, size_t d, uint64_t seed, double *Q);

/* ---- metrics --------------------------------------------------------------- */

/* LPE: mean and max over B of |logp_hat - logp|; either output may be NULL. */
void cnf_pde_lpe(size_t B, const double *logp_hat, const double *logp,
                 double *mean, double *max);
/* Sample mean m (d) and covariance S (d, d) (divisor B - 1) of x (B, d). */
int cnf_pde_sample_moments(size_t d, size_t B, const double *x, double *m,
                           double *S);

typedef struct cnf_pde_gauss_err {
  double mean_rel; /* |m_hat - m| / |m| (absolute when m = 0) */
  double cov_rel;  /* |S_hat - S|_F / |S|_F */
  double w2sq;     /* Gaussian W2^2 = |m_hat - m|^2
                      + tr(S_hat + S - 2 (S^1/2 S_hat S^1/2)^1/2) */
} cnf_pde_gauss_err;

int cnf_pde_gauss_errors(cnf_ctx *ctx, size_t d, const double *m_hat,
                         const double *S_hat, const double *m, const double *S,
                         cnf_pde_gauss_err *out);

/* ---- the problems as one object ----------------------------------------------
 * A cnf_pde_problem holds one of P1a..P4 with everything a run needs: its
 * probability-flow field, samples of p0 (and of p_t), the closed-form or
 * reference log p_t, and the Gaussian moments where p_t is Gaussian.  The
 * metrics over time (cnf_pde_report_times) and the learner (cnf_pde_learn)
 * take it.  Random streams derive from the config's seed through
 * cnf_seed_derive: "pde-problem" (P1a's dense A, P3's A and b),
 * "pde-rotation" (P4's Q).  Not thread-safe (it owns workspaces). */

typedef enum cnf_pde_kind {
  CNF_PDE_P1A = 0, /* "liouville-linear": v = A x */
  CNF_PDE_P1B = 1, /* "cubic": v = -x^3 (Q = I) */
  CNF_PDE_P2 = 2,  /* "heat": from a Gaussian mixture, d >= 2 */
  CNF_PDE_P3 = 3,  /* "ou": Ornstein-Uhlenbeck */
  CNF_PDE_P4 = 4   /* "double-well" */
} cnf_pde_kind;

#define CNF_PDE_KINDS 5

/* The kind's command-line name (above), or NULL for a bad kind. */
const char *cnf_pde_kind_name(cnf_pde_kind kind);
/* *kind from its name; CNF_EINVAL for an unknown name. */
int cnf_pde_kind_parse(const char *name, cnf_pde_kind *kind);
/* The kind's default end time T: 1, 0.5, 1, 2, 1 (the PDE notes). */
double cnf_pde_default_time(cnf_pde_kind kind);

typedef struct cnf_pde_problem_config {
  cnf_pde_kind kind;
  size_t d;            /* dimension (P2: >= 2) */
  double T;            /* end time; <= 0: cnf_pde_default_time(kind) */
  cnf_pde_amat matrix; /* P1a: CNF_PDE_A_ROTATION (gamma 1/2, omega 2) or DENSE */
  double diffusion;    /* P4: Dc, 1 */
  size_t cells;        /* P4: reference cells, 0: the default of cnf_pde_dw_config */
  int rotate;          /* P4: x = Q y with a random orthogonal Q (stream "pde-rotation") */
  uint64_t seed;       /* the problem's random parameters (stream "pde-problem") */
} cnf_pde_problem_config;

void cnf_pde_problem_config_default(cnf_pde_problem_config *c, cnf_pde_kind kind, size_t d);

typedef struct cnf_pde_problem cnf_pde_problem;

/* Build the problem (P4: solves the 1-D reference, see cnf_pde_dw_create).
 * CNF_EINVAL, with the reason in ctx, for a bad config. */
int cnf_pde_problem_create(cnf_pde_problem **out, cnf_ctx *ctx, const cnf_pde_problem_config *c);
void cnf_pde_problem_free(cnf_pde_problem *pb);
size_t cnf_pde_problem_dim(const cnf_pde_problem *pb);
double cnf_pde_problem_time(const cnf_pde_problem *pb); /* the resolved T */
cnf_pde_kind cnf_pde_problem_kind(const cnf_pde_problem *pb);
/* The probability-flow field (borrowed, owned by pb) and its parameters:
 * P1a's theta = [A, 0] (d d + d), NULL for the others. */
cnf_dyn *cnf_pde_problem_field(const cnf_pde_problem *pb);
const double *cnf_pde_problem_theta(const cnf_pde_problem *pb);
/* The underlying objects (borrowed), NULL when pb is of another kind. */
cnf_pde_ou *cnf_pde_problem_ou(const cnf_pde_problem *pb);
cnf_pde_dw *cnf_pde_problem_dw(const cnf_pde_problem *pb);
/* 1 when p_t is Gaussian (P1a, P3), so that cnf_pde_problem_moments applies. */
int cnf_pde_problem_is_gaussian(const cnf_pde_problem *pb);

/* x (B, d): B samples of p_t from a seeded stream.  t = 0: p0 (for the
 * Gaussian p0 of P1a, P1b, P3, cnf_probes_draw's Gaussian stream).  Exact
 * for P1a..P3 (P1a, P1b by the closed-form flow map); P4 at t > 0 by
 * Euler-Maruyama with steps of 1e-3 from samples of p0. */
int cnf_pde_problem_sample(cnf_pde_problem *pb, double t, uint64_t seed, size_t B, double *x);
/* log p0(x) (B) in closed form. */
int cnf_pde_problem_logp0(cnf_pde_problem *pb, size_t B, const double *x, double *logp);
/* The reference log p_t(x) (B): closed form (P1a..P3), or the 1-D reference
 * of P4 (also at t = 0). */
int cnf_pde_problem_logp(cnf_pde_problem *pb, double t, size_t B, const double *x,
                         double *logp);
/* m (d), S (d, d): mean and covariance of the Gaussian p_t (P1a: 0 and
 * expm(tA) expm(tA)^T; P3: m_t, Sigma_t).  CNF_EINVAL for the others. */
int cnf_pde_problem_moments(cnf_pde_problem *pb, double t, double *m, double *S);

/* ---- metrics over time ------------------------------------------------------
 * cnf_pde_report_times draws B samples x0 of p0 (stream "pde-x0") and, for
 * Hutchinson's trace, K = opt->probes probes per sample (stream
 * "pde-probes", held fixed along the solve), carries them through a field
 * (the problem's own, or a learned one) in one solve with output at m
 * times, and at each time t compares the computed log p_hat_t(x(t)) =
 * log p0(x0) + Delta(t) with the reference log p_t(x(t)). */

typedef struct cnf_pde_metrics { /* the metrics at one time; NaN where n/a */
  double t;
  double lpe_mean, lpe_max; /* mean and max over samples of |log p_hat - log p| */
  double mean_rel, cov_rel; /* Gaussian p_t: the samples' moment errors */
  double w2sq;              /* Gaussian p_t: Gaussian W2^2 of the samples' moments */
  double w2;                /* Gaussian: sqrt(w2sq); P4: the marginals' mean 1-D W2 */
  double mass_left;         /* P4: the fraction of coordinates y = Q^T x below 0 */
  double mass_left_ref;     /* P4: the reference's left-well mass of one coordinate */
} cnf_pde_metrics;

typedef struct cnf_pde_report {
  double kl_inf_ref;    /* P4: KL(p_t || p_inf) of the reference at the last time */
  double kl_inf_flow;   /* P4: mean over samples of log p_hat - log p_inf there */
  cnf_stats stats;      /* the solve's statistics */
  double solve_seconds; /* wall-clock time of the solve alone */
} cnf_pde_report;

/* dyn (theta: its parameters, may be NULL for P = 0) with opt (the trace,
 * probes, tolerances; opt->report_var for the probes' variance) carries B
 * samples of p0 from 0 to the m times (m >= 1, increasing, >= 0; NULL:
 * m equally spaced times in [0, T] for m >= 2, {T} for m = 1), and rows
 * (m) receives the metrics at each; rep (may be NULL) the rest.  m = 1
 * solves to the time directly (cnf_dyn_solve), m > 1 with dense output
 * (cnf_dyn_solve_times).  Samples and probes come from `seed`.  A sample
 * or computed log-density that is not finite is CNF_ENONFINITE naming the
 * rows (docs/cli.md, "Non-finite results"). */
int cnf_pde_report_times(cnf_ctx *ctx, cnf_pde_problem *pb, cnf_dyn *dyn, const double *theta,
                         const cnf_options *opt, size_t B, uint64_t seed, size_t m,
                         const double *times, cnf_pde_metrics *rows, cnf_pde_report *rep);

/* For a 1-D problem (d = 1): the reference density and dyn's (theta) at G
 * equally spaced points x (G) of [x_lo, x_hi] and nt times (nt):
 * curves (2 nt, G), row 2k the reference p_{t_k}, row 2k + 1 dyn's, the
 * latter by one backward solve per point set to p0 (cnf_dyn_logp_at, exact
 * trace, opt's tolerances; CNF_ENONFINITE if dyn's log-density is not
 * finite at some x).  The data of a line plot (cnf_plot_lines). */
int cnf_pde_density_curves(cnf_ctx *ctx, cnf_pde_problem *pb, cnf_dyn *dyn,
                           const double *theta, const cnf_options *opt, double x_lo,
                           double x_hi, size_t G, size_t nt, const double *times, double *x,
                           double *curves);

/* ---- learned fields ---------------------------------------------------------
 * cnf_pde_learn regresses a parametric field v_theta (e.g. the MLP of
 * cnf_dyn_mlp_create) on the problem's velocity v:
 *     L(theta) = E_{t ~ U[0,T], x ~ p_t} |v_theta(x, t) - v(x, t)|^2,
 * estimated per iteration on G stratified times t_g = (g + u_g) T / G with
 * S = max(1, minibatch / G) samples each (N = G S): for P1a..P3 exact
 * samples of p_t (cnf_pde_problem_sample); for P4 samples from a bank of
 * seeded Euler-Maruyama paths stored at `bank_levels` levels, each advanced
 * by EM from the level below t to t.  The gradient, sum_g a_g^T
 * dv_theta/dtheta with a_g = 2 (v_theta - v) / N, is one vector-Jacobian
 * product per time (cnf_dyn_vjp); Adam (cnf_adam_update, no weight decay)
 * takes the step at the rate lr (1 + cos(pi i / iters)) / 2 for
 * iteration i = 0, 1, ...
 *
 * Streams of `seed` (cnf_seed_derive): "pde-time" (index = iteration: the
 * G times, then for P4 the bank paths picked), "pde-paths" (index 0: the
 * bank's samples of p0; 1..levels: the bank's EM noise per level;
 * levels + 1 + i G + g: the samples, or their EM noise, of time g of
 * iteration i). */

typedef struct cnf_pde_learn_options {
  size_t iters;       /* Adam iterations, 2000 */
  size_t minibatch;   /* samples per iteration, 256 */
  size_t groups;      /* stratified times per iteration G, 16 */
  double lr;          /* Adam's initial rate, 3e-3 */
  size_t bank_paths;  /* P4: paths in the bank, 2048 */
  size_t bank_levels; /* P4: stored levels in [0, T], 50 */
  double em_dt;       /* P4: Euler-Maruyama step, 1e-3 */
  uint64_t seed;      /* 0 */
  /* Called after every iteration i (0-based) with its minibatch loss
   * (before the update); a non-zero return stops the loop early (not an
   * error).  May be NULL. */
  int (*report)(void *user, size_t iter, double loss);
  void *user;
} cnf_pde_learn_options;

void cnf_pde_learn_options_default(cnf_pde_learn_options *o);

/* Train theta (P = cnf_dyn_param_count(dyn)) in place, from its current
 * values; *final_loss (may be NULL) receives the last iteration's
 * minibatch loss.  dyn must have d = cnf_pde_problem_dim(pb) (else
 * CNF_EDIM).  CNF_EINVAL for bad options, CNF_ENONFINITE when the loss is
 * not finite (the iteration is in ctx's message). */
int cnf_pde_learn(cnf_ctx *ctx, cnf_pde_problem *pb, cnf_dyn *dyn, double *theta,
                  const cnf_pde_learn_options *o, double *final_loss);

/* A line plot of W x H, from 160 x 120 to 8192 x 8192 (pixels in a PNG,
 * points in SVG and PDF; the format follows the path's extension, as for
 * every figure of cnf.h), at most 256 curves: S curves y (S, G) over the
 * common abscissae x (G, increasing), in colours rgb (S, 3; NULL: a
 * built-in palette), dashed where dashed[s] != 0 (dashed may be NULL), on
 * axes spanning the data's ranges (y from 0 when every y >= 0) with ticks
 * in data units, a grey line at y = 0, the title and axis labels of po and
 * a legend of po->names (S; po may be NULL: the defaults, no legend),
 * written atomically. */
int cnf_plot_lines(cnf_ctx *ctx, const char *path, size_t W, size_t H, size_t G, const double *x,
                   size_t S, const double *y, const unsigned char *rgb, const int *dashed);
int cnf_plot_lines_with(cnf_ctx *ctx, const cnf_plot_options *po, const char *path, size_t W,
                        size_t H, size_t G, const double *x, size_t S, const double *y,
                        const unsigned char *rgb, const int *dashed);

/* Variance of one Hutchinson probe's v.Jv for a constant Jacobian J (d, d):
 * with S = (J + J^T)/2, Gaussian 2 |S|_F^2, Rademacher 2 sum_{i != j} S_ij^2
 * (0 for CNF_TRACE_EXACT). */
double cnf_pde_hutch_var(cnf_trace trace, size_t d, const double *J);

#ifdef __cplusplus
}
#endif
#endif /* CNF_PDE_H */
