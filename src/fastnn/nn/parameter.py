"""Parameter: a trainable float32 array with its gradient, and flat storage.

A Parameter owns two float32 C-contiguous arrays of one shape: ``data`` and
``grad``. Backward passes add into ``grad`` (it accumulates until zeroed).
Assigning to ``.data`` or ``.grad`` copies into the existing storage, so views
handed out earlier (for example, by an optimizer's flat buffer) stay valid.

flatten_parameters(params) moves the data and gradients of several
parameters into one contiguous buffer each, every parameter keeping a view,
so an optimizer step or a zero_grad is one pass over one array.
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
    """One contiguous data array and one gradient array behind `params`."""

    __slots__ = ("params", "data", "grad", "stale")

    def __init__(self, params: List[Parameter]):
        total = sum(p.size for p in params)
        self.params = params
        self.stale = False  # set once any of params moves to another buffer
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

    def owns(self, params: List[Parameter]) -> bool:
        """True while every one of `params` still lives in this buffer, in order."""
        if self.stale or len(params) != len(self.params):
            return False
        return params is self.params or all(p is q for p, q in zip(params, self.params))


def flatten_parameters(params: Iterable[Parameter]) -> FlatBuffer:
    """Put `params` into one FlatBuffer (no copy when they already share one).
    A list is kept as the buffer's own (so its owner's owns() test is O(1))."""
    params = params if type(params) is list else list(params)
    for p in params:
        if not isinstance(p, Parameter):
            raise TypeError(f"expected Parameters, got {type(p).__name__}")
    if params and params[0]._flat is not None and params[0]._flat.owns(params):
        return params[0]._flat
    return FlatBuffer(params)
