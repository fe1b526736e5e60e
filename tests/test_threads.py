"""Threads: the API, and results that do not depend on the thread count
(bitwise, on arrays large enough to be split)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import ops

N = (1 << 20) + 13  # several threads' worth, with a ragged end

CALLS = {
    "relu": lambda x, g: ops.relu(x),
    "leaky_relu_backward": lambda x, g: ops.leaky_relu_backward(g, x, 0.1),
    "sigmoid": lambda x, g: ops.sigmoid(x),
    "tanh_backward": lambda x, g: ops.tanh_backward(g, ops.tanh(x)),
    "gelu": lambda x, g: ops.gelu(x),
    "gelu_tanh_backward": lambda x, g: ops.gelu_backward(g, x, "tanh"),
    "silu": lambda x, g: ops.silu(x),
    "softmax": lambda x, g: ops.softmax(x.reshape(-1, 1000 + 3 * (x.size % 7 == 0))
                                        if x.size % 1003 == 0 else x[: 1000 * 1000].reshape(1000, 1000)),
    "log_softmax_axis0": lambda x, g: ops.log_softmax(x[: 1000 * 1000].reshape(1000, 1000), axis=0),
    "cross_entropy": lambda x, g: ops.cross_entropy(x[: 2000 * 500].reshape(2000, 500),
                                                    np.arange(2000) % 500, label_smoothing=0.1),
    "mse_loss": lambda x, g: ops.mse_loss(x, g),
    "bce_with_logits": lambda x, g: ops.binary_cross_entropy_with_logits(x, np.abs(g) % 1),
}


@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("name", CALLS)
def test_results_are_bitwise_identical_for_any_thread_count(name, threads, isa):
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(N) * 3).astype(np.float32)
    g = rng.standard_normal(N).astype(np.float32)
    with fastnn.num_threads(1):
        one = CALLS[name](x, g)
    with fastnn.num_threads(threads):
        many = CALLS[name](x, g)
    one = one if isinstance(one, tuple) else (one,)
    many = many if isinstance(many, tuple) else (many,)
    for a, b in zip(one, many):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_set_get_and_context_manager():
    before = fastnn.get_num_threads()
    with fastnn.num_threads(1):
        assert fastnn.get_num_threads() == 1
    assert fastnn.get_num_threads() == before
    fastnn.set_num_threads(3)
    try:
        assert fastnn.get_num_threads() == 3
    finally:
        fastnn.set_num_threads(before)
    for bad in (0, -1, 1025, 10000, 2**31, 2**70):
        with pytest.raises(ValueError, match="between 1 and 1024"):
            fastnn.set_num_threads(bad)
    assert fastnn.get_num_threads() == before
    with pytest.raises(TypeError):
        fastnn.set_num_threads(1.5)


def test_context_manager_restores_after_an_exception():
    before = fastnn.get_num_threads()
    with pytest.raises(RuntimeError):
        with fastnn.num_threads(1):
            raise RuntimeError("boom")
    assert fastnn.get_num_threads() == before


def run_python(code, **env):
    full_env = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                          text=True, timeout=120)


def test_environment_variable_sets_threads():
    r = run_python("import fastnn; print(fastnn.get_num_threads())", FASTNN_NUM_THREADS="1")
    assert r.returncode == 0 and r.stdout.strip() == "1"


def test_bad_environment_variable_is_a_clear_error():
    r = run_python("import fastnn", FASTNN_NUM_THREADS="many")
    assert r.returncode != 0 and "FASTNN_NUM_THREADS must be a positive integer" in r.stderr
