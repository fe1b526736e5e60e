"""Training checkpoints: save_checkpoint / load_checkpoint (model arrays,
optimizer state, scheduler state, epoch, extras and fastnn's random stream in
one safetensors file; the layout is in fastnn.serialization's docstring)."""
from __future__ import annotations

import contextlib
import math
import re

import numpy as np

from fastnn.nn.module import Module
from fastnn.random import get_rng_state, set_rng_state
from fastnn.serialization.files import (Reader, compare, dumps, header, short, state_signature,
                                        to_json, write)

__all__ = ["save_checkpoint", "load_checkpoint"]


def save_checkpoint(path, model: Module, optimizer=None, scheduler=None, epoch=None,
                    **extra) -> None:
    """Write everything a resumed training run needs to one .safetensors file
    (atomically): model arrays, optimizer state, scheduler state, epoch, fastnn's
    random stream and `extra` (JSON values: ints, floats, strings, lists, dicts)."""
    if not isinstance(model, Module):
        raise TypeError(f"save_checkpoint takes a fastnn.nn.Module, got {type(model).__name__}")
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    metadata = header("checkpoint")
    if optimizer is not None:
        sd = optimizer.state_dict()
        steps = {}
        for index, entry in sd["state"].items():
            # a rule without a step count (SGD) saves an entry only once it has stepped
            steps[str(index)] = float(np.asarray(entry.get("step", 1)))
            for name, value in entry.items():
                if name != "step":
                    tensors[f"optimizer.state.{index}.{name}"] = np.array(value)
        metadata["optimizer"] = dumps({
            "class": type(optimizer).__name__, "steps": steps,
            "param_groups": to_json(sd["param_groups"], "the optimizer's param_groups")})
    if scheduler is not None:
        metadata["scheduler"] = dumps({
            "class": type(scheduler).__name__,
            "state": to_json(scheduler.state_dict(), "the scheduler's state_dict()")})
    metadata["epoch"] = dumps(to_json(epoch, "epoch"))
    metadata["extra"] = dumps(to_json(extra, "the extra keyword arguments"))
    metadata["rng"] = dumps(get_rng_state())
    write(path, tensors, metadata)


_OPT_KEY = re.compile(r"optimizer\.state\.(0|[1-9][0-9]{0,9})\.([A-Za-z_][A-Za-z0-9_]*)")
_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")
MAX_STEP = 2**53  # a step count a float holds exactly (save_checkpoint writes floats)


def _same_kind(saved, current) -> bool:
    """Whether a saved option is of the kind of the optimizer's own value for it."""
    if isinstance(current, bool):
        return isinstance(saved, bool)
    if isinstance(current, (int, float)):
        return isinstance(saved, (int, float)) and not isinstance(saved, bool)
    if isinstance(current, (tuple, list)):
        return isinstance(saved, list) and len(saved) == len(current) and all(
            _same_kind(s, c) for s, c in zip(saved, current))
    return True  # anything else: the optimizer's own check judges it


def _param_groups(reader: Reader, optimizer, groups) -> list:
    """The saved param groups, checked by the optimizer's own rules (validate_group,
    as its constructor), with JSON's lists turned back into tuples; ValueError naming
    the file and the option."""
    path = reader.path
    if not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), list)
            and all(type(i) is int for i in g["params"]) for g in groups):
        raise ValueError(f"{path}: the optimizer's param groups are malformed")
    if len(groups) != len(optimizer.param_groups):
        raise ValueError(f"{path}: the checkpoint has {len(groups)} param groups, this "
                         f"optimizer has {len(optimizer.param_groups)}")
    indices = [i for g in groups for i in g["params"]]
    if sorted(indices) != list(range(len(indices))):
        raise ValueError(f"{path}: the optimizer's param_groups must number their "
                         f"parameters 0, 1, 2, ... once each, got {short(indices)}")
    checked = []
    for i, (saved, current) in enumerate(zip(groups, optimizer.param_groups)):
        where = f"{path}: optimizer param_groups[{i}]"
        if len(saved["params"]) != len(current["params"]):
            raise ValueError(f"{where} has {len(saved['params'])} parameters, the "
                             f"optimizer's has {len(current['params'])}")
        missing = [k for k in optimizer.defaults if k not in saved]
        if missing:
            raise ValueError(f"{where} lacks the option(s) {', '.join(map(repr, missing))}")
        group = dict(saved)
        for key, value in saved.items():
            if key == "params" or key not in current:
                continue
            if not _same_kind(value, current[key]):
                raise ValueError(f"{where}[{key!r}] must be a value like this optimizer's "
                                 f"{short(current[key])}, got {short(value)}")
            if isinstance(current[key], tuple):
                group[key] = tuple(value)
            elif isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{where}[{key!r}] must be a finite number, got {value!r}")
        try:
            optimizer.validate_group({**current, **group})
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where}: {err}") from None
        checked.append(group)
    return checked


def _optimizer_state(reader: Reader, optimizer) -> dict:
    """The checkpoint's optimizer state_dict, checked against `optimizer` before
    anything is loaded: its class, its param groups (by the optimizer's own rules),
    per-parameter step counts (whole numbers >= 1), and exactly the state arrays the
    optimizer's state_names() and scalar_state() ask for, float32, finite and shaped
    like their parameter (the scalars: shape ()). ValueError naming the file and the
    key."""
    path = reader.path
    saved = reader.json("optimizer", required=False)
    if saved is None:
        raise ValueError(f"{path} holds no optimizer state; call load_checkpoint without "
                         f"an optimizer")
    if not isinstance(saved, dict) or set(saved) != {"class", "steps", "param_groups"}:
        raise ValueError(f"{path}: the optimizer metadata is malformed")
    name = type(optimizer).__name__
    if saved["class"] != name:
        raise ValueError(f"{path} holds the state of optimizer class "
                         f"{short(saved['class'])}; the optimizer given is {name}")
    groups = _param_groups(reader, optimizer, saved["param_groups"])
    owner = {}  # parameter index -> (its parameter, its group's state names, its scalars)
    for group, current in zip(groups, optimizer.param_groups):
        options = {**current, **group}
        scalars = list(optimizer.scalar_state(options))
        for index, param in zip(group["params"], current["params"]):
            owner[index] = (param, scalars + optimizer.state_names(options), scalars)
    steps = saved["steps"]
    if not isinstance(steps, dict):
        raise ValueError(f"{path}: the optimizer's steps are malformed")
    state = {}
    for index, step in steps.items():
        if not _INDEX.fullmatch(index) or int(index) not in owner:
            raise ValueError(f"{path}: optimizer steps[{short(index)}] names no parameter "
                             f"of the param groups")
        if type(step) not in (int, float) or not 1 <= step <= MAX_STEP or step != int(step):
            raise ValueError(f"{path}: optimizer steps[{index!r}] must be a whole number of "
                             f"steps in [1, 2**53], got {short(step)}")
        state[int(index)] = {"step": float(step)}
    for key, (shape, dtype) in reader.stored.items():
        if not key.startswith("optimizer."):
            continue
        m = _OPT_KEY.fullmatch(key)
        if m is None or int(m.group(1)) not in state:
            raise ValueError(f"{path}: unexpected tensor {short(key)} (no parameter with "
                             f"a step count)")
        param, names, scalars = owner[int(m.group(1))]
        if m.group(2) not in names:
            raise ValueError(f"{path}: unexpected tensor {short(key)}: {name} keeps the "
                             f"state {', '.join(names) or 'nothing'} for these options")
        want = () if m.group(2) in scalars else param.shape
        if dtype != "F32" or shape != want:
            raise ValueError(f"{path}: tensor {short(key)} is {dtype} {shape}, expected "
                             f"F32 {want}")
    for index, entry in state.items():
        for state_name in owner[index][1]:
            key = f"optimizer.state.{index}.{state_name}"
            if key not in reader.stored:
                raise ValueError(f"{path}: missing tensor {key!r} (parameter {index} has "
                                 f"stepped)")
            value = reader.tensor(key)
            if not np.isfinite(value).all():
                raise ValueError(f"{path}: tensor {key!r} holds values that are not finite")
            entry[state_name] = value
    return {"state": state, "param_groups": groups}


def load_checkpoint(path, model: Module, optimizer=None, scheduler=None) -> dict:
    """Restore model, optimizer and scheduler (each optional but the model) and
    fastnn's random stream from a save_checkpoint file; returns {"epoch": ...,
    **extra}. Nothing is changed unless all of it loads: ValueError naming the file
    and what differs (another model, optimizer type, number of param groups...)."""
    reader = Reader(path)
    reader.expect("checkpoint", "use fastnn.load(path)")
    path = reader.path
    stored = {k[len("model."):]: v for k, v in reader.stored.items() if k.startswith("model.")}
    other = [k for k in reader.stored if not k.startswith(("model.", "optimizer."))]
    problems = compare(state_signature(model), stored)
    if other:
        problems.append(f"unexpected tensor(s) {', '.join(map(short, other[:8]))}")
    if problems:
        raise ValueError(f"{path}: the checkpoint does not fit this model: "
                         + "; ".join(problems))
    model_state = {k: reader.tensor("model." + k) for k in stored}
    opt_state = _optimizer_state(reader, optimizer) if optimizer is not None else None
    sched_state = None
    if scheduler is not None:
        saved = reader.json("scheduler", required=False)
        if saved is None:
            raise ValueError(f"{path} holds no scheduler state; call load_checkpoint without "
                             f"a scheduler")
        name = type(scheduler).__name__
        if not isinstance(saved, dict) or saved.get("class") != name or "state" not in saved:
            found = saved.get("class") if isinstance(saved, dict) else None
            raise ValueError(f"{path} holds the state of scheduler class {short(found)}; "
                             f"the scheduler given is {name}")
        sched_state = saved["state"]
    epoch, extra, rng = reader.json("epoch"), reader.json("extra"), reader.json("rng")
    if not isinstance(extra, dict):
        raise ValueError(f"{path}: the extra metadata must be a JSON object")

    undo = [(model, model.state_dict())]
    # the param groups exactly (a loaded group may add keys a state_dict() would keep)
    groups = [dict(g) for g in optimizer.param_groups] if optimizer is not None else []
    try:
        model.load_state_dict(model_state, strict=True)
        for part, state in ((optimizer, opt_state), (scheduler, sched_state)):
            if part is not None:
                undo.append((part, part.state_dict()))
                part.load_state_dict(state)
        set_rng_state(rng)
    except Exception as err:  # noqa: BLE001 - put back what was loaded, then report
        for part, state in reversed(undo):
            with contextlib.suppress(Exception):
                part.load_state_dict(state)
        for group, before in zip(optimizer.param_groups if groups else (), groups):
            group.clear()
            group.update(before)
        raise ValueError(f"{path}: cannot restore the checkpoint: {type(err).__name__}: "
                         f"{err}") from None
    return {"epoch": epoch, **{k: v for k, v in extra.items() if k != "epoch"}}
