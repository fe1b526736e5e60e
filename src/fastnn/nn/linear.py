"""Linear (x @ weight.T + bias, on our SGEMM) and Identity."""
from __future__ import annotations

import math

import numpy as np

from fastnn import ops
from fastnn._args import check_int
from fastnn.nn import init
from fastnn.nn.module import Module, Stateless
from fastnn.nn.parameter import Parameter

# epilogues whose backward works from the layer's output (the others need their
# input, the pre-activation)
_FROM_OUTPUT = ("relu", "sigmoid", "tanh")


class Linear(Module):
    """y = x @ weight.T + bias; weight (out_features, in_features), bias
    (out_features,), initialised as PyTorch's (kaiming uniform, a = sqrt(5)).
    x is (..., in_features)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
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

    # the activations forward_fused applies in the GEMM epilogue (the list C
    # exposes): Sequential fuses a Linear with a following activation whose
    # `epilogue` is one of these
    epilogues = tuple(name for name in ops.ACTIVATIONS if name != "none")

    def forward(self, input):
        return self.forward_fused(input, None)

    def forward_fused(self, x, epilogue):
        """epilogue(x @ weight.T + bias) with the activation (None or one of
        `epilogues`) in the GEMM epilogue; backward() then goes through both."""
        d = self.__dict__
        bias = d["bias"]
        preactivation = None
        if epilogue is not None and epilogue not in _FROM_OUTPUT:  # filled from the same tiles
            preactivation = ops.empty(np.shape(x)[:-1] + (self.out_features,))
        # x is kept as given: ops.linear and ops.linear_backward both convert it
        y = ops.linear(x, d["weight"]._data, None if bias is None else bias._data, epilogue,
                       None, preactivation)
        self._save(x, epilogue, y if preactivation is None else None, preactivation)
        return y

    def backward(self, grad_out, input_grad: bool = True):
        """d/dx of this call (and of its fused activation); adds dW and db."""
        x, epilogue, y, preactivation = self._saved()
        d = self.__dict__
        weight, bias = d["weight"], d["bias"]
        return ops.linear_backward(
            grad_out, x, weight._data,
            weight._grad if weight.requires_grad else None,
            bias._grad if bias is not None and bias.requires_grad else None,
            input_grad, epilogue, y, preactivation)

    def get_config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_bool, config_int
        n_in, n_out = config_int(config, "in_features"), config_int(config, "out_features")
        state = {"weight": ((n_out, n_in), "F32")}
        if config_bool(config, "bias"):
            state["bias"] = ((n_out,), "F32")
        return state

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Identity(Stateless, Module):
    """Returns its input; arguments are accepted and ignored, as in PyTorch."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def get_config(self) -> dict:
        return {}

    def forward(self, input):
        return input

    def backward(self, grad_out, input_grad: bool = True):
        return grad_out if input_grad else None
