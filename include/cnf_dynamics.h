/* cnf_dynamics.h: velocity fields f(t, z; theta) as an ops table, so the
 * neural network, the analytic fields and a user's own field plug into the
 * solver, the traces and (later) the adjoint the same way.
 *
 * All ops are batched: z is (B, D), one sample per row, and the field is
 * applied to each row independently.  Tangent sets v are (K, B, D): K
 * directions per sample, direction k of sample b at v[(k * B + b) * D].
 * A NULL v means the K = D unit vectors e_k (v[k][b] = e_k for every b),
 * which gives the exact trace; every implementation must accept it.
 *
 * Return codes follow CVODE's right-hand side contract: 0 on success, a
 * positive value for a recoverable failure (the solver retries with a
 * smaller step, e.g. after a non-finite value), a negative one for a fatal
 * failure.  Ops must not allocate: CVODE calls them thousands of times per
 * solve; size workspaces when the state is created.
 *
 * Thread safety: a field (cnf_dyn) is used from one thread at a time, that
 * of its context (cnf.h, "Thread safety"); its ops write the state's
 * workspaces.  An MLP split over threads (cnf_dyn_mlp_set_threads) runs its
 * own workers inside each call and is still called from one thread.  A
 * user field's ops are called only from the thread that called the solve
 * (or from the MLP's workers, for the MLP alone); they need no locking but
 * must not call back into the same field or context. */
#ifndef CNF_DYNAMICS_H
#define CNF_DYNAMICS_H

#include "cnf.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cnf_dyn_type {
  const char *name;

  /* Required.  dz (B, D) = f(t, z). */
  int (*f)(void *s, double t, size_t B, const double *z, const double *theta,
           double *dz);

  /* Optional.  dz = f(t, z) and div (B), div_b = sum_k v_kb . (J_b v_kb)
   * with J_b = df/dz at row b; with v NULL, K = D and div is the exact
   * trace.  No 1/K factor: callers average. */
  int (*f_div)(void *s, double t, size_t B, size_t K, const double *z,
               const double *theta, const double *v, double *dz,
               double *div);

  /* Optional.  dz = f(t, z) and jv (K, B, D), jv_kb = J_b v_kb.  The
   * forward-mode tangent; dz may be NULL when only jv is wanted. */
  int (*jvp)(void *s, double t, size_t B, size_t K, const double *z,
             const double *theta, const double *v, double *dz, double *jv);

  /* Optional.  One reverse sweep for the scalar
   *     S = sum_b a_b . f_b + sum_b w_b div_b,
   * div_b as in f_div.  Writes gz (B, D) = dS/dz and adds dS/dtheta to
   * gth (P).  w == NULL drops the trace term (a plain vector-Jacobian
   * product; v and K are then ignored); gth == NULL skips the parameter
   * gradient.  If dz is not NULL it receives f(t, z) (B, D), which the
   * sweep's own forward pass computes anyway (backsolve needs both). */
  int (*vjp)(void *s, double t, size_t B, size_t K, const double *z,
             const double *theta, const double *a, const double *w,
             const double *v, double *dz, double *gz, double *gth);

  /* Optional.  Size the state's workspaces for batches of B samples with K
   * tangent sets (K = D for the exact trace), so later ops need not
   * allocate.  Called by cnf_dyn_reserve, outside the solver's hot path;
   * returns 0 or a negative CNF_E* code. */
  int (*reserve)(void *s, size_t B, size_t K);

  /* Optional.  Frees the state when the cnf_dyn that owns it is freed. */
  void (*free)(void *s);

  /* Optional.  vjp for the scalar with the RNODE regularisers' terms,
   *     S = sum_b a_b . f_b + w_b div_b + ck_b |f_b|^2
   *         + cj_b sum_k |J_b v_kb|^2,
   * i.e. the output seeds a_b + 2 ck_b f_b on the primal and
   * w_b v_kb + 2 cj_b J_b v_kb on the tangents.  ck, cj (B) may be NULL
   * (those terms dropped); cj needs w and v as the trace term does.
   * Training with opt->reg_jacobian > 0 needs this op; without it the kinetic
   * term alone falls back on f and vjp. */
  int (*vjp_reg)(void *s, double t, size_t B, size_t K, const double *z,
                 const double *theta, const double *a, const double *w,
                 const double *ck, const double *cj, const double *v,
                 double *dz, double *gz, double *gth);

  /* Optional.  Per-row times: dz (B, D), row b = f(t[b], z_b), with t (B)
   * one time per row (flow matching draws one per sample).  Without the
   * op, cnf_dyn_f_rows calls f on each run of equal times. */
  int (*f_rows)(void *s, const double *t, size_t B, const double *z,
                const double *theta, double *dz);

  /* Optional.  The reverse sweep with per-row times t (B), no tangents,
   * for the scalar
   *     S = sum_b a_b . f_b + ck_b |f_b|^2,   f_b = f(t[b], z_b),
   * i.e. the output seed a_b + 2 ck_b f_b (ck (B) may be NULL: a plain
   * vector-Jacobian product).  gz (B, D) = dS/dz (may be NULL: not
   * wanted), dS/dtheta added to gth (P) (may be NULL), dz (B, D) receives
   * f (may be NULL).  With ck, a quadratic loss of f such as flow
   * matching's takes one forward and one reverse pass.  Without the op,
   * cnf_dyn_vjp_rows calls f and vjp on each run of equal times. */
  int (*vjp_rows)(void *s, const double *t, size_t B, const double *z,
                  const double *theta, const double *a, const double *ck,
                  double *dz, double *gz, double *gth);
} cnf_dyn_type;

/* A field instance: a type, its state, the dimension D and the number of
 * parameters P (0 for a fixed field), plus the solver workspace. */
typedef struct cnf_dyn cnf_dyn;

/* Wrap a user's state.  With own_state != 0, type->free(state) is called by
 * cnf_dyn_free. */
int cnf_dyn_create(cnf_dyn **out, cnf_ctx *ctx, const cnf_dyn_type *type,
                   void *state, int own_state, size_t D, size_t P);
void cnf_dyn_free(cnf_dyn *dyn);
size_t cnf_dyn_dim(const cnf_dyn *dyn);
size_t cnf_dyn_param_count(const cnf_dyn *dyn);
const char *cnf_dyn_name(const cnf_dyn *dyn);
/* The state given to cnf_dyn_create (e.g. for a field class's init). */
void *cnf_dyn_state(const cnf_dyn *dyn);

/* The MLP of cnf.h.  theta layout: for each layer W (out, in), b (out),
 * then wb, wg, bg (out each) for concatsquash or wt (out) for concat. */
int cnf_dyn_mlp_create(cnf_dyn **out, cnf_ctx *ctx, const cnf_mlp_config *cfg);
/* Split the MLP's batch over n threads (1..64; 1, the default, runs
 * serially): each op runs the rows of thread t, [t B / n, (t + 1) B / n),
 * on a workspace of its own, and the parameter gradient adds the threads'
 * partial sums in thread order, so a given n gives the same bits every run
 * (different n may differ in the last bits of the parameter gradient, and
 * in float32 of every output).  Ops with less work per thread than the
 * measured threshold (docs/design.md section 14: about 12 stacked rows of
 * FFJORD's network, B (1 + K) in all) stay serial.  The n - 1 worker
 * threads live with the field, spin about 0.1 ms after each call, then
 * sleep; one field must not be used from two threads at once.  OpenBLAS
 * should be single-threaded meanwhile (OPENBLAS_NUM_THREADS=1). */
int cnf_dyn_mlp_set_threads(cnf_dyn *dyn, size_t n);
size_t cnf_dyn_mlp_threads(const cnf_dyn *dyn);

/* Fill theta (P) with the seeded nn.Linear-style initialisation.
 * CNF_EINVAL for an invalid cfg or theta NULL, CNF_ENOMEM (no context: no
 * message). */
int cnf_mlp_init_params(const cnf_mlp_config *cfg, uint64_t seed,
                        double *theta);

/* f = A z + b with theta = [A (D, D) row-major, b (D)]; P = D*D + D.
 * x(t) = expm(t A) x0 + ..., tr J = tr A. */
int cnf_dyn_linear_create(cnf_dyn **out, cnf_ctx *ctx, size_t D);

/* The stiff cubic field f = -Q (Q^T z)^3 (elementwise cube), Q (D, D)
 * orthogonal, copied; NULL means the identity.  No parameters.  With
 * y0 = Q^T z0: y_i(t) = y0_i / sqrt(1 + 2 t y0_i^2) and
 * int_0^t tr J = -(3/2) sum_i log(1 + 2 t y0_i^2). */
int cnf_dyn_cubic_create(cnf_dyn **out, cnf_ctx *ctx, size_t D,
                         const double *Q);

/* ---- field classes: user fields as blocks of a flow --------------------
 *
 * A flow's blocks may be any field with parameters, not only the MLP: a
 * class says how to build the field from (D, a configuration string) and
 * how to initialise its parameters.  Register the class with the context;
 * cnf_flow_create_field (cnf.h) then builds a flow of such blocks, which
 * trains (cnf_train_step, cnf_fit; the field needs a vjp op), saves and
 * loads like an MLP flow: the model file records the class name, the
 * configuration string and the parameters, and loading looks the name up
 * among the classes registered with the loading context (an unknown name is
 * CNF_EUNSUPPORTED, naming the file and the class). */
typedef struct cnf_field_class {
  const char *name; /* 1..31 characters of [a-z0-9_-], unique per context */
  /* A new field of dimension D from its configuration (a string of at most
   * 255 characters of [A-Za-z0-9_.,:+-], possibly empty), with
   * cnf_dyn_create; 0 or a negative CNF_E* code (message in ctx). */
  int (*create)(cnf_dyn **out, cnf_ctx *ctx, size_t D, const char *config,
                void *user);
  /* Optional.  Initial parameters theta (P) from seed; NULL: zeros. */
  int (*init)(const cnf_dyn *dyn, uint64_t seed, double *theta, void *user);
  void *user;
} cnf_field_class;

/* Register cls (borrowed: it must outlive the context) with ctx, at most 64
 * classes.  CNF_EINVAL for a bad or already registered name. */
int cnf_ctx_register_field(cnf_ctx *ctx, const cnf_field_class *cls);
/* The class registered under name, or NULL. */
const cnf_field_class *cnf_ctx_find_field(const cnf_ctx *ctx, const char *name);

/* ---- evaluation with fallbacks ---------------------------------------
 * These use the type's op when it has one and otherwise compose one in
 * this single place:
 *   f_div: jvp + dot products; else vjp with a = v; else, for v == NULL
 *          only, central differences of f (step 1e-6 (1 + |z_i|)).
 *   jvp:   vjp cannot give J v, so central differences of f.
 *   vjp:   without the op, CNF_EUNSUPPORTED.
 * Scratch space is sized by cnf_dyn_reserve (called by the solvers). */
int cnf_dyn_reserve(cnf_dyn *dyn, size_t B, size_t K);
int cnf_dyn_f(cnf_dyn *dyn, double t, size_t B, const double *z,
              const double *theta, double *dz);
int cnf_dyn_f_div(cnf_dyn *dyn, double t, size_t B, size_t K,
                  const double *z, const double *theta, const double *v,
                  double *dz, double *div);
int cnf_dyn_jvp(cnf_dyn *dyn, double t, size_t B, size_t K, const double *z,
                const double *theta, const double *v, double *dz,
                double *jv);
int cnf_dyn_vjp(cnf_dyn *dyn, double t, size_t B, size_t K, const double *z,
                const double *theta, const double *a, const double *w,
                const double *v, double *dz, double *gz, double *gth);

/* Per-row times t (B): dz_b = f(t[b], z_b), and the reverse sweep of
 * S = sum_b a_b . f_b + ck_b |f_b|^2 (ck (B) may be NULL; gz (B, D) =
 * dS/dz, may be NULL; dS/dtheta added to gth (P), may be NULL; dz (B, D)
 * receives f, may be NULL), as the ops f_rows and vjp_rows above.  The
 * type's op when it has one, otherwise the scalar-time ops on each maximal
 * run of consecutive rows with equal times (one call per row when all
 * times differ); the fallback of vjp_rows needs the vjp op (else
 * CNF_EUNSUPPORTED) and, with ck or without gz, scratch that
 * cnf_dyn_reserve sizes (allocated on first use). */
int cnf_dyn_f_rows(cnf_dyn *dyn, const double *t, size_t B, const double *z,
                   const double *theta, double *dz);
int cnf_dyn_vjp_rows(cnf_dyn *dyn, const double *t, size_t B,
                     const double *z, const double *theta, const double *a,
                     const double *ck, double *dz, double *gz, double *gth);

/* Draw Hutchinson probes eps (K, B, D) from a seeded stream: Gaussian
 * N(0, 1) or Rademacher +-1 entries.  `trace` must not be exact:
 * CNF_EINVAL then, or for eps NULL (no context: no message). */
int cnf_probes_draw(cnf_trace trace, uint64_t seed, size_t K, size_t B,
                    size_t D, double *eps);

/* Integrate one block's augmented state (z, Delta) from t0 to t1 (either
 * direction): dz/dt = f, dDelta/dt = -div with div the exact trace
 * (eps == NULL) or the Hutchinson mean over the K probes eps (K, B, D),
 * held fixed for the whole solve.  z (B, D) and delta (B) are updated in
 * place.  st may be NULL; when given it is added to.  Solver failures
 * return CNF_ETOOMUCHWORK, CNF_EERRTEST, CNF_ECONV, CNF_ERHS or
 * CNF_ESOLVER, with CVODE's flag name and the statistics in the context's
 * message.
 *
 * What the field-level calls (cnf_dyn_solve, cnf_dyn_solve_times,
 * cnf_dyn_grad, cnf_dyn_logp_at) take from where, for any field, the
 * MLP's and a user's alike:
 *   - The trace is chosen by eps, not by the options: eps NULL is the
 *     exact trace (K is then ignored and D unit directions are used), a
 *     non-NULL eps is Hutchinson with the caller's K probes (K >= 1, else
 *     CNF_EINVAL); the caller draws them, e.g. with cnf_probes_draw.
 *     opt->trace and opt->probes are ignored here (they serve the flow
 *     calls of cnf.h, which draw their own probes).
 *   - opt->batch is ignored: all B rows form one ODE system with one step
 *     size; split the rows yourself for independent step control.
 *   - Read: rtol, atol, atol_logp, max_steps, max_order, h_init,
 *     max_nonlin_iters, method, report_var (the solves), and for
 *     cnf_dyn_grad also adjoint, rtol_adj, atol_adj, seminorm and
 *     checkpoint_steps.  reg_kinetic and reg_jacobian are not used.
 *   - B = 0 is an error (CNF_EINVAL, "empty batch (B = 0)" in the
 *     message), as for the flow calls: an empty batch is a caller's bug
 *     more often than a request; arrays are left untouched. */
int cnf_dyn_solve(cnf_dyn *dyn, const double *theta, const cnf_options *opt,
                  double t0, double t1, size_t B, size_t K,
                  const double *eps, double *z, double *delta,
                  cnf_stats *st);

/* The same solve from t0 through the output times tout[0..m) (monotone in
 * the direction of integration; a time equal to t0 gives the initial
 * state), in ONE integration: z_out (m, B, D) and delta_out (m, B), either
 * may be NULL, receive the state at each tout[k] from CVODE's dense output,
 * and z, delta end at tout[m-1].  The density along a trajectory follows:
 * log p_t(z(t)) = log p_0(z(t0)) + (delta(t) - delta(t0)), since
 * dDelta/dt = -div f. */
int cnf_dyn_solve_times(cnf_dyn *dyn, const double *theta,
                        const cnf_options *opt, double t0, size_t m,
                        const double *tout, size_t B, size_t K,
                        const double *eps, double *z, double *delta,
                        double *z_out, double *delta_out, cnf_stats *st);

/* The gradient of a loss of the end state of one solve, by the adjoint
 * method.  loss_fn receives z1 (B, D) and delta1 (B) at t1 and writes the
 * scalar *loss and its seeds gz1 = dL/dz1 (B, D) and gdelta1 = dL/ddelta1
 * (B), returning 0 or a negative CNF_E* code. */
typedef int (*cnf_terminal_loss)(void *user, size_t B, size_t D,
                                 const double *z1, const double *delta1,
                                 double *loss, double *gz1, double *gdelta1);

/* Solve dz/dt = f(t, z; theta), dDelta/dt = -div (exact with eps NULL,
 * else the mean over the K probes eps (K, B, D)) from z0 (B, D) and
 * Delta(t0) = 0 to t1 (either direction), call loss_fn on the end state,
 * then integrate the adjoint back to t0 (opt->adjoint: backsolve or
 * checkpoint; opt->rtol_adj, atol_adj, seminorm as for flows):
 * gz0 (B, D) = dL/dz0 and gth (P) = dL/dtheta (either may be NULL).
 * loss, z1 (B, D) and delta1 (B) receive the forward results (z1, delta1
 * may be NULL).  The field needs a vjp op.  fwd and bwd (may be NULL) are
 * added the forward and backward solver statistics. */
int cnf_dyn_grad(cnf_dyn *dyn, const double *theta, const cnf_options *opt,
                 double t0, double t1, size_t B, size_t K, const double *eps,
                 const double *z0, cnf_terminal_loss loss_fn, void *user,
                 double *loss, double *z1, double *delta1, double *gz0,
                 double *gth, cnf_stats *fwd, cnf_stats *bwd);

/* A density given by the user: log p(x) of B points x (B, D) into logp
 * (B), returning 0 or a negative CNF_E* code, and a seeded sampler (may be
 * NULL where only densities are needed). */
typedef struct cnf_density {
  int (*logp)(void *user, size_t B, size_t D, const double *x, double *logp);
  int (*sample)(void *user, uint64_t seed, size_t B, size_t D, double *x);
  void *user;
} cnf_density;

/* log p_t(x) of B points x (B, D) at time t, for the density p_t that the
 * field carries from p0 at t0 (the continuity equation): each point is
 * integrated backward from t to t0 (one solve), and
 *     log p_t(x) = log p0(x(t0)) - int_{t0}^{t} div f(s, x(s)) ds.
 * The trace is exact (eps NULL) or Hutchinson with K probes eps (K, B, D). */
int cnf_dyn_logp_at(cnf_dyn *dyn, const double *theta, const cnf_options *opt,
                    const cnf_density *p0, double t0, double t, size_t B,
                    size_t K, const double *eps, const double *x, double *logp,
                    cnf_stats *st);

#ifdef __cplusplus
}
#endif
#endif /* CNF_DYNAMICS_H */
