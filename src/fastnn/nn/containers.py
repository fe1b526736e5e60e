"""Containers that own backward: Sequential, Residual, Concat, and ModuleList.

A block composed of them needs no hand-written backward: each container runs
its children's backwards in the reverse order of their forwards and sums the
gradients where paths meet (a module shared by two paths is exact too, since
every call has its own context).

- Sequential(m0, m1, ...): x -> m0 -> m1 -> ...; a module returning a tuple
  feeds the next one several inputs, and backward hands it one gradient each.
  A layer followed by an activation it declares it can fuse (Linear's
  `epilogues` holding the activation's `epilogue`) runs as one
  layer.forward_fused(x, epilogue) call: one GEMM with the activation in its
  epilogue, and one backward through both. A layer followed by a normalization
  it declares it can fold (Conv's `folds` holding BatchNorm's `foldable`), and
  that normalization's activation if it has one, runs in eval mode without
  gradients as one layer.forward_folded(x, norm, epilogue) call: one convolution
  with the running statistics in its weights; otherwise module by module, the
  activation inside the normalization's own passes when that declares it
  (BatchNorm's `epilogues`: BatchNorm + ReLU is one call each way).
- Residual(body, shortcut=None): y = body(x) + (shortcut(x) if shortcut else x).
- Concat(*branches, dim=1): every branch on the same input, outputs joined along dim.
- ModuleList: registers modules for a forward you write yourself.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Iterator, Optional, Union

import numpy as np

from fastnn._args import check_int
from fastnn.nn.container_protocol import Container, IndexedContainer
from fastnn.nn.grad_mode import is_grad_enabled
from fastnn.nn.module import Module, structure_version, to_float32


def _check_module(m, where: str) -> Module:
    if not isinstance(m, Module):
        raise TypeError(f"{where} takes Modules, got {type(m).__name__}")
    return m


class _Folded:
    """A plan step of Sequential: layer, norm (a foldable normalization after it)
    and act (None or the activation after norm, fused in the folded call)."""

    def __init__(self, layer: Module, norm: Module, act: Optional[Module]):
        self.layer, self.norm, self.act = layer, norm, act
        self.epilogue = None if act is None else act.epilogue
        # unfolded, the activation runs inside the norm when the norm declares it
        self.norm_fuses = act is not None and self.epilogue in norm.epilogues

    def parameters(self):
        yield from self.layer.parameters()
        yield from self.norm.parameters()

    def forward(self, input):
        # a batch of the layer's rank (an unbatched input goes module by module, where
        # the normalization refuses it as it would alone)
        x = input  # torch's name for the argument
        if not (self.layer.training or self.norm.training or is_grad_enabled()) and \
                np.ndim(x) == self.layer._n + 2:
            return self.layer.forward_folded(x, self.norm, self.epilogue)
        x = self.layer.forward(x)
        if self.norm_fuses:
            return self.norm.forward_fused(x, self.epilogue)
        x = self.norm.forward(x)
        return x if self.act is None else self.act.forward(x)

    def backward(self, grad_out, input_grad: bool = True):
        g = grad_out if self.act is None or self.norm_fuses else self.act.backward(grad_out)
        return self.layer.backward(self.norm.backward(g), input_grad=input_grad)

    def discard_saved(self) -> None:
        for m in (None if self.norm_fuses else self.act, self.norm, self.layer):
            if m is not None:
                m.discard_saved()


def _foldable(layer: Module, norm) -> bool:
    """layer folds norm (declared), norm keeps running statistics"""
    return (norm is not None and norm.foldable is not None and norm.foldable in layer.folds
            and getattr(norm, "running_mean", None) is not None)


def _add(a, b):
    """a + b for two gradients of one input (either may be a tuple of several)."""
    if type(a) is tuple:
        return tuple(y if x is None else x if y is None else np.add(x, y) for x, y in zip(a, b))
    return np.add(a, b)


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
        """(steps, first): each step a (module, epilogue it fuses or None), and the
        index of the first step holding parameters; cached until the module
        structure changes anywhere."""
        version = structure_version()
        plan = self.__dict__.get("_cached_plan")
        if plan is not None and plan[0] == version:
            return plan[1], plan[2]
        mods = list(self._modules.values())
        steps, i = [], 0
        while i < len(mods):
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            epilogue = nxt.epilogue if nxt is not None else None
            if _foldable(mods[i], nxt):
                act = mods[i + 2] if i + 2 < len(mods) else None
                if act is not None and act.epilogue not in mods[i].epilogues:
                    act = None
                steps.append((_Folded(mods[i], nxt, act), None))
                i += 2 if act is None else 3
            elif epilogue is not None and epilogue in mods[i].epilogues:
                steps.append((mods[i], epilogue))
                i += 2
            else:
                steps.append((mods[i], None))
                i += 1
        first = next((k for k, (m, _) in enumerate(steps)
                      if any(True for _ in m.parameters())), len(steps))
        self.__dict__["_cached_plan"] = (version, steps, first)
        return steps, first

    def forward(self, *inputs):
        steps, _ = self._plan()
        x = inputs[0] if len(inputs) == 1 else inputs
        for module, epilogue in steps:  # per-step overhead: kept to the bone
            if epilogue is not None:
                x = module.forward_fused(x, epilogue)
            elif type(x) is tuple:
                x = module.forward(*x)
            else:
                x = module.forward(x)
        return x

    def backward(self, *grad_outputs, input_grad: bool = True):
        steps, first = self._plan()
        # with input_grad=False, the modules before the first one holding
        # parameters need no gradient: their contexts are only dropped
        last = 0 if input_grad else first
        g = grad_outputs[0] if len(grad_outputs) == 1 else grad_outputs
        for k in range(len(steps) - 1, last - 1, -1):
            module, epilogue = steps[k]
            if epilogue is not None:  # a fusing layer: backward(grad_out, input_grad)
                g = module.backward(g, input_grad or k > last)
            elif type(g) is tuple:
                g = module.backward(*g, input_grad=input_grad or k > last)
            else:
                g = module.backward(g, input_grad=input_grad or k > last)
        for k in range(last - 1, -1, -1):
            steps[k][0].discard_saved()
        return g if input_grad else None

    def discard_saved(self) -> None:
        for module, _ in reversed(self._plan()[0]):
            module.discard_saved()


class Residual(Container, Module):
    """y = body(x) + shortcut(x), or body(x) + x without a shortcut; backward
    sums the gradients of both paths. A ResNet basic block with a strided 1x1
    shortcut, or a pre-LN transformer sub-block, is one of these."""

    def __init__(self, body: Module, shortcut: Optional[Module] = None):
        super().__init__()
        self.body = _check_module(body, "Residual body")
        if shortcut is None:
            self.add_module("shortcut", None)
        else:
            self.shortcut = _check_module(shortcut, "Residual shortcut")

    def forward(self, input):
        x = input  # torch's name for the argument
        y = to_float32(self.body(x), "Residual body output")
        s = to_float32(x if self.shortcut is None else self.shortcut(x), "Residual shortcut")
        if y.shape != s.shape:
            where = "the input" if self.shortcut is None else "the shortcut's output"
            raise ValueError(f"Residual: the body's output has shape {y.shape} but {where} has "
                             f"shape {s.shape}; give a shortcut that maps one onto the other")
        return y + s

    def backward(self, grad_out, input_grad: bool = True):
        g = to_float32(grad_out, "grad_out")
        # the reverse of forward's order, so a module shared by both paths is exact
        if self.shortcut is None:
            gs = g if input_grad else None
        else:
            gs = self.shortcut.backward(g, input_grad=input_grad)
        gb = self.body.backward(g, input_grad=input_grad)
        return _add(gb, gs) if input_grad else None

    def discard_saved(self) -> None:
        if self.shortcut is not None:
            self.shortcut.discard_saved()
        self.body.discard_saved()

    @classmethod
    def from_children(cls, children, **config):
        named = dict(children)
        if "body" not in named or set(named) - {"body", "shortcut"}:
            raise ValueError(f"Residual takes the children 'body' and optionally 'shortcut', "
                             f"got {[name for name, _ in children]}")
        return cls(named["body"], named.get("shortcut"), **config)


class Concat(IndexedContainer, Module):
    """Every branch on the same input, outputs concatenated along `dim`
    (channels by default, as an Inception block or a DenseNet layer)."""

    def __init__(self, *branches: Module, dim: int = 1):
        super().__init__()
        if not branches:
            raise ValueError("Concat needs at least one branch")
        for i, b in enumerate(branches):
            self.add_module(str(i), _check_module(b, "Concat"))
        self.dim = check_int(dim, "dim", None)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def forward(self, input):
        x = input  # torch's name for the argument
        outs = [to_float32(b(x), f"Concat branch {i} output")
                for i, b in enumerate(self._modules.values())]
        first = outs[0]
        axis = self.dim + first.ndim if self.dim < 0 else self.dim
        if not 0 <= axis < first.ndim:
            raise ValueError(f"Concat(dim={self.dim}) does not fit outputs of shape {first.shape}")
        for i, o in enumerate(outs):
            if o.ndim != first.ndim or o.shape[:axis] != first.shape[:axis] or \
                    o.shape[axis + 1:] != first.shape[axis + 1:]:
                raise ValueError(f"Concat(dim={self.dim}): branch {i} gives shape {o.shape}, "
                                 f"which does not match branch 0's {first.shape} off dim")
        self._save(axis, [o.shape[axis] for o in outs])
        return np.concatenate(outs, axis=axis)

    def backward(self, grad_out, input_grad: bool = True):
        axis, sizes = self._saved()
        g = to_float32(grad_out, "grad_out")
        bounds = np.cumsum(sizes)
        if g.ndim <= axis or g.shape[axis] != bounds[-1]:
            raise ValueError(f"grad_out must have {bounds[-1]} entries along dim {axis}, got "
                             f"shape {g.shape}")
        parts = np.split(g, bounds[:-1], axis=axis)
        total = None
        for branch, part in zip(reversed(list(self._modules.values())), reversed(parts)):
            gi = branch.backward(np.ascontiguousarray(part), input_grad=input_grad)
            if input_grad:
                total = gi if total is None else _add(total, gi)
        return total

    def discard_saved(self) -> None:
        self._saved()
        for branch in reversed(list(self._modules.values())):
            branch.discard_saved()

    def container_config(self) -> dict:
        return {"dim": self.dim}

    @classmethod
    def from_children(cls, children, **config):
        cls.check_positions(children)
        return cls(*(m for _, m in children), **config)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


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

    def forward(self, input):
        raise NotImplementedError("ModuleList has no forward: iterate over it in your own "
                                  "Module's forward")
