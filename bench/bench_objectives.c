/* bench_objectives.c: how fast each training objective reaches a held-out
 * NLL, on FFJORD's toy sets.
 *
 *   bench_objectives [--data a,b,..] [--objectives mle,fm,ot-fm] [--lr R]
 *                    [--batch B] [--chunk K] [--max-steps N] [--threads T]
 *                    [--precision double|single]
 *                    [--target-8gaussians V ...]
 *
 * For every (data, objective): a CNF of FFJORD's toy settings (64-64-64
 * concatsquash tanh, T = 0.5, seed 1) is trained with cnf_fit in chunks of
 * K steps (one uninterrupted run: the model carries its optimizer state);
 * after each chunk the held-out NLL of 20000 fresh samples is computed with
 * the exact trace at rtol = atol = 1e-5 (not counted in the training time),
 * until it reaches the target (FFJORD's held-out NLL after 1000 iterations
 * on this machine kind: 3.066, 3.879, 3.614) or N steps.  Prints one
 * Markdown row per run: steps and training seconds to the target, the NLL
 * then, the NFE per solve of that evaluation, the time per step, and the
 * ratio of FFJORD's wall time for its 1000 iterations (192, 114, 74 s) to
 * the training time here.  The training time is given as wall clock and
 * as this process's CPU time (one thread: equal on an idle machine; on a
 * shared one the CPU time is the steadier figure). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnf_model.h"

typedef struct target {
  const char *name;
  double nll, ffjord_wall;
} target;

static target targets[] = {
    {"8gaussians", 3.066, 192.0}, {"checkerboard", 3.879, 114.0}, {"2spirals", 3.614, 74.0}};

static double clock_s(clockid_t id) {
  struct timespec ts;
  clock_gettime(id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int draw(void *user, uint64_t seed, size_t B, size_t D, double *x) {
  (void)D;
  return cnf_toy_sample((const char *)user, B, seed, x);
}

static int listed(const char *list, const char *name) {
  const size_t n = strlen(name);
  for (const char *p = list; (p = strstr(p, name)) != NULL; p += n)
    if ((p == list || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return 1;
  return 0;
}

int main(int argc, char **argv) {
  const char *datas = "8gaussians,checkerboard,2spirals", *objs = "fm,ot-fm";
  double lr = 2e-3;
  long batch = 256, chunk = 250, max_steps = 20000, threads = 1;
  cnf_precision prec = CNF_PRECISION_DOUBLE;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--data")) datas = argv[i + 1];
    else if (!strcmp(argv[i], "--objectives")) objs = argv[i + 1];
    else if (!strcmp(argv[i], "--lr")) lr = atof(argv[i + 1]);
    else if (!strcmp(argv[i], "--batch")) batch = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--chunk")) chunk = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--max-steps")) max_steps = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--threads")) threads = atol(argv[i + 1]);
    else if (!strcmp(argv[i], "--precision")) {
      if (cnf_precision_parse(argv[i + 1], &prec) != 0) return 2;
    }
    else if (!strncmp(argv[i], "--target-", 9)) {
      for (size_t k = 0; k < 3; k++)
        if (!strcmp(argv[i] + 9, targets[k].name)) targets[k].nll = atof(argv[i + 1]);
    } else {
      fprintf(stderr, "bench_objectives: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  const size_t NT = 20000;
  double *test = malloc(NT * 2 * sizeof(double));
  cnf_ctx *ctx = NULL;
  if (test == NULL || cnf_ctx_create(&ctx) != 0) return 1;
  printf("precision of training: %s\n\n", cnf_precision_name(prec));
  printf("| data | objective | batch | lr | steps | train s (wall) | train s (CPU) | s/step (CPU) | "
         "held-out NLL | target | NFE/solve | FFJORD's 1000-it. wall / our CPU s |\n"
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  fflush(stdout);
  const char *const obj_names[] = {"mle", "fm", "ot-fm"};
  for (size_t d = 0; d < 3; d++) {
    if (!listed(datas, targets[d].name)) continue;
    cnf_toy_sample(targets[d].name, NT, cnf_seed_derive(12345, "test", 0), test);
    for (int o = 0; o < 3; o++) {
      if (!listed(objs, obj_names[o])) continue;
      cnf_model_spec spec;
      cnf_model_spec_default(&spec, "cnf", 2);
      cnf_model *m = NULL;
      if (cnf_model_create(&m, ctx, &spec, 1) != 0 || cnf_model_set_threads(m, (size_t)threads))
        return 1;
      cnf_fit_options fo;
      cnf_fit_options_default(&fo);
      cnf_objective_parse(obj_names[o], &fo.objective);
      fo.batch = o == 0 ? 100 : (size_t)batch; /* MLE at FFJORD's settings */
      fo.train.lr = o == 0 ? 1e-3 : lr;
      fo.seed = 1;
      fo.opt.precision = prec; /* training only: evaluation stays float64 */
      cnf_fit_data data = {NULL, 0, 2, draw, (void *)targets[d].name};
      double train_s = 0.0, cpu_s = 0.0, nll = INFINITY, nfe = NAN;
      long steps = 0;
      while (steps < max_steps && !(nll <= targets[d].nll)) {
        fo.iters = steps + chunk;
        const double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        cnf_fit_result res;
        if (cnf_fit(m, &data, &fo, &res) != 0) {
          fprintf(stderr, "%s %s: %s\n", targets[d].name, obj_names[o], cnf_ctx_errmsg(ctx));
          break;
        }
        train_s += clock_s(CLOCK_MONOTONIC) - t0;
        cpu_s += clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        steps = fo.iters;
        cnf_stats st;
        cnf_stats_clear(&st);
        cnf_model_seed(m, 0);
        if (cnf_model_nll(m, &fo.eval_opt, NT, test, &nll, &st) != 0) break;
        nfe = (double)st.nfe / (double)st.solves;
        fprintf(stderr, "%s %s: %ld steps, %.2f s (CPU %.2f s), NLL %.4f, NFE %.1f\n",
                targets[d].name, obj_names[o], steps, train_s, cpu_s, nll, nfe);
      }
      printf("| %s | %s | %zu | %g | %ld | %.2f | %.2f | %.4f | %.3f%s | %.3f | %.0f | %.0fx |\n",
             targets[d].name, obj_names[o], fo.batch, fo.train.lr, steps, train_s, cpu_s,
             cpu_s / (double)steps, nll, nll <= targets[d].nll ? "" : " (not reached)",
             targets[d].nll, nfe, targets[d].ffjord_wall / cpu_s);
      fflush(stdout);
      cnf_model_free(m);
    }
  }
  cnf_ctx_free(ctx);
  free(test);
  return 0;
}
