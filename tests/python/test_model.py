"""cnf.Model: densities equal the CLI's bit for bit, the encode/decode
convention, samples, files, the parameter view, and the errors (library
errors as cnf.Error, bad arrays as ValueError before C is called)."""

import os
import unittest

import numpy as np

import cnf
from support import ScratchCase


def log_normal(z):
    return -0.5 * np.einsum("bd,bd->b", z, z) - 0.5 * z.shape[1] * np.log(2 * np.pi)


class TestModel(ScratchCase):
    def test_log_prob_equals_cli_bit_for_bit(self):
        # a trained-looking model: init, then a few steps so it is not the
        # initial one; 3-D with Hutchinson probes too, where the seed matters
        for dim, extra in ((2, []), (3, ["--trace", "gauss", "--seed", "5"])):
            mpath = self.path("m%d.cnf" % dim)
            m = cnf.Model.cnf(dim, hidden="16-16", seed=3)
            m.params[:] += 0.01 * np.sin(np.arange(m.params.size))
            m.save(mpath)
            x = np.random.default_rng(1).normal(size=(57, dim))
            np.save(self.path("x.npy"), x)
            self.cli_ok("logp", "--model", mpath, "--in", self.path("x.npy"),
                        "--out", self.path("lp.npy"), *extra)
            ref = np.load(self.path("lp.npy"))[:, 0]
            kw = {"trace": "gauss", "seed": 5} if extra else {}
            got = cnf.Model.load(mpath).log_prob(x, **kw)
            self.assertTrue(np.array_equal(got, ref),
                            "dim %d: max diff %g" % (dim, np.max(np.abs(got - ref))))
            # the model made in Python, not reloaded, gives the same bits
            self.assertTrue(np.array_equal(m.log_prob(x, **kw), ref))
            # and a different seed gives different Hutchinson estimates
            if extra:
                self.assertFalse(np.array_equal(m.log_prob(x, trace="gauss", seed=6), ref))

    def test_threads_and_blas(self):
        # models split over the cores by default; float64 densities do not
        # depend on the thread count
        self.assertEqual(cnf.model.default_threads(), max(1, min(64, os.cpu_count() or 1)))
        m = cnf.Model.cnf(2, hidden="16-16", seed=3)
        x = np.random.default_rng(2).normal(size=(300, 2))
        lp = m.log_prob(x)
        m.set_threads(1)
        self.assertTrue(np.array_equal(m.log_prob(x), lp))
        m.set_threads(2)
        self.assertTrue(np.array_equal(m.log_prob(x), lp))
        # OpenBLAS runs one thread inside a library call and gets its count back
        blas = cnf._core._BLAS
        if blas is None:
            self.skipTest("no OpenBLAS in this process")
        before = blas.openblas_get_num_threads()
        try:
            blas.openblas_set_num_threads(2)
            with cnf._core.blas_one_thread():
                self.assertEqual(blas.openblas_get_num_threads(), 1)
            self.assertEqual(blas.openblas_get_num_threads(), 2)
            with self.assertRaises(ValueError):
                with cnf._core.blas_one_thread():
                    raise ValueError("inside")
            self.assertEqual(blas.openblas_get_num_threads(), 2)
        finally:
            blas.openblas_set_num_threads(before)

    def test_encode_decode_convention(self):
        for m in (cnf.Model.cnf(2, hidden="16-16", seed=1),
                  cnf.Model.stack("realnvp", 2, seed=1)):
            x = cnf.toy("moons", 40, seed=2)
            tol = dict(rtol=1e-9, atol=1e-9)
            lp = m.log_prob(x, **tol)
            z, ld = m.encode(x, **tol)
            # log p(x) = log N(z) + logdet, logdet = log|det dz/dx|
            np.testing.assert_allclose(log_normal(z) + ld, lp, rtol=0, atol=1e-7)
            x2, ld2 = m.decode(z, **tol)
            np.testing.assert_allclose(x2, x, rtol=0, atol=1e-6)
            np.testing.assert_allclose(ld2, ld, rtol=0, atol=1e-6)
            # sampling reports the density the density path gives
            xs, lps = m.sample(30, seed=4, **tol)
            self.assertEqual(xs.shape, (30, 2))
            np.testing.assert_allclose(m.log_prob(xs, **tol), lps, rtol=0, atol=1e-6)
            self.assertAlmostEqual(m.nll(x, **tol), -lp.mean(), delta=1e-12)
            # same seed, same samples; another seed, others
            self.assertTrue(np.array_equal(m.sample(5, seed=9)[0], m.sample(5, seed=9)[0]))
            self.assertFalse(np.array_equal(m.sample(5, seed=9)[0], m.sample(5, seed=8)[0]))

    def test_save_load_params(self):
        m = cnf.Model.cnf(2, hidden=(8, 8), blocks=2, T=0.7, seed=5)
        self.assertEqual(m.T, (0.7, 0.7))
        self.assertEqual(m.name, "cnf")
        self.assertEqual(m.kind, "flow")
        p = m.params
        self.assertEqual(p.dtype, np.float64)
        self.assertTrue(p.flags.writeable)
        x = cnf.toy("8gaussians", 10, seed=1)
        before = m.log_prob(x)
        p[:] *= 1.5  # the view is the model's own array
        after = m.log_prob(x)
        self.assertFalse(np.array_equal(before, after))
        m.save(self.path("a.cnf"))
        m2 = cnf.Model.load(self.path("a.cnf"))
        self.assertTrue(np.array_equal(m2.params, m.params))
        self.assertTrue(np.array_equal(m2.log_prob(x), after))
        # the view keeps the model alive
        v = cnf.Model.cnf(2, hidden="4", seed=1).params
        v2 = v.copy()
        import gc
        gc.collect()
        self.assertTrue(np.array_equal(v, v2))
        s = cnf.Model.stack("realnvp", 3, seed=2)
        self.assertEqual((s.kind, s.name, s.dim, s.T), ("stack", "realnvp", 3, ()))

    def test_arrays_in(self):
        m = cnf.Model.cnf(2, hidden="8", seed=1)
        x = cnf.toy("moons", 6, seed=1)
        want = m.log_prob(x)
        # converted: float32, Fortran order, a list, a strided view
        self.assertTrue(np.allclose(m.log_prob(x.astype(np.float32)), want, atol=1e-5))
        self.assertTrue(np.array_equal(m.log_prob(np.asfortranarray(x)), want))
        self.assertTrue(np.array_equal(m.log_prob(x.tolist()), want))
        wide = np.zeros((6, 4))
        wide[:, ::2] = x
        self.assertTrue(np.array_equal(m.log_prob(wide[:, ::2]), want))
        ro = x.copy()
        ro.flags.writeable = False
        self.assertTrue(np.array_equal(m.log_prob(ro), want))
        # refused before C is called
        cases = [(np.zeros((5, 3)), "expected 2 columns"), (np.zeros(2), "expected a 2-D"),
                 (np.zeros((2, 2, 2)), "expected a 2-D"), (np.zeros((0, 2)), "no rows"),
                 (np.array([["a", "b"]]), "expected real numbers"),
                 (np.zeros((2, 2), dtype=complex), "expected real numbers"),
                 (np.array([[1, None]], dtype=object), "expected real numbers")]
        for bad, msg in cases:
            with self.assertRaises(ValueError) as cm:
                m.log_prob(bad)
            self.assertIn(msg, str(cm.exception))
        with self.assertRaises(ValueError):
            m.sample(0)
        with self.assertRaises(ValueError):
            m.log_prob(x, trace="hutch")
        with self.assertRaises(TypeError):
            m.log_prob(x, rtols=1e-3)
        with self.assertRaises(ValueError):
            cnf.Model.cnf(2, hidden="8-x")

    def test_library_errors(self):
        with self.assertRaises(cnf.Error) as cm:
            cnf.Model.load(self.path("missing.cnf"))
        e = cm.exception
        self.assertIsInstance(e, RuntimeError)
        self.assertEqual((e.code, e.name), (-9, "CNF_EIO"))
        self.assertIn("missing.cnf", e.message)
        with open(self.path("bad.cnf"), "w") as f:
            f.write("not a model\n")
        with self.assertRaises(cnf.Error) as cm:
            cnf.Model.load(self.path("bad.cnf"))
        self.assertIn("bad.cnf", cm.exception.message)
        self.assertTrue(cm.exception.name.startswith("CNF_E"))
        with self.assertRaises(cnf.Error) as cm:
            cnf.Model.create("nosuchflow", 2)
        self.assertEqual(cm.exception.name, "CNF_EINVAL")
        # a solver that gives up: max_steps 1
        m = cnf.Model.cnf(2, hidden="8", seed=1)
        with self.assertRaises(cnf.Error) as cm:
            m.log_prob(np.ones((3, 2)), max_steps=1, rtol=1e-12, atol=1e-12)
        self.assertEqual(cm.exception.name, "CNF_ETOOMUCHWORK")
        with self.assertRaises(cnf.Error):
            m.save(os.path.join(self.dir, "no", "such", "dir.cnf"))


if __name__ == "__main__":
    unittest.main()
