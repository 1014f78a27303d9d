/* cnf_mpi.h: the MPI implementation of the library's workers (cnf_comm,
 * cnf.h), in its own library (cnf_mpi, built when MPI and SUNDIALS' MPI
 * vectors are found).
 *
 *   cnf_mpi *mp;
 *   cnf_mpi_create(&mp, MPI_COMM_WORLD);   // after MPI_Init
 *   cnf_mpi_attach(mp, ctx);               // ctx's flow calls: collective
 *   ... cnf_fit / cnf_model_logp as with one process ...
 *   cnf_mpi_free(mp);                      // before MPI_Finalize
 *
 * sum_all is an MPI_Allreduce (MPI_SUM) on a duplicate of the
 * communicator; the vector factory wraps the library's serial vectors in
 * SUNDIALS' MPIPlusX (N_VMake_MPIPlusX), so CVODE's norms and dot products
 * reduce over the ranks.  A failed MPI call is reported (non-zero from
 * sum_all, NULL from the factory); MPI_ERRORS_RETURN is set on the
 * duplicate so a broken peer does not abort inside the library. */
#ifndef CNF_MPI_H
#define CNF_MPI_H

#include <mpi.h>

#include "cnf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cnf_mpi cnf_mpi;

/* Workers over the ranks of comm (duplicated; MPI must be initialised).
 * CNF_EINVAL if MPI is not initialised, CNF_ENOMEM, CNF_EIO for a failed
 * MPI call. */
int cnf_mpi_create(cnf_mpi **out, MPI_Comm comm);
/* Frees the duplicate communicator (before MPI_Finalize); NULL is fine. */
void cnf_mpi_free(cnf_mpi *mp);
/* The workers (rank, size, sum_all), valid while mp lives. */
const cnf_comm *cnf_mpi_comm(const cnf_mpi *mp);
/* The vector factory (cnf_comm_vector_fn; user = cnf_mpi_comm(mp)->user). */
cnf_comm_vector_fn cnf_mpi_vector(void);
/* cnf_ctx_set_comm(ctx, cnf_mpi_comm(mp), cnf_mpi_vector()). */
int cnf_mpi_attach(cnf_mpi *mp, cnf_ctx *ctx);

#ifdef __cplusplus
}
#endif
#endif /* CNF_MPI_H */
