/* assign.c: the exact linear assignment problem
 *
 *     min over permutations c of  sum_i cost[i, c(i)]         (n x n, dense)
 *
 * by shortest augmenting paths with dual potentials (the Hungarian method
 * in the form of Jonker and Volgenant 1987; Kuhn 1955, Munkres 1957).
 * Debian ships no C library for it, hence this file.
 *
 * The dual.  The LP relaxation's dual is  max sum_i u_i + sum_j v_j
 * subject to u_i + v_j <= c_ij.  The method keeps the reduced costs
 * c_ij - u_i - v_j >= 0 for every pair and = 0 on every matched pair.
 * Rows are added one at a time: from the new row, a Dijkstra search over
 * the reduced costs (minv_j: the shortest distance to column j found so far;
 * way_j: the column before j on that path) grows a tree of columns until it
 * reaches a free column; the potentials of the tree move by each step's
 * distance delta, which keeps every reduced cost >= 0 and makes the
 * tree's edges tight; then the matching flips along the path.  After n
 * rows the matching is perfect and complementary slackness holds, so it is
 * optimal, and sum u + sum v equals its total: the potentials are a
 * certificate anyone can check in O(n^2).  Each row costs O(n * columns in
 * its tree), O(n^3) at worst, much less on random costs.
 *
 * Floating point: the potentials are sums of differences of costs, so a
 * certificate holds to a few ulps of the costs' size times the number of
 * updates; the tests bound it.  Ties are harmless (any minimiser does).
 *
 * Index 0 of the columns is a virtual column that holds the row being
 * inserted (p[0] = i), as in the classic formulation; rows and columns are
 * 1-based inside the solver. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cnf_fm.h"
#include "core.h"

int cnf_assign_solve(cnf_ctx *ctx, size_t n, const double *cost, size_t *col_of_row, double *u,
                     double *v, double *total) {
  if (n > 0 && (cost == NULL || col_of_row == NULL))
    return CNF_ERROR(ctx, CNF_EINVAL, "assign: cost and col_of_row must not be NULL");
  if (n > SIZE_MAX / sizeof(double) / n)
    return CNF_ERROR(ctx, CNF_EINVAL, "assign: n = %zu is too large", n);
  for (size_t k = 0; k < n * n; k++)
    if (!isfinite(cost[k]))
      return CNF_ERROR(ctx, CNF_ENONFINITE, "assign: cost[%zu, %zu] = %g is not finite", k / n,
                       k % n, cost[k]);
  if (n == 0) {
    if (total != NULL) *total = 0.0;
    return 0;
  }
  /* potentials U (rows), V (columns), minv; p: the row matched to a column
   * (0 = free), way: the previous column on the shortest path */
  double *mem = cnf__malloc(3 * (n + 1) * sizeof(double));
  size_t *idx = cnf__malloc(2 * (n + 1) * sizeof(size_t));
  unsigned char *used = cnf__malloc(n + 1);
  if (mem == NULL || idx == NULL || used == NULL) {
    cnf__free(mem);
    cnf__free(idx);
    cnf__free(used);
    return CNF_ERROR(ctx, CNF_ENOMEM, "assign: out of memory for n = %zu", n);
  }
  double *U = mem, *V = mem + (n + 1), *minv = mem + 2 * (n + 1);
  size_t *p = idx, *way = idx + (n + 1);
  int rc = 0;
  for (size_t j = 0; j <= n; j++) U[j] = V[j] = 0.0, p[j] = way[j] = 0;

  for (size_t i = 1; i <= n; i++) {
    p[0] = i;
    size_t j0 = 0;
    for (size_t j = 0; j <= n; j++) minv[j] = INFINITY, used[j] = 0;
    do { /* grow the shortest-path tree from row i to a free column */
      used[j0] = 1;
      const size_t i0 = p[j0];
      const double *row = cost + (i0 - 1) * n - 1; /* row[j], j = 1..n */
      const double ui = U[i0];
      double delta = INFINITY;
      size_t j1 = 0;
      for (size_t j = 1; j <= n; j++) {
        if (used[j]) continue;
        const double cur = row[j] - ui - V[j];
        if (cur < minv[j]) minv[j] = cur, way[j] = j0;
        if (minv[j] < delta) delta = minv[j], j1 = j;
      }
      for (size_t j = 0; j <= n; j++) {
        if (used[j]) {
          U[p[j]] += delta;
          V[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      if (j1 == 0) { /* only when differences of costs overflow */
        rc = CNF_ERROR(ctx, CNF_ENONFINITE, "assign: costs too large (reduced costs overflow)");
        goto cleanup;
      }
      j0 = j1;
    } while (p[j0] != 0);
    do { /* flip the matching along the path */
      const size_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }

  double sum = 0.0;
  for (size_t j = 1; j <= n; j++) col_of_row[p[j] - 1] = j - 1;
  for (size_t i = 0; i < n; i++) sum += cost[i * n + col_of_row[i]];
  if (u != NULL)
    for (size_t i = 0; i < n; i++) u[i] = U[i + 1];
  if (v != NULL)
    for (size_t j = 0; j < n; j++) v[j] = V[j + 1];
  if (total != NULL) *total = sum;
cleanup:
  cnf__free(mem);
  cnf__free(idx);
  cnf__free(used);
  return rc;
}

int cnf_assign_sqeuclid_cost(size_t B, size_t D, const double *x, const double *z, double *cost) {
  if (B > 0 && (x == NULL || z == NULL || cost == NULL || D == 0)) return CNF_EINVAL;
  /* differences, not |x|^2 + |z|^2 - 2 x.z: no cancellation for near
   * pairs, and B^2 D is small beside the solve's work */
  for (size_t i = 0; i < B; i++) {
    const double *xi = x + i * D;
    for (size_t j = 0; j < B; j++) {
      const double *zj = z + j * D;
      double d2 = 0.0;
      for (size_t k = 0; k < D; k++) {
        const double dk = xi[k] - zj[k];
        d2 += dk * dk;
      }
      cost[i * B + j] = d2;
    }
  }
  return 0;
}
