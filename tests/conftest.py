"""Shared fixtures: every kernel test runs on every ISA path this CPU has.

FASTNN_ISA=generic|avx2|avx512 in the environment narrows the run to that one
path (CI runs the kernel tests once per path that way); without it the
`isa` fixture parametrizes over all available paths, switching the active
kernel table in-process.
"""
import os

import numpy as np
import pytest

import fastnn
from fastnn import _C

_ALL = [name for name in _C.ISA_NAMES if name in _C.compiled_isas()
        and _C.ISA_NAMES.index(name) <= _C.ISA_NAMES.index(_C.best_isa())]
_FORCED = os.environ.get("FASTNN_ISA", "").strip().lower() or None
ISAS = [_FORCED] if _FORCED else _ALL


@pytest.fixture(params=ISAS)
def isa(request):
    """Run the test with request.param as the active ISA path, then restore."""
    previous = _C.active_isa()
    _C.init_isa(request.param)
    yield request.param
    _C.init_isa(previous)


@pytest.fixture(params=[1, 2], ids=lambda n: f"{n}thr")
def threads(request):
    with fastnn.num_threads(request.param):
        yield request.param


@pytest.fixture
def parity(isa, threads):
    """fastnn on ISA path `isa` with `threads` threads, torch with as many."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
