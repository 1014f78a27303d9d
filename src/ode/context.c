/* context.c: cnf_ctx, which owns the SUNDIALS context (SUNContext) every
 * SUNDIALS object of the library is created with. */
#include <sundials/sundials_context.h>

#include "core.h"

static void sunctx_free(void *p) {
  SUNContext s = p;
  SUNContext_Free(&s);
}

int cnf_ctx_create(cnf_ctx **out) {
  if (out == NULL) return CNF_EINVAL;
  *out = NULL;
  cnf_ctx *ctx = cnf__calloc(1, sizeof *ctx);
  if (ctx == NULL) return CNF_ENOMEM;
  SUNContext s = NULL;
  if (SUNContext_Create(NULL, &s) != 0 || s == NULL) {
    cnf__free(ctx);
    return CNF_ENOMEM;
  }
  ctx->sunctx = s;
  ctx->sunctx_free = sunctx_free;
  *out = ctx;
  return 0;
}

void cnf_ctx_free(cnf_ctx *ctx) {
  if (ctx == NULL) return;
  if (ctx->sunctx_free != NULL) ctx->sunctx_free(ctx->sunctx);
  cnf__free(ctx);
}
