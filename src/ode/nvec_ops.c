/* nvec_ops.c: the serial vector's operations, compiled with the library's
 * flags (nvec.h, cnf__nvec_ops).
 *
 * CVODE spends its own time in vector operations: the Nordsieck history's
 * prediction, correction and rescaling, the error norms, the fixed-point
 * iteration's updates.  On the parameter quadrature of the adjoint (P =
 * 9225 for FFJORD's network) that is a few dozen passes over P doubles per
 * backward step.  SUNDIALS' own serial vector comes compiled as the
 * distribution built it (Debian's: unoptimised, 2 ns an element); these
 * loops do the same arithmetic, vectorised.  docs/performance.md gives the
 * measurements.
 *
 * The data layout is the serial vector's (N_VGetArrayPointer,
 * N_VGetLength), so the vectors are still serial vectors to SUNDIALS and to
 * the distributed wrapper, which calls the local reductions below.  Every
 * loop is element-wise with no carried dependence: z may be the same vector
 * as x or y (CVODE does that), never a partial overlap; `ivdep` says so to
 * the compiler.  The reductions sum in four interleaved partial sums, a
 * fixed order for a given length: deterministic, not the order of
 * SUNDIALS' loops (results differ from them by rounding). */
#include "nvec.h"

#include <math.h>
#include <nvector/nvector_serial.h>

#define DATA(v) NV_DATA_S(v)
#define LEN(v) ((size_t)NV_LENGTH_S(v))

#if defined(__GNUC__) && !defined(__clang__)
#define IVDEP _Pragma("GCC ivdep")
#elif defined(__clang__)
#define IVDEP _Pragma("clang loop vectorize(enable)")
#else
#define IVDEP
#endif

static void lin(size_t n, double a, const double *x, double b, const double *y, double *z) {
  IVDEP for (size_t i = 0; i < n; i++) z[i] = a * x[i] + b * y[i];
}

static void scal(size_t n, double c, const double *x, double *z) {
  if (c == 1.0) {
    if (x != z) IVDEP for (size_t i = 0; i < n; i++) z[i] = x[i];
    return;
  }
  IVDEP for (size_t i = 0; i < n; i++) z[i] = c * x[i];
}

/* z += a x */
static void axpy(size_t n, double a, const double *x, double *z) {
  IVDEP for (size_t i = 0; i < n; i++) z[i] += a * x[i];
}

static void v_linearsum(double a, N_Vector x, double b, N_Vector y, N_Vector z) {
  const size_t n = LEN(x);
  double *zd = DATA(z);
  if (b == 1.0 && y == z) {
    axpy(n, a, DATA(x), zd);
    return;
  }
  if (a == 1.0 && x == z) {
    axpy(n, b, DATA(y), zd);
    return;
  }
  lin(n, a, DATA(x), b, DATA(y), zd);
}

static void v_const(double c, N_Vector z) {
  const size_t n = LEN(z);
  double *zd = DATA(z);
  for (size_t i = 0; i < n; i++) zd[i] = c;
}

static void v_prod(N_Vector x, N_Vector y, N_Vector z) {
  const size_t n = LEN(x);
  const double *xd = DATA(x), *yd = DATA(y);
  double *zd = DATA(z);
  IVDEP for (size_t i = 0; i < n; i++) zd[i] = xd[i] * yd[i];
}

static void v_div(N_Vector x, N_Vector y, N_Vector z) {
  const size_t n = LEN(x);
  const double *xd = DATA(x), *yd = DATA(y);
  double *zd = DATA(z);
  IVDEP for (size_t i = 0; i < n; i++) zd[i] = xd[i] / yd[i];
}

static void v_scale(double c, N_Vector x, N_Vector z) { scal(LEN(x), c, DATA(x), DATA(z)); }

static void v_abs(N_Vector x, N_Vector z) {
  const size_t n = LEN(x);
  const double *xd = DATA(x);
  double *zd = DATA(z);
  IVDEP for (size_t i = 0; i < n; i++) zd[i] = fabs(xd[i]);
}

static void v_inv(N_Vector x, N_Vector z) {
  const size_t n = LEN(x);
  const double *xd = DATA(x);
  double *zd = DATA(z);
  IVDEP for (size_t i = 0; i < n; i++) zd[i] = 1.0 / xd[i];
}

static void v_addconst(N_Vector x, double b, N_Vector z) {
  const size_t n = LEN(x);
  const double *xd = DATA(x);
  double *zd = DATA(z);
  IVDEP for (size_t i = 0; i < n; i++) zd[i] = xd[i] + b;
}

static void v_compare(double c, N_Vector x, N_Vector z) {
  const size_t n = LEN(x);
  const double *xd = DATA(x);
  double *zd = DATA(z);
  IVDEP for (size_t i = 0; i < n; i++) zd[i] = fabs(xd[i]) >= c ? 1.0 : 0.0;
}

/* The reductions: four partial sums (i mod 4), added as (s0 + s1) + (s2 + s3). */
static double dot(size_t n, const double *x, const double *y) {
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; k++) s[k] += x[i + k] * y[i + k];
  for (int k = 0; i < n; i++, k++) s[k] += x[i] * y[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

/* sum of (x w)^2, over the entries with id > 0 when id is not NULL */
static double wsqr(size_t n, const double *x, const double *w, const double *id) {
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i = 0;
  if (id == NULL) {
    for (; i + 4 <= n; i += 4)
      for (int k = 0; k < 4; k++) {
        const double p = x[i + k] * w[i + k];
        s[k] += p * p;
      }
    for (int k = 0; i < n; i++, k++) {
      const double p = x[i] * w[i];
      s[k] += p * p;
    }
  } else {
    for (; i + 4 <= n; i += 4)
      for (int k = 0; k < 4; k++) {
        const double p = id[i + k] > 0.0 ? x[i + k] * w[i + k] : 0.0;
        s[k] += p * p;
      }
    for (int k = 0; i < n; i++, k++) {
      const double p = id[i] > 0.0 ? x[i] * w[i] : 0.0;
      s[k] += p * p;
    }
  }
  return (s[0] + s[1]) + (s[2] + s[3]);
}

static double v_dotprod(N_Vector x, N_Vector y) { return dot(LEN(x), DATA(x), DATA(y)); }

static double v_maxnorm(N_Vector x) {
  const size_t n = LEN(x);
  const double *xd = DATA(x);
  double m = 0.0;
  for (size_t i = 0; i < n; i++) m = fmax(m, fabs(xd[i]));
  return m;
}

static double v_min(N_Vector x) {
  const size_t n = LEN(x);
  const double *xd = DATA(x);
  double m = n > 0 ? xd[0] : INFINITY;
  for (size_t i = 1; i < n; i++) m = fmin(m, xd[i]);
  return m;
}

static double v_wsqrsum(N_Vector x, N_Vector w) { return wsqr(LEN(x), DATA(x), DATA(w), NULL); }

static double v_wsqrsummask(N_Vector x, N_Vector w, N_Vector id) {
  return wsqr(LEN(x), DATA(x), DATA(w), DATA(id));
}

static double v_wrmsnorm(N_Vector x, N_Vector w) {
  return sqrt(v_wsqrsum(x, w) / (double)LEN(x));
}

static double v_wrmsnormmask(N_Vector x, N_Vector w, N_Vector id) {
  return sqrt(v_wsqrsummask(x, w, id) / (double)LEN(x));
}

static double v_wl2norm(N_Vector x, N_Vector w) { return sqrt(v_wsqrsum(x, w)); }

static double v_l1norm(N_Vector x) {
  const size_t n = LEN(x);
  const double *xd = DATA(x);
  double s[4] = {0.0, 0.0, 0.0, 0.0};
  size_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int k = 0; k < 4; k++) s[k] += fabs(xd[i + k]);
  for (int k = 0; i < n; i++, k++) s[k] += fabs(xd[i]);
  return (s[0] + s[1]) + (s[2] + s[3]);
}

static booleantype v_invtest(N_Vector x, N_Vector z) {
  const size_t n = LEN(x);
  const double *xd = DATA(x);
  double *zd = DATA(z);
  booleantype ok = SUNTRUE;
  for (size_t i = 0; i < n; i++) {
    if (xd[i] == 0.0) ok = SUNFALSE;
    else zd[i] = 1.0 / xd[i];
  }
  return ok;
}

/* The fused operations (CVODE uses them once they are set; the two of
 * sensitivity analysis over arrays of arrays are left as they were). */

/* z = sum c_i X_i; z may be X_0 (element-wise loops), no other X_i */
static int v_linearcombination(int nv, double *c, N_Vector *X, N_Vector z) {
  const size_t n = LEN(z);
  double *zd = DATA(z);
  if (nv < 1) return -1;
  if (nv == 1) scal(n, c[0], DATA(X[0]), zd);
  else lin(n, c[0], DATA(X[0]), c[1], DATA(X[1]), zd);
  for (int i = 2; i < nv; i++) axpy(n, c[i], DATA(X[i]), zd);
  return 0;
}

/* Z_i = a_i x + Y_i */
static int v_scaleaddmulti(int nv, double *a, N_Vector x, N_Vector *Y, N_Vector *Z) {
  const size_t n = LEN(x);
  for (int i = 0; i < nv; i++) {
    if (Y[i] == Z[i]) axpy(n, a[i], DATA(x), DATA(Z[i]));
    else lin(n, a[i], DATA(x), 1.0, DATA(Y[i]), DATA(Z[i]));
  }
  return 0;
}

static int v_dotprodmulti(int nv, N_Vector x, N_Vector *Y, double *d) {
  for (int i = 0; i < nv; i++) d[i] = dot(LEN(x), DATA(x), DATA(Y[i]));
  return 0;
}

static int v_linearsumvectorarray(int nv, double a, N_Vector *X, double b, N_Vector *Y,
                                  N_Vector *Z) {
  for (int i = 0; i < nv; i++) v_linearsum(a, X[i], b, Y[i], Z[i]);
  return 0;
}

static int v_scalevectorarray(int nv, double *c, N_Vector *X, N_Vector *Z) {
  for (int i = 0; i < nv; i++) v_scale(c[i], X[i], Z[i]);
  return 0;
}

static int v_constvectorarray(int nv, double c, N_Vector *Z) {
  for (int i = 0; i < nv; i++) v_const(c, Z[i]);
  return 0;
}

static int v_wrmsnormvectorarray(int nv, N_Vector *X, N_Vector *W, double *nrm) {
  for (int i = 0; i < nv; i++) nrm[i] = v_wrmsnorm(X[i], W[i]);
  return 0;
}

static int v_wrmsnormmaskvectorarray(int nv, N_Vector *X, N_Vector *W, N_Vector id,
                                     double *nrm) {
  for (int i = 0; i < nv; i++) nrm[i] = v_wrmsnormmask(X[i], W[i], id);
  return 0;
}

void cnf__nvec_ops(N_Vector v) {
  if (v == NULL || N_VGetVectorID(v) != SUNDIALS_NVEC_SERIAL) return;
  struct _generic_N_Vector_Ops *o = v->ops;
  o->nvlinearsum = v_linearsum;
  o->nvconst = v_const;
  o->nvprod = v_prod;
  o->nvdiv = v_div;
  o->nvscale = v_scale;
  o->nvabs = v_abs;
  o->nvinv = v_inv;
  o->nvaddconst = v_addconst;
  o->nvdotprod = v_dotprod;
  o->nvmaxnorm = v_maxnorm;
  o->nvwrmsnorm = v_wrmsnorm;
  o->nvwrmsnormmask = v_wrmsnormmask;
  o->nvmin = v_min;
  o->nvwl2norm = v_wl2norm;
  o->nvl1norm = v_l1norm;
  o->nvcompare = v_compare;
  o->nvinvtest = v_invtest;
  o->nvlinearcombination = v_linearcombination;
  o->nvscaleaddmulti = v_scaleaddmulti;
  o->nvdotprodmulti = v_dotprodmulti;
  o->nvlinearsumvectorarray = v_linearsumvectorarray;
  o->nvscalevectorarray = v_scalevectorarray;
  o->nvconstvectorarray = v_constvectorarray;
  o->nvwrmsnormvectorarray = v_wrmsnormvectorarray;
  o->nvwrmsnormmaskvectorarray = v_wrmsnormmaskvectorarray;
  o->nvdotprodlocal = v_dotprod;
  o->nvmaxnormlocal = v_maxnorm;
  o->nvminlocal = v_min;
  o->nvl1normlocal = v_l1norm;
  o->nvinvtestlocal = v_invtest;
  o->nvwsqrsumlocal = v_wsqrsum;
  o->nvwsqrsummasklocal = v_wsqrsummask;
}
