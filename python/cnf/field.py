"""Velocity fields written in Python (cnf_dynamics.h): a callable
f(t, z) -> dz/dt over the whole batch becomes a cnf_dyn through cffi
callbacks, and the library's solver integrates it with the log-density.

Each right-hand-side evaluation of the solver is one call of f (plus one
of div when the exact trace is wanted and div is given): z arrives as a
read-only (B, D) view of the solver's state, no copy, and the result is
copied into the solver's array.  An exception raised by f, div or jvp
(also a result of the wrong shape) stops the solve: the callback returns
CNF_ERHS to the library, which unwinds and frees, and the exception is
raised again to the caller of solve or log_prob_at."""

import numpy as np

from ._core import as_rows, new_ctx, options, ptr, raise_for, stats_dict, trace_code, wrap
from ._lib import CNF_ERHS, ffi, lib

_SIG_F = "int(void *, double, size_t, const double *, const double *, double *)"
_SIG_FDIV = ("int(void *, double, size_t, size_t, const double *, const double *, "
             "const double *, double *, double *)")
_SIG_JVP = _SIG_FDIV
_SIG_LOGP = "int(void *, size_t, size_t, const double *, double *)"


def _store(dst, value, shape, what):
    a = np.asarray(value, dtype=np.float64)
    if a.shape != shape:
        raise ValueError("%s returned an array of shape %s, expected %s"
                         % (what, a.shape, shape))
    dst[...] = a


class Field:
    """A velocity field dz/dt = f(t, z) for cnf's solver.

    f(t, z): t a float, z (B, D) read-only; returns dz/dt (B, D).
    div(t, z) (optional): the divergence tr(df/dz) of each row (B), used
        for the exact trace; without it the library differentiates f
        numerically (central differences, 2 D extra calls per evaluation).
    jvp(t, z, v) (optional): J v for tangents v (K, B, D), returning
        (K, B, D); it gives Hutchinson traces (trace='gauss' or
        'rademacher'), and the exact trace when div is absent.
    The field has no parameters; one instance serves any dimension."""

    def __init__(self, f, div=None, jvp=None, name="python"):
        if not callable(f):
            raise TypeError("f must be callable as f(t, z)")
        self.f, self.div, self.jvp = f, div, jvp
        self.name = name
        self.calls = 0
        self._exc = None
        self._ctx = new_ctx()
        self._dyns = {}
        self._name_b = ffi.new("char[]", str(name).encode())
        self._type = ffi.new("cnf_dyn_type *")
        self._type.name = self._name_b
        self._cbs = [ffi.callback(_SIG_F, self._cb_f)]
        self._type.f = self._cbs[0]
        if div is not None:
            self._cbs.append(ffi.callback(_SIG_FDIV, self._cb_fdiv))
            self._type.f_div = self._cbs[-1]
        if jvp is not None:
            self._cbs.append(ffi.callback(_SIG_JVP, self._cb_jvp))
            self._type.jvp = self._cbs[-1]

    # ---- the callbacks: never let an exception into C ------------------------

    def _fail(self, e):
        if self._exc is None:
            self._exc = e
        return CNF_ERHS

    def _eval_f(self, t, B, D, z, dz):
        self.calls += 1
        _store(wrap(dz, (B, D), True), self.f(t, wrap(z, (B, D), False)), (B, D), "f")

    def _cb_f(self, s, t, B, z, theta, dz):
        try:
            self._eval_f(t, B, self._D, z, dz)
            return 0
        except BaseException as e:
            return self._fail(e)

    def _tangents(self, B, K, D, v):
        if v == ffi.NULL:  # the unit vectors e_k, K = D
            return np.ascontiguousarray(
                np.broadcast_to(np.eye(D)[:, None, :], (D, B, D)))
        return wrap(v, (K, B, D), False)

    def _cb_fdiv(self, s, t, B, K, z, theta, v, dz, div):
        try:
            D = self._D
            self._eval_f(t, B, D, z, dz)
            zz = wrap(z, (B, D), False)
            out = wrap(div, (B,), True)
            if v == ffi.NULL:
                _store(out, self.div(t, zz), (B,), "div")
            elif self.jvp is not None:
                vv = wrap(v, (K, B, D), False)
                jv = np.asarray(self.jvp(t, zz, vv), dtype=np.float64)
                if jv.shape != (K, B, D):
                    raise ValueError("jvp returned an array of shape %s, expected %s"
                                     % (jv.shape, (K, B, D)))
                out[...] = np.einsum("kbd,kbd->b", vv, jv)
            else:
                raise ValueError("a Hutchinson trace needs the field's jvp "
                                 "(Field(f, div, jvp=...)); div gives only the exact trace")
            return 0
        except BaseException as e:
            return self._fail(e)

    def _cb_jvp(self, s, t, B, K, z, theta, v, dz, jv):
        try:
            D = self._D
            if dz != ffi.NULL:
                self._eval_f(t, B, D, z, dz)
            if v == ffi.NULL:
                K = D
            vv = self._tangents(B, K, D, v)
            _store(wrap(jv, (K, B, D), True), self.jvp(t, wrap(z, (B, D), False), vv),
                   (K, B, D), "jvp")
            return 0
        except BaseException as e:
            return self._fail(e)

    # ---- the library object ---------------------------------------------------

    def _dyn(self, D):
        d = self._dyns.get(D)
        if d is None:
            out = ffi.new("cnf_dyn **")
            raise_for(lib.cnf_dyn_create(out, self._ctx, self._type, ffi.NULL, 0, D, 0),
                      self._ctx)
            # the destructor holds the context: it must outlive the field
            d = self._dyns[D] = ffi.gc(out[0], lambda p, ctx=self._ctx: lib.cnf_dyn_free(p))
        self._D = D
        return d

    def _run(self, call):
        """Run a library call; re-raise the callable's exception if it
        stopped it, else raise the library's error."""
        self._exc = None
        rc = call()
        exc, self._exc = self._exc, None
        if exc is not None:
            raise exc
        raise_for(rc, self._ctx)

    def __call__(self, t, z):
        return self.f(t, z)


def _probes(trace, probes, seed, B, D):
    code = trace_code(trace)
    if code == 0:
        return 0, ffi.NULL
    if int(probes) != probes or probes < 1:
        raise ValueError("probes: expected a positive integer, got %r" % (probes,))
    eps = np.empty((int(probes), B, D))
    rc = lib.cnf_probes_draw(code, int(seed), int(probes), B, D, ptr(eps))
    if rc != 0:
        raise ValueError("cannot draw %d probes" % probes)
    return int(probes), ptr(eps)


_FIELD_SOLVER_KEYS = ("rtol", "atol", "atol_logp", "max_steps", "method", "max_order", "h_init",
                      "max_nonlin_iters")


def _prepare(field, x, what, trace, probes, seed, solver):
    """The Field, the options, x as (B, D) rows and the probes of a call."""
    if not isinstance(field, Field):
        field = Field(field)
    opt = options(solver, allowed=_FIELD_SOLVER_KEYS)
    x = as_rows(x, None, what)
    K, eps_p = _probes(trace, probes, seed, x.shape[0], x.shape[1])
    return field, opt, x, K, eps_p


def solve(field, x0, times, trace="exact", probes=1, seed=0, **solver):
    """Integrate dz/dt = field(t, z) and dDelta/dt = -div f from x0 (B, D)
    at times[0] through the monotone times (m), as torchdiffeq's
    odeint(func, y0, t), all rows one ODE system.  Returns (z (m, B, D),
    delta (m, B)), delta(times[0]) = 0, so log p_t(z(t)) = log p_0(x0) +
    delta(t).  trace: 'exact', or Hutchinson ('gauss' | 'rademacher') with
    `probes` probes drawn from `seed` (needs the field's jvp).  Solver
    keywords: rtol, atol, atol_logp, max_steps, method, max_order, h_init,
    max_nonlin_iters.  field: a Field or a callable f(t, z)."""
    field, opt, x, K, eps_p = _prepare(field, x0, "x0", trace, probes, seed, solver)
    B, D = x.shape
    ts = np.ascontiguousarray(np.asarray(times, dtype=np.float64))
    if ts.ndim != 1 or ts.size == 0:
        raise ValueError("times: expected a 1-D array of at least one time, got shape %s"
                         % (ts.shape,))
    d = np.diff(ts)
    if not (np.all(d >= 0) or np.all(d <= 0)) or not np.all(np.isfinite(ts)):
        raise ValueError("times: expected finite times in one direction, got %s" % (ts,))
    m = ts.size
    z = x.copy()
    delta = np.zeros(B)
    z_out = np.empty((m, B, D))
    delta_out = np.empty((m, B))
    st = ffi.new("cnf_stats *")
    dyn = field._dyn(D)
    field._run(lambda: lib.cnf_dyn_solve_times(dyn, ffi.NULL, opt, ts[0], m, ptr(ts), B, K,
                                               eps_p, ptr(z), ptr(delta), ptr(z_out),
                                               ptr(delta_out), st))
    field.last_stats = stats_dict(st)
    return z_out, delta_out


def _standard_normal(x):
    D = x.shape[1]
    return -0.5 * np.einsum("bd,bd->b", x, x) - 0.5 * D * np.log(2 * np.pi)


def log_prob_at(field, x, t, t0=0.0, log_p0=None, trace="exact", probes=1, seed=0, **solver):
    """log p_t(x) (B) of the rows of x (B, D) for the density p_t that the
    field carries from p_0 at t0 (the continuity equation): each row is
    integrated back to t0 and log p_t(x) = log p_0(x(t0)) - int div f.
    log_p0(x) -> (B) is p_0's log-density (None: the standard normal).
    trace, probes, seed and solver keywords as for solve."""
    field, opt, x, K, eps_p = _prepare(field, x, "x", trace, probes, seed, solver)
    B, D = x.shape
    p0 = log_p0 or _standard_normal

    def cb_logp(user, n, Dd, xs, out):
        try:
            _store(wrap(out, (n,), True), p0(wrap(xs, (n, Dd), False)), (n,), "log_p0")
            return 0
        except BaseException as e:
            return field._fail(e)

    cb = ffi.callback(_SIG_LOGP, cb_logp)
    dens = ffi.new("cnf_density *")
    dens.logp = cb
    lp = np.empty(B)
    st = ffi.new("cnf_stats *")
    dyn = field._dyn(D)
    field._run(lambda: lib.cnf_dyn_logp_at(dyn, ffi.NULL, opt, dens, float(t0), float(t), B, K,
                                           eps_p, ptr(x), ptr(lp), st))
    field.last_stats = stats_dict(st)
    return lp
