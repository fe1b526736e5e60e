"""Keras-style training on any Module: fit(), predict(), evaluate(), History.

    history = model.fit(X, y, loss="cross_entropy", optimizer="adam", epochs=10,
                        batch_size=64, validation_split=0.1, metrics=("accuracy",))
    history.history["val_accuracy"]; history.plot()
    model.evaluate(Xt, yt)    # {"loss": ..., "accuracy": ...}
    model.predict(Xt)         # eval mode, batch by batch

Each step: optimizer.zero_grad(), forward, loss, model.backward(loss_fn.backward(),
input_grad=False), callbacks' on_after_backward then on_before_step (where
gradient clipping or a data-parallel allreduce goes), optimizer.step(). A tqdm
bar per epoch shows the running loss, metrics and samples/s (verbose=1);
verbose=2 prints one line per epoch, 0 nothing. Ctrl-C stops after the current
batch and keeps the weights trained so far (history.interrupted is then True).
A batch loss that is NaN or +-inf stops training before that batch's backward
and optimizer step, with a RuntimeWarning (history.nonfinite; see fit).
Shuffling draws from fastnn's random stream, so fastnn.manual_seed(s) makes a
run reproducible; sampler= gives the order instead (its set_epoch(epoch), if it
has one, is called at each epoch start). predict and evaluate run inside
fastnn.no_grad(): their forwards keep nothing for a backward.

Under MPI (after fastnn.distributed.init(), several ranks) fit trains
data-parallel: each rank takes its share of every epoch (batch_size is per
rank), gradients are averaged before each step, and the logs, stopping and
callbacks' decisions agree on every rank; writing callbacks and the progress
bar run on rank 0. See fastnn.distributed.replicas.

fit, predict and evaluate are also methods of every nn.Module: this module
attaches them to nn.Module when it is imported (import fastnn does), because nn
sits below training in the import order and must not import it.
"""
from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
import warnings
from typing import Dict, List, Optional

import numpy as np

from fastnn import nn, optim
from fastnn._args import check_int, check_real
from fastnn.callbacks import Callback
from fastnn.data import DataLoader
from fastnn.distributed.replicas import INTERRUPTED, STOP_TRAINING, Replicas
from fastnn.metrics import make_metrics
from fastnn.nn.grad_mode import no_grad

LOSSES = {
    "cross_entropy": nn.CrossEntropyLoss, "sparse_categorical_crossentropy": nn.CrossEntropyLoss,
    "mse": nn.MSELoss, "mean_squared_error": nn.MSELoss,
    "l1": nn.L1Loss, "mae": nn.L1Loss, "mean_absolute_error": nn.L1Loss,
    "huber": nn.HuberLoss,
    "bce_with_logits": nn.BCEWithLogitsLoss, "binary_crossentropy": nn.BCEWithLogitsLoss,
    "nll": nn.NLLLoss, "bce": nn.BCELoss, "smooth_l1": nn.SmoothL1Loss,
    "kl_div": nn.KLDivLoss, "soft_margin": nn.SoftMarginLoss,
    "multilabel_soft_margin": nn.MultiLabelSoftMarginLoss,
}
# losses not of (output, target): fit has no second input or variance to give them
NOT_OF_OUTPUT_AND_TARGET = (nn.MarginRankingLoss, nn.GaussianNLLLoss)
OPTIMIZERS = {"sgd": (optim.SGD, {"lr": 0.01}), "adam": (optim.Adam, {}),
              "adamw": (optim.AdamW, {}), "rmsprop": (optim.RMSprop, {"lr": 1e-3}),
              "adagrad": (optim.Adagrad, {}), "adamax": (optim.Adamax, {}),
              "radam": (optim.RAdam, {}), "nadam": (optim.NAdam, {}),
              "adadelta": (optim.Adadelta, {}), "asgd": (optim.ASGD, {}),
              "rprop": (optim.Rprop, {})}


def make_loss(loss):
    if isinstance(loss, str):
        if loss not in LOSSES:
            raise ValueError(f"unknown loss {loss!r}; choose from {sorted(LOSSES)}")
        return LOSSES[loss]()
    if isinstance(loss, NOT_OF_OUTPUT_AND_TARGET):
        raise ValueError(f"loss must be a loss of (output, target), got "
                         f"{type(loss).__name__}, which takes more inputs")
    if getattr(loss, "reduction", "mean") == "none":
        raise ValueError(f"loss must reduce to a float (reduction 'mean' or 'sum'), got "
                         f"{type(loss).__name__}(reduction='none')")
    if callable(loss) and hasattr(loss, "backward"):
        return loss
    raise TypeError(f"loss must be a name or a loss module with backward(), got "
                    f"{type(loss).__name__}")


def make_optimizer(optimizer, model):
    if isinstance(optimizer, str):
        key = optimizer.lower()
        if key not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose from {sorted(OPTIMIZERS)}")
        cls, kwargs = OPTIMIZERS[key]
        return cls(model.parameters(), **kwargs)
    if isinstance(optimizer, optim.Optimizer):
        return optimizer
    raise TypeError(f"optimizer must be a name or a fastnn.optim optimizer, got "
                    f"{type(optimizer).__name__}")


class History(Callback):
    """Per-epoch logs: history["loss"], ["val_loss"], metrics, "lr", "time"."""

    def __init__(self):
        super().__init__()
        self.history: Dict[str, List[float]] = {}
        self.epoch: List[int] = []
        self.interrupted = False
        # {"epoch", "batch" (0-based, as the callback hooks count), "loss"} where fit
        # stopped on a non-finite loss, else None
        self.nonfinite: Optional[dict] = None

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)

    def plot(self, path: Optional[str] = None):
        """Loss curves and metric curves (train and validation) with matplotlib;
        saves to `path` when given; returns the figure."""
        try:
            import matplotlib
            if path is not None:
                matplotlib.use("Agg", force=False)
            import matplotlib.pyplot as plt
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from None
        names = [k for k in self.history if not k.startswith("val_") and k not in ("lr", "time")]
        fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.5), squeeze=False)
        epochs = [e + 1 for e in self.epoch]
        for ax, name in zip(axes[0], names):
            ax.plot(epochs, self.history[name], label=f"train {name}")
            if f"val_{name}" in self.history:
                ax.plot(epochs, self.history[f"val_{name}"], label=f"validation {name}")
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.legend()
        fig.tight_layout()
        if path is not None:
            fig.savefig(path)
        return fig


class _StopOnInterrupt:
    """While active (main thread only), the first Ctrl-C sets a flag instead of
    raising; a second one raises KeyboardInterrupt as usual."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _as_inputs(X, name: str = "X") -> np.ndarray:
    arr = np.asarray(X)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name} must have a first (sample) dimension, got a 0-d array")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _as_targets(y, n: int, name: str = "y") -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim == 0 or len(arr) != n:
        raise ValueError(f"{name} must have {n} samples like X, got shape {arr.shape}")
    return arr


def _split(X, y, validation_split: float):
    validation_split = check_real(validation_split, "validation_split", 0.0, 1.0, high_open=True)
    n_val = int(math.floor(len(X) * validation_split))
    if n_val == 0:
        return X, y, None
    # as Keras: the last samples, taken before any shuffling
    return X[:-n_val], y[:-n_val], (X[-n_val:], y[-n_val:])


def _format_logs(logs: dict) -> str:
    return " - ".join(f"{k}: {v:.4g}" for k, v in logs.items() if k != "time") + \
        f" - {logs['time']:.2f}s"


def fit(model, X, y, loss="cross_entropy", optimizer="adam", epochs: int = 1,
        batch_size: int = 32, shuffle: Optional[bool] = None, validation_data=None,
        validation_split: float = 0.0, callbacks=None, metrics=("accuracy",), verbose: int = 1,
        initial_epoch: int = 0, sampler=None, stop_on_nonfinite: bool = True,
        distributed: Optional[bool] = None) -> History:
    """Train `model` on (X, y); returns a History. See the module docstring.

    shuffle (default: True unless a sampler is given) draws a new order every
    epoch; sampler, an iterable of sample indices with __len__ (see
    fastnn.data), gives the order instead and cannot be combined with
    shuffle=True (ValueError).

    A non-finite loss (one NaN in X is enough to make every later loss NaN):
    with stop_on_nonfinite=True (the default) fit stops at the first batch
    whose loss is NaN or +-inf, before that batch's backward and optimizer
    step, so the weights (and optimizer state) are those of the last finite
    step. It warns (RuntimeWarning) which epoch and batch, sets
    history.nonfinite = {"epoch", "batch", "loss"} (0-based, as the callback
    hooks count), does not add the unfinished epoch to the history (as
    Ctrl-C), and still runs the callbacks' on_train_end; it does not raise,
    so the History and the weights stay at hand. stop_on_nonfinite=False
    trains on regardless, as Keras's fit does (the NaN then reaches the
    weights); add fastnn.callbacks.TerminateOnNaN() to stop after such a
    batch instead, as in Keras.

    distributed: None trains data-parallel when fastnn.distributed.init() was
    called and there are several ranks, True insists on it (RuntimeError
    without init()), False trains this process alone regardless."""
    X = _as_inputs(X)
    y = _as_targets(y, len(X))
    epochs = check_int(epochs, "epochs", 1)
    batch_size = check_int(batch_size, "batch_size", 1)
    if check_int(initial_epoch, "initial_epoch") > epochs:
        raise ValueError(f"initial_epoch must be <= epochs ({epochs}), got {initial_epoch!r}")
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
    stop_on_nonfinite = bool(stop_on_nonfinite)
    X, y, split_val = _split(X, y, validation_split)
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("validation_data must be a pair (X_val, y_val)")
        Xv = _as_inputs(validation_data[0], "validation_data[0]")
        validation_data = (Xv, _as_targets(validation_data[1], len(Xv), "validation_data[1]"))
    else:
        validation_data = split_val
    loss_fn = make_loss(loss)
    model.flat_buffer()  # the model owns its parameter buffer; a named optimizer reuses it
    opt = make_optimizer(optimizer, model)
    make_metrics(metrics)  # check the names before training starts
    model.__dict__["_training_config"] = {"loss": loss_fn, "metrics": metrics}
    replicas = Replicas.for_fit(distributed)
    if shuffle is None:
        shuffle = sampler is None
    if replicas is not None:
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        sampler, shuffle = replicas.sampler(len(X), shuffle, sampler), False
        if validation_data is not None:
            validation_data = replicas.share(*validation_data)
        if not replicas.is_writer:
            verbose = 0
    loader = DataLoader(X, y, batch_size=batch_size, shuffle=shuffle, sampler=sampler)
    if replicas is not None:
        opt = replicas.prepare(model, opt, len(loader))

    history = History()
    cbs = [history] + list(callbacks or [])
    for cb in cbs:
        if not isinstance(cb, Callback):
            raise TypeError(f"callbacks must be fastnn.callbacks.Callback objects, got "
                            f"{type(cb).__name__}")
        cb.set_context(model, opt)
    if replicas is not None and not replicas.is_writer:
        cbs = [cb for cb in cbs if not cb.rank_zero_only]
    model.stop_training = False
    for cb in cbs:
        cb.on_train_begin()
    with _StopOnInterrupt() as interrupt:
        for epoch in range(initial_epoch, epochs):
            loader.set_epoch(epoch)
            for cb in cbs:
                cb.on_epoch_begin(epoch)
            start = time.perf_counter()
            model.train()
            logs, nonfinite, agreed_interrupt = _train_epoch(
                model, loader, loss_fn, opt, metrics, cbs, interrupt,
                desc=f"Epoch {epoch + 1}/{epochs}", bar=verbose == 1,
                stop_on_nonfinite=stop_on_nonfinite, replicas=replicas)
            # several ranks act on the interrupt they agreed on; a Ctrl-C reaching one
            # of them from now on waits for the next agreement
            if nonfinite is not None:
                batch, value = nonfinite
                history.nonfinite = {"epoch": epoch, "batch": batch, "loss": value}
                warnings.warn(f"fit: the loss is {value} in epoch {epoch + 1}/{epochs}, batch "
                              f"{batch + 1}/{len(loader)}; stopped before that batch's "
                              f"optimizer step, the weights are those of the last finite step "
                              f"(history.nonfinite). Check the data for NaN or inf, or lower "
                              f"the learning rate; stop_on_nonfinite=False trains on",
                              RuntimeWarning, stacklevel=3)
                break
            interrupted = (lambda: agreed_interrupt) if replicas is not None else \
                (lambda: interrupt.requested)
            if replicas is not None:
                replicas.sync_buffers(model)  # one model in eval mode on every rank
            if validation_data is not None and not interrupted():
                sums = _evaluate_sums(model, *validation_data, loss_fn, metrics,
                                      batch_size=max(batch_size, 256))
                val = _results(replicas.sum(sums) if replicas is not None else sums, metrics)
                logs.update({f"val_{k}": v for k, v in val.items()})
            logs["lr"] = float(opt.param_groups[0]["lr"])
            logs["time"] = time.perf_counter() - start
            if interrupted():
                history.interrupted = True
                if verbose:
                    print(f"Interrupted in epoch {epoch + 1}: stopping with the weights "
                          f"trained so far")
                break
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if verbose == 2:
                print(f"Epoch {epoch + 1}/{epochs} - {_format_logs(logs)}")
            if replicas is not None:  # a rank-0-only callback may have asked
                model.stop_training = replicas.any(model.stop_training)
            if model.stop_training:
                break
    if replicas is not None:
        replicas.sync_buffers(model)
    for cb in cbs:
        cb.on_train_end()
    return history


def _train_epoch(model, loader, loss_fn, opt, metrics, cbs, interrupt, desc: str,
                 bar: bool, stop_on_nonfinite: bool, replicas=None):
    """One pass over loader: (the epoch's logs, None, interrupted), or (logs of the
    batches before, (batch, loss), interrupted) when stop_on_nonfinite and that
    batch's loss is not finite. With replicas (several ranks), the batch loss and
    every stop are agreed before each backward, the logs are summed over the
    ranks, and `interrupted` is what they agreed at the end."""
    from tqdm.auto import tqdm
    meters = make_metrics(metrics)
    total_loss, seen = 0.0, 0
    nonfinite = None
    progress = tqdm(total=loader.num_samples(), desc=desc, unit="sample", disable=not bar,
                    dynamic_ncols=True, leave=True)
    begin, after_backward, before_step, end = (_overriding(cbs, hook) for hook in (
        "on_batch_begin", "on_after_backward", "on_before_step", "on_batch_end"))
    start = last_shown = time.perf_counter()
    try:
        for batch, (xb, yb) in enumerate(loader):
            for cb in begin:
                cb.on_batch_begin(batch)
            opt.zero_grad()
            out = model(xb)
            loss = own_loss = loss_fn(out, yb)
            if replicas is not None:
                loss, stop = replicas.agree_on_batch(own_loss, len(xb), _stop_bits(
                    model, interrupt))
                if stop:  # some rank asked to stop after its previous batch
                    _apply_stop_bits(stop, model, interrupt)
                    break
            if stop_on_nonfinite and not math.isfinite(loss):
                nonfinite = (batch, loss)
                break
            model.backward(loss_fn.backward(), input_grad=False)
            if replicas is not None:
                opt.synchronize()  # callbacks see the averaged gradients
            logs = {"loss": loss}
            for cb in after_backward:
                cb.on_after_backward(batch, logs)
            for cb in before_step:
                cb.on_before_step(batch, logs)
            opt.step()
            n = len(xb)
            total_loss += own_loss * n
            seen += n
            for m in meters:
                m.update(out, yb)
            for cb in end:
                cb.on_batch_end(batch, logs)
            if bar:
                progress.update(n)
                now = time.perf_counter()
                if now - last_shown > 0.2:
                    last_shown = now
                    progress.set_postfix_str(_postfix(total_loss / seen, meters,
                                                      seen / (now - start)), refresh=False)
            if replicas is None and (interrupt.requested or model.stop_training):
                break  # several ranks leave together, at the next agreement
        if bar and seen:
            progress.set_postfix_str(_postfix(total_loss / seen, meters,
                                              seen / (time.perf_counter() - start)))
    finally:
        progress.close()
    sums = [total_loss, seen] + [v for m in meters for v in (m.total, m.count)]
    if replicas is None:
        return _results(sums, metrics), nonfinite, interrupt.requested
    sums, agreed = replicas.agree(sums, _stop_bits(model, interrupt))
    _apply_stop_bits(agreed, model, interrupt)
    return _results(sums, metrics), nonfinite, bool(agreed & INTERRUPTED)


def _stop_bits(model, interrupt) -> int:
    return (STOP_TRAINING if model.stop_training else 0) | \
        (INTERRUPTED if interrupt.requested else 0)


def _apply_stop_bits(bits: int, model, interrupt) -> None:
    """What one rank asked for, done on all."""
    if bits & STOP_TRAINING:
        model.stop_training = True
    if bits & INTERRUPTED:
        interrupt.requested = True


def _results(sums, metrics) -> Dict[str, float]:
    """{"loss", metric names...} from [loss sum, samples, metric total, count, ...]."""
    total, seen = sums[0], sums[1]
    result = {"loss": float(total / seen) if seen else float("nan")}
    meters = make_metrics(metrics)
    for k, m in enumerate(meters):
        m.total, m.count = sums[2 + 2 * k], sums[3 + 2 * k]
        result[m.name] = float(m.result())
    return result


def _overriding(cbs, hook: str) -> list:
    """The callbacks whose class defines `hook` (the others would do nothing)."""
    default = getattr(Callback, hook)
    return [cb for cb in cbs if getattr(type(cb), hook, default) is not default]


def _postfix(loss: float, meters, rate: float) -> str:
    parts = [f"loss={loss:.4f}"] + [f"{m.name}={m.result():.4f}" for m in meters]
    return ", ".join(parts) + f", {rate:,.0f} samples/s"


@contextlib.contextmanager
def _inference(model):
    """model in eval mode inside fastnn.no_grad(); its mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        model.train(was_training)


def predict(model, X, batch_size: int = 256) -> np.ndarray:
    """model(X) in eval mode and inside fastnn.no_grad(), batch by batch,
    concatenated; the mode is restored."""
    X = _as_inputs(X)
    batch_size = check_int(batch_size, "batch_size", 1)
    with _inference(model):
        outs = [np.asarray(model(X[i:i + batch_size])) for i in range(0, len(X), batch_size)]
    if not outs:
        raise ValueError("X has no samples")
    return np.concatenate(outs)


def evaluate(model, X, y, loss=None, metrics=None, batch_size: int = 256) -> Dict[str, float]:
    """{"loss": ..., metric: ...} on (X, y) in eval mode and inside
    fastnn.no_grad(). loss and metrics default to those of the last fit() (a
    loss is required otherwise)."""
    config = model.__dict__.get("_training_config")
    if loss is None:
        if config is None:
            raise ValueError("evaluate needs loss= (or a model trained with fit())")
        loss = config["loss"]
    if metrics is None:
        metrics = config["metrics"] if config is not None else ("accuracy",)
    loss_fn = make_loss(loss)
    X = _as_inputs(X)
    y = _as_targets(y, len(X))
    batch_size = check_int(batch_size, "batch_size", 1)
    make_metrics(metrics)
    return _results(_evaluate_sums(model, X, y, loss_fn, metrics, batch_size), metrics)


def _evaluate_sums(model, X, y, loss_fn, metrics, batch_size: int) -> list:
    """[loss sum, samples, metric total, count, ...] over (X, y) in inference mode."""
    meters = make_metrics(metrics)
    total, seen = 0.0, 0
    with _inference(model):
        for i in range(0, len(X), batch_size):
            xb, yb = X[i:i + batch_size], y[i:i + batch_size]
            out = np.asarray(model(xb))
            total += loss_fn(out, yb) * len(xb)
            seen += len(xb)
            for m in meters:
                m.update(out, yb)
    return [total, seen] + [v for m in meters for v in (m.total, m.count)]


# ---- the methods every nn.Module gets ---------------------------------------------

def _module_fit(self, X, y, **kwargs):
    """Keras-style training; see fastnn.training.fit."""
    return fit(self, X, y, **kwargs)


def _module_predict(self, X, batch_size: int = 256):
    """Outputs for X in eval mode, batch by batch; see fastnn.training.predict."""
    return predict(self, X, batch_size=batch_size)


def _module_evaluate(self, X, y, **kwargs) -> Dict[str, float]:
    """Loss and metrics on (X, y); see fastnn.training.evaluate."""
    return evaluate(self, X, y, **kwargs)


def _attach(cls=nn.Module) -> None:
    """Make fit / predict / evaluate methods of cls (nn.Module)."""
    for name, method in (("fit", _module_fit), ("predict", _module_predict),
                         ("evaluate", _module_evaluate)):
        method.__name__ = name
        method.__qualname__ = f"{cls.__name__}.{name}"
        setattr(cls, name, method)


_attach()
