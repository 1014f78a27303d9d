/* bench_dyn.c: the cost of one dynamics evaluation of the MLP field, and of
 * one whole forward solve, against dgemm's own rate and FFJORD's figures.
 *
 * Network: the default D-64-64-64-D concatsquash/tanh MLP at D = 2
 * (cnf_mlp_config_default), parameters from cnf_mlp_init_params with a
 * fixed seed.  For each batch B and each OpenBLAS thread count:
 *
 *   f       cnf_dyn_f                                   R = B rows
 *   exact   cnf_dyn_f_div, v = NULL, K = D              R = (1 + D) B rows
 *   hutch   cnf_dyn_f_div, v = one Gaussian probe       R = 2 B rows
 *   vjp     cnf_dyn_vjp, a = w = 1/B, v = NULL, gth     R = (1 + D) B rows
 *           (one reverse sweep with its own forward recomputation)
 *
 * FLOPs count the GEMMs only: a forward pass over R stacked rows is
 * sum_l 2 R in_l out_l; the reverse sweep adds, per layer, the weight
 * gradient (2 R in out) and the input adjoint (2 R in out, only the B
 * primal rows at the first layer, as the code does).  Activations, gates,
 * copies and reductions are not counted.
 *
 * Timing.  Each case is warmed up, then the number of calls per sample is
 * raised until a sample lasts --sample-ms; the figure is the median over
 * --samples samples of the time per call.  With one OpenBLAS thread
 * everything runs on the calling thread, and the clock is that thread's CPU
 * time (CLOCK_THREAD_CPUTIME_ID): on a shared machine it leaves out the
 * time the process waits for a core.  With more threads it is wall time
 * (CLOCK_MONOTONIC); the wall-time median is printed beside every figure.
 * dgemm's reference rates are measured in the same run, right after the op
 * they are compared with.
 *
 * Also: a whole forward solve (cnf_flow_logp) of a random flow and, with
 * --ffjord, of FFJORD's trained 8gaussians model; the batch split over two
 * pthreads (what a threaded mlp.c could reach); --profile for perf.
 *
 * Output: markdown on standard output, progress on standard error. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "cnf.h"
#include "cnf_dynamics.h"

#ifndef BENCH_CHUNK_ROWS
#define BENCH_CHUNK_ROWS 0 /* unknown: the build did not say */
#endif

/* ---- references: FFJORD (PyTorch 1.13, float32, 2 threads) ------------ */

#define NB 3
static const size_t batches[NB] = {100, 1000, 10000};

enum { OP_F, OP_EXACT, OP_HUTCH, OP_VJP, NOPS };
static const char *op_name[NOPS] = {
    "forward f", "forward + exact trace (K = 2)", "forward + Hutchinson (K = 1)",
    "adjoint evaluation (vjp, exact trace term)"};
static const char *op_short[NOPS] = {"f", "exact", "hutch", "vjp"};
/* FFJORD's µs per call on this machine kind, batch 100 / 1000 / 10000
 * (docs/performance.md gives their source; Hutchinson from the second set
 * of reference figures). */
static const double ref_us[NOPS][NB] = {
    {272, 973, 6784},
    {950, 12818, 147716},
    {670, 1942, 12436},
    {1995, 15675, 118319}};
static const char *ref_src[NOPS] = {
    "FFJORD forward", "FFJORD forward + exact trace", "FFJORD forward + Hutchinson",
    "FFJORD forward + exact trace + VJP"};
/* whole forward solve at batch 100, ms, and FFJORD's forward NFE there
 * (8gaussians; docs/performance.md gives the source) */
static const double ref_solve_lo = 56.0, ref_solve_hi = 72.0, ref_solve_nfe = 67.0;

/* ---- options -------------------------------------------------------- */

typedef struct opts {
  int threads[4];
  int nthreads;
  int samples;       /* samples per figure */
  double sample_ms;  /* minimum length of one sample */
  int solve;         /* also time whole solves */
  int solve_reps;    /* solves per figure at batch 100 (fewer at 1000) */
  const char *ffjord; /* FFJORD-trained weights.txt, or NULL */
  int sweep_row;     /* print the chunk-size sweep rows only */
  int sweep_header;
  int split;         /* also time the batch split over two pthreads */
  int prof_op;       /* --profile: loop one op (-1: off) */
  size_t prof_B;
  double prof_s;
} opts;

static void usage(FILE *fp) {
  fprintf(fp,
          "usage: bench_dyn [--threads 1,2] [--samples N] [--sample-ms MS]\n"
          "                 [--no-solve] [--no-split] [--solve-reps N] [--ffjord WEIGHTS]\n"
          "                 [--sweep-header | --sweep-row]\n"
          "Times the MLP dynamics ops and whole solves; prints markdown.\n"
          "  --threads LIST   OpenBLAS thread counts, first one is the headline (1,2)\n"
          "  --samples N      samples per figure, the median is reported (31)\n"
          "  --sample-ms MS   minimum duration of one sample (3)\n"
          "  --no-solve       skip the whole-solve timings\n"
          "  --no-split       skip the two-pthread split-batch timings\n"
          "  --solve-reps N   solves per figure at batch 100 (15)\n"
          "  --ffjord FILE    also solve with FFJORD's trained 8gaussians weights\n"
          "  --sweep-header   print the header of the chunk-size sweep table\n"
          "  --sweep-row      print the sweep rows (medians, minima; 1 thread) of\n"
          "                   this build\n"
          "  --profile OP:B:S call one op (f, exact, hutch, vjp) at batch B for\n"
          "                   S seconds with the first thread count, for perf\n");
}

static int parse_opts(int argc, char **argv, opts *o) {
  memset(o, 0, sizeof *o);
  o->threads[0] = 1, o->threads[1] = 2, o->nthreads = 2;
  o->samples = 31;
  o->sample_ms = 3.0;
  o->solve = 1;
  o->solve_reps = 15;
  o->prof_op = -1;
  o->split = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--threads") && val) {
      o->nthreads = 0;
      char buf[64];
      snprintf(buf, sizeof buf, "%s", val);
      for (char *tok = strtok(buf, ","); tok && o->nthreads < 4; tok = strtok(NULL, ","))
        o->threads[o->nthreads++] = atoi(tok);
      i++;
    } else if (!strcmp(a, "--samples") && val) {
      o->samples = atoi(val), i++;
    } else if (!strcmp(a, "--sample-ms") && val) {
      o->sample_ms = atof(val), i++;
    } else if (!strcmp(a, "--solve-reps") && val) {
      o->solve_reps = atoi(val), i++;
    } else if (!strcmp(a, "--ffjord") && val) {
      o->ffjord = val, i++;
    } else if (!strcmp(a, "--profile") && val) {
      char name[16];
      if (sscanf(val, "%15[a-z]:%zu:%lf", name, &o->prof_B, &o->prof_s) != 3) {
        usage(stderr);
        return -1;
      }
      for (int k = 0; k < NOPS; k++)
        if (!strcmp(name, op_short[k])) o->prof_op = k;
      if (o->prof_op < 0 || o->prof_B == 0) {
        usage(stderr);
        return -1;
      }
      i++;
    } else if (!strcmp(a, "--no-split")) {
      o->split = 0;
    } else if (!strcmp(a, "--no-solve")) {
      o->solve = 0;
    } else if (!strcmp(a, "--sweep-row")) {
      o->sweep_row = 1;
    } else if (!strcmp(a, "--sweep-header")) {
      o->sweep_header = 1;
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      exit(0);
    } else {
      usage(stderr);
      return -1;
    }
  }
  if (o->nthreads == 0 || o->samples < 1 || o->sample_ms <= 0 || o->solve_reps < 1) {
    usage(stderr);
    return -1;
  }
  for (int i = 0; i < o->nthreads; i++)
    if (o->threads[i] < 1) {
      usage(stderr);
      return -1;
    }
  return 0;
}

/* ---- timing --------------------------------------------------------- */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread: what a single-threaded call costs, without
 * the time it waits while the shared machine's other jobs run. */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The clock of the figures: thread CPU time while everything runs on the
 * calling thread (one OpenBLAS thread), wall time otherwise. */
static int use_cpu_clock = 1;

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *s, int n) {
  qsort(s, (size_t)n, sizeof *s, cmp_double);
  return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

typedef int (*bench_fn)(void *arg);

typedef struct timing {
  double med, min; /* seconds per call on the figures' clock */
  double wall;     /* median wall time per call */
} timing;

/* Median and minimum seconds per call of fn over o->samples samples. */
static timing time_fn(const opts *o, bench_fn fn, void *arg) {
  timing tm = {0, 0, 0};
  /* warm up (caches, page faults, OpenBLAS buffers) for >= 20 ms */
  double t0 = now();
  long calls = 0;
  do {
    if (fn(arg) != 0) {
      fprintf(stderr, "bench_dyn: the benchmarked call failed\n");
      exit(1);
    }
    calls++;
  } while (now() - t0 < 0.02 || calls < 3);
  double per = (now() - t0) / (double)calls;
  long n = (long)ceil(o->sample_ms * 1e-3 / per);
  if (n < 1) n = 1;
  double *s = malloc(2 * (size_t)o->samples * sizeof *s), *w = s + o->samples;
  if (s == NULL) exit(1);
  for (int i = 0; i < o->samples; i++) {
    double a = now(), c = cpu_now();
    for (long j = 0; j < n; j++) fn(arg);
    double c1 = cpu_now(), a1 = now();
    w[i] = (a1 - a) / (double)n;
    s[i] = use_cpu_clock ? (c1 - c) / (double)n : w[i];
  }
  tm.med = median(s, o->samples);
  tm.min = s[0];
  tm.wall = median(w, o->samples);
  free(s);
  return tm;
}

/* ---- the cases ------------------------------------------------------ */

typedef struct dyn_case {
  int op;
  cnf_dyn *dyn;
  size_t B, D, K;
  double t;
  const double *theta; /* (P) */
  const double *z;     /* (B, D) */
  const double *eps;   /* (1, B, D) */
  const double *a;     /* (B, D), all 1/B */
  const double *w;     /* (B), all 1/B */
  double *dz, *div, *gz, *gth;
} dyn_case;

static int run_case(void *arg) {
  dyn_case *c = arg;
  switch (c->op) {
  case OP_F:
    return cnf_dyn_f(c->dyn, c->t, c->B, c->z, c->theta, c->dz);
  case OP_EXACT:
    return cnf_dyn_f_div(c->dyn, c->t, c->B, c->D, c->z, c->theta, NULL, c->dz, c->div);
  case OP_HUTCH:
    return cnf_dyn_f_div(c->dyn, c->t, c->B, 1, c->z, c->theta, c->eps, c->dz, c->div);
  default:
    return cnf_dyn_vjp(c->dyn, c->t, c->B, c->D, c->z, c->theta, c->a, c->w, NULL,
                       NULL, c->gz, c->gth);
  }
}

/* Two cores by splitting the batch: the calling thread runs the first half
 * on one MLP instance, a persistent worker the second half on another
 * (each with its own workspace, OpenBLAS at one thread).  This emulates
 * what mlp.c could do internally by handing chunks to two threads; the
 * vjp pays for zeroing and adding the worker's private gth (P). */
typedef struct split_pool {
  pthread_t th;
  pthread_barrier_t start, done;
  int quit, rc;
  dyn_case work;   /* the worker's half */
  double *gth_w;   /* (P) the worker's private parameter gradient */
  size_t P;
} split_pool;

static void *split_worker(void *arg) {
  split_pool *p = arg;
  for (;;) {
    pthread_barrier_wait(&p->start);
    if (p->quit) break;
    if (p->work.op == OP_VJP) memset(p->gth_w, 0, p->P * sizeof *p->gth_w);
    p->rc = run_case(&p->work);
    pthread_barrier_wait(&p->done);
  }
  return NULL;
}

typedef struct split_case {
  split_pool *pool;
  dyn_case main; /* the calling thread's half */
} split_case;

static int run_split(void *arg) {
  split_case *c = arg;
  split_pool *p = c->pool;
  pthread_barrier_wait(&p->start);
  int rc = run_case(&c->main);
  pthread_barrier_wait(&p->done);
  if (c->main.op == OP_VJP)
    for (size_t i = 0; i < p->P; i++) c->main.gth[i] += p->gth_w[i];
  return rc != 0 ? rc : p->rc;
}

typedef struct gemm_case {
  size_t M, N, Kd; /* C (M, N) = A (M, Kd) B^T, B (N, Kd): the forward layer */
  int wgrad;       /* instead C (N, Kd) += A^T (M, N)^T X (M, Kd): weight gradient */
  const double *A, *W;
  double *C;
} gemm_case;

static int run_gemm(void *arg) {
  gemm_case *g = arg;
  if (g->wgrad)
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)g->N, (int)g->Kd, (int)g->M,
                1.0, g->A, (int)g->N, g->W, (int)g->Kd, 1.0, g->C, (int)g->Kd);
  else
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)g->M, (int)g->N, (int)g->Kd,
                1.0, g->A, (int)g->Kd, g->W, (int)g->Kd, 0.0, g->C, (int)g->N);
  return 0;
}

/* sum over layers of in * out, and in * out of the first layer */
static double layer_sum(const cnf_mlp_config *cfg, double *first) {
  double s = 0;
  size_t prev = cfg->dim;
  for (size_t i = 0; i <= cfg->n_hidden; i++) {
    size_t out = i < cfg->n_hidden ? cfg->hidden[i] : cfg->dim;
    if (i == 0) *first = (double)(prev * out);
    s += (double)(prev * out);
    prev = out;
  }
  return s;
}

/* GEMM flops of one call of op at batch B. */
static double op_flops(const cnf_mlp_config *cfg, int op, size_t B) {
  double first, S = layer_sum(cfg, &first);
  double D = (double)cfg->dim, b = (double)B;
  switch (op) {
  case OP_F:
    return 2 * b * S;
  case OP_EXACT:
    return 2 * (1 + D) * b * S;
  case OP_HUTCH:
    return 2 * 2 * b * S;
  default: {
    double R = (1 + D) * b;
    return 2 * R * S      /* recomputed forward */
           + 2 * R * S    /* weight gradients */
           + 2 * R * S - 2 * (R - b) * first; /* input adjoints */
  }
  }
}

static size_t op_rows(int op, size_t B, size_t D) {
  return op == OP_F ? B : op == OP_HUTCH ? 2 * B : (1 + D) * B;
}

/* ---- random numbers (for inputs only; the library has its own) ------ */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static double urand(void) { /* splitmix64 -> [0, 1) */
  uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return (double)(z >> 11) * 0x1.0p-53;
}
static double nrand(void) {
  double u = urand(), v = urand();
  return sqrt(-2.0 * log(1.0 - u)) * cos(6.283185307179586 * v);
}

/* FFJORD's 8gaussians generator: one of 8 centres at radius 4 (scaled by
 * 1/1.414 with the noise), noise N(0, 0.5^2).  The stream restarts from
 * `seed`, so every run and thread count sees the same points. */
static void eight_gaussians(uint64_t seed, size_t B, double *x) {
  rng_state = seed;
  static const double c = 0.70710678118654752;
  const double centres[8][2] = {{1, 0}, {-1, 0}, {0, 1}, {0, -1},
                                {c, c}, {c, -c}, {-c, c}, {-c, -c}};
  for (size_t b = 0; b < B; b++) {
    int k = (int)(urand() * 8) & 7;
    x[2 * b] = (4 * centres[k][0] + 0.5 * nrand()) / 1.414;
    x[2 * b + 1] = (4 * centres[k][1] + 0.5 * nrand()) / 1.414;
  }
}

static void *xmalloc(size_t n) {
  void *p = calloc(n ? n : 1, 1);
  if (p == NULL) {
    fprintf(stderr, "bench_dyn: out of memory\n");
    exit(1);
  }
  return p;
}

/* ---- results -------------------------------------------------------- */

typedef struct op_result {
  timing t;       /* per call */
  double gflops;  /* at the median */
  double dgemm;   /* dgemm GFLOP/s at the same stacked rows, same run */
} op_result;

typedef struct solve_result {
  timing t;
  double nfe; /* per solve */
  double nsteps;
  double logp_mean;
} solve_result;

typedef struct run_result {
  int threads;
  op_result op[NOPS][NB];
  double dgemm_chunk;     /* dgemm GFLOP/s at the chunk's stacked rows */
  double layer_us[3];     /* dgemm µs at one chunk: first, hidden, last layer */
  double dgemm_wgrad[NB]; /* weight-gradient shape at 3B rows */
  solve_result solve[2], solve_ffjord[2];
  int have_ffjord;
  op_result split[NOPS][NB]; /* batch split over two pthreads */
  int have_split;
} run_result;

static double dgemm_rate(const opts *o, size_t M, int wgrad) {
  gemm_case g = {M, 64, 64, wgrad, NULL, NULL, NULL};
  double *A = xmalloc(M * 64 * sizeof *A), *W = xmalloc(64 * 64 * sizeof *W),
         *C = xmalloc((M > 64 ? M : 64) * 64 * sizeof *C);
  for (size_t i = 0; i < M * 64; i++) A[i] = urand() - 0.5;
  for (size_t i = 0; i < 64 * 64; i++) W[i] = urand() - 0.5;
  if (wgrad) { /* C (64, 64) += A^T (M, 64) X (M, 64): reuse A for both */
    g.A = A, g.W = A, g.C = C;
  } else {
    g.A = A, g.W = W, g.C = C;
  }
  timing tm = time_fn(o, run_gemm, &g);
  free(A), free(W), free(C);
  return 2.0 * (double)M * 64 * 64 / tm.med * 1e-9;
}

/* Seconds per dgemm C (M, N) = A (M, Kd) W^T, W (N, Kd): a forward layer. */
static double dgemm_time(const opts *o, size_t M, size_t N, size_t Kd) {
  gemm_case g = {M, N, Kd, 0, NULL, NULL, NULL};
  double *A = xmalloc(M * Kd * sizeof *A), *W = xmalloc(N * Kd * sizeof *W),
         *C = xmalloc(M * N * sizeof *C);
  for (size_t i = 0; i < M * Kd; i++) A[i] = urand() - 0.5;
  for (size_t i = 0; i < N * Kd; i++) W[i] = urand() - 0.5;
  g.A = A, g.W = W, g.C = C;
  timing tm = time_fn(o, run_gemm, &g);
  free(A), free(W), free(C);
  return tm.med;
}

/* Read FFJORD's weights.txt into theta (P) and T; 0 on success. */
static int load_ffjord(const char *path, const cnf_mlp_config *cfg, double *theta,
                       double *T) {
  FILE *fp = fopen(path, "r");
  if (fp == NULL) return -1;
  int nl;
  double T32;
  int rc = -1;
  if (fscanf(fp, "%d %lf %lf", &nl, T, &T32) != 3 || nl != (int)cfg->n_hidden + 1)
    goto done;
  size_t p = 0, P = cnf_mlp_param_count(cfg);
  for (int l = 0; l < nl; l++) {
    size_t in, out;
    if (fscanf(fp, "%zu %zu", &in, &out) != 2) goto done;
    size_t n = out * in + 4 * out;
    if (p + n > P) goto done;
    for (size_t i = 0; i < n; i++)
      if (fscanf(fp, "%lf", &theta[p++]) != 1) goto done;
  }
  rc = p == P ? 0 : -1;
done:
  fclose(fp);
  return rc;
}

static void time_solve(cnf_flow *flow, size_t B, int reps,
                       solve_result *r) {
  cnf_options opt;
  cnf_options_default(&opt);
  opt.rtol = opt.atol = 1e-5;
  opt.trace = CNF_TRACE_EXACT;
  double *x = xmalloc(B * 2 * sizeof *x), *lp = xmalloc(B * sizeof *lp);
  eight_gaussians(777, B, x);
  double *s = xmalloc(2 * (size_t)reps * sizeof *s), *wl = s + reps;
  cnf_stats st;
  cnf_stats_clear(&st);
  if (cnf_flow_logp(flow, &opt, B, x, lp, &st) != 0) { /* warm-up */
    fprintf(stderr, "bench_dyn: cnf_flow_logp failed\n");
    exit(1);
  }
  cnf_stats_clear(&st);
  for (int i = 0; i < reps; i++) {
    double a = now(), c = cpu_now();
    cnf_flow_logp(flow, &opt, B, x, lp, &st);
    double c1 = cpu_now(), a1 = now();
    wl[i] = a1 - a;
    s[i] = use_cpu_clock ? c1 - c : wl[i];
  }
  r->t.med = median(s, reps);
  r->t.min = s[0];
  r->t.wall = median(wl, reps);
  r->nfe = (double)st.nfe / (double)st.solves;
  r->nsteps = (double)st.nsteps / (double)st.solves;
  double m = 0;
  for (size_t b = 0; b < B; b++) m += lp[b];
  r->logp_mean = m / (double)B;
  free(x), free(lp), free(s);
}

static void run_all(const opts *o, int threads, run_result *res, int do_solve) {
  openblas_set_num_threads(threads);
  use_cpu_clock = threads == 1;
  res->threads = threads;
  cnf_ctx *ctx = NULL;
  cnf_dyn *dyn = NULL;
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  if (cnf_ctx_create(&ctx) != 0 || cnf_dyn_mlp_create(&dyn, ctx, &cfg) != 0) {
    fprintf(stderr, "bench_dyn: cannot create the MLP\n");
    exit(1);
  }
  const size_t D = 2, P = cnf_mlp_param_count(&cfg), Bmax = batches[NB - 1];
  double *theta = xmalloc(P * sizeof *theta);
  cnf_mlp_init_params(&cfg, 20240601, theta);
  double *z = xmalloc(Bmax * D * sizeof *z), *eps = xmalloc(Bmax * D * sizeof *eps),
         *a = xmalloc(Bmax * D * sizeof *a), *w = xmalloc(Bmax * sizeof *w),
         *dz = xmalloc(Bmax * D * sizeof *dz), *div = xmalloc(Bmax * sizeof *div),
         *gz = xmalloc(Bmax * D * sizeof *gz), *gth = xmalloc(P * sizeof *gth);
  eight_gaussians(42, Bmax, z);
  cnf_dyn_reserve(dyn, Bmax, D);

  for (int ib = 0; ib < NB; ib++) {
    const size_t B = batches[ib];
    cnf_probes_draw(CNF_TRACE_GAUSS, 7, 1, B, D, eps);
    for (size_t i = 0; i < B * D; i++) a[i] = 1.0 / (double)B;
    for (size_t i = 0; i < B; i++) w[i] = 1.0 / (double)B;
    for (int op = 0; op < NOPS; op++) {
      fprintf(stderr, "  threads %d, B %zu, %s\n", threads, B, op_short[op]);
      dyn_case c = {op, dyn, B, D, D, 0.25, theta, z, eps, a, w, dz, div, gz, gth};
      op_result *r = &res->op[op][ib];
      r->t = time_fn(o, run_case, &c);
      r->gflops = op_flops(&cfg, op, B) / r->t.med * 1e-9;
      r->dgemm = dgemm_rate(o, op_rows(op, B, D), 0);
    }
    res->dgemm_wgrad[ib] = dgemm_rate(o, (1 + D) * B, 1);
  }
  res->dgemm_chunk = BENCH_CHUNK_ROWS > 0 ? dgemm_rate(o, BENCH_CHUNK_ROWS, 0) : 0;
  {
    const size_t R = BENCH_CHUNK_ROWS > 0 ? BENCH_CHUNK_ROWS : 256;
    res->layer_us[0] = dgemm_time(o, R, 64, D) * 1e6;
    res->layer_us[1] = dgemm_time(o, R, 64, 64) * 1e6;
    res->layer_us[2] = dgemm_time(o, R, D, 64) * 1e6;
  }

  if (o->split && threads == 1) {
    cnf_dyn *dyn2 = NULL;
    if (cnf_dyn_mlp_create(&dyn2, ctx, &cfg) != 0) exit(1);
    cnf_dyn_reserve(dyn2, Bmax, D);
    split_pool pool;
    memset(&pool, 0, sizeof pool);
    pool.P = P;
    pool.gth_w = xmalloc(P * sizeof *pool.gth_w);
    pthread_barrier_init(&pool.start, NULL, 2);
    pthread_barrier_init(&pool.done, NULL, 2);
    if (pthread_create(&pool.th, NULL, split_worker, &pool) != 0) exit(1);
    use_cpu_clock = 0; /* two threads: wall time */
    for (int ib = 0; ib < NB; ib++) {
      const size_t B = batches[ib], h = B / 2;
      cnf_probes_draw(CNF_TRACE_GAUSS, 7, 1, B, D, eps);
      for (size_t i = 0; i < B * D; i++) a[i] = 1.0 / (double)B;
      for (size_t i = 0; i < B; i++) w[i] = 1.0 / (double)B;
      for (int op = 0; op < NOPS; op++) {
        fprintf(stderr, "  split over 2 pthreads, B %zu, %s\n", B, op_short[op]);
        split_case sc;
        sc.pool = &pool;
        sc.main = (dyn_case){op, dyn, h, D, D, 0.25, theta, z, eps, a, w, dz, div, gz, gth};
        /* K = 1 probes: (1, B, D), so half 2 starts at row h */
        pool.work = (dyn_case){op, dyn2, B - h, D, D, 0.25, theta, z + h * D, eps + h * D,
                               a + h * D, w + h, dz + h * D, div + h, gz + h * D, pool.gth_w};
        op_result *r = &res->split[op][ib];
        r->t = time_fn(o, run_split, &sc);
        r->gflops = op_flops(&cfg, op, B) / r->t.med * 1e-9;
        r->dgemm = res->op[op][ib].dgemm;
      }
    }
    pool.quit = 1;
    pthread_barrier_wait(&pool.start);
    pthread_join(pool.th, NULL);
    pthread_barrier_destroy(&pool.start);
    pthread_barrier_destroy(&pool.done);
    free(pool.gth_w);
    cnf_dyn_free(dyn2);
    res->have_split = 1;
  }

  if (do_solve) {
    cnf_flow *flow = NULL;
    if (cnf_flow_create(&flow, ctx, &cfg, 1, 0.5, 20240601) != 0) {
      fprintf(stderr, "bench_dyn: cnf_flow_create failed: %s\n", cnf_ctx_errmsg(ctx));
      exit(1);
    }
    for (int i = 0; i < 2; i++) {
      size_t B = i == 0 ? 100 : 1000;
      fprintf(stderr, "  threads %d, solve B %zu\n", threads, B);
      time_solve(flow, B, i == 0 ? o->solve_reps : (o->solve_reps + 2) / 3,
                 &res->solve[i]);
    }
    if (o->ffjord) {
      double T;
      if (load_ffjord(o->ffjord, &cfg, cnf_flow_params(flow), &T) == 0 &&
          cnf_flow_set_end_time(flow, 0, T) == 0) {
        res->have_ffjord = 1;
        for (int i = 0; i < 2; i++) {
          size_t B = i == 0 ? 100 : 1000;
          fprintf(stderr, "  threads %d, solve B %zu (FFJORD weights)\n", threads, B);
          time_solve(flow, B, i == 0 ? o->solve_reps : (o->solve_reps + 2) / 3,
                     &res->solve_ffjord[i]);
        }
      } else {
        fprintf(stderr, "bench_dyn: cannot read FFJORD weights from %s\n", o->ffjord);
      }
    }
    cnf_flow_free(flow);
  }
  free(theta), free(z), free(eps), free(a), free(w), free(dz), free(div), free(gz),
      free(gth);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* Call one op in a loop for perf; prints µs per call. */
static int profile(const opts *o) {
  openblas_set_num_threads(o->threads[0]);
  cnf_ctx *ctx = NULL;
  cnf_dyn *dyn = NULL;
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  if (cnf_ctx_create(&ctx) != 0 || cnf_dyn_mlp_create(&dyn, ctx, &cfg) != 0) return 1;
  const size_t D = 2, P = cnf_mlp_param_count(&cfg), B = o->prof_B;
  double *theta = xmalloc(P * sizeof *theta);
  cnf_mlp_init_params(&cfg, 20240601, theta);
  double *z = xmalloc(B * D * sizeof *z), *eps = xmalloc(B * D * sizeof *eps),
         *a = xmalloc(B * D * sizeof *a), *w = xmalloc(B * sizeof *w),
         *dz = xmalloc(B * D * sizeof *dz), *div = xmalloc(B * sizeof *div),
         *gz = xmalloc(B * D * sizeof *gz), *gth = xmalloc(P * sizeof *gth);
  eight_gaussians(42, B, z);
  cnf_probes_draw(CNF_TRACE_GAUSS, 7, 1, B, D, eps);
  for (size_t i = 0; i < B * D; i++) a[i] = 1.0 / (double)B;
  for (size_t i = 0; i < B; i++) w[i] = 1.0 / (double)B;
  cnf_dyn_reserve(dyn, B, D);
  dyn_case c = {o->prof_op, dyn, B, D, D, 0.25, theta, z, eps, a, w, dz, div, gz, gth};
  long n = 0;
  double t0 = now();
  while (now() - t0 < o->prof_s) {
    for (int j = 0; j < 10; j++) run_case(&c);
    n += 10;
  }
  printf("%s B=%zu: %.1f µs/call over %ld calls\n", op_short[o->prof_op], B,
         (now() - t0) / (double)n * 1e6, n);
  free(theta), free(z), free(eps), free(a), free(w), free(dz), free(div), free(gz),
      free(gth);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
  return 0;
}

/* ---- printing ------------------------------------------------------- */

static const char *clock_name(int threads) {
  return threads == 1 ? "thread CPU time" : "wall time";
}

static void print_ops_table(const run_result *r) {
  printf("\n### %d OpenBLAS thread%s\n\n", r->threads, r->threads > 1 ? "s" : "");
  printf("µs/call: median (and minimum) of the %s per call; the wall-time median "
         "beside it.  dgemm: C (rows x 64) = A (rows x 64) W^T (64 x 64), measured "
         "right after the op.\n\n",
         clock_name(r->threads));
  printf("| op | B | stacked rows | µs/call | min | wall | GFLOP/s (GEMMs) "
         "| dgemm GFLOP/s, rows x 64 x 64 | of dgemm |\n");
  printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int op = 0; op < NOPS; op++)
    for (int ib = 0; ib < NB; ib++) {
      const op_result *x = &r->op[op][ib];
      printf("| %s | %zu | %zu | %.1f | %.1f | %.1f | %.1f | %.1f | %.0f%% |\n", op_name[op],
             batches[ib], op_rows(op, batches[ib], 2), x->t.med * 1e6, x->t.min * 1e6,
             x->t.wall * 1e6, x->gflops, x->dgemm, 100 * x->gflops / x->dgemm);
    }
  printf("\ndgemm, weight-gradient shape (64 x 3B)(3B x 64), GFLOP/s: ");
  for (int ib = 0; ib < NB; ib++)
    printf("%s%.1f at B = %zu", ib ? ", " : "", r->dgemm_wgrad[ib], batches[ib]);
  if (BENCH_CHUNK_ROWS > 0)
    printf(".  dgemm at one chunk (%d x 64 x 64): %.1f GFLOP/s", BENCH_CHUNK_ROWS,
           r->dgemm_chunk);
  {
    const double R = BENCH_CHUNK_ROWS > 0 ? BENCH_CHUNK_ROWS : 256;
    const double fl[3] = {2 * R * 64 * 2, 2 * R * 64 * 64, 2 * R * 2 * 64};
    printf(".\n\ndgemm per layer shape at one chunk of %.0f rows: first layer "
           "(%.0f x 2)(2 x 64) %.1f µs (%.1f GFLOP/s), hidden (%.0f x 64)(64 x 64) "
           "%.1f µs (%.1f), last layer (%.0f x 64)(64 x 2) %.1f µs (%.1f)",
           R, R, r->layer_us[0], fl[0] / r->layer_us[0] * 1e-3, R, r->layer_us[1],
           fl[1] / r->layer_us[1] * 1e-3, R, r->layer_us[2], fl[2] / r->layer_us[2] * 1e-3);
  }
  printf(".\n");
}

/* The best dgemm rate measured in this run, GFLOP/s. */
static double best_dgemm(const run_result *r) {
  double m = r->dgemm_chunk;
  for (int ib = 0; ib < NB; ib++) {
    if (r->dgemm_wgrad[ib] > m) m = r->dgemm_wgrad[ib];
    for (int op = 0; op < NOPS; op++)
      if (r->op[op][ib].dgemm > m) m = r->op[op][ib].dgemm;
  }
  return m;
}

static void print_split_table(const run_result *r) {
  printf("\n### 2 cores by splitting the batch (two pthreads, two MLP instances, "
         "1 OpenBLAS thread each)\n\n"
         "What mlp.c could reach by handing its chunks to two threads; the "
         "library does not do this today.\n\n");
  printf("| op | B | µs/call (wall, median) | vs 1 thread | GFLOP/s | of 1-thread dgemm "
         "| speed-up vs FFJORD |\n");
  printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int op = 0; op < NOPS; op++)
    for (int ib = 0; ib < NB; ib++) {
      const op_result *x = &r->split[op][ib], *one = &r->op[op][ib];
      printf("| %s | %zu | %.1f | %.2fx | %.1f | %.0f%% | %.1fx |\n", op_name[op],
             batches[ib], x->t.med * 1e6, one->t.med / x->t.med, x->gflops,
             100 * x->gflops / x->dgemm, ref_us[op][ib] / (x->t.med * 1e6));
    }
}

static void print_speedup_table(const run_result *r) {
  printf("\n### Speed-up against FFJORD (cnf with %d OpenBLAS thread%s, float64; "
         "FFJORD float32, 2 threads)\n\n",
         r->threads, r->threads > 1 ? "s" : "");
  printf("The last column is the most any implementation could reach on this core "
         "if all its GEMM flops ran at the best dgemm rate of this run (%.1f GFLOP/s) "
         "and nothing else cost time.\n\n",
         best_dgemm(r));
  printf("| op | B | cnf µs | reference µs | reference | speed-up | GEMM-only bound |\n");
  printf("| --- | ---: | ---: | ---: | --- | ---: | ---: |\n");
  for (int op = 0; op < NOPS; op++)
    for (int ib = 0; ib < NB; ib++) {
      const op_result *x = &r->op[op][ib];
      double floor_us = x->gflops * x->t.med * 1e6 / best_dgemm(r); /* flops / rate */
      printf("| %s | %zu | %.1f | %.0f | %s | %.1fx | %.1fx |\n", op_name[op], batches[ib],
             x->t.med * 1e6, ref_us[op][ib], ref_src[op], ref_us[op][ib] / (x->t.med * 1e6),
             ref_us[op][ib] / floor_us);
    }
}

static void print_solve_table(const run_result *r) {
  printf("\n### Whole forward solve, %d OpenBLAS thread%s (cnf_flow_logp, T = 0.5, "
         "Adams, rtol = atol = 1e-5, exact trace)\n\n",
         r->threads, r->threads > 1 ? "s" : "");
  printf("ms/solve: median (and minimum) of the %s; the wall-time median beside it.\n\n",
         clock_name(r->threads));
  printf("| flow | B | ms/solve | min | wall | NFE | steps | µs per RHS | mean log p "
         "| speed-up vs FFJORD's 56-72 ms | per RHS (FFJORD: %.0f NFE) |\n",
         ref_solve_nfe);
  printf("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int f = 0; f < 1 + r->have_ffjord; f++)
    for (int i = 0; i < 2; i++) {
      const solve_result *s = f ? &r->solve_ffjord[i] : &r->solve[i];
      size_t B = i == 0 ? 100 : 1000;
      char sp[64] = "—", spr[64] = "—";
      if (B == 100) {
        double per = s->t.med * 1e3 / s->nfe; /* ms per RHS */
        snprintf(sp, sizeof sp, "%.1f-%.1fx", ref_solve_lo / (s->t.med * 1e3),
                 ref_solve_hi / (s->t.med * 1e3));
        snprintf(spr, sizeof spr, "%.1f-%.1fx", ref_solve_lo / ref_solve_nfe / per,
                 ref_solve_hi / ref_solve_nfe / per);
      }
      printf("| %s | %zu | %.2f | %.2f | %.2f | %.0f | %.0f | %.0f | %.3f | %s | %s |\n",
             f ? "FFJORD-trained 8gaussians (tests/data)"
               : "random (cnf_flow_create, seed 20240601)",
             B, s->t.med * 1e3, s->t.min * 1e3, s->t.wall * 1e3, s->nfe, s->nsteps,
             s->t.med * 1e6 / s->nfe, s->logp_mean, sp, spr);
    }
  printf("\nInputs: 8gaussians points (FFJORD's generator, fixed seed).  µs per RHS "
         "includes CVODE's own work per evaluation.  NFE depends on the points and "
         "the model; the last column compares the cost per RHS evaluation.\n");
}

static void print_goals(const run_result *r) {
  printf("\n### Goals (%d thread%s)\n\n", r->threads, r->threads > 1 ? "s" : "");
  int ok_all = 1;
  for (int ib = 0; ib < 2; ib++)
    for (int op = 0; op < NOPS; op++) {
      double sp = ref_us[op][ib] / (r->op[op][ib].t.med * 1e6);
      int ok = sp >= 10.0;
      ok_all &= ok;
      printf("- %s at B = %zu: %.1fx faster than FFJORD (goal 10x): %s\n", op_name[op],
             batches[ib], sp, ok ? "met" : "MISSED");
    }
  for (int op = 0; op < NOPS; op++) {
    const op_result *x = &r->op[op][NB - 1];
    int ok = x->gflops > 0.5 * x->dgemm;
    ok_all &= ok;
    printf("- %s at B = 10000: %.1f GFLOP/s, %.0f%% of dgemm's %.1f (goal > 50%%): %s\n",
           op_name[op], x->gflops, 100 * x->gflops / x->dgemm, x->dgemm,
           ok ? "met" : "MISSED");
  }
  printf("\n%s\n", ok_all ? "All goals met." : "Not all goals met.");
}

int main(int argc, char **argv) {
  opts o;
  if (parse_opts(argc, argv, &o) != 0) return 2;
  if (o.sweep_header) {
    printf("| MLP_CHUNK_ROWS |");
    for (int op = 0; op < NOPS; op++)
      for (int ib = 0; ib < NB; ib++) printf(" %s %zu µs |", op_short[op], batches[ib]);
    printf(" solve 100 ms | solve 1000 ms |\n|---:|");
    for (int i = 0; i < NOPS * NB + 2; i++) printf("---:|");
    printf("\n");
    return 0;
  }
  if (o.prof_op >= 0) return profile(&o);
  if (o.sweep_row) {
    run_result r;
    memset(&r, 0, sizeof r);
    o.split = 0;
    run_all(&o, 1, &r, o.solve);
    /* two lines: the medians, then the minima (tagged "min") */
    for (int m = 0; m < 2; m++) {
      printf(m ? "| %d min |" : "| %d |", BENCH_CHUNK_ROWS);
      for (int op = 0; op < NOPS; op++)
        for (int ib = 0; ib < NB; ib++)
          printf(" %.1f |", (m ? r.op[op][ib].t.min : r.op[op][ib].t.med) * 1e6);
      if (o.solve)
        printf(" %.2f | %.1f |\n", (m ? r.solve[0].t.min : r.solve[0].t.med) * 1e3,
               (m ? r.solve[1].t.min : r.solve[1].t.med) * 1e3);
      else
        printf(" — | — |\n");
    }
    return 0;
  }

  run_result *res = xmalloc((size_t)o.nthreads * sizeof *res);
  for (int i = 0; i < o.nthreads; i++) run_all(&o, o.threads[i], &res[i], o.solve);

  printf("## cnf dynamics benchmark\n\n");
  printf("- cnf %s, network 2-64-64-64-2 concatsquash/tanh (float64), "
         "MLP_CHUNK_ROWS = %d\n",
         CNF_VERSION_STRING, BENCH_CHUNK_ROWS);
  printf("- OpenBLAS: %s (core %s)\n", openblas_get_config(), openblas_get_corename());
  printf("- %d samples per figure, each >= %.1f ms, after a warm-up; medians; one "
         "thread: thread CPU time, more threads: wall time; GFLOP/s count GEMM "
         "flops only\n",
         o.samples, o.sample_ms);
  for (int i = 0; i < o.nthreads; i++) print_ops_table(&res[i]);
  print_speedup_table(&res[0]);
  for (int i = 0; i < o.nthreads; i++)
    if (res[i].have_split) print_split_table(&res[i]);
  if (o.solve)
    for (int i = 0; i < o.nthreads; i++) print_solve_table(&res[i]);
  print_goals(&res[0]);
  free(res);
  return 0;
}
