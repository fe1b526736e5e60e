"""PyTorch parity of fastnn.nn: every module, loss, initialiser, clipping
function and the state_dict format against torch.nn (float32, CPU).

Modules get torch's weights through
``load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})``;
then the forward output, the input gradient and every parameter gradient for
one random upstream gradient (torch: ``y.backward(g)``) must agree.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastnn  # noqa: E402
from fastnn import nn  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6


@pytest.fixture(autouse=True)
def torch_setup():
    """Fixed torch and fastnn seeds; one torch thread (these tensors are tiny)."""
    threads, state = torch.get_num_threads(), fastnn.get_rng_state()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    fastnn.manual_seed(0)
    yield
    torch.set_num_threads(threads)
    fastnn.set_rng_state(state)


def close(got, want, rtol=RTOL, atol=ATOL):
    """float32 agreement; atol is scaled by the largest magnitude of `want`."""
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    assert got.shape == want.shape
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale)


def torch_to_fastnn(fm, tm):
    fm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})


def randn(rng, shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def check_parity(fm, tm, x, rng, train=True, rtol=RTOL, atol=ATOL, copy_weights=True):
    """Forward output, input gradient and parameter gradients of fm against tm,
    for one call and then for three calls before their backwards (in reverse)."""
    if copy_weights:
        torch_to_fastnn(fm, tm)
    fm.train(train)
    tm.train(train)
    result = _check_one_call(fm, tm, x, rng, rtol, atol)
    _check_calls(fm, tm, x, rng, 3, rtol, atol)
    return result


def _check_calls(fm, tm, x, rng, k, rtol, atol):
    """k forwards on different inputs, then their backwards in reverse order:
    each input gradient and the summed parameter gradients match torch's."""
    xs = [x] + [(x + 0.5 * rng.standard_normal(x.shape)).astype(np.float32)
                for _ in range(k - 1)]
    tm.zero_grad()
    xts = [torch.tensor(xi, requires_grad=True) for xi in xs]
    yts = [tm(xt) for xt in xts]
    gs = [randn(rng, tuple(yt.shape)) for yt in yts]
    for yt, g in zip(yts, gs):
        yt.backward(torch.from_numpy(g))
    fm.zero_grad()
    ys = [fm(xi.copy()) for xi in xs]
    for y, yt in zip(ys, yts):
        close(y, yt, rtol, atol)
    gxs = [fm.backward(g.copy()) for g in reversed(gs)][::-1]
    for gx, xt in zip(gxs, xts):
        close(gx, xt.grad, rtol, atol)
    tparams = dict(tm.named_parameters())
    for name, p in fm.named_parameters():
        if tparams[name].grad is None:
            assert not p.grad.any()
        else:
            close(p.grad, tparams[name].grad, rtol, atol)


def _check_one_call(fm, tm, x, rng, rtol, atol):
    tm.zero_grad()
    xt = torch.tensor(x, requires_grad=True)
    yt = tm(xt)
    g = randn(rng, tuple(yt.shape))
    yt.backward(torch.from_numpy(g))
    fm.zero_grad()
    y = fm(x.copy())
    close(y, yt, rtol, atol)
    gx = fm.backward(g.copy())
    close(gx, xt.grad, rtol, atol)
    tparams = dict(tm.named_parameters())
    fparams = dict(fm.named_parameters())
    assert list(fparams) == list(tparams)
    for name, p in fparams.items():
        if tparams[name].grad is None:  # frozen in torch: no gradient, fastnn's stays zero
            assert not p.grad.any()
        else:
            close(p.grad, tparams[name].grad, rtol, atol)
    return y, gx


# ---- Linear -----------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape", [(9,), (5, 9), (2, 3, 9), (0, 9)], ids=str)
def test_linear(isa, rng, bias, shape):
    fm, tm = nn.Linear(9, 7, bias=bias), torch.nn.Linear(9, 7, bias=bias)
    check_parity(fm, tm, randn(rng, shape), rng)


def test_linear_wide(isa, rng):
    # many rows and a long reduction: the SGEMM blocks, epilogue and bias sums
    fm, tm = nn.Linear(300, 70), torch.nn.Linear(300, 70)
    check_parity(fm, tm, randn(rng, (130, 300)), rng, rtol=1e-4, atol=1e-5)


ACCUMULATING = {
    "linear": lambda m: m.Linear(6, 4),
    "fused_mlp": lambda m: m.Sequential(m.Linear(6, 5), m.Tanh(), m.Linear(5, 4), m.ReLU()),
    "batchnorm": lambda m: m.Sequential(m.Linear(6, 4), m.BatchNorm1d(4), m.Sigmoid()),
}


@pytest.mark.parametrize("kind", list(ACCUMULATING))
def test_gradients_accumulate_and_input_grad_false(rng, kind):
    # two backward passes without zero_grad add up, as torch's .grad does
    fm, tm = ACCUMULATING[kind](nn), ACCUMULATING[kind](torch.nn)
    torch_to_fastnn(fm, tm)
    x1, x2 = randn(rng, (5, 6)), randn(rng, (3, 6))
    g1, g2 = randn(rng, (5, 4)), randn(rng, (3, 4))
    tm(torch.from_numpy(x1)).backward(torch.from_numpy(g1))
    tm(torch.from_numpy(x2)).backward(torch.from_numpy(g2))
    fm.zero_grad()
    fm(x1)
    fm.backward(g1)
    fm(x2)
    assert fm.backward(g2, input_grad=False) is None
    for p, t in zip(fm.parameters(), tm.parameters()):
        close(p.grad, t.grad, 1e-5, 2e-6)


def test_linear_frozen_weight(rng):
    fm, tm = nn.Linear(6, 4), torch.nn.Linear(6, 4)
    tm.weight.requires_grad_(False)
    torch_to_fastnn(fm, tm)
    fm.weight.requires_grad = False
    check_parity(fm, tm, randn(rng, (5, 6)), rng, copy_weights=False)
    assert tm.weight.grad is None
    assert not fm.weight.grad.any()


# ---- activations ------------------------------------------------------------
ACTIVATIONS = [
    pytest.param(nn.ReLU, torch.nn.ReLU, (), id="relu"),
    pytest.param(nn.LeakyReLU, torch.nn.LeakyReLU, (), id="leaky_relu"),
    pytest.param(nn.LeakyReLU, torch.nn.LeakyReLU, (0.2,), id="leaky_relu_0.2"),
    pytest.param(nn.Sigmoid, torch.nn.Sigmoid, (), id="sigmoid"),
    pytest.param(nn.Tanh, torch.nn.Tanh, (), id="tanh"),
    pytest.param(nn.GELU, torch.nn.GELU, (), id="gelu"),
    pytest.param(nn.GELU, torch.nn.GELU, ("none",), id="gelu_none"),
    pytest.param(nn.GELU, torch.nn.GELU, ("tanh",), id="gelu_tanh"),
    pytest.param(nn.SiLU, torch.nn.SiLU, (), id="silu"),
]


@pytest.mark.parametrize("fcls, tcls, args", ACTIVATIONS)
@pytest.mark.parametrize("shape", [(4, 33), (2, 3, 17), (1000,)], ids=str)
def test_activation(rng, fcls, tcls, args, shape):
    check_parity(fcls(*args), tcls(*args), randn(rng, shape, 3.0), rng)


@pytest.mark.parametrize("fcls, tcls", [(nn.ReLU, torch.nn.ReLU),
                                        (nn.LeakyReLU, torch.nn.LeakyReLU)], ids=["relu", "leaky"])
def test_activation_inplace(rng, fcls, tcls):
    x = randn(rng, (6, 10), 3.0)
    fm = fcls(inplace=True)
    buf = x.copy()
    y = fm(buf)
    assert y is buf  # written in place, as torch's inplace=True
    g = randn(rng, x.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = tcls()(xt)
    yt.backward(torch.from_numpy(g))
    close(y, yt)
    close(fm.backward(g), xt.grad)


@pytest.mark.parametrize("fcls, tcls", [(nn.Softmax, torch.nn.Softmax),
                                        (nn.LogSoftmax, torch.nn.LogSoftmax)],
                         ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, 2, -1, -2, -3])
def test_softmax(rng, fcls, tcls, dim):
    check_parity(fcls(dim=dim), tcls(dim=dim), randn(rng, (3, 4, 37), 3.0), rng)


@pytest.mark.parametrize("fcls, tcls", [(nn.Softmax, torch.nn.Softmax),
                                        (nn.LogSoftmax, torch.nn.LogSoftmax)],
                         ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_2d(rng, fcls, tcls, dim):
    check_parity(fcls(dim=dim), tcls(dim=dim), randn(rng, (16, 40), 5.0), rng)


def test_softmax_default_dim_is_last(rng):
    # torch's implicit dim is -1 for 0-, 1- and 3-d inputs (1 for 2-d, deprecated);
    # fastnn's default is always the last axis, which agrees where torch's does
    x = randn(rng, (3, 4, 5))
    close(nn.Softmax()(x), torch.nn.Softmax(dim=-1)(torch.from_numpy(x)))
    close(nn.LogSoftmax()(x), torch.nn.LogSoftmax(dim=-1)(torch.from_numpy(x)))


# ---- Dropout, Flatten, Identity ---------------------------------------------
def test_dropout_eval_is_identity(rng):
    check_parity(nn.Dropout(0.5), torch.nn.Dropout(0.5), randn(rng, (8, 9)), rng, train=False)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_dropout_p0(rng, train):
    check_parity(nn.Dropout(0.0), torch.nn.Dropout(0.0), randn(rng, (8, 9)), rng, train=train)


def test_dropout_train_scaling(rng):
    # the training masks differ from torch's (another random stream), but the
    # rule is the same: kept elements are scaled by 1/(1-p), the gradient
    # passes through the same mask
    x = np.abs(randn(rng, (200, 100))) + np.float32(0.5)
    fm = nn.Dropout(0.3)
    y = fm(x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / np.float32(0.7), rtol=1e-6)
    assert abs(kept.mean() - 0.7) < 0.01
    g = randn(rng, x.shape)
    gx = fm.backward(g)
    np.testing.assert_array_equal(gx == 0, ~kept | (g == 0))
    np.testing.assert_allclose(gx[kept], g[kept] / np.float32(0.7), rtol=1e-6)
    assert not torch.nn.Dropout(1.0)(torch.ones(3)).any() and not nn.Dropout(1.0)(np.ones(3)).any()


@pytest.mark.parametrize("start, end", [(1, -1), (0, -1), (1, 2), (2, 3), (-3, -2), (0, 0),
                                        (3, 3), (0, 3), (-1, -1)])
def test_flatten(rng, start, end):
    x = randn(rng, (2, 3, 4, 5))
    y, _ = check_parity(nn.Flatten(start, end), torch.nn.Flatten(start, end), x, rng)
    assert y.shape == torch.flatten(torch.from_numpy(x), start, end).shape


def test_identity(rng):
    check_parity(nn.Identity(3, foo=1), torch.nn.Identity(3, foo=1), randn(rng, (4, 5)), rng)


# ---- BatchNorm1d ------------------------------------------------------------
def randomize_bn(tm, rng):
    """Non-trivial affine parameters and running statistics in a torch BatchNorm."""
    with torch.no_grad():
        if tm.affine:
            tm.weight.copy_(torch.from_numpy(1 + 0.5 * randn(rng, tm.weight.shape)))
            tm.bias.copy_(torch.from_numpy(randn(rng, tm.bias.shape)))
        if tm.track_running_stats:
            tm.running_mean.copy_(torch.from_numpy(randn(rng, tm.running_mean.shape)))
            tm.running_var.copy_(torch.from_numpy(0.5 + np.abs(randn(rng, tm.running_var.shape))))
            tm.num_batches_tracked.fill_(3)


BN_OPTIONS = [
    pytest.param({}, id="default"),
    pytest.param({"affine": False}, id="no_affine"),
    pytest.param({"track_running_stats": False}, id="no_stats"),
    pytest.param({"momentum": None}, id="momentum_None"),
    pytest.param({"momentum": 0.3, "eps": 1e-3}, id="momentum_0.3_eps"),
    pytest.param({"affine": False, "track_running_stats": False}, id="bare"),
]
BN_SHAPES = [(8, 6), (5, 6, 7)]


@pytest.mark.parametrize("options", BN_OPTIONS)
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batchnorm1d(rng, options, shape, train):
    fm, tm = nn.BatchNorm1d(6, **options), torch.nn.BatchNorm1d(6, **options)
    randomize_bn(tm, rng)
    x = randn(rng, shape, 2.0) + np.float32(1.5)
    check_parity(fm, tm, x, rng, train=train, rtol=1e-4, atol=1e-5)
    for key, want in tm.state_dict().items():  # the running statistics after that step
        got = fm.state_dict()[key]
        assert got.dtype == want.numpy().dtype and got.shape == tuple(want.shape)
        close(got, want) if got.dtype == np.float32 else np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("options", BN_OPTIONS)
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batchnorm1d_running_stats(rng, options, shape):
    fm, tm = nn.BatchNorm1d(6, **options), torch.nn.BatchNorm1d(6, **options)
    torch_to_fastnn(fm, tm)
    fm.train()
    tm.train()
    for step in range(4):
        x = randn(rng, shape, 1.0 + step) + np.float32(step - 1)
        close(fm(x), tm(torch.from_numpy(x)).detach(), 1e-4, 1e-5)
    want = tm.state_dict()
    got = fm.state_dict()
    assert list(got) == list(want)
    for key in want:
        if key == "num_batches_tracked":
            assert got[key].dtype == np.int64 and got[key].shape == ()
            assert int(got[key]) == int(want[key]) == 4
        else:
            close(got[key], want[key])
    fm.eval()
    tm.eval()
    x = randn(rng, shape)
    close(fm(x), tm(torch.from_numpy(x)).detach(), 1e-4, 1e-5)


@pytest.mark.parametrize("train, options", [
    (True, {}), (True, {"track_running_stats": False}),
    (False, {"track_running_stats": False})],
    ids=["train", "train-no_stats", "eval-no_stats"])
def test_batchnorm1d_one_value_per_channel_raises(train, options):
    # without running statistics eval mode normalises with the batch's statistics too
    x = np.ones((1, 4), np.float32)
    with pytest.raises(ValueError):
        torch.nn.BatchNorm1d(4, **options).train(train)(torch.from_numpy(x))
    with pytest.raises(ValueError):
        nn.BatchNorm1d(4, **options).train(train)(x)


def test_batchnorm1d_one_sample_several_positions(rng):
    # (1, C, L) with L > 1 trains: L values per channel
    fm, tm = nn.BatchNorm1d(4), torch.nn.BatchNorm1d(4)
    randomize_bn(tm, rng)
    check_parity(fm, tm, randn(rng, (1, 4, 6)), rng, rtol=1e-4, atol=1e-5)
    close(fm.running_var, tm.running_var)


# ---- Sequential -------------------------------------------------------------
def mlp_pair(acts):
    """fastnn and torch Sequential: Linear(d_i, d_i+1) followed by each activation."""
    dims = [10, 16, 12, 9, 8, 6, 5][:len(acts) + 2]
    fl, tl = [], []
    for i, act in enumerate(acts + [None]):
        fl.append(nn.Linear(dims[i], dims[i + 1]))
        tl.append(torch.nn.Linear(dims[i], dims[i + 1]))
        if act is not None:
            fl.append(getattr(nn, act)())
            tl.append(getattr(torch.nn, act)())
    return nn.Sequential(*fl), torch.nn.Sequential(*tl)


@pytest.mark.parametrize("acts", [["ReLU"], ["Sigmoid"], ["Tanh"], ["GELU"], ["SiLU"], ["Mish"],
                                  ["Hardswish"], ["ELU"], ["SELU"],
                                  ["ReLU", "Sigmoid", "Tanh", "GELU", "LeakyReLU"],
                                  ["SiLU", "Mish", "Hardswish", "ELU", "SELU"]], ids=str)
@pytest.mark.parametrize("input_grad", [True, False])
def test_sequential_fused_and_unfused(isa, rng, acts, input_grad):
    fm, tm = mlp_pair(acts)
    if input_grad:
        check_parity(fm, tm, randn(rng, (11, 10), 2.0), rng, rtol=1e-5, atol=2e-6)
        return
    torch_to_fastnn(fm, tm)
    x = randn(rng, (11, 10), 2.0)
    yt = tm(torch.from_numpy(x))
    g = randn(rng, tuple(yt.shape))
    yt.backward(torch.from_numpy(g))
    fm.zero_grad()
    fm(x)
    assert fm.backward(g, input_grad=False) is None
    tparams = dict(tm.named_parameters())
    for name, p in fm.named_parameters():
        close(p.grad, tparams[name].grad, 1e-5, 2e-6)


@pytest.mark.parametrize("act", ["ReLU", "Sigmoid", "Tanh"])
@pytest.mark.parametrize("shape", [(10,), (0, 10), (3, 2, 10)], ids=str)
def test_sequential_fused_no_bias_and_shapes(isa, rng, act, shape):
    def build(m):
        return m.Sequential(m.Linear(10, 7, bias=False), getattr(m, act)(), m.Linear(7, 5),
                            getattr(m, act)())
    check_parity(build(nn), build(torch.nn), randn(rng, shape, 2.0), rng)


@pytest.mark.parametrize("frozen", [["0.weight"], ["0.bias"], ["0.weight", "0.bias", "2.bias"]],
                         ids=str)
def test_sequential_fused_frozen(rng, frozen):
    fm, tm = mlp_pair(["Tanh", "ReLU"])
    torch_to_fastnn(fm, tm)
    fparams, tparams = dict(fm.named_parameters()), dict(tm.named_parameters())
    for name in frozen:
        fparams[name].requires_grad = False
        tparams[name].requires_grad_(False)
    check_parity(fm, tm, randn(rng, (6, 10), 2.0), rng, copy_weights=False)


def test_sequential_fused_relu_inplace(rng):
    def build(m):
        return m.Sequential(m.Linear(10, 8), m.ReLU(inplace=True), m.Linear(8, 4),
                            m.ReLU(inplace=True), m.Linear(4, 2))
    check_parity(build(nn), build(torch.nn), randn(rng, (6, 10), 2.0), rng)


def test_sequential_fuses_linear_and_activation(monkeypatch, rng):
    # Linear + ReLU / Sigmoid / Tanh / GELU / SiLU / Mish / Hardswish / ELU / SELU run
    # as one GEMM with the activation in its epilogue (declared by Linear.epilogues
    # and each activation's epilogue); LeakyReLU (and ELU with alpha != 1) after a
    # Linear run on their own
    seen = []
    plain = nn.Linear.forward_fused

    def spy(self, x, epilogue):
        seen.append(epilogue)
        return plain(self, x, epilogue)

    monkeypatch.setattr(nn.Linear, "forward_fused", spy)
    fm, tm = mlp_pair(["ReLU", "Sigmoid", "Tanh", "GELU", "LeakyReLU"])
    check_parity(fm, tm, randn(rng, (11, 10), 2.0), rng, atol=2e-6)
    # check_parity runs the model once, then three times before the backwards
    assert seen == ["relu", "sigmoid", "tanh", "gelu", None, None] * 4
    seen.clear()
    fm, tm = mlp_pair(["SiLU", "Mish", "Hardswish", "ELU", "SELU"])
    check_parity(fm, tm, randn(rng, (11, 10), 2.0), rng, atol=2e-6)
    assert seen == ["silu", "mish", "hardswish", "elu", "selu", None] * 4


def test_sequential_input_grad_false_skips_leading_modules(rng):
    def build(m):
        return m.Sequential(m.Flatten(), m.Dropout(0.5), m.Linear(12, 8), m.ReLU(), m.Linear(8, 3))
    fm, tm = build(nn), build(torch.nn)
    torch_to_fastnn(fm, tm)
    fm.eval()
    tm.eval()
    x = randn(rng, (5, 3, 4))
    g = randn(rng, (5, 3))
    tm(torch.from_numpy(x)).backward(torch.from_numpy(g))
    fm(x)
    assert fm.backward(g, input_grad=False) is None
    for p, t in zip(fm.parameters(), tm.parameters()):
        close(p.grad, t.grad)


def test_sequential_replaced_module(rng):
    # swapping a child after a forward runs the new one (and re-plans the fusion)
    fm, tm = mlp_pair(["ReLU", "GELU"])
    x = randn(rng, (4, 10))
    check_parity(fm, tm, x, rng)
    fm.add_module("1", nn.Tanh())
    fm.add_module("3", nn.Sigmoid())
    tm[1], tm[3] = torch.nn.Tanh(), torch.nn.Sigmoid()
    check_parity(fm, tm, x, rng, copy_weights=False)


def test_sequential_3d_input(rng):
    fm, tm = mlp_pair(["ReLU", "Tanh"])
    check_parity(fm, tm, randn(rng, (2, 5, 10)), rng, atol=2e-6)


def test_sequential_nested(rng):
    def build(m):
        return m.Sequential(
            m.Sequential(m.Linear(8, 12), m.ReLU()),
            m.Sequential(m.Linear(12, 10)),  # the activation sits outside: not fused
            m.Tanh(),
            m.Sequential(m.Sequential(m.Linear(10, 9), m.Sigmoid()), m.Dropout(0.2)),
            m.Flatten(0, 1),
            m.Identity(),
        )
    fm, tm = build(nn), build(torch.nn)
    assert [k for k, _ in fm.named_parameters()] == [k for k, _ in tm.named_parameters()]
    check_parity(fm, tm, randn(rng, (6, 8), 2.0), rng, train=False)


def test_sequential_with_batchnorm_train(rng):
    def build(m):
        return m.Sequential(m.Linear(7, 12), m.BatchNorm1d(12), m.ReLU(), m.Linear(12, 12),
                            m.Sigmoid(), m.BatchNorm1d(12, affine=False), m.Linear(12, 4))
    fm, tm = build(nn), build(torch.nn)
    check_parity(fm, tm, randn(rng, (16, 7), 2.0), rng, rtol=1e-4, atol=1e-5)


# ---- losses -----------------------------------------------------------------
REDUCTIONS = ["mean", "sum"]


def check_loss(floss, tloss, pred, target, rtol=RTOL, atol=ATOL, target_dtype=None):
    pt = torch.tensor(pred, requires_grad=True)
    tt = torch.from_numpy(np.asarray(target, dtype=target_dtype))
    want = tloss(pt, tt)
    want.backward()
    got = floss(pred, target)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, want.item(), rtol=rtol, atol=atol)
    close(floss.backward(), pt.grad, rtol, atol)
    # a scaled upstream gradient scales the result (each backward pops its own call)
    floss(pred, target)
    close(floss.backward(2.5), 2.5 * pt.grad, rtol, atol)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("shape", [(13, 5), (4, 5, 3), (2, 5, 3, 2), (5,)], ids=str)
def test_cross_entropy(rng, reduction, smoothing, shape):
    x = randn(rng, shape, 3.0)
    yshape = () if len(shape) == 1 else shape[:1] + shape[2:]
    y = rng.integers(0, shape[0] if len(shape) == 1 else shape[1], yshape)
    check_loss(nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing),
               torch.nn.CrossEntropyLoss(reduction=reduction, label_smoothing=smoothing), x, y)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("ignore_index", [-100, 2, 9])
@pytest.mark.parametrize("shape", [(12, 4), (3, 4, 5)], ids=str)
def test_cross_entropy_ignore_index(rng, reduction, smoothing, ignore_index, shape):
    x = randn(rng, shape, 3.0)
    y = rng.integers(0, 4, shape[:1] + shape[2:])
    y.reshape(-1)[::3] = ignore_index
    check_loss(nn.CrossEntropyLoss(ignore_index=ignore_index, reduction=reduction,
                                   label_smoothing=smoothing),
               torch.nn.CrossEntropyLoss(ignore_index=ignore_index, reduction=reduction,
                                         label_smoothing=smoothing), x, y)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("fcls, tcls", [(nn.MSELoss, torch.nn.MSELoss),
                                        (nn.L1Loss, torch.nn.L1Loss)], ids=["mse", "l1"])
@pytest.mark.parametrize("shape", [(7, 3), (2, 3, 4), (1000,)], ids=str)
def test_regression_losses(rng, reduction, fcls, tcls, shape):
    pred, target = randn(rng, shape, 2.0), randn(rng, shape, 2.0)
    check_loss(fcls(reduction=reduction), tcls(reduction=reduction), pred, target)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_l1_loss_exact_ties(rng, reduction):
    # pred == target: torch's sign() gives a zero gradient there
    pred, target = randn(rng, (6, 5)), randn(rng, (6, 5))
    target[::2] = pred[::2]
    target[1, 1] = pred[1, 1]
    check_loss(nn.L1Loss(reduction=reduction), torch.nn.L1Loss(reduction=reduction), pred, target)
    nn_l1 = nn.L1Loss(reduction=reduction)
    nn_l1(pred, target)
    assert (nn_l1.backward()[::2] == 0).all()


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits(rng, reduction):
    x = randn(rng, (9, 4), 4.0)
    x[0, :3] = [40.0, -40.0, 0.0]  # saturated logits and zero
    t = rng.uniform(0, 1, (9, 4)).astype(np.float32)
    t[1] = [0, 1, 0, 1]
    check_loss(nn.BCEWithLogitsLoss(reduction=reduction),
               torch.nn.BCEWithLogitsLoss(reduction=reduction), x, t)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("delta", [0.5, 1.0, 2.0])
def test_huber_loss(rng, reduction, delta):
    pred, target = randn(rng, (8, 7), 2.0), randn(rng, (8, 7), 2.0)
    # differences exactly at +-delta and zero: the kink and the tie
    target[0, :4] = 0.0
    pred[0, :4] = [delta, -delta, 0.0, 1.5 * delta]
    check_loss(nn.HuberLoss(reduction=reduction, delta=delta),
               torch.nn.HuberLoss(reduction=reduction, delta=delta), pred, target)


def test_huber_default_delta_is_smooth_l1_like(rng):
    pred, target = randn(rng, (20,), 2.0), randn(rng, (20,), 2.0)
    check_loss(nn.HuberLoss(), torch.nn.HuberLoss(), pred, target)
    check_loss(nn.HuberLoss(), torch.nn.SmoothL1Loss(beta=1.0), pred, target)


@pytest.mark.parametrize("fcls, tcls", [
    pytest.param(nn.MSELoss, torch.nn.MSELoss, id="mse"),
    pytest.param(nn.L1Loss, torch.nn.L1Loss, id="l1"),
    pytest.param(nn.BCEWithLogitsLoss, torch.nn.BCEWithLogitsLoss, id="bce"),
    pytest.param(nn.HuberLoss, torch.nn.HuberLoss, id="huber"),
])
def test_empty_sum_is_zero(fcls, tcls):
    z = np.zeros((0, 3), np.float32)
    check_loss(fcls(reduction="sum"), tcls(reduction="sum"), z, z)


def test_cross_entropy_all_ignored_sum_is_zero(rng):
    x = randn(rng, (4, 3))
    y = np.full(4, -100, np.int64)
    check_loss(nn.CrossEntropyLoss(reduction="sum"), torch.nn.CrossEntropyLoss(reduction="sum"),
               x, y)


def test_empty_mean_is_nan(rng):
    # torch: mean over nothing is nan (and so for every target ignored)
    z = np.zeros((0, 3), np.float32)
    for fcls, tcls in [(nn.MSELoss, torch.nn.MSELoss), (nn.L1Loss, torch.nn.L1Loss),
                       (nn.HuberLoss, torch.nn.HuberLoss)]:
        assert math.isnan(fcls()(z, z)) and math.isnan(tcls()(torch.from_numpy(z),
                                                               torch.from_numpy(z)).item())
    x, y = randn(rng, (4, 3)), np.full(4, -100, np.int64)
    assert math.isnan(nn.CrossEntropyLoss()(x, y))
    assert math.isnan(torch.nn.CrossEntropyLoss()(torch.from_numpy(x), torch.from_numpy(y)))


# ---- nn.init ----------------------------------------------------------------
def test_linear_default_init_matches_torch_bounds():
    fm, tm = nn.Linear(200, 3000), torch.nn.Linear(200, 3000)
    bound = 1.0 / math.sqrt(200)
    for f, t in [(fm.weight.data, tm.weight.detach().numpy()),
                 (fm.bias.data, tm.bias.detach().numpy())]:
        assert np.abs(f).max() <= bound and np.abs(t).max() <= bound
        assert np.abs(f).max() > 0.995 * bound
        assert abs(f.mean()) < 0.05 * bound
        np.testing.assert_allclose(f.std(), t.std(), rtol=0.03)
        np.testing.assert_allclose(f.std(), bound / math.sqrt(3), rtol=0.03)
    assert fm.weight.shape == tuple(tm.weight.shape) and fm.bias.shape == tuple(tm.bias.shape)


def test_batchnorm_default_init():
    fm, tm = nn.BatchNorm1d(5), torch.nn.BatchNorm1d(5)
    for key, want in tm.state_dict().items():
        np.testing.assert_array_equal(fm.state_dict()[key], want.numpy())


GAINS = [("linear", None), ("conv1d", None), ("conv2d", None), ("conv3d", None),
         ("conv_transpose1d", None), ("conv_transpose2d", None), ("conv_transpose3d", None),
         ("sigmoid", None), ("tanh", None), ("relu", None), ("leaky_relu", None),
         ("leaky_relu", 0.2), ("leaky_relu", 3), ("leaky_relu", 0), ("selu", None)]


@pytest.mark.parametrize("nonlinearity, param", GAINS)
def test_calculate_gain(nonlinearity, param):
    want = torch.nn.init.calculate_gain(nonlinearity, param)
    assert nn.init.calculate_gain(nonlinearity, param) == pytest.approx(want, rel=1e-15)


@pytest.mark.parametrize("nonlinearity, param", [("gelu", None), ("leaky_relu", "x"),
                                                 ("leaky_relu", True)])
def test_calculate_gain_rejects_as_torch(nonlinearity, param):
    with pytest.raises(ValueError):
        torch.nn.init.calculate_gain(nonlinearity, param)
    with pytest.raises(ValueError):
        nn.init.calculate_gain(nonlinearity, param)


def kinit(name, **kw):
    return pytest.param(name, kw, id=f"{name}{kw}" if kw else name)


INITS = [
    kinit("uniform_"), kinit("uniform_", a=-0.3, b=0.7),
    kinit("normal_"), kinit("normal_", mean=0.5, std=0.2),
    kinit("constant_", val=0.25), kinit("zeros_"), kinit("ones_"),
    kinit("xavier_uniform_"), kinit("xavier_uniform_", gain=2.0),
    kinit("xavier_normal_"), kinit("xavier_normal_", gain=0.5),
    kinit("kaiming_uniform_"), kinit("kaiming_uniform_", a=math.sqrt(5)),
    kinit("kaiming_uniform_", mode="fan_out", nonlinearity="relu"),
    kinit("kaiming_normal_"), kinit("kaiming_normal_", a=0.1, mode="fan_out"),
    kinit("kaiming_normal_", nonlinearity="tanh"),
]


def torch_distribution(name, kw, t):
    """("uniform", low, high) or ("normal", mean, std) by torch.nn.init's formulas
    (its own fan and gain helpers) for initialiser `name` on tensor t."""
    init = torch.nn.init
    if name == "uniform_":
        return "uniform", kw.get("a", 0.0), kw.get("b", 1.0)
    if name == "normal_":
        return "normal", kw.get("mean", 0.0), kw.get("std", 1.0)
    if name.startswith("xavier"):
        fan_in, fan_out = init._calculate_fan_in_and_fan_out(t)
        std = kw.get("gain", 1.0) * math.sqrt(2.0 / (fan_in + fan_out))
    else:
        fan = init._calculate_correct_fan(t, kw.get("mode", "fan_in"))
        gain = init.calculate_gain(kw.get("nonlinearity", "leaky_relu"), kw.get("a", 0))
        std = gain / math.sqrt(fan)
    if name.endswith("uniform_"):
        return "uniform", -math.sqrt(3.0) * std, math.sqrt(3.0) * std
    return "normal", 0.0, std


def check_sample(x, kind, a, b):
    """x looks drawn from U(a, b) or N(a, b**2); tolerances of 5 standard errors or more."""
    n = x.size
    std = (b - a) / math.sqrt(12.0) if kind == "uniform" else b
    mean = (a + b) / 2 if kind == "uniform" else a
    assert abs(float(x.mean(dtype=np.float64)) - mean) < 5 * std / math.sqrt(n)
    np.testing.assert_allclose(x.std(dtype=np.float64), std, rtol=0.03)
    if kind == "uniform":  # inside the bounds and (n >= 18000 draws) close to both
        assert a <= x.min() < a + 1e-3 * (b - a)
        assert b - 1e-3 * (b - a) < x.max() <= b


@pytest.mark.parametrize("name, kw", INITS)
@pytest.mark.parametrize("shape", [(300, 200), (64, 32, 3, 3)], ids=str)
def test_init_distribution(name, kw, shape):
    f = np.empty(shape, np.float32)
    t = torch.empty(shape)
    assert getattr(nn.init, name)(f, **kw) is f
    getattr(torch.nn.init, name)(t, **kw)
    if name in ("constant_", "zeros_", "ones_"):
        np.testing.assert_array_equal(f, t.numpy())
        return
    kind, a, b = torch_distribution(name, kw, t)
    check_sample(t.numpy(), kind, a, b)  # the formula is torch's: its own sample fits it
    check_sample(f, kind, a, b)


@pytest.mark.parametrize("name, kw", [kinit("xavier_uniform_"), kinit("kaiming_normal_"),
                                      kinit("kaiming_uniform_", mode="fan_out")])
def test_init_parameter_and_fans(name, kw):
    # a Parameter works too; fans of a (out, in, k) weight count the kernel
    p = nn.Parameter(np.empty((40, 30, 5), np.float32))
    assert getattr(nn.init, name)(p, **kw) is p
    t = getattr(torch.nn.init, name)(torch.empty(40, 30, 5), **kw).numpy()
    np.testing.assert_allclose(p.data.std(), t.std(), rtol=0.05)


def test_init_fans_need_2d():
    for name in ("xavier_uniform_", "kaiming_normal_"):
        with pytest.raises(ValueError):
            getattr(torch.nn.init, name)(torch.empty(5))
        with pytest.raises(ValueError):
            getattr(nn.init, name)(np.empty(5, np.float32))


# ---- gradient clipping ------------------------------------------------------
def param_pairs(rng, shapes=((5, 4), (4,), (3, 2, 2)), scale=1.0):
    fps, tps = [], []
    for shape in shapes:
        data, grad = randn(rng, shape), randn(rng, shape, scale)
        p = nn.Parameter(data)
        p.grad = grad
        t = torch.nn.Parameter(torch.from_numpy(data.copy()))
        t.grad = torch.from_numpy(grad.copy())
        fps.append(p)
        tps.append(t)
    return fps, tps


@pytest.mark.parametrize("norm_type", [2, 2.0, 1, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])
def test_clip_grad_norm(rng, norm_type, max_norm):
    fps, tps = param_pairs(rng)
    got = nn.utils.clip_grad_norm_(fps, max_norm, norm_type=norm_type)
    want = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type=norm_type)
    assert isinstance(got, float)
    np.testing.assert_allclose(got, want.item(), rtol=1e-6)
    for p, t in zip(fps, tps):
        close(p.grad, t.grad, 1e-6, 1e-7)
    if max_norm > 1e5:
        for p, t in zip(fps, tps):
            np.testing.assert_array_equal(p.grad, t.grad.numpy())


def test_clip_grad_norm_single_parameter_and_frozen(rng):
    fps, tps = param_pairs(rng, scale=3.0)
    # a frozen parameter: torch sees no gradient, fastnn skips requires_grad=False
    fps[1].requires_grad = False
    tps[1].requires_grad_(False)
    tps[1].grad = None
    frozen = fps[1].grad.copy()
    got = nn.utils.clip_grad_norm_(fps, 1.0)
    want = torch.nn.utils.clip_grad_norm_(tps, 1.0)
    np.testing.assert_allclose(got, want.item(), rtol=1e-6)
    for i in (0, 2):
        close(fps[i].grad, tps[i].grad, 1e-6, 1e-7)
    np.testing.assert_array_equal(fps[1].grad, frozen)
    got = nn.utils.clip_grad_norm_(fps[0], 0.1, norm_type=1)
    want = torch.nn.utils.clip_grad_norm_(tps[0], 0.1, norm_type=1)
    np.testing.assert_allclose(got, want.item(), rtol=1e-6)
    close(fps[0].grad, tps[0].grad, 1e-6, 1e-7)


@pytest.mark.parametrize("clip_value", [0.3, 1, 100.0])
def test_clip_grad_value(rng, clip_value):
    fps, tps = param_pairs(rng, scale=2.0)
    assert nn.utils.clip_grad_value_(fps, clip_value) is None
    torch.nn.utils.clip_grad_value_(tps, clip_value)
    for p, t in zip(fps, tps):
        np.testing.assert_array_equal(p.grad, t.grad.numpy())


# ---- state_dict ---------------------------------------------------------------
def build_bn_model(m):
    return m.Sequential(m.Linear(6, 10), m.BatchNorm1d(10), m.ReLU(), m.Dropout(0.3),
                        m.Linear(10, 4))


def train_bn_stats(model, rng, to_input):
    model.train()
    for _ in range(3):
        model(to_input(randn(rng, (16, 6), 2.0) + np.float32(1.0)))


def test_state_dict_fastnn_to_torch(rng):
    fm, tm = build_bn_model(nn), build_bn_model(torch.nn)
    train_bn_stats(fm, rng, lambda x: x)
    sd = fm.state_dict()
    tsd = tm.state_dict()
    assert list(sd) == list(tsd)
    for k in sd:
        assert sd[k].shape == tuple(tsd[k].shape) and sd[k].dtype == tsd[k].numpy().dtype
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
    fm.eval()
    tm.eval()
    x = randn(rng, (7, 6))
    close(fm(x), tm(torch.from_numpy(x)).detach())
    assert int(tm[1].num_batches_tracked) == 3
    # a copy: changing the model later leaves the saved dict alone
    fm[0].weight.data += 1.0
    np.testing.assert_array_equal(sd["0.weight"], tm[0].weight.detach().numpy())


def test_state_dict_torch_to_fastnn(rng):
    fm, tm = build_bn_model(nn), build_bn_model(torch.nn)
    with torch.no_grad():
        train_bn_stats(tm, rng, torch.from_numpy)
    tsd = tm.state_dict()
    torch_to_fastnn(fm, tm)
    sd = fm.state_dict()
    assert list(sd) == list(tsd)
    for k in sd:
        np.testing.assert_array_equal(sd[k], tsd[k].numpy())
    fm.eval()
    tm.eval()
    x = randn(rng, (7, 6))
    close(fm(x), tm(torch.from_numpy(x)).detach())
    # torch tensors load directly too (np.asarray takes them)
    fm2 = build_bn_model(nn)
    fm2.load_state_dict(tsd)
    for k, v in fm2.state_dict().items():
        np.testing.assert_array_equal(v, tsd[k].numpy())


def test_state_dict_keys_without_bias_and_stats():
    def build(m):
        return m.Sequential(m.Linear(3, 4, bias=False),
                            m.BatchNorm1d(4, affine=False, track_running_stats=False),
                            m.BatchNorm1d(4, affine=False), m.Linear(4, 2))
    assert list(build(nn).state_dict()) == list(build(torch.nn).state_dict())


def bad_dicts(tsd):
    sd = {k: v.numpy() for k, v in tsd.items()}
    missing = dict(sd)
    del missing["1.running_var"], missing["4.bias"]
    unexpected = dict(sd, **{"5.weight": np.zeros(3, np.float32), "extra": np.zeros(1)})
    misshaped = dict(sd, **{"0.weight": sd["0.weight"].T.copy(), "1.bias": np.zeros(11)})
    return [("missing", missing, ["1.running_var", "4.bias"]),
            ("unexpected", unexpected, ["5.weight", "extra"]),
            ("misshaped", misshaped, ["0.weight", "1.bias"])]


@pytest.mark.parametrize("case", [0, 1, 2], ids=["missing", "unexpected", "misshaped"])
def test_load_state_dict_errors(case):
    fm, tm = build_bn_model(nn), build_bn_model(torch.nn)
    what, bad, keys = bad_dicts(tm.state_dict())[case]
    before = fm.state_dict()
    with pytest.raises(ValueError) as err:
        fm.load_state_dict(bad)
    for key in keys:
        assert key in str(err.value)
    with pytest.raises(RuntimeError) as terr:  # torch names the same keys
        tm.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in bad.items()})
    for key in keys:
        assert key in str(terr.value)
    for k, v in fm.state_dict().items():  # nothing was loaded
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("case", [0, 1], ids=["missing", "unexpected"])
def test_load_state_dict_non_strict(case):
    fm, tm = build_bn_model(nn), build_bn_model(torch.nn)
    _, bad, _ = bad_dicts(tm.state_dict())[case]
    torch_to_fastnn(fm, tm)  # keys left out keep what they had: the same on both sides
    got = fm.load_state_dict(bad, strict=False)
    want = tm.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in bad.items()},
                              strict=False)
    assert sorted(got.missing_keys) == sorted(want.missing_keys)
    assert sorted(got.unexpected_keys) == sorted(want.unexpected_keys)
    for k, v in fm.state_dict().items():
        np.testing.assert_array_equal(v, tm.state_dict()[k].numpy())


def test_forward_arguments_are_named_as_torchs():
    """Keyword calls as in PyTorch (layer(input=x), loss(input=p, target=t)): every
    fastnn.nn class with a torch namesake takes torch's forward arguments by name, in
    torch's order (fastnn may add trailing ones, such as the RNNs' lengths). The
    containers that take several inputs (*inputs) are the exception."""
    import inspect
    several = {"Module", "Sequential"}
    for name in sorted(set(nn.__all__) - several):
        ours, theirs = getattr(nn, name), getattr(torch.nn, name, None)
        if not (inspect.isclass(ours) and inspect.isclass(theirs)
                and issubclass(theirs, torch.nn.Module)) or \
                theirs.forward is torch.nn.Module.forward:
            continue
        mine = [p for p in inspect.signature(ours.forward).parameters if p != "self"]
        want = [p for p in inspect.signature(theirs.forward).parameters if p != "self"]
        assert mine[:len(want)] == want, (name, mine, want)
    x = np.ones((2, 3), np.float32)
    layer = nn.Linear(3, 2)
    np.testing.assert_array_equal(layer(input=x), layer(x))
    assert nn.MSELoss()(input=x, target=x) == 0.0
