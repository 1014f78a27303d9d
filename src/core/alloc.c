/* alloc.c: the allocator hook.  A counter lets tests fail the k-th
 * allocation and check that every _create cleans up (SQLite-style OOM
 * testing).  The counter and the failure threshold are the library's only
 * globals.  Every allocation of every context, on every thread, passes
 * through should_fail, so both are C11 atomics: two contexts used from two
 * threads at once must not race on them (a plain `n_allocs++` is a data
 * race, which ThreadSanitizer reports).  Relaxed ordering suffices: the
 * counter orders nothing else, and the failing-allocator tests that set
 * the threshold run on one thread. */
#include <stdatomic.h>
#include <stdlib.h>

#include "core.h"

static atomic_long fail_after = -1; /* -1: never fail */
static atomic_long n_allocs = 0;

static int should_fail(void) {
  long k = atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
  long f = atomic_load_explicit(&fail_after, memory_order_relaxed);
  return f >= 0 && k >= f;
}

void *cnf__malloc(size_t n) {
  if (should_fail()) return NULL;
  return malloc(n ? n : 1);
}

void *cnf__calloc(size_t n, size_t size) {
  if (should_fail()) return NULL;
  return calloc(n ? n : 1, size ? size : 1);
}

void cnf__free(void *p) { free(p); }

long cnf__alloc_fail_after(long k) {
  long made = atomic_exchange_explicit(&n_allocs, 0, memory_order_relaxed);
  atomic_store_explicit(&fail_after, k, memory_order_relaxed);
  return made;
}

double *cnf__dalloc(cnf_ctx *ctx, size_t n) {
  double *p = cnf__calloc(n, sizeof(double));
  if (p == NULL)
    CNF_ERROR(ctx, CNF_ENOMEM, "out of memory allocating %zu doubles", n);
  return p;
}
