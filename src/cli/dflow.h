/* dflow.h: the discrete flows (cnf_layers.h) in the `cnf` tool: --flow
 * dispatch for init and train, the stack versions of logp, sample, eval and
 * plot (chosen by the model file's kind), and `cnf compare`. */
#ifndef CNF_CLI_DFLOW_H
#define CNF_CLI_DFLOW_H

#include <stddef.h>
#include <stdint.h>

/* Take "--flow NAME" (or "--flow=NAME") out of argv (argc shrinks); *flow
 * is NULL when absent.  Returns -1 to go on, or an exit status (a missing
 * value or an unknown flow). */
int cnf__cli_take_flow(const char *cmd, int *argc, char **argv, const char **flow);
/* 1 when the --model of argv names a file that holds a stack. */
int cnf__cli_model_is_stack(int argc, char **argv);

/* init and train: take --flow out of argv; a discrete flow runs here and
 * its exit status is returned, else -1 (the CNF path goes on). */
int cnf__cli_flow_dispatch(const char *cmd, int *argc, char **argv, size_t threads);
int cnf__cli_dflow_init(const char *flow, int argc, char **argv, size_t threads);
int cnf__cli_dflow_train(const char *flow, int argc, char **argv, size_t threads);
/* logp, sample, eval, plot of a stack model (cmd names which). */
int cnf__cli_dflow_run(const char *cmd, int argc, char **argv, size_t threads);
int cnf__cli_compare(int argc, char **argv, size_t threads);

/* The blocks of a preset when --blocks is not given. */
size_t cnf__cli_default_blocks(const char *flow);
/* Shared by train and compare: data from a toy name (n samples of seed)
 * or a CSV file; *x (malloc, (N, D)).  Returns an exit status. */
int cnf__cli_load_data(const char *cmd, const char *spec, size_t n, uint64_t seed, double **x,
                       size_t *N, size_t *D, int *toy);
/* Parse "64-64" into widths (at most 16, each 1..100000); 0 or -1. */
int cnf__cli_parse_widths(const char *s, size_t *n, size_t *w);

#endif /* CNF_CLI_DFLOW_H */
