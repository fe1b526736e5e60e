"""GPT: a decoder-only transformer shaped as nanoGPT's model.py, with its module
names, state_dict keys and initialisation, trained through explicit backward.

    model = GPT(vocab_size=96, block_size=128, n_layer=4, n_head=4, n_embd=128)
    logits = model(idx)                       # idx (B, T) int64 -> (B, T, V)
    model.backward(grad_logits)               # parameter gradients accumulate
    out = model.generate(idx, 200, temperature=0.8, top_k=20)

Structure (nanoGPT): transformer.wte (V, C) and transformer.wpe (block_size, C)
embeddings, dropout, transformer.h[i] pre-LN blocks (ln_1, attn.c_attn (3C, C),
attn.c_proj, ln_2, mlp.c_fc (4C, C), exact GELU, mlp.c_proj), transformer.ln_f,
and lm_head (V, C) without bias, tied to wte: one Parameter, so the gradients of
both uses add into one buffer, parameters() lists it once and state_dict() holds
both keys. Initialisation N(0, 0.02), biases 0, and N(0, 0.02 / sqrt(2 n_layer))
for the residual projections (attn.c_proj, mlp.c_proj).

The forward runs the residual stream with each LayerNorm fused to the add before
it (ops.add_layer_norm); attention reads q, k, v as views of c_attn's output and
skips the causal upper triangle. generate() keeps a cache of every layer's keys and
values, so each new token costs one row per layer; it samples the same tokens as
recomputing the whole context would, for the same seed (fastnn.manual_seed).
"""
from __future__ import annotations

import math

import numpy as np

from fastnn import ops
from fastnn._args import check_int, check_real
from fastnn.nn import init
from fastnn.nn.attention import packed_attention, packed_attention_backward
from fastnn.nn.containers import ModuleList
from fastnn.nn.dropout import Dropout
from fastnn.nn.embedding import Embedding
from fastnn.nn.grad_mode import _mode as _grad_mode, no_grad
from fastnn.nn.linear import Linear
from fastnn.nn.module import Module, to_float32
from fastnn.nn.normalization import LayerNorm
from fastnn.random import generator


class CausalSelfAttention(Module):
    """nanoGPT's attention: c_attn (C -> 3C), causal attention over n_head heads
    with attn_dropout on the weights, c_proj (C -> C), resid_dropout."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd must be divisible by n_head, got n_embd={n_embd}, "
                             f"n_head={n_head}")
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, dropout
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = Linear(n_embd, n_embd, bias=bias)
        self.attn_dropout = Dropout(dropout)
        self.resid_dropout = Dropout(dropout)

    def forward(self, x):
        qkv = self.c_attn(x)
        y, ctx = packed_attention(qkv, self.n_head, None,
                                  self.dropout if self.training else 0.0, True,
                                  _grad_mode.enabled)
        self._save(qkv, y, ctx)
        return self.resid_dropout(self.c_proj(y))

    def backward(self, grad_out, input_grad: bool = True):
        qkv, y, ctx = self._saved()
        dy = self.c_proj.backward(self.resid_dropout.backward(grad_out))
        return self.c_attn.backward(packed_attention_backward(dy, qkv, y, ctx, self.n_head),
                                    input_grad)

    def forward_cached(self, x, cache_k, cache_v, pos: int):
        """Attention of x (B, n, C) at positions pos .. pos+n-1 over the cached keys
        and values (B, H, block_size, hd), which it extends (inference only; n > 1
        only from pos 0)."""
        B, n, C = x.shape
        H, hd = self.n_head, C // self.n_head
        parts = self.c_attn(x).reshape(B, n, 3, H, hd)
        cache_k[:, :, pos:pos + n] = parts[:, :, 1].transpose(0, 2, 1, 3)
        cache_v[:, :, pos:pos + n] = parts[:, :, 2].transpose(0, 2, 1, 3)
        y = ops.empty((B, n, C))
        ops.scaled_dot_product_attention(parts[:, :, 0].transpose(0, 2, 1, 3),
                                         cache_k[:, :, :pos + n], cache_v[:, :, :pos + n],
                                         is_causal=n > 1,
                                         out=y.reshape(B, n, H, hd).transpose(0, 2, 1, 3))
        return self.c_proj(y)


class MLP(Module):
    """c_fc (C -> 4C) with the exact GELU in its GEMM epilogue, c_proj (4C -> C), dropout."""

    def __init__(self, n_embd: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.c_fc = Linear(n_embd, 4 * n_embd, bias=bias)
        self.c_proj = Linear(4 * n_embd, n_embd, bias=bias)
        self.dropout = Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.c_fc.forward_fused(x, "gelu")))

    def backward(self, grad_out, input_grad: bool = True):
        return self.c_fc.backward(self.c_proj.backward(self.dropout.backward(grad_out)),
                                  input_grad)


class Block(Module):
    """nanoGPT's pre-LN block: x + attn(ln_1(x)), then + mlp(ln_2(.))."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = LayerNorm(n_embd, bias=bias)
        self.mlp = MLP(n_embd, dropout, bias)

    def forward(self, x):
        x, h = self.ln_2.forward_add(x, self.attn(self.ln_1(x)))
        return x + self.mlp(h)

    def backward(self, grad_out, input_grad: bool = True):
        g = to_float32(grad_out, "grad_out").copy()
        g = self.ln_2.backward(self.mlp.backward(g), grad_input=g)
        return self.ln_1.backward(self.attn.backward(g), grad_input=g)


class _Trunk(Module):
    """nanoGPT's `transformer` ModuleDict: wte, wpe, drop, h, ln_f."""

    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, dropout, bias):
        super().__init__()
        self.wte = Embedding(vocab_size, n_embd)
        self.wpe = Embedding(block_size, n_embd)
        self.drop = Dropout(dropout)
        self.h = ModuleList(Block(n_embd, n_head, dropout, bias) for _ in range(n_layer))
        self.ln_f = LayerNorm(n_embd, bias=bias)


class GPT(Module):
    """GPT(vocab_size, block_size, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
    bias=True), nanoGPT's GPTConfig fields as arguments."""

    def __init__(self, vocab_size: int, block_size: int, n_layer: int = 4, n_head: int = 4,
                 n_embd: int = 128, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.vocab_size = check_int(vocab_size, "vocab_size", 1)
        self.block_size = check_int(block_size, "block_size", 1)
        self.n_layer = check_int(n_layer, "n_layer", 1)
        self.n_head = check_int(n_head, "n_head", 1)
        self.n_embd = check_int(n_embd, "n_embd", 1)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd must be divisible by n_head, got n_embd={n_embd}, "
                             f"n_head={n_head}")
        self.dropout = check_real(dropout, "dropout", 0.0, 1.0)
        self.bias = bool(bias)
        self.transformer = _Trunk(self.vocab_size, self.block_size, self.n_layer, self.n_head,
                                  self.n_embd, self.dropout, self.bias)
        self.lm_head = Linear(self.n_embd, self.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied: one Parameter
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nanoGPT's _init_weights, then the scaled residual projections."""
        for m in self.modules():
            if isinstance(m, (Linear, Embedding)):
                init.normal_(m.weight, 0.0, 0.02)
                if isinstance(m, Linear) and m.bias is not None:
                    m.bias.data[...] = 0.0
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                init.normal_(p, 0.0, 0.02 / math.sqrt(2 * self.n_layer))

    # ---- training --------------------------------------------------------------------
    def _check_idx(self, idx):
        idx = np.asarray(idx)
        if idx.dtype.kind not in "iu":
            raise TypeError(f"idx must hold integer token ids, got dtype {idx.dtype}")
        if idx.ndim != 2:
            raise ValueError(f"idx must have shape (B, T), got {idx.shape}")
        if idx.shape[1] > self.block_size:
            raise ValueError(f"idx: a sequence of length {idx.shape[1]} is longer than "
                             f"block_size={self.block_size}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.vocab_size):
            raise ValueError(f"idx: token ids must be in [0, {self.vocab_size}), got "
                             f"[{idx.min()}, {idx.max()}]")
        return np.ascontiguousarray(idx, np.int64)

    def forward(self, idx):
        """Logits (B, T, vocab_size) of every position of idx (B, T)."""
        idx = self._check_idx(idx)
        t = self.transformer
        T = idx.shape[1]
        x = t.drop(t.wte(idx) + t.wpe(np.arange(T)))
        blocks = list(t.h)
        h = blocks[0].ln_1(x)
        for i, block in enumerate(blocks):
            x, h = block.ln_2.forward_add(x, block.attn(h))
            nxt = blocks[i + 1].ln_1 if i + 1 < len(blocks) else t.ln_f
            x, h = nxt.forward_add(x, block.mlp(h))
        return self.lm_head(h)

    def backward(self, grad_logits, input_grad: bool = False):
        """Adds every parameter's gradient for grad_logits (B, T, vocab_size); token ids
        have no gradient, so this returns None."""
        t = self.transformer
        g = self.lm_head.backward(grad_logits)
        g = t.ln_f.backward(g)
        for block in reversed(list(t.h)):
            g = block.ln_2.backward(block.mlp.backward(g), grad_input=g)
            g = block.ln_1.backward(block.attn.backward(g), grad_input=g)
        g = t.drop.backward(g)
        t.wpe.backward(g.sum(axis=0))  # positions 0 .. T-1, the same for every sequence
        t.wte.backward(g)
        return None

    # ---- generation ------------------------------------------------------------------
    def _step(self, idx, caches, pos: int):
        """Logits (B, V) of the last of the tokens idx (B, n) at positions pos .. pos+n-1,
        extending the caches."""
        t = self.transformer
        x = t.wte(idx) + t.wpe(np.arange(pos, pos + idx.shape[1]))
        for block, (ck, cv) in zip(t.h, caches):
            x = x + block.attn.forward_cached(block.ln_1(x), ck, cv, pos)
            x = x + block.mlp(block.ln_2(x))
        return self.lm_head(t.ln_f(x[:, -1:]))[:, 0]

    def _new_caches(self, B: int):
        hd = self.n_embd // self.n_head
        return [(np.empty((B, self.n_head, self.block_size, hd), np.float32),
                 np.empty((B, self.n_head, self.block_size, hd), np.float32))
                for _ in range(self.n_layer)]

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k=None,
                 use_cache: bool = True):
        """nanoGPT's generate: append max_new_tokens tokens to idx (B, T), each sampled
        from softmax(logits / temperature) of the last position, restricted to the
        top_k most likely when given, from fastnn's random stream. The context is
        cropped to the last block_size tokens. use_cache keeps every layer's keys
        and values (recomputed only when the context slides past block_size); False
        recomputes the whole context per token (the same tokens, slower)."""
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.shape[1] < 1:
            raise ValueError(f"idx must have shape (B, T) with T >= 1, got {idx.shape}")
        idx = self._check_idx(idx[:, -self.block_size:]) if idx.shape[1] > self.block_size \
            else self._check_idx(idx)
        n_new = check_int(max_new_tokens, "max_new_tokens", 0)
        temperature = check_real(temperature, "temperature", 0.0, low_open=True)
        if top_k is not None:
            top_k = check_int(top_k, "top_k", 1)
        out = [np.asarray(idx)]
        context = idx
        caches, pos = None, 0
        with no_grad():
            for _ in range(n_new):
                if context.shape[1] > self.block_size:
                    context = context[:, -self.block_size:]
                    caches = None  # positions shifted: rebuild the cache
                if not use_cache:
                    logits = self(context)[:, -1]
                elif caches is None:
                    caches = self._new_caches(context.shape[0])
                    logits = self._step(context, caches, 0)
                    pos = context.shape[1]
                else:
                    logits = self._step(context[:, -1:], caches, pos)
                    pos += 1
                nxt = _sample(logits, temperature, top_k)
                out.append(nxt)
                context = np.concatenate([context, nxt], axis=1)
        return np.concatenate(out, axis=1)

    # ---- nanoGPT checkpoints ---------------------------------------------------------
    def load_nanogpt_state_dict(self, state_dict):
        """Load a nanoGPT model's state_dict (torch tensors or arrays): the prefix
        torch.compile adds ("_orig_mod.") is stripped and the causal-mask buffers of
        old checkpoints (".attn.bias", ".attn.masked_bias") are dropped, as nanoGPT's
        own loader does."""
        cleaned = {}
        for key, value in state_dict.items():
            key = key[len("_orig_mod."):] if key.startswith("_orig_mod.") else key
            if key.endswith(".attn.bias") or key.endswith(".attn.masked_bias"):
                continue
            cleaned[key] = value.detach().cpu().numpy() if hasattr(value, "detach") else value
        return self.load_state_dict(cleaned)

    def get_config(self) -> dict:
        return {"vocab_size": self.vocab_size, "block_size": self.block_size,
                "n_layer": self.n_layer, "n_head": self.n_head, "n_embd": self.n_embd,
                "dropout": self.dropout, "bias": self.bias}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_bool, config_int
        V, T = config_int(config, "vocab_size", 1), config_int(config, "block_size", 1)
        L, C = config_int(config, "n_layer", 1), config_int(config, "n_embd", 1)
        bias = config_bool(config, "bias")
        state = {"transformer.wte.weight": ((V, C), "F32"),
                 "transformer.wpe.weight": ((T, C), "F32")}

        def add(name, rows, cols=None):
            if cols is not None:
                state[f"{name}.weight"] = ((rows, cols), "F32")
            else:
                state[f"{name}.weight"] = ((rows,), "F32")
            if bias:
                state[f"{name}.bias"] = ((rows,), "F32")
        for i in range(L):
            h = f"transformer.h.{i}"
            add(f"{h}.ln_1", C)
            add(f"{h}.attn.c_attn", 3 * C, C)
            add(f"{h}.attn.c_proj", C, C)
            add(f"{h}.ln_2", C)
            add(f"{h}.mlp.c_fc", 4 * C, C)
            add(f"{h}.mlp.c_proj", C, 4 * C)
        add("transformer.ln_f", C)
        state["lm_head.weight"] = ((V, C), "F32")
        return state

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, block_size={self.block_size}, "
                f"n_layer={self.n_layer}, n_head={self.n_head}, n_embd={self.n_embd}")


def _sample(logits, temperature: float, top_k):
    """(B, 1) token ids drawn from softmax(logits / temperature) over the top_k."""
    z = np.asarray(logits, np.float64) / temperature
    if top_k is not None and top_k < z.shape[1]:
        kth = np.partition(z, -top_k, axis=1)[:, -top_k][:, None]
        z = np.where(z < kth, -np.inf, z)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    cdf = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
    u = generator().random((z.shape[0], 1))
    return np.minimum((cdf < u).sum(axis=1, keepdims=True), z.shape[1] - 1).astype(np.int64)
