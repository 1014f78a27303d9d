/* train.c: the commands that train and check flows: toy, train, eval,
 * gradcheck, plot.
 *
 * train owns the loop (the library gives single steps): minibatches, the
 * progress line or log lines, validation and best-model keeping, periodic
 * checkpoints, Ctrl-C, and recovery from a failed step.  Every model file
 * is written by the library atomically (temporary name, fsync, rename), so
 * an interrupted or crashed run leaves the last good model on disk. */
#define _POSIX_C_SOURCE 200809L
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli.h"
#include "cnf.h"
#include "dflow.h"

/* Failed steps in a row after which train gives up. */
#define MAX_FAILED_IN_A_ROW 10
/* Samples of a toy set used for standardization and for the test NLL. */
#define TOY_STD_SAMPLES 20000

static void toy_list(char *buf, size_t n) {
  size_t used = 0;
  buf[0] = '\0';
  for (const char *const *t = cnf_toy_names(); *t != NULL && used < n; t++) {
    int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "", *t);
    if (w < 0) break;
    used += (size_t)w;
  }
}

/* Mean negative log-likelihood of rows x (N, D) under opt (trace, batch). */
static int mean_nll(cnf_flow *flow, const cnf_options *opt, size_t N, const double *x, double *nll,
                    cnf_stats *st) {
  double *lp = malloc((N ? N : 1) * sizeof(double));
  if (lp == NULL) return CNF_ENOMEM;
  int rc = cnf_flow_logp(flow, opt, N, x, lp, st);
  double s = 0.0;
  for (size_t i = 0; i < N && rc == 0; i++) s -= lp[i];
  free(lp);
  *nll = s / (double)N;
  return rc;
}

/* ---- toy ----------------------------------------------------------------- */

int cnf__cli_toy(int argc, char **argv, size_t threads) {
  const char *cmd = "toy";
  run_args a;
  cnf__cli_args_default(&a);
  const cnf_cli_opt opts[] = {
      ROW("name", 0, CNF_CLI_STR, &a.name, 0, 0, NULL, 1, "NAME",
          "swissroll circles rings moons 8gaussians pinwheel 2spirals checkerboard line cos"),
      ROW("samples", 'n', CNF_CLI_SIZE, &a.n, 1, (size_t)1 << 32, NULL, 1, "N",
          "number of samples"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S", "seed (0)"),
      ROW("out", 0, CNF_CLI_STR, &a.out, 0, 0, NULL, 1, "FILE.csv", "output file, columns x1,x2"),
      END_ROW};
  const cnf_cli_usage usage = {"cnf toy --name NAME -n N [--seed S] --out FILE.csv",
                               "Write N samples of one of FFJORD's ten 2-D toy densities."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  status = CNF_CLI_OK;
  if (!cnf__cli_is_toy(a.name)) {
    char list[256];
    toy_list(list, sizeof list);
    cnf__cli_error(cmd, "--name: unknown toy set '%s' (one of %s)", a.name, list);
    return CNF_CLI_EUSAGE;
  }
  double *x = cnf__cli_alloc(cmd, a.n, 2, "samples", &status);
  if (x == NULL) return status;
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0) {
    free(x);
    cnf__cli_error(cmd, "cannot create a library context");
    return CNF_CLI_EFAIL;
  }
  int rc = cnf_toy_sample(a.name, a.n, a.seed, x);
  const char *const names[] = {"x1", "x2"};
  status = rc != 0 ? cnf__cli_lib_fail(cmd, ctx, rc, 0)
                   : cnf__cli_write_table(cmd, ctx, a.out, names, a.n, 2, x);
  free(x);
  cnf_ctx_free(ctx);
  return status;
}

/* ---- train ---------------------------------------------------------------- */

/* CPU seconds (user + system) of this process: robust to a shared machine,
 * where wall time also counts other processes' turns. */
static double cpu_seconds(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0.0;
  return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
         (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static volatile sig_atomic_t interrupted = 0; /* the signal's number */
static void on_signal(int sig) {
  interrupted = sig;
}

/* "1:02:03" or "2:03" */
static void fmt_time(double s, char *buf, size_t n) {
  if (!(s >= 0) || s > 1e7) {
    snprintf(buf, n, "?");
    return;
  }
  long t = lround(s), h = t / 3600, m = (t / 60) % 60, sec = t % 60;
  if (h > 0)
    snprintf(buf, n, "%ld:%02ld:%02ld", h, m, sec);
  else
    snprintf(buf, n, "%ld:%02ld", m, sec);
}

/* The training data: a toy generator or the rows of a file. */
typedef struct train_data {
  const char *toy; /* NULL for a file */
  double *rows;    /* (N, D) file rows */
  size_t N, D;
  size_t *idx; /* (B) minibatch indices */
} train_data;

/* Minibatch of step `iter` into x (B, D): a function of (seed, iter). */
static int draw_batch(const train_data *td, uint64_t seed, long iter, size_t B, double *x) {
  if (td->toy != NULL)
    return cnf_toy_sample(td->toy, B, seed ^ ((uint64_t)iter * 0x9e3779b97f4a7c15ULL), x);
  int rc = cnf_train_batch_indices(seed, iter, td->N, B, td->idx);
  for (size_t b = 0; b < B && rc == 0; b++)
    memcpy(x + b * td->D, td->rows + td->idx[b] * td->D, td->D * sizeof(double));
  return rc;
}

/* Column means and standard deviations of x (N, D). */
int cnf__cli_train(int argc, char **argv, size_t threads) {
  const char *cmd = "train";
  int flow_status = cnf__cli_flow_dispatch(cmd, &argc, argv, threads);
  if (flow_status >= 0) return flow_status;
  run_args a;
  cnf__cli_args_default(&a);
  a.opt.trace = (cnf_trace)-1; /* not given: exact for D <= 2, else gauss */
  a.opt.batch = 0;
  const cnf_cli_opt opts[] = {
      ROW("data", 0, CNF_CLI_STR, &a.data, 0, 0, NULL, 1, "NAME|FILE.csv",
          "a toy set name (fresh samples every step) or a CSV file of training rows"),
      ROW("out", 0, CNF_CLI_STR, &a.out, 0, 0, NULL, 1, "MODEL",
          "model file: the best on --val if given, else the latest"),
      ROW("val", 0, CNF_CLI_STR, &a.val, 0, 0, NULL, 0, "FILE.csv", "validation rows"),
      ROW("iters", 0, CNF_CLI_SIZE, &a.iters, 1, (size_t)1 << 40, NULL, 0, "N",
          "total training steps, counting those of a resumed run (1000)"),
      ROW("batch", 0, CNF_CLI_SIZE, &a.minibatch, 1, 1000000, NULL, 0, "B", "minibatch size (100)"),
      ROW("lr", 0, CNF_CLI_POS, &a.train.lr, 0, 0, NULL, 0, "LR", "Adam step size (1e-3)"),
      ROW("weight-decay", 0, CNF_CLI_NONNEG, &a.train.weight_decay, 0, 0, NULL, 0, "W",
          "L2 weight decay, added to the gradient (1e-5)"),
      ROW("adjoint", 0, CNF_CLI_CHOICE, &a.opt.adjoint, 0, 0, cnf__cli_conv_adjoint, 0,
          "backsolve|checkpoint", "adjoint variant (checkpoint)"),
      ROW("rtol-adj", 0, CNF_CLI_POS, &a.opt.rtol_adj, 0, 0, NULL, 0, "R",
          "backward relative tolerance (= --rtol)"),
      ROW("atol-adj", 0, CNF_CLI_POS, &a.opt.atol_adj, 0, 0, NULL, 0, "A",
          "backward absolute tolerance (= --atol)"),
      ROW("no-seminorm", 0, CNF_CLI_FLAG, &a.no_seminorm, 0, 0, NULL, 0, "",
          "keep a_theta in the backward error control"),
      ROW("checkpoint-steps", 0, CNF_CLI_LONG, &a.opt.checkpoint_steps, 1, 1000000, NULL, 0, "K",
          "solver steps between the checkpointed adjoint's checkpoints (100)"),
      ROW("reg-kinetic", 0, CNF_CLI_NONNEG, &a.opt.reg_kinetic, 0, 0, NULL, 0, "W",
          "RNODE: weight of the kinetic energy int |f|^2 dt (0)"),
      ROW("reg-jacobian", 0, CNF_CLI_NONNEG, &a.opt.reg_jacobian, 0, 0, NULL, 0, "W",
          "RNODE: weight of the Jacobian norm int |J eps|^2 dt (0)"),
      ROW("fixed-time", 0, CNF_CLI_FLAG, &a.fixed_time, 0, 0, NULL, 0, "",
          "do not train the end times T"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S",
          "seed of the parameters, minibatches and probes (0)"),
      ROW("resume", 0, CNF_CLI_STR, &a.resume, 0, 0, NULL, 0, "MODEL",
          "continue a run from a model saved by train (with its optimizer state)"),
      ROW("standardize", 0, CNF_CLI_FLAG, &a.standardize, 0, 0, NULL, 0, "",
          "model (x - mean) / sd; densities stay in the units of x"),
      ROW("save-every", 0, CNF_CLI_SIZE, &a.save_every, 1, (size_t)1 << 40, NULL, 0, "K",
          "checkpoint every K steps (100)"),
      ROW("val-every", 0, CNF_CLI_SIZE, &a.val_every, 1, (size_t)1 << 40, NULL, 0, "K",
          "validate every K steps (100)"),
      ROW("log-every", 0, CNF_CLI_SIZE, &a.log_every, 1, (size_t)1 << 40, NULL, 0, "K",
          "log line every K steps when stderr is not a terminal (100)"),
      ROW("test-n", 0, CNF_CLI_SIZE, &a.test_n, 0, 10000000, NULL, 0, "N",
          "toy sets: report the NLL of N fresh samples at the end (0: none)"),
      ROW("hidden", 0, CNF_CLI_STR, &a.hidden, 0, 0, NULL, 0, "H1-H2-...",
          "hidden layer widths (64-64-64)"),
      ROW("layer", 0, CNF_CLI_CHOICE, &a.layer, 0, 0, cnf__cli_conv_layer, 0,
          "concatsquash|concat|ignore", "time conditioning (concatsquash)"),
      ROW("act", 0, CNF_CLI_CHOICE, &a.act, 0, 0, cnf__cli_conv_act, 0, "tanh|softplus",
          "activation (tanh)"),
      ROW("blocks", 0, CNF_CLI_SIZE, &a.blocks, 1, 1000, NULL, 0, "K", "stacked blocks (1)"),
      ROW("time", 0, CNF_CLI_POS, &a.time, 0, 0, NULL, 0, "T", "initial end time (0.5)"),
      TRACE_ROW(a, "exact for D <= 2, gauss above"),
      TOL_ROWS(a, "1e-5", "1e-5", "20000"),
      RUN_ROWS(a),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf train --data NAME|FILE.csv --out MODEL [options]",
      "Train a continuous normalizing flow by maximum likelihood: the adjoint method gives\n"
      "the gradient, Adam (with weight decay) the update; T is learned unless --fixed-time.\n"
      "Defaults are FFJORD's toy settings.  The trace is exact for D <= 2, Gaussian Hutchinson\n"
      "above (--trace to choose); validation and the test NLL use the exact trace.\n"
      "With --val the best model goes to MODEL and the latest state to MODEL.last.\n"
      "Ctrl-C saves and stops (exit 130; 143 for SIGTERM); a failed step is reported and skipped, "
      "and after\n"
      "10 in a row train stops with exit 3, the last good model on disk.  --resume with the\n"
      "same options reproduces the uninterrupted run bit for bit."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  status = CNF_CLI_OK;
  a.opt.seminorm = !a.no_seminorm;
  a.train.learn_T = !a.fixed_time;
  {
    /* fail now, not at the first checkpoint, if --out cannot be written */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", a.out);
    const char *d = dirname(dir);
    if (access(d, W_OK) != 0) {
      cnf__cli_error(cmd, "--out %s: cannot write into the directory %s", a.out, d);
      return CNF_CLI_EFAIL;
    }
  }

  cnf_ctx *ctx = NULL;
  cnf_flow *flow = NULL;
  cnf_train *tr = NULL;
  train_data td = {NULL, NULL, 0, 0, NULL};
  double *val = NULL, *x = NULL;
  size_t nval = 0, vcols = 0;
  char *last_path = NULL;
  if (cnf_ctx_create(&ctx) != 0) {
    cnf__cli_error(cmd, "cannot create a library context");
    return CNF_CLI_EFAIL;
  }

  /* data */
  if (cnf__cli_is_toy(a.data)) {
    td.toy = a.data;
    td.D = 2;
  } else {
    if (access(a.data, F_OK) != 0 && strchr(a.data, '.') == NULL && strchr(a.data, '/') == NULL) {
      char list[256];
      toy_list(list, sizeof list);
      cnf__cli_error(cmd, "--data: '%s' is neither a toy set (%s) nor a file", a.data, list);
      status = CNF_CLI_EUSAGE;
      goto cleanup;
    }
    size_t cols = 0;
    status =
        cnf__cli_read_points(cmd, ctx, a.data, 0, "the model's dimension", &td.rows, &td.N, &cols);
    if (status != CNF_CLI_OK) goto cleanup;
    td.D = cols;
    if (a.minibatch > td.N) a.minibatch = td.N;
  }
  const size_t D = td.D, B = a.minibatch;
  if (a.val != NULL) {
    status = cnf__cli_read_points(cmd, ctx, a.val, D, "the training data's columns", &val, &nval,
                                  &vcols);
    if (status != CNF_CLI_OK) goto cleanup;
  }

  /* the flow: resumed, or new */
  int rc = 0;
  if (a.resume != NULL) {
    rc = cnf_flow_load(&flow, ctx, a.resume);
    if (rc != 0) {
      status = cnf__cli_lib_fail(cmd, ctx, rc, 1);
      goto cleanup;
    }
    if (cnf_flow_dim(flow) != D) {
      cnf__cli_error(cmd, "%s: the model has dimension %zu, the data %zu", a.resume,
                     cnf_flow_dim(flow), D);
      status = CNF_CLI_EUSAGE;
      goto cleanup;
    }
  } else {
    cnf_mlp_config cfg;
    cnf_mlp_config_default(&cfg, D);
    cfg.layer = a.layer;
    cfg.act = a.act;
    if (cnf_mlp_parse_hidden(&cfg, a.hidden) != 0) {
      cnf__cli_error(cmd, "--hidden: expected widths such as 64-64-64 or 0, found '%s'", a.hidden);
      status = CNF_CLI_EUSAGE;
      goto cleanup;
    }
    rc = cnf_flow_create(&flow, ctx, &cfg, a.blocks, a.time, a.seed);
    if (rc != 0) {
      status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
      goto cleanup;
    }
    if (a.standardize) {
      double mean[4096], sd[4096];
      if (D > 4096) {
        cnf__cli_error(cmd, "--standardize supports up to 4096 columns");
        status = CNF_CLI_EUSAGE;
        goto cleanup;
      }
      if (td.toy != NULL) {
        double *s = cnf__cli_alloc(cmd, TOY_STD_SAMPLES, 2, "samples", &status);
        if (s == NULL) goto cleanup;
        cnf_toy_sample(td.toy, TOY_STD_SAMPLES, a.seed ^ 0x57dULL, s);
        cnf__cli_moments(s, TOY_STD_SAMPLES, 2, mean, sd);
        free(s);
      } else {
        cnf__cli_moments(td.rows, td.N, D, mean, sd);
      }
      cnf_flow_set_standardization(flow, mean, sd);
    }
  }
  if ((int)a.opt.trace == -1) a.opt.trace = D <= 2 ? CNF_TRACE_EXACT : CNF_TRACE_GAUSS;
  status = cnf__cli_use_threads(cmd, flow);
  if (status != CNF_CLI_OK) goto cleanup;
  rc = cnf_train_create(&tr, flow, &a.train, a.seed);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  x = cnf__cli_alloc(cmd, B, D, "minibatch", &status);
  td.idx = malloc(B * sizeof(size_t));
  if (x == NULL || td.idx == NULL) {
    if (td.idx == NULL) cnf__cli_error(cmd, "out of memory");
    status = CNF_CLI_EFAIL;
    goto cleanup;
  }
  const char *state_path = a.out;
  if (a.val != NULL) {
    size_t n = strlen(a.out) + 6;
    last_path = malloc(n);
    if (last_path == NULL) {
      status = CNF_CLI_EFAIL;
      goto cleanup;
    }
    snprintf(last_path, n, "%s.last", a.out);
    state_path = last_path;
  }

  /* evaluation options: the exact trace */
  cnf_options eopt = a.opt;
  eopt.trace = CNF_TRACE_EXACT;
  eopt.batch = 1000;
  double best = INFINITY;
  if (a.val != NULL && a.resume != NULL) {
    /* the best model so far is the one at --out, if any */
    cnf_flow *prev = NULL;
    if (cnf_flow_load(&prev, ctx, a.out) == 0) {
      if (mean_nll(prev, &eopt, nval, val, &best, NULL) != 0) best = INFINITY;
    }
    cnf_flow_free(prev);
    cnf_ctx_clear_error(ctx);
  }

  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  interrupted = 0;

  const int tty = isatty(STDERR_FILENO);
  const long start = cnf_train_iteration(tr), total = (long)a.iters;
  double t0 = cnf__cli_now(), c0 = cpu_seconds(), loss_avg = NAN, sum_nfe_f = 0, sum_nfe_b = 0;
  const int reg_on = a.opt.reg_kinetic > 0 || a.opt.reg_jacobian > 0;
  double nfe_f_avg = NAN, nfe_b_avg = NAN; /* running means, as loss_avg */
  double sum_kin = 0.0, sum_jac = 0.0;
  long failed_in_a_row = 0, steps_done = 0, failures = 0;
  cnf_stats fwd_total, bwd_total; /* over the successful steps */
  cnf_stats_clear(&fwd_total);
  cnf_stats_clear(&bwd_total);
  char el[32], rem[32];
  if (start >= total)
    fprintf(stderr, "cnf train: the model has already made %ld of %ld steps\n", start, total);
  while (cnf_train_iteration(tr) < total && !interrupted) {
    const long it = cnf_train_iteration(tr);
    rc = draw_batch(&td, cnf_train_seed(tr), it, B, x);
    if (rc != 0) {
      status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
      break;
    }
    cnf_train_report rep;
    rc = cnf_train_step(tr, &a.opt, B, x, &rep);
    steps_done++;
    if (rc != 0) {
      failures++;
      failed_in_a_row++;
      fprintf(stderr, "%scnf train: step %ld skipped: %s\n", tty ? "\n" : "", it + 1,
              cnf_ctx_errmsg(ctx));
      if (failed_in_a_row >= MAX_FAILED_IN_A_ROW) {
        if (access(a.out, F_OK) == 0)
          cnf__cli_error(cmd, "%d steps in a row failed; stopping (the last good model is in %s)",
                         MAX_FAILED_IN_A_ROW, a.out);
        else
          cnf__cli_error(cmd, "%d steps in a row failed; stopping (no model was saved)",
                         MAX_FAILED_IN_A_ROW);
        status = CNF_CLI_ESOLVER;
        break;
      }
      continue;
    }
    failed_in_a_row = 0;
    cnf_stats_add(&fwd_total, &rep.fwd);
    cnf_stats_add(&bwd_total, &rep.bwd);
    loss_avg = isnan(loss_avg) ? rep.loss : 0.97 * loss_avg + 0.03 * rep.loss;
    const double nf = (double)rep.fwd.nfe, nb = (double)(rep.bwd.nfe + rep.bwd.nquad);
    nfe_f_avg = isnan(nfe_f_avg) ? nf : 0.97 * nfe_f_avg + 0.03 * nf;
    nfe_b_avg = isnan(nfe_b_avg) ? nb : 0.97 * nfe_b_avg + 0.03 * nb;
    sum_nfe_f += (double)rep.fwd.nfe;
    sum_nfe_b += (double)(rep.bwd.nfe + rep.bwd.nquad);
    const long done = it + 1;
    const double el_s = cnf__cli_now() - t0;
    const double per = el_s / (double)steps_done;
    fmt_time(el_s, el, sizeof el);
    fmt_time(per * (double)(total - done), rem, sizeof rem);
    char regs[96] = "";
    if (reg_on) {
      sum_kin += rep.kinetic, sum_jac += rep.jacobian;
      snprintf(regs, sizeof regs, tty ? "  nll %.4f kin %.4g jac %.4g" : " nll %.6f kinetic %.6g jacobian %.6g",
               rep.nll, rep.kinetic, rep.jacobian);
    }
    if (tty)
      fprintf(
          stderr,
          "\r\033[Kiter %ld/%ld  loss %.4f (avg %.4f)%s  nfe %ld/%ld  T %.4f  %s elapsed, %s left",
          done, total, rep.loss, loss_avg, regs, rep.fwd.nfe, rep.bwd.nfe + rep.bwd.nquad,
          cnf_flow_end_time(flow, 0), el, rem);
    else if (done % (long)a.log_every == 0 || done == total)
      fprintf(stderr,
              "iter %ld/%ld loss %.6f avg %.6f%s nfe_fwd %ld nfe_bwd %ld T %.6f elapsed %s left %s\n",
              done, total, rep.loss, loss_avg, regs, rep.fwd.nfe, rep.bwd.nfe + rep.bwd.nquad,
              cnf_flow_end_time(flow, 0), el, rem);
    if (a.val != NULL && (done % (long)a.val_every == 0 || done == total)) {
      double v = NAN;
      rc = mean_nll(flow, &eopt, nval, val, &v, NULL);
      if (rc != 0) {
        fprintf(stderr, "%scnf train: validation at step %ld failed: %s\n", tty ? "\n" : "", done,
                cnf_ctx_errmsg(ctx));
      } else {
        if (!tty) fprintf(stderr, "iter %ld val_nll %.6f%s\n", done, v, v < best ? " (best)" : "");
        if (v < best) {
          best = v;
          rc = cnf_flow_save(flow, a.out);
          if (rc != 0) {
            status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
            break;
          }
        }
      }
    }
    if (done % (long)a.save_every == 0 || done == total) {
      rc = cnf_flow_save(flow, state_path);
      if (rc != 0) {
        status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
        break;
      }
    }
  }
  if (tty && steps_done > 0) fputc('\n', stderr);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  if (status == CNF_CLI_OK || interrupted) {
    /* the latest state is on disk (also after Ctrl-C) */
    rc = cnf_flow_save(flow, state_path);
    if (rc != 0) status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    if (a.val != NULL && !isfinite(best)) {
      rc = cnf_flow_save(flow, a.out); /* no validation yet: keep something at --out */
      if (rc != 0) status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    }
  }
  const double wall = cnf__cli_now() - t0, cpu = cpu_seconds() - c0;
  const long ok_steps = steps_done - failures;
  printf("iterations %ld\n", cnf_train_iteration(tr));
  printf("steps_this_run %ld\n", steps_done);
  printf("failed_steps %ld\n", failures);
  printf("loss_avg %.6f\n", loss_avg);
  printf("seconds_per_iter %.6f\n", steps_done ? wall / (double)steps_done : 0.0);
  printf("cpu_seconds_per_iter %.6f\n", steps_done ? cpu / (double)steps_done : 0.0);
  printf("nfe_forward_mean %.2f\n", ok_steps ? sum_nfe_f / (double)ok_steps : 0.0);
  printf("nfe_backward_mean %.2f\n", ok_steps ? sum_nfe_b / (double)ok_steps : 0.0);
  printf("nfe_forward_running %.2f\nnfe_backward_running %.2f\n", nfe_f_avg, nfe_b_avg);
  if (reg_on) {
    printf("kinetic_mean %.6g\n", ok_steps ? sum_kin / (double)ok_steps : 0.0);
    printf("jacobian_mean %.6g\n", ok_steps ? sum_jac / (double)ok_steps : 0.0);
  }
  for (size_t k = 0; k < cnf_flow_blocks(flow); k++)
    printf("T%zu %.6f\n", k + 1, cnf_flow_end_time(flow, k));
  if (a.val != NULL) printf("val_nll_best %.10g\n", best);
  if (a.verbose) {
    const cnf_stats *tot[2] = {&fwd_total, &bwd_total};
    const char *dir[2] = {"forward", "backward"};
    for (int k = 0; k < 2; k++)
      fprintf(stderr,
              "%s_solves %ld\n%s_nfe %ld\n%s_nsteps %ld\n%s_netf %ld\n%s_nni %ld\n%s_nncf %ld\n"
              "%s_njtv %ld\n%s_nli %ld\n%s_nquad %ld\n",
              dir[k], tot[k]->solves, dir[k], tot[k]->nfe, dir[k], tot[k]->nsteps, dir[k],
              tot[k]->netf, dir[k], tot[k]->nni, dir[k], tot[k]->nncf, dir[k], tot[k]->njtv, dir[k],
              tot[k]->nli, dir[k], tot[k]->nquad);
    fprintf(stderr, "wall_seconds %.6f\ncpu_seconds %.6f\n", wall, cpu);
  }
  if (interrupted) {
    fprintf(stderr, "cnf train: interrupted at step %ld; the state is saved in %s\n",
            cnf_train_iteration(tr), state_path);
    if (status == CNF_CLI_OK) status = 128 + (int)interrupted; /* 130 for Ctrl-C */
  } else if (status == CNF_CLI_OK && td.toy != NULL && a.test_n > 0) {
    double *tx = cnf__cli_alloc(cmd, a.test_n, 2, "test samples", &status);
    if (tx != NULL) {
      cnf_toy_sample(td.toy, a.test_n, a.seed ^ 0x7e57ULL, tx);
      cnf_flow *tf = flow;
      cnf_flow *bestf = NULL;
      double nll = NAN;
      if (a.val != NULL && cnf_flow_load(&bestf, ctx, a.out) == 0) tf = bestf;
      if (tf == bestf) cnf__cli_use_threads(cmd, bestf);
      cnf_stats st;
      cnf_stats_clear(&st);
      rc = mean_nll(tf, &eopt, a.test_n, tx, &nll, &st);
      if (rc != 0)
        status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
      else
        printf("test_nll %.10g\n", nll);
      cnf_flow_free(bestf);
      free(tx);
    }
  }
cleanup:
  cnf_train_free(tr);
  cnf_flow_free(flow);
  cnf_free(td.rows);
  free(td.idx);
  cnf_free(val);
  free(x);
  free(last_path);
  cnf_ctx_free(ctx);
  return status;
}

/* ---- eval ------------------------------------------------------------------ */

int cnf__cli_eval(int argc, char **argv, size_t threads) {
  const char *cmd = "eval";
  if (cnf__cli_model_is_stack(argc, argv)) return cnf__cli_dflow_run(cmd, argc, argv, threads);
  run_args a;
  cnf__cli_args_default(&a);
  a.opt.batch = 1000;
  const cnf_cli_opt opts[] = {
      ROW("model", 0, CNF_CLI_STR, &a.model, 0, 0, NULL, 1, "MODEL", "model file"),
      ROW("in", 0, CNF_CLI_STR, &a.in, 0, 0, NULL, 1, "X.csv", "points, one per row"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S", "seed of the Hutchinson probes (0)"),
      TRACE_ROW(a, "exact"),
      TOL_ROWS(a, "1e-5", "1e-5", "20000"),
      RUN_ROWS(a),
      BATCH_ROW(a, "1000"),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf eval --model MODEL --in X.csv [options]",
      "Print 'nll <mean negative log-likelihood in nats>' of the rows of X.csv on stdout\n"
      "(exact trace by default, 1000 rows per solve), solver statistics on stderr."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  status = CNF_CLI_OK;
  cnf_ctx *ctx = NULL;
  cnf_flow *flow = NULL;
  double *x = NULL;
  size_t rows = 0, cols = 0;
  status = cnf__cli_open_model(cmd, a.model, &ctx, &flow);
  if (status != CNF_CLI_OK) goto cleanup;
  status = cnf__cli_read_points(cmd, ctx, a.in, cnf_flow_dim(flow), "the model's dimension", &x,
                                &rows, &cols);
  if (status != CNF_CLI_OK) goto cleanup;
  cnf_flow_seed(flow, a.seed);
  cnf_stats st;
  cnf_stats_clear(&st);
  double nll = NAN, t0 = cnf__cli_now();
  int rc = mean_nll(flow, &a.opt, rows, x, &nll, &st);
  double wall = cnf__cli_now() - t0;
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  printf("nll %.10g\n", nll);
  if (a.verbose)
    cnf__cli_report(&a, rows, &st, wall);
  else
    fprintf(stderr, "rows %zu\nnfe %ld\nsolves %ld\nnsteps %ld\nwall_seconds %.6f\n", rows, st.nfe,
            st.solves, st.nsteps, wall);
cleanup:
  cnf_free(x);
  cnf_flow_free(flow);
  cnf_ctx_free(ctx);
  return status;
}

/* ---- gradcheck -------------------------------------------------------------- */

/* The loss with the probes fixed: the same seed before every evaluation,
 * all rows in one system as the adjoint solves them. */
static int fixed_loss(cnf_flow *flow, const cnf_options *opt, size_t N, const double *x,
                      uint64_t seed, double *loss) {
  cnf_flow_seed(flow, seed);
  cnf_options o = *opt;
  o.batch = 0;
  return mean_nll(flow, &o, N, x, loss, NULL);
}

int cnf__cli_gradcheck(int argc, char **argv, size_t threads) {
  const char *cmd = "gradcheck";
  run_args a;
  cnf__cli_args_default(&a);
  a.opt.rtol = a.opt.atol = 1e-9;
  a.opt.max_steps = 1000000;
  const cnf_cli_opt opts[] = {
      ROW("model", 0, CNF_CLI_STR, &a.model, 0, 0, NULL, 1, "MODEL", "model file"),
      ROW("in", 0, CNF_CLI_STR, &a.in, 0, 0, NULL, 1, "X.csv",
          "points (the whole file is one batch)"),
      ROW("adjoint", 0, CNF_CLI_CHOICE, &a.opt.adjoint, 0, 0, cnf__cli_conv_adjoint, 0,
          "backsolve|checkpoint", "adjoint variant (checkpoint)"),
      ROW("params", 0, CNF_CLI_SIZE, &a.params, 1, SIZE_MAX, NULL, 0, "N",
          "check N parameters drawn at random when there are more (200)"),
      ROW("step", 0, CNF_CLI_POS, &a.step, 0, 0, NULL, 0, "H", "central-difference step (1e-4)"),
      ROW("threshold", 0, CNF_CLI_POS, &a.threshold, 0, 0, NULL, 0, "E",
          "largest relative error accepted (1e-4)"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S",
          "seed of the probes and the subset (0)"),
      TRACE_ROW(a, "exact"),
      TOL_ROWS(a, "1e-9", "1e-9", "1000000"),
      RUN_ROWS(a),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf gradcheck --model MODEL --in X.csv [options]",
      "Compare the adjoint gradient of the loss L = -mean log p with central differences of\n"
      "L (Hutchinson probes held fixed), over the parameters (all, or a seeded random subset)\n"
      "and the end times.  The relative error of a component is |fd - adj| / max(|adj|,\n"
      "0.01 max_i |adj_i|).  Prints the largest one and exits 1 above --threshold.\n"
      "Tolerances default to rtol = atol = 1e-9."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  status = CNF_CLI_OK;
  cnf_ctx *ctx = NULL;
  cnf_flow *flow = NULL;
  double *x = NULL, *grad = NULL, *gT = NULL;
  size_t *pick = NULL;
  size_t rows = 0, cols = 0;
  status = cnf__cli_open_model(cmd, a.model, &ctx, &flow);
  if (status != CNF_CLI_OK) goto cleanup;
  status = cnf__cli_read_points(cmd, ctx, a.in, cnf_flow_dim(flow), "the model's dimension", &x,
                                &rows, &cols);
  if (status != CNF_CLI_OK) goto cleanup;
  const size_t P = cnf_flow_param_count(flow), nb = cnf_flow_blocks(flow);
  const size_t n = a.params < P ? a.params : P;
  grad = malloc(P * sizeof(double));
  gT = malloc(nb * sizeof(double));
  pick = malloc(n * sizeof(size_t));
  if (grad == NULL || gT == NULL || pick == NULL) {
    cnf__cli_error(cmd, "out of memory");
    status = CNF_CLI_EFAIL;
    goto cleanup;
  }
  if (n == P)
    for (size_t i = 0; i < P; i++) pick[i] = i;
  else if (cnf_train_batch_indices(a.seed, 0, P, n, pick) != 0) {
    cnf__cli_error(cmd, "cannot draw the parameter subset");
    status = CNF_CLI_EFAIL;
    goto cleanup;
  }
  double L = 0.0;
  cnf_stats sf, sb;
  cnf_stats_clear(&sf);
  cnf_stats_clear(&sb);
  cnf_flow_seed(flow, a.seed);
  int rc = cnf_flow_loss_grad(flow, &a.opt, rows, x, &L, grad, gT, &sf, &sb);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  double gmax = 0.0;
  for (size_t i = 0; i < P; i++) gmax = fmax(gmax, fabs(grad[i]));
  double *th = cnf_flow_params(flow), worst = 0.0, worst_T = 0.0;
  size_t worst_i = 0;
  for (size_t j = 0; j < n && rc == 0; j++) {
    size_t i = pick[j];
    double old = th[i], lp = 0, lm = 0;
    th[i] = old + a.step;
    rc = fixed_loss(flow, &a.opt, rows, x, a.seed, &lp);
    th[i] = old - a.step;
    if (rc == 0) rc = fixed_loss(flow, &a.opt, rows, x, a.seed, &lm);
    th[i] = old;
    double fd = (lp - lm) / (2 * a.step);
    double e = fabs(fd - grad[i]) / fmax(fabs(grad[i]), 0.01 * gmax);
    if (a.verbose)
      fprintf(stderr, "param %zu adjoint %.12g fd %.12g rel %.3g\n", i, grad[i], fd, e);
    if (!(e <= worst)) worst = e, worst_i = i;
  }
  for (size_t k = 0; k < nb && rc == 0; k++) {
    double T = cnf_flow_end_time(flow, k), lp = 0, lm = 0, h = a.step * T;
    cnf_flow_set_end_time(flow, k, T + h);
    rc = fixed_loss(flow, &a.opt, rows, x, a.seed, &lp);
    cnf_flow_set_end_time(flow, k, T - h);
    if (rc == 0) rc = fixed_loss(flow, &a.opt, rows, x, a.seed, &lm);
    cnf_flow_set_end_time(flow, k, T);
    double fd = (lp - lm) / (2 * h);
    double e = fabs(fd - gT[k]) / fmax(fabs(gT[k]), 1e-12);
    printf("dL/dT%zu adjoint %.12g fd %.12g rel_error %.3g\n", k + 1, gT[k], fd, e);
    worst_T = fmax(worst_T, e);
  }
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  printf("loss %.12g\n", L);
  printf("params_checked %zu of %zu\n", n, P);
  printf("max_rel_error_params %.3g (parameter %zu)\n", worst, worst_i);
  printf("max_rel_error_T %.3g\n", worst_T);
  worst = fmax(worst, worst_T);
  printf("max_rel_error %.3g\n", worst);
  fprintf(stderr, "nfe_forward %ld\nnfe_backward %ld\n", sf.nfe, sb.nfe + sb.nquad);
  if (!(worst <= a.threshold)) {
    cnf__cli_error(cmd, "largest relative error %.3g is above the threshold %.3g", worst,
                   a.threshold);
    status = CNF_CLI_EFAIL;
  }
cleanup:
  free(grad);
  free(gT);
  free(pick);
  cnf_free(x);
  cnf_flow_free(flow);
  cnf_ctx_free(ctx);
  return status;
}

/* ---- plot -------------------------------------------------------------------- */

int cnf__cli_plot(int argc, char **argv, size_t threads) {
  const char *cmd = "plot";
  if (cnf__cli_model_is_stack(argc, argv)) return cnf__cli_dflow_run(cmd, argc, argv, threads);
  run_args a;
  cnf__cli_args_default(&a);
  a.size = 200;
  a.n = 2000;
  cnf_plot_options po;
  cnf_plot_options_default(&po);
  const cnf_cli_opt opts[] = {
      ROW("model", 0, CNF_CLI_STR, &a.model, 0, 0, NULL, 1, "MODEL", "model file"),
      ROW("out", 0, CNF_CLI_STR, &a.out, 0, 0, NULL, 1, "FILE.png|.svg|.pdf",
          "figure to write, in the format of its extension"),
      ROW("range", 0, CNF_CLI_POS, &a.range, 0, 0, NULL, 0, "L",
          "2-D: heat map over [-L, L]^2 (4)"),
      ROW("grid", 0, CNF_CLI_SIZE, &a.size, 2, 4096, NULL, 0, "G", "2-D: G x G grid points (200)"),
      ROW("size", 0, CNF_CLI_SIZE, &po.size, 64, 4096, NULL, 0, "S",
          "side of one panel in pixels (points in SVG, PDF) (400)"),
      ROW("log", 0, CNF_CLI_FLAG, &po.log_density, 0, 0, NULL, 0, "", "2-D: colour by log p(x)"),
      ROW("data", 0, CNF_CLI_STR, &a.data, 0, 0, NULL, 0, "NAME|FILE.csv",
          "data to overlay: a toy set name or a CSV file"),
      ROW("samples", 'n', CNF_CLI_SIZE, &a.n, 1, 10000000, NULL, 0, "N",
          "above 2-D: samples to scatter (2000); 2-D: toy points overlaid (2000)"),
      ROW("dims", 0, CNF_CLI_SIZE, &a.dims, 1, 64, NULL, 0, "K",
          "above 2-D: first K coordinates (6)"),
      ROW("seed", 0, CNF_CLI_U64, &a.seed, 0, 0, NULL, 0, "S", "seed (0)"),
      SOLVER_ROWS(a),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf plot --model MODEL --out FILE.png [options]",
      "2-D model: a heat map of the learned density p(x) over [-L, L]^2 (viridis, x1 to the\n"
      "right, x2 up, a colour bar), with data points in white.  Above 2-D: pairwise scatter\n"
      "plots of samples (orange) over the data (grey), histograms on the diagonal, named by\n"
      "the data's CSV header.  Titled, with axes in data units; PNG, SVG or PDF."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  status = CNF_CLI_OK;
  cnf_ctx *ctx = NULL;
  cnf_flow *flow = NULL;
  double *data = NULL;
  size_t nd = 0, cols = 0;
  int toy = 0;
  status = cnf__cli_open_model(cmd, a.model, &ctx, &flow);
  if (status != CNF_CLI_OK) goto cleanup;
  const size_t D = cnf_flow_dim(flow);
  if (a.data != NULL) {
    if (cnf__cli_is_toy(a.data)) {
      if (D != 2) {
        cnf__cli_error(cmd, "--data %s is a 2-D toy set; the model is %zu-D", a.data, D);
        status = CNF_CLI_EUSAGE;
        goto cleanup;
      }
      toy = 1;
      nd = a.n;
      data = cnf__cli_alloc(cmd, nd, 2, "data", &status);
      if (data == NULL) goto cleanup;
      cnf_toy_sample(a.data, nd, a.seed, data);
    } else {
      status =
          cnf__cli_read_points(cmd, ctx, a.data, D, "the model's dimension", &data, &nd, &cols);
      if (status != CNF_CLI_OK) goto cleanup;
    }
  }
  cnf_flow_seed(flow, a.seed);
  /* the files by their names, without directories */
  const char *model = strrchr(a.model, '/') ? strrchr(a.model, '/') + 1 : a.model;
  const char *dname = a.data && strrchr(a.data, '/') ? strrchr(a.data, '/') + 1 : a.data;
  char title[512];
  if (D == 2)
    snprintf(title, sizeof title, "%s of %s", po.log_density ? "Log-density" : "Density", model);
  else
    snprintf(title, sizeof title, "Samples of %s%s%s", model, dname ? " against " : "",
             dname ? dname : "");
  char **header = NULL;
  size_t hcols = 0;
  if (a.data != NULL && !toy && cnf_csv_header(ctx, a.data, &header, &hcols) == 0 && hcols == D) {
    po.names = (const char *const *)header;
    if (D == 2) /* the two names label the axes */
      po.xlabel = header[0], po.ylabel = header[1], po.names = NULL;
  }
  po.title = title, po.data_name = dname, po.sample_name = "flow samples";
  int rc = D == 2 ? cnf_plot_density_with(flow, &a.opt, &po, a.range, a.size, data, nd, a.out)
                  : cnf_plot_pairs_with(flow, &a.opt, &po, a.n, a.dims, data, nd, a.out);
  cnf_free(header);
  if (rc != 0) status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
cleanup:
  if (toy)
    free(data);
  else
    cnf_free(data);
  cnf_flow_free(flow);
  cnf_ctx_free(ctx);
  return status;
}
