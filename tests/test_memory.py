"""The block cache behind fastnn's fresh outputs (csrc/runtime/alloc.c, _memory.pxi):
outputs of at least CACHE_MIN_BYTES come from size-class blocks that are reused
after their array is freed (no page faults per step), never shared by two live
arrays, owned by their arrays (resize, pickle), safe across threads and fork(),
bounded by a byte cap and emptied by fastnn.empty_cache(); user arrays never
go through it."""
import multiprocessing
import pickle
import resource
import threading

import numpy as np
import pytest

import fastnn
from fastnn import _C, ops

try:
    from numpy._core.multiarray import get_handler_name
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import get_handler_name

CACHE = _C.CACHE_HANDLER_NAME
MIB = 1 << 20
BIG = (256, 1024)  # 1 MiB of float32: through the cache
SMALL = (16, 16)   # 1 KiB: NumPy's default path


def minor_faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.fixture
def clean_cache():
    fastnn.empty_cache()
    yield
    fastnn.empty_cache()


def test_large_outputs_use_the_cache_and_small_ones_and_user_arrays_do_not():
    x = np.ones(BIG, np.float32)
    assert get_handler_name(ops.relu(x)) == CACHE
    assert get_handler_name(ops.linear(x, np.ones((512, 1024), np.float32))) == CACHE
    assert get_handler_name(ops.matmul(x, np.ones((1024, 512), np.float32))) == CACHE
    assert get_handler_name(ops.mse_loss(x, x)[1]) == CACHE
    assert get_handler_name(ops.relu(np.ones(SMALL, np.float32))) != CACHE
    # the switch is undone: arrays the user makes afterwards keep NumPy's handler
    assert get_handler_name() != CACHE
    assert get_handler_name(np.empty(BIG, np.float32)) != CACHE
    assert get_handler_name(np.zeros((4096, 4096), np.float32)) != CACHE
    assert get_handler_name(x.copy()) != CACHE


def test_handler_is_restored_when_the_allocation_fails():
    with pytest.raises(MemoryError):
        _C.new_float32_array((1 << 46,))  # 256 TiB
    assert get_handler_name() != CACHE
    assert get_handler_name(np.empty(BIG, np.float32)) != CACHE


def test_live_outputs_never_alias_and_are_writable(clean_cache):
    x = np.ones(BIG, np.float32)
    outs = []
    for i in range(24):
        out = ops.relu(x) if i % 2 else _C.new_float32_array(BIG)
        assert out.flags.writeable and out.flags.owndata and out.flags.c_contiguous
        assert out.ctypes.data % 4096 == 0  # page-aligned: no 4K aliasing with inputs
        out.fill(i)
        outs.append(out)
        if i % 3 == 0:  # free some and allocate again while others are alive
            del outs[len(outs) // 2]
    values = [o[0, 0] for o in outs]
    for o, v in zip(outs, values):
        assert np.all(o == v)
    assert len({o.ctypes.data for o in outs}) == len(outs)
    for i, a in enumerate(outs):
        for b in outs[i + 1:]:
            assert not np.shares_memory(a, b)


def test_a_block_is_reused_only_after_its_array_and_views_are_gone(clean_cache):
    a = _C.new_float32_array(BIG)
    view = a[1:]
    address = a.ctypes.data
    del a
    b = _C.new_float32_array(BIG)  # the view keeps a's block alive
    assert not np.shares_memory(b, view)
    del view
    c = _C.new_float32_array(BIG)
    assert c.ctypes.data == address  # now it is back in the cache
    assert not np.shares_memory(b, c)


def test_freed_blocks_are_reused_without_page_faults(clean_cache):
    # 64 MiB is above glibc's largest mmap threshold: without a cache every
    # allocation is a fresh mmap that faults in all of its 16384 pages
    x = np.full((16 * MIB,), -1.0, np.float32)
    steps = 20

    def run(make):
        make()  # warm-up
        before = minor_faults()
        for _ in range(steps):
            out = make()
            del out
        return minor_faults() - before

    def no_cache():
        out = np.empty_like(x)
        out.fill(0.0)
        return out

    baseline = run(no_cache)
    cached = run(lambda: ops.relu(x))
    assert cached < baseline / 10 + 50, (cached, baseline)
    stats = _C.cache_stats()
    assert stats["hits"] >= steps


def test_training_steps_do_not_page_fault(clean_cache):
    from fastnn import nn, optim
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 10))
    opt = optim.Adam(model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    X = np.random.default_rng(0).standard_normal((1024, 784)).astype(np.float32)
    y = np.arange(1024) % 10

    def step():
        opt.zero_grad()
        loss_fn(model(X), y)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()

    for _ in range(3):
        step()
    before = minor_faults()
    for _ in range(10):
        step()
    # each step's 4 MiB activations and gradients (~8000 pages in all) come back from the cache
    assert (minor_faults() - before) / 10 < 200


def test_owndata_resize_pickle_and_shares_memory(clean_cache):
    x = np.arange(BIG[0] * BIG[1], dtype=np.float32).reshape(BIG) - 1000
    out = ops.relu(x)
    assert out.flags.owndata and out.base is None
    expected = np.maximum(x, 0)
    np.testing.assert_array_equal(out, expected)
    assert not np.shares_memory(out, x) and np.shares_memory(out, out[::2])
    back = pickle.loads(pickle.dumps(out))
    np.testing.assert_array_equal(back, expected)
    assert not np.shares_memory(back, out)
    # resize goes through the handler's realloc: growing, within the class, shrinking to small
    flat = out.reshape(-1).copy()
    out.resize((4 * BIG[0], BIG[1]), refcheck=False)
    assert get_handler_name(out) == CACHE
    np.testing.assert_array_equal(out.reshape(-1)[:flat.size], flat)
    assert np.all(out.reshape(-1)[flat.size:] == 0)
    out.resize((4 * BIG[0] - 1, BIG[1]), refcheck=False)
    np.testing.assert_array_equal(out.reshape(-1)[:flat.size], flat)
    out.resize((3, 5), refcheck=False)
    np.testing.assert_array_equal(out.reshape(-1), flat[:15])
    live = _C.cache_stats()["live_blocks"]
    del out
    assert _C.cache_stats()["live_blocks"] == live - 1


def test_threads_allocating_and_freeing_concurrently(clean_cache):
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal((128 + 64 * t, 1024)).astype(np.float32) for t in range(4)]
    errors = []

    def work(x):
        try:
            expected = np.maximum(x, 0)
            kept = []
            for i in range(60):
                out = ops.relu(x)
                if not np.array_equal(out, expected):
                    errors.append("wrong result")
                kept.append(out)
                if len(kept) > 3:
                    kept.pop(i % 3)
            for out in kept:
                if not np.array_equal(out, expected):
                    errors.append("overwritten result")
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(repr(err))

    live = _C.cache_stats()["live_blocks"]
    with fastnn.num_threads(1):
        threads = [threading.Thread(target=work, args=(x,)) for x in inputs]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    stats = _C.cache_stats()
    assert stats["live_blocks"] == live and stats["cached_blocks"] > 0


def _child(queue):
    try:
        x = np.full(BIG, -2.0, np.float32) + np.arange(BIG[1], dtype=np.float32)
        outs = [ops.relu(x) for _ in range(4)]  # from the inherited cache, then fresh
        ok = all(np.array_equal(o, np.maximum(x, 0)) for o in outs)
        ok = ok and len({o.ctypes.data for o in outs}) == len(outs)
        del outs
        ok = ok and _C.cache_stats()["cached_blocks"] >= 4
        fastnn.empty_cache()
        queue.put(ok)
    except Exception as err:  # noqa: BLE001 - the parent asserts on it
        queue.put(repr(err))


def test_fork_child_has_a_working_cache(clean_cache):
    x = np.ones(BIG, np.float32)
    for _ in range(3):
        del_me = [ops.relu(x) for _ in range(3)]
        del del_me
    assert _C.cache_stats()["cached_blocks"] >= 3
    stop = threading.Event()

    def churn():  # another thread in the allocator while the process forks
        while not stop.is_set():
            ops.relu(x)

    ctx = multiprocessing.get_context("fork")
    t = threading.Thread(target=churn)
    t.start()
    try:
        with fastnn.num_threads(1):
            for _ in range(3):
                queue = ctx.Queue()
                p = ctx.Process(target=_child, args=(queue,))
                p.start()
                p.join(timeout=60)
                if p.is_alive():
                    p.kill()
                    pytest.fail("the forked child hung")
                assert p.exitcode == 0
                assert queue.get(timeout=10) is True
    finally:
        stop.set()
        t.join()
    assert _C.cache_stats()["cached_blocks"] >= 1  # the parent's cache is untouched


def test_empty_cache_frees_every_cached_block(clean_cache):
    before = _C.cache_stats()["live_bytes"]
    outs = [_C.new_float32_array((n, 1024)) for n in (64, 256, 300, 1024)]
    live = _C.cache_stats()["live_bytes"] - before
    del outs
    stats = _C.cache_stats()
    assert stats["cached_blocks"] == 4 and stats["cached_bytes"] == live
    assert fastnn.empty_cache() == live
    stats = _C.cache_stats()
    assert stats["cached_blocks"] == 0 and stats["cached_bytes"] == 0
    assert fastnn.empty_cache() == 0
    assert "cache" in fastnn.empty_cache.__doc__


def test_cached_bytes_stay_under_the_cap(clean_cache):
    limit = _C.cache_stats()["limit"]
    try:
        _C.cache_set_limit(3 * MIB)
        outs = [_C.new_float32_array(BIG) for _ in range(8)]
        del outs
        assert _C.cache_stats()["cached_bytes"] == 3 * MIB
        _C.cache_set_limit(MIB)  # lowering the cap frees down to it
        assert _C.cache_stats()["cached_bytes"] == MIB
        _C.cache_set_limit(0)
        del_me = _C.new_float32_array(BIG)
        del del_me
        assert _C.cache_stats()["cached_bytes"] == 0
    finally:
        _C.cache_set_limit(limit)


def test_size_classes_bound_the_waste(clean_cache):
    for n in (_C.CACHE_MIN_BYTES, _C.CACHE_MIN_BYTES + 4, 3 * MIB + 4, 5 * MIB - 4, 64 * MIB + 4):
        before = _C.cache_stats()["live_bytes"]
        a = _C.new_float32_array((n // 4,))
        capacity = _C.cache_stats()["live_bytes"] - before
        assert n <= capacity <= 1.25 * n
        del a
    # one class serves every size in it: a slightly smaller array reuses the block
    a = _C.new_float32_array((5 * MIB // 4,))
    address = a.ctypes.data
    del a
    b = _C.new_float32_array((5 * MIB // 4 - 1000,))
    assert b.ctypes.data == address
