"""An LSTM sequence classifier trained with hand-written backpropagation through time
in plain NumPy: the NumPy side of the RNN benchmark (``fastnn bench --suite rnn``).

    from fastnn.baselines.numpy_lstm import NumpyLSTM

    net = NumpyLSTM(input_size=64, hidden_size=128, num_classes=10, seed=0, lr=0.01)
    loss = net.train_step(x, y)          # x (T, N, 64) float32 time-major, y (N,) int labels
    loss, grads = net.gradients(x, y)    # no update; grads["0.weight_ih_l0"] is (512, 64)

The model is LSTM(input_size, hidden_size) -> its last time step -> Linear(hidden_size,
num_classes), trained on the mean softmax cross-entropy in float32 with plain SGD.
Weights use PyTorch's layouts and gate order (i, f, g, o) and its initialisation
(uniform in +-1/sqrt(hidden_size), the head in +-1/sqrt(fan_in)); ``state_dict()`` has
the keys of the equivalent fastnn Sequential(LSTM, RNNOutput, Linear): "0.weight_ih_l0",
..., "2.weight", "2.bias".

How it is made fast, as a careful NumPy programmer would: the input projection of all
T steps is one (T*N, I) @ (I, 4H) product with both biases added once; each step is one
(N, H) @ (H, 4H) product and in-place vector operations on the four gate slices; the
backward keeps the gates of every step, runs one (N, 4H) @ (4H, H) product per step and
computes dW_ih, dW_hh and the biases after the loop as single products over all steps;
no input gradient (x needs none).
"""
from __future__ import annotations

import numpy as np

from fastnn.baselines import ParamDict


def _sigmoid(a: np.ndarray) -> np.ndarray:
    out = np.negative(a)
    np.exp(out, out=out)
    out += 1.0
    return np.reciprocal(out, out=out)


class NumpyLSTM(ParamDict):
    def __init__(self, input_size: int = 64, hidden_size: int = 128, num_classes: int = 10,
                 seed: int = 0, lr: float = 0.01):
        rng = np.random.default_rng(seed)
        H, bound = hidden_size, 1.0 / np.sqrt(hidden_size)
        u = lambda b, *s: rng.uniform(-b, b, size=s).astype(np.float32)  # noqa: E731
        self.params = {"0.weight_ih_l0": u(bound, 4 * H, input_size),
                       "0.weight_hh_l0": u(bound, 4 * H, H),
                       "0.bias_ih_l0": u(bound, 4 * H), "0.bias_hh_l0": u(bound, 4 * H),
                       "2.weight": u(bound, num_classes, H), "2.bias": u(bound, num_classes)}
        self.H, self.lr = H, lr

    def _forward(self, x: np.ndarray):
        p, H = self.params, self.H
        T, N, I = x.shape
        proj = x.reshape(T * N, I) @ p["0.weight_ih_l0"].T
        proj += p["0.bias_ih_l0"] + p["0.bias_hh_l0"]
        gates = proj.reshape(T, N, 4 * H)
        hs = np.zeros((T + 1, N, H), np.float32)
        cs = np.zeros((T + 1, N, H), np.float32)
        w_hh_t = np.ascontiguousarray(p["0.weight_hh_l0"].T)
        for t in range(T):
            g = gates[t]
            g += hs[t] @ w_hh_t
            g[:, :2 * H] = _sigmoid(g[:, :2 * H])
            np.tanh(g[:, 2 * H:3 * H], out=g[:, 2 * H:3 * H])
            g[:, 3 * H:] = _sigmoid(g[:, 3 * H:])
            i, f, gg = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H]
            np.multiply(f, cs[t], out=cs[t + 1])
            cs[t + 1] += i * gg
            np.multiply(g[:, 3 * H:], np.tanh(cs[t + 1]), out=hs[t + 1])
        logits = hs[T] @ p["2.weight"].T + p["2.bias"]
        return logits, gates, hs, cs

    def gradients(self, x: np.ndarray, y: np.ndarray):
        """(loss, grads by state_dict key) of the mean cross-entropy on (x, y)."""
        p, H = self.params, self.H
        T, N, I = x.shape
        logits, gates, hs, cs = self._forward(x)
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        s = e.sum(axis=1, keepdims=True)
        loss = float(np.mean(np.log(s[:, 0]) - z[np.arange(N), y]))
        dlogits = e / s
        dlogits[np.arange(N), y] -= 1.0
        dlogits /= N
        grads = {"2.weight": dlogits.T @ hs[T], "2.bias": dlogits.sum(axis=0)}
        dh = dlogits @ p["2.weight"]
        dc = np.zeros((N, H), np.float32)
        dgates = np.empty_like(gates)
        w_hh = p["0.weight_hh_l0"]
        for t in range(T - 1, -1, -1):
            g = gates[t]
            i, f, gg, o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H], g[:, 3 * H:]
            tc = np.tanh(cs[t + 1])
            dc += dh * o * (1.0 - tc * tc)
            d = dgates[t]
            d[:, :H] = dc * gg * i * (1.0 - i)
            d[:, H:2 * H] = dc * cs[t] * f * (1.0 - f)
            d[:, 2 * H:3 * H] = dc * i * (1.0 - gg * gg)
            d[:, 3 * H:] = dh * tc * o * (1.0 - o)
            dc *= f
            dh = d @ w_hh
        dg = dgates.reshape(T * N, 4 * H)
        grads["0.weight_ih_l0"] = dg.T @ x.reshape(T * N, I)
        grads["0.weight_hh_l0"] = dg.T @ hs[:T].reshape(T * N, H)
        grads["0.bias_ih_l0"] = dg.sum(axis=0)
        grads["0.bias_hh_l0"] = grads["0.bias_ih_l0"]
        return loss, grads

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, grads = self.gradients(x, y)
        for k, g in grads.items():
            self.params[k] -= np.float32(self.lr) * g
        return loss

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x)[0]
