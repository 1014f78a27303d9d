/* user_fields.c: two velocity fields written the way a user would, from
 * cnf_dynamics.h alone, so the conformance suite also runs dyn.c's
 * fallbacks.
 *
 *   f(t, z) = tanh(u),  u = W z + c t,  theta = [W (D, D), c (D)].
 *
 * With y = tanh(u) and d = 1 - y^2:  J = diag(d) W, and for directions v_k
 *   v_k . J v_k = sum_i v_ki d_i (W v_k)_i.
 * For S = sum_b a_b . f_b + w_b sum_k v_kb . J_b v_kb (one row dropped):
 *   q_i  = w sum_k v_ki (W v_k)_i          (W_ii w for the unit vectors)
 *   gu_i = d_i a_i - 2 y_i d_i q_i         (d' = -2 y d)
 *   dS/dz = W^T gu,  dS/dc = t gu,
 *   dS/dW_ij = gu_i z_j + w d_i sum_k v_ki v_kj   (w d_i delta_ij for e_k).
 */
#include <math.h>
#include <stdlib.h>

#include "cnf_testing.h"

typedef struct user_state {
  size_t D;
  double *u; /* (D) scratch, sized at create: ops do not allocate */
  double *q; /* (D) */
} user_state;

static int user_f(void *sv, double t, size_t B, const double *z,
                  const double *theta, double *dz) {
  const user_state *s = sv;
  const size_t D = s->D;
  const double *W = theta, *c = theta + D * D;
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < D; i++) {
      double u = c[i] * t;
      for (size_t j = 0; j < D; j++) u += W[i * D + j] * z[b * D + j];
      dz[b * D + i] = tanh(u);
    }
  return 0;
}

static int user_vjp(void *sv, double t, size_t B, size_t K, const double *z,
                    const double *theta, const double *a, const double *w,
                    const double *v, double *dz, double *gz, double *gth) {
  if (dz != NULL) user_f(sv, t, B, z, theta, dz);
  const user_state *s = sv;
  const size_t D = s->D;
  const double *W = theta, *c = theta + D * D;
  double *gu = s->u, *q = s->q;
  for (size_t b = 0; b < B; b++) {
    const double *zb = z + b * D, *ab = a + b * D;
    const double wb = w != NULL ? w[b] : 0.0;
    for (size_t i = 0; i < D; i++) {
      q[i] = 0.0;
      if (w == NULL) continue;
      if (v == NULL) {
        q[i] = wb * W[i * D + i];
      } else {
        for (size_t k = 0; k < K; k++) {
          const double *vk = v + (k * B + b) * D;
          double Wv = 0.0;
          for (size_t j = 0; j < D; j++) Wv += W[i * D + j] * vk[j];
          q[i] += wb * vk[i] * Wv;
        }
      }
    }
    for (size_t i = 0; i < D; i++) {
      double u = c[i] * t;
      for (size_t j = 0; j < D; j++) u += W[i * D + j] * zb[j];
      double y = tanh(u), d = 1.0 - y * y;
      gu[i] = d * ab[i] - 2.0 * y * d * q[i];
      q[i] = d; /* q is spent: keep d for the parameter term */
    }
    for (size_t j = 0; j < D; j++) {
      double g = 0.0;
      for (size_t i = 0; i < D; i++) g += W[i * D + j] * gu[i];
      gz[b * D + j] = g;
    }
    if (gth == NULL) continue;
    double *gW = gth, *gc = gth + D * D;
    for (size_t i = 0; i < D; i++) {
      gc[i] += t * gu[i];
      for (size_t j = 0; j < D; j++) gW[i * D + j] += gu[i] * zb[j];
      if (w == NULL) continue;
      if (v == NULL) {
        gW[i * D + i] += wb * q[i];
      } else {
        for (size_t k = 0; k < K; k++) {
          const double *vk = v + (k * B + b) * D;
          for (size_t j = 0; j < D; j++) gW[i * D + j] += wb * q[i] * vk[i] * vk[j];
        }
      }
    }
  }
  return 0;
}

static void user_free(void *sv) {
  user_state *s = sv;
  if (s == NULL) return;
  free(s->u);
  free(s);
}

static user_state *user_state_new(size_t D) {
  user_state *s = calloc(1, sizeof *s);
  if (s == NULL) return NULL;
  s->D = D;
  s->u = calloc(2 * D, sizeof(double));
  if (s->u == NULL) {
    free(s);
    return NULL;
  }
  s->q = s->u + D;
  return s;
}

/* Only f: no f_div, no jvp, no vjp, not even free; the cnf_dyn does not
 * own its state (own_state = 0). */
static const cnf_dyn_type user_f_type = {.name = "user-f", .f = user_f};
static const cnf_dyn_type user_vjp_type = {
    .name = "user-vjp", .f = user_f, .vjp = user_vjp, .free = user_free};

/* The test keeps the f-only states and frees them at exit. */
static user_state *f_only_states[16];
static size_t n_f_only;

static void free_f_only(void) {
  for (size_t i = 0; i < n_f_only; i++) user_free(f_only_states[i]);
  n_f_only = 0;
}

int user_f_create(cnf_dyn **out, cnf_ctx *ctx, size_t D) {
  if (n_f_only == sizeof f_only_states / sizeof f_only_states[0]) return CNF_ENOMEM;
  user_state *s = user_state_new(D);
  if (s == NULL) return CNF_ENOMEM;
  if (n_f_only == 0) atexit(free_f_only);
  f_only_states[n_f_only++] = s;
  return cnf_dyn_create(out, ctx, &user_f_type, s, 0, D, D * D + D);
}

int user_vjp_create(cnf_dyn **out, cnf_ctx *ctx, size_t D) {
  user_state *s = user_state_new(D);
  if (s == NULL) return CNF_ENOMEM;
  int rc = cnf_dyn_create(out, ctx, &user_vjp_type, s, 1, D, D * D + D);
  if (rc != 0) user_free(s);
  return rc;
}
