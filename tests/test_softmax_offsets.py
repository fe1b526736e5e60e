"""softmax / log_softmax of logits that share a large offset, against the float64
reference, every ISA path (the class of bug cross_entropy had: a log-sum-exp taken
as max + log(sum) loses log(sum) against max from |max| ~ 1e8 on)."""
import numpy as np
import pytest

from fastnn import ops

import reference as ref


@pytest.mark.parametrize("offset", [0.0, 1e4, 1e8, 1e30, -1e30])
@pytest.mark.parametrize("shape,axis", [((4, 37), -1), ((3, 21, 5), 1), ((2, 3), 0)])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_softmax_large_offsets(offset, shape, axis, log, isa, rng):
    spread = max(1.0, abs(offset) * 1e-6)
    x = (offset + rng.standard_normal(shape) * spread).astype(np.float32)
    got = (ops.log_softmax if log else ops.softmax)(x, axis=axis)
    want = (ref.log_softmax if log else ref.softmax)(x, axis=axis)
    scale = np.abs(want).max() if log else 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale)
