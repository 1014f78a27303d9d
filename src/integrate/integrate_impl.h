/* integrate_impl.h: internals shared by the files of src/integrate. */
#ifndef CNF_INTEGRATE_IMPL_H
#define CNF_INTEGRATE_IMPL_H

#include <stdint.h>

/* The random streams of src/integrate, named for cnf_seed_derive
 * (docs/design.md, "Seeding"): training batches and their probes, sample
 * points and their probes, probes of log q, the uniform rows of the
 * defensive mixture, and the linear sampler's probes (its base points use
 * the seed itself). */
#define CNF__IS_TRAIN_POINTS "integrate-train-points"
#define CNF__IS_TRAIN_PROBES "integrate-train-probes"
#define CNF__IS_SAMPLE_POINTS "integrate-sample-points"
#define CNF__IS_SAMPLE_PROBES "integrate-sample-probes"
#define CNF__IS_LOGQ_PROBES "integrate-logq-probes"
#define CNF__IS_UNIFORM "integrate-uniform"
#define CNF__IS_LINEAR_PROBES "integrate-linear-probes"

#endif /* CNF_INTEGRATE_IMPL_H */
