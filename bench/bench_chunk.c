/* bench_chunk.c: compare builds of libcnf (e.g. different MLP_CHUNK_ROWS)
 * under the same machine conditions.
 *
 *   bench_chunk [--samples N] [--sample-ms MS] NAME=LIB.so NAME=LIB.so ...
 *
 * On a shared machine, the load changes from one second to the next, so
 * timing one build after another compares loads as much as builds.  This
 * program dlopen()s every build into one process (RTLD_LOCAL: each keeps
 * its own symbols) and alternates between them sample by sample: round r
 * times one sample of every build in turn, so each round sees all builds
 * under nearly the same conditions.  Reported per case: the median over
 * rounds of each build's time per call (thread CPU time, one OpenBLAS
 * thread), and the median over rounds of its ratio to the first build.
 *
 * Cases: the ops of bench_dyn.c (f, exact trace, Hutchinson, vjp) at
 * B = 100, 1000, 10000 on the default 2-64-64-64-2 MLP, and a whole forward
 * solve (cnf_flow_logp, exact trace, rtol = atol = 1e-5) at B = 100 and
 * 1000.  Output: markdown. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "cnf.h"
#include "cnf_dynamics.h"

#define MAXLIB 12

/* The entry points used, resolved in each build.  __typeof__ of the
 * declarations in the headers, so a changed signature fails to compile
 * instead of crashing here. */
#define FN(name) __typeof__(&name)
typedef struct lib {
  const char *name;
  void *h;
  FN(cnf_ctx_create) ctx_create;
  FN(cnf_ctx_free) ctx_free;
  FN(cnf_mlp_config_default) cfg_default;
  FN(cnf_mlp_param_count) param_count;
  FN(cnf_mlp_init_params) init_params;
  FN(cnf_dyn_mlp_create) mlp_create;
  FN(cnf_dyn_free) dyn_free;
  FN(cnf_dyn_reserve) reserve;
  FN(cnf_dyn_f) f;
  FN(cnf_dyn_f_div) f_div;
  FN(cnf_dyn_vjp) vjp;
  FN(cnf_probes_draw) probes;
  FN(cnf_flow_create) flow_create;
  FN(cnf_flow_free) flow_free;
  FN(cnf_options_default) opt_default;
  FN(cnf_flow_logp) logp;
  /* instances */
  cnf_ctx *ctx;
  cnf_dyn *dyn;
  cnf_flow *flow;
} lib;

static void *sym(lib *L, const char *s) {
  void *p = dlsym(L->h, s);
  if (p == NULL) {
    fprintf(stderr, "bench_chunk: %s: no symbol %s\n", L->name, s);
    exit(1);
  }
  return p;
}

#define SYM(L, field, name) *(void **)(&(L)->field) = sym((L), name)

static void load(lib *L, const char *path) {
  L->h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (L->h == NULL) {
    fprintf(stderr, "bench_chunk: %s\n", dlerror());
    exit(1);
  }
  SYM(L, ctx_create, "cnf_ctx_create");
  SYM(L, ctx_free, "cnf_ctx_free");
  SYM(L, cfg_default, "cnf_mlp_config_default");
  SYM(L, param_count, "cnf_mlp_param_count");
  SYM(L, init_params, "cnf_mlp_init_params");
  SYM(L, mlp_create, "cnf_dyn_mlp_create");
  SYM(L, dyn_free, "cnf_dyn_free");
  SYM(L, reserve, "cnf_dyn_reserve");
  SYM(L, f, "cnf_dyn_f");
  SYM(L, f_div, "cnf_dyn_f_div");
  SYM(L, vjp, "cnf_dyn_vjp");
  SYM(L, probes, "cnf_probes_draw");
  SYM(L, flow_create, "cnf_flow_create");
  SYM(L, flow_free, "cnf_flow_free");
  SYM(L, opt_default, "cnf_options_default");
  SYM(L, logp, "cnf_flow_logp");
}

static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *s, int n) {
  qsort(s, (size_t)n, sizeof *s, cmp_double);
  return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

enum { OP_F, OP_EXACT, OP_HUTCH, OP_VJP, OP_SOLVE, NOPS };
static const char *op_name[NOPS] = {"f", "exact", "hutch", "vjp", "solve"};

/* shared inputs */
static size_t P;
static double *theta, *z, *eps, *a, *w, *dz, *div_, *gz, *gth, *lp;
static cnf_options opt;

static int call(lib *L, int op, size_t B) {
  const size_t D = 2;
  switch (op) {
  case OP_F:
    return L->f(L->dyn, 0.25, B, z, theta, dz);
  case OP_EXACT:
    return L->f_div(L->dyn, 0.25, B, D, z, theta, NULL, dz, div_);
  case OP_HUTCH:
    return L->f_div(L->dyn, 0.25, B, 1, z, theta, eps, dz, div_);
  case OP_VJP:
    return L->vjp(L->dyn, 0.25, B, D, z, theta, a, w, NULL, NULL, gz, gth);
  default:
    return L->logp(L->flow, &opt, B, z, lp, NULL);
  }
}

int main(int argc, char **argv) {
  int samples = 41;
  double sample_ms = 2.0;
  lib libs[MAXLIB];
  int nl = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--samples") && i + 1 < argc) {
      samples = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--sample-ms") && i + 1 < argc) {
      sample_ms = atof(argv[++i]);
    } else if (strchr(argv[i], '=') != NULL && nl < MAXLIB) {
      char *eq = strchr(argv[i], '=');
      *eq = '\0';
      memset(&libs[nl], 0, sizeof libs[nl]);
      libs[nl].name = argv[i];
      load(&libs[nl], eq + 1);
      nl++;
    } else {
      fprintf(stderr,
              "usage: bench_chunk [--samples N] [--sample-ms MS] NAME=libcnf.so ...\n");
      return 2;
    }
  }
  if (nl < 1 || samples < 1) {
    fprintf(stderr, "bench_chunk: need at least one NAME=libcnf.so\n");
    return 2;
  }
  openblas_set_num_threads(1);

  cnf_mlp_config cfg;
  libs[0].cfg_default(&cfg, 2);
  P = libs[0].param_count(&cfg);
  const size_t Bmax = 10000, D = 2;
  theta = calloc(P, sizeof *theta);
  gth = calloc(P, sizeof *gth);
  z = calloc(Bmax * D, sizeof *z);
  eps = calloc(Bmax * D, sizeof *eps);
  a = calloc(Bmax * D, sizeof *a);
  w = calloc(Bmax, sizeof *w);
  dz = calloc(Bmax * D, sizeof *dz);
  gz = calloc(Bmax * D, sizeof *gz);
  div_ = calloc(Bmax, sizeof *div_);
  lp = calloc(Bmax, sizeof *lp);
  if (!theta || !gth || !z || !eps || !a || !w || !dz || !gz || !div_ || !lp) return 1;
  libs[0].init_params(&cfg, 20240601, theta);
  unsigned long s = 1;
  for (size_t i = 0; i < Bmax * D; i++) { /* points in the 8gaussians' range */
    s = s * 6364136223846793005UL + 1442695040888963407UL;
    z[i] = 4.0 * ((double)(s >> 11) * 0x1.0p-53 - 0.5);
  }
  for (int l = 0; l < nl; l++) {
    lib *L = &libs[l];
    if (L->ctx_create(&L->ctx) != 0 || L->mlp_create(&L->dyn, L->ctx, &cfg) != 0 ||
        L->reserve(L->dyn, Bmax, D) != 0 ||
        L->flow_create(&L->flow, L->ctx, &cfg, 1, 0.5, 20240601) != 0) {
      fprintf(stderr, "bench_chunk: %s: cannot create the MLP\n", L->name);
      return 1;
    }
  }
  libs[0].opt_default(&opt);
  opt.rtol = opt.atol = 1e-5;
  opt.trace = CNF_TRACE_EXACT;

  printf("Interleaved comparison of %d builds, %d rounds per case, thread CPU time, "
         "1 OpenBLAS thread.  Cells: median µs per call (ms for solves) and, in "
         "brackets, the median over rounds of the ratio to `%s`.\n\n",
         nl, samples, libs[0].name);
  printf("| case |");
  for (int l = 0; l < nl; l++) printf(" %s |", libs[l].name);
  printf("\n| --- |");
  for (int l = 0; l < nl; l++) printf(" ---: |");
  printf("\n");

  const size_t batches[3] = {100, 1000, 10000};
  double *t = calloc((size_t)nl * (size_t)samples, sizeof *t);
  double *ratio = calloc((size_t)samples, sizeof *ratio);
  if (t == NULL || ratio == NULL) return 1;
  for (int op = 0; op < NOPS; op++)
    for (int ib = 0; ib < 3; ib++) {
      const size_t B = batches[ib];
      if (op == OP_SOLVE && B > 1000) continue;
      fprintf(stderr, "  %s B %zu\n", op_name[op], B);
      libs[0].probes(CNF_TRACE_GAUSS, 7, 1, B, D, eps);
      for (size_t i = 0; i < B * D; i++) a[i] = 1.0 / (double)B;
      for (size_t i = 0; i < B; i++) w[i] = 1.0 / (double)B;
      /* warm up every build; calls per sample from the first build */
      long n = 1;
      for (int l = 0; l < nl; l++) {
        double c0 = cpu_now();
        long k = 0;
        do {
          if (call(&libs[l], op, B) != 0) {
            fprintf(stderr, "bench_chunk: %s: call failed\n", libs[l].name);
            return 1;
          }
          k++;
        } while (cpu_now() - c0 < 0.02 || k < 2);
        if (l == 0) n = (long)ceil(sample_ms * 1e-3 / ((cpu_now() - c0) / (double)k));
      }
      if (n < 1) n = 1;
      for (int r = 0; r < samples; r++)
        for (int l = 0; l < nl; l++) {
          /* rotate the starting build so none always runs first */
          int ll = (l + r) % nl;
          double c0 = cpu_now();
          for (long j = 0; j < n; j++) call(&libs[ll], op, B);
          t[(size_t)ll * (size_t)samples + (size_t)r] = (cpu_now() - c0) / (double)n;
        }
      printf("| %s B = %zu |", op_name[op], B);
      for (int l = 0; l < nl; l++) {
        double *tl = t + (size_t)l * (size_t)samples;
        for (int r = 0; r < samples; r++) ratio[r] = tl[r] / t[r];
        double rm = median(ratio, samples);
        double scale = op == OP_SOLVE ? 1e3 : 1e6;
        double *tmp = calloc((size_t)samples, sizeof *tmp);
        if (tmp == NULL) return 1;
        memcpy(tmp, tl, (size_t)samples * sizeof *tmp);
        printf(" %.*f (%.2f) |", op == OP_SOLVE ? 2 : 1, median(tmp, samples) * scale, rm);
        free(tmp);
      }
      printf("\n");
    }
  for (int l = 0; l < nl; l++) {
    libs[l].flow_free(libs[l].flow);
    libs[l].dyn_free(libs[l].dyn);
    libs[l].ctx_free(libs[l].ctx);
  }
  free(t), free(ratio), free(theta), free(gth), free(z), free(eps), free(a), free(w);
  free(dz), free(gz), free(div_), free(lp);
  return 0;
}
