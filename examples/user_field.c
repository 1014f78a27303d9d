/* user_field.c: a velocity field of your own in the CNF machinery.
 * v(x) = A x, A = [[-a, -w], [w, -a]] (a spiral sink) with its exact
 * divergence -2a; p0 = N(0, I) becomes p_t = N(0, e^{-2at} I).  The
 * density along the trajectories, at 5 times of one solve, is checked
 * against that closed form.  Without f_div the library would take the
 * trace by differences of f (cnf_dynamics.h). */
#include <math.h>
#include <stdio.h>

#include <cnf_dynamics.h>

typedef struct spiral { double a, w; } spiral;

static int spiral_f(void *s, double t, size_t B, const double *z, const double *theta,
                    double *dz) {
  const spiral *p = s;
  (void)t, (void)theta;
  for (size_t b = 0; b < B; b++) {
    dz[2 * b] = -p->a * z[2 * b] - p->w * z[2 * b + 1];
    dz[2 * b + 1] = p->w * z[2 * b] - p->a * z[2 * b + 1];
  }
  return 0;
}

static int spiral_f_div(void *s, double t, size_t B, size_t K, const double *z,
                        const double *theta, const double *v, double *dz, double *div) {
  (void)K, (void)v; /* exact whatever the probes: this field knows its trace */
  for (size_t b = 0; b < B; b++) div[b] = -2.0 * ((const spiral *)s)->a;
  return spiral_f(s, t, B, z, theta, dz);
}

int main(void) {
  static const cnf_dyn_type type = {.name = "spiral", .f = spiral_f, .f_div = spiral_f_div};
  spiral sp = {0.3, 2.0};
  cnf_ctx *ctx;
  cnf_dyn *dyn;
  if (cnf_ctx_create(&ctx) || cnf_dyn_create(&dyn, ctx, &type, &sp, 0, 2, 0)) return 1;
  double x[3 * 2] = {1.0, 0.0, -0.5, 2.0, 0.3, -1.2}, delta[3] = {0}, lp0[3];
  double tout[5] = {0.25, 0.5, 1.0, 1.5, 2.0}, xs[5 * 3 * 2], ds[5 * 3], worst = 0.0;
  for (int b = 0; b < 3; b++) lp0[b] = cnf_log_normal(x + 2 * b, 2);
  cnf_options opt;
  cnf_options_default(&opt);
  opt.rtol = opt.atol = 1e-10;
  if (cnf_dyn_solve_times(dyn, NULL, &opt, 0.0, 5, tout, 3, 0, NULL, x, delta, xs, ds, NULL)) {
    fprintf(stderr, "%s\n", cnf_ctx_errmsg(ctx));
    return 1;
  }
  for (int k = 0; k < 5; k++)
    for (int b = 0; b < 3; b++) {
      const double *xt = xs + (k * 3 + b) * 2, s2 = exp(-2 * sp.a * tout[k]);
      double exact = -(xt[0] * xt[0] + xt[1] * xt[1]) / (2 * s2) - log(6.283185307179586 * s2);
      worst = fmax(worst, fabs(lp0[b] + ds[k * 3 + b] - exact));
    }
  printf("max |log p_t error| over 5 times and 3 points: %.2e\n", worst);
  cnf_dyn_free(dyn);
  cnf_ctx_free(ctx);
  return worst < 1e-7 ? 0 : 1; /* the solver's tolerance, amplified by |grad log p| */
}
