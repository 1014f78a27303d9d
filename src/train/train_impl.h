/* train_impl.h: the training step in parts, for the loop of fit.c, which
 * reduces the gradient over workers between them. */
#ifndef CNF_TRAIN_IMPL_H
#define CNF_TRAIN_IMPL_H

#include "flow_impl.h"

/* Step i's loss and gradient (the step is counted, probes from ("probes",
 * i) of the run's seed) into the trainer's buffer; rep's loss parts and
 * statistics filled. */
int cnf__train_grad(cnf_train *tr, const cnf_options *opt, size_t B, const double *x,
                    cnf_train_report *rep);
/* The gradient buffer: dL/dtheta (blocks * P), then dL/dT_k (blocks); n
 * receives its length. */
double *cnf__train_grad_buf(cnf_train *tr, size_t *n);
/* rep->grad_norm from the buffer; CNF_ENONFINITE (message in the context)
 * for a non-finite loss or gradient. */
int cnf__train_check(cnf_train *tr, cnf_train_report *rep);
/* Adam on theta and, with learn_T, on sqrt(T_k). */
void cnf__train_apply(cnf_train *tr);

#endif /* CNF_TRAIN_IMPL_H */
