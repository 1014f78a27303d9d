/* problem.c: the benchmark problems P1a..P4 as one object (cnf_pde.h,
 * "the problems as one object"): the field, samples of p0 and p_t, the
 * reference log p_t and, where p_t is Gaussian, its moments.  Each call
 * dispatches on the kind to the problem's own functions in pde.c and dw.c;
 * nothing here is new mathematics except the Gaussian moments of P1a,
 * p_t = N(0, E E^T) with E = expm(t A) (p0 = N(0, I) pushed by x -> E x).
 *
 * Random streams (cnf_seed_derive): "pde-problem" for P1a's dense A and
 * P3's A and b, "pde-rotation" for P4's Q; the samplers take their seed. */
#include <math.h>
#include <string.h>

#include "cnf_pde.h"
#include "core.h"

#define P4_EM_DT 1e-3 /* the Euler-Maruyama step of cnf_pde_problem_sample */

struct cnf_pde_problem {
  cnf_ctx *ctx;
  cnf_pde_kind kind;
  size_t d;
  double T;
  double *A;     /* P1a: (d, d) */
  double *theta; /* P1a: [A, 0] (d d + d), the linear field's parameters */
  double *Q;     /* P4 with rotate: (d, d), else NULL */
  double *work;  /* (d, d): expm for P1a's moments */
  cnf_pde_heat *heat;
  cnf_pde_ou *ou;
  cnf_pde_dw *dw;
  cnf_dyn *field;
};

static const char *const kind_names[CNF_PDE_KINDS] = {"liouville-linear", "cubic", "heat", "ou",
                                                      "double-well"};
static const double default_times[CNF_PDE_KINDS] = {1.0, 0.5, 1.0, 2.0, 1.0};

static int kind_ok(cnf_pde_kind kind) {
  return (int)kind >= 0 && (int)kind < CNF_PDE_KINDS;
}

const char *cnf_pde_kind_name(cnf_pde_kind kind) {
  return kind_ok(kind) ? kind_names[kind] : NULL;
}

int cnf_pde_kind_parse(const char *name, cnf_pde_kind *kind) {
  if (name == NULL || kind == NULL) return CNF_EINVAL;
  for (int i = 0; i < CNF_PDE_KINDS; i++)
    if (strcmp(name, kind_names[i]) == 0) {
      *kind = (cnf_pde_kind)i;
      return 0;
    }
  return CNF_EINVAL;
}

double cnf_pde_default_time(cnf_pde_kind kind) {
  return kind_ok(kind) ? default_times[kind] : NAN;
}

void cnf_pde_problem_config_default(cnf_pde_problem_config *c, cnf_pde_kind kind, size_t d) {
  memset(c, 0, sizeof *c);
  c->kind = kind;
  c->d = d;
  c->T = -1.0;
  c->matrix = CNF_PDE_A_ROTATION;
  c->diffusion = 1.0;
}

void cnf_pde_problem_free(cnf_pde_problem *pb) {
  if (pb == NULL) return;
  cnf_dyn_free(pb->field);
  cnf_pde_heat_free(pb->heat);
  cnf_pde_ou_free(pb->ou);
  cnf_pde_dw_free(pb->dw);
  cnf__free(pb->A);
  cnf__free(pb->theta);
  cnf__free(pb->Q);
  cnf__free(pb->work);
  cnf__free(pb);
}

int cnf_pde_problem_create(cnf_pde_problem **out, cnf_ctx *ctx, const cnf_pde_problem_config *c) {
  if (out == NULL || c == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "PDE problem: NULL argument");
  *out = NULL;
  if (!kind_ok(c->kind)) return CNF_ERROR(ctx, CNF_EINVAL, "PDE problem: unknown kind %d", c->kind);
  const size_t d = c->d;
  if (d == 0) return CNF_ERROR(ctx, CNF_EINVAL, "PDE problem %s: d = 0", kind_names[c->kind]);
  if (c->kind == CNF_PDE_P2 && d < 2)
    return CNF_ERROR(ctx, CNF_EINVAL, "PDE problem heat: needs d >= 2, got %zu", d);
  const double T = c->T > 0 ? c->T : default_times[c->kind];
  if (!isfinite(T)) return CNF_ERROR(ctx, CNF_EINVAL, "PDE problem: end time %g", T);
  cnf_pde_problem *pb = cnf__calloc(1, sizeof *pb);
  if (pb == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "PDE problem: out of memory");
  pb->ctx = ctx;
  pb->kind = c->kind;
  pb->d = d;
  pb->T = T;
  const uint64_t seed = cnf_seed_derive(c->seed, "pde-problem", 0);
  int rc = 0;
  switch (c->kind) {
    case CNF_PDE_P1A:
      pb->A = cnf__dalloc(ctx, d * d);
      pb->work = cnf__dalloc(ctx, d * d);
      pb->theta = pb->A && pb->work ? cnf__dalloc(ctx, d * d + d) : NULL;
      if (pb->theta == NULL) CNF_TRY(CNF_ENOMEM);
      CNF_TRY(cnf_pde_p1a_matrix(ctx, c->matrix, d, 0.5, 2.0, seed, pb->A));
      memcpy(pb->theta, pb->A, d * d * sizeof(double));
      memset(pb->theta + d * d, 0, d * sizeof(double));
      CNF_TRY(cnf_dyn_linear_create(&pb->field, ctx, d));
      break;
    case CNF_PDE_P1B:
      CNF_TRY(cnf_dyn_cubic_create(&pb->field, ctx, d, NULL));
      break;
    case CNF_PDE_P2:
      CNF_TRY(cnf_pde_heat_create(&pb->heat, ctx, d));
      CNF_TRY(cnf_pde_heat_dyn(&pb->field, ctx, pb->heat));
      break;
    case CNF_PDE_P3:
      CNF_TRY(cnf_pde_ou_create(&pb->ou, ctx, d, seed));
      CNF_TRY(cnf_pde_ou_dyn(&pb->field, ctx, pb->ou));
      break;
    case CNF_PDE_P4: {
      cnf_pde_dw_config dc;
      cnf_pde_dw_config_default(&dc, d, T);
      dc.diffusion = c->diffusion;
      if (c->cells > 0) dc.cells = c->cells;
      if (c->rotate) {
        if ((pb->Q = cnf__dalloc(ctx, d * d)) == NULL) CNF_TRY(CNF_ENOMEM);
        CNF_TRY(
            cnf_pde_random_orthogonal(ctx, d, cnf_seed_derive(c->seed, "pde-rotation", 0), pb->Q));
        dc.Q = pb->Q;
      }
      CNF_TRY(cnf_pde_dw_create(&pb->dw, ctx, &dc));
      CNF_TRY(cnf_pde_dw_dyn(&pb->field, ctx, pb->dw));
      break;
    }
  }
  *out = pb;
  return 0;
cleanup:
  cnf_pde_problem_free(pb);
  return rc;
}

size_t cnf_pde_problem_dim(const cnf_pde_problem *pb) {
  return pb ? pb->d : 0;
}
double cnf_pde_problem_time(const cnf_pde_problem *pb) {
  return pb ? pb->T : NAN;
}
cnf_pde_kind cnf_pde_problem_kind(const cnf_pde_problem *pb) {
  return pb->kind;
}
cnf_dyn *cnf_pde_problem_field(const cnf_pde_problem *pb) {
  return pb ? pb->field : NULL;
}
const double *cnf_pde_problem_theta(const cnf_pde_problem *pb) {
  return pb ? pb->theta : NULL;
}
cnf_pde_ou *cnf_pde_problem_ou(const cnf_pde_problem *pb) {
  return pb ? pb->ou : NULL;
}
cnf_pde_dw *cnf_pde_problem_dw(const cnf_pde_problem *pb) {
  return pb ? pb->dw : NULL;
}

int cnf_pde_problem_is_gaussian(const cnf_pde_problem *pb) {
  return pb != NULL && (pb->kind == CNF_PDE_P1A || pb->kind == CNF_PDE_P3);
}

/* The wrapped functions' codes, with a message in the problem's context
 * when the callee has none of its own (the samplers and log-densities
 * that take no context). */
static int wrap(const cnf_pde_problem *pb, int rc, const char *what) {
  if (rc == 0) return 0;
  return CNF_ERROR(pb->ctx, rc, "PDE problem %s: %s failed: %s", kind_names[pb->kind], what,
                   cnf_strerror(rc));
}

int cnf_pde_problem_sample(cnf_pde_problem *pb, double t, uint64_t seed, size_t B, double *x) {
  if (pb == NULL || x == NULL || !(t >= 0))
    return CNF_ERROR(pb ? pb->ctx : NULL, CNF_EINVAL, "PDE problem sample: bad arguments");
  const size_t d = pb->d;
  int rc = 0;
  switch (pb->kind) {
    case CNF_PDE_P1A:
    case CNF_PDE_P1B:
    case CNF_PDE_P3:
      if (pb->kind == CNF_PDE_P3 && t > 0)
        return wrap(pb, cnf_pde_ou_sample(pb->ou, t, seed, B, x), "sampling p_t");
      rc = wrap(pb, cnf_probes_draw(CNF_TRACE_GAUSS, seed, 1, B, d, x), "sampling p0");
      if (rc != 0 || t == 0) return rc;
      if (pb->kind == CNF_PDE_P1B) return cnf_pde_p1b_flow(pb->ctx, d, NULL, t, B, x, x);
      /* P1a: x = expm(t A) x0 row by row, through a copy of x0 */
      double *x0 = cnf__dalloc(pb->ctx, B * d);
      if (x0 == NULL) return CNF_ENOMEM;
      memcpy(x0, x, B * d * sizeof(double));
      rc = cnf_pde_p1a_flow(pb->ctx, d, pb->A, t, B, x0, x);
      cnf__free(x0);
      return rc;
    case CNF_PDE_P2:
      return wrap(pb, cnf_pde_heat_sample(pb->heat, t, seed, B, x), "sampling p_t");
    case CNF_PDE_P4:
      rc = wrap(pb, cnf_pde_dw_sample0(pb->dw, seed, B, x), "sampling p0");
      if (rc == 0 && t > 0)
        rc = wrap(
            pb,
            cnf_pde_dw_em(pb->dw, cnf_seed_derive(seed, "pde-paths", 0), 0.0, t, P4_EM_DT, B, x),
            "Euler-Maruyama");
      return rc;
  }
  return CNF_EINVAL;
}

int cnf_pde_problem_logp0(cnf_pde_problem *pb, size_t B, const double *x, double *logp) {
  if (pb == NULL || x == NULL || logp == NULL)
    return CNF_ERROR(pb ? pb->ctx : NULL, CNF_EINVAL, "PDE problem log p0: bad arguments");
  if (pb->kind == CNF_PDE_P2)
    return wrap(pb, cnf_pde_heat_logp(pb->heat, 0.0, B, x, logp), "log p0");
  if (pb->kind == CNF_PDE_P4) return wrap(pb, cnf_pde_dw_logp0(pb->dw, B, x, logp), "log p0");
  for (size_t b = 0; b < B; b++) logp[b] = cnf_log_normal(x + b * pb->d, pb->d); /* N(0, I) */
  return 0;
}

int cnf_pde_problem_logp(cnf_pde_problem *pb, double t, size_t B, const double *x, double *logp) {
  if (pb == NULL || x == NULL || logp == NULL || !(t >= 0))
    return CNF_ERROR(pb ? pb->ctx : NULL, CNF_EINVAL, "PDE problem log p_t: bad arguments");
  switch (pb->kind) {
    case CNF_PDE_P1A:
      return cnf_pde_p1a_logp(pb->ctx, pb->d, pb->A, t, B, x, logp);
    case CNF_PDE_P1B:
      return cnf_pde_p1b_logp(pb->ctx, pb->d, NULL, t, B, x, logp);
    case CNF_PDE_P2:
      return wrap(pb, cnf_pde_heat_logp(pb->heat, t, B, x, logp), "log p_t");
    case CNF_PDE_P3:
      return wrap(pb, cnf_pde_ou_logp(pb->ou, t, B, x, logp), "log p_t");
    case CNF_PDE_P4:
      return wrap(pb, cnf_pde_dw_logp(pb->dw, t, B, x, logp), "log p_t");
  }
  return CNF_EINVAL;
}

int cnf_pde_problem_moments(cnf_pde_problem *pb, double t, double *m, double *S) {
  if (pb == NULL || m == NULL || S == NULL || !cnf_pde_problem_is_gaussian(pb))
    return CNF_ERROR(pb ? pb->ctx : NULL, CNF_EINVAL,
                     "PDE problem moments: only P1a and P3 have a Gaussian p_t");
  const size_t d = pb->d;
  if (pb->kind == CNF_PDE_P3) {
    cnf_pde_ou_moments(pb->ou, t, m, S);
    return 0;
  }
  double *E = pb->work;
  int rc = cnf_pde_expm(pb->ctx, d, pb->A, t, E);
  if (rc != 0) return rc;
  memset(m, 0, d * sizeof(double));
  for (size_t i = 0; i < d; i++)
    for (size_t j = 0; j < d; j++) {
      double s = 0.0;
      for (size_t k = 0; k < d; k++) s += E[i * d + k] * E[j * d + k];
      S[i * d + j] = s;
    }
  return 0;
}
