/* test_density.c: flows as densities: encode/decode round trips, the
 * normalisation of exp(log p) over the plane, sampling against the density
 * path, determinism under seeds, batching, a linear flow with a closed-form
 * log p, and the error paths of cnf_flow_logp/encode/decode/sample. */
#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf.h"
#include "cnf_dynamics.h"
#include "flow_impl.h"
#include "test_util.h"

extern const test_entry density_tests[];

static cnf_ctx *ctx;

static cnf_flow *make_flow(size_t D, const char *hidden, cnf_layer layer,
                           cnf_act act, size_t blocks, double T,
                           uint64_t seed) {
  if (ctx == NULL) CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, D);
  if (hidden) CU_ASSERT_EQUAL_FATAL(cnf_mlp_parse_hidden(&cfg, hidden), 0);
  cfg.layer = layer;
  cfg.act = act;
  cnf_flow *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create(&f, ctx, &cfg, blocks, T, seed), 0);
  return f;
}

static double max_abs(const double *x, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
  return m;
}

/* ---- round trip ----------------------------------------------------------- */

/* encode x -> z, decode z -> x'.  The field is smooth and T = 0.5, so the
 * global error of each direction stays within a small multiple of the
 * local tolerance: x' = x to 10 (rtol |x| + atol).  Delta(0) of the decode
 * is minus Delta(T) of the encode (the same integral run backward), to the
 * same tolerance.  With Hutchinson the two calls draw different probes, so
 * only x' = x is checked (z does not depend on the probes). */
static void round_trip(size_t blocks, cnf_trace trace) {
  const size_t B = 40, D = 2;
  const double tol = 1e-7;
  cnf_flow *f = make_flow(D, NULL, CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, blocks, 0.5, 5);
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = tol;
  o.trace = trace;
  double x[B * D], z[B * D], x2[B * D], de[B], dd[B];
  fill_gauss(x, B * D, 101);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_encode(f, &o, B, x, z, de, NULL), 0);
  /* the map moved the points: the round trip is not trivially the identity */
  double moved = 0;
  for (size_t i = 0; i < B * D; i++) moved = fmax(moved, fabs(z[i] - x[i]));
  CU_ASSERT_TRUE(moved > 0.01);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_decode(f, &o, B, z, x2, dd, NULL), 0);
  char label[64];
  snprintf(label, sizeof label, "x' vs x (%zu blocks, %s)", blocks, cnf_trace_name(trace));
  CHECK_CLOSE(x2, x, B * D, 10 * tol, 10 * tol, label);
  double ex = 0, ed = 0;
  for (size_t i = 0; i < B * D; i++) ex = fmax(ex, fabs(x2[i] - x[i]) / (tol + tol * fabs(x[i])));
  if (trace == CNF_TRACE_EXACT) {
    double mde[B];
    for (size_t b = 0; b < B; b++) mde[b] = -de[b];
    CU_ASSERT_TRUE(max_abs(de, B) > 1e-3); /* a change of volume (here ~1e-2) */
    snprintf(label, sizeof label, "decode delta vs -encode delta (%zu blocks)", blocks);
    CHECK_CLOSE(dd, mde, B, 10 * tol, 10 * tol, label);
    for (size_t b = 0; b < B; b++) ed = fmax(ed, fabs(dd[b] - mde[b]) / (tol + tol * fabs(mde[b])));
  }
  if (trace == CNF_TRACE_EXACT)
    printf("\n  worst error / (rtol |x| + atol): x %.2f, delta %.2f ", ex, ed);
  else
    printf("\n  worst error / (rtol |x| + atol): x %.2f ", ex);
  /* in place (z aliases x) gives the same */
  double y[B * D], dy[B];
  memcpy(y, x, sizeof y);
  cnf_flow_seed(f, 3);
  CU_ASSERT_EQUAL(cnf_flow_encode(f, &o, B, y, y, dy, NULL), 0);
  if (trace == CNF_TRACE_EXACT) {
    CU_ASSERT_EQUAL(memcmp(y, z, sizeof y), 0);
    CU_ASSERT_EQUAL(memcmp(dy, de, sizeof dy), 0);
  }
  cnf_flow_free(f);
}

static void test_round_trip_1_exact(void) { round_trip(1, CNF_TRACE_EXACT); }
static void test_round_trip_3_exact(void) { round_trip(3, CNF_TRACE_EXACT); }
static void test_round_trip_1_hutch(void) { round_trip(1, CNF_TRACE_GAUSS); }
static void test_round_trip_3_hutch(void) { round_trip(3, CNF_TRACE_RADEMACHER); }

/* ---- normalisation ---------------------------------------------------------- */

/* Integrate p = exp(log p) over [-L, L]^2 on a grid of step h.  The
 * integrand is smooth and negligible at the border, so the trapezoid rule
 * is the plain sum times h^2 and converges faster than any power of h.
 * Its error is bounded by comparing with the same rule at step 2h (every
 * other grid point: no extra solves): for a rule converging at least as
 * h^p, p >= 1, |I_h - I| <= |I_h - I_2h| / (2^p - 1) <= |I_h - I_2h|.
 * The mass beyond the box is bounded by the mass of the outer band of
 * width 1 (the density decays outward at least as fast as a Gaussian
 * tail, so what lies beyond L is far below what lies in [L-1, L]). */
static void normalisation(cnf_flow *f, const char *label) {
  const double L = 7.0, h = 0.07;
  const size_t n = 201; /* points per axis: -L + i h, i = 0..200 */
  const size_t N = n * n;
  double *x = malloc(N * 2 * sizeof(double)), *lp = malloc(N * sizeof(double));
  CU_ASSERT_PTR_NOT_NULL_FATAL(x);
  CU_ASSERT_PTR_NOT_NULL_FATAL(lp);
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      x[2 * (i * n + j)] = -L + (double)i * h;
      x[2 * (i * n + j) + 1] = -L + (double)j * h;
    }
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = 1e-7;
  o.batch = 2048; /* bounds the ODE system and the workspaces */
  cnf_stats st;
  cnf_stats_clear(&st);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_logp(f, &o, N, x, lp, &st), 0);
  double fine = 0, coarse = 0, band = 0, edge = 0;
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < n; j++) {
      double lpv = lp[i * n + j];
      if (!isfinite(lpv)) bad++;
      double p = exp(lpv);
      fine += p;
      if (i % 2 == 0 && j % 2 == 0) coarse += p;
      double r = fmax(fabs(x[2 * (i * n + j)]), fabs(x[2 * (i * n + j) + 1]));
      if (r >= L - 1.0 - 1e-9) band += p;
      if (i == 0 || j == 0 || i == n - 1 || j == n - 1) edge = fmax(edge, p);
    }
  fine *= h * h;
  coarse *= 4 * h * h;
  band *= h * h;
  printf("\n  %s: integral %.9f (step 2h: %.9f), mass in the outer band %.2e, "
         "max p on the border %.2e, %ld solves, %ld RHS evaluations ",
         label, fine, coarse, band, edge, st.solves, st.nfe);
  CU_ASSERT_EQUAL(bad, 0);
  CU_ASSERT_TRUE(band < 1e-7);
  CU_ASSERT_TRUE(edge < 1e-9);
  CU_ASSERT_TRUE(fabs(fine - coarse) < 1e-4);
  CHECK_NEAR(fine, 1.0, 1e-3);
  free(x);
  free(lp);
}

static void test_normalisation_default(void) {
  /* cnf_flow_create's defaults: D-64-64-64-D concatsquash/tanh, T = 0.5 */
  cnf_flow *f = make_flow(2, NULL, CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 1, 0.5, 2024);
  normalisation(f, "default flow");
  cnf_flow_free(f);
}

static void test_normalisation_concat(void) {
  cnf_flow *f = make_flow(2, "32-32", CNF_LAYER_CONCAT, CNF_ACT_SOFTPLUS, 2, 0.5, 77);
  normalisation(f, "2-block concat/softplus flow");
  cnf_flow_free(f);
}

/* A standardization x_std = (x - shift) / scale must fold its Jacobian
 * -sum log scale into log p: with it, the density still integrates to 1,
 * and log p(x) = log p_std(x_std) - sum log scale exactly as computed by
 * the same flow without it.  (Scales below 1 keep the mass inside the
 * same box.) */
static void test_normalisation_standardized(void) {
  cnf_flow *f = make_flow(2, "32-32", CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 1, 0.5, 78);
  const double shift[2] = {0.375, -0.25}, scale[2] = {0.875, 0.625};
  const size_t B = 10;
  double x[2 * B], xs[2 * B], lp[B], ls[B];
  fill_gauss(x, 2 * B, 12);
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < 2; i++) xs[2 * b + i] = (x[2 * b + i] - shift[i]) / scale[i];
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = 1e-9;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_logp(f, &o, B, xs, ls, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_set_standardization(f, shift, scale), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_logp(f, &o, B, x, lp, NULL), 0);
  for (size_t b = 0; b < B; b++) ls[b] -= log(scale[0]) + log(scale[1]);
  CHECK_CLOSE(lp, ls, B, 0, 1e-7, "standardized log p vs log p_std - sum log scale");
  normalisation(f, "standardized flow");
  cnf_flow_free(f);
}

/* ---- sampling ---------------------------------------------------------------- */

/* The log p that sampling reports (log N(z) + Delta(0) of the decode)
 * equals the density path's log p of the sample.  Both are the same
 * integral, run in opposite directions, each within ~tol. */
static void sample_consistency(size_t blocks) {
  const size_t B = 50, D = 2;
  cnf_flow *f = make_flow(D, NULL, CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, blocks, 0.5, 31);
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = 1e-9;
  double x[B * D], ls[B], lp[B];
  CU_ASSERT_EQUAL_FATAL(cnf_flow_sample(f, &o, B, x, ls, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_logp(f, &o, B, x, lp, NULL), 0);
  char label[64];
  snprintf(label, sizeof label, "sample log p vs logp (%zu blocks)", blocks);
  CHECK_CLOSE(ls, lp, B, 0, 1e-6, label);
  /* and not merely log N(z) of the base: the flow changed the density */
  double diff = 0;
  for (size_t b = 0; b < B; b++) diff = fmax(diff, fabs(ls[b] - cnf_log_normal(x + b * D, D)));
  CU_ASSERT_TRUE(diff > 0.01);
  cnf_flow_free(f);
}

static void test_sample_1(void) { sample_consistency(1); }
static void test_sample_2(void) { sample_consistency(2); }

/* ---- determinism --------------------------------------------------------------- */

static void test_determinism(void) {
  const size_t B = 20, D = 2;
  cnf_flow *a = make_flow(D, "16-16", CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 2, 0.5, 9);
  cnf_flow *b = make_flow(D, "16-16", CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 2, 0.5, 9);
  cnf_flow *c = make_flow(D, "16-16", CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 2, 0.5, 10);
  /* same seed: the same parameters, different seeds: different ones */
  const size_t P = cnf_flow_param_count(a);
  CU_ASSERT_EQUAL(memcmp(cnf_flow_params(a), cnf_flow_params(b), P * sizeof(double)), 0);
  CU_ASSERT_NOT_EQUAL(memcmp(cnf_flow_params(a), cnf_flow_params(c), P * sizeof(double)), 0);
  /* blocks get different parameters */
  CU_ASSERT_NOT_EQUAL(memcmp(cnf_flow_params(a), cnf_flow_params(a) + P / 2,
                             P / 2 * sizeof(double)), 0);

  cnf_options o;
  cnf_options_default(&o);
  double xa[B * D], xb[B * D], xc[B * D], la[B], lb[B], lc[B];
  CU_ASSERT_EQUAL(cnf_flow_sample(a, &o, B, xa, la, NULL), 0);
  CU_ASSERT_EQUAL(cnf_flow_sample(b, &o, B, xb, lb, NULL), 0);
  CU_ASSERT_EQUAL(cnf_flow_sample(c, &o, B, xc, lc, NULL), 0);
  CU_ASSERT_EQUAL(memcmp(xa, xb, sizeof xa), 0);
  CU_ASSERT_EQUAL(memcmp(la, lb, sizeof la), 0);
  CU_ASSERT_NOT_EQUAL(memcmp(xa, xc, sizeof xa), 0);
  /* the generator moves on: a second draw differs, re-seeding repeats */
  CU_ASSERT_EQUAL(cnf_flow_sample(a, &o, B, xb, lb, NULL), 0);
  CU_ASSERT_NOT_EQUAL(memcmp(xa, xb, sizeof xa), 0);
  cnf_flow_seed(a, 9);
  CU_ASSERT_EQUAL(cnf_flow_sample(a, &o, B, xb, lb, NULL), 0);
  CU_ASSERT_EQUAL(memcmp(xa, xb, sizeof xa), 0);
  CU_ASSERT_EQUAL(memcmp(la, lb, sizeof la), 0);

  /* Hutchinson log p: seeded twice, identical bits; unseeded, the probes
   * differ and so does log p; another seed differs too */
  o.trace = CNF_TRACE_GAUSS;
  o.probes = 2;
  fill_gauss(xc, B * D, 4);
  cnf_flow_seed(a, 1234);
  CU_ASSERT_EQUAL(cnf_flow_logp(a, &o, B, xc, la, NULL), 0);
  CU_ASSERT_EQUAL(cnf_flow_logp(a, &o, B, xc, lc, NULL), 0); /* not re-seeded */
  cnf_flow_seed(a, 1234);
  CU_ASSERT_EQUAL(cnf_flow_logp(a, &o, B, xc, lb, NULL), 0);
  CU_ASSERT_EQUAL(memcmp(la, lb, sizeof la), 0);
  CU_ASSERT_NOT_EQUAL(memcmp(la, lc, sizeof la), 0);
  cnf_flow_seed(a, 1235);
  CU_ASSERT_EQUAL(cnf_flow_logp(a, &o, B, xc, lb, NULL), 0);
  CU_ASSERT_NOT_EQUAL(memcmp(la, lb, sizeof la), 0);
  /* two flows with the same parameters and seed agree with each other */
  cnf_flow_seed(b, 1234);
  CU_ASSERT_EQUAL(cnf_flow_logp(b, &o, B, xc, lb, NULL), 0);
  CU_ASSERT_EQUAL(memcmp(la, lb, sizeof la), 0);
  cnf_flow_free(a);
  cnf_flow_free(b);
  cnf_flow_free(c);
}

/* ---- batching ------------------------------------------------------------------ */

/* opt.batch = 7 over 50 points (7 batches of 7 and one of 1) against one
 * batch of 50.  Step control is per batch, so the two differ by the
 * solver's error, not by rounding: at rtol = atol = 1e-10 the error of log
 * p is a small multiple of 1e-10 (at most 2.8e-9 over 24 flows of 1 and 2
 * blocks and 12 seeds); 1e-8 keeps a margin over that and still catches
 * any mix-up of rows or batches (differences of order 1). */
static void test_batching(void) {
  const size_t B = 50, D = 2;
  cnf_flow *f = make_flow(D, NULL, CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 2, 0.5, 8);
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = 1e-10;
  double x[B * D], one[B], seven[B];
  fill_gauss(x, B * D, 55);
  for (size_t i = 0; i < B * D; i++) x[i] *= 1.5;
  cnf_stats s1, s7;
  cnf_stats_clear(&s1);
  cnf_stats_clear(&s7);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_logp(f, &o, B, x, one, &s1), 0);
  o.batch = 7;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_logp(f, &o, B, x, seven, &s7), 0);
  size_t bad = 0;
  for (size_t b = 0; b < B; b++) bad += !isfinite(seven[b]) || !isfinite(one[b]);
  CU_ASSERT_EQUAL(bad, 0);
  CHECK_CLOSE(seven, one, B, 0, 1e-8, "log p, batch 7 vs one batch");
  double worst = 0;
  for (size_t b = 0; b < B; b++) worst = fmax(worst, fabs(seven[b] - one[b]));
  printf("\n  max |difference| %.2e ", worst);
  /* 8 batches x 2 blocks solves against 2 */
  CU_ASSERT_EQUAL(s1.solves, 2);
  CU_ASSERT_EQUAL(s7.solves, 16);
  /* batch >= B is one batch */
  o.batch = 50;
  double same[B];
  CU_ASSERT_EQUAL(cnf_flow_logp(f, &o, B, x, same, NULL), 0);
  CU_ASSERT_EQUAL(memcmp(same, one, sizeof same), 0);
  cnf_flow_free(f);
}

/* ---- linear flows: closed forms --------------------------------------------- */

/* With no hidden layer and `ignore` layers the network is f(z) = W z + b.
 * In 2-D with W = [[a, -r], [r, a]], W acts on z1 + i z2 as multiplication
 * by w = a + i r, so one block maps
 *     z(T) = e^{wT} x + (e^{wT} - 1) / w * c,   c = b1 + i b2,
 * and Delta(T) = -T tr W = -2 a T.  Three blocks compose.  Exact trace and
 * Rademacher probes give the same log p (eps^T W eps = a |eps|^2 = 2a for
 * eps in {-1, 1}^2), Gaussian probes do not. */
static void test_linear_flow(void) {
  const size_t B = 6, D = 2, K = 3;
  cnf_flow *f = make_flow(D, "0", CNF_LAYER_IGNORE, CNF_ACT_TANH, K, 0.5, 1);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_param_count(f), K * 6);
  const double a[3] = {0.3, -0.7, 0.2}, r[3] = {1.1, 0.4, -2.0};
  const double b1[3] = {0.5, -0.25, 0.0}, b2[3] = {-1.0, 0.75, 0.3};
  const double T[3] = {0.5, 0.8, 0.3};
  double *th = cnf_flow_params(f);
  for (size_t k = 0; k < K; k++) {
    double *p = th + 6 * k; /* W (2, 2) row-major, then b (2) */
    p[0] = a[k], p[1] = -r[k], p[2] = r[k], p[3] = a[k], p[4] = b1[k], p[5] = b2[k];
    CU_ASSERT_EQUAL(cnf_flow_set_end_time(f, k, T[k]), 0);
  }
  double x[B * D], want[B], z[B * D], got[B];
  fill_gauss(x, B * D, 3);
  double wantz[B * D];
  for (size_t s = 0; s < B; s++) {
    double complex u = x[2 * s] + I * x[2 * s + 1];
    double logdet = 0;
    for (size_t k = 0; k < K; k++) {
      double complex w = a[k] + I * r[k], c = b1[k] + I * b2[k];
      double complex e = cexp(w * T[k]);
      u = e * u + (e - 1.0) / w * c;
      logdet += 2 * a[k] * T[k];
    }
    wantz[2 * s] = creal(u);
    wantz[2 * s + 1] = cimag(u);
    want[s] = cnf_log_normal(wantz + 2 * s, D) + logdet;
  }
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = 1e-10;
  CU_ASSERT_EQUAL(cnf_flow_logp(f, &o, B, x, got, NULL), 0);
  CHECK_CLOSE(got, want, B, 1e-8, 1e-8, "linear flow log p, exact trace");
  double delta[B];
  CU_ASSERT_EQUAL(cnf_flow_encode(f, &o, B, x, z, delta, NULL), 0);
  CHECK_CLOSE(z, wantz, B * D, 1e-8, 1e-8, "linear flow z");
  o.trace = CNF_TRACE_RADEMACHER;
  CU_ASSERT_EQUAL(cnf_flow_logp(f, &o, B, x, got, NULL), 0);
  CHECK_CLOSE(got, want, B, 1e-8, 1e-8, "linear flow log p, Rademacher");
  o.trace = CNF_TRACE_GAUSS;
  CU_ASSERT_EQUAL(cnf_flow_logp(f, &o, B, x, got, NULL), 0);
  double gdiff = 0;
  for (size_t s = 0; s < B; s++) gdiff = fmax(gdiff, fabs(got[s] - want[s]));
  CU_ASSERT_TRUE(gdiff > 1e-3); /* Gaussian probes are only right on average */
  cnf_flow_free(f);
}

/* A field that depends on t only: one hidden layer of concat layers with
 * W1 = 0, b1 = 0 and time weights wt1 = s gives hidden units tanh(s_j t),
 * and f(t) = W2 tanh(s t) + wt2 t + b2.  Then tr J = 0 and
 *     z(T) = x + W2 (log cosh(s_j T) / s_j)_j + wt2 T^2 / 2 + b2 T. */
static void test_time_only_flow(void) {
  const size_t B = 4, D = 2, H = 3;
  cnf_flow *f = make_flow(D, "3", CNF_LAYER_CONCAT, CNF_ACT_TANH, 1, 0.9, 2);
  /* layout per layer: W (out, in), b (out), wt (out) */
  CU_ASSERT_EQUAL_FATAL(cnf_flow_param_count(f), (H * D + 2 * H) + (D * H + 2 * D));
  double *p = cnf_flow_params(f);
  const double s[3] = {1.5, -0.5, 3.0};
  for (size_t i = 0; i < H * D + H; i++) p[i] = 0.0; /* W1, b1 */
  memcpy(p + H * D + H, s, sizeof s);                  /* wt1 */
  const double *W2 = p + H * D + 2 * H, *bb2 = W2 + D * H, *wt2 = bb2 + D;
  const double T = 0.9;
  double x[B * D], want[B], got[B], z[B * D], dl[B];
  fill_gauss(x, B * D, 8);
  double shift[2];
  for (size_t i = 0; i < D; i++) {
    shift[i] = bb2[i] * T + wt2[i] * T * T / 2;
    for (size_t j = 0; j < H; j++) shift[i] += W2[i * H + j] * log(cosh(s[j] * T)) / s[j];
  }
  double wantz[B * D];
  for (size_t b = 0; b < B; b++) {
    for (size_t i = 0; i < D; i++) wantz[b * D + i] = x[b * D + i] + shift[i];
    want[b] = cnf_log_normal(wantz + b * D, D);
  }
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = 1e-10;
  CU_ASSERT_EQUAL(cnf_flow_encode(f, &o, B, x, z, dl, NULL), 0);
  CHECK_CLOSE(z, wantz, B * D, 1e-8, 1e-8, "time-only flow z");
  CU_ASSERT_TRUE(max_abs(dl, B) < 1e-12);
  CU_ASSERT_EQUAL(cnf_flow_logp(f, &o, B, x, got, NULL), 0);
  CHECK_CLOSE(got, want, B, 1e-8, 1e-8, "time-only flow log p");
  cnf_flow_free(f);
}

/* ---- errors -------------------------------------------------------------------- */

static void expect_error(int rc, int code, const char *needle, const char *what) {
  CU_ASSERT_EQUAL(rc, code);
  CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), code);
  const char *msg = cnf_ctx_errmsg(ctx);
  int has = needle == NULL || strstr(msg, needle) != NULL;
  CU_ASSERT_TRUE(has);
  if (rc != code || !has)
    printf("\n  %s: got %s \"%s\", expected %s with \"%s\"\n", what, cnf_errname(rc),
           msg, cnf_errname(code), needle ? needle : "");
}

static void test_errors_input(void) {
  const size_t B = 5, D = 2;
  cnf_flow *f = make_flow(D, "8", CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 1, 0.5, 3);
  cnf_options o;
  cnf_options_default(&o);
  double x[B * D], out[B * D], lp[B];
  fill_gauss(x, B * D, 2);
  x[2 * 2 + 1] = NAN; /* row 3 */
  cnf_ctx_clear_error(ctx);
  expect_error(cnf_flow_logp(f, &o, B, x, lp, NULL), CNF_ENONFINITE, "row 3", "NaN logp");
  expect_error(cnf_flow_encode(f, &o, B, x, out, lp, NULL), CNF_ENONFINITE, "row 3", "NaN encode");
  expect_error(cnf_flow_decode(f, &o, B, x, out, lp, NULL), CNF_ENONFINITE, "row 3", "NaN decode");
  x[2 * 2 + 1] = 0.5;
  x[4 * 2] = -INFINITY; /* row 5 */
  expect_error(cnf_flow_logp(f, &o, B, x, lp, NULL), CNF_ENONFINITE, "row 5", "Inf logp");
  x[4 * 2] = 0.25;

  expect_error(cnf_flow_logp(f, &o, 0, x, lp, NULL), CNF_EINVAL, NULL, "B = 0");
  expect_error(cnf_flow_logp(f, &o, B, NULL, lp, NULL), CNF_EINVAL, NULL, "x NULL");
  expect_error(cnf_flow_logp(f, &o, B, x, NULL, NULL), CNF_EINVAL, NULL, "logp NULL");
  expect_error(cnf_flow_logp(f, NULL, B, x, lp, NULL), CNF_EINVAL, NULL, "opt NULL");
  CU_ASSERT_EQUAL(cnf_flow_logp(NULL, &o, B, x, lp, NULL), CNF_EINVAL);
  expect_error(cnf_flow_encode(f, &o, B, x, out, NULL, NULL), CNF_EINVAL, NULL, "delta NULL");
  expect_error(cnf_flow_decode(f, &o, B, x, NULL, lp, NULL), CNF_EINVAL, NULL, "x NULL");
  expect_error(cnf_flow_sample(f, &o, 0, out, lp, NULL), CNF_EINVAL, NULL, "sample B = 0");
  expect_error(cnf_flow_sample(f, &o, B, out, NULL, NULL), CNF_EINVAL, NULL, "sample logp NULL");
  o.trace = CNF_TRACE_GAUSS;
  o.probes = 0;
  expect_error(cnf_flow_logp(f, &o, B, x, lp, NULL), CNF_EINVAL, "probe", "probes = 0");
  expect_error(cnf_flow_sample(f, &o, B, out, lp, NULL), CNF_EINVAL, "probe", "sample probes = 0");
  o.probes = 1;
  o.trace = (cnf_trace)7;
  expect_error(cnf_flow_logp(f, &o, B, x, lp, NULL), CNF_EINVAL, NULL, "trace 7");
  cnf_options_default(&o);
  o.method = (cnf_method)5;
  expect_error(cnf_flow_logp(f, &o, B, x, lp, NULL), CNF_EINVAL, NULL, "method 5");
  cnf_options_default(&o);
  o.rtol = 0;
  expect_error(cnf_flow_logp(f, &o, B, x, lp, NULL), CNF_EINVAL, "rtol", "rtol 0");
  cnf_options_default(&o);
  o.atol = -1;
  expect_error(cnf_flow_logp(f, &o, B, x, lp, NULL), CNF_EINVAL, NULL, "atol -1");
  /* after all that, the flow works */
  cnf_options_default(&o);
  CU_ASSERT_EQUAL(cnf_flow_logp(f, &o, B, x, lp, NULL), 0);
  for (size_t b = 0; b < B; b++) CU_ASSERT_TRUE(isfinite(lp[b]));
  cnf_flow_free(f);
}

static void test_errors_create(void) {
  if (ctx == NULL) CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  cnf_flow *f = (cnf_flow *)&cfg;
  expect_error(cnf_flow_create(&f, ctx, &cfg, 1, 0.0, 1), CNF_EINVAL, "T", "T = 0");
  CU_ASSERT_PTR_NULL(f);
  f = (cnf_flow *)&cfg;
  expect_error(cnf_flow_create(&f, ctx, &cfg, 1, NAN, 1), CNF_EINVAL, NULL, "T = NaN");
  CU_ASSERT_PTR_NULL(f);
  expect_error(cnf_flow_create(&f, ctx, &cfg, 1, INFINITY, 1), CNF_EINVAL, NULL, "T = Inf");
  expect_error(cnf_flow_create(&f, ctx, &cfg, 0, 0.5, 1), CNF_EINVAL, "blocks", "0 blocks");
  CU_ASSERT_PTR_NULL(f);
  expect_error(cnf_flow_create(&f, ctx, NULL, 1, 0.5, 1), CNF_EINVAL, NULL, "no config");
  cfg.hidden[1] = 0;
  expect_error(cnf_flow_create(&f, ctx, &cfg, 1, 0.5, 1), CNF_EINVAL, NULL, "width 0");
  CU_ASSERT_PTR_NULL(f);
  CU_ASSERT_EQUAL(cnf_flow_create(NULL, ctx, &cfg, 1, 0.5, 1), CNF_EINVAL);

  f = make_flow(2, "4", CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 2, 0.5, 1);
  CU_ASSERT_EQUAL(cnf_flow_dim(f), 2);
  CU_ASSERT_EQUAL(cnf_flow_blocks(f), 2);
  CU_ASSERT_EQUAL(cnf_flow_end_time(f, 0), 0.5);
  CU_ASSERT_EQUAL(cnf_flow_set_end_time(f, 1, 0.75), 0);
  CU_ASSERT_EQUAL(cnf_flow_end_time(f, 1), 0.75);
  CU_ASSERT_TRUE(isnan(cnf_flow_end_time(f, 2)));
  expect_error(cnf_flow_set_end_time(f, 2, 0.5), CNF_EINVAL, "block", "block 2 of 2");
  expect_error(cnf_flow_set_end_time(f, 0, -1.0), CNF_EINVAL, NULL, "T = -1");
  expect_error(cnf_flow_set_end_time(f, 0, NAN), CNF_EINVAL, NULL, "T = NaN");
  CU_ASSERT_EQUAL(cnf_flow_end_time(f, 0), 0.5);
  cnf_flow_free(f);
  cnf_flow_free(NULL);
}

/* Blocks of a user field class follow the same policy as MLP blocks: the
 * linear field z' = A z + b with theta = 0 is the identity, so log p(x) is
 * the base density log N(x; 0, I), finite at x = (0.5, -0.25) and -inf at
 * x = (1e308, 0) (|x|^2 overflows), which is CNF_ENONFINITE naming row 2;
 * an end time below 1e-8 is refused as for cnf_flow_create. */
static int lin_create(cnf_dyn **out, cnf_ctx *c, size_t D, const char *config, void *user) {
  (void)config, (void)user;
  return cnf_dyn_linear_create(out, c, D);
}
static void test_field_nonfinite(void) {
  static const cnf_field_class lin = {"lin-test", lin_create, NULL, NULL};
  if (ctx == NULL) CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  if (cnf_ctx_find_field(ctx, "lin-test") == NULL)
    CU_ASSERT_EQUAL_FATAL(cnf_ctx_register_field(ctx, &lin), 0);
  cnf_flow *f = NULL;
  expect_error(cnf_flow_create_field(&f, ctx, "lin-test", "", 2, 1, 5e-324, 1), CNF_EINVAL,
               "end time", "field T = 5e-324");
  CU_ASSERT_PTR_NULL(f);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create_field(&f, ctx, "lin-test", "", 2, 1, 0.5, 1), 0);
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = 1e-10;
  const double x[3 * 2] = {0.5, -0.25, 1e308, 0.0, 0.125, 1.0};
  double lp[3];
  cnf_ctx_clear_error(ctx);
  expect_error(cnf_flow_logp(f, &o, 3, x, lp, NULL), CNF_ENONFINITE, "at row 2 (1 of 3)",
               "field flow log p at 1e308");
  CU_ASSERT_EQUAL(cnf_flow_logp(f, &o, 1, x, lp, NULL), 0);
  CU_ASSERT_DOUBLE_EQUAL(lp[0], cnf_log_normal(x, 2), 1e-9);
  cnf_flow_free(f);
}

/* max_steps = 2 cannot reach T: CNF_ETOOMUCHWORK, CVODE's flag name in the
 * message, and with several blocks the block that failed. */
static void test_errors_solver(void) {
  const size_t B = 5, D = 2;
  cnf_options o;
  cnf_options_default(&o);
  o.max_steps = 2;
  double x[B * D], out[B * D], lp[B];
  fill_gauss(x, B * D, 2);
  cnf_flow *f = make_flow(D, NULL, CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 1, 0.5, 3);
  cnf_ctx_clear_error(ctx);
  int rc = cnf_flow_logp(f, &o, B, x, lp, NULL);
  expect_error(rc, CNF_ETOOMUCHWORK, "CV_TOO_MUCH_WORK", "1 block logp");
  CU_ASSERT_TRUE(cnf_is_solver_error(rc));
  cnf_flow_free(f);

  f = make_flow(D, NULL, CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 2, 0.5, 3);
  expect_error(cnf_flow_logp(f, &o, B, x, lp, NULL), CNF_ETOOMUCHWORK, "CV_TOO_MUCH_WORK",
               "2 blocks logp");
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "block 1 of 2"));
  /* decoding runs block 2 first */
  expect_error(cnf_flow_sample(f, &o, B, out, lp, NULL), CNF_ETOOMUCHWORK, "block 2 of 2",
               "2 blocks sample");
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "CV_TOO_MUCH_WORK"));
  /* with batches the message gives the rows */
  o.batch = 2;
  expect_error(cnf_flow_logp(f, &o, B, x, lp, NULL), CNF_ETOOMUCHWORK, "rows 1..2",
               "2 blocks batches");
  /* and the flow recovers with enough steps */
  cnf_options_default(&o);
  CU_ASSERT_EQUAL(cnf_flow_logp(f, &o, B, x, lp, NULL), 0);
  cnf_flow_free(f);
}

static void test_cleanup(void) {
  cnf_ctx_free(ctx);
  ctx = NULL;
}

const test_entry density_tests[] = {
    {"round trip, 1 block, exact", test_round_trip_1_exact},
    {"round trip, 3 blocks, exact", test_round_trip_3_exact},
    {"round trip, 1 block, Gaussian Hutchinson", test_round_trip_1_hutch},
    {"round trip, 3 blocks, Rademacher Hutchinson", test_round_trip_3_hutch},
    {"normalisation: default 2-D flow", test_normalisation_default},
    {"normalisation: 2-block concat/softplus flow", test_normalisation_concat},
    {"normalisation: a standardized flow", test_normalisation_standardized},
    {"sample log p = logp of the sample, 1 block", test_sample_1},
    {"sample log p = logp of the sample, 2 blocks", test_sample_2},
    {"determinism under seeds", test_determinism},
    {"batching: batch 7 vs one batch", test_batching},
    {"linear flow: closed-form z and log p", test_linear_flow},
    {"time-only flow: closed-form z", test_time_only_flow},
    {"errors: non-finite input, bad arguments", test_errors_input},
    {"errors: create, end times", test_errors_create},
    {"errors: solver failure names flag and block", test_errors_solver},
    {"errors: field-class blocks, non-finite log p and end times", test_field_nonfinite},
    {"(free the context)", test_cleanup},
    {NULL, NULL},
};
