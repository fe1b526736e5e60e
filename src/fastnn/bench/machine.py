"""What the benchmark ran on: CPU model, CPU pressure and steal, library versions and
thread counts (including NumPy's BLAS, read back from OpenBLAS itself)."""
from __future__ import annotations

import ctypes
import os
import platform
from typing import Optional

import numpy as np


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _pressure_field(name: str) -> Optional[float]:
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    for field in line.split():
                        if field.startswith(name + "="):
                            return float(field[len(name) + 1:])
    except (OSError, ValueError):
        pass
    return None


def cpu_pressure() -> Optional[float]:
    """`some avg10` from /proc/pressure/cpu: the percentage of the last 10 s in
    which some runnable task waited for a CPU. None when unavailable."""
    return _pressure_field("avg10")


def cpu_stall_total() -> Optional[float]:
    """Cumulative CPU stall time (`some total`, microseconds), or None; the
    difference over an interval divided by its length is that interval's pressure."""
    return _pressure_field("total")


def cpu_steal_ticks() -> Optional[tuple]:
    """(steal, total) clock ticks of all CPUs from /proc/stat's `cpu` line, or None:
    the time a hypervisor gave this VM's CPUs to other guests. The difference of
    steal over the difference of total, over an interval, is the share of CPU time
    stolen in it, which /proc/pressure/cpu does not see."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        if fields[0] != "cpu" or len(fields) < 9:
            return None
        ticks = [int(v) for v in fields[1:]]
        return ticks[7], sum(ticks[:8])
    except (OSError, ValueError, IndexError):
        return None


def _numpy_blas_name() -> str:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # NumPy < 1.25, or a build without the info
        return "?"


def numpy_blas_threads() -> Optional[int]:
    """Threads NumPy's OpenBLAS uses (asked through its openblas_get_num_threads
    entry point, found in this process's loaded libraries), or None."""
    np.dot(np.ones((2, 2)), np.ones((2, 2)))   # make sure the BLAS is loaded
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f
                            if "openblas" in line.lower() and ".so" in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                     "openblas_get_num_threads64_", "openblas_get_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_int
                return int(fn())
    return None


def library_versions(lib: str) -> dict:
    info = {"numpy": np.__version__}
    from fastnn._config import runtime_info
    runtime = runtime_info()
    info["fastnn"] = runtime["version"]
    info["isa"] = runtime["isa"]
    info["spin_iterations"] = runtime["spin_iterations"]
    info["fastnn_threads"] = runtime["threads"]
    if runtime["gemm_blocking"] is not None:
        info["gemm_blocking"] = list(runtime["gemm_blocking"])
    if lib == "numpy":
        info["blas"] = _numpy_blas_name()
        info["blas_threads"] = numpy_blas_threads()
        info["blas_env"] = {v: os.environ.get(v) for v in
                            ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if lib == "torch":
        import torch
        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["torch_mkl"] = bool(torch.backends.mkl.is_available())
    return info
