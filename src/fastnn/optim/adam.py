"""Adam (L2 weight decay, optional AMSGrad) and AdamW (decoupled weight decay),
as torch.optim.Adam / AdamW."""
from __future__ import annotations

from fastnn import ops
from fastnn._args import check_bool, check_real
from fastnn.optim.optimizer import Optimizer


def check_adam_family(group: dict) -> None:
    """The options Adam, AdamW, Adamax and RAdam share: lr, eps, weight_decay, betas
    (a pair in [0, 1)) and, where the rule has it, decoupled_weight_decay."""
    check_real(group["lr"], "lr", 0.0)
    check_real(group["eps"], "eps", 0.0)
    check_real(group["weight_decay"], "weight_decay", 0.0)
    betas = group["betas"]
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    check_real(betas[0], "betas[0]", 0.0, 1.0, high_open=True)
    check_real(betas[1], "betas[1]", 0.0, 1.0, high_open=True)
    if "decoupled_weight_decay" in group:
        check_bool(group["decoupled_weight_decay"], "decoupled_weight_decay")


class Adam(Optimizer):
    """decoupled_weight_decay=True makes it AdamW, as in torch."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *, foreach=None,
                 maximize: bool = False, capturable: bool = False, differentiable: bool = False,
                 fused=None, decoupled_weight_decay: bool = False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay, amsgrad=amsgrad,
                                      foreach=foreach, maximize=maximize, capturable=capturable,
                                      differentiable=differentiable, fused=fused,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def check_group(self, group):
        check_adam_family(group)

    def state_names(self, group):
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if group["amsgrad"] else [])

    def update(self, group, data, grad, state, step, fresh):
        beta1, beta2 = group["betas"]
        ops.adam_step(data, grad, state["exp_avg"], state["exp_avg_sq"], step, lr=group["lr"],
                      beta1=beta1, beta2=beta2, eps=group["eps"],
                      weight_decay=group["weight_decay"],
                      decoupled=group["decoupled_weight_decay"],
                      max_exp_avg_sq=state.get("max_exp_avg_sq"), maximize=group["maximize"])


class AdamW(Adam):
    """Adam with decoupled weight decay: param *= 1 - lr * weight_decay each step."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False,
                 foreach=None, capturable: bool = False, differentiable: bool = False,
                 fused=None):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, foreach=foreach, maximize=maximize,
                         capturable=capturable, differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True)
