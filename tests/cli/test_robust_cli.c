/* test_robust_cli.c: the `cnf` tool on the inputs of a hostile user
 * (docs/fuzzing.md): results that are not finite, CSV files that are not
 * text, model files with out-of-range header values.
 *
 * Policy (docs/cli.md, "Non-finite results"): a log-density, latent point
 * or sample that is NaN or infinite is an error naming the rows, exit
 * status 3, nothing written and nothing printed on standard output; before,
 * each case below exited 0 with -inf, -nan or inf in the output. */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_run.h"
#include "cnf.h"
#include "cnf_layers.h"
#include "test_util.h"

/* Load the model at path, set parameter i to v and save it as out. */
static void set_flow_param(const char *path, size_t i, double v, const char *out) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_FATAL(cnf_ctx_create(&ctx) == 0);
  cnf_flow *f = NULL;
  CU_ASSERT_FATAL(cnf_flow_load(&f, ctx, path) == 0);
  CU_ASSERT_FATAL(i < cnf_flow_param_count(f));
  cnf_flow_params(f)[i] = v;
  CU_ASSERT_FATAL(cnf_flow_save(f, out) == 0);
  cnf_flow_free(f);
  cnf_ctx_free(ctx);
}
static void set_stack_param(const char *path, size_t i, double v, const char *out) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_FATAL(cnf_ctx_create(&ctx) == 0);
  cnf_stack *s = NULL;
  CU_ASSERT_FATAL(cnf_stack_load(&s, ctx, path) == 0);
  CU_ASSERT_FATAL(i < cnf_stack_param_count(s));
  cnf_stack_params(s)[i] = v;
  CU_ASSERT_FATAL(cnf_stack_save(s, out) == 0);
  cnf_stack_free(s);
  cnf_ctx_free(ctx);
}

/* The run failed with status 3 naming the rows, wrote no output file and
 * printed nothing on standard output. */
static void expect_nonfinite(const char *label, int got, const char *cmd, const char *rows,
                             const char *out) {
  expect_failure(label, got, 3, cmd, "is not finite (NaN or infinite)", rows, out);
  CU_ASSERT_STRING_EQUAL(last_out, "");
}

/* A CNF at a point far outside its support: x = 1e308 maps to a latent
 * point near 1e308, whose base density exp(-|z|^2 / 2) underflows to 0. */
static void test_cnf_far_point(void) {
  CU_ASSERT_FATAL(CNF("init", "--dim", "2", "--hidden", "8", "--seed", "1", "--out", P("m.cnf")) ==
                  0);
  write_text(P("far.csv"), "x1,x2\n0.5,-0.25\n1e308,0\n0.125,1\n");
  expect_nonfinite("logp 1e308",
                   CNF("logp", "--model", P("m.cnf"), "--in", P("far.csv"), "--out", P("o.csv")),
                   "logp", "at row 2 (1 of 3)", P("o.csv"));
  expect_nonfinite("logp 1e308 to stdout", CNF("logp", "--model", P("m.cnf"), "--in", P("far.csv")),
                   "logp", "at row 2 (1 of 3)", NULL);
  expect_nonfinite("eval 1e308", CNF("eval", "--model", P("m.cnf"), "--in", P("far.csv")), "eval",
                   "at row 2 (1 of 3)", NULL);
  /* the finite rows alone are fine */
  write_text(P("near.csv"), "x1,x2\n0.5,-0.25\n0.125,1\n");
  CU_ASSERT_EQUAL(CNF("logp", "--model", P("m.cnf"), "--in", P("near.csv"), "--out", P("o.csv")),
                  0);
  CU_ASSERT_TRUE(exists(P("o.csv")));
  remove(P("o.csv"));
}

/* A linear field (no hidden layer) whose bias is 1e300: dz/dt = W z + b
 * carries every point to about 1e300 by t = 0.5. */
static void test_linear_huge_bias(void) {
  CU_ASSERT_FATAL(
      CNF("init", "--dim", "2", "--hidden", "0", "--seed", "1", "--out", P("lin.cnf")) == 0);
  /* concatsquash, no hidden layer: W (2 x 2), then b (2) at 4 and 5 */
  set_flow_param(P("lin.cnf"), 4, 1e300, P("bias.cnf"));
  write_text(P("pts.csv"), "x1,x2\n0.5,-0.25\n0.125,1\n");
  expect_nonfinite("logp bias 1e300",
                   CNF("logp", "--model", P("bias.cnf"), "--in", P("pts.csv"), "--out", P("o.csv")),
                   "logp", "at rows 1, 2 (2 of 2)", P("o.csv"));
  expect_nonfinite("grid bias 1e300",
                   CNF("grid", "--model", P("bias.cnf"), "--size", "4", "--out", P("g.csv")),
                   "grid", "(16 of 16)", P("g.csv"));
}

/* A discrete affine layer whose scale exp(M_11) overflows (M_11 = 1000),
 * or underflows to 0 (M_11 = -1000, so that the inverse divides by 0). */
static void test_affine_overflow(void) {
  CU_ASSERT_FATAL(CNF("init", "--flow", "affine", "--dim", "2", "--out", P("a.cnf")) == 0);
  set_stack_param(P("a.cnf"), 0, 1000.0, P("up.cnf"));
  set_stack_param(P("a.cnf"), 0, -1000.0, P("down.cnf"));
  write_text(P("pts.csv"), "x1,x2\n0.5,-0.25\n0.125,1\n-2,3\n");
  expect_nonfinite("affine logp",
                   CNF("logp", "--model", P("up.cnf"), "--in", P("pts.csv"), "--out", P("o.csv")),
                   "logp", "at rows 1, 2, 3 (3 of 3)", P("o.csv"));
  expect_nonfinite("affine eval", CNF("eval", "--model", P("up.cnf"), "--in", P("pts.csv")), "eval",
                   "at rows 1, 2, 3 (3 of 3)", NULL);
  expect_nonfinite("affine sample",
                   CNF("sample", "--model", P("down.cnf"), "-n", "10", "--out", P("s.csv")),
                   "sample", "(10 of 10)", P("s.csv"));
  /* the unchanged model works */
  CU_ASSERT_EQUAL(CNF("sample", "--model", P("a.cnf"), "-n", "10", "--out", P("s.csv")), 0);
  remove(P("s.csv"));
}

/* The validation rows of a discrete flow's training: a point at 1e308 has
 * log p = -inf under any affine flow (|z|^2 overflows), so every
 * validation fails naming the row, as logp and eval do, and the run ends
 * with status 3 (no finite validation NLL), the latest state saved. */
static void test_dflow_val_far_point(void) {
  write_text(P("tr.csv"), "x1,x2\n0.5,-0.25\n0.125,1\n-2,3\n1,1\n");
  write_text(P("far.csv"), "x1,x2\n0.5,-0.25\n1e308,0\n0.125,1\n");
  remove(P("v.cnf"));
  /* stderr holds the training log first, then the errors */
  CU_ASSERT_EQUAL(CNF("train", "--flow", "affine", "--data", P("tr.csv"), "--iters", "2", "--val",
                      P("far.csv"), "--out", P("v.cnf")),
                  3);
  CU_ASSERT_PTR_NOT_NULL(strstr(last_err,
                                "validation at step 2 failed: stack logp: the log-density is not "
                                "finite (NaN or infinite) at row 2 (1 of 3)"));
  CU_ASSERT_PTR_NOT_NULL(strstr(last_err, "no validation on"));
  CU_ASSERT_TRUE(exists(P("v.cnf")) && exists(P("v.cnf.last")));
  CU_ASSERT_TRUE(isinf(value_of(last_out, "val_nll_best")));
  /* the finite rows alone give a finite NLL */
  write_text(P("near.csv"), "x1,x2\n0.5,-0.25\n0.125,1\n");
  CU_ASSERT_EQUAL(CNF("train", "--flow", "affine", "--data", P("tr.csv"), "--iters", "2", "--val",
                      P("near.csv"), "--out", P("v.cnf")),
                  0);
  CU_ASSERT_TRUE(isfinite(value_of(last_out, "val_nll_best")));
}

/* Binary and UTF-16 CSV input: status 2 with file, line and column. */
static void test_binary_csv(void) {
  CU_ASSERT_FATAL(CNF("init", "--dim", "2", "--hidden", "8", "--seed", "1", "--out", P("m.cnf")) ==
                  0);
  const char nul[] = {'x', ',', 'y', '\n', '1', ',', '2', '\n', '3', ',', '\0', '4', '\n'};
  write_bytes(P("nul.csv"), nul, sizeof nul);
  expect_failure("NUL byte",
                 CNF("logp", "--model", P("m.cnf"), "--in", P("nul.csv"), "--out", P("o.csv")), 2,
                 "logp", "nul.csv:3:2: binary data", "NUL", P("o.csv"));
  const char u16[] = {'\xff', '\xfe', '1', '\0', ',', '\0', '2', '\0', '\n', '\0'};
  write_bytes(P("u16.csv"), u16, sizeof u16);
  expect_failure("UTF-16",
                 CNF("logp", "--model", P("m.cnf"), "--in", P("u16.csv"), "--out", P("o.csv")), 2,
                 "logp", "u16.csv:1:1: UTF-16", NULL, P("o.csv"));
}

/* An end time of 5e-324 in a model file (checksum intact): refused on
 * load with status 2 and the file named; it was accepted, and every solve
 * then failed with CV_ILL_INPUT (status 2) naming no file. */
static void test_tiny_end_time(void) {
  CU_ASSERT_FATAL(CNF("init", "--dim", "2", "--hidden", "8", "--seed", "1", "--out", P("m.cnf")) ==
                  0);
  size_t n = 0;
  unsigned char *b = (unsigned char *)read_all(P("m.cnf"), &n);
  CU_ASSERT_FATAL(b != NULL);
  unsigned char *nl = memchr(b, '\n', n);
  char *crc = strstr((char *)b, " crc32=");
  CU_ASSERT_FATAL(nl != NULL && crc != NULL);
  const double tiny = 5e-324;
  memcpy(nl + 1, &tiny, sizeof tiny); /* T, the first value (little-endian host) */
  /* the checksum covers the header before " crc32=" and the payload */
  const size_t covered = (size_t)(crc - (char *)b), hl = (size_t)(nl - b) + 1;
  unsigned char *msg = malloc(covered + n - hl);
  memcpy(msg, b, covered);
  memcpy(msg + covered, b + hl, n - hl);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < covered + n - hl; i++) {
    c ^= msg[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  char hex[9];
  snprintf(hex, sizeof hex, "%08x", (unsigned)~c);
  memcpy(crc + 7, hex, 8);
  write_bytes(P("tiny.cnf"), b, n);
  free(msg);
  free(b);
  write_text(P("pts.csv"), "x1,x2\n0.5,-0.25\n");
  expect_failure("T = 5e-324",
                 CNF("logp", "--model", P("tiny.cnf"), "--in", P("pts.csv"), "--out", P("o.csv")),
                 2, "logp", "tiny.cnf: end time 1 is 4.94066e-324", "need 1e-08 <= T", P("o.csv"));
}

int main(void) {
  if (cli_setup("cnf_test_robust_cli") != 0) return 1;
  static const test_entry tests[] = {
      {"CNF log p at 1e308: status 3", test_cnf_far_point},
      {"linear field with bias 1e300: status 3", test_linear_huge_bias},
      {"discrete affine scale overflow: status 3", test_affine_overflow},
      {"discrete flow train --val at 1e308: status 3", test_dflow_val_far_point},
      {"binary and UTF-16 CSV: line and column", test_binary_csv},
      {"end time 5e-324 refused on load", test_tiny_end_time},
      {NULL, NULL}};
  const char *const names[] = {"robust_cli"};
  const test_entry *const all[] = {tests};
  int rc = run_suites(names, all, 1);
  cli_teardown();
  return rc;
}
