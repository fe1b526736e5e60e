"""PyTorch parity of nn.MultiheadAttention: every constructor option (batch_first,
bias, kdim/vdim, add_bias_kv, add_zero_attn), self- and cross-attention, masks of
each kind (bool and float attn_mask (L, S) and (N*H, L, S), key_padding_mask,
is_causal with its mask), need_weights / average_attn_weights, unbatched inputs:
outputs, weights, input gradients and every parameter gradient."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastnn import nn  # noqa: E402
from test_norm_torch import close  # noqa: E402
from test_nn_torch import torch_setup  # noqa: E402,F401


def pair(E, H, **kw):
    tm = torch.nn.MultiheadAttention(E, H, **kw)
    fm = nn.MultiheadAttention(E, H, **kw)
    assert list(fm.state_dict()) == list(tm.state_dict())
    fm.load_state_dict({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})
    return tm, fm


def check(rng, kw, N=3, L=7, S=7, E=16, H=4, self_attn=True, unbatched=False, **fwd):
    tm, fm = pair(E, H, **kw)
    bf = kw.get("batch_first", False)

    def shape(T, F):
        if unbatched:
            return (T, F)
        return (N, T, F) if bf else (T, N, F)

    x = rng.standard_normal(shape(L, E)).astype(np.float32)
    if self_attn:
        k = v = x
    else:
        k = rng.standard_normal(shape(S, kw.get("kdim") or E)).astype(np.float32)
        v = rng.standard_normal(shape(S, kw.get("vdim") or E)).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    kt = xt if self_attn else torch.tensor(k, requires_grad=True)
    vt = xt if self_attn else torch.tensor(v, requires_grad=True)
    tfwd = {n: torch.tensor(a) if isinstance(a, np.ndarray) else a for n, a in fwd.items()}
    ot, wt = tm(xt, kt, vt, **tfwd)
    o, w = fm(x, k, v, **fwd)
    close(o, ot, "output")
    if wt is None:
        assert w is None
    else:
        close(w, wt, "weights")
    g = rng.standard_normal(o.shape).astype(np.float32)
    ot.backward(torch.tensor(g))
    grads = fm.backward(g)
    if self_attn:
        close(grads[0] + grads[1] + grads[2], xt.grad, "input grad")
    else:
        for got, want, name in zip(grads, (xt, kt, vt), ("query", "key", "value")):
            close(got, want.grad, f"{name} grad")
    tparams = dict(tm.named_parameters())
    for name, p in fm.named_parameters():
        close(p.grad, tparams[name].grad, f"{name}.grad")


@pytest.mark.parametrize("kw", [{}, {"batch_first": True}, {"bias": False},
                                {"add_bias_kv": True}, {"add_zero_attn": True},
                                {"add_bias_kv": True, "add_zero_attn": True, "batch_first": True}])
@pytest.mark.parametrize("self_attn", [True, False])
def test_options(rng, kw, self_attn):
    check(rng, kw, S=7 if self_attn else 9, self_attn=self_attn)


def test_kdim_vdim(rng):
    check(rng, {"kdim": 5, "vdim": 6, "batch_first": True}, S=9, self_attn=False)


@pytest.mark.parametrize("average", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
def test_weights(rng, average, need_weights):
    check(rng, {"batch_first": True}, need_weights=need_weights, average_attn_weights=average)


def test_unbatched(rng):
    check(rng, {}, unbatched=True)
    check(rng, {"batch_first": True}, unbatched=True, self_attn=False, S=5)


@pytest.mark.parametrize("kind", ["bool2d", "float2d", "bool3d", "float3d", "kpm_bool",
                                  "kpm_float", "both", "causal"])
def test_masks(rng, kind):
    N, L, H = 3, 7, 4
    fwd = {}
    if kind == "bool2d":
        m = rng.random((L, L)) > 0.6
        np.fill_diagonal(m, False)
        fwd["attn_mask"] = m
    elif kind == "float2d":
        fwd["attn_mask"] = rng.standard_normal((L, L)).astype(np.float32)
    elif kind == "bool3d":
        m = rng.random((N * H, L, L)) > 0.6
        m[:, np.arange(L), np.arange(L)] = False
        fwd["attn_mask"] = m
    elif kind == "float3d":
        fwd["attn_mask"] = rng.standard_normal((N * H, L, L)).astype(np.float32)
    elif kind in ("kpm_bool", "both"):
        kpm = np.zeros((N, L), bool)
        kpm[1, 5:] = True
        kpm[2, 6] = True
        fwd["key_padding_mask"] = kpm
        if kind == "both":  # torch deprecates mixing a bool and a float mask: both bool
            m = rng.random((L, L)) > 0.7
            np.fill_diagonal(m, False)
            fwd["attn_mask"] = m
    elif kind == "kpm_float":
        fwd["key_padding_mask"] = rng.standard_normal((N, L)).astype(np.float32)
    else:
        fwd["attn_mask"] = np.triu(np.ones((L, L), bool), 1)
        fwd["is_causal"] = True
    check(rng, {"batch_first": True}, N=N, L=L, H=H, **fwd)


def test_dropout_zero_in_eval_and_dropout_weights_in_training(rng):
    tm, fm = pair(8, 2, dropout=0.5, batch_first=True)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    fm.eval()
    tm.eval()
    close(fm(x, x, x)[0], tm(*(torch.tensor(x),) * 3)[0], "eval output")
    fm.train()
    out, w = fm(x, x, x, average_attn_weights=False)
    # the dropped weights: every entry 0 or a softmax probability scaled by 2
    kept = w[w != 0]
    assert kept.size and np.all(kept <= 2.0 + 1e-6)
    fm.backward(np.ones_like(out))
