"""Argument checks shared by the Python API: each returns the value as a plain
Python number (or bool / str) or raises TypeError for the wrong kind and
ValueError for a value out of range, naming the argument, what was expected
and what it received."""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

import numpy as np


def describe(value) -> str:
    """A received value for an error message: its type and repr."""
    return f"{type(value).__name__} {value!r}"


INT64_MAX = 2 ** 63 - 1


def check_int(value, name: str, low: Optional[int] = 0,
              high: Optional[int] = INT64_MAX) -> int:
    """value as an int in [low, high] (no bound where None; bools refused). Sizes and counts
    end up as int64 in C, hence the default high."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {describe(value)}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return int(value)


def check_real(value, name: str, low: float = -math.inf, high: float = math.inf,
               low_open: bool = False, high_open: bool = False, finite: bool = True) -> float:
    """value as a float in the interval given; TypeError / ValueError naming it."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {describe(value)}")
    try:
        v = float(value)
    except OverflowError:  # an int beyond float's range
        raise ValueError(f"{name} must be a finite number, got an int of "
                         f"{int(value).bit_length()} bits") from None
    if finite and not math.isfinite(v):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    above = v > low if low_open else v >= low
    below = v < high if high_open else v <= high
    if not (above and below):
        if high == math.inf:
            wanted = f"{'>' if low_open else '>='} {low:g}"
        else:
            wanted = (f"in {'(' if low_open else '['}{low:g}, {high:g}"
                      f"{')' if high_open else ']'}")
        raise ValueError(f"{name} must be {wanted}, got {value!r}")
    return v


def check_bool(value, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {describe(value)}")
    return bool(value)


def check_choice(value, name: str, choices: Sequence[str]) -> str:
    if value not in choices or not isinstance(value, str):
        options = " or ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be {options}, got {value!r}")
    return value
