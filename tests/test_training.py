"""fit / predict / evaluate, History, callbacks, DataLoader, Ctrl-C."""
import csv
import os
import signal
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.callbacks import (Callback, CSVLogger, EarlyStopping, LearningRateScheduler,
                              ModelCheckpoint, TerminateOnNaN)
from fastnn.data import DataLoader


def blobs(n=300, seed=0):
    """Three well-separated Gaussian classes in 4-D."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centers = np.array([[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]], np.float32)
    X = centers[y] + rng.standard_normal((n, 4)).astype(np.float32) * 0.5
    return X, y


def mlp(seed=0):
    fastnn.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 3))


def test_fit_learns_and_reports():
    X, y = blobs()
    model = mlp()
    hist = model.fit(X, y, epochs=8, batch_size=32, validation_split=0.2, verbose=0,
                     optimizer=optim.Adam(model.parameters(), lr=1e-2))
    assert set(hist.history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time"}
    assert hist.epoch == list(range(8))
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] > 0.95
    res = model.evaluate(X, y)
    assert set(res) == {"loss", "accuracy"} and res["accuracy"] > 0.95
    assert model.training  # fit leaves the mode; evaluate and predict restore it
    out = model.predict(X, batch_size=7)
    assert out.shape == (300, 3) and model.training
    np.testing.assert_allclose(out, model.eval()(X), rtol=1e-5, atol=1e-6)


def test_fit_is_reproducible_with_manual_seed():
    X, y = blobs()

    def run():
        model = mlp(seed=5)
        model.fit(X, y, epochs=2, batch_size=16, optimizer="sgd", verbose=0)
        return model.state_dict()

    a, b = run(), run()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


@pytest.mark.parametrize("name", ["nadam", "adadelta", "asgd", "rprop"])
def test_fit_by_optimizer_name_lowers_the_loss(name):
    X, y = blobs()
    model = mlp(seed=5)
    hist = model.fit(X, y, epochs=3, batch_size=32, optimizer=name, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]


@pytest.mark.parametrize("name, head, target", [
    ("nll", nn.LogSoftmax(dim=1), "labels"), ("kl_div", nn.LogSoftmax(dim=1), "one-hot"),
    ("bce", nn.Sigmoid(), "one-hot"), ("multilabel_soft_margin", None, "one-hot"),
    ("soft_margin", None, "signs"), ("smooth_l1", None, "one-hot")])
def test_fit_by_loss_name_lowers_the_loss(name, head, target):
    X, y = blobs()
    one_hot = np.eye(3, dtype=np.float32)[y]
    targets = {"labels": y, "one-hot": one_hot, "signs": 2 * one_hot - 1}[target]
    model = mlp(seed=2)
    if head is not None:
        model.append(head)
    hist = model.fit(X, targets, loss=name, epochs=4, batch_size=16, metrics=(), verbose=0)
    assert hist.history["loss"][-1] < 0.9 * hist.history["loss"][0], hist.history["loss"]


def test_fit_by_names_regression_and_validation_data():
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (256, 2)).astype(np.float32)
    y = (X[:, :1] * 2 - X[:, 1:]).astype(np.float32)
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 1))
    hist = model.fit(X, y, loss="mse", optimizer="sgd", epochs=100, batch_size=16,
                     metrics=("mae",), validation_data=(X[:64], y[:64]), verbose=0)
    assert hist.history["val_mae"][-1] < 0.05
    assert model.evaluate(X, y, metrics=["mse"])["mse"] < 0.01


def test_verbose_modes(capsys):
    X, y = blobs(64)
    mlp().fit(X, y, epochs=2, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    mlp().fit(X, y, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("Epoch 1/2 - loss:")
    mlp().fit(X, y, epochs=1, verbose=1)
    err = capsys.readouterr().err
    assert "Epoch 1/1" in err and "samples/s" in err


def test_fit_argument_errors():
    X, y = blobs(20)
    model = mlp()
    with pytest.raises(ValueError, match="samples like X"):
        model.fit(X, y[:5], verbose=0)
    with pytest.raises(ValueError, match="unknown loss"):
        model.fit(X, y, loss="hinge", verbose=0)
    with pytest.raises(ValueError, match=r"reduce to a float.*reduction='none'"):
        model.fit(X, y, loss=nn.CrossEntropyLoss(reduction="none"), verbose=0)
    with pytest.raises(ValueError, match="MarginRankingLoss, which takes more inputs"):
        model.fit(X, y, loss=nn.MarginRankingLoss(), verbose=0)
    with pytest.raises(ValueError, match="unknown optimizer"):
        model.fit(X, y, optimizer="lbfgs", verbose=0)
    with pytest.raises(ValueError, match="unknown metric"):
        model.fit(X, y, metrics=("f1",), verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(X, y, validation_split=1.0, verbose=0)
    with pytest.raises(ValueError, match="validation_data"):
        model.fit(X, y, validation_data=X, verbose=0)
    with pytest.raises(ValueError, match="epochs"):
        model.fit(X, y, epochs=0, verbose=0)
    with pytest.raises(TypeError, match="Callback"):
        model.fit(X, y, callbacks=[print], verbose=0)
    with pytest.raises(TypeError, match="real numbers"):
        model.fit(np.array([["a"]] * 20), y, verbose=0)
    with pytest.raises(ValueError, match="loss="):
        mlp().evaluate(X, y)


def test_early_stopping_restores_best_weights():
    X, y = blobs()

    class Worsen(Callback):
        """Feeds EarlyStopping a val_loss that is best at epoch 1."""
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = abs(epoch - 1) + 1.0

    stop = EarlyStopping(patience=2, restore_best_weights=True)

    class Snapshot(Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.best = self.model.state_dict()

    snap = Snapshot()
    model = mlp()
    hist = model.fit(X, y, epochs=20, callbacks=[Worsen(), snap, stop], verbose=0)
    assert hist.epoch == [0, 1, 2, 3, 4] and stop.stopped_epoch == 4
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, snap.best[k])
    with pytest.warns(RuntimeWarning, match="val_loss"):
        mlp().fit(X, y, epochs=1, callbacks=[EarlyStopping()], verbose=0)


def test_learning_rate_scheduler_function_and_object():
    X, y = blobs(64)
    model = mlp()
    hist = model.fit(X, y, epochs=3, optimizer=optim.SGD(model.parameters(), lr=0.1),
                     callbacks=[LearningRateScheduler(lambda e, lr: 0.1 * 0.5 ** e)], verbose=0)
    assert hist.history["lr"] == pytest.approx([0.1, 0.05, 0.025])
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.1)
    hist = model.fit(X, y, epochs=3, optimizer=opt, callbacks=[LearningRateScheduler(sched)],
                     verbose=0)
    assert hist.history["lr"] == pytest.approx([0.1, 0.01, 0.001])
    with pytest.raises(TypeError, match="schedule"):
        LearningRateScheduler(3)


def test_model_checkpoint_and_csv_logger(tmp_path):
    X, y = blobs(64)
    best = tmp_path / "best.safetensors"
    every = str(tmp_path / "m-{epoch:02d}.safetensors")
    log = tmp_path / "log.csv"
    model = mlp()
    model.fit(X, y, epochs=3, validation_split=0.25, verbose=0,
              callbacks=[ModelCheckpoint(best, save_best_only=True), ModelCheckpoint(every),
                         CSVLogger(log)])
    assert best.exists() and sorted(os.listdir(tmp_path)) == [
        "best.safetensors", "log.csv", "m-01.safetensors", "m-02.safetensors",
        "m-03.safetensors"]
    again = fastnn.load(str(tmp_path / "m-03.safetensors")).eval()
    np.testing.assert_array_equal(again(X), model.eval()(X))
    rows = list(csv.reader(open(log)))
    assert rows[0] == ["epoch", "accuracy", "loss", "lr", "time", "val_accuracy", "val_loss"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]


def test_ctrl_c_stops_after_the_batch_and_keeps_weights():
    X, y = blobs(320)

    class PressCtrlC(Callback):
        def on_batch_end(self, batch, logs=None):
            if batch == 3:
                self.weights = None
                os.kill(os.getpid(), signal.SIGINT)

    class Record(Callback):
        def on_batch_end(self, batch, logs=None):
            self.last_batch = batch
            self.weights = self.model.state_dict()

    rec = Record()
    model = mlp()
    hist = model.fit(X, y, epochs=5, batch_size=32, callbacks=[PressCtrlC(), rec], verbose=0)
    assert hist.interrupted and rec.last_batch == 3 and hist.epoch == []
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, rec.weights[k])
    # the handler is restored afterwards
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    X, y = blobs(64)
    hist = mlp().fit(X, y, epochs=2, validation_split=0.25, verbose=0)
    fig = hist.plot(str(tmp_path / "curves.png"))
    assert (tmp_path / "curves.png").stat().st_size > 0 and len(fig.axes) == 2


def test_data_loader():
    X = np.arange(10).reshape(10, 1)
    y = np.arange(10)
    loader = DataLoader(X, y, batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and [len(b[0]) for b in batches] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)
    assert len(DataLoader(X, batch_size=4, drop_last=True)) == 2
    a = [b.ravel().tolist() for b in DataLoader(X, batch_size=5, shuffle=True, seed=1)]
    b = [b.ravel().tolist() for b in DataLoader(X, batch_size=5, shuffle=True, seed=1)]
    assert a == b and sorted(sum(a, [])) == list(range(10)) and a != [[0, 1, 2, 3, 4],
                                                                      [5, 6, 7, 8, 9]]
    seeded = DataLoader(X, batch_size=10, shuffle=True, seed=1)
    assert list(seeded)[0].tolist() != list(seeded)[0].tolist()  # a new order per pass
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(X, batch_size=0)
    with pytest.raises(ValueError, match="10 samples"):
        DataLoader(X, y[:3])


# ---- fit's hooks for gradient tricks and data parallelism, samplers, no_grad -------

class Spy(nn.Identity):
    """Identity that records its inputs and whether gradients were enabled."""

    def __init__(self):
        super().__init__()
        self.seen, self.grad_enabled = [], []

    def forward(self, x):
        self.seen.append(np.array(x))
        self.grad_enabled.append(fastnn.is_grad_enabled())
        return x


class Recorder(Callback):
    def __init__(self, calls):
        super().__init__()
        self.calls = calls

    def on_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_after_backward(self, batch, logs=None):
        self.calls.append(("after_backward", batch, float(logs["loss"])))

    def on_before_step(self, batch, logs=None):
        self.calls.append(("before_step", batch))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch))


def test_step_hooks_come_between_backward_and_step():
    X, y = blobs(40)
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    calls = []
    real_backward, real_step = model.backward, opt.step

    def backward(*args, **kwargs):
        calls.append(("backward",))
        return real_backward(*args, **kwargs)

    def step():
        calls.append(("step",))
        real_step()

    model.__dict__["backward"], opt.step = backward, step
    model.fit(X, y, epochs=1, batch_size=16, optimizer=opt, verbose=0,
              callbacks=[Recorder(calls)])
    names = [c[0] for c in calls]
    assert names == ["batch_begin", "backward", "after_backward", "before_step", "step",
                     "batch_end"] * 3
    assert [c[1] for c in calls if c[0] == "after_backward"] == [0, 1, 2]
    assert all(c[2] > 0 for c in calls if c[0] == "after_backward")  # the batch's loss


def test_gradient_clipping_in_on_before_step_changes_the_step():
    X, y = blobs(64)

    class Clip(Callback):
        def __init__(self):
            super().__init__()
            self.norms = []

        def on_after_backward(self, batch, logs=None):  # the gradients are complete here
            self.norms.append(np.sqrt(sum(float((p.grad ** 2).sum())
                                          for p in self.model.parameters())))

        def on_before_step(self, batch, logs=None):
            nn.utils.clip_grad_norm_(self.model.parameters(), 1e-3)

    def step(callbacks):
        fastnn.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        before = np.concatenate([p.data.ravel() for p in model.parameters()])
        model.fit(X, y, epochs=1, batch_size=64, optimizer=optim.SGD(model.parameters(), lr=1.0),
                  verbose=0, callbacks=callbacks)
        after = np.concatenate([p.data.ravel() for p in model.parameters()])
        return float(np.linalg.norm(after - before))

    clip = Clip()
    clipped, free = step([clip]), step([])
    assert clip.norms and clip.norms[0] > 1e-2        # unclipped gradient norm
    assert clipped == pytest.approx(1e-3, rel=1e-3)    # SGD, lr 1: the step is the clipped grad
    assert free == pytest.approx(clip.norms[0], rel=1e-4)


class Order:
    """A sampler: a fixed order, and the epochs set_epoch was told."""

    def __init__(self, order):
        self.order, self.epochs = list(order), []

    def __iter__(self):
        return iter(self.order)

    def __len__(self):
        return len(self.order)

    def set_epoch(self, epoch):
        self.epochs.append(epoch)


def test_fit_follows_the_sampler_and_calls_set_epoch():
    X = np.arange(10, dtype=np.float32).reshape(10, 1)
    y = (np.arange(10) % 2).astype(np.int64)
    order = [9, 0, 8, 1, 7, 2, 6, 3]                     # 8 of the 10 samples
    sampler = Order(order)
    spy = Spy()
    model = nn.Sequential(spy, nn.Linear(1, 2))
    epochs_seen = []

    class Epochs(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_seen.append((epoch, list(sampler.epochs)))

    model.fit(X, y, epochs=3, initial_epoch=1, batch_size=3, sampler=sampler, verbose=0,
              callbacks=[Epochs()])
    assert [len(b) for b in spy.seen] == [3, 3, 2] * 2
    assert np.concatenate(spy.seen).ravel().tolist() == order * 2
    assert sampler.epochs == [1, 2]
    assert epochs_seen == [(1, [1]), (2, [1, 2])]        # set before the epoch begins
    assert all(spy.grad_enabled)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        model.fit(X, y, shuffle=True, sampler=sampler, verbose=0)
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        DataLoader(X, y, shuffle=True, sampler=sampler)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(X, y, sampler=sampler, seed=0)
    with pytest.raises(TypeError, match="sampler"):
        DataLoader(X, y, sampler=5)
    # a list is a sampler too; a partial last batch is dropped with drop_last
    loader = DataLoader(X, y, batch_size=2, sampler=[4, 2, 0], drop_last=True)
    assert len(loader) == 1 and loader.num_samples() == 2
    assert [b[1].tolist() for b in loader] == [[0, 0]]


def test_built_in_samplers_are_the_loaders_only_path():
    from fastnn.data import RandomSampler, SequentialSampler
    X = np.arange(10).reshape(10, 1)
    assert isinstance(DataLoader(X).sampler, SequentialSampler)
    assert isinstance(DataLoader(X, shuffle=True).sampler, RandomSampler)
    assert list(SequentialSampler(X)) == list(range(10)) and len(SequentialSampler(4)) == 4
    # a seeded loader draws what its seeded RandomSampler draws, as before samplers
    expected = np.random.Generator(np.random.PCG64(3)).permutation(10).tolist()
    assert list(RandomSampler(10, seed=3)) == expected
    loader = DataLoader(X, batch_size=10, shuffle=True, seed=3)
    assert list(loader)[0].ravel().tolist() == expected
    fastnn.manual_seed(1)
    a = list(RandomSampler(X))
    fastnn.manual_seed(1)
    assert list(RandomSampler(X)) == a and sorted(a) == list(range(10))
    with pytest.raises(TypeError, match="number of samples"):
        RandomSampler(object())


def test_predict_and_evaluate_run_without_grad():
    X, y = blobs(20)
    spy = Spy()
    model = nn.Sequential(spy, nn.Linear(4, 3))
    model.predict(X, batch_size=8)
    model.evaluate(X, y, loss="cross_entropy")
    assert spy.grad_enabled == [False] * 4 and fastnn.is_grad_enabled()  # 3 + 1 batches
    model.fit(X, y, epochs=1, batch_size=20, verbose=0)
    assert spy.grad_enabled[-1] is True


def test_fit_trains_on_the_model_owned_buffer():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    X = np.random.default_rng(0).standard_normal((32, 4)).astype(np.float32)
    y = np.arange(32) % 3
    seen = []

    class Spy(fastnn.callbacks.Callback):
        def on_before_step(self, batch, logs=None):
            seen.append(self.optimizer._buffer(0))

    model.fit(X, y, optimizer="sgd", epochs=1, batch_size=16, verbose=0, callbacks=[Spy()])
    flat = model.flat_buffer()
    assert seen and all(buf is flat for buf in seen)  # no copy of the parameters anywhere


# ---- a non-finite loss -----------------------------------------------------------------------

def nan_at(X, i):
    X = X.copy()
    X[i, 0] = np.nan
    return X


class Steps(Callback):
    """the weights after each optimizer step, and the (epoch, batch) of each batch end"""
    def __init__(self):
        super().__init__()
        self.ends, self.weights = [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        self.ends.append((self.epoch, batch))
        self.weights.append(self.model.state_dict())


class Poison(nn.Identity):
    """Identity that turns its input to NaN in one (epoch, batch) of a fit"""

    def __init__(self, at):
        super().__init__()
        self.at, self.now = at, None

    def forward(self, x):
        return x + np.float32("nan") if self.now == self.at else x


class Clock(Callback):
    def __init__(self, poison):
        super().__init__()
        self.poison = poison

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_begin(self, batch, logs=None):
        self.poison.now = (self.epoch, batch)


def test_fit_stops_before_the_step_of_the_first_nan_batch():
    X, y = blobs(320)
    poison, steps = Poison((1, 3)), Steps()
    model = nn.Sequential(poison, mlp())
    with pytest.warns(RuntimeWarning, match=r"loss is nan in epoch 2/5, batch 4/10; stopped "
                                            r"before that batch's optimizer step"):
        hist = model.fit(X, y, epochs=5, batch_size=32, callbacks=[Clock(poison), steps],
                         verbose=0)
    assert hist.nonfinite["epoch"] == 1 and hist.nonfinite["batch"] == 3
    assert np.isnan(hist.nonfinite["loss"])
    assert hist.epoch == [0] and len(hist.history["loss"]) == 1  # the stopped epoch is not logged
    assert steps.ends[-1] == (1, 2)  # no batch end, no step for the NaN batch
    for k, v in model.state_dict().items():  # the weights of the last finite step
        assert np.isfinite(v).all()
        np.testing.assert_array_equal(v, steps.weights[-1][k])


def test_fit_with_nan_in_x_warns_names_the_batch_and_prints_no_accuracy(capsys):
    X, y = blobs(96)
    model = mlp()
    with pytest.warns(RuntimeWarning, match=r"loss is nan in epoch 1/3, batch 2/3"):
        hist = model.fit(nan_at(X, 40), y, epochs=3, batch_size=32, shuffle=False, verbose=2)
    assert hist.nonfinite["epoch"] == 0 and hist.nonfinite["batch"] == 1
    assert hist.epoch == [] and hist.history == {}
    assert "accuracy" not in capsys.readouterr().out
    assert all(np.isfinite(v).all() for v in model.state_dict().values())


def test_fit_stops_on_an_infinite_loss_too():
    X = np.zeros((8, 1), np.float32)
    y = np.full((8, 1), 3e38, np.float32)  # (0 - 3e38)^2 overflows float32: the loss is inf
    model = nn.Sequential(nn.Linear(1, 1))
    with pytest.warns(RuntimeWarning, match=r"loss is inf in epoch 1/2, batch 1/1"):
        hist = model.fit(X, y, loss="mse", epochs=2, batch_size=8, metrics=(), verbose=0)
    assert hist.nonfinite == {"epoch": 0, "batch": 0, "loss": float("inf")}


def test_fit_trains_on_without_stop_on_nonfinite_as_keras():
    X, y = blobs(96)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all
        hist = mlp().fit(nan_at(X, 40), y, epochs=2, batch_size=32, shuffle=False, verbose=0,
                         stop_on_nonfinite=False)
    assert hist.nonfinite is None and hist.epoch == [0, 1]
    assert np.isnan(hist.history["loss"]).all()


def test_terminate_on_nan_stops_after_the_batch_as_keras():
    X, y = blobs(160)
    steps, term = Steps(), TerminateOnNaN()
    model = mlp()
    with pytest.warns(RuntimeWarning, match=r"TerminateOnNaN: invalid loss nan in epoch 1, "
                                            r"batch 3: terminating training"):
        hist = model.fit(nan_at(X, 70), y, epochs=4, batch_size=32, shuffle=False, verbose=0,
                         stop_on_nonfinite=False, callbacks=[steps, term])
    assert term.stopped == (0, 2) and steps.ends[-1] == (0, 2)
    assert hist.epoch == [0] and np.isnan(hist.history["loss"][0])  # Keras: the epoch ends
    assert hist.nonfinite is None and model.stop_training


def test_terminate_on_nan_does_nothing_on_finite_losses():
    X, y = blobs(64)
    term = TerminateOnNaN()
    hist = mlp().fit(X, y, epochs=2, verbose=0, callbacks=[term])
    assert term.stopped is None and hist.epoch == [0, 1]
