"""RNN, LSTM, GRU, their cells, and RNNOutput (fastnn.ops.rnn, csrc/rnn/).

PyTorch's constructors, parameter names and registration order (weight_ih_l{k},
weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}, each with `_reverse` for the second
direction), shapes, gate orders (LSTM i, f, g, o; GRU r, z, n with b_hn inside the
reset product) and initialisation (every parameter U(-1/sqrt(hidden_size),
+1/sqrt(hidden_size))). Each layer and direction is one C call over the whole
sequence, forward and backward.

Inputs: (L, N, H_in), (N, L, H_in) with batch_first, or unbatched (L, H_in);
hx (D*num_layers, N, H) (LSTM: a pair (h_0, c_0)), zeros when omitted, never
affected by batch_first. Outputs: (output, h_n), LSTM (output, (h_n, c_n)).
`lengths=` (one valid length per sequence, any order) gives what torch's
pack_padded_sequence -> module -> pad_packed_sequence gives: zeros past each
length, h_n at each sequence's last valid step.

backward(grad_output, grad_h_n=None) (LSTM: grad_state=(grad_h_n, grad_c_n))
returns the input gradient, and when hx was given, (grad_input, grad_hx) with
grad_hx shaped like hx: the initial-state gradient that truncated BPTT needs
(docs/recurrent.md has the recipe). Either gradient may be None (zeros).
"""
from __future__ import annotations

import math

import numpy as np

from fastnn import ops
from fastnn._args import check_int, check_real
from fastnn.nn import init
from fastnn.nn.grad_mode import is_grad_enabled
from fastnn.nn.module import Module, Stateless, to_float32
from fastnn.nn.parameter import Parameter, grad_buffer
from fastnn.random import generator

_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _check_lengths(lengths, T: int, N: int):
    """lengths as int64 (N,) in [1, T] (any order), or None."""
    if lengths is None:
        return None
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"lengths must hold integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1)
    if arr.shape != (N,):
        raise ValueError(f"lengths must have one entry per sequence ({N}), got shape "
                         f"{np.shape(lengths)}")
    if N and (arr.min() < 1 or arr.max() > T):
        raise ValueError(f"lengths must be in [1, {T}] (the padded sequence length), got "
                         f"values in [{arr.min()}, {arr.max()}]")
    return arr



class RNNBase(Module):
    """The shared multi-layer, optionally bidirectional recurrent module."""

    _mode = "lstm"

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0):
        super().__init__()
        self.mode = mode
        self.input_size = check_int(input_size, "input_size", 1)
        self.hidden_size = check_int(hidden_size, "hidden_size", 1)
        self.num_layers = check_int(num_layers, "num_layers", 1)
        self.bias = bool(bias)
        self.batch_first = bool(batch_first)
        self.dropout = check_real(dropout, "dropout", 0.0, 1.0)
        self.bidirectional = bool(bidirectional)
        self.proj_size = check_int(proj_size, "proj_size", 0)
        if self.proj_size:
            if mode != "lstm":
                raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
            if self.proj_size >= self.hidden_size:
                raise ValueError(f"proj_size ({self.proj_size}) has to be smaller than "
                                 f"hidden_size ({self.hidden_size})")
        if self.dropout > 0 and self.num_layers == 1:
            import warnings
            warnings.warn("dropout option adds dropout after all but last recurrent layer, "
                          f"so non-zero dropout expects num_layers greater than 1, but got "
                          f"dropout={self.dropout} and num_layers={self.num_layers}")
        G, H, D, R = _GATES[mode], self.hidden_size, self.num_directions, self._state_size
        for layer in range(self.num_layers):
            n_in = self.input_size if layer == 0 else R * D
            for sfx in self._suffixes():
                name = f"l{layer}{sfx}"
                setattr(self, f"weight_ih_{name}", Parameter(np.empty((G * H, n_in), np.float32)))
                setattr(self, f"weight_hh_{name}", Parameter(np.empty((G * H, R), np.float32)))
                if self.bias:
                    setattr(self, f"bias_ih_{name}", Parameter(np.empty(G * H, np.float32)))
                    setattr(self, f"bias_hh_{name}", Parameter(np.empty(G * H, np.float32)))
                else:
                    self.register_parameter(f"bias_ih_{name}", None)
                    self.register_parameter(f"bias_hh_{name}", None)
                if self.proj_size:
                    setattr(self, f"weight_hr_{name}",
                            Parameter(np.empty((self.proj_size, H), np.float32)))
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def _state_size(self) -> int:
        """the width of h and of the output: proj_size with a projection, else hidden_size"""
        return self.proj_size or self.hidden_size

    def _suffixes(self):
        return ("", "_reverse") if self.bidirectional else ("",)

    def reset_parameters(self) -> None:
        """torch's: every parameter U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _weights(self, layer: int, d: int):
        name = f"l{layer}{self._suffixes()[d]}"
        return (getattr(self, f"weight_ih_{name}"), getattr(self, f"weight_hh_{name}"),
                getattr(self, f"bias_ih_{name}"), getattr(self, f"bias_hh_{name}"),
                getattr(self, f"weight_hr_{name}") if self.proj_size else None)

    # ---- forward ---------------------------------------------------------------------

    def _split_hx(self, hx, N: int, batched: bool):
        """(h0, c0) as (D*L, N, R) and (D*L, N, H) arrays, or None."""
        DL = self.num_layers * self.num_directions
        if hx is None:
            return None, None
        if self.mode == "lstm":
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise ValueError("LSTM expects hx as a pair (h_0, c_0)")
            parts = hx
        else:
            if isinstance(hx, (tuple, list)):
                raise ValueError(f"{type(self).__name__} expects hx as one array, got a "
                                 f"{type(hx).__name__}")
            parts = (hx,)
        out = []
        for part, what in zip(parts, ("h_0", "c_0")):
            shape = (DL, N, self._state_size if what == "h_0" else self.hidden_size)
            a = to_float32(part, what)
            shown = shape if batched else (shape[0], shape[2])
            if a.shape != shown:
                raise ValueError(f"Expected hidden size {shown} for {what}, got {a.shape}")
            out.append(a if batched else a.reshape(shape))
        return (out[0], out[1]) if self.mode == "lstm" else (out[0], None)

    def forward(self, input, hx=None, lengths=None):
        x = to_float32(input, "input")
        if x.ndim not in (2, 3):
            raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got "
                             f"{x.ndim}D with shape {x.shape}")
        batched = x.ndim == 3
        if not batched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        T, N, n_in = x.shape
        if n_in != self.input_size:
            raise ValueError(f"input.size(-1) must be equal to input_size. Expected "
                             f"{self.input_size}, got {n_in}")
        if T == 0 or N == 0:
            raise ValueError(f"{type(self).__name__}: input must have at least one step and "
                             f"one sequence, got shape {np.shape(input)}")
        h0, c0 = self._split_hx(hx, N, batched)
        lengths = _check_lengths(lengths, T, N)
        order = None
        if lengths is not None:
            order = np.argsort(-lengths, kind="stable")
            if np.all(order == np.arange(N)):
                order = None
            else:
                lengths = lengths[order]
                x = x[:, order]
                h0 = None if h0 is None else h0[:, order]
                c0 = None if c0 is None else c0[:, order]
        x = np.ascontiguousarray(x)
        training = is_grad_enabled()
        R, D = self._state_size, self.num_directions
        inputs, workspaces, masks, h_n, c_n = [], [], [], [], []
        layer_in = x
        for layer in range(self.num_layers):
            y = np.empty((T, N, D * R), np.float32)
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, d)
                k = layer * D + d
                _, hk, ck, ws = ops.rnn(layer_in, w_ih._data, w_hh._data,
                                        None if b_ih is None else b_ih._data,
                                        None if b_hh is None else b_hh._data,
                                        None if h0 is None else h0[k],
                                        None if c0 is None else c0[k], self.mode, d == 1,
                                        lengths, y, d * R, training,
                                        None if w_hr is None else w_hr._data)
                h_n.append(hk)
                c_n.append(ck)
                workspaces.append(ws)
            inputs.append(layer_in)
            mask = None
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                if self.dropout == 1.0:
                    mask = np.zeros(y.shape, np.float32)
                else:
                    keep = generator().random(y.shape, dtype=np.float32) >= np.float32(self.dropout)
                    mask = keep * np.float32(1.0 / (1.0 - self.dropout))
                y = y * mask
            masks.append(mask)
            layer_in = y
        if training:
            self._save(inputs, workspaces, masks, lengths, order, batched, h0 is not None)
        out = layer_in
        h_n, c_n = np.stack(h_n), (np.stack(c_n) if self.mode == "lstm" else None)
        if order is not None:
            inv = np.argsort(order)
            out, h_n = out[:, inv], h_n[:, inv]
            c_n = None if c_n is None else c_n[:, inv]
        if not batched:
            out, h_n = out[:, 0], h_n[:, 0]
            c_n = None if c_n is None else c_n[:, 0]
        elif self.batch_first:
            out = out.transpose(1, 0, 2)
        out = np.ascontiguousarray(out)
        return (out, (h_n, c_n)) if self.mode == "lstm" else (out, h_n)

    # ---- backward --------------------------------------------------------------------

    def _state_grad(self, g, N: int, batched: bool, order, what: str):
        if g is None:
            return None
        width = self._state_size if what == "grad_h_n" else self.hidden_size
        shape = (self.num_layers * self.num_directions, N, width)
        a = to_float32(g, what)
        shown = shape if batched else (shape[0], shape[2])
        if a.shape != shown:
            raise ValueError(f"{what} must have the shape of the state {shown}, got {a.shape}")
        a = a.reshape(shape)
        return a if order is None else np.ascontiguousarray(a[:, order])

    def backward(self, grad_output, grad_state=None, input_grad: bool = True):
        inputs, workspaces, masks, lengths, order, batched, had_hx = self._saved()
        T, N = inputs[0].shape[:2]
        H, R, D, L = self.hidden_size, self._state_size, self.num_directions, self.num_layers
        if self.mode == "lstm":
            if grad_state is None:
                grad_state = (None, None)
            if not isinstance(grad_state, (tuple, list)) or len(grad_state) != 2:
                raise ValueError("LSTM.backward expects grad_state as a pair "
                                 "(grad_h_n, grad_c_n) (either may be None)")
            g_h, g_c = grad_state
        else:
            g_h, g_c = grad_state, None
        g_h = self._state_grad(g_h, N, batched, order, "grad_h_n")
        g_c = self._state_grad(g_c, N, batched, order, "grad_c_n")
        g = None
        if grad_output is not None:
            g = to_float32(grad_output, "grad_output")
            want = (N, T, D * R) if batched and self.batch_first else (T, N, D * R)
            if not batched:
                want = (T, D * R)
            if g.shape != want:
                raise ValueError(f"grad_output must have the output's shape {want}, got "
                                 f"{g.shape}")
            if not batched:
                g = g[:, None]
            elif self.batch_first:
                g = g.transpose(1, 0, 2)
            if order is not None:
                g = g[:, order]
            g = np.ascontiguousarray(g)
        dh0 = np.zeros((L * D, N, R), np.float32)
        dc0 = np.zeros((L * D, N, H), np.float32) if self.mode == "lstm" else None
        for layer in range(L - 1, -1, -1):
            if g is not None and masks[layer] is not None:
                g = g * masks[layer]
            x = inputs[layer]
            need_dx = layer > 0 or input_grad
            dx = None
            for d in range(D):
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(layer, d)
                k = layer * D + d
                grads = (grad_buffer(w_ih), grad_buffer(w_hh), grad_buffer(b_ih),
                         grad_buffer(b_hh), grad_buffer(w_hr))
                dxd, dhk, dck, *_ = ops.rnn_backward(
                    g, None if g_h is None else g_h[k], None if g_c is None else g_c[k],
                    workspaces[k], x, w_ih._data, w_hh._data, self.mode, d == 1, lengths,
                    d * R, need_dx and dx is None, dx if need_dx else None, grads,
                    w_hr=None if w_hr is None else w_hr._data)
                if dx is None:
                    dx = dxd
                dh0[k] = dhk
                if dc0 is not None:
                    dc0[k] = dck
            g = dx
        dx = g
        if dx is not None:
            if order is not None:
                inv = np.argsort(order)
                dx = dx[:, inv]
            if not batched:
                dx = dx[:, 0]
            elif self.batch_first:
                dx = dx.transpose(1, 0, 2)
            dx = np.ascontiguousarray(dx)
        if not had_hx:
            return dx if input_grad else None
        if order is not None:
            inv = np.argsort(order)
            dh0 = dh0[:, inv]
            dc0 = None if dc0 is None else dc0[:, inv]
        if not batched:
            dh0 = dh0[:, 0]
            dc0 = None if dc0 is None else dc0[:, 0]
        dhx = (np.ascontiguousarray(dh0), np.ascontiguousarray(dc0)) if self.mode == "lstm" \
            else np.ascontiguousarray(dh0)
        return (dx if input_grad else None), dhx

    # ---- configuration -----------------------------------------------------------------

    def get_config(self) -> dict:
        config = {"input_size": self.input_size, "hidden_size": self.hidden_size,
                  "num_layers": self.num_layers, "bias": self.bias,
                  "batch_first": self.batch_first, "dropout": self.dropout,
                  "bidirectional": self.bidirectional}
        if self.mode in ("rnn_tanh", "rnn_relu"):
            config["nonlinearity"] = self.mode[4:]
        if self.mode == "lstm":
            config["proj_size"] = self.proj_size
        return config

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_bool, config_int
        n_in = config_int(config, "input_size", 1)
        H = config_int(config, "hidden_size", 1)
        P = config_int(config, "proj_size", 0) if "proj_size" in config else 0
        if P >= H or (P and cls._mode != "lstm"):
            raise ValueError(f"proj_size ({P}) must be smaller than hidden_size ({H}), LSTM only")
        R = P or H
        layers = config_int(config, "num_layers", 1)
        D = 2 if config_bool(config, "bidirectional") else 1
        bias = config_bool(config, "bias")
        G = _GATES[cls._mode]
        state = {}
        for layer in range(layers):
            for sfx in ("", "_reverse")[:D]:
                name = f"l{layer}{sfx}"
                state[f"weight_ih_{name}"] = ((G * H, n_in if layer == 0 else D * R), "F32")
                state[f"weight_hh_{name}"] = ((G * H, R), "F32")
                if bias:
                    state[f"bias_ih_{name}"] = ((G * H,), "F32")
                    state[f"bias_hh_{name}"] = ((G * H,), "F32")
                if P:
                    state[f"weight_hr_{name}"] = ((P, H), "F32")
        return state

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.mode == "rnn_relu":
            s += ", nonlinearity='relu'"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) (or relu)."""

    _mode = "rnn_tanh"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             f"'relu'.")
        super().__init__("rnn_" + nonlinearity, input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, torch.nn.LSTM's gates (i, f, g, o)."""

    _mode = "lstm"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size)


class GRU(RNNBase):
    """Gated recurrent unit in torch.nn.GRU's form (r, z, n; b_hn inside r's product)."""

    _mode = "gru"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional)


# ---- cells: one step, the same kernel with T = 1 -------------------------------------

class RNNCellBase(Module):
    _mode = "lstm"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        self.input_size = check_int(input_size, "input_size", 1)
        self.hidden_size = check_int(hidden_size, "hidden_size", 1)
        self.bias = bool(bias)
        G, H = _GATES[self._mode], self.hidden_size
        self.weight_ih = Parameter(np.empty((G * H, self.input_size), np.float32))
        self.weight_hh = Parameter(np.empty((G * H, H), np.float32))
        if self.bias:
            self.bias_ih = Parameter(np.empty(G * H, np.float32))
            self.bias_hh = Parameter(np.empty(G * H, np.float32))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            init.uniform_(p, -bound, bound)

    def _state(self, a, N: int, batched: bool, what: str):
        if a is None:
            return None
        a = to_float32(a, what)
        want = (N, self.hidden_size) if batched else (self.hidden_size,)
        if a.shape != want:
            raise ValueError(f"{type(self).__name__}: {what} must have shape {want}, got "
                             f"{a.shape}")
        return a.reshape(N, self.hidden_size)

    def forward(self, input, hx=None):
        x = to_float32(input, "input")
        if x.ndim not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected input to be 1D or 2D, got "
                             f"{x.ndim}D instead")
        batched = x.ndim == 2
        x = x.reshape(-1, x.shape[-1])
        N = x.shape[0]
        if x.shape[1] != self.input_size:
            raise ValueError(f"input has inconsistent input_size: got {x.shape[1]} expected "
                             f"{self.input_size}")
        if self._mode == "lstm":
            if hx is not None and (not isinstance(hx, (tuple, list)) or len(hx) != 2):
                raise ValueError("LSTMCell expects hx as a pair (h_0, c_0)")
            h0, c0 = (None, None) if hx is None else hx
        else:
            h0, c0 = hx, None
        h0 = self._state(h0, N, batched, "hx")
        c0 = self._state(c0, N, batched, "cx")
        training = is_grad_enabled()
        b_ih, b_hh = self.bias_ih, self.bias_hh
        _, h1, c1, ws = ops.rnn(x[None], self.weight_ih._data, self.weight_hh._data,
                                None if b_ih is None else b_ih._data,
                                None if b_hh is None else b_hh._data, h0, c0, self._mode,
                                keep_workspace=training)
        if training:
            self._save(x, ws, batched, hx is not None)
        if not batched:
            h1 = h1[0]
            c1 = None if c1 is None else c1[0]
        return (h1, c1) if self._mode == "lstm" else h1

    def backward(self, grad_h, grad_c=None, input_grad: bool = True):
        x, ws, batched, had_hx = self._saved()
        N = x.shape[0]
        gh = self._state(grad_h, N, batched, "grad_h")
        gc = self._state(grad_c, N, batched, "grad_c")
        grads = (grad_buffer(self.weight_ih), grad_buffer(self.weight_hh),
                 grad_buffer(self.bias_ih), grad_buffer(self.bias_hh))
        dx, dh0, dc0, *_ = ops.rnn_backward(None, gh, gc, ws, x[None], self.weight_ih._data,
                                            self.weight_hh._data, self._mode,
                                            input_grad=input_grad, weight_grads=grads)
        if dx is not None:
            dx = dx[0] if batched else dx[0, 0]
        if not had_hx:
            return dx
        if not batched:
            dh0 = dh0[0]
            dc0 = None if dc0 is None else dc0[0]
        return dx, ((dh0, dc0) if self._mode == "lstm" else dh0)

    def get_config(self) -> dict:
        config = {"input_size": self.input_size, "hidden_size": self.hidden_size,
                  "bias": self.bias}
        if self._mode in ("rnn_tanh", "rnn_relu"):
            config["nonlinearity"] = self._mode[4:]
        return config

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_bool, config_int
        n_in = config_int(config, "input_size", 1)
        H = config_int(config, "hidden_size", 1)
        G = _GATES[cls._mode]
        state = {"weight_ih": ((G * H, n_in), "F32"), "weight_hh": ((G * H, H), "F32")}
        if config_bool(config, "bias"):
            state["bias_ih"] = ((G * H,), "F32")
            state["bias_hh"] = ((G * H,), "F32")
        return state

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self._mode == "rnn_relu":
            s += ", nonlinearity='relu'"
        return s


class RNNCell(RNNCellBase):
    """One Elman step: h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh) (or relu)."""

    _mode = "rnn_tanh"

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh"):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        super().__init__(input_size, hidden_size, bias)  # G = 1 for both nonlinearities
        self.nonlinearity = nonlinearity
        self._mode = "rnn_" + nonlinearity


class LSTMCell(RNNCellBase):
    """One LSTM step: (h_1, c_1) from input and (h_0, c_0)."""

    _mode = "lstm"


class GRUCell(RNNCellBase):
    """One GRU step in torch.nn.GRUCell's form."""

    _mode = "gru"


class RNNOutput(Stateless, Module):
    """The adapter between a recurrent module and the layers after it in a Sequential:
    takes (output, h_n) (or LSTM's (output, (h_n, c_n))) and returns
      select="sequence": output, every step (a language model's per-step head);
      select="last":     the last time step of output, (N, D*H) (output[:, -1] with
                         batch_first, else output[-1]);
      select="hidden":   the last layer's final state h_n, both directions joined,
                         (N, D*H): with lengths=, each sequence's last valid step.
    backward hands the recurrent module (grad_output, grad_state)."""

    def __init__(self, select: str = "last", batch_first: bool = False,
                 bidirectional: bool = False):
        super().__init__()
        if select not in ("sequence", "last", "hidden"):
            raise ValueError(f"select must be 'sequence', 'last' or 'hidden', got {select!r}")
        self.select = select
        self.batch_first = bool(batch_first)
        self.bidirectional = bool(bidirectional)

    def forward(self, output, state=None):
        out = np.asarray(output)
        is_lstm = isinstance(state, tuple)
        h_n = state[0] if is_lstm else state
        self._save(out.shape, None if h_n is None else np.shape(h_n), is_lstm)
        if self.select == "sequence":
            return out
        if self.select == "last":
            if out.ndim == 2:
                return out[-1]
            return np.ascontiguousarray(out[:, -1] if self.batch_first else out[-1])
        if h_n is None:
            raise ValueError("RNNOutput(select='hidden') needs the recurrent module's h_n")
        D = 2 if self.bidirectional else 1
        last = np.asarray(h_n)[-D:]
        return np.ascontiguousarray(np.concatenate(list(last), axis=-1))

    def backward(self, grad_out, input_grad: bool = True):
        out_shape, h_shape, is_lstm = self._saved()
        g = to_float32(grad_out, "grad_out")
        g_out, g_h = None, None
        if self.select == "sequence":
            g_out = g
        elif self.select == "last":
            g_out = np.zeros(out_shape, np.float32)
            if len(out_shape) == 2:
                g_out[-1] = g
            elif self.batch_first:
                g_out[:, -1] = g
            else:
                g_out[-1] = g
        else:
            D = 2 if self.bidirectional else 1
            g_h = np.zeros(h_shape, np.float32)
            H = h_shape[-1]
            for d in range(D):
                g_h[len(g_h) - D + d] = g[..., d * H:(d + 1) * H]
        if not input_grad:
            return None
        return g_out, ((g_h, None) if is_lstm else g_h)

    def get_config(self) -> dict:
        return {"select": self.select, "batch_first": self.batch_first,
                "bidirectional": self.bidirectional}
