"""The flow in time from Python: Model.trajectories and Model.log_prob_at
agree with encode, decode and log_prob (the library's tests hold the
closed forms), a stack raises cnf.Error, and cnf.plot writes the library's
figures (the SVG carries its titles and legend)."""

import unittest

import numpy as np

import cnf
from support import ScratchCase


class TestTime(ScratchCase):
    def setUp(self):
        super().setUp()
        self.m = cnf.Model.cnf(2, hidden="16-16", blocks=2, seed=3)
        self.m.params[:] *= 3.0  # away from the near-identity start
        self.x = cnf.toy("moons", 40, seed=2)
        self.tight = {"rtol": 1e-10, "atol": 1e-10}

    def test_ends(self):
        m, x = self.m, self.x
        self.assertAlmostEqual(m.total_time, 1.0, places=15)
        p = m.trajectories(x, n=9, **self.tight)
        self.assertEqual(p.shape, (9, 40, 2))
        self.assertTrue(np.array_equal(p[0], x))
        z, _ = m.encode(x, **self.tight)
        np.testing.assert_allclose(p[-1], z, rtol=1e-8, atol=1e-8)
        back = m.trajectories(z, n=9, direction=-1, **self.tight)
        np.testing.assert_allclose(back[::-1], p, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(m.log_prob_at(x, 0.0, **self.tight),
                                   m.log_prob(x, **self.tight), rtol=1e-12, atol=1e-12)
        base = -0.5 * np.sum(x * x, axis=1) - np.log(2 * np.pi)
        np.testing.assert_allclose(m.log_prob_at(x, 1.0), base, rtol=1e-14, atol=1e-14)

    def test_grid_points(self):
        """cnf.plot.grid_points is the grid of `cnf grid`, ends included."""
        g = cnf.plot.grid_points(2.5, 5)
        self.assertEqual(g.shape, (25, 2))
        self.assertEqual((g[0, 0], g[0, 1], g[4, 0], g[-1, 1]), (-2.5, -2.5, 2.5, 2.5))
        self.assertTrue(np.allclose(g[:5, 0], np.linspace(-2.5, 2.5, 5), rtol=0, atol=1e-15))
        with self.assertRaises(ValueError):
            cnf.plot.grid_points(1.0, 1)

    def test_errors(self):
        with self.assertRaises(cnf.Error) as e:
            self.m.log_prob_at(self.x, 1.5)
        self.assertIn("outside", e.exception.message)
        with self.assertRaises(ValueError):
            self.m.trajectories(self.x, n=1)
        s = cnf.Model.stack("realnvp", 2, seed=1)
        with self.assertRaises(cnf.Error) as e:
            s.trajectories(self.x)
        self.assertIn("discrete stack", e.exception.message)
        self.assertEqual(e.exception.name, "CNF_EINVAL")

    def test_figures(self):
        p = self.m.trajectories(self.x, n=11)
        out = self.path("paths.svg")
        cnf.plot.paths(out, np.stack([p, p]), names=["first", "second"], title="Two flows")
        svg = open(out).read()
        for s in ("<title>Two flows</title>", "first", "second", "paths (n = 40)"):
            self.assertIn(s, svg)
        g = cnf.plot.grid(3.0, 32)
        lp = np.stack([self.m.log_prob_at(g, t) for t in (0.0, 0.5, 1.0)])
        out = self.path("times.png")
        cnf.plot.heatmaps(out, lp, 3.0, names=["t = 0", "t = 0.5", "t = 1"], title="In time")
        with open(out, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with self.assertRaises(cnf.Error):
            cnf.plot.paths(self.path("bad.png"), p[:1])  # one time


if __name__ == "__main__":
    unittest.main()
