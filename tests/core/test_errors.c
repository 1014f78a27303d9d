/* test_errors.c: the error table of cnf.h (CNF_ERRORS): names, messages,
 * unknown codes, the solver-error predicate, and the context's record of
 * the last error. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cnf.h"
#include "cnf_dynamics.h"
#include "core.h"
#include "suites.h"

typedef struct row {
  int code;
  const char *name, *msg;
} row;

/* The table expanded independently of the library's switch statements. */
static const row table[] = {
#define ROW(name, code, msg) {code, #name, msg},
    CNF_ERRORS(ROW)
#undef ROW
};
#define N_ROWS (sizeof table / sizeof table[0])

static void test_table_round_trip(void) {
  CU_ASSERT_EQUAL(N_ROWS, 15); /* CNF_OK .. CNF_EUNSUPPORTED */
  for (size_t i = 0; i < N_ROWS; i++) {
    CU_ASSERT_STRING_EQUAL(cnf_errname(table[i].code), table[i].name);
    CU_ASSERT_STRING_EQUAL(cnf_strerror(table[i].code), table[i].msg);
    CU_ASSERT_TRUE(strlen(table[i].msg) > 0);
    CU_ASSERT_EQUAL(strncmp(table[i].name, "CNF_", 4), 0);
    /* 0 is success, every error is negative */
    CU_ASSERT_TRUE(i == 0 ? table[i].code == 0 : table[i].code < 0);
    for (size_t j = 0; j < i; j++) {
      CU_ASSERT_NOT_EQUAL(table[i].code, table[j].code);
      CU_ASSERT_STRING_NOT_EQUAL(table[i].name, table[j].name);
      CU_ASSERT_STRING_NOT_EQUAL(table[i].msg, table[j].msg);
    }
  }
  CU_ASSERT_STRING_EQUAL(cnf_errname(CNF_EDIM), "CNF_EDIM");
  CU_ASSERT_STRING_EQUAL(cnf_strerror(CNF_ENOMEM), "out of memory");
}

static void test_unknown_codes(void) {
  const int unknown[] = {1, 7, -15, -16, -100, 1000, INT_MIN, INT_MAX};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    CU_ASSERT_STRING_EQUAL(cnf_strerror(unknown[i]), "unknown error");
    CU_ASSERT_STRING_EQUAL(cnf_errname(unknown[i]), "CNF_E?");
    CU_ASSERT_FALSE(cnf_is_solver_error(unknown[i]));
  }
}

static void test_solver_errors(void) {
  /* exactly ESOLVER, ETOOMUCHWORK, EERRTEST, ECONV, ERHS */
  for (size_t i = 0; i < N_ROWS; i++) {
    const int c = table[i].code;
    const int expect = c == CNF_ESOLVER || c == CNF_ETOOMUCHWORK ||
                       c == CNF_EERRTEST || c == CNF_ECONV || c == CNF_ERHS;
    CU_ASSERT_EQUAL(!!cnf_is_solver_error(c), expect);
  }
  int n = 0;
  for (int c = -1000; c <= 1000; c++) n += !!cnf_is_solver_error(c);
  CU_ASSERT_EQUAL(n, 5);
}

static void test_context_error(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), 0);
  CU_ASSERT_STRING_EQUAL(cnf_ctx_errmsg(ctx), "");
  int rc = CNF_ERROR(ctx, CNF_EDIM, "shape %zu vs %zu", (size_t)3, (size_t)4);
  CU_ASSERT_EQUAL(rc, CNF_EDIM);
  CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), CNF_EDIM);
  CU_ASSERT_STRING_EQUAL(cnf_ctx_errmsg(ctx), "shape 3 vs 4");
  /* an over-long message is truncated, still terminated */
  char big[3 * CNF_ERRMSG_LEN];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  CNF_ERROR(ctx, CNF_EIO, "%s", big);
  CU_ASSERT_EQUAL(strlen(cnf_ctx_errmsg(ctx)), CNF_ERRMSG_LEN - 1);
  cnf_ctx_clear_error(ctx);
  CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), 0);
  CU_ASSERT_STRING_EQUAL(cnf_ctx_errmsg(ctx), "");
  /* NULL contexts are tolerated */
  CU_ASSERT_EQUAL(CNF_ERROR(NULL, CNF_EINVAL, "nobody listens"), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_ctx_errcode(NULL), 0);
  CU_ASSERT_STRING_EQUAL(cnf_ctx_errmsg(NULL), "");
  cnf_ctx_clear_error(NULL);
  cnf_ctx_free(ctx);
  cnf_ctx_free(NULL);
  CU_ASSERT_EQUAL(cnf_ctx_create(NULL), CNF_EINVAL);
}

static int sum_loss(void *user, size_t B, size_t D, const double *z1, const double *delta1,
                    double *loss, double *gz1, double *gdelta1) {
  (void)user, (void)z1, (void)delta1;
  *loss = 0.0;
  for (size_t i = 0; i < B * D; i++) gz1[i] = 0.0;
  for (size_t b = 0; b < B; b++) gdelta1[b] = 1.0;
  return 0;
}

static int normal_logp(void *user, size_t B, size_t D, const double *x, double *logp) {
  (void)user;
  for (size_t b = 0; b < B; b++) logp[b] = cnf_log_normal(x + b * D, D);
  return 0;
}

/* An empty batch (B = 0) is an error, not a no-op, for the field-level
 * solves of cnf_dynamics.h: CNF_EINVAL, a message that names it, and the
 * arrays left alone.  The same call with B = 1 succeeds, so the refusal
 * is about B alone. */
static void test_empty_batch(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, 2), 0);
  const double theta[6] = {-0.5, 0.25, 0.0, -1.0, 0.1, 0.0}, tout[2] = {0.5, 1.0};
  double z[2] = {1.0, 2.0}, delta = 0.5, loss = 7.0, lp = 3.0;
  cnf_options o;
  cnf_options_default(&o);
  const cnf_density p0 = {normal_logp, NULL, NULL};
#define EMPTY(call)                                                             \
  do {                                                                          \
    cnf_ctx_clear_error(ctx);                                                   \
    CU_ASSERT_EQUAL(call, CNF_EINVAL);                                          \
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "empty batch (B = 0)")); \
  } while (0)
  EMPTY(cnf_dyn_solve(dyn, theta, &o, 0.0, 1.0, 0, 0, NULL, z, &delta, NULL));
  EMPTY(cnf_dyn_solve_times(dyn, theta, &o, 0.0, 2, tout, 0, 0, NULL, z, &delta, NULL, NULL, NULL));
  EMPTY(cnf_dyn_grad(dyn, theta, &o, 0.0, 1.0, 0, 0, NULL, z, sum_loss, NULL, &loss, NULL, NULL,
                     NULL, NULL, NULL, NULL));
  EMPTY(cnf_dyn_logp_at(dyn, theta, &o, &p0, 0.0, 1.0, 0, 0, NULL, z, &lp, NULL));
#undef EMPTY
  CU_ASSERT_TRUE(z[0] == 1.0 && z[1] == 2.0 && delta == 0.5 && loss == 7.0 && lp == 3.0);
  /* B = 1: z' = A z + b, A = [[-0.5, 0.25], [0, -1]], tr A = -1.5, so
   * Delta(1) = 0.5 + 1.5 */
  CU_ASSERT_EQUAL(cnf_dyn_solve(dyn, theta, &o, 0.0, 1.0, 1, 0, NULL, z, &delta, NULL), 0);
  CU_ASSERT_TRUE(fabs(delta - 2.0) < 1e-4);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* Calls that fail with a context at hand leave a message naming the
 * problem, not only a code. */
static void test_messages_with_context(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, 2), 0);
  const double theta[6] = {0}, z[2] = {0};
  double dz[2], div[1], jv[6];
  /* the exact directions are the D = 2 unit vectors: K = 3 is refused */
  cnf_ctx_clear_error(ctx);
  CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, 0.0, 1, 3, z, theta, NULL, dz, div), CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "K = D = 2, not K = 3"));
  cnf_ctx_clear_error(ctx);
  CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, 0.0, 1, 3, z, theta, NULL, dz, jv), CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "K = D = 2, not K = 3"));
  cnf_ctx_clear_error(ctx);
  CU_ASSERT_EQUAL(cnf_dyn_reserve(dyn, 0, 1), CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "B = 0"));
  cnf_dyn_free(dyn);

  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  CU_ASSERT_EQUAL_FATAL(cnf_mlp_parse_hidden(&cfg, "4"), 0);
  cnf_flow *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create(&f, ctx, &cfg, 1, 0.5, 7), 0);
  cnf_train *tr = NULL;
  cnf_ctx_clear_error(ctx);
  CU_ASSERT_EQUAL(cnf_train_create(&tr, f, NULL, 1), CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "options is NULL"));
  CU_ASSERT_PTR_NULL(tr);
  cnf_flow_free(f);
  cnf_ctx_free(ctx);
}

/* A message that wraps the previous one (the context's own buffer as an
 * argument) comes out whole: CNF_ERROR formats into a buffer of its own
 * first.  Formatting in place gave "x.cnf: inconsistent header: x.cnf:
 * inconsistent header: ..." (vsnprintf with overlapping buffers). */
static void test_wrapped_message(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  CNF_ERROR(ctx, CNF_EINVAL, "stack: need D >= %d", 1);
  CU_ASSERT_EQUAL(
      CNF_ERROR(ctx, CNF_ECORRUPT, "%s: inconsistent header: %s", "x.cnf", cnf_ctx_errmsg(ctx)),
      CNF_ECORRUPT);
  CU_ASSERT_STRING_EQUAL(cnf_ctx_errmsg(ctx), "x.cnf: inconsistent header: stack: need D >= 1");
  /* twice more, each wrapping the last, and one that fills the buffer */
  CNF_ERROR(ctx, CNF_EIO, "a: %s", cnf_ctx_errmsg(ctx));
  CNF_ERROR(ctx, CNF_EIO, "b: %s", cnf_ctx_errmsg(ctx));
  CU_ASSERT_STRING_EQUAL(cnf_ctx_errmsg(ctx),
                         "b: a: x.cnf: inconsistent header: stack: need D >= 1");
  char big[2 * CNF_ERRMSG_LEN];
  memset(big, 'q', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  CNF_ERROR(ctx, CNF_EIO, "%s", big);
  CNF_ERROR(ctx, CNF_EIO, "c: %s", cnf_ctx_errmsg(ctx));
  const char *m = cnf_ctx_errmsg(ctx);
  CU_ASSERT_EQUAL(strlen(m), CNF_ERRMSG_LEN - 1);
  CU_ASSERT_TRUE(strncmp(m, "c: qqq", 6) == 0 && strspn(m + 3, "q") == CNF_ERRMSG_LEN - 4);
  cnf_ctx_free(ctx);
}

/* cnf__check_finite: the first five offending rows (1-based) and how many
 * in all; finite input and NULL pass. */
static void test_check_finite(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  double x[20 * 2];
  for (size_t i = 0; i < 40; i++) x[i] = 0.25 * (double)i - 3.0;
  CU_ASSERT_EQUAL(cnf__check_finite(ctx, "who", "what", x, 20, 2), 0);
  CU_ASSERT_EQUAL(cnf__check_finite(ctx, "who", "what", NULL, 20, 2), 0);
  CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), 0);
  x[2 * 6 + 1] = NAN; /* row 7 */
  CU_ASSERT_EQUAL(cnf__check_finite(ctx, "who", "what", x, 20, 2), CNF_ENONFINITE);
  CU_ASSERT_STRING_EQUAL(cnf_ctx_errmsg(ctx),
                         "who: what is not finite (NaN or infinite) at row 7 (1 of 20)");
  const size_t rows[] = {1, 3, 4, 9, 12, 15, 20};
  for (size_t k = 0; k < 7; k++) x[2 * (rows[k] - 1)] = k % 2 ? INFINITY : -INFINITY;
  CU_ASSERT_EQUAL(cnf__check_finite(ctx, "who", "what", x, 20, 2), CNF_ENONFINITE);
  CU_ASSERT_STRING_EQUAL(
      cnf_ctx_errmsg(ctx),
      "who: what is not finite (NaN or infinite) at rows 1, 3, 4, 7, 9, ... (8 of 20)");
  cnf_ctx_free(ctx);
}

const test_entry errors_tests[] = {
    {"table: distinct names and messages, round trip", test_table_round_trip},
    {"unknown codes", test_unknown_codes},
    {"cnf_is_solver_error is ESOLVER..ERHS", test_solver_errors},
    {"context records and clears the last error", test_context_error},
    {"B = 0 is CNF_EINVAL with a message for the field solves", test_empty_batch},
    {"failures with a context carry a message", test_messages_with_context},
    {"a message may wrap the previous one", test_wrapped_message},
    {"cnf__check_finite names the first rows and counts them", test_check_finite},
    {NULL, NULL},
};
