"""Which classes fastnn.load may build: fastnn.nn's modules, fastnn.models' models,
and the classes registered with register_module. A file names classes only by
these names."""
from __future__ import annotations

import functools
from typing import Dict, Optional, Tuple

from fastnn import models, nn
from fastnn.nn.module import Module

_registered: Dict[str, type] = {}


@functools.lru_cache(maxsize=None)
def builtins() -> Dict[str, type]:
    """fastnn.nn's and fastnn.models' module classes by name (every Module subclass in
    their __all__)."""
    found = {}
    for package in (nn, models):
        for name in package.__all__:
            obj = getattr(package, name)
            if isinstance(obj, type) and issubclass(obj, Module) and obj is not Module:
                found[name] = obj
    return found


def register_module(cls):
    """Make a Module subclass loadable by fastnn.load under its class name; returns cls,
    so it works as a decorator. The class must define get_config() returning its
    constructor's keyword arguments as JSON values (the file holds them, and
    fastnn.load calls cls(**config) with them), or be a container (see
    fastnn.nn.container_protocol)."""
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register_module takes a subclass of fastnn.nn.Module, got {cls!r}")
    name = cls.__name__
    builtin = builtins().get(name)
    if builtin is cls:
        return cls
    if builtin is not None:
        raise ValueError(f"cannot register {cls.__module__}.{cls.__qualname__}: {name!r} is "
                         f"{builtin.__module__.rsplit('.', 1)[0]}.{name}; give the class "
                         f"another name")
    old = _registered.get(name)
    if old is not None and old is not cls and \
            (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"cannot register {cls.__module__}.{cls.__qualname__}: {name!r} is "
                         f"already registered for {old.__module__}.{old.__qualname__}")
    _registered[name] = cls  # the same class defined again (a re-run notebook cell) replaces it
    return cls


def lookup(name: str) -> Tuple[Optional[type], bool]:
    """(class, is_builtin) for a registered name, (None, False) otherwise."""
    builtin = builtins().get(name)
    if builtin is not None:
        return builtin, True
    return _registered.get(name), False
