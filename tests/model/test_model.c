/* test_model.c: the model interface (src/model) and the training loop
 * (src/train/fit.c).
 *
 *   - one sign convention: for a CNF and a RealNVP stack, log N(z) +
 *     logdet of encode is logp, decode inverts encode with the same logdet,
 *     and a sample's log p is the density at the sample;
 *   - cnf_fit takes the steps of a hand-written loop of cnf_train_step on
 *     the batches of cnf_train_batch_indices, bit for bit;
 *   - a run stopped and resumed from its checkpoint equals the
 *     uninterrupted run bit for bit (a CNF and a MAF stack, data from a
 *     generator);
 *   - two workers on two threads with a summing reduction take the steps of
 *     one worker on the whole batch (to rounding for a stack; for a CNF,
 *     whose workers solve their rows as separate systems, to the solver's
 *     tight tolerance);
 *   - an update that leaves a non-finite value is undone and ends the run
 *     with CNF_ENONFINITE; failed steps in a row end it too, parameters
 *     untouched;
 *   - validation keeps the best model: the file's NLL is the least reported;
 *     a stop request ends the run after the step with the state saved;
 *   - flow matching and OT flow matching through cnf_fit: a CNF with a
 *     standardization, trained on a Gaussian N(m, diag(sd^2)), reaches the
 *     Gaussian's exact NLL (its entropy) with the exact log-density of the
 *     solver, T held, and a resumed run equals the uninterrupted one;
 *   - gradcheck on a CNF and a stack; moments; bad arguments. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnf_model.h"
#include "scratch.h"
#include "stack_impl.h" /* white box: Adam's moments of a stack */
#include "test_util.h"

static char dir[256];

static const char *path(const char *name) {
  static char buf[4][512];
  static int k = 0;
  k = (k + 1) % 4;
  return scratch_path(buf[k], sizeof buf[k], dir, name);
}

static cnf_model *make(cnf_ctx *ctx, const char *flow, const char *hidden, uint64_t seed) {
  cnf_model_spec sp;
  cnf_model_spec_default(&sp, flow, 2);
  sp.hidden = hidden;
  cnf_model *m = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_model_create(&m, ctx, &sp, seed), 0);
  return m;
}

static int draw_toy(void *user, uint64_t seed, size_t B, size_t D, double *x) {
  (void)D;
  return cnf_toy_sample((const char *)user, B, seed, x);
}

static double log_normal(const double *z, size_t D) {
  double s = 0.0;
  for (size_t j = 0; j < D; j++) s += z[j] * z[j];
  return -0.5 * s - 0.5 * (double)D * log(2 * 3.14159265358979323846);
}

static int same_bits(const double *a, const double *b, size_t n) {
  return memcmp(a, b, n * sizeof(double)) == 0;
}

/* ---- conventions ------------------------------------------------------------ */

static void test_conventions(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  const char *kinds[] = {"cnf", "realnvp"};
  const size_t B = 40;
  double x[2 * 40], z[2 * 40], x2[2 * 40], ld[40], ld2[40], lp[40], lp2[40];
  cnf_toy_sample("moons", B, 3, x);
  cnf_options opt;
  cnf_options_default(&opt);
  opt.rtol = opt.atol = 1e-10;
  for (int k = 0; k < 2; k++) {
    cnf_model *m = make(ctx, kinds[k], "16-16", 5);
    /* move away from the identity-like initialisation */
    double *th = cnf_model_params(m);
    for (size_t i = 0; i < cnf_model_param_count(m); i++) th[i] *= 3.0;
    CU_ASSERT_EQUAL_FATAL(cnf_model_logp(m, &opt, B, x, lp, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(cnf_model_encode(m, &opt, B, x, z, ld, NULL), 0);
    double worst = 0.0, moved = 0.0;
    for (size_t b = 0; b < B; b++) {
      worst = fmax(worst, fabs(log_normal(z + 2 * b, 2) + ld[b] - lp[b]));
      moved = fmax(moved, fabs(ld[b]));
    }
    printf("\n  %s: |log N(z) + logdet - logp| %.2e, max |logdet| %.3f", kinds[k], worst, moved);
    CU_ASSERT_TRUE(worst <= 1e-8);
    CU_ASSERT_TRUE(moved >= 0.05); /* the check is not 0 = 0 */
    CU_ASSERT_EQUAL_FATAL(cnf_model_decode(m, &opt, B, z, x2, ld2, NULL), 0);
    CHECK_CLOSE(x2, x, 2 * B, 1e-7, 1e-7, "decode(encode(x)) = x");
    CHECK_CLOSE(ld2, ld, B, 1e-7, 1e-7, "decode's logdet = encode's");
    cnf_model_seed(m, 11);
    CU_ASSERT_EQUAL_FATAL(cnf_model_sample(m, &opt, B, x2, lp2, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(cnf_model_logp(m, &opt, B, x2, lp, NULL), 0);
    CHECK_CLOSE(lp2, lp, B, 1e-7, 1e-7, "sample's log p = logp at the sample");
    double nll = 0.0, mean = 0.0;
    CU_ASSERT_EQUAL(cnf_model_nll(m, &opt, B, x, &nll, NULL), 0);
    CU_ASSERT_EQUAL(cnf_model_logp(m, &opt, B, x, lp, NULL), 0);
    for (size_t b = 0; b < B; b++) mean -= lp[b] / (double)B;
    CHECK_NEAR(nll, mean, 1e-12);
    CU_ASSERT_EQUAL(cnf_model_kind_of(m), k == 0 ? CNF_MODEL_FLOW : CNF_MODEL_STACK);
    CU_ASSERT_STRING_EQUAL(cnf_model_name(m), kinds[k]);
    /* save and load keep the kind and the numbers */
    CU_ASSERT_EQUAL_FATAL(cnf_model_save(m, path("conv.model")), 0);
    cnf_model *l = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_model_load(&l, ctx, path("conv.model")), 0);
    CU_ASSERT_STRING_EQUAL(cnf_model_name(l), kinds[k]);
    CU_ASSERT_EQUAL(cnf_model_logp(l, &opt, B, x, lp2, NULL), 0);
    CU_ASSERT_TRUE(same_bits(lp, lp2, B));
    cnf_model_free(l);
    cnf_model_free(m);
  }
  printf(" ");
  cnf_ctx_free(ctx);
}

/* ---- the loop against a hand-written one -------------------------------------- */

static void test_fit_equals_steps(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  const size_t N = 500, B = 50;
  const long iters = 12;
  double *rows = malloc(N * 2 * sizeof(double)), xb[2 * 50];
  size_t idx[50];
  cnf_toy_sample("8gaussians", N, 1, rows);
  cnf_model *m = make(ctx, "cnf", "8-8", 7), *h = make(ctx, "cnf", "8-8", 7);
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  fo.iters = iters, fo.batch = B, fo.seed = 9;
  cnf_fit_data data = {rows, N, 2, NULL, NULL};
  cnf_fit_result res;
  CU_ASSERT_EQUAL_FATAL(cnf_fit(m, &data, &fo, &res), 0);
  CU_ASSERT_EQUAL(res.steps, iters);
  CU_ASSERT_EQUAL(res.failed, 0);
  CU_ASSERT_EQUAL(cnf_model_iteration(m), iters);
  CU_ASSERT_TRUE(res.nfe_fwd_mean > 5);
  /* by hand */
  cnf_train *tr = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_train_create(&tr, cnf_model_flow(h), &fo.train, 9), 0);
  double loss = NAN;
  for (long it = 0; it < iters; it++) {
    CU_ASSERT_EQUAL_FATAL(cnf_train_batch_indices(9, it, N, B, idx), 0);
    for (size_t b = 0; b < B; b++) memcpy(xb + 2 * b, rows + 2 * idx[b], 2 * sizeof(double));
    cnf_train_report rep;
    CU_ASSERT_EQUAL_FATAL(cnf_train_step(tr, &fo.opt, B, xb, &rep), 0);
    loss = rep.loss;
  }
  (void)loss;
  const size_t P = cnf_model_param_count(m);
  CU_ASSERT_TRUE(same_bits(cnf_model_params(m), cnf_model_params(h), P));
  CU_ASSERT_EQUAL(cnf_flow_end_time(cnf_model_flow(m), 0), cnf_flow_end_time(cnf_model_flow(h), 0));
  CU_ASSERT_NOT_EQUAL(cnf_flow_end_time(cnf_model_flow(m), 0), 0.5); /* T learned */
  cnf_train_free(tr);
  cnf_model_free(m);
  cnf_model_free(h);
  free(rows);
  cnf_ctx_free(ctx);
}

/* ---- resume ------------------------------------------------------------------- */

static int stop_at(void *user, const cnf_fit_report *rep) {
  return rep->step >= *(long *)user;
}

static void test_resume(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  const char *kinds[] = {"cnf", "maf"};
  for (int k = 0; k < 2; k++) {
    cnf_fit_options fo;
    cnf_fit_options_default(&fo);
    fo.iters = 16, fo.batch = 64, fo.seed = 4, fo.save_every = 5;
    fo.state_path = path("state.model");
    cnf_fit_data data = {NULL, 0, 2, draw_toy, (void *)"pinwheel"};
    /* uninterrupted */
    cnf_model *a = make(ctx, kinds[k], "8-8", 2);
    CU_ASSERT_EQUAL_FATAL(cnf_fit(a, &data, &fo, NULL), 0);
    /* stopped after step 7 by the callback, resumed from the file */
    cnf_model *b = make(ctx, kinds[k], "8-8", 2);
    long at = 7;
    fo.callback = stop_at, fo.user = &at;
    cnf_fit_result res;
    CU_ASSERT_EQUAL_FATAL(cnf_fit(b, &data, &fo, &res), 0);
    CU_ASSERT_EQUAL(res.stopped, 1);
    CU_ASSERT_EQUAL(res.iteration, 7);
    cnf_model_free(b);
    b = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_model_load(&b, ctx, fo.state_path), 0);
    CU_ASSERT_EQUAL(cnf_model_iteration(b), 7);
    fo.callback = NULL;
    fo.seed = 12345; /* ignored: the model carries its run's seed */
    CU_ASSERT_EQUAL_FATAL(cnf_fit(b, &data, &fo, &res), 0);
    CU_ASSERT_EQUAL(res.steps, 9);
    const size_t P = cnf_model_param_count(a);
    const int same = same_bits(cnf_model_params(a), cnf_model_params(b), P);
    printf("\n  %s: resumed run %s", kinds[k], same ? "identical" : "DIFFERS");
    CU_ASSERT_TRUE(same);
    cnf_model_free(a);
    cnf_model_free(b);
  }
  printf(" ");
  cnf_ctx_free(ctx);
}

/* ---- two workers ----------------------------------------------------------- */

typedef struct shared_sum {
  pthread_barrier_t bar;
  double *slot[2];
  size_t n;
} shared_sum;

typedef struct worker {
  shared_sum *sh;
  int rank;
  const char *kind;
  const double *rows;
  size_t N;
  cnf_model *m;
  int rc;
} worker;

/* sum_all: each worker posts its buffer; after the barrier both add the
 * two in rank order (the same sum on both), then wait again before the
 * buffers are reused. */
static int sum_two(void *user, double *buf, size_t n) {
  worker *w = user;
  shared_sum *sh = w->sh;
  double *mine = malloc(n * sizeof(double));
  if (mine == NULL) return CNF_ENOMEM;
  sh->slot[w->rank] = buf;
  pthread_barrier_wait(&sh->bar);
  for (size_t i = 0; i < n; i++) mine[i] = sh->slot[0][i] + sh->slot[1][i];
  pthread_barrier_wait(&sh->bar);
  memcpy(buf, mine, n * sizeof(double));
  free(mine);
  return 0;
}

/* Each worker solves its rows as its own ODE system, so a CNF's workers
 * take other steps than one solve of the whole batch: at tight tolerances
 * the difference is rounding-sized. */
static cnf_fit_options worker_options(void) {
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  fo.iters = 10, fo.batch = 81, fo.seed = 3; /* 81 rows: an uneven split */
  fo.opt.rtol = fo.opt.atol = 1e-11;
  return fo;
}

static void *run_worker(void *arg) {
  worker *w = arg;
  cnf_ctx *ctx = NULL;
  w->rc = cnf_ctx_create(&ctx);
  if (w->rc != 0) return NULL;
  cnf_model_spec sp;
  cnf_model_spec_default(&sp, w->kind, 2);
  sp.hidden = "8";
  w->rc = cnf_model_create(&w->m, ctx, &sp, 6);
  cnf_fit_comm comm = {w->rank, 2, sum_two, w};
  cnf_fit_options fo = worker_options();
  fo.comm = &comm;
  cnf_fit_data data = {w->rows, w->N, 2, NULL, NULL};
  if (w->rc == 0) w->rc = cnf_fit(w->m, &data, &fo, NULL);
  return NULL;
}

static void test_two_workers(void) {
  const size_t N = 400;
  double *rows = malloc(N * 2 * sizeof(double));
  cnf_toy_sample("circles", N, 8, rows);
  const char *kinds[] = {"realnvp", "cnf"};
  for (int k = 0; k < 2; k++) {
    shared_sum sh;
    memset(&sh, 0, sizeof sh);
    pthread_barrier_init(&sh.bar, NULL, 2);
    worker w[2];
    pthread_t th[2];
    for (int r = 0; r < 2; r++) {
      w[r] = (worker){&sh, r, kinds[k], rows, N, NULL, -1};
      pthread_create(&th[r], NULL, run_worker, &w[r]);
    }
    for (int r = 0; r < 2; r++) pthread_join(th[r], NULL);
    pthread_barrier_destroy(&sh.bar);
    CU_ASSERT_EQUAL_FATAL(w[0].rc, 0);
    CU_ASSERT_EQUAL_FATAL(w[1].rc, 0);
    /* one worker on the whole batch */
    cnf_ctx *ctx = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
    cnf_model_spec sp;
    cnf_model_spec_default(&sp, kinds[k], 2);
    sp.hidden = "8";
    cnf_model *one = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_model_create(&one, ctx, &sp, 6), 0);
    cnf_fit_options fo = worker_options();
    cnf_fit_data data = {rows, N, 2, NULL, NULL};
    CU_ASSERT_EQUAL_FATAL(cnf_fit(one, &data, &fo, NULL), 0);
    const size_t P = cnf_model_param_count(one);
    const double *p0 = cnf_model_params(w[0].m), *p1 = cnf_model_params(w[1].m);
    const double *p = cnf_model_params(one);
    double moved = 0.0;
    cnf_model *fresh = NULL;
    CU_ASSERT_EQUAL_FATAL(cnf_model_create(&fresh, ctx, &sp, 6), 0);
    for (size_t i = 0; i < P; i++) moved = fmax(moved, fabs(p[i] - cnf_model_params(fresh)[i]));
    printf("\n  %s: max parameter change %.3g; ", kinds[k], moved);
    CU_ASSERT_TRUE(moved > 1e-3);
    CU_ASSERT_TRUE(same_bits(p0, p1, P)); /* the workers agree exactly */
    CHECK_CLOSE(p0, p, P, 1e-7, 1e-9, "two workers = one");
    cnf_model_free(fresh);
    cnf_model_free(one);
    for (int r = 0; r < 2; r++) {
      cnf_ctx *c = cnf_model_ctx(w[r].m);
      cnf_model_free(w[r].m);
      cnf_ctx_free(c);
    }
    cnf_ctx_free(ctx);
  }
  printf(" ");
  free(rows);
}

/* ---- failures ------------------------------------------------------------------ */

static int draw_nan(void *user, uint64_t seed, size_t B, size_t D, double *x) {
  (void)user, (void)seed;
  for (size_t i = 0; i < B * D; i++) x[i] = NAN;
  return 0;
}

static void test_failures(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  /* an update that leaves a NaN (a negative second moment, planted) is
   * undone: the parameters and moments are those before the step */
  cnf_model *m = make(ctx, "realnvp", "8-8", 1);
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  fo.iters = 3, fo.batch = 32, fo.state_path = path("div.model");
  cnf_fit_data data = {NULL, 0, 2, draw_toy, (void *)"moons"};
  CU_ASSERT_EQUAL_FATAL(cnf_fit(m, &data, &fo, NULL), 0);
  cnf_stack *s = cnf_model_stack(m);
  const size_t P = s->P;
  s->v[P / 2] = -1.0;
  double *before = malloc(3 * P * sizeof(double));
  memcpy(before, s->theta, P * sizeof(double));
  memcpy(before + P, s->m, P * sizeof(double));
  memcpy(before + 2 * P, s->v, P * sizeof(double));
  const long upd = s->updates;
  fo.iters = 6;
  cnf_fit_result res;
  int rc = cnf_fit(m, &data, &fo, &res);
  printf("\n  diverged: %s; ", cnf_ctx_errmsg(ctx));
  CU_ASSERT_EQUAL(rc, CNF_ENONFINITE);
  CU_ASSERT_TRUE(same_bits(before, s->theta, P));
  CU_ASSERT_TRUE(same_bits(before + P, s->m, P));
  CU_ASSERT_TRUE(same_bits(before + 2 * P, s->v, P));
  CU_ASSERT_EQUAL(s->updates, upd);
  CU_ASSERT_EQUAL(res.iteration, 4); /* the step was taken, then undone */
  cnf_model_free(m);
  free(before);

  /* steps that fail (NaN rows) are skipped; three in a row end the run */
  m = make(ctx, "cnf", "8-8", 1);
  const size_t Pc = cnf_model_param_count(m);
  double *th0 = malloc(Pc * sizeof(double));
  memcpy(th0, cnf_model_params(m), Pc * sizeof(double));
  cnf_fit_options_default(&fo);
  fo.iters = 10, fo.batch = 16, fo.max_failed = 3;
  cnf_fit_data bad = {NULL, 0, 2, draw_nan, NULL};
  rc = cnf_fit(m, &bad, &fo, &res);
  printf("failed steps: %s", cnf_ctx_errmsg(ctx));
  CU_ASSERT_NOT_EQUAL(rc, 0);
  CU_ASSERT_EQUAL(res.steps, 3);
  CU_ASSERT_EQUAL(res.failed, 3);
  CU_ASSERT_EQUAL(cnf_model_iteration(m), 3);
  CU_ASSERT_TRUE(same_bits(th0, cnf_model_params(m), Pc));
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "3 steps in a row failed"));
  cnf_model_free(m);
  free(th0);
  printf(" ");
  cnf_ctx_free(ctx);
}

/* ---- validation and stopping --------------------------------------------------- */

typedef struct val_log {
  double least;
  int n, n_best;
} val_log;

static int log_val(void *user, const cnf_fit_report *rep) {
  val_log *v = user;
  if (rep->validated) {
    v->n++;
    v->n_best += rep->best;
    if (rep->val_nll < v->least) v->least = rep->val_nll;
  }
  return 0;
}

static void test_validation(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  double val[2 * 300];
  cnf_toy_sample("8gaussians", 300, 77, val);
  const char *kinds[] = {"nice", "cnf"};
  for (int k = 0; k < 2; k++) {
    cnf_model *m = make(ctx, kinds[k], "16-16", 2);
    cnf_fit_options fo;
    cnf_fit_options_default(&fo);
    fo.iters = k == 0 ? 60 : 24, fo.batch = 100, fo.seed = 1;
    fo.val = val, fo.n_val = 300, fo.val_every = fo.iters / 6;
    fo.best_path = path("best.model"), fo.state_path = path("last.model");
    fo.train.lr = k == 0 ? 1e-2 : 5e-3;
    val_log log = {INFINITY, 0, 0};
    fo.callback = log_val, fo.user = &log;
    cnf_fit_data data = {NULL, 0, 2, draw_toy, (void *)"8gaussians"};
    cnf_fit_result res;
    CU_ASSERT_EQUAL_FATAL(cnf_fit(m, &data, &fo, &res), 0);
    CU_ASSERT_EQUAL(log.n, 6);
    CU_ASSERT_TRUE(log.n_best >= 2); /* it learns: a later check is better */
    CU_ASSERT_EQUAL(res.best_val, log.least);
    cnf_model *b = NULL;
    double nll = NAN;
    CU_ASSERT_EQUAL_FATAL(cnf_model_load(&b, ctx, fo.best_path), 0);
    CU_ASSERT_EQUAL(cnf_model_nll(b, &fo.eval_opt, 300, val, &nll, NULL), 0);
    printf("\n  %s: %d checks, %d improved, best %.6f, file %.6f", kinds[k], log.n, log.n_best,
           log.least, nll);
    CU_ASSERT_EQUAL(nll, log.least);
    cnf_model_free(b);
    /* the latest state is the model at the end */
    CU_ASSERT_EQUAL_FATAL(cnf_model_load(&b, ctx, fo.state_path), 0);
    CU_ASSERT_EQUAL(cnf_model_iteration(b), fo.iters);
    CU_ASSERT_TRUE(same_bits(cnf_model_params(b), cnf_model_params(m), cnf_model_param_count(m)));
    cnf_model_free(b);
    cnf_model_free(m);
  }
  /* a stop request before the first step: nothing taken, state saved */
  cnf_model *m = make(ctx, "cnf", "8-8", 2);
  volatile sig_atomic_t stop = 1;
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  fo.stop = &stop, fo.state_path = path("stopped.model");
  cnf_fit_data data = {NULL, 0, 2, draw_toy, (void *)"moons"};
  cnf_fit_result res;
  CU_ASSERT_EQUAL(cnf_fit(m, &data, &fo, &res), 0);
  CU_ASSERT_EQUAL(res.stopped, 1);
  CU_ASSERT_EQUAL(res.steps, 0);
  CU_ASSERT_EQUAL(access(fo.state_path, F_OK), 0);
  cnf_model_free(m);
  printf(" ");
  cnf_ctx_free(ctx);
}

/* ---- flow matching ----------------------------------------------------------- */

static const double g_mean[2] = {3.0, -1.0}, g_sd[2] = {2.0, 0.5};

/* rows of N(m, diag(sd^2)) from the seed */
static int draw_gauss(void *user, uint64_t seed, size_t B, size_t D, double *x) {
  (void)user;
  fill_gauss(x, B * D, seed);
  for (size_t i = 0; i < B * D; i++) x[i] = g_mean[i % 2] + g_sd[i % 2] * x[i];
  return 0;
}

static void test_flow_matching(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  const size_t NT = 2000;
  double *test = malloc(NT * 2 * sizeof(double));
  draw_gauss(NULL, 99, NT, 2, test);
  /* the Gaussian's NLL: its entropy, 0.5 D log(2 pi e) + sum log sd */
  const double want = log(2 * 3.14159265358979323846) + 1.0 + log(g_sd[0]) + log(g_sd[1]);
  /* standardization by moments of other rows, so the path is not exactly
   * standard-to-standard */
  double rows[2 * 500], mean[2], sd[2];
  draw_gauss(NULL, 5, 500, 2, rows);
  cnf_moments(500, 2, rows, mean, sd);
  /* FM and OT-FM from N(0, I) to the data; then FM with the data's
   * standardization, which must keep the density's units right */
  const cnf_objective objs[] = {CNF_OBJECTIVE_FM, CNF_OBJECTIVE_OT_FM, CNF_OBJECTIVE_FM};
  for (int k = 0; k < 3; k++) {
    cnf_model *m = make(ctx, "cnf", "32-32", 4);
    if (k == 2) CU_ASSERT_EQUAL_FATAL(cnf_model_set_standardization(m, mean, sd), 0);
    cnf_fit_options fo;
    cnf_fit_options_default(&fo);
    fo.objective = objs[k];
    fo.iters = 2000, fo.batch = k == 1 ? 128 : 256, fo.seed = 2, fo.train.lr = 3e-3;
    cnf_fit_data data = {NULL, 0, 2, draw_gauss, NULL};
    cnf_fit_result res;
    double nll0 = NAN, nll = NAN;
    CU_ASSERT_EQUAL(cnf_model_nll(m, &fo.eval_opt, NT, test, &nll0, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(cnf_fit(m, &data, &fo, &res), 0);
    CU_ASSERT_EQUAL(res.nfe_fwd_mean, 0.0); /* no ODE solve in training */
    CU_ASSERT_EQUAL(cnf_flow_end_time(cnf_model_flow(m), 0), 0.5); /* T held */
    cnf_stats st;
    cnf_stats_clear(&st);
    CU_ASSERT_EQUAL(cnf_model_nll(m, &fo.eval_opt, NT, test, &nll, &st), 0);
    /* the sample NLL of the true density, the bound's reference */
    double ref = 0.0;
    for (size_t i = 0; i < NT; i++)
      for (size_t j = 0; j < 2; j++) {
        const double u = (test[2 * i + j] - g_mean[j]) / g_sd[j];
        ref += (0.5 * u * u + 0.5 * log(2 * 3.14159265358979323846) + log(g_sd[j])) / (double)NT;
      }
    printf("\n  %s%s: held-out NLL %.4f -> %.4f (true density %.4f, entropy %.4f), loss_avg %.4f, "
           "nfe/solve %.1f", cnf_objective_name(objs[k]), k == 2 ? " (standardized)" : "", nll0, nll, ref, want, res.loss_avg,
           (double)st.nfe / (double)st.solves);
    CU_ASSERT_TRUE(nll - ref < 0.02 && nll - ref > -0.02);
    if (k < 2) CU_ASSERT_TRUE(nll0 - ref > 1.0); /* it learned */
    cnf_model_free(m);
  }
  /* resume under flow matching is exact too */
  cnf_model *a = make(ctx, "cnf", "8-8", 1), *b = make(ctx, "cnf", "8-8", 1);
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  fo.objective = CNF_OBJECTIVE_OT_FM, fo.iters = 12, fo.batch = 64, fo.fm_sigma = 0.1;
  cnf_fit_data data = {NULL, 0, 2, draw_gauss, NULL};
  CU_ASSERT_EQUAL_FATAL(cnf_fit(a, &data, &fo, NULL), 0);
  fo.iters = 5, fo.state_path = path("fm.model");
  CU_ASSERT_EQUAL_FATAL(cnf_fit(b, &data, &fo, NULL), 0);
  cnf_model_free(b);
  CU_ASSERT_EQUAL_FATAL(cnf_model_load(&b, ctx, fo.state_path), 0);
  fo.iters = 12, fo.state_path = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_fit(b, &data, &fo, NULL), 0);
  CU_ASSERT_TRUE(same_bits(cnf_model_params(a), cnf_model_params(b), cnf_model_param_count(a)));
  cnf_model_free(a);
  cnf_model_free(b);
  /* the network in float32: the same steps to float32's rounding */
  cnf_model *d = make(ctx, "cnf", "16-16", 3), *f32 = make(ctx, "cnf", "16-16", 3);
  cnf_fit_options_default(&fo);
  fo.objective = CNF_OBJECTIVE_FM, fo.iters = 20, fo.batch = 64;
  CU_ASSERT_EQUAL_FATAL(cnf_fit(d, &data, &fo, NULL), 0);
  fo.opt.precision = CNF_PRECISION_SINGLE;
  CU_ASSERT_EQUAL_FATAL(cnf_fit(f32, &data, &fo, NULL), 0);
  const size_t P16 = cnf_model_param_count(d);
  double moved = 0.0, diff = 0.0;
  cnf_model *init = make(ctx, "cnf", "16-16", 3);
  for (size_t i = 0; i < P16; i++) {
    moved = fmax(moved, fabs(cnf_model_params(d)[i] - cnf_model_params(init)[i]));
    diff = fmax(diff, fabs(cnf_model_params(d)[i] - cnf_model_params(f32)[i]));
  }
  printf("\n  fm in float32: parameters moved %.3g, float32 - float64 %.3g", moved, diff);
  CU_ASSERT_TRUE(diff > 0.0 && diff < 1e-3 * moved);
  cnf_model_free(init);
  cnf_model_free(d);
  cnf_model_free(f32);
  /* a stack or a flow of two blocks cannot be trained by flow matching */
  cnf_model *s = make(ctx, "maf", "8-8", 1);
  CU_ASSERT_EQUAL(cnf_fit(s, &data, &fo, NULL), CNF_EINVAL);
  printf("\n  %s ", cnf_ctx_errmsg(ctx));
  cnf_model_free(s);
  free(test);
  cnf_ctx_free(ctx);
}

/* ---- gradcheck, moments, arguments ------------------------------------------- */

static void test_gradcheck(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  double x[2 * 20];
  cnf_toy_sample("rings", 20, 2, x);
  const char *kinds[] = {"cnf", "maf", "planar"};
  for (int k = 0; k < 3; k++) {
    cnf_model *m = make(ctx, kinds[k], "6-6", 3);
    cnf_options opt;
    cnf_options_default(&opt);
    opt.rtol = opt.atol = 1e-10, opt.max_steps = 1000000;
    cnf_gradcheck_result r;
    CU_ASSERT_EQUAL_FATAL(cnf_model_gradcheck(m, &opt, 20, x, 1, 40, 1e-5, NULL, NULL, &r), 0);
    printf("\n  %s: %zu of %zu checked, worst %.2e, T %.2e", kinds[k], r.checked, r.P,
           r.worst_param, r.worst_T);
    CU_ASSERT_EQUAL(r.checked, r.P < 40 ? r.P : 40);
    CU_ASSERT_TRUE(r.worst_param < 1e-5);
    CU_ASSERT_TRUE(r.worst_T < 1e-5);
    CU_ASSERT_TRUE(r.loss > 0.0 && isfinite(r.loss));
    cnf_model_free(m);
  }
  printf(" ");
  cnf_ctx_free(ctx);
}

static void test_moments_and_args(void) {
  const double x[] = {1, 10, 2, 10, 3, 10, 6, 10};
  double mean[2], sd[2];
  cnf_moments(4, 2, x, mean, sd);
  CHECK_NEAR(mean[0], 3.0, 1e-15);
  CHECK_NEAR(sd[0], sqrt(14.0 / 3.0), 1e-15); /* divisor N - 1 */
  CHECK_NEAR(mean[1], 10.0, 1e-15);
  CHECK_NEAR(sd[1], 1.0, 0.0); /* a constant column: 1 */
  CU_ASSERT_EQUAL(cnf_trace_for_dim(2), CNF_TRACE_EXACT);
  CU_ASSERT_EQUAL(cnf_trace_for_dim(3), CNF_TRACE_GAUSS);

  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  cnf_model *m = make(ctx, "cnf", "4-4", 1);
  double rows[6] = {0, 1, 2, 3, 4, 5};
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  cnf_fit_data d3 = {rows, 2, 3, NULL, NULL};
  CU_ASSERT_EQUAL(cnf_fit(m, &d3, &fo, NULL), CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "3 columns"));
  cnf_fit_data both = {rows, 3, 2, draw_toy, (void *)"moons"};
  CU_ASSERT_EQUAL(cnf_fit(m, &both, &fo, NULL), CNF_EINVAL);
  cnf_fit_data ok = {rows, 3, 2, NULL, NULL};
  fo.batch = 0;
  CU_ASSERT_EQUAL(cnf_fit(m, &ok, &fo, NULL), CNF_EINVAL);
  cnf_fit_options_default(&fo);
  fo.size = 0;
  CU_ASSERT_EQUAL(cnf_fit(m, &ok, &fo, NULL), CNF_EINVAL);
  cnf_fit_options_default(&fo);
  fo.train.lr = -1;
  CU_ASSERT_EQUAL(cnf_fit(m, &ok, &fo, NULL), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_model_iteration(m), 0);
  /* batch above N is N */
  cnf_fit_options_default(&fo);
  fo.iters = 2;
  CU_ASSERT_EQUAL(cnf_fit(m, &ok, &fo, NULL), 0);
  CU_ASSERT_EQUAL(cnf_model_iteration(m), 2);
  cnf_model_spec sp;
  cnf_model_spec_default(&sp, "field:nosuch", 2);
  cnf_model *f = NULL;
  CU_ASSERT_EQUAL(cnf_model_create(&f, ctx, &sp, 1), CNF_EUNSUPPORTED);
  cnf_model_free(m);
  cnf_ctx_free(ctx);
}

static const test_entry model_tests[] = {
    {"one sign convention: encode, decode, sample, save, load", test_conventions},
    {"cnf_fit takes the steps of a hand-written loop, bit for bit", test_fit_equals_steps},
    {"stopped and resumed equals uninterrupted, bit for bit", test_resume},
    {"two workers with a summing reduction equal one", test_two_workers},
    {"diverged updates undone; failed steps end the run", test_failures},
    {"validation keeps the best model; stop requests", test_validation},
    {"flow matching and OT flow matching reach a Gaussian's NLL", test_flow_matching},
    {"gradcheck of a CNF and of stacks", test_gradcheck},
    {"moments, the trace rule, bad arguments", test_moments_and_args},
    {NULL, NULL},
};

int main(void) {
  if (scratch_dir(dir, sizeof dir, "model") != 0) return 1;
  const char *const names[] = {"model"};
  const test_entry *const tests[] = {model_tests};
  int status = run_suites(names, tests, 1);
  scratch_rmdir(dir);
  return status;
}
