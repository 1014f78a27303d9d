/* act.h: vector kernels for the MLP's activations (internal). */
#ifndef CNF_ACT_H
#define CNF_ACT_H

#include <stddef.h>

/* x[i] = tanh(y[i]) for i < n; y and x must not overlap.  With AVX2 and
 * FMA: an inline kernel, 2.7e-16 relative error at most against tanhl,
 * every n (a tail shorter than 4 goes through the same kernel, so a value's
 * result does not depend on its position).  Otherwise: the libm tanh
 * (libmvec's vector tanh where available).  Signed zeros, +-inf -> +-1 and
 * NaN -> NaN as tanh does. */
void cnf__tanh(size_t n, const double *y, double *x);

/* The same in single precision: x[i] = tanhf(y[i]), at most 2 ulps from
 * the correctly rounded result with AVX2 and FMA (eight lanes at a time),
 * libm's tanhf otherwise.  Signed zeros, infinities and NaN as tanhf. */
void cnf__tanhf(size_t n, const float *y, float *x);

/* 1 if cnf__tanh is the AVX2/FMA kernel, else 0. */
int cnf__tanh_is_simd(void);

#endif /* CNF_ACT_H */
