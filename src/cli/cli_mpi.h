/* cli_mpi.h: the CLI under mpirun (cli_mpi.c, compiled in when MPI is
 * found; without it these are no-ops and the tool is one process). */
#ifndef CNF_CLI_MPI_H
#define CNF_CLI_MPI_H

#include "cnf.h"

#ifdef CNF_HAVE_MPI
/* Under mpirun (its environment says so): MPI_Init, the workers made,
 * MPI_Finalize registered with atexit, and on ranks above 0 stdout and
 * stderr sent to /dev/null (unless CNF_MPI_PRINT_ALL is set).  A plain
 * start does nothing. */
void cnf__cli_mpi_init(int *argc, char ***argv);
/* Give ctx the workers (their flow solves become one distributed system);
 * 0 without MPI.  Returns a CNF code. */
int cnf__cli_mpi_attach(cnf_ctx *ctx);
/* 1 if this process writes files (rank 0, or no MPI). */
int cnf__cli_mpi_writer(void);
#else
static inline void cnf__cli_mpi_init(int *argc, char ***argv) {
  (void)argc, (void)argv;
}
static inline int cnf__cli_mpi_attach(cnf_ctx *ctx) {
  (void)ctx;
  return 0;
}
static inline int cnf__cli_mpi_writer(void) {
  return 1;
}
#endif

#endif /* CNF_CLI_MPI_H */
