/* cnf_model.h: one interface over every kind of model, and the training
 * loop.
 *
 * A cnf_model is a density model x -> z with a standard normal base,
 * whatever it is made of:
 *
 *   CNF_MODEL_FLOW   continuous blocks (cnf.h's cnf_flow): MLP velocity
 *                    fields, or blocks of a user field class
 *                    (cnf_ctx_register_field, cnf_dynamics.h)
 *   CNF_MODEL_STACK  discrete layers (cnf_layers.h's cnf_stack): RealNVP,
 *                    NICE, MAF, ..., and mixed stacks with CNF layers
 *
 * One sign convention for every kind (docs/design.md, "Conventions"):
 *
 *     logdet = log |det dz/dx|,     log p(x) = log N(z; 0, I) + logdet.
 *
 * For a continuous block logdet = -Delta(T), Delta the integral of
 * -tr(df/dz) (cnf_flow_encode's delta is its negative).  Standardization,
 * when the model has one, is folded into logdet, so densities are in the
 * units of x.
 *
 * Solver options (cnf_options) go to every call that may integrate; a
 * discrete stack uses them for its CNF layers only (NULL: the defaults).
 *
 * Threads: a model and everything made from it is used from one thread at
 * a time; different models with different contexts may run on different
 * threads at once.
 *
 * Errors as in cnf.h: 0 or a negative CNF_E* code, the message in the
 * context (cnf_model_ctx). */
#ifndef CNF_MODEL_H
#define CNF_MODEL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "cnf.h"
#include "cnf_layers.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cnf_model cnf_model;

typedef enum cnf_model_kind {
  CNF_MODEL_FLOW = 0, /* continuous blocks (cnf_flow) */
  CNF_MODEL_STACK = 1 /* discrete or mixed layers (cnf_stack) */
} cnf_model_kind;

/* ---- making, saving, loading ----------------------------------------- */

/* Wrap an existing flow or stack; the model owns it from then on (also
 * when the call fails) and frees it with cnf_model_free. */
int cnf_model_from_flow(cnf_model **out, cnf_flow *flow);
int cnf_model_from_stack(cnf_model **out, cnf_stack *stack);

/* A model by name, as `cnf init/train --flow NAME` makes it: "cnf" (MLP
 * blocks: hidden, layer, act, blocks, T), a preset of
 * cnf_stack_preset_names (hidden are the conditioner's widths, blocks its
 * blocks), or "field:CLASS" for blocks of a user field class registered
 * with ctx (config; blocks, T). */
typedef struct cnf_model_spec {
  const char *flow;     /* "cnf" (default), "realnvp", ..., "field:NAME" */
  size_t dim;           /* D */
  size_t blocks;        /* 0: the kind's default (cnf_model_default_blocks) */
  const char *hidden;   /* widths "64-64-64"; NULL: the kind's default (cnf
                           64-64-64, stacks 64-64); cnf only: "0" for none */
  cnf_layer layer;      /* cnf: time conditioning (concatsquash) */
  cnf_act act;          /* cnf: activation (tanh) */
  double T;             /* continuous kinds: initial end time (0.5) */
  const char *config;   /* field kinds: the class's configuration ("") */
} cnf_model_spec;

/* The largest model cnf_model_create makes (parameters over all blocks);
 * above it CNF_EINVAL, not an allocation of gigabytes. */
#define CNF_MODEL_MAX_PARAMS ((size_t)1 << 28)

void cnf_model_spec_default(cnf_model_spec *spec, const char *flow, size_t D);
/* The default number of blocks of a named kind (cnf 1, planar and radial
 * 16, affine 1, elementwise 2, the other presets 4). */
size_t cnf_model_default_blocks(const char *flow);
/* 1 if flow names a kind cnf_model_create makes without user classes:
 * "cnf" or a preset. */
int cnf_model_known_flow(const char *flow);
int cnf_model_create(cnf_model **out, cnf_ctx *ctx, const cnf_model_spec *spec, uint64_t seed);

void cnf_model_free(cnf_model *m);

/* Save to a model file (docs/model-format.md), written atomically;
 * cnf_model_load works out the kind from the file (a flow, a field flow,
 * a stack). */
int cnf_model_save(const cnf_model *m, const char *path);
int cnf_model_load(cnf_model **out, cnf_ctx *ctx, const char *path);

/* ---- what it is -------------------------------------------------------- */

cnf_model_kind cnf_model_kind_of(const cnf_model *m);
/* "cnf", the preset name of a stack ("realnvp", ...), or "field:NAME". */
const char *cnf_model_name(const cnf_model *m);
cnf_ctx *cnf_model_ctx(const cnf_model *m);
size_t cnf_model_dim(const cnf_model *m);
/* The flat parameter vector theta (P), the model's own array (writes
 * change the model).  For flows the end times are not in it (see
 * cnf_flow_end_time). */
size_t cnf_model_param_count(const cnf_model *m);
double *cnf_model_params(cnf_model *m);
/* The underlying object, or NULL when the model is of the other kind. */
cnf_flow *cnf_model_flow(cnf_model *m);
cnf_stack *cnf_model_stack(cnf_model *m);

/* Split network evaluations over n threads (flows of MLP blocks; a no-op
 * for the others).  Results are identical for a given n. */
int cnf_model_set_threads(cnf_model *m, size_t n);
/* Seed the generator of base samples and Hutchinson probes. */
void cnf_model_seed(cnf_model *m, uint64_t seed);
/* Model x_std = (x - shift) / scale (D each), densities in x's units;
 * NULL, NULL removes it. */
int cnf_model_set_standardization(cnf_model *m, const double *shift, const double *scale);
/* Data-dependent initialisation (actnorm layers of stacks) from x (B, D);
 * a no-op for flows. */
int cnf_model_init_data(cnf_model *m, size_t B, const double *x);

/* ---- densities and samples ---------------------------------------------- */

/* log p(x) of x (B, D) into logp (B).  st (may be NULL) is added to. */
int cnf_model_logp(cnf_model *m, const cnf_options *opt, size_t B, const double *x, double *logp,
                   cnf_stats *st);
/* x (B, D) -> z (B, D) and logdet (B) = log|det dz/dx| (may be NULL). */
int cnf_model_encode(cnf_model *m, const cnf_options *opt, size_t B, const double *x, double *z,
                     double *logdet, cnf_stats *st);
/* z (B, D) -> x (B, D) and logdet (B) = log|det dz/dx| at the x found (may
 * be NULL), so log p(x) = log N(z) + logdet. */
int cnf_model_decode(cnf_model *m, const cnf_options *opt, size_t B, const double *z, double *x,
                     double *logdet, cnf_stats *st);
/* B samples x (B, D) and their log p (B, may be NULL). */
int cnf_model_sample(cnf_model *m, const cnf_options *opt, size_t B, double *x, double *logp,
                     cnf_stats *st);
/* The mean negative log-likelihood of x (N, D). */
int cnf_model_nll(cnf_model *m, const cnf_options *opt, size_t N, const double *x, double *nll,
                  cnf_stats *st);

/* The rule for the trace when none is given: exact for D <= 2, Gaussian
 * Hutchinson above (the exact trace costs D network passes). */
cnf_trace cnf_trace_for_dim(size_t D);

/* ---- the flow in time (continuous models) ---------------------------------
 * A flow of K blocks with end times T_1..T_K is one path in the total time
 * S = T_1 + ... + T_K: block k runs over [S_{k-1}, S_k] (S_0 = 0) with its
 * own field f_k, so x at t = 0 reaches the latent z at t = S.  The state
 * z(t) lives in the model's coordinates: x_std = (x - shift) / scale when
 * the model has a standardization (cnf_model_set_standardization), x
 * itself otherwise.  Everything below reports states and densities in the
 * units of x throughout: a state z(t) is shown as y(t) = shift + scale z(t)
 * (elementwise; y = z without a standardization), so y(0) = x, and the
 * latent end y(S) is shift + scale z, which is cnf_model_encode's z when
 * there is no standardization.  A discrete stack has no time: these calls
 * give it CNF_EINVAL.  As everywhere here, opt NULL means the defaults and
 * st (may be NULL) is added the solver statistics. */

/* The total time S of a continuous model into *S; CNF_EINVAL for a stack. */
int cnf_model_total_time(const cnf_model *m, double *S);

/* Trajectories: the states of B rows at n >= 2 equally spaced times
 * t_j = j S / (n - 1), j = 0 .. n - 1, into paths (n, B, D), in the units
 * of x as said above.  dir > 0: in (B, D) are data rows x at t = 0 carried
 * to the latent (paths[0] = x, paths[n - 1] the latent end).  dir < 0: in
 * are latent points z (the model's z, as cnf_model_decode takes them)
 * carried back to the data (the sample direction): paths[j] is then the
 * state at t = S - j S / (n - 1), the forward paths of the x found, read
 * backwards, and paths[n - 1] is cnf_model_decode's x.  One integration
 * per block (cnf_dyn_solve_times, dense output; rows in chunks of
 * opt->batch), whose Delta is integrated too, with opt's trace. */
int cnf_model_trajectories(cnf_model *m, const cnf_options *opt, int dir, size_t B,
                           const double *in, size_t n, double *paths, cnf_stats *st);

/* The log-density of the flow's marginal at time t in [0, S]: when x ~ the
 * model, y(t) (as above) has density p_t, and with z(t) the model
 * coordinates of y and z(s), s in [t, S], the path from it,
 *
 *     log p_t(y) = log N(z(S); 0, I) + int_t^S tr(df/dz)(s, z(s)) ds
 *                  - sum_i log scale_i
 *                = log N(z(S)) - (Delta(S) - Delta(t)) - sum_i log scale_i,
 *
 * for B points y (B, D) into logp (B): p_0 is cnf_model_logp's density and
 * p_S the standard normal pushed through the standardization (N(0, I)
 * itself without one), so heat maps at t = 0, S/4, ..., S show the data's
 * density morphing into the base.  The trace is opt's (exact for D <= 2 by
 * default); rows in chunks of opt->batch.  CNF_EINVAL for t outside
 * [0, S] or a stack. */
int cnf_model_logp_at(cnf_model *m, const cnf_options *opt, double t, size_t B,
                      const double *y, double *logp, cnf_stats *st);

/* ---- loss and gradient ---------------------------------------------------- */

/* L = -(1/B) sum_b log p(x_b) (plus the RNODE terms of opt for flows) and
 * grad (P) = dL/dtheta; for flows grad_T (blocks, may be NULL) = dL/dT_k.
 * Flows draw Hutchinson probes from the model's generator. */
int cnf_model_loss_grad(cnf_model *m, const cnf_options *opt, size_t B, const double *x,
                        double *loss, double *grad, double *grad_T, cnf_stats *fwd,
                        cnf_stats *bwd);

/* The adjoint (or reverse-sweep) gradient against central differences of
 * the loss on x (B, D), all rows one system, the probes held fixed by
 * reseeding with `seed` before every evaluation: n_check parameters (all
 * if n_check >= P, else a seeded random subset) and, for flows, every end
 * time.  The relative error of a component is |fd - adj| / max(|adj|,
 * 0.01 max_i |adj_i|) (for T: / max(|adj|, 1e-12)).  each (may be NULL)
 * receives every comparison (what: "param" or "T"). */
typedef struct cnf_gradcheck_result {
  double loss;
  size_t checked, P;
  double worst_param;   /* largest relative error over the parameters */
  size_t worst_index;
  double worst_T;       /* over the end times (0 for stacks) */
  cnf_stats fwd, bwd;   /* of the adjoint gradient's solves */
} cnf_gradcheck_result;
typedef void (*cnf_gradcheck_each)(void *user, const char *what, size_t index, double adjoint,
                                   double fd, double rel);
int cnf_model_gradcheck(cnf_model *m, const cnf_options *opt, size_t B, const double *x,
                        uint64_t seed, size_t n_check, double step, cnf_gradcheck_each each,
                        void *user, cnf_gradcheck_result *res);

/* ---- the training loop ---------------------------------------------------- */

/* Where minibatches come from: rows in memory (drawn without replacement
 * for each step from the stream ("batch", step) of the run's seed) or a
 * generator called with the seed of ("batch", step) — e.g. a toy set. */
typedef struct cnf_fit_data {
  const double *rows; /* (N, D), or NULL for a generator */
  size_t N, D;
  int (*draw)(void *user, uint64_t seed, size_t B, size_t D, double *x);
  void *user;
} cnf_fit_data;

/* A gradient reduction over workers, for data-parallel training: the
 * cnf_comm of cnf.h (rank, size, sum_all(buf, n), user).  NULL: the
 * workers of the model's context (cnf_ctx_set_comm), or one worker.
 * Every worker passes the same data and options; worker r takes rows
 * [r B / R, (r + 1) B / R) of each global minibatch, and the loss and
 * gradient are the global batch means (one sum_all per step).  A CNF
 * worker integrates its rows as its own ODE system, so its steps match a
 * single process to the solver's tolerance, not bit for bit — unless the
 * model's context has the workers with a vector factory (cnf_ctx_set_comm):
 * then the rows of all workers are ONE distributed ODE system, forward
 * and backward, every worker takes the steps one process takes on the
 * whole batch (B >= R needed), and validation evaluates all rows on every
 * worker, one distributed system per solve.  With workers a stop request
 * (*stop) on any of them stops all after the current step, and its value
 * is written to the others' *stop (the mean if several differ).  Only rank 0
 * writes files, and every worker learns the outcome of each write (one
 * sum_all) before it goes on. */
typedef cnf_comm cnf_fit_comm;

typedef struct cnf_fit_report {
  long step;           /* steps taken so far, this one included (1-based) */
  long total;          /* the run's last step */
  int status;          /* 0, or the failed step's CNF_E* code (the step
                          was skipped; message in the context) */
  double loss;         /* the minibatch's loss before the update (the
                          NLL, or flow matching's regression loss) */
  double loss_avg;     /* running mean of the successful steps' losses
                          (0.97 decay) in this call, this one included */
  double nll, kinetic, jacobian; /* its parts (flows with RNODE terms;
                                    nll NAN under flow matching) */
  double grad_norm;    /* |dL/dtheta| */
  double T;            /* flows: the first block's end time; NAN otherwise */
  cnf_stats fwd, bwd;  /* solver statistics of the step */
  int validated;       /* 1 if the validation NLL was computed after it */
  double val_nll;      /* then: its value (NAN if the evaluation failed) */
  int best;            /* 1 if it is the best so far (saved to best_path) */
} cnf_fit_report;

/* The training objective.
 *   MLE    maximum likelihood through the adjoint (every kind of model)
 *   FM     conditional flow matching (Lipman et al. 2023): regress the
 *          velocity field on (z - x) / T along the linear path from a data
 *          row x at t = 0 to z ~ N(0, I) at t = T (cnf_fm.h), one network
 *          forward and reverse pass per step and no ODE solve
 *   OT_FM  the same with each minibatch's noise rows paired to its data
 *          rows by the exact optimal assignment under |x - z|^2 (OT-CFM,
 *          Tong et al. 2023)
 * The flow-matching objectives train continuous flows of one block (MLP or
 * user field, with its vjp): the result is an ordinary model whose
 * log-density is the exact one of the solver.  T is held fixed; with a
 * standardization the path runs in standardized coordinates; the network
 * runs in fo->opt.precision (float32 with CNF_PRECISION_SINGLE). */
typedef enum cnf_objective {
  CNF_OBJECTIVE_MLE = 0,
  CNF_OBJECTIVE_FM = 1,
  CNF_OBJECTIVE_OT_FM = 2
} cnf_objective;

/* "mle", "fm", "ot-fm"; parse returns 0 or CNF_EINVAL. */
const char *cnf_objective_name(cnf_objective o);
int cnf_objective_parse(const char *s, cnf_objective *out);

/* Called after every step; a non-zero return stops the run (as *stop). */
typedef int (*cnf_fit_callback)(void *user, const cnf_fit_report *rep);

typedef struct cnf_fit_options {
  size_t size;            /* sizeof(cnf_fit_options), set by the default */
  long iters;             /* the run's total steps, counting those a
                             resumed model has made (1000) */
  size_t batch;           /* minibatch rows (100; at most N for rows) */
  uint64_t seed;          /* the run's seed; a model that carries an
                             optimizer state continues with its own */
  cnf_train_options train;/* Adam */
  cnf_options opt;        /* solver options of the training steps */
  cnf_options eval_opt;   /* of validation (exact trace, 1000 rows/solve) */
  const double *val;      /* validation rows (n_val, D), or NULL */
  size_t n_val;
  long val_every;         /* steps between validations (100) */
  const char *best_path;  /* with val: the best model so far goes here */
  double best_init;       /* the NLL to beat (INFINITY; a resumed run
                             passes its saved best model's) */
  const char *state_path; /* checkpoints of the latest state, or NULL */
  long save_every;        /* steps between checkpoints (100) */
  long max_failed;        /* failed steps in a row that stop the run (10) */
  volatile sig_atomic_t *stop; /* set (e.g. by a signal handler) to stop
                                  after the current step; may be NULL */
  cnf_fit_callback callback;   /* may be NULL */
  void *user;
  const cnf_fit_comm *comm;    /* NULL: one worker */
  cnf_objective objective;     /* MLE */
  double fm_sigma;             /* flow matching: the Gaussian path's width
                                  around the line (0) */
} cnf_fit_options;

void cnf_fit_options_default(cnf_fit_options *fo);

/* What a run did. */
typedef struct cnf_fit_result {
  long steps;          /* steps taken by this call */
  long failed;         /* of which failed (skipped) */
  long iteration;      /* the model's step count at the end */
  double loss_avg;     /* running mean of the loss (0.97 decay) */
  double nfe_fwd_mean, nfe_bwd_mean;   /* per successful step */
  double nfe_fwd_running, nfe_bwd_running;
  double kinetic_mean, jacobian_mean;
  double best_val;     /* best validation NLL (INFINITY if none) */
  int stopped;         /* 1 if *stop or the callback ended the run */
  cnf_stats fwd, bwd;  /* totals over the successful steps */
} cnf_fit_result;

/* Train m by fo->objective (maximum likelihood by default) with Adam,
 * step after step up to fo->iters: minibatch of step i from the stream
 * ("batch", i), Hutchinson probes from ("probes", i) (flow matching: noise
 * and path positions from ("fm", i)), the gradient (reduced over
 * fo->comm), Adam.
 * A step whose solve fails or whose loss or gradient is not finite is
 * skipped (its parameters kept, the step counted, so a rerun draws a new
 * batch; no validation or checkpoint after it); fo->max_failed in a row
 * end the run with that error.  An update that would make a parameter or
 * Adam's moments non-finite (a diverged run) is undone and ends the run
 * with CNF_ENONFINITE.  Validation every val_every steps (and at the end),
 * the best model to best_path; checkpoints of the latest state to
 * state_path every save_every steps and at the end (also after a stop);
 * every file atomically.  A run that ends in an error writes nothing more:
 * the files are those of its last good checkpoint.  The
 * optimizer state lives in the model and is saved with it, so a run
 * resumed from a checkpoint reproduces the uninterrupted one bit for bit.
 * A fresh stack (step 0) first gets its data-dependent initialisation
 * (cnf_model_init_data) from the first 1000 rows, or 1000 rows of the
 * generator's stream ("init-data", 0).  Returns 0 (also when stopped:
 * res->stopped) or the error that ended the run (the last good state is
 * on disk). */
int cnf_fit(cnf_model *m, const cnf_fit_data *data, const cnf_fit_options *fo,
            cnf_fit_result *res);

/* The model's training step count (0 for a fresh model). */
long cnf_model_iteration(const cnf_model *m);
/* Drop the optimizer state (e.g. before handing a final model out). */
void cnf_model_clear_train_state(cnf_model *m);

/* Column means and sample standard deviations (divisor N - 1; 1 for a
 * constant column or N = 1) of x (N, D) into mean, sd (D each): what
 * `cnf train --standardize` uses. */
void cnf_moments(size_t N, size_t D, const double *x, double *mean, double *sd);

#ifdef __cplusplus
}
#endif
#endif /* CNF_MODEL_H */
