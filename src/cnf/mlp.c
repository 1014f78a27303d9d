/* mlp.c: the MLP velocity field f(t, z; theta) of FFJORD's ODEnet, batched
 * through OpenBLAS dgemm, with forward-mode tangents and the single reverse
 * sweep of docs/design.md, section 6 ("The reverse sweep").
 *
 * Network: D -> H_1 -> ... -> H_n -> D, L = n + 1 linear layers, an
 * activation sigma after every layer but the last.  Layer l maps rows x
 * (in_l) to rows y (out_l):
 *
 *   concatsquash  u = W x + b,  gamma = sigmoid(wg t + bg),
 *                 y = u * gamma + wb t                  (elementwise)
 *   concat        y = W x + wt t + b
 *   ignore        y = W x + b
 *
 * Tangents.  A tangent row xdot of a primal row x moves through the same
 * weights with no biases and no t terms: udot = W xdot, ydot = udot * gamma
 * (concatsquash) and, through sigma, xdot' = sigma'(y) ydot.  The primal
 * rows and the K tangent rows of every sample are stacked into one matrix
 * of R = (1 + K) Bc rows, so each layer is ONE dgemm over all of them.
 *
 * Reverse sweep.  For S = sum_b a_b . f_b + sum_b w_b sum_k v_kb . (J v_kb)
 * the seeds at the output are ybar = a (primal rows) and ydotbar_kb =
 * w_b v_kb (tangent rows); RNODE's terms ck_b |f_b|^2 + cj_b sum_k
 * |J v_kb|^2 add 2 ck_b f_b and 2 cj_b J v_kb to them (vjp_reg).  Per linear layer, with ubar = ybar * gamma:
 *
 *   gammabar = sum over all rows (ybar * u)          (u, udot stacked)
 *   wg += gammabar gamma (1 - gamma) t,  bg += gammabar gamma (1 - gamma)
 *   wb += t sum_primal ybar,   b += sum_primal ubar,   wt += t sum_primal ubar
 *   W  += ubar^T x            (one dgemm over all R rows)
 *   xbar = ubar W             (one dgemm over all R rows)
 *
 * and through the activation (y its input, x = sigma(y)):
 *
 *   ybar  = sigma'(y) xbar + sigma''(y) sum_k ydot_k xdotbar_k   (primal)
 *   ydotbar_k = sigma'(y) xdotbar_k                               (tangent)
 *
 * tanh: sigma' = 1 - x^2, sigma'' = -2 x (1 - x^2).  softplus: sigma' =
 * sigmoid(y) = s, sigma'' = s (1 - s).
 *
 * Samples are processed in chunks so the workspace (sized at create time,
 * never inside an op) stays in cache; for the reverse sweep each chunk's
 * forward pass is recomputed in the workspace, since CVODE also evaluates
 * at points it later rejects (inside a solve, a batch that fits one chunk
 * keeps it for the next sweep at the same t and z: mlp_kern.h, fwd_reuse).
 *
 * Precision.  The kernels and serial ops live in mlp_kern.h, compiled here
 * once in double (dgemm) and once in float (sgemm, cnf__tanhf), each with
 * a workspace of its own; the state's precision (cnf__dyn_precision_begin,
 * set by the solvers from cnf_options.precision) picks one per call.  The
 * float path keeps the solver's side in double: see mlp_kern.h. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <cblas.h>
#include <gsl/gsl_rng.h>

#include "act.h"
#include "cnf_dynamics.h"
#include "core.h"
#include "dyn_impl.h"

/* Let the compiler call glibc's vector tanh/exp/log1p (libmvec) in the
 * activation loops; with -fopenmp-simd this needs no -ffast-math. */
#if defined(CNF_MVEC)
#pragma omp declare simd notinbranch
extern double tanh(double);
#pragma omp declare simd notinbranch
extern double exp(double);
#pragma omp declare simd notinbranch
extern double log1p(double);
#pragma omp declare simd notinbranch
extern float expf(float);
#pragma omp declare simd notinbranch
extern float log1pf(float);
#endif

/* Rows (primal plus tangent) per chunk: 256 rows of a 64-wide network keep
 * the per-layer buffers near L2.  Exact traces of high dimension get
 * fewer samples per chunk, never fewer than one. */
#define MLP_CHUNK_ROWS 256

/* Primal rows per activation call in forward_chunk. */
#define MLP_ACT_ROWS 16

/* Threads of the batch split, at most. */
#define CNF_MLP_MAX_THREADS 64

/* Work per thread, in multiply-adds of the network's linear layers (rows
 * times the layers' in x out), below which the split does not pay: float64,
 * float32, and float32 with the parameter gradient (whose per-thread
 * partial sums are P more additions a thread).  Measured with FFJORD's
 * network (8448 multiply-adds a row) by bench_prec --split
 * (docs/performance.md): two threads win from 25 rows in float64, 25 rows
 * in float32 without the gradient and 100 samples with it. */
#define MLP_PAR_MIN_MACS_D 1.0e5
#define MLP_PAR_MIN_MACS_S 1.0e5
#define MLP_PAR_MIN_MACS_SG 1.0e6

/* A batch of at most this many stacked rows gets a workspace that holds
 * it whole (reserve), so the reverse sweep can keep its forward pass from
 * one call to the next (mlp_kern.h, fwd_reuse): 300 rows for the exact
 * trace of 2-D data at batch 100. */
#define MLP_ONE_CHUNK_ROWS 512

/* Elements per block of the reverse sweep's activation step. */
#define MLP_VJP_BLOCK 512

typedef struct mlp_layer {
  size_t in, out;  /* sizes */
  size_t off;      /* offset of W in theta */
} mlp_layer;

/* The workspace of one precision: per layer its input rows X (R, in),
 * primal rows then tangent rows; U (R, out), u = W x + b (concatsquash
 * only); Y (R, out), the layer output = activation input; and gate, acc
 * (wmax), the adjoints bar0, bar1 (rows, wmax), ping-pong. */
#define MLP_WS(T)                                                                                  \
  struct {                                                                                         \
    struct {                                                                                       \
      T *X, *U, *Y;                                                                                \
    } ly[CNF_MAX_HIDDEN + 1];                                                                      \
    T *gate, *acc, *bar0, *bar1;                                                                   \
  }

typedef struct mlp_state {
  cnf_mlp_config cfg;
  size_t L;          /* linear layers */
  size_t P;          /* parameters */
  size_t rows;       /* workspace rows */
  size_t wmax;       /* widest layer */
  mlp_layer layer[CNF_MAX_HIDDEN + 1];
  MLP_WS(double) w64; /* the float64 network's buffers */
  MLP_WS(float) w32;  /* the float32 network's buffers */
  float *th32;       /* (P) the weights in float (mlp_kern.h, weights) */
  float *g32;        /* (P) one chunk's parameter gradient in float */
  const double *th32_src; /* the theta th32 holds while hold is set */
  cnf_precision prec; /* the network's precision (cnf__dyn_precision_begin) */
  int hold;          /* 1 inside a solve: theta does not change */
  /* the forward pass the workspace holds for the reverse sweep: valid
   * (fwd_ok) for the inputs below, z's rows copied into fwd_z (rows, dim) */
  int fwd_ok;
  cnf_precision fwd_prec;
  double fwd_t;
  size_t fwd_B, fwd_K;
  const double *fwd_theta, *fwd_v;
  double *fwd_z;
  double *mem;       /* the one allocation behind the double buffers */
  float *mem32;      /* and the one behind the float ones */
  /* the batch split over threads (see "threads" below) */
  size_t nthreads;   /* 1: serial */
  struct mlp_state *sub[CNF_MLP_MAX_THREADS]; /* per-thread states */
  size_t par_B, par_K; /* the batch and tangents the buffers fit */
  double macs_row;   /* multiply-adds of one row through the linear layers */
  double par_min;    /* work per thread for the split; 0: MLP_PAR_MIN_MACS_* */
  double *par_mem;   /* per thread: tangents in, tangents out, gth */
  struct mlp_pool *pool; /* the nthreads - 1 workers */
} mlp_state;

/* ---- configuration -------------------------------------------------- */

void cnf_mlp_config_default(cnf_mlp_config *cfg, size_t dim) {
  memset(cfg, 0, sizeof *cfg);
  cfg->dim = dim;
  cfg->n_hidden = 3;
  cfg->hidden[0] = cfg->hidden[1] = cfg->hidden[2] = 64;
  cfg->layer = CNF_LAYER_CONCATSQUASH;
  cfg->act = CNF_ACT_TANH;
}

static size_t layer_extra(cnf_layer type) {
  return type == CNF_LAYER_CONCATSQUASH ? 3 : type == CNF_LAYER_CONCAT ? 1 : 0;
}

static int config_valid(const cnf_mlp_config *cfg) {
  if (cfg == NULL || cfg->dim == 0 || cfg->dim > 1000000 || cfg->n_hidden > CNF_MAX_HIDDEN)
    return 0;
  if ((unsigned)cfg->layer > CNF_LAYER_IGNORE) return 0;
  if ((unsigned)cfg->act > CNF_ACT_SOFTPLUS) return 0;
  for (size_t i = 0; i < cfg->n_hidden; i++)
    if (cfg->hidden[i] == 0 || cfg->hidden[i] > 1000000) return 0;
  return 1;
}

static size_t width(const cnf_mlp_config *cfg, size_t i) {
  /* width i of the chain D, H_1, ..., H_n, D */
  return (i == 0 || i == cfg->n_hidden + 1) ? cfg->dim : cfg->hidden[i - 1];
}

size_t cnf_mlp_param_count(const cnf_mlp_config *cfg) {
  if (!config_valid(cfg)) return 0;
  size_t P = 0;
  for (size_t l = 0; l <= cfg->n_hidden; l++) {
    size_t in = width(cfg, l), out = width(cfg, l + 1);
    P += out * in + out * (1 + layer_extra(cfg->layer));
  }
  return P;
}

/* PyTorch's nn.Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights
 * and biases.  The concatsquash hyper layers are Linear(1, out): U(-1, 1);
 * the concat layer is Linear(in + 1, out). */
int cnf_mlp_init_params(const cnf_mlp_config *cfg, uint64_t seed,
                        double *theta) {
  if (!config_valid(cfg) || theta == NULL) return CNF_EINVAL;
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (r == NULL) return CNF_ENOMEM;
  gsl_rng_set(r, cnf__seed32(seed));
  double *p = theta;
  for (size_t l = 0; l <= cfg->n_hidden; l++) {
    size_t in = width(cfg, l), out = width(cfg, l + 1);
    size_t fan = in + (cfg->layer == CNF_LAYER_CONCAT ? 1 : 0);
    double bound = 1.0 / sqrt((double)fan);
    for (size_t i = 0; i < out * in + out; i++)  /* W, b */
      *p++ = bound * (2.0 * gsl_rng_uniform(r) - 1.0);
    if (cfg->layer == CNF_LAYER_CONCATSQUASH) {
      for (size_t i = 0; i < 3 * out; i++)  /* wb, wg, bg */
        *p++ = 2.0 * gsl_rng_uniform(r) - 1.0;
    } else if (cfg->layer == CNF_LAYER_CONCAT) {
      for (size_t i = 0; i < out; i++) *p++ = bound * (2.0 * gsl_rng_uniform(r) - 1.0);
    }
  }
  gsl_rng_free(r);
  return 0;
}

/* ---- the kernels, once per precision --------------------------------- */

static inline double sigmoid(double u) { return 1.0 / (1.0 + exp(-u)); }

static size_t chunk_samples(const mlp_state *s, size_t K) {
  size_t n = s->rows / (1 + K);
  return n > 0 ? n : 1;
}


/* ---- per-row times (flow matching) -----------------------------------
 * The same network with one time t_r per primal row and no tangents (the
 * output seed a + 2 ck f as vjp_reg's primal rows): the
 * gate gamma_rc = sigmoid(wg_c t_r + bg_c) (concatsquash) and the time
 * column wt_c t_r (concat) become per row, so the reverse sweep's time
 * sums weigh each row by its own t_r:
 *
 *   wg += sum_r gammabar_rc gamma_rc (1 - gamma_rc) t_r,
 *   bg += sum_r gammabar_rc gamma_rc (1 - gamma_rc),
 *   wb += sum_r t_r ybar_rc,   wt += sum_r t_r ubar_rc.
 *
 * Each element is computed by the expressions of the scalar-time path, so
 * a row's f agrees with f at that row's time to rounding (the dgemm's
 * blocking may differ with the chunk). */


#define T double
#define FN(name) name##_d
#define MLP_SINGLE 0
#define GEMM cblas_dgemm
#define TANH_N cnf__tanh
#define EXP_T exp
#define LOG1P_T log1p
#define FMAX_T fmax
#define FABS_T fabs
#define WS w64
#include "mlp_kern.h"

#define T float
#define FN(name) name##_s
#define MLP_SINGLE 1
#define GEMM cblas_sgemm
#define TANH_N cnf__tanhf
#define EXP_T expf
#define LOG1P_T log1pf
#define FMAX_T fmaxf
#define FABS_T fabsf
#define WS w32
#include "mlp_kern.h"

/* ---- the serial ops: the state's precision picks the kernels ---------- */

#define SINGLE(s) ((s)->prec == CNF_PRECISION_SINGLE)

static int ser_f(void *sv, double t, size_t B, const double *z, const double *theta, double *dz) {
  mlp_state *s = sv;
  return SINGLE(s) ? ser_f_s(s, t, B, z, theta, dz) : ser_f_d(s, t, B, z, theta, dz);
}

static int ser_jvp(void *sv, double t, size_t B, size_t K, const double *z, const double *theta,
                   const double *v, double *dz, double *jv) {
  mlp_state *s = sv;
  return SINGLE(s) ? ser_jvp_s(s, t, B, K, z, theta, v, dz, jv)
                   : ser_jvp_d(s, t, B, K, z, theta, v, dz, jv);
}

static int ser_f_div(void *sv, double t, size_t B, size_t K, const double *z,
                     const double *theta, const double *v, double *dz, double *div) {
  mlp_state *s = sv;
  return SINGLE(s) ? ser_f_div_s(s, t, B, K, z, theta, v, dz, div)
                   : ser_f_div_d(s, t, B, K, z, theta, v, dz, div);
}

static int ser_vjp_reg(void *sv, double t, size_t B, size_t K, const double *z,
                       const double *theta, const double *a, const double *w, const double *ck,
                       const double *cj, const double *v, double *dz, double *gz, double *gth) {
  mlp_state *s = sv;
  return SINGLE(s) ? ser_vjp_reg_s(s, t, B, K, z, theta, a, w, ck, cj, v, dz, gz, gth)
                   : ser_vjp_reg_d(s, t, B, K, z, theta, a, w, ck, cj, v, dz, gz, gth);
}

static int ser_f_rows(void *sv, const double *ts, size_t B, const double *z, const double *theta,
                      double *dz) {
  mlp_state *s = sv;
  return SINGLE(s) ? ser_f_rows_s(s, ts, B, z, theta, dz) : ser_f_rows_d(s, ts, B, z, theta, dz);
}

static int ser_vjp_rows(void *sv, const double *ts, size_t B, const double *z, const double *theta,
                        const double *a, const double *ck, double *dz, double *gz, double *gth) {
  mlp_state *s = sv;
  return SINGLE(s) ? ser_vjp_rows_s(s, ts, B, z, theta, a, ck, dz, gz, gth)
                   : ser_vjp_rows_d(s, ts, B, z, theta, a, ck, dz, gz, gth);
}


/* ---- threads -------------------------------------------------------------
 * With n > 1 threads (cnf_dyn_mlp_set_threads) every op splits the batch
 * into n contiguous ranges of rows, b in [t B / n, (t + 1) B / n), each run
 * by the serial op on a state of its own (its own workspace).  Rows are
 * independent, so f, div, J v and the z-gradient are the serial ones up to
 * the GEMM kernels' dependence on the row count (none seen in float64,
 * float rounding in float32); the parameter gradient is the sum of the n
 * partial sums, added in thread order, so a given thread count always
 * gives the same bits.  Tangent sets (K, B, D) are strided by B: each
 * thread copies its rows of v into a buffer of its own (and J v back),
 * sized by reserve, never in an op.
 * The threads are a pool of its own (below); OpenBLAS should then run
 * single-threaded. */

typedef enum par_op { PAR_F, PAR_JVP, PAR_F_DIV, PAR_VJP, PAR_F_ROWS, PAR_VJP_ROWS } par_op;

typedef struct par_args {
  par_op op;
  double t;
  size_t B, K;
  const double *z, *theta, *v, *a, *w, *ck, *cj;
  const double *ts; /* (B) per-row times of the _ROWS ops */
  double *dz, *jv, *div, *gz, *gth;
} par_args;

/* Whether an op of B samples with K tangent sets (and the parameter
 * gradient if grad) splits. */
static int par_use(const mlp_state *s, size_t B, size_t K, int grad) {
  if (s->nthreads <= 1 || s->pool == NULL || B > s->par_B || K > s->par_K || s->par_mem == NULL)
    return 0;
  const double min = s->par_min > 0.0                   ? s->par_min
                     : s->prec != CNF_PRECISION_SINGLE ? MLP_PAR_MIN_MACS_D
                     : grad                             ? MLP_PAR_MIN_MACS_SG
                                                        : MLP_PAR_MIN_MACS_S;
  return (double)(B * (1 + K)) * s->macs_row >= (double)s->nthreads * min;
}

static size_t par_stride(const mlp_state *s) {
  const size_t Bt = (s->par_B + s->nthreads - 1) / s->nthreads;
  return 2 * s->par_K * Bt * s->cfg.dim + s->P;
}

/* Thread t's share of the op. */
static int par_run(mlp_state *s, const par_args *pa, size_t t) {
  const size_t n = s->nthreads, D = s->cfg.dim, B = pa->B, K = pa->K;
  const size_t b0 = t * B / n, b1 = (t + 1) * B / n, Bt = b1 - b0;
  double *buf = s->par_mem + t * par_stride(s);
  double *vin = buf, *vout = buf + K * Bt * D, *g = buf + 2 * s->par_K * Bt * D;
  (void)g;
  const double *vt = NULL;
  if (pa->v != NULL && pa->op != PAR_F) {
    for (size_t k = 0; k < K; k++)
      memcpy(vin + k * Bt * D, pa->v + (k * B + b0) * D, Bt * D * sizeof(double));
    vt = vin;
  }
  mlp_state *sub = s->sub[t];
  double *dz = pa->dz != NULL ? pa->dz + b0 * D : NULL;
  int rc = 0;
  switch (pa->op) {
    case PAR_F:
      rc = ser_f(sub, pa->t, Bt, pa->z + b0 * D, pa->theta, dz);
      break;
    case PAR_JVP:
      rc = ser_jvp(sub, pa->t, Bt, K, pa->z + b0 * D, pa->theta, vt, dz, vout);
      for (size_t k = 0; rc == 0 && k < K; k++)
        memcpy(pa->jv + (k * B + b0) * D, vout + k * Bt * D, Bt * D * sizeof(double));
      break;
    case PAR_F_DIV:
      rc = ser_f_div(sub, pa->t, Bt, K, pa->z + b0 * D, pa->theta, vt, dz, pa->div + b0);
      break;
    case PAR_F_ROWS:
      rc = ser_f_rows(sub, pa->ts + b0, Bt, pa->z + b0 * D, pa->theta, dz);
      break;
    case PAR_VJP_ROWS:
      if (pa->gth != NULL) memset(g, 0, s->P * sizeof(double));
      rc = ser_vjp_rows(sub, pa->ts + b0, Bt, pa->z + b0 * D, pa->theta, pa->a + b0 * D,
                        pa->ck != NULL ? pa->ck + b0 : NULL, dz,
                        pa->gz != NULL ? pa->gz + b0 * D : NULL, pa->gth != NULL ? g : NULL);
      break;
    case PAR_VJP:
      if (pa->gth != NULL) memset(g, 0, s->P * sizeof(double));
      rc = ser_vjp_reg(sub, pa->t, Bt, K, pa->z + b0 * D, pa->theta, pa->a + b0 * D,
                       pa->w ? pa->w + b0 : NULL, pa->ck ? pa->ck + b0 : NULL,
                       pa->cj ? pa->cj + b0 : NULL, vt, dz, pa->gz + b0 * D,
                       pa->gth != NULL ? g : NULL);
      break;
  }
  return rc;
}

/* The workers: persistent threads.  A call publishes its arguments under a
 * new generation number, runs share 0 itself, and waits until the n - 1
 * workers are done.  Calls come back to back inside a solve (tens to
 * hundreds of microseconds apart), while waking a sleeping thread through
 * the kernel takes 50-100 us here, as long as a whole evaluation of a
 * small batch: so a worker done with a call spins on the generation number
 * for a bounded time (MLP_SPIN pauses, about 0.1 ms) before it sleeps on a
 * condition variable, and the caller spins the same way on the count of
 * workers still running.  On a busy machine a worker thus burns at most
 * that long after each call; between solves and between training steps it
 * sleeps.  With more threads than this process's share of the cores
 * (cnf_threads_default) nobody spins: a spinning thread would hold the
 * core another one needs. */
#define MLP_SPIN 4000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}

typedef struct pool_arg {
  struct mlp_pool *pool;
  size_t t;
} pool_arg;

typedef struct mlp_pool {
  mlp_state *s;
  size_t n;                 /* threads, the caller included */
  size_t started;           /* workers created */
  int spin;                 /* pauses before sleeping: MLP_SPIN, 0 past the cores */
  pthread_t tid[CNF_MLP_MAX_THREADS];
  pool_arg arg[CNF_MLP_MAX_THREADS];
  pthread_mutex_t mu;
  pthread_cond_t go, fin;
  _Atomic unsigned long gen; /* call number; changed under mu */
  _Atomic size_t pending;    /* workers still running this call; changed under mu */
  _Atomic int quit;
  const par_args *job;
  int rcs[CNF_MLP_MAX_THREADS];
} mlp_pool;

static void *pool_main(void *arg) {
  const pool_arg *a = arg;
  mlp_pool *p = a->pool;
  unsigned long seen = 0;
  for (;;) {
    for (int i = 0; i < p->spin && atomic_load(&p->gen) == seen && !atomic_load(&p->quit); i++)
      cpu_relax();
    if (atomic_load(&p->gen) == seen && !atomic_load(&p->quit)) {
      pthread_mutex_lock(&p->mu);
      while (atomic_load(&p->gen) == seen && !atomic_load(&p->quit))
        pthread_cond_wait(&p->go, &p->mu);
      pthread_mutex_unlock(&p->mu);
    }
    if (atomic_load(&p->quit)) break;
    seen = atomic_load(&p->gen);
    const int rc = par_run(p->s, p->job, a->t);
    pthread_mutex_lock(&p->mu);
    p->rcs[a->t] = rc;
    if (atomic_fetch_sub(&p->pending, 1) == 1) pthread_cond_signal(&p->fin);
    pthread_mutex_unlock(&p->mu);
  }
  return NULL;
}

static void pool_free(mlp_pool *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  atomic_store(&p->quit, 1);
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  for (size_t t = 1; t <= p->started; t++) pthread_join(p->tid[t], NULL);
  pthread_cond_destroy(&p->go);
  pthread_cond_destroy(&p->fin);
  pthread_mutex_destroy(&p->mu);
  cnf__free(p);
}

/* n - 1 workers for the state s, or NULL. */
static mlp_pool *pool_new(mlp_state *s, size_t n) {
  mlp_pool *p = cnf__calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->s = s;
  p->n = n;
  p->spin = n > cnf_threads_default() ? 0 : MLP_SPIN;
  atomic_init(&p->gen, 0);
  atomic_init(&p->pending, 0);
  atomic_init(&p->quit, 0);
  if (pthread_mutex_init(&p->mu, NULL) != 0) {
    cnf__free(p);
    return NULL;
  }
  pthread_cond_init(&p->go, NULL);
  pthread_cond_init(&p->fin, NULL);
  for (size_t t = 1; t < n; t++) {
    p->arg[t] = (pool_arg){p, t};
    if (pthread_create(&p->tid[t], NULL, pool_main, &p->arg[t]) != 0) {
      pool_free(p);
      return NULL;
    }
    p->started = t;
  }
  return p;
}

static int par_dispatch(mlp_state *s, const par_args *pa) {
  const size_t n = s->nthreads;
  mlp_pool *p = s->pool;
  pthread_mutex_lock(&p->mu);
  p->job = pa;
  atomic_store(&p->pending, n - 1);
  atomic_fetch_add(&p->gen, 1);
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  p->rcs[0] = par_run(s, pa, 0);
  for (int i = 0; i < p->spin && atomic_load(&p->pending) > 0; i++) cpu_relax();
  pthread_mutex_lock(&p->mu);
  while (atomic_load(&p->pending) > 0) pthread_cond_wait(&p->fin, &p->mu);
  pthread_mutex_unlock(&p->mu);
  for (size_t t = 0; t < n; t++)
    if (p->rcs[t] != 0) return p->rcs[t];
  if ((pa->op == PAR_VJP || pa->op == PAR_VJP_ROWS) && pa->gth != NULL)
    for (size_t t = 0; t < n; t++) {
      const size_t b0 = t * pa->B / n, Bt = (t + 1) * pa->B / n - b0;
      const double *g = s->par_mem + t * par_stride(s) + 2 * s->par_K * Bt * s->cfg.dim;
      (void)b0;
      for (size_t i = 0; i < s->P; i++) pa->gth[i] += g[i];
    }
  return 0;
}

static int par_f(void *sv, double t, size_t B, const double *z, const double *theta,
                 double *dz) {
  mlp_state *s = sv;
  if (!par_use(s, B, 0, 0)) return ser_f(sv, t, B, z, theta, dz);
  par_args pa = {.op = PAR_F, .t = t, .B = B, .z = z, .theta = theta, .dz = dz};
  return par_dispatch(s, &pa);
}

static int par_jvp(void *sv, double t, size_t B, size_t K, const double *z,
                   const double *theta, const double *v, double *dz, double *jv) {
  mlp_state *s = sv;
  if (!par_use(s, B, K, 0)) return ser_jvp(sv, t, B, K, z, theta, v, dz, jv);
  par_args pa = {.op = PAR_JVP, .t = t, .B = B, .K = K, .z = z, .theta = theta, .v = v,
                 .dz = dz, .jv = jv};
  return par_dispatch(s, &pa);
}

static int par_f_div(void *sv, double t, size_t B, size_t K, const double *z,
                     const double *theta, const double *v, double *dz, double *div) {
  mlp_state *s = sv;
  if (!par_use(s, B, K, 0)) return ser_f_div(sv, t, B, K, z, theta, v, dz, div);
  par_args pa = {.op = PAR_F_DIV, .t = t, .B = B, .K = K, .z = z, .theta = theta, .v = v,
                 .dz = dz, .div = div};
  return par_dispatch(s, &pa);
}

static int par_vjp_reg(void *sv, double t, size_t B, size_t K, const double *z,
                       const double *theta, const double *a, const double *w, const double *ck,
                       const double *cj, const double *v, double *dz, double *gz, double *gth) {
  mlp_state *s = sv;
  const size_t Kt = w == NULL && cj == NULL ? 0 : K;
  if (!par_use(s, B, Kt, gth != NULL)) return ser_vjp_reg(sv, t, B, K, z, theta, a, w, ck, cj, v, dz, gz, gth);
  par_args pa = {.op = PAR_VJP, .t = t, .B = B, .K = Kt, .z = z, .theta = theta,
                 .v = Kt > 0 ? v : NULL, .a = a, .w = w, .ck = ck, .cj = cj, .dz = dz, .gz = gz,
                 .gth = gth};
  return par_dispatch(s, &pa);
}

static int par_f_rows(void *sv, const double *ts, size_t B, const double *z, const double *theta,
                      double *dz) {
  mlp_state *s = sv;
  if (!par_use(s, B, 0, 0)) return ser_f_rows(sv, ts, B, z, theta, dz);
  par_args pa = {.op = PAR_F_ROWS, .ts = ts, .B = B, .z = z, .theta = theta, .dz = dz};
  return par_dispatch(s, &pa);
}

static int par_vjp_rows(void *sv, const double *ts, size_t B, const double *z, const double *theta,
                        const double *a, const double *ck, double *dz, double *gz, double *gth) {
  mlp_state *s = sv;
  if (!par_use(s, B, 0, gth != NULL)) return ser_vjp_rows(sv, ts, B, z, theta, a, ck, dz, gz, gth);
  par_args pa = {.op = PAR_VJP_ROWS, .ts = ts, .B = B, .z = z, .theta = theta, .a = a, .ck = ck};
  pa.dz = dz, pa.gz = gz, pa.gth = gth;
  return par_dispatch(s, &pa);
}

static int mlp_vjp(void *sv, double t, size_t B, size_t K, const double *z,
                   const double *theta, const double *a, const double *w,
                   const double *v, double *dz, double *gz, double *gth) {
  return par_vjp_reg(sv, t, B, K, z, theta, a, w, NULL, NULL, v, dz, gz, gth);
}

/* Point a workspace of either precision (w) into p, advancing it. */
#define MLP_WS_POINT(s, w, p, rows)                                                                \
  do {                                                                                             \
    for (size_t l_ = 0; l_ < (s)->L; l_++) {                                                       \
      const mlp_layer *ly_ = &(s)->layer[l_];                                                      \
      (w).ly[l_].X = (p), (p) += (rows) * ly_->in;                                                 \
      (w).ly[l_].Y = (p), (p) += (rows) * ly_->out;                                                \
      (w).ly[l_].U = NULL;                                                                         \
      if ((s)->cfg.layer == CNF_LAYER_CONCATSQUASH) (w).ly[l_].U = (p), (p) += (rows) * ly_->out;  \
    }                                                                                              \
    (w).gate = (p), (p) += (s)->wmax;                                                              \
    (w).acc = (p), (p) += (s)->wmax;                                                               \
    (w).bar0 = (p), (p) += (rows) * (s)->wmax;                                                     \
    (w).bar1 = (p), (p) += (rows) * (s)->wmax;                                                     \
  } while (0)

/* (Re)allocate the workspaces of both precisions for `rows` stacked rows:
 * one allocation each, pointed into per layer, and the float weights and
 * gradient.  Outside the hot path only (create, reserve). */
static int workspace(mlp_state *s, size_t rows) {
  size_t total = 2 * s->wmax + 2 * rows * s->wmax;
  for (size_t l = 0; l < s->L; l++) {
    const mlp_layer *ly = &s->layer[l];
    total += rows * (ly->in + ly->out);
    if (s->cfg.layer == CNF_LAYER_CONCATSQUASH) total += rows * ly->out;
  }
  double *mem = cnf__calloc(total + rows * s->cfg.dim, sizeof(double));
  float *mem32 = cnf__calloc(total + 2 * s->P, sizeof(float));
  if (mem == NULL || mem32 == NULL) {
    cnf__free(mem);
    cnf__free(mem32);
    return CNF_ENOMEM;
  }
  cnf__free(s->mem);
  cnf__free(s->mem32);
  s->mem = mem;
  s->mem32 = mem32;
  s->rows = rows;
  double *p = mem;
  MLP_WS_POINT(s, s->w64, p, rows);
  s->fwd_z = p;
  s->fwd_ok = 0;
  float *q = mem32;
  MLP_WS_POINT(s, s->w32, q, rows);
  s->th32 = q, q += s->P;
  s->g32 = q;
  s->th32_src = NULL;
  return 0;
}

/* Make room for one sample with K tangent sets (the chunk shrinks as K
 * grows, to one sample per chunk at worst), in every thread's state, and
 * the split's buffers for B samples. */
static int mlp_reserve(void *sv, size_t B, size_t K) {
  mlp_state *s = sv;
  const size_t want = B * (1 + K) <= MLP_ONE_CHUNK_ROWS && B * (1 + K) > 1 + K ? B * (1 + K) : 1 + K;
  if (s->rows < want && workspace(s, want) != 0) return CNF_ENOMEM;
  if (s->nthreads <= 1) return 0;
  for (size_t t = 0; t < s->nthreads; t++)
    if (s->sub[t]->rows < 1 + K && workspace(s->sub[t], 1 + K) != 0) return CNF_ENOMEM;
  if (B <= s->par_B && K <= s->par_K && s->par_mem != NULL) return 0;
  const size_t nB = B > s->par_B ? B : s->par_B, nK = K > s->par_K ? K : s->par_K;
  const size_t Bt = (nB + s->nthreads - 1) / s->nthreads;
  double *mem = cnf__calloc(s->nthreads * (2 * nK * Bt * s->cfg.dim + s->P), sizeof(double));
  if (mem == NULL) return CNF_ENOMEM;
  cnf__free(s->par_mem);
  s->par_mem = mem;
  s->par_B = nB;
  s->par_K = nK;
  return 0;
}

static void mlp_free(void *sv) {
  mlp_state *s = sv;
  if (s == NULL) return;
  pool_free(s->pool);
  for (size_t t = 0; t < CNF_MLP_MAX_THREADS; t++) mlp_free(s->sub[t]);
  cnf__free(s->par_mem);
  cnf__free(s->mem);
  cnf__free(s->mem32);
  cnf__free(s);
}

/* A state of the network with its workspace, or NULL. */
static mlp_state *state_new(const cnf_mlp_config *cfg) {
  mlp_state *s = cnf__calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->cfg = *cfg;
  s->L = cfg->n_hidden + 1;
  s->P = cnf_mlp_param_count(cfg);
  s->nthreads = 1;
  size_t off = 0;
  for (size_t l = 0; l < s->L; l++) {
    mlp_layer *ly = &s->layer[l];
    ly->in = width(cfg, l);
    ly->out = width(cfg, l + 1);
    ly->off = off;
    off += ly->out * ly->in + ly->out * (1 + layer_extra(cfg->layer));
    s->macs_row += (double)(ly->in * ly->out);
    if (ly->in > s->wmax) s->wmax = ly->in;
    if (ly->out > s->wmax) s->wmax = ly->out;
  }
  /* enough rows for the exact trace of one sample at least */
  if (workspace(s, MLP_CHUNK_ROWS > cfg->dim + 1 ? MLP_CHUNK_ROWS : cfg->dim + 1) != 0) {
    cnf__free(s);
    return NULL;
  }
  return s;
}

/* The precision p and hold on the state and its threads' states, the
 * float weights invalidated. */
static void set_precision(mlp_state *s, cnf_precision p, int hold) {
  s->prec = p, s->hold = hold, s->th32_src = NULL, s->fwd_ok = 0;
  for (size_t t = 0; t < CNF_MLP_MAX_THREADS; t++)
    if (s->sub[t] != NULL) s->sub[t]->prec = p, s->sub[t]->hold = hold, s->sub[t]->th32_src = NULL;
}

static const cnf_dyn_type mlp_type = {
    .name = "mlp",
    .f = par_f,
    .f_div = par_f_div,
    .jvp = par_jvp,
    .vjp = mlp_vjp,
    .reserve = mlp_reserve,
    .free = mlp_free,
    .vjp_reg = par_vjp_reg,
    .f_rows = par_f_rows,
    .vjp_rows = par_vjp_rows,
};

int cnf_dyn_mlp_create(cnf_dyn **out, cnf_ctx *ctx, const cnf_mlp_config *cfg) {
  if (out == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "mlp: out is NULL");
  *out = NULL;
  if (!config_valid(cfg))
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "mlp: invalid configuration (dimension 0, more than %d "
                     "hidden layers, a zero width or an unknown layer type)",
                     CNF_MAX_HIDDEN);
  mlp_state *s = state_new(cfg);
  if (s == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "mlp: out of memory for the workspace");
  int rc = cnf_dyn_create(out, ctx, &mlp_type, s, 1, cfg->dim, s->P);
  if (rc != 0) mlp_free(s);
  return rc;
}

int cnf_dyn_mlp_set_threads(cnf_dyn *dyn, size_t n) {
  if (dyn == NULL) return CNF_EINVAL;
  if (dyn->type != &mlp_type)
    return CNF_ERROR(dyn->ctx, CNF_EINVAL, "set_threads: field '%s' is not an MLP",
                     cnf_dyn_name(dyn));
  if (n == 0 || n > CNF_MLP_MAX_THREADS)
    return CNF_ERROR(dyn->ctx, CNF_EINVAL, "set_threads: need 1 to %d threads, not %zu",
                     CNF_MLP_MAX_THREADS, n);
  mlp_state *s = dyn->state;
  pool_free(s->pool);
  s->pool = NULL;
  for (size_t t = 0; t < CNF_MLP_MAX_THREADS; t++) {
    mlp_free(s->sub[t]);
    s->sub[t] = NULL;
  }
  cnf__free(s->par_mem);
  s->par_mem = NULL;
  s->par_B = s->par_K = 0;
  s->nthreads = 1;
  for (size_t t = 0; n > 1 && t < n; t++) {
    s->sub[t] = state_new(&s->cfg);
    if (s->sub[t] == NULL) {
      for (size_t u = 0; u < t; u++) mlp_free(s->sub[u]), s->sub[u] = NULL;
      return CNF_ERROR(dyn->ctx, CNF_ENOMEM, "set_threads: out of memory");
    }
  }
  if (n > 1 && (s->pool = pool_new(s, n)) == NULL) {
    for (size_t t = 0; t < n; t++) mlp_free(s->sub[t]), s->sub[t] = NULL;
    return CNF_ERROR(dyn->ctx, CNF_ENOMEM, "set_threads: cannot start %zu threads", n - 1);
  }
  s->nthreads = n;
  set_precision(s, s->prec, s->hold);
  /* the split's buffers come with the next reserve (the solvers call it) */
  return 0;
}

int cnf__dyn_mlp_split_min(cnf_dyn *dyn, double macs) {
  if (dyn == NULL || dyn->type != &mlp_type || !(macs >= 0.0)) return CNF_EINVAL;
  ((mlp_state *)dyn->state)->par_min = macs;
  return 0;
}

int cnf__dyn_precision_begin(cnf_dyn *d, cnf_precision p, int hold, int *saved) {
  *saved = 0;
  if ((unsigned)p > CNF_PRECISION_SINGLE)
    return CNF_ERROR(d->ctx, CNF_EINVAL, "options: unknown precision %d (double or single)",
                     (int)p);
  if (d->type != &mlp_type) return 0; /* other fields run as they are written */
  mlp_state *s = d->state;
  *saved = (int)s->prec | s->hold << 1;
  set_precision(s, p, hold);
  return 0;
}

void cnf__dyn_precision_end(cnf_dyn *d, int saved) {
  if (d == NULL || d->type != &mlp_type) return;
  set_precision(d->state, (cnf_precision)(saved & 1), saved >> 1);
}

size_t cnf_dyn_mlp_threads(const cnf_dyn *dyn) {
  if (dyn == NULL || dyn->type != &mlp_type) return 1;
  return ((const mlp_state *)dyn->state)->nthreads;
}
