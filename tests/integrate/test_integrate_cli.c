/* test_integrate_cli.c: `cnf integrate` end to end (run like the other CLI
 * suites, cli_run.h): the training-free Gauss weights are the cube's
 * indicator and the estimate sits within a few standard errors of the
 * exact value; every integrand prints every figure and the uniform
 * baseline; Rademacher probes reproduce the exact trace on the diagonal
 * field; a short learned run beats the uniform sampler on Camel; bad usage
 * exits 2 with a message naming the option. */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_run.h"
#include "test_util.h"

static const char *const figures[] = {"estimate",
                                      "stderr",
                                      "exact",
                                      "pull",
                                      "rel_spread",
                                      "efficiency",
                                      "zero_frac",
                                      "uniform_estimate",
                                      "uniform_stderr",
                                      "uniform_pull",
                                      "uniform_rel_spread",
                                      "uniform_efficiency",
                                      "nfe",
                                      "nsteps",
                                      "wall_seconds"};

static void test_gauss(void) {
  CU_ASSERT_EQUAL_FATAL(CNF("integrate", "--integrand", "gauss", "--dim", "4", "-n", "4000"), 0);
  for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
    CU_ASSERT_TRUE(isfinite(value_of(last_out, figures[i])));
  const double P = pow(erf(2.5), 4);
  CHECK_NEAR(value_of(last_out, "exact"), P, 1e-9);
  /* Bernoulli weights: stderr = sqrt(p (1 - p) / N) */
  CHECK_NEAR(value_of(last_out, "stderr"), sqrt(P * (1 - P) / 4000), 0.5 * sqrt(P * (1 - P) / 4000));
  CU_ASSERT_TRUE(fabs(value_of(last_out, "pull")) < 4);
  CU_ASSERT_TRUE(value_of(last_out, "indicator_err") < 1e-5); /* rtol = atol = 1e-8 */
  CU_ASSERT_TRUE(value_of(last_out, "efficiency") > 0.99);
  CU_ASSERT_TRUE(value_of(last_out, "uniform_rel_spread") > 10 * value_of(last_out, "rel_spread"));
  CU_ASSERT_TRUE(value_of(last_out, "nfe") > 0);
  /* the same seed prints the same numbers; another seed others */
  char first[1 << 12];
  snprintf(first, sizeof first, "%s", strstr(last_out, "estimate"));
  *strstr(first, "wall_seconds") = '\0';
  CU_ASSERT_EQUAL(CNF("integrate", "--integrand", "gauss", "--dim", "4", "-n", "4000"), 0);
  CU_ASSERT_EQUAL(strncmp(strstr(last_out, "estimate"), first, strlen(first)), 0);
  CU_ASSERT_EQUAL(
      CNF("integrate", "--integrand", "gauss", "--dim", "4", "-n", "4000", "--seed", "3"), 0);
  CU_ASSERT_NOT_EQUAL(strncmp(strstr(last_out, "estimate"), first, strlen(first)), 0);
}

static void test_integrands(void) {
  static const struct {
    const char *name, *dim;
    double exact;
  } cases[] = {
      {"camel", "2", 0.98166031212}, /* (erf(5/3) + erf(10/3))^2 / 4 */
      {"poly", "18", 3.0},
  };
  for (size_t i = 0; i < 2; i++) {
    CU_ASSERT_EQUAL(CNF("integrate", "--integrand", cases[i].name, "--dim", cases[i].dim, "-n",
                        "2000", "--rtol", "1e-6", "--atol", "1e-6"),
                    0);
    CHECK_NEAR(value_of(last_out, "exact"), cases[i].exact, 1e-9 * cases[i].exact);
    printf("\n  %s n=%s: estimate %g +- %g, pull %.2f; uniform %g +- %g", cases[i].name,
           cases[i].dim, value_of(last_out, "estimate"), value_of(last_out, "stderr"), value_of(last_out, "pull"),
           value_of(last_out, "uniform_estimate"), value_of(last_out, "uniform_stderr"));
    CU_ASSERT_TRUE(fabs(value_of(last_out, "uniform_pull")) < 4);
    CU_ASSERT_TRUE(isnan(value_of(last_out, "indicator_err")));
  }
  printf(" ");
}

static void test_rademacher(void) {
  CU_ASSERT_EQUAL(CNF("integrate", "--integrand", "camel", "--dim", "3", "-n", "500"), 0);
  const double est = value_of(last_out, "estimate");
  CU_ASSERT_EQUAL(
      CNF("integrate", "--integrand", "camel", "--dim", "3", "-n", "500", "--trace", "rademacher"),
      0);
  CHECK_NEAR(value_of(last_out, "estimate"), est, 1e-12 * est);
  CU_ASSERT_EQUAL(value_of(last_out, "probes"), 1);
  CU_ASSERT_EQUAL(CNF("integrate", "--integrand", "camel", "--dim", "3", "-n", "500", "--trace",
                      "gauss", "--probes", "2"),
                  0);
  CU_ASSERT_TRUE(fabs(value_of(last_out, "estimate") - est) > 1e-3 * est);
  CU_ASSERT_EQUAL(value_of(last_out, "probes"), 2);
}

static void test_learned(void) {
  int rc = CNF("integrate", "--integrand", "camel", "--dim", "2", "--learned", "--iters", "40",
               "--hidden", "16-16", "--batch", "128", "--lr", "1e-2", "-n", "3000", "--rtol",
               "1e-5", "--atol", "1e-5", "--defensive", "0.05", "--threads", "1");
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  printf("\n  learned camel n=2: loss %g -> %g, rel_spread %g (uniform %g), pull %.2f, kl %g ",
         value_of(last_out, "loss_first"), value_of(last_out, "loss_last"), value_of(last_out, "rel_spread"),
         value_of(last_out, "uniform_rel_spread"), value_of(last_out, "pull"), value_of(last_out, "kl"));
  CU_ASSERT_TRUE(value_of(last_out, "loss_last") < value_of(last_out, "loss_first"));
  CU_ASSERT_TRUE(value_of(last_out, "rel_spread") < 0.7 * value_of(last_out, "uniform_rel_spread"));
  CU_ASSERT_TRUE(fabs(value_of(last_out, "pull")) < 4);
  CU_ASSERT_EQUAL(value_of(last_out, "zero_frac"), 0); /* the sigmoid never leaves the cube */
  CU_ASSERT_TRUE(value_of(last_out, "kl") > 0 && value_of(last_out, "kl") < 0.5);
  CU_ASSERT_TRUE(value_of(last_out, "train_nfe_fwd") > 0 && value_of(last_out, "train_nfe_bwd") > 0);
  CU_ASSERT_EQUAL(value_of(last_out, "params"), 2 * 16 + 16 + 48 + 16 * 16 + 16 + 48 + 16 * 2 + 2 + 6);
}

static void test_bad_usage(void) {
  int rc = CNF("integrate", "--integrand", "banana", "--dim", "2");
  expect_failure("unknown integrand", rc, 2, "integrate", "--integrand", "banana", NULL);
  rc = CNF("integrate", "--dim", "2");
  expect_failure("no integrand", rc, 2, "integrate", "--integrand", NULL, NULL);
  rc = CNF("integrate", "--integrand", "gauss");
  expect_failure("no dimension", rc, 2, "integrate", "--dim", NULL, NULL);
  rc = CNF("integrate", "--integrand", "gauss", "--dim", "0");
  expect_failure("dimension 0", rc, 2, "integrate", "--dim", NULL, NULL);
  rc = CNF("integrate", "--integrand", "gauss", "--dim", "2", "-n", "1");
  expect_failure("one sample", rc, 2, "integrate", "-n", NULL, NULL);
  rc = CNF("integrate", "--integrand", "gauss", "--dim", "2", "--width", "1.4142135623730951");
  expect_failure("width sqrt 2", rc, 2, "integrate", "--width", NULL, NULL);
  rc = CNF("integrate", "--integrand", "gauss", "--dim", "2", "--learned", "--hidden", "8-x");
  expect_failure("bad hidden", rc, 2, "integrate", "--hidden", "8-x", NULL);
  rc = CNF("integrate", "--integrand", "gauss", "--dim", "2", "--learned", "--defensive", "2");
  expect_failure("defensive share", rc, 2, "integrate", "--defensive", NULL, NULL);
  rc = CNF("integrate", "--integrand", "gauss", "--dim", "2", "--max-steps", "2");
  expect_failure("solver gives up", rc, 3, "integrate", NULL, NULL, NULL);
  CU_ASSERT_EQUAL(CNF("integrate", "--help"), 0);
  CU_ASSERT_TRUE(strstr(last_out, "--integrand") != NULL && strstr(last_out, "--learned") != NULL);
}

int main(void) {
  if (cli_setup("cnf_test_integrate_cli") != 0) return 2;
  static const test_entry tests[] = {
      {"gauss: indicator weights, estimate within its errors", test_gauss},
      {"camel and poly: every figure and the uniform baseline", test_integrands},
      {"Rademacher probes exact on the diagonal field", test_rademacher},
      {"learned sampler on Camel beats the uniform one", test_learned},
      {"bad usage exits 2, solver failure 3", test_bad_usage},
      {NULL, NULL},
  };
  static const char *const names[] = {"cnf integrate"};
  static const test_entry *const suites[] = {tests};
  int rc = run_suites(names, suites, 1);
  cli_teardown();
  return rc;
}
