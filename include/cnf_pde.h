/* cnf_pde.h: benchmark PDE problems with closed-form answers (see the
 * project's PDE notes): probability-flow velocity fields as cnf_dyn fields
 * with exact divergence and Jacobian-vector products, the closed-form
 * log p_t, seeded samplers and the error metrics.
 *
 * With dx/dt = v(x, t) and dDelta/dt = -div v (cnf_dyn_solve),
 *     log p_t(x(t)) = log p_0(x(0)) + Delta(t).
 *
 * P1a  v = A x (use cnf_dyn_linear_create with theta = [A, 0]).
 * P2   heat equation dp/dt = D lap p from a 4-component Gaussian mixture.
 * P3   Ornstein-Uhlenbeck Fokker-Planck, drift -A (x - b), diffusion I.
 * P4   double-well Langevin, separable, against a 1-D finite-volume solve.
 *
 * Functions return 0 or a negative CNF_E* code (recorded in ctx when one is
 * given).  Objects are not thread-safe (they own workspaces). */
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

/* A line plot of W x H, from 160 x 120 to 8192 x 8192 (pixels in a PNG,
 * points in SVG and PDF; the format follows the path's extension, as for
 * every figure of cnf.h), at most 256 curves: S curves y (S, G) over the common abscissae x (G, increasing), in
 * colours rgb (S, 3; NULL: a built-in palette), dashed where dashed[s] !=
 * 0 (dashed may be NULL), on axes spanning the data's ranges (y from 0
 * when every y >= 0) with ticks in data units, a grey line at y = 0, the
 * title and axis labels of po and a legend of po->names (S; po may be
 * NULL: the defaults, no legend), written atomically. */
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
