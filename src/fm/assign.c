/* assign.c: the exact linear assignment problem
 *
 *     min over permutations c of  sum_i cost[i, c(i)]         (n x n, dense)
 *
 * by shortest augmenting paths with dual potentials, in the form of
 * Jonker and Volgenant (1987, "A shortest augmenting path algorithm for
 * dense and sparse linear assignment problems"), the Hungarian method's
 * modern descendant.  Debian ships no C library for it, hence this file.
 *
 * The dual.  The LP relaxation's dual is  max sum_i u_i + sum_j v_j
 * subject to u_i + v_j <= c_ij.  The solver keeps column prices v and,
 * for every assigned row i, the invariant that its column x_i minimises
 * c_ij - v_j over j (so u_i = c_{i x_i} - v_{x_i} makes every reduced cost
 * c_ij - u_i - v_j >= 0, and 0 on the assignment).  When all rows are
 * assigned, complementary slackness holds and the assignment is optimal;
 * sum u + sum v equals its total, a certificate anyone can check in
 * O(n^2).
 *
 * Phases.  (1) Column reduction: v_j = min_i c_ij, and column j goes to its
 * minimising row when that row is still free (the invariant holds since
 * every reduced cost c_ik - v_k is >= 0 = c_ij - v_j).  (2) Reduction
 * transfer: a row that minimised one column only lowers that column's
 * price by the row's smallest reduced cost over the other columns (they
 * then tie).  (3) Augmenting row
 * reduction, twice over the free rows: a free row i takes its cheapest
 * column j1 (displacing j1's row, which becomes free) and lowers v_j1 so
 * that j1 ties with its second-cheapest column j2; lowering a price only
 * raises reduced costs, so every other assigned row keeps its minimum.
 * (4) For each row f still free, Dijkstra over the reduced costs: d_j,
 * the shortest distance from f to column j, settles one column at a time
 * (the nearest unsettled one) until the nearest is a free column; the
 * prices of the settled columns move by d_j - min (min: the free
 * column's distance), which keeps the invariant for every assigned row
 * and makes the path tight; the assignment then flips along the path
 * (pred).  Each row costs O(n * settled columns), O(n^3) at worst, far
 * less on random costs.
 *
 * Floating point: prices are sums of differences of costs, so the
 * certificate holds to a few ulps of the costs' size times the number of
 * updates; the tests bound it.  Ties are harmless (any minimiser does). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cnf_fm.h"
#include "core.h"

#define NONE SIZE_MAX /* a free row or column */

/* Dijkstra from the free row f, then the price update and the flip.
 * x (n) column of each row, y (n) row of each column (NONE: free),
 * v (n) prices; d (n) distances, pen (n) 0 for a column not yet settled
 * and +inf for a settled one, pred (n) the row before each column on its
 * shortest path, col (n) the settled columns: workspace.
 *
 * Dense arrays and no branches in the relaxation, which then vectorises:
 * one pass over all n columns per settled column relaxes the distances
 * through its row and finds the next minimum at once (a settled column's
 * distance + pen is +inf, so it is neither relaxed nor chosen again). */
static int augment(size_t n, const double *cost, size_t f, size_t *x, size_t *y, double *v,
                   double *restrict d, double *restrict pen, size_t *restrict pred, size_t *col) {
  const double *cf = cost + f * n;
  double min = INFINITY;
  for (size_t j = 0; j < n; j++) {
    d[j] = cf[j] - v[j], pred[j] = f, pen[j] = 0.0;
    min = d[j] < min ? d[j] : min;
  }
  size_t settled = 0, end = NONE;
  for (;;) {
    if (!isfinite(min)) return CNF_ENONFINITE; /* only when differences overflow */
    /* the first column at the minimum distance; a free one ends the path */
    size_t j1 = 0;
    while (d[j1] + pen[j1] != min) j1++;
    if (y[j1] == NONE) {
      end = j1;
      break;
    }
    pen[j1] = INFINITY;
    col[settled++] = j1;
    const size_t i = y[j1];
    const double *restrict ci = cost + i * n;
    const double h = ci[j1] - v[j1] - min;
    double next = INFINITY;
#pragma omp simd reduction(min : next)
    for (size_t j = 0; j < n; j++) {
      const double dj = ci[j] - v[j] - h + pen[j];
      const int better = dj < d[j];
      d[j] = better ? dj : d[j];
      pred[j] = better ? i : pred[j];
      const double e = d[j] + pen[j];
      next = e < next ? e : next;
    }
    min = next;
  }
  for (size_t k = 0; k < settled; k++) v[col[k]] += d[col[k]] - min; /* d <= min */
  /* flip the assignment along the path */
  for (size_t i = NONE; i != f;) {
    i = pred[end];
    y[end] = i;
    const size_t j = end;
    end = x[i];
    x[i] = j;
  }
  return 0;
}

int cnf_assign_solve(cnf_ctx *ctx, size_t n, const double *cost, size_t *col_of_row, double *u,
                     double *v, double *total) {
  if (n > 0 && (cost == NULL || col_of_row == NULL))
    return CNF_ERROR(ctx, CNF_EINVAL, "assign: cost and col_of_row must not be NULL");
  if (n > 0 && n > SIZE_MAX / sizeof(double) / n)
    return CNF_ERROR(ctx, CNF_EINVAL, "assign: n = %zu is too large", n);
  for (size_t k = 0; k < n * n; k++)
    if (!isfinite(cost[k]))
      return CNF_ERROR(ctx, CNF_ENONFINITE, "assign: cost[%zu, %zu] = %g is not finite", k / n,
                       k % n, cost[k]);
  if (n == 0) {
    if (total != NULL) *total = 0.0;
    return 0;
  }
  double *dmem = cnf__malloc(3 * n * sizeof(double));
  size_t *imem = cnf__malloc(5 * n * sizeof(size_t));
  if (dmem == NULL || imem == NULL) {
    cnf__free(dmem);
    cnf__free(imem);
    return CNF_ERROR(ctx, CNF_ENOMEM, "assign: out of memory for n = %zu", n);
  }
  double *price = dmem, *d = dmem + n, *pen = dmem + 2 * n;
  size_t *x = col_of_row, *y = imem, *pred = imem + n, *col = imem + 2 * n;
  size_t *freel = imem + 3 * n, *matches = imem + 4 * n;
  for (size_t i = 0; i < n; i++) x[i] = y[i] = NONE, matches[i] = 0;
  /* (1) column reduction, last column first (as Jonker and Volgenant) */
  for (size_t j = n; j-- > 0;) {
    size_t imin = 0;
    double m = cost[j];
    for (size_t i = 1; i < n; i++)
      if (cost[i * n + j] < m) m = cost[i * n + j], imin = i;
    price[j] = m;
    if (matches[imin]++ == 0) x[imin] = j, y[j] = imin;
  }
  /* (2) reduction transfer: a row that is the minimum of one column only
   * lowers that column's price until its next best column ties */
  size_t nfree = 0;
  for (size_t i = 0; i < n; i++) {
    if (matches[i] == 0) {
      freel[nfree++] = i;
    } else if (matches[i] == 1 && n > 1) {
      const size_t j1 = x[i];
      double m = INFINITY;
      for (size_t j = 0; j < n; j++)
        if (j != j1 && cost[i * n + j] - price[j] < m) m = cost[i * n + j] - price[j];
      price[j1] -= m;
    }
  }
  /* (3) augmenting row reduction, two passes over the free rows */
  for (int pass = 0; pass < 2 && n > 1; pass++) {
    const size_t prv = nfree;
    size_t k = 0, steps = 0;
    nfree = 0;
    while (k < prv) {
      if (++steps > 4 * n) { /* rounding can make the chain creep: hand the rest to (4) */
        while (k < prv) freel[nfree++] = freel[k++];
        break;
      }
      const size_t i = freel[k++];
      const double *ci = cost + i * n;
      /* the smallest and second smallest reduced costs of row i */
      double umin = ci[0] - price[0], usub = INFINITY;
      size_t j1 = 0, j2 = 1;
      for (size_t j = 1; j < n; j++) {
        const double h = ci[j] - price[j];
        if (h < usub) {
          if (h >= umin) {
            usub = h, j2 = j;
          } else {
            usub = umin, umin = h, j2 = j1, j1 = j;
          }
        }
      }
      size_t i0 = y[j1];
      if (umin < usub) {
        price[j1] -= usub - umin; /* j1 stays row i's minimum, now tied with j2 */
      } else if (i0 != NONE) {
        j1 = j2, i0 = y[j2]; /* a tie: take j2, which may be free */
      }
      x[i] = j1, y[j1] = i;
      if (i0 != NONE) {
        x[i0] = NONE;
        if (umin < usub) {
          freel[--k] = i0; /* go on with i0 at once */
        } else {
          freel[nfree++] = i0;
        }
      }
    }
  }
  /* (4) shortest augmenting paths for the rows still free */
  int rc = 0;
  for (size_t k = 0; k < nfree && rc == 0; k++)
    rc = augment(n, cost, freel[k], x, y, price, d, pen, pred, col);
  if (rc != 0) {
    rc = CNF_ERROR(ctx, rc, "assign: costs too large (reduced costs overflow)");
  } else {
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) sum += cost[i * n + x[i]];
    if (u != NULL)
      for (size_t i = 0; i < n; i++) u[i] = cost[i * n + x[i]] - price[x[i]];
    if (v != NULL) memcpy(v, price, n * sizeof(double));
    if (total != NULL) *total = sum;
  }
  cnf__free(dmem);
  cnf__free(imem);
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
