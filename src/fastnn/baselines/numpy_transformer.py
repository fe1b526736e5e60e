"""One pre-LN causal transformer block trained with hand-written backpropagation in
plain NumPy: the NumPy side of ``fastnn bench --suite transformer``.

    from fastnn.baselines.numpy_transformer import NumpyTransformerBlock

    net = NumpyTransformerBlock(d_model=128, nhead=4, dim_feedforward=512, lr=1e-3)
    net.load_state_dict(state)           # TransformerEncoderLayer's keys
    loss = net.train_step(x, y)          # x, y (B, T, d) float32: MSE, then one AdamW step

The block is TransformerEncoderLayer(norm_first=True, batch_first=True,
activation="gelu", dropout=0) with is_causal: x + attn(LN1(x)), then + FFN(LN2(.)),
the exact (erf) GELU, trained on the mean squared error with torch.optim.AdamW's
update (weight_decay 0.01). Parameters use PyTorch's layouts and state_dict keys.

How it is made fast, as a careful NumPy programmer would: one (B*T, d) @ (d, 3d)
product for q, k, v; attention as batched (B, H, T, T) matmuls with the causal mask
added once; every linear's weight gradient as one product over all tokens; in-place
updates where NumPy allows. erf is the Abramowitz-Stegun 7.1.26 rational form
(|error| < 1.5e-7), as NumPy has none.
"""
from __future__ import annotations

import numpy as np

from fastnn.baselines import ParamDict

_SQRT1_2 = np.float32(0.7071067811865476)


def _erf(x: np.ndarray) -> np.ndarray:
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                           + t * 1.061405429))))
    return (s * (1.0 - poly * np.exp(-a * a))).astype(np.float32)


def _layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    rstd = 1.0 / np.sqrt((xc * xc).mean(axis=-1, keepdims=True) + eps)
    xhat = xc * rstd
    return xhat * w + b, (xhat, rstd)


def _layer_norm_backward(g, w, cache):
    xhat, rstd = cache
    gw = g * w
    dx = rstd * (gw - gw.mean(axis=-1, keepdims=True)
                 - xhat * (gw * xhat).mean(axis=-1, keepdims=True))
    rows = g.shape[-1]
    return dx, (g * xhat).reshape(-1, rows).sum(axis=0), g.reshape(-1, rows).sum(axis=0)


class NumpyTransformerBlock(ParamDict):
    def __init__(self, d_model: int = 128, nhead: int = 4, dim_feedforward: int = 512,
                 lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        d, f = d_model, dim_feedforward
        z = lambda *s: np.zeros(s, np.float32)  # noqa: E731
        self.params = {"self_attn.in_proj_weight": z(3 * d, d), "self_attn.in_proj_bias": z(3 * d),
                       "self_attn.out_proj.weight": z(d, d), "self_attn.out_proj.bias": z(d),
                       "linear1.weight": z(f, d), "linear1.bias": z(f),
                       "linear2.weight": z(d, f), "linear2.bias": z(d),
                       "norm1.weight": z(d), "norm1.bias": z(d),
                       "norm2.weight": z(d), "norm2.bias": z(d)}
        self.H, self.lr, self.betas, self.eps, self.wd = nhead, lr, betas, eps, weight_decay
        self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.t = 0

    def gradients(self, x: np.ndarray, y: np.ndarray):
        """(loss, {key: gradient}) of the mean squared error of the block's output vs y."""
        p, H = self.params, self.H
        B, T, d = x.shape
        hd = d // H
        # ---- forward
        h1, ln1 = _layer_norm(x, p["norm1.weight"], p["norm1.bias"])
        qkv = h1.reshape(B * T, d) @ p["self_attn.in_proj_weight"].T + p["self_attn.in_proj_bias"]
        q, k, v = (qkv[:, i * d:(i + 1) * d].reshape(B, T, H, hd).transpose(0, 2, 1, 3)
                   for i in range(3))
        scale = np.float32(1.0 / np.sqrt(hd))
        s = (q @ k.transpose(0, 1, 3, 2)) * scale
        s += np.triu(np.full((T, T), -np.inf, np.float32), 1)
        s -= s.max(axis=-1, keepdims=True)
        P = np.exp(s)
        P /= P.sum(axis=-1, keepdims=True)
        att = (P @ v).transpose(0, 2, 1, 3).reshape(B * T, d)
        x1 = x + (att @ p["self_attn.out_proj.weight"].T
                  + p["self_attn.out_proj.bias"]).reshape(B, T, d)
        h2, ln2 = _layer_norm(x1, p["norm2.weight"], p["norm2.bias"])
        a = h2.reshape(B * T, d) @ p["linear1.weight"].T + p["linear1.bias"]
        cdf = 0.5 * (1.0 + _erf(a * _SQRT1_2))
        g_act = a * cdf
        out = x1 + (g_act @ p["linear2.weight"].T + p["linear2.bias"]).reshape(B, T, d)
        diff = out - y
        loss = float(np.mean(diff.astype(np.float64) ** 2))
        # ---- backward
        grads = {}
        dout = (2.0 / diff.size) * diff
        d2 = dout.reshape(B * T, d)
        grads["linear2.weight"] = d2.T @ g_act
        grads["linear2.bias"] = d2.sum(axis=0)
        dg = d2 @ p["linear2.weight"]
        pdf = np.exp(-0.5 * a * a) * np.float32(0.3989422804014327)
        da = dg * (cdf + a * pdf)
        grads["linear1.weight"] = da.T @ h2.reshape(B * T, d)
        grads["linear1.bias"] = da.sum(axis=0)
        dh2 = (da @ p["linear1.weight"]).reshape(B, T, d)
        dx1, grads["norm2.weight"], grads["norm2.bias"] = _layer_norm_backward(
            dh2, p["norm2.weight"], ln2)
        dx1 += dout
        dp = dx1.reshape(B * T, d)
        grads["self_attn.out_proj.weight"] = dp.T @ att
        grads["self_attn.out_proj.bias"] = dp.sum(axis=0)
        datt = (dp @ p["self_attn.out_proj.weight"]).reshape(B, T, H, hd).transpose(0, 2, 1, 3)
        dv = P.transpose(0, 1, 3, 2) @ datt
        dP = datt @ v.transpose(0, 1, 3, 2)
        dS = P * (dP - (dP * P).sum(axis=-1, keepdims=True)) * scale
        dq, dk = dS @ k, dS.transpose(0, 1, 3, 2) @ q
        dqkv = np.concatenate([a_.transpose(0, 2, 1, 3).reshape(B * T, d) for a_ in (dq, dk, dv)],
                              axis=1)
        grads["self_attn.in_proj_weight"] = dqkv.T @ h1.reshape(B * T, d)
        grads["self_attn.in_proj_bias"] = dqkv.sum(axis=0)
        dh1 = (dqkv @ p["self_attn.in_proj_weight"]).reshape(B, T, d)
        _, grads["norm1.weight"], grads["norm1.bias"] = _layer_norm_backward(
            dh1, p["norm1.weight"], ln1)  # dx is not needed: x is the data
        return loss, grads

    def train_step(self, x: np.ndarray, y: np.ndarray) -> float:
        loss, grads = self.gradients(x, y)
        self.t += 1
        b1, b2 = self.betas
        bc1, bc2 = 1.0 - b1 ** self.t, 1.0 - b2 ** self.t
        for k, w in self.params.items():
            g, m, v = grads[k], self.m[k], self.v[k]
            w *= np.float32(1.0 - self.lr * self.wd)
            m *= np.float32(b1)
            m += np.float32(1.0 - b1) * g
            v *= np.float32(b2)
            v += np.float32(1.0 - b2) * g * g
            w -= np.float32(self.lr / bc1) * m / (np.sqrt(v) / np.float32(np.sqrt(bc2))
                                                  + np.float32(self.eps))
        return loss
