/* alloc.c: the allocator hook.  A counter lets tests fail the k-th
 * allocation and check that every _create cleans up (SQLite-style OOM
 * testing).  The counter is the library's one global; it is only touched
 * by tests. */
#include <stdlib.h>

#include "core.h"

static long fail_after = -1; /* -1: never fail */
static long n_allocs = 0;

static int should_fail(void) {
  long k = n_allocs++;
  return fail_after >= 0 && k >= fail_after;
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
  long made = n_allocs;
  n_allocs = 0;
  fail_after = k;
  return made;
}

double *cnf__dalloc(cnf_ctx *ctx, size_t n) {
  double *p = cnf__calloc(n, sizeof(double));
  if (p == NULL)
    CNF_ERROR(ctx, CNF_ENOMEM, "out of memory allocating %zu doubles", n);
  return p;
}
