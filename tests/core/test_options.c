/* test_options.c: cnf_options_default, reading a caller's cnf_options
 * (size 0 refused, an older and smaller struct completed with defaults, a
 * newer and larger one cut to ours), the names of traces, methods,
 * layers and activations, the "64-64-64" hidden-layer notation, parameter
 * counts, and the statistics counters. */
#define _POSIX_C_SOURCE 200809L /* setenv, sysconf */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnf.h"
#include "core.h" /* white box: cnf__options_read */
#include "suites.h"

#define LOG_2PI 1.8378770664093454836 /* log(2 pi) */

static void test_defaults(void) {
  cnf_options o;
  memset(&o, 0xAB, sizeof o); /* every field must be set */
  cnf_options_default(&o);
  CU_ASSERT_EQUAL(o.rtol, 1e-5);
  CU_ASSERT_EQUAL(o.atol, 1e-5);
  CU_ASSERT_EQUAL(o.atol_logp, 0.0);
  CU_ASSERT_EQUAL(o.max_steps, 20000);
  CU_ASSERT_EQUAL(o.max_order, 0);
  CU_ASSERT_EQUAL(o.h_init, 0.0);
  CU_ASSERT_EQUAL(o.max_nonlin_iters, 3);
  CU_ASSERT_EQUAL(o.method, CNF_METHOD_ADAMS);
  CU_ASSERT_EQUAL(o.trace, CNF_TRACE_EXACT);
  CU_ASSERT_EQUAL(o.probes, 1);
  CU_ASSERT_EQUAL(o.size, sizeof o);
  CU_ASSERT_EQUAL(o.batch, 0);
  CU_ASSERT_EQUAL(o.adjoint, CNF_ADJOINT_CHECKPOINT);
  CU_ASSERT_EQUAL(o.rtol_adj, 0.0);
  CU_ASSERT_EQUAL(o.atol_adj, 0.0);
  CU_ASSERT_EQUAL(o.seminorm, 1);
  CU_ASSERT_EQUAL(o.checkpoint_steps, 100);

  cnf_mlp_config c;
  memset(&c, 0xAB, sizeof c);
  cnf_mlp_config_default(&c, 2);
  CU_ASSERT_EQUAL(c.dim, 2);
  CU_ASSERT_EQUAL(c.n_hidden, 3);
  CU_ASSERT_TRUE(c.hidden[0] == 64 && c.hidden[1] == 64 && c.hidden[2] == 64);
  CU_ASSERT_EQUAL(c.hidden[3], 0);
  CU_ASSERT_EQUAL(c.layer, CNF_LAYER_CONCATSQUASH);
  CU_ASSERT_EQUAL(c.act, CNF_ACT_TANH);
}

static void test_names_round_trip(void) {
  const char *tn[] = {"exact", "gauss", "rademacher"};
  for (int i = 0; i < 3; i++) {
    cnf_trace t = (cnf_trace)99;
    CU_ASSERT_STRING_EQUAL(cnf_trace_name((cnf_trace)i), tn[i]);
    CU_ASSERT_EQUAL(cnf_trace_parse(cnf_trace_name((cnf_trace)i), &t), 0);
    CU_ASSERT_EQUAL(t, i);
  }
  const char *mn[] = {"adams", "bdf"};
  for (int i = 0; i < 2; i++) {
    cnf_method m = (cnf_method)99;
    CU_ASSERT_STRING_EQUAL(cnf_method_name((cnf_method)i), mn[i]);
    CU_ASSERT_EQUAL(cnf_method_parse(cnf_method_name((cnf_method)i), &m), 0);
    CU_ASSERT_EQUAL(m, i);
  }
  const char *ln[] = {"concatsquash", "concat", "ignore"};
  for (int i = 0; i < 3; i++) {
    cnf_layer l = (cnf_layer)99;
    CU_ASSERT_STRING_EQUAL(cnf_layer_name((cnf_layer)i), ln[i]);
    CU_ASSERT_EQUAL(cnf_layer_parse(cnf_layer_name((cnf_layer)i), &l), 0);
    CU_ASSERT_EQUAL(l, i);
  }
  const char *an[] = {"tanh", "softplus"};
  for (int i = 0; i < 2; i++) {
    cnf_act a = (cnf_act)99;
    CU_ASSERT_STRING_EQUAL(cnf_act_name((cnf_act)i), an[i]);
    CU_ASSERT_EQUAL(cnf_act_parse(cnf_act_name((cnf_act)i), &a), 0);
    CU_ASSERT_EQUAL(a, i);
  }
  const char *jn[] = {"backsolve", "checkpoint"};
  for (int i = 0; i < 2; i++) {
    cnf_adjoint j = (cnf_adjoint)99;
    CU_ASSERT_STRING_EQUAL(cnf_adjoint_name((cnf_adjoint)i), jn[i]);
    CU_ASSERT_EQUAL(cnf_adjoint_parse(cnf_adjoint_name((cnf_adjoint)i), &j), 0);
    CU_ASSERT_EQUAL(j, i);
  }
  cnf_adjoint jbad = (cnf_adjoint)77;
  CU_ASSERT_EQUAL(cnf_adjoint_parse("back-solve", &jbad), CNF_EINVAL);
  CU_ASSERT_EQUAL(jbad, 77);
  CU_ASSERT_STRING_EQUAL(cnf_adjoint_name((cnf_adjoint)2), "?");
  /* out-of-range values have a placeholder name, not a crash */
  CU_ASSERT_STRING_EQUAL(cnf_trace_name((cnf_trace)3), "?");
  CU_ASSERT_STRING_EQUAL(cnf_method_name((cnf_method)-1), "?");
  CU_ASSERT_STRING_EQUAL(cnf_layer_name((cnf_layer)3), "?");
  CU_ASSERT_STRING_EQUAL(cnf_act_name((cnf_act)2), "?");
}

static void test_unknown_names(void) {
  const char *bad[] = {"", "Exact", "exact ", " exact", "adamsx", "bd", "tan",
                       "concat-squash", "IGNORE", "softplus\n", "gaussian", "?"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cnf_trace t = (cnf_trace)77;
    cnf_method m = (cnf_method)77;
    cnf_layer l = (cnf_layer)77;
    cnf_act a = (cnf_act)77;
    CU_ASSERT_EQUAL(cnf_trace_parse(bad[i], &t), CNF_EINVAL);
    CU_ASSERT_EQUAL(cnf_method_parse(bad[i], &m), CNF_EINVAL);
    CU_ASSERT_EQUAL(cnf_layer_parse(bad[i], &l), CNF_EINVAL);
    CU_ASSERT_EQUAL(cnf_act_parse(bad[i], &a), CNF_EINVAL);
    /* outputs untouched on failure */
    CU_ASSERT_TRUE(t == 77 && m == 77 && l == 77 && a == 77);
  }
  cnf_trace t;
  CU_ASSERT_EQUAL(cnf_trace_parse(NULL, &t), CNF_EINVAL);
  cnf_act a;
  CU_ASSERT_EQUAL(cnf_act_parse(NULL, &a), CNF_EINVAL);
}

static void test_hidden_parse(void) {
  cnf_mlp_config c;
  cnf_mlp_config_default(&c, 2);
  CU_ASSERT_EQUAL(cnf_mlp_parse_hidden(&c, "64-64-64"), 0);
  CU_ASSERT_EQUAL(c.n_hidden, 3);
  CU_ASSERT_TRUE(c.hidden[0] == 64 && c.hidden[1] == 64 && c.hidden[2] == 64);
  CU_ASSERT_EQUAL(cnf_mlp_parse_hidden(&c, "7-300-1"), 0);
  CU_ASSERT_EQUAL(c.n_hidden, 3);
  CU_ASSERT_TRUE(c.hidden[0] == 7 && c.hidden[1] == 300 && c.hidden[2] == 1);
  CU_ASSERT_EQUAL(cnf_mlp_parse_hidden(&c, "5"), 0);
  CU_ASSERT_TRUE(c.n_hidden == 1 && c.hidden[0] == 5);
  CU_ASSERT_EQUAL(cnf_mlp_parse_hidden(&c, "0"), 0);
  CU_ASSERT_EQUAL(c.n_hidden, 0);
  CU_ASSERT_EQUAL(cnf_mlp_parse_hidden(&c, "32-16"), 0);
  CU_ASSERT_EQUAL(cnf_mlp_parse_hidden(&c, ""), 0);
  CU_ASSERT_EQUAL(c.n_hidden, 0);

  /* 16 layers is the maximum, 17 is rejected */
  char s16[64] = "", s17[80] = "";
  for (int i = 0; i < 16; i++) strcat(s16, i ? "-2" : "2");
  snprintf(s17, sizeof s17, "%s-2", s16);
  CU_ASSERT_EQUAL(cnf_mlp_parse_hidden(&c, s16), 0);
  CU_ASSERT_EQUAL(c.n_hidden, CNF_MAX_HIDDEN);

  cnf_mlp_parse_hidden(&c, "32-16");
  const char *bad[] = {"64--64", "-1", "64-", "abc", s17, "-", "64-0",
                       "0-64", " 64", "64 ", "+64", "64-+3", "6 4", "64,64",
                       "1e3", "99999999999999999999999", "1000001", "0x40"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int rc = cnf_mlp_parse_hidden(&c, bad[i]);
    CU_ASSERT_EQUAL(rc, CNF_EINVAL);
    if (rc != CNF_EINVAL) printf("\n  accepted hidden \"%s\"\n", bad[i]);
    /* the config is untouched on failure */
    CU_ASSERT_TRUE(c.n_hidden == 2 && c.hidden[0] == 32 && c.hidden[1] == 16);
  }
  CU_ASSERT_EQUAL(cnf_mlp_parse_hidden(&c, NULL), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_mlp_parse_hidden(NULL, "64"), CNF_EINVAL);
}

static void test_hidden_format(void) {
  cnf_mlp_config c;
  cnf_mlp_config_default(&c, 3);
  char buf[64];
  CU_ASSERT_STRING_EQUAL(cnf_mlp_format_hidden(&c, buf, sizeof buf), "64-64-64");
  const char *cases[] = {"7-300-1", "5", "0", "2-2-2-2-2-2-2-2-2-2-2-2-2-2-2-2"};
  for (size_t i = 0; i < 4; i++) {
    cnf_mlp_config d;
    cnf_mlp_config_default(&d, 3);
    CU_ASSERT_EQUAL(cnf_mlp_parse_hidden(&d, cases[i]), 0);
    CU_ASSERT_STRING_EQUAL(cnf_mlp_format_hidden(&d, buf, sizeof buf), cases[i]);
  }
  /* a short buffer is truncated and terminated */
  char small[5];
  memset(small, 'z', sizeof small);
  cnf_mlp_format_hidden(&c, small, sizeof small);
  CU_ASSERT_EQUAL(small[4], '\0');
  CU_ASSERT_STRING_EQUAL(small, "64-6");
}

static void test_param_count(void) {
  cnf_mlp_config c;
  cnf_mlp_config_default(&c, 2);
  /* 2-64-64-64-2 concatsquash: each layer in -> out has W (out*in), b, and
   * the hyper-network's wb, wg, bg (out each), i.e. out*in + 4 out:
   *   2 -> 64:   128 + 256 =  384
   *   64 -> 64: 4096 + 256 = 4352, twice = 8704
   *   64 -> 2:   128 +   8 =  136
   * total 9224.  FFJORD reports 9225 for the same model: its count adds
   * the learnable end time T, which cnf keeps outside the network. */
  CU_ASSERT_EQUAL(cnf_mlp_param_count(&c), 9224);
  /* concat: W, b and wt (out each): out*in + 2 out
   *   256 + 2 * 4224 + 132 = 8836 */
  c.layer = CNF_LAYER_CONCAT;
  CU_ASSERT_EQUAL(cnf_mlp_param_count(&c), 8836);
  /* ignore: W and b: 192 + 2 * 4160 + 130 = 8642 */
  c.layer = CNF_LAYER_IGNORE;
  CU_ASSERT_EQUAL(cnf_mlp_param_count(&c), 8642);
  /* no hidden layer: one D -> D layer, 3*3 + 3 */
  cnf_mlp_parse_hidden(&c, "0");
  c.dim = 3;
  CU_ASSERT_EQUAL(cnf_mlp_param_count(&c), 12);
  c.act = CNF_ACT_SOFTPLUS; /* the activation has no parameters */
  CU_ASSERT_EQUAL(cnf_mlp_param_count(&c), 12);

  /* invalid configurations count 0 */
  cnf_mlp_config_default(&c, 0);
  CU_ASSERT_EQUAL(cnf_mlp_param_count(&c), 0);
  cnf_mlp_config_default(&c, 2);
  c.hidden[1] = 0;
  CU_ASSERT_EQUAL(cnf_mlp_param_count(&c), 0);
  cnf_mlp_config_default(&c, 2);
  c.n_hidden = CNF_MAX_HIDDEN + 1;
  CU_ASSERT_EQUAL(cnf_mlp_param_count(&c), 0);
  cnf_mlp_config_default(&c, 2);
  c.layer = (cnf_layer)3;
  CU_ASSERT_EQUAL(cnf_mlp_param_count(&c), 0);
  cnf_mlp_config_default(&c, 2);
  c.act = (cnf_act)2;
  CU_ASSERT_EQUAL(cnf_mlp_param_count(&c), 0);
  CU_ASSERT_EQUAL(cnf_mlp_param_count(NULL), 0);
}

static void test_stats(void) {
  cnf_stats a, b;
  memset(&a, 0x5A, sizeof a);
  cnf_stats_clear(&a);
  CU_ASSERT_TRUE(a.solves == 0 && a.nfe == 0 && a.nsteps == 0 && a.netf == 0 &&
                 a.nni == 0 && a.nncf == 0 && a.njtv == 0 && a.nli == 0 &&
                 a.nquad == 0 && a.last_h == 0.0);
  b = (cnf_stats){.solves = 1, .nfe = 2, .nsteps = 3, .netf = 4, .nni = 5, .nncf = 6,
                  .njtv = 7, .nli = 8, .nquad = 9, .last_h = 0.25};
  cnf_stats_add(&a, &b);
  cnf_stats_add(&a, &b);
  b.last_h = 0.125;
  cnf_stats_add(&a, &b);
  CU_ASSERT_TRUE(a.solves == 3 && a.nfe == 6 && a.nsteps == 9 && a.netf == 12 &&
                 a.nni == 15 && a.nncf == 18 && a.njtv == 21 && a.nli == 24 &&
                 a.nquad == 27);
  CU_ASSERT_EQUAL(a.last_h, 0.125); /* the last, not a sum */
}

static void test_log_normal(void) {
  const double z[3] = {0.5, -1.25, 2.0};
  /* -|z|^2/2 - (D/2) log(2 pi), |z|^2 = 0.25 + 1.5625 + 4 */
  CHECK_NEAR(cnf_log_normal(z, 3), -0.5 * 5.8125 - 1.5 * LOG_2PI, 1e-14);
  CHECK_NEAR(cnf_log_normal(z, 1), -0.125 - 0.5 * LOG_2PI, 1e-15);
}

/* A struct the caller never initialised (zeroed) is refused with a message
 * that says what to do, by the internal reader and by a public call. */
static void test_options_size_zero(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  cnf_options in, out;
  memset(&in, 0, sizeof in);
  in.rtol = in.atol = 1e-6;
  CU_ASSERT_EQUAL(cnf__options_read(ctx, &in, &out), CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "cnf_options_default"));
  CU_ASSERT_EQUAL(cnf__options_read(ctx, NULL, &out), CNF_EINVAL);

  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  CU_ASSERT_EQUAL_FATAL(cnf_mlp_parse_hidden(&cfg, "4"), 0);
  cnf_flow *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create(&f, ctx, &cfg, 1, 0.5, 7), 0);
  const double x[2] = {0.3, -0.2};
  double lp = 0.0;
  cnf_ctx_clear_error(ctx);
  CU_ASSERT_EQUAL(cnf_flow_logp(f, &in, 1, x, &lp, NULL), CNF_EINVAL);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "cnf_options_default"));
  cnf_flow_free(f);
  cnf_ctx_free(ctx);
}

/* An older program's struct ends before reg_kinetic: the reader takes its
 * fields up to there and the defaults after, whatever the memory past its
 * end holds.  A newer program's larger struct is cut to ours. */
static void test_options_older_and_newer(void) {
  cnf_ctx *ctx = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  cnf_options in, out, def;
  cnf_options_default(&def);
  cnf_options_default(&in);
  in.size = offsetof(cnf_options, reg_kinetic);
  in.rtol = 2.5e-7;
  in.checkpoint_steps = 37;
  in.reg_kinetic = NAN; /* past the end of the old struct: not read */
  in.reg_jacobian = -3.0;
  in.report_var = 99;
  CU_ASSERT_EQUAL(cnf__options_read(ctx, &in, &out), 0);
  CU_ASSERT_EQUAL(out.size, sizeof(cnf_options));
  CU_ASSERT_EQUAL(out.rtol, 2.5e-7);
  CU_ASSERT_EQUAL(out.checkpoint_steps, 37);
  CU_ASSERT_EQUAL(out.atol, def.atol);
  CU_ASSERT_EQUAL(out.reg_kinetic, 0.0);
  CU_ASSERT_EQUAL(out.reg_jacobian, 0.0);
  CU_ASSERT_EQUAL(out.report_var, 0);

  /* through a public call: the loss rejects a NaN regulariser weight in a
   * full-size struct, and never sees it in the older one */
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, 2);
  CU_ASSERT_EQUAL_FATAL(cnf_mlp_parse_hidden(&cfg, "4"), 0);
  cnf_flow *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create(&f, ctx, &cfg, 1, 0.5, 7), 0);
  const double x[4] = {0.3, -0.2, 1.1, 0.4};
  double grad_old[64], grad_def[64], L_old = 0.0, L_def = 1.0;
  CU_ASSERT_FATAL(cnf_flow_param_count(f) <= 64);
  cnf_options full = in;
  full.size = sizeof full;
  CU_ASSERT_EQUAL(cnf_flow_loss_grad(f, &full, 2, x, &L_old, grad_old, NULL, NULL, NULL),
                  CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_flow_loss_grad(f, &in, 2, x, &L_old, grad_old, NULL, NULL, NULL), 0);
  def.rtol = 2.5e-7;
  def.checkpoint_steps = 37;
  CU_ASSERT_EQUAL(cnf_flow_loss_grad(f, &def, 2, x, &L_def, grad_def, NULL, NULL, NULL), 0);
  CU_ASSERT_EQUAL(L_old, L_def);
  CU_ASSERT_TRUE(isfinite(L_old) && L_old > 0.0);
  cnf_flow_free(f);

  /* a newer, larger struct: our fields are read, the unknown tail ignored */
  struct {
    cnf_options o;
    double later[4];
  } big;
  cnf_options_default(&big.o);
  big.o.size = sizeof big;
  big.o.probes = 5;
  for (int i = 0; i < 4; i++) big.later[i] = 1e300;
  CU_ASSERT_EQUAL(cnf__options_read(ctx, &big.o, &out), 0);
  CU_ASSERT_EQUAL(out.size, sizeof(cnf_options));
  CU_ASSERT_EQUAL(out.probes, 5);
  cnf_ctx_free(ctx);
}

/* cnf_threads_default: the online cores, 1 to 64, divided among the ranks
 * Open MPI or MPICH report on the machine. */
static void test_threads_default(void) {
  const char *saved = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  char keep[32] = "";
  if (saved != NULL) snprintf(keep, sizeof keep, "%s", saved);
  unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  unsetenv("MPI_LOCALNRANKS");
  const long cores = sysconf(_SC_NPROCESSORS_ONLN);
  const size_t all = cores < 1 ? 1 : cores > 64 ? 64 : (size_t)cores;
  CU_ASSERT_EQUAL(cnf_threads_default(), all);
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "2", 1);
  CU_ASSERT_EQUAL(cnf_threads_default(), cores / 2 < 1 ? 1 : (size_t)(cores / 2 > 64 ? 64 : cores / 2));
  setenv("OMPI_COMM_WORLD_LOCAL_SIZE", "100000", 1);
  CU_ASSERT_EQUAL(cnf_threads_default(), 1);
  unsetenv("OMPI_COMM_WORLD_LOCAL_SIZE");
  setenv("MPI_LOCALNRANKS", "1", 1);
  CU_ASSERT_EQUAL(cnf_threads_default(), all);
  unsetenv("MPI_LOCALNRANKS");
  if (saved != NULL) setenv("OMPI_COMM_WORLD_LOCAL_SIZE", keep, 1);
}

const test_entry options_tests[] = {
    {"defaults", test_defaults},
    {"options: size 0 is refused with a message", test_options_size_zero},
    {"options: an older, smaller struct gets defaults for its missing tail",
     test_options_older_and_newer},
    {"names round trip", test_names_round_trip},
    {"unknown names are EINVAL", test_unknown_names},
    {"hidden notation: parse and reject", test_hidden_parse},
    {"hidden notation: format", test_hidden_format},
    {"parameter counts (9224 for the 2-D default)", test_param_count},
    {"statistics counters", test_stats},
    {"log N(z; 0, I)", test_log_normal},
    {"default threads: the cores, shared among the machine's ranks", test_threads_default},
    {NULL, NULL},
};
