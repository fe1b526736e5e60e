"""fastnn.optim without torch: each optimizer against a float64 NumPy
reference of torch.optim's update, and the Optimizer mechanics (param
groups, flat buffers, state_dict, frozen parameters, errors)."""
import numpy as np
import pytest

from fastnn import nn, optim

import reference as ref


def reference_steps(kind, opts, p0, grads):
    """torch.optim's update rules (tests/reference.py) in float64 over a list of gradients."""
    p = p0.astype(np.float64).copy()
    state = [np.zeros_like(p) for _ in range(3)]
    lr, wd = opts["lr"], opts.get("weight_decay", 0.0)
    for t, g in enumerate(grads, start=1):
        if kind == "sgd":
            ref.sgd_step(p, g, state[0], lr, opts.get("momentum", 0.0), opts.get("dampening", 0.0),
                         opts.get("nesterov", False), wd, first_step=t == 1)
        elif kind in ("adam", "adamw"):
            b1, b2 = opts.get("betas", (0.9, 0.999))
            ref.adam_step(p, g, state[0], state[1], t, lr, b1, b2, opts.get("eps", 1e-8), wd,
                          decoupled=kind == "adamw",
                          max_exp_avg_sq=state[2] if opts.get("amsgrad") else None)
        else:
            ref.rmsprop_step(p, g, state[0], lr, opts.get("alpha", 0.99), opts.get("eps", 1e-8), wd,
                             opts.get("momentum", 0.0),
                             grad_avg=state[1] if opts.get("centered") else None,
                             momentum_buf=state[2])
    return p


CASES = [
    ("sgd", optim.SGD, {"lr": 0.1}),
    ("sgd", optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    ("sgd", optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("adam", optim.Adam, {"lr": 0.01}),
    ("adam", optim.Adam, {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "amsgrad": True}),
    ("adamw", optim.AdamW, {"lr": 0.01, "weight_decay": 0.1}),
    ("rmsprop", optim.RMSprop, {"lr": 0.01}),
    ("rmsprop", optim.RMSprop, {"lr": 0.01, "momentum": 0.9, "centered": True,
                                "weight_decay": 0.01}),
]


@pytest.mark.parametrize("kind,cls,opts", CASES, ids=lambda v: str(v)[:40])
def test_optimizer_matches_reference(kind, cls, opts):
    rng = np.random.default_rng(0)
    a, b = nn.Parameter(rng.standard_normal((3, 4))), nn.Parameter(rng.standard_normal(5))
    starts = [a.data.copy(), b.data.copy()]
    opt = cls([a, b], **opts)
    grads = [[rng.standard_normal(p.shape).astype(np.float32) for p in (a, b)]
             for _ in range(10)]
    for gs in grads:
        opt.zero_grad()
        for p, g in zip((a, b), gs):
            p.grad += g
        opt.step()
    for i, p in enumerate((a, b)):
        ref = reference_steps(kind, {**opts, **({"weight_decay": 0.01}
                                                if kind == "adamw" and "weight_decay" not in opts
                                                else {})},
                              starts[i], [gs[i] for gs in grads])
        np.testing.assert_allclose(p.data, ref, rtol=2e-5, atol=2e-6)


def test_param_groups_flat_buffers_and_zero_grad():
    l1, l2 = nn.Linear(3, 4), nn.Linear(4, 2)
    opt = optim.SGD([{"params": l1.parameters(), "lr": 0.5}, {"params": l2.parameters()}],
                    lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.1]
    buf = l1.weight._flat
    assert buf is l1.bias._flat and buf.data.size == 16 and l2.weight._flat is not buf
    w0 = l1.weight.data.copy()
    for p in list(l1.parameters()) + list(l2.parameters()):
        p.grad = np.ones(p.shape)
    opt.step()
    np.testing.assert_allclose(l1.weight.data, w0 - 0.5, rtol=1e-6)
    opt.zero_grad()
    assert not any(p.grad.any() for p in list(l1.parameters()) + list(l2.parameters()))
    opt.param_groups[1]["lr"] = 0.0  # a changed lr is used by the next step
    w2 = l2.weight.data.copy()
    l2.weight.grad = np.ones((2, 4))
    opt.step()
    np.testing.assert_array_equal(l2.weight.data, w2)


def test_moved_parameters_are_followed():
    lin = nn.Linear(2, 2)
    opt = optim.SGD(lin.parameters(), lr=1.0)
    # a group that is not a consecutive run of lin's buffer moves bias into another
    # buffer (a run, such as [lin.bias] alone, would get a view and stay put)
    other = optim.SGD([lin.bias, nn.Linear(1, 1).weight], lr=1.0)
    assert lin.bias._flat is not lin.weight._flat
    lin.bias.grad = np.ones(2)
    b0 = lin.bias.data.copy()
    opt.step()
    np.testing.assert_allclose(lin.bias.data, b0 - 1)
    assert other.param_groups[0]["params"][0] is lin.bias


def test_frozen_parameters_are_not_updated():
    lin = nn.Linear(3, 3)
    opt = optim.Adam(lin.parameters(), lr=0.1, weight_decay=0.1)
    lin.weight.requires_grad = False
    w0, b0 = lin.weight.data.copy(), lin.bias.data.copy()
    lin.bias.grad = np.ones(3)
    opt.step()
    np.testing.assert_array_equal(lin.weight.data, w0)
    assert not np.array_equal(lin.bias.data, b0)


@pytest.mark.parametrize("cls,opts", [(optim.SGD, {"lr": 0.1, "momentum": 0.9}),
                                      (optim.Adam, {"amsgrad": True}),
                                      (optim.RMSprop, {"centered": True, "momentum": 0.5})])
def test_state_dict_round_trip_continues_bitwise(cls, opts):
    rng = np.random.default_rng(1)
    grads = [rng.standard_normal(4).astype(np.float32) for _ in range(6)]
    init = rng.standard_normal(4)

    def run(split):
        p = nn.Parameter(init)
        opt = cls([p], **opts)
        for i, g in enumerate(grads):
            if i == split:
                sd = opt.state_dict()
                p = nn.Parameter(p.data)
                opt = cls([p], lr=123.0)
                opt.load_state_dict(sd)
            opt.zero_grad()
            p.grad = g
            opt.step()
        return p.data

    np.testing.assert_array_equal(run(None), run(3))


def test_state_dict_layout():
    lin = nn.Linear(2, 3)
    opt = optim.Adam([{"params": [lin.weight]}, {"params": [lin.bias], "lr": 0.5}])
    assert opt.state_dict()["state"] == {}
    lin.weight.grad = np.ones((3, 2))
    opt.step()
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1]
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert sd["state"][0]["exp_avg"].shape == (3, 2) and sd["state"][0]["step"] == 1.0
    assert sd["param_groups"][1]["params"] == [1] and sd["param_groups"][1]["lr"] == 0.5
    with pytest.raises(ValueError, match="param groups"):
        optim.Adam(lin.parameters()).load_state_dict(sd)
    with pytest.raises(ValueError, match="'state'"):
        opt.load_state_dict({})


def test_constructor_errors():
    p = nn.Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="single Parameter"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="fastnn Parameters"):
        optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match=r"betas\[1\]"):
        optim.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="alpha"):
        optim.RMSprop([p], alpha=1.5)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    with pytest.raises(TypeError, match="real number"):
        optim.Adam([p], lr="fast")
    opt = optim.SGD([p], lr=0.1)
    opt.param_groups[0]["lr"] = -5
    with pytest.raises(ValueError, match="lr"):
        opt.step()
    assert "Parameter Group 0" in repr(opt)


def test_sgd_momentum_buffer_starts_at_the_gradient_when_switched_on_later():
    p = nn.Parameter(np.zeros(3))
    opt = optim.SGD([p], lr=1.0)
    p.grad = np.ones(3)
    opt.step()  # plain SGD: no buffer yet
    opt.param_groups[0].update(momentum=0.9, dampening=0.5)
    p.grad = np.full(3, 2.0)
    opt.step()  # torch: the buffer starts as this gradient, undamped
    np.testing.assert_allclose(p.data, -1.0 - 2.0)
