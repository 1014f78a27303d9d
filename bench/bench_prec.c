/* bench_prec.c: the float32 network path (cnf_options.precision) against
 * the float64 one, and both against the reference figures measured with
 * PyTorch on this machine kind (FFJORD's network in float32, 2 threads).
 *
 * Per evaluation: the default 2-64-64-64-2 concatsquash/tanh MLP, the ops
 * of bench_dyn (f; f_div with the exact trace, K = 2; f_div with one
 * Gaussian probe; vjp with the exact trace term and the parameter
 * gradient) at B = 100, 1000, 10000, for each thread count of --threads
 * (the library's batch split, cnf_dyn_mlp_set_threads; OpenBLAS on one
 * thread).  The two precisions alternate sample by sample, so both see the
 * same machine load; the speed-up is the median over samples of the ratio
 * of the pair.  Clock: the calling thread's CPU time with one thread, wall
 * time with more.
 *
 * Whole solves (--model FILE): log p of --points points of FFJORD's
 * 8gaussians density (cnf_toy_sample, seed 1) under the model, exact
 * trace, rtol = atol = 1e-5, --solve-batch rows per ODE system, each
 * precision --solve-reps times alternately; wall time (median), points per
 * second, right-hand-side evaluations and the largest |log p| difference
 * between the precisions.
 *
 * Where the batch split pays (--split B1,B2,...): each op at each B, one
 * thread against two with the split forced whatever the batch (the
 * library's threshold set to nothing, cnf__dyn_mlp_split_min), wall time
 * for both, the two alternating sample by sample; the table gives the
 * stacked rows B (1 + K), the multiply-adds per thread and the speed-up,
 * per precision: the threshold of src/cnf/mlp.c is read off it.
 *
 * Output: markdown on standard output and, with --out FILE, the same into
 * FILE (written to FILE.tmp, then renamed).  Progress on standard error. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnf.h"
#include "cnf_dynamics.h"
#include "cnf_model.h"

/* The library's internal switch of a field's precision for direct op calls
 * (src/cnf/dyn_impl.h); solves take cnf_options.precision instead. */
int cnf__dyn_precision_begin(cnf_dyn *d, cnf_precision p, int hold, int *saved);
void cnf__dyn_precision_end(cnf_dyn *d, int saved);
int cnf__dyn_mlp_split_min(cnf_dyn *dyn, double macs);

#define NB 3
static const size_t batches[NB] = {100, 1000, 10000};
enum { OP_F, OP_EXACT, OP_HUTCH, OP_VJP, NOPS };
static const char *op_name[NOPS] = {"forward f", "forward + exact trace", "forward + Hutchinson",
                                    "adjoint evaluation (vjp)"};
/* µs per call of the reference measured with PyTorch on this machine kind
 * (FFJORD's network, float32, 2 threads), B = 100 / 1000 / 10000; the vjp
 * reference is its forward with the exact trace plus the VJP. */
static const double ref_us[NOPS][NB] = {
    {272, 973, 6784}, {950, 12818, 147716}, {670, 1942, 12436}, {1995, 15675, 118319}};

typedef struct opts {
  int samples;
  double sample_ms;
  size_t threads[4];
  int nthreads;
  const char *model, *out;
  size_t points, solve_batch;
  int solve_reps;
  size_t split[16];
  int nsplit;
} opts;

static double wall_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double median(double *s, int n) {
  qsort(s, (size_t)n, sizeof *s, cmp_d);
  return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}
static void *xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz);
  if (p == NULL) {
    fprintf(stderr, "bench_prec: out of memory\n");
    exit(1);
  }
  return p;
}

/* ---- one op ---------------------------------------------------------- */

typedef struct op_case {
  int op;
  cnf_dyn *dyn;
  size_t B, D;
  const double *theta, *z, *eps, *a, *w;
  double *dz, *div, *gz, *gth;
  const double *z2; /* (B, D) other points, every other call */
  unsigned long calls;
} op_case;

/* One call.  The points alternate between two sets, so that no call finds
 * the forward pass of the one before it in the workspace (the reverse
 * sweep keeps it inside a solve, where CVODES calls it several times at
 * one point; a benchmark loop at one point would flatter it). */
static int run_op(op_case *c) {
  const double *z = c->calls++ % 2 ? c->z2 : c->z;
  switch (c->op) {
    case OP_F:
      return cnf_dyn_f(c->dyn, 0.25, c->B, z, c->theta, c->dz);
    case OP_EXACT:
      return cnf_dyn_f_div(c->dyn, 0.25, c->B, c->D, z, c->theta, NULL, c->dz, c->div);
    case OP_HUTCH:
      return cnf_dyn_f_div(c->dyn, 0.25, c->B, 1, z, c->theta, c->eps, c->dz, c->div);
    default:
      return cnf_dyn_vjp(c->dyn, 0.25, c->B, c->D, z, c->theta, c->a, c->w, NULL, NULL, c->gz,
                         c->gth);
  }
}

/* n calls in precision p; seconds per call on the clock (cpu: thread CPU
 * time, else wall time). */
static double time_calls(op_case *c, cnf_precision p, long n, int cpu) {
  int saved = 0;
  if (cnf__dyn_precision_begin(c->dyn, p, 1, &saved) != 0) exit(1);
  double t0 = cpu ? cpu_now() : wall_now();
  for (long i = 0; i < n; i++)
    if (run_op(c) != 0) {
      fprintf(stderr, "bench_prec: the op failed\n");
      exit(1);
    }
  double t1 = cpu ? cpu_now() : wall_now();
  cnf__dyn_precision_end(c->dyn, saved);
  return (t1 - t0) / (double)n;
}

typedef struct pair {
  double d, s, ratio; /* medians: µs float64, µs float32, float64 / float32 */
} pair;

static pair time_pair(const opts *o, op_case *c, int cpu) {
  /* warm-up and the calls per sample, from the float64 op */
  time_calls(c, CNF_PRECISION_SINGLE, 3, cpu);
  double per = time_calls(c, CNF_PRECISION_DOUBLE, 3, 0);
  long n = (long)ceil(o->sample_ms * 1e-3 / per);
  if (n < 1) n = 1;
  double *sd = xcalloc(3 * (size_t)o->samples, sizeof *sd), *ss = sd + o->samples,
         *sr = ss + o->samples;
  for (int i = 0; i < o->samples; i++) {
    sd[i] = time_calls(c, CNF_PRECISION_DOUBLE, n, cpu);
    ss[i] = time_calls(c, CNF_PRECISION_SINGLE, n, cpu);
    sr[i] = sd[i] / ss[i];
  }
  pair r = {1e6 * median(sd, o->samples), 1e6 * median(ss, o->samples), median(sr, o->samples)};
  free(sd);
  return r;
}

/* printf to a and, if not NULL, to b. */
static void emit(FILE *a, FILE *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void emit(FILE *a, FILE *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vfprintf(a, fmt, ap);
  va_end(ap);
  if (b != NULL) {
    va_start(ap, fmt);
    vfprintf(b, fmt, ap);
    va_end(ap);
  }
}

static int bench_ops(const opts *o, FILE *out) {
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0) return 1;
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  const size_t D = 2, P = cnf_mlp_param_count(&cfg), Bmax = batches[NB - 1];
  double *theta = xcalloc(P, sizeof *theta);
  cnf_mlp_init_params(&cfg, 1, theta);
  double *z = xcalloc(Bmax * D, sizeof *z), *z2 = xcalloc(Bmax * D, sizeof *z2),
         *eps = xcalloc(Bmax * D, sizeof *eps);
  double *a = xcalloc(Bmax * D, sizeof *a), *w = xcalloc(Bmax, sizeof *w);
  double *dz = xcalloc(Bmax * D, sizeof *dz), *div = xcalloc(Bmax, sizeof *div);
  double *gz = xcalloc(Bmax * D, sizeof *gz), *gth = xcalloc(P, sizeof *gth);
  if (cnf_toy_sample("8gaussians", Bmax, 1, z) != 0) return 1;
  if (cnf_toy_sample("8gaussians", Bmax, 2, z2) != 0) return 1;
  cnf_probes_draw(CNF_TRACE_GAUSS, 2, 1, Bmax, D, eps);
  cnf_dyn *dyn = NULL;
  if (cnf_dyn_mlp_create(&dyn, ctx, &cfg) != 0) return 1;

  emit(stdout, out,
       "| op | B | threads | float64 µs | float32 µs | float32 speed-up | PyTorch µs | "
       "float64 vs PyTorch | float32 vs PyTorch |\n"
       "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int ti = 0; ti < o->nthreads; ti++) {
    const size_t nt = o->threads[ti];
    if (cnf_dyn_mlp_set_threads(dyn, nt) != 0) return 1;
    for (int op = 0; op < NOPS; op++)
      for (int bi = 0; bi < NB; bi++) {
        const size_t B = batches[bi];
        for (size_t b = 0; b < B; b++) w[b] = 1.0 / (double)B;
        for (size_t i = 0; i < B * D; i++) a[i] = 1.0 / (double)B;
        if (cnf_dyn_reserve(dyn, B, D) != 0) return 1;
        op_case c = {op, dyn, B, D, theta, z, eps, a, w, dz, div, gz, gth, z2, 0};
        fprintf(stderr, "bench_prec: %s, B = %zu, %zu thread(s)\n", op_name[op], B, nt);
        pair r = time_pair(o, &c, nt == 1);
        emit(stdout, out, "| %s | %zu | %zu | %.1f | %.1f | %.2fx | %.0f | %.2fx | %.2fx |\n",
             op_name[op], B, nt, r.d, r.s, r.ratio, ref_us[op][bi], ref_us[op][bi] / r.d,
             ref_us[op][bi] / r.s);
        fflush(stdout);
      }
  }
  cnf_dyn_free(dyn);
  free(theta), free(z), free(z2), free(eps), free(a), free(w), free(dz), free(div), free(gz),
      free(gth);
  cnf_ctx_free(ctx);
  return 0;
}

/* ---- where the split pays --------------------------------------------- */

static int bench_split(const opts *o, FILE *out) {
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0) return 1;
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  size_t Bmax = 1;
  for (int i = 0; i < o->nsplit; i++)
    if (o->split[i] > Bmax) Bmax = o->split[i];
  const size_t D = 2, P = cnf_mlp_param_count(&cfg);
  double macs = 0.0; /* one row through the linear layers */
  for (size_t l = 0; l <= cfg.n_hidden; l++)
    macs += (double)((l == 0 ? D : cfg.hidden[l - 1]) * (l == cfg.n_hidden ? D : cfg.hidden[l]));
  double *theta = xcalloc(P, sizeof *theta);
  cnf_mlp_init_params(&cfg, 1, theta);
  double *z = xcalloc(Bmax * D, sizeof *z), *z2 = xcalloc(Bmax * D, sizeof *z2),
         *eps = xcalloc(Bmax * D, sizeof *eps), *a = xcalloc(Bmax * D, sizeof *a),
         *w = xcalloc(Bmax, sizeof *w), *dz = xcalloc(Bmax * D, sizeof *dz),
         *div = xcalloc(Bmax, sizeof *div), *gz = xcalloc(Bmax * D, sizeof *gz),
         *gth = xcalloc(P, sizeof *gth);
  if (cnf_toy_sample("8gaussians", Bmax, 1, z) != 0) return 1;
  if (cnf_toy_sample("8gaussians", Bmax, 2, z2) != 0) return 1;
  cnf_probes_draw(CNF_TRACE_GAUSS, 2, 1, Bmax, D, eps);
  cnf_dyn *one = NULL, *two = NULL;
  if (cnf_dyn_mlp_create(&one, ctx, &cfg) != 0 || cnf_dyn_mlp_create(&two, ctx, &cfg) != 0 ||
      cnf_dyn_mlp_set_threads(two, 2) != 0 || cnf__dyn_mlp_split_min(two, 1.0) != 0)
    return 1;
  emit(stdout, out,
       "\n| op | precision | B | stacked rows | multiply-adds per thread | 1 thread µs | "
       "2 threads µs | speed-up |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int op = 0; op < NOPS; op++)
    for (int p = 0; p < 2; p++)
      for (int bi = 0; bi < o->nsplit; bi++) {
        const size_t B = o->split[bi], K = op == OP_F ? 0 : op == OP_HUTCH ? 1 : D;
        for (size_t b = 0; b < B; b++) w[b] = 1.0 / (double)B;
        for (size_t i = 0; i < B * D; i++) a[i] = 1.0 / (double)B;
        if (cnf_dyn_reserve(one, B, D) != 0 || cnf_dyn_reserve(two, B, D) != 0) return 1;
        op_case c1 = {op, one, B, D, theta, z, eps, a, w, dz, div, gz, gth, z2, 0};
        op_case c2 = c1;
        c2.dyn = two;
        const cnf_precision prec = p ? CNF_PRECISION_SINGLE : CNF_PRECISION_DOUBLE;
        fprintf(stderr, "bench_prec: split, %s, %s, B = %zu\n", op_name[op],
                cnf_precision_name(prec), B);
        time_calls(&c1, prec, 3, 0), time_calls(&c2, prec, 3, 0);
        long n = (long)ceil(o->sample_ms * 1e-3 / time_calls(&c1, prec, 3, 0));
        if (n < 1) n = 1;
        double s1[64], s2[64], sr[64];
        const int ns = o->samples < 64 ? o->samples : 64;
        for (int i = 0; i < ns; i++) {
          s1[i] = time_calls(&c1, prec, n, 0);
          s2[i] = time_calls(&c2, prec, n, 0);
          sr[i] = s1[i] / s2[i];
        }
        emit(stdout, out, "| %s | %s | %zu | %zu | %.2g | %.1f | %.1f | %.2fx |\n", op_name[op],
             cnf_precision_name(prec), B, B * (1 + K), 0.5 * (double)(B * (1 + K)) * macs,
             1e6 * median(s1, ns), 1e6 * median(s2, ns), median(sr, ns));
        fflush(stdout);
      }
  cnf_dyn_free(one), cnf_dyn_free(two);
  free(theta), free(z), free(z2), free(eps), free(a), free(w), free(dz), free(div), free(gz),
      free(gth);
  cnf_ctx_free(ctx);
  return 0;
}

/* ---- whole solves ------------------------------------------------------ */

static int bench_solves(const opts *o, FILE *out) {
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0) return 1;
  cnf_model *m = NULL;
  if (cnf_model_load(&m, ctx, o->model) != 0) {
    fprintf(stderr, "bench_prec: %s\n", cnf_ctx_errmsg(ctx));
    return 1;
  }
  const size_t N = o->points, D = 2;
  double *x = xcalloc(N * D, sizeof *x),
         *lp[2] = {xcalloc(N, sizeof(double)), xcalloc(N, sizeof(double))};
  if (cnf_toy_sample("8gaussians", N, 1, x) != 0) return 1;
  emit(stdout, out,
       "\n| precision | threads | points | rows per system | wall s (median) | points/s | "
       "RHS evaluations | mean log p |\n"
       "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
  for (int ti = 0; ti < o->nthreads; ti++) {
    const size_t nt = o->threads[ti];
    if (cnf_model_set_threads(m, nt) != 0) return 1;
    double *s = xcalloc(2 * (size_t)o->solve_reps, sizeof *s);
    long nfe[2] = {0, 0};
    for (int r = 0; r < o->solve_reps; r++)
      for (int p = 0; p < 2; p++) {
        cnf_options opt;
        cnf_options_default(&opt);
        opt.batch = o->solve_batch;
        opt.precision = p ? CNF_PRECISION_SINGLE : CNF_PRECISION_DOUBLE;
        cnf_stats st;
        cnf_stats_clear(&st);
        fprintf(stderr, "bench_prec: log p of %zu points, %s, %zu thread(s)\n", N,
                cnf_precision_name(opt.precision), nt);
        double t0 = wall_now();
        if (cnf_model_logp(m, &opt, N, x, lp[p], &st) != 0) {
          fprintf(stderr, "bench_prec: %s\n", cnf_ctx_errmsg(ctx));
          return 1;
        }
        s[2 * r + p] = wall_now() - t0;
        nfe[p] = st.nfe;
      }
    double diff = 0.0, mean[2] = {0, 0};
    for (size_t i = 0; i < N; i++) {
      diff = fmax(diff, fabs(lp[1][i] - lp[0][i]));
      mean[0] += lp[0][i] / (double)N, mean[1] += lp[1][i] / (double)N;
    }
    for (int p = 0; p < 2; p++) {
      double t[64];
      int n = 0;
      for (int r = 0; r < o->solve_reps && n < 64; r++) t[n++] = s[2 * r + p];
      double med = median(t, n);
      emit(stdout, out, "| %s | %zu | %zu | %zu | %.2f | %.0f | %ld | %.6f |\n",
           p ? "single" : "double", nt, N, o->solve_batch, med, (double)N / med, nfe[p], mean[p]);
    }
    emit(stdout, out,
         "\nmax |log p (single) - log p (double)| over the points, %zu thread(s): %.2e\n\n", nt,
         diff);
    free(s);
  }
  free(x), free(lp[0]), free(lp[1]);
  cnf_model_free(m);
  cnf_ctx_free(ctx);
  return 0;
}

/* "A,B,C" into out (at most max numbers); the count read. */
static int parse_list(const char *v, size_t *out, int max) {
  int n = 0;
  for (const char *p = v; *p && n < max;) {
    char *end;
    out[n++] = (size_t)strtoul(p, &end, 10);
    p = end;
    if (*p == ',')
      p++;
    else if (*p)
      break;
  }
  return n;
}

static void usage(void) {
  fprintf(stderr,
          "usage: bench_prec [--samples N] [--sample-ms MS] [--threads 1,2] [--out FILE.md]\n"
          "                  [--model M.cnf [--points N] [--solve-batch B] [--solve-reps R]]\n"
          "                  [--split B1,B2,...] [--no-ops]\n");
}

int main(int argc, char **argv) {
  opts o = {.samples = 15,
            .sample_ms = 3.0,
            .threads = {1, 2},
            .nthreads = 2,
            .points = 100000,
            .solve_batch = 10000,
            .solve_reps = 3};
  int ops = 1;
  for (int i = 1; i < argc; i++) {
    const char *k = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(k, "--samples") && v)
      o.samples = atoi(v), i++;
    else if (!strcmp(k, "--sample-ms") && v)
      o.sample_ms = atof(v), i++;
    else if (!strcmp(k, "--out") && v)
      o.out = v, i++;
    else if (!strcmp(k, "--model") && v)
      o.model = v, i++;
    else if (!strcmp(k, "--points") && v)
      o.points = (size_t)atol(v), i++;
    else if (!strcmp(k, "--solve-batch") && v)
      o.solve_batch = (size_t)atol(v), i++;
    else if (!strcmp(k, "--solve-reps") && v)
      o.solve_reps = atoi(v), i++;
    else if (!strcmp(k, "--no-ops"))
      ops = 0;
    else if (!strcmp(k, "--split") && v)
      o.nsplit = parse_list(v, o.split, 16), i++;
    else if (!strcmp(k, "--threads") && v)
      o.nthreads = parse_list(v, o.threads, 4), i++;
    else {
      usage();
      return 2;
    }
  }
  int bad_split = 0;
  for (int i = 0; i < o.nsplit; i++) bad_split |= o.split[i] < 2 || o.split[i] > 100000;
  if (o.samples < 1 || o.sample_ms <= 0 || o.nthreads < 1 || o.points == 0 || o.solve_reps < 1 ||
      bad_split) {
    usage();
    return 2;
  }
  for (int i = 0; i < o.nthreads; i++)
    if (o.threads[i] < 1 || o.threads[i] > 64) {
      usage();
      return 2;
    }
  openblas_set_num_threads(1);
  char tmp[4096];
  FILE *out = NULL;
  if (o.out != NULL) {
    snprintf(tmp, sizeof tmp, "%s.tmp", o.out);
    out = fopen(tmp, "w");
    if (out == NULL) {
      fprintf(stderr, "bench_prec: cannot write %s\n", tmp);
      return 1;
    }
  }
  double la[3] = {0, 0, 0};
  FILE *fp = fopen("/proc/loadavg", "r");
  if (fp != NULL) {
    if (fscanf(fp, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = la[1] = la[2] = 0;
    fclose(fp);
  }
  emit(stdout, out,
       "bench_prec: %d samples per figure, each >= %.1f ms; load average before %.2f %.2f "
       "%.2f\n\n",
       o.samples, o.sample_ms, la[0], la[1], la[2]);
  int rc = 0;
  if (ops) rc = bench_ops(&o, out);
  if (rc == 0 && o.nsplit > 0) rc = bench_split(&o, out);
  if (rc == 0 && o.model != NULL) rc = bench_solves(&o, out);
  fp = fopen("/proc/loadavg", "r");
  if (fp != NULL) {
    if (fscanf(fp, "%lf %lf %lf", &la[0], &la[1], &la[2]) != 3) la[0] = la[1] = la[2] = 0;
    fclose(fp);
  }
  emit(stdout, out, "\nload average after %.2f %.2f %.2f\n", la[0], la[1], la[2]);
  if (out != NULL) {
    if (fclose(out) != 0 || rc != 0 || rename(tmp, o.out) != 0) {
      remove(tmp);
      fprintf(stderr, "bench_prec: %s not written\n", o.out);
      return 1;
    }
  }
  return rc;
}
