/* test_cli.c: the `cnf` command-line tool, end to end.
 *
 * Each test runs the built binary (CNF_CLI_PATH) with posix_spawn, standard
 * output and error redirected to files, in one fresh directory made by
 * mkdtemp and removed at the end.  Checked: the numbers (sample's log p
 * against logp's, Hutchinson against exact, the grid's integral), byte
 * reproducibility for a seed, the exit statuses and messages of every kind
 * of bad input, solver failure, and that a failing command creates no
 * output file, leaves an existing one untouched and no temporary behind.
 *
 * Left out: the library's numerics themselves (tests/cnf, tests/io). */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnf.h"
#include "cli_run.h"
#include "test_util.h"

/* ---- fixtures: made once, on first use ----------------------------------- */

#define NPTS 200

/* m2.cnf: a 2-D flow with the default network; s.csv: 200 samples of it at
 * tight tolerances; x.csv: their x1,x2 columns; m3.cnf: a small 3-D flow. */
static void fixtures(void) {
  static int done = 0;
  if (done) return;
  done = 1;
  CU_ASSERT_FATAL(CNF("init", "--dim", "2", "--seed", "11", "--out", P("m2.cnf")) == 0);
  CU_ASSERT_FATAL(
      CNF("init", "--dim", "3", "--hidden", "8-8", "--seed", "5", "--out", P("m3.cnf")) == 0);
  CU_ASSERT_FATAL(CNF("sample", "--model", P("m2.cnf"), "-n", "200", "--seed", "7", "--rtol",
                      "1e-8", "--atol", "1e-8", "--out", P("s.csv")) == 0);
  size_t rows = 0, cols = 0;
  double *s = read_csv(P("s.csv"), "x1,x2,logp", &rows, &cols);
  CU_ASSERT_FATAL(rows == NPTS && cols == 3);
  FILE *fp = fopen(P("x.csv"), "w");
  CU_ASSERT_FATAL(fp != NULL);
  fprintf(fp, "x1,x2\n");
  for (size_t i = 0; i < rows; i++) fprintf(fp, "%.17g,%.17g\n", s[3 * i], s[3 * i + 1]);
  CU_ASSERT_FATAL(fclose(fp) == 0);
  cnf_free(s);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_help(void) {
  const char *cmds[] = {"init", "logp", "sample", "grid"};
  for (size_t i = 0; i < 4; i++) {
    int rc = CNF(cmds[i], "--help");
    CU_ASSERT_EQUAL(rc, 0);
    char want[64];
    snprintf(want, sizeof want, "usage: cnf %s", cmds[i]);
    CU_ASSERT_TRUE(strncmp(last_out, want, strlen(want)) == 0);
    CU_ASSERT_TRUE(strstr(last_out, "--help") != NULL);
    CU_ASSERT_EQUAL(last_err[0], '\0');
  }
  CU_ASSERT_EQUAL(CNF("--help"), 0);
  CU_ASSERT_TRUE(strstr(last_out, "usage: cnf") != NULL && strstr(last_out, "sample") != NULL);
  CU_ASSERT_EQUAL(CNF("--version"), 0);
  CU_ASSERT_TRUE(strcmp(last_out, "cnf " CNF_VERSION_STRING "\n") == 0);
  /* --help wins over options given after it, not over errors before it */
  CU_ASSERT_EQUAL(CNF("logp", "--help", "--bogus"), 0);
  CU_ASSERT_EQUAL(CNF("logp", "--bogus", "--help"), 2);
  /* no command, unknown command */
  CU_ASSERT_EQUAL(CNF("--threads", "1"), 2);
  CU_ASSERT_EQUAL(CNF("frobnicate"), 2);
  CU_ASSERT_TRUE(strstr(last_err, "cnf: unknown command 'frobnicate'") != NULL);
}

static void test_sample_logp_agree(void) {
  fixtures();
  size_t rows = 0, cols = 0, lrows = 0, lcols = 0;
  double *s = read_csv(P("s.csv"), "x1,x2,logp", &rows, &cols);
  CU_ASSERT_FATAL(rows == NPTS && cols == 3);
  CU_ASSERT_EQUAL(CNF("logp", "--model", P("m2.cnf"), "--in", P("x.csv"), "--rtol", "1e-8",
                      "--atol", "1e-8", "--out", P("lp.csv")),
                  0);
  double *lp = read_csv(P("lp.csv"), "logp", &lrows, &lcols);
  CU_ASSERT_FATAL(lrows == NPTS && lcols == 1);
  double want[NPTS];
  for (size_t i = 0; i < NPTS; i++) want[i] = s[3 * i + 2];
  CU_ASSERT_TRUE(all_finite(s, 3 * NPTS));
  CHECK_CLOSE(lp, want, NPTS, 0.0, 1e-5, "logp of samples vs sample's logp");
  /* the samples are spread out, not a constant */
  double lo = want[0], hi = want[0];
  for (size_t i = 0; i < NPTS; i++) lo = fmin(lo, want[i]), hi = fmax(hi, want[i]);
  CU_ASSERT_TRUE(hi - lo > 1.0);
  /* the same numbers on standard output, byte for byte */
  CU_ASSERT_EQUAL(
      CNF("logp", "--model", P("m2.cnf"), "--in", P("x.csv"), "--rtol", "1e-8", "--atol", "1e-8"),
      0);
  char *file = read_all(P("lp.csv"), NULL);
  CU_ASSERT_TRUE(file != NULL && strcmp(file, last_out) == 0);
  free(file);
  /* and from standard input with "--in -" */
  CU_ASSERT_EQUAL(CNF_STDIN(P("x.csv"), "logp", "--model", P("m2.cnf"), "--in", "-", "--rtol",
                            "1e-8", "--atol", "1e-8"),
                  0);
  file = read_all(P("lp.csv"), NULL);
  CU_ASSERT_TRUE(file != NULL && strcmp(file, last_out) == 0);
  free(file);
  cnf_free(s);
  cnf_free(lp);
}

static void test_sample_seeds(void) {
  fixtures();
  const char *m = P("m2.cnf");
  CU_ASSERT_EQUAL(CNF("sample", "--model", m, "-n", "50", "--seed", "3", "--out", P("a.csv")), 0);
  CU_ASSERT_EQUAL(
      CNF("sample", "--model", m, "--samples", "50", "--seed", "3", "--out", P("b.csv")), 0);
  CU_ASSERT_EQUAL(CNF("sample", "--model", m, "-n", "50", "--seed", "4", "--out", P("c.csv")), 0);
  CU_ASSERT_EQUAL(CNF("sample", "--model", m, "-n", "50", "--seed", "3"), 0);
  size_t na = 0, nb = 0, nc = 0;
  char *a = read_all(P("a.csv"), &na), *b = read_all(P("b.csv"), &nb),
       *c = read_all(P("c.csv"), &nc);
  CU_ASSERT_FATAL(a != NULL && b != NULL && c != NULL);
  CU_ASSERT_TRUE(na == nb && memcmp(a, b, na) == 0);
  CU_ASSERT_TRUE(strcmp(a, last_out) == 0);
  CU_ASSERT_TRUE(na != nc || memcmp(a, c, na) != 0);
  /* every line of c differs from a's: different base samples throughout */
  size_t rows = 0, cols = 0;
  double *da = read_csv(P("a.csv"), "x1,x2,logp", &rows, &cols);
  double *dc = read_csv(P("c.csv"), "x1,x2,logp", &rows, &cols);
  CU_ASSERT_EQUAL(rows, 50);
  size_t same = 0;
  for (size_t i = 0; i < rows; i++) same += da[3 * i] == dc[3 * i];
  CU_ASSERT_EQUAL(same, 0);
  /* the model's seed and the sampling seed are independent: two threads
   * give a valid result too */
  CU_ASSERT_EQUAL(CNF("--threads", "2", "sample", "--model", m, "-n", "50", "--seed", "3"), 0);
  free(a);
  free(b);
  free(c);
  cnf_free(da);
  cnf_free(dc);
}

/* Mean and standard deviation of a - b. */
static void diff_stats(const double *a, const double *b, size_t n, double *mean, double *sd) {
  double s = 0.0, s2 = 0.0;
  for (size_t i = 0; i < n; i++) s += a[i] - b[i];
  *mean = s / (double)n;
  for (size_t i = 0; i < n; i++) s2 += (a[i] - b[i] - *mean) * (a[i] - b[i] - *mean);
  *sd = sqrt(s2 / (double)(n - 1));
}

static void test_logp_hutchinson(void) {
  fixtures();
  const char *m = P("m2.cnf"), *x = P("x.csv");
  CU_ASSERT_EQUAL(CNF("logp", "--model", m, "--in", x, "--rtol", "1e-8", "--atol", "1e-8", "--out",
                      P("ex.csv")),
                  0);
  CU_ASSERT_EQUAL(CNF("logp", "--model", m, "--in", x, "--rtol", "1e-8", "--atol", "1e-8",
                      "--trace", "gauss", "--seed", "1", "--out", P("g1.csv")),
                  0);
  CU_ASSERT_EQUAL(CNF("logp", "--model", m, "--in", x, "--rtol", "1e-8", "--atol", "1e-8",
                      "--trace", "gauss", "--probes", "16", "--seed", "1", "--out", P("g16.csv")),
                  0);
  CU_ASSERT_EQUAL(CNF("logp", "--model", m, "--in", x, "--rtol", "1e-8", "--atol", "1e-8",
                      "--trace", "rademacher", "--seed", "1", "--out", P("r1.csv")),
                  0);
  size_t r = 0, c = 0;
  double *ex = read_csv(P("ex.csv"), "logp", &r, &c);
  CU_ASSERT_FATAL(r == NPTS);
  const char *files[] = {"g1.csv", "g16.csv", "r1.csv"};
  double sd[3];
  for (int k = 0; k < 3; k++) {
    double *h = read_csv(P(files[k]), "logp", &r, &c);
    CU_ASSERT_FATAL(r == NPTS && c == 1);
    CU_ASSERT_TRUE(all_finite(h, NPTS));
    double mean = 0.0;
    diff_stats(h, ex, NPTS, &mean, &sd[k]);
    /* unbiased: the mean difference within 5 standard errors; and a real
     * estimate, not the exact trace in disguise */
    double se = sd[k] / sqrt((double)NPTS);
    CU_ASSERT_TRUE(fabs(mean) <= 5.0 * se + 1e-7);
    CU_ASSERT_TRUE(sd[k] > 1e-6 && sd[k] < 1.0);
    printf("\n  %s: mean(hutchinson - exact) %.3g, sd %.3g, bound %.3g", files[k], mean, sd[k],
           5.0 * se + 1e-7);
    cnf_free(h);
  }
  /* 16 probes: the spread shrinks about 4x */
  CU_ASSERT_TRUE(sd[1] < 0.5 * sd[0]);
  /* the probe seed matters, and is reproducible */
  CU_ASSERT_EQUAL(CNF("logp", "--model", m, "--in", x, "--trace", "gauss", "--seed", "2"), 0);
  char *g2 = strdup(last_out);
  CU_ASSERT_EQUAL(CNF("logp", "--model", m, "--in", x, "--trace", "gauss", "--seed", "2"), 0);
  CU_ASSERT_TRUE(strcmp(g2, last_out) == 0);
  CU_ASSERT_EQUAL(CNF("logp", "--model", m, "--in", x, "--trace", "gauss", "--seed", "3"), 0);
  CU_ASSERT_TRUE(strcmp(g2, last_out) != 0);
  free(g2);
  cnf_free(ex);
}

static void test_bad_csv(void) {
  fixtures();
  static const struct {
    const char *file, *text, *s1, *s2;
  } cases[] = {
      {"text.csv", "x1,x2\n1,2\n3,abc\n", "text.csv:3:2:", "abc"},
      {"ragged.csv", "1,2\n3,4\n5\n", "ragged.csv:3:", "ragged"},
      {"empty.csv", "", "empty.csv", "empty"},
      {"header.csv", "x1,x2\n", "header.csv", "no data rows"},
      {"nan.csv", "x1,x2\n1,2\nnan,3\n", "nan.csv:3:1:", "NaN"},
      {"inf.csv", "1,2\n3,-inf\n", "inf.csv:2:2:", "Inf"},
      {"cols.csv", "1,2,3\n4,5,6\n", "cols.csv:1: 3 columns", "expected 2 (the model's dimension)"},
      {"cols1.csv", "x\n1\n2\n", "cols1.csv:1: 1 column,", "expected 2 (the model's dimension)"},
      {"blank.csv", "1,2\n\n3,4\n", "blank.csv:2:", "empty line"},
      {"field.csv", "1,2\n3,\n", "field.csv:2:2:", "empty field"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    write_text(P(cases[i].file), cases[i].text);
    int rc = CNF("logp", "--model", P("m2.cnf"), "--in", P(cases[i].file), "--out", P("o.csv"));
    expect_failure(cases[i].file, rc, 2, "logp", cases[i].s1, cases[i].s2, P("o.csv"));
  }
  /* binary data */
  write_bytes(P("nul.csv"), "1,2\n\0\0\n", 7);
  int rc = CNF("logp", "--model", P("m2.cnf"), "--in", P("nul.csv"), "--out", P("o.csv"));
  expect_failure("nul.csv", rc, 2, "logp", "nul.csv", "NUL", P("o.csv"));
  /* a missing input file */
  rc = CNF("logp", "--model", P("m2.cnf"), "--in", P("missing.csv"), "--out", P("o.csv"));
  expect_failure("missing.csv", rc, 2, "logp", "missing.csv", "cannot open", P("o.csv"));
  /* the same file through standard input is named <stdin> */
  rc = CNF_STDIN(P("cols.csv"), "logp", "--model", P("m2.cnf"), "--in", "-");
  expect_failure("stdin", rc, 2, "logp", "<stdin>:1: 3 columns", "expected 2 (the model's dimension)", NULL);
  CU_ASSERT_EQUAL(last_out[0], '\0');
}

static void test_bad_model(void) {
  fixtures();
  size_t n = 0;
  char *good = read_all(P("m2.cnf"), &n);
  CU_ASSERT_FATAL(good != NULL && n > 1000);
  const size_t hl = (size_t)(strchr(good, '\n') - good) + 1;
  char *bad = malloc(n + 16);
  CU_ASSERT_FATAL(bad != NULL);

  /* truncated in the parameters, and inside the header */
  write_bytes(P("trunc.cnf"), good, n - 100);
  write_bytes(P("trunc_head.cnf"), good, 20);
  /* one flipped bit in a parameter, and in the end time */
  memcpy(bad, good, n);
  bad[hl + 8 + 8 * 100 + 3] ^= 0x10;
  write_bytes(P("flip.cnf"), bad, n);
  memcpy(bad, good, n);
  bad[hl + 7] ^= 0x01;
  write_bytes(P("flipT.cnf"), bad, n);
  /* bad magic */
  memcpy(bad, good, n);
  memcpy(bad, "CNF-MODXL", 9);
  write_bytes(P("magic.cnf"), bad, n);
  /* version 999 */
  CU_ASSERT_FATAL(strncmp(good, "CNF-MODEL 1 ", 12) == 0);
  memcpy(bad, "CNF-MODEL 999 ", 14);
  memcpy(bad + 14, good + 12, n - 12);
  write_bytes(P("v999.cnf"), bad, n + 2);
  /* trailing garbage, an empty file, a CSV given as a model */
  memcpy(bad, good, n);
  memcpy(bad + n, "extra", 5);
  write_bytes(P("long.cnf"), bad, n + 5);
  write_bytes(P("empty.cnf"), "", 0);

  static const struct {
    const char *file, *s2;
  } cases[] = {
      {"trunc.cnf", "truncated"},       {"trunc_head.cnf", "not a cnf model"},
      {"flip.cnf", "damaged"},          {"flipT.cnf", "damaged"},
      {"magic.cnf", "not a cnf model"}, {"v999.cnf", "version 999"},
      {"long.cnf", "unexpected bytes"}, {"empty.cnf", "not a cnf model"},
      {"x.csv", "not a cnf model"},     {"nomodel.cnf", "cannot open"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int rc = CNF("logp", "--model", P(cases[i].file), "--in", P("x.csv"), "--out", P("o.csv"));
    expect_failure(cases[i].file, rc, 2, "logp", P(cases[i].file), cases[i].s2, P("o.csv"));
  }
  /* sample and grid load models the same way */
  int rc = CNF("sample", "--model", P("flip.cnf"), "-n", "5", "--out", P("o.csv"));
  expect_failure("sample flip.cnf", rc, 2, "sample", "flip.cnf", "damaged", P("o.csv"));
  rc = CNF("grid", "--model", P("v999.cnf"), "--out", P("o.csv"));
  expect_failure("grid v999.cnf", rc, 2, "grid", "v999.cnf", "version", P("o.csv"));
  /* the intact file still loads */
  CU_ASSERT_EQUAL(CNF("logp", "--model", P("m2.cnf"), "--in", P("x.csv")), 0);
  free(good);
  free(bad);
}

static void test_bad_options(void) {
  fixtures();
  const char *m = P("m2.cnf"), *x = P("x.csv"), *o = P("o.csv");
  static const struct {
    const char *args[12];
    const char *s1, *s2;
  } cases[] = {
      {{"logp", "--model", "M", "--in", "X", "--bogus", "--out", "O"},
       "unknown option '--bogus'",
       NULL},
      {{"logp", "--in", "X", "--out", "O"}, "missing required option --model", NULL},
      {{"logp", "--model", "M", "--out", "O"}, "missing required option --in", NULL},
      {{"logp", "--model", "M", "--in", "X", "--rtol", "abc", "--out", "O"}, "--rtol", "'abc'"},
      {{"logp", "--model", "M", "--in", "X", "--rtol", "1e-5x", "--out", "O"}, "--rtol", "'1e-5x'"},
      {{"logp", "--model", "M", "--in", "X", "--rtol", "-1", "--out", "O"}, "--rtol", "'-1'"},
      {{"logp", "--model", "M", "--in", "X", "--rtol", "0", "--out", "O"}, "--rtol", "positive"},
      {{"logp", "--model", "M", "--in", "X", "--atol", "inf", "--out", "O"}, "--atol", "'inf'"},
      {{"logp", "--model", "M", "--in", "X", "--atol", "", "--out", "O"}, "--atol", NULL},
      {{"logp", "--model", "M", "--in", "X", "--probes", "0", "--out", "O"}, "--probes", "'0'"},
      {{"logp", "--model", "M", "--in", "X", "--max-steps", "-3", "--out", "O"},
       "--max-steps",
       "'-3'"},
      {{"logp", "--model", "M", "--in", "X", "--max-steps", "99999999999999999999999", "--out",
        "O"},
       "--max-steps",
       NULL},
      {{"logp", "--model", "M", "--in", "X", "--batch", "0", "--out", "O"}, "--batch", "'0'"},
      {{"logp", "--model", "M", "--in", "X", "--trace", "hutch", "--out", "O"},
       "--trace",
       "'hutch'"},
      {{"logp", "--model", "M", "--in", "X", "--method", "rk4", "--out", "O"}, "--method", "'rk4'"},
      {{"logp", "--model", "M", "--in", "X", "--seed", "-1", "--out", "O"}, "--seed", "'-1'"},
      {{"logp", "--model", "M", "--in", "X", "--rtol", "1e-6", "--rtol", "1e-7", "--out", "O"},
       "--rtol given more than once",
       NULL},
      {{"logp", "--model", "M", "--in", "X", "--verbose=yes", "--out", "O"},
       "--verbose takes no value",
       NULL},
      {{"logp", "--model", "M", "--in", "X", "--out", "O", "extra"},
       "unexpected argument 'extra'",
       NULL},
      {{"logp", "--model", "M", "--in", "X", "--out", "O", "--rtol"}, "--rtol needs a value", NULL},
      {{"logp", "--model", "M", "--in", "--out", "O"}, "--in needs a value", NULL},
      {{"logp", "--model", "M", "--in", "X", "--threads", "0", "--out", "O"}, "--threads", "'0'"},
      {{"sample", "--model", "M", "-n", "0", "--out", "O"}, "-n", "'0'"},
      {{"sample", "--model", "M", "--out", "O"}, "missing required option -n", NULL},
      {{"sample", "--model", "M", "-n", "1e3", "--out", "O"}, "-n: ", "'1e3'"},
      {{"sample", "--model", "M", "-n", "99999999999", "--out", "O"}, "too large", NULL},
      {{"grid", "--model", "M", "--size", "1", "--out", "O"}, "--size", "'1'"},
      {{"grid", "--model", "M", "--range", "-4", "--out", "O"}, "--range", "'-4'"},
      {{"grid", "--model", "M", "--range", "1e300", "--out", "O"}, "--range", "1e150"},
      {{"init", "--dim", "0", "--out", "O"}, "--dim", "'0'"},
      {{"init", "--dim", "2.5", "--out", "O"}, "--dim", "'2.5'"},
      {{"init", "--out", "O"}, "missing required option --dim", NULL},
      {{"init", "--dim", "2"}, "missing required option --out", NULL},
      {{"init", "--dim", "2", "--hidden", "64-x", "--out", "O"}, "hidden", "'64-x'"},
      {{"init", "--dim", "2", "--hidden", "64--64", "--out", "O"}, "hidden", NULL},
      {{"init", "--dim", "2", "--layer", "dense", "--out", "O"}, "--layer", "'dense'"},
      {{"init", "--dim", "2", "--act", "relu", "--out", "O"}, "--act", "'relu'"},
      {{"init", "--dim", "2", "--time", "0", "--out", "O"}, "--time", "'0'"},
      {{"init", "--dim", "2", "--blocks", "0", "--out", "O"}, "--blocks", "'0'"},
      {{"init", "--dim", "2", "--hidden", "100000-100000-100000", "--out", "O"}, "too large", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *args[16];
    size_t k = 0;
    char label[256] = "";
    for (; cases[i].args[k] != NULL; k++) {
      const char *w = cases[i].args[k];
      args[k] = strcmp(w, "M") == 0 ? m : strcmp(w, "X") == 0 ? x : strcmp(w, "O") == 0 ? o : w;
      strncat(label, w, sizeof label - strlen(label) - 2);
      strcat(label, " ");
    }
    args[k] = NULL;
    int rc = run_argv(NULL, args);
    expect_failure(label, rc, 2, cases[i].args[0], cases[i].s1, cases[i].s2, o);
  }
  /* global options */
  int rc = CNF("--threads", "x", "logp", "--model", m, "--in", x);
  CU_ASSERT_EQUAL(rc, 2);
  CU_ASSERT_TRUE(strstr(last_err, "cnf: --threads") != NULL);
  rc = CNF("--frob", "logp");
  CU_ASSERT_EQUAL(rc, 2);
  CU_ASSERT_TRUE(strstr(last_err, "cnf: unknown option '--frob'") != NULL);
  /* accepted forms: --name=value, a global --threads */
  rc = CNF("--threads=1", "logp", "--model=", "--in", x);
  CU_ASSERT_EQUAL(rc, 2);
  char mo[600];
  snprintf(mo, sizeof mo, "--model=%s", m);
  CU_ASSERT_EQUAL(CNF("--threads=1", "logp", mo, "--in", x, "--rtol=1e-6", "--out", o), 0);
  CU_ASSERT_TRUE(exists(o));
  unlink(o);
}

static void test_solver_failure(void) {
  fixtures();
  const char *m = P("m2.cnf"), *x = P("x.csv"), *o = P("keep.csv");
  const char *keep = "this file must survive\n";
  write_text(o, keep);
  const char *cmds[][12] = {
      {"logp", "--model", m, "--in", x, "--max-steps", "3", "--out", o},
      {"sample", "--model", m, "-n", "20", "--max-steps", "3", "--out", o},
      {"grid", "--model", m, "--size", "5", "--max-steps", "3", "--out", o},
      {"logp", "--model", m, "--in", x, "--max-steps", "3", "--method", "bdf", "--out", o},
  };
  for (size_t i = 0; i < 4; i++) {
    int rc = run_argv(NULL, cmds[i]);
    expect_failure(cmds[i][0], rc, 3, cmds[i][0], "CV_TOO_MUCH_WORK", "steps", NULL);
    char *now = read_all(o, NULL);
    CU_ASSERT_TRUE(now != NULL && strcmp(now, keep) == 0);
    free(now);
  }
  /* nothing on standard output either */
  int rc = CNF("logp", "--model", m, "--in", x, "--max-steps", "3");
  expect_failure("stdout", rc, 3, "logp", "CV_TOO_MUCH_WORK", NULL, NULL);
  CU_ASSERT_EQUAL(last_out[0], '\0');
  /* and with --verbose the statistics still come out */
  rc =
      CNF("logp", "--model", m, "--in", x, "--max-steps", "3", "--verbose", "--out", P("none.csv"));
  CU_ASSERT_EQUAL(rc, 3);
  CU_ASSERT_TRUE(strstr(last_err, "\nnsteps ") != NULL);
  CU_ASSERT_FALSE(exists(P("none.csv")));
}

static void test_output_failure(void) {
  fixtures();
  const char *o = P("no/such/dir/out.csv");
  int rc = CNF("logp", "--model", P("m2.cnf"), "--in", P("x.csv"), "--out", o);
  expect_failure("logp unwritable", rc, 1, "logp", "no/such/dir/out.csv", NULL, NULL);
  rc = CNF("init", "--dim", "2", "--out", P("no/such/dir/m.cnf"));
  expect_failure("init unwritable", rc, 1, "init", "no/such/dir/m.cnf", NULL, NULL);
  /* a directory in the way */
  rc = CNF("sample", "--model", P("m2.cnf"), "-n", "3", "--out", tmpdir);
  expect_failure("sample onto a directory", rc, 1, "sample", tmpdir, NULL, NULL);
}

static void test_verbose(void) {
  fixtures();
  CU_ASSERT_EQUAL(
      CNF("logp", "--model", P("m2.cnf"), "--in", P("x.csv"), "--verbose", "--out", P("v.csv")), 0);
  const char *names[] = {"solves", "nfe",          "nsteps", "netf", "nni",    "nncf", "njtv",
                         "nli",    "wall_seconds", "rtol",   "atol", "method", "trace"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    char key[64];
    snprintf(key, sizeof key, "\n%s ", names[i]);
    CU_ASSERT_TRUE(strstr(last_err, key) != NULL);
  }
  const char *p = strstr(last_err, "\nnfe ");
  CU_ASSERT_TRUE(p != NULL && atol(p + 5) > 10);
  /* every line is "name value" */
  int ok = 1;
  for (const char *line = last_err; *line;) {
    const char *eol = strchr(line, '\n');
    size_t len = eol ? (size_t)(eol - line) : strlen(line);
    const char *sp = memchr(line, ' ', len);
    if (sp == NULL || memchr(sp + 1, ' ', len - (size_t)(sp - line) - 1) != NULL) ok = 0;
    line += len + (eol != NULL);
  }
  CU_ASSERT_TRUE(ok);
  /* without --verbose, silence */
  CU_ASSERT_EQUAL(CNF("logp", "--model", P("m2.cnf"), "--in", P("x.csv"), "--out", P("v.csv")), 0);
  CU_ASSERT_EQUAL(last_err[0], '\0');
  CU_ASSERT_EQUAL(last_out[0], '\0');
}

static void test_grid(void) {
  fixtures();
  const size_t G = 41;
  const double L = 5.0;
  CU_ASSERT_EQUAL(
      CNF("grid", "--model", P("m2.cnf"), "--size", "41", "--range", "5", "--out", P("grid.csv")),
      0);
  size_t rows = 0, cols = 0;
  double *g = read_csv(P("grid.csv"), "x1,x2,logp", &rows, &cols);
  CU_ASSERT_FATAL(rows == G * G && cols == 3);
  CU_ASSERT_TRUE(all_finite(g, rows * cols));
  /* layout: x1 fastest, exact corners */
  CU_ASSERT_EQUAL(g[0], -L);
  CU_ASSERT_EQUAL(g[1], -L);
  CU_ASSERT_EQUAL(g[3 * (G - 1)], L);
  CU_ASSERT_EQUAL(g[3 * (G - 1) + 1], -L);
  CU_ASSERT_EQUAL(g[3 * G + 1], -L + 2.0 * L / (double)(G - 1));
  CU_ASSERT_EQUAL(g[3 * (G * G - 1)], L);
  CU_ASSERT_EQUAL(g[3 * (G * G - 1) + 1], L);
  /* a density: the trapezoidal integral over [-5, 5]^2 is 1 */
  const double h = 2.0 * L / (double)(G - 1);
  double integral = 0.0;
  for (size_t j = 0; j < G; j++)
    for (size_t i = 0; i < G; i++) {
      double w = (i == 0 || i == G - 1 ? 0.5 : 1.0) * (j == 0 || j == G - 1 ? 0.5 : 1.0);
      integral += w * exp(g[3 * (j * G + i) + 2]) * h * h;
    }
  printf("\n  integral of exp(logp) over [-5, 5]^2: %.6f", integral);
  CHECK_NEAR(integral, 1.0, 0.01);
  /* the grid's log p is logp's log p at the same points */
  FILE *fp = fopen(P("gx.csv"), "w");
  CU_ASSERT_FATAL(fp != NULL);
  for (size_t b = 0; b < rows; b += 97) fprintf(fp, "%.17g,%.17g\n", g[3 * b], g[3 * b + 1]);
  CU_ASSERT_FATAL(fclose(fp) == 0);
  CU_ASSERT_EQUAL(CNF("logp", "--model", P("m2.cnf"), "--in", P("gx.csv"), "--rtol", "1e-9",
                      "--atol", "1e-9", "--out", P("gl.csv")),
                  0);
  size_t nr = 0, nc = 0;
  double *gl = read_csv(P("gl.csv"), "logp", &nr, &nc);
  double want[64];
  size_t k = 0;
  for (size_t b = 0; b < rows && k < 64; b += 97) want[k++] = g[3 * b + 2];
  CU_ASSERT_EQUAL(nr, k);
  CHECK_CLOSE(gl, want, k, 1e-3, 1e-3, "grid logp vs logp");
  /* the default size is 100 x 100 */
  CU_ASSERT_EQUAL(CNF("grid", "--model", P("m2.cnf"), "--out", P("grid100.csv")), 0);
  double *g100 = read_csv(P("grid100.csv"), "x1,x2,logp", &nr, &nc);
  CU_ASSERT_EQUAL(nr, 100 * 100);
  CU_ASSERT_EQUAL(g100[0], -4.0);
  /* a 3-D model: a clear error, no output */
  int rc = CNF("grid", "--model", P("m3.cnf"), "--size", "5", "--out", P("g3.csv"));
  expect_failure("grid 3-D", rc, 2, "grid", "m3.cnf", "dimension 3", P("g3.csv"));
  cnf_free(g);
  cnf_free(gl);
  cnf_free(g100);
}

static void test_init_options(void) {
  fixtures();
  CU_ASSERT_EQUAL(
      CNF("init", "--dim", "3", "--hidden", "8-6", "--layer", "concat", "--act", "softplus",
          "--blocks", "2", "--time", "0.25", "--seed", "9", "--out", P("opt.cnf")),
      0);
  char *text = read_all(P("opt.cnf"), NULL);
  CU_ASSERT_FATAL(text != NULL);
  CU_ASSERT_TRUE(
      starts_with(text, "CNF-MODEL 1 dim=3 blocks=2 hidden=8-6 layer=concat act=softplus "));
  free(text);
  /* the same seed, the same file; another seed, other parameters */
  CU_ASSERT_EQUAL(
      CNF("init", "--dim", "3", "--hidden", "8-6", "--layer", "concat", "--act", "softplus",
          "--blocks", "2", "--time", "0.25", "--seed", "9", "--out", P("opt2.cnf")),
      0);
  size_t n1 = 0, n2 = 0;
  char *a = read_all(P("opt.cnf"), &n1), *b = read_all(P("opt2.cnf"), &n2);
  CU_ASSERT_TRUE(a && b && n1 == n2 && memcmp(a, b, n1) == 0);
  free(a);
  free(b);
  /* the model works end to end: 3 columns in, logp out */
  write_text(P("x3.csv"), "0.1,0.2,0.3\n-1,0.5,2\n");
  CU_ASSERT_EQUAL(CNF("logp", "--model", P("opt.cnf"), "--in", P("x3.csv")), 0);
  CU_ASSERT_TRUE(starts_with(last_out, "logp\n"));
  CU_ASSERT_EQUAL(CNF("sample", "--model", P("opt.cnf"), "-n", "4"), 0);
  CU_ASSERT_TRUE(starts_with(last_out, "x1,x2,x3,logp\n"));
  /* defaults: 64-64-64 concatsquash tanh, one block, T = 0.5 */
  CU_ASSERT_EQUAL(CNF("init", "--dim", "2", "--out", P("def.cnf")), 0);
  text = read_all(P("def.cnf"), NULL);
  CU_ASSERT_TRUE(
      starts_with(text, "CNF-MODEL 1 dim=2 blocks=1 hidden=64-64-64 layer=concatsquash act=tanh "));
  /* T = 0.5 is the first double after the header */
  if (text) {
    double T = 0.0;
    memcpy(&T, strchr(text, '\n') + 1, sizeof T);
    CU_ASSERT_EQUAL(T, 0.5);
  }
  free(text);
  /* an existing file is replaced */
  write_text(P("over.cnf"), "old");
  CU_ASSERT_EQUAL(CNF("init", "--dim", "2", "--hidden", "4", "--out", P("over.cnf")), 0);
  text = read_all(P("over.cnf"), NULL);
  CU_ASSERT_TRUE(starts_with(text, "CNF-MODEL 1 dim=2 "));
  free(text);
}

/* ---- runner --------------------------------------------------------------- */

int main(void) {
  if (cli_setup("cnf_test_cli") != 0) return 1;
  static const test_entry tests[] = {{"help and version", test_help},
                                     {"sample then logp agree to 1e-5", test_sample_logp_agree},
                                     {"sample seeds", test_sample_seeds},
                                     {"Hutchinson logp", test_logp_hutchinson},
                                     {"bad CSV input", test_bad_csv},
                                     {"bad model files", test_bad_model},
                                     {"bad options", test_bad_options},
                                     {"solver failure", test_solver_failure},
                                     {"output failure", test_output_failure},
                                     {"verbose statistics", test_verbose},
                                     {"grid", test_grid},
                                     {"init options", test_init_options},
                                     {NULL, NULL}};
  const char *const names[] = {"cli"};
  const test_entry *const all[] = {tests};
  int rc = run_suites(names, all, 1);
  cli_teardown();
  return rc;
}
