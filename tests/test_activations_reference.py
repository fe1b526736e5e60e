"""The activations of issue 14 without torch: each op against its formula in
float64 NumPy, and each *_backward against central finite differences of that
formula (away from the kinks), on every ISA; expm1 near 0."""
import numpy as np
import pytest

from fastnn import ops

SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def softplus(x, beta=1.0, threshold=20.0):
    return np.where(beta * x > threshold, x, np.log1p(np.exp(beta * x)) / beta)


# op name -> (float64 formula, keyword options, the points where it has a kink)
FORMULAS = {
    "elu": (lambda x, alpha: np.where(x > 0, x, alpha * np.expm1(x)), {"alpha": 0.7}, [0.0]),
    "selu": (lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(x)), {}, [0.0]),
    "celu": (lambda x, alpha: np.where(x > 0, x, alpha * np.expm1(x / alpha)), {"alpha": 2.0},
             [0.0]),
    "softplus": (softplus, {"beta": 2.0, "threshold": 5.0}, [2.5]),
    "mish": (lambda x: x * np.tanh(np.log1p(np.exp(x))), {}, []),
    "log_sigmoid": (lambda x: -np.logaddexp(0.0, -x), {}, []),
    "softsign": (lambda x: x / (1 + np.abs(x)), {}, []),
    "tanhshrink": (lambda x: x - np.tanh(x), {}, []),
    "hardtanh": (lambda x, min_val, max_val: np.clip(x, min_val, max_val),
                 {"min_val": -0.5, "max_val": 1.5}, [-0.5, 1.5]),
    "relu6": (lambda x: np.clip(x, 0.0, 6.0), {}, [0.0, 6.0]),
    "hardsigmoid": (lambda x: np.clip(x + 3, 0.0, 6.0) / 6, {}, [-3.0, 3.0]),
    "hardswish": (lambda x: x * np.clip(x + 3, 0.0, 6.0) / 6, {}, [-3.0, 3.0]),
    "threshold": (lambda x, threshold, value: np.where(x > threshold, x, value),
                  {"threshold": 0.3, "value": -2.0}, [0.3]),
    "softshrink": (lambda x, lambd: np.where(x > lambd, x - lambd,
                                             np.where(x < -lambd, x + lambd, 0.0)),
                   {"lambd": 0.4}, [-0.4, 0.4]),
    "hardshrink": (lambda x, lambd: np.where(np.abs(x) > lambd, x, 0.0), {"lambd": 0.4},
                   [-0.4, 0.4]),
}
BACKWARD_OPTIONS = {"threshold": ("threshold",)}  # threshold_backward takes no value


def points(kinks, n=2001, seed=0):
    """n float32 points over [-8, 8] at least 0.01 from every kink."""
    x = np.random.default_rng(seed).uniform(-8, 8, n).astype(np.float32)
    for k in kinks:
        x[np.abs(x - k) < 0.01] = k + 0.05
    return x


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_forward_matches_float64(name, isa):
    formula, options, kinks = FORMULAS[name]
    x = points(kinks)
    want = formula(x.astype(np.float64), **options)
    np.testing.assert_allclose(getattr(ops, name)(x, **options), want, rtol=4e-6, atol=2e-7)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_backward_matches_finite_differences(name, isa):
    formula, options, kinks = FORMULAS[name]
    x = points(kinks, seed=1)
    g = np.random.default_rng(2).standard_normal(x.shape).astype(np.float32)
    h = 1e-5
    x64 = x.astype(np.float64)
    fd = (formula(x64 + h, **options) - formula(x64 - h, **options)) / (2 * h) * g
    keys = BACKWARD_OPTIONS.get(name, tuple(options))
    got = getattr(ops, name + "_backward")(g, x, **{k: options[k] for k in keys})
    np.testing.assert_allclose(got, fd, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dim", [0, 1, -1])
def test_glu_and_its_gradient_match_float64(dim, isa):
    x = np.random.default_rng(3).standard_normal((4, 6, 8)).astype(np.float32)
    g_shape = list(x.shape)
    g_shape[dim] //= 2
    g = np.random.default_rng(4).standard_normal(g_shape).astype(np.float32)

    def glu64(v):
        a, b = np.split(v, 2, axis=dim)
        return a / (1 + np.exp(-b))

    np.testing.assert_allclose(ops.glu(x, dim), glu64(x.astype(np.float64)), rtol=2e-6,
                               atol=1e-7)
    dx = ops.glu_backward(g, x, dim)
    h, x64, fd = 1e-5, x.astype(np.float64), np.empty(x.shape)
    for i in np.ndindex(x.shape):  # d sum(g * glu(x)) / d x[i]
        up, down = x64.copy(), x64.copy()
        up[i] += h
        down[i] -= h
        fd[i] = ((g * glu64(up)).sum() - (g * glu64(down)).sum()) / (2 * h)
    np.testing.assert_allclose(dx, fd, rtol=1e-4, atol=1e-5)


def test_softmin_is_the_softmax_of_minus_x(isa):
    x = np.random.default_rng(5).standard_normal((3, 17)).astype(np.float32)
    e = np.exp(-(x.astype(np.float64)) + x.min(axis=-1, keepdims=True))
    np.testing.assert_allclose(ops.softmin(x), e / e.sum(axis=-1, keepdims=True), rtol=2e-6,
                               atol=1e-7)


def test_expm1_keeps_its_relative_accuracy_near_zero(isa):
    x = np.concatenate([np.geomspace(1e-30, 1e-3, 500), np.linspace(-0.7, 0.7, 1001)])
    x = np.concatenate([x, -x]).astype(np.float32)
    want = np.expm1(x.astype(np.float64))
    got = ops.expm1(x).astype(np.float64)
    nonzero = want != 0
    assert np.max(np.abs(got[nonzero] - want[nonzero]) / np.abs(want[nonzero])) < 4e-7
