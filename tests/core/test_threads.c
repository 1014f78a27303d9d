/* test_threads.c: contexts on threads at the same time.
 *
 * include/cnf.h promises that objects made from different contexts may be
 * used from different threads at the same time.  Each job here creates a
 * context and a small flow whose network runs on a pool of two threads
 * (cnf_flow_set_threads), evaluates log p with Rademacher probes, takes
 * two training steps and frees everything.  The jobs run first one after
 * the other on the main thread, which gives their reference numbers, then
 * both at once on two pthreads; the concurrent results must equal the
 * references bit for bit, since nothing a job computes depends on the
 * other.  A third job does the same with a discrete stack (RealNVP,
 * cnf_layers.h) beside them.  Built with -fsanitize=thread (scripts/test.sh --tsan) the
 * concurrent run is also a race detector: every allocation of both jobs
 * passes through the allocator hook's counter (src/core/alloc.c), which
 * ThreadSanitizer reported while it was a plain `long`.
 *
 * CUnit is not thread-safe, so the jobs only record numbers and status
 * codes; the main thread asserts after joining them. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "cnf.h"
#include "cnf_layers.h"
#include "test_util.h"

enum { B = 24, STEPS = 2 };

typedef struct job {
  int stack;          /* 0: a CNF flow, 1: a RealNVP stack */
  uint64_t seed;      /* the model's, the data's and the trainer's */
  int rc;             /* first failing status, 0 if none */
  char msg[256];      /* its message */
  double logp[B];     /* log p of the data before training */
  double loss[STEPS]; /* the training steps' losses */
  double theta_sum;   /* sum of the parameters after training */
} job;

static void job_fail(job *j, cnf_ctx *ctx, int rc) {
  if (j->rc == 0) {
    j->rc = rc;
    snprintf(j->msg, sizeof j->msg, "%s", ctx ? cnf_ctx_errmsg(ctx) : "no context");
  }
}

/* The stack's version of the job: the same steps through cnf_layers.h. */
static void stack_run(job *j) {
  cnf_ctx *ctx = NULL;
  cnf_stack *s = NULL;
  double x[B * 2];
  const size_t hidden[1] = {8};
  int rc = cnf_ctx_create(&ctx);
  if (rc != 0) {
    job_fail(j, NULL, rc);
    return;
  }
  if ((rc = cnf_stack_preset(&s, ctx, "realnvp", 2, 2, 1, hidden, j->seed)) != 0) goto fail;
  if ((rc = cnf_toy_sample("8gaussians", B, j->seed + 1, x)) != 0) goto fail;
  if ((rc = cnf_stack_logp(s, B, x, j->logp)) != 0) goto fail;
  cnf_train_options to;
  cnf_train_options_default(&to);
  to.lr = 0.05;
  for (int i = 0; i < STEPS; i++)
    if ((rc = cnf_stack_train_step(s, &to, B, x, &j->loss[i], NULL)) != 0) goto fail;
  j->theta_sum = 0.0;
  for (size_t i = 0; i < cnf_stack_param_count(s); i++) j->theta_sum += cnf_stack_params(s)[i];
  goto done;
fail:
  job_fail(j, ctx, rc);
done:
  cnf_stack_free(s);
  cnf_ctx_free(ctx);
}

static void *job_run(void *arg) {
  job *j = arg;
  if (j->stack) {
    stack_run(j);
    return NULL;
  }
  cnf_ctx *ctx = NULL;
  cnf_flow *f = NULL;
  cnf_train *tr = NULL;
  double x[B * 2];
  int rc = cnf_ctx_create(&ctx);
  if (rc != 0) {
    job_fail(j, NULL, rc);
    return NULL;
  }
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  if ((rc = cnf_mlp_parse_hidden(&cfg, "8-8")) != 0) goto fail;
  if ((rc = cnf_flow_create(&f, ctx, &cfg, 1, 0.5, j->seed)) != 0) goto fail;
  if ((rc = cnf_flow_set_threads(f, 2)) != 0) goto fail;
  if ((rc = cnf_toy_sample("8gaussians", B, j->seed + 1, x)) != 0) goto fail;
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = 1e-6;
  o.trace = CNF_TRACE_RADEMACHER;
  cnf_flow_seed(f, j->seed + 2);
  if ((rc = cnf_flow_logp(f, &o, B, x, j->logp, NULL)) != 0) goto fail;
  cnf_train_options to;
  cnf_train_options_default(&to);
  to.lr = 0.05;
  if ((rc = cnf_train_create(&tr, f, &to, j->seed + 3)) != 0) goto fail;
  for (int i = 0; i < STEPS; i++) {
    cnf_train_report rep;
    if ((rc = cnf_train_step(tr, &o, B, x, &rep)) != 0) goto fail;
    j->loss[i] = rep.loss;
  }
  j->theta_sum = 0.0;
  for (size_t i = 0; i < cnf_flow_param_count(f); i++) j->theta_sum += cnf_flow_params(f)[i];
  goto done;
fail:
  job_fail(j, ctx, rc);
done:
  cnf_train_free(tr);
  cnf_flow_free(f);
  cnf_ctx_free(ctx);
  return NULL;
}

/* 1 if a and b (n) hold the same doubles bit for bit; prints the first
 * difference under `label` otherwise. */
static int same_bits(const double *a, const double *b, size_t n, const char *label) {
  for (size_t i = 0; i < n; i++)
    if (memcmp(&a[i], &b[i], sizeof a[i]) != 0) {
      printf("\n  %s[%zu]: %.17g vs %.17g\n", label, i, a[i], b[i]);
      return 0;
    }
  return 1;
}

static void check_job(const job *got, const job *ref) {
  if (got->rc != 0) printf("\n  job %llu: %s\n", (unsigned long long)got->seed, got->msg);
  CU_ASSERT_EQUAL(got->rc, 0);
  CU_ASSERT_EQUAL(ref->rc, 0);
  /* bit for bit: the same code on the same inputs */
  CU_ASSERT_TRUE(same_bits(got->logp, ref->logp, B, "log p, concurrent vs serial"));
  CU_ASSERT_TRUE(same_bits(got->loss, ref->loss, STEPS, "losses, concurrent vs serial"));
  CU_ASSERT_TRUE(same_bits(&got->theta_sum, &ref->theta_sum, 1, "sum theta, concurrent vs serial"));
  /* the numbers are real ones: finite, a density below its maximum */
  for (size_t b = 0; b < B; b++) CU_ASSERT_TRUE(isfinite(ref->logp[b]) && ref->logp[b] < 5.0);
  CU_ASSERT_TRUE(isfinite(ref->loss[0]) && ref->loss[0] > 0.0);
}

enum { NJOBS = 3 };

static void test_contexts_on_threads(void) {
  job ref[NJOBS], run[NJOBS];
  memset(ref, 0, sizeof ref);
  ref[0].seed = 11;
  ref[1].seed = 29;
  ref[2].seed = 5, ref[2].stack = 1;
  memcpy(run, ref, sizeof run);
  for (int k = 0; k < NJOBS; k++) job_run(&ref[k]);
  /* the jobs differ, so a mix-up between them would show */
  CU_ASSERT_NOT_EQUAL(ref[0].logp[0], ref[1].logp[0]);
  CU_ASSERT_NOT_EQUAL(ref[0].logp[0], ref[2].logp[0]);

  pthread_t tid[NJOBS];
  int started[NJOBS] = {0};
  for (int k = 0; k < NJOBS; k++) started[k] = pthread_create(&tid[k], NULL, job_run, &run[k]) == 0;
  for (int k = 0; k < NJOBS; k++)
    if (started[k]) pthread_join(tid[k], NULL);
  for (int k = 0; k < NJOBS; k++) CU_ASSERT_TRUE_FATAL(started[k]);
  for (int k = 0; k < NJOBS; k++) check_job(&run[k], &ref[k]);
}

static const test_entry threads_tests[] = {
    {"two flows and a stack, each with its own context, on three threads at once: the "
     "serial results",
     test_contexts_on_threads},
    {NULL, NULL},
};

int main(void) {
  const char *const names[] = {"threads"};
  const test_entry *const tests[] = {threads_tests};
  return run_suites(names, tests, 1);
}
