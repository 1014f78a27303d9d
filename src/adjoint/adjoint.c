/* adjoint.c: the gradient of the maximum-likelihood loss by the adjoint
 * method (docs/design.md, section 4 "The adjoint equations" and section 5), in two variants.
 *
 * Loss of B points: L = -(1/B) sum_b [log N(z_b(T)) - Delta_b(T)].  For one
 * block with dz/dt = f(t, z; theta), dDelta/dt = g = -s div (s = 1/K for K
 * Hutchinson probes held fixed, 1 for the exact trace), the adjoints
 * a_z(t) = dL/dz(t), a_Delta = dL/dDelta = 1/B (constant: nothing depends
 * on Delta) and a_theta satisfy, from t = T down to 0,
 *
 *   a_z(T) = z(T) / B,   a_theta(T) = 0,
 *   da_z/dt     = -(a_z^T df/dz     + a_Delta dg/dz),
 *   da_theta/dt = -(a_z^T df/dtheta + a_Delta dg/dtheta),
 *
 * and dL/dtheta = a_theta(0).  Both right-hand sides are ONE reverse sweep
 * of the field: cnf_dyn_vjp with a = a_z and trace weights w_b = -s a_Delta
 * returns a_z^T df/dz + a_Delta dg/dz and adds the theta part.  The end
 * time: dL/dT = sum_b a_z,b . f_b(T) + a_Delta g_b(T).  Blocks chain: the
 * a_z(0) of block k is the terminal a_z of block k - 1.
 *
 * backsolve:  (z, a_z) is integrated backward by CVODES from T to 0, z
 *             reconstructed backward (Chen et al. 2018), and a_theta is
 *             its quadrature; memory does not grow with the number of
 *             steps.  The right-hand side is one sweep that also returns
 *             f (cnf_dyn_vjp's dz), without the theta part; the quadrature
 *             makes one sweep with the theta part per step.  With
 *             opt->seminorm the quadrature stays out of the error control
 *             (Kidger et al. 2021), so the step size is chosen on the 2 B D
 *             unknowns (z, a_z) alone, not on the thousands of a_theta.
 * checkpoint: CVODES's adjoint module.  The forward solve (CVodeF) stores
 *             checkpoints every opt->checkpoint_steps steps and Hermite
 *             interpolation data; the backward problem integrates a_z with
 *             the forward z interpolated, and a_theta as a backward
 *             quadrature (left out of the error control with seminorm).
 *             Recomputations between checkpoints replay the same probes.
 *
 * In both, the sweeps of the right-hand side skip the theta part (CVODE
 * evaluates it at iterates that the quadrature, computed at the accepted
 * point, never sees), which saves a GEMM per layer per evaluation.
 *
 * RNODE (Finlay et al. 2020).  The regularisers E_K = int |f|^2 dt and
 * E_J = int s sum_k |J v_k|^2 dt ride in the forward state after Delta
 * (outside the error control: they only feed the loss), and the loss gains
 * lambda_K mean E_K + lambda_J mean E_J.  Their adjoints are constants,
 * a_{E_K} = lambda_K / B and a_{E_J} = lambda_J / B, so the same single
 * sweep serves with two more output seeds: 2 a_{E_K} f on the primal and
 * 2 s a_{E_J} J v_k on the tangents (the vjp_reg op); dL/dT gains
 * a_{E_K} |f|^2 + a_{E_J} s sum_k |J v_k|^2 at T.
 *
 * Distributed (cnf_comm with a vector factory, cnf.h): the B rows of this
 * worker are its part of one system of Bg rows over all workers.  The
 * state vectors (forward z, Delta, E; backward a_z or (z, a_z)) are the
 * context's distributed wrappers, so every worker takes the steps of one
 * process on all Bg rows; every callback's status is agreed over the
 * workers.  The seeds use the global batch: a_z(T) = z(T) / Bg, a_Delta =
 * 1 / Bg, and the loss, a_theta (a quadrature, local: seminorm) and dL/dT
 * come out as this worker's share of the global mean, summed by the
 * caller (cnf_fit).  Probes are drawn for the Bg rows and sliced.
 *
 * cnf_dyn_grad is the one-block case for any field and any loss of the end
 * state: the caller's seeds dL/dz1 and dL/dDelta1 (per sample: w_b = -s
 * dL/dDelta1_b) replace the likelihood's, over [t0, t1] in either
 * direction.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cvodes/cvodes.h>
#include <nvector/nvector_serial.h>
#include <sunlinsol/sunlinsol_spgmr.h>
#include <sunnonlinsol/sunnonlinsol_fixedpoint.h>

#include "dyn_impl.h"
#include "flow_impl.h"
#include "nvec.h"
#include "ode.h"

/* A callback's status, agreed over the workers of a distributed solve. */
static int agree(cnf_ctx *ctx, int rc) {
  return cnf__dist_on(ctx) ? cnf__dist_status(ctx, rc) : rc;
}

/* ---- shared state of one block's backward problem -------------------- */

typedef struct adj_block {
  cnf_dyn *dyn;
  const double *theta;   /* (P) this block's parameters */
  size_t B, D, K, P;     /* P = 0: no a_theta quadrature */
  const double *eps;     /* (K, B, D) probes or NULL (exact) */
  const double *w;       /* (B) trace weights -s a_Delta */
  double *gz;            /* (B, D) scratch */
  const double *ck;      /* (B) a_{E_K}, or NULL without the kinetic term */
  const double *cj;      /* (B) s a_{E_J}, or NULL without the Jacobian term */
} adj_block;

/* gz = a^T df/dz + a_Delta dg/dz; if gth != NULL, gth = -(the theta
 * part) (overwritten: the quadrature's right-hand side); if dz != NULL,
 * dz = f. */
static int sweep(adj_block *ab, double t, const double *z, const double *a,
                 double *dz, double *gz, double *gth) {
  if (gth != NULL) memset(gth, 0, ab->P * sizeof(double));
  int rc = cnf__dyn_vjp_reg(ab->dyn, t, ab->B, ab->K, z, ab->theta, a, ab->w, ab->ck,
                            ab->cj, ab->eps, dz, gz, gth);
  if (rc == 0 && gth != NULL)
    for (size_t i = 0; i < ab->P; i++) gth[i] = -gth[i];
  return rc;
}

/* The quadrature of both variants: da_theta/dt = -(theta part). */
static int quad_rhs(adj_block *ab, double t, const double *z, const double *az,
                    double *out) {
  return sweep(ab, t, z, az, NULL, ab->gz, out);
}

/* ---- backsolve ------------------------------------------------------- */

/* (z, a_z)' = (f, -(a_z^T df/dz + a_Delta dg/dz)) in one sweep */
static int bs_rhs(realtype t, N_Vector y, N_Vector ydot, void *user) {
  adj_block *ab = user;
  const size_t BD = ab->B * ab->D;
  const double *yv = N_VGetArrayPointer(y);
  double *out = N_VGetArrayPointer(ydot);
  int rc = sweep(ab, t, yv, yv + BD, out, out + BD, NULL);
  for (size_t i = 0; i < 2 * BD && rc == 0; i++) {
    if (i >= BD) out[i] = -out[i];
    if (!isfinite(out[i])) rc = 1;
  }
  return agree(ab->dyn->ctx, rc);
}

static int bs_quad(realtype t, N_Vector y, N_Vector qdot, void *user) {
  adj_block *ab = user;
  const double *yv = N_VGetArrayPointer(y);
  return agree(ab->dyn->ctx, quad_rhs(ab, t, yv, yv + ab->B * ab->D, N_VGetArrayPointer(qdot)));
}

/* ---- checkpoint (CVODES adjoint) -------------------------------------- */

static int ck_rhsB(realtype t, N_Vector y, N_Vector yB, N_Vector yBdot,
                   void *user) {
  adj_block *ab = user;
  const size_t BD = ab->B * ab->D;
  double *out = N_VGetArrayPointer(yBdot);
  int rc = sweep(ab, t, N_VGetArrayPointer(y), N_VGetArrayPointer(yB), NULL, out, NULL);
  for (size_t i = 0; i < BD && rc == 0; i++) out[i] = -out[i];
  return agree(ab->dyn->ctx, rc);
}

static int ck_quadB(realtype t, N_Vector y, N_Vector yB, N_Vector qBdot,
                    void *user) {
  adj_block *ab = user;
  return agree(ab->dyn->ctx, quad_rhs(ab, t, N_VGetArrayPointer(y), N_VGetArrayPointer(yB),
                                      N_VGetArrayPointer(qBdot)));
}

/* BDF's Jacobian of the backward system: -(df/dz)^T v = -(v^T df/dz). */
static int ck_jtvB(N_Vector v, N_Vector Jv, realtype t, N_Vector y,
                   N_Vector yB, N_Vector fyB, void *user, N_Vector tmp) {
  (void)yB, (void)fyB, (void)tmp;
  adj_block *ab = user;
  const size_t BD = ab->B * ab->D;
  double *out = N_VGetArrayPointer(Jv);
  int rc = cnf_dyn_vjp(ab->dyn, t, ab->B, 0, N_VGetArrayPointer(y), ab->theta,
                       N_VGetArrayPointer(v), NULL, NULL, NULL, out, NULL);
  for (size_t i = 0; i < BD && rc == 0; i++) out[i] = -out[i];
  return agree(ab->dyn->ctx, rc);
}

static int ck_rhsF(realtype t, N_Vector y, N_Vector ydot, void *user) {
  const double *yv = N_VGetArrayPointer(y);
  double *yd = N_VGetArrayPointer(ydot);
  int rc = cnf__aug_rhs(t, yv, yd, user);
  const size_t N = cnf__aug_size(user);
  for (size_t i = 0; i < N && rc == 0; i++)
    if (!isfinite(yd[i])) rc = 1;
  return agree(((cnf__aug *)user)->dyn->ctx, rc);
}

static int ck_jtvF(N_Vector v, N_Vector Jv, realtype t, N_Vector y,
                   N_Vector fy, void *user, N_Vector tmp) {
  (void)tmp;
  return agree(((cnf__aug *)user)->dyn->ctx,
               cnf__aug_jtv(t, N_VGetArrayPointer(y), N_VGetArrayPointer(fy),
                            N_VGetArrayPointer(v), N_VGetArrayPointer(Jv), user));
}

typedef struct ck_mem {
  void *mem;                 /* CVODES memory with the forward checkpoints */
  cnf__nvec y, yB, atol;     /* states (distributed when dist is on) */
  N_Vector qB;               /* a_theta: local, outside the error control */
  SUNNonlinearSolver nls, nlsB;
  SUNLinearSolver ls, lsB;
  cnf__aug aug;
  int nblocks;               /* for messages */
  char msg[512];
} ck_mem;

static void ck_errh(int code, const char *module, const char *function,
                    char *msg, void *data) {
  ck_mem *m = data;
  if (code == CV_WARNING) return;
  snprintf(m->msg, sizeof m->msg, "%s: %s", function ? function : module, msg);
}

static void ck_free(ck_mem *m) {
  if (m == NULL) return;
  if (m->mem) CVodeFree(&m->mem);
  cnf__nvec_free(&m->y);
  cnf__nvec_free(&m->yB);
  if (m->qB) N_VDestroy(m->qB);
  cnf__nvec_free(&m->atol);
  if (m->nls) SUNNonlinSolFree(m->nls);
  if (m->nlsB) SUNNonlinSolFree(m->nlsB);
  if (m->ls) SUNLinSolFree(m->ls);
  if (m->lsB) SUNLinSolFree(m->lsB);
  memset(m, 0, sizeof *m);
}

static int cv_fail(cnf_ctx *ctx, ck_mem *m, const char *what, int flag,
                   int block) {
  int code = cnf__ode_map_flag(flag);
  char name[32];
  return CNF_ERROR(ctx, code ? code : CNF_ESOLVER,
                   "block %d of %d: %s failed (%s)%s%s", block + 1, m->nblocks, what,
                   cnf__ode_flag_name(flag, name, sizeof name), m->msg[0] ? ": " : "", m->msg);
}

/* The error of a failed solve: CVODE's flag and message, where it stopped
 * and the solve's statistics. */
static int solve_fail(cnf_ctx *ctx, ck_mem *m, const char *what, int flag, int block, double t,
                      const cnf_stats *st) {
  int code = cnf__ode_map_flag(flag);
  char name[32];
  return CNF_ERROR(ctx, code ? code : CNF_ESOLVER,
                   "block %d of %d: %s failed (%s) at t = %.6g after %ld steps, %ld RHS "
                   "evaluations, %ld error-test failures%s%s",
                   block + 1, m->nblocks, what, cnf__ode_flag_name(flag, name, sizeof name), t,
                   st->nsteps, st->nfe, st->netf, m->msg[0] ? ": " : "", m->msg);
}

#define CK(what, expr)                                           \
  do {                                                           \
    int flag_ = (expr);                                          \
    if (flag_ < 0) return cv_fail(ctx, m, what, flag_, block);   \
  } while (0)

static void add_cv_stats(void *mem, int quad, cnf_stats *st) {
  long nst = 0, nfe = 0, netf = 0, nni = 0, ncf = 0, nfq = 0;
  if (quad) CVodeGetQuadNumRhsEvals(mem, &nfq);
  st->nquad += nfq;
  CVodeGetNumSteps(mem, &nst);
  CVodeGetNumRhsEvals(mem, &nfe);
  CVodeGetNumErrTestFails(mem, &netf);
  CVodeGetNumNonlinSolvIters(mem, &nni);
  CVodeGetNumNonlinSolvConvFails(mem, &ncf);
  st->solves += 1;
  st->nsteps += nst;
  st->nfe += nfe;
  st->netf += netf;
  st->nni += nni;
  st->nncf += ncf;
  CVodeGetLastStep(mem, &st->last_h);
}

/* Forward solve of one block with checkpoints; y (B D + B) in/out. */
static int ck_forward(cnf_ctx *ctx, ck_mem *m, const cnf_options *opt,
                      double t0, double t1, double *y, int block, cnf_stats *st) {
  const size_t N = cnf__aug_size(&m->aug), BD = m->aug.B * m->aug.dyn->D;
  SUNContext sctx = (SUNContext)ctx->sunctx;
  int rc = cnf__nvec_make(ctx, &m->y, N, y);
  if (rc == 0) rc = cnf__nvec_make(ctx, &m->atol, N, NULL);
  m->mem = rc == 0 ? CVodeCreate(opt->method == CNF_METHOD_BDF ? CV_BDF : CV_ADAMS, sctx) : NULL;
  if (!m->mem) return CNF_ERROR(ctx, CNF_ENOMEM, "checkpointed adjoint: out of memory");
  double *at = N_VGetArrayPointer(m->atol.local);
  for (size_t i = 0; i < N; i++)
    at[i] = i < BD ? opt->atol
            : i < BD + m->aug.B ? (opt->atol_logp > 0 ? opt->atol_logp : opt->atol)
                                : CNF__ATOL_FREE;
  CK("CVodeSetErrHandlerFn", CVodeSetErrHandlerFn(m->mem, ck_errh, m));
  CK("CVodeInit", CVodeInit(m->mem, ck_rhsF, t0, m->y.v));
  CK("CVodeSetUserData", CVodeSetUserData(m->mem, &m->aug));
  CK("CVodeSVtolerances", CVodeSVtolerances(m->mem, opt->rtol, m->atol.v));
  if (opt->method == CNF_METHOD_BDF) {
    m->ls = SUNLinSol_SPGMR(m->y.v, SUN_PREC_NONE, 0, sctx);
    if (!m->ls) return CNF_ERROR(ctx, CNF_ENOMEM, "checkpointed adjoint: out of memory");
    CK("CVodeSetLinearSolver", CVodeSetLinearSolver(m->mem, m->ls, NULL));
    CK("CVodeSetJacTimes", CVodeSetJacTimes(m->mem, NULL, ck_jtvF));
  } else {
    m->nls = SUNNonlinSol_FixedPoint(m->y.v, 0, sctx);
    if (!m->nls) return CNF_ERROR(ctx, CNF_ENOMEM, "checkpointed adjoint: out of memory");
    CK("CVodeSetNonlinearSolver", CVodeSetNonlinearSolver(m->mem, m->nls));
  }
  CK("CVodeSetMaxNonlinIters", CVodeSetMaxNonlinIters(m->mem, opt->max_nonlin_iters > 0 ? opt->max_nonlin_iters : 3));
  CK("CVodeSetMaxNumSteps", CVodeSetMaxNumSteps(m->mem, opt->max_steps));
  CK("CVodeSetStopTime", CVodeSetStopTime(m->mem, t1));
  if (opt->h_init > 0) CK("CVodeSetInitStep", CVodeSetInitStep(m->mem, opt->h_init));
  if (opt->max_order > 0) CK("CVodeSetMaxOrd", CVodeSetMaxOrd(m->mem, opt->max_order));
  CK("CVodeAdjInit", CVodeAdjInit(m->mem, opt->checkpoint_steps > 0 ? opt->checkpoint_steps : 100, CV_HERMITE));
  double t = t0;
  int ncheck = 0;
  int flag = CVodeF(m->mem, t1, m->y.v, &t, CV_NORMAL, &ncheck);
  cnf_stats local;
  cnf_stats_clear(&local);
  add_cv_stats(m->mem, 0, &local);
  local.trace_var_sum = m->aug.var_sum;
  local.trace_var_n = m->aug.var_n;
  if (st) cnf_stats_add(st, &local);
  if (flag < 0) return solve_fail(ctx, m, "forward solve (CVodeF)", flag, block, t, &local);
  return 0;
}

/* Backward solve of one block from t1 to t0: a_z (B D) in/out, gth (P)
 * out (unused when ab->P is 0). */
static int ck_backward(cnf_ctx *ctx, ck_mem *m, adj_block *ab,
                       const cnf_options *opt, double t1, double t0, double *az,
                       double *gth, int block, cnf_stats *st) {
  SUNContext sctx = (SUNContext)ctx->sunctx;
  const size_t BD = ab->B * ab->D;
  const double rtol = opt->rtol_adj > 0 ? opt->rtol_adj : opt->rtol;
  const double atol = opt->atol_adj > 0 ? opt->atol_adj : opt->atol;
  int which = -1;
  const int rc = cnf__nvec_make(ctx, &m->yB, BD, az);
  if (ab->P > 0) {
    m->qB = N_VMake_Serial((sunindextype)ab->P, gth, sctx);
    cnf__nvec_ops(m->qB);
    memset(gth, 0, ab->P * sizeof(double));
  }
  if (rc != 0 || (ab->P > 0 && !m->qB))
    return CNF_ERROR(ctx, CNF_ENOMEM, "checkpointed adjoint: out of memory");
  CK("CVodeCreateB", CVodeCreateB(m->mem, opt->method == CNF_METHOD_BDF ? CV_BDF : CV_ADAMS, &which));
  CK("CVodeInitB", CVodeInitB(m->mem, which, ck_rhsB, t1, m->yB.v));
  CK("CVodeSStolerancesB", CVodeSStolerancesB(m->mem, which, rtol, atol));
  CK("CVodeSetUserDataB", CVodeSetUserDataB(m->mem, which, ab));
  if (opt->method == CNF_METHOD_BDF) {
    m->lsB = SUNLinSol_SPGMR(m->yB.v, SUN_PREC_NONE, 0, sctx);
    if (!m->lsB) return CNF_ERROR(ctx, CNF_ENOMEM, "checkpointed adjoint: out of memory");
    CK("CVodeSetLinearSolverB", CVodeSetLinearSolverB(m->mem, which, m->lsB, NULL));
    CK("CVodeSetJacTimesB", CVodeSetJacTimesB(m->mem, which, NULL, ck_jtvB));
  } else {
    m->nlsB = SUNNonlinSol_FixedPoint(m->yB.v, 0, sctx);
    if (!m->nlsB) return CNF_ERROR(ctx, CNF_ENOMEM, "checkpointed adjoint: out of memory");
    CK("CVodeSetNonlinearSolverB", CVodeSetNonlinearSolverB(m->mem, which, m->nlsB));
  }
  CK("CVodeSetMaxNumStepsB", CVodeSetMaxNumStepsB(m->mem, which, opt->max_steps));
  if (ab->P > 0) {
    CK("CVodeQuadInitB", CVodeQuadInitB(m->mem, which, ck_quadB, m->qB));
    if (!opt->seminorm) {
      CK("CVodeQuadSStolerancesB", CVodeQuadSStolerancesB(m->mem, which, rtol, atol));
      CK("CVodeSetQuadErrConB", CVodeSetQuadErrConB(m->mem, which, SUNTRUE));
    } else {
      CK("CVodeSetQuadErrConB", CVodeSetQuadErrConB(m->mem, which, SUNFALSE));
    }
  }
  int flag = CVodeB(m->mem, t0, CV_NORMAL);
  void *memB = CVodeGetAdjCVodeBmem(m->mem, which);
  cnf_stats local;
  cnf_stats_clear(&local);
  if (memB) add_cv_stats(memB, ab->P > 0, &local);
  if (st) cnf_stats_add(st, &local);
  double tb = 0.0;
  if (memB) CVodeGetCurrentTime(memB, &tb);
  if (flag < 0) return solve_fail(ctx, m, "backward solve (CVodeB)", flag, block, tb, &local);
  double t = 0.0;
  CK("CVodeGetB", CVodeGetB(m->mem, which, &t, m->yB.v));
  if (ab->P > 0) CK("CVodeGetQuadB", CVodeGetQuadB(m->mem, which, &t, m->qB));
  return 0;
}

/* Backsolve of one block: y = (z, a_z) (2 B D) integrated in place from
 * t1 to t0, gth (P) = a_theta(t0), the quadrature (none when ab->P is 0). */
static int bs_backward(cnf_ctx *ctx, ck_mem *m, adj_block *ab,
                       const cnf_options *opt, double t1, double t0, double *y,
                       double *gth, int block, cnf_stats *st) {
  SUNContext sctx = (SUNContext)ctx->sunctx;
  const size_t N = 2 * ab->B * ab->D;
  const double rtol = opt->rtol_adj > 0 ? opt->rtol_adj : opt->rtol;
  const double atol = opt->atol_adj > 0 ? opt->atol_adj : opt->atol;
  const int rc = cnf__nvec_make(ctx, &m->y, N, y);
  if (ab->P > 0) {
    memset(gth, 0, ab->P * sizeof(double));
    m->qB = N_VMake_Serial((sunindextype)ab->P, gth, sctx);
    cnf__nvec_ops(m->qB);
  }
  m->mem = CVodeCreate(opt->method == CNF_METHOD_BDF ? CV_BDF : CV_ADAMS, sctx);
  if (rc != 0 || (ab->P > 0 && !m->qB) || !m->mem)
    return CNF_ERROR(ctx, CNF_ENOMEM, "backsolve: out of memory");
  CK("CVodeSetErrHandlerFn", CVodeSetErrHandlerFn(m->mem, ck_errh, m));
  CK("CVodeInit", CVodeInit(m->mem, bs_rhs, t1, m->y.v));
  CK("CVodeSetUserData", CVodeSetUserData(m->mem, ab));
  CK("CVodeSStolerances", CVodeSStolerances(m->mem, rtol, atol));
  if (opt->method == CNF_METHOD_BDF) {
    /* Newton with CVODE's difference-quotient J v of the whole (z, a_z)
     * system (its a_z rows involve second derivatives of f) */
    m->ls = SUNLinSol_SPGMR(m->y.v, SUN_PREC_NONE, 0, sctx);
    if (!m->ls) return CNF_ERROR(ctx, CNF_ENOMEM, "backsolve: out of memory");
    CK("CVodeSetLinearSolver", CVodeSetLinearSolver(m->mem, m->ls, NULL));
  } else {
    m->nls = SUNNonlinSol_FixedPoint(m->y.v, 0, sctx);
    if (!m->nls) return CNF_ERROR(ctx, CNF_ENOMEM, "backsolve: out of memory");
    CK("CVodeSetNonlinearSolver", CVodeSetNonlinearSolver(m->mem, m->nls));
  }
  CK("CVodeSetMaxNonlinIters", CVodeSetMaxNonlinIters(m->mem, opt->max_nonlin_iters > 0 ? opt->max_nonlin_iters : 3));
  CK("CVodeSetMaxNumSteps", CVodeSetMaxNumSteps(m->mem, opt->max_steps));
  CK("CVodeSetStopTime", CVodeSetStopTime(m->mem, t0));
  if (opt->max_order > 0) CK("CVodeSetMaxOrd", CVodeSetMaxOrd(m->mem, opt->max_order));
  if (ab->P > 0) {
    CK("CVodeQuadInit", CVodeQuadInit(m->mem, bs_quad, m->qB));
    if (!opt->seminorm) {
      CK("CVodeQuadSStolerances", CVodeQuadSStolerances(m->mem, rtol, atol));
      CK("CVodeSetQuadErrCon", CVodeSetQuadErrCon(m->mem, SUNTRUE));
    }
  }
  double t = t1;
  int flag = CVode(m->mem, t0, m->y.v, &t, CV_NORMAL);
  cnf_stats local;
  cnf_stats_clear(&local);
  add_cv_stats(m->mem, ab->P > 0, &local);
  if (st) cnf_stats_add(st, &local);
  if (flag < 0) return solve_fail(ctx, m, "backward solve", flag, block, t, &local);
  if (ab->P > 0) CK("CVodeGetQuad", CVodeGetQuad(m->mem, &t, m->qB));
  return 0;
}

/* ---- the drivers -------------------------------------------------------- */

/* The message of a failed block solve, prefixed with the block when there
 * are several. */
static int block_fail(cnf_ctx *ctx, int rc, size_t k, size_t nb) {
  if (nb > 1) {
    char msg[CNF_ERRMSG_LEN];
    snprintf(msg, sizeof msg, "%s", ctx->errmsg);
    CNF_ERROR(ctx, rc, "block %zu of %zu: %s", k + 1, nb, msg);
  }
  return rc;
}

int cnf__flow_loss_grad(cnf_flow *f, const cnf_options *opt, size_t B, const double *x,
                        double *loss, double *parts, double *grad, double *grad_T,
                        cnf_stats *fwd, cnf_stats *bwd) {
  if (f == NULL) return CNF_EINVAL;
  cnf_ctx *ctx = f->ctx;
  if (opt == NULL || x == NULL || loss == NULL || grad == NULL || B == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "loss_grad: NULL argument or empty batch");
  cnf_options o;
  int rc0 = cnf__options_read(ctx, opt, &o);
  if (rc0 != 0) return rc0;
  opt = &o;
  if (opt->trace != CNF_TRACE_EXACT && opt->probes == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "loss_grad: Hutchinson needs at least one probe");
  if ((unsigned)opt->adjoint > CNF_ADJOINT_CHECKPOINT)
    return CNF_ERROR(ctx, CNF_EINVAL, "loss_grad: unknown adjoint method");
  if (!(opt->reg_kinetic >= 0) || !(opt->reg_jacobian >= 0))
    return CNF_ERROR(ctx, CNF_EINVAL, "loss_grad: regulariser weights must be >= 0");
  const size_t D = f->cfg.dim, BD = B * D, P = f->P, nb = f->blocks;
  const int exact = opt->trace == CNF_TRACE_EXACT;
  const size_t K = exact ? D : opt->probes;
  const double scale = exact ? 1.0 : 1.0 / (double)K;
  const int nreg = opt->reg_kinetic > 0 || opt->reg_jacobian > 0 ? 2 : 0;
  const int dist = cnf__dist_enabled(ctx);
  if (dist && !opt->seminorm)
    return CNF_ERROR(ctx, CNF_EINVAL, "loss_grad: a distributed gradient needs the seminorm "
                     "(a_theta is summed over the workers after the solve)");
  size_t bad = 0;
  while (bad < BD && isfinite(x[bad])) bad++;
  if (dist && cnf__dist_status(ctx, bad < BD ? -1 : 0) < 0 && bad == BD)
    return CNF_ERROR(ctx, CNF_ENONFINITE, "loss_grad: another worker's rows have a non-finite "
                     "value");
  if (bad < BD)
    return CNF_ERROR(ctx, CNF_ENONFINITE, "loss_grad: input row %zu has a non-finite value",
                     bad / D + 1);
  /* the global batch: Bg rows, this worker's from row lo */
  size_t Bg = B, lo = 0;
  if (dist && cnf__dist_rows(ctx, B, &Bg, &lo) != 0) return CNF_EIO;

  int rc = 0, on = 0, prec_saved = 0, prec_on = 0;
  const int ck = opt->adjoint == CNF_ADJOINT_CHECKPOINT;
  const size_t Nf = BD + B * (size_t)(1 + nreg), Nb = 2 * BD;
  double *eps = exact ? NULL : cnf__dalloc(ctx, nb * K * BD);
  double *y = cnf__dalloc(ctx, ck ? nb * Nf : Nb); /* forward states / backsolve state */
  double *ext = cnf__dalloc(ctx, (size_t)(1 + nreg) * B); /* Delta, E_K, E_J (backsolve) */
  double *az = cnf__dalloc(ctx, BD);
  double *w = cnf__dalloc(ctx, 3 * B); /* trace weights, ck, cj */
  double *gz = cnf__dalloc(ctx, BD);
  double *ydot = cnf__dalloc(ctx, Nf);
  double *xs = cnf__dalloc(ctx, BD);
  double *geps = dist && !exact ? cnf__dalloc(ctx, K * Bg * D) : NULL; /* (K, Bg, D) */
  ck_mem *mems = cnf__calloc(ck ? nb : 1, sizeof(ck_mem));
  if ((!exact && !eps) || !y || !ext || !az || !w || !gz || !ydot || !xs || !mems ||
      (dist && !exact && !geps))
    rc = CNF_ERROR(ctx, CNF_ENOMEM, "loss_grad: out of memory for %zu points", B);
  if (rc == 0) rc = cnf_dyn_reserve(f->dyn, B, K);
  if (dist && cnf__dist_status(ctx, rc) != 0 && rc == 0)
    rc = CNF_ERROR(ctx, CNF_ENOMEM, "loss_grad: another worker is out of memory");
  if (rc != 0) goto cleanup;
  if (dist) ctx->dist_on++, on = 1; /* the solves below are one system over the workers */
  CNF_TRY(cnf__dyn_precision_begin(f->dyn, opt->precision, 1, &prec_saved)); /* to cleanup */
  prec_on = 1;
  cnf__flow_standardize(f, B, x, xs); /* the flow's own coordinates */

  /* forward, block by block; the state ends in y and ext (backsolve) or
   * in each block's final state (checkpoint) */
  if (!ck) memcpy(y, xs, BD * sizeof(double));
  for (size_t k = 0; k < nb; k++) {
    double *ek = exact ? NULL : eps + k * K * BD;
    if (!exact) CNF_TRY(cnf__flow_draw_probes_part(f, opt->trace, K, Bg, lo, B, geps, ek));
    if (ck) {
      double *yk = y + k * Nf;
      if (k == 0) memcpy(yk, xs, BD * sizeof(double));
      else memcpy(yk, y + (k - 1) * Nf, Nf * sizeof(double));
      mems[k].aug = (cnf__aug){.dyn = f->dyn, .theta = f->theta + k * P, .B = B, .K = K,
                               .eps = ek, .scale = scale, .nreg = nreg};
      mems[k].nblocks = (int)nb;
      CNF_TRY(ck_forward(ctx, &mems[k], opt, 0.0, f->T[k], yk, (int)k, fwd));
    } else {
      double t1 = f->T[k];
      rc = cnf__dyn_solve_aug(f->dyn, f->theta + k * P, opt, 0.0, 1, &t1, B, K, ek, nreg, y,
                              ext, nreg ? ext + B : NULL, NULL, NULL, fwd);
      if (rc != 0) {
        rc = block_fail(ctx, rc, k, nb);
        goto cleanup;
      }
    }
  }
  const double *zT = ck ? y + (nb - 1) * Nf : y;
  const double *eT = ck ? y + (nb - 1) * Nf + BD : ext; /* Delta, E_K, E_J */

  /* loss and terminal adjoints: a_Delta = 1/B, a_{E_K} = lambda_K / B,
   * a_{E_J} = lambda_J / B, all constant in time */
  double L = 0.0, EK = 0.0, EJ = 0.0;
  for (size_t b = 0; b < B; b++) L -= cnf_log_normal(zT + b * D, D) - eT[b];
  for (size_t b = 0; b < B && nreg; b++) EK += eT[B + b], EJ += eT[2 * B + b];
  L /= (double)Bg, EK /= (double)Bg, EJ /= (double)Bg;
  if (lo == 0) L += cnf__flow_log_scale(f); /* in the units of x (once over the workers) */
  *loss = L + opt->reg_kinetic * EK + opt->reg_jacobian * EJ;
  if (parts != NULL) parts[0] = L, parts[1] = EK, parts[2] = EJ;
  for (size_t i = 0; i < BD; i++) az[i] = zT[i] / (double)Bg;
  const double a_delta = 1.0 / (double)Bg, a_ek = opt->reg_kinetic / (double)Bg,
               a_ej = opt->reg_jacobian / (double)Bg;
  for (size_t b = 0; b < B; b++) {
    w[b] = -scale * a_delta;
    w[B + b] = a_ek;
    w[2 * B + b] = scale * a_ej;
  }

  /* backward, block by block (backsolve: z is already at the start of y) */
  for (size_t kk = nb; kk-- > 0;) {
    const double *ek = exact ? NULL : eps + kk * K * BD;
    const double *th = f->theta + kk * P;
    const double *zk = ck ? y + kk * Nf : y; /* block output */
    adj_block ab = {f->dyn, th, B, D, K, P, ek, w, gz,
                    a_ek > 0 ? w + B : NULL, a_ej > 0 ? w + 2 * B : NULL};
    if (grad_T != NULL) {
      /* dL/dT_k = a . (the augmented right-hand side at T_k) */
      cnf__aug aug = {.dyn = f->dyn, .theta = th, .B = B, .K = K, .eps = ek, .scale = scale,
                      .nreg = nreg};
      CNF_TRY(cnf__aug_rhs(f->T[kk], zk, ydot, &aug));
      double gT = 0.0;
      for (size_t i = 0; i < BD; i++) gT += az[i] * ydot[i];
      for (size_t b = 0; b < B; b++) {
        gT += a_delta * ydot[BD + b];
        if (nreg) gT += a_ek * ydot[BD + B + b] + a_ej * ydot[BD + 2 * B + b];
      }
      grad_T[kk] = gT;
    }
    double *gk = grad + kk * P;
    if (ck) {
      CNF_TRY(ck_backward(ctx, &mems[kk], &ab, opt, f->T[kk], 0.0, az, gk, (int)kk, bwd));
    } else {
      /* (z, a_z) from T to 0, a_theta as the quadrature */
      memcpy(y + BD, az, BD * sizeof(double));
      mems[0].nblocks = (int)nb;
      rc = bs_backward(ctx, &mems[0], &ab, opt, f->T[kk], 0.0, y, gk, (int)kk, bwd);
      ck_free(&mems[0]);
      if (rc != 0) goto cleanup;
      memcpy(az, y + BD, BD * sizeof(double));
    }
  }

cleanup:
  if (on) ctx->dist_on--;
  if (prec_on) cnf__dyn_precision_end(f->dyn, prec_saved);
  if (mems)
    for (size_t k = 0; k < (ck ? nb : 1); k++) ck_free(&mems[k]);
  cnf__free(mems);
  cnf__free(geps);
  cnf__free(eps);
  cnf__free(y);
  cnf__free(ext);
  cnf__free(az);
  cnf__free(w);
  cnf__free(gz);
  cnf__free(ydot);
  cnf__free(xs);
  return rc;
}

int cnf_flow_loss_grad(cnf_flow *f, const cnf_options *opt, size_t B, const double *x,
                       double *loss, double *grad, double *grad_T, cnf_stats *fwd,
                       cnf_stats *bwd) {
  return cnf__flow_loss_grad(f, opt, B, x, loss, NULL, grad, grad_T, fwd, bwd);
}

int cnf_dyn_grad(cnf_dyn *dyn, const double *theta, const cnf_options *opt, double t0,
                 double t1, size_t B, size_t K, const double *eps, const double *z0,
                 cnf_terminal_loss loss_fn, void *user, double *loss, double *z1,
                 double *delta1, double *gz0, double *gth, cnf_stats *fwd, cnf_stats *bwd) {
  if (dyn == NULL) return CNF_EINVAL;
  cnf_ctx *ctx = dyn->ctx;
  if (B == 0) return CNF_ERROR(ctx, CNF_EINVAL, "grad: empty batch (B = 0)");
  if (opt == NULL || z0 == NULL || loss_fn == NULL || loss == NULL || !(t1 != t0))
    return CNF_ERROR(ctx, CNF_EINVAL, "grad: NULL argument or t1 = t0");
  cnf_options o;
  int rc0 = cnf__options_read(ctx, opt, &o);
  if (rc0 != 0) return rc0;
  opt = &o;
  if (dyn->P > 0 && theta == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "grad: field '%s' needs parameters", cnf_dyn_name(dyn));
  if ((unsigned)opt->adjoint > CNF_ADJOINT_CHECKPOINT)
    return CNF_ERROR(ctx, CNF_EINVAL, "grad: unknown adjoint method");
  if (dyn->type->vjp == NULL)
    return CNF_ERROR(ctx, CNF_EUNSUPPORTED,
                     "grad: field '%s' has no vector-Jacobian product (vjp op)",
                     cnf_dyn_name(dyn));
  const size_t D = dyn->D, BD = B * D, P = gth != NULL ? dyn->P : 0;
  if (eps == NULL) K = D;
  if (K == 0) return CNF_ERROR(ctx, CNF_EINVAL, "grad: zero probes");
  const double scale = eps != NULL ? 1.0 / (double)K : 1.0;
  const int ck = opt->adjoint == CNF_ADJOINT_CHECKPOINT;
  int rc = 0, prec_saved = 0, prec_on = 0;
  double *y = cnf__dalloc(ctx, ck ? BD + B : 2 * BD);
  double *delta = cnf__dalloc(ctx, B);
  double *az = cnf__dalloc(ctx, BD);
  double *gd = cnf__dalloc(ctx, B);
  double *gz = cnf__dalloc(ctx, BD);
  ck_mem m;
  memset(&m, 0, sizeof m);
  m.nblocks = 1;
  if (!y || !delta || !az || !gd || !gz) {
    rc = CNF_ERROR(ctx, CNF_ENOMEM, "grad: out of memory for %zu samples", B);
    goto cleanup;
  }
  CNF_TRY(cnf_dyn_reserve(dyn, B, K));
  CNF_TRY(cnf__dyn_precision_begin(dyn, opt->precision, 1, &prec_saved)); /* to cleanup */
  prec_on = 1;
  memcpy(y, z0, BD * sizeof(double));
  memset(delta, 0, B * sizeof(double));
  if (ck) {
    memset(y + BD, 0, B * sizeof(double));
    m.aug = (cnf__aug){.dyn = dyn, .theta = theta, .B = B, .K = K, .eps = eps, .scale = scale};
    CNF_TRY(ck_forward(ctx, &m, opt, t0, t1, y, 0, fwd));
    memcpy(delta, y + BD, B * sizeof(double));
  } else {
    CNF_TRY(cnf_dyn_solve(dyn, theta, opt, t0, t1, B, K, eps, y, delta, fwd));
  }
  if (z1 != NULL) memcpy(z1, y, BD * sizeof(double));
  if (delta1 != NULL) memcpy(delta1, delta, B * sizeof(double));
  memset(az, 0, BD * sizeof(double));
  memset(gd, 0, B * sizeof(double));
  rc = loss_fn(user, B, D, y, delta, loss, az, gd);
  if (rc != 0) {
    rc = CNF_ERROR(ctx, rc < 0 ? rc : CNF_EINVAL, "grad: the terminal loss failed (%s)",
                   cnf_strerror(rc < 0 ? rc : CNF_EINVAL));
    goto cleanup;
  }
  for (size_t i = 0; i < BD + B; i++)
    if (!isfinite(i < BD ? az[i] : gd[i - BD])) {
      rc = CNF_ERROR(ctx, CNF_ENONFINITE, "grad: the loss's seed %s is not finite",
                     i < BD ? "dL/dz1" : "dL/dDelta1");
      goto cleanup;
    }
  for (size_t b = 0; b < B; b++) gd[b] *= -scale; /* trace weights w_b = -s a_Delta */
  adj_block ab = {dyn, theta, B, D, K, P, eps, gd, gz, NULL, NULL};
  if (ck) {
    CNF_TRY(ck_backward(ctx, &m, &ab, opt, t1, t0, az, gth, 0, bwd));
  } else {
    memcpy(y + BD, az, BD * sizeof(double));
    CNF_TRY(bs_backward(ctx, &m, &ab, opt, t1, t0, y, gth, 0, bwd));
    memcpy(az, y + BD, BD * sizeof(double));
  }
  if (gz0 != NULL) memcpy(gz0, az, BD * sizeof(double));

cleanup:
  if (prec_on) cnf__dyn_precision_end(dyn, prec_saved);
  ck_free(&m);
  cnf__free(y);
  cnf__free(delta);
  cnf__free(az);
  cnf__free(gd);
  cnf__free(gz);
  return rc;
}
