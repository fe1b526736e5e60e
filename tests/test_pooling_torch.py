"""Pooling, padding and upsampling against PyTorch: forward, indices, input gradient, over a
grid of every option (ceil_mode edge cases, return_indices, dilation, count_include_pad,
divisor_override, adaptive sizes, unbatched inputs), and the argument errors torch raises.

One known difference: a max-pool window with no tap inside the input (possible only with
dilation skipping the whole input, e.g. H = 1, kernel 2, padding 1, dilation 2) is -inf in
both, but torch's index for it points outside the plane; fastnn's stays inside it (the
window's first clipped tap). Such cases are left out of the index comparison."""
import itertools
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from fastnn import nn, ops  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    torch.manual_seed(0)
    torch.set_num_threads(1)


def t(x):
    return torch.from_numpy(np.array(x, copy=True)).requires_grad_()


def check(got, want, exact=False):
    want = want.detach().numpy()
    assert got.shape == want.shape and got.dtype == want.dtype
    if exact:
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def torch_or_none(fn):
    try:
        return fn()
    except RuntimeError:
        return None


def check_grad(rng, y, yt, xt, backward, exact=False):
    """a random d out through torch's graph and fastnn's backward: the input grads agree"""
    g = rng.standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(g))
    check(backward(g), xt.grad, exact)


def bad_padding(k, p):
    return p > (k if isinstance(k, int) else min(k)) // 2


def torch_result_or_same_error(k, p, torch_fn, fastnn_fn):
    """torch's result; None after checking fastnn refuses the arguments, naming padding
    (more than half the kernel) or kernel_size (torch finds the output empty)"""
    if bad_padding(k, p):
        with pytest.raises(ValueError, match="padding"):
            fastnn_fn()
        return None
    res = torch_or_none(torch_fn)
    if res is None:
        with pytest.raises(ValueError, match="kernel_size"):
            fastnn_fn()
    return res


MAX_CASES = list(itertools.product([(1, 5), (5, 6), (7, 4)], [1, 2, 3, (3, 2)], [None, 1, 2, 3],
                                   [0, 1], [1, 2], [False, True]))


@pytest.mark.parametrize("hw, k, s, p, d, cm", MAX_CASES)
def test_max_pool2d(hw, k, s, p, d, cm):
    rng = np.random.default_rng(zlib.crc32(repr((hw, k, s, p, d, cm)).encode()))
    x = rng.standard_normal((2, 3) + hw).astype(np.float32)
    xt = t(x)
    res = torch_result_or_same_error(k, p, lambda: F.max_pool2d(xt, k, s, p, d, cm, True),
                                     lambda: ops.max_pool2d(x, k, s, p, d, cm, True))
    if res is None:
        return
    yt, it = res
    y, i = ops.max_pool2d(x, k, s, p, d, cm, True)
    check(y, yt, exact=True)
    inside = it.numpy() < hw[0] * hw[1]
    np.testing.assert_array_equal(i[inside], it.numpy()[inside])
    if not inside.all():
        return
    check_grad(rng, y, yt, xt, lambda g: ops.max_pool2d_backward(g, i, x.shape))


@pytest.mark.parametrize("L, k, s, p, d, cm", list(itertools.product(
    [4, 7], [1, 2, 3], [None, 2], [0, 1], [1, 2], [False, True])))
def test_max_pool1d_module(L, k, s, p, d, cm):
    rng = np.random.default_rng(L * 100 + k * 10 + p)
    x = rng.standard_normal((2, 3, L)).astype(np.float32)
    if p > k // 2:
        with pytest.raises(ValueError, match="padding"):
            nn.MaxPool1d(k, s, p, d, True, cm)(x)
        return
    tm = torch.nn.MaxPool1d(k, s, p, d, True, cm)
    xt = t(x)
    res = torch_or_none(lambda: tm(xt))
    fm = nn.MaxPool1d(k, s, p, d, True, cm)
    assert repr(fm) == repr(tm)
    if res is None:
        with pytest.raises(ValueError):
            fm(x)
        return
    (y, i), (yt, it) = fm(x), res
    check(y, yt, exact=True)
    np.testing.assert_array_equal(i, it.numpy())
    check_grad(rng, y, yt, xt, fm.backward)


AVG_CASES = list(itertools.product([(1, 5), (5, 6), (7, 4)], [1, 2, 3, (3, 2)], [None, 1, 2],
                                   [0, 1], [False, True], [True, False], [None, 4]))


@pytest.mark.parametrize("hw, k, s, p, cm, cip, div", AVG_CASES)
def test_avg_pool2d(hw, k, s, p, cm, cip, div):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 3) + hw).astype(np.float32)
    xt = t(x)
    yt = torch_result_or_same_error(k, p, lambda: F.avg_pool2d(xt, k, s, p, cm, cip, div),
                                    lambda: ops.avg_pool2d(x, k, s, p, cm, cip, div))
    if yt is None:
        return
    m = nn.AvgPool2d(k, s, p, cm, cip, div)
    assert repr(m) == repr(torch.nn.AvgPool2d(k, s, p, cm, cip, div))
    y = m(x)
    check(y, yt)
    check_grad(rng, y, yt, xt, m.backward)


@pytest.mark.parametrize("L, k, s, p, cm, cip", list(itertools.product(
    [3, 8], [1, 2, 3], [None, 2], [0, 1], [False, True], [True, False])))
def test_avg_pool1d(L, k, s, p, cm, cip):
    rng = np.random.default_rng(L + k)
    x = rng.standard_normal((3, L)).astype(np.float32)  # unbatched
    if p > k // 2:
        with pytest.raises(ValueError, match="padding"):
            ops.avg_pool1d(x, k, s, p, cm, cip)
        return
    xt = t(x)
    tm = torch.nn.AvgPool1d(k, s, p, cm, cip)
    yt = torch_or_none(lambda: tm(xt))
    fm = nn.AvgPool1d(k, s, p, cm, cip)
    assert repr(fm) == repr(tm)
    if yt is None:
        with pytest.raises(ValueError):
            fm(x)
        return
    y = fm(x)
    check(y, yt)
    check_grad(rng, y, yt, xt, fm.backward)


def check_adaptive_pair(x, ft, tt, rng):
    """forward (and indices), input grad of a fastnn / torch adaptive pool pair"""
    assert repr(ft) == repr(tt)
    xt = t(x)
    yt, y = tt(xt), ft(x)
    if isinstance(yt, tuple):
        np.testing.assert_array_equal(y[1], yt[1].numpy())
        yt, y = yt[0], y[0]
    check(y, yt)
    check_grad(rng, y, yt, xt, ft.backward)


@pytest.mark.parametrize("hw, size", list(itertools.product(
    [(1, 1), (5, 7), (8, 3), (9, 9)], [1, 2, 3, (4, None), (None, 2), (5, 6)])))
def test_adaptive_pools_2d(hw, size):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3) + hw).astype(np.float32)
    check_adaptive_pair(x, nn.AdaptiveAvgPool2d(size), torch.nn.AdaptiveAvgPool2d(size), rng)
    check_adaptive_pair(x, nn.AdaptiveMaxPool2d(size, True),
                        torch.nn.AdaptiveMaxPool2d(size, True), rng)


@pytest.mark.parametrize("L, size", list(itertools.product([1, 5, 12], [1, 3, 5, 7])))
def test_adaptive_pools_1d(L, size):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, L)).astype(np.float32)
    check_adaptive_pair(x, nn.AdaptiveAvgPool1d(size), torch.nn.AdaptiveAvgPool1d(size), rng)
    check_adaptive_pair(x, nn.AdaptiveMaxPool1d(size, True),
                        torch.nn.AdaptiveMaxPool1d(size, True), rng)


def test_nan_and_inf_like_torch():
    x = np.array([[[[np.nan, 1, -np.inf, 2], [3, np.nan, -np.inf, -np.inf],
                    [np.inf, 0, 1, 1], [1, 1, np.nan, 1]]]], np.float32)
    for args in [(2,), (3, 1, 1), (2, 1, 0, 2, True)]:
        y, i = ops.max_pool2d(x, *args, return_indices=True)
        yt, it = F.max_pool2d(torch.from_numpy(x), *args, return_indices=True)
        np.testing.assert_array_equal(y, yt.numpy())
        np.testing.assert_array_equal(i, it.numpy())
        y, i = ops.adaptive_max_pool2d(x, 3, True)
        yt, it = F.adaptive_max_pool2d(torch.from_numpy(x), 3, True)
        np.testing.assert_array_equal(y, yt.numpy())
        np.testing.assert_array_equal(i, it.numpy())


@pytest.mark.parametrize("padding", [1, (1, 2, 0, 3), (-1, 2, 1, -2), (0, -3, -1, 0)])
def test_padding_modules(padding):
    rng = np.random.default_rng(5)
    for shape in [(2, 3, 4, 5), (3, 4, 5)]:
        x = rng.standard_normal(shape).astype(np.float32)
        for fm, tm in [(nn.ZeroPad2d(padding), torch.nn.ZeroPad2d(padding)),
                       (nn.ConstantPad2d(padding, -2.5), torch.nn.ConstantPad2d(padding, -2.5))]:
            assert repr(fm) == repr(tm)
            xt = t(x)
            yt, y = tm(xt), fm(x)
            check(y, yt, exact=True)
            check_grad(rng, y, yt, xt, fm.backward, exact=True)


@pytest.mark.parametrize("shape, kw", [
    ((2, 3, 5), {"scale_factor": 2}), ((2, 3, 5), {"scale_factor": 1.7}),
    ((2, 3, 5), {"size": 12}), ((2, 3, 7), {"size": 3}),
    ((2, 3, 4, 5), {"scale_factor": 2}), ((2, 3, 4, 5), {"scale_factor": (1.5, 2.5)}),
    ((2, 3, 4, 5), {"size": (7, 3)}), ((2, 3, 6, 5), {"size": 9}),
    ((2, 3, 4, 5), {"scale_factor": 1.3, "recompute_scale_factor": True}),
    ((2, 3, 7, 5), {"scale_factor": 0.5}),
])
def test_upsample_nearest(shape, kw):
    rng = np.random.default_rng(9)
    x = rng.standard_normal(shape).astype(np.float32)
    fm, tm = nn.Upsample(**kw), torch.nn.Upsample(**kw)
    assert repr(fm) == repr(tm)
    xt = t(x)
    yt, y = tm(xt), fm(x)
    check(y, yt, exact=True)
    check_grad(rng, y, yt, xt, fm.backward)


@pytest.mark.parametrize("mode", ["linear", "bilinear", "bicubic", "nearest-exact", "area"])
def test_upsample_other_modes_refused(mode):
    with pytest.raises(ValueError, match="mode"):
        nn.Upsample(scale_factor=2, mode=mode)


def test_module_reprs_match_torch():
    pairs = [(nn.MaxPool2d(3, 2, 1, 2, True, True), torch.nn.MaxPool2d(3, 2, 1, 2, True, True)),
             (nn.MaxPool2d((3, 2)), torch.nn.MaxPool2d((3, 2))),
             (nn.AvgPool2d(3), torch.nn.AvgPool2d(3)),
             (nn.AvgPool1d(3, 1, 1), torch.nn.AvgPool1d(3, 1, 1)),
             (nn.AdaptiveAvgPool2d((None, 3)), torch.nn.AdaptiveAvgPool2d((None, 3))),
             (nn.ZeroPad2d(2), torch.nn.ZeroPad2d(2)),
             (nn.Upsample(size=(3, 4)), torch.nn.Upsample(size=(3, 4)))]
    for fm, tm in pairs:
        assert repr(fm) == repr(tm)
