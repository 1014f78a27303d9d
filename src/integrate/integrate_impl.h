/* integrate_impl.h: internals shared by the files of src/integrate. */
#ifndef CNF_INTEGRATE_IMPL_H
#define CNF_INTEGRATE_IMPL_H

#include <stdint.h>

/* The seed of random stream `stream` at index i of a call seeded with
 * `seed` (splitmix64's finaliser), so the streams of nearby seeds, steps
 * and chunks are unrelated. */
uint64_t cnf__integrate_stream(uint64_t seed, uint64_t i, uint64_t stream);

/* The streams: training batches and their probes, sample points and their
 * probes, probes of log q, the uniform rows of the defensive mixture, and
 * the linear sampler's probes (its base points use the seed itself). */
enum {
  CNF__IS_TRAIN_POINTS = 1,
  CNF__IS_TRAIN_PROBES = 2,
  CNF__IS_SAMPLE_POINTS = 3,
  CNF__IS_SAMPLE_PROBES = 4,
  CNF__IS_LOGQ_PROBES = 5,
  CNF__IS_UNIFORM = 6,
  CNF__IS_LINEAR_PROBES = 7
};

#endif /* CNF_INTEGRATE_IMPL_H */
