/* threads.c: the default thread count of a batch split (cnf.h,
 * cnf_threads_default). */
#define _POSIX_C_SOURCE 200809L /* sysconf */
#include <stdlib.h>
#include <unistd.h>

#include "core.h"

size_t cnf_threads_default(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE"); /* Open MPI */
  if (local == NULL) local = getenv("MPI_LOCALNRANKS");     /* MPICH */
  const long ranks = local != NULL ? strtol(local, NULL, 10) : 1;
  if (ranks > 1) n /= ranks;
  return n < 1 ? 1 : n > 64 ? 64 : (size_t)n;
}
