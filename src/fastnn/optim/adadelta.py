"""Adadelta, steps scaled by running averages of squared gradients and squared
updates (torch.optim.Adadelta)."""
from __future__ import annotations

from fastnn import ops
from fastnn._args import check_real
from fastnn.optim.optimizer import Optimizer


class Adadelta(Optimizer):
    def __init__(self, params, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, foreach=None, *, capturable: bool = False,
                 maximize: bool = False, differentiable: bool = False):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps, weight_decay=weight_decay,
                                      maximize=maximize, capturable=capturable,
                                      foreach=foreach, differentiable=differentiable))

    def check_group(self, group):
        check_real(group["lr"], "lr", 0.0)
        check_real(group["rho"], "rho", 0.0, 1.0)
        check_real(group["eps"], "eps", 0.0)
        check_real(group["weight_decay"], "weight_decay", 0.0)

    def state_names(self, group):
        return ["square_avg", "acc_delta"]

    def update(self, group, data, grad, state, step, fresh):
        ops.adadelta_step(data, grad, state["square_avg"], state["acc_delta"], lr=group["lr"],
                          rho=group["rho"], eps=group["eps"],
                          weight_decay=group["weight_decay"], maximize=group["maximize"])
