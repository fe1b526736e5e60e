"""Weight initialisation, in place, with PyTorch's names and formulas.

Each function takes a Parameter (or a float32 ndarray), fills it from
fastnn's random stream (fastnn.manual_seed) and returns it:

    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
    nn.init.zeros_(layer.bias)

Fans follow PyTorch: for a (out, in, *kernel) weight, fan_in = in * prod(kernel)
and fan_out = out * prod(kernel).
"""
from __future__ import annotations

import math

import numpy as np

from fastnn._args import check_real
from fastnn.nn.parameter import Parameter
from fastnn.random import generator

__all__ = ["calculate_gain", "uniform_", "normal_", "constant_", "zeros_", "ones_",
           "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_"]


def _array(tensor) -> np.ndarray:
    arr = tensor.data if isinstance(tensor, Parameter) else tensor
    if not isinstance(arr, np.ndarray) or arr.dtype != np.float32:
        raise TypeError(f"tensor must be a Parameter or a float32 ndarray, got "
                        f"{type(tensor).__name__}")
    if not arr.flags.writeable:
        raise ValueError("tensor must be writeable")
    return arr


_F32_MAX = float(np.finfo(np.float32).max)


def _fill(tensor, values) -> object:
    arr = _array(tensor)
    arr[...] = values
    return tensor


def _check_float32(value: float, name: str) -> float:
    """value, if the float32 weights can hold it; ValueError naming it otherwise"""
    if abs(value) > _F32_MAX:
        raise ValueError(f"{name} must be within float32's range (|{name}| <= {_F32_MAX:.4g}), "
                         f"got {value!r}")
    return value


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for an activation, as torch.nn.init.calculate_gain."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
              "conv_transpose3d", "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if isinstance(param, bool) or not isinstance(param, (int, float, type(None))):
            # a ValueError, as torch's
            raise ValueError(f"negative_slope must be a real number, got {param!r}")
        slope = 0.01 if param is None else check_real(param, "negative_slope")
        return math.sqrt(2.0 / (1 + slope * slope))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _fans(arr: np.ndarray):
    if arr.ndim < 2:
        raise ValueError(f"fan in and fan out need a tensor with at least 2 dimensions, "
                         f"got shape {arr.shape}")
    receptive = int(np.prod(arr.shape[2:])) if arr.ndim > 2 else 1
    return arr.shape[1] * receptive, arr.shape[0] * receptive


def uniform_(tensor, a: float = 0.0, b: float = 1.0):
    arr = _array(tensor)
    a = _check_float32(check_real(a, "a"), "a")
    b = _check_float32(check_real(b, "b", low=a), "b")
    return _fill(tensor, generator().uniform(a, b, size=arr.shape))


def normal_(tensor, mean: float = 0.0, std: float = 1.0):
    arr = _array(tensor)
    mean = _check_float32(check_real(mean, "mean"), "mean")
    std = _check_float32(check_real(std, "std", low=0.0), "std")
    return _fill(tensor, generator().normal(mean, std, size=arr.shape))


def constant_(tensor, val: float):
    return _fill(tensor, check_real(val, "val", finite=False))


def zeros_(tensor):
    return _fill(tensor, 0.0)


def ones_(tensor):
    return _fill(tensor, 1.0)


def _xavier_scale(tensor, gain, factor: float) -> float:
    """gain * sqrt(factor / (fan_in + fan_out)): the bound (factor 6) or the std (factor 2)"""
    gain = check_real(gain, "gain", low=0.0)
    fan_in, fan_out = _fans(_array(tensor))
    scale = gain * math.sqrt(factor / (fan_in + fan_out)) if fan_in + fan_out else 0.0
    if scale > _F32_MAX:
        raise ValueError(f"gain must keep the weights within float32's range, got {gain!r} "
                         f"(a scale of {scale:.4g})")
    return scale


def xavier_uniform_(tensor, gain: float = 1.0):
    bound = _xavier_scale(tensor, gain, 6.0)
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain: float = 1.0):
    return normal_(tensor, 0.0, _xavier_scale(tensor, gain, 2.0))


def _kaiming_std(tensor, a, mode, nonlinearity) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    gain = calculate_gain(nonlinearity, a)  # its arguments checked for empty tensors too
    fan_in, fan_out = _fans(_array(tensor))
    fan = fan_in if mode == "fan_in" else fan_out
    return gain / math.sqrt(fan) if fan else 0.0


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "leaky_relu"):
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "leaky_relu"):
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity))
