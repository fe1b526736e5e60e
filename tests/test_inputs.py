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
