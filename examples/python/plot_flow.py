#!/usr/bin/env python3
"""The pictures of `cnf plot` through the Python package, drawn with
matplotlib (python3-matplotlib; not run by the tests):

  1. the density of a 2-D model with data points,
  2. trajectories of data rows from data (t = 0) to latent (t = T),
  3. the density of the flow's state at five times from 0 to T.

    CNF_LIBRARY=build/libcnf.so PYTHONPATH=python python3 examples/python/plot_flow.py \\
        MODEL.cnf [OUT.png]

Without a model file it trains a small one on 8gaussians by OT flow
matching first (about a minute).  The numbers come from the library:
Model.log_prob, Model.trajectories (states at n equally spaced times over
the whole flow, in the data's units) and Model.log_prob_at (log p_t, the
density of z(t) when x follows the model; include/cnf_model.h)."""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import cnf  # noqa: E402


def model_from(argv):
    if len(argv) > 1 and argv[1].endswith(".cnf"):
        return cnf.Model.load(argv[1])
    m = cnf.Model.cnf(2, hidden="64-64-64", seed=1)
    cnf.fit(m, "8gaussians", iters=2000, batch=256, lr=2e-3, objective="ot-fm", seed=1)
    return m


def main(argv):
    m = model_from(argv)
    out = argv[-1] if argv[-1].endswith((".png", ".pdf", ".svg")) else "flow.png"
    L, G = 4.0, 150
    u = np.linspace(-L, L, G)
    X1, X2 = np.meshgrid(u, u)
    grid = np.column_stack([X1.ravel(), X2.ravel()])
    T = m.total_time
    x = cnf.toy("8gaussians", 300, seed=3)

    fig = plt.figure(figsize=(15, 8), constrained_layout=True)
    top = fig.subfigures(2, 1, height_ratios=[1.15, 1])
    ax = top[0].subplots(1, 2)
    # 1. the density with the data
    p = np.exp(m.log_prob(grid, batch=4000)).reshape(G, G)
    im = ax[0].imshow(p, origin="lower", extent=(-L, L, -L, L), cmap="viridis")
    ax[0].scatter(x[:, 0], x[:, 1], s=2, c="white", alpha=0.6, label="data (n = 300)")
    ax[0].set(title="density p(x)", xlabel="x1", ylabel="x2")
    ax[0].legend(loc="upper left")
    top[0].colorbar(im, ax=ax[0], label="p(x)")
    # 2. trajectories: (n, B, D) states from x to z
    s = m.trajectories(x, n=41)
    for b in range(s.shape[1]):
        ax[1].plot(s[:, b, 0], s[:, b, 1], lw=0.5, color="0.3", alpha=0.4)
    ax[1].scatter(s[0, :, 0], s[0, :, 1], s=4, color="tab:blue", label="data (t = 0)")
    ax[1].scatter(s[-1, :, 0], s[-1, :, 1], s=4, color="tab:orange",
                  label="latent (t = %.3g)" % T)
    ax[1].plot([], [], lw=0.8, color="0.3", label="paths (n = %d)" % s.shape[1])
    ax[1].set(title="trajectories from data to latent", xlabel="x1", ylabel="x2", aspect="equal")
    ax[1].legend(loc="upper left", fontsize=8)
    # 3. the density in time, on one colour scale
    ts = np.linspace(0.0, T, 5)
    lp = np.stack([m.log_prob_at(grid, t, batch=4000) for t in ts])
    vmax = np.exp(lp.max())
    axs = top[1].subplots(1, 5)
    for a, t, l in zip(axs, ts, lp):
        im = a.imshow(np.exp(l).reshape(G, G), origin="lower", extent=(-L, L, -L, L),
                      cmap="viridis", vmin=0, vmax=vmax)
        a.set(title="t = %.3g" % t, xlabel="x1")
    axs[0].set_ylabel("x2")
    top[1].colorbar(im, ax=list(axs), label="density p_t")
    fig.suptitle("%s: density, trajectories and the density in time" % m.name)
    fig.savefig(out, dpi=90)
    print("wrote", out)


if __name__ == "__main__":
    main(sys.argv)
