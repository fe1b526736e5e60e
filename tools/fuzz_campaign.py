#!/usr/bin/env python3
"""Fuzz campaign: every public entry point of fastnn.ops, fastnn.nn and fastnn.optim,
called with random shapes, dtypes, layouts, values and `out=` arrays, for a bounded
time, in child interpreters. docs/hardening.md has what it checks and what it found.

    python tools/fuzz_campaign.py --seconds 120 --seed 1
    python tools/fuzz_campaign.py --replay 1:3:417    # batch seed 1:3, call #417, verbosely

Batches of --calls calls run one after another, each in a new interpreter seeded
from (--seed, batch number), until --seconds are used. In a child, a call must
return a result that passes the checks, or raise TypeError, ValueError or
MemoryError; a call drawn valid (the `[valid]` entry points) must return. Checks:
- types: float32 arrays (`out` itself when given), (float, array) for losses;
- references: results that came back are compared with NumPy float64 references
  (tests/reference.py) computed from copies of the inputs taken before the call:
  activations and their backwards, softmax family, losses, matmul, linear (+
  activation), linear_backward, linear_bias_backward, sgd/adam/rmsprop steps;
- nn: module constructors with good and bad arguments; forward and backward of every
  layer, container and loss against references; state_dict round trips and
  corrupted state dicts;
- optim: constructors, several steps against the float64 update of torch.optim's
  formulas (frozen parameters, param groups), state_dict round trips that must
  continue bit for bit, corrupted state dicts (rejected, the optimizer unchanged),
  options set to bad values after construction.
A child that dies (signal), hangs (no exit within --timeout, or one call over
FASTNN_FUZZ_CALL_TIMEOUT seconds) or reports a finding fails the campaign; a
crash or a hang is rerun verbosely to name the call. Exit status 1 on any finding.
"""
import argparse
import inspect
import json
import math
import os
import re
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")
sys.path.insert(0, TESTS)

import fuzzing  # noqa: E402  (tests/fuzzing.py: the child/parent machinery)

CHILD = r'''
import fuzz_campaign
fuzz_campaign.child()
'''
FAMILIES = ("ops", "gemm", "valid", "nn", "optim")


# =============================================================================
# child side: references
# =============================================================================

F32_MAX = float(np.finfo(np.float32).max)


def _f32(a):
    """the float32 values fastnn computes on (its conversion of the input)"""
    return np.asarray(np.asarray(a, dtype=np.float32), dtype=np.float64)


def _bound(fn, args, kw):
    try:
        b = inspect.signature(fn).bind(*args, **kw)
    except TypeError:
        return None
    b.apply_defaults()
    return b.arguments


def assert_close(name, got, ref, rtol, atol, mask=None):
    """got (float32) matches ref (float64) where mask: NaN where ref is NaN, the same
    infinity where ref rounds to one in float32, else within atol + rtol |ref|."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.broadcast_to(np.asarray(ref, dtype=np.float64), got.shape)
    with np.errstate(over="ignore", invalid="ignore"):
        ref32 = ref.astype(np.float32).astype(np.float64)  # overflow to inf as float32 would
        atol = np.broadcast_to(atol, got.shape)
        rtol = np.broadcast_to(rtol, got.shape)
        ok = ((np.isnan(ref32) & np.isnan(got)) | (ref32 == got)
              | (np.abs(got - ref) <= atol + rtol * np.abs(ref)))
    if mask is not None:
        ok |= ~np.broadcast_to(mask, got.shape)
    if not ok.all():
        idx = np.argwhere(~ok)[0]
        i = tuple(int(v) for v in idx)
        raise AssertionError(
            f"{name}: {int((~ok).sum())} of {ok.size} values off the float64 reference; first "
            f"at {i}: got {got[i]!r}, expected {ref[i]!r} (tolerance {atol[i] + rtol[i] * abs(ref[i]):.3g})")


def _limits(x, fn, lo, hi):
    """fn(x) where x is finite, the limits lo / hi at -inf / +inf, NaN at NaN"""
    with np.errstate(all="ignore"):
        xf = np.where(np.isfinite(x), x, 0.0)
        y = fn(xf)
    return np.where(np.isnan(x), np.nan, np.where(x == np.inf, hi, np.where(x == -np.inf, lo, y)))


def _ref_unary(name, x, kw):
    import reference as ref

    slope = float(np.float32(kw.get("negative_slope", 0.01)))
    approx = kw.get("approximate", "none")
    inf = np.inf
    table = {
        "relu": (ref.relu, 0.0, inf),
        # at -inf the README's table (as PyTorch): -inf * slope, so NaN for slope 0; gelu
        # and silu are -inf * 0 there, NaN
        "leaky_relu": (lambda v: ref.leaky_relu(v, slope), -inf * slope if slope else np.nan, inf),
        "sigmoid": (ref.sigmoid, 0.0, 1.0),
        "tanh": (ref.tanh, -1.0, 1.0),
        "gelu": (lambda v: ref.gelu(v, "tanh" if approx == "tanh" else "none"), np.nan, inf),
        "silu": (ref.silu, np.nan, inf),
        "exp": (np.exp, 0.0, inf),
        "erf": (ref.erf, -1.0, 1.0),
    }
    fn, lo, hi = table[name]
    with np.errstate(all="ignore"):  # (1-d: the erf reference returns scalars for 0-d input)
        return _limits(np.atleast_1d(x), fn, lo, hi).reshape(np.shape(x))


def _ref_unary_backward(name, g, x, kw):
    import reference as ref

    slope = float(np.float32(kw.get("negative_slope", 0.01)))
    approx = "tanh" if kw.get("approximate", "none") == "tanh" else "none"
    x, g = np.atleast_1d(x), np.atleast_1d(g)  # (the erf reference returns scalars for 0-d)
    with np.errstate(all="ignore"):
        if name == "relu_backward":
            d = np.where(x > 0, 1.0, 0.0)
        elif name == "leaky_relu_backward":
            d = np.where(x > 0, 1.0, slope)
        elif name == "gelu_backward":  # at +-inf NaN (as PyTorch), the tanh form's limits
            lo, hi = (0.0, 1.0) if approx == "tanh" else (np.nan, np.nan)
            d = _limits(x, lambda v: ref.gelu_backward(np.ones_like(v), v, approx), lo, hi)
        elif name == "silu_backward":  # NaN at +-inf, as PyTorch
            d = _limits(x, lambda v: ref.silu_backward(np.ones_like(v), v), np.nan, np.nan)
        elif name == "sigmoid_backward":
            d = x * (1.0 - x)
        else:  # tanh_backward
            d = 1.0 - x * x
        if name in ("relu_backward", "leaky_relu_backward"):
            return g * d  # a mask from x > 0, as tests/reference.py: NaN counts as not > 0
        return np.where(np.isnan(x), np.nan, g * d)


def _softmax_rows_ok(x, axis):
    """rows whose result fastnn defines: no NaN, no +inf (rows of -inf are NaN, as torch)"""
    return np.all(~np.isnan(x) & (x != np.inf), axis=axis, keepdims=True)


def _ref_softmax(x, axis, log):
    with np.errstate(all="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
        z = x - m
        s = np.sum(np.exp(z), axis=axis, keepdims=True)
        return z - np.log(s) if log else np.exp(z) / s


def _ref_cross_entropy(logits, labels, smoothing, ignore):
    x = logits
    if x.ndim == 1:
        x, labels = x[None, :], np.asarray(labels).reshape(1)
    c = x.shape[1]
    x = np.moveaxis(x, 1, -1).reshape(-1, c)
    labels = np.asarray(labels).reshape(-1)
    keep = labels != ignore
    count = int(keep.sum())
    with np.errstate(all="ignore"):
        logp = _ref_softmax(x, -1, True)
        target = np.where(keep[:, None], np.full(x.shape, smoothing / c), 0.0)
        rows = np.arange(len(labels))[keep]
        target[rows, labels[keep]] += 1.0 - smoothing
        terms = np.where(target > 0, -target * logp, 0.0)
        loss = terms.sum() / count if count else np.nan
        grad = (np.exp(logp) * keep[:, None] - target) / count if count else np.zeros_like(x)
    grad = np.moveaxis(grad.reshape(np.moveaxis(logits if logits.ndim > 1 else logits[None], 1, -1).shape), -1, 1)
    return loss, grad.reshape(logits.shape)


def _gemm_tol(a_abs, b_abs, k):
    """elementwise bound of float32 accumulation error of a k-term dot product"""
    return 2.0 * np.finfo(np.float32).eps * (k + 2) * np.matmul(a_abs, b_abs) + FLOOR


def _as_bool(v):
    try:
        return bool(v)
    except (TypeError, ValueError):
        return False


def _ref_activation(act, z):
    import reference as ref

    if act in (None, "none"):
        return z
    with np.errstate(all="ignore"):
        return {"relu": ref.relu, "sigmoid": ref.sigmoid, "tanh": ref.tanh,
                "gelu": lambda v: ref.gelu(v), "gelu_tanh": lambda v: ref.gelu(v, "tanh")}[act](z)


# the absolute floor of every reference comparison (float32 results that small are
# subnormal, with few significant bits)
FLOOR = 1e-37


def check_reference(fn, args, kw, res, before):
    """the type checks of fuzzing.check_result, then the float64 reference of fn,
    computed from `before` (copies of the inputs taken before the call)"""
    if getattr(fn, "_scenario", False):
        return  # nn / optim scenarios check themselves
    target = getattr(fn, "_target", fn)
    fuzzing.check_result(target, args, kw, res, before)
    checker = REFERENCE_CHECKS.get(getattr(target, "__name__", ""))
    if checker is None:
        return
    if any(v is fuzzing.UNCOPIED for v in list(before[0]) + list(before[1].values())):
        return  # an input too big to have been copied
    b_args, live = _bound(target, *before), _bound(target, args, kw)
    if b_args is not None:
        try:
            checker(target.__name__, b_args, res, live)
        except MemoryError:
            pass  # a reference on a huge empty shape (sums over (2, 0, 10**9)): not ours


def _tanh_arg_rtol(x, a):
    """gelu's tanh form is sigmoid(2u), u = k (x + 0.044715 x^3) rounded to float32:
    in the tails an argument of size |2u| moves the result by ~|2u| ulps"""
    if a.get("approximate", "none") != "tanh":
        return 0.0
    with np.errstate(all="ignore"):
        u = np.abs(2 * 0.7978845608 * (x + 0.044715 * x ** 3))
    return 2.4e-7 * np.where(np.isfinite(u), np.minimum(u, 200.0), 0.0)


def _chk_unary(name, a, res, live):
    if name == "leaky_relu" and not np.isfinite(np.float32(a["negative_slope"])):
        return
    x = _f32(a["x"])
    ref = _ref_unary(name, x, a)
    # exp/erf/gelu/sigmoid/tanh: a few ulps (docs/accuracy.md); silu, leaky: products
    rtol = 2e-6 if name != "gelu" else 4e-6 + _tanh_arg_rtol(x, a)
    assert_close(name, res, ref, rtol, FLOOR)


def _chk_unary_backward(name, a, res, live):
    g = _f32(a["grad_out"])
    second = "y" if name in ("sigmoid_backward", "tanh_backward") else "x"
    x = _f32(a[second])
    if name == "sigmoid_backward" and not np.all((x >= 0) & (x <= 1) | np.isnan(x)):
        return  # y outside (0, 1) is no sigmoid output: the formula only
    if name == "tanh_backward" and not np.all((np.abs(x) <= 1) | np.isnan(x)):
        return
    if not np.all(np.isfinite(g)):
        return  # inf * 0 cases: unspecified
    ref = np.reshape(_ref_unary_backward(name, g, x, a), np.shape(x))
    scale = np.max(np.abs(g), initial=0.0)
    rtol = 2e-5 + (_tanh_arg_rtol(x, a) if name == "gelu_backward" else 0.0)
    assert_close(name, res, ref, rtol, 1e-6 * scale + FLOOR)


def _axis(a, nd):
    ax = a.get("axis", -1)
    if isinstance(ax, (bool, np.bool_)) or not isinstance(ax, (int, np.integer)):
        return None
    ax = int(ax)
    return ax + max(nd, 1) if ax < 0 else ax


def _chk_softmax(name, a, res, live):
    x = _f32(a["x"])
    if x.size == 0:
        return
    ax = _axis(a, x.ndim)
    if ax is None or x.ndim == 0:
        return
    rows = _softmax_rows_ok(x, ax)
    ref = _ref_softmax(x, ax, name == "log_softmax")
    assert_close(name, res, ref, 1e-5, 1e-6 if name == "log_softmax" else 1e-7, rows)


def _chk_softmax_backward(name, a, res, live):
    g, y = _f32(a["grad_out"]), _f32(a["y"])
    if y.size == 0:
        return
    ax = _axis(a, y.ndim)
    if ax is None or y.ndim == 0 or g.shape != y.shape:
        return
    if not (np.all(np.isfinite(g)) and np.all(np.isfinite(y))):
        return
    with np.errstate(all="ignore"):
        if name == "softmax_backward":
            if np.any(np.abs(y) > 1e15) or np.any(np.abs(g) > 1e15):
                return  # products overflow float32: range, not a bug
            ref = y * (g - (g * y).sum(axis=ax, keepdims=True))
            scale = np.abs(y) * (np.abs(g) + (np.abs(g * y)).sum(axis=ax, keepdims=True))
        else:
            if np.any(y > 80) or np.any(np.abs(g) > 1e15):
                return  # exp(y) beyond float32
            ref = g - np.exp(y) * g.sum(axis=ax, keepdims=True)
            # exp(y) below float32's normal range (y < -87.3) is 0 in the kernel's vector
            # exp: an absolute error of up to 1.2e-38 times the row's sum of grad_out
            scale = np.abs(g) + (np.exp(y) + 1.2e-33) * np.abs(g).sum(axis=ax, keepdims=True)
    assert_close(name, res, ref, 1e-5, 1e-5 * scale + FLOOR)


def _chk_cross_entropy(name, a, res, live):
    x = _f32(a["input"])
    try:
        labels = np.asarray(a["target"])
    except Exception:
        return
    if labels.dtype.kind not in "iub" or x.ndim == 0 or not np.all(x != np.inf) \
            or np.any(np.isnan(x)) or np.any(np.abs(x[np.isfinite(x)]) > 1e30):
        return
    smoothing, ignore = a["label_smoothing"], a["ignore_index"]
    if not isinstance(smoothing, (int, float, np.floating, np.integer)) or \
            not isinstance(ignore, (int, np.integer)) or isinstance(ignore, bool):
        return
    loss, grad = _ref_cross_entropy(x, labels.astype(np.int64), float(np.float32(smoothing)),
                                    int(ignore))
    got_loss, got_grad = res
    # a stable float32 form (x - max first, as torch) errs by ~eps times the spread of a
    # row's logits, not by eps times their size
    xc = np.moveaxis(x if x.ndim > 1 else x[None], 1, -1).reshape(-1, x.shape[1] if x.ndim > 1 else x.shape[0])
    fin = np.where(np.isfinite(xc), xc, np.nan)
    with np.errstate(all="ignore"):
        spread = np.nanmax(fin, axis=1, initial=-np.inf) - np.nanmin(fin, axis=1, initial=np.inf)
    spread = float(np.max(np.where(np.isfinite(spread), spread, 0.0), initial=0.0))
    assert_close(name + " loss", np.float64(got_loss), loss, 1e-5, 1e-6 * (1.0 + spread))
    assert_close(name + " grad", got_grad, grad, 1e-5, 1e-6 / max(1, labels.size))


def _chk_pointwise_loss(name, a, res, live):
    x, t = _f32(a["input"]), _f32(a["target"])
    if x.shape != t.shape or not (np.all(np.isfinite(x)) and np.all(np.isfinite(t))):
        return
    if np.any(np.abs(x) > 1e15) or np.any(np.abs(t) > 1e15):
        return  # squares beyond float32
    n = max(x.size, 1)
    with np.errstate(all="ignore"):
        if name == "mse_loss":
            d = x - t
            loss, grad = (d * d).mean() if x.size else np.nan, 2.0 * d / n
            scale = np.abs(d).max(initial=0.0)
            gscale = 2 * scale / n
            lscale = scale * scale
        else:
            loss = (np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))).mean() if x.size else np.nan
            import reference as ref
            grad = (ref.sigmoid(x) - t) / n
            lscale = 1.0 + (np.abs(x) * (1 + np.abs(t))).max(initial=0.0)
            gscale = (1.0 + np.abs(t).max(initial=0.0)) / n
    got_loss, got_grad = res
    # the kernels sum each 8192-element block in float32 lanes (losses_api.c), the blocks
    # in double: up to ~(block / lanes) float32 roundings on the loss
    rtol = 1e-5 + 6e-8 * min(x.size, 8192)
    assert_close(name + " loss", np.float64(got_loss), loss, rtol, 1e-6 * lscale)
    assert_close(name + " grad", got_grad, grad, 1e-5, 1e-6 * gscale + FLOOR)


def _mm_operands(a, b, ta, tb):
    A, B = _f32(a), _f32(b)
    if ta:
        A = np.swapaxes(A, -1, -2)
    if tb:
        B = np.swapaxes(B, -1, -2)
    return A, B


def _chk_matmul(name, args, res, live):
    ta, tb = _as_bool(args["trans_a"]), _as_bool(args["trans_b"])
    try:
        alpha, beta = float(np.float32(args["alpha"])), float(np.float32(args["beta"]))
    except (TypeError, ValueError):
        return
    A, B = _mm_operands(args["a"], args["b"], ta, tb)
    if A.ndim < 2 or B.ndim < 2 or not (np.all(np.isfinite(A)) and np.all(np.isfinite(B))):
        return
    if not (math.isfinite(alpha) and math.isfinite(beta)):
        return
    with np.errstate(all="ignore"):
        prod = np.matmul(A, B)
        bound = np.matmul(np.abs(A), np.abs(B))  # partial sums beyond float32 may be +-inf
        tol = _gemm_tol(np.abs(A), np.abs(B), A.shape[-1]) * abs(alpha)
        ref = alpha * prod
        if beta != 0.0:
            out0 = args["out"]
            if out0 is None:
                return  # beta without out: documented? fastnn ignores beta then
            C = _f32(out0)
            if not np.all(np.isfinite(C)):
                return
            ref = ref + beta * C
            tol = tol + 2e-7 * abs(beta) * np.abs(C)
    if ref.shape != np.shape(res):
        raise AssertionError(f"matmul: result shape {np.shape(res)}, expected {ref.shape}")
    assert_close("matmul", res, ref, 1e-6, tol, (bound * max(abs(alpha), 1.0) < 1e37) & (tol < 1e37))


def _chk_linear(name, args, res, live):
    x, w = _f32(args["x"]), _f32(args["weight"])
    bias = args["bias"]
    if x.ndim < 1 or w.ndim != 2 or not (np.all(np.isfinite(x)) and np.all(np.isfinite(w))):
        return
    with np.errstate(all="ignore"):
        z = np.matmul(x, w.T)
        bound = np.matmul(np.abs(x), np.abs(w.T))
        tol = _gemm_tol(np.abs(x), np.abs(w.T), w.shape[1])
        if bias is not None:
            bb = _f32(bias)
            if not np.all(np.isfinite(bb)):
                return
            z = z + bb
            tol = tol + 2e-7 * np.abs(bb)
        act = args["activation"]
        act = act if isinstance(act, str) else None
        ref = _ref_activation(act, z)
    if ref.shape != np.shape(res):
        raise AssertionError(f"linear: result shape {np.shape(res)}, expected {ref.shape}")
    # the activations' own error: a few ulps, and a slope of at most ~1.13
    rtol = 1e-5 + (_tanh_arg_rtol(z, {"approximate": "tanh"}) if act == "gelu_tanh" else 0.0)
    assert_close("linear", res, ref, rtol, 1.2 * tol, bound < 1e37)
    pre = live.get("preactivation")
    if isinstance(pre, np.ndarray) and act is not None:
        assert_close("linear preactivation", pre, z, 1e-6, tol, bound < 1e37)


def _chk_bias_backward(name, args, res, live):
    g = _f32(args["grad_out"])
    if g.ndim == 0 or not np.all(np.isfinite(g)):
        return
    ref = g.reshape(-1, g.shape[-1]).sum(axis=0) if g.shape[-1] else np.zeros(0)
    if _as_bool(args.get("accumulate")) and args.get("out") is not None:
        ref = ref + _f32(args["out"])
    tol = 4 * np.finfo(np.float32).eps * (g.size // max(g.shape[-1], 1) + 2) * \
        np.abs(g).reshape(-1, max(g.shape[-1], 1)).sum(axis=0)
    if ref.shape != np.shape(res):
        raise AssertionError(f"linear_bias_backward: shape {np.shape(res)}, expected {ref.shape}")
    assert_close(name, res, ref, 1e-6, tol + FLOOR)


def _chk_linear_backward(name, args, res, live):
    import reference as ref

    x, w, g = _f32(args["x"]), _f32(args["weight"]), _f32(args["grad_out"])
    if not all(np.all(np.isfinite(v)) for v in (x, w, g)):
        return
    act = args["activation"] if isinstance(args["activation"], str) else None
    with np.errstate(all="ignore"):
        if act in ("gelu", "gelu_tanh"):
            z = _f32(args["preactivation"])
            gz = ref.gelu_backward(g, z, "tanh" if act == "gelu_tanh" else "none")
        elif act in ("relu", "sigmoid", "tanh"):
            y = _f32(args["output"])
            gz = {"relu": np.where(y > 0, g, 0.0), "sigmoid": g * y * (1 - y),
                  "tanh": g * (1 - y * y)}[act]
        else:
            gz = g
    if not np.all(np.isfinite(gz)):
        return
    x2, g2 = x.reshape(-1, x.shape[-1]), gz.reshape(-1, gz.shape[-1])
    graw = np.abs(g).reshape(g2.shape)
    gabs = np.abs(g2) * 1.2 + 1e-30
    if _as_bool(args["input_grad"]):
        dx = g2 @ w
        # + the activation backward's own float32 error, relative to the raw gradient
        # (1 - y*y and y*(1 - y) cancel near saturation)
        tol = _gemm_tol(gabs, np.abs(w), w.shape[0]) + 1e-5 * np.abs(dx) + \
            16 * np.finfo(np.float32).eps * (graw @ np.abs(w))
        assert_close("linear_backward dx", np.asarray(res).reshape(dx.shape), dx, 1e-5, tol,
                     np.abs(g2) @ np.abs(w) < 1e37)
    else:
        assert res is None, "linear_backward(input_grad=False) returned a gradient"


def _chk_optim(name, args, res, live):
    import reference as ref

    p0 = args["param"]
    if not isinstance(p0, np.ndarray):
        return
    state_keys = {"sgd_step": ["momentum_buf"],
                  "adam_step": ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"],
                  "rmsprop_step": ["square_avg", "grad_avg", "momentum_buf"]}[name]
    arrays = {k: args[k] for k in ["param", "grad"] + state_keys if args.get(k) is not None}
    if not all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in arrays.values()):
        return
    vals = {k: v.astype(np.float64).reshape(-1) for k, v in arrays.items()}
    if not all(np.all(np.isfinite(v)) and np.all(np.abs(v) < 1e15) for v in vals.values()):
        return  # float32 range: squares of 1e19 overflow in any float32 optimizer
    hyper = {k: v for k, v in args.items() if k not in arrays and k not in state_keys}
    for k, v in list(hyper.items()):
        if k in ("nesterov", "first_step", "decoupled"):
            hyper[k] = _as_bool(v)
        elif k != "step":
            hyper[k] = float(np.float32(v))
    if any(abs(v) > 1e6 for k, v in hyper.items() if k != "step" and isinstance(v, float)):
        return  # weight_decay 1e30 and the like: float32 range again
    p = vals["param"].copy()
    got = {k: np.asarray(live[k], dtype=np.float64).reshape(-1) for k in arrays}
    with np.errstate(all="ignore"):
        if name == "sgd_step":
            buf = vals.get("momentum_buf")
            buf = buf.copy() if buf is not None else None
            if hyper["momentum"] and buf is None:
                return
            ref.sgd_step(p, vals["grad"], buf, hyper["lr"], hyper["momentum"], hyper["dampening"],
                         hyper["nesterov"], hyper["weight_decay"], hyper["first_step"])
            state = {"momentum_buf": buf} if hyper["momentum"] else {}
        elif name == "adam_step":
            step = int(args["step"])
            m, v = vals["exp_avg"].copy(), vals["exp_avg_sq"].copy()
            mx = vals["max_exp_avg_sq"].copy() if "max_exp_avg_sq" in vals else None
            ref.adam_step(p, vals["grad"], m, v, step, hyper["lr"], hyper["beta1"], hyper["beta2"],
                          hyper["eps"], hyper["weight_decay"], hyper["decoupled"], mx)
            state = {"exp_avg": m, "exp_avg_sq": v}
            if mx is not None:
                state["max_exp_avg_sq"] = mx
        else:
            sq = vals["square_avg"].copy()
            ga = vals["grad_avg"].copy() if "grad_avg" in vals else None
            mb = vals["momentum_buf"].copy() if "momentum_buf" in vals else None
            if hyper["momentum"] > 0 and mb is None:
                return
            if ga is not None and hyper["alpha"] == 0.0:
                return  # centered, alpha 0: sqrt of a rounding error that may be < 0, NaN as torch
            ref.rmsprop_step(p, vals["grad"], sq, hyper["lr"], hyper["alpha"], hyper["eps"],
                             hyper["weight_decay"], hyper["momentum"], ga, mb)
            state = {"square_avg": sq}
            if ga is not None:
                state["grad_avg"] = ga
            if hyper["momentum"] > 0:
                state["momentum_buf"] = mb
    p_before = vals["param"]
    g = np.abs(vals["grad"]) + hyper.get("weight_decay", 0.0) * np.abs(p_before)
    # the update's float32 roundings are relative to its terms (momentum * buf + g ...),
    # which may be larger than the update; Adam and RMSprop divide them by their denominator
    terms = g + sum(np.abs(v) for k, v in vals.items() if k in ("momentum_buf", "exp_avg", "grad_avg"))
    step_tol = 0.0
    if name != "sgd_step":
        sq = state.get("max_exp_avg_sq", state.get("exp_avg_sq", state.get("square_avg")))
        den = np.sqrt(np.maximum(sq, 0.0)) + hyper.get("eps", 0.0) + 1e-30
        terms = terms / (0.5 * den)
        # the denominator's own relative error, from g = grad + weight_decay * param rounded
        # in float32 (it cancels when grad ~ -weight_decay * param)
        step_tol = np.abs(p - p_before) * 1e-6 * g / den
    step_tol = step_tol + 4e-6 * hyper.get("lr", 0.0) * terms * (1.0 if name == "sgd_step" else 10.0)
    finite = np.isfinite(p)
    if name != "sgd_step" and hyper["eps"] < 1e-30:
        # eps (about) 0 and a second moment that is 0 in float32 (a gradient below 1e-23, or
        # one that rounds to 0): a division by (about) 0, inf or NaN, in torch as here
        finite &= sq.astype(np.float32) > 0
    cancel = 0.0
    if name == "rmsprop_step" and "grad_avg" in state:  # sqrt(square_avg - grad_avg^2): cancels
        sq, ga = state["square_avg"], state["grad_avg"]
        ga2 = ga * ga
        # the roundings of square_avg, of grad_avg^2, of grad_avg's own update (g - grad_avg
        # cancels too) and of g (in both), relative to the difference: a few ulps of each
        cancel = 2 * (sq + ga2 + g * g + 2 * np.abs(ga) * (np.abs(vals["grad_avg"]) + g)) \
            / np.maximum(sq - ga2, 1e-38)
        step_tol = step_tol + np.abs(p - p_before) * 1e-6 * cancel
        # a difference within float32 rounding of 0 may come out < 0: NaN, as in torch
        finite &= sq - ga2 > 1e-5 * (sq + ga2)
    assert_close(name + " param", got["param"], p, 2e-6,
                 1e-4 * np.abs(p - p_before) + 2e-6 * np.abs(p_before) + step_tol + FLOOR,
                 finite)
    for k, v in state.items():
        # float32 sums of terms larger than the result: error relative to the terms
        terms = np.abs(vals.get(k, 0.0)) + (g * g if "sq" in k else g)
        extra = 1e-6 * g / den if name == "rmsprop_step" and k == "momentum_buf" else 0.0  # g / avg
        extra = extra * (1 + cancel)  # sqrt(square_avg - grad_avg^2) cancels
        assert_close(f"{name} {k}", got[k], v, 1e-5, 2e-6 * terms + extra + FLOOR,
                     np.isfinite(v) & (finite if k == "momentum_buf" else True))


REFERENCE_CHECKS = {}
for _n in ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "exp", "erf"):
    REFERENCE_CHECKS[_n] = _chk_unary
for _n in ("relu_backward", "leaky_relu_backward", "sigmoid_backward", "tanh_backward",
           "gelu_backward", "silu_backward"):
    REFERENCE_CHECKS[_n] = _chk_unary_backward
REFERENCE_CHECKS.update(
    softmax=_chk_softmax, log_softmax=_chk_softmax, softmax_backward=_chk_softmax_backward,
    log_softmax_backward=_chk_softmax_backward, cross_entropy=_chk_cross_entropy,
    mse_loss=_chk_pointwise_loss, binary_cross_entropy_with_logits=_chk_pointwise_loss,
    matmul=_chk_matmul, linear=_chk_linear, linear_bias_backward=_chk_bias_backward,
    linear_backward=_chk_linear_backward, sgd_step=_chk_optim, adam_step=_chk_optim,
    rmsprop_step=_chk_optim)


# =============================================================================
# child side: valid calls (every one must return, and match the reference)
# =============================================================================

def expect_ok(fn, label="valid"):
    """fn, but an allowed exception is a finding: the maker drew a valid call"""
    def call(*args, **kw):
        try:
            return fn(*args, **kw)
        except fuzzing.ALLOWED as e:
            raise AssertionError(f"a valid call raised {type(e).__name__}: {e}") from None
    call._target = fn
    call._exact = True
    call.__name__ = call.__qualname__ = f"{getattr(fn, '__name__', 'fn')}[{label}]"
    return call


def valid_calls(R, NP):
    """Makers of valid calls to every fastnn.ops function: inputs in every layout and
    dtype that converts, values normal, huge or special, `out` None, fresh, the
    input itself or overlapping it partly."""
    from fastnn import ops

    A = fuzzing.Arrays(R, NP)
    SHAPES = [(0,), (1,), (5,), (33,), (3, 7), (2, 3, 4), (17, 65), (1, 300), (4097,), (300, 300),
              (2, 0, 3)]

    def cast(dt):
        def make(shp):
            return A.f32(shp).astype(dt) if dt != np.float16 else \
                np.clip(A.f32(shp), -6e4, 6e4).astype(dt)
        return make

    LAYOUTS = [A.f32] * 4 + [A.noncontig, A.negstride, A.readonly, A.transposed, A.wide,
                             A.bcast, A.unaligned, A.odd_strides, cast(np.float64),
                             cast(np.float16), cast(np.int32), A.pylist]

    def arr(shp, maker=None):
        maker = maker or R.choice(LAYOUTS)
        if maker == A.pylist and (0 in shp or not shp):  # [[], []] is (2, 0), not (2, 0, 3)
            maker = A.f32
        return np.asarray(maker(shp)) if maker != A.pylist else maker(shp)

    def shape():
        return R.choice(SHAPES)

    def overlapping(shp):
        """(x, out): two float32 views of one buffer, out shifted by 1..n-1 elements"""
        n = int(np.prod(shp))
        if n < 2:
            x = A.f32(shp)
            return x, x
        k = R.randrange(1, n)
        buf = A.f32((n + k,))
        if R.random() < 0.5:
            return buf[:n].reshape(shp), buf[k:].reshape(shp)
        return buf[k:].reshape(shp), buf[:n].reshape(shp)

    def out_and_inputs(shp, inputs):
        """an `out` for the result; may replace an input by an alias of out"""
        k = R.randrange(6)
        if k == 0:
            return None, inputs
        if k == 1:
            return np.empty(shp, np.float32), inputs
        if k == 2:
            return np.full(shp, np.nan, np.float32), inputs
        i = R.randrange(len(inputs))
        if k == 3:  # in place on input i
            x = A.f32(shp)
            return x, inputs[:i] + [x] + inputs[i + 1:]
        x, out = overlapping(shp)
        return out, inputs[:i] + [x] + inputs[i + 1:]

    def unary(name, extra=None):
        def make():
            shp = shape()
            x = arr(shp)
            kw = dict(extra()) if extra else {}
            out, (x,) = out_and_inputs(shp, [x])
            if out is not None:
                kw["out"] = out
            return expect_ok(getattr(ops, name)), [x], kw
        return make

    def in_domain(name, shp):
        if name == "sigmoid_backward":
            return _ref_unary("sigmoid", _f32(A.f32(shp)), {}).astype(np.float32)
        if name == "tanh_backward":
            return _ref_unary("tanh", _f32(A.f32(shp)), {}).astype(np.float32)
        return arr(shp)

    def backward(name, extra=None):
        def make():
            shp = shape()
            g, x = arr(shp), in_domain(name, shp)
            kw = dict(extra()) if extra else {}
            out, (g, x) = out_and_inputs(shp, [g, x])
            if out is not None:
                kw["out"] = out
            return expect_ok(getattr(ops, name)), [g, x], kw
        return make

    def slope():
        return {"negative_slope": R.choice([0.01, 0.2, 0.0, -0.5, 1.0, 3.0])}

    def approx():
        return {"approximate": R.choice(["none", "tanh"])}

    def axis_for(shp):
        nd = len(shp)
        return R.randrange(-nd, nd)

    def softmax(name):
        def make():
            shp = R.choice([s for s in SHAPES if s])
            x = arr(shp)
            if R.random() < 0.2 and isinstance(x, np.ndarray) and x.size:
                x = np.array(x, np.float32)
                x.reshape(-1)[NP.integers(0, x.size, max(1, x.size // 3))] = -np.inf
            kw = {"axis": axis_for(shp)}
            out, (x,) = out_and_inputs(shp, [x])
            if out is not None:
                kw["out"] = out
            return expect_ok(getattr(ops, name)), [x], kw
        return make

    def softmax_backward(name):
        def make():
            shp = R.choice([s for s in SHAPES if s])
            ax = axis_for(shp)
            # inputs from the float64 references: a maker never calls what it tests
            y = _ref_softmax(_f32(A.f32(shp)), ax, name == "log_softmax_backward").astype(np.float32)
            g = arr(shp)
            out, (g, y) = out_and_inputs(shp, [g, y])
            kw = {"axis": ax}
            if out is not None:
                kw["out"] = out
            return expect_ok(getattr(ops, name)), [g, y], kw
        return make

    def cross_entropy():
        shp = R.choice([(1, 1), (4, 3), (33, 10), (2, 5, 3), (0, 4), (7,), (256, 1000)])
        x = arr(shp)
        C = shp[1] if len(shp) > 1 else shp[0]
        ls = shp[:1] + shp[2:] if len(shp) > 1 else ()
        labels = NP.integers(0, C, ls)
        kw = {}
        if R.random() < 0.5:
            kw["label_smoothing"] = R.choice([0.0, 0.1, 0.5, 1.0])
        if R.random() < 0.3:
            labels = labels.astype(R.choice([np.int32, np.uint8, np.int16]))
        if R.random() < 0.3 and labels.size:
            ign = R.choice([-100, 0, 1] if labels.dtype.kind == "i" else [0, 1])
            kw["ignore_index"] = ign
            labels = np.where(NP.random(ls) < 0.3, ign, labels).astype(labels.dtype)
        return expect_ok(ops.cross_entropy), [x, labels], kw

    def pointwise_loss(name):
        def make():
            shp = shape()
            return expect_ok(getattr(ops, name)), [arr(shp), arr(shp)], {}
        return make

    def mm_dims():
        return R.choice([0, 1, 2, 3, 5, 8, 13, 17, 33, 64, 65, 100])

    def matmul():
        M, N, K = mm_dims(), mm_dims(), mm_dims()
        ta, tb = R.random() < 0.3, R.random() < 0.3
        sa, sb = ((K, M) if ta else (M, K)), ((N, K) if tb else (K, N))
        batch = R.choice([None, None, 1, 2, 3])
        if batch is not None:
            r = R.randrange(3)
            sa = (batch,) + sa if r != 1 else sa
            sb = (batch if r != 2 else R.choice([1, batch]),) + sb if r != 0 else sb
        a, b = arr(sa, R.choice(LAYOUTS[:-1])), arr(sb, R.choice(LAYOUTS[:-1]))
        kw = {"trans_a": ta, "trans_b": tb}
        shp = np.matmul(np.empty(sa[:-2] + (M, 1)), np.empty(sb[:-2] + (1, N))).shape
        if R.random() < 0.4:
            kw["alpha"] = R.choice([1.0, 2.0, -0.5, 0.0])
        k = R.randrange(5)
        if k == 1:
            kw["out"] = np.full(shp, np.nan, np.float32)
        elif k == 2:
            kw["out"] = A.f32(shp)
            kw["beta"] = R.choice([1.0, 0.5, -1.0])
        elif k == 3 and isinstance(a, np.ndarray) and a.shape == shp:
            a = kw["out"] = A.f32(shp)  # out is the input a
            kw["beta"] = R.choice([0.0, 1.0])
        elif k == 4 and int(np.prod(shp)) > 1:
            # out overlaps b partly: a buffer both are views of
            n = int(np.prod(shp))
            nb = int(np.prod(sb))
            buf = A.f32((n + nb,))
            off = R.randrange(0, n) if n else 0
            kw["out"] = buf[off:off + n].reshape(shp)
            b = buf[:nb].reshape(sb)
            kw["beta"] = R.choice([0.0, 1.0])
        return expect_ok(ops.matmul), [a, b], kw

    ACTS = [None, "relu", "gelu", "gelu_tanh", "sigmoid", "tanh"]

    def linear():
        n_in, n_out = mm_dims(), mm_dims()
        lead = R.choice([(), (1,), (mm_dims(),), (2, mm_dims())])
        x, w = arr(lead + (n_in,), R.choice(LAYOUTS[:-1])), arr((n_out, n_in), R.choice(LAYOUTS[:-1]))
        kw = {"activation": R.choice(ACTS)}
        if R.random() < 0.7:
            kw["bias"] = arr((n_out,))
        if R.random() < 0.4:
            kw["out"] = np.full(lead + (n_out,), np.nan, np.float32)
        if kw["activation"] and R.random() < 0.4:
            kw["preactivation"] = np.empty(lead + (n_out,), np.float32)
        return expect_ok(ops.linear), [x, w], kw

    def linear_backward():
        n_in, n_out = mm_dims(), mm_dims()
        lead = R.choice([(1,), (mm_dims(),), (2, mm_dims())])
        x, w = A.f32(lead + (n_in,)), A.f32((n_out, n_in))
        act = R.choice(ACTS)
        pre = np.empty(lead + (n_out,), np.float32)
        with np.errstate(all="ignore"):
            pre[...] = _f32(x) @ _f32(w).T
            y = _ref_activation(act, _f32(pre)).astype(np.float32)
        g = arr(lead + (n_out,))
        kw = {"activation": act, "input_grad": R.random() < 0.8}
        if act in ("gelu", "gelu_tanh"):
            kw["preactivation"] = pre
        elif act:
            kw["output"] = y
        gw = np.zeros((n_out, n_in), np.float32) if R.random() < 0.7 else None
        gb = np.zeros((n_out,), np.float32) if R.random() < 0.7 else None
        call = expect_ok(ops.linear_backward)

        def run(*args, **kwargs):  # the accumulated dW and db checked here, dx by the reference
            dx = call(*args, **kwargs)
            x64, g64 = _f32(x).reshape(-1, n_in), None
            import reference as ref
            with np.errstate(all="ignore"):
                gz = _f32(g)
                if act in ("gelu", "gelu_tanh"):
                    gz = ref.gelu_backward(gz, _f32(pre), "tanh" if act == "gelu_tanh" else "none")
                elif act == "relu":
                    gz = np.where(_f32(y) > 0, gz, 0.0)
                elif act == "sigmoid":
                    gz = gz * _f32(y) * (1 - _f32(y))
                elif act == "tanh":
                    gz = gz * (1 - _f32(y) ** 2)
            g64 = gz.reshape(-1, n_out)
            graw = np.abs(_f32(g)).reshape(g64.shape) * (16 * np.finfo(np.float32).eps)
            if np.all(np.isfinite(g64)):
                gabs = np.abs(g64) * 1.2
                if gw is not None:
                    ref_w = g64.T @ x64
                    bound = (gabs.T + graw.T) @ np.abs(x64)
                    # + the activation's backward rounded to a subnormal (1e-40 * y (1 - y)):
                    # 1.4e-45 absolute, times x
                    sub = 6e-45 * (np.ones_like(gabs).T @ np.abs(x64))
                    assert_close("linear_backward grad_weight", gw, ref_w, 1e-5,
                                 _gemm_tol(gabs.T, np.abs(x64), g64.shape[0]) + graw.T @ np.abs(x64)
                                 + sub, bound < 1e37)
                if gb is not None:
                    assert_close("linear_backward grad_bias", gb, g64.sum(axis=0), 1e-5,
                                 4e-7 * (g64.shape[0] + 2) * gabs.sum(axis=0) + graw.sum(axis=0) + FLOOR,
                                 gabs.sum(axis=0) < 1e37)
            return dx
        run._target = ops.linear_backward
        run._exact = True
        run.__name__ = run.__qualname__ = "linear_backward[valid]"
        return run, [g, x, w, gw, gb], kw

    def bias_backward():
        shp = R.choice([(1,), (5,), (3, 7), (2, 3, 4), (300, 300), (0, 4), (4, 0)])
        g = arr(shp)
        kw = {}
        if R.random() < 0.5:
            kw["out"] = A.f32(shp[-1:])
            kw["accumulate"] = R.random() < 0.5
        return expect_ok(ops.linear_bias_backward), [g], kw

    def optim_step(name):
        def make():
            shp = R.choice([(1,), (7,), (3, 5), (0,), (70000,), ()])
            def f32(s, fn=None):  # 0-d arrays stay arrays (ufuncs return scalars for them)
                v = np.asarray(A.f32(s))
                return np.asarray(fn(v) if fn else v, dtype=np.float32)
            p, g = f32(shp), f32(shp)
            hyper = lambda lo=0.0, hi=0.999: R.choice([lo, 0.01, 0.1, 0.5, hi])  # noqa: E731
            if name == "sgd_step":
                mom = R.choice([0.0, 0.9, 0.5])
                damp = R.choice([0.0, 0.1]) if R.random() < 0.5 else 0.0
                nest = mom > 0 and damp == 0 and R.random() < 0.5
                args = [p, g, f32(shp) if mom else None, hyper(1e-3, 1.0)]
                kw = dict(momentum=mom, dampening=damp, nesterov=nest,
                          weight_decay=R.choice([0.0, 0.01]), first_step=R.random() < 0.3)
            elif name == "adam_step":
                m, v = f32(shp), f32(shp, np.abs)
                args = [p, g, m, v, R.choice([1, 2, 10, 1000])]
                kw = dict(lr=hyper(1e-3, 1.0), beta1=hyper(), beta2=hyper(), eps=R.choice([1e-8, 0.0, 1e-3]),
                          weight_decay=R.choice([0.0, 0.01]), decoupled=R.random() < 0.5)
                if R.random() < 0.3:
                    kw["max_exp_avg_sq"] = f32(shp, np.abs)
            else:
                args = [p, g, f32(shp, np.abs)]
                kw = dict(lr=hyper(1e-3, 1.0), alpha=hyper(), eps=R.choice([1e-8, 1e-3]),
                          weight_decay=R.choice([0.0, 0.01]), momentum=R.choice([0.0, 0.9]))
                if R.random() < 0.4:
                    # centered; alpha 0 makes square_avg - grad_avg^2 a rounding error that
                    # may be < 0: NaN, in torch as here
                    kw["alpha"] = R.choice([0.5, 0.9, 0.999])
                    ga = f32(shp, lambda v: v * np.float32(0.01))
                    kw["grad_avg"] = ga
                    args[2] = np.asarray(args[2] + ga * ga, dtype=np.float32)  # >= grad_avg^2
                if kw["momentum"]:
                    kw["momentum_buf"] = f32(shp)
            return expect_ok(getattr(ops, name)), args, kw
        return make

    return ([unary(n) for n in ("relu", "sigmoid", "tanh", "silu", "exp", "erf")]
            + [unary("leaky_relu", slope), unary("gelu", approx)]
            + [backward(n) for n in ("relu_backward", "sigmoid_backward", "tanh_backward",
                                     "silu_backward")]
            + [backward("leaky_relu_backward", slope), backward("gelu_backward", approx)]
            + [softmax("softmax"), softmax("log_softmax"), softmax_backward("softmax_backward"),
               softmax_backward("log_softmax_backward")]
            + [cross_entropy] * 2 + [pointwise_loss("mse_loss"),
                                     pointwise_loss("binary_cross_entropy_with_logits")]
            + [matmul] * 4 + [linear] * 3 + [linear_backward] * 2 + [bias_backward]
            + [optim_step("sgd_step"), optim_step("adam_step"), optim_step("rmsprop_step")] * 2)


# =============================================================================
# child side: nn and optim scenarios
# =============================================================================

def scenario_for(R, NP):
    """A decorator for scenario functions: the call takes a seed first, and the
    scenario draws from R and NP reseeded with it (their states restored after), so
    that the calls drawn after it do not depend on whether it ran (replays)."""
    def scenario(fn):
        def call(seed, *args):
            saved = R.getstate(), NP.bit_generator.state
            R.seed(seed)
            NP.bit_generator.state = np.random.default_rng(seed).bit_generator.state
            try:
                return fn(*args)
            finally:
                R.setstate(saved[0])
                NP.bit_generator.state = saved[1]
        call._scenario = call._exact = True
        call.__name__ = call.__qualname__ = fn.__name__
        return call
    return scenario


def nn_calls(R, NP):
    """Makers of fastnn.nn calls: constructors with good and bad arguments, forward
    and backward against references, state_dict round trips and bad state dicts."""
    import reference as ref
    import fastnn
    from fastnn import nn

    A = fuzzing.Arrays(R, NP)
    # every layout a layer must take (they convert to float32): no weird dtypes, no junk
    INPUT_LAYOUTS = [A.f32] * 4 + [A.noncontig, A.negstride, A.readonly, A.transposed, A.wide,
                                   A.bcast, A.unaligned, A.odd_strides,
                                   lambda s: A.f32(s).astype(np.float64),
                                   lambda s: np.clip(A.f32(s), -6e4, 6e4).astype(np.float16)]
    scenario = scenario_for(R, NP)
    BAD_INTS = [-1, 1.5, "3", None, 2**70, True, [3], np.float32(2.0), float("nan")]
    BAD_REALS = [-1.0, float("nan"), float("inf"), "0.1", None, [0.1], 1j, 10**400]

    def dim():
        return R.choice([1, 1, 2, 3, 5, 8, 17, 33])

    def ctor():
        """(class name, args, kwargs, valid) for a random layer"""
        k = R.randrange(14)
        bad = R.random() < 0.15
        if k == 0:
            a = [dim(), dim()]
            kw = {"bias": R.random() < 0.7}
            if bad:
                a[R.randrange(2)] = R.choice(BAD_INTS)
            return "Linear", a, kw, not bad
        if k == 1:
            return "ReLU", [], {"inplace": R.random() < 0.5}, True
        if k == 2:
            s = R.choice([0.01, 0.2, 0.0, -0.3]) if not bad else R.choice(BAD_REALS[1:4] + [None, "a"])
            return "LeakyReLU", [s], {"inplace": R.random() < 0.5}, not bad
        if k in (3, 4, 5):
            return R.choice(["Sigmoid", "Tanh", "SiLU", "Identity"]), [], {}, True
        if k == 6:
            ap = R.choice(["none", "tanh"]) if not bad else R.choice(["erf", None, 1, "TANH"])
            return "GELU", [], {"approximate": ap}, not bad
        if k == 7:
            d = R.choice([-1, 0, 1]) if not bad else R.choice(["a", 1.5, None, [1]])
            return R.choice(["Softmax", "LogSoftmax"]), [], {"dim": d}, not bad
        if k == 8:
            p = R.choice([0.0, 0.1, 0.5, 0.9, 1.0]) if not bad else R.choice(BAD_REALS + [1.5])
            return "Dropout", [p], {"inplace": R.random() < 0.3}, not bad
        if k == 9:
            kw = {"eps": R.choice([1e-5, 1e-3]), "momentum": R.choice([0.1, None, 0.0, 1.0]),
                  "affine": R.random() < 0.8, "track_running_stats": R.random() < 0.8}
            a = [dim()]
            if bad:
                key = R.choice(["eps", "momentum", "num"])
                if key == "num":
                    a = [R.choice(BAD_INTS)]
                elif key == "eps":
                    kw[key] = R.choice([-1.0, 0.0, float("nan"), float("inf"), "0.1", None, 10**400])
                else:
                    kw[key] = R.choice([-1.0, 1.5, float("nan"), "0.1", [0.1], 10**400])
            return "BatchNorm1d", a, kw, not bad
        if k == 10:
            s, e = R.choice([(1, -1), (0, -1), (1, 2), (0, 0)])
            if bad:
                s = R.choice(["a", 1.5, None])
            return "Flatten", [], {"start_dim": s, "end_dim": e}, not bad
        if k == 11:
            return "Fused", [dim(), dim(), R.choice(["ReLU", "GELU", "Sigmoid", "Tanh", "GELUt"])], {}, True
        if k == 12:
            return "Residual", [dim()], {}, True
        return "Concat", [dim(), dim(), dim()], {}, True

    def build(name, a, kw):
        if name == "Fused":
            n_in, n_out, act = a
            act_m = nn.GELU("tanh") if act == "GELUt" else getattr(nn, act)()
            return nn.Sequential(nn.Linear(n_in, n_out), act_m)
        if name == "Residual":
            return nn.Residual(nn.Linear(a[0], a[0]))
        if name == "Concat":
            return nn.Concat(nn.Linear(a[0], a[1]), nn.Linear(a[0], a[2]), dim=-1)
        return getattr(nn, name)(*a, **kw)

    def in_features(name, a, m):
        if name in ("Linear", "Fused", "Residual", "Concat"):
            return a[0]
        if name == "BatchNorm1d":
            return m.num_features
        return None

    def input_for(name, a, m):
        """(x, valid) for module m"""
        n = in_features(name, a, m)
        batch = R.choice([1, 2, 4, 16])
        if name == "BatchNorm1d":
            shp = R.choice([(batch + 1, n), (batch + 1, n, 3)])
        elif n is not None:
            shp = R.choice([(batch, n), (batch, n), (2, batch, n), (n,)])
            if name == "Concat" and len(shp) == 1:
                shp = (batch, n)
        else:
            shp = R.choice([(batch, 5), (2, 3, 4), (7,), (batch, 3, 2, 2)])
            if name in ("Softmax", "LogSoftmax") and not -len(shp) <= m.dim < len(shp):
                return A.f32(shp), False  # the dim is out of range for this input
            if name == "Flatten":
                nd = len(shp)
                s0 = m.start_dim + nd if m.start_dim < 0 else m.start_dim
                e0 = m.end_dim + nd if m.end_dim < 0 else m.end_dim
                if not (0 <= s0 < nd and 0 <= e0 < nd and s0 <= e0):
                    return A.f32(shp), False
        if R.random() < 0.1:  # a wrong shape, dtype or junk
            return R.choice([A.f32((batch, (n or 3) + 1)), "abc", None,
                             np.zeros(shp, complex), np.asarray(A.f32(()))]), False
        return R.choice(INPUT_LAYOUTS)(shp), True

    def ref_forward(name, a, kw, m, x):
        """float64 y for module m on input x (None: no cheap reference)"""
        if name == "Linear":
            y = x @ _f32(m.weight.data).T
            return y + _f32(m.bias.data) if m.bias is not None else y
        if name in ("ReLU", "Sigmoid", "Tanh", "SiLU"):
            return _ref_unary(name.lower(), x, {})
        if name == "LeakyReLU":
            return _ref_unary("leaky_relu", x, {"negative_slope": m.negative_slope})
        if name == "GELU":
            return _ref_unary("gelu", x, {"approximate": m.approximate})
        if name == "Identity":
            return x
        if name in ("Softmax", "LogSoftmax"):
            ax = m.dim if hasattr(m, "dim") else kw["dim"]
            return _ref_softmax(x, ax, name == "LogSoftmax")
        if name == "Fused":
            lin, act = m[0], m[1]
            z = x @ _f32(lin.weight.data).T + _f32(lin.bias.data)
            return _ref_activation(act.epilogue, z)
        if name == "Residual":
            lin = m.body if hasattr(m, "body") else list(m.children())[0]
            return x + x @ _f32(lin.weight.data).T + _f32(lin.bias.data)
        if name == "Concat":
            l1, l2 = list(m.children())
            return np.concatenate([x @ _f32(l.weight.data).T + _f32(l.bias.data) for l in (l1, l2)], -1)
        if name == "BatchNorm1d":
            axes = (0,) if x.ndim == 2 else (0, 2)
            shape = (1, -1) if x.ndim == 2 else (1, -1, 1)
            if m.training or not m.track_running_stats:
                mean, var = x.mean(axis=axes), x.var(axis=axes)
            else:
                mean, var = _f32(m.running_mean), _f32(m.running_var)
            y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + m.eps)
            if m.affine:
                y = y * _f32(m.weight.data).reshape(shape) + _f32(m.bias.data).reshape(shape)
            return y
        if name == "Flatten":
            return None
        return None

    @scenario
    def module_forward_backward(name, a, kw, valid, x, x_valid, train, twice):
        """construct, forward (twice: two forwards, then two backwards in reverse
        order), compare with the reference, backward, compare gradients"""
        fastnn.manual_seed(R.randrange(1 << 30))
        try:
            m = build(name, a, kw)
        except fuzzing.ALLOWED:
            if valid:
                raise AssertionError(f"nn.{name}(*{a!r}, **{kw!r}) raised for valid arguments")
            return None
        if not valid:
            raise AssertionError(f"nn.{name}(*{a!r}, **{kw!r}) accepted invalid arguments")
        m.train(train)
        xs = x if not isinstance(x, np.ndarray) else np.array(x, copy=True)  # before in-place layers
        try:
            y = m(x)
        except fuzzing.ALLOWED as e:
            if x_valid and not (name == "BatchNorm1d" and (train or not m.track_running_stats)
                                and np.asarray(x).size // max(m.num_features, 1) <= 1):
                raise AssertionError(f"nn.{name} forward raised {type(e).__name__} for a valid "
                                     f"input: {e}") from None
            return None
        if not x_valid:
            if isinstance(xs, np.ndarray) and xs.dtype == np.float32 and xs.ndim == 0 and name in (
                    "ReLU", "Sigmoid", "Tanh", "SiLU", "Identity", "GELU", "LeakyReLU", "Dropout"):
                pass  # elementwise layers take any shape
            elif name in ("ReLU", "Sigmoid", "Tanh", "SiLU", "Identity", "GELU", "LeakyReLU",
                          "Dropout", "Flatten", "Softmax", "LogSoftmax"):
                pass
            else:
                raise AssertionError(f"{name} forward accepted a bad input {fuzzing.describe(xs)}")
            return None
        x64 = _f32(xs)
        y = np.asarray(y)
        if name not in ("Identity", "Flatten"):  # these two return their input (a view), as torch
            assert y.dtype == np.float32, f"{name} forward returned {y.dtype}"
        y_first = y.copy()
        finite = np.all(np.isfinite(x64)) and np.all(np.abs(x64) < 1e15)
        r = ref_forward(name, a, kw, m, x64) if finite else None
        if name == "Dropout":
            if not train or m.p == 0.0:
                assert np.array_equal(y, x64.astype(np.float32), equal_nan=True), "Dropout eval changed x"
            else:
                scale = np.float32(1.0 / (1.0 - m.p)) if m.p < 1 else np.float32(0)
                ok = (y == 0) | (y == x64.astype(np.float32) * scale) | np.isnan(y)
                assert ok.all(), "Dropout output is neither 0 nor x / (1 - p)"
        elif name == "Flatten":
            assert y.size == x64.size and np.array_equal(y.reshape(-1), x64.astype(np.float32).reshape(-1),
                                                         equal_nan=True), "Flatten changed values"
        elif r is not None:
            if name in ("Softmax", "LogSoftmax") and x64.ndim == 0:
                pass
            else:
                if r.shape != y.shape:
                    raise AssertionError(f"{name}: output shape {y.shape}, expected {r.shape}")
                tol = 1e-5 * (1 + np.abs(r))
                if name in ("Linear", "Fused", "Residual", "Concat"):
                    tol = tol + 1e-5 * np.sqrt(max(a[0], 1)) * (1 + np.abs(x64).max(initial=0))
                if name == "BatchNorm1d":  # float32 mean and variance: x - mean cancels
                    axes = (0,) if x64.ndim == 2 else (0, 2)
                    spread = np.abs(x64).max(axis=axes, keepdims=True) / np.sqrt(
                        x64.var(axis=axes, keepdims=True) + m.eps)
                    w_abs = np.abs(_f32(m.weight.data)).reshape((1, -1) + (1,) * (x64.ndim - 2)) \
                        if m.affine else 1.0
                    tol = tol * 10 + 1e-4 + 16 * np.finfo(np.float32).eps * spread * w_abs
                assert_close(f"nn.{name} forward", y, r, 0.0, tol)
        if twice:
            x2 = NP.standard_normal(x64.shape).astype(np.float32)
            y2 = m(x2)
        # gradients of normal size (the ops campaign covers extreme values)
        g = NP.standard_normal(y.shape).astype(np.float32) if R.random() < 0.8 else \
            np.ones(y.shape, np.float32)
        params = list(m.parameters())
        for p in params:
            p.grad.fill(0.0)
        if twice:
            g2 = NP.standard_normal(np.shape(y2)).astype(np.float32)
            m.backward(g2)
        dx = m.backward(g)
        if name in ("Linear", "Fused", "Residual", "Concat", "Identity") and finite and \
                np.all(np.isfinite(g)) and np.all(np.abs(g) < 1e15):
            # the parameter gradients of the first call, plus the second's when twice
            if name in ("Linear", "Residual", "Fused"):
                lin = m if name == "Linear" else (list(m.children())[0] if name != "Fused" else m[0])
                gz = _f32(g)
                if name == "Fused":
                    z = x64 @ _f32(lin.weight.data).T + _f32(lin.bias.data)
                    act = m[1].epilogue
                    with np.errstate(all="ignore"):
                        if act == "relu":
                            gz = np.where(z > 0, gz, 0.0)
                        elif act in ("gelu", "gelu_tanh"):
                            gz = ref.gelu_backward(gz, z, "tanh" if act == "gelu_tanh" else "none")
                        elif act == "sigmoid":
                            s = ref.sigmoid(z)
                            gz = gz * s * (1 - s)
                        else:
                            gz = gz * (1 - np.tanh(z) ** 2)
                n_in = x64.shape[-1]
                gw = gz.reshape(-1, gz.shape[-1]).T @ x64.reshape(-1, n_in)
                dref = gz @ _f32(lin.weight.data)
                if name == "Residual":
                    dref = dref + _f32(g)
                if twice:
                    x2_64 = _f32(x2)
                    g2z = _f32(g2)
                    if name == "Fused":
                        gw = None  # the second call's activation: not recomputed here
                    else:
                        gw = gw + g2z.reshape(-1, g2z.shape[-1]).T @ x2_64.reshape(-1, n_in)
                scale = 1e-5 * (1 + np.abs(gz).max(initial=0)) * (1 + np.abs(x64).max(initial=0)) * \
                    max(1, x64.size // max(n_in, 1))
                if gw is not None:
                    assert_close(f"nn.{name} weight.grad", lin.weight.grad, gw, 1e-4, scale + 1e-6)
                assert_close(f"nn.{name} input grad", dx, dref, 1e-4,
                             1e-5 * (1 + np.abs(gz).max(initial=0)) * (1 + np.abs(_f32(lin.weight.data)).max()) * max(n_in, 1) ** 0.5 + 1e-6)
        elif name in ("ReLU", "Sigmoid", "Tanh", "SiLU", "GELU", "LeakyReLU") and finite and \
                np.all(np.isfinite(g)) and np.all(np.abs(g) < 1e15):
            op = {"ReLU": "relu_backward", "Sigmoid": "sigmoid_backward", "Tanh": "tanh_backward",
                  "SiLU": "silu_backward", "GELU": "gelu_backward", "LeakyReLU": "leaky_relu_backward"}[name]
            second = _f32(y_first) if name in ("Sigmoid", "Tanh") else x64
            opts = {"negative_slope": getattr(m, "negative_slope", 0.01),
                    "approximate": getattr(m, "approximate", "none")}
            if name == "ReLU":
                second = x64
            dref = _ref_unary_backward(op, _f32(g), second, opts)
            assert_close(f"nn.{name} input grad", dx, dref, 2e-5, 1e-6 * (1 + np.abs(g).max(initial=0)))
        elif name == "Flatten":
            assert np.shape(dx) == x64.shape, f"Flatten backward shape {np.shape(dx)}"
        elif name == "BatchNorm1d" and finite and np.all(np.isfinite(g)) and np.all(np.abs(g) < 1e15):
            axes = (0,) if x64.ndim == 2 else (0, 2)
            shape = (1, -1) if x64.ndim == 2 else (1, -1, 1)
            if train or not m.track_running_stats:
                mean, var = x64.mean(axis=axes), x64.var(axis=axes)
                inv = 1 / np.sqrt(var + m.eps)
                xhat = (x64 - mean.reshape(shape)) * inv.reshape(shape)
                w = _f32(m.weight.data) if m.affine else np.ones(m.num_features)
                n = x64.size / m.num_features
                g64 = _f32(g)
                dref = (w * inv / n).reshape(shape) * (n * g64 - g64.sum(axis=axes).reshape(shape)
                                                      - xhat * (g64 * xhat).sum(axis=axes).reshape(shape))
                assert_close("nn.BatchNorm1d input grad", dx, dref, 1e-3,
                             1e-3 * (1 + np.abs(g64).max()) * (1 + np.abs(w).max() * inv.max()))
        return y

    def module_call():
        name, a, kw, valid = ctor()
        m = None
        if valid:
            try:
                m = build(name, a, kw)
            except fuzzing.ALLOWED:
                pass
        if m is None:
            return module_forward_backward, [R.randrange(1 << 32), name, a, kw, valid, A.f32((2, 3)), False, True, False], {}
        x, xv = input_for(name, a, m)
        twice = R.random() < 0.25 and name in ("Linear", "Residual") and xv
        return module_forward_backward, [R.randrange(1 << 32), name, a, kw, valid, x, xv, R.random() < 0.7, twice], {}

    LOSSES = ["CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss", "L1Loss", "HuberLoss"]

    @scenario
    def loss_call(name, kw, pred, target, valid):
        try:
            fn = getattr(nn, name)(**kw)
        except fuzzing.ALLOWED:
            assert not valid, f"nn.{name}(**{kw!r}) raised for valid options"
            return None
        try:
            loss = fn(pred, target)
        except fuzzing.ALLOWED as e:
            if valid:
                raise AssertionError(f"nn.{name} raised {type(e).__name__} for a valid call: {e}") from None
            return None
        assert isinstance(loss, float), f"{name} returned {type(loss).__name__}, not float"
        grad = fn.backward()
        assert isinstance(grad, np.ndarray) and grad.dtype == np.float32 and \
            grad.shape == np.shape(pred), f"{name} gradient {fuzzing.describe(grad)}"
        if not valid:
            return loss
        p, red = _f32(pred), kw.get("reduction", "mean")
        if not np.all(np.isfinite(p)) or np.any(np.abs(p) > 1e15):
            return loss
        with np.errstate(all="ignore"):
            if name == "CrossEntropyLoss":
                lab = np.asarray(target).astype(np.int64)
                ign = kw.get("ignore_index", -100)
                rl, rg = _ref_cross_entropy(p, lab, kw.get("label_smoothing", 0.0), ign)
                cnt = int((lab != ign).sum())
            else:
                t = _f32(target)
                d = p - t
                n = max(d.size, 1)
                cnt = d.size
                if name == "MSELoss":
                    rl, rg = (d * d).mean(), 2 * d / n
                elif name == "BCEWithLogitsLoss":
                    rl = (np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))).mean()
                    rg = (ref.sigmoid(p) - t) / n
                elif name == "L1Loss":
                    # torch's l1 gradient is 0 at a NaN difference, not sign(NaN)
                    rl, rg = np.abs(d).mean(), np.where(np.isnan(d), 0.0, np.sign(d)) / n
                else:
                    dl = kw.get("delta", 1.0)
                    a_ = np.abs(d)
                    rl = np.where(a_ <= dl, 0.5 * d * d, dl * (a_ - 0.5 * dl)).mean()
                    rg = np.where(a_ <= dl, d, dl * np.sign(d)) / n
            if not cnt:
                rl = np.nan
            if red == "sum":
                rl, rg = (rl * cnt, rg * cnt) if cnt else (0.0, np.zeros_like(rg))
        scale = 1.0 + np.abs(p).max(initial=0) * (cnt if red == "sum" else 1)
        assert_close(f"nn.{name} loss", np.float64(loss), rl, 1e-4, 1e-5 * scale)
        assert_close(f"nn.{name} grad", grad, rg, 1e-4,
                     1e-5 * (1 + np.abs(p).max(initial=0)) * (1 if red == "sum" else 1.0 / max(1, cnt)) + 1e-12)
        return loss

    def loss_maker():
        name = R.choice(LOSSES)
        valid = R.random() < 0.85
        kw = {}
        if R.random() < 0.4:
            kw["reduction"] = R.choice(["mean", "sum"]) if valid else R.choice(["avg", "None", None, 1])
        N, C = R.choice([0, 1, 4, 33]), R.choice([1, 3, 10])
        if name == "CrossEntropyLoss":
            if R.random() < 0.3:
                kw["label_smoothing"] = R.choice([0.0, 0.1, 1.0])
            if R.random() < 0.3:
                kw["ignore_index"] = R.choice([-100, 0])
            shp = R.choice([(N, C), (N, C, 3)])
            pred = R.choice(INPUT_LAYOUTS)(shp)
            target = NP.integers(0, C, shp[:1] + shp[2:])
            if not valid and R.random() < 0.5:
                target = R.choice([target + C, target.astype(np.float32), "abc", target[:-1]])
        else:
            if name == "HuberLoss" and R.random() < 0.4:
                kw["delta"] = R.choice([0.5, 1.0, 2.0]) if valid else R.choice([0.0, -1.0, "a", None])
            shp = R.choice([(N,), (N, C), (2, 3, 4)])
            pred = R.choice(INPUT_LAYOUTS)(shp)
            target = A.f32(shp) if name != "BCEWithLogitsLoss" else NP.random(shp).astype(np.float32)
            if not valid and R.random() < 0.5:
                target = R.choice([A.f32((N + 1,)), "abc", None])
        return loss_call, [R.randrange(1 << 32), name, kw, pred, target, valid], {}

    @scenario
    def state_dict_round_trip(name, a, kw, corrupt):
        """load m's state_dict into a second m: same outputs; a corrupted one is
        rejected with ValueError/TypeError (strict) and leaves the module as it was"""
        m, m2 = build(name, a, kw), build(name, a, kw)
        for mm in (m, m2):
            mm.eval()
        sd = m.state_dict()
        if corrupt is None:
            res = m2.load_state_dict(sd)
            n = in_features(name, a, m) or 4
            x = A.f32((3, n))
            y1, y2 = m(x), m2(x)
            assert np.array_equal(y1, y2, equal_nan=True), "state_dict round trip changed outputs"
            return res
        kind, key = corrupt
        keys = list(sd)
        if not keys:
            return None
        key = keys[key % len(keys)]
        bad = dict(sd)
        if kind == "missing":
            del bad[key]
        elif kind == "extra":
            bad[key + "_extra"] = np.zeros(3, np.float32)
        elif kind == "shape":
            bad[key] = np.zeros(np.shape(sd[key]) + (2,), np.float32)
        elif kind == "junk":
            bad[key] = R.choice(["abc", None, object(), [[1, 2], [3]], {"a": 1}, 1j,
                                 np.array(["a"]), np.zeros(np.shape(sd[key]), complex)])
        elif kind == "not_a_dict":
            bad = R.choice([None, 3, "abc", [1, 2], [("a", 1)]])
        before = {k: np.array(v, copy=True) for k, v in m2.state_dict().items()}
        try:
            m2.load_state_dict(bad)
        except fuzzing.ALLOWED:
            after = m2.state_dict()
            for k, v in before.items():
                assert np.array_equal(after[k], v, equal_nan=True), \
                    f"a rejected load_state_dict ({kind} {key}) changed {k}"
            return None
        if kind in ("missing", "extra", "shape", "not_a_dict"):
            raise AssertionError(f"load_state_dict accepted a state dict with a {kind} entry {key!r}")
        return None

    def round_trip_maker():
        while True:
            name, a, kw, valid = ctor()
            if valid and name in ("Linear", "BatchNorm1d", "Fused", "Residual", "Concat"):
                break
        corrupt = None if R.random() < 0.4 else (
            R.choice(["missing", "extra", "shape", "junk", "not_a_dict"]), R.randrange(10))
        return state_dict_round_trip, [R.randrange(1 << 32), name, a, kw, corrupt], {}

    INITS = ["uniform_", "normal_", "constant_", "zeros_", "ones_", "xavier_uniform_",
             "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"]
    ODD = [float("nan"), float("inf"), -float("inf"), "a", None, [1.0], 1j, 10**400, -1.0, 1e39]

    @scenario
    def init_call(name, shape, target, options, valid):
        """nn.init.NAME on a Parameter or a float32 array (or junk): filled in place,
        returned, values as documented"""
        arr = {"param": None, "array": np.zeros(shape, np.float32),
               "readonly": np.zeros(shape, np.float32), "float64": np.zeros(shape),
               "list": [0.0] * 3}[target]
        if target == "readonly":
            arr.flags.writeable = False
        t = nn.Parameter(np.zeros(shape, np.float32)) if target == "param" else arr
        try:
            out = getattr(nn.init, name)(t, **options)
        except fuzzing.ALLOWED as e:
            if valid is True and target in ("param", "array") and not (
                    name.startswith(("xavier", "kaiming")) and len(shape) < 2):
                raise AssertionError(f"nn.init.{name} raised {type(e).__name__} for a valid "
                                     f"call: {e}") from None
            return None
        if valid is False or target not in ("param", "array"):
            raise AssertionError(f"nn.init.{name}({target}, **{options!r}) was accepted")
        if valid is None:
            return None  # an extreme number or None: taken or refused, either is fine
        assert out is t, f"nn.init.{name} did not return its tensor"
        data = t.data if target == "param" else t
        assert data.shape == tuple(shape) and data.dtype == np.float32
        if name == "uniform_":
            lo, hi = options.get("a", 0.0), options.get("b", 1.0)
            assert np.all((data >= np.float32(min(lo, hi))) & (data <= np.float32(max(lo, hi)))), \
                f"uniform_({lo}, {hi}) outside its range"
        elif name in ("constant_", "zeros_", "ones_"):
            v = {"zeros_": 0.0, "ones_": 1.0}.get(name, options.get("val"))
            assert np.all(data == np.float32(v)), f"{name} did not fill {v}"
        elif name in ("xavier_uniform_", "kaiming_uniform_"):
            fan_in = shape[1] * int(np.prod(shape[2:])) if len(shape) > 1 else 0
            fan_out = shape[0] * int(np.prod(shape[2:])) if len(shape) > 1 else 0
            if name == "xavier_uniform_":
                bound = options.get("gain", 1.0) * math.sqrt(6.0 / max(fan_in + fan_out, 1))
            else:
                fan = fan_in if options.get("mode", "fan_in") == "fan_in" else fan_out
                a = options.get("a", 0.0)
                bound = math.sqrt(3.0) * math.sqrt(2.0 / (1 + a * a)) / math.sqrt(max(fan, 1))
            assert np.all(np.abs(data) <= np.float32(bound) * (1 + 1e-6)), f"{name} beyond its bound"
        return None

    def init_maker():
        name = R.choice(INITS)
        shape = R.choice([(3, 4), (5,), (), (2, 3, 4), (0, 3), (16, 8)])
        valid = R.random() < 0.7
        o = {}
        if name == "uniform_":
            o = {"a": R.choice([-1.0, 0.0, 0.5]), "b": R.choice([1.0, 3.0])}
        elif name == "normal_":
            o = {"mean": R.choice([0.0, 5.0]), "std": R.choice([0.0, 1.0, 0.02])}
        elif name == "constant_":
            o = {"val": R.choice([0.0, -2.5, 7.0])}
        elif name.startswith("xavier"):
            o = {"gain": R.choice([1.0, 0.5, 2.0])}
        elif name.startswith("kaiming"):
            o = {"a": R.choice([0.0, 0.01, math.sqrt(5)]), "mode": R.choice(["fan_in", "fan_out"])}
        if not valid:
            if o:
                key = R.choice(list(o))
                bad = R.choice(ODD + (["fan_middle"] if key == "mode" else []))
                o[key] = bad
                # the wrong type, a negative std, an unknown mode: refused; an extreme number
                # (or None): taken or refused, either is fine, but never an OverflowError
                refused = (isinstance(bad, (str, complex)) or (key == "std" and bad == -1.0)
                           or key == "mode")
                valid = False if refused else None
            else:
                valid = True
        target = R.choice(["param", "param", "array", "readonly", "float64", "list"])
        return init_call, [R.randrange(1 << 32), name, shape, target, o, valid], {}

    @scenario
    def clip_call(kind, shapes, max_value, norm_type, valid):
        """clip_grad_norm_ / clip_grad_value_ against NumPy"""
        ps = [nn.Parameter(np.zeros(s, np.float32)) for s in shapes]
        for p in ps:
            p.grad[...] = NP.standard_normal(p.shape) * R.choice([1.0, 10.0, 1e-3])
        g0 = [p.grad.astype(np.float64) for p in ps]
        try:
            if kind == "norm":
                total = nn.utils.clip_grad_norm_(ps, max_value, norm_type=norm_type)
            else:
                total = nn.utils.clip_grad_value_(ps, max_value)
        except fuzzing.ALLOWED as e:
            if valid:
                raise AssertionError(f"clip_grad_{kind}_ raised {type(e).__name__} for a valid "
                                     f"call: {e}") from None
            return None
        if not valid:
            raise AssertionError(f"clip_grad_{kind}_(max={max_value!r}, norm_type={norm_type!r}) "
                                 "was accepted")
        flat = np.concatenate([g.reshape(-1) for g in g0]) if g0 else np.zeros(0)
        if kind == "norm":
            want = (np.abs(flat).max(initial=0.0) if norm_type == float("inf")
                    else (np.abs(flat) ** norm_type).sum() ** (1.0 / norm_type))
            assert abs(total - want) <= 1e-5 * (1 + want), f"total norm {total}, NumPy {want}"
            coef = min(1.0, max_value / (want + 1e-6))
            for p, g in zip(ps, g0):
                assert_close("clip_grad_norm_ grad", p.grad, g * coef, 1e-5, 1e-7)
        else:
            for p, g in zip(ps, g0):
                assert np.array_equal(p.grad, np.clip(g, -max_value, max_value).astype(np.float32)), \
                    "clip_grad_value_ differs from np.clip"
        return total

    def clip_maker():
        kind = R.choice(["norm", "value"])
        shapes = [R.choice([(3, 4), (5,), (), (0,), (100,)]) for _ in range(R.randrange(0, 4))]
        valid = R.random() < 0.8
        mv = R.choice([0.1, 1.0, 10.0]) if valid else R.choice([-1.0, "a", None, [1.0], 1j, 10**400]
                                                               if kind == "norm" else ["a", None, 1j, 10**400])
        nt = R.choice([1.0, 2.0, 3.0, float("inf")]) if valid or R.random() < 0.5 else \
            R.choice([0.0, -1.0, "a", None])
        if not valid and isinstance(mv, float) and mv >= 0 and kind == "norm" and \
                isinstance(nt, float) and nt > 0:
            valid = True
        return clip_call, [R.randrange(1 << 32), kind, shapes, mv, nt, valid], {}

    return [module_call] * 5 + [loss_maker] * 2 + [round_trip_maker, init_maker, clip_maker]


def optim_calls(R, NP):
    """Makers of fastnn.optim calls: constructors, steps against torch.optim's formulas
    in float64, state_dict round trips, corrupted state dicts, bad options."""
    import reference as ref
    from fastnn import nn, optim

    A = fuzzing.Arrays(R, NP)
    CLASSES = ["SGD", "Adam", "AdamW", "RMSprop"]
    scenario = scenario_for(R, NP)

    def options(cls, valid=True):
        o = {"lr": R.choice([1e-3, 0.01, 0.1, 1.0])}
        if cls == "SGD":
            o["momentum"] = R.choice([0.0, 0.9])
            o["dampening"] = R.choice([0.0, 0.1]) if R.random() < 0.3 else 0.0
            o["nesterov"] = o["momentum"] > 0 and o["dampening"] == 0 and R.random() < 0.5
            o["weight_decay"] = R.choice([0.0, 1e-2])
        elif cls in ("Adam", "AdamW"):
            o["betas"] = (R.choice([0.0, 0.5, 0.9]), R.choice([0.0, 0.9, 0.999]))
            o["eps"] = R.choice([1e-8, 1e-3])
            o["weight_decay"] = R.choice([0.0, 1e-2])
            o["amsgrad"] = R.random() < 0.3
        else:
            o["alpha"] = R.choice([0.0, 0.9, 0.99])
            o["eps"] = R.choice([1e-8, 1e-3])
            o["weight_decay"] = R.choice([0.0, 1e-2])
            o["momentum"] = R.choice([0.0, 0.9])
            o["centered"] = R.random() < 0.3
            if o["centered"] and o["alpha"] == 0.0:  # NaN from sqrt(rounding < 0), in torch too
                o["alpha"] = 0.9
        if not valid:  # a bad value for an option (not the flags, which take any truth value)
            key = R.choice([k for k in o if k not in ("nesterov", "amsgrad", "centered")])
            o[key] = R.choice([-1.0, float("nan"), float("inf"), "0.1", None, 1j, [0.1], 10**400,
                               (0.9,), (1.0, 0.999), (0.9, 1.5)] if key == "betas" else
                              [-1.0, float("nan"), float("inf"), "0.1", None, 1j, [0.1], 10**400])
        return o

    def shapes():
        return [R.choice([(3, 4), (5,), (0,), (), (1, 1), (70000,), (2, 3, 4)])
                for _ in range(R.randrange(1, 5))]

    def ref_step(cls, o, p, g, st, step):
        """one float64 step of torch.optim's cls on p (in place), state st (dict)"""
        if cls == "SGD":
            if o["momentum"]:
                first = "buf" not in st
                st.setdefault("buf", np.zeros_like(p))
                ref.sgd_step(p, g, st["buf"], o["lr"], o["momentum"], o["dampening"],
                             o["nesterov"], o["weight_decay"], first)
            else:
                ref.sgd_step(p, g, None, o["lr"], 0.0, o["dampening"], False, o["weight_decay"])
        elif cls in ("Adam", "AdamW"):
            for k in ("m", "v", "mx"):
                st.setdefault(k, np.zeros_like(p))
            ref.adam_step(p, g, st["m"], st["v"], step, o["lr"], o["betas"][0], o["betas"][1],
                          o["eps"], o["weight_decay"], cls == "AdamW", st["mx"] if o["amsgrad"] else None)
        else:
            for k in ("sq", "ga", "mb"):
                st.setdefault(k, np.zeros_like(p))
            ref.rmsprop_step(p, g, st["sq"], o["lr"], o["alpha"], o["eps"], o["weight_decay"],
                             o["momentum"], st["ga"] if o["centered"] else None, st["mb"])

    @scenario
    def steps(cls, o, shps, frozen, n_steps, groups, use_model, values):
        """n_steps steps with random gradients against the float64 reference, then a
        state_dict round trip into a fresh optimizer: both continue bit for bit"""
        if use_model:
            model = nn.Sequential(*[nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)])
            params = list(model.parameters())
            if use_model == 2:
                model.flat_buffer()
        else:
            params = [nn.Parameter(NP.standard_normal(s).astype(np.float32) if values == "normal"
                                   else A.f32(s)) for s in shps]
        if values == "normal" and use_model:
            for p in params:
                p.data[...] = NP.standard_normal(p.shape)
        for p, f in zip(params, frozen):
            p.requires_grad = not f
        if groups and len(params) > 1:
            k = len(params) // 2
            arg = [{"params": params[:k]}, {"params": params[k:], "lr": o["lr"] / 2}]
        else:
            arg = params
        opt = getattr(optim, cls)(arg, **o)
        group_of = [0 if not (groups and len(params) > 1) or i < len(params) // 2 else 1
                    for i in range(len(params))]
        # each step against one float64 step of torch.optim's formula from the parameters and
        # state fastnn had before it (read through state_dict): the same check as the ops'
        # (_chk_optim), so float32 trajectories that drift apart over steps do not count
        op_name = {"SGD": "sgd_step", "Adam": "adam_step", "AdamW": "adam_step",
                   "RMSprop": "rmsprop_step"}[cls]
        names = {"momentum_buffer": "momentum_buf", "exp_avg": "exp_avg",
                 "exp_avg_sq": "exp_avg_sq", "max_exp_avg_sq": "max_exp_avg_sq",
                 "square_avg": "square_avg", "grad_avg": "grad_avg"}
        counts = [0] * len(params)
        for _ in range(n_steps):
            for i, p in enumerate(params):
                p.grad[...] = A.f32(p.shape) if values == "special" else NP.standard_normal(p.shape)
            before = [(p.data.copy(), p.grad.copy()) for p in params]
            st0 = opt.state_dict()["state"]
            opt.step()
            st1 = opt.state_dict()["state"]
            for i, p in enumerate(params):
                if not p.requires_grad:
                    assert np.array_equal(p.data, before[i][0], equal_nan=True), \
                        f"{cls}: a frozen parameter moved"
                    continue
                counts[i] += 1
                if values != "normal":
                    continue  # extreme values: survival and the round trip below only
                g = opt.param_groups[group_of[i]]
                args = {"param": before[i][0], "grad": before[i][1], "lr": g["lr"],
                        "weight_decay": g["weight_decay"]}
                if cls == "SGD":
                    args.update(momentum=g["momentum"], dampening=g["dampening"],
                                nesterov=g["nesterov"], first_step=counts[i] == 1,
                                momentum_buf=np.zeros_like(before[i][0]) if g["momentum"] else None)
                elif op_name == "adam_step":
                    args.update(step=counts[i], beta1=g["betas"][0], beta2=g["betas"][1],
                                eps=g["eps"], decoupled=cls == "AdamW", exp_avg=np.zeros_like(before[i][0]),
                                exp_avg_sq=np.zeros_like(before[i][0]),
                                max_exp_avg_sq=np.zeros_like(before[i][0]) if g["amsgrad"] else None)
                else:
                    z = np.zeros_like(before[i][0])
                    args.update(alpha=g["alpha"], eps=g["eps"], momentum=g["momentum"],
                                square_avg=z, grad_avg=z.copy() if g["centered"] else None,
                                momentum_buf=z.copy() if g["momentum"] > 0 else None)
                live = dict(args, param=p.data)
                for k, v in st0.get(i, {}).items():
                    if k in names and args.get(names[k]) is not None:
                        args[names[k]] = np.asarray(v, np.float32)
                for k, v in st1.get(i, {}).items():
                    if k in names and args.get(names[k]) is not None:
                        live[names[k]] = np.asarray(v, np.float32)
                _chk_optim(op_name, args, None, live)
        # state_dict round trip: a second optimizer on copies continues identically
        sd = opt.state_dict()
        copies = [nn.Parameter(p.data.copy(), requires_grad=p.requires_grad) for p in params]
        arg2 = ([{"params": copies[:len(params) // 2]}, {"params": copies[len(params) // 2:]}]
                if groups and len(params) > 1 else copies)
        opt2 = getattr(optim, cls)(arg2, **o)
        opt2.load_state_dict(sd)
        for p, c in zip(params, copies):
            g = A.f32(p.shape)
            p.grad[...] = g
            c.grad[...] = g
        opt.step()
        opt2.step()
        for i, (p, c) in enumerate(zip(params, copies)):
            assert np.array_equal(p.data, c.data, equal_nan=True), \
                f"{cls}: after load_state_dict the next step differs (parameter {i})"
        return sd

    def steps_maker():
        cls = R.choice(CLASSES)
        o = options(cls)
        use_model = R.choice([0, 0, 0, 1, 2])
        shps = shapes() if not use_model else [None] * 4
        frozen = [R.random() < 0.15 for _ in shps]
        return steps, [R.randrange(1 << 32), cls, o, shps, frozen, R.choice([1, 2, 5]), R.random() < 0.3, use_model,
                       R.choice(["normal", "normal", "special"])], {}

    @scenario
    def construct(cls, params_kind, o):
        ps = [nn.Parameter(A.f32(s)) for s in [(3,), (2, 2)]]
        arg = {"list": ps, "empty": [], "one": ps[0], "dup": [ps[0], ps[0]],
               "arrays": [np.zeros(3, np.float32)], "groups": [{"params": ps[:1]}, {"params": ps[1:], "lr": -1.0}],
               "overlap": [{"params": ps}, {"params": ps[:1]}], "junk": 3, "none": None,
               "generator": (p for p in ps), "group_no_params": [{"lr": 0.1}]}[params_kind]
        valid_options = "bad" not in o
        o = {k: v for k, v in o.items() if k != "bad"}
        try:
            opt = getattr(optim, cls)(arg, **o)
        except fuzzing.ALLOWED:
            if params_kind in ("list", "generator") and valid_options:
                raise AssertionError(f"optim.{cls}({params_kind}, **{o!r}) raised for valid arguments")
            return None
        if params_kind not in ("list", "generator") or not valid_options:
            raise AssertionError(f"optim.{cls} accepted params={params_kind} options={o!r}")
        for p in ps:
            p.grad[...] = 1.0
        opt.step()
        return None

    def construct_maker():
        cls = R.choice(CLASSES)
        valid = R.random() < 0.6
        o = options(cls, valid)
        if not valid:
            o["bad"] = True
        return construct, [R.randrange(1 << 32), cls, R.choice(["list", "list", "empty", "one", "dup", "arrays", "groups",
                                          "overlap", "junk", "none", "generator", "group_no_params"]), o], {}

    @scenario
    def bad_state(cls, o, kind):
        """a corrupted state_dict is rejected (ValueError/TypeError) and changes nothing"""
        ps = [nn.Parameter(A.f32(s)) for s in [(3,), (2, 2)]]
        opt = getattr(optim, cls)(ps, **o)
        for p in ps:
            p.grad[...] = A.f32(p.shape)
        opt.step()
        sd = opt.state_dict()
        bad = {"state": {k: dict(v) for k, v in sd["state"].items()},
               "param_groups": [dict(g) for g in sd["param_groups"]]}
        if kind in ("shape", "junk_state", "step") and 0 not in bad["state"]:
            return None  # no entry to corrupt (SGD without momentum keeps none, as torch)
        st0 = bad["state"].get(0, {})
        names = [k for k in st0 if k != "step"]
        if kind == "shape" and names:
            st0[names[0]] = np.zeros(7, np.float32)
        elif kind == "junk_state" and names:
            st0[names[0]] = R.choice(["abc", None, object(), {"a": 1}, np.array(["x"])])
        elif kind == "step":
            st0["step"] = R.choice(["abc", None, -1, float("nan"), [1], 1e300])
        elif kind == "groups":
            bad["param_groups"] = bad["param_groups"] * 2
        elif kind == "params":
            bad["param_groups"][0]["params"] = [0]
        elif kind == "option":
            bad["param_groups"][0]["lr"] = R.choice([-1.0, float("nan"), "a", None])
        elif kind == "missing":
            del bad["state"]
        elif kind == "not_a_dict":
            bad = R.choice([None, 3, "abc", [1]])
        else:
            return None
        before = opt.state_dict()
        try:
            opt.load_state_dict(bad)
        except fuzzing.ALLOWED:
            after = opt.state_dict()
            assert after["param_groups"] == before["param_groups"], "a rejected load changed options"
            for k, v in before["state"].items():
                for n, arr in v.items():
                    assert np.array_equal(np.asarray(after["state"][k][n]), np.asarray(arr),
                                          equal_nan=True), \
                        f"a rejected load_state_dict ({kind}) changed state {k}.{n}"
            opt.step()  # still usable
            return None
        if kind in ("shape", "groups", "params", "option", "missing", "not_a_dict"):
            raise AssertionError(f"optim.{cls}.load_state_dict accepted a state dict with bad {kind}")
        if kind == "step" and not isinstance(st0.get("step"), (int, float)):
            raise AssertionError(f"load_state_dict accepted step={st0.get('step')!r}")
        opt.step()
        return None

    def bad_state_maker():
        cls = R.choice(CLASSES)
        return bad_state, [R.randrange(1 << 32), cls, options(cls), R.choice(["shape", "junk_state", "step", "groups",
                                                        "params", "option", "missing",
                                                        "not_a_dict"])], {}

    @scenario
    def bad_option_later(cls, o, key, value):
        """an option set to a bad value after construction: step raises, nothing moves"""
        ps = [nn.Parameter(A.f32((4,)))]
        opt = getattr(optim, cls)(ps, **o)
        ps[0].grad[...] = 1.0
        before = ps[0].data.copy()
        opt.param_groups[0][key] = value
        try:
            opt.step()
        except fuzzing.ALLOWED:
            assert np.array_equal(ps[0].data, before, equal_nan=True), \
                "a rejected step moved the parameter"
            return None
        raise AssertionError(f"optim.{cls}.step ran with {key}={value!r}")

    def bad_option_maker():
        cls = R.choice(CLASSES)
        o = options(cls)
        key = R.choice([k for k in o if k not in ("nesterov", "amsgrad", "centered")])
        bad = R.choice([-1.0, float("nan"), "0.1", None, [0.1]] if key != "betas"
                       else [(0.9,), (1.0, 0.9), (0.9, float("nan")), None, "ab"])
        return bad_option_later, [R.randrange(1 << 32), cls, o, key, bad], {}

    return [steps_maker] * 4 + [construct_maker] * 2 + [bad_state_maker] * 2 + [bad_option_maker]


def plant(spec):
    """Self-test (tests/test_campaigns.py): make fastnn.ops.NAME misbehave, KIND one of
    wrong (a result off by 1e-3), raise (RuntimeError), crash (abort), hang (sleep)."""
    import signal
    from fastnn import ops

    kind, name = spec.split(":")
    real = getattr(ops, name)

    def bad(*args, **kw):
        res = real(*args, **kw)
        if kind == "wrong" and isinstance(res, np.ndarray) and res.size:
            res.reshape(-1)[0] += np.float32(1e-3) * (1 + abs(res.reshape(-1)[0]))
        elif kind == "raise":
            raise RuntimeError("planted")
        elif kind == "crash":
            os.kill(os.getpid(), signal.SIGABRT)
        elif kind == "hang":
            time.sleep(3600)
        return res
    bad.__name__ = bad.__qualname__ = name
    setattr(ops, name, bad)


def child():
    seed, calls, verbose, R, NP = fuzzing.start()
    # the float64 references are IEEE arithmetic: compare kernels with denormals kept (the
    # default flush-to-zero reads and writes values below 1.2e-38 as 0 by design; that mode
    # is tested in tests/test_pool.py and tests/test_activations.py)
    import fastnn
    fastnn.set_flush_denormal(False)
    if os.environ.get("FASTNN_CAMPAIGN_PLANT"):
        plant(os.environ["FASTNN_CAMPAIGN_PLANT"])
    families = os.environ.get("FASTNN_CAMPAIGN_FAMILIES", ",".join(FAMILIES)).split(",")
    makers = []
    if "ops" in families:
        makers += fuzzing.ops_calls(R, NP)
    if "gemm" in families:
        makers += fuzzing.gemm_calls(R, NP) * 2
    if "valid" in families:
        makers += valid_calls(R, NP)
    if "nn" in families:
        makers += nn_calls(R, NP) * 2
    if "optim" in families:
        makers += optim_calls(R, NP) * 2
    fuzzing.run(makers, check_reference, calls, verbose, R)


# =============================================================================
# parent side
# =============================================================================

# Findings reported and not fixed yet (docs/hardening.md has each with its reproducer):
# shown under "known" and not failing the run, unless --strict. Remove an entry with its fix.
KNOWN = {}  # none open: F1-F6 (docs/hardening.md) are fixed or documented behaviour


def known_tag(finding):
    """the KNOWN entry a finding is an instance of, or None"""
    m = re.search(r"KNOWN\[(\w+)\]", finding.get("error", ""))
    if m:
        return m.group(1)
    return None


def signature(finding):
    """findings that are the same bug: the function and the error without numbers"""
    err = re.sub(r"0x[0-9a-f]+|[-+]?\d+(\.\d+)?(e[-+]?\d+)?|\(.*?\)", "#", finding.get("error", ""))
    return f"{finding.get('fn')}: {err[:160]}"


def batch_seed(seed, k):
    return seed * 1_000_003 + k


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="time bound (default 60)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--calls", type=int, default=1500, help="calls per batch (default 1500)")
    ap.add_argument("--timeout", type=float, default=240.0, help="one batch's bound, seconds")
    ap.add_argument("--families", default=",".join(FAMILIES),
                    help=f"comma-separated subset of {','.join(FAMILIES)}")
    ap.add_argument("--replay", metavar="SEED:BATCH:INDEX",
                    help="make only call INDEX of batch BATCH of seed SEED, printing it")
    ap.add_argument("--json", help="write the findings to this file")
    ap.add_argument("-q", "--quiet", action="store_true", help="no line per batch")
    ap.add_argument("--strict", action="store_true",
                    help="known findings (KNOWN, reported, not fixed yet) fail the run too")
    args = ap.parse_args(argv)
    bad = set(args.families.split(",")) - set(FAMILIES)
    if bad:
        ap.error(f"unknown families {sorted(bad)}")
    os.environ["FASTNN_CAMPAIGN_FAMILIES"] = args.families
    if args.replay:
        seed, batch, index = (int(v) for v in args.replay.split(":"))
        proc = fuzzing.run_child(CHILD, batch_seed(seed, batch), index + 1, verbose=True,
                                 timeout=args.timeout, only=index, path=[HERE])
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr)
        return 0 if proc.returncode == 0 else 1

    t0 = time.monotonic()
    deadline = t0 + args.seconds
    findings, problems, calls, batches, per_batch = {}, [], 0, 0, None
    known, known_first = {}, {}
    while True:
        left = deadline - time.monotonic()
        if batches and (left <= 0 or (per_batch and left < 0.5 * per_batch)):
            break
        n = args.calls
        if per_batch and left < per_batch:  # a shorter last batch that fits
            n = max(50, int(args.calls * left / per_batch))
        bs = batch_seed(args.seed, batches)
        out = fuzzing.probe(CHILD, bs, n, timeout=args.timeout, path=[HERE])
        batches += 1
        calls += n
        per_batch = out.seconds * args.calls / n
        if not args.quiet:
            print(f"batch {batches - 1} (seed {bs}): {n} calls, {out.status}, "
                  f"{len(out.findings)} findings, {out.seconds:.1f}s", flush=True)
        for f in out.findings:
            f["replay"] = f"{args.seed}:{batches - 1}:{f['index']}"
            tag = known_tag(f)
            if tag:
                known[tag] = known.get(tag, 0) + 1
                known_first.setdefault(tag, f)
                continue
            sig = signature(f)
            entry = findings.setdefault(sig, {"count": 0, "first": f})
            entry["count"] += 1
        if out.status in ("crashed", "hung") or (out.status == "failed" and not out.findings):
            problems.append({"batch": batches - 1, "seed": bs, "status": out.status,
                             "last_calls": out.last_calls, "detail": out.detail[-3000:]})
    elapsed = time.monotonic() - t0
    print(f"\nfuzz campaign: seed {args.seed}, {batches} batches, {calls} calls, {elapsed:.0f}s; "
          f"{len(findings)} distinct new findings, {sum(known.values())} instances of "
          f"{len(known)} known ones, {len(problems)} crashed/hung/failed batches")
    for tag, n in sorted(known.items()):
        f = known_first[tag]
        print(f"\n[known {tag} x{n}] {KNOWN[tag]}\n  e.g. {f['call']}\n  -> {f['error'][:300]}\n"
              f"  replay: python tools/fuzz_campaign.py --families {args.families} --replay {f['replay']}")
    for p in problems:
        print(f"\n[{p['status']}] batch {p['batch']} (seed {p['seed']}); last calls:\n  "
              + "\n  ".join(p["last_calls"]) + "\n" + p["detail"])
    for sig, e in sorted(findings.items(), key=lambda kv: -kv[1]["count"]):
        f = e["first"]
        print(f"\n[finding x{e['count']}] {sig}\n  {f['call']}\n  -> {f['error']}\n"
              f"  at {f.get('where', '')}; replay: python tools/fuzz_campaign.py "
              f"--families {args.families} --replay {f['replay']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"seed": args.seed, "batches": batches, "calls": calls, "seconds": elapsed,
                       "problems": problems, "known": known,
                       "findings": [dict(e["first"], count=e["count"], signature=s)
                                    for s, e in findings.items()]}, fh, indent=1)
    ok = not findings and not problems and not (args.strict and known)
    print("fuzz campaign: " + ("ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
