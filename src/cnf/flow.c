/* flow.c: flows of stacked MLP blocks: log-density, encode, decode, sample.
 *
 * Block k maps its input at t = 0 to its output at t = T_k; the data x
 * enters block 1 and z leaves block K.  With Delta_k the change of log
 * density of block k (dDelta/dt = -tr J, Delta(0) = 0):
 *
 *     log p(x) = log N(z; 0, I) - sum_k Delta_k(T_k).
 *
 * Decoding runs the blocks in reverse, each from T_k back to 0 starting at
 * Delta = 0, so that log p(x) = log N(z) + sum_k Delta_k(0).  Since nothing
 * depends on Delta, one running Delta is carried through all blocks.
 *
 * Hutchinson probes are drawn for each block solve from a seed taken from
 * the flow's generator, and held fixed during that solve. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <gsl/gsl_randist.h>

#include "flow_impl.h"

int cnf__flow_alloc(cnf_flow **out, cnf_ctx *ctx, const cnf_mlp_config *cfg,
                    size_t blocks) {
  if (out == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "flow: out is NULL");
  *out = NULL;
  if (ctx == NULL || cfg == NULL || blocks == 0 || blocks > 1000)
    return CNF_ERROR(ctx, CNF_EINVAL, "flow: need a context, a network "
                     "configuration and 1..1000 blocks");
  size_t P = cnf_mlp_param_count(cfg);
  if (P == 0) return CNF_ERROR(ctx, CNF_EINVAL, "flow: invalid network configuration");
  cnf_flow *f = cnf__calloc(1, sizeof *f);
  if (f == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "flow: out of memory");
  f->ctx = ctx;
  f->cfg = *cfg;
  f->blocks = blocks;
  f->P = P;
  f->T = cnf__dalloc(ctx, blocks);
  f->theta = cnf__dalloc(ctx, blocks * P);
  f->rng = f->T && f->theta ? gsl_rng_alloc(gsl_rng_mt19937) : NULL;
  int rc = f->rng ? cnf_dyn_mlp_create(&f->dyn, ctx, cfg) : CNF_ENOMEM;
  if (rc != 0) {
    cnf_flow_free(f);
    return rc == CNF_ENOMEM ? CNF_ERROR(ctx, CNF_ENOMEM, "flow: out of memory") : rc;
  }
  for (size_t k = 0; k < blocks; k++) f->T[k] = 1.0;
  gsl_rng_set(f->rng, cnf__seed32(0));
  *out = f;
  return 0;
}

static int valid_name(const char *s, size_t max, const char *chars) {
  size_t n = s ? strlen(s) : 0;
  return s != NULL && n <= max && strspn(s, chars) == n;
}
#define FIELD_NAME_CHARS "abcdefghijklmnopqrstuvwxyz0123456789_-"
#define FIELD_CONFIG_CHARS \
  "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,:+-"

int cnf_ctx_register_field(cnf_ctx *ctx, const cnf_field_class *cls) {
  if (ctx == NULL) return CNF_EINVAL;
  if (cls == NULL || cls->create == NULL || cls->name == NULL || cls->name[0] == '\0' ||
      !valid_name(cls->name, 31, FIELD_NAME_CHARS))
    return CNF_ERROR(ctx, CNF_EINVAL, "register field: need a class with a create op and a "
                     "name of 1..31 characters of [a-z0-9_-] (got '%s')",
                     cls && cls->name ? cls->name : "(null)");
  if (cnf_ctx_find_field(ctx, cls->name) != NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "register field: '%s' is already registered", cls->name);
  if (ctx->n_fields >= CNF_MAX_FIELD_CLASSES)
    return CNF_ERROR(ctx, CNF_EINVAL, "register field: at most %d classes per context",
                     CNF_MAX_FIELD_CLASSES);
  ctx->fields[ctx->n_fields++] = cls;
  return 0;
}

const cnf_field_class *cnf_ctx_find_field(const cnf_ctx *ctx, const char *name) {
  if (ctx == NULL || name == NULL) return NULL;
  for (size_t i = 0; i < ctx->n_fields; i++) {
    const cnf_field_class *c = ctx->fields[i];
    if (strcmp(c->name, name) == 0) return c;
  }
  return NULL;
}

int cnf__flow_alloc_field(cnf_flow **out, cnf_ctx *ctx, const cnf_field_class *cls,
                          const char *config, size_t D, size_t blocks) {
  if (out == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "flow: out is NULL");
  *out = NULL;
  if (config == NULL) config = "";
  if (ctx == NULL || cls == NULL || D == 0 || blocks == 0 || blocks > 1000)
    return CNF_ERROR(ctx, CNF_EINVAL, "flow: need a context, a field class, D >= 1 and "
                     "1..1000 blocks");
  if (!valid_name(config, 255, FIELD_CONFIG_CHARS))
    return CNF_ERROR(ctx, CNF_EINVAL, "flow: field configuration '%s': at most 255 characters "
                     "of [A-Za-z0-9_.,:+-]", config);
  cnf_dyn *dyn = NULL;
  int rc = cls->create(&dyn, ctx, D, config, cls->user);
  if (rc != 0 || dyn == NULL)
    return CNF_ERROR(ctx, rc != 0 ? rc : CNF_EINVAL, "field '%s' (config '%s'): %s", cls->name,
                     config, rc != 0 ? cnf_ctx_errmsg(ctx) : "create gave no field");
  const size_t P = cnf_dyn_param_count(dyn);
  if (cnf_dyn_dim(dyn) != D || P == 0) {
    cnf_dyn_free(dyn);
    return CNF_ERROR(ctx, CNF_EINVAL, "field '%s': a flow block needs a field of dimension %zu "
                     "with parameters (got D = %zu, P = %zu)", cls->name, D, cnf_dyn_dim(dyn), P);
  }
  cnf_flow *f = cnf__calloc(1, sizeof *f);
  if (f == NULL) {
    cnf_dyn_free(dyn);
    return CNF_ERROR(ctx, CNF_ENOMEM, "flow: out of memory");
  }
  f->ctx = ctx;
  memset(&f->cfg, 0, sizeof f->cfg);
  f->cfg.dim = D;
  f->field = cls;
  snprintf(f->field_config, sizeof f->field_config, "%s", config);
  f->dyn = dyn;
  f->blocks = blocks;
  f->P = P;
  f->T = cnf__dalloc(ctx, blocks);
  f->theta = cnf__dalloc(ctx, blocks * P);
  f->rng = f->T && f->theta ? gsl_rng_alloc(gsl_rng_mt19937) : NULL;
  if (f->rng == NULL) {
    cnf_flow_free(f);
    return CNF_ERROR(ctx, CNF_ENOMEM, "flow: out of memory");
  }
  for (size_t k = 0; k < blocks; k++) f->T[k] = 1.0;
  gsl_rng_set(f->rng, cnf__seed32(0));
  *out = f;
  return 0;
}

int cnf_flow_create_field(cnf_flow **out, cnf_ctx *ctx, const char *field, const char *config,
                          size_t D, size_t blocks, double T, uint64_t seed) {
  if (out) *out = NULL;
  const cnf_field_class *cls = cnf_ctx_find_field(ctx, field);
  if (cls == NULL)
    return CNF_ERROR(ctx, CNF_EUNSUPPORTED, "flow: no field class '%s' is registered with the "
                     "context (cnf_ctx_register_field)", field ? field : "(null)");
  if (!(T >= CNF__T_MIN && T <= CNF__T_MAX))
    return CNF_ERROR(ctx, CNF_EINVAL, "flow: end time T must be in [%g, %g] (got %g)", CNF__T_MIN,
                     CNF__T_MAX, T);
  int rc = cnf__flow_alloc_field(out, ctx, cls, config, D, blocks);
  if (rc != 0) return rc;
  cnf_flow *f = *out;
  for (size_t k = 0; k < blocks && rc == 0; k++) {
    f->T[k] = T;
    if (cls->init != NULL)
      rc = cls->init(f->dyn, cnf_seed_derive(seed, "init", k), f->theta + k * f->P, cls->user);
  }
  if (rc != 0) {
    cnf_flow_free(f);
    *out = NULL;
    return CNF_ERROR(ctx, rc, "field '%s': parameter initialisation failed", cls->name);
  }
  cnf_flow_seed(f, seed);
  return 0;
}

const char *cnf_flow_field(const cnf_flow *f) { return f->field ? f->field->name : NULL; }
const char *cnf_flow_field_config(const cnf_flow *f) { return f->field_config; }

int cnf_flow_create(cnf_flow **out, cnf_ctx *ctx, const cnf_mlp_config *cfg,
                    size_t blocks, double T, uint64_t seed) {
  if (!(T >= CNF__T_MIN && T <= CNF__T_MAX)) {
    if (out) *out = NULL;
    return CNF_ERROR(ctx, CNF_EINVAL, "flow: end time T must be in [%g, %g] (got %g)", CNF__T_MIN,
                     CNF__T_MAX, T);
  }
  int rc = cnf__flow_alloc(out, ctx, cfg, blocks);
  if (rc != 0) return rc;
  cnf_flow *f = *out;
  for (size_t k = 0; k < blocks; k++) {
    f->T[k] = T;
    /* block k's parameters from the stream ("init", k) of seed */
    rc = cnf_mlp_init_params(cfg, cnf_seed_derive(seed, "init", k), f->theta + k * f->P);
    if (rc != 0) {
      cnf_flow_free(f);
      *out = NULL;
      return CNF_ERROR(ctx, rc, "flow: parameter initialisation failed");
    }
  }
  cnf_flow_seed(f, seed);
  return 0;
}

void cnf_flow_free(cnf_flow *f) {
  if (f == NULL) return;
  cnf__free(f->shift);
  cnf__free(f->scale);
  cnf__train_state_free(f->train);
  cnf_dyn_free(f->dyn);
  if (f->rng) gsl_rng_free(f->rng);
  cnf__free(f->T);
  cnf__free(f->theta);
  cnf__free(f->eps);
  cnf__free(f);
}

size_t cnf_flow_dim(const cnf_flow *f) { return f->cfg.dim; }
size_t cnf_flow_blocks(const cnf_flow *f) { return f->blocks; }
const cnf_mlp_config *cnf_flow_config(const cnf_flow *f) { return &f->cfg; }
size_t cnf_flow_param_count(const cnf_flow *f) { return f->blocks * f->P; }
double *cnf_flow_params(cnf_flow *f) { return f->theta; }

double cnf_flow_end_time(const cnf_flow *f, size_t k) {
  return k < f->blocks ? f->T[k] : NAN;
}

int cnf_flow_set_end_time(cnf_flow *f, size_t k, double T) {
  if (k >= f->blocks || !(T >= CNF__T_MIN && T <= CNF__T_MAX))
    return CNF_ERROR(f->ctx, CNF_EINVAL,
                     "flow: block %zu of %zu, T = %g: need "
                     "an existing block and %g <= T <= %g",
                     k, f->blocks, T, CNF__T_MIN, CNF__T_MAX);
  f->T[k] = T;
  return 0;
}

void cnf__train_state_free(cnf_train_state *st) {
  if (st == NULL) return;
  cnf__free(st->m);
  cnf__free(st->v);
  cnf__free(st);
}

cnf_train_state *cnf__train_state_new(size_t n) {
  cnf_train_state *st = cnf__calloc(1, sizeof *st);
  if (st == NULL) return NULL;
  st->n = n;
  st->m = cnf__calloc(n, sizeof(double));
  st->v = cnf__calloc(n, sizeof(double));
  if (st->m == NULL || st->v == NULL) {
    cnf__train_state_free(st);
    return NULL;
  }
  return st;
}

int cnf_flow_set_standardization(cnf_flow *f, const double *shift,
                                 const double *scale) {
  const size_t D = f->cfg.dim;
  if (shift == NULL || scale == NULL) {
    cnf__free(f->shift);
    cnf__free(f->scale);
    f->shift = f->scale = NULL;
    return 0;
  }
  for (size_t i = 0; i < D; i++)
    if (!isfinite(shift[i]) || !(scale[i] > 0.0) || !isfinite(scale[i]))
      return CNF_ERROR(f->ctx, CNF_EINVAL, "standardization: column %zu has shift %g, scale %g; "
                       "need finite values and scale > 0", i + 1, shift[i], scale[i]);
  if (f->shift == NULL) {
    f->shift = cnf__dalloc(f->ctx, D);
    f->scale = cnf__dalloc(f->ctx, D);
    if (f->shift == NULL || f->scale == NULL) {
      cnf__free(f->shift);
      cnf__free(f->scale);
      f->shift = f->scale = NULL;
      return CNF_ENOMEM;
    }
  }
  memcpy(f->shift, shift, D * sizeof(double));
  memcpy(f->scale, scale, D * sizeof(double));
  return 0;
}

int cnf_flow_standardization(const cnf_flow *f, double *shift, double *scale) {
  if (f->shift == NULL) return 0;
  if (shift) memcpy(shift, f->shift, f->cfg.dim * sizeof(double));
  if (scale) memcpy(scale, f->scale, f->cfg.dim * sizeof(double));
  return 1;
}

double cnf__flow_log_scale(const cnf_flow *f) {
  double s = 0.0;
  if (f->scale != NULL)
    for (size_t i = 0; i < f->cfg.dim; i++) s += log(f->scale[i]);
  return s;
}

void cnf__flow_standardize(const cnf_flow *f, size_t B, const double *x,
                           double *out) {
  const size_t D = f->cfg.dim;
  if (f->shift == NULL) {
    if (out != x) memmove(out, x, B * D * sizeof(double));
    return;
  }
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < D; i++)
      out[b * D + i] = (x[b * D + i] - f->shift[i]) / f->scale[i];
}

int cnf_flow_set_threads(cnf_flow *f, size_t n) {
  if (f == NULL) return CNF_EINVAL;
  if (f->field != NULL) return 0; /* a user field runs as it is written */
  return cnf_dyn_mlp_set_threads(f->dyn, n);
}

void cnf_flow_seed(cnf_flow *f, uint64_t seed) {
  gsl_rng_set(f->rng, cnf__seed32(cnf_seed_derive(seed, "sample", 0)));
}

double cnf_log_normal(const double *z, size_t D) {
  double s = 0.0;
  for (size_t i = 0; i < D; i++) s += z[i] * z[i];
  return -0.5 * s - 0.5 * (double)D * 1.8378770664093454835606594728112; /* log 2 pi */
}

/* Check the arguments of a public call and read the caller's options into
 * o (cnf__options_read), which the call then uses instead of opt. */
static int check_args(cnf_flow *f, const cnf_options *opt, cnf_options *o, size_t B,
                      const void *in, const void *out) {
  if (f == NULL) return CNF_EINVAL;
  if (opt == NULL || in == NULL || out == NULL || B == 0)
    return CNF_ERROR(f->ctx, CNF_EINVAL, "flow: NULL argument or empty batch");
  int rc = cnf__options_read(f->ctx, opt, o);
  if (rc != 0) return rc;
  opt = o;
  if (opt->trace != CNF_TRACE_EXACT && opt->probes == 0)
    return CNF_ERROR(f->ctx, CNF_EINVAL, "flow: Hutchinson needs at least one probe");
  if ((unsigned)opt->trace > CNF_TRACE_RADEMACHER || (unsigned)opt->method > CNF_METHOD_BDF)
    return CNF_ERROR(f->ctx, CNF_EINVAL, "flow: unknown trace or method");
  return 0;
}

/* Probes for one solve of Bc rows into f->eps, or NULL for the exact
 * trace; when this worker solves only rows [lo, lo + n) of them (n < Bc),
 * those rows' probes are copied to part (K, n, D) and *eps is part. */
static int draw_probes(cnf_flow *f, const cnf_options *opt, size_t Bc, size_t lo, size_t n,
                       double *part, const double **eps) {
  *eps = NULL;
  if (opt->trace == CNF_TRACE_EXACT) return 0;
  const size_t D = f->cfg.dim, K = opt->probes;
  if (Bc > f->cap_rows || K > f->cap_probes) {
    cnf__free(f->eps);
    f->eps = cnf__dalloc(f->ctx, K * Bc * D);
    f->cap_rows = f->eps ? Bc : 0;
    f->cap_probes = f->eps ? K : 0;
    if (f->eps == NULL) return CNF_ENOMEM;
  }
  if (n < Bc) {
    int rc = cnf__flow_draw_probes_part(f, opt->trace, K, Bc, lo, n, f->eps, part);
    *eps = part;
    return rc;
  }
  int rc = cnf__flow_draw_probes(f, opt->trace, K, Bc, f->eps);
  if (rc != 0) return rc;
  *eps = f->eps;
  return 0;
}

int cnf__flow_draw_probes_part(cnf_flow *f, cnf_trace trace, size_t K, size_t Bg, size_t lo,
                               size_t B, double *work, double *eps) {
  if (B == Bg) return cnf__flow_draw_probes(f, trace, K, B, eps);
  int rc = cnf__flow_draw_probes(f, trace, K, Bg, work);
  const size_t D = f->cfg.dim;
  for (size_t k = 0; k < K && rc == 0; k++)
    memcpy(eps + k * B * D, work + (k * Bg + lo) * D, B * D * sizeof(double));
  return rc;
}

int cnf__flow_draw_probes(cnf_flow *f, cnf_trace trace, size_t K, size_t B,
                          double *eps) {
  uint64_t seed = gsl_rng_get(f->rng);
  int rc = cnf_probes_draw(trace, seed, K, B, f->cfg.dim, eps);
  if (rc != 0) return CNF_ERROR(f->ctx, rc, "flow: drawing probes failed");
  return 0;
}

/* This worker's rows [lo, hi) of a solve of Bc rows: a part when the
 * context's workers make it one distributed system (every worker gets at
 * least one row), else all of them (every worker solves all: a solve of
 * fewer rows than workers). */
static int solve_part(const cnf_flow *f, size_t Bc, size_t *lo, size_t *hi) {
  const cnf_comm *c = &f->ctx->comm;
  *lo = 0, *hi = Bc;
  if (!cnf__dist_enabled(f->ctx) || Bc < (size_t)c->size) return 0;
  cnf__dist_range(Bc, (size_t)c->rank, (size_t)c->size, lo, hi);
  return 1;
}

/* Distributed: the rows this worker did not solve zeroed (rank 0 keeps the
 * solves every worker made whole), then z and delta summed over the
 * workers, so every worker holds every row. */
static int gather_rows(cnf_flow *f, size_t B, size_t bs, double *z, double *delta) {
  const size_t D = f->cfg.dim;
  for (size_t b0 = 0; b0 < B; b0 += bs) {
    const size_t Bc = B - b0 < bs ? B - b0 : bs;
    size_t lo, hi;
    if (!solve_part(f, Bc, &lo, &hi)) { /* every worker solved all rows */
      if (f->ctx->comm.rank == 0) continue;
      lo = hi = 0;
    }
    for (size_t b = 0; b < Bc; b++)
      if (b < lo || b >= hi) {
        memset(z + (b0 + b) * D, 0, D * sizeof(double));
        delta[b0 + b] = 0.0;
      }
  }
  int rc = cnf__dist_sum(f->ctx, z, B * D);
  return rc == 0 ? cnf__dist_sum(f->ctx, delta, B) : rc;
}

/* Run the blocks over rows [0, B) in batches of opt->batch; forward
 * (x -> z) if dir > 0, else backward.  z (B, D) and delta (B) in place.
 * With distributed workers (cnf_comm, cnf.h) every worker holds all B
 * rows; each batch is one system split over the workers (solve_part), and
 * the rows are gathered at the end. */
static int run_blocks(cnf_flow *f, const cnf_options *opt, size_t B, int dir,
                      double *z, double *delta, cnf_stats *st) {
  const size_t D = f->cfg.dim;
  const size_t bs = opt->batch > 0 && opt->batch < B ? opt->batch : B;
  const int dist = cnf__dist_enabled(f->ctx);
  cnf_stats local;
  cnf_stats_clear(&local);
  int rc = 0;
  double *part = NULL; /* (K, bs / R + 1, D) this worker's probes */
  if (dist && opt->trace != CNF_TRACE_EXACT) {
    part = cnf__dalloc(f->ctx, opt->probes * (bs / (size_t)f->ctx->comm.size + 1) * D);
    if (part == NULL) return CNF_ENOMEM;
  }
  for (size_t b0 = 0; b0 < B && rc == 0; b0 += bs) {
    const size_t Bc = B - b0 < bs ? B - b0 : bs;
    size_t lo, hi;
    const int on = solve_part(f, Bc, &lo, &hi);
    f->ctx->dist_on += on;
    for (size_t i = 0; i < f->blocks && rc == 0; i++) {
      const size_t k = dir > 0 ? i : f->blocks - 1 - i;
      const double *eps = NULL;
      rc = draw_probes(f, opt, Bc, lo, hi - lo, part, &eps);
      if (rc != 0) break;
      const double t0 = dir > 0 ? 0.0 : f->T[k], t1 = dir > 0 ? f->T[k] : 0.0;
      rc = cnf_dyn_solve(f->dyn, f->theta + k * f->P, opt, t0, t1, hi - lo,
                         opt->probes, eps, z + (b0 + lo) * D, delta + b0 + lo, &local);
      if (rc != 0 && f->blocks > 1) {
        char msg[CNF_ERRMSG_LEN];
        snprintf(msg, sizeof msg, "%s", f->ctx->errmsg);
        CNF_ERROR(f->ctx, rc, "block %zu of %zu, rows %zu..%zu: %s", k + 1,
                  f->blocks, b0 + 1, b0 + Bc, msg);
      }
    }
    f->ctx->dist_on -= on;
  }
  cnf__free(part);
  if (rc == 0 && dist) rc = gather_rows(f, B, bs, z, delta);
  if (st != NULL) cnf_stats_add(st, &local);
  return rc;
}

static int copy_in(cnf_flow *f, const double *in, double *out, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isfinite(in[i]))
      return CNF_ERROR(f->ctx, CNF_ENONFINITE, "flow: input row %zu has a non-finite value",
                       i / f->cfg.dim + 1);
  if (out != in) memmove(out, in, n * sizeof(double));
  return 0;
}

/* encode and decode without the check of their results (logp and sample
 * check what they return instead) */
static int encode(cnf_flow *f, const cnf_options *opt, size_t B, const double *x, double *z,
                  double *delta, cnf_stats *st) {
  cnf_options o;
  int rc = check_args(f, opt, &o, B, x, z);
  if (rc != 0) return rc;
  opt = &o;
  if (delta == NULL) return CNF_ERROR(f->ctx, CNF_EINVAL, "flow: delta is NULL");
  rc = copy_in(f, x, z, B * f->cfg.dim);
  if (rc != 0) return rc;
  cnf__flow_standardize(f, B, z, z);
  memset(delta, 0, B * sizeof(double));
  rc = run_blocks(f, opt, B, +1, z, delta, st);
  const double ls = cnf__flow_log_scale(f);
  for (size_t b = 0; b < B && rc == 0; b++) delta[b] += ls;
  return rc;
}

static int decode(cnf_flow *f, const cnf_options *opt, size_t B, const double *z, double *x,
                  double *delta, cnf_stats *st) {
  cnf_options o;
  int rc = check_args(f, opt, &o, B, z, x);
  if (rc != 0) return rc;
  opt = &o;
  if (delta == NULL) return CNF_ERROR(f->ctx, CNF_EINVAL, "flow: delta is NULL");
  rc = copy_in(f, z, x, B * f->cfg.dim);
  if (rc != 0) return rc;
  memset(delta, 0, B * sizeof(double));
  rc = run_blocks(f, opt, B, -1, x, delta, st);
  if (rc != 0) return rc;
  const size_t D = f->cfg.dim;
  const double ls = cnf__flow_log_scale(f);
  for (size_t b = 0; b < B; b++) {
    delta[b] -= ls;
    if (f->shift != NULL)
      for (size_t i = 0; i < D; i++) x[b * D + i] = x[b * D + i] * f->scale[i] + f->shift[i];
  }
  return 0;
}

/* Results that are not finite are errors (cnf__check_finite): a point far
 * outside the support is reported, not written as -inf.  pts (B, D) and
 * delta (B) are what encode or decode (`who`) gives back. */
static int check_results(cnf_flow *f, const char *who, const char *what, size_t B,
                         const double *pts, const double *delta) {
  int rc = cnf__check_finite(f->ctx, who, what, pts, B, f->cfg.dim);
  return rc != 0 ? rc : cnf__check_finite(f->ctx, who, "the log-det", delta, B, 1);
}

int cnf_flow_encode(cnf_flow *f, const cnf_options *opt, size_t B, const double *x, double *z,
                    double *delta, cnf_stats *st) {
  int rc = encode(f, opt, B, x, z, delta, st);
  return rc != 0 ? rc : check_results(f, "flow encode", "the latent point", B, z, delta);
}

int cnf_flow_decode(cnf_flow *f, const cnf_options *opt, size_t B, const double *z, double *x,
                    double *delta, cnf_stats *st) {
  int rc = decode(f, opt, B, z, x, delta, st);
  return rc != 0 ? rc : check_results(f, "flow decode", "the data point", B, x, delta);
}

int cnf_flow_logp(cnf_flow *f, const cnf_options *opt, size_t B,
                  const double *x, double *logp, cnf_stats *st) {
  cnf_options o;
  int rc = check_args(f, opt, &o, B, x, logp);
  if (rc != 0) return rc;
  opt = &o;
  const size_t D = f->cfg.dim;
  double *z = cnf__dalloc(f->ctx, B * D);
  if (z == NULL) return CNF_ENOMEM;
  rc = encode(f, opt, B, x, z, logp, st);
  if (rc == 0)
    for (size_t b = 0; b < B; b++) logp[b] = cnf_log_normal(z + b * D, D) - logp[b];
  if (rc == 0) rc = cnf__check_finite(f->ctx, "flow logp", "the log-density", logp, B, 1);
  cnf__free(z);
  return rc;
}

int cnf_flow_sample(cnf_flow *f, const cnf_options *opt, size_t B, double *x,
                    double *logp, cnf_stats *st) {
  cnf_options o;
  int rc = check_args(f, opt, &o, B, x, logp);
  if (rc != 0) return rc;
  opt = &o;
  const size_t D = f->cfg.dim;
  for (size_t i = 0; i < B * D; i++) x[i] = gsl_ran_gaussian_ziggurat(f->rng, 1.0);
  double *lz = cnf__dalloc(f->ctx, B);
  if (lz == NULL) return CNF_ENOMEM;
  for (size_t b = 0; b < B; b++) lz[b] = cnf_log_normal(x + b * D, D);
  rc = decode(f, opt, B, x, x, logp, st);
  if (rc == 0)
    for (size_t b = 0; b < B; b++) logp[b] += lz[b];
  if (rc == 0) rc = check_results(f, "flow sample", "the sample", B, x, NULL);
  if (rc == 0) rc = cnf__check_finite(f->ctx, "flow sample", "the log-density", logp, B, 1);
  cnf__free(lz);
  return rc;
}
