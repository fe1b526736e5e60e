"""MultiheadAttention and the Transformer layers without torch: finite differences
through every option that changes the arithmetic (packed self-attention, cross
attention with kdim/vdim, bias_k / zero_attn, masks, pre- and post-LN, both
activations, decoder layers), thread-count independence, save / load of layers and
stacks, and bad inputs (see test_multihead_attention_torch.py, test_transformer_torch.py
for PyTorch parity)."""
import numpy as np
import pytest

import fastnn
from fastnn import nn
from nn_checks import fd_multi


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("kw,cross,mask", [
    ({}, False, None), ({"batch_first": True}, False, "causal"),
    ({"kdim": 3, "vdim": 5, "batch_first": True}, True, "kpm"),
    ({"add_bias_kv": True, "add_zero_attn": True}, True, "float"), ({"bias": False}, True, None)])
def test_multihead_attention_finite_differences(rng, kw, cross, mask):
    fastnn.manual_seed(3)
    E, H, N, L, S = 8, 2, 2, 4, 5
    m = nn.MultiheadAttention(E, H, **kw)
    for p in m.parameters():
        p.data[...] = rand(rng, *p.shape) * 0.5
    bf = kw.get("batch_first", False)
    shape = (lambda T, F: (N, T, F) if bf else (T, N, F))
    q = rand(rng, *shape(L, E))
    if cross:
        k, v = rand(rng, *shape(S, kw.get("kdim", E))), rand(rng, *shape(S, kw.get("vdim", E)))
    fwd = {}
    if mask == "causal":
        fwd["is_causal"] = True
    elif mask == "kpm":
        kpm = np.zeros((N, S), bool)
        kpm[1, -2:] = True
        fwd["key_padding_mask"] = kpm
    elif mask == "float":
        fwd["attn_mask"] = rand(rng, L, S)
    if cross:
        fd_multi(lambda a, b, c: m(a, b, c, **fwd)[0], lambda g: m.backward(g), [q, k, v],
                 list(m.named_parameters()), rng)
    else:
        fd_multi(lambda a: m.forward_self(a, **fwd)[0], lambda g: (m.backward(g),), [q],
                 list(m.named_parameters()), rng)


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_layers_finite_differences(rng, norm_first, activation):
    fastnn.manual_seed(5)  # fixed weights: no ReLU input sits within a step of its kink
    enc = nn.TransformerEncoderLayer(8, 2, 12, 0.0, activation, batch_first=True,
                                     norm_first=norm_first)
    dec = nn.TransformerDecoderLayer(8, 2, 12, 0.0, activation, batch_first=True,
                                     norm_first=norm_first)
    for p in list(enc.parameters()) + list(dec.parameters()):
        p.data[...] += rand(rng, *p.shape) * 0.2
    x, mem = rand(rng, 2, 5, 8), rand(rng, 2, 4, 8)
    eps = 1e-3 if activation == "relu" else 1e-2  # a step across ReLU's kink breaks the check
    fd_multi(lambda a: enc(a, is_causal=True), lambda g: (enc.backward(g),), [x],
             list(enc.named_parameters()), rng, eps)
    fd_multi(lambda a, b: dec(a, b, tgt_is_causal=True), lambda g: dec.backward(g), [x, mem],
             list(dec.named_parameters()), rng, eps)


def test_threads_give_identical_bits(rng):
    fastnn.manual_seed(0)
    layer = nn.TransformerEncoderLayer(32, 4, 64, 0.0, "gelu", batch_first=True, norm_first=True)
    x, g = rand(rng, 3, 70, 32), rand(rng, 3, 70, 32)
    results = []
    for n in (1, 2, 3):
        with fastnn.num_threads(n):
            layer.zero_grad()
            y = layer(x, is_causal=True)
            dx = layer.backward(g)
            results.append([y, dx] + [p.grad.copy() for p in layer.parameters()])
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


def test_save_and_load_layers_and_stacks(tmp_path, rng):
    models = [nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True), 2,
                                    norm=nn.LayerNorm(8)),
              nn.TransformerDecoderLayer(8, 2, 16, batch_first=True, norm_first=True),
              nn.Transformer(8, 2, 1, 2, 16, batch_first=True)]
    x, mem = rand(rng, 2, 5, 8), rand(rng, 2, 3, 8)
    for i, m in enumerate(models):
        m.eval()
        path = tmp_path / f"m{i}.fastnn"
        fastnn.save(m, path)
        loaded = fastnn.load(path).eval()
        args = (x,) if i == 0 else (x, mem)
        np.testing.assert_array_equal(loaded(*args), m(*args))
        assert type(loaded) is type(m)


@pytest.mark.parametrize("activation", [nn.GELU("tanh"), nn.SiLU(), nn.LeakyReLU(0.1)])
def test_layers_with_activation_modules_save_and_load(tmp_path, rng, activation):
    """A module activation is saved by class and options ([class, option, value, ...]);
    one the GEMM epilogue has stays fused into linear1, the others are a child module."""
    layer = nn.TransformerEncoderLayer(8, 2, 16, 0.0, activation, batch_first=True)
    assert layer.get_config()["activation"][0] == type(activation).__name__
    fastnn.save(layer, tmp_path / "layer.fastnn")
    loaded = fastnn.load(tmp_path / "layer.fastnn")
    x = rand(rng, 2, 5, 8)
    np.testing.assert_array_equal(loaded(x), layer(x))
    assert ("activation" in dict(loaded.named_children())) == (activation.epilogue is None)
    with pytest.raises(ValueError, match="activation must name"):
        nn.TransformerEncoderLayer(8, 2, 16, activation=["Linear", "in_features", 3])


def test_encoder_copies_are_independent(rng):
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), 3)
    assert len(enc.layers) == 3
    enc.layers[0].linear1.weight.data[...] = 0
    assert enc.layers[1].linear1.weight.data.any()


@pytest.mark.parametrize("call,exc,match", [
    (lambda: nn.MultiheadAttention(10, 3), ValueError, "divisible by num_heads"),
    (lambda: nn.MultiheadAttention(8, 2)(np.zeros((3, 2, 8)), np.zeros((3, 2, 8)),
                                         np.zeros((3, 2, 8)), attn_mask=np.zeros((4, 4))),
     ValueError, "attn_mask must have shape"),
    (lambda: nn.MultiheadAttention(8, 2)(np.zeros((3, 2, 8)), np.zeros((3, 2, 8)),
                                         np.zeros((3, 2, 8)), key_padding_mask=np.zeros((3, 3))),
     ValueError, "key_padding_mask must have shape"),
    (lambda: nn.MultiheadAttention(8, 2)(np.zeros((3, 2, 7)), np.zeros((3, 2, 8)),
                                         np.zeros((3, 2, 8))), ValueError, "8 features"),
    (lambda: nn.MultiheadAttention(8, 2)(np.zeros((3, 2, 8)), np.zeros((4, 2, 8)),
                                         np.zeros((3, 2, 8))), ValueError, "same batch"),
    (lambda: nn.TransformerEncoderLayer(8, 2, 16)(np.zeros((3, 2, 6))), ValueError, "src must"),
    (lambda: nn.TransformerEncoderLayer(8, 2, 16, activation="tanh"), ValueError, "activation"),
    (lambda: nn.TransformerEncoder("layer", 2), TypeError, "encoder_layer"),
])
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
