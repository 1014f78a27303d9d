"""cnf.fit: the library's training loop from Python.

- Bit for bit the same run as cnf_fit called from C with the same settings
  (fit_ref.c, `cnf train`'s defaults): final parameters and losses equal,
  from a toy generator and from rows.
- Deterministic for a seed; another seed gives another run.
- The callback sees every step and stops the run by returning True; an
  exception in it stops the run and is raised again; Ctrl-C (SIGINT)
  stops the run cleanly after the current step.
- Validation keeps the best model on disk; a checkpoint resumes exactly.
- Training lowers the held-out NLL."""

import os
import signal
import subprocess
import unittest

import numpy as np

import cnf
from support import FIT_REF, ScratchCase

SMALL = dict(hidden="16-16")


class TestFit(ScratchCase):
    def c_fit(self, model_in, data, iters, batch, lr, seed, model_out):
        p = subprocess.run([FIT_REF, model_in, data, str(iters), str(batch), str(lr), str(seed),
                            model_out], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        return [float.fromhex(s) for s in p.stdout.split()]

    def test_same_as_c(self):
        rows = cnf.toy("pinwheel", 300, seed=4)
        np.save(self.path("rows.npy"), rows)
        for data, pydata in (("8gaussians", "8gaussians"), (self.path("rows.npy"), rows)):
            m = cnf.Model.cnf(2, seed=11, **SMALL)
            m.save(self.path("in.cnf"))
            loss_avg, last = self.c_fit(self.path("in.cnf"), data, 12, 50, 3e-3, 5,
                                        self.path("out.cnf"))
            ref = cnf.Model.load(self.path("out.cnf"))
            r = cnf.fit(m, pydata, iters=12, batch=50, lr=3e-3, seed=5)
            self.assertEqual((r.steps, r.iteration, r.failed), (12, 12, 0))
            self.assertTrue(np.array_equal(m.params, ref.params),
                            "%s: max diff %g" % (data, np.max(np.abs(m.params - ref.params))))
            self.assertEqual(m.T, ref.T)
            self.assertEqual(r.loss_avg, loss_avg)
            self.assertEqual(r.last.loss, last)
            self.assertNotEqual(m.T, (0.5,))  # the end time was trained
        # a stack as well
        s = cnf.Model.stack("realnvp", 2, seed=3)
        s.save(self.path("in.cnf"))
        loss_avg, last = self.c_fit(self.path("in.cnf"), "moons", 6, 64, 1e-3, 2,
                                    self.path("out.cnf"))
        r = cnf.fit(s, "moons", iters=6, batch=64, seed=2)
        self.assertTrue(np.array_equal(s.params, cnf.Model.load(self.path("out.cnf")).params))
        self.assertEqual((r.loss_avg, r.last.loss), (loss_avg, last))

    def test_same_as_cnf_train(self):
        """fit with cnf train's defaults writes cnf train's model file, byte
        for byte: a CNF (maximum likelihood), a CNF by OT flow matching and
        a RealNVP stack."""
        for flow, extra in (("cnf", {}), ("cnf", {"objective": "ot-fm"}), ("realnvp", {})):
            args = ["--threads", "1", "train", "--flow", flow, "--data", "8gaussians",
                    "--iters", "15", "--seed", "7", "--out", self.path("cli.cnf")]
            for k, v in extra.items():
                args += ["--" + k.replace("_", "-"), v]
            self.cli_ok(*args)
            m = cnf.Model.create(flow, 2, seed=7)
            cnf.fit(m, "8gaussians", iters=15, seed=7, threads=1,
                    state_path=self.path("py.cnf"), **extra)
            with open(self.path("cli.cnf"), "rb") as a, open(self.path("py.cnf"), "rb") as b:
                self.assertEqual(a.read(), b.read(), "%s %s" % (flow, extra))

    def test_deterministic(self):
        runs = []
        for seed in (1, 1, 2):
            m = cnf.Model.cnf(2, seed=0, **SMALL)
            r = cnf.fit(m, "moons", iters=5, batch=40, seed=seed)
            runs.append((m.params.copy(), r.loss_avg))
        self.assertTrue(np.array_equal(runs[0][0], runs[1][0]))
        self.assertEqual(runs[0][1], runs[1][1])
        self.assertFalse(np.array_equal(runs[0][0], runs[2][0]))

    def test_callback_and_stops(self):
        seen = []
        m = cnf.Model.cnf(2, seed=0, **SMALL)
        r = cnf.fit(m, "8gaussians", iters=50, batch=32,
                    callback=lambda rep: seen.append(rep) or rep.step == 3)
        self.assertEqual([s.step for s in seen], [1, 2, 3])
        self.assertTrue(all(s.total == 50 and s.status == 0 and np.isfinite(s.loss)
                            and s.nfe_fwd > 0 and s.nfe_bwd > 0 and s.grad_norm > 0
                            for s in seen))
        self.assertTrue(r.stopped and not r.interrupted)
        self.assertEqual((r.steps, m.iteration), (3, 3))
        # continuing trains from step 3 on
        r = cnf.fit(m, "8gaussians", iters=5, batch=32)
        self.assertEqual((r.steps, m.iteration), (2, 5))

        # an exception in the callback stops the run and is raised again
        class Stop(Exception):
            pass

        def bad(rep):
            if rep.step == 2:
                raise Stop("from the callback")

        m = cnf.Model.cnf(2, seed=0, **SMALL)
        with self.assertRaises(Stop):
            cnf.fit(m, "8gaussians", iters=50, batch=32, callback=bad)
        self.assertEqual(m.iteration, 2)

        # Ctrl-C: SIGINT during step 2's report stops the run after it
        def interrupt(rep):
            if rep.step == 2:
                os.kill(os.getpid(), signal.SIGINT)

        m = cnf.Model.cnf(2, seed=0, **SMALL)
        state = self.path("state.cnf")
        r = cnf.fit(m, "8gaussians", iters=50, batch=32, callback=interrupt, state_path=state)
        self.assertTrue(r.interrupted and r.stopped)
        self.assertIn(r.steps, (2, 3))
        self.assertEqual(cnf.Model.load(state).iteration, r.steps)  # checkpoint written
        # the handler is ours only during the run
        self.assertIs(signal.getsignal(signal.SIGINT), signal.default_int_handler)

    def test_validation_resume_and_learning(self):
        val = cnf.toy("8gaussians", 500, seed=99)
        m = cnf.Model.cnf(2, seed=0, **SMALL)
        before = m.nll(val)
        best, state = self.path("best.cnf"), self.path("state.cnf")
        vals = []
        r = cnf.fit(m, "8gaussians", iters=60, batch=100, lr=1e-2, val=val, val_every=20,
                    best_path=best, state_path=state, save_every=30,
                    callback=lambda rep: rep.validated and vals.append(rep.val_nll))
        self.assertEqual(len(vals), 3)
        self.assertEqual(r.best_val, min(vals))
        self.assertAlmostEqual(cnf.Model.load(best).nll(val, trace="exact"), r.best_val,
                               delta=1e-6)
        print("\n  NLL on held-out 8gaussians: %.3f before, %.3f after 60 steps"
              % (before, m.nll(val)), end="")
        self.assertLess(m.nll(val), before - 0.3)
        # resuming from the step-30 checkpoint reproduces the run
        m2 = cnf.Model.cnf(2, seed=0, **SMALL)
        cnf.fit(m2, "8gaussians", iters=30, batch=100, lr=1e-2, state_path=state)
        m3 = cnf.Model.load(state)
        cnf.fit(m3, "8gaussians", iters=60, batch=100, lr=1e-2)
        self.assertTrue(np.array_equal(m3.params, m.params))

    def test_bad_arguments(self):
        m = cnf.Model.cnf(2, seed=0, **SMALL)
        rows = cnf.toy("moons", 50, seed=1)
        for kw, msg in ((dict(data="nosuchtoy"), "unknown toy set"),
                        (dict(data=rows, batch=100), "only 50"),
                        (dict(data=np.zeros((10, 3))), "expected 2 columns"),
                        (dict(data=rows, lr=0), "lr"),
                        (dict(data=rows, iters=0), "iters"),
                        (dict(data=rows, val=np.zeros((4, 1))), "val"),
                        (dict(data=rows, trace="nope"), "trace"),
                        (dict(data=rows, adjoint="nope"), "adjoint")):
            with self.assertRaises(ValueError) as cm:
                cnf.fit(m, **dict(dict(batch=10), **kw))
            self.assertIn(msg, str(cm.exception))
        self.assertEqual(m.iteration, 0)
        with self.assertRaises(cnf.Error) as cm:
            cnf.fit(m, rows, batch=10, iters=2,
                    state_path=os.path.join(self.dir, "no", "dir", "s.cnf"))
        self.assertIn("s.cnf", cm.exception.message)


if __name__ == "__main__":
    unittest.main()
