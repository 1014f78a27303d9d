/* fields.c: analytic velocity fields with closed-form flows, for tests and
 * for users who check the machinery.
 *
 * linear   f = A z + b, theta = [A (D, D) row-major, b (D)].
 *          J = A, tr J = tr A; x(t) = expm(t A) x0 when b = 0.
 *          S = sum_b a_b . f_b + sum_b w_b sum_k v_kb . A v_kb gives
 *          dS/dz_b = A^T a_b, dS/dA = sum_b a_b z_b^T + w_b v_kb v_kb^T,
 *          dS/db = sum_b a_b.
 *
 * cubic    f = -Q y^3 with y = Q^T z (Q orthogonal, fixed; P = 0).
 *          J = -Q diag(3 y^2) Q^T (symmetric), tr J = -3 |y|^2.
 *          With u_k = Q^T v_k, v_k . J v_k = -3 sum_i y_i^2 u_ki^2, whose
 *          z-gradient is Q g with g_i = -6 y_i sum_k u_ki^2 (for the exact
 *          trace sum_k u_ki^2 = 1).
 * Rows are processed one sample at a time with D-sized workspaces. */
#include <string.h>

#include <cblas.h>

#include "dyn_impl.h"

/* ---- linear ---------------------------------------------------------- */

typedef struct linear_state {
  size_t D;
} linear_state;

static int linear_f(void *sv, double t, size_t B, const double *z,
                    const double *theta, double *dz) {
  (void)t;
  const linear_state *s = sv;
  const size_t D = s->D;
  const double *A = theta, *b = theta + D * D;
  for (size_t r = 0; r < B; r++) memcpy(dz + r * D, b, D * sizeof(double));
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)D, (int)D,
              1.0, z, (int)D, A, (int)D, 1.0, dz, (int)D);
  return 0;
}

static int linear_jvp(void *sv, double t, size_t B, size_t K, const double *z,
                      const double *theta, const double *v, double *dz,
                      double *jv) {
  const linear_state *s = sv;
  const size_t D = s->D;
  const double *A = theta;
  if (dz != NULL) linear_f(sv, t, B, z, theta, dz);
  if (v != NULL) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(K * B), (int)D,
                (int)D, 1.0, v, (int)D, A, (int)D, 0.0, jv, (int)D);
  } else {
    for (size_t k = 0; k < K; k++)
      for (size_t r = 0; r < B; r++)
        for (size_t i = 0; i < D; i++) jv[(k * B + r) * D + i] = A[i * D + k];
  }
  return 0;
}

static int linear_f_div(void *sv, double t, size_t B, size_t K,
                        const double *z, const double *theta, const double *v,
                        double *dz, double *div) {
  const linear_state *s = sv;
  const size_t D = s->D;
  const double *A = theta;
  linear_f(sv, t, B, z, theta, dz);
  for (size_t r = 0; r < B; r++) {
    double sum = 0.0;
    if (v == NULL) {
      for (size_t i = 0; i < D; i++) sum += A[i * D + i];
    } else {
      for (size_t k = 0; k < K; k++) {
        const double *vk = v + (k * B + r) * D;
        for (size_t i = 0; i < D; i++) {
          double Av = 0.0;
          for (size_t j = 0; j < D; j++) Av += A[i * D + j] * vk[j];
          sum += vk[i] * Av;
        }
      }
    }
    div[r] = sum;
  }
  return 0;
}

static int linear_vjp(void *sv, double t, size_t B, size_t K, const double *z,
                      const double *theta, const double *a, const double *w,
                      const double *v, double *dz, double *gz, double *gth) {
  const linear_state *s = sv;
  if (dz != NULL) linear_f(sv, t, B, z, theta, dz);
  const size_t D = s->D;
  const double *A = theta;
  /* gz = a A (the trace term does not depend on z) */
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)D,
              (int)D, 1.0, a, (int)D, A, (int)D, 0.0, gz, (int)D);
  if (gth == NULL) return 0;
  double *gA = gth, *gb = gth + D * D;
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)D, (int)D, (int)B,
              1.0, a, (int)D, z, (int)D, 1.0, gA, (int)D);
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++) gb[i] += a[r * D + i];
  if (w == NULL) return 0;
  for (size_t r = 0; r < B; r++) {
    if (v == NULL) {
      for (size_t i = 0; i < D; i++) gA[i * D + i] += w[r];
    } else {
      for (size_t k = 0; k < K; k++) {
        const double *vk = v + (k * B + r) * D;
        cblas_dger(CblasRowMajor, (int)D, (int)D, w[r], vk, 1, vk, 1, gA, (int)D);
      }
    }
  }
  return 0;
}

static void plain_free(void *s) { cnf__free(s); }

static const cnf_dyn_type linear_type = {
    .name = "linear",
    .f = linear_f,
    .f_div = linear_f_div,
    .jvp = linear_jvp,
    .vjp = linear_vjp,
    .free = plain_free,
};

int cnf_dyn_linear_create(cnf_dyn **out, cnf_ctx *ctx, size_t D) {
  if (out == NULL || D == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "linear field: need D > 0");
  *out = NULL;
  linear_state *s = cnf__calloc(1, sizeof *s);
  if (s == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "linear field: out of memory");
  s->D = D;
  int rc = cnf_dyn_create(out, ctx, &linear_type, s, 1, D, D * D + D);
  if (rc != 0) cnf__free(s);
  return rc;
}

/* ---- cubic ----------------------------------------------------------- */

typedef struct cubic_state {
  size_t D;
  double *Q;   /* (D, D) or NULL for the identity */
  double *y;   /* (D) Q^T z */
  double *u;   /* (D) Q^T v, Q^T a, ... */
  double *g;   /* (D) */
} cubic_state;

/* out = Q^T x (to = 1) or Q x (to = 0); the identity if Q is NULL. */
static void qmul(const cubic_state *s, int transpose, const double *x,
                 double *out) {
  if (s->Q == NULL) {
    memcpy(out, x, s->D * sizeof(double));
    return;
  }
  cblas_dgemv(CblasRowMajor, transpose ? CblasTrans : CblasNoTrans, (int)s->D,
              (int)s->D, 1.0, s->Q, (int)s->D, x, 1, 0.0, out, 1);
}

static int cubic_f(void *sv, double t, size_t B, const double *z,
                   const double *theta, double *dz) {
  (void)t, (void)theta;
  cubic_state *s = sv;
  const size_t D = s->D;
  for (size_t r = 0; r < B; r++) {
    qmul(s, 1, z + r * D, s->y);
    for (size_t i = 0; i < D; i++) s->g[i] = -s->y[i] * s->y[i] * s->y[i];
    qmul(s, 0, s->g, dz + r * D);
  }
  return 0;
}

/* direction k of sample r into s->u, rotated: u = Q^T v_kr */
static void cubic_dir(cubic_state *s, const double *v, size_t k, size_t r,
                      size_t B) {
  const size_t D = s->D;
  if (v != NULL) {
    qmul(s, 1, v + (k * B + r) * D, s->u);
  } else {
    memset(s->g, 0, D * sizeof(double));
    s->g[k] = 1.0;
    qmul(s, 1, s->g, s->u);
  }
}

static int cubic_jvp(void *sv, double t, size_t B, size_t K, const double *z,
                     const double *theta, const double *v, double *dz,
                     double *jv) {
  cubic_state *s = sv;
  const size_t D = s->D;
  if (dz != NULL) cubic_f(sv, t, B, z, theta, dz);
  for (size_t r = 0; r < B; r++) {
    for (size_t k = 0; k < K; k++) {
      qmul(s, 1, z + r * D, s->y);
      cubic_dir(s, v, k, r, B);
      for (size_t i = 0; i < D; i++) s->u[i] *= -3.0 * s->y[i] * s->y[i];
      qmul(s, 0, s->u, jv + (k * B + r) * D);
    }
  }
  return 0;
}

static int cubic_f_div(void *sv, double t, size_t B, size_t K,
                       const double *z, const double *theta, const double *v,
                       double *dz, double *div) {
  cubic_state *s = sv;
  const size_t D = s->D;
  cubic_f(sv, t, B, z, theta, dz);
  for (size_t r = 0; r < B; r++) {
    qmul(s, 1, z + r * D, s->y);
    double sum = 0.0;
    if (v == NULL) {
      for (size_t i = 0; i < D; i++) sum += -3.0 * s->y[i] * s->y[i];
    } else {
      for (size_t k = 0; k < K; k++) {
        cubic_dir(s, v, k, r, B);
        for (size_t i = 0; i < D; i++)
          sum += -3.0 * s->y[i] * s->y[i] * s->u[i] * s->u[i];
      }
    }
    div[r] = sum;
  }
  return 0;
}

static int cubic_vjp(void *sv, double t, size_t B, size_t K, const double *z,
                     const double *theta, const double *a, const double *w,
                     const double *v, double *dz, double *gz, double *gth) {
  (void)gth;
  cubic_state *s = sv;
  const size_t D = s->D;
  if (dz != NULL) cubic_f(sv, t, B, z, theta, dz);
  for (size_t r = 0; r < B; r++) {
    qmul(s, 1, z + r * D, s->y);
    /* g = -3 y^2 (Q^T a) - 6 y w sum_k u_k^2, then gz = Q g */
    double *acc = gz + r * D; /* holds sum_k u_k^2 until the end */
    for (size_t i = 0; i < D; i++) acc[i] = 0.0;
    if (w != NULL) {
      if (v == NULL) {
        for (size_t i = 0; i < D; i++) acc[i] = 1.0;
      } else {
        for (size_t k = 0; k < K; k++) {
          cubic_dir(s, v, k, r, B);
          for (size_t i = 0; i < D; i++) acc[i] += s->u[i] * s->u[i];
        }
      }
    }
    qmul(s, 1, a + r * D, s->u);
    const double wr = w != NULL ? w[r] : 0.0;
    for (size_t i = 0; i < D; i++)
      s->g[i] = -3.0 * s->y[i] * s->y[i] * s->u[i] - 6.0 * wr * s->y[i] * acc[i];
    qmul(s, 0, s->g, gz + r * D);
  }
  return 0;
}

static void cubic_free(void *sv) {
  cubic_state *s = sv;
  if (s == NULL) return;
  cnf__free(s->Q);
  cnf__free(s->y);
  cnf__free(s);
}

static const cnf_dyn_type cubic_type = {
    .name = "cubic",
    .f = cubic_f,
    .f_div = cubic_f_div,
    .jvp = cubic_jvp,
    .vjp = cubic_vjp,
    .free = cubic_free,
};

int cnf_dyn_cubic_create(cnf_dyn **out, cnf_ctx *ctx, size_t D,
                         const double *Q) {
  if (out == NULL || D == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "cubic field: need D > 0");
  *out = NULL;
  cubic_state *s = cnf__calloc(1, sizeof *s);
  if (s == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "cubic field: out of memory");
  s->D = D;
  s->y = cnf__calloc(3 * D, sizeof(double));
  if (Q != NULL) s->Q = cnf__malloc(D * D * sizeof(double));
  if (s->y == NULL || (Q != NULL && s->Q == NULL)) {
    cubic_free(s);
    return CNF_ERROR(ctx, CNF_ENOMEM, "cubic field: out of memory");
  }
  s->u = s->y + D;
  s->g = s->u + D;
  if (Q != NULL) memcpy(s->Q, Q, D * D * sizeof(double));
  int rc = cnf_dyn_create(out, ctx, &cubic_type, s, 1, D, 0);
  if (rc != 0) cubic_free(s);
  return rc;
}
