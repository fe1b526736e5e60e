"""GroupNorm: the C channels of an (N, C, *) input in num_groups groups, each
(sample, group) normalised with its own mean and biased variance, then a
per-channel affine (weight, bias when affine), in C (fastnn.ops.group_norm /
group_norm_backward). The same in training and eval (no running statistics).
Forward keeps its input and the per-(n, group) mean and invstd for backward: the
input must not be changed in place before backward."""
from __future__ import annotations



from fastnn import ops
from fastnn._args import check_int, check_real
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

    def forward(self, x):
        x = to_float32(x)
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
