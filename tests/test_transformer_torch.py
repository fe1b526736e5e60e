"""PyTorch parity of the Transformer layers: TransformerEncoderLayer and
TransformerDecoderLayer over batch_first, norm_first, both activations (and an
activation module), bias, masks of each kind and is_causal; TransformerEncoder /
TransformerDecoder stacks with a final norm (layers deep-copied as torch); outputs,
input gradients and every parameter gradient; state_dict keys both ways."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastnn import nn  # noqa: E402
from test_norm_torch import close  # noqa: E402
from test_nn_torch import torch_setup  # noqa: E402,F401


def sync(fm, tm):
    assert list(fm.state_dict()) == list(tm.state_dict())
    fm.load_state_dict({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})


def check_grads(fm, tm):
    tparams = dict(tm.named_parameters())
    assert [n for n, _ in fm.named_parameters()] == list(tparams)
    for name, p in fm.named_parameters():
        close(p.grad, tparams[name].grad, f"{name}.grad")


def rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def layout(batch_first, N, T, d):
    return (N, T, d) if batch_first else (T, N, d)


def check_decoder(fm, tm, x, mem, rng, torch_kwargs=(), **kwargs):
    """fm(x, mem, **kwargs) against tm with the same masks (as tensors) and
    torch_kwargs: output, both input gradients, every parameter gradient."""
    xt, mt = torch.tensor(x, requires_grad=True), torch.tensor(mem, requires_grad=True)
    tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    yt = tm(xt, mt, **tkw, **dict(torch_kwargs))
    y = fm(x, mem, **kwargs)
    close(y, yt, "output")
    g = rand(rng, y.shape)
    yt.backward(torch.tensor(g))
    dx, dmem = fm.backward(g)
    close(dx, xt.grad, "tgt grad")
    close(dmem, mt.grad, "memory grad")
    check_grads(fm, tm)


MASKS = ["none", "causal", "causal_flag_only", "float", "key_padding"]


def masks(kind, N, T, rng):
    """(fastnn kwargs, torch kwargs) of the encoder layer's masks."""
    causal = np.triu(np.full((T, T), -np.inf, np.float32), 1)
    if kind == "none":
        return {}, {}
    if kind == "causal":
        return ({"src_mask": causal, "is_causal": True},
                {"src_mask": torch.tensor(causal), "is_causal": True})
    if kind == "causal_flag_only":  # torch needs the mask as well; fastnn does not
        return {"is_causal": True}, {"src_mask": torch.tensor(causal), "is_causal": True}
    if kind == "float":
        m = rand(rng, (T, T))
        return {"src_mask": m}, {"src_mask": torch.tensor(m)}
    kpm = np.zeros((N, T), bool)
    kpm[1, T - 3:] = True
    return {"src_key_padding_mask": kpm}, {"src_key_padding_mask": torch.tensor(kpm)}


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu", "gelu_tanh_module"])
@pytest.mark.parametrize("mask", MASKS)
def test_encoder_layer(rng, batch_first, norm_first, activation, mask):
    N, T, d, H = 3, 9, 16, 4
    t_act = torch.nn.GELU(approximate="tanh") if activation == "gelu_tanh_module" else activation
    f_act = nn.GELU(approximate="tanh") if activation == "gelu_tanh_module" else activation
    kw = dict(dim_feedforward=40, dropout=0.0, batch_first=batch_first, norm_first=norm_first,
              bias=activation != "gelu")
    tm = torch.nn.TransformerEncoderLayer(d, H, activation=t_act, **kw)
    fm = nn.TransformerEncoderLayer(d, H, activation=f_act, **kw)
    sync(fm, tm)
    fkw, tkw = masks(mask, N, T, rng)
    x = rand(rng, layout(batch_first, N, T, d))
    xt = torch.tensor(x, requires_grad=True)
    yt = tm(xt, **tkw)
    y = fm(x, **fkw)
    close(y, yt, "output")
    g = rand(rng, y.shape)
    yt.backward(torch.tensor(g))
    close(fm.backward(g), xt.grad, "input grad")
    check_grads(fm, tm)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_decoder_layer(rng, batch_first, norm_first, activation):
    N, T, S, d, H = 2, 7, 5, 16, 2
    kw = dict(dim_feedforward=24, dropout=0.0, batch_first=batch_first, norm_first=norm_first,
              activation=activation)
    tm = torch.nn.TransformerDecoderLayer(d, H, **kw)
    fm = nn.TransformerDecoderLayer(d, H, **kw)
    sync(fm, tm)
    x, mem = rand(rng, layout(batch_first, N, T, d)), rand(rng, layout(batch_first, N, S, d))
    causal = nn.generate_square_subsequent_mask(T)
    mkpm = np.zeros((N, S), bool)
    mkpm[0, -2:] = True
    check_decoder(fm, tm, x, mem, rng, tgt_mask=causal, memory_key_padding_mask=mkpm,
                  tgt_is_causal=True)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_stack_trains_like_torch(rng, norm_first):
    d, H = 16, 4
    tl = torch.nn.TransformerEncoderLayer(d, H, 32, 0.0, batch_first=True, norm_first=norm_first)
    tm = torch.nn.TransformerEncoder(tl, 3, norm=torch.nn.LayerNorm(d), enable_nested_tensor=False)
    fl = nn.TransformerEncoderLayer(d, H, 32, 0.0, batch_first=True, norm_first=norm_first)
    fm = nn.TransformerEncoder(fl, 3, norm=nn.LayerNorm(d))
    sync(fm, tm)
    mask = nn.generate_square_subsequent_mask(6)
    for step in range(2):
        fm.zero_grad()
        tm.zero_grad()
        x = rand(rng, (2, 6, d))
        xt = torch.tensor(x, requires_grad=True)
        yt = tm(xt, mask=torch.tensor(mask), is_causal=True)
        y = fm(x, mask=mask)  # is_causal=None detects the causal mask
        close(y, yt, f"step {step} output")
        g = rand(rng, y.shape)
        yt.backward(torch.tensor(g))
        close(fm.backward(g), xt.grad, f"step {step} input grad")
        check_grads(fm, tm)


def test_stacks_copy_the_layer(rng):
    layer = nn.TransformerEncoderLayer(8, 2, 16, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2)
    a, b = enc.layers[0], enc.layers[1]
    assert a is not layer and a is not b
    np.testing.assert_array_equal(a.linear1.weight.data, b.linear1.weight.data)
    assert not np.shares_memory(a.linear1.weight.data, b.linear1.weight.data)
    tm = torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(8, 2, 16), 2,
                                     enable_nested_tensor=False)
    assert list(enc.state_dict()) == list(tm.state_dict())


def test_decoder_stack(rng):
    d, H = 16, 2
    tl = torch.nn.TransformerDecoderLayer(d, H, 24, 0.0)
    tm = torch.nn.TransformerDecoder(tl, 2, norm=torch.nn.LayerNorm(d))
    fm = nn.TransformerDecoder(nn.TransformerDecoderLayer(d, H, 24, 0.0), 2, norm=nn.LayerNorm(d))
    sync(fm, tm)
    x, mem = rand(rng, (5, 2, d)), rand(rng, (4, 2, d))
    # fastnn detects the causal mask (tgt_is_causal None); torch is told
    check_decoder(fm, tm, x, mem, rng, torch_kwargs={"tgt_is_causal": True},
                  tgt_mask=nn.generate_square_subsequent_mask(5))
