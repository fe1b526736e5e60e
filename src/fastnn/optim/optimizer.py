"""Optimizer: the base of every update rule of fastnn.optim.

Parameters are given as an iterable of Parameters or of param-group dicts
({"params": [...], "lr": ...}) whose missing options take the optimizer's
defaults, as torch.optim. Each group's parameters (data and gradients) are
one contiguous buffer (fastnn.nn.parameter.flatten_parameters): a view of the
model's own buffer (Module.flat_buffer()) when the group is a consecutive run
of it, else storage the group's parameters move into; and its state (momentum,
moment estimates) is one flat array per kind, so a step is one C kernel call per
group and zero_grad is one fill. A rule's per-parameter scalars (torch's 0-d
state tensors: NAdam's mu_product, ASGD's eta and mu) are one float32 array per
kind with an element per parameter; they agree while the group's parameters
step together, so the group's step updates the first and copies it on.

state_dict() / load_state_dict() use torch.optim's layout: {"state": {index:
{"step": ..., "mu_product": 0-d array, "exp_avg": array, ...}}, "param_groups": [{options..., "params":
[indices]}]}, indices counting parameters across groups in order (a rule
that keeps no step count, as SGD, saves only its buffers).

Every optimizer takes torch's maximize (ascend: the update starts from -grad)
and torch's implementation switches foreach, fused, capturable and
differentiable, which are kept in the param groups as torch keeps them:
foreach and fused (None or a bool) change nothing, since every step here is
already one fused C kernel call per group; capturable=True (CUDA graphs) and
differentiable=True (autograd through the step) cannot be honoured on fastnn's
CPU kernels without autograd and raise ValueError.
"""
from __future__ import annotations

import math
import numbers
import struct
from abc import ABC, abstractmethod
from operator import attrgetter
from typing import Dict, List, Union

import numpy as np

from fastnn._args import check_bool
from fastnn.nn.module import start_new_step

_requires_grad = attrgetter("requires_grad")  # for all(map(...)): no Python frame per parameter
from fastnn.nn.parameter import FlatBuffer, Parameter, flatten_parameters


_FLOAT32_MAX = float(np.finfo(np.float32).max)


_FLOAT32 = struct.Struct("f")  # packing rounds to nearest, as the kernels' (float) casts


def _as_float32(value, name: str, index=None):
    """An option's real numbers (a float, or a tuple / list of them such as betas)
    rounded to float32; ValueError for one beyond float32's range."""
    if type(value) is float:  # the common case, without the ABC checks below
        if abs(value) <= _FLOAT32_MAX:
            return _FLOAT32.unpack(_FLOAT32.pack(value))[0]
    elif isinstance(value, (tuple, list)):
        return type(value)(_as_float32(v, name, i) for i, v in enumerate(value))
    elif isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return value  # check_group judges what is no number
    elif isinstance(value, numbers.Integral) and abs(value) <= _FLOAT32_MAX:
        return value
    elif abs(value) <= _FLOAT32_MAX:
        return float(np.float32(value))
    if not (isinstance(value, numbers.Integral) or math.isfinite(value)):
        return value  # nan, inf: check_group says "finite"
    where = name if index is None else f"{name}[{index}]"
    raise ValueError(f"{where} must be at most {_FLOAT32_MAX:g} in magnitude (a float32, as "
                     f"the update kernels take it), got {value!r}")


def _rounded_onto_whole(rounded, value) -> bool:
    """Whether float32 rounding moved a value onto a whole number, the only kind of
    bound it can cross (betas < 1 taking 1 - 1e-9 to 1.0): rounding is monotonic."""
    if isinstance(rounded, (tuple, list)):
        return any(_rounded_onto_whole(r, v) for r, v in zip(rounded, value))
    return type(rounded) is float and rounded != value and rounded.is_integer()


def check_common(group: dict) -> None:
    """maximize and torch's implementation switches, where a group has them."""
    if "maximize" in group:
        check_bool(group["maximize"], "maximize")
    for name in ("foreach", "fused"):
        if name in group and group[name] is not None:
            check_bool(group[name], name)
    for name, why in (("capturable", "capturable=True is for CUDA graphs; fastnn steps on "
                                     "the CPU"),
                      ("differentiable", "differentiable=True needs autograd through the "
                                         "step, which fastnn does not have")):
        if name in group and check_bool(group[name], name):
            raise ValueError(why)


class Optimizer(ABC):
    """An update rule is a subclass giving the three methods below."""

    keeps_step = True   # state_dict() holds a "step" per parameter (torch's SGD: no)

    @abstractmethod
    def state_names(self, group: dict) -> List[str]:
        """The state arrays the rule keeps per element, given a group's options."""

    def scalar_state(self, group: dict) -> Dict[str, float]:
        """The scalars the rule keeps per parameter (torch's 0-d state tensors, in
        torch's order), each with its value before the first step; none by default."""
        return {}

    @abstractmethod
    def check_group(self, group: dict) -> None:
        """Raise ValueError for an invalid option in `group`."""

    @abstractmethod
    def update(self, group: dict, data: np.ndarray, grad: np.ndarray,
               state: Dict[str, np.ndarray], step: int, fresh: List[str]) -> None:
        """One step of the rule on flat views (all (n,) float32, in place; the
        scalar state as float32 arrays of one element); `fresh` names the state
        arrays created (as zeros) for this step."""

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: List[dict] = []
        self._buffers: List[FlatBuffer] = []
        self._state: List[Dict[str, np.ndarray]] = []
        # per group, each parameter's own step count: one int while they all agree
        self._steps: List[Union[int, List[int]]] = []
        self._checked: List[tuple] = []     # per group, the option values last validated
        if isinstance(params, Parameter):
            raise TypeError("params must be an iterable of Parameters or dicts, got a single "
                            "Parameter; wrap it in a list")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict) -> None:
        if not isinstance(param_group, dict) or "params" not in param_group:
            raise TypeError("a param group must be a dict with a 'params' entry")
        group = dict(param_group)
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"optimizer params must be fastnn Parameters, got "
                                f"{type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter appears twice in one param group")
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self.validate_group(group)
        self.param_groups.append(group)
        self._buffers.append(flatten_parameters(params))
        self._state.append({})
        self._steps.append(0)
        self._checked.append(tuple(v for k, v in group.items() if k != "params"))

    def validate_group(self, group: dict) -> None:
        """check_group(group), then again with its options as the float32 values the
        C kernels take: lr=1e300 is a finite float but no float32, and a beta of
        1 - 1e-9 rounds to 1.0; both would otherwise fail only at the first step()."""
        rounded = {k: _as_float32(group[k], k) for k in self.defaults if k in group}
        check_common(group)
        self.check_group(group)
        if any(_rounded_onto_whole(rounded[k], group[k]) for k in rounded):
            try:
                self.check_group({**group, **rounded})
            except ValueError as err:
                raise ValueError(f"{err} (as float32, which the update kernels use)") from None

    def _recheck(self, i: int, group: dict) -> None:
        """Validate group i again when a scheduler or the user changed an option."""
        options = tuple(v for k, v in group.items() if k != "params")
        if self._checked[i] != options:
            self.validate_group(group)
            self._checked[i] = options

    def _buffer(self, i: int) -> FlatBuffer:
        """Group i's flat buffer, rebuilt if its parameters were moved since."""
        params = self.param_groups[i]["params"]
        if not self._buffers[i].owns(params):
            self._buffers[i] = flatten_parameters(params)
        return self._buffers[i]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero every gradient (one fill per group; gradients are arrays, never None)."""
        for i in range(len(self.param_groups)):
            self._buffer(i).grad.fill(0.0)

    def step(self, closure=None):
        """One update of every trainable parameter; returns closure() if given.
        Ends the training step: forward contexts not consumed by a backward by
        now are dropped (see fastnn.nn.Module)."""
        loss = closure() if closure is not None else None
        for i, group in enumerate(self.param_groups):
            self._recheck(i, group)
            buf = self._buffer(i)
            state = self._state[i]
            names = self.state_names(group)
            fresh = [name for name in names if name not in state]
            for name in fresh:
                state[name] = np.zeros(buf.data.size, np.float32)
            params, steps = group["params"], self._steps[i]
            scalars = self.scalar_state(group)
            for name, start in scalars.items():
                if name not in state:
                    state[name] = np.full(len(params), start, np.float32)
            if type(steps) is int and all(map(_requires_grad, params)):
                self._steps[i] = steps = steps + 1
                if not scalars:
                    self.update(group, buf.data, buf.grad, state, steps,
                                names if steps == 1 else fresh)
                    continue
                self.update(group, buf.data, buf.grad,
                            {**state, **{name: state[name][:1] for name in scalars}}, steps,
                            names if steps == 1 else fresh)
                for name in scalars:  # the parameters step together: one value for all
                    state[name][1:] = state[name][0]
                continue
            # frozen parameters (requires_grad False) are skipped, as torch skips
            # a parameter without a gradient; each keeps its own step count
            if type(steps) is int:
                self._steps[i] = steps = [steps] * len(params)
            offset = 0
            for k, p in enumerate(params):
                end = offset + p.size
                if p.requires_grad:
                    steps[k] += 1
                    if end > offset or scalars:  # torch moves the scalars of an empty one too
                        self.update(group, buf.data[offset:end], buf.grad[offset:end],
                                    {n: v[k:k + 1] if n in scalars else v[offset:end]
                                     for n, v in state.items()}, steps[k],
                                    names if steps[k] == 1 else fresh)
                offset = end
        start_new_step()  # forward contexts saved before now are stale
        return loss

    # ---- state, in torch.optim's layout -----------------------------------------------
    def state_dict(self) -> dict:
        state, groups, index = {}, [], 0
        for i, group in enumerate(self.param_groups):
            indices = []
            offset = 0
            scalars = self.scalar_state(group)
            for k, p in enumerate(group["params"]):
                end = offset + p.size
                count = self._steps[i] if type(self._steps[i]) is int else self._steps[i][k]
                if count > 0:
                    entry = {"step": float(count)} if self.keeps_step else {}
                    for name in scalars:  # before the arrays, as torch's entries
                        entry[name] = self._state[i][name][k:k + 1].reshape(()).copy()
                    for name, flat in self._state[i].items():
                        if name not in scalars:
                            entry[name] = flat[offset:end].reshape(p.shape).copy()
                    if entry:
                        state[index] = entry
                indices.append(index)
                index += 1
                offset = end
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": indices})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        try:
            groups, state = state_dict["param_groups"], state_dict["state"]
        except (TypeError, KeyError):
            raise ValueError("state_dict must have 'state' and 'param_groups' entries") from None
        if len(groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(groups)} param groups, this optimizer "
                             f"has {len(self.param_groups)}")
        staged, index = [], 0
        for i, (saved, group) in enumerate(zip(groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"param group {i} has {len(saved['params'])} parameters in "
                                 f"state_dict and {len(group['params'])} here")
            options = {k: v for k, v in saved.items() if k != "params"}
            candidate = {**group, **options}
            self.validate_group(candidate)
            scalars = self.scalar_state(candidate)
            flat: Dict[str, np.ndarray] = {name: np.full(len(group["params"]), start, np.float32)
                                           for name, start in scalars.items()}
            steps = []
            offset = 0
            n = sum(p.size for p in group["params"])
            for k, (saved_index, p) in enumerate(zip(saved["params"], group["params"])):
                end = offset + p.size
                entry = state.get(saved_index, state.get(str(saved_index)))
                steps.append(0)
                if entry is not None:
                    # torch's SGD keeps no step count: a saved buffer means it has stepped
                    steps[-1] = (int(float(np.asarray(entry["step"]))) if "step" in entry
                                 else int(len(entry) > 0))
                    for name, value in entry.items():
                        if name == "step":
                            continue
                        value = np.asarray(value, dtype=np.float32)
                        if name in scalars:
                            if value.size != 1:
                                raise ValueError(f"state {name!r} of parameter {saved_index} "
                                                 f"has shape {value.shape}, expected () (a "
                                                 f"scalar)")
                            flat[name][k] = value.reshape(())
                            continue
                        if value.shape != p.shape:
                            raise ValueError(f"state {name!r} of parameter {saved_index} has "
                                             f"shape {value.shape}, expected {p.shape}")
                        flat.setdefault(name, np.zeros(n, np.float32))[offset:end] = \
                            value.reshape(-1)
                offset = end
                index += 1
            # the parameters step together while their counts and scalars agree
            together = (bool(steps) and steps.count(steps[0]) == len(steps) and
                        not any(np.unique(flat[name]).size > 1 for name in scalars))
            staged.append((group, options, flat, steps[0] if together else steps))
        for i, (group, options, flat, steps) in enumerate(staged):
            group.update(options)
            self._state[i] = flat
            self._steps[i] = steps

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(k for k in group if k != "params"):
                lines.append(f"    {key}: {group[key]}")
        return "\n".join(lines) + "\n)"
