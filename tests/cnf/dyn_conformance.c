/* dyn_conformance.c: one set of checks run over every velocity field.
 *
 * conformance_run(dyn, theta) takes any field and checks its ops, or the
 * fallbacks of dyn.c that stand in for missing ones, against central
 * differences of f alone:
 *
 *   jvp    jv_kb = J_b v_kb for K random directions and for v == NULL
 *          (the unit vectors, K = D), with and without dz.
 *   f_div  the exact trace (v == NULL) against tr of the difference
 *          Jacobian; K random probes against sum_k v_kb . J_b v_kb.
 *   vjp    gz = dS/dz and gth += dS/dtheta for
 *          S = sum_b a_b . f_b + sum_b w_b div_b, with the exact trace, with
 *          probes, and with w == NULL (S = sum_b a_b . f_b); gth == NULL
 *          accepted; gth accumulates.  Fields without vjp must say
 *          CNF_EUNSUPPORTED.
 *   batch  B = 700 rows (more than one of the MLP's internal chunks) give
 *          the same f, jvp, div and vjp as each row evaluated alone.
 *
 * Tolerances.  Central differences with h = 1e-5 of functions whose third
 * derivatives are O(1) are accurate to h^2/6 ~ 2e-11 plus rounding
 * eps/h ~ 1e-11, relative to the scale of the values; the checks allow
 * 1e-7 of that scale, far below any error in the math (which would be
 * O(1)).  The batch check compares the same arithmetic in a different
 * grouping: 1e-12.
 *
 * Fields: the MLP for each layer type x activation (D = 3, hidden 7-5, and
 * one without hidden layers), the linear field, the cubic field with
 * Q = I and with a random orthogonal Q, and the two user fields of
 * user_fields.c (f only; f and vjp). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf_testing.h"
#include "dyn_impl.h"

#define FD_H 1e-5
#define FD_TOL 1e-7
#define BATCH_TOL 1e-12
#define T_EVAL 0.37 /* a time that is not special for the t-dependent layers */

/* "<field>: <check>" in the local buffer `label`, for check_close. */
#define LBL(what) (snprintf(label, sizeof label, "%s: %s", fc->label, what), label)

/* ---- the scalar S of cnf_dynamics.h, by f and f_div ------------------ */

typedef struct s_args {
  cnf_dyn *dyn;
  double t;
  size_t B, K;
  double *z;            /* (B, D), perturbed by the differences */
  double *theta;        /* (P), perturbed by the differences */
  const double *a;      /* (B, D) */
  const double *w;      /* (B) or NULL */
  const double *v;      /* (K, B, D) or NULL */
  double *f, *div;      /* scratch (B, D), (B) */
  int rc;               /* first failure of an op */
} s_args;

static double s_value(s_args *s) {
  const size_t D = cnf_dyn_dim(s->dyn);
  int rc = s->w != NULL
               ? cnf_dyn_f_div(s->dyn, s->t, s->B, s->K, s->z, s->theta, s->v,
                               s->f, s->div)
               : cnf_dyn_f(s->dyn, s->t, s->B, s->z, s->theta, s->f);
  if (rc != 0 && s->rc == 0) s->rc = rc;
  double S = 0.0;
  for (size_t i = 0; i < s->B * D; i++) S += s->a[i] * s->f[i];
  if (s->w != NULL)
    for (size_t b = 0; b < s->B; b++) S += s->w[b] * s->div[b];
  return S;
}

static double s_of_z(const double *z, void *user) {
  s_args *s = user;
  (void)z; /* central_diff perturbs s->z in place */
  return s_value(s);
}

static double s_of_theta(const double *th, void *user) {
  (void)th;
  return s_value(user);
}

/* ---- the checks ------------------------------------------------------ */

typedef struct field_case {
  const char *label;
  cnf_dyn *dyn;
  double *theta; /* (P) or NULL */
  int has_vjp;   /* the field has a vjp op */
} field_case;

static void check_jvp(const field_case *fc) {
  char label[160];
  cnf_dyn *dyn = fc->dyn;
  const size_t D = cnf_dyn_dim(dyn), B = 3, K = 2;
  double *z = malloc(B * D * sizeof *z), *v = malloc(K * B * D * sizeof *v),
         *J = malloc(B * D * D * sizeof *J), *f = malloc(B * D * sizeof *f),
         *dz = malloc(B * D * sizeof *dz),
         *jv = malloc(D * B * D * sizeof *jv),
         *ref = malloc(D * B * D * sizeof *ref);
  fill_gauss(z, B * D, 101);
  fill_gauss(v, K * B * D, 102);
  CU_ASSERT_EQUAL_FATAL(fd_jacobian(dyn, T_EVAL, B, z, fc->theta, FD_H, J), 0);
  CU_ASSERT_EQUAL(cnf_dyn_f(dyn, T_EVAL, B, z, fc->theta, f), 0);

  /* K random directions */
  for (size_t k = 0; k < K; k++)
    for (size_t b = 0; b < B; b++)
      for (size_t i = 0; i < D; i++) {
        double s = 0.0;
        for (size_t j = 0; j < D; j++)
          s += J[(b * D + i) * D + j] * v[(k * B + b) * D + j];
        ref[(k * B + b) * D + i] = s;
      }
  CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, T_EVAL, B, K, z, fc->theta, v, dz, jv), 0);
  CHECK_SCALED(jv, ref, K * B * D, FD_TOL, LBL("jvp J v"));
  CHECK_SCALED(dz, f, B * D, 1e-14, LBL("jvp dz = f"));
  memset(jv, 0, K * B * D * sizeof *jv);
  CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, T_EVAL, B, K, z, fc->theta, v, NULL, jv), 0);
  CHECK_SCALED(jv, ref, K * B * D, FD_TOL, LBL("jvp J v (dz NULL)"));

  /* v == NULL: the unit vectors, so jv_kb is column k of J_b */
  for (size_t k = 0; k < D; k++)
    for (size_t b = 0; b < B; b++)
      for (size_t i = 0; i < D; i++)
        ref[(k * B + b) * D + i] = J[(b * D + i) * D + k];
  CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, T_EVAL, B, D, z, fc->theta, NULL, dz, jv), 0);
  CHECK_SCALED(jv, ref, D * B * D, FD_TOL, LBL("jvp unit vectors (columns of J)"));
  CHECK_SCALED(dz, f, B * D, 1e-14, LBL("jvp unit vectors dz = f"));
  /* the unit vectors are exactly D directions */
  CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, T_EVAL, B, D + 1, z, fc->theta, NULL, dz, jv),
                  CNF_EINVAL);

  free(z), free(v), free(J), free(f), free(dz), free(jv), free(ref);
}

static void check_div(const field_case *fc) {
  char label[160];
  cnf_dyn *dyn = fc->dyn;
  const size_t D = cnf_dyn_dim(dyn), B = 3, K = 3;
  double *z = malloc(B * D * sizeof *z), *v = malloc(K * B * D * sizeof *v),
         *J = malloc(B * D * D * sizeof *J), *f = malloc(B * D * sizeof *f),
         *dz = malloc(B * D * sizeof *dz), div[3], ref[3];
  fill_gauss(z, B * D, 201);
  fill_gauss(v, K * B * D, 202);
  CU_ASSERT_EQUAL_FATAL(fd_jacobian(dyn, T_EVAL, B, z, fc->theta, FD_H, J), 0);
  CU_ASSERT_EQUAL(cnf_dyn_f(dyn, T_EVAL, B, z, fc->theta, f), 0);
  /* the errors of a trace are those of J's entries: scale by max |J| */
  const double jscale = max_abs(J, B * D * D);

  for (size_t b = 0; b < B; b++) {
    ref[b] = 0.0;
    for (size_t i = 0; i < D; i++) ref[b] += J[(b * D + i) * D + i];
  }
  CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, T_EVAL, B, D, z, fc->theta, NULL, dz, div), 0);
  CU_ASSERT_TRUE(check_close(div, ref, B, FD_TOL, FD_TOL * D * jscale,
                             LBL("f_div exact = tr J")));
  CHECK_SCALED(dz, f, B * D, 1e-14, LBL("f_div dz = f"));

  for (size_t b = 0; b < B; b++) {
    ref[b] = 0.0;
    for (size_t k = 0; k < K; k++) {
      const double *vk = v + (k * B + b) * D;
      for (size_t i = 0; i < D; i++)
        for (size_t j = 0; j < D; j++) ref[b] += vk[i] * J[(b * D + i) * D + j] * vk[j];
    }
  }
  double vscale = max_abs(v, K * B * D);
  CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, T_EVAL, B, K, z, fc->theta, v, dz, div), 0);
  CU_ASSERT_TRUE(check_close(div, ref, B, FD_TOL,
                             FD_TOL * K * D * D * jscale * vscale * vscale,
                             LBL("f_div probes = sum_k v.Jv")));
  CHECK_SCALED(dz, f, B * D, 1e-14, LBL("f_div probes dz = f"));

  CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, T_EVAL, B, D - 1, z, fc->theta, NULL, dz, div),
                  CNF_EINVAL);
  free(z), free(v), free(J), free(f), free(dz);
}

/* One vjp mode against differences of S: w and v as given (v NULL with w
 * means the exact trace). */
static void check_vjp_mode(const field_case *fc, size_t K, const double *v,
                           const double *w, const char *mode) {
  cnf_dyn *dyn = fc->dyn;
  const size_t D = cnf_dyn_dim(dyn), P = cnf_dyn_param_count(dyn), B = 3;
  const size_t Pn = P > 0 ? P : 1;
  double *z = malloc(B * D * sizeof *z), *a = malloc(B * D * sizeof *a),
         *th = malloc(Pn * sizeof *th), *f = malloc(B * D * sizeof *f),
         div[3], *gz = malloc(B * D * sizeof *gz),
         *gz2 = malloc(B * D * sizeof *gz2), *gz_ref = malloc(B * D * sizeof *gz_ref),
         *gth0 = malloc(Pn * sizeof *gth0), *gth = malloc(Pn * sizeof *gth),
         *dth = malloc(Pn * sizeof *dth), *gth_ref = malloc(Pn * sizeof *gth_ref);
  char label[160];
  fill_gauss(z, B * D, 301);
  fill_gauss(a, B * D, 302);
  fill_gauss(gth0, Pn, 303);
  if (P > 0) memcpy(th, fc->theta, P * sizeof *th);
  else th[0] = 0.0;

  s_args s = {dyn, T_EVAL, B, K, z, P > 0 ? th : NULL, a, w, v, f, div, 0};
  for (size_t i = 0; i < B * D; i++) gz_ref[i] = central_diff(s_of_z, z, i, FD_H, &s);
  for (size_t p = 0; p < P; p++) gth_ref[p] = central_diff(s_of_theta, th, p, FD_H, &s);
  CU_ASSERT_EQUAL(s.rc, 0);

  /* gth starts at gth0: the op must add dS/dtheta to it */
  memcpy(gth, gth0, Pn * sizeof *gth);
  CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, T_EVAL, B, K, z, s.theta, a, w, v, NULL, gz, gth), 0);
  snprintf(label, sizeof label, "%s: vjp gz (%s)", fc->label, mode);
  CHECK_SCALED(gz, gz_ref, B * D, FD_TOL, label);
  for (size_t p = 0; p < Pn; p++) dth[p] = gth[p] - gth0[p];
  if (P > 0) {
    snprintf(label, sizeof label, "%s: vjp gth - gth0 (%s)", fc->label, mode);
    CHECK_SCALED(dth, gth_ref, P, FD_TOL, label);
  } else {
    CU_ASSERT_EQUAL(gth[0], gth0[0]); /* P = 0: nothing written */
  }
  /* a second call adds the same gradient again */
  CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, T_EVAL, B, K, z, s.theta, a, w, v, NULL, gz2, gth), 0);
  for (size_t p = 0; p < P; p++) dth[p] = (gth[p] - gth0[p]) / 2.0;
  snprintf(label, sizeof label, "%s: vjp accumulates (%s)", fc->label, mode);
  if (P > 0) CHECK_SCALED(dth, gth_ref, P, FD_TOL, label);
  CHECK_SCALED(gz2, gz, B * D, 1e-14, LBL("vjp gz repeatable"));
  /* gth == NULL skips the parameter gradient; gz is unchanged, and the
   * optional dz output is f itself */
  memset(gz2, 0, B * D * sizeof *gz2);
  double *dz = malloc(B * D * sizeof *dz), *fz = malloc(B * D * sizeof *fz);
  for (size_t i = 0; i < B * D; i++) dz[i] = NAN;
  CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, T_EVAL, B, K, z, s.theta, a, w, v, dz, gz2, NULL), 0);
  snprintf(label, sizeof label, "%s: vjp gz with gth NULL (%s)", fc->label, mode);
  CHECK_SCALED(gz2, gz, B * D, 1e-14, label);
  CU_ASSERT_EQUAL(cnf_dyn_f(dyn, T_EVAL, B, z, s.theta, fz), 0);
  snprintf(label, sizeof label, "%s: vjp dz = f (%s)", fc->label, mode);
  CHECK_SCALED(dz, fz, B * D, 1e-14, label);
  free(dz), free(fz);

  free(z), free(a), free(th), free(f), free(gz), free(gz2), free(gz_ref);
  free(gth0), free(gth), free(dth), free(gth_ref);
}

static void check_vjp(const field_case *fc, cnf_ctx *ctx) {
  cnf_dyn *dyn = fc->dyn;
  const size_t D = cnf_dyn_dim(dyn), B = 3, K = 2;
  double w[3], *v = malloc(K * B * D * sizeof *v);
  fill_uniform(w, B, -1.5, 1.5, 401);
  fill_gauss(v, K * B * D, 402);
  if (!fc->has_vjp) {
    double z[64] = {0}, gz[64];
    CU_ASSERT_FATAL(B * D <= 64);
    cnf_ctx_clear_error(ctx);
    CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, T_EVAL, B, 0, z, fc->theta, z, NULL, NULL, NULL, gz, NULL),
                    CNF_EUNSUPPORTED);
    CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), CNF_EUNSUPPORTED);
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), cnf_dyn_name(dyn)));
    free(v);
    return;
  }
  check_vjp_mode(fc, D, NULL, w, "exact trace");
  check_vjp_mode(fc, K, v, w, "2 probes");
  check_vjp_mode(fc, 0, NULL, NULL, "w NULL");
  /* with w == NULL, K and v are ignored */
  check_vjp_mode(fc, K, v, NULL, "w NULL, v ignored");
  free(v);
}

/* RNODE's scalar S + sum_b ck_b |f_b|^2 + cj_b sum_k |J_b v_kb|^2 by f and
 * the field's tangents, for the differences of check_vjp_reg. */
typedef struct reg_args {
  s_args s;
  const double *ck, *cj; /* (B) or NULL */
  double *jv;            /* (K, B, D) scratch */
} reg_args;

static double reg_value(const double *x, void *user) {
  (void)x;
  reg_args *r = user;
  s_args *s = &r->s;
  const size_t D = cnf_dyn_dim(s->dyn), BD = s->B * D;
  double S = s_value(s);
  int rc = cnf_dyn_jvp(s->dyn, s->t, s->B, s->K, s->z, s->theta, s->v, s->f, r->jv);
  if (rc != 0 && s->rc == 0) s->rc = rc;
  for (size_t b = 0; b < s->B; b++) {
    for (size_t i = 0; r->ck && i < D; i++) S += r->ck[b] * s->f[b * D + i] * s->f[b * D + i];
    for (size_t k = 0; r->cj && k < s->K; k++)
      for (size_t i = 0; i < D; i++) {
        double j = r->jv[k * BD + b * D + i];
        S += r->cj[b] * j * j;
      }
  }
  return S;
}

/* The regularised sweep (vjp_reg, or dyn.c's kinetic-only fallback) against
 * central differences of reg_value; without the op, the Jacobian term must
 * be refused. */
static void check_vjp_reg(const field_case *fc) {
  if (!fc->has_vjp) return;
  char label[160];
  cnf_dyn *dyn = fc->dyn;
  const size_t D = cnf_dyn_dim(dyn), P = cnf_dyn_param_count(dyn), B = 3, K = 2;
  const int has_reg = strncmp(fc->label, "mlp", 3) == 0;
  double *z = malloc(B * D * sizeof *z), *a = malloc(B * D * sizeof *a),
         *v = malloc(K * B * D * sizeof *v), *jv = malloc(K * B * D * sizeof *jv),
         *f = malloc(B * D * sizeof *f), *gz = malloc(B * D * sizeof *gz),
         *gz_ref = malloc(B * D * sizeof *gz_ref), *th = malloc((P + 1) * sizeof *th),
         *gth = calloc(P + 1, sizeof *gth), *gth_ref = malloc((P + 1) * sizeof *gth_ref);
  double w[3], ck[3], cj[3], div[3];
  fill_gauss(z, B * D, 501);
  fill_gauss(a, B * D, 502);
  fill_gauss(v, K * B * D, 503);
  fill_uniform(w, B, -1.0, 1.0, 504);
  fill_uniform(ck, B, 0.1, 1.0, 505);
  fill_uniform(cj, B, 0.1, 1.0, 506);
  if (P > 0) memcpy(th, fc->theta, P * sizeof *th);
  for (int with_j = 0; with_j <= 1; with_j++) {
    reg_args r = {{dyn, T_EVAL, B, K, z, P > 0 ? th : NULL, a, w, v, f, div, 0}, ck,
                  with_j ? cj : NULL, jv};
    memset(gth, 0, (P + 1) * sizeof *gth);
    int rc = cnf__dyn_vjp_reg(dyn, T_EVAL, B, K, z, r.s.theta, a, w, ck, r.cj, v, NULL, gz,
                              P > 0 ? gth : NULL);
    if (with_j && !has_reg) {
      CU_ASSERT_EQUAL(rc, CNF_EUNSUPPORTED);
      continue;
    }
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    for (size_t i = 0; i < B * D; i++) gz_ref[i] = central_diff(reg_value, z, i, FD_H, &r);
    for (size_t p = 0; p < P; p++) gth_ref[p] = central_diff(reg_value, th, p, FD_H, &r);
    CU_ASSERT_EQUAL(r.s.rc, 0);
    snprintf(label, sizeof label, "%s: vjp_reg gz (%s)", fc->label,
             with_j ? "kinetic + Jacobian" : "kinetic");
    CHECK_SCALED(gz, gz_ref, B * D, FD_TOL, label);
    if (P > 0) CHECK_SCALED(gth, gth_ref, P, FD_TOL, LBL("vjp_reg gth"));
  }
  free(z), free(a), free(v), free(jv), free(f), free(gz), free(gz_ref), free(th), free(gth),
      free(gth_ref);
}

/* Row b of a (K, B, D) tangent set as a (K, 1, D) one. */
static void slice_dirs(const double *v, size_t K, size_t B, size_t D, size_t b,
                       double *out) {
  for (size_t k = 0; k < K; k++)
    memcpy(out + k * D, v + (k * B + b) * D, D * sizeof *out);
}

static void check_batch(const field_case *fc) {
  cnf_dyn *dyn = fc->dyn;
  const size_t D = cnf_dyn_dim(dyn), P = cnf_dyn_param_count(dyn), B = 700,
               K = 2, Kx = D;
  const size_t Kmax = K > Kx ? K : Kx, Pn = P > 0 ? P : 1;
  double *z = malloc(B * D * sizeof *z), *v = malloc(K * B * D * sizeof *v),
         *a = malloc(B * D * sizeof *a), *w = malloc(B * sizeof *w),
         *f = malloc(B * D * sizeof *f), *f1 = malloc(B * D * sizeof *f1),
         *jv = malloc(Kmax * B * D * sizeof *jv),
         *jv1 = malloc(Kmax * B * D * sizeof *jv1), *div = malloc(B * sizeof *div),
         *div1 = malloc(B * sizeof *div1), *gz = malloc(B * D * sizeof *gz),
         *gz1 = malloc(B * D * sizeof *gz1), *gth = calloc(Pn, sizeof *gth),
         *gth1 = calloc(Pn, sizeof *gth1), vb[64], jvb[64];
  CU_ASSERT_FATAL(Kmax * D <= 64);
  fill_gauss(z, B * D, 501);
  fill_gauss(v, K * B * D, 502);
  fill_gauss(a, B * D, 503);
  fill_uniform(w, B, -1.0, 1.0, 504);
  int rc1 = 0;
  char label[160];

  /* f */
  CU_ASSERT_EQUAL(cnf_dyn_f(dyn, T_EVAL, B, z, fc->theta, f), 0);
  for (size_t b = 0; b < B; b++)
    rc1 |= cnf_dyn_f(dyn, T_EVAL, 1, z + b * D, fc->theta, f1 + b * D);
  CU_ASSERT_EQUAL(rc1, 0);
  snprintf(label, sizeof label, "%s: batch f", fc->label);
  CHECK_SCALED(f, f1, B * D, BATCH_TOL, label);

  /* jvp with probes and with the unit vectors */
  CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, T_EVAL, B, K, z, fc->theta, v, NULL, jv), 0);
  for (size_t b = 0; b < B; b++) {
    slice_dirs(v, K, B, D, b, vb);
    rc1 |= cnf_dyn_jvp(dyn, T_EVAL, 1, K, z + b * D, fc->theta, vb, NULL, jvb);
    for (size_t k = 0; k < K; k++)
      memcpy(jv1 + (k * B + b) * D, jvb + k * D, D * sizeof *jvb);
  }
  CU_ASSERT_EQUAL(rc1, 0);
  snprintf(label, sizeof label, "%s: batch jvp", fc->label);
  CHECK_SCALED(jv, jv1, K * B * D, BATCH_TOL, label);
  CU_ASSERT_EQUAL(cnf_dyn_jvp(dyn, T_EVAL, B, Kx, z, fc->theta, NULL, f, jv), 0);
  for (size_t b = 0; b < B; b++) {
    rc1 |= cnf_dyn_jvp(dyn, T_EVAL, 1, Kx, z + b * D, fc->theta, NULL, f1 + b * D, jvb);
    for (size_t k = 0; k < Kx; k++)
      memcpy(jv1 + (k * B + b) * D, jvb + k * D, D * sizeof *jvb);
  }
  CU_ASSERT_EQUAL(rc1, 0);
  snprintf(label, sizeof label, "%s: batch jvp unit vectors", fc->label);
  CHECK_SCALED(jv, jv1, Kx * B * D, BATCH_TOL, label);
  CHECK_SCALED(f, f1, B * D, BATCH_TOL, label);

  /* f_div, exact and with probes */
  for (int probes = 0; probes <= 1; probes++) {
    const size_t Kd = probes ? K : Kx;
    const double *vd = probes ? v : NULL;
    CU_ASSERT_EQUAL(cnf_dyn_f_div(dyn, T_EVAL, B, Kd, z, fc->theta, vd, f, div), 0);
    for (size_t b = 0; b < B; b++) {
      if (probes) slice_dirs(v, K, B, D, b, vb);
      rc1 |= cnf_dyn_f_div(dyn, T_EVAL, 1, Kd, z + b * D, fc->theta,
                           probes ? vb : NULL, f1 + b * D, div1 + b);
    }
    CU_ASSERT_EQUAL(rc1, 0);
    snprintf(label, sizeof label, "%s: batch f_div (%s)", fc->label,
             probes ? "probes" : "exact");
    CHECK_SCALED(div, div1, B, BATCH_TOL, label);
    CHECK_SCALED(f, f1, B * D, BATCH_TOL, label);
  }

  /* vjp, exact and with probes: gz row by row, gth summed over rows */
  for (int probes = 0; fc->has_vjp && probes <= 1; probes++) {
    const size_t Kd = probes ? K : Kx;
    const double *vd = probes ? v : NULL;
    memset(gth, 0, Pn * sizeof *gth);
    memset(gth1, 0, Pn * sizeof *gth1);
    CU_ASSERT_EQUAL(cnf_dyn_vjp(dyn, T_EVAL, B, Kd, z, fc->theta, a, w, vd, NULL, gz, gth), 0);
    for (size_t b = 0; b < B; b++) {
      if (probes) slice_dirs(v, K, B, D, b, vb);
      rc1 |= cnf_dyn_vjp(dyn, T_EVAL, 1, Kd, z + b * D, fc->theta, a + b * D,
                         w + b, probes ? vb : NULL, NULL, gz1 + b * D, gth1);
    }
    CU_ASSERT_EQUAL(rc1, 0);
    snprintf(label, sizeof label, "%s: batch vjp gz (%s)", fc->label,
             probes ? "probes" : "exact");
    CHECK_SCALED(gz, gz1, B * D, BATCH_TOL, label);
    snprintf(label, sizeof label, "%s: batch vjp gth (%s)", fc->label,
             probes ? "probes" : "exact");
    if (P > 0) CHECK_SCALED(gth, gth1, P, BATCH_TOL, label);
  }

  free(z), free(v), free(a), free(w), free(f), free(f1), free(jv), free(jv1);
  free(div), free(div1), free(gz), free(gz1), free(gth), free(gth1);
}

/* Every check on one field. */
static void conformance_run(const char *label, cnf_dyn *dyn,
                            const double *theta, int has_vjp, cnf_ctx *ctx) {
  CU_ASSERT_PTR_NOT_NULL_FATAL(dyn);
  CU_ASSERT_PTR_NOT_NULL(cnf_dyn_name(dyn));
  field_case fc = {label, dyn, (double *)theta, has_vjp};
  CU_ASSERT_TRUE(cnf_dyn_dim(dyn) > 0);
  CU_ASSERT_TRUE(cnf_dyn_param_count(dyn) == 0 || theta != NULL);
  check_jvp(&fc);
  check_div(&fc);
  check_vjp(&fc, ctx);
  check_vjp_reg(&fc);
  check_batch(&fc);
}

/* ---- the fields -------------------------------------------------------- */

static void run_mlp(cnf_layer layer, cnf_act act, size_t n_hidden) {
  cnf_ctx *ctx = new_ctx();
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 3);
  cfg.n_hidden = n_hidden;
  cfg.hidden[0] = 7;
  cfg.hidden[1] = 5;
  cfg.layer = layer;
  cfg.act = act;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_mlp_create(&dyn, ctx, &cfg), 0);
  const size_t P = cnf_dyn_param_count(dyn);
  CU_ASSERT_EQUAL(P, cnf_mlp_param_count(&cfg));
  double *theta = malloc(P * sizeof *theta);
  CU_ASSERT_EQUAL(cnf_mlp_init_params(&cfg, 77 + layer * 10 + act, theta), 0);
  /* larger than the initialisation, so the activations curve */
  for (size_t p = 0; p < P; p++) theta[p] *= 1.7;
  char label[96];
  snprintf(label, sizeof label, "mlp %s %s, %zu hidden", cnf_layer_name(layer),
           cnf_act_name(act), n_hidden);
  conformance_run(label, dyn, theta, 1, ctx);
  free(theta);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void test_mlp_concatsquash_tanh(void) { run_mlp(CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 2); }
static void test_mlp_concatsquash_softplus(void) { run_mlp(CNF_LAYER_CONCATSQUASH, CNF_ACT_SOFTPLUS, 2); }
static void test_mlp_concat_tanh(void) { run_mlp(CNF_LAYER_CONCAT, CNF_ACT_TANH, 2); }
static void test_mlp_concat_softplus(void) { run_mlp(CNF_LAYER_CONCAT, CNF_ACT_SOFTPLUS, 2); }
static void test_mlp_ignore_tanh(void) { run_mlp(CNF_LAYER_IGNORE, CNF_ACT_TANH, 2); }
static void test_mlp_ignore_softplus(void) { run_mlp(CNF_LAYER_IGNORE, CNF_ACT_SOFTPLUS, 2); }
static void test_mlp_no_hidden(void) { run_mlp(CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 0); }

/* The batch split over threads: f, div, J v, f_div and the z-gradient are
 * the serial ones bit for bit (rows are independent); the reverse sweep's
 * z-gradient to rounding (its dgemm kernels depend on the row count), the
 * parameter gradient is the same sum in another grouping (1e-13), and the
 * same thread count gives the same bits on every run. */
static void test_mlp_threads(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 3);
  CU_ASSERT_EQUAL_FATAL(cnf_mlp_parse_hidden(&cfg, "16-16"), 0);
  cnf_dyn *ser = NULL, *par = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_mlp_create(&ser, ctx, &cfg), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_mlp_create(&par, ctx, &cfg), 0);
  const size_t D = 3, B = 701, K = 2, P = cnf_dyn_param_count(ser); /* 2103 rows: split */
  double *th = malloc(P * sizeof *th), *z = malloc(B * D * sizeof *z),
         *v = malloc(K * B * D * sizeof *v), *a = malloc(B * D * sizeof *a);
  double *out[2][6];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 6; j++) out[i][j] = calloc(K * B * D + P, sizeof(double));
  double w[701], ck[701], cj[701];
  CU_ASSERT_EQUAL(cnf_mlp_init_params(&cfg, 5, th), 0);
  fill_gauss(z, B * D, 1);
  fill_gauss(v, K * B * D, 2);
  fill_gauss(a, B * D, 3);
  fill_uniform(w, B, -1, 1, 4);
  fill_uniform(ck, B, 0, 1, 5);
  fill_uniform(cj, B, 0, 1, 6);
  CU_ASSERT_EQUAL(cnf_dyn_mlp_threads(par), 1);
  for (size_t n = 2; n <= 3; n++) {
    CU_ASSERT_EQUAL_FATAL(cnf_dyn_mlp_set_threads(par, n), 0);
    CU_ASSERT_EQUAL(cnf_dyn_mlp_threads(par), n);
    CU_ASSERT_EQUAL_FATAL(cnf_dyn_reserve(ser, B, K), 0);
    CU_ASSERT_EQUAL_FATAL(cnf_dyn_reserve(par, B, K), 0);
    for (int i = 0; i < 2; i++) {
      cnf_dyn *d = i ? par : ser;
      double **o = out[i];
      CU_ASSERT_EQUAL(cnf_dyn_f(d, 0.3, B, z, th, o[0]), 0);
      CU_ASSERT_EQUAL(cnf_dyn_f_div(d, 0.3, B, K, z, th, v, o[1], o[1] + B * D), 0);
      CU_ASSERT_EQUAL(cnf_dyn_jvp(d, 0.3, B, K, z, th, v, NULL, o[2]), 0);
      CU_ASSERT_EQUAL(cnf_dyn_f_div(d, 0.3, B, D, z, th, NULL, o[3], o[3] + B * D), 0);
      memset(o[5], 0, P * sizeof(double));
      CU_ASSERT_EQUAL(cnf__dyn_vjp_reg(d, 0.3, B, K, z, th, a, w, ck, cj, v, o[4] + B * D, o[4],
                                       o[5]),
                      0);
    }
    CU_ASSERT_EQUAL(memcmp(out[0][0], out[1][0], B * D * sizeof(double)), 0);
    CU_ASSERT_EQUAL(memcmp(out[0][1], out[1][1], (B * D + B) * sizeof(double)), 0);
    CU_ASSERT_EQUAL(memcmp(out[0][2], out[1][2], K * B * D * sizeof(double)), 0);
    CU_ASSERT_EQUAL(memcmp(out[0][3], out[1][3], (B * D + B) * sizeof(double)), 0);
    CHECK_SCALED(out[1][4], out[0][4], 2 * B * D, 1e-14, "threaded vjp: gz and f");
    CHECK_SCALED(out[1][5], out[0][5], P, 1e-13, "threaded parameter gradient");
    /* the same thread count: the same bits */
    double *g2 = calloc(P, sizeof *g2), *gz2 = malloc(B * D * sizeof *gz2);
    CU_ASSERT_EQUAL(cnf__dyn_vjp_reg(par, 0.3, B, K, z, th, a, w, ck, cj, v, NULL, gz2, g2), 0);
    CU_ASSERT_EQUAL(memcmp(g2, out[1][5], P * sizeof(double)), 0);
    free(g2), free(gz2);
  }
  CU_ASSERT_EQUAL(cnf_dyn_mlp_set_threads(par, 0), CNF_EINVAL);
  cnf_dyn *lin = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&lin, ctx, 2), 0);
  CU_ASSERT_EQUAL(cnf_dyn_mlp_set_threads(lin, 2), CNF_EINVAL);
  cnf_dyn_free(lin);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 6; j++) free(out[i][j]);
  free(th), free(z), free(v), free(a);
  cnf_dyn_free(ser);
  cnf_dyn_free(par);
  cnf_ctx_free(ctx);
}

static void test_linear(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t D = 3, P = D * D + D;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_linear_create(&dyn, ctx, D), 0);
  CU_ASSERT_EQUAL(cnf_dyn_param_count(dyn), P);
  double theta[12];
  fill_gauss(theta, P, 601); /* a random, non-symmetric A and b */
  conformance_run("linear", dyn, theta, 1, ctx);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void run_cubic(size_t D, int rotated) {
  cnf_ctx *ctx = new_ctx();
  double Q[16];
  if (rotated) random_orthogonal(Q, D, 701);
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_dyn_cubic_create(&dyn, ctx, D, rotated ? Q : NULL), 0);
  CU_ASSERT_EQUAL(cnf_dyn_param_count(dyn), 0);
  conformance_run(rotated ? "cubic, random Q" : "cubic, Q = I", dyn, NULL, 1, ctx);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void test_cubic_identity(void) { run_cubic(3, 0); }
static void test_cubic_rotated(void) { run_cubic(4, 1); }

static void run_user(int with_vjp) {
  cnf_ctx *ctx = new_ctx();
  const size_t D = 3, P = D * D + D;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(with_vjp ? user_vjp_create(&dyn, ctx, D)
                                 : user_f_create(&dyn, ctx, D), 0);
  double theta[12];
  fill_gauss(theta, P, 801);
  conformance_run(cnf_dyn_name(dyn), dyn, theta, with_vjp, ctx);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

static void test_user_f_only(void) { run_user(0); }
static void test_user_f_vjp(void) { run_user(1); }

/* A field whose output is not finite: with CNF_ENABLE_CHECKS the entry
 * point names the field, the op and the index (CNF_ENONFINITE); without,
 * the value passes through (the ode layer then retries a smaller step). */
static void test_nonfinite_output(void) {
  cnf_ctx *ctx = new_ctx();
  const size_t D = 2, B = 3;
  cnf_dyn *dyn = NULL;
  CU_ASSERT_EQUAL_FATAL(user_f_create(&dyn, ctx, D), 0);
  double theta[6], z[6], dz[6];
  fill_gauss(theta, 6, 811);
  fill_gauss(z, 6, 812);
  theta[4] = NAN; /* c_0: row 0 of every sample */
  int rc = cnf_dyn_f(dyn, 0.5, B, z, theta, dz);
#if defined(CNF_ENABLE_CHECKS)
  CU_ASSERT_EQUAL(rc, CNF_ENONFINITE);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "'user-f': f returned nan at index 0"));
#else
  CU_ASSERT_EQUAL(rc, 0);
  CU_ASSERT_TRUE(isnan(dz[0]) && isfinite(dz[1]));
#endif
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
}

/* A dimension-0 field and a type without f are refused. */
static void test_create_errors(void) {
  cnf_ctx *ctx = new_ctx();
  cnf_dyn *dyn = (cnf_dyn *)ctx; /* must be reset to NULL */
  static const cnf_dyn_type no_f = {.name = "no-f"};
  CU_ASSERT_EQUAL(cnf_dyn_create(&dyn, ctx, &no_f, NULL, 0, 2, 0), CNF_EINVAL);
  CU_ASSERT_PTR_NULL(dyn);
  CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_dyn_linear_create(&dyn, ctx, 0), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_dyn_cubic_create(&dyn, ctx, 0, NULL), CNF_EINVAL);
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 0);
  CU_ASSERT_EQUAL(cnf_dyn_mlp_create(&dyn, ctx, &cfg), CNF_EINVAL);
  CU_ASSERT_PTR_NULL(dyn);
  cnf_dyn_free(NULL);
  cnf_ctx_free(ctx);
}

const test_entry conformance_tests[] = {
    {"MLP batch split over threads: the serial results", test_mlp_threads},
    {"non-finite output (CNF_ENABLE_CHECKS)", test_nonfinite_output},
    {"mlp concatsquash tanh 3-7-5-3", test_mlp_concatsquash_tanh},
    {"mlp concatsquash softplus 3-7-5-3", test_mlp_concatsquash_softplus},
    {"mlp concat tanh 3-7-5-3", test_mlp_concat_tanh},
    {"mlp concat softplus 3-7-5-3", test_mlp_concat_softplus},
    {"mlp ignore tanh 3-7-5-3", test_mlp_ignore_tanh},
    {"mlp ignore softplus 3-7-5-3", test_mlp_ignore_softplus},
    {"mlp concatsquash tanh 3-3 (no hidden layer)", test_mlp_no_hidden},
    {"linear field, random A and b", test_linear},
    {"cubic field, Q = I", test_cubic_identity},
    {"cubic field, random orthogonal Q", test_cubic_rotated},
    {"user field with f only (dyn.c fallbacks)", test_user_f_only},
    {"user field with f and vjp", test_user_f_vjp},
    {"creation errors", test_create_errors},
    {NULL, NULL},
};
