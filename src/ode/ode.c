/* ode.c: the CVODE wrapper.  Adams-Moulton with fixed-point iteration (the
 * cheapest choice for the non-stiff CNF dynamics) or BDF with Newton and
 * matrix-free SPGMR whose Jacobian-times-vector is the caller's tangent.
 *
 * y is wrapped without a copy (N_VMake_Serial).  A NaN or Inf in the
 * right-hand side is turned into a recoverable failure here, because a
 * NaN error norm would otherwise compare as "accepted".
 *
 * A solver created while a distributed solve is on (cnf__dist_on) holds
 * this worker's part of one system: its vectors are the context's
 * distributed wrappers (nvec.h), and every callback's status is agreed
 * over the workers (cnf__dist_status) before CVODE sees it, so all
 * workers retry or stop together. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cvodes/cvodes.h>
#include <nvector/nvector_serial.h>
#include <sundials/sundials_context.h>
#include <sunlinsol/sunlinsol_spgmr.h>
#include <sunnonlinsol/sunnonlinsol_fixedpoint.h>

#include "core.h"
#include "nvec.h"
#include "ode.h"

struct cnf_ode {
  cnf_ctx *ctx;
  size_t N;
  void *mem;               /* CVODE memory, NULL until the first solve */
  cnf_method method;       /* the method mem was created for */
  N_Vector y;              /* wraps the caller's array for one solve */
  N_Vector atol;           /* (N) per-component tolerances */
  cnf__nvec yv, av;        /* their serial parts (and wrappers) */
  int dist;                /* a distributed system: N is the local size */
  SUNNonlinearSolver nls;  /* fixed point (Adams) */
  SUNLinearSolver ls;      /* SPGMR (BDF) */
  int initialised;         /* CVodeInit done */
  /* the current solve */
  cnf_ode_rhs_fn rhs;
  cnf_ode_jtv_fn jtv;
  void *user;
  int fatal;               /* a callback's fatal (< 0) status, latched */
  double fatal_t;          /* and the time it happened at */
  char cvmsg[512];         /* CVODE's last error message */
};

int cnf__ode_map_flag(int flag) {
  switch (flag) {
    case CV_SUCCESS:
    case CV_TSTOP_RETURN:
    case CV_ROOT_RETURN:
      return 0;
    case CV_TOO_MUCH_WORK:
      return CNF_ETOOMUCHWORK;
    case CV_ERR_FAILURE:
      return CNF_EERRTEST;
    case CV_CONV_FAILURE:
    case CV_LSETUP_FAIL:
    case CV_LSOLVE_FAIL:
    case CV_NLS_FAIL:
      return CNF_ECONV;
    case CV_RHSFUNC_FAIL:
    case CV_FIRST_RHSFUNC_ERR:
    case CV_REPTD_RHSFUNC_ERR:
    case CV_UNREC_RHSFUNC_ERR:
      return CNF_ERHS;
    case CV_MEM_FAIL:
      return CNF_ENOMEM;
    case CV_ILL_INPUT:
      return CNF_EINVAL;
    default:
      return CNF_ESOLVER;
  }
}

static void err_handler(int code, const char *module, const char *function,
                        char *msg, void *data) {
  cnf_ode *ode = data;
  if (code == CV_WARNING) return; /* e.g. t + h == t; not an error */
  snprintf(ode->cvmsg, sizeof ode->cvmsg, "%s: %s", function ? function : module, msg);
}

/* A fatal (negative) status of a callback is latched: every later call
 * fails with it at once, and cnf__ode_solve reports CNF_ERHS.  SUNDIALS
 * 6's fixed-point solver (Adams) turns any failure of the right-hand side
 * into a recoverable convergence failure, so without the latch Adams would
 * retry a fatal failure with ever smaller steps until max_steps. */
static int latch(cnf_ode *ode, double t, int rc) {
  if (rc < 0 && ode->fatal == 0) {
    ode->fatal = rc;
    ode->fatal_t = t;
  }
  return rc;
}

static int rhs_wrap(realtype t, N_Vector y, N_Vector ydot, void *data) {
  cnf_ode *ode = data;
  if (ode->fatal != 0) return ode->fatal;
  double *yd = N_VGetArrayPointer(ydot);
  int rc = ode->rhs(t, N_VGetArrayPointer(y), yd, ode->user);
  for (size_t i = 0; i < ode->N && rc == 0; i++)
    if (!isfinite(yd[i])) rc = 1; /* recoverable: retry a smaller step */
  if (ode->dist) rc = cnf__dist_status(ode->ctx, rc);
  return rc != 0 ? latch(ode, t, rc) : 0;
}

static int jtv_wrap(N_Vector v, N_Vector jv, realtype t, N_Vector y,
                    N_Vector fy, void *data, N_Vector tmp) {
  (void)tmp;
  cnf_ode *ode = data;
  if (ode->fatal != 0) return ode->fatal;
  int rc = ode->jtv(t, N_VGetArrayPointer(y), N_VGetArrayPointer(fy),
                    N_VGetArrayPointer(v), N_VGetArrayPointer(jv), ode->user);
  if (ode->dist) rc = cnf__dist_status(ode->ctx, rc);
  return latch(ode, t, rc);
}

int cnf__ode_create(cnf_ode **out, cnf_ctx *ctx, size_t N) {
  if (out == NULL || ctx == NULL || N == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "ode: bad arguments (N = %zu)", N);
  *out = NULL;
  cnf_ode *ode = cnf__calloc(1, sizeof *ode);
  if (ode == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "ode: out of memory");
  ode->ctx = ctx;
  ode->N = N;
  ode->dist = cnf__dist_on(ctx);
  int rc = cnf__nvec_make(ctx, &ode->av, N, NULL);
  if (rc == 0) rc = cnf__nvec_make(ctx, &ode->yv, N, N_VGetArrayPointer(ode->av.local));
  ode->atol = ode->av.v;
  ode->y = ode->yv.v;
  if (rc != 0) {
    cnf__ode_free(ode);
    return CNF_ERROR(ctx, CNF_ENOMEM, "ode: out of memory for %zu unknowns", N);
  }
  *out = ode;
  return 0;
}

static void free_solver(cnf_ode *ode) {
  if (ode->mem != NULL) CVodeFree(&ode->mem);
  if (ode->nls != NULL) SUNNonlinSolFree(ode->nls);
  if (ode->ls != NULL) SUNLinSolFree(ode->ls);
  ode->mem = NULL;
  ode->nls = NULL;
  ode->ls = NULL;
  ode->initialised = 0;
}

void cnf__ode_free(cnf_ode *ode) {
  if (ode == NULL) return;
  free_solver(ode);
  cnf__nvec_free(&ode->yv);
  cnf__nvec_free(&ode->av);
  cnf__free(ode);
}

size_t cnf__ode_size(const cnf_ode *ode) { return ode ? ode->N : 0; }

int cnf__ode_dist(const cnf_ode *ode) { return ode ? ode->dist : 0; }

/* CVODE's name of a return flag ("CV_TOO_MUCH_WORK") copied into buf:
 * CVodeGetReturnFlagName returns a string the caller must free. */
const char *cnf__ode_flag_name(int flag, char *buf, size_t n) {
  char *s = CVodeGetReturnFlagName(flag);
  snprintf(buf, n, "%s", s != NULL ? s : "CV_?");
  free(s);
  return buf;
}

/* Raise the error for a failed CVODE setup call. */
static int setup_fail(cnf_ode *ode, const char *call, int flag) {
  char name[32];
  return CNF_ERROR(ode->ctx, cnf__ode_map_flag(flag) ? cnf__ode_map_flag(flag) : CNF_ESOLVER,
                   "CVODE %s failed (%s)%s%s", call, cnf__ode_flag_name(flag, name, sizeof name),
                   ode->cvmsg[0] ? ": " : "", ode->cvmsg);
}

#define CV_CALL(call, expr)                             \
  do {                                                  \
    int flag_ = (expr);                                 \
    if (flag_ < 0) return setup_fail(ode, call, flag_); \
  } while (0)

/* Create the CVODE memory for `method` and attach its solvers. */
static int make_solver(cnf_ode *ode, cnf_method method, double t0) {
  SUNContext sctx = (SUNContext)ode->ctx->sunctx;
  free_solver(ode);
  ode->mem = CVodeCreate(method == CNF_METHOD_BDF ? CV_BDF : CV_ADAMS, sctx);
  if (ode->mem == NULL)
    return CNF_ERROR(ode->ctx, CNF_ENOMEM, "ode: CVodeCreate failed");
  ode->method = method;
  CV_CALL("CVodeSetErrHandlerFn", CVodeSetErrHandlerFn(ode->mem, err_handler, ode));
  CV_CALL("CVodeInit", CVodeInit(ode->mem, rhs_wrap, t0, ode->y));
  CV_CALL("CVodeSetUserData", CVodeSetUserData(ode->mem, ode));
  if (method == CNF_METHOD_BDF) {
    ode->ls = SUNLinSol_SPGMR(ode->y, SUN_PREC_NONE, 0, sctx);
    if (ode->ls == NULL) return CNF_ERROR(ode->ctx, CNF_ENOMEM, "ode: SPGMR failed");
    CV_CALL("CVodeSetLinearSolver", CVodeSetLinearSolver(ode->mem, ode->ls, NULL));
  } else {
    ode->nls = SUNNonlinSol_FixedPoint(ode->y, 0, sctx);
    if (ode->nls == NULL)
      return CNF_ERROR(ode->ctx, CNF_ENOMEM, "ode: fixed-point solver failed");
    CV_CALL("CVodeSetNonlinearSolver", CVodeSetNonlinearSolver(ode->mem, ode->nls));
  }
  ode->initialised = 1;
  return 0;
}

static void read_stats(cnf_ode *ode, cnf_stats *st) {
  long nst = 0, nfe = 0, netf = 0, nni = 0, ncf = 0, njtv = 0, nli = 0, nfels = 0;
  double h = 0.0;
  CVodeGetNumSteps(ode->mem, &nst);
  CVodeGetNumRhsEvals(ode->mem, &nfe);
  CVodeGetNumErrTestFails(ode->mem, &netf);
  CVodeGetNumNonlinSolvIters(ode->mem, &nni);
  CVodeGetNumNonlinSolvConvFails(ode->mem, &ncf);
  CVodeGetLastStep(ode->mem, &h);
  if (ode->method == CNF_METHOD_BDF) {
    CVodeGetNumJtimesEvals(ode->mem, &njtv);
    CVodeGetNumLinIters(ode->mem, &nli);
    CVodeGetNumLinRhsEvals(ode->mem, &nfels);
  }
  st->solves += 1;
  st->nsteps += nst;
  st->nfe += nfe + nfels;
  st->netf += netf;
  st->nni += nni;
  st->nncf += ncf;
  st->njtv += njtv;
  st->nli += nli;
  st->last_h = h;
}

int cnf__ode_solve_times(cnf_ode *ode, const cnf_ode_opts *opt, cnf_ode_rhs_fn rhs,
                         cnf_ode_jtv_fn jtv, void *user, double t0, size_t m,
                         const double *tout, double *y, double *yout, cnf_stats *st) {
  if (ode == NULL || opt == NULL || rhs == NULL || y == NULL || tout == NULL || m == 0)
    return CNF_ERROR(ode ? ode->ctx : NULL, CNF_EINVAL, "ode: NULL argument or no output time");
  const double t1 = tout[m - 1];
  if (!(opt->rtol > 0.0) || !(opt->atol_vec != NULL || opt->atol > 0.0) ||
      opt->max_steps <= 0 || !isfinite(t0) || !isfinite(t1))
    return CNF_ERROR(ode->ctx, CNF_EINVAL,
                     "ode: need rtol > 0, atol > 0, max_steps > 0 and finite "
                     "times (rtol %g, atol %g, max_steps %ld, t0 %g, t1 %g)",
                     opt->rtol, opt->atol, opt->max_steps, t0, t1);
  const double dir = t1 > t0 ? 1.0 : -1.0;
  for (size_t k = 0; k < m; k++)
    if (!isfinite(tout[k]) || (tout[k] - (k ? tout[k - 1] : t0)) * dir < 0.0)
      return CNF_ERROR(ode->ctx, CNF_EINVAL,
                       "ode: output times must run monotonically from t0 = %g (time %zu is %g)",
                       t0, k + 1, tout[k]);
  /* outputs at t0 itself are the initial state */
  size_t k0 = 0;
  for (; k0 < m && tout[k0] == t0; k0++)
    if (yout != NULL) memcpy(yout + k0 * ode->N, y, ode->N * sizeof(double));
  if (k0 == m) return 0;
  ode->rhs = rhs;
  ode->jtv = jtv;
  ode->user = user;
  ode->fatal = 0;
  ode->cvmsg[0] = '\0';

  /* per-component tolerances (filled before y is pointed at the caller) */
  double *at = N_VGetArrayPointer(ode->atol);
  for (size_t i = 0; i < ode->N; i++)
    at[i] = opt->atol_vec != NULL ? opt->atol_vec[i] : opt->atol;
  N_VSetArrayPointer(y, ode->yv.local);

  int rc = 0;
  if (!ode->initialised || ode->method != opt->method) {
    rc = make_solver(ode, opt->method, t0);
    if (rc != 0) return rc;
  } else {
    CV_CALL("CVodeReInit", CVodeReInit(ode->mem, t0, ode->y));
  }
  CV_CALL("CVodeSVtolerances", CVodeSVtolerances(ode->mem, opt->rtol, ode->atol));
  CV_CALL("CVodeSetMaxNumSteps", CVodeSetMaxNumSteps(ode->mem, opt->max_steps));
  CV_CALL("CVodeSetStopTime", CVodeSetStopTime(ode->mem, t1));
  CV_CALL("CVodeSetInitStep", CVodeSetInitStep(ode->mem, opt->h_init > 0 ? opt->h_init : 0.0));
  CV_CALL("CVodeSetMaxOrd",
          CVodeSetMaxOrd(ode->mem, opt->max_order > 0 ? opt->max_order
                                   : (opt->method == CNF_METHOD_BDF ? 5 : 12)));
  /* after the nonlinear solver is attached: attaching resets this */
  CV_CALL("CVodeSetMaxNonlinIters",
          CVodeSetMaxNonlinIters(ode->mem, opt->max_nonlin_iters > 0 ? opt->max_nonlin_iters : 3));
  if (opt->method == CNF_METHOD_BDF)
    CV_CALL("CVodeSetJacTimes", CVodeSetJacTimes(ode->mem, NULL, jtv ? jtv_wrap : NULL));

  double t = t0;
  int flag = 0;
  for (size_t k = k0; k < m && flag >= 0; k++) {
    /* CVODE steps past tout[k] (not past t1) and interpolates y(tout[k]) */
    flag = CVode(ode->mem, tout[k], ode->y, &t, CV_NORMAL);
    if (flag >= 0 && yout != NULL) memcpy(yout + k * ode->N, y, ode->N * sizeof(double));
  }
  cnf_stats local;
  cnf_stats_clear(&local);
  read_stats(ode, &local);
  if (st != NULL) cnf_stats_add(st, &local);
  char name[32];
  if (flag < 0 && ode->fatal != 0) {
    return CNF_ERROR(ode->ctx, CNF_ERHS,
                     "the right-hand side failed unrecoverably (CV_RHSFUNC_FAIL: "
                     "status %d) at t = %.6g while integrating from %g to %g; "
                     "CVODE stopped with %s after %ld steps, %ld RHS evaluations",
                     ode->fatal, ode->fatal_t, t0, t1, cnf__ode_flag_name(flag, name, sizeof name),
                     local.nsteps, local.nfe);
  }
  if (flag < 0) {
    return CNF_ERROR(ode->ctx, cnf__ode_map_flag(flag),
                     "CVODE failed (%s) at t = %.6g while integrating from %g to %g: "
                     "%ld steps, %ld RHS evaluations, %ld error-test failures, "
                     "%ld convergence failures, last step %.3g%s%s",
                     cnf__ode_flag_name(flag, name, sizeof name), t, t0, t1, local.nsteps,
                     local.nfe, local.netf, local.nncf, local.last_h,
                     ode->cvmsg[0] ? "; " : "", ode->cvmsg);
  }
  return 0;
}

int cnf__ode_solve(cnf_ode *ode, const cnf_ode_opts *opt, cnf_ode_rhs_fn rhs,
                   cnf_ode_jtv_fn jtv, void *user, double t0, double t1,
                   double *y, cnf_stats *st) {
  return cnf__ode_solve_times(ode, opt, rhs, jtv, user, t0, 1, &t1, y, NULL, st);
}
