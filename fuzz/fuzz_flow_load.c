/* fuzz_flow_load.c: libFuzzer target for CNF model files (cnf_flow_load),
 * checksum fixed up first (fuzz_util.h).  A file that loads is saved again
 * (to /dev/null, through the atomic writer's direct path), and a small one
 * evaluates log p at two points with a bounded solver budget, so that the
 * values a header lets through are exercised too.  A load failure must
 * name the file. */
#define _GNU_SOURCE /* memfd_create */
#include "cnf.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cnf_ctx *ctx = NULL;
  if (cnf_ctx_create(&ctx) != 0) abort();
  const char *path = fuzz_model_file(data, size);
  cnf_flow *f = NULL;
  int rc = cnf_flow_load(&f, ctx, path);
  if (rc != 0) {
    fuzz_expect_named(ctx, rc, path, f);
  } else {
    (void)cnf_flow_save(f, "/dev/null");
    const size_t D = cnf_flow_dim(f);
    if (D <= 4 && cnf_flow_param_count(f) * cnf_flow_blocks(f) <= 4096) {
      cnf_options o;
      cnf_options_default(&o);
      o.max_steps = 200;
      double x[2 * 4] = {0.5, -0.25, 1.0, 0.125, -2.0, 0.75, 0.0, 1.5}, lp[2];
      (void)cnf_flow_logp(f, &o, 2, x, lp, NULL);
    }
    cnf_flow_free(f);
  }
  cnf_ctx_free(ctx);
  return 0;
}
