"""Transformer cases: one timed call is one training step, one attention forward and
backward, or one generation; rates are tokens per second.

    block        TransformerEncoderLayer(128, 4, 512, dropout 0, gelu, norm_first,
                 batch_first) with is_causal, MSE loss, AdamW (lr 1e-3); B=8, T=128
                 torch: the fastest of a hand-written block on F.scaled_dot_product_attention
                 (is_causal=True) and its own TransformerEncoderLayer (src_mask + is_causal)
    block_layer  the same against torch's TransformerEncoderLayer alone
    gpt          fastnn.models.GPT(vocab 96, block 128, 4 layers, 4 heads, d 128), batch 16,
                 cross-entropy over every position, AdamW (lr 1e-3);
                 torch: fastnn.bench.torch_models.TorchGPT (nanoGPT's model.py)
    attn128      causal attention forward + backward, (B, H, T, hd) = (8, 4, 128, 32):
                 ops.scaled_dot_product_attention(_backward) vs F.scaled_dot_product_attention
    attn512      the same at (2, 4, 512, 32)
    generate     gpt's model generating 100 tokens after a 1-token prompt, batch 1, greedy:
                 fastnn with its KV cache, torch recomputing the context per token
                 (nanoGPT's generate keeps no cache)

fastnn  the modules above, model.backward(loss_fn.backward()), optim.AdamW
numpy   block only: fastnn.baselines.numpy_transformer.NumpyTransformerBlock
torch   as listed, loss.backward(), torch.optim.AdamW

Inputs (seeded by case id, identical in every process): x, y ~ N(0, 1) or uniform token
ids, and the initial weights of the fastnn model built after fastnn.manual_seed(seed);
every library loads them. The check compares the loss of the third step (two warm-up
steps first), dq of the attention, or the generated tokens with fastnn's.
"""
from __future__ import annotations

import dataclasses
from typing import Dict

import numpy as np

from .cases_mlp import MlpCase, TrainingOp, _warmed
from .core import normal, wanted_ops

ADAMW = ("adamw", (("lr", 1e-3),))
D, HEADS, FF = 128, 4, 512
VOCAB, BLOCK, LAYERS = 96, 128, 4
NEW_TOKENS = 100


@dataclasses.dataclass(frozen=True)
class TransformerOp(TrainingOp):
    text: str = ""

    def describe(self) -> str:
        return self.text


@dataclasses.dataclass(frozen=True)
class TransformerCase(MlpCase):
    """shape is (tokens per call, ...); rates are tokens per second."""
    suite = "transformer"
    unit = "tokens"

    @property
    def batch(self) -> int:
        return self.shape[0]

    @property
    def layers(self) -> int:
        return 1


def _seeded(rng):
    import fastnn
    fastnn.manual_seed(int(rng.integers(1 << 31)))


def _fastnn_layer():
    from fastnn import nn
    return nn.TransformerEncoderLayer(D, HEADS, FF, 0.0, activation="gelu", batch_first=True,
                                      norm_first=True)


def _torch_layer():
    import torch
    return torch.nn.TransformerEncoderLayer(D, HEADS, FF, 0.0, activation="gelu",
                                            batch_first=True, norm_first=True)


def _gpt(lib_nn_models):
    return lib_nn_models.GPT(VOCAB, BLOCK, LAYERS, HEADS, D)


# ---- inputs --------------------------------------------------------------------------

def _block_inputs(rng, shape):
    _seeded(rng)
    _, B, T = shape
    state = {k: np.array(v) for k, v in _fastnn_layer().state_dict().items()}
    return {"state": state, "x": normal(rng, (B, T, D)), "y": normal(rng, (B, T, D))}


def _gpt_inputs(rng, shape):
    from fastnn import models
    _seeded(rng)
    _, B, T = shape
    state = {k: np.array(v) for k, v in _gpt(models).state_dict().items()}
    return {"state": state, "idx": rng.integers(0, VOCAB, (B, T), dtype=np.int64),
            "y": rng.integers(0, VOCAB, (B, T), dtype=np.int64)}


def _attention_inputs(rng, shape):
    _, B, H, T, hd = shape
    return {k: normal(rng, (B, H, T, hd)) for k in ("q", "k", "v", "g")}


# ---- fastnn ----------------------------------------------------------------------------

def _adamw(lib_optim, params):
    return lib_optim.AdamW(params, lr=1e-3)


def _fastnn_block(inputs):
    from fastnn import nn, optim
    layer = _fastnn_layer()
    layer.load_state_dict(inputs["state"])
    opt, loss_fn = _adamw(optim, layer.parameters()), nn.MSELoss()
    x, y = inputs["x"], inputs["y"]

    def step():
        loss = loss_fn(layer(x, is_causal=True), y)
        layer.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        opt.zero_grad()
        return loss
    return _warmed(step)


def _fastnn_gpt(inputs):
    from fastnn import models, nn, optim
    model = _gpt(models)
    model.load_state_dict(inputs["state"])
    opt, loss_fn = _adamw(optim, model.parameters()), nn.CrossEntropyLoss()
    idx, y = inputs["idx"], inputs["y"].reshape(-1)

    def step():
        logits = model(idx)
        loss = loss_fn(logits.reshape(-1, VOCAB), y)
        model.backward(loss_fn.backward().reshape(logits.shape))
        opt.step()
        opt.zero_grad()
        return loss
    return _warmed(step)


def _fastnn_attention(inputs):
    from fastnn import ops
    q, k, v, g = (inputs[n] for n in ("q", "k", "v", "g"))

    def call():
        out, ctx = ops.scaled_dot_product_attention(q, k, v, is_causal=True, return_context=True)
        return ops.scaled_dot_product_attention_backward(g, q, k, v, out, ctx)[0]
    return call


def _fastnn_generate(inputs):
    from fastnn import models
    model = _gpt(models)
    model.load_state_dict(inputs["state"])
    model.eval()
    prompt = inputs["idx"][:1, :1]
    return lambda: model.generate(prompt, NEW_TOKENS, top_k=1)


# ---- numpy -----------------------------------------------------------------------------

def _numpy_block(inputs):
    from fastnn.baselines.numpy_transformer import NumpyTransformerBlock
    net = NumpyTransformerBlock(D, HEADS, FF, lr=1e-3)
    net.load_state_dict(inputs["state"])
    x, y = inputs["x"], inputs["y"]
    return _warmed(lambda: net.train_step(x, y))


# ---- torch -----------------------------------------------------------------------------

def _torch_state(model, state):
    import torch
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})


def _torch_step(model, forward, loss_of):
    import torch
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        with torch.enable_grad():
            loss = loss_of(forward())
            loss.backward()
            opt.step()
            opt.zero_grad()
        return loss.item()
    return _warmed(step)


def _torch_block_formulations(inputs, which):
    import torch
    import torch.nn.functional as F
    from .torch_models import sdpa_block_forward
    x, y = torch.from_numpy(inputs["x"]), torch.from_numpy(inputs["y"])
    mask = torch.nn.Transformer.generate_square_subsequent_mask(x.shape[1])
    out = {}
    for name in which:
        layer = _torch_layer()
        _torch_state(layer, inputs["state"])
        forward = {"sdpa_block": lambda layer=layer: sdpa_block_forward(layer, x),
                   "encoder_layer": lambda layer=layer: layer(x, src_mask=mask, is_causal=True)}
        out[name] = _torch_step(layer, forward[name], lambda o: F.mse_loss(o, y))
    return out


def _torch_gpt(inputs):
    import torch
    import torch.nn.functional as F
    from .torch_models import TorchGPT
    model = TorchGPT(VOCAB, BLOCK, LAYERS, HEADS, D)
    _torch_state(model, inputs["state"])
    idx, y = torch.from_numpy(inputs["idx"]), torch.from_numpy(inputs["y"]).reshape(-1)
    return _torch_step(model, lambda: model(idx),
                       lambda logits: F.cross_entropy(logits.reshape(-1, VOCAB), y))


def _torch_attention(inputs):
    import torch
    import torch.nn.functional as F
    q, k, v = (torch.from_numpy(inputs[n]).requires_grad_() for n in ("q", "k", "v"))
    g = torch.from_numpy(inputs["g"])

    def call():
        q.grad = k.grad = v.grad = None
        with torch.enable_grad():
            F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)
        return q.grad.numpy()
    return call


def _torch_generate(inputs):
    import torch
    from .torch_models import TorchGPT
    model = TorchGPT(VOCAB, BLOCK, LAYERS, HEADS, D)
    _torch_state(model, inputs["state"])
    model.eval()
    prompt = torch.from_numpy(inputs["idx"][:1, :1])
    return lambda: model.generate_greedy(prompt, NEW_TOKENS).numpy()


# ---- the table -------------------------------------------------------------------------

def _op(name, make, impls, text, rtol=1e-3, atol=0.0, optimizer=ADAMW):
    return TransformerOp(name, make, impls, rtol=rtol, atol=atol, optimizer=optimizer,
                         text=text)


BLOCK_TEXT = (f"TransformerEncoderLayer({D}, {HEADS}, {FF}, gelu, norm_first) causal, MSE, "
              f"AdamW (lr 0.001)")
TRANSFORMER_OPS: Dict[str, TransformerOp] = {op.name: op for op in (
    _op("block", _block_inputs,
        {"fastnn": _fastnn_block, "numpy": _numpy_block,
         "torch": lambda i: _torch_block_formulations(i, ("sdpa_block", "encoder_layer"))},
        BLOCK_TEXT + "; torch: the faster of an SDPA block and its TransformerEncoderLayer"),
    _op("block_layer", _block_inputs,
        {"fastnn": _fastnn_block, "numpy": None,
         "torch": lambda i: _torch_block_formulations(i, ("encoder_layer",))},
        BLOCK_TEXT + "; torch: its TransformerEncoderLayer"),
    _op("gpt", _gpt_inputs, {"fastnn": _fastnn_gpt, "numpy": None, "torch": _torch_gpt},
        f"GPT(vocab {VOCAB}, block {BLOCK}, {LAYERS} layers, {HEADS} heads, d {D}), "
        f"cross-entropy, AdamW (lr 0.001)"),
    _op("attn128", _attention_inputs,
        {"fastnn": _fastnn_attention, "numpy": None, "torch": _torch_attention},
        "causal attention forward + backward, (B, H, T, hd) = (8, 4, 128, 32)",
        rtol=1e-3, atol=1e-5, optimizer=None),
    _op("attn512", _attention_inputs,
        {"fastnn": _fastnn_attention, "numpy": None, "torch": _torch_attention},
        "causal attention forward + backward, (B, H, T, hd) = (2, 4, 512, 32)",
        rtol=1e-3, atol=1e-5, optimizer=None),
    _op("generate", _gpt_inputs,
        {"fastnn": _fastnn_generate, "numpy": None, "torch": _torch_generate},
        f"gpt's model: {NEW_TOKENS} tokens after a 1-token prompt, batch 1, greedy; fastnn "
        f"with its KV cache, torch recomputing the context", rtol=0.0, optimizer=None),
)}
TRANSFORMER_OP_NAMES = tuple(TRANSFORMER_OPS)
# (size text, shape): shape[0] the tokens per call, then what make_inputs reads
_SHAPES = {"block": ("8x128", (1024, 8, 128)), "block_layer": ("8x128", (1024, 8, 128)),
           "gpt": ("16x128", (2048, 16, 128)), "attn128": ("8x4x128", (4096, 8, 4, 128, 32)),
           "attn512": ("2x4x512", (4096, 2, 4, 512, 32)),
           "generate": ("1x100", (NEW_TOKENS, 1, 1))}


def build_transformer_cases(ops=None) -> list:
    """The transformer case table (ids like "block/8x128"); `ops` keeps only those."""
    wanted = wanted_ops(TRANSFORMER_OP_NAMES, ops, "transformer")
    return [TransformerCase(TRANSFORMER_OPS[name], *_SHAPES[name])
            for name in TRANSFORMER_OP_NAMES if name in wanted]
