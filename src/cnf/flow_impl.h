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
  const cnf_field_class *field; /* user-field blocks, or NULL for the MLP */
  char field_config[256];       /* the class's configuration string */
  gsl_rng *rng;      /* probes and base samples */
  /* standardization x_std = (x - shift) / scale, folded into every
   * reported density (NULL when absent) */
  double *shift;     /* (D) */
  double *scale;     /* (D) */
  /* optimizer state saved with the model (NULL when absent) */
  struct cnf_train_state *train;
  /* work buffers, grown on demand outside the solver */
  size_t cap_rows, cap_probes;
  double *eps;       /* (K, B, D) probes */
};

/* The end times a flow accepts, from cnf_flow_create, cnf_flow_set_end_time
 * and model files alike: below 1e-8 a block is the identity to within
 * rounding and CVODE cannot take its first step (T = 5e-324 gives
 * CV_ILL_INPUT); above 1e8 no solve finishes within any step budget. */
#define CNF__T_MIN 1e-8
#define CNF__T_MAX 1e8

/* An empty flow (parameters zero, T = 1) of the given shape; the caller
 * fills theta and T. */
int cnf__flow_alloc(cnf_flow **out, cnf_ctx *ctx, const cnf_mlp_config *cfg, size_t blocks);
/* The same for blocks of a user field class (cfg.dim = D, no hidden
 * layers); CNF_EINVAL for a bad configuration string. */
int cnf__flow_alloc_field(cnf_flow **out, cnf_ctx *ctx, const cnf_field_class *cls,
                          const char *config, size_t D, size_t blocks);

/* Probes eps (K, B, D) for one block solve, from a seed drawn from the
 * flow's generator (the sequence cnf_flow_logp uses). */
/* sum_i log scale_i, 0 without standardization. */
double cnf__flow_log_scale(const cnf_flow *f);
/* x (B, D) standardized into out (B, D); a copy if there is none. */
void cnf__flow_standardize(const cnf_flow *f, size_t B, const double *x,
                           double *out);

/* Adam's state: step counts, the seed of the run, first and second moments
 * of the P = blocks * params network parameters followed by one entry per
 * block for s_k = sqrt(T_k). */
typedef struct cnf_train_state {
  long iter;      /* steps taken, failed ones included */
  long updates;   /* Adam updates made: the t of its bias correction */
  uint64_t seed;
  size_t n;   /* blocks * params + blocks */
  double *m;  /* (n) */
  double *v;  /* (n) */
} cnf_train_state;

void cnf__train_state_free(cnf_train_state *st);
/* A zeroed state of n entries, or NULL. */
cnf_train_state *cnf__train_state_new(size_t n);

/* cnf_flow_loss_grad with the loss's parts (3) = (negative log-likelihood,
 * mean kinetic integral, mean Jacobian integral), parts may be NULL; the
 * loss is parts[0] + reg_kinetic parts[1] + reg_jacobian parts[2]. */
int cnf__flow_loss_grad(cnf_flow *f, const cnf_options *opt, size_t B, const double *x,
                        double *loss, double *parts, double *grad, double *grad_T,
                        cnf_stats *fwd, cnf_stats *bwd);

int cnf__flow_draw_probes(cnf_flow *f, cnf_trace trace, size_t K, size_t B,
                          double *eps);
/* The probes of rows [lo, lo + B) of a solve of Bg rows (one draw for all
 * Bg rows, the same on every worker, so a row's probe does not depend on
 * the worker that holds it): drawn into work (K, Bg, D) and the rows
 * copied to eps (K, B, D).  With B == Bg, drawn into eps (work unused). */
int cnf__flow_draw_probes_part(cnf_flow *f, cnf_trace trace, size_t K, size_t Bg, size_t lo,
                               size_t B, double *work, double *eps);

#endif /* CNF_FLOW_IMPL_H */
