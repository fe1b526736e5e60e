"""Misaligned arrays (data not at a multiple of the itemsize, NumPy's
flags.aligned False, e.g. np.frombuffer(buf, np.float32, offset=1)) never reach
the C kernels: inputs are copied (results equal those from aligned inputs, bit
for bit), outputs written in place (out=, preactivation=, grad_weight=,
grad_bias=, optimizer buffers) are refused with a ValueError naming them."""
import numpy as np
import pytest

from fastnn import nn, ops, optim


def misaligned(a):
    """a copy of a whose data starts one byte past an aligned address (writeable)"""
    a = np.asarray(a)
    raw = bytearray(a.nbytes + a.itemsize)
    v = np.frombuffer(raw, dtype=a.dtype, offset=1, count=a.size).reshape(a.shape)
    v[...] = a
    assert not v.flags.aligned and v.flags.writeable and v.flags.c_contiguous
    return v


R = np.random.default_rng(7)
X = R.standard_normal((5, 12)).astype(np.float32)
G = R.standard_normal((5, 12)).astype(np.float32)
Y_SIGMOID = ops.sigmoid(X)
LABELS = R.integers(0, 12, 5)
X4 = R.standard_normal((2, 12, 3, 2)).astype(np.float32)
LABELS4 = R.integers(0, 12, (2, 3, 2))
T01 = R.uniform(0, 1, (5, 12)).astype(np.float32)
A = R.standard_normal((6, 7)).astype(np.float32)
B = R.standard_normal((7, 9)).astype(np.float32)
A3 = R.standard_normal((3, 6, 7)).astype(np.float32)
W = R.standard_normal((4, 12)).astype(np.float32)
BIAS = R.standard_normal(4).astype(np.float32)
GO = R.standard_normal((5, 4)).astype(np.float32)
PRE = R.standard_normal((5, 4)).astype(np.float32)
OUT_RELU = np.maximum(PRE, 0)

# name: (function, its array arguments, other keyword arguments)
OPS = {
    "relu": (ops.relu, dict(x=X), {}),
    "leaky_relu": (ops.leaky_relu, dict(x=X), {}),
    "sigmoid": (ops.sigmoid, dict(x=X), {}),
    "tanh": (ops.tanh, dict(x=X), {}),
    "gelu": (ops.gelu, dict(x=X), {}),
    "gelu_tanh": (ops.gelu, dict(x=X), dict(approximate="tanh")),
    "silu": (ops.silu, dict(x=X), {}),
    "exp": (ops.exp, dict(x=X), {}),
    "erf": (ops.erf, dict(x=X), {}),
    "relu_backward": (ops.relu_backward, dict(grad_out=G, x=X), {}),
    "leaky_relu_backward": (ops.leaky_relu_backward, dict(grad_out=G, x=X), {}),
    "sigmoid_backward": (ops.sigmoid_backward, dict(grad_out=G, y=Y_SIGMOID), {}),
    "tanh_backward": (ops.tanh_backward, dict(grad_out=G, y=np.tanh(X)), {}),
    "gelu_backward": (ops.gelu_backward, dict(grad_out=G, x=X), {}),
    "silu_backward": (ops.silu_backward, dict(grad_out=G, x=X), {}),
    "softmax": (ops.softmax, dict(x=X), dict(axis=0)),
    "log_softmax": (ops.log_softmax, dict(x=X), {}),
    "softmax_backward": (ops.softmax_backward, dict(grad_out=G, y=ops.softmax(X)), {}),
    "log_softmax_backward": (ops.log_softmax_backward, dict(grad_out=G, y=ops.log_softmax(X)),
                             {}),
    "matmul": (ops.matmul, dict(a=A, b=B), {}),
    "matmul_batched": (ops.matmul, dict(a=A3, b=B), {}),
    "matmul_trans": (ops.matmul, dict(a=A.T.copy(), b=B.T.copy()),
                     dict(trans_a=True, trans_b=True)),
    "linear": (ops.linear, dict(x=X, weight=W, bias=BIAS), {}),
    "linear_gelu": (ops.linear, dict(x=X, weight=W, bias=BIAS), dict(activation="gelu")),
    "linear_bias_backward": (ops.linear_bias_backward, dict(grad_out=G), {}),
}
# the functions that also take an out= of the result's shape
OUT_OPS = [name for name in OPS if name not in ("linear_gelu",)]


def call(name, arrays):
    fn, _, kwargs = OPS[name]
    return fn(**arrays, **kwargs)


@pytest.mark.parametrize("name,arg", [(n, a) for n, (_, arrays, _) in OPS.items() for a in arrays])
def test_misaligned_input_gives_the_aligned_result(name, arg, isa):
    arrays = OPS[name][1]
    want = call(name, arrays)
    got = call(name, {**arrays, arg: misaligned(arrays[arg])})
    assert got.flags.aligned
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", OUT_OPS)
def test_misaligned_out_is_refused(name):
    fn, arrays, kwargs = OPS[name]
    out = misaligned(np.zeros(call(name, arrays).shape, np.float32))
    with pytest.raises(ValueError, match=r"^out must be aligned to 4 bytes.*unaligned"):
        fn(**arrays, **kwargs, out=out)
    assert (out == 0).all()  # nothing written


def test_misaligned_preactivation_is_refused():
    pre = misaligned(np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match=r"^preactivation must be aligned"):
        ops.linear(X, W, BIAS, activation="gelu", preactivation=pre)


def test_misaligned_subclass_input_is_copied():
    class Sub(np.ndarray):
        pass
    x = misaligned(X).view(Sub)
    np.testing.assert_array_equal(ops.relu(x), ops.relu(X))


# ---- losses: logits, targets and int64 labels ----------------------------------------------

LOSSES = {
    "cross_entropy": (ops.cross_entropy, dict(input=X, target=LABELS), dict(label_smoothing=0.1)),
    "cross_entropy_nd": (ops.cross_entropy, dict(input=X4, target=LABELS4), {}),
    "cross_entropy_1d": (ops.cross_entropy, dict(input=X[0], target=LABELS[:1].reshape(())),
                         {}),
    "mse_loss": (ops.mse_loss, dict(input=X, target=G), {}),
    "bce_with_logits": (ops.binary_cross_entropy_with_logits, dict(input=X, target=T01), {}),
}


@pytest.mark.parametrize("name,arg", [(n, a) for n, (_, arrays, _) in LOSSES.items()
                                      for a in arrays])
def test_losses_copy_misaligned_inputs(name, arg, isa):
    fn, arrays, kwargs = LOSSES[name]
    want_loss, want_grad = fn(**arrays, **kwargs)
    loss, grad = fn(**{**arrays, arg: misaligned(arrays[arg])}, **kwargs)
    assert loss == want_loss and grad.flags.aligned
    np.testing.assert_array_equal(grad, want_grad)


# ---- linear_backward: inputs copied, accumulated gradients refused --------------------------

LB_INPUTS = dict(grad_out=GO, x=X, weight=W)


@pytest.mark.parametrize("activation,saved,arg", [
    (act, saved, arg) for act, saved in [(None, None), ("relu", "output"), ("gelu", "preactivation")]
    for arg in ["grad_out", "x", "weight"] + (["saved"] if saved else [])])
def test_linear_backward_copies_misaligned_inputs(activation, saved, arg, isa):
    arrays = dict(LB_INPUTS)
    if saved is not None:
        arrays[saved] = OUT_RELU if saved == "output" else PRE

    def run(arrays):
        gw, gb = np.ones_like(W), np.ones_like(BIAS)
        dx = ops.linear_backward(**arrays, grad_weight=gw, grad_bias=gb, activation=activation)
        return dx, gw, gb

    want = run(arrays)
    key = saved if arg == "saved" else arg
    got = run({**arrays, key: misaligned(arrays[key])})
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("arg,shape", [("grad_weight", W.shape), ("grad_bias", BIAS.shape)])
def test_linear_backward_refuses_misaligned_gradients(arg, shape):
    buf = misaligned(np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=rf"^{arg} must be aligned"):
        ops.linear_backward(GO, X, W, **{arg: buf})
    assert (buf == 0).all()


# ---- optimizer steps: every buffer is used in place, so a misaligned one is refused ---------

def buffers(n=6):
    return {k: np.zeros(n, np.float32) for k in
            ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "square_avg",
             "grad_avg", "momentum_buf")}


STEPS = {
    "sgd_step": (ops.sgd_step, ("param", "grad", "momentum_buf"), dict(lr=0.1, momentum=0.9)),
    "adam_step": (ops.adam_step, ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"),
                  dict(step=1)),
    "rmsprop_step": (ops.rmsprop_step, ("param", "grad", "square_avg", "grad_avg",
                                        "momentum_buf"), dict(momentum=0.5)),
}


@pytest.mark.parametrize("name,arg", [(n, a) for n, (_, args, _) in STEPS.items() for a in args])
def test_optimizer_steps_refuse_misaligned_buffers(name, arg):
    fn, args, kwargs = STEPS[name]
    bufs = buffers()
    arrays = {a: bufs[a] for a in args}
    arrays[arg] = misaligned(arrays[arg])
    with pytest.raises(ValueError, match=rf"^{arg} must be aligned to 4 bytes"):
        fn(**arrays, **kwargs)


# ---- nn modules: a misaligned batch trains as the aligned one does -------------------------

def test_modules_take_misaligned_inputs_and_gradients(isa):
    def step(x, y, grad_scale):
        model = nn.Sequential(nn.Linear(12, 8), nn.ReLU(inplace=True), nn.Linear(8, 6),
                              nn.GELU(), nn.Linear(6, 12), nn.LeakyReLU(inplace=True),
                              nn.Softmax(dim=-1))
        for i, p in enumerate(model.parameters()):
            p.data = np.linspace(-0.5, 0.5, p.size, dtype=np.float32).reshape(p.shape) * (i + 1)
        opt = optim.Adam(model.parameters(), lr=0.01)
        out = model(x)
        dx = model.backward(grad_scale)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        return out, dx, loss, [p.data.copy() for p in model.parameters()]

    want = step(X, LABELS, G)
    got = step(misaligned(X), misaligned(LABELS), misaligned(G))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    assert got[2] == want[2]
    for g, w in zip(got[3], want[3]):
        np.testing.assert_array_equal(g, w)


def test_in_place_activation_on_a_misaligned_batch_works(isa):
    # the layer works on an aligned copy (as on a float64 batch) rather than refuse it
    for layer, ref in [(nn.ReLU(inplace=True), ops.relu(X)),
                       (nn.LeakyReLU(0.1, inplace=True), ops.leaky_relu(X, 0.1))]:
        y = layer(misaligned(X))
        np.testing.assert_array_equal(y, ref)
        np.testing.assert_array_equal(layer.backward(G), (ops.relu_backward(G, X) if
                                      isinstance(layer, nn.ReLU) else
                                      ops.leaky_relu_backward(G, X, 0.1)))


@pytest.mark.parametrize("loss_name,target", [("MSELoss", G), ("BCEWithLogitsLoss", T01)])
def test_pointwise_loss_modules_take_misaligned_arrays(loss_name, target, isa):
    fn = getattr(nn, loss_name)()
    want = fn(X, target), fn.backward()
    got = fn(misaligned(X), misaligned(target)), fn.backward()
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
