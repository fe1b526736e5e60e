"""RAdam, Adam with a rectified adaptive learning rate (torch.optim.RAdam); its
first steps, while the variance estimate is not tractable, are momentum SGD."""
from __future__ import annotations

from fastnn import ops
from fastnn.optim.adam import check_adam_family
from fastnn.optim.optimizer import Optimizer


class RAdam(Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False, *,
                 foreach=None, maximize: bool = False, capturable: bool = False,
                 differentiable: bool = False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay,
                                      decoupled_weight_decay=decoupled_weight_decay,
                                      foreach=foreach, maximize=maximize,
                                      capturable=capturable, differentiable=differentiable))

    def check_group(self, group):
        check_adam_family(group)

    def state_names(self, group):
        return ["exp_avg", "exp_avg_sq"]

    def update(self, group, data, grad, state, step, fresh):
        beta1, beta2 = group["betas"]
        ops.radam_step(data, grad, state["exp_avg"], state["exp_avg_sq"], step, lr=group["lr"],
                       beta1=beta1, beta2=beta2, eps=group["eps"],
                       weight_decay=group["weight_decay"],
                       decoupled=group["decoupled_weight_decay"], maximize=group["maximize"])
