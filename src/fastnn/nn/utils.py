"""Gradient clipping, as torch.nn.utils: clip_grad_norm_, clip_grad_value_."""
from __future__ import annotations

import math
import numbers
from typing import Iterable, List, Union

import numpy as np

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
    for name, v in (("max_norm", max_norm), ("norm_type", norm_type)):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{name} must be a real number, got {type(v).__name__}")
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"norm_type must be positive, got {norm_type}")
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
    if isinstance(clip_value, bool) or not isinstance(clip_value, numbers.Real):
        raise TypeError(f"clip_value must be a real number, got {type(clip_value).__name__}")
    v = np.float32(abs(float(clip_value)))
    for g in _grads(parameters):
        np.clip(g, -v, v, out=g)
