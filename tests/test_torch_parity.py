"""Parity of every fastnn.ops kernel with torch.nn.functional (float32, CPU).

Each table row is one op: the fastnn call next to the torch call it must
match, on every ISA path (`isa`) and with 1 and 2 threads on both sides
(`threads` + torch.set_num_threads). Backward kernels are checked against
torch autograd: x.requires_grad_(), y = F.op(x), y.backward(g), x.grad.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from fastnn import ops  # noqa: E402

RTOL, ATOL = 2e-5, 1e-6
# 0 and 1 (degenerate), 7 and 17 (below / across one vector plus a masked
# tail), 1000 and 4097 (many vectors, odd tail), 70001 (> 2 x 32768 elements:
# the element-wise kernels really split over 2 threads)
SIZES = [0, 1, 7, 17, 1000, 4097, 70001]
SHAPES = [(n,) for n in SIZES] + [(), (33, 31), (2, 0, 5)]

F32 = np.finfo(np.float32)
# extreme inputs for the element-wise forward ops
EXTREMES = np.array([
    0.0, -0.0, 1e-45, -1e-45, 1e-40, -1e-40, F32.tiny, -F32.tiny,  # subnormals, smallest normal
    1e-30, -1e-30, 1e30, -1e30, F32.max, -F32.max, np.inf, -np.inf, np.nan,
    88.7, -88.7, 89.0, -89.0, 104.0, -104.0, 20.0, -20.0, 9.0, -9.0, 5.5, -5.5, 1.0, -1.0, 0.5,
], dtype=np.float32)


def tt(a, grad=False):
    t = torch.from_numpy(np.array(a, dtype=np.float32, copy=True))
    return t.requires_grad_() if grad else t


def close(got, want, rtol=RTOL, atol=ATOL):
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))  # same NaN positions
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)


def close_loss(got, want, rtol=RTOL, atol=ATOL):
    assert isinstance(got, float)
    np.testing.assert_allclose(got, float(want), rtol=rtol, atol=atol, equal_nan=True)


def randn(rng, shape, scale=3.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def case(name, *args):
    return pytest.param(*args, id=name)


def bcase(name, *args):
    """a BACKWARD row; the atol-per-|grad_out| column defaults to None (flat ATOL)"""
    return case(name, *(args + (None,) * (4 - len(args))))


def slope(s):
    return (lambda x, **kw: ops.leaky_relu(x, s, **kw)), (lambda t: F.leaky_relu(t, s))


# ---- element-wise forward ----------------------------------------------------
def torch_gelu_erf(t):
    # torch's erf-form GELU (CPU kernel) returns +inf for float32 max (an intermediate
    # overflows) and NaN for +inf; there GELU(x) = x, which is what fastnn returns.
    # Everywhere else this is torch's value.
    return torch.where(t > 1e38, t, F.gelu(t))


#                name               fastnn                                   torch
FORWARD = [
    case("relu",            ops.relu,                                  F.relu),
    case("leaky_relu",      ops.leaky_relu,                            F.leaky_relu),
    case("leaky_relu_0",    *slope(0.0)),
    case("leaky_relu_0.2",  *slope(0.2)),
    case("leaky_relu_-1.5", *slope(-1.5)),
    case("sigmoid",         ops.sigmoid,                               torch.sigmoid),
    case("tanh",            ops.tanh,                                  torch.tanh),
    case("gelu",            ops.gelu,                                  torch_gelu_erf),
    case("gelu_none",       lambda x, **kw: ops.gelu(x, "none", **kw), torch_gelu_erf),
    case("gelu_tanh",       lambda x, **kw: ops.gelu(x, "tanh", **kw), lambda t: F.gelu(t, approximate="tanh")),
    case("silu",            ops.silu,                                  F.silu),
]


@pytest.mark.parametrize("fnn, tfn", FORWARD)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_forward(parity, rng, fnn, tfn, shape):
    x = randn(rng, shape)
    close(fnn(x), tfn(tt(x)))


@pytest.mark.parametrize("fnn, tfn", FORWARD)
@pytest.mark.parametrize("n", [len(EXTREMES), 17, 4097], ids=lambda n: f"n{n}")
def test_forward_extremes(parity, rng, fnn, tfn, n):
    # every extreme at several positions: in full vectors and in masked tails
    x = np.resize(EXTREMES, n) if n == len(EXTREMES) else rng.choice(EXTREMES, n)
    # atol 1e-6 also covers torch's erf-form GELU for x << 0: it computes
    # 0.5 x (1 + erf(x / sqrt 2)) and 1 + erf cancels (abs error ~ |x| 3e-8), while
    # fastnn uses erfc; relative agreement there is impossible, absolute is fine
    close(fnn(x), tfn(tt(x)))


@pytest.mark.parametrize("fnn, tfn", FORWARD)
def test_forward_out(parity, rng, fnn, tfn):
    x = randn(rng, (4097,))
    out = np.full_like(x, np.nan)
    assert fnn(x, out=out) is out
    close(out, tfn(tt(x)))
    want = tfn(tt(x))
    assert fnn(x, out=x) is x  # exact aliasing is allowed
    close(x, want)


# ---- element-wise backward (autograd) -----------------------------------------
def slope_bwd(s):
    return (lambda t: F.leaky_relu(t, s)), (lambda g, x: ops.leaky_relu_backward(g, x, s)), "x"


# torch's tanh-form GELU backward computes 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) u'
# and both 1 + tanh and 1 - tanh^2 cancel for |x| > ~4: its absolute error reaches
# 1.04e-6 |grad_out| (at x = 5.06; vs a float64 reference), fastnn's sigmoid(2u) form
# does not cancel. So that row's atol is 1.2e-6 per unit of |grad_out|.
GELU_TANH_BWD_ATOL = 1.2e-6

#                name               torch forward                            fastnn backward                                          fastnn gets  atol per |g|
BACKWARD = [
    bcase("relu",            F.relu,                                    ops.relu_backward,                                          "x"),
    bcase("leaky_relu",      F.leaky_relu,                              ops.leaky_relu_backward,                                    "x"),
    bcase("leaky_relu_0",    *slope_bwd(0.0)),
    bcase("leaky_relu_0.2",  *slope_bwd(0.2)),
    bcase("leaky_relu_-1.5", *slope_bwd(-1.5)),
    bcase("sigmoid",         torch.sigmoid,                             ops.sigmoid_backward,                                       "y"),
    bcase("tanh",            torch.tanh,                                ops.tanh_backward,                                          "y"),
    bcase("gelu",            F.gelu,                                    ops.gelu_backward,                                          "x"),
    bcase("gelu_none",       lambda t: F.gelu(t, approximate="none"),   lambda g, x: ops.gelu_backward(g, x, approximate="none"),  "x"),
    bcase("gelu_tanh",       lambda t: F.gelu(t, approximate="tanh"),   lambda g, x: ops.gelu_backward(g, x, approximate="tanh"),  "x", GELU_TANH_BWD_ATOL),
    bcase("silu",            F.silu,                                    ops.silu_backward,                                          "x"),
]


def autograd(tfn, x, g):
    """(y, x.grad) of torch: y = tfn(x); y.backward(g)."""
    xt = tt(x, grad=True)
    y = tfn(xt)
    y.backward(tt(g))
    return y.detach().numpy(), xt.grad


@pytest.mark.parametrize("tfn, fnn_bwd, saved, atol_per_g", BACKWARD)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_backward(parity, rng, tfn, fnn_bwd, saved, atol_per_g, shape):
    x = randn(rng, shape)
    if x.size:
        x.reshape(-1)[:: 5] = 0.0  # the kink of relu / leaky_relu
    g = randn(rng, shape, scale=1.0)
    y, want = autograd(tfn, x, g)
    atol = ATOL if atol_per_g is None else atol_per_g * max(1.0, np.abs(g).max(initial=0))
    close(fnn_bwd(g, x if saved == "x" else y), want, atol=atol)


# ---- softmax / log_softmax ----------------------------------------------------
SOFTMAX = [
    case("softmax",     ops.softmax,     F.softmax,     ops.softmax_backward),
    case("log_softmax", ops.log_softmax, F.log_softmax, ops.log_softmax_backward),
]
SOFTMAX_SHAPES = [  # (shape, axis)
    ((0,), -1), ((1,), 0), ((7,), 0), ((17,), -1), ((1000,), 0), ((4097,), -1),
    ((7, 17), 0), ((7, 17), 1), ((17, 1000), -1), ((1000, 7), 0), ((3, 4097), 1),
    ((0, 5), 1), ((5, 0), 0), ((5, 0), 1),
    ((3, 7, 17), 0), ((3, 7, 17), 1), ((3, 7, 17), 2), ((3, 7, 17), -2),
    ((2, 1000, 33), 1), ((4, 17, 5, 3), 2), ((4, 17, 5, 3), -3), ((2, 3, 1, 4097), 1),
    ((64, 2048), -1),  # > 2 x 32768 elements: the rows split over 2 threads
    ((2048, 64), 0),   # as large, but one (C, D) block along axis 0
]


def softmax_input(rng, shape, axis, infs):
    x = randn(rng, shape)
    if infs and x.size:
        x[rng.random(shape) < 0.25] = -np.inf  # rows containing -inf
        # one whole fibre along `axis` all -inf -> NaN there, as in torch
        index = [0] * x.ndim
        index[axis] = slice(None)
        x[tuple(index)] = -np.inf
        if infs == "nan+inf":  # and a row with +inf, one with NaN: NaN rows in torch
            flat = np.moveaxis(x, axis, -1).reshape(-1, shape[axis])  # a copy unless axis = -1
            rows = rng.choice(len(flat), 2)
            flat[rows[0], rng.integers(shape[axis])] = np.inf
            flat[rows[1], rng.integers(shape[axis])] = np.nan
            moved = np.moveaxis(x, axis, -1).shape
            x = np.ascontiguousarray(np.moveaxis(flat.reshape(moved), -1, axis))
    return x


@pytest.mark.parametrize("fnn, tfn, fnn_bwd", SOFTMAX)
@pytest.mark.parametrize("shape, axis", SOFTMAX_SHAPES, ids=str)
@pytest.mark.parametrize("infs", [None, "-inf", "nan+inf"])
def test_softmax(parity, rng, fnn, tfn, fnn_bwd, shape, axis, infs):
    x = softmax_input(rng, shape, axis, infs)
    g = randn(rng, shape, scale=1.0)
    y, want_grad = autograd(lambda t: tfn(t, dim=axis), x, g)
    close(fnn(x, axis=axis), y)
    close(fnn_bwd(g, y, axis=axis), want_grad, atol=softmax_grad_atol(fnn, g, y, axis))


def softmax_grad_atol(fnn, g, y, axis):
    """The gradient is a difference g - p * s (softmax: p = y, s = sum(g y);
    log_softmax: p = exp(y), s = sum(g)) with s a float32 sum along the axis; both
    torch's and fastnn's rounding error is relative to |p s|, not to the difference
    (e.g. 1.9e-5 on |p s| ~ 9 for (64, 2048), both vs a float64 reference)."""
    g, y = g.astype(np.float64), y.astype(np.float64)
    with np.errstate(invalid="ignore"):
        if fnn is ops.log_softmax:
            term = np.exp(y) * np.abs(g).sum(axis=axis, keepdims=True)
        else:
            term = np.abs(y) * np.abs(g * y).sum(axis=axis, keepdims=True)
    return ATOL + RTOL * np.nanmax(term, initial=0.0)


@pytest.mark.parametrize("fnn, tfn, fnn_bwd", SOFTMAX)
def test_softmax_0d_and_default_axis(parity, rng, fnn, tfn, fnn_bwd):
    x = randn(rng, ())
    close(fnn(x), tfn(tt(x), dim=0))
    x = randn(rng, (3, 5, 17))
    g = randn(rng, x.shape, scale=1.0)
    y, want_grad = autograd(lambda t: tfn(t, dim=-1), x, g)
    close(fnn(x), y)
    close(fnn_bwd(g, y), want_grad)


# ---- losses -------------------------------------------------------------------
CE_SHAPES = [  # logits shape; labels have the shape without dim 1 (() for (C,))
    (1, 1), (7, 17), (17, 1000), (1000, 7), (4097, 3), (0, 5), (12000, 10),
    (1,), (17,), (1000,),
    (2, 5, 3, 4), (3, 7, 17), (0, 3, 2),
]


def torch_ce(x, labels, **kw):
    xt = tt(x, grad=True)
    loss = F.cross_entropy(xt, torch.from_numpy(np.array(labels, dtype=np.int64)), **kw)
    loss.backward()
    return loss.item(), xt.grad


@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize("smoothing", [0.0, 0.1], ids=lambda s: f"ls{s}")
@pytest.mark.parametrize("ignore", ["none", "some", "custom", "all"])
def test_cross_entropy(parity, rng, shape, smoothing, ignore):
    x = randn(rng, shape)
    C = shape[0] if len(shape) == 1 else shape[1]
    lshape = () if len(shape) == 1 else shape[:1] + shape[2:]
    labels = rng.integers(0, C, lshape)
    kw = {"label_smoothing": smoothing}
    if ignore == "some":  # default ignore_index=-100 on about a third of the rows
        labels = np.where(rng.random(lshape) < 0.3, -100, labels)
    elif ignore == "custom":  # a valid class as ignore_index
        kw["ignore_index"] = 0
    elif ignore == "all":
        labels = np.full(lshape, -100)
    loss, grad = ops.cross_entropy(x, labels, **kw)
    want_loss, want_grad = torch_ce(x, labels, **kw)
    kept = max(1, int(np.sum(labels != kw.get("ignore_index", -100))))
    assert np.isnan(loss) == np.isnan(want_loss)  # all rows ignored (or no rows): NaN
    close_loss(loss, want_loss)
    # the gradient is scaled by 1 / kept rows: scale atol along with it
    close(grad, want_grad, atol=ATOL / kept)


@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n{n}")
def test_cross_entropy_extreme_logits(parity, rng, n):
    x = randn(rng, (n, 9))
    x[:, 3] = -np.inf  # a class that can never win, label never on it
    x[::3, 5] = 1e30 if n else 0
    labels = rng.choice([0, 1, 2, 4, 5, 6, 7, 8], n)
    loss, grad = ops.cross_entropy(x, labels)
    want_loss, want_grad = torch_ce(x, labels)
    close_loss(loss, want_loss)
    close(grad, want_grad, atol=ATOL / max(n, 1))


def torch_pointwise(tfn, a, b):
    at = tt(a, grad=True)
    loss = tfn(at, tt(b))
    loss.backward()
    return loss.item(), at.grad


LOSSES = [
    case("mse_loss", ops.mse_loss, F.mse_loss, False),
    case("bce_with_logits", ops.binary_cross_entropy_with_logits,
         F.binary_cross_entropy_with_logits, True),
]


@pytest.mark.parametrize("fnn, tfn, bce", LOSSES)
@pytest.mark.parametrize("shape", SHAPES + [(3, 5, 7)], ids=str)
def test_pointwise_loss(parity, rng, fnn, tfn, bce, shape):
    x = randn(rng, shape)
    if bce:
        t = rng.random(shape).astype(np.float32)
        if t.size:
            t.reshape(-1)[::3] = np.round(t.reshape(-1)[::3])  # some hard 0 / 1 targets
            x.reshape(-1)[::7] = rng.choice([-100.0, -30.0, 0.0, 30.0, 100.0], x.reshape(-1)[::7].shape)
    else:
        t = randn(rng, shape)
    loss, grad = fnn(x, t)
    want_loss, want_grad = torch_pointwise(tfn, x, t)
    assert np.isnan(loss) == np.isnan(want_loss)  # empty input: NaN mean, as torch
    close_loss(loss, want_loss)
    close(grad, want_grad, atol=ATOL / max(1, x.size))
