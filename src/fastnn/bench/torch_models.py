"""PyTorch twins of fastnn models, with fastnn's state_dict keys, for the transformer
benchmark and the parity tests (imported only where torch is installed).

    TorchGPT(vocab_size, block_size, n_layer, n_head, n_embd, bias=True)
        nanoGPT's model.py as of its torch 2 version: F.scaled_dot_product_attention
        (is_causal=True) on views of c_attn's output, exact GELU, the LM head tied to
        wte; forward(idx) -> logits (B, T, V); generate_greedy(idx, n), which
        recomputes the whole context per token (nanoGPT keeps no cache).
    sdpa_block_forward(layer, x)
        the fastest formulation of TransformerEncoderLayer(norm_first=True,
        batch_first=True, activation="gelu", dropout=0) in torch: F.layer_norm,
        F.linear and F.scaled_dot_product_attention(is_causal=True) on the layer's
        own parameters (no mask tensor, no MultiheadAttention wrapper).
"""
import torch
import torch.nn as tnn
import torch.nn.functional as F


class _LayerNorm(tnn.Module):
    """nanoGPT's LayerNorm with an optional bias."""

    def __init__(self, n, bias):
        super().__init__()
        self.weight = tnn.Parameter(torch.ones(n))
        self.bias = tnn.Parameter(torch.zeros(n)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class _Attention(tnn.Module):
    def __init__(self, C, H, bias):
        super().__init__()
        self.c_attn = tnn.Linear(C, 3 * C, bias=bias)
        self.c_proj = tnn.Linear(C, C, bias=bias)
        self.n_head = H

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (a.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for a in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class _MLP(tnn.Module):
    def __init__(self, C, bias):
        super().__init__()
        self.c_fc = tnn.Linear(C, 4 * C, bias=bias)
        self.gelu = tnn.GELU()
        self.c_proj = tnn.Linear(4 * C, C, bias=bias)

    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


class _Block(tnn.Module):
    def __init__(self, C, H, bias):
        super().__init__()
        self.ln_1 = _LayerNorm(C, bias)
        self.attn = _Attention(C, H, bias)
        self.ln_2 = _LayerNorm(C, bias)
        self.mlp = _MLP(C, bias)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(tnn.Module):
    def __init__(self, vocab_size, block_size, n_layer, n_head, n_embd, bias=True):
        super().__init__()
        self.block_size = block_size
        self.transformer = tnn.ModuleDict(dict(
            wte=tnn.Embedding(vocab_size, n_embd), wpe=tnn.Embedding(block_size, n_embd),
            drop=tnn.Dropout(0.0),
            h=tnn.ModuleList(_Block(n_embd, n_head, bias) for _ in range(n_layer)),
            ln_f=_LayerNorm(n_embd, bias)))
        self.lm_head = tnn.Linear(n_embd, vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    def forward(self, idx):
        t = self.transformer
        x = t.drop(t.wte(idx) + t.wpe(torch.arange(idx.shape[1])))
        for block in t.h:
            x = block(x)
        return self.lm_head(t.ln_f(x))

    @torch.no_grad()
    def generate_greedy(self, idx, max_new_tokens):
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.block_size:])[:, -1]
            idx = torch.cat([idx, logits.argmax(dim=-1, keepdim=True)], dim=1)
        return idx


def sdpa_block_forward(layer, x):
    """layer: a torch TransformerEncoderLayer(norm_first=True, batch_first=True, gelu)."""
    B, T, d = x.shape
    H = layer.self_attn.num_heads
    sa = layer.self_attn
    h = F.layer_norm(x, (d,), layer.norm1.weight, layer.norm1.bias, layer.norm1.eps)
    q, k, v = F.linear(h, sa.in_proj_weight, sa.in_proj_bias).split(d, dim=2)
    q, k, v = (a.view(B, T, H, d // H).transpose(1, 2) for a in (q, k, v))
    a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, d)
    x = x + F.linear(a, sa.out_proj.weight, sa.out_proj.bias)
    h = F.layer_norm(x, (d,), layer.norm2.weight, layer.norm2.bias, layer.norm2.eps)
    return x + F.linear(F.gelu(F.linear(h, layer.linear1.weight, layer.linear1.bias)),
                        layer.linear2.weight, layer.linear2.bias)
