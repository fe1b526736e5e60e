"""Fuzzing matmul, linear and linear_bias_backward with bad calls: nothing may
crash the interpreter (same approach as test_fuzz.py).

~6000 random calls run in a child interpreter, so a segfault or abort fails
the test instead of killing pytest. Every call must return a float32 ndarray
(`out` itself when one was given) or raise TypeError, ValueError or
MemoryError.
"""
import os

from fuzzing import assert_child_survives

SEED = int(os.environ.get("FASTNN_FUZZ_SEED", "20240611"))
CALLS = 6000

CHILD = r'''
import numpy as np
from fastnn import ops
from fuzzing import Arrays, run, start

SEED, CALLS, VERBOSE, R, NP = start()

DIMS = [0, 1, 1, 2, 3, 4, 5, 7, 8, 13, 17, 33]
HUGE = 10**10  # any non-empty array with such an axis is > 8 GiB: a quick MemoryError
ARRAYS = Arrays(R, NP)
ARRAY_MAKERS = ARRAYS.makers()
f32 = ARRAYS.f32


def dim():
    return R.choice(DIMS)


JUNK = [None, [[1, 2], [3]], [], [[]], 1.5, 0, True, 1j, "abc", b"xy", {"a": 1}, object(),
        2**100, [[2**100]], [[None]], np.float32(3), range(5), np.array([[1.0, None]], dtype=object),
        np.empty((0, HUGE), np.float32), np.empty((HUGE, 0), np.float32),
        np.empty((2, HUGE, 0), np.float32), np.empty((0, 3), np.complex64), memoryview(b"abcd"),
        np.broadcast_to(np.float32(1), (HUGE, 2, 2)), np.broadcast_to(np.float32(1), (HUGE, 3)),
        np.zeros((2, 3, 4, 5), np.float32), np.zeros(7, np.float32), np.float32(1.0)]


def array_for(shp):
    if R.random() < 0.12:
        return R.choice(JUNK)
    try:
        return R.choice(ARRAY_MAKERS)(shp)
    except (ValueError, MemoryError):
        return f32(shp)


def random_shape():
    return tuple(dim() for _ in range(R.choice([1, 2, 3])))


def out_for(shp, inputs):
    return ARRAYS.out_for(shp, inputs, random_shape)


TRANS = [False, True, False, True, 0, 1, None, np.bool_(True), "yes", "", [1], [], np.array([1, 0])]
SCALARS = [1.0, 1.0, 0.0, 0.0, -2, 0.5, np.float32(0.5), np.float64(-1), True, float("nan"),
           float("inf"), -float("inf"), 1e300, 10**400, "1", None, 1j, [1.0], np.array([2.0]),
           np.array([1.0, 1.0]), object(), np.int64(3), 1e-45]
ACTS = [None, "none", "relu", "gelu", "sigmoid", "tanh", "RELU", "", "softmax", "gelu_tanh", 1,
        b"relu", ["relu"], np.str_("tanh"), np.array(["relu"]), object(), {}, True]


def mm_shapes():
    """a's and b's shapes: mostly compatible 2-D / 3-D, sometimes not"""
    M, N, K, B = dim(), dim(), dim(), R.choice([1, 1, 2, 3, 0])
    ta, tb = R.choice(TRANS), R.choice(TRANS)
    try:
        fa, fb = bool(ta), bool(tb)
    except ValueError:
        fa = fb = False
    sa = (K, M) if fa else (M, K)
    sb = (N, K) if fb else (K, N)
    r = R.random()
    if r < 0.25:
        sa = (B,) + sa
    elif r < 0.4:
        sb = (B,) + sb
    elif r < 0.6:
        sa, sb = (B,) + sa, (R.choice([B, B, 1, 2]),) + sb
    if R.random() < 0.15:  # mismatched
        sb = tuple(R.choice([s, dim(), s + 1]) for s in sb)
    if R.random() < 0.05:
        sa = R.choice([(), (dim(),), (1, 2, 3, 4), (0, HUGE), (HUGE, 0), (2, 0, HUGE)])
    if R.random() < 0.05:
        sb = R.choice([(), (dim(),), (1, 2, 3, 4), (0, HUGE), (HUGE, 0), (2, HUGE, 0)])
    return sa, sb, ta, tb


def matmul_call():
    sa, sb, ta, tb = mm_shapes()
    a, b = array_for(sa), array_for(sb)
    kw = {}
    if R.random() < 0.5:
        kw["trans_a"] = ta
    if R.random() < 0.5:
        kw["trans_b"] = tb
    if R.random() < 0.3:
        kw["alpha"] = R.choice(SCALARS)
    if R.random() < 0.3:
        kw["beta"] = R.choice(SCALARS)
    try:
        shp = np.matmul(np.empty(np.shape(a)[:-2] + (3, 3) if np.ndim(a) > 2 else (3, 3)),
                        np.empty(np.shape(b)[:-2] + (3, 3) if np.ndim(b) > 2 else (3, 3))).shape
        shp = shp[:-2] + (sa[-1] if kw.get("trans_a") is True else sa[-2] if len(sa) > 1 else 1,
                          sb[-2] if kw.get("trans_b") is True else sb[-1] if sb else 1)
    except Exception:
        shp = sa
    if R.random() < 0.6:
        kw["out"] = out_for(shp, [a, b])
    return ops.matmul, [a, b], kw


def linear_call():
    n_in, n_out = dim(), dim()
    lead = R.choice([(), (dim(),), (dim(),), (2, dim()), (0,), (1, 2, 3)])
    xs = lead + (n_in,)
    if R.random() < 0.1:
        xs = R.choice([(), (n_in + 1,), (HUGE, 0), (0, HUGE)])
    ws = (n_out, n_in)
    if R.random() < 0.1:
        ws = R.choice([(n_in,), (n_out, n_in + 1), (1, n_out, n_in), (), (HUGE, 0), (0, HUGE)])
    x, w = array_for(xs), array_for(ws)
    args = [x, w]
    kw = {}
    if R.random() < 0.6:
        bs = R.choice([(n_out,), (n_out,), (n_out,), (n_out + 1,), (1, n_out), (), (0,)])
        kw["bias"] = array_for(bs)
    if R.random() < 0.6:
        kw["activation"] = R.choice(ACTS)
    if R.random() < 0.5:
        kw["out"] = out_for(lead + (n_out,), [x, w, kw.get("bias")])
    return ops.linear, args, kw


def bias_grad_call():
    shp = R.choice([(), (dim(),), (dim(), dim()), (2, dim(), dim()), (0, HUGE), (HUGE, 0),
                    (1, 2, 3, 4)])
    g = array_for(shp)
    kw = {}
    if R.random() < 0.5:
        kw["out"] = out_for(shp[-1:] if shp else (1,), [g])
    return ops.linear_bias_backward, [g], kw


MAKERS = [matmul_call, matmul_call, matmul_call, linear_call, linear_call, bias_grad_call]


def check_result(fn, res, kw):
    assert isinstance(res, np.ndarray) and res.dtype == np.float32, type(res)
    if isinstance(kw.get("out"), np.ndarray):
        assert res is kw["out"], "out= given but another array returned"


run(MAKERS, check_result, CALLS, VERBOSE, R)
'''


def test_gemm_fuzz_bad_calls():
    assert_child_survives(CHILD, SEED, CALLS)
