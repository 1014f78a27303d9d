/* options.c: solver options, their names, and statistics counters. */
#include <string.h>

#include "core.h"

void cnf_options_default(cnf_options *opt) {
  memset(opt, 0, sizeof *opt);
  opt->size = sizeof *opt;
  opt->rtol = 1e-5;
  opt->atol = 1e-5;
  opt->atol_logp = 0.0;
  opt->max_steps = 20000;
  opt->max_order = 0;
  opt->h_init = 0.0;
  opt->max_nonlin_iters = 3;
  opt->method = CNF_METHOD_ADAMS;
  opt->trace = CNF_TRACE_EXACT;
  opt->probes = 1;
  opt->batch = 0;
  opt->adjoint = CNF_ADJOINT_CHECKPOINT;
  opt->rtol_adj = 0.0;
  opt->atol_adj = 0.0;
  opt->seminorm = 1;
  opt->checkpoint_steps = 100;
  opt->precision = CNF_PRECISION_DOUBLE;
}

int cnf__options_read(cnf_ctx *ctx, const cnf_options *in, cnf_options *out) {
  cnf_options_default(out);
  if (in == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "options: NULL pointer");
  if (in->size == 0)
    return CNF_ERROR(ctx, CNF_EINVAL,
                     "options: size is 0, so the struct was not initialised: call "
                     "cnf_options_default on it first, then set fields");
  if (in->size < sizeof in->size)
    return CNF_ERROR(ctx, CNF_EINVAL, "options: size %zu is too small for any cnf_options",
                     in->size);
  memcpy(out, in, in->size < sizeof *out ? in->size : sizeof *out);
  out->size = sizeof *out;
  return 0;
}

static const char *const trace_names[] = {"exact", "gauss", "rademacher"};
static const char *const method_names[] = {"adams", "bdf"};
static const char *const adjoint_names[] = {"backsolve", "checkpoint"};
static const char *const precision_names[] = {"double", "single"};
static const char *const layer_names[] = {"concatsquash", "concat", "ignore"};
static const char *const act_names[] = {"tanh", "softplus"};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *name_of(const char *const *names, size_t n, unsigned i) {
  return i < n ? names[i] : "?";
}

static int parse_name(const char *const *names, size_t n, const char *s,
                      int *out) {
  if (s == NULL) return CNF_EINVAL;
  for (size_t i = 0; i < n; i++)
    if (strcmp(s, names[i]) == 0) {
      *out = (int)i;
      return 0;
    }
  return CNF_EINVAL;
}

const char *cnf_trace_name(cnf_trace t) {
  return name_of(trace_names, N_OF(trace_names), (unsigned)t);
}
const char *cnf_method_name(cnf_method m) {
  return name_of(method_names, N_OF(method_names), (unsigned)m);
}
const char *cnf_adjoint_name(cnf_adjoint a) {
  return name_of(adjoint_names, N_OF(adjoint_names), (unsigned)a);
}
const char *cnf_precision_name(cnf_precision p) {
  return name_of(precision_names, N_OF(precision_names), (unsigned)p);
}
const char *cnf_layer_name(cnf_layer l) {
  return name_of(layer_names, N_OF(layer_names), (unsigned)l);
}
const char *cnf_act_name(cnf_act a) {
  return name_of(act_names, N_OF(act_names), (unsigned)a);
}

int cnf_trace_parse(const char *s, cnf_trace *out) {
  int i = 0, rc = parse_name(trace_names, N_OF(trace_names), s, &i);
  if (rc == 0) *out = (cnf_trace)i;
  return rc;
}
int cnf_method_parse(const char *s, cnf_method *out) {
  int i = 0, rc = parse_name(method_names, N_OF(method_names), s, &i);
  if (rc == 0) *out = (cnf_method)i;
  return rc;
}
int cnf_adjoint_parse(const char *s, cnf_adjoint *out) {
  int i = 0, rc = parse_name(adjoint_names, N_OF(adjoint_names), s, &i);
  if (rc == 0) *out = (cnf_adjoint)i;
  return rc;
}
int cnf_precision_parse(const char *s, cnf_precision *out) {
  int i = 0, rc = parse_name(precision_names, N_OF(precision_names), s, &i);
  if (rc == 0) *out = (cnf_precision)i;
  return rc;
}
int cnf_layer_parse(const char *s, cnf_layer *out) {
  int i = 0, rc = parse_name(layer_names, N_OF(layer_names), s, &i);
  if (rc == 0) *out = (cnf_layer)i;
  return rc;
}
int cnf_act_parse(const char *s, cnf_act *out) {
  int i = 0, rc = parse_name(act_names, N_OF(act_names), s, &i);
  if (rc == 0) *out = (cnf_act)i;
  return rc;
}

void cnf_stats_clear(cnf_stats *st) { memset(st, 0, sizeof *st); }

void cnf_stats_add(cnf_stats *sum, const cnf_stats *st) {
  sum->solves += st->solves;
  sum->nfe += st->nfe;
  sum->nsteps += st->nsteps;
  sum->netf += st->netf;
  sum->nni += st->nni;
  sum->nncf += st->nncf;
  sum->njtv += st->njtv;
  sum->nli += st->nli;
  sum->nquad += st->nquad;
  sum->last_h = st->last_h;
  sum->trace_var_sum += st->trace_var_sum;
  sum->trace_var_n += st->trace_var_n;
}
