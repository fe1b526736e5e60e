"""Batch norm and group norm (csrc/norm.c, norm_api.c) against float64 references and
finite differences on every ISA path; BatchNorm1d/2d, GroupNorm, Dropout1d/2d modules;
thread-count independence; bad inputs. Without torch (see test_norm_torch.py)."""
import numpy as np
import pytest

import fastnn
from fastnn import nn, ops

# ---- float64 references ----------------------------------------------------------


def as_ncs(x):
    x = np.asarray(x, np.float64)
    return x.reshape(x.shape[0], x.shape[1], -1)


def bn_ref(x, w=None, b=None, eps=1e-5, mean=None, var=None):
    """y, batch mean, biased var (or the given statistics) in float64."""
    x3 = as_ncs(x)
    if mean is None:
        mean = x3.mean(axis=(0, 2))
        var = x3.var(axis=(0, 2))
    mean, var = np.asarray(mean, np.float64), np.asarray(var, np.float64)
    y = (x3 - mean[:, None]) / np.sqrt(var[:, None] + eps)
    if w is not None:
        y = y * np.asarray(w, np.float64)[:, None]
    if b is not None:
        y = y + np.asarray(b, np.float64)[:, None]
    return y.reshape(np.shape(x)), mean, var


def bn_backward_ref(g, x, w=None, eps=1e-5, training=True, mean=None, var=None):
    x3, g3 = as_ncs(x), as_ncs(g)
    if mean is None:
        mean, var = x3.mean(axis=(0, 2)), x3.var(axis=(0, 2))
    inv = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    xhat = (x3 - np.asarray(mean, np.float64)[:, None]) * inv[:, None]
    dbias = g3.sum(axis=(0, 2))
    dweight = (g3 * xhat).sum(axis=(0, 2))
    wv = np.ones(x3.shape[1]) if w is None else np.asarray(w, np.float64)
    if training:
        m = x3.shape[0] * x3.shape[2]
        dx = (wv * inv)[:, None] * (g3 - dbias[:, None] / m - xhat * dweight[:, None] / m)
    else:
        dx = (wv * inv)[:, None] * g3
    return dx.reshape(np.shape(x)), dweight, dbias


def gn_ref(x, G, w=None, b=None, eps=1e-5):
    x64 = np.asarray(x, np.float64)
    N, C = x64.shape[:2]
    xg = x64.reshape(N, G, -1)
    mean, var = xg.mean(axis=2), xg.var(axis=2)
    y = ((xg - mean[..., None]) / np.sqrt(var[..., None] + eps)).reshape(N, C, -1)
    if w is not None:
        y = y * np.asarray(w, np.float64)[:, None]
    if b is not None:
        y = y + np.asarray(b, np.float64)[:, None]
    return y.reshape(x64.shape), mean, 1.0 / np.sqrt(var + eps)


def gn_backward_ref(g, x, G, w=None, eps=1e-5):
    x64, g64 = np.asarray(x, np.float64), np.asarray(g, np.float64)
    N, C = x64.shape[:2]
    xg = x64.reshape(N, G, -1)
    mean, var = xg.mean(axis=2, keepdims=True), xg.var(axis=2, keepdims=True)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = ((xg - mean) * inv).reshape(N, C, -1)
    g3 = g64.reshape(N, C, -1)
    dweight, dbias = (g3 * xhat).sum(axis=(0, 2)), g3.sum(axis=(0, 2))
    wv = np.ones(C) if w is None else np.asarray(w, np.float64)
    gw = (g3 * wv[:, None]).reshape(N, G, -1)
    xh = xhat.reshape(N, G, -1)
    dx = inv * (gw - gw.mean(axis=2, keepdims=True) - xh * (gw * xh).mean(axis=2, keepdims=True))
    return dx.reshape(x64.shape), dweight, dbias


def rand(rng, *shape, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(np.float32)


# S == 1 with column blocks of 64 and ragged ends; S > 1 with vector tails
BN_SHAPES = [(2, 1), (4, 3), (5, 70), (3, 130), (2, 3, 1), (2, 3, 5), (3, 2, 17), (2, 3, 4, 4),
             (1, 4, 3, 7), (3, 5, 2, 33)]


# ---- batch norm kernels ------------------------------------------------------------

@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_training_matches_reference(shape, affine, isa, rng):
    C = shape[1]
    x = rand(rng, *shape, scale=3.0, shift=2.0)
    w, b = (rand(rng, C), rand(rng, C)) if affine else (None, None)
    rm, rv = rand(rng, C), np.abs(rand(rng, C)) + 0.5
    rm0, rv0 = rm.copy(), rv.copy()
    y, mean, invstd = ops.batch_norm(x, rm, rv, w, b, training=True, momentum=0.3, eps=1e-3,
                                     return_stats=True)
    want, m, v = bn_ref(x, w, b, eps=1e-3)
    assert y.dtype == np.float32 and y.shape == x.shape
    np.testing.assert_allclose(y, want, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(mean, m, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(v + 1e-3), rtol=1e-6)
    M = x.size // C
    np.testing.assert_allclose(rm, 0.7 * rm0 + 0.3 * m, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rv, 0.7 * rv0 + 0.3 * v * M / (M - 1), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_eval_matches_reference(shape, isa, rng):
    C = shape[1]
    x = rand(rng, *shape)
    w, b = rand(rng, C), rand(rng, C)
    rm, rv = rand(rng, C), np.abs(rand(rng, C)) + 0.1
    rm_ro, rv_ro = rm.copy(), rv.copy()
    rm_ro.flags.writeable = rv_ro.flags.writeable = False  # eval only reads them
    y, mean, invstd = ops.batch_norm(x, rm_ro, rv_ro, w, b, training=False, return_stats=True)
    want, _, _ = bn_ref(x, w, b, mean=rm, var=rv)
    np.testing.assert_allclose(y, want, rtol=2e-5, atol=2e-5)
    np.testing.assert_array_equal(mean, rm)
    np.testing.assert_allclose(invstd, 1 / np.sqrt(rv.astype(np.float64) + 1e-5), rtol=1e-6)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_backward_matches_reference(shape, training, isa, rng):
    C = shape[1]
    x, g = rand(rng, *shape, shift=1.0), rand(rng, *shape)
    w = rand(rng, C)
    rm, rv = rand(rng, C), np.abs(rand(rng, C)) + 0.5
    _, mean, invstd = ops.batch_norm(x, rm.copy(), rv.copy(), w, None, training=training,
                                     return_stats=True)
    dx, dw, db = ops.batch_norm_backward(g, x, mean, invstd, w, training=training)
    stats = {} if training else {"mean": rm, "var": rv}
    wdx, wdw, wdb = bn_backward_ref(g, x, w, training=training, **stats)
    np.testing.assert_allclose(dx, wdx, rtol=1e-4, atol=1e-4 * max(1, np.abs(wdx).max()))
    np.testing.assert_allclose(dw, wdw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, wdb, rtol=1e-5, atol=1e-5)
    # no weight: dx alone, dweight / dbias None; accumulation into given buffers
    dx1, dw1, db1 = ops.batch_norm_backward(g, x, mean, invstd, None, training=training)
    assert dw1 is None and db1 is None
    wdx1, _, _ = bn_backward_ref(g, x, None, training=training, **stats)
    np.testing.assert_allclose(dx1, wdx1, rtol=1e-4, atol=1e-4 * max(1, np.abs(wdx1).max()))
    gw, gb = np.ones(C, np.float32), np.full(C, 2.0, np.float32)
    none, gw2, gb2 = ops.batch_norm_backward(g, x, mean, invstd, w, training, False, gw, gb)
    assert none is None and gw2 is gw and gb2 is gb
    np.testing.assert_allclose(gw, 1 + wdw, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gb, 2 + wdb, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_fused_relu_is_relu_of_batch_norm(shape, training, isa, rng):
    """activation="relu" and relu_output= give bitwise what ReLU after batch_norm and
    relu_backward before batch_norm_backward give, in both layouts, with and without
    weight; NaN and zero outputs block the gradient as relu_backward does."""
    C = shape[1]
    x, g = rand(rng, *shape, shift=0.3), rand(rng, *shape)
    x.reshape(-1)[::7] = 0.0
    x.reshape(-1)[-1] = np.nan
    w, b = rand(rng, C), rand(rng, C)
    for weight, bias in ((w, b), (None, None)):
        rm, rv = rand(rng, C), np.abs(rand(rng, C)) + 0.5
        r1, r2 = (rm.copy(), rv.copy()), (rm.copy(), rv.copy())
        y, mean, invstd = ops.batch_norm(x, *r1, weight, bias, training, return_stats=True)
        yr, mean_r, invstd_r = ops.batch_norm(x, *r2, weight, bias, training, return_stats=True,
                                              activation="relu")
        np.testing.assert_array_equal(yr, ops.relu(y))
        np.testing.assert_array_equal(mean_r, mean)
        np.testing.assert_array_equal(r1[0], r2[0])
        np.testing.assert_array_equal(r1[1], r2[1])
        want = ops.batch_norm_backward(ops.relu_backward(g, yr), x, mean, invstd, weight,
                                       training)
        got = ops.batch_norm_backward(g, x, mean, invstd, weight, training, relu_output=yr)
        for a, e in zip(got, want):
            if e is None:
                assert a is None
            else:
                np.testing.assert_array_equal(a, e)


def test_batch_norm_fused_relu_bad_inputs(rng):
    x = rand(rng, 4, 3, 5)
    with pytest.raises(ValueError, match="activation"):
        ops.batch_norm(x, None, None, training=True, activation="gelu")
    with pytest.raises(ValueError, match="activation"):
        ops.batch_norm(x, None, None, training=True, activation="swish")
    _, mean, invstd = ops.batch_norm(x, None, None, training=True, return_stats=True)
    with pytest.raises(ValueError, match="relu_output"):
        ops.batch_norm_backward(x, x, mean, invstd, relu_output=x[:2])
    with pytest.raises(TypeError, match="relu_output"):
        ops.batch_norm_backward(x, x, mean, invstd, relu_output=x.astype(np.complex64))


def fd_grad(f, arr, h=1e-2):
    """Central differences of the scalar f() over every element of arr (float32, in place)."""
    grad = np.zeros(arr.shape)
    flat, gflat = arr.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = f()
        flat[i] = old - h
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return grad


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4), (2, 2, 3, 2)], ids=str)
def test_batch_norm_finite_differences(shape, isa, rng):
    C = shape[1]
    x, g, w, b = rand(rng, *shape), rand(rng, *shape), rand(rng, C), rand(rng, C)

    def loss():
        y = ops.batch_norm(x, None, None, w, b, training=True)
        return float(np.sum(y.astype(np.float64) * g))

    _, mean, invstd = ops.batch_norm(x, None, None, w, b, training=True, return_stats=True)
    dx, dw, db = ops.batch_norm_backward(g, x, mean, invstd, w, training=True)
    np.testing.assert_allclose(dx, fd_grad(loss, x), rtol=5e-3, atol=5e-3)
    np.testing.assert_allclose(dw, fd_grad(loss, w), rtol=5e-3, atol=5e-3)
    np.testing.assert_allclose(db, fd_grad(loss, b), rtol=5e-3, atol=5e-3)


@pytest.mark.parametrize("shape", [(17, 8), (17, 70), (3, 4, 21), (2, 3, 5, 5)], ids=str)
def test_batch_norm_channel_of_equal_values_is_exact(shape, isa, rng):
    C = shape[1]
    row = (rand(rng, *((1,) + shape[1:])) * 1000).astype(np.float32)
    if len(shape) > 2:  # each channel one value over its spatial positions as well
        row = np.broadcast_to(row.reshape(1, C, -1)[:, :, :1], (1, C, int(np.prod(shape[2:]))))
    x = np.ascontiguousarray(np.broadcast_to(row.reshape((1, C) + (-1,) * 0 + shape[2:]), shape))
    w, b = rand(rng, C), rand(rng, C)
    y, mean, invstd = ops.batch_norm(x, None, None, w, b, training=True, return_stats=True)
    np.testing.assert_array_equal(y, np.broadcast_to(b.reshape((1, C) + (1,) * (len(shape) - 2)),
                                                     shape))
    np.testing.assert_array_equal(mean, x.reshape(shape[0], C, -1)[0, :, 0])
    np.testing.assert_array_equal(invstd, np.float32(1 / np.sqrt(np.float64(np.float32(1e-5)))))


def test_batch_norm_large_mean_small_spread(isa, rng):
    """Two-pass float64 statistics keep a variance 1e-8 of the mean squared."""
    x = (1e4 + rand(rng, 64, 3, 50)).astype(np.float32)
    y = ops.batch_norm(x, None, None, training=True)
    want, _, _ = bn_ref(x)
    np.testing.assert_allclose(y, want, rtol=1e-3, atol=1e-3)


# ---- group norm kernels ------------------------------------------------------------

GN_CASES = [((4, 6), 3), ((4, 6, 5), 3), ((2, 12), 1), ((3, 5, 5), 5), ((2, 6, 2, 3), 2),
            ((1, 8, 37), 4), ((2, 4, 3, 17), 1)]


@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape,G", GN_CASES, ids=str)
def test_group_norm_matches_reference(shape, G, affine, isa, rng):
    C = shape[1]
    x, g = rand(rng, *shape, scale=2.0, shift=1.0), rand(rng, *shape)
    w, b = (rand(rng, C), rand(rng, C)) if affine else (None, None)
    y, mean, invstd = ops.group_norm(x, G, w, b, eps=1e-3, return_stats=True)
    want, wm, wi = gn_ref(x, G, w, b, eps=1e-3)
    np.testing.assert_allclose(y, want, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(mean, wm, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(invstd, wi, rtol=1e-6)
    dx, dw, db = ops.group_norm_backward(g, x, mean, invstd, G, w)
    wdx, wdw, wdb = gn_backward_ref(g, x, G, w, eps=1e-3)
    np.testing.assert_allclose(dx, wdx, rtol=1e-4, atol=1e-4 * max(1, np.abs(wdx).max()))
    if affine:
        np.testing.assert_allclose(dw, wdw, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(db, wdb, rtol=1e-5, atol=1e-5)
    else:
        assert dw is None and db is None


@pytest.mark.parametrize("shape,G", [((3, 4), 2), ((2, 6, 3), 3), ((2, 4, 2, 2), 1)], ids=str)
def test_group_norm_finite_differences(shape, G, isa, rng):
    C = shape[1]
    x, g, w, b = rand(rng, *shape), rand(rng, *shape), rand(rng, C), rand(rng, C)

    def loss():
        return float(np.sum(ops.group_norm(x, G, w, b).astype(np.float64) * g))

    _, mean, invstd = ops.group_norm(x, G, w, b, return_stats=True)
    dx, dw, db = ops.group_norm_backward(g, x, mean, invstd, G, w)
    np.testing.assert_allclose(dx, fd_grad(loss, x), rtol=5e-3, atol=5e-3)
    np.testing.assert_allclose(dw, fd_grad(loss, w), rtol=5e-3, atol=5e-3)
    np.testing.assert_allclose(db, fd_grad(loss, b), rtol=5e-3, atol=5e-3)


def test_group_norm_group_of_equal_values_is_exact(isa, rng):
    x = np.repeat(rand(rng, 3, 2, 1, scale=1000), 12, axis=2).reshape(3, 4, 6)  # 2 groups
    b = rand(rng, 4)
    y = ops.group_norm(x, 2, rand(rng, 4), b)
    np.testing.assert_array_equal(y, np.broadcast_to(b[:, None], x.shape))


# ---- threads -------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(64, 2048), (4, 8, 64, 64), (3, 40, 700)], ids=str)
def test_batch_norm_threads_bitwise(shape, rng):
    C = shape[1]
    x, g, w, b = rand(rng, *shape, shift=0.5), rand(rng, *shape), rand(rng, C), rand(rng, C)
    results = []
    for n in (1, 2, 3):
        with fastnn.num_threads(n):
            rm, rv = np.zeros(C, np.float32), np.ones(C, np.float32)
            y, m, i = ops.batch_norm(x, rm, rv, w, b, training=True, return_stats=True)
            results.append((y, m, i, rm, rv) + ops.batch_norm_backward(g, x, m, i, w))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


def test_group_norm_threads_bitwise(rng):
    x, g = rand(rng, 4, 8, 64, 64), rand(rng, 4, 8, 64, 64)
    w, b = rand(rng, 8), rand(rng, 8)
    results = []
    for n in (1, 2, 3):
        with fastnn.num_threads(n):
            y, m, i = ops.group_norm(x, 4, w, b, return_stats=True)
            results.append((y, m, i) + ops.group_norm_backward(g, x, m, i, 4, w))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


# ---- bad inputs ----------------------------------------------------------------------

def test_batch_norm_bad_inputs():
    x = np.ones((4, 3), np.float32) + np.arange(3, dtype=np.float32)
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    with pytest.raises(TypeError, match="input"):
        ops.batch_norm(x.astype(np.complex64), rm, rv)
    with pytest.raises(TypeError, match="input"):
        ops.batch_norm("abc", rm, rv)
    with pytest.raises(ValueError, match=r"\(N, C, \*\)"):
        ops.batch_norm(np.ones(3, np.float32), rm, rv)
    with pytest.raises(ValueError, match=r"running_mean must have shape \(3,\)"):
        ops.batch_norm(x, np.zeros(4, np.float32), rv)
    with pytest.raises(ValueError, match="running_mean must have shape"):
        ops.batch_norm(x, np.zeros(4, np.float32), rv, training=True)
    with pytest.raises(ValueError, match="together"):
        ops.batch_norm(x, rm, None, training=True)
    with pytest.raises(ValueError, match="required when training=False"):
        ops.batch_norm(x, None, None)
    with pytest.raises(TypeError, match="running_var"):
        ops.batch_norm(x, rm, rv.astype(np.float64), training=True)  # updated in place
    ro = rm.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        ops.batch_norm(x, ro, rv, training=True)
    with pytest.raises(ValueError, match="share memory"):
        ops.batch_norm(x, rm, rm, training=True)
    with pytest.raises(ValueError, match=r"weight must have shape \(3,\)"):
        ops.batch_norm(x, rm, rv, np.ones(2, np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        ops.batch_norm(x[:1], rm, rv, training=True)
    with pytest.raises(ValueError, match="momentum"):
        ops.batch_norm(x, rm, rv, training=True, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        ops.batch_norm(x, rm, rv, eps=-1.0)
    with pytest.raises(TypeError, match="eps"):
        ops.batch_norm(x, rm, rv, eps="small")
    with pytest.raises(ValueError, match=r"out must have shape \(4, 3\)"):
        ops.batch_norm(x, rm, rv, out=np.empty((3, 4), np.float32))
    _, m, i = ops.batch_norm(x, None, None, training=True, return_stats=True)
    with pytest.raises(ValueError, match="grad_out must have the same shape"):
        ops.batch_norm_backward(np.ones((4, 2), np.float32), x, m, i)
    with pytest.raises(ValueError, match=r"invstd must have shape \(3,\)"):
        ops.batch_norm_backward(x, x, m, i[:2])
    with pytest.raises(ValueError, match="grad_weight must have shape"):
        ops.batch_norm_backward(x, x, m, i, np.ones(3, np.float32), True, True,
                                np.zeros(2, np.float32))
    assert np.array_equal(rm, np.zeros(3)) and np.array_equal(rv, np.ones(3))  # untouched


def test_batch_norm_out_and_empty(rng):
    x = rand(rng, 6, 5, 4)
    out = np.empty_like(x)
    assert ops.batch_norm(x, None, None, training=True, out=out) is out
    np.testing.assert_allclose(out, bn_ref(x)[0], rtol=2e-5, atol=2e-5)
    y = ops.batch_norm(x, None, None, training=True, out=x)  # in place
    assert y is x
    np.testing.assert_array_equal(x, out)
    e = ops.batch_norm(np.zeros((0, 5), np.float32), np.zeros(5, np.float32),
                       np.ones(5, np.float32))
    assert e.shape == (0, 5)
    assert ops.batch_norm(np.zeros((3, 0, 2), np.float32), None, None, training=True).shape == (3, 0, 2)
    rm, rv = rand(rng, 5), np.full(5, 3.0, np.float32)
    e, m, i = ops.batch_norm(np.zeros((0, 5, 9), np.float32), rm, rv, return_stats=True)
    assert e.shape == (0, 5, 9)
    np.testing.assert_array_equal(m, rm)
    np.testing.assert_allclose(i, 1 / np.sqrt(3.0 + 1e-5), rtol=1e-6)
    w = rand(rng, 5)
    dx, dw, db = ops.batch_norm_backward(e, e, m, i, w, training=False)
    assert dx.shape == (0, 5, 9) and not dw.any() and not db.any()


def test_group_norm_bad_inputs(rng):
    x = rand(rng, 2, 6, 3)
    with pytest.raises(ValueError, match="num_groups must be >= 1 and divide the 6 channels, got 4"):
        ops.group_norm(x, 4)
    with pytest.raises(ValueError, match="num_groups"):
        ops.group_norm(x, 0)
    with pytest.raises(TypeError, match="num_groups"):
        ops.group_norm(x, 2.0)
    with pytest.raises(TypeError, match="input"):
        ops.group_norm(x.astype(np.complex64), 2)
    with pytest.raises(ValueError, match=r"\(N, C, \*\)"):
        ops.group_norm(np.ones(6, np.float32), 2)
    with pytest.raises(ValueError, match=r"bias must have shape \(6,\)"):
        ops.group_norm(x, 2, None, np.ones(5, np.float32))
    with pytest.raises(ValueError, match="no values"):
        ops.group_norm(np.ones((2, 6, 0), np.float32), 2)
    _, m, i = ops.group_norm(x, 2, return_stats=True)
    with pytest.raises(ValueError, match=r"mean must have shape \(2, 2\)"):
        ops.group_norm_backward(x, x, m.T.copy()[:1], i, 2)
    assert ops.group_norm(np.zeros((0, 6, 3), np.float32), 3).shape == (0, 6, 3)


# ---- modules ---------------------------------------------------------------------------

@pytest.mark.parametrize("cls,shape", [(nn.BatchNorm1d, (6, 4)), (nn.BatchNorm1d, (5, 4, 3)),
                                       (nn.BatchNorm2d, (3, 4, 5, 5))])
@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm_module_steps(cls, shape, momentum, rng):
    """Several training steps: running stats as torch's rule, then eval uses them."""
    bn = cls(4, momentum=momentum)
    bn.weight.data[:] = rand(rng, 4)
    bn.bias.data[:] = rand(rng, 4)
    rm, rv = np.zeros(4), np.ones(4)
    for step in range(1, 4):
        x = rand(rng, *shape, scale=2.0, shift=step)
        y = bn(x)
        want, m, v = bn_ref(x, bn.weight.data, bn.bias.data)
        np.testing.assert_allclose(y, want, rtol=2e-5, atol=2e-5)
        M = x.size // 4
        f = 0.1 if momentum else 1.0 / step
        rm, rv = (1 - f) * rm + f * m, (1 - f) * rv + f * v * M / (M - 1)
        np.testing.assert_allclose(bn.running_mean, rm, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bn.running_var, rv, rtol=1e-5, atol=1e-6)
        assert int(bn.num_batches_tracked) == step
        g = rand(rng, *shape)
        bn.zero_grad()
        dx = bn.backward(g)
        wdx, wdw, wdb = bn_backward_ref(g, x, bn.weight.data)
        np.testing.assert_allclose(dx, wdx, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(bn.weight.grad, wdw, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(bn.bias.grad, wdb, rtol=1e-5, atol=1e-5)
    bn.eval()
    x = rand(rng, *shape)
    y = bn(x)
    want, _, _ = bn_ref(x, bn.weight.data, bn.bias.data, mean=bn.running_mean, var=bn.running_var)
    np.testing.assert_allclose(y, want, rtol=2e-5, atol=2e-5)
    assert int(bn.num_batches_tracked) == 3
    g = rand(rng, *shape)
    wdx, _, _ = bn_backward_ref(g, x, bn.weight.data, training=False, mean=bn.running_mean,
                                var=bn.running_var)
    np.testing.assert_allclose(bn.backward(g), wdx, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm2d_no_affine_no_tracking(training, rng):
    bn = nn.BatchNorm2d(3, affine=False, track_running_stats=False)
    assert bn.weight is None and bn.bias is None and bn.running_mean is None
    assert list(bn.state_dict()) == []
    bn.train(training)
    x, g = rand(rng, 2, 3, 4, 4), rand(rng, 2, 3, 4, 4)
    np.testing.assert_allclose(bn(x), bn_ref(x)[0], rtol=2e-5, atol=2e-5)  # batch stats in eval too
    np.testing.assert_allclose(bn.backward(g), bn_backward_ref(g, x)[0], rtol=1e-4, atol=1e-4)
    bn(x)
    assert bn.backward(g, input_grad=False) is None


def test_batchnorm_bias_false_and_frozen(rng):
    bn = nn.BatchNorm2d(3, bias=False)
    assert bn.bias is None and list(bn.state_dict()) == [
        "weight", "running_mean", "running_var", "num_batches_tracked"]
    x, g = rand(rng, 2, 3, 2, 2), rand(rng, 2, 3, 2, 2)
    np.testing.assert_allclose(bn(x), bn_ref(x, bn.weight.data)[0], rtol=2e-5, atol=2e-5)
    bn.weight.requires_grad = False
    dx = bn.backward(g)
    assert not bn.weight.grad.any()
    np.testing.assert_allclose(dx, bn_backward_ref(g, x, bn.weight.data)[0], rtol=1e-4, atol=1e-4)


def test_batchnorm_module_errors():
    bn = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        bn(np.zeros((4, 3, 2), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        bn(np.zeros((4, 2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(np.zeros((1, 3, 1, 1), np.float32))
    assert int(bn.num_batches_tracked) == 0
    with pytest.raises(TypeError, match="num_features"):
        nn.BatchNorm2d(3.5)
    with pytest.raises(ValueError, match="device"):
        nn.BatchNorm2d(3, device="cuda")
    with pytest.raises(ValueError, match="num_channels must be divisible by num_groups"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match=r"\(N, 6, \*\)"):
        nn.GroupNorm(3, 6)(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="Dropout1d"):
        nn.Dropout1d()(np.zeros((2, 3, 4, 5), np.float32))
    with pytest.raises(ValueError, match="p"):
        nn.Dropout2d(1.5)


def test_group_norm_module(rng):
    gn = nn.GroupNorm(2, 4)
    gn.weight.data[:] = rand(rng, 4)
    gn.bias.data[:] = rand(rng, 4)
    x, g = rand(rng, 3, 4, 5), rand(rng, 3, 4, 5)
    for mode in (True, False):  # the same in both modes
        gn.train(mode)
        np.testing.assert_allclose(gn(x), gn_ref(x, 2, gn.weight.data, gn.bias.data)[0],
                                   rtol=2e-5, atol=2e-5)
        gn.zero_grad()
        dx = gn.backward(g)
        wdx, wdw, wdb = gn_backward_ref(g, x, 2, gn.weight.data)
        np.testing.assert_allclose(dx, wdx, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(gn.weight.grad, wdw, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(gn.bias.grad, wdb, rtol=1e-5, atol=1e-5)
    assert repr(gn) == "GroupNorm(2, 4, eps=1e-05, affine=True, bias=True)"
    assert list(nn.GroupNorm(1, 3, affine=False).state_dict()) == []
    assert list(nn.GroupNorm(1, 3, bias=False).state_dict()) == ["weight"]


def test_reprs():
    assert repr(nn.BatchNorm2d(16)) == ("BatchNorm2d(16, eps=1e-05, momentum=0.1, affine=True, "
                                        "bias=True, track_running_stats=True)")
    assert repr(nn.BatchNorm1d(3, momentum=None, affine=False)) == (
        "BatchNorm1d(3, eps=1e-05, momentum=None, affine=False, bias=False, "
        "track_running_stats=True)")
    assert repr(nn.Dropout2d(0.25)) == "Dropout2d(p=0.25, inplace=False)"


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.BatchNorm2d(3, momentum=None), (2, 3, 4, 4)),
    (lambda: nn.BatchNorm2d(3, affine=False, track_running_stats=False), (2, 3, 4, 4)),
    (lambda: nn.BatchNorm1d(3, bias=False), (5, 3)),
    (lambda: nn.GroupNorm(3, 6, eps=1e-3), (2, 6, 5)),
    (lambda: nn.GroupNorm(1, 6, affine=False), (2, 6, 5)),
    (lambda: nn.Dropout2d(0.3), (2, 3, 4, 4)),
    (lambda: nn.Dropout1d(0.3), (2, 3, 4)),
])
def test_save_load_round_trip(make, shape, tmp_path, rng):
    m = make()
    for p in m.parameters():
        p.data[:] = rand(rng, *p.shape)
    x = rand(rng, *shape)
    m(x)  # running statistics and num_batches_tracked move
    m.eval()
    path = tmp_path / "m.safetensors"
    fastnn.save(m, path)
    m2 = fastnn.load(path)
    assert type(m2) is type(m) and repr(m2) == repr(m)
    assert m2.get_config() == m.get_config()
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(m2.state_dict()[k], v)
        assert m2.state_dict()[k].dtype == v.dtype
    m2.eval()
    np.testing.assert_array_equal(m2(x), m(x))


def test_dropout2d_zeroes_whole_channels(rng):
    fastnn.manual_seed(3)
    d = nn.Dropout2d(0.4)
    x = rand(rng, 16, 32, 3, 3) + 5.0
    y = d(x)
    kept = y.reshape(16, 32, 9)
    zero = (kept == 0).all(axis=2)
    np.testing.assert_array_equal((kept != 0).all(axis=2), ~zero)  # all or nothing per channel
    np.testing.assert_allclose(y[~zero], (x / 0.6)[~zero], rtol=1e-6)
    assert 0.25 < zero.mean() < 0.55
    g = rand(rng, *x.shape)
    dx = d.backward(g)
    np.testing.assert_allclose(dx, np.where(y != 0, g / 0.6, 0), rtol=1e-6)
    fastnn.manual_seed(3)
    np.testing.assert_array_equal(nn.Dropout2d(0.4)(x), y)  # fastnn's random stream
    d.eval()
    assert d(x) is x or np.array_equal(d(x), x)
    np.testing.assert_array_equal(d.backward(g), g)
    d.train()
    assert not nn.Dropout2d(1.0)(x).any()
    np.testing.assert_array_equal(nn.Dropout2d(0.0)(x), x)
    xi = x.copy()
    assert nn.Dropout2d(0.5, inplace=True)(xi) is xi
    with pytest.warns(UserWarning, match="3-D"):
        y3 = nn.Dropout2d(0.5)(rand(rng, 4, 8, 10) + 5.0)
    z = (y3 == 0)
    np.testing.assert_array_equal(z.all(axis=2), z.any(axis=2))


def test_dropout1d(rng):
    fastnn.manual_seed(0)
    x = rand(rng, 6, 20) + 5.0  # unbatched (C, L)
    y = nn.Dropout1d(0.5)(x)
    z = y == 0
    np.testing.assert_array_equal(z.all(axis=1), z.any(axis=1))
    assert z.all(axis=1).any() and (~z).all(axis=1).any()
    x3 = rand(rng, 3, 6, 20) + 5.0
    d = nn.Dropout1d(0.5)
    y3 = d(x3)
    z3 = y3 == 0
    np.testing.assert_array_equal(z3.all(axis=2), z3.any(axis=2))
    np.testing.assert_allclose(d.backward(np.ones_like(x3)), np.where(z3, 0, 2.0))
