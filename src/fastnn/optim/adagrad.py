"""Adagrad with learning-rate decay and an initial accumulator (torch.optim.Adagrad)."""
from __future__ import annotations

import numpy as np

from fastnn import ops
from fastnn._args import check_real
from fastnn.optim.optimizer import Optimizer


class Adagrad(Optimizer):
    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, fused=None):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, foreach=foreach, maximize=maximize,
                                      differentiable=differentiable, fused=fused))

    def check_group(self, group):
        check_real(group["lr"], "lr", 0.0)
        check_real(group["lr_decay"], "lr_decay", 0.0)
        check_real(group["weight_decay"], "weight_decay", 0.0)
        check_real(group["initial_accumulator_value"], "initial_accumulator_value", 0.0)
        check_real(group["eps"], "eps", 0.0)

    def state_names(self, group):
        return ["sum"]

    def update(self, group, data, grad, state, step, fresh):
        if "sum" in fresh:  # torch fills it at construction
            state["sum"].fill(np.float32(group["initial_accumulator_value"]))
        ops.adagrad_step(data, grad, state["sum"], step, lr=group["lr"],
                         lr_decay=group["lr_decay"], weight_decay=group["weight_decay"],
                         eps=group["eps"], maximize=group["maximize"])
