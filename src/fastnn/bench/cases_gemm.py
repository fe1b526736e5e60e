"""GEMM cases: fastnn.ops.matmul / linear against NumPy's ``@`` (its BLAS:
OpenBLAS in the NumPy wheels) and torch.matmul / torch.bmm / F.linear.

With C (M, N) = op(A) (M, K) @ op(B) (K, N), batched over `batch`:

    square       A (n, n) @ B (n, n), n = 32 ... 2048
    mlp_forward  x (64, 784) @ W (256, 784)^T      fastnn matmul(x, W, trans_b=True)
    mlp_dX       dY (64, 256) @ W (256, 784)       the two backward products
    mlp_dW       dY (64, 256)^T @ X (64, 784)      fastnn matmul(dY, X, trans_a=True)
    im2col       tall-skinny convolution-as-GEMM shapes
    attn_qk      Q (32, 128, 32) @ K (32, 128, 32)^T per batch (attention scores);
                 NumPy q @ k.transpose(0, 2, 1), torch.bmm
    linear_relu  relu(x @ W^T + b): fastnn linear(..., activation="relu"),
                 NumPy np.maximum(x @ W.T + b, 0), torch F.relu(F.linear(x, W, b))

Transposed operands are NumPy / torch views (``.T``), made once outside the
timed call, so every library sees the same memory layout. Inputs: A ~ N(0, 1)
and B ~ N(0, 1/K), so C is O(1) for any K and one tolerance fits every case.
Throughput is GFLOP/s = 2 M N K batch / time.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Dict, Optional

from .core import Case, Op, normal, wanted_ops

SQUARE_SIZES = (32, 64, 128, 256, 512, 1024, 2048)
QUICK_SKIP = ("square/2048",)   # --quick leaves these out (like the 16M element-wise sizes)

# float32 dot products of length <= 2048 in different summation orders, C ~ N(0, 1):
# the differences are ~1e-6; a wrong layout or a missed element gives O(1) errors
RTOL, ATOL = 1e-5, 3e-5


@dataclasses.dataclass(frozen=True)
class GemmOp(Op):
    describe: Optional[Callable] = None   # (batch, m, n, k) -> the table's shape text


@dataclasses.dataclass(frozen=True)
class GemmCase(Case):
    """A GEMM case; shape is (batch, M, N, K)."""

    @property
    def elements(self) -> int:
        batch, m, n, _ = self.shape
        return batch * m * n

    @property
    def flops(self) -> int:
        batch, m, n, k = self.shape
        return 2 * batch * m * n * k

    @property
    def shape_text(self) -> str:
        return self.op.describe(*self.shape)


# --------------------------------------------------------------------------- #
# matmul: C = op(A) @ op(B)
# --------------------------------------------------------------------------- #

def _stored_shapes(shape, ta, tb):
    """Shapes of A and B as stored (before the transposes)."""
    batch, m, n, k = shape
    sa = (k, m) if ta else (m, k)
    sb = (n, k) if tb else (k, n)
    if batch > 1:
        sa, sb = (batch,) + sa, (batch,) + sb
    return sa, sb


def _t(x):
    """Transpose of the last two axes (a view, for NumPy and torch alike)."""
    return x.swapaxes(-2, -1) if hasattr(x, "swapaxes") else x.transpose(-2, -1)


def _matmul_op(name: str, ta=False, tb=False, names=("a", "b"), torch_bmm=False, note=""):
    an, bn = names

    def make_inputs(rng, shape):
        sa, sb = _stored_shapes(shape, ta, tb)
        return {an: normal(rng, sa), bn: normal(rng, sb, 1.0 / math.sqrt(shape[3]))}

    def describe(batch, m, n, k):
        sa, sb = _stored_shapes((1, m, n, k), ta, tb)
        text = (f"({sa[0]},{sa[1]}){'^T' if ta else ''} @ "
                f"({sb[0]},{sb[1]}){'^T' if tb else ''}")
        return f"{batch}x {text}" if batch > 1 else text

    def fastnn_impl(inputs):
        from fastnn.ops import matmul
        a, b = inputs[an], inputs[bn]
        return lambda: matmul(a, b, trans_a=ta, trans_b=tb)

    def numpy_impl(inputs):
        a = _t(inputs[an]) if ta else inputs[an]
        b = _t(inputs[bn]) if tb else inputs[bn]
        return lambda: a @ b

    def torch_impl(inputs):
        import torch
        a, b = torch.from_numpy(inputs[an]), torch.from_numpy(inputs[bn])
        a = a.transpose(-2, -1) if ta else a
        b = b.transpose(-2, -1) if tb else b
        f = torch.bmm if torch_bmm else torch.matmul
        return lambda: f(a, b)

    return GemmOp(name, make_inputs, {"fastnn": fastnn_impl, "numpy": numpy_impl,
                                      "torch": torch_impl},
                  rtol=RTOL, atol=ATOL, note=note, describe=describe)


# --------------------------------------------------------------------------- #
# linear + relu: relu(x @ W^T + b)
# --------------------------------------------------------------------------- #

def _linear_inputs(rng, shape):
    _, m, n, k = shape
    return {"x": normal(rng, (m, k)), "w": normal(rng, (n, k), 1.0 / math.sqrt(k)),
            "b": normal(rng, (n,), 0.5)}


def _fn_linear_relu(inputs):
    from fastnn.ops import linear
    x, w, b = inputs["x"], inputs["w"], inputs["b"]
    return lambda: linear(x, w, b, activation="relu")


def _np_linear_relu(inputs):
    import numpy as np
    x, w, b = inputs["x"], inputs["w"], inputs["b"]
    wt = w.T

    def in_place():
        o = x @ wt
        o += b
        return np.maximum(o, np.float32(0), out=o)

    return {"np.maximum(x @ w.T + b, 0)": lambda: np.maximum(x @ wt + b, np.float32(0)),
            "o = x @ w.T; o += b; np.maximum(o, 0, out=o)": in_place}


def _th_linear_relu(inputs):
    import torch
    import torch.nn.functional as F
    x, w, b = (torch.from_numpy(inputs[k]) for k in ("x", "w", "b"))
    return {"F.relu(F.linear(x, w, b))": lambda: F.relu(F.linear(x, w, b)),
            "F.linear(x, w, b).relu_()": lambda: F.linear(x, w, b).relu_()}


def _linear_relu_op():
    def describe(batch, m, n, k):
        return f"({m},{k}) @ ({n},{k})^T + b"
    return GemmOp("linear_relu", _linear_inputs,
                  {"fastnn": _fn_linear_relu, "numpy": _np_linear_relu,
                   "torch": _th_linear_relu},
                  rtol=RTOL, atol=ATOL, describe=describe,
                  note="linear_relu: GFLOP/s counts the 2 M N K of the product only "
                       "(bias and relu are fused in fastnn, separate passes in NumPy)")


# --------------------------------------------------------------------------- #
# The case table
# --------------------------------------------------------------------------- #

def _gemm_ops() -> Dict[str, GemmOp]:
    ops = [
        _matmul_op("square"),
        _matmul_op("mlp_forward", tb=True, names=("x", "w")),
        _matmul_op("mlp_dX", names=("dy", "w")),
        _matmul_op("mlp_dW", ta=True, names=("dy", "x")),
        _matmul_op("im2col", names=("cols", "w")),
        _matmul_op("attn_qk", tb=True, names=("q", "k"), torch_bmm=True),
        _linear_relu_op(),
    ]
    return {op.name: op for op in ops}


GEMM_OPS = _gemm_ops()
GEMM_OP_NAMES = tuple(GEMM_OPS)

# (op, (batch, M, N, K)) in table order
GEMM_SHAPES = (
    [("square", (1, n, n, n)) for n in SQUARE_SIZES]
    + [("mlp_forward", (1, 64, 256, 784)),      # x (64, 784) @ W (256, 784)^T
       ("mlp_dX", (1, 64, 784, 256)),           # dY (64, 256) @ W (256, 784)
       ("mlp_dW", (1, 256, 784, 64)),           # dY (64, 256)^T @ X (64, 784)
       ("im2col", (1, 3136, 64, 576)),
       ("im2col", (1, 12544, 32, 27)),
       ("im2col", (1, 784, 128, 1152)),
       ("attn_qk", (32, 128, 128, 32)),         # Q (32, 128, 32) @ K (32, 128, 32)^T
       ("linear_relu", (1, 64, 256, 784)),
       ("linear_relu", (1, 256, 1024, 1024))]
)


def _size_text(name, shape):
    batch, m, n, k = shape
    if name == "square":
        return str(m)
    return (f"{batch}x" if batch > 1 else "") + f"{m}x{n}x{k}"


def build_gemm_cases(ops=None, quick: bool = False) -> list:
    """The GEMM case table (ids like "square/512", "mlp_forward/64x256x784":
    [batch x] M x N x K); `ops` (names) keeps only those ops, `quick` leaves
    out the largest square size."""
    wanted = wanted_ops(GEMM_OP_NAMES, ops, "GEMM")
    cases = [GemmCase(GEMM_OPS[name], _size_text(name, shape), shape)
             for name, shape in GEMM_SHAPES if name in wanted]
    if quick:
        cases = [c for c in cases if c.id not in QUICK_SKIP]
    return cases
