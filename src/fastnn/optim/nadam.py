"""NAdam, Adam with Nesterov momentum and a momentum schedule (torch.optim.NAdam);
its per-parameter scalar mu_product, the running product of the schedule's momentum
coefficients, is state as in torch."""
from __future__ import annotations

from fastnn import ops
from fastnn._args import check_real
from fastnn.optim.adam import check_adam_family
from fastnn.optim.optimizer import Optimizer


class NAdam(Optimizer):
    def __init__(self, params, lr: float = 2e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, *, foreach=None, maximize: bool = False,
                 capturable: bool = False, differentiable: bool = False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, momentum_decay=momentum_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      maximize=maximize, foreach=foreach,
                                      capturable=capturable, differentiable=differentiable))

    def check_group(self, group):
        check_adam_family(group)
        check_real(group["momentum_decay"], "momentum_decay", 0.0)

    def state_names(self, group):
        return ["exp_avg", "exp_avg_sq"]

    def scalar_state(self, group):
        return {"mu_product": 1.0}

    def update(self, group, data, grad, state, step, fresh):
        beta1, beta2 = group["betas"]
        ops.nadam_step(data, grad, state["exp_avg"], state["exp_avg_sq"], state["mu_product"],
                       step, lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                       weight_decay=group["weight_decay"],
                       momentum_decay=group["momentum_decay"],
                       decoupled=group["decoupled_weight_decay"], maximize=group["maximize"])
