/* model.c: cnf_model, one interface over flows (continuous blocks) and
 * stacks (discrete or mixed layers), with one sign convention:
 *
 *     logdet = log|det dz/dx|,   log p(x) = log N(z; 0, I) + logdet.
 *
 * A flow's encode reports delta = sum_k Delta_k(T_k) + sum log scale with
 * log p = log N(z) - delta, so its logdet is -delta; its decode reports
 * delta with log p(x) = log N(z) + delta, which is the logdet at the x
 * found.  A stack reports logdet as it is (cnf_layers.h).  Every operation
 * below is a dispatch on the kind; the numerics live in src/cnf,
 * src/adjoint and src/layers (docs/design.md, "Layering"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_impl.h"

static int wrap(cnf_model **out, cnf_ctx *ctx, cnf_flow *f, cnf_stack *s) {
  cnf_model *m = cnf__calloc(1, sizeof *m);
  if (m == NULL) {
    cnf_flow_free(f);
    cnf_stack_free(s);
    return CNF_ERROR(ctx, CNF_ENOMEM, "model: out of memory");
  }
  m->ctx = ctx;
  m->flow = f;
  m->stack = s;
  if (f != NULL) {
    if (cnf_flow_field(f) != NULL)
      snprintf(m->name, sizeof m->name, "field:%s", cnf_flow_field(f));
    else
      snprintf(m->name, sizeof m->name, "cnf");
  } else {
    snprintf(m->name, sizeof m->name, "%s", cnf_stack_name(s));
  }
  *out = m;
  return 0;
}

int cnf_model_from_flow(cnf_model **out, cnf_flow *flow) {
  if (out == NULL || flow == NULL) {
    cnf_flow_free(flow);
    return CNF_EINVAL;
  }
  return wrap(out, flow->ctx, flow, NULL);
}

int cnf_model_from_stack(cnf_model **out, cnf_stack *stack) {
  if (out == NULL || stack == NULL) {
    cnf_stack_free(stack);
    return CNF_EINVAL;
  }
  return wrap(out, stack->ctx, NULL, stack);
}

void cnf_model_free(cnf_model *m) {
  if (m == NULL) return;
  cnf_flow_free(m->flow);
  cnf_stack_free(m->stack);
  cnf__free(m->buf);
  cnf__free(m);
}

size_t cnf_model_default_blocks(const char *flow) {
  if (flow == NULL || strcmp(flow, "cnf") == 0 || strncmp(flow, "field:", 6) == 0) return 1;
  if (strcmp(flow, "planar") == 0 || strcmp(flow, "radial") == 0) return 16;
  if (strcmp(flow, "affine") == 0) return 1;
  if (strcmp(flow, "elementwise") == 0) return 2;
  return 4;
}

void cnf_model_spec_default(cnf_model_spec *spec, const char *flow, size_t D) {
  memset(spec, 0, sizeof *spec);
  spec->flow = flow ? flow : "cnf";
  spec->dim = D;
  spec->layer = CNF_LAYER_CONCATSQUASH;
  spec->act = CNF_ACT_TANH;
  spec->T = 0.5;
  spec->config = "";
}

int cnf_model_known_flow(const char *flow) {
  if (flow == NULL) return 0;
  if (strcmp(flow, "cnf") == 0) return 1;
  for (const char *const *p = cnf_stack_preset_names(); *p; p++)
    if (strcmp(*p, flow) == 0) return 1;
  return 0;
}

/* "64-64" into widths (1 to CNF_MAX_HIDDEN of 1 to 100000); 0 or -1. */
static int parse_widths(const char *s, size_t *n, size_t *w) {
  *n = 0;
  for (const char *p = s; *p;) {
    char *end = NULL;
    if (*p < '0' || *p > '9') return -1;
    unsigned long v = strtoul(p, &end, 10);
    if (v == 0 || v > 100000 || *n >= CNF_MAX_HIDDEN) return -1;
    w[(*n)++] = v;
    if (*end == '-' && end[1] != '\0')
      end++;
    else if (*end != '\0')
      return -1;
    p = end;
  }
  return *n > 0 ? 0 : -1;
}

static int too_large(cnf_ctx *ctx, size_t K, size_t P) {
  if (P > 0 && P <= CNF_MODEL_MAX_PARAMS / K) return 0;
  return CNF_ERROR(ctx, CNF_EINVAL, "model: network too large: %zu blocks of %zu parameters "
                   "(at most %zu in all)", K, P, CNF_MODEL_MAX_PARAMS);
}

int cnf_model_create(cnf_model **out, cnf_ctx *ctx, const cnf_model_spec *spec, uint64_t seed) {
  if (out == NULL || spec == NULL || ctx == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "model: NULL argument");
  *out = NULL;
  const char *flow = spec->flow ? spec->flow : "cnf";
  const size_t K = spec->blocks ? spec->blocks : cnf_model_default_blocks(flow);
  int rc = 0;
  if (strcmp(flow, "cnf") == 0) {
    cnf_mlp_config cfg;
    cnf_mlp_config_default(&cfg, spec->dim);
    if (spec->hidden != NULL && cnf_mlp_parse_hidden(&cfg, spec->hidden) != 0)
      return CNF_ERROR(ctx, CNF_EINVAL, "hidden: expected widths such as 64-64-64 (at most %d "
                       "layers of 1 to 1000000 units) or 0, found '%s'", CNF_MAX_HIDDEN,
                       spec->hidden);
    cfg.layer = spec->layer;
    cfg.act = spec->act;
    RET_IF(too_large(ctx, K, cnf_mlp_param_count(&cfg)));
    cnf_flow *f = NULL;
    rc = cnf_flow_create(&f, ctx, &cfg, K, spec->T, seed);
    return rc != 0 ? rc : cnf_model_from_flow(out, f);
  }
  if (strncmp(flow, "field:", 6) == 0) {
    cnf_flow *f = NULL;
    rc = cnf_flow_create_field(&f, ctx, flow + 6, spec->config ? spec->config : "", spec->dim, K,
                               spec->T, seed);
    return rc != 0 ? rc : cnf_model_from_flow(out, f);
  }
  if (!cnf_model_known_flow(flow))
    return CNF_ERROR(ctx, CNF_EINVAL, "model: unknown flow '%s' (cnf, field:CLASS or a preset)",
                     flow);
  size_t nh = 2, hidden[CNF_MAX_HIDDEN] = {64, 64};
  if (spec->hidden != NULL && parse_widths(spec->hidden, &nh, hidden) != 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "hidden: expected widths such as 64-64 (1 to %d layers of "
                     "1 to 100000), found '%s'", CNF_MAX_HIDDEN, spec->hidden);
  cnf_stack *s = NULL;
  rc = cnf_stack_preset(&s, ctx, flow, spec->dim, K, nh, hidden, seed);
  return rc != 0 ? rc : cnf_model_from_stack(out, s);
}

int cnf_model_save(const cnf_model *m, const char *path) {
  if (m == NULL) return CNF_EINVAL;
  return m->flow ? cnf_flow_save(m->flow, path) : cnf_stack_save(m->stack, path);
}

int cnf_model_load(cnf_model **out, cnf_ctx *ctx, const char *path) {
  if (out == NULL || path == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "load: NULL argument");
  *out = NULL;
  /* an unreadable file goes to the flow loader, whose message says why */
  if (cnf_model_file_is_stack(path) == 1) {
    cnf_stack *s = NULL;
    int rc = cnf_stack_load(&s, ctx, path);
    return rc != 0 ? rc : cnf_model_from_stack(out, s);
  }
  cnf_flow *f = NULL;
  int rc = cnf_flow_load(&f, ctx, path);
  return rc != 0 ? rc : cnf_model_from_flow(out, f);
}

cnf_model_kind cnf_model_kind_of(const cnf_model *m) {
  return m->flow ? CNF_MODEL_FLOW : CNF_MODEL_STACK;
}
const char *cnf_model_name(const cnf_model *m) { return m->name; }
cnf_ctx *cnf_model_ctx(const cnf_model *m) { return m ? m->ctx : NULL; }
size_t cnf_model_dim(const cnf_model *m) {
  return m->flow ? cnf_flow_dim(m->flow) : cnf_stack_dim(m->stack);
}
size_t cnf_model_param_count(const cnf_model *m) {
  return m->flow ? cnf_flow_param_count(m->flow) : cnf_stack_param_count(m->stack);
}
double *cnf_model_params(cnf_model *m) {
  return m->flow ? cnf_flow_params(m->flow) : cnf_stack_params(m->stack);
}
cnf_flow *cnf_model_flow(cnf_model *m) { return m ? m->flow : NULL; }
cnf_stack *cnf_model_stack(cnf_model *m) { return m ? m->stack : NULL; }

int cnf_model_set_threads(cnf_model *m, size_t n) {
  if (m == NULL) return CNF_EINVAL;
  return m->flow ? cnf_flow_set_threads(m->flow, n) : 0;
}

void cnf_model_seed(cnf_model *m, uint64_t seed) {
  if (m->flow)
    cnf_flow_seed(m->flow, seed);
  else
    cnf_stack_seed(m->stack, seed);
}

int cnf_model_set_standardization(cnf_model *m, const double *shift, const double *scale) {
  if (m == NULL) return CNF_EINVAL;
  return m->flow ? cnf_flow_set_standardization(m->flow, shift, scale)
                 : cnf_stack_set_standardization(m->stack, shift, scale);
}

int cnf_model_init_data(cnf_model *m, size_t B, const double *x) {
  if (m == NULL) return CNF_EINVAL;
  return m->stack ? cnf_stack_init_data(m->stack, B, x) : 0;
}

long cnf_model_iteration(const cnf_model *m) {
  if (m->flow) return m->flow->train ? m->flow->train->iter : 0;
  return m->stack->iter;
}

void cnf_model_clear_train_state(cnf_model *m) {
  if (m->flow)
    cnf_flow_clear_train_state(m->flow);
  else
    cnf_stack_clear_train_state(m->stack);
}

/* ---- densities -------------------------------------------------------------- */

/* The options of a call: the caller's, or the defaults. */
static const cnf_options *options(const cnf_options *opt, cnf_options *local) {
  if (opt != NULL) return opt;
  cnf_options_default(local);
  return local;
}

/* A scratch array of n doubles owned by the model (grown outside the
 * solver, never inside an op). */
static double *scratch(cnf_model *m, size_t n) {
  if (n > m->cap) {
    cnf__free(m->buf);
    m->buf = cnf__dalloc(m->ctx, n);
    m->cap = m->buf ? n : 0;
  }
  return m->buf;
}

static int check(cnf_model *m, size_t B, const void *a, const void *b) {
  if (m == NULL) return CNF_EINVAL;
  if (B == 0 || a == NULL || b == NULL)
    return CNF_ERROR(m->ctx, CNF_EINVAL, "model %s: NULL array or empty batch", m->name);
  return 0;
}

int cnf_model_encode(cnf_model *m, const cnf_options *opt, size_t B, const double *x, double *z,
                     double *logdet, cnf_stats *st) {
  int rc = check(m, B, x, z);
  if (rc != 0) return rc;
  cnf_options o;
  opt = options(opt, &o);
  if (m->stack) {
    cnf_stack_set_options(m->stack, opt);
    return cnf_stack_encode(m->stack, B, x, z, logdet);
  }
  double *d = logdet ? logdet : scratch(m, B);
  if (d == NULL) return CNF_ENOMEM;
  rc = cnf_flow_encode(m->flow, opt, B, x, z, d, st);
  if (rc == 0 && logdet != NULL)
    for (size_t b = 0; b < B; b++) logdet[b] = -logdet[b];
  return rc;
}

int cnf_model_decode(cnf_model *m, const cnf_options *opt, size_t B, const double *z, double *x,
                     double *logdet, cnf_stats *st) {
  int rc = check(m, B, z, x);
  if (rc != 0) return rc;
  cnf_options o;
  opt = options(opt, &o);
  if (m->stack) {
    cnf_stack_set_options(m->stack, opt);
    return cnf_stack_decode(m->stack, B, z, x, logdet);
  }
  double *d = logdet ? logdet : scratch(m, B);
  if (d == NULL) return CNF_ENOMEM;
  return cnf_flow_decode(m->flow, opt, B, z, x, d, st);
}

int cnf_model_logp(cnf_model *m, const cnf_options *opt, size_t B, const double *x, double *logp,
                   cnf_stats *st) {
  int rc = check(m, B, x, logp);
  if (rc != 0) return rc;
  cnf_options o;
  opt = options(opt, &o);
  if (m->stack) {
    cnf_stack_set_options(m->stack, opt);
    return cnf_stack_logp(m->stack, B, x, logp);
  }
  return cnf_flow_logp(m->flow, opt, B, x, logp, st);
}

int cnf_model_sample(cnf_model *m, const cnf_options *opt, size_t B, double *x, double *logp,
                     cnf_stats *st) {
  int rc = check(m, B, x, x);
  if (rc != 0) return rc;
  cnf_options o;
  opt = options(opt, &o);
  if (m->stack) {
    cnf_stack_set_options(m->stack, opt);
    return cnf_stack_sample(m->stack, B, x, logp);
  }
  double *lp = logp ? logp : scratch(m, B);
  if (lp == NULL) return CNF_ENOMEM;
  return cnf_flow_sample(m->flow, opt, B, x, lp, st);
}

int cnf_model_nll(cnf_model *m, const cnf_options *opt, size_t N, const double *x, double *nll,
                  cnf_stats *st) {
  int rc = check(m, N, x, nll);
  if (rc != 0) return rc;
  double *lp = cnf__dalloc(m->ctx, N);
  if (lp == NULL) return CNF_ENOMEM;
  rc = cnf_model_logp(m, opt, N, x, lp, st);
  double s = 0.0;
  for (size_t i = 0; i < N && rc == 0; i++) s -= lp[i];
  cnf__free(lp);
  *nll = rc == 0 ? s / (double)N : NAN;
  return rc;
}

cnf_trace cnf_trace_for_dim(size_t D) { return D <= 2 ? CNF_TRACE_EXACT : CNF_TRACE_GAUSS; }

void cnf_moments(size_t N, size_t D, const double *x, double *mean, double *sd) {
  for (size_t j = 0; j < D; j++) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < N; i++) s += x[i * D + j];
    const double mu = N ? s / (double)N : 0.0;
    for (size_t i = 0; i < N; i++) s2 += (x[i * D + j] - mu) * (x[i * D + j] - mu);
    mean[j] = mu;
    sd[j] = N > 1 ? sqrt(s2 / (double)(N - 1)) : 1.0;
    if (!(sd[j] > 0)) sd[j] = 1.0;
  }
}

/* ---- loss, gradient, gradient check ------------------------------------------ */

int cnf_model_loss_grad(cnf_model *m, const cnf_options *opt, size_t B, const double *x,
                        double *loss, double *grad, double *grad_T, cnf_stats *fwd,
                        cnf_stats *bwd) {
  int rc = check(m, B, x, loss);
  if (rc != 0) return rc;
  cnf_options o;
  opt = options(opt, &o);
  if (m->flow) return cnf_flow_loss_grad(m->flow, opt, B, x, loss, grad, grad_T, fwd, bwd);
  cnf_stack_set_options(m->stack, opt);
  return cnf_stack_loss_grad(m->stack, B, x, loss, grad);
}

/* The loss with the probes fixed: the same seed before every evaluation,
 * all rows in one system as the adjoint solves them. */
static int fixed_loss(cnf_model *m, const cnf_options *opt, size_t B, const double *x,
                      uint64_t seed, double *loss) {
  cnf_model_seed(m, seed);
  cnf_options o = *opt;
  o.batch = 0;
  return cnf_model_nll(m, &o, B, x, loss, NULL);
}

int cnf_model_gradcheck(cnf_model *m, const cnf_options *opt, size_t B, const double *x,
                        uint64_t seed, size_t n_check, double step, cnf_gradcheck_each each,
                        void *user, cnf_gradcheck_result *res) {
  int rc = check(m, B, x, res);
  if (rc != 0) return rc;
  if (!(step > 0) || !isfinite(step))
    return CNF_ERROR(m->ctx, CNF_EINVAL, "gradcheck: the step must be positive (got %g)", step);
  cnf_options o;
  opt = options(opt, &o);
  memset(res, 0, sizeof *res);
  const size_t P = cnf_model_param_count(m), nb = m->flow ? cnf_flow_blocks(m->flow) : 0;
  const size_t n = n_check < P ? n_check : P;
  double *grad = cnf__dalloc(m->ctx, P + nb + 1);
  size_t *pick = cnf__calloc(n ? n : 1, sizeof(size_t));
  if (grad == NULL || pick == NULL) {
    cnf__free(grad);
    cnf__free(pick);
    return CNF_ERROR(m->ctx, CNF_ENOMEM, "gradcheck: out of memory");
  }
  double *gT = grad + P;
  if (n == P)
    for (size_t i = 0; i < P; i++) pick[i] = i;
  else
    CNF_TRY(cnf_train_batch_indices(seed, 0, P, n, pick));
  cnf_stats_clear(&res->fwd);
  cnf_stats_clear(&res->bwd);
  cnf_model_seed(m, seed);
  CNF_TRY(cnf_model_loss_grad(m, opt, B, x, &res->loss, grad, nb ? gT : NULL, &res->fwd,
                              &res->bwd));
  double gmax = 0.0;
  for (size_t i = 0; i < P; i++) gmax = fmax(gmax, fabs(grad[i]));
  double *th = cnf_model_params(m);
  res->P = P;
  for (size_t j = 0; j < n; j++) {
    const size_t i = pick[j];
    const double old = th[i];
    double lp = 0, lm = 0;
    th[i] = old + step;
    rc = fixed_loss(m, opt, B, x, seed, &lp);
    th[i] = old - step;
    if (rc == 0) rc = fixed_loss(m, opt, B, x, seed, &lm);
    th[i] = old;
    if (rc != 0) goto cleanup;
    const double fd = (lp - lm) / (2 * step);
    const double e = fabs(fd - grad[i]) / fmax(fabs(grad[i]), 0.01 * gmax);
    if (each) each(user, "param", i, grad[i], fd, e);
    if (!(e <= res->worst_param)) res->worst_param = e, res->worst_index = i;
    res->checked++;
  }
  for (size_t k = 0; k < nb; k++) {
    const double T = cnf_flow_end_time(m->flow, k), h = step * T;
    double lp = 0, lm = 0;
    cnf_flow_set_end_time(m->flow, k, T + h);
    rc = fixed_loss(m, opt, B, x, seed, &lp);
    cnf_flow_set_end_time(m->flow, k, T - h);
    if (rc == 0) rc = fixed_loss(m, opt, B, x, seed, &lm);
    cnf_flow_set_end_time(m->flow, k, T);
    if (rc != 0) goto cleanup;
    const double fd = (lp - lm) / (2 * h);
    const double e = fabs(fd - gT[k]) / fmax(fabs(gT[k]), 1e-12);
    if (each) each(user, "T", k, gT[k], fd, e);
    res->worst_T = fmax(res->worst_T, e);
  }
cleanup:
  cnf__free(grad);
  cnf__free(pick);
  return rc;
}

/* ---- the flow in time ----------------------------------------------------------
 * Block k (in the order of integration) covers the elapsed time [E, E + T_k]
 * of the whole path; an output time u of the elapsed axis falls in the first
 * block whose interval holds it.  Inside block k the local time is u - E
 * forward (from 0 to T_k) and T_k - (u - E) backward (from T_k to 0).  Times
 * within 1e-12 T_k of a block's ends are taken as those ends, so no solve is
 * asked for a zero-length step; the end itself is always the last output
 * time of a solve, which therefore carries the state on to the next block. */

static int need_flow(const cnf_model *m, const char *what) {
  if (m == NULL) return CNF_EINVAL;
  if (m->flow == NULL)
    return CNF_ERROR(m->ctx, CNF_EINVAL, "%s: model %s is a discrete stack, which has no time",
                     what, m->name);
  return 0;
}

int cnf_model_total_time(const cnf_model *m, double *S) {
  RET_IF(need_flow(m, "time"));
  if (S == NULL) return CNF_ERROR(m->ctx, CNF_EINVAL, "time: NULL argument");
  double s = 0.0;
  for (size_t k = 0; k < m->flow->blocks; k++) s += m->flow->T[k];
  *S = s;
  return 0;
}

/* Probes of one solve of Bc rows (eps NULL for the exact trace). */
static int time_probes(cnf_flow *f, const cnf_options *opt, size_t Bc, double *buf,
                       const double **eps) {
  *eps = NULL;
  if (opt->trace == CNF_TRACE_EXACT) return 0;
  RET_IF(cnf__flow_draw_probes(f, opt->trace, opt->probes, Bc, buf));
  *eps = buf;
  return 0;
}

/* A failed solve of block k of K: the message names the block. */
static void block_failed(cnf_model *m, const char *who, int rc, size_t k, size_t K) {
  if (K < 2) return;
  char msg[CNF_ERRMSG_LEN];
  snprintf(msg, sizeof msg, "%s", m->ctx->errmsg);
  CNF_ERROR(m->ctx, rc, "%s: block %zu of %zu: %s", who, k + 1, K, msg);
}

/* y = shift + scale z for Bc rows (the units of x) */
static void unstandardize(const cnf_flow *f, size_t Bc, const double *z, double *y) {
  const size_t D = f->cfg.dim;
  for (size_t b = 0; b < Bc; b++)
    for (size_t i = 0; i < D; i++)
      y[b * D + i] = f->shift ? f->shift[i] + f->scale[i] * z[b * D + i] : z[b * D + i];
}

/* Check the common arguments and read the options into o. */
static int time_args(cnf_model *m, const char *what, const cnf_options *opt, cnf_options *o,
                     size_t B, const void *in, const void *out) {
  RET_IF(need_flow(m, what));
  RET_IF(check(m, B, in, out));
  cnf_options d;
  RET_IF(cnf__options_read(m->ctx, options(opt, &d), o));
  if (o->trace != CNF_TRACE_EXACT && o->probes == 0)
    return CNF_ERROR(m->ctx, CNF_EINVAL, "%s: Hutchinson needs at least one probe", what);
  for (size_t i = 0; i < B * cnf_model_dim(m); i++)
    if (!isfinite(((const double *)in)[i]))
      return CNF_ERROR(m->ctx, CNF_ENONFINITE, "%s: input row %zu has a non-finite value", what,
                       i / cnf_model_dim(m) + 1);
  return 0;
}

int cnf_model_trajectories(cnf_model *m, const cnf_options *opt, int dir, size_t B,
                           const double *in, size_t n, double *paths, cnf_stats *st) {
  cnf_options o;
  RET_IF(time_args(m, "trajectories", opt, &o, B, in, paths));
  if (n < 2 || n > 100000)
    return CNF_ERROR(m->ctx, CNF_EINVAL, "trajectories: need 2 .. 100000 times (got %zu)", n);
  cnf_flow *f = m->flow;
  const size_t D = f->cfg.dim, K = f->blocks;
  const size_t bs = o.batch > 0 && o.batch < B ? o.batch : B;
  double S = 0.0;
  cnf_model_total_time(m, &S);
  double *tout = cnf__dalloc(m->ctx, n + 1), *z = cnf__dalloc(m->ctx, bs * D);
  double *zout = cnf__dalloc(m->ctx, (n + 1) * bs * D), *delta = cnf__dalloc(m->ctx, bs);
  size_t *slot = cnf__calloc(n + 1, sizeof(size_t));
  double *eps = o.trace != CNF_TRACE_EXACT ? cnf__dalloc(m->ctx, o.probes * bs * D) : NULL;
  int rc = 0;
  if (tout == NULL || z == NULL || zout == NULL || delta == NULL || slot == NULL ||
      (o.trace != CNF_TRACE_EXACT && eps == NULL)) {
    rc = CNF_ERROR(m->ctx, CNF_ENOMEM, "trajectories: out of memory");
    goto cleanup;
  }
  cnf_stats local;
  cnf_stats_clear(&local);
  for (size_t b0 = 0; b0 < B && rc == 0; b0 += bs) {
    const size_t Bc = B - b0 < bs ? B - b0 : bs;
    memcpy(z, in + b0 * D, Bc * D * sizeof(double));
    if (dir > 0) cnf__flow_standardize(f, Bc, z, z);
    unstandardize(f, Bc, z, paths + b0 * D);
    if (dir > 0) memcpy(paths + b0 * D, in + b0 * D, Bc * D * sizeof(double));
    memset(delta, 0, Bc * sizeof(double));
    size_t j = 1;   /* the next output time */
    double E = 0.0; /* elapsed time at the start of the block */
    for (size_t i = 0; i < K && rc == 0; i++) {
      const size_t k = dir > 0 ? i : K - 1 - i;
      const double Tk = f->T[k], tol = 1e-12 * Tk;
      /* this block's output times: at its start, inside, or at its end */
      size_t mi = 0;
      const size_t j0 = j;
      for (; j < n; j++) {
        const double u = j + 1 == n ? S : S * (double)j / (double)(n - 1);
        if (u - E > Tk + tol && i + 1 < K) break; /* a later block's time */
        const double loc = fmin(fmax(u - E, 0.0), Tk);
        if (loc <= tol) {
          slot[j] = SIZE_MAX;
        } else if (loc >= Tk - tol) {
          slot[j] = n;
        } else {
          tout[mi] = dir > 0 ? loc : Tk - loc;
          slot[j] = mi++;
        }
      }
      tout[mi] = dir > 0 ? Tk : 0.0;
      const double *ep = NULL;
      rc = time_probes(f, &o, Bc, eps, &ep);
      /* states at local time 0 are the block's start */
      for (size_t q = j0; q < j && rc == 0; q++)
        if (slot[q] == SIZE_MAX) unstandardize(f, Bc, z, paths + (q * B + b0) * D);
      if (rc == 0)
        rc = cnf_dyn_solve_times(f->dyn, f->P ? f->theta + k * f->P : f->theta, &o,
                                 dir > 0 ? 0.0 : Tk, mi + 1, tout, Bc, o.probes, ep, z, delta, zout,
                                 NULL, &local);
      if (rc != 0) block_failed(m, "trajectories", rc, k, K);
      for (size_t q = j0; q < j && rc == 0; q++)
        if (slot[q] != SIZE_MAX)
          unstandardize(f, Bc, slot[q] == n ? z : zout + slot[q] * Bc * D,
                        paths + (q * B + b0) * D);
      E += Tk;
    }
  }
  if (st != NULL) cnf_stats_add(st, &local);
  if (rc == 0) rc = cnf__check_finite(m->ctx, "trajectories", "a state", paths, n * B, D);
cleanup:
  cnf__free(tout);
  cnf__free(z);
  cnf__free(zout);
  cnf__free(delta);
  cnf__free(slot);
  cnf__free(eps);
  return rc;
}

int cnf_model_logp_at(cnf_model *m, const cnf_options *opt, double t, size_t B, const double *y,
                      double *logp, cnf_stats *st) {
  cnf_options o;
  RET_IF(time_args(m, "log p at t", opt, &o, B, y, logp));
  cnf_flow *f = m->flow;
  const size_t D = f->cfg.dim, K = f->blocks;
  double S = 0.0;
  cnf_model_total_time(m, &S);
  if (!(t >= 0 && t <= S))
    return CNF_ERROR(m->ctx, CNF_EINVAL, "log p at t: t = %g is outside [0, %g], the flow's time",
                     t, S);
  const size_t bs = o.batch > 0 && o.batch < B ? o.batch : B;
  double *z = cnf__dalloc(m->ctx, bs * D), *delta = cnf__dalloc(m->ctx, bs);
  double *eps = o.trace != CNF_TRACE_EXACT ? cnf__dalloc(m->ctx, o.probes * bs * D) : NULL;
  int rc = 0;
  if (z == NULL || delta == NULL || (o.trace != CNF_TRACE_EXACT && eps == NULL)) {
    rc = CNF_ERROR(m->ctx, CNF_ENOMEM, "log p at t: out of memory");
    goto cleanup;
  }
  cnf_stats local;
  cnf_stats_clear(&local);
  const double ls = cnf__flow_log_scale(f);
  for (size_t b0 = 0; b0 < B && rc == 0; b0 += bs) {
    const size_t Bc = B - b0 < bs ? B - b0 : bs;
    cnf__flow_standardize(f, Bc, y + b0 * D, z);
    memset(delta, 0, Bc * sizeof(double));
    double E = 0.0;
    for (size_t k = 0; k < K && rc == 0; k++) {
      const double Tk = f->T[k], t0 = fmax(0.0, t - E);
      E += Tk;
      if (t0 >= Tk * (1 - 1e-12)) continue; /* t is at or after this block's end */
      const double *ep = NULL;
      rc = time_probes(f, &o, Bc, eps, &ep);
      if (rc == 0)
        rc = cnf_dyn_solve(f->dyn, f->P ? f->theta + k * f->P : f->theta, &o, t0, Tk, Bc, o.probes,
                           ep, z, delta, &local);
      if (rc != 0) block_failed(m, "log p at t", rc, k, K);
    }
    for (size_t b = 0; b < Bc && rc == 0; b++)
      logp[b0 + b] = cnf_log_normal(z + b * D, D) - delta[b] - ls;
  }
  if (st != NULL) cnf_stats_add(st, &local);
  if (rc == 0) rc = cnf__check_finite(m->ctx, "log p at t", "the log-density", logp, B, 1);
cleanup:
  cnf__free(z);
  cnf__free(delta);
  cnf__free(eps);
  return rc;
}
