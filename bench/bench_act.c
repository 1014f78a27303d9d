/* bench_act.c: the cost of tanh, the MLP's activation, per element.
 *
 * Profiles of the forward pass (docs/performance.md) put glibc's vector
 * tanh (libmvec) at about half of the time of cnf_dyn_f.  This program
 * measures, on one chunk of activations (rows x 64, values like the
 * hidden layers'), the candidates for mlp.c's act_forward:
 *
 *   libmvec   glibc's vector tanh: #pragma omp simd over tanh() (the fallback)
 *   scalar    glibc's scalar tanh (what a build without libmvec gets)
 *   library   cnf__tanh of src/cnf/act.c, the kernel mlp.c uses: AVX2/FMA
 *             (Cephes' rational form for |y| < 0.625, else exp-based) when
 *             the build has them
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

#include "act.h"

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

/* the library's kernel (src/cnf/act.c): AVX2/FMA when built with them */
__attribute__((noinline)) static void act_library(size_t n, const double *restrict y,
                                                  double *restrict x) {
  cnf__tanh(n, y, x);
}

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
    {"libmvec tanh (the fallback)", act_libmvec, 1},
    {"scalar glibc tanh", act_scalar, 1},
    {"cnf__tanh (the library's kernel)", act_library, 1},
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
