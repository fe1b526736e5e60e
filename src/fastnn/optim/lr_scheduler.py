"""fastnn.optim.lr_scheduler: learning-rate schedules for fastnn optimizers, with
torch.optim.lr_scheduler's names, arguments, defaults and lr sequences.

    StepLR, MultiStepLR, ExponentialLR,   step() once per epoch; each scales the
    CosineAnnealingLR, LinearLR           groups' current lr, as torch does
    OneCycleLR                            step() once per batch; also cycles momentum
                                          (SGD, RMSprop) or beta1 (Adam, AdamW)
    ReduceLROnPlateau                     step(metric) once per epoch, e.g. the val loss

    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
    for epoch in range(90):
        train_one_epoch(model, opt)           # opt.step() per batch
        sched.step()                          # after the epoch's optimizer steps

    sched = lr_scheduler.OneCycleLR(opt, max_lr=0.1, epochs=10, steps_per_epoch=n_batches)
    for epoch in range(10):
        for xb, yb in batches:
            ...; opt.step(); sched.step()     # once per batch

A scheduler writes the optimizer's param groups: group["lr"], and for
OneCycleLR group["momentum"] or group["betas"][0]. Building one records
group["initial_lr"] and takes the step to epoch 0 (so the optimizer's first
steps use the epoch-0 lr); scheduler.get_last_lr() lists the lrs it last set.

To resume, save optimizer.state_dict() and scheduler.state_dict() (plain
dicts; the scheduler's holds only numbers, strings and lists, so json.dumps
takes it), then build the optimizer and the scheduler as before and call
optimizer.load_state_dict(...) and scheduler.load_state_dict(...).

Beyond torch: arguments are checked (TypeError / ValueError naming the
argument); step() takes no deprecated `epoch`; where torch's OneCycleLR
divides by zero (pct_start * total_steps giving a phase of zero length) the
step at that phase gets the phase's end value.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
import numbers
from collections import Counter
from typing import List

import numpy as np

from fastnn._args import check_bool, check_choice, check_int, check_real, describe
from fastnn.optim.optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
           "LinearLR", "OneCycleLR", "ReduceLROnPlateau"]


# ---- argument checks ------------------------------------------------------------------
def _check_optimizer(optimizer) -> None:
    if not isinstance(optimizer, Optimizer):
        kind = type(optimizer)
        raise TypeError(f"optimizer must be a fastnn.optim.Optimizer (SGD, Adam, AdamW, "
                        f"RMSprop), got {kind.__module__}.{kind.__qualname__}")


def _per_group(value, name: str, n_groups: int, **bounds) -> List[float]:
    """A scalar for every group, or a list / tuple with one value per group."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_groups:
            raise ValueError(f"{name} must be one number or a list with one per param group "
                             f"({n_groups}), got a list of {len(value)}")
        return [check_real(v, f"{name}[{i}]", **bounds) for i, v in enumerate(value)]
    return [check_real(value, name, **bounds)] * n_groups


def _plain(value):
    """A copy of value made of ints, floats, strings, bools, None, lists and dicts."""
    if isinstance(value, Counter):
        return sorted(int(m) for m in value.elements())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"a scheduler state value must be a number, string or list, "
                    f"got {describe(value)}")


# ---- base -----------------------------------------------------------------------------
class LRScheduler(ABC):
    """Base of the schedulers: subclasses give get_lr(), the lrs at self.last_epoch.

    step() advances last_epoch by one and writes get_lr() into the param groups.
    """

    # attributes state_dict() saves; subclasses add their options
    _saved = ("base_lrs", "last_epoch", "_last_lr")
    _initial = False  # True while the constructor takes the step to epoch 0

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        _check_optimizer(optimizer)
        last_epoch = check_int(last_epoch, "last_epoch", -1)
        self._check_options()
        groups = optimizer.param_groups
        if last_epoch == -1:
            for group in groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            missing = [i for i, group in enumerate(groups) if "initial_lr" not in group]
            if missing:
                raise ValueError(
                    f"last_epoch={last_epoch} resumes a schedule, which needs 'initial_lr' in "
                    f"every param group (a scheduler sets it; optimizer.load_state_dict "
                    f"restores it), but param groups {missing} have none; use last_epoch=-1 "
                    f"to start a schedule")
        self.optimizer = optimizer
        self.base_lrs = [group["initial_lr"] for group in groups]
        self.last_epoch = last_epoch
        self._initial = True
        try:
            self.step()
        finally:
            self._initial = False

    def _check_options(self) -> None:
        """Check (and normalize) the subclass's options, from the constructor or a load."""

    def _current_lrs(self) -> list:
        return [group["lr"] for group in self.optimizer.param_groups]

    def _paired_base_lrs(self):
        """(base_lr, group) per param group; ValueError if groups were added since."""
        groups = self.optimizer.param_groups
        if len(groups) != len(self.base_lrs):
            raise ValueError(f"the optimizer has {len(groups)} param groups but this scheduler "
                             f"was built for {len(self.base_lrs)}")
        return zip(self.base_lrs, groups)

    @abstractmethod
    def get_lr(self) -> list:
        """The lr of every param group at epoch self.last_epoch."""

    def get_last_lr(self) -> list:
        """The lrs the last step() wrote, one per param group."""
        return list(self._last_lr)

    def step(self) -> None:
        """Advance the schedule one epoch (one batch for OneCycleLR)."""
        self.last_epoch += 1
        try:
            lrs = self.get_lr()
        except BaseException:
            self.last_epoch -= 1
            raise
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = self._current_lrs()

    # ---- state ---------------------------------------------------------------------
    def state_dict(self) -> dict:
        """The scheduler's state (not the optimizer's) as plain numbers, strings, lists."""
        return {name: _plain(getattr(self, name)) for name in self._saved}

    def _decode(self, name: str, value):
        return _plain(value)

    def _check_loaded(self) -> None:
        n = len(self.optimizer.param_groups)
        self.last_epoch = check_int(self.last_epoch, "last_epoch", -1)
        for name in ("base_lrs", "_last_lr"):
            values = getattr(self, name)
            if not isinstance(values, list) or len(values) != n:
                raise ValueError(f"state_dict[{name!r}] must be a list of {n} lrs (one per "
                                 f"param group), got {values!r}")
            for i, v in enumerate(values):
                check_real(v, f"state_dict[{name!r}][{i}]")
        self._check_options()

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a state_dict() (also torch's for the same scheduler); all or nothing."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict must be a dict from {type(self).__name__}"
                            f".state_dict(), got {type(state_dict).__name__}")
        missing = [name for name in self._saved if name not in state_dict]
        if missing:
            raise ValueError(f"state_dict lacks {missing}; expected the keys of "
                             f"{type(self).__name__}.state_dict()")
        before = dict(self.__dict__)
        try:
            for name in self._saved:
                setattr(self, name, self._decode(name, state_dict[name]))
            self._check_loaded()
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(before)
            raise


# ---- per-epoch schedules --------------------------------------------------------------
class StepLR(LRScheduler):
    """lr *= gamma every step_size epochs."""

    _saved = LRScheduler._saved + ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1,
                 last_epoch: int = -1):
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _check_options(self):
        self.step_size = check_int(self.step_size, "step_size", 1)
        self.gamma = check_real(self.gamma, "gamma", 0.0, low_open=True)

    def get_lr(self):
        epoch = self.last_epoch
        if epoch == 0 or epoch % self.step_size:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]


class MultiStepLR(LRScheduler):
    """lr *= gamma at each epoch in milestones (gamma ** k at a milestone given k times)."""

    _saved = LRScheduler._saved + ("milestones", "gamma")

    def __init__(self, optimizer: Optimizer, milestones, gamma: float = 0.1,
                 last_epoch: int = -1):
        if isinstance(milestones, (str, bytes, dict)) or not hasattr(milestones, "__iter__"):
            raise TypeError(f"milestones must be a list of epoch indices, got "
                            f"{describe(milestones)}")
        self.milestones = list(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _check_options(self):
        listed = self.milestones
        if isinstance(listed, Counter):
            listed = list(listed.elements())
        if not isinstance(listed, list):
            raise TypeError(f"milestones must be a list of epoch indices, got "
                            f"{describe(listed)}")
        self.milestones = Counter(check_int(m, f"milestones[{i}]", 0)
                                  for i, m in enumerate(listed))
        self.gamma = check_real(self.gamma, "gamma", 0.0, low_open=True)

    def _decode(self, name, value):
        if name == "milestones" and isinstance(value, dict):  # torch saves a Counter
            return [int(m) for m, count in value.items() for _ in range(int(count))]
        return super()._decode(name, value)

    def get_lr(self):
        hits = self.milestones.get(self.last_epoch, 0)
        if not hits:
            return self._current_lrs()
        return [lr * self.gamma ** hits for lr in self._current_lrs()]


class ExponentialLR(LRScheduler):
    """lr *= gamma every epoch."""

    _saved = LRScheduler._saved + ("gamma",)

    def __init__(self, optimizer: Optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _check_options(self):
        self.gamma = check_real(self.gamma, "gamma", 0.0, low_open=True)

    def get_lr(self):
        if self._initial:
            return self._current_lrs()
        return [lr * self.gamma for lr in self._current_lrs()]


class CosineAnnealingLR(LRScheduler):
    """lr follows eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2,
    down for T_max epochs, then back up for T_max (no restart), and so on.

    Computed as torch does, one step from the current lr (each step scales the
    distance to eta_min by the ratio of consecutive cosine terms), so it follows
    changes that others make to the lr.
    """

    _saved = LRScheduler._saved + ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0,
                 last_epoch: int = -1):
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def _check_options(self):
        self.T_max = check_int(self.T_max, "T_max", 1)
        self.eta_min = check_real(self.eta_min, "eta_min", 0.0)

    def get_lr(self):
        if self._initial:
            return self._current_lrs()
        epoch, period, low = self.last_epoch, self.T_max, self.eta_min
        if (epoch - 1 - period) % (2 * period) == 0:
            # first step up from the trough, where the ratio below would be x / 0
            rise = (1.0 - math.cos(math.pi / period)) / 2.0
            return [group["lr"] + (base - low) * rise for base, group in self._paired_base_lrs()]
        ratio = ((1.0 + math.cos(math.pi * epoch / period))
                 / (1.0 + math.cos(math.pi * (epoch - 1) / period)))
        return [low + (lr - low) * ratio for lr in self._current_lrs()]


class LinearLR(LRScheduler):
    """lr scaled by a factor going linearly from start_factor (epoch 0) to end_factor
    (epoch total_iters and after)."""

    _saved = LRScheduler._saved + ("start_factor", "end_factor", "total_iters")

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3,
                 end_factor: float = 1.0, total_iters: int = 5, last_epoch: int = -1):
        self.start_factor = start_factor
        self.end_factor = end_factor
        self.total_iters = total_iters
        super().__init__(optimizer, last_epoch)

    def _check_options(self):
        self.start_factor = check_real(self.start_factor, "start_factor", 0.0, 1.0,
                                        low_open=True)
        self.end_factor = check_real(self.end_factor, "end_factor", 0.0, 1.0)
        self.total_iters = check_int(self.total_iters, "total_iters", 0)

    def get_lr(self):
        epoch, start, end = self.last_epoch, self.start_factor, self.end_factor
        if epoch == 0:
            return [lr * start for lr in self._current_lrs()]
        if self._initial or epoch > self.total_iters:
            return self._current_lrs()
        # factor(epoch) / factor(epoch - 1), both on the line from start to end
        scale = 1.0 + (end - start) / (self.total_iters * start + (epoch - 1) * (end - start))
        return [lr * scale for lr in self._current_lrs()]


# ---- one cycle, per batch -------------------------------------------------------------
_PHASE_LRS = ("initial_lr", "max_lr", "min_lr")
_PHASE_MOMENTA = ("max_momentum", "base_momentum")


def _phase(end_step: float, lrs, momenta) -> dict:
    return {"end_step": end_step, "start_lr": lrs[0], "end_lr": lrs[1],
            "start_momentum": momenta[0], "end_momentum": momenta[1]}


def _anneal(kind: str, start: float, end: float, pct: float) -> float:
    """From start (pct 0) to end (pct 1), on a half cosine or a line."""
    if kind == "cos":
        return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1.0)
    return (end - start) * pct + start


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith, Super-Convergence), per batch.

    lr rises from max_lr / div_factor to max_lr over pct_start of total_steps, then
    falls to max_lr / div_factor / final_div_factor; momentum (SGD, RMSprop) or
    beta1 (Adam, AdamW) moves the other way between max_momentum and base_momentum.
    three_phase=True rises, falls back symmetrically, then anneals to the minimum.
    total_steps, or epochs * steps_per_epoch, is the number of scheduler.step()
    calls the schedule covers; one more raises ValueError.
    """

    _saved = LRScheduler._saved + ("total_steps", "_schedule_phases", "_anneal_func_type",
                                   "cycle_momentum", "use_beta1")

    def __init__(self, optimizer: Optimizer, max_lr, total_steps: int = None,
                 epochs: int = None, steps_per_epoch: int = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True,
                 base_momentum=0.85, max_momentum=0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False,
                 last_epoch: int = -1):
        _check_optimizer(optimizer)
        last_epoch = check_int(last_epoch, "last_epoch", -1)
        if total_steps is not None:
            total_steps = check_int(total_steps, "total_steps", 1)
        elif epochs is not None and steps_per_epoch is not None:
            total_steps = (check_int(epochs, "epochs", 1)
                           * check_int(steps_per_epoch, "steps_per_epoch", 1))
        else:
            raise ValueError(f"OneCycleLR needs total_steps, or both epochs and "
                             f"steps_per_epoch; got total_steps=None, epochs={epochs!r}, "
                             f"steps_per_epoch={steps_per_epoch!r}")
        pct_start = check_real(pct_start, "pct_start", 0.0, 1.0)
        groups = optimizer.param_groups
        max_lrs = _per_group(max_lr, "max_lr", len(groups), low=0.0)
        div_factor = check_real(div_factor, "div_factor", 0.0, low_open=True)
        final_div_factor = check_real(final_div_factor, "final_div_factor", 0.0,
                                       low_open=True)
        self.total_steps = total_steps
        self._anneal_func_type = check_choice(anneal_strategy, "anneal_strategy",
                                               ("cos", "linear"))
        self.cycle_momentum = check_bool(cycle_momentum, "cycle_momentum")
        three_phase = check_bool(three_phase, "three_phase")
        self.use_beta1 = "betas" in optimizer.defaults
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and not self.use_beta1:
                raise ValueError(f"cycle_momentum=True needs an optimizer with momentum or "
                                 f"betas, {type(optimizer).__name__} has neither; pass "
                                 f"cycle_momentum=False")
            max_momenta = _per_group(max_momentum, "max_momentum", len(groups), low=0.0)
            base_momenta = _per_group(base_momentum, "base_momentum", len(groups), low=0.0)
        needed = list(_PHASE_LRS) + (list(_PHASE_MOMENTA) if self.cycle_momentum else [])
        if last_epoch != -1:
            missing = [i for i, group in enumerate(groups) if any(k not in group for k in needed)]
            if missing:
                raise ValueError(f"last_epoch={last_epoch} resumes a schedule, which needs "
                                 f"{needed} in every param group (restored by "
                                 f"optimizer.load_state_dict), but param groups {missing} "
                                 f"lack some")

        warm = float(pct_start * total_steps) - 1
        up, down = ("initial_lr", "max_lr"), ("max_lr", "initial_lr")
        falling, rising = ("max_momentum", "base_momentum"), ("base_momentum", "max_momentum")
        if three_phase:
            self._schedule_phases = [
                _phase(warm, up, falling),
                _phase(float(2 * pct_start * total_steps) - 2, down, rising),
                _phase(total_steps - 1, ("initial_lr", "min_lr"), ("max_momentum",) * 2)]
        else:
            self._schedule_phases = [
                _phase(warm, up, falling),
                _phase(total_steps - 1, ("max_lr", "min_lr"), rising)]

        if last_epoch == -1:
            for i, group in enumerate(groups):
                group["initial_lr"] = max_lrs[i] / div_factor
                group["max_lr"] = max_lrs[i]
                group["min_lr"] = group["initial_lr"] / final_div_factor
                if self.cycle_momentum:
                    self._set_momentum(group, max_momenta[i])
                    group["max_momentum"] = max_momenta[i]
                    group["base_momentum"] = base_momenta[i]
        super().__init__(optimizer, last_epoch)

    def _check_options(self):
        self.total_steps = check_int(self.total_steps, "total_steps", 1)
        self._anneal_func_type = check_choice(self._anneal_func_type, "anneal_strategy",
                                               ("cos", "linear"))
        self.cycle_momentum = check_bool(self.cycle_momentum, "cycle_momentum")
        self.use_beta1 = check_bool(self.use_beta1, "use_beta1")
        phases = self._schedule_phases
        if not isinstance(phases, list) or not phases:
            raise ValueError(f"_schedule_phases must be a non-empty list, got {phases!r}")
        for i, phase in enumerate(phases):
            if not isinstance(phase, dict):
                raise ValueError(f"_schedule_phases[{i}] must be a dict, got {phase!r}")
            check_real(phase.get("end_step"), f"_schedule_phases[{i}]['end_step']")
            for key, names in (("start_lr", _PHASE_LRS), ("end_lr", _PHASE_LRS),
                               ("start_momentum", _PHASE_MOMENTA),
                               ("end_momentum", _PHASE_MOMENTA)):
                check_choice(phase.get(key), f"_schedule_phases[{i}][{key!r}]", names)

    def _check_loaded(self):
        super()._check_loaded()
        if self.last_epoch > self.total_steps:  # get_lr() refuses to step this far
            raise ValueError(f"state_dict['last_epoch'] must be at most total_steps="
                             f"{self.total_steps}, got {self.last_epoch}")

    def load_state_dict(self, state_dict: dict) -> None:
        if isinstance(state_dict, dict) and "use_beta1" not in state_dict:
            # torch's state_dict has no use_beta1 when cycle_momentum=False
            state_dict = {**state_dict, "use_beta1": "betas" in self.optimizer.defaults}
        super().load_state_dict(state_dict)

    def _set_momentum(self, group: dict, value: float) -> None:
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def get_lr(self):
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR stepped {step} times, past total_steps="
                             f"{self.total_steps}; build it with a larger total_steps (or "
                             f"epochs * steps_per_epoch) to train longer")
        phases, kind = self._schedule_phases, self._anneal_func_type
        start = 0.0
        for i, phase in enumerate(phases):
            end = phase["end_step"]
            if step <= end or i == len(phases) - 1:
                break
            start = end
        # a phase of zero length is at its end (torch divides by zero there)
        pct = (step - start) / (end - start) if end != start else 1.0
        lrs = []
        for group in self.optimizer.param_groups:
            lrs.append(_anneal(kind, group[phase["start_lr"]], group[phase["end_lr"]], pct))
            if self.cycle_momentum:
                self._set_momentum(group, _anneal(kind, group[phase["start_momentum"]],
                                                  group[phase["end_momentum"]], pct))
        return lrs


# ---- on a metric ----------------------------------------------------------------------
class ReduceLROnPlateau(LRScheduler):
    """lr *= factor (not below min_lr) once the metric given to step(metric) has not
    improved for more than patience epochs; then wait cooldown epochs before counting.

    An improvement beats the best so far by more than threshold: relative
    (best * (1 -/+ threshold)) or absolute (best -/+ threshold) for mode 'min' / 'max'.
    A reduction smaller than eps is skipped.
    """

    _saved = ("factor", "default_min_lr", "min_lrs", "patience", "cooldown", "eps",
              "last_epoch", "_last_lr", "mode", "threshold", "threshold_mode", "best",
              "cooldown_counter", "num_bad_epochs")

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr=0, eps: float = 1e-8):
        _check_optimizer(optimizer)
        n_groups = len(optimizer.param_groups)
        if isinstance(min_lr, (list, tuple)):
            self.default_min_lr = None
            self.min_lrs = _per_group(list(min_lr), "min_lr", n_groups, low=0.0)
        else:
            self.default_min_lr = check_real(min_lr, "min_lr", 0.0)
            self.min_lrs = [self.default_min_lr] * n_groups
        self.optimizer = optimizer
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.eps = cooldown, eps
        self._check_options()
        self.last_epoch = 0
        self._last_lr = self._current_lrs()
        self._reset()

    def _check_options(self):
        self.mode = check_choice(self.mode, "mode", ("min", "max"))
        self.threshold_mode = check_choice(self.threshold_mode, "threshold_mode",
                                            ("rel", "abs"))
        self.factor = check_real(self.factor, "factor", 0.0, 1.0, high_open=True)
        self.patience = check_int(self.patience, "patience", 0)
        self.cooldown = check_int(self.cooldown, "cooldown", 0)
        self.threshold = check_real(self.threshold, "threshold", 0.0)
        self.eps = check_real(self.eps, "eps", 0.0)

    def _check_loaded(self):
        self._check_options()
        if self.default_min_lr is not None:
            self.default_min_lr = check_real(self.default_min_lr, "default_min_lr", 0.0)
        if not isinstance(self.min_lrs, list):
            raise ValueError(f"state_dict['min_lrs'] must be a list, got {self.min_lrs!r}")
        self.min_lrs = [check_real(v, f"min_lrs[{i}]", 0.0) for i, v in enumerate(self.min_lrs)]
        self.last_epoch = check_int(self.last_epoch, "last_epoch", 0)
        # state_dict() saves "no metric yet" (best = +-inf) as None, for strict JSON
        if self.best is None:
            self.best = self.mode_worse
        self.best = check_real(self.best, "best", finite=False)
        self.cooldown_counter = check_int(self.cooldown_counter, "cooldown_counter", 0)
        self.num_bad_epochs = check_int(self.num_bad_epochs, "num_bad_epochs", 0)
        if not isinstance(self._last_lr, list):
            raise ValueError(f"state_dict['_last_lr'] must be a list, got {self._last_lr!r}")

    def state_dict(self) -> dict:
        state = super().state_dict()
        if math.isinf(state["best"]):
            state["best"] = None
        return state

    @property
    def mode_worse(self) -> float:
        """The best value before any metric: worse than every real one."""
        return math.inf if self.mode == "min" else -math.inf

    @property
    def in_cooldown(self) -> bool:
        return self.cooldown_counter > 0

    def _reset(self) -> None:
        self.best = self.mode_worse
        self.cooldown_counter = 0
        self.num_bad_epochs = 0

    def _is_better(self, value: float, best: float) -> bool:
        if self.mode == "min":
            bar = best * (1.0 - self.threshold) if self.threshold_mode == "rel" \
                else best - self.threshold
            return value < bar
        bar = best * (1.0 + self.threshold) if self.threshold_mode == "rel" \
            else best + self.threshold
        return value > bar

    def get_lr(self) -> list:
        """The current lrs: this schedule changes them only in step(metrics)."""
        return self._current_lrs()

    def step(self, metrics) -> None:
        """Record this epoch's metric (e.g. validation loss); reduce the lr on a plateau."""
        try:
            current = float(metrics)
        except (TypeError, ValueError):
            raise TypeError(f"metrics must be a real number (e.g. the validation loss), got "
                            f"{describe(metrics)}") from None
        self.last_epoch += 1
        if self._is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.in_cooldown:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown do not count
        if self.num_bad_epochs > self.patience:
            self._reduce_lr()
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = self._current_lrs()

    def _reduce_lr(self) -> None:
        groups = self.optimizer.param_groups
        if len(groups) != len(self.min_lrs):
            if self.default_min_lr is None:
                raise RuntimeError(f"the optimizer has {len(groups)} param groups but "
                                   f"min_lr was given for {len(self.min_lrs)}; set "
                                   f"scheduler.min_lrs to one value per group")
            self.min_lrs = [self.default_min_lr] * len(groups)
        for group, floor in zip(groups, self.min_lrs):
            old = float(group["lr"])
            new = max(old * self.factor, floor)
            if old - new > self.eps:
                group["lr"] = new
