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
 *              as over the whole array, nothing written past x[n - 1].
 *
 * And the single-precision kernel cnf__tanhf (the float32 network path):
 * every float in [0.55, 0.7] (the branch point 0.625) and every 64th float
 * from the smallest subnormal to 12, both signs, against tanh in double:
 * at most 2 ulps of the correctly rounded float result (0 for the zeros,
 * whose sign is kept); specials and tails as above. */
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

/* Error of x in units of the last place of the float nearest to ref. */
static double ulps_f(float x, double ref) {
  float rf = (float)ref;
  double ulp = (double)nextafterf(fabsf(rf), INFINITY) - (double)fabsf(rf);
  return fabs((double)x - ref) / ulp;
}

static void test_actf_accuracy(void) {
  /* every float in [0.55, 0.7], every 64th float in (0, 12], both signs */
  union {
    float f;
    unsigned u;
  } lo = {0.55f}, hi = {0.7f}, top = {12.0f};
  const size_t n_band = hi.u - lo.u + 1, n_sweep = top.u / 64 + 1;
  const size_t n = 2 * (n_band + n_sweep);
  float *y = malloc(n * sizeof *y), *x = malloc(n * sizeof *x);
  CU_ASSERT_FATAL(y != NULL && x != NULL);
  size_t i = 0;
  for (unsigned u = lo.u; u <= hi.u; u++) {
    union { unsigned u; float f; } v = {u};
    y[i++] = v.f, y[i++] = -v.f;
  }
  for (unsigned u = 1; u <= top.u; u += 64) {
    union { unsigned u; float f; } v = {u};
    y[i++] = v.f, y[i++] = -v.f;
  }
  y[i++] = 0.0f, y[i++] = -0.0f;
  CU_ASSERT_FATAL(i <= n);
  cnf__tanhf(i, y, x);
  double worst = 0.0, at = 0.0;
  size_t bad_zero = 0, odd = 0;
  for (size_t k = 0; k < i; k++) {
    double ref = tanh((double)y[k]);
    if (y[k] == 0.0f) {
      if (x[k] != 0.0f || signbit(x[k]) != signbit(y[k])) bad_zero++;
      continue;
    }
    double e = ulps_f(x[k], ref);
    if (!(e <= worst)) worst = e, at = y[k];
    if (k % 2 == 1 && x[k] != -x[k - 1] && y[k] == -y[k - 1]) odd++;
  }
  printf("\n  %s float kernel: max error %.2f ulp (at y = %.9g) over %zu points",
         cnf__tanh_is_simd() ? "AVX2/FMA" : "libm", worst, at, i);
  CU_ASSERT_TRUE(worst <= 2.0);
  CU_ASSERT_EQUAL(bad_zero, 0);
  CU_ASSERT_EQUAL(odd, 0); /* tanh(-y) = -tanh(y) bit for bit */
  free(y), free(x);
}

static void test_actf_specials_tails(void) {
  const float y[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 800.0f, -800.0f, FLT_MAX, 1e-40f};
  const size_t n = sizeof y / sizeof y[0];
  float x[sizeof y / sizeof y[0]];
  cnf__tanhf(n, y, x);
  for (size_t i = 0; i < n; i++) {
    float ref = tanhf(y[i]);
    if (isnan(ref)) {
      CU_ASSERT_TRUE(isnan(x[i]));
    } else {
      CU_ASSERT_TRUE(ulps_f(x[i], tanh((double)y[i])) <= 2.0);
      CU_ASSERT_EQUAL(signbit(x[i]), signbit(ref));
    }
  }
  /* a NaN in every lane position */
  for (size_t k = 0; k < 8; k++) {
    float v[8] = {0.3f, -1.5f, 7.0f, 0.0f, 0.6f, -0.7f, 11.0f, -3.0f}, w[8];
    v[k] = NAN;
    cnf__tanhf(8, v, w);
    for (size_t j = 0; j < 8; j++)
      CU_ASSERT_TRUE(j == k ? isnan(w[j]) : ulps_f(w[j], tanh((double)v[j])) <= 2.0);
  }
  /* tails: every n from 0 to 21 at unaligned offsets, same values as over
   * the whole array, nothing written past n */
  enum { M = 21, PAD = 8 };
  float all[M + 3], ref[M + 3];
  unsigned long long s = 11;
  for (size_t i = 0; i < M + 3; i++) all[i] = (float)(6.0 * unif(&s) - 3.0);
  cnf__tanhf(M + 3, all, ref);
  for (size_t off = 0; off < 3; off++)
    for (size_t m = 0; m <= M; m++) {
      float out[M + 3 + PAD];
      for (size_t i = 0; i < M + 3 + PAD; i++) out[i] = -7.0f;
      cnf__tanhf(m, all + off, out + off);
      for (size_t i = 0; i < m; i++) CU_ASSERT_EQUAL(out[off + i], ref[off + i]);
      for (size_t i = 0; i < off; i++) CU_ASSERT_EQUAL(out[i], -7.0f);
      for (size_t i = off + m; i < M + 3 + PAD; i++) CU_ASSERT_EQUAL(out[i], -7.0f);
    }
}

const test_entry act_tests[] = {
    {"tanh within 1e-15 of tanhl over 1e6 points in [-40, 40]", test_act_accuracy},
    {"tanh of +-0, +-inf, NaN and huge values as libm's", test_act_specials},
    {"tanh tails: every n from 0 to 13, unaligned, no write past n", test_act_tails},
    {"tanhf within 2 ulps over every float near 0.625 and every 64th to 12", test_actf_accuracy},
    {"tanhf of specials, NaN in every lane, tails 0..21", test_actf_specials_tails},
    {NULL, NULL},
};
