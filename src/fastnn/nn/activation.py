"""Activation modules on fastnn.ops kernels: ReLU, LeakyReLU, Sigmoid, Tanh,
GELU, SiLU, Softmax, LogSoftmax, ELU, SELU, CELU, Softplus, Mish, Hardswish,
Hardsigmoid, ReLU6, Hardtanh, Softsign, LogSigmoid, Tanhshrink, Softshrink,
Hardshrink, Threshold, Softmin, GLU, and PReLU (a learnable slope per channel).

Departures from torch, deliberate: Softsign gives +-1 at +-inf and Hardswish 0
at -inf (torch NaN); a backward mask gives 0 at a NaN input.

Each forward saves what its backward needs: the output for ReLU, Sigmoid,
Tanh and the softmaxes, the input for the others. An activation that a layer
can apply in its own epilogue names it in `epilogue` ("relu", "sigmoid",
"tanh", "gelu", "gelu_tanh", "silu", "mish", "hardswish", "selu", and "elu" for
alpha=1); Sequential then runs the pair as one call of the layer's
forward_fused (see containers.py).
"""
from __future__ import annotations

import inspect

import numpy as np

from fastnn import ops
from fastnn._args import check_choice, check_int, check_real
from fastnn.nn.module import Module, Stateless, to_float32
from fastnn.nn.parameter import Parameter


def _in_place_target(x, inplace: bool):
    """x itself as `out` when the caller asked for in-place and x can take it."""
    return x if inplace and x.flags.writeable else None


class _FromOutput(Stateless, Module):
    """An activation whose backward works from its output: forward_op(x) and
    backward_op(grad_out, y) name the ops."""
    forward_op = backward_op = None

    def get_config(self) -> dict:
        return {}

    def forward(self, input):
        y = type(self).forward_op(input)
        self._save(y)
        return y

    def backward(self, grad_out, input_grad: bool = True):
        y, = self._saved()
        return type(self).backward_op(grad_out, y) if input_grad else None


class _FromInput(Stateless, Module):
    """An activation whose backward works from its input: forward_op(x, **op_args())
    and backward_op(grad_out, x, **op_args())."""
    forward_op = backward_op = None

    def op_args(self) -> dict:
        return {}

    def get_config(self) -> dict:
        return self.op_args()

    def forward(self, input):
        x = to_float32(input)
        self._save(x)
        return type(self).forward_op(x, **self.op_args())

    def backward(self, grad_out, input_grad: bool = True):
        x, = self._saved()
        return type(self).backward_op(grad_out, x, **self.op_args()) if input_grad else None


class ReLU(_FromOutput):
    # y > 0 exactly where x > 0, so the output serves as backward's mask
    forward_op, backward_op = staticmethod(ops.relu), staticmethod(ops.relu_backward)
    epilogue = "relu"

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = bool(inplace)

    def get_config(self) -> dict:
        return {"inplace": self.inplace}

    def forward(self, input):
        x = to_float32(input)
        y = ops.relu(x, out=_in_place_target(x, self.inplace))
        self._save(y)
        return y

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Sigmoid(_FromOutput):
    forward_op, backward_op = staticmethod(ops.sigmoid), staticmethod(ops.sigmoid_backward)
    epilogue = "sigmoid"


class Tanh(_FromOutput):
    forward_op, backward_op = staticmethod(ops.tanh), staticmethod(ops.tanh_backward)
    epilogue = "tanh"


class LeakyReLU(_FromInput):
    forward_op = staticmethod(ops.leaky_relu)
    backward_op = staticmethod(ops.leaky_relu_backward)

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = check_real(negative_slope, "negative_slope")
        self.inplace = bool(inplace)

    def op_args(self) -> dict:
        return {"negative_slope": self.negative_slope}

    def get_config(self) -> dict:
        return {"negative_slope": self.negative_slope, "inplace": self.inplace}

    def forward(self, input):
        x = input  # torch's name for the argument
        if not self.inplace:
            return super().forward(x)
        x = to_float32(x)
        self._save(x.copy() if x.flags.writeable else x)
        return ops.leaky_relu(x, self.negative_slope, out=_in_place_target(x, True))

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class GELU(_FromInput):
    """GELU, exact (erf) by default or approximate="tanh", as PyTorch."""
    forward_op, backward_op = staticmethod(ops.gelu), staticmethod(ops.gelu_backward)

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = check_choice(approximate, "approximate", ("none", "tanh"))

    def op_args(self) -> dict:
        return {"approximate": self.approximate}

    @property
    def epilogue(self) -> str:
        return "gelu" if self.approximate == "none" else "gelu_tanh"

    def extra_repr(self) -> str:
        return f"approximate='{self.approximate}'"


class SiLU(_FromInput):
    forward_op, backward_op = staticmethod(ops.silu), staticmethod(ops.silu_backward)
    epilogue = "silu"


class _SoftmaxBase(Stateless, Module):
    log = False

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = check_int(dim, "dim", None)

    def forward(self, input):
        y = (ops.log_softmax if self.log else ops.softmax)(input, axis=self.dim)
        self._save(y)
        return y

    def backward(self, grad_out, input_grad: bool = True):
        y, = self._saved()
        if not input_grad:
            return None
        grad = ops.log_softmax_backward if self.log else ops.softmax_backward
        return grad(grad_out, y, axis=self.dim)

    def get_config(self) -> dict:
        return {"dim": self.dim}

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_SoftmaxBase):
    """softmax along `dim` (default -1, the last axis)."""


class LogSoftmax(_SoftmaxBase):
    """log_softmax along `dim` (default -1, the last axis)."""
    log = True


class _Elementwise(_FromInput):
    """An element-wise activation from its input with torch's options: `options`
    names the constructor's option arguments (in order) that go to the ops, and
    `inplace` (when torch has it) writes the output over the input."""
    options: tuple = ()
    has_inplace = False

    def __init__(self, *args, **kwargs):
        super().__init__()
        names = self.options + (("inplace",) if self.has_inplace else ())
        values = dict(zip(names, args))
        for name in kwargs:
            if name not in names or name in values:
                raise TypeError(f"{type(self).__name__}() got an unexpected or repeated "
                                f"argument {name!r}")
        values.update(kwargs)
        for name in names:
            value = values[name] if name in values else type(self).defaults[name]
            setattr(self, name, bool(value) if name == "inplace" else check_real(value, name))

    def op_args(self) -> dict:
        return {name: getattr(self, name) for name in self.options}

    def get_config(self) -> dict:
        config = self.op_args()
        if self.has_inplace:
            config["inplace"] = self.inplace
        return config

    def forward(self, input):
        if not (self.has_inplace and self.inplace):
            return super().forward(input)
        x = to_float32(input)
        self._save(x.copy() if x.flags.writeable else x)
        return type(self).forward_op(x, **self.op_args(), out=_in_place_target(x, True))

    def extra_repr(self) -> str:
        # torch prints the shrinks' lambd bare
        bare = type(self).__name__ in ("Softshrink", "Hardshrink")
        parts = [f"{getattr(self, name)}" if bare else f"{name}={getattr(self, name)}"
                 for name in self.options]
        if self.has_inplace and self.inplace:
            parts.append("inplace=True")
        return ", ".join(parts)


def _elementwise(name, op, options=(), defaults=None, inplace=False, doc="", epilogue=None):
    """An _Elementwise class whose constructor reads as torch's: (options..., inplace)
    with their defaults (the signature serialization and introspection see).
    epilogue: the epilogue name a layer fuses it as, or a function of the module
    giving that name or None (options the epilogue does not take)."""
    backward = getattr(ops, op.__name__ + "_backward")
    defaults = {**(defaults or {}), "inplace": False}
    names = options + (("inplace",) if inplace else ())
    signature = inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                                     default=defaults[n]) for n in names])
    return type(name, (_Elementwise,), {
        "__doc__": doc, "__module__": __name__, "__signature__": signature,
        "forward_op": staticmethod(op), "backward_op": staticmethod(backward),
        "options": options, "has_inplace": inplace, "defaults": defaults,
        "epilogue": property(epilogue) if callable(epilogue) else epilogue})


ELU = _elementwise("ELU", ops.elu, ("alpha",), {"alpha": 1.0}, True,
                   "x where x > 0, else alpha * (exp(x) - 1).",
                   lambda self: "elu" if self.alpha == 1.0 else None)
SELU = _elementwise("SELU", ops.selu, (), None, True, "scale * ELU(x, alpha), torch's constants.",
                    "selu")
CELU = _elementwise("CELU", ops.celu, ("alpha",), {"alpha": 1.0}, True,
                    "x where x > 0, else alpha * (exp(x / alpha) - 1).")
Softplus = _elementwise("Softplus", ops.softplus, ("beta", "threshold"),
                        {"beta": 1.0, "threshold": 20.0}, False,
                        "log(1 + exp(beta x)) / beta; x where beta x > threshold.")
Mish = _elementwise("Mish", ops.mish, (), None, True, "x * tanh(softplus(x)).", "mish")
Hardswish = _elementwise("Hardswish", ops.hardswish, (), None, True, "x * relu6(x + 3) / 6.",
                         "hardswish")
Hardsigmoid = _elementwise("Hardsigmoid", ops.hardsigmoid, (), None, True, "relu6(x + 3) / 6.")
ReLU6 = _elementwise("ReLU6", ops.relu6, (), None, True, "min(max(x, 0), 6).")
Hardtanh = _elementwise("Hardtanh", ops.hardtanh, ("min_val", "max_val"),
                        {"min_val": -1.0, "max_val": 1.0}, True,
                        "x clamped to [min_val, max_val].")
Softsign = _elementwise("Softsign", ops.softsign, (), None, False, "x / (1 + |x|).")
LogSigmoid = _elementwise("LogSigmoid", ops.log_sigmoid, (), None, False, "log(sigmoid(x)).")
Tanhshrink = _elementwise("Tanhshrink", ops.tanhshrink, (), None, False, "x - tanh(x).")
Softshrink = _elementwise("Softshrink", ops.softshrink, ("lambd",), {"lambd": 0.5}, False,
                          "x -+ lambd outside [-lambd, lambd], else 0.")
Hardshrink = _elementwise("Hardshrink", ops.hardshrink, ("lambd",), {"lambd": 0.5}, False,
                          "x outside [-lambd, lambd], else 0.")


class Threshold(_Elementwise):
    """x where x > threshold, else value."""
    forward_op, backward_op = staticmethod(ops.threshold), staticmethod(ops.threshold_backward)
    options, has_inplace = ("threshold", "value"), True
    defaults = {"inplace": False}

    def __init__(self, threshold: float, value: float, inplace: bool = False):
        super().__init__(threshold, value, inplace)

    def backward(self, grad_out, input_grad: bool = True):
        x, = self._saved()
        return ops.threshold_backward(grad_out, x, self.threshold) if input_grad else None


class Softmin(_SoftmaxBase):
    """softmax(-x) along `dim` (default -1)."""

    def forward(self, input):
        y = ops.softmin(input, axis=self.dim)
        self._save(y)
        return y

    def backward(self, grad_out, input_grad: bool = True):
        y, = self._saved()
        return ops.softmin_backward(grad_out, y, axis=self.dim) if input_grad else None


class GLU(Stateless, Module):
    """a * sigmoid(b), a and b the halves of the input along `dim`."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = check_int(dim, "dim", None)

    def forward(self, input):
        x = to_float32(input)
        self._save(x)
        return ops.glu(x, self.dim)

    def backward(self, grad_out, input_grad: bool = True):
        x, = self._saved()
        return ops.glu_backward(grad_out, x, self.dim) if input_grad else None

    def get_config(self) -> dict:
        return {"dim": self.dim}

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class PReLU(Module):
    """x where x > 0, else weight[c] * x: a learnable slope per channel (the input's
    axis 1) or one shared slope (num_parameters=1), initialised to `init`."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25):
        super().__init__()
        self.num_parameters = check_int(num_parameters, "num_parameters", 1)
        self.init = check_real(init, "init")
        self.weight = Parameter(np.full(self.num_parameters, self.init, np.float32))

    def reset_parameters(self) -> None:
        self.weight.data[...] = np.float32(self.init)

    def forward(self, input):
        x = to_float32(input)
        self._save(x)
        return ops.prelu(x, self.weight._data)

    def backward(self, grad_out, input_grad: bool = True):
        x, = self._saved()
        grad_weight = self.weight._grad if self.weight.requires_grad else None
        return ops.prelu_backward(grad_out, x, self.weight._data, grad_weight, input_grad)

    def get_config(self) -> dict:
        return {"num_parameters": self.num_parameters, "init": self.init}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_int
        return {"weight": ((config_int(config, "num_parameters"),), "F32")}

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
