/* test_errors.c: the error table of cnf.h (CNF_ERRORS): names, messages,
 * unknown codes, the solver-error predicate, and the context's record of
 * the last error. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cnf.h"
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
    {"a message may wrap the previous one", test_wrapped_message},
    {"cnf__check_finite names the first rows and counts them", test_check_finite},
    {NULL, NULL},
};
