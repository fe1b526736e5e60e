"""Linear (x @ weight.T + bias, on our SGEMM) and Identity."""
from __future__ import annotations

import math
import numbers

import numpy as np

from fastnn import ops
from fastnn.nn import init
from fastnn.nn.module import Module, saved, to_float32
from fastnn.nn.parameter import Parameter


def check_size(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


class Linear(Module):
    """y = x @ weight.T + bias; weight (out_features, in_features), bias
    (out_features,), initialised as PyTorch's (kaiming uniform, a = sqrt(5)).
    x is (..., in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = check_size(in_features, "in_features")
        self.out_features = check_size(out_features, "out_features")
        self.weight = Parameter(np.empty((self.out_features, self.in_features), np.float32))
        if bias:
            self.bias = Parameter(np.empty(self.out_features, np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return self.forward_activation(x, None)

    def forward_activation(self, x, activation):
        """activation(x @ weight.T + bias) with the activation fused into the GEMM
        epilogue (None, "relu", "sigmoid", "tanh"); Sequential uses it."""
        x = to_float32(x, "x")
        self.__dict__["_x"] = x
        bias = self.bias
        return ops.linear(x, self.weight.data, None if bias is None else bias.data,
                          activation=activation)

    def backward(self, grad_out, input_grad: bool = True):
        x = saved(self, "_x")
        g = to_float32(grad_out, "grad_out")
        if g.shape != x.shape[:-1] + (self.out_features,):
            raise ValueError(f"grad_out must have shape {x.shape[:-1] + (self.out_features,)} "
                             f"for the last input {x.shape}, got {g.shape}")
        g2 = g.reshape(-1, self.out_features)
        if self.weight.requires_grad:
            ops.matmul(g2, x.reshape(-1, self.in_features), trans_a=True, beta=1.0,
                       out=self.weight.grad)
        if self.bias is not None and self.bias.requires_grad:
            ops.linear_bias_grad(g2, out=self.bias.grad, accumulate=True)
        if not input_grad:
            return None
        return ops.matmul(g2, self.weight.data).reshape(x.shape)

    def get_config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None}

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Module):
    """Returns its input; arguments are accepted and ignored, as in PyTorch."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def get_config(self) -> dict:
        return {}

    def forward(self, x):
        return x

    def backward(self, grad_out, input_grad: bool = True):
        return grad_out if input_grad else None
