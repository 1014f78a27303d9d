/* test_pde_learn.c: the PDE problems as one object, the metrics over time
 * and the learner of cnf_pde.h (src/pde/problem.c, metrics.c, learn.c);
 * three suites run by test_pde's main (pde_tests.h).
 *
 * 1. The problem object: names and default times, P1a's Gaussian moments
 *    against the closed form e^{-2 gamma t} I of the rotation field, exact
 *    samples of p_t against those moments, log p0 against log p_0, errors.
 * 2. The report: with a deliberately wrong P1a field (gamma' = 0.3 for the
 *    problem's 0.5, same rotation) the LPE has a closed form per sample,
 *       log p_hat - log p_t = (e^{2 delta t} - 1) |x0|^2 / 2 - t d delta,
 *    delta = gamma - gamma', and the Gaussian W2^2 is that of the samples
 *    expm(t A') x0; both are recomputed here from the documented stream of
 *    x0 ("pde-x0") and matched to the solver's tolerance.  The exact
 *    fields of P3 and P4 give LPE ~ 0 at 21 times; P4's well mass and KL
 *    estimate agree with the reference within sampling error.  The 1-D
 *    density curves of the exact field match the reference's; a field
 *    whose log-density is -inf on the grid is CNF_ENONFINITE.
 * 3. The learner: on P3 (d = 2) a small MLP reduces the regression loss
 *    on held-out samples (8 times x 256 samples, drawn independently of
 *    the learner's streams) by more than 100x in 300 Adam steps; runs are
 *    bit-for-bit reproducible from the seed; the report callback sees
 *    every iteration and stops early; P4's path bank learns too; bad
 *    options are errors with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf_dynamics.h"
#include "cnf_pde.h"
#include "pde_tests.h"
#include "test_util.h"

static cnf_pde_problem *make(cnf_ctx *ctx, cnf_pde_kind kind, size_t d, size_t cells) {
  cnf_pde_problem_config c;
  cnf_pde_problem_config_default(&c, kind, d);
  c.cells = cells;
  cnf_pde_problem *pb = NULL;
  CU_ASSERT_FATAL(cnf_pde_problem_create(&pb, ctx, &c) == 0 && pb != NULL);
  return pb;
}

/* ---- 1. the problem object ------------------------------------------------ */

static void test_problem_object(void) {
  cnf_ctx *ctx = new_ctx();
  static const double T[] = {1.0, 0.5, 1.0, 2.0, 1.0};
  for (int k = 0; k < CNF_PDE_KINDS; k++) {
    cnf_pde_kind back = (cnf_pde_kind)-1;
    CU_ASSERT_EQUAL(cnf_pde_kind_parse(cnf_pde_kind_name((cnf_pde_kind)k), &back), 0);
    CU_ASSERT_EQUAL(back, k);
    CHECK_NEAR(cnf_pde_default_time((cnf_pde_kind)k), T[k], 0.0);
  }
  CU_ASSERT_EQUAL(cnf_pde_kind_parse("double-wall", &(cnf_pde_kind){0}), CNF_EINVAL);
  CU_ASSERT_PTR_NULL(cnf_pde_kind_name((cnf_pde_kind)7));

  /* P1a rotation, d = 4: E = e^{-t/2} R(2t), so Sigma_t = e^{-t} I */
  const size_t d = 4, B = 20000;
  cnf_pde_problem *pb = make(ctx, CNF_PDE_P1A, d, 0);
  CU_ASSERT_EQUAL(cnf_pde_problem_kind(pb), CNF_PDE_P1A);
  CHECK_NEAR(cnf_pde_problem_time(pb), 1.0, 0.0);
  CU_ASSERT_TRUE(cnf_pde_problem_is_gaussian(pb));
  CU_ASSERT_PTR_NOT_NULL(cnf_pde_problem_theta(pb));
  CU_ASSERT_EQUAL(cnf_dyn_dim(cnf_pde_problem_field(pb)), d);
  double m[4], S[16], mh[4], Sh[16], I[16] = {0};
  for (size_t i = 0; i < d; i++) I[i * d + i] = exp(-0.7);
  CU_ASSERT_EQUAL(cnf_pde_problem_moments(pb, 0.7, m, S), 0);
  CHECK_CLOSE(S, I, d * d, 0.0, 1e-13, "P1a Sigma_0.7 = e^-0.7 I");
  /* exact samples of p_0.7: moments within a few standard errors
   * (sd of a covariance entry ~ e^-0.7 / sqrt(B) = 3.5e-3) */
  double *x = malloc(B * d * sizeof(double)), lp[3], ln[3];
  CU_ASSERT_FATAL(x != NULL);
  CU_ASSERT_EQUAL(cnf_pde_problem_sample(pb, 0.7, 11, B, x), 0);
  CU_ASSERT_EQUAL(cnf_pde_sample_moments(d, B, x, mh, Sh), 0);
  CHECK_CLOSE(Sh, S, d * d, 0.0, 0.02, "P1a sample covariance at t = 0.7");
  CHECK_CLOSE(mh, m, d, 0.0, 0.02, "P1a sample mean at t = 0.7");
  /* log p0 is log N(0, I); the reference at t = 0 agrees */
  CU_ASSERT_EQUAL(cnf_pde_problem_logp0(pb, 3, x, lp), 0);
  CU_ASSERT_EQUAL(cnf_pde_problem_logp(pb, 0.0, 3, x, ln), 0);
  for (size_t b = 0; b < 3; b++) CHECK_NEAR(lp[b], cnf_log_normal(x + b * d, d), 1e-14);
  CHECK_CLOSE(ln, lp, 3, 1e-13, 1e-13, "P1a log p_0 = log p0");
  /* errors: P1b has no Gaussian p_t; heat needs d >= 2; bad times */
  cnf_pde_problem_free(pb);
  pb = make(ctx, CNF_PDE_P1B, 2, 0);
  CU_ASSERT_EQUAL(cnf_pde_problem_moments(pb, 0.5, m, S), CNF_EINVAL);
  CU_ASSERT_PTR_NULL(cnf_pde_problem_theta(pb));
  CU_ASSERT_EQUAL(cnf_pde_problem_sample(pb, -1.0, 1, 2, x), CNF_EINVAL);
  cnf_pde_problem_free(pb);
  cnf_pde_problem_config c;
  cnf_pde_problem_config_default(&c, CNF_PDE_P2, 1);
  pb = NULL;
  CU_ASSERT_EQUAL(cnf_pde_problem_create(&pb, ctx, &c), CNF_EINVAL);
  CU_ASSERT_PTR_NULL(pb);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "d >= 2"));
  cnf_pde_problem_config_default(&c, CNF_PDE_P4, 2);
  c.cells = 1001;
  CU_ASSERT_EQUAL(cnf_pde_problem_create(&pb, ctx, &c), CNF_EINVAL);
  cnf_pde_problem_free(NULL);
  free(x);
  cnf_ctx_free(ctx);
}

/* ---- 2. the report ----------------------------------------------------------- */

static void test_report_closed_form(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t d = 4, B = 300, m = 3;
  const uint64_t seed = 5;
  const double gp = 0.3, delta = 0.5 - gp, times[3] = {0.25, 0.5, 1.0};
  cnf_pde_problem *pb = make(ctx, CNF_PDE_P1A, d, 0);
  cnf_dyn *lin = NULL;
  CU_ASSERT_FATAL(cnf_dyn_linear_create(&lin, ctx, d) == 0);
  double theta[20] = {0}, A[16], x0[1200], xt[1200], err[300], mo[4], S[16], mh[4], Sh[16];
  CU_ASSERT_EQUAL(cnf_pde_p1a_matrix(ctx, CNF_PDE_A_ROTATION, d, gp, 2.0, 0, A), 0);
  memcpy(theta, A, sizeof A);
  const cnf_options o = options(1e-10);
  cnf_pde_metrics rows[3];
  cnf_pde_report rep;
  CU_ASSERT_EQUAL_FATAL(
      cnf_pde_report_times(ctx, pb, lin, theta, &o, B, seed, m, times, rows, &rep), 0);
  CU_ASSERT_EQUAL(cnf_probes_draw(CNF_TRACE_GAUSS, cnf_seed_derive(seed, "pde-x0", 0), 1, B, d, x0),
                  0);
  for (size_t k = 0; k < m; k++) {
    const double t = times[k];
    double mean = 0.0, max = 0.0;
    for (size_t b = 0; b < B; b++) {
      double r2 = 0.0;
      for (size_t i = 0; i < d; i++) r2 += x0[b * d + i] * x0[b * d + i];
      err[b] = fabs((exp(2 * delta * t) - 1) * r2 / 2 - t * (double)d * delta);
      mean += err[b] / (double)B, max = fmax(max, err[b]);
    }
    cnf_pde_gauss_err ge;
    CU_ASSERT_EQUAL(cnf_pde_p1a_flow(ctx, d, A, t, B, x0, xt), 0);
    CU_ASSERT_EQUAL(cnf_pde_problem_moments(pb, t, mo, S), 0);
    CU_ASSERT_EQUAL(cnf_pde_sample_moments(d, B, xt, mh, Sh), 0);
    CU_ASSERT_EQUAL(cnf_pde_gauss_errors(ctx, d, mh, Sh, mo, S, &ge), 0);
    printf("\n    t = %.2f: LPE %.6f (closed form %.6f), W2^2 %.6f (%.6f)", t, rows[k].lpe_mean,
           mean, rows[k].w2sq, ge.w2sq);
    CHECK_NEAR(rows[k].t, t, 0.0);
    CHECK_NEAR(rows[k].lpe_mean, mean, 1e-6);
    CHECK_NEAR(rows[k].lpe_max, max, 1e-6);
    CHECK_NEAR(rows[k].w2sq, ge.w2sq, 1e-7);
    CHECK_NEAR(rows[k].cov_rel, ge.cov_rel, 1e-7);
    CHECK_NEAR(rows[k].w2, sqrt(rows[k].w2sq), 1e-15);
    CU_ASSERT_TRUE(isnan(rows[k].mass_left) && isnan(rows[k].mass_left_ref));
  }
  CU_ASSERT_TRUE(rows[2].lpe_mean > 0.1); /* the wrong field is visibly wrong */
  CU_ASSERT_TRUE(rep.stats.nfe > 0 && rep.solve_seconds >= 0);
  CU_ASSERT_TRUE(isnan(rep.kl_inf_ref) && isnan(rep.kl_inf_flow));
  /* errors: times not increasing, a field of another dimension */
  const double bad[2] = {0.5, 0.5};
  CU_ASSERT_EQUAL(cnf_pde_report_times(ctx, pb, lin, theta, &o, B, seed, 2, bad, rows, NULL),
                  CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "increasing"));
  cnf_dyn *lin3 = NULL;
  CU_ASSERT_FATAL(cnf_dyn_linear_create(&lin3, ctx, 3) == 0);
  CU_ASSERT_EQUAL(cnf_pde_report_times(ctx, pb, lin3, theta, &o, B, seed, 1, NULL, rows, NULL),
                  CNF_EDIM);
  cnf_dyn_free(lin3);
  cnf_dyn_free(lin);
  cnf_pde_problem_free(pb);
  cnf_ctx_free(ctx);
}

/* The exact fields: LPE ~ 0 at every one of 21 times (P3: the solver's
 * tolerance; P4 in 1-D on 500 cells: the reference's residual, 1e-6 per
 * coordinate as in test_pde); the double well's fraction left of 0 within
 * 4 standard errors of the reference's mass, the flow's KL estimate within
 * 0.1 of the reference's (its spread over seeds is 0.03 at B = 400). */
static void test_report_exact_fields(void) {
  cnf_ctx *ctx = new_ctx();
  const cnf_options o = options(1e-8);
  cnf_pde_metrics rows[21];
  cnf_pde_report rep;
  cnf_pde_problem *pb = make(ctx, CNF_PDE_P3, 3, 0);
  CU_ASSERT_EQUAL_FATAL(cnf_pde_report_times(ctx, pb, cnf_pde_problem_field(pb), NULL, &o, 200, 1,
                                             21, NULL, rows, &rep),
                        0);
  double worst = 0.0;
  for (size_t k = 0; k < 21; k++) worst = fmax(worst, rows[k].lpe_mean);
  CHECK_NEAR(rows[20].t, 2.0, 0.0);
  CHECK_NEAR(rows[10].t, 1.0, 1e-15);
  printf("\n    P3 d = 3: worst LPE over 21 times %.2e", worst);
  CU_ASSERT_TRUE(worst <= 1e-6);
  cnf_pde_problem_free(pb);

  const size_t B = 400;
  pb = make(ctx, CNF_PDE_P4, 1, 500);
  CU_ASSERT_EQUAL_FATAL(cnf_pde_report_times(ctx, pb, cnf_pde_problem_field(pb), NULL, &o, B, 2, 21,
                                             NULL, rows, &rep),
                        0);
  worst = 0.0;
  for (size_t k = 0; k < 21; k++) worst = fmax(worst, rows[k].lpe_mean);
  const double ml = rows[20].mass_left_ref;
  printf("\n    P4 d = 1: worst LPE %.2e, mass left %.4f (reference %.4f), KL %.4f (%.4f)", worst,
         rows[20].mass_left, ml, rep.kl_inf_flow, rep.kl_inf_ref);
  CU_ASSERT_TRUE(worst <= 1e-6);
  CU_ASSERT_TRUE(fabs(rows[20].mass_left - ml) <= 4 * sqrt(ml * (1 - ml) / (double)B));
  CU_ASSERT_TRUE(fabs(rep.kl_inf_flow - rep.kl_inf_ref) < 0.1); /* ~3 sd at B = 400 */
  CU_ASSERT_TRUE(isnan(rows[20].w2sq) && rows[20].w2 > 0 && rows[20].w2 < 0.2);
  cnf_pde_problem_free(pb);
  cnf_ctx_free(ctx);
}

/* The 1-D curves of P3's exact field: each density matches the closed
 * form to the solver's tolerance and integrates to 1 on [-8, 8]. */
static void test_density_curves(void) {
  cnf_ctx *ctx = new_ctx();
  enum { G = 161, NT = 2 };
  const double times[NT] = {0.5, 2.0};
  double x[G], y[2 * NT * G];
  const cnf_options o = options(1e-9);
  cnf_pde_problem *pb = make(ctx, CNF_PDE_P3, 1, 0);
  CU_ASSERT_EQUAL_FATAL(cnf_pde_density_curves(ctx, pb, cnf_pde_problem_field(pb), NULL, &o, -8, 8,
                                               G, NT, times, x, y),
                        0);
  CHECK_NEAR(x[0], -8.0, 0.0);
  CHECK_NEAR(x[G - 1], 8.0, 1e-15);
  for (size_t k = 0; k < NT; k++) {
    const double *ref = y + 2 * k * G, *mod = ref + G;
    CHECK_CLOSE(mod, ref, G, 1e-6, 1e-12, "P3 1-D: field density against the closed form");
    double mass = 0.0;
    for (size_t i = 0; i + 1 < G; i++) mass += 0.5 * (ref[i] + ref[i + 1]) * (x[i + 1] - x[i]);
    CHECK_NEAR(mass, 1.0, 1e-6);
  }
  cnf_pde_problem_free(pb);
  pb = make(ctx, CNF_PDE_P3, 2, 0);
  CU_ASSERT_EQUAL(cnf_pde_density_curves(ctx, pb, cnf_pde_problem_field(pb), NULL, &o, -8, 8, G, NT,
                                         times, x, y),
                  CNF_EDIM);
  cnf_pde_problem_free(pb);
  /* a field whose backward solve leaves p0's range: x' = -700 x carries x
   * in [1, 3] back to x0 = e^{700} x ~ 1e304 at t = 1, where x0^2 / 2
   * overflows and log p0(x0) = -inf at every point: CNF_ENONFINITE */
  pb = make(ctx, CNF_PDE_P3, 1, 0);
  cnf_dyn *lin = NULL;
  CU_ASSERT_FATAL(cnf_dyn_linear_create(&lin, ctx, 1) == 0);
  const double theta[2] = {-700.0, 0.0}, t1[1] = {1.0};
  CU_ASSERT_EQUAL(cnf_pde_density_curves(ctx, pb, lin, theta, &o, 1, 3, 5, 1, t1, x, y),
                  CNF_ENONFINITE);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx),
                                "log-density is not finite (NaN or "
                                "infinite) at rows 1, 2, 3, 4, 5 (5 of 5)"));
  cnf_dyn_free(lin);
  cnf_pde_problem_free(pb);
  cnf_ctx_free(ctx);
}

/* ---- 3. the learner ---------------------------------------------------------- */

/* The regression loss of (dyn, theta) on held-out samples: 8 times
 * (k + 1/2) T / 8, 256 samples of p_t each (seeds 1000 + k, not the
 * learner's streams), (1/N) sum |v_theta - v|^2. */
static double heldout_loss(cnf_pde_problem *pb, cnf_dyn *dyn, const double *theta) {
  enum { NT = 8, S = 256 };
  const size_t d = cnf_pde_problem_dim(pb);
  double *x = malloc(3 * S * d * sizeof(double)), loss = 0.0;
  if (x == NULL) return NAN;
  double *v = x + S * d, *vt = v + S * d;
  for (size_t k = 0; k < NT; k++) {
    const double t = ((double)k + 0.5) * cnf_pde_problem_time(pb) / NT;
    if (cnf_pde_problem_sample(pb, t, 1000 + k, S, x) != 0 ||
        cnf_dyn_f(cnf_pde_problem_field(pb), t, S, x, cnf_pde_problem_theta(pb), v) != 0 ||
        cnf_dyn_f(dyn, t, S, x, theta, vt) != 0) {
      free(x);
      return NAN;
    }
    for (size_t i = 0; i < S * d; i++) loss += (vt[i] - v[i]) * (vt[i] - v[i]) / (NT * S);
  }
  free(x);
  return loss;
}

typedef struct calls {
  size_t n, stop_at;
  double first, last;
} calls;

static int count_calls(void *user, size_t iter, double loss) {
  calls *c = user;
  if (c->n == 0) c->first = loss;
  CU_ASSERT_EQUAL(iter, c->n);
  c->n++;
  c->last = loss;
  return c->stop_at > 0 && c->n >= c->stop_at;
}

static cnf_dyn *small_mlp(cnf_ctx *ctx, size_t d, double **theta, uint64_t seed) {
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, d);
  CU_ASSERT_FATAL(cnf_mlp_parse_hidden(&cfg, "16-16") == 0);
  cnf_dyn *mlp = NULL;
  CU_ASSERT_FATAL(cnf_dyn_mlp_create(&mlp, ctx, &cfg) == 0);
  *theta = malloc(cnf_mlp_param_count(&cfg) * sizeof(double));
  CU_ASSERT_FATAL(*theta != NULL);
  CU_ASSERT_FATAL(cnf_mlp_init_params(&cfg, seed, *theta) == 0);
  return mlp;
}

static void test_learn_ou(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_pde_problem *pb = make(ctx, CNF_PDE_P3, 2, 0);
  double *th1 = NULL, *th2 = NULL;
  cnf_dyn *mlp = small_mlp(ctx, 2, &th1, 3), *mlp2 = small_mlp(ctx, 2, &th2, 3);
  const size_t P = cnf_dyn_param_count(mlp);
  cnf_pde_learn_options lo;
  cnf_pde_learn_options_default(&lo);
  CU_ASSERT_EQUAL(lo.iters, 2000);
  CU_ASSERT_EQUAL(lo.groups, 16);
  lo.iters = 300, lo.minibatch = 128, lo.lr = 1e-2, lo.seed = 9;
  calls c = {0, 0, 0, 0};
  lo.report = count_calls, lo.user = &c;
  const double before = heldout_loss(pb, mlp, th1);
  double final = NAN;
  CU_ASSERT_EQUAL_FATAL(cnf_pde_learn(ctx, pb, mlp, th1, &lo, &final), 0);
  const double after = heldout_loss(pb, mlp, th1);
  printf(
      "\n    ou d = 2, 16-16, 300 steps: held-out loss %.4f -> %.5f (%.0fx); minibatch %.4f "
      "-> %.5f",
      before, after, before / after, c.first, final);
  CU_ASSERT_TRUE(after < before / 100); /* measured 364x */
  CU_ASSERT_EQUAL(c.n, 300);
  CHECK_NEAR(c.last, final, 0.0);
  /* the same seed: the same parameters, bit for bit; another seed differs */
  lo.report = NULL;
  CU_ASSERT_EQUAL(cnf_pde_learn(ctx, pb, mlp2, th2, &lo, NULL), 0);
  CU_ASSERT_EQUAL(memcmp(th1, th2, P * sizeof(double)), 0);
  double *th3 = NULL;
  cnf_dyn *mlp3 = small_mlp(ctx, 2, &th3, 3);
  lo.seed = 10, lo.iters = 5;
  memcpy(th2, th3, P * sizeof(double));
  CU_ASSERT_EQUAL(cnf_pde_learn(ctx, pb, mlp3, th3, &lo, NULL), 0);
  lo.seed = 9;
  CU_ASSERT_EQUAL(cnf_pde_learn(ctx, pb, mlp3, th2, &lo, NULL), 0);
  CU_ASSERT_NOT_EQUAL(memcmp(th2, th3, P * sizeof(double)), 0);
  /* the callback stops early */
  calls s = {0, 4, 0, 0};
  lo.report = count_calls, lo.user = &s;
  CU_ASSERT_EQUAL(cnf_pde_learn(ctx, pb, mlp3, th3, &lo, NULL), 0);
  CU_ASSERT_EQUAL(s.n, 4);
  /* errors */
  lo.iters = 0;
  CU_ASSERT_EQUAL(cnf_pde_learn(ctx, pb, mlp3, th3, &lo, NULL), CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "must be positive"));
  lo.iters = 5;
  cnf_pde_problem *pb3 = make(ctx, CNF_PDE_P3, 3, 0);
  CU_ASSERT_EQUAL(cnf_pde_learn(ctx, pb3, mlp3, th3, &lo, NULL), CNF_EDIM);
  cnf_pde_problem_free(pb3);
  cnf_dyn_free(mlp), cnf_dyn_free(mlp2), cnf_dyn_free(mlp3);
  free(th1), free(th2), free(th3);
  cnf_pde_problem_free(pb);
  cnf_ctx_free(ctx);
}

/* P4 in 1-D through the path bank (small: 256 paths at 10 levels): the
 * held-out loss (samples by Euler-Maruyama from 0) falls by more than 5x
 * in 200 steps; a bank with no paths is an error. */
static void test_learn_double_well(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_pde_problem *pb = make(ctx, CNF_PDE_P4, 1, 200);
  double *th = NULL;
  cnf_dyn *mlp = small_mlp(ctx, 1, &th, 4);
  cnf_pde_learn_options lo;
  cnf_pde_learn_options_default(&lo);
  lo.iters = 200, lo.minibatch = 128, lo.lr = 1e-2, lo.bank_paths = 256, lo.bank_levels = 10;
  const double before = heldout_loss(pb, mlp, th);
  CU_ASSERT_EQUAL_FATAL(cnf_pde_learn(ctx, pb, mlp, th, &lo, NULL), 0);
  const double after = heldout_loss(pb, mlp, th);
  printf("\n    double well d = 1, 200 steps: held-out loss %.3f -> %.4f (%.0fx)", before, after,
         before / after);
  CU_ASSERT_TRUE(after < before / 5); /* measured 8x */
  lo.bank_paths = 0;
  CU_ASSERT_EQUAL(cnf_pde_learn(ctx, pb, mlp, th, &lo, NULL), CNF_EINVAL);
  cnf_dyn_free(mlp);
  free(th);
  cnf_pde_problem_free(pb);
  cnf_ctx_free(ctx);
}

const test_entry pde_problem_tests[] = {
    {"names, P1a moments, samples, log p0, errors", test_problem_object},
    {NULL, NULL},
};
const test_entry pde_report_tests[] = {
    {"a wrong P1a field: LPE and W2 against closed forms", test_report_closed_form},
    {"exact P3 and P4 fields: LPE ~ 0 at 21 times, mass, KL", test_report_exact_fields},
    {"1-D density curves of the exact P3 field", test_density_curves},
    {NULL, NULL},
};
const test_entry pde_learn_tests[] = {
    {"ou: held-out loss down 100x, reproducible, callback", test_learn_ou},
    {"double well: the path bank learns", test_learn_double_well},
    {NULL, NULL},
};
