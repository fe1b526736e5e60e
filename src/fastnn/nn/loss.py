"""Loss modules, constructed and called as torch.nn's (the same names, constructor
arguments, forward arguments and reductions).

``loss = loss_fn(input, target)`` returns a float for reduction="mean" (the
default) or "sum", or the array of per-element losses for "none", and keeps the
gradient; ``loss_fn.backward(grad_out=1.0)`` returns d loss / d input times
grad_out (a float, or an array shaped like the losses for "none"). A loss of two
differentiated inputs returns a tuple: MarginRankingLoss and CosineEmbeddingLoss
(grad_input1, grad_input2), GaussianNLLLoss (grad_input, grad_var) with grad_var
None for a float var. Targets are not differentiated.

Each loss is one fused C kernel (loss and gradient in one pass, csrc/losses.c)
through fastnn.ops. Class weights (weight, pos_weight) are buffers, so they are
in state_dict under torch's keys; the legacy size_average / reduce arguments map
to a reduction as torch's do (with its deprecation warning).
"""
from __future__ import annotations

import warnings

import numpy as np

from fastnn import ops
from fastnn._args import check_choice, check_int, check_real
from fastnn.nn.module import Module, Stateless, to_float32

REDUCTIONS = ("none", "mean", "sum")


def legacy_reduction(size_average, reduce) -> str:
    """torch's mapping of the deprecated size_average / reduce to a reduction."""
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    reduction = "mean" if size_average and reduce else ("sum" if reduce else "none")
    warnings.warn(f"size_average and reduce are deprecated: use reduction='{reduction}'",
                  UserWarning, stacklevel=4)
    return reduction


class _Loss(Module):
    """The reduction contract every loss shares: forward hands ops' (loss, grad...)
    to _keep; backward scales the kept gradients by grad_out."""

    reductions = REDUCTIONS
    # the constructor's options besides reduction (and the weight buffers): what
    # get_config stores and the repr shows
    options: tuple = ()

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        if size_average is not None or reduce is not None:
            reduction = legacy_reduction(size_average, reduce)
        self.reduction = check_choice(reduction, "reduction", self.reductions)

    def _keep(self, result: tuple, class_axis=None, reduce_to=None):
        """result = (loss, grad, ...) from fastnn.ops; keep the gradients and return
        loss. For reduction="none", class_axis is the input axis the losses lack
        (the class axis of CrossEntropyLoss), over which grad_out broadcasts, and
        reduce_to the shape the last gradient is summed to after scaling (a var
        shared along an axis); None when the shapes agree."""
        loss, *grads = result
        terms_shape = np.shape(loss) if self.reduction == "none" else None
        self._save(grads, terms_shape, class_axis, reduce_to)
        return loss

    def backward(self, grad_out=1.0, input_grad: bool = True):
        """d loss / d input of the last call times grad_out: a float for "mean" and
        "sum"; for "none" a float or an array shaped like the losses."""
        grads, terms_shape, class_axis, reduce_to = self._saved()
        if terms_shape is None:
            scale = to_float32(grad_out, "grad_out")
            if scale.shape != ():
                raise ValueError(f"grad_out must be a float for reduction="
                                 f"'{self.reduction}', got shape {scale.shape}")
            out = [g if g is None or scale == 1.0 else np.asarray(g * np.float32(scale))
                   for g in grads]
        else:
            out = self._scale_terms(grads, grad_out, terms_shape, class_axis, reduce_to)
        return out[0] if len(out) == 1 else tuple(out)

    @staticmethod
    def _scale_terms(grads, grad_out, terms_shape, class_axis, reduce_to) -> list:
        g = to_float32(grad_out, "grad_out")
        if g.shape not in ((), terms_shape):
            raise ValueError(f"grad_out must be a float or have the losses' shape "
                             f"{terms_shape} (reduction='none'), got {g.shape}")
        if g.ndim and class_axis is not None:
            g = np.expand_dims(g, class_axis)
        out = [None if d is None else np.asarray(d * g, dtype=np.float32) for d in grads]
        if reduce_to is not None and out[-1] is not None:
            out[-1] = sum_to_shape(out[-1], reduce_to)
        return out

    def get_config(self) -> dict:
        return {"reduction": self.reduction, **{name: getattr(self, name) for name in self.options}}

    def extra_repr(self) -> str:
        parts = [] if self.reduction == "mean" else [f"reduction='{self.reduction}'"]
        return ", ".join(parts + [f"{name}={getattr(self, name)}" for name in self.options])


def sum_to_shape(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """grad summed over the axes a broadcast array of `shape` was stretched along
    (shape may also lack grad's last axis)."""
    kept = shape if len(shape) == grad.ndim else tuple(shape) + (1,)
    axes = tuple(i for i, (a, b) in enumerate(zip(grad.shape, kept)) if a != b)
    return grad.sum(axis=axes, dtype=np.float64).astype(np.float32).reshape(shape)


def class_axis_of(input) -> int:
    """The class axis of a classification input: (C,) -> 0, (N, C, d...) -> 1."""
    return 0 if np.ndim(input) <= 1 else 1


def last_axis_of(input) -> int:
    return max(np.ndim(input) - 1, 0)


class _WeightedLoss(_Loss):
    """A loss with an optional weight buffer (torch's _WeightedLoss)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight_buffer(weight, "weight"))

    def get_config(self) -> dict:
        return {"weight": as_list(self.weight), **super().get_config()}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return buffer_shapes(config, ("weight",))


def weight_buffer(value, name: str):
    return None if value is None else to_float32(value, name).copy()


def buffer_shapes(config: dict, names) -> dict:
    """The state of a loss whose weight buffers come from its config (nested lists
    of numbers, or None for no buffer)."""
    state = {}
    for name in names:
        value = config.get(name)
        if value is None:
            continue
        try:
            array = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be null or a list of numbers, got {value!r}") from None
        state[name] = (array.shape, "F32")
    return state


def as_list(buffer):
    """A weight buffer as a JSON value for get_config (its exact float32 values)."""
    return None if buffer is None else buffer.tolist()


class _StatelessLoss(Stateless, _Loss):
    pass


# ---- element-wise losses of (input, target) ------------------------------------

class L1Loss(_StatelessLoss):
    """|input - target|; the gradient at a tie is 0, as torch's sign()."""

    def forward(self, input, target):
        return self._keep(ops.l1_loss(input, target, reduction=self.reduction))


class MSELoss(_StatelessLoss):
    """(input - target)**2."""

    def forward(self, input, target):
        return self._keep(ops.mse_loss(input, target, reduction=self.reduction))


class HuberLoss(_StatelessLoss):
    """d**2 / 2 where |d| < delta, else delta (|d| - delta / 2); d = input - target."""
    options = ("delta",)

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction)
        self.delta = check_real(delta, "delta", 0.0, low_open=True)

    def forward(self, input, target):
        return self._keep(ops.huber_loss(input, target, reduction=self.reduction,
                                         delta=self.delta))



class SmoothL1Loss(_StatelessLoss):
    """d**2 / (2 beta) where |d| < beta, else |d| - beta / 2; beta=0 is L1Loss."""
    options = ("beta",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean",
                 beta: float = 1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = check_real(beta, "beta", 0.0)

    def forward(self, input, target):
        return self._keep(ops.smooth_l1_loss(input, target, reduction=self.reduction,
                                             beta=self.beta))



class SoftMarginLoss(_StatelessLoss):
    """log(1 + exp(-target input)) for targets in {1, -1}."""

    def forward(self, input, target):
        return self._keep(ops.soft_margin_loss(input, target, reduction=self.reduction))


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities in [0, 1], each log clamped at -100."""

    def forward(self, input, target):
        return self._keep(ops.binary_cross_entropy(input, target, weight=self.weight,
                                                   reduction=self.reduction))


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy of sigmoid(input) computed stably from the logits;
    pos_weight (broadcast to the input, e.g. (C,)) weights the positive term."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight_buffer(weight, "weight"))
        self.register_buffer("pos_weight", weight_buffer(pos_weight, "pos_weight"))

    def forward(self, input, target):
        return self._keep(ops.binary_cross_entropy_with_logits(
            input, target, weight=self.weight, reduction=self.reduction,
            pos_weight=self.pos_weight))

    def get_config(self) -> dict:
        return {"weight": as_list(self.weight), **super().get_config(),
                "pos_weight": as_list(self.pos_weight)}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return buffer_shapes(config, ("weight", "pos_weight"))


class KLDivLoss(_StatelessLoss):
    """KL divergence of log-probabilities input against target (log-probabilities
    with log_target); reduction "batchmean" divides the sum by the batch size."""

    reductions = REDUCTIONS + ("batchmean",)
    options = ("log_target",)

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean",
                 log_target: bool = False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = bool(log_target)

    def forward(self, input, target):
        return self._keep(ops.kl_div(input, target, reduction=self.reduction,
                                     log_target=self.log_target))



class PoissonNLLLoss(_StatelessLoss):
    """exp(input) - target input (log_input), else input - target log(input + eps);
    full adds Stirling's approximation of log(target!)."""
    options = ("log_input", "full", "eps")

    def __init__(self, log_input: bool = True, full: bool = False, size_average=None,
                 eps: float = 1e-8, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.log_input, self.full = bool(log_input), bool(full)
        self.eps = check_real(eps, "eps")

    def forward(self, log_input, target):
        return self._keep(ops.poisson_nll_loss(log_input, target, log_input=self.log_input,
                                               full=self.full, eps=self.eps,
                                               reduction=self.reduction))



class GaussianNLLLoss(_StatelessLoss):
    """(log v + (input - target)**2 / v) / 2, v = max(var, eps), plus log(2 pi) / 2
    when full; var is a float, shaped like input, or has one axis of size 1 (a
    variance shared along it). backward returns (grad_input, grad_var)."""
    options = ("full", "eps")

    def __init__(self, *, full: bool = False, eps: float = 1e-6, reduction: str = "mean"):
        super().__init__(reduction=reduction)
        self.full = bool(full)
        self.eps = check_real(eps, "eps", 0.0, low_open=True)

    def forward(self, input, target, var):
        result = ops.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps,
                                       reduction=self.reduction)
        shared = (self.reduction == "none" and result[2] is not None
                  and np.shape(var) != np.shape(input))
        return self._keep(result, reduce_to=np.shape(var) if shared else None)


# ---- classification over a class axis ------------------------------------------

class CrossEntropyLoss(_WeightedLoss):
    """logits (C,), (N, C) or (N, C, d...) against class indices (int) or class
    probabilities (float, shaped like the logits), as torch."""
    options = ("ignore_index", "label_smoothing")

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100,
                 reduce=None, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = check_int(ignore_index, "ignore_index", None)
        self.label_smoothing = check_real(label_smoothing, "label_smoothing", 0.0, 1.0)

    def forward(self, input, target):
        return self._keep(ops.cross_entropy(input, target, weight=self.weight,
                                            ignore_index=self.ignore_index,
                                            reduction=self.reduction,
                                            label_smoothing=self.label_smoothing),
                          class_axis=class_axis_of(input))


class NLLLoss(_WeightedLoss):
    """Negative log likelihood of log-probabilities (C,), (N, C) or (N, C, d...)
    against class indices."""
    options = ("ignore_index",)

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100,
                 reduce=None, reduction: str = "mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = check_int(ignore_index, "ignore_index", None)

    def forward(self, input, target):
        return self._keep(ops.nll_loss(input, target, weight=self.weight,
                                       ignore_index=self.ignore_index,
                                       reduction=self.reduction),
                          class_axis=class_axis_of(input))


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """Per row of (N, C) or (C,) logits: the mean over classes of the binary
    cross-entropy of sigmoid(input) against 0/1 targets, weight (C,) per class."""

    def forward(self, input, target):
        return self._keep(ops.multilabel_soft_margin_loss(input, target, weight=self.weight,
                                                          reduction=self.reduction),
                          class_axis=last_axis_of(input))


# ---- losses of two differentiated inputs ---------------------------------------

class MarginRankingLoss(_StatelessLoss):
    """max(0, -target (input1 - input2) + margin); backward -> (grad_input1, grad_input2)."""
    options = ("margin",)

    def __init__(self, margin: float = 0.0, size_average=None, reduce=None,
                 reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = check_real(margin, "margin")

    def forward(self, input1, input2, target):
        return self._keep(ops.margin_ranking_loss(input1, input2, target, margin=self.margin,
                                                  reduction=self.reduction))


class CosineEmbeddingLoss(MarginRankingLoss):
    """1 - cos(input1, input2) where target is 1, max(0, cos - margin) where it is
    -1, per row of (N, D) or (D,); backward -> (grad_input1, grad_input2)."""

    def forward(self, input1, input2, target):
        return self._keep(ops.cosine_embedding_loss(input1, input2, target,
                                                    margin=self.margin,
                                                    reduction=self.reduction),
                          class_axis=last_axis_of(input1))
