"""PyTorch parity of fastnn.optim on a whole training loop: the same small MLP
(fastnn Sequential and torch Sequential with identical initial weights) trained
on the same fixed batches for 20 steps of zero_grad / forward / CrossEntropy /
backward / step must end with the same parameters (to 1e-4 relative), with
the same optimizer state under torch.optim's names; state_dict round trips,
param groups and frozen parameters included."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastnn import nn, optim  # noqa: E402
from test_nn_torch import torch_setup  # noqa: E402,F401 - autouse: seeds, one torch thread

STEPS = 20
RTOL, ATOL = 1e-4, 1e-6


def build(m):
    return m.Sequential(m.Linear(10, 16), m.ReLU(), m.Linear(16, 12), m.Tanh(), m.Linear(12, 4))


def make_pair():
    """A torch MLP and a fastnn MLP holding the same weights (the same on every call)."""
    torch.manual_seed(0)
    tm = build(torch.nn)
    fm = build(nn)
    fm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return fm, tm


@pytest.fixture(scope="module")
def batches():
    rng = np.random.default_rng(7)
    xs = (1.5 * rng.standard_normal((STEPS, 8, 10))).astype(np.float32)
    ys = rng.integers(0, 4, (STEPS, 8))
    return list(zip(xs, ys))


def train_torch(tm, opt, batches):
    loss_fn = torch.nn.CrossEntropyLoss()
    for x, y in batches:
        opt.zero_grad()
        loss = loss_fn(tm(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        opt.step()


def train_fastnn(fm, opt, batches):
    loss_fn = nn.CrossEntropyLoss()
    for x, y in batches:
        opt.zero_grad()
        loss_fn(fm(x), y)
        fm.backward(loss_fn.backward(), input_grad=False)
        opt.step()


def assert_params_close(fm, tm, rtol=RTOL, atol=ATOL):
    tparams = dict(tm.named_parameters())
    fparams = dict(fm.named_parameters())
    assert list(fparams) == list(tparams)
    for name, p in fparams.items():
        np.testing.assert_allclose(p.data, tparams[name].detach().numpy(), rtol=rtol, atol=atol,
                                   err_msg=name)


def opt_case(cls, **kw):
    name = cls if isinstance(cls, str) else cls.__name__
    return pytest.param(name, kw, id=f"{name}-" + ",".join(f"{k}={v}" for k, v in kw.items()))


CASES = [
    opt_case("SGD", lr=0.1),
    opt_case("SGD", lr=0.1, momentum=0.9),
    opt_case("SGD", lr=0.1, momentum=0.9, dampening=0.5),
    opt_case("SGD", lr=0.05, momentum=0.9, nesterov=True),
    opt_case("SGD", lr=0.1, weight_decay=0.05),
    opt_case("SGD", lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.01),
    opt_case("Adam", lr=1e-2),
    opt_case("Adam", lr=1e-2, weight_decay=0.1),
    opt_case("Adam", lr=1e-2, amsgrad=True),
    opt_case("Adam", lr=5e-3, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.05, amsgrad=True),
    opt_case("AdamW", lr=1e-2),
    opt_case("AdamW", lr=1e-2, weight_decay=0.1),
    opt_case("AdamW", lr=1e-2, weight_decay=0.1, amsgrad=True),
    # RMSprop's first steps move every weight by about lr / sqrt(1 - alpha) = 10 lr
    # whatever its gradient; at lr 1e-2 with momentum 0.9 this MLP's run is so
    # sensitive that torch float32 and torch float64 differ by 3e-4 after 20 steps
    opt_case("RMSprop", lr=1e-3),
    opt_case("RMSprop", lr=1e-3, momentum=0.9),
    opt_case("RMSprop", lr=1e-3, centered=True),
    opt_case("RMSprop", lr=5e-3, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01),
    opt_case("NAdam", lr=1e-2),
    opt_case("NAdam", lr=1e-2, weight_decay=0.1, momentum_decay=6e-3),
    opt_case("NAdam", lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
    opt_case("Adadelta"),
    opt_case("Adadelta", lr=0.5, rho=0.95, weight_decay=0.1, maximize=True),
    opt_case("ASGD", lr=0.05),
    opt_case("ASGD", lr=0.05, lambd=0.1, t0=5, weight_decay=0.1),
    opt_case("Rprop", lr=1e-3),
    opt_case("Rprop", lr=1e-3, etas=(0.4, 1.5), step_sizes=(1e-5, 0.01), maximize=True),
]
STATE_NAMES = {"SGD": {"momentum_buffer"},
               "Adam": {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
               "AdamW": {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
               "RMSprop": {"square_avg", "momentum_buffer", "grad_avg"},
               "NAdam": {"mu_product", "exp_avg", "exp_avg_sq"},
               "Adadelta": {"square_avg", "acc_delta"},
               "ASGD": {"eta", "mu", "ax"},
               "Rprop": {"prev", "step_size"}}


def make_opts(name, kw, fparams, tparams):
    return getattr(optim, name)(fparams, **kw), getattr(torch.optim, name)(tparams, **kw)


@pytest.mark.parametrize("name, kw", CASES)
def test_training_matches_torch(batches, name, kw):
    fm, tm = make_pair()
    fopt, topt = make_opts(name, kw, fm.parameters(), tm.parameters())
    train_fastnn(fm, fopt, batches)
    train_torch(tm, topt, batches)
    assert_params_close(fm, tm)
    # the optimizer state: torch.optim's names, shapes and values
    fsd, tsd = fopt.state_dict(), topt.state_dict()
    assert sorted(fsd["state"]) == sorted(tsd["state"])  # plain SGD: no entries, as torch
    for i, fstate in fsd["state"].items():
        tstate = tsd["state"][i]
        assert list(fstate) == list(tstate)  # torch's order too
        assert set(fstate) - {"step"} <= STATE_NAMES[name]
        if "step" in tstate:
            assert float(fstate["step"]) == float(tstate["step"]) == STEPS
        for key, want in tstate.items():
            if key != "step":
                got = fstate[key]
                assert isinstance(got, np.ndarray) and got.dtype == np.float32
                assert got.shape == tuple(want.shape)
                scale = float(want.abs().max())
                np.testing.assert_allclose(got, want.numpy(), rtol=1e-3, atol=1e-4 * scale,
                                           err_msg=f"{i}.{key}")
    for fg, tg in zip(fsd["param_groups"], tsd["param_groups"]):
        assert fg["params"] == tg["params"]
        for key, value in fg.items():
            assert value == tg[key], key


@pytest.mark.parametrize("name, kw", [opt_case("SGD", lr=0.1, momentum=0.9),
                                      opt_case("Adam", lr=1e-3, weight_decay=0.01),
                                      opt_case("AdamW", lr=1e-3, amsgrad=True),
                                      opt_case("RMSprop", lr=1e-3, centered=True, momentum=0.5)])
def test_param_groups_own_lr(batches, name, kw):
    # the first layer with lr 1e-2, the rest with the optimizer's default
    def groups(model):
        params = list(model.parameters())
        return [{"params": params[:2], "lr": 1e-2}, {"params": params[2:]}]

    fm, tm = make_pair()
    fopt, topt = make_opts(name, kw, groups(fm), groups(tm))
    assert [g["lr"] for g in fopt.param_groups] == [g["lr"] for g in topt.param_groups]
    train_fastnn(fm, fopt, batches)
    train_torch(tm, topt, batches)
    assert_params_close(fm, tm)
    fsd, tsd = fopt.state_dict(), topt.state_dict()
    assert [g["params"] for g in fsd["param_groups"]] == [[0, 1], [2, 3, 4, 5]]
    assert [g["params"] for g in fsd["param_groups"]] == [g["params"] for g in tsd["param_groups"]]


@pytest.mark.parametrize("name, kw", [opt_case("SGD", lr=0.1, momentum=0.9, weight_decay=0.1),
                                      opt_case("Adam", lr=1e-2, weight_decay=0.1),
                                      opt_case("AdamW", lr=1e-2, weight_decay=0.1),
                                      opt_case("RMSprop", lr=1e-2, weight_decay=0.1),
                                      opt_case("NAdam", lr=1e-2, weight_decay=0.1),
                                      opt_case("ASGD", lr=0.05, t0=5, weight_decay=0.1),
                                      opt_case("Rprop", lr=1e-3)])
def test_frozen_parameters(batches, name, kw):
    # requires_grad=False: no gradient in torch (grad None, skipped by step, even by
    # weight decay); fastnn skips the parameter too
    fm, tm = make_pair()
    for model, freeze in ((tm, lambda p: p.requires_grad_(False)),
                          (fm, lambda p: setattr(p, "requires_grad", False))):
        freeze(model[0].weight)
        freeze(model[2].bias)
    w0, b2 = fm[0].weight.data.copy(), fm[2].bias.data.copy()
    fopt, topt = make_opts(name, kw, fm.parameters(), tm.parameters())
    train_fastnn(fm, fopt, batches)
    train_torch(tm, topt, batches)
    assert tm[0].weight.grad is None and tm[2].bias.grad is None
    np.testing.assert_array_equal(fm[0].weight.data, w0)
    np.testing.assert_array_equal(fm[2].bias.data, b2)
    assert_params_close(fm, tm)
    # no state for the frozen ones, as torch
    assert sorted(fopt.state_dict()["state"]) == sorted(topt.state_dict()["state"]) == [1, 2, 4, 5]


@pytest.mark.parametrize("name, kw", [
    opt_case("SGD", lr=0.1, momentum=0.9),
    opt_case("RMSprop", lr=1e-3, momentum=0.9, centered=True),
    opt_case("SGD", lr=0.1, momentum=0.9, dampening=0.5),
    opt_case("Adam", lr=1e-2),
    opt_case("AdamW", lr=1e-2),
    opt_case("NAdam", lr=1e-2),
    opt_case("ASGD", lr=0.05, t0=5),
    opt_case("Rprop", lr=1e-3),
])
def test_unfreeze_after_steps(batches, name, kw):
    # fine-tuning: the first layer frozen for 10 steps, then trained with the rest; as
    # torch, its state (Adam's step count for the bias corrections, SGD's momentum
    # buffer = the first gradient) starts at its own first step with a gradient
    fm, tm = make_pair()
    fopt, topt = make_opts(name, kw, fm.parameters(), tm.parameters())
    for flag in (False, True):
        for p in (tm[0].weight, tm[0].bias):
            p.requires_grad_(flag)
        for p in (fm[0].weight, fm[0].bias):
            p.requires_grad = flag
        part = batches[10:] if flag else batches[:10]
        train_fastnn(fm, fopt, part)
        train_torch(tm, topt, part)
    assert_params_close(fm, tm)
    fsd, tsd = fopt.state_dict(), topt.state_dict()
    for i, tstate in tsd["state"].items():
        if "step" in tstate:  # 10 for the first layer, 20 for the rest
            assert fsd["state"][i]["step"] == float(tstate["step"]) == (10 if i < 2 else 20)


@pytest.mark.parametrize("name, kw", [opt_case("SGD", lr=0.1, momentum=0.9, nesterov=True),
                                      opt_case("Adam", lr=1e-2, amsgrad=True),
                                      opt_case("AdamW", lr=1e-2),
                                      opt_case("RMSprop", lr=1e-3, momentum=0.9, centered=True),
                                      opt_case("NAdam", lr=1e-2, weight_decay=0.1),
                                      opt_case("Adadelta", lr=0.5),
                                      opt_case("ASGD", lr=0.05, t0=5),
                                      opt_case("Rprop", lr=1e-3)])
def test_state_dict_round_trip_mid_training(batches, name, kw):
    # uninterrupted: 20 steps
    fm, _ = make_pair()
    opt = getattr(optim, name)(fm.parameters(), **kw)
    train_fastnn(fm, opt, batches)
    # interrupted after 10: save, build everything again, load, continue
    fm1, _ = make_pair()
    opt1 = getattr(optim, name)(fm1.parameters(), **kw)
    train_fastnn(fm1, opt1, batches[:10])
    model_sd, opt_sd = fm1.state_dict(), opt1.state_dict()
    saved = {i: {k: np.array(v, copy=True) for k, v in s.items()}
             for i, s in opt_sd["state"].items()}
    train_fastnn(fm1, opt1, batches[10:])  # the saved copies stay as they were
    for i, s in saved.items():
        for k, v in s.items():
            np.testing.assert_array_equal(opt_sd["state"][i][k], v)
    fm2 = build(nn)
    fm2.load_state_dict(model_sd)
    opt2 = getattr(optim, name)(fm2.parameters(), **kw)
    opt2.load_state_dict(opt_sd)
    train_fastnn(fm2, opt2, batches[10:])
    for (key, p), p1, p2 in zip(fm.named_parameters(), fm1.parameters(), fm2.parameters()):
        np.testing.assert_array_equal(p1.data, p.data, err_msg=key)
        np.testing.assert_array_equal(p2.data, p.data, err_msg=key)
    final, final2 = opt.state_dict(), opt2.state_dict()
    for i, s in final["state"].items():
        for k, v in s.items():
            np.testing.assert_array_equal(final2["state"][i][k], v)


def to_torch_state(sd):
    """A fastnn optimizer state_dict with tensors, as torch.optim loads it."""
    state = {i: {k: torch.tensor(v) for k, v in s.items()} for i, s in sd["state"].items()}
    return {"state": state, "param_groups": sd["param_groups"]}


HANDOVER = [opt_case("SGD", lr=0.1, momentum=0.9), opt_case("SGD", lr=0.1),
            opt_case("Adam", lr=1e-2, amsgrad=True), opt_case("AdamW", lr=1e-2),
            opt_case("RMSprop", lr=1e-3, momentum=0.9, centered=True),
            opt_case("NAdam", lr=1e-2, weight_decay=0.1), opt_case("Adadelta", lr=0.5),
            opt_case("ASGD", lr=0.05, t0=5), opt_case("Rprop", lr=1e-3)]


@pytest.mark.parametrize("name, kw", HANDOVER)
def test_state_dict_fastnn_to_torch(batches, name, kw):
    # 10 steps in fastnn, the rest in torch; against 20 steps in torch
    fm, tm = make_pair()
    fopt, topt = make_opts(name, kw, fm.parameters(), tm.parameters())
    train_fastnn(fm, fopt, batches[:10])
    train_torch(tm, topt, batches)
    tm2 = build(torch.nn)
    tm2.load_state_dict({k: torch.from_numpy(v) for k, v in fm.state_dict().items()})
    topt2 = getattr(torch.optim, name)(tm2.parameters(), **kw)
    topt2.load_state_dict(to_torch_state(fopt.state_dict()))
    train_torch(tm2, topt2, batches[10:])
    for (key, p), q in zip(tm.named_parameters(), tm2.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=RTOL, atol=ATOL,
                                   err_msg=key)


@pytest.mark.parametrize("name, kw", HANDOVER)
def test_state_dict_torch_to_fastnn(batches, name, kw):
    # 10 steps in torch, the rest in fastnn; against 20 steps in torch
    fm, tm = make_pair()
    topt = getattr(torch.optim, name)(tm.parameters(), **kw)
    train_torch(tm, topt, batches[:10])
    fm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    fopt = getattr(optim, name)(fm.parameters(), **kw)
    fopt.load_state_dict(topt.state_dict())
    train_fastnn(fm, fopt, batches[10:])
    train_torch(tm, topt, batches[10:])
    assert_params_close(fm, tm)


ALL = ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adamax", "RAdam", "NAdam", "Adadelta",
       "ASGD", "Rprop"]


@pytest.mark.parametrize("name", ALL)
def test_param_group_options_are_torchs(name):
    """The same option names as torch's param groups (maximize and the implementation
    switches included), with the same defaults."""
    fopt = getattr(optim, name)([nn.Parameter(np.zeros(2, np.float32))])
    topt = getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(2))])
    fg, tg = fopt.param_groups[0], topt.param_groups[0]
    assert set(fg) == set(tg)
    for key in set(tg) - {"params"}:
        want = tg[key]
        assert (tuple(fg[key]) if isinstance(fg[key], (tuple, list)) else fg[key]) == \
            (tuple(want) if isinstance(want, (tuple, list)) else want), key


@pytest.mark.parametrize("name", ALL)
def test_implementation_switches(name):
    import inspect
    cls = getattr(optim, name)
    takes = inspect.signature(cls).parameters
    assert list(takes) == list(inspect.signature(getattr(torch.optim, name)).parameters)
    p = [nn.Parameter(np.zeros(2, np.float32))]
    lr = {"lr": 0.1}
    cls(p, foreach=True, **lr), cls(p, foreach=False, **lr)   # accepted, no effect
    if "fused" in takes:
        cls(p, fused=True, **lr)
    with pytest.raises(ValueError, match="differentiable=True needs autograd"):
        cls(p, differentiable=True, **lr)
    if "capturable" in takes:
        with pytest.raises(ValueError, match="capturable=True is for CUDA graphs"):
            cls(p, capturable=True, **lr)
    with pytest.raises(TypeError, match="maximize must be True or False"):
        cls(p, maximize="yes", **lr)
    with pytest.raises(TypeError, match="foreach must be True or False"):
        cls(p, foreach=1, **lr)
