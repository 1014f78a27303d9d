"""cnf: continuous normalizing flows in C, from Python.

numpy in, numpy out, over the shared library libcnf (docs/python.md):

    import cnf
    m = cnf.Model.load("model.cnf")
    logp = m.log_prob(x)            # x (B, D) float64
    x, logp = m.sample(1000, seed=1)
    cnf.fit(m, "8gaussians", iters=100)

Fields written in Python: cnf.Field(f, div=None, jvp=None), cnf.solve and
cnf.log_prob_at.  The flow in time: Model.trajectories and
Model.log_prob_at; figures drawn by the library: cnf.plot.  Library errors raise cnf.Error (a RuntimeError) with the
CNF_E* code and the library's message."""

from ._core import Error
from ._lib import path as library_path
from .field import Field, log_prob_at, solve
from . import plot
from .model import FitResult, Model, Report, fit, toy

__all__ = ["Error", "Model", "Report", "FitResult", "fit", "toy", "Field", "solve",
           "log_prob_at", "library_path", "plot"]
