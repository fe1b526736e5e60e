"""Normalisations without running statistics, the same in training and eval.

- GroupNorm: the C channels of an (N, C, *) input in num_groups groups, each
  (sample, group) normalised with its own mean and biased variance, then a
  per-channel affine (fastnn.ops.group_norm / group_norm_backward).
- LayerNorm: each row over the trailing normalized_shape axes, then an
  element-wise affine of that shape (ops.layer_norm / layer_norm_backward).
- RMSNorm: each row divided by its root mean square (ops.rms_norm).
Forward keeps its input and the per-row (or per-group) statistics for backward:
the input must not be changed in place before backward."""
from __future__ import annotations

import numpy as np

from fastnn import ops
from fastnn._args import check_int, check_real
from fastnn.nn.parameter import Parameter, grad_buffer
from fastnn.nn.batchnorm import (add_affine, affine_backward_args, affine_state_shapes,
                                 check_device_dtype)
from fastnn.nn.module import Module, to_float32


class GroupNorm(Module):
    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, device=None, dtype=None, *, bias: bool = True):
        super().__init__()
        check_device_dtype(device, dtype)
        self.num_groups = check_int(num_groups, "num_groups", 1)
        self.num_channels = check_int(num_channels, "num_channels")
        if self.num_channels % self.num_groups != 0:
            raise ValueError(f"num_channels must be divisible by num_groups, got "
                             f"num_channels={self.num_channels}, num_groups={self.num_groups}")
        self.eps = check_real(eps, "eps", 0.0)
        self.affine = bool(affine)
        add_affine(self, self.num_channels, bias)

    def reset_parameters(self) -> None:
        if self.affine:
            self.weight.data[...] = 1.0
        if self.bias is not None:
            self.bias.data[...] = 0.0

    def forward(self, input):
        x = to_float32(input)
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}) expects input "
                             f"of shape (N, {self.num_channels}, *), got {x.shape}")
        weight = self.weight.data if self.affine else None
        bias = None if self.bias is None else self.bias.data
        y, mean, invstd = ops.group_norm(x, self.num_groups, weight, bias, self.eps,
                                         return_stats=True)
        self._save(x, mean, invstd)
        return y

    def backward(self, grad_out, input_grad: bool = True):
        x, mean, invstd = self._saved()
        args = affine_backward_args(self, grad_out, x, input_grad)
        if args is None:
            return None
        g, weight, gw, gb = args
        return ops.group_norm_backward(g, x, mean, invstd, self.num_groups, weight, input_grad,
                                       gw, gb)[0]

    def get_config(self) -> dict:
        return {"num_groups": self.num_groups, "num_channels": self.num_channels,
                "eps": self.eps, "affine": self.affine, "bias": self.bias is not None}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_int
        return affine_state_shapes(config, config_int(config, "num_channels"))

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


def _normalized_shape(normalized_shape) -> tuple:
    """torch's normalized_shape: an int or a sequence of positive ints, as a tuple."""
    if isinstance(normalized_shape, (int, np.integer)) and not isinstance(normalized_shape, bool):
        shape = (int(normalized_shape),)
    else:
        try:
            shape = tuple(check_int(n, "normalized_shape") for n in normalized_shape)
        except TypeError:
            raise TypeError(f"normalized_shape must be an int or a sequence of ints, got "
                            f"{normalized_shape!r}") from None
    if not shape or any(n < 1 for n in shape):
        raise ValueError(f"normalized_shape must be a non-empty shape of positive sizes, got "
                         f"{normalized_shape!r}")
    return shape


def _check_trailing(module, x) -> None:
    k = len(module.normalized_shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != module.normalized_shape:
        raise ValueError(f"{type(module).__name__}({module.normalized_shape}) expects input of "
                         f"shape (*, {', '.join(map(str, module.normalized_shape))}), got "
                         f"{x.shape}")



class LayerNorm(Module):
    """torch.nn.LayerNorm(normalized_shape, eps=1e-5, elementwise_affine=True,
    bias=True): y = (x - mean) / sqrt(var + eps) * weight + bias over the trailing
    normalized_shape axes; weight ones and bias zeros of normalized_shape."""

    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        check_device_dtype(device, dtype)
        self.normalized_shape = _normalized_shape(normalized_shape)
        self.eps = check_real(eps, "eps", 0.0)
        self.elementwise_affine = bool(elementwise_affine)
        affine = self.elementwise_affine
        self.register_parameter("weight", Parameter(np.ones(self.normalized_shape, np.float32))
                                if affine else None)
        self.register_parameter("bias", Parameter(np.zeros(self.normalized_shape, np.float32))
                                if affine and bias else None)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            self.weight.data[...] = 1.0
        if self.bias is not None:
            self.bias.data[...] = 0.0

    def _affine(self):
        return (None if self.weight is None else self.weight.data,
                None if self.bias is None else self.bias.data)

    def forward(self, input):
        x = to_float32(input)
        _check_trailing(self, x)
        weight, bias = self._affine()
        y, mean, rstd = ops.layer_norm(x, self.normalized_shape, weight, bias, self.eps,
                                       return_stats=True)
        self._save(x, mean, rstd)
        return y

    def forward_add(self, x, residual):
        """(x + residual, layer_norm(x + residual)) in one pass: a pre-LN block's
        residual stream and its next sub-layer's input. backward() then takes the
        gradient of the normalised output and adds it into grad_input."""
        x, residual = to_float32(x), to_float32(residual)
        _check_trailing(self, x)
        weight, bias = self._affine()
        s, y, mean, rstd = ops.add_layer_norm(x, residual, self.normalized_shape, weight, bias,
                                              self.eps, return_stats=True)
        self._save(s, mean, rstd)
        return s, y

    def backward(self, grad_out, input_grad: bool = True, grad_input=None):
        """d/dx of this call, added into grad_input when given (then returned)."""
        x, mean, rstd = self._saved()
        gw, gb = grad_buffer(self.weight), grad_buffer(self.bias)
        if not input_grad and gw is None and gb is None:
            return None
        return ops.layer_norm_backward(
            to_float32(grad_out, "grad_out"), x, mean, rstd, self.normalized_shape,
            None if self.weight is None else self.weight.data, input_grad, gw, gb,
            grad_input)[0]

    def get_config(self) -> dict:
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps,
                "elementwise_affine": self.elementwise_affine, "bias": self.bias is not None}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_bool
        shape = _normalized_shape(config.get("normalized_shape"))
        state = {}
        if config_bool(config, "elementwise_affine"):
            state["weight"] = (shape, "F32")
            if config_bool(config, "bias"):
                state["bias"] = (shape, "F32")
        return state

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class RMSNorm(Module):
    """torch.nn.RMSNorm(normalized_shape, eps=None, elementwise_affine=True):
    y = x / sqrt(mean(x^2) + eps) * weight over the trailing normalized_shape
    axes; eps None is float32's machine epsilon (torch's finfo(dtype).eps)."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine: bool = True,
                 device=None, dtype=None):
        super().__init__()
        check_device_dtype(device, dtype)
        self.normalized_shape = _normalized_shape(normalized_shape)
        self.eps = None if eps is None else check_real(eps, "eps", 0.0)
        self.elementwise_affine = bool(elementwise_affine)
        self.register_parameter("weight", Parameter(np.ones(self.normalized_shape, np.float32))
                                if self.elementwise_affine else None)

    def reset_parameters(self) -> None:
        if self.weight is not None:
            self.weight.data[...] = 1.0

    def forward(self, x):
        x = to_float32(x)
        _check_trailing(self, x)
        y, rstd = ops.rms_norm(x, self.normalized_shape,
                               None if self.weight is None else self.weight.data, self.eps,
                               return_stats=True)
        self._save(x, rstd)
        return y

    def backward(self, grad_out, input_grad: bool = True, grad_input=None):
        """d/dx of this call, added into grad_input when given (then returned)."""
        x, rstd = self._saved()
        gw = grad_buffer(self.weight)
        if not input_grad and gw is None:
            return None
        return ops.rms_norm_backward(
            to_float32(grad_out, "grad_out"), x, rstd, self.normalized_shape,
            None if self.weight is None else self.weight.data, input_grad, gw, grad_input)[0]

    def get_config(self) -> dict:
        return {"normalized_shape": list(self.normalized_shape), "eps": self.eps,
                "elementwise_affine": self.elementwise_affine}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_bool
        shape = _normalized_shape(config.get("normalized_shape"))
        return {"weight": (shape, "F32")} if config_bool(config, "elementwise_affine") else {}

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")
