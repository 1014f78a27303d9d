/* test_plot_cli.c: `cnf plot --kind paths|times`, end to end: the
 * trajectories of a grid and of data rows, the density strip titled by
 * its times, and the refusals (a discrete stack has no time, a strip needs
 * 2-D, an unknown kind): exit 2, a message, no file.  Run like the other
 * CLI suites (cli_run.h). */
#define _XOPEN_SOURCE 700
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_run.h"
#include "test_util.h"

/* 1 if the file holds the string s */
static int file_says(const char *path, const char *s) {
  FILE *fp = fopen(path, "rb");
  if (fp == NULL) return 0;
  static char buf[1 << 22];
  const size_t n = fread(buf, 1, sizeof buf - 1, fp);
  fclose(fp);
  buf[n] = '\0';
  return strstr(buf, s) != NULL;
}

static void test_kinds(void) {
  const char *m = P("c.cnf");
  CU_ASSERT_EQUAL_FATAL(
      CNF("init", "--dim", "2", "--hidden", "8-8", "--blocks", "2", "--seed", "3", "--out", m), 0);
  /* a 5 x 5 grid from -n 30, two blocks of T = 0.5 */
  CU_ASSERT_EQUAL(CNF("plot", "--model", m, "--kind", "paths", "-n", "30", "--out", P("g.svg")), 0);
  CU_ASSERT_TRUE(file_says(P("g.svg"), "paths (n = 25)"));
  CU_ASSERT_TRUE(file_says(P("g.svg"), "grid points (t = 0)"));
  CU_ASSERT_TRUE(file_says(P("g.svg"), "latent (t = 1)"));
  CU_ASSERT_TRUE(
      file_says(P("g.svg"), "Trajectories of c.cnf from data (t = 0) to latent (t = 1)"));
  CU_ASSERT_EQUAL(CNF("plot", "--model", m, "--kind", "paths", "--data", "8gaussians", "-n", "40",
                      "--out", P("d.png")),
                  0);
  CU_ASSERT_TRUE(exists(P("d.png")));
  CU_ASSERT_EQUAL(CNF("plot", "--model", m, "--kind", "times", "--times", "3", "--grid", "24",
                      "--out", P("t.svg")),
                  0);
  CU_ASSERT_TRUE(file_says(P("t.svg"), "t = 0 (data)"));
  CU_ASSERT_TRUE(file_says(P("t.svg"), "t = 0.5"));
  CU_ASSERT_TRUE(file_says(P("t.svg"), "t = 1 (latent)"));
  CU_ASSERT_EQUAL(CNF("plot", "--model", m, "--kind", "times", "--grid", "24", "--out", P("t.pdf")),
                  0);
  CU_ASSERT_TRUE(exists(P("t.pdf")));

  /* refusals */
  const char *s = P("s.cnf"), *m3 = P("c3.cnf");
  CU_ASSERT_EQUAL_FATAL(CNF("init", "--flow", "realnvp", "--dim", "2", "--out", s), 0);
  int rc = CNF("plot", "--model", s, "--kind", "paths", "--out", P("x.png"));
  expect_failure("paths of a stack", rc, 2, "plot", "discrete stack", "no time", P("x.png"));
  rc = CNF("plot", "--model", s, "--kind", "times", "--out", P("x.png"));
  expect_failure("times of a stack", rc, 2, "plot", "discrete stack", NULL, P("x.png"));
  CU_ASSERT_EQUAL_FATAL(CNF("init", "--dim", "3", "--hidden", "8", "--out", m3), 0);
  rc = CNF("plot", "--model", m3, "--kind", "times", "--out", P("x.png"));
  expect_failure("times in 3-D", rc, 2, "plot", "2-D model", NULL, P("x.png"));
  rc = CNF("plot", "--model", m, "--kind", "movie", "--out", P("x.png"));
  expect_failure("unknown kind", rc, 2, "plot", "density, paths or times", NULL, P("x.png"));
  rc = CNF("plot", "--model", m, "--kind", "times", "--times", "1", "--out", P("x.png"));
  expect_failure("one time", rc, 2, "plot", "times", NULL, P("x.png"));
  /* 3-D paths start from samples, drawn in coordinates 1 and 2 */
  CU_ASSERT_EQUAL(CNF("plot", "--model", m3, "--kind", "paths", "-n", "20", "--out", P("p3.svg")),
                  0);
  CU_ASSERT_TRUE(file_says(P("p3.svg"), "samples (t = 0)"));
}

int main(void) {
  if (cli_setup("cnf_test_plot_cli") != 0) return 2;
  static const test_entry tests[] = {
      {"plot --kind paths and times; refusals", test_kinds},
      {NULL, NULL},
  };
  static const char *const names[] = {"cnf plot kinds"};
  static const test_entry *const suites[] = {tests};
  int rc = run_suites(names, suites, 1);
  cli_teardown();
  return rc;
}
