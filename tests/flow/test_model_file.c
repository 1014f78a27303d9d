/* test_model_file.c: cnf_flow_save and cnf_flow_load.
 *
 * The format (src/io/model_io.c): one header line
 *   "CNF-MODEL 1 dim=.. blocks=.. hidden=.. layer=.. act=.. params=.. crc32=xxxxxxxx\n"
 * then T (blocks) and theta (blocks, params) as little-endian float64,
 * and optionally (" std=1" and " train=1 iter=.. updates=.. seed=.." in the header)
 * the standardization and Adam's moments.  crc32 covers the header before
 * " crc32=" and then the payload.
 *
 * Checked here: bit-exact round trips for every layer type and activation;
 * the file's bytes against an independent reading of the format (our own
 * CRC-32); atomic saves (no temporary left, replacement by rename); and
 * that damage is always refused: truncation at any point, any single byte
 * changed, a newer version, trailing bytes, a missing file. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnf.h"
#include "io.h"
#include "scratch.h"
#include "test_util.h"

extern const test_entry model_file_tests[];

static cnf_ctx *ctx;
static char dir[1024];

static void setup(void) {
  if (ctx == NULL) CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  CU_ASSERT_EQUAL_FATAL(scratch_dir(dir, sizeof dir, "flow"), 0);
}
static void teardown(void) {
  scratch_rmdir(dir);
  cnf_ctx_free(ctx);
  ctx = NULL;
}

/* Bitwise CRC-32 from the definition: the message as a polynomial over
 * GF(2), bits least significant first, register preset to all ones,
 * divided by 0x104C11DB7 (reflected: 0xEDB88320), result complemented. */
static uint32_t ref_crc32(const unsigned char *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++)
    for (int bit = 0; bit < 8; bit++) {
      uint32_t in = ((uint32_t)p[i] >> bit) & 1u;
      uint32_t out = (c ^ in) & 1u;
      c >>= 1;
      if (out) c ^= 0xEDB88320u;
    }
  return ~c;
}

static cnf_flow *make(size_t D, const char *hidden, cnf_layer layer, cnf_act act,
                      size_t blocks, uint64_t seed) {
  cnf_mlp_config cfg;
  cnf_mlp_config_default(&cfg, D);
  CU_ASSERT_EQUAL_FATAL(cnf_mlp_parse_hidden(&cfg, hidden), 0);
  cfg.layer = layer;
  cfg.act = act;
  cnf_flow *f = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_create(&f, ctx, &cfg, blocks, 0.5, seed), 0);
  for (size_t k = 0; k < blocks; k++)
    CU_ASSERT_EQUAL(cnf_flow_set_end_time(f, k, 0.3 + 0.1234567 * (double)k), 0);
  return f;
}

/* a and b hold bit-identical models */
static int same_model(cnf_flow *a, cnf_flow *b) {
  const cnf_mlp_config *ca = cnf_flow_config(a), *cb = cnf_flow_config(b);
  int ok = ca->dim == cb->dim && ca->n_hidden == cb->n_hidden &&
           ca->layer == cb->layer && ca->act == cb->act &&
           cnf_flow_blocks(a) == cnf_flow_blocks(b) &&
           cnf_flow_param_count(a) == cnf_flow_param_count(b);
  for (size_t i = 0; ok && i < ca->n_hidden; i++) ok = ca->hidden[i] == cb->hidden[i];
  for (size_t k = 0; ok && k < cnf_flow_blocks(a); k++) {
    double ta = cnf_flow_end_time(a, k), tb = cnf_flow_end_time(b, k);
    ok = memcmp(&ta, &tb, sizeof ta) == 0;
  }
  if (ok)
    ok = memcmp(cnf_flow_params(a), cnf_flow_params(b),
                cnf_flow_param_count(a) * sizeof(double)) == 0;
  return ok;
}

static void test_round_trip(void) {
  setup();
  char path[1200];
  scratch_path(path, sizeof path, dir, "m.cnf");
  const char *hidden[] = {"5-3", "7", "0", "4-4-4"};
  int cases = 0;
  for (int l = 0; l < 3; l++)
    for (int a = 0; a < 2; a++)
      for (int h = 0; h < 4; h++) {
        cnf_flow *f = make(3, hidden[h], (cnf_layer)l, (cnf_act)a, 3, (uint64_t)(100 + cases));
        CU_ASSERT_EQUAL_FATAL(cnf_flow_save(f, path), 0);
        cnf_flow *g = NULL;
        int rc = cnf_flow_load(&g, ctx, path);
        CU_ASSERT_EQUAL(rc, 0);
        if (rc != 0) {
          printf("\n  %s/%s/%s: %s\n", cnf_layer_name((cnf_layer)l), cnf_act_name((cnf_act)a),
                 hidden[h], cnf_ctx_errmsg(ctx));
          cnf_flow_free(f);
          continue;
        }
        int same = same_model(f, g);
        CU_ASSERT_TRUE(same);
        if (!same)
          printf("\n  %s/%s/%s: loaded model differs\n", cnf_layer_name((cnf_layer)l),
                 cnf_act_name((cnf_act)a), hidden[h]);
        /* and it computes the same log p, bit for bit (exact trace) */
        cnf_options o;
        cnf_options_default(&o);
        double x[4 * 3], la[4], lb[4];
        fill_gauss(x, 12, 6);
        CU_ASSERT_EQUAL(cnf_flow_logp(f, &o, 4, x, la, NULL), 0);
        CU_ASSERT_EQUAL(cnf_flow_logp(g, &o, 4, x, lb, NULL), 0);
        CU_ASSERT_EQUAL(memcmp(la, lb, sizeof la), 0);
        cnf_flow_free(f);
        cnf_flow_free(g);
        cases++;
      }
  CU_ASSERT_EQUAL(cases, 24);
  /* the default 2-D model too */
  cnf_flow *f = make(2, "64-64-64", CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 1, 9);
  CU_ASSERT_EQUAL(cnf_flow_save(f, path), 0);
  cnf_flow *g = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_load(&g, ctx, path), 0);
  CU_ASSERT_TRUE(same_model(f, g));
  cnf_flow_free(f);
  cnf_flow_free(g);
  teardown();
}

/* Split a saved file into header (up to and with '\n') and payload. */
static size_t header_len(const unsigned char *b, size_t n) {
  const unsigned char *nl = memchr(b, '\n', n);
  return nl ? (size_t)(nl - b) + 1 : 0;
}

static void test_file_bytes(void) {
  /* the file read independently of the loader */
  setup();
  char path[1200];
  scratch_path(path, sizeof path, dir, "m.cnf");
  cnf_flow *f = make(3, "5-3", CNF_LAYER_CONCAT, CNF_ACT_SOFTPLUS, 3, 4);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_save(f, path), 0);
  size_t n = 0;
  unsigned char *b = scratch_read(path, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  size_t hl = header_len(b, n);
  CU_ASSERT_TRUE_FATAL(hl > 0);
  /* concat 3-5-3-3: (15 + 10) + (15 + 6) + (9 + 6) = 61 per block */
  const size_t P = 61, K = 3;
  CU_ASSERT_EQUAL(cnf_flow_param_count(f), K * P);
  const char *expect = "CNF-MODEL 1 dim=3 blocks=3 hidden=5-3 layer=concat act=softplus params=61 crc32=";
  const size_t el = strlen(expect);
  CU_ASSERT_EQUAL(strncmp((char *)b, expect, el), 0);
  CU_ASSERT_EQUAL(hl, el + 8 + 1); /* 8 hex digits and '\n' */
  CU_ASSERT_EQUAL(n, hl + 8 * (K + K * P));
  /* payload: T then theta, little-endian float64 */
  double T[3], *th = malloc(K * P * sizeof(double));
  CU_ASSERT_PTR_NOT_NULL_FATAL(th);
  const uint16_t one = 1;
  if (*(const unsigned char *)&one == 1 && n == hl + 8 * (K + K * P)) {
    memcpy(T, b + hl, sizeof T);
    memcpy(th, b + hl + sizeof T, K * P * sizeof(double));
    for (size_t k = 0; k < K; k++) CU_ASSERT_EQUAL(T[k], cnf_flow_end_time(f, k));
    CU_ASSERT_EQUAL(memcmp(th, cnf_flow_params(f), K * P * sizeof(double)), 0);
  }
  free(th);
  /* the checksum: header before " crc32=", then the payload */
  char hex[9] = {0};
  memcpy(hex, b + el, 8);
  unsigned long stored = strtoul(hex, NULL, 16);
  const size_t covered = el - strlen(" crc32=");
  unsigned char *msg = malloc(n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
  memcpy(msg, b, covered);
  memcpy(msg + covered, b + hl, n - hl);
  uint32_t mine = ref_crc32(msg, covered + n - hl);
  CU_ASSERT_EQUAL(stored, mine);
  CU_ASSERT_EQUAL(cnf__crc32(0, msg, covered + n - hl), mine);
  /* the reference itself: the CRC-32 check value */
  CU_ASSERT_EQUAL(ref_crc32((const unsigned char *)"123456789", 9), 0xCBF43926u);
  CU_ASSERT_EQUAL(cnf__crc32(0, "123456789", 9), 0xCBF43926u);
  /* lowercase hex, as written by %08x */
  for (int i = 0; i < 8; i++)
    CU_ASSERT_TRUE((hex[i] >= '0' && hex[i] <= '9') || (hex[i] >= 'a' && hex[i] <= 'f'));
  free(msg);
  free(b);
  cnf_flow_free(f);
  teardown();
}

/* Write `n` bytes as a model file and load it; expects one of two codes. */
static int load_bytes(const char *path, const unsigned char *b, size_t n) {
  CU_ASSERT_EQUAL_FATAL(scratch_write(path, b, n), 0);
  cnf_flow *g = (cnf_flow *)&g;
  cnf_ctx_clear_error(ctx);
  int rc = cnf_flow_load(&g, ctx, path);
  if (rc != 0) CU_ASSERT_PTR_NULL(g);
  if (rc == 0) cnf_flow_free(g);
  return rc;
}

/* Rewrite the crc32 field of a file whose header or payload we changed on
 * purpose, so that only the intended defect remains. */
static void fix_crc(unsigned char *b, size_t n) {
  size_t hl = header_len(b, n);
  char *pos = strstr((char *)b, " crc32=");
  CU_ASSERT_PTR_NOT_NULL_FATAL(pos);
  size_t covered = (size_t)(pos - (char *)b);
  unsigned char *msg = malloc(n);
  memcpy(msg, b, covered);
  memcpy(msg + covered, b + hl, n - hl);
  char hex[9];
  snprintf(hex, sizeof hex, "%08x", (unsigned)ref_crc32(msg, covered + n - hl));
  memcpy(pos + 7, hex, 8);
  free(msg);
}

static void test_damage(void) {
  setup();
  char path[1200], bad[1200];
  scratch_path(path, sizeof path, dir, "m.cnf");
  scratch_path(bad, sizeof bad, dir, "bad.cnf");
  /* a model whose checksum has hex letters, so that the one-byte changes
   * below include a change of case (same number, different bytes) */
  size_t n = 0;
  unsigned char *b = NULL;
  for (uint64_t seed = 12; seed < 40; seed++) {
    free(b);
    cnf_flow *f = make(2, "6-6", CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 3, seed);
    CU_ASSERT_EQUAL_FATAL(cnf_flow_save(f, path), 0);
    cnf_flow_free(f);
    b = scratch_read(path, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    const char *crc = strstr((char *)b, " crc32=");
    CU_ASSERT_PTR_NOT_NULL_FATAL(crc);
    if (strcspn(crc + 7, "abcdef") < 8) break;
  }
  const size_t hl = header_len(b, n);
  CU_ASSERT_TRUE_FATAL(hl > 40 && n > hl + 100);
  unsigned char *c = malloc(n + 64);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  CU_ASSERT_EQUAL(load_bytes(bad, b, n), 0); /* the intact copy loads */

  /* truncation: empty, inside the magic, inside the header, just before
   * and after its newline, inside the first double, mid-payload, 1 short */
  const size_t cuts[] = {0, 1, 5, 20, hl - 10, hl - 2, hl - 1, hl, hl + 1, hl + 7,
                         hl + 8, hl + (n - hl) / 2, n - 9, n - 8, n - 2, n - 1};
  size_t nbad = 0;
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    int rc = load_bytes(bad, b, cuts[i]);
    CU_ASSERT_EQUAL(rc, CNF_ECORRUPT);
    if (rc != CNF_ECORRUPT && nbad++ < 5)
      printf("\n  cut at %zu of %zu: %s (%s)", cuts[i], n, cnf_errname(rc), cnf_ctx_errmsg(ctx));
  }
  CU_ASSERT_EQUAL(load_bytes(bad, b, hl), CNF_ECORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "truncated"));

  /* one byte changed: every header byte and every 7th payload byte, each
   * with four patterns (lowest bit, the ASCII case bit, the top bit, all
   * bits).  Never a success; only a changed version digit may say
   * CNF_EVERSION. */
  const unsigned char masks[] = {0x01, 0x20, 0x80, 0xFF};
  size_t tried = 0, eversion = 0, accepted = 0;
  for (size_t pos = 0; pos < n; pos += pos < hl ? 1 : 7) {
    for (size_t m = 0; m < 4; m++) {
      memcpy(c, b, n);
      c[pos] ^= masks[m];
      int rc = load_bytes(bad, c, n);
      tried++;
      if (rc == CNF_EVERSION) eversion++;
      if (rc != CNF_ECORRUPT && rc != CNF_EVERSION) {
        if (accepted++ < 8)
          printf("\n  byte %zu ('%c') ^ 0x%02x: %s %s", pos, b[pos] >= 32 && b[pos] < 127 ? b[pos] : '?',
                 masks[m], cnf_errname(rc), cnf_ctx_errmsg(ctx));
      }
    }
  }
  CU_ASSERT_EQUAL(accepted, 0);
  CU_ASSERT_TRUE(eversion <= 4); /* at most the four changes of the version digit */
  printf("\n  %zu one-byte changes tried, %zu accepted, %zu refused as a newer version ",
         tried, accepted, eversion);

  /* the checksum in upper case: the same number, but not the bytes that
   * were written */
  memcpy(c, b, n);
  for (unsigned char *h = (unsigned char *)strstr((char *)c, " crc32=") + 7; *h != '\n'; h++)
    if (*h >= 'a' && *h <= 'f') *h = (unsigned char)(*h - 'a' + 'A');
  CU_ASSERT_NOT_EQUAL(memcmp(c, b, n), 0);
  CU_ASSERT_EQUAL(load_bytes(bad, c, n), CNF_ECORRUPT);

  /* a newer version, otherwise intact: CNF_EVERSION */
  const char *v1 = "CNF-MODEL 1 ";
  CU_ASSERT_EQUAL_FATAL(memcmp(b, v1, strlen(v1)), 0);
  const char *vers[] = {"CNF-MODEL 999 ", "CNF-MODEL 2 "};
  for (int i = 0; i < 2; i++) {
    size_t vl = strlen(vers[i]);
    memcpy(c, vers[i], vl);
    memcpy(c + vl, b + strlen(v1), n - strlen(v1));
    size_t m = n - strlen(v1) + vl;
    fix_crc(c, m);
    CU_ASSERT_EQUAL(load_bytes(bad, c, m), CNF_EVERSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "version"));
  }
  /* version 0 is no version */
  memcpy(c, b, n);
  c[10] = '0';
  fix_crc(c, n);
  CU_ASSERT_EQUAL(load_bytes(bad, c, n), CNF_ECORRUPT);

  /* trailing bytes */
  const size_t extra[] = {1, 7, 8, 64};
  for (size_t i = 0; i < 4; i++) {
    memcpy(c, b, n);
    memset(c + n, i == 3 ? 0 : 'x', extra[i]);
    CU_ASSERT_EQUAL(load_bytes(bad, c, n + extra[i]), CNF_ECORRUPT);
  }
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "after"));

  /* valid checksums over invalid content: a NaN parameter, a zero end
   * time, a header whose params disagrees with the network */
  memcpy(c, b, n);
  const double nan = NAN, zero = 0.0;
  memcpy(c + n - 8, &nan, 8);
  fix_crc(c, n);
  CU_ASSERT_EQUAL(load_bytes(bad, c, n), CNF_ECORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "nan"));
  memcpy(c, b, n);
  memcpy(c + hl + 8, &zero, 8); /* T of block 2 */
  fix_crc(c, n);
  CU_ASSERT_EQUAL(load_bytes(bad, c, n), CNF_ECORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "end time"));
  memcpy(c, b, n);
  char *hid = strstr((char *)c, "hidden=6-6");
  CU_ASSERT_PTR_NOT_NULL_FATAL(hid);
  hid[7] = '7'; /* hidden=7-6: a different parameter count */
  fix_crc(c, n);
  CU_ASSERT_EQUAL(load_bytes(bad, c, n), CNF_ECORRUPT);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "inconsistent"));
  /* the repair itself is right: the fixed-up intact file loads */
  memcpy(c, b, n);
  fix_crc(c, n);
  CU_ASSERT_EQUAL(memcmp(c, b, n), 0);

  /* not a model file at all, and a missing one */
  CU_ASSERT_EQUAL(load_bytes(bad, (const unsigned char *)"x,y\n1,2\n", 8), CNF_ECORRUPT);
  char missing[1200];
  scratch_path(missing, sizeof missing, dir, "missing.cnf");
  cnf_flow *g = (cnf_flow *)&g;
  CU_ASSERT_EQUAL(cnf_flow_load(&g, ctx, missing), CNF_EIO);
  CU_ASSERT_PTR_NULL(g);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "missing.cnf"));
  /* a directory opens but cannot be read as a model */
  int rc = cnf_flow_load(&g, ctx, dir);
  CU_ASSERT_TRUE(rc == CNF_EIO || rc == CNF_ECORRUPT);
  CU_ASSERT_PTR_NULL(g);
  CU_ASSERT_EQUAL(cnf_flow_load(NULL, ctx, path), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_flow_load(&g, ctx, NULL), CNF_EINVAL);
  free(b);
  free(c);
  teardown();
}

static void test_atomic_save(void) {
  setup();
  char path[1200], old[1200], first[256];
  scratch_path(path, sizeof path, dir, "m.cnf");
  scratch_path(old, sizeof old, dir, "old.cnf");
  cnf_flow *a = make(2, "4", CNF_LAYER_IGNORE, CNF_ACT_TANH, 1, 1);
  cnf_flow *b = make(2, "9-9", CNF_LAYER_CONCATSQUASH, CNF_ACT_SOFTPLUS, 3, 2);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_save(a, path), 0);
  /* exactly one entry: no temporary file left behind */
  CU_ASSERT_EQUAL(scratch_count(dir, first, sizeof first), 1);
  CU_ASSERT_STRING_EQUAL(first, "m.cnf");
  /* saving over an existing file replaces it by rename: a second link to
   * the old file keeps the old model whole */
  CU_ASSERT_EQUAL_FATAL(link(path, old), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_save(b, path), 0);
  CU_ASSERT_EQUAL(scratch_count(dir, NULL, 0), 2);
  cnf_flow *g = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_load(&g, ctx, path), 0);
  CU_ASSERT_TRUE(same_model(g, b));
  cnf_flow_free(g);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_load(&g, ctx, old), 0);
  CU_ASSERT_TRUE(same_model(g, a));
  cnf_flow_free(g);
  unlink(old);
  /* a directory that does not exist: CNF_EIO, nothing created */
  char nowhere[1300];
  snprintf(nowhere, sizeof nowhere, "%s/none/m.cnf", dir);
  CU_ASSERT_EQUAL(cnf_flow_save(a, nowhere), CNF_EIO);
  CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), CNF_EIO);
  CU_ASSERT_EQUAL(scratch_count(dir, first, sizeof first), 1);
  CU_ASSERT_EQUAL(cnf_flow_save(a, NULL), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_flow_save(NULL, path), CNF_EINVAL);
  /* the file survived the failed saves */
  CU_ASSERT_EQUAL_FATAL(cnf_flow_load(&g, ctx, path), 0);
  CU_ASSERT_TRUE(same_model(g, b));
  cnf_flow_free(g);
  cnf_flow_free(a);
  cnf_flow_free(b);
  teardown();
}

/* The optional sections: a standardization and the optimizer state after
 * two Adam steps.  They come back bit for bit; a trainer created on the
 * loaded flow continues at the stored iteration, and one more step on
 * each copy gives identical parameters.  Damage to these sections is
 * refused like any other. */
static void test_sections(void) {
  setup();
  char path[1200], bad[1200];
  scratch_path(path, sizeof path, dir, "m.cnf");
  scratch_path(bad, sizeof bad, dir, "bad.cnf");
  cnf_flow *f = make(2, "8-8", CNF_LAYER_CONCATSQUASH, CNF_ACT_TANH, 2, 21);
  const double shift[2] = {0.3125, -1.75}, scale[2] = {2.5, 0.375};
  CU_ASSERT_EQUAL_FATAL(cnf_flow_set_standardization(f, shift, scale), 0);
  cnf_train_options to;
  cnf_train_options_default(&to);
  cnf_train *tr = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_train_create(&tr, f, &to, 77), 0);
  cnf_options o;
  cnf_options_default(&o);
  double x[16 * 2];
  fill_gauss(x, 32, 19);
  CU_ASSERT_EQUAL_FATAL(cnf_train_step(tr, &o, 16, x, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_train_step(tr, &o, 16, x, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_save(f, path), 0);

  cnf_flow *g = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_flow_load(&g, ctx, path), 0);
  CU_ASSERT_TRUE(same_model(f, g));
  double sh[2], sc[2];
  CU_ASSERT_EQUAL(cnf_flow_standardization(g, sh, sc), 1);
  CU_ASSERT_EQUAL(memcmp(sh, shift, sizeof sh), 0);
  CU_ASSERT_EQUAL(memcmp(sc, scale, sizeof sc), 0);
  cnf_train *tg = NULL;
  CU_ASSERT_EQUAL_FATAL(cnf_train_create(&tg, g, &to, 5 /* ignored */), 0);
  CU_ASSERT_EQUAL(cnf_train_iteration(tg), cnf_train_iteration(tr));
  CU_ASSERT_EQUAL(cnf_train_iteration(tg), 2);
  CU_ASSERT_EQUAL(cnf_train_seed(tg), 77);
  CU_ASSERT_EQUAL(cnf_train_step(tr, &o, 16, x, NULL), 0);
  CU_ASSERT_EQUAL(cnf_train_step(tg, &o, 16, x, NULL), 0);
  CU_ASSERT_TRUE(same_model(f, g));
  cnf_train_free(tr);
  cnf_train_free(tg);
  cnf_flow_free(g);

  size_t n = 0;
  unsigned char *b = scratch_read(path, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_PTR_NOT_NULL(strstr((char *)b, " std=1"));
  CU_ASSERT_PTR_NOT_NULL(strstr((char *)b, " train=1 iter=2 updates=2 seed=77"));
  /* 2 T + 2 P theta + 2 D standardization + 2 (2 P + 2) moments */
  const size_t P = cnf_flow_param_count(f) / 2, hl = header_len(b, n);
  CU_ASSERT_EQUAL(n - hl, 8 * (2 + 2 * P + 4 + 2 * (2 * P + 2)));
  unsigned char *c = malloc(n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(c);
  size_t accepted = 0, tried = 0;
  for (size_t pos = 0; pos < n; pos += pos < hl ? 1 : 13) {
    memcpy(c, b, n);
    c[pos] ^= 0x20;
    int rc = load_bytes(bad, c, n);
    tried++;
    if (rc != CNF_ECORRUPT && rc != CNF_EVERSION && accepted++ < 5)
      printf("\n  byte %zu ^ 0x20: %s %s", pos, cnf_errname(rc), cnf_ctx_errmsg(ctx));
  }
  CU_ASSERT_EQUAL(accepted, 0);
  const size_t cuts[] = {hl, hl + 8 * (2 + 2 * P), hl + 8 * (2 + 2 * P + 4), n - 1};
  for (size_t i = 0; i < 4; i++) CU_ASSERT_EQUAL(load_bytes(bad, b, cuts[i]), CNF_ECORRUPT);
  /* a scale of 0 under a valid checksum */
  memcpy(c, b, n);
  const double zero = 0.0;
  memcpy(c + hl + 8 * (2 + 2 * P + 2), &zero, 8);
  fix_crc(c, n);
  CU_ASSERT_EQUAL(load_bytes(bad, c, n), CNF_ECORRUPT);
  /* train=1 without its iteration: inconsistent header */
  memcpy(c, b, n);
  char *it = strstr((char *)c, " iter=2");
  CU_ASSERT_PTR_NOT_NULL_FATAL(it);
  memcpy(it, " xter=2", 7);
  fix_crc(c, n);
  CU_ASSERT_EQUAL(load_bytes(bad, c, n), CNF_ECORRUPT);
  printf("\n  %zu changes of a file with both sections refused ", tried);

  /* removing the sections removes them from the file */
  cnf_flow_clear_train_state(f);
  CU_ASSERT_EQUAL(cnf_flow_set_standardization(f, NULL, NULL), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_save(f, path), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_flow_load(&g, ctx, path), 0);
  CU_ASSERT_EQUAL(cnf_flow_standardization(g, NULL, NULL), 0);
  CU_ASSERT_TRUE(same_model(f, g));
  cnf_flow_free(g);
  free(b);
  b = scratch_read(path, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(b);
  CU_ASSERT_PTR_NULL(strstr((char *)b, "std="));
  CU_ASSERT_PTR_NULL(strstr((char *)b, "train="));
  free(b);
  free(c);
  cnf_flow_free(f);
  teardown();
}

const test_entry model_file_tests[] = {
    {"save/load bit-exact: 3 layers x 2 activations x 4 shapes", test_round_trip},
    {"file bytes: header, payload, CRC-32 by a reference", test_file_bytes},
    {"damage refused: truncation, byte flips, version, trailing", test_damage},
    {"atomic save: no temporary, replace by rename, bad dir", test_atomic_save},
    {"standardization and optimizer state sections", test_sections},
    {NULL, NULL},
};
