"""Fused losses: loss and gradient against the float64 references, finite
differences of the loss, label rules, every ISA path."""
import numpy as np
import pytest

from fastnn import ops

import reference as ref


@pytest.mark.parametrize("n,c", [(1, 1), (1, 5), (7, 3), (33, 10), (64, 17), (300, 1000), (0, 4)])
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
def test_cross_entropy_matches_reference(n, c, smoothing, isa, rng):
    x = (rng.standard_normal((n, c)) * 3).astype(np.float32)
    y = rng.integers(0, c, n)
    loss, grad = ops.cross_entropy(x, y, label_smoothing=smoothing)
    want_loss, want_grad = ref.cross_entropy(x, y, smoothing)
    assert isinstance(loss, float) and grad.shape == x.shape and grad.dtype == np.float32
    if n == 0:
        assert np.isnan(loss)
        return
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-8)


def test_cross_entropy_ignore_index(isa, rng):
    x = rng.standard_normal((10, 4)).astype(np.float32)
    y = rng.integers(0, 4, 10)
    y[[1, 4, 5]] = -100
    loss, grad = ops.cross_entropy(x, y, label_smoothing=0.2)
    want_loss, want_grad = ref.cross_entropy(x, y, 0.2, -100)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-8)
    assert (grad[[1, 4, 5]] == 0).all()
    y2 = np.where(y == -100, 3, y)
    y2[0] = 7  # a custom ignore_index may sit outside [0, C)
    loss2, _ = ops.cross_entropy(x, np.where(y == -100, 7, y), ignore_index=7)
    assert np.isfinite(loss2)


def test_cross_entropy_all_ignored_is_nan_with_zero_grad(isa):
    loss, grad = ops.cross_entropy(np.ones((3, 2), np.float32), [-100, -100, -100])
    assert np.isnan(loss) and (grad == 0).all()


def test_cross_entropy_shapes_like_torch(isa, rng):
    x = rng.standard_normal((2, 5, 3, 4)).astype(np.float32)  # (N, C, d1, d2)
    y = rng.integers(0, 5, (2, 3, 4))
    loss, grad = ops.cross_entropy(x, y)
    rows = np.moveaxis(x, 1, -1).reshape(-1, 5)
    want_loss, want_grad = ref.cross_entropy(rows, y.reshape(-1))
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(grad, np.moveaxis(want_grad.reshape(2, 3, 4, 5), -1, 1), rtol=1e-5, atol=1e-8)
    loss1, grad1 = ops.cross_entropy(x[0, :, 0, 0], y[0, 0, 0])  # (C,) with a scalar label
    want1, wgrad1 = ref.cross_entropy(x[0, :, 0, 0][None], [y[0, 0, 0]])
    np.testing.assert_allclose(loss1, want1, rtol=1e-5)
    assert grad1.shape == (5,)
    np.testing.assert_allclose(grad1, wgrad1[0], rtol=1e-5, atol=1e-8)


def test_cross_entropy_extreme_logits(isa):
    x = np.array([[1e30, 0.0, -1e30], [0.0, -np.inf, 0.0]], dtype=np.float32)
    loss, grad = ops.cross_entropy(x, [0, 2])
    np.testing.assert_allclose(loss, np.log(2) / 2, rtol=1e-6)
    assert np.isfinite(grad).all()


def test_cross_entropy_finite_differences(isa, rng):
    x = rng.standard_normal((4, 6)).astype(np.float64)
    y = rng.integers(0, 6, 4)
    _, grad = ops.cross_entropy(x, y, label_smoothing=0.1)
    h = 1e-2
    for idx in np.ndindex(x.shape):
        def loss(step):
            xs = x.copy()
            xs[idx] += step
            return ops.cross_entropy(xs, y, label_smoothing=0.1)[0]
        numeric = (loss(-2 * h) - 8 * loss(-h) + 8 * loss(h) - loss(2 * h)) / (12 * h)
        assert abs(grad[idx] - numeric) < 1e-4


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0], [0, 2**40]])
def test_cross_entropy_labels_out_of_range(labels):
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 3\)"):
        ops.cross_entropy(np.zeros((2, 3), np.float32), labels)


def test_cross_entropy_label_rules():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match=r"target must have the input's shape \(2, 3\) for class"):
        ops.cross_entropy(x, np.array([0.0, 1.0]))  # a float target holds probabilities
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        ops.cross_entropy(x, [0, 1, 2])
    with pytest.raises(ValueError, match="label_smoothing"):
        ops.cross_entropy(x, [0, 1], label_smoothing=1.5)
    with pytest.raises(ValueError, match="at least one class"):
        ops.cross_entropy(np.zeros((2, 0), np.float32), [0, 0])


@pytest.mark.parametrize("shape", [(0,), (1,), (17,), (3, 5), (70000,)])
def test_mse_and_bce_match_reference(shape, isa, rng):
    p = (rng.standard_normal(shape) * 4).astype(np.float32)
    t = rng.uniform(0, 1, shape).astype(np.float32)
    for fastnn_fn, ref_fn in [(ops.mse_loss, ref.mse_loss),
                              (ops.binary_cross_entropy_with_logits,
                               ref.binary_cross_entropy_with_logits)]:
        loss, grad = fastnn_fn(p, t)
        assert grad.shape == p.shape and grad.dtype == np.float32
        if p.size == 0:
            assert np.isnan(loss)
            continue
        want_loss, want_grad = ref_fn(p, t)
        np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-12)


def test_bce_extreme_logits_stay_finite(isa):
    x = np.array([1e30, -1e30, 100.0, -100.0, 0.0], dtype=np.float32)
    t = np.array([1.0, 0.0, 0.0, 1.0, 0.5], dtype=np.float32)
    loss, grad = ops.binary_cross_entropy_with_logits(x, t)
    want, want_grad = ref.binary_cross_entropy_with_logits(x, t)
    np.testing.assert_allclose(loss, want, rtol=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-6, atol=1e-12)


def test_pointwise_loss_shape_mismatch():
    with pytest.raises(ValueError, match="target must have the same shape"):
        ops.mse_loss(np.zeros(3, np.float32), np.zeros(4, np.float32))


# ---- large common offsets: everything relative to the row's max --------------------------

OFFSETS = [0.0, 1e4, 1e8, 1e30, -1e30]


def offset_logits(rng, shape, offset):
    """float32 logits around `offset`, spread over many ulps of it (at 1e8 the ulp is 8)"""
    spread = max(1.0, abs(offset) * 1e-6)
    return (offset + rng.standard_normal(shape) * spread).astype(np.float32)


@pytest.mark.parametrize("offset", OFFSETS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("ignore", [False, True], ids=["all_rows", "ignore_index"])
@pytest.mark.parametrize("c", [1, 3, 37])
def test_cross_entropy_large_offsets(offset, smoothing, ignore, c, isa, rng):
    x = offset_logits(rng, (9, c), offset)
    y = rng.integers(0, c, 9)
    if ignore:
        y[[0, 4]] = -100
    loss, grad = ops.cross_entropy(x, y, label_smoothing=smoothing)
    want_loss, want_grad = ref.cross_entropy(x, y, smoothing)
    np.testing.assert_allclose(loss, want_loss, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("offset", OFFSETS[1:] + [3e38, -3e38])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_equal_logits_give_log_c(offset, smoothing, isa):
    # every class equally likely, at any offset: loss log C, grad (1/C - target) / N
    c = 19
    x = np.full((3, c), offset, np.float32)
    y = np.array([0, 7, 18])
    loss, grad = ops.cross_entropy(x, y, label_smoothing=smoothing)
    np.testing.assert_allclose(loss, np.log(c), rtol=1e-6)
    want = np.full((3, c), 1.0 / c - smoothing / c) - (1.0 - smoothing) * np.eye(c)[y]
    np.testing.assert_allclose(grad, want / 3, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("offset", OFFSETS)
def test_bce_large_logits_and_targets_near_one(offset, isa, rng):
    # max(x, 0) - x t cancels for t -> 1 unless it is one product x (1 - t)
    x = offset_logits(rng, (40,), offset)
    below_one = np.nextafter(np.float32(1), np.float32(0))
    for t in [rng.uniform(0, 1, 40).astype(np.float32), np.full(40, below_one, np.float32),
              np.full(40, 2.0 ** -24, np.float32), (rng.uniform(size=40) < 0.5).astype(np.float32)]:
        loss, grad = ops.binary_cross_entropy_with_logits(x, t)
        want, want_grad = ref.binary_cross_entropy_with_logits(x, t)
        np.testing.assert_allclose(loss, want, rtol=1e-5)
        np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-12)


def test_cross_entropy_writes_its_gradient_in_place(isa, rng):
    """out=logits: the gradient overwrites the logits (a large vocabulary's second
    (N, C) array saved), with the same loss and bits as the out-of-place call."""
    x = rng.standard_normal((70, 517)).astype(np.float32)
    y = rng.integers(0, 517, 70)
    y[[3, 9]] = -1
    for smoothing in (0.0, 0.2):
        want_loss, want = ops.cross_entropy(x, y, label_smoothing=smoothing, ignore_index=-1)
        buf = x.copy()
        loss, grad = ops.cross_entropy(buf, y, label_smoothing=smoothing, ignore_index=-1, out=buf)
        assert grad is buf and loss == want_loss
        np.testing.assert_array_equal(grad, want)
    other = np.empty_like(x)
    assert ops.cross_entropy(x, y, ignore_index=-1, out=other)[1] is other
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        ops.cross_entropy(x[:, :, None], y[:, None], out=np.empty((70, 517, 1), np.float32))
    with pytest.raises(ValueError, match="target must hold class indices in"):
        buf = x.copy()
        ops.cross_entropy(buf, np.full(70, 600), out=buf)
    np.testing.assert_array_equal(buf, x)  # a bad label is found before anything is written
