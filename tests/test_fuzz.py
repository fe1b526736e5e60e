"""Fuzzing fastnn.ops with bad calls: nothing may crash the interpreter.

test_fuzz_bad_calls runs ~3000 random calls in a child interpreter (a segfault
or abort there fails the test instead of killing pytest). Every call must
return, or raise TypeError, ValueError (numpy's AxisError included) or
MemoryError. The other tests check, in-process, that error messages name the
offending argument, and pin down the bad calls fastnn still gets wrong.
"""
import os

import numpy as np
import pytest

from fuzzing import assert_child_survives

from fastnn import ops

SEED = int(os.environ.get("FASTNN_FUZZ_SEED", "20240611"))
CALLS = 3000

CHILD = r'''
import numpy as np
from fastnn import ops
from fuzzing import Arrays, run, start

SEED, CALLS, VERBOSE, R, NP = start()

# ---- shapes and arrays ----------------------------------------------------------
SHAPES = [(), (0,), (1,), (7,), (17,), (3, 5), (2, 3, 4), (4, 1, 3), (1000,), (3, 0, 4),
          (0, 10**9), (10**9, 0), (2, 0, 10**9), (0, 10**9, 10**9)]
ARRAYS = Arrays(R, NP)
ARRAY_MAKERS = ARRAYS.makers()


def shape():
    return R.choice(SHAPES)


def f32(shp=None):
    return ARRAYS.f32(shape() if shp is None else shp)


JUNK = [None, [[1, 2], [3]], [[1.0, [2.0]], 3.0], [], [[]], 1.5, 0, True, 1j, "abc", b"xy",
        {"a": 1}, {1, 2}, object(), 2**100, [2**100], [None], [1, "a"], np.float32(3),
        np.float64("nan"), np.datetime64("2020-01-01"), range(5), (x for x in range(3)),
        np.array([1.0, None], dtype=object), np.empty((0, 10**9), np.float32),
        np.empty((10**9, 0), np.float64), np.empty(0, np.complex64), memoryview(b"abcd")]


def array_for(shp):
    """mostly an array of shape shp (in some form), sometimes junk"""
    if R.random() < 0.15:
        return R.choice(JUNK)
    return R.choice(ARRAY_MAKERS)(shp)


def array_any():
    return array_for(shape())


def like(shp):
    """a second operand: usually the same shape, sometimes mismatched"""
    return array_for(shp if R.random() < 0.7 else shape())


def out_for(shp, inputs):
    return ARRAYS.out_for(shp, inputs, shape)


AXES = [-1, 0, 1, 2, -2, 3, -4, 100, -100, 2**70, 1.5, -0.5, "a", "1", None, True,
        np.int64(1), np.array([0, 1]), [0], (0,), 1j, float("nan")]
APPROX = ["none", "tanh", "TANH", "None", "", "erf", None, 1, b"tanh", ["tanh"], np.str_("tanh"),
          np.array(["none", "tanh"]), object()]
SLOPES = [0.01, 0.0, -1.0, 1e30, float("nan"), float("inf"), np.float64(0.2), 2, True, None,
          "a", [0.1], np.array([0.1, 0.2]), 1j, object(), {}, 1e400, 10**400]
SMOOTHING = [0.0, 0.1, 1.0, -1, 2, float("nan"), float("inf"), -0.0, 1e-50, "a", None, [0.1],
             1j, np.float32(0.5), True, object(), 10**400]
IGNORE = [-100, 0, 1, -1, 2**62, -2**62, 2**63 - 1, -2**63, None, "a", 1j, [1], object(),
          2**63, -2**63 - 1, 1.7]


def labels_for(logits):
    s = getattr(logits, "shape", None)
    if s is None or R.random() < 0.2:
        s = shape()
    ls = () if len(s) <= 1 else s[:1] + s[2:]
    if R.random() < 0.2:
        ls = shape()  # mismatched
    if np.prod(ls, dtype=object) > 10**6:  # e.g. logits (2, 0, 10**9): labels would be real
        ls = (0,) + ls[1:]
    C = s[1] if len(s) >= 2 else (s[0] if s else 1)
    k = R.randrange(12)
    if k < 3:
        return NP.integers(0, max(C, 1), ls)
    if k == 3:
        return NP.choice([-100, 0, C, C + 1, -1, -101, 2**62, -2**62, 2**63 - 1, -2**63], ls)
    if k == 4:
        return NP.integers(0, max(C, 1), ls).astype(R.choice(
            [np.float32, np.float64, bool, np.int8, np.uint8, np.uint64, np.int32, object, "U3"]))
    if k == 5:
        return np.full(ls, 2**64 - 1, np.uint64)
    if k == 6:
        return R.choice([0, 1, -100, 2**62, 2**70, 1.5, "0", None, [0, 1], [[0], [1, 2]],
                         np.int64(0), np.array(0), [2**70]])
    if k == 7:
        a = NP.integers(0, max(C, 1), tuple(2 * d for d in ls)) if ls else np.int64(0)
        return a[tuple(slice(None, None, 2) for _ in ls)] if ls else a
    if k == 8:
        a = NP.integers(0, max(C, 1), ls)
        a.flags.writeable = False
        return a
    return R.choice(JUNK)


# ---- the calls ------------------------------------------------------------------
def unary(name):
    def make():
        x = array_any()
        return getattr(ops, name), [x], {"out": out_for(getattr(x, "shape", ()), [x])}
    return make


def binary(name, extra=None):
    def make():
        x = array_any()
        g = like(getattr(x, "shape", shape()))
        args = [g, x] + ([R.choice(extra)] if extra else [])
        return getattr(ops, name), args, {"out": out_for(getattr(x, "shape", ()), [g, x])}
    return make


def with_param(name, pool):
    def make():
        x = array_any()
        return getattr(ops, name), [x, R.choice(pool)], {"out": out_for(getattr(x, "shape", ()), [x])}
    return make


def cross_entropy():
    x = array_any()
    kw = {}
    if R.random() < 0.5:
        kw["label_smoothing"] = R.choice(SMOOTHING)
    if R.random() < 0.5:
        kw["ignore_index"] = R.choice(IGNORE)
    return ops.cross_entropy, [x, labels_for(x)], kw


def pointwise_loss(name):
    def make():
        x = array_any()
        return getattr(ops, name), [x, like(getattr(x, "shape", shape()))], {}
    return make


# optimizer steps: most calls valid (so that they reach the kernel), the others
# with junk, the wrong size or layout, read-only, None, or another argument as a
# buffer, or an option out of range or of the wrong type
GOOD_HYPER = [0.0, 0.01, 0.5, 0.9, 0.999, np.float32(0.5), 1e-45, 0.0]
BAD_HYPER = [1.0, 1.5, -0.1, -0.0, 1e30, 1e39, float("nan"), float("inf"), "0.1", None, 1j, [0.1],
             np.array([0.1, 0.2]), True, object(), 10**400]
FLAGS = [False, True, 0, 1, None, "", "yes", np.bool_(True), np.array([1, 0]), [], object()]
STEP_COUNTS = [1, 2, 10**6, 2**63 - 1, 0, -1, 2**63, 1.5, "1", None, np.int64(3), True, 1j]
FLAG_NAMES = ("nesterov", "first_step", "decoupled")


def hyper():
    return R.choice(GOOD_HYPER if R.random() < 0.85 else BAD_HYPER)


def buffer_for(shp, others):
    r = R.random()
    if r < 0.05:
        return R.choice(others)
    if r < 0.85:
        return np.zeros(shp, np.float32)
    return like(shp)


def maybe_buffer(shp, others):
    return None if R.random() < 0.4 else buffer_for(shp, others)


def param_and_grad():
    p = f32() if R.random() < 0.85 else array_any()
    shp = getattr(p, "shape", shape())
    return p, buffer_for(shp, [p]), shp


def options(names):
    return {k: R.choice(FLAGS) if k in FLAG_NAMES else hyper() for k in names if R.random() < 0.5}


def sgd_step():
    p, g, shp = param_and_grad()
    kw = options(["momentum", "dampening", "nesterov", "weight_decay", "first_step"])
    return ops.sgd_step, [p, g, maybe_buffer(shp, [p, g]), hyper()], kw


def adam_step():
    p, g, shp = param_and_grad()
    m = buffer_for(shp, [p, g])
    v = buffer_for(shp, [p, g, m])
    kw = options(["lr", "beta1", "beta2", "eps", "weight_decay", "decoupled"])
    kw["max_exp_avg_sq"] = maybe_buffer(shp, [p, g, m, v])
    step = R.choice(STEP_COUNTS) if R.random() < 0.3 else R.randrange(1, 100)
    return ops.adam_step, [p, g, m, v, step], kw


def rmsprop_step():
    p, g, shp = param_and_grad()
    sq = buffer_for(shp, [p, g])
    kw = options(["lr", "alpha", "eps", "weight_decay", "momentum"])
    kw["grad_avg"] = maybe_buffer(shp, [p, g, sq])
    kw["momentum_buf"] = maybe_buffer(shp, [p, g, sq, kw["grad_avg"]])
    return ops.rmsprop_step, [p, g, sq], kw


MAKERS = ([unary(n) for n in ("relu", "sigmoid", "tanh", "silu", "exp", "erf")]
          + [with_param("leaky_relu", SLOPES), with_param("gelu", APPROX),
             with_param("softmax", AXES), with_param("log_softmax", AXES)]
          + [binary(n) for n in ("relu_backward", "sigmoid_backward", "tanh_backward",
                                 "silu_backward")]
          + [binary("leaky_relu_backward", SLOPES), binary("gelu_backward", APPROX),
             binary("softmax_backward", AXES), binary("log_softmax_backward", AXES)]
          + [cross_entropy, cross_entropy, cross_entropy]
          + [pointwise_loss("mse_loss"), pointwise_loss("binary_cross_entropy_with_logits")]
          + [sgd_step, adam_step, rmsprop_step] * 2)


def check_result(fn, res, kw):
    if fn in (ops.sgd_step, ops.adam_step, ops.rmsprop_step):  # in place
        assert res is None, res
        return
    if fn in (ops.cross_entropy, ops.mse_loss, ops.binary_cross_entropy_with_logits):
        assert isinstance(res, tuple) and isinstance(res[0], float), res
        res = res[1]
    assert isinstance(res, np.ndarray) and res.dtype == np.float32, type(res)


run(MAKERS, check_result, CALLS, VERBOSE, R)
'''


def test_fuzz_bad_calls():
    assert_child_survives(CHILD, SEED, CALLS)


# ---- error messages name the argument -------------------------------------------
X = np.zeros((2, 3), np.float32)
RO = np.zeros((2, 3), np.float32)
RO.flags.writeable = False
LABELS = np.array([0, 2])

#                 call                                                                    raises      message must match
MESSAGES = [
    (lambda: ops.relu(X, out=np.empty((2, 3), np.float64)),                              TypeError,  r"\bout\b.*float32"),
    (lambda: ops.relu(X, out=[0.0] * 6),                                                 TypeError,  r"\bout\b"),
    (lambda: ops.relu(X, out=np.empty((3, 2), np.float32)),                              ValueError, r"\bout\b.*shape"),
    (lambda: ops.relu(X, out=np.empty((2, 6), np.float32)[:, ::2]),                      ValueError, r"\bout\b.*contiguous"),
    (lambda: ops.relu(X, out=RO),                                                        ValueError, r"\bout\b.*writeable"),
    (lambda: ops.softmax(X, axis=-1, out=np.empty(6, np.float32)),                       ValueError, r"\bout\b.*shape"),
    (lambda: ops.relu("abc"),                                                            TypeError,  r"\bx\b"),
    (lambda: ops.sigmoid([[1.0, 2.0], [3.0]]),                                           TypeError,  r"\bx\b"),
    (lambda: ops.tanh(np.array([1 + 2j])),                                               TypeError,  r"\bx\b.*complex"),
    (lambda: ops.gelu(np.array(["2020-01-01"], "datetime64[D]")),                        TypeError,  r"\bx\b"),
    (lambda: ops.relu_backward("abc", X),                                                TypeError,  r"\bgrad_out\b"),
    (lambda: ops.sigmoid_backward(X, np.array([object()])),                              TypeError,  r"\by\b"),
    (lambda: ops.gelu_backward(np.zeros(3, np.float32), X),                              ValueError, r"\bgrad_out\b.*shape"),
    (lambda: ops.softmax_backward(np.zeros(3, np.float32), X),                           ValueError, r"\bgrad_out\b"),
    (lambda: ops.gelu(X, approximate="TANH"),                                            ValueError, r"\bapproximate\b"),
    (lambda: ops.leaky_relu(X, negative_slope=None),                                     TypeError,  r"\bnegative_slope\b"),
    (lambda: ops.softmax(X, axis=2),                                                     np.exceptions.AxisError, r"\baxis\b"),
    (lambda: ops.log_softmax(X, axis="a"),                                               TypeError,  r"\baxis\b"),
    (lambda: ops.softmax(np.float32(1.0), axis=1),                                       np.exceptions.AxisError, r"\baxis\b"),
    (lambda: ops.cross_entropy(X, [0, 3]),                                               ValueError, r"\blabels\b.*\b3\b"),
    (lambda: ops.cross_entropy(X, [0, -1]),                                              ValueError, r"\blabels\b.*-1"),
    (lambda: ops.cross_entropy(X, [0.0, 1.0]),                                           TypeError,  r"\blabels\b"),
    (lambda: ops.cross_entropy(X, [0, 1, 2]),                                            ValueError, r"\blabels\b.*shape"),
    (lambda: ops.cross_entropy(X, [[0], [1, 2]]),                                        TypeError,  r"\blabels\b"),
    (lambda: ops.cross_entropy(np.float32(1.0), 0),                                      ValueError, r"\blogits\b"),
    (lambda: ops.cross_entropy(np.zeros((2, 0), np.float32), LABELS),                    ValueError, r"\blogits\b"),
    (lambda: ops.cross_entropy("abc", LABELS),                                           TypeError,  r"\blogits\b"),
    (lambda: ops.cross_entropy(X, LABELS, label_smoothing=2),                            ValueError, r"\blabel_smoothing\b"),
    (lambda: ops.cross_entropy(X, LABELS, label_smoothing=float("nan")),                 ValueError, r"\blabel_smoothing\b"),
    (lambda: ops.cross_entropy(X, LABELS, label_smoothing="a"),                          TypeError,  r"\blabel_smoothing\b"),
    (lambda: ops.cross_entropy(X, LABELS, ignore_index=None),                            TypeError,  r"\bignore_index\b"),
    (lambda: ops.mse_loss("abc", X),                                                     TypeError,  r"\bpred\b"),
    (lambda: ops.mse_loss(X, np.zeros(3, np.float32)),                                   ValueError, r"\btarget\b.*shape"),
    (lambda: ops.binary_cross_entropy_with_logits(X, "abc"),                             TypeError,  r"\btarget\b"),
    (lambda: ops.binary_cross_entropy_with_logits(np.array([1j]), np.zeros(1)),          TypeError,  r"\blogits\b"),
]


@pytest.mark.parametrize("call, exc, match", MESSAGES, ids=range(len(MESSAGES)))
def test_error_message_names_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ---- scalar options: numbers out of range or of the wrong kind are rejected ----------
STRICT_SCALARS = [
    pytest.param(lambda: ops.leaky_relu(X, negative_slope=10**400), id="slope_huge_int"),
    pytest.param(lambda: ops.leaky_relu_backward(X, X, 10**400), id="bwd_slope_huge_int"),
    pytest.param(lambda: ops.cross_entropy(X, LABELS, label_smoothing=10**400), id="smoothing_huge_int"),
    pytest.param(lambda: ops.cross_entropy(X, LABELS, ignore_index=2**63), id="ignore_index_2**63"),
    pytest.param(lambda: ops.cross_entropy(X, LABELS, ignore_index=-2**63 - 1), id="ignore_index_-2**63-1"),
    # no truncation of floats and no parsing of strings (as numpy and torch)
    pytest.param(lambda: ops.softmax(X, axis=1.5), id="axis_float"),
    pytest.param(lambda: ops.log_softmax_backward(X, X, axis="0"), id="axis_str"),
    pytest.param(lambda: ops.cross_entropy(X, LABELS, ignore_index=1.7), id="ignore_index_float"),
    pytest.param(lambda: ops.leaky_relu(X, negative_slope="0.5"), id="slope_str"),
    pytest.param(lambda: ops.cross_entropy(X, LABELS, label_smoothing="0.1"), id="smoothing_str"),
]


@pytest.mark.parametrize("call", STRICT_SCALARS)
def test_bad_scalar_options_are_rejected(call):
    with pytest.raises((TypeError, ValueError)):
        call()
