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
from fuzzing import check_result, gemm_calls, run, start

SEED, CALLS, VERBOSE, R, NP = start()
run(gemm_calls(R, NP), check_result, CALLS, VERBOSE, R)
'''


def test_gemm_fuzz_bad_calls():
    assert_child_survives(CHILD, SEED, CALLS)
