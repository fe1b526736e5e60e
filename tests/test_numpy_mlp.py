"""fastnn.baselines.numpy_mlp.NumpyMLP, the NumPy baseline of the MLP benchmark and
the demo: its gradients against central differences of a float64 loss, one
and two training steps against fastnn's Sequential + optimizer from the same
weights, and a loss that falls on a separable toy problem."""
import numpy as np
import pytest

from fastnn import nn, optim
from fastnn.bench.cases_mlp import mlp_layers
from fastnn.baselines.numpy_mlp import NumpyMLP


def loss64(params, sizes, x, y):
    """Mean softmax cross-entropy of the MLP, all in float64 (the oracle)."""
    h = x.astype(np.float64)
    layers = len(sizes) - 1
    for k in range(layers):
        h = h @ params[f"{2 * k}.weight"].T + params[f"{2 * k}.bias"]
        if k < layers - 1:
            h = np.maximum(h, 0.0)
    h = h - h.max(axis=1, keepdims=True)
    logp = h - np.log(np.exp(h).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def data(rng, n, sizes):
    return (rng.standard_normal((n, sizes[0])).astype(np.float32),
            rng.integers(0, sizes[-1], n))


def test_gradients_match_central_differences(rng):
    sizes = [5, 7, 6, 4]
    net = NumpyMLP(sizes, seed=3)
    x, y = data(rng, 6, sizes)
    loss, grads = net.gradients(x, y)
    params = {k: v.astype(np.float64) for k, v in net.state_dict().items()}
    assert loss == pytest.approx(loss64(params, sizes, x, y), rel=1e-5)
    eps = 1e-6
    for key, p in params.items():
        flat = p.reshape(-1)
        fd = np.empty_like(flat)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + eps
            up = loss64(params, sizes, x, y)
            flat[i] = keep - eps
            down = loss64(params, sizes, x, y)
            flat[i] = keep
            fd[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[key].reshape(-1), fd, rtol=1e-3, atol=2e-6,
                                   err_msg=key)
    assert net.steps == 0   # gradients() does not update


def fastnn_model(sizes, state):
    model = nn.Sequential(*mlp_layers(sizes, nn.Linear, nn.ReLU))
    model.load_state_dict(state)
    return model


@pytest.mark.parametrize("name, options", [("sgd", dict(lr=0.05)),
                                           ("sgd", dict(lr=0.05, momentum=0.9)),
                                           ("adam", dict(lr=1e-3))])
def test_steps_match_fastnn_sequential(rng, name, options):
    sizes = [20, 16, 12, 5]
    ref = NumpyMLP(sizes, seed=7, optimizer=name, **options)
    model = fastnn_model(sizes, ref.state_dict())
    opt = {"sgd": optim.SGD, "adam": optim.Adam}[name](model.parameters(), **options)
    loss_fn = nn.CrossEntropyLoss()
    x, y = data(rng, 8, sizes)
    for _ in range(2):   # the second step uses the momentum / moment buffers
        ours = ref.train_step(x, y)
        theirs = loss_fn(model(x), y)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        opt.zero_grad()
        assert ours == pytest.approx(theirs, rel=1e-5)
        got = ref.state_dict()
        for key, value in model.state_dict().items():
            np.testing.assert_allclose(got[key], value, rtol=0, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("name, options", [("sgd", dict(lr=0.1, momentum=0.9)),
                                           ("adam", dict(lr=1e-2))])
def test_loss_falls_on_a_toy_problem(rng, name, options):
    # three Gaussian blobs in 2-D, one per class
    centers = np.array([[0.0, 3.0], [3.0, -2.0], [-3.0, -2.0]])
    y = rng.integers(0, 3, 300)
    x = (centers[y] + rng.standard_normal((300, 2))).astype(np.float32)
    net = NumpyMLP([2, 16, 3], seed=0, optimizer=name, **options)
    first, _ = net.evaluate(x, y)
    for epoch in range(10):
        for start in range(0, 300, 30):
            net.train_step(x[start:start + 30], y[start:start + 30])
    last, accuracy = net.evaluate(x, y)
    assert last < 0.3 * first and accuracy > 0.9
    assert net.predict(x).shape == (300, 3)


def test_rejects_bad_shapes_and_labels():
    net = NumpyMLP([3, 4, 2])
    x = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match="x must have shape"):
        net.train_step(np.zeros((5, 4)), np.zeros(5, int))
    with pytest.raises(ValueError, match="class labels"):
        net.train_step(x, np.full(5, 2))
    with pytest.raises(ValueError, match="class labels"):
        net.train_step(x, np.zeros(4, int))
    with pytest.raises(ValueError, match="optimizer"):
        NumpyMLP([3, 2], optimizer="lbfgs")


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_bench_mlp_cases_agree_with_fastnn(lib):
    """`fastnn bench --suite mlp`'s check, on the tiny overhead case and one batch of each
    optimizer: the loss after two steps from the case's weights matches fastnn's."""
    if lib == "torch":
        pytest.importorskip("torch")
    from fastnn import bench
    cases = {c.id: c for c in bench.build_mlp_cases()}
    for case_id in ("overhead/1", "mlp_sgd/32", "mlp_adam/32"):
        case = cases[case_id]
        inputs = case.inputs()
        reference = bench.reference_result(case, inputs)
        prepared = bench.prepare(case, lib, inputs, reference)   # CheckError if it differs
        with bench.library_context(lib):
            assert np.isfinite(prepared.fn())
