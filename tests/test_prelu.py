"""nn.PReLU: a learnable slope per channel (axis 1) or one shared, against a
float64 NumPy reference, finite differences, threads, saving and torch."""
import numpy as np
import pytest

import fastnn
from fastnn import nn


def reference(x, w):
    """prelu and its gradients in float64: (y, dy/dx given g, dL/dw given g)."""
    x = x.astype(np.float64)
    shape = [1] * x.ndim
    if w.size > 1:
        shape[1] = w.size
    wb = w.astype(np.float64).reshape(shape) if x.ndim else w.astype(np.float64)[0]
    return np.where(x > 0, x, wb * x), wb


@pytest.mark.parametrize("shape,channels", [((5, 3), 3), ((2, 4, 7), 4), ((2, 3, 2, 5), 3),
                                            ((9,), 1), ((), 1), ((3, 5), 1),
                                            ((300, 37), 37), ((4500, 3), 3)])
def test_forward_and_gradients_match_float64_and_finite_differences(shape, channels, isa):
    rng = np.random.default_rng(len(shape) + channels)
    x = rng.standard_normal(shape).astype(np.float32)
    x[np.abs(x) < 0.05] = 0.5  # away from the kink for the finite differences
    g = rng.standard_normal(shape).astype(np.float32)
    m = nn.PReLU(channels, init=0.1)
    m.weight.data[...] = rng.uniform(-0.5, 0.5, channels).astype(np.float32)
    w = m.weight.data.copy()
    want, wb = reference(x, w)
    np.testing.assert_allclose(m(x), want, rtol=1e-6, atol=1e-7)
    dx = m.backward(g)
    np.testing.assert_allclose(dx, np.where(x > 0, 1.0, wb) * g, rtol=1e-6, atol=1e-7)
    h = 1e-3
    for c in range(channels):  # d sum(g * y) / d w[c] by central differences
        up, down = w.astype(np.float64).copy(), w.astype(np.float64).copy()
        up[c] += h
        down[c] -= h
        fd = ((g * reference(x, up)[0]).sum() - (g * reference(x, down)[0]).sum()) / (2 * h)
        np.testing.assert_allclose(m.weight.grad[c], fd, rtol=1e-4, atol=1e-5)


def test_weight_gradient_accumulates_and_frozen_weight_gets_none():
    x = -np.ones((4, 2), np.float32)
    m = nn.PReLU(2)
    for _ in range(2):
        m(x)
        m.backward(np.ones_like(x))
    np.testing.assert_array_equal(m.weight.grad, [-8.0, -8.0])
    m.zero_grad()
    m.weight.requires_grad = False
    m(x)
    np.testing.assert_array_equal(m.backward(np.ones_like(x)), np.full_like(x, 0.25))
    assert not m.weight.grad.any()


@pytest.mark.parametrize("shape", [(64, 8, 999), (3000, 67), (5, 70001), (70001, 2)], ids=str)
def test_one_two_and_three_threads_bitwise_equal(shape, isa):
    """(N, C) inputs (a channel per column) run a row at a time, the weight
    gradient summed in row blocks fixed by the shape: same bits on any threads."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    grads = []
    for n in (1, 2, 3):
        m = nn.PReLU(shape[1])
        with fastnn.num_threads(n):
            y = m(x)
            dx = m.backward(x)
        grads.append((y.tobytes(), dx.tobytes(), m.weight.grad.tobytes()))
    assert grads[0] == grads[1] == grads[2]


def test_saved_and_loaded_with_its_weight(tmp_path):
    m = nn.Sequential(nn.Linear(3, 4), nn.PReLU(4, init=0.3))
    m[1].weight.data[...] = [0.1, 0.2, 0.3, 0.4]
    fastnn.save(m, tmp_path / "m.safetensors")
    back = fastnn.load(tmp_path / "m.safetensors")
    assert list(back.state_dict()) == ["0.weight", "0.bias", "1.weight"]
    x = np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_array_equal(back(x), m(x))
    assert repr(back[1]) == "PReLU(num_parameters=4)"


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="num_parameters"):
        nn.PReLU(0)
    with pytest.raises(TypeError, match="init"):
        nn.PReLU(1, init="a")
    with pytest.raises(ValueError, match="channels"):
        nn.PReLU(3)(np.ones((2, 4), np.float32))
    with pytest.raises(ValueError, match="channels"):
        nn.PReLU(3)(np.ones(3, np.float32))  # 1-d: one channel, as torch


def test_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    for shape, c in [((6, 5), 5), ((2, 3, 4, 4), 3), ((7,), 1)]:
        x = rng.standard_normal(shape).astype(np.float32)
        g = rng.standard_normal(shape).astype(np.float32)
        t, m = torch.nn.PReLU(c), nn.PReLU(c)
        m.load_state_dict({k: v.detach().numpy().copy() for k, v in t.state_dict().items()})
        xt = torch.tensor(x, requires_grad=True)
        yt = t(xt)
        yt.backward(torch.tensor(g))
        np.testing.assert_allclose(m(x), yt.detach().numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(m.backward(g), xt.grad.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(m.weight.grad, t.weight.grad.numpy(), rtol=1e-5, atol=1e-6)
        assert repr(m) == repr(t)
