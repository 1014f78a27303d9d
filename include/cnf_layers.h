/* cnf_layers.h: discrete normalizing flows beside the continuous one.
 *
 * A transform ("tf") is one invertible layer x -> z with an exact
 * log|det dz/dx|; a stack composes transforms, x -> layer 1 -> ... ->
 * layer L -> z, with z ~ N(0, I):
 *
 *     log p(x) = log N(z; 0, I) + sum_l logdet_l.
 *
 * Every layer works on batches x (B, D), row-major, one sample per row, and
 * gives three things: forward (x -> z and logdet (B)), inverse (z -> x) and
 * one reverse sweep that returns the gradients of
 *
 *     S = sum_b ( a_b . z_b + c_b logdet_b )
 *
 * with respect to the inputs x (B, D) and the layer's parameters theta (P),
 * for any seeds a (B, D) and c (B).  The maximum-likelihood gradient is that
 * sweep run backward through the stack.  Layers allocate their workspaces
 * when they are created (in chunks of CNF_TF_CHUNK rows), never in the ops.
 * Those workspaces, the stack's generator and its context make a layer or
 * a stack an object used from one thread at a time (cnf.h, "Thread
 * safety"); stacks with contexts of their own may run on threads at once.
 *
 * Kinds (P: parameters, D: dimension, MLP: the conditioner network with
 * tanh hidden layers and a linear output):
 *   affine       z = L U x + b, L unit lower, U upper with diagonal
 *                exp(s): P = D^2 + D; inverse and logdet = sum s in O(D^2)
 *   elementwise  z = exp(s) * x + b per dimension: P = 2 D
 *   actnorm      the same map, initialised from data (cnf_stack_init_data)
 *                so that every output has mean 0 and variance 1
 *   sinharcsinh  z = sinh(exp(l) asinh(x) - e) per dimension (Jones and
 *                Pewsey 2009), monotone for every (e, l): P = 2 D
 *   planar       z = x + u' tanh(w . x + b) (Rezende and Mohamed 2015),
 *                u' = u + (m(w.u) - w.u) w / |w|^2, m(a) = -1 + softplus(a),
 *                so that w . u' > -1 and the map is invertible: P = 2 D + 1.
 *                The inverse has no closed form: a scalar equation for
 *                w . x is solved by safeguarded Newton to 1e-13.
 *   radial       z = x + beta (x - x0) / (alpha + |x - x0|), alpha =
 *                softplus(a), beta = -alpha + softplus(b): P = D + 2.  The
 *                inverse solves a quadratic for |x - x0| (closed form).
 *   coupling     RealNVP: with a binary mask m (parity arg), z = m x +
 *                (1 - m) (x exp(s) + t), (s, t) = MLP(m x), s softly
 *                clamped to (-3, 3) by 3 tanh(./3)
 *   additive     NICE: z = m x + (1 - m) (x + t), t = MLP(m x); logdet 0
 *   maf          MADE-masked autoregressive: z = (x - mu(x)) exp(-s(x)),
 *                mu_i, s_i depending on x_<i only: forward in one pass,
 *                inverse sequential (D passes)
 *   iaf          inverse autoregressive: x = z exp(s(z)) + mu(z): inverse
 *                in one pass, forward sequential (D passes), and so is its
 *                reverse sweep (D transposed triangular back-substitution
 *                passes)
 *   permute      z_i = x_{pi(i)}: reversal (arg 0) or a random permutation
 *                drawn from seed arg; P = 0
 *   cnf          a continuous block: z = z(T) of dz/dt = f(t, z; theta), z(0)
 *                = x, f the MLP of cnf.h (concatsquash, tanh, the hidden
 *                widths given), T = arg / 1000 fixed (arg 0: T = 0.5); ld =
 *                int_0^T tr(df/dz) dt with the exact trace.  Inverse by the
 *                backward solve, reverse sweep by the adjoint (cnf_dyn_grad),
 *                at the tolerances of cnf_tf_set_options.  Unlike the other
 *                kinds its ops allocate (the solver's memory, per call).
 *
 * Errors as in cnf.h: negative CNF_E* codes, the message in the context. */
#ifndef CNF_LAYERS_H
#define CNF_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "cnf.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Rows processed at once by every layer op; workspaces hold this many. */
#define CNF_TF_CHUNK 256

typedef enum cnf_tf_kind {
  CNF_TF_AFFINE = 0,
  CNF_TF_ELEMENTWISE,
  CNF_TF_ACTNORM,
  CNF_TF_SINHARCSINH,
  CNF_TF_PLANAR,
  CNF_TF_RADIAL,
  CNF_TF_COUPLING,
  CNF_TF_ADDITIVE,
  CNF_TF_MAF,
  CNF_TF_IAF,
  CNF_TF_PERMUTE,
  CNF_TF_CNF,
  CNF_TF_NKINDS
} cnf_tf_kind;

typedef struct cnf_tf_config {
  cnf_tf_kind kind;
  size_t dim;                    /* D */
  size_t n_hidden;               /* network widths (coupling, additive, */
  size_t hidden[CNF_MAX_HIDDEN]; /* maf, iaf, cnf), at least one */
  unsigned long arg;             /* coupling/additive: mask parity (0: even
                                    coordinates pass unchanged, 1: odd);
                                    permute: 0 reversal, else the seed;
                                    cnf: T in thousandths (0: 500) */
} cnf_tf_config;

/* "affine", "elementwise", ..., "permute", "cnf"; NULL for an unknown kind.
 * Parse returns 0 or CNF_EINVAL (no context: no message). */
const char *cnf_tf_kind_name(cnf_tf_kind k);
int cnf_tf_kind_parse(const char *s, cnf_tf_kind *out);

/* ---- one layer ------------------------------------------------------- */

typedef struct cnf_tf cnf_tf;

/* A layer of the given configuration (CNF_EINVAL for a bad one: D = 0, no
 * hidden layer for a conditioned kind).  Parameters live outside: theta (P)
 * is passed to every op. */
int cnf_tf_create(cnf_tf **out, cnf_ctx *ctx, const cnf_tf_config *cfg);
void cnf_tf_free(cnf_tf *tf);
const cnf_tf_config *cnf_tf_get_config(const cnf_tf *tf);
size_t cnf_tf_param_count(const cnf_tf *tf);
/* Initial parameters into theta (P) from seed: the identity map for
 * affine, the elementwise kinds, planar (u chosen so that u' = 0, plus noise
 * of 0.01) and radial (beta = 0, x0 random); for the conditioned kinds
 * LeCun's uniform initialisation for tanh (bound sqrt(3 / fan-in), the
 * fan-in counting only the inputs a unit sees) with the last layer scaled
 * by 0.1. */
void cnf_tf_init_params(const cnf_tf *tf, double *theta, uint64_t seed);

/* x (B, D) -> z (B, D) and logdet (B) = log|det dz/dx| (may be NULL).
 * z must not alias x. */
int cnf_tf_forward(cnf_tf *tf, const double *theta, size_t B, const double *x, double *z,
                   double *logdet);
/* z (B, D) -> x (B, D); logdet (B, may be NULL) is log|det dz/dx| at the
 * x found, so log p(x) = log p(z) + logdet.  x must not alias z.  Planar:
 * CNF_ECONV if the root solve fails (it cannot for a valid layer). */
int cnf_tf_inverse(cnf_tf *tf, const double *theta, size_t B, const double *z, double *x,
                   double *logdet);
/* The reverse sweep at x (B, D): with S = sum_b (a_b . z_b + c_b logdet_b),
 * gx (B, D) = dS/dx (may be NULL) and gth (P) += dS/dtheta (may be NULL).
 * a (B, D) or c (B) may be NULL for zero.  gx must not alias a. */
int cnf_tf_backward(cnf_tf *tf, const double *theta, size_t B, const double *x, const double *a,
                    const double *c, double *gx, double *gth);

/* Solver options of a cnf layer (copied; the default is
 * cnf_options_default's, with opt->trace ignored: the trace is exact).
 * No effect on other kinds.  Returns 0, or CNF_EINVAL (with a message)
 * for options not initialised by cnf_options_default; tf NULL gives
 * CNF_EINVAL without one. */
int cnf_tf_set_options(cnf_tf *tf, const cnf_options *opt);

/* MADE (maf, iaf): the degree-respecting masks of the conditioner.  For a
 * maf or iaf layer, writes mu and s at x (B, D each) so tests can check
 * that output i depends on inputs < i only.  CNF_EINVAL for other kinds. */
int cnf_tf_made_outputs(cnf_tf *tf, const double *theta, size_t B, const double *x, double *mu,
                        double *s);

/* ---- stacks ---------------------------------------------------------- */

typedef struct cnf_stack cnf_stack;

/* A stack of L layers of dimension D (every cfgs[l].dim must be D), its
 * parameters drawn from seed.  `name` labels the model (e.g. "realnvp";
 * at most 31 characters of [a-z0-9_]). */
int cnf_stack_create(cnf_stack **out, cnf_ctx *ctx, const char *name, size_t D, size_t L,
                     const cnf_tf_config *cfgs, uint64_t seed);
void cnf_stack_free(cnf_stack *s);

/* The named flows of `cnf train --flow`, NULL-terminated: realnvp, nice,
 * maf, iaf, planar, radial, affine, elementwise (cnf is the continuous one,
 * cnf.h). */
const char *const *cnf_stack_preset_names(void);
/* A preset stack of `blocks` blocks, conditioners with hidden widths
 * hidden (n_hidden of them):
 *   realnvp      blocks x [coupling(parity k % 2), actnorm]
 *   nice         blocks x [additive(parity k % 2)], then elementwise
 *   maf, iaf     blocks x [maf|iaf, reverse permutation]
 *   planar       blocks x planar
 *   radial       blocks x radial
 *   affine       blocks x affine
 *   elementwise  blocks x [elementwise, sinharcsinh]
 * CNF_EINVAL for an unknown name. */
int cnf_stack_preset(cnf_stack **out, cnf_ctx *ctx, const char *name, size_t D, size_t blocks,
                     size_t n_hidden, const size_t *hidden, uint64_t seed);

const char *cnf_stack_name(const cnf_stack *s);
size_t cnf_stack_dim(const cnf_stack *s);
size_t cnf_stack_layers(const cnf_stack *s);
const cnf_tf *cnf_stack_layer(const cnf_stack *s, size_t l);
/* All parameters, layer after layer; the array is the stack's own. */
size_t cnf_stack_param_count(const cnf_stack *s);
double *cnf_stack_params(cnf_stack *s);

/* As cnf_flow_set_standardization: the stack models x_std = (x - shift) /
 * scale, densities in the units of x.  NULL, NULL removes it. */
int cnf_stack_set_standardization(cnf_stack *s, const double *shift, const double *scale);
int cnf_stack_standardization(const cnf_stack *s, double *shift, double *scale);

/* cnf_tf_set_options on every layer; returns as it does. */
int cnf_stack_set_options(cnf_stack *s, const cnf_options *opt);

/* Seed the stack's generator (base samples of cnf_stack_sample). */
void cnf_stack_seed(cnf_stack *s, uint64_t seed);

/* encode, decode, logp and sample return CNF_ENONFINITE, naming the rows,
 * when a result is NaN or infinite, as the flow's functions do (cnf.h). */

/* x (B, D) -> z (B, D), logdet (B, sum over the layers and the
 * standardization): log p(x) = log N(z) + logdet. */
int cnf_stack_encode(cnf_stack *s, size_t B, const double *x, double *z, double *logdet);
/* z (B, D) -> x (B, D) through the inverses, logdet (B) the same sum at the
 * x found (may be NULL). */
int cnf_stack_decode(cnf_stack *s, size_t B, const double *z, double *x, double *logdet);
int cnf_stack_logp(cnf_stack *s, size_t B, const double *x, double *logp);
/* B samples x (B, D) and their log p (B, may be NULL). */
int cnf_stack_sample(cnf_stack *s, size_t B, double *x, double *logp);

/* L = -(1/B) sum_b log p(x_b) and grad (P) = dL/dtheta (overwritten). */
int cnf_stack_loss_grad(cnf_stack *s, size_t B, const double *x, double *loss, double *grad);

/* Data-dependent initialisation: pass x (B, D) through the stack and set
 * every actnorm layer so its outputs have mean 0 and variance 1. */
int cnf_stack_init_data(cnf_stack *s, size_t B, const double *x);

/* One Adam step (cnf_adam_update) on the minibatch x (B, D); the moments
 * and the step count live in the stack and are saved with it.  loss and
 * grad_norm (may be NULL) receive the loss before the update and |dL/dtheta|.
 * A non-finite loss or gradient leaves the parameters unchanged and returns
 * CNF_ENONFINITE. */
int cnf_stack_train_step(cnf_stack *s, const cnf_train_options *to, size_t B, const double *x,
                         double *loss, double *grad_norm);
long cnf_stack_train_updates(const cnf_stack *s);
void cnf_stack_clear_train_state(cnf_stack *s);

/* Model files (docs/model-format.md, "Discrete flows"): the CNF-MODEL
 * container with a `flow=` key and the layer list; written atomically,
 * CRC-32 checked on load. */
int cnf_stack_save(const cnf_stack *s, const char *path);
int cnf_stack_load(cnf_stack **out, cnf_ctx *ctx, const char *path);
/* 1 if the model file at path holds a stack, 0 if it holds a CNF (or is no
 * model file at all: cnf_flow_load then says why), negative on an I/O error. */
int cnf_model_file_is_stack(const char *path);

#ifdef __cplusplus
}
#endif
#endif /* CNF_LAYERS_H */
