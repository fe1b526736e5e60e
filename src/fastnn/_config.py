"""Runtime configuration: ISA path and threads, read from the environment at
import, and show_config() to report how this copy was built and runs."""
import contextlib
import os
import platform
import sys

from fastnn import _C

try:
    from fastnn._build_config import BUILD_CONFIG
except ImportError:  # built by something other than setup.py
    BUILD_CONFIG = {}


def _configure_from_environment():
    isa = os.environ.get("FASTNN_ISA", "").strip().lower() or None
    _C.init_isa(isa)
    threads = os.environ.get("FASTNN_NUM_THREADS", "").strip()
    if threads:
        try:
            n = int(threads)
        except ValueError:
            raise ValueError(f"FASTNN_NUM_THREADS must be a positive integer, got {threads!r}") from None
        set_num_threads(n)


def set_num_threads(n):
    """Use n threads (>= 1) for large arrays. Without OpenMP fastnn always uses 1."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"number of threads must be an int, got {type(n).__name__}")
    _C.set_num_threads(n)


def get_num_threads():
    """Threads a large kernel call will use (FASTNN_NUM_THREADS, else OpenMP's default)."""
    return _C.get_num_threads()


@contextlib.contextmanager
def num_threads(n):
    """Context manager: use n threads inside the block, restore the old count after."""
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)


def show_config(file=None):
    """Print version, ISA path, threads, OpenMP, compiler and flags."""
    from fastnn import __version__
    import numpy

    isa = _C.active_isa()
    lines = [
        f"fastnn {__version__}",
        f"  ISA path:      {isa} (best on this CPU: {_C.best_isa()}; compiled: "
        f"{', '.join(_C.compiled_isas())})",
        f"  threads:       {get_num_threads()} (hardware: {_C.hardware_threads()})",
        f"  OpenMP:        {'yes' if _C.has_openmp() else 'no'}",
        f"  compiler:      {BUILD_CONFIG.get('compiler', 'unknown')}",
        f"  C flags:       {BUILD_CONFIG.get('c_flags', 'unknown')} "
        f"{BUILD_CONFIG.get('openmp_flags', '')}".rstrip(),
        f"  {isa} flags: {BUILD_CONFIG.get('isa_flags', {}).get(isa, '') or '(none)'}",
        f"  Python {platform.python_version()}, NumPy {numpy.__version__}, "
        f"{BUILD_CONFIG.get('platform', platform.platform())}",
    ]
    print("\n".join(lines), file=file or sys.stdout)


_configure_from_environment()
