/* bench_mpi.c: training throughput over MPI ranks (docs/performance.md,
 * "Data parallelism over MPI"; docs/scaling.md).
 *
 *   mpirun -np R bench_mpi D HIDDEN TRACE BATCH STEPS THREADS
 *
 * trains a fresh CNF (D-HIDDEN-D, concatsquash, tanh) for STEPS steps of
 * global batch BATCH with cnf_fit, the R ranks' rows one distributed ODE
 * system (cnf_mpi), THREADS threads per rank; D = 2 draws 8gaussians, any
 * other D standard normal rows (a stand-in of the same width: the cost of
 * a step depends on the width, the network and the solver's steps, which
 * every configuration shares).  One untimed warm-up step first.  Prints
 * one line: samples per second (BATCH * steps / wall seconds), seconds per
 * step, solver steps and right-hand sides per training step, and the MPI
 * reductions per step (count, bytes, share of the wall time spent inside
 * MPI_Allreduce, which includes waiting for the slower rank), counted by
 * interposing MPI_Allreduce (PMPI).  Then the latency of an 8-byte and of
 * a P-double allreduce (1000 and 100 repetitions). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnf_model.h"
#include "cnf_mpi.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* every MPI_Allreduce of the process, SUNDIALS' MPIPlusX norms included */
static long n_red = 0;
static double bytes_red = 0.0, t_red = 0.0;

int MPI_Allreduce(const void *sendbuf, void *recvbuf, int count, MPI_Datatype datatype, MPI_Op op,
                  MPI_Comm comm) {
  int sz = 0;
  MPI_Type_size(datatype, &sz);
  const double t0 = now();
  int rc = PMPI_Allreduce(sendbuf, recvbuf, count, datatype, op, comm);
  t_red += now() - t0;
  n_red++;
  bytes_red += (double)count * sz;
  return rc;
}

static int draw(void *user, uint64_t seed, size_t B, size_t D, double *x) {
  (void)user;
  if (D == 2) return cnf_toy_sample("8gaussians", B, seed, x);
  /* standard normal rows from a simple seeded generator (Box-Muller) */
  uint64_t s = seed ? seed : 1;
  for (size_t i = 0; i < B * D; i += 2) {
    double u[2];
    for (int k = 0; k < 2; k++) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      u[k] = ((double)(s >> 11) + 0.5) / 9007199254740992.0;
    }
    const double r = sqrt(-2.0 * log(u[0]));
    x[i] = r * cos(6.283185307179586 * u[1]);
    if (i + 1 < B * D) x[i + 1] = r * sin(6.283185307179586 * u[1]);
  }
  return 0;
}

typedef struct acc {
  long fsteps, fnfe, bsteps, bnfe, n;
} acc;

static int count(void *user, const cnf_fit_report *rep) {
  acc *a = user;
  a->fsteps += rep->fwd.nsteps, a->fnfe += rep->fwd.nfe;
  a->bsteps += rep->bwd.nsteps, a->bnfe += rep->bwd.nfe + rep->bwd.nquad;
  a->n++;
  return 0;
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (argc != 7) {
    if (rank == 0)
      fprintf(stderr, "usage: mpirun -np R bench_mpi D HIDDEN TRACE BATCH STEPS THREADS\n");
    MPI_Finalize();
    return 2;
  }
  const size_t D = (size_t)atoi(argv[1]), B = (size_t)atoi(argv[4]);
  const long steps = atol(argv[5]);
  const size_t threads = (size_t)atoi(argv[6]);
  cnf_trace trace = CNF_TRACE_EXACT;
  if (cnf_trace_parse(argv[3], &trace) != 0) {
    if (rank == 0) fprintf(stderr, "bench_mpi: unknown trace '%s'\n", argv[3]);
    MPI_Finalize();
    return 2;
  }
  cnf_mpi *mp = NULL;
  cnf_ctx *ctx = NULL;
  cnf_model *m = NULL;
  cnf_model_spec sp;
  cnf_model_spec_default(&sp, "cnf", D);
  sp.hidden = argv[2];
  if (cnf_mpi_create(&mp, MPI_COMM_WORLD) != 0 || cnf_ctx_create(&ctx) != 0 ||
      cnf_mpi_attach(mp, ctx) != 0 || cnf_model_create(&m, ctx, &sp, 1) != 0 ||
      cnf_model_set_threads(m, threads) != 0) {
    fprintf(stderr, "bench_mpi: setup failed: %s\n", ctx ? cnf_ctx_errmsg(ctx) : "");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  fo.batch = B, fo.seed = 2, fo.save_every = 1000000;
  fo.opt.trace = trace, fo.opt.probes = 1;
  acc a;
  memset(&a, 0, sizeof a);
  fo.callback = count, fo.user = &a;
  cnf_fit_data data = {NULL, 0, D, draw, NULL};
  fo.iters = 1; /* warm-up */
  int rc = cnf_fit(m, &data, &fo, NULL);
  memset(&a, 0, sizeof a);
  MPI_Barrier(MPI_COMM_WORLD);
  n_red = 0, bytes_red = 0.0, t_red = 0.0;
  const double t0 = now();
  fo.iters = 1 + steps;
  if (rc == 0) rc = cnf_fit(m, &data, &fo, NULL);
  const double wall = now() - t0;
  if (rc != 0) {
    fprintf(stderr, "bench_mpi: fit failed: %s\n", cnf_ctx_errmsg(ctx));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  const long nr = n_red;
  const double br = bytes_red, tr = t_red;
  /* reduction latency */
  double x8 = 1.0, tl8 = now();
  for (int i = 0; i < 1000; i++)
    MPI_Allreduce(MPI_IN_PLACE, &x8, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  tl8 = (now() - tl8) / 1000.0;
  const size_t P = cnf_model_param_count(m) + 1;
  double *g = calloc(P, sizeof(double)), tlP = now();
  for (int i = 0; i < 100; i++)
    MPI_Allreduce(MPI_IN_PLACE, g, (int)P, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  tlP = (now() - tlP) / 100.0;
  if (rank == 0) {
    const double n = (double)a.n;
    printf(
        "D %zu hidden %s trace %s batch %zu ranks %d threads %zu steps %ld: "
        "samples/s %.1f  s/step %.4f  fwd steps %.1f nfe %.1f  bwd steps %.1f nfe+nquad %.1f  "
        "allreduce/step %.1f  bytes/step %.0f  allreduce share %.3f  "
        "latency 8 B %.2f us, %zu doubles %.1f us\n",
        D, argv[2], argv[3], B, size, threads, steps, (double)B * (double)steps / wall,
        wall / (double)steps, (double)a.fsteps / n, (double)a.fnfe / n, (double)a.bsteps / n,
        (double)a.bnfe / n, (double)nr / (double)steps, br / (double)steps, tr / wall, 1e6 * tl8, P,
        1e6 * tlP);
  }
  free(g);
  cnf_model_free(m);
  cnf_ctx_free(ctx);
  cnf_mpi_free(mp);
  MPI_Finalize();
  return 0;
}
