/* fuzz_stack_load.c: libFuzzer target for discrete-flow model files
 * (cnf_stack_load), checksum fixed up first (fuzz_util.h).  A file that
 * loads is saved again (to /dev/null) and, when small, evaluates log p at
 * two points and draws two samples.  A load failure must name the file.
 * -malloc_limit_mb (scripts/fuzz.sh) makes a header that asks for huge
 * memory before its data is checked a finding. */
#define _GNU_SOURCE /* memfd_create */
#include "cnf.h"
#include "cnf_layers.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0) abort();
  const char *path = fuzz_model_file(data, size);
  cnf_stack *s = NULL;
  int rc = cnf_stack_load(&s, ctx, path);
  if (rc != 0) {
    fuzz_expect_named(ctx, rc, path, s);
  } else {
    (void)cnf_stack_save(s, "/dev/null");
    if (cnf_stack_dim(s) <= 4 && cnf_stack_param_count(s) <= 4096) {
      double x[2 * 4] = {0.5, -0.25, 1.0, 0.125, -2.0, 0.75, 0.0, 1.5}, lp[2], y[2 * 4];
      (void)cnf_stack_logp(s, 2, x, lp);
      (void)cnf_stack_sample(s, 2, y, lp);
    }
    cnf_stack_free(s);
  }
  cnf_ctx_free(ctx);
  return 0;
}
