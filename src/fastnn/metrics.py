"""Metrics for fit() / evaluate(), by name: "accuracy", "mse", "mae".

Each is a class with update(pred, target) over batches and result(). For
"accuracy", outputs of shape (N, C) with C > 1 are class scores (argmax);
a single output column or a 1-D output is a logit (> 0 means class 1), as
BCEWithLogitsLoss expects.
"""
from __future__ import annotations

import numpy as np


class Metric:
    name = ""

    def __init__(self):
        self.total = 0.0
        self.count = 0

    def result(self) -> float:
        return self.total / self.count if self.count else float("nan")


class Accuracy(Metric):
    name = "accuracy"

    def update(self, pred: np.ndarray, target) -> None:
        target = np.asarray(target)
        if pred.ndim >= 2 and pred.shape[1] > 1:
            hits = np.argmax(pred, axis=1) == target
        else:
            hits = (pred.reshape(target.shape) > 0) == (target > 0.5)
        self.total += float(np.count_nonzero(hits))
        self.count += hits.size


class MeanSquaredError(Metric):
    name = "mse"

    def update(self, pred: np.ndarray, target) -> None:
        d = pred - np.asarray(target, dtype=np.float32).reshape(pred.shape)
        self.total += float(np.dot(d.ravel(), d.ravel()))
        self.count += d.size


class MeanAbsoluteError(Metric):
    name = "mae"

    def update(self, pred: np.ndarray, target) -> None:
        d = pred - np.asarray(target, dtype=np.float32).reshape(pred.shape)
        self.total += float(np.abs(d).sum())
        self.count += d.size


METRICS = {"accuracy": Accuracy, "acc": Accuracy, "mse": MeanSquaredError,
           "mae": MeanAbsoluteError}


def make_metrics(names) -> list:
    """Fresh metric objects for names such as ("accuracy",)."""
    if isinstance(names, str):
        names = (names,)
    out = []
    for name in names or ():
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; choose from {sorted(METRICS)}")
        out.append(METRICS[name]())
    return out
