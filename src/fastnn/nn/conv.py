"""Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d (fastnn.ops convolutions, csrc/conv/).

PyTorch's constructors, defaults, weight layouts and init: Conv weight
(out_channels, in_channels/groups, *kernel_size), ConvTranspose weight
(in_channels, out_channels/groups, *kernel_size), both kaiming_uniform_(a=sqrt(5))
with the bias uniform in +-1/sqrt(fan_in). padding_mode 'reflect' / 'replicate' /
'circular' pads the input first (np.pad, as torch pads before a zero-padding-free
convolution) and the backward folds the padded gradient back onto the input.
Conv1d / Conv2d fuse a following ReLU into the GEMM epilogue (`epilogues`).
"""
from __future__ import annotations

import math

import numpy as np

from fastnn import ops
from fastnn._args import check_int
from fastnn.nn import init
from fastnn.nn.module import Module
from fastnn.nn.parameter import Parameter

_NP_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}
_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _ntuple(value, n: int, name: str, low: int) -> tuple:
    """value (an int or a sequence of n ints) as a tuple of n ints >= low."""
    if isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
        return tuple(check_int(v, name, low) for v in value)
    return (check_int(value, name, low),) * n


def _pad_pairs(padding, kernel_size, dilation) -> tuple:
    """((before, after), ...) per spatial axis for int/tuple padding or 'same'/'valid'."""
    if padding == "valid":
        return tuple((0, 0) for _ in kernel_size)
    if padding == "same":
        return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                     for k, d in zip(kernel_size, dilation))
    return tuple((p, p) for p in padding)


def _pad_input(x, pads: tuple, mode: str):
    """x (..., *spatial) padded on its last len(pads) axes by torch's padding_mode."""
    x = np.asarray(x)
    spatial = x.shape[x.ndim - len(pads):]
    for size, (p0, p1) in zip(spatial, pads):
        if mode == "reflect" and max(p0, p1) >= size:
            raise ValueError(f"padding_mode='reflect' needs padding < the input size, got "
                             f"padding {(p0, p1)} for size {size}")
        if mode == "circular" and max(p0, p1) > size:
            raise ValueError(f"padding_mode='circular' needs padding <= the input size, got "
                             f"padding {(p0, p1)} for size {size}")
    full = ((0, 0),) * (x.ndim - len(pads)) + tuple(pads)
    return np.pad(x.astype(np.float32, copy=False), full, mode=_NP_MODES[mode])


def _fold_padding(grad, spatial: tuple, pads: tuple, mode: str):
    """The adjoint of _pad_input: grad (..., *padded) summed back onto (..., *spatial)."""
    nd = len(pads)
    for i, (size, (p0, p1)) in enumerate(zip(spatial, pads)):
        axis = grad.ndim - nd + i
        idx = np.pad(np.arange(size), (p0, p1), mode=_NP_MODES[mode])
        moved = np.moveaxis(grad, axis, 0)
        out = np.zeros((size,) + moved.shape[1:], np.float32)
        np.add.at(out, idx, moved)  # in index order: deterministic
        grad = np.moveaxis(out, 0, axis)
    return np.ascontiguousarray(grad)


def _accumulate(param, grad) -> None:
    if param is not None and param.requires_grad and grad is not None:
        param._grad += grad


class _ConvNd(Module):
    _n = 2
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", output_padding=0):
        super().__init__()
        n = self._n
        name = type(self).__name__
        self.in_channels = check_int(in_channels, "in_channels", 1)
        self.out_channels = check_int(out_channels, "out_channels", 1)
        self.kernel_size = _ntuple(kernel_size, n, "kernel_size", 1)
        self.stride = _ntuple(stride, n, "stride", 1)
        self.dilation = _ntuple(dilation, n, "dilation", 1)
        self.groups = check_int(groups, "groups", 1)
        if self.in_channels % self.groups:
            raise ValueError(f"in_channels ({self.in_channels}) must be divisible by groups "
                             f"({self.groups})")
        if self.out_channels % self.groups:
            raise ValueError(f"out_channels ({self.out_channels}) must be divisible by groups "
                             f"({self.groups})")
        if isinstance(padding, str):
            if self._transposed or padding not in ("same", "valid"):
                allowed = "an int or a tuple" if self._transposed else "'same', 'valid'"
                raise ValueError(f"{name}: padding must be {allowed}, got {padding!r}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _ntuple(padding, n, "padding", 0)
        if padding_mode not in _PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {_PADDING_MODES}, got "
                             f"{padding_mode!r}")
        if self._transposed and padding_mode != "zeros":
            raise ValueError(f"Only 'zeros' padding mode is supported for {name}")
        self.padding_mode = padding_mode
        self.output_padding = _ntuple(output_padding, n, "output_padding", 0)
        if self._transposed:
            for op, s, d in zip(self.output_padding, self.stride, self.dilation):
                if op >= max(s, d):
                    raise ValueError(f"output_padding {self.output_padding} must be smaller "
                                     f"than stride {self.stride} or dilation {self.dilation}")
            shape = (self.in_channels, self.out_channels // self.groups) + self.kernel_size
        else:
            shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, np.float32))
        self.register_parameter(
            "bias", Parameter(np.empty(self.out_channels, np.float32)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's: kaiming_uniform_(a=sqrt(5)), bias in +-1/sqrt(fan_in)."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        fan_in = self.weight.data.shape[1] * int(np.prod(self.kernel_size))
        if self.bias is not None:
            init.uniform_(self.bias, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))

    def get_config(self) -> dict:
        config = {"in_channels": self.in_channels, "out_channels": self.out_channels,
                  "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                  "padding": self.padding if isinstance(self.padding, str)
                  else list(self.padding),
                  "dilation": list(self.dilation), "groups": self.groups,
                  "bias": self.bias is not None, "padding_mode": self.padding_mode}
        if self._transposed:
            config["output_padding"] = list(self.output_padding)
        return config

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_bool, config_int
        n_in = config_int(config, "in_channels", 1)
        n_out = config_int(config, "out_channels", 1)
        groups = config_int(config, "groups", 1)
        ks = config["kernel_size"]
        if (not isinstance(ks, list) or len(ks) != cls._n
                or any(type(k) is not int or k < 1 for k in ks)):
            raise ValueError(f"kernel_size must be a list of {cls._n} positive ints, got {ks!r}")
        if n_in % groups or n_out % groups:
            raise ValueError(f"groups ({groups}) must divide in_channels ({n_in}) and "
                             f"out_channels ({n_out})")
        if cls._transposed:
            shape = (n_in, n_out // groups) + tuple(ks)
        else:
            shape = (n_out, n_in // groups) + tuple(ks)
        state = {"weight": (shape, "F32")}
        if config_bool(config, "bias"):
            state["bias"] = ((n_out,), "F32")
        return state

    def extra_repr(self) -> str:
        n = self._n
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != (0,) * n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * n:
            s += f", dilation={self.dilation}"
        if self.output_padding != (0,) * n:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class _Conv(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode)

    # the activation forward_fused applies in the GEMM epilogue (Sequential fuses a
    # following ReLU); its backward masks the gradient with the output
    epilogues = ("relu",)

    # and, in eval mode without gradients, a following BatchNorm of its rank folded
    # into the weights (each subclass's `folds`; Sequential folds it: forward_folded)

    def forward(self, input):
        return self.forward_fused(input, None)

    def _convolve(self, input, weight, bias, epilogue):
        """(epilogue(conv(input, weight) + bias), the padded input, its padding, the
        explicit pads or None), padding_mode applied."""
        if epilogue not in (None, "relu"):
            raise ValueError(f"epilogue must be None or 'relu', got {epilogue!r}")
        x, padding, pads = input, self.padding, None
        if self.padding_mode != "zeros":
            pads = _pad_pairs(padding, self.kernel_size, self.dilation)
            x, padding = _pad_input(input, pads, self.padding_mode), 0
        conv = ops.conv1d if self._n == 1 else ops.conv2d
        y = conv(x, weight, bias, self.stride, padding, self.dilation, self.groups, epilogue)
        return y, x, padding, pads

    def forward_fused(self, input, epilogue):
        """epilogue(conv(input) + bias), the activation (None or "relu") fused."""
        bias = self.__dict__["bias"]
        y, x, padding, pads = self._convolve(input, self.__dict__["weight"]._data,
                                             None if bias is None else bias._data, epilogue)
        self._save(x, padding, pads, np.shape(input), y if epilogue == "relu" else None)
        return y

    def forward_folded(self, input, norm, epilogue):
        """epilogue(norm(conv(input))) as one convolution, norm (an eval-mode BatchNorm
        with running statistics) folded into the weight and bias; saves nothing (for
        inference: Sequential calls it in eval mode without gradients)."""
        bias = self.__dict__["bias"]
        weight, bias = norm.fold_into(self.__dict__["weight"]._data,
                                      None if bias is None else bias._data)
        return self._convolve(input, weight, bias, epilogue)[0]

    def backward(self, grad_out, input_grad: bool = True):
        """d/d input of this call (through its fused ReLU); adds dweight and dbias."""
        x, padding, pads, in_shape, y = self._saved()
        d = self.__dict__
        weight, bias = d["weight"], d["bias"]
        g = np.asarray(grad_out, np.float32)
        if y is not None:  # through the fused ReLU: y > 0 exactly where its input is
            g = ops.relu_backward(g, y)
        backward = ops.conv1d_backward if self._n == 1 else ops.conv2d_backward
        dx, dw, db = backward(g, x, weight._data, self.stride, padding, self.dilation,
                              self.groups, input_grad, weight.requires_grad,
                              bias is not None and bias.requires_grad)
        _accumulate(weight, dw)
        _accumulate(bias, db)
        if dx is not None and pads is not None:
            dx = _fold_padding(dx, tuple(in_shape[len(in_shape) - self._n:]), pads,
                               self.padding_mode)
        return dx


class Conv1d(_Conv):
    """1-D convolution over (N, C_in, L) or (C_in, L), as torch.nn.Conv1d."""
    _n = 1
    folds = ("batch_norm_1d",)


class Conv2d(_Conv):
    """2-D convolution over (N, C_in, H, W) or (C_in, H, W), as torch.nn.Conv2d."""
    _n = 2
    folds = ("batch_norm_2d",)


class _ConvTranspose(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, output_padding)

    def forward(self, input, output_size=None):
        d = self.__dict__
        bias = d["bias"]
        convt = ops.conv_transpose1d if self._n == 1 else ops.conv_transpose2d
        y = convt(input, d["weight"]._data, None if bias is None else bias._data, self.stride,
                  self.padding, self.output_padding, self.groups, self.dilation, output_size)
        self._save(input, output_size)
        return y

    def backward(self, grad_out, input_grad: bool = True):
        """d/d input of this call; adds dweight and dbias."""
        x, output_size = self._saved()
        d = self.__dict__
        weight, bias = d["weight"], d["bias"]
        backward = (ops.conv_transpose1d_backward if self._n == 1
                    else ops.conv_transpose2d_backward)
        dx, dw, db = backward(grad_out, x, weight._data, self.stride, self.padding,
                              self.output_padding, self.groups, self.dilation, output_size,
                              input_grad, weight.requires_grad,
                              bias is not None and bias.requires_grad)
        _accumulate(weight, dw)
        _accumulate(bias, db)
        return dx


class ConvTranspose1d(_ConvTranspose):
    """Transposed 1-D convolution, as torch.nn.ConvTranspose1d."""
    _n = 1


class ConvTranspose2d(_ConvTranspose):
    """Transposed 2-D convolution, as torch.nn.ConvTranspose2d."""
    _n = 2
