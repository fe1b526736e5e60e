"""PyTorch parity of fastnn.ops.scaled_dot_product_attention and its backward against
torch.nn.functional.scaled_dot_product_attention: shapes, causal, scale, bool and
float masks (broadcast), fully masked rows (torch's CPU kernel gives zeros)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from fastnn import ops  # noqa: E402
from test_norm_torch import close, leaf, randn  # noqa: E402
from test_nn_torch import torch_setup  # noqa: E402,F401


def run_both(rng, q, k, v, **kw):
    mask = kw.pop("attn_mask", None)
    qt, kt, vt = leaf(q), leaf(k), leaf(v)
    mt = None if mask is None else torch.from_numpy(np.array(mask))
    ot = F.scaled_dot_product_attention(qt, kt, vt, attn_mask=mt, **kw)
    out, ctx = ops.scaled_dot_product_attention(q, k, v, mask, return_context=True, **kw)
    close(out, ot, "out")
    g = randn(rng, out.shape)
    ot.backward(torch.from_numpy(g))
    for got, want, name in zip(ops.scaled_dot_product_attention_backward(g, q, k, v, out, ctx),
                               (qt.grad, kt.grad, vt.grad), ("dq", "dk", "dv")):
        close(got, want, name)


@pytest.mark.parametrize("shape", [(2, 4, 16, 16, 32, 32), (1, 2, 128, 128, 32, 32),
                                   (3, 1, 7, 12, 8, 5), (1, 3, 300, 300, 16, 16)])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("scale", [None, 0.3])
def test_matches_torch(rng, shape, causal, scale):
    B, H, L, S, E, Ev = shape
    run_both(rng, randn(rng, (B, H, L, E)), randn(rng, (B, H, S, E)), randn(rng, (B, H, S, Ev)),
             is_causal=causal, scale=scale)


@pytest.mark.parametrize("mask_shape", [(9, 11), (2, 1, 9, 11), (2, 3, 9, 11), (2, 1, 1, 11)])
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_masks_match_torch(rng, mask_shape, kind):
    q, k, v = randn(rng, (2, 3, 9, 8)), randn(rng, (2, 3, 11, 8)), randn(rng, (2, 3, 11, 8))
    if kind == "bool":
        mask = rng.random(mask_shape) > 0.4
        mask[..., 0] = True
    else:
        mask = randn(rng, mask_shape)
    run_both(rng, q, k, v, attn_mask=mask)


def test_fully_masked_rows_match_torch(rng):
    q, k, v = randn(rng, (1, 2, 4, 8)), randn(rng, (1, 2, 5, 8)), randn(rng, (1, 2, 5, 8))
    mask = np.ones((4, 5), bool)
    mask[1] = False
    run_both(rng, q, k, v, attn_mask=mask)
