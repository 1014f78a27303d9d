/* nvec.c: serial state vectors, or their distributed wrappers (nvec.h). */
#include "nvec.h"

#include <nvector/nvector_serial.h>

int cnf__nvec_make(cnf_ctx *ctx, cnf__nvec *out, size_t n, double *data) {
  SUNContext s = (SUNContext)ctx->sunctx;
  out->v = out->local = NULL;
  out->local =
      data != NULL ? N_VMake_Serial((sunindextype)n, data, s) : N_VNew_Serial((sunindextype)n, s);
  if (out->local == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "out of memory for %zu unknowns", n);
  cnf__nvec_ops(out->local);
  if (!cnf__dist_on(ctx)) {
    out->v = out->local;
    return 0;
  }
  out->v = ctx->vector(ctx->comm.user, out->local);
  if (out->v == NULL) {
    N_VDestroy(out->local);
    out->local = NULL;
    return CNF_ERROR(ctx, CNF_ENOMEM,
                     "the distributed vector of %zu local unknowns could not "
                     "be made",
                     n);
  }
  return 0;
}

void cnf__nvec_free(cnf__nvec *v) {
  if (v == NULL) return;
  if (v->v != NULL && v->v != v->local) N_VDestroy(v->v);
  if (v->local != NULL) N_VDestroy(v->local);
  v->v = v->local = NULL;
}
