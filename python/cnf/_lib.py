"""The C declarations cnf's Python package uses, and the shared library.

cffi in ABI mode: the declarations below repeat those of include/cnf.h,
include/cnf_model.h, include/cnf_dynamics.h and include/cnf_pde.h (the
parts used here), and the library is opened with dlopen; nothing is
compiled.  The structs are laid out by cffi from these declarations, so
they must match the headers field for field: the import checks the two
structs that carry their own size (cnf_options, cnf_fit_options) against
what the library reports.

Where the library is looked for, first found wins:

1. the environment variable CNF_LIBRARY: the file, or a directory holding
   libcnf.so;
2. next to the package: libcnf.so* in the package's directory or its
   parent;
3. the install prefix: the library directory recorded in _install.py when
   CMake installed the package beside the library;
4. the system's search path (libcnf.so.0, then libcnf.so).
"""

import os

import cffi

CDEF = r"""
typedef int cnf_trace;
typedef int cnf_method;
typedef int cnf_adjoint;
typedef int cnf_layer;
typedef int cnf_act;
typedef int cnf_model_kind;

typedef struct cnf_ctx cnf_ctx;
typedef struct cnf_model cnf_model;
typedef struct cnf_flow cnf_flow;
typedef struct cnf_dyn cnf_dyn;
typedef struct cnf_pde_ou cnf_pde_ou;

const char *cnf_strerror(int status);
const char *cnf_errname(int status);
void cnf_gsl_errors_off(void);
int cnf_ctx_create(cnf_ctx **out);
void cnf_ctx_free(cnf_ctx *ctx);
int cnf_ctx_errcode(const cnf_ctx *ctx);
const char *cnf_ctx_errmsg(const cnf_ctx *ctx);
void cnf_ctx_clear_error(cnf_ctx *ctx);

typedef struct cnf_options {
  size_t size;
  double rtol;
  double atol;
  double atol_logp;
  long max_steps;
  int max_order;
  double h_init;
  int max_nonlin_iters;
  cnf_method method;
  cnf_trace trace;
  size_t probes;
  size_t batch;
  cnf_adjoint adjoint;
  double rtol_adj;
  double atol_adj;
  int seminorm;
  long checkpoint_steps;
  double reg_kinetic;
  double reg_jacobian;
  int report_var;
} cnf_options;

void cnf_options_default(cnf_options *opt);
int cnf_trace_parse(const char *s, cnf_trace *out);
int cnf_objective_parse(const char *s, int *out);
int cnf_method_parse(const char *s, cnf_method *out);
int cnf_adjoint_parse(const char *s, cnf_adjoint *out);
int cnf_layer_parse(const char *s, cnf_layer *out);
int cnf_act_parse(const char *s, cnf_act *out);

typedef struct cnf_stats {
  long solves, nfe, nsteps, netf, nni, nncf, njtv, nli, nquad;
  double last_h;
  double trace_var_sum;
  long trace_var_n;
} cnf_stats;

typedef struct cnf_train_options {
  double lr;
  double weight_decay;
  double beta1, beta2;
  double eps;
  int learn_T;
  double T_min;
} cnf_train_options;

size_t cnf_flow_blocks(const cnf_flow *flow);
double cnf_flow_end_time(const cnf_flow *flow, size_t block);
int cnf_flow_set_end_time(cnf_flow *flow, size_t block, double T);
const char *const *cnf_toy_names(void);
int cnf_toy_sample(const char *name, size_t n, uint64_t seed, double *x);
uint64_t cnf_seed_derive(uint64_t seed, const char *stream, uint64_t index);
void cnf_free(void *p);
int cnf_npy_read(cnf_ctx *ctx, const char *path, double **data, size_t *rows, size_t *cols);
int cnf_npy_write(cnf_ctx *ctx, const char *path, size_t rows, size_t cols, const double *data);

typedef struct cnf_model_spec {
  const char *flow;
  size_t dim;
  size_t blocks;
  const char *hidden;
  cnf_layer layer;
  cnf_act act;
  double T;
  const char *config;
} cnf_model_spec;

void cnf_model_spec_default(cnf_model_spec *spec, const char *flow, size_t D);
size_t cnf_model_default_blocks(const char *flow);
int cnf_model_create(cnf_model **out, cnf_ctx *ctx, const cnf_model_spec *spec, uint64_t seed);
void cnf_model_free(cnf_model *m);
int cnf_model_save(const cnf_model *m, const char *path);
int cnf_model_load(cnf_model **out, cnf_ctx *ctx, const char *path);
cnf_model_kind cnf_model_kind_of(const cnf_model *m);
const char *cnf_model_name(const cnf_model *m);
size_t cnf_model_dim(const cnf_model *m);
size_t cnf_model_param_count(const cnf_model *m);
double *cnf_model_params(cnf_model *m);
cnf_flow *cnf_model_flow(cnf_model *m);
int cnf_model_set_threads(cnf_model *m, size_t n);
size_t cnf_threads_default(void);
void cnf_model_seed(cnf_model *m, uint64_t seed);
int cnf_model_set_standardization(cnf_model *m, const double *shift, const double *scale);
int cnf_model_logp(cnf_model *m, const cnf_options *opt, size_t B, const double *x,
                   double *logp, cnf_stats *st);
int cnf_model_encode(cnf_model *m, const cnf_options *opt, size_t B, const double *x,
                     double *z, double *logdet, cnf_stats *st);
int cnf_model_decode(cnf_model *m, const cnf_options *opt, size_t B, const double *z,
                     double *x, double *logdet, cnf_stats *st);
int cnf_model_sample(cnf_model *m, const cnf_options *opt, size_t B, double *x,
                     double *logp, cnf_stats *st);
int cnf_model_nll(cnf_model *m, const cnf_options *opt, size_t N, const double *x,
                  double *nll, cnf_stats *st);
cnf_trace cnf_trace_for_dim(size_t D);
int cnf_model_loss_grad(cnf_model *m, const cnf_options *opt, size_t B, const double *x,
                        double *loss, double *grad, double *grad_T, cnf_stats *fwd,
                        cnf_stats *bwd);
long cnf_model_iteration(const cnf_model *m);
void cnf_model_clear_train_state(cnf_model *m);
void cnf_moments(size_t N, size_t D, const double *x, double *mean, double *sd);
int cnf_model_total_time(const cnf_model *m, double *S);
int cnf_model_trajectories(cnf_model *m, const cnf_options *opt, int dir, size_t B,
                           const double *in, size_t n, double *paths, cnf_stats *st);
int cnf_model_logp_at(cnf_model *m, const cnf_options *opt, double t, size_t B,
                      const double *y, double *logp, cnf_stats *st);

typedef struct cnf_plot_options {
  const char *title, *xlabel, *ylabel;
  const char *const *names;
  const char *data_name, *sample_name;
  size_t size;
  double xlim[2], ylim[2];
  int log_density;
} cnf_plot_options;
void cnf_plot_options_default(cnf_plot_options *po);
void cnf_plot_grid(double L, size_t G, double *x);
void cnf_grid_points(double L, size_t G, double *x);
int cnf_plot_heatmaps_with(cnf_ctx *ctx, const cnf_plot_options *po, size_t n, size_t G,
                           const double *logp, double L, const double *data, size_t nd,
                           const char *path);
int cnf_plot_paths_with(cnf_ctx *ctx, const cnf_plot_options *po, size_t panels, size_t n,
                        size_t B, size_t D, const double *paths, const char *path);

typedef struct cnf_fit_data {
  const double *rows;
  size_t N, D;
  int (*draw)(void *user, uint64_t seed, size_t B, size_t D, double *x);
  void *user;
} cnf_fit_data;

typedef struct cnf_fit_report {
  long step;
  long total;
  int status;
  double loss;
  double loss_avg;
  double nll, kinetic, jacobian;
  double grad_norm;
  double T;
  cnf_stats fwd, bwd;
  int validated;
  double val_nll;
  int best;
} cnf_fit_report;

typedef struct cnf_fit_options {
  size_t size;
  long iters;
  size_t batch;
  uint64_t seed;
  cnf_train_options train;
  cnf_options opt;
  cnf_options eval_opt;
  const double *val;
  size_t n_val;
  long val_every;
  const char *best_path;
  double best_init;
  const char *state_path;
  long save_every;
  long max_failed;
  volatile int *stop;
  int (*callback)(void *user, const cnf_fit_report *rep);
  void *user;
  const void *comm;
  int objective;
  double fm_sigma;
} cnf_fit_options;

typedef struct cnf_fit_result {
  long steps;
  long failed;
  long iteration;
  double loss_avg;
  double nfe_fwd_mean, nfe_bwd_mean;
  double nfe_fwd_running, nfe_bwd_running;
  double kinetic_mean, jacobian_mean;
  double best_val;
  int stopped;
  cnf_stats fwd, bwd;
} cnf_fit_result;

void cnf_fit_options_default(cnf_fit_options *fo);
int cnf_fit(cnf_model *m, const cnf_fit_data *data, const cnf_fit_options *fo,
            cnf_fit_result *res);

typedef struct cnf_dyn_type {
  const char *name;
  int (*f)(void *s, double t, size_t B, const double *z, const double *theta, double *dz);
  int (*f_div)(void *s, double t, size_t B, size_t K, const double *z, const double *theta,
               const double *v, double *dz, double *div);
  int (*jvp)(void *s, double t, size_t B, size_t K, const double *z, const double *theta,
             const double *v, double *dz, double *jv);
  void *vjp;
  void *reserve;
  void *free;
  void *vjp_reg;
  void *f_rows;
  void *vjp_rows;
} cnf_dyn_type;

int cnf_dyn_create(cnf_dyn **out, cnf_ctx *ctx, const cnf_dyn_type *type, void *state,
                   int own_state, size_t D, size_t P);
void cnf_dyn_free(cnf_dyn *dyn);
int cnf_dyn_f(cnf_dyn *dyn, double t, size_t B, const double *z, const double *theta,
              double *dz);
int cnf_dyn_f_div(cnf_dyn *dyn, double t, size_t B, size_t K, const double *z,
                  const double *theta, const double *v, double *dz, double *div);
int cnf_dyn_reserve(cnf_dyn *dyn, size_t B, size_t K);
int cnf_probes_draw(cnf_trace trace, uint64_t seed, size_t K, size_t B, size_t D,
                    double *eps);
int cnf_dyn_solve_times(cnf_dyn *dyn, const double *theta, const cnf_options *opt,
                        double t0, size_t m, const double *tout, size_t B, size_t K,
                        const double *eps, double *z, double *delta, double *z_out,
                        double *delta_out, cnf_stats *st);

typedef struct cnf_density {
  int (*logp)(void *user, size_t B, size_t D, const double *x, double *logp);
  int (*sample)(void *user, uint64_t seed, size_t B, size_t D, double *x);
  void *user;
} cnf_density;

int cnf_dyn_logp_at(cnf_dyn *dyn, const double *theta, const cnf_options *opt,
                    const cnf_density *p0, double t0, double t, size_t B, size_t K,
                    const double *eps, const double *x, double *logp, cnf_stats *st);

int cnf_pde_ou_create(cnf_pde_ou **out, cnf_ctx *ctx, size_t d, uint64_t seed);
void cnf_pde_ou_free(cnf_pde_ou *ou);
const double *cnf_pde_ou_A(const cnf_pde_ou *ou);
const double *cnf_pde_ou_b(const cnf_pde_ou *ou);
int cnf_pde_ou_dyn(cnf_dyn **out, cnf_ctx *ctx, const cnf_pde_ou *ou);
int cnf_pde_ou_logp(cnf_pde_ou *ou, double t, size_t B, const double *x, double *logp);
"""

ffi = cffi.FFI()
ffi.cdef(CDEF)

_NAMES = ("libcnf.so.0", "libcnf.so")


def _candidates():
    env = os.environ.get("CNF_LIBRARY")
    if env:
        if os.path.isdir(env):
            for name in _NAMES:
                yield os.path.join(env, name)
        else:
            yield env
        return  # an explicit choice is not second-guessed
    here = os.path.dirname(os.path.abspath(__file__))
    for d in (here, os.path.dirname(here)):
        for name in _NAMES:
            yield os.path.join(d, name)
    try:
        from . import _install  # written by CMake's install step
    except ImportError:
        _install = None
    if _install is not None:
        for d in (os.path.normpath(os.path.join(here, _install.LIBDIR_FROM_PACKAGE)),
                  _install.LIBDIR):
            for name in _NAMES:
                yield os.path.join(d, name)
    for name in _NAMES:
        yield name  # the dynamic linker's search path


def _open():
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        try:
            return ffi.dlopen(path), path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError(
        "cnf: cannot find the shared library libcnf.so; set CNF_LIBRARY to its path "
        "(e.g. build/libcnf.so) or install cnf.  Tried: " + "; ".join(tried))


lib, path = _open()


def _check_abi():
    """The structs the library fills in must have the layout declared
    above.  The buffers are oversized so that a library with larger structs
    writes into them safely and is reported, not overrun."""
    def mismatch(what):
        return ImportError("cnf: %s: the Python package and the library %s come from different "
                           "versions (update python/cnf/_lib.py's declarations)" % (what, path))

    for name, fill in (("cnf_options", lib.cnf_options_default),
                       ("cnf_fit_options", lib.cnf_fit_options_default)):
        buf = ffi.new("char[]", 4096)
        s = ffi.cast(name + " *", buf)
        fill(s)
        if s.size != ffi.sizeof(name):
            raise mismatch("%s is %d bytes in the library, %d here"
                           % (name, s.size, ffi.sizeof(name)))
    buf = ffi.new("char[]", 4096)
    spec = ffi.cast("cnf_model_spec *", buf)
    flow = ffi.new("char[]", b"cnf")
    lib.cnf_model_spec_default(spec, flow, 3)
    if spec.flow != flow or spec.dim != 3 or spec.T != 0.5 or spec.hidden != ffi.NULL:
        raise mismatch("cnf_model_spec's layout differs")


_check_abi()
lib.cnf_gsl_errors_off()

CNF_EINVAL = -1
CNF_ERHS = -8
