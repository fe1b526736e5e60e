"""Pooling layers with PyTorch's signatures: MaxPool1d/2d, AvgPool1d/2d, AdaptiveAvgPool1d/2d,
AdaptiveMaxPool1d/2d over (N, C, L) / (N, C, H, W) or unbatched (C, L) / (C, H, W) inputs
(fastnn.ops' C kernels). The options are validated by the first forward, as in PyTorch; a
max pool with return_indices returns (out, indices) and its backward takes d out."""
from __future__ import annotations

from typing import Optional

import numpy as np

from fastnn import ops
from fastnn._args import check_bool, check_int
from fastnn.nn.module import Module, Stateless


def _size(value, name: str, nd: int, low: int, single: bool = False):
    """An int or a sequence of nd ints (kept as given; a list becomes a tuple, as
    fastnn.load gives lists back); single: AvgPool1d's one-tuples as torch's _single."""
    if isinstance(value, (tuple, list)):
        if len(value) not in (1, nd):
            raise ValueError(f"{name} must be an int or a tuple of {nd} ints, got {value!r}")
        return tuple(check_int(v, name, low) for v in value)
    v = check_int(value, name, low)
    return (v,) if single else v


def _output_size(value, nd: int):
    if isinstance(value, (tuple, list)):
        if len(value) != nd:
            raise ValueError(f"output_size must be an int or a tuple of {nd}, got {value!r}")
        return tuple(None if v is None else check_int(v, "output_size", 1) for v in value)
    if value is None and nd > 1:
        return (None,) * nd
    return check_int(value, "output_size", 1)


class _MaxPoolNd(Stateless, Module):
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        nd = self._nd
        self.kernel_size = _size(kernel_size, "kernel_size", nd, 1)
        self.stride = self.kernel_size if stride is None else _size(stride, "stride", nd, 1)
        self.padding = _size(padding, "padding", nd, 0)
        self.dilation = _size(dilation, "dilation", nd, 1)
        self.return_indices = check_bool(return_indices, "return_indices")
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode")

    def forward(self, input):
        x = input  # torch's name for the argument
        fn = ops.max_pool1d if self._nd == 1 else ops.max_pool2d
        out, indices = fn(x, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode, True)
        self._save(indices, (out.shape[:-self._nd] + _spatial(x, self._nd)))
        return (out, indices) if self.return_indices else out

    def backward(self, grad_out, input_grad: bool = True):
        indices, shape = self._saved()
        if not input_grad:
            return None
        fn = ops.max_pool1d_backward if self._nd == 1 else ops.max_pool2d_backward
        return fn(grad_out, indices, shape)

    def get_config(self) -> dict:
        return {"kernel_size": self.kernel_size, "stride": self.stride, "padding": self.padding,
                "dilation": self.dilation, "return_indices": self.return_indices,
                "ceil_mode": self.ceil_mode}

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


def _spatial(x, nd: int) -> tuple:
    """the last nd sizes of x (an array-like; ops has validated its rank)"""
    return tuple(np.shape(x)[-nd:])


class MaxPool1d(_MaxPoolNd):
    """Max over windows of (N, C, L) or (C, L)."""
    _nd = 1


class MaxPool2d(_MaxPoolNd):
    """Max over windows of (N, C, H, W) or (C, H, W); padding is -inf, at most kernel / 2."""
    _nd = 2


class _ShapePool(Stateless, Module):
    """A pool whose backward needs only the input shape: forward calls ops.<name> with
    _options(), backward ops.<name>_backward with the shape and _backward_options()."""
    _nd = 2
    _names = ("", "")  # the ops function for 1-D and 2-D

    def _op(self):
        return getattr(ops, self._names[self._nd - 1])

    def _backward_options(self):
        return self._options()

    def forward(self, input):
        out = self._op()(input, *self._options())
        self._save(out.shape[:-self._nd] + _spatial(input, self._nd))
        return out

    def backward(self, grad_out, input_grad: bool = True):
        shape, = self._saved()
        if not input_grad:
            return None
        fn = getattr(ops, self._names[self._nd - 1] + "_backward")
        return fn(grad_out, shape, *self._backward_options())


class _AvgPoolNd(_ShapePool):
    _names = ("avg_pool1d", "avg_pool2d")

    def _options(self):
        opts = (self.kernel_size, self.stride, self.padding, self.ceil_mode,
                self.count_include_pad)
        return opts + ((self.divisor_override,) if self._nd == 2 else ())

    def get_config(self) -> dict:
        config = {"kernel_size": self.kernel_size, "stride": self.stride,
                  "padding": self.padding, "ceil_mode": self.ceil_mode,
                  "count_include_pad": self.count_include_pad}
        if self._nd == 2:
            config["divisor_override"] = self.divisor_override
        return config

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """Mean over windows of (N, C, L) or (C, L)."""
    _nd = 1

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__()
        self.kernel_size = _size(kernel_size, "kernel_size", 1, 1, single=True)
        self.stride = self.kernel_size if stride is None else _size(stride, "stride", 1, 1, True)
        self.padding = _size(padding, "padding", 1, 0, single=True)
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode")
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad")


class AvgPool2d(_AvgPoolNd):
    """Mean over windows of (N, C, H, W) or (C, H, W): divided by divisor_override, else by
    the window's size with (count_include_pad, the default) or without the padding."""
    _nd = 2

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: Optional[int] = None):
        super().__init__()
        self.kernel_size = _size(kernel_size, "kernel_size", 2, 1)
        self.stride = self.kernel_size if stride is None else _size(stride, "stride", 2, 1)
        self.padding = _size(padding, "padding", 2, 0)
        self.ceil_mode = check_bool(ceil_mode, "ceil_mode")
        self.count_include_pad = check_bool(count_include_pad, "count_include_pad")
        self.divisor_override = (None if divisor_override is None
                                 else check_int(divisor_override, "divisor_override", 1))


class _AdaptiveAvgPoolNd(_ShapePool):
    _names = ("adaptive_avg_pool1d", "adaptive_avg_pool2d")

    def __init__(self, output_size):
        super().__init__()
        self.output_size = _output_size(output_size, self._nd)

    def _options(self):
        return (self.output_size,)

    def _backward_options(self):
        return ()

    def get_config(self) -> dict:
        return {"output_size": self.output_size}

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    """Mean over adaptive bins [floor(i*L/out), ceil((i+1)*L/out)) of (N, C, L) or (C, L)."""
    _nd = 1


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    """Mean over adaptive bins along H and W; output_size an int or (oh, ow), None keeping
    that axis."""
    _nd = 2


class _AdaptiveMaxPoolNd(Stateless, Module):
    _nd = 2

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size = _output_size(output_size, self._nd)
        self.return_indices = check_bool(return_indices, "return_indices")

    def forward(self, input):
        x = input  # torch's name for the argument
        fn = ops.adaptive_max_pool1d if self._nd == 1 else ops.adaptive_max_pool2d
        out, indices = fn(x, self.output_size, True)
        self._save(indices, out.shape[:-self._nd] + _spatial(x, self._nd))
        return (out, indices) if self.return_indices else out

    def backward(self, grad_out, input_grad: bool = True):
        indices, shape = self._saved()
        if not input_grad:
            return None
        fn = (ops.adaptive_max_pool1d_backward if self._nd == 1
              else ops.adaptive_max_pool2d_backward)
        return fn(grad_out, indices, shape)

    def get_config(self) -> dict:
        return {"output_size": self.output_size, "return_indices": self.return_indices}

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    """Max over adaptive bins of (N, C, L) or (C, L)."""
    _nd = 1


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """Max over adaptive bins along H and W; output_size as AdaptiveAvgPool2d's."""
    _nd = 2
