"""fastnn: neural-network kernels in C for NumPy arrays.

    import fastnn
    y = fastnn.ops.gelu(x)              # float32 in, float32 out
    fastnn.show_config()                # version, ISA path, threads, compiler
    with fastnn.num_threads(1): ...     # or fastnn.set_num_threads(n)

At import the CPU is inspected once and the widest kernel path it supports
(avx512, avx2 or generic) is chosen; FASTNN_ISA=generic|avx2|avx512 forces a
path (asking for one the CPU lacks raises RuntimeError here, at import), and
FASTNN_NUM_THREADS sets the thread count.
"""
from importlib.metadata import PackageNotFoundError, version as _version

from fastnn import ops
from fastnn._config import get_num_threads, num_threads, set_num_threads, show_config

try:
    __version__ = _version("fastnn")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["ops", "show_config", "set_num_threads", "get_num_threads", "num_threads",
           "__version__"]
