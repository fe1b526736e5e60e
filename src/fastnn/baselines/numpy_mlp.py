"""A multilayer perceptron trained with hand-written backprop in plain NumPy:
the NumPy side of the MLP benchmark (``fastnn bench --suite mlp``) and the
NumPy baseline of ``fastnn demo``.

    from fastnn.baselines.numpy_mlp import NumpyMLP

    net = NumpyMLP([784, 256, 128, 10], seed=0, optimizer="adam", lr=1e-3)
    for xb, yb in batches:                 # xb (N, 784) float32, yb (N,) int class labels
        loss = net.train_step(xb, yb)      # forward, loss, backward, update; the mean loss
    loss, grads = net.gradients(xb, yb)    # no update; grads["0.weight"] is (256, 784)
    logits = net.predict(x_test)           # (N, 10); classes: logits.argmax(1)
    loss, accuracy = net.evaluate(x_test, y_test)

The network is Linear(sizes[0], sizes[1]) -> ReLU -> ... -> Linear(sizes[-2],
sizes[-1]) with a ReLU after every layer but the last, trained on the softmax
cross-entropy (the mean over the batch) of the logits, everything in float32.
Weights are (out, in) and initialised as PyTorch's nn.Linear (uniform in
+-1/sqrt(in) for weight and bias, from ``numpy.random.default_rng(seed)``);
``state_dict()`` / ``load_state_dict()`` use the keys of the equivalent
torch / fastnn ``Sequential`` ("0.weight", "0.bias", "2.weight", ...), so one
set of weights can start all three.

Optimizers, with torch.optim's formulas:
    "sgd"   lr (default 0.01), momentum (default 0): buf = grad on the first
            step, then buf = momentum * buf + grad; param -= lr * buf
    "adam"  lr (default 1e-3), betas (0.9, 0.999), eps 1e-8:
            m += (1 - beta1) (g - m); v = beta2 v + (1 - beta2) g^2;
            param -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

How it is made fast, as a careful NumPy programmer would:
- every parameter lives in one flat float32 array and every gradient in
  another (the per-layer weights and biases are views), so the optimizer
  step is a few whole-array in-place ufuncs, with one scratch array;
- activations, gradients and scratch for the current batch size are
  allocated once and reused (``out=`` everywhere): a fresh 1 MiB temporary
  costs about half a millisecond in page faults on these machines;
- the products go to NumPy's BLAS (``np.matmul(..., out=)``, transposes as
  views); the bias gradient is ``ones @ grad`` (a BLAS gemv, faster than
  ``sum(axis=0)``); ReLU is ``np.maximum(o, zeros, out=o)`` (NumPy 2 takes a
  slow path for a scalar 0) and its backward ``grad *= (h > 0)`` in place;
- gradients are overwritten, never accumulated, so there is no zero_grad;
  the first layer's input gradient is not computed.
NumPy's BLAS thread count is set by OPENBLAS_NUM_THREADS / OMP_NUM_THREADS
before NumPy is imported; the element-wise ufuncs run on one thread.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

_F32 = np.float32
OPTIMIZERS = ("sgd", "adam")


class NumpyMLP:
    """A ReLU MLP with softmax cross-entropy and SGD / Adam, in NumPy (see the module doc)."""

    def __init__(self, sizes: Sequence[int], seed: int = 0, optimizer: str = "sgd",
                 lr: Optional[float] = None, momentum: float = 0.0,
                 betas: Tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        sizes = [int(n) for n in sizes]
        if len(sizes) < 2 or min(sizes) < 1:
            raise ValueError(f"sizes must list at least 2 positive layer widths "
                             f"(inputs, ..., classes), got {list(sizes)}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        self.sizes = sizes
        self.optimizer = optimizer
        self.lr = float(lr if lr is not None else (0.01 if optimizer == "sgd" else 1e-3))
        self.momentum = float(momentum)
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.steps = 0

        shapes = [(o, i) for i, o in zip(sizes[:-1], sizes[1:])]
        total = sum(o * i + o for o, i in shapes)
        self._data = np.empty(total, _F32)     # all parameters, layer by layer: W, b
        self._grad = np.zeros(total, _F32)     # their gradients, same layout
        self._scratch = np.empty(total, _F32)  # the optimizer's one temporary
        self.weights: List[np.ndarray] = []
        self.biases: List[np.ndarray] = []
        self._dweights: List[np.ndarray] = []
        self._dbiases: List[np.ndarray] = []
        offset = 0
        for o, i in shapes:
            for params, grads, shape in ((self.weights, self._dweights, (o, i)),
                                         (self.biases, self._dbiases, (o,))):
                n = math.prod(shape)
                params.append(self._data[offset:offset + n].reshape(shape))
                grads.append(self._grad[offset:offset + n].reshape(shape))
                offset += n
        rng = np.random.default_rng(seed)
        for w, b in zip(self.weights, self.biases):
            bound = 1.0 / math.sqrt(w.shape[1])     # nn.Linear's default initialisation
            w[...] = rng.uniform(-bound, bound, w.shape)
            b[...] = rng.uniform(-bound, bound, b.shape)
        # optimizer state (flat, like the parameters)
        self._buf = np.zeros(total, _F32) if optimizer == "sgd" and self.momentum else None
        self._m = np.zeros(total, _F32) if optimizer == "adam" else None
        self._v = np.zeros(total, _F32) if optimizer == "adam" else None
        self._batch = None   # batch size the buffers below are for
        self._acts: List[np.ndarray] = []    # each layer's output (after ReLU but the last)
        self._zeros: List[np.ndarray] = []   # ReLU's zeros, per hidden layer
        self._dacts: List[np.ndarray] = []   # gradients w.r.t. the hidden outputs
        self._probs = self._ones = self._rows = None

    # ---- parameters -------------------------------------------------------------------
    def state_dict(self) -> Dict[str, np.ndarray]:
        """Copies of the parameters under torch's Sequential keys ("0.weight", "0.bias", ...)."""
        out = {}
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            out[f"{2 * k}.weight"] = w.copy()
            out[f"{2 * k}.bias"] = b.copy()
        return out

    def load_state_dict(self, state_dict) -> None:
        """Copy weights in from a dict with state_dict()'s keys and shapes (NumPy
        arrays, or anything np.asarray takes); the optimizer state is reset."""
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            for key, target in ((f"{2 * k}.weight", w), (f"{2 * k}.bias", b)):
                value = np.asarray(state_dict[key], dtype=_F32)
                if value.shape != target.shape:
                    raise ValueError(f"{key}: expected shape {target.shape}, got {value.shape}")
                target[...] = value
        for state in (self._buf, self._m, self._v):
            if state is not None:
                state.fill(0.0)
        self.steps = 0

    # ---- running ----------------------------------------------------------------------
    def _buffers_for(self, n: int) -> None:
        if self._batch == n:
            return
        widths = self.sizes[1:]
        self._acts = [np.empty((n, w), _F32) for w in widths]
        self._zeros = [np.zeros((n, w), _F32) for w in widths[:-1]]
        self._dacts = [np.empty((n, w), _F32) for w in widths[:-1]]
        self._probs = np.empty((n, widths[-1]), _F32)
        self._ones = np.ones(n, _F32)
        self._rows = np.arange(n)
        self._batch = n

    def _forward(self, x: np.ndarray, acts: List[np.ndarray], zeros: List[np.ndarray]):
        h = x
        last = len(self.weights) - 1
        for k, (w, b) in enumerate(zip(self.weights, self.biases)):
            o = acts[k]
            np.matmul(h, w.T, out=o)
            o += b
            if k < last:
                np.maximum(o, zeros[k], out=o)
            h = o
        return h

    def _input(self, x) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=_F32)
        if x.ndim != 2 or x.shape[1] != self.sizes[0]:
            raise ValueError(f"x must have shape (N, {self.sizes[0]}), got {x.shape}")
        return x

    def train_step(self, x, y) -> float:
        """One step on the batch (x, y): forward, loss, backward, optimizer
        update. x is (N, sizes[0]), y (N,) class indices. Returns the mean
        cross-entropy of the batch before the update."""
        loss = self._backprop(x, y)
        self._update()
        return loss

    def gradients(self, x, y) -> Tuple[float, Dict[str, np.ndarray]]:
        """(mean loss, gradients) on (x, y) without updating: the gradients
        under state_dict()'s keys are views, overwritten by the next step."""
        loss = self._backprop(x, y)
        grads = {}
        for k, (dw, db) in enumerate(zip(self._dweights, self._dbiases)):
            grads[f"{2 * k}.weight"], grads[f"{2 * k}.bias"] = dw, db
        return loss, grads

    def _backprop(self, x, y) -> float:
        x = self._input(x)
        y = np.asarray(y)
        n = x.shape[0]
        if y.shape != (n,) or y.dtype.kind not in "iu" or (n and not (
                0 <= y.min() and y.max() < self.sizes[-1])):
            raise ValueError(f"y must be {n} integer class labels in [0, {self.sizes[-1]}), "
                             f"got {y.dtype} array of shape {y.shape}")
        self._buffers_for(n)
        logits = self._forward(x, self._acts, self._zeros)

        # softmax cross-entropy and its gradient (p - onehot(y)) / N, in place
        p, rows = self._probs, self._rows
        np.subtract(logits, logits.max(axis=1, keepdims=True), out=p)
        picked = p[rows, y]                     # the shifted logit of each true class
        np.exp(p, out=p)
        s = p.sum(axis=1, keepdims=True)
        loss = float(np.log(s[:, 0]).sum() - picked.sum()) / n
        np.reciprocal(s, out=s)
        s *= _F32(1.0 / n)
        p *= s
        p[rows, y] -= _F32(1.0 / n)

        # backward: dW = g^T h, db = ones g, dh = (g W) * (h > 0); no dX for the input
        g = p
        for k in range(len(self.weights) - 1, -1, -1):
            h = x if k == 0 else self._acts[k - 1]
            np.matmul(g.T, h, out=self._dweights[k])
            np.matmul(self._ones, g, out=self._dbiases[k])
            if k > 0:
                dh = self._dacts[k - 1]
                np.matmul(g, self.weights[k], out=dh)
                np.multiply(dh, h > 0, out=dh)
                g = dh
        return loss

    def _update(self) -> None:
        self.steps += 1
        p, g, t = self._data, self._grad, self._scratch
        if self.optimizer == "sgd":
            d = g
            if self._buf is not None:
                buf = self._buf
                if self.steps == 1:
                    np.copyto(buf, g)
                else:
                    buf *= _F32(self.momentum)
                    buf += g
                d = buf
            np.multiply(d, _F32(self.lr), out=t)
            p -= t
            return
        beta1, beta2 = self.betas
        m, v = self._m, self._v
        np.subtract(g, m, out=t)                # m = lerp(m, g, 1 - beta1)
        t *= _F32(1.0 - beta1)
        m += t
        np.multiply(g, g, out=t)                # v = beta2 v + (1 - beta2) g^2
        t *= _F32(1.0 - beta2)
        v *= _F32(beta2)
        v += t
        step_size = self.lr / (1.0 - beta1 ** self.steps)
        bc2_sqrt = math.sqrt(1.0 - beta2 ** self.steps)
        np.sqrt(v, out=t)                       # denom = sqrt(v) / sqrt(bc2) + eps
        t *= _F32(1.0 / bc2_sqrt)
        t += _F32(self.eps)
        np.divide(m, t, out=t)
        t *= _F32(step_size)
        p -= t

    def predict(self, x, batch_size: int = 1024) -> np.ndarray:
        """The logits (N, sizes[-1]) for x, computed batch by batch."""
        x = self._input(x)
        out = np.empty((x.shape[0], self.sizes[-1]), _F32)
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            n = xb.shape[0]
            acts = [np.empty((n, w), _F32) for w in self.sizes[1:-1]] + [out[start:start + n]]
            zeros = [np.zeros((n, w), _F32) for w in self.sizes[1:-1]]
            self._forward(xb, acts, zeros)
        return out

    def evaluate(self, x, y, batch_size: int = 1024) -> Tuple[float, float]:
        """(mean cross-entropy, accuracy) on (x, y), without training."""
        logits = self.predict(x, batch_size).astype(np.float64)
        y = np.asarray(y)
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        rows = np.arange(len(y))
        loss = float(-log_probs[rows, y].mean())
        accuracy = float((logits.argmax(axis=1) == y).mean())
        return loss, accuracy
