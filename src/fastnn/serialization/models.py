"""Model files: save (weights and architecture) and load (rebuilt, checked
before anything is allocated); the layout is in fastnn.serialization's docstring."""
from __future__ import annotations

from fastnn.nn.container_protocol import Container
from fastnn.nn.module import Module
from fastnn.serialization.architecture import Plan, build, describe
from fastnn.serialization.files import Reader, compare, dumps, header, state_signature, write

__all__ = ["save", "load"]


def save(model: Module, path) -> None:
    """Write model's state_dict and architecture to a .safetensors file at path
    (atomically: an existing file is replaced only once the new one is complete).
    Every module must be a container (Sequential, ModuleList, ...), a fastnn.nn
    layer or loss, or a class registered with fastnn.register_module that defines
    get_config(); otherwise TypeError, and nothing is written."""
    if not isinstance(model, Module):
        raise TypeError(f"fastnn.save takes a fastnn.nn.Module, got {type(model).__name__}")
    architecture = describe(model, "model", 0)
    slots = [v for leaf in _leaves(model) for v in _unique_slots(leaf)]
    if len({id(v) for v in slots}) != len(slots):
        raise ValueError("cannot save a model that uses one module or parameter in two places "
                         "(tied weights): fastnn.load would build them apart; save its "
                         "weights with fastnn.save_checkpoint and restore them with "
                         "model.load_state_dict(fastnn.load_state_dict(path))")
    write(path, model.state_dict(), {**header("model"), "architecture": dumps(architecture)})


def _leaves(module: Module):
    """Every described module position (a layer, or a container's own state), shared
    ones as often as they appear. A layer is rebuilt whole by its constructor, so
    what it shares inside itself (GPT's tied head) comes back shared."""
    yield module
    if isinstance(module, Container):
        for _, child in module.named_children():
            yield from _leaves(child)


def _unique_slots(module: Module):
    """The parameters and buffers a described position holds: a container's own, or
    everything under a layer, each once."""
    seen = {}
    mods = [module] if isinstance(module, Container) else list(module.modules())
    for m in mods:
        for registry in ("_parameters", "_buffers"):
            for v in m.__dict__[registry].values():
                if v is not None:
                    seen.setdefault(id(v), v)
    return list(seen.values())


def load(path) -> Module:
    """Rebuild the model fastnn.save wrote at path and load its weights; it comes
    back in training mode, as a freshly built module. ValueError naming the file
    for anything wrong with its contents (see fastnn.serialization's docstring)."""
    reader = Reader(path)
    reader.expect("model", "use fastnn.load_checkpoint(path, model, ...)")
    plan = Plan(reader.path)
    root = plan.node(reader.json("architecture"), "", "model", 0)
    plan.check_stored(reader.stored)
    model = build(root, reader.path)
    problems = compare(state_signature(model), reader.stored)
    if problems:
        raise ValueError(f"{reader.path}: the tensors do not match the rebuilt model: "
                         + "; ".join(problems))
    state = {k: reader.tensor(k) for k in reader.stored}
    try:
        model.load_state_dict(state, strict=True)
    except ValueError as err:
        raise ValueError(f"{reader.path}: {err}") from None
    return model.train()
