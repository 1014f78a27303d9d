/* fuzz_csv.c: libFuzzer target for the CSV reader (cnf_csv_read).  Any
 * input must give either a table of finite numbers whose shape matches
 * the returned sizes, or an error code with a message that names the file;
 * never a crash, a leak or undefined behaviour (ASan, UBSan). */
#define _GNU_SOURCE /* memfd_create */
#include <math.h>

#include "cnf.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0) abort();
  const char *path = fuzz_file(data, size);
  double *x = NULL;
  size_t rows = 0, cols = 0;
  int rc = cnf_csv_read(ctx, path, &x, &rows, &cols);
  if (rc == 0) {
    if (x == NULL || rows == 0 || cols == 0) abort();
    for (size_t i = 0; i < rows * cols; i++)
      if (!isfinite(x[i])) abort(); /* the reader promises finite values */
  } else {
    if (rows != 0 || cols != 0) abort();
    fuzz_expect_named(ctx, rc, path, x);
  }
  cnf_free(x);
  cnf_ctx_free(ctx);
  return 0;
}
