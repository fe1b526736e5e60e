"""BatchNorm1d and BatchNorm2d: per-channel normalisation of (N, C), (N, C, L) or
(N, C, H, W) inputs, in C (fastnn.ops.batch_norm / batch_norm_backward).

Training normalises with the batch's mean and biased variance and updates
running_mean / running_var (unbiased variance) with `momentum` (None: a
cumulative average over num_batches_tracked); eval mode uses the running
statistics. Parameters weight (gamma) and bias (beta) when affine; buffers
running_mean, running_var, num_batches_tracked: PyTorch's names and layouts.
Forward keeps its input and the per-channel mean and invstd for backward (not
the normalised input): the input must not be changed in place before backward.
"""
from __future__ import annotations


import numpy as np

from fastnn import ops
from fastnn._args import check_int, check_real
from fastnn.nn.module import Module, to_float32
from fastnn.nn.parameter import Parameter


def add_affine(module, n: int, bias: bool) -> None:
    """weight (ones) and bias (zeros, unless bias=False) of n channels when module.affine,
    else both None: torch's parameters of a normalisation layer."""
    module.register_parameter("weight", Parameter(np.ones(n, np.float32))
                              if module.affine else None)
    module.register_parameter("bias", Parameter(np.zeros(n, np.float32))
                              if module.affine and bias else None)


def affine_backward_args(module, grad_out, x: np.ndarray, input_grad: bool):
    """(grad_out as float32, weight, weight.grad, bias.grad) for a normalisation layer's
    backward (None for each it lacks or that needs no gradient), or None when nothing
    is to be computed."""
    g = to_float32(grad_out, "grad_out")
    if g.shape != x.shape:
        raise ValueError(f"grad_out must have shape {x.shape}, got {g.shape}")
    weight, bias = module.weight, module.bias
    if weight is None:
        return (g, None, None, None) if input_grad else None
    gw = weight._grad if weight.requires_grad else None
    gb = bias._grad if bias is not None and bias.requires_grad else None
    if not (input_grad or gw is not None or gb is not None):
        return None
    return g, weight.data, gw, gb


def affine_state_shapes(config: dict, n: int) -> dict:
    """weight and bias (n,) as an affine config (with torch 2.13's bias=) has them."""
    from fastnn.nn.container_protocol import config_bool
    state = {}
    if config_bool(config, "affine"):
        state["weight"] = ((n,), "F32")
        if config_bool(config, "bias") if "bias" in config else True:
            state["bias"] = ((n,), "F32")
    return state


def check_device_dtype(device, dtype) -> None:
    """torch's device= / dtype= arguments: only the CPU and float32 (or None)."""
    if device is not None and str(device) != "cpu":
        raise ValueError(f"device must be None or 'cpu', got {device!r}")
    if dtype is not None and "float32" not in str(dtype):
        raise TypeError(f"dtype must be None or float32, got {dtype!r}")


class _BatchNorm(Module):
    _ndims = (2, 3)  # input dimensions taken
    _shapes = "(N, {c}) or (N, {c}, L)"

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True, device=None, dtype=None, *,
                 bias: bool = True):
        super().__init__()
        check_device_dtype(device, dtype)
        self.num_features = check_int(num_features, "num_features")
        self.eps = check_real(eps, "eps", 0.0, low_open=True)
        self.momentum = None if momentum is None else check_real(momentum, "momentum", 0.0, 1.0)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        add_affine(self, self.num_features, bias)
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(self.num_features, np.float32))
            self.register_buffer("running_var", np.ones(self.num_features, np.float32))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.fill(0.0)
            self.running_var.fill(1.0)
            self.num_batches_tracked[...] = 0

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            self.weight.data[...] = 1.0
        if self.bias is not None:
            self.bias.data[...] = 0.0

    def _check_input(self, x: np.ndarray) -> None:
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) expects input of shape "
                             f"{self._shapes.format(c=self.num_features)}, got {x.shape}")

    # eval mode with running statistics is an affine map per channel, which a
    # preceding convolution of the same rank absorbs (fold_into; Sequential folds
    # it, see Module): each subclass names its rank

    def fold_into(self, weight, bias, axis: int = 0):
        """(weight, bias) float32 of a layer computing this BatchNorm (eval mode, running
        statistics) of the layer with `weight` (its output channels on `axis`) and `bias`
        ((channels,) or None): weight * s, (bias - mean) * s + beta with
        s = gamma / sqrt(running_var + eps), computed in float64."""
        if self.running_mean is None or self.running_var is None:
            raise ValueError(f"{type(self).__name__} without running statistics "
                             f"(track_running_stats=False) cannot be folded into a layer")
        if weight.shape[axis] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}) cannot fold into a "
                             f"layer with {weight.shape[axis]} output channels")
        scale = 1.0 / np.sqrt(np.asarray(self.running_var, np.float64) + self.eps)
        if self.weight is not None:
            scale = scale * self.weight.data
        shift = -np.asarray(self.running_mean, np.float64) * scale
        if self.bias is not None:
            shift = shift + self.bias.data
        if bias is not None:
            shift = shift + bias * scale
        shape = [1] * weight.ndim
        shape[axis] = -1
        return (weight * scale.reshape(shape)).astype(np.float32), shift.astype(np.float32)

    # a following ReLU runs in the normalization's own passes (Sequential fuses it:
    # forward_fused; the backward masks grad_out by the saved output)
    epilogues = ("relu",)

    def forward(self, input):
        return self.forward_fused(input, None)

    def forward_fused(self, x, epilogue):
        """epilogue(batch_norm(x)), the activation (None or "relu") in the same pass."""
        if epilogue not in (None, "relu"):
            raise ValueError(f"epilogue must be None or 'relu', got {epilogue!r}")
        x = to_float32(x)
        self._check_input(x)
        batch_stats = self.training or not self.track_running_stats
        if batch_stats and 0 < x.size == self.num_features:  # one value per channel
            raise ValueError(f"{type(self).__name__} needs more than 1 value per channel to use "
                             f"batch statistics (training, or no running statistics), "
                             f"got input of shape {x.shape}")
        factor = 0.0
        update = self.training and self.track_running_stats
        if update:
            self.num_batches_tracked += 1
            factor = (self.momentum if self.momentum is not None
                      else 1.0 / float(self.num_batches_tracked))
        if x.size == 0:  # as torch: an empty output, the batch counted, no statistic moved
            self._save(x, None, None, batch_stats, None)
            return np.empty(x.shape, np.float32)
        weight = self.weight.data if self.affine else None
        bias = None if self.bias is None else self.bias.data
        use_running = update or not batch_stats
        y, mean, invstd = ops.batch_norm(
            x, self.running_mean if use_running else None,
            self.running_var if use_running else None, weight, bias, batch_stats, factor,
            self.eps, return_stats=True, activation=epilogue)
        self._save(x, mean, invstd, batch_stats, y if epilogue == "relu" else None)
        return y

    def backward(self, grad_out, input_grad: bool = True):
        """d/d input of this call (through its fused ReLU); adds dweight and dbias."""
        x, mean, invstd, batch_stats, relu_out = self._saved()
        args = affine_backward_args(self, grad_out, x, input_grad)
        if args is None:
            return None
        if x.size == 0:  # nothing flowed: the parameters' gradients gain 0
            return np.zeros(x.shape, np.float32) if input_grad else None
        g, weight, gw, gb = args
        return ops.batch_norm_backward(g, x, mean, invstd, weight, batch_stats, input_grad, gw,
                                       gb, relu_output=relu_out)[0]

    def get_config(self) -> dict:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats,
                "bias": self.bias is not None}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_bool, config_int
        n = config_int(config, "num_features")
        state = affine_state_shapes(config, n)
        if config_bool(config, "track_running_stats"):
            state.update(running_mean=((n,), "F32"), running_var=((n,), "F32"),
                         num_batches_tracked=((), "I64"))
        return state

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L): statistics per channel over N (and L)."""
    foldable = "batch_norm_1d"


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W): statistics per channel over N, H and W."""
    foldable = "batch_norm_2d"
    _ndims = (4,)
    _shapes = "(N, {c}, H, W)"
