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

/* The value of `name value` in the last run's standard output, or NAN. */
static double value_of(const char *name) {
  size_t n = strlen(name);
  for (const char *p = last_out; p && *p;) {
    if (strncmp(p, name, n) == 0 && p[n] == ' ') return atof(p + n + 1);
    p = strchr(p, '\n');
    if (p) p++;
  }
  return NAN;
}

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
    double lpe = value_of("lpe_mean"), nfe = value_of("nfe");
    printf("\n  %s d=%s: lpe_mean %.3g nfe %.0f", cases[i].name, cases[i].dim, lpe, nfe);
    CU_ASSERT_TRUE(lpe <= cases[i].bar);
    CU_ASSERT_TRUE(nfe > 0);
    CU_ASSERT_TRUE(isfinite(value_of("lpe_max")) && isfinite(value_of("wall_seconds")));
    /* moments only for the Gaussian ones, and then with sampling error
     * of a few / sqrt(200) */
    double cov = value_of("cov_rel_err");
    CU_ASSERT_EQUAL(isnan(cov), !cases[i].gaussian);
    if (cases[i].gaussian) CU_ASSERT_TRUE(cov < 0.5);
  }
  printf(" ");
}

static void test_rademacher_exact(void) {
  /* A = -I/2 + rotations: Rademacher probes give the exact trace */
  CU_ASSERT_EQUAL(CNF("pde", "--problem", "liouville-linear", "--dim", "8", "-n", "50"), 0);
  double exact = value_of("lpe_mean");
  CU_ASSERT_EQUAL(CNF("pde", "--problem", "liouville-linear", "--dim", "8", "-n", "50", "--trace",
                      "rademacher"),
                  0);
  CHECK_NEAR(value_of("lpe_mean"), exact, 1e-12);
  CU_ASSERT_EQUAL(value_of("probes"), 1);
  /* Gaussian probes are not exact there */
  CU_ASSERT_EQUAL(CNF("pde", "--problem", "liouville-linear", "--dim", "8", "-n", "50", "--trace",
                      "gauss"),
                  0);
  CU_ASSERT_TRUE(value_of("lpe_mean") > 1e-3);
}

static void test_bad_usage(void) {
  int rc = CNF("pde", "--problem", "double-well", "--dim", "2");
  expect_failure("unknown problem", rc, 2, "pde", "--problem", NULL, NULL);
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
      {"bad usage exits 2", test_bad_usage},
      {NULL, NULL},
  };
  static const char *const names[] = {"cnf pde"};
  static const test_entry *const suites[] = {tests};
  int rc = run_suites(names, suites, 1);
  cli_teardown();
  return rc;
}
