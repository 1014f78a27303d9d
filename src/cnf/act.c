/* act.c: tanh for the MLP's activation (mlp.c's act_forward).
 *
 * glibc's vector tanh costs about 12 cycles per element on the machine of
 * docs/performance.md, half of the forward pass.  With AVX2 and FMA (the
 * default build uses -march=native) this file computes tanh four lanes at
 * a time in about half of that, to the same accuracy (2.7e-16 relative
 * against tanhl, bench/bench_act.c and tests/cnf/test_act.c):
 *
 *   |y| < 0.625   Cephes' rational approximation tanh = y + y z P(z) / Q(z),
 *                 z = y^2, written as y (Q + z P) / Q;
 *   otherwise     tanh = 1 - 2 / (e + 1) = (e - 1) / (e + 1), e = exp(2|y|)
 *                 (|y| clamped at 20, where tanh rounds to 1) by range
 *                 reduction 2|y| = n ln 2 + r and Cephes' Pade form
 *                 exp(r) = (Q + P) / (Q - P), so e = 2^n (Q + P) / (Q - P);
 *
 * both branches are computed and blended before their one common division.
 * The sign is copied from y, so tanh(-0) = -0 and tanh(-inf) = -1; a NaN
 * propagates through the second branch.  Without AVX2/FMA the loop of
 * libm's tanh (vectorised through libmvec where available) is used.
 *
 * Single precision (cnf__tanhf, the float32 network path), eight lanes:
 *
 *   |y| < 0.625   Cephes' tanhf polynomial tanh = y + y z P(z), z = y^2;
 *   otherwise     tanh = 1 - 2 / (e + 1), e = exp(2|y|) (|y| clamped at 10,
 *                 where tanh rounds to 1 in float) by 2|y| = n ln 2 + r
 *                 and Cephes' expf polynomial for exp(r), e = 2^n exp(r);
 *
 * blended, the sign copied from y, NaN propagated as above.  At most 2 ulps
 * from the correctly rounded float tanh (tests/cnf/test_act.c). */
#include <math.h>

#include "act.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define CNF_ACT_AVX2 1
#endif

#if defined(CNF_MVEC) && !defined(CNF_ACT_AVX2)
#pragma omp declare simd notinbranch
extern double tanh(double);
#pragma omp declare simd notinbranch
extern float tanhf(float);
#endif

#if defined(CNF_ACT_AVX2)
#define S(c) _mm256_set1_pd(c)
static inline __m256d tanh4(__m256d y) {
  const __m256d sign = S(-0.0);
  __m256d sg = _mm256_and_pd(y, sign), a = _mm256_andnot_pd(sign, y);
  /* |y| < 0.625: tanh = ys (Q + z P) / Q, z = ys^2 (Cephes) */
  __m256d ys = _mm256_min_pd(a, S(0.625)), z = _mm256_mul_pd(ys, ys);
  __m256d p = _mm256_fmadd_pd(
      _mm256_fmadd_pd(S(-9.64399179425052238628E-1), z, S(-9.92877231001918586564E1)), z,
      S(-1.61468768441708447952E3));
  __m256d q = _mm256_fmadd_pd(
      _mm256_fmadd_pd(_mm256_add_pd(z, S(1.12811678491632931402E2)), z,
                      S(2.23548839060100448583E3)),
      z, S(4.84406305325125486048E3));
  __m256d ns = _mm256_fmadd_pd(_mm256_mul_pd(ys, z), p, _mm256_mul_pd(ys, q));
  /* else: e = exp(2|y|) = 2^n (Q + P) / (Q - P), tanh = (e - 1) / (e + 1).
   * min(40, 2|y|) keeps a NaN (minpd returns its second operand then). */
  __m256d x = _mm256_min_pd(S(40.0), _mm256_add_pd(a, a));
  __m256d n = _mm256_round_pd(_mm256_mul_pd(x, S(1.4426950408889634074)),
                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d r = _mm256_fnmadd_pd(n, S(6.93145751953125E-1), x);
  r = _mm256_fnmadd_pd(n, S(1.42860682030941723212E-6), r);
  __m256d rr = _mm256_mul_pd(r, r);
  __m256d px = _mm256_mul_pd(
      r, _mm256_fmadd_pd(_mm256_fmadd_pd(S(1.26177193074810590878E-4), rr,
                                         S(3.02994407707441961300E-2)),
                         rr, S(9.99999999999999999910E-1)));
  __m256d qx = _mm256_fmadd_pd(
      _mm256_fmadd_pd(_mm256_fmadd_pd(S(3.00198505138664455042E-6), rr,
                                      S(2.52448340349684104192E-3)),
                      rr, S(2.27265548208155028766E-1)),
      rr, S(2.00000000000000000009E0));
  /* 2^n from the bits of n + 1.5 * 2^52 + 1023 (0 <= n <= 58) */
  __m256i bits = _mm256_castpd_si256(_mm256_add_pd(n, S(6755399441055744.0 + 1023.0)));
  __m256d p2 = _mm256_castsi256_pd(_mm256_slli_epi64(bits, 52));
  __m256d dm = _mm256_sub_pd(qx, px);
  __m256d db = _mm256_fmadd_pd(_mm256_add_pd(qx, px), p2, dm); /* (e + 1)(Q - P) */
  __m256d nb = _mm256_fnmadd_pd(S(2.0), dm, db);                /* (e - 1)(Q - P) */
  __m256d m = _mm256_cmp_pd(a, S(0.625), _CMP_LT_OQ);
  __m256d t = _mm256_div_pd(_mm256_blendv_pd(nb, ns, m), _mm256_blendv_pd(db, q, m));
  return _mm256_or_pd(t, sg);
}
#undef S

void cnf__tanh(size_t n, const double *y, double *x) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, tanh4(_mm256_loadu_pd(y + i)));
  if (i < n) { /* the tail through the same kernel */
    double buf[4] = {0.0, 0.0, 0.0, 0.0};
    for (size_t j = 0; i + j < n; j++) buf[j] = y[i + j];
    _mm256_storeu_pd(buf, tanh4(_mm256_loadu_pd(buf)));
    for (size_t j = 0; i + j < n; j++) x[i + j] = buf[j];
  }
}

#define F(c) _mm256_set1_ps(c)
static inline __m256 tanh8(__m256 y) {
  const __m256 sign = F(-0.0f);
  __m256 sg = _mm256_and_ps(y, sign), a = _mm256_andnot_ps(sign, y);
  /* |y| < 0.625: ys + ys z P(z), z = ys^2 (Cephes' tanhf) */
  __m256 ys = _mm256_min_ps(a, F(0.625f)), z = _mm256_mul_ps(ys, ys);
  __m256 p = _mm256_fmadd_ps(F(-5.70498872745E-3f), z, F(2.06390887954E-2f));
  p = _mm256_fmadd_ps(p, z, F(-5.37397155531E-2f));
  p = _mm256_fmadd_ps(p, z, F(1.33314422036E-1f));
  p = _mm256_fmadd_ps(p, z, F(-3.33332819422E-1f));
  __m256 ns = _mm256_fmadd_ps(_mm256_mul_ps(ys, z), p, ys);
  /* else: e = exp(2|y|) = 2^n exp(r), tanh = 1 - 2 / (e + 1); min keeps a
   * NaN (minps returns its second operand then) */
  __m256 x = _mm256_min_ps(F(20.0f), _mm256_add_ps(a, a));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, F(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, F(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, F(-2.12194440e-4f), r);
  __m256 e = _mm256_fmadd_ps(F(1.9875691500E-4f), r, F(1.3981999507E-3f));
  e = _mm256_fmadd_ps(e, r, F(8.3334519073E-3f));
  e = _mm256_fmadd_ps(e, r, F(4.1665795894E-2f));
  e = _mm256_fmadd_ps(e, r, F(1.6666665459E-1f));
  e = _mm256_fmadd_ps(e, r, F(5.0000001201E-1f));
  e = _mm256_fmadd_ps(_mm256_mul_ps(e, r), r, _mm256_add_ps(r, F(1.0f)));
  /* 2^n from the exponent bits (0 <= n <= 29); a NaN's n converts to
   * INT_MIN, harmless since e is NaN through r */
  __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  e = _mm256_mul_ps(e, _mm256_castsi256_ps(bits));
  __m256 nb = _mm256_sub_ps(F(1.0f), _mm256_div_ps(F(2.0f), _mm256_add_ps(e, F(1.0f))));
  __m256 m = _mm256_cmp_ps(a, F(0.625f), _CMP_LT_OQ);
  return _mm256_or_ps(_mm256_blendv_ps(nb, ns, m), sg);
}
#undef F

void cnf__tanhf(size_t n, const float *y, float *x) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, tanh8(_mm256_loadu_ps(y + i)));
  if (i < n) { /* the tail through the same kernel */
    float buf[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (size_t j = 0; i + j < n; j++) buf[j] = y[i + j];
    _mm256_storeu_ps(buf, tanh8(_mm256_loadu_ps(buf)));
    for (size_t j = 0; i + j < n; j++) x[i + j] = buf[j];
  }
}

int cnf__tanh_is_simd(void) { return 1; }

#else

void cnf__tanh(size_t n, const double *restrict y, double *restrict x) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) x[i] = tanh(y[i]);
}

void cnf__tanhf(size_t n, const float *restrict y, float *restrict x) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) x[i] = tanhf(y[i]);
}

int cnf__tanh_is_simd(void) { return 0; }

#endif
