/* cnf_testing.c: see cnf_testing.h. */
#include "cnf_testing.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>


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
