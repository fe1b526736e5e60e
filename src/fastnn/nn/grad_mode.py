"""Gradient mode: whether forwards save what their backward needs.

    with fastnn.no_grad():          # inference: nothing is saved, nothing grows
        out = model(x)

    @fastnn.no_grad()               # or as a decorator
    def predict(x): ...

As in PyTorch, no_grad, enable_grad and set_grad_enabled(mode) work as
context managers and decorators; is_grad_enabled() tells the current mode.
The mode is per thread (a thread starts with gradients enabled). It is
independent of train()/eval(), which change only layer behaviour.
"""
from __future__ import annotations

import functools
import threading

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]


class _Mode(threading.local):
    enabled = True


_mode = _Mode()


def is_grad_enabled() -> bool:
    """True unless inside no_grad() (or set_grad_enabled(False)) on this thread."""
    return _mode.enabled


class _ModeBlock:
    """Sets `mode` on entry and restores the previous mode on exit."""

    def __init__(self, mode: bool):
        self._mode = mode
        self._previous = True

    def __enter__(self):
        self._previous = _mode.enabled
        _mode.enabled = self._mode
        return self

    def __exit__(self, *exc) -> bool:
        _mode.enabled = self._previous
        return False

    def __call__(self, fn):
        mode = self._mode

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with _ModeBlock(mode):
                return fn(*args, **kwargs)
        return wrapper


class set_grad_enabled(_ModeBlock):
    """Set the gradient mode at once when called; the previous mode comes back
    on leaving a `with` block. As a decorator it applies only inside the function."""

    def __init__(self, mode: bool):
        super().__init__(bool(mode))
        self._previous = _mode.enabled
        _mode.enabled = self._mode

    def __enter__(self):
        return self  # already set by the call

    def __call__(self, fn):
        _mode.enabled = self._previous
        return super().__call__(fn)


class no_grad(_ModeBlock):
    """Forwards inside save nothing for backward (context manager or decorator)."""

    def __init__(self):
        super().__init__(False)


class enable_grad(_ModeBlock):
    """Gradients on again inside a no_grad block (context manager or decorator)."""

    def __init__(self):
        super().__init__(True)
