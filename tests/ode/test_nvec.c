/* test_nvec: the library's vector operations (src/ode/nvec_ops.c) against
 * SUNDIALS' own serial vector on the same data: every operation CVODE
 * calls, at lengths around the loops' unrolling (0-9) and at a parameter
 * quadrature's size, with the output vector equal to an input as CVODE
 * passes it.  Element-wise results must agree to the last bit, or to a
 * rounding of the terms where SUNDIALS computes c (x + y) and the library
 * c x + c y; sums to 1e-14 of their magnitude. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/CUnit.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>

#include "nvec.h"
#include "test_util.h"

static SUNContext sctx;

/* A pair of vectors with equal contents: `f` with the library's
 * operations, `r` SUNDIALS' own. */
typedef struct pair {
  N_Vector f, r;
} pair;

static pair pair_new(size_t n, double lo, double hi, uint64_t seed) {
  pair p = {N_VNew_Serial((sunindextype)n, sctx), N_VNew_Serial((sunindextype)n, sctx)};
  cnf__nvec_ops(p.f);
  if (n > 0) fill_uniform(NV_DATA_S(p.r), n, lo, hi, seed);
  if (n > 0) memcpy(NV_DATA_S(p.f), NV_DATA_S(p.r), n * sizeof(double));
  return p;
}

static void pair_free(pair *p) {
  N_VDestroy(p->f);
  N_VDestroy(p->r);
}

/* Largest |f_i - r_i| / (1 + |r_i|) (0 where both are equal). */
static double rel_diff(const pair *p) {
  const size_t n = (size_t)NV_LENGTH_S(p->r);
  double worst = 0.0;
  for (size_t i = 0; i < n; i++) {
    const double a = NV_Ith_S(p->f, i), b = NV_Ith_S(p->r, i);
    if (a == b) continue;
    const double d = fabs(a - b) / (1.0 + fabs(b));
    if (!(d <= worst)) worst = d;
  }
  return worst;
}

static const size_t lengths[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 300, 9225};
#define NLEN (sizeof lengths / sizeof lengths[0])

static void expect_same(const pair *p, double tol, const char *op, size_t n) {
  const double d = rel_diff(p);
  if (!(d <= tol)) printf("\n  %s, n = %zu: relative difference %.3g > %.3g\n", op, n, d, tol);
  CU_ASSERT_TRUE(d <= tol);
}

static void expect_sum(double f, double r, const char *op, size_t n) {
  const double d = fabs(f - r);
  const double tol = 1e-14 * fabs(r) + 1e-300;
  if (!(d <= tol)) printf("\n  %s, n = %zu: %.17g against %.17g\n", op, n, f, r);
  CU_ASSERT_TRUE(d <= tol);
}

/* The element-wise operations, out of place and in place. */
static void test_elementwise(void) {
  static const double coef[][2] = {{1.0, 1.0}, {1.0, -1.0}, {-1.0, 1.0}, {0.75, 0.75},
                                   {2.5, 1.0}, {1.0, -0.3}, {-0.2, 3.0}, {0.0, 1.0}};
  for (size_t k = 0; k < NLEN; k++) {
    const size_t n = lengths[k];
    pair x = pair_new(n, -2.0, 3.0, 1 + k), y = pair_new(n, 0.5, 4.0, 100 + k);
    pair z = pair_new(n, -1.0, 1.0, 200 + k);
    for (size_t c = 0; c < sizeof coef / sizeof coef[0]; c++) {
      const double a = coef[c][0], b = coef[c][1];
      N_VLinearSum(a, x.f, b, y.f, z.f);
      N_VLinearSum(a, x.r, b, y.r, z.r);
      expect_same(&z, 1e-15, "linear sum", n);
      N_VLinearSum(a, x.f, b, z.f, z.f); /* z = a x + b z */
      N_VLinearSum(a, x.r, b, z.r, z.r);
      expect_same(&z, 1e-15, "linear sum into y", n);
      N_VLinearSum(a, z.f, b, y.f, z.f); /* z = a z + b y */
      N_VLinearSum(a, z.r, b, y.r, z.r);
      expect_same(&z, 1e-15, "linear sum into x", n);
    }
    N_VScale(-1.5, x.f, z.f), N_VScale(-1.5, x.r, z.r);
    expect_same(&z, 0.0, "scale", n);
    N_VScale(1.0, x.f, z.f), N_VScale(1.0, x.r, z.r);
    expect_same(&z, 0.0, "scale by 1", n);
    N_VScale(0.3, z.f, z.f), N_VScale(0.3, z.r, z.r);
    expect_same(&z, 0.0, "scale in place", n);
    N_VProd(x.f, y.f, z.f), N_VProd(x.r, y.r, z.r);
    expect_same(&z, 0.0, "product", n);
    N_VDiv(x.f, y.f, z.f), N_VDiv(x.r, y.r, z.r);
    expect_same(&z, 0.0, "quotient", n);
    N_VAbs(x.f, z.f), N_VAbs(x.r, z.r);
    expect_same(&z, 0.0, "abs", n);
    N_VInv(y.f, z.f), N_VInv(y.r, z.r);
    expect_same(&z, 0.0, "inverse", n);
    N_VAddConst(x.f, 0.7, z.f), N_VAddConst(x.r, 0.7, z.r);
    expect_same(&z, 0.0, "add constant", n);
    N_VCompare(1.0, x.f, z.f), N_VCompare(1.0, x.r, z.r);
    expect_same(&z, 0.0, "compare", n);
    N_VConst(-4.25, z.f), N_VConst(-4.25, z.r);
    expect_same(&z, 0.0, "constant", n);
    /* InvTest: a zero entry reports false and leaves its output alone */
    CU_ASSERT_EQUAL(N_VInvTest(y.f, z.f), N_VInvTest(y.r, z.r));
    expect_same(&z, 0.0, "inverse test", n);
    if (n > 2) {
      NV_Ith_S(y.f, n / 2) = NV_Ith_S(y.r, n / 2) = 0.0;
      N_VConst(9.0, z.f), N_VConst(9.0, z.r);
      CU_ASSERT_FALSE(N_VInvTest(y.f, z.f));
      CU_ASSERT_FALSE(N_VInvTest(y.r, z.r));
      expect_same(&z, 0.0, "inverse test with a zero", n);
    }
    pair_free(&x), pair_free(&y), pair_free(&z);
  }
}

/* Norms, dot products and the local reductions of the distributed wrapper. */
static void test_reductions(void) {
  for (size_t k = 1; k < NLEN; k++) {
    const size_t n = lengths[k];
    pair x = pair_new(n, -2.0, 3.0, 11 + k), w = pair_new(n, 0.1, 2.0, 111 + k);
    pair id = pair_new(n, -1.0, 1.0, 211 + k);
    expect_sum(N_VDotProd(x.f, w.f), N_VDotProd(x.r, w.r), "dot product", n);
    expect_sum(N_VDotProdLocal(x.f, w.f), N_VDotProdLocal(x.r, w.r), "local dot product", n);
    expect_sum(N_VWrmsNorm(x.f, w.f), N_VWrmsNorm(x.r, w.r), "WRMS norm", n);
    expect_sum(N_VWrmsNormMask(x.f, w.f, id.f), N_VWrmsNormMask(x.r, w.r, id.r),
               "masked WRMS norm", n);
    expect_sum(N_VWSqrSumLocal(x.f, w.f), N_VWSqrSumLocal(x.r, w.r), "local square sum", n);
    expect_sum(N_VWSqrSumMaskLocal(x.f, w.f, id.f), N_VWSqrSumMaskLocal(x.r, w.r, id.r),
               "local masked square sum", n);
    expect_sum(N_VWL2Norm(x.f, w.f), N_VWL2Norm(x.r, w.r), "weighted L2 norm", n);
    expect_sum(N_VL1Norm(x.f), N_VL1Norm(x.r), "L1 norm", n);
    expect_sum(N_VL1NormLocal(x.f), N_VL1NormLocal(x.r), "local L1 norm", n);
    CU_ASSERT_EQUAL(N_VMaxNorm(x.f), N_VMaxNorm(x.r));
    CU_ASSERT_EQUAL(N_VMaxNormLocal(x.f), N_VMaxNormLocal(x.r));
    CU_ASSERT_EQUAL(N_VMin(x.f), N_VMin(x.r));
    CU_ASSERT_EQUAL(N_VMinLocal(x.f), N_VMinLocal(x.r));
    /* a NaN reaches the norm CVODE's error test uses */
    NV_Ith_S(x.f, n - 1) = NAN;
    CU_ASSERT_TRUE(isnan(N_VWrmsNorm(x.f, w.f)));
    pair_free(&x), pair_free(&w), pair_free(&id);
  }
}

/* The fused operations against the unfused ones they replace. */
static void test_fused(void) {
  enum { NV = 5 };
  double c[NV] = {1.0, -0.5, 0.25, 2.0, -1.25};
  for (size_t k = 0; k < NLEN; k++) {
    const size_t n = lengths[k];
    pair X[NV], Y[NV], Z[NV];
    N_Vector Xf[NV], Xr[NV], Yf[NV], Yr[NV], Zf[NV], Zr[NV];
    for (int i = 0; i < NV; i++) {
      X[i] = pair_new(n, -1.0, 1.0, 300 + 10 * k + (size_t)i);
      Y[i] = pair_new(n, -1.0, 1.0, 400 + 10 * k + (size_t)i);
      Z[i] = pair_new(n, -1.0, 1.0, 500 + 10 * k + (size_t)i);
      Xf[i] = X[i].f, Xr[i] = X[i].r, Yf[i] = Y[i].f, Yr[i] = Y[i].r;
      Zf[i] = Z[i].f, Zr[i] = Z[i].r;
    }
    for (int nv = 1; nv <= NV; nv++) {
      /* z = sum c_i X_i, out of place and with z = X_0 */
      CU_ASSERT_EQUAL(N_VLinearCombination(nv, c, Xf, Zf[0]), 0);
      N_VScale(c[0], Xr[0], Zr[0]);
      for (int i = 1; i < nv; i++) N_VLinearSum(c[i], Xr[i], 1.0, Zr[0], Zr[0]);
      expect_same(&Z[0], 1e-15, "linear combination", n);
      N_VScale(1.0, Xr[0], Zr[0]), N_VScale(1.0, Xr[0], Zf[0]);
      Xf[0] = Zf[0], Xr[0] = Zr[0];
      CU_ASSERT_EQUAL(N_VLinearCombination(nv, c, Xf, Zf[0]), 0);
      N_VScale(c[0], Xr[0], Zr[0]);
      for (int i = 1; i < nv; i++) N_VLinearSum(c[i], Xr[i], 1.0, Zr[0], Zr[0]);
      expect_same(&Z[0], 1e-15, "linear combination into X_0", n);
      Xf[0] = X[0].f, Xr[0] = X[0].r;
      /* Z_i = c_i x + Y_i, out of place and in place */
      CU_ASSERT_EQUAL(N_VScaleAddMulti(nv, c, Xf[1], Yf, Zf), 0);
      for (int i = 0; i < nv; i++) N_VLinearSum(c[i], Xr[1], 1.0, Yr[i], Zr[i]);
      for (int i = 0; i < nv; i++) expect_same(&Z[i], 0.0, "scale-add multi", n);
      CU_ASSERT_EQUAL(N_VScaleAddMulti(nv, c, Xf[1], Zf, Zf), 0);
      for (int i = 0; i < nv; i++) N_VLinearSum(c[i], Xr[1], 1.0, Zr[i], Zr[i]);
      for (int i = 0; i < nv; i++) expect_same(&Z[i], 0.0, "scale-add multi in place", n);
      double df[NV], dr[NV];
      CU_ASSERT_EQUAL(N_VDotProdMulti(nv, Xf[0], Yf, df), 0);
      for (int i = 0; i < nv; i++) dr[i] = N_VDotProd(Xr[0], Yr[i]);
      for (int i = 0; i < nv; i++) expect_sum(df[i], dr[i], "dot product multi", n);
      /* the vector arrays */
      CU_ASSERT_EQUAL(N_VLinearSumVectorArray(nv, 0.5, Xf, -2.0, Yf, Zf), 0);
      for (int i = 0; i < nv; i++) N_VLinearSum(0.5, Xr[i], -2.0, Yr[i], Zr[i]);
      for (int i = 0; i < nv; i++) expect_same(&Z[i], 0.0, "linear sum array", n);
      CU_ASSERT_EQUAL(N_VScaleVectorArray(nv, c, Zf, Zf), 0);
      for (int i = 0; i < nv; i++) N_VScale(c[i], Zr[i], Zr[i]);
      for (int i = 0; i < nv; i++) expect_same(&Z[i], 0.0, "scale array", n);
      CU_ASSERT_EQUAL(N_VConstVectorArray(nv, 3.5, Zf), 0);
      for (int i = 0; i < nv; i++) N_VConst(3.5, Zr[i]);
      for (int i = 0; i < nv; i++) expect_same(&Z[i], 0.0, "constant array", n);
      if (n > 0) {
        CU_ASSERT_EQUAL(N_VWrmsNormVectorArray(nv, Xf, Yf, df), 0);
        for (int i = 0; i < nv; i++) expect_sum(df[i], N_VWrmsNorm(Xr[i], Yr[i]), "WRMS array", n);
        CU_ASSERT_EQUAL(N_VWrmsNormMaskVectorArray(nv, Xf, Yf, Zf[0], df), 0);
        for (int i = 0; i < nv; i++)
          expect_sum(df[i], N_VWrmsNormMask(Xr[i], Yr[i], Zr[0]), "masked WRMS array", n);
      }
    }
    /* clones keep the library's operations */
    N_Vector cl = N_VClone(Xf[0]);
    CU_ASSERT_PTR_EQUAL(cl->ops->nvlinearsum, Xf[0]->ops->nvlinearsum);
    CU_ASSERT_PTR_NOT_EQUAL(cl->ops->nvlinearsum, Xr[0]->ops->nvlinearsum);
    N_VDestroy(cl);
    for (int i = 0; i < NV; i++) pair_free(&X[i]), pair_free(&Y[i]), pair_free(&Z[i]);
  }
}

static const test_entry tests[] = {
    {"element-wise operations equal SUNDIALS' serial ones", test_elementwise},
    {"norms and dot products to 1e-14", test_reductions},
    {"fused and array operations equal their unfused sequences", test_fused},
    {NULL, NULL},
};

int main(void) {
  if (SUNContext_Create(NULL, &sctx) != 0) return 1;
  static const char *const names[] = {"vector operations"};
  static const test_entry *const all[] = {tests};
  const int rc = run_suites(names, all, 1);
  SUNContext_Free(&sctx);
  return rc;
}
