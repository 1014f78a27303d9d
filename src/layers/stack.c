/* stack.c: stacks of discrete layers x -> layer 1 -> ... -> layer L -> z,
 *
 *     log p(x) = log N(z; 0, I) + sum_l ld_l - sum_i log scale_i,
 *
 * the last term from the optional standardization x_std = (x - shift) /
 * scale applied before layer 1.  The loss L = -(1/B) sum_b log p(x_b) has
 * dL/dz = z / B and dL/dld_l = -1 / B for every layer, so its gradient is
 * one reverse sweep through the layers with seeds a = z / B, c = -1 / B,
 * each layer's input gradient the next seed a.  Everything runs in chunks
 * of CNF_TF_CHUNK rows through workspaces sized at creation. */
#include <gsl/gsl_randist.h>
#include <math.h>
#include <string.h>

#include "stack_impl.h"

int cnf__stack_alloc(cnf_stack **out, cnf_ctx *ctx, const char *name, size_t D, size_t L,
                     const cnf_tf_config *cfgs) {
  *out = NULL;
  if (name == NULL || strlen(name) == 0 || strlen(name) > 31 ||
      strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(name))
    return CNF_ERROR(ctx, CNF_EINVAL, "stack: bad name (1 to 31 characters of a-z, 0-9, _)");
  if (D == 0 || L == 0 || L > 10000 || cfgs == NULL)
    return CNF_ERROR(ctx, CNF_EINVAL, "stack: need D >= 1 and 1 <= L <= 10000 layers");
  for (size_t l = 0; l < L; l++)
    if (cfgs[l].dim != D)
      return CNF_ERROR(ctx, CNF_EDIM, "stack: layer %zu has dimension %zu, the stack %zu", l + 1,
                       cfgs[l].dim, D);
  cnf_stack *s = cnf__calloc(1, sizeof *s);
  if (s == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "stack: out of memory");
  s->ctx = ctx;
  snprintf(s->name, sizeof s->name, "%s", name);
  s->D = D, s->L = L;
  int rc = 0;
  s->tf = cnf__calloc(L, sizeof(cnf_tf *));
  s->off = cnf__calloc(L + 1, sizeof(size_t));
  if (s->tf == NULL || s->off == NULL) CNF_TRY(CNF_ERROR(ctx, CNF_ENOMEM, "stack: out of memory"));
  for (size_t l = 0; l < L; l++) {
    CNF_TRY(cnf_tf_create(&s->tf[l], ctx, &cfgs[l]));
    s->off[l + 1] = s->off[l] + cnf_tf_param_count(s->tf[l]);
  }
  s->P = s->off[L];
  s->rng = gsl_rng_alloc(gsl_rng_mt19937);
  s->theta = cnf__dalloc(ctx, s->P + 1);
  s->grad = cnf__dalloc(ctx, s->P + 1);
  s->h = cnf__dalloc(ctx, (L + 1) * CNF_TF_CHUNK * D);
  s->ld = cnf__dalloc(ctx, CNF_TF_CHUNK);
  s->c = cnf__dalloc(ctx, CNF_TF_CHUNK);
  s->ga = cnf__dalloc(ctx, CNF_TF_CHUNK * D);
  s->gb = cnf__dalloc(ctx, CNF_TF_CHUNK * D);
  if (!s->rng || !s->theta || !s->grad || !s->h || !s->ld || !s->c || !s->ga || !s->gb)
    CNF_TRY(CNF_ERROR(ctx, CNF_ENOMEM, "stack: out of memory"));
  gsl_rng_set(s->rng, cnf__seed32(0));
  memset(s->theta, 0, (s->P + 1) * sizeof(double));
  *out = s;
  return 0;
cleanup:
  cnf_stack_free(s);
  return rc;
}

int cnf_stack_create(cnf_stack **out, cnf_ctx *ctx, const char *name, size_t D, size_t L,
                     const cnf_tf_config *cfgs, uint64_t seed) {
  if (out == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "stack: NULL argument");
  int rc = cnf__stack_alloc(out, ctx, name, D, L, cfgs);
  if (rc != 0) return rc;
  cnf_stack *s = *out;
  for (size_t l = 0; l < L; l++)
    cnf_tf_init_params(s->tf[l], s->theta + s->off[l], cnf_seed_derive(seed, "init", l));
  return 0;
}

void cnf_stack_free(cnf_stack *s) {
  if (s == NULL) return;
  for (size_t l = 0; s->tf != NULL && l < s->L; l++) cnf_tf_free(s->tf[l]);
  cnf__free(s->tf), cnf__free(s->off), cnf__free(s->theta), cnf__free(s->grad);
  cnf__free(s->shift), cnf__free(s->scale), cnf__free(s->m), cnf__free(s->v);
  cnf__free(s->h), cnf__free(s->ld), cnf__free(s->c), cnf__free(s->ga), cnf__free(s->gb);
  if (s->rng) gsl_rng_free(s->rng);
  cnf__free(s);
}

static const char *const PRESETS[] = {"realnvp", "nice",   "maf",         "iaf", "planar",
                                      "radial",  "affine", "elementwise", NULL};

const char *const *cnf_stack_preset_names(void) {
  return PRESETS;
}

int cnf_stack_preset(cnf_stack **out, cnf_ctx *ctx, const char *name, size_t D, size_t blocks,
                     size_t n_hidden, const size_t *hidden, uint64_t seed) {
  if (out == NULL || name == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "stack: NULL argument");
  *out = NULL;
  if (blocks == 0 || blocks > 1000 || n_hidden > CNF_MAX_HIDDEN)
    return CNF_ERROR(ctx, CNF_EINVAL, "stack: need 1 to 1000 blocks and at most %d hidden layers",
                     CNF_MAX_HIDDEN);
  int k = 0;
  while (PRESETS[k] != NULL && strcmp(PRESETS[k], name) != 0) k++;
  if (PRESETS[k] == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "stack: unknown flow '%s'", name);
  cnf_tf_config *c = cnf__calloc(2 * blocks + 1, sizeof *c);
  if (c == NULL) return CNF_ERROR(ctx, CNF_ENOMEM, "stack: out of memory");
  size_t L = 0;
  for (size_t b = 0; b < blocks; b++) {
    cnf_tf_config base;
    memset(&base, 0, sizeof base);
    base.dim = D;
    base.n_hidden = n_hidden;
    for (size_t i = 0; i < n_hidden; i++) base.hidden[i] = hidden[i];
    cnf_tf_config second = base;
    int two = 1;
    switch (k) {
      case 0:
        base.kind = CNF_TF_COUPLING, base.arg = b % 2, second.kind = CNF_TF_ACTNORM;
        break;
      case 1:
        base.kind = CNF_TF_ADDITIVE, base.arg = b % 2, two = 0;
        break;
      case 2:
        base.kind = CNF_TF_MAF, second.kind = CNF_TF_PERMUTE;
        break;
      case 3:
        base.kind = CNF_TF_IAF, second.kind = CNF_TF_PERMUTE;
        break;
      case 4:
        base.kind = CNF_TF_PLANAR, two = 0;
        break;
      case 5:
        base.kind = CNF_TF_RADIAL, two = 0;
        break;
      case 6:
        base.kind = CNF_TF_AFFINE, two = 0;
        break;
      default:
        base.kind = CNF_TF_ELEMENTWISE, second.kind = CNF_TF_SINHARCSINH;
        break;
    }
    c[L++] = base;
    if (two) c[L++] = second;
  }
  if (k == 1) {
    memset(&c[L], 0, sizeof c[L]);
    c[L].kind = CNF_TF_ELEMENTWISE, c[L].dim = D, L++;
  }
  int rc = cnf_stack_create(out, ctx, name, D, L, c, seed);
  cnf__free(c);
  return rc;
}

const char *cnf_stack_name(const cnf_stack *s) {
  return s->name;
}
size_t cnf_stack_dim(const cnf_stack *s) {
  return s->D;
}
size_t cnf_stack_layers(const cnf_stack *s) {
  return s->L;
}
const cnf_tf *cnf_stack_layer(const cnf_stack *s, size_t l) {
  return l < s->L ? s->tf[l] : NULL;
}
size_t cnf_stack_param_count(const cnf_stack *s) {
  return s->P;
}
double *cnf_stack_params(cnf_stack *s) {
  return s->theta;
}
long cnf_stack_train_updates(const cnf_stack *s) {
  return s->updates;
}

int cnf_stack_set_standardization(cnf_stack *s, const double *shift, const double *scale) {
  if (s == NULL) return CNF_EINVAL;
  if ((shift == NULL) != (scale == NULL))
    return CNF_ERROR(s->ctx, CNF_EINVAL, "standardization: give shift and scale, or neither");
  if (shift == NULL) {
    cnf__free(s->shift), cnf__free(s->scale);
    s->shift = s->scale = NULL;
    return 0;
  }
  for (size_t i = 0; i < s->D; i++)
    if (!isfinite(shift[i]) || !isfinite(scale[i]) || !(scale[i] > 0))
      return CNF_ERROR(s->ctx, CNF_EINVAL, "standardization: scale %zu is %g (must be > 0)", i,
                       scale[i]);
  if (s->shift == NULL) {
    s->shift = cnf__dalloc(s->ctx, s->D);
    s->scale = cnf__dalloc(s->ctx, s->D);
    if (s->shift == NULL || s->scale == NULL) {
      cnf__free(s->shift), cnf__free(s->scale);
      s->shift = s->scale = NULL;
      return CNF_ENOMEM;
    }
  }
  memcpy(s->shift, shift, s->D * sizeof(double));
  memcpy(s->scale, scale, s->D * sizeof(double));
  return 0;
}

int cnf_stack_standardization(const cnf_stack *s, double *shift, double *scale) {
  if (s->shift == NULL) return 0;
  if (shift) memcpy(shift, s->shift, s->D * sizeof(double));
  if (scale) memcpy(scale, s->scale, s->D * sizeof(double));
  return 1;
}

int cnf_stack_set_options(cnf_stack *s, const cnf_options *opt) {
  if (s == NULL) return CNF_EINVAL;
  cnf_options o;
  int rc = cnf__options_read(s->ctx, opt, &o);
  for (size_t l = 0; rc == 0 && l < s->L; l++) rc = cnf_tf_set_options(s->tf[l], &o);
  return rc;
}

void cnf_stack_seed(cnf_stack *s, uint64_t seed) {
  gsl_rng_set(s->rng, cnf__seed32(cnf_seed_derive(seed, "sample", 0)));
}

/* -sum log scale, the standardization's log-det */
static double std_logdet(const cnf_stack *s) {
  double t = 0.0;
  for (size_t i = 0; s->shift != NULL && i < s->D; i++) t -= log(s->scale[i]);
  return t;
}

/* one chunk forward: h_0 = std(x), h_{l+1} = layer l (h_l), ld summed */
static int chunk_forward(cnf_stack *s, size_t nb, const double *x, double *ld) {
  const size_t D = s->D, stride = CNF_TF_CHUNK * D;
  double *h0 = s->h;
  for (size_t r = 0; r < nb; r++)
    for (size_t i = 0; i < D; i++)
      h0[r * D + i] = s->shift ? (x[r * D + i] - s->shift[i]) / s->scale[i] : x[r * D + i];
  const double base = std_logdet(s);
  for (size_t r = 0; r < nb; r++) ld[r] = base;
  for (size_t l = 0; l < s->L; l++) {
    int rc = cnf_tf_forward(s->tf[l], s->theta + s->off[l], nb, s->h + l * stride,
                            s->h + (l + 1) * stride, s->ld);
    if (rc != 0) return rc;
    for (size_t r = 0; r < nb; r++) ld[r] += s->ld[r];
  }
  return 0;
}

/* encode and decode without the check of their results (logp and sample
 * check what they return instead) */
static int encode(cnf_stack *s, size_t B, const double *x, double *z, double *logdet) {
  if (s == NULL) return CNF_EINVAL;
  if (B > 0 && (x == NULL || z == NULL || logdet == NULL))
    return CNF_ERROR(s->ctx, CNF_EINVAL, "stack encode: x, z or logdet is NULL for %zu rows", B);
  const size_t D = s->D;
  for (size_t r = 0; r < B; r += CNF_TF_CHUNK) {
    size_t nb = B - r < CNF_TF_CHUNK ? B - r : CNF_TF_CHUNK;
    int rc = chunk_forward(s, nb, x + r * D, logdet + r);
    if (rc != 0) return rc;
    memcpy(z + r * D, s->h + s->L * CNF_TF_CHUNK * D, nb * D * sizeof(double));
  }
  return 0;
}

static int decode(cnf_stack *s, size_t B, const double *z, double *x, double *logdet) {
  if (s == NULL) return CNF_EINVAL;
  if (B > 0 && (x == NULL || z == NULL))
    return CNF_ERROR(s->ctx, CNF_EINVAL, "stack decode: z or x is NULL for %zu rows", B);
  const size_t D = s->D, stride = CNF_TF_CHUNK * D;
  const double base = std_logdet(s);
  for (size_t r = 0; r < B; r += CNF_TF_CHUNK) {
    size_t nb = B - r < CNF_TF_CHUNK ? B - r : CNF_TF_CHUNK;
    memcpy(s->h + s->L * stride, z + r * D, nb * D * sizeof(double));
    for (size_t q = 0; q < nb; q++) s->c[q] = base;
    for (size_t l = s->L; l-- > 0;) {
      int rc = cnf_tf_inverse(s->tf[l], s->theta + s->off[l], nb, s->h + (l + 1) * stride,
                              s->h + l * stride, s->ld);
      if (rc != 0) return rc;
      for (size_t q = 0; q < nb; q++) s->c[q] += s->ld[q];
    }
    for (size_t q = 0; q < nb; q++) {
      for (size_t i = 0; i < D; i++)
        x[(r + q) * D + i] =
            s->shift ? s->h[q * D + i] * s->scale[i] + s->shift[i] : s->h[q * D + i];
      if (logdet) logdet[r + q] = s->c[q];
    }
  }
  return 0;
}

/* Results that are not finite are errors (cnf__check_finite), as for CNFs:
 * pts (B, D) and logdet (B, may be NULL) as encode or decode (`who`) give
 * them back. */
static int check_results(cnf_stack *s, const char *who, const char *what, size_t B,
                         const double *pts, const double *logdet) {
  int rc = cnf__check_finite(s->ctx, who, what, pts, B, s->D);
  return rc != 0 ? rc : cnf__check_finite(s->ctx, who, "the log-det", logdet, B, 1);
}

int cnf_stack_encode(cnf_stack *s, size_t B, const double *x, double *z, double *logdet) {
  int rc = encode(s, B, x, z, logdet);
  return rc != 0 ? rc : check_results(s, "stack encode", "the latent point", B, z, logdet);
}

int cnf_stack_decode(cnf_stack *s, size_t B, const double *z, double *x, double *logdet) {
  int rc = decode(s, B, z, x, logdet);
  return rc != 0 ? rc : check_results(s, "stack decode", "the data point", B, x, logdet);
}

int cnf_stack_logp(cnf_stack *s, size_t B, const double *x, double *logp) {
  if (s == NULL) return CNF_EINVAL;
  if (B > 0 && (x == NULL || logp == NULL))
    return CNF_ERROR(s->ctx, CNF_EINVAL, "stack logp: x or logp is NULL for %zu rows", B);
  const size_t D = s->D;
  for (size_t r = 0; r < B; r += CNF_TF_CHUNK) {
    size_t nb = B - r < CNF_TF_CHUNK ? B - r : CNF_TF_CHUNK;
    int rc = chunk_forward(s, nb, x + r * D, logp + r);
    if (rc != 0) return rc;
    const double *z = s->h + s->L * CNF_TF_CHUNK * D;
    for (size_t q = 0; q < nb; q++) logp[r + q] += cnf_log_normal(z + q * D, D);
  }
  return cnf__check_finite(s->ctx, "stack logp", "the log-density", logp, B, 1);
}

int cnf_stack_sample(cnf_stack *s, size_t B, double *x, double *logp) {
  if (s == NULL) return CNF_EINVAL;
  if (B > 0 && x == NULL)
    return CNF_ERROR(s->ctx, CNF_EINVAL, "stack sample: x is NULL for %zu rows", B);
  const size_t D = s->D;
  for (size_t r = 0; r < B; r += CNF_TF_CHUNK) {
    size_t nb = B - r < CNF_TF_CHUNK ? B - r : CNF_TF_CHUNK;
    double *zz = s->ga; /* decode works in s->h, s->c and s->ld */
    for (size_t i = 0; i < nb * D; i++) zz[i] = gsl_ran_gaussian_ziggurat(s->rng, 1.0);
    int rc = decode(s, nb, zz, x + r * D, logp ? logp + r : NULL);
    if (rc != 0) return rc;
    for (size_t q = 0; logp && q < nb; q++) logp[r + q] += cnf_log_normal(zz + q * D, D);
  }
  int rc = check_results(s, "stack sample", "the sample", B, x, NULL);
  if (rc == 0) rc = cnf__check_finite(s->ctx, "stack sample", "the log-density", logp, B, 1);
  return rc;
}

int cnf_stack_loss_grad(cnf_stack *s, size_t B, const double *x, double *loss, double *grad) {
  if (s == NULL || B == 0 || x == NULL || loss == NULL || grad == NULL)
    return s ? CNF_ERROR(s->ctx, CNF_EINVAL, "loss: need B >= 1 points") : CNF_EINVAL;
  const size_t D = s->D, stride = CNF_TF_CHUNK * D;
  memset(grad, 0, s->P * sizeof(double));
  double total = 0.0;
  for (size_t r = 0; r < B; r += CNF_TF_CHUNK) {
    size_t nb = B - r < CNF_TF_CHUNK ? B - r : CNF_TF_CHUNK;
    int rc = chunk_forward(s, nb, x + r * D, s->c);
    if (rc != 0) return rc;
    const double *z = s->h + s->L * stride;
    for (size_t q = 0; q < nb; q++) {
      total -= s->c[q] + cnf_log_normal(z + q * D, D);
      s->c[q] = -1.0 / (double)B;
    }
    for (size_t i = 0; i < nb * D; i++) s->ga[i] = z[i] / (double)B;
    for (size_t l = s->L; l-- > 0;) {
      rc = cnf_tf_backward(s->tf[l], s->theta + s->off[l], nb, s->h + l * stride, s->ga, s->c,
                           l > 0 ? s->gb : NULL, grad + s->off[l]);
      if (rc != 0) return rc;
      double *t = s->ga;
      s->ga = s->gb, s->gb = t;
    }
  }
  *loss = total / (double)B;
  return 0;
}

int cnf_stack_init_data(cnf_stack *s, size_t B, const double *x) {
  if (s == NULL || B < 2 || x == NULL)
    return s ? CNF_ERROR(s->ctx, CNF_EINVAL, "init: need at least 2 points") : CNF_EINVAL;
  const size_t D = s->D;
  double *h = cnf__dalloc(s->ctx, B * D), *h2 = cnf__dalloc(s->ctx, B * D);
  int rc = 0;
  if (h == NULL || h2 == NULL) CNF_TRY(CNF_ENOMEM);
  for (size_t r = 0; r < B; r++)
    for (size_t i = 0; i < D; i++)
      h[r * D + i] = s->shift ? (x[r * D + i] - s->shift[i]) / s->scale[i] : x[r * D + i];
  for (size_t l = 0; l < s->L; l++) {
    double *th = s->theta + s->off[l];
    if (cnf_tf_get_config(s->tf[l])->kind == CNF_TF_ACTNORM) {
      for (size_t i = 0; i < D; i++) {
        double m = 0.0, v = 0.0;
        for (size_t r = 0; r < B; r++) m += h[r * D + i];
        m /= (double)B;
        for (size_t r = 0; r < B; r++) v += (h[r * D + i] - m) * (h[r * D + i] - m);
        double sd = sqrt(v / (double)(B - 1)) + 1e-6;
        th[i] = -log(sd);
        th[D + i] = -m / sd;
      }
    }
    CNF_TRY(cnf_tf_forward(s->tf[l], th, B, h, h2, NULL));
    double *t = h;
    h = h2, h2 = t;
  }
cleanup:
  cnf__free(h), cnf__free(h2);
  return rc;
}

int cnf__stack_train_state(cnf_stack *s) {
  if (s->m != NULL) return 0;
  s->m = cnf__dalloc(s->ctx, s->P + 1);
  s->v = cnf__dalloc(s->ctx, s->P + 1);
  if (s->m == NULL || s->v == NULL) {
    cnf__free(s->m), cnf__free(s->v);
    s->m = s->v = NULL;
    return CNF_ENOMEM;
  }
  memset(s->m, 0, (s->P + 1) * sizeof(double));
  memset(s->v, 0, (s->P + 1) * sizeof(double));
  return 0;
}

int cnf_stack_train_step(cnf_stack *s, const cnf_train_options *to, size_t B, const double *x,
                         double *loss, double *grad_norm) {
  if (s == NULL) return CNF_EINVAL;
  if (to == NULL) return CNF_ERROR(s->ctx, CNF_EINVAL, "stack train step: no training options");
  int rc = cnf__stack_train_state(s);
  if (rc != 0) return rc;
  s->iter++; /* a failed step counts too, as for flows */
  double L = 0.0;
  rc = cnf_stack_loss_grad(s, B, x, &L, s->grad);
  if (rc != 0) return rc;
  double g2 = 0.0;
  for (size_t i = 0; i < s->P; i++) g2 += s->grad[i] * s->grad[i];
  if (loss) *loss = L;
  if (grad_norm) *grad_norm = sqrt(g2);
  if (!isfinite(L) || !isfinite(g2))
    return CNF_ERROR(s->ctx, CNF_ENONFINITE, "train: non-finite loss (%g) or gradient", L);
  s->updates++;
  cnf_adam_update(to, s->updates, s->P, s->grad, s->theta, s->m, s->v);
  return 0;
}

void cnf_stack_clear_train_state(cnf_stack *s) {
  cnf__free(s->m), cnf__free(s->v);
  s->m = s->v = NULL;
  s->updates = 0;
  s->iter = 0;
}
