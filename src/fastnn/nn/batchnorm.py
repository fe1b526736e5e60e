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
        self.register_parameter("weight", Parameter(np.ones(self.num_features, np.float32))
                                if self.affine else None)
        if self.affine and bias:
            self.bias = Parameter(np.zeros(self.num_features, np.float32))
        else:
            self.register_parameter("bias", None)
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

    def forward(self, x):
        x = to_float32(x)
        self._check_input(x)
        batch_stats = self.training or not self.track_running_stats
        if batch_stats and x.size // max(self.num_features, 1) <= 1:
            raise ValueError(f"{type(self).__name__} needs more than 1 value per channel to use "
                             f"batch statistics (training, or no running statistics), "
                             f"got input of shape {x.shape}")
        factor = 0.0
        update = self.training and self.track_running_stats
        if update:
            self.num_batches_tracked += 1
            factor = (self.momentum if self.momentum is not None
                      else 1.0 / float(self.num_batches_tracked))
        weight = self.weight.data if self.affine else None
        bias = None if self.bias is None else self.bias.data
        use_running = update or not batch_stats
        y, mean, invstd = ops.batch_norm(
            x, self.running_mean if use_running else None,
            self.running_var if use_running else None, weight, bias, batch_stats, factor,
            self.eps, return_stats=True)
        self._save(x, mean, invstd, batch_stats)
        return y

    def backward(self, grad_out, input_grad: bool = True):
        x, mean, invstd, batch_stats = self._saved()
        g = to_float32(grad_out, "grad_out")
        if g.shape != x.shape:
            raise ValueError(f"grad_out must have shape {x.shape}, got {g.shape}")
        weight = gw = gb = None
        if self.affine:
            weight = self.weight.data
            gw = self.weight._grad if self.weight.requires_grad else None
            gb = self.bias._grad if self.bias is not None and self.bias.requires_grad else None
            if not (input_grad or gw is not None or gb is not None):
                return None
        elif not input_grad:
            return None
        dx, _, _ = ops.batch_norm_backward(g, x, mean, invstd, weight, batch_stats, input_grad,
                                           gw, gb)
        return dx

    def get_config(self) -> dict:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats,
                "bias": self.bias is not None}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_bool, config_int
        n = config_int(config, "num_features")
        state = {}
        if config_bool(config, "affine"):
            state["weight"] = ((n,), "F32")
            if config_bool(config, "bias") if "bias" in config else True:
                state["bias"] = ((n,), "F32")
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


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W): statistics per channel over N, H and W."""
    _ndims = (4,)
    _shapes = "(N, {c}, H, W)"
