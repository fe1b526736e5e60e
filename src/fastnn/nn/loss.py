"""Loss modules: ``loss = loss_fn(pred, target)`` returns a float and keeps
the gradient, ``loss_fn.backward()`` returns d loss / d pred.

CrossEntropyLoss, MSELoss and BCEWithLogitsLoss run fused C kernels (loss
and gradient in one pass); L1Loss and HuberLoss are NumPy. reduction is
"mean" (default) or "sum".
"""
from __future__ import annotations


import numpy as np

from fastnn import ops
from fastnn._args import check_real
from fastnn.nn.module import Module, Stateless, to_float32


class _Loss(Stateless, Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def __call__(self, input, target) -> float:
        return self.forward(input, target)

    def _keep(self, loss: float, grad: np.ndarray, count: int) -> float:
        """Store the gradient of the mean over `count` terms (or of the sum)."""
        if self.reduction == "sum":  # an empty sum is 0 (the empty mean is NaN)
            loss, grad = (loss * count, grad * np.float32(count)) if count else (0.0, np.zeros_like(grad))
        self._save(np.asarray(grad))  # a 0-d prediction's gradient stays a 0-d array
        return float(loss)

    def backward(self, grad_out: float = 1.0, input_grad: bool = True):
        """d loss / d pred of the last call, times grad_out."""
        grad, = self._saved()
        return grad if grad_out == 1.0 else np.asarray(grad * np.float32(grad_out))

    def get_config(self) -> dict:
        return {"reduction": self.reduction}

    def extra_repr(self) -> str:
        return "" if self.reduction == "mean" else f"reduction='{self.reduction}'"


class CrossEntropyLoss(_Loss):
    """logits (N, C) or (N, C, d...) against int64 class indices, as PyTorch."""

    def __init__(self, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def get_config(self) -> dict:
        return {"ignore_index": self.ignore_index, "reduction": self.reduction,
                "label_smoothing": self.label_smoothing}

    def forward(self, input, target) -> float:
        loss, grad = ops.cross_entropy(input, target, label_smoothing=self.label_smoothing,
                                       ignore_index=self.ignore_index)
        count = (int(np.count_nonzero(np.asarray(target) != self.ignore_index))
                 if self.reduction == "sum" else 1)  # only a sum needs the count
        return self._keep(loss, grad, count)


class MSELoss(_Loss):
    def forward(self, input, target) -> float:
        loss, grad = ops.mse_loss(input, target)
        return self._keep(loss, grad, grad.size)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits (a stable sigmoid + BCE), targets in [0, 1]."""

    def forward(self, input, target) -> float:
        loss, grad = ops.binary_cross_entropy_with_logits(input, target)
        return self._keep(loss, grad, grad.size)


def _difference(input, target):
    p = to_float32(input, "input")
    t = to_float32(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"target must have the same shape as input {p.shape}, got {t.shape}")
    return p - t


class L1Loss(_Loss):
    """mean |pred - target|; the gradient at a tie is 0, as PyTorch's sign()."""

    def forward(self, input, target) -> float:
        d = _difference(input, target)
        n = max(d.size, 1)
        loss = float(np.abs(d, dtype=np.float64).sum()) / n if d.size else float("nan")
        return self._keep(loss, np.sign(d) / np.float32(n), d.size)


class HuberLoss(_Loss):
    """0.5 d^2 where |d| <= delta, else delta (|d| - 0.5 delta); d = pred - target."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction)
        self.delta = check_real(delta, "delta", 0.0, low_open=True)

    def forward(self, input, target) -> float:
        d = _difference(input, target)
        n = max(d.size, 1)
        a = np.abs(d)
        delta = np.float32(self.delta)
        small = a <= delta
        terms = np.where(small, 0.5 * d.astype(np.float64) ** 2,
                         self.delta * (a.astype(np.float64) - 0.5 * self.delta))
        loss = float(terms.sum()) / n if d.size else float("nan")
        grad = np.where(small, d, delta * np.sign(d)).astype(np.float32) / np.float32(n)
        return self._keep(loss, grad, d.size)

    def get_config(self) -> dict:
        return {"reduction": self.reduction, "delta": self.delta}

    def extra_repr(self) -> str:
        base = super().extra_repr()
        return f"{base + ', ' if base else ''}delta={self.delta}"
