"""Figures drawn by the library (cairo; PNG, SVG or PDF by the path's
extension, written atomically): the same pictures as `cnf plot`, from numpy
arrays (docs/figures.md)."""

import numpy as np

from ._core import new_ctx, raise_for
from ._lib import ffi, lib


def _options(keep, title=None, names=None, xlabel=None, ylabel=None, data_name=None,
             sample_name=None, size=400, log_density=False):
    """A cnf_plot_options; every string it points to is kept alive in keep."""
    po = ffi.new("cnf_plot_options *")
    lib.cnf_plot_options_default(po)

    def s(v):
        if v is None:
            return ffi.NULL
        c = ffi.new("char[]", str(v).encode())
        keep.append(c)
        return c

    po.title, po.xlabel, po.ylabel = s(title), s(xlabel), s(ylabel)
    po.data_name, po.sample_name = s(data_name), s(sample_name)
    if names is not None:
        arr = ffi.new("char *[]", [s(n) for n in names])
        keep.append(arr)
        po.names = arr
    po.size = int(size)
    po.log_density = 1 if log_density else 0
    return po


def grid(L, G):
    """The G x G grid over [-L, L]^2 of the heat maps: (G * G, 2), row-major
    from the top left (x2 = L) to the bottom right."""
    x = np.empty((int(G) * int(G), 2))
    lib.cnf_plot_grid(float(L), int(G), ffi.cast("double *", x.ctypes.data))
    return x


def grid_points(L, G):
    """The G x G grid of `cnf grid` over [-L, L]^2, ends included: (G * G, 2),
    x1 fastest, row j * G + i at (-L + 2L i/(G-1), -L + 2L j/(G-1))."""
    if int(G) < 2:
        raise ValueError("G: expected at least 2 points a side, got %r" % (G,))
    x = np.empty((int(G) * int(G), 2))
    lib.cnf_grid_points(float(L), int(G), ffi.cast("double *", x.ctypes.data))
    return x


def heatmaps(path, logp, L, names=None, data=None, **labels):
    """Heat maps side by side on one colour scale: logp (n, G * G) on the
    points of grid(L, G), panel k titled names[k], data (nd, 2) overlaid in
    white.  labels: title, xlabel, ylabel, data_name, size, log_density."""
    lp = np.ascontiguousarray(logp, dtype=np.float64)
    if lp.ndim == 1:
        lp = lp[None, :]
    n, GG = lp.shape
    G = int(round(np.sqrt(GG)))
    if G * G != GG:
        raise ValueError("logp: expected (n, G * G) values, got shape %s" % (lp.shape,))
    if names is not None and len(names) != n:
        raise ValueError("names: expected %d panel titles, got %d" % (n, len(names)))
    d = None if data is None else np.ascontiguousarray(data, dtype=np.float64)
    keep = []
    po = _options(keep, names=names, **labels)
    ctx = new_ctx()
    rc = lib.cnf_plot_heatmaps_with(ctx, po, n, G, ffi.cast("double *", lp.ctypes.data), float(L),
                                    ffi.NULL if d is None else ffi.cast("double *", d.ctypes.data),
                                    0 if d is None else d.shape[0], str(path).encode())
    raise_for(rc, ctx)


def paths(path, states, names=None, **labels):
    """Trajectories: states (n, B, D) of one panel (e.g. Model.trajectories)
    or (panels, n, B, D) side by side, titled names; coordinates 1 and 2
    are drawn, from the start (blue dots) to the end (orange dots).
    labels: title, xlabel, ylabel, data_name, sample_name, size."""
    p = np.ascontiguousarray(states, dtype=np.float64)
    if p.ndim == 3:
        p = p[None]
    if p.ndim != 4:
        raise ValueError("states: expected (n, B, D) or (panels, n, B, D), got shape %s"
                         % (p.shape,))
    panels, n, B, D = p.shape
    if names is not None and len(names) != panels:
        raise ValueError("names: expected %d panel titles, got %d" % (panels, len(names)))
    keep = []
    po = _options(keep, names=names, **labels)
    ctx = new_ctx()
    rc = lib.cnf_plot_paths_with(ctx, po, panels, n, B, D, ffi.cast("double *", p.ctypes.data),
                                 str(path).encode())
    raise_for(rc, ctx)
