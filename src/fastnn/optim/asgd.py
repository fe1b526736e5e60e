"""ASGD, SGD with a decaying step and a running average ax of the parameters
(torch.optim.ASGD); its per-parameter scalars eta (the step) and mu (the averaging
weight) are state as in torch."""
from __future__ import annotations

from fastnn import ops
from fastnn._args import check_real
from fastnn.optim.optimizer import Optimizer


class ASGD(Optimizer):
    def __init__(self, params, lr: float = 1e-2, lambd: float = 1e-4, alpha: float = 0.75,
                 t0: float = 1e6, weight_decay: float = 0.0, foreach=None,
                 maximize: bool = False, differentiable: bool = False,
                 capturable: bool = False):
        super().__init__(params, dict(lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                                      weight_decay=weight_decay, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable,
                                      capturable=capturable))

    def check_group(self, group):
        check_real(group["lr"], "lr", 0.0)
        check_real(group["lambd"], "lambd")
        check_real(group["alpha"], "alpha")
        check_real(group["t0"], "t0")
        check_real(group["weight_decay"], "weight_decay", 0.0)

    def state_names(self, group):
        return ["ax"]

    def scalar_state(self, group):
        return {"eta": group["lr"], "mu": 1.0}

    def update(self, group, data, grad, state, step, fresh):
        ops.asgd_step(data, grad, state["ax"], state["eta"], state["mu"], step, lr=group["lr"],
                      lambd=group["lambd"], alpha=group["alpha"], t0=group["t0"],
                      weight_decay=group["weight_decay"], maximize=group["maximize"])
