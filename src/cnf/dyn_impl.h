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

#endif /* CNF_DYN_IMPL_H */
