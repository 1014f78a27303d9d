/* pde.c: benchmark PDE problems with closed forms (cnf_pde.h).
 *
 * Convention: dx/dt = v(x, t), dDelta/dt = -div v, so
 * log p_t(x(t)) = log p0(x(0)) + Delta(t).
 *
 * P1a  v = A x.  x(t) = expm(t A) x0, Delta(t) = -t tr A; for p0 = N(0, I)
 *      log p_t(x) = log N(expm(-t A) x) - t tr A.  The field is the linear
 *      field of fields.c with theta = [A, 0].
 *
 * P2   Heat equation dp/dt = Dc lap p, p0 = sum_k w_k N(mu_k, c0 I).
 *      p_t = sum_k w_k N(mu_k, c I), c = c0 + 2 Dc t.  With
 *      s_k = -(x - mu_k)/c, r_k = responsibilities, s = sum_k r_k s_k:
 *        v = -Dc s = Dc (x - mbar)/c,   mbar = sum_k r_k mu_k,
 *        H = grad s = -I/c + sum_k r_k s_k s_k^T - s s^T  (J = -Dc H),
 *        u.Hu = -|u|^2/c + sum_k r_k (s_k.u)^2 - (s.u)^2,
 *        tr H = -d/c + sum_k r_k |s_k|^2 - |s|^2,
 *      and |s|^2 = |v|^2 / Dc^2.  Only 4 scalars per row: no workspace
 *      beyond a unit vector for the v == NULL case.
 *
 * P3   OU with drift -A (x - b), diffusion I, p0 = N(0, I).  A = Q L Q^T
 *      (GSL symmetric eigensolver).  In the eigenbasis (w = Q^T x,
 *      qb = Q^T b):  qm_j(t) = (1 - e^{-l_j t}) qb_j,
 *      sig_j(t) = (1 - e^{-2 l_j t})/l_j + e^{-2 l_j t}, and
 *        v = Q g,  g_j = -l_j (w_j - qb_j) + (w_j - qm_j)/sig_j,
 *        J = Q diag(mu) Q^T, mu_j = -l_j + 1/sig_j (symmetric, constant
 *        in x), div v = sum_j mu_j = -tr A + tr Sigma_t^{-1}.
 *      Batches go through GEMMs (Z Q, then G Q^T; V Q for the tangents)
 *      in a workspace sized by the reserve op; without it, rows one at a
 *      time with d-sized workspaces allocated at create.
 *
 * Metrics: LPE, sample moments, Gaussian errors and W2 (symmetric square
 * roots by eigendecomposition), closed-form Hutchinson variances. */
#include <math.h>
#include <string.h>

/* gsl_linalg.h brings GSL's declaration of the standard CBLAS interface,
 * which conflicts with OpenBLAS's cblas.h; the calls resolve to OpenBLAS. */
#include <gsl/gsl_cblas.h>
#include <gsl/gsl_eigen.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "cnf_pde.h"
#include "core.h"
#include "pde_impl.h"

#define LOG2PI 1.8378770664093454836

gsl_rng *cnf__pde_rng(uint64_t seed) {
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (r != NULL) gsl_rng_set(r, cnf__seed32(seed));
  return r;
}

/* Eigendecomposition of a symmetric S (d, d): evals (d), V (d, d) row-major
 * with the eigenvectors as columns. */
static int sym_eig(size_t d, const double *S, double *evals, double *V) {
  gsl_matrix *a = gsl_matrix_alloc(d, d), *v = gsl_matrix_alloc(d, d);
  gsl_vector *e = gsl_vector_alloc(d);
  gsl_eigen_symmv_workspace *w = gsl_eigen_symmv_alloc(d);
  int rc = CNF_ENOMEM;
  if (a != NULL && v != NULL && e != NULL && w != NULL) {
    for (size_t i = 0; i < d; i++)
      for (size_t j = 0; j < d; j++)
        gsl_matrix_set(a, i, j, 0.5 * (S[i * d + j] + S[j * d + i]));
    rc = gsl_eigen_symmv(a, e, v, w) == 0 ? 0 : CNF_ESOLVER;
    for (size_t i = 0; i < d && rc == 0; i++) {
      evals[i] = gsl_vector_get(e, i);
      for (size_t j = 0; j < d; j++) V[i * d + j] = gsl_matrix_get(v, i, j);
    }
  }
  if (w != NULL) gsl_eigen_symmv_free(w);
  if (e != NULL) gsl_vector_free(e);
  if (v != NULL) gsl_matrix_free(v);
  if (a != NULL) gsl_matrix_free(a);
  return rc;
}

int cnf_pde_random_orthogonal(cnf_ctx *ctx, size_t d, uint64_t seed, double *Q) {
  if (d == 0 || Q == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "random orthogonal: bad arguments");
  gsl_matrix *a = gsl_matrix_alloc(d, d), *q = gsl_matrix_alloc(d, d), *r = gsl_matrix_alloc(d, d);
  gsl_vector *tau = gsl_vector_alloc(d);
  gsl_rng *rng = cnf__pde_rng(seed);
  int rc = CNF_ENOMEM;
  if (a != NULL && q != NULL && r != NULL && tau != NULL && rng != NULL) {
    for (size_t i = 0; i < d * d; i++) a->data[i] = gsl_ran_gaussian_ziggurat(rng, 1.0);
    rc = gsl_linalg_QR_decomp(a, tau) == 0 && gsl_linalg_QR_unpack(a, tau, q, r) == 0
             ? 0
             : CNF_ESOLVER;
    /* columns signed by diag(R): Haar-distributed */
    for (size_t i = 0; i < d && rc == 0; i++)
      for (size_t j = 0; j < d; j++)
        Q[i * d + j] = gsl_matrix_get(q, i, j) * (gsl_matrix_get(r, j, j) < 0 ? -1.0 : 1.0);
  }
  if (rng != NULL) gsl_rng_free(rng);
  if (tau != NULL) gsl_vector_free(tau);
  if (r != NULL) gsl_matrix_free(r);
  if (q != NULL) gsl_matrix_free(q);
  if (a != NULL) gsl_matrix_free(a);
  return rc == 0 ? 0 : CNF_ERROR(ctx, rc, "random orthogonal: GSL failed");
}

/* ---- P1a ---------------------------------------------------------------- */

int cnf_pde_p1a_matrix(cnf_ctx *ctx, cnf_pde_amat kind, size_t D, double gamma,
                       double omega, uint64_t seed, double *A) {
  if (D == 0 || A == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "P1a matrix: need D > 0 and A");
  memset(A, 0, D * D * sizeof *A);
  if (kind == CNF_PDE_A_ROTATION) {
    for (size_t i = 0; i < D; i++) A[i * D + i] = -gamma;
    for (size_t i = 0; i + 1 < D; i += 2) {
      A[i * D + i + 1] = -omega;
      A[(i + 1) * D + i] = omega;
    }
    return 0;
  }
  if (kind != CNF_PDE_A_DENSE)
    return CNF_ERROR(ctx, CNF_EINVAL, "P1a matrix: unknown kind %d", (int)kind);
  gsl_rng *r = cnf__pde_rng(seed);
  if (r == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "P1a matrix: out of memory");
  const double sd = 1.0 / sqrt((double)D);
  for (size_t i = 0; i < D * D; i++) A[i] = gsl_ran_gaussian_ziggurat(r, sd);
  for (size_t i = 0; i < D; i++) A[i * D + i] -= 1.0;
  gsl_rng_free(r);
  return 0;
}

int cnf_pde_expm(cnf_ctx *ctx, size_t D, const double *A, double t, double *E) {
  if (D == 0 || A == NULL || E == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "expm: bad arguments");
  gsl_matrix *a = gsl_matrix_alloc(D, D), *e = gsl_matrix_alloc(D, D);
  int rc = 0;
  if (a == NULL || e == NULL) {
    rc = CNF_ERROR(ctx, CNF_ENOMEM, "expm: out of memory");
  } else {
    for (size_t i = 0; i < D; i++)
      for (size_t j = 0; j < D; j++) gsl_matrix_set(a, i, j, t * A[i * D + j]);
    if (gsl_linalg_exponential_ss(a, e, GSL_PREC_DOUBLE) != 0) {
      rc = CNF_ERROR(ctx, CNF_ESOLVER, "expm: GSL failed");
    } else {
      for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j < D; j++) E[i * D + j] = gsl_matrix_get(e, i, j);
    }
  }
  if (a != NULL) gsl_matrix_free(a);
  if (e != NULL) gsl_matrix_free(e);
  return rc;
}

int cnf_pde_p1a_flow(cnf_ctx *ctx, size_t D, const double *A, double t,
                     size_t B, const double *x0, double *x) {
  if (x0 == NULL || x == NULL || x0 == x)
    return CNF_ERROR(ctx, CNF_EINVAL, "P1a flow: bad arguments");
  double *E = cnf__dalloc(ctx, D * D);
  if (E == NULL) return CNF_ENOMEM;
  int rc = cnf_pde_expm(ctx, D, A, t, E);
  if (rc == 0 && B > 0)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)D,
                (int)D, 1.0, x0, (int)D, E, (int)D, 0.0, x, (int)D);
  cnf__free(E);
  return rc;
}

int cnf_pde_p1a_logp(cnf_ctx *ctx, size_t D, const double *A, double t,
                     size_t B, const double *x, double *logp) {
  if (x == NULL || logp == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "P1a logp: bad arguments");
  double *x0 = cnf__dalloc(ctx, B * D + 1);
  if (x0 == NULL) return CNF_ENOMEM;
  int rc = cnf_pde_p1a_flow(ctx, D, A, -t, B, x, x0);
  if (rc == 0) {
    double tr = 0.0;
    for (size_t i = 0; i < D; i++) tr += A[i * D + i];
    for (size_t r = 0; r < B; r++) {
      double q = 0.0;
      for (size_t i = 0; i < D; i++) q += x0[r * D + i] * x0[r * D + i];
      logp[r] = -0.5 * (double)D * LOG2PI - 0.5 * q - t * tr;
    }
  }
  cnf__free(x0);
  return rc;
}

/* ---- P1b: the cubic field --------------------------------------------------- */

/* out = Q^T x (transpose) or Q x, the identity for Q NULL; out may not alias x. */
static void qmul(size_t D, const double *Q, int transpose, const double *x, double *out) {
  if (Q == NULL) {
    memcpy(out, x, D * sizeof(double));
    return;
  }
  cblas_dgemv(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, (int)D, (int)D, 1.0, Q,
              (int)D, x, 1, 0.0, out, 1);
}

int cnf_pde_p1b_flow(cnf_ctx *ctx, size_t D, const double *Q, double t, size_t B,
                     const double *x0, double *x) {
  if (D == 0 || x0 == NULL || x == NULL || !(t >= 0))
    return CNF_ERROR(ctx, CNF_EINVAL, "P1b flow: bad arguments (t = %g)", t);
  double *y = cnf__dalloc(ctx, 2 * D);
  if (y == NULL) return CNF_ENOMEM;
  for (size_t r = 0; r < B; r++) {
    qmul(D, Q, 1, x0 + r * D, y);
    for (size_t i = 0; i < D; i++) y[D + i] = y[i] / sqrt(1.0 + 2.0 * t * y[i] * y[i]);
    qmul(D, Q, 0, y + D, x + r * D);
  }
  cnf__free(y);
  return 0;
}

int cnf_pde_p1b_logp(cnf_ctx *ctx, size_t D, const double *Q, double t, size_t B,
                     const double *x, double *logp) {
  if (D == 0 || x == NULL || logp == NULL || !(t >= 0))
    return CNF_ERROR(ctx, CNF_EINVAL, "P1b logp: bad arguments (t = %g)", t);
  double *y = cnf__dalloc(ctx, D);
  if (y == NULL) return CNF_ENOMEM;
  for (size_t r = 0; r < B; r++) {
    qmul(D, Q, 1, x + r * D, y);
    double q = 0.0, lj = 0.0;
    for (size_t i = 0; i < D && isfinite(lj); i++) {
      double c = 1.0 - 2.0 * t * y[i] * y[i];
      if (!(c > 0)) {
        lj = INFINITY; /* outside the support */
        break;
      }
      q += y[i] * y[i] / c; /* |y0|^2 = |x0|^2 (Q orthogonal) */
      lj += log(c);
    }
    logp[r] = isfinite(lj) ? -0.5 * (double)D * LOG2PI - 0.5 * q - 1.5 * lj : -INFINITY;
  }
  cnf__free(y);
  return 0;
}

/* ---- P2: heat equation ---------------------------------------------------- */

#define NK 4

struct cnf_pde_heat {
  size_t d;
  double Dc, c0;
  double w[NK];
  double *mu; /* (NK, d) */
  double *e;  /* (d) unit vector workspace of the field */
};

void cnf_pde_heat_free(cnf_pde_heat *h) {
  if (h == NULL) return;
  cnf__free(h->mu);
  cnf__free(h);
}

int cnf_pde_heat_create(cnf_pde_heat **out, cnf_ctx *ctx, size_t d) {
  if (out == NULL || d < 2)
    return CNF_ERROR(ctx, CNF_EINVAL, "heat problem: need d >= 2");
  *out = NULL;
  cnf_pde_heat *h = cnf__calloc(1, sizeof *h);
  if (h != NULL) h->mu = cnf__calloc((NK + 1) * d, sizeof(double));
  if (h == NULL || h->mu == NULL) {
    cnf_pde_heat_free(h);
    return CNF_ERROR(ctx, CNF_ENOMEM, "heat problem: out of memory");
  }
  h->d = d;
  h->Dc = 0.5;
  h->c0 = 0.25 * 0.25;
  const double w[NK] = {0.1, 0.2, 0.3, 0.4};
  memcpy(h->w, w, sizeof w);
  h->mu[0 * d + 0] = 2.0;
  h->mu[1 * d + 0] = -2.0;
  h->mu[2 * d + 1] = 2.0;
  h->mu[3 * d + 1] = -2.0;
  h->e = h->mu + NK * d;
  *out = h;
  return 0;
}

/* Responsibilities r (NK) and |x - mu_k|^2 (NK) at x; returns log p_t(x). */
static double heat_resp(const cnf_pde_heat *h, double c, const double *x,
                        double *r, double *d2) {
  const size_t d = h->d;
  double lg[NK], mx = -HUGE_VAL;
  for (size_t k = 0; k < NK; k++) {
    const double *mu = h->mu + k * d;
    double q = 0.0;
    for (size_t i = 0; i < d; i++) q += (x[i] - mu[i]) * (x[i] - mu[i]);
    d2[k] = q;
    lg[k] = log(h->w[k]) - 0.5 * q / c;
    mx = fmax(mx, lg[k]);
  }
  double sum = 0.0;
  for (size_t k = 0; k < NK; k++) sum += (r[k] = exp(lg[k] - mx));
  for (size_t k = 0; k < NK; k++) r[k] /= sum;
  return mx + log(sum) - 0.5 * (double)d * (LOG2PI + log(c));
}

int cnf_pde_heat_logp(const cnf_pde_heat *h, double t, size_t B,
                      const double *x, double *logp) {
  if (h == NULL || x == NULL || logp == NULL) return CNF_EINVAL;
  const double c = h->c0 + 2.0 * h->Dc * t;
  if (!(c > 0.0)) return CNF_EINVAL;
  double r[NK], d2[NK];
  for (size_t b = 0; b < B; b++) logp[b] = heat_resp(h, c, x + b * h->d, r, d2);
  return 0;
}

int cnf_pde_heat_sample(const cnf_pde_heat *h, double t, uint64_t seed,
                        size_t B, double *x) {
  if (h == NULL || x == NULL) return CNF_EINVAL;
  const double c = h->c0 + 2.0 * h->Dc * t;
  if (!(c > 0.0)) return CNF_EINVAL;
  gsl_rng *rng = cnf__pde_rng(seed);
  if (rng == NULL) return CNF_ENOMEM;
  const size_t d = h->d;
  const double sd = sqrt(c);
  for (size_t b = 0; b < B; b++) {
    double u = gsl_rng_uniform(rng), acc = 0.0;
    size_t k = 0;
    for (; k + 1 < NK; k++) {
      acc += h->w[k];
      if (u < acc) break;
    }
    for (size_t i = 0; i < d; i++)
      x[b * d + i] = h->mu[k * d + i] + gsl_ran_gaussian_ziggurat(rng, sd);
  }
  gsl_rng_free(rng);
  return 0;
}

/* dz row = Dc (x - mbar)/c; returns the row's r and d2 via heat_resp. */
static void heat_row_f(const cnf_pde_heat *h, double c, const double *x,
                       double *r, double *d2, double *dz) {
  const size_t d = h->d;
  heat_resp(h, c, x, r, d2);
  for (size_t i = 0; i < d; i++) {
    double mbar = 0.0;
    for (size_t k = 0; k < NK; k++) mbar += r[k] * h->mu[k * d + i];
    dz[i] = h->Dc * (x[i] - mbar) / c;
  }
}

/* direction k of row b: v[(k B + b) d] or e_k in h->e */
static const double *heat_dir(cnf_pde_heat *h, const double *v, size_t k,
                              size_t b, size_t B) {
  if (v != NULL) return v + (k * B + b) * h->d;
  memset(h->e, 0, h->d * sizeof(double));
  h->e[k] = 1.0;
  return h->e;
}

/* a_k = s_k.u (NK), returns s.u. */
static double heat_sdots(const cnf_pde_heat *h, double c, const double *x,
                         const double *r, const double *u, double *a) {
  const size_t d = h->d;
  double xu = 0.0;
  for (size_t i = 0; i < d; i++) xu += x[i] * u[i];
  double su = 0.0;
  for (size_t k = 0; k < NK; k++) {
    double mu_u = 0.0;
    for (size_t i = 0; i < d; i++) mu_u += h->mu[k * d + i] * u[i];
    a[k] = -(xu - mu_u) / c;
    su += r[k] * a[k];
  }
  return su;
}

static int heat_f(void *sv, double t, size_t B, const double *z,
                  const double *theta, double *dz) {
  (void)theta;
  const cnf_pde_heat *h = sv;
  const double c = h->c0 + 2.0 * h->Dc * t;
  if (!(c > 0.0)) return -1;
  double r[NK], d2[NK];
  for (size_t b = 0; b < B; b++)
    heat_row_f(h, c, z + b * h->d, r, d2, dz + b * h->d);
  return 0;
}

static int heat_f_div(void *sv, double t, size_t B, size_t K, const double *z,
                      const double *theta, const double *v, double *dz,
                      double *div) {
  (void)theta;
  cnf_pde_heat *h = sv;
  const size_t d = h->d;
  const double c = h->c0 + 2.0 * h->Dc * t;
  if (!(c > 0.0)) return -1;
  double r[NK], d2[NK], a[NK];
  for (size_t b = 0; b < B; b++) {
    const double *x = z + b * d;
    double *f = dz + b * d;
    heat_row_f(h, c, x, r, d2, f);
    double s2 = 0.0;
    for (size_t i = 0; i < d; i++) s2 += f[i] * f[i];
    s2 /= h->Dc * h->Dc;
    double tr;
    if (v == NULL) {
      double sk2 = 0.0;
      for (size_t k = 0; k < NK; k++) sk2 += r[k] * d2[k];
      tr = -(double)d / c + sk2 / (c * c) - s2;
    } else {
      tr = 0.0;
      for (size_t k = 0; k < K; k++) {
        const double *u = heat_dir(h, v, k, b, B);
        double uu = 0.0, rk = 0.0;
        for (size_t i = 0; i < d; i++) uu += u[i] * u[i];
        const double su = heat_sdots(h, c, x, r, u, a);
        for (size_t j = 0; j < NK; j++) rk += r[j] * a[j] * a[j];
        tr += -uu / c + rk - su * su;
      }
    }
    div[b] = -h->Dc * tr;
  }
  return 0;
}

static int heat_jvp(void *sv, double t, size_t B, size_t K, const double *z,
                    const double *theta, const double *v, double *dz,
                    double *jv) {
  (void)theta;
  cnf_pde_heat *h = sv;
  const size_t d = h->d;
  const double c = h->c0 + 2.0 * h->Dc * t;
  if (!(c > 0.0)) return -1;
  if (dz != NULL) heat_f(sv, t, B, z, theta, dz);
  double r[NK], d2[NK], a[NK];
  for (size_t b = 0; b < B; b++) {
    const double *x = z + b * d;
    heat_resp(h, c, x, r, d2);
    for (size_t k = 0; k < K; k++) {
      const double *u = heat_dir(h, v, k, b, B);
      const double su = heat_sdots(h, c, x, r, u, a);
      double *out = jv + (k * B + b) * d;
      for (size_t i = 0; i < d; i++) {
        double s_i = 0.0, acc = 0.0;
        for (size_t j = 0; j < NK; j++) {
          const double sji = -(x[i] - h->mu[j * d + i]) / c;
          s_i += r[j] * sji;
          acc += r[j] * sji * a[j];
        }
        out[i] = -h->Dc * (-u[i] / c + acc - s_i * su);
      }
    }
  }
  return 0;
}

static void heat_free(void *sv) { cnf_pde_heat_free(sv); }

static const cnf_dyn_type heat_type = {
    .name = "pde-heat",
    .f = heat_f,
    .f_div = heat_f_div,
    .jvp = heat_jvp,
    .free = heat_free,
};

int cnf_pde_heat_dyn(cnf_dyn **out, cnf_ctx *ctx, const cnf_pde_heat *h) {
  if (out == NULL || h == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "heat field: bad arguments");
  *out = NULL;
  cnf_pde_heat *copy = NULL;
  int rc = cnf_pde_heat_create(&copy, ctx, h->d);
  if (rc != 0) return rc;
  int r2 = cnf_dyn_create(out, ctx, &heat_type, copy, 1, h->d, 0);
  if (r2 != 0) cnf_pde_heat_free(copy);
  return r2;
}

/* ---- P3: Ornstein-Uhlenbeck ---------------------------------------------- */

struct cnf_pde_ou {
  size_t d;
  double *A;   /* (d, d) */
  double *b;   /* (d) */
  double *Q;   /* (d, d) eigenvectors as columns */
  double *lam; /* (d) */
  double *qb;  /* (d) Q^T b */
  double *qm;  /* (d) workspace: Q^T m_t */
  double *sig; /* (d) workspace: eigenvalues of Sigma_t */
  double *w;   /* (d) workspace */
  double *g;   /* (d) workspace */
  double *ws;  /* (ws_rows, d) batch workspace sized by the reserve op */
  size_t ws_rows;
};

void cnf_pde_ou_free(cnf_pde_ou *ou) {
  if (ou == NULL) return;
  cnf__free(ou->ws);
  cnf__free(ou->A);
  cnf__free(ou);
}

static cnf_pde_ou *ou_alloc(size_t d) {
  cnf_pde_ou *ou = cnf__calloc(1, sizeof *ou);
  if (ou == NULL) return NULL;
  ou->A = cnf__calloc(2 * d * d + 7 * d, sizeof(double));
  if (ou->A == NULL) {
    cnf__free(ou);
    return NULL;
  }
  ou->d = d;
  ou->Q = ou->A + d * d;
  ou->b = ou->Q + d * d;
  ou->lam = ou->b + d;
  ou->qb = ou->lam + d;
  ou->qm = ou->qb + d;
  ou->sig = ou->qm + d;
  ou->w = ou->sig + d;
  ou->g = ou->w + d;
  return ou;
}

static cnf_pde_ou *ou_copy(const cnf_pde_ou *src) {
  cnf_pde_ou *ou = ou_alloc(src->d);
  if (ou != NULL)
    memcpy(ou->A, src->A, (2 * src->d * src->d + 7 * src->d) * sizeof(double));
  return ou;
}

int cnf_pde_ou_create(cnf_pde_ou **out, cnf_ctx *ctx, size_t d, uint64_t seed) {
  if (out == NULL || d == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "OU problem: need d > 0");
  *out = NULL;
  cnf_pde_ou *ou = ou_alloc(d);
  double *G = cnf__dalloc(ctx, d * d);
  gsl_rng *r = cnf__pde_rng(seed);
  if (ou == NULL || G == NULL || r == NULL) {
    cnf_pde_ou_free(ou);
    cnf__free(G);
    if (r != NULL) gsl_rng_free(r);
    return CNF_ERROR(ctx, CNF_ENOMEM, "OU problem: out of memory");
  }
  for (size_t i = 0; i < d * d; i++) G[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
  for (size_t i = 0; i < d; i++) ou->b[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
  gsl_rng_free(r);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)d, (int)d, (int)d,
              1.0 / (double)d, G, (int)d, G, (int)d, 0.0, ou->A, (int)d);
  for (size_t i = 0; i < d; i++) {
    ou->A[i * d + i] += 0.5;
    for (size_t j = 0; j < i; j++) /* exactly symmetric */
      ou->A[i * d + j] = ou->A[j * d + i];
  }
  cnf__free(G);
  int rc = sym_eig(d, ou->A, ou->lam, ou->Q);
  if (rc != 0) {
    cnf_pde_ou_free(ou);
    return CNF_ERROR(ctx, rc, "OU problem: eigendecomposition failed");
  }
  cblas_dgemv(CblasRowMajor, CblasTrans, (int)d, (int)d, 1.0, ou->Q, (int)d,
              ou->b, 1, 0.0, ou->qb, 1);
  *out = ou;
  return 0;
}

const double *cnf_pde_ou_A(const cnf_pde_ou *ou) { return ou->A; }
const double *cnf_pde_ou_b(const cnf_pde_ou *ou) { return ou->b; }

/* qm (d) and sig (d) at time t, in the eigenbasis. */
static void ou_eig_moments(const cnf_pde_ou *ou, double t, double *qm,
                           double *sig) {
  for (size_t j = 0; j < ou->d; j++) {
    const double l = ou->lam[j], e1 = exp(-l * t), e2 = e1 * e1;
    qm[j] = (1.0 - e1) * ou->qb[j];
    sig[j] = -expm1(-2.0 * l * t) / l + e2;
  }
}

void cnf_pde_ou_moments(const cnf_pde_ou *ou, double t, double *m, double *S) {
  const size_t d = ou->d;
  for (size_t i = 0; m != NULL && i < d; i++) {
    double s = 0.0;
    for (size_t j = 0; j < d; j++) {
      const double qm = (1.0 - exp(-ou->lam[j] * t)) * ou->qb[j];
      s += ou->Q[i * d + j] * qm;
    }
    m[i] = s;
  }
  for (size_t i = 0; S != NULL && i < d; i++)
    for (size_t k = 0; k < d; k++) {
      double s = 0.0;
      for (size_t j = 0; j < d; j++) {
        const double l = ou->lam[j];
        const double sig = -expm1(-2.0 * l * t) / l + exp(-2.0 * l * t);
        s += ou->Q[i * d + j] * sig * ou->Q[k * d + j];
      }
      S[i * d + k] = s;
    }
}

double cnf_pde_ou_div(const cnf_pde_ou *ou, double t) {
  double s = 0.0;
  for (size_t j = 0; j < ou->d; j++) {
    const double l = ou->lam[j];
    s += -l + 1.0 / (-expm1(-2.0 * l * t) / l + exp(-2.0 * l * t));
  }
  return s;
}

int cnf_pde_ou_logp(cnf_pde_ou *ou, double t, size_t B, const double *x,
                    double *logp) {
  if (ou == NULL || x == NULL || logp == NULL) return CNF_EINVAL;
  const size_t d = ou->d;
  ou_eig_moments(ou, t, ou->qm, ou->sig);
  double logdet = 0.0;
  for (size_t j = 0; j < d; j++) logdet += log(ou->sig[j]);
  for (size_t b = 0; b < B; b++) {
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)d, (int)d, 1.0, ou->Q, (int)d,
                x + b * d, 1, 0.0, ou->w, 1);
    double q = 0.0;
    for (size_t j = 0; j < d; j++) {
      const double e = ou->w[j] - ou->qm[j];
      q += e * e / ou->sig[j];
    }
    logp[b] = -0.5 * ((double)d * LOG2PI + logdet + q);
  }
  return 0;
}

int cnf_pde_ou_sample(cnf_pde_ou *ou, double t, uint64_t seed, size_t B, double *x) {
  if (ou == NULL || x == NULL || !(t >= 0)) return CNF_EINVAL;
  gsl_rng *r = cnf__pde_rng(seed);
  if (r == NULL) return CNF_ENOMEM;
  const size_t d = ou->d;
  ou_eig_moments(ou, t, ou->qm, ou->sig);
  for (size_t b = 0; b < B; b++) {
    /* x = Q (qm + sig^1/2 xi) */
    for (size_t j = 0; j < d; j++)
      ou->g[j] = ou->qm[j] + sqrt(ou->sig[j]) * gsl_ran_gaussian_ziggurat(r, 1.0);
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)d, (int)d, 1.0, ou->Q, (int)d, ou->g, 1, 0.0,
                x + b * d, 1);
  }
  gsl_rng_free(r);
  return 0;
}

/* out (R, d) = X (R, d) Q (trans 0: rows Q^T x) or X Q^T (trans 1: rows Q x) */
static void ou_gemm(const cnf_pde_ou *ou, int trans, size_t R, const double *X, double *out) {
  const int d = (int)ou->d;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, trans ? CblasTrans : CblasNoTrans, (int)R, d, d, 1.0,
              X, d, ou->Q, d, 0.0, out, d);
}

static int ou_f(void *sv, double t, size_t B, const double *z,
                const double *theta, double *dz) {
  (void)theta;
  cnf_pde_ou *ou = sv;
  const size_t d = ou->d;
  ou_eig_moments(ou, t, ou->qm, ou->sig);
  if (ou->ws_rows >= 2 * B) { /* the batch as two GEMMs */
    double *Y = ou->ws, *G = ou->ws + B * d;
    ou_gemm(ou, 0, B, z, Y);
    for (size_t b = 0; b < B; b++)
      for (size_t j = 0; j < d; j++) {
        const double w = Y[b * d + j];
        G[b * d + j] = -ou->lam[j] * (w - ou->qb[j]) + (w - ou->qm[j]) / ou->sig[j];
      }
    ou_gemm(ou, 1, B, G, dz);
    return 0;
  }
  for (size_t b = 0; b < B; b++) {
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)d, (int)d, 1.0, ou->Q, (int)d,
                z + b * d, 1, 0.0, ou->w, 1);
    for (size_t j = 0; j < d; j++)
      ou->g[j] = -ou->lam[j] * (ou->w[j] - ou->qb[j]) +
                 (ou->w[j] - ou->qm[j]) / ou->sig[j];
    cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)d, (int)d, 1.0, ou->Q,
                (int)d, ou->g, 1, 0.0, dz + b * d, 1);
  }
  return 0;
}

/* Workspace for the GEMM paths: max(2 B, K B) rows. */
static int ou_reserve(void *sv, size_t B, size_t K) {
  cnf_pde_ou *ou = sv;
  const size_t rows = (K > 2 ? K : 2) * B;
  if (rows <= ou->ws_rows) return 0;
  double *ws = cnf__calloc(rows * ou->d, sizeof(double));
  if (ws == NULL) return CNF_ENOMEM;
  cnf__free(ou->ws);
  ou->ws = ws;
  ou->ws_rows = rows;
  return 0;
}

/* u = Q^T v_kb into ou->w (v NULL: row k of Q), after scaling by mu_j when
 * scale != 0; mu_j = -lam_j + 1/sig_j needs ou->sig current. */
static void ou_dir(cnf_pde_ou *ou, const double *v, size_t k, size_t b,
                   size_t B) {
  const size_t d = ou->d;
  if (v != NULL)
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)d, (int)d, 1.0, ou->Q, (int)d,
                v + (k * B + b) * d, 1, 0.0, ou->w, 1);
  else
    memcpy(ou->w, ou->Q + k * d, d * sizeof(double));
}

static int ou_f_div(void *sv, double t, size_t B, size_t K, const double *z,
                    const double *theta, const double *v, double *dz,
                    double *div) {
  cnf_pde_ou *ou = sv;
  const size_t d = ou->d;
  ou_f(sv, t, B, z, theta, dz); /* leaves sig current */
  double tr = 0.0;
  for (size_t j = 0; j < d; j++) tr += -ou->lam[j] + 1.0 / ou->sig[j];
  if (v != NULL && ou->ws_rows >= K * B) { /* U = V Q, one GEMM */
    ou_gemm(ou, 0, K * B, v, ou->ws);
    for (size_t b = 0; b < B; b++) {
      double s = 0.0;
      for (size_t k = 0; k < K; k++) {
        const double *u = ou->ws + (k * B + b) * d;
        for (size_t j = 0; j < d; j++) s += (-ou->lam[j] + 1.0 / ou->sig[j]) * u[j] * u[j];
      }
      div[b] = s;
    }
    return 0;
  }
  for (size_t b = 0; b < B; b++) {
    if (v == NULL) {
      div[b] = tr;
      continue;
    }
    double s = 0.0;
    for (size_t k = 0; k < K; k++) {
      ou_dir(ou, v, k, b, B);
      for (size_t j = 0; j < d; j++)
        s += (-ou->lam[j] + 1.0 / ou->sig[j]) * ou->w[j] * ou->w[j];
    }
    div[b] = s;
  }
  return 0;
}

static int ou_jvp(void *sv, double t, size_t B, size_t K, const double *z,
                  const double *theta, const double *v, double *dz,
                  double *jv) {
  cnf_pde_ou *ou = sv;
  const size_t d = ou->d;
  if (dz != NULL)
    ou_f(sv, t, B, z, theta, dz);
  else
    ou_eig_moments(ou, t, ou->qm, ou->sig);
  if (v != NULL && ou->ws_rows >= K * B) { /* J V = ((V Q) mu) Q^T */
    ou_gemm(ou, 0, K * B, v, ou->ws);
    for (size_t r = 0; r < K * B; r++)
      for (size_t j = 0; j < d; j++) ou->ws[r * d + j] *= -ou->lam[j] + 1.0 / ou->sig[j];
    ou_gemm(ou, 1, K * B, ou->ws, jv);
    return 0;
  }
  for (size_t b = 0; b < B; b++)
    for (size_t k = 0; k < K; k++) {
      ou_dir(ou, v, k, b, B);
      for (size_t j = 0; j < d; j++)
        ou->g[j] = (-ou->lam[j] + 1.0 / ou->sig[j]) * ou->w[j];
      cblas_dgemv(CblasRowMajor, CblasNoTrans, (int)d, (int)d, 1.0, ou->Q,
                  (int)d, ou->g, 1, 0.0, jv + (k * B + b) * d, 1);
    }
  return 0;
}

static void ou_free_op(void *sv) { cnf_pde_ou_free(sv); }

static const cnf_dyn_type ou_type = {
    .name = "pde-ou",
    .f = ou_f,
    .f_div = ou_f_div,
    .jvp = ou_jvp,
    .reserve = ou_reserve,
    .free = ou_free_op,
};

int cnf_pde_ou_dyn(cnf_dyn **out, cnf_ctx *ctx, const cnf_pde_ou *ou) {
  if (out == NULL || ou == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "OU field: bad arguments");
  *out = NULL;
  cnf_pde_ou *copy = ou_copy(ou);
  if (copy == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "OU field: out of memory");
  int rc = cnf_dyn_create(out, ctx, &ou_type, copy, 1, ou->d, 0);
  if (rc != 0) cnf_pde_ou_free(copy);
  return rc;
}

/* ---- metrics ---------------------------------------------------------------- */

void cnf_pde_lpe(size_t B, const double *logp_hat, const double *logp,
                 double *mean, double *max) {
  double s = 0.0, m = 0.0;
  for (size_t b = 0; b < B; b++) {
    const double e = fabs(logp_hat[b] - logp[b]);
    s += e;
    m = e > m || isnan(e) ? e : m;
  }
  if (mean != NULL) *mean = B > 0 ? s / (double)B : 0.0;
  if (max != NULL) *max = m;
}

int cnf_pde_sample_moments(size_t d, size_t B, const double *x, double *m,
                           double *S) {
  if (B < 2 || x == NULL || m == NULL) return CNF_EINVAL;
  for (size_t i = 0; i < d; i++) {
    double s = 0.0;
    for (size_t b = 0; b < B; b++) s += x[b * d + i];
    m[i] = s / (double)B;
  }
  if (S == NULL) return 0;
  for (size_t i = 0; i < d; i++)
    for (size_t j = 0; j <= i; j++) {
      double s = 0.0;
      for (size_t b = 0; b < B; b++)
        s += (x[b * d + i] - m[i]) * (x[b * d + j] - m[j]);
      S[i * d + j] = S[j * d + i] = s / (double)(B - 1);
    }
  return 0;
}

int cnf_pde_gauss_errors(cnf_ctx *ctx, size_t d, const double *m_hat,
                         const double *S_hat, const double *m, const double *S,
                         cnf_pde_gauss_err *out) {
  if (d == 0 || m_hat == NULL || S_hat == NULL || m == NULL || S == NULL ||
      out == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "Gaussian errors: bad arguments");
  double dm = 0.0, nm = 0.0, dS = 0.0, nS = 0.0, trsum = 0.0;
  for (size_t i = 0; i < d; i++) {
    dm += (m_hat[i] - m[i]) * (m_hat[i] - m[i]);
    nm += m[i] * m[i];
    trsum += S_hat[i * d + i] + S[i * d + i];
  }
  for (size_t i = 0; i < d * d; i++) {
    dS += (S_hat[i] - S[i]) * (S_hat[i] - S[i]);
    nS += S[i] * S[i];
  }
  out->mean_rel = nm > 0.0 ? sqrt(dm / nm) : sqrt(dm);
  out->cov_rel = nS > 0.0 ? sqrt(dS / nS) : sqrt(dS);
  /* R = S^1/2, then tr (R S_hat R)^1/2 */
  double *buf = cnf__dalloc(ctx, 3 * d * d + d);
  if (buf == NULL) return CNF_ENOMEM;
  double *V = buf, *R = V + d * d, *M = R + d * d, *ev = M + d * d;
  int rc = sym_eig(d, S, ev, V);
  if (rc == 0) {
    for (size_t i = 0; i < d; i++)
      for (size_t j = 0; j < d; j++) {
        double s = 0.0;
        for (size_t k = 0; k < d; k++)
          s += V[i * d + k] * sqrt(fmax(ev[k], 0.0)) * V[j * d + k];
        R[i * d + j] = s;
      }
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)d,
                (int)d, 1.0, R, (int)d, S_hat, (int)d, 0.0, V, (int)d);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)d, (int)d,
                (int)d, 1.0, V, (int)d, R, (int)d, 0.0, M, (int)d);
    rc = sym_eig(d, M, ev, V);
  }
  if (rc == 0) {
    double tr = 0.0;
    for (size_t k = 0; k < d; k++) tr += sqrt(fmax(ev[k], 0.0));
    out->w2sq = dm + fmax(trsum - 2.0 * tr, 0.0);
  } else {
    rc = CNF_ERROR(ctx, rc, "Gaussian errors: eigendecomposition failed");
  }
  cnf__free(buf);
  return rc;
}

double cnf_pde_hutch_var(cnf_trace trace, size_t d, const double *J) {
  if (trace == CNF_TRACE_EXACT) return 0.0;
  double s = 0.0;
  for (size_t i = 0; i < d; i++)
    for (size_t j = 0; j < d; j++) {
      if (i == j && trace == CNF_TRACE_RADEMACHER) continue;
      const double Sij = 0.5 * (J[i * d + j] + J[j * d + i]);
      s += Sij * Sij;
    }
  return 2.0 * s;
}
