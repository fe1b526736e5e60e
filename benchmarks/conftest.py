"""Fixtures for the pytest-benchmark suite (run with ``pytest benchmarks/``).

Thread counts are pinned for the whole session: FASTNN_BENCH_THREADS, else 2,
for fastnn and (when installed) torch. Unlike ``fastnn bench``, every library
runs in this one process, so the thread pools of fastnn and torch coexist;
prefer the CLI for cross-library numbers and this suite for tracking fastnn
over time (``--benchmark-autosave`` / ``--benchmark-compare``).
"""
import os

import pytest

import fastnn
from fastnn import bench


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
