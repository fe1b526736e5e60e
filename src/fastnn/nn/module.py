"""Module: the base of every layer and model, with PyTorch's names.

Parameters, buffers and sub-modules register when assigned as attributes;
``named_parameters()`` gives dotted names ("0.weight", "encoder.bias") that
``state_dict()`` and ``load_state_dict()`` share with PyTorch.

The contract (no autograd tape):
- ``forward(*inputs)`` computes the outputs and, unless inside
  ``fastnn.no_grad()``, pushes what its backward needs as one context on the
  module's own stack (``self._save(...)``).
- ``backward(*grad_outputs, input_grad=True)`` pops the latest context
  (``self._saved()``), adds parameter gradients into ``param.grad`` and returns
  the gradient with respect to the input: one array for one input, a tuple in
  argument order for several (None for an input without a gradient, such as
  class labels), or None when input_grad=False (a first layer then skips that
  product). A module with several outputs takes one gradient per output, None
  standing for zeros.
- A module may run k times before its backwards, which then come in reverse
  order (a cell applied over time, an encoder shared by two branches): each
  backward uses its own call's context, so the gradients are exact.
- Contexts that are never consumed do not pile up: those saved before the
  latest optimizer step (on the same thread) are dropped (a new training step starts), and at most
  MAX_SAVED_CALLS are kept per module (the oldest go, with a warning). Use
  ``fastnn.no_grad()`` for forwards you will not differentiate.
- ``train()`` / ``eval()`` change only layer behaviour (Dropout, BatchNorm), so
  a model in eval mode can still be differentiated.
Containers (Sequential, Residual, Concat) own backward, so a block built from
them needs none written by hand.

Module.fit / predict / evaluate (Keras-style training) are not defined here:
nn sits below the training loop, so fastnn.training attaches them to Module
when it is imported, which `import fastnn` always does.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, Iterator, List, NamedTuple, Optional, Tuple

import threading
import warnings

import numpy as np

from fastnn.nn.grad_mode import _mode as _grad_mode
from fastnn.nn.parameter import FlatBuffer, Parameter, flatten_parameters

# How many unconsumed forward contexts one module keeps (the oldest are dropped).
MAX_SAVED_CALLS = 1024


_structure = [0]  # bumped whenever any module gains or loses a parameter or child


def structure_version() -> int:
    """Changes whenever parameters or sub-modules are added or removed anywhere
    (containers cache their plans against it)."""
    return _structure[0]


class _TrainingStep(threading.local):
    """This thread's step count, bumped by every optimizer step: contexts saved
    before it are stale. Per thread, as grad mode is, so that models trained in
    different threads at once do not end each other's steps."""
    value = 0


_step = _TrainingStep()


def start_new_step() -> None:
    """Mark a new training step on this thread: forward contexts it saved before
    now will not be used by any backward and are dropped (Optimizer.step calls this)."""
    _step.value += 1


class IncompatibleKeys(NamedTuple):
    missing_keys: List[str]
    unexpected_keys: List[str]


class Module:
    """Base class: subclass it, call ``super().__init__()`` first, then
    assign Parameters and Modules as attributes; define ``forward(x)`` and
    ``backward(grad_out, input_grad=True)``."""

    # Declared fusion (see containers.Sequential): an activation names the epilogue
    # it is (`epilogue`); a layer lists the epilogues its forward_fused(x, epilogue)
    # can apply (`epilogues`), its backward(grad_out, input_grad) then going through both.
    epilogue = None
    epilogues = ()
    # Declared folding (Sequential, eval mode without gradients): a normalization
    # names what it is (`foldable`, e.g. BatchNorm's running statistics); a layer
    # lists the ones its forward_folded(x, norm, epilogue) folds into its weights.
    foldable = None
    folds = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # a subclass that rewrites forward or backward is no longer what its base
        # declared it could fuse, unless it declares so again itself
        if "forward" in cls.__dict__ or "backward" in cls.__dict__:
            if "epilogue" not in cls.__dict__:
                cls.epilogue = None
            if "epilogues" not in cls.__dict__:
                cls.epilogues = ()
            if "foldable" not in cls.__dict__:
                cls.foldable = None
            if "folds" not in cls.__dict__:
                cls.folds = ()

    def __init__(self):
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_modules"] = OrderedDict()
        d["_contexts"] = []      # per-call saved state (step, values), latest last

    # ---- registration ---------------------------------------------------------------
    def _registries(self):
        try:
            d = self.__dict__
            return d["_parameters"], d["_buffers"], d["_modules"]
        except KeyError:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 f"before assigning attributes") from None

    def __setattr__(self, name: str, value) -> None:
        params, buffers, modules = self._registries()
        if isinstance(value, (Parameter, Module)) or name in params or name in modules:
            _structure[0] += 1
        if isinstance(value, Parameter):
            buffers.pop(name, None)
            modules.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif name in buffers:
            if value is None:
                del buffers[name]
            else:
                value = np.asarray(value)
                buffers[name] = value
        else:
            params.pop(name, None)
            modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        _structure[0] += 1
        for registry in self._registries():
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, value: Optional[np.ndarray]) -> None:
        """A named array saved in state_dict but not trained (running statistics)."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"buffer name must be a non-empty string without '.', got {name!r}")
        params, buffers, modules = self._registries()
        if name in params or name in modules:
            raise ValueError(f"{name!r} is already a parameter or sub-module")
        buffers[name] = None if value is None else np.asarray(value)
        object.__setattr__(self, name, buffers[name])

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"param must be a Parameter or None, got {type(param).__name__}")
        setattr(self, name, param)
        if param is None:
            self._registries()[0][name] = None

    def add_module(self, name: str, module: Optional["Module"]) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"module must be a Module or None, got {type(module).__name__}")
        setattr(self, name, module)
        if module is None:
            self._registries()[2][name] = None

    # ---- per-call contexts ------------------------------------------------------------
    def _save(self, *values) -> None:
        """Push what this call's backward needs (nothing inside fastnn.no_grad()).
        Each context is (step, values): the training step it belongs to."""
        if _grad_mode.enabled:
            stack = self.__dict__["_contexts"]
            step = _step.value
            if stack and (stack[-1][0] != step or len(stack) >= MAX_SAVED_CALLS):
                self._make_room(stack, step)
            stack.append((step, values))

    def _make_room(self, stack: list, step: int) -> None:
        if stack[-1][0] != step:  # all saved before the latest optimizer step: stale
            stack.clear()
            return
        del stack[0]
        d = self.__dict__
        if not d.get("_warned_contexts"):
            d["_warned_contexts"] = True
            warnings.warn(f"{type(self).__name__}.forward ran {MAX_SAVED_CALLS + 1} times "
                          f"without a backward: dropping the oldest saved contexts; run "
                          f"forwards you do not differentiate inside fastnn.no_grad()",
                          RuntimeWarning, stacklevel=4)

    def _saved(self) -> tuple:
        """Pop the latest call's context: the values its forward passed to _save."""
        stack = self.__dict__["_contexts"]
        if stack:
            step, values = stack.pop()
            if step == _step.value:
                return values
            stack.clear()  # saved before the latest optimizer step
            raise RuntimeError(f"{type(self).__name__}.backward called after an optimizer step "
                               f"with no forward since: run the forward again")
        raise RuntimeError(f"{type(self).__name__}.backward called before forward (or after "
                           f"a forward inside fastnn.no_grad(), which saves nothing)")

    def discard_saved(self) -> None:
        """Drop the latest call's context without a backward (what a container
        does for the modules before the first one that needs a gradient)."""
        stack = self.__dict__["_contexts"]
        if stack:
            stack.pop()

    def has_pending_backward(self) -> bool:
        """Whether a forward of the current training step still waits for its
        backward (after this module's last backward of a step: False, so its
        parameters' gradients are complete; a data-parallel overlap relies on it)."""
        stack = self.__dict__["_contexts"]
        return bool(stack) and stack[-1][0] == _step.value

    def clear_saved(self) -> None:
        """Drop the unconsumed forward contexts of this module and its sub-modules."""
        for m in self.modules():
            m.__dict__["_contexts"].clear()

    # ---- running --------------------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} must define forward(x)")

    def backward(self, *grad_outputs, input_grad: bool = True):
        raise NotImplementedError(f"{type(self).__name__} must define "
                                  f"backward(grad_out, input_grad=True)")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self) -> None:
        """Zero every parameter's gradient (one fill per shared flat buffer)."""
        params = list(self.parameters())
        own = {id(p) for p in params}
        filled = set()
        for p in params:
            flat = p._flat
            if flat is not None and all(id(q) in own for q in flat.params):
                if id(flat) not in filled:
                    filled.add(id(flat))
                    flat.grad.fill(0.0)
            else:
                p.grad.fill(0.0)

    def flat_buffer(self) -> FlatBuffer:
        """This module's parameters (named_parameters order) in one contiguous
        data array and one gradient array (`.data`, `.grad`, `.params`), every
        Parameter a view: one fill zeroes all gradients, one collective call
        averages them across processes. Made on first use (adopting a buffer that
        already holds exactly them), kept while they stay; optimizer groups made
        afterwards that are consecutive runs of it reuse it."""
        return flatten_parameters(list(self.parameters()))

    # ---- traversal ------------------------------------------------------------------
    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        for name, m in self._modules.items():
            if m is not None:
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        seen = set()

        def walk(module, pre):
            if id(module) in seen:
                return
            seen.add(id(module))
            yield pre, module
            for name, child in module.named_children():
                yield from walk(child, f"{pre}.{name}" if pre else name)

        yield from walk(self, prefix)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def _named_members(self, registry: str, prefix: str, recurse: bool):
        seen = set()
        owners = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mod_prefix, module in owners:
            for name, value in module.__dict__[registry].items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True
                         ) -> Iterator[Tuple[str, Parameter]]:
        yield from self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True
                      ) -> Iterator[Tuple[str, np.ndarray]]:
        yield from self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def apply(self, fn) -> "Module":
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def num_parameters(self) -> int:
        return sum(p.size for p in self.parameters())

    # ---- state ----------------------------------------------------------------------
    def _state_items(self, prefix: str = "") -> Iterator[Tuple[str, np.ndarray]]:
        """Every saved array in PyTorch's order: per module, parameters then buffers,
        then the children's; a module reached by several paths (shared) is listed
        under each, as in PyTorch."""
        d = self.__dict__
        for registry in ("_parameters", "_buffers"):
            for name, value in d[registry].items():
                if value is not None:
                    yield prefix + name, value.data if isinstance(value, Parameter) else value
        for name, child in d["_modules"].items():
            if child is not None:
                yield from child._state_items(f"{prefix}{name}.")

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter and buffer under PyTorch's keys."""
        return OrderedDict((k, np.array(v, copy=True)) for k, v in self._state_items())

    def load_state_dict(self, state_dict, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays (NumPy, or anything np.asarray takes, e.g. torch tensors)
        into this module's parameters and buffers, in place.

        Raises ValueError naming every missing, unexpected (when strict) and
        mis-shaped key; nothing is changed unless every key checks out."""
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"state_dict must be a mapping of names to arrays, got "
                            f"{type(state_dict).__name__}")
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        problems, staged = [], []
        for key, target in own.items():
            if key not in state_dict:
                continue
            try:
                value = np.asarray(state_dict[key])
            except Exception as err:  # noqa: BLE001 - anything unconvertible is the user's input
                problems.append(f"{key}: cannot convert {type(state_dict[key]).__name__} ({err})")
                continue
            if value.shape != target.shape:
                problems.append(f"size mismatch for {key}: expected {target.shape}, "
                                f"got {value.shape}")
            elif value.dtype.kind not in "biuf":
                problems.append(f"{key}: expected real numbers, got dtype {value.dtype}")
            else:
                staged.append((target, value))
        if strict:
            if missing:
                problems.insert(0, f"missing key(s): {', '.join(missing)}")
            if unexpected:
                problems.insert(0, f"unexpected key(s): {', '.join(map(str, unexpected))}")
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__} failed: "
                             + "; ".join(problems))
        for target, value in staged:
            np.copyto(target, value, casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    # ---- architecture (fastnn.save / fastnn.load) -------------------------------------
    def get_config(self) -> dict:
        """The constructor's keyword arguments (JSON values) that rebuild this
        module's architecture; containers describe their children instead."""
        raise NotImplementedError(f"{type(self).__name__} does not describe its constructor "
                                  f"arguments: define get_config() to save its architecture")

    @classmethod
    def state_shapes(cls, config: dict) -> Optional[Dict[str, tuple]]:
        """{state_dict key: (shape tuple, safetensors dtype "F32" / "I64")} that a
        module built with the constructor arguments `config` (by name, defaults
        filled in, values straight from a file: raise ValueError for a wrong type)
        holds, so fastnn.load checks a file's tensors before allocating anything.
        {} for a layer without arrays; None (this default) for "unknown, build
        the module to find out"."""
        return None

    # ---- printing -------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        for name, child in self._modules.items():
            child_repr = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_repr}")
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"


def to_float32(x, name: str = "x") -> np.ndarray:
    """x as an aligned float32 C-contiguous ndarray (no copy when it already is one):
    what module forwards cache for their backward (and in-place layers write)."""
    if (type(x) is np.ndarray and x.dtype == np.float32 and x.flags.c_contiguous
            and x.flags.aligned):
        return x
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be an array-like of real numbers, got "
                        f"{type(x).__name__} ({err})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=np.float32, order="C")  # (ascontiguousarray makes 0-d 1-d)
    return arr if arr.flags.aligned else arr.copy()  # (asarray keeps a misaligned view)


class Stateless:
    """Mixin (before Module) for a layer without parameters or buffers:
    fastnn.load then knows its state from the class alone."""

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        return {}
