/* pde_tests.h: what the PDE suites share: the helpers defined in
 * test_pde.c and the suites of test_pde_learn.c, run by test_pde's main. */
#ifndef CNF_PDE_TESTS_H
#define CNF_PDE_TESTS_H

#include "cnf.h"
#include "test_util.h"

/* A fresh context (fatal assertion on failure). */
cnf_ctx *new_ctx(void);
/* Default options with Adams, rtol = atol = tol and 1e5 steps. */
cnf_options options(double tol);

/* test_pde_learn.c: the problem object, the report over time, the learner. */
extern const test_entry pde_problem_tests[], pde_report_tests[], pde_learn_tests[];

#endif /* CNF_PDE_TESTS_H */
