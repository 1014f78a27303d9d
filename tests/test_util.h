/* test_util.h: helpers shared by the CUnit suites: readable numeric
 * comparisons, deterministic random arrays, central differences, and a
 * runner main. */
#ifndef CNF_TEST_UTIL_H
#define CNF_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <CUnit/CUnit.h>

/* Largest |a_i - b_i| / (atol + rtol |b_i|) over n values; prints the
 * first offenders, the worst pair and OK/NOT OK under `label`.  Returns 1
 * if every value is within tolerance. */
int check_close(const double *a, const double *b, size_t n, double rtol,
                double atol, const char *label);

#define CHECK_CLOSE(a, b, n, rtol, atol, label) \
  CU_ASSERT_TRUE(check_close((a), (b), (n), (rtol), (atol), (label)))

/* Scalar version: prints both values when they differ. */
#define CHECK_NEAR(a, b, tol)                                            \
  do {                                                                   \
    double a_ = (a), b_ = (b);                                           \
    double t_ = (tol);                                                   \
    CU_ASSERT_TRUE(fabs(a_ - b_) <= t_);                                 \
    if (!(fabs(a_ - b_) <= t_))                                          \
      printf("\n  %s:%d: %s = %.17g, expected %.17g (|diff| %.3g > %.3g)\n", \
             __FILE__, __LINE__, #a, a_, b_, fabs(a_ - b_), t_);         \
  } while (0)

/* Fill x (n) with uniform values in [lo, hi) from a seeded stream. */
void fill_uniform(double *x, size_t n, double lo, double hi, uint64_t seed);
/* Fill x (n) with N(0, 1) values from a seeded stream. */
void fill_gauss(double *x, size_t n, uint64_t seed);

/* Q (D, D): a random orthogonal matrix, the Q of a QR decomposition of a
 * seeded Gaussian matrix. */
void random_orthogonal(double *Q, size_t D, uint64_t seed);

/* Central difference of a scalar function g along coordinate i of x:
 * (g(x + h e_i) - g(x - h e_i)) / 2h; x is restored. */
typedef double (*scalar_fn)(const double *x, void *user);
double central_diff(scalar_fn g, double *x, size_t i, double h, void *user);

/* A suite: a name and NULL-terminated tests. */
typedef struct test_entry {
  const char *name;
  void (*fn)(void);
} test_entry;

/* Register suites and run them with the basic interface; returns the
 * process exit status (0 if every assertion passed). */
int run_suites(const char *const *names, const test_entry *const *tests,
               size_t n);

#endif /* CNF_TEST_UTIL_H */
