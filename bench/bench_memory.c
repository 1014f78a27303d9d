/* bench_memory.c: peak memory of one training step (cnf_flow_loss_grad)
 * for each adjoint variant against the number of solver steps.
 *
 * Every configuration runs in a child process of its own: the child builds
 * the flow and the batch, reads its resident set (VmRSS of
 * /proc/self/status), makes one loss-and-gradient call and reports the
 * peak (VmHWM) minus that baseline, i.e. what the call itself allocated
 * and touched: solver memory, checkpoints, workspaces.  The number of
 * solver steps grows with the end time T of a network with large weights
 * (a field that keeps turning), so the table shows how memory follows the
 * step count: backsolve stores no trajectory; the checkpointed adjoint
 * stores a checkpoint every --checkpoint-steps steps and the Hermite
 * interpolation data of one interval between two checkpoints.
 *
 *   bench_memory [--batch B] [--hidden H] [--times "0.5 2 8 32"]
 *                [--spacings "25 100 400"]
 *
 * Markdown on stdout. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cnf.h"

/* A field of /proc/self/status in kB, or -1. */
static long status_kb(const char *key) {
  FILE *fp = fopen("/proc/self/status", "r");
  if (fp == NULL) return -1;
  char line[256];
  long v = -1;
  const size_t n = strlen(key);
  while (fgets(line, sizeof line, fp) != NULL)
    if (strncmp(line, key, n) == 0 && line[n] == ':') {
      v = strtol(line + n + 1, NULL, 10);
      break;
    }
  fclose(fp);
  return v;
}

typedef struct result {
  long fwd_steps, bwd_steps, kb;
  int rc;
} result;

/* One configuration, in this (child) process. */
static result measure(size_t B, const char *hidden, double T, cnf_adjoint adj, long spacing) {
  result r = {0, 0, -1, -1};
  cnf_ctx *ctx = NULL;
  cnf_flow *f = NULL;
  if (cnf_ctx_create(&ctx) != 0) return r;
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  cnf_mlp_parse_hidden(&cfg, hidden);
  if (cnf_flow_create(&f, ctx, &cfg, 1, T, 1) != 0) return r;
  double *th = cnf_flow_params(f);
  for (size_t i = 0; i < cnf_flow_param_count(f); i++) th[i] *= 3.0;
  double *x = malloc(B * 2 * sizeof *x), *g = malloc(cnf_flow_param_count(f) * sizeof *g);
  if (x == NULL || g == NULL) return r;
  cnf_toy_sample("8gaussians", B, 7, x);
  memset(g, 0, cnf_flow_param_count(f) * sizeof *g);
  cnf_options o;
  cnf_options_default(&o);
  o.adjoint = adj;
  o.checkpoint_steps = spacing;
  o.max_steps = 1000000;
  cnf_stats fw, bw;
  cnf_stats_clear(&fw);
  cnf_stats_clear(&bw);
  const long base = status_kb("VmRSS");
  double loss = 0.0;
  r.rc = cnf_flow_loss_grad(f, &o, B, x, &loss, g, NULL, &fw, &bw);
  r.kb = status_kb("VmHWM") - base;
  r.fwd_steps = fw.nsteps;
  r.bwd_steps = bw.nsteps;
  return r;
}

static result in_child(size_t B, const char *hidden, double T, cnf_adjoint adj, long spacing) {
  result r = {0, 0, -1, -1};
  int fd[2];
  if (pipe(fd) != 0) return r;
  pid_t pid = fork();
  if (pid == 0) {
    close(fd[0]);
    result c = measure(B, hidden, T, adj, spacing);
    ssize_t w = write(fd[1], &c, sizeof c);
    _exit(w == (ssize_t)sizeof c ? 0 : 1);
  }
  close(fd[1]);
  if (pid < 0 || read(fd[0], &r, sizeof r) != (ssize_t)sizeof r) r.rc = -1;
  close(fd[0]);
  if (pid > 0) waitpid(pid, NULL, 0);
  return r;
}

int main(int argc, char **argv) {
  size_t B = 1000;
  const char *hidden = "64-64-64", *times = "0.5 2 8 32", *spacings = "25 100 400";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--batch") == 0) B = strtoul(argv[i + 1], NULL, 10);
    else if (strcmp(argv[i], "--hidden") == 0) hidden = argv[i + 1];
    else if (strcmp(argv[i], "--times") == 0) times = argv[i + 1];
    else if (strcmp(argv[i], "--spacings") == 0) spacings = argv[i + 1];
    else {
      fprintf(stderr, "bench_memory: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (B == 0) return 2;
  printf("Peak memory of one cnf_flow_loss_grad call beyond the process's resident set before\n"
         "it (VmHWM - VmRSS), 2-%s-2 network with weights x3, batch %zu of 8gaussians, exact\n"
         "trace, Adams, rtol = atol = 1e-5; the end time T sets the number of solver steps.\n\n",
         hidden, B);
  printf("| T | adjoint | checkpoint every | forward steps | backward steps | peak MB |\n");
  printf("| ---: | --- | ---: | ---: | ---: | ---: |\n");
  char tb[256];
  snprintf(tb, sizeof tb, "%s", times);
  for (char *save = NULL, *tok = strtok_r(tb, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
    const double T = atof(tok);
    result r = in_child(B, hidden, T, CNF_ADJOINT_BACKSOLVE, 100);
    printf("| %g | backsolve | — | %ld | %ld | %.1f |\n", T, r.fwd_steps, r.bwd_steps,
           r.rc == 0 ? r.kb / 1024.0 : -1.0);
    char sb[256];
    snprintf(sb, sizeof sb, "%s", spacings);
    for (char *s2 = NULL, *sp = strtok_r(sb, " ", &s2); sp; sp = strtok_r(NULL, " ", &s2)) {
      const long k = atol(sp);
      r = in_child(B, hidden, T, CNF_ADJOINT_CHECKPOINT, k);
      printf("| %g | checkpoint | %ld | %ld | %ld | %.1f |\n", T, k, r.fwd_steps, r.bwd_steps,
             r.rc == 0 ? r.kb / 1024.0 : -1.0);
    }
    fflush(stdout);
  }
  return 0;
}
