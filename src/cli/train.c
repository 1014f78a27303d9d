/* train.c: the commands that make data, train and check models: toy,
 * train, gradcheck.
 *
 * train is cnf_fit (cnf_model.h) with a progress printer: the library owns
 * the loop (minibatches, validation and best-model keeping, checkpoints,
 * failed steps, resume); this file parses, reads the data, installs the
 * Ctrl-C handler that sets the loop's stop flag, and prints.  Every model
 * file is written by the library atomically, so an interrupted or crashed
 * run leaves the last good model on disk. */
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
#include "cli_mpi.h"

/* Samples of a toy set used for standardization. */
#define TOY_STD_SAMPLES 20000

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
  if (!cnf__cli_is_toy(a.name)) {
    char list[256];
    cnf__cli_toy_list(list, sizeof list);
    cnf__cli_error(cmd, "--name: unknown toy set '%s' (one of %s)", a.name, list);
    return CNF_CLI_EUSAGE;
  }
  status = CNF_CLI_OK;
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

/* The toy generator of cnf_fit_data: fresh samples for every step. */
static int draw_toy(void *user, uint64_t seed, size_t B, size_t D, double *x) {
  (void)D;
  return cnf_toy_sample((const char *)user, B, seed, x);
}

/* The progress printer: a line rewritten in place on a terminal, log lines
 * every --log-every steps otherwise, and the messages of skipped steps and
 * failed validations. */
typedef struct progress {
  cnf_ctx *ctx;
  int tty, reg_on;
  long log_every, steps;
  double t0;
} progress;

static int print_step(void *user, const cnf_fit_report *r) {
  progress *p = user;
  const char *nl = p->tty ? "\n" : "";
  p->steps++;
  if (r->status != 0) {
    fprintf(stderr, "%scnf train: step %ld skipped: %s\n", nl, r->step, cnf_ctx_errmsg(p->ctx));
    return 0;
  }
  char el[32], rem[32], regs[96] = "", T[32] = "";
  const double el_s = cnf__cli_now() - p->t0;
  fmt_time(el_s, el, sizeof el);
  fmt_time(el_s / (double)p->steps * (double)(r->total - r->step), rem, sizeof rem);
  if (p->reg_on)
    snprintf(regs, sizeof regs, p->tty ? "  nll %.4f kin %.4g jac %.4g" : " nll %.6f kinetic %.6g "
             "jacobian %.6g", r->nll, r->kinetic, r->jacobian);
  if (!isnan(r->T)) snprintf(T, sizeof T, p->tty ? "  T %.4f" : " T %.6f", r->T);
  const long nb = r->bwd.nfe + r->bwd.nquad;
  if (p->tty)
    fprintf(stderr, "\r\033[Kiter %ld/%ld  loss %.4f (avg %.4f)%s  nfe %ld/%ld%s  %s elapsed, %s "
            "left", r->step, r->total, r->loss, r->loss_avg, regs, r->fwd.nfe, nb, T, el, rem);
  else if (r->step % p->log_every == 0 || r->step == r->total)
    fprintf(stderr, "iter %ld/%ld loss %.6f avg %.6f%s nfe_fwd %ld nfe_bwd %ld%s elapsed %s left "
            "%s\n", r->step, r->total, r->loss, r->loss_avg, regs, r->fwd.nfe, nb, T, el, rem);
  if (r->validated && isnan(r->val_nll))
    fprintf(stderr, "%scnf train: validation at step %ld failed: %s\n", nl, r->step,
            cnf_ctx_errmsg(p->ctx));
  else if (r->validated && !p->tty)
    fprintf(stderr, "iter %ld val_nll %.6f%s\n", r->step, r->val_nll, r->best ? " (best)" : "");
  return 0;
}

/* Standardize a new model by the data's moments (a toy set: 20000 samples
 * of the stream ("standardize", 0)). */
static int standardize(const char *cmd, cnf_ctx *ctx, cnf_model *m, const char *toy,
                       const double *rows, size_t N, size_t D, uint64_t seed) {
  int status = CNF_CLI_OK;
  double *mean = cnf__cli_alloc(cmd, 2, D, "moments", &status), *s = NULL;
  if (mean == NULL) return status;
  if (toy != NULL) {
    N = TOY_STD_SAMPLES;
    if ((s = cnf__cli_alloc(cmd, N, 2, "samples", &status)) == NULL) goto done;
    cnf_toy_sample(toy, N, cnf_seed_derive(seed, "standardize", 0), s);
    rows = s;
  }
  cnf_moments(N, D, rows, mean, mean + D);
  int rc = cnf_model_set_standardization(m, mean, mean + D);
  if (rc != 0) status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
done:
  free(s), free(mean);
  return status;
}

/* What train prints at the end, one "name value" per line. */
static void print_summary(const cnf_model *m, const cnf_fit_result *res, const run_args *a,
                          double wall, double cpu) {
  const long n = res->steps;
  printf("flow %s\nparams %zu\n", cnf_model_name(m), cnf_model_param_count(m));
  printf("iterations %ld\nsteps_this_run %ld\nfailed_steps %ld\n", res->iteration, n, res->failed);
  printf("loss_avg %.6f\n", res->loss_avg);
  printf("seconds_per_iter %.6f\n", n ? wall / (double)n : 0.0);
  printf("cpu_seconds_per_iter %.6f\n", n ? cpu / (double)n : 0.0);
  printf("nfe_forward_mean %.2f\nnfe_backward_mean %.2f\n", res->nfe_fwd_mean, res->nfe_bwd_mean);
  printf("nfe_forward_running %.2f\nnfe_backward_running %.2f\n", res->nfe_fwd_running,
         res->nfe_bwd_running);
  if (a->opt.reg_kinetic > 0 || a->opt.reg_jacobian > 0)
    printf("kinetic_mean %.6g\njacobian_mean %.6g\n", res->kinetic_mean, res->jacobian_mean);
  cnf_flow *f = cnf_model_flow((cnf_model *)m);
  for (size_t k = 0; f != NULL && k < cnf_flow_blocks(f); k++)
    printf("T%zu %.6f\n", k + 1, cnf_flow_end_time(f, k));
  if (a->val != NULL) printf("val_nll_best %.10g\n", res->best_val);
  if (!a->verbose) return;
  const cnf_stats *tot[2] = {&res->fwd, &res->bwd};
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

int cnf__cli_train(int argc, char **argv, size_t threads) {
  const char *cmd = "train";
  run_args a;
  cnf__cli_args_default(&a);
  a.opt.trace = (cnf_trace)-1; /* not given: cnf_trace_for_dim */
  a.opt.batch = 0;
  a.minibatch = 0; /* not given: the kind's default */
  const cnf_cli_opt opts[] = {
      ROW("data", 0, CNF_CLI_STR, &a.data, 0, 0, NULL, 1, "NAME|FILE.csv",
          "a toy set name (fresh samples every step) or a CSV file of training rows"),
      ROW("out", 0, CNF_CLI_STR, &a.out, 0, 0, NULL, 1, "MODEL",
          "model file: the best on --val if given, else the latest"),
      ROW("val", 0, CNF_CLI_STR, &a.val, 0, 0, NULL, 0, "FILE.csv", "validation rows"),
      ROW("iters", 0, CNF_CLI_SIZE, &a.iters, 1, (size_t)1 << 40, NULL, 0, "N",
          "total training steps, counting those of a resumed run (1000)"),
      ROW("batch", 0, CNF_CLI_SIZE, &a.minibatch, 1, 1000000, NULL, 0, "B",
          "minibatch size (cnf 100, discrete flows 256)"),
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
      ROW("init", 0, CNF_CLI_STR, &a.init, 0, 0, NULL, 0, "MODEL",
          "start from the parameters of MODEL with a fresh optimizer (e.g. MLE after FM)"),
      ROW("objective", 0, CNF_CLI_CHOICE, &a.objective, 0, 0, cnf__cli_conv_objective, 0,
          "mle|fm|ot-fm", "maximum likelihood, flow matching or OT flow matching (mle)"),
      ROW("fm-sigma", 0, CNF_CLI_NONNEG, &a.fm_sigma, 0, 0, NULL, 0, "S",
          "flow matching: width of the Gaussian path around the line (0)"),
      ROW("standardize", 0, CNF_CLI_FLAG, &a.standardize, 0, 0, NULL, 0, "",
          "model (x - mean) / sd of the data; densities stay in the units of x"),
      ROW("save-every", 0, CNF_CLI_SIZE, &a.save_every, 1, (size_t)1 << 40, NULL, 0, "K",
          "checkpoint the latest state every K steps (100)"),
      ROW("val-every", 0, CNF_CLI_SIZE, &a.val_every, 1, (size_t)1 << 40, NULL, 0, "K",
          "validate every K steps (100)"),
      ROW("log-every", 0, CNF_CLI_SIZE, &a.log_every, 1, (size_t)1 << 40, NULL, 0, "K",
          "log line every K steps when stderr is not a terminal (100)"),
      ROW("test-n", 0, CNF_CLI_SIZE, &a.test_n, 0, 10000000, NULL, 0, "N",
          "toy sets: report the NLL of N fresh samples at the end (0: none)"),
      MODEL_ROWS(a),
      TRACE_ROW(a, "exact for D <= 2, gauss above"),
      TOL_ROWS(a, "1e-5", "1e-5", "20000"),
      RUN_ROWS(a),
      END_ROW};
  const cnf_cli_usage usage = {
      "cnf train --data NAME|FILE.csv --out MODEL [--flow FLOW] [options]",
      "Train a flow by maximum likelihood with Adam (with weight decay): a CNF through the\n"
      "adjoint method, T learned unless --fixed-time (defaults are FFJORD's toy settings);\n"
      "a discrete flow by one reverse sweep through its layers.  The trace is exact for\n"
      "D <= 2, Gaussian Hutchinson above (--trace to choose); validation and the test NLL\n"
      "use the exact trace.  With --val the best model goes to MODEL and the latest state\n"
      "to MODEL.last.  Ctrl-C saves and stops (exit 130; 143 for SIGTERM); a failed step\n"
      "is reported and skipped, and after 10 in a row train stops with exit 3, the last\n"
      "good model on disk; so does a diverged update (a non-finite parameter).  --resume\n"
      "with the same options reproduces the uninterrupted run bit for bit.  --objective fm\n"
      "or ot-fm trains a one-block CNF by (OT) flow matching: no ODE solve per step, the\n"
      "same exact log-density after (docs/objectives.md); --init continues any model with a\n"
      "fresh optimizer, under either objective."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
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
  cnf_model *m = NULL;
  double *rows = NULL, *val = NULL;
  size_t N = 0, D = 2, nval = 0, cols = 0;
  char *last_path = NULL;
  const char *toy = cnf__cli_is_toy(a.data) ? a.data : NULL;
  int rc = 0;
  if (cnf_ctx_create(&ctx) != 0 || cnf__cli_mpi_attach(ctx) != 0) {
    cnf__cli_error(cmd, "cannot create a library context");
    return CNF_CLI_EFAIL;
  }
  if (toy == NULL) {
    if (access(a.data, F_OK) != 0 && strchr(a.data, '.') == NULL && strchr(a.data, '/') == NULL) {
      char list[256];
      cnf__cli_toy_list(list, sizeof list);
      cnf__cli_error(cmd, "--data: '%s' is neither a toy set (%s) nor a file", a.data, list);
      status = CNF_CLI_EUSAGE;
      goto cleanup;
    }
    status = cnf__cli_read_points(cmd, ctx, a.data, 0, "", &rows, &N, &D);
    if (status != CNF_CLI_OK) goto cleanup;
  }
  if (a.val != NULL) {
    status = cnf__cli_read_points(cmd, ctx, a.val, D, "the training data's columns", &val, &nval,
                                  &cols);
    if (status != CNF_CLI_OK) goto cleanup;
  }

  /* the model: resumed, started from another's parameters, or new */
  if (a.resume != NULL && a.init != NULL) {
    cnf__cli_error(cmd, "--resume and --init exclude each other");
    status = CNF_CLI_EUSAGE;
    goto cleanup;
  }
  const char *from = a.resume ? a.resume : a.init;
  if (from != NULL) {
    if ((rc = cnf_model_load(&m, ctx, from)) != 0) {
      status = cnf__cli_lib_fail(cmd, ctx, rc, 1);
      goto cleanup;
    }
    if (cnf_model_dim(m) != D) {
      cnf__cli_error(cmd, "%s: the model has dimension %zu, the data %zu", from,
                     cnf_model_dim(m), D);
      status = CNF_CLI_EUSAGE;
      goto cleanup;
    }
    if (a.init != NULL) cnf_model_clear_train_state(m);
  } else {
    if ((status = cnf__cli_create_model(cmd, ctx, &a, D, &m)) != CNF_CLI_OK) goto cleanup;
    if (a.standardize &&
        (status = standardize(cmd, ctx, m, toy, rows, N, D, a.seed)) != CNF_CLI_OK)
      goto cleanup;
  }
  if ((status = cnf__cli_use_threads(cmd, m)) != CNF_CLI_OK) goto cleanup;
  const int is_flow = cnf_model_kind_of(m) == CNF_MODEL_FLOW;
  if ((int)a.opt.trace == -1) a.opt.trace = cnf_trace_for_dim(D);

  cnf_fit_options fo;
  cnf_fit_options_default(&fo);
  fo.iters = (long)a.iters;
  fo.batch = a.minibatch ? a.minibatch : is_flow ? 100 : 256;
  fo.seed = a.seed;
  fo.objective = a.objective, fo.fm_sigma = a.fm_sigma;
  fo.train = a.train;
  fo.opt = a.opt;
  fo.eval_opt = a.opt;
  fo.eval_opt.trace = CNF_TRACE_EXACT;
  fo.eval_opt.batch = 1000;
  fo.val = val, fo.n_val = nval, fo.val_every = (long)a.val_every;
  fo.save_every = (long)a.save_every;
  fo.state_path = a.out;
  if (a.val != NULL) {
    size_t n = strlen(a.out) + 6;
    if ((last_path = malloc(n)) == NULL) {
      status = CNF_CLI_EFAIL;
      goto cleanup;
    }
    snprintf(last_path, n, "%s.last", a.out);
    fo.state_path = last_path, fo.best_path = a.out;
    if (a.resume != NULL) {
      /* the best model so far is the one at --out, if any */
      cnf_model *prev = NULL;
      if (cnf_model_load(&prev, ctx, a.out) != 0 ||
          cnf_model_nll(prev, &fo.eval_opt, nval, val, &fo.best_init, NULL) != 0)
        fo.best_init = INFINITY;
      cnf_model_free(prev);
      cnf_ctx_clear_error(ctx);
    }
  }
  progress pr = {ctx, isatty(STDERR_FILENO), a.opt.reg_kinetic > 0 || a.opt.reg_jacobian > 0,
                 (long)a.log_every, 0, cnf__cli_now()};
  fo.callback = print_step, fo.user = &pr;
  fo.stop = &interrupted;
  cnf_fit_data data = {rows, N, D, toy ? draw_toy : NULL, (void *)toy};

  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  interrupted = 0;
  if (cnf_model_iteration(m) >= fo.iters)
    fprintf(stderr, "cnf train: the model has already made %ld of %ld steps\n",
            cnf_model_iteration(m), fo.iters);
  const double c0 = cpu_seconds();
  cnf_fit_result res;
  rc = cnf_fit(m, &data, &fo, &res);
  const double wall = cnf__cli_now() - pr.t0, cpu = cpu_seconds() - c0;
  if (pr.tty && pr.steps > 0) fputc('\n', stderr);
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  if (rc == CNF_ENONFINITE || cnf_is_solver_error(rc)) {
    cnf__cli_error(cmd, "%s (the last good state is in %s)", cnf_ctx_errmsg(ctx), fo.state_path);
    status = CNF_CLI_ESOLVER;
  } else if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
  }
  if (status == CNF_CLI_OK && !interrupted && a.val != NULL && !isfinite(res.best_val)) {
    /* never a silent non-finite result: every validation failed */
    cnf__cli_error(cmd, "no validation on %s gave a finite NLL (the reasons are above); the "
                        "latest state is in %s", a.val, fo.state_path);
    status = CNF_CLI_ESOLVER;
  }
  print_summary(m, &res, &a, wall, cpu);
  if (interrupted) {
    fprintf(stderr, "cnf train: interrupted at step %ld; the state is saved in %s\n",
            res.iteration, fo.state_path);
    if (status == CNF_CLI_OK) status = 128 + (int)interrupted; /* 130 for Ctrl-C */
  } else if (status == CNF_CLI_OK && toy != NULL && a.test_n > 0) {
    /* the NLL of fresh samples, under the best model if validated */
    double *tx = cnf__cli_alloc(cmd, a.test_n, 2, "test samples", &status), nll = NAN;
    cnf_model *best = NULL, *tm = m;
    if (tx != NULL) {
      cnf_toy_sample(toy, a.test_n, cnf_seed_derive(a.seed, "test", 0), tx);
      if (a.val != NULL && cnf_model_load(&best, ctx, a.out) == 0 &&
          cnf__cli_use_threads(cmd, best) == CNF_CLI_OK)
        tm = best;
      rc = cnf_model_nll(tm, &fo.eval_opt, a.test_n, tx, &nll, NULL);
      if (rc != 0)
        status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
      else
        printf("test_nll %.10g\n", nll);
    }
    cnf_model_free(best);
    free(tx);
  }
cleanup:
  cnf_model_free(m);
  cnf_free(rows);
  cnf_free(val);
  free(last_path);
  cnf_ctx_free(ctx);
  return status;
}

/* ---- gradcheck -------------------------------------------------------------- */

/* Each comparison: the end times always, the parameters with --verbose. */
static void print_check(void *user, const char *what, size_t i, double adj, double fd,
                        double rel) {
  const int *verbose = user;
  if (strcmp(what, "T") == 0)
    printf("dL/dT%zu adjoint %.12g fd %.12g rel_error %.3g\n", i + 1, adj, fd, rel);
  else if (*verbose)
    fprintf(stderr, "param %zu adjoint %.12g fd %.12g rel %.3g\n", i, adj, fd, rel);
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
      "Compare the gradient of the loss L = -mean log p (the adjoint for continuous blocks,\n"
      "the reverse sweep for discrete layers) with central differences of L (Hutchinson\n"
      "probes held fixed), over the parameters (all, or a seeded random subset) and the end\n"
      "times.  The relative error of a component is |fd - adj| / max(|adj|, 0.01 max_i\n"
      "|adj_i|).  Prints the largest one and exits 1 above --threshold.  Tolerances default\n"
      "to rtol = atol = 1e-9."};
  int status = cnf__cli_begin(cmd, opts, &usage, argc, argv, &a.threads, threads);
  if (status >= 0) return status;
  cnf_ctx *ctx = NULL;
  cnf_model *m = NULL;
  double *x = NULL;
  size_t rows = 0, cols = 0;
  if ((status = cnf__cli_open_model(cmd, a.model, &ctx, &m)) != CNF_CLI_OK) goto cleanup;
  status = cnf__cli_read_points(cmd, ctx, a.in, cnf_model_dim(m), "the model's dimension", &x,
                                &rows, &cols);
  if (status != CNF_CLI_OK) goto cleanup;
  cnf_gradcheck_result r;
  int rc = cnf_model_gradcheck(m, &a.opt, rows, x, a.seed, a.params, a.step, print_check,
                               &a.verbose, &r);
  if (rc != 0) {
    status = cnf__cli_lib_fail(cmd, ctx, rc, 0);
    goto cleanup;
  }
  printf("loss %.12g\n", r.loss);
  printf("params_checked %zu of %zu\n", r.checked, r.P);
  printf("max_rel_error_params %.3g (parameter %zu)\n", r.worst_param, r.worst_index);
  printf("max_rel_error_T %.3g\n", r.worst_T);
  const double worst = fmax(r.worst_param, r.worst_T);
  printf("max_rel_error %.3g\n", worst);
  fprintf(stderr, "nfe_forward %ld\nnfe_backward %ld\n", r.fwd.nfe, r.bwd.nfe + r.bwd.nquad);
  if (!(worst <= a.threshold)) {
    cnf__cli_error(cmd, "largest relative error %.3g is above the threshold %.3g", worst,
                   a.threshold);
    status = CNF_CLI_EFAIL;
  }
cleanup:
  cnf_free(x);
  cnf_model_free(m);
  cnf_ctx_free(ctx);
  return status;
}
