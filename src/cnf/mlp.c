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
 * at points it later rejects. */
#include <math.h>
#include <pthread.h>
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
#endif

/* Rows (primal plus tangent) per chunk: 256 rows of a 64-wide network keep
 * the per-layer buffers near L2.  Exact traces of high dimension get
 * fewer samples per chunk, never fewer than one. */
#define MLP_CHUNK_ROWS 256

/* Primal rows per activation call in forward_chunk. */
#define MLP_ACT_ROWS 16

/* Threads of the batch split, at most. */
#define CNF_MLP_MAX_THREADS 64

/* Stacked rows (primal and tangent) per thread below which the split does
 * not pay: measured, two threads lose at batch 100 with the exact trace of
 * 2-D data (300 rows) and win 1.5-2x from 1000 rows up. */
#define MLP_PAR_MIN_ROWS 512

/* Elements per block of the reverse sweep's activation step. */
#define MLP_VJP_BLOCK 512

typedef struct mlp_layer {
  size_t in, out;  /* sizes */
  size_t off;      /* offset of W in theta */
  double *X;       /* (R, in)  layer input, primal rows then tangent rows */
  double *U;       /* (R, out) u = W x + b (concatsquash only) */
  double *Y;       /* (R, out) layer output = activation input */
} mlp_layer;

typedef struct mlp_state {
  cnf_mlp_config cfg;
  size_t L;          /* linear layers */
  size_t P;          /* parameters */
  size_t rows;       /* workspace rows */
  size_t wmax;       /* widest layer */
  mlp_layer layer[CNF_MAX_HIDDEN + 1];
  double *gate;      /* (wmax) gamma of the current layer */
  double *acc;       /* (wmax) a column sum */
  double *bar0, *bar1; /* (rows, wmax) adjoints, ping-pong */
  double *mem;       /* the one allocation behind all of the above */
  /* the batch split over threads (see "threads" below) */
  size_t nthreads;   /* 1: serial */
  struct mlp_state *sub[CNF_MLP_MAX_THREADS]; /* per-thread states */
  size_t par_B, par_K; /* the batch and tangents the buffers fit */
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

/* ---- activations ---------------------------------------------------- */

static void act_forward(cnf_act act, size_t n, const double *restrict y,
                        double *restrict x) {
  if (act == CNF_ACT_TANH) {
    cnf__tanh(n, y, x); /* act.c: AVX2/FMA kernel or libm */
  } else {
    /* softplus(y) = max(y, 0) + log1p(exp(-|y|)), stable for all y */
#pragma omp simd
    for (size_t i = 0; i < n; i++)
      x[i] = fmax(y[i], 0.0) + log1p(exp(-fabs(y[i])));
  }
}

/* sigma'(y) given y and x = sigma(y), into d. */
static void act_deriv(cnf_act act, size_t n, const double *restrict y,
                      const double *restrict x, double *restrict d) {
  if (act == CNF_ACT_TANH) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) d[i] = 1.0 - x[i] * x[i];
  } else {
#pragma omp simd
    for (size_t i = 0; i < n; i++) d[i] = 1.0 / (1.0 + exp(-y[i]));
  }
}

static inline double act_d2(cnf_act act, double x, double d1) {
  /* sigma'' from x = sigma(y) and d1 = sigma'(y) */
  return act == CNF_ACT_TANH ? -2.0 * x * d1 : d1 * (1.0 - d1);
}

/* ---- one chunk forward ---------------------------------------------- */

static inline double sigmoid(double u) { return 1.0 / (1.0 + exp(-u)); }

/* Layer parameter views into theta. */
typedef struct lparams {
  const double *W, *b, *wb, *wg, *bg, *wt;
} lparams;

static lparams layer_params(const mlp_state *s, size_t l, const double *theta) {
  const mlp_layer *ly = &s->layer[l];
  lparams p = {0};
  p.W = theta + ly->off;
  p.b = p.W + ly->out * ly->in;
  if (s->cfg.layer == CNF_LAYER_CONCATSQUASH) {
    p.wb = p.b + ly->out;
    p.wg = p.wb + ly->out;
    p.bg = p.wg + ly->out;
  } else if (s->cfg.layer == CNF_LAYER_CONCAT) {
    p.wt = p.b + ly->out;
  }
  return p;
}

/* Fill the input rows of the chunk: Bc primal rows from z (samples b0..),
 * then K blocks of Bc tangent rows from v (K, B, D), or e_k if v is NULL. */
static void load_input(mlp_state *s, size_t b0, size_t Bc, size_t B, size_t K,
                       const double *z, const double *v) {
  size_t D = s->cfg.dim;
  double *X = s->layer[0].X;
  memcpy(X, z + b0 * D, Bc * D * sizeof(double));
  for (size_t k = 0; k < K; k++) {
    double *Xk = X + (1 + k) * Bc * D;
    if (v != NULL) {
      memcpy(Xk, v + (k * B + b0) * D, Bc * D * sizeof(double));
    } else {
      memset(Xk, 0, Bc * D * sizeof(double));
      for (size_t j = 0; j < Bc; j++) Xk[j * D + k] = 1.0;
    }
  }
}

/* Forward through all layers for a loaded chunk of Bc samples and K
 * tangent blocks.  The output rows are layer[L-1].Y.  With keep, every
 * layer's U (concatsquash) and Y rows are stored for the reverse sweep;
 * without, u is computed in place in Y and the hidden layers' tangent Y
 * rows are not written (only the output layer's are).
 *
 * One pass over the primal rows per layer (bias, gate, activation of each
 * row while it is in L1) and one over the tangent rows (gate and
 * sigma'(y) ydot, sigma' = 1 - x^2 recomputed from the primal x for tanh),
 * each element computed by the same expressions as separate passes would. */
static void forward_chunk(mlp_state *s, double t, size_t Bc, size_t K,
                          const double *theta, int keep) {
  const size_t R = Bc * (1 + K);
  const int sq = s->cfg.layer == CNF_LAYER_CONCATSQUASH;
  const cnf_act act = s->cfg.act;
  for (size_t l = 0; l < s->L; l++) {
    mlp_layer *ly = &s->layer[l];
    lparams p = layer_params(s, l, theta);
    const size_t in = ly->in, out = ly->out;
    const int last = l + 1 == s->L;
    double *Y = ly->Y;
    double *U = sq && keep ? ly->U : Y;
    double *Xn = last ? NULL : s->layer[l + 1].X;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)R, (int)out,
                (int)in, 1.0, ly->X, (int)in, p.W, (int)in, 0.0, U, (int)out);
    const double *g = s->gate;
    if (sq) {
      double *gw = s->gate;
      for (size_t c = 0; c < out; c++) gw[c] = sigmoid(p.wg[c] * t + p.bg[c]);
    } else {
      double *acc = s->acc;
      for (size_t c = 0; c < out; c++)
        acc[c] = p.b[c] + (p.wt != NULL ? p.wt[c] * t : 0.0);
    }
    /* primal rows: y, then x = sigma(y) into the next layer, in blocks of
     * MLP_ACT_ROWS rows (still in L1 when the activation reads them) */
    for (size_t r0 = 0; r0 < Bc; r0 += MLP_ACT_ROWS) {
    const size_t r1 = Bc - r0 < MLP_ACT_ROWS ? Bc : r0 + MLP_ACT_ROWS;
    for (size_t r = r0; r < r1; r++) {
      double *y = Y + r * out;
      if (sq && U != Y) {
        double *u = U + r * out;
#pragma omp simd
        for (size_t c = 0; c < out; c++) {
          u[c] += p.b[c];
          y[c] = u[c] * g[c] + p.wb[c] * t;
        }
      } else if (sq) {
#pragma omp simd
        for (size_t c = 0; c < out; c++) {
          double uc = y[c] + p.b[c];
          y[c] = uc * g[c] + p.wb[c] * t;
        }
      } else {
        const double *acc = s->acc;
#pragma omp simd
        for (size_t c = 0; c < out; c++) y[c] += acc[c];
      }
    }
    if (!last) act_forward(act, (r1 - r0) * out, Y + r0 * out, Xn + r0 * out);
    }
    if (K == 0) continue;
    /* tangent rows: ydot = udot gamma; x' = sigma'(y) ydot */
    if (last) {
      if (sq)
        for (size_t r = Bc; r < R; r++) {
          const double *u = U + r * out;
          double *y = Y + r * out;
#pragma omp simd
          for (size_t c = 0; c < out; c++) y[c] = u[c] * g[c];
        }
      continue;
    }
    const double *d = NULL;
    if (act != CNF_ACT_TANH) { /* sigma'(y) once, (Bc, out) */
      double *dw = s->bar0;
      act_deriv(act, Bc * out, Y, Xn, dw);
      d = dw;
    }
    for (size_t k = 0; k < K; k++)
      for (size_t j = 0; j < Bc; j++) {
        const size_t r = (1 + k) * Bc + j;
        const double *u = U + r * out, *x = Xn + j * out;
        double *y = Y + r * out, *xk = Xn + r * out;
        if (d != NULL) {
          const double *dj = d + j * out;
          if (sq) {
#pragma omp simd
            for (size_t c = 0; c < out; c++) {
              y[c] = u[c] * g[c];
              xk[c] = dj[c] * y[c];
            }
          } else {
#pragma omp simd
            for (size_t c = 0; c < out; c++) xk[c] = dj[c] * y[c];
          }
        } else if (sq && keep) {
#pragma omp simd
          for (size_t c = 0; c < out; c++) {
            double yc = u[c] * g[c];
            y[c] = yc;
            xk[c] = (1.0 - x[c] * x[c]) * yc;
          }
        } else if (sq) {
#pragma omp simd
          for (size_t c = 0; c < out; c++) xk[c] = (1.0 - x[c] * x[c]) * (u[c] * g[c]);
        } else {
#pragma omp simd
          for (size_t c = 0; c < out; c++) xk[c] = (1.0 - x[c] * x[c]) * y[c];
        }
      }
  }
}

static size_t chunk_samples(const mlp_state *s, size_t K) {
  size_t n = s->rows / (1 + K);
  return n > 0 ? n : 1;
}

/* ---- ops ------------------------------------------------------------ */

static int ser_f(void *sv, double t, size_t B, const double *z,
                 const double *theta, double *dz) {
  mlp_state *s = sv;
  const size_t D = s->cfg.dim, cs = chunk_samples(s, 0);
  for (size_t b0 = 0; b0 < B; b0 += cs) {
    size_t Bc = B - b0 < cs ? B - b0 : cs;
    load_input(s, b0, Bc, B, 0, z, NULL);
    forward_chunk(s, t, Bc, 0, theta, 0);
    memcpy(dz + b0 * D, s->layer[s->L - 1].Y, Bc * D * sizeof(double));
  }
  return 0;
}

static int ser_jvp(void *sv, double t, size_t B, size_t K, const double *z,
                   const double *theta, const double *v, double *dz,
                   double *jv) {
  mlp_state *s = sv;
  const size_t D = s->cfg.dim, cs = chunk_samples(s, K);
  if (v == NULL && K != D) return -1;
  if (s->rows < 1 + K) return -1; /* workspace too small for one sample */
  for (size_t b0 = 0; b0 < B; b0 += cs) {
    size_t Bc = B - b0 < cs ? B - b0 : cs;
    load_input(s, b0, Bc, B, K, z, v);
    forward_chunk(s, t, Bc, K, theta, 0);
    const double *Y = s->layer[s->L - 1].Y;
    if (dz != NULL) memcpy(dz + b0 * D, Y, Bc * D * sizeof(double));
    for (size_t k = 0; k < K; k++)
      memcpy(jv + (k * B + b0) * D, Y + (1 + k) * Bc * D,
             Bc * D * sizeof(double));
  }
  return 0;
}

static int ser_f_div(void *sv, double t, size_t B, size_t K, const double *z,
                     const double *theta, const double *v, double *dz,
                     double *div) {
  mlp_state *s = sv;
  const size_t D = s->cfg.dim, cs = chunk_samples(s, K);
  if (v == NULL && K != D) return -1;
  if (s->rows < 1 + K) return -1;
  for (size_t b0 = 0; b0 < B; b0 += cs) {
    size_t Bc = B - b0 < cs ? B - b0 : cs;
    load_input(s, b0, Bc, B, K, z, v);
    forward_chunk(s, t, Bc, K, theta, 0);
    const double *Y = s->layer[s->L - 1].Y;
    memcpy(dz + b0 * D, Y, Bc * D * sizeof(double));
    for (size_t j = 0; j < Bc; j++) div[b0 + j] = 0.0;
    for (size_t k = 0; k < K; k++) {
      const double *Yk = Y + (1 + k) * Bc * D;
      if (v == NULL) {
        for (size_t j = 0; j < Bc; j++) div[b0 + j] += Yk[j * D + k];
      } else {
        const double *vk = v + (k * B + b0) * D;
        for (size_t j = 0; j < Bc; j++) {
          double sum = 0.0;
          for (size_t d = 0; d < D; d++) sum += vk[j * D + d] * Yk[j * D + d];
          div[b0 + j] += sum;
        }
      }
    }
  }
  return 0;
}

/* Column sums of rows [0, n) of M (n, m) into out (m), added with weight c. */
static void colsum_add(double *out, const double *M, size_t n, size_t m,
                       double c) {
  for (size_t r = 0; r < n; r++) {
    const double *row = M + r * m;
#pragma omp simd
    for (size_t j = 0; j < m; j++) out[j] += c * row[j];
  }
}

/* The primal rows' seeds of the reverse sweep: cur (Bc, D) = a + 2 ck f
 * for the Bc samples from b0, f the output rows Yo; ck may be NULL. */
static void seed_primal(double *cur, const double *a, const double *ck, const double *Yo, size_t b0,
                        size_t Bc, size_t D) {
  memcpy(cur, a + b0 * D, Bc * D * sizeof(double));
  if (ck != NULL)
    for (size_t j = 0; j < Bc; j++)
      for (size_t d = 0; d < D; d++) cur[j * D + d] += 2.0 * ck[b0 + j] * Yo[j * D + d];
}

/* A linear layer's reverse step from ubar (R, out): gW (out, in) += ubar^T x
 * over all R rows (skipped for gW NULL), then xbar (Rx, in) = ubar W over
 * the first Rx rows (skipped for xbar NULL). */
static void linear_backward(const mlp_layer *ly, const double *W, const double *ubar, size_t R,
                            size_t Rx, double *gW, double *xbar) {
  const size_t in = ly->in, out = ly->out;
  if (gW != NULL)
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)R, 1.0, ubar,
                (int)out, ly->X, (int)in, 1.0, gW, (int)in);
  if (xbar != NULL)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Rx, (int)in, (int)out, 1.0, ubar,
                (int)out, W, (int)in, 0.0, xbar, (int)in);
}

/* Through the activation x = sigma(y) of the layer below, in place on the
 * adjoints nxt ((1 + K) n: the primal block of n = Bc in elements, then the
 * K tangent blocks), with Y its input and X its output rows.  In blocks of
 * MLP_VJP_BLOCK elements, each a few vectorised passes: sigma'(y),
 * sec = sum_k ydot_k xdotbar_k (k outermost), the primal xbar, then the K
 * tangent ones. */
static void act_backward(cnf_act act, size_t n, size_t K, const double *Y, const double *X,
                         double *nxt) {
  for (size_t i0 = 0; i0 < n; i0 += MLP_VJP_BLOCK) {
    const size_t m = n - i0 < MLP_VJP_BLOCK ? n - i0 : MLP_VJP_BLOCK;
    double d1[MLP_VJP_BLOCK], sec[MLP_VJP_BLOCK];
    act_deriv(act, m, Y + i0, X + i0, d1);
#pragma omp simd
    for (size_t i = 0; i < m; i++) sec[i] = 0.0;
    for (size_t k = 0; k < K; k++) {
      const double *yk = Y + (1 + k) * n + i0, *bk = nxt + (1 + k) * n + i0;
#pragma omp simd
      for (size_t i = 0; i < m; i++) sec[i] += yk[i] * bk[i];
    }
    const double *x = X + i0;
    double *xb = nxt + i0;
#pragma omp simd
    for (size_t i = 0; i < m; i++) xb[i] = d1[i] * xb[i] + act_d2(act, x[i], d1[i]) * sec[i];
    for (size_t k = 0; k < K; k++) {
      double *xk = nxt + (1 + k) * n + i0;
#pragma omp simd
      for (size_t i = 0; i < m; i++) xk[i] *= d1[i];
    }
  }
}

static int ser_vjp_reg(void *sv, double t, size_t B, size_t K, const double *z,
                       const double *theta, const double *a, const double *w,
                       const double *ck, const double *cj, const double *v, double *dz,
                       double *gz, double *gth) {
  mlp_state *s = sv;
  const size_t D = s->cfg.dim;
  if (w == NULL && cj == NULL) K = 0, v = NULL;
  if (K > 0 && v == NULL && K != D) return -1;
  if (s->rows < 1 + K) return -1;
  const size_t cs = chunk_samples(s, K);
  const cnf_act act = s->cfg.act;
  for (size_t b0 = 0; b0 < B; b0 += cs) {
    const size_t Bc = B - b0 < cs ? B - b0 : cs, R = Bc * (1 + K);
    load_input(s, b0, Bc, B, K, z, v);
    forward_chunk(s, t, Bc, K, theta, 1);
    if (dz != NULL) memcpy(dz + b0 * D, s->layer[s->L - 1].Y, Bc * D * sizeof(double));

    /* seeds: ybar = a + 2 ck f on primal rows, w_b v_kb + 2 cj_b J v_kb
     * on tangent rows (the output rows Y hold f, then the J v_kb) */
    double *cur = s->bar0, *nxt = s->bar1;
    const double *Yo = s->layer[s->L - 1].Y;
    seed_primal(cur, a, ck, Yo, b0, Bc, D);
    for (size_t k = 0; k < K; k++) {
      double *tk = cur + (1 + k) * Bc * D;
      const double *jk = Yo + (1 + k) * Bc * D;
      for (size_t j = 0; j < Bc; j++) {
        double wb = w != NULL ? w[b0 + j] : 0.0, cb = cj != NULL ? 2.0 * cj[b0 + j] : 0.0;
        for (size_t d = 0; d < D; d++)
          tk[j * D + d] =
              (v != NULL ? wb * v[((k * B) + b0 + j) * D + d] : (d == k ? wb : 0.0)) +
              cb * jk[j * D + d];
      }
    }

    for (size_t l = s->L; l-- > 0;) {
      mlp_layer *ly = &s->layer[l];
      lparams p = layer_params(s, l, theta);
      const size_t in = ly->in, out = ly->out;
      double *gW = gth != NULL ? gth + ly->off : NULL;
      double *gb = gW != NULL ? gW + out * in : NULL;

      if (s->cfg.layer == CNF_LAYER_CONCATSQUASH) {
        /* one pass over the rows: gammabar, the wb and b column sums of
         * the primal rows, and ubar = ybar * gamma in place */
        double *g = s->gate, *gbar = s->acc;
        for (size_t c = 0; c < out; c++) {
          g[c] = sigmoid(p.wg[c] * t + p.bg[c]);
          gbar[c] = 0.0;
        }
        if (gth != NULL) {
          double *gwb = gb + out, *gwg = gwb + out, *gbg = gwg + out;
          for (size_t r = 0; r < Bc; r++) {
            double *yb = cur + r * out;
            const double *u = ly->U + r * out;
#pragma omp simd
            for (size_t c = 0; c < out; c++) {
              gbar[c] += yb[c] * u[c];
              gwb[c] += t * yb[c];
              yb[c] *= g[c];
              gb[c] += 1.0 * yb[c];
            }
          }
          for (size_t r = Bc; r < R; r++) {
            double *yb = cur + r * out;
            const double *u = ly->U + r * out;
#pragma omp simd
            for (size_t c = 0; c < out; c++) {
              gbar[c] += yb[c] * u[c];
              yb[c] *= g[c];
            }
          }
          for (size_t c = 0; c < out; c++) {
            double dg = gbar[c] * g[c] * (1.0 - g[c]);
            gwg[c] += dg * t;
            gbg[c] += dg;
          }
        } else {
          for (size_t r = 0; r < R; r++) {
            double *yb = cur + r * out;
#pragma omp simd
            for (size_t c = 0; c < out; c++) yb[c] *= g[c];
          }
        }
      } else if (gth != NULL) {
        colsum_add(gb, cur, Bc, out, 1.0);
        if (s->cfg.layer == CNF_LAYER_CONCAT) colsum_add(gb + out, cur, Bc, out, t);
      }
      /* cur now holds ubar (R, out); at the input only the primal rows'
       * xbar are wanted */
      linear_backward(ly, p.W, cur, R, l == 0 ? Bc : R, gW, nxt);
      if (l == 0) {
        memcpy(gz + b0 * D, nxt, Bc * D * sizeof(double));
        break;
      }
      act_backward(act, Bc * in, K, s->layer[l - 1].Y, ly->X, nxt);
      double *tmp = cur;
      cur = nxt;
      nxt = tmp;
    }
  }
  return 0;
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

/* The gate of layer p at time t into g (out): once per row and layer, so
 * vectorised (libmvec's exp, equal to the scalar one within an ulp). */
static void gate_at(const lparams *p, double t, size_t out, double *restrict g) {
  const double *restrict wg = p->wg, *restrict bg = p->bg;
#pragma omp simd
  for (size_t c = 0; c < out; c++) g[c] = 1.0 / (1.0 + exp(-(wg[c] * t + bg[c])));
}

/* Forward of the Bc loaded primal rows at times ts (Bc); keep as in
 * forward_chunk. */
static void forward_rows_chunk(mlp_state *s, const double *ts, size_t Bc, const double *theta,
                               int keep) {
  const int sq = s->cfg.layer == CNF_LAYER_CONCATSQUASH;
  for (size_t l = 0; l < s->L; l++) {
    mlp_layer *ly = &s->layer[l];
    lparams p = layer_params(s, l, theta);
    const size_t in = ly->in, out = ly->out;
    double *Y = ly->Y;
    double *U = sq && keep ? ly->U : Y;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Bc, (int)out, (int)in, 1.0, ly->X,
                (int)in, p.W, (int)in, 0.0, U, (int)out);
    double *g = s->gate;
    for (size_t r = 0; r < Bc; r++) {
      const double t = ts[r];
      double *u = U + r * out, *y = Y + r * out;
      if (sq && U != Y) {
        gate_at(&p, t, out, g);
#pragma omp simd
        for (size_t c = 0; c < out; c++) {
          u[c] += p.b[c];
          y[c] = u[c] * g[c] + p.wb[c] * t;
        }
      } else if (sq) {
        gate_at(&p, t, out, g);
#pragma omp simd
        for (size_t c = 0; c < out; c++) y[c] = (y[c] + p.b[c]) * g[c] + p.wb[c] * t;
      } else {
#pragma omp simd
        for (size_t c = 0; c < out; c++) y[c] += p.b[c] + (p.wt != NULL ? p.wt[c] * t : 0.0);
      }
    }
    if (l + 1 < s->L) act_forward(s->cfg.act, Bc * out, Y, s->layer[l + 1].X);
  }
}

static int ser_f_rows(void *sv, const double *ts, size_t B, const double *z, const double *theta,
                      double *dz) {
  mlp_state *s = sv;
  const size_t D = s->cfg.dim, cs = chunk_samples(s, 0);
  for (size_t b0 = 0; b0 < B; b0 += cs) {
    const size_t Bc = B - b0 < cs ? B - b0 : cs;
    load_input(s, b0, Bc, B, 0, z, NULL);
    forward_rows_chunk(s, ts + b0, Bc, theta, 0);
    memcpy(dz + b0 * D, s->layer[s->L - 1].Y, Bc * D * sizeof(double));
  }
  return 0;
}

static int ser_vjp_rows(void *sv, const double *ts, size_t B, const double *z, const double *theta,
                        const double *a, const double *ck, double *dz, double *gz, double *gth) {
  mlp_state *s = sv;
  const size_t D = s->cfg.dim, cs = chunk_samples(s, 0);
  const cnf_layer kind = s->cfg.layer;
  for (size_t b0 = 0; b0 < B; b0 += cs) {
    const size_t Bc = B - b0 < cs ? B - b0 : cs;
    load_input(s, b0, Bc, B, 0, z, NULL);
    forward_rows_chunk(s, ts + b0, Bc, theta, 1);
    if (dz != NULL) memcpy(dz + b0 * D, s->layer[s->L - 1].Y, Bc * D * sizeof(double));
    /* the seed a + 2 ck f (the output rows Y hold f) */
    double *cur = s->bar0, *nxt = s->bar1;
    seed_primal(cur, a, ck, s->layer[s->L - 1].Y, b0, Bc, D);
    for (size_t l = s->L; l-- > 0;) {
      mlp_layer *ly = &s->layer[l];
      lparams p = layer_params(s, l, theta);
      const size_t in = ly->in, out = ly->out;
      double *gW = gth != NULL ? gth + ly->off : NULL;
      double *gb = gW != NULL ? gW + out * in : NULL;
      /* ybar -> ubar in place, with the bias and time sums */
      for (size_t r = 0; r < Bc; r++) {
        const double t = ts[b0 + r];
        double *yb = cur + r * out;
        if (kind == CNF_LAYER_CONCATSQUASH) {
          double *g = s->gate;
          gate_at(&p, t, out, g);
          if (gth != NULL) {
            double *gwb = gb + out, *gwg = gwb + out, *gbg = gwg + out;
            const double *u = ly->U + r * out;
#pragma omp simd
            for (size_t c = 0; c < out; c++) {
              double dg = yb[c] * u[c] * g[c] * (1.0 - g[c]);
              gwg[c] += dg * t;
              gbg[c] += dg;
              gwb[c] += t * yb[c];
              yb[c] *= g[c];
              gb[c] += yb[c];
            }
          } else {
#pragma omp simd
            for (size_t c = 0; c < out; c++) yb[c] *= g[c];
          }
        } else if (gth != NULL) {
          double *gwt = kind == CNF_LAYER_CONCAT ? gb + out : NULL;
#pragma omp simd
          for (size_t c = 0; c < out; c++) gb[c] += yb[c];
          if (gwt != NULL)
#pragma omp simd
            for (size_t c = 0; c < out; c++) gwt[c] += t * yb[c];
        }
      }
      linear_backward(ly, p.W, cur, Bc, Bc, gW, l == 0 && gz == NULL ? NULL : nxt);
      if (l == 0) {
        if (gz != NULL) memcpy(gz + b0 * D, nxt, Bc * D * sizeof(double));
        break;
      }
      act_backward(s->cfg.act, Bc * in, 0, s->layer[l - 1].Y, ly->X, nxt);
      double *tmp = cur;
      cur = nxt;
      nxt = tmp;
    }
  }
  return 0;
}

/* ---- threads -------------------------------------------------------------
 * With n > 1 threads (cnf_dyn_mlp_set_threads) every op splits the batch
 * into n contiguous ranges of rows, b in [t B / n, (t + 1) B / n), each run
 * by the serial op on a state of its own (its own workspace).  Rows are
 * independent, so f, div, J v and the z-gradient are the serial ones; the
 * parameter gradient is the sum of the n partial sums, added in thread
 * order, so a given thread count always gives the same bits.  Tangent sets
 * (K, B, D) are strided by B: each thread copies its rows of v into a
 * buffer of its own (and J v back), sized by reserve, never in an op.
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

static int par_use(const mlp_state *s, size_t B, size_t K) {
  return s->nthreads > 1 && s->pool != NULL && B * (1 + K) >= s->nthreads * MLP_PAR_MIN_ROWS && B <= s->par_B &&
         K <= s->par_K && s->par_mem != NULL;
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

/* The workers: persistent threads that sleep on a condition variable
 * between calls (no spinning, so a busy machine loses nothing to them).  A
 * call publishes its arguments under a new generation number, runs share 0
 * itself, and waits until the n - 1 workers are done. */
typedef struct pool_arg {
  struct mlp_pool *pool;
  size_t t;
} pool_arg;

typedef struct mlp_pool {
  mlp_state *s;
  size_t n;                 /* threads, the caller included */
  size_t started;           /* workers created */
  pthread_t tid[CNF_MLP_MAX_THREADS];
  pool_arg arg[CNF_MLP_MAX_THREADS];
  pthread_mutex_t mu;
  pthread_cond_t go, fin;
  unsigned long gen;        /* call number */
  size_t pending;           /* workers still running this call */
  int quit;
  const par_args *job;
  int rcs[CNF_MLP_MAX_THREADS];
} mlp_pool;

static void *pool_main(void *arg) {
  const pool_arg *a = arg;
  mlp_pool *p = a->pool;
  unsigned long seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->gen == seen && !p->quit) pthread_cond_wait(&p->go, &p->mu);
    if (p->quit) break;
    seen = p->gen;
    const par_args *job = p->job;
    pthread_mutex_unlock(&p->mu);
    int rc = par_run(p->s, job, a->t);
    pthread_mutex_lock(&p->mu);
    p->rcs[a->t] = rc;
    if (--p->pending == 0) pthread_cond_signal(&p->fin);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void pool_free(mlp_pool *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  p->quit = 1;
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
  p->pending = n - 1;
  p->gen++;
  pthread_cond_broadcast(&p->go);
  pthread_mutex_unlock(&p->mu);
  p->rcs[0] = par_run(s, pa, 0);
  pthread_mutex_lock(&p->mu);
  while (p->pending > 0) pthread_cond_wait(&p->fin, &p->mu);
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
  if (!par_use(s, B, 0)) return ser_f(sv, t, B, z, theta, dz);
  par_args pa = {.op = PAR_F, .t = t, .B = B, .z = z, .theta = theta, .dz = dz};
  return par_dispatch(s, &pa);
}

static int par_jvp(void *sv, double t, size_t B, size_t K, const double *z,
                   const double *theta, const double *v, double *dz, double *jv) {
  mlp_state *s = sv;
  if (!par_use(s, B, K)) return ser_jvp(sv, t, B, K, z, theta, v, dz, jv);
  par_args pa = {.op = PAR_JVP, .t = t, .B = B, .K = K, .z = z, .theta = theta, .v = v,
                 .dz = dz, .jv = jv};
  return par_dispatch(s, &pa);
}

static int par_f_div(void *sv, double t, size_t B, size_t K, const double *z,
                     const double *theta, const double *v, double *dz, double *div) {
  mlp_state *s = sv;
  if (!par_use(s, B, K)) return ser_f_div(sv, t, B, K, z, theta, v, dz, div);
  par_args pa = {.op = PAR_F_DIV, .t = t, .B = B, .K = K, .z = z, .theta = theta, .v = v,
                 .dz = dz, .div = div};
  return par_dispatch(s, &pa);
}

static int par_vjp_reg(void *sv, double t, size_t B, size_t K, const double *z,
                       const double *theta, const double *a, const double *w, const double *ck,
                       const double *cj, const double *v, double *dz, double *gz, double *gth) {
  mlp_state *s = sv;
  const size_t Kt = w == NULL && cj == NULL ? 0 : K;
  if (!par_use(s, B, Kt)) return ser_vjp_reg(sv, t, B, K, z, theta, a, w, ck, cj, v, dz, gz, gth);
  par_args pa = {.op = PAR_VJP, .t = t, .B = B, .K = Kt, .z = z, .theta = theta,
                 .v = Kt > 0 ? v : NULL, .a = a, .w = w, .ck = ck, .cj = cj, .dz = dz, .gz = gz,
                 .gth = gth};
  return par_dispatch(s, &pa);
}

static int par_f_rows(void *sv, const double *ts, size_t B, const double *z, const double *theta,
                      double *dz) {
  mlp_state *s = sv;
  if (!par_use(s, B, 0)) return ser_f_rows(sv, ts, B, z, theta, dz);
  par_args pa = {.op = PAR_F_ROWS, .ts = ts, .B = B, .z = z, .theta = theta, .dz = dz};
  return par_dispatch(s, &pa);
}

static int par_vjp_rows(void *sv, const double *ts, size_t B, const double *z, const double *theta,
                        const double *a, const double *ck, double *dz, double *gz, double *gth) {
  mlp_state *s = sv;
  if (!par_use(s, B, 0)) return ser_vjp_rows(sv, ts, B, z, theta, a, ck, dz, gz, gth);
  par_args pa = {.op = PAR_VJP_ROWS, .ts = ts, .B = B, .z = z, .theta = theta, .a = a, .ck = ck};
  pa.dz = dz, pa.gz = gz, pa.gth = gth;
  return par_dispatch(s, &pa);
}

static int mlp_vjp(void *sv, double t, size_t B, size_t K, const double *z,
                   const double *theta, const double *a, const double *w,
                   const double *v, double *dz, double *gz, double *gth) {
  return par_vjp_reg(sv, t, B, K, z, theta, a, w, NULL, NULL, v, dz, gz, gth);
}

/* (Re)allocate the workspace for `rows` stacked rows: one allocation,
 * pointed into per layer.  Outside the hot path only (create, reserve). */
static int workspace(mlp_state *s, size_t rows) {
  size_t total = 2 * s->wmax + 2 * rows * s->wmax;
  for (size_t l = 0; l < s->L; l++) {
    const mlp_layer *ly = &s->layer[l];
    total += rows * (ly->in + ly->out);
    if (s->cfg.layer == CNF_LAYER_CONCATSQUASH) total += rows * ly->out;
  }
  double *mem = cnf__calloc(total, sizeof(double));
  if (mem == NULL) return CNF_ENOMEM;
  cnf__free(s->mem);
  s->mem = mem;
  s->rows = rows;
  double *p = mem;
  for (size_t l = 0; l < s->L; l++) {
    mlp_layer *ly = &s->layer[l];
    ly->X = p, p += rows * ly->in;
    ly->Y = p, p += rows * ly->out;
    ly->U = NULL;
    if (s->cfg.layer == CNF_LAYER_CONCATSQUASH) ly->U = p, p += rows * ly->out;
  }
  s->gate = p, p += s->wmax;
  s->acc = p, p += s->wmax;
  s->bar0 = p, p += rows * s->wmax;
  s->bar1 = p;
  return 0;
}

/* Make room for one sample with K tangent sets (the chunk shrinks as K
 * grows, to one sample per chunk at worst), in every thread's state, and
 * the split's buffers for B samples. */
static int mlp_reserve(void *sv, size_t B, size_t K) {
  mlp_state *s = sv;
  if (s->rows < 1 + K && workspace(s, 1 + K) != 0) return CNF_ENOMEM;
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
  /* the split's buffers come with the next reserve (the solvers call it) */
  return 0;
}

size_t cnf_dyn_mlp_threads(const cnf_dyn *dyn) {
  if (dyn == NULL || dyn->type != &mlp_type) return 1;
  return ((const mlp_state *)dyn->state)->nthreads;
}
