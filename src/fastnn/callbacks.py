"""Callbacks for fit(), with Keras's names and hooks.

    model.fit(X, y, callbacks=[EarlyStopping(patience=3, restore_best_weights=True),
                               ModelCheckpoint("best.safetensors", save_best_only=True),
                               LearningRateScheduler(lambda epoch, lr: lr * 0.9),
                               CSVLogger("log.csv"), TerminateOnNaN()])

Epoch hooks receive `logs`, the epoch's dict of "loss", metrics, "val_*", "lr"
and "time"; batch hooks the batch's {"loss": ...}. A callback stops training by
setting ``self.model.stop_training = True``. Under MPI (fastnn.distributed),
fit runs the callbacks that write files (rank_zero_only: ModelCheckpoint,
CSVLogger) on rank 0 only, gives every rank the same logs, and stops all ranks
when any callback on any rank asks to.

Each training step calls, in order: on_batch_begin(batch), forward, loss,
model.backward, on_after_backward(batch, logs), on_before_step(batch, logs),
optimizer.step(), on_batch_end(batch, logs). The gradients are complete in
on_after_backward and still unused in on_before_step, so gradient clipping,
accumulation checks or a data-parallel allreduce of the gradients are callbacks:

    class ClipGradients(Callback):
        def on_before_step(self, batch, logs=None):
            fastnn.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
"""
from __future__ import annotations

import csv
import math
import os
import warnings
from typing import Optional

import numpy as np

from fastnn._args import check_int


class Callback:
    # Under MPI, fit() runs a callback that writes files (checkpoints, logs) on rank 0
    # only; the others run on every rank, seeing the same logs there.
    rank_zero_only = False

    def __init__(self):
        self.model = None
        self.optimizer = None

    def set_context(self, model, optimizer) -> None:
        self.model, self.optimizer = model, optimizer

    def on_train_begin(self, logs=None): pass
    def on_train_end(self, logs=None): pass
    def on_epoch_begin(self, epoch: int, logs=None): pass
    def on_epoch_end(self, epoch: int, logs=None): pass
    def on_batch_begin(self, batch: int, logs=None): pass
    def on_after_backward(self, batch: int, logs=None): pass
    def on_before_step(self, batch: int, logs=None): pass
    def on_batch_end(self, batch: int, logs=None): pass


class _Monitor:
    """Which logged value to watch and which direction is better."""

    def __init__(self, monitor: str, mode: str, min_delta: float):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
        if mode == "auto":
            mode = "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(float(min_delta))
        self.best = math.inf if mode == "min" else -math.inf
        self._warned = False

    def value(self, logs) -> Optional[float]:
        v = (logs or {}).get(self.monitor)
        if v is None and not self._warned:
            self._warned = True
            warnings.warn(f"{self.monitor!r} is not in the epoch logs (have: "
                          f"{sorted(logs or {})}); pass validation data or another monitor",
                          RuntimeWarning, stacklevel=3)
        return v

    def improved(self, v: float) -> bool:
        if self.mode == "min":
            return v < self.best - self.min_delta
        return v > self.best + self.min_delta


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by min_delta for `patience` epochs;
    restore_best_weights puts back the weights of the best epoch at the end."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 mode: str = "auto", restore_best_weights: bool = False, verbose: int = 0):
        super().__init__()
        self._spec = (monitor, mode, min_delta)
        self.patience = check_int(patience, "patience")
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = verbose
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self.tracker = _Monitor(*self._spec)
        self.wait = 0
        self.best_weights = None
        self.best_epoch = None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs=None):
        v = self.tracker.value(logs)
        if v is None:
            return
        if self.tracker.improved(v):
            self.tracker.best, self.best_epoch, self.wait = v, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.state_dict()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.load_state_dict(self.best_weights)
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1}")
        if self.stopped_epoch is not None and self.verbose:
            print(f"EarlyStopping: stopped after epoch {self.stopped_epoch + 1}")


class ModelCheckpoint(Callback):
    """fastnn.save(model, filepath) after each epoch, or only when `monitor`
    improves (save_best_only). filepath may use {epoch} and log keys, e.g.
    "ckpt-{epoch:02d}-{val_loss:.3f}.safetensors". Under MPI, rank 0 writes."""
    rank_zero_only = True

    def __init__(self, filepath: str, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", verbose: int = 0):
        super().__init__()
        self.filepath = os.fspath(filepath)
        self._spec = (monitor, mode, 0.0)
        self.save_best_only = bool(save_best_only)
        self.verbose = verbose
        self.tracker = _Monitor(*self._spec)

    def on_train_begin(self, logs=None):
        self.tracker = _Monitor(*self._spec)

    def on_epoch_end(self, epoch, logs=None):
        from fastnn.serialization import save
        logs = logs or {}
        if self.save_best_only:
            v = self.tracker.value(logs)
            if v is None or not self.tracker.improved(v):
                return
            self.tracker.best = v
        path = self.filepath.format(epoch=epoch + 1, **logs)
        save(self.model, path)
        if self.verbose:
            print(f"ModelCheckpoint: saved {path}")


class LearningRateScheduler(Callback):
    """Set the learning rate every epoch.

    `schedule` is either a function (epoch, lr) -> new lr, applied to every
    param group before the epoch (Keras), or a fastnn.optim.lr_scheduler
    object, stepped after each epoch (ReduceLROnPlateau gets logs[monitor])."""

    def __init__(self, schedule, monitor: str = "val_loss", verbose: int = 0):
        super().__init__()
        if not callable(schedule) and not hasattr(schedule, "step"):
            raise TypeError(f"schedule must be a function (epoch, lr) -> lr or an "
                            f"lr_scheduler, got {type(schedule).__name__}")
        self.schedule = schedule
        self.monitor = monitor
        self.verbose = verbose

    def _is_scheduler(self) -> bool:
        return hasattr(self.schedule, "step") and hasattr(self.schedule, "get_last_lr")

    def on_epoch_begin(self, epoch, logs=None):
        if self._is_scheduler():
            return
        groups = self.optimizer.param_groups
        lr = float(self.schedule(epoch, groups[0]["lr"]))
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"schedule returned an invalid learning rate {lr} for epoch {epoch}")
        for g in groups:
            g["lr"] = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: learning rate {lr:.6g}")

    def on_epoch_end(self, epoch, logs=None):
        if not self._is_scheduler():
            return
        from fastnn.optim.lr_scheduler import ReduceLROnPlateau
        if isinstance(self.schedule, ReduceLROnPlateau):
            v = (logs or {}).get(self.monitor)
            if v is None:
                raise ValueError(f"ReduceLROnPlateau needs {self.monitor!r} in the epoch logs "
                                 f"(have: {sorted(logs or {})})")
            self.schedule.step(v)
        else:
            self.schedule.step()


class CSVLogger(Callback):
    """One CSV row per epoch: epoch, then the logged values in sorted order (written
    by rank 0 under MPI)."""
    rank_zero_only = True

    def __init__(self, filename: str, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
        self._keys = None

    def on_train_begin(self, logs=None):
        self._keys = None
        if not self.append and os.path.exists(self.filename):
            os.remove(self.filename)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        new_file = not os.path.exists(self.filename) or os.path.getsize(self.filename) == 0
        if self._keys is None:
            self._keys = sorted(logs)
        with open(self.filename, "a", newline="") as f:
            writer = csv.writer(f, delimiter=self.separator)
            if new_file:
                writer.writerow(["epoch"] + self._keys)
            writer.writerow([epoch] + [_plain(logs.get(k, "")) for k in self._keys])


class TerminateOnNaN(Callback):
    """Stop training after the first batch whose loss is NaN or +-inf, as Keras's
    TerminateOnNaN: warns (RuntimeWarning) which epoch and batch and sets
    model.stop_training, so fit ends that epoch (its logs, with the NaN loss, reach
    the other callbacks and the history) and stops. `stopped` is then (epoch, batch),
    0-based as the hooks count.

    fit itself already stops on a non-finite loss, earlier (before that batch's
    optimizer step, keeping the weights finite); this callback acts when fit runs
    with stop_on_nonfinite=False, i.e. for Keras's behaviour."""

    def __init__(self):
        super().__init__()
        self.stopped = None
        self._epoch = 0

    def on_train_begin(self, logs=None):
        self.stopped = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.stopped = (self._epoch, batch)
            warnings.warn(f"TerminateOnNaN: invalid loss {loss} in epoch {self._epoch + 1}, "
                          f"batch {batch + 1}: terminating training", RuntimeWarning,
                          stacklevel=2)
            self.model.stop_training = True


def _plain(v):
    return float(v) if isinstance(v, (np.floating, float)) else v
