/* layers.c: the layer kinds of cnf_layers.h, one ops table each, and the
 * public wrappers that feed them CNF_TF_CHUNK rows at a time.
 *
 * Notation per row: x (D) input, z (D) output, ld = log|det dz/dx|, and the
 * reverse sweep's seeds a = dS/dz (D), c = dS/dld, with
 * S = sum_rows (a . z + c ld).  Each kind states its map, its log-det and
 * the derivatives its backward op implements. */
#include <math.h>
#include <string.h>

#include "layers_impl.h"

#define CLAMP 3.0 /* coupling and MADE log-scales: s = CLAMP tanh(raw / CLAMP) */

static double softplus(double x) {
  return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}
static double sigm(double x) {
  return 1.0 / (1.0 + exp(-x));
}
/* log cosh u without overflow */
static double logcosh(double u) {
  double a = fabs(u);
  return a + log1p(exp(-2.0 * a)) - 0.69314718055994530942; /* log 2 */
}

/* ---- affine: z = L (U x) + b ---------------------------------------------
 * theta = M (D x D), b (D): L = I + strictly lower part of M, U = strictly
 * upper part of M + diag(exp(M_ii)).  ld = sum_i M_ii.  With y = U x:
 *   dS/db = a,  dS/dL_ij = a_i y_j (i > j),  gy = L^T a,
 *   dS/dU_ij = gy_i x_j (i < j),  dS/dM_ii = gy_i exp(M_ii) x_i + c,
 *   gx = U^T gy.
 * Inverse: y = L^{-1} (z - b) by forward and x = U^{-1} y by back
 * substitution, O(D^2) per row. */
static size_t affine_np(const cnf_tf_config *c) {
  return c->dim * c->dim + c->dim;
}
static void affine_init(const cnf_tf *tf, double *th, gsl_rng *rng) {
  (void)rng;
  memset(th, 0, tf->P * sizeof(double));
}
static int affine_fwd(cnf_tf *tf, const double *th, size_t B, const double *x, double *z,
                      double *ld) {
  const size_t D = tf->cfg.dim;
  const double *M = th, *b = th + D * D;
  double *y = tf->w[0], tr = 0.0;
  for (size_t i = 0; i < D; i++) tr += M[i * D + i];
  for (size_t r = 0; r < B; r++) {
    const double *xr = x + r * D;
    double *zr = z + r * D;
    for (size_t i = 0; i < D; i++) {
      double s = exp(M[i * D + i]) * xr[i];
      for (size_t j = i + 1; j < D; j++) s += M[i * D + j] * xr[j];
      y[i] = s;
    }
    for (size_t i = 0; i < D; i++) {
      double s = y[i] + b[i];
      for (size_t j = 0; j < i; j++) s += M[i * D + j] * y[j];
      zr[i] = s;
    }
    ld[r] = tr;
  }
  return 0;
}
static int affine_inv(cnf_tf *tf, const double *th, size_t B, const double *z, double *x,
                      double *ld) {
  const size_t D = tf->cfg.dim;
  const double *M = th, *b = th + D * D;
  double *y = tf->w[0], tr = 0.0;
  for (size_t i = 0; i < D; i++) tr += M[i * D + i];
  for (size_t r = 0; r < B; r++) {
    const double *zr = z + r * D;
    double *xr = x + r * D;
    for (size_t i = 0; i < D; i++) {
      double s = zr[i] - b[i];
      for (size_t j = 0; j < i; j++) s -= M[i * D + j] * y[j];
      y[i] = s;
    }
    for (size_t i = D; i-- > 0;) {
      double s = y[i];
      for (size_t j = i + 1; j < D; j++) s -= M[i * D + j] * xr[j];
      xr[i] = s * exp(-M[i * D + i]);
    }
    ld[r] = tr;
  }
  return 0;
}
static int affine_bwd(cnf_tf *tf, const double *th, size_t B, const double *x, const double *a,
                      const double *c, double *gx, double *gth) {
  const size_t D = tf->cfg.dim;
  const double *M = th;
  double *y = tf->w[0], *gy = tf->w[1];
  double *gM = gth, *gb = gth + D * D;
  for (size_t r = 0; r < B; r++) {
    const double *xr = x + r * D, *ar = a + r * D;
    for (size_t i = 0; i < D; i++) {
      double s = exp(M[i * D + i]) * xr[i];
      for (size_t j = i + 1; j < D; j++) s += M[i * D + j] * xr[j];
      y[i] = s;
    }
    for (size_t j = 0; j < D; j++) {
      double s = ar[j];
      for (size_t i = j + 1; i < D; i++) s += M[i * D + j] * ar[i];
      gy[j] = s;
    }
    for (size_t i = 0; i < D; i++) {
      gb[i] += ar[i];
      for (size_t j = 0; j < i; j++) gM[i * D + j] += ar[i] * y[j];
      for (size_t j = i + 1; j < D; j++) gM[i * D + j] += gy[i] * xr[j];
      gM[i * D + i] += gy[i] * exp(M[i * D + i]) * xr[i] + c[r];
    }
    for (size_t j = 0; j < D; j++) {
      double s = exp(M[j * D + j]) * gy[j];
      for (size_t i = 0; i < j; i++) s += M[i * D + j] * gy[i];
      gx[r * D + j] = s;
    }
  }
  return 0;
}

/* ---- elementwise affine (and actnorm): z = exp(s) x + b ---------------------
 * theta = s (D), b (D); ld = sum s; gx = a exp(s), ds = a x exp(s) + c,
 * db = a. */
static size_t elem_np(const cnf_tf_config *c) {
  return 2 * c->dim;
}
static void zero_init(const cnf_tf *tf, double *th, gsl_rng *rng) {
  (void)rng;
  memset(th, 0, tf->P * sizeof(double));
}
static int elem_fwd(cnf_tf *tf, const double *th, size_t B, const double *x, double *z,
                    double *ld) {
  const size_t D = tf->cfg.dim;
  double tr = 0.0;
  for (size_t i = 0; i < D; i++) tr += th[i];
  for (size_t r = 0; r < B; r++) {
    for (size_t i = 0; i < D; i++) z[r * D + i] = exp(th[i]) * x[r * D + i] + th[D + i];
    ld[r] = tr;
  }
  return 0;
}
static int elem_inv(cnf_tf *tf, const double *th, size_t B, const double *z, double *x,
                    double *ld) {
  const size_t D = tf->cfg.dim;
  double tr = 0.0;
  for (size_t i = 0; i < D; i++) tr += th[i];
  for (size_t r = 0; r < B; r++) {
    for (size_t i = 0; i < D; i++) x[r * D + i] = (z[r * D + i] - th[D + i]) * exp(-th[i]);
    ld[r] = tr;
  }
  return 0;
}
static int elem_bwd(cnf_tf *tf, const double *th, size_t B, const double *x, const double *a,
                    const double *c, double *gx, double *gth) {
  const size_t D = tf->cfg.dim;
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++) {
      double e = exp(th[i]), ar = a[r * D + i];
      gx[r * D + i] = ar * e;
      gth[i] += ar * x[r * D + i] * e + c[r];
      gth[D + i] += ar;
    }
  return 0;
}

/* ---- sinh-arcsinh: z = sinh(u), u = delta asinh(x) - e, delta = exp(l) ----
 * dz/dx = delta cosh(u) / sqrt(1 + x^2), so per coordinate
 *   ld = l + log cosh u - log(1 + x^2) / 2,
 *   d ld/dx = tanh(u) delta / sqrt(1 + x^2) - x / (1 + x^2),
 *   dz/de = -cosh u, d ld/de = -tanh u,
 *   dz/dl = cosh(u) delta asinh x, d ld/dl = 1 + tanh(u) delta asinh x.
 * Inverse: x = sinh((asinh z + e) / delta).  theta = e (D), l (D). */
static int sas_ld(const double *th, size_t D, const double *x, double *ld) {
  double s = 0.0;
  for (size_t i = 0; i < D; i++) {
    double u = exp(th[D + i]) * asinh(x[i]) - th[i];
    s += th[D + i] + logcosh(u) - 0.5 * log1p(x[i] * x[i]);
  }
  *ld = s;
  return 0;
}
static int sas_fwd(cnf_tf *tf, const double *th, size_t B, const double *x, double *z, double *ld) {
  const size_t D = tf->cfg.dim;
  for (size_t r = 0; r < B; r++) {
    for (size_t i = 0; i < D; i++)
      z[r * D + i] = sinh(exp(th[D + i]) * asinh(x[r * D + i]) - th[i]);
    sas_ld(th, D, x + r * D, ld + r);
  }
  return 0;
}
static int sas_inv(cnf_tf *tf, const double *th, size_t B, const double *z, double *x, double *ld) {
  const size_t D = tf->cfg.dim;
  for (size_t r = 0; r < B; r++) {
    for (size_t i = 0; i < D; i++)
      x[r * D + i] = sinh((asinh(z[r * D + i]) + th[i]) * exp(-th[D + i]));
    sas_ld(th, D, x + r * D, ld + r);
  }
  return 0;
}
static int sas_bwd(cnf_tf *tf, const double *th, size_t B, const double *x, const double *a,
                   const double *c, double *gx, double *gth) {
  const size_t D = tf->cfg.dim;
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++) {
      double xi = x[r * D + i], dl = exp(th[D + i]), as = asinh(xi);
      double u = dl * as - th[i], ch = cosh(u), tu = tanh(u), q = 1.0 + xi * xi, sq = sqrt(q);
      double ar = a[r * D + i], cr = c[r];
      gx[r * D + i] = ar * dl * ch / sq + cr * (tu * dl / sq - xi / q);
      gth[i] += -ar * ch - cr * tu;
      gth[D + i] += ar * ch * dl * as + cr * (1.0 + tu * dl * as);
    }
  return 0;
}

/* ---- planar: z = x + uh tanh(w . x + b) -----------------------------------
 * uh = u + r w, r = (m(k) - k) / |w|^2, k = w . u, m(k) = -1 + softplus(k),
 * so psi = w . uh = m(k) > -1 and dz/dx = I + tanh'(.) uh w^T has
 *   ld = log(1 + psi h'),  h = tanh(al), al = w . x + b, h' = 1 - h^2.
 * With h'' = -2 h h', det = 1 + psi h', au = a . uh and
 * q = au h' + c psi h'' / det:
 *   gx = a + q w,   d/db = q,   d/duh = a h + c h' w / det,
 *   d/dw (uh held) = q x + c h' uh / det,
 * then through uh(u, w): with g = d/duh, sk = sigmoid(k),
 *   du = g + (g . w) (sk - 1) / |w|^2 w,
 *   dw += r g + (g . w) ((sk - 1) u / |w|^2 - 2 (m - k) w / |w|^4).
 * theta = u (D), w (D), b. */
static size_t planar_np(const cnf_tf_config *c) {
  return 2 * c->dim + 1;
}
/* w random, u = log(e - 1) w / |w|^2 plus a little noise: then m(w . u) = 0,
 * uh is (nearly) 0 and the layer starts at the identity */
static void planar_init(const cnf_tf *tf, double *th, gsl_rng *rng) {
  const size_t D = tf->cfg.dim;
  double nw = 0.0;
  for (size_t i = 0; i < D; i++)
    th[D + i] = 2.0 * gsl_rng_uniform(rng) - 1.0, nw += th[D + i] * th[D + i];
  for (size_t i = 0; i < D; i++)
    th[i] = 0.54132485461291810 * th[D + i] / nw + 0.01 * (2.0 * gsl_rng_uniform(rng) - 1.0);
  th[2 * D] = 0.0;
}
/* uh (D) and psi from theta */
static double planar_uh(const double *th, size_t D, double *uh) {
  const double *u = th, *w = th + D;
  double k = 0.0, nw = 0.0;
  for (size_t i = 0; i < D; i++) k += w[i] * u[i], nw += w[i] * w[i];
  double m = -1.0 + softplus(k), r = nw > 0 ? (m - k) / nw : 0.0;
  for (size_t i = 0; i < D; i++) uh[i] = u[i] + r * w[i];
  return nw > 0 ? m : k;
}
static int planar_fwd(cnf_tf *tf, const double *th, size_t B, const double *x, double *z,
                      double *ld) {
  const size_t D = tf->cfg.dim;
  const double *w = th + D, b = th[2 * D];
  double *uh = tf->w[0], psi = planar_uh(th, D, uh);
  for (size_t r = 0; r < B; r++) {
    double al = b;
    for (size_t i = 0; i < D; i++) al += w[i] * x[r * D + i];
    double h = tanh(al);
    for (size_t i = 0; i < D; i++) z[r * D + i] = x[r * D + i] + uh[i] * h;
    ld[r] = log1p(psi * (1.0 - h * h));
  }
  return 0;
}
/* The inverse: with t = w . z, al = w . x solves f(al) = al + psi tanh(al + b)
 * - t = 0, f' = 1 + psi h' > 0, the root within |psi| of t.  Newton steps
 * kept inside a shrinking bracket (bisection when they leave it). */
static int planar_inv(cnf_tf *tf, const double *th, size_t B, const double *z, double *x,
                      double *ld) {
  const size_t D = tf->cfg.dim;
  const double *w = th + D, b = th[2 * D];
  double *uh = tf->w[0], psi = planar_uh(th, D, uh);
  for (size_t r = 0; r < B; r++) {
    double t = 0.0;
    for (size_t i = 0; i < D; i++) t += w[i] * z[r * D + i];
    double lo = t - fabs(psi) - 1e-12, hi = t + fabs(psi) + 1e-12, al = t;
    int ok = 0;
    for (int it = 0; it < 200; it++) {
      double h = tanh(al + b), f = al + psi * h - t, fp = 1.0 + psi * (1.0 - h * h);
      if (f > 0)
        hi = al;
      else
        lo = al;
      double step = f / fp, nx = al - step;
      if (!(nx > lo && nx < hi)) nx = 0.5 * (lo + hi);
      if (fabs(nx - al) <= 1e-15 * (1.0 + fabs(al)) || hi - lo <= 1e-15 * (1.0 + fabs(al))) {
        al = nx;
        ok = 1;
        break;
      }
      al = nx;
    }
    if (!ok) return CNF_ERROR(tf->ctx, CNF_ECONV, "planar inverse: root solve did not converge");
    double h = tanh(al + b);
    for (size_t i = 0; i < D; i++) x[r * D + i] = z[r * D + i] - uh[i] * h;
    ld[r] = log1p(psi * (1.0 - h * h));
  }
  return 0;
}
static int planar_bwd(cnf_tf *tf, const double *th, size_t B, const double *x, const double *a,
                      const double *c, double *gx, double *gth) {
  const size_t D = tf->cfg.dim;
  const double *u = th, *w = th + D, b = th[2 * D];
  double *uh = tf->w[0], *g = tf->w[1], *gw = tf->w[2];
  double psi = planar_uh(th, D, uh), gb = 0.0;
  memset(g, 0, D * sizeof(double));
  memset(gw, 0, D * sizeof(double));
  for (size_t r = 0; r < B; r++) {
    const double *xr = x + r * D, *ar = a + r * D;
    double al = b, au = 0.0;
    for (size_t i = 0; i < D; i++) al += w[i] * xr[i], au += ar[i] * uh[i];
    double h = tanh(al), hp = 1.0 - h * h, hpp = -2.0 * h * hp, det = 1.0 + psi * hp;
    double q = au * hp + c[r] * psi * hpp / det;
    for (size_t i = 0; i < D; i++) {
      gx[r * D + i] = ar[i] + q * w[i];
      g[i] += ar[i] * h + c[r] * hp * w[i] / det;
      gw[i] += q * xr[i] + c[r] * hp * uh[i] / det;
    }
    gb += q;
  }
  double k = 0.0, nw = 0.0, gdw = 0.0;
  for (size_t i = 0; i < D; i++) k += w[i] * u[i], nw += w[i] * w[i], gdw += g[i] * w[i];
  double m = -1.0 + softplus(k), sk = sigm(k);
  for (size_t i = 0; i < D; i++) {
    if (!(nw > 0)) { /* w = 0: uh = u (planar_uh); the correction's terms vanish */
      gth[i] += g[i];
      gth[D + i] += gw[i];
      continue;
    }
    const double rr = (m - k) / nw;
    gth[i] += g[i] + gdw * (sk - 1.0) / nw * w[i];
    gth[D + i] +=
        gw[i] + rr * g[i] + gdw * ((sk - 1.0) * u[i] / nw - 2.0 * (m - k) * w[i] / (nw * nw));
  }
  gth[2 * D] += gb;
  return 0;
}

/* ---- radial: z = x0 + A v, v = x - x0, A = 1 + beta / q, q = alpha + |v| --
 * alpha = softplus(pa), beta = -alpha + softplus(pb) > -alpha; with r = |v|,
 *   ld = (D - 1) log A + log Bt,  Bt = 1 + beta alpha / q^2,
 *   dld/dr = -(D - 1) beta / (q^2 A) - 2 beta alpha / (q^3 Bt),
 *   gv = A a + (-(a . v) beta / q^2 + c dld/dr) v / r;  gx = gv,
 *   dx0 = a - gv,
 *   dalpha = -(a . v) beta / q^2 + c (-(D - 1) beta / (q^2 A)
 *            + (beta / q^2 - 2 beta alpha / q^3) / Bt),
 *   dbeta = (a . v) / q + c ((D - 1) / (q A) + alpha / (q^2 Bt)),
 *   dpa = (dalpha - dbeta) sigmoid(pa),  dpb = dbeta sigmoid(pb).
 * Inverse in closed form: |z - x0| = r A(r) is the quadratic
 * r^2 + (alpha + beta - rz) r - rz alpha = 0.  theta = x0 (D), pa, pb. */
static size_t radial_np(const cnf_tf_config *c) {
  return c->dim + 2;
}
static void radial_init(const cnf_tf *tf, double *th, gsl_rng *rng) {
  const size_t D = tf->cfg.dim;
  for (size_t i = 0; i < D; i++) th[i] = 2.0 * gsl_rng_uniform(rng) - 1.0;
  th[D] = th[D + 1] = 0.0;
}
static void radial_ab(const double *th, size_t D, double *al, double *be) {
  *al = softplus(th[D]);
  *be = -*al + softplus(th[D + 1]);
}
static double radial_ld(size_t D, double al, double be, double r) {
  double q = al + r;
  return (double)(D - 1) * log1p(be / q) + log1p(be * al / (q * q));
}
static int radial_fwd(cnf_tf *tf, const double *th, size_t B, const double *x, double *z,
                      double *ld) {
  const size_t D = tf->cfg.dim;
  double al, be;
  radial_ab(th, D, &al, &be);
  for (size_t r = 0; r < B; r++) {
    double rr = 0.0;
    for (size_t i = 0; i < D; i++) rr += (x[r * D + i] - th[i]) * (x[r * D + i] - th[i]);
    rr = sqrt(rr);
    double A = 1.0 + be / (al + rr);
    for (size_t i = 0; i < D; i++) z[r * D + i] = th[i] + A * (x[r * D + i] - th[i]);
    ld[r] = radial_ld(D, al, be, rr);
  }
  return 0;
}
static int radial_inv(cnf_tf *tf, const double *th, size_t B, const double *z, double *x,
                      double *ld) {
  const size_t D = tf->cfg.dim;
  double al, be;
  radial_ab(th, D, &al, &be);
  for (size_t r = 0; r < B; r++) {
    double rz = 0.0;
    for (size_t i = 0; i < D; i++) rz += (z[r * D + i] - th[i]) * (z[r * D + i] - th[i]);
    rz = sqrt(rz);
    double p = al + be - rz, disc = sqrt(p * p + 4.0 * rz * al);
    double rr = p > 0 ? 2.0 * rz * al / (p + disc) : 0.5 * (disc - p);
    double A = 1.0 + be / (al + rr);
    for (size_t i = 0; i < D; i++) x[r * D + i] = th[i] + (z[r * D + i] - th[i]) / A;
    ld[r] = radial_ld(D, al, be, rr);
  }
  return 0;
}
static int radial_bwd(cnf_tf *tf, const double *th, size_t B, const double *x, const double *a,
                      const double *c, double *gx, double *gth) {
  const size_t D = tf->cfg.dim;
  const double Dm = (double)(D - 1);
  double al, be, gal = 0.0, gbe = 0.0;
  radial_ab(th, D, &al, &be);
  for (size_t r = 0; r < B; r++) {
    const double *xr = x + r * D, *ar = a + r * D;
    double rr = 0.0, av = 0.0;
    for (size_t i = 0; i < D; i++) {
      double v = xr[i] - th[i];
      rr += v * v, av += ar[i] * v;
    }
    rr = sqrt(rr);
    double q = al + rr, A = 1.0 + be / q, Bt = 1.0 + be * al / (q * q), cr = c[r];
    double dldr = -Dm * be / (q * q * A) - 2.0 * be * al / (q * q * q * Bt);
    double coef = rr > 0 ? (-av * be / (q * q) + cr * dldr) / rr : 0.0;
    for (size_t i = 0; i < D; i++) {
      double gv = A * ar[i] + coef * (xr[i] - th[i]);
      gx[r * D + i] = gv;
      gth[i] += ar[i] - gv;
    }
    gal += -av * be / (q * q) +
           cr * (-Dm * be / (q * q * A) + (be / (q * q) - 2.0 * be * al / (q * q * q)) / Bt);
    gbe += av / q + cr * (Dm / (q * A) + al / (q * q * Bt));
  }
  gth[D] += (gal - gbe) * sigm(th[D]);
  gth[D + 1] += gbe * sigm(th[D + 1]);
  return 0;
}

/* ---- coupling (RealNVP) and additive (NICE) -------------------------------
 * m (D): 1 on the coordinates that pass unchanged.  (sr, t) = MLP(m x),
 * s = (1 - m) CLAMP tanh(sr / CLAMP):
 *   z = m x + (1 - m) (x exp(s) + t),  ld = sum s;
 *   ds = (1 - m) (a x exp(s) + c),  dsr = ds (1 - tanh^2(sr / CLAMP)),
 *   dt = (1 - m) a,  gx = m (a + MLP^T(dsr, dt)) + (1 - m) a exp(s).
 * Additive: s = 0, t = MLP(m x), ld = 0. */
static int additive(const cnf_tf *tf) {
  return tf->cfg.kind == CNF_TF_ADDITIVE;
}
static size_t coupling_np(const cnf_tf_config *c) {
  size_t P = 0, w = c->dim;
  size_t out = c->kind == CNF_TF_ADDITIVE ? c->dim : 2 * c->dim;
  for (size_t l = 0; l < c->n_hidden; l++) P += c->hidden[l] * w + c->hidden[l], w = c->hidden[l];
  return P + out * w + out;
}
/* LeCun's uniform initialisation for tanh units (layers_impl.h), the
 * output layer scaled by 0.1 so the layer starts near the identity.  A
 * coupling's net sees only the coordinates its mask passes: they are its
 * first layer's fan-in. */
static void net_init(const cnf_tf *tf, double *th, gsl_rng *rng) {
  size_t in_used = 0;
  for (size_t i = 0; tf->mask != NULL && i < tf->cfg.dim; i++) in_used += tf->mask[i] != 0.0;
  cnf__net_init_params(&tf->net, th, rng, in_used, 0.1);
}
/* net(m x); s into s (B, D) (0 where m = 1), t pointer into the output */
static void coupling_st(cnf_tf *tf, const double *th, size_t B, const double *x, double *s,
                        const double **t, size_t *ld_out) {
  const size_t D = tf->cfg.dim;
  double *xm = tf->w[0];
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++) xm[r * D + i] = x[r * D + i] * tf->mask[i];
  cnf__net_forward(&tf->net, th, B, xm);
  const size_t W = tf->net.w[tf->net.nl];
  *ld_out = W;
  if (additive(tf)) {
    memset(s, 0, B * D * sizeof(double));
    *t = tf->net.out;
    return;
  }
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++)
      s[r * D + i] = (1.0 - tf->mask[i]) * CLAMP * tanh(tf->net.out[r * W + i] / CLAMP);
  *t = tf->net.out + D;
}
static int coupling_fwd(cnf_tf *tf, const double *th, size_t B, const double *x, double *z,
                        double *ld) {
  const size_t D = tf->cfg.dim;
  double *s = tf->w[1];
  const double *t;
  size_t W;
  coupling_st(tf, th, B, x, s, &t, &W);
  for (size_t r = 0; r < B; r++) {
    double sum = 0.0;
    for (size_t i = 0; i < D; i++) {
      double m = tf->mask[i], si = s[r * D + i];
      z[r * D + i] = m * x[r * D + i] + (1.0 - m) * (x[r * D + i] * exp(si) + t[r * W + i]);
      sum += si;
    }
    ld[r] = sum;
  }
  return 0;
}
static int coupling_inv(cnf_tf *tf, const double *th, size_t B, const double *z, double *x,
                        double *ld) {
  const size_t D = tf->cfg.dim;
  double *s = tf->w[1];
  const double *t;
  size_t W;
  coupling_st(tf, th, B, z, s, &t, &W); /* m z = m x */
  for (size_t r = 0; r < B; r++) {
    double sum = 0.0;
    for (size_t i = 0; i < D; i++) {
      double m = tf->mask[i], si = s[r * D + i];
      x[r * D + i] = m * z[r * D + i] + (1.0 - m) * (z[r * D + i] - t[r * W + i]) * exp(-si);
      sum += si;
    }
    ld[r] = sum;
  }
  return 0;
}
static int coupling_bwd(cnf_tf *tf, const double *th, size_t B, const double *x, const double *a,
                        const double *c, double *gx, double *gth) {
  const size_t D = tf->cfg.dim;
  double *s = tf->w[1], *gy = tf->w[2], *gin = tf->w[3];
  const double *t;
  size_t W;
  coupling_st(tf, th, B, x, s, &t, &W);
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++) {
      double m = tf->mask[i], ar = a[r * D + i];
      if (additive(tf)) {
        gy[r * W + i] = (1.0 - m) * ar;
      } else {
        double th_ = tanh(tf->net.out[r * W + i] / CLAMP);
        double ds = (1.0 - m) * (ar * x[r * D + i] * exp(s[r * D + i]) + c[r]);
        gy[r * W + i] = ds * (1.0 - th_ * th_);
        gy[r * W + D + i] = (1.0 - m) * ar;
      }
    }
  cnf__net_backward(&tf->net, th, B, tf->w[0], gy, gin, gth);
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++) {
      double m = tf->mask[i], ar = a[r * D + i];
      gx[r * D + i] = m * (ar + gin[r * D + i]) + (1.0 - m) * ar * exp(s[r * D + i]);
    }
  return 0;
}

/* ---- MAF and IAF: MADE conditioner (mu, sr) = MADE(y), s = CLAMP tanh(sr /
 * CLAMP), mu_i and s_i depending on y_<i only (Germain et al. 2015: input i
 * has degree i + 1, hidden unit k degree k mod (D - 1) + 1, a weight kept when
 * the unit's degree is >= its input's, an output of coordinate i kept when
 * i + 1 > the hidden degree).
 *
 * MAF, y = x:  z = (x - mu) exp(-s), ld = -sum s;
 *   dmu = -a exp(-s), ds = -a z - c, gx = a exp(-s) + MADE^T(dmu, dsr).
 *   Inverse: x_i = z_i exp(s_i) + mu_i for i = 0..D-1, one MADE pass each.
 *
 * IAF, y = z:  x = G(z) = z exp(s(z)) + mu(z), ld = -sum s(z); forward
 *   z_i = (x_i - mu_i) exp(-s_i) for i = 0..D-1, one pass each.  Reverse
 *   sweep by the implicit function theorem: with gbar = a + d(c ld)/dz and
 *   J = dG/dz = diag(exp s) + (strictly lower part),
 *     J^T lam = gbar,  gx = lam,  dtheta = d(c ld)/dtheta - lam^T dG/dtheta,
 *   lam by D sweeps of lam <- (gbar - lam^T (J - diag)) / exp(s), exact
 *   after D since the strictly lower part is nilpotent. */
static size_t made_np(const cnf_tf_config *c) {
  cnf_tf_config cc = *c;
  cc.kind = CNF_TF_COUPLING;
  return coupling_np(&cc);
}
static void made_masks(cnf_tf *tf) {
  const size_t D = tf->cfg.dim;
  cnf__net *n = &tf->net;
  const size_t H = D > 1 ? D - 1 : 1; /* hidden degrees 1..H */
  for (size_t l = 0; l < n->nl; l++) {
    double *M = cnf__net_mask(n, l);
    const size_t in = n->w[l], out = n->w[l + 1];
    for (size_t o = 0; o < out; o++)
      for (size_t i = 0; i < in; i++) {
        size_t din = l == 0 ? i + 1 : i % H + 1;
        int keep = l + 1 == n->nl ? (o % D) + 1 > din : o % H + 1 >= din;
        M[o * in + i] = keep ? 1.0 : 0.0;
      }
  }
}
/* mu = out[:, 0:D], s (B, D) from the last net forward */
static void made_s(const cnf_tf *tf, size_t B, double *s) {
  const size_t D = tf->cfg.dim;
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++)
      s[r * D + i] = CLAMP * tanh(tf->net.out[r * 2 * D + D + i] / CLAMP);
}
static int maf_fwd(cnf_tf *tf, const double *th, size_t B, const double *x, double *z, double *ld) {
  const size_t D = tf->cfg.dim;
  double *s = tf->w[1];
  cnf__net_forward(&tf->net, th, B, x);
  made_s(tf, B, s);
  for (size_t r = 0; r < B; r++) {
    double sum = 0.0;
    for (size_t i = 0; i < D; i++) {
      z[r * D + i] = (x[r * D + i] - tf->net.out[r * 2 * D + i]) * exp(-s[r * D + i]);
      sum += s[r * D + i];
    }
    ld[r] = -sum;
  }
  return 0;
}
/* the sequential direction: y_i = (w_i - mu_i) exp(-s_i) (dir -1, IAF's
 * forward) or y_i = w_i exp(s_i) + mu_i (dir +1, MAF's inverse), the MADE
 * run on y itself; ld = -sum s at the end */
static void made_sequential(cnf_tf *tf, const double *th, size_t B, const double *w, double *y,
                            double *ld, int dir) {
  const size_t D = tf->cfg.dim;
  memset(y, 0, B * D * sizeof(double));
  for (size_t r = 0; r < B; r++) ld[r] = 0.0;
  for (size_t i = 0; i < D; i++) {
    cnf__net_forward(&tf->net, th, B, y);
    for (size_t r = 0; r < B; r++) {
      double mu = tf->net.out[r * 2 * D + i];
      double s = CLAMP * tanh(tf->net.out[r * 2 * D + D + i] / CLAMP);
      y[r * D + i] = dir > 0 ? w[r * D + i] * exp(s) + mu : (w[r * D + i] - mu) * exp(-s);
      ld[r] -= s;
    }
  }
}
static int maf_inv(cnf_tf *tf, const double *th, size_t B, const double *z, double *x, double *ld) {
  made_sequential(tf, th, B, z, x, ld, +1);
  return 0;
}
static int maf_bwd(cnf_tf *tf, const double *th, size_t B, const double *x, const double *a,
                   const double *c, double *gx, double *gth) {
  const size_t D = tf->cfg.dim;
  double *s = tf->w[1], *gy = tf->w[2], *gin = tf->w[3];
  cnf__net_forward(&tf->net, th, B, x);
  made_s(tf, B, s);
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++) {
      double e = exp(-s[r * D + i]), ar = a[r * D + i];
      double zi = (x[r * D + i] - tf->net.out[r * 2 * D + i]) * e;
      double tt = tanh(tf->net.out[r * 2 * D + D + i] / CLAMP);
      gy[r * 2 * D + i] = -ar * e;
      gy[r * 2 * D + D + i] = (-ar * zi - c[r]) * (1.0 - tt * tt);
      gx[r * D + i] = ar * e;
    }
  cnf__net_backward(&tf->net, th, B, x, gy, gin, gth);
  for (size_t i = 0; i < B * D; i++) gx[i] += gin[i];
  return 0;
}
static int iaf_fwd(cnf_tf *tf, const double *th, size_t B, const double *x, double *z, double *ld) {
  made_sequential(tf, th, B, x, z, ld, -1);
  return 0;
}
static int iaf_inv(cnf_tf *tf, const double *th, size_t B, const double *z, double *x, double *ld) {
  const size_t D = tf->cfg.dim;
  double *s = tf->w[1];
  cnf__net_forward(&tf->net, th, B, z);
  made_s(tf, B, s);
  for (size_t r = 0; r < B; r++) {
    double sum = 0.0;
    for (size_t i = 0; i < D; i++) {
      x[r * D + i] = z[r * D + i] * exp(s[r * D + i]) + tf->net.out[r * 2 * D + i];
      sum += s[r * D + i];
    }
    ld[r] = -sum;
  }
  return 0;
}
static int iaf_bwd(cnf_tf *tf, const double *th, size_t B, const double *x, const double *a,
                   const double *c, double *gx, double *gth) {
  const size_t D = tf->cfg.dim;
  double *s = tf->w[1], *gy = tf->w[2], *gin = tf->w[3], *z = tf->w[4], *gbar = tf->w[5];
  made_sequential(tf, th, B, x, z, tf->ldbuf, -1);
  cnf__net_forward(&tf->net, th, B, z);
  made_s(tf, B, s);
  /* gbar = a + d(c ld)/dz, and its direct parameter part */
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++) {
      double tt = tanh(tf->net.out[r * 2 * D + D + i] / CLAMP);
      gy[r * 2 * D + i] = 0.0;
      gy[r * 2 * D + D + i] = -c[r] * (1.0 - tt * tt);
    }
  cnf__net_backward(&tf->net, th, B, z, gy, gin, gth);
  for (size_t i = 0; i < B * D; i++) gbar[i] = a[i] + gin[i];
  /* J^T lam = gbar by D sweeps; lam in gx */
  for (size_t i = 0; i < B * D; i++) gx[i] = 0.0;
  for (size_t k = 0; k < D; k++) {
    for (size_t r = 0; r < B; r++)
      for (size_t i = 0; i < D; i++) {
        double tt = tanh(tf->net.out[r * 2 * D + D + i] / CLAMP), lam = gx[r * D + i];
        gy[r * 2 * D + i] = lam;
        gy[r * 2 * D + D + i] = lam * z[r * D + i] * exp(s[r * D + i]) * (1.0 - tt * tt);
      }
    if (k > 0)
      cnf__net_backward(&tf->net, th, B, z, gy, gin, NULL);
    else
      memset(gin, 0, B * D * sizeof(double));
    for (size_t i = 0; i < B * D; i++) gx[i] = (gbar[i] - gin[i]) * exp(-s[i]);
  }
  /* dtheta -= lam^T dG/dtheta */
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++) {
      double tt = tanh(tf->net.out[r * 2 * D + D + i] / CLAMP), lam = gx[r * D + i];
      gy[r * 2 * D + i] = -lam;
      gy[r * 2 * D + D + i] = -lam * z[r * D + i] * exp(s[r * D + i]) * (1.0 - tt * tt);
    }
  cnf__net_backward(&tf->net, th, B, z, gy, NULL, gth);
  return 0;
}

/* ---- permute: z_i = x_{perm[i]} -------------------------------------------- */
static size_t none_np(const cnf_tf_config *c) {
  (void)c;
  return 0;
}
static int perm_fwd(cnf_tf *tf, const double *th, size_t B, const double *x, double *z,
                    double *ld) {
  (void)th;
  const size_t D = tf->cfg.dim;
  for (size_t r = 0; r < B; r++) {
    for (size_t i = 0; i < D; i++) z[r * D + i] = x[r * D + tf->perm[i]];
    ld[r] = 0.0;
  }
  return 0;
}
static int perm_inv(cnf_tf *tf, const double *th, size_t B, const double *z, double *x,
                    double *ld) {
  (void)th;
  const size_t D = tf->cfg.dim;
  for (size_t r = 0; r < B; r++) {
    for (size_t i = 0; i < D; i++) x[r * D + tf->perm[i]] = z[r * D + i];
    ld[r] = 0.0;
  }
  return 0;
}
static int perm_bwd(cnf_tf *tf, const double *th, size_t B, const double *x, const double *a,
                    const double *c, double *gx, double *gth) {
  (void)th, (void)x, (void)c, (void)gth;
  const size_t D = tf->cfg.dim;
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++) gx[r * D + tf->perm[i]] = a[r * D + i];
  return 0;
}

/* ---- cnf: a continuous block -------------------------------------------------
 * z = z(T), dz/dt = f(t, z), z(0) = x; dDelta/dt = -tr(df/dz), Delta(0) = 0,
 * ld = -Delta(T).  Inverse: from z at T back to 0 with Delta(T) = 0, ld =
 * Delta(0).  Reverse sweep: the terminal loss S = a . z(T) - c Delta(T) has
 * seeds dS/dz(T) = a, dS/dDelta(T) = -c, and cnf_dyn_grad gives dS/dx and
 * dS/dtheta by the adjoint. */
static size_t cnf_np(const cnf_tf_config *c) {
  cnf_mlp_config m;
  cnf_mlp_config_default(&m, c->dim);
  m.n_hidden = c->n_hidden;
  for (size_t l = 0; l < c->n_hidden; l++) m.hidden[l] = c->hidden[l];
  return cnf_mlp_param_count(&m);
}
static void cnf_init(const cnf_tf *tf, double *th, gsl_rng *rng) {
  cnf_mlp_init_params(&tf->mlp, gsl_rng_get(rng), th);
}
static int cnf_fwd(cnf_tf *tf, const double *th, size_t B, const double *x, double *z, double *ld) {
  memcpy(z, x, B * tf->cfg.dim * sizeof(double));
  memset(ld, 0, B * sizeof(double));
  int rc = cnf_dyn_solve(tf->dyn, th, &tf->opt, 0.0, tf->T, B, tf->cfg.dim, NULL, z, ld, NULL);
  for (size_t r = 0; r < B; r++) ld[r] = -ld[r];
  return rc;
}
static int cnf_inv(cnf_tf *tf, const double *th, size_t B, const double *z, double *x, double *ld) {
  memcpy(x, z, B * tf->cfg.dim * sizeof(double));
  memset(ld, 0, B * sizeof(double));
  return cnf_dyn_solve(tf->dyn, th, &tf->opt, tf->T, 0.0, B, tf->cfg.dim, NULL, x, ld, NULL);
}
typedef struct cnf_seeds {
  const double *a, *c;
} cnf_seeds;
static int cnf_terminal(void *user, size_t B, size_t D, const double *z1, const double *delta1,
                        double *loss, double *gz1, double *gdelta1) {
  const cnf_seeds *sd = user;
  double S = 0.0;
  for (size_t r = 0; r < B; r++) {
    for (size_t i = 0; i < D; i++) {
      S += sd->a[r * D + i] * z1[r * D + i];
      gz1[r * D + i] = sd->a[r * D + i];
    }
    S -= sd->c[r] * delta1[r];
    gdelta1[r] = -sd->c[r];
  }
  *loss = S;
  return 0;
}
static int cnf_bwd(cnf_tf *tf, const double *th, size_t B, const double *x, const double *a,
                   const double *c, double *gx, double *gth) {
  cnf_seeds sd = {a, c};
  double S = 0.0;
  memset(tf->gthbuf, 0, tf->P * sizeof(double));
  int rc = cnf_dyn_grad(tf->dyn, th, &tf->opt, 0.0, tf->T, B, tf->cfg.dim, NULL, x, cnf_terminal,
                        &sd, &S, NULL, NULL, gx, tf->gthbuf, NULL, NULL);
  if (rc != 0) return rc;
  if (gth != tf->gthbuf)
    for (size_t i = 0; i < tf->P; i++) gth[i] += tf->gthbuf[i];
  return 0;
}

/* ---- the table ------------------------------------------------------------- */

static const tf_ops OPS[CNF_TF_NKINDS] = {
    [CNF_TF_AFFINE] = {affine_np, affine_init, affine_fwd, affine_inv, affine_bwd},
    [CNF_TF_ELEMENTWISE] = {elem_np, zero_init, elem_fwd, elem_inv, elem_bwd},
    [CNF_TF_ACTNORM] = {elem_np, zero_init, elem_fwd, elem_inv, elem_bwd},
    [CNF_TF_SINHARCSINH] = {elem_np, zero_init, sas_fwd, sas_inv, sas_bwd},
    [CNF_TF_PLANAR] = {planar_np, planar_init, planar_fwd, planar_inv, planar_bwd},
    [CNF_TF_RADIAL] = {radial_np, radial_init, radial_fwd, radial_inv, radial_bwd},
    [CNF_TF_COUPLING] = {coupling_np, net_init, coupling_fwd, coupling_inv, coupling_bwd},
    [CNF_TF_ADDITIVE] = {coupling_np, net_init, coupling_fwd, coupling_inv, coupling_bwd},
    [CNF_TF_MAF] = {made_np, net_init, maf_fwd, maf_inv, maf_bwd},
    [CNF_TF_IAF] = {made_np, net_init, iaf_fwd, iaf_inv, iaf_bwd},
    [CNF_TF_PERMUTE] = {none_np, zero_init, perm_fwd, perm_inv, perm_bwd},
    [CNF_TF_CNF] = {cnf_np, cnf_init, cnf_fwd, cnf_inv, cnf_bwd},
};

static const char *const NAMES[CNF_TF_NKINDS] = {"affine", "elementwise", "actnorm",  "sinharcsinh",
                                                 "planar", "radial",      "coupling", "additive",
                                                 "maf",    "iaf",         "permute",  "cnf"};

const char *cnf_tf_kind_name(cnf_tf_kind k) {
  return (unsigned)k < CNF_TF_NKINDS ? NAMES[k] : NULL;
}

int cnf_tf_kind_parse(const char *s, cnf_tf_kind *out) {
  for (int k = 0; s != NULL && k < CNF_TF_NKINDS; k++)
    if (strcmp(s, NAMES[k]) == 0) {
      *out = (cnf_tf_kind)k;
      return 0;
    }
  return CNF_EINVAL;
}

static int conditioned(cnf_tf_kind k) {
  return k == CNF_TF_COUPLING || k == CNF_TF_ADDITIVE || k == CNF_TF_MAF || k == CNF_TF_IAF ||
         k == CNF_TF_CNF;
}

int cnf_tf_create(cnf_tf **out, cnf_ctx *ctx, const cnf_tf_config *cfg) {
  if (out == NULL || cfg == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "layer: NULL argument");
  *out = NULL;
  if ((unsigned)cfg->kind >= CNF_TF_NKINDS || cfg->dim == 0 || cfg->dim > 100000 ||
      cfg->n_hidden > CNF_MAX_HIDDEN || (conditioned(cfg->kind) && cfg->n_hidden == 0))
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "layer: bad configuration (kind %d, dim %zu, %zu hidden layers; coupling, "
                     "additive, maf and iaf need at least one)",
                     (int)cfg->kind, cfg->dim, cfg->n_hidden);
  for (size_t l = 0; conditioned(cfg->kind) && l < cfg->n_hidden; l++)
    if (cfg->hidden[l] == 0 || cfg->hidden[l] > 100000)
      return CNF_ERROR(ctx, CNF_EINVAL, "layer: hidden width %zu out of range", cfg->hidden[l]);
  cnf_tf *tf = cnf__calloc(1, sizeof *tf);
  if (tf == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "layer: out of memory");
  tf->ctx = ctx;
  tf->cfg = *cfg;
  if (!conditioned(cfg->kind)) tf->cfg.n_hidden = 0; /* no network: widths unused */
  tf->ops = &OPS[cfg->kind];
  tf->P = tf->ops->param_count(cfg);
  const size_t D = cfg->dim;
  int bad = 0;
  for (int i = 0; i < 6; i++) bad |= (tf->w[i] = cnf__dalloc(ctx, CNF_TF_CHUNK * 2 * D)) == NULL;
  bad |= (tf->zero = cnf__dalloc(ctx, CNF_TF_CHUNK * D)) == NULL;
  bad |= (tf->ldbuf = cnf__dalloc(ctx, CNF_TF_CHUNK)) == NULL;
  bad |= (tf->gxbuf = cnf__dalloc(ctx, CNF_TF_CHUNK * D)) == NULL;
  bad |= (tf->gthbuf = cnf__dalloc(ctx, tf->P + 1)) == NULL;
  if (!bad) memset(tf->zero, 0, CNF_TF_CHUNK * D * sizeof(double));
  if (!bad && conditioned(cfg->kind) && cfg->kind != CNF_TF_CNF) {
    size_t outw = cfg->kind == CNF_TF_ADDITIVE ? D : 2 * D;
    int made = cfg->kind == CNF_TF_MAF || cfg->kind == CNF_TF_IAF;
    bad |= cnf__net_init(&tf->net, ctx, D, cfg->n_hidden, cfg->hidden, outw, made) != 0;
    tf->has_net = !bad;
    if (!bad && made) made_masks(tf);
  }
  if (!bad && (cfg->kind == CNF_TF_COUPLING || cfg->kind == CNF_TF_ADDITIVE)) {
    bad |= (tf->mask = cnf__dalloc(ctx, D)) == NULL;
    for (size_t i = 0; !bad && i < D; i++) tf->mask[i] = (i + cfg->arg) % 2 == 0 ? 1.0 : 0.0;
  }
  if (!bad && cfg->kind == CNF_TF_CNF) {
    cnf_mlp_config_default(&tf->mlp, D);
    tf->mlp.n_hidden = cfg->n_hidden;
    for (size_t l = 0; l < cfg->n_hidden; l++) tf->mlp.hidden[l] = cfg->hidden[l];
    cnf_options_default(&tf->opt);
    tf->opt.trace = CNF_TRACE_EXACT;
    if (tf->cfg.arg == 0) tf->cfg.arg = 500; /* T = 0.5, written into model files */
    tf->T = (double)tf->cfg.arg / 1000.0;
    bad |= cnf_dyn_mlp_create(&tf->dyn, ctx, &tf->mlp) != 0;
  }
  if (!bad && cfg->kind == CNF_TF_PERMUTE) {
    bad |= (tf->perm = cnf__malloc(D * sizeof(size_t))) == NULL;
    if (!bad) {
      for (size_t i = 0; i < D; i++) tf->perm[i] = D - 1 - i;
      if (cfg->arg != 0) {
        gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
        bad |= rng == NULL;
        if (rng != NULL) {
          gsl_rng_set(rng, cnf__seed32(cfg->arg));
          for (size_t i = 0; i < D; i++) tf->perm[i] = i;
          for (size_t i = D; i-- > 1;) {
            size_t j = (size_t)gsl_rng_uniform_int(rng, i + 1), t = tf->perm[i];
            tf->perm[i] = tf->perm[j], tf->perm[j] = t;
          }
          gsl_rng_free(rng);
        }
      }
    }
  }
  if (bad) {
    cnf_tf_free(tf);
    return CNF_ERROR(ctx, CNF_ENOMEM, "layer: out of memory");
  }
  *out = tf;
  return 0;
}

void cnf_tf_free(cnf_tf *tf) {
  if (tf == NULL) return;
  for (int i = 0; i < 6; i++) cnf__free(tf->w[i]);
  cnf__free(tf->zero), cnf__free(tf->ldbuf), cnf__free(tf->gxbuf), cnf__free(tf->gthbuf);
  cnf__free(tf->mask), cnf__free(tf->perm);
  if (tf->has_net) cnf__net_free(&tf->net);
  cnf_dyn_free(tf->dyn);
  cnf__free(tf);
}

int cnf_tf_set_options(cnf_tf *tf, const cnf_options *opt) {
  if (tf == NULL) return CNF_EINVAL;
  cnf_options o;
  int rc = cnf__options_read(tf->ctx, opt, &o);
  if (rc != 0 || tf->cfg.kind != CNF_TF_CNF) return rc;
  tf->opt = o;
  tf->opt.trace = CNF_TRACE_EXACT;
  return 0;
}

const cnf_tf_config *cnf_tf_get_config(const cnf_tf *tf) {
  return &tf->cfg;
}
size_t cnf_tf_param_count(const cnf_tf *tf) {
  return tf->P;
}
size_t cnf__tf_config_param_count(const cnf_tf_config *cfg) {
  return (unsigned)cfg->kind < CNF_TF_NKINDS ? OPS[cfg->kind].param_count(cfg) : 0;
}

void cnf_tf_init_params(const cnf_tf *tf, double *theta, uint64_t seed) {
  if (tf->P == 0) return;
  gsl_rng *rng = gsl_rng_alloc(gsl_rng_mt19937);
  if (rng == NULL) {
    memset(theta, 0, tf->P * sizeof(double));
    return;
  }
  gsl_rng_set(rng, cnf__seed32(seed));
  tf->ops->init(tf, theta, rng);
  gsl_rng_free(rng);
}

#define CHECK_ARGS(tf, B, in, out)                                                            \
  do {                                                                                        \
    if ((tf) == NULL) return CNF_EINVAL;                                                      \
    if (((in) == NULL || (out) == NULL) && (B) > 0)                                           \
      return CNF_ERROR((tf)->ctx, CNF_EINVAL, "layer %s: NULL array", NAMES[(tf)->cfg.kind]); \
  } while (0)

int cnf_tf_forward(cnf_tf *tf, const double *theta, size_t B, const double *x, double *z,
                   double *logdet) {
  CHECK_ARGS(tf, B, x, z);
  const size_t D = tf->cfg.dim;
  for (size_t r = 0; r < B; r += CNF_TF_CHUNK) {
    size_t nb = B - r < CNF_TF_CHUNK ? B - r : CNF_TF_CHUNK;
    int rc = tf->ops->forward(tf, theta, nb, x + r * D, z + r * D, logdet ? logdet + r : tf->ldbuf);
    if (rc != 0) return rc;
  }
  return 0;
}

int cnf_tf_inverse(cnf_tf *tf, const double *theta, size_t B, const double *z, double *x,
                   double *logdet) {
  CHECK_ARGS(tf, B, z, x);
  const size_t D = tf->cfg.dim;
  for (size_t r = 0; r < B; r += CNF_TF_CHUNK) {
    size_t nb = B - r < CNF_TF_CHUNK ? B - r : CNF_TF_CHUNK;
    int rc = tf->ops->inverse(tf, theta, nb, z + r * D, x + r * D, logdet ? logdet + r : tf->ldbuf);
    if (rc != 0) return rc;
  }
  return 0;
}

int cnf_tf_backward(cnf_tf *tf, const double *theta, size_t B, const double *x, const double *a,
                    const double *c, double *gx, double *gth) {
  CHECK_ARGS(tf, B, x, x);
  const size_t D = tf->cfg.dim;
  for (size_t r = 0; r < B; r += CNF_TF_CHUNK) {
    size_t nb = B - r < CNF_TF_CHUNK ? B - r : CNF_TF_CHUNK;
    int rc =
        tf->ops->backward(tf, theta, nb, x + r * D, a ? a + r * D : tf->zero, c ? c + r : tf->zero,
                          gx ? gx + r * D : tf->gxbuf, gth ? gth : tf->gthbuf);
    if (rc != 0) return rc;
  }
  return 0;
}

int cnf_tf_made_outputs(cnf_tf *tf, const double *theta, size_t B, const double *x, double *mu,
                        double *s) {
  if (tf == NULL) return CNF_EINVAL;
  if (tf->cfg.kind != CNF_TF_MAF && tf->cfg.kind != CNF_TF_IAF)
    return CNF_ERROR(tf->ctx, CNF_EINVAL, "layer %s has no MADE", NAMES[tf->cfg.kind]);
  const size_t D = tf->cfg.dim;
  for (size_t r = 0; r < B; r += CNF_TF_CHUNK) {
    size_t nb = B - r < CNF_TF_CHUNK ? B - r : CNF_TF_CHUNK;
    cnf__net_forward(&tf->net, theta, nb, x + r * D);
    for (size_t q = 0; q < nb; q++)
      for (size_t i = 0; i < D; i++) {
        mu[(r + q) * D + i] = tf->net.out[q * 2 * D + i];
        s[(r + q) * D + i] = CLAMP * tanh(tf->net.out[q * 2 * D + D + i] / CLAMP);
      }
  }
  return 0;
}
