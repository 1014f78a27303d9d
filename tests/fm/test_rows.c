/* test_rows.c: the dynamics ops with one time per row (f_rows, vjp_rows of
 * cnf_dynamics.h), which flow matching needs:
 *   - the MLP's ops against its scalar-time ops called row by row, for
 *     every layer kind and both activations, over more rows than one
 *     chunk: f, the input gradient and the parameter gradient agree to
 *     rounding;
 *   - the MLP's vjp_rows against central differences of
 *     S = sum_b a_b . f_b + ck_b |f_b|^2, f_b = f(t_b, z_b), in theta and z;
 *   - the threaded split gives the serial results;
 *   - the fallback of dyn.c for a field without the ops: one call per run
 *     of equal times, the closed-form results, and CNF_EUNSUPPORTED without
 *     a vjp op. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf_dynamics.h"
#include "fm_tests.h"
#include "test_util.h"

static cnf_dyn *make_mlp(cnf_ctx *ctx, size_t D, cnf_layer layer, cnf_act act, double **theta,
                         uint64_t seed) {
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, D);
  cfg.n_hidden = 2;
  cfg.hidden[0] = 7;
  cfg.hidden[1] = 5;
  cfg.layer = layer;
  cfg.act = act;
  cnf_dyn *dyn = NULL;
  if (cnf_dyn_mlp_create(&dyn, ctx, &cfg) != 0) return NULL;
  const size_t P = cnf_dyn_param_count(dyn);
  *theta = malloc(P * sizeof(double));
  cnf_mlp_init_params(&cfg, seed, *theta);
  return dyn;
}

static const cnf_layer layers[] = {CNF_LAYER_CONCATSQUASH, CNF_LAYER_CONCAT, CNF_LAYER_IGNORE};
static const cnf_act acts[] = {CNF_ACT_TANH, CNF_ACT_SOFTPLUS, CNF_ACT_TANH};

static void test_mlp_rows_vs_scalar(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  const size_t D = 3, B = 300; /* more rows than one chunk (256) */
  double *z = malloc(B * D * sizeof(double)), *t = malloc(B * sizeof(double)),
         *a = malloc(B * D * sizeof(double)), *ck = malloc(B * sizeof(double)),
         *seed = malloc(B * D * sizeof(double));
  fill_gauss(z, B * D, 1);
  fill_uniform(t, B, 0.0, 1.3, 2);
  fill_gauss(a, B * D, 3);
  fill_uniform(ck, B, -0.5, 1.0, 4);
  for (size_t k = 0; k < 3; k++) {
    double *theta = NULL;
    cnf_dyn *dyn = make_mlp(ctx, D, layers[k], acts[k], &theta, 10 + k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dyn);
    const size_t P = cnf_dyn_param_count(dyn);
    double *f = malloc(B * D * sizeof(double)), *fr = malloc(B * D * sizeof(double)),
           *f2 = malloc(B * D * sizeof(double)), *gz = malloc(B * D * sizeof(double)),
           *gzr = malloc(B * D * sizeof(double)), *g = calloc(P, sizeof(double)),
           *gr = calloc(P, sizeof(double)), *g2 = calloc(P, sizeof(double));
    CU_ASSERT_EQUAL(cnf_dyn_f_rows(dyn, t, B, z, theta, f), 0);
    CU_ASSERT_EQUAL(cnf_dyn_vjp_rows(dyn, t, B, z, theta, a, ck, f2, gz, g), 0);
    /* the scalar ops row by row, with the seed a + 2 ck f formed here */
    for (size_t b = 0; b < B; b++) {
      CU_ASSERT_EQUAL(cnf_dyn_f(dyn, t[b], 1, z + b * D, theta, fr + b * D), 0);
      for (size_t i = 0; i < D; i++) seed[b * D + i] = a[b * D + i] + 2.0 * ck[b] * fr[b * D + i];
      CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, t[b], 1, 0, z + b * D, theta, seed + b * D, NULL, NULL, NULL,
                                  gzr + b * D, gr),
                      0);
    }
    char label[64];
    snprintf(label, sizeof label, "f_rows vs f (layer kind %zu)", k);
    CHECK_CLOSE(f, fr, B * D, 1e-13, 1e-14, label);
    CHECK_CLOSE(f2, fr, B * D, 1e-13, 1e-14, "vjp_rows' f");
    CHECK_CLOSE(gz, gzr, B * D, 1e-12, 1e-14, "vjp_rows gz vs vjp");
    CHECK_CLOSE(g, gr, P, 1e-11, 1e-12, "vjp_rows gth vs vjp");
    /* without gz, and adding to gth */
    memcpy(g2, g, P * sizeof(double));
    CU_ASSERT_EQUAL(cnf_dyn_vjp_rows(dyn, t, B, z, theta, a, ck, NULL, NULL, g2), 0);
    for (size_t i = 0; i < P; i++) g2[i] -= g[i];
    CHECK_CLOSE(g2, g, P, 1e-12, 1e-13, "vjp_rows without gz, added to gth");
    /* ck NULL: the plain product, the seed a alone */
    memset(g2, 0, P * sizeof(double));
    memset(gr, 0, P * sizeof(double));
    CU_ASSERT_EQUAL(cnf_dyn_vjp_rows(dyn, t, B, z, theta, a, NULL, NULL, gz, g2), 0);
    for (size_t b = 0; b < B; b++)
      cnf_dyn_vjp(dyn, t[b], 1, 0, z + b * D, theta, a + b * D, NULL, NULL, NULL, gzr + b * D, gr);
    CHECK_CLOSE(gz, gzr, B * D, 1e-12, 1e-14, "vjp_rows gz without ck");
    CHECK_CLOSE(g2, gr, P, 1e-11, 1e-12, "vjp_rows gth without ck");
    free(f), free(fr), free(f2), free(gz), free(gzr), free(g), free(gr), free(g2);
    free(theta);
    cnf_dyn_free(dyn);
  }
  free(z), free(t), free(a), free(ck), free(seed);
  cnf_ctx_free(ctx);
}

/* S = sum_b a_b . f_b + ck_b |f_b|^2, f_b = f(t_b, z_b), of theta or z */
typedef struct s_args {
  cnf_dyn *dyn;
  size_t B, D;
  const double *t, *a, *ck;
  double *theta, *z, *f;
} s_args;

static double s_of(const double *x, void *user) {
  s_args *s = user;
  (void)x; /* x aliases theta or z, which central_diff perturbs in place */
  cnf_dyn_f_rows(s->dyn, s->t, s->B, s->z, s->theta, s->f);
  double sum = 0.0;
  for (size_t i = 0; i < s->B * s->D; i++)
    sum += s->a[i] * s->f[i] + s->ck[i / s->D] * s->f[i] * s->f[i];
  return sum;
}

static void test_mlp_rows_fd(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  const size_t D = 2, B = 5;
  double z[10], t[5] = {0.0, 0.37, 0.9, 0.37, 1.7}, a[10], f[10], gz[10], fdz[10];
  const double ck[5] = {0.3, 0.0, -0.2, 1.1, 0.5};
  fill_gauss(z, B * D, 21);
  fill_gauss(a, B * D, 22);
  for (size_t k = 0; k < 3; k++) {
    double *theta = NULL;
    cnf_dyn *dyn = make_mlp(ctx, D, layers[k], acts[k], &theta, 30 + k);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dyn);
    const size_t P = cnf_dyn_param_count(dyn);
    double *g = calloc(P, sizeof(double)), *fd = malloc(P * sizeof(double));
    CU_ASSERT_EQUAL(cnf_dyn_vjp_rows(dyn, t, B, z, theta, a, ck, NULL, gz, g), 0);
    s_args s = {dyn, B, D, t, a, ck, theta, z, f};
    for (size_t i = 0; i < P; i++) fd[i] = central_diff(s_of, theta, i, 1e-6, &s);
    for (size_t i = 0; i < B * D; i++) fdz[i] = central_diff(s_of, z, i, 1e-6, &s);
    CHECK_CLOSE(g, fd, P, 1e-6, 1e-8, "vjp_rows dS/dtheta vs central differences");
    CHECK_CLOSE(gz, fdz, B * D, 1e-6, 1e-8, "vjp_rows dS/dz vs central differences");
    free(g), free(fd), free(theta);
    cnf_dyn_free(dyn);
  }
  cnf_ctx_free(ctx);
}

static void test_mlp_rows_threads(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  const size_t D = 2, B = 2500;
  double *theta = NULL, *theta2 = NULL;
  cnf_dyn *ser = make_mlp(ctx, D, CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, &theta, 5);
  cnf_dyn *par = make_mlp(ctx, D, CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, &theta2, 5);
  CU_ASSERT_PTR_NOT_NULL_FATAL(ser);
  CU_ASSERT_PTR_NOT_NULL_FATAL(par);
  CU_ASSERT_EQUAL(cnf_dyn_mlp_set_threads(par, 2), 0);
  CU_ASSERT_EQUAL(cnf_dyn_reserve(par, B, 0), 0);
  const size_t P = cnf_dyn_param_count(ser);
  double *z = malloc(B * D * sizeof(double)), *t = malloc(B * sizeof(double)),
         *a = malloc(B * D * sizeof(double)), *f1 = malloc(B * D * sizeof(double)),
         *f2 = malloc(B * D * sizeof(double)), *gz1 = malloc(B * D * sizeof(double)),
         *gz2 = malloc(B * D * sizeof(double)), *g1 = calloc(P, sizeof(double)),
         *g2 = calloc(P, sizeof(double));
  fill_gauss(z, B * D, 41);
  fill_uniform(t, B, 0.0, 0.5, 42);
  fill_gauss(a, B * D, 43);
  CU_ASSERT_EQUAL(cnf_dyn_f_rows(ser, t, B, z, theta, f1), 0);
  CU_ASSERT_EQUAL(cnf_dyn_f_rows(par, t, B, z, theta, f2), 0);
  CHECK_CLOSE(f2, f1, B * D, 1e-14, 1e-15, "f_rows, 2 threads vs serial");
  double *ck = malloc(B * sizeof(double));
  fill_uniform(ck, B, 0.0, 1.0, 44);
  CU_ASSERT_EQUAL(cnf_dyn_vjp_rows(ser, t, B, z, theta, a, ck, NULL, gz1, g1), 0);
  CU_ASSERT_EQUAL(cnf_dyn_vjp_rows(par, t, B, z, theta, a, ck, NULL, gz2, g2), 0);
  free(ck);
  CHECK_CLOSE(gz2, gz1, B * D, 1e-14, 1e-15, "vjp_rows gz, 2 threads vs serial");
  CHECK_CLOSE(g2, g1, P, 1e-11, 1e-12, "vjp_rows gth, 2 threads vs serial");
  free(z), free(t), free(a), free(f1), free(f2), free(gz1), free(gz2), free(g1), free(g2);
  free(theta), free(theta2);
  cnf_dyn_free(ser);
  cnf_dyn_free(par);
  cnf_ctx_free(ctx);
}

/* A field without per-row ops: f_b = th0 t z_b + th1 t^2 (every
 * coordinate), counting its calls.  vjp: gz = th0 t a,
 * gth0 += t sum a.z, gth1 += t^2 sum a. */
typedef struct count_field {
  size_t D, calls_f, calls_vjp;
} count_field;

static int cf_f(void *sv, double t, size_t B, const double *z, const double *th, double *dz) {
  count_field *s = sv;
  s->calls_f++;
  for (size_t i = 0; i < B * s->D; i++) dz[i] = th[0] * t * z[i] + th[1] * t * t;
  return 0;
}

static int cf_vjp(void *sv, double t, size_t B, size_t K, const double *z, const double *th,
                  const double *a, const double *w, const double *v, double *dz, double *gz,
                  double *gth) {
  count_field *s = sv;
  (void)K, (void)w, (void)v;
  s->calls_vjp++;
  for (size_t i = 0; i < B * s->D; i++) {
    if (dz != NULL) dz[i] = th[0] * t * z[i] + th[1] * t * t;
    gz[i] = th[0] * t * a[i];
    if (gth != NULL) gth[0] += t * a[i] * z[i], gth[1] += t * t * a[i];
  }
  return 0;
}

static void test_fallback(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  static const cnf_dyn_type with_vjp = {.name = "count", .f = cf_f, .vjp = cf_vjp};
  static const cnf_dyn_type f_only = {.name = "count-f", .f = cf_f};
  count_field cf = {2, 0, 0};
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_create(&dyn, ctx, &with_vjp, &cf, 0, 2, 2), 0);
  const size_t B = 6, D = 2;
  const double t[6] = {0.1, 0.1, 0.3, 0.2, 0.2, 0.2}; /* three runs */
  const double th[2] = {1.5, -0.7};
  const double ck[6] = {0.5, -1.0, 0.0, 2.0, 0.25, 1.0};
  double z[12], a[12], f[12], f2[12], gz[12], g[2] = {0.25, 0}, ref_f[12], ref_gz[12];
  double ref_g[2] = {0.25, 0}, ref_gzc[12], ref_gc[2] = {0, 0};
  fill_gauss(z, B * D, 51);
  fill_gauss(a, B * D, 52);
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < D; i++) {
      const size_t k = b * D + i;
      ref_f[k] = th[0] * t[b] * z[k] + th[1] * t[b] * t[b];
      ref_gz[k] = th[0] * t[b] * a[k];
      ref_g[0] += t[b] * a[k] * z[k];
      ref_g[1] += t[b] * t[b] * a[k];
      const double sd = a[k] + 2.0 * ck[b] * ref_f[k]; /* the seed with ck */
      ref_gzc[k] = th[0] * t[b] * sd;
      ref_gc[0] += t[b] * sd * z[k];
      ref_gc[1] += t[b] * t[b] * sd;
    }
  CU_ASSERT_EQUAL(cnf_dyn_f_rows(dyn, t, B, z, th, f), 0);
  CU_ASSERT_EQUAL(cf.calls_f, 3);
  CHECK_CLOSE(f, ref_f, B * D, 1e-15, 1e-15, "fallback f_rows");
  CU_ASSERT_EQUAL(cnf_dyn_vjp_rows(dyn, t, B, z, th, a, NULL, f2, gz, g), 0);
  CU_ASSERT_EQUAL(cf.calls_vjp, 3);
  CHECK_CLOSE(f2, ref_f, B * D, 1e-15, 1e-15, "fallback vjp_rows f");
  CHECK_CLOSE(gz, ref_gz, B * D, 1e-15, 1e-15, "fallback vjp_rows gz");
  CHECK_CLOSE(g, ref_g, 2, 1e-14, 1e-15, "fallback vjp_rows gth (added to 0.25)");
  /* gz NULL goes through the field's scratch */
  g[0] = 0.25, g[1] = 0.0;
  CU_ASSERT_EQUAL(cnf_dyn_vjp_rows(dyn, t, B, z, th, a, NULL, NULL, NULL, g), 0);
  CHECK_CLOSE(g, ref_g, 2, 1e-14, 1e-15, "fallback vjp_rows without gz");
  /* with ck: f, then vjp with the seed a + 2 ck f, on each run */
  g[0] = g[1] = 0.0;
  cf.calls_f = cf.calls_vjp = 0;
  CU_ASSERT_EQUAL(cnf_dyn_vjp_rows(dyn, t, B, z, th, a, ck, f2, gz, g), 0);
  CU_ASSERT_EQUAL(cf.calls_f, 3);
  CU_ASSERT_EQUAL(cf.calls_vjp, 3);
  CHECK_CLOSE(f2, ref_f, B * D, 1e-15, 1e-15, "fallback vjp_rows f with ck");
  CHECK_CLOSE(gz, ref_gzc, B * D, 1e-14, 1e-15, "fallback vjp_rows gz with ck");
  CHECK_CLOSE(g, ref_gc, 2, 1e-14, 1e-15, "fallback vjp_rows gth with ck");
  /* bad input */
  CU_ASSERT_EQUAL(cnf_dyn_f_rows(dyn, NULL, B, z, th, f), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_dyn_f_rows(dyn, t, B, z, NULL, f), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_dyn_vjp_rows(dyn, t, B, z, th, NULL, NULL, NULL, gz, g), CNF_EINVAL);
  cnf_dyn_free(dyn);
  /* no vjp op: no gradient */
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_create(&dyn, ctx, &f_only, &cf, 0, 2, 2), 0);
  CU_ASSERT_EQUAL(cnf_dyn_vjp_rows(dyn, t, B, z, th, a, NULL, NULL, gz, g), CNF_EUNSUPPORTED);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "count-f"));
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

const test_entry rows_tests[] = {
    {"MLP per-row ops against the scalar ops row by row", test_mlp_rows_vs_scalar},
    {"MLP vjp_rows against central differences", test_mlp_rows_fd},
    {"MLP per-row ops with two threads", test_mlp_rows_threads},
    {"fallback on runs of equal times", test_fallback},
    {NULL, NULL}};
