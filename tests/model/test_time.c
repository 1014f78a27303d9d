/* test_time.c: the flow in time (cnf_model_trajectories, cnf_model_logp_at,
 * cnf_model_total_time; include/cnf_model.h).
 *
 *   - an MLP flow of two blocks of unequal end times: log p at t = 0 is
 *     cnf_model_logp, at t = S the standard normal log-density exactly
 *     (through a standardization: log N((y - shift) / scale) - sum log
 *     scale), the trajectory starts at x and ends at cnf_model_encode's z,
 *     and the sample direction is the same paths reversed, ending at
 *     cnf_model_decode's x;
 *   - a linear field z' = A z + b (A diagonal) in two blocks (0.5, 0.3),
 *     where everything has a closed form: the state at t is
 *     e^{a t} x + (b / a)(e^{a t} - 1) per coordinate, and when z(S) ~
 *     N(0, 1) the state at t is the Gaussian pushforward
 *     N((b / a)(e^{-a tau} - 1), e^{-2 a tau}), tau = S - t, whose density
 *     cnf_model_logp_at must give at every t, block boundary included;
 *   - a discrete stack, t outside [0, S] and n < 2 are CNF_EINVAL. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cnf_dynamics.h"
#include "cnf_model.h"
#include "test_util.h"

static const double A_DIAG[2] = {0.7, -0.4}, B_VEC[2] = {0.3, -0.2};

static int lin_create(cnf_dyn **out, cnf_ctx *c, size_t D, const char *config, void *user) {
  (void)config, (void)user;
  return cnf_dyn_linear_create(out, c, D);
}
static int lin_init(const cnf_dyn *dyn, uint64_t seed, double *theta, void *user) {
  (void)dyn, (void)seed, (void)user;
  memset(theta, 0, 6 * sizeof(double));
  theta[0] = A_DIAG[0], theta[3] = A_DIAG[1], theta[4] = B_VEC[0], theta[5] = B_VEC[1];
  return 0;
}

static void tight(cnf_options *o) {
  cnf_options_default(o);
  o->rtol = o->atol = 1e-10;
}

static cnf_model *make_mlp(cnf_ctx *ctx) {
  cnf_model_spec sp;
  cnf_model_spec_default(&sp, "cnf", 2);
  sp.hidden = "16-16";
  sp.blocks = 2;
  cnf_model *m = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_model_create(&m, ctx, &sp, 7), 0);
  double *th = cnf_model_params(m); /* away from the near-identity start */
  for (size_t i = 0; i < cnf_model_param_count(m); i++) th[i] *= 3.0;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_set_end_time(cnf_model_flow(m), 1, 0.3), 0);
  return m;
}

static void test_mlp_ends(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  cnf_model *m = make_mlp(ctx);
  cnf_options o;
  tight(&o);
  enum { B = 30, N = 9 };
  double x[B * 2], z[B * 2], lp[B], lpt[B], paths[N * B * 2], back[N * B * 2], xd[B * 2];
  cnf_toy_sample("moons", B, 3, x);
  double S = 0;
  CU_ASSERT_EQUAL(cnf_model_total_time(m, &S), 0);
  CHECK_NEAR(S, 0.8, 1e-15);
  CU_ASSERT_EQUAL_FATAL(cnf_model_logp(m, &o, B, x, lp, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_model_logp_at(m, &o, 0.0, B, x, lpt, NULL), 0);
  CHECK_CLOSE(lpt, lp, B, 1e-12, 1e-12, "log p at t = 0 = cnf_model_logp");
  double lpn[B], moved = 0;
  CU_ASSERT_EQUAL_FATAL(cnf_model_logp_at(m, &o, S, B, x, lpt, NULL), 0);
  for (size_t b = 0; b < B; b++) {
    lpn[b] = cnf_log_normal(x + 2 * b, 2);
    moved = fmax(moved, fabs(lpn[b] - lp[b]));
  }
  CU_ASSERT_TRUE(memcmp(lpt, lpn, sizeof lpn) == 0); /* no solve at t = S */
  CU_ASSERT_TRUE(moved > 0.1);                       /* p_0 is not the base already */

  /* trajectories: x at t = 0, encode's z at t = S */
  CU_ASSERT_EQUAL_FATAL(cnf_model_encode(m, &o, B, x, z, NULL, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_model_trajectories(m, &o, +1, B, x, N, paths, NULL), 0);
  CU_ASSERT_TRUE(memcmp(paths, x, sizeof x) == 0);
  CHECK_CLOSE(paths + (N - 1) * B * 2, z, B * 2, 1e-8, 1e-8, "last state = encode's z");
  double step = 0; /* the paths do move between times */
  for (size_t i = 0; i < B * 2; i++) step = fmax(step, fabs(paths[B * 2 + i] - x[i]));
  CU_ASSERT_TRUE(step > 0.01);
  /* the sample direction: the same paths reversed, ending at decode's x */
  CU_ASSERT_EQUAL_FATAL(cnf_model_trajectories(m, &o, -1, B, z, N, back, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_model_decode(m, &o, B, z, xd, NULL, NULL), 0);
  CHECK_CLOSE(back + (N - 1) * B * 2, xd, B * 2, 1e-8, 1e-8, "backward last state = decode's x");
  for (size_t j = 0; j < N; j++)
    CHECK_CLOSE(back + j * B * 2, paths + (N - 1 - j) * B * 2, B * 2, 1e-6, 1e-6,
                "backward paths = forward paths reversed");

  /* with a standardization every state is in the units of x */
  const double shift[2] = {0.25, -0.5}, scale[2] = {2.0, 0.5};
  CU_ASSERT_EQUAL_FATAL(cnf_model_set_standardization(m, shift, scale), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_model_logp(m, &o, B, x, lp, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_model_logp_at(m, &o, 0.0, B, x, lpt, NULL), 0);
  CHECK_CLOSE(lpt, lp, B, 1e-12, 1e-12, "standardized: log p at t = 0 = cnf_model_logp");
  CU_ASSERT_EQUAL_FATAL(cnf_model_logp_at(m, &o, S, B, x, lpt, NULL), 0);
  for (size_t b = 0; b < B; b++) {
    const double u[2] = {(x[2 * b] - shift[0]) / scale[0], (x[2 * b + 1] - shift[1]) / scale[1]};
    lpn[b] = cnf_log_normal(u, 2) - log(scale[0] * scale[1]);
  }
  CHECK_CLOSE(lpt, lpn, B, 1e-14, 1e-14, "standardized: log p at t = S");
  CU_ASSERT_EQUAL_FATAL(cnf_model_encode(m, &o, B, x, z, NULL, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_model_trajectories(m, &o, +1, B, x, N, paths, NULL), 0);
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < 2; i++) z[2 * b + i] = shift[i] + scale[i] * z[2 * b + i];
  CHECK_CLOSE(paths + (N - 1) * B * 2, z, B * 2, 1e-8, 1e-8, "last state = shift + scale z");

  /* errors */
  double big = S * 1.01;
  CU_ASSERT_EQUAL(cnf_model_logp_at(m, &o, big, B, x, lpt, NULL), CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "outside"));
  CU_ASSERT_EQUAL(cnf_model_logp_at(m, &o, -0.1, B, x, lpt, NULL), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_model_trajectories(m, &o, +1, B, x, 1, paths, NULL), CNF_EINVAL);
  /* a solver failure names the block: t = 0.6 starts in the second */
  cnf_options bad = o;
  bad.max_steps = 2;
  CU_ASSERT_TRUE(cnf_is_solver_error(cnf_model_trajectories(m, &bad, +1, B, x, N, paths, NULL)));
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "trajectories: block 1 of 2"));
  CU_ASSERT_TRUE(cnf_is_solver_error(cnf_model_logp_at(m, &bad, 0.6, B, x, lpt, NULL)));
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "log p at t: block 2 of 2"));
  cnf_model_free(m);
  cnf_model_spec sp;
  cnf_model_spec_default(&sp, "realnvp", 2);
  CU_ASSERT_EQUAL_FATAL(cnf_model_create(&m, ctx, &sp, 1), 0);
  CU_ASSERT_EQUAL(cnf_model_trajectories(m, &o, +1, B, x, N, paths, NULL), CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "discrete stack"));
  CU_ASSERT_EQUAL(cnf_model_logp_at(m, &o, 0.0, B, x, lpt, NULL), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_model_total_time(m, &S), CNF_EINVAL);
  cnf_model_free(m);
  cnf_ctx_free(ctx);
}

static void test_linear_closed_form(void) {
  static const cnf_field_class lin = {"lin-time", lin_create, lin_init, NULL};
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_register_field(ctx, &lin), 0);
  cnf_model_spec sp;
  cnf_model_spec_default(&sp, "field:lin-time", 2);
  sp.blocks = 2;
  cnf_model *m = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_model_create(&m, ctx, &sp, 1), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_set_end_time(cnf_model_flow(m), 1, 0.3), 0);
  const double S = 0.8;
  cnf_options o;
  tight(&o);
  enum { B = 25, N = 9 };
  double y[B * 2], lp[B], ref[B], paths[N * B * 2], want[N * B * 2];
  fill_uniform(y, B * 2, -2.5, 2.5, 4);
  /* t = 0.5 is the block boundary, 0.65 inside the second block */
  const double ts[] = {0.0, 0.2, 0.5, 0.65, 0.8};
  for (size_t q = 0; q < 5; q++) {
    const double tau = S - ts[q];
    for (size_t b = 0; b < B; b++) {
      ref[b] = 0;
      for (size_t i = 0; i < 2; i++) {
        const double a = A_DIAG[i], c = B_VEC[i] / a * (exp(-a * tau) - 1);
        const double var = exp(-2 * a * tau), d = y[2 * b + i] - c;
        ref[b] += -0.5 * d * d / var - 0.5 * log(2 * 3.14159265358979323846 * var);
      }
    }
    CU_ASSERT_EQUAL_FATAL(cnf_model_logp_at(m, &o, ts[q], B, y, lp, NULL), 0);
    char label[64];
    snprintf(label, sizeof label, "linear field: log p_t = Gaussian pushforward, t = %g", ts[q]);
    CHECK_CLOSE(lp, ref, B, 1e-8, 1e-8, label);
  }
  /* the states at t_j = j S / 8 (0.5 = t_5 is the boundary) */
  CU_ASSERT_EQUAL_FATAL(cnf_model_trajectories(m, &o, +1, B, y, N, paths, NULL), 0);
  for (size_t j = 0; j < N; j++) {
    const double t = S * (double)j / (N - 1);
    for (size_t b = 0; b < B; b++)
      for (size_t i = 0; i < 2; i++) {
        const double a = A_DIAG[i], e = exp(a * t);
        want[(j * B + b) * 2 + i] = e * y[2 * b + i] + B_VEC[i] / a * (e - 1);
      }
  }
  CHECK_CLOSE(paths, want, N * B * 2, 1e-8, 1e-8, "linear field: trajectories = closed form");
  cnf_model_free(m);
  cnf_ctx_free(ctx);
}

static const test_entry time_tests[] = {
    {"MLP flow: log p at 0 and S, trajectories end at encode, reversed at decode", test_mlp_ends},
    {"linear field: densities and states at every time in closed form", test_linear_closed_form},
    {NULL, NULL},
};

int main(void) {
  const char *const names[] = {"time"};
  const test_entry *const tests[] = {time_tests};
  return run_suites(names, tests, 1);
}
