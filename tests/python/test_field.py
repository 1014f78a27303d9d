"""Fields written in Python (cnf.Field, cnf.solve, cnf.log_prob_at).

- The Ornstein-Uhlenbeck problem of the PDE suite (docs/pde.md, P3; the
  library's A and b): its field written in numpy carries N(0, I) to
  N(m_t, Sigma_t), and log_prob_at reaches the closed form to <= 1e-6
  at rtol = atol = 1e-8, as the library's C field does on the same points;
  the two agree with each other far closer than either with the truth.
- A linear field z' = a z through solve at several times: states
  x0 e^{a t} and Delta(t) = -D a t, exactly as the math says.
- Hutchinson traces through the field's jvp: Rademacher probes are exact
  for a diagonal Jacobian.
- An exception raised inside the field (or a wrong-shaped result) stops the
  solve and reaches the caller as that same exception; nothing is left
  behind (the field solves again afterwards)."""

import gc
import os
import signal
import unittest

import cffi
import numpy as np

import cnf
from cnf._core import new_ctx, ptr, raise_for
from cnf._lib import ffi, lib


class OU:
    """P3: dX = -A (X - b) dt + sqrt(2) dW, X0 ~ N(0, I); A = Q diag(l) Q^T.
    m_t = (I - e^{-tA}) b, Sigma_t = A^{-1} (I - e^{-2tA}) + e^{-2tA}; the
    probability-flow field v = -A (x - b) + Sigma_t^{-1} (x - m_t), div v =
    -tr A + tr Sigma_t^{-1}."""

    def __init__(self, A, b):
        self.A, self.b = A, b
        self.l, self.Q = np.linalg.eigh(A)

    def moments(self, t):
        e1, e2 = np.exp(-t * self.l), np.exp(-2 * t * self.l)
        m = self.Q @ ((1 - e1) * (self.Q.T @ self.b))
        s = (1 - e2) / self.l + e2
        return m, s  # Sigma_t = Q diag(s) Q^T

    def f(self, t, z):
        m, s = self.moments(t)
        y = (z - m) @ self.Q / s  # Sigma^{-1} (z - m) in Q's basis
        return -(z - self.b) @ self.A.T + y @ self.Q.T

    def div(self, t, z):
        m, s = self.moments(t)
        return np.full(z.shape[0], -np.trace(self.A) + np.sum(1 / s))

    def logp(self, t, x):
        m, s = self.moments(t)
        y = (x - m) @ self.Q
        return (-0.5 * np.sum(y * y / s, axis=1) - 0.5 * np.sum(np.log(s))
                - 0.5 * x.shape[1] * np.log(2 * np.pi))

    def sample(self, t, n, seed):
        m, s = self.moments(t)
        g = np.random.default_rng(seed).normal(size=(n, self.b.size))
        return m + (g * np.sqrt(s)) @ self.Q.T


def standard_normal(x):
    return -0.5 * np.sum(x * x, axis=1) - 0.5 * x.shape[1] * np.log(2 * np.pi)


def ou_c_field(d, seed, ctx):
    """The library's OU problem P3 in dimension d: its C field (cnf_dyn)
    and the same problem as an OU object (A, b read from the library)."""
    pou = ffi.new("cnf_pde_ou **")
    raise_for(lib.cnf_pde_ou_create(pou, ctx, d, seed), ctx)
    ou_c = ffi.gc(pou[0], lambda p, ctx=ctx: lib.cnf_pde_ou_free(p))
    A = np.frombuffer(ffi.buffer(lib.cnf_pde_ou_A(ou_c), 8 * d * d)).reshape(d, d).copy()
    b = np.frombuffer(ffi.buffer(lib.cnf_pde_ou_b(ou_c), 8 * d)).copy()
    pdyn = ffi.new("cnf_dyn **")
    raise_for(lib.cnf_pde_ou_dyn(pdyn, ctx, ou_c), ctx)
    return ou_c, ffi.gc(pdyn[0], lambda p, ctx=ctx: lib.cnf_dyn_free(p)), OU(A, b)


@ffi.callback("int(void *, size_t, size_t, const double *, double *)")
def _c_standard_normal(user, B, D, xs, out):
    a = np.frombuffer(ffi.buffer(xs, 8 * B * D)).reshape(B, D)
    np.frombuffer(ffi.buffer(out, 8 * B))[:] = standard_normal(a)
    return 0


def c_log_prob_at(dyn, ctx, x, t, tol):
    """log p_t(x) by cnf_dyn_logp_at called directly on a C field, p_0 the
    standard normal, exact trace; returns (logp, RHS evaluations)."""
    dens = ffi.new("cnf_density *")
    dens.logp = _c_standard_normal
    opt = ffi.new("cnf_options *")
    lib.cnf_options_default(opt)
    opt.rtol = opt.atol = tol
    lp = np.empty(x.shape[0])
    st = ffi.new("cnf_stats *")
    raise_for(lib.cnf_dyn_logp_at(dyn, ffi.NULL, opt, dens, 0.0, t, x.shape[0], 0, ffi.NULL,
                                  ptr(x), ptr(lp), st), ctx)
    return lp, st.nfe


class TestField(unittest.TestCase):
    def test_ou_matches_closed_form_and_c_field(self):
        d, t, n = 10, 1.0, 1000
        ctx = new_ctx()
        ou_c, dyn, ou = ou_c_field(d, 7, ctx)
        x = ou.sample(t, n, seed=3)
        truth = ou.logp(t, x)
        # the closed form is the library's own
        lc = np.empty(n)
        raise_for(lib.cnf_pde_ou_logp(ou_c, t, n, ptr(x), ptr(lc)), ctx)
        np.testing.assert_allclose(truth, lc, rtol=0, atol=1e-10)

        field = cnf.Field(ou.f, div=ou.div, name="ou")
        lp_py = cnf.log_prob_at(field, x, t, rtol=1e-8, atol=1e-8)
        err_py = np.abs(lp_py - truth)

        # the C field of the PDE suite on the same points
        lp_c, _ = c_log_prob_at(dyn, ctx, x, t, 1e-8)
        err_c = np.abs(lp_c - truth)
        print("\n  OU d = %d, t = %g, rtol = atol = 1e-8: Python field mean %.2g max %.2g "
              "(%d calls of f), C field mean %.2g max %.2g, |Python - C| max %.2g"
              % (d, t, err_py.mean(), err_py.max(), field.calls, err_c.mean(), err_c.max(),
                 np.max(np.abs(lp_py - lp_c))), end="")
        self.assertLessEqual(err_py.mean(), 1e-6)
        self.assertLessEqual(err_py.max(), 1e-5)
        self.assertLessEqual(err_c.mean(), 1e-6)
        self.assertLessEqual(np.max(np.abs(lp_py - lp_c)), 1e-7)
        self.assertGreater(field.calls, 10)
        # at the default tolerance the error is visibly larger: the test sees the solver
        lp_loose = cnf.log_prob_at(field, x, t, rtol=1e-4, atol=1e-4)
        self.assertGreater(np.abs(lp_loose - truth).mean(), err_py.mean())

    def test_solve_linear_at_times(self):
        a, D = -0.7, 3
        field = cnf.Field(lambda t, z: a * z, div=lambda t, z: np.full(z.shape[0], a * D))
        x0 = np.random.default_rng(2).normal(size=(5, D))
        times = np.array([0.0, 0.25, 0.5, 1.0])
        z, delta = cnf.solve(field, x0, times, rtol=1e-10, atol=1e-10)
        self.assertEqual((z.shape, delta.shape), ((4, 5, D), (4, 5)))
        want = x0[None] * np.exp(a * times)[:, None, None]
        np.testing.assert_allclose(z, want, rtol=0, atol=1e-8)
        # dDelta/dt = -div = -D a
        np.testing.assert_allclose(delta, np.tile(-D * a * times[:, None], (1, 5)), rtol=0,
                                   atol=1e-8)
        self.assertTrue(np.array_equal(z[0], x0))
        # backward in time, and without div (the library differentiates f)
        zb, db = cnf.solve(lambda t, z: a * z, x0, [1.0, 0.0], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(zb[1], x0 * np.exp(-a), rtol=0, atol=1e-8)
        np.testing.assert_allclose(db[1], D * a * np.ones(5), rtol=0, atol=1e-6)

    def test_hutchinson_through_jvp(self):
        # diagonal Jacobian: z' = -z^3 elementwise, J = diag(-3 z^2);
        # Rademacher probes are exact for it, so Delta matches the exact trace
        f = lambda t, z: -z ** 3
        jvp = lambda t, z, v: -3 * z ** 2 * v
        div = lambda t, z: np.sum(-3 * z ** 2, axis=1)
        field = cnf.Field(f, div=div, jvp=jvp)
        x0 = np.random.default_rng(4).normal(size=(7, 4))
        _, d_exact = cnf.solve(field, x0, [0, 0.5], rtol=1e-10, atol=1e-10)
        _, d_rad = cnf.solve(field, x0, [0, 0.5], trace="rademacher", probes=2, seed=1,
                             rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(d_rad, d_exact, rtol=0, atol=1e-8)
        # closed form: y = x0 / sqrt(1 + 2 t x0^2), int tr J = -(3/2) sum log(1 + 2 t x0^2)
        want = 1.5 * np.sum(np.log1p(2 * 0.5 * x0 ** 2), axis=1)
        np.testing.assert_allclose(d_exact[1], want, rtol=0, atol=1e-7)
        # Gaussian probes differ from the exact trace (the estimate is noisy)
        _, d_gauss = cnf.solve(field, x0, [0, 0.5], trace="gauss", seed=1)
        self.assertGreater(np.max(np.abs(d_gauss[1] - d_exact[1])), 1e-3)
        # jvp alone also serves the exact trace (with v the unit vectors)
        _, d_jvp = cnf.solve(cnf.Field(f, jvp=jvp), x0, [0, 0.5], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(d_jvp, d_exact, rtol=0, atol=1e-8)
        # Hutchinson with div but no jvp is refused with a clear message
        with self.assertRaises(ValueError) as cm:
            cnf.solve(cnf.Field(f, div=div), x0, [0, 0.5], trace="gauss")
        self.assertIn("needs the field's jvp", str(cm.exception))

    def test_exception_in_field_reaches_caller(self):
        class Boom(Exception):
            pass

        boom = Boom("field failed")
        calls = []

        def f(t, z):
            calls.append(t)
            if len(calls) == 5:
                raise boom
            return -z

        field = cnf.Field(f)
        x0 = np.ones((3, 2))
        with self.assertRaises(Boom) as cm:
            cnf.solve(field, x0, [0.0, 1.0])
        self.assertIs(cm.exception, boom)
        self.assertEqual(len(calls), 5)  # the solve stopped at the failing call
        # the field is usable again: the next solve runs to the end
        z, _ = cnf.solve(field, x0, [0.0, 1.0], rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(z[1], np.exp(-1.0) * x0, atol=1e-6)
        # in log_prob_at, and in the divergence and in p0
        with self.assertRaises(ZeroDivisionError):
            cnf.log_prob_at(cnf.Field(lambda t, z: -z, div=lambda t, z: 1 / 0), x0, 1.0)
        with self.assertRaises(KeyError):
            cnf.log_prob_at(lambda t, z: -z, x0, 1.0, log_p0=lambda x: {}["p0"])
        # Ctrl-C during a solve arrives as KeyboardInterrupt, the same way
        ticks = []

        def interrupted(t, z):
            ticks.append(t)
            if len(ticks) == 12:
                os.kill(os.getpid(), signal.SIGINT)
            return -z

        with self.assertRaises(KeyboardInterrupt):
            cnf.solve(interrupted, x0, [0.0, 1.0])
        self.assertEqual(len(ticks), 12)
        # wrong shapes from the callable, named
        with self.assertRaises(ValueError) as cm:
            cnf.solve(lambda t, z: z[:, :1], x0, [0, 1])
        self.assertIn("f returned an array of shape (3, 1), expected (3, 2)", str(cm.exception))
        with self.assertRaises(ValueError) as cm:
            cnf.solve(cnf.Field(lambda t, z: -z, div=lambda t, z: np.zeros(2)), x0, [0, 1])
        self.assertIn("div returned an array of shape (2,), expected (3,)", str(cm.exception))
        # wrong-shaped inputs, before C is called
        with self.assertRaises(ValueError):
            cnf.solve(field, np.ones(3), [0, 1])
        with self.assertRaises(ValueError):
            cnf.solve(field, x0, [0, 1, 0.5])
        with self.assertRaises(ValueError):
            cnf.solve(field, x0, [[0, 1]])
        # a solver failure of a healthy field is a cnf.Error
        with self.assertRaises(cnf.Error) as cm:
            cnf.solve(lambda t, z: -z, x0, [0, 10], max_steps=2)
        self.assertEqual(cm.exception.name, "CNF_ETOOMUCHWORK")
        # nothing kept alive by the failures: fields are collected
        import weakref
        w = weakref.ref(field)
        del field, cm
        gc.collect()
        self.assertIsNone(w())

    def test_failures_leak_nothing(self):
        """200 solves stopped by an exception in the field and 200 refused
        inputs: the C heap (glibc's count of bytes in use) does not grow.
        One solve of this size holds about 0.5 MB of solver memory, so a
        leak on the error path would show as 100 MB."""
        libc = cffi.FFI()
        libc.cdef("struct mallinfo2 { size_t arena, ordblks, smblks, hblks, hblkhd, usmblks, "
                  "fsmblks, uordblks, fordblks, keepcost; }; struct mallinfo2 mallinfo2(void);")
        c = libc.dlopen(None)

        def in_use():
            gc.collect()
            m = c.mallinfo2()
            return m.uordblks + m.hblkhd

        n = [0]

        def f(t, z):
            n[0] += 1
            if n[0] % 4 == 0:
                raise ArithmeticError("stop")
            return -z

        field = cnf.Field(f)
        x0 = np.random.default_rng(1).normal(size=(400, 20))
        bad = np.ones((400, 20, 1))

        def round_():
            with self.assertRaises(ArithmeticError):
                cnf.solve(field, x0, [0.0, 1.0])
            with self.assertRaises(ValueError):
                cnf.solve(field, bad, [0.0, 1.0])

        for _ in range(20):  # warm up: pools, numpy caches, the field's workspace
            round_()
        before = in_use()
        for _ in range(200):
            round_()
        grown = in_use() - before
        print("\n  C heap growth over 200 failed solves: %d bytes" % grown, end="")
        self.assertLess(grown, 4 << 20)


if __name__ == "__main__":
    unittest.main()
