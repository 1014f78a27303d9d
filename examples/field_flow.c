/* field_flow.c: a velocity field of your own as the block of a flow that is
 * trained, saved and loaded by another program.
 *
 * The field is a linear part plus a small network correction,
 *
 *     f(t, z) = A z + c + g(t, z),    theta = [A (D, D), c (D), theta_g],
 *
 * g the library's MLP (its configuration string gives the hidden widths,
 * e.g. "16-16").  Its ops combine the two parts:
 *
 *     div f            = tr A + div g,  with probes v: sum_k v_k.A v_k + ...
 *     dS/dz            = A^T a + (dS/dz of g)
 *     dS/dA            = a z^T + w sum_k v_k v_k^T   (w I for the exact trace)
 *     dS/dc            = a
 *
 * for S = sum_b a_b . f_b + w_b div_b, the scalar of the vjp op
 * (cnf_dynamics.h).  The class is registered with the context under the
 * name "linmlp"; a model file records that name, the configuration and the
 * parameters, and a program that registers the same class loads it.
 *
 *   field_flow train MODEL POINTS   train on 8gaussians with cnf_fit, save
 *                                   MODEL, and log p of 8 fixed points
 *   field_flow check MODEL POINTS   load MODEL, recompute log p of the
 *                                   points (must equal POINTS bit for bit)
 *                                   integrate p over a grid (must be 1
 *                                   within 1e-3) and check the adjoint
 *                                   gradient through the field's vjp against
 *                                   central differences (below 1e-5)
 *
 * Exits 0 when every check holds, 1 otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cnf_dynamics.h>
#include <cnf_model.h>

/* ---- the field -------------------------------------------------------------- */

typedef struct linmlp {
  size_t D;
  cnf_mlp_config cfg; /* of the correction network */
  cnf_dyn *g;         /* the correction network (its workspaces sized by reserve) */
} linmlp;

/* out (B, D) += A z + c. */
static void linear_add(size_t D, size_t B, const double *z, const double *theta, double *out) {
  const double *A = theta, *c = theta + D * D;
  for (size_t b = 0; b < B; b++)
    for (size_t i = 0; i < D; i++) {
      double s = c[i];
      for (size_t j = 0; j < D; j++) s += A[i * D + j] * z[b * D + j];
      out[b * D + i] += s;
    }
}

static int lm_f(void *sv, double t, size_t B, const double *z, const double *theta, double *dz) {
  linmlp *s = sv;
  int rc = cnf_dyn_f(s->g, t, B, z, theta + s->D * s->D + s->D, dz);
  if (rc == 0) linear_add(s->D, B, z, theta, dz);
  return rc;
}

static int lm_f_div(void *sv, double t, size_t B, size_t K, const double *z, const double *theta,
                    const double *v, double *dz, double *div) {
  linmlp *s = sv;
  const size_t D = s->D;
  int rc = cnf_dyn_f_div(s->g, t, B, K, z, theta + D * D + D, v, dz, div);
  if (rc != 0) return rc;
  linear_add(D, B, z, theta, dz);
  const double *A = theta;
  for (size_t b = 0; b < B; b++) {
    double tr = 0.0;
    if (v == NULL) {
      for (size_t i = 0; i < D; i++) tr += A[i * D + i];
    } else {
      for (size_t k = 0; k < K; k++) {
        const double *vk = v + (k * B + b) * D;
        for (size_t i = 0; i < D; i++)
          for (size_t j = 0; j < D; j++) tr += vk[i] * A[i * D + j] * vk[j];
      }
    }
    div[b] += tr;
  }
  return 0;
}

static int lm_vjp(void *sv, double t, size_t B, size_t K, const double *z, const double *theta,
                  const double *a, const double *w, const double *v, double *dz, double *gz,
                  double *gth) {
  linmlp *s = sv;
  const size_t D = s->D;
  int rc = cnf_dyn_vjp(s->g, t, B, K, z, theta + D * D + D, a, w, v, dz,
                       gz, gth ? gth + D * D + D : NULL);
  if (rc != 0) return rc;
  if (dz != NULL) linear_add(D, B, z, theta, dz);
  const double *A = theta;
  for (size_t b = 0; b < B; b++) /* gz += A^T a */
    for (size_t j = 0; j < D; j++) {
      double g = 0.0;
      for (size_t i = 0; i < D; i++) g += A[i * D + j] * a[b * D + i];
      gz[b * D + j] += g;
    }
  if (gth == NULL) return 0;
  double *gA = gth, *gc = gth + D * D;
  for (size_t b = 0; b < B; b++) {
    const double *ab = a + b * D, *zb = z + b * D;
    for (size_t i = 0; i < D; i++) {
      gc[i] += ab[i];
      for (size_t j = 0; j < D; j++) gA[i * D + j] += ab[i] * zb[j];
    }
    if (w == NULL) continue;
    for (size_t i = 0; i < D; i++) {
      if (v == NULL) {
        gA[i * D + i] += w[b];
        continue;
      }
      for (size_t k = 0; k < K; k++) {
        const double *vk = v + (k * B + b) * D;
        for (size_t j = 0; j < D; j++) gA[i * D + j] += w[b] * vk[i] * vk[j];
      }
    }
  }
  return 0;
}

static int lm_reserve(void *sv, size_t B, size_t K) {
  linmlp *s = sv;
  return cnf_dyn_reserve(s->g, B, K);
}

static void lm_free(void *sv) {
  linmlp *s = sv;
  cnf_dyn_free(s->g);
  free(s);
}

static const cnf_dyn_type linmlp_type = {.name = "linmlp",
                                         .f = lm_f,
                                         .f_div = lm_f_div,
                                         .vjp = lm_vjp,
                                         .reserve = lm_reserve,
                                         .free = lm_free};

static int lm_create(cnf_dyn **out, cnf_ctx *ctx, size_t D, const char *config, void *user) {
  (void)user;
  linmlp *s = calloc(1, sizeof *s);
  if (s == NULL) return CNF_ENOMEM;
  s->D = D;
  cnf_mlp_config_default(&s->cfg, D);
  if (cnf_mlp_parse_hidden(&s->cfg, config[0] ? config : "16-16") != 0) {
    free(s);
    return CNF_EINVAL;
  }
  int rc = cnf_dyn_mlp_create(&s->g, ctx, &s->cfg);
  if (rc != 0) {
    free(s);
    return rc;
  }
  rc = cnf_dyn_create(out, ctx, &linmlp_type, s, 1, D, D * D + D + cnf_dyn_param_count(s->g));
  if (rc != 0) lm_free(s);
  return rc;
}

/* A = -0.1 I (a gentle contraction), c = 0, the network's own
 * initialisation for theta_g. */
static int lm_init(const cnf_dyn *dyn, uint64_t seed, double *theta, void *user) {
  (void)user;
  const linmlp *s = cnf_dyn_state(dyn);
  const size_t D = s->D;
  memset(theta, 0, (D * D + D) * sizeof(double));
  for (size_t i = 0; i < D; i++) theta[i * D + i] = -0.1;
  return cnf_mlp_init_params(&s->cfg, seed, theta + D * D + D);
}

static const cnf_field_class linmlp_class = {"linmlp", lm_create, lm_init, NULL};

/* ---- the two programs ------------------------------------------------------- */

static const double points[8 * 2] = {0.0, 0.0,  2.0, 0.0,  1.4, 1.4,  -2.0, 0.3,
                                     0.5, -2.1, -1.3, -1.5, 3.0, 3.0,  0.2, 1.0};

static int draw_8gaussians(void *user, uint64_t seed, size_t B, size_t D, double *x) {
  (void)user, (void)D;
  return cnf_toy_sample("8gaussians", B, seed, x);
}

static int fail(cnf_ctx *ctx, const char *what) {
  fprintf(stderr, "field_flow: %s: %s\n", what, ctx ? cnf_ctx_errmsg(ctx) : "");
  return 1;
}

static int train(cnf_ctx *ctx, const char *model_path, const char *points_path) {
  cnf_model_spec spec;
  cnf_model_spec_default(&spec, "field:linmlp", 2);
  spec.config = "16-16";
  cnf_model *m = NULL;
  if (cnf_model_create(&m, ctx, &spec, 1) != 0) return fail(ctx, "create");
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  fo.iters = 150, fo.batch = 200, fo.seed = 1;
  fo.train.lr = 5e-3;
  cnf_fit_data data = {NULL, 0, 2, draw_8gaussians, NULL};
  cnf_fit_result res;
  double nll0 = 0.0, nll1 = 0.0, test[2000 * 2];
  cnf_toy_sample("8gaussians", 2000, 99, test);
  if (cnf_model_nll(m, &fo.eval_opt, 2000, test, &nll0, NULL) != 0) return fail(ctx, "nll");
  if (cnf_fit(m, &data, &fo, &res) != 0) return fail(ctx, "fit");
  if (cnf_model_nll(m, &fo.eval_opt, 2000, test, &nll1, NULL) != 0) return fail(ctx, "nll");
  printf("trained %ld steps: held-out NLL %.4f -> %.4f (T %.4f)\n", res.iteration, nll0, nll1,
         cnf_flow_end_time(cnf_model_flow(m), 0));
  if (cnf_model_save(m, model_path) != 0) return fail(ctx, "save");
  double lp[8];
  if (cnf_model_logp(m, &fo.eval_opt, 8, points, lp, NULL) != 0) return fail(ctx, "logp");
  FILE *f = fopen(points_path, "w");
  if (f == NULL) return fail(NULL, points_path);
  for (int i = 0; i < 8; i++) fprintf(f, "%a\n", lp[i]);
  fclose(f);
  cnf_model_free(m);
  return nll1 < nll0 - 0.5 ? 0 : fail(NULL, "training did not lower the NLL by 0.5");
}

static int check(cnf_ctx *ctx, const char *model_path, const char *points_path) {
  cnf_model *m = NULL;
  if (cnf_model_load(&m, ctx, model_path) != 0) return fail(ctx, "load");
  cnf_options opt;
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  opt = fo.eval_opt;
  double lp[8], want[8];
  FILE *f = fopen(points_path, "r");
  if (f == NULL) return fail(NULL, points_path);
  int ok = 1;
  for (int i = 0; i < 8; i++) ok &= fscanf(f, "%la", &want[i]) == 1;
  fclose(f);
  if (!ok) return fail(NULL, "cannot read the stored log-densities");
  if (cnf_model_logp(m, &opt, 8, points, lp, NULL) != 0) return fail(ctx, "logp");
  int same = memcmp(lp, want, sizeof lp) == 0;
  printf("loaded %s (%s, %zu parameters): log p of 8 points %s\n", model_path,
         cnf_model_name(m), cnf_model_param_count(m), same ? "identical" : "DIFFERENT");
  /* the density integrates to 1: midpoint rule over [-L, L]^2 */
  const size_t G = 400;
  const double L = 7.0, h = 2 * L / (double)G;
  double *x = malloc(G * G * 2 * sizeof(double)), *g = malloc(G * G * sizeof(double));
  if (x == NULL || g == NULL) return fail(NULL, "out of memory");
  for (size_t i = 0; i < G; i++)
    for (size_t j = 0; j < G; j++) {
      x[2 * (i * G + j)] = -L + h * ((double)j + 0.5);
      x[2 * (i * G + j) + 1] = -L + h * ((double)i + 0.5);
    }
  if (cnf_model_logp(m, &opt, G * G, x, g, NULL) != 0) return fail(ctx, "grid logp");
  double mass = 0.0;
  for (size_t k = 0; k < G * G; k++) mass += exp(g[k]) * h * h;
  printf("integral of p over [-%g, %g]^2 (%zu x %zu midpoints): %.6f\n", L, L, G, G, mass);
  free(x), free(g);
  /* the gradient of training, through this file's vjp and the adjoint */
  cnf_options tight;
  cnf_options_default(&tight);
  tight.rtol = tight.atol = 1e-10, tight.max_steps = 1000000;
  cnf_gradcheck_result gc;
  if (cnf_model_gradcheck(m, &tight, 8, points, 3, (size_t)-1, 1e-5, NULL, NULL, &gc) != 0)
    return fail(ctx, "gradcheck");
  printf("gradcheck: %zu of %zu parameters, largest relative error %.1e (end time %.1e)\n",
         gc.checked, gc.P, gc.worst_param, gc.worst_T);
  cnf_model_free(m);
  return same && fabs(mass - 1.0) <= 1e-3 && gc.worst_param < 1e-5 && gc.worst_T < 1e-5 ? 0 : 1;
}

int main(int argc, char **argv) {
  if (argc != 4 || (strcmp(argv[1], "train") != 0 && strcmp(argv[1], "check") != 0)) {
    fprintf(stderr, "usage: field_flow train|check MODEL POINTS\n");
    return 2;
  }
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0 || cnf_ctx_register_field(ctx, &linmlp_class) != 0)
    return fail(ctx, "context");
  int rc = strcmp(argv[1], "train") == 0 ? train(ctx, argv[2], argv[3])
                                         : check(ctx, argv[2], argv[3]);
  cnf_ctx_free(ctx);
  return rc;
}
