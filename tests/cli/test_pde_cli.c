/* test_pde_cli.c: `cnf pde`, the training-free PDE benchmarks, end to end:
 * every problem prints its metrics and statistics, the log-density error
 * stays within the bars of the library's own suite (tests/pde), Hutchinson
 * with Rademacher probes is exact on the rotation field, and bad usage
 * exits 2.  Run like the other CLI suites (cli_run.h). */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_run.h"
#include "test_util.h"

static void test_problems(void) {
  static const struct {
    const char *name, *dim;
    double bar;
    int gaussian;
  } cases[] = {
      {"liouville-linear", "16", 1e-6, 1},
      {"cubic", "10", 1e-5, 0}, /* conditioning-limited: see tests/pde */
      {"heat", "10", 1e-6, 0},
      {"ou", "10", 1e-6, 1},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = CNF("pde", "--problem", cases[i].name, "--dim", cases[i].dim, "-n", "200");
    CU_ASSERT_EQUAL(rc, 0);
    double lpe = value_of(last_out, "lpe_mean"), nfe = value_of(last_out, "nfe");
    printf("\n  %s d=%s: lpe_mean %.3g nfe %.0f", cases[i].name, cases[i].dim, lpe, nfe);
    CU_ASSERT_TRUE(lpe <= cases[i].bar);
    CU_ASSERT_TRUE(nfe > 0);
    CU_ASSERT_TRUE(isfinite(value_of(last_out, "lpe_max")) && isfinite(value_of(last_out, "wall_seconds")));
    /* moments only for the Gaussian ones, and then with sampling error
     * of a few / sqrt(200) */
    double cov = value_of(last_out, "cov_rel_err");
    CU_ASSERT_EQUAL(isnan(cov), !cases[i].gaussian);
    if (cases[i].gaussian) CU_ASSERT_TRUE(cov < 0.5);
  }
  printf(" ");
}

static void test_rademacher_exact(void) {
  /* A = -I/2 + rotations: Rademacher probes give the exact trace */
  CU_ASSERT_EQUAL(CNF("pde", "--problem", "liouville-linear", "--dim", "8", "-n", "50"), 0);
  double exact = value_of(last_out, "lpe_mean");
  CU_ASSERT_EQUAL(CNF("pde", "--problem", "liouville-linear", "--dim", "8", "-n", "50", "--trace",
                      "rademacher"),
                  0);
  CHECK_NEAR(value_of(last_out, "lpe_mean"), exact, 1e-12);
  CU_ASSERT_EQUAL(value_of(last_out, "probes"), 1);
  /* Gaussian probes are not exact there */
  CU_ASSERT_EQUAL(CNF("pde", "--problem", "liouville-linear", "--dim", "8", "-n", "50", "--trace",
                      "gauss"),
                  0);
  CU_ASSERT_TRUE(value_of(last_out, "lpe_mean") > 1e-3);
  CU_ASSERT_TRUE(isnan(value_of(last_out, "trace_var"))); /* one probe: no variance */
}

/* Hutchinson's empirical variance with K = 4 probes: on A = -I/2 +
 * rotations (d = 8) one Gaussian probe's u.Au = -|u|^2/2 has variance
 * 2 |S|_F^2 = 2 d / 4 = 4; the printed mean of the per-sample variances
 * (1000 samples, 3 degrees of freedom each: a few percent standard error)
 * is within 10%.  Rademacher probes: exactly 0.  The exact trace prints
 * none. */
static void test_trace_var(void) {
  CU_ASSERT_EQUAL(CNF("pde", "--problem", "liouville-linear", "--dim", "8", "-n", "1000",
                      "--trace", "gauss", "--probes", "4"),
                  0);
  const double v = value_of(last_out, "trace_var");
  printf("\n  trace_var (gauss, K = 4) %.4f, closed form 4 ", v);
  CU_ASSERT_TRUE(fabs(v / 4.0 - 1.0) <= 0.10);
  CU_ASSERT_TRUE(value_of(last_out, "trace_var_terms") >= 1000);
  CU_ASSERT_EQUAL(CNF("pde", "--problem", "liouville-linear", "--dim", "8", "-n", "100",
                      "--trace", "rademacher", "--probes", "2"),
                  0);
  CHECK_NEAR(value_of(last_out, "trace_var"), 0.0, 1e-20);
  CU_ASSERT_EQUAL(CNF("pde", "--problem", "double-well", "--dim", "3", "-n", "100", "--cells",
                      "200", "--trace", "gauss", "--probes", "3"),
                  0);
  CU_ASSERT_TRUE(value_of(last_out, "trace_var") > 0);
  CU_ASSERT_EQUAL(CNF("pde", "--problem", "ou", "--dim", "3", "-n", "50"), 0);
  CU_ASSERT_TRUE(isnan(value_of(last_out, "trace_var")));
}

/* P4 training-free, rotated, d = 2: the reference's LPE bar of tests/pde
 * (1e-6 per coordinate), the flow's fraction of coordinates left of 0
 * within 4 standard errors of the reference's mass, the flow's KL estimate
 * near the reference's, and the table over 21 times. */
static void test_double_well(void) {
  int rc = CNF("pde", "--problem", "double-well", "--dim", "2", "-n", "400", "--rotate", "--cells",
               "500", "--out", P("dw.csv"));
  CU_ASSERT_EQUAL(rc, 0);
  const double lpe = value_of(last_out, "lpe_mean"), ml = value_of(last_out, "mass_left_ref");
  printf("\n  double-well d=2: lpe_mean %.3g, mass left %.3f (reference %.4f), KL %.4f (%.4f) ", lpe,
         value_of(last_out, "mass_left"), ml, value_of(last_out, "kl_inf_flow"), value_of(last_out, "kl_inf_ref"));
  CU_ASSERT_TRUE(lpe <= 2e-6);
  CU_ASSERT_TRUE(fabs(value_of(last_out, "mass_left") - ml) <= 4 * sqrt(ml * (1 - ml) / 800));
  CU_ASSERT_TRUE(fabs(value_of(last_out, "kl_inf_flow") - value_of(last_out, "kl_inf_ref")) < 0.1);
  CU_ASSERT_TRUE(value_of(last_out, "lpe_mean@0.5") <= 2e-6);
  CU_ASSERT_TRUE(isfinite(value_of(last_out, "mass_left_ref@0.25")));
  size_t len = 0;
  char *csv = read_all(P("dw.csv"), &len);
  CU_ASSERT_PTR_NOT_NULL(csv);
  if (csv != NULL) {
    CU_ASSERT_EQUAL(strncmp(csv, "t,lpe_mean,lpe_max,w2,mass_left,mass_left_ref\n", 46), 0);
    size_t lines = 0;
    for (const char *q = csv; *q; q++) lines += *q == '\n';
    CU_ASSERT_EQUAL(lines, 22);
    free(csv);
  }
}

/* Learned mode with a small budget (300 Adam steps, a 32-32 network): the
 * OU velocity field in d = 2 is learned well enough that the LPE at T
 * stays below 0.15 (measured 0.061; after one step it is 1.1) and the
 * Gaussian W2 below 0.15 (measured 0.118; the exact field carries the
 * same 400 samples to 0.126, the sampling floor; after one step 1.5). */
static void test_learned(void) {
  int rc = CNF("pde", "--problem", "ou", "--dim", "2", "-n", "400", "--learned", "--iters", "300",
               "--hidden", "32-32");
  CU_ASSERT_EQUAL(rc, 0);
  const double lpe = value_of(last_out, "lpe_mean"), w2 = value_of(last_out, "w2");
  printf("\n  ou learned (300 steps): loss %.3g, lpe_mean %.3g, w2 %.3g ", value_of(last_out, "train_loss"),
         lpe, w2);
  CU_ASSERT_TRUE(lpe < 0.15);
  CU_ASSERT_TRUE(w2 < 0.15);
  CU_ASSERT_EQUAL(value_of(last_out, "learned"), 1);
  rc = CNF("pde", "--problem", "ou", "--dim", "2", "-n", "400", "--learned", "--iters", "1",
           "--hidden", "32-32");
  CU_ASSERT_EQUAL(rc, 0);
  printf("(1 step: lpe_mean %.3g, w2 %.3g) ", value_of(last_out, "lpe_mean"),
         value_of(last_out, "w2"));
  CU_ASSERT_TRUE(value_of(last_out, "lpe_mean") > 0.5);
  CU_ASSERT_TRUE(value_of(last_out, "w2") > 0.5);
  /* the plot of the double well in 1-D */
  rc = CNF("pde", "--problem", "double-well", "--dim", "1", "-n", "100", "--cells", "200",
           "--plot", P("dw.png"));
  CU_ASSERT_EQUAL(rc, 0);
  size_t len = 0;
  char *png = read_all(P("dw.png"), &len);
  CU_ASSERT_TRUE(png != NULL && len > 8 && memcmp(png, "\x89PNG", 4) == 0);
  free(png);
}

static void test_bad_usage(void) {
  int rc = CNF("pde", "--problem", "double-wall", "--dim", "2");
  expect_failure("unknown problem", rc, 2, "pde", "--problem", NULL, NULL);
  rc = CNF("pde", "--problem", "heat", "--dim", "2", "--learned");
  expect_failure("learned heat", rc, 2, "pde", "--learned", NULL, NULL);
  rc = CNF("pde", "--problem", "double-well", "--dim", "2", "--plot", "x.png");
  expect_failure("plot in 2-D", rc, 2, "pde", "--dim 1", NULL, NULL);
  rc = CNF("pde", "--problem", "double-well", "--dim", "2", "--cells", "1001");
  expect_failure("cells not a multiple of 4", rc, 2, "pde", "multiple of 4", NULL, NULL);
  rc = CNF("pde", "--problem", "heat", "--dim", "1");
  expect_failure("heat in 1-D", rc, 2, "pde", "D >= 2", NULL, NULL);
  rc = CNF("pde", "--dim", "2");
  expect_failure("no problem", rc, 2, "pde", "--problem", NULL, NULL);
  CU_ASSERT_EQUAL(CNF("pde", "--help"), 0);
}

int main(void) {
  if (cli_setup("cnf_test_pde_cli") != 0) return 2;
  static const test_entry tests[] = {
      {"every problem: metrics within the bars", test_problems},
      {"Rademacher probes exact on the rotation field", test_rademacher_exact},
      {"Hutchinson's empirical variance (K >= 2)", test_trace_var},
      {"double-well: LPE, well masses, KL, table", test_double_well},
      {"learned mode (ou) with a small budget; the double-well plot", test_learned},
      {"bad usage exits 2", test_bad_usage},
      {NULL, NULL},
  };
  static const char *const names[] = {"cnf pde"};
  static const test_entry *const suites[] = {tests};
  int rc = run_suites(names, suites, 1);
  cli_teardown();
  return rc;
}
