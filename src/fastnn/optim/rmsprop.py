"""RMSprop with momentum and the centered variant (torch.optim.RMSprop)."""
from __future__ import annotations

from fastnn import ops
from fastnn._args import check_real
from fastnn.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 capturable: bool = False, foreach=None, maximize: bool = False,
                 differentiable: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered,
                                      capturable=capturable, foreach=foreach,
                                      maximize=maximize, differentiable=differentiable))

    def check_group(self, group):
        check_real(group["lr"], "lr", 0.0)
        check_real(group["alpha"], "alpha", 0.0, 1.0)
        check_real(group["eps"], "eps", 0.0)
        check_real(group["weight_decay"], "weight_decay", 0.0)
        check_real(group["momentum"], "momentum", 0.0)

    def state_names(self, group):
        return (["square_avg"] + (["momentum_buffer"] if group["momentum"] > 0 else [])
                + (["grad_avg"] if group["centered"] else []))

    def update(self, group, data, grad, state, step, fresh):
        ops.rmsprop_step(data, grad, state["square_avg"], lr=group["lr"], alpha=group["alpha"],
                         eps=group["eps"], weight_decay=group["weight_decay"],
                         momentum=group["momentum"], grad_avg=state.get("grad_avg"),
                         momentum_buf=state.get("momentum_buffer"),
                         maximize=group["maximize"])
