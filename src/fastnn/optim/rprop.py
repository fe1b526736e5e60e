"""Rprop, steps of a per-element size that grows while the gradient keeps its
sign and shrinks when it flips (torch.optim.Rprop)."""
from __future__ import annotations

import numpy as np

from fastnn import ops
from fastnn._args import check_real
from fastnn.optim.optimizer import Optimizer


def check_pair(value, name: str, meaning: str) -> tuple:
    """value as a pair (a tuple or list of two); ValueError naming it."""
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ValueError(f"{name} must be a pair {meaning}, got {value!r}")
    return tuple(value)


class Rprop(Optimizer):
    def __init__(self, params, lr: float = 1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50), *,
                 capturable: bool = False, foreach=None, maximize: bool = False,
                 differentiable: bool = False):
        super().__init__(params, dict(lr=lr, etas=tuple(etas), step_sizes=tuple(step_sizes),
                                      foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, capturable=capturable))

    def check_group(self, group):
        check_real(group["lr"], "lr", 0.0)
        etaminus, etaplus = check_pair(group["etas"], "etas", "(etaminus, etaplus)")
        check_real(etaminus, "etas[0]", 0.0, 1.0, low_open=True, high_open=True)
        check_real(etaplus, "etas[1]", 1.0, low_open=True)
        low, high = check_pair(group["step_sizes"], "step_sizes",
                               "(step_size_min, step_size_max)")
        check_real(low, "step_sizes[0]", 0.0)
        check_real(high, "step_sizes[1]", low)

    def state_names(self, group):
        return ["prev", "step_size"]

    def update(self, group, data, grad, state, step, fresh):
        if "step_size" in fresh:  # torch starts it at the group's lr
            state["step_size"].fill(np.float32(group["lr"]))
        (etaminus, etaplus), (low, high) = group["etas"], group["step_sizes"]
        ops.rprop_step(data, grad, state["prev"], state["step_size"], etaminus=etaminus,
                       etaplus=etaplus, step_size_min=low, step_size_max=high,
                       maximize=group["maximize"])
