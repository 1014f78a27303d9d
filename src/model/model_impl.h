/* model_impl.h: the body of cnf_model, shared by src/model and the
 * training loop (src/train/fit.c). */
#ifndef CNF_MODEL_IMPL_H
#define CNF_MODEL_IMPL_H

#include "cnf_model.h"
#include "flow_impl.h"
#include "stack_impl.h"

struct cnf_model {
  cnf_ctx *ctx;
  cnf_flow *flow;   /* exactly one of flow and stack is set */
  cnf_stack *stack;
  char name[48];    /* "cnf", a stack's name, "field:NAME" */
  double *buf;      /* scratch (cap doubles), grown outside the solver */
  size_t cap;
};

/* Return a non-zero status at once (functions without a cleanup label). */
#define RET_IF(expr)          \
  do {                        \
    int rc_ = (expr);         \
    if (rc_ != 0) return rc_; \
  } while (0)

#endif /* CNF_MODEL_IMPL_H */
