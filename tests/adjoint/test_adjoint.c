/* test_adjoint.c: the gradient of the likelihood loss (cnf_flow_loss_grad,
 * src/adjoint/adjoint.c) against central differences of the loss itself.
 *
 * The loss is L = -(1/B) sum_b log p(x_b).  With the Hutchinson probes held
 * fixed (cnf_flow_seed(f, s) before every evaluation: the probes of each
 * block are drawn from the flow's generator, so they are a function of s
 * alone and do not move with theta), L is a smooth function of theta and of
 * the end times T_k, and the adjoint must return its exact gradient up to
 * the solver's error.  The differences use cnf_flow_logp (the forward path
 * alone), after the same seed; every case checks that this is the very L
 * that cnf_flow_loss_grad reports (to 1e-12).
 *
 * Tolerances.  Both solves run at rtol = atol = 1e-10.  The central
 * difference (L(th + h) - L(th - h)) / 2h has a truncation error
 * h^2 |L'''| / 6 and a noise of about e / h where e is the error of the
 * computed L that does not cancel between the two solves.  e is at most a
 * few times the tolerance (1e-10 |L|), usually far less, since both solves
 * take nearly the same steps; h = 1e-4 keeps h^2 ~ 1e-8 (times |L'''| of
 * order 1 for these small networks) and e / h <~ 1e-6 in the worst case.
 * Measured: h = 1e-3 gives normwise errors near 1e-7 (truncation), h =
 * 1e-4 twenty times less (truncation and noise together).  The errors
 * of h = 1e-4 are printed: normwise 6e-10 to 3e-8 for backsolve and
 * 4e-9 to 5e-8 for checkpoint, per component at most 3e-6 (BDF).  The
 * project's requirement is a normwise relative error
 *
 *     max_i |fd_i - g_i| / max_i |g_i|  <=  1e-5
 *
 * over all parameters, and per component |fd_i - g_i| <= 1e-4 max(|g_i|,
 * 1e-2 max_j |g_j|) (a floor: a component a hundred times smaller than the
 * largest is only known to the absolute accuracy of the whole gradient).
 * An error in the math (a missing term, a sign, a factor, a wrong probe)
 * shows up at its own size: scaling the adjoint's trace term by 0.999, or
 * one component of checkpoint's quadrature by 1.001, fails every case.
 * The linear field's closed-form gradient is out of reach here: flows are
 * MLP-only. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnf.h"
#include "test_util.h"

#define TOL 1e-10       /* forward and backward rtol = atol */
#define FD_H 1e-4       /* central-difference step, see above */
#define REQ_NORM 1e-5   /* the project's bound on the normwise error */
#define REQ_COMP 1e-4   /* per component, relative to max(|g_i|, floor) */
#define COMP_FLOOR 1e-2 /* floor as a fraction of max |g| */
#define PROBE_SEED 20240611ULL

static cnf_ctx *ctx;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- a small problem ---------------------------------------------------- */

typedef struct problem {
  size_t D;
  const char *hidden;
  cnf_layer layer;
  cnf_act act;
  size_t blocks;
  double T;
  size_t B;
  int standardize; /* non-trivial shift and scale */
  uint64_t seed;   /* parameters and data */
} problem;

static const problem base_problem = {2, "8-8", CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 1, 0.8, 12,
                                     0, 7};

static cnf_flow *make_flow(const problem *pb) {
  if (ctx == NULL) CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, pb->D);
  CU_ASSERT_EQUAL_FATAL(cnf_mlp_parse_hidden(&cfg, pb->hidden), 0);
  cfg.layer = pb->layer;
  cfg.act = pb->act;
  cnf_flow *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create(&f, ctx, &cfg, pb->blocks, pb->T, pb->seed), 0);
  /* larger weights than the initialisation's so that the field is far
   * from linear and every parameter matters (the default init gives a
   * nearly linear, slow field) */
  double *th = cnf_flow_params(f);
  for (size_t i = 0; i < cnf_flow_param_count(f); i++) th[i] *= 2.5;
  for (size_t k = 1; k < pb->blocks; k++)
    CU_ASSERT_EQUAL(cnf_flow_set_end_time(f, k, pb->T * (1.0 + 0.37 * (double)k)), 0);
  if (pb->standardize) {
    double shift[8], scale[8];
    for (size_t i = 0; i < pb->D; i++) {
      shift[i] = 1.3 - 0.7 * (double)i;
      scale[i] = 2.1 + 1.4 * (double)i;
    }
    CU_ASSERT_EQUAL_FATAL(cnf_flow_set_standardization(f, shift, scale), 0);
  }
  return f;
}

static double *make_data(const problem *pb) {
  double *x = malloc(pb->B * pb->D * sizeof *x);
  CU_ASSERT_PTR_NOT_NULL_FATAL(x);
  fill_gauss(x, pb->B * pb->D, pb->seed + 100);
  if (pb->standardize)
    for (size_t b = 0; b < pb->B; b++)
      for (size_t i = 0; i < pb->D; i++)
        x[b * pb->D + i] = (1.3 - 0.7 * (double)i) + (2.1 + 1.4 * (double)i) * x[b * pb->D + i];
  return x;
}

static cnf_options tight_options(cnf_trace trace, cnf_method method) {
  cnf_options o;
  cnf_options_default(&o);
  o.rtol = o.atol = TOL;
  o.max_steps = 1000000;
  o.trace = trace;
  o.probes = trace == CNF_TRACE_EXACT ? 1 : 2;
  o.method = method;
  return o;
}

/* L = -mean log p by the forward path, probes from PROBE_SEED.  With RNODE's
 * regularisers (which only the loss's own forward pass integrates), the
 * loss that cnf_flow_loss_grad reports: its forward solve is the same. */
static double loss_fwd(cnf_flow *f, const cnf_options *o, size_t B, const double *x) {
  if (o->reg_kinetic > 0 || o->reg_jacobian > 0) {
    cnf_options oo = *o;
    oo.adjoint = CNF_ADJOINT_BACKSOLVE;
    double L = NAN, *g = malloc(cnf_flow_param_count(f) * sizeof *g);
    cnf_flow_seed(f, PROBE_SEED);
    CU_ASSERT_EQUAL(cnf_flow_loss_grad(f, &oo, B, x, &L, g, NULL, NULL, NULL), 0);
    free(g);
    return L;
  }
  double *lp = malloc(B * sizeof *lp);
  cnf_flow_seed(f, PROBE_SEED);
  int rc = cnf_flow_logp(f, o, B, x, lp, NULL);
  CU_ASSERT_EQUAL(rc, 0);
  if (rc != 0) printf("\n  logp: %s\n", cnf_ctx_errmsg(ctx));
  double L = 0.0;
  for (size_t b = 0; b < B; b++) L -= lp[b];
  free(lp);
  return L / (double)B;
}

/* Central differences of L in every parameter (g, P) and end time (gT). */
static void fd_gradient(cnf_flow *f, const cnf_options *o, size_t B, const double *x, double *g,
                        double *gT) {
  double *th = cnf_flow_params(f);
  const size_t P = cnf_flow_param_count(f);
  for (size_t i = 0; i < P; i++) {
    const double old = th[i];
    th[i] = old + FD_H;
    double Lp = loss_fwd(f, o, B, x);
    th[i] = old - FD_H;
    double Lm = loss_fwd(f, o, B, x);
    th[i] = old;
    g[i] = (Lp - Lm) / (2.0 * FD_H);
  }
  for (size_t k = 0; k < cnf_flow_blocks(f); k++) {
    const double T = cnf_flow_end_time(f, k);
    CU_ASSERT_EQUAL(cnf_flow_set_end_time(f, k, T + FD_H), 0);
    double Lp = loss_fwd(f, o, B, x);
    CU_ASSERT_EQUAL(cnf_flow_set_end_time(f, k, T - FD_H), 0);
    double Lm = loss_fwd(f, o, B, x);
    CU_ASSERT_EQUAL(cnf_flow_set_end_time(f, k, T), 0);
    gT[k] = (Lp - Lm) / (2.0 * FD_H);
  }
}

/* The adjoint gradient with probes from PROBE_SEED. */
static int adjoint(cnf_flow *f, const cnf_options *o, cnf_adjoint variant, size_t B,
                   const double *x, double *loss, double *g, double *gT, cnf_stats *fwd,
                   cnf_stats *bwd) {
  cnf_options oo = *o;
  oo.adjoint = variant;
  cnf_flow_seed(f, PROBE_SEED);
  int rc = cnf_flow_loss_grad(f, &oo, B, x, loss, g, gT, fwd, bwd);
  if (rc != 0) printf("\n  loss_grad (%s): %s\n", cnf_adjoint_name(variant), cnf_ctx_errmsg(ctx));
  return rc;
}

/* Normwise error max_i |a_i - ref_i| / max_i |ref_i| and the worst
 * per-component error |a_i - ref_i| / max(|ref_i|, floor max |ref|). */
static void errors(const double *a, const double *ref, size_t n, double *norm, double *comp,
                   size_t *worst) {
  double mx = 0.0, md = 0.0;
  for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(ref[i]));
  *comp = 0.0;
  *worst = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs(a[i] - ref[i]);
    md = fmax(md, d);
    double e = d / fmax(fabs(ref[i]), COMP_FLOOR * mx);
    if (!(e <= *comp)) *comp = e, *worst = i;
  }
  *norm = mx > 0.0 ? md / mx : INFINITY;
}

/* Assert that g matches the differences fd: the normwise and per-component
 * bounds above.  Returns the normwise error. */
static double check_gradient(const char *label, const double *g, const double *fd, size_t n,
                             double bound) {
  double norm, comp;
  size_t w;
  errors(g, fd, n, &norm, &comp, &w);
  int ok = norm <= bound && comp <= REQ_COMP;
  printf("\n  %-44s normwise %.2e, per component %.2e (worst [%zu] %.10g vs fd %.10g)%s", label,
         norm, comp, w, g[w], fd[w], ok ? "" : "  NOT OK");
  CU_ASSERT_TRUE(norm <= bound);
  CU_ASSERT_TRUE(comp <= REQ_COMP);
  return norm;
}

/* The whole check for one problem and one set of options: the adjoint
 * gradient of each requested variant (and the end-time gradients) against
 * central differences; the loss against -mean(logp); the two variants
 * against each other.  variants: bit 0 backsolve, bit 1 checkpoint. */
static void gradient_case(const char *label, const problem *pb, cnf_options o, int variants) {
  double t0 = now();
  cnf_flow *f = make_flow(pb);
  double *x = make_data(pb);
  const size_t P = cnf_flow_param_count(f), K = cnf_flow_blocks(f), B = pb->B;
  double *fd = malloc((P + K) * sizeof *fd);
  double *g[2] = {malloc((P + K) * sizeof(double)), malloc((P + K) * sizeof(double))};
  cnf_stats fwd[2], bwd[2];
  double loss[2] = {NAN, NAN};
  const double Lf = loss_fwd(f, &o, B, x);
  printf("\n  %s: P = %zu, %zu block(s), B = %zu, L = %.10f", label, P, K, B, Lf);
  for (int v = 0; v < 2; v++) {
    if (!(variants & (1 << v))) continue;
    cnf_stats_clear(&fwd[v]);
    cnf_stats_clear(&bwd[v]);
    int rc = adjoint(f, &o, (cnf_adjoint)v, B, x, &loss[v], g[v], g[v] + P, &fwd[v], &bwd[v]);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    /* the loss of loss_grad is the loss of the forward path, as long as
     * the forward solves are the same: backsolve runs the very solver of
     * cnf_flow_logp; checkpoint runs CVODES's CVodeF with the same
     * settings, which takes the same steps */
    CHECK_NEAR(loss[v], Lf, 1e-12 * fmax(1.0, fabs(Lf)));
  }
  fd_gradient(f, &o, B, x, fd, fd + P);
  for (int v = 0; v < 2; v++) {
    if (!(variants & (1 << v))) continue;
    char l[96];
    snprintf(l, sizeof l, "%s dL/dtheta:", cnf_adjoint_name((cnf_adjoint)v));
    check_gradient(l, g[v], fd, P, REQ_NORM);
    snprintf(l, sizeof l, "%s dL/dT:", cnf_adjoint_name((cnf_adjoint)v));
    check_gradient(l, g[v] + P, fd + P, K, REQ_NORM);
    printf("\n  %-44s forward %ld steps %ld RHS, backward %ld steps %ld RHS", "", fwd[v].nsteps,
           fwd[v].nfe, bwd[v].nsteps, bwd[v].nfe);
  }
  if (variants == 3) {
    /* the two variants solve the same backward problem differently: at
     * 1e-10 they agree to well within 1e-6 */
    double norm, comp;
    size_t w;
    errors(g[1], g[0], P + K, &norm, &comp, &w);
    printf("\n  %-44s normwise %.2e", "checkpoint vs backsolve:", norm);
    CU_ASSERT_TRUE(norm <= 1e-6);
  }
  printf("\n  (%.2f s) ", now() - t0);
  free(fd), free(g[0]), free(g[1]), free(x);
  cnf_flow_free(f);
}

/* ---- the required cases -------------------------------------------------- */

static void test_exact(void) {
  gradient_case("exact trace", &base_problem, tight_options(CNF_TRACE_EXACT, CNF_METHOD_ADAMS), 3);
}

static void test_gauss(void) {
  gradient_case("Gaussian Hutchinson, 2 probes", &base_problem,
                tight_options(CNF_TRACE_GAUSS, CNF_METHOD_ADAMS), 3);
}

static void test_rademacher(void) {
  gradient_case("Rademacher Hutchinson, 2 probes", &base_problem,
                tight_options(CNF_TRACE_RADEMACHER, CNF_METHOD_ADAMS), 3);
}

static void test_two_blocks(void) {
  problem pb = base_problem;
  pb.blocks = 2;
  pb.seed = 11;
  gradient_case("two blocks, exact", &pb, tight_options(CNF_TRACE_EXACT, CNF_METHOD_ADAMS), 3);
}

static void test_two_blocks_hutch(void) {
  problem pb = base_problem;
  pb.blocks = 2;
  pb.D = 3;
  pb.seed = 12;
  gradient_case("two blocks, D = 3, Rademacher", &pb,
                tight_options(CNF_TRACE_RADEMACHER, CNF_METHOD_ADAMS), 3);
}

/* ---- layers, activations ------------------------------------------------- */

/* RNODE: the kinetic and Jacobian-norm integrals join the loss; their
 * adjoint seeds (2 lambda_K f on the primal, 2 lambda_J J eps on the
 * tangents) must give its exact gradient, in theta and in T. */
static void test_rnode_exact(void) {
  cnf_options o = tight_options(CNF_TRACE_EXACT, CNF_METHOD_ADAMS);
  o.reg_kinetic = 0.7;
  o.reg_jacobian = 0.4;
  gradient_case("RNODE, exact trace", &base_problem, o, 3);
}

static void test_rnode_gauss(void) {
  problem pb = base_problem;
  pb.blocks = 2;
  cnf_options o = tight_options(CNF_TRACE_GAUSS, CNF_METHOD_ADAMS);
  o.reg_kinetic = 0.3;
  o.reg_jacobian = 1.1;
  gradient_case("RNODE, Gaussian probes, two blocks", &pb, o, 3);
}

static void test_rnode_kinetic_only(void) {
  cnf_options o = tight_options(CNF_TRACE_RADEMACHER, CNF_METHOD_ADAMS);
  o.reg_kinetic = 2.0;
  gradient_case("RNODE, kinetic term alone", &base_problem, o, 3);
}

static void test_concat(void) {
  problem pb = base_problem;
  pb.layer = CNF_LAYER_CONCAT;
  gradient_case("concat layers, tanh", &pb, tight_options(CNF_TRACE_EXACT, CNF_METHOD_ADAMS), 3);
}

static void test_ignore(void) {
  problem pb = base_problem;
  pb.layer = CNF_LAYER_IGNORE;
  gradient_case("ignore layers, tanh", &pb, tight_options(CNF_TRACE_EXACT, CNF_METHOD_ADAMS), 3);
}

static void test_softplus(void) {
  problem pb = base_problem;
  pb.act = CNF_ACT_SOFTPLUS;
  gradient_case("concatsquash, softplus", &pb, tight_options(CNF_TRACE_EXACT, CNF_METHOD_ADAMS), 3);
}

static void test_bdf(void) {
  gradient_case("BDF, exact", &base_problem, tight_options(CNF_TRACE_EXACT, CNF_METHOD_BDF), 3);
}

static void test_standardized(void) {
  problem pb = base_problem;
  pb.standardize = 1;
  gradient_case("standardized, exact", &pb, tight_options(CNF_TRACE_EXACT, CNF_METHOD_ADAMS), 3);
}

/* The standardized flow models x_std = (x - shift) / scale: its loss in
 * the units of x is the loss of the same flow without standardization at
 * x_std plus sum log scale, and the gradients are those at x_std, to the
 * last bit (the same solves on the same numbers). */
static void test_standardized_identity(void) {
  problem pb = base_problem;
  pb.standardize = 1;
  cnf_flow *fs = make_flow(&pb);
  pb.standardize = 0;
  cnf_flow *f = make_flow(&pb);
  pb.standardize = 1;
  double *x = make_data(&pb);
  const size_t B = pb.B, D = pb.D, P = cnf_flow_param_count(f);
  double shift[2], scale[2];
  CU_ASSERT_EQUAL(cnf_flow_standardization(fs, shift, scale), 1);
  CU_ASSERT_EQUAL(cnf_flow_standardization(f, NULL, NULL), 0);
  double xs[12 * 2];
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < D; i++) xs[b * D + i] = (x[b * D + i] - shift[i]) / scale[i];
  cnf_options o = tight_options(CNF_TRACE_EXACT, CNF_METHOD_ADAMS);
  o.rtol = o.atol = 1e-6;
  for (int v = 0; v < 2; v++) {
    double Ls, L, gs[200], g[200], gTs[1], gT[1];
    CU_ASSERT_EQUAL_FATAL(adjoint(fs, &o, (cnf_adjoint)v, B, x, &Ls, gs, gTs, NULL, NULL), 0);
    CU_ASSERT_EQUAL_FATAL(adjoint(f, &o, (cnf_adjoint)v, B, xs, &L, g, gT, NULL, NULL), 0);
    const double ls = log(scale[0]) + log(scale[1]);
    printf("\n  %s: loss %.15f = %.15f + sum log scale %.15f", cnf_adjoint_name((cnf_adjoint)v), Ls,
           L, ls);
    CHECK_NEAR(Ls, L + ls, 1e-14 * fabs(Ls));
    CU_ASSERT_EQUAL(memcmp(gs, g, P * sizeof(double)), 0);
    CU_ASSERT_EQUAL(memcmp(gTs, gT, sizeof gT), 0);
    /* and -mean(logp) in the units of x */
    double lp[12], m = 0.0;
    CU_ASSERT_EQUAL(cnf_flow_logp(fs, &o, B, x, lp, NULL), 0);
    for (size_t b = 0; b < B; b++) m -= lp[b] / (double)B;
    CHECK_NEAR(Ls, m, 1e-12 * fabs(m));
  }
  free(x);
  cnf_flow_free(f);
  cnf_flow_free(fs);
}

/* ---- seminorm ---------------------------------------------------------------- */

/* The seminorm leaves a_theta out of the backward error control.  On and
 * off both give the gradient (against the same differences).
 *
 * Steps.  In both variants a_theta is a CVODES quadrature; controlled
 * (seminorm off), its error norm enters each step's test through the
 * larger of the state's and the quadrature's norms, so off adds a
 * constraint to every step and never takes fewer steps.  Checked on the
 * test problem at 1e-10 and on a training-sized one at 1e-8, 1e-5 and
 * 1e-3; off takes more steps in at least one of them (measured: 15 vs 20
 * backsolve and 16 vs 22 checkpoint steps at 1e-5).  The RHS counts are
 * printed but not compared: the fixed-point iterations per step vary. */
static void seminorm_steps(cnf_flow *f, cnf_options o, size_t B, const double *x, long steps[2][2],
                           long nfe[2][2]) {
  const size_t P = cnf_flow_param_count(f);
  double *g = malloc(P * sizeof *g), L, gT[1];
  for (int v = 0; v < 2; v++)
    for (int semi = 0; semi < 2; semi++) {
      o.seminorm = semi;
      cnf_stats bwd;
      cnf_stats_clear(&bwd);
      CU_ASSERT_EQUAL_FATAL(adjoint(f, &o, (cnf_adjoint)v, B, x, &L, g, gT, NULL, &bwd), 0);
      steps[v][semi] = bwd.nsteps;
      nfe[v][semi] = bwd.nfe;
    }
  free(g);
}

static void test_seminorm(void) {
  const problem *pb = &base_problem;
  cnf_flow *f = make_flow(pb);
  double *x = make_data(pb);
  const size_t P = cnf_flow_param_count(f), B = pb->B;
  double *fd = malloc((P + 1) * sizeof *fd), *g = malloc((P + 1) * sizeof *g);
  cnf_options o = tight_options(CNF_TRACE_EXACT, CNF_METHOD_ADAMS);
  fd_gradient(f, &o, B, x, fd, fd + P);
  for (int v = 0; v < 2; v++)
    for (int semi = 1; semi >= 0; semi--) {
      o.seminorm = semi;
      double L;
      CU_ASSERT_EQUAL_FATAL(adjoint(f, &o, (cnf_adjoint)v, B, x, &L, g, g + P, NULL, NULL), 0);
      char l[96];
      snprintf(l, sizeof l, "%s, seminorm %s:", cnf_adjoint_name((cnf_adjoint)v),
               semi ? "on" : "off");
      check_gradient(l, g, fd, P + 1, REQ_NORM);
    }
  free(fd), free(g), free(x);
  cnf_flow_free(f);

  /* steps: the test problem at 1e-10, and a training-sized one (16-16,
   * B = 20 from 8gaussians) at 1e-8, 1e-5 and 1e-3 */
  problem big = base_problem;
  big.hidden = "16-16";
  big.B = 20;
  const double tols[] = {1e-10, 1e-8, 1e-5, 1e-3};
  int saved[2] = {0, 0};
  long total[2][2] = {{0, 0}, {0, 0}};
  for (size_t i = 0; i < 4; i++) {
    const problem *q = i == 0 ? &base_problem : &big;
    cnf_flow *fq = make_flow(q);
    double xq[20 * 2];
    if (i == 0) {
      double *xd = make_data(q);
      memcpy(xq, xd, q->B * q->D * sizeof(double));
      free(xd);
    } else {
      CU_ASSERT_EQUAL(cnf_toy_sample("8gaussians", q->B, 5, xq), 0);
    }
    cnf_options oq = tight_options(CNF_TRACE_EXACT, CNF_METHOD_ADAMS);
    oq.rtol = oq.atol = tols[i];
    long steps[2][2], nfe[2][2];
    seminorm_steps(fq, oq, q->B, xq, steps, nfe);
    printf("\n  %s, B = %zu, tol %g, backward steps/RHS:", q->hidden, q->B, tols[i]);
    for (int v = 0; v < 2; v++)
      printf("  %s: seminorm on %ld/%ld, off %ld/%ld", cnf_adjoint_name((cnf_adjoint)v),
             steps[v][1], nfe[v][1], steps[v][0], nfe[v][0]);
    /* step-size control is heuristic: the seminorm may cost steps on one
     * problem (seen: 63 against 54 at 1e-10 with the checkpointed adjoint);
     * over the four problems it must not cost more than it saves */
    for (int v = 0; v < 2; v++) {
      total[v][0] += steps[v][0], total[v][1] += steps[v][1];
      saved[v] += steps[v][0] > steps[v][1];
    }
    cnf_flow_free(fq);
  }
  printf("\n  total backward steps, seminorm on/off: backsolve %ld/%ld, checkpoint %ld/%ld",
         total[0][1], total[0][0], total[1][1], total[1][0]);
  for (int v = 0; v < 2; v++) CU_ASSERT_TRUE(total[v][1] <= total[v][0]);
  CU_ASSERT_TRUE(saved[0] > 0);
  CU_ASSERT_TRUE(saved[1] > 0);
}

/* ---- errors -------------------------------------------------------------------- */

static void expect_error(int rc, int code, const char *needle) {
  CU_ASSERT_EQUAL(rc, code);
  if (rc != code) printf("\n  got %s (%d), expected %s\n", cnf_errname(rc), rc, cnf_errname(code));
  if (needle != NULL) {
    const char *msg = cnf_ctx_errmsg(ctx);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle));
    if (strstr(msg, needle) == NULL) printf("\n  message \"%s\" lacks \"%s\"\n", msg, needle);
  }
}

static void test_errors_arguments(void) {
  cnf_flow *f = make_flow(&base_problem);
  double *x = make_data(&base_problem);
  const size_t B = base_problem.B, P = cnf_flow_param_count(f);
  double L, *g = malloc(P * sizeof *g), gT[1];
  cnf_options o;
  cnf_options_default(&o);
  for (int v = 0; v < 2; v++) {
    o.adjoint = (cnf_adjoint)v;
    CU_ASSERT_EQUAL(cnf_flow_loss_grad(NULL, &o, B, x, &L, g, gT, NULL, NULL), CNF_EINVAL);
    expect_error(cnf_flow_loss_grad(f, NULL, B, x, &L, g, gT, NULL, NULL), CNF_EINVAL, "NULL");
    expect_error(cnf_flow_loss_grad(f, &o, B, NULL, &L, g, gT, NULL, NULL), CNF_EINVAL, "NULL");
    expect_error(cnf_flow_loss_grad(f, &o, B, x, NULL, g, gT, NULL, NULL), CNF_EINVAL, "NULL");
    expect_error(cnf_flow_loss_grad(f, &o, B, x, &L, NULL, gT, NULL, NULL), CNF_EINVAL, "NULL");
    expect_error(cnf_flow_loss_grad(f, &o, 0, x, &L, g, gT, NULL, NULL), CNF_EINVAL, "empty batch");
    cnf_options h = o;
    h.trace = CNF_TRACE_GAUSS;
    h.probes = 0;
    expect_error(cnf_flow_loss_grad(f, &h, B, x, &L, g, gT, NULL, NULL), CNF_EINVAL, "probe");
    /* non-finite data, in the last row */
    double xb[12 * 2];
    memcpy(xb, x, sizeof xb);
    xb[2 * B - 1] = NAN;
    expect_error(cnf_flow_loss_grad(f, &o, B, xb, &L, g, gT, NULL, NULL), CNF_ENONFINITE, "row 12");
    xb[2 * B - 1] = -INFINITY;
    expect_error(cnf_flow_loss_grad(f, &o, B, xb, &L, g, gT, NULL, NULL), CNF_ENONFINITE, "row 12");
    /* grad_T may be NULL: the same gradient */
    double L1, L2, *g2 = malloc(P * sizeof *g2);
    CU_ASSERT_EQUAL(cnf_flow_loss_grad(f, &o, B, x, &L1, g, gT, NULL, NULL), 0);
    CU_ASSERT_EQUAL(cnf_flow_loss_grad(f, &o, B, x, &L2, g2, NULL, NULL, NULL), 0);
    CU_ASSERT_EQUAL(L1, L2);
    CU_ASSERT_EQUAL(memcmp(g, g2, P * sizeof *g), 0);
    free(g2);
  }
  o.adjoint = (cnf_adjoint)7;
  expect_error(cnf_flow_loss_grad(f, &o, B, x, &L, g, gT, NULL, NULL), CNF_EINVAL, "adjoint");
  free(g), free(x);
  cnf_flow_free(f);
}

/* The solver gives up: max_steps = 3 stops the forward solve; a backward
 * tolerance far tighter than the forward one stops the backward solve
 * alone.  Both come back as solver errors naming CVODE's flag, and the
 * flow still works afterwards (the same gradient as before, bit for bit). */
static void test_errors_solver(void) {
  problem pb = base_problem;
  pb.blocks = 2;
  cnf_flow *f = make_flow(&pb);
  double *x = make_data(&pb);
  const size_t B = pb.B, P = cnf_flow_param_count(f);
  double L0, L, *g0 = malloc(P * sizeof *g0), *g = malloc(P * sizeof *g), gT[2];
  for (int v = 0; v < 2; v++) {
    cnf_options o;
    cnf_options_default(&o);
    o.adjoint = (cnf_adjoint)v;
    o.rtol = o.atol = 1e-4;
    cnf_stats fwd, bwd;
    cnf_stats_clear(&fwd);
    cnf_stats_clear(&bwd);
    CU_ASSERT_EQUAL_FATAL(cnf_flow_loss_grad(f, &o, B, x, &L0, g0, gT, &fwd, &bwd), 0);
    /* forward */
    cnf_options bad = o;
    bad.max_steps = 3;
    int rc = cnf_flow_loss_grad(f, &bad, B, x, &L, g, gT, NULL, NULL);
    printf("\n  %s, max_steps 3: %s: %s", cnf_adjoint_name((cnf_adjoint)v), cnf_errname(rc),
           cnf_ctx_errmsg(ctx));
    CU_ASSERT_TRUE(cnf_is_solver_error(rc));
    expect_error(rc, CNF_ETOOMUCHWORK, "CV_TOO_MUCH_WORK");
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "block 1"));
    /* backward: enough steps for each forward solve, far too few for a
     * backward solve at 1e-12 */
    bad = o;
    bad.max_steps = fwd.nsteps; /* both blocks' steps: more than either */
    bad.rtol_adj = bad.atol_adj = 1e-12;
    rc = cnf_flow_loss_grad(f, &bad, B, x, &L, g, gT, NULL, NULL);
    printf("\n  %s, backward at 1e-12 within %ld steps: %s: %s", cnf_adjoint_name((cnf_adjoint)v),
           bad.max_steps, cnf_errname(rc), cnf_ctx_errmsg(ctx));
    CU_ASSERT_TRUE(cnf_is_solver_error(rc));
    expect_error(rc, CNF_ETOOMUCHWORK, "CV_TOO_MUCH_WORK");
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "backward"));
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "block 2"));
    /* and afterwards the same answer as before */
    CU_ASSERT_EQUAL(cnf_flow_loss_grad(f, &o, B, x, &L, g, gT, NULL, NULL), 0);
    CU_ASSERT_EQUAL(L, L0);
    CU_ASSERT_EQUAL(memcmp(g, g0, P * sizeof *g), 0);
  }
  free(g0), free(g), free(x);
  cnf_flow_free(f);
}

/* ---- context --------------------------------------------------------------- */

static void test_cleanup(void) {
  cnf_ctx_free(ctx);
  ctx = NULL;
}

static const test_entry adjoint_tests[] = {
    {"exact trace: backsolve and checkpoint vs differences", test_exact},
    {"Gaussian Hutchinson", test_gauss},
    {"Rademacher Hutchinson", test_rademacher},
    {"two blocks", test_two_blocks},
    {"two blocks, Hutchinson", test_two_blocks_hutch},
    {"RNODE regularisers, exact trace", test_rnode_exact},
    {"RNODE regularisers, Gaussian, two blocks", test_rnode_gauss},
    {"RNODE kinetic term alone", test_rnode_kinetic_only},
    {"concat", test_concat},
    {"ignore", test_ignore},
    {"softplus", test_softplus},
    {"BDF", test_bdf},
    {"standardized", test_standardized},
    {"standardized: loss and gradient of the flow at x_std", test_standardized_identity},
    {"seminorm on and off", test_seminorm},
    {"errors: arguments and non-finite data", test_errors_arguments},
    {"errors: the solver gives up, forward and backward", test_errors_solver},
    {"(free the context)", test_cleanup},
    {NULL, NULL},
};

int main(void) {
  const char *const names[] = {"adjoint"};
  const test_entry *const tests[] = {adjoint_tests};
  return run_suites(names, tests, 1);
}
