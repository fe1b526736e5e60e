"""fastnn.nn without torch: Module mechanics, every layer's forward against a
NumPy float64 reference, every backward against finite differences."""
import math
import re

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.nn.parameter import flatten_parameters
import reference as ref
from nn_checks import fd_check


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---- Parameter ------------------------------------------------------------------------
def test_parameter_owns_float32_copies():
    src = np.arange(6, dtype=np.float64).reshape(2, 3)
    p = nn.Parameter(src)
    assert p.data.dtype == np.float32 and p.data.flags.c_contiguous
    assert p.grad.shape == (2, 3) and not p.grad.any()
    src[0, 0] = 99
    assert p.data[0, 0] == 0
    view = p.data
    p.data = np.ones((2, 3))
    assert view is p.data and (view == 1).all()
    p.grad = None
    assert not p.grad.any()
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        p.data = np.ones(3)
    with pytest.raises(TypeError, match="Parameter data"):
        nn.Parameter(["a", object()])
    assert np.asarray(p) is p.data
    assert "Parameter containing" in repr(p)


def test_flatten_parameters_shares_views():
    a, b = nn.Parameter(np.ones((2, 2))), nn.Parameter(np.full(3, 2.0))
    buf = flatten_parameters([a, b])
    assert buf.data.shape == (7,) and np.shares_memory(a.data, buf.data)
    buf.data[:] = 5
    assert (a.data == 5).all() and (b.data == 5).all()
    assert flatten_parameters([a, b]) is buf
    again = flatten_parameters([b, a])  # another order: a new buffer, values kept
    assert again is not buf and (a.data == 5).all()
    with pytest.raises(TypeError, match="Parameters"):
        flatten_parameters([np.ones(2)])


# ---- Module mechanics ---------------------------------------------------------------
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.scale = nn.Parameter(np.ones(4))
        self.register_buffer("count", np.zeros(1, np.float32))

    def forward(self, x):
        return self.fc(x) * self.scale.data


def test_registration_names_and_traversal():
    net = nn.Sequential(Block(), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    names = [n for n, _ in net.named_parameters()]
    assert names == ["0.scale", "0.fc.weight", "0.fc.bias", "2.0.weight", "2.0.bias"]
    assert list(net.state_dict()) == ["0.scale", "0.count", "0.fc.weight", "0.fc.bias",
                                      "2.0.weight", "2.0.bias"]
    assert [n for n, _ in net.named_modules()] == ["", "0", "0.fc", "1", "2", "2.0"]
    assert len(list(net.children())) == 3
    assert net.num_parameters() == 4 + 12 + 4 + 8 + 2
    net.eval()
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    blk = net[0]
    blk.scale = None  # re-assigning a non-parameter unregisters it
    assert "0.scale" not in dict(net.named_parameters())
    del blk.fc
    assert "0.fc.weight" not in net.state_dict()


def test_shared_parameters_are_listed_once():
    lin = nn.Linear(2, 2)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(net.parameters())) == 2


def test_subclass_must_call_init():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.ones(2))

    with pytest.raises(AttributeError, match=r"super\(\).__init__\(\)"):
        Bad()


def test_base_forward_and_backward_say_what_is_missing():
    class NoBackward(nn.Module):
        def forward(self, x):
            return x

    m = NoBackward()
    assert m(1) == 1
    with pytest.raises(NotImplementedError, match="NoBackward must define backward"):
        m.backward(1)
    with pytest.raises(NotImplementedError, match="define get_config"):
        m.get_config()


def test_repr_like_pytorch():
    net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Sequential(nn.Dropout(0.1)))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Linear(in_features=784, out_features=256, bias=True)\n"
        "  (1): ReLU()\n"
        "  (2): Sequential(\n"
        "    (0): Dropout(p=0.1, inplace=False)\n"
        "  )\n"
        ")")


def test_zero_grad_and_accumulation(rng):
    lin = nn.Linear(3, 2)
    x, g = rand(rng, 5, 3), rand(rng, 5, 2)
    lin(x)
    lin.backward(g)
    once = lin.weight.grad.copy()
    lin(x)  # each backward consumes its own forward's context
    lin.backward(g)
    np.testing.assert_allclose(lin.weight.grad, 2 * once, rtol=1e-6)
    lin.zero_grad()
    assert not lin.weight.grad.any() and not lin.bias.grad.any()


def test_zero_grad_leaves_other_models_alone():
    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    flatten_parameters(list(a.parameters()) + list(b.parameters()))
    for p in list(a.parameters()) + list(b.parameters()):
        p.grad = np.ones(p.shape)
    a.zero_grad()
    assert not a.weight.grad.any() and b.weight.grad.all()
    nn.Sequential(a, b).zero_grad()
    assert not b.weight.grad.any()


def test_state_dict_copies_and_load_in_place(rng):
    src, dst = nn.Linear(3, 2), nn.Linear(3, 2)
    sd = src.state_dict()
    sd["weight"][0, 0] = 123.0
    assert src.weight.data[0, 0] != 123.0
    view = dst.weight.data
    result = dst.load_state_dict(sd)
    assert view is dst.weight.data and view[0, 0] == 123.0
    assert result.missing_keys == [] and result.unexpected_keys == []


def test_load_state_dict_errors_name_keys():
    m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    sd = m.state_dict()
    bad = dict(sd)
    del bad["0.bias"]
    bad["extra"] = np.zeros(1)
    bad["1.weight"] = np.zeros(5)
    before = m.state_dict()
    with pytest.raises(ValueError) as err:
        m.load_state_dict(bad)
    msg = str(err.value)
    assert "0.bias" in msg and "extra" in msg and "1.weight" in msg and "(5,)" in msg
    for k, v in m.state_dict().items():  # nothing changed
        np.testing.assert_array_equal(v, before[k])
    del bad["1.weight"]
    res = m.load_state_dict(bad, strict=False)
    assert res.missing_keys == ["0.bias", "1.weight"] and res.unexpected_keys == ["extra"]
    with pytest.raises(TypeError, match="mapping"):
        m.load_state_dict([1, 2])
    with pytest.raises(ValueError, match="real numbers"):
        m.load_state_dict({**sd, "0.bias": np.array(["a", "b"])})


# ---- Linear ---------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3,), (5, 3), (2, 4, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_forward_and_gradients(shape, bias, rng):
    lin = nn.Linear(3, 4, bias=bias)
    x = rand(rng, *shape)
    ref = x.astype(np.float64) @ lin.weight.data.T.astype(np.float64)
    if bias:
        ref += lin.bias.data
    np.testing.assert_allclose(lin(x), ref, rtol=1e-5, atol=1e-6)
    fd_check(lin, x, rng)


def test_linear_input_grad_false_and_frozen(rng):
    lin = nn.Linear(3, 2)
    x = rand(rng, 4, 3)
    fd_check(lin, x, rng, input_grad=False)
    lin.zero_grad()
    lin.weight.requires_grad = False
    lin(x)
    lin.backward(rand(rng, 4, 2))
    assert not lin.weight.grad.any() and lin.bias.grad.any()


def test_linear_default_init_and_errors(rng):
    fastnn.manual_seed(0)
    lin = nn.Linear(100, 50)
    bound = 1 / math.sqrt(100)
    assert np.abs(lin.weight.data).max() <= bound and np.abs(lin.bias.data).max() <= bound
    assert lin.weight.data.std() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    fastnn.manual_seed(0)
    np.testing.assert_array_equal(nn.Linear(100, 50).weight.data, lin.weight.data)
    with pytest.raises(TypeError, match="in_features"):
        nn.Linear(2.5, 3)
    with pytest.raises(ValueError, match="out_features"):
        nn.Linear(2, -1)
    with pytest.raises(ValueError, match=r"\(\.\.\., 100\)"):
        lin(np.zeros((2, 99), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        nn.Linear(2, 2).backward(np.zeros((1, 2), np.float32))
    lin(np.zeros((2, 100), np.float32))
    with pytest.raises(ValueError, match="grad_out"):
        lin.backward(np.zeros((3, 50), np.float32))


# ---- activations ----------------------------------------------------------------------
ACTIVATIONS = [
    (nn.ReLU(), ref.relu),
    (nn.LeakyReLU(0.2), lambda x: ref.leaky_relu(x, 0.2)),
    (nn.Sigmoid(), ref.sigmoid),
    (nn.Tanh(), ref.tanh),
    (nn.GELU(), ref.gelu),
    (nn.GELU("tanh"), lambda x: ref.gelu(x, "tanh")),
    (nn.SiLU(), ref.silu),
    (nn.Softmax(dim=1), lambda x: ref.softmax(x, axis=1)),
    (nn.Softmax(dim=0), lambda x: ref.softmax(x, axis=0)),
    (nn.LogSoftmax(), ref.log_softmax),
]


@pytest.mark.parametrize("module,reference", ACTIVATIONS, ids=lambda v: repr(v)[:20])
def test_activation_forward_and_backward(module, reference, rng):
    x = rand(rng, 6, 5)
    x[np.abs(x) < 0.05] = 0.3  # keep kinks out of the finite differences
    np.testing.assert_allclose(module(x), reference(x.astype(np.float64)), rtol=2e-5,
                               atol=2e-6)
    fd_check(module, x, rng)
    assert module.backward(np.ones((6, 5), np.float32), input_grad=False) is None


def test_relu_inplace_and_bad_args(rng):
    x = rand(rng, 4, 4)
    y = nn.ReLU(inplace=True)(x)
    assert y is x and (x >= 0).all()
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")
    with pytest.raises(TypeError, match="dim"):
        nn.Softmax(dim=1.5)
    with pytest.raises(TypeError, match="negative_slope"):
        nn.LeakyReLU("a")
    with pytest.raises(RuntimeError, match="Sigmoid.backward called before forward"):
        nn.Sigmoid().backward(np.ones(2, np.float32))
    assert repr(nn.GELU("tanh")) == "GELU(approximate='tanh')"
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"


# ---- Dropout --------------------------------------------------------------------------
def test_dropout_train_eval_and_seed(rng):
    x = np.ones((200, 500), np.float32)
    d = nn.Dropout(0.3)
    fastnn.manual_seed(7)
    y = d(x)
    kept = y != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y[kept], 1 / 0.7, rtol=1e-6)
    g = d.backward(np.full(x.shape, 2.0, np.float32))
    np.testing.assert_array_equal(g != 0, kept)
    fastnn.manual_seed(7)
    np.testing.assert_array_equal(nn.Dropout(0.3)(x), y)
    d.eval()
    assert d(x) is not None and (d(x) == x).all()
    np.testing.assert_array_equal(d.backward(x), x)
    d.train()
    assert not nn.Dropout(1.0)(x).any()
    assert (nn.Dropout(0.0)(x) == x).all()
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        nn.Dropout(1.5)
    with pytest.raises(TypeError, match="p must"):
        nn.Dropout("0.5")


# ---- BatchNorm1d ----------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(8, 3), (4, 3, 5)])
def test_batchnorm_training_statistics(shape, rng):
    bn = nn.BatchNorm1d(3, momentum=0.1)
    x = (rand(rng, *shape) * 3 + 2).astype(np.float32)
    y = bn(x)
    axes = (0,) if len(shape) == 2 else (0, 2)
    np.testing.assert_allclose(y.mean(axis=axes), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=axes), 1, rtol=1e-3)
    x64 = x.astype(np.float64)
    n = x.size // 3
    np.testing.assert_allclose(bn.running_mean, 0.1 * x64.mean(axis=axes), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * x64.var(axis=axes) * n / (n - 1),
                               rtol=1e-5)
    assert int(bn.num_batches_tracked) == 1
    bn.eval()
    ref = (x64 - bn.running_mean.reshape((1, -1) + (1,) * (len(shape) - 2))) / np.sqrt(
        bn.running_var.reshape((1, -1) + (1,) * (len(shape) - 2)) + 1e-5)
    np.testing.assert_allclose(bn(x), ref, rtol=1e-5, atol=1e-5)


def test_batchnorm_cumulative_average(rng):
    bn = nn.BatchNorm1d(2, momentum=None)
    xs = [rand(rng, 6, 2) for _ in range(3)]
    for x in xs:
        bn(x)
    np.testing.assert_allclose(bn.running_mean, np.mean([x.mean(0) for x in xs], axis=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", [{}, {"affine": False}, {"track_running_stats": False}])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients(kwargs, training, rng):
    bn = nn.BatchNorm1d(3, **kwargs)
    if bn.affine:
        bn.weight.data = rng.uniform(0.5, 2, 3)
        bn.bias.data = rng.standard_normal(3)
    if bn.track_running_stats:
        bn.running_mean[:] = rng.standard_normal(3)
        bn.running_var[:] = rng.uniform(0.5, 2, 3)
    bn.train(training)
    fd_check(bn, rand(rng, 7, 3, 2), rng, eps=3e-3, rtol=3e-2)


def test_batchnorm_channel_of_equal_values(rng):
    """Found by the fuzz campaign: with float32 statistics, 17 equal rows of ~1e3 had a mean
    one rounding off, and xhat = that rounding / sqrt(eps) moved the input grad by 0.7%."""
    row = (rand(rng, 1, 8) * 1000).astype(np.float32)
    x = np.broadcast_to(row, (17, 8))
    bn = nn.BatchNorm1d(8)
    bn.weight.data[:] = rand(rng, 8)
    y = bn(x)
    np.testing.assert_array_equal(y, np.broadcast_to(bn.bias.data, (17, 8)))
    g = rand(rng, 17, 8)
    dx = bn.backward(g)
    want = bn.weight.data / np.sqrt(np.float64(bn.eps)) * (g - g.mean(axis=0))
    np.testing.assert_allclose(dx, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_batchnorm_errors():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        bn(np.zeros((4, 2), np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn(np.zeros((1, 3), np.float32))
    bn.eval()
    assert bn(np.zeros((1, 3), np.float32)).shape == (1, 3)
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm1d(3, momentum=2)
    with pytest.raises(ValueError, match="eps"):
        nn.BatchNorm1d(3, eps=0)
    sd = nn.BatchNorm1d(4).state_dict()
    assert list(sd) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert sd["num_batches_tracked"].dtype == np.int64 and sd["num_batches_tracked"].shape == ()


# ---- Flatten, Identity ----------------------------------------------------------------
def test_flatten_and_identity(rng):
    x = rand(rng, 2, 3, 4, 5)
    f = nn.Flatten()
    assert f(x).shape == (2, 60)
    assert f.backward(np.ones((2, 60), np.float32)).shape == x.shape
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Flatten(-2)(x).shape == (2, 3, 20)
    with pytest.raises(ValueError, match="does not fit"):
        nn.Flatten(3, 1)(x)
    ident = nn.Identity(54, unused="ok")
    assert ident(x) is x and ident.backward(x) is x and ident.backward(x, False) is None


# ---- Sequential / ModuleList ----------------------------------------------------------
@pytest.mark.parametrize("act", [nn.ReLU, nn.Sigmoid, nn.Tanh, nn.GELU,
                                 lambda: nn.GELU(approximate="tanh")],
                         ids=["relu", "sigmoid", "tanh", "gelu", "gelu_tanh"])
def test_sequential_fused_epilogue_matches_separate_layers(act, rng):
    lin, a = nn.Linear(5, 7), act()
    seq = nn.Sequential(lin, a)
    assert seq._plan()[0][0] == (lin, a.epilogue)  # one fused step
    x, g = rand(rng, 9, 5), rand(rng, 9, 7)
    y = seq(x)
    gx = seq.backward(g)
    w_grad = lin.weight.grad.copy()
    lin.zero_grad()
    y2 = a(lin(x))
    gx2 = lin.backward(a.backward(g))
    np.testing.assert_allclose(y, y2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gx, gx2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w_grad, lin.weight.grad, rtol=1e-5, atol=1e-6)


def test_sequential_gradients_and_input_grad(rng):
    seq = nn.Sequential(nn.Flatten(), nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3),
                        nn.LogSoftmax())
    fd_check(seq, rand(rng, 4, 2, 3), rng)
    seq.zero_grad()
    seq(rand(rng, 4, 2, 3))
    assert seq.backward(np.ones((4, 3), np.float32), input_grad=False) is None
    assert seq[1].weight.grad.any()


def test_sequential_container_api():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    seq.append(nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear)
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub.state_dict()) == ["2.weight", "2.bias"]
    with pytest.raises(IndexError, match="out of range"):
        seq[5]
    with pytest.raises(TypeError, match="Modules"):
        nn.Sequential(nn.ReLU(), "relu")
    from collections import OrderedDict
    named = nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.ReLU()))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]


def test_module_list():
    ml = nn.ModuleList([nn.Linear(2, 2), nn.ReLU()])
    ml.append(nn.Linear(2, 1))
    ml[1] = nn.Tanh()
    assert len(ml) == 3 and isinstance(ml[1], nn.Tanh)
    assert [n for n, _ in ml.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(NotImplementedError, match="iterate"):
        ml(np.zeros(2))
    with pytest.raises(IndexError):
        ml[3] = nn.ReLU()


# ---- losses ---------------------------------------------------------------------------
def _ce_ref(x, y, smoothing=0.0, ignore=-100):
    return ref.cross_entropy(x, y, label_smoothing=smoothing, ignore_index=ignore)[0]


def _loss_fd(loss_fn, pred, target, rng, eps=1e-2):
    loss_fn(pred, target)
    grad = loss_fn.backward()
    flat = pred.reshape(-1)
    for i in rng.choice(flat.size, size=min(flat.size, 8), replace=False):
        keep = flat[i]
        flat[i] = keep + eps
        up = loss_fn(pred, target)
        flat[i] = keep - eps
        down = loss_fn(pred, target)
        flat[i] = keep
        assert grad.reshape(-1)[i] == pytest.approx((up - down) / (2 * eps), rel=2e-2, abs=1e-4)


@pytest.mark.parametrize("smoothing,ignore", [(0.0, -100), (0.1, 2)])
def test_cross_entropy_loss(smoothing, ignore, rng):
    x, y = rand(rng, 6, 4), np.array([0, 2, 1, 3, 2, 0])
    fn = nn.CrossEntropyLoss(label_smoothing=smoothing, ignore_index=ignore)
    assert fn(x, y) == pytest.approx(_ce_ref(x, y, smoothing, ignore), rel=1e-5)
    _loss_fd(fn, x, y, rng)
    total = nn.CrossEntropyLoss(label_smoothing=smoothing, ignore_index=ignore, reduction="sum")
    count = np.count_nonzero(y != ignore)
    assert total(x, y) == pytest.approx(_ce_ref(x, y, smoothing, ignore) * count, rel=1e-5)
    fn(x, y)
    np.testing.assert_allclose(total.backward(), fn.backward() * count, rtol=1e-6)


@pytest.mark.parametrize("cls,reference", [
    (nn.MSELoss, lambda d, t: ref.mse_loss(d, 0 * d)[0]),
    (nn.L1Loss, lambda d, t: np.abs(d).mean()),
    (nn.HuberLoss, lambda d, t: np.where(np.abs(d) <= 1, 0.5 * d ** 2, np.abs(d) - 0.5).mean()),
])
def test_regression_losses(cls, reference, rng):
    p, t = rand(rng, 5, 3), rand(rng, 5, 3)
    fn = cls()
    d = p.astype(np.float64) - t
    assert fn(p, t) == pytest.approx(reference(d, t), rel=1e-5)
    _loss_fd(fn, p, t, rng)
    s = cls(reduction="sum")
    assert s(p, t) == pytest.approx(reference(d, t) * p.size, rel=1e-5)
    fn(p, t)
    np.testing.assert_allclose(s.backward(), fn.backward() * p.size, rtol=1e-6)
    fn(p, t)  # each backward pops its own call's gradient
    fn(p, t)
    np.testing.assert_allclose(fn.backward(2.0), 2 * fn.backward(), rtol=1e-6)


def test_huber_delta_and_bce(rng):
    p, t = rand(rng, 20), rand(rng, 20)
    d = p.astype(np.float64) - t
    h = nn.HuberLoss(delta=0.5)
    huber = np.where(np.abs(d) <= 0.5, 0.5 * d ** 2, 0.5 * (np.abs(d) - 0.25)).mean()
    assert h(p, t) == pytest.approx(huber, rel=1e-5)
    _loss_fd(h, p, t, rng, eps=1e-3)
    targets = (rng.random(20) > 0.5).astype(np.float32)
    bce = nn.BCEWithLogitsLoss()
    expected = ref.binary_cross_entropy_with_logits(p, targets)[0]
    assert bce(p, targets) == pytest.approx(expected, rel=1e-5)
    _loss_fd(bce, p, targets, rng)


def test_loss_errors():
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(RuntimeError, match="before forward"):
        nn.L1Loss().backward()
    with pytest.raises(ValueError, match="same shape"):
        nn.L1Loss()(np.zeros(3, np.float32), np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="delta"):
        nn.HuberLoss(delta=0)
    assert repr(nn.HuberLoss(reduction="sum", delta=2)) == \
        "HuberLoss(reduction='sum', delta=2.0)"


# ---- init and clipping ----------------------------------------------------------------
def test_init_functions():
    w = nn.Parameter(np.empty((400, 300)))
    fastnn.manual_seed(3)
    nn.init.xavier_uniform_(w)
    bound = math.sqrt(6 / 700)
    assert np.abs(w.data).max() <= bound and w.data.std() == pytest.approx(bound / math.sqrt(3),
                                                                           rel=0.05)
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert w.data.std() == pytest.approx(math.sqrt(2 / 300), rel=0.05)
    nn.init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu")
    assert np.abs(w.data).max() <= math.sqrt(6 / 400)
    nn.init.xavier_normal_(w, gain=2.0)
    assert w.data.std() == pytest.approx(2 * math.sqrt(2 / 700), rel=0.05)
    nn.init.normal_(w, 1.0, 0.5)
    assert w.data.mean() == pytest.approx(1.0, abs=0.01)
    assert nn.init.zeros_(w) is w and not w.data.any()
    nn.init.ones_(w)
    nn.init.constant_(w.data, 3.0)
    assert (w.data == 3).all()
    nn.init.uniform_(w, -2, -1)
    assert w.data.max() <= -1 and w.data.min() >= -2
    assert nn.init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert nn.init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        nn.init.xavier_uniform_(np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.init.calculate_gain("swishy")
    with pytest.raises(TypeError, match="float32"):
        nn.init.zeros_(np.zeros(3))
    with pytest.raises(ValueError, match="mode"):
        nn.init.kaiming_uniform_(w, mode="fan_avg")


@pytest.mark.parametrize("call, kwargs, err, message", [
    ("kaiming_uniform_", dict(a=10**400), ValueError, "negative_slope must be a finite number"),
    ("kaiming_normal_", dict(a=10**400), ValueError, "negative_slope must be a finite number"),
    ("kaiming_normal_", dict(a="0.1"), ValueError, "negative_slope must be a real number"),
    ("xavier_uniform_", dict(gain=float("inf")), ValueError, "gain must be a finite number"),
    ("xavier_uniform_", dict(gain=1e300), ValueError, "gain must keep the weights within"),
    ("xavier_normal_", dict(gain=-1.0), ValueError, "gain must be >= 0, got -1.0"),
    ("uniform_", dict(a=-float("inf")), ValueError, "a must be a finite number"),
    ("uniform_", dict(a=1.0, b=0.0), ValueError, "b must be >= 1, got 0.0"),
    ("uniform_", dict(a=-1e39, b=0.0), ValueError, "a must be within float32's range"),
    ("normal_", dict(std=-0.5), ValueError, "std must be >= 0, got -0.5"),
    ("normal_", dict(mean=float("nan")), ValueError, "mean must be a finite number"),
    ("normal_", dict(std=10**400), ValueError, "std must be a finite number"),
    ("constant_", dict(val=10**400), ValueError, "val must be a finite number"),
    ("constant_", dict(val=None), TypeError, "val must be a real number"),
])
def test_init_rejects_bad_numbers_naming_them(call, kwargs, err, message):
    """Found by the fuzz campaign (F2): huge or infinite options reached NumPy, OverflowError."""
    w = nn.Parameter(np.ones((3, 4)))
    with pytest.raises(err, match=re.escape(message)):
        getattr(nn.init, call)(w, **kwargs)
    assert (w.data == 1).all()


def test_init_extremes_that_are_valid():
    w = nn.Parameter(np.ones((3, 4)))
    assert np.isinf(nn.init.constant_(w, float("-inf")).data).all()   # as torch: a fill
    nn.init.kaiming_uniform_(w, a=1e200)   # gain sqrt(2 / (1 + a^2)) underflows to 0
    assert not w.data.any()
    assert nn.init.calculate_gain("leaky_relu", 1e200) == 0.0
    with pytest.raises(ValueError, match="negative_slope"):   # checked for an empty tensor too
        nn.init.kaiming_uniform_(np.zeros((0, 3), np.float32), a="a", mode="fan_out")


def test_manual_seed_and_rng_state():
    fastnn.manual_seed(11)
    state = fastnn.get_rng_state()
    a = nn.Linear(5, 5).weight.data.copy()
    fastnn.set_rng_state(state)
    np.testing.assert_array_equal(nn.Linear(5, 5).weight.data, a)
    with pytest.raises(TypeError, match="seed"):
        fastnn.manual_seed(1.5)
    with pytest.raises(ValueError, match="get_rng_state"):
        fastnn.set_rng_state({"bit_generator": "MT19937"})


def test_clip_grad(rng):
    params = [nn.Parameter(np.zeros(4)), nn.Parameter(np.zeros((2, 3)))]
    grads = [rand(rng, 4) * 10, rand(rng, 2, 3) * 10]
    for p, g in zip(params, grads):
        p.grad = g
    total = math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))
    assert nn.utils.clip_grad_norm_(params, 1.0) == pytest.approx(total, rel=1e-6)
    new = math.sqrt(sum(float((p.grad.astype(np.float64) ** 2).sum()) for p in params))
    assert new == pytest.approx(1.0, rel=1e-4)
    inf_norm = nn.utils.clip_grad_norm_(params, 100.0, norm_type=float("inf"))
    assert inf_norm == pytest.approx(max(np.abs(p.grad).max() for p in params))
    nn.utils.clip_grad_value_(params[0], 0.1)
    assert np.abs(params[0].grad).max() <= 0.1
    params[1].grad = np.full((2, 3), np.nan)
    with pytest.raises(RuntimeError, match="nan"):
        nn.utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    with pytest.raises(TypeError, match="Parameters"):
        nn.utils.clip_grad_norm_([np.zeros(2)], 1.0)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("cls", [nn.MSELoss, nn.L1Loss, nn.HuberLoss, nn.BCEWithLogitsLoss])
def test_zero_dim_prediction_gets_a_zero_dim_gradient(cls, reduction):
    # as torch's pred.grad: a 0-d float32 array, never a NumPy scalar or a (1,) array
    fn = cls(reduction=reduction)
    fn(np.array(0.3, np.float32), np.array(0.1, np.float32))
    g = fn.backward()
    assert isinstance(g, np.ndarray) and g.shape == () and g.dtype == np.float32
    fn(np.array(0.3, np.float32), np.array(0.1, np.float32))
    assert fn.backward(2.0).shape == ()


@pytest.mark.parametrize("bias", [True, False])
def test_fuse_conv_bn_eval(bias, rng, tmp_path):
    conv, bn = nn.Conv2d(3, 4, 3, padding=1, bias=bias), nn.BatchNorm2d(4)
    bn.weight.data[:] = rand(rng, 4)
    bn.bias.data[:] = rand(rng, 4)
    bn.running_mean[:] = rand(rng, 4)
    bn.running_var[:] = np.abs(rand(rng, 4)) + 0.5
    conv.eval(), bn.eval()
    x = rand(rng, 2, 3, 5, 5)
    fused = nn.utils.fuse_conv_bn_eval(conv, bn)
    np.testing.assert_allclose(fused(x), bn(conv(x)), rtol=1e-5, atol=1e-5)
    assert conv.bias is None if not bias else conv.bias is not fused.bias  # conv untouched
    fastnn.save(fused, tmp_path / "fused.safetensors")   # a bias it was not built with
    again = fastnn.load(tmp_path / "fused.safetensors")
    again.eval()
    np.testing.assert_array_equal(again(x), fused(x))
    with pytest.raises(ValueError, match="eval mode"):
        nn.utils.fuse_conv_bn_eval(conv.train(), bn)


def _conv_bn_net(rng, padding_mode="zeros", track=True, act=True, bias=True, conv=nn.Conv2d,
                 norm=nn.BatchNorm2d):
    net = nn.Sequential(conv(3, 4, 3, padding=1, bias=bias, padding_mode=padding_mode),
                        norm(4, track_running_stats=track), *([nn.ReLU()] if act else []),
                        nn.Flatten())
    bn = net[1]
    bn.weight.data[:] = rand(rng, 4)
    bn.bias.data[:] = rand(rng, 4)
    if track:
        bn.running_mean[:] = rand(rng, 4)
        bn.running_var[:] = np.abs(rand(rng, 4)) + 0.5
    return net


@pytest.mark.parametrize("options", [{}, {"act": False}, {"bias": False},
                                     {"padding_mode": "reflect"}, {"track": False},
                                     {"conv": nn.Conv1d, "norm": nn.BatchNorm1d}])
def test_sequential_folds_conv_batchnorm_in_eval_without_grad(options, rng, monkeypatch):
    """Conv + BatchNorm (+ ReLU) in eval mode without gradients is one convolution with
    the running statistics folded into the weights; the same outputs as module by module,
    and training, eval with gradients (and backward) or no running statistics unchanged."""
    net = _conv_bn_net(rng, **options)
    x = rand(rng, 2, 3, 6) if options.get("conv") is nn.Conv1d else rand(rng, 2, 3, 6, 6)

    def by_module(x):
        for m in net:
            x = m(x)
        return x

    net.eval()
    want = by_module(x)
    folded = options.get("track", True)
    calls = []
    # forward runs through forward_fused, which Sequential calls when it fuses the ReLU
    monkeypatch.setattr(net[1], "forward_fused", lambda y, e: calls.append(1) or
                        type(net[1]).forward_fused(net[1], y, e))
    with fastnn.no_grad():
        got = net(x)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert calls == ([] if folded else [1])  # the BatchNorm ran only when not folded
    calls.clear()
    y = net(x)  # eval with gradients: module by module, with a backward
    assert calls == [1]
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    dx = net.backward(np.ones_like(y))
    assert dx.shape == x.shape
    net.train()
    with fastnn.no_grad():
        net(x)  # training: batch statistics, never folded
    assert calls == [1, 1]


@pytest.mark.parametrize("make", [
    lambda rng: _conv_bn_net(rng),
    lambda rng: _conv_bn_net(rng, track=False),
    lambda rng: _conv_bn_net(rng, conv=nn.Conv1d, norm=nn.BatchNorm1d),
    lambda rng: nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 2)),
], ids=["conv2d", "no-running-stats", "conv1d", "linear-bn1d"])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_sequential_runs_batchnorm_relu_as_one_call(make, mode, rng):
    """BatchNorm + ReLU in a Sequential (after a Conv or not) is one fused call each way:
    the ReLU never runs, and outputs, input and parameter gradients and running statistics
    equal module by module bitwise, in training and in eval with gradients."""
    net, ref = make(np.random.default_rng(5)), make(np.random.default_rng(5))
    ref.load_state_dict(net.state_dict())
    for m in (net, ref):
        m.train(mode == "train")
    relu = next(m for m in net if isinstance(m, nn.ReLU))
    relu.forward = relu.backward = None  # the fused step never calls them
    x = rand(rng, 4, 3, 6, 6) if isinstance(net[0], nn.Conv2d) else (
        rand(rng, 4, 3, 6) if isinstance(net[0], nn.Conv1d) else rand(rng, 4, 5))
    y = net(x)
    h = x
    for m in ref:
        h = m(h)
    np.testing.assert_array_equal(y, h)
    g = np.cos(y).astype(np.float32)
    dx = net.backward(g)
    for m in reversed(list(ref)):
        g = m.backward(g)
    np.testing.assert_array_equal(dx, g)
    for (name, p), (_, q) in zip(net.named_parameters(), ref.named_parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)
    for (name, a), (_, b) in zip(net.named_buffers(), ref.named_buffers()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_batchnorm_forward_fused_refuses_other_epilogues(rng):
    with pytest.raises(ValueError, match="epilogue"):
        nn.BatchNorm1d(3).forward_fused(rand(rng, 4, 3), "gelu")


def test_sequential_conv_batchnorm_fold_matches_torch(rng):
    torch = pytest.importorskip("torch")
    net = _conv_bn_net(rng)
    theirs = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4),
                                 torch.nn.ReLU(), torch.nn.Flatten())
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                            net.state_dict().items()})
    net.eval(), theirs.eval()
    x = rand(rng, 2, 3, 6, 6)
    with fastnn.no_grad(), torch.no_grad():
        np.testing.assert_allclose(net(x), theirs(torch.from_numpy(x)).numpy(),
                                   rtol=1e-5, atol=1e-6)


def test_subclass_rewriting_forward_does_not_fold():
    class MyConv(nn.Conv2d):
        def forward(self, x):
            return super().forward(x) * 2

    class MyNorm(nn.BatchNorm2d):
        def forward(self, x):
            return super().forward(x) + 1

    assert MyConv.folds == () and MyNorm.foldable is None
    assert nn.BatchNorm2d.foldable in nn.Conv2d.folds
    assert nn.BatchNorm1d.foldable in nn.Conv1d.folds
    assert nn.BatchNorm1d.foldable not in nn.Conv2d.folds  # ranks differ: never folded


def test_conv_batchnorm_fold_keeps_module_errors(rng):
    net = _conv_bn_net(rng).eval()
    with fastnn.no_grad(), pytest.raises(ValueError, match="BatchNorm2d"):
        net(rand(rng, 3, 6, 6))  # unbatched: BatchNorm2d refuses it, folded or not
    odd = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm1d(4)).eval()
    with fastnn.no_grad(), pytest.raises(ValueError, match="BatchNorm1d"):
        odd(rand(rng, 2, 3, 6, 6))
