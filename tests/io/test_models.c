/* test_models.c: model files and results against the defects a mutation
 * fuzzer found (docs/fuzzing.md): saving non-finite values (once a
 * use-after-free), header values out of range (an end time of 5e-324),
 * Adam's second moments below zero, a stack header that made the loader
 * allocate before it checked; and the policy for non-finite results of
 * logp, encode, decode and sample (docs/cli.md, "Non-finite results"). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf.h"
#include "cnf_layers.h"
#include "core.h"
#include "io.h"
#include "scratch.h"
#include "test_util.h"

extern const test_entry models_tests[];

static cnf_ctx *ctx;
static char dir[1024];

static void setup(void) {
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  CU_ASSERT_EQUAL_FATAL(scratch_dir(dir, sizeof dir, "models"), 0);
}
static void teardown(void) {
  scratch_rmdir(dir);
  cnf_ctx_free(ctx);
  ctx = NULL;
}

/* The message starts with `start` and contains `part`. */
static void expect_msg(const char *start, const char *part) {
  const char *m = cnf_ctx_errmsg(ctx);
  int ok = strncmp(m, start, strlen(start)) == 0 && strstr(m, part) != NULL;
  CU_ASSERT_TRUE(ok);
  if (!ok) printf("\n  got \"%s\", expected \"%s...%s...\"\n", m, start, part);
}

/* Write a model file from a header (without " crc32=...") and a payload
 * of n doubles, with a correct checksum. */
static void write_model(const char *path, const char *head, const double *payload, size_t n) {
  uint32_t crc = cnf__crc32(0, head, strlen(head));
  crc = cnf__crc32(crc, payload, n * sizeof(double));
  const size_t hl = strlen(head) + 16;
  unsigned char *b = malloc(hl + 1 + n * sizeof(double));
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  snprintf((char *)b, hl + 1, "%s crc32=%08x\n", head, (unsigned)crc);
  memcpy(b + hl, payload, n * sizeof(double));
  CU_ASSERT_EQUAL(scratch_write(path, b, hl + n * sizeof(double)), 0);
  free(b);
}

/* Rewrite the file at src into dst with value i of its payload set to v. */
static void patch_value(const char *src, const char *dst, size_t i, double v) {
  size_t n = 0;
  unsigned char *b = scratch_read(src, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  unsigned char *nl = memchr(b, '\n', n);
  char *crc = strstr((char *)b, " crc32=");
  CU_ASSERT_TRUE_FATAL(nl != NULL && crc != NULL);
  const size_t hl = (size_t)(nl - b) + 1, nv = (n - hl) / sizeof(double);
  double *p = malloc((nv + 1) * sizeof(double));
  memcpy(p, b + hl, nv * sizeof(double));
  CU_ASSERT_TRUE_FATAL(i < nv);
  p[i] = v;
  *crc = '\0';
  write_model(dst, (char *)b, p, nv);
  free(p);
  free(b);
}

static cnf_flow *small_flow(void) {
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  CU_ASSERT_EQUAL_FATAL(cnf_mlp_parse_hidden(&cfg, "4"), 0);
  cnf_flow *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create(&f, ctx, &cfg, 1, 0.5, 3), 0);
  return f;
}

/* A non-finite value is never saved: CNF_ENONFINITE naming the file, the
 * value's place (1-based, T first) and the value; nothing is written.
 * The check once freed the payload before reading it for this message. */
static void test_save_nonfinite(void) {
  setup();
  char path[1200];
  scratch_path(path, sizeof path, dir, "m.cnf");
  cnf_flow *f = small_flow();
  const double bad[] = {NAN, INFINITY, -INFINITY};
  const char *text[] = {"is nan", "is inf", "is -inf"};
  for (int k = 0; k < 3; k++) {
    cnf_flow_params(f)[3] = bad[k];
    CU_ASSERT_EQUAL(cnf_flow_save(f, path), CNF_ENONFINITE);
    char start[1300];
    snprintf(start, sizeof start, "%s: not saved: stored value 5 of ", path);
    expect_msg(start, text[k]);
    CU_ASSERT_EQUAL(scratch_count(dir, NULL, 0), 0);
  }
  cnf_flow_free(f);
  cnf_stack *s = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_stack_preset(&s, ctx, "affine", 2, 1, 0, NULL, 1), 0);
  cnf_stack_params(s)[1] = NAN;
  CU_ASSERT_EQUAL(cnf_stack_save(s, path), CNF_ENONFINITE);
  char start[1300];
  snprintf(start, sizeof start, "%s: not saved: stored value 2 of ", path);
  expect_msg(start, "is nan");
  CU_ASSERT_EQUAL(scratch_count(dir, NULL, 0), 0);
  cnf_stack_free(s);
  teardown();
}

/* Every end time in [1e-8, 1e8], named with the file; Adam's second
 * moments >= 0.  T = 5e-324 was accepted and every solve then failed with
 * CV_ILL_INPUT and no file named. */
static void test_load_values(void) {
  setup();
  char path[1200], bad[1200];
  scratch_path(path, sizeof path, dir, "m.cnf");
  scratch_path(bad, sizeof bad, dir, "bad.cnf");
  cnf_flow *f = small_flow();
  CU_ASSERT_EQUAL_FATAL(cnf_flow_save(f, path), 0);
  const double Ts[] = {5e-324, 9.9e-9, 1.01e8, 0.0, -0.5};
  for (int k = 0; k < 5; k++) {
    patch_value(path, bad, 0, Ts[k]);
    cnf_flow *g = NULL;
    CU_ASSERT_EQUAL(cnf_flow_load(&g, ctx, bad), CNF_ECORRUPT);
    CU_ASSERT_PTR_NULL(g);
    char start[1300];
    snprintf(start, sizeof start, "%s: end time 1 is ", bad);
    expect_msg(start, "need 1e-08 <= T <= 1e+08");
  }
  const double ok[] = {1e-8, 1e8, 0.75};
  for (int k = 0; k < 3; k++) {
    patch_value(path, bad, 0, ok[k]);
    cnf_flow *g = NULL;
    CU_ASSERT_EQUAL(cnf_flow_load(&g, ctx, bad), 0);
    CU_ASSERT_TRUE(g != NULL && cnf_flow_end_time(g, 0) == ok[k]);
    cnf_flow_free(g);
  }
  /* the library refuses such end times too */
  CU_ASSERT_EQUAL(cnf_flow_set_end_time(f, 0, 5e-324), CNF_EINVAL);
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  cnf_flow *h = (cnf_flow *)&h;
  CU_ASSERT_EQUAL(cnf_flow_create(&h, ctx, &cfg, 1, 1e9, 1), CNF_EINVAL);
  CU_ASSERT_PTR_NULL(h);

  /* Adam's state: v (the last values) must not be negative, m may */
  cnf_train_options to;
  cnf_train_options_default(&to);
  cnf_train *tr = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_train_create(&tr, f, &to, 5), 0);
  cnf_options o;
  cnf_options_default(&o);
  double x[8 * 2];
  fill_gauss(x, 16, 4);
  CU_ASSERT_EQUAL_FATAL(cnf_train_step(tr, &o, 8, x, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_save(f, path), 0);
  size_t n = 0;
  unsigned char *b = scratch_read(path, &n);
  const size_t nv = (n - (size_t)((unsigned char *)memchr(b, '\n', n) - b) - 1) / 8;
  free(b);
  const size_t P = cnf_flow_param_count(f), ntr = P + 1;
  CU_ASSERT_EQUAL_FATAL(nv, 1 + P + 2 * ntr);
  patch_value(path, bad, nv - 1, -1e-12);
  cnf_flow *g = NULL;
  CU_ASSERT_EQUAL(cnf_flow_load(&g, ctx, bad), CNF_ECORRUPT);
  char start[1300];
  snprintf(start, sizeof start, "%s: stored value %zu of %zu is -1e-12", bad, nv, nv);
  expect_msg(start, "second moment");
  patch_value(path, bad, nv - ntr - 1, -1e-12); /* the last m */
  CU_ASSERT_EQUAL(cnf_flow_load(&g, ctx, bad), 0);
  cnf_flow_free(g);
  cnf_train_free(tr);
  cnf_flow_free(f);

  /* stacks: the same for v, and a cnf layer's end time (arg / 1000) */
  cnf_stack *s = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_stack_preset(&s, ctx, "affine", 2, 1, 0, NULL, 1), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_stack_train_step(s, &to, 8, x, NULL, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_stack_save(s, path), 0);
  const size_t Ps = cnf_stack_param_count(s);
  cnf_stack_free(s);
  patch_value(path, bad, 3 * Ps - 1, -2.0);
  s = (cnf_stack *)&s;
  CU_ASSERT_EQUAL(cnf_stack_load(&s, ctx, bad), CNF_ECORRUPT);
  CU_ASSERT_PTR_NULL(s);
  snprintf(start, sizeof start, "%s: stored value %zu of %zu is -2", bad, 3 * Ps, 3 * Ps);
  expect_msg(start, "second moment");
  const double th[1] = {0};
  write_model(bad, "CNF-MODEL 1 flow=x dim=1 layers=cnf:4:100000000001 params=0", th, 0);
  CU_ASSERT_EQUAL(cnf_stack_load(&s, ctx, bad), CNF_ECORRUPT);
  expect_msg(bad, "bad layer list");
  teardown();
}

/* A stack header is checked against the file before anything is allocated
 * for its layers: params=0 with two 1000-dimensional affine layers (which
 * have 2 * 1001000 parameters) and 40 permutations of dimension 1000 (no
 * parameters, 1.2 GB of row workspace) are refused after at most the
 * layer list's own allocation.  The loader used to build the layers first. */
static void test_stack_header_first(void) {
  setup();
  char path[1200];
  scratch_path(path, sizeof path, dir, "s.cnf");
  const double none[1] = {0};
  write_model(path, "CNF-MODEL 1 flow=x dim=1000 layers=affine:0:0,affine:0:0 params=0", none, 0);
  cnf__alloc_fail_after(-1);
  cnf_stack *s = NULL;
  CU_ASSERT_EQUAL(cnf_stack_load(&s, ctx, path), CNF_ECORRUPT);
  CU_ASSERT_TRUE(cnf__alloc_fail_after(-1) <= 1);
  expect_msg(path, "params=0, the layers have 2002000");
  char head[1024] = "CNF-MODEL 1 flow=x dim=1000 layers=permute:0:0";
  for (int k = 1; k < 40; k++) strcat(head, ",permute:0:0");
  strcat(head, " params=0");
  write_model(path, head, none, 0);
  CU_ASSERT_EQUAL(cnf_stack_load(&s, ctx, path), CNF_ECORRUPT);
  CU_ASSERT_TRUE(cnf__alloc_fail_after(-1) <= 1);
  expect_msg(path, "implausible header: 40 layers of dimension 1000");
  /* a small stack of permutations alone is a model like any other */
  write_model(path, "CNF-MODEL 1 flow=x dim=3 layers=permute:0:0,permute:0:7 params=0", none, 0);
  CU_ASSERT_EQUAL(cnf_stack_load(&s, ctx, path), 0);
  CU_ASSERT_PTR_NOT_NULL(s);
  cnf_stack_free(s);
  teardown();
}

/* Non-finite results are errors naming the rows: a CNF density at a point
 * far outside the support (1e308 gives log p = -inf), and a discrete
 * affine layer whose scale exp(M_11) overflows. */
static void test_nonfinite_results(void) {
  setup();
  cnf_flow *f = small_flow();
  cnf_options o;
  cnf_options_default(&o);
  double x[4 * 2] = {0.5, -0.25, 1e308, 0.0, 0.125, 1.0, -1e308, 2.0}, lp[4], z[8];
  CU_ASSERT_EQUAL(cnf_flow_logp(f, &o, 4, x, lp, NULL), CNF_ENONFINITE);
  expect_msg("flow logp: the log-density is not finite", "at rows 2, 4 (2 of 4)");
  /* their latent points are finite (about 1e308): the base density's
   * -|z|^2 / 2 overflows, so encode alone succeeds */
  CU_ASSERT_EQUAL(cnf_flow_encode(f, &o, 4, x, z, lp, NULL), 0);
  CU_ASSERT_TRUE(isfinite(z[2]) && fabs(z[2]) > 1e300 && isfinite(lp[1]));
  /* the finite rows alone pass */
  double y[2 * 2] = {0.5, -0.25, 0.125, 1.0};
  CU_ASSERT_EQUAL(cnf_flow_logp(f, &o, 2, y, lp, NULL), 0);
  CU_ASSERT_TRUE(isfinite(lp[0]) && isfinite(lp[1]));
  cnf_flow_free(f);

  cnf_stack *s = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_stack_preset(&s, ctx, "affine", 2, 1, 0, NULL, 1), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_stack_param_count(s), 6); /* M (2 x 2), b (2) */
  cnf_stack_params(s)[0] = 1000.0;                    /* exp(M_11) = inf */
  CU_ASSERT_EQUAL(cnf_stack_logp(s, 2, y, lp), CNF_ENONFINITE);
  expect_msg("stack logp: the log-density is not finite", "at rows 1, 2 (2 of 2)");
  CU_ASSERT_EQUAL(cnf_stack_encode(s, 2, y, z, lp), CNF_ENONFINITE);
  expect_msg("stack encode: the latent point", "(2 of 2)");
  cnf_stack_params(s)[0] = -1000.0; /* the inverse divides by exp(-1000) = 0 */
  CU_ASSERT_EQUAL(cnf_stack_decode(s, 2, y, z, NULL), CNF_ENONFINITE);
  expect_msg("stack decode: the data point", "(2 of 2)");
  double xs[300 * 2], ls[300];
  CU_ASSERT_EQUAL(cnf_stack_sample(s, 300, xs, ls), CNF_ENONFINITE);
  expect_msg("stack sample: the sample is not finite", "at rows 1, 2, 3, 4, 5, ... (300 of 300)");
  cnf_stack_params(s)[0] = 0.0;
  CU_ASSERT_EQUAL(cnf_stack_sample(s, 300, xs, ls), 0);
  cnf_stack_free(s);
  teardown();
}

const test_entry models_tests[] = {
    {"save: non-finite values refused, file and value named", test_save_nonfinite},
    {"load: end times, second moments, cnf layer times", test_load_values},
    {"load: a stack header is checked before allocating", test_stack_header_first},
    {"results: non-finite densities and samples are errors", test_nonfinite_results},
    {NULL, NULL},
};
