/* nvec.h: the state vectors the ode and adjoint layers hand to CVODE:
 * SUNDIALS serial vectors, wrapped by the context's vector factory
 * (cnf_comm.vector, cnf.h) while a distributed solve is on, so CVODE's
 * norms and dot products reduce over the workers.  Their operations are
 * the library's own (nvec_ops.c).  Internal. */
#ifndef CNF_NVEC_H
#define CNF_NVEC_H

#include <stddef.h>
#include <sundials/sundials_nvector.h>

#include "core.h"

typedef struct cnf__nvec {
  N_Vector v;     /* what CVODE sees: local itself, or its wrapper */
  N_Vector local; /* the serial vector of this worker's n entries */
} cnf__nvec;

/* A vector of n local entries over data (not copied, not owned), or a new
 * array if data is NULL; distributed when cnf__dist_on(ctx).  CNF_ENOMEM
 * (message in ctx) on failure, with *out cleared. */
int cnf__nvec_make(cnf_ctx *ctx, cnf__nvec *out, size_t n, double *data);
/* Gives the serial vector v (and every clone CVODE makes of it) the
 * library's vectorised operations (nvec_ops.c); other vectors are left
 * alone. */
void cnf__nvec_ops(N_Vector v);
/* Destroys both vectors; accepts a cleared one. */
void cnf__nvec_free(cnf__nvec *v);

#endif /* CNF_NVEC_H */
