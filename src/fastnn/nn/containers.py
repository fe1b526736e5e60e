"""Sequential and ModuleList.

Sequential runs its modules in order and backward in reverse. A Linear
directly followed by ReLU, Sigmoid or Tanh runs as one GEMM with the
activation in its epilogue; the activation module keeps the output for its
backward, so gradients are unchanged.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Iterator, Union

from fastnn.nn.activation import ReLU, Sigmoid, Tanh
from fastnn.nn.linear import Linear
from fastnn.nn.module import Module

_FUSED = {ReLU: "relu", Sigmoid: "sigmoid", Tanh: "tanh"}


def _check_module(m, where: str) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{where} takes Modules, got {type(m).__name__}")
    return m


class Sequential(Module):
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

    def forward(self, x):
        mods = list(self._modules.values())
        i = 0
        while i < len(mods):
            m = mods[i]
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            act = _FUSED.get(type(nxt))
            if type(m) is Linear and act is not None:
                x = m.forward_activation(x, act)
                nxt.keep_output(x)
                i += 2
            else:
                x = m(x)
                i += 1
        return x

    def backward(self, grad_out, input_grad: bool = True):
        mods = list(self._modules.values())
        # with input_grad=False, modules before the first one holding
        # parameters need no gradient at all
        first = 0
        if not input_grad:
            first = next((i for i, m in enumerate(mods) if any(True for _ in m.parameters())),
                         len(mods))
        g = grad_out
        for i in range(len(mods) - 1, first - 1, -1):
            g = mods[i].backward(g, input_grad=input_grad or i > first)
        return g if input_grad else None


class ModuleList(Module):
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
