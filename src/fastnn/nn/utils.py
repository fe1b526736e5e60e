"""As torch.nn.utils: gradient clipping (clip_grad_norm_, clip_grad_value_) and
fuse_conv_bn_eval, a convolution with a following eval-mode BatchNorm folded into it."""
from __future__ import annotations

import math
from typing import Iterable, List, Union

import numpy as np

from fastnn._args import check_real
from fastnn.nn.parameter import Parameter

Params = Union[Parameter, Iterable[Parameter]]


def _grads(parameters: Params) -> List[np.ndarray]:
    params = [parameters] if isinstance(parameters, Parameter) else list(parameters)
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"parameters must be Parameters, got {type(p).__name__}")
    return [p.grad for p in params if p.requires_grad]


def clip_grad_norm_(parameters: Params, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale all gradients together so their joint norm is at most max_norm;
    returns the norm before clipping (inf norm with norm_type=float('inf'))."""
    grads = _grads(parameters)
    max_norm = check_real(max_norm, "max_norm", 0.0, finite=False)
    norm_type = check_real(norm_type, "norm_type", 0.0, low_open=True, finite=False)
    if not grads:
        return 0.0
    if math.isinf(norm_type):
        total = max(float(np.abs(g).max()) if g.size else 0.0 for g in grads)
    else:
        total = sum(float(np.sum(np.abs(g, dtype=np.float64) ** norm_type)) for g in grads)
        total = total ** (1.0 / norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is "
                           f"{total}; clipping would make them NaN")
    coef = float(max_norm) / (total + 1e-6)
    if coef < 1.0:
        for g in grads:
            g *= np.float32(coef)
    return total


def clip_grad_value_(parameters: Params, clip_value: float) -> None:
    """Clip every gradient element to [-clip_value, clip_value], in place."""
    v = np.float32(abs(check_real(clip_value, "clip_value", finite=False)))
    for g in _grads(parameters):
        np.clip(g, -v, v, out=g)


def fuse_conv_bn_eval(conv, bn, transpose: bool = False):
    """A copy of `conv` computing bn(conv(x)) with bn's running statistics, for
    inference (as torch.nn.utils.fuse_conv_bn_eval): weight * gamma / sqrt(var + eps)
    per output channel, bias (b - mean) * gamma / sqrt(var + eps) + beta. Both must be in
    eval mode; transpose=True for a ConvTranspose (output channels on weight's axis 1)."""
    import copy

    if conv.training or bn.training:
        raise ValueError("fuse_conv_bn_eval needs conv and bn in eval mode (call .eval())")
    weight, bias = bn.fold_into(conv.weight.data,
                                None if conv.bias is None else conv.bias.data,
                                axis=1 if transpose else 0)
    fused = copy.deepcopy(conv)
    fused.weight = Parameter(weight)
    fused.bias = Parameter(bias)
    return fused
