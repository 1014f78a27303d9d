/* test_layers.c: each layer kind of cnf_layers.h at random inputs and
 * random parameters (conditioner weights of size 1, not the small initial
 * ones, so every term matters):
 *   - logdet against log|det J| of a central-difference Jacobian (GSL LU);
 *   - inverse(forward(x)) = x to 1e-10, and the inverse's logdet;
 *   - the reverse sweep's dS/dx and dS/dtheta, S = sum_b (a_b . z_b + c_b
 *     logdet_b) with random a, c, against central differences;
 *   - MADE: d mu_i/dx_j = d s_i/dx_j = 0 for j >= i, and the MAF and IAF
 *     Jacobians lower triangular (exactly: a zero is a zero).
 * The difference step h = 1e-5 leaves a truncation error of order h^2 times
 * third derivatives of size ~1 (1e-10) and a rounding error of order
 * 1e-16 / h (1e-11), so the bars are 1e-7 relative plus 1e-7 absolute. */
#include <gsl/gsl_linalg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf_layers.h"
#include "test_util.h"

#define NB 4 /* rows per check */

typedef struct lay_case {
  cnf_tf_kind kind;
  size_t dim;
  unsigned long arg;
} lay_case;

static const lay_case CASES[] = {
    {CNF_TF_AFFINE, 3, 0},      {CNF_TF_ELEMENTWISE, 3, 0}, {CNF_TF_ACTNORM, 2, 0},
    {CNF_TF_SINHARCSINH, 3, 0}, {CNF_TF_PLANAR, 3, 0},      {CNF_TF_PLANAR, 1, 0},
    {CNF_TF_RADIAL, 3, 0},      {CNF_TF_RADIAL, 1, 0},      {CNF_TF_COUPLING, 4, 0},
    {CNF_TF_COUPLING, 3, 1},    {CNF_TF_ADDITIVE, 4, 1},    {CNF_TF_MAF, 4, 0},
    {CNF_TF_MAF, 1, 0},         {CNF_TF_IAF, 4, 0},         {CNF_TF_IAF, 2, 0},
    {CNF_TF_PERMUTE, 5, 0},     {CNF_TF_PERMUTE, 5, 7}};
#define NCASES (sizeof CASES / sizeof CASES[0])

typedef struct fixture {
  cnf_ctx *ctx;
  cnf_tf *tf;
  size_t D, P;
  double *theta, *x, *a, *c;
} fixture;

static int setup(fixture *f, const lay_case *lc, uint64_t seed) {
  memset(f, 0, sizeof *f);
  if (cnf_ctx_create(&f->ctx) != 0) return -1;
  cnf_tf_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.kind = lc->kind, cfg.dim = lc->dim, cfg.arg = lc->arg;
  cfg.n_hidden = 2, cfg.hidden[0] = 7, cfg.hidden[1] = 6;
  if (cnf_tf_create(&f->tf, f->ctx, &cfg) != 0) return -1;
  f->D = lc->dim, f->P = cnf_tf_param_count(f->tf);
  f->theta = malloc((f->P + 1) * sizeof(double));
  f->x = malloc(NB * f->D * sizeof(double));
  f->a = malloc(NB * f->D * sizeof(double));
  f->c = malloc(NB * sizeof(double));
  fill_uniform(f->theta, f->P + 1, -0.8, 0.8, seed);
  fill_gauss(f->x, NB * f->D, seed + 1);
  fill_gauss(f->a, NB * f->D, seed + 2);
  fill_gauss(f->c, NB, seed + 3);
  return 0;
}

static void teardown(fixture *f) {
  free(f->theta), free(f->x), free(f->a), free(f->c);
  cnf_tf_free(f->tf);
  cnf_ctx_free(f->ctx);
}

static const char *label(const lay_case *lc, const char *what, char *buf, size_t n) {
  snprintf(buf, n, "%s D=%zu arg=%lu: %s", cnf_tf_kind_name(lc->kind), lc->dim, lc->arg, what);
  return buf;
}

/* log|det| of the central-difference Jacobian of row b, by GSL's LU */
static double fd_logdet(fixture *f, const double *xrow) {
  const size_t D = f->D;
  const double h = 1e-5;
  gsl_matrix *J = gsl_matrix_alloc(D, D);
  gsl_permutation *perm = gsl_permutation_alloc(D);
  double *xp = malloc(D * sizeof(double)), *zp = malloc(D * sizeof(double));
  double *zm = malloc(D * sizeof(double));
  for (size_t j = 0; j < D; j++) {
    memcpy(xp, xrow, D * sizeof(double));
    xp[j] += h;
    cnf_tf_forward(f->tf, f->theta, 1, xp, zp, NULL);
    xp[j] -= 2 * h;
    cnf_tf_forward(f->tf, f->theta, 1, xp, zm, NULL);
    for (size_t i = 0; i < D; i++) gsl_matrix_set(J, i, j, (zp[i] - zm[i]) / (2 * h));
  }
  int sg = 0;
  gsl_linalg_LU_decomp(J, perm, &sg);
  double ld = gsl_linalg_LU_lndet(J);
  gsl_matrix_free(J);
  gsl_permutation_free(perm);
  free(xp), free(zp), free(zm);
  return ld;
}

static void test_logdet(void) {
  char buf[128];
  for (size_t k = 0; k < NCASES; k++) {
    fixture f;
    CU_ASSERT_EQUAL_FATAL(setup(&f, &CASES[k], 100 + k), 0);
    double z[NB * 8], ld[NB], ref[NB];
    CU_ASSERT_EQUAL(cnf_tf_forward(f.tf, f.theta, NB, f.x, z, ld), 0);
    for (size_t b = 0; b < NB; b++) ref[b] = fd_logdet(&f, f.x + b * f.D);
    CHECK_CLOSE(ld, ref, NB, 1e-7, 1e-7,
                label(&CASES[k], "logdet vs FD Jacobian", buf, sizeof buf));
    teardown(&f);
  }
}

static void test_inverse(void) {
  char buf[128];
  for (size_t k = 0; k < NCASES; k++) {
    fixture f;
    CU_ASSERT_EQUAL_FATAL(setup(&f, &CASES[k], 200 + k), 0);
    double z[NB * 8], xr[NB * 8], ld[NB], ldi[NB];
    CU_ASSERT_EQUAL(cnf_tf_forward(f.tf, f.theta, NB, f.x, z, ld), 0);
    CU_ASSERT_EQUAL(cnf_tf_inverse(f.tf, f.theta, NB, z, xr, ldi), 0);
    CHECK_CLOSE(xr, f.x, NB * f.D, 0, 1e-10,
                label(&CASES[k], "inverse(forward(x))", buf, sizeof buf));
    CHECK_CLOSE(ldi, ld, NB, 0, 1e-10, label(&CASES[k], "inverse's logdet", buf, sizeof buf));
    teardown(&f);
  }
}

/* S(x, theta) = sum_b a_b . z_b + c_b ld_b */
static double S_of(fixture *f) {
  double z[NB * 8], ld[NB], s = 0.0;
  cnf_tf_forward(f->tf, f->theta, NB, f->x, z, ld);
  for (size_t b = 0; b < NB; b++) {
    s += f->c[b] * ld[b];
    for (size_t i = 0; i < f->D; i++) s += f->a[b * f->D + i] * z[b * f->D + i];
  }
  return s;
}

/* S_of as a scalar_fn of test_util: central_diff perturbs f's own arrays */
static double S_fn(const double *v, void *user) {
  (void)v;
  return S_of(user);
}

/* out (n) = central differences of S along each entry of v (f->x or f->theta) */
static void fd_S(fixture *f, double *v, size_t n, double h, double *out) {
  for (size_t i = 0; i < n; i++) out[i] = central_diff(S_fn, v, i, h, f);
}

static void test_gradients(void) {
  char buf[128];
  const double h = 1e-5;
  for (size_t k = 0; k < NCASES; k++) {
    fixture f;
    CU_ASSERT_EQUAL_FATAL(setup(&f, &CASES[k], 300 + k), 0);
    const size_t n = NB * f.D;
    double *gx = malloc(n * sizeof(double)), *fx = malloc(n * sizeof(double));
    double *gth = calloc(f.P + 1, sizeof(double)), *fth = malloc((f.P + 1) * sizeof(double));
    gth[0] = 0.0;
    CU_ASSERT_EQUAL(cnf_tf_backward(f.tf, f.theta, NB, f.x, f.a, f.c, gx, gth), 0);
    fd_S(&f, f.x, n, h, fx);
    fd_S(&f, f.theta, f.P, h, fth);
    CHECK_CLOSE(gx, fx, n, 1e-7, 1e-7, label(&CASES[k], "dS/dx vs FD", buf, sizeof buf));
    if (f.P > 0)
      CHECK_CLOSE(gth, fth, f.P, 1e-7, 1e-7, label(&CASES[k], "dS/dtheta vs FD", buf, sizeof buf));
    /* gth accumulates: a second sweep doubles it */
    double *g2 = malloc((f.P + 1) * sizeof(double));
    memcpy(g2, gth, (f.P + 1) * sizeof(double));
    cnf_tf_backward(f.tf, f.theta, NB, f.x, f.a, f.c, NULL, g2);
    for (size_t i = 0; i < f.P; i++) g2[i] *= 0.5;
    if (f.P > 0)
      CHECK_CLOSE(g2, gth, f.P, 1e-14, 1e-14, label(&CASES[k], "gth accumulates", buf, sizeof buf));
    free(gx), free(fx), free(gth), free(fth), free(g2);
    teardown(&f);
  }
}

/* MADE: mu_i and s_i do not move when x_j, j >= i, moves; z_i of maf and iaf
 * does not move when x_j, j > i, moves. */
static void test_made_triangular(void) {
  const lay_case mc[] = {{CNF_TF_MAF, 5, 0}, {CNF_TF_IAF, 5, 0}};
  for (size_t k = 0; k < 2; k++) {
    fixture f;
    CU_ASSERT_EQUAL_FATAL(setup(&f, &mc[k], 400 + k), 0);
    const size_t D = f.D;
    double mu0[8], s0[8], mu1[8], s1[8], z0[8], z1[8], xp[8];
    cnf_tf_made_outputs(f.tf, f.theta, 1, f.x, mu0, s0);
    cnf_tf_forward(f.tf, f.theta, 1, f.x, z0, NULL);
    int upper_zero = 1, lower_nonzero = 1;
    for (size_t j = 0; j < D; j++) {
      memcpy(xp, f.x, D * sizeof(double));
      xp[j] += 0.37;
      cnf_tf_made_outputs(f.tf, f.theta, 1, xp, mu1, s1);
      cnf_tf_forward(f.tf, f.theta, 1, xp, z1, NULL);
      for (size_t i = 0; i < D; i++) {
        if (j >= i && (mu1[i] != mu0[i] || s1[i] != s0[i])) upper_zero = 0;
        if (j > i && z1[i] != z0[i]) upper_zero = 0;
        /* the strictly lower part is generically non-zero */
        if (j < i && mu1[i] == mu0[i] && s1[i] == s0[i]) lower_nonzero = 0;
      }
    }
    CU_ASSERT_TRUE(upper_zero);
    CU_ASSERT_TRUE(lower_nonzero);
    if (!upper_zero || !lower_nonzero)
      printf("\n  %s: Jacobian not strictly triangular\n", cnf_tf_kind_name(mc[k].kind));
    teardown(&f);
  }
}

/* Rows beyond one chunk give the same numbers as one row at a time; a
 * random permutation is a permutation; bad configurations are refused. */
static void test_chunks_and_errors(void) {
  const lay_case lc = {CNF_TF_COUPLING, 3, 1};
  fixture f;
  CU_ASSERT_EQUAL_FATAL(setup(&f, &lc, 500), 0);
  const size_t B = CNF_TF_CHUNK + 37;
  double *x = malloc(B * 3 * sizeof(double)), *z = malloc(B * 3 * sizeof(double));
  double *ld = malloc(B * sizeof(double));
  fill_gauss(x, B * 3, 501);
  CU_ASSERT_EQUAL(cnf_tf_forward(f.tf, f.theta, B, x, z, ld), 0);
  double z1[3], ld1;
  cnf_tf_forward(f.tf, f.theta, 1, x + (B - 1) * 3, z1, &ld1);
  /* BLAS may sum in another order for one row: rounding only */
  CHECK_CLOSE(z1, z + (B - 1) * 3, 3, 1e-13, 1e-13, "last row of a long batch");
  CHECK_NEAR(ld1, ld[B - 1], 1e-13);
  free(x), free(z), free(ld);
  teardown(&f);

  cnf_ctx *ctx = NULL;
  cnf_ctx_create(&ctx);
  cnf_tf_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.kind = CNF_TF_PERMUTE, cfg.dim = 9, cfg.arg = 42;
  cnf_tf *tf = NULL;
  CU_ASSERT_EQUAL(cnf_tf_create(&tf, ctx, &cfg), 0);
  double xi[9], zi[9];
  for (int i = 0; i < 9; i++) xi[i] = i;
  cnf_tf_forward(tf, NULL, 1, xi, zi, NULL);
  int seen[9] = {0}, moved = 0;
  for (int i = 0; i < 9; i++) seen[(int)zi[i]]++, moved += zi[i] != i;
  for (int i = 0; i < 9; i++) CU_ASSERT_EQUAL(seen[i], 1);
  CU_ASSERT_TRUE(moved > 0);
  cnf_tf_free(tf);
  cfg.kind = CNF_TF_COUPLING; /* no hidden layer */
  CU_ASSERT_EQUAL(cnf_tf_create(&tf, ctx, &cfg), CNF_EINVAL);
  CU_ASSERT_PTR_NULL(tf);
  cfg.kind = CNF_TF_AFFINE, cfg.dim = 0;
  CU_ASSERT_EQUAL(cnf_tf_create(&tf, ctx, &cfg), CNF_EINVAL);
  cnf_tf_kind k;
  CU_ASSERT_EQUAL(cnf_tf_kind_parse("maf", &k), 0);
  CU_ASSERT_EQUAL(k, CNF_TF_MAF);
  CU_ASSERT_EQUAL(cnf_tf_kind_parse("glow", &k), CNF_EINVAL);
  cnf_ctx_free(ctx);
}

/* The continuous block: the same checks at solver tolerances 1e-10, where
 * the solve's error (~1e-9 relative) rather than the difference step sets
 * the bars: 1e-6 on the logdet and the gradients, 1e-8 on the round trip. */
static void test_cnf_block(void) {
  const lay_case lc = {CNF_TF_CNF, 2, 700};
  fixture f;
  CU_ASSERT_EQUAL_FATAL(setup(&f, &lc, 600), 0);
  cnf_options opt;
  cnf_options_default(&opt);
  opt.rtol = opt.atol = 1e-10;
  cnf_tf_set_options(f.tf, &opt);
  CU_ASSERT_EQUAL(cnf_tf_get_config(f.tf)->arg, 700);
  fill_uniform(f.theta, f.P, -0.5, 0.5, 601);
  double z[NB * 2], xr[NB * 2], ld[NB], ldi[NB], ref[NB];
  CU_ASSERT_EQUAL(cnf_tf_forward(f.tf, f.theta, NB, f.x, z, ld), 0);
  for (size_t b = 0; b < NB; b++) ref[b] = fd_logdet(&f, f.x + b * 2);
  CHECK_CLOSE(ld, ref, NB, 1e-6, 1e-6, "cnf block: logdet vs FD Jacobian");
  CU_ASSERT_EQUAL(cnf_tf_inverse(f.tf, f.theta, NB, z, xr, ldi), 0);
  CHECK_CLOSE(xr, f.x, NB * 2, 0, 1e-8, "cnf block: inverse(forward(x))");
  CHECK_CLOSE(ldi, ld, NB, 0, 1e-8, "cnf block: inverse's logdet");
  double gx[NB * 2], fx[NB * 2];
  double *gth = calloc(f.P, sizeof(double)), *fth = malloc(f.P * sizeof(double));
  CU_ASSERT_EQUAL(cnf_tf_backward(f.tf, f.theta, NB, f.x, f.a, f.c, gx, gth), 0);
  const double h = 1e-5;
  fd_S(&f, f.x, NB * 2, h, fx);
  fd_S(&f, f.theta, f.P, h, fth);
  CHECK_CLOSE(gx, fx, NB * 2, 1e-6, 1e-6, "cnf block: dS/dx vs FD");
  CHECK_CLOSE(gth, fth, f.P, 1e-6, 1e-6, "cnf block: dS/dtheta vs FD");
  free(gth), free(fth);
  teardown(&f);
}

extern const test_entry stack_tests[];

static const test_entry layer_tests[] = {
    {"logdet against a finite-difference Jacobian", test_logdet},
    {"inverse(forward(x)) = x", test_inverse},
    {"input and parameter gradients against differences", test_gradients},
    {"MADE: strictly triangular", test_made_triangular},
    {"chunks, permutations, errors", test_chunks_and_errors},
    {"continuous block (adjoint) against differences", test_cnf_block},
    {NULL, NULL}};

int main(void) {
  const char *names[] = {"layers", "stacks"};
  const test_entry *tests[] = {layer_tests, stack_tests};
  return run_suites(names, tests, 2);
}
