/* test_csv.c: cnf_csv_read and cnf_csv_write.
 *
 * Reading: the accepted variants (header or not, CRLF, final newline or
 * not, trailing blank lines, spaces around fields, scientific notation)
 * give exactly the numbers strtod gives; every rejection has its code and
 * a message that starts with "file:line:col" (a field) or "file:line" (a
 * row, or the line where data was expected in an empty or header-only
 * file).  Writing: the write/read round trip is
 * bit-exact, output is atomic (a temporary file renamed over the target,
 * nothing left behind on failure). */
#define _POSIX_C_SOURCE 200809L
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cnf.h"
#include "scratch.h"
#include "test_util.h"

extern const test_entry csv_tests[];

static char dir[1024];
static cnf_ctx *ctx;

static void setup(void) {
  if (ctx == NULL) CU_ASSERT_EQUAL_FATAL(cnf_ctx_create(&ctx), 0);
  CU_ASSERT_EQUAL_FATAL(scratch_dir(dir, sizeof dir, "io"), 0);
}
static void teardown(void) {
  scratch_rmdir(dir);
  cnf_ctx_free(ctx);
  ctx = NULL;
}

/* Write text to dir/name, read it back. */
static int read_text(const char *name, const char *text, double **data,
                     size_t *rows, size_t *cols, char *path, size_t n) {
  scratch_path(path, n, dir, name);
  CU_ASSERT_EQUAL_FATAL(scratch_write(path, text, strlen(text)), 0);
  cnf_ctx_clear_error(ctx);
  return cnf_csv_read(ctx, path, data, rows, cols);
}

/* The text must read as rows x cols values equal (bitwise) to want. */
static void accept(const char *name, const char *text, size_t rows,
                   size_t cols, const double *want) {
  char path[1200];
  double *d = NULL;
  size_t r = 99, c = 99;
  int rc = read_text(name, text, &d, &r, &c, path, sizeof path);
  CU_ASSERT_EQUAL(rc, 0);
  if (rc != 0) {
    printf("\n  %s rejected: %s\n", name, cnf_ctx_errmsg(ctx));
    return;
  }
  CU_ASSERT_EQUAL(r, rows);
  CU_ASSERT_EQUAL(c, cols);
  if (r == rows && c == cols) {
    /* bitwise: the reader must give exactly strtod's double */
    int same = memcmp(d, want, rows * cols * sizeof(double)) == 0;
    CU_ASSERT_TRUE(same);
    for (size_t i = 0, shown = 0; !same && i < rows * cols && shown < 3; i++)
      if (memcmp(&d[i], &want[i], sizeof(double)) != 0 && ++shown)
        printf("\n  %s[%zu]: read %.17g, expected %.17g", name, i, d[i], want[i]);
  }
  cnf_free(d);
}

/* The text must be rejected with code, and the message must start with
 * "<path><where>" (where = ":3:2: " or ":4: ") and contain `what`. */
static void reject(const char *name, const char *text, int code,
                   const char *where, const char *what) {
  char path[1200], want[1300];
  double *d = (double *)&d;
  size_t r = 99, c = 99;
  int rc = read_text(name, text, &d, &r, &c, path, sizeof path);
  CU_ASSERT_EQUAL(rc, code);
  CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), code);
  CU_ASSERT_PTR_NULL(d);
  CU_ASSERT_TRUE(r == 0 && c == 0);
  snprintf(want, sizeof want, "%s%s", path, where);
  const char *msg = cnf_ctx_errmsg(ctx);
  int ok = strncmp(msg, want, strlen(want)) == 0 && strstr(msg, what) != NULL;
  CU_ASSERT_TRUE(ok);
  if (rc != code || !ok)
    printf("\n  %s: got %s \"%s\", expected %s \"%s...%s...\"\n", name,
           cnf_errname(rc), msg, cnf_errname(code), want, what);
  if (rc == 0) cnf_free(d);
}

static const double M23[6] = {1.5, -2.0, 3.25, 4.0, 0.125, -6.0};

static void test_read_variants(void) {
  setup();
  accept("plain.csv", "1.5,-2,3.25\n4,0.125,-6\n", 2, 3, M23);
  accept("header.csv", "x,y,z\n1.5,-2,3.25\n4,0.125,-6\n", 2, 3, M23);
  accept("quoted_header.csv", "\"x\",\"y\",\"z\"\n1.5,-2,3.25\n4,0.125,-6\n", 2, 3, M23);
  accept("crlf.csv", "x,y,z\r\n1.5,-2,3.25\r\n4,0.125,-6\r\n", 2, 3, M23);
  accept("crlf_no_final.csv", "1.5,-2,3.25\r\n4,0.125,-6", 2, 3, M23);
  accept("no_final_newline.csv", "x,y,z\n1.5,-2,3.25\n4,0.125,-6", 2, 3, M23);
  accept("trailing_blank.csv", "1.5,-2,3.25\n4,0.125,-6\n\n\n", 2, 3, M23);
  accept("trailing_blank_ws.csv", "1.5,-2,3.25\n4,0.125,-6\n  \n\t\r\n \n", 2, 3, M23);
  accept("spaces.csv", "  x , y ,z\n 1.5,  -2 ,3.25  \n\t4 ,0.125\t, -6\n", 2, 3, M23);
  accept("spaces_crlf.csv", " 1.5 , -2 , 3.25 \r\n 4 , 0.125 , -6 \r\n", 2, 3, M23);
  accept("scientific.csv", "1.5e0,-2E+0,325e-2\n0.4e1,1.25E-1,-6.000e+00\n", 2, 3, M23);
  accept("leading_plus.csv", "+1.5,-2.,3.25\n4.000,.125,-6\n", 2, 3, M23);
  const double one[1] = {7.0};
  accept("single.csv", "7", 1, 1, one);
  accept("single_header.csv", "v\n7\n", 1, 1, one);
  const double col[3] = {1e-300, -2.5e300, -0.0};
  accept("column.csv", "a\n1e-300\n-2.5e+300\n-0.0e0\n", 3, 1, col);
  /* -0.0 reads as negative zero, bit for bit */
  const double negz[2] = {-0.0, 0.0};
  accept("negzero.csv", "-0,0\n", 1, 2, negz);
  /* a wide row */
  char wide[4096] = "";
  double wv[200];
  for (int j = 0; j < 200; j++) {
    wv[j] = j * 0.5 - 17;
    char f[32];
    snprintf(f, sizeof f, j ? ",%g" : "%g", wv[j]);
    strcat(wide, f);
  }
  strcat(wide, "\n");
  accept("wide.csv", wide, 1, 200, wv);
  teardown();
}

static void test_read_many_rows(void) {
  /* more rows than the reader's first row block (1024) and more bytes
   * than its first buffer (64 KiB): both grow */
  setup();
  const size_t R = 5000;
  size_t cap = R * 64 + 64, len = 0;
  char *text = malloc(cap);
  double *want = malloc(R * 2 * sizeof(double));
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  CU_ASSERT_PTR_NOT_NULL_FATAL(want);
  len += (size_t)snprintf(text, cap, "u,v\n");
  for (size_t i = 0; i < R; i++) {
    want[2 * i] = (double)i / 3.0;
    want[2 * i + 1] = -(double)(i * i) * 1e-7;
    len += (size_t)snprintf(text + len, cap - len, "%.17g,%.17g\n", want[2 * i], want[2 * i + 1]);
  }
  CU_ASSERT_TRUE(len > (1u << 16));
  accept("many.csv", text, R, 2, want);
  free(text);
  free(want);
  teardown();
}

static void test_read_rejections(void) {
  setup();
  reject("text.csv", "x,y\n1,2\n3,abc\n", CNF_EFORMAT, ":3:2: ", "abc");
  reject("text_first_col.csv", "1,2\n3,4\n5,6\nq,8\n", CNF_EFORMAT, ":4:1: ", "'q'");
  reject("trailing_junk.csv", "1,2\n3,4x\n", CNF_EFORMAT, ":2:2: ", "4x");
  reject("two_numbers.csv", "1,2\n3,4 5\n", CNF_EFORMAT, ":2:2: ", "text");
  reject("ragged_long.csv", "x,y\n1,2\n3,4,5\n", CNF_EFORMAT, ":3: ", "ragged");
  reject("ragged_short.csv", "1,2,3\n4,5\n", CNF_EFORMAT, ":2: ", "expected 3 fields, found 2");
  reject("ragged_header.csv", "x,y,z\n1,2\n", CNF_EFORMAT, ":2: ", "ragged");
  reject("empty.csv", "", CNF_EFORMAT, ":1: ", "empty file");
  reject("blank_only.csv", "\n\n  \n", CNF_EFORMAT, ":1: ", "empty file");
  reject("header_only.csv", "x,y\n", CNF_EFORMAT, ":2: ", "no data rows");
  reject("header_only_blank.csv", "x,y\n\n\n", CNF_EFORMAT, ":2: ", "no data rows");
  reject("nan.csv", "1,2\n3,nan\n", CNF_ENONFINITE, ":2:2: ", "non-finite");
  reject("NaN_first.csv", "x,y\nNaN,2\n", CNF_ENONFINITE, ":2:1: ", "NaN");
  reject("inf.csv", "1,2\n3,4\n-inf,5\n", CNF_ENONFINITE, ":3:1: ", "non-finite");
  reject("infinity.csv", "1,Infinity\n", CNF_ENONFINITE, ":1:2: ", "non-finite");
  reject("overflow.csv", "1,2\n1e999,3\n", CNF_ENONFINITE, ":2:1: ", "non-finite");
  reject("empty_field.csv", "1,2,3\n4,,6\n", CNF_EFORMAT, ":2:2: ", "empty field");
  reject("empty_field_end.csv", "1,2,3\n4,5,\n", CNF_EFORMAT, ":2:3: ", "empty field");
  reject("blank_field.csv", "x,y\n1,  \n", CNF_EFORMAT, ":2:2: ", "empty field");
  reject("empty_line_middle.csv", "1,2\n3,4\n\n5,6\n", CNF_EFORMAT, ":3: ", "empty line");
  reject("ws_line_middle.csv", "x,y\n1,2\n \t\n5,6\n", CNF_EFORMAT, ":3: ", "empty line");
  reject("crlf_empty_middle.csv", "1,2\r\n\r\n5,6\r\n", CNF_EFORMAT, ":2: ", "empty line");
  reject("crlf_text.csv", "1,2\r\n3,four\r\n", CNF_EFORMAT, ":2:2: ", "'four'");
  teardown();
}

static void test_read_nul_byte(void) {
  /* strlen-based text helpers cannot write a NUL: write the bytes */
  setup();
  char path[1200];
  const char bytes[] = {'1', ',', '2', '\n', '3', '\0', ',', '4', '\n'};
  scratch_write(scratch_path(path, sizeof path, dir, "nul.csv"), bytes, sizeof bytes);
  double *d = NULL;
  size_t r, c;
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, path, &d, &r, &c), CNF_EFORMAT);
  CU_ASSERT_PTR_NULL(d);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "NUL"));
  /* file, line and column (the field) of the first NUL, as for text */
  char want[1300];
  snprintf(want, sizeof want, "%s:2:1: ", path);
  CU_ASSERT_EQUAL(strncmp(cnf_ctx_errmsg(ctx), want, strlen(want)), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "byte 2 of the line"));
  /* in the third field of line 3 */
  const char third[] = {'x', ',',  'y', ',', 'z', '\n', '1', ',',  '2', ',',
                        '3', '\n', '4', ',', '5', ',',  ' ', '\0', '\n'};
  scratch_write(path, third, sizeof third);
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, path, &d, &r, &c), CNF_EFORMAT);
  snprintf(want, sizeof want, "%s:3:3: ", path);
  CU_ASSERT_EQUAL(strncmp(cnf_ctx_errmsg(ctx), want, strlen(want)), 0);
  /* UTF-16 (little- and big-endian, with their byte-order marks): named as
   * such at line 1, column 1 */
  const char le[] = {'\xff', '\xfe', '1', '\0', ',', '\0', '2', '\0', '\n', '\0'};
  const char be[] = {'\xfe', '\xff', '\0', '1', '\0', ',', '\0', '2', '\0', '\n'};
  for (int k = 0; k < 2; k++) {
    scratch_write(path, k ? be : le, sizeof le);
    CU_ASSERT_EQUAL(cnf_csv_read(ctx, path, &d, &r, &c), CNF_EFORMAT);
    snprintf(want, sizeof want, "%s:1:1: UTF-16 text (a byte-order mark %s)", path,
             k ? "FE FF" : "FF FE");
    CU_ASSERT_EQUAL(strncmp(cnf_ctx_errmsg(ctx), want, strlen(want)), 0);
  }
  /* UTF-16 without a byte-order mark: its first NUL, line 1 */
  scratch_write(path, le + 2, sizeof le - 2);
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, path, &d, &r, &c), CNF_EFORMAT);
  snprintf(want, sizeof want, "%s:1:1: binary data", path);
  CU_ASSERT_EQUAL(strncmp(cnf_ctx_errmsg(ctx), want, strlen(want)), 0);
  /* a UTF-8 byte-order mark is skipped */
  const char bom[] = "\xef\xbb\xbfx,y\n1.5,-2\n";
  scratch_write(path, bom, sizeof bom - 1);
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, path, &d, &r, &c), 0);
  CU_ASSERT_TRUE(r == 1 && c == 2 && d != NULL && d[0] == 1.5 && d[1] == -2.0);
  cnf_free(d);
  teardown();
}

static void test_read_io_errors(void) {
  setup();
  char path[1200];
  double *d = (double *)&d;
  size_t r = 5, c = 5;
  scratch_path(path, sizeof path, dir, "missing.csv");
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, path, &d, &r, &c), CNF_EIO);
  CU_ASSERT_PTR_NULL(d);
  CU_ASSERT_EQUAL(strncmp(cnf_ctx_errmsg(ctx), path, strlen(path)), 0);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "No such file"));
  /* a directory is not a file */
  d = (double *)&d;
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, dir, &d, &r, &c), CNF_EIO);
  CU_ASSERT_PTR_NULL(d);
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, NULL, &d, &r, &c), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, path, NULL, &r, &c), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, path, &d, NULL, &c), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, path, &d, &r, NULL), CNF_EINVAL);
  teardown();
}

/* ---- writing ------------------------------------------------------------ */

static void test_write_round_trip(void) {
  setup();
  /* awkward doubles: none survives fewer than 17 significant digits */
  const double v[] = {1.0 / 3.0,         -2.0 / 3.0,       1e-300,
                      -1e300,            -0.0,             0.0,
                      9007199254740993.0 /* 2^53+1 rounds to 2^53 */,
                      9007199254740991.0, 0.1,             0.1 + 0.2,
                      DBL_MAX,           -DBL_MAX,         DBL_MIN,
                      DBL_MIN / 1024.0 /* subnormal */,    4.9406564584124654e-324,
                      DBL_EPSILON,       1.0 + DBL_EPSILON, 0.69314718055994530942 /* ln 2 */,
                      123456789.12345678, -1e-5,           2.5,
                      6.02214076e23,      -1.602176634e-19, 1e22,
                      1e23,              5e-324 * 3,       0.5};
  enum { N = sizeof v / sizeof v[0] };
  const size_t cols = 3, rows = N / 3;
  const char *names[] = {"alpha", "beta", "gamma"};
  char path[1200];
  scratch_path(path, sizeof path, dir, "round.csv");
  CU_ASSERT_EQUAL_FATAL(cnf_csv_write(ctx, path, names, rows, cols, v), 0);
  double *d = NULL;
  size_t r = 0, c = 0;
  CU_ASSERT_EQUAL_FATAL(cnf_csv_read(ctx, path, &d, &r, &c), 0);
  CU_ASSERT_EQUAL(r, rows);
  CU_ASSERT_EQUAL(c, cols);
  /* bitwise: memcmp also tells -0.0 from 0.0 */
  CU_ASSERT_EQUAL(memcmp(d, v, rows * cols * sizeof(double)), 0);
  for (size_t i = 0; i < rows * cols; i++)
    if (memcmp(&d[i], &v[i], sizeof(double)) != 0)
      printf("\n  value %zu: wrote %.17g, read %.17g\n", i, v[i], d[i]);
  cnf_free(d);
  /* the header row is the names */
  size_t n = 0;
  unsigned char *text = scratch_read(path, &n);
  CU_ASSERT_PTR_NOT_NULL_FATAL(text);
  CU_ASSERT_EQUAL(strncmp((char *)text, "alpha,beta,gamma\n", 17), 0);
  free(text);
  /* only the file is left in the directory: no temporary */
  CU_ASSERT_EQUAL(scratch_count(dir, NULL, 0), 1);
  teardown();
}

static void test_write_atomic(void) {
  setup();
  const char *names[] = {"a", "b"};
  const double x[4] = {1, 2, 3, 4}, y[2] = {5, 6};
  char path[1200], first[256];
  scratch_path(path, sizeof path, dir, "out.csv");
  /* an existing file, also linked under a second name: rename() replaces
   * the directory entry, so the old inode (the second name) keeps the old
   * content instead of being truncated and rewritten in place */
  CU_ASSERT_EQUAL_FATAL(cnf_csv_write(ctx, path, names, 2, 2, x), 0);
  char old[1200];
  scratch_path(old, sizeof old, dir, "old-link.csv");
  CU_ASSERT_EQUAL_FATAL(link(path, old), 0);
  CU_ASSERT_EQUAL_FATAL(cnf_csv_write(ctx, path, names, 1, 2, y), 0);
  double *d = NULL;
  size_t r, c;
  CU_ASSERT_EQUAL_FATAL(cnf_csv_read(ctx, path, &d, &r, &c), 0);
  CU_ASSERT_TRUE(r == 1 && c == 2 && d[0] == 5 && d[1] == 6);
  cnf_free(d);
  CU_ASSERT_EQUAL_FATAL(cnf_csv_read(ctx, old, &d, &r, &c), 0);
  CU_ASSERT_TRUE(r == 2 && c == 2 && d[0] == 1 && d[3] == 4);
  cnf_free(d);
  CU_ASSERT_EQUAL(scratch_count(dir, NULL, 0), 2);
  unlink(old);

  /* a nonexistent directory: CNF_EIO, nothing created anywhere */
  char bad[1300];
  snprintf(bad, sizeof bad, "%s/no-such-dir/out.csv", dir);
  cnf_ctx_clear_error(ctx);
  CU_ASSERT_EQUAL(cnf_csv_write(ctx, bad, names, 2, 2, x), CNF_EIO);
  CU_ASSERT_EQUAL(cnf_ctx_errcode(ctx), CNF_EIO);
  CU_ASSERT_PTR_NOT_NULL(strstr(cnf_ctx_errmsg(ctx), "no-such-dir/out.csv"));
  CU_ASSERT_EQUAL(scratch_count(dir, first, sizeof first), 1);
  CU_ASSERT_STRING_EQUAL(first, "out.csv");
  struct stat sb;
  char bad_dir[1300];
  snprintf(bad_dir, sizeof bad_dir, "%s/no-such-dir", dir);
  CU_ASSERT_NOT_EQUAL(stat(bad_dir, &sb), 0);

  /* a read-only directory (skipped when running as root, who may write) */
  char ro[1300], rofile[1400];
  snprintf(ro, sizeof ro, "%s/ro", dir);
  CU_ASSERT_EQUAL_FATAL(mkdir(ro, 0500), 0);
  snprintf(rofile, sizeof rofile, "%s/x.csv", ro);
  int rc = cnf_csv_write(ctx, rofile, names, 2, 2, x);
  if (geteuid() != 0) {
    CU_ASSERT_EQUAL(rc, CNF_EIO);
    CU_ASSERT_EQUAL(scratch_count(ro, NULL, 0), 0);
  }
  chmod(ro, 0700);
  unlink(rofile);
  rmdir(ro);

  /* bad arguments */
  CU_ASSERT_EQUAL(cnf_csv_write(ctx, path, NULL, 2, 2, x), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_csv_write(ctx, path, names, 2, 0, x), CNF_EINVAL);
  CU_ASSERT_EQUAL(cnf_csv_write(ctx, path, names, 2, 2, NULL), CNF_EINVAL);
  /* the file survived all of that */
  CU_ASSERT_EQUAL_FATAL(cnf_csv_read(ctx, path, &d, &r, &c), 0);
  CU_ASSERT_TRUE(r == 1 && c == 2 && d[0] == 5 && d[1] == 6);
  cnf_free(d);
  teardown();
}

static void test_write_zero_rows(void) {
  /* a header-only file is written, and reading it back is the documented
   * "no data rows" rejection */
  setup();
  const char *names[] = {"only"};
  char path[1200];
  scratch_path(path, sizeof path, dir, "empty.csv");
  CU_ASSERT_EQUAL(cnf_csv_write(ctx, path, names, 0, 1, NULL), 0);
  double *d = NULL;
  size_t r, c;
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, path, &d, &r, &c), CNF_EFORMAT);
  teardown();
}

static void test_read_stdin(void) {
  /* "-" reads standard input and names it "<stdin>" in messages */
  setup();
  char path[1200];
  scratch_path(path, sizeof path, dir, "in.csv");
  CU_ASSERT_EQUAL_FATAL(scratch_write(path, "a,b\n1.5,-2\n3.25,4\n", 18), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(freopen(path, "r", stdin));
  double *d = NULL;
  size_t r = 0, c = 0;
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, "-", &d, &r, &c), 0);
  CU_ASSERT_TRUE(r == 2 && c == 2 && d != NULL && d[0] == 1.5 && d[3] == 4.0);
  cnf_free(d);
  CU_ASSERT_EQUAL_FATAL(scratch_write(path, "1,2\nx,4\n", 8), 0);
  CU_ASSERT_PTR_NOT_NULL_FATAL(freopen(path, "r", stdin));
  CU_ASSERT_EQUAL(cnf_csv_read(ctx, "-", &d, &r, &c), CNF_EFORMAT);
  CU_ASSERT_EQUAL(strncmp(cnf_ctx_errmsg(ctx), "<stdin>:2:1: ", 13), 0);
  CU_ASSERT_PTR_NOT_NULL(freopen("/dev/null", "r", stdin));
  teardown();
}

const test_entry csv_tests[] = {
    {"read: header, CRLF, final newline, blanks, spaces, exponents", test_read_variants},
    {"read: 5000 rows (buffers grow)", test_read_many_rows},
    {"read: rejections name file:line[:col]", test_read_rejections},
    {"read: a NUL byte", test_read_nul_byte},
    {"read: missing file, directory, NULL", test_read_io_errors},
    {"read: standard input", test_read_stdin},
    {"write/read round trip is bit-exact", test_write_round_trip},
    {"write: atomic replace, bad directory", test_write_atomic},
    {"write: zero rows", test_write_zero_rows},
    {NULL, NULL},
};
