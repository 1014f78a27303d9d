/* dyn.c: field instances, the one place where missing ops fall back on
 * the ones a field has, Hutchinson probes, and the augmented (z, Delta)
 * system integrated by the ode layer.
 *
 * Augmented system of one block, B samples, N = B D + B unknowns:
 *
 *     dz_b/dt     = f(t, z_b)
 *     dDelta_b/dt = -div_b,   div_b = tr J_b            (exact), or
 *                             (1/K) sum_k eps_kb . J_b eps_kb (Hutchinson)
 *
 * Its Jacobian-times-vector for BDF's Newton iteration is
 * [J v_z ; 0]: the Delta rows' dependence on z is left out.  Nothing
 * depends on Delta, so Newton still converges (as a modified Newton
 * iteration); only the step's error estimate decides accuracy. */
#include <float.h>
#include <math.h>
#include <string.h>

#include <gsl/gsl_randist.h>
#include <gsl/gsl_rng.h>

#include "dyn_impl.h"

int cnf_dyn_create(cnf_dyn **out, cnf_ctx *ctx, const cnf_dyn_type *type,
                   void *state, int own_state, size_t D, size_t P) {
  if (out == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "dyn: out is NULL");
  *out = NULL;
  if (ctx == NULL || type == NULL || type->f == NULL || D == 0)
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "dyn: need a context, a type with an f op and D > 0");
  cnf_dyn *d = cnf__calloc(1, sizeof *d);
  if (d == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "dyn: out of memory");
  d->type = type;
  d->state = state;
  d->own_state = own_state;
  d->D = D;
  d->P = P;
  d->ctx = ctx;
  *out = d;
  return 0;
}

static void free_scratch(cnf_dyn *d) {
  cnf__free(d->jv);
  cnf__free(d->zp);
  cnf__free(d->fp);
  cnf__free(d->fm);
  cnf__free(d->y);
  cnf__free(d->atol);
  d->jv = d->zp = d->fp = d->fm = d->y = d->atol = NULL;
  d->res_B = d->res_K = 0;
}

void cnf_dyn_free(cnf_dyn *d) {
  if (d == NULL) return;
  if (d->own_state && d->type->free != NULL) d->type->free(d->state);
  free_scratch(d);
  cnf__ode_free(d->ode);
  cnf__free(d);
}

size_t cnf_dyn_dim(const cnf_dyn *d) { return d ? d->D : 0; }
size_t cnf_dyn_param_count(const cnf_dyn *d) { return d ? d->P : 0; }
void *cnf_dyn_state(const cnf_dyn *d) { return d ? d->state : NULL; }
const char *cnf_dyn_name(const cnf_dyn *d) {
  return d && d->type->name ? d->type->name : "?";
}

int cnf_dyn_reserve(cnf_dyn *d, size_t B, size_t K) {
  if (d == NULL) return CNF_EINVAL;
  if (B == 0)
    return CNF_ERROR(d->ctx, CNF_EINVAL, "field '%s': workspace for an empty batch (B = 0)",
                     cnf_dyn_name(d));
  if (d->type->reserve != NULL) {
    int rc = d->type->reserve(d->state, B, K);
    if (rc != 0)
      return CNF_ERROR(d->ctx, rc, "field '%s': no workspace for %zu samples with %zu tangents",
                       cnf_dyn_name(d), B, K);
  }
  if (B <= d->res_B && K <= d->res_K) return 0;
  if (B < d->res_B) B = d->res_B;
  if (K < d->res_K) K = d->res_K;
  free_scratch(d);
  const size_t BD = B * d->D, N = BD + 3 * B; /* (z, Delta, E_K, E_J) */
  d->jv = cnf__dalloc(d->ctx, (K > 0 ? K : 1) * BD);
  d->zp = cnf__dalloc(d->ctx, BD);
  d->fp = cnf__dalloc(d->ctx, BD);
  d->fm = cnf__dalloc(d->ctx, BD);
  d->y = cnf__dalloc(d->ctx, N);
  d->atol = cnf__dalloc(d->ctx, N);
  if (!d->jv || !d->zp || !d->fp || !d->fm || !d->y || !d->atol) {
    free_scratch(d);
    return CNF_ENOMEM;
  }
  d->res_B = B;
  d->res_K = K;
  return 0;
}

/* ---- fallbacks ------------------------------------------------------- */

/* Direction k of sample b: v[k][b], or e_k when v is NULL. */
static void direction(const double *v, size_t k, size_t b, size_t B, size_t D,
                      double *out) {
  if (v != NULL) {
    memcpy(out, v + (k * B + b) * D, D * sizeof(double));
  } else {
    memset(out, 0, D * sizeof(double));
    out[k] = 1.0;
  }
}

/* The step of the central difference along direction u at point zb:
 * cbrt(eps) (1 + |zb|_inf) / |u|_inf, 0 for a zero direction. */
static double fd_step(const double *zb, const double *u, size_t D) {
  double zn = 0.0, un = 0.0;
  for (size_t i = 0; i < D; i++) {
    zn = fmax(zn, fabs(zb[i]));
    un = fmax(un, fabs(u[i]));
  }
  return un > 0 ? cbrt(DBL_EPSILON) * (1.0 + zn) / un : 0.0;
}

/* z + s h_b u_b for every sample b into zp (s = +1 or -1), u in fm. */
static void fd_point(cnf_dyn *d, size_t B, const double *z, double s) {
  const size_t D = d->D;
  for (size_t b = 0; b < B; b++) {
    const double *zb = z + b * D, *ub = d->fm + b * D;
    double h = fd_step(zb, ub, D);
    for (size_t i = 0; i < D; i++) d->zp[b * D + i] = zb[i] + s * h * ub[i];
  }
}

/* jv_k = J v_k by central differences of f along v_k, one direction at a
 * time.  Uses zp, fp and fm. */
static int fd_jvp(cnf_dyn *d, double t, size_t B, size_t K, const double *z,
                  const double *theta, const double *v, double *jv) {
  const size_t D = d->D;
  for (size_t k = 0; k < K; k++) {
    double *out = jv + k * B * D;
    for (size_t b = 0; b < B; b++) direction(v, k, b, B, D, d->fm + b * D);
    fd_point(d, B, z, +1.0);
    int rc = d->type->f(d->state, t, B, d->zp, theta, d->fp);
    if (rc != 0) return rc;
    fd_point(d, B, z, -1.0);
    rc = d->type->f(d->state, t, B, d->zp, theta, out);
    if (rc != 0) return rc;
    for (size_t b = 0; b < B; b++) {
      double h = fd_step(z + b * D, d->fm + b * D, D);
      for (size_t i = 0; i < D; i++)
        out[b * D + i] = h > 0 ? (d->fp[b * D + i] - out[b * D + i]) / (2.0 * h) : 0.0;
    }
  }
  return 0;
}

/* Exact directions (v NULL) are the D unit vectors, so K must be D. */
static int bad_exact_K(cnf_dyn *d, size_t K) {
  return CNF_ERROR(d->ctx, CNF_EINVAL,
                   "field '%s': the exact directions (v NULL) need K = D = %zu, not K = %zu",
                   cnf_dyn_name(d), d->D, K);
}

static int op_f_impl(cnf_dyn *d, double t, size_t B, const double *z,
              const double *theta, double *dz) {
  return d->type->f(d->state, t, B, z, theta, dz);
}

static int op_jvp_impl(cnf_dyn *d, double t, size_t B, size_t K, const double *z,
                const double *theta, const double *v, double *dz,
                double *jv) {
  if (v == NULL && K != d->D) return bad_exact_K(d, K);
  if (d->type->jvp != NULL)
    return d->type->jvp(d->state, t, B, K, z, theta, v, dz, jv);
  int rc = cnf_dyn_reserve(d, B, 0);
  if (rc != 0) return rc;
  if (dz != NULL) {
    rc = d->type->f(d->state, t, B, z, theta, dz);
    if (rc != 0) return rc;
  }
  return fd_jvp(d, t, B, K, z, theta, v, jv);
}

static int op_f_div_impl(cnf_dyn *d, double t, size_t B, size_t K, const double *z,
                  const double *theta, const double *v, double *dz,
                  double *div) {
  const size_t D = d->D;
  if (v == NULL && K != D) return bad_exact_K(d, K);
  if (d->type->f_div != NULL)
    return d->type->f_div(d->state, t, B, K, z, theta, v, dz, div);
  int rc = cnf_dyn_reserve(d, B, K);
  if (rc != 0) return rc;
  for (size_t b = 0; b < B; b++) div[b] = 0.0;
  if (d->type->jvp != NULL || d->type->vjp == NULL) {
    /* J v by the field's tangent, or by differences of f */
    rc = cnf_dyn_jvp(d, t, B, K, z, theta, v, dz, d->jv);
    if (rc != 0) return rc;
    for (size_t k = 0; k < K; k++)
      for (size_t b = 0; b < B; b++) {
        const double *jvb = d->jv + (k * B + b) * D;
        if (v == NULL) {
          div[b] += jvb[k];
        } else {
          const double *vb = v + (k * B + b) * D;
          for (size_t i = 0; i < D; i++) div[b] += vb[i] * jvb[i];
        }
      }
    return 0;
  }
  /* v^T J by the reverse sweep, one direction at a time */
  rc = d->type->f(d->state, t, B, z, theta, dz);
  if (rc != 0) return rc;
  for (size_t k = 0; k < K; k++) {
    for (size_t b = 0; b < B; b++) direction(v, k, b, B, D, d->zp + b * D);
    rc = d->type->vjp(d->state, t, B, 0, z, theta, d->zp, NULL, NULL, NULL, d->fp, NULL);
    if (rc != 0) return rc;
    for (size_t b = 0; b < B; b++)
      for (size_t i = 0; i < D; i++) div[b] += d->zp[b * D + i] * d->fp[b * D + i];
  }
  return 0;
}

static int op_vjp_impl(cnf_dyn *d, double t, size_t B, size_t K, const double *z,
                const double *theta, const double *a, const double *w,
                const double *v, double *dz, double *gz, double *gth) {
  if (d->type->vjp == NULL)
    return CNF_ERROR(d->ctx, CNF_EUNSUPPORTED,
                     "field '%s' has no vector-Jacobian product (vjp op)",
                     cnf_dyn_name(d));
  if (w != NULL && v == NULL && K != d->D) return bad_exact_K(d, K);
  return d->type->vjp(d->state, t, B, K, z, theta, a, w, v, dz, gz, gth);
}

/* With only the kinetic term the seed a + 2 ck f needs f alone: one
 * forward evaluation into fp, the seed in fm, then the plain sweep. */
static int op_vjp_reg_impl(cnf_dyn *d, double t, size_t B, size_t K, const double *z,
                           const double *theta, const double *a, const double *w,
                           const double *ck, const double *cj, const double *v, double *dz,
                           double *gz, double *gth) {
  if (ck == NULL && cj == NULL) return op_vjp_impl(d, t, B, K, z, theta, a, w, v, dz, gz, gth);
  if (w != NULL && v == NULL && K != d->D) return bad_exact_K(d, K);
  if (d->type->vjp_reg != NULL)
    return d->type->vjp_reg(d->state, t, B, K, z, theta, a, w, ck, cj, v, dz, gz, gth);
  if (cj != NULL)
    return CNF_ERROR(d->ctx, CNF_EUNSUPPORTED,
                     "field '%s' has no regularised vector-Jacobian product (vjp_reg op), "
                     "which the Jacobian-norm regulariser needs", cnf_dyn_name(d));
  int rc = cnf_dyn_reserve(d, B, 0);
  if (rc != 0) return rc;
  const size_t D = d->D;
  rc = d->type->f(d->state, t, B, z, theta, d->fp);
  if (rc != 0) return rc;
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < D; i++)
      d->fm[b * D + i] = a[b * D + i] + 2.0 * ck[b] * d->fp[b * D + i];
  rc = op_vjp_impl(d, t, B, K, z, theta, d->fm, w, v, NULL, gz, gth);
  if (rc == 0 && dz != NULL) memcpy(dz, d->fp, B * D * sizeof(double));
  return rc;
}

/* ---- the public entry points: the op, then (with CNF_ENABLE_CHECKS) a
 * scan of its outputs, so a field that returns NaN or Inf is named at
 * once instead of surfacing as a solver failure later ---------------- */

static int check_out(cnf_dyn *d, int rc, const char *op, double t, const double *x, size_t n) {
#if defined(CNF_ENABLE_CHECKS)
  for (size_t i = 0; rc == 0 && x != NULL && i < n; i++)
    if (!isfinite(x[i]))
      return CNF_ERROR(d->ctx, CNF_ENONFINITE, "field '%s': %s returned %g at index %zu (t = %g)",
                       cnf_dyn_name(d), op, x[i], i, t);
#else
  (void)d, (void)op, (void)t, (void)x, (void)n;
#endif
  return rc;
}

int cnf_dyn_f(cnf_dyn *d, double t, size_t B, const double *z, const double *theta, double *dz) {
  int rc = op_f_impl(d, t, B, z, theta, dz);
  return check_out(d, rc, "f", t, dz, B * d->D);
}

int cnf_dyn_jvp(cnf_dyn *d, double t, size_t B, size_t K, const double *z, const double *theta,
                const double *v, double *dz, double *jv) {
  int rc = op_jvp_impl(d, t, B, K, z, theta, v, dz, jv);
  rc = check_out(d, rc, "jvp (f)", t, dz, B * d->D);
  return check_out(d, rc, "jvp", t, jv, K * B * d->D);
}

int cnf_dyn_f_div(cnf_dyn *d, double t, size_t B, size_t K, const double *z,
                  const double *theta, const double *v, double *dz, double *div) {
  int rc = op_f_div_impl(d, t, B, K, z, theta, v, dz, div);
  rc = check_out(d, rc, "f_div (f)", t, dz, B * d->D);
  return check_out(d, rc, "f_div (div)", t, div, B);
}

int cnf_dyn_vjp(cnf_dyn *d, double t, size_t B, size_t K, const double *z, const double *theta,
                const double *a, const double *w, const double *v, double *dz, double *gz,
                double *gth) {
  int rc = op_vjp_impl(d, t, B, K, z, theta, a, w, v, dz, gz, gth);
  rc = check_out(d, rc, "vjp (f)", t, dz, B * d->D);
  return check_out(d, rc, "vjp", t, gz, B * d->D);
}

int cnf__dyn_vjp_reg(cnf_dyn *d, double t, size_t B, size_t K, const double *z,
                     const double *theta, const double *a, const double *w, const double *ck,
                     const double *cj, const double *v, double *dz, double *gz, double *gth) {
  int rc = op_vjp_reg_impl(d, t, B, K, z, theta, a, w, ck, cj, v, dz, gz, gth);
  rc = check_out(d, rc, "vjp (f)", t, dz, B * d->D);
  return check_out(d, rc, "vjp", t, gz, B * d->D);
}

/* ---- per-row times ---------------------------------------------------
 * Without the type's op, the scalar-time op runs on each maximal run
 * [b0, b1) of consecutive rows with t[b] == t[b0]. */

static size_t run_end(const double *t, size_t b0, size_t B) {
  size_t b1 = b0 + 1;
  while (b1 < B && t[b1] == t[b0]) b1++;
  return b1;
}

int cnf_dyn_f_rows(cnf_dyn *d, const double *t, size_t B, const double *z, const double *theta,
                   double *dz) {
  if (d == NULL || t == NULL || z == NULL || dz == NULL)
    return CNF_ERROR(d ? d->ctx : NULL, CNF_EINVAL, "f_rows: NULL argument");
  if (B == 0) return 0;
  if (d->P > 0 && theta == NULL)
    return CNF_ERROR(d->ctx, CNF_EINVAL, "f_rows: field '%s' needs parameters", cnf_dyn_name(d));
  const size_t D = d->D;
  int rc = 0;
  if (d->type->f_rows != NULL) {
    rc = d->type->f_rows(d->state, t, B, z, theta, dz);
  } else {
    for (size_t b0 = 0, b1; b0 < B && rc == 0; b0 = b1) {
      b1 = run_end(t, b0, B);
      rc = d->type->f(d->state, t[b0], b1 - b0, z + b0 * D, theta, dz + b0 * D);
    }
  }
  return check_out(d, rc, "f_rows", t[0], dz, B * D);
}

int cnf_dyn_vjp_rows(cnf_dyn *d, const double *t, size_t B, const double *z, const double *theta,
                     const double *a, const double *ck, double *dz, double *gz, double *gth) {
  if (d == NULL || t == NULL || z == NULL || a == NULL)
    return CNF_ERROR(d ? d->ctx : NULL, CNF_EINVAL, "vjp_rows: NULL argument");
  if (B == 0) return 0;
  if (d->P > 0 && theta == NULL)
    return CNF_ERROR(d->ctx, CNF_EINVAL, "vjp_rows: field '%s' needs parameters", cnf_dyn_name(d));
  const size_t D = d->D;
  int rc = 0;
  if (d->type->vjp_rows != NULL) {
    rc = d->type->vjp_rows(d->state, t, B, z, theta, a, ck, dz, gz, gth);
  } else {
    if (d->type->vjp == NULL)
      return CNF_ERROR(d->ctx, CNF_EUNSUPPORTED,
                       "field '%s' has no vector-Jacobian product (vjp op)", cnf_dyn_name(d));
    /* scratch: zp for gz when not wanted (the scalar op always writes it),
     * fp for f and fm for the seeds a + 2 ck f */
    if ((gz == NULL || ck != NULL) && cnf_dyn_reserve(d, B, 0) != 0)
      return CNF_ERROR(d->ctx, CNF_ENOMEM, "vjp_rows: out of memory for %zu samples", B);
    double *g = gz != NULL ? gz : d->zp;
    for (size_t b0 = 0, b1; b0 < B && rc == 0; b0 = b1) {
      b1 = run_end(t, b0, B);
      const size_t n = b1 - b0, o = b0 * D;
      const double *seed = a + o;
      if (ck != NULL) {
        rc = d->type->f(d->state, t[b0], n, z + o, theta, d->fp + o);
        for (size_t i = 0; i < n * D && rc == 0; i++)
          d->fm[o + i] = a[o + i] + 2.0 * ck[b0 + i / D] * d->fp[o + i];
        seed = d->fm + o;
      }
      if (rc == 0)
        rc = d->type->vjp(d->state, t[b0], n, 0, z + o, theta, seed, NULL, NULL,
                          dz != NULL ? dz + o : NULL, g + o, gth);
    }
  }
  rc = check_out(d, rc, "vjp_rows (f)", t[0], dz, B * D);
  return check_out(d, rc, "vjp_rows", t[0], gz, B * D);
}

/* ---- probes ---------------------------------------------------------- */

int cnf_probes_draw(cnf_trace trace, uint64_t seed, size_t K, size_t B,
                    size_t D, double *eps) {
  if (eps == NULL || trace == CNF_TRACE_EXACT) return CNF_EINVAL;
  gsl_rng *r = gsl_rng_alloc(gsl_rng_mt19937);
  if (r == NULL) return CNF_ENOMEM;
  gsl_rng_set(r, cnf__seed32(seed));
  const size_t n = K * B * D;
  if (trace == CNF_TRACE_GAUSS) {
    for (size_t i = 0; i < n; i++) eps[i] = gsl_ran_gaussian_ziggurat(r, 1.0);
  } else {
    for (size_t i = 0; i < n; i++) eps[i] = gsl_rng_uniform_int(r, 2) ? 1.0 : -1.0;
  }
  gsl_rng_free(r);
  return 0;
}

/* ---- the augmented system -------------------------------------------- */

/* The plain system takes f_div.  The regularisers and the variance need
 * the K tangents J v_k themselves: one jvp, then per sample the probe
 * values p_k = v_k . J v_k (J_kk for the exact trace), their sum, their
 * sample variance (Welford) and sum_k |J v_k|^2. */
int cnf__aug_rhs(double t, const double *y, double *ydot, void *user) {
  cnf__aug *a = user;
  cnf_dyn *d = a->dyn;
  const size_t B = a->B, D = d->D, BD = B * D, K = a->K;
  double *div = ydot + BD;
  if (a->nreg == 0 && !a->want_var) {
    int rc = cnf_dyn_f_div(d, t, B, K, y, a->theta, a->eps, ydot, div);
    if (rc != 0) return rc;
    for (size_t b = 0; b < B; b++) div[b] *= -a->scale;
    return 0;
  }
  int rc = cnf_dyn_jvp(d, t, B, K, y, a->theta, a->eps, ydot, d->jv);
  if (rc != 0) return rc;
  for (size_t b = 0; b < B; b++) {
    double sum = 0.0, mean = 0.0, m2 = 0.0, jn = 0.0;
    for (size_t k = 0; k < K; k++) {
      const double *jvb = d->jv + (k * B + b) * D;
      double p = 0.0;
      if (a->eps == NULL) {
        p = jvb[k];
      } else {
        const double *vb = a->eps + (k * B + b) * D;
        for (size_t i = 0; i < D; i++) p += vb[i] * jvb[i];
      }
      for (size_t i = 0; i < D; i++) jn += jvb[i] * jvb[i];
      sum += p;
      double dm = p - mean;
      mean += dm / (double)(k + 1);
      m2 += dm * (p - mean);
    }
    div[b] = -a->scale * sum;
    if (a->nreg > 0) {
      const double *fb = ydot + b * D;
      double kin = 0.0;
      for (size_t i = 0; i < D; i++) kin += fb[i] * fb[i];
      ydot[BD + B + b] = kin;
      ydot[BD + 2 * B + b] = a->scale * jn;
    }
    if (a->want_var) {
      a->var_sum += m2 / (double)(K - 1);
      a->var_n++;
    }
  }
  return 0;
}

int cnf__aug_jtv(double t, const double *y, const double *fy, const double *v,
                 double *jv, void *user) {
  (void)fy;
  cnf__aug *a = user;
  const size_t BD = a->B * a->dyn->D;
  int rc = cnf_dyn_jvp(a->dyn, t, a->B, 1, y, a->theta, v, NULL, jv);
  if (rc != 0) return rc;
  memset(jv + BD, 0, (cnf__aug_size(a) - BD) * sizeof(double));
  return 0;
}

static int solve_aug(cnf_dyn *d, const double *theta, const cnf_options *opt, double t0,
                     size_t m, const double *tout, size_t B, size_t K, const double *eps,
                     int nreg, double *z, double *delta, double *ereg, double *z_out,
                     double *delta_out, cnf_stats *st);

int cnf__dyn_solve_aug(cnf_dyn *d, const double *theta, const cnf_options *opt, double t0,
                       size_t m, const double *tout, size_t B, size_t K, const double *eps,
                       int nreg, double *z, double *delta, double *ereg, double *z_out,
                       double *delta_out, cnf_stats *st) {
  if (d == NULL) return CNF_EINVAL;
  if (B == 0) return CNF_ERROR(d->ctx, CNF_EINVAL, "solve: empty batch (B = 0)");
  if (opt == NULL || z == NULL || delta == NULL || tout == NULL || m == 0 ||
      (nreg != 0 && (nreg != 2 || ereg == NULL)))
    return CNF_ERROR(d->ctx, CNF_EINVAL, "solve: NULL argument or no output time");
  if (d->P > 0 && theta == NULL)
    return CNF_ERROR(d->ctx, CNF_EINVAL, "solve: field '%s' needs parameters",
                     cnf_dyn_name(d));
  if (eps == NULL) K = d->D;
  if (K == 0) return CNF_ERROR(d->ctx, CNF_EINVAL, "solve: zero probes");
  int rc = cnf_dyn_reserve(d, B, K);
  if (rc != 0) return CNF_ERROR(d->ctx, CNF_ENOMEM, "solve: out of memory for %zu samples", B);
  int prec_saved = 0;
  rc = cnf__dyn_precision_begin(d, opt->precision, 1, &prec_saved);
  if (rc != 0) return rc;
  rc = solve_aug(d, theta, opt, t0, m, tout, B, K, eps, nreg, z, delta, ereg, z_out, delta_out, st);
  cnf__dyn_precision_end(d, prec_saved);
  return rc;
}

/* cnf__dyn_solve_aug with its arguments checked and the precision set. */
static int solve_aug(cnf_dyn *d, const double *theta, const cnf_options *opt, double t0,
                     size_t m, const double *tout, size_t B, size_t K, const double *eps,
                     int nreg, double *z, double *delta, double *ereg, double *z_out,
                     double *delta_out, cnf_stats *st) {
  int rc = 0;
  cnf__aug a = {.dyn = d, .theta = theta, .B = B, .K = K, .eps = eps,
                .scale = eps != NULL ? 1.0 / (double)K : 1.0, .nreg = nreg,
                .want_var = opt->report_var && st != NULL && eps != NULL && K >= 2 &&
                            d->type->jvp != NULL};
  const size_t BD = B * d->D, N = cnf__aug_size(&a);
  if (d->ode != NULL &&
      (cnf__ode_size(d->ode) != N || cnf__ode_dist(d->ode) != cnf__dist_on(d->ctx))) {
    cnf__ode_free(d->ode);
    d->ode = NULL;
  }
  if (d->ode == NULL) {
    rc = cnf__ode_create(&d->ode, d->ctx, N);
    if (rc != 0) return rc;
  }
  const int want = z_out != NULL || delta_out != NULL;
  double *yout = want ? cnf__dalloc(d->ctx, m * N) : NULL;
  if (want && yout == NULL) return CNF_ENOMEM;
  memcpy(d->y, z, BD * sizeof(double));
  memcpy(d->y + BD, delta, B * sizeof(double));
  if (nreg > 0) memcpy(d->y + BD + B, ereg, (size_t)nreg * B * sizeof(double));
  double atol_logp = opt->atol_logp > 0 ? opt->atol_logp : opt->atol;
  for (size_t i = 0; i < BD; i++) d->atol[i] = opt->atol;
  for (size_t i = BD; i < N; i++) d->atol[i] = i < BD + B ? atol_logp : CNF__ATOL_FREE;

  cnf_ode_opts o = {
      .method = opt->method,
      .rtol = opt->rtol,
      .atol = opt->atol,
      .atol_vec = d->atol,
      .max_steps = opt->max_steps,
      .max_order = opt->max_order,
      .h_init = opt->h_init,
      .max_nonlin_iters = opt->max_nonlin_iters,
  };
  rc = cnf__ode_solve_times(d->ode, &o, cnf__aug_rhs, cnf__aug_jtv, &a, t0, m, tout, d->y, yout,
                            st);
  if (st != NULL) {
    st->trace_var_sum += a.var_sum;
    st->trace_var_n += a.var_n;
  }
  if (rc == 0) {
    memcpy(z, d->y, BD * sizeof(double));
    memcpy(delta, d->y + BD, B * sizeof(double));
    if (nreg > 0) memcpy(ereg, d->y + BD + B, (size_t)nreg * B * sizeof(double));
    for (size_t k = 0; want && k < m; k++) {
      if (z_out != NULL) memcpy(z_out + k * BD, yout + k * N, BD * sizeof(double));
      if (delta_out != NULL) memcpy(delta_out + k * B, yout + k * N + BD, B * sizeof(double));
    }
  }
  cnf__free(yout);
  return rc;
}

int cnf_dyn_solve_times(cnf_dyn *d, const double *theta, const cnf_options *opt, double t0,
                        size_t m, const double *tout, size_t B, size_t K, const double *eps,
                        double *z, double *delta, double *z_out, double *delta_out,
                        cnf_stats *st) {
  if (d == NULL) return CNF_EINVAL;
  cnf_options o;
  int rc = cnf__options_read(d->ctx, opt, &o);
  if (rc != 0) return rc;
  return cnf__dyn_solve_aug(d, theta, &o, t0, m, tout, B, K, eps, 0, z, delta, NULL, z_out,
                            delta_out, st);
}

int cnf_dyn_solve(cnf_dyn *d, const double *theta, const cnf_options *opt, double t0, double t1,
                  size_t B, size_t K, const double *eps, double *z, double *delta,
                  cnf_stats *st) {
  return cnf_dyn_solve_times(d, theta, opt, t0, 1, &t1, B, K, eps, z, delta, NULL, NULL, st);
}

/* Backward from t to t0 with Delta(t) = 0: dDelta/ds = -div, so
 * Delta(t0) = int_{t0}^{t} div ds and log p_t(x) = log p0(x(t0)) - Delta(t0). */
int cnf_dyn_logp_at(cnf_dyn *d, const double *theta, const cnf_options *opt,
                    const cnf_density *p0, double t0, double t, size_t B, size_t K,
                    const double *eps, const double *x, double *logp, cnf_stats *st) {
  if (d == NULL) return CNF_EINVAL;
  cnf_options o;
  int rc = cnf__options_read(d->ctx, opt, &o);
  if (rc != 0) return rc;
  if (p0 == NULL || p0->logp == NULL)
    return CNF_ERROR(d->ctx, CNF_EINVAL, "logp_at: no density p0 (or its logp is NULL)");
  if (B == 0) return CNF_ERROR(d->ctx, CNF_EINVAL, "logp_at: empty batch (B = 0)");
  if (x == NULL || logp == NULL)
    return CNF_ERROR(d->ctx, CNF_EINVAL, "logp_at: x or logp is NULL");
  const size_t BD = B * d->D;
  double *z = cnf__dalloc(d->ctx, BD), *delta = cnf__dalloc(d->ctx, B);
  rc = z != NULL && delta != NULL ? 0 : CNF_ENOMEM;
  if (rc == 0) {
    memcpy(z, x, BD * sizeof(double));
    rc = cnf_dyn_solve(d, theta, &o, t, t0, B, K, eps, z, delta, st);
  }
  if (rc == 0) {
    rc = p0->logp(p0->user, B, d->D, z, logp);
    if (rc != 0) rc = CNF_ERROR(d->ctx, rc < 0 ? rc : CNF_EINVAL, "logp_at: the initial log-density failed");
  }
  for (size_t b = 0; b < B && rc == 0; b++) logp[b] -= delta[b];
  cnf__free(z);
  cnf__free(delta);
  return rc;
}
