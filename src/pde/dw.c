/* dw.c: P4, the double-well Langevin problem (cnf_pde.h).
 *
 *   dY = -V'(Y) dt + sqrt(2 Dc) dW,  V(y) = sum_i (y_i^4/4 - 2 y_i^2),
 *   Y0 ~ N(0.5 1, 0.3^2 I),  X = Q Y (Q orthogonal, optional).
 *
 * The drift and p0 separate, so p_t(x) = prod_i p1(y_i, t), y = Q^T x, with
 * p1 the solution of the 1-D Fokker-Planck equation
 *
 *   dp/dt = d/dy (V' p) + Dc d2p/dy2 = -dF/dy,  F = -V' p - Dc dp/dy.
 *
 * 1-D solver (cnf_pde_fp1d_solve): nodes y_i = -L + i h, i = 0..N, h = 2L/N,
 * control volumes of width h, zero flux at both ends.  Scharfetter-Gummel
 * flux through the face between nodes i and i+1, with the face drift the
 * mean of -V' over the face, P_i = -(V_{i+1} - V_i)/Dc:
 *
 *   F_{i+1/2} = (Dc/h) [Bern(-P_i) p_i - Bern(P_i) p_{i+1}],  Bern(z) = z/(e^z - 1),
 *   h dp_i/dt = F_{i-1/2} - F_{i+1/2}   (mass h sum_i p_i conserved exactly).
 *
 * Since Bern(-P) = e^P Bern(P), the flux vanishes exactly for
 * p_i = exp(-V(y_i)/Dc): the stationary density is exact at the nodes.  The
 * face coefficient Bern(P_i) e^{-V_{i+1}/Dc} is a symmetric mean of
 * exp(-V/Dc) at the face's ends, so the scheme is a symmetric 3-point
 * scheme and its error expands in h^2, h^4, ...  Time: implicit Euler
 * (an M-matrix: positivity kept), one tridiagonal solve per step (GSL).
 *
 * Reference (cnf_pde_dw_create): passive Richardson extrapolation of that
 * solver.  Macro steps dt = h min(1/2, 1/64 + t) (p0 is narrow, so early
 * times move fastest); four implicit Euler runs take
 * 1, 2, 3, 4 substeps per macro step, and their log-densities are
 * extrapolated to zero step (a cubic in 1/n: weights -1/6, 4, -27/2, 32/3),
 * on the grid of N and of 2N cells; then the two grids are extrapolated,
 * l = (4 l_2N - l_N)/3 at the coarse nodes.  Error O(h^4) (dt scales with h).
 * Stored at every macro level t_k, node i: l = log p1 and dl/dt = (L p)/p
 * (the semi-discrete derivative, extrapolated the same way).
 *
 * Interpolation: in t, cubic Hermite between levels (C^1); in y, the
 * degree-5 polynomial through the 6 nodes around y (continuous, with
 * derivative jumps of O(h^5) at nodes).  Its derivatives are exact for the
 * interpolant, so the field's divergence is the exact derivative of the
 * field.  Beyond the grid, l continues as l_e + (l'_e + V'_e/Dc)(y - e)
 * - (V(y) - V_e)/Dc (C^1 at the edge e; the stationary tail).
 *
 * Field: with s = dl/dy (the score), v1(y, t) = -V'(y) - Dc s(y, t),
 * v1' = -V''(y) - Dc d2l/dy2, and v(x) = Q v1(Q^T x), J = Q diag(v1') Q^T,
 * div v = sum_i v1'(y_i).  Along dx/dt = v, d/dt log p = -div v holds up to
 * the interpolant's Fokker-Planck residual
 *   R = l_t - V'' - V' l_y - Dc (l_yy + l_y^2),
 * which bounds the reference's contribution to the LPE (int R dt per
 * coordinate). */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cblas.h>
#include <gsl/gsl_integration.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "cnf_pde.h"
#include "core.h"
#include "pde_impl.h"

#define LOG2PI 1.8378770664093454836
#define DW_MEAN0 0.5
#define DW_SD0 0.3
#define LOG_FLOOR (-700.0)

static double dw_V(double y) { return 0.25 * y * y * y * y - 2.0 * y * y; }
static double dw_V1(double y) { return y * y * y - 4.0 * y; }
static double dw_V2(double y) { return 3.0 * y * y - 4.0; }

static double bern(double z) {
  if (fabs(z) < 1e-8) return 1.0 - 0.5 * z;
  return z / expm1(z);
}

/* ---- the 1-D solver -------------------------------------------------------- */

/* Face coefficients of one grid: F_{i+1/2} = al[i] p_i - be[i] p_{i+1},
 * i = 0..N-1, already divided by h (so dp_i/dt = al[i-1] p_{i-1}
 * - (be[i-1] + al[i]) p_i + be[i] p_{i+1}). */
typedef struct fp_grid {
  size_t N;
  double L, h, Dc;
  double *al, *be;           /* (N) */
  double *diag, *sup, *sub;  /* (N+1), (N), (N) solve workspace */
  double *rhs;               /* (N+1) */
} fp_grid;

static void fp_grid_free(fp_grid *g) {
  if (g != NULL) cnf__free(g->al);
}

static int fp_grid_init(fp_grid *g, double Dc, double L, size_t N) {
  memset(g, 0, sizeof *g);
  g->al = cnf__calloc(6 * N + 2, sizeof(double));
  if (g->al == NULL) return CNF_ENOMEM;
  g->N = N, g->L = L, g->Dc = Dc, g->h = 2.0 * L / (double)N;
  g->be = g->al + N;
  g->diag = g->be + N;
  g->sup = g->diag + N + 1;
  g->sub = g->sup + N;
  g->rhs = g->sub + N;
  const double h = g->h;
  for (size_t i = 0; i < N; i++) {
    const double ya = -L + (double)i * h, yb = -L + (double)(i + 1) * h;
    const double P = -(dw_V(yb) - dw_V(ya)) / Dc;
    g->al[i] = Dc / (h * h) * bern(-P);
    g->be[i] = Dc / (h * h) * bern(P);
  }
  return 0;
}

/* out (N+1) = L p */
static void fp_apply(const fp_grid *g, const double *p, double *out) {
  const size_t N = g->N;
  for (size_t i = 0; i <= N; i++) {
    double s = 0.0;
    if (i > 0) s += g->al[i - 1] * p[i - 1] - g->be[i - 1] * p[i];
    if (i < N) s += g->be[i] * p[i + 1] - g->al[i] * p[i];
    out[i] = s;
  }
}

/* p <- (I - tau L)^{-1} p */
static int fp_ie_step(fp_grid *g, double tau, double *p) {
  const size_t N = g->N;
  for (size_t i = 0; i <= N; i++) {
    double dd = 1.0;
    if (i > 0) dd += tau * g->be[i - 1];
    if (i < N) dd += tau * g->al[i];
    g->diag[i] = dd;
  }
  for (size_t i = 0; i < N; i++) {
    g->sup[i] = -tau * g->be[i]; /* row i, column i+1 */
    g->sub[i] = -tau * g->al[i]; /* row i+1, column i */
  }
  memcpy(g->rhs, p, (N + 1) * sizeof(double));
  gsl_vector_view d = gsl_vector_view_array(g->diag, N + 1);
  gsl_vector_view e = gsl_vector_view_array(g->sup, N);
  gsl_vector_view f = gsl_vector_view_array(g->sub, N);
  gsl_vector_view b = gsl_vector_view_array(g->rhs, N + 1);
  gsl_vector_view x = gsl_vector_view_array(p, N + 1);
  return gsl_linalg_solve_tridiag(&d.vector, &e.vector, &f.vector, &b.vector, &x.vector) == 0
             ? 0
             : CNF_ESOLVER;
}

int cnf_pde_fp1d_solve(cnf_ctx *ctx, double Dc, double L, size_t N, double T, size_t steps,
                       double *p) {
  if (!(Dc > 0) || !(L > 0) || N < 4 || !(T >= 0) || steps == 0 || p == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "1-D Fokker-Planck: bad arguments");
  fp_grid g;
  if (fp_grid_init(&g, Dc, L, N) != 0)
    return CNF_ERROR(ctx, CNF_ENOMEM, "1-D Fokker-Planck: out of memory");
  int rc = 0;
  for (size_t k = 0; k < steps && rc == 0; k++) rc = fp_ie_step(&g, T / (double)steps, p);
  fp_grid_free(&g);
  return rc == 0 ? 0 : CNF_ERROR(ctx, rc, "1-D Fokker-Planck: tridiagonal solve failed");
}

double cnf_pde_dw_p0_1d(double y) {
  const double u = (y - DW_MEAN0) / DW_SD0;
  return -0.5 * u * u - log(DW_SD0) - 0.5 * LOG2PI;
}

static double Z_integrand(double y, void *p) { return exp(-dw_V(y) / *(double *)p); }

double cnf_pde_dw_logZ1(double Dc) {
  gsl_integration_workspace *w = gsl_integration_workspace_alloc(200);
  if (w == NULL || !(Dc > 0)) {
    if (w != NULL) gsl_integration_workspace_free(w);
    return NAN;
  }
  double c = Dc, z = 0.0, err = 0.0;
  gsl_function F = {Z_integrand, &c};
  int rc = gsl_integration_qagi(&F, 0.0, 1e-13, 200, w, &z, &err);
  gsl_integration_workspace_free(w);
  return rc == 0 ? log(z) : NAN;
}

/* ---- the reference table ------------------------------------------------------ */

typedef struct dw_table {
  int refs;
  size_t N, M;   /* coarse cells; levels t_0..t_M */
  double L, h, Dc, T, logZ;
  double *tk;    /* (M+1) */
  double *l;     /* (M+1, N+1) log p1 */
  double *lt;    /* (M+1, N+1) d log p1 / dt */
  double C[36];  /* coefficients (in u) of the degree-5 interpolant from 6 values */
} dw_table;

static void table_release(dw_table *tb) {
  if (tb == NULL || --tb->refs > 0) return;
  cnf__free(tb->tk);
  cnf__free(tb->l);
  cnf__free(tb->lt);
  cnf__free(tb);
}

struct cnf_pde_dw {
  size_t d;
  dw_table *tb;
  double *Q;        /* (d, d) or NULL */
  double *slice;    /* (N+1) l at time slice_t */
  double slice_t;
  double *y, *g, *dv, *u; /* (d) workspaces */
};

/* Macro step sizes dt(t) = h min(1/2, 1/64 + t): the narrow p0 makes the
 * first times move fastest (the Fokker-Planck residual of the interpolant
 * is time-limited there), the last step shortened to land on T.  Returns
 * the count; fills tk if not NULL. */
static size_t make_levels(double T, double h, double *tk) {
  size_t k = 0;
  double t = 0.0;
  if (tk != NULL) tk[0] = 0.0;
  while (t < T) {
    double s = h * fmin(0.5, 1.0 / 64.0 + t);
    if (t + s > T - 1e-3 * s) s = T - t;
    t = (t + s >= T || !(t + s > t)) ? T : t + s; /* never stall in rounding */
    k++;
    if (tk != NULL) tk[k] = t;
  }
  return k;
}

/* The runs of one grid: n = 1..4 substeps per macro step. */
typedef struct grid_runs {
  fp_grid g;
  double *p[4];   /* (N+1) each */
  double *lx, *ltx, *tmp; /* (N+1) extrapolated l, l_t, scratch */
} grid_runs;

static const double W4[4] = {-1.0 / 6.0, 4.0, -13.5, 32.0 / 3.0};

static int runs_init(grid_runs *r, double Dc, double L, size_t N) {
  memset(r, 0, sizeof *r);
  if (fp_grid_init(&r->g, Dc, L, N) != 0) return CNF_ENOMEM;
  double *buf = cnf__calloc(7 * (N + 1), sizeof(double));
  if (buf == NULL) return CNF_ENOMEM;
  for (int n = 0; n < 4; n++) r->p[n] = buf + (size_t)n * (N + 1);
  r->lx = buf + 4 * (N + 1);
  r->ltx = r->lx + N + 1;
  r->tmp = r->ltx + N + 1;
  for (size_t i = 0; i <= N; i++) {
    const double p0 = exp(cnf_pde_dw_p0_1d(-L + (double)i * r->g.h));
    for (int n = 0; n < 4; n++) r->p[n][i] = p0;
  }
  return 0;
}

static void runs_free(grid_runs *r) {
  fp_grid_free(&r->g);
  cnf__free(r->p[0]);
}

static double safe_log(double p) { return p > 0 ? fmax(log(p), LOG_FLOOR) : LOG_FLOOR; }

/* Advance every run by one macro step dt (0: none), then extrapolate l and
 * l_t into lx, ltx. */
static int runs_step(grid_runs *r, double dt) {
  const size_t N = r->g.N;
  for (int n = 0; n < 4 && dt > 0; n++)
    for (int s = 0; s <= n; s++) {
      int rc = fp_ie_step(&r->g, dt / (double)(n + 1), r->p[n]);
      if (rc != 0) return rc;
    }
  for (size_t i = 0; i <= N; i++) {
    double s = 0.0;
    for (int n = 0; n < 4; n++) s += W4[n] * safe_log(r->p[n][i]);
    r->lx[i] = s;
    r->tmp[i] = exp(s);
  }
  fp_apply(&r->g, r->tmp, r->ltx);
  for (size_t i = 0; i <= N; i++) r->ltx[i] = r->tmp[i] > 0 ? r->ltx[i] / r->tmp[i] : 0.0;
  return 0;
}

/* C: u-coefficients of the degree-5 polynomial through (u_m, f_m),
 * u_m = m - 2.5, as c = C f (C = Vandermonde^{-1}). */
static int interp_matrix(double *C) {
  gsl_matrix *V = gsl_matrix_alloc(6, 6), *Vi = gsl_matrix_alloc(6, 6);
  gsl_permutation *perm = gsl_permutation_alloc(6);
  int rc = CNF_ENOMEM, sign = 0;
  if (V != NULL && Vi != NULL && perm != NULL) {
    for (size_t m = 0; m < 6; m++)
      for (size_t k = 0; k < 6; k++) gsl_matrix_set(V, m, k, pow((double)m - 2.5, (double)k));
    rc = gsl_linalg_LU_decomp(V, perm, &sign) == 0 && gsl_linalg_LU_invert(V, perm, Vi) == 0
             ? 0
             : CNF_ESOLVER;
    for (size_t k = 0; k < 6 && rc == 0; k++)
      for (size_t m = 0; m < 6; m++) C[k * 6 + m] = gsl_matrix_get(Vi, k, m);
  }
  if (perm != NULL) gsl_permutation_free(perm);
  if (Vi != NULL) gsl_matrix_free(Vi);
  if (V != NULL) gsl_matrix_free(V);
  return rc;
}

void cnf_pde_dw_config_default(cnf_pde_dw_config *c, size_t d, double T) {
  memset(c, 0, sizeof *c);
  c->d = d;
  c->T = T;
  c->diffusion = 1.0;
  c->L = 5.0;
  c->cells = 1000;
  c->Q = NULL;
}

static cnf_pde_dw *dw_alloc(size_t d, dw_table *tb, const double *Q) {
  cnf_pde_dw *dw = cnf__calloc(1, sizeof *dw);
  if (dw == NULL) return NULL;
  dw->d = d;
  dw->y = cnf__calloc(4 * d + tb->N + 1 + (Q ? d * d : 0), sizeof(double));
  if (dw->y == NULL) {
    cnf__free(dw);
    return NULL;
  }
  dw->g = dw->y + d;
  dw->dv = dw->g + d;
  dw->u = dw->dv + d;
  dw->slice = dw->u + d;
  dw->slice_t = NAN;
  if (Q != NULL) {
    dw->Q = dw->slice + tb->N + 1;
    memcpy(dw->Q, Q, d * d * sizeof(double));
  }
  dw->tb = tb;
  tb->refs++;
  return dw;
}

void cnf_pde_dw_free(cnf_pde_dw *dw) {
  if (dw == NULL) return;
  table_release(dw->tb);
  cnf__free(dw->y);
  cnf__free(dw);
}

int cnf_pde_dw_create(cnf_pde_dw **out, cnf_ctx *ctx, const cnf_pde_dw_config *cfg) {
  if (out == NULL || cfg == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "double-well problem: bad arguments");
  *out = NULL;
  const size_t N = cfg->cells;
  if (cfg->d == 0 || !(cfg->T > 0) || !(cfg->T <= 1000) || !(cfg->diffusion >= 0.1) ||
      !(cfg->diffusion <= 100) || !(cfg->L >= 3) || N < 16 || N % 4 != 0 || N > 1000000)
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "double-well problem: need d > 0, 0 < T <= 1000, 0.1 <= D <= 100, L >= 3 "
                     "and 16 <= cells <= 1000000 (a multiple of 4)");
  /* the table holds (levels + 1) (N + 1) values twice: keep it below 1 GB */
  const size_t levels = make_levels(cfg->T, 2.0 * cfg->L / (double)N, NULL);
  if ((double)(levels + 1) * (double)(N + 1) > 6.0e7)
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "double-well problem: T = %g on %zu cells needs a reference table of "
                     "%zu x %zu values; use a shorter time or fewer cells",
                     cfg->T, N, levels + 1, N + 1);
  dw_table *tb = cnf__calloc(1, sizeof *tb);
  grid_runs r0, r1;
  memset(&r0, 0, sizeof r0);
  memset(&r1, 0, sizeof r1);
  int rc = 0;
  if (tb == NULL) CNF_TRY(CNF_ENOMEM);
  tb->refs = 1;
  tb->N = N, tb->L = cfg->L, tb->Dc = cfg->diffusion, tb->T = cfg->T;
  tb->h = 2.0 * cfg->L / (double)N;
  tb->logZ = cnf_pde_dw_logZ1(tb->Dc);
  tb->M = make_levels(cfg->T, tb->h, NULL);
  tb->tk = cnf__calloc(tb->M + 1, sizeof(double));
  tb->l = cnf__calloc((tb->M + 1) * (N + 1), sizeof(double));
  tb->lt = cnf__calloc((tb->M + 1) * (N + 1), sizeof(double));
  if (tb->tk == NULL || tb->l == NULL || tb->lt == NULL) CNF_TRY(CNF_ENOMEM);
  make_levels(cfg->T, tb->h, tb->tk);
  CNF_TRY(interp_matrix(tb->C));
  CNF_TRY(runs_init(&r0, tb->Dc, tb->L, N));
  CNF_TRY(runs_init(&r1, tb->Dc, tb->L, 2 * N));
  for (size_t k = 0; k <= tb->M; k++) {
    const double dt = k > 0 ? tb->tk[k] - tb->tk[k - 1] : 0.0;
    CNF_TRY(runs_step(&r0, dt));
    CNF_TRY(runs_step(&r1, dt));
    double *l = tb->l + k * (N + 1), *lt = tb->lt + k * (N + 1);
    for (size_t i = 0; i <= N; i++) {
      l[i] = (4.0 * r1.lx[2 * i] - r0.lx[i]) / 3.0;
      lt[i] = (4.0 * r1.ltx[2 * i] - r0.ltx[i]) / 3.0;
    }
  }
  if (!isfinite(tb->logZ)) CNF_TRY(CNF_ESOLVER);
  cnf_pde_dw *dw = dw_alloc(cfg->d, tb, cfg->Q);
  if (dw == NULL) CNF_TRY(CNF_ENOMEM);
  table_release(tb); /* dw holds it now */
  tb = NULL;
  *out = dw;
cleanup:
  runs_free(&r0);
  runs_free(&r1);
  if (tb != NULL) {
    tb->refs = 1;
    table_release(tb);
  }
  if (rc == CNF_ENOMEM) return CNF_ERROR(ctx, rc, "double-well problem: out of memory");
  if (rc != 0) return CNF_ERROR(ctx, rc, "double-well problem: the 1-D reference failed");
  return 0;
}

size_t cnf_pde_dw_dim(const cnf_pde_dw *dw) { return dw->d; }
double cnf_pde_dw_diffusion(const cnf_pde_dw *dw) { return dw->tb->Dc; }
double cnf_pde_dw_end_time(const cnf_pde_dw *dw) { return dw->tb->T; }

/* slice (N+1) = l(., t) by cubic Hermite in t (t clamped to [0, T]) */
static void dw_slice(cnf_pde_dw *dw, double t) {
  if (t == dw->slice_t) return;
  const dw_table *tb = dw->tb;
  const size_t N = tb->N;
  double tc = fmin(fmax(t, 0.0), tb->T);
  size_t lo = 0, hi = tb->M;
  while (hi - lo > 1) {
    size_t mid = (lo + hi) / 2;
    if (tb->tk[mid] <= tc) lo = mid;
    else hi = mid;
  }
  const double dt = tb->tk[hi] - tb->tk[lo], s = (tc - tb->tk[lo]) / dt;
  const double h00 = (1 + 2 * s) * (1 - s) * (1 - s), h10 = s * (1 - s) * (1 - s) * dt;
  const double h01 = s * s * (3 - 2 * s), h11 = s * s * (s - 1) * dt;
  const double *l0 = tb->l + lo * (N + 1), *l1 = tb->l + hi * (N + 1);
  const double *d0 = tb->lt + lo * (N + 1), *d1 = tb->lt + hi * (N + 1);
  for (size_t i = 0; i <= N; i++)
    dw->slice[i] = h00 * l0[i] + h10 * d0[i] + h01 * l1[i] + h11 * d1[i];
  dw->slice_t = t;
}

/* l, dl/dy, d2l/dy2 at y from the current slice */
static void dw_eval(const cnf_pde_dw *dw, double y, double *l, double *l1, double *l2) {
  const dw_table *tb = dw->tb;
  const double L = tb->L, h = tb->h;
  const double ye = fmin(fmax(y, -L), L);
  double j = floor((ye + L) / h) - 2.0;
  if (j < 0) j = 0;
  if (j > (double)tb->N - 5) j = (double)tb->N - 5;
  const size_t s0 = (size_t)j;
  const double u = (ye - (-L + (double)s0 * h)) / h - 2.5;
  const double *f = dw->slice + s0;
  double c[6];
  for (int k = 0; k < 6; k++) {
    double a = 0.0;
    for (int m = 0; m < 6; m++) a += tb->C[k * 6 + m] * f[m];
    c[k] = a;
  }
  double p = c[5], p1 = 5 * c[5], p2 = 20 * c[5];
  for (int k = 4; k >= 0; k--) p = p * u + c[k];
  for (int k = 4; k >= 1; k--) p1 = p1 * u + k * c[k];
  for (int k = 4; k >= 2; k--) p2 = p2 * u + k * (k - 1) * c[k];
  p1 /= h;
  p2 /= h * h;
  if (y == ye) {
    *l = p, *l1 = p1, *l2 = p2;
    return;
  }
  /* the stationary tail beyond the grid, C^1 at the edge */
  const double Dc = tb->Dc;
  const double a = p1 + dw_V1(ye) / Dc;
  *l = p + a * (y - ye) - (dw_V(y) - dw_V(ye)) / Dc;
  *l1 = a - dw_V1(y) / Dc;
  *l2 = -dw_V2(y) / Dc;
}

int cnf_pde_dw_eval1(cnf_pde_dw *dw, double t, size_t n, const double *y, double *l,
                     double *score, double *dscore) {
  if (dw == NULL || y == NULL) return CNF_EINVAL;
  dw_slice(dw, t);
  for (size_t i = 0; i < n; i++) {
    double a, b, c;
    dw_eval(dw, y[i], &a, &b, &c);
    if (l != NULL) l[i] = a;
    if (score != NULL) score[i] = b;
    if (dscore != NULL) dscore[i] = c;
  }
  return 0;
}

/* y (d) = Q^T x */
static void to_y(const cnf_pde_dw *dw, const double *x, double *y) {
  const size_t d = dw->d;
  if (dw->Q == NULL) {
    memcpy(y, x, d * sizeof(double));
    return;
  }
  cblas_dgemv(CblasRowMajor, CblasTrans, (int)d, (int)d, 1.0, dw->Q, (int)d, x, 1, 0.0, y, 1);
}

/* x (d) = Q y */
static void to_x(const cnf_pde_dw *dw, const double *y, double *x) {
  const size_t d = dw->d;
  if (dw->Q == NULL) {
    memcpy(x, y, d * sizeof(double));
    return;
  }
  cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)d, (int)d, 1.0, dw->Q, (int)d, y, 1, 0.0, x, 1);
}

/* The three separable log-densities: sum over the coordinates y = Q^T x of
 * a 1-D log-density l1 (the reference at the current slice, p0, p_inf). */
typedef double (*dw_l1_fn)(const cnf_pde_dw *dw, double y);

static double l1_slice(const cnf_pde_dw *dw, double y) {
  double l, l1, l2;
  dw_eval(dw, y, &l, &l1, &l2);
  return l;
}
static double l1_p0(const cnf_pde_dw *dw, double y) {
  (void)dw;
  return cnf_pde_dw_p0_1d(y);
}
static double l1_inf(const cnf_pde_dw *dw, double y) {
  return -dw_V(y) / dw->tb->Dc - dw->tb->logZ;
}

static int sum_l1(cnf_pde_dw *dw, size_t B, const double *x, double *logp, dw_l1_fn l1) {
  if (dw == NULL || x == NULL || logp == NULL) return CNF_EINVAL;
  const size_t d = dw->d;
  for (size_t b = 0; b < B; b++) {
    to_y(dw, x + b * d, dw->y);
    double s = 0.0;
    for (size_t i = 0; i < d; i++) s += l1(dw, dw->y[i]);
    logp[b] = s;
  }
  return 0;
}

int cnf_pde_dw_logp(cnf_pde_dw *dw, double t, size_t B, const double *x, double *logp) {
  if (dw == NULL) return CNF_EINVAL;
  dw_slice(dw, t);
  return sum_l1(dw, B, x, logp, l1_slice);
}

int cnf_pde_dw_logp0(cnf_pde_dw *dw, size_t B, const double *x, double *logp) {
  return sum_l1(dw, B, x, logp, l1_p0);
}

int cnf_pde_dw_logp_inf(cnf_pde_dw *dw, size_t B, const double *x, double *logp) {
  return sum_l1(dw, B, x, logp, l1_inf);
}

int cnf_pde_dw_sample0(cnf_pde_dw *dw, uint64_t seed, size_t B, double *x) {
  if (dw == NULL || x == NULL) return CNF_EINVAL;
  gsl_rng *r = cnf__pde_rng(seed);
  if (r == NULL) return CNF_ENOMEM;
  const size_t d = dw->d;
  for (size_t b = 0; b < B; b++) {
    for (size_t i = 0; i < d; i++) dw->y[i] = DW_MEAN0 + gsl_ran_gaussian_ziggurat(r, DW_SD0);
    to_x(dw, dw->y, x + b * d);
  }
  gsl_rng_free(r);
  return 0;
}

int cnf_pde_dw_em(cnf_pde_dw *dw, uint64_t seed, double t0, double t1, double dt, size_t B,
                  double *x) {
  if (dw == NULL || x == NULL || !(t1 >= t0) || !(dt > 0)) return CNF_EINVAL;
  if (t1 == t0) return 0;
  gsl_rng *r = cnf__pde_rng(seed);
  if (r == NULL) return CNF_ENOMEM;
  const size_t d = dw->d;
  size_t n = (size_t)ceil((t1 - t0) / dt - 1e-9);
  if (n == 0) n = 1;
  const double h = (t1 - t0) / (double)n, sd = sqrt(2.0 * dw->tb->Dc * h);
  for (size_t b = 0; b < B; b++) {
    to_y(dw, x + b * d, dw->y);
    for (size_t k = 0; k < n; k++)
      for (size_t i = 0; i < d; i++)
        dw->y[i] += -dw_V1(dw->y[i]) * h + gsl_ran_gaussian_ziggurat(r, sd);
    to_x(dw, dw->y, x + b * d);
  }
  gsl_rng_free(r);
  return 0;
}

/* Simpson weights on nodes lo..hi (hi - lo even) times h */
static double simpson(const double *f, size_t lo, size_t hi, double h) {
  double s = f[lo] + f[hi];
  for (size_t i = lo + 1; i < hi; i++) s += ((i - lo) % 2 ? 4.0 : 2.0) * f[i];
  return s * h / 3.0;
}

double cnf_pde_dw_mass_left(cnf_pde_dw *dw, double t) {
  dw_slice(dw, t);
  const size_t N = dw->tb->N;
  double *p = cnf__calloc(N + 1, sizeof(double));
  if (p == NULL) return NAN;
  for (size_t i = 0; i <= N; i++) p[i] = exp(dw->slice[i]);
  /* y = 0 is node N/2; N/2 is even */
  const double m = simpson(p, 0, N / 2, dw->tb->h);
  cnf__free(p);
  return m;
}

double cnf_pde_dw_left_fraction(cnf_pde_dw *dw, size_t B, const double *x) {
  if (dw == NULL || x == NULL || B == 0) return NAN;
  const size_t d = dw->d;
  double left = 0.0;
  for (size_t b = 0; b < B; b++) {
    to_y(dw, x + b * d, dw->y);
    double acc = 0.0;
    for (size_t i = 0; i < d; i++) acc += dw->y[i] < 0;
    left += acc / (double)(B * d);
  }
  return left;
}

double cnf_pde_dw_kl_inf(cnf_pde_dw *dw, double t) {
  dw_slice(dw, t);
  const dw_table *tb = dw->tb;
  const size_t N = tb->N;
  double *f = cnf__calloc(N + 1, sizeof(double));
  if (f == NULL) return NAN;
  for (size_t i = 0; i <= N; i++) {
    const double y = -tb->L + (double)i * tb->h, l = dw->slice[i];
    f[i] = exp(l) * (l + dw_V(y) / tb->Dc + tb->logZ);
  }
  const double kl = simpson(f, 0, N, tb->h) * (double)dw->d;
  cnf__free(f);
  return kl;
}

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int cnf_pde_dw_w2_marginals(cnf_ctx *ctx, cnf_pde_dw *dw, double t, size_t B, const double *x,
                            double *w2) {
  if (dw == NULL || x == NULL || w2 == NULL || B == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "W2 of the marginals: bad arguments");
  const dw_table *tb = dw->tb;
  const size_t d = dw->d, N = tb->N;
  double *ys = cnf__dalloc(ctx, B * d + 2 * (N + 1));
  if (ys == NULL) return CNF_ENOMEM;
  double *cdf = ys + B * d, *p = cdf + N + 1;
  for (size_t b = 0; b < B; b++) {
    to_y(dw, x + b * d, dw->y);
    for (size_t i = 0; i < d; i++) ys[i * B + b] = dw->y[i];
  }
  dw_slice(dw, t);
  for (size_t i = 0; i <= N; i++) p[i] = exp(dw->slice[i]);
  cdf[0] = 0.0;
  for (size_t i = 1; i <= N; i++) cdf[i] = cdf[i - 1] + 0.5 * tb->h * (p[i - 1] + p[i]);
  const double total = cdf[N];
  double sum = 0.0;
  for (size_t i = 0; i < d; i++) {
    double *s = ys + i * B, acc = 0.0;
    qsort(s, B, sizeof(double), cmp_double);
    size_t j = 0;
    for (size_t k = 0; k < B; k++) {
      const double u = ((double)k + 0.5) / (double)B * total;
      while (j + 1 < N && cdf[j + 1] < u) j++;
      const double w = cdf[j + 1] > cdf[j] ? (u - cdf[j]) / (cdf[j + 1] - cdf[j]) : 0.5;
      const double q = -tb->L + ((double)j + fmin(fmax(w, 0.0), 1.0)) * tb->h;
      acc += (s[k] - q) * (s[k] - q);
    }
    sum += sqrt(acc / (double)B);
  }
  *w2 = sum / (double)d;
  cnf__free(ys);
  return 0;
}

/* ---- the field -------------------------------------------------------------------- */

/* For row x: dw->y = Q^T x, dw->g = v1(y), dw->dv = v1'(y); dz = Q v1. */
static void dw_row(cnf_pde_dw *dw, const double *x, double *dz) {
  const size_t d = dw->d;
  const double Dc = dw->tb->Dc;
  to_y(dw, x, dw->y);
  for (size_t i = 0; i < d; i++) {
    double l, l1, l2;
    const double y = dw->y[i];
    dw_eval(dw, y, &l, &l1, &l2);
    dw->g[i] = -dw_V1(y) - Dc * l1;
    dw->dv[i] = -dw_V2(y) - Dc * l2;
  }
  if (dz != NULL) to_x(dw, dw->g, dz);
}

static int dw_f(void *s, double t, size_t B, const double *z, const double *theta, double *dz) {
  (void)theta;
  cnf_pde_dw *dw = s;
  dw_slice(dw, t);
  for (size_t b = 0; b < B; b++) dw_row(dw, z + b * dw->d, dz + b * dw->d);
  return 0;
}

/* dw->u = Q^T v_kb (v NULL: row k of Q, i.e. Q^T e_k) */
static void dw_dir(cnf_pde_dw *dw, const double *v, size_t k, size_t b, size_t B) {
  const size_t d = dw->d;
  if (v != NULL) {
    to_y(dw, v + (k * B + b) * d, dw->u);
  } else if (dw->Q != NULL) {
    memcpy(dw->u, dw->Q + k * d, d * sizeof(double));
  } else {
    memset(dw->u, 0, d * sizeof(double));
    dw->u[k] = 1.0;
  }
}

static int dw_f_div(void *s, double t, size_t B, size_t K, const double *z, const double *theta,
                    const double *v, double *dz, double *div) {
  (void)theta;
  cnf_pde_dw *dw = s;
  const size_t d = dw->d;
  dw_slice(dw, t);
  for (size_t b = 0; b < B; b++) {
    dw_row(dw, z + b * d, dz + b * d);
    double acc = 0.0;
    if (v == NULL) {
      for (size_t i = 0; i < d; i++) acc += dw->dv[i];
    } else {
      for (size_t k = 0; k < K; k++) {
        dw_dir(dw, v, k, b, B);
        for (size_t i = 0; i < d; i++) acc += dw->dv[i] * dw->u[i] * dw->u[i];
      }
    }
    div[b] = acc;
  }
  return 0;
}

static int dw_jvp(void *s, double t, size_t B, size_t K, const double *z, const double *theta,
                  const double *v, double *dz, double *jv) {
  (void)theta;
  cnf_pde_dw *dw = s;
  const size_t d = dw->d;
  dw_slice(dw, t);
  for (size_t b = 0; b < B; b++) {
    dw_row(dw, z + b * d, dz != NULL ? dz + b * d : NULL);
    for (size_t k = 0; k < K; k++) {
      dw_dir(dw, v, k, b, B);
      for (size_t i = 0; i < d; i++) dw->u[i] *= dw->dv[i];
      to_x(dw, dw->u, jv + (k * B + b) * d);
    }
  }
  return 0;
}

static void dw_free_op(void *s) { cnf_pde_dw_free(s); }

static const cnf_dyn_type dw_type = {
    .name = "pde-double-well",
    .f = dw_f,
    .f_div = dw_f_div,
    .jvp = dw_jvp,
    .free = dw_free_op,
};

int cnf_pde_dw_dyn(cnf_dyn **out, cnf_ctx *ctx, const cnf_pde_dw *dw) {
  if (out == NULL || dw == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "double-well field: bad arguments");
  *out = NULL;
  cnf_pde_dw *view = dw_alloc(dw->d, dw->tb, dw->Q);
  if (view == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "double-well field: out of memory");
  int rc = cnf_dyn_create(out, ctx, &dw_type, view, 1, dw->d, 0);
  if (rc != 0) cnf_pde_dw_free(view);
  return rc;
}
