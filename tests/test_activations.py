"""Element-wise activations: forward and backward against the float64
references, finite differences of every backward, every ISA path, edge sizes
and extreme values."""
import numpy as np
import pytest

import fastnn

from fastnn import ops

import reference as ref

# name: (fastnn forward, reference forward, fastnn backward, reference backward,
#        backward takes the forward output (True) or input (False))
ACTIVATIONS = {
    "relu": (ops.relu, ref.relu, ops.relu_backward, ref.relu_backward, False),
    "leaky_relu": (lambda x: ops.leaky_relu(x, 0.2), lambda x: ref.leaky_relu(x, 0.2),
                   lambda g, x: ops.leaky_relu_backward(g, x, 0.2),
                   lambda g, x: ref.leaky_relu_backward(g, x, 0.2), False),
    "sigmoid": (ops.sigmoid, ref.sigmoid, ops.sigmoid_backward, ref.sigmoid_backward, True),
    "tanh": (ops.tanh, ref.tanh, ops.tanh_backward, ref.tanh_backward, True),
    "gelu": (ops.gelu, ref.gelu, ops.gelu_backward, ref.gelu_backward, False),
    "gelu_tanh": (lambda x: ops.gelu(x, "tanh"), lambda x: ref.gelu(x, "tanh"),
                  lambda g, x: ops.gelu_backward(g, x, "tanh"),
                  lambda g, x: ref.gelu_backward(g, x, "tanh"), False),
    "silu": (ops.silu, ref.silu, ops.silu_backward, ref.silu_backward, False),
}
SIZES = [0, 1, 3, 7, 8, 15, 16, 17, 31, 33, 100, 1000, 4099]
# relative error allowed against float64, and an absolute floor for values near 0
RTOL, ATOL = 4e-6, 1e-37
# gelu_tanh's far negative tail is x * sigmoid(2u) with u ~ x^3: its condition
# number there is ~|x|^3, so rounding u to float32 alone costs ~1e-5 relative
RTOL_FORWARD = {"gelu_tanh": 3e-5}
TINY = np.finfo(np.float32).tiny  # the smallest normal float32; below it kernels flush to 0


def sample(n, rng, scale=4.0):
    return (rng.standard_normal(n) * scale).astype(np.float32)


def assert_close(got, want, rtol=RTOL, atol=ATOL):
    assert got.dtype == np.float32
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=atol, equal_nan=True)


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("n", SIZES)
def test_forward_matches_float64_reference(name, n, isa, rng):
    fwd, ref_fwd, *_ = ACTIVATIONS[name]
    x = sample(n, rng)
    y = fwd(x)
    assert y.shape == x.shape
    assert_close(y, ref_fwd(x), rtol=RTOL_FORWARD.get(name, RTOL))


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("n", SIZES)
def test_backward_matches_float64_reference(name, n, isa, rng):
    fwd, ref_fwd, bwd, ref_bwd, takes_output = ACTIVATIONS[name]
    x, g = sample(n, rng), sample(n, rng, 1.0)
    saved = fwd(x) if takes_output else x
    # the derivative near f's kinks/cancellations is checked loosely in absolute terms
    assert_close(bwd(g, saved), ref_bwd(g, saved), rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_matches_finite_differences(name, isa, rng):
    """4th-order central differences of fastnn's own forward, in float64 steps."""
    fwd, _, bwd, _, takes_output = ACTIVATIONS[name]
    x = np.concatenate([np.linspace(-6, 6, 241), rng.uniform(-3, 3, 100)]).astype(np.float32)
    if name in ("relu", "leaky_relu"):
        x = x[np.abs(x) > 0.05]  # away from the kink, where the difference quotient is exact
    h = 1e-2
    f = lambda v: fwd(v.astype(np.float32)).astype(np.float64)  # noqa: E731
    xd = x.astype(np.float64)
    numeric = (f(xd - 2 * h) - 8 * f(xd - h) + 8 * f(xd + h) - f(xd + 2 * h)) / (12 * h)
    g = np.ones_like(x)
    analytic = bwd(g, fwd(x) if takes_output else x)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=2e-4)


EXTREMES = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-38, -1e-38, 1e-20, -1e-20, 0.5, -0.5,
                     10.0, -10.0, 20.0, -20.0, 50.0, -50.0, 88.0, -88.0, 89.0, -89.0, 100.0,
                     -100.0, 1e10, -1e10, 1e30, -1e30, 3.4028235e38, -3.4028235e38,
                     np.inf, -np.inf, np.nan], dtype=np.float32)


@pytest.mark.parametrize("flush", [True, False], ids=["flush_denormal", "keep_denormal"])
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_extreme_values(name, flush, isa):
    """No overflow for |x| up to float32 max, the right limits at +-inf, NaN propagates.
    Flushing (the default) reads denormal inputs as 0 and may write 0 for denormal
    results; keeping them gives the exact values."""
    fwd, ref_fwd, *_ = ACTIVATIONS[name]
    x = np.where(np.abs(EXTREMES) < TINY, 0, EXTREMES).astype(np.float32) if flush else EXTREMES
    with np.errstate(all="ignore"):
        want = ref_fwd(x)
    previous = fastnn.get_flush_denormal()
    fastnn.set_flush_denormal(flush)
    try:
        got = fwd(EXTREMES)
    finally:
        fastnn.set_flush_denormal(previous)
    assert np.isnan(got[-1])
    # subnormal results are absolute errors; flushed, a tail x * f(x) whose f(x)
    # underflows (silu far left) is 0 where |x| TINY would be exact
    atol = 1e3 * TINY if flush else 1e-40
    assert_close(got, want, rtol=RTOL_FORWARD.get(name, RTOL), atol=atol)
    if name == "relu":
        assert not np.any(got < 0) and not np.any(np.signbit(got[np.abs(EXTREMES) < TINY]))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_backward_extremes_are_finite_or_nan_like_reference(name, isa):
    """With denormals flushed (the default) the kernels read denormal inputs as 0."""
    fwd, ref_fwd, bwd, ref_bwd, takes_output = ACTIVATIONS[name]
    finite = EXTREMES[np.isfinite(EXTREMES)]
    saved = fwd(finite) if takes_output else finite
    got = bwd(np.ones_like(finite), saved)
    with np.errstate(all="ignore"):
        want = ref_bwd(np.ones_like(finite), np.where(np.abs(saved) < TINY, 0, saved))
    assert_close(got, want, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_nd_shapes_and_out(name, isa, rng):
    fwd, _, bwd, _, takes_output = ACTIVATIONS[name]
    x = sample(3 * 5 * 7, rng).reshape(3, 5, 7)
    out = np.empty_like(x)
    y = fwd(x)
    assert y.shape == (3, 5, 7)
    saved = y if takes_output else x
    got = bwd(np.ones_like(x), saved)
    assert got.shape == x.shape


def test_out_is_written_and_returned(isa, rng):
    x = sample(1000, rng)
    out = np.full_like(x, np.nan)
    y = ops.gelu(x, out=out)
    assert y is out
    np.testing.assert_array_equal(out, ops.gelu(x))
    g = np.full_like(x, 2.0)
    out2 = np.full_like(x, np.nan)
    assert ops.relu_backward(g, x, out=out2) is out2
    np.testing.assert_array_equal(out2, np.where(x > 0, 2.0, 0.0).astype(np.float32))


def test_in_place_aliasing(isa, rng):
    x = sample(5000, rng)
    want = ops.silu(x)
    y = x.copy()
    assert ops.silu(y, out=y) is y
    np.testing.assert_array_equal(y, want)


def test_partial_overlap_gives_the_non_overlapping_answer(isa, rng):
    buf = sample(2001, rng)
    x = buf[:2000]
    want = ops.tanh(x.copy())
    ops.tanh(x, out=buf[1:])
    np.testing.assert_array_equal(buf[1:], want)


def test_exp_and_erf_vector_math(isa, rng):
    x = np.concatenate([rng.uniform(-100, 90, 20000), rng.standard_normal(2000)]).astype(np.float32)
    with np.errstate(all="ignore"):
        want_exp = np.exp(x.astype(np.float64))
    normal = (want_exp > 1.2e-38) & (want_exp < 3.4e38)
    assert_close(ops.exp(x)[normal], want_exp[normal], rtol=2.5e-7)
    assert_close(ops.erf(x), ref.erf(x), rtol=5e-7, atol=1e-37)


def test_relu_keeps_nan_and_signed_zero(isa):
    x = np.array([np.nan, -0.0, 0.0, -1.0, 2.0], dtype=np.float32)
    y = ops.relu(x)
    assert np.isnan(y[0]) and y[1] == 0 and y[2] == 0 and y[3] == 0 and y[4] == 2


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate"):
        ops.gelu(np.zeros(3, np.float32), approximate="fast")
