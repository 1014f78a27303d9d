/* cnf.h: the public API of cnf, continuous normalizing flows in C.
 *
 * A flow maps data x (time t0 = 0) to a base sample z (time T) through the
 * ODE dz/dt = f(t, z; theta), integrated by SUNDIALS CVODE together with
 * Delta, dDelta/dt = -tr(df/dz), Delta(0) = 0.  Then
 *
 *     log p(x) = log N(z(T); 0, I) - Delta(T).
 *
 * Several blocks compose, x -> block 1 -> ... -> block K -> z, and their
 * Deltas add.  Sampling draws z ~ N(0, I) and integrates backward.
 *
 * Conventions: arrays are row-major with one sample per row; shapes are
 * given as (B, D) for B samples of dimension D.  Functions return 0 on
 * success and a negative CNF_E* code on error; the context then holds a
 * message (cnf_ctx_errmsg).  Where no context is reachable the code comes
 * alone: a NULL object argument (the object carries the context), and the
 * functions that take neither a context nor an object (the parsers, the
 * seeded samplers such as cnf_toy_sample; each says so).  Objects come in
 * _create/_free pairs; every _free accepts NULL.  Nothing here prints or
 * exits.
 *
 * Thread safety.  A context and the objects created with it (flows,
 * trainers, fields, layers, stacks, the integrators and PDE problems of
 * the other headers) form one unit, used from one thread at a time: every
 * call on an object writes the context's last error, and the object's
 * workspaces, generator and SUNDIALS solver memory.  Two units (each with
 * its own context) may be used from two threads at the same time; nothing
 * is shared between them (tests/core/test_threads.c checks it under
 * ThreadSanitizer, scripts/test.sh --tsan).  No call is reentrant on its
 * own unit: a user field's ops must not call back into the flow or context
 * that is solving with it.  Inputs the library only reads (cnf_options,
 * cnf_mlp_config, cnf_train_options, data arrays) may be shared by calls
 * on several threads.  Functions without a context or object (names,
 * parsers, cnf_strerror, cnf_toy_sample, cnf_train_batch_indices,
 * cnf_probes_draw, cnf_adam_update on arrays of their own) may be called
 * from any thread.  Process-wide state: GSL's error handler (see
 * cnf_gsl_errors_off: call it once, before starting threads) and
 * OpenBLAS's own thread pool.  cnf calls OpenBLAS from several threads at
 * once when a flow splits its batch (cnf_flow_set_threads) or several
 * units run; OpenBLAS's threaded builds allow that, but its threads then
 * oversubscribe the cores, so run with OPENBLAS_NUM_THREADS=1 (or
 * openblas_set_num_threads(1)).
 *
 * The dynamics interface for user fields is in cnf_dynamics.h. */
#ifndef CNF_H
#define CNF_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CNF_VERSION_MAJOR 0
#define CNF_VERSION_MINOR 1
#define CNF_VERSION_PATCH 0
#define CNF_VERSION_STRING "0.1.0"

/* ---- errors --------------------------------------------------------- */

/* One table generates the enum, the names and the messages. */
#define CNF_ERRORS(X)                                                    \
  X(CNF_OK, 0, "success")                                                \
  X(CNF_EINVAL, -1, "invalid argument")                                  \
  X(CNF_ENOMEM, -2, "out of memory")                                     \
  X(CNF_EDIM, -3, "dimension mismatch")                                  \
  X(CNF_ESOLVER, -4, "ODE solver failed")                                \
  X(CNF_ETOOMUCHWORK, -5, "ODE solver reached the maximum number of steps") \
  X(CNF_EERRTEST, -6, "ODE solver failed the error test repeatedly")     \
  X(CNF_ECONV, -7, "ODE solver failed to converge repeatedly")           \
  X(CNF_ERHS, -8, "right-hand side evaluation failed")                   \
  X(CNF_EIO, -9, "input/output error")                                   \
  X(CNF_EFORMAT, -10, "malformed input")                                 \
  X(CNF_ECORRUPT, -11, "damaged or truncated file")                      \
  X(CNF_EVERSION, -12, "unsupported file version")                       \
  X(CNF_ENONFINITE, -13, "non-finite value")                             \
  X(CNF_EUNSUPPORTED, -14, "operation not supported by this field")

enum {
#define CNF_X_ENUM(name, code, msg) name = code,
  CNF_ERRORS(CNF_X_ENUM)
#undef CNF_X_ENUM
};

/* The message and the symbolic name of a status code ("CNF_EDIM").
 * Unknown codes give "unknown error" and "CNF_E?". */
const char *cnf_strerror(int status);
const char *cnf_errname(int status);

/* True for the codes that mean "the ODE solver gave up" (as opposed to bad
 * input or a programming error): CNF_ESOLVER .. CNF_ERHS. */
int cnf_is_solver_error(int status);

/* GSL, which cnf uses inside, aborts the process on any error by default.
 * cnf checks the results of its GSL calls (NULL from an allocation, status
 * codes), so a program that prefers an error code to an abort calls this
 * once: it calls gsl_set_error_handler_off(), which is process-wide and
 * therefore left to the program.  Call it before other threads use cnf:
 * it writes GSL's handler, which every GSL call reads. */
void cnf_gsl_errors_off(void);

/* ---- context -------------------------------------------------------- */

/* A context holds the SUNDIALS context and the last error.  One per thread
 * of use (see "Thread safety" above); objects created with a context keep
 * a pointer to it and must be freed before it. */
typedef struct cnf_ctx cnf_ctx;

int cnf_ctx_create(cnf_ctx **out);
void cnf_ctx_free(cnf_ctx *ctx);
/* The last error's code (0 if none) and message ("" if none).  The message
 * names the place and the reason, e.g. "data.csv:3:2: expected a number". */
int cnf_ctx_errcode(const cnf_ctx *ctx);
const char *cnf_ctx_errmsg(const cnf_ctx *ctx);
void cnf_ctx_clear_error(cnf_ctx *ctx);

/* Workers of one distributed computation (e.g. the ranks of an MPI
 * communicator; include/cnf_mpi.h makes them).  The library itself knows
 * no MPI: it sees only these callbacks.
 *
 *   rank, size  this worker and the number of workers R
 *   sum_all     replaces buf (n) by its elementwise sum over the workers
 *               (an MPI_Allreduce with MPI_SUM); every worker must get the
 *               same result; returns 0, or non-zero on failure
 *   user        passed to the callbacks */
typedef struct cnf_comm {
  int rank, size;
  int (*sum_all)(void *user, double *buf, size_t n);
  void *user;
} cnf_comm;

/* The vector factory of distributed solves: wraps `local`, a SUNDIALS
 * serial N_Vector holding this worker's part of an ODE state, into a
 * distributed N_Vector (SUNDIALS' MPIPlusX) whose norms and dot products
 * reduce over the workers, and returns it (NULL on failure).  The wrapper
 * must not own `local`; the library destroys both.  Both are N_Vector,
 * passed as void * so this header needs no SUNDIALS. */
typedef void *(*cnf_comm_vector_fn)(void *user, void *local);

/* Give ctx its workers (copied) and, optionally, the vector factory
 * (called with comm->user); comm NULL removes them.  CNF_EINVAL for
 * size < 1, a rank outside [0, size) or size > 1 without sum_all.
 *
 * With a vector factory and R > 1, the flow calls that integrate
 * (cnf_flow_logp, _encode, _decode, _sample, _nll, _loss_grad, and the
 * cnf_model calls on flows, cnf_fit) become collective: every worker
 * makes the same calls in the same order, and each solve is ONE ODE
 * system whose rows are split over the workers, so CVODE's error norms,
 * step sizes and step counts are those of one process on all the rows (up
 * to the rounding of the reductions).  The density calls take the whole
 * data on every worker and return the whole result on every worker; each
 * solve of opt->batch rows (all rows if 0) gives rows [r n / R,
 * (r + 1) n / R) to worker r (a solve of fewer rows than workers is made
 * whole by every worker).  The gradient calls take this worker's rows (at
 * least one; the global batch is their concatenation in rank order) and
 * return this worker's share of the global batch mean (loss, gradient,
 * dL/dT): the sum over the workers is the one-process value.  Hutchinson
 * probes are drawn for the global rows, so a row's probe does not depend
 * on the worker that holds it.  Distributed gradients need opt->seminorm
 * (a_theta is a per-worker partial sum, kept out of the error control).
 * Other objects on the context (stacks, integrators, cnf_dyn_* calls)
 * compute as one process on every worker. */
int cnf_ctx_set_comm(cnf_ctx *ctx, const cnf_comm *comm, cnf_comm_vector_fn vector);
/* The context's workers, or NULL. */
const cnf_comm *cnf_ctx_comm(const cnf_ctx *ctx);

/* ---- solver options and statistics ---------------------------------- */

typedef enum cnf_trace {
  CNF_TRACE_EXACT = 0,      /* D tangent columns, exact tr(df/dz) */
  CNF_TRACE_GAUSS = 1,      /* Hutchinson, eps ~ N(0, I) */
  CNF_TRACE_RADEMACHER = 2  /* Hutchinson, eps_i = +-1 */
} cnf_trace;

typedef enum cnf_method {
  CNF_METHOD_ADAMS = 0,  /* Adams-Moulton + fixed-point iteration */
  CNF_METHOD_BDF = 1     /* BDF + Newton/SPGMR with the field's J*v */
} cnf_method;

typedef enum cnf_adjoint {
  CNF_ADJOINT_BACKSOLVE = 0,  /* (z, a_z) integrated backward, a_theta as
                                 its quadrature: memory independent of
                                 the step count */
  CNF_ADJOINT_CHECKPOINT = 1  /* CVODES's adjoint: forward checkpoints,
                                 interpolated z, a_theta as a quadrature;
                                 exact forward states, and fewer backward
                                 evaluations (no f to integrate) */
} cnf_adjoint;

typedef enum cnf_precision {
  CNF_PRECISION_DOUBLE = 0, /* the network in float64 (the default) */
  CNF_PRECISION_SINGLE = 1  /* the network's GEMMs and activations in
                               float32 (sgemm); see cnf_options.precision */
} cnf_precision;

/* Options of the solves behind a call.  The struct grows between releases
 * (new fields are only ever appended), so a program initialises it with
 * cnf_options_default, which also sets `size`, and then sets the fields it
 * wants; it never fills one in by hand or with memset.  The library reads
 * the first `size` bytes and takes defaults for any field past them, so a
 * program built against an older, smaller cnf_options keeps working (and
 * one built against a newer, larger one has the fields this library does
 * not know ignored).  A struct whose size is 0 (zeroed, never initialised)
 * is refused with CNF_EINVAL and a message.  The library only reads the struct: one
 * cnf_options may be shared by calls on several threads. */
typedef struct cnf_options {
  size_t size;          /* sizeof(cnf_options) when cnf_options_default
                           filled it in; leave it alone */
  double rtol;          /* relative tolerance, default 1e-5 */
  double atol;          /* absolute tolerance on z, default 1e-5 */
  double atol_logp;     /* absolute tolerance on Delta; <= 0: same as atol */
  long max_steps;       /* steps per solve before CNF_ETOOMUCHWORK, 20000 */
  int max_order;        /* 0: the method's maximum (12 Adams, 5 BDF) */
  double h_init;        /* first step size; 0: CVODE's estimate */
  int max_nonlin_iters; /* fixed-point/Newton iterations per step, 3 */
  cnf_method method;    /* default CNF_METHOD_ADAMS */
  cnf_trace trace;      /* default CNF_TRACE_EXACT */
  size_t probes;        /* Hutchinson probes per sample, default 1 */
  size_t batch;         /* rows integrated as one ODE system; 0: all */
  /* gradients (cnf_flow_loss_grad) */
  cnf_adjoint adjoint;  /* default CNF_ADJOINT_CHECKPOINT */
  double rtol_adj;      /* backward tolerances; <= 0: the forward ones */
  double atol_adj;
  int seminorm;         /* 1 (default): a_theta stays out of the backward
                           error control (Kidger et al. 2021) */
  long checkpoint_steps; /* steps between CVODES checkpoints, 100 */
  /* RNODE regularisers (Finlay et al. 2020), 0 = off: the loss of
   * cnf_flow_loss_grad gains reg_kinetic times the batch mean of
   * int_0^T |f|^2 dt and reg_jacobian times that of int_0^T |J|_F^2 dt
   * (|J eps|^2 with the Hutchinson probes, the exact Frobenius norm with
   * the exact trace), both integrated alongside (z, Delta). */
  double reg_kinetic;
  double reg_jacobian;
  int report_var;       /* 1: add Hutchinson's empirical variance to the
                           solves' cnf_stats (K >= 2 probes; the right-hand
                           side then goes through jvp instead of f_div,
                           which may cost more); default 0 */
  /* The MLP network's arithmetic in the solves and gradients that take
   * these options (the dynamics of cnf flows and of cnf_dyn_mlp_create
   * fields; other fields ignore it, and flow matching's loss, which takes
   * no cnf_options, stays float64).  With CNF_PRECISION_SINGLE the
   * network's GEMMs (sgemm), activations, tangent rows and reverse sweep
   * run in float32 on a float copy of the weights made once per solve
   * (the results differ from float64's by about the solver's own error at
   * the default tolerances, see below); the solver's state, its error control, the
   * log-density and the divergence's accumulation, and the parameter
   * gradients' sums stay float64.  About 2x faster per evaluation on one
   * core (docs/performance.md, "Single precision"); the network's own
   * rounding is then about 1e-7 relative, so tolerances much below 1e-6
   * stop paying.  Default CNF_PRECISION_DOUBLE. */
  cnf_precision precision;
} cnf_options;

/* Every field to its default (the values above) and size to
 * sizeof(cnf_options). */
void cnf_options_default(cnf_options *opt);
const char *cnf_trace_name(cnf_trace t);
const char *cnf_method_name(cnf_method m);
/* Parse "exact" / "gauss" / "rademacher" (and "adams" / "bdf").
 * Return 0, or CNF_EINVAL for an unknown name (no context: no message;
 * the same for every cnf_*_parse). */
int cnf_trace_parse(const char *s, cnf_trace *out);
int cnf_method_parse(const char *s, cnf_method *out);
const char *cnf_adjoint_name(cnf_adjoint a);
int cnf_adjoint_parse(const char *s, cnf_adjoint *out);
/* "double" / "single". */
const char *cnf_precision_name(cnf_precision p);
int cnf_precision_parse(const char *s, cnf_precision *out);

/* Counters of the solves behind one call, summed over blocks and batches. */
typedef struct cnf_stats {
  long solves;       /* ODE solves */
  long nfe;          /* right-hand side evaluations */
  long nsteps;       /* accepted steps */
  long netf;         /* error-test failures */
  long nni;          /* nonlinear iterations */
  long nncf;         /* nonlinear convergence failures */
  long njtv;         /* Jacobian-times-vector products (BDF) */
  long nli;          /* linear (Krylov) iterations (BDF) */
  long nquad;        /* quadrature evaluations (the adjoints' a_theta) */
  double last_h;     /* last step size of the last solve */
  /* Hutchinson's empirical variance: the sum over right-hand-side
   * evaluations and samples of the sample variance (divisor K - 1) of the
   * K probe values eps_k . J eps_k, and the number of terms; the mean
   * trace_var_sum / trace_var_n estimates one probe's variance (divide
   * by K for the K-probe mean).  Counted with opt->report_var, for K >= 2
   * probes and fields with a jvp op; 0 otherwise. */
  double trace_var_sum;
  long trace_var_n;
} cnf_stats;

void cnf_stats_clear(cnf_stats *st);
void cnf_stats_add(cnf_stats *sum, const cnf_stats *st);

/* ---- the MLP dynamics network --------------------------------------- */

typedef enum cnf_layer {
  CNF_LAYER_CONCATSQUASH = 0, /* y = (W x + b) * sigmoid(wg t + bg) + wb t */
  CNF_LAYER_CONCAT = 1,       /* y = W x + wt t + b */
  CNF_LAYER_IGNORE = 2        /* y = W x + b */
} cnf_layer;

typedef enum cnf_act {
  CNF_ACT_TANH = 0,
  CNF_ACT_SOFTPLUS = 1
} cnf_act;

#define CNF_MAX_HIDDEN 16

/* The network f: D -> H_1 -> ... -> H_n -> D, an activation between
 * layers and none after the last. */
typedef struct cnf_mlp_config {
  size_t dim;                     /* D */
  size_t n_hidden;                /* n, 0..CNF_MAX_HIDDEN */
  size_t hidden[CNF_MAX_HIDDEN];  /* H_1..H_n */
  cnf_layer layer;
  cnf_act act;
} cnf_mlp_config;

/* D-64-64-64-D, concatsquash, tanh (FFJORD's toy defaults). */
void cnf_mlp_config_default(cnf_mlp_config *cfg, size_t dim);
/* Parse "64-64-64" into cfg->hidden; "" or "0" gives no hidden layer.
 * CNF_EINVAL for anything else (no context: no message). */
int cnf_mlp_parse_hidden(cnf_mlp_config *cfg, const char *s);
/* Write "64-64-64" into buf (always terminated).  Returns buf. */
char *cnf_mlp_format_hidden(const cnf_mlp_config *cfg, char *buf, size_t n);
const char *cnf_layer_name(cnf_layer l);
const char *cnf_act_name(cnf_act a);
int cnf_layer_parse(const char *s, cnf_layer *out);
int cnf_act_parse(const char *s, cnf_act *out);
/* Number of parameters P of one network; 0 for an invalid config. */
size_t cnf_mlp_param_count(const cnf_mlp_config *cfg);

/* ---- flows ---------------------------------------------------------- */

/* A flow is used from one thread at a time (its context's; see "Thread
 * safety"): even cnf_flow_logp draws probes from the flow's generator and
 * writes its workspaces.  To evaluate one model on several threads, load
 * or create one flow per thread, each with its own context. */
typedef struct cnf_flow cnf_flow;

/* A new flow of `blocks` MLP blocks, each with end time T > 0, parameters
 * initialised as PyTorch's nn.Linear does (uniform in +-1/sqrt(fan_in)),
 * drawn from `seed`; the same seed gives the same flow. */
int cnf_flow_create(cnf_flow **out, cnf_ctx *ctx, const cnf_mlp_config *cfg,
                    size_t blocks, double T, uint64_t seed);
void cnf_flow_free(cnf_flow *flow);
/* A new flow of `blocks` blocks of a user field class registered with ctx
 * (cnf_ctx_register_field, cnf_dynamics.h) under `field`, built from the
 * configuration string `config` ("" or NULL for none) in dimension D, each
 * block with end time T and parameters from the class's init (stream
 * ("init", k) of seed).  Everything a flow does works on it; the MLP's
 * thread split does not apply (cnf_flow_set_threads is then a no-op). */
int cnf_flow_create_field(cnf_flow **out, cnf_ctx *ctx, const char *field,
                          const char *config, size_t D, size_t blocks, double T,
                          uint64_t seed);
/* The field class name of a flow of user-field blocks, or NULL for MLP
 * blocks; its configuration string ("" if none). */
const char *cnf_flow_field(const cnf_flow *flow);
const char *cnf_flow_field_config(const cnf_flow *flow);


/* Model files: a versioned, checksummed format (docs/model-format.md).
 * Save writes a temporary file, syncs it and renames it over `path`, so
 * `path` is never half-written.  Load rejects damaged and truncated files
 * with CNF_ECORRUPT and newer versions with CNF_EVERSION. */
int cnf_flow_save(const cnf_flow *flow, const char *path);
int cnf_flow_load(cnf_flow **out, cnf_ctx *ctx, const char *path);

size_t cnf_flow_dim(const cnf_flow *flow);
size_t cnf_flow_blocks(const cnf_flow *flow);
const cnf_mlp_config *cnf_flow_config(const cnf_flow *flow);
/* All parameters, blocks one after another, each in the layout of
 * docs/model-format.md.  The array is the flow's own: writes change the
 * flow. */
size_t cnf_flow_param_count(const cnf_flow *flow);
double *cnf_flow_params(cnf_flow *flow);
double cnf_flow_end_time(const cnf_flow *flow, size_t block);
int cnf_flow_set_end_time(cnf_flow *flow, size_t block, double T);

/* Standardization: the flow models x_std = (x - shift) / scale (shift,
 * scale: (D), scale > 0), and every density it reports (logp, encode,
 * decode, sample, the loss) is in the units of x, the log-Jacobian
 * -sum log scale folded in.  NULL, NULL removes it.  It is saved with the
 * model.  cnf_flow_standardization copies it out (either pointer may be
 * NULL) and returns 1, or returns 0 when the flow has none. */
int cnf_flow_set_standardization(cnf_flow *flow, const double *shift,
                                 const double *scale);
int cnf_flow_standardization(const cnf_flow *flow, double *shift,
                             double *scale);

/* Split every network evaluation of the flow over n threads (1..64; 1,
 * the default, is serial): see cnf_dyn_mlp_set_threads.  In float64,
 * densities, samples and z-gradients do not depend on n (in float32 they
 * change at float rounding); the parameter gradient changes in its last
 * bits with n; everything is reproducible for a given n and precision.
 * Keep OpenBLAS single-threaded meanwhile (OPENBLAS_NUM_THREADS=1). */
int cnf_flow_set_threads(cnf_flow *flow, size_t n);

/* The threads a batch split should use by default: this process's share
 * of the machine's cores (the online cores divided among the ranks mpirun
 * started on the machine, as Open MPI and MPICH report them), 1 to 64.
 * The command-line tool and the Python package default to it; the library
 * itself stays serial until asked. */
size_t cnf_threads_default(void);

/* Seed the flow's random generator (GSL mt19937), which draws Hutchinson
 * probes (once per solve, held fixed during it) and base samples. */
void cnf_flow_seed(cnf_flow *flow, uint64_t seed);

/* Results that are not finite.  logp, encode, decode and sample return
 * CNF_ENONFINITE when any value they give back (a density, a latent or data
 * point, a log-det) is NaN or infinite, with a message naming the first
 * rows (1-based) and their count; the outputs then hold no meaning.  A
 * point far outside the support is such an error, not -inf (docs/cli.md,
 * "Non-finite results").  Non-finite input rows are refused the same way. */

/* log p(x) for B points x (B, D) into logp (B).  st may be NULL; when
 * given it is added to. */
int cnf_flow_logp(cnf_flow *flow, const cnf_options *opt, size_t B,
                  const double *x, double *logp, cnf_stats *st);

/* x (B, D) -> z (B, D) and delta (B) = the sum of the blocks' Delta(T), so
 * log p(x) = log N(z) - delta.  z may alias x. */
int cnf_flow_encode(cnf_flow *flow, const cnf_options *opt, size_t B,
                    const double *x, double *z, double *delta, cnf_stats *st);

/* z (B, D) -> x (B, D) by integrating every block backward from its T to
 * 0, and delta (B) = the sum of the blocks' Delta(0) (starting from 0 at
 * T), so log p(x) = log N(z) + delta.  x may alias z. */
int cnf_flow_decode(cnf_flow *flow, const cnf_options *opt, size_t B,
                    const double *z, double *x, double *delta, cnf_stats *st);

/* Draw B samples: z ~ N(0, I) from the flow's generator, decode, and give
 * x (B, D) and log p(x) (B). */
int cnf_flow_sample(cnf_flow *flow, const cnf_options *opt, size_t B,
                    double *x, double *logp, cnf_stats *st);

/* ---- data files ------------------------------------------------------ */

/* Read a CSV file of numbers: one sample per row, comma-separated, an
 * optional header row (a first row none of whose fields is a number).
 * path "-" reads standard input.  On success *data (rows, cols) is
 * allocated and must be released with cnf_free.  Errors (CNF_EIO,
 * CNF_EFORMAT, CNF_ENONFINITE) name file, line and column: an empty file,
 * a non-numeric field, a ragged row, NaN or Inf. */
int cnf_csv_read(cnf_ctx *ctx, const char *path, double **data, size_t *rows,
                 size_t *cols);

/* The header row of a CSV file cnf_csv_read accepts, if it has one: *names
 * (cols entries, then NULL) in one allocation to release with cnf_free,
 * and *cols; *names NULL and *cols 0 if the first row holds a number or
 * path is "-" (standard input cannot be read twice).  Names are trimmed
 * of spaces and of one pair of enclosing double quotes. */
int cnf_csv_header(cnf_ctx *ctx, const char *path, char ***names, size_t *cols);

/* Write a header row of names (cols) and rows of numbers with 17
 * significant digits.  path NULL or "-" writes standard output; otherwise
 * the file is written under a temporary name, synced and renamed, so it is
 * never left half-written. */
int cnf_csv_write(cnf_ctx *ctx, const char *path, const char *const *names,
                  size_t rows, size_t cols, const double *data);

/* numpy .npy files holding a 2-D array of little-endian float64 in C
 * order, the one kind the library reads and writes (docs/cli.md, ".npy
 * files").  Read: *data (rows, cols) allocated, release with cnf_free.
 * Anything else (another dtype such as '<f4', '>f8' or object arrays,
 * Fortran order, 1-D or 3-D arrays, no rows, a bad or truncated header, a
 * data part shorter or longer than the shape) is CNF_EFORMAT, CNF_ECORRUPT
 * (truncated) or CNF_EVERSION, non-finite values CNF_ENONFINITE, with a
 * message naming the file and what was expected.  Write: format version
 * 1.0, atomically as cnf_csv_write ("-" writes standard output).
 * cnf_npy_path is 1 if path ends in ".npy" (any case), else 0. */
int cnf_npy_read(cnf_ctx *ctx, const char *path, double **data, size_t *rows,
                 size_t *cols);
int cnf_npy_write(cnf_ctx *ctx, const char *path, size_t rows, size_t cols,
                  const double *data);
int cnf_npy_path(const char *path);

/* Write n bytes to path as the library writes every file: a temporary
 * file in the same directory, synced and renamed over path (written through
 * when path is a symbolic link or a device such as /dev/stdout), so path is
 * never half-written. */
int cnf_file_write(cnf_ctx *ctx, const char *path, const void *data, size_t n);

/* Release memory the library allocated for the caller. */
void cnf_free(void *p);

/* ---- gradients ------------------------------------------------------- */

/* The maximum-likelihood loss L = -(1/B) sum_b log p(x_b) of B points x
 * (B, D) and its gradient by the adjoint method (opt->adjoint): grad (P,
 * cnf_flow_param_count) = dL/dtheta, grad_T (blocks) = dL/dT_k (may be
 * NULL).  All B rows form one ODE system (opt->batch is ignored).
 * Hutchinson probes are drawn from the flow's generator once per block and
 * replayed exactly by the backward solve, so after the same cnf_flow_seed
 * the loss equals -mean(cnf_flow_logp).  fwd and bwd (may be NULL) receive
 * the forward and backward solver statistics. */
int cnf_flow_loss_grad(cnf_flow *flow, const cnf_options *opt, size_t B,
                       const double *x, double *loss, double *grad,
                       double *grad_T, cnf_stats *fwd, cnf_stats *bwd);

/* ---- training ---------------------------------------------------------- */

typedef struct cnf_train_options {
  double lr;            /* Adam's step size, 1e-3 */
  double weight_decay;  /* L2 term added to the gradient (as PyTorch's
                           Adam), 1e-5; not applied to the end times */
  double beta1, beta2;  /* 0.9, 0.999 */
  double eps;           /* 1e-8 */
  int learn_T;          /* 1: train each T_k = s_k^2 through s_k */
  double T_min;         /* lower bound kept on T_k, 1e-3 */
} cnf_train_options;

void cnf_train_options_default(cnf_train_options *to);

typedef struct cnf_train_report {
  double loss;          /* the minibatch's loss before the update: nll +
                           reg_kinetic * kinetic + reg_jacobian * jacobian */
  double nll;           /* its negative log-likelihood part */
  double kinetic;       /* batch means of RNODE's integrals (0 when off) */
  double jacobian;
  double grad_norm;     /* |dL/dtheta| (2-norm, without weight decay) */
  cnf_stats fwd, bwd;   /* this step's solver statistics */
} cnf_train_report;

/* Training by maximum likelihood with Adam.  The optimizer state (step
 * count, seed, moments) lives in the flow, so cnf_flow_save writes it and
 * a flow loaded from such a file continues where it stopped: create then
 * continues from the stored state and ignores `seed`.  Steps are
 * reproducible bit for bit: the Hutchinson probes of step i depend on
 * (seed, i) only.  A trainer and its flow are one unit: one thread at a
 * time. */
typedef struct cnf_train cnf_train;

int cnf_train_create(cnf_train **out, cnf_flow *flow,
                     const cnf_train_options *to, uint64_t seed);
/* Frees the trainer; the optimizer state stays with the flow. */
void cnf_train_free(cnf_train *tr);
long cnf_train_iteration(const cnf_train *tr);
uint64_t cnf_train_seed(const cnf_train *tr);

/* One step on the minibatch x (B, D): loss and gradient by the adjoint
 * (opt->adjoint, opt->trace), then an Adam update.  On a solver failure or
 * a non-finite gradient the parameters are left unchanged, the step still
 * counts (so a rerun does not repeat the same batch), and the error code
 * is returned with the reason in the context. */
int cnf_train_step(cnf_train *tr, const cnf_options *opt, size_t B,
                   const double *x, cnf_train_report *rep);

/* B row indices into a data set of N rows for step `iter` of a run with
 * `seed`, drawn without replacement (B <= N): the same (seed, iter) gives
 * the same batch.  CNF_EINVAL for B = 0, B > N or idx NULL, CNF_ENOMEM
 * (no context: no message). */
int cnf_train_batch_indices(uint64_t seed, long iter, size_t N, size_t B,
                            size_t *idx);

/* One Adam update of n parameters theta (PyTorch's Adam: to->weight_decay
 * times theta is added to grad), with first and second moments m, v (n,
 * zero before the first update) and t = 1, 2, ... the number of this
 * update.  cnf_train_step uses it; it serves any parameter vector, e.g. a
 * field of cnf_dynamics.h trained by a loss of the caller's own. */
void cnf_adam_update(const cnf_train_options *to, long t, size_t n,
                     const double *grad, double *theta, double *m, double *v);

/* Drop the flow's optimizer state (e.g. before saving a final model). */
void cnf_flow_clear_train_state(cnf_flow *flow);

/* ---- pictures ---------------------------------------------------------- */

/* Every figure is drawn with cairo and written as PNG, SVG or PDF as the
 * path's extension says (.png, .svg, .pdf, any case; no extension: PNG;
 * another: CNF_EINVAL), atomically: nothing is written if drawing fails,
 * and the error names the path and cairo's reason.  Sizes are pixels in a
 * PNG and points in SVG and PDF.  Every figure has a title, axes with
 * ticks in data units and a legend for each line or point set; an SVG also
 * carries its title and every string drawn as <title> and <desc>, a PDF its
 * title as metadata.
 *
 * Labels and sizes of a figure; cnf_plot_options_default sets every field
 * to its default (NULL or 0 here means that default too):
 *   title        above the figure (a description of what is drawn)
 *   xlabel       horizontal axis ("x1"; line plots "x")
 *   ylabel       vertical axis ("x2"; line plots "y")
 *   names        heat maps: the n panel titles (none); pairs: the D
 *                coordinate names ("x1", "x2", ...); line plots: the S
 *                legend entries (NULL entries and NULL names: no entry)
 *   data_name    legend entry of the data points ("data")
 *   sample_name  legend entry of the samples ("samples")
 *   size         side of one panel (400), at least 64; the figure adds
 *                margins for title, axes, colour bar and legend, and text
 *                scales with it (size / 28 high; in a pairs grid of k > 3
 *                coordinates k size / 84, to stay legible on a page)
 *   xlim, ylim   heat maps: the data-unit extent of the grid, e.g. after a
 *                standardization; {0, 0}: [-L, L]
 *   log_density  heat maps: colour by log p (from max - 10 to max) instead
 *                of p; the colour bar says which */
typedef struct cnf_plot_options {
  const char *title, *xlabel, *ylabel;
  const char *const *names;
  const char *data_name, *sample_name;
  size_t size;
  double xlim[2], ylim[2];
  int log_density;
} cnf_plot_options;

void cnf_plot_options_default(cnf_plot_options *po);

/* A 2-D flow's density exp(log p) as a G x G heat map over [-L, L]^2
 * (viridis from 0 to its maximum, with a colour bar; x1 to the right, x2
 * up), with n data points (n, 2) overlaid in white if data is not NULL.
 * CNF_EDIM for a flow that is not 2-D.  The _with form takes labels and
 * sizes (po may be NULL: the defaults). */
int cnf_plot_density(cnf_flow *flow, const cnf_options *opt, double L,
                     size_t G, const double *data, size_t n,
                     const char *path);
int cnf_plot_density_with(cnf_flow *flow, const cnf_options *opt, const cnf_plot_options *po,
                          double L, size_t G, const double *data, size_t n, const char *path);

/* Pairwise scatter plots of n_samples samples of the flow (orange) over n
 * data rows (n, D; grey; may be NULL), histograms on the diagonal, for the
 * first min(D, max_dims) coordinates, each tile po->size a side. */
int cnf_plot_pairs(cnf_flow *flow, const cnf_options *opt, size_t n_samples,
                   size_t max_dims, const double *data, size_t n,
                   const char *path);
int cnf_plot_pairs_with(cnf_flow *flow, const cnf_options *opt, const cnf_plot_options *po,
                        size_t n_samples, size_t max_dims, const double *data, size_t n,
                        const char *path);

/* The G x G grid of cnf_plot_density over [-L, L]^2 into x (G * G, 2):
 * row r, column c at x1 = -L + 2L (c + 1/2) / G, x2 = L - 2L (r + 1/2) / G. */
void cnf_plot_grid(double L, size_t G, double *x);
/* The G x G grid of `cnf grid` over [-L, L]^2 into x (G * G, 2), ends
 * included: row j * G + i holds x1 = g_i, x2 = g_j, g_i = -L + 2L i/(G - 1),
 * exactly -L and L at the ends (G >= 2). */
void cnf_grid_points(double L, size_t G, double *x);
/* n heat maps side by side, panel k from logp (n, G * G) on the points of
 * cnf_plot_grid (or of the extent po->xlim x po->ylim, in the same order),
 * on one colour scale (so equal colours are equal densities) with one
 * colour bar, data (nd, 2; may be NULL) overlaid in white on each: any
 * model's densities, e.g. those of cnf_layers.h or several models
 * compared, titled po->names. */
int cnf_plot_heatmaps(cnf_ctx *ctx, size_t n, size_t G, const double *logp, double L,
                      const double *data, size_t nd, const char *path);
int cnf_plot_heatmaps_with(cnf_ctx *ctx, const cnf_plot_options *po, size_t n, size_t G,
                           const double *logp, double L, const double *data, size_t nd,
                           const char *path);
/* cnf_plot_pairs from given samples xs (n_samples, D) of any model. */
int cnf_plot_pairs_of(cnf_ctx *ctx, const double *xs, size_t n_samples, size_t D,
                      size_t max_dims, const double *data, size_t n, const char *path);
int cnf_plot_pairs_of_with(cnf_ctx *ctx, const cnf_plot_options *po, const double *xs,
                           size_t n_samples, size_t D, size_t max_dims, const double *data,
                           size_t n, const char *path);

/* Trajectories of B points through n times (paths (panels, n, B, D), D >=
 * 2, e.g. from cnf_model_trajectories; coordinates 1 and 2 are drawn), in
 * `panels` square panels side by side on one data-unit extent (po->xlim x
 * po->ylim if given, else the points' range with a margin, one scale on
 * both axes), titled po->names: each path a thin semi-transparent
 * polyline from its start (dots in blue, legend po->data_name, default
 * "data (t = 0)") to its end (dots in orange, po->sample_name, default
 * "latent (t = T)").  Non-finite states break a path.  CNF_EINVAL for
 * n < 2, B = 0, D < 2 or more than 64 panels. */
int cnf_plot_paths_with(cnf_ctx *ctx, const cnf_plot_options *po, size_t panels, size_t n,
                        size_t B, size_t D, const double *paths, const char *path);

/* ---- toy data ---------------------------------------------------------- */

/* The names of FFJORD's ten 2-D toy sets, NULL-terminated: swissroll,
 * circles, rings, moons, 8gaussians, pinwheel, 2spirals, checkerboard,
 * line, cos. */
const char *const *cnf_toy_names(void);
/* n samples (n, 2) of the named set from a seeded stream.  CNF_EINVAL for
 * an unknown name (no context: no message). */
int cnf_toy_sample(const char *name, size_t n, uint64_t seed, double *x);

/* ---- seeding ---------------------------------------------------------- */

/* The seed of element `index` of the random stream named `stream` in a run
 * with master seed `seed` (docs/design.md, "Seeding").  Every random stream
 * of the library and the tool derives from it: "init" (parameters, index =
 * block or layer), "batch" and "probes" (training step i), "sample", "val",
 * "test", "standardize", "pde-*", "fm-*".  Pure: no state, thread safe. */
uint64_t cnf_seed_derive(uint64_t seed, const char *stream, uint64_t index);

/* log N(z; 0, I) of one point of dimension D. */
double cnf_log_normal(const double *z, size_t D);

#ifdef __cplusplus
}
#endif
#endif /* CNF_H */
