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
 * NULL for the exact trace (then K = D). */
typedef struct cnf__aug {
  cnf_dyn *dyn;
  const double *theta;
  size_t B, K;
  const double *eps;
  double scale; /* 1/K for Hutchinson, 1 for the exact trace */
} cnf__aug;

int cnf__aug_rhs(double t, const double *y, double *ydot, void *aug);
/* [J v_z ; 0]: BDF's Jacobian-times-vector of the augmented system. */
int cnf__aug_jtv(double t, const double *y, const double *fy, const double *v,
                 double *jv, void *aug);

#endif /* CNF_DYN_IMPL_H */
