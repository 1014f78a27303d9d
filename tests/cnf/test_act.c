/* test_act.c: the MLP's tanh kernel (src/cnf/act.c), the AVX2/FMA one in
 * the default (-march=native) build, libm's elsewhere.
 *
 *   accuracy   1e6 points over [-40, 40]: log-uniform magnitudes from the
 *              subnormals up, uniform ones, a dense band around the branch
 *              point 0.625 (every double within 2000 ulps), and special
 *              values; the largest relative error against tanhl <= 1e-15,
 *              zeros exact with their sign;
 *   specials   +-0 keep their sign, +-inf -> +-1, NaN -> NaN, huge -> +-1;
 *   tails      every n from 0 to 13, at unaligned offsets: the same values
 *              as over the whole array, nothing written past x[n - 1]. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "act.h"
#include "cnf_testing.h"

#define N_POINTS 1000000

static unsigned long long lcg(unsigned long long *s) {
  *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
  return *s >> 11;
}
static double unif(unsigned long long *s) { return (double)lcg(s) * 0x1.0p-53; }

static size_t fill_points(double *y, size_t n) {
  unsigned long long s = 20240601;
  size_t i = 0;
  const double special[] = {0.0, -0.0, 4.9406564584124654e-324, -4.9406564584124654e-324,
                            DBL_MIN, -DBL_MIN, 1e-310, -1e-310, 1e-17, 0.625, -0.625,
                            nextafter(0.625, 0.0), nextafter(0.625, 1.0), 19.0, 19.1,
                            20.0, -20.0, 40.0, -40.0};
  for (size_t k = 0; k < sizeof special / sizeof special[0]; k++) y[i++] = special[k];
  /* every double within 2000 ulps of +-0.625 */
  double lo = 0.625;
  for (int k = 0; k < 2000; k++) lo = nextafter(lo, 0.0);
  for (double v = lo; i + 1 < n && v <= 0.625 + 2000 * 0x1.0p-53; v = nextafter(v, 1.0)) {
    y[i++] = v;
    y[i++] = -v;
  }
  /* log-uniform magnitudes 1e-320 .. 40, random sign: dense near 0 */
  for (size_t k = 0; k < n / 2 && i < n; k++) {
    double e = -320.0 + unif(&s) * (320.0 + log10(40.0));
    y[i++] = (lcg(&s) & 1 ? -1.0 : 1.0) * fmin(pow(10.0, e), 40.0);
  }
  while (i < n) y[i++] = 80.0 * unif(&s) - 40.0; /* uniform over [-40, 40] */
  return i;
}

static void test_act_accuracy(void) {
  double *y = malloc(N_POINTS * sizeof *y), *x = malloc(N_POINTS * sizeof *x);
  CU_ASSERT_FATAL(y != NULL && x != NULL);
  size_t n = fill_points(y, N_POINTS);
  CU_ASSERT_EQUAL(n, N_POINTS);
  cnf__tanh(n, y, x);
  double worst = 0.0, at = 0.0;
  size_t bad_zero = 0;
  for (size_t i = 0; i < n; i++) {
    long double ref = tanhl((long double)y[i]);
    if (ref == 0.0L) {
      if (x[i] != 0.0 || signbit(x[i]) != signbit(y[i])) bad_zero++;
      continue;
    }
    double e = (double)(fabsl((long double)x[i] - ref) / fabsl(ref));
    if (!(e <= worst)) worst = e, at = y[i];
  }
  printf("\n  %s kernel: max relative error %.2e (at y = %.17g) over %zu points",
         cnf__tanh_is_simd() ? "AVX2/FMA" : "libm", worst, at, n);
  CU_ASSERT_TRUE(worst <= 1e-15);
  CU_ASSERT_EQUAL(bad_zero, 0);
  free(y), free(x);
}

static void test_act_specials(void) {
  const double y[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, -NAN, 800.0, -800.0,
                      DBL_MAX, -DBL_MAX, 1e-320};
  const size_t n = sizeof y / sizeof y[0];
  double x[sizeof y / sizeof y[0]];
  cnf__tanh(n, y, x);
  for (size_t i = 0; i < n; i++) {
    double ref = tanh(y[i]);
    if (isnan(ref)) {
      CU_ASSERT_TRUE(isnan(x[i]));
    } else {
      CU_ASSERT_EQUAL(x[i], ref);
      CU_ASSERT_EQUAL(signbit(x[i]), signbit(ref));
    }
  }
  /* a NaN in every lane position */
  for (size_t k = 0; k < 4; k++) {
    double v[4] = {0.3, -1.5, 7.0, 0.0}, w[4];
    v[k] = NAN;
    cnf__tanh(4, v, w);
    for (size_t j = 0; j < 4; j++)
      CU_ASSERT_TRUE(j == k ? isnan(w[j]) : w[j] == tanh(v[j]) || fabs(w[j] - tanh(v[j])) <= 1e-15 * fabs(tanh(v[j])));
  }
}

static void test_act_tails(void) {
  enum { M = 13, PAD = 4 };
  double all[M + 3], ref[M + 3];
  unsigned long long s = 7;
  for (size_t i = 0; i < M + 3; i++) all[i] = 6.0 * unif(&s) - 3.0;
  all[2] = 0.625, all[5] = -0.0, all[9] = 25.0;
  cnf__tanh(M + 3, all, ref);
  for (size_t off = 0; off < 3; off++)
    for (size_t n = 0; n <= M; n++) {
      double out[M + 3 + PAD];
      for (size_t i = 0; i < M + 3 + PAD; i++) out[i] = -7.0; /* sentinel */
      cnf__tanh(n, all + off, out + off);
      for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(out[off + i], ref[off + i]);
        CU_ASSERT_TRUE(fabs(out[off + i] - tanh(all[off + i])) <=
                       1e-15 * fabs(tanh(all[off + i])));
      }
      for (size_t i = 0; i < off; i++) CU_ASSERT_EQUAL(out[i], -7.0);
      for (size_t i = off + n; i < M + 3 + PAD; i++) CU_ASSERT_EQUAL(out[i], -7.0);
    }
}

const test_entry act_tests[] = {
    {"tanh within 1e-15 of tanhl over 1e6 points in [-40, 40]", test_act_accuracy},
    {"tanh of +-0, +-inf, NaN and huge values as libm's", test_act_specials},
    {"tanh tails: every n from 0 to 13, unaligned, no write past n", test_act_tails},
    {NULL, NULL},
};
