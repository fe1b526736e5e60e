"""softmax / log_softmax along any axis, forward and backward, against the
float64 references and finite differences, on every ISA path."""
import numpy as np
import pytest

from fastnn import ops

import reference as ref

SHAPES_AXES = [((1,), -1), ((5,), 0), ((3, 1), -1), ((4, 7), -1), ((4, 7), 0), ((2, 33), 1),
               ((17, 100), -1), ((3, 4, 5), 1), ((3, 4, 5), 0), ((2, 19, 37), 1),
               ((2, 3, 4, 5), 2), ((8, 1000), -1), ((0, 5), -1), ((5, 0), -1), ((2, 0, 3), 1)]


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_forward_matches_reference(shape, axis, log, isa, rng):
    x = (rng.standard_normal(shape) * 5).astype(np.float32)
    got = (ops.log_softmax if log else ops.softmax)(x, axis=axis)
    want = (ref.log_softmax if log else ref.softmax)(x, axis=axis) if x.size else x
    assert got.shape == x.shape and got.dtype == np.float32
    # log-probabilities carry the absolute rounding of x - max (inputs reach ~20 here)
    np.testing.assert_allclose(got, want, rtol=4e-6, atol=1e-6 if log else 1e-37)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("shape,axis", SHAPES_AXES)
def test_backward_matches_reference(shape, axis, log, isa, rng):
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)
    fwd, bwd = (ops.log_softmax, ops.log_softmax_backward) if log else (ops.softmax, ops.softmax_backward)
    ref_bwd = ref.log_softmax_backward if log else ref.softmax_backward
    y = fwd(x, axis=axis)
    got = bwd(g, y, axis=axis)
    want = ref_bwd(g, y, axis=axis) if x.size else x
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, 1])
def test_backward_matches_finite_differences(log, axis, isa, rng):
    """d/dx of sum(w * f(x)) by central differences on each element."""
    x = rng.standard_normal((3, 6)).astype(np.float64)
    w = rng.standard_normal((3, 6))
    fwd, bwd = (ops.log_softmax, ops.log_softmax_backward) if log else (ops.softmax, ops.softmax_backward)
    h = 1e-2
    numeric = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        def loss(step):
            xs = x.copy()
            xs[idx] += step
            return (w * fwd(xs.astype(np.float32), axis=axis)).sum()
        numeric[idx] = (loss(-2 * h) - 8 * loss(-h) + 8 * loss(h) - loss(2 * h)) / (12 * h)
    y = fwd(x.astype(np.float32), axis=axis)
    analytic = bwd(w.astype(np.float32), y, axis=axis)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("axis", [-1, 0])
def test_minus_inf_entries_and_all_minus_inf_rows(axis, isa):
    x = np.array([[0.0, -np.inf, 1.0, -np.inf], [-np.inf] * 4, [3.0, 3.0, 3.0, 3.0]],
                 dtype=np.float32)
    x = x if axis == -1 else np.ascontiguousarray(x.T)
    p = ops.softmax(x, axis=axis)
    lp = ops.log_softmax(x, axis=axis)
    row = lambda a, i: a[i] if axis == -1 else a[:, i]  # noqa: E731
    np.testing.assert_allclose(row(p, 0), [1 / (1 + np.e), 0, np.e / (1 + np.e), 0], rtol=1e-6)
    assert np.isneginf(row(lp, 0)[1]) and np.isneginf(row(lp, 0)[3])
    assert np.isnan(row(p, 1)).all() and np.isnan(row(lp, 1)).all()  # as PyTorch
    np.testing.assert_allclose(row(p, 2), 0.25, rtol=1e-6)


def test_large_values_do_not_overflow(isa):
    x = np.array([[3e38, 3e38, -3e38], [1e30, 0.0, -1e30]], dtype=np.float32)
    np.testing.assert_allclose(ops.softmax(x), [[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    lp = ops.log_softmax(x)
    assert lp[1, 0] == 0.0 and np.isfinite(lp[1]).all()
    assert np.isneginf(lp[0, 2])  # -6e38 overflows float32, as in PyTorch


def test_nan_poisons_its_row_only(isa):
    x = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]], dtype=np.float32)
    p = ops.softmax(x)
    assert np.isnan(p[0]).all() and np.isfinite(p[1]).all()


def test_zero_dim_and_out(isa):
    assert ops.softmax(np.float32(3.0)) == 1.0
    x = np.random.default_rng(0).standard_normal((4, 9)).astype(np.float32)
    out = np.empty_like(x)
    assert ops.softmax(x, out=out) is out
    np.testing.assert_array_equal(out, ops.softmax(x))
    y = x.copy()
    ops.log_softmax(y, out=y)
    np.testing.assert_array_equal(y, ops.log_softmax(x))


def test_bad_axis():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="axis 2"):
        ops.softmax(x, axis=2)
    with pytest.raises(TypeError, match="axis"):
        ops.softmax(x, axis="last")
    with pytest.raises(ValueError, match="shape"):
        ops.softmax_backward(np.zeros((3, 2), np.float32), x)
