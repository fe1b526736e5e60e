"""fastnn.optim.lr_scheduler: hand-computed lr sequences, state round trips,
argument checks, and (with torch installed) the lr and momentum / beta1
sequences of torch.optim.lr_scheduler over many steps, to 1e-6 relative.
"""
import json
import math

import numpy as np
import pytest

from fastnn import nn, optim
from fastnn.optim import lr_scheduler as L
from fastnn.optim.optimizer import Optimizer

OPTIMIZERS = {"sgd": optim.SGD, "adam": optim.Adam, "adamw": optim.AdamW,
              "rmsprop": optim.RMSprop}


def make_opt(kind="sgd", lrs=(1.0,), **options):
    """A fastnn optimizer with one param group per lr in lrs."""
    groups = [{"params": [nn.Parameter(np.zeros(2, np.float32))], "lr": lr} for lr in lrs]
    return OPTIMIZERS[kind](groups, **options)


def lrs_of(opt):
    return [g["lr"] for g in opt.param_groups]


def momenta_of(opt):
    return [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]


def run(sched, n):
    """get_last_lr() after construction, then after each of n steps."""
    seq = [sched.get_last_lr()]
    for _ in range(n):
        sched.step()
        seq.append(sched.get_last_lr())
    return seq


def close(actual, expected, rel=1e-9):
    np.testing.assert_allclose(np.asarray(actual, float), np.asarray(expected, float),
                               rtol=rel, atol=0)


def cos_anneal(start, end, pct):
    return end + (start - end) * (1 + math.cos(math.pi * pct)) / 2


# ---- hand-computed sequences --------------------------------------------------------
def test_step_lr():
    opt = make_opt(lrs=(1.0,))
    assert run(L.StepLR(opt, step_size=2, gamma=0.5), 6) == \
        [[1.0], [1.0], [0.5], [0.5], [0.25], [0.25], [0.125]]
    assert lrs_of(opt) == [0.125]


def test_multistep_lr_repeated_milestone():
    opt = make_opt(lrs=(1.0,))
    close(run(L.MultiStepLR(opt, milestones=[4, 2, 4], gamma=0.1), 5),
          [[1], [1], [0.1], [0.1], [1e-3], [1e-3]])


def test_exponential_lr():
    opt = make_opt(lrs=(2.0,))
    close(run(L.ExponentialLR(opt, gamma=0.5), 4), [[2.0 * 0.5 ** t] for t in range(5)])


@pytest.mark.parametrize("T_max,eta_min", [(1, 0.0), (4, 0.0), (5, 0.1)])
def test_cosine_annealing_closed_form(T_max, eta_min):
    opt = make_opt(lrs=(1.0,))
    expected = [[eta_min + (1 - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2]
                for t in range(3 * T_max + 1)]
    np.testing.assert_allclose(run(L.CosineAnnealingLR(opt, T_max, eta_min), 3 * T_max),
                               expected, rtol=1e-9, atol=1e-15)


def test_linear_lr():
    opt = make_opt(lrs=(0.6,))
    expected = [[0.6 * (0.25 + 0.5 * min(t, 4) / 4)] for t in range(7)]
    close(run(L.LinearLR(opt, start_factor=0.25, end_factor=0.75, total_iters=4), 6),
          expected)
    close(run(L.LinearLR(make_opt(lrs=(0.3,))), 6),
          [[0.3 * (1 / 3 + 2 / 3 * min(t, 5) / 5)] for t in range(7)])


def test_one_cycle_two_phase_cos_with_sgd_momentum():
    opt = make_opt(lrs=(0.5,), momentum=0.0)
    sched = L.OneCycleLR(opt, max_lr=1.0, total_steps=10)  # pct 0.3: rise over steps 0-2
    lrs, moms = [], []
    for t in range(10):
        lrs.append(sched.get_last_lr()[0])
        moms.append(momenta_of(opt)[0])
        if t < 9:
            sched.step()
    top, low = 1.0 / 25, 1.0 / 25 / 1e4
    for t in range(10):
        pct = t / 2 if t <= 2 else (t - 2) / 7
        lr = cos_anneal(top, 1.0, pct) if t <= 2 else cos_anneal(1.0, low, pct)
        mom = cos_anneal(0.95, 0.85, pct) if t <= 2 else cos_anneal(0.85, 0.95, pct)
        assert lrs[t] == pytest.approx(lr, rel=1e-9) and moms[t] == pytest.approx(mom, rel=1e-9)
    g = opt.param_groups[0]
    assert (g["initial_lr"], g["max_lr"], g["max_momentum"], g["base_momentum"]) == \
        (top, 1.0, 0.95, 0.85)
    assert g["min_lr"] == pytest.approx(low)


def test_one_cycle_three_phase_linear_with_adam_betas():
    opt = make_opt("adam", lrs=(0.1,), betas=(0.9, 0.99))
    sched = L.OneCycleLR(opt, max_lr=2.0, epochs=2, steps_per_epoch=5, pct_start=0.3,
                         anneal_strategy="linear", three_phase=True, div_factor=4.0,
                         final_div_factor=10.0, base_momentum=0.8, max_momentum=0.9)
    assert sched.total_steps == 10
    seq = [(sched.get_last_lr()[0], opt.param_groups[0]["betas"])]
    for _ in range(9):
        sched.step()
        seq.append((sched.get_last_lr()[0], opt.param_groups[0]["betas"]))
    # phases end at steps 2, 4, 9: 0.5 -> 2 -> 0.5 -> 0.05; beta1 0.9 -> 0.8 -> 0.9 -> 0.9
    expected_lr = [0.5, 1.25, 2.0, 1.25, 0.5, 0.41, 0.32, 0.23, 0.14, 0.05]
    expected_b1 = [0.9, 0.85, 0.8, 0.85, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
    close([lr for lr, _ in seq], expected_lr)
    close([b[0] for _, b in seq], expected_b1)
    assert all(b[1] == 0.99 and isinstance(b, tuple) for _, b in seq)


def test_one_cycle_past_total_steps_raises_and_keeps_state():
    opt = make_opt(momentum=0.9)
    sched = L.OneCycleLR(opt, max_lr=1.0, total_steps=4)
    for _ in range(4):  # step total_steps is allowed (as torch), one more is not
        sched.step()
    before = (sched.last_epoch, lrs_of(opt), momenta_of(opt))
    with pytest.raises(ValueError, match=r"stepped 5 times, past total_steps=4"):
        sched.step()
    assert (sched.last_epoch, lrs_of(opt), momenta_of(opt)) == before


def test_one_cycle_zero_length_phase_takes_end_value():
    # pct_start * total_steps == 1: torch divides by zero at step 0
    opt = make_opt(momentum=0.9)
    sched = L.OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=0.1)
    assert sched.get_last_lr() == [1.0] and momenta_of(opt) == [0.85]
    sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(cos_anneal(1.0, 1e-4 / 25, 1 / 9))


def test_one_cycle_without_momentum_cycling():
    opt = make_opt(momentum=0.5)
    sched = L.OneCycleLR(opt, max_lr=[0.2], total_steps=5, cycle_momentum=False)
    run(sched, 5)
    assert momenta_of(opt) == [0.5] and "max_momentum" not in opt.param_groups[0]


def test_param_groups_keep_their_own_lr():
    opt = make_opt(lrs=(1.0, 0.1, 0.01))
    sched = L.StepLR(opt, step_size=1, gamma=0.5)
    assert sched.base_lrs == [1.0, 0.1, 0.01]
    assert [g["initial_lr"] for g in opt.param_groups] == [1.0, 0.1, 0.01]
    sched.step()
    close(sched.get_last_lr(), [0.5, 0.05, 0.005])
    opt = make_opt(lrs=(1.0, 0.1))
    sched = L.OneCycleLR(opt, max_lr=[1.0, 0.5], total_steps=20, base_momentum=[0.8, 0.7])
    close(sched.get_last_lr(), [1.0 / 25, 0.5 / 25])
    assert [g["base_momentum"] for g in opt.param_groups] == [0.8, 0.7]


def test_get_last_lr_is_a_copy():
    opt = make_opt(lrs=(1.0,))
    sched = L.ExponentialLR(opt, 0.5)
    sched.get_last_lr().append(3.0)
    assert sched.get_last_lr() == [1.0]


def test_initial_lr_is_kept_and_last_epoch_resumes():
    opt = make_opt(lrs=(1.0,))
    L.StepLR(opt, step_size=2, gamma=0.5)
    opt.param_groups[0]["lr"] = 0.5  # as a checkpoint would restore it
    sched = L.CosineAnnealingLR(opt, T_max=4, last_epoch=1)
    assert sched.base_lrs == [1.0] and sched.last_epoch == 2 and lrs_of(opt) == [0.5]
    sched.step()
    close(sched.get_last_lr(), [(1 + math.cos(math.pi * 3 / 4)) / 2])


# ---- state_dict ----------------------------------------------------------------------
SCHEDULERS = [
    ("step", lambda o: L.StepLR(o, step_size=3, gamma=0.5)),
    ("multistep", lambda o: L.MultiStepLR(o, [2, 5, 5, 7], gamma=0.3)),
    ("exponential", lambda o: L.ExponentialLR(o, 0.8)),
    ("cosine", lambda o: L.CosineAnnealingLR(o, T_max=4, eta_min=0.01)),
    ("linear", lambda o: L.LinearLR(o, 0.2, 0.9, 6)),
    ("onecycle", lambda o: L.OneCycleLR(o, [1.0, 0.5], total_steps=12, three_phase=True)),
]


@pytest.mark.parametrize("name,build", SCHEDULERS, ids=[n for n, _ in SCHEDULERS])
def test_state_dict_round_trip_resumes(name, build):
    opt = make_opt(lrs=(1.0, 0.3), momentum=0.9)
    sched = build(opt)
    for _ in range(5):
        sched.step()
    opt_state = opt.state_dict()
    saved = json.loads(json.dumps(sched.state_dict(), allow_nan=False))
    assert "optimizer" not in saved
    rest = run(sched, 7)[1:]
    opt2 = make_opt(lrs=(1.0, 0.3), momentum=0.9)
    sched2 = build(opt2)  # build, then load the optimizer, then the scheduler
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(saved)
    assert sched2.last_epoch == 5
    moms = []
    resumed = []
    for _ in range(7):
        sched2.step()
        resumed.append(sched2.get_last_lr())
        moms.append(momenta_of(opt2))
    assert resumed == rest
    assert moms[-1] == momenta_of(opt)


def test_multistep_loads_torch_style_counter():
    opt = make_opt(lrs=(1.0,))
    sched = L.MultiStepLR(opt, [9])
    state = sched.state_dict()
    state["milestones"] = {"2": 1, 3: 2}  # a Counter, keys as JSON or pickle leave them
    sched.load_state_dict(state)
    assert sorted(sched.milestones.elements()) == [2, 3, 3]
    assert sched.state_dict()["milestones"] == [2, 3, 3]


def test_load_state_dict_rejects_and_leaves_state_alone():
    opt = make_opt(lrs=(1.0,))
    sched = L.StepLR(opt, step_size=2)
    good = sched.state_dict()
    with pytest.raises(TypeError, match="state_dict must be a dict"):
        sched.load_state_dict([1, 2])
    with pytest.raises(ValueError, match="lacks.*step_size"):
        sched.load_state_dict({k: v for k, v in good.items() if k != "step_size"})
    with pytest.raises(ValueError, match="gamma must be > 0, got -1"):
        sched.load_state_dict({**good, "last_epoch": 7, "gamma": -1})
    with pytest.raises(ValueError, match="base_lrs.*one per param group"):
        sched.load_state_dict({**good, "base_lrs": [1.0, 2.0]})
    assert sched.state_dict() == good


def test_plateau_state_dict_is_strict_json_and_resumes():
    opt = make_opt(lrs=(1.0,))
    sched = L.ReduceLROnPlateau(opt, mode="max", patience=1)
    state = sched.state_dict()
    assert state["best"] is None
    json.dumps(state, allow_nan=False)
    metrics = [1.0, 0.5, 0.5, 2.0, 1.0, 1.0, 1.0]
    sched.step(metrics[0])
    sched.step(metrics[1])
    saved = json.loads(json.dumps(sched.state_dict(), allow_nan=False))
    opt_state = opt.state_dict()
    rest = []
    for m in metrics[2:]:
        sched.step(m)
        rest.append(sched.get_last_lr())
    opt2 = make_opt(lrs=(1.0,))
    sched2 = L.ReduceLROnPlateau(opt2)
    opt2.load_state_dict(opt_state)
    sched2.load_state_dict(saved)
    assert sched2.mode == "max" and sched2.best == 1.0
    resumed = []
    for m in metrics[2:]:
        sched2.step(m)
        resumed.append(sched2.get_last_lr())
    assert resumed == rest
    sched2.load_state_dict({**saved, "best": float("-inf")})  # torch saves the infinity
    assert sched2.best == -math.inf


# ---- ReduceLROnPlateau ---------------------------------------------------------------
def plateau_lrs(metrics, lrs=(1.0,), **kwargs):
    opt = make_opt(lrs=lrs)
    sched = L.ReduceLROnPlateau(opt, **kwargs)
    out = []
    for m in metrics:
        sched.step(m)
        out.append(sched.get_last_lr())
    return out


def test_plateau_patience():
    assert plateau_lrs([5.0] * 7, factor=0.5, patience=2) == \
        [[1.0], [1.0], [1.0], [0.5], [0.5], [0.5], [0.25]]
    # an improvement restarts the count
    assert plateau_lrs([5, 5, 4, 4, 4], factor=0.5, patience=1) == \
        [[1.0], [1.0], [1.0], [1.0], [0.5]]


def test_plateau_cooldown():
    assert plateau_lrs([5.0] * 8, factor=0.5, patience=0, cooldown=2) == \
        [[1.0], [0.5], [0.5], [0.5], [0.25], [0.25], [0.25], [0.125]]


def test_plateau_min_lr_and_eps():
    close(plateau_lrs([1.0] * 4, factor=0.1, patience=0, min_lr=0.05),
          [[1.0], [0.1], [0.05], [0.05]])
    close(plateau_lrs([1.0] * 3, lrs=(1.0, 1.0), factor=0.1, patience=0, min_lr=[0.5, 0.0]),
          [[1.0, 1.0], [0.5, 0.1], [0.5, 0.01]])
    # a reduction smaller than eps is skipped
    assert plateau_lrs([1.0] * 2, lrs=(0.1,), factor=0.5, patience=0, min_lr=0.095,
                       eps=0.01) == [[0.1], [0.1]]


@pytest.mark.parametrize("mode,threshold_mode,not_better,better", [
    ("min", "rel", 9.5, 8.9),    # beat 10 * (1 - 0.1)
    ("min", "abs", 9.95, 9.85),  # beat 10 - 0.1
    ("max", "rel", 10.5, 11.1),  # beat 10 * (1 + 0.1)
    ("max", "abs", 10.05, 10.15),  # beat 10 + 0.1
])
def test_plateau_threshold_modes(mode, threshold_mode, not_better, better):
    opt = make_opt()
    sched = L.ReduceLROnPlateau(opt, mode=mode, threshold=0.1, threshold_mode=threshold_mode)
    sched.step(10.0)
    sched.step(not_better)
    assert (sched.best, sched.num_bad_epochs) == (10.0, 1)
    sched.step(np.float32(better))  # NumPy scalars work as metrics
    assert sched.best == pytest.approx(better) and sched.num_bad_epochs == 0


# ---- bad arguments -------------------------------------------------------------------
class NoMomentum(Optimizer):
    def __init__(self, params, lr=0.1):
        super().__init__(params, dict(lr=lr))

    def check_group(self, group):
        pass

    def state_names(self, group):
        return []

    def update(self, group, data, grad, state, step, fresh):
        data -= group["lr"] * grad


def one(**kw):
    return make_opt(**kw)


BAD = [
    (lambda: L.StepLR(object(), 3), TypeError, "optimizer must be a fastnn.optim.Optimizer"),
    (lambda: L.StepLR(one(), 0), ValueError, "step_size must be >= 1, got 0"),
    (lambda: L.StepLR(one(), 2.5), TypeError, "step_size must be an int, got float 2.5"),
    (lambda: L.StepLR(one(), 2, gamma=0), ValueError, "gamma must be > 0, got 0"),
    (lambda: L.StepLR(one(), 2, gamma="x"), TypeError, "gamma must be a real number, got str"),
    (lambda: L.StepLR(one(), 2, last_epoch=-2), ValueError, "last_epoch must be >= -1, got -2"),
    (lambda: L.StepLR(one(), 2, last_epoch=3), ValueError, r"last_epoch=3 resumes.*initial_lr"),
    (lambda: L.MultiStepLR(one(), 3), TypeError, "milestones must be a list.*int 3"),
    (lambda: L.MultiStepLR(one(), [2, -1]), ValueError, r"milestones\[1\] must be >= 0, got -1"),
    (lambda: L.MultiStepLR(one(), [2], gamma=-0.1), ValueError, "gamma must be > 0"),
    (lambda: L.ExponentialLR(one(), 0.0), ValueError, "gamma must be > 0, got 0.0"),
    (lambda: L.ExponentialLR(one(), float("nan")), ValueError, "gamma must be a finite"),
    (lambda: L.CosineAnnealingLR(one(), 0), ValueError, "T_max must be >= 1, got 0"),
    (lambda: L.CosineAnnealingLR(one(), 10.0), TypeError, "T_max must be an int, got float"),
    (lambda: L.CosineAnnealingLR(one(), 10, eta_min=-1), ValueError, "eta_min must be >= 0"),
    (lambda: L.LinearLR(one(), start_factor=0), ValueError, r"start_factor must be in \(0, 1\]"),
    (lambda: L.LinearLR(one(), start_factor=1.5), ValueError, "start_factor.*got 1.5"),
    (lambda: L.LinearLR(one(), end_factor=1.1), ValueError, r"end_factor must be in \[0, 1\]"),
    (lambda: L.LinearLR(one(), total_iters=-1), ValueError, "total_iters must be >= 0"),
    (lambda: L.OneCycleLR(one(), 1.0), ValueError, "needs total_steps, or both epochs and"),
    (lambda: L.OneCycleLR(one(), 1.0, epochs=3), ValueError, "steps_per_epoch=None"),
    (lambda: L.OneCycleLR(one(), 1.0, total_steps=0), ValueError, "total_steps must be >= 1"),
    (lambda: L.OneCycleLR(one(), 1.0, total_steps=5.0), TypeError, "total_steps must be an int"),
    (lambda: L.OneCycleLR(one(), 1.0, epochs=0, steps_per_epoch=3), ValueError, "epochs must"),
    (lambda: L.OneCycleLR(one(), 1.0, epochs=2, steps_per_epoch=-3), ValueError,
     "steps_per_epoch must be >= 1, got -3"),
    (lambda: L.OneCycleLR(one(), 1.0, 10, pct_start=1.5), ValueError,
     r"pct_start must be in \[0, 1\], got 1.5"),
    (lambda: L.OneCycleLR(one(), 1.0, 10, anneal_strategy="cosine"), ValueError,
     "anneal_strategy must be 'cos' or 'linear', got 'cosine'"),
    (lambda: L.OneCycleLR(one(), [1.0, 2.0], 10), ValueError,
     r"max_lr must be one number or a list with one per param group \(1\), got a list of 2"),
    (lambda: L.OneCycleLR(one(), -1.0, 10), ValueError, "max_lr must be >= 0, got -1.0"),
    (lambda: L.OneCycleLR(one(), 1.0, 10, div_factor=0), ValueError, "div_factor must be > 0"),
    (lambda: L.OneCycleLR(one(), 1.0, 10, final_div_factor=-1), ValueError, "final_div_factor"),
    (lambda: L.OneCycleLR(one(), 1.0, 10, cycle_momentum="yes"), TypeError,
     "cycle_momentum must be True or False, got str 'yes'"),
    (lambda: L.OneCycleLR(one(), 1.0, 10, base_momentum=[0.8, 0.8]), ValueError,
     "base_momentum must be one number or a list"),
    (lambda: L.OneCycleLR(one(), 1.0, 10, max_momentum=-0.5), ValueError,
     "max_momentum must be >= 0, got -0.5"),
    (lambda: L.OneCycleLR(NoMomentum([nn.Parameter(np.zeros(1, np.float32))]), 1.0, 10),
     ValueError, "cycle_momentum=True needs an optimizer with momentum or betas, NoMomentum"),
    (lambda: L.OneCycleLR(one(), 1.0, 10, last_epoch=2), ValueError, "last_epoch=2 resumes"),
    (lambda: L.ReduceLROnPlateau(None), TypeError, "got builtins.NoneType"),
    (lambda: L.ReduceLROnPlateau(one(), mode="mid"), ValueError,
     "mode must be 'min' or 'max', got 'mid'"),
    (lambda: L.ReduceLROnPlateau(one(), threshold_mode="relative"), ValueError,
     "threshold_mode must be 'rel' or 'abs', got 'relative'"),
    (lambda: L.ReduceLROnPlateau(one(), factor=1.0), ValueError,
     r"factor must be in \[0, 1\), got 1.0"),
    (lambda: L.ReduceLROnPlateau(one(), patience=-1), ValueError, "patience must be >= 0"),
    (lambda: L.ReduceLROnPlateau(one(), cooldown=1.5), TypeError, "cooldown must be an int"),
    (lambda: L.ReduceLROnPlateau(one(), threshold=-1e-4), ValueError, "threshold must be >= 0"),
    (lambda: L.ReduceLROnPlateau(one(), min_lr=[0.1, 0.2]), ValueError,
     r"min_lr must be one number or a list with one per param group \(1\), got a list of 2"),
    (lambda: L.ReduceLROnPlateau(one(), min_lr=-1), ValueError, "min_lr must be >= 0"),
    (lambda: L.ReduceLROnPlateau(one(), eps=-1), ValueError, "eps must be >= 0, got -1"),
    (lambda: L.ReduceLROnPlateau(one()).step("low"), TypeError,
     "metrics must be a real number .*got str 'low'"),
]


@pytest.mark.parametrize("build,error,message", BAD, ids=[m[:40] for _, _, m in BAD])
def test_bad_arguments(build, error, message):
    with pytest.raises(error, match=message):
        build()


def test_bad_arguments_leave_the_optimizer_alone():
    opt = make_opt(lrs=(0.5,), momentum=0.3)
    before = [dict(g) for g in opt.param_groups]
    with pytest.raises(ValueError):
        L.OneCycleLR(opt, 1.0, 10, anneal_strategy="cosine")
    with pytest.raises(ValueError):
        L.StepLR(opt, 0)
    assert [dict(g) for g in opt.param_groups] == before


# ---- torch parity --------------------------------------------------------------------
TORCH_CASES = [
    ("StepLR", dict(step_size=3, gamma=0.5), (0.1,), "sgd", 30),
    ("StepLR", dict(step_size=1, gamma=0.9), (0.1, 0.02), "adam", 30),
    ("MultiStepLR", dict(milestones=[2, 5, 5, 9]), (0.1, 0.3), "sgd", 15),
    ("MultiStepLR", dict(milestones=[0, 3], gamma=0.5), (0.1,), "sgd", 10),
    ("ExponentialLR", dict(gamma=0.93), (0.1, 1.0), "sgd", 50),
    ("CosineAnnealingLR", dict(T_max=10), (0.1,), "sgd", 30),
    ("CosineAnnealingLR", dict(T_max=7, eta_min=0.01), (0.1, 0.5), "adam", 21),
    ("CosineAnnealingLR", dict(T_max=1, eta_min=1e-3), (0.1,), "sgd", 3),
    ("CosineAnnealingLR", dict(T_max=100, eta_min=1e-5), (0.1,), "sgd", 300),
    ("LinearLR", dict(), (0.1,), "sgd", 10),
    ("LinearLR", dict(start_factor=0.1, end_factor=0.5, total_iters=8), (0.1, 0.2), "sgd", 15),
    ("LinearLR", dict(start_factor=1.0, end_factor=0.0, total_iters=4), (0.1,), "sgd", 8),
    ("LinearLR", dict(start_factor=0.5, total_iters=0), (0.1,), "sgd", 4),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=100), (0.01,), "sgd", 100),
    ("OneCycleLR", dict(max_lr=[0.1, 0.05], epochs=4, steps_per_epoch=25, pct_start=0.25,
                        base_momentum=[0.8, 0.7], max_momentum=0.9), (0.01, 0.01), "sgd", 100),
    ("OneCycleLR", dict(max_lr=0.01, total_steps=97, three_phase=True), (1e-3,), "adam", 97),
    ("OneCycleLR", dict(max_lr=0.01, total_steps=80, anneal_strategy="linear"), (1e-3,),
     "adamw", 80),
    ("OneCycleLR", dict(max_lr=[0.3, 0.2], total_steps=60, anneal_strategy="linear",
                        three_phase=True, pct_start=0.4, div_factor=10.0,
                        final_div_factor=100.0), (0.1, 0.1), "rmsprop", 60),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=50, cycle_momentum=False), (0.1,), "sgd", 50),
]


def torch_pair(torch, kind, lrs, options):
    params = [torch.zeros(2, requires_grad=True) for _ in lrs]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
           "rmsprop": torch.optim.RMSprop}[kind]
    return cls(groups, **options), make_opt(kind, lrs, **options)


def sequences(opt, sched, steps):
    """lrs and momenta (beta1) of every group, after construction and each step."""
    lrs, moms = [lrs_of(opt)], [momenta_of(opt)]
    for _ in range(steps):
        opt.step()
        sched.step()
        lrs.append(list(sched.get_last_lr()))
        moms.append(momenta_of(opt))
    return np.array(lrs, float), np.array(moms, float)


@pytest.mark.parametrize("name,kwargs,lrs,kind,steps", TORCH_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(TORCH_CASES)])
def test_matches_torch(name, kwargs, lrs, kind, steps):
    torch = pytest.importorskip("torch")
    options = {"momentum": 0.9} if kind in ("sgd", "rmsprop") else {}
    t_opt, f_opt = torch_pair(torch, kind, lrs, options)
    t_sched = getattr(torch.optim.lr_scheduler, name)(t_opt, **kwargs)
    f_sched = getattr(L, name)(f_opt, **kwargs)
    t_lrs, t_moms = sequences(t_opt, t_sched, steps)
    f_lrs, f_moms = sequences(f_opt, f_sched, steps)
    np.testing.assert_allclose(f_lrs, t_lrs, rtol=1e-6, atol=0)
    np.testing.assert_allclose(f_moms, t_moms, rtol=1e-6, atol=0)
    assert f_sched.base_lrs == pytest.approx(t_sched.base_lrs, rel=1e-12)
    if name == "OneCycleLR":  # one more step than the schedule: both refuse
        with pytest.raises(ValueError):
            t_sched.step()
        with pytest.raises(ValueError):
            f_sched.step()


PLATEAU_METRICS = [1.0, 0.9, 0.95, 0.9, 0.9, 0.91, 0.899, 0.9, 0.8, 0.85, 0.9, 0.8, 0.8, 0.8,
                   0.79995, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
PLATEAU_CASES = [
    dict(),
    dict(patience=1, factor=0.5),
    dict(patience=0, factor=0.3, cooldown=2, min_lr=[0.01, 0.001]),
    dict(mode="max", patience=2, threshold=0.01, threshold_mode="abs", min_lr=1e-3),
    dict(mode="min", patience=1, threshold=0.05, threshold_mode="rel", eps=1e-3),
    dict(mode="max", patience=0, threshold=0.0, factor=0.0, min_lr=0.02),
]


@pytest.mark.parametrize("kwargs", PLATEAU_CASES)
def test_plateau_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    t_opt, f_opt = torch_pair(torch, "sgd", (0.1, 0.05), {})
    t_sched = torch.optim.lr_scheduler.ReduceLROnPlateau(t_opt, **kwargs)
    f_sched = L.ReduceLROnPlateau(f_opt, **kwargs)
    for sign in (1.0, -1.0):  # falling then rising metrics
        for m in PLATEAU_METRICS:
            t_sched.step(sign * m)
            f_sched.step(sign * m)
            np.testing.assert_allclose(f_sched.get_last_lr(), t_sched.get_last_lr(),
                                       rtol=1e-6, atol=0)
            assert (f_sched.best, f_sched.num_bad_epochs, f_sched.cooldown_counter) == \
                (t_sched.best, t_sched.num_bad_epochs, t_sched.cooldown_counter)


@pytest.mark.parametrize("name,kwargs", [
    ("StepLR", dict(step_size=3)), ("MultiStepLR", dict(milestones=[2, 2, 5])),
    ("ExponentialLR", dict(gamma=0.9)), ("CosineAnnealingLR", dict(T_max=5)),
    ("LinearLR", {}), ("OneCycleLR", dict(max_lr=0.1, total_steps=20)),
    ("OneCycleLR", dict(max_lr=0.1, total_steps=20, cycle_momentum=False)),
    ("ReduceLROnPlateau", {})])
def test_loads_torch_state_dict(name, kwargs):
    torch = pytest.importorskip("torch")
    t_opt, f_opt = torch_pair(torch, "sgd", (0.1,), {"momentum": 0.9})
    t_sched = getattr(torch.optim.lr_scheduler, name)(t_opt, **kwargs)
    f_sched = getattr(L, name)(f_opt, **kwargs)
    args = [1.0] if name == "ReduceLROnPlateau" else []
    for _ in range(3):
        t_opt.step()
        t_sched.step(*args)
    f_sched.load_state_dict(t_sched.state_dict())
    for group, t_group in zip(f_opt.param_groups, t_opt.param_groups):
        group.update({k: v for k, v in t_group.items() if k in group and k != "params"})
    for _ in range(3):
        t_opt.step()
        t_sched.step(*args)
        f_sched.step(*args)
        np.testing.assert_allclose(f_sched.get_last_lr(), t_sched.get_last_lr(), rtol=1e-6)
