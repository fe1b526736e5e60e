"""Every loss of fastnn.ops, every reduction and option, without torch: the
per-element losses against the float64 formulas of reference.py, the gradients
against central differences of those formulas (float64), the mean's divisor, on
every ISA path; the results do not depend on the thread count."""
import numpy as np
import pytest

import fastnn
from fastnn import ops

import reference as ref

REDUCTIONS = ["none", "sum", "mean"]


def randn(rng, shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def signs(rng, shape):
    return rng.choice([-1.0, 1.0], shape).astype(np.float32)


def probs(rng, shape, axis=-1):
    e = np.exp(rng.standard_normal(shape))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


class Case:
    """call(*inputs, reduction) -> (loss, grad...); terms(*inputs) -> float64
    per-element losses; make(rng) -> inputs; graded: the input positions
    differentiated; divisor(*inputs): the mean's; elementwise: each term depends on
    the same element of every graded input only (the differences then run on
    every element at once)."""

    def __init__(self, call, terms, make, graded=(0,), divisor=None, elementwise=True):
        self.call, self.terms, self.make, self.graded = call, terms, make, graded
        self.divisor = divisor or (lambda *inputs: np.size(inputs[0]))
        self.elementwise = elementwise


def pointwise(fn, ref_fn, make, **kw):
    return Case(lambda x, t, red: fn(x, t, reduction=red, **kw),
                lambda x, t: ref_fn(x, t, **kw), make)


def pair(rng, shape=(5, 37)):
    return randn(rng, shape, 2.0), randn(rng, shape, 2.0)


def bce_inputs(rng, shape=(5, 37)):
    return rng.uniform(0.02, 0.98, shape).astype(np.float32), rng.uniform(0, 1, shape).astype(np.float32)


def log_probs_inputs(rng, shape=(4, 29)):
    return np.log(probs(rng, shape)), probs(rng, shape)


def counts(rng, shape=(5, 37)):
    return randn(rng, shape), rng.poisson(2.0, shape).astype(np.float32)


def labels_case(logits_shape, weight=False, ignore=False, smoothing=0.0, log_probs=False):
    C = logits_shape[0] if len(logits_shape) == 1 else logits_shape[1]
    label_shape = () if len(logits_shape) == 1 else logits_shape[:1] + logits_shape[2:]

    def make(rng):
        x = randn(rng, logits_shape, 2.0)
        if log_probs:
            x = np.log(probs(rng, logits_shape, axis=0 if len(logits_shape) == 1 else 1))
        y = rng.integers(0, C, label_shape)
        if ignore:
            y = np.where(rng.random(label_shape) < 0.3, -1, y)
        w = rng.uniform(0.2, 2.0, C).astype(np.float32) if weight else None
        return x, y, w

    kw = {"ignore_index": -1} if ignore else {}
    if log_probs:
        call = lambda x, y, w, red: ops.nll_loss(x, y, weight=w, reduction=red, **kw)
    else:
        call = lambda x, y, w, red: ops.cross_entropy(x, y, weight=w, reduction=red,
                                                      label_smoothing=smoothing, **kw)
    terms = lambda x, y, w: ref.cross_entropy_terms(x, y, w, kw.get("ignore_index", -100),
                                                    smoothing, log_probs)[0]
    divisor = lambda x, y, w: ref.cross_entropy_terms(x, y, w, kw.get("ignore_index", -100),
                                                      smoothing, log_probs)[1]
    return Case(call, terms, make, divisor=divisor, elementwise=False)


def probs_case(logits_shape, weight=False, smoothing=0.0):
    C = logits_shape[0] if len(logits_shape) == 1 else logits_shape[1]
    axis = 0 if len(logits_shape) == 1 else 1

    def make(rng):
        w = rng.uniform(0.2, 2.0, C).astype(np.float32) if weight else None
        return randn(rng, logits_shape, 2.0), probs(rng, logits_shape, axis), w

    return Case(lambda x, t, w, red: ops.cross_entropy(x, t, weight=w, reduction=red,
                                                       label_smoothing=smoothing),
                lambda x, t, w: ref.cross_entropy_probs_terms(x, t, w, smoothing), make,
                divisor=lambda x, t, w: max(1, x.size // C) if x.ndim > 1 else 1,
                elementwise=False)


def bce_logits_case(weight, pos_weight):
    def make(rng):
        x, t = randn(rng, (5, 37), 3.0), rng.uniform(0, 1, (5, 37)).astype(np.float32)
        w = rng.uniform(0.2, 2.0, (5, 1)).astype(np.float32) if weight else None
        pw = rng.uniform(0.2, 4.0, 37).astype(np.float32) if pos_weight else None
        return x, t, w, pw

    return Case(lambda x, t, w, pw, red: ops.binary_cross_entropy_with_logits(
                    x, t, weight=w, reduction=red, pos_weight=pw),
                ref.bce_with_logits_terms, make)


def multilabel_case(shape, weight):
    def make(rng):
        w = rng.uniform(0.2, 2.0, shape[-1]).astype(np.float32) if weight else None
        return randn(rng, shape, 2.0), rng.integers(0, 2, shape).astype(np.float32), w

    return Case(lambda x, t, w, red: ops.multilabel_soft_margin_loss(x, t, weight=w,
                                                                     reduction=red),
                ref.multilabel_soft_margin_terms, make,
                divisor=lambda x, t, w: x.shape[0] if x.ndim == 2 else 1, elementwise=False)


def two_input_case(fn, ref_fn, shape, target_shape, margin):
    def make(rng):
        return randn(rng, shape), randn(rng, shape), signs(rng, target_shape)

    return Case(lambda a, b, y, red: fn(a, b, y, margin=margin, reduction=red),
                lambda a, b, y: ref_fn(a, b, y, margin), make, graded=(0, 1),
                divisor=lambda a, b, y: max(np.size(y), 1), elementwise=shape == target_shape)


def gaussian_case(full, eps=1e-6):
    def make(rng):
        x, t = pair(rng)
        return x, t, rng.uniform(0.05, 3.0, x.shape).astype(np.float32)

    return Case(lambda x, t, v, red: ops.gaussian_nll_loss(x, t, v, full=full, eps=eps,
                                                           reduction=red),
                lambda x, t, v: ref.gaussian_nll_terms(x, t, v, full, eps), make,
                graded=(0, 2))


CASES = {
    "mse": pointwise(ops.mse_loss, ref.mse_terms, pair),
    "l1": pointwise(ops.l1_loss, ref.l1_terms, pair),
    "smooth_l1": pointwise(ops.smooth_l1_loss, ref.smooth_l1_terms, pair),
    "smooth_l1_beta0.3": pointwise(ops.smooth_l1_loss, ref.smooth_l1_terms, pair, beta=0.3),
    "smooth_l1_beta0": pointwise(ops.smooth_l1_loss, ref.smooth_l1_terms, pair, beta=0.0),
    "huber": pointwise(ops.huber_loss, ref.huber_terms, pair),
    "huber_delta2.5": pointwise(ops.huber_loss, ref.huber_terms, pair, delta=2.5),
    "soft_margin": Case(lambda x, t, red: ops.soft_margin_loss(x, t, reduction=red),
                        ref.soft_margin_terms, lambda rng: (randn(rng, (5, 37), 3.0),
                                                            signs(rng, (5, 37)))),
    "bce": pointwise(ops.binary_cross_entropy, ref.bce_terms, bce_inputs),
    "bce_weight": Case(lambda x, t, w, red: ops.binary_cross_entropy(x, t, weight=w,
                                                                     reduction=red),
                       ref.bce_terms, lambda rng: bce_inputs(rng) + (
                           rng.uniform(0.2, 2.0, 37).astype(np.float32),)),
    "bce_with_logits": bce_logits_case(False, False),
    "bce_with_logits_weight": bce_logits_case(True, False),
    "bce_with_logits_pos_weight": bce_logits_case(False, True),
    "bce_with_logits_both": bce_logits_case(True, True),
    "kl_div": pointwise(ops.kl_div, ref.kl_div_terms, log_probs_inputs),
    "kl_div_log_target": Case(lambda x, t, red: ops.kl_div(x, t, reduction=red, log_target=True),
                              lambda x, t: ref.kl_div_terms(x, t, True),
                              lambda rng: (np.log(probs(rng, (4, 29))),
                                           np.log(probs(rng, (4, 29))))),
    "poisson_nll": pointwise(ops.poisson_nll_loss, ref.poisson_nll_terms, counts),
    "poisson_nll_full": pointwise(ops.poisson_nll_loss, ref.poisson_nll_terms, counts, full=True),
    "poisson_nll_linear": pointwise(
        ops.poisson_nll_loss, ref.poisson_nll_terms,
        lambda rng: (rng.uniform(0.1, 4.0, (5, 37)).astype(np.float32),
                     rng.poisson(2.0, (5, 37)).astype(np.float32)), log_input=False, full=True),
    "gaussian_nll": gaussian_case(False),
    "gaussian_nll_full": gaussian_case(True),
    "margin_ranking": two_input_case(ops.margin_ranking_loss, ref.margin_ranking_terms,
                                     (41,), (41,), 0.0),
    "margin_ranking_margin": two_input_case(ops.margin_ranking_loss, ref.margin_ranking_terms,
                                            (41,), (41,), 0.7),
    "cosine_embedding": two_input_case(ops.cosine_embedding_loss, ref.cosine_embedding_terms,
                                       (6, 7), (6,), 0.0),
    "cosine_embedding_margin": two_input_case(ops.cosine_embedding_loss,
                                              ref.cosine_embedding_terms, (6, 7), (6,), -0.3),
    "cosine_embedding_1d": two_input_case(ops.cosine_embedding_loss, ref.cosine_embedding_terms,
                                          (9,), (), 0.2),
    "multilabel_soft_margin": multilabel_case((4, 9), False),
    "multilabel_soft_margin_weight": multilabel_case((4, 9), True),
    "multilabel_soft_margin_1d": multilabel_case((9,), True),
    "cross_entropy": labels_case((6, 5)),
    "cross_entropy_all_options": labels_case((6, 5), weight=True, ignore=True, smoothing=0.2),
    "cross_entropy_nd_weight": labels_case((2, 4, 3, 2), weight=True, smoothing=0.1),
    "cross_entropy_1d": labels_case((7,), weight=True, smoothing=0.3),
    "cross_entropy_probs": probs_case((6, 5)),
    "cross_entropy_probs_options": probs_case((6, 5), weight=True, smoothing=0.2),
    "cross_entropy_probs_nd": probs_case((2, 4, 3), weight=True),
    "nll": labels_case((6, 5), log_probs=True),
    "nll_weight_ignore": labels_case((6, 5), weight=True, ignore=True, log_probs=True),
    "nll_nd": labels_case((2, 4, 3), weight=True, log_probs=True),
}


def numeric_grad(case, inputs, position, h=1e-6):
    """d sum(terms) / d inputs[position], central differences in float64."""
    args = [np.asarray(a, np.float64) if isinstance(a, np.ndarray) and a.dtype == np.float32
            else a for a in inputs]
    x = args[position]

    def total(shifted, elementwise):
        trial = list(args)
        trial[position] = shifted
        t = case.terms(*trial)
        return t if elementwise else t.sum()

    if case.elementwise:
        return (total(x + h, True) - total(x - h, True)) / (2 * h)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (total(up, False) - total(down, False)) / (2 * h)
    return grad


def close(got, want, what, rtol=1e-4):
    want = np.asarray(want, np.float64)
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol,
                               atol=2e-5 * scale, err_msg=what)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", CASES)
def test_loss_against_float64_formula(name, reduction, isa):
    case = CASES[name]
    inputs = case.make(np.random.default_rng(sum(map(ord, name))))
    loss, *grads = case.call(*inputs, reduction)
    terms = case.terms(*inputs)
    divisor = case.divisor(*inputs) if reduction == "mean" else 1.0
    if reduction == "none":
        assert isinstance(loss, np.ndarray) and loss.dtype == np.float32
        assert loss.shape == terms.shape, f"losses shape {loss.shape} != {terms.shape}"
        close(loss, terms, "losses")
    else:
        assert isinstance(loss, float)
        close(loss, terms.sum() / divisor, "loss")
    assert len(grads) == len(case.graded)
    for g, position in zip(grads, case.graded):
        assert g.dtype == np.float32 and g.shape == inputs[position].shape
        close(g, numeric_grad(case, inputs, position) / divisor, f"grad of input {position}")


def test_kl_div_batchmean_divides_by_the_batch(isa, rng):
    x, t = log_probs_inputs(rng, (4, 29))
    loss, grad = ops.kl_div(x, t, reduction="batchmean")
    close(loss, ref.kl_div_terms(x, t).sum() / 4, "loss")
    close(grad, -t / 4, "grad")  # d/dx of t (log t - x)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("var_shape", [(5, 1), (5,), (1, 37)], ids=str)
def test_gaussian_nll_shared_var(var_shape, reduction, isa, rng):
    """one variance shared along an axis: grad_var is the sum of the per-element ones
    (for "none" it stays per element, and nn.GaussianNLLLoss sums it)."""
    x, t = pair(rng)
    var = rng.uniform(0.1, 2.0, var_shape).astype(np.float32)
    kept = var_shape + (1,) if len(var_shape) == 1 else var_shape  # (5,) is (5, 1)
    axes = tuple(i for i, n in enumerate(kept) if n == 1)  # the axes it is shared along
    full_var = np.broadcast_to(var.reshape(kept), x.shape)
    loss, g_in, g_var = ops.gaussian_nll_loss(x, t, var, reduction=reduction)
    want_loss, want_in, want_var = ops.gaussian_nll_loss(x, t, full_var.copy(),
                                                         reduction=reduction)
    close(loss, want_loss, "loss")
    close(g_in, want_in, "grad_input")
    if reduction == "none":
        assert g_var.shape == x.shape
        close(g_var, want_var, "per-element grad_var")
        module = fastnn.nn.GaussianNLLLoss(reduction="none")
        module(x, t, var)
        grad_out = randn(rng, x.shape)
        got_in, got_var = module.backward(grad_out)
        close(got_in, want_in * grad_out, "module grad_input")
        close(got_var, (want_var * grad_out).sum(axis=axes).reshape(var_shape), "module grad_var")
    else:
        assert g_var.shape == var_shape
        close(g_var, want_var.sum(axis=axes).reshape(var_shape), "grad_var")


def test_gaussian_nll_float_var_and_eps_clamp(isa, rng):
    x, t = pair(rng)
    loss, g_in, g_var = ops.gaussian_nll_loss(x, t, 0.5)
    assert g_var is None
    close(loss, ref.gaussian_nll_terms(x, t, 0.5).mean(), "loss")
    # below eps: var is clamped to eps, and its gradient is the one at eps (torch
    # clamps without cutting the graph)
    var = np.full(x.shape, 1e-9, np.float32)
    loss, _, g_var = ops.gaussian_nll_loss(x, t, var, eps=1e-3, reduction="sum")
    close(loss, ref.gaussian_nll_terms(x, t, var, eps=1e-3).sum(), "clamped loss", rtol=2e-4)
    d2 = (x.astype(np.float64) - t) ** 2
    close(g_var, 0.5 * (1 / 1e-3 - d2 / 1e-6), "clamped grad_var", rtol=2e-4)


@pytest.mark.parametrize("name", ["bce", "poisson_nll", "cross_entropy_all_options",
                                  "cosine_embedding", "gaussian_nll"])
def test_empty_inputs(name, isa):
    """no elements: "mean" is NaN with zero gradients, "sum" is 0, "none" is empty."""
    case = CASES[name]
    full = case.make(np.random.default_rng(0))
    batch = full[0].shape[0]  # cut every batched array (not a class weight) to 0 rows
    inputs = [a[:0] if isinstance(a, np.ndarray) and a.ndim and a.shape[0] == batch else a
              for a in full]
    loss, *grads = case.call(*inputs, "mean")
    assert np.isnan(loss) and all(g.size == 0 or not g.any() for g in grads)
    assert case.call(*inputs, "sum")[0] == 0.0
    assert case.call(*inputs, "none")[0].size == 0


def test_extreme_inputs_stay_finite(isa):
    x = np.array([1e30, -1e30, 100.0, -100.0, 0.0], np.float32)
    t = np.array([1.0, -1.0, -1.0, 1.0, 1.0], np.float32)
    for call in (ops.soft_margin_loss, ops.binary_cross_entropy_with_logits):
        target = t if call is ops.soft_margin_loss else (t > 0).astype(np.float32)
        losses, grad = call(x, target, reduction="none")
        assert np.isfinite(losses).all() and np.isfinite(grad).all()
    p = np.array([0.0, 1.0, 0.0, 1.0], np.float32)  # log clamped at -100, as torch
    losses, grad = ops.binary_cross_entropy(p, np.array([1.0, 0.0, 0.0, 1.0], np.float32),
                                            reduction="none")
    np.testing.assert_array_equal(losses, [100.0, 100.0, 0.0, 0.0])
    assert np.isfinite(grad).all()


# ---- threads: the same bits for any thread count -----------------------------------

BIG = (1 << 18) + 11


def big_calls(rng):
    x, t = randn(rng, BIG, 2.0), randn(rng, BIG, 2.0)
    p = rng.uniform(0.01, 0.99, BIG).astype(np.float32)
    logits = randn(rng, (3001, 97))
    labels = rng.integers(0, 97, 3001)
    w = rng.uniform(0.5, 2.0, 97).astype(np.float32)
    soft = probs(rng, (3001, 97))
    return {
        "smooth_l1": lambda: ops.smooth_l1_loss(x, t, beta=0.5),
        "huber": lambda: ops.huber_loss(x, t, reduction="sum"),
        "l1": lambda: ops.l1_loss(x, t),
        "bce": lambda: ops.binary_cross_entropy(p, p[::-1].copy()),
        "bce_with_logits": lambda: ops.binary_cross_entropy_with_logits(x, p, pos_weight=p),
        "kl_div": lambda: ops.kl_div(x, p, reduction="batchmean"),
        "poisson": lambda: ops.poisson_nll_loss(x, np.abs(t), full=True),
        "gaussian": lambda: ops.gaussian_nll_loss(x, t, p),
        "soft_margin": lambda: ops.soft_margin_loss(x, np.sign(t)),
        "margin_ranking": lambda: ops.margin_ranking_loss(x, t, np.sign(p - 0.5), margin=0.1),
        "cross_entropy_weight": lambda: ops.cross_entropy(logits, labels, weight=w,
                                                          label_smoothing=0.1),
        "cross_entropy_probs": lambda: ops.cross_entropy(logits, soft, reduction="sum"),
        "nll_none": lambda: ops.nll_loss(logits, labels, reduction="none"),
        "cosine": lambda: ops.cosine_embedding_loss(logits, soft, np.sign(labels - 40.5)),
        "multilabel": lambda: ops.multilabel_soft_margin_loss(logits, soft > 0.01),
    }


@pytest.mark.parametrize("name", sorted(big_calls(np.random.default_rng(0))))
def test_losses_do_not_depend_on_the_thread_count(name, isa):
    call = big_calls(np.random.default_rng(3))[name]
    with fastnn.num_threads(1):
        one = call()
    for threads in (2, 3):
        with fastnn.num_threads(threads):
            many = call()
        for a, b in zip(one, many):
            if a is not None:
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{threads}")
