/* fit_toy.c: train a flow on a toy set with the library's loop, as
 * `cnf train` does, from the public headers alone.
 *
 *   fit_toy FLOW TOY ITERS SEED OUT
 *
 * FLOW is cnf or a discrete preset (realnvp, maf, ...); every other
 * setting is cnf train's default (FFJORD's toy settings for cnf: 64-64-64
 * concatsquash tanh, T = 0.5 learned, Adam 1e-3, batch 100, exact trace in
 * 2-D; batch 256 for the discrete flows), on one thread.  The model file
 * written equals, byte for byte, the one of
 *
 *   cnf --threads 1 train --flow FLOW --data TOY --iters ITERS --seed SEED --out OUT
 *
 * and the final line printed is its loss_avg line. */
#include <stdio.h>
#include <stdlib.h>

#include <cnf_model.h>

static int draw(void *user, uint64_t seed, size_t B, size_t D, double *x) {
  (void)D;
  return cnf_toy_sample((const char *)user, B, seed, x);
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: fit_toy FLOW TOY ITERS SEED OUT\n");
    return 2;
  }
  const char *flow = argv[1], *toy = argv[2], *out = argv[5];
  const long iters = atol(argv[3]);
  const uint64_t seed = strtoull(argv[4], NULL, 10);
  cnf_ctx *ctx = NULL;
  cnf_model *m = NULL;
  cnf_model_spec spec;
  cnf_model_spec_default(&spec, flow, 2);
  if (cnf_ctx_create(&ctx) != 0 || cnf_model_create(&m, ctx, &spec, seed) != 0) {
    fprintf(stderr, "fit_toy: %s\n", ctx ? cnf_ctx_errmsg(ctx) : "no context");
    return 1;
  }
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  fo.iters = iters;
  fo.seed = seed;
  fo.batch = cnf_model_kind_of(m) == CNF_MODEL_FLOW ? 100 : 256;
  fo.opt.trace = cnf_trace_for_dim(2);
  fo.state_path = out;
  cnf_fit_data data = {NULL, 0, 2, draw, (void *)toy};
  cnf_fit_result res;
  int rc = cnf_fit(m, &data, &fo, &res);
  if (rc != 0)
    fprintf(stderr, "fit_toy: %s\n", cnf_ctx_errmsg(ctx));
  else
    printf("flow %s\nparams %zu\niterations %ld\nloss_avg %.6f\n", cnf_model_name(m),
           cnf_model_param_count(m), res.iteration, res.loss_avg);
  cnf_model_free(m);
  cnf_ctx_free(ctx);
  return rc != 0;
}
