/* fuzz_npy.c: libFuzzer target for the .npy reader (cnf_npy_read).  Any
 * input must give either a 2-D table of finite float64 values whose shape
 * matches the returned sizes, or an error code with a message that names
 * the file; never a crash, a leak or undefined behaviour (ASan, UBSan).  A
 * table read is written back with cnf_npy_write and must read back equal. */
#define _GNU_SOURCE /* memfd_create */
#include <math.h>
#include <string.h>

#include "cnf.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0) abort();
  const char *path = fuzz_file(data, size);
  double *x = NULL, *y = NULL;
  size_t rows = 0, cols = 0, r2 = 0, c2 = 0;
  int rc = cnf_npy_read(ctx, path, &x, &rows, &cols);
  if (rc == 0) {
    if (x == NULL || rows == 0 || cols == 0) abort();
    for (size_t i = 0; i < rows * cols; i++)
      if (!isfinite(x[i])) abort(); /* the reader promises finite values */
    char out[64];
    snprintf(out, sizeof out, "/tmp/cnf-fuzz-npy-%d.npy", (int)getpid());
    if (cnf_npy_write(ctx, out, rows, cols, x) != 0) abort();
    if (cnf_npy_read(ctx, out, &y, &r2, &c2) != 0 || r2 != rows || c2 != cols ||
        memcmp(x, y, rows * cols * sizeof(double)) != 0)
      abort();
    remove(out);
    cnf_free(y);
  } else {
    if (rows != 0 || cols != 0) abort();
    fuzz_expect_named(ctx, rc, path, x);
  }
  cnf_free(x);
  cnf_ctx_free(ctx);
  return 0;
}
