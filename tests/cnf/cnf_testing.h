/* cnf_testing.h: what the files of tests/cnf share: the suites they
 * define, the user fields written here against cnf_dynamics.h, and a few
 * helpers (a random orthogonal matrix, the central-difference Jacobian). */
#ifndef CNF_TESTS_CNF_TESTING_H
#define CNF_TESTS_CNF_TESTING_H

#include <stddef.h>
#include <stdint.h>

#include "cnf_dynamics.h"
#include "test_util.h"

extern const test_entry conformance_tests[];
extern const test_entry hutchinson_tests[];
extern const test_entry probes_tests[];
extern const test_entry ffjord_tests[];
extern const test_entry act_tests[];
extern const test_entry precision_tests[];

/* User fields: f(t, z; theta) = tanh(W z + c t), theta = [W (D, D)
 * row-major, c (D)], P = D*D + D.  "user-f" has only the f op (every
 * fallback of dyn.c); "user-vjp" has f and vjp (both terms). */
int user_f_create(cnf_dyn **out, cnf_ctx *ctx, size_t D);
int user_vjp_create(cnf_dyn **out, cnf_ctx *ctx, size_t D);

/* Central-difference Jacobian J (B, D, D), J[b][i][j] = df_i/dz_j at row b,
 * step h along every coordinate.  Returns the status of cnf_dyn_f. */
int fd_jacobian(cnf_dyn *dyn, double t, size_t B, const double *z,
                const double *theta, double h, double *J);

/* max |x_i| over n values. */
double max_abs(const double *x, size_t n);

/* check_close with the absolute tolerance tol * max(1e-3, max |b|): the
 * natural scale of a vector of derivatives. */
int check_scaled(const double *a, const double *b, size_t n, double tol,
                 const char *label);
#define CHECK_SCALED(a, b, n, tol, label) \
  CU_ASSERT_TRUE(check_scaled((a), (b), (n), (tol), (label)))

/* A context, asserted to exist. */
cnf_ctx *new_ctx(void);

#endif /* CNF_TESTS_CNF_TESTING_H */
