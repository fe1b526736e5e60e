"""What each activation returns at +inf, -inf and NaN, on every ISA path: the table the
README states, and where it agrees with PyTorch (forward everywhere; backward but for
gelu_tanh at +-inf and relu at NaN)."""
import numpy as np
import pytest

from fastnn import ops

INF, NAN = np.inf, np.nan
X = np.array([INF, -INF, NAN], np.float32)

# name: (forward, backward(grad_out=1, saved), forward at (inf, -inf, nan), backward there)
LIMITS = {
    "relu": (ops.relu, lambda x: ops.relu_backward(np.ones_like(x), x),
             [INF, 0, NAN], [1, 0, 0]),
    "leaky_relu": (ops.leaky_relu, lambda x: ops.leaky_relu_backward(np.ones_like(x), x),
                   [INF, -INF, NAN], [1, 0.01, 0.01]),
    # -inf * 0 is NaN, as in PyTorch
    "leaky_relu_0": (lambda x: ops.leaky_relu(x, 0.0),
                     lambda x: ops.leaky_relu_backward(np.ones_like(x), x, 0.0),
                     [INF, NAN, NAN], [1, 0, 0]),
    "sigmoid": (ops.sigmoid, lambda x: ops.sigmoid_backward(np.ones_like(x), ops.sigmoid(x)),
                [1, 0, NAN], [0, 0, NAN]),
    "tanh": (ops.tanh, lambda x: ops.tanh_backward(np.ones_like(x), ops.tanh(x)),
             [1, -1, NAN], [0, 0, NAN]),
    # x * Phi(x) and x * sigmoid(x) at -inf are -inf * 0: NaN, as in PyTorch
    "gelu": (ops.gelu, lambda x: ops.gelu_backward(np.ones_like(x), x),
             [INF, NAN, NAN], [NAN, NAN, NAN]),
    "gelu_tanh": (lambda x: ops.gelu(x, approximate="tanh"),
                  lambda x: ops.gelu_backward(np.ones_like(x), x, approximate="tanh"),
                  [INF, NAN, NAN], [1, 0, NAN]),
    "silu": (ops.silu, lambda x: ops.silu_backward(np.ones_like(x), x),
             [INF, NAN, NAN], [NAN, NAN, NAN]),
    "exp": (ops.exp, None, [INF, 0, NAN], None),
    "erf": (ops.erf, None, [1, -1, NAN], None),
}


@pytest.mark.parametrize("name", LIMITS)
def test_values_at_inf_and_nan(name, isa):
    fwd, bwd, want_fwd, want_bwd = LIMITS[name]
    np.testing.assert_array_equal(fwd(X), np.array(want_fwd, np.float32))
    if bwd is not None:
        np.testing.assert_array_equal(bwd(X), np.array(want_bwd, np.float32))


def test_softmax_rows_with_infinities(isa):
    x = np.array([[-INF, 0.0, 1.0], [INF, 0.0, 1.0], [-INF, -INF, -INF]], np.float32)
    p, logp = ops.softmax(x), ops.log_softmax(x)
    np.testing.assert_allclose(p[0], [0, 1 / (1 + np.e), np.e / (1 + np.e)], rtol=1e-6)
    assert logp[0, 0] == -INF
    assert np.isnan(p[1:]).all() and np.isnan(logp[1:]).all()


TORCH_FORWARD = {"relu": "relu", "leaky_relu": "nn.functional.leaky_relu",
                 "sigmoid": "sigmoid", "tanh": "tanh", "gelu": "nn.functional.gelu",
                 "silu": "nn.functional.silu", "exp": "exp", "erf": "erf"}


# torch's backward where fastnn's differs: gelu_tanh's formula gives NaN at +-inf (fastnn
# takes the limits 1 and 0); relu passes the gradient where x is NaN (fastnn masks by x > 0)
TORCH_BACKWARD_DIFFERS = {"gelu_tanh": [NAN, NAN, NAN], "relu": [1, 0, 1]}
# where torch's forward depends on its CPU path: its AVX-512 gelu gives NaN at +inf, its AVX2
# one inf (fastnn's LIMITS value); compared with the limit only
TORCH_FORWARD_VARIES = {"gelu": [True, False, False]}


@pytest.mark.parametrize("name", list(LIMITS))
def test_limits_agree_with_torch(name):
    torch = pytest.importorskip("torch")
    fwd, bwd, _, _ = LIMITS[name]
    if name == "gelu_tanh":
        def tf(t):
            return torch.nn.functional.gelu(t, approximate="tanh")
    elif name == "leaky_relu_0":
        def tf(t):
            return torch.nn.functional.leaky_relu(t, 0.0)
    else:
        tf = torch
        for part in TORCH_FORWARD[name].split("."):
            tf = getattr(tf, part)
    t = torch.from_numpy(X.copy()).requires_grad_()
    y = tf(t)
    y.sum().backward()
    varies = np.array(TORCH_FORWARD_VARIES.get(name, [False] * len(X)))
    np.testing.assert_array_equal(fwd(X)[~varies], y.detach().numpy()[~varies])
    if bwd is None:
        return
    want = np.array(TORCH_BACKWARD_DIFFERS.get(name, LIMITS[name][3]), np.float32)
    np.testing.assert_array_equal(t.grad.numpy(), want)  # torch's own, where it differs
    np.testing.assert_array_equal(bwd(X), np.array(LIMITS[name][3], np.float32))
