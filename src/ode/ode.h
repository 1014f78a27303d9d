/* ode.h: a CVODE wrapper for a generic first-order system y' = rhs(t, y)
 * of N unknowns held in a plain double array.  Knows nothing of networks;
 * the shape of CVODE's CVRhsFn plus user data.  Internal to the library:
 * SUNDIALS types stay behind this header. */
#ifndef CNF_ODE_H
#define CNF_ODE_H

#include <stddef.h>

#include "cnf.h"

/* Callbacks follow CVODE's contract: 0 ok, > 0 recoverable (the solver
 * retries with a smaller step), < 0 fatal. */
typedef int (*cnf_ode_rhs_fn)(double t, const double *y, double *ydot,
                              void *user);
/* jv = (df/dy) v at (t, y), fy = f(t, y) already evaluated. */
typedef int (*cnf_ode_jtv_fn)(double t, const double *y, const double *fy,
                              const double *v, double *jv, void *user);

typedef struct cnf_ode_opts {
  cnf_method method;
  double rtol;
  double atol;             /* scalar absolute tolerance, or */
  const double *atol_vec;  /* (N) per-component tolerances if not NULL */
  long max_steps;
  int max_order;           /* 0: the method's default */
  double h_init;           /* 0: CVODE's estimate */
  int max_nonlin_iters;    /* 0: CVODE's default */
} cnf_ode_opts;

typedef struct cnf_ode cnf_ode;

/* A solver for systems of N unknowns.  Its CVODE memory is made at the
 * first solve and reused (CVodeReInit) while N and the method stay. */
int cnf__ode_create(cnf_ode **out, cnf_ctx *ctx, size_t N);
void cnf__ode_free(cnf_ode *ode);
size_t cnf__ode_size(const cnf_ode *ode);
/* 1 if the solver was made for a distributed system (cnf__dist_on when
 * created): N is then this worker's part. */
int cnf__ode_dist(const cnf_ode *ode);

/* Integrate y (N) in place from t0 to t1 (t1 < t0 integrates backward;
 * t1 == t0 returns at once).  jtv may be NULL (CVODE's difference
 * quotient; only BDF uses it).  Statistics are added to st if not NULL.
 * CVODE failures map to CNF_ETOOMUCHWORK, CNF_EERRTEST, CNF_ECONV,
 * CNF_ERHS or CNF_ESOLVER; the context's message names CVODE's flag, the
 * time reached and the statistics. */
int cnf__ode_solve(cnf_ode *ode, const cnf_ode_opts *opt, cnf_ode_rhs_fn rhs,
                   cnf_ode_jtv_fn jtv, void *user, double t0, double t1,
                   double *y, cnf_stats *st);

/* The same, one solve from t0 through the output times tout[0..m)
 * (monotone in the direction of integration; times equal to t0 give the
 * initial state): y (N) ends at tout[m-1], and yout (m, N), if not NULL,
 * receives y(tout[k]) from CVODE's dense output, with no extra solve. */
int cnf__ode_solve_times(cnf_ode *ode, const cnf_ode_opts *opt, cnf_ode_rhs_fn rhs,
                         cnf_ode_jtv_fn jtv, void *user, double t0, size_t m,
                         const double *tout, double *y, double *yout, cnf_stats *st);

/* CVODE's name of a return flag ("CV_TOO_MUCH_WORK") copied into buf
 * (CVodeGetReturnFlagName allocates it; this frees it).  Returns buf. */
const char *cnf__ode_flag_name(int flag, char *buf, size_t n);

/* Map a CVODE return flag to a CNF code. */
int cnf__ode_map_flag(int flag);

#endif /* CNF_ODE_H */
