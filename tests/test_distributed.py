"""fastnn.distributed in one process (a world of one), without mpirun:
DistributedSampler's semantics (against torch's where it is installed), the
argument checks, DistributedOptimizer stepping exactly as the optimizer it
wraps, the overlap buckets, and init() without mpi4py. The multi-rank cases are
in test_distributed_mpi.py."""
import copy
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastnn
import fastnn.distributed as dist
from fastnn import nn, optim
from fastnn.distributed.optimizer import _Buckets
from fastnn.distributed.world import sum_in_rank_order


def torch_sampler_indices(n, num_replicas, rank, drop_last):
    torch = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TorchSampler
    s = TorchSampler(range(n), num_replicas=num_replicas, rank=rank, shuffle=False,
                     drop_last=drop_last)
    return list(s), len(s)


@pytest.mark.parametrize("n", [0, 1, 5, 10, 12, 13])
@pytest.mark.parametrize("replicas", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_without_shuffle_is_torchs(n, replicas, drop_last):
    for rank in range(replicas):
        ours = dist.DistributedSampler(n, num_replicas=replicas, rank=rank, shuffle=False,
                                       drop_last=drop_last)
        if n == 0 and not drop_last:
            assert list(ours) == [] and len(ours) == 0
            continue
        theirs, length = torch_sampler_indices(n, replicas, rank, drop_last)
        assert list(ours) == theirs and len(ours) == length


@pytest.mark.parametrize("n,replicas", [(100, 4), (10, 3), (7, 2), (3, 5)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_shuffle_partitions_each_epoch(n, replicas, drop_last):
    shares = []
    for epoch in (0, 1):
        per_rank = []
        for rank in range(replicas):
            s = dist.DistributedSampler(n, replicas, rank, shuffle=True, seed=3,
                                        drop_last=drop_last)
            s.set_epoch(epoch)
            per_rank.append(list(s))
            assert len(per_rank[-1]) == len(s)
        assert len({len(p) for p in per_rank}) == 1  # equal counts: equal batch counts
        flat = [i for p in per_rank for i in p]
        if drop_last:
            assert len(set(flat)) == len(flat) == n - n % replicas
        else:
            assert set(flat) == set(range(n)) and len(flat) == -(-n // replicas) * replicas
        shares.append(per_rank)
    if not (drop_last and n < replicas):  # (nothing left to shuffle then)
        assert shares[0] != shares[1]  # set_epoch reshuffles
    again = dist.DistributedSampler(n, replicas, 0, shuffle=True, seed=3, drop_last=drop_last)
    assert list(again) == shares[0][0]  # the same seed and epoch: the same order


def test_sampler_defaults_to_this_world_and_feeds_a_dataloader():
    s = dist.DistributedSampler(10)
    assert (s.num_replicas, s.rank, s.shuffle, s.seed, s.drop_last) == (1, 0, True, 0, False)
    assert sorted(s) == list(range(10))
    X = np.arange(20, dtype=np.float32).reshape(10, 2)
    batches = list(fastnn.data.DataLoader(X, np.arange(10), batch_size=4, sampler=s))
    assert sorted(int(i) for _, yb in batches for i in yb) == list(range(10))


@pytest.mark.parametrize("kwargs,error,match", [
    ({"num_replicas": 0}, ValueError, "num_replicas"),
    ({"num_replicas": 2, "rank": 2}, ValueError, r"rank must be in \[0, num_replicas - 1\]"),
    ({"num_replicas": 2, "rank": -1}, ValueError, "rank"),
    ({"rank": 1.0}, TypeError, "rank must be an int"),
    ({"seed": 1.5}, TypeError, "seed"),
    ({"shuffle": 1}, TypeError, "shuffle must be True or False"),
])
def test_sampler_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        dist.DistributedSampler(10, **kwargs)
    with pytest.raises(ValueError, match="epoch"):
        dist.DistributedSampler(10).set_epoch(-1)


def test_world_of_one():
    assert dist.get_rank() == 0 and dist.get_world_size() == 1
    assert dist.get_local_rank() == 0 and dist.get_local_world_size() == 1
    dist.barrier()
    model = nn.Linear(3, 2)
    before = model.weight.data.copy()
    dist.broadcast_parameters(model)
    dist.broadcast_optimizer_state(optim.SGD(model.parameters(), lr=0.1))
    assert np.array_equal(model.weight.data, before)
    with pytest.raises(ValueError, match="root must be a rank"):
        dist.broadcast_parameters(model, root=1)
    with pytest.raises(TypeError, match="Module or a dict"):
        dist.broadcast_parameters([model.weight])
    with pytest.raises(TypeError, match="fastnn.optim optimizer"):
        dist.broadcast_optimizer_state(model)


def make(seed=0):
    fastnn.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 16), nn.Tanh(),
                         nn.Linear(16, 3))


def train(model, opt, steps=5, seed=1):
    rng = np.random.default_rng(seed)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        X = rng.standard_normal((8, 6)).astype(np.float32)
        opt.zero_grad()
        loss_fn(model(X), rng.integers(0, 3, 8))
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
    return model.flat_buffer().data.copy()


@pytest.mark.parametrize("kwargs", [{}, {"deterministic": True}, {"op": "sum"},
                                    {"overlap": True, "bucket_cap_mb": 1e-4}])
def test_distributed_optimizer_in_one_process_steps_as_its_optimizer(kwargs):
    plain = train(m := make(), optim.Adam(m.parameters(), lr=1e-2))
    model = make()
    inner = optim.Adam(model.parameters(), lr=1e-2)
    if kwargs.get("overlap"):
        kwargs = dict(kwargs, model=model)
    opt = dist.DistributedOptimizer(inner, **kwargs)
    assert isinstance(opt, optim.Adam) and type(opt).__name__ == "Adam"
    assert np.array_equal(train(model, opt), plain)
    assert opt.state_dict()["state"][0]["step"] == 5 == inner.state_dict()["state"][0]["step"]
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)  # schedulers take it
    sched.step()
    assert inner.param_groups[0]["lr"] == 5e-3  # one state, seen through both


@pytest.mark.parametrize("make_opt", [lambda ps: optim.NAdam(ps, lr=1e-2),
                                      lambda ps: optim.ASGD(ps, lr=1e-2, t0=2),
                                      lambda ps: optim.Rprop(ps, lr=1e-3)],
                         ids=["NAdam", "ASGD", "Rprop"])
def test_optimizer_state_with_scalars_goes_the_broadcast_way(make_opt):
    # broadcast_optimizer_state pickles root's state_dict and loads it on the other
    # ranks: per-parameter scalars (mu_product, eta, mu) travel as 0-d arrays
    model = make()
    opt = dist.DistributedOptimizer(make_opt(model.parameters()))
    train(model, opt, steps=3)
    dist.broadcast_optimizer_state(opt)  # a world of one: nothing changes
    sent = pickle.loads(pickle.dumps(opt.state_dict()))
    model2 = make(seed=5)
    model2.load_state_dict(model.state_dict())
    opt2 = make_opt(model2.parameters())
    opt2.load_state_dict(sent)
    for index, entry in opt.state_dict()["state"].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(opt2.state_dict()["state"][index][key], value)
    assert np.array_equal(train(model, opt, seed=9), train(model2, opt2, seed=9))


def test_distributed_optimizer_checkpoints_as_its_optimizer(tmp_path):
    model = make()
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
    train(model, opt, steps=2)
    dist.save_checkpoint(tmp_path / "c.safetensors", model, opt, epoch=3, note="x")
    model2 = make(seed=5)
    opt2 = optim.SGD(model2.parameters(), lr=0.1, momentum=0.9)  # a plain one resumes it
    info = dist.load_checkpoint(tmp_path / "c.safetensors", model2, opt2)
    assert info == {"epoch": 3, "note": "x"}
    assert np.array_equal(model2.flat_buffer().data, model.flat_buffer().data)
    assert np.array_equal(train(model, opt, seed=9), train(model2, opt2, seed=9))


def test_distributed_optimizer_rejects():
    model = make()
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="wraps a fastnn.optim optimizer"):
        dist.DistributedOptimizer(model)
    with pytest.raises(ValueError, match="op must be 'average' or 'sum'"):
        dist.DistributedOptimizer(opt, op="max")
    with pytest.raises(ValueError, match="overlap=True needs model="):
        dist.DistributedOptimizer(opt, overlap=True)
    with pytest.raises(ValueError, match="model= is only for overlap=True"):
        dist.DistributedOptimizer(opt, model=model)
    with pytest.raises(TypeError, match="model must be a fastnn.nn.Module"):
        dist.DistributedOptimizer(opt, overlap=True, model="x")
    with pytest.raises(TypeError, match="deterministic must be True or False"):
        dist.DistributedOptimizer(opt, deterministic="no")
    with pytest.raises(ValueError, match="choose one"):
        dist.DistributedOptimizer(opt, overlap=True, deterministic=True, model=model)
    with pytest.raises(ValueError, match="bucket_cap_mb"):
        dist.DistributedOptimizer(opt, overlap=True, model=model, bucket_cap_mb=0)
    with pytest.raises(ValueError, match="already"):
        dist.DistributedOptimizer(dist.DistributedOptimizer(opt))


def test_overlap_buckets_follow_the_backward():
    """Buckets are contiguous slices from the end of the buffer; each goes as soon
    as the backwards of its parameters' modules are done, in index order."""
    model = make()
    opt = optim.SGD(model.parameters(), lr=0.1)
    grad = opt._buffer(0).grad
    buckets = _Buckets(opt, model, bucket_bytes=16 * 16 * 4)   # about one Linear each
    ends = [s.size for s in buckets.slices]
    assert sum(ends) == grad.size and buckets.slices[0][-1:].base is not None
    assert np.shares_memory(buckets.slices[0], grad[-3:])      # the last layer first
    started = []
    buckets_start = buckets.module_done

    def record(module):
        buckets_start(module)
        started.append(buckets.next)
    buckets.module_done = record
    buckets.armed = True  # as the optimizer's zero_grad does on several ranks
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(model(np.ones((2, 6), np.float32)), np.array([0, 1]))
    model.backward(loss_fn.backward(), input_grad=False)
    assert started == sorted(started) and started[-1] == len(buckets.slices)
    twin = copy.deepcopy(model)  # a copy backpropagates through its own class's backward
    loss_fn(twin(np.ones((2, 6), np.float32)), np.array([0, 1]))
    twin.backward(loss_fn.backward(), input_grad=False)
    assert started[-1] == len(buckets.slices)


def test_has_pending_backward():
    layer = nn.Linear(2, 2)
    x = np.ones((1, 2), np.float32)
    layer(x), layer(x)
    assert layer.has_pending_backward()
    layer.backward(np.ones((1, 2), np.float32))
    assert layer.has_pending_backward()
    layer.backward(np.ones((1, 2), np.float32))
    assert not layer.has_pending_backward()
    with fastnn.no_grad():
        layer(x)
    assert not layer.has_pending_backward()


def test_sum_in_rank_order_is_left_to_right():
    parts = np.array([[1e8], [1.0], [-1e8]], np.float32)
    assert sum_in_rank_order(parts)[0] == np.float32(np.float32(1e8 + 1.0) - 1e8)


def test_fit_distributed_switch():
    X = np.random.default_rng(0).standard_normal((40, 6)).astype(np.float32)
    y = np.arange(40) % 3
    with pytest.raises(TypeError, match="distributed must be None, True or False"):
        make().fit(X, y, verbose=0, distributed="yes")
    if not dist.is_initialized():
        with pytest.raises(RuntimeError, match=r"needs fastnn.distributed.init\(\)"):
            make().fit(X, y, verbose=0, distributed=True)
    a = make().fit(X, y, verbose=0, shuffle=False, distributed=False).history["loss"]
    b = make().fit(X, y, verbose=0, shuffle=False).history["loss"]
    assert a == b


def test_fit_warns_when_a_launcher_started_it_without_init(monkeypatch):
    if dist.is_initialized():
        pytest.skip("init() was called in this process")
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    X = np.zeros((8, 6), np.float32)
    with pytest.warns(RuntimeWarning, match="init\\(\\) was not called: each trains alone"):
        make().fit(X, np.zeros(8, np.int64), verbose=0)


def run_python(code: str, env_extra=None):
    import os
    env = dict(os.environ, **(env_extra or {}))
    for name in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"):
        env.pop(name, None)
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)


BLOCK_MPI4PY = "import sys; sys.modules['mpi4py'] = None\n"


def test_init_without_mpi4py_is_a_world_of_one():
    proc = run_python(BLOCK_MPI4PY + """
import fastnn.distributed as dist
dist.init(num_threads=1)
import fastnn
assert dist.is_initialized() and dist.get_world_size() == 1 and fastnn.get_num_threads() == 1
print("ok")
""")
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr


def test_init_without_mpi4py_under_a_launcher_says_what_to_install():
    proc = run_python(BLOCK_MPI4PY + """
import fastnn.distributed as dist
dist.init()
""", {"OMPI_COMM_WORLD_SIZE": "2"})
    assert proc.returncode != 0
    assert 'pip install "fastnn[mpi]"' in proc.stderr and "2 processes" in proc.stderr


def test_init_rejects_bad_arguments():
    proc = run_python("""
import fastnn.distributed as dist
for bad in ({"num_threads": 0}, {"num_threads": 1.5}, {"comm": 3}):
    try:
        dist.init(**bad)
    except (ValueError, TypeError, ImportError) as err:
        print(type(err).__name__, err)
""")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("ValueError num_threads") and lines[1].startswith("TypeError")
    assert lines[2].startswith(("TypeError comm", "ImportError")), lines


def test_copies_of_a_distributed_optimizer_stay_distributed():
    import pickle
    model = make()
    inner = optim.Adam(model.parameters(), lr=1e-2)
    opt = dist.DistributedOptimizer(inner, deterministic=True)
    train(model, opt, steps=2)
    for twin in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert type(twin).__name__ == "Adam" and hasattr(twin, "synchronize")
        assert twin._gradient_averager.options["deterministic"] is True
        assert twin.state_dict()["state"][0]["step"] == 2
    plain = pickle.loads(pickle.dumps(inner))  # the wrapped one stays a plain Adam
    assert type(plain) is optim.Adam and not hasattr(plain, "synchronize")
    with opt.skip_synchronize():
        assert opt._gradient_averager.synchronized
    assert not opt._gradient_averager.synchronized


def test_overlap_hooks_do_not_survive_copies_of_the_model():
    import pickle
    model = make()
    dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.1), overlap=True, model=model)
    assert "backward" in model[0].__dict__
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        hook = twin[0].__dict__.get("backward")
        assert hook is None or getattr(hook, "__self__", None) is twin[0]
        loss_fn = nn.CrossEntropyLoss()
        loss_fn(twin(np.ones((2, 6), np.float32)), np.array([0, 1]))
        twin.backward(loss_fn.backward(), input_grad=False)


def test_broadcast_buffers_checks_its_argument():
    dist.broadcast_buffers(nn.BatchNorm1d(3))
    with pytest.raises(TypeError, match="broadcast_buffers takes a fastnn.nn.Module"):
        dist.broadcast_buffers({"a": np.zeros(2)})
    with pytest.raises(TypeError, match="root must be an int"):
        dist.broadcast_buffers(nn.BatchNorm1d(3), root="0")


def test_in_one_process_an_exception_after_init_is_a_plain_traceback():
    proc = run_python("""
import fastnn.distributed as dist
dist.init()
raise ValueError("plain failure")
""")
    assert proc.returncode == 1 and "ValueError: plain failure" in proc.stderr
    assert "MPI_ABORT" not in proc.stderr
