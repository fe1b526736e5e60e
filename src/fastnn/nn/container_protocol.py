"""What fastnn.save / fastnn.load need from modules: the Container protocol,
and the argument checks a layer's ``state_shapes`` uses.

Containers. A module whose sub-modules *are* its structure (Sequential,
ModuleList, Residual, Concat, ...) inherits ``Container`` before ``Module``::

    class Concat(Container, Module):
        def __init__(self, *branches, dim=1): ...
        def container_config(self):                  # its own options, JSON values
            return {"dim": self.dim}
        @classmethod
        def from_children(cls, children, **config):  # children: [(name, module), ...]
            return cls(*(m for _, m in children), **config)

fastnn.save writes a container as {"class": name, "children": [[name, spec],
...]} from ``named_children()`` (with "config": container_config() when that
is not empty); fastnn.load rebuilds the children first, then calls
``cls.from_children(children, **config)``. The rebuilt container must have
exactly those children under those names (fastnn.load checks) and, for
fastnn's own containers, report the same container_config().

- ``container_config(self) -> dict``: the constructor's keyword arguments that
  are not modules (JSON scalars and lists). Default: {}.
- ``from_children(cls, children, **config)``: rebuild from the rebuilt children
  (a list of (name, module) pairs in named_children() order) and those options.
  Default: ``cls(**config)`` and then ``add_module(name, child)`` for each
  child, which fits containers that start empty (Sequential). A container whose
  constructor takes its modules (Residual(body, shortcut=None), Concat) defines
  its own. Raise ValueError for children it cannot take.

``IndexedContainer`` is a Container whose children are positions named
"0", "1", ... (ModuleList): its from_children refuses other names.

Layer state. A layer class describes the arrays its constructor's arguments
imply with the classmethod ``state_shapes(config) -> {key: (shape, dtype)}``
(see Module.state_shapes); ``config_int`` and ``config_bool`` check the values
it reads, raising ValueError as fastnn.load expects.
"""
from __future__ import annotations

from typing import List, Tuple

__all__ = ["Container", "IndexedContainer", "config_int", "config_bool"]


class Container:
    """Mixin for modules made of named children; see the module docstring."""

    def container_config(self) -> dict:
        """This container's own (non-module) constructor options, as JSON values."""
        return {}

    @classmethod
    def from_children(cls, children: List[Tuple[str, object]], **config):
        """A new container holding `children` ((name, module) pairs, in order)."""
        container = cls(**config)
        for name, child in children:
            container.add_module(name, child)
        return container


class IndexedContainer(Container):
    """A Container whose children are named by position: "0", "1", ..."""

    @classmethod
    def check_positions(cls, children) -> None:
        """ValueError unless the children are named "0", "1", ... in order."""
        for i, (name, _) in enumerate(children):
            if name != str(i):
                raise ValueError(f"{cls.__name__} child {i} must be named \"{i}\", got "
                                 f"{name!r}")

    @classmethod
    def from_children(cls, children, **config):
        cls.check_positions(children)
        return super().from_children(children, **config)


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def config_int(config: dict, name: str, low: int = 0) -> int:
    """config[name] as an int >= low, else ValueError (bools and floats refused)."""
    value = config[name]
    if type(value) is not int or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {_short(value)}")
    return value


def config_bool(config: dict, name: str) -> bool:
    """config[name] as a bool, else ValueError."""
    value = config[name]
    if type(value) is not bool:
        raise ValueError(f"{name} must be true or false, got {_short(value)}")
    return value
