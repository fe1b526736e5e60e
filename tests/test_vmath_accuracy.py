"""Worst-case error of the vector math (exp, sigmoid, tanh, erf, gelu) against float64
on a sample of float32 bit patterns, with the bounds docs/accuracy.md states.
The exhaustive sweep over all 2**32 inputs is `-m slow` (or
tools/measure_accuracy.py, which writes docs/accuracy.md)."""
import importlib.util
import pathlib

import pytest

pytest.importorskip("scipy")

_TOOL = pathlib.Path(__file__).resolve().parents[1] / "tools" / "measure_accuracy.py"
_spec = importlib.util.spec_from_file_location("measure_accuracy", _TOOL)
measure_accuracy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(measure_accuracy)

FUNCS = list(measure_accuracy.MAX_ULP)


@pytest.mark.parametrize("step", [4099, pytest.param(1, marks=pytest.mark.slow, id="all")])
@pytest.mark.parametrize("name", FUNCS)
def test_error_within_documented_bound(name, step, isa):
    """Every `step`-th bit pattern: 4099 by default, all 2**32 with -m slow."""
    max_ulp, worst_x, max_subnormal, specials = measure_accuracy.measure(name, step=step)
    assert max_ulp <= measure_accuracy.MAX_ULP[name], f"{name} at x={worst_x!r}"
    assert max_subnormal <= measure_accuracy.MAX_ABS_SUBNORMAL[name]
    assert specials
