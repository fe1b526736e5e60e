"""matmul / linear / linear_bias_backward against PyTorch (CPU float32) on every ISA
path: torch.matmul, torch.bmm, torch.baddbmm-style alpha/beta, F.linear and its
activations, the bias gradient of nn.Linear.

Both are float32 results of the same product, so they may differ by twice the
float32 dot-product bound (K + 4) * 2**-24 * |a| @ |b| (see test_gemm.py),
plus the activations' own rounding.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = pytest.importorskip("torch.nn.functional")

from fastnn import _C, ops  # noqa: E402

EPS32 = 2.0 ** -24


def rnd(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def T(x):
    return torch.from_numpy(np.ascontiguousarray(x))


def assert_parity(got, want, K, mag, act_rtol=0.0, slope=1.0):
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else want
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert got.shape == want.shape, (got.shape, want.shape)
    tol = 2 * (K + 4) * EPS32 * mag * slope + act_rtol * np.abs(want.astype(np.float64)) + 1e-37
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bad = ~(err <= tol)
    assert not bad.any(), (f"{int(bad.sum())} of {bad.size} off; worst excess "
                           f"{np.nanmax(err - tol)}")


def magnitude(a, b):
    return np.matmul(np.abs(np.asarray(a, np.float64)), np.abs(np.asarray(b, np.float64)))


@pytest.fixture
def sizes():
    """(M, N, K) for the active ISA: ragged tiles and one past each block"""
    MR, NR, KC, MC, NC = _C.gemm_blocking()
    return [(1, 1, 1), (MR + 1, NR - 1, 7), (2 * MR + 3, 3 * NR + 1, KC + 1),
            (MC + 1, NR + 2, 20), (MR, NC + 1, 9)]


def test_matmul_2d(isa, rng, sizes):
    for M, N, K in sizes:
        a, b = rnd(rng, (M, K)), rnd(rng, (K, N))
        assert_parity(ops.matmul(a, b), torch.matmul(T(a), T(b)), K, magnitude(a, b))
        # transposes as flags and as views, against torch on the transposed tensors
        at, bt = np.ascontiguousarray(a.T), np.ascontiguousarray(b.T)
        want = torch.matmul(T(at).t(), T(bt).t())
        assert_parity(ops.matmul(at, bt, trans_a=True, trans_b=True), want, K, magnitude(a, b))
        assert_parity(ops.matmul(at.T, bt.T), want, K, magnitude(a, b))
        assert_parity(ops.matmul(a, bt, trans_b=True), torch.matmul(T(a), T(bt).t()), K,
                      magnitude(a, b))


def test_bmm_and_broadcast(isa, rng):
    MR, NR, *_ = _C.gemm_blocking()
    B, M, N, K = 3, 2 * MR + 1, NR + 5, 33
    a, b = rnd(rng, (B, M, K)), rnd(rng, (B, K, N))
    assert_parity(ops.matmul(a, b), torch.bmm(T(a), T(b)), K, magnitude(a, b))
    # k.transpose(0, 2, 1)-style views on both sides
    bt = np.ascontiguousarray(b.transpose(0, 2, 1))
    assert_parity(ops.matmul(a, bt.transpose(0, 2, 1)), torch.bmm(T(a), T(bt).transpose(1, 2)),
                  K, magnitude(a, b))
    assert_parity(ops.matmul(a, bt, trans_b=True), torch.bmm(T(a), T(bt).transpose(1, 2)),
                  K, magnitude(a, b))
    # NumPy-style batch broadcasting, as torch.matmul
    w = rnd(rng, (K, N))
    assert_parity(ops.matmul(a, w), torch.matmul(T(a), T(w)), K, magnitude(a, w))
    m = rnd(rng, (M, K))
    assert_parity(ops.matmul(m, b), torch.matmul(T(m), T(b)), K, magnitude(m, b))
    one = rnd(rng, (1, K, N))
    assert_parity(ops.matmul(a, one), torch.matmul(T(a), T(one)), K, magnitude(a, one))
    assert_parity(ops.matmul(np.broadcast_to(m, (B, M, K)), b),
                  torch.matmul(T(m).expand(B, M, K), T(b)), K, magnitude(m, b))


def test_alpha_beta_as_baddbmm(isa, rng):
    B, M, N, K = 2, 19, 23, 300
    a, b, c = rnd(rng, (B, M, K)), rnd(rng, (B, K, N)), rnd(rng, (B, M, N))
    for alpha, beta in [(0.5, 2.0), (-1.0, 1.0), (1.0, -0.25)]:
        want = torch.baddbmm(T(c), T(a), T(b), beta=beta, alpha=alpha)
        got = ops.matmul(a, b, alpha=alpha, beta=beta, out=c.copy())
        mag = abs(alpha) * magnitude(a, b) + abs(beta) * np.abs(c)
        assert_parity(got, want, K, mag)
        want2 = torch.addmm(T(c[0]), T(a[0]), T(b[0]), beta=beta, alpha=alpha)
        assert_parity(ops.matmul(a[0], b[0], alpha=alpha, beta=beta, out=c[0].copy()), want2,
                      K, mag[0])


TORCH_ACTS = {None: lambda z: z, "relu": F.relu, "gelu": F.gelu, "sigmoid": torch.sigmoid,
              "tanh": torch.tanh, "gelu_tanh": lambda z: F.gelu(z, approximate="tanh")}
SLOPE = {None: 1.0, "relu": 1.0, "gelu": 1.13, "sigmoid": 0.25, "tanh": 1.0, "gelu_tanh": 1.13}


@pytest.mark.parametrize("activation", list(TORCH_ACTS))
def test_linear_matches_F_linear(activation, isa, rng):
    MR, NR, KC, *_ = _C.gemm_blocking()
    for x_shape, n_in, n_out in [((MR + 2,), 7, NR + 1), ((), 19, 5), ((2, 9), KC + 3, 2 * NR + 1),
                                 ((3,), 1, 1)]:
        x = rnd(rng, x_shape + (n_in,), 1.5)
        w, b = rnd(rng, (n_out, n_in), 1 / math.sqrt(n_in)), rnd(rng, n_out)
        for bias in [b, None]:
            want = TORCH_ACTS[activation](F.linear(T(x), T(w), None if bias is None else T(bias)))
            mag = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)).T
            if bias is not None:
                mag = mag + np.abs(bias)
            assert_parity(ops.linear(x, w, bias, activation), want, n_in, mag,
                          act_rtol=1.6e-5, slope=SLOPE[activation])


def test_linear_bias_backward_matches_autograd(isa, rng):
    x, w, b = rnd(rng, (4, 50, 30)), rnd(rng, (20, 30)), rnd(rng, 20)
    g = rnd(rng, (4, 50, 20))
    bt = T(b).requires_grad_(True)
    F.linear(T(x), T(w), bt).backward(T(g))
    got = ops.linear_bias_backward(g)
    mag = np.abs(g.astype(np.float64)).reshape(-1, 20).sum(0)
    assert_parity(got, bt.grad, 200, mag)


@pytest.mark.parametrize("activation", ["gelu", "gelu_tanh"])
def test_linear_backward_gelu_matches_autograd(activation, isa, rng):
    x, w, b = rnd(rng, (4, 10, 30)), rnd(rng, (20, 30), 0.2), rnd(rng, 20)
    g = rnd(rng, (4, 10, 20))
    xt, wt, bt = (T(a).requires_grad_(True) for a in (x, w, b))
    approximate = "tanh" if activation == "gelu_tanh" else "none"
    F.gelu(F.linear(xt, wt, bt), approximate=approximate).backward(T(g))
    pre = np.empty(g.shape, np.float32)
    y = ops.linear(x, w, b, activation=activation, preactivation=pre)
    np.testing.assert_allclose(y, F.gelu(F.linear(T(x), T(w), T(b)), approximate=approximate),
                               rtol=1e-5, atol=1e-5)
    gw, gb = np.zeros((20, 30), np.float32), np.zeros(20, np.float32)
    dx = ops.linear_backward(g, x, w, grad_weight=gw, grad_bias=gb, activation=activation,
                             preactivation=pre)
    for got, want in [(gw, wt.grad), (gb, bt.grad), (dx, xt.grad)]:
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-4)
