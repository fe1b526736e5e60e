"""A small convolutional network trained with hand-written im2col backprop in
plain NumPy: the NumPy side of the CNN benchmark (``fastnn bench --suite cnn``).

    from fastnn.baselines.numpy_cnn import NumpyCNN

    net = NumpyCNN(in_shape=(3, 32, 32), channels=(16, 32), num_classes=10, seed=0, lr=0.01)
    loss = net.train_step(xb, yb)          # xb (N, 3, 32, 32) float32 NCHW, yb (N,) int labels
    loss, grads = net.gradients(xb, yb)    # no update; grads["0.weight"] is (16, 3, 3, 3)
    logits = net.predict(x)                # (N, 10)

The network is the baseline CNN of the benchmark: for each entry c of `channels`,
Conv2d(c_in, c, 3, padding=1) -> ReLU -> MaxPool2d(2), then Flatten (C, H, W order)
-> Linear(c * H' * W', num_classes), trained on the mean softmax cross-entropy, in
float32, with SGD (torch.optim.SGD's formula; momentum optional). Weights use
PyTorch's layouts (OIHW, (out, in)) and initialisation (uniform in +-1/sqrt(fan_in)
for weight and bias, from ``numpy.random.default_rng(seed)``), and ``state_dict()``
has the keys of the equivalent torch / fastnn ``Sequential`` ("0.weight", "0.bias",
"3.weight", ...), so one set of weights can start all three.

How it is made fast, as a careful NumPy programmer would: activations stay NHWC
between layers (channels last, so im2col rows are contiguous (C, kh, kw) runs and
every convolution is one (N*H*W, C*9) @ (C*9, O) product in BLAS), im2col is one
copy of a strided window view, col2im is nine slice additions (one per kernel
offset), max-pool keeps the argmax of each window, and the first layer computes
no input gradient.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from fastnn.baselines import ParamDict

K = 3  # every convolution is 3x3, padding 1, stride 1


def _uniform(rng, bound, shape):
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def _im2col(x: np.ndarray) -> np.ndarray:
    """x (N, H, W, C) NHWC -> (N*H*W, C*K*K) rows of its 3x3 windows, zero padded"""
    n, h, w, c = x.shape
    xp = np.zeros((n, h + 2, w + 2, c), np.float32)
    xp[:, 1:-1, 1:-1, :] = x
    windows = np.lib.stride_tricks.sliding_window_view(xp, (K, K), axis=(1, 2))  # N,H,W,C,K,K
    return windows.reshape(n * h * w, c * K * K)


def _col2im(dcols: np.ndarray, shape: Tuple[int, int, int, int]) -> np.ndarray:
    """the adjoint of _im2col: (N*H*W, C*K*K) -> (N, H, W, C)"""
    n, h, w, c = shape
    d = dcols.reshape(n, h, w, c, K, K)
    dxp = np.zeros((n, h + 2, w + 2, c), np.float32)
    for kh in range(K):
        for kw in range(K):
            dxp[:, kh:kh + h, kw:kw + w, :] += d[:, :, :, :, kh, kw]
    return dxp[:, 1:-1, 1:-1, :]


class NumpyCNN(ParamDict):
    def __init__(self, in_shape: Sequence[int] = (3, 32, 32), channels: Sequence[int] = (16, 32),
                 num_classes: int = 10, seed: int = 0, lr: float = 0.01, momentum: float = 0.0):
        c_in, h, w = in_shape
        rng = np.random.default_rng(seed)
        self.lr, self.momentum = np.float32(lr), np.float32(momentum)
        self.params: Dict[str, np.ndarray] = {}
        self.conv_keys = []
        index = 0
        for c in channels:
            bound = 1.0 / np.sqrt(c_in * K * K)
            key = str(index)
            self.params[key + ".weight"] = _uniform(rng, bound, (c, c_in, K, K))
            self.params[key + ".bias"] = _uniform(rng, bound, (c,))
            self.conv_keys.append(key)
            if h % 2 or w % 2:
                raise ValueError(f"in_shape: each pooled size must be even, got {h}x{w}")
            c_in, h, w = c, h // 2, w // 2
            index += 3  # conv, relu, pool
        self.fc_key = str(index + 1)  # after Flatten
        features = c_in * h * w
        bound = 1.0 / np.sqrt(features)
        self.params[self.fc_key + ".weight"] = _uniform(rng, bound, (num_classes, features))
        self.params[self.fc_key + ".bias"] = _uniform(rng, bound, (num_classes,))
        self.buffers = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.first_step = True

    # ---- forward / backward ------------------------------------------------------
    def _forward(self, x: np.ndarray):
        a = np.ascontiguousarray(np.asarray(x, np.float32).transpose(0, 2, 3, 1))  # NHWC
        saved = []
        for key in self.conv_keys:
            wt = self.params[key + ".weight"]
            o = wt.shape[0]
            n, h, w, _ = a.shape
            cols = _im2col(a)
            y = cols @ wt.reshape(o, -1).T
            y += self.params[key + ".bias"]
            np.maximum(y, 0.0, out=y)
            y = y.reshape(n, h // 2, 2, w // 2, 2, o).transpose(0, 1, 3, 5, 2, 4)
            y = y.reshape(n, h // 2, w // 2, o, 4)
            arg = y.argmax(axis=-1)
            a = np.take_along_axis(y, arg[..., None], axis=-1)[..., 0]
            saved.append((cols, y > 0, arg, (n, h, w, o)))
        n, h, w, c = a.shape
        flat = np.ascontiguousarray(a.transpose(0, 3, 1, 2)).reshape(n, -1)  # torch's C, H, W
        logits = flat @ self.params[self.fc_key + ".weight"].T
        logits += self.params[self.fc_key + ".bias"]
        return logits, saved, flat

    def gradients(self, x: np.ndarray, y: np.ndarray):
        """(mean cross-entropy loss, {state_dict key: gradient}) of one batch"""
        logits, saved, flat = self._forward(x)
        n = logits.shape[0]
        z = logits - logits.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        labels = np.asarray(y, np.int64)
        loss = float(np.mean(lse - z[np.arange(n), labels]))
        dz = np.exp(z - lse[:, None])
        dz[np.arange(n), labels] -= 1.0
        dz /= np.float32(n)
        grads = {self.fc_key + ".weight": dz.T @ flat, self.fc_key + ".bias": dz.sum(axis=0)}
        d = dz @ self.params[self.fc_key + ".weight"]
        cols, mask, arg, (n, h, w, o) = saved[-1]
        d = np.ascontiguousarray(d.reshape(n, o, h // 2, w // 2).transpose(0, 2, 3, 1))
        for i in range(len(self.conv_keys) - 1, -1, -1):
            key = self.conv_keys[i]
            cols, mask, arg, (n, h, w, o) = saved[i]
            dwin = np.zeros((n, h // 2, w // 2, o, 4), np.float32)
            np.put_along_axis(dwin, arg[..., None], d[..., None], axis=-1)
            dwin *= mask  # ReLU
            dy = dwin.reshape(n, h // 2, w // 2, o, 2, 2).transpose(0, 1, 4, 2, 5, 3)
            dy = np.ascontiguousarray(dy).reshape(n * h * w, o)
            wt = self.params[key + ".weight"]
            grads[key + ".weight"] = (dy.T @ cols).reshape(wt.shape)
            grads[key + ".bias"] = dy.sum(axis=0)
            if i > 0:  # the first layer needs no input gradient
                d = _col2im(dy @ wt.reshape(o, -1), (n, h, w, wt.shape[1]))
        return loss, grads

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, grads = self.gradients(x, y)
        for k, g in grads.items():
            buf = self.buffers[k]
            if self.momentum:
                if self.first_step:
                    buf[...] = g
                else:
                    buf *= self.momentum
                    buf += g
                g = buf
            self.params[k] -= self.lr * g
        self.first_step = False
        return loss

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x)[0]
