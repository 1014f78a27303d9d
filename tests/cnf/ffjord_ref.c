/* ffjord_ref.c: an external reference for the whole forward pass.
 *
 * tests/data holds a 2-64-64-64-2 concatsquash/tanh network trained by
 * FFJORD itself, 200 points, and FFJORD's float64 log-densities of them
 * (dopri5, rtol = atol = 1e-11, exact trace).  The weights load in order
 * into the parameters of a one-block flow with the default configuration
 * and T from the file; cnf_flow_logp must then agree with FFJORD to the
 * accuracy of the two solvers: 2e-8 at rtol = atol = 1e-11 (3.2e-9 was
 * measured when the fixture was made), 5e-3 at the default 1e-5, in float64
 * and with the float32 network (cnf_options.precision) alike. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf_testing.h"

#define N_POINTS 200

/* The weights file: "nlayers T64 T32", then per layer "in out" and the
 * five parameter rows.  Reads at most cap values into theta; returns the
 * number of values in the file (or -1 on a malformed file) and T64. */
static long read_weights(const char *path, double *theta, size_t cap, double *T) {
  FILE *fp = fopen(path, "r");
  if (fp == NULL) return -1;
  int nlayers = 0;
  double T32 = 0.0;
  long n = -1;
  if (fscanf(fp, "%d %lf %lf", &nlayers, T, &T32) == 3 && nlayers > 0) {
    n = 0;
    for (int l = 0; l < nlayers && n >= 0; l++) {
      long in = 0, out = 0;
      if (fscanf(fp, "%ld %ld", &in, &out) != 2) {
        n = -1;
        break;
      }
      /* W (out, in), b, w_beta, w_gamma, b_gamma */
      long count = out * in + 4 * out;
      for (long i = 0; i < count; i++) {
        double x;
        if (fscanf(fp, "%lf", &x) != 1) {
          n = -1;
          break;
        }
        if ((size_t)n < cap) theta[n] = x;
        n++;
      }
    }
  }
  fclose(fp);
  return n;
}

/* A CSV of numbers with one header line: up to cap values, row-major. */
static size_t read_csv(const char *path, double *x, size_t cap) {
  FILE *fp = fopen(path, "r");
  if (fp == NULL) return 0;
  int c;
  while ((c = fgetc(fp)) != EOF && c != '\n') {
  }
  size_t n = 0;
  while (n < cap && fscanf(fp, " %lf ,", &x[n]) == 1) n++;
  fclose(fp);
  return n;
}

static void test_ffjord_logp(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  const size_t P = cnf_mlp_param_count(&cfg);
  double *theta = malloc(P * sizeof *theta), T = 0.0;
  long n = read_weights(CNF_TEST_DATA "/ffjord8g_weights.txt", theta, P, &T);
  CU_ASSERT_EQUAL_FATAL(n, (long)P); /* exactly the MLP's layout */
  CU_ASSERT_TRUE(T > 0.4 && T < 0.6);

  double x[2 * N_POINTS], ref[N_POINTS], logp[N_POINTS];
  CU_ASSERT_EQUAL_FATAL(read_csv(CNF_TEST_DATA "/ffjord8g_points.csv", x, 2 * N_POINTS),
                        2 * N_POINTS);
  CU_ASSERT_EQUAL_FATAL(read_csv(CNF_TEST_DATA "/ffjord8g_logp.csv", ref, N_POINTS),
                        N_POINTS);

  cnf_flow *flow = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create(&flow, ctx, &cfg, 1, T, 1), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_param_count(flow), P);
  memcpy(cnf_flow_params(flow), theta, P * sizeof *theta);

  static const struct {
    double tol, bound;
    cnf_precision prec;
  } runs[] = {{1e-11, 2e-8, CNF_PRECISION_DOUBLE},
              {1e-5, 5e-3, CNF_PRECISION_DOUBLE},
              {1e-5, 5e-3, CNF_PRECISION_SINGLE}};
  for (size_t r = 0; r < 3; r++) {
    cnf_options opt;
    cnf_options_default(&opt);
    opt.rtol = opt.atol = runs[r].tol;
    opt.precision = runs[r].prec;
    cnf_stats st;
    cnf_stats_clear(&st);
    int rc = cnf_flow_logp(flow, &opt, N_POINTS, x, logp, &st);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc != 0) printf("\n  %s\n", cnf_ctx_errmsg(ctx));
    double worst = 0.0;
    for (size_t i = 0; i < N_POINTS; i++) worst = fmax(worst, fabs(logp[i] - ref[i]));
    printf("\n  %s, rtol = atol = %g: max |log p - FFJORD| = %.3g (bound %g), "
           "%ld steps, %ld RHS evaluations",
           cnf_precision_name(runs[r].prec), runs[r].tol, worst, runs[r].bound, st.nsteps, st.nfe);
    CU_ASSERT_TRUE(worst <= runs[r].bound);
  }
  cnf_flow_free(flow);
  free(theta);
  cnf_ctx_free(ctx);
}

const test_entry ffjord_tests[] = {
    {"log p of FFJORD's 8gaussians model matches FFJORD", test_ffjord_logp},
    {NULL, NULL},
};
