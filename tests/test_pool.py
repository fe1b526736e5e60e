"""The thread pool (csrc/runtime/threads.c) as users meet it: fork after
threaded kernels, several Python threads calling kernels at once, the thread
count changed mid-run, the ISA switched mid-GEMM, the default thread count, and
the floating-point environment (denormals flushed inside kernels only)."""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastnn
from fastnn import _C, nn, ops, optim

TINY = np.finfo(np.float32).tiny


def run_python(code, timeout=120, **popen):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, **popen)


# ---- fork ---------------------------------------------------------------------------

FORK_CHILD = """
    import os, numpy as np, fastnn
    from fastnn import ops
    fastnn.set_num_threads(2)
    x = np.linspace(-5, 5, 1 << 20, dtype=np.float32)
    a = np.linspace(-1, 1, 512 * 512, dtype=np.float32).reshape(512, 512)
    def work():
        return ops.sigmoid(x).tobytes() + ops.matmul(a, a).tobytes()
    parent = work()                       # the pool's threads exist and have run
"""


def test_os_fork_child_runs_threaded_kernels():
    proc = run_python(FORK_CHILD + """
    pid = os.fork()
    if pid == 0:
        os._exit(0 if work() == parent and work() == parent else 3)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status))
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["child", "0"]


def test_multiprocessing_fork_pool_after_threaded_kernels():
    proc = run_python(FORK_CHILD + """
    import multiprocessing as mp
    def task(i):
        return work() == parent
    with mp.get_context("fork").Pool(2) as pool:
        print(all(pool.map(task, range(4))))
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"


def test_fork_while_another_thread_runs_kernels():
    """The child of a fork taken mid-kernel (on another thread) gets a working pool."""
    proc = run_python(FORK_CHILD + """
    import threading
    stop = threading.Event()
    def busy():
        while not stop.is_set():
            work()
    t = threading.Thread(target=busy)
    t.start()
    codes = []
    for _ in range(5):
        pid = os.fork()
        if pid == 0:
            os._exit(0 if work() == parent else 3)
        codes.append(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
    stop.set()
    t.join()
    print(codes)
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[0, 0, 0, 0, 0]"


# ---- concurrent callers ----------------------------------------------------------------

def _train(seed, steps=6):
    """A small MLP trained with Adam on fixed data: its final parameters, as bytes.
    Large enough that its products and updates are split into several chunks."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((256, 300)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    model = nn.Sequential(nn.Linear(300, 256), nn.ReLU(), nn.Linear(256, 10))
    for p in model.parameters():
        p.data[...] = (rng.standard_normal(p.data.shape) * 0.05).astype(np.float32)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model(X), y)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
    return b"".join(p.data.tobytes() for p in model.parameters())


def test_four_python_threads_training_equal_one_by_one():
    with fastnn.num_threads(2):
        alone = [_train(seed) for seed in range(4)]
        together = [None] * 4

        def run(i):
            together[i] = _train(i)
        workers = [threading.Thread(target=run, args=(i,)) for i in range(4)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
    assert not any(w.is_alive() for w in workers), "a training thread hung"
    assert together == alone


def test_set_num_threads_from_another_thread_mid_run():
    x = np.linspace(-8, 8, (1 << 20) + 5, dtype=np.float32)
    a = np.linspace(-1, 1, 300 * 280, dtype=np.float32).reshape(300, 280)
    with fastnn.num_threads(1):
        want = (ops.tanh(x).tobytes(), ops.matmul(a, a.T).tobytes())
    before = fastnn.get_num_threads()
    stop = threading.Event()

    def toggle():
        n = 0
        while not stop.is_set():
            fastnn.set_num_threads(1 + n % 4)
            n += 1
    t = threading.Thread(target=toggle)
    t.start()
    try:
        for _ in range(30):
            assert (ops.tanh(x).tobytes(), ops.matmul(a, a.T).tobytes()) == want
    finally:
        stop.set()
        t.join()
        fastnn.set_num_threads(before)


def test_isa_switch_mid_gemm_gives_one_paths_result():
    """Each product reads its kernel table once: switching the ISA from another
    thread gives either path's result, never a mix."""
    isas = [name for name in _C.ISA_NAMES if name in _C.compiled_isas()
            and _C.ISA_NAMES.index(name) <= _C.ISA_NAMES.index(_C.best_isa())]
    if len(isas) < 2:
        pytest.skip("this CPU offers one ISA path")
    rng = np.random.default_rng(3)
    a = rng.standard_normal((400, 300)).astype(np.float32)
    b = rng.standard_normal((300, 350)).astype(np.float32)
    previous = _C.active_isa()
    results = set()
    for name in isas:
        _C.init_isa(name)
        results.add(ops.matmul(a, b).tobytes())
    stop = threading.Event()

    def switch():
        n = 0
        while not stop.is_set():
            _C.init_isa(isas[n % len(isas)])
            n += 1
    t = threading.Thread(target=switch)
    t.start()
    try:
        with fastnn.num_threads(2):
            for _ in range(40):
                assert ops.matmul(a, b).tobytes() in results
    finally:
        stop.set()
        t.join()
        _C.init_isa(previous)


def test_many_threads_oversubscribed_bitwise():
    x = np.linspace(-4, 4, 1 << 21, dtype=np.float32)
    with fastnn.num_threads(1):
        want = ops.gelu(x).tobytes()
    with fastnn.num_threads(16):
        assert ops.gelu(x).tobytes() == want


# ---- thread count ------------------------------------------------------------------------

def test_default_thread_count_is_the_cpus_this_process_may_use():
    code = "import fastnn; print(fastnn.get_num_threads())"
    env = {k: v for k, v in os.environ.items() if k != "FASTNN_NUM_THREADS"}
    proc = run_python(code, env=env)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) == len(os.sched_getaffinity(0))
    first = sorted(os.sched_getaffinity(0))[0]
    pinned = run_python(code, env=env, preexec_fn=lambda: os.sched_setaffinity(0, {first}))
    assert pinned.returncode == 0, pinned.stderr
    assert int(pinned.stdout) == 1


def test_show_config_reports_the_pool():
    import io
    buf = io.StringIO()
    fastnn.show_config(file=buf)
    text = buf.getvalue()
    assert "thread pool:" in text and f"spin {_C.spin_iterations()} pauses" in text
    assert "denormals:" in text


# ---- floating-point environment --------------------------------------------------------

def _numpy_keeps_denormals():
    return float(np.float32(1e-38) * np.float32(0.01)) != 0.0


@pytest.fixture
def flush_restored():
    previous = fastnn.get_flush_denormal()
    yield
    fastnn.set_flush_denormal(previous)


@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_flush_denormals_on_every_thread_and_numpy_keeps_them(threads, flush_restored):
    x = np.full((1 << 20) + 3, 1e-39, np.float32)   # a denormal, split over the threads
    a, b = np.full((3, 5), 1e-39, np.float32), np.ones((5, 4), np.float32)
    with fastnn.num_threads(threads):
        fastnn.set_flush_denormal(True)
        assert fastnn.get_flush_denormal() is True
        assert not ops.relu(x).any()                 # DAZ: read as 0 everywhere
        assert not ops.matmul(a, b).any()
        assert _numpy_keeps_denormals()              # restored for the caller
        fastnn.set_flush_denormal(False)
        assert (ops.relu(x) == x).all()
        assert np.allclose(ops.matmul(a, b), 5e-39, rtol=1e-6, atol=0)
    assert _numpy_keeps_denormals()


def test_numpy_denormals_survive_threaded_training():
    _train(0, steps=2)
    assert _numpy_keeps_denormals()
    proc = run_python("""
        import numpy as np, threading, fastnn
        from fastnn import ops
        x = np.ones(1 << 20, np.float32)
        t = threading.Thread(target=lambda: [ops.sigmoid(x) for _ in range(20)])
        t.start(); t.join()
        ops.sigmoid(x)
        print(float(np.float32(1e-38) * np.float32(0.01)) != 0.0)
    """)
    assert proc.stdout.strip() == "True", proc.stderr


def test_set_flush_denormal_checks_its_argument(flush_restored):
    with pytest.raises(TypeError, match="mode must be a bool"):
        fastnn.set_flush_denormal(1)
    assert fastnn.set_flush_denormal(True) is True


def test_thread_creation_failure_leaves_a_working_pool():
    """If the system refuses threads (here: too little address space for their
    stacks), the pool runs with those it could start, with the same results."""
    proc = run_python("""
        import resource, numpy as np, fastnn
        from fastnn import ops
        x = np.linspace(-6, 6, 1 << 22, dtype=np.float32)
        out = np.empty_like(x)
        with fastnn.num_threads(1):
            want = ops.gelu(x)
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
        resource.setrlimit(resource.RLIMIT_AS, (vm + (40 << 20), resource.RLIM_INFINITY))
        fastnn.set_num_threads(64)                 # 63 helpers of 8 MiB stacks: most refused
        ok = all(np.array_equal(ops.gelu(x, out=out), want) for _ in range(3))
        print(ok)
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"
