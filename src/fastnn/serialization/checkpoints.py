"""Training checkpoints: save_checkpoint / load_checkpoint (model arrays,
optimizer state, scheduler state, epoch, extras and fastnn's random stream in
one safetensors file; the layout is in fastnn.serialization's docstring)."""
from __future__ import annotations

import contextlib
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
            steps[str(index)] = float(np.asarray(entry.get("step", 0)))
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


def _optimizer_state(reader: Reader, optimizer) -> dict:
    """The checkpoint's optimizer state_dict, checked against `optimizer`'s type."""
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
    steps, groups = saved["steps"], saved["param_groups"]
    if not isinstance(steps, dict) or not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), list)
            and all(type(i) is int for i in g["params"]) for g in groups):
        raise ValueError(f"{path}: the optimizer's param groups or steps are malformed")
    state = {}
    for index, step in steps.items():
        if not re.fullmatch(r"0|[1-9][0-9]{0,9}", index) or type(step) not in (int, float):
            raise ValueError(f"{path}: the optimizer's steps are malformed")
        state[int(index)] = {"step": float(step)}
    for key in reader.stored:
        m = _OPT_KEY.fullmatch(key)
        if key.startswith("optimizer.") and (m is None or int(m.group(1)) not in state):
            raise ValueError(f"{path}: unexpected tensor {short(key)}")
        if m is not None:
            state[int(m.group(1))][m.group(2)] = reader.tensor(key)
    for group, current in zip(groups, optimizer.param_groups):
        for k, v in group.items():  # JSON made tuples (Adam's betas) lists
            if isinstance(current.get(k), tuple) and isinstance(v, list):
                group[k] = tuple(v)
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
        raise ValueError(f"{path}: cannot restore the checkpoint: {type(err).__name__}: "
                         f"{err}") from None
    return {"epoch": epoch, **{k: v for k, v in extra.items() if k != "epoch"}}
