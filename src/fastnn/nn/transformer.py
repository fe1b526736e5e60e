"""Transformer layers with PyTorch's arguments, submodules and state_dict keys:
TransformerEncoderLayer, TransformerEncoder, TransformerDecoderLayer,
TransformerDecoder, on MultiheadAttention, Linear (activation in its GEMM
epilogue) and LayerNorm (residual add fused into it for post-LN).

Each layer is a stack of residual sub-layers (self-attention, cross-attention,
feed-forward), each `x + dropout(f(norm(x)))` with norm_first (pre-LN) or
`norm(x + dropout(f(x)))` without (post-LN, the default). Layouts are (T, N, E)
unless batch_first. activation is "relu", "gelu" or a fastnn activation module
(nn.ReLU(), nn.GELU(approximate="tanh"), nn.SiLU(), ...; one the GEMM epilogue has is
fused into linear1; get_config saves a module as [class, option, value, ...]).
Pre-LN runs each residual add fused with the next norm. backward(grad) returns the input
gradient (the decoder: (grad_tgt, grad_memory)); parameter gradients accumulate.

As PyTorch, TransformerEncoder / TransformerDecoder deep-copy the layer they are
given num_layers times (every layer starts from the same weights), and is_causal
None detects a causal float mask (generate_square_subsequent_mask). Unlike
PyTorch, is_causal=True needs no mask, and eval mode runs the same kernels as
training (there is no separate fast path that ignores the masks).
"""
from __future__ import annotations

import copy

import numpy as np

from fastnn._args import check_int, check_real
from fastnn.nn.attention import MultiheadAttention
from fastnn.nn.batchnorm import check_device_dtype
from fastnn.nn.container_protocol import Container
from fastnn.nn.containers import ModuleList
from fastnn.nn.dropout import Dropout
from fastnn.nn.linear import Linear
from fastnn.nn.module import Module, to_float32
from fastnn.nn.normalization import LayerNorm


def generate_square_subsequent_mask(sz: int, device=None, dtype=None) -> np.ndarray:
    """The (sz, sz) float mask with -inf above the diagonal and 0 elsewhere (torch's
    nn.Transformer.generate_square_subsequent_mask)."""
    sz = check_int(sz, "sz", 1)
    return np.triu(np.full((sz, sz), -np.inf, np.float32), 1)


def _is_causal_mask(mask) -> bool:
    """Whether mask is the square causal mask (float -inf / bool True above the diagonal)."""
    if mask is None:
        return False
    m = np.asarray(mask)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        return False
    upper = np.triu(np.ones(m.shape, bool), 1)
    if m.dtype == np.bool_:
        return bool(np.array_equal(m, upper))
    return bool(np.all(np.isneginf(m[upper])) and np.all(m[~upper] == 0))


def _activation_from_config(spec: list) -> Module:
    """The activation module a saved config names: [class name, option, value, ...],
    the class one of fastnn.nn.activation's modules (JSON lists hold no dicts)."""
    from fastnn.nn import activation as activations
    cls = getattr(activations, str(spec[0]), None) if spec else None
    if not (isinstance(cls, type) and issubclass(cls, Module)) or len(spec) % 2 != 1:
        raise ValueError(f"activation must name a fastnn.nn activation module as [class, "
                         f"option, value, ...], got {spec!r}")
    return cls(**dict(zip(spec[1::2], spec[2::2])))


def _activation(activation):
    """(epilogue name or None, module or None, JSON form) of torch's activation argument:
    "relu", "gelu", a fastnn activation module, or its JSON form [class, option, value,
    ...] (what get_config saves).
    A module whose activation the GEMM epilogue has (nn.ReLU(), nn.GELU("tanh"), ...) is
    fused into linear1 like the names."""
    if isinstance(activation, (list, tuple)):
        activation = _activation_from_config(list(activation))
    if isinstance(activation, str):
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu', 'gelu' or a fastnn activation module, "
                             f"got {activation!r}")
        return activation, None, activation
    if isinstance(activation, Module):
        spec = [type(activation).__name__]
        for option, value in activation.get_config().items():
            spec += [option, value]
        if activation.epilogue in Linear.epilogues:
            return activation.epilogue, None, spec
        return None, activation, spec
    raise TypeError(f"activation must be 'relu', 'gelu' or a fastnn activation module, got "
                    f"{type(activation).__name__}")


class _TransformerLayer(Module):
    """What encoder and decoder layers share: torch's constructor arguments, the
    attention, feed-forward and norm submodules (registered in torch's order), the
    residual sub-layer pattern, the config and the state shapes. A subclass names its
    attention submodules in `_attentions`; it has one norm and dropout more than those."""

    _attentions: tuple = ()

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True,
                 device=None, dtype=None):
        super().__init__()
        check_device_dtype(device, dtype)
        self.d_model = check_int(d_model, "d_model", 1)
        self.nhead = check_int(nhead, "nhead", 1)
        self.dim_feedforward = check_int(dim_feedforward, "dim_feedforward", 1)
        p = check_real(dropout, "dropout", 0.0, 1.0)
        self.layer_norm_eps = check_real(layer_norm_eps, "layer_norm_eps", 0.0)
        self.batch_first = bool(batch_first)
        self.norm_first = bool(norm_first)
        self._bias = bool(bias)
        self._epilogue, self._activation_module, self._activation_config = \
            _activation(activation)
        for name in self._attentions:
            setattr(self, name, MultiheadAttention(d_model, nhead, dropout=p, bias=bias,
                                                   batch_first=batch_first))
        self._init_feedforward(p, len(self._attentions) + 1)

    def _init_feedforward(self, p, norms):
        """linear1, dropout, linear2, then norm1.. and dropout1.. (norms of each), in
        torch's registration order."""
        d, bias = self.d_model, self._bias
        self.linear1 = Linear(d, self.dim_feedforward, bias=bias)
        self.dropout = Dropout(p)
        self.linear2 = Linear(self.dim_feedforward, d, bias=bias)
        for i in range(1, norms + 1):
            setattr(self, f"norm{i}", LayerNorm(d, eps=self.layer_norm_eps, bias=bias))
        for i in range(1, norms + 1):
            setattr(self, f"dropout{i}", Dropout(p))
        if self._activation_module is not None:
            self.activation = self._activation_module

    # ---- the feed-forward block --------------------------------------------------------
    def _ff(self, x):
        if self._activation_module is None:
            h = self.linear1.forward_fused(x, self._epilogue)
        else:
            h = self.activation(self.linear1(x))
        return self.linear2(self.dropout(h))

    def _ff_backward(self, g):
        g = self.dropout.backward(self.linear2.backward(g))
        if self._activation_module is not None:
            g = self.activation.backward(g)
        return self.linear1.backward(g)

    # ---- the residual sub-layers ------------------------------------------------------
    def _sublayers(self, x, subs):
        """The residual sub-layers subs [(norm, drop, f), ...] in order: each
        x + drop(f(norm(x))) (norm_first), else norm(x + drop(f(x))). Pre-LN runs each
        residual add fused with the next sub-layer's norm (LayerNorm.forward_add)."""
        if not self.norm_first:
            for norm, drop, f in subs:
                x = norm.forward_add(x, drop(f(x)))[1]
            return x
        h = subs[0][0](x)
        for i, (_, drop, f) in enumerate(subs):
            y = drop(f(h))
            if i + 1 < len(subs):
                x, h = subs[i + 1][0].forward_add(x, y)
            else:
                x = x + y
        return x

    def _sub_backward(self, g, norm, drop, f_backward):
        """The input gradient of one sub-layer given its output's gradient g (float32,
        owned), the sub-layers taken in reverse order."""
        if self.norm_first:
            return norm.backward(f_backward(drop.backward(g)), grad_input=g)
        ds = norm.backward(g)
        ds += f_backward(drop.backward(ds))
        return ds

    def _own(self, grad):
        """The incoming gradient as a float32 array this backward may write into."""
        g = to_float32(grad, "grad_out")
        return g.copy()

    def get_config(self) -> dict:
        return {"d_model": self.d_model, "nhead": self.nhead,
                "dim_feedforward": self.dim_feedforward, "dropout": self.dropout.p,
                "activation": self._activation_config, "layer_norm_eps": self.layer_norm_eps,
                "batch_first": self.batch_first, "norm_first": self.norm_first,
                "bias": self._bias}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_bool, config_int
        d, ff = config_int(config, "d_model", 1), config_int(config, "dim_feedforward", 1)
        bias = config_bool(config, "bias")
        mha = MultiheadAttention.state_shapes({"embed_dim": d, "num_heads": 1, "bias": bias,
                                               "add_bias_kv": False, "kdim": d, "vdim": d})
        state = {f"{a}.{k}": v for a in cls._attentions for k, v in mha.items()}
        for name, shape in (("linear1", (ff, d)), ("linear2", (d, ff))):
            state[f"{name}.weight"] = (shape, "F32")
            if bias:
                state[f"{name}.bias"] = ((shape[0],), "F32")
        for i in range(1, len(cls._attentions) + 2):
            state[f"norm{i}.weight"] = ((d,), "F32")
            if bias:
                state[f"norm{i}.bias"] = ((d,), "F32")
        return state

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, nhead={self.nhead}, norm_first={self.norm_first}"


class TransformerEncoderLayer(_TransformerLayer):
    """torch.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward=2048,
    dropout=0.1, activation="relu", layer_norm_eps=1e-5, batch_first=False,
    norm_first=False, bias=True); forward(src, src_mask=None,
    src_key_padding_mask=None, is_causal=False)."""

    _attentions = ("self_attn",)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal: bool = False):
        x = to_float32(src, "src")
        if x.ndim not in (2, 3) or x.shape[-1] != self.d_model:
            raise ValueError(f"src must be (T, N, {self.d_model}), (N, T, {self.d_model}) with "
                             f"batch_first, or unbatched (T, {self.d_model}), got {x.shape}")

        def attend(h):
            return self.self_attn.forward_self(h, src_key_padding_mask, False, src_mask,
                                               is_causal=bool(is_causal))[0]
        return self._sublayers(x, [(self.norm1, self.dropout1, attend),
                                   (self.norm2, self.dropout2, self._ff)])

    def backward(self, grad_out, input_grad: bool = True):
        g = self._sub_backward(self._own(grad_out), self.norm2, self.dropout2, self._ff_backward)
        return self._sub_backward(g, self.norm1, self.dropout1, self.self_attn.backward)



class TransformerDecoderLayer(_TransformerLayer):
    """torch.nn.TransformerDecoderLayer (the encoder layer's arguments);
    forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False);
    backward returns (grad_tgt, grad_memory)."""

    _attentions = ("self_attn", "multihead_attn")

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False):
        x = to_float32(tgt, "tgt")
        mem = to_float32(memory, "memory")
        if x.ndim not in (2, 3) or x.shape[-1] != self.d_model or mem.ndim != x.ndim \
                or mem.shape[-1] != self.d_model:
            raise ValueError(f"tgt and memory must both be (T, N, {self.d_model}), "
                             f"(N, T, {self.d_model}) with batch_first, or unbatched, got "
                             f"{x.shape} and {mem.shape}")

        def attend(h):
            return self.self_attn.forward_self(h, tgt_key_padding_mask, False, tgt_mask,
                                               is_causal=bool(tgt_is_causal))[0]

        def cross(h):
            return self.multihead_attn(h, mem, mem, memory_key_padding_mask, False, memory_mask,
                                       is_causal=bool(memory_is_causal))[0]
        return self._sublayers(x, [(self.norm1, self.dropout1, attend),
                                   (self.norm2, self.dropout2, cross),
                                   (self.norm3, self.dropout3, self._ff)])

    def backward(self, grad_out, input_grad: bool = True):
        dmem = []

        def cross_backward(g):
            dq, dk, dv = self.multihead_attn.backward(g)
            dmem.append(dk + dv)
            return dq
        g = self._sub_backward(self._own(grad_out), self.norm3, self.dropout3, self._ff_backward)
        g = self._sub_backward(g, self.norm2, self.dropout2, cross_backward)
        g = self._sub_backward(g, self.norm1, self.dropout1, self.self_attn.backward)
        return g, dmem[0]



def _clones(layer: Module, n: int, name: str) -> ModuleList:
    if not isinstance(layer, Module):
        raise TypeError(f"{name} must be a fastnn module, got {type(layer).__name__}")
    return ModuleList(copy.deepcopy(layer) for _ in range(check_int(n, "num_layers", 1)))


def _stack_from_children(cls, children):
    """A stack rebuilt by fastnn.load: its children "layers" (and "norm"), no copies."""
    parts = dict(children)
    layers = parts.get("layers")
    if not isinstance(layers, ModuleList) or set(parts) - {"layers", "norm"}:
        raise ValueError(f"{cls.__name__} is rebuilt from children \"layers\" (a ModuleList) "
                         f"and optionally \"norm\", got {list(parts)}")
    stack = cls.__new__(cls)
    Module.__init__(stack)
    stack.layers, stack.num_layers, stack.norm = layers, len(layers), parts.get("norm")
    return stack


class TransformerEncoder(Container, Module):
    """torch.nn.TransformerEncoder(encoder_layer, num_layers, norm=None,
    enable_nested_tensor=True, mask_check=True): num_layers deep copies of
    encoder_layer, then norm; forward(src, mask=None, src_key_padding_mask=None,
    is_causal=None). enable_nested_tensor and mask_check are accepted and have no
    effect (no nested tensors here)."""

    def __init__(self, encoder_layer, num_layers: int, norm=None,
                 enable_nested_tensor: bool = True, mask_check: bool = True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers, "encoder_layer")
        self.num_layers = len(self.layers)
        self.norm = norm

    @classmethod
    def from_children(cls, children, **config):
        return _stack_from_children(cls, children)

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        causal = _is_causal_mask(mask) if is_causal is None else bool(is_causal)
        x = src
        for layer in self.layers:
            x = layer(x, mask, src_key_padding_mask, causal)
        return x if self.norm is None else self.norm(x)

    def backward(self, grad_out, input_grad: bool = True):
        g = grad_out if self.norm is None else self.norm.backward(grad_out)
        for layer in reversed(list(self.layers)):
            g = layer.backward(g)
        return g


class TransformerDecoder(Container, Module):
    """torch.nn.TransformerDecoder(decoder_layer, num_layers, norm=None);
    forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False);
    backward returns (grad_tgt, grad_memory), memory's summed over the layers."""

    def __init__(self, decoder_layer, num_layers: int, norm=None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers, "decoder_layer")
        self.num_layers = len(self.layers)
        self.norm = norm

    @classmethod
    def from_children(cls, children, **config):
        return _stack_from_children(cls, children)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal: bool = False):
        causal = _is_causal_mask(tgt_mask) if tgt_is_causal is None else bool(tgt_is_causal)
        x = tgt
        for layer in self.layers:
            x = layer(x, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                      memory_key_padding_mask, causal, memory_is_causal)
        return x if self.norm is None else self.norm(x)

    def backward(self, grad_out, input_grad: bool = True):
        g = grad_out if self.norm is None else self.norm.backward(grad_out)
        dmem = None
        for layer in reversed(list(self.layers)):
            g, dm = layer.backward(g)
            dmem = dm if dmem is None else dmem + dm
        return g, dmem


class Transformer(Container, Module):
    """torch.nn.Transformer(d_model=512, nhead=8, num_encoder_layers=6,
    num_decoder_layers=6, dim_feedforward=2048, dropout=0.1, activation="relu",
    custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
    batch_first=False, norm_first=False, bias=True): an encoder and a decoder stack,
    each ending in a LayerNorm. forward(src, tgt, src_mask=None, tgt_mask=None,
    memory_mask=None, src_key_padding_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
    memory_is_causal=False); backward returns (grad_src, grad_tgt)."""

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation="relu", custom_encoder=None, custom_decoder=None,
                 layer_norm_eps: float = 1e-5, batch_first: bool = False,
                 norm_first: bool = False, bias: bool = True, device=None, dtype=None):
        super().__init__()
        args = dict(dim_feedforward=dim_feedforward, dropout=dropout, activation=activation,
                    layer_norm_eps=layer_norm_eps, batch_first=batch_first,
                    norm_first=norm_first, bias=bias, device=device, dtype=dtype)
        self.encoder = custom_encoder if custom_encoder is not None else TransformerEncoder(
            TransformerEncoderLayer(d_model, nhead, **args), num_encoder_layers,
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        self.decoder = custom_decoder if custom_decoder is not None else TransformerDecoder(
            TransformerDecoderLayer(d_model, nhead, **args), num_decoder_layers,
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        self.d_model, self.nhead, self.batch_first = d_model, nhead, bool(batch_first)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    def container_config(self) -> dict:
        return {"d_model": self.d_model, "nhead": self.nhead, "batch_first": self.batch_first}

    @classmethod
    def from_children(cls, children, **config):
        parts = dict(children)
        if set(parts) != {"encoder", "decoder"}:
            raise ValueError(f"Transformer is rebuilt from children \"encoder\" and "
                             f"\"decoder\", got {list(parts)}")
        model = cls.__new__(cls)
        Module.__init__(model)
        model.encoder, model.decoder = parts["encoder"], parts["decoder"]
        model.d_model, model.nhead = config["d_model"], config["nhead"]
        model.batch_first = bool(config["batch_first"])
        return model

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal: bool = False):
        memory = self.encoder(src, src_mask, src_key_padding_mask, src_is_causal)
        return self.decoder(tgt, memory, tgt_mask, memory_mask, tgt_key_padding_mask,
                            memory_key_padding_mask, tgt_is_causal, memory_is_causal)

    def backward(self, grad_out, input_grad: bool = True):
        dtgt, dmemory = self.decoder.backward(grad_out)
        return self.encoder.backward(dmemory), dtgt
