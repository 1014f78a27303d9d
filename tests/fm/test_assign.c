/* test_assign.c: the exact linear assignment solver (src/fm/assign.c).
 *   - optimal against brute force over all n! permutations for n = 1..8:
 *     random real costs over many seeds, small integer costs (many ties),
 *     all-equal costs, negative costs;
 *   - n = 256, 512, 1024: a certificate of optimality from the returned
 *     potentials (dual feasibility u_i + v_j <= c_ij + tol for every pair,
 *     complementary slackness on the assignment, primal total = dual total),
 *     on uniform costs and on the squared Euclidean costs of Gaussian
 *     batches that OT flow matching solves; the times are printed;
 *   - the squared Euclidean cost matrix, and the OT pairing of 1-D batches,
 *     whose optimum is the monotone (sorted) matching;
 *   - bad input: NULL arrays, non-finite costs, n = 0. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnf_fm.h"
#include "fm_tests.h"
#include "test_util.h"

/* The minimum of sum_i c[i, p(i)] over all permutations p, by Heap's
 * algorithm (iterative), n <= 8. */
static double brute_force(size_t n, const double *c) {
  size_t p[8], cnt[8] = {0};
  for (size_t i = 0; i < n; i++) p[i] = i;
  double best = INFINITY;
  for (;;) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += c[i * n + p[i]];
    if (s < best) best = s;
    size_t i = 1;
    while (i < n && cnt[i] >= i) cnt[i++] = 0;
    if (i >= n) break;
    size_t j = i % 2 ? cnt[i] : 0, tmp = p[j];
    p[j] = p[i], p[i] = tmp;
    cnt[i]++;
  }
  return best;
}

/* 1 if col (n) is a permutation of 0..n-1. */
static int is_perm(size_t n, const size_t *col) {
  unsigned char *seen = calloc(n + 1, 1);
  int ok = 1;
  for (size_t i = 0; i < n && ok; i++) {
    if (col[i] >= n || seen[col[i]])
      ok = 0;
    else
      seen[col[i]] = 1;
  }
  free(seen);
  return ok;
}

/* The certificate: dual feasibility, complementary slackness and equal
 * primal and dual totals, within tol (absolute).  Prints the worst
 * violations under label. */
static int certificate(size_t n, const double *c, const size_t *col, const double *u,
                       const double *v, double total, double tol, const char *label, int print) {
  double feas = 0.0, slack = 0.0, dual = 0.0, primal = 0.0;
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < n; j++) feas = fmax(feas, u[i] + v[j] - c[i * n + j]);
    slack = fmax(slack, fabs(c[i * n + col[i]] - u[i] - v[col[i]]));
    dual += u[i] + v[i];
    primal += c[i * n + col[i]];
  }
  const double gap = fabs(primal - dual);
  const int ok = feas <= tol && slack <= tol && gap <= n * tol && primal == total;
  if (print)
    printf(
        "\n  %s: n = %zu, max(u_i + v_j - c_ij) = %.3g, max slack = %.3g, "
        "|primal - dual| = %.3g (tol %.3g) %s",
        label, n, feas, slack, gap, tol, ok ? "OK" : "NOT OK");
  return ok;
}

typedef enum { COST_REAL, COST_INT, COST_EQUAL, COST_NEG } cost_kind;

static void fill_cost(cost_kind kind, size_t n, uint64_t seed, double *c) {
  fill_uniform(c, n * n, 0.0, 1.0, seed);
  for (size_t k = 0; k < n * n; k++) {
    if (kind == COST_INT) c[k] = floor(4.0 * c[k]); /* 0..3: many ties */
    if (kind == COST_EQUAL) c[k] = 2.5;
    if (kind == COST_NEG) c[k] = -7.0 + 3.0 * c[k];
  }
}

static void test_brute_force(void) {
  const cost_kind kinds[] = {COST_REAL, COST_INT, COST_EQUAL, COST_NEG};
  double c[64], u[8], v[8];
  size_t col[8];
  int bad = 0, cases = 0;
  for (size_t kk = 0; kk < 4; kk++)
    for (size_t n = 1; n <= 8; n++)
      for (uint64_t seed = 1; seed <= (n <= 6 ? 60u : 15u); seed++) {
        fill_cost(kinds[kk], n, 1000 * n + seed + 77 * kk, c);
        double total = NAN;
        int rc = cnf_assign_solve(NULL, n, c, col, u, v, &total);
        double best = brute_force(n, c);
        cases++;
        if (rc != 0 || !is_perm(n, col) || fabs(total - best) > 1e-12 * (1.0 + fabs(best)) ||
            !certificate(n, c, col, u, v, total, 1e-12, "brute", 0)) {
          if (bad++ < 5)
            printf("\n  kind %zu n %zu seed %llu: rc %d total %.17g brute force %.17g", kk, n,
                   (unsigned long long)seed, rc, total, best);
        }
      }
  printf("\n  %d of %d problems (n = 1..8) not optimal", bad, cases);
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_TRUE(cases > 1000);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void certify(size_t n, int euclid, uint64_t seed) {
  double *c = malloc(n * n * sizeof(double)), *u = malloc(n * sizeof(double)),
         *v = malloc(n * sizeof(double));
  size_t *col = malloc(n * sizeof(size_t));
  double maxc = 0.0;
  if (euclid) { /* a data batch (shifted, scaled) against N(0, I) in 2-D */
    double *x = malloc(2 * n * sizeof(double)), *z = malloc(2 * n * sizeof(double));
    fill_gauss(x, 2 * n, seed);
    fill_gauss(z, 2 * n, seed + 1);
    for (size_t i = 0; i < 2 * n; i++) x[i] = 2.0 * x[i] + 0.5;
    CU_ASSERT_EQUAL(cnf_assign_sqeuclid_cost(n, 2, x, z, c), 0);
    free(x);
    free(z);
  } else {
    fill_cost(COST_REAL, n, seed, c);
  }
  for (size_t k = 0; k < n * n; k++) maxc = fmax(maxc, fabs(c[k]));
  double total = NAN, t0 = now();
  int rc = cnf_assign_solve(NULL, n, c, col, u, v, &total);
  double dt = now() - t0;
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_TRUE(is_perm(n, col));
  /* the potentials are sums of up to ~n^2 cost differences */
  CU_ASSERT_TRUE(certificate(n, c, col, u, v, total, 1e-10 * maxc,
                             euclid ? "sq. Euclidean 2-D" : "uniform [0, 1)", 1));
  printf(" (%.3f s)", dt);
  /* the check itself can fail: a potential raised by 1e-6 breaks
   * feasibility on its row's assigned pair */
  u[n / 2] += 1e-6;
  CU_ASSERT_FALSE(certificate(n, c, col, u, v, total, 1e-10 * maxc, "raised potential", 0));
  /* no cheaper than the identity and a random permutation */
  double id = 0.0;
  for (size_t i = 0; i < n; i++) id += c[i * n + i];
  CU_ASSERT_TRUE(total <= id);
  free(c);
  free(u);
  free(v);
  free(col);
}

static void test_certificate(void) {
  const size_t ns[] = {256, 512, 1024};
  for (size_t k = 0; k < 3; k++) {
    certify(ns[k], 0, 4242 + k);
    certify(ns[k], 1, 5151 + k);
  }
}

static void test_sqeuclid(void) {
  const double x[] = {0.0, 1.0, 2.5, -1.0, 0.25, 0.75}; /* (3, 2) */
  const double z[] = {1.0, 1.0, -0.5, 2.0, 3.0, 0.0};
  double c[9];
  CU_ASSERT_EQUAL(cnf_assign_sqeuclid_cost(3, 2, x, z, c), 0);
  for (size_t i = 0; i < 3; i++)
    for (size_t j = 0; j < 3; j++) {
      double d0 = x[2 * i] - z[2 * j], d1 = x[2 * i + 1] - z[2 * j + 1];
      CU_ASSERT_DOUBLE_EQUAL(c[3 * i + j], d0 * d0 + d1 * d1, 1e-15);
    }
  CU_ASSERT_DOUBLE_EQUAL(c[3 * 1 + 2], 0.25 + 1.0, 1e-15); /* (2.5,-1) - (3,0) */
  CU_ASSERT_EQUAL(cnf_assign_sqeuclid_cost(3, 2, NULL, z, c), CNF_EINVAL);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* In 1-D the optimal coupling under (x - z)^2 is monotone: the k-th
 * smallest x takes the k-th smallest z. */
static void test_pair_1d(void) {
  const size_t B = 300;
  double *x = malloc(B * sizeof(double)), *z = malloc(B * sizeof(double)),
         *xs = malloc(B * sizeof(double)), *zs = malloc(B * sizeof(double));
  size_t *perm = malloc(B * sizeof(size_t));
  fill_gauss(x, B, 11);
  fill_gauss(z, B, 12);
  for (size_t b = 0; b < B; b++) x[b] = 3.0 * x[b] - 1.0;
  memcpy(zs, z, B * sizeof(double));
  double *z0 = malloc(B * sizeof(double));
  memcpy(z0, z, B * sizeof(double));
  double total = NAN;
  CU_ASSERT_EQUAL(cnf_fm_pair_ot(NULL, B, 1, x, z, perm, &total), 0);
  CU_ASSERT_TRUE(is_perm(B, perm));
  int moved_ok = 1;
  for (size_t b = 0; b < B; b++) moved_ok &= z[b] == z0[perm[b]];
  CU_ASSERT_TRUE(moved_ok);
  /* the monotone matching's cost */
  memcpy(xs, x, B * sizeof(double));
  qsort(xs, B, sizeof(double), cmp_double);
  qsort(zs, B, sizeof(double), cmp_double);
  double mono = 0.0, got = 0.0;
  for (size_t b = 0; b < B; b++) {
    mono += (xs[b] - zs[b]) * (xs[b] - zs[b]);
    got += (x[b] - z[b]) * (x[b] - z[b]);
  }
  CHECK_NEAR(total, mono, 1e-10 * mono);
  CHECK_NEAR(got, mono, 1e-10 * mono);
  /* and the pairing is monotone: x_a < x_b implies z_a <= z_b */
  int mono_ok = 1;
  for (size_t a = 0; a < B; a++)
    for (size_t b = 0; b < B; b++)
      if (x[a] < x[b] && z[a] > z[b]) mono_ok = 0;
  CU_ASSERT_TRUE(mono_ok);
  free(x), free(z), free(xs), free(zs), free(z0), free(perm);
}

static void test_assign_errors(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  double c[4] = {1.0, 2.0, NAN, 0.5}, u[2], v[2], total = -1.0;
  size_t col[2];
  CU_ASSERT_EQUAL(cnf_assign_solve(ctx, 2, c, col, u, v, &total), CNF_ENONFINITE);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "cost[1, 0]"));
  c[2] = INFINITY;
  CU_ASSERT_EQUAL(cnf_assign_solve(ctx, 2, c, col, u, v, &total), CNF_ENONFINITE);
  CU_ASSERT_EQUAL(cnf_assign_solve(ctx, 2, NULL, col, u, v, &total), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_assign_solve(ctx, 2, c, NULL, u, v, &total), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_assign_solve(ctx, 0, NULL, NULL, NULL, NULL, &total), 0);
  CU_ASSERT_EQUAL(total, 0.0);
  /* u, v and total are optional */
  c[2] = 3.0;
  CU_ASSERT_EQUAL(cnf_assign_solve(ctx, 2, c, col, NULL, NULL, NULL), 0);
  CU_ASSERT_TRUE(col[0] == 0 && col[1] == 1); /* 1 + 0.5 < 2 + 3 */
  cnf_ctx_free(ctx);
}

const test_entry assign_tests[] = {{"optimal against brute force, n = 1..8", test_brute_force},
                                   {"certificate at n = 256, 512, 1024", test_certificate},
                                   {"squared Euclidean cost", test_sqeuclid},
                                   {"OT pairing in 1-D is the monotone matching", test_pair_1d},
                                   {"bad input", test_assign_errors},
                                   {NULL, NULL}};
