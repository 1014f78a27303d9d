/* pde_impl.h: internals shared by the PDE problems' sources (pde.c, dw.c). */
#ifndef CNF_PDE_IMPL_H
#define CNF_PDE_IMPL_H

#include <stdint.h>

#include <gsl/gsl_rng.h>

/* A GSL mt19937 seeded from a 64-bit seed (cnf__seed32), or NULL. */
gsl_rng *cnf__pde_rng(uint64_t seed);

#endif /* CNF_PDE_IMPL_H */
