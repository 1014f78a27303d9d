"""Models (cnf_model.h): continuous flows of MLP blocks, discrete stacks
(RealNVP, NICE, MAF, ...), their densities, samples and files, and the
training loop cnf_fit.

One sign convention for every kind (docs/design.md, "Conventions"):
logdet = log|det dz/dx| and log p(x) = log N(z; 0, I) + logdet."""

import dataclasses
import signal
import threading

import numpy as np

from ._core import as_rows, blas_one_thread, new_ctx, options, ptr, raise_for, stats_dict
from ._lib import ffi, lib


def default_threads():
    """The threads a model splits its batch over unless told otherwise:
    the library's cnf_threads_default (the machine's cores, at most 64),
    as `cnf --threads` defaults to."""
    return int(lib.cnf_threads_default())


def _hidden(spec, hidden):
    """Set spec.hidden from a string or a sequence of widths; returns the
    C string it points to (to be kept alive), or None."""
    if hidden is None:
        return None
    if isinstance(hidden, str):
        widths = [] if hidden in ("", "0") else hidden.split("-")
    elif isinstance(hidden, int):
        widths = [hidden]
    else:
        widths = list(hidden)
    try:
        widths = [int(w) for w in widths]
    except (TypeError, ValueError):
        raise ValueError("hidden: expected widths such as '64-64-64' or (64, 64, 64), got %r"
                         % (hidden,)) from None
    if len(widths) > 16 or any(w < 1 for w in widths):
        raise ValueError("hidden: expected up to 16 positive widths, got %r" % (hidden,))
    text = ffi.new("char[]", ("-".join(str(w) for w in widths) or "0").encode())
    spec.hidden = text
    return text


class _ParamView:
    """Exposes a model's parameter array to numpy and keeps the model alive
    as long as the array."""

    def __init__(self, model, p, n):
        self._model = model
        self.__array_interface__ = {"shape": (n,), "typestr": "<f8", "version": 3,
                                    "data": (int(ffi.cast("uintptr_t", p)), False)}


class Model:
    """A density model x -> z with a standard normal base (cnf_model).

    Make one with Model.load, Model.cnf, Model.stack or Model.create.
    Solver keywords accepted by the evaluating methods, with the CLI's
    names and defaults: rtol (1e-5), atol (1e-5), atol_logp (= atol),
    max_steps (20000), method ('adams' | 'bdf'), trace ('exact' | 'gauss'
    | 'rademacher'; exact), probes (1), batch (rows integrated as one ODE
    system; all), max_order, h_init, max_nonlin_iters."""

    def __init__(self, _handle, _ctx):
        self._ctx = _ctx
        self._m = _handle

    # ---- making ---------------------------------------------------------

    @classmethod
    def _wrap(cls, out, ctx):
        # the destructor holds the context: it must outlive the model
        m = cls(ffi.gc(out[0], lambda p, ctx=ctx: lib.cnf_model_free(p)), ctx)
        m.set_threads(default_threads())
        return m

    @classmethod
    def load(cls, path):
        """The model saved at path (a flow, a field flow or a stack)."""
        ctx = new_ctx()
        out = ffi.new("cnf_model **")
        raise_for(lib.cnf_model_load(out, ctx, str(path).encode()), ctx)
        return cls._wrap(out, ctx)

    @classmethod
    def create(cls, flow="cnf", dim=2, hidden=None, blocks=None, layer="concatsquash",
               act="tanh", T=0.5, config="", seed=0):
        """A new model by name, as `cnf init` / `cnf train --flow NAME` make
        it: "cnf" (MLP blocks), a stack preset ("realnvp", "nice", "maf",
        ...), or "field:CLASS".  hidden: widths ("64-64-64" or a
        sequence); None is the kind's default; blocks None likewise."""
        if int(dim) != dim or dim < 1:
            raise ValueError("dim: expected a positive integer, got %r" % (dim,))
        ctx = new_ctx()
        spec = ffi.new("cnf_model_spec *")
        flow_b = ffi.new("char[]", str(flow).encode())  # spec points into it
        lib.cnf_model_spec_default(spec, flow_b, int(dim))
        hidden_b = _hidden(spec, hidden)  # spec points into it  # noqa: F841
        if blocks is not None:
            if int(blocks) != blocks or blocks < 1:
                raise ValueError("blocks: expected a positive integer, got %r" % (blocks,))
            spec.blocks = int(blocks)
        code = ffi.new("int *")
        if lib.cnf_layer_parse(str(layer).encode(), code) != 0:
            raise ValueError("layer: expected 'concatsquash', 'concat' or 'ignore', got %r"
                             % (layer,))
        spec.layer = code[0]
        if lib.cnf_act_parse(str(act).encode(), code) != 0:
            raise ValueError("act: expected 'tanh' or 'softplus', got %r" % (act,))
        spec.act = code[0]
        if not (T > 0):
            raise ValueError("T: expected a positive end time, got %r" % (T,))
        spec.T = float(T)
        config_b = ffi.new("char[]", str(config).encode())
        spec.config = config_b
        out = ffi.new("cnf_model **")
        raise_for(lib.cnf_model_create(out, ctx, spec, int(seed)), ctx)
        return cls._wrap(out, ctx)

    @classmethod
    def cnf(cls, dim, hidden="64-64-64", blocks=1, layer="concatsquash", act="tanh", T=0.5,
            seed=0):
        """A continuous flow of MLP blocks (FFJORD's toy defaults)."""
        return cls.create("cnf", dim, hidden=hidden, blocks=blocks, layer=layer, act=act, T=T,
                          seed=seed)

    @classmethod
    def stack(cls, flow, dim, hidden=None, blocks=None, seed=0):
        """A discrete stack preset ("realnvp", "nice", "maf", ...)."""
        return cls.create(flow, dim, hidden=hidden, blocks=blocks, seed=seed)

    def save(self, path):
        """Save to a model file (docs/model-format.md), atomically."""
        raise_for(lib.cnf_model_save(self._m, str(path).encode()), self._ctx)

    # ---- what it is ----------------------------------------------------------

    @property
    def dim(self):
        return lib.cnf_model_dim(self._m)

    @property
    def name(self):
        """"cnf", a stack preset's name, or "field:NAME"."""
        return ffi.string(lib.cnf_model_name(self._m)).decode()

    @property
    def kind(self):
        """"flow" (continuous blocks) or "stack" (discrete or mixed layers)."""
        return "flow" if lib.cnf_model_kind_of(self._m) == 0 else "stack"

    @property
    def params(self):
        """The flat parameter vector theta (P), a numpy view of the model's
        own array: writes change the model."""
        n = lib.cnf_model_param_count(self._m)
        return np.asarray(_ParamView(self, lib.cnf_model_params(self._m), n))

    @property
    def T(self):
        """A flow's end times, one per block (an empty tuple for stacks)."""
        f = lib.cnf_model_flow(self._m)
        if f == ffi.NULL:
            return ()
        return tuple(lib.cnf_flow_end_time(f, k) for k in range(lib.cnf_flow_blocks(f)))

    @property
    def iteration(self):
        """Training steps taken so far (0 for a fresh model)."""
        return lib.cnf_model_iteration(self._m)

    def set_threads(self, n):
        """Split network evaluations over n threads (flows of MLP blocks;
        default: the machine's cores, default_threads()).  Results are
        reproducible for a given n and precision.  OpenBLAS runs on one
        thread while the library works (blas_one_thread)."""
        raise_for(lib.cnf_model_set_threads(self._m, int(n)), self._ctx)

    def set_standardization(self, shift, scale):
        """Model (x - shift) / scale, densities in x's units; None, None
        removes it."""
        if shift is None and scale is None:
            rc = lib.cnf_model_set_standardization(self._m, ffi.NULL, ffi.NULL)
        else:
            sh = as_rows(np.reshape(np.asarray(shift, dtype=np.float64), (1, -1)), self.dim,
                         "shift")
            sc = as_rows(np.reshape(np.asarray(scale, dtype=np.float64), (1, -1)), self.dim,
                         "scale")
            rc = lib.cnf_model_set_standardization(self._m, ptr(sh), ptr(sc))
        raise_for(rc, self._ctx)

    def __repr__(self):
        return "<cnf.Model %s dim=%d params=%d>" % (self.name, self.dim,
                                                    lib.cnf_model_param_count(self._m))

    # ---- densities and samples ----------------------------------------------

    def _call(self, fn, x, outs, seed, kw):
        opt = options(kw)
        x = as_rows(x, self.dim)
        B = x.shape[0]
        arrays = [np.empty((B, self.dim) if o == "BD" else (B,)) for o in outs]
        st = ffi.new("cnf_stats *")
        lib.cnf_model_seed(self._m, int(seed))
        with blas_one_thread():
            rc = fn(self._m, opt, B, ptr(x), *[ptr(a) for a in arrays], st)
        raise_for(rc, self._ctx)
        self.last_stats = stats_dict(st)
        return arrays

    def log_prob(self, x, seed=0, **solver):
        """log p(x) (B) of the rows of x (B, D).  seed: the Hutchinson
        probes' (as `cnf logp --seed`)."""
        return self._call(lib.cnf_model_logp, x, ["B"], seed, solver)[0]

    def encode(self, x, seed=0, **solver):
        """x (B, D) -> (z (B, D), logdet (B)), logdet = log|det dz/dx|."""
        z, ld = self._call(lib.cnf_model_encode, x, ["BD", "B"], seed, solver)
        return z, ld

    def decode(self, z, seed=0, **solver):
        """z (B, D) -> (x (B, D), logdet (B)), logdet = log|det dz/dx| at
        the x found, so log p(x) = log N(z) + logdet."""
        x, ld = self._call(lib.cnf_model_decode, z, ["BD", "B"], seed, solver)
        return x, ld

    def sample(self, n, seed=0, **solver):
        """n samples: (x (n, D), log p(x) (n)), as `cnf sample -n N --seed S`."""
        if int(n) != n or n < 1:
            raise ValueError("n: expected a positive number of samples, got %r" % (n,))
        opt = options(solver)
        x = np.empty((int(n), self.dim))
        lp = np.empty(int(n))
        st = ffi.new("cnf_stats *")
        lib.cnf_model_seed(self._m, int(seed))
        with blas_one_thread():
            rc = lib.cnf_model_sample(self._m, opt, int(n), ptr(x), ptr(lp), st)
        raise_for(rc, self._ctx)
        self.last_stats = stats_dict(st)
        return x, lp

    # ---- the flow in time (continuous models; include/cnf_model.h) ---------

    @property
    def total_time(self):
        """The flow's total time S = T_1 + ... + T_K (Error for a stack)."""
        out = ffi.new("double *")
        raise_for(lib.cnf_model_total_time(self._m, out), self._ctx)
        return out[0]

    def trajectories(self, x, n=41, direction=1, seed=0, **solver):
        """The states of the rows of x (B, D) at n equally spaced times over
        the whole flow: an (n, B, D) array in the units of x.  direction 1:
        x are data rows at t = 0, the last state their latent point;
        direction -1: x are latent points carried back to the data (the
        same paths read backwards)."""
        opt = options(solver)
        x = as_rows(x, self.dim)
        if int(n) != n or n < 2:
            raise ValueError("n: expected 2 or more times, got %r" % (n,))
        B = x.shape[0]
        out = np.empty((int(n), B, self.dim))
        st = ffi.new("cnf_stats *")
        lib.cnf_model_seed(self._m, int(seed))
        with blas_one_thread():
            rc = lib.cnf_model_trajectories(self._m, opt, 1 if direction > 0 else -1, B, ptr(x),
                                            int(n), ptr(out), st)
        raise_for(rc, self._ctx)
        self.last_stats = stats_dict(st)
        return out

    def log_prob_at(self, y, t, seed=0, **solver):
        """log p_t(y) (B) of the flow's marginal at time t in [0, S]: the
        model's density at t = 0, the base N(0, I) at t = S."""
        opt = options(solver)
        y = as_rows(y, self.dim)
        lp = np.empty(y.shape[0])
        st = ffi.new("cnf_stats *")
        lib.cnf_model_seed(self._m, int(seed))
        with blas_one_thread():
            rc = lib.cnf_model_logp_at(self._m, opt, float(t), y.shape[0], ptr(y), ptr(lp), st)
        raise_for(rc, self._ctx)
        self.last_stats = stats_dict(st)
        return lp

    def nll(self, x, seed=0, **solver):
        """The mean negative log-likelihood of the rows of x."""
        opt = options(solver)
        x = as_rows(x, self.dim)
        out = ffi.new("double *")
        lib.cnf_model_seed(self._m, int(seed))
        with blas_one_thread():
            rc = lib.cnf_model_nll(self._m, opt, x.shape[0], ptr(x), out, ffi.NULL)
        raise_for(rc, self._ctx)
        return out[0]


# ---- training -------------------------------------------------------------------


@dataclasses.dataclass
class Report:
    """One training step, as cnf_fit_report: the minibatch loss before the
    update and its parts, the gradient norm, the first block's end time
    (flows; NaN otherwise), the step's solver work, and the validation
    NLL when it was computed after this step."""
    step: int
    total: int
    status: int
    loss: float
    loss_avg: float
    nll: float
    kinetic: float
    jacobian: float
    grad_norm: float
    T: float
    nfe_fwd: int
    nfe_bwd: int
    validated: bool
    val_nll: float
    best: bool


@dataclasses.dataclass
class FitResult:
    """What a run did (cnf_fit_result); interrupted: Ctrl-C stopped it."""
    steps: int
    failed: int
    iteration: int
    loss_avg: float
    best_val: float
    stopped: bool
    interrupted: bool
    nfe_fwd_mean: float
    nfe_bwd_mean: float
    last: Report = None


def _report(r):
    return Report(step=r.step, total=r.total, status=r.status, loss=r.loss,
                  loss_avg=r.loss_avg, nll=r.nll,
                  kinetic=r.kinetic, jacobian=r.jacobian, grad_norm=r.grad_norm, T=r.T,
                  nfe_fwd=r.fwd.nfe, nfe_bwd=r.bwd.nfe, validated=bool(r.validated),
                  val_nll=r.val_nll, best=bool(r.best))


def fit(model, data, iters=1000, batch=None, lr=1e-3, weight_decay=1e-5, seed=0, val=None,
        val_every=100, callback=None, best_path=None, state_path=None, save_every=100,
        adjoint="checkpoint", rtol_adj=None, atol_adj=None, no_seminorm=False,
        checkpoint_steps=100, reg_kinetic=0.0, reg_jacobian=0.0, fixed_time=False,
        standardize=False, trace=None, rtol=1e-5, atol=1e-5, atol_logp=None, max_steps=20000,
        probes=1, method="adams", threads=None, max_failed=10, objective="mle",
        fm_sigma=0.0):
    """Train model with Adam by maximum likelihood, or by flow matching
    (objective "fm" or "ot-fm", docs/objectives.md): the library's loop
    (cnf_fit), with the keyword names and defaults of `cnf train` (batch
    None: 100 for a continuous flow, 256 for a discrete one).

    data: rows (N, D) drawn without replacement for each step, or a toy
    set's name ("8gaussians", ...: fresh samples every step).  val: rows
    for validation every val_every steps (exact trace), the best model to
    best_path if given.  trace None: exact for D <= 2, Gaussian Hutchinson
    above.  callback(report) is called after every step with a Report;
    a true return value stops the run.  Ctrl-C stops the run after the
    current step (the model keeps its last state, checkpoints are written)
    and fit returns with interrupted True.  An exception raised by the
    callback stops the run and is raised again here.  Returns a
    FitResult; a library failure raises Error."""
    D = model.dim
    auto_batch = batch is None
    if auto_batch:
        batch = 100 if lib.cnf_model_kind_of(model._m) == 0 else 256
    fd = ffi.new("cnf_fit_data *")
    keep = []  # objects the C side points into, alive until the run ends
    if isinstance(data, str):
        names = []
        p = lib.cnf_toy_names()
        i = 0
        while p[i] != ffi.NULL:
            names.append(ffi.string(p[i]).decode())
            i += 1
        if data not in names:
            raise ValueError("data: unknown toy set %r (expected an array or one of %s)"
                             % (data, ", ".join(names)))
        if D != 2:
            raise ValueError("data: the toy sets are 2-D, the model has dimension %d" % D)
        if standardize:
            raise ValueError("standardize: needs data rows, not a toy set")
        name_b = ffi.new("char[]", data.encode())

        @ffi.callback("int(void *, uint64_t, size_t, size_t, double *)")
        def draw(user, s, B, Dd, x):
            return lib.cnf_toy_sample(name_b, B, s, x)

        keep += [name_b, draw]
        fd.rows = ffi.NULL
        fd.N, fd.D, fd.draw = 0, 2, draw
    else:
        rows = as_rows(data, D, "data")
        keep.append(rows)
        fd.rows = ptr(rows)
        keep.append(fd.rows)
        fd.N, fd.D = rows.shape
        if auto_batch:
            batch = min(batch, rows.shape[0])
        if batch > rows.shape[0]:
            raise ValueError("batch: %d rows per step but the data has only %d"
                             % (batch, rows.shape[0]))
        if standardize:
            mean, sd = np.empty(D), np.empty(D)
            lib.cnf_moments(rows.shape[0], D, ptr(rows), ptr(mean), ptr(sd))
            model.set_standardization(mean, sd)

    fo = ffi.new("cnf_fit_options *")
    lib.cnf_fit_options_default(fo)
    for key, v in (("iters", iters), ("batch", batch), ("val_every", val_every),
                   ("save_every", save_every), ("max_failed", max_failed)):
        if int(v) != v or v < 1:
            raise ValueError("%s: expected a positive integer, got %r" % (key, v))
        setattr(fo, key, int(v))
    if int(seed) != seed or seed < 0:
        raise ValueError("seed: expected a non-negative integer, got %r" % (seed,))
    fo.seed = int(seed)
    if not (lr > 0):
        raise ValueError("lr: expected a positive step size, got %r" % (lr,))
    if not (weight_decay >= 0):
        raise ValueError("weight_decay: expected a non-negative number, got %r" % (weight_decay,))
    fo.train.lr = float(lr)
    fo.train.weight_decay = float(weight_decay)
    fo.train.learn_T = 0 if fixed_time else 1
    code = ffi.new("int *")
    if lib.cnf_objective_parse(str(objective).encode(), code) != 0:
        raise ValueError("objective: expected 'mle', 'fm' or 'ot-fm', got %r" % (objective,))
    fo.objective = code[0]
    if not (fm_sigma >= 0):
        raise ValueError("fm_sigma: expected a non-negative width, got %r" % (fm_sigma,))
    fo.fm_sigma = float(fm_sigma)
    if trace is None:
        fo.opt.trace = lib.cnf_trace_for_dim(D)
    options({"trace": trace, "rtol": rtol, "atol": atol, "atol_logp": atol_logp,
             "max_steps": max_steps, "probes": probes, "method": method, "adjoint": adjoint,
             "rtol_adj": rtol_adj, "atol_adj": atol_adj, "checkpoint_steps": checkpoint_steps,
             "reg_kinetic": reg_kinetic, "reg_jacobian": reg_jacobian},
            fo.opt, allowed=("trace", "rtol", "atol", "atol_logp", "max_steps", "probes",
                             "method", "adjoint", "rtol_adj", "atol_adj", "checkpoint_steps",
                             "reg_kinetic", "reg_jacobian"))
    fo.opt.seminorm = 0 if no_seminorm else 1
    fo.opt.batch = 0
    if val is not None:
        v = as_rows(val, D, "val")
        keep.append(v)
        fo.val = ptr(v)
        keep.append(fo.val)
        fo.n_val = v.shape[0]
    for key, path in (("best_path", best_path), ("state_path", state_path)):
        if path is not None:
            b = ffi.new("char[]", str(path).encode())
            keep.append(b)
            setattr(fo, key, b)
    if threads is not None:
        model.set_threads(threads)

    stop = ffi.new("int *")
    fo.stop = stop
    state = {"exc": None, "interrupted": False, "last": None}

    @ffi.callback("int(void *, const cnf_fit_report *)")
    def on_step(user, rep):
        try:
            r = _report(rep)
            state["last"] = r
            if callback is not None and callback(r):
                return 1
            return 0
        except KeyboardInterrupt:
            state["interrupted"] = True
            return 1
        except BaseException as e:  # raised again once the loop has stopped
            state["exc"] = e
            return 1

    fo.callback = on_step

    def on_sigint(signum, frame):
        state["interrupted"] = True
        stop[0] = 1

    ours = threading.current_thread() is threading.main_thread()
    if ours:
        old = signal.signal(signal.SIGINT, on_sigint)
    res = ffi.new("cnf_fit_result *")
    try:
        with blas_one_thread():
            rc = lib.cnf_fit(model._m, fd, fo, res)
    finally:
        if ours:
            # a handler installed from C reads as None: give back the default
            signal.signal(signal.SIGINT, old if old is not None else signal.SIG_DFL)
    if state["exc"] is not None:
        raise state["exc"]
    raise_for(rc, model._ctx)
    return FitResult(steps=res.steps, failed=res.failed, iteration=res.iteration,
                     loss_avg=res.loss_avg, best_val=res.best_val, stopped=bool(res.stopped),
                     interrupted=state["interrupted"], nfe_fwd_mean=res.nfe_fwd_mean,
                     nfe_bwd_mean=res.nfe_bwd_mean, last=state["last"])


def toy(name, n, seed=0):
    """n samples (n, 2) of one of FFJORD's toy sets, as `cnf toy`."""
    x = np.empty((int(n), 2))
    rc = lib.cnf_toy_sample(str(name).encode(), int(n), int(seed), ptr(x))
    if rc != 0:
        raise ValueError("toy: unknown set %r" % (name,))
    return x

