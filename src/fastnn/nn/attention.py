"""MultiheadAttention with PyTorch's arguments, parameters and masks, on
fastnn.ops.scaled_dot_product_attention.

Layouts: (L, N, E) inputs unless batch_first ((N, L, E)), or unbatched (L, E).
Parameters as torch.nn.MultiheadAttention: in_proj_weight (3E, E) = [W_q; W_k; W_v]
(or q_proj_weight, k_proj_weight, v_proj_weight when kdim or vdim differ from E),
in_proj_bias (3E,), out_proj (a Linear), bias_k and bias_v with add_bias_kv.

Self-attention (query, key and value the same array, or forward_self) projects
once through the whole (3E, E) weight; q, k, v are then strided views of that
projection and the heads' outputs are written into one (N, L, E) array, so no
head is transposed or copied. Backward returns one gradient per argument
(forward_self: the one gradient of its input).

Masks follow torch.nn.MultiheadAttention: a bool attn_mask ((L, S) or (N*H, L, S))
or key_padding_mask ((N, S)) marks with True what may NOT be attended; float masks
are added to the scores. Where this differs from PyTorch:
- is_causal=True applies a causal mask by itself (torch requires attn_mask as well
  and treats is_causal as a hint); with attn_mask it is the mask plus causality.
- a query whose every key is masked gets zero output and weights (torch: NaN
  weights, and zeros or NaN output depending on its kernel).
- the attention weights returned are not differentiated: backward takes the
  gradient of the output only.
"""
from __future__ import annotations

import numpy as np

from fastnn import ops
from fastnn._args import check_int, check_real
from fastnn.nn import init
from fastnn.nn.batchnorm import check_device_dtype
from fastnn.nn.grad_mode import _mode as _grad_mode
from fastnn.nn.linear import Linear
from fastnn.nn.module import Module, to_float32
from fastnn.nn.parameter import Parameter, grad_buffer



def merge_masks(attn_mask, key_padding_mask, N: int, H: int, L: int, S: int):
    """One additive float mask broadcastable to (N, H, L, S), or None, from
    torch.nn.MultiheadAttention's attn_mask ((L, S) or (N*H, L, S)) and
    key_padding_mask ((N, S)); bool True means "may not attend"."""
    def additive(m, name):
        m = np.asarray(m)
        if m.dtype == np.bool_:
            return np.where(m, np.float32(-np.inf), np.float32(0.0))
        if m.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a bool or float mask, got dtype {m.dtype}")
        return np.asarray(m, np.float32)

    mask = None
    if attn_mask is not None:
        mask = additive(attn_mask, "attn_mask")
        if mask.shape == (L, S):
            pass
        elif mask.shape == (N * H, L, S):
            mask = mask.reshape(N, H, L, S)
        else:
            raise ValueError(f"attn_mask must have shape ({L}, {S}) or ({N * H}, {L}, {S}) "
                             f"(L, S) or (N*num_heads, L, S), got {mask.shape}")
    if key_padding_mask is not None:
        kpm = additive(key_padding_mask, "key_padding_mask")
        if N == 1 and kpm.shape == (S,):  # an unbatched call's
            kpm = kpm[None]
        if kpm.shape != (N, S):
            raise ValueError(f"key_padding_mask must have shape ({N}, {S}) (N, S), got "
                             f"{kpm.shape}")
        kpm = kpm.reshape(N, 1, 1, S)
        mask = kpm if mask is None else mask + kpm
    return mask


def _heads_view(a, num_heads: int):
    """(N, T, H*hd) -> its (N, H, T, hd) view."""
    N, T, F = a.shape
    return a.reshape(N, T, num_heads, F // num_heads).transpose(0, 2, 1, 3)


def packed_attention(qkv, num_heads: int, mask=None, dropout_p: float = 0.0,
                     is_causal: bool = False, keep_context: bool = True,
                     save_probs=None):
    """Attention over a packed projection qkv (N, T, 3E) (q, k, v side by side, each
    H heads of E/H): returns y (N, T, E), the heads' outputs side by side, and the
    context packed_attention_backward takes (None unless keep_context). q, k, v are
    read and y written as strided views: no head is copied."""
    N, T, F = qkv.shape
    E = F // 3
    parts = qkv.reshape(N, T, 3, num_heads, E // num_heads)
    q, k, v = (parts[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    y = ops.empty((N, T, E))
    result = ops.scaled_dot_product_attention(q, k, v, mask, dropout_p, is_causal,
                                              out=_heads_view(y, num_heads),
                                              return_context=keep_context,
                                              save_probs=save_probs)
    return y, (result[1] if keep_context else None)


def packed_attention_backward(grad_y, qkv, y, context, num_heads: int):
    """The gradient of packed_attention's qkv (N, T, 3E) given that of y (N, T, E)."""
    N, T, F = qkv.shape
    hd = F // 3 // num_heads
    parts = qkv.reshape(N, T, 3, num_heads, hd)
    dqkv = ops.empty((N, T, 3, num_heads, hd))
    ops.scaled_dot_product_attention_backward(
        _heads_view(grad_y, num_heads), *(parts[:, :, i].transpose(0, 2, 1, 3) for i in range(3)),
        _heads_view(y, num_heads), context,
        *(dqkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3)))
    return dqkv.reshape(N, T, F)


class MultiheadAttention(Module):
    """torch.nn.MultiheadAttention(embed_dim, num_heads, dropout=0.0, bias=True,
    add_bias_kv=False, add_zero_attn=False, kdim=None, vdim=None, batch_first=False).
    forward(query, key, value, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False) returns
    (output, weights or None); backward(grad_output, input_grad=True) returns
    (grad_query, grad_key, grad_value)."""

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False, kdim=None, vdim=None,
                 batch_first: bool = False, device=None, dtype=None):
        super().__init__()
        check_device_dtype(device, dtype)
        self.embed_dim = E = check_int(embed_dim, "embed_dim", 1)
        self.num_heads = check_int(num_heads, "num_heads", 1)
        if E % self.num_heads:
            raise ValueError(f"embed_dim must be divisible by num_heads, got embed_dim={E}, "
                             f"num_heads={self.num_heads}")
        self.head_dim = E // self.num_heads
        self.kdim = E if kdim is None else check_int(kdim, "kdim", 1)
        self.vdim = E if vdim is None else check_int(vdim, "vdim", 1)
        self._qkv_same_embed_dim = self.kdim == E and self.vdim == E
        self.dropout = check_real(dropout, "dropout", 0.0, 1.0)
        self.batch_first = bool(batch_first)
        self.add_zero_attn = bool(add_zero_attn)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), np.float32))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(np.empty((E, E), np.float32))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), np.float32))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), np.float32))
        if bias:
            self.in_proj_bias = Parameter(np.zeros(3 * E, np.float32))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias)
        if add_bias_kv:
            self.bias_k = Parameter(np.zeros((1, 1, E), np.float32))
            self.bias_v = Parameter(np.zeros((1, 1, E), np.float32))
        else:
            self.register_parameter("bias_k", None)
            self.register_parameter("bias_v", None)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """torch's initialisation: xavier_uniform_ projections, zero biases, xavier_normal_
        bias_k / bias_v; out_proj.weight keeps Linear's."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for p in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(p)
        if self.in_proj_bias is not None:
            self.in_proj_bias.data[...] = 0.0
            self.out_proj.bias.data[...] = 0.0
        for p in (self.bias_k, self.bias_v):
            if p is not None:
                init.xavier_normal_(p)

    # ---- layout --------------------------------------------------------------------
    def _batch_major(self, x, name: str, features: int):
        """x as (N, T, features) float32 C-contiguous, and whether it was unbatched."""
        x = to_float32(x, name)
        if x.ndim == 2:
            x3, unbatched = x[None], True
        elif x.ndim == 3:
            x3, unbatched = (x if self.batch_first else x.transpose(1, 0, 2)), False
        else:
            raise ValueError(f"{name} must be (L, N, E), (N, L, E) with batch_first, or "
                             f"unbatched (L, E), got shape {x.shape}")
        if x3.shape[2] != features:
            raise ValueError(f"{name} must have {features} features in its last axis, got "
                             f"shape {x.shape}")
        return np.ascontiguousarray(x3), unbatched

    def _to_layout(self, a, unbatched: bool):
        """(N, T, F) back to the caller's layout."""
        if unbatched:
            return a[0]
        return a if self.batch_first else np.ascontiguousarray(a.transpose(1, 0, 2))

    def _weights(self):
        """(W_q, W_k, W_v) and their gradient buffers (views of in_proj_weight when packed)."""
        E = self.embed_dim
        if self._qkv_same_embed_dim:
            w, g = self.in_proj_weight.data, grad_buffer(self.in_proj_weight)
            return ([w[i * E:(i + 1) * E] for i in range(3)],
                    [None if g is None else g[i * E:(i + 1) * E] for i in range(3)])
        ps = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        return [p.data for p in ps], [grad_buffer(p) for p in ps]

    def _biases(self):
        E, b = self.embed_dim, self.in_proj_bias
        if b is None:
            return [None] * 3, [None] * 3
        g = grad_buffer(b)
        return ([b.data[i * E:(i + 1) * E] for i in range(3)],
                [None if g is None else g[i * E:(i + 1) * E] for i in range(3)])

    # ---- forward -------------------------------------------------------------------
    def forward(self, query, key, value, key_padding_mask=None, need_weights: bool = True,
                attn_mask=None, average_attn_weights: bool = True, is_causal: bool = False):
        self_attention = key is query and value is query
        return self._attend(query, None if self_attention else key,
                            None if self_attention else value, key_padding_mask, need_weights,
                            attn_mask, average_attn_weights, is_causal, single=False)

    def forward_self(self, x, key_padding_mask=None, need_weights: bool = False, attn_mask=None,
                     average_attn_weights: bool = True, is_causal: bool = False):
        """forward(x, x, x, ...), whose backward returns the one gradient of x (the sum
        of the three)."""
        return self._attend(x, None, None, key_padding_mask, need_weights, attn_mask,
                            average_attn_weights, is_causal, single=True)

    def _attend(self, query, key, value, key_padding_mask, need_weights, attn_mask,
                average_attn_weights, is_causal, single):
        E, H = self.embed_dim, self.num_heads
        xq, unbatched = self._batch_major(query, "query", E)
        N, L = xq.shape[0], xq.shape[1]
        packed = key is None and self._qkv_same_embed_dim and self.bias_k is None \
            and not self.add_zero_attn
        keep = _grad_mode.enabled or need_weights
        p = self.dropout if self.training else 0.0
        save_probs = True if need_weights else None
        if packed:
            b = None if self.in_proj_bias is None else self.in_proj_bias.data
            qkv = ops.linear(xq, self.in_proj_weight.data, b)  # (N, L, 3E)
            mask = merge_masks(attn_mask, key_padding_mask, N, H, L, L)
            y, ctx = packed_attention(qkv, H, mask, p, bool(is_causal), keep, save_probs)
            xk = xv = q = k = v = None
        else:
            xk, k_unbatched = self._batch_major(query if key is None else key, "key", self.kdim)
            xv, v_unbatched = self._batch_major(query if value is None else value, "value",
                                                self.vdim)
            ws, _ = self._weights()
            bs, _ = self._biases()
            if (k_unbatched != unbatched or v_unbatched != unbatched
                    or xk.shape[:2] != xv.shape[:2] or xk.shape[0] != N):
                raise ValueError(f"key and value must have the same batch and length, and the "
                                 f"query's batch, got query {np.shape(query)}, key "
                                 f"{np.shape(key)}, value {np.shape(value)}")
            qkv = None
            qp = ops.linear(xq, ws[0], bs[0])
            kp = ops.linear(xk, ws[1], bs[1])
            vp = ops.linear(xv, ws[2], bs[2])
            extra = (self.bias_k is not None) + self.add_zero_attn
            if extra:
                kp, vp = (np.concatenate([a] + ([np.broadcast_to(bias.data, (N, 1, E))]
                                                 if self.bias_k is not None else [])
                                         + ([np.zeros((N, 1, E), np.float32)]
                                            if self.add_zero_attn else []), axis=1)
                          for a, bias in ((kp, self.bias_k), (vp, self.bias_v)))
            q, k, v = (_heads_view(a, H) for a in (qp, kp, vp))
            S = k.shape[2]
            if extra:
                attn_mask, key_padding_mask = _pad_masks(attn_mask, key_padding_mask, extra)
            mask = merge_masks(attn_mask, key_padding_mask, N, H, L, S)
            y = ops.empty((N, L, E))
            result = ops.scaled_dot_product_attention(q, k, v, mask, p, bool(is_causal),
                                                      out=_heads_view(y, H),
                                                      return_context=keep,
                                                      save_probs=save_probs)
            ctx = result[1] if keep else None
        out = self.out_proj(y)
        weights = None
        if need_weights:
            w = ctx[1] if ctx[3] is None else ctx[1] * ctx[3]
            weights = w.mean(axis=1) if average_attn_weights else w
            weights = weights[0] if unbatched else weights
        self._save(single, unbatched, xq, xk, xv, qkv, q, k, v, y, ctx)
        return self._to_layout(out, unbatched), weights

    # ---- backward ------------------------------------------------------------------
    def backward(self, grad_output, grad_weights=None, input_grad: bool = True):
        """Gradients of the output: (grad_query, grad_key, grad_value) in the inputs'
        layouts (forward_self: the one gradient of x); parameter gradients accumulate.
        grad_weights must be None: the returned weights are not differentiated."""
        if grad_weights is not None:
            raise ValueError("MultiheadAttention.backward: gradients through the returned "
                             "attention weights are not supported; pass None")
        single, unbatched, xq, xk, xv, qkv, q, k, v, y, ctx = self._saved()
        E, H = self.embed_dim, self.num_heads
        g = to_float32(grad_output, "grad_output")
        g = g[None] if unbatched else (g if self.batch_first else g.transpose(1, 0, 2))
        if g.shape != y.shape:
            raise ValueError(f"grad_output must have the output's shape, got "
                             f"{np.shape(grad_output)}")
        dy = self.out_proj.backward(np.ascontiguousarray(g))
        N = xq.shape[0]
        if qkv is not None:  # the packed projection: gradients into one (N, L, 3E) array
            dqkv = packed_attention_backward(dy, qkv, y, ctx, H)
            if single or not input_grad:
                dx = ops.linear_backward(dqkv, xq, self.in_proj_weight.data,
                                         grad_buffer(self.in_proj_weight),
                                         grad_buffer(self.in_proj_bias), input_grad)
                return None if dx is None else self._to_layout(dx, unbatched)
            ws, gws = self._weights()
            bs, gbs = self._biases()
            grads = [ops.linear_backward(np.ascontiguousarray(dqkv[..., i * E:(i + 1) * E]), xq,
                                         ws[i], gws[i], gbs[i], True) for i in range(3)]
            return tuple(self._to_layout(d, unbatched) for d in grads)
        ws, gws = self._weights()
        bs, gbs = self._biases()
        dq, dk, dv = ops.scaled_dot_product_attention_backward(
            _heads_view(dy, H), q, k, v, _heads_view(y, H), ctx)
        # back to (N, T, E), dropping the appended bias_k / zero rows into their gradients
        dq, dk, dv = (np.ascontiguousarray(a.transpose(0, 2, 1, 3)).reshape(N, -1, E)
                      for a in (dq, dk, dv))
        S = xk.shape[1]
        if self.bias_k is not None:
            for p, d in ((self.bias_k, dk), (self.bias_v, dv)):
                if p.requires_grad:
                    p._grad += d[:, S].sum(axis=0).reshape(1, 1, E)
        dk, dv = np.ascontiguousarray(dk[:, :S]), np.ascontiguousarray(dv[:, :S])
        grads = [ops.linear_backward(d, x, ws[i], gws[i], gbs[i], input_grad)
                 for i, (d, x) in enumerate(((dq, xq), (dk, xk), (dv, xv)))]
        if not input_grad:
            return None
        if single:
            return self._to_layout(grads[0] + grads[1] + grads[2], unbatched)
        return tuple(self._to_layout(d, unbatched) for d in grads)

    def get_config(self) -> dict:
        return {"embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "dropout": self.dropout, "bias": self.in_proj_bias is not None,
                "add_bias_kv": self.bias_k is not None, "add_zero_attn": self.add_zero_attn,
                "kdim": self.kdim, "vdim": self.vdim, "batch_first": self.batch_first}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_bool, config_int
        E = config_int(config, "embed_dim", 1)
        kdim, vdim = config_int(config, "kdim", 1), config_int(config, "vdim", 1)
        state = {}
        if kdim == E and vdim == E:
            state["in_proj_weight"] = ((3 * E, E), "F32")
        else:
            state.update({"q_proj_weight": ((E, E), "F32"), "k_proj_weight": ((E, kdim), "F32"),
                          "v_proj_weight": ((E, vdim), "F32")})
        bias = config_bool(config, "bias")
        if bias:
            state["in_proj_bias"] = ((3 * E,), "F32")
        if config_bool(config, "add_bias_kv"):
            state["bias_k"] = ((1, 1, E), "F32")
            state["bias_v"] = ((1, 1, E), "F32")
        state["out_proj.weight"] = ((E, E), "F32")
        if bias:
            state["out_proj.bias"] = ((E,), "F32")
        return state

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"


def _pad_masks(attn_mask, key_padding_mask, extra: int):
    """torch's padding of the masks for the keys add_bias_kv / add_zero_attn append:
    one column of "may attend" each."""
    def pad(m):
        if m is None:
            return None
        m = np.asarray(m)
        fill = np.zeros(m.shape[:-1] + (extra,), m.dtype)  # False / 0.0: may attend
        return np.concatenate([m, fill], axis=-1)
    return pad(attn_mask), pad(key_padding_mask)
