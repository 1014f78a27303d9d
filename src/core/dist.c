/* dist.c: the context's workers (cnf_comm, cnf.h) and the small
 * collective functions the flow, ode and adjoint layers use to make one ODE
 * system out of the rows of all workers.  No MPI here: everything goes
 * through the comm's callbacks. */
#include <string.h>

#include "core.h"

int cnf_ctx_set_comm(cnf_ctx *ctx, const cnf_comm *comm, cnf_comm_vector_fn vector) {
  if (ctx == NULL) return CNF_EINVAL;
  if (comm == NULL) {
    memset(&ctx->comm, 0, sizeof ctx->comm);
    ctx->vector = NULL;
    ctx->has_comm = 0;
    return 0;
  }
  if (comm->size < 1 || comm->rank < 0 || comm->rank >= comm->size ||
      (comm->size > 1 && comm->sum_all == NULL))
    return CNF_ERROR(ctx, CNF_EINVAL, "comm: bad workers (rank %d of %d%s)", comm->rank, comm->size,
                     comm->sum_all ? "" : ", no sum_all");
  ctx->comm = *comm;
  ctx->vector = vector;
  ctx->has_comm = 1;
  return 0;
}

const cnf_comm *cnf_ctx_comm(const cnf_ctx *ctx) {
  return ctx != NULL && ctx->has_comm ? &ctx->comm : NULL;
}

int cnf__dist_enabled(const cnf_ctx *ctx) {
  return ctx != NULL && ctx->has_comm && ctx->comm.size > 1 && ctx->vector != NULL;
}

int cnf__dist_on(const cnf_ctx *ctx) {
  return cnf__dist_enabled(ctx) && ctx->dist_on > 0;
}

void cnf__dist_range(size_t n, size_t r, size_t R, size_t *lo, size_t *hi) {
  *lo = r * n / R;
  *hi = (r + 1) * n / R;
}

int cnf__dist_sum(cnf_ctx *ctx, double *buf, size_t n) {
  if (ctx->comm.sum_all(ctx->comm.user, buf, n) != 0)
    return CNF_ERROR(ctx, CNF_EIO, "comm: the sum over %d workers failed", ctx->comm.size);
  return 0;
}

int cnf__dist_status(cnf_ctx *ctx, int rc) {
  double s[2] = {rc < 0 ? 1.0 : 0.0, rc > 0 ? 1.0 : 0.0};
  if (ctx->comm.sum_all(ctx->comm.user, s, 2) != 0) return rc < 0 ? rc : -1;
  if (s[0] > 0) return rc < 0 ? rc : -1;
  if (s[1] > 0) return rc > 0 ? rc : 1;
  return 0;
}

int cnf__dist_rows(cnf_ctx *ctx, size_t n, size_t *B, size_t *lo) {
  const size_t R = (size_t)ctx->comm.size, r = (size_t)ctx->comm.rank;
  double *c = cnf__dalloc(ctx, R);
  if (c == NULL) return CNF_ENOMEM;
  memset(c, 0, R * sizeof(double));
  c[r] = (double)n;
  int rc = cnf__dist_sum(ctx, c, R);
  *B = 0, *lo = 0;
  for (size_t k = 0; k < R && rc == 0; k++) {
    if (k == r) *lo = *B;
    *B += (size_t)c[k];
  }
  cnf__free(c);
  return rc;
}
