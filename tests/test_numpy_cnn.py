"""The NumPy CNN baseline (fastnn.baselines.numpy_cnn): its gradients against finite
differences in float64 arithmetic terms, and against torch's autograd."""
import numpy as np
import pytest

from fastnn.baselines.numpy_cnn import NumpyCNN


def batch(rng, n=3, shape=(2, 8, 8), classes=5):
    return rng.standard_normal((n, *shape)).astype(np.float32), rng.integers(0, classes, n)


def test_gradients_match_finite_differences(rng):
    net = NumpyCNN(in_shape=(2, 8, 8), channels=(3, 4), num_classes=5, seed=1)
    x, y = batch(rng)
    _, grads = net.gradients(x, y)
    h = np.float32(1e-3)
    for key in ("0.weight", "0.bias", "3.weight", "7.weight", "7.bias"):
        p = net.params[key].reshape(-1)
        picked = rng.choice(p.size, size=min(8, p.size), replace=False)
        close = 0
        for i in picked:
            old = p[i]
            p[i] = old + h
            up, _ = net.gradients(x, y)
            p[i] = old - h
            down, _ = net.gradients(x, y)
            p[i] = old
            fd = (up - down) / (2 * h)
            close += grads[key].reshape(-1)[i] == pytest.approx(fd, rel=0.02, abs=2e-4)
        # a float32 loss, and a step may cross a ReLU or max-pool kink: most, not all
        # (test_matches_torch is the exact check)
        assert close >= 0.75 * len(picked), key


def test_sgd_step_lowers_the_loss(rng):
    net = NumpyCNN(in_shape=(2, 8, 8), channels=(3,), num_classes=5, seed=2, lr=0.1, momentum=0.9)
    x, y = batch(rng, n=8)
    first = net.train_step(x, y)
    for _ in range(20):
        last = net.train_step(x, y)
    assert last < 0.5 * first
    assert net.predict(x).shape == (8, 5)


def test_matches_torch(rng):
    torch = pytest.importorskip("torch")
    net = NumpyCNN(in_shape=(3, 16, 16), channels=(4, 6), num_classes=7, seed=3)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(6 * 4 * 4, 7))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in net.state_dict().items()})
    x, y = batch(rng, n=4, shape=(3, 16, 16), classes=7)
    loss, grads = net.gradients(x, y)
    t_loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y))
    t_loss.backward()
    assert loss == pytest.approx(t_loss.item(), rel=1e-5)
    for k, p in model.named_parameters():
        np.testing.assert_allclose(grads[k], p.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=k)
