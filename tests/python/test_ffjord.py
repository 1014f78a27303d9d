"""FFJORD's own 8gaussians model (tests/data, see its README) loaded into a
cnf.Model through the parameter view: log p of the 200 points matches
FFJORD's float64 reference to the accuracy of the two solvers, as
tests/cnf/ffjord_ref.c checks in C (2e-8 at rtol = atol = 1e-11, 5e-3 at
the default 1e-5)."""

import os
import unittest

import numpy as np

import cnf
from support import DATA


def read_weights(path):
    """T and the parameters in file order (the MLP's layout)."""
    with open(path) as f:
        tokens = f.read().split()
    nlayers, T = int(tokens[0]), float(tokens[1])
    pos, theta = 3, []
    for _ in range(nlayers):
        i, o = int(tokens[pos]), int(tokens[pos + 1])
        pos += 2
        n = o * i + 4 * o
        theta.extend(float(t) for t in tokens[pos:pos + n])
        pos += n
    return T, np.array(theta)


class TestFFJORD(unittest.TestCase):
    def test_ffjord_8gaussians(self):
        T, theta = read_weights(os.path.join(DATA, "ffjord8g_weights.txt"))
        x = np.loadtxt(os.path.join(DATA, "ffjord8g_points.csv"), delimiter=",", skiprows=1)
        ref = np.loadtxt(os.path.join(DATA, "ffjord8g_logp.csv"), delimiter=",", skiprows=1)
        self.assertEqual(x.shape, (200, 2))
        m = cnf.Model.cnf(2, T=T, seed=1)
        self.assertEqual(m.params.size, theta.size)  # exactly the MLP's layout
        m.params[:] = theta
        for tol, bound in ((1e-11, 2e-8), (1e-5, 5e-3)):
            lp = m.log_prob(x, rtol=tol, atol=tol)
            worst = np.max(np.abs(lp - ref))
            print("\n  rtol = atol = %g: max |log p - FFJORD| = %.3g (bound %g), %d RHS "
                  "evaluations" % (tol, worst, bound, m.last_stats["nfe"]), end="")
            self.assertLessEqual(worst, bound)
        # the tight run is not trivially close: the default one is worse
        self.assertGreater(np.max(np.abs(m.log_prob(x) - ref)), 1e-7)


if __name__ == "__main__":
    unittest.main()
