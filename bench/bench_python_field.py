"""The cost of a velocity field written in Python, per right-hand-side
evaluation, against the same field in C (docs/performance.md, "Fields
written in Python").

The field is P3 of the PDE suite (Ornstein-Uhlenbeck, docs/pde.md) with
its exact divergence: the library's C field (cnf_pde_ou_dyn) and the same
formulas in numpy through cnf.Field.  One right-hand-side evaluation with
the exact trace is one cnf_dyn_f_div call (what the solver makes), timed
in a loop on fixed states; a third row times a field that does no work
(f returns a copy of z, div zeros), i.e. the fixed cost of crossing into
Python, making the numpy views and copying the result back.  A last pair
of rows times whole solves (log_prob_at from t = 1 back to 0, rtol = atol
= 1e-8) per evaluation.

    CNF_LIBRARY=build/libcnf.so PYTHONPATH=python OPENBLAS_NUM_THREADS=1 \\
        /usr/bin/python3 bench/bench_python_field.py [--quick]

Prints a Markdown table: microseconds per evaluation (best of 5 timed
loops of about 0.2 s each), for batch B = 100 and 10000, d = 2 and 10."""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "python"))

import cnf  # noqa: E402
from cnf._core import new_ctx, ptr, raise_for  # noqa: E402
from cnf._lib import ffi, lib  # noqa: E402
from test_field import c_log_prob_at, ou_c_field  # noqa: E402


def best_time(fn, target=0.2, repeats=5):
    """Seconds per call: the best of `repeats` loops of about `target` s."""
    n, t = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        t = time.perf_counter() - t0
        if t >= target / 4 or n > 1 << 20:
            break
        n *= 2
    n = max(1, int(n * target / max(t, 1e-9)))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def per_eval(dyn, B, D, ctx):
    z = np.random.default_rng(1).normal(size=(B, D))
    dz, div = np.empty((B, D)), np.empty(B)
    raise_for(lib.cnf_dyn_reserve(dyn, B, D), ctx)
    zp, dzp, divp = ptr(z), ptr(dz), ptr(div)

    def call():
        if lib.cnf_dyn_f_div(dyn, 0.5, B, D, zp, ffi.NULL, ffi.NULL, dzp, divp) != 0:
            raise RuntimeError("f_div failed")

    return best_time(call)


def per_eval_solve(run, n_evals):
    return best_time(run, target=0.5, repeats=3) / n_evals


def main():
    quick = "--quick" in sys.argv
    ctx = new_ctx()
    rows = []
    for D in (2, 10):
        ou_c, cdyn, ou = ou_c_field(D, 7, ctx)
        pyfield = cnf.Field(ou.f, div=ou.div)
        empty = cnf.Field(lambda t, z: z, div=lambda t, z: np.zeros(z.shape[0]))
        for B in (100, 10000):
            c = per_eval(cdyn, B, D, ctx)
            py = per_eval(pyfield._dyn(D), B, D, ctx)
            e = per_eval(empty._dyn(D), B, D, ctx)
            row = [D, B, c * 1e6, py * 1e6, (py - c) * 1e6, py / c, e * 1e6]
            if not quick:
                x = ou.sample(1.0, B, seed=3)
                _, nfe_c = c_log_prob_at(cdyn, ctx, x, 1.0, 1e-8)
                cnf.log_prob_at(pyfield, x, 1.0, rtol=1e-8, atol=1e-8)
                nfe_py = pyfield.last_stats["nfe"]
                sc = per_eval_solve(lambda: c_log_prob_at(cdyn, ctx, x, 1.0, 1e-8), nfe_c)
                sp = per_eval_solve(
                    lambda: cnf.log_prob_at(pyfield, x, 1.0, rtol=1e-8, atol=1e-8), nfe_py)
                row += [sc * 1e6, sp * 1e6, nfe_c, nfe_py]
            rows.append(row)
    print("| d | B | C field µs/eval | Python field µs/eval | overhead µs | ratio | "
          "empty Python field µs/eval | solve: C µs/eval | solve: Python µs/eval | NFE C / Python |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        s = "| %d | %d | %.3g | %.3g | %.3g | %.2gx | %.3g" % tuple(r[:7])
        if len(r) > 7:
            s += " | %.3g | %.3g | %d / %d |" % tuple(r[7:])
        else:
            s += " | | | |"
        print(s)


if __name__ == "__main__":
    main()
