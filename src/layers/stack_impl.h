/* stack_impl.h: the body of a stack of discrete layers (cnf_layers.h). */
#ifndef CNF_STACK_IMPL_H
#define CNF_STACK_IMPL_H

#include "layers_impl.h"

struct cnf_stack {
  cnf_ctx *ctx;
  char name[32];
  size_t D, L, P;
  cnf_tf **tf;           /* (L) */
  size_t *off;           /* (L + 1) offsets of each layer's parameters */
  double *theta;         /* (P) */
  double *shift, *scale; /* (D) each, or NULL: standardization */
  gsl_rng *rng;          /* base samples */
  /* Adam (cnf_stack_train_step): moments, gradient, update count */
  double *m, *v, *grad; /* (P) each; m, v NULL until the first step */
  long updates;
  long iter;            /* training steps taken (cnf_fit), failed ones included */
  uint64_t seed;        /* the training run's seed */
  /* workspaces of CNF_TF_CHUNK rows */
  double *h;       /* (L + 1, CHUNK, D) activations between layers */
  double *ld, *c;  /* (CHUNK) */
  double *ga, *gb; /* (CHUNK, D) */
};

/* A stack with allocated, uninitialised parameters (load and create). */
int cnf__stack_alloc(cnf_stack **out, cnf_ctx *ctx, const char *name, size_t D, size_t L,
                     const cnf_tf_config *cfgs);
/* Allocate Adam's moments (zero); 0 or CNF_ENOMEM. */
int cnf__stack_train_state(cnf_stack *s);

#endif /* CNF_STACK_IMPL_H */
