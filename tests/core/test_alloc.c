/* test_alloc.c: the failing-allocator loop of docs/design.md, section 13 ("Memory").
 *
 * For each entry point that allocates: count the library allocations n of
 * a clean call, then for k = 0, 1, 2, ... make allocation k (and every
 * later one) fail.  Every k < n must give a clean error (CNF_ENOMEM,
 * recorded in the context with a message) and leave nothing allocated
 * (the ASan/LSan build checks leaks); k = n must succeed and give the
 * clean call's result.  Objects left behind by a failed call (a flow whose
 * solve failed) must still work afterwards.
 *
 * Only the library's cnf__ allocations can be failed: SUNDIALS, GSL and
 * OpenBLAS allocate with their own malloc. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf.h"
#include "cnf_dynamics.h"
#include "core.h"
#include "scratch.h"
#include "suites.h"

/* One entry point under test.  prep runs with allocation working, run is
 * the call whose allocations fail, done checks and releases (allocation
 * working again). */
typedef struct oom_case {
  const char *label;
  int (*prep)(void *u);
  int (*run)(void *u);
  void (*done)(void *u, int rc);
  int code; /* the error expected on failure */
} oom_case;

static void oom_loop(const oom_case *c, void *u, cnf_ctx *ctx) {
  cnf__alloc_fail_after(-1);
  CU_ASSERT_EQUAL_FATAL(c->prep(u), 0);
  cnf__alloc_fail_after(-1); /* reset the counter */
  int rc = c->run(u);
  long n = cnf__alloc_fail_after(-1);
  CU_ASSERT_EQUAL_FATAL(rc, 0);
  c->done(u, rc);
  CU_ASSERT_TRUE(n > 0); /* otherwise the loop below tests nothing */

  long k = 0;
  for (;; k++) {
    CU_ASSERT_EQUAL_FATAL(c->prep(u), 0);
    cnf_ctx_clear_error(ctx);
    cnf__alloc_fail_after(k);
    rc = c->run(u);
    cnf__alloc_fail_after(-1);
    if (rc == 0) {
      c->done(u, rc);
      break;
    }
    CU_ASSERT_EQUAL(rc, c->code);
    CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), rc);
    CU_ASSERT_TRUE(strlen(cnf_ctx_errmsg(ctx)) > 0);
    if (rc != c->code)
      printf("\n  %s, allocation %ld failing: %s (%s)\n", c->label, k,
             cnf_errname(rc), cnf_ctx_errmsg(ctx));
    c->done(u, rc);
    if (k > 10000) break; /* safety net */
  }
  /* every allocation of the clean call was necessary and checked */
  CU_ASSERT_EQUAL(k, n);
  printf("\n  %s: %ld allocations, each failure handled ", c->label, n);
}

static int noop_prep(void *u) {
  (void)u;
  return 0;
}

/* ---- networks and flows -------------------------------------------------- */

typedef struct flow_case {
  cnf_ctx *ctx;
  cnf_mlp_config cfg;
  size_t blocks;
  cnf_dyn *dyn;
  cnf_flow *flow;
  cnf_options opt;
  double x[5 * 2], logp[5], ref[5];
  double ref_params[64];
  const char *path;
} flow_case;

static int dyn_run(void *u) {
  flow_case *c = u;
  return cnf_dyn_mlp_create(&c->dyn, c->ctx, &c->cfg);
}
static void dyn_done(void *u, int rc) {
  flow_case *c = u;
  CU_ASSERT_TRUE(rc == 0 ? c->dyn != NULL : c->dyn == NULL);
  if (rc == 0) {
    CU_ASSERT_EQUAL(cnf_dyn_param_count(c->dyn), cnf_mlp_param_count(&c->cfg));
  }
  cnf_dyn_free(c->dyn);
  c->dyn = NULL;
}

static int create_run(void *u) {
  flow_case *c = u;
  return cnf_flow_create(&c->flow, c->ctx, &c->cfg, c->blocks, 0.5, 42);
}
static void create_done(void *u, int rc) {
  flow_case *c = u;
  CU_ASSERT_TRUE(rc == 0 ? c->flow != NULL : c->flow == NULL);
  if (rc == 0) {
    size_t P = cnf_flow_param_count(c->flow);
    CU_ASSERT_EQUAL(P, c->blocks * cnf_mlp_param_count(&c->cfg));
    CU_ASSERT_EQUAL(memcmp(cnf_flow_params(c->flow), c->ref_params,
                           (P < 64 ? P : 64) * sizeof(double)), 0);
  }
  cnf_flow_free(c->flow);
  c->flow = NULL;
}

/* logp, sample: a fresh flow each time, so the first-use allocations of
 * the solver workspaces are failed too. */
static int fresh_flow(void *u) {
  flow_case *c = u;
  return cnf_flow_create(&c->flow, c->ctx, &c->cfg, c->blocks, 0.5, 42);
}
static int logp_run(void *u) {
  flow_case *c = u;
  return cnf_flow_logp(c->flow, &c->opt, 5, c->x, c->logp, NULL);
}
static void logp_done(void *u, int rc) {
  flow_case *c = u;
  if (rc != 0) {
    /* the flow survives the failure: the next call works */
    cnf_flow_seed(c->flow, 42);
    CU_ASSERT_EQUAL(logp_run(u), 0);
  }
  CHECK_CLOSE(c->logp, c->ref, 5, 1e-12, 1e-12, "logp after OOM");
  cnf_flow_free(c->flow);
  c->flow = NULL;
}
static int sample_run(void *u) {
  flow_case *c = u;
  return cnf_flow_sample(c->flow, &c->opt, 5, c->x, c->logp, NULL);
}
static void sample_done(void *u, int rc) {
  flow_case *c = u;
  if (rc != 0) {
    cnf_flow_seed(c->flow, 42);
    CU_ASSERT_EQUAL(sample_run(u), 0);
  }
  CHECK_CLOSE(c->logp, c->ref, 5, 1e-12, 1e-12, "sample logp after OOM");
  cnf_flow_free(c->flow);
  c->flow = NULL;
}

static void setup_flow_case(flow_case *c, cnf_ctx *ctx, size_t blocks) {
  memset(c, 0, sizeof *c);
  c->ctx = ctx;
  cnf_mlp_config_default(&c->cfg, 2);
  CU_ASSERT_EQUAL(cnf_mlp_parse_hidden(&c->cfg, "8-8"), 0);
  c->blocks = blocks;
  cnf_options_default(&c->opt);
  fill_gauss(c->x, 10, 7);
}

static void test_oom_create(void) {
  /* cnf_ctx_create has no context to record an error in: the code only */
  cnf_ctx *ctx = NULL;
  cnf__alloc_fail_after(-1);
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  long n = cnf__alloc_fail_after(-1), k = 0;
  cnf_ctx_free(ctx);
  for (;; k++) {
    ctx = (cnf_ctx *)&k; /* must be cleared on failure */
    cnf__alloc_fail_after(k);
    int rc = cnf_ctx_create(&ctx);
    cnf__alloc_fail_after(-1);
    if (rc == 0) break;
    CU_ASSERT_EQUAL(rc, CNF_ENOMEM);
    CU_ASSERT_PTR_NULL(ctx);
  }
  CU_ASSERT_TRUE(n > 0 && k == n);
  printf("\n  cnf_ctx_create: %ld allocations, each failure handled ", n);

  flow_case c;
  setup_flow_case(&c, ctx, 3);
  const oom_case dyn = {"cnf_dyn_mlp_create", noop_prep, dyn_run, dyn_done, CNF_ENOMEM};
  oom_loop(&dyn, &c, ctx);

  /* the reference parameters of a clean create */
  cnf_flow *ref = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create(&ref, ctx, &c.cfg, 3, 0.5, 42), 0);
  memcpy(c.ref_params, cnf_flow_params(ref), 64 * sizeof(double));
  cnf_flow_free(ref);
  const oom_case cr = {"cnf_flow_create", noop_prep, create_run, create_done, CNF_ENOMEM};
  oom_loop(&cr, &c, ctx);
  cnf_ctx_free(ctx);
}

static void run_solve_loops(size_t blocks, cnf_trace trace) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  flow_case c;
  setup_flow_case(&c, ctx, blocks);
  c.opt.trace = trace;
  c.opt.probes = 2;
  c.opt.batch = 3; /* two batches of 3 and 2 rows */

  /* references from a clean flow */
  CU_ASSERT_EQUAL_FATAL(fresh_flow(&c), 0);
  CU_ASSERT_EQUAL_FATAL(logp_run(&c), 0);
  memcpy(c.ref, c.logp, sizeof c.ref);
  cnf_flow_free(c.flow);
  for (int i = 0; i < 5; i++) CU_ASSERT_TRUE(isfinite(c.ref[i]));
  char label[96];
  snprintf(label, sizeof label, "cnf_flow_logp (%zu blocks, %s)", blocks,
           cnf_trace_name(trace));
  const oom_case lp = {label, fresh_flow, logp_run, logp_done, CNF_ENOMEM};
  oom_loop(&lp, &c, ctx);

  CU_ASSERT_EQUAL_FATAL(fresh_flow(&c), 0);
  CU_ASSERT_EQUAL_FATAL(sample_run(&c), 0);
  memcpy(c.ref, c.logp, sizeof c.ref);
  cnf_flow_free(c.flow);
  snprintf(label, sizeof label, "cnf_flow_sample (%zu blocks, %s)", blocks,
           cnf_trace_name(trace));
  const oom_case sa = {label, fresh_flow, sample_run, sample_done, CNF_ENOMEM};
  oom_loop(&sa, &c, ctx);
  cnf_ctx_free(ctx);
}

static void test_oom_logp_exact(void) { run_solve_loops(1, CNF_TRACE_EXACT); }
static void test_oom_logp_hutch(void) { run_solve_loops(2, CNF_TRACE_RADEMACHER); }

/* ---- model files -------------------------------------------------------- */

static char dir[1024];

static int save_run(void *u) {
  flow_case *c = u;
  return cnf_flow_save(c->flow, c->path);
}
static void save_done(void *u, int rc) {
  flow_case *c = u;
  char first[256];
  int n = scratch_count(dir, first, sizeof first);
  /* success: exactly the model; failure: nothing, no temporary file */
  CU_ASSERT_EQUAL(n, rc == 0 ? 1 : 0);
  if (rc == 0) CU_ASSERT_STRING_EQUAL(first, "model.cnf");
  remove(c->path);
}
static int load_run(void *u) {
  flow_case *c = u;
  return cnf_flow_load(&c->flow, c->ctx, c->path);
}
static void load_done(void *u, int rc) {
  flow_case *c = u;
  CU_ASSERT_TRUE(rc == 0 ? c->flow != NULL : c->flow == NULL);
  if (rc == 0) {
    CU_ASSERT_EQUAL(cnf_flow_param_count(c->flow), c->blocks * cnf_mlp_param_count(&c->cfg));
    CU_ASSERT_EQUAL(memcmp(cnf_flow_params(c->flow), c->ref_params, 64 * sizeof(double)), 0);
  }
  cnf_flow_free(c->flow);
  c->flow = NULL;
}

static void test_oom_model_io(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  CU_ASSERT_EQUAL_FATAL(scratch_dir(dir, sizeof dir, "core"), 0);
  char path[1100];
  flow_case c;
  setup_flow_case(&c, ctx, 2);
  c.path = scratch_path(path, sizeof path, dir, "model.cnf");
  cnf_flow *keep = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create(&keep, ctx, &c.cfg, 2, 0.5, 42), 0);
  c.flow = keep;
  const oom_case sv = {"cnf_flow_save", noop_prep, save_run, save_done, CNF_ENOMEM};
  oom_loop(&sv, &c, ctx);

  memcpy(c.ref_params, cnf_flow_params(keep), 64 * sizeof(double));
  CU_ASSERT_EQUAL_FATAL(cnf_flow_save(keep, c.path), 0);
  cnf_flow_free(keep);
  const oom_case ld = {"cnf_flow_load", noop_prep, load_run, load_done, CNF_ENOMEM};
  oom_loop(&ld, &c, ctx);
  scratch_rmdir(dir);
  cnf_ctx_free(ctx);
}

/* ---- CSV ------------------------------------------------------------------ */

typedef struct csv_case {
  cnf_ctx *ctx;
  const char *path;
  double *data;
  size_t rows, cols;
} csv_case;

static int csv_run(void *u) {
  csv_case *c = u;
  return cnf_csv_read(c->ctx, c->path, &c->data, &c->rows, &c->cols);
}
static void csv_done(void *u, int rc) {
  csv_case *c = u;
  if (rc == 0) {
    CU_ASSERT_TRUE(c->rows == 3000 && c->cols == 3);
    CU_ASSERT_EQUAL(c->data[3 * 2999 + 2], 2999.0 / 8.0);
  } else {
    CU_ASSERT_PTR_NULL(c->data);
  }
  cnf_free(c->data);
  c->data = NULL;
}

static void test_oom_csv(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  CU_ASSERT_EQUAL_FATAL(scratch_dir(dir, sizeof dir, "core"), 0);
  char path[1100];
  scratch_path(path, sizeof path, dir, "data.csv");
  /* 3000 rows of ~40 bytes: the reader's buffer (64 KiB) and row array
   * (1024 rows) both have to grow, so their growth paths fail too. */
  FILE *fp = fopen(path, "w");
  CU_ASSERT_PTR_NOT_NULL_FATAL(fp);
  fprintf(fp, "a,b,c\n");
  for (int i = 0; i < 3000; i++)
    fprintf(fp, "%.10f,%d,%.17g\n", i * 1e-3, -i, i / 8.0);
  fclose(fp);
  csv_case c = {ctx, path, NULL, 0, 0};
  const oom_case cs = {"cnf_csv_read", noop_prep, csv_run, csv_done, CNF_ENOMEM};
  oom_loop(&cs, &c, ctx);
  scratch_rmdir(dir);
  cnf_ctx_free(ctx);
}

const test_entry alloc_tests[] = {
    {"OOM loop: cnf_ctx_create, cnf_dyn_mlp_create, cnf_flow_create", test_oom_create},
    {"OOM loop: logp and sample, exact trace, batches", test_oom_logp_exact},
    {"OOM loop: logp and sample, Hutchinson, 2 blocks", test_oom_logp_hutch},
    {"OOM loop: cnf_flow_save, cnf_flow_load", test_oom_model_io},
    {"OOM loop: cnf_csv_read", test_oom_csv},
    {NULL, NULL},
};
