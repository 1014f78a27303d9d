/* core.h: internals shared by every layer: the context body, error
 * raising, the allocator hook.  Depends on nothing but libc. */
#ifndef CNF_CORE_H
#define CNF_CORE_H

#include <stddef.h>

#include "cnf.h"

#define CNF_ERRMSG_LEN 1024
#define CNF_MAX_FIELD_CLASSES 64

struct cnf_ctx {
  void *sunctx;                 /* SUNContext, created by the ode layer */
  void (*sunctx_free)(void *);  /* its destructor */
  int errcode;
  char errmsg[CNF_ERRMSG_LEN];
  const char *errfile;  /* source location that raised the error */
  int errline;
  /* field classes registered with cnf_ctx_register_field (cnf_dynamics.h),
   * looked up by name when a model file names one; borrowed pointers */
  const void *fields[CNF_MAX_FIELD_CLASSES];
  size_t n_fields;
  /* the workers of a distributed computation (cnf_ctx_set_comm) */
  cnf_comm comm;
  cnf_comm_vector_fn vector;    /* its vector factory, or NULL */
  int has_comm;
  int dist_on;  /* > 0 while a flow call runs its solves distributed */
};

/* ---- distributed solves (dist.c; cnf.h's cnf_comm) ---------------------- */

/* 1 if ctx has workers (R > 1) with a vector factory: the flow calls are
 * collective. */
int cnf__dist_enabled(const cnf_ctx *ctx);
/* 1 while the solves the ode and adjoint layers make are to be one
 * distributed system (cnf__dist_enabled and inside a flow call that turned
 * it on). */
int cnf__dist_on(const cnf_ctx *ctx);
/* Rows [lo, hi) of n for worker r of R: [r n / R, (r + 1) n / R). */
void cnf__dist_range(size_t n, size_t r, size_t R, size_t *lo, size_t *hi);
/* buf (n) summed over the workers; CNF_EIO (message in ctx) on failure. */
int cnf__dist_sum(cnf_ctx *ctx, double *buf, size_t n);
/* The status every worker agrees on, given this worker's rc: fatal (< 0)
 * if any worker's is, else recoverable (> 0) if any worker's is, else 0.
 * Returns rc itself when it is of the agreed class, else -1 or 1 (a
 * failed reduction counts as fatal).  One sum_all of 2 doubles.  For the
 * callbacks of a distributed solve: every worker must tell CVODE the
 * same, or their solvers part ways. */
int cnf__dist_status(cnf_ctx *ctx, int rc);
/* The global batch size and this worker's first global row, from every
 * worker's local row count n. */
int cnf__dist_rows(cnf_ctx *ctx, size_t n, size_t *B, size_t *lo);

/* Record an error in ctx (if not NULL) and return code.  The message is
 * printf-formatted.  Every error in the library passes through here, so
 * one breakpoint on cnf__error catches them all. */
int cnf__error(cnf_ctx *ctx, int code, const char *file, int line,
               const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

#define CNF_ERROR(ctx, code, ...) \
  cnf__error((ctx), (code), __FILE__, __LINE__, __VA_ARGS__)

/* The policy for results (docs/cli.md, "Non-finite results"): a density,
 * latent or sample that is NaN or infinite is an error, never a value.
 * Returns 0 if the rows x (rows, cols) are all finite; otherwise raises
 * CNF_ENONFINITE in ctx with "<who>: <what> is not finite (NaN or
 * infinite) at rows r1, r2, ... (K of N)", naming the first five
 * offending rows (1-based) and how many there are, and returns it.  x may
 * be NULL (nothing to check). */
int cnf__check_finite(cnf_ctx *ctx, const char *who, const char *what, const double *x, size_t rows,
                      size_t cols);

/* Evaluate expr (an int status); on failure jump to the enclosing
 * function's `cleanup:` label with `rc` set. */
#define CNF_TRY(expr)        \
  do {                       \
    rc = (expr);             \
    if (rc != 0) goto cleanup; \
  } while (0)

/* The allocator hook: all library allocation goes through these, so a
 * test can make the k-th allocation fail (cnf__alloc_fail_after). */
void *cnf__malloc(size_t n);
void *cnf__calloc(size_t n, size_t size);
void cnf__free(void *p);
/* Make the allocation numbered k (0-based, counted from this call) fail,
 * and every later one; k < 0 switches failures off.  Returns the number of
 * allocations made since the previous call. */
long cnf__alloc_fail_after(long k);

/* Read the caller's options into out: the defaults, overwritten by the
 * first in->size bytes of *in (so a struct from an older, smaller
 * cnf_options gets defaults for the fields it lacks, and a newer, larger
 * one has its unknown tail ignored); out->size becomes sizeof *out.  in
 * NULL or in->size 0 (not initialised by cnf_options_default) is
 * CNF_EINVAL with a message in ctx.  Every public function that takes a
 * cnf_options reads it through here and then uses only the copy. */
int cnf__options_read(cnf_ctx *ctx, const cnf_options *in, cnf_options *out);

/* Allocate n doubles, or NULL (raising CNF_ENOMEM in ctx) on failure. */
double *cnf__dalloc(cnf_ctx *ctx, size_t n);

/* A 64-bit seed folded into the 32 bits GSL's mt19937 uses (splitmix64
 * finaliser), so nearby seeds give unrelated streams. */
unsigned long cnf__seed32(unsigned long long seed);

#endif /* CNF_CORE_H */
