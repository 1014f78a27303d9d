#!/usr/bin/env python3
"""The figures of docs/objectives.md ("Pictures"): three 8gaussians models
trained by maximum likelihood, flow matching and OT flow matching (made by
`cnf train`, see that page), drawn by the library through the Python
package (python/cnf):

  objectives-densities.png  their densities side by side on one colour scale
  objectives-paths.png      trajectories of the same data rows from data
                            (t = 0) to latent (t = T) side by side

and, on stdout, each model's end time and the straightness of its paths:
the mean over the rows of (length of the path) / |end - start|, 1 for a
straight line.

    CNF_LIBRARY=build/libcnf.so PYTHONPATH=python python3 scripts/objectives-figures.py \\
        mle.cnf fm.cnf otfm.cnf OUTDIR [NLL_MLE NLL_FM NLL_OTFM]

The optional NLLs (the test NLLs `cnf train --test-n` printed) go into
the panel titles."""

import os
import sys

import numpy as np

import cnf


def main(argv):
    if len(argv) not in (5, 8):
        sys.exit(__doc__)
    paths, out = argv[1:4], argv[4]
    nll = argv[5:8] if len(argv) == 8 else None
    labels = ["maximum likelihood", "flow matching", "OT flow matching"]
    models = [cnf.Model.load(p) for p in paths]
    for m in models:
        m.set_threads(1)
    titles = [("%s: test NLL %s" % (l, n)) if nll else l for l, n in zip(labels, nll or labels)]

    L, G = 4.0, 200
    grid = cnf.plot.grid(L, G)
    lp = np.stack([m.log_prob(grid, batch=4000) for m in models])
    cnf.plot.heatmaps(os.path.join(out, "objectives-densities.png"), lp, L, names=titles,
                      size=320, title="8gaussians: one 64-64-64 network trained three ways")

    x = cnf.toy("8gaussians", 300, seed=3)

    states = np.stack([m.trajectories(x, n=41) for m in models])
    names = []
    for l, m, s in zip(labels, models, states):
        seg = np.linalg.norm(np.diff(s, axis=0), axis=2).sum(axis=0)
        direct = np.linalg.norm(s[-1] - s[0], axis=1)
        ratio = float(np.mean(seg / direct))
        print("%-20s T %.4f  path length / distance %.4f" % (l, m.total_time, ratio))
        names.append("%s (T = %.3g)" % (l, m.total_time))
    cnf.plot.paths(os.path.join(out, "objectives-paths.png"), states, names=names, size=320,
                   data_name="data (t = 0)", sample_name="latent (t = T)",
                   title="Trajectories of 300 data rows from data to N(0, I)")


if __name__ == "__main__":
    main(sys.argv)
