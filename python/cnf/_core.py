"""Errors, array checks and solver options shared by the package's modules."""

import contextlib

import cffi
import numpy as np

from ._lib import ffi, lib


def _openblas():
    """OpenBLAS's thread controls, if the process has OpenBLAS (numpy and
    libcnf share one copy of it), else None."""
    bffi = cffi.FFI()
    bffi.cdef("int openblas_get_num_threads(void); void openblas_set_num_threads(int);")
    for name in ("libopenblas.so.0", "libopenblas.so"):
        try:
            b = bffi.dlopen(name)
            b.openblas_get_num_threads  # the symbols are there
            b.openblas_set_num_threads
            return b
        except (OSError, AttributeError):
            pass
    return None


_BLAS = _openblas()


@contextlib.contextmanager
def blas_one_thread():
    """OpenBLAS on one thread for the duration of a library call, as the
    library's batch split wants (docs/design.md, "Threads"): OpenBLAS's own
    threads only get in the way of the split's.  The count numpy had is
    restored afterwards."""
    n = _BLAS.openblas_get_num_threads() if _BLAS is not None else 1
    if n > 1:
        _BLAS.openblas_set_num_threads(1)
    try:
        yield
    finally:
        if n > 1:
            _BLAS.openblas_set_num_threads(n)


class Error(RuntimeError):
    """An error reported by the cnf library.

    Attributes: ``code`` (the negative CNF_E* status, e.g. -3), ``name``
    (``"CNF_EDIM"``) and ``message`` (the library's message, which names
    the file, the place and the reason where there is one)."""

    def __init__(self, code, message):
        self.code = int(code)
        self.name = ffi.string(lib.cnf_errname(self.code)).decode()
        self.message = message or ffi.string(lib.cnf_strerror(self.code)).decode()
        super().__init__("%s: %s" % (self.name, self.message))


def raise_for(rc, ctx):
    """Raise Error for a non-zero status rc, with the message of ctx."""
    if rc == 0:
        return
    msg = ""
    if ctx is not None and ctx != ffi.NULL:
        msg = ffi.string(lib.cnf_ctx_errmsg(ctx)).decode("utf-8", "replace")
    raise Error(rc, msg)


def new_ctx():
    """A library context freed by the garbage collector."""
    out = ffi.new("cnf_ctx **")
    rc = lib.cnf_ctx_create(out)
    if rc != 0:
        raise Error(rc, "cannot create a library context")
    return ffi.gc(out[0], lib.cnf_ctx_free)


def as_rows(x, D, what="x"):
    """x as a (B, D) float64 C-contiguous array, without a copy when it is
    one already; ValueError for anything that is not numbers of that
    shape.  D None accepts any column count."""
    if isinstance(x, np.ndarray) and x.dtype == np.float64 and x.flags.c_contiguous:
        a = x
    else:
        src = np.asarray(x)
        if src.dtype.kind not in "biuf":
            raise ValueError("%s: expected real numbers (float64), got an array of dtype %s"
                             % (what, src.dtype))
        a = np.ascontiguousarray(src, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError("%s: expected a 2-D array (rows, %s), got shape %s"
                         % (what, "D" if D is None else D, a.shape))
    if D is not None and a.shape[1] != D:
        raise ValueError("%s: expected %d column%s (the model's dimension), got shape %s"
                         % (what, D, "" if D == 1 else "s", a.shape))
    if a.shape[0] == 0:
        raise ValueError("%s: no rows (shape %s)" % (what, a.shape))
    return a


def ptr(a):
    """A double* into the array a (which it keeps alive)."""
    return ffi.from_buffer("double[]", a, require_writable=False)


def wrap(p, shape, writable):
    """A numpy view of the C array p of prod(shape) doubles (no copy)."""
    n = 1
    for s in shape:
        n *= s
    a = np.frombuffer(ffi.buffer(p, 8 * n), dtype=np.float64).reshape(shape)
    if not writable:
        a.flags.writeable = False
    return a


def _parse(fn, value, what, choices):
    out = ffi.new("int *")
    if not isinstance(value, str) or fn(value.encode(), out) != 0:
        raise ValueError("%s: expected one of %s, got %r" % (what, choices, value))
    return out[0]


def trace_code(name):
    return _parse(lib.cnf_trace_parse, name, "trace", "'exact', 'gauss', 'rademacher'")


# Solver keywords (the CLI's solver options, '-' written '_') and their
# cnf_options fields.
SOLVER_KEYS = ("rtol", "atol", "atol_logp", "max_steps", "method", "trace", "probes", "batch",
               "max_order", "h_init", "max_nonlin_iters")


def options(kw, opt=None, allowed=SOLVER_KEYS):
    """cnf_options from the library's defaults and the keywords in kw
    (consumed); TypeError for an unknown keyword."""
    if opt is None:
        opt = ffi.new("cnf_options *")
        lib.cnf_options_default(opt)
    for key in list(kw):
        if key not in allowed:
            raise TypeError("unexpected keyword argument %r (solver options: %s)"
                            % (key, ", ".join(allowed)))
        v = kw.pop(key)
        if v is None:
            continue
        if key == "method":
            opt.method = _parse(lib.cnf_method_parse, v, "method", "'adams', 'bdf'")
        elif key == "trace":
            opt.trace = trace_code(v)
        elif key == "adjoint":
            opt.adjoint = _parse(lib.cnf_adjoint_parse, v, "adjoint", "'backsolve', 'checkpoint'")
        elif key in ("probes", "batch", "max_steps", "max_order", "max_nonlin_iters",
                     "checkpoint_steps"):
            if int(v) != v or v < 0 or (key != "batch" and key != "max_order" and v < 1):
                raise ValueError("%s: expected a positive integer, got %r" % (key, v))
            setattr(opt, key, int(v))
        else:
            v = float(v)
            if not (v >= 0):
                raise ValueError("%s: expected a non-negative number, got %r" % (key, v))
            setattr(opt, key, v)
    return opt


def stats_dict(st):
    return {k: getattr(st, k) for k in ("solves", "nfe", "nsteps", "netf", "nni", "nncf",
                                        "njtv", "nli", "nquad")}
