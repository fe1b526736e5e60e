"""Adamax, Adam with the infinity norm (torch.optim.Adamax)."""
from __future__ import annotations

from fastnn import ops
from fastnn.optim.adam import check_adam_family
from fastnn.optim.optimizer import Optimizer


class Adamax(Optimizer):
    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, foreach=None, *, maximize: bool = False,
                 differentiable: bool = False, capturable: bool = False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable,
                                      capturable=capturable))

    def check_group(self, group):
        check_adam_family(group)

    def state_names(self, group):
        return ["exp_avg", "exp_inf"]

    def update(self, group, data, grad, state, step, fresh):
        beta1, beta2 = group["betas"]
        ops.adamax_step(data, grad, state["exp_avg"], state["exp_inf"], step, lr=group["lr"],
                        beta1=beta1, beta2=beta2, eps=group["eps"],
                        weight_decay=group["weight_decay"], maximize=group["maximize"])
