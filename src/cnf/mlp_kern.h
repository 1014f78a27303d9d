/* mlp_kern.h: the MLP's chunk kernels and serial ops (src/cnf/mlp.c), in one
 * precision.  mlp.c includes this file twice: with T = double (the float64
 * network) and with T = float (the float32 one, sgemm and cnf__tanhf); the
 * math is that of mlp.c's opening comment either way.  Inputs (z, probes,
 * seeds) and outputs (f, J v, div, the gradients) are double in both: the
 * float32 ops convert their inputs as they load a chunk, accumulate the
 * divergence in double, and add each chunk's float parameter gradient into
 * the caller's double gth, so the solver's state, its error control and
 * the log-density stay float64.
 *
 * The includer defines
 *   T              double or float
 *   FN(name)       name with the precision's suffix (name_d, name_s)
 *   MLP_SINGLE     0 or 1
 *   GEMM           cblas_dgemm or cblas_sgemm
 *   TANH_N         cnf__tanh or cnf__tanhf
 *   EXP_T, LOG1P_T, FMAX_T, FABS_T   the libm functions of T
 *   WS             the state's workspace member of T (w64 or w32)
 * and this file undefines them at its end, ready for the next precision. */

#define C_(x) ((T)(x))

/* ---- activations ---------------------------------------------------- */

static void FN(act_forward)(cnf_act act, size_t n, const T *restrict y, T *restrict x) {
  if (act == CNF_ACT_TANH) {
    TANH_N(n, y, x); /* act.c: AVX2/FMA kernel or libm */
  } else {
    /* softplus(y) = max(y, 0) + log1p(exp(-|y|)), stable for all y */
#pragma omp simd
    for (size_t i = 0; i < n; i++) x[i] = FMAX_T(y[i], C_(0.0)) + LOG1P_T(EXP_T(-FABS_T(y[i])));
  }
}

/* sigma'(y) given y and x = sigma(y), into d. */
static void FN(act_deriv)(cnf_act act, size_t n, const T *restrict y, const T *restrict x,
                          T *restrict d) {
  if (act == CNF_ACT_TANH) {
#pragma omp simd
    for (size_t i = 0; i < n; i++) d[i] = C_(1.0) - x[i] * x[i];
  } else {
#pragma omp simd
    for (size_t i = 0; i < n; i++) d[i] = C_(1.0) / (C_(1.0) + EXP_T(-y[i]));
  }
}

static inline T FN(act_d2)(cnf_act act, T x, T d1) {
  /* sigma'' from x = sigma(y) and d1 = sigma'(y) */
  return act == CNF_ACT_TANH ? C_(-2.0) * x * d1 : d1 * (C_(1.0) - d1);
}

/* ---- one chunk forward ---------------------------------------------- */

/* Layer parameter views into the weights of this precision. */
typedef struct FN(lparams) {
  const T *W, *b, *wb, *wg, *bg, *wt;
} FN(lparams);

static FN(lparams) FN(layer_params)(const mlp_state *s, size_t l, const T *theta) {
  const mlp_layer *ly = &s->layer[l];
  FN(lparams) p = {0};
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

/* The weights in T: theta itself in double; in float the state's copy,
 * converted on the first call of a solve (cnf__dyn_mlp_precision holds it
 * for the solve) and on every call outside one. */
static const T *FN(weights)(mlp_state *s, const double *theta) {
#if MLP_SINGLE
  if (!(s->hold && s->th32_src == theta)) {
#pragma omp simd
    for (size_t i = 0; i < s->P; i++) s->th32[i] = (float)theta[i];
    s->th32_src = theta;
  }
  return s->th32;
#else
  (void)s;
  return theta;
#endif
}

/* dst (n) = src (n), converted to T; store: back to double. */
static void FN(load)(T *restrict dst, const double *restrict src, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) dst[i] = (T)src[i];
}
static void FN(store)(double *restrict dst, const T *restrict src, size_t n) {
#pragma omp simd
  for (size_t i = 0; i < n; i++) dst[i] = (double)src[i];
}

/* Fill the input rows of the chunk: Bc primal rows from z (samples b0..),
 * then K blocks of Bc tangent rows from v (K, B, D), or e_k if v is NULL. */
static void FN(load_input)(mlp_state *s, size_t b0, size_t Bc, size_t B, size_t K, const double *z,
                           const double *v) {
  size_t D = s->cfg.dim;
  T *X = s->WS.ly[0].X;
  FN(load)(X, z + b0 * D, Bc * D);
  for (size_t k = 0; k < K; k++) {
    T *Xk = X + (1 + k) * Bc * D;
    if (v != NULL) {
      FN(load)(Xk, v + (k * B + b0) * D, Bc * D);
    } else {
      memset(Xk, 0, Bc * D * sizeof(T));
      for (size_t j = 0; j < Bc; j++) Xk[j * D + k] = C_(1.0);
    }
  }
}

/* Forward through all layers for a loaded chunk of Bc samples and K
 * tangent blocks.  The output rows are the last layer's Y.  With keep,
 * every layer's U (concatsquash) and Y rows are stored for the reverse
 * sweep; without, u is computed in place in Y and the hidden layers'
 * tangent Y rows are not written (only the output layer's are).
 *
 * One pass over the primal rows per layer (bias, gate, activation of each
 * row while it is in L1) and one over the tangent rows (gate and
 * sigma'(y) ydot, sigma' = 1 - x^2 recomputed from the primal x for tanh),
 * each element computed by the same expressions as separate passes would. */
static void FN(forward_chunk)(mlp_state *s, double t, size_t Bc, size_t K, const T *theta,
                              int keep) {
  const size_t R = Bc * (1 + K);
  const int sq = s->cfg.layer == CNF_LAYER_CONCATSQUASH;
  const cnf_act act = s->cfg.act;
  const T tt = (T)t;
  for (size_t l = 0; l < s->L; l++) {
    const mlp_layer *ly = &s->layer[l];
    FN(lparams) p = FN(layer_params)(s, l, theta);
    const size_t in = ly->in, out = ly->out;
    const int last = l + 1 == s->L;
    T *Y = s->WS.ly[l].Y;
    T *U = sq && keep ? s->WS.ly[l].U : Y;
    T *Xn = last ? NULL : s->WS.ly[l + 1].X;
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)R, (int)out, (int)in, C_(1.0), s->WS.ly[l].X,
         (int)in, p.W, (int)in, C_(0.0), U, (int)out);
    const T *g = s->WS.gate;
    if (sq) {
      T *gw = s->WS.gate;
      for (size_t c = 0; c < out; c++) gw[c] = (T)sigmoid((double)p.wg[c] * t + (double)p.bg[c]);
    } else {
      T *acc = s->WS.acc;
      for (size_t c = 0; c < out; c++) acc[c] = p.b[c] + (p.wt != NULL ? p.wt[c] * tt : C_(0.0));
    }
    /* primal rows: y, then x = sigma(y) into the next layer, in blocks of
     * MLP_ACT_ROWS rows (still in L1 when the activation reads them) */
    for (size_t r0 = 0; r0 < Bc; r0 += MLP_ACT_ROWS) {
      const size_t r1 = Bc - r0 < MLP_ACT_ROWS ? Bc : r0 + MLP_ACT_ROWS;
      for (size_t r = r0; r < r1; r++) {
        T *y = Y + r * out;
        if (sq && U != Y) {
          T *u = U + r * out;
#pragma omp simd
          for (size_t c = 0; c < out; c++) {
            u[c] += p.b[c];
            y[c] = u[c] * g[c] + p.wb[c] * tt;
          }
        } else if (sq) {
#pragma omp simd
          for (size_t c = 0; c < out; c++) {
            T uc = y[c] + p.b[c];
            y[c] = uc * g[c] + p.wb[c] * tt;
          }
        } else {
          const T *acc = s->WS.acc;
#pragma omp simd
          for (size_t c = 0; c < out; c++) y[c] += acc[c];
        }
      }
      if (!last) FN(act_forward)(act, (r1 - r0) * out, Y + r0 * out, Xn + r0 * out);
    }
    if (K == 0) continue;
    /* tangent rows: ydot = udot gamma; x' = sigma'(y) ydot */
    if (last) {
      if (sq)
        for (size_t r = Bc; r < R; r++) {
          const T *u = U + r * out;
          T *y = Y + r * out;
#pragma omp simd
          for (size_t c = 0; c < out; c++) y[c] = u[c] * g[c];
        }
      continue;
    }
    const T *d = NULL;
    if (act != CNF_ACT_TANH) { /* sigma'(y) once, (Bc, out) */
      T *dw = s->WS.bar0;
      FN(act_deriv)(act, Bc * out, Y, Xn, dw);
      d = dw;
    }
    for (size_t k = 0; k < K; k++)
      for (size_t j = 0; j < Bc; j++) {
        const size_t r = (1 + k) * Bc + j;
        const T *u = U + r * out, *x = Xn + j * out;
        T *y = Y + r * out, *xk = Xn + r * out;
        if (d != NULL) {
          const T *dj = d + j * out;
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
            T yc = u[c] * g[c];
            y[c] = yc;
            xk[c] = (C_(1.0) - x[c] * x[c]) * yc;
          }
        } else if (sq) {
#pragma omp simd
          for (size_t c = 0; c < out; c++) xk[c] = (C_(1.0) - x[c] * x[c]) * (u[c] * g[c]);
        } else {
#pragma omp simd
          for (size_t c = 0; c < out; c++) xk[c] = (C_(1.0) - x[c] * x[c]) * y[c];
        }
      }
  }
}

/* ---- ops ------------------------------------------------------------ */

static int FN(ser_f)(mlp_state *s, double t, size_t B, const double *z, const double *theta,
                     double *dz) {
  const size_t D = s->cfg.dim, cs = chunk_samples(s, 0);
  const T *th = FN(weights)(s, theta);
  for (size_t b0 = 0; b0 < B; b0 += cs) {
    size_t Bc = B - b0 < cs ? B - b0 : cs;
    FN(load_input)(s, b0, Bc, B, 0, z, NULL);
    FN(forward_chunk)(s, t, Bc, 0, th, 0);
    FN(store)(dz + b0 * D, s->WS.ly[s->L - 1].Y, Bc * D);
  }
  return 0;
}

/* One forward pass with K tangent sets over the batch, chunk by chunk:
 * f into dz, the tangents J v into jv (K, B, D), and the divergence (the
 * exact trace when v is NULL and K = D, else sum_k v_k^T J v_k, the
 * Hutchinson estimate before its 1 / K) into div; any of the three may be
 * NULL. */
static int FN(ser_tangents)(mlp_state *s, double t, size_t B, size_t K, const double *z,
                            const double *theta, const double *v, double *dz, double *jv,
                            double *div) {
  const size_t D = s->cfg.dim, cs = chunk_samples(s, K);
  if (v == NULL && K != D) return -1;
  if (s->rows < 1 + K) return -1; /* workspace too small for one sample */
  const T *th = FN(weights)(s, theta);
  for (size_t b0 = 0; b0 < B; b0 += cs) {
    size_t Bc = B - b0 < cs ? B - b0 : cs;
    FN(load_input)(s, b0, Bc, B, K, z, v);
    FN(forward_chunk)(s, t, Bc, K, th, 0);
    const T *Y = s->WS.ly[s->L - 1].Y;
    if (dz != NULL) FN(store)(dz + b0 * D, Y, Bc * D);
    if (jv != NULL)
      for (size_t k = 0; k < K; k++)
        FN(store)(jv + (k * B + b0) * D, Y + (1 + k) * Bc * D, Bc * D);
    if (div == NULL) continue;
    for (size_t j = 0; j < Bc; j++) div[b0 + j] = 0.0;
    for (size_t k = 0; k < K; k++) {
      const T *Yk = Y + (1 + k) * Bc * D;
      if (v == NULL) {
        for (size_t j = 0; j < Bc; j++) div[b0 + j] += (double)Yk[j * D + k];
      } else {
        const double *vk = v + (k * B + b0) * D;
        for (size_t j = 0; j < Bc; j++) {
          double sum = 0.0;
          for (size_t d = 0; d < D; d++) sum += vk[j * D + d] * (double)Yk[j * D + d];
          div[b0 + j] += sum;
        }
      }
    }
  }
  return 0;
}

static int FN(ser_jvp)(mlp_state *s, double t, size_t B, size_t K, const double *z,
                       const double *theta, const double *v, double *dz, double *jv) {
  return FN(ser_tangents)(s, t, B, K, z, theta, v, dz, jv, NULL);
}

static int FN(ser_f_div)(mlp_state *s, double t, size_t B, size_t K, const double *z,
                         const double *theta, const double *v, double *dz, double *div) {
  return FN(ser_tangents)(s, t, B, K, z, theta, v, dz, NULL, div);
}

/* Column sums of rows [0, n) of M (n, m) into out (m), added with weight c. */
static void FN(colsum_add)(T *out, const T *M, size_t n, size_t m, T c) {
  for (size_t r = 0; r < n; r++) {
    const T *row = M + r * m;
#pragma omp simd
    for (size_t j = 0; j < m; j++) out[j] += c * row[j];
  }
}

/* The primal rows' seeds of the reverse sweep: cur (Bc, D) = a + 2 ck f
 * for the Bc samples from b0, f the output rows Yo; ck may be NULL. */
static void FN(seed_primal)(T *cur, const double *a, const double *ck, const T *Yo, size_t b0,
                            size_t Bc, size_t D) {
  FN(load)(cur, a + b0 * D, Bc * D);
  if (ck != NULL)
    for (size_t j = 0; j < Bc; j++)
      for (size_t d = 0; d < D; d++) cur[j * D + d] += (T)(2.0 * ck[b0 + j]) * Yo[j * D + d];
}

/* A linear layer's reverse step from ubar (R, out): gW (out, in) += ubar^T x
 * over all R rows (skipped for gW NULL), then xbar (Rx, in) = ubar W over
 * the first Rx rows (skipped for xbar NULL); X the layer's input rows. */
static void FN(linear_backward)(const mlp_layer *ly, const T *X, const T *W, const T *ubar,
                                size_t R, size_t Rx, T *gW, T *xbar) {
  const size_t in = ly->in, out = ly->out;
  if (gW != NULL)
    GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)R, C_(1.0), ubar,
         (int)out, X, (int)in, C_(1.0), gW, (int)in);
  if (xbar != NULL)
    GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Rx, (int)in, (int)out, C_(1.0), ubar,
         (int)out, W, (int)in, C_(0.0), xbar, (int)in);
}

/* Through the activation x = sigma(y) of the layer below, in place on the
 * adjoints nxt ((1 + K) n: the primal block of n = Bc in elements, then the
 * K tangent blocks), with Y its input and X its output rows.  In blocks of
 * MLP_VJP_BLOCK elements, each a few vectorised passes: sigma'(y),
 * sec = sum_k ydot_k xdotbar_k (k outermost), the primal xbar, then the K
 * tangent ones. */
static void FN(act_backward)(cnf_act act, size_t n, size_t K, const T *Y, const T *X, T *nxt) {
  for (size_t i0 = 0; i0 < n; i0 += MLP_VJP_BLOCK) {
    const size_t m = n - i0 < MLP_VJP_BLOCK ? n - i0 : MLP_VJP_BLOCK;
    T d1[MLP_VJP_BLOCK], sec[MLP_VJP_BLOCK];
    FN(act_deriv)(act, m, Y + i0, X + i0, d1);
#pragma omp simd
    for (size_t i = 0; i < m; i++) sec[i] = C_(0.0);
    for (size_t k = 0; k < K; k++) {
      const T *yk = Y + (1 + k) * n + i0, *bk = nxt + (1 + k) * n + i0;
#pragma omp simd
      for (size_t i = 0; i < m; i++) sec[i] += yk[i] * bk[i];
    }
    const T *x = X + i0;
    T *xb = nxt + i0;
#pragma omp simd
    for (size_t i = 0; i < m; i++) xb[i] = d1[i] * xb[i] + FN(act_d2)(act, x[i], d1[i]) * sec[i];
    for (size_t k = 0; k < K; k++) {
      T *xk = nxt + (1 + k) * n + i0;
#pragma omp simd
      for (size_t i = 0; i < m; i++) xk[i] *= d1[i];
    }
  }
}

/* Where a chunk's parameter gradient accumulates: gth itself in double; in
 * float the state's g32, cleared here and added into gth by grad_flush. */
static T *FN(grad_begin)(mlp_state *s, double *gth) {
  if (gth == NULL) return NULL;
#if MLP_SINGLE
  memset(s->g32, 0, s->P * sizeof(float));
  return s->g32;
#else
  (void)s;
  return gth;
#endif
}
static void FN(grad_flush)(const mlp_state *s, double *gth) {
#if MLP_SINGLE
  if (gth == NULL) return;
  const float *restrict g = s->g32;
#pragma omp simd
  for (size_t i = 0; i < s->P; i++) gth[i] += (double)g[i];
#else
  (void)s, (void)gth;
#endif
}

/* 1 if the workspace holds the forward pass (keep) of the whole batch at
 * these inputs, which the last reverse sweep left there.  Only inside a
 * solve (hold: theta's and the probes' contents fixed); z is compared
 * value by value.  CVODES evaluates the backward right-hand side several
 * times at each step's time with the same interpolated z (the fixed-point
 * iterations), then the a_theta quadrature there: only a_z changes. */
static int FN(fwd_reuse)(const mlp_state *s, double t, size_t B, size_t K, const double *z,
                         const double *theta, const double *v) {
  return s->fwd_ok && s->hold && s->fwd_prec == s->prec && s->fwd_t == t && s->fwd_B == B &&
         s->fwd_K == K && s->fwd_theta == theta && s->fwd_v == v &&
         memcmp(s->fwd_z, z, B * s->cfg.dim * sizeof(double)) == 0;
}

static void FN(fwd_keep)(mlp_state *s, double t, size_t B, size_t K, const double *z,
                         const double *theta, const double *v) {
  if (!s->hold) return;
  memcpy(s->fwd_z, z, B * s->cfg.dim * sizeof(double));
  s->fwd_prec = s->prec, s->fwd_t = t, s->fwd_B = B, s->fwd_K = K;
  s->fwd_theta = theta, s->fwd_v = v;
  s->fwd_ok = 1;
}

static int FN(ser_vjp_reg)(mlp_state *s, double t, size_t B, size_t K, const double *z,
                           const double *theta, const double *a, const double *w, const double *ck,
                           const double *cj, const double *v, double *dz, double *gz, double *gth) {
  const size_t D = s->cfg.dim;
  if (w == NULL && cj == NULL) K = 0, v = NULL;
  if (K > 0 && v == NULL && K != D) return -1;
  if (s->rows < 1 + K) return -1;
  const size_t cs = chunk_samples(s, K);
  const cnf_act act = s->cfg.act;
  const T tt = (T)t;
  const T *th = FN(weights)(s, theta);
  const int whole = cs >= B; /* one chunk: its forward pass can stay */
  for (size_t b0 = 0; b0 < B; b0 += cs) {
    const size_t Bc = B - b0 < cs ? B - b0 : cs, R = Bc * (1 + K);
    if (!(whole && FN(fwd_reuse)(s, t, B, K, z, theta, v))) {
      FN(load_input)(s, b0, Bc, B, K, z, v);
      FN(forward_chunk)(s, t, Bc, K, th, 1);
      if (whole) FN(fwd_keep)(s, t, B, K, z, theta, v);
    }
    const T *Yo = s->WS.ly[s->L - 1].Y;
    if (dz != NULL) FN(store)(dz + b0 * D, Yo, Bc * D);
    T *gacc = FN(grad_begin)(s, gth);

    /* seeds: ybar = a + 2 ck f on primal rows, w_b v_kb + 2 cj_b J v_kb
     * on tangent rows (the output rows Y hold f, then the J v_kb) */
    T *cur = s->WS.bar0, *nxt = s->WS.bar1;
    FN(seed_primal)(cur, a, ck, Yo, b0, Bc, D);
    for (size_t k = 0; k < K; k++) {
      T *tk = cur + (1 + k) * Bc * D;
      const T *jk = Yo + (1 + k) * Bc * D;
      for (size_t j = 0; j < Bc; j++) {
        double wb = w != NULL ? w[b0 + j] : 0.0, cb = cj != NULL ? 2.0 * cj[b0 + j] : 0.0;
        for (size_t d = 0; d < D; d++)
          tk[j * D + d] =
              (T)((v != NULL ? wb * v[((k * B) + b0 + j) * D + d] : (d == k ? wb : 0.0)) +
                  cb * (double)jk[j * D + d]);
      }
    }

    for (size_t l = s->L; l-- > 0;) {
      const mlp_layer *ly = &s->layer[l];
      FN(lparams) p = FN(layer_params)(s, l, th);
      const size_t in = ly->in, out = ly->out;
      T *gW = gacc != NULL ? gacc + ly->off : NULL;
      T *gb = gW != NULL ? gW + out * in : NULL;
      const T *U = s->WS.ly[l].U;

      if (s->cfg.layer == CNF_LAYER_CONCATSQUASH) {
        /* one pass over the rows: gammabar, the wb and b column sums of
         * the primal rows, and ubar = ybar * gamma in place */
        T *g = s->WS.gate, *gbar = s->WS.acc;
        for (size_t c = 0; c < out; c++) {
          g[c] = (T)sigmoid((double)p.wg[c] * t + (double)p.bg[c]);
          gbar[c] = C_(0.0);
        }
        if (gW != NULL) {
          T *gwb = gb + out, *gwg = gwb + out, *gbg = gwg + out;
          for (size_t r = 0; r < Bc; r++) {
            T *yb = cur + r * out;
            const T *u = U + r * out;
#pragma omp simd
            for (size_t c = 0; c < out; c++) {
              gbar[c] += yb[c] * u[c];
              gwb[c] += tt * yb[c];
              yb[c] *= g[c];
              gb[c] += C_(1.0) * yb[c];
            }
          }
          for (size_t r = Bc; r < R; r++) {
            T *yb = cur + r * out;
            const T *u = U + r * out;
#pragma omp simd
            for (size_t c = 0; c < out; c++) {
              gbar[c] += yb[c] * u[c];
              yb[c] *= g[c];
            }
          }
          for (size_t c = 0; c < out; c++) {
            T dg = gbar[c] * g[c] * (C_(1.0) - g[c]);
            gwg[c] += dg * tt;
            gbg[c] += dg;
          }
        } else {
          for (size_t r = 0; r < R; r++) {
            T *yb = cur + r * out;
#pragma omp simd
            for (size_t c = 0; c < out; c++) yb[c] *= g[c];
          }
        }
      } else if (gW != NULL) {
        FN(colsum_add)(gb, cur, Bc, out, C_(1.0));
        if (s->cfg.layer == CNF_LAYER_CONCAT) FN(colsum_add)(gb + out, cur, Bc, out, tt);
      }
      /* cur now holds ubar (R, out); at the input only the primal rows'
       * xbar are wanted */
      FN(linear_backward)(ly, s->WS.ly[l].X, p.W, cur, R, l == 0 ? Bc : R, gW, nxt);
      if (l == 0) {
        FN(store)(gz + b0 * D, nxt, Bc * D);
        break;
      }
      FN(act_backward)(act, Bc * in, K, s->WS.ly[l - 1].Y, s->WS.ly[l].X, nxt);
      T *tmp = cur;
      cur = nxt;
      nxt = tmp;
    }
    FN(grad_flush)(s, gth);
  }
  return 0;
}

/* ---- per-row times (flow matching): see mlp.c ------------------------ */

/* The gate of layer p at time t into g (out): once per row and layer, so
 * vectorised (libmvec's exp, equal to the scalar one within an ulp). */
static void FN(gate_at)(const FN(lparams) * p, T t, size_t out, T *restrict g) {
  const T *restrict wg = p->wg, *restrict bg = p->bg;
#pragma omp simd
  for (size_t c = 0; c < out; c++) g[c] = C_(1.0) / (C_(1.0) + EXP_T(-(wg[c] * t + bg[c])));
}

/* Forward of the Bc loaded primal rows at times ts (Bc); keep as in
 * forward_chunk. */
static void FN(forward_rows_chunk)(mlp_state *s, const double *ts, size_t Bc, const T *theta,
                                   int keep) {
  const int sq = s->cfg.layer == CNF_LAYER_CONCATSQUASH;
  for (size_t l = 0; l < s->L; l++) {
    const mlp_layer *ly = &s->layer[l];
    FN(lparams) p = FN(layer_params)(s, l, theta);
    const size_t in = ly->in, out = ly->out;
    T *Y = s->WS.ly[l].Y;
    T *U = sq && keep ? s->WS.ly[l].U : Y;
    GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Bc, (int)out, (int)in, C_(1.0),
         s->WS.ly[l].X, (int)in, p.W, (int)in, C_(0.0), U, (int)out);
    T *g = s->WS.gate;
    for (size_t r = 0; r < Bc; r++) {
      const T t = (T)ts[r];
      T *u = U + r * out, *y = Y + r * out;
      if (sq && U != Y) {
        FN(gate_at)(&p, t, out, g);
#pragma omp simd
        for (size_t c = 0; c < out; c++) {
          u[c] += p.b[c];
          y[c] = u[c] * g[c] + p.wb[c] * t;
        }
      } else if (sq) {
        FN(gate_at)(&p, t, out, g);
#pragma omp simd
        for (size_t c = 0; c < out; c++) y[c] = (y[c] + p.b[c]) * g[c] + p.wb[c] * t;
      } else {
#pragma omp simd
        for (size_t c = 0; c < out; c++) y[c] += p.b[c] + (p.wt != NULL ? p.wt[c] * t : C_(0.0));
      }
    }
    if (l + 1 < s->L) FN(act_forward)(s->cfg.act, Bc * out, Y, s->WS.ly[l + 1].X);
  }
}

static int FN(ser_f_rows)(mlp_state *s, const double *ts, size_t B, const double *z,
                          const double *theta, double *dz) {
  const size_t D = s->cfg.dim, cs = chunk_samples(s, 0);
  const T *th = FN(weights)(s, theta);
  for (size_t b0 = 0; b0 < B; b0 += cs) {
    const size_t Bc = B - b0 < cs ? B - b0 : cs;
    FN(load_input)(s, b0, Bc, B, 0, z, NULL);
    FN(forward_rows_chunk)(s, ts + b0, Bc, th, 0);
    FN(store)(dz + b0 * D, s->WS.ly[s->L - 1].Y, Bc * D);
  }
  return 0;
}

static int FN(ser_vjp_rows)(mlp_state *s, const double *ts, size_t B, const double *z,
                            const double *theta, const double *a, const double *ck, double *dz,
                            double *gz, double *gth) {
  const size_t D = s->cfg.dim, cs = chunk_samples(s, 0);
  const cnf_layer kind = s->cfg.layer;
  const T *th = FN(weights)(s, theta);
  for (size_t b0 = 0; b0 < B; b0 += cs) {
    const size_t Bc = B - b0 < cs ? B - b0 : cs;
    FN(load_input)(s, b0, Bc, B, 0, z, NULL);
    FN(forward_rows_chunk)(s, ts + b0, Bc, th, 1);
    const T *Yo = s->WS.ly[s->L - 1].Y;
    if (dz != NULL) FN(store)(dz + b0 * D, Yo, Bc * D);
    T *gacc = FN(grad_begin)(s, gth);
    /* the seed a + 2 ck f (the output rows Y hold f) */
    T *cur = s->WS.bar0, *nxt = s->WS.bar1;
    FN(seed_primal)(cur, a, ck, Yo, b0, Bc, D);
    for (size_t l = s->L; l-- > 0;) {
      const mlp_layer *ly = &s->layer[l];
      FN(lparams) p = FN(layer_params)(s, l, th);
      const size_t in = ly->in, out = ly->out;
      T *gW = gacc != NULL ? gacc + ly->off : NULL;
      T *gb = gW != NULL ? gW + out * in : NULL;
      /* ybar -> ubar in place, with the bias and time sums */
      for (size_t r = 0; r < Bc; r++) {
        const T t = (T)ts[b0 + r];
        T *yb = cur + r * out;
        if (kind == CNF_LAYER_CONCATSQUASH) {
          T *g = s->WS.gate;
          FN(gate_at)(&p, t, out, g);
          if (gW != NULL) {
            T *gwb = gb + out, *gwg = gwb + out, *gbg = gwg + out;
            const T *u = s->WS.ly[l].U + r * out;
#pragma omp simd
            for (size_t c = 0; c < out; c++) {
              T dg = yb[c] * u[c] * g[c] * (C_(1.0) - g[c]);
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
        } else if (gW != NULL) {
          T *gwt = kind == CNF_LAYER_CONCAT ? gb + out : NULL;
#pragma omp simd
          for (size_t c = 0; c < out; c++) gb[c] += yb[c];
          if (gwt != NULL)
#pragma omp simd
            for (size_t c = 0; c < out; c++) gwt[c] += t * yb[c];
        }
      }
      FN(linear_backward)
      (ly, s->WS.ly[l].X, p.W, cur, Bc, Bc, gW, l == 0 && gz == NULL ? NULL : nxt);
      if (l == 0) {
        if (gz != NULL) FN(store)(gz + b0 * D, nxt, Bc * D);
        break;
      }
      FN(act_backward)(s->cfg.act, Bc * in, 0, s->WS.ly[l - 1].Y, s->WS.ly[l].X, nxt);
      T *tmp = cur;
      cur = nxt;
      nxt = tmp;
    }
    FN(grad_flush)(s, gth);
  }
  return 0;
}

#undef C_
#undef T
#undef FN
#undef MLP_SINGLE
#undef GEMM
#undef TANH_N
#undef EXP_T
#undef LOG1P_T
#undef FMAX_T
#undef FABS_T
#undef WS
