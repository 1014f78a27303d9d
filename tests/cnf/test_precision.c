/* test_precision.c: the float32 network path (cnf_options.precision =
 * CNF_PRECISION_SINGLE) against the float64 one.
 *
 *   ops        f, f_div (exact trace and Hutchinson), jvp, vjp (trace term,
 *              z- and theta-gradients) and the per-row-time ops of the
 *              default 2-64-64-64-2 network at B = 300 (several chunks):
 *              within a few 1e-6 of float64, relative to each output's
 *              largest value (float's epsilon is 6e-8; a 64-wide layer adds
 *              up 64 rounded products), and not equal to it (so the float
 *              kernels did run); a thread split gives the same f and J v
 *              bits and the same gradient bits on every repetition;
 *   closed form  z' = A z with A = [[a, -w], [w, a]] (an MLP with no hidden
 *              layer and ignore layers is exactly linear): z(T) = e^{aT}
 *              R(wT) z0 and Delta(T) = -2 a T; both precisions at
 *              rtol = atol = 1e-5 within 1e-4 of it (the tolerance's order);
 *   flows      log p and samples of a random flow, and the loss and its
 *              gradient (checkpointed adjoint and backsolve) at rtol = atol
 *              = 1e-7: within 1e-6 relative (dL/dT 1e-5), the gradient within 3 times
 *              what a 10% change of tolerance does to the float64 one;
 *   options    an older, smaller cnf_options means float64 (bit for bit);
 *              an unknown precision is CNF_EINVAL; names and parsing. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf.h"
#include "cnf_testing.h"
#include "dyn_impl.h"

#define B_OPS 300

/* max |a - b| / max(1e-3, max |b|) */
static double rel_diff(const double *a, const double *b, size_t n) {
  double d = 0.0, m = 1e-3;
  for (size_t i = 0; i < n; i++) {
    d = fmax(d, fabs(a[i] - b[i]));
    m = fmax(m, fabs(b[i]));
  }
  return d / m;
}

static void fill(double *x, size_t n, unsigned long long seed, double scale) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
    x[i] = scale * (2.0 * (double)(seed >> 11) * 0x1.0p-53 - 1.0);
  }
}

/* Every op once in the precision p (hold 0: weights converted per call);
 * out holds f, div exact, f and div Hutchinson, J v, gz, gth, f_rows,
 * gz and gth of vjp_rows, in that order. */
typedef struct ops_out {
  double f[2 * B_OPS], div_e[B_OPS], div_h[B_OPS], jv[2 * B_OPS], gz[2 * B_OPS];
  double fr[2 * B_OPS], gzr[2 * B_OPS];
  double *gth, *gthr;
} ops_out;

static void run_ops(cnf_dyn *dyn, cnf_precision p, const double *theta, size_t P, const double *z,
                    const double *v, const double *a, const double *ts, ops_out *o) {
  const size_t B = B_OPS;
  double dz[2 * B_OPS], w[B_OPS];
  for (size_t b = 0; b < B; b++) w[b] = 1.0 / (double)B;
  int saved = 0;
  CU_ASSERT_EQUAL_FATAL(cnf__dyn_precision_begin(dyn, p, 0, &saved), 0);
  CU_ASSERT_EQUAL(cnf_dyn_reserve(dyn, B, 2), 0);
  CU_ASSERT_EQUAL(cnf_dyn_f(dyn, 0.3, B, z, theta, o->f), 0);
  CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, 0.3, B, 2, z, theta, NULL, dz, o->div_e), 0);
  CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, 0.3, B, 1, z, theta, v, dz, o->div_h), 0);
  CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, 0.3, B, 1, z, theta, v, dz, o->jv), 0);
  memset(o->gth, 0, P * sizeof(double));
  CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, 0.3, B, 2, z, theta, a, w, NULL, dz, o->gz, o->gth), 0);
  CU_ASSERT_EQUAL(cnf_dyn_f_rows(dyn, ts, B, z, theta, o->fr), 0);
  memset(o->gthr, 0, P * sizeof(double));
  CU_ASSERT_EQUAL(cnf_dyn_vjp_rows(dyn, ts, B, z, theta, a, NULL, dz, o->gzr, o->gthr), 0);
  cnf__dyn_precision_end(dyn, saved);
}

static void test_prec_ops(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  const size_t P = cnf_mlp_param_count(&cfg), B = B_OPS;
  double *theta = malloc(P * sizeof *theta);
  CU_ASSERT_EQUAL_FATAL(cnf_mlp_init_params(&cfg, 5, theta), 0);
  double z[2 * B_OPS], v[2 * B_OPS], a[2 * B_OPS], ts[B_OPS];
  fill(z, 2 * B, 1, 3.0);
  fill(v, 2 * B, 2, 1.0);
  fill(a, 2 * B, 3, 0.01);
  fill(ts, B, 4, 0.5);
  for (size_t b = 0; b < B; b++) ts[b] += 0.5;
  ops_out *o[3];
  for (int i = 0; i < 3; i++) {
    o[i] = calloc(1, sizeof *o[i]);
    o[i]->gth = malloc(P * sizeof(double));
    o[i]->gthr = malloc(P * sizeof(double));
  }
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_mlp_create(&dyn, ctx, &cfg), 0);
  run_ops(dyn, CNF_PRECISION_DOUBLE, theta, P, z, v, a, ts, o[0]);
  run_ops(dyn, CNF_PRECISION_SINGLE, theta, P, z, v, a, ts, o[1]);
  const struct {
    const char *name;
    const double *d, *s;
    size_t n;
    double bound;
  } cmp[] = {{"f", o[0]->f, o[1]->f, 2 * B, 5e-6},
             {"div (exact)", o[0]->div_e, o[1]->div_e, B, 5e-6},
             {"div (Hutchinson)", o[0]->div_h, o[1]->div_h, B, 5e-6},
             {"J v", o[0]->jv, o[1]->jv, 2 * B, 5e-6},
             {"vjp: dS/dz", o[0]->gz, o[1]->gz, 2 * B, 1e-5},
             {"vjp: dS/dtheta", o[0]->gth, o[1]->gth, P, 1e-5},
             {"f_rows", o[0]->fr, o[1]->fr, 2 * B, 5e-6},
             {"vjp_rows: dS/dz", o[0]->gzr, o[1]->gzr, 2 * B, 1e-5},
             {"vjp_rows: dS/dtheta", o[0]->gthr, o[1]->gthr, P, 1e-5}};
  for (size_t i = 0; i < sizeof cmp / sizeof cmp[0]; i++) {
    double d = rel_diff(cmp[i].s, cmp[i].d, cmp[i].n);
    printf("\n  %-20s float32 vs float64: %.2e (bound %.0e)", cmp[i].name, d, cmp[i].bound);
    CU_ASSERT_TRUE(d <= cmp[i].bound);
    CU_ASSERT_TRUE(d > 1e-12); /* the float kernels ran */
  }

  /* two threads (the batch splits): float32's GEMM kernels depend on the
   * row count, so the results equal one thread's to float rounding, and the
   * same thread count gives the same bits on every run */
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_mlp_set_threads(dyn, 2), 0);
  run_ops(dyn, CNF_PRECISION_SINGLE, theta, P, z, v, a, ts, o[2]);
  CU_ASSERT_TRUE(rel_diff(o[2]->f, o[1]->f, 2 * B) <= 1e-6);
  CU_ASSERT_TRUE(rel_diff(o[2]->jv, o[1]->jv, 2 * B) <= 1e-6);
  CU_ASSERT_TRUE(rel_diff(o[2]->div_e, o[1]->div_e, B) <= 1e-6);
  CU_ASSERT_TRUE(rel_diff(o[2]->gth, o[1]->gth, P) <= 1e-6);
  ops_out *again = calloc(1, sizeof *again);
  again->gth = malloc(P * sizeof(double));
  again->gthr = malloc(P * sizeof(double));
  run_ops(dyn, CNF_PRECISION_SINGLE, theta, P, z, v, a, ts, again);
  CU_ASSERT_EQUAL(memcmp(again->f, o[2]->f, sizeof again->f), 0);
  CU_ASSERT_EQUAL(memcmp(again->jv, o[2]->jv, sizeof again->jv), 0);
  CU_ASSERT_EQUAL(memcmp(again->div_e, o[2]->div_e, sizeof again->div_e), 0);
  CU_ASSERT_EQUAL(memcmp(again->gth, o[2]->gth, P * sizeof(double)), 0);
  free(again->gth), free(again->gthr), free(again);
  cnf_dyn_free(dyn);
  for (int i = 0; i < 3; i++) free(o[i]->gth), free(o[i]->gthr), free(o[i]);
  free(theta);
  cnf_ctx_free(ctx);
}

/* Inside a solve (hold) the reverse sweep keeps a whole batch's forward
 * pass for the next call at the same t, z, theta and probes: the results
 * must be those of a fresh sweep, bit for bit, and a changed z (same
 * pointer, new values) or t must be seen. */
static void test_prec_fwd_reuse(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  const size_t P = cnf_mlp_param_count(&cfg);
  enum { B = 100 }; /* 300 stacked rows: one chunk */
  double *theta = malloc(P * sizeof *theta), *g[4];
  for (int i = 0; i < 4; i++) g[i] = malloc(P * sizeof(double));
  CU_ASSERT_EQUAL_FATAL(cnf_mlp_init_params(&cfg, 5, theta), 0);
  double z[2 * B], a1[2 * B], a2[2 * B], w[B], gz[4][2 * B];
  fill(z, 2 * B, 1, 3.0);
  fill(a1, 2 * B, 3, 0.01);
  fill(a2, 2 * B, 8, 0.01);
  for (size_t b = 0; b < B; b++) w[b] = 0.01;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_mlp_create(&dyn, ctx, &cfg), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_reserve(dyn, B, 2), 0);
  for (int p = 0; p < 2; p++) {
    const cnf_precision prec = p ? CNF_PRECISION_SINGLE : CNF_PRECISION_DOUBLE;
    int saved = 0;
    /* fresh sweeps (hold 0): a2 at z, a2 at z', a2 at t' */
    double z2[2 * B];
    for (size_t i = 0; i < 2 * B; i++) z2[i] = z[i] * 1.001;
    CU_ASSERT_EQUAL(cnf__dyn_precision_begin(dyn, prec, 0, &saved), 0);
    for (int i = 0; i < 3; i++) {
      memset(g[i], 0, P * sizeof(double));
      CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, i == 2 ? 0.4 : 0.3, B, 2, i == 1 ? z2 : z, theta, a2, w,
                                  NULL, NULL, gz[i], g[i]),
                      0);
    }
    cnf__dyn_precision_end(dyn, saved);
    /* held: a1 then a2 at z (the second reuses), then z changed in place,
     * then t changed */
    double zz[2 * B];
    memcpy(zz, z, sizeof zz);
    CU_ASSERT_EQUAL(cnf__dyn_precision_begin(dyn, prec, 1, &saved), 0);
    memset(g[3], 0, P * sizeof(double));
    CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, 0.3, B, 2, zz, theta, a1, w, NULL, NULL, gz[3], NULL), 0);
    CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, 0.3, B, 2, zz, theta, a2, w, NULL, NULL, gz[3], g[3]), 0);
    CU_ASSERT_EQUAL(memcmp(gz[3], gz[0], sizeof gz[0]), 0);
    CU_ASSERT_EQUAL(memcmp(g[3], g[0], P * sizeof(double)), 0);
    memcpy(zz, z2, sizeof zz);
    CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, 0.3, B, 2, zz, theta, a2, w, NULL, NULL, gz[3], NULL), 0);
    CU_ASSERT_EQUAL(memcmp(gz[3], gz[1], sizeof gz[1]), 0);
    CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, 0.3, B, 2, z, theta, a2, w, NULL, NULL, gz[3], NULL), 0);
    CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, 0.4, B, 2, z, theta, a2, w, NULL, NULL, gz[3], NULL), 0);
    CU_ASSERT_EQUAL(memcmp(gz[3], gz[2], sizeof gz[2]), 0);
    CU_ASSERT_TRUE(memcmp(gz[0], gz[1], sizeof gz[0]) != 0 &&
                   memcmp(gz[0], gz[2], sizeof gz[0]) != 0);
    cnf__dyn_precision_end(dyn, saved);
  }
  cnf_dyn_free(dyn);
  for (int i = 0; i < 4; i++) free(g[i]);
  free(theta);
  cnf_ctx_free(ctx);
}

/* z' = A z + 0, A = [[a, -w], [w, a]]: an MLP without hidden layers and
 * with ignore layers computes f = W z + b exactly. */
static void test_prec_closed_form(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  cfg.n_hidden = 0;
  cfg.layer = CNF_LAYER_IGNORE;
  CU_ASSERT_EQUAL_FATAL(cnf_mlp_param_count(&cfg), 6);
  const double a = -0.75, w = 2.5, T = 1.25;
  const double theta[6] = {a, -w, w, a, 0.0, 0.0};
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_mlp_create(&dyn, ctx, &cfg), 0);
  enum { B = 50 };
  double z0[2 * B], z[2 * B], delta[B];
  fill(z0, 2 * B, 9, 2.0);
  for (int p = 0; p < 2; p++) {
    cnf_options opt;
    cnf_options_default(&opt);
    opt.rtol = opt.atol = 1e-5;
    opt.precision = p ? CNF_PRECISION_SINGLE : CNF_PRECISION_DOUBLE;
    memcpy(z, z0, sizeof z);
    memset(delta, 0, sizeof delta);
    CU_ASSERT_EQUAL(cnf_dyn_solve(dyn, theta, &opt, 0.0, T, B, 0, NULL, z, delta, NULL), 0);
    double ez = 0.0, ed = 0.0;
    const double g = exp(a * T), c = cos(w * T), s = sin(w * T);
    for (size_t b = 0; b < B; b++) {
      const double x = z0[2 * b], y = z0[2 * b + 1];
      ez = fmax(ez, fabs(z[2 * b] - g * (c * x - s * y)));
      ez = fmax(ez, fabs(z[2 * b + 1] - g * (s * x + c * y)));
      ed = fmax(ed, fabs(delta[b] - (-2.0 * a * T)));
    }
    printf("\n  %s: max |z(T) - closed form| %.2e, |Delta(T) - closed form| %.2e (bound 1e-4)",
           p ? "float32" : "float64", ez, ed);
    CU_ASSERT_TRUE(ez <= 1e-4);
    CU_ASSERT_TRUE(ed <= 1e-4);
  }
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* Runs 0 and 1: float64 and float32 at rtol = atol = 1e-7; run 2: float64
 * at 1.1e-7, the scale of the solver's own sensitivity to its steps. */
static void test_prec_flow(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  cnf_flow *flow = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create(&flow, ctx, &cfg, 1, 0.5, 3), 0);
  const size_t P = cnf_flow_param_count(flow);
  enum { B = 200 };
  double x[2 * B], lp[3][B], xs[3][2 * B], ls[3][B], loss[3][2], gT[3][2];
  double *grad[3][2];
  for (int r = 0; r < 3; r++)
    for (int adj = 0; adj < 2; adj++) grad[r][adj] = malloc(P * sizeof(double));
  CU_ASSERT_EQUAL_FATAL(cnf_toy_sample("8gaussians", B, 7, x), 0);
  for (int r = 0; r < 3; r++) {
    cnf_options opt;
    cnf_options_default(&opt);
    opt.rtol = opt.atol = r == 2 ? 1.1e-7 : 1e-7;
    opt.precision = r == 1 ? CNF_PRECISION_SINGLE : CNF_PRECISION_DOUBLE;
    CU_ASSERT_EQUAL(cnf_flow_logp(flow, &opt, B, x, lp[r], NULL), 0);
    cnf_flow_seed(flow, 11);
    CU_ASSERT_EQUAL(cnf_flow_sample(flow, &opt, B, xs[r], ls[r], NULL), 0);
    for (int adj = 0; adj < 2; adj++) {
      opt.adjoint = adj ? CNF_ADJOINT_CHECKPOINT : CNF_ADJOINT_BACKSOLVE;
      CU_ASSERT_EQUAL(cnf_flow_loss_grad(flow, &opt, B, x, &loss[r][adj], grad[r][adj], &gT[r][adj],
                                         NULL, NULL),
                      0);
    }
  }
  const double dlp = rel_diff(lp[1], lp[0], B), dxs = rel_diff(xs[1], xs[0], 2 * B);
  const double dls = rel_diff(ls[1], ls[0], B);
  printf("\n  float32 vs float64: log p %.2e, samples %.2e, their log p %.2e (bounds 1e-6)", dlp,
         dxs, dls);
  CU_ASSERT_TRUE(dlp <= 1e-6 && dlp > 0.0);
  CU_ASSERT_TRUE(dxs <= 1e-6 && dxs > 0.0);
  CU_ASSERT_TRUE(dls <= 1e-6);
  for (int adj = 0; adj < 2; adj++) {
    const double dl = fabs(loss[1][adj] - loss[0][adj]) / fabs(loss[0][adj]);
    const double dg = rel_diff(grad[1][adj], grad[0][adj], P);
    const double dgt = rel_diff(grad[2][adj], grad[0][adj], P);
    const double dT = fabs(gT[1][adj] - gT[0][adj]) / fmax(1e-3, fabs(gT[0][adj]));
    /* the checkpointed adjoint's a_theta quadrature is outside the error
     * control (seminorm), so its error follows the step sequence: the
     * gradient moves as much with a 10% change of tolerance */
    const double gb = fmax(1e-5, 3.0 * dgt);
    printf(
        "\n  %s: loss %.2e, dL/dT %.2e (bounds 1e-6, 1e-5), gradient %.2e (bound %.1e; "
        "float64 at rtol 1.1e-7: %.2e)",
        adj ? "checkpoint" : "backsolve", dl, dT, dg, gb, dgt);
    CU_ASSERT_TRUE(dl <= 1e-6);
    CU_ASSERT_TRUE(dT <= 1e-5);
    CU_ASSERT_TRUE(dg <= gb && dg > 0.0);
    CU_ASSERT_TRUE(dg <= 1e-3);
  }
  for (int r = 0; r < 3; r++) free(grad[r][0]), free(grad[r][1]);
  cnf_flow_free(flow);
  cnf_ctx_free(ctx);
}

static void test_prec_options(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  cnf_flow *flow = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create(&flow, ctx, &cfg, 1, 0.5, 3), 0);
  enum { B = 20 };
  double x[2 * B], l0[B], l1[B];
  CU_ASSERT_EQUAL_FATAL(cnf_toy_sample("8gaussians", B, 7, x), 0);
  cnf_options opt;
  cnf_options_default(&opt);
  CU_ASSERT_EQUAL(opt.precision, CNF_PRECISION_DOUBLE);
  CU_ASSERT_EQUAL(cnf_flow_logp(flow, &opt, B, x, l0, NULL), 0);
  /* a caller built before the field: its struct ends where precision starts */
  opt.precision = CNF_PRECISION_SINGLE;
  opt.size = offsetof(cnf_options, precision);
  CU_ASSERT_EQUAL(cnf_flow_logp(flow, &opt, B, x, l1, NULL), 0);
  CU_ASSERT_EQUAL(memcmp(l0, l1, sizeof l0), 0);
  /* unknown precision */
  cnf_options_default(&opt);
  opt.precision = (cnf_precision)7;
  CU_ASSERT_EQUAL(cnf_flow_logp(flow, &opt, B, x, l1, NULL), CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "precision"));
  double g[9224], loss;
  CU_ASSERT_EQUAL(cnf_flow_loss_grad(flow, &opt, B, x, &loss, g, NULL, NULL, NULL), CNF_EINVAL);
  /* names */
  cnf_precision p = CNF_PRECISION_DOUBLE;
  CU_ASSERT_EQUAL(cnf_precision_parse("single", &p), 0);
  CU_ASSERT_EQUAL(p, CNF_PRECISION_SINGLE);
  CU_ASSERT_EQUAL(cnf_precision_parse("float", &p), CNF_EINVAL);
  CU_ASSERT_STRING_EQUAL(cnf_precision_name(CNF_PRECISION_DOUBLE), "double");
  CU_ASSERT_STRING_EQUAL(cnf_precision_name(CNF_PRECISION_SINGLE), "single");
  cnf_flow_free(flow);
  cnf_ctx_free(ctx);
}

const test_entry precision_tests[] = {
    {"float32 ops within a few 1e-6 of float64; threads deterministic", test_prec_ops},
    {"reverse sweep inside a solve reuses its forward pass: the same bits", test_prec_fwd_reuse},
    {"float32 solve of a linear MLP meets rtol = atol = 1e-5 against the closed form",
     test_prec_closed_form},
    {"float32 log p, samples, loss and gradients near float64", test_prec_flow},
    {"precision option: old callers get float64, unknown values refused", test_prec_options},
    {NULL, NULL},
};
