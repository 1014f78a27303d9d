/* mpi.c: cnf_comm over MPI (include/cnf_mpi.h).  The only file of the
 * project that calls MPI in the library; it depends on cnf.h, MPI and
 * SUNDIALS' NVECTOR_MPIPLUSX. */
#include <nvector/nvector_mpiplusx.h>
#include <stdlib.h>

#include "cnf_mpi.h"

struct cnf_mpi {
  MPI_Comm comm; /* a duplicate, with MPI_ERRORS_RETURN */
  cnf_comm c;
};

static int sum_all(void *user, double *buf, size_t n) {
  cnf_mpi *mp = user;
  /* counts are int: large buffers go in pieces */
  const size_t piece = (size_t)1 << 30;
  for (size_t i = 0; i < n; i += piece) {
    const int k = (int)(n - i < piece ? n - i : piece);
    if (MPI_Allreduce(MPI_IN_PLACE, buf + i, k, MPI_DOUBLE, MPI_SUM, mp->comm) != MPI_SUCCESS)
      return -1;
  }
  return 0;
}

static void *make_vector(void *user, void *local) {
  cnf_mpi *mp = user;
  N_Vector x = local;
  return N_VMake_MPIPlusX(mp->comm, x, x->sunctx);
}

int cnf_mpi_create(cnf_mpi **out, MPI_Comm comm) {
  if (out == NULL) return CNF_EINVAL;
  *out = NULL;
  int init = 0;
  MPI_Initialized(&init);
  if (!init) return CNF_EINVAL;
  cnf_mpi *mp = calloc(1, sizeof *mp);
  if (mp == NULL) return CNF_ENOMEM;
  int rank = 0, size = 0;
  if (MPI_Comm_dup(comm, &mp->comm) != MPI_SUCCESS) {
    free(mp);
    return CNF_EIO;
  }
  MPI_Comm_set_errhandler(mp->comm, MPI_ERRORS_RETURN);
  if (MPI_Comm_rank(mp->comm, &rank) != MPI_SUCCESS ||
      MPI_Comm_size(mp->comm, &size) != MPI_SUCCESS) {
    cnf_mpi_free(mp);
    return CNF_EIO;
  }
  mp->c.rank = rank;
  mp->c.size = size;
  mp->c.sum_all = sum_all;
  mp->c.user = mp;
  *out = mp;
  return 0;
}

void cnf_mpi_free(cnf_mpi *mp) {
  if (mp == NULL) return;
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin && mp->comm != MPI_COMM_NULL) MPI_Comm_free(&mp->comm);
  free(mp);
}

const cnf_comm *cnf_mpi_comm(const cnf_mpi *mp) {
  return mp ? &mp->c : NULL;
}

cnf_comm_vector_fn cnf_mpi_vector(void) {
  return make_vector;
}

int cnf_mpi_attach(cnf_mpi *mp, cnf_ctx *ctx) {
  if (mp == NULL || ctx == NULL) return CNF_EINVAL;
  return cnf_ctx_set_comm(ctx, &mp->c, make_vector);
}
