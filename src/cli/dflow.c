/* dflow.c: discrete flows (cnf_layers.h) in the `cnf` tool.
 *
 *   cnf init  --flow realnvp|nice|maf|iaf|planar|radial|affine|elementwise ...
 *   cnf train --flow ...      (--flow cnf, or none, is the continuous flow)
 *   cnf logp | sample | eval | plot --model MODEL ...   for a stack model
 *
 * init and train take --flow out of argv and come here for a discrete flow;
 * logp, sample, eval and plot come here when the model file holds a stack
 * (a `flow=` key in its header).  The solver options of those commands are
 * accepted and ignored, so one command line serves every flow type. */
#define _POSIX_C_SOURCE 200809L
#include "dflow.h"

/* Failed steps in a row after which train stops (as for CNFs). */
#define DFLOW_MAX_FAILED 10

#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cnf.h"
#include "cnf_layers.h"

static int known_flow(const char *f) {
  if (strcmp(f, "cnf") == 0) return 1;
  for (const char *const *p = cnf_stack_preset_names(); *p; p++)
    if (strcmp(*p, f) == 0) return 1;
  return 0;
}

int cnf__cli_take_flow(const char *cmd, int *argc, char **argv, const char **flow) {
  *flow = NULL;
  for (int i = 0; i < *argc; i++) {
    int words = 0;
    const char *v = NULL;
    if (strcmp(argv[i], "--flow") == 0) {
      if (i + 1 >= *argc) {
        cnf__cli_error(cmd,
                       "option --flow needs a value (cnf|realnvp|nice|maf|iaf|planar|radial|"
                       "affine|elementwise)");
        return CNF_CLI_EUSAGE;
      }
      v = argv[i + 1], words = 2;
    } else if (strncmp(argv[i], "--flow=", 7) == 0) {
      v = argv[i] + 7, words = 1;
    } else {
      continue;
    }
    if (*flow != NULL) {
      cnf__cli_error(cmd, "option --flow given more than once");
      return CNF_CLI_EUSAGE;
    }
    if (!known_flow(v)) {
      cnf__cli_error(cmd,
                     "--flow: expected cnf, realnvp, nice, maf, iaf, planar, radial, affine "
                     "or elementwise, found '%s'",
                     v);
      return CNF_CLI_EUSAGE;
    }
    *flow = v;
    for (int j = i; j + words < *argc; j++) argv[j] = argv[j + words];
    *argc -= words;
    i--;
  }
  return -1;
}

int cnf__cli_model_is_stack(int argc, char **argv) {
  for (int i = 0; i < argc; i++) {
    const char *v = NULL;
    if (strcmp(argv[i], "--model") == 0 && i + 1 < argc)
      v = argv[i + 1];
    else if (strncmp(argv[i], "--model=", 8) == 0)
      v = argv[i] + 8;
    if (v != NULL) return cnf_model_file_is_stack(v) == 1;
  }
  return 0;
}

int cnf__cli_parse_widths(const char *s, size_t *n, size_t *w) {
  *n = 0;
  const char *p = s;
  while (*p) {
    char *end = NULL;
    if (*p < '0' || *p > '9') return -1;
    unsigned long v = strtoul(p, &end, 10);
    if (v == 0 || v > 100000 || *n >= CNF_MAX_HIDDEN) return -1;
    w[(*n)++] = v;
    if (*end == '-')
      end++;
    else if (*end != '\0')
      return -1;
    p = end;
  }
  return *n > 0 ? 0 : -1;
}

int cnf__cli_load_data(const char *cmd, const char *spec, size_t n, uint64_t seed, double **x,
                       size_t *N, size_t *D, int *toy) {
  *x = NULL;
  *toy = cnf__cli_is_toy(spec);
  if (*toy) {
    int status = CNF_CLI_OK;
    *x = cnf__cli_alloc(cmd, n, 2, "data", &status);
    if (*x == NULL) return status;
    cnf_toy_sample(spec, n, seed, *x);
    *N = n, *D = 2;
    return CNF_CLI_OK;
  }
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0) return CNF_CLI_EFAIL;
  double *rows = NULL;
  size_t r = 0, c = 0;
  int status = cnf__cli_read_points(cmd, ctx, spec, 0, "", &rows, &r, &c);
  if (status == CNF_CLI_OK) {
    *x = malloc(r * c * sizeof(double));
    if (*x == NULL) {
      cnf__cli_error(cmd, "out of memory for %zu x %zu data", r, c);
      status = CNF_CLI_EFAIL;
    } else {
      memcpy(*x, rows, r * c * sizeof(double));
      *N = r, *D = c;
    }
  }
  cnf_free(rows);
  cnf_ctx_free(ctx);
  return status;
}

static int open_stack(const char *cmd, const char *path, cnf_ctx **ctx, cnf_stack **s) {
  *s = NULL;
  if (cnf_ctx_create(ctx) != 0) {
    cnf__cli_error(cmd, "cannot create a library context");
    return CNF_CLI_EFAIL;
  }
  int rc = cnf_stack_load(s, *ctx, path);
  return rc == 0 ? CNF_CLI_OK : cnf__cli_lib_fail(cmd, *ctx, rc, 1);
}

size_t cnf__cli_default_blocks(const char *flow) {
  if (strcmp(flow, "planar") == 0 || strcmp(flow, "radial") == 0) return 16;
  if (strcmp(flow, "affine") == 0) return 1;
  if (strcmp(flow, "elementwise") == 0) return 2;
  return 4;
}

typedef struct dflow_args {
  run_args a;
  const char *flow;
  size_t blocks;
  size_t nh, hidden[CNF_MAX_HIDDEN];
} dflow_args;

static int make_stack(const char *cmd, dflow_args *d, size_t D, cnf_ctx *ctx, cnf_stack **s) {
  if (d->a.hidden != NULL && cnf__cli_parse_widths(d->a.hidden, &d->nh, d->hidden) != 0) {
    cnf__cli_error(cmd,
                   "--hidden: expected widths such as 64-64 (1 to %d layers of 1 to 100000), "
                   "found '%s'",
                   CNF_MAX_HIDDEN, d->a.hidden);
    return CNF_CLI_EUSAGE;
  }
  if (d->a.hidden == NULL) d->nh = 2, d->hidden[0] = d->hidden[1] = 64;
  size_t K = d->a.blocks ? d->a.blocks : cnf__cli_default_blocks(d->flow);
  int rc = cnf_stack_preset(s, ctx, d->flow, D, K, d->nh, d->hidden, d->a.seed);
  return rc == 0 ? CNF_CLI_OK : cnf__cli_lib_fail(cmd, ctx, rc, 0);
}

#define FLOW_ROWS(d)                                                                         \
  ROW("blocks", 0, CNF_CLI_SIZE, &(d).a.blocks, 1, 1000, NULL, 0, "K",                       \
      "blocks (realnvp, nice, maf, iaf: 4; planar, radial: 16; affine: 1; elementwise: 2)"), \
      ROW("hidden", 0, CNF_CLI_STR, &(d).a.hidden, 0, 0, NULL, 0, "H1-H2-...",               \
          "conditioner hidden widths (64-64)")

int cnf__cli_dflow_init(const char *flow, int argc, char **argv, size_t threads) {
  const char *cmd = "init";
  dflow_args d;
  memset(&d, 0, sizeof d);
  cnf__cli_args_default(&d.a);
  d.a.blocks = 0;
  d.flow = flow;
  const cnf_cli_opt opts[] = {
      ROW("dim", 0, CNF_CLI_SIZE, &d.a.dim, 1, 100000, NULL, 1, "D", "data dimension D"),
      FLOW_ROWS(d),
      ROW("seed", 0, CNF_CLI_U64, &d.a.seed, 0, 0, NULL, 0, "S", "seed of the parameters (0)"),
      ROW("out", 0, CNF_CLI_STR, &d.a.out, 0, 0, NULL, 1, "MODEL", "model file to write"),
      ROW("threads", 0, CNF_CLI_SIZE, &d.a.threads, 1, 1024, NULL, 0, "N", "OpenBLAS threads (1)"),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf init --flow FLOW --dim D --out MODEL [options]",
      "Create a discrete flow (cnf_layers.h) and save it as a model file."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &d.a.threads, threads);
  if (status >= 0) return status;
  cnf_ctx *ctx = NULL;
  cnf_stack *s = NULL;
  if (cnf_ctx_create(&ctx) != 0) return CNF_CLI_EFAIL;
  status = make_stack(cmd, &d, d.a.dim, ctx, &s);
  if (status == CNF_CLI_OK) {
    int rc = cnf_stack_save(s, d.a.out);
    if (rc != 0) status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
  }
  cnf_stack_free(s);
  cnf_ctx_free(ctx);
  return status;
}

static volatile sig_atomic_t stop_signal = 0;
static void on_stop(int sig) {
  stop_signal = sig;
}

int cnf__cli_dflow_train(const char *flow, int argc, char **argv, size_t threads) {
  const char *cmd = "train";
  dflow_args d;
  memset(&d, 0, sizeof d);
  cnf__cli_args_default(&d.a);
  run_args *a = &d.a;
  a->blocks = 0, a->iters = 1000, a->minibatch = 256, a->log_every = 100;
  d.flow = flow;
  const cnf_cli_opt opts[] = {
      ROW("data", 0, CNF_CLI_STR, &a->data, 0, 0, NULL, 1, "NAME|FILE.csv",
          "a toy set name (fresh samples every step) or a CSV file of training rows"),
      ROW("out", 0, CNF_CLI_STR, &a->out, 0, 0, NULL, 1, "MODEL", "model file to write"),
      ROW("val", 0, CNF_CLI_STR, &a->val, 0, 0, NULL, 0, "FILE.csv",
          "rows whose NLL is reported at the end"),
      ROW("iters", 0, CNF_CLI_SIZE, &a->iters, 1, (size_t)1 << 40, NULL, 0, "N",
          "training steps (1000)"),
      ROW("batch", 0, CNF_CLI_SIZE, &a->minibatch, 1, 1000000, NULL, 0, "B", "minibatch (256)"),
      ROW("lr", 0, CNF_CLI_POS, &a->train.lr, 0, 0, NULL, 0, "LR", "Adam step size (1e-3)"),
      ROW("weight-decay", 0, CNF_CLI_NONNEG, &a->train.weight_decay, 0, 0, NULL, 0, "W",
          "L2 weight decay (1e-5)"),
      ROW("seed", 0, CNF_CLI_U64, &a->seed, 0, 0, NULL, 0, "S",
          "seed of the parameters and minibatches (0)"),
      ROW("standardize", 0, CNF_CLI_FLAG, &a->standardize, 0, 0, NULL, 0, "",
          "model (x - mean) / sd; densities stay in the units of x"),
      ROW("log-every", 0, CNF_CLI_SIZE, &a->log_every, 1, (size_t)1 << 40, NULL, 0, "K",
          "log line every K steps (100)"),
      ROW("test-n", 0, CNF_CLI_SIZE, &a->test_n, 0, 10000000, NULL, 0, "N",
          "toy sets: report the NLL of N fresh samples at the end (0: none)"),
      FLOW_ROWS(d),
      SOLVER_ROWS(*a),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf train --flow FLOW --data NAME|FILE.csv --out MODEL [options]",
      "Train a discrete flow by maximum likelihood with Adam (exact gradients by one reverse\n"
      "sweep through the layers).  actnorm layers are initialised from the first 1000 rows.\n"
      "Ctrl-C saves and stops.  Solver options are accepted and ignored."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a->threads, threads);
  if (status >= 0) return status;
  cnf_ctx *ctx = NULL;
  cnf_stack *s = NULL;
  double *data = NULL, *xb = NULL, *val = NULL, *lp = NULL;
  size_t N = 0, D = 0, *idx = NULL;
  int toy = 0;
  if (cnf_ctx_create(&ctx) != 0) return CNF_CLI_EFAIL;
  status = cnf__cli_load_data(cmd, a->data, 20000, a->seed ^ 0x5eedULL, &data, &N, &D, &toy);
  if (status != CNF_CLI_OK) goto cleanup;
  if (!toy && a->minibatch > N) a->minibatch = N;
  status = make_stack(cmd, &d, D, ctx, &s);
  if (status != CNF_CLI_OK) goto cleanup;
  int rc = 0;
  if (a->standardize) {
    double *m = malloc(D * sizeof(double)), *sd = malloc(D * sizeof(double));
    rc = m && sd ? 0 : CNF_ENOMEM;
    if (rc == 0) cnf__cli_moments(data, N, D, m, sd), rc = cnf_stack_set_standardization(s, m, sd);
    free(m), free(sd);
    if (rc != 0) {
      cnf__cli_error(cmd, "--standardize: %s", rc == CNF_ENOMEM ? "out of memory"
                                                                 : cnf_ctx_errmsg(ctx));
      status = CNF_CLI_EFAIL;
      goto cleanup;
    }
  }
  rc = cnf_stack_init_data(s, N < 1000 ? N : 1000, data);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  xb = cnf__cli_alloc(cmd, a->minibatch, D, "minibatch", &status);
  if (xb == NULL) goto cleanup;
  idx = malloc(a->minibatch * sizeof(size_t));
  if (idx == NULL) {
    cnf__cli_error(cmd, "out of memory for the minibatch indices");
    status = CNF_CLI_EFAIL;
    goto cleanup;
  }
  stop_signal = 0;
  void (*old_int)(int) = signal(SIGINT, on_stop);
  void (*old_term)(int) = signal(SIGTERM, on_stop);
  double t0 = cnf__cli_now(), loss = NAN, avg = 0.0;
  size_t it = 0, navg = 0, failed_in_a_row = 0;
  for (it = 1; it <= a->iters && !stop_signal; it++) {
    if (toy) {
      cnf_toy_sample(a->data, a->minibatch, a->seed ^ ((uint64_t)it * 0x9e3779b97f4a7c15ULL), xb);
    } else {
      cnf_train_batch_indices(a->seed, (long)it, N, a->minibatch, idx);
      for (size_t b = 0; b < a->minibatch; b++)
        memcpy(xb + b * D, data + idx[b] * D, D * sizeof(double));
    }
    rc = cnf_stack_train_step(s, &a->train, a->minibatch, xb, &loss, NULL);
    if (rc != 0) {
      fprintf(stderr, "cnf train: step %zu failed: %s (parameters kept)\n", it,
              cnf_ctx_errmsg(ctx));
      if (++failed_in_a_row >= DFLOW_MAX_FAILED) {
        cnf__cli_error(cmd, "%d steps in a row failed; stopping (the model is saved as it was "
                            "before them)", DFLOW_MAX_FAILED);
        status = CNF_CLI_ESOLVER;
        break;
      }
      continue;
    }
    failed_in_a_row = 0;
    avg += loss, navg++;
    if (it % a->log_every == 0 || it == a->iters) {
      fprintf(stderr, "iter %zu loss %.6f mean %.6f elapsed %.2fs\n", it, loss,
              navg ? avg / (double)navg : NAN, cnf__cli_now() - t0);
      avg = 0.0, navg = 0;
    }
  }
  signal(SIGINT, old_int);
  signal(SIGTERM, old_term);
  double secs = cnf__cli_now() - t0;
  rc = cnf_stack_save(s, a->out);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  if (status != CNF_CLI_OK) goto cleanup; /* too many failed steps: saved, reported */
  printf("flow %s\nparams %zu\niters %zu\nloss %.10g\nseconds_per_iter %.6g\n", d.flow,
         cnf_stack_param_count(s), it - 1, loss, secs / (double)(it > 1 ? it - 1 : 1));
  size_t nv = 0, cols = 0;
  if (a->val != NULL) {
    status = cnf__cli_read_points(cmd, ctx, a->val, D, "the data's dimension", &val, &nv, &cols);
    if (status != CNF_CLI_OK) goto cleanup;
  } else if (toy && a->test_n > 0) {
    nv = a->test_n;
    val = cnf__cli_alloc(cmd, nv, 2, "test samples", &status);
    if (val == NULL) goto cleanup;
    cnf_toy_sample(a->data, nv, a->seed ^ 0x7e57ULL, val);
  }
  if (val != NULL && nv > 0) {
    lp = malloc(nv * sizeof(double));
    if (lp == NULL) {
      cnf__cli_error(cmd, "cannot evaluate the held-out rows");
      status = CNF_CLI_EFAIL;
      goto cleanup;
    }
    rc = cnf_stack_logp(s, nv, val, lp);
    if (rc != 0) { /* a non-finite log-density exits 3, as in logp and eval */
      status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
      goto cleanup;
    }
    double nll = 0.0;
    for (size_t i = 0; i < nv; i++) nll -= lp[i] / (double)nv;
    printf("%s %.10g\n", a->val ? "val_nll" : "test_nll", nll);
  }
  if (stop_signal) status = 128 + (int)stop_signal;
cleanup:
  free(data), free(xb), free(idx), free(lp);
  if (a->val)
    cnf_free(val);
  else
    free(val);
  cnf_stack_free(s);
  cnf_ctx_free(ctx);
  return status;
}

/* logp, sample, eval and plot of a stack */
int cnf__cli_dflow_run(const char *cmd, int argc, char **argv, size_t threads) {
  run_args a;
  cnf__cli_args_default(&a);
  int is_logp = strcmp(cmd, "logp") == 0, is_sample = strcmp(cmd, "sample") == 0;
  int is_eval = strcmp(cmd, "eval") == 0, is_plot = strcmp(cmd, "plot") == 0;
  a.size = 200;
  a.n = is_plot ? 2000 : 0;
  a.dims = 6;
  a.range = 4;
  const cnf_cli_opt common[] = {
      ROW("model", 0, CNF_CLI_STR, &a.model, 0, 0, NULL, 1, "MODEL", "model file"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S", "seed of the base samples (0)"),
      ROW("in", 0, CNF_CLI_STR, &a.in, 0, 0, NULL, is_logp || is_eval, "X.csv",
          "points, one per row, D columns, optional header; '-' reads stdin"),
      ROW("out", 0, CNF_CLI_STR, &a.out, 0, 0, NULL, is_plot, "FILE",
          "output file (standard output)"),
      ROW("samples", 'n', CNF_CLI_SIZE, &a.n, 1, 100000000, NULL, is_sample, "N", "samples"),
      ROW("range", 0, CNF_CLI_POS, &a.range, 0, 0, NULL, 0, "L", "plot, 2-D: over [-L, L]^2 (4)"),
      ROW("grid", 0, CNF_CLI_SIZE, &a.size, 2, 4096, NULL, 0, "G", "plot, 2-D: G x G pixels (200)"),
      ROW("data", 0, CNF_CLI_STR, &a.data, 0, 0, NULL, 0, "NAME|FILE.csv", "plot: data to overlay"),
      ROW("dims", 0, CNF_CLI_SIZE, &a.dims, 1, 64, NULL, 0, "K",
          "plot above 2-D: first K coordinates (6)"),
      SOLVER_ROWS(a),
      END_ROW};
  const cnf_cli_usage usage = {"cnf logp|sample|eval|plot --model MODEL [options]",
                               "The command on a discrete flow's model file (as for a CNF)."};
  int status = cnf__cli_begin(cmd, common, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  cnf_ctx *ctx = NULL;
  cnf_stack *s = NULL;
  double *x = NULL, *lp = NULL, *table = NULL, *data = NULL;
  const char **names = NULL;
  size_t rows = 0, cols = 0, nd = 0, Dd = 0;
  int toy = 0;
  status = open_stack(cmd, a.model, &ctx, &s);
  if (status != CNF_CLI_OK) goto cleanup;
  const size_t D = cnf_stack_dim(s);
  cnf_stack_seed(s, a.seed);
  int rc = 0;
  if (is_logp || is_eval) {
    status = cnf__cli_read_points(cmd, ctx, a.in, D, "the model's dimension", &x, &rows, &cols);
    if (status != CNF_CLI_OK) goto cleanup;
    lp = cnf__cli_alloc(cmd, rows, 1, "log-densities", &status);
    if (lp == NULL) goto cleanup;
    double t0 = cnf__cli_now();
    rc = cnf_stack_logp(s, rows, x, lp);
    if (rc != 0) goto fail;
    if (is_logp) {
      const char *const nm[] = {"logp"};
      status = cnf__cli_write_table(cmd, ctx, a.out, nm, rows, 1, lp);
    } else {
      double nll = 0.0;
      for (size_t i = 0; i < rows; i++) nll -= lp[i] / (double)rows;
      printf("nll %.10g\n", nll);
      fprintf(stderr, "rows %zu\nwall_seconds %.6f\n", rows, cnf__cli_now() - t0);
    }
  } else if (is_sample) {
    const size_t N = a.n;
    if ((table = cnf__cli_alloc(cmd, N, D + 1, "samples", &status)) == NULL ||
        (x = cnf__cli_alloc(cmd, N, D, "samples", &status)) == NULL ||
        (lp = cnf__cli_alloc(cmd, N, 1, "samples", &status)) == NULL)
      goto cleanup;
    rc = cnf_stack_sample(s, N, x, lp);
    if (rc != 0) goto fail;
    for (size_t i = 0; i < N; i++) {
      memcpy(table + i * (D + 1), x + i * D, D * sizeof(double));
      table[i * (D + 1) + D] = lp[i];
    }
    if ((names = cnf__cli_column_names(D, "logp")) == NULL) {
      status = CNF_CLI_EFAIL;
      goto cleanup;
    }
    status = cnf__cli_write_table(cmd, ctx, a.out, names, N, D + 1, table);
  } else if (is_plot) {
    if (a.data != NULL) {
      status = cnf__cli_load_data(cmd, a.data, a.n, a.seed, &data, &nd, &Dd, &toy);
      if (status != CNF_CLI_OK) goto cleanup;
      if (Dd != D) {
        cnf__cli_error(cmd, "--data %s has %zu columns; the model is %zu-D", a.data, Dd, D);
        status = CNF_CLI_EUSAGE;
        goto cleanup;
      }
    }
    if (D == 2) {
      const size_t G = a.size;
      x = cnf__cli_alloc(cmd, G * G, 2, "grid", &status);
      lp = x ? cnf__cli_alloc(cmd, G * G, 1, "grid", &status) : NULL;
      if (lp == NULL) goto cleanup;
      cnf_plot_grid(a.range, G, x);
      rc = cnf_stack_logp(s, G * G, x, lp);
      if (rc == 0) rc = cnf_plot_heatmaps(ctx, 1, G, lp, a.range, data, nd, a.out);
    } else {
      x = cnf__cli_alloc(cmd, a.n, D, "samples", &status);
      if (x == NULL) goto cleanup;
      rc = cnf_stack_sample(s, a.n, x, NULL);
      if (rc == 0) rc = cnf_plot_pairs_of(ctx, x, a.n, D, a.dims, data, nd, a.out);
    }
    if (rc != 0) goto fail;
  }
  goto cleanup;
fail:
  status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
cleanup:
  if (is_logp || is_eval)
    cnf_free(x);
  else
    free(x);
  free(lp), free(table), free(data);
  free((void *)names);
  cnf_stack_free(s);
  cnf_ctx_free(ctx);
  return status;
}

int cnf__cli_flow_dispatch(const char *cmd, int *argc, char **argv, size_t threads) {
  const char *flow = NULL;
  int status = cnf__cli_take_flow(cmd, argc, argv, &flow);
  if (status >= 0 || flow == NULL || strcmp(flow, "cnf") == 0) return status;
  return strcmp(cmd, "init") == 0 ? cnf__cli_dflow_init(flow, *argc, argv, threads)
                                  : cnf__cli_dflow_train(flow, *argc, argv, threads);
}
