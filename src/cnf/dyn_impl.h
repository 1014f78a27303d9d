/* dyn_impl.h: the body of cnf_dyn, shared by the files of src/cnf. */
#ifndef CNF_DYN_IMPL_H
#define CNF_DYN_IMPL_H

#include "cnf_dynamics.h"
#include "core.h"
#include "ode.h"

struct cnf_dyn {
  const cnf_dyn_type *type;
  void *state;
  int own_state;
  size_t D, P;
  cnf_ctx *ctx;
  /* scratch of the fallbacks and the solver, sized by cnf_dyn_reserve */
  size_t res_B, res_K;
  double *jv;    /* (K, B, D) tangents */
  double *zp;    /* (B, D) perturbed point / unit vectors */
  double *fp;    /* (B, D) */
  double *fm;    /* (B, D) */
  double *y;     /* (B D + B) augmented state */
  double *atol;  /* (B D + B) per-component tolerances */
  cnf_ode *ode;
};

/* The augmented system of one block (see dyn.c): y = (z (B, D), Delta (B)),
 * dz/dt = f, dDelta/dt = -scale * div, with the probes eps (K, B, D) or
 * NULL for the exact trace (then K = D).  With nreg = 2 the state goes on
 * with the RNODE integrals (E_K (B), E_J (B)): dE_K/dt = |f|^2,
 * dE_J/dt = scale * sum_k |J v_k|^2. */
typedef struct cnf__aug {
  cnf_dyn *dyn;
  const double *theta;
  size_t B, K;
  const double *eps;
  double scale;   /* 1/K for Hutchinson, 1 for the exact trace */
  int nreg;       /* 0, or 2 with the regularisers' integrals */
  int want_var;   /* accumulate Hutchinson's empirical variance */
  double var_sum; /* its sum and count (see cnf_stats) */
  long var_n;
} cnf__aug;

/* The absolute tolerance that takes a component out of the error control
 * (its weight 1 / (rtol |y| + atol) vanishes): RNODE's integrals, which
 * feed the loss only, as a_theta does with the seminorm. */
#define CNF__ATOL_FREE 1e300

/* Unknowns of the augmented system: B D + B (1 + nreg). */
static inline size_t cnf__aug_size(const cnf__aug *a) {
  return a->B * a->dyn->D + a->B * (size_t)(1 + a->nreg);
}

/* One solve of the augmented system of cnf_dyn_solve_times, with nreg
 * regulariser integrals ereg (nreg, B) carried along (in/out; NULL when
 * nreg is 0). */
int cnf__dyn_solve_aug(cnf_dyn *d, const double *theta, const cnf_options *opt, double t0,
                       size_t m, const double *tout, size_t B, size_t K, const double *eps,
                       int nreg, double *z, double *delta, double *ereg, double *z_out,
                       double *delta_out, cnf_stats *st);

/* The reverse sweep with RNODE's seeds (the vjp_reg op, see
 * cnf_dynamics.h), falling back on vjp when ck and cj are NULL, and on
 * f + vjp when only cj is NULL. */
int cnf__dyn_vjp_reg(cnf_dyn *d, double t, size_t B, size_t K, const double *z,
                     const double *theta, const double *a, const double *w, const double *ck,
                     const double *cj, const double *v, double *dz, double *gz, double *gth);

/* The network's precision for the ops that follow (MLP fields; other
 * fields keep theirs): p, and hold = 1 while theta stays the same (inside
 * a solve: the float weights are converted once per theta pointer; with
 * hold = 0 on every call).  *saved gets the state to give back to
 * cnf__dyn_precision_end, so scopes nest.  CNF_EINVAL for an unknown p. */
int cnf__dyn_precision_begin(cnf_dyn *d, cnf_precision p, int hold, int *saved);
/* The work per thread (multiply-adds) from which an MLP splits its batch
 * (0: the measured default, mlp.c MLP_PAR_MIN_MACS_*); for benchmarks. */
int cnf__dyn_mlp_split_min(cnf_dyn *dyn, double macs);
void cnf__dyn_precision_end(cnf_dyn *d, int saved);

int cnf__aug_rhs(double t, const double *y, double *ydot, void *aug);
/* [J v_z ; 0]: BDF's Jacobian-times-vector of the augmented system. */
int cnf__aug_jtv(double t, const double *y, const double *fy, const double *v,
                 double *jv, void *aug);

#endif /* CNF_DYN_IMPL_H */
