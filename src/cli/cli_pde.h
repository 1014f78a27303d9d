/* cli_pde.h: internals of `cnf pde` shared by pde.c (options, the
 * training-free problems) and pde_learn.c (reports over time, the learned
 * field, the P4 plot). */
#ifndef CNF_CLI_PDE_H
#define CNF_CLI_PDE_H

#include "cli.h"
#include "cnf.h"
#include "cnf_dynamics.h"
#include "cnf_pde.h"

/* A problem followed over time: P3 (ou != NULL) or P4 (dw != NULL). */
typedef struct pde_setup {
  size_t d;
  double T;
  cnf_pde_ou *ou;
  cnf_pde_dw *dw;
  const double *Q; /* P4's rotation (d, d), or NULL */
  cnf_dyn *field;  /* the problem's probability-flow field */
} pde_setup;

/* Carry a->n samples of p0 through dyn (theta: its parameters or NULL) to
 * 21 equally spaced times in [0, T] in one solve (a->opt), and print at
 * each time the LPE against the reference and W2 (Gaussian W2 for P3; for
 * P4 the marginals' W2 and the mass left of 0), then the final time's
 * figures and the solver statistics; out_csv (may be NULL) receives the
 * table.  Returns an exit status. */
int cnf__cli_pde_times(const char *cmd, cnf_ctx *ctx, const run_args *a, const pde_setup *p,
                       cnf_dyn *dyn, const double *theta, const char *out_csv);

/* Regress the MLP field mlp (theta, P) on p->field for `iters` Adam steps
 * of `minibatch` samples (pde_learn.c states the loss); *final_loss is the
 * last minibatch's.  Returns an exit status. */
int cnf__cli_pde_train(const char *cmd, cnf_ctx *ctx, const pde_setup *p, cnf_dyn *mlp,
                       double *theta, size_t iters, size_t minibatch, double lr, uint64_t seed,
                       double *final_loss);

/* P4 in 1-D: the reference density against dyn's (by backward solves to
 * p0) at 0.1 T, 0.25 T, 0.5 T and T, as a PNG (solid: reference, dashed:
 * dyn). */
int cnf__cli_pde_plot(const char *cmd, cnf_ctx *ctx, const run_args *a, const pde_setup *p,
                      cnf_dyn *dyn, const double *theta, const char *path);

/* Hutchinson's empirical variance of one probe (the mean of the per-sample
 * variances over the K >= 2 probes at every right-hand-side evaluation):
 * prints `trace_var` and `trace_var_terms` when the solves counted any. */
void cnf__cli_print_trace_var(const cnf_stats *st);

#endif /* CNF_CLI_PDE_H */
