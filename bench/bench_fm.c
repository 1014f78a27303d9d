/* bench_fm.c: the cost of one flow-matching step (include/cnf_fm.h).
 *
 * For the default MLP (D-64-64-64-D, concatsquash, tanh) and batches B:
 *   loss+grad  cnf_fm_loss_grad: one per-row forward and reverse pass
 *   draw       cnf_fm_batch with the independent coupling (noise, times)
 *   OT pair    cnf_fm_pair_ot: the (B, B) squared Euclidean cost and the
 *              exact assignment, data N(0.5, 4 I) against noise N(0, I)
 * for D = 2 (the toy sets) and D = 43 (MINIBOONE's dimension).  Medians
 * of repeated runs in ms, one thread (set OPENBLAS_NUM_THREADS=1).
 * Usage: bench_fm [reps]  (default 21).  Output: a markdown table. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnf_fm.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *t, int n) {
  qsort(t, (size_t)n, sizeof *t, cmp_double);
  return t[n / 2];
}

int main(int argc, char **argv) {
  const int reps = argc > 1 ? atoi(argv[1]) : 21;
  if (reps < 1) {
    fprintf(stderr, "bench_fm: reps must be a positive integer\n");
    return 2;
  }
  const size_t dims[] = {2, 43}, batches[] = {128, 256, 512, 1024};
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0) return 1;
  double *t = malloc((size_t)reps * sizeof(double));
  printf("| D | B | loss+grad (ms) | draw (ms) | OT pair (ms) |\n|---|---|---|---|---|\n");
  for (size_t di = 0; di < 2; di++) {
    const size_t D = dims[di];
    cnf_mlp_config cfg;
    cnf_mlp_config_default(&cfg, D);
    cnf_dyn *dyn = NULL;
    if (cnf_dyn_mlp_create(&dyn, ctx, &cfg) != 0) return 1;
    const size_t P = cnf_dyn_param_count(dyn);
    double *theta = malloc(P * sizeof(double)), *g = malloc(P * sizeof(double));
    cnf_mlp_init_params(&cfg, 1, theta);
    for (size_t bi = 0; bi < 4; bi++) {
      const size_t B = batches[bi];
      double *x = malloc(B * D * sizeof(double)), *z = malloc(B * D * sizeof(double)),
             *s = malloc(B * sizeof(double)), loss = 0.0, ms[3];
      /* data: N(0.5, 4 I), from the noise draw of another seed */
      cnf_fm_batch(ctx, CNF_FM_INDEPENDENT, 7, B, D, NULL, x, s, NULL);
      for (size_t i = 0; i < B * D; i++) x[i] = 0.5 + 2.0 * x[i];
      for (int k = 0; k < 3; k++) {
        for (int r = 0; r < reps; r++) {
          int rc = 0;
          double t0 = now();
          if (k == 0) {
            rc = cnf_fm_batch(ctx, CNF_FM_INDEPENDENT, (uint64_t)r, B, D, NULL, z, s, NULL);
            t0 = now();
            if (rc == 0) rc = cnf_fm_loss_grad(dyn, theta, 0.5, 0.0, B, x, z, s, NULL, &loss, g);
          } else if (k == 1) {
            rc = cnf_fm_batch(ctx, CNF_FM_INDEPENDENT, (uint64_t)r, B, D, NULL, z, s, NULL);
          } else {
            rc = cnf_fm_batch(ctx, CNF_FM_INDEPENDENT, (uint64_t)r, B, D, NULL, z, s, NULL);
            t0 = now();
            if (rc == 0) rc = cnf_fm_pair_ot(ctx, B, D, x, z, NULL, NULL);
          }
          t[r] = now() - t0;
          if (rc != 0) {
            fprintf(stderr, "bench_fm: %s\n", cnf_ctx_errmsg(ctx));
            return 1;
          }
        }
        ms[k] = 1e3 * median(t, reps);
      }
      printf("| %zu | %zu | %.3f | %.3f | %.3f |\n", D, B, ms[0], ms[1], ms[2]);
      free(x), free(z), free(s);
    }
    free(theta), free(g);
    cnf_dyn_free(dyn);
  }
  free(t);
  cnf_ctx_free(ctx);
  return 0;
}
