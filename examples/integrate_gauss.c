/* integrate_gauss.c: integrate the Gauss peak
 *     f(x) = (alpha sqrt pi)^-n exp(-|x - 1/2|^2 / alpha^2)   on [0, 1]^n
 * by importance sampling with the training-free linear flow, through the
 * public headers alone.  The field x' = kappa x + beta carries z ~ N(0, I)
 * to N(1/2, alpha^2/2 I), whose density is f's own shape, so every weight
 * f(x)/q(x) is 1 inside the cube and 0 outside: the estimate is the share
 * of points inside, and the exact value is erf(1/(2 alpha))^n.
 *
 *   cc integrate_gauss.c $(pkg-config --cflags --libs cnf) -o integrate_gauss
 *
 * Prints `name value` lines; exits non-zero if anything fails. */
#include <cnf_integrate.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  const size_t n = 4, N = 5000;
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0) return 1;
  cnf_integrand f = {CNF_INTEGRAND_GAUSS, n, CNF_INTEGRAND_ALPHA};
  cnf_options opt;
  cnf_options_default(&opt);
  opt.rtol = opt.atol = 1e-9;

  double *x = malloc(N * n * sizeof(double)), *logq = malloc(N * sizeof(double));
  double *w = malloc(N * sizeof(double));
  cnf_stats st;
  cnf_stats_clear(&st);
  cnf_integrate_result r;
  int rc = x && logq && w ? 0 : CNF_ENOMEM;
  /* N draws of q with their log-densities (one ODE solve), then weights */
  if (rc == 0) rc = cnf_integrate_linear(ctx, n, f.alpha, &opt, N, 1, x, logq, &st);
  if (rc == 0) rc = cnf_integrate_weights(ctx, &f, N, x, logq, w, &r);
  if (rc != 0) {
    fprintf(stderr, "integrate_gauss: %s (%s)\n", cnf_ctx_errmsg(ctx), cnf_errname(rc));
    return 1;
  }
  size_t inside = 0;
  double dev = 0.0;
  for (size_t b = 0; b < N; b++)
    if (w[b] > 0) inside++, dev = fmax(dev, fabs(w[b] - 1.0));
  printf("dim %zu\nsamples %zu\ninside %zu\n", n, N, inside);
  printf("estimate %.6f\nstderr %.6f\nexact %.6f\npull %.3f\n", r.estimate, r.std_error, r.exact,
         r.pull);
  printf("efficiency %.6f\n", r.efficiency);
  /* the weights are the indicator up to the solver's error */
  printf("weights_are_indicator %s\n", dev < 1e-6 ? "yes" : "no");
  free(x), free(logq), free(w);
  cnf_ctx_free(ctx);
  return dev < 1e-6 ? 0 : 1;
}
