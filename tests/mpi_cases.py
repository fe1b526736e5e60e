"""The data-parallel cases, run on every rank by tests/test_distributed_mpi.py:

    mpirun -np N --oversubscribe --bind-to none python -m mpi4py tests/mpi_cases.py CASE [ARG]

A case that fails raises AssertionError; `python -m mpi4py` then aborts the whole
job, so mpirun exits non-zero and the driver shows this rank's traceback.
The 1-process references are computed by every rank itself, from the same seed.
"""
import os
import signal
import sys
import time

import numpy as np

import fastnn
import fastnn.distributed as dist
from fastnn import nn, optim
from fastnn.distributed import world
from fastnn.distributed.world import sum_in_rank_order

dist.init()
RANK, SIZE = dist.get_rank(), dist.get_world_size()
SEED = 7


def same_on_every_rank(arr: np.ndarray, what: str) -> None:
    """Bitwise: every rank's bytes equal rank 0's (Allreduce MIN == MAX, via gather)."""
    every = world.allgather(np.ascontiguousarray(arr))
    for r in range(1, SIZE):
        assert every[r].tobytes() == every[0].tobytes(), \
            f"{what}: rank {r} differs from rank 0 (max |d| {np.abs(every[r] - every[0]).max()})"


def data(n: int = 96, features: int = 12, classes: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, features)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return X, y


def mlp(seed: int, features: int = 12, classes: int = 4):
    fastnn.manual_seed(seed)
    return nn.Sequential(nn.Linear(features, 32), nn.GELU(), nn.Linear(32, 16), nn.ReLU(),
                         nn.Linear(16, classes))


def cnn(seed: int):
    fastnn.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def shard_grad(model, loss_fn, xb, yb) -> np.ndarray:
    """This shard's gradient, computed into a zeroed buffer (a copy)."""
    buf = model.flat_buffer()
    buf.grad.fill(0.0)
    loss_fn(model(xb), yb)
    model.backward(loss_fn.backward(), input_grad=False)
    return buf.grad.copy()


def case_collectives():
    assert SIZE > 1 and 0 <= RANK < SIZE
    assert dist.is_initialized() and dist.get_local_world_size() == SIZE  # one host
    a = np.full(5, RANK + 1, np.float32)
    world.allreduce_(a)
    assert (a == SIZE * (SIZE + 1) / 2).all(), a
    world.ALLREDUCE_PIECE_BYTES, piece = 12, world.ALLREDUCE_PIECE_BYTES  # 3 floats a piece
    long = np.arange(10, dtype=np.float32) * (RANK + 1)
    world.allreduce_(long)
    world.ALLREDUCE_PIECE_BYTES = piece
    assert (long == np.arange(10) * SIZE * (SIZE + 1) / 2).all(), long
    b = np.arange(4, dtype=np.float64) * (RANK + 1)
    world.bcast_(b, root=SIZE - 1)
    assert (b == np.arange(4) * SIZE).all(), b
    g = world.allgather(np.array([RANK, 10 * RANK], np.int64))
    assert g.tolist() == [[r, 10 * r] for r in range(SIZE)], g
    assert world.bcast_object({"from": RANK}, root=1) == {"from": 1}
    assert fastnn.get_num_threads() == 1  # FASTNN_NUM_THREADS=1 from the driver wins
    dist.barrier()


def case_broadcast():
    # every rank starts from its own seed; after the broadcasts they all hold rank 0's
    model = cnn(seed=100 + RANK)
    opt = optim.Adam(model.parameters(), lr=1e-3 * (RANK + 1))
    X = np.random.default_rng(RANK).standard_normal((8, 1, 8, 8)).astype(np.float32)
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(model(X), np.arange(8) % 3)
    model.backward(loss_fn.backward(), input_grad=False)
    opt.step()  # state and BatchNorm statistics differ per rank now
    before = model.flat_buffer().data.copy()
    dist.broadcast_parameters(model)
    dist.broadcast_optimizer_state(opt)
    same_on_every_rank(model.flat_buffer().data, "parameters")
    for name, buf in model.named_buffers():
        same_on_every_rank(buf, name)
    state = opt.state_dict()
    for index, entry in state["state"].items():
        for key, value in entry.items():
            same_on_every_rank(np.asarray(value), f"optimizer state {index}.{key}")
    assert state["param_groups"][0]["lr"] == 1e-3, state["param_groups"][0]["lr"]
    assert np.array_equal(model.flat_buffer().data, before) == (RANK == 0)


def train_ranks(make_model, X, y, batch: int, steps: int, dist_kwargs, opt_cls=optim.Adam,
                check_every_step=True):
    """This rank's run: shards from a DistributedSampler, averaged gradients."""
    model = make_model(seed=SEED + RANK)          # differs until the broadcast
    opt = opt_cls(model.parameters(), lr=1e-2)
    if dist_kwargs.get("overlap"):
        dist_kwargs = dict(dist_kwargs, model=model)
    dist.broadcast_parameters(model)
    opt = dist.DistributedOptimizer(opt, **dist_kwargs)
    dist.broadcast_optimizer_state(opt)
    loss_fn = nn.CrossEntropyLoss()
    sampler = dist.DistributedSampler(len(X), shuffle=False)
    order = sampler.order()
    for step in range(steps):
        idx = order[step * batch:(step + 1) * batch]
        opt.zero_grad()
        loss_fn(model(X[idx]), y[idx])
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        if check_every_step:
            same_on_every_rank(model.flat_buffer().data, f"parameters after step {step + 1} "
                               f"({dist_kwargs})")
    return model


def reference(make_model, X, y, batch: int, steps: int, opt_cls=optim.Adam,
              combined: bool = False):
    """One process on every rank's samples of each step. combined=False: each
    rank's shard gradient into a zeroed buffer, summed in rank order, times 1/N
    (what deterministic mode promises bit for bit); combined=True: one batch of
    the N*b samples."""
    model = make_model(seed=SEED)
    opt = opt_cls(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    orders = [dist.DistributedSampler(len(X), SIZE, r, shuffle=False).order()
              for r in range(SIZE)]
    for step in range(steps):
        shards = [o[step * batch:(step + 1) * batch] for o in orders]
        grad = model.flat_buffer().grad
        if combined:
            idx = np.concatenate(shards)
            grad.fill(0.0)
            loss_fn(model(X[idx]), y[idx])
            model.backward(loss_fn.backward(), input_grad=False)
        else:
            parts = np.stack([shard_grad(model, loss_fn, X[idx], y[idx]) for idx in shards])
            sum_in_rank_order(parts, out=grad)
            np.multiply(grad, np.float32(1.0 / SIZE), out=grad)
        opt.step()
    return model


def case_agreement():
    """Parameters bitwise identical on every rank after every step, in each mode."""
    X, y = data()
    Xc = np.random.default_rng(1).standard_normal((48, 1, 8, 8)).astype(np.float32)
    yc = np.arange(48) % 3
    for kwargs in ({}, {"deterministic": True}, {"overlap": True, "bucket_cap_mb": 0.001},
                   {"op": "sum"}):
        train_ranks(mlp, X, y, batch=8, steps=4, dist_kwargs=dict(kwargs))
        train_ranks(cnn, Xc, yc, batch=4, steps=3, dist_kwargs=dict(kwargs))


def tiny_gpt(seed: int):
    from fastnn.models import GPT
    fastnn.manual_seed(seed)
    return GPT(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.0)


def gpt_steps(model, opt, steps: int = 3):
    tokens = np.random.default_rng(RANK).integers(0, 11, (4, 9))
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        opt.zero_grad()
        logits = model(tokens[:, :-1])
        loss_fn(logits.reshape(-1, 11), tokens[:, 1:].reshape(-1))
        model.backward(loss_fn.backward().reshape(logits.shape))
        opt.step()
    return model.flat_buffer().data.copy()


def case_overlap_edges():
    """Overlap with a tied weight (GPT's lm_head is wte), a param group added after
    wrapping, and a second backward in one step (refused)."""
    runs = []
    for overlap in (False, True):
        model = tiny_gpt(SEED)
        opt = optim.AdamW(model.parameters(), lr=1e-2)
        opt = dist.DistributedOptimizer(opt, overlap=overlap, model=model if overlap else None,
                                        bucket_cap_mb=0.0005)
        runs.append(gpt_steps(model, opt))
        same_on_every_rank(runs[-1], f"GPT parameters, overlap={overlap}")
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-5, atol=1e-5)  # 3 ranks: sum order
    if SIZE == 2:
        assert np.array_equal(runs[1], runs[0])
    # a group added after wrapping is averaged too
    model = mlp(seed=SEED)
    layers = list(model.children())
    opt = optim.SGD(layers[0].parameters(), lr=0.1)
    opt = dist.DistributedOptimizer(opt, overlap=True, model=model, bucket_cap_mb=0.001)
    opt.add_param_group({"params": [p for m in layers[1:] for p in m.parameters()]})
    X, y = data()
    loss_fn = nn.CrossEntropyLoss()
    for step in range(3):
        opt.zero_grad()
        idx = np.arange(8) + 8 * RANK
        loss_fn(model(X[idx]), y[idx])
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        same_on_every_rank(model.flat_buffer().data, "after add_param_group")
    # two backwards in one step: the second one is refused on every rank
    opt.zero_grad()
    for attempt in range(2):
        loss_fn(model(X[:8]), y[:8])
        try:
            model.backward(loss_fn.backward(), input_grad=False)
        except RuntimeError as err:
            assert attempt == 1 and "takes one backward per step" in str(err), err
    opt.synchronize()  # the first backward's buckets complete
    opt.step()
    same_on_every_rank(model.flat_buffer().data, "after a refused second backward")


def case_equivalence():
    """N ranks x batch b against one process with the N*b samples."""
    X, y = data()
    steps, batch = 4, 8
    flat = lambda m: m.flat_buffer().data
    det = train_ranks(mlp, X, y, batch, steps, {"deterministic": True}, check_every_step=False)
    assert np.array_equal(flat(det), flat(reference(mlp, X, y, batch, steps))), \
        "deterministic mode differs from the 1-process shard-sum reference"
    combined = flat(reference(mlp, X, y, batch, steps, optim.SGD, combined=True))
    for kwargs in ({}, {"overlap": True, "bucket_cap_mb": 0.001}):
        run = flat(train_ranks(mlp, X, y, batch, steps, dict(kwargs), optim.SGD,
                               check_every_step=False))
        np.testing.assert_allclose(run, combined, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{kwargs} against one process, batch N*b")
    if SIZE & (SIZE - 1) == 0:  # a + b == b + a and x/2 exact: Allreduce is bitwise too
        run = train_ranks(mlp, X, y, batch, steps, {}, check_every_step=False)
        assert np.array_equal(flat(run), flat(reference(mlp, X, y, batch, steps)))
    # fit() on N ranks against fit() in one process on the combined batch
    fastnn.manual_seed(3)
    model = mlp(seed=SEED)
    h = model.fit(X, y, optimizer=optim.SGD(model.parameters(), lr=0.05), epochs=2,
                  batch_size=8, shuffle=False, verbose=0, metrics=("accuracy",))
    same_on_every_rank(flat(model), "fit parameters")
    ref = mlp(seed=SEED)
    order = np.concatenate([dist.DistributedSampler(len(X), SIZE, r, shuffle=False).order()
                            .reshape(-1, 8) for r in range(SIZE)], axis=1).reshape(-1)
    href = ref.fit(X[order], y[order], optimizer=optim.SGD(ref.parameters(), lr=0.05),
                   epochs=2, batch_size=8 * SIZE, shuffle=False, verbose=0,
                   distributed=False)
    np.testing.assert_allclose(flat(model), flat(ref), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h.history["loss"], href.history["loss"], rtol=1e-5)
    assert h.history["accuracy"] == href.history["accuracy"], (h.history, href.history)


def case_sampler():
    for n in (96, 10, 7, 1):
        for drop_last in (False, True):
            for shuffle in (False, True):
                s = dist.DistributedSampler(n, shuffle=shuffle, seed=5, drop_last=drop_last)
                for epoch in (0, 1):
                    s.set_epoch(epoch)
                    mine = s.order()
                    every = world.allgather_object(mine.tolist())
                    counts = {len(e) for e in every}
                    assert counts == {len(s)}, (n, counts)  # equal counts on every rank
                    flat = [i for e in every for i in e]
                    if drop_last:
                        assert len(set(flat)) == len(flat) == n - n % SIZE, (n, every)
                    else:
                        assert set(flat) == set(range(n)), (n, every)   # each sample
                        assert len(flat) == -(-n // SIZE) * SIZE
                        if n % SIZE == 0:
                            assert sorted(flat) == list(range(n))       # exactly once
                if shuffle and n > 2:
                    s.set_epoch(0)
                    e0 = s.order().copy()
                    s.set_epoch(1)
                    assert not np.array_equal(e0, s.order()) or n < 4


class CountWrites(fastnn.callbacks.Callback):
    rank_zero_only = True

    def __init__(self):
        super().__init__()
        self.calls = 0

    def on_epoch_end(self, epoch, logs=None):
        self.calls += 1


class StopOnRank(fastnn.callbacks.Callback):
    """Asks to stop on one rank only, after a given epoch's batch."""

    def __init__(self, rank: int, epoch: int, batch: int):
        super().__init__()
        self.rank, self.epoch_, self.batch = rank, epoch, batch
        self.current = None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_batch_end(self, batch, logs=None):
        if RANK == self.rank and self.current == self.epoch_ and batch == self.batch:
            self.model.stop_training = True


def case_fit(folder: str):
    """fit under MPI: rank-0 writers, the same logs everywhere, agreed stops."""
    from sklearn.datasets import load_digits
    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    fastnn.manual_seed(RANK)       # different streams: fit must still agree
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 10))
    ckpt = os.path.join(folder, "best.safetensors")
    csv = os.path.join(folder, "log.csv")
    counter = CountWrites()
    sched = fastnn.callbacks.LearningRateScheduler(
        optim.lr_scheduler.ReduceLROnPlateau(optim.Adam(model.parameters(), lr=1e-2), patience=0),
        monitor="val_loss")
    opt = sched.schedule.optimizer
    cbs = [fastnn.callbacks.ModelCheckpoint(ckpt, save_best_only=True),
           fastnn.callbacks.CSVLogger(csv), counter, sched,
           fastnn.callbacks.EarlyStopping(patience=1, restore_best_weights=True)]
    h = model.fit(X, y, optimizer=opt, epochs=10, batch_size=32, validation_split=0.2,
                  callbacks=cbs, verbose=2)
    every = world.allgather_object(h.history)
    for r in range(1, SIZE):
        assert all(every[r][k] == every[0][k] for k in every[0] if k != "time"), every
    same_on_every_rank(model.flat_buffer().data, "parameters after fit")
    assert counter.calls == (len(h.epoch) if RANK == 0 else 0), (RANK, counter.calls)
    assert h.history["val_accuracy"][-1] > 0.8, h.history
    dist.barrier()
    if RANK == 0:
        import csv as csvlib
        rows = list(csvlib.reader(open(csv)))
        assert len(rows) == len(h.epoch) + 1, rows  # one writer: a header and a row an epoch
        loaded = fastnn.load(ckpt)
        assert isinstance(loaded, nn.Sequential)
    # BatchNorm's running statistics: rank 0's on every rank after fit (as torch's DDP)
    fastnn.manual_seed(RANK)
    bn = nn.Sequential(nn.Linear(64, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 10))
    h = bn.fit(X, y, epochs=2, batch_size=32, validation_split=0.2, verbose=0)
    for name, buf in bn.named_buffers():
        same_on_every_rank(buf, f"BatchNorm buffer {name} after fit")
    same_on_every_rank(np.array(h.history["val_loss"]), "validation loss with BatchNorm")
    # one rank asks to stop in epoch 1 after batch 3: every rank leaves there
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 10))
    h = model.fit(X, y, epochs=4, batch_size=32, verbose=0,
                  callbacks=[StopOnRank(SIZE - 1, epoch=1, batch=3)])
    assert len(h.epoch) == 2, h.epoch
    same_on_every_rank(model.flat_buffer().data, "parameters after a one-rank stop")
    # a NaN in one rank's share stops every rank at the same batch, before its step
    Xn = X.copy()
    Xn[-1] = np.nan      # the last sample lands in one rank's share
    model = nn.Sequential(nn.Linear(64, 10))
    before = model.flat_buffer().data.copy()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        h = model.fit(Xn, y, epochs=1, batch_size=64, verbose=0, shuffle=False)
    # sample n-1 is rank (n-1) % N's number (n-1) // N (no shuffling)
    assert h.nonfinite is not None and h.nonfinite["batch"] == (len(X) - 1) // SIZE // 64, \
        h.nonfinite
    same_on_every_rank(np.array([h.nonfinite["batch"]], np.int64), "non-finite batch")
    same_on_every_rank(model.flat_buffer().data, "parameters after a NaN on one rank")
    assert not np.array_equal(before, model.flat_buffer().data) or h.nonfinite["batch"] == 0


def checkpoint_run(path: str, resume: bool):
    X, y = data(n=120)
    fastnn.manual_seed(11)
    model = mlp(seed=11)
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    if resume:
        info = dist.load_checkpoint(path, model, opt, sched)
        assert info["epoch"] == 2 and "saved_by" in info, info
        same_on_every_rank(model.flat_buffer().data, "resumed parameters")
        expected = np.load(path + ".params.npy")
        assert np.array_equal(model.flat_buffer().data, expected), "not the saved parameters"
        assert np.isclose(opt.param_groups[0]["lr"], 1e-2 * 0.25), opt.param_groups[0]["lr"]
        model.fit(X, y, optimizer=opt, epochs=4, initial_epoch=2, batch_size=16, verbose=0)
        same_on_every_rank(model.flat_buffer().data, "parameters after resuming")
        return
    model.fit(X, y, optimizer=opt, epochs=2, batch_size=16, verbose=0,
              callbacks=[fastnn.callbacks.LearningRateScheduler(sched)])
    dist.save_checkpoint(path, model, opt, sched, epoch=2, saved_by=SIZE)
    if RANK == 0:
        np.save(path + ".params.npy", model.flat_buffer().data)
    dist.barrier()
    assert os.path.exists(path)


def case_checkpoint_save(path: str):
    checkpoint_run(path, resume=False)


def case_checkpoint_resume(path: str):
    checkpoint_run(path, resume=True)


def case_fault(path: str, how: str = "raise"):
    """Rank 1 raises (or is killed, how="kill") mid-training while rank 0
    checkpoints every batch; the job must end (non-zero) within seconds, and the
    checkpoint stays whole."""
    X, y = data(n=4096, features=64)
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 4))

    class Explode(fastnn.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if RANK == 0:
                fastnn.save_checkpoint(path, model, epoch=batch)
            if RANK == 1 and batch == 5:
                print("rank 1 fails on purpose", file=sys.stderr, flush=True)
                if how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError("rank 1 fails on purpose")

    print(f"rank {RANK} starts at {time.time():.3f}", flush=True)
    model.fit(X, y, epochs=1000, batch_size=16, verbose=0, callbacks=[Explode()])
    raise AssertionError("fit returned though rank 1 raised")


if __name__ == "__main__":
    name, args = sys.argv[1], sys.argv[2:]
    globals()[f"case_{name}"](*args)
    dist.barrier()
    if RANK == 0:
        print(f"case {name} passed on {SIZE} ranks", flush=True)
