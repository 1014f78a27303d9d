/* test_mpi.c: distributed training and evaluation against one process.
 *
 * Run under mpirun with R ranks.  For the exact trace and Gaussian
 * Hutchinson probes, 100 steps of cnf_fit on 8gaussians (global batch
 * 100, the same seed) are taken by the R ranks as one distributed ODE
 * system, and by rank 0 alone as one process.  At every step the losses
 * must agree to 1e-10 relative and the forward and backward solves must
 * take the same number of steps (the same step-size sequence: the
 * distributed system is one system, not R).  Then log p of 10000 rows of
 * the trained model (exact trace, and Hutchinson with probes per global
 * row) is computed by all ranks and by rank 0 alone: equal to 1e-10
 * relative.  Shorter runs (20 steps) cover the backsolve adjoint and BDF
 * (left out with --core, which CI uses at 4 ranks to save time).
 * Prints one line per check; exits 0 only if all pass. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnf_model.h"
#include "cnf_mpi.h"

#define STEPS 100
#define NLOGP 10000

typedef struct trail {
  double loss[STEPS];
  long fsteps[STEPS], bsteps[STEPS];
  int status[STEPS];
} trail;

static int record(void *user, const cnf_fit_report *rep) {
  trail *t = user;
  const long i = rep->step - 1;
  if (i >= 0 && i < STEPS) {
    t->loss[i] = rep->loss;
    t->fsteps[i] = rep->fwd.nsteps;
    t->bsteps[i] = rep->bwd.nsteps;
    t->status[i] = rep->status;
  }
  return 0;
}

static int draw(void *user, uint64_t seed, size_t B, size_t D, double *x) {
  (void)user, (void)D;
  return cnf_toy_sample("8gaussians", B, seed, x);
}

typedef struct config {
  const char *name;
  cnf_trace trace;
  cnf_adjoint adjoint;
  cnf_method method;
  long steps;
  int logp; /* also compare log p of NLOGP rows */
} config;

static const config configs[] = {
    {"exact", CNF_TRACE_EXACT, CNF_ADJOINT_CHECKPOINT, CNF_METHOD_ADAMS, STEPS, 1},
    {"hutchinson", CNF_TRACE_GAUSS, CNF_ADJOINT_CHECKPOINT, CNF_METHOD_ADAMS, STEPS, 1},
    {"hutchinson backsolve", CNF_TRACE_GAUSS, CNF_ADJOINT_BACKSOLVE, CNF_METHOD_ADAMS, 20, 0},
    {"exact bdf", CNF_TRACE_EXACT, CNF_ADJOINT_CHECKPOINT, CNF_METHOD_BDF, 20, 0},
};

/* Train a fresh model on ctx (with or without workers); the trail and the
 * model out. */
static int train(cnf_ctx *ctx, const config *c, trail *t, cnf_model **out) {
  cnf_model_spec sp;
  cnf_model_spec_default(&sp, "cnf", 2);
  sp.hidden = "32-32";
  int rc = cnf_model_create(out, ctx, &sp, 11);
  if (rc != 0) return rc;
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  fo.iters = c->steps, fo.batch = 100, fo.seed = 5;
  fo.opt.trace = c->trace;
  fo.opt.adjoint = c->adjoint;
  fo.opt.method = c->method;
  fo.opt.probes = 1;
  fo.callback = record, fo.user = t;
  cnf_fit_data data = {NULL, 0, 2, draw, NULL};
  memset(t, 0, sizeof *t);
  return cnf_fit(*out, &data, &fo, NULL);
}

/* A barrier that sleeps instead of spinning, so the ranks waiting while
 * rank 0 computes its one-process reference leave it the cores. */
static void quiet_barrier(void) {
  MPI_Request req;
  MPI_Ibarrier(MPI_COMM_WORLD, &req);
  int done = 0;
  const struct timespec ms = {0, 1000000};
  while (MPI_Test(&req, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done) nanosleep(&ms, NULL);
}

static double rel(double a, double b) {
  return fabs(a - b) / fmax(fabs(b), 1e-300);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1, fails = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  cnf_mpi *mp = NULL;
  cnf_ctx *ctx = NULL, *solo = NULL;
  if (cnf_mpi_create(&mp, MPI_COMM_WORLD) != 0 || cnf_ctx_create(&ctx) != 0 ||
      cnf_mpi_attach(mp, ctx) != 0 || cnf_ctx_create(&solo) != 0) {
    fprintf(stderr, "rank %d: setup failed\n", rank);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  double *x = malloc(NLOGP * 2 * sizeof(double));
  double *lp = malloc(NLOGP * sizeof(double)), *lp1 = malloc(NLOGP * sizeof(double));
  cnf_toy_sample("8gaussians", NLOGP, 99, x);
  const int core = argc > 1 && strcmp(argv[1], "--core") == 0;
  for (size_t k = 0; k < sizeof configs / sizeof configs[0]; k++) {
    const config *c = &configs[k];
    if (core && !c->logp) continue;
    const char *tn = c->name;
    static trail td, t1;
    cnf_model *md = NULL, *m1 = NULL;
    int rc = train(ctx, c, &td, &md);
    if (rc != 0) {
      fprintf(stderr, "rank %d: distributed fit (%s) failed: %s\n", rank, tn, cnf_ctx_errmsg(ctx));
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* log p of the trained model, every rank: one system per solve */
    cnf_options eo;
    cnf_options_default(&eo);
    eo.trace = c->trace, eo.probes = 1, eo.batch = 1000;
    cnf_model_seed(md, 21);
    if (c->logp) rc = cnf_model_logp(md, &eo, NLOGP, x, lp, NULL);
    if (rc != 0) {
      fprintf(stderr, "rank %d: distributed logp failed: %s\n", rank, cnf_ctx_errmsg(ctx));
      MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (rank == 0) {
      /* one process on the whole batch */
      rc = train(solo, c, &t1, &m1);
      if (rc != 0) {
        fprintf(stderr, "one-process fit failed: %s\n", cnf_ctx_errmsg(solo));
        MPI_Abort(MPI_COMM_WORLD, 1);
      }
      double worst = 0.0;
      long worst_i = 0, step_mismatch = 0, bad_status = 0;
      for (long i = 0; i < c->steps; i++) {
        const double r = rel(td.loss[i], t1.loss[i]);
        if (!(r <= worst)) worst = r, worst_i = i;
        step_mismatch += td.fsteps[i] != t1.fsteps[i] || td.bsteps[i] != t1.bsteps[i];
        bad_status += td.status[i] != 0 || t1.status[i] != 0;
      }
      const int ok = worst <= 1e-10 && step_mismatch == 0 && bad_status == 0;
      fails += !ok;
      printf(
          "%s: %d ranks vs 1, %s, %ld steps: max rel loss diff %.3g (step %ld: %.17g vs "
          "%.17g), solver step counts differ at %ld steps, failed steps %ld\n",
          ok ? "PASS" : "FAIL", size, tn, c->steps, worst, worst_i + 1, td.loss[worst_i],
          t1.loss[worst_i], step_mismatch, bad_status);
      cnf_model_free(m1);
    }
    if (rank == 0 && c->logp) {
      /* log p with the distributed model's weights, one process */
      const char *path = "test_mpi_model.tmp";
      cnf_model *mr = NULL;
      rc = cnf_model_save(md, path);
      if (rc == 0) rc = cnf_model_load(&mr, solo, path);
      remove(path);
      if (rc == 0) cnf_model_seed(mr, 21);
      if (rc == 0) rc = cnf_model_logp(mr, &eo, NLOGP, x, lp1, NULL);
      double wl = rc == 0 ? 0.0 : INFINITY;
      for (size_t i = 0; i < NLOGP && rc == 0; i++) wl = fmax(wl, rel(lp[i], lp1[i]));
      const int okl = wl <= 1e-10;
      fails += !okl;
      printf("%s: %d ranks vs 1, %s, log p of %d rows (solves of 1000): max rel diff %.3g\n",
             okl ? "PASS" : "FAIL", size, tn, NLOGP, wl);
      cnf_model_free(mr);
    }
    quiet_barrier(); /* the others sleep while rank 0 computes the reference */
    /* every rank holds the same log p */
    double s[2] = {0.0, 0.0};
    for (size_t i = 0; i < NLOGP; i++) s[0] += lp[i];
    double mn = s[0], mx = s[0];
    MPI_Allreduce(MPI_IN_PLACE, &mn, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (rank == 0 && c->logp) {
      const int oks = mn == mx;
      fails += !oks;
      printf("%s: %s log p identical on all %d ranks\n", oks ? "PASS" : "FAIL", tn, size);
    }
    cnf_model_free(md);
  }
  MPI_Bcast(&fails, 1, MPI_INT, 0, MPI_COMM_WORLD);
  free(x), free(lp), free(lp1);
  cnf_ctx_free(ctx);
  cnf_ctx_free(solo);
  cnf_mpi_free(mp);
  MPI_Finalize();
  return fails == 0 ? 0 : 1;
}
