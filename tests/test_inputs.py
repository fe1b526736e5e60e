"""Input rules of fastnn.ops: array-likes are converted, read-only and empty
arrays work, bad `out=` and bad dtypes raise TypeError/ValueError naming the
argument, what was expected and what was received."""
import numpy as np
import pytest

from fastnn import ops


def test_array_likes_are_converted():
    y = ops.relu([[-1, 2], [3, -4]])
    assert y.dtype == np.float32 and y.shape == (2, 2)
    np.testing.assert_array_equal(y, [[0, 2], [3, 0]])
    np.testing.assert_array_equal(ops.relu(np.array([-1.5, 2.5])), [0, 2.5])  # float64 in
    np.testing.assert_array_equal(ops.relu(np.array([True, False])), [1, 0])
    np.testing.assert_array_equal(ops.relu(np.arange(-3, 3, dtype=np.int8)), [0, 0, 0, 0, 1, 2])
    assert ops.sigmoid(0.0) == 0.5 and ops.sigmoid(0.0).shape == ()


def test_non_contiguous_inputs_are_copied_not_misread():
    x = np.arange(24, dtype=np.float32).reshape(4, 6) - 12
    view = x[:, ::2].T  # strided and transposed
    np.testing.assert_array_equal(ops.relu(view), np.maximum(view, 0))
    np.testing.assert_allclose(ops.softmax(view, axis=0), ops.softmax(np.ascontiguousarray(view), axis=0))
    rev = x[::-1]
    np.testing.assert_array_equal(ops.relu(rev), np.maximum(rev, 0))


def test_read_only_inputs_work():
    x = np.linspace(-3, 3, 101, dtype=np.float32)
    x.setflags(write=False)
    g = np.ones_like(x)
    g.setflags(write=False)
    for fn in (ops.relu, ops.tanh, ops.gelu, ops.softmax):
        fn(x)
    ops.relu_backward(g, x)
    ops.softmax_backward(g, ops.softmax(x), axis=0)
    ops.cross_entropy(np.broadcast_to(x, (3, 101)), np.zeros(3, np.int64))  # read-only broadcast view
    ops.mse_loss(x, g)


def test_empty_arrays_work():
    for shape in [(0,), (0, 5), (3, 0), (0, 0, 2)]:
        x = np.zeros(shape, np.float32)
        assert ops.relu(x).shape == shape
        assert ops.gelu_backward(x, x).shape == shape
        assert ops.softmax(x).shape == shape
        assert ops.log_softmax_backward(x, x).shape == shape


@pytest.mark.parametrize("bad", [np.zeros(3, np.float64), np.zeros(3, np.int32), [0.0, 1.0, 2.0]])
def test_out_wrong_type_or_dtype_is_type_error(bad):
    with pytest.raises(TypeError, match=r"out must"):
        ops.relu(np.zeros(3, np.float32), out=bad)


def test_out_wrong_shape_layout_or_read_only_is_value_error():
    x = np.zeros((4, 6), np.float32)
    with pytest.raises(ValueError, match=r"out must have shape \(4, 6\), got \(6, 4\)"):
        ops.relu(x, out=np.zeros((6, 4), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.relu(x, out=np.zeros((6, 4), np.float32).T)
    with pytest.raises(ValueError, match="C-contiguous"):
        ops.tanh(x[:, :3], out=np.zeros((4, 6), np.float32)[:, ::2])
    ro = np.zeros((4, 6), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="writeable"):
        ops.softmax(x, out=ro)
    with pytest.raises(ValueError, match="out must have shape"):
        ops.gelu_backward(x, x, out=np.zeros(24, np.float32))


@pytest.mark.parametrize("bad", [np.zeros(3, np.complex64), np.array(["a", "b"]),
                                 np.array([object(), None]), np.zeros(2, "datetime64[s]"),
                                 "text", [[1, 2], [3]], {"a": 1}])
def test_bad_input_dtype_is_type_error_naming_the_argument(bad):
    with pytest.raises(TypeError, match=r"^x "):
        ops.relu(bad)
    with pytest.raises(TypeError, match=r"^grad_out "):
        ops.relu_backward(bad, np.zeros(3, np.float32))


def test_backward_shape_mismatch_names_both():
    with pytest.raises(ValueError, match=r"grad_out must have the same shape as x \(3,\), got \(4,\)"):
        ops.silu_backward(np.zeros(4, np.float32), np.zeros(3, np.float32))


def test_bad_scalar_options():
    with pytest.raises(TypeError, match="negative_slope"):
        ops.leaky_relu(np.zeros(3, np.float32), negative_slope="steep")
    with pytest.raises(TypeError, match="label_smoothing"):
        ops.cross_entropy(np.zeros((1, 2), np.float32), [0], label_smoothing="a")


def test_results_do_not_alias_inputs():
    x = np.ones(100, np.float32)
    y = ops.relu(x)
    assert not np.shares_memory(x, y)
    _, grad = ops.mse_loss(x, x)
    assert not np.shares_memory(x, grad)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself warns
def test_out_may_be_an_ndarray_subclass():
    x = np.array([[-1.0, 2.0]], np.float32)
    out = np.asmatrix(np.zeros((1, 2), np.float32))
    assert ops.relu(x, out=out) is out
    np.testing.assert_array_equal(out, [[0.0, 2.0]])


# ---- outputs that share memory with inputs ---------------------------------------------------
# Every op writing an output reads its inputs as they were on entry: an input that overlaps
# the output is copied first (the element-wise kernels also take out= exactly an input).
# Two outputs of one call may not overlap each other (ValueError).

R = np.random.default_rng(3)


def f32(*shape):
    return R.standard_normal(shape).astype(np.float32)


def placed(buf_size, value, at):
    """(buf, view): value copied into buf[at:], the rest of buf zero"""
    buf = np.zeros(buf_size, np.float32)
    view = buf[at:at + value.size].reshape(value.shape)
    view[...] = value
    return buf, view


# name: (function of (inputs..., out=...), its inputs, the keyword of its output)
WRITERS = {
    "relu": (lambda x, out: ops.relu(x, out=out), dict(x=f32(6, 9))),
    "gelu_backward": (lambda g, x, out: ops.gelu_backward(g, x, out=out),
                      dict(g=f32(6, 9), x=f32(6, 9))),
    "softmax_axis1": (lambda x, out: ops.softmax(x, axis=1, out=out), dict(x=f32(3, 9, 5))),
    "log_softmax_backward": (lambda g, y, out: ops.log_softmax_backward(g, y, out=out),
                             dict(g=f32(3, 37), y=f32(3, 37))),
    "matmul": (lambda a, b, out: ops.matmul(a, b, out=out), dict(a=f32(9, 7), b=f32(7, 11))),
    "linear": (lambda x, w, b, out: ops.linear(x, w, b, out=out),
               dict(x=f32(40, 7), w=f32(11, 7), b=f32(11))),
    "linear_gelu": (lambda x, w, b, out: ops.linear(x, w, b, activation="gelu", out=out),
                    dict(x=f32(40, 7), w=f32(11, 7), b=f32(11))),
    "linear_preactivation": (
        lambda x, w, b, out: ops.linear(x, w, b, activation="gelu", preactivation=out),
        dict(x=f32(40, 7), w=f32(11, 7), b=f32(11))),
    "linear_bias_backward": (lambda g, out: ops.linear_bias_backward(g, out=out, accumulate=True),
                             dict(g=f32(40, 11))),
}
# linear_backward's accumulated outputs: (keyword, shape); inputs grad_out, x, weight, saved
LB = dict(grad_out=f32(6, 4), x=f32(6, 5), weight=f32(4, 5))
LB_OUTPUTS = {"grad_weight": (4, 5), "grad_bias": (4,)}


def writer_result(name, inputs, out):
    fn, _ = WRITERS[name]
    res = fn(**inputs, out=out)
    return out if name == "linear_preactivation" else res


@pytest.mark.parametrize("shift", [0, 1, -1, 7, -7])
@pytest.mark.parametrize("name,arg", [(n, a) for n, (_, ins) in WRITERS.items() for a in ins])
def test_outputs_overlapping_an_input_read_the_input_as_it_was(name, arg, shift):
    _, inputs = WRITERS[name]
    fresh = {k: v.copy() for k, v in inputs.items()}
    zeros = {"linear_preactivation": (40, 11), "linear_bias_backward": (11,)}
    probe = writer_result(name, fresh, np.zeros(zeros[name], np.float32) if name in zeros else None)
    start = 30
    buf, view = placed(start + max(probe.size, inputs[arg].size) + 30, inputs[arg], start)
    out = buf[start + shift:start + shift + probe.size].reshape(probe.shape)
    before = out.copy()  # linear_bias_backward accumulates into it
    got = writer_result(name, {**{k: v.copy() for k, v in inputs.items()}, arg: view}, out)
    want = probe + before if name == "linear_bias_backward" else probe
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shift", [0, 3, -3])
@pytest.mark.parametrize("activation,saved", [(None, None), ("relu", "output"),
                                              ("gelu", "preactivation")])
@pytest.mark.parametrize("out_name", list(LB_OUTPUTS))
def test_linear_backward_gradients_overlapping_an_input(out_name, activation, saved, shift):
    base = dict(LB)
    if saved is not None:
        base[saved] = np.abs(f32(6, 4))
    shape = LB_OUTPUTS[out_name]
    n = int(np.prod(shape))
    gw, gb = np.zeros((4, 5), np.float32), np.zeros(4, np.float32)
    want_dx = ops.linear_backward(**{k: v.copy() for k, v in base.items()}, grad_weight=gw,
                                  grad_bias=gb, activation=activation)
    want_grad = gw if out_name == "grad_weight" else gb
    for arg in base:
        start = 20
        buf, view = placed(start + max(n, base[arg].size) + 20, base[arg], start)
        out = buf[start + shift:start + shift + n].reshape(shape)
        before = out.copy()
        dx = ops.linear_backward(**{**{k: v.copy() for k, v in base.items()}, arg: view},
                                 **{out_name: out}, activation=activation)
        np.testing.assert_allclose(dx, want_dx, rtol=1e-5, atol=1e-5, err_msg=arg)
        np.testing.assert_allclose(out, before + want_grad, rtol=1e-5, atol=1e-5, err_msg=arg)


def test_linear_backward_grad_weight_may_be_the_weight_itself():
    # dx is g @ weight as it was on entry, then grad_weight += g^T x lands in it
    x, w, g = LB["x"], LB["weight"].copy(), LB["grad_out"]
    w0 = w.copy()
    dx = ops.linear_backward(g, x, w, grad_weight=w)
    np.testing.assert_allclose(dx, g.astype(np.float64) @ w0, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w, w0 + g.T.astype(np.float64) @ x, rtol=1e-5, atol=1e-5)


def test_linear_backward_gradients_must_not_overlap_each_other():
    buf = np.zeros(4 * 5 + 4, np.float32)
    with pytest.raises(ValueError, match=r"grad_bias must not share memory with grad_weight"):
        ops.linear_backward(LB["grad_out"], LB["x"], LB["weight"],
                            grad_weight=buf[:20].reshape(4, 5), grad_bias=buf[18:22])
    assert (buf == 0).all()


def test_an_int_beyond_float_range_is_a_value_error():
    """Found by the fuzz campaign (F2): float(10**400) raised OverflowError."""
    from fastnn import nn
    with pytest.raises(ValueError, match=r"\bp\b must be a finite number"):
        nn.Dropout(p=10**400)


def test_a_size_beyond_int64_is_a_value_error():
    """Found by the fuzz campaign: BatchNorm1d(2**70, affine=False, track_running_stats=False)
    allocates nothing, so it was accepted; sizes are int64 in C."""
    from fastnn import nn
    with pytest.raises(ValueError, match=r"num_features must be <= 9223372036854775807, got "
                                         r"1180591620717411303424"):
        nn.BatchNorm1d(2**70, affine=False, track_running_stats=False)
    with pytest.raises(ValueError, match="in_features must be <= "):
        nn.Linear(2**63, 1)
