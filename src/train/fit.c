/* fit.c: cnf_fit, the one training loop for every model kind.
 *
 * Step i (the model's step count before it, from 0):
 *
 *   batch   rows drawn without replacement with cnf_train_batch_indices
 *           (seed, i), or the generator called with the seed of
 *           ("batch", i); with a reduction (cnf_fit_comm) this worker takes
 *           rows [r B / R, (r + 1) B / R) of the global batch
 *   loss    flows: the adjoint gradient with probes from ("probes", i)
 *           (cnf__train_grad); stacks: one reverse sweep; flow matching:
 *           the regression loss of cnf_fm_loss_grad on the rows
 *           standardized, with noise and path positions from ("fm", i)
 *   reduce  loss and gradient times the local row count, summed over the
 *           workers with one call, divided by B: the global batch mean
 *           (with a vector factory a flow's workers solve one distributed
 *           system and return their shares of the global mean: summed
 *           as they are)
 *   check   a non-finite loss or gradient (or a failure on any worker)
 *           skips the step: parameters kept, step counted
 *   update  Adam (cnf__train_apply, cnf_adam_update); an update that makes
 *           a parameter, an end time or a moment non-finite is undone and
 *           ends the run (CNF_ENONFINITE: it has diverged)
 *
 * The optimizer state (step count, seed, moments) lives in the model and
 * goes into its file, so a run resumed from a checkpoint takes the same
 * steps as the uninterrupted one.  Files are written with the model's
 * save, which writes atomically. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cnf_fm.h"
#include "dyn_impl.h" /* the network's precision around the regression */
#include "model_impl.h"
#include "train_impl.h"

static const char *const objective_names[] = {"mle", "fm", "ot-fm"};

const char *cnf_objective_name(cnf_objective o) {
  return (unsigned)o < 3 ? objective_names[o] : "?";
}

int cnf_objective_parse(const char *s, cnf_objective *out) {
  for (int i = 0; s != NULL && i < 3; i++)
    if (strcmp(s, objective_names[i]) == 0) {
      *out = (cnf_objective)i;
      return 0;
    }
  return CNF_EINVAL;
}

void cnf_fit_options_default(cnf_fit_options *fo) {
  memset(fo, 0, sizeof *fo);
  fo->size = sizeof *fo;
  fo->iters = 1000;
  fo->batch = 100;
  cnf_train_options_default(&fo->train);
  cnf_options_default(&fo->opt);
  cnf_options_default(&fo->eval_opt);
  fo->eval_opt.trace = CNF_TRACE_EXACT;
  fo->eval_opt.batch = 1000;
  fo->val_every = 100;
  fo->best_init = INFINITY;
  fo->save_every = 100;
  fo->max_failed = 10;
}

/* Rows used for a fresh stack's data-dependent initialisation. */
#define INIT_ROWS 1000

/* What the loop holds for one run. */
typedef struct fit {
  cnf_model *m;
  cnf_ctx *ctx;
  cnf_fit_options fo;
  const cnf_fit_data *data;
  cnf_train *tr;       /* flows */
  size_t B, lo, hi;    /* global batch, this worker's rows [lo, hi) */
  double *x;           /* (B, D): the global batch, then this worker's rows */
  size_t *idx;         /* (B) */
  double *grad;        /* the model's gradient buffer (ng) */
  size_t ng;
  double *red;         /* (ng + 7): gradient, loss and parts, failure
                          flag, stop value and stop count */
  double *fm;          /* flow matching: x_std, z, e (B, D) each, s (B) */
  int dist;            /* one distributed ODE system over the workers */
  int stop_all;        /* a worker asked to stop: all stop after the step */
  /* the trained arrays and their backup for undoing a diverged update */
  double *arr[4];
  size_t len[4];
  int narr;
  double *backup;
  long updates;
} fit;

/* The model's step count, seed, Adam update count. */
static long *iter_of(cnf_model *m) {
  return m->flow ? &m->flow->train->iter : &m->stack->iter;
}
static uint64_t seed_of(const cnf_model *m) {
  return m->flow ? m->flow->train->seed : m->stack->seed;
}
static long *updates_of(cnf_model *m) {
  return m->flow ? &m->flow->train->updates : &m->stack->updates;
}

/* The optimizer state of the model, created for a fresh one (with the run's
 * seed), and the arrays an update changes. */
static int setup_state(fit *F) {
  cnf_model *m = F->m;
  if (m->flow) {
    cnf_flow *f = m->flow;
    if (F->fo.objective != CNF_OBJECTIVE_MLE) F->fo.train.learn_T = 0; /* T is the path's */
    RET_IF(cnf_train_create(&F->tr, f, &F->fo.train, F->fo.seed));
    F->grad = cnf__train_grad_buf(F->tr, &F->ng);
    cnf_train_state *st = f->train;
    F->arr[0] = f->theta, F->len[0] = f->blocks * f->P;
    F->arr[1] = f->T, F->len[1] = f->blocks;
    F->arr[2] = st->m, F->len[2] = st->n;
    F->arr[3] = st->v, F->len[3] = st->n;
    F->narr = 4;
    return 0;
  }
  cnf_stack *s = m->stack;
  const cnf_train_options *to = &F->fo.train;
  if (!(to->lr > 0) || !(to->weight_decay >= 0) || !(to->beta1 >= 0 && to->beta1 < 1) ||
      !(to->beta2 >= 0 && to->beta2 < 1) || !(to->eps > 0))
    return CNF_ERROR(F->ctx, CNF_EINVAL, "fit: need lr > 0, weight decay >= 0, betas in [0, 1) "
                     "and eps > 0");
  const int fresh = s->m == NULL;
  if (cnf__stack_train_state(s) != 0) return CNF_ERROR(F->ctx, CNF_ENOMEM, "fit: out of memory");
  if (fresh) s->seed = F->fo.seed, s->iter = 0, s->updates = 0;
  F->grad = s->grad, F->ng = s->P;
  F->arr[0] = s->theta, F->len[0] = s->P;
  F->arr[1] = s->m, F->len[1] = s->P;
  F->arr[2] = s->v, F->len[2] = s->P;
  F->narr = 3;
  return 0;
}

static void fit_free(fit *F) {
  cnf_train_free(F->tr);
  cnf__free(F->x);
  cnf__free(F->idx);
  cnf__free(F->red);
  cnf__free(F->backup);
  cnf__free(F->fm);
}

/* The global batch of step `it` into F->x, then this worker's rows moved
 * to its front. */
static int draw(fit *F, long it) {
  const cnf_fit_data *d = F->data;
  const size_t D = d->D;
  int rc;
  if (d->rows != NULL) {
    rc = cnf_train_batch_indices(seed_of(F->m), it, d->N, F->B, F->idx);
    for (size_t b = F->lo; b < F->hi && rc == 0; b++)
      memcpy(F->x + (b - F->lo) * D, d->rows + F->idx[b] * D, D * sizeof(double));
    return rc == 0 ? 0 : CNF_ERROR(F->ctx, rc, "fit: cannot draw the batch of step %ld", it + 1);
  }
  rc = d->draw(d->user, cnf_seed_derive(seed_of(F->m), "batch", (uint64_t)it), F->B, D, F->x);
  if (rc != 0)
    return cnf_ctx_errmsg(F->ctx)[0] ? rc
                                     : CNF_ERROR(F->ctx, rc, "fit: the data generator failed "
                                                 "at step %ld", it + 1);
  if (F->lo > 0) memmove(F->x, F->x + F->lo * D, (F->hi - F->lo) * D * sizeof(double));
  return 0;
}

/* Flow matching on this worker's nb rows: the path from the standardized
 * rows at t = 0 to paired noise at T, the regression loss and its gradient
 * into the trainer's buffer (dL/dT = 0: T is held). */
static int fm_gradient(fit *F, long it, size_t nb, double *loss) {
  cnf_flow *f = F->m->flow;
  const size_t D = F->data->D, P = f->P;
  f->train->iter++; /* a failed step counts too */
  double *xs = F->fm, *z = xs + F->B * D, *e = z + F->B * D, *s = e + F->B * D;
  for (size_t b = 0; b < nb; b++)
    for (size_t j = 0; j < D; j++) {
      const double v = F->x[b * D + j];
      xs[b * D + j] = f->shift != NULL ? (v - f->shift[j]) / f->scale[j] : v;
    }
  const double sigma = F->fo.fm_sigma;
  const cnf_fm_coupling c = F->fo.objective == CNF_OBJECTIVE_OT_FM ? CNF_FM_OT : CNF_FM_INDEPENDENT;
  int rc = cnf_fm_batch(F->ctx, c, cnf_seed_derive(seed_of(F->m), "fm", (uint64_t)it), nb, D, xs,
                        z, s, sigma > 0 ? e : NULL);
  int saved = 0;
  if (rc == 0 && (rc = cnf__dyn_precision_begin(f->dyn, F->fo.opt.precision, 1, &saved)) == 0) {
    rc = cnf_fm_loss_grad(f->dyn, f->theta, f->T[0], sigma, nb, xs, z, s, sigma > 0 ? e : NULL,
                          loss, F->grad);
    cnf__dyn_precision_end(f->dyn, saved);
  }
  memset(F->grad + P, 0, (F->ng - P) * sizeof(double));
  return rc;
}

/* Loss and gradient of this worker's rows (the step counted), summed over
 * the workers into the global mean; rep's loss parts and statistics set.
 * Returns the step's status (a failure on any worker fails it). */
static int gradient(fit *F, long it, cnf_fit_report *rep) {
  cnf_model *m = F->m;
  const size_t nb = F->hi - F->lo;
  int rc = 0;
  double parts[4] = {NAN, NAN, 0.0, 0.0}; /* loss, nll, kinetic, jacobian */
  if (nb > 0 && F->fo.objective != CNF_OBJECTIVE_MLE) {
    rc = fm_gradient(F, it, nb, &parts[0]);
  } else if (nb > 0 && m->flow) {
    cnf_train_report tr;
    rc = cnf__train_grad(F->tr, &F->fo.opt, nb, F->x, &tr);
    parts[0] = tr.loss, parts[1] = tr.nll, parts[2] = tr.kinetic, parts[3] = tr.jacobian;
    rep->fwd = tr.fwd, rep->bwd = tr.bwd;
  } else if (nb > 0) {
    cnf_stack *s = m->stack;
    cnf_stack_seed(s, cnf_seed_derive(s->seed, "probes", (uint64_t)it));
    s->iter++; /* a failed step counts too */
    rc = cnf_stack_set_options(s, &F->fo.opt);
    if (rc == 0) rc = cnf_stack_loss_grad(s, nb, F->x, &parts[0], F->grad);
    parts[1] = parts[0];
  } else {
    ++*iter_of(m);
    memset(F->grad, 0, F->ng * sizeof(double));
    parts[0] = parts[1] = 0.0;
  }
  const cnf_fit_comm *c = F->fo.comm;
  if (c != NULL && c->size > 1) {
    const double w = F->dist ? 1.0 : (double)nb;
    for (size_t i = 0; i < F->ng; i++) F->red[i] = w * F->grad[i];
    for (int k = 0; k < 4; k++) F->red[F->ng + (size_t)k] = w * parts[k];
    F->red[F->ng + 4] = rc != 0;
    const double own = F->fo.stop != NULL ? (double)*F->fo.stop : 0.0;
    F->red[F->ng + 5] = own;
    F->red[F->ng + 6] = own != 0.0;
    int rr = c->sum_all(c->user, F->red, F->ng + 7);
    if (rr != 0)
      return CNF_ERROR(F->ctx, rr < 0 ? rr : CNF_EIO, "fit: the gradient reduction failed at "
                       "step %ld", it + 1);
    if (F->red[F->ng + 6] > 0) {
      /* a stop request on any worker: all stop after this step, and the
       * others see the request's value (e.g. the signal) in *stop */
      F->stop_all = 1;
      if (F->fo.stop != NULL && own == 0.0)
        *F->fo.stop = (sig_atomic_t)(F->red[F->ng + 5] / F->red[F->ng + 6]);
    }
    const double inv = F->dist ? 1.0 : 1.0 / (double)F->B;
    for (size_t i = 0; i < F->ng; i++) F->grad[i] = inv * F->red[i];
    for (int k = 0; k < 4; k++) parts[k] = inv * F->red[F->ng + (size_t)k];
    if (rc == 0 && F->red[F->ng + 4] > 0)
      rc = CNF_ERROR(F->ctx, CNF_ESOLVER, "step %ld failed on another worker", it + 1);
  }
  rep->loss = parts[0], rep->nll = parts[1], rep->kinetic = parts[2], rep->jacobian = parts[3];
  if (rc != 0) return rc;
  if (m->flow) {
    cnf_train_report tr;
    memset(&tr, 0, sizeof tr);
    tr.loss = rep->loss;
    rc = cnf__train_check(F->tr, &tr);
    rep->grad_norm = tr.grad_norm;
    return rc;
  }
  double g2 = 0.0;
  for (size_t i = 0; i < F->ng; i++) g2 += F->grad[i] * F->grad[i];
  rep->grad_norm = sqrt(g2);
  if (!(isfinite(g2) && isfinite(rep->loss)))
    return CNF_ERROR(F->ctx, CNF_ENONFINITE, "step %ld: the loss or its gradient is not finite "
                     "(loss %g, |grad| %g); the update was skipped", it + 1, rep->loss,
                     rep->grad_norm);
  return 0;
}

/* Adam, undone when it leaves a non-finite value behind. */
static int update(fit *F, long step) {
  double *b = F->backup;
  for (int k = 0; k < F->narr; k++) memcpy(b, F->arr[k], F->len[k] * sizeof(double)), b += F->len[k];
  F->updates = *updates_of(F->m);
  if (F->m->flow) {
    cnf__train_apply(F->tr);
  } else {
    cnf_stack *s = F->m->stack;
    s->updates++;
    cnf_adam_update(&F->fo.train, s->updates, s->P, F->grad, s->theta, s->m, s->v);
  }
  int finite = 1;
  for (int k = 0; k < F->narr && finite; k++)
    for (size_t i = 0; i < F->len[k]; i++)
      if (!isfinite(F->arr[k][i])) {
        finite = 0;
        break;
      }
  if (finite) return 0;
  b = F->backup;
  for (int k = 0; k < F->narr; k++) memcpy(F->arr[k], b, F->len[k] * sizeof(double)), b += F->len[k];
  *updates_of(F->m) = F->updates;
  return CNF_ERROR(F->ctx, CNF_ENONFINITE, "step %ld: the update made parameters non-finite "
                   "(the run has diverged; lower the learning rate); the model is kept as it was "
                   "before the step", step);
}

/* Rank 0 writes; with workers every worker then learns its outcome (one
 * sum_all), so all go on or stop together and none reads the file before
 * it is in place. */
static int save(fit *F, const char *path) {
  const cnf_fit_comm *c = F->fo.comm;
  if (path == NULL) return 0;
  const int workers = c != NULL && c->size > 1;
  int rc = c != NULL && c->rank != 0 ? 0 : cnf_model_save(F->m, path);
  if (workers) {
    double failed = rc != 0;
    if (c->sum_all(c->user, &failed, 1) != 0)
      return CNF_ERROR(F->ctx, CNF_EIO, "fit: the reduction after saving %s failed", path);
    if (failed > 0 && rc == 0)
      rc = CNF_ERROR(F->ctx, CNF_EIO, "fit: rank 0 could not write %s", path);
  }
  return rc;
}

/* The running mean of the CLI's progress line: 0.97 decay from the first
 * value. */
static double running(double avg, double x) { return isnan(avg) ? x : 0.97 * avg + 0.03 * x; }

static int check_args(cnf_model *m, const cnf_fit_data *data, const cnf_fit_options *fo) {
  cnf_ctx *ctx = m->ctx;
  if (data == NULL) return CNF_ERROR(ctx, CNF_EINVAL, "fit: NULL argument");
  const size_t D = cnf_model_dim(m);
  if (data->D != D)
    return CNF_ERROR(ctx, CNF_EINVAL, "fit: the data has %zu columns, the model dimension %zu",
                     data->D, D);
  if ((data->rows == NULL) == (data->draw == NULL))
    return CNF_ERROR(ctx, CNF_EINVAL, "fit: give either rows or a generator");
  if (data->rows != NULL && data->N == 0) return CNF_ERROR(ctx, CNF_EINVAL, "fit: no rows");
  if (fo->batch == 0 || fo->iters < 0 || fo->val_every < 1 || fo->save_every < 1 ||
      fo->max_failed < 1)
    return CNF_ERROR(ctx, CNF_EINVAL, "fit: need batch, val_every, save_every, max_failed >= 1 "
                     "and iters >= 0");
  if ((unsigned)fo->objective > CNF_OBJECTIVE_OT_FM || !(fo->fm_sigma >= 0) ||
      !isfinite(fo->fm_sigma))
    return CNF_ERROR(ctx, CNF_EINVAL, "fit: unknown objective %d or fm_sigma %g < 0",
                     (int)fo->objective, fo->fm_sigma);
  if (fo->objective != CNF_OBJECTIVE_MLE &&
      (m->flow == NULL || cnf_flow_blocks(m->flow) != 1))
    return CNF_ERROR(ctx, CNF_EINVAL, "fit: flow matching (%s) trains the velocity field of a "
                     "continuous flow of one block; the model is %s%s",
                     cnf_objective_name(fo->objective), m->flow ? "a flow of several blocks, " :
                     "the discrete flow ", m->name);
  if (fo->val != NULL && fo->n_val == 0)
    return CNF_ERROR(ctx, CNF_EINVAL, "fit: validation rows given, but n_val is 0");
  const cnf_fit_comm *c = fo->comm;
  if (c != NULL && (c->size < 1 || c->rank < 0 || c->rank >= c->size ||
                    (c->size > 1 && c->sum_all == NULL)))
    return CNF_ERROR(ctx, CNF_EINVAL, "fit: bad reduction (rank %d of %d)", c->rank, c->size);
  return 0;
}

static int fit_setup(fit *F, cnf_model *m, const cnf_fit_data *data, const cnf_fit_options *fo) {
  memset(F, 0, sizeof *F);
  F->m = m, F->ctx = m->ctx, F->data = data;
  /* the caller's options, as large as its cnf_fit_options was: fields a
   * newer library added keep their defaults */
  if (fo == NULL || fo->size < offsetof(cnf_fit_options, train))
    return CNF_ERROR(F->ctx, CNF_EINVAL, "fit: options %s: call cnf_fit_options_default first",
                     fo == NULL ? "NULL" : "not initialised");
  cnf_fit_options_default(&F->fo);
  memcpy(&F->fo, fo, fo->size < sizeof F->fo ? fo->size : sizeof F->fo);
  F->fo.size = sizeof F->fo;
  fo = &F->fo;
  RET_IF(check_args(m, data, fo));
  const cnf_options opt = fo->opt, eval_opt = fo->eval_opt;
  RET_IF(cnf__options_read(F->ctx, &opt, &F->fo.opt));
  RET_IF(cnf__options_read(F->ctx, &eval_opt, &F->fo.eval_opt));
  const size_t D = data->D;
  F->B = data->rows != NULL && fo->batch > data->N ? data->N : fo->batch;
  if (F->fo.comm == NULL) F->fo.comm = cnf_ctx_comm(F->ctx);
  const cnf_fit_comm *c = F->fo.comm;
  const size_t R = c ? (size_t)c->size : 1, r = c ? (size_t)c->rank : 0;
  cnf__dist_range(F->B, r, R, &F->lo, &F->hi);
  /* flow matching makes no solve: its workers' gradients are plain means */
  F->dist = m->flow != NULL && fo->objective == CNF_OBJECTIVE_MLE && R > 1 &&
            cnf__dist_enabled(F->ctx);
  if (F->dist && (c->size != F->ctx->comm.size || c->rank != F->ctx->comm.rank))
    return CNF_ERROR(F->ctx, CNF_EINVAL, "fit: the reduction (rank %d of %d) is not the "
                     "context's workers (rank %d of %d)", c->rank, c->size,
                     F->ctx->comm.rank, F->ctx->comm.size);
  if (F->dist && F->B < R)
    return CNF_ERROR(F->ctx, CNF_EINVAL, "fit: a batch of %zu rows over %zu workers: need at "
                     "least one row per worker", F->B, R);
  const int fresh = cnf_model_iteration(m) == 0;
  RET_IF(setup_state(F));
  size_t nb = 0;
  for (int k = 0; k < F->narr; k++) nb += F->len[k];
  const size_t rows = F->B > INIT_ROWS ? F->B : INIT_ROWS;
  F->x = cnf__dalloc(F->ctx, rows * D);
  F->idx = cnf__calloc(F->B, sizeof(size_t));
  F->red = cnf__dalloc(F->ctx, F->ng + 7);
  F->backup = cnf__dalloc(F->ctx, nb);
  if (fo->objective != CNF_OBJECTIVE_MLE) F->fm = cnf__dalloc(F->ctx, F->B * (3 * D + 1));
  if (F->x == NULL || F->idx == NULL || F->red == NULL || F->backup == NULL ||
      (fo->objective != CNF_OBJECTIVE_MLE && F->fm == NULL))
    return CNF_ERROR(F->ctx, CNF_ENOMEM, "fit: out of memory");
  if (fresh && m->stack != NULL) {
    /* data-dependent initialisation (actnorm) from the first rows, or
     * from rows of the generator's stream ("init", 0) */
    size_t n = INIT_ROWS;
    const double *x = data->rows;
    if (x != NULL) {
      n = data->N < n ? data->N : n;
    } else {
      int rc = data->draw(data->user, cnf_seed_derive(seed_of(m), "init-data", 0), n, D, F->x);
      if (rc != 0) return CNF_ERROR(F->ctx, rc, "fit: the data generator failed");
      x = F->x;
    }
    RET_IF(cnf_model_init_data(m, n, x));
  }
  return 0;
}

int cnf_fit(cnf_model *m, const cnf_fit_data *data, const cnf_fit_options *fo,
            cnf_fit_result *res) {
  if (m == NULL) return CNF_EINVAL;
  cnf_fit_result out;
  memset(&out, 0, sizeof out);
  out.loss_avg = out.nfe_fwd_running = out.nfe_bwd_running = NAN;
  out.best_val = fo ? fo->best_init : INFINITY;
  cnf_stats_clear(&out.fwd);
  cnf_stats_clear(&out.bwd);
  fit F;
  int rc = fit_setup(&F, m, data, fo);
  if (rc != 0) {
    fit_free(&F);
    if (res) *res = out;
    return rc;
  }
  fo = &F.fo;
  long in_a_row = 0;
  double sum_f = 0, sum_b = 0, sum_kin = 0, sum_jac = 0;
  const int workers = fo->comm != NULL && fo->comm->size > 1;
  while (*iter_of(m) < fo->iters) {
    /* with workers, a stop request is agreed in the step's reduction */
    if (!workers && fo->stop != NULL && *fo->stop) {
      out.stopped = 1;
      break;
    }
    const long it = *iter_of(m);
    cnf_fit_report rep;
    memset(&rep, 0, sizeof rep);
    rep.step = it + 1, rep.total = fo->iters, rep.val_nll = NAN;
    cnf_stats_clear(&rep.fwd);
    cnf_stats_clear(&rep.bwd);
    rc = draw(&F, it);
    if (rc != 0) break;
    rep.status = gradient(&F, it, &rep);
    if (rep.status == CNF_EIO || rep.status == CNF_ENOMEM) {
      rc = rep.status; /* not a bad step: a broken run */
      break;
    }
    out.steps++;
    if (rep.status == 0) {
      rc = update(&F, it + 1);
      if (rc != 0) break;
      in_a_row = 0;
      cnf_stats_add(&out.fwd, &rep.fwd);
      cnf_stats_add(&out.bwd, &rep.bwd);
      const double nf = (double)rep.fwd.nfe, nbw = (double)(rep.bwd.nfe + rep.bwd.nquad);
      out.loss_avg = running(out.loss_avg, rep.loss);
      out.nfe_fwd_running = running(out.nfe_fwd_running, nf);
      out.nfe_bwd_running = running(out.nfe_bwd_running, nbw);
      sum_f += nf, sum_b += nbw, sum_kin += rep.kinetic, sum_jac += rep.jacobian;
    } else {
      out.failed++;
      in_a_row++;
    }
    rep.loss_avg = out.loss_avg;
    rep.T = m->flow ? cnf_flow_end_time(m->flow, 0) : NAN;
    const long done = it + 1;
    if (rep.status != 0) {
      /* skipped: no validation, no checkpoint */
      if (fo->callback != NULL && fo->callback(fo->user, &rep) != 0) out.stopped = 1;
      if (F.stop_all) out.stopped = 1;
      if (in_a_row >= fo->max_failed) {
        char last[256];
        snprintf(last, sizeof last, "%s", cnf_ctx_errmsg(F.ctx));
        rc = CNF_ERROR(F.ctx, rep.status, "%ld steps in a row failed (the last: %s); stopping",
                       in_a_row, last);
        break;
      }
      if (out.stopped) break;
      continue;
    }
    if (fo->val != NULL && (done % fo->val_every == 0 || done == fo->iters)) {
      rep.validated = 1;
      cnf_model_seed(m, cnf_seed_derive(seed_of(m), "val", (uint64_t)done));
      if (cnf_model_nll(m, &fo->eval_opt, fo->n_val, fo->val, &rep.val_nll, NULL) != 0)
        rep.val_nll = NAN; /* reported; the message is in the context */
      if (rep.val_nll < out.best_val) {
        out.best_val = rep.val_nll;
        rep.best = 1;
        if ((rc = save(&F, fo->best_path)) != 0) break;
      }
    }
    if (fo->state_path != NULL && (done % fo->save_every == 0 || done == fo->iters) &&
        (rc = save(&F, fo->state_path)) != 0)
      break;
    if (fo->callback != NULL && fo->callback(fo->user, &rep) != 0) out.stopped = 1;
    if (F.stop_all) out.stopped = 1;
    if (out.stopped) break;
  }
  const long ok = out.steps - out.failed;
  out.nfe_fwd_mean = ok ? sum_f / (double)ok : 0.0;
  out.nfe_bwd_mean = ok ? sum_b / (double)ok : 0.0;
  out.kinetic_mean = ok ? sum_kin / (double)ok : 0.0;
  out.jacobian_mean = ok ? sum_jac / (double)ok : 0.0;
  out.iteration = cnf_model_iteration(m);
  /* the latest state on disk (also after a stop), and something at
   * best_path; after an error the files stay as the last good step left
   * them */
  if (rc == 0) {
    rc = save(&F, fo->state_path);
    if (rc == 0 && fo->best_path != NULL && fo->val != NULL && !isfinite(out.best_val))
      rc = save(&F, fo->best_path);
  }
  fit_free(&F);
  if (res) *res = out;
  return rc;
}
