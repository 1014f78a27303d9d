/* cli_mpi.c: `mpirun -np R cnf train|logp|eval|sample ...`.
 *
 * Every rank parses the same options and reads the same input files (a
 * bad file fails on every rank alike, before any solve: exit 2 with one
 * process's message, printed by rank 0).  The library context of each
 * command gets the ranks as its workers (cnf_mpi_attach), so every flow
 * solve is one ODE system distributed over the ranks: densities are
 * computed for all rows on all ranks, training takes the steps one process
 * takes.  Rank 0 alone writes files (cnf_fit saves on rank 0; tables go
 * through cnf__cli_write_table) and prints; the other ranks' stdout and
 * stderr go to /dev/null unless CNF_MPI_PRINT_ALL is set.
 *
 * Faults: a failed solve fails on every rank (the solver's decisions are
 * global); a stop request (SIGINT, SIGTERM) on any rank stops all after
 * the step, with a checkpoint; a rank that dies makes mpirun end the
 * others, and the model file on disk is the last one written atomically. */
#include "cli_mpi.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "cnf_mpi.h"

static cnf_mpi *workers = NULL;
static int rank = 0;

static void finish(void) {
  cnf_mpi_free(workers);
  workers = NULL;
  int fin = 0;
  MPI_Finalized(&fin);
  if (!fin) MPI_Finalize();
}

/* Started by mpirun or another MPI launcher. */
static int launched(void) {
  const char *vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK", "MPI_LOCALNRANKS"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    if (getenv(vars[i]) != NULL) return 1;
  return 0;
}

void cnf__cli_mpi_init(int *argc, char ***argv) {
  if (!launched()) return;
  if (MPI_Init(argc, argv) != MPI_SUCCESS) {
    fprintf(stderr, "cnf: MPI_Init failed\n");
    exit(1);
  }
  atexit(finish);
  int size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size > 1 && cnf_mpi_create(&workers, MPI_COMM_WORLD) != 0) {
    fprintf(stderr, "cnf: rank %d: cannot set up the MPI workers\n", rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (rank > 0 && getenv("CNF_MPI_PRINT_ALL") == NULL) {
    if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
      return; /* printing as before */
  }
}

int cnf__cli_mpi_attach(cnf_ctx *ctx) {
  return workers != NULL ? cnf_mpi_attach(workers, ctx) : 0;
}

int cnf__cli_mpi_writer(void) {
  return rank == 0;
}
