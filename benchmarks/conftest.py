"""Fixtures for the pytest-benchmark suite (run with ``pytest benchmarks/``).

Thread counts are pinned for the whole session: FASTNN_BENCH_THREADS, else 2,
for fastnn and (when installed) torch, and for NumPy's BLAS through
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS, set below before
NumPy is imported (if something imported NumPy earlier, e.g. when running
together with tests/, its BLAS keeps its own count: the numpy rows record the
count actually used as extra_info blas_threads). Unlike ``fastnn bench``, every
library runs in this one process, so the thread pools of fastnn, torch and
OpenBLAS coexist; prefer the CLI for cross-library numbers and this suite for
tracking fastnn over time (``--benchmark-autosave`` / ``--benchmark-compare``).
"""
import os
import sys


def _early_threads():
    text = os.environ.get("FASTNN_BENCH_THREADS", "").strip() or "2"
    return text if text.isdigit() and int(text) > 0 else None


if "numpy" not in sys.modules and _early_threads():   # NumPy's BLAS reads these on load
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _early_threads()

import pytest  # noqa: E402

import fastnn  # noqa: E402
from fastnn import bench  # noqa: E402


def bench_threads():
    text = os.environ.get("FASTNN_BENCH_THREADS", "").strip()
    if not text:
        return bench.DEFAULT_THREADS
    try:
        n = int(text)
    except ValueError:
        raise pytest.UsageError(f"FASTNN_BENCH_THREADS must be a positive integer, got {text!r}")
    if n < 1:
        raise pytest.UsageError(f"FASTNN_BENCH_THREADS must be >= 1, got {n}")
    return n


@pytest.fixture(scope="session", autouse=True)
def pinned_threads():
    """Pin fastnn's and torch's thread counts for the session; restore fastnn's after."""
    n = bench_threads()
    previous = fastnn.get_num_threads()
    fastnn.set_num_threads(n)
    try:
        import torch
    except ImportError:
        torch = None
    else:
        torch.set_num_threads(n)
    yield n
    fastnn.set_num_threads(previous)


@pytest.fixture(scope="session")
def fma_peak(request, pinned_threads):
    """fastnn's measured FMA peak (bench.measure_fma_peak) on the pinned thread
    count, or None with --benchmark-disable (nothing is timed then)."""
    if request.config.getoption("benchmark_disable", False):
        return None
    return bench.measure_fma_peak()


class _LastCase:
    """Inputs and fastnn's reference result of the most recent case, so the
    three implementations of one case share them (16M cases are large)."""

    def __init__(self):
        self.case_id = None
        self.inputs = self.reference = None

    def get(self, case):
        if case.id != self.case_id:
            self.case_id = self.inputs = self.reference = None
            inputs = case.inputs()
            self.reference = bench.reference_result(case, inputs)
            self.inputs, self.case_id = inputs, case.id
        return self.inputs, self.reference


@pytest.fixture(scope="session")
def case_data():
    return _LastCase()


@pytest.fixture
def timed(benchmark, case_data):
    """timed(case, lib) -> the median seconds of lib's implementation of case
    under pytest-benchmark (None with --benchmark-disable). Skips torch when it
    is missing; checks the result against fastnn's first (CheckError); runs in
    lib's context (torch: no_grad); records the formulation and, for numpy, the
    BLAS thread count actually used in extra_info."""
    def run(case, lib):
        if lib == "torch":
            pytest.importorskip("torch")
        inputs, reference = case_data.get(case)
        prepared = bench.prepare(case, lib, inputs, reference)
        benchmark.extra_info["formulation"] = prepared.formulation
        if lib == "numpy":
            benchmark.extra_info["blas_threads"] = bench.numpy_blas_threads()
        with bench.library_context(lib):
            benchmark(prepared.fn)
        stats = getattr(benchmark, "stats", None)
        return None if stats is None else stats.stats.median
    return run
