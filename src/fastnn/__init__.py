"""fastnn: neural networks for NumPy arrays, with the hot kernels in C.

    import fastnn
    from fastnn import nn, optim
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    model.fit(X, y, loss="cross_entropy", optimizer=optim.Adam(model.parameters()))
    y = fastnn.ops.gelu(x)              # functional kernels: float32 in, float32 out
    fastnn.manual_seed(0)               # reproducible init, dropout and shuffling
    fastnn.show_config()                # version, ISA path, threads, compiler
    with fastnn.num_threads(1): ...     # or fastnn.set_num_threads(n)
    with fastnn.no_grad(): model(x)     # forwards keep nothing for backward
    fastnn.empty_cache()                # free the cached blocks of large outputs

Modules: ops (kernels), nn (layers, losses), optim (optimizers, lr_scheduler),
data (DataLoader, samplers, text corpora), models (GPT), callbacks, training
(fit / predict / evaluate, which it attaches to nn.Module), serialization
(save / load), distributed (data-parallel training over MPI), random.
Imports go one way: _C -> ops -> nn -> optim -> {data, models, training, callbacks,
serialization, distributed} -> cli (tests/test_layering.py checks).

At import the CPU is inspected once and the widest kernel path it supports
(avx512, avx2 or generic) is chosen; FASTNN_ISA=generic|avx2|avx512 forces a
path (asking for one the CPU lacks raises RuntimeError here, at import), and
FASTNN_NUM_THREADS sets the thread count (default: the CPUs this process may
run on). fastnn's own thread pool survives fork() and other processes taking
cores, and gives bitwise the same results for any thread count; kernels flush
denormals to zero (fastnn.set_flush_denormal(False) keeps them).
"""
from fastnn import callbacks, data, distributed, models, nn, ops, optim, training
from fastnn._config import (__version__, empty_cache, get_flush_denormal, get_num_threads,
                            num_threads, set_flush_denormal, set_num_threads, show_config)
from fastnn.nn.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from fastnn.random import get_rng_state, manual_seed, set_rng_state
from fastnn.serialization import (load, load_checkpoint, load_state_dict, register_module,
                                  save, save_checkpoint)

__all__ = ["ops", "nn", "optim", "data", "models", "callbacks", "training", "distributed",
           "show_config",
           "empty_cache",
           "set_num_threads", "get_num_threads", "num_threads", "set_flush_denormal",
           "get_flush_denormal", "manual_seed", "get_rng_state",
           "set_rng_state", "save", "load", "load_state_dict", "save_checkpoint",
           "load_checkpoint", "register_module", "no_grad", "enable_grad", "set_grad_enabled",
           "is_grad_enabled", "__version__"]
