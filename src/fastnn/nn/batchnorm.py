"""BatchNorm1d: per-feature normalisation of (N, C) or (N, C, L) inputs.

Training normalises with the batch's mean and biased variance and updates
running_mean / running_var (unbiased variance) with `momentum` (None: a
cumulative average over num_batches_tracked); eval mode uses the running
statistics. Parameters weight (gamma) and bias (beta) when affine; buffers
running_mean, running_var, num_batches_tracked: PyTorch's names and layouts.
"""
from __future__ import annotations


import numpy as np

from fastnn._args import check_int, check_real
from fastnn.nn.module import Module, to_float32
from fastnn.nn.parameter import Parameter


class BatchNorm1d(Module):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = True,
                 track_running_stats: bool = True):
        super().__init__()
        self.num_features = check_int(num_features, "num_features")
        self.eps = check_real(eps, "eps", 0.0, low_open=True)
        self.momentum = None if momentum is None else check_real(momentum, "momentum", 0.0, 1.0)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        if self.affine:
            self.weight = Parameter(np.ones(self.num_features, np.float32))
            self.bias = Parameter(np.zeros(self.num_features, np.float32))
        else:
            self.register_parameter("weight", None)
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

    def _layout(self, x: np.ndarray):
        if x.ndim not in (2, 3) or x.shape[1] != self.num_features:
            raise ValueError(f"BatchNorm1d({self.num_features}) expects input of shape "
                             f"(N, {self.num_features}) or (N, {self.num_features}, L), "
                             f"got {x.shape}")
        axes = (0,) if x.ndim == 2 else (0, 2)
        shape = (1, -1) if x.ndim == 2 else (1, -1, 1)
        return axes, shape

    def forward(self, x):
        x = to_float32(x)
        axes, shape = self._layout(x)
        count = x.size // max(self.num_features, 1)
        batch_stats = self.training or not self.track_running_stats
        if batch_stats:
            if count <= 1:
                raise ValueError(f"BatchNorm1d needs more than 1 value per channel to use "
                                 f"batch statistics (training, or no running statistics), "
                                 f"got input of shape {x.shape}")
            # statistics in float64: a channel of equal values has mean exactly that value and
            # variance 0, so xhat is 0 rather than rounding noise times 1 / sqrt(eps)
            mean = x.mean(axis=axes, dtype=np.float64).astype(np.float32)
            var = x.var(axis=axes, dtype=np.float64).astype(np.float32)
            if self.training and self.track_running_stats:
                self.num_batches_tracked += 1
                f = (self.momentum if self.momentum is not None
                     else 1.0 / float(self.num_batches_tracked))
                unbiased = var * np.float32(count / (count - 1))
                self.running_mean *= np.float32(1.0 - f)
                self.running_mean += np.float32(f) * mean
                self.running_var *= np.float32(1.0 - f)
                self.running_var += np.float32(f) * unbiased
        else:
            mean, var = self.running_mean, self.running_var
        inv_std = (1.0 / np.sqrt(var + np.float32(self.eps))).astype(np.float32)
        xhat = (x - mean.reshape(shape)) * inv_std.reshape(shape)
        self._save(xhat, inv_std, batch_stats)
        if not self.affine:
            return xhat
        return xhat * self.weight.data.reshape(shape) + self.bias.data.reshape(shape)

    def backward(self, grad_out, input_grad: bool = True):
        xhat, inv_std, batch_stats = self._saved()
        g = to_float32(grad_out, "grad_out")
        if g.shape != xhat.shape:
            raise ValueError(f"grad_out must have shape {xhat.shape}, got {g.shape}")
        axes, shape = self._layout(g)
        sum_g = g.sum(axis=axes)
        sum_gx = (g * xhat).sum(axis=axes)
        if self.affine:
            if self.weight.requires_grad:
                self.weight.grad += sum_gx
            if self.bias.requires_grad:
                self.bias.grad += sum_g
        if not input_grad:
            return None
        scale = inv_std * (self.weight.data if self.affine else np.float32(1.0))
        if not batch_stats:
            return g * scale.reshape(shape)
        count = np.float32(g.size // max(self.num_features, 1))
        return (scale / count).reshape(shape) * (
            count * g - sum_g.reshape(shape) - xhat * sum_gx.reshape(shape))

    def get_config(self) -> dict:
        return {"num_features": self.num_features, "eps": self.eps, "momentum": self.momentum,
                "affine": self.affine, "track_running_stats": self.track_running_stats}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_bool, config_int
        n = config_int(config, "num_features")
        state = {}
        if config_bool(config, "affine"):
            state.update(weight=((n,), "F32"), bias=((n,), "F32"))
        if config_bool(config, "track_running_stats"):
            state.update(running_mean=((n,), "F32"), running_var=((n,), "F32"),
                         num_batches_tracked=((), "I64"))
        return state

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")
