/* test_flows_cli.c: the discrete flows in the `cnf` tool, end to end:
 * init and train with --flow, logp, sample, eval and plot on stack models
 * (chosen by the model file's kind), `cnf compare`, and bad input: exit 2
 * with a message, no output file.  Run like the other CLI suites
 * (cli_run.h). */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_run.h"
#include "test_util.h"

/* every flow: init, sample, logp of the samples = sample's logp, eval =
 * -mean logp, plot */
static void test_every_flow(void) {
  const char *flows[] = {"realnvp", "nice",   "maf",    "iaf",
                         "planar",  "radial", "affine", "elementwise"};
  for (size_t k = 0; k < sizeof flows / sizeof flows[0]; k++) {
    const char *m = P("m.cnf"), *s = P("s.csv"), *l = P("l.csv"), *png = P("p.png");
    int rc = CNF("init", "--flow", flows[k], "--dim", "2", "--hidden", "8-8", "--blocks", "2",
                 "--seed", "3", "--out", m);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(CNF("sample", "--model", m, "-n", "40", "--seed", "4", "--out", s), 0);
    size_t rows = 0, cols = 0;
    double *smp = read_csv(s, "x1,x2,logp", &rows, &cols);
    CU_ASSERT_EQUAL_FATAL(rows == 40 && cols == 3 && smp != NULL, 1);
    double *x = malloc(40 * 2 * sizeof(double)), ref[40], mean = 0.0;
    for (size_t i = 0; i < 40; i++) {
      x[2 * i] = smp[3 * i], x[2 * i + 1] = smp[3 * i + 1], ref[i] = smp[3 * i + 2];
      mean -= ref[i] / 40;
    }
    FILE *fp = fopen(P("x.csv"), "w");
    fprintf(fp, "x1,x2\n");
    for (size_t i = 0; i < 40; i++) fprintf(fp, "%.17g,%.17g\n", x[2 * i], x[2 * i + 1]);
    fclose(fp);
    CU_ASSERT_EQUAL(CNF("logp", "--model", m, "--in", P("x.csv"), "--out", l), 0);
    double *lp = read_csv(l, "logp", &rows, &cols);
    CU_ASSERT_EQUAL_FATAL(rows == 40 && lp != NULL, 1);
    char label[64];
    snprintf(label, sizeof label, "%s: logp of samples", flows[k]);
    CHECK_CLOSE(lp, ref, 40, 1e-9, 1e-9, label);
    CU_ASSERT_EQUAL(CNF("eval", "--model", m, "--in", P("x.csv")), 0);
    CHECK_NEAR(value_of(last_out, "nll"), mean, 1e-8);
    CU_ASSERT_EQUAL(CNF("plot", "--model", m, "--out", png, "--grid", "32"), 0);
    CU_ASSERT_TRUE(exists(png));
    free(x), free(smp), free(lp);
    remove(png);
  }
}

static void test_train(void) {
  const char *m = P("t.cnf");
  int rc = CNF("train", "--flow", "maf", "--data", "8gaussians", "--iters", "60", "--hidden",
               "16-16", "--standardize", "--test-n", "500", "--lr", "5e-3", "--out", m);
  CU_ASSERT_EQUAL(rc, 0);
  double nll = value_of(last_out, "test_nll");
  /* the best Gaussian of 8gaussians has NLL 4.25: trained below it */
  printf("\n  maf, 60 steps: test NLL %.4f", nll);
  CU_ASSERT_TRUE(nll < 4.2);
  /* 4 blocks of MADE 2-16-16-4 */
  CU_ASSERT_EQUAL(value_of(last_out, "params"), 4 * (2 * 16 + 16 + 16 * 16 + 16 + 16 * 4 + 4));
  /* the saved model reproduces nothing random: eval twice agrees */
  CU_ASSERT_EQUAL(CNF("sample", "--model", m, "-n", "5", "--out", P("ts.csv")), 0);
  /* resume-free 4-D data from a CSV */
  FILE *fp = fopen(P("d4.csv"), "w");
  fprintf(fp, "a,b,c,d\n");
  for (int i = 0; i < 300; i++)
    fprintf(fp, "%g,%g,%g,%g\n", sin(i * 0.7), cos(i * 1.3) * 2, 0.01 * i, sin(i * 0.7) * 0.5 + 1);
  fclose(fp);
  rc = CNF("train", "--flow", "realnvp", "--data", P("d4.csv"), "--iters", "20", "--hidden", "8",
           "--standardize", "--val", P("d4.csv"), "--out", P("r4.cnf"));
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_TRUE(isfinite(value_of(last_out, "val_nll_best")));
  CU_ASSERT_EQUAL(CNF("plot", "--model", P("r4.cnf"), "--out", P("r4.png"), "-n", "100"), 0);
  CU_ASSERT_TRUE(exists(P("r4.png")));
  /* --flow cnf is the continuous flow */
  CU_ASSERT_EQUAL(CNF("init", "--flow", "cnf", "--dim", "2", "--hidden", "4", "--out", P("c.cnf")),
                  0);
  char *head = read_all(P("c.cnf"), NULL);
  CU_ASSERT_TRUE(head != NULL && starts_with(head, "CNF-MODEL 1 dim=2"));
  free(head);
}

static void test_compare(void) {
  int rc = CNF("compare", "--data", "8gaussians", "--flows", "realnvp,affine,cnf,cnf-ot-fm", "--iters", "3",
               "--hidden", "8", "--cnf-hidden", "8", "--test-n", "200", "--grid", "20", "--out",
               P("cmp"));
  CU_ASSERT_EQUAL(rc, 0);
  size_t rows = 0, len = 0;
  char *csv = read_all(P("cmp.csv"), &len);
  CU_ASSERT_PTR_NOT_NULL_FATAL(csv);
  CU_ASSERT_TRUE(starts_with(csv, "flow,test_nll,params,"));
  for (char *p = csv; *p; p++) rows += *p == '\n';
  CU_ASSERT_EQUAL(rows, 5);
  CU_ASSERT_PTR_NOT_NULL(strstr(csv, "\ncnf-ot-fm,"));
  CU_ASSERT_PTR_NOT_NULL(strstr(csv, "\naffine,"));
  CU_ASSERT_PTR_NOT_NULL(strstr(csv, "\ncnf,"));
  free(csv);
  CU_ASSERT_TRUE(exists(P("cmp.md")) && exists(P("cmp.png")));
  CU_ASSERT_PTR_NOT_NULL(strstr(last_out, "realnvp"));
  CU_ASSERT_EQUAL(count_temporaries(), 0);
}

/* train --objective fm|ot-fm, --init, gradcheck of a stack, compare rows */
static void test_objectives(void) {
  const char *fm = P("fm.cnf"), *mle = P("mle.cnf");
  int rc = CNF("train", "--data", "8gaussians", "--objective", "ot-fm", "--iters", "300", "--batch",
               "128", "--hidden", "32-32", "--lr", "3e-3", "--test-n", "2000", "--out", fm);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  const double nll_fm = value_of(last_out, "test_nll");
  /* no ODE solve while training, T held */
  CU_ASSERT_EQUAL(value_of(last_out, "nfe_forward_mean"), 0.0);
  CU_ASSERT_EQUAL(value_of(last_out, "T1"), 0.5);
  /* then maximum likelihood from its parameters, a fresh optimizer */
  rc = CNF("train", "--data", "8gaussians", "--init", fm, "--iters", "30", "--test-n", "2000",
           "--out", mle);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  const double nll_mle = value_of(last_out, "test_nll");
  CU_ASSERT_EQUAL(value_of(last_out, "iterations"), 30);
  CU_ASSERT_TRUE(value_of(last_out, "nfe_forward_mean") > 5);
  printf("\n  ot-fm 300 steps: test NLL %.4f; then 30 MLE steps: %.4f", nll_fm, nll_mle);
  CU_ASSERT_TRUE(nll_fm < 3.6);                 /* a Gaussian fit is 4.26 */
  CU_ASSERT_TRUE(fabs(nll_mle - nll_fm) < 0.3); /* it continued, not restarted */
  /* flow matching needs a one-block continuous flow */
  rc = CNF("train", "--flow", "maf", "--data", "8gaussians", "--objective", "fm", "--out",
           P("x.cnf"));
  expect_failure("fm on a stack", rc, 2, "train", "flow matching", "maf", P("x.cnf"));
  rc = CNF("train", "--data", "8gaussians", "--resume", fm, "--init", fm, "--out", P("x.cnf"));
  expect_failure("resume and init", rc, 2, "train", "--resume", "--init", P("x.cnf"));
  rc = CNF("train", "--data", "8gaussians", "--objective", "cfm", "--out", P("x.cnf"));
  expect_failure("unknown objective", rc, 2, "train", "--objective", "cfm", P("x.cnf"));
  /* gradcheck of a stack: its reverse sweep against differences */
  CU_ASSERT_EQUAL(CNF("init", "--flow", "realnvp", "--dim", "2", "--hidden", "8", "--out",
                      P("gs.cnf")), 0);
  CU_ASSERT_EQUAL(CNF("toy", "--name", "moons", "-n", "30", "--out", P("gs.csv")), 0);
  CU_ASSERT_EQUAL(CNF("gradcheck", "--model", P("gs.cnf"), "--in", P("gs.csv")), 0);
  CU_ASSERT_TRUE(value_of(last_out, "max_rel_error") < 1e-5);
}

static void test_bad_input(void) {
  int rc = CNF("init", "--flow", "glow", "--dim", "2", "--out", P("g.cnf"));
  expect_failure("unknown flow", rc, 2, "init", "--flow", "glow", P("g.cnf"));
  rc = CNF("train", "--flow", "maf", "--out", P("g.cnf"));
  expect_failure("train without data", rc, 2, "train", "--data", NULL, P("g.cnf"));
  rc = CNF("init", "--flow", "maf", "--dim", "2", "--hidden", "8-x", "--out", P("g.cnf"));
  expect_failure("bad hidden", rc, 2, "init", "hidden", "8-x", P("g.cnf"));
  CU_ASSERT_EQUAL(CNF("init", "--flow", "maf", "--dim", "3", "--out", P("m3.cnf")), 0);
  write_text(P("two.csv"), "a,b\n1,2\n");
  rc = CNF("logp", "--model", P("m3.cnf"), "--in", P("two.csv"), "--out", P("o.csv"));
  expect_failure("wrong dimension", rc, 2, "logp", "two.csv", NULL, P("o.csv"));
  /* a damaged stack model */
  size_t n = 0;
  char *b = read_all(P("m3.cnf"), &n);
  b[n - 3] ^= 1;
  write_bytes(P("bad.cnf"), b, n);
  free(b);
  rc = CNF("eval", "--model", P("bad.cnf"), "--in", P("two.csv"));
  expect_failure("damaged model", rc, 2, "eval", "checksum", NULL, NULL);
  rc = CNF("compare", "--data", "8gaussians", "--flows", "maf,glow");
  expect_failure("unknown flow in compare", rc, 2, "compare", "glow", NULL, NULL);
  CU_ASSERT_EQUAL(CNF("compare", "--help"), 0);
  CU_ASSERT_EQUAL(CNF("train", "--flow", "iaf", "--help"), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(last_out, "--blocks"));
}

int main(void) {
  if (cli_setup("cnf_test_flows_cli") != 0) return 2;
  static const test_entry tests[] = {
      {"every flow: init, sample, logp, eval, plot", test_every_flow},
      {"train --flow", test_train},
      {"compare", test_compare},
      {"objectives: flow matching, --init, gradcheck of a stack", test_objectives},
      {"bad input exits 2", test_bad_input},
      {NULL, NULL},
  };
  static const char *const names[] = {"cnf discrete flows"};
  static const test_entry *const suites[] = {tests};
  int rc = run_suites(names, suites, 1);
  cli_teardown();
  return rc;
}
