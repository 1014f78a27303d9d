/* test_npy.c: cnf_npy_read and cnf_npy_write.
 *
 * Writing: the header is numpy's version 1.0 layout, byte for byte, with
 * the data at offset 64; the write/read round trip is bit-exact; a failed
 * write leaves nothing behind.  Reading: the header variants numpy and
 * other writers produce (version 2.0, keys in another order, no trailing
 * comma, 16-byte alignment) are accepted; every rejection has its code
 * and a message that starts with the file name and says what was
 * expected.  (tests/python checks the files against numpy itself.) */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cnf.h"
#include "scratch.h"
#include "test_util.h"

extern const test_entry npy_tests[];

static char dir[1024];
static cnf_ctx *ctx;

static void setup(void) {
  if (ctx == NULL) CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  CU_ASSERT_EQUAL_FATAL(scratch_dir(dir, sizeof dir, "npy"), 0);
}
static void teardown(void) {
  scratch_rmdir(dir);
  cnf_ctx_free(ctx);
  ctx = NULL;
}

static const double M23[6] = {1.5, -2.0, 3.25, 4.0, 0.125, -0.0};

/* A file: magic, version (major.minor), the header dict padded to a
 * multiple of `align` with the final '\n', then n data bytes. */
static size_t make_file(unsigned char *buf, int major, const char *dict, size_t align,
                        const void *data, size_t n) {
  const size_t lenb = major == 1 ? 2 : 4;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)major, buf[7] = 0;
  size_t total = 8 + lenb + strlen(dict) + 1;
  total = (total + align - 1) / align * align;
  const size_t hlen = total - 8 - lenb;
  for (size_t i = 0; i < lenb; i++) buf[8 + i] = (unsigned char)(hlen >> (8 * i));
  memcpy(buf + 8 + lenb, dict, strlen(dict));
  memset(buf + 8 + lenb + strlen(dict), ' ', hlen - strlen(dict) - 1);
  buf[total - 1] = '\n';
  memcpy(buf + total, data, n);
  return total + n;
}

static int read_bytes(const char *name, const unsigned char *bytes, size_t n, double **d, size_t *r,
                      size_t *c, char *path, size_t cap) {
  scratch_path(path, cap, dir, name);
  CU_ASSERT_EQUAL_FATAL(scratch_write(path, bytes, n), 0);
  cnf_ctx_clear_error(ctx);
  return cnf_npy_read(ctx, path, d, r, c);
}

static void accept(const char *name, int major, const char *dict, size_t align) {
  unsigned char buf[512];
  size_t n = make_file(buf, major, dict, align, M23, sizeof M23);
  char path[1200];
  double *d = NULL;
  size_t r = 0, c = 0;
  int rc = read_bytes(name, buf, n, &d, &r, &c, path, sizeof path);
  CU_ASSERT_EQUAL(rc, 0);
  if (rc != 0) {
    printf("\n  %s rejected: %s\n", name, cnf_ctx_errmsg(ctx));
    return;
  }
  CU_ASSERT_TRUE(r == 2 && c == 3);
  CU_ASSERT_TRUE(memcmp(d, M23, sizeof M23) == 0);
  cnf_free(d);
}

/* Rejected with code, a message starting "<path>: " and containing what. */
static void reject_bytes(const char *name, const unsigned char *bytes, size_t n, int code,
                         const char *what) {
  char path[1200], want[1300];
  double *d = (double *)&d;
  size_t r = 99, c = 99;
  int rc = read_bytes(name, bytes, n, &d, &r, &c, path, sizeof path);
  CU_ASSERT_EQUAL(rc, code);
  CU_ASSERT_PTR_NULL(d);
  CU_ASSERT_TRUE(r == 0 && c == 0);
  snprintf(want, sizeof want, "%s: ", path);
  const char *msg = cnf_ctx_errmsg(ctx);
  int ok = strncmp(msg, want, strlen(want)) == 0 && strstr(msg, what) != NULL;
  CU_ASSERT_TRUE(ok);
  if (rc != code || !ok)
    printf("\n  %s: got %s \"%s\", expected %s \"%s...%s...\"\n", name, cnf_errname(rc), msg,
           cnf_errname(code), want, what);
  if (rc == 0) cnf_free(d);
}

static void reject(const char *name, const char *dict, size_t ndata, int code, const char *what) {
  unsigned char buf[512];
  size_t n = make_file(buf, 1, dict, 64, M23, ndata);
  reject_bytes(name, buf, n, code, what);
}

#define STD "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }"

static void test_write_layout(void) {
  setup();
  char path[1200];
  scratch_path(path, sizeof path, dir, "w.npy");
  CU_ASSERT_EQUAL_FATAL(cnf_npy_write(ctx, path, 2, 3, M23), 0);
  size_t n = 0;
  unsigned char *got = scratch_read(path, &n);
  unsigned char want[512];
  size_t nw = make_file(want, 1, STD, 64, M23, sizeof M23);
  CU_ASSERT_EQUAL(n, nw);
  CU_ASSERT_EQUAL(n, 128 + sizeof M23); /* 10 + 60 + 1 header bytes, padded to 128 */
  CU_ASSERT_TRUE(got != NULL && n == nw && memcmp(got, want, n) == 0);
  if (got != NULL && n >= 64) printf("\n  header: %.53s", (const char *)got + 10);
  free(got);
  /* round trip, bit for bit (including -0.0) */
  double *d = NULL;
  size_t r = 0, c = 0;
  CU_ASSERT_EQUAL(cnf_npy_read(ctx, path, &d, &r, &c), 0);
  CU_ASSERT_TRUE(r == 2 && c == 3 && d != NULL && memcmp(d, M23, sizeof M23) == 0);
  cnf_free(d);
  /* a failed write (no such directory) leaves nothing and names the file */
  char bad[1300];
  snprintf(bad, sizeof bad, "%s/missing/x.npy", dir);
  CU_ASSERT_EQUAL(cnf_npy_write(ctx, bad, 2, 3, M23), CNF_EIO);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "missing/x.npy"));
  CU_ASSERT_EQUAL(scratch_count(dir, NULL, 0), 1);
  CU_ASSERT_EQUAL(cnf_npy_write(ctx, path, 0, 3, M23), 0); /* (0, 3) is a valid array */
  CU_ASSERT_EQUAL(cnf_npy_write(ctx, path, 2, 0, M23), CNF_EINVAL);
  CU_ASSERT_TRUE(cnf_npy_path("a/b.npy") && cnf_npy_path("B.NPY") && !cnf_npy_path("b.csv") &&
                 !cnf_npy_path(".npy") && !cnf_npy_path("npy") && !cnf_npy_path(NULL));
  teardown();
}

static void test_read_variants(void) {
  setup();
  accept("std.npy", 1, STD, 64);
  accept("v2.npy", 2, STD, 64);
  accept("v3.npy", 3, STD, 64);
  accept("align16.npy", 1, STD, 16);
  accept("order.npy", 1, "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f8'}", 64);
  accept("spaces.npy", 1, "{ \"descr\" : \"<f8\" ,'fortran_order':False,'shape':( 2 ,3 ) }", 64);
  teardown();
}

static void test_read_rejects(void) {
  setup();
  const size_t full = sizeof M23;
  reject("f4.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", full, CNF_EFORMAT,
         "dtype '<f4', expected '<f8'");
  reject("be.npy", "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 3), }", full, CNF_EFORMAT,
         "dtype '>f8', expected '<f8'");
  reject("object.npy", "{'descr': '|O', 'fortran_order': False, 'shape': (2, 3), }", full,
         CNF_EFORMAT, "dtype '|O', expected '<f8'");
  reject("struct.npy",
         "{'descr': [('a', '<f8'), ('b', '<f8')], 'fortran_order': False, 'shape': (3,), }", full,
         CNF_EFORMAT, "structured dtype");
  reject("fortran.npy", "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", full,
         CNF_EFORMAT, "Fortran (column-major) order, expected C order");
  reject("1d.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), }", full, CNF_EFORMAT,
         "a 1-D array, expected 2-D");
  reject("3d.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2, 3), }", full,
         CNF_EFORMAT, "a 3-D array, expected 2-D");
  reject("0d.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 8, CNF_EFORMAT,
         "a 0-D array");
  reject("empty.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 3), }", 0, CNF_EFORMAT,
         "shape (0, 3), expected at least one row");
  reject("short.npy", STD, full - 8, CNF_ECORRUPT,
         "truncated: the header's shape (2, 3) needs 48 data bytes, the file has 40");
  /* a header that claims 800 TB of data over 48 bytes is truncated, found
   * without allocating what it claims (the old reader asked malloc for it
   * and failed with CNF_ENOMEM, or under ASan aborted) */
  reject("huge.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 100000000), }",
         full, CNF_ECORRUPT, "truncated: the header's shape (1000000, 100000000) needs "
         "800000000000000 data bytes, the file has 48");
  reject("nokey.npy", "{'descr': '<f8', 'shape': (2, 3), }", full, CNF_EFORMAT, "lacks one of");
  reject("extra.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", full,
         CNF_EFORMAT, "a key other than");
  reject("notdict.npy", "[1, 2]", full, CNF_EFORMAT, "not a Python dict");
  reject("badshape.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (2, -3), }", full,
         CNF_EFORMAT, "'shape' is not a tuple");
  reject("unclosed.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)", full,
         CNF_EFORMAT, "not closed");
  /* data beyond the shape */
  {
    unsigned char buf[512];
    double more[7];
    memcpy(more, M23, sizeof M23);
    more[6] = 1.0;
    size_t n = make_file(buf, 1, STD, 64, more, sizeof more);
    reject_bytes("long.npy", buf, n, CNF_EFORMAT, "data beyond the 2 x 3 values");
  }
  /* non-finite values, named by row and column */
  {
    unsigned char buf[512];
    double nf[6];
    memcpy(nf, M23, sizeof M23);
    nf[4] = NAN;
    size_t n = make_file(buf, 1, STD, 64, nf, sizeof nf);
    reject_bytes("nan.npy", buf, n, CNF_ENONFINITE, "row 2, column 2: a non-finite value");
  }
  /* not .npy at all, truncated preambles, a future version */
  reject_bytes("csv.npy", (const unsigned char *)"x,y\n1,2\n", 8, CNF_EFORMAT, "not a .npy file");
  {
    unsigned char buf[512];
    size_t n = make_file(buf, 1, STD, 64, M23, sizeof M23);
    reject_bytes("cut.npy", buf, 30, CNF_ECORRUPT, "truncated .npy header");
    reject_bytes("cut2.npy", buf, 9, CNF_ECORRUPT, "truncated .npy header");
    buf[6] = 4;
    reject_bytes("v4.npy", buf, n, CNF_EVERSION, "version 4.0, expected 1.0 to 3.0");
  }
  /* a missing file */
  {
    double *d = NULL;
    size_t r, c;
    char path[1200];
    scratch_path(path, sizeof path, dir, "absent.npy");
    CU_ASSERT_EQUAL(cnf_npy_read(ctx, path, &d, &r, &c), CNF_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "absent.npy: cannot open"));
  }
  teardown();
}

const test_entry npy_tests[] = {
    {"write: numpy's 1.0 layout, round trip, failed write", test_write_layout},
    {"read: header variants", test_read_variants},
    {"read: every rejection names the file and what was expected", test_read_rejects},
    {NULL, NULL},
};
