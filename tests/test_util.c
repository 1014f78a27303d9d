/* test_util.c: see test_util.h. */
#include "test_util.h"

#include <math.h>
#include <stdio.h>

#include <CUnit/Basic.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_matrix.h>
#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

int check_close(const double *a, const double *b, size_t n, double rtol,
                double atol, const char *label) {
  double worst = 0.0;
  size_t iw = 0, bad = 0;
  for (size_t i = 0; i < n; i++) {
    double e = fabs(a[i] - b[i]) / (atol + rtol * fabs(b[i]));
    if (!(e <= 1.0)) {
      if (bad < 3)
        printf("\n  %s[%zu]: %.17g vs %.17g", label, i, a[i], b[i]);
      bad++;
    }
    if (!(e <= worst)) worst = e, iw = i;
  }
  if (bad > 0 || n == 0) {
    printf("\n  %s: NOT OK, %zu of %zu outside rtol %.2g atol %.2g; worst [%zu] "
           "%.17g vs %.17g\n", label, bad, n, rtol, atol, iw,
           n ? a[iw] : 0.0, n ? b[iw] : 0.0);
    return 0;
  }
  return 1;
}

static gsl_rng *rng_for(uint64_t seed) {
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  gsl_rng_set(r, (unsigned long)(seed % 4294967291ULL) + 1UL);
  return r;
}

void fill_uniform(double *x, size_t n, double lo, double hi, uint64_t seed) {
  gsl_rng *r = rng_for(seed);
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * gsl_rng_uniform(r);
  gsl_rng_free(r);
}

void fill_gauss(double *x, size_t n, uint64_t seed) {
  gsl_rng *r = rng_for(seed);
  for (size_t i = 0; i < n; i++) x[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
  gsl_rng_free(r);
}

double central_diff(scalar_fn g, double *x, size_t i, double h, void *user) {
  double old = x[i];
  x[i] = old + h;
  double gp = g(x, user);
  x[i] = old - h;
  double gm = g(x, user);
  x[i] = old;
  return (gp - gm) / (2.0 * h);
}

int run_suites(const char *const *names, const test_entry *const *tests,
               size_t n) {
  if (CU_initialize_registry() != CUE_SUCCESS) return 2;
  for (size_t s = 0; s < n; s++) {
    CU_pSuite suite = CU_add_suite(names[s], NULL, NULL);
    if (suite == NULL) return 2;
    for (const test_entry *t = tests[s]; t->name != NULL; t++)
      if (CU_add_test(suite, t->name, t->fn) == NULL) return 2;
  }
  CU_basic_set_mode(CU_BRM_VERBOSE);
  CU_basic_run_tests();
  unsigned failed = CU_get_number_of_failures();
  unsigned run = CU_get_number_of_tests_run();
  CU_cleanup_registry();
  if (run == 0) return 1;
  return failed == 0 ? 0 : 1;
}

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
