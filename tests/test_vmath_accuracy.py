"""Worst-case error of the vector math (exp, sigmoid, tanh, erf) against float64
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


@pytest.mark.parametrize("name", FUNCS)
def test_sampled_error_within_documented_bound(name, isa):
    max_ulp, worst_x, max_subnormal, specials = measure_accuracy.measure(name, step=4099)
    assert max_ulp <= measure_accuracy.MAX_ULP[name], f"{name} at x={worst_x!r}"
    assert max_subnormal <= measure_accuracy.MAX_ABS_SUBNORMAL
    assert specials


@pytest.mark.slow
@pytest.mark.parametrize("name", FUNCS)
def test_exhaustive_error_within_documented_bound(name, isa):
    max_ulp, worst_x, max_subnormal, specials = measure_accuracy.measure(name, step=1)
    assert max_ulp <= measure_accuracy.MAX_ULP[name], f"{name} at x={worst_x!r}"
    assert max_subnormal <= measure_accuracy.MAX_ABS_SUBNORMAL
    assert specials
