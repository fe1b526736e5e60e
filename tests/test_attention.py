"""Scaled dot-product attention (csrc/attention.c, attention_api.c) against a float64
reference and finite differences on every ISA path: causal and not, float and bool
masks, fully masked rows, dropout (through the saved factors), saved and recomputed
probabilities, strided views of a packed projection, thread-count independence,
bad inputs. Without torch (see test_attention_torch.py)."""
import numpy as np
import pytest

import fastnn
from fastnn import ops


def sdpa_ref(q, k, v, mask=None, causal=False, scale=None, drop=None):
    """out, probs in float64; mask additive float (broadcast), drop factors or None."""
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    L, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if mask is not None:
        s = s + mask
    if causal:
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    mx = s.max(axis=-1, keepdims=True)
    finite = np.isfinite(mx)
    e = np.where(finite, np.exp(s - np.where(finite, mx, 0.0)), 0.0)
    tot = e.sum(axis=-1, keepdims=True)
    p = np.where(tot > 0, e / np.where(tot > 0, tot, 1.0), 0.0)
    pd = p if drop is None else p * drop
    return pd @ v, p


def sdpa_backward_ref(g, q, k, v, mask=None, causal=False, scale=None, drop=None):
    q, k, v, g = (np.asarray(a, np.float64) for a in (q, k, v, g))
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    out, p = sdpa_ref(q, k, v, mask, causal, scale, drop)
    pd = p if drop is None else p * drop
    dv = np.swapaxes(pd, -1, -2) @ g
    dpd = g @ np.swapaxes(v, -1, -2)
    dp = dpd if drop is None else dpd * drop
    ds = p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    return ds @ k * scale, np.swapaxes(ds, -1, -2) @ q * scale, dv


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# (B, H, L, S, E, Ev): one query, keys past queries and the reverse, tiles around MR = 14
SHAPES = [(1, 1, 1, 1, 1, 1), (2, 3, 5, 5, 4, 6), (1, 2, 15, 15, 32, 32), (2, 1, 20, 29, 8, 5),
          (2, 1, 29, 20, 8, 5), (1, 2, 70, 70, 16, 16), (1, 1, 130, 130, 32, 24)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("save_probs", [True, False])
def test_matches_float64(isa, rng, shape, causal, save_probs):
    B, H, L, S, E, Ev = shape
    q, k, v = rand(rng, B, H, L, E), rand(rng, B, H, S, E), rand(rng, B, H, S, Ev)
    out, ctx = ops.scaled_dot_product_attention(q, k, v, is_causal=causal, return_context=True,
                                                save_probs=save_probs)
    out_ref, p_ref = sdpa_ref(q, k, v, causal=causal)
    np.testing.assert_allclose(out, out_ref, rtol=1e-5, atol=1e-5)
    if save_probs:
        np.testing.assert_allclose(ctx[1], p_ref, rtol=1e-5, atol=1e-6)
    else:
        assert ctx[1] is None
    g = rand(rng, *out.shape)
    grads = ops.scaled_dot_product_attention_backward(g, q, k, v, out, ctx)
    for got, want, name in zip(grads, sdpa_backward_ref(g, q, k, v, causal=causal), "qkv"):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"d{name}")


@pytest.mark.parametrize("kind", ["float", "bool", "key_padding"])
def test_masks_match_float64(isa, rng, kind):
    B, H, L, S, E = 2, 3, 9, 11, 8
    q, k, v = rand(rng, B, H, L, E), rand(rng, B, H, S, E), rand(rng, B, H, S, E)
    if kind == "float":
        mask = rand(rng, L, S)
        add = mask
    elif kind == "bool":
        mask = rng.random((B, 1, L, S)) > 0.3
        mask[..., 0] = True
        add = np.where(mask, 0.0, -np.inf)
    else:  # (B, 1, 1, S): padded keys of each sequence
        mask = np.ones((B, 1, 1, S), bool)
        mask[0, ..., 7:] = False
        add = np.where(mask, 0.0, -np.inf)
    for causal in (False, True):
        out, ctx = ops.scaled_dot_product_attention(q, k, v, mask, is_causal=causal,
                                                    return_context=True)
        np.testing.assert_allclose(out, sdpa_ref(q, k, v, add, causal)[0], rtol=1e-5, atol=1e-5)
        g = rand(rng, *out.shape)
        for save in (True, False):
            c = ctx if save else (ctx[0], None) + ctx[2:]
            grads = ops.scaled_dot_product_attention_backward(g, q, k, v, out, c)
            for got, want in zip(grads, sdpa_backward_ref(g, q, k, v, add, causal)):
                np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_fully_masked_rows_give_zeros(isa, rng):
    q, k, v = rand(rng, 1, 2, 4, 8), rand(rng, 1, 2, 6, 8), rand(rng, 1, 2, 6, 8)
    mask = np.ones((4, 6), bool)
    mask[2] = False
    out, ctx = ops.scaled_dot_product_attention(q, k, v, mask, return_context=True)
    assert np.all(out[:, :, 2] == 0) and np.all(ctx[1][:, :, 2] == 0)
    assert np.all(np.isfinite(out))
    g = rand(rng, *out.shape)
    dq, dk, dv = ops.scaled_dot_product_attention_backward(g, q, k, v, out, ctx)
    assert np.all(dq[:, :, 2] == 0) and np.all(np.isfinite(dk)) and np.all(np.isfinite(dv))
    np.testing.assert_allclose(dk, sdpa_backward_ref(g, q, k, v, np.where(mask, 0, -np.inf))[1],
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("p", [0.3, 1.0])
def test_dropout_uses_its_saved_factors(isa, rng, p):
    q, k, v = rand(rng, 2, 2, 10, 8), rand(rng, 2, 2, 10, 8), rand(rng, 2, 2, 10, 8)
    fastnn.manual_seed(5)
    out, ctx = ops.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True,
                                                return_context=True)
    drop = ctx[3]
    assert drop.shape == (2, 2, 10, 10)
    assert set(np.unique(drop)) <= {0.0, np.float32(1 / (1 - p)) if p < 1 else 0.0}
    np.testing.assert_allclose(out, sdpa_ref(q, k, v, causal=True, drop=drop)[0], rtol=1e-5,
                               atol=1e-5)
    g = rand(rng, *out.shape)
    for got, want in zip(ops.scaled_dot_product_attention_backward(g, q, k, v, out, ctx),
                         sdpa_backward_ref(g, q, k, v, causal=True, drop=drop)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    fastnn.manual_seed(5)
    again = ops.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
    np.testing.assert_array_equal(again, out)


def test_finite_differences(isa, rng):
    """d/d(q, k, v) of sum(out * G) in float64 central differences, causal with a mask."""
    B, H, L, S, E = 1, 2, 6, 6, 4
    q, k, v = rand(rng, B, H, L, E), rand(rng, B, H, S, E), rand(rng, B, H, S, E)
    mask = rand(rng, L, S)
    G = rng.standard_normal((B, H, L, E))

    def f(q_, k_, v_):
        o = ops.scaled_dot_product_attention(q_, k_, v_, mask, is_causal=True, scale=0.7)
        return float(np.sum(np.asarray(o, np.float64) * G))

    out, ctx = ops.scaled_dot_product_attention(q, k, v, mask, is_causal=True, scale=0.7,
                                                return_context=True)
    grads = ops.scaled_dot_product_attention_backward(G.astype(np.float32), q, k, v, out, ctx)
    eps = 1e-2
    for which, grad in enumerate(grads):
        arrays = [q.copy(), k.copy(), v.copy()]
        flat = arrays[which].reshape(-1)
        for i in rng.choice(flat.size, 10, replace=False):
            keep = flat[i]
            flat[i] = keep + eps
            up = f(*arrays)
            flat[i] = keep - eps
            down = f(*arrays)
            flat[i] = keep
            np.testing.assert_allclose(grad.reshape(-1)[i], (up - down) / (2 * eps), rtol=2e-2,
                                       atol=2e-3)


def test_strided_views_of_a_packed_projection(isa, rng):
    """q, k, v as views of qkv (B, T, 3, H, E), out and the gradients written into
    (B, T, H*E) and (B, T, 3, H, E) layouts without copies."""
    B, T, H, E = 2, 17, 3, 8
    qkv = rand(rng, B, T, 3, H, E)
    q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))
    y = np.zeros((B, T, H, E), np.float32)
    out, ctx = ops.scaled_dot_product_attention(q, k, v, is_causal=True,
                                                out=y.transpose(0, 2, 1, 3), return_context=True)
    assert np.shares_memory(out, y)
    qc, kc, vc = (np.ascontiguousarray(a) for a in (q, k, v))
    ref, ctx_ref = ops.scaled_dot_product_attention(qc, kc, vc, is_causal=True,
                                                    return_context=True)
    np.testing.assert_array_equal(out, ref)
    g = rand(rng, B, H, T, E)
    dqkv = np.zeros_like(qkv)
    views = [dqkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3)]
    ops.scaled_dot_product_attention_backward(g, q, k, v, out, ctx, *views)
    want = ops.scaled_dot_product_attention_backward(g, qc, kc, vc, ref, ctx_ref)
    for view, w in zip(views, want):
        np.testing.assert_array_equal(view, w)


def test_threads_give_identical_bits(rng):
    q, k, v = rand(rng, 2, 3, 150, 16), rand(rng, 2, 3, 150, 16), rand(rng, 2, 3, 150, 16)
    g = rand(rng, 2, 3, 150, 16)
    results = []
    for n in (1, 2, 3):
        with fastnn.num_threads(n):
            for causal in (False, True):
                out, ctx = ops.scaled_dot_product_attention(q, k, v, is_causal=causal,
                                                            return_context=True)
                results.append((n, causal, out, ctx[0], ctx[1]) +
                               ops.scaled_dot_product_attention_backward(g, q, k, v, out, ctx))
    base = {r[1]: r for r in results if r[0] == 1}
    for r in results:
        for a, b in zip(r[2:], base[r[1]][2:]):
            np.testing.assert_array_equal(a, b)


def test_three_dimensional_and_two_dimensional_operands(rng):
    q, k, v = rand(rng, 4, 7, 8), rand(rng, 4, 9, 8), rand(rng, 4, 9, 3)
    np.testing.assert_allclose(ops.scaled_dot_product_attention(q, k, v),
                               sdpa_ref(q, k, v)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.scaled_dot_product_attention(q[0], k[0], v[0]),
                               sdpa_ref(q[0], k[0], v[0])[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("call,match", [
    (lambda q: ops.scaled_dot_product_attention(q, q[:, :, :, :3], q), "feature size"),
    (lambda q: ops.scaled_dot_product_attention(q, q, q[:, :, :4]), "length"),
    (lambda q: ops.scaled_dot_product_attention(q, q, q[:1]), "leading"),
    (lambda q: ops.scaled_dot_product_attention(q, q, q, np.zeros((3, 3))), "broadcast"),
    (lambda q: ops.scaled_dot_product_attention(q, q, q, dropout_p=1.5), "dropout_p"),
    (lambda q: ops.scaled_dot_product_attention(q, q, q, scale=float("inf")), "scale"),
    (lambda q: ops.scaled_dot_product_attention(q, q[:, :, :0], q[:, :, :0]), "at least one"),
    (lambda q: ops.scaled_dot_product_attention(q, q, q, out=np.zeros((2, 2, 5, 4))), "out"),
    (lambda q: ops.scaled_dot_product_attention(q, q, q, out=q), "share memory"),
    (lambda q: ops.scaled_dot_product_attention(q[0, 0, 0], q, q), "at least 2"),
    (lambda q: ops.scaled_dot_product_attention_backward(q, q, q, q, q, (1, 2)), "context"),
])
def test_bad_inputs_raise_value_error(rng, call, match):
    with pytest.raises(ValueError, match=match):
        call(rand(rng, 2, 2, 5, 8))


def test_bad_mask_dtype_raises_type_error(rng):
    q = rand(rng, 1, 1, 3, 4)
    with pytest.raises(TypeError, match="attn_mask"):
        ops.scaled_dot_product_attention(q, q, q, np.array([["a"] * 3] * 3))
