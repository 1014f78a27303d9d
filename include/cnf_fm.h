/* cnf_fm.h: simulation-free training of a velocity field by flow matching
 * (Lipman et al. 2023) and by minibatch optimal-transport flow matching
 * (OT-CFM, Tong et al. 2023), and the exact linear assignment solver that
 * pairs an OT minibatch.
 *
 * Time convention (the same as the rest of cnf, docs/design.md): data x at
 * t = 0, the latent z ~ N(0, I) at t = T.  A field trained here is an
 * ordinary field of cnf_dynamics.h: its log-densities come from
 * cnf_dyn_solve with the exact or Hutchinson trace, log p(x) =
 * log N(z(T); 0, I) - Delta(T).
 *
 * The path, for s in [0, 1] and tau = s T:
 *     x_tau = (1 - s) x + s z + sigma e,   e ~ N(0, I)   (sigma >= 0),
 *     u     = (z - x) / T                  (d x_tau / d tau),
 * and the loss over a minibatch of B rows
 *     L(theta) = (1/B) sum_b |f(tau_b, x_tau_b; theta) - u_b|^2,
 * the squared Euclidean norm summed over the D coordinates, not divided
 * by D (see src/fm/fm.c for the reasons and the math).
 *
 * Shapes: B batch rows, D data dimension, P parameters of the field.
 * Every function returns 0 or a negative CNF_E* code with the message in
 * the context (when one is given). */
#ifndef CNF_FM_H
#define CNF_FM_H

#include <stddef.h>
#include <stdint.h>

#include "cnf.h"
#include "cnf_dynamics.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- exact linear assignment ------------------------------------------ */

/* Minimise sum_i cost[i, col_of_row[i]] over the permutations of n
 * columns, exactly (shortest augmenting paths with dual potentials in
 * the form of Jonker and Volgenant 1987: O(n^3) at worst).
 *   cost       (n, n) row-major, finite (else CNF_ENONFINITE).
 *   col_of_row (n)    receives the optimal permutation.
 *   u, v       (n)    receive dual potentials (either may be NULL) with
 *                     u_i + v_j <= cost_ij for all i, j and equality on
 *                     the assignment (to rounding), so sum u + sum v is a
 *                     certificate of the total's optimality.
 *   total             receives sum_i cost[i, col_of_row[i]] (may be NULL).
 * The workspace (5 n numbers) is allocated for the call.  n = 0 is
 * a valid empty problem.  ctx may be NULL (then errors carry no message). */
int cnf_assign_solve(cnf_ctx *ctx, size_t n, const double *cost, size_t *col_of_row, double *u,
                     double *v, double *total);

/* The squared Euclidean cost between two batches:
 * cost (B, B), cost[i, j] = |x_i - z_j|^2, x and z (B, D). */
int cnf_assign_sqeuclid_cost(size_t B, size_t D, const double *x, const double *z, double *cost);

/* ---- flow matching ------------------------------------------------------ */

/* How noise rows are paired with data rows. */
typedef enum cnf_fm_coupling {
  CNF_FM_INDEPENDENT = 0, /* z_b independent of x_b (conditional FM) */
  CNF_FM_OT = 1           /* the rows of z reordered by the exact optimal
                             assignment to x under |x_i - z_j|^2 (OT-CFM) */
} cnf_fm_coupling;

/* Reorder the rows of z (B, D) in place so that the pairing (x_b, z_b)
 * minimises sum_b |x_b - z_b|^2 over all permutations: with uniform weights
 * on B points each, this permutation is the exact minibatch optimal
 * transport plan.  perm (B) may be NULL; when given, new row b of z is old
 * row perm[b].  total (may be NULL) receives the minimal cost.  Allocates
 * the (B, B) cost matrix for the call. */
int cnf_fm_pair_ot(cnf_ctx *ctx, size_t B, size_t D, const double *x, double *z, size_t *perm,
                   double *total);

/* Draw one flow-matching minibatch from `seed` (one mt19937 stream, in
 * this order): the noise z (B, D) ~ N(0, I), the path positions s (B) ~
 * U[0, 1), and, when e is not NULL, the Gaussian path's noise e (B, D) ~
 * N(0, I).  The same seed gives the same batch, and whether e is drawn does
 * not change z and s.  With CNF_FM_OT the rows of z are then paired with
 * the data x (B, D) by cnf_fm_pair_ot (x is unused, may be NULL, with
 * CNF_FM_INDEPENDENT). */
int cnf_fm_batch(cnf_ctx *ctx, cnf_fm_coupling coupling, uint64_t seed, size_t B, size_t D,
                 const double *x, double *z, double *s, double *e);

/* The path point of one row: xt (D) = (1 - s) x + s z + sigma e (e may be
 * NULL when sigma is 0), and the target velocity u (D) = (z - x) / T (may
 * be NULL).  The loss below uses exactly these expressions. */
void cnf_fm_path(size_t D, double T, double sigma, double s, const double *x, const double *z,
                 const double *e, double *xt, double *u);

/* The regression of a field on target velocities, the step shared by flow
 * matching and the PDE learner (cnf_pde_learn):
 *   loss  receives L = (1/B) sum_b |f(tau_b, x_b) - u_b|^2, tau (B) the
 *         rows' times, x, u (B, D) points and target velocities;
 *   grad  (P) receives dL/dtheta (overwritten; may be NULL for the loss
 *         alone), by the field's per-row reverse sweep with the output
 *         seeds 2 (f_b - u_b) / B (cnf_dyn_vjp_rows: the field's vjp_rows
 *         op, or the fallback on f and vjp).
 * One forward and one reverse pass of the field; work arrays allocated for
 * the call.  A non-finite loss is CNF_ENONFINITE. */
int cnf_fm_regress(cnf_dyn *dyn, const double *theta, size_t B, const double *tau,
                   const double *x, const double *u, double *loss, double *grad);

/* The flow-matching loss of the field dyn at theta (P) over B rows:
 * x, z (B, D) data and paired noise, s (B) path positions in [0, 1],
 * e (B, D) the Gaussian path's noise (may be NULL only when sigma is 0),
 * T > 0 the end time, sigma >= 0.
 *   loss  receives L = (1/B) sum_b |f(s_b T, x_tau_b) - u_b|^2.
 *   grad  (P) receives dL/dtheta (overwritten; may be NULL for the loss
 *         alone), by the field's per-row reverse sweep with the output
 *         seeds 2 (f_b - u_b) / B (cnf_dyn_vjp_rows: the field's vjp_rows
 *         op, or the fallback on f and vjp).
 * One forward and one reverse pass of the field (the MLP's own ops); the
 * (B, D) work arrays are allocated for the call. */
int cnf_fm_loss_grad(cnf_dyn *dyn, const double *theta, double T, double sigma, size_t B,
                     const double *x, const double *z, const double *s, const double *e,
                     double *loss, double *grad);

#ifdef __cplusplus
}
#endif
#endif /* CNF_FM_H */
