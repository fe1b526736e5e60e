"""Sequential and ModuleList.

Sequential runs its modules in order and backward in reverse. A Linear
directly followed by ReLU, Sigmoid or Tanh runs as one GEMM with the
activation in its epilogue, and backward goes through both in one call
(ops.linear_backward with the activation's output); the activation module
keeps that output, so calling its own backward still works.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Iterator, Union

from fastnn.nn.activation import OUTPUT, ReLU, Sigmoid, Tanh
from fastnn.nn.container_protocol import Container, IndexedContainer
from fastnn.nn.linear import Linear
from fastnn.nn.module import Module, structure_version

_FUSED = {ReLU: "relu", Sigmoid: "sigmoid", Tanh: "tanh"}


def _check_module(m, where: str) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{where} takes Modules, got {type(m).__name__}")
    return m


class Sequential(Container, Module):
    """Sequential(m0, m1, ...) or Sequential(OrderedDict(name=module, ...))."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(str(name), _check_module(m, "Sequential"))
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), _check_module(m, "Sequential"))

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: Union[int, slice]):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(OrderedDict(list(self._modules.items())[idx]))
        try:
            return mods[idx]
        except (IndexError, TypeError):
            raise IndexError(f"index {idx!r} is out of range for a Sequential of "
                             f"{len(mods)} modules") from None

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self._modules)), _check_module(module, "Sequential.append"))
        return self

    def _plan(self):
        """(steps, first): each step a (module, fused activation or None, its name),
        and the index of the first step holding parameters; cached until the
        module structure changes anywhere."""
        version = structure_version()
        plan = self.__dict__.get("_cached_plan")
        if plan is not None and plan[0] == version:
            return plan[1], plan[2]
        mods = list(self._modules.values())
        steps, i = [], 0
        while i < len(mods):
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            act = _FUSED.get(type(nxt))
            if type(mods[i]) is Linear and act is not None:
                steps.append((mods[i], nxt, act))
                i += 2
            else:
                steps.append((mods[i], None, None))
                i += 1
        first = next((k for k, (m, _, _) in enumerate(steps)
                      if any(True for _ in m.parameters())), len(steps))
        self.__dict__["_cached_plan"] = (version, steps, first)
        return steps, first

    def forward(self, x):
        steps, _ = self._plan()
        for module, act, name in steps:
            if act is None:
                x = module(x)
            else:
                x = module.forward_activation(x, name)
                act.__dict__[OUTPUT] = x  # act.keep_output(x), without the call
        return x

    def backward(self, grad_out, input_grad: bool = True):
        steps, first = self._plan()
        # with input_grad=False, modules before the first one holding
        # parameters need no gradient at all
        last = 0 if input_grad else first
        g = grad_out
        for k in range(len(steps) - 1, last - 1, -1):
            module, act, name = steps[k]
            if act is None:
                g = module.backward(g, input_grad=input_grad or k > last)
            else:  # one call through the activation and the layer
                y = act.__dict__.get(OUTPUT)
                if y is None:
                    y = act.output()  # raises the "backward before forward" error
                g = module.backward_activation(g, name, y, input_grad or k > last)
        return g if input_grad else None


class ModuleList(IndexedContainer, Module):
    """A list of modules that registers them (for parameters(), state_dict(), ...)."""

    def __init__(self, modules: Iterable[Module] = ()):
        super().__init__()
        self.extend(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx):
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])
        try:
            return mods[idx]
        except (IndexError, TypeError):
            raise IndexError(f"index {idx!r} is out of range for a ModuleList of "
                             f"{len(mods)} modules") from None

    def __setitem__(self, idx: int, module: Module) -> None:
        n = len(self._modules)
        if not -n <= idx < n:
            raise IndexError(f"index {idx} is out of range for a ModuleList of {n} modules")
        self.add_module(str(idx % n), _check_module(module, "ModuleList"))

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self._modules)), _check_module(module, "ModuleList.append"))
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def forward(self, x):
        raise NotImplementedError("ModuleList has no forward: iterate over it in your own "
                                  "Module's forward")
