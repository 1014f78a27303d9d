/* bench_act.c: the cost of tanh, the MLP's activation, per element.
 *
 * Profiles of the forward pass (docs/performance.md) put glibc's vector
 * tanh (libmvec) at about half of the time of cnf_dyn_f.  This program
 * measures, on one chunk of activations (rows x 64, values like the
 * hidden layers'), the candidates for mlp.c's act_forward:
 *
 *   libmvec   the loop of mlp.c today: #pragma omp simd over tanh()
 *   scalar    glibc's scalar tanh (what a build without libmvec gets)
 *   avx2      an inline AVX2/FMA tanh: Cephes' rational approximation for
 *             |y| < 0.625, else 1 - 2 / (exp(2|y|) + 1) with exp by range
 *             reduction and Cephes' Pade form, both branches over one
 *             common division
 *   1 - x^2   a trivial pass over the same data, for scale (tanh')
 *
 * and each one's largest relative error against tanhl.  Medians of
 * repeated runs, ns per element.  Output: a markdown table. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

#if defined(CNF_MVEC)
#pragma omp declare simd notinbranch
extern double tanh(double);
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

__attribute__((noinline)) static void act_libmvec(size_t n, const double *restrict y,
                                                  double *restrict x) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) x[i] = tanh(y[i]);
}

__attribute__((noinline)) static void act_scalar(size_t n, const double *restrict y,
                                                 double *restrict x) {
  for (size_t i = 0; i < n; i++) {
    double v = y[i];
    __asm__("" : "+x"(v)); /* keep the loop scalar */
    x[i] = tanh(v);
  }
}

__attribute__((noinline)) static void act_square(size_t n, const double *restrict y,
                                                 double *restrict x) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) x[i] = 1.0 - y[i] * y[i];
}

#if defined(__AVX2__) && defined(__FMA__)
#define S(c) _mm256_set1_pd(c)
static inline __m256d tanh4(__m256d y) {
  const __m256d sign = S(-0.0);
  __m256d sg = _mm256_and_pd(y, sign), a = _mm256_andnot_pd(sign, y);
  /* |y| < 0.625: tanh = ys + ys z P(z) / Q(z), z = ys^2 (Cephes) */
  __m256d ys = _mm256_min_pd(a, S(0.625)), z = _mm256_mul_pd(ys, ys);
  __m256d p = _mm256_fmadd_pd(
      _mm256_fmadd_pd(S(-9.64399179425052238628E-1), z, S(-9.92877231001918586564E1)), z,
      S(-1.61468768441708447952E3));
  __m256d q = _mm256_fmadd_pd(
      _mm256_fmadd_pd(_mm256_add_pd(z, S(1.12811678491632931402E2)), z,
                      S(2.23548839060100448583E3)),
      z, S(4.84406305325125486048E3));
  __m256d ns = _mm256_fmadd_pd(_mm256_mul_pd(ys, z), p, _mm256_mul_pd(ys, q));
  /* else: e = exp(2|y|) = 2^n (Q + P) / (Q - P), tanh = 1 - 2 / (e + 1) */
  __m256d x = _mm256_min_pd(_mm256_add_pd(a, a), S(40.0));
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
  __m256i bits = _mm256_castpd_si256(_mm256_add_pd(n, S(6755399441055744.0 + 1023.0)));
  __m256d p2 = _mm256_castsi256_pd(_mm256_slli_epi64(bits, 52)); /* 2^n */
  __m256d dm = _mm256_sub_pd(qx, px);
  __m256d db = _mm256_fmadd_pd(_mm256_add_pd(qx, px), p2, dm); /* (e + 1)(Q - P) */
  __m256d nb = _mm256_fnmadd_pd(S(2.0), dm, db);                /* (e - 1)(Q - P) */
  __m256d m = _mm256_cmp_pd(a, S(0.625), _CMP_LT_OQ);
  __m256d t = _mm256_div_pd(_mm256_blendv_pd(nb, ns, m), _mm256_blendv_pd(db, q, m));
  return _mm256_or_pd(t, sg);
}
#undef S

__attribute__((noinline)) static void act_avx2(size_t n, const double *restrict y,
                                               double *restrict x) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, tanh4(_mm256_loadu_pd(y + i)));
  for (; i < n; i++) x[i] = tanh(y[i]);
}
#endif

typedef void (*act_fn)(size_t, const double *restrict, double *restrict);

int main(int argc, char **argv) {
  const size_t rows = argc > 1 ? (size_t)atol(argv[1]) : 256, n = rows * 64;
  double *y = malloc(n * sizeof *y), *x = malloc(n * sizeof *x);
  if (y == NULL || x == NULL || n == 0) return 1;
  /* pre-activations of a tanh layer: mostly in [-3, 3], a few large */
  unsigned long s = 12345;
  for (size_t i = 0; i < n; i++) {
    s = s * 6364136223846793005UL + 1442695040888963407UL;
    double u = (double)(s >> 11) * 0x1.0p-53;
    y[i] = (i % 97 == 0 ? 12.0 : 1.5) * (2.0 * u - 1.0) * (1.0 + u);
  }
  y[0] = 0.0, y[1] = -0.0, y[2] = 1e-300, y[3] = -800.0, y[4] = 0.625;
  struct {
    const char *name;
    act_fn fn;
    int exact;
  } cand[] = {
    {"libmvec tanh (mlp.c today)", act_libmvec, 1},
    {"scalar glibc tanh", act_scalar, 1},
#if defined(__AVX2__) && defined(__FMA__)
    {"inline AVX2/FMA tanh (proposed)", act_avx2, 1},
#endif
    {"1 - x^2 (a trivial pass, for scale)", act_square, 0},
  };
  const int nc = (int)(sizeof cand / sizeof cand[0]), samples = 31;
  printf("### tanh over one chunk (%zu x 64 doubles)\n\n", rows);
  printf("| kernel | ns/element (median) | max relative error vs tanhl |\n");
  printf("| --- | ---: | ---: |\n");
  for (int c = 0; c < nc; c++) {
    double t[31];
    int reps = 1;
    double a = now();
    cand[c].fn(n, y, x);
    while (now() - a < 1e-3) cand[c].fn(n, y, x), reps++;
    for (int k = 0; k < samples; k++) {
      double b = now();
      for (int j = 0; j < reps; j++) cand[c].fn(n, y, x);
      t[k] = (now() - b) / ((double)reps * (double)n);
    }
    qsort(t, (size_t)samples, sizeof t[0], cmp_double);
    double err = 0.0;
    if (cand[c].exact)
      for (size_t i = 0; i < n; i++) {
        long double ref = tanhl((long double)y[i]);
        long double d = fabsl((long double)x[i] - ref);
        if (ref != 0) d /= fabsl(ref);
        if ((double)d > err) err = (double)d;
      }
    if (cand[c].exact)
      printf("| %s | %.2f | %.1e |\n", cand[c].name, t[samples / 2] * 1e9, err);
    else
      printf("| %s | %.2f | — |\n", cand[c].name, t[samples / 2] * 1e9);
  }
  free(y), free(x);
  return 0;
}
