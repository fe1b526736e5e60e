"""SGD with momentum, dampening, Nesterov and weight decay (torch.optim.SGD)."""
from __future__ import annotations

from fastnn import ops
from fastnn._args import check_real
from fastnn.optim.optimizer import Optimizer


class SGD(Optimizer):
    keeps_step = False  # as torch's SGD: only momentum buffers in state_dict()

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False, *, maximize: bool = False,
                 foreach=None, differentiable: bool = False, fused=None):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov,
                                      maximize=maximize, foreach=foreach,
                                      differentiable=differentiable, fused=fused))

    def check_group(self, group):
        check_real(group["lr"], "lr", 0.0)
        check_real(group["momentum"], "momentum", 0.0)
        check_real(group["dampening"], "dampening", 0.0)
        check_real(group["weight_decay"], "weight_decay", 0.0)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening")

    def state_names(self, group):
        return ["momentum_buffer"] if group["momentum"] != 0 else []

    def update(self, group, data, grad, state, step, fresh):
        ops.sgd_step(data, grad, state.get("momentum_buffer"), group["lr"],
                     momentum=group["momentum"], dampening=group["dampening"],
                     nesterov=group["nesterov"], weight_decay=group["weight_decay"],
                     first_step="momentum_buffer" in fresh,  # torch: buffer = grad at first
                     maximize=group["maximize"])
