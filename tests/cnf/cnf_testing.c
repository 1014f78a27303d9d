/* cnf_testing.c: see cnf_testing.h. */
#include "cnf_testing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>

void random_orthogonal(double *Q, size_t D, uint64_t seed) {
  gsl_matrix *A = gsl_matrix_alloc(D, D), *Qm = gsl_matrix_alloc(D, D),
             *R = gsl_matrix_alloc(D, D);
  gsl_vector *tau = gsl_vector_alloc(D);
  fill_gauss(A->data, D * D, seed); /* tda == D for a fresh matrix */
  gsl_linalg_QR_decomp(A, tau);
  gsl_linalg_QR_unpack(A, tau, Qm, R);
  for (size_t i = 0; i < D; i++)
    for (size_t j = 0; j < D; j++) Q[i * D + j] = gsl_matrix_get(Qm, i, j);
  gsl_vector_free(tau);
  gsl_matrix_free(R);
  gsl_matrix_free(Qm);
  gsl_matrix_free(A);
}

int fd_jacobian(cnf_dyn *dyn, double t, size_t B, const double *z,
                const double *theta, double h, double *J) {
  const size_t D = cnf_dyn_dim(dyn);
  double *zp = malloc(B * D * sizeof *zp), *fp = malloc(B * D * sizeof *fp),
         *fm = malloc(B * D * sizeof *fm);
  int rc = 0;
  for (size_t j = 0; j < D && rc == 0; j++) {
    memcpy(zp, z, B * D * sizeof *zp);
    for (size_t b = 0; b < B; b++) zp[b * D + j] += h;
    rc = cnf_dyn_f(dyn, t, B, zp, theta, fp);
    for (size_t b = 0; b < B; b++) zp[b * D + j] = z[b * D + j] - h;
    if (rc == 0) rc = cnf_dyn_f(dyn, t, B, zp, theta, fm);
    for (size_t b = 0; b < B; b++)
      for (size_t i = 0; i < D; i++)
        J[(b * D + i) * D + j] = (fp[b * D + i] - fm[b * D + i]) / (2.0 * h);
  }
  free(zp);
  free(fp);
  free(fm);
  return rc;
}

double max_abs(const double *x, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
  return m;
}

int check_scaled(const double *a, const double *b, size_t n, double tol,
                 const char *label) {
  double scale = fmax(1e-3, max_abs(b, n));
  return check_close(a, b, n, tol, tol * scale, label);
}

cnf_ctx *new_ctx(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_FATAL(cnf_ctx_create(&ctx) == 0 && ctx != NULL);
  return ctx;
}
