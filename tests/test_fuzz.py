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
from fuzzing import check_result, ops_calls, run, start

SEED, CALLS, VERBOSE, R, NP = start()
run(ops_calls(R, NP), check_result, CALLS, VERBOSE, R)
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
    (lambda: ops.cross_entropy(X, [0, 3]),                                               ValueError, r"\btarget\b.*\b3\b"),
    (lambda: ops.cross_entropy(X, [0, -1]),                                              ValueError, r"\btarget\b.*-1"),
    (lambda: ops.cross_entropy(X, [0.0, 1.0]),                                           ValueError, r"\btarget\b.*probabilities"),
    (lambda: ops.cross_entropy(X, [0, 1, 2]),                                            ValueError, r"\btarget\b.*shape"),
    (lambda: ops.cross_entropy(X, [[0], [1, 2]]),                                        TypeError,  r"\btarget\b"),
    (lambda: ops.cross_entropy(np.float32(1.0), 0),                                      ValueError, r"\binput\b"),
    (lambda: ops.cross_entropy(np.zeros((2, 0), np.float32), LABELS),                    ValueError, r"\binput\b"),
    (lambda: ops.cross_entropy("abc", LABELS),                                           TypeError,  r"\binput\b"),
    (lambda: ops.cross_entropy(X, LABELS, label_smoothing=2),                            ValueError, r"\blabel_smoothing\b"),
    (lambda: ops.cross_entropy(X, LABELS, label_smoothing=float("nan")),                 ValueError, r"\blabel_smoothing\b"),
    (lambda: ops.cross_entropy(X, LABELS, label_smoothing="a"),                          TypeError,  r"\blabel_smoothing\b"),
    (lambda: ops.cross_entropy(X, LABELS, ignore_index=None),                            TypeError,  r"\bignore_index\b"),
    (lambda: ops.mse_loss("abc", X),                                                     TypeError,  r"\binput\b"),
    (lambda: ops.mse_loss(X, np.zeros(3, np.float32)),                                   ValueError, r"\btarget\b.*shape"),
    (lambda: ops.binary_cross_entropy_with_logits(X, "abc"),                             TypeError,  r"\btarget\b"),
    (lambda: ops.binary_cross_entropy_with_logits(np.array([1j]), np.zeros(1)),          TypeError,  r"\binput\b"),
    (lambda: ops.nll_loss(X, [0.0, 1.0]),                                                TypeError,  r"\btarget\b.*integer"),
    (lambda: ops.cross_entropy(X, LABELS, weight=[1.0, 2.0]),                            ValueError, r"\bweight\b.*\(3,\)"),
    (lambda: ops.binary_cross_entropy_with_logits(X, X, pos_weight=[1.0, 2.0]),          ValueError, r"\bpos_weight\b.*broadcast"),
    (lambda: ops.mse_loss(X, X, reduction="avg"),                                        ValueError, r"\breduction\b.*'avg'"),
    (lambda: ops.binary_cross_entropy(X + 2, X),                                         ValueError, r"\binput\b.*probabilities"),
    (lambda: ops.gaussian_nll_loss(X, X, -np.ones_like(X)),                              ValueError, r"\bvar\b"),
    (lambda: ops.margin_ranking_loss(X, X[:1, :2], X),                                   ValueError, r"\binput2\b|\bshape"),
    (lambda: ops.kl_div(X, X, reduction="batchmeans"),                                   ValueError, r"\breduction\b"),
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
