"""Checking, selecting and timing one implementation; the FMA-peak probe.

``prepare`` builds an implementation, checks its result against fastnn's
(``CheckError`` on a mismatch) and, when a library has several formulations,
keeps the fastest. ``time_call`` warms up, then calls the function repeatedly
for a time budget and returns the median seconds per call.
"""
from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import statistics
import threading
import time
from typing import Callable, Optional

from .core import FULL, Case, check_result


def time_call(fn, budget=FULL["budget"], warmup=FULL["warmup"], min_calls=5) -> tuple:
    """Median seconds per call of fn() and the number of timed calls.

    Warms up for `warmup` seconds (at least 2 calls), then times single calls
    until `budget` seconds have passed and at least `min_calls` were made.
    The garbage collector is off while timing.
    """
    clock = time.perf_counter
    end = clock() + warmup
    n = 0
    while n < 2 or clock() < end:
        fn()
        n += 1
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        times = []
        end = clock() + budget
        while len(times) < min_calls or clock() < end:
            t0 = clock()
            fn()
            times.append(clock() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return statistics.median(times), len(times)


def wait_threads_idle(timeout: float = 0.5, poll: float = 0.005) -> float:
    """Wait until no other thread of this process is running or runnable and
    return the seconds waited (at most `timeout`; 0 where /proc is missing).

    BLAS and OpenMP pools spin after a call before they sleep (OpenBLAS for
    2^28 cycles by default, ~0.1 s): a worker that answered at once would
    leave them spinning on the CPUs the next worker is timed on."""
    clock = time.perf_counter
    t0 = clock()
    me = str(threading.get_native_id())
    while True:
        try:
            tids = [t for t in os.listdir("/proc/self/task") if t != me]
        except OSError:
            return 0.0
        busy = False
        for tid in tids:
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if stat[stat.rindex(")") + 2] == "R":
                busy = True
                break
        waited = clock() - t0
        if not busy or waited >= timeout:
            return waited
        time.sleep(poll)


def library_context(lib: str):
    """Context to run and time `lib` in: torch.no_grad() for torch."""
    if lib == "torch":
        import torch
        return torch.no_grad()
    return contextlib.nullcontext()


@dataclasses.dataclass
class Prepared:
    fn: Callable
    formulation: str


def prepare(case: Case, lib: str, inputs: dict, reference,
            select_budget=0.05) -> Optional[Prepared]:
    """Build lib's implementation of `case` on `inputs`, check it against
    `reference` (fastnn's result) and return it; None when lib has none.
    With several formulations, all are checked and the fastest is kept."""
    builder = case.builder(lib)
    if builder is None:
        return None
    with library_context(lib):
        built = builder(inputs)
        candidates = built if isinstance(built, dict) else {"": built}
        for name, fn in candidates.items():
            check_result(case, f"{lib} {name}".strip(), fn(), reference)
        if len(candidates) == 1:
            ((name, fn),) = candidates.items()
            return Prepared(fn, name)
        speed = {name: time_call(fn, budget=select_budget, warmup=select_budget / 4,
                                 min_calls=3)[0]
                 for name, fn in candidates.items()}
        best = min(speed, key=speed.get)
        return Prepared(candidates[best], best)


def reference_result(case: Case, inputs: dict, threads: Optional[int] = None):
    """fastnn's result for `case` (with `threads` threads if given)."""
    import fastnn
    fn = case.builder("fastnn")(inputs)
    if threads is None:
        return fn()
    with fastnn.num_threads(threads):
        return fn()


def set_threads(lib: str, n: int) -> None:
    """Pin the thread count of `lib` (fastnn is always pinned: it is imported for checks).
    NumPy's BLAS cannot be re-pinned once loaded: the worker process gets
    OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS in its environment."""
    import fastnn
    fastnn.set_num_threads(n)
    if lib == "torch":
        import torch
        torch.set_num_threads(n)


def measure_fma_peak(seconds: float = FULL["peak_seconds"],
                     repeats: int = FULL["peak_repeats"]) -> dict:
    """fastnn's FMA ceiling on its current thread count: ``fastnn._config.fma_probe``
    (16 independent vector FMA chains on every fastnn thread) sized to run
    about `seconds`, best of `repeats`. Returns {"gflops", "threads", "iters",
    "seconds"} (seconds: one probe call)."""
    import fastnn
    from fastnn._config import fma_probe
    clock = time.perf_counter
    iters, dt = 1 << 12, 0.0
    while True:          # calibrate: grow until one call takes a measurable time
        t0 = clock()
        fma_probe(iters)
        dt = clock() - t0
        if dt >= min(0.05, seconds / 3) or iters >= 1 << 40:
            break
        iters *= 8
    iters = max(1, int(iters * seconds / max(dt, 1e-9)))
    best = None
    for _ in range(max(1, repeats)):
        t0 = clock()
        flops = fma_probe(iters)
        dt = clock() - t0
        if best is None or flops / dt > best[0]:
            best = (flops / dt, dt)
    return {"gflops": best[0] / 1e9, "threads": fastnn.get_num_threads(), "iters": iters,
            "seconds": best[1]}
