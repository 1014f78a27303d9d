/* flow_impl.h: the body of cnf_flow, shared by src/cnf and src/io. */
#ifndef CNF_FLOW_IMPL_H
#define CNF_FLOW_IMPL_H

#include <gsl/gsl_rng.h>

#include "cnf_dynamics.h"
#include "core.h"

struct cnf_flow {
  cnf_ctx *ctx;
  cnf_mlp_config cfg;
  size_t blocks;     /* K blocks, each an MLP with its own parameters */
  size_t P;          /* parameters per block */
  double *T;         /* (blocks) end times */
  double *theta;     /* (blocks, P) */
  cnf_dyn *dyn;      /* one network instance, reused by every block */
  gsl_rng *rng;      /* probes and base samples */
  /* work buffers, grown on demand outside the solver */
  size_t cap_rows, cap_probes;
  double *eps;       /* (K, B, D) probes */
};

/* An empty flow (parameters zero, T = 1) of the given shape; the caller
 * fills theta and T. */
int cnf__flow_alloc(cnf_flow **out, cnf_ctx *ctx, const cnf_mlp_config *cfg,
                    size_t blocks);

/* Probes eps (K, B, D) for one block solve, from a seed drawn from the
 * flow's generator (the sequence cnf_flow_logp uses). */
int cnf__flow_draw_probes(cnf_flow *f, cnf_trace trace, size_t K, size_t B,
                          double *eps);

#endif /* CNF_FLOW_IMPL_H */
