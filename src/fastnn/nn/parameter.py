"""Parameter: a trainable float32 array with its gradient, and flat storage.

A Parameter owns two float32 C-contiguous arrays of one shape: ``data`` and
``grad``. Backward passes add into ``grad`` (it accumulates until zeroed).
Assigning to ``.data`` or ``.grad`` copies into the existing storage, so views
handed out earlier (for example, by an optimizer's flat buffer) stay valid.

flatten_parameters(params) moves the data and gradients of several
parameters into one contiguous buffer each, every parameter keeping a view,
so an optimizer step or a zero_grad is one pass over one array. A model owns
its buffer (Module.flat_buffer()); optimizer groups that are consecutive runs
of it get views of it instead of storage of their own.
"""
from __future__ import annotations

from typing import Iterable, List

import numpy as np

_F32 = np.dtype(np.float32)


class Parameter:
    """A trainable array: ``data`` and ``grad`` (float32, same shape)."""

    __slots__ = ("_data", "_grad", "requires_grad", "_flat")

    def __init__(self, data, requires_grad: bool = True):
        if isinstance(data, Parameter):
            data = data.data
        try:
            arr = np.array(data, dtype=np.float32, order="C", copy=True)
        except (TypeError, ValueError) as err:
            raise TypeError(f"Parameter data must be an array-like of real numbers, got "
                            f"{type(data).__name__} ({err})") from None
        self._data = arr
        self._grad = np.zeros_like(arr)
        self.requires_grad = bool(requires_grad)
        self._flat = None

    def _assign(self, target: np.ndarray, value, name: str) -> None:
        arr = np.asarray(value, dtype=np.float32)
        if arr.shape != target.shape:
            raise ValueError(f"Parameter.{name} must keep the shape {target.shape}, got "
                             f"{arr.shape}")
        np.copyto(target, arr)

    @property
    def data(self) -> np.ndarray:
        return self._data

    @data.setter
    def data(self, value) -> None:
        self._assign(self._data, value, "data")

    @property
    def grad(self) -> np.ndarray:
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is None:
            self._grad.fill(0.0)
        else:
            self._assign(self._grad, value, "grad")

    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def size(self) -> int:
        return self._data.size

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    def numel(self) -> int:
        return self._data.size

    def numpy(self) -> np.ndarray:
        return self._data

    def __array__(self, dtype=None, copy=None):
        if dtype is None and not copy:
            return self._data
        return np.array(self._data, dtype=dtype, copy=True)

    def __repr__(self) -> str:
        return f"Parameter containing:\n{self._data!r}"


class FlatBuffer:
    """One contiguous data array and one gradient array behind `params`.

    FlatBuffer(params) moves them into new storage; FlatBuffer(params, base,
    start) is a view of a consecutive run of base's parameters starting at
    base.params[start] (no copy): how an optimizer group reuses its model's buffer."""

    __slots__ = ("params", "data", "grad", "stale", "base", "_index")

    def __init__(self, params: List[Parameter], base: "FlatBuffer" = None, start: int = 0):
        self.params = params
        self.stale = False  # set once any of params moves to another buffer
        self.base = base
        self._index = None  # id(param) -> (position, element offset), built on first use
        if base is not None:
            offset = base._offsets()[id(base.params[start])][1]
            total = sum(p.size for p in params)
            self.data = base.data[offset:offset + total]
            self.grad = base.grad[offset:offset + total]
            return
        total = sum(p.size for p in params)
        self.data = np.empty(total, dtype=np.float32)
        self.grad = np.empty(total, dtype=np.float32)
        offset = 0
        for p in params:
            n = p.size
            data = self.data[offset:offset + n].reshape(p.shape)
            grad = self.grad[offset:offset + n].reshape(p.shape)
            np.copyto(data, p._data)
            np.copyto(grad, p._grad)
            if p._flat is not None:
                p._flat.stale = True
            p._data, p._grad, p._flat = data, grad, self
            offset += n

    def _offsets(self) -> dict:
        if self._index is None:
            index, offset = {}, 0
            for k, p in enumerate(self.params):
                index[id(p)] = (k, offset)
                offset += p.size
            self._index = index
        return self._index

    def owns(self, params: List[Parameter]) -> bool:
        """True while every one of `params` still lives in this buffer, in order."""
        if self.stale or (self.base is not None and self.base.stale) or \
                len(params) != len(self.params):
            return False
        return params is self.params or all(p is q for p, q in zip(params, self.params))

    def run_start(self, params: List[Parameter]):
        """The position of params[0] if `params` are consecutive parameters of this
        (storage-owning, current) buffer, else None."""
        if self.stale or self.base is not None or not params:
            return None
        found = self._offsets().get(id(params[0]))
        if found is None:
            return None
        start = found[0]
        mine = self.params[start:start + len(params)]
        if len(mine) != len(params) or any(p is not q for p, q in zip(params, mine)):
            return None
        return start


def flatten_parameters(params: Iterable[Parameter]) -> FlatBuffer:
    """Put `params` into one FlatBuffer: the one they already fill, a view when
    they are a consecutive run of one (a model's buffer seen by an optimizer
    group), else new storage they move into. A list is kept as the buffer's own
    (so its owner's owns() test is O(1))."""
    params = params if type(params) is list else list(params)
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"expected Parameters, got {type(p).__name__}")
    flat = params[0]._flat if params else None
    if flat is not None:
        if flat.owns(params):
            return flat
        start = flat.run_start(params)
        if start is not None:
            return FlatBuffer(params, flat, start)
    return FlatBuffer(params)


def grad_buffer(p):
    """The gradient buffer a layer's backward adds into for parameter p: p.grad, or
    None when p is None or needs no gradient."""
    return p._grad if p is not None and p.requires_grad else None
