"""Element-wise, softmax and loss cases.

``build_cases(sizes)`` returns one ``Case`` per (op, size): the element-wise
activations and their backward at each size in ``sizes`` (default 1M and 16M
float32 elements), softmax / log_softmax / softmax_backward and cross_entropy
on (4096, 1000), and mse_loss / binary_cross_entropy_with_logits on 1M.
One builder per library:

fastnn  fastnn.ops with out=None (a new array every call);
numpy   the fastest plain-NumPy formulation that also returns a new array
        (in-place ufuncs on one fresh buffer where possible). When two
        formulations compete (e.g. ``g * (x > 0)`` vs ``np.where``) both are
        listed and the faster one on this machine is chosen at run time;
torch   torch.nn.functional / torch.ops.aten on ``torch.from_numpy`` views
        made once, outside the timed call, run under torch.no_grad().
        Backward cases call the aten ``*_backward`` kernels autograd uses.

Losses return (loss, grad) in fastnn, so the numpy and torch versions
compute both as well. Throughput is reported as GB/s of compulsory memory
traffic (every input read once plus the result written once).
"""
from __future__ import annotations

import math
from typing import Dict

import numpy as np

from .core import Case, Op, format_size, wanted_ops
from .core import normal as _normal

DEFAULT_SIZES = (1 << 20, 1 << 24)
ROWS, CLASSES = 4096, 1000  # softmax and cross-entropy shape
LOSS_SIZE = 1 << 20         # mse_loss and BCE-with-logits size


# --------------------------------------------------------------------------- #
# Inputs
# --------------------------------------------------------------------------- #

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
    wanted = wanted_ops(OP_NAMES, ops)
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

