"""The activations of issue 14 against PyTorch: forward and input gradient of
every module and option, odd lengths, and 1 vs 3 threads bitwise equal."""
import numpy as np
import pytest

import fastnn
from fastnn import nn, ops

torch = pytest.importorskip("torch")

CASES = [("ELU", ()), ("ELU", (0.5,)), ("SELU", ()), ("CELU", ()), ("CELU", (2.0,)),
         ("Softplus", ()), ("Softplus", (2.0, 10.0)), ("Mish", ()), ("Hardswish", ()),
         ("Hardsigmoid", ()), ("ReLU6", ()), ("Hardtanh", ()), ("Hardtanh", (-0.5, 0.7)),
         ("Softsign", ()), ("LogSigmoid", ()), ("Tanhshrink", ()), ("Softshrink", ()),
         ("Softshrink", (0.3,)), ("Hardshrink", ()), ("Hardshrink", (0.3,))]


@pytest.mark.parametrize("name,args", CASES)
@pytest.mark.parametrize("n", [1, 7, 33, 1001])
def test_module_matches_torch(name, args, n, isa):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    g = rng.standard_normal(n).astype(np.float32)
    m, t = getattr(nn, name)(*args), getattr(torch.nn, name)(*args)
    xt = torch.tensor(x, requires_grad=True)
    yt = t(xt)
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(m.forward(x), yt.detach().numpy(), rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(m.backward(g), xt.grad.numpy(), rtol=2e-6, atol=1e-6)
    assert repr(m) == repr(t)


@pytest.mark.parametrize("name,args", CASES)
def test_one_and_three_threads_bitwise_equal(name, args):
    x = (np.random.default_rng(0).standard_normal(200_003) * 4).astype(np.float32)
    m = getattr(nn, name)(*args)
    with fastnn.num_threads(1):
        y1, d1 = m.forward(x), m.backward(x)
    with fastnn.num_threads(3):
        y3, d3 = m.forward(x), m.backward(x)
    assert y1.tobytes() == y3.tobytes() and d1.tobytes() == d3.tobytes()


def test_glu_prelu_softmin_match_torch():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 6, 5)).astype(np.float32)
    tf = torch.nn.functional
    np.testing.assert_allclose(ops.glu(x, 1), tf.glu(torch.tensor(x), 1).numpy(), rtol=1e-6,
                               atol=1e-7)
    w = np.array([0.1, -0.2, 0.3, 0.4, 0.5, 0.6], np.float32)
    np.testing.assert_allclose(ops.prelu(x, w), tf.prelu(torch.tensor(x), torch.tensor(w)).numpy())
    np.testing.assert_allclose(ops.softmin(x, 1), tf.softmin(torch.tensor(x), 1).numpy(),
                               rtol=1e-6, atol=1e-7)


def test_bad_options_name_the_argument():
    with pytest.raises(ValueError, match="lambd"):
        ops.softshrink(np.ones(3, np.float32), -1.0)
    with pytest.raises(ValueError, match="max_val"):
        ops.hardtanh(np.ones(3, np.float32), 1.0, -1.0)
    with pytest.raises(TypeError, match="alpha"):
        ops.elu(np.ones(3, np.float32), "a")
    with pytest.raises(ValueError, match="even"):
        ops.glu(np.ones((2, 3), np.float32))
