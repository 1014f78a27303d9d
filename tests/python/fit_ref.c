/* fit_ref.c: the C side of tests/python/test_fit.py: one cnf_fit run with
 * the settings `cnf train` and cnf.fit use by default, from a saved model.
 *
 *     fit_ref MODEL_IN DATA ITERS BATCH LR SEED MODEL_OUT
 *
 * DATA is a toy set's name or a .npy file of rows.  Writes the trained
 * model to MODEL_OUT and prints the run's running loss and the last
 * step's loss as exact hexadecimal floats ("%a %a"), which the Python
 * test compares bit for bit with cnf.fit's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf_model.h"

static int draw_toy(void *user, uint64_t seed, size_t B, size_t D, double *x) {
  (void)D;
  return cnf_toy_sample((const char *)user, B, seed, x);
}

static int last_loss(void *user, const cnf_fit_report *rep) {
  *(double *)user = rep->loss;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 8) {
    fprintf(stderr, "usage: fit_ref MODEL_IN DATA ITERS BATCH LR SEED MODEL_OUT\n");
    return 2;
  }
  cnf_ctx *ctx = NULL;
  cnf_model *m = NULL;
  double *rows = NULL;
  int rc = cnf_ctx_create(&ctx);
  if (rc == 0) rc = cnf_model_load(&m, ctx, argv[1]);
  size_t N = 0, D = 0;
  cnf_fit_data data = {NULL, 0, 2, draw_toy, argv[2]};
  if (rc == 0 && cnf_npy_path(argv[2])) {
    rc = cnf_npy_read(ctx, argv[2], &rows, &N, &D);
    data = (cnf_fit_data){rows, N, D, NULL, NULL};
  }
  double loss = 0.0;
  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  fo.iters = atol(argv[3]);
  fo.batch = (size_t)atol(argv[4]);
  fo.train.lr = atof(argv[5]);
  fo.seed = strtoull(argv[6], NULL, 10);
  fo.opt.trace = m != NULL ? cnf_trace_for_dim(cnf_model_dim(m)) : CNF_TRACE_EXACT;
  fo.callback = last_loss;
  fo.user = &loss;
  cnf_fit_result res;
  if (rc == 0) rc = cnf_fit(m, &data, &fo, &res);
  if (rc == 0) rc = cnf_model_save(m, argv[7]);
  if (rc == 0)
    printf("%a %a\n", res.loss_avg, loss);
  else
    fprintf(stderr, "fit_ref: %s\n", cnf_ctx_errmsg(ctx));
  cnf_free(rows);
  cnf_model_free(m);
  cnf_ctx_free(ctx);
  return rc == 0 ? 0 : 1;
}
