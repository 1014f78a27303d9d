/* error.c: the error table (cnf_strerror, cnf_errname) and the one function
 * that records errors in a context. */
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
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
  va_end(ap);
  return code;
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
