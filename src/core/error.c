/* error.c: the error table (cnf_strerror, cnf_errname) and the one function
 * that records errors in a context. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <gsl/gsl_errno.h>

#include "core.h"

const char *cnf_strerror(int status) {
  switch (status) {
#define CNF_X_MSG(name, code, msg) \
  case code:                       \
    return msg;
    CNF_ERRORS(CNF_X_MSG)
#undef CNF_X_MSG
    default:
      return "unknown error";
  }
}

const char *cnf_errname(int status) {
  switch (status) {
#define CNF_X_NAME(name, code, msg) \
  case code:                        \
    return #name;
    CNF_ERRORS(CNF_X_NAME)
#undef CNF_X_NAME
    default:
      return "CNF_E?";
  }
}

int cnf_is_solver_error(int status) {
  return status <= CNF_ESOLVER && status >= CNF_ERHS;
}

int cnf__error(cnf_ctx *ctx, int code, const char *file, int line,
               const char *fmt, ...) {
  if (ctx == NULL) return code;
  ctx->errcode = code;
  ctx->errfile = file;
  ctx->errline = line;
  /* Format into a local buffer first: a caller may pass ctx->errmsg itself
   * as an argument (to wrap an earlier message), and vsnprintf with an
   * argument that overlaps its output is undefined behaviour. */
  char buf[CNF_ERRMSG_LEN];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  memcpy(ctx->errmsg, buf, sizeof buf);
  return code;
}

int cnf__check_finite(cnf_ctx *ctx, const char *who, const char *what, const double *x, size_t rows,
                      size_t cols) {
  enum { SHOW = 5 }; /* rows named in the message */
  size_t bad = 0, first[SHOW];
  for (size_t r = 0; x != NULL && r < rows; r++) {
    int ok = 1;
    for (size_t j = 0; j < cols; j++) ok &= isfinite(x[r * cols + j]) != 0;
    if (!ok && bad < SHOW) first[bad] = r + 1;
    bad += !ok;
  }
  if (bad == 0) return 0;
  char list[SHOW * 24 + 8];
  size_t n = 0;
  for (size_t k = 0; k < bad && k < SHOW; k++)
    n += (size_t)snprintf(list + n, sizeof list - n, "%s%zu", k ? ", " : "", first[k]);
  if (bad > SHOW) snprintf(list + n, sizeof list - n, ", ...");
  return CNF_ERROR(ctx, CNF_ENONFINITE,
                   "%s: %s is not finite (NaN or infinite) at %s %s (%zu of %zu)", who, what,
                   bad == 1 ? "row" : "rows", list, bad, rows);
}

int cnf_ctx_errcode(const cnf_ctx *ctx) { return ctx ? ctx->errcode : 0; }

const char *cnf_ctx_errmsg(const cnf_ctx *ctx) {
  return ctx ? ctx->errmsg : "";
}

void cnf_ctx_clear_error(cnf_ctx *ctx) {
  if (ctx == NULL) return;
  ctx->errcode = 0;
  ctx->errmsg[0] = '\0';
  ctx->errfile = NULL;
  ctx->errline = 0;
}

void cnf_gsl_errors_off(void) { gsl_set_error_handler_off(); }
