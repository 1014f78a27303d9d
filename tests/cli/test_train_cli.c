/* test_train_cli.c: the training commands of the `cnf` tool, end to end:
 * toy, train, eval, gradcheck, plot.
 *
 * As in test_cli.c, each test runs the built binary (CNF_CLI_PATH) with
 * posix_spawn, standard output and error redirected to files, in one fresh
 * directory made by mkdtemp and removed at the end.  Networks are small
 * (16-16 or 8-8) and runs short (20 to 60 steps), so the suite takes
 * seconds.  Checked: the summary lines of train and that training lowers
 * the NLL; resumed runs reproduce uninterrupted ones byte for byte (exact
 * and Hutchinson traces, both adjoints, file data); validation keeps the
 * best model; standardization is folded into the densities; bad input,
 * solver failure and Ctrl-C leave a usable model (or the previous one) on
 * disk with the documented exit statuses; eval's output; gradcheck's
 * verdict; the PNG files of plot.
 *
 * Left out: the library's training and adjoint numerics themselves
 * (tests/train, tests/adjoint). */
#define _XOPEN_SOURCE 700
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "cnf.h"
#include "cli_run.h"
#include "test_util.h"

/* ---- helpers ------------------------------------------------------------ */

/* Wall time of a test, printed at its end. */
static double t_start;
static void timer_start(void) { t_start = now(); }
static void timer_report(void) { printf("\n  [%.2f s]", now() - t_start); }



/* The value of " key=" in the header line of a model file; -1 if absent. */
static long header_long(const char *path, const char *key) {
  char *text = read_all(path, NULL);
  if (text == NULL) return -1;
  char *nl = strchr(text, '\n');
  if (nl) *nl = '\0';
  char pat[64];
  snprintf(pat, sizeof pat, " %s=", key);
  char *p = strstr(text, pat);
  long v = p ? strtol(p + strlen(pat), NULL, 10) : -1;
  free(text);
  return v;
}

/* 1 if the header line of a model file contains the word w. */
static int header_has(const char *path, const char *w) {
  char *text = read_all(path, NULL);
  if (text == NULL) return 0;
  char *nl = strchr(text, '\n');
  if (nl) *nl = '\0';
  char pat[128];
  snprintf(pat, sizeof pat, " %s ", w);
  int has = strstr(text, pat) != NULL;
  free(text);
  return has;
}

/* cnf eval of a model on a CSV file: the exit status, nll in *nll. */
static int eval_nll(const char *model, const char *in, double *nll) {
  int rc = CNF("eval", "--model", model, "--in", in);
  *nll = value_of(last_out, "nll");
  if (rc != 0 || !isfinite(*nll))
    printf("\n  cnf eval --model %s --in %s: exit %d, stdout '%s', stderr '%s'\n", model, in, rc,
           last_out, last_err);
  return rc;
}

static unsigned long be32(const unsigned char *b) {
  return (unsigned long)b[0] << 24 | (unsigned long)b[1] << 16 | (unsigned long)b[2] << 8 | b[3];
}

/* A PNG file's IHDR width and height; 0 (and a message) if the file is not
 * a PNG. */
static int png_size(const char *path, unsigned long *w, unsigned long *h) {
  size_t n = 0;
  unsigned char *b = (unsigned char *)read_all(path, &n);
  static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  int ok = b != NULL && n > 33 && memcmp(b, sig, 8) == 0 && be32(b + 8) == 13 &&
           memcmp(b + 12, "IHDR", 4) == 0;
  if (ok) {
    *w = be32(b + 16);
    *h = be32(b + 20);
  } else {
    printf("\n  %s: not a PNG file (%zu bytes)\n", path, n);
  }
  free(b);
  return ok;
}

/* ---- fixtures: made once, on first use ----------------------------------- */

/* D.csv: 1000 moons rows (training), V.csv: 300 (validation), both with a
 * header x1,x2; m3.cnf: a small 3-D flow. */
static void fixtures(void) {
  static int done = 0;
  if (done) return;
  done = 1;
  CU_ASSERT_FATAL(CNF("toy", "--name", "moons", "-n", "1000", "--seed", "6", "--out", P("D.csv")) ==
                  0);
  CU_ASSERT_FATAL(CNF("toy", "--name", "moons", "-n", "300", "--seed", "5", "--out", P("V.csv")) ==
                  0);
  CU_ASSERT_FATAL(CNF("init", "--dim", "3", "--hidden", "8-8", "--seed", "5", "--out",
                      P("m3.cnf")) == 0);
}

/* ---- tests ----------------------------------------------------------------- */

static void test_help(void) {
  timer_start();
  const char *cmds[] = {"train", "eval", "gradcheck", "plot", "toy"};
  for (size_t i = 0; i < 5; i++) {
    int rc = CNF(cmds[i], "--help");
    CU_ASSERT_EQUAL(rc, 0);
    char want[64];
    snprintf(want, sizeof want, "usage: cnf %s", cmds[i]);
    int ok = strncmp(last_out, want, strlen(want)) == 0 && strstr(last_out, "--help") != NULL &&
             last_err[0] == '\0';
    CU_ASSERT_TRUE(ok);
    if (!ok) printf("\n  cnf %s --help: stdout '%.200s', stderr '%s'\n", cmds[i], last_out, last_err);
    CU_ASSERT_EQUAL(CNF(cmds[i], "-h"), 0);
    /* the global help lists the command */
    CU_ASSERT_EQUAL(CNF("--help"), 0);
    snprintf(want, sizeof want, "\n  %s ", cmds[i]);
    CU_ASSERT_TRUE(strstr(last_out, want) != NULL);
  }
  timer_report();
}

static void test_toy(void) {
  timer_start();
  const char *const *names = cnf_toy_names();
  size_t count = 0;
  for (; names[count] != NULL; count++) {
    const char *name = names[count];
    char f1[128], f2[128], f3[128];
    snprintf(f1, sizeof f1, "toy_%s_a.csv", name);
    snprintf(f2, sizeof f2, "toy_%s_b.csv", name);
    snprintf(f3, sizeof f3, "toy_%s_c.csv", name);
    CU_ASSERT_EQUAL(CNF("toy", "--name", name, "-n", "500", "--seed", "4", "--out", P(f1)), 0);
    CU_ASSERT_EQUAL(CNF("toy", "--name", name, "--samples", "500", "--seed", "4", "--out", P(f2)),
                    0);
    CU_ASSERT_EQUAL(CNF("toy", "--name", name, "-n", "500", "--seed", "5", "--out", P(f3)), 0);
    char *text = read_all(P(f1), NULL);
    CU_ASSERT_TRUE(text != NULL && strncmp(text, "x1,x2\n", 6) == 0);
    free(text);
    size_t rows = 0, cols = 0;
    double *x = read_csv(P(f1), NULL, &rows, &cols);
    CU_ASSERT_TRUE(rows == 500 && cols == 2 && all_finite(x, rows * cols));
    /* a spread of points, not one repeated */
    double lo[2] = {x[0], x[1]}, hi[2] = {x[0], x[1]};
    for (size_t i = 0; i < rows; i++)
      for (int j = 0; j < 2; j++) lo[j] = fmin(lo[j], x[2 * i + j]), hi[j] = fmax(hi[j], x[2 * i + j]);
    int spread = hi[0] - lo[0] > 0.5 && hi[1] - lo[1] > 0.05;
    CU_ASSERT_TRUE(spread);
    if (!spread)
      printf("\n  toy %s: x1 in [%g, %g], x2 in [%g, %g]\n", name, lo[0], hi[0], lo[1], hi[1]);
    cnf_free(x);
    /* the same seed, the same bytes; another seed, another file */
    CU_ASSERT_TRUE(same_file(P(f1), P(f2)));
    CU_ASSERT_FALSE(same_file(P(f1), P(f3)));
  }
  CU_ASSERT_EQUAL(count, 10);
  /* standard output without --out?  --out is required */
  CU_ASSERT_EQUAL(CNF("toy", "--name", "moons", "-n", "5"), 2);
  /* an unknown name: status 2, every name listed, no file */
  int rc = CNF("toy", "--name", "spirals3", "-n", "10", "--out", P("toy_bad.csv"));
  expect_failure("toy spirals3", rc, 2, "toy", "'spirals3'", NULL, NULL);
  for (size_t i = 0; i < count; i++) CU_ASSERT_TRUE(strstr(last_err, names[i]) != NULL);
  CU_ASSERT_FALSE(exists(P("toy_bad.csv")));
  rc = CNF("toy", "--name", "moons", "-n", "0", "--out", P("toy_bad.csv"));
  expect_failure("toy -n 0", rc, 2, "toy", "-n", "'0'", NULL);
  CU_ASSERT_FALSE(exists(P("toy_bad.csv")));
  timer_report();
}

/* 8gaussians, 60 steps: the summary lines, the model header, and a test
 * NLL below the untrained flow's. */
static void test_train_basic(void) {
  timer_start();
  int rc = CNF("train", "--data", "8gaussians", "--hidden", "16-16", "--iters", "60", "--test-n",
               "2000", "--out", P("m.cnf"));
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  printf("\n  train stdout:\n%s", last_out);
  CU_ASSERT_EQUAL(value_of(last_out, "iterations"), 60);
  CU_ASSERT_EQUAL(value_of(last_out, "steps_this_run"), 60);
  CU_ASSERT_EQUAL(value_of(last_out, "failed_steps"), 0);
  const double spi = value_of(last_out, "seconds_per_iter");
  const double nfe_f = value_of(last_out, "nfe_forward_mean");
  const double nfe_b = value_of(last_out, "nfe_backward_mean");
  const double T1 = value_of(last_out, "T1");
  const double test_nll = value_of(last_out, "test_nll");
  CU_ASSERT_TRUE(spi > 0 && spi < 10);
  CU_ASSERT_TRUE(nfe_f >= 2 && nfe_f < 20000);
  CU_ASSERT_TRUE(nfe_b >= 2 && nfe_b < 20000);
  CU_ASSERT_TRUE(T1 > 0 && T1 != 0.5); /* T is learned by default */
  CU_ASSERT_TRUE(isfinite(test_nll));
  CU_ASSERT_TRUE(isnan(value_of(last_out, "val_nll_best")));
  /* progress on stderr: a log line at the last step (not a terminal) */
  CU_ASSERT_TRUE(strstr(last_err, "iter 60/60 ") != NULL);
  /* the model: the optimizer state, no standardization, no .last file */
  CU_ASSERT_EQUAL(header_long(P("m.cnf"), "iter"), 60);
  CU_ASSERT_EQUAL(header_long(P("m.cnf"), "seed"), 0);
  CU_ASSERT_TRUE(header_has(P("m.cnf"), "train=1"));
  CU_ASSERT_FALSE(header_has(P("m.cnf"), "std=1"));
  CU_ASSERT_FALSE(exists(P("m.cnf.last")));
  CU_ASSERT_EQUAL(count_temporaries(), 0);
  /* the untrained flow (the same seed and network) on fresh points of the
   * same density: worse than the trained one, and worse than test_nll */
  CU_ASSERT_EQUAL(CNF("init", "--dim", "2", "--hidden", "16-16", "--out", P("m0.cnf")), 0);
  CU_ASSERT_EQUAL(
      CNF("toy", "--name", "8gaussians", "-n", "2000", "--seed", "99", "--out", P("t.csv")), 0);
  double nll0 = NAN, nll1 = NAN;
  CU_ASSERT_EQUAL(eval_nll(P("m0.cnf"), P("t.csv"), &nll0), 0);
  CU_ASSERT_EQUAL(eval_nll(P("m.cnf"), P("t.csv"), &nll1), 0);
  printf("  untrained nll %.6f, trained %.6f, train's test_nll %.6f\n", nll0, nll1, test_nll);
  CU_ASSERT_TRUE(test_nll < nll0);
  CU_ASSERT_TRUE(nll1 < nll0);
  /* test_nll is an NLL of the same density: close to eval's on other points */
  CHECK_NEAR(test_nll, nll1, 0.15);
  timer_report();
}

/* RNODE: the log lines split the loss into its parts, loss = nll +
 * 0.5 kinetic + 0.25 jacobian, and the summary reports their means. */
static void test_rnode(void) {
  timer_start();
  int rc = CNF("train", "--data", "8gaussians", "--hidden", "16-16", "--iters", "20",
               "--log-every", "5", "--reg-kinetic", "0.5", "--reg-jacobian", "0.25", "--out",
               P("rn.cnf"));
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  int lines = 0;
  for (const char *p = last_err; (p = strstr(p, "iter ")) != NULL; p++) {
    long k = 0, n = 0;
    double loss, avg, nll, kin, jac;
    if (sscanf(p, "iter %ld/%ld loss %lf avg %lf nll %lf kinetic %lf jacobian %lf", &k, &n, &loss,
               &avg, &nll, &kin, &jac) != 7)
      continue;
    lines++;
    CU_ASSERT_TRUE(kin > 0 && jac > 0);
    CHECK_NEAR(loss, nll + 0.5 * kin + 0.25 * jac, 1e-5 * (1.0 + fabs(loss)));
  }
  CU_ASSERT_EQUAL(lines, 4);
  CU_ASSERT_TRUE(value_of(last_out, "kinetic_mean") > 0);
  CU_ASSERT_TRUE(value_of(last_out, "jacobian_mean") > 0);
  /* without the regularisers, neither the parts nor the means */
  CU_ASSERT_EQUAL(CNF("train", "--data", "8gaussians", "--hidden", "16-16", "--iters", "5",
                      "--out", P("rn0.cnf")),
                  0);
  CU_ASSERT_PTR_NULL(strstr(last_err, "kinetic"));
  CU_ASSERT_TRUE(isnan(value_of(last_out, "kinetic_mean")));
  CU_ASSERT_NOT_EQUAL(CNF("train", "--data", "8gaussians", "--reg-kinetic", "-1", "--out",
                          P("rn1.cnf")),
                      0);
  CU_ASSERT_PTR_NOT_NULL(strstr(last_err, "--reg-kinetic"));
  timer_report();
}

/* Train `iters` steps to out (resuming from `resume` if not NULL). */
static int train_run(const char *data, const char *const *extra, const char *iters,
                     const char *resume, const char *out) {
  const char *args[40];
  size_t n = 0;
  const char *base[] = {"train", "--data", data, "--hidden", "16-16", "--iters", iters,
                        "--out", out};
  for (size_t i = 0; i < sizeof base / sizeof base[0]; i++) args[n++] = base[i];
  if (resume != NULL) args[n++] = "--resume", args[n++] = resume;
  for (size_t i = 0; extra[i] != NULL; i++) args[n++] = extra[i];
  args[n] = NULL;
  return run_argv(NULL, args);
}

static void test_resume(void) {
  timer_start();
  fixtures();
  static const struct {
    const char *label, *data;
    const char *extra[6];
  } cases[] = {
      {"defaults", "8gaussians", {NULL}},
      {"gauss", "8gaussians", {"--trace", "gauss", NULL}},
      {"checkpoint", "8gaussians", {"--adjoint", "checkpoint", NULL}},
      {"backsolve", "8gaussians", {"--adjoint", "backsolve", NULL}},
      {"RNODE", "8gaussians", {"--reg-kinetic", "0.1", "--reg-jacobian", "0.2", NULL}},
      {"file data, batch 50", "D.csv", {"--batch", "50", "--save-every", "7", NULL}},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *data = strchr(cases[i].data, '.') ? P(cases[i].data) : cases[i].data;
    char a[64], b[64];
    snprintf(a, sizeof a, "straight%zu.cnf", i);
    snprintf(b, sizeof b, "resumed%zu.cnf", i);
    CU_ASSERT_EQUAL(train_run(data, cases[i].extra, "40", NULL, P(a)), 0);
    CU_ASSERT_EQUAL(train_run(data, cases[i].extra, "20", NULL, P(b)), 0);
    CU_ASSERT_EQUAL(header_long(P(b), "iter"), 20);
    CU_ASSERT_EQUAL(train_run(data, cases[i].extra, "40", P(b), P(b)), 0);
    CU_ASSERT_EQUAL(value_of(last_out, "iterations"), 40);
    CU_ASSERT_EQUAL(value_of(last_out, "steps_this_run"), 20);
    int same = same_file(P(a), P(b));
    CU_ASSERT_TRUE(same);
    if (!same) printf("\n  resume (%s): 40 steps straight and 20 + 20 differ\n", cases[i].label);
    CU_ASSERT_EQUAL(header_long(P(b), "iter"), 40);
  }
  /* a run with another seed differs */
  const char *seed7[] = {"--seed", "7", NULL};
  CU_ASSERT_EQUAL(train_run("8gaussians", seed7, "40", NULL, P("seed7.cnf")), 0);
  CU_ASSERT_FALSE(same_file(P("seed7.cnf"), P("straight0.cnf")));
  CU_ASSERT_EQUAL(header_long(P("seed7.cnf"), "seed"), 7);
  /* resuming a finished run: nothing to do, a note, the same model */
  const char *none[] = {NULL};
  copy_file(P("straight0.cnf"), P("done.cnf"));
  CU_ASSERT_EQUAL(train_run("8gaussians", none, "40", P("done.cnf"), P("done.cnf")), 0);
  CU_ASSERT_EQUAL(value_of(last_out, "steps_this_run"), 0);
  CU_ASSERT_TRUE(strstr(last_err, "already made 40 of 40 steps") != NULL);
  CU_ASSERT_TRUE(same_file(P("done.cnf"), P("straight0.cnf")));
  timer_report();
}

/* Parse "iter K val_nll V" lines of stderr: the first minimum. */
static int best_logged(const char *err, long *k_best, double *v_best, int *lines) {
  *lines = 0;
  *v_best = INFINITY;
  for (const char *p = err; (p = strstr(p, "iter ")) != NULL; p++) {
    if (p != err && p[-1] != '\n') continue;
    long k = 0;
    double v = 0;
    if (sscanf(p, "iter %ld val_nll %lf", &k, &v) == 2) {
      (*lines)++;
      if (v < *v_best) *v_best = v, *k_best = k;
    }
  }
  return *lines > 0;
}

static void test_validation(void) {
  timer_start();
  fixtures();
  int rc = CNF("train", "--data", P("D.csv"), "--val", P("V.csv"), "--val-every", "5", "--lr",
               "0.02", "--hidden", "16-16", "--iters", "40", "--out", P("mv.cnf"));
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  CU_ASSERT_TRUE(exists(P("mv.cnf")) && exists(P("mv.cnf.last")));
  const double best = value_of(last_out, "val_nll_best");
  CU_ASSERT_TRUE(isfinite(best));
  /* validated at steps 5, 10, ..., 40; MODEL is the best of them */
  long k_best = -1;
  double v_logged = NAN;
  int lines = 0;
  CU_ASSERT_TRUE(best_logged(last_err, &k_best, &v_logged, &lines));
  CU_ASSERT_EQUAL(lines, 8);
  CHECK_NEAR(best, v_logged, 1e-6);
  CU_ASSERT_EQUAL(header_long(P("mv.cnf"), "iter"), k_best);
  CU_ASSERT_EQUAL(header_long(P("mv.cnf.last"), "iter"), 40);
  printf("\n  best validation NLL %.9f at step %ld", best, k_best);
  /* the printed best is what eval says of MODEL */
  double nll = NAN, nll_last = NAN;
  CU_ASSERT_EQUAL(eval_nll(P("mv.cnf"), P("V.csv"), &nll), 0);
  CU_ASSERT_EQUAL(eval_nll(P("mv.cnf.last"), P("V.csv"), &nll_last), 0);
  printf("\n  eval: best model %.10g, last %.10g", nll, nll_last);
  CHECK_NEAR(best, nll, 1e-9);
  CU_ASSERT_TRUE(nll <= nll_last);
  if (k_best == 40) CU_ASSERT_TRUE(same_file(P("mv.cnf"), P("mv.cnf.last")));
  /* resumed from MODEL.last: the same two files as a straight run */
  rc = CNF("train", "--data", P("D.csv"), "--val", P("V.csv"), "--val-every", "5", "--lr", "0.02",
           "--hidden", "16-16", "--iters", "20", "--out", P("mr.cnf"));
  CU_ASSERT_EQUAL(rc, 0);
  rc = CNF("train", "--data", P("D.csv"), "--val", P("V.csv"), "--val-every", "5", "--lr", "0.02",
           "--hidden", "16-16", "--iters", "40", "--out", P("mr.cnf"), "--resume",
           P("mr.cnf.last"));
  CU_ASSERT_EQUAL(rc, 0);
  CHECK_NEAR(value_of(last_out, "val_nll_best"), best, 1e-9);
  CU_ASSERT_TRUE(same_file(P("mr.cnf"), P("mv.cnf")));
  CU_ASSERT_TRUE(same_file(P("mr.cnf.last"), P("mv.cnf.last")));
  CU_ASSERT_EQUAL(count_temporaries(), 0);
  timer_report();
}

/* The payload of a 1-block model with std=1: shift and scale (D each) after
 * T (1) and theta (params). */
static int read_std(const char *path, size_t D, double *shift, double *scale) {
  size_t n = 0;
  char *b = read_all(path, &n);
  if (b == NULL) return 0;
  const char *nl = strchr(b, '\n');
  long P_ = header_long(path, "params");
  const size_t off = (size_t)(nl - b) + 1 + 8 * (1 + (size_t)P_);
  int ok = nl != NULL && P_ > 0 && header_long(path, "blocks") == 1 && off + 16 * D <= n;
  if (ok) {
    memcpy(shift, b + off, D * sizeof(double));
    memcpy(scale, b + off + D * sizeof(double), D * sizeof(double));
  }
  free(b);
  return ok;
}

static void test_standardize(void) {
  timer_start();
  fixtures();
  /* big.csv: the moons, x1 * 50 + 1000 and x2 * 20 - 300 */
  size_t N = 0, D = 0;
  double *x = read_csv(P("D.csv"), NULL, &N, &D);
  CU_ASSERT_FATAL(N == 1000 && D == 2);
  FILE *fp = fopen(P("big.csv"), "w");
  CU_ASSERT_FATAL(fp != NULL);
  fprintf(fp, "x1,x2\n");
  for (size_t i = 0; i < N; i++)
    fprintf(fp, "%.17g,%.17g\n", x[2 * i] * 50 + 1000, x[2 * i + 1] * 20 - 300);
  CU_ASSERT_FATAL(fclose(fp) == 0);
  double mean[2] = {0, 0}, sd[2] = {0, 0};
  for (size_t j = 0; j < 2; j++) {
    for (size_t i = 0; i < N; i++) mean[j] += x[2 * i + j];
    mean[j] /= (double)N;
    for (size_t i = 0; i < N; i++) sd[j] += (x[2 * i + j] - mean[j]) * (x[2 * i + j] - mean[j]);
    sd[j] = sqrt(sd[j] / (double)(N - 1));
  }
  cnf_free(x);

  const char *big = P("big.csv"), *small = P("D.csv");
  CU_ASSERT_EQUAL(CNF("train", "--data", big, "--standardize", "--hidden", "16-16", "--iters",
                      "30", "--out", P("ms_big.cnf")),
                  0);
  CU_ASSERT_EQUAL(CNF("train", "--data", small, "--standardize", "--hidden", "16-16", "--iters",
                      "30", "--out", P("ms_small.cnf")),
                  0);
  CU_ASSERT_EQUAL(
      CNF("train", "--data", big, "--hidden", "16-16", "--iters", "30", "--out", P("mu_big.cnf")),
      0);
  CU_ASSERT_TRUE(header_has(P("ms_big.cnf"), "std=1"));
  CU_ASSERT_FALSE(header_has(P("mu_big.cnf"), "std=1"));
  /* the std section: the column means and standard deviations of the data */
  double shift[2], scale[2];
  CU_ASSERT_TRUE(read_std(P("ms_big.cnf"), 2, shift, scale));
  CHECK_NEAR(shift[0], mean[0] * 50 + 1000, 1e-9 * 1000);
  CHECK_NEAR(shift[1], mean[1] * 20 - 300, 1e-9 * 300);
  CHECK_NEAR(scale[0], sd[0] * 50, 1e-9 * 50);
  CHECK_NEAR(scale[1], sd[1] * 20, 1e-9 * 20);

  /* eval's nll is the mean of -logp of cnf logp (one system of 1000 rows) */
  double nll_big = NAN, nll_small = NAN, nll_unstd = NAN;
  CU_ASSERT_EQUAL(eval_nll(P("ms_big.cnf"), big, &nll_big), 0);
  CU_ASSERT_EQUAL(eval_nll(P("ms_small.cnf"), small, &nll_small), 0);
  CU_ASSERT_EQUAL(eval_nll(P("mu_big.cnf"), big, &nll_unstd), 0);
  CU_ASSERT_EQUAL(CNF("logp", "--model", P("ms_big.cnf"), "--in", big, "--batch", "1000", "--out",
                      P("lp_big.csv")),
                  0);
  size_t r = 0, c = 0;
  double *lp = read_csv(P("lp_big.csv"), NULL, &r, &c);
  CU_ASSERT_FATAL(r == N && c == 1);
  double mean_nll = 0;
  for (size_t i = 0; i < r; i++) mean_nll -= lp[i] / (double)r;
  cnf_free(lp);
  CHECK_NEAR(nll_big, mean_nll, 1e-8 * fabs(mean_nll));
  /* the same flow in standardized units, so the NLLs differ by the
   * log-Jacobian log 50 + log 20 */
  printf("\n  nll: standardized on big %.9f, on small %.9f (difference %.9f, log 1000 = %.9f); "
         "unstandardized on big %.6g",
         nll_big, nll_small, nll_big - nll_small, log(1000.0), nll_unstd);
  CU_ASSERT_TRUE(isfinite(nll_big) && isfinite(nll_small) && isfinite(nll_unstd));
  CHECK_NEAR(nll_big - nll_small, log(1000.0), 1e-6);
  /* and about what a 2-D density of that spread gives: log(2 pi e sd1 sd2) */
  const double gauss = log(2 * M_PI * exp(1.0) * scale[0] * scale[1]);
  CU_ASSERT_TRUE(nll_big < gauss + 0.5 && nll_big > gauss - 3.0);
  /* without standardization, 30 steps leave points 1000 units out far off */
  CU_ASSERT_TRUE(nll_unstd > nll_big + 100);
  timer_report();
}

static void test_bad_inputs(void) {
  timer_start();
  fixtures();
  /* keep.cnf: a good model from an earlier run, which no failure may touch */
  CU_ASSERT_EQUAL_FATAL(CNF("train", "--data", "8gaussians", "--hidden", "16-16", "--iters", "10",
                            "--out", P("keep.cnf")),
                        0);
  copy_file(P("keep.cnf"), P("keep.orig"));
  size_t n = 0;
  char *good = read_all(P("keep.cnf"), &n);
  CU_ASSERT_FATAL(good != NULL && n > 1000);
  write_bytes(P("trunc.cnf"), good, n - 100);
  good[n - 20] ^= 0x04; /* in Adam's v */
  write_bytes(P("flip.cnf"), good, n);
  free(good);
  write_text(P("bad.csv"), "x1,x2\n1,2\n3,abc\n");
  write_text(P("v3.csv"), "a,b,c\n1,2,3\n4,5,6\n");
  write_text(P("d3.csv"), "1,2,3\n4,5,6\n7,8,9\n");
  write_text(P("empty.csv"), "");
  const char *k = P("keep.cnf");
  static const struct {
    const char *args[16];
    const char *s1, *s2;
  } cases[] = {
      {{"--data", "8gaussianz"}, "'8gaussianz'", "neither a toy set"},
      {{"--data", "nosuch.csv"}, "nosuch.csv", "cannot open"},
      {{"--data", "bad.csv"}, "bad.csv:3:2:", "abc"},
      {{"--data", "empty.csv"}, "empty.csv", "empty"},
      {{"--data", "D.csv", "--val", "v3.csv"}, "v3.csv:1: 3 columns", "expected 2"},
      {{"--data", "8gaussians", "--val", "bad.csv"}, "bad.csv:3:2:", NULL},
      {{"--data", "8gaussians", "--resume", "trunc.cnf"}, "trunc.cnf", "truncated"},
      {{"--data", "8gaussians", "--resume", "flip.cnf"}, "flip.cnf", "damaged"},
      {{"--data", "8gaussians", "--resume", "D.csv"}, "D.csv", "not a cnf model"},
      {{"--data", "8gaussians", "--resume", "m3.cnf"}, "m3.cnf", "dimension 3"},
      {{"--data", "d3.csv", "--resume", "keep.cnf"}, "dimension 2", "data 3"},
      {{"--data", "8gaussians", "--iters", "0"}, "--iters", "'0'"},
      {{"--data", "8gaussians", "--lr", "-1"}, "--lr", "'-1'"},
      {{"--data", "8gaussians", "--adjoint", "forward"}, "--adjoint", "'forward'"},
      {{"--data", "8gaussians", "--hidden", "16-x"}, "hidden", "'16-x'"},
      {{"--data", "8gaussians", "--batch", "0"}, "--batch", "'0'"},
      {{"--out", "X"}, "missing required option --data", NULL},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *args[24];
    char label[256] = "train ";
    size_t m = 0;
    args[m++] = "train";
    for (size_t j = 0; cases[i].args[j] != NULL; j++) {
      const char *w = cases[i].args[j];
      strncat(label, w, sizeof label - strlen(label) - 2);
      strcat(label, " ");
      /* file names into the temporary directory */
      args[m++] = strchr(w, '.') && w[0] != '-' ? P(w) : strcmp(w, "X") == 0 ? k : w;
    }
    if (strcmp(cases[i].args[0], "--out") != 0) args[m++] = "--out", args[m++] = k;
    args[m] = NULL;
    int rc = run_argv(NULL, args);
    expect_failure(label, rc, 2, "train", cases[i].s1, cases[i].s2, NULL);
    CU_ASSERT_TRUE(same_file(k, P("keep.orig")));
    CU_ASSERT_FALSE(exists(P("keep.cnf.last")));
    CU_ASSERT_EQUAL(last_out[0], '\0');
  }
  /* a damaged --resume that is also --out stays as it was */
  copy_file(P("flip.cnf"), P("flip.orig"));
  int rc = CNF("train", "--data", "8gaussians", "--resume", P("flip.cnf"), "--out", P("flip.cnf"));
  expect_failure("resume flip onto itself", rc, 2, "train", "damaged", NULL, NULL);
  CU_ASSERT_TRUE(same_file(P("flip.cnf"), P("flip.orig")));
  timer_report();
}

static void test_solver_failure(void) {
  timer_start();
  fixtures();
  CU_ASSERT_EQUAL_FATAL(CNF("train", "--data", "8gaussians", "--hidden", "16-16", "--iters", "10",
                            "--out", P("good.cnf")),
                        0);
  copy_file(P("good.cnf"), P("good.orig"));
  /* two solver steps cannot reach T: every step fails */
  int rc = CNF("train", "--data", "8gaussians", "--hidden", "16-16", "--iters", "50",
               "--max-steps", "2", "--out", P("good.cnf"));
  expect_failure("train --max-steps 2", rc, 3, "train", "step 1 skipped", "CV_TOO_MUCH_WORK",
                 NULL);
  CU_ASSERT_TRUE(strstr(last_err, "step 10 skipped") != NULL);
  CU_ASSERT_TRUE(strstr(last_err, "step 11 skipped") == NULL);
  CU_ASSERT_TRUE(strstr(last_err, "10 steps in a row failed") != NULL);
  CU_ASSERT_EQUAL(value_of(last_out, "failed_steps"), 10);
  CU_ASSERT_TRUE(same_file(P("good.cnf"), P("good.orig")));
  /* resumed from it: the same, and the model keeps its step count */
  rc = CNF("train", "--data", "8gaussians", "--iters", "50", "--max-steps", "2", "--resume",
           P("good.cnf"), "--out", P("good.cnf"));
  expect_failure("train --resume --max-steps 2", rc, 3, "train", "step 11 skipped",
                 "10 steps in a row failed", NULL);
  CU_ASSERT_TRUE(strstr(last_err, "step 20 skipped") != NULL);
  CU_ASSERT_TRUE(same_file(P("good.cnf"), P("good.orig")));
  CU_ASSERT_EQUAL(header_long(P("good.cnf"), "iter"), 10);
  /* with --val too: neither MODEL nor MODEL.last appears */
  rc = CNF("train", "--data", P("D.csv"), "--val", P("V.csv"), "--hidden", "16-16", "--iters",
           "50", "--max-steps", "2", "--out", P("failv.cnf"));
  expect_failure("train --val --max-steps 2", rc, 3, "train", "10 steps in a row failed", NULL,
                 NULL);
  CU_ASSERT_FALSE(exists(P("failv.cnf")));
  CU_ASSERT_FALSE(exists(P("failv.cnf.last")));
  timer_report();
}

/* Wait until the file contains s (up to `seconds`); 1 if it did. */
static int wait_for_text(const char *path, const char *s, double seconds) {
  const double t0 = now();
  while (now() - t0 < seconds) {
    char *text = read_all(path, NULL);
    int found = text != NULL && strstr(text, s) != NULL;
    free(text);
    if (found) return 1;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
  }
  return 0;
}

static void test_interrupt(void) {
  timer_start();
  const char *o = P("bg.stdout"), *e = P("bg.stderr");
  const char *args[] = {"train",   "--data",   "8gaussians", "--hidden", "16-16",
                        "--iters", "100000",   "--log-every", "5",       "--out",
                        P("ci.cnf"), NULL};
  pid_t pid = spawn(args, o, e);
  CU_ASSERT_FATAL(pid > 0);
  /* a few steps made (a log line), then about 2 s more */
  int started = wait_for_text(e, "iter 5/100000 ", 120.0);
  CU_ASSERT_TRUE(started);
  struct timespec ts = {2, 0};
  nanosleep(&ts, NULL);
  kill(pid, SIGINT);
  int ws = finish(pid, o, e);
  CU_ASSERT_TRUE(WIFEXITED(ws) && WEXITSTATUS(ws) == 130);
  if (!(WIFEXITED(ws) && WEXITSTATUS(ws) == 130))
    printf("\n  interrupted train: wait status %#x, stderr tail '%s'\n", ws,
           strlen(last_err) > 400 ? last_err + strlen(last_err) - 400 : last_err);
  CU_ASSERT_TRUE(strstr(last_err, "interrupted at step") != NULL);
  CU_ASSERT_TRUE(strstr(last_err, "saved in") != NULL);
  CU_ASSERT_EQUAL(count_temporaries(), 0);
  /* the model: step K > 0, as printed, and usable */
  const long K = header_long(P("ci.cnf"), "iter");
  printf("\n  interrupted after %ld steps", K);
  CU_ASSERT_TRUE(K >= 5);
  CU_ASSERT_TRUE(header_has(P("ci.cnf"), "train=1"));
  CU_ASSERT_EQUAL(value_of(last_out, "iterations"), (double)K);
  CU_ASSERT_EQUAL(CNF("toy", "--name", "8gaussians", "-n", "200", "--out", P("ci.csv")), 0);
  double nll = NAN;
  CU_ASSERT_EQUAL(eval_nll(P("ci.cnf"), P("ci.csv"), &nll), 0);
  CU_ASSERT_TRUE(isfinite(nll));
  /* --resume continues from K, and K + 3 steps equal a straight run */
  char total[32];
  snprintf(total, sizeof total, "%ld", K + 3);
  const char *none[] = {NULL};
  CU_ASSERT_EQUAL(train_run("8gaussians", none, total, P("ci.cnf"), P("ci2.cnf")), 0);
  CU_ASSERT_EQUAL(value_of(last_out, "iterations"), (double)(K + 3));
  CU_ASSERT_EQUAL(value_of(last_out, "steps_this_run"), 3);
  CU_ASSERT_EQUAL(header_long(P("ci2.cnf"), "iter"), K + 3);
  CU_ASSERT_EQUAL(train_run("8gaussians", none, total, NULL, P("ci3.cnf")), 0);
  CU_ASSERT_TRUE(same_file(P("ci2.cnf"), P("ci3.cnf")));
  timer_report();
}

static void test_eval(void) {
  timer_start();
  fixtures();
  CU_ASSERT_EQUAL(CNF("init", "--dim", "2", "--hidden", "8-8", "--out", P("e.cnf")), 0);
  int rc = CNF("eval", "--model", P("e.cnf"), "--in", P("V.csv"));
  CU_ASSERT_EQUAL(rc, 0);
  /* exactly one line: "nll <number>\n" */
  char *end = NULL;
  int ok = strncmp(last_out, "nll ", 4) == 0;
  double v = ok ? strtod(last_out + 4, &end) : NAN;
  ok = ok && end != last_out + 4 && strcmp(end, "\n") == 0 && isfinite(v);
  CU_ASSERT_TRUE(ok);
  if (!ok) printf("\n  eval stdout: '%s'\n", last_out);
  /* the mean of -logp */
  CU_ASSERT_EQUAL(CNF("logp", "--model", P("e.cnf"), "--in", P("V.csv"), "--out", P("e_lp.csv")),
                  0);
  size_t r = 0, c = 0;
  double *lp = read_csv(P("e_lp.csv"), NULL, &r, &c);
  double m = 0;
  for (size_t i = 0; i < r; i++) m -= lp[i] / (double)r;
  cnf_free(lp);
  CHECK_NEAR(v, m, 1e-8 * fabs(m));
  /* bad input: status 2, nothing on stdout */
  write_text(P("e_bad.csv"), "x1,x2\n1,2\nnan,3\n");
  write_text(P("e_3.csv"), "1,2,3\n");
  static const struct {
    const char *model, *in, *s1, *s2;
  } cases[] = {
      {"e.cnf", "e_bad.csv", "e_bad.csv:3:1:", "NaN"},
      {"e.cnf", "e_3.csv", "e_3.csv:1: 3 columns", "expected 2"},
      {"e.cnf", "e_none.csv", "e_none.csv", "cannot open"},
      {"e_none.cnf", "V.csv", "e_none.cnf", "cannot open"},
      {"V.csv", "V.csv", "V.csv", "not a cnf model"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    rc = CNF("eval", "--model", P(cases[i].model), "--in", P(cases[i].in));
    expect_failure(cases[i].in, rc, 2, "eval", cases[i].s1, cases[i].s2, NULL);
    CU_ASSERT_EQUAL(last_out[0], '\0');
  }
  /* a solver failure: 3 */
  rc = CNF("eval", "--model", P("e.cnf"), "--in", P("V.csv"), "--max-steps", "2");
  expect_failure("eval --max-steps 2", rc, 3, "eval", "CV_TOO_MUCH_WORK", NULL, NULL);
  CU_ASSERT_EQUAL(last_out[0], '\0');
  timer_report();
}

static void test_gradcheck(void) {
  timer_start();
  CU_ASSERT_EQUAL(CNF("init", "--dim", "2", "--hidden", "8-8", "--out", P("g.cnf")), 0);
  CU_ASSERT_EQUAL(
      CNF("toy", "--name", "8gaussians", "-n", "10", "--seed", "1", "--out", P("g.csv")), 0);
  static const char *const variants[][6] = {
      {"--adjoint", "backsolve", NULL},
      {"--adjoint", "checkpoint", NULL},
      {"--trace", "gauss", "--adjoint", "backsolve", NULL},
      {"--trace", "gauss", "--adjoint", "checkpoint", NULL},
      {NULL}, /* the default */
  };
  for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
    const char *args[16] = {"gradcheck", "--model", P("g.cnf"), "--in", P("g.csv")};
    size_t m = 5;
    char label[128] = "";
    for (size_t j = 0; variants[i][j] != NULL; j++) {
      args[m++] = variants[i][j];
      strncat(label, variants[i][j], sizeof label - strlen(label) - 2);
      strcat(label, " ");
    }
    args[m] = NULL;
    int rc = run_argv(NULL, args);
    CU_ASSERT_EQUAL(rc, 0);
    const double err = value_of(last_out, "max_rel_error");
    printf("\n  gradcheck %s: max_rel_error %.3g", label, err);
    CU_ASSERT_TRUE(err >= 0 && err < 1e-4);
    CU_ASSERT_TRUE(strstr(last_out, "params_checked 168 of 168\n") != NULL);
    CU_ASSERT_TRUE(strstr(last_out, "dL/dT1 adjoint ") != NULL);
    CU_ASSERT_TRUE(isfinite(value_of(last_out, "loss")));
  }
  /* a random subset */
  CU_ASSERT_EQUAL(
      CNF("gradcheck", "--model", P("g.cnf"), "--in", P("g.csv"), "--params", "20"), 0);
  CU_ASSERT_TRUE(strstr(last_out, "params_checked 20 of 168\n") != NULL);
  /* an impossible threshold: status 1, and the numbers still printed (the
   * statistics come first on stderr, then the verdict) */
  int rc = CNF("gradcheck", "--model", P("g.cnf"), "--in", P("g.csv"), "--threshold", "1e-30");
  CU_ASSERT_EQUAL(rc, 1);
  CU_ASSERT_TRUE(strstr(last_err, "\ncnf gradcheck: largest relative error ") != NULL);
  CU_ASSERT_TRUE(strstr(last_err, "above the threshold 1e-30") != NULL);
  CU_ASSERT_TRUE(value_of(last_out, "max_rel_error") > 0);
  /* bad input: 2 */
  write_text(P("g3.csv"), "1,2,3\n");
  rc = CNF("gradcheck", "--model", P("g.cnf"), "--in", P("g3.csv"));
  expect_failure("gradcheck 3 columns", rc, 2, "gradcheck", "g3.csv:1: 3 columns", NULL, NULL);
  timer_report();
}

static void test_plot(void) {
  timer_start();
  fixtures();
  unsigned long w = 0, h = 0;
  int rc = 0;
  CU_ASSERT_EQUAL(CNF("init", "--dim", "2", "--hidden", "8-8", "--out", P("p2.cnf")), 0);
  /* 2-D: a heat map of G x G grid points in a panel of --size S (fs = S / 28):
   * 5.5 fs + S + 8 fs wide, 2.8 fs + S + 3.8 fs high (src/plot/plot.c) */
  CU_ASSERT_EQUAL(
      CNF("plot", "--model", P("p2.cnf"), "--grid", "64", "--size", "280", "--out", P("p2.png")), 0);
  CU_ASSERT_TRUE(png_size(P("p2.png"), &w, &h) && w == 415 && h == 346);
  CU_ASSERT_EQUAL(CNF("plot", "--model", P("p2.cnf"), "--grid", "50", "--data", "8gaussians", "-n",
                      "300", "--size", "280", "--out", P("p2d.svg")),
                  0);
  char *svg = read_all(P("p2d.svg"), NULL);
  CU_ASSERT_TRUE(svg != NULL && strstr(svg, "8gaussians (n = 300)") != NULL &&
                 strstr(svg, "density p(x)") != NULL);
  free(svg);
  /* a CSV header names the axes; --log colours by log p */
  write_text(P("V2.csv"), "eruptions,waiting\n0,0\n1,-1\n");
  CU_ASSERT_EQUAL(CNF("plot", "--model", P("p2.cnf"), "--grid", "40", "--data", P("V2.csv"),
                      "--log", "--out", P("p2v.svg")),
                  0);
  svg = read_all(P("p2v.svg"), NULL);
  CU_ASSERT_TRUE(svg != NULL && strstr(svg, "\neruptions\n") != NULL &&
                 strstr(svg, "\nwaiting\n") != NULL && strstr(svg, "log density log p(x)") != NULL &&
                 strstr(svg, "<title>Log-density of ") != NULL);
  free(svg);
  /* the default: panels of 400, fs = 400 / 28 */
  CU_ASSERT_EQUAL(CNF("plot", "--model", P("p2.cnf"), "--out", P("p2def.pdf")), 0);
  CU_ASSERT_EQUAL(CNF("plot", "--model", P("p2.cnf"), "--out", P("p2def.png")), 0);
  CU_ASSERT_TRUE(png_size(P("p2def.png"), &w, &h) && w == 593 && h == 495);
  /* 3-D: pairwise plots, 3 x 3 tiles of S, 0.25 fs apart, 6 fs left, 1 fs
   * right, 4.6 fs above, 4 fs below; --dims 2: 2 x 2 */
  CU_ASSERT_EQUAL(
      CNF("plot", "--model", P("m3.cnf"), "-n", "300", "--size", "280", "--out", P("p3.png")), 0);
  CU_ASSERT_TRUE(png_size(P("p3.png"), &w, &h) && w == 915 && h == 931);
  CU_ASSERT_EQUAL(CNF("plot", "--model", P("m3.cnf"), "-n", "300", "--dims", "2", "--size", "280",
                      "--out", P("p3d2.png")),
                  0);
  CU_ASSERT_TRUE(png_size(P("p3d2.png"), &w, &h) && w == 633 && h == 649);
  write_text(P("d3.csv"), "x1,x2,x3\n0,0,0\n1,-1,0.5\n0.5,2,-1\n");
  CU_ASSERT_EQUAL(CNF("plot", "--model", P("m3.cnf"), "-n", "300", "--data", P("d3.csv"), "--out",
                      P("p3c.png")),
                  0);
  CU_ASSERT_TRUE(png_size(P("p3c.png"), &w, &h) && w == 1308 && h == 1330);
  write_text(P("d3n.csv"), "alpha,beta,gamma\n0,0,0\n1,-1,0.5\n0.5,2,-1\n");
  CU_ASSERT_EQUAL(CNF("plot", "--model", P("m3.cnf"), "-n", "300", "--data", P("d3n.csv"), "--out",
                      P("p3n.svg")),
                  0);
  svg = read_all(P("p3n.svg"), NULL);
  CU_ASSERT_TRUE(svg != NULL && strstr(svg, "\ngamma\n") != NULL &&
                 strstr(svg, "flow samples (n = 300)") != NULL);
  free(svg);
  /* an unknown format: 2, no file */
  rc = CNF("plot", "--model", P("p2.cnf"), "--out", P("p2.jpg"));
  expect_failure("plot --out p2.jpg", rc, 2, "plot", "p2.jpg", ".png, .svg or .pdf", NULL);
  CU_ASSERT_FALSE(exists(P("p2.jpg")));
  /* a toy set on a 3-D model, a CSV of the wrong width: 2, no file */
  rc = CNF("plot", "--model", P("m3.cnf"), "--data", "moons", "--out", P("p3bad.png"));
  expect_failure("plot 3-D --data moons", rc, 2, "plot", "moons", "3-D", NULL);
  CU_ASSERT_FALSE(exists(P("p3bad.png")));
  rc = CNF("plot", "--model", P("m3.cnf"), "--data", P("V.csv"), "--out", P("p3bad.png"));
  expect_failure("plot 3-D --data V.csv", rc, 2, "plot", "V.csv:1: 2 columns", NULL, NULL);
  CU_ASSERT_FALSE(exists(P("p3bad.png")));
  rc = CNF("plot", "--model", P("p2.cnf"), "--grid", "1", "--out", P("p3bad.png"));
  expect_failure("plot --grid 1", rc, 2, "plot", "--grid", "'1'", NULL);
  CU_ASSERT_FALSE(exists(P("p3bad.png")));
  /* an existing PNG is left alone by a failure */
  copy_file(P("p2.png"), P("p2.orig"));
  rc = CNF("plot", "--model", P("m3.cnf"), "--data", "moons", "--out", P("p2.png"));
  CU_ASSERT_EQUAL(rc, 2);
  CU_ASSERT_TRUE(same_file(P("p2.png"), P("p2.orig")));
  timer_report();
}

/* ---- runner --------------------------------------------------------------- */

int main(void) {
  if (cli_setup("cnf_test_train_cli") != 0) return 1;
  static const test_entry tests[] = {{"help of the new commands", test_help},
                                     {"toy sets", test_toy},
                                     {"train 8gaussians: summary and test NLL", test_train_basic},
                                     {"train with RNODE: the loss's parts in the log", test_rnode},
                                     {"resume reproduces a straight run", test_resume},
                                     {"validation keeps the best model", test_validation},
                                     {"standardization", test_standardize},
                                     {"bad input keeps the previous model", test_bad_inputs},
                                     {"failed steps: skipped, then exit 3", test_solver_failure},
                                     {"Ctrl-C saves, exit 130, resume", test_interrupt},
                                     {"eval", test_eval},
                                     {"gradcheck", test_gradcheck},
                                     {"plot", test_plot},
                                     {NULL, NULL}};
  const char *const names[] = {"train_cli"};
  const test_entry *const all[] = {tests};
  int rc = run_suites(names, all, 1);
  cli_teardown();
  return rc;
}
