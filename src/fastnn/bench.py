"""Benchmark cases and timing harness shared by ``fastnn bench`` and ``benchmarks/``.

The case table
    ``build_cases(sizes)`` returns one ``Case`` per (op, size): the element-wise
    activations and their backward at each size in ``sizes`` (default 1M and 16M
    float32 elements), softmax / log_softmax / softmax_backward and cross_entropy
    on (4096, 1000), and mse_loss / binary_cross_entropy_with_logits on 1M.
    A case knows how to make its inputs (seeded from the case id, so every
    process builds identical arrays) and has one builder per library:

    fastnn  fastnn.ops with out=None (a new array every call);
    numpy   the fastest plain-NumPy formulation that also returns a new array
            (in-place ufuncs on one fresh buffer where possible). When two
            formulations compete (e.g. ``g * (x > 0)`` vs ``np.where``) both are
            listed and the faster one on this machine is chosen at run time;
    torch   torch.nn.functional / torch.ops.aten on ``torch.from_numpy`` views
            made once, outside the timed call, run under torch.no_grad().
            Backward cases call the aten ``*_backward`` kernels autograd uses.

    Losses return (loss, grad) in fastnn, so the numpy and torch versions
    compute both as well.

Checking
    Before anything is timed, each implementation's result is compared with
    fastnn's (``np.allclose`` with per-case tolerances); a mismatch raises
    ``CheckError``.

Timing
    ``time_call`` warms up, then calls the function repeatedly for a time
    budget and returns the median seconds per call. Throughput is reported as
    GB/s of compulsory memory traffic (every input read once plus the result
    written once) and as elements per second.

Workers
    Thread pools of different libraries interfere when they share a process,
    so the CLI runs each library in its own long-lived worker,
    ``python -m fastnn.bench --worker LIB --threads N --sizes ...``, which reads
    one JSON request per line on stdin and answers one JSON line on stdout.
    ``WorkerPool`` is the parent side of that protocol. The pytest-benchmark
    suite instead runs everything in one process (pytest-benchmark requires it).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import zlib
from typing import Callable, Dict, Optional

import numpy as np

LIBS = ("fastnn", "numpy", "torch")
DEFAULT_THREADS = 2
DEFAULT_SIZES = (1 << 20, 1 << 24)
ROWS, CLASSES = 4096, 1000  # softmax and cross-entropy shape
LOSS_SIZE = 1 << 20         # mse_loss and BCE-with-logits size

# Timing settings: (rounds, seconds timed per worker request, warm-up seconds)
FULL = dict(rounds=5, budget=0.25, warmup=0.05)
QUICK = dict(rounds=2, budget=0.06, warmup=0.02)


class CheckError(AssertionError):
    """An implementation's result differs from fastnn's."""


# --------------------------------------------------------------------------- #
# Sizes
# --------------------------------------------------------------------------- #

def format_size(n: int) -> str:
    """1048576 -> '1M', 262144 -> '256K', anything else as digits."""
    for suffix, unit in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def parse_size(text: str) -> int:
    """'1M' -> 1 << 20, '256K' -> 1 << 18, '5000' -> 5000 (binary units)."""
    t = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    digits = t[:-1] if scale != 1 else t
    try:
        n = int(digits) * scale
    except ValueError:
        raise ValueError(f"bad size {text!r}: use e.g. 1M, 16M, 256K or a plain count") from None
    if n < 1:
        raise ValueError(f"size must be positive, got {text!r}")
    return n


# --------------------------------------------------------------------------- #
# Inputs
# --------------------------------------------------------------------------- #

def _normal(rng, shape, scale=1.0):
    x = rng.standard_normal(shape, dtype=np.float32)
    if scale != 1.0:
        x *= np.float32(scale)
    return x


def _inputs_x(rng, n):
    # scale 3 reaches the saturated tails of sigmoid / tanh / gelu
    return {"x": _normal(rng, n, 3.0)}


def _inputs_gx(rng, n):
    return {"g": _normal(rng, n), "x": _normal(rng, n, 3.0)}


def _inputs_g_sigmoid(rng, n):
    x = _normal(rng, n, 3.0).astype(np.float64)
    return {"g": _normal(rng, n), "y": (1.0 / (1.0 + np.exp(-x))).astype(np.float32)}


def _inputs_g_tanh(rng, n):
    x = _normal(rng, n, 3.0)
    return {"g": _normal(rng, n), "y": np.tanh(x.astype(np.float64)).astype(np.float32)}


def _inputs_logits(rng, shape):
    return {"x": _normal(rng, shape, 2.0)}


def _inputs_softmax_grad(rng, shape):
    x = _normal(rng, shape, 2.0).astype(np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return {"g": _normal(rng, shape), "y": (e / e.sum(-1, keepdims=True)).astype(np.float32)}


def _inputs_ce(rng, shape):
    return {"x": _normal(rng, shape, 2.0),
            "labels": rng.integers(0, shape[1], size=shape[0], dtype=np.int64)}


def _inputs_mse(rng, n):
    return {"pred": _normal(rng, n), "target": _normal(rng, n)}


def _inputs_bce(rng, n):
    return {"x": _normal(rng, n, 3.0), "target": rng.random(n, dtype=np.float32)}


# --------------------------------------------------------------------------- #
# fastnn implementations
# --------------------------------------------------------------------------- #

def _fastnn():
    import fastnn.ops
    return fastnn.ops


def _fn_unary(name, **kw):
    def build(a):
        f = getattr(_fastnn(), name)
        x = a["x"]
        return lambda: f(x, **kw)
    return build


def _fn_backward(name, saved, **kw):
    def build(a):
        f = getattr(_fastnn(), name)
        g, s = a["g"], a[saved]
        return lambda: f(g, s, **kw)
    return build


def _fn_ce(a):
    f, x, y = _fastnn().cross_entropy, a["x"], a["labels"]
    return lambda: f(x, y)


def _fn_mse(a):
    f, p, t = _fastnn().mse_loss, a["pred"], a["target"]
    return lambda: f(p, t)


def _fn_bce(a):
    f, x, t = _fastnn().binary_cross_entropy_with_logits, a["x"], a["target"]
    return lambda: f(x, t)


# --------------------------------------------------------------------------- #
# NumPy implementations. Python float constants stay float32 in these
# expressions (NumPy treats Python scalars as "weak"), so no float64 pass.
# --------------------------------------------------------------------------- #

SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
GELU_C = math.sqrt(2.0 / math.pi)
GELU_K = 0.044715

# Abramowitz & Stegun 7.1.26: for z >= 0,
#   erfc(z) ~= t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-z^2),  t = 1 / (1 + p z)
# with |error| < 1.5e-7. NumPy has no erf ufunc; this is the fastest accurate
# pure-NumPy substitute (np.vectorize(math.erf) is ~100x slower).
AS_P = 0.3275911
AS_A = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


def _np_phi_into(x, t):
    """Standard normal CDF Phi(x) of x (float32): returns a new array q and
    leaves exp(-x**2 / 2) in the scratch array t (same shape as x)."""
    np.abs(x, out=t)
    t *= AS_P * SQRT_HALF                       # p z with z = |x| / sqrt(2)
    t += 1.0
    np.reciprocal(t, out=t)
    a1, a2, a3, a4, a5 = AS_A
    q = t * a5
    for a in (a4, a3, a2, a1):
        q += a
        q *= t
    np.multiply(x, x, out=t)
    t *= -0.5
    np.exp(t, out=t)                            # exp(-z^2) = exp(-x^2 / 2)
    q *= t                                      # erfc(|x| / sqrt(2))
    np.subtract(1.0, q, out=q)
    np.copysign(q, x, out=q)                    # erf(x / sqrt(2))
    q += 1.0
    q *= 0.5
    return q


def _np_relu(a):
    x = a["x"]

    def zeros_max():  # NumPy 2's maximum against a scalar takes a slow path
        o = np.zeros_like(x)
        return np.maximum(x, o, out=o)

    return {"zeros_like + np.maximum(x, o, out=o)": zeros_max,
            "np.maximum(x, 0)": lambda: np.maximum(x, 0.0)}


def _np_relu_backward(a):
    g, x = a["g"], a["x"]

    def mask_cast():
        o = (x > 0).astype(np.float32)
        o *= g
        return o

    return {"g * (x > 0)": lambda: g * (x > 0),
            "np.where(x > 0, g, 0)": lambda: np.where(x > 0, g, np.float32(0)),
            "(x > 0).astype(f32); *= g": mask_cast}


def _np_leaky_relu(a):
    x = a["x"]

    def max_scaled():  # max(x, s x) == leaky_relu for 0 <= s <= 1
        o = x * 0.01
        return np.maximum(x, o, out=o)

    return {"np.maximum(x, 0.01 * x)": max_scaled,
            "np.where(x > 0, x, 0.01 * x)": lambda: np.where(x > 0, x, x * 0.01)}


def _np_sigmoid_of(x):
    o = np.negative(x)
    np.exp(o, out=o)
    o += 1.0
    return np.reciprocal(o, out=o)


def _np_sigmoid(a):
    x = a["x"]
    return lambda: _np_sigmoid_of(x)


def _np_sigmoid_backward(a):
    g, y = a["g"], a["y"]

    def f():
        o = np.subtract(1.0, y)
        o *= y
        o *= g
        return o
    return f


def _np_tanh(a):
    x = a["x"]
    return lambda: np.tanh(x)


def _np_tanh_backward(a):
    g, y = a["g"], a["y"]

    def f():
        o = y * y
        np.subtract(1.0, o, out=o)
        o *= g
        return o
    return f


def _np_gelu(a):
    x = a["x"]

    def f():
        q = _np_phi_into(x, np.empty_like(x))
        q *= x
        return q
    return f


def _np_gelu_backward(a):
    g, x = a["g"], a["x"]

    def f():  # Phi(x) + x phi(x)
        t = np.empty_like(x)
        q = _np_phi_into(x, t)
        t *= x
        t *= INV_SQRT_2PI
        t += q
        t *= g
        return t
    return f


def _np_gelu_tanh(a):
    x = a["x"]

    def f():  # 0.5 x (1 + tanh(x (c + c k x^2)))
        u = x * x
        u *= GELU_C * GELU_K
        u += GELU_C
        u *= x
        np.tanh(u, out=u)
        u += 1.0
        u *= x
        u *= 0.5
        return u
    return f


def _np_gelu_tanh_backward(a):
    g, x = a["g"], a["x"]

    def f():
        # t = tanh(x (c + c k x^2)), w = x (c + 3 c k x^2), b = 1 - t:
        # gelu' = 0.5 (1 + t) (1 + (1 - t) w) = 0.5 (2 - b) (1 + b w)
        t = x * x
        w = t * (3.0 * GELU_C * GELU_K)
        t *= GELU_C * GELU_K
        t += GELU_C
        t *= x
        np.tanh(t, out=t)
        w += GELU_C
        w *= x
        np.subtract(1.0, t, out=t)              # b
        w *= t
        w += 1.0
        np.subtract(2.0, t, out=t)              # 1 + tanh
        w *= t
        w *= g
        w *= 0.5
        return w
    return f


def _np_silu(a):
    x = a["x"]

    def f():
        o = np.negative(x)
        np.exp(o, out=o)
        o += 1.0
        return np.divide(x, o, out=o)
    return f


def _np_silu_backward(a):
    g, x = a["g"], a["x"]

    def f():  # s (1 + x (1 - s))
        s = _np_sigmoid_of(x)
        o = np.subtract(1.0, s)
        o *= x
        o += 1.0
        o *= s
        o *= g
        return o
    return f


def _np_softmax(a):
    x = a["x"]

    def f():
        e = x - x.max(-1, keepdims=True)
        np.exp(e, out=e)
        e /= e.sum(-1, keepdims=True)
        return e
    return f


def _np_log_softmax(a):
    x = a["x"]

    def f():
        s = x - x.max(-1, keepdims=True)
        s -= np.log(np.exp(s).sum(-1, keepdims=True))
        return s
    return f


def _np_softmax_backward(a):
    g, y = a["g"], a["y"]

    def f():  # y (g - sum(g y))
        t = g * y
        s = t.sum(-1, keepdims=True)
        np.subtract(g, s, out=t)
        t *= y
        return t
    return f


def _np_cross_entropy(a):
    x, labels = a["x"], a["labels"]
    n = x.shape[0]
    rows = np.arange(n)

    def f():
        m = x.max(1, keepdims=True)
        p = x - m
        np.exp(p, out=p)
        s = p.sum(1, keepdims=True)
        lse = np.log(s[:, 0]) + m[:, 0]
        loss = float(np.mean(lse - x[rows, labels], dtype=np.float64))
        p *= 1.0 / (s * n)
        p[rows, labels] -= 1.0 / n
        return loss, p
    return f


def _np_mse(a):
    p, t = a["pred"], a["target"]
    n = p.size

    def f():
        d = p - t
        loss = float(np.dot(d, d)) / n
        d *= 2.0 / n
        return loss, d
    return f


def _np_bce(a):
    x, t = a["x"], a["target"]
    n = x.size

    def f():
        # softplus(x) - x t = log1p(exp(-|x|)) + max(x, 0) - x t,
        # sum(max(x, 0)) = (sum(x) + sum(|x|)) / 2
        e = np.abs(x)
        sum_abs = float(e.sum())
        np.negative(e, out=e)
        np.exp(e, out=e)
        r = np.log1p(e)
        loss = (float(r.sum()) + 0.5 * (float(x.sum()) + sum_abs) - float(np.dot(x, t))) / n
        np.add(e, 1.0, out=r)
        np.reciprocal(r, out=r)                 # sigmoid(|x|)
        r -= 0.5
        np.copysign(r, x, out=r)
        r += 0.5                                # sigmoid(x)
        r -= t
        r *= 1.0 / n
        return loss, r
    return f


# --------------------------------------------------------------------------- #
# PyTorch implementations (torch imported only when a builder runs)
# --------------------------------------------------------------------------- #

def _torch():
    import torch
    return torch


def _tensors(a, *names):
    torch = _torch()
    return [torch.from_numpy(a[k]) for k in names]


def _th_unary(fname, *args, **kw):
    def build(a):
        import torch.nn.functional as F
        f = getattr(F, fname)
        (x,) = _tensors(a, "x")
        return lambda: f(x, *args, **kw)
    return build


def _th_aten_backward(opname, saved, *args, **kw):
    def build(a):
        f = getattr(_torch().ops.aten, opname)
        g, s = _tensors(a, "g", saved)
        return lambda: f(g, s, *args, **kw)
    return build


def _th_softmax(log):
    def build(a):
        torch = _torch()
        f = torch.log_softmax if log else torch.softmax
        (x,) = _tensors(a, "x")
        return lambda: f(x, -1)
    return build


def _th_softmax_backward(a):
    torch = _torch()
    g, y = _tensors(a, "g", "y")
    f = torch.ops.aten._softmax_backward_data
    return lambda: f(g, y, -1, torch.float32)


def _th_cross_entropy(a):
    torch = _torch()
    import torch.nn.functional as F
    x, y = _tensors(a, "x", "labels")
    n = x.shape[0]
    col = y.unsqueeze(1)
    minus_one = torch.full((n, 1), -1.0)

    def via_log_softmax():
        lsm = torch.log_softmax(x, 1)
        loss = F.nll_loss(lsm, y).item()
        grad = lsm.exp_()
        grad.scatter_add_(1, col, minus_one)
        return loss, grad.mul_(1.0 / n)

    def via_cross_entropy():
        loss = F.cross_entropy(x, y).item()
        grad = torch.softmax(x, 1)
        grad.scatter_add_(1, col, minus_one)
        return loss, grad.mul_(1.0 / n)

    return {"log_softmax, nll_loss, exp_": via_log_softmax,
            "F.cross_entropy + softmax": via_cross_entropy}


def _th_mse(a):
    torch = _torch()
    import torch.nn.functional as F
    p, t = _tensors(a, "pred", "target")
    n = p.numel()

    def functional():
        return F.mse_loss(p, t).item(), torch.sub(p, t).mul_(2.0 / n)

    def dot():
        d = torch.sub(p, t)
        return torch.dot(d, d).item() / n, d.mul_(2.0 / n)

    return {"F.mse_loss + 2 (p - t) / n": functional, "d = p - t; dot(d, d)": dot}


def _th_bce(a):
    torch = _torch()
    import torch.nn.functional as F
    x, t = _tensors(a, "x", "target")
    n = x.numel()

    def f():
        loss = F.binary_cross_entropy_with_logits(x, t).item()
        return loss, torch.sigmoid(x).sub_(t).mul_(1.0 / n)
    return f


# --------------------------------------------------------------------------- #
# The case table
# --------------------------------------------------------------------------- #

Builder = Callable[[dict], object]  # inputs -> callable, or {name: callable}


@dataclasses.dataclass(frozen=True)
class Op:
    name: str
    make_inputs: Callable
    impls: Dict[str, Optional[Builder]]
    rtol: float
    atol: float
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Case:
    op: Op
    size: str          # "1M", "16M", "4096x1000"
    shape: tuple

    @property
    def name(self) -> str:
        return self.op.name

    @property
    def id(self) -> str:
        return f"{self.op.name}/{self.size}"

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape))

    def inputs(self) -> dict:
        """The case's input arrays; the same in every process (seeded by id)."""
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        shape = self.shape[0] if len(self.shape) == 1 else self.shape
        return self.op.make_inputs(rng, shape)

    def traffic_bytes(self, inputs: dict) -> int:
        """Compulsory memory traffic: inputs read once, one float32 result written."""
        return sum(v.nbytes for v in inputs.values()) + 4 * self.elements

    def builder(self, lib: str) -> Optional[Builder]:
        return self.op.impls.get(lib)


def _ops() -> Dict[str, Op]:
    def trio(fast, np_impl, th, rtol, atol, note=""):
        return dict(impls={"fastnn": fast, "numpy": np_impl, "torch": th}, rtol=rtol, atol=atol,
                    note=note)
    exact = dict(rtol=1e-6, atol=0.0)
    approx = dict(rtol=1e-5, atol=2e-6)
    approx_grad = dict(rtol=1e-5, atol=1e-5)  # |g| reaches ~5; float32 cancellation in 1 - t
    erf_note = ("numpy gelu (erf): NumPy has no erf; uses the Abramowitz-Stegun 7.1.26 "
                "rational approximation (|err| < 1.5e-7) in NumPy ufuncs")
    unary = _inputs_x
    ops = [
        Op("relu", unary, **trio(_fn_unary("relu"), _np_relu, _th_unary("relu"), **exact)),
        Op("relu_backward", _inputs_gx, **trio(
            _fn_backward("relu_backward", "x"), _np_relu_backward,
            _th_aten_backward("threshold_backward", "x", 0.0), **exact)),
        Op("leaky_relu", unary, **trio(_fn_unary("leaky_relu"), _np_leaky_relu,
                                       _th_unary("leaky_relu", 0.01), **exact)),
        Op("sigmoid", unary, **trio(_fn_unary("sigmoid"), _np_sigmoid, _th_unary("sigmoid"),
                                    **approx)),
        Op("sigmoid_backward", _inputs_g_sigmoid, **trio(
            _fn_backward("sigmoid_backward", "y"), _np_sigmoid_backward,
            _th_aten_backward("sigmoid_backward", "y"), **approx_grad)),
        Op("tanh", unary, **trio(_fn_unary("tanh"), _np_tanh, _th_unary("tanh"), **approx)),
        Op("tanh_backward", _inputs_g_tanh, **trio(
            _fn_backward("tanh_backward", "y"), _np_tanh_backward,
            _th_aten_backward("tanh_backward", "y"), **approx_grad)),
        Op("gelu", unary, **trio(_fn_unary("gelu"), _np_gelu, _th_unary("gelu"), **approx,
                                 note=erf_note)),
        Op("gelu_backward", _inputs_gx, **trio(
            _fn_backward("gelu_backward", "x"), _np_gelu_backward,
            _th_aten_backward("gelu_backward", "x", approximate="none"), **approx_grad)),
        Op("gelu_tanh", unary, **trio(_fn_unary("gelu", approximate="tanh"), _np_gelu_tanh,
                                      _th_unary("gelu", approximate="tanh"), **approx)),
        Op("gelu_tanh_backward", _inputs_gx, **trio(
            _fn_backward("gelu_backward", "x", approximate="tanh"), _np_gelu_tanh_backward,
            _th_aten_backward("gelu_backward", "x", approximate="tanh"), **approx_grad)),
        Op("silu", unary, **trio(_fn_unary("silu"), _np_silu, _th_unary("silu"), **approx)),
        Op("silu_backward", _inputs_gx, **trio(
            _fn_backward("silu_backward", "x"), _np_silu_backward,
            _th_aten_backward("silu_backward", "x"), **approx_grad)),
        Op("softmax", _inputs_logits, **trio(_fn_unary("softmax"), _np_softmax,
                                             _th_softmax(False), rtol=1e-5, atol=1e-8)),
        Op("log_softmax", _inputs_logits, **trio(_fn_unary("log_softmax"), _np_log_softmax,
                                                 _th_softmax(True), rtol=1e-5, atol=1e-5)),
        Op("softmax_backward", _inputs_softmax_grad, **trio(
            _fn_backward("softmax_backward", "y"), _np_softmax_backward, _th_softmax_backward,
            rtol=1e-4, atol=1e-8)),
        Op("cross_entropy", _inputs_ce, **trio(_fn_ce, _np_cross_entropy, _th_cross_entropy,
                                               rtol=1e-4, atol=1e-10)),
        Op("mse_loss", _inputs_mse, **trio(_fn_mse, _np_mse, _th_mse, rtol=1e-4, atol=1e-11)),
        Op("binary_cross_entropy_with_logits", _inputs_bce, **trio(
            _fn_bce, _np_bce, _th_bce, rtol=1e-4, atol=1e-11)),
    ]
    return {op.name: op for op in ops}


OPS = _ops()
ELEMENTWISE = ("relu", "relu_backward", "leaky_relu", "sigmoid", "sigmoid_backward", "tanh",
               "tanh_backward", "gelu", "gelu_backward", "gelu_tanh", "gelu_tanh_backward",
               "silu", "silu_backward")
OP_NAMES = tuple(OPS)


def build_cases(sizes=DEFAULT_SIZES, ops=None) -> list:
    """The case table: element-wise ops at each size in `sizes`, the row-wise
    and loss ops at their fixed shapes; `ops` (names) keeps only those ops."""
    wanted = OP_NAMES if ops is None else tuple(ops)
    unknown = [o for o in wanted if o not in OPS]
    if unknown:
        raise ValueError(f"unknown op(s) {', '.join(unknown)}; choose from {', '.join(OP_NAMES)}")
    cases = []
    for name in OP_NAMES:  # table order, whatever order `ops` came in
        if name not in wanted:
            continue
        op = OPS[name]
        if name in ELEMENTWISE:
            cases += [Case(op, format_size(n), (n,)) for n in sizes]
        elif name in ("mse_loss", "binary_cross_entropy_with_logits"):
            cases.append(Case(op, format_size(LOSS_SIZE), (LOSS_SIZE,)))
        else:
            cases.append(Case(op, f"{ROWS}x{CLASSES}", (ROWS, CLASSES)))
    return cases


# --------------------------------------------------------------------------- #
# Checking and timing
# --------------------------------------------------------------------------- #

def _as_arrays(result) -> list:
    parts = result if isinstance(result, tuple) else (result,)
    out = []
    for p in parts:
        if hasattr(p, "detach"):      # torch.Tensor
            p = p.detach().numpy()
        out.append(np.asarray(p))
    return out


def check_result(case: Case, lib: str, result, reference) -> None:
    """Raise CheckError unless `result` matches fastnn's `reference`."""
    got, want = _as_arrays(result), _as_arrays(reference)
    if len(got) != len(want):
        raise CheckError(f"{case.id} [{lib}]: {len(got)} outputs, fastnn gives {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        scalar = w.ndim == 0
        rtol = max(case.op.rtol, 1e-4) if scalar else case.op.rtol
        atol = 0.0 if scalar else case.op.atol
        if g.shape != w.shape:
            raise CheckError(f"{case.id} [{lib}]: output {i} has shape {g.shape}, "
                             f"fastnn gives {w.shape}")
        if not np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True):
            bad = ~np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
            j = np.unravel_index(np.argmax(bad), bad.shape) if g.ndim else ()
            raise CheckError(
                f"{case.id} [{lib}]: output {i} differs from fastnn's in {int(bad.sum())} "
                f"place(s) (rtol={rtol}, atol={atol}); first at {tuple(int(k) for k in j)}: "
                f"{g[j]!r} vs {w[j]!r}")


def time_call(fn, budget=FULL["budget"], warmup=FULL["warmup"], min_calls=5) -> tuple:
    """Median seconds per call of fn() and the number of timed calls.

    Warms up for `warmup` seconds (at least 2 calls), then times single calls
    until `budget` seconds have passed and at least `min_calls` were made.
    The garbage collector is off while timing.
    """
    clock = time.perf_counter
    end = clock() + warmup
    n = 0
    while n < 2 or clock() < end:
        fn()
        n += 1
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        times = []
        end = clock() + budget
        while len(times) < min_calls or clock() < end:
            t0 = clock()
            fn()
            times.append(clock() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return statistics.median(times), len(times)


def library_context(lib: str):
    """Context to run and time `lib` in: torch.no_grad() for torch."""
    if lib == "torch":
        return _torch().no_grad()
    return contextlib.nullcontext()


@dataclasses.dataclass
class Prepared:
    fn: Callable
    formulation: str


def prepare(case: Case, lib: str, inputs: dict, reference, select_budget=0.05) -> Optional[Prepared]:
    """Build lib's implementation of `case` on `inputs`, check it against
    `reference` (fastnn's result) and return it; None when lib has none.
    With several formulations, all are checked and the fastest is kept."""
    builder = case.builder(lib)
    if builder is None:
        return None
    with library_context(lib):
        built = builder(inputs)
        candidates = built if isinstance(built, dict) else {"": built}
        for name, fn in candidates.items():
            check_result(case, f"{lib} {name}".strip(), fn(), reference)
        if len(candidates) == 1:
            ((name, fn),) = candidates.items()
            return Prepared(fn, name)
        speed = {name: time_call(fn, budget=select_budget, warmup=select_budget / 4,
                                 min_calls=3)[0]
                 for name, fn in candidates.items()}
        best = min(speed, key=speed.get)
        return Prepared(candidates[best], best)


def reference_result(case: Case, inputs: dict, threads: Optional[int] = None):
    """fastnn's result for `case` (with `threads` threads if given)."""
    import fastnn
    fn = case.builder("fastnn")(inputs)
    if threads is None:
        return fn()
    with fastnn.num_threads(threads):
        return fn()


def set_threads(lib: str, n: int) -> None:
    """Pin the thread count of `lib` (fastnn is always pinned: it is imported for checks)."""
    import fastnn
    fastnn.set_num_threads(n)
    if lib == "torch":
        _torch().set_num_threads(n)


# --------------------------------------------------------------------------- #
# Machine description
# --------------------------------------------------------------------------- #

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _pressure_field(name: str) -> Optional[float]:
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    for field in line.split():
                        if field.startswith(name + "="):
                            return float(field[len(name) + 1:])
    except (OSError, ValueError):
        pass
    return None


def cpu_pressure() -> Optional[float]:
    """`some avg10` from /proc/pressure/cpu: the percentage of the last 10 s in
    which some runnable task waited for a CPU. None when unavailable."""
    return _pressure_field("avg10")


def cpu_stall_total() -> Optional[float]:
    """Cumulative CPU stall time (`some total`, microseconds), or None; the
    difference over an interval divided by its length is that interval's pressure."""
    return _pressure_field("total")


def library_versions(lib: str) -> dict:
    info = {"numpy": np.__version__}
    import fastnn
    from fastnn import _C
    info["fastnn"] = fastnn.__version__
    info["isa"] = _C.active_isa()
    info["openmp"] = _C.has_openmp()
    if lib == "torch":
        info["torch"] = _torch().__version__
    return info


# --------------------------------------------------------------------------- #
# Worker process (one library each) and the parent-side pool
# --------------------------------------------------------------------------- #

def worker_main(lib: str, threads: int, sizes) -> int:
    """Serve timing requests for `lib` on stdin/stdout, one JSON object per line.

    Requests: {"cmd": "time", "case": ID, "budget": s, "warmup": s} and
    {"cmd": "quit"}. Answers: {"ok": true, "seconds": median, "calls": n,
    "formulation": str, "bytes": int} or {"ok": false, "error": msg, "kind": k}
    with kind "check" (wrong result), "skip" (no implementation) or "error".
    """
    proto = sys.stdout
    sys.stdout = sys.stderr          # stray prints must not corrupt the protocol

    def send(msg):
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    try:
        if lib == "torch":
            _torch()
        set_threads(lib, threads)
    except ImportError as e:
        send({"ready": False, "error": f"{lib} is not importable: {e}"})
        return 0
    cases = {c.id: c for c in build_cases(sizes)}
    send({"ready": True, "info": library_versions(lib)})

    current = None   # (case id, inputs, Prepared or exception)
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        case = cases.get(req.get("case"))
        if case is None:
            send({"ok": False, "kind": "error", "error": f"unknown case {req.get('case')!r}"})
            continue
        try:
            if current is None or current[0] != case.id:
                current = None
                gc.collect()
                inputs = case.inputs()
                ref_threads = None if lib == "fastnn" else 1  # one thread pool at a time
                ref = reference_result(case, inputs, ref_threads)
                prepared = prepare(case, lib, inputs, ref)
                del ref
                current = (case.id, inputs, prepared)
            _, inputs, prepared = current
            if prepared is None:
                send({"ok": False, "kind": "skip", "error": f"no {lib} implementation"})
                continue
            with library_context(lib):
                seconds, calls = time_call(prepared.fn, budget=req.get("budget", FULL["budget"]),
                                           warmup=req.get("warmup", FULL["warmup"]))
            send({"ok": True, "seconds": seconds, "calls": calls,
                  "formulation": prepared.formulation, "bytes": case.traffic_bytes(inputs)})
        except CheckError as e:
            current = None
            send({"ok": False, "kind": "check", "error": str(e)})
        except Exception as e:  # report, keep serving
            current = None
            send({"ok": False, "kind": "error", "error": f"{type(e).__name__}: {e}"})
    return 0


class Worker:
    """Parent side of one worker process."""

    def __init__(self, lib: str, threads: int, sizes):
        self.lib = lib
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
        cmd = [sys.executable, "-m", "fastnn.bench", "--worker", lib, "--threads", str(threads),
               "--sizes", ",".join(str(n) for n in sizes)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1, env=env)

    def receive(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise RuntimeError(f"{self.lib} worker exited (code {code}) without answering")
        return json.loads(line)

    def request(self, msg: dict) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self.receive()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd": "quit"}\n')
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class WorkerPool:
    """One worker per library. `start()` returns {lib: reason} for the
    libraries whose worker could not start (e.g. torch not installed)."""

    def __init__(self, libs, threads: int, sizes):
        self.libs, self.threads, self.sizes = list(libs), threads, tuple(sizes)
        self.workers: Dict[str, Worker] = {}
        self.info: Dict[str, dict] = {}

    def start(self) -> dict:
        pending = {lib: Worker(lib, self.threads, self.sizes) for lib in self.libs}
        failed = {}
        for lib, w in pending.items():
            try:
                hello = w.receive()
            except RuntimeError as e:
                hello = {"ready": False, "error": str(e)}
            if hello.get("ready"):
                self.workers[lib] = w
                self.info[lib] = hello.get("info", {})
            else:
                failed[lib] = hello.get("error", "did not start")
                w.close()
        self.libs = [lib for lib in self.libs if lib in self.workers]
        return failed

    def time_case(self, case: Case, rounds: int, budget: float, warmup: float) -> dict:
        """Time `case` in every worker, `rounds` times, reversing the order of
        the workers every other round. Returns {lib: result}, a result being
        {"seconds": median over rounds, "rounds": [...], ...} or an error dict."""
        results = {lib: {"rounds": []} for lib in self.libs}
        failed = {}
        for r in range(rounds):
            order = self.libs if r % 2 == 0 else self.libs[::-1]
            for lib in order:
                if lib in failed:
                    continue
                ans = self.workers[lib].request(
                    {"cmd": "time", "case": case.id, "budget": budget, "warmup": warmup})
                if not ans.get("ok"):
                    failed[lib] = ans
                    continue
                res = results[lib]
                res["rounds"].append(ans["seconds"])
                res["formulation"] = ans.get("formulation", "")
                res["bytes"] = ans["bytes"]
        for lib, res in results.items():
            if lib in failed:
                results[lib] = failed[lib]
            else:
                res["ok"] = True
                res["seconds"] = statistics.median(res["rounds"])
        return results

    def close(self):
        for w in self.workers.values():
            w.close()
        self.workers.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m fastnn.bench",
                                description="Benchmark worker; without --worker, runs `fastnn bench`.")
    p.add_argument("--worker", choices=LIBS)
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    p.add_argument("--sizes", default=",".join(str(n) for n in DEFAULT_SIZES))
    args, rest = p.parse_known_args(argv)
    if args.worker is None:
        from fastnn.cli import main
        return main(["bench"] + (argv if argv is not None else sys.argv[1:]))
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    return worker_main(args.worker, args.threads, sizes)


if __name__ == "__main__":
    sys.exit(_main())
