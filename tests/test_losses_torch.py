"""Parity of every fastnn.ops loss with torch.nn.functional: each option, each
reduction, on every ISA path and with 1 and 2 threads (float32, CPU).

A case builds the inputs and keyword arguments once; the fastnn call returns
(loss, grad...) and torch's autograd gives the gradients of the same inputs. For
reduction="none" fastnn's gradients are each element's own derivative, so they
are compared with the gradient of torch's losses summed (a variance shared along
an axis summed back to its shape).
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from fastnn import ops  # noqa: E402

REDUCTIONS = ["none", "mean", "sum"]
# torch's note that kl_div's "mean" is not the KL divergence (batchmean is): fastnn keeps "mean"
pytestmark = pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")


def randn(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def signs(rng, *shape):
    return rng.choice(np.array([-1.0, 1.0], np.float32), shape)


def probabilities(rng, *shape, axis=1):
    p = rng.random(shape).astype(np.float64) + 0.05
    return (p / p.sum(axis=axis, keepdims=True)).astype(np.float32)


def labels(rng, C, *shape, ignore=None):
    y = rng.integers(0, C, shape)
    if ignore is not None:
        y[rng.random(shape) < 0.25] = ignore
    return y


def log_softmax(x, axis=1):
    return F.log_softmax(torch.from_numpy(x), dim=axis).numpy()


# name: (fastnn fn, torch fn, build(rng) -> (arrays, differentiated positions, kwargs))
CASES = {
    "ce": (ops.cross_entropy, F.cross_entropy,
           lambda r: ([randn(r, 33, 7), labels(r, 7, 33)], [0], {})),
    "ce_1d_input": (ops.cross_entropy, F.cross_entropy,
                    lambda r: ([randn(r, 9), np.array(4)], [0], {"label_smoothing": 0.2})),
    "ce_weight_ignore_smoothing": (
        ops.cross_entropy, F.cross_entropy,
        lambda r: ([randn(r, 40, 6), labels(r, 6, 40, ignore=2)], [0],
                   {"weight": r.random(6).astype(np.float32) + 0.1, "ignore_index": 2,
                    "label_smoothing": 0.3})),
    "ce_nd_weight_ignore": (
        ops.cross_entropy, F.cross_entropy,
        lambda r: ([randn(r, 3, 5, 4, 2), labels(r, 5, 3, 4, 2, ignore=-100)], [0],
                   {"weight": r.random(5).astype(np.float32) + 0.1, "label_smoothing": 0.1})),
    "ce_probabilities": (
        ops.cross_entropy, F.cross_entropy,
        lambda r: ([randn(r, 20, 5), probabilities(r, 20, 5)], [0],
                   {"weight": r.random(5).astype(np.float32) + 0.1, "label_smoothing": 0.25})),
    "ce_probabilities_nd": (
        ops.cross_entropy, F.cross_entropy,
        lambda r: ([randn(r, 2, 4, 3), probabilities(r, 2, 4, 3)], [0], {})),
    "nll_weight_ignore": (
        ops.nll_loss, F.nll_loss,
        lambda r: ([log_softmax(randn(r, 30, 8)), labels(r, 8, 30, ignore=5)], [0],
                   {"weight": r.random(8).astype(np.float32), "ignore_index": 5})),
    "nll_nd": (ops.nll_loss, F.nll_loss,
               lambda r: ([log_softmax(randn(r, 2, 3, 5)), labels(r, 3, 2, 5)], [0], {})),
    "mse": (ops.mse_loss, F.mse_loss, lambda r: ([randn(r, 17, 3), randn(r, 17, 3)], [0], {})),
    "l1": (ops.l1_loss, F.l1_loss, lambda r: ([randn(r, 1000), randn(r, 1000)], [0], {})),
    "smooth_l1": (ops.smooth_l1_loss, F.smooth_l1_loss,
                  lambda r: ([randn(r, 70), randn(r, 70)], [0], {"beta": 0.5})),
    "smooth_l1_beta0": (ops.smooth_l1_loss, F.smooth_l1_loss,
                        lambda r: ([randn(r, 70), randn(r, 70)], [0], {"beta": 0.0})),
    "huber": (ops.huber_loss, F.huber_loss,
              lambda r: ([3 * randn(r, 5, 9), randn(r, 5, 9)], [0], {"delta": 0.7})),
    "bce_weight": (
        ops.binary_cross_entropy, F.binary_cross_entropy,
        lambda r: ([r.uniform(0.01, 0.99, (12, 4)).astype(np.float32),
                    r.random((12, 4)).astype(np.float32)], [0],
                   {"weight": r.random(4).astype(np.float32)})),
    "bce_with_logits_weight_pos_weight": (
        ops.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits,
        lambda r: ([5 * randn(r, 16, 3), r.random((16, 3)).astype(np.float32)], [0],
                   {"weight": r.random((16, 1)).astype(np.float32),
                    "pos_weight": r.random(3).astype(np.float32) * 3})),
    "soft_margin": (ops.soft_margin_loss, F.soft_margin_loss,
                    lambda r: ([randn(r, 8, 5), signs(r, 8, 5)], [0], {})),
    "multilabel_soft_margin_weight": (
        ops.multilabel_soft_margin_loss, F.multilabel_soft_margin_loss,
        lambda r: ([randn(r, 10, 6), r.integers(0, 2, (10, 6)).astype(np.float32)], [0],
                   {"weight": r.random(6).astype(np.float32)})),
    "kl_div": (ops.kl_div, F.kl_div,
               lambda r: ([log_softmax(randn(r, 6, 5)), probabilities(r, 6, 5)], [0], {})),
    "kl_div_log_target": (
        ops.kl_div, F.kl_div,
        lambda r: ([log_softmax(randn(r, 6, 5)), log_softmax(randn(r, 6, 5))], [0],
                   {"log_target": True})),
    "poisson_nll": (ops.poisson_nll_loss, F.poisson_nll_loss,
                    lambda r: ([randn(r, 50), r.poisson(2.0, 50).astype(np.float32)], [0],
                               {"full": True})),
    "poisson_nll_rates": (
        ops.poisson_nll_loss, F.poisson_nll_loss,
        lambda r: ([r.uniform(0.1, 4, 50).astype(np.float32),
                    r.poisson(2.0, 50).astype(np.float32)], [0], {"log_input": False})),
    "gaussian_nll": (
        ops.gaussian_nll_loss, F.gaussian_nll_loss,
        lambda r: ([randn(r, 9, 4), randn(r, 9, 4), r.uniform(0.1, 2, (9, 4)).astype(np.float32)],
                   [0, 2], {"full": True})),
    "gaussian_nll_shared_var": (
        ops.gaussian_nll_loss, F.gaussian_nll_loss,
        lambda r: ([randn(r, 9, 4), randn(r, 9, 4), r.uniform(0.1, 2, (9, 1)).astype(np.float32)],
                   [0, 2], {})),
    "gaussian_nll_var_without_last_axis": (
        ops.gaussian_nll_loss, F.gaussian_nll_loss,
        lambda r: ([randn(r, 9, 4), randn(r, 9, 4), r.uniform(0.1, 2, 9).astype(np.float32)],
                   [0, 2], {})),
    "margin_ranking": (
        ops.margin_ranking_loss, F.margin_ranking_loss,
        lambda r: ([randn(r, 40), randn(r, 40), signs(r, 40)], [0, 1], {"margin": 0.3})),
    "cosine_embedding": (
        ops.cosine_embedding_loss, F.cosine_embedding_loss,
        lambda r: ([randn(r, 12, 7), randn(r, 12, 7), signs(r, 12)], [0, 1], {"margin": 0.2})),
    "cosine_embedding_1d": (
        ops.cosine_embedding_loss, F.cosine_embedding_loss,
        lambda r: ([randn(r, 7), randn(r, 7), np.float32(-1.0)], [0, 1], {"margin": -0.5})),
}


def sum_to(grad, shape):
    """An element's own gradient summed over the axes its input was broadcast along."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=-1)
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def torch_loss(tfn, arrays, graded, kwargs, reduction):
    tensors = []
    for i, a in enumerate(arrays):
        t = torch.from_numpy(np.array(a, copy=True))
        tensors.append(t.requires_grad_() if i in graded else t)
    kw = {k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v
          for k, v in kwargs.items()}
    losses = tfn(*tensors, **kw, reduction=reduction)
    losses.sum().backward()
    return losses.detach().numpy(), [tensors[i].grad.numpy() for i in graded]


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_matches_torch(parity, rng, name, reduction):
    fn, tfn, build = CASES[name]
    arrays, graded, kwargs = build(rng)
    loss, *grads = fn(*arrays, **kwargs, reduction=reduction)
    want_loss, want_grads = torch_loss(tfn, arrays, graded, kwargs, reduction)
    if reduction == "none":
        assert isinstance(loss, np.ndarray) and loss.dtype == np.float32
        assert loss.shape == want_loss.shape
    else:
        assert isinstance(loss, float)
    np.testing.assert_allclose(loss, want_loss, rtol=2e-5, atol=1e-5)
    assert len(grads) == len(graded)
    for got, want, i in zip(grads, want_grads, graded):
        got = sum_to(got, np.shape(arrays[i]))
        assert got.shape == want.shape, (i, got.shape, want.shape)
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_kl_div_batchmean_matches_torch(parity, rng):
    x, t = log_softmax(randn(rng, 6, 5)), probabilities(rng, 6, 5)
    loss, grad = ops.kl_div(x, t, reduction="batchmean")
    xt = torch.from_numpy(x).requires_grad_()
    want = F.kl_div(xt, torch.from_numpy(t), reduction="batchmean")
    want.backward()
    np.testing.assert_allclose(loss, want.item(), rtol=2e-5)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=2e-5, atol=1e-7)


NAN_CASES = [(ops.l1_loss, F.l1_loss, {}), (ops.mse_loss, F.mse_loss, {}),
             (ops.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.5}),
             (ops.smooth_l1_loss, F.smooth_l1_loss, {"beta": 0.0}),
             (ops.huber_loss, F.huber_loss, {"delta": 0.5}),
             (ops.soft_margin_loss, F.soft_margin_loss, {}),
             (ops.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, {})]


@pytest.mark.parametrize("fn, tfn, kwargs", NAN_CASES, ids=lambda v: getattr(v, "__name__", ""))
def test_nan_and_infinite_inputs_match_torch(parity, fn, tfn, kwargs):
    """NaN and +-inf in input or target: the losses and gradients torch gives
    (l1's gradient is 0 at a NaN difference; smooth_l1's, with beta > 0, NaN)."""
    x = np.array([np.nan, 1.0, -1.0, 0.0, np.inf, -np.inf, 2.0, 0.5], np.float32)
    t = np.array([0.0, 1.0, 0.0, 0.0, 0.0, 0.0, np.nan, 1.0], np.float32)
    losses, grad = fn(x, t, reduction="none", **kwargs)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    want = tfn(xt, torch.from_numpy(t), reduction="none", **kwargs)
    want.sum().backward()
    np.testing.assert_allclose(losses, want.detach().numpy(), rtol=1e-6, equal_nan=True)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-6, equal_nan=True)
