"""Runtime configuration and facts: ISA path and threads, read from the
environment at import; the version, how this copy was built and what the CPU
offers; show_config() to report them; empty_cache() for the output cache.

This is the only module above fastnn._C besides fastnn.ops that calls into it:
everything higher up (training, the CLI, the bench tool) asks here for runtime
facts (runtime_info(), gemm_blocking(), fma_probe()) instead of reaching into _C.
"""
import contextlib
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version as _version

from fastnn import _C

try:
    __version__ = _version("fastnn")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

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
    """Use up to n threads (1 <= n <= 1024) for large arrays; safe to call from
    any thread, also while kernels run (a call already running keeps its count).
    Results are bitwise the same for any n."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"number of threads must be an int, got {type(n).__name__}")
    _C.set_num_threads(n)


def get_num_threads():
    """Threads a large kernel call will use: set_num_threads / FASTNN_NUM_THREADS,
    else the CPUs this process may run on (os.sched_getaffinity, read once)."""
    return _C.get_num_threads()


def set_flush_denormal(mode):
    """Flush denormal floats to zero inside fastnn's kernels (True, the default)
    or keep them (False). Like torch.set_flush_denormal, but only kernel code is
    affected: each kernel sets the CPU's FTZ/DAZ bits on entry and restores the
    caller's on return, on every thread it uses, so NumPy outside fastnn still
    sees denormals. Flushing avoids the 10-100x slowdown of denormal arithmetic
    (tiny gradients late in training); results differ from exact IEEE only for
    values below 1.2e-38. Returns True (it is supported on every platform
    fastnn builds for; off x86 the setting has no effect)."""
    if not isinstance(mode, bool):
        raise TypeError(f"mode must be a bool, got {type(mode).__name__}")
    _C.set_flush_denormal(mode)
    return True


def get_flush_denormal() -> bool:
    """Whether kernels flush denormals to zero (set_flush_denormal)."""
    return _C.get_flush_denormal()


@contextlib.contextmanager
def num_threads(n):
    """Context manager: use n threads inside the block, restore the old count after."""
    previous = get_num_threads()
    set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)


def empty_cache() -> int:
    """Free every block fastnn's output cache holds; returns the bytes given back.

    Like torch.cuda.empty_cache(): fresh float32 outputs of at least 256 KiB
    that fastnn creates (ops results without out=, loss gradients, layer
    activations) come from a size-class cache, and when such an array is
    freed its block is kept for the next output of that size class instead of
    going back to the OS (so the next training step does not page-fault it in
    again). The cache keeps at most 1 GiB of freed blocks and frees any block
    beyond that; arrays still alive are never touched. Call this after a phase
    that used large arrays to return their memory to the OS. Arrays the user
    creates (np.empty, ...) never go through the cache.
    """
    return _C.cache_empty()


def gemm_blocking():
    """The GEMM kernel's blocking (MR, NR, KC, MC, NC) on the active ISA path, or
    None when this build does not report it."""
    fn = getattr(_C, "gemm_blocking", None)
    return None if fn is None else tuple(fn())


def fma_probe(iters: int) -> float:
    """Run `iters` rounds of independent vector FMA chains on every fastnn thread
    (the measured FMA ceiling); returns the floating-point operations done."""
    return _C.fma_probe(iters)


def runtime_info() -> dict:
    """What this process runs with: {"version", "isa" (active path), "best_isa",
    "compiled_isas", "threads", "default_threads" (CPUs this process may use),
    "spin_iterations" (pauses an idle pool thread spins before it sleeps),
    "flush_denormal", "gemm_blocking"}."""
    return {"version": __version__, "isa": _C.active_isa(), "best_isa": _C.best_isa(),
            "compiled_isas": list(_C.compiled_isas()), "threads": get_num_threads(),
            "default_threads": _C.default_num_threads(), "spin_iterations": _C.spin_iterations(),
            "flush_denormal": get_flush_denormal(), "gemm_blocking": gemm_blocking()}


def show_config(file=None):
    """Print version, ISA path, the thread pool, compiler and flags."""
    import numpy

    info = runtime_info()
    isa = info["isa"]
    lines = [
        f"fastnn {__version__}",
        f"  ISA path:      {isa} (best on this CPU: {info['best_isa']}; compiled: "
        f"{', '.join(info['compiled_isas'])})",
        f"  threads:       {info['threads']} (default: {info['default_threads']}, the CPUs "
        f"this process may run on)",
        f"  thread pool:   fastnn's own (pthreads); idle threads spin "
        f"{info['spin_iterations']} pauses, then sleep",
        f"  denormals:     {'flushed to zero in kernels' if info['flush_denormal'] else 'kept'}",
        f"  compiler:      {BUILD_CONFIG.get('compiler', 'unknown')}",
        f"  C flags:       {BUILD_CONFIG.get('c_flags', 'unknown')}",
        f"  {isa} flags: {BUILD_CONFIG.get('isa_flags', {}).get(isa, '') or '(none)'}",
        f"  Python {platform.python_version()}, NumPy {numpy.__version__}, "
        f"{BUILD_CONFIG.get('platform', platform.platform())}",
    ]
    print("\n".join(lines), file=file or sys.stdout)


_configure_from_environment()
