"""Pooling kernels (fastnn.ops max / avg / adaptive pools) and the pooling, padding and
upsampling modules, against float64 NumPy loop references and finite differences, on every
ISA; thread counts give identical bits; bad arguments raise naming them. (tests/test_pool.py
is the thread pool's.)"""
import itertools
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn, ops

from nn_checks import fd_check


# ---- float64 references (plain loops over planes) --------------------------------

def out_len(n, k, s, p, d, ceil_mode):
    """torch's rule, written independently: the number of window starts."""
    span = d * (k - 1) + 1
    if ceil_mode:
        o = math.ceil((n + 2 * p - span) / s) + 1
        if (o - 1) * s >= n + p:
            o -= 1
    else:
        o = (n + 2 * p - span) // s + 1
    return o


def ref_max_pool2d(x, k, s, p, d, ceil_mode):
    """(out, indices) of (P, H, W) float64; NaN is the max (the last NaN), ties the first."""
    P, H, W = x.shape
    OH, OW = (out_len(H, k[0], s[0], p[0], d[0], ceil_mode),
              out_len(W, k[1], s[1], p[1], d[1], ceil_mode))
    out = np.empty((P, OH, OW))
    idx = np.empty((P, OH, OW), np.int64)
    for c, oh, ow in itertools.product(range(P), range(OH), range(OW)):
        best, bi = -np.inf, None
        for a, b in itertools.product(range(k[0]), range(k[1])):
            ih, iw = oh * s[0] - p[0] + a * d[0], ow * s[1] - p[1] + b * d[1]
            if not (0 <= ih < H and 0 <= iw < W):
                continue
            v = x[c, ih, iw]
            if bi is None:
                bi = ih * W + iw
            if v > best or np.isnan(v):
                best, bi = v, ih * W + iw
        out[c, oh, ow], idx[c, oh, ow] = best, bi
    return out, idx


def ref_max_pool2d_backward(g, idx, shape):
    d = np.zeros((g.shape[0], shape[0] * shape[1]))
    for c in range(g.shape[0]):
        for o, i in zip(g[c].ravel(), idx[c].ravel()):
            d[c, i] += o
    return d.reshape((g.shape[0],) + tuple(shape))


def avg_windows(H, W, k, s, p, ceil_mode, count_include_pad, divisor):
    """{(oh, ow): (rows, cols, divisor)} for avg pooling, per torch's documented rule."""
    OH, OW = out_len(H, k[0], s[0], p[0], 1, ceil_mode), out_len(W, k[1], s[1], p[1], 1, ceil_mode)
    wins = {}
    for oh, ow in itertools.product(range(OH), range(OW)):
        h0, w0 = oh * s[0] - p[0], ow * s[1] - p[1]
        h1, w1 = min(h0 + k[0], H + p[0]), min(w0 + k[1], W + p[1])
        rows = range(max(h0, 0), min(h1, H))
        cols = range(max(w0, 0), min(w1, W))
        div = divisor or ((h1 - h0) * (w1 - w0) if count_include_pad else len(rows) * len(cols))
        wins[oh, ow] = rows, cols, div
    return (OH, OW), wins


def ref_avg_pool2d(x, k, s, p, ceil_mode=False, count_include_pad=True, divisor=None):
    P, H, W = x.shape
    (OH, OW), wins = avg_windows(H, W, k, s, p, ceil_mode, count_include_pad, divisor)
    out = np.zeros((P, OH, OW))
    for (oh, ow), (rows, cols, div) in wins.items():
        if len(rows) and len(cols):
            out[:, oh, ow] = x[:, rows.start:rows.stop, cols.start:cols.stop].sum((1, 2)) / div
    return out


def ref_avg_pool2d_backward(g, shape, k, s, p, ceil_mode=False, count_include_pad=True,
                            divisor=None):
    (OH, OW), wins = avg_windows(shape[0], shape[1], k, s, p, ceil_mode, count_include_pad,
                                 divisor)
    d = np.zeros((g.shape[0],) + tuple(shape))
    for (oh, ow), (rows, cols, div) in wins.items():
        d[:, rows.start:rows.stop, cols.start:cols.stop] += g[:, oh, ow, None, None] / div
    return d


def bins(n, on):
    return [(i * n // on, -(-(i + 1) * n // on)) for i in range(on)]


def ref_adaptive(x, oh, ow, kind):
    P, H, W = x.shape
    out = np.empty((P, oh, ow))
    idx = np.empty((P, oh, ow), np.int64)
    for i, (h0, h1) in enumerate(bins(H, oh)):
        for j, (w0, w1) in enumerate(bins(W, ow)):
            win = x[:, h0:h1, w0:w1].reshape(P, -1)
            if kind == "avg":
                out[:, i, j] = win.mean(1)
            else:
                a = win.argmax(1)
                out[:, i, j] = win[np.arange(P), a]
                idx[:, i, j] = (h0 + a // (w1 - w0)) * W + w0 + a % (w1 - w0)
    return out, idx


def distinct(shape, rng):
    """values with gaps of 0.1: no ties, and no argmax change under +-0.01"""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 3).astype(np.float32)


# ---- max pooling -----------------------------------------------------------------

MAX_GRID = [  # (H, W), kernel, stride, padding, dilation, ceil_mode
    ((6, 7), (2, 2), None, (0, 0), (1, 1), False),
    ((6, 7), (2, 2), None, (0, 0), (1, 1), True),
    ((5, 9), (3, 2), (2, 1), (1, 1), (1, 1), False),
    ((5, 9), (3, 3), (2, 2), (1, 1), (1, 2), True),
    ((7, 4), (3, 1), (3, 1), (1, 0), (2, 1), True),
    ((1, 8), (1, 3), (1, 2), (0, 1), (1, 1), True),
    ((4, 4), (4, 4), (1, 1), (2, 2), (1, 1), True),
]


@pytest.mark.parametrize("hw, k, s, p, d, cm", MAX_GRID)
def test_max_pool2d_matches_reference(hw, k, s, p, d, cm, isa, rng):
    x = rng.standard_normal((2, 3) + hw).astype(np.float32)
    out, idx = ops.max_pool2d(x, k, s, p, d, cm, return_indices=True)
    want, widx = ref_max_pool2d(x.reshape((6,) + hw).astype(np.float64), k, s or k, p, d, cm)
    assert out.dtype == np.float32 and idx.dtype == np.int64
    np.testing.assert_array_equal(out.reshape(want.shape), want.astype(np.float32))
    np.testing.assert_array_equal(idx.reshape(widx.shape), widx)
    np.testing.assert_array_equal(ops.max_pool2d(x, k, s, p, d, cm), out)  # no indices
    g = rng.standard_normal(out.shape).astype(np.float32)
    dx = ops.max_pool2d_backward(g, idx, x.shape)
    np.testing.assert_allclose(dx.reshape((6,) + hw),
                               ref_max_pool2d_backward(g.reshape(want.shape), widx, hw),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("L, k, s, p, d, cm", [(9, 3, 2, 1, 1, False), (9, 3, 2, 1, 2, True),
                                               (5, 2, None, 0, 1, True), (4, 5, 1, 2, 1, False)])
def test_max_pool1d_matches_reference(L, k, s, p, d, cm, isa, rng):
    x = rng.standard_normal((2, 3, L)).astype(np.float32)
    out, idx = ops.max_pool1d(x, k, s, p, d, cm, True)
    want, widx = ref_max_pool2d(x.reshape(6, 1, L).astype(np.float64), (1, k), (1, s or k),
                                (0, p), (1, d), cm)
    np.testing.assert_array_equal(out.reshape(want.shape), want.astype(np.float32))
    np.testing.assert_array_equal(idx.reshape(widx.shape), widx)
    g = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_allclose(ops.max_pool1d_backward(g, idx, x.shape).reshape(6, 1, L),
                               ref_max_pool2d_backward(g.reshape(want.shape), widx, (1, L)),
                               atol=1e-6)


def test_max_pool_nan_inf_and_ties(isa):
    x = np.array([[[[1, np.nan, 2, 5], [np.nan, 0, 5, 5]]]], np.float32)
    out, idx = ops.max_pool2d(x, 2, return_indices=True)
    assert np.isnan(out[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 4  # the last NaN, as torch
    assert out[0, 0, 0, 1] == 5 and idx[0, 0, 0, 1] == 3       # ties: the first
    ninf = np.full((1, 1, 2, 2), -np.inf, np.float32)
    out, idx = ops.max_pool2d(ninf, 2, return_indices=True)
    assert out[0, 0, 0, 0] == -np.inf and idx[0, 0, 0, 0] == 0
    out, idx = ops.max_pool2d(ninf, 3, padding=1, return_indices=True)  # 2x2 padded 3x3
    assert out.shape == (1, 1, 1, 1) and idx[0, 0, 0, 0] == 0


def test_max_pool_fast_path_equals_general(isa, rng):
    """2x2/2 takes its own loop: the same bits as the general one (via dilation 1 padding 0
    vs. a 2x2 stride-2 window computed through the ceil-mode general path)."""
    x = rng.standard_normal((3, 4, 9, 10)).astype(np.float32)
    x[0, 0, 1, 1] = np.nan
    out, idx = ops.max_pool2d(x, 2, return_indices=True)
    want, widx = ref_max_pool2d(x.reshape(12, 9, 10).astype(np.float64), (2, 2), (2, 2),
                                (0, 0), (1, 1), False)
    np.testing.assert_array_equal(out.reshape(want.shape), want.astype(np.float32))
    np.testing.assert_array_equal(idx.reshape(widx.shape), widx)


def test_max_pool_finite_differences(rng):
    x = distinct((2, 2, 5, 6), rng)
    fd_check(nn.MaxPool2d(3, 2, 1), x, rng, calls=(1,))
    fd_check(nn.MaxPool1d(2, 1, 1, ceil_mode=True), distinct((2, 3, 7), rng), rng, calls=(1,))
    fd_check(nn.AdaptiveMaxPool2d((2, 3)), x, rng, calls=(1,))
    fd_check(nn.AdaptiveMaxPool1d(4), distinct((2, 3, 7), rng), rng, calls=(1,))


# ---- average pooling ---------------------------------------------------------------

AVG_GRID = [  # (H, W), kernel, stride, padding, ceil_mode, count_include_pad, divisor
    ((6, 7), (2, 2), None, (0, 0), False, True, None),
    ((5, 9), (3, 2), (2, 1), (1, 1), False, True, None),
    ((5, 9), (3, 2), (2, 1), (1, 1), True, False, None),
    ((5, 8), (3, 3), (2, 3), (1, 0), True, True, None),
    ((5, 8), (3, 3), (2, 2), (1, 1), True, True, 4),
    ((2, 3), (3, 3), (2, 2), (1, 1), True, False, None),
]


@pytest.mark.parametrize("hw, k, s, p, cm, cip, div", AVG_GRID)
def test_avg_pool2d_matches_reference(hw, k, s, p, cm, cip, div, isa, rng):
    x = rng.standard_normal((2, 3) + hw).astype(np.float32)
    out = ops.avg_pool2d(x, k, s, p, cm, cip, div)
    x64 = x.reshape((6,) + hw).astype(np.float64)
    want = ref_avg_pool2d(x64, k, s or k, p, cm, cip, div)
    np.testing.assert_allclose(out.reshape(want.shape), want, rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(out.shape).astype(np.float32)
    dx = ops.avg_pool2d_backward(g, x.shape, k, s, p, cm, cip, div)
    np.testing.assert_allclose(dx.reshape(x64.shape),
                               ref_avg_pool2d_backward(g.reshape(want.shape).astype(np.float64),
                                                       hw, k, s or k, p, cm, cip, div),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("L, k, s, p, cm, cip", [(9, 3, 2, 1, False, True), (9, 3, 2, 1, True, False),
                                                 (5, 2, None, 0, True, True)])
def test_avg_pool1d_matches_reference(L, k, s, p, cm, cip, isa, rng):
    x = rng.standard_normal((2, 3, L)).astype(np.float32)
    out = ops.avg_pool1d(x, k, s, p, cm, cip)
    want = ref_avg_pool2d(x.reshape(6, 1, L).astype(np.float64), (1, k), (1, s or k), (0, p),
                          cm, cip)
    np.testing.assert_allclose(out.reshape(want.shape), want, rtol=1e-5, atol=1e-6)
    g = rng.standard_normal(out.shape).astype(np.float32)
    np.testing.assert_allclose(
        ops.avg_pool1d_backward(g, x.shape, k, s, p, cm, cip).reshape(6, 1, L),
        ref_avg_pool2d_backward(g.reshape(want.shape).astype(np.float64), (1, L), (1, k),
                                (1, s or k), (0, p), cm, cip), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hw, out_size", [((7, 5), (3, 2)), ((4, 6), (4, 6)), ((5, 5), (1, 1)),
                                          ((3, 8), (5, 3)), ((6, 9), (None, 4))])
def test_adaptive_pools_match_reference(hw, out_size, isa, rng):
    x = rng.standard_normal((2, 3) + hw).astype(np.float32)
    oh, ow = (hw[i] if o is None else o for i, o in enumerate(out_size))
    x64 = x.reshape((6,) + hw).astype(np.float64)
    want, _ = ref_adaptive(x64, oh, ow, "avg")
    out = ops.adaptive_avg_pool2d(x, out_size)
    np.testing.assert_allclose(out.reshape(want.shape), want, rtol=1e-5, atol=1e-6)
    wmax, widx = ref_adaptive(x64, oh, ow, "max")
    m, idx = ops.adaptive_max_pool2d(x, out_size, return_indices=True)
    np.testing.assert_array_equal(m.reshape(wmax.shape), wmax.astype(np.float32))
    np.testing.assert_array_equal(idx.reshape(widx.shape), widx)
    g = rng.standard_normal(out.shape).astype(np.float32)
    dx = ops.adaptive_max_pool2d_backward(g, idx, x.shape)
    np.testing.assert_allclose(dx.reshape(x64.shape),
                               ref_max_pool2d_backward(g.reshape(want.shape), widx, hw), atol=1e-6)
    # adaptive avg backward: each bin's gradient spread over it
    da = ops.adaptive_avg_pool2d_backward(g, x.shape)
    want_d = np.zeros(x64.shape)
    for i, (h0, h1) in enumerate(bins(hw[0], oh)):
        for j, (w0, w1) in enumerate(bins(hw[1], ow)):
            want_d[:, h0:h1, w0:w1] += g.reshape(6, oh, ow)[:, i, j, None, None] / ((h1 - h0) * (w1 - w0))
    np.testing.assert_allclose(da.reshape(x64.shape), want_d, rtol=1e-5, atol=1e-6)
    # 1-D
    x1 = x[:, :, 0, :]
    a1 = ops.adaptive_avg_pool1d(x1, ow)
    np.testing.assert_allclose(a1.reshape(6, 1, ow), ref_adaptive(x64[:, :1], 1, ow, "avg")[0],
                               rtol=1e-5, atol=1e-6)
    m1, i1 = ops.adaptive_max_pool1d(x1, ow, True)
    np.testing.assert_array_equal(i1.reshape(6, 1, ow), ref_adaptive(x64[:, :1], 1, ow, "max")[1])


def test_avg_pools_finite_differences(rng):
    x = rng.standard_normal((2, 2, 5, 6)).astype(np.float32)
    for m in [nn.AvgPool2d(3, 2, 1), nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
              nn.AvgPool2d((2, 3), 1, divisor_override=5), nn.AdaptiveAvgPool2d((3, 4))]:
        fd_check(m, x, rng)
    x1 = rng.standard_normal((2, 3, 7)).astype(np.float32)
    for m in [nn.AvgPool1d(3, 2, 1, ceil_mode=True), nn.AdaptiveAvgPool1d(3)]:
        fd_check(m, x1, rng)


# ---- threads, layouts, edge shapes -----------------------------------------------------

def test_threads_bitwise_equal(rng):
    x = rng.standard_normal((5, 7, 33, 31)).astype(np.float32)
    runs = []
    for n in (1, 2, 3):
        with fastnn.num_threads(n):
            o, i = ops.max_pool2d(x, 3, 2, 1, return_indices=True)
            a = ops.avg_pool2d(x, 3, 2, 1, ceil_mode=True)
            aa = ops.adaptive_avg_pool2d(x, (5, 7))
            am, ai = ops.adaptive_max_pool2d(x, (5, 7), True)
            g = np.ones_like(a)
            runs.append([o, i, a, aa, am, ops.max_pool2d_backward(o, i, x.shape),
                         ops.avg_pool2d_backward(g, x.shape, 3, 2, 1, True),
                         ops.adaptive_avg_pool2d_backward(aa, x.shape)])
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert a.tobytes() == b.tobytes()


def test_unbatched_empty_batch_and_non_contiguous(isa, rng):
    x = rng.standard_normal((3, 6, 8)).astype(np.float32)
    o, i = ops.max_pool2d(x, 2, return_indices=True)
    ob, ib = ops.max_pool2d(x[None], 2, return_indices=True)
    np.testing.assert_array_equal(o, ob[0])
    np.testing.assert_array_equal(i, ib[0])
    assert ops.avg_pool2d(np.zeros((0, 3, 4, 4), np.float32), 2).shape == (0, 3, 2, 2)
    assert ops.max_pool1d(np.zeros((0, 3, 4), np.float32), 2).shape == (0, 3, 2)
    xt = rng.standard_normal((2, 3, 8, 6)).astype(np.float64).transpose(0, 1, 3, 2)
    np.testing.assert_array_equal(ops.avg_pool2d(xt, 2),
                                  ops.avg_pool2d(np.ascontiguousarray(xt, np.float32), 2))
    assert ops.max_pool2d_backward(np.zeros((0, 3, 2, 2), np.float32),
                                   np.zeros((0, 3, 2, 2), np.int64), (0, 3, 4, 4)).shape == (0, 3, 4, 4)


BAD = [
    (lambda x: ops.max_pool2d(x, 7), ValueError, "kernel_size"),
    (lambda x: ops.max_pool2d(x, 3, padding=2), ValueError, "padding"),
    (lambda x: ops.max_pool2d(x, 2, stride=0), ValueError, "stride"),
    (lambda x: ops.max_pool2d(x, 0), ValueError, "kernel_size"),
    (lambda x: ops.max_pool2d(x, 2, dilation=0), ValueError, "dilation"),
    (lambda x: ops.max_pool2d(x, (2, 2, 2)), ValueError, "kernel_size"),
    (lambda x: ops.max_pool2d(x[0, 0], 2), ValueError, "input"),
    (lambda x: ops.max_pool1d(x, 2), ValueError, "input"),
    (lambda x: ops.max_pool2d(x, 2.0), TypeError, "kernel_size"),
    (lambda x: ops.max_pool2d(x.astype(complex), 2), TypeError, "input"),
    (lambda x: ops.avg_pool2d(x, 3, padding=2), ValueError, "padding"),
    (lambda x: ops.avg_pool2d(x, 2, stride=(1, 0)), ValueError, "stride"),
    (lambda x: ops.avg_pool2d(x, 2, divisor_override=0), ValueError, "divisor_override"),
    (lambda x: ops.avg_pool2d(x, 6, padding=0), ValueError, "kernel_size"),
    (lambda x: ops.adaptive_avg_pool2d(x, 0), ValueError, "output_size"),
    (lambda x: ops.adaptive_max_pool2d(x, (2, 2, 2)), ValueError, "output_size"),
    (lambda x: ops.adaptive_avg_pool1d(x[0], 2.5), TypeError, "output_size"),
    (lambda x: ops.max_pool2d_backward(np.ones((1, 2, 2, 2)), np.full((1, 2, 2, 2), 99),
                                       x.shape), ValueError, "indices"),
    (lambda x: ops.max_pool2d_backward(np.ones((1, 2, 2, 2)), np.zeros((1, 2, 2, 1), np.int64),
                                       x.shape), ValueError, "indices"),
    (lambda x: ops.max_pool2d_backward(np.ones((1, 2, 2, 2)), np.zeros((1, 2, 2, 2), np.int64),
                                       (1, 2, 5)), ValueError, "input_shape"),
    (lambda x: ops.max_pool2d_backward(np.ones((1, 2, 2, 2)), np.zeros((1, 2, 2, 2)),
                                       x.shape), TypeError, "indices"),
    (lambda x: ops.avg_pool2d_backward(np.ones((1, 2, 3, 3)), x.shape, 2), ValueError,
     "grad_out"),
    (lambda x: nn.MaxPool2d(0), ValueError, "kernel_size"),
    (lambda x: nn.AvgPool2d(2, stride=0), ValueError, "stride"),
    (lambda x: nn.MaxPool2d(3, padding=2)(x), ValueError, "padding"),
    (lambda x: nn.AdaptiveAvgPool2d(0), ValueError, "output_size"),
    (lambda x: nn.ConstantPad2d((1, 2, 3), 0.0), ValueError, "padding"),
    (lambda x: nn.ZeroPad2d(-3)(x), ValueError, "padding"),
    (lambda x: nn.ZeroPad2d(1)(x[0, 0]), ValueError, "input"),
    (lambda x: nn.Upsample(scale_factor=2, mode="bilinear"), ValueError, "mode"),
    (lambda x: nn.Upsample(), ValueError, "size"),
    (lambda x: nn.Upsample(size=3, scale_factor=2), ValueError, "scale_factor"),
    (lambda x: nn.Upsample(size=(3, 3, 3))(x), ValueError, "size"),
    (lambda x: nn.Upsample(scale_factor=2)(x[0, 0]), ValueError, "input"),
]


@pytest.mark.parametrize("call, exc, word", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_arguments_name_the_argument(call, exc, word):
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(exc, match=word):
        call(x)


# ---- padding and upsampling ------------------------------------------------------------

@pytest.mark.parametrize("padding", [2, (1, 0, 2, 3), (-1, 2, 0, -2), (0, 0, 0, 0), (-2, -3, 1, 1)])
def test_constant_pad_matches_numpy_and_grad(padding, rng):
    x = rng.standard_normal((2, 3, 4, 5)).astype(np.float32)
    m = nn.ConstantPad2d(padding, 1.5)
    l, r, t, b = (padding,) * 4 if isinstance(padding, int) else padding
    y = m(x)
    big = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (max(t, 0), max(b, 0)),
                                         (max(l, 0), max(r, 0))), constant_values=1.5)
    want = big[:, :, max(-t, 0):big.shape[2] - max(-b, 0), max(-l, 0):big.shape[3] - max(-r, 0)]
    np.testing.assert_array_equal(y, want.astype(np.float32))
    fd_check(m, x, rng)
    z = nn.ZeroPad2d(padding)(x[0])  # unbatched
    np.testing.assert_array_equal(z, np.where(want[0] == 1.5, 0, want[0]).astype(np.float32))


def ref_nearest_index(n_in, n_out, scale=None):
    s = np.float32(1.0 / scale) if scale else np.float32(n_in) / np.float32(n_out)
    return [min(int(np.floor(np.float32(i) * s)), n_in - 1) for i in range(n_out)]


@pytest.mark.parametrize("shape, kw", [((2, 3, 5), {"scale_factor": 2}),
                                       ((2, 3, 5), {"size": 7}),
                                       ((2, 3, 4, 5), {"scale_factor": (2, 3)}),
                                       ((2, 3, 4, 5), {"size": (3, 8)}),
                                       ((2, 3, 4, 5), {"scale_factor": 1.5})])
def test_upsample_nearest(shape, kw, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    m = nn.Upsample(**kw)
    y = m(x)
    nd = len(shape) - 2
    size, sf = kw.get("size"), kw.get("scale_factor")
    outs = (size if isinstance(size, tuple) else (size,) * nd) if size else tuple(
        int(np.floor(n * (sf[i] if isinstance(sf, tuple) else sf))) for i, n in enumerate(shape[2:]))
    idx = [ref_nearest_index(n, o, None if size else (sf[i] if isinstance(sf, tuple) else sf))
           for i, (n, o) in enumerate(zip(shape[2:], outs))]
    want = x[(Ellipsis,) + tuple(np.ix_(*idx))] if nd == 2 else x[:, :, idx[0]]
    np.testing.assert_array_equal(y, want)
    fd_check(m, x, rng)


MODULE_SAMPLES = [
    (nn.MaxPool2d(3, 2, 1, 2, ceil_mode=True), (2, 3, 9, 8)),
    (nn.MaxPool1d(3, 2, 1, return_indices=True), (2, 3, 9)),
    (nn.AvgPool2d((3, 2), (2, 1), (1, 0), True, False, 3), (2, 3, 9, 8)),
    (nn.AvgPool1d(3, 2, 1), (2, 3, 9)),
    (nn.AdaptiveAvgPool2d((None, 3)), (2, 3, 9, 8)),
    (nn.AdaptiveAvgPool1d(4), (2, 3, 9)),
    (nn.AdaptiveMaxPool2d((2, 3), return_indices=True), (2, 3, 9, 8)),
    (nn.AdaptiveMaxPool1d(4), (2, 3, 9)),
    (nn.ZeroPad2d((1, 2, -1, 0)), (2, 3, 9, 8)),
    (nn.ConstantPad2d(2, -1.25), (2, 3, 9, 8)),
    (nn.Upsample(scale_factor=(2, 1.5)), (2, 3, 9, 8)),
    (nn.Upsample(size=5), (2, 3, 9)),
]


@pytest.mark.parametrize("module, shape", MODULE_SAMPLES,
                         ids=[type(m).__name__ for m, _ in MODULE_SAMPLES])
def test_save_load_round_trip(module, shape, tmp_path, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    model = nn.Sequential(module)
    path = tmp_path / "m.fastnn"
    fastnn.save(model, path)
    back = fastnn.load(path)
    assert repr(back) == repr(model)
    y, y2 = model(x), back(x)
    for a, b in zip(y if isinstance(y, tuple) else (y,), y2 if isinstance(y2, tuple) else (y2,)):
        np.testing.assert_array_equal(a, b)
