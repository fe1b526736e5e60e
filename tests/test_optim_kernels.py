"""Fused optimizer updates (ops.sgd_step, adam_step, rmsprop_step, adagrad_step,
adamax_step, radam_step, nadam_step, adadelta_step, asgd_step, rprop_step): 20 steps against the float64 references for every option
and ISA path, 1, 2 and 3 threads bitwise, the input rules, and (with torch) 20 steps
against torch.optim. (An update has no derivative to check by finite differences.)"""
import itertools

import numpy as np
import pytest

import fastnn
from fastnn import ops

import reference as ref

# 0 and 1 (degenerate), 15/16/17 (around one AVX-512 vector and a masked tail),
# 1000, and 100003 (> 2 x 32768 elements: split over 2 threads, ragged end)
SIZES = [0, 1, 15, 16, 17, 1000, 100003]
STEPS = 20
# atol is relative to the array's largest value: elements that cancel to near 0
# (a momentum buffer summing g / avg of both signs) keep the summands' rounding
RTOL, ATOL = 1e-5, 1e-6
# A power of two, so that weight_decay * param is exact in float32: the portable
# path rounds it before adding grad (no FMA), and where grad nearly cancels it,
# RMSprop's first step, lr * g / sqrt((1 - alpha) g^2), takes its sign from that
# rounding. (The AVX paths fuse the two and have no such elements.)
WD = 0.125


def f32(x):
    """a hyper-parameter as the kernel receives it (rounded to float32), for the reference"""
    return float(np.float32(x)) if isinstance(x, float) else x


# the state that does not start as zeros (n,): name -> (size, start); size 1 for a
# rule's scalars (NAdam's mu_product, ASGD's eta and mu); ASGD's eta and Rprop's step_size
# start as lr, 1e-2 in these tests
STARTS = {"mu_product": (1, 1.0), "eta": (1, 1e-2), "mu": (1, 1.0), "step_size": (None, 1e-2)}


def make_state(n, buffers, rng):
    """a random float32 param (n,) and the state buffers as each starts"""
    state = {"param": rng.standard_normal(n).astype(np.float32)}
    for name in buffers:
        size, start = STARTS.get(name, (None, 0.0))
        state[name] = np.full(size or n, start, np.float32)
    return state


def run(steps_fns, states, n, rng, steps=STEPS):
    """`steps` steps: every step_fn(state, grad, t) gets the same random grad, t = 1, 2, ..."""
    for t in range(1, steps + 1):
        g = rng.standard_normal(n).astype(np.float32)
        for step, state in zip(steps_fns, states):
            step(state, g, t)


def check_against_reference(n, buffers, ours, theirs, rng):
    a = make_state(n, buffers, rng)
    b = {k: v.astype(np.float64) for k, v in a.items()}
    run([ours, theirs], [a, b], n, rng)
    for k in a:
        assert a[k].dtype == np.float32 and a[k].shape == (STARTS.get(k, (None,))[0] or n,)
        scale = max(1.0, float(np.abs(b[k]).max(initial=0.0)))
        np.testing.assert_allclose(a[k], b[k], rtol=RTOL, atol=ATOL * scale, err_msg=k)


def opt_id(opts):
    return ",".join(f"{k}={v}" for k, v in opts.items()) or "plain"


# ---- SGD ------------------------------------------------------------------------
SGD_OPTIONS = [
    {}, {"weight_decay": WD}, {"dampening": 0.3},  # no momentum: dampening does nothing
    {"momentum": 0.9}, {"momentum": 0.9, "weight_decay": WD}, {"momentum": 0.9, "dampening": 0.3},
    {"momentum": 0.9, "dampening": 0.3, "weight_decay": WD},
    {"momentum": 0.9, "nesterov": True}, {"momentum": 0.9, "nesterov": True, "weight_decay": WD},
    {"maximize": True}, {"momentum": 0.9, "weight_decay": WD, "maximize": True},
]


def sgd_buffers(opts):
    return ["momentum_buf"] if opts.get("momentum") else []


@pytest.mark.parametrize("opts", SGD_OPTIONS, ids=opt_id)
@pytest.mark.parametrize("n", SIZES)
def test_sgd_matches_reference(n, opts, isa, rng):
    hp = {k: f32(v) for k, v in opts.items()}

    def ours(s, g, t):
        ops.sgd_step(s["param"], g, s.get("momentum_buf"), 0.05, first_step=t == 1, **opts)

    def theirs(s, g, t):
        ref.sgd_step(s["param"], g, s.get("momentum_buf"), f32(0.05), first_step=t == 1, **hp)

    check_against_reference(n, sgd_buffers(opts), ours, theirs, rng)


def test_sgd_first_step_does_not_read_the_buffer(isa, rng):
    p, g = rng.standard_normal(40).astype(np.float32), rng.standard_normal(40).astype(np.float32)
    buf = np.full(40, np.nan, np.float32)
    want = p - np.float32(0.1) * g
    ops.sgd_step(p, g, buf, 0.1, momentum=0.9, first_step=True)
    assert np.array_equal(buf, g)
    np.testing.assert_allclose(p, want, rtol=1e-6)


# ---- Adam / AdamW -----------------------------------------------------------------
ADAM_OPTIONS = ([{"amsgrad": a, "decoupled": d, "weight_decay": w}
                 for a, d, w in itertools.product([False, True], [False, True], [0.0, WD])]
                + [{"beta1": 0.3, "beta2": 0.9}, {"beta1": 0.0, "beta2": 0.0, "amsgrad": True},
                   {"eps": 0.0, "weight_decay": WD},
                   {"maximize": True, "weight_decay": WD},
                   {"maximize": True, "decoupled": True, "weight_decay": WD, "amsgrad": True}])


def adam_buffers(opts):
    return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if opts.get("amsgrad") else [])


def adam_call(opts):
    """(ours, theirs) step functions for adam options (amsgrad: a max_exp_avg_sq buffer)"""
    kw = {k: v for k, v in opts.items() if k != "amsgrad"}
    hp = {k: f32(v) for k, v in kw.items()}

    def ours(s, g, t):
        ops.adam_step(s["param"], g, s["exp_avg"], s["exp_avg_sq"], t, lr=1e-2,
                      max_exp_avg_sq=s.get("max_exp_avg_sq"), **kw)

    def theirs(s, g, t):
        ref.adam_step(s["param"], g, s["exp_avg"], s["exp_avg_sq"], t, lr=f32(1e-2),
                      max_exp_avg_sq=s.get("max_exp_avg_sq"), **hp)
    return ours, theirs


@pytest.mark.parametrize("opts", ADAM_OPTIONS, ids=opt_id)
@pytest.mark.parametrize("n", SIZES)
def test_adam_matches_reference(n, opts, isa, rng):
    check_against_reference(n, adam_buffers(opts), *adam_call(opts), rng)


def test_adam_beta1_zero_keeps_exactly_the_gradient(isa):
    # lerp from the near end: exp_avg = g exactly, even after a much larger gradient
    p, m, v = np.zeros(33, np.float32), np.zeros(33, np.float32), np.zeros(33, np.float32)
    for t, scale in enumerate([1e4, 1e-4, 3.0], start=1):
        g = np.linspace(-1, 1, 33, dtype=np.float32) * np.float32(scale)
        ops.adam_step(p, g, m, v, t, beta1=0.0)
        assert np.array_equal(m, g)


# ---- RMSprop ------------------------------------------------------------------------
RMSPROP_OPTIONS = ([{"centered": c, "momentum": m, "weight_decay": w}
                    for c, m, w in itertools.product([False, True], [0.0, 0.9], [0.0, WD])]
                   + [{"alpha": 0.5, "centered": True, "momentum": 0.5}, {"alpha": 1.0, "eps": 1.0},
                      {"maximize": True, "centered": True, "momentum": 0.9, "weight_decay": WD}])


def rmsprop_buffers(opts):
    return (["square_avg"] + (["grad_avg"] if opts.get("centered") else [])
            + (["momentum_buf"] if opts.get("momentum") else []))


@pytest.mark.parametrize("opts", RMSPROP_OPTIONS, ids=opt_id)
@pytest.mark.parametrize("n", SIZES)
def test_rmsprop_matches_reference(n, opts, isa, rng):
    kw = {k: v for k, v in opts.items() if k != "centered"}
    hp = {k: f32(v) for k, v in kw.items()}

    def ours(s, g, t):
        ops.rmsprop_step(s["param"], g, s["square_avg"], lr=1e-2, grad_avg=s.get("grad_avg"),
                         momentum_buf=s.get("momentum_buf"), **kw)

    def theirs(s, g, t):
        ref.rmsprop_step(s["param"], g, s["square_avg"], lr=f32(1e-2), grad_avg=s.get("grad_avg"),
                         momentum_buf=s.get("momentum_buf"), **hp)

    check_against_reference(n, rmsprop_buffers(opts), ours, theirs, rng)


# ---- Adagrad, Adamax, RAdam, NAdam, Adadelta, ASGD, Rprop ----------------------------------
# name -> (state buffers, option sets, our step, the reference step)
MORE_RULES = {
    "adagrad": (["sum"], [{}, {"lr_decay": 0.1, "weight_decay": WD}, {"eps": 0.0},
                          {"maximize": True, "weight_decay": WD}],
                lambda s, g, t, kw: ops.adagrad_step(s["param"], g, s["sum"], t, **kw),
                lambda s, g, t, kw: ref.adagrad_step(s["param"], g, s["sum"], t, **kw)),
    "adamax": (["exp_avg", "exp_inf"], [{}, {"weight_decay": WD, "beta1": 0.5, "beta2": 0.9},
                                        {"maximize": True, "eps": 0.0}],
               lambda s, g, t, kw: ops.adamax_step(s["param"], g, s["exp_avg"], s["exp_inf"], t,
                                                   **kw),
               lambda s, g, t, kw: ref.adamax_step(s["param"], g, s["exp_avg"], s["exp_inf"], t,
                                                   **kw)),
    # beta2 0.9: rho_t passes 5 at step 6, so 20 steps cover both branches
    "radam": (["exp_avg", "exp_avg_sq"], [{}, {"beta2": 0.9}, {"beta2": 0.9, "weight_decay": WD},
                                          {"beta2": 0.9, "weight_decay": WD, "decoupled": True,
                                           "maximize": True}],
              lambda s, g, t, kw: ops.radam_step(s["param"], g, s["exp_avg"], s["exp_avg_sq"], t,
                                                 **kw),
              lambda s, g, t, kw: ref.radam_step(s["param"], g, s["exp_avg"], s["exp_avg_sq"], t,
                                                 **kw)),
    "nadam": (["exp_avg", "exp_avg_sq", "mu_product"],
              [{}, {"beta1": 0.5, "beta2": 0.9, "momentum_decay": 0.1},
               {"weight_decay": WD}, {"weight_decay": WD, "decoupled": True, "maximize": True}],
              lambda s, g, t, kw: ops.nadam_step(s["param"], g, s["exp_avg"], s["exp_avg_sq"],
                                                 s["mu_product"], t, **kw),
              lambda s, g, t, kw: ref.nadam_step(s["param"], g, s["exp_avg"], s["exp_avg_sq"],
                                                 s["mu_product"], t, **kw)),
    "adadelta": (["square_avg", "acc_delta"], [{}, {"rho": 0.5, "eps": 1e-3}, {"rho": 1.0},
                                              {"weight_decay": WD, "maximize": True}],
                 lambda s, g, t, kw: ops.adadelta_step(s["param"], g, s["square_avg"],
                                                       s["acc_delta"], **kw),
                 lambda s, g, t, kw: ref.adadelta_step(s["param"], g, s["square_avg"],
                                                       s["acc_delta"], **kw)),
    # t0 = 5: ax copies param for 6 steps, then averages
    "asgd": (["ax", "eta", "mu"], [{}, {"lambd": 0.5, "alpha": 0.5, "t0": 5.0},
                                   {"t0": 5.0, "weight_decay": WD, "maximize": True}],
             lambda s, g, t, kw: ops.asgd_step(s["param"], g, s["ax"], s["eta"], s["mu"], t, **kw),
             lambda s, g, t, kw: ref.asgd_step(s["param"], g, s["ax"], s["eta"], s["mu"], t, **kw)),
    # Rprop has no lr (it is step_size's start) and no weight decay
    "rprop": (["prev", "step_size"], [{}, {"etaminus": 0.25, "etaplus": 2.0},
                                      {"step_size_min": 5e-3, "step_size_max": 2e-2,
                                       "maximize": True}],
              lambda s, g, t, kw: ops.rprop_step(s["param"], g, s["prev"], s["step_size"],
                                                 **without_lr(kw)),
              lambda s, g, t, kw: ref.rprop_step(s["param"], g, s["prev"], s["step_size"],
                                                 **without_lr(kw))),
}


def without_lr(kw):
    return {k: v for k, v in kw.items() if k != "lr"}
MORE_CASES = [(name, opts) for name, (_, options, _, _) in MORE_RULES.items()
              for opts in options]


@pytest.mark.parametrize("name, opts", MORE_CASES, ids=lambda v: v if isinstance(v, str)
                         else opt_id(v))
@pytest.mark.parametrize("n", SIZES)
def test_more_rules_match_reference(n, name, opts, isa, rng):
    buffers, ours, theirs, = MORE_RULES[name][0], MORE_RULES[name][2], MORE_RULES[name][3]
    kw = dict(opts, lr=1e-2)
    hp = {k: f32(v) for k, v in kw.items()}
    check_against_reference(n, buffers, lambda s, g, t: ours(s, g, t, kw),
                            lambda s, g, t: theirs(s, g, t, hp), rng)


# ---- threads: every option on, bitwise the same for 1, 2 and 3 threads -------------
N_SPLIT = 200003  # > 2 x 32768: really split, with a ragged end
EVERYTHING = {
    "sgd": (["momentum_buf"], lambda s, g, t: ops.sgd_step(
        s["param"], g, s["momentum_buf"], 0.05, momentum=0.9, nesterov=True, weight_decay=0.1,
        first_step=t == 1)),
    "adam": (["exp_avg", "exp_avg_sq", "max_exp_avg_sq"], lambda s, g, t: ops.adam_step(
        s["param"], g, s["exp_avg"], s["exp_avg_sq"], t, lr=1e-2, weight_decay=0.1,
        max_exp_avg_sq=s["max_exp_avg_sq"])),
    "adamw": (["exp_avg", "exp_avg_sq"], lambda s, g, t: ops.adam_step(
        s["param"], g, s["exp_avg"], s["exp_avg_sq"], t, lr=1e-2, weight_decay=0.1,
        decoupled=True)),
    "rmsprop": (["square_avg", "grad_avg", "momentum_buf"], lambda s, g, t: ops.rmsprop_step(
        s["param"], g, s["square_avg"], weight_decay=0.1, momentum=0.9, grad_avg=s["grad_avg"],
        momentum_buf=s["momentum_buf"])),
    "adagrad": (["sum"], lambda s, g, t: ops.adagrad_step(
        s["param"], g, s["sum"], t, lr_decay=0.1, weight_decay=0.1, maximize=True)),
    "adamax": (["exp_avg", "exp_inf"], lambda s, g, t: ops.adamax_step(
        s["param"], g, s["exp_avg"], s["exp_inf"], t, weight_decay=0.1)),
    "radam": (["exp_avg", "exp_avg_sq"], lambda s, g, t: ops.radam_step(
        s["param"], g, s["exp_avg"], s["exp_avg_sq"], t + 5, beta2=0.9, weight_decay=0.1,
        decoupled=True)),
    "nadam": (["exp_avg", "exp_avg_sq", "mu_product"], lambda s, g, t: ops.nadam_step(
        s["param"], g, s["exp_avg"], s["exp_avg_sq"], s["mu_product"], t, weight_decay=0.1,
        decoupled=True, maximize=True)),
    "adadelta": (["square_avg", "acc_delta"], lambda s, g, t: ops.adadelta_step(
        s["param"], g, s["square_avg"], s["acc_delta"], weight_decay=0.1, maximize=True)),
    "asgd": (["ax", "eta", "mu"], lambda s, g, t: ops.asgd_step(
        s["param"], g, s["ax"], s["eta"], s["mu"], t, t0=1.0, weight_decay=0.1, maximize=True)),
    "rprop": (["prev", "step_size"], lambda s, g, t: ops.rprop_step(
        s["param"], g, s["prev"], s["step_size"], maximize=True)),
}


@pytest.mark.parametrize("name", EVERYTHING)
def test_bitwise_identical_for_1_2_and_3_threads(name, isa):
    buffers, step = EVERYTHING[name]
    results = []
    for threads in (1, 2, 3):
        rng = np.random.default_rng(7)
        state = make_state(N_SPLIT, buffers, rng)
        with fastnn.num_threads(threads):
            run([step], [state], N_SPLIT, rng, steps=3)
        results.append(state)
    for other in results[1:]:
        for k in results[0]:
            assert np.array_equal(results[0][k].view(np.uint32), other[k].view(np.uint32)), k


# ---- the input rules -----------------------------------------------------------------
def z(n=6, dtype=np.float32):
    return np.zeros(n, dtype)


def read_only():
    a = z()
    a.flags.writeable = False
    return a


def unaligned():
    return np.zeros(6 * 4 + 1, np.uint8)[1:].view(np.float32)


def sgd(**kw):
    args = dict(param=z(), grad=z(), momentum_buf=None, lr=0.1)
    args.update(kw)
    return lambda: ops.sgd_step(**args)


def adam(**kw):
    args = dict(param=z(), grad=z(), exp_avg=z(), exp_avg_sq=z(), step=1)
    args.update(kw)
    return lambda: ops.adam_step(**args)


def rmsprop(**kw):
    args = dict(param=z(), grad=z(), square_avg=z())
    args.update(kw)
    return lambda: ops.rmsprop_step(**args)


SHARED, WIDE = z(), z(12)
#   call                                                         raises      message must match
BAD = [
    (sgd(param=z(dtype=np.float64)),                              TypeError,  r"\bparam\b.*float32.*float64"),
    (sgd(param=[0.0] * 6),                                        TypeError,  r"\bparam\b.*ndarray.*list"),
    (sgd(grad=z().astype(">f4")),                                 TypeError,  r"\bgrad\b.*float32.*>f4"),
    (adam(exp_avg=z(dtype=np.float16)),                           TypeError,  r"\bexp_avg\b.*float32.*float16"),
    (rmsprop(grad_avg="x"),                                       TypeError,  r"\bgrad_avg\b.*ndarray.*str"),
    (rmsprop(momentum=0.9, momentum_buf=z(dtype=np.int32)),       TypeError,  r"\bmomentum_buf\b.*float32.*int32"),
    (sgd(grad=z(5)),                                              ValueError, r"\bgrad\b.*\b6 elements.*\(6,\).*\(5,\)"),
    (adam(max_exp_avg_sq=z(7)),                                   ValueError, r"\bmax_exp_avg_sq\b.*elements"),
    (rmsprop(square_avg=np.zeros((2, 4), np.float32)),            ValueError, r"\bsquare_avg\b.*\b6 elements.*\(2, 4\).*\b8 elements"),
    (adam(exp_avg=z(12)[::2]),                                    ValueError, r"\bexp_avg\b.*C-contiguous"),
    (rmsprop(param=z(12)[::-2]),                                  ValueError, r"\bparam\b.*C-contiguous"),
    (rmsprop(square_avg=unaligned()),                             ValueError, r"\bsquare_avg\b.*aligned"),
    (adam(param=read_only()),                                     ValueError, r"\bparam\b.*writeable"),
    (adam(exp_avg_sq=read_only()),                                ValueError, r"\bexp_avg_sq\b.*writeable"),
    (sgd(momentum=0.9, momentum_buf=read_only()),                 ValueError, r"\bmomentum_buf\b.*writeable"),
    (adam(exp_avg=SHARED, exp_avg_sq=SHARED),                     ValueError, r"\bexp_avg_sq\b.*share memory.*\bexp_avg\b"),
    (sgd(param=SHARED, grad=SHARED),                              ValueError, r"\bgrad\b.*share memory.*\bparam\b"),
    (adam(exp_avg=WIDE[:6], max_exp_avg_sq=WIDE[3:9]),            ValueError, r"\bmax_exp_avg_sq\b.*share memory.*\bexp_avg\b"),
    (rmsprop(grad_avg=WIDE[6:], momentum=0.5, momentum_buf=WIDE[6:]), ValueError, r"\bmomentum_buf\b.*share memory.*\bgrad_avg\b"),
    (sgd(lr=-0.1),                                                ValueError, r"\blr\b.*>= 0.*-0\.1"),
    (adam(lr=float("nan")),                                       ValueError, r"\blr\b.*nan"),
    (rmsprop(lr=float("inf")),                                    ValueError, r"\blr\b.*inf"),
    (adam(lr=1e39),                                               ValueError, r"\blr\b.*1e\+39"),
    (sgd(lr="0.1"),                                               TypeError,  r"\blr\b.*str"),
    (sgd(lr=None),                                                TypeError,  r"\blr\b"),
    (adam(beta1=1.0),                                             ValueError, r"\bbeta1\b.*\[0, 1\).*1\.0"),
    (adam(beta1=-0.1),                                            ValueError, r"\bbeta1\b.*-0\.1"),
    (adam(beta2=0.99999999),                                      ValueError, r"\bbeta2\b.*0\.99999999"),  # 1.0f
    (adam(eps=-1e-8),                                             ValueError, r"\beps\b.*>= 0"),
    (rmsprop(eps=-1.0),                                           ValueError, r"\beps\b.*>= 0"),
    (adam(step=0),                                                ValueError, r"\bstep\b.*>= 1.*\b0\b"),
    (adam(step=-5),                                               ValueError, r"\bstep\b.*-5"),
    (adam(step=1.0),                                              TypeError,  r"\bstep\b.*int"),
    (adam(step=2**63),                                            ValueError, r"\bstep\b.*int64"),
    (adam(weight_decay=-0.1),                                     ValueError, r"\bweight_decay\b.*>= 0"),
    (sgd(weight_decay=-0.1),                                      ValueError, r"\bweight_decay\b.*>= 0"),
    (rmsprop(weight_decay=-0.1),                                  ValueError, r"\bweight_decay\b.*>= 0"),
    (sgd(momentum=-0.5),                                          ValueError, r"\bmomentum\b.*>= 0.*-0\.5"),
    (rmsprop(momentum=-0.5),                                      ValueError, r"\bmomentum\b.*>= 0.*-0\.5"),
    (sgd(nesterov=True),                                          ValueError, r"\bnesterov\b.*momentum > 0.*momentum=0"),
    (sgd(nesterov=True, momentum=0.9, dampening=0.1, momentum_buf=z()), ValueError, r"\bnesterov\b.*dampening == 0.*0\.1"),
    (sgd(dampening=float("nan")),                                 ValueError, r"\bdampening\b.*finite"),
    (sgd(momentum=0.9),                                           ValueError, r"\bmomentum_buf\b.*None"),
    (rmsprop(momentum=0.9),                                       ValueError, r"\bmomentum_buf\b.*None"),
    (rmsprop(alpha=1.5),                                          ValueError, r"\balpha\b.*\[0, 1\].*1\.5"),
    (rmsprop(alpha=-0.1),                                         ValueError, r"\balpha\b.*\[0, 1\]"),
    (lambda: ops.adagrad_step(z(), z(), z(5), 1),                 ValueError, r"\bsum\b.*elements"),
    (lambda: ops.adagrad_step(z(), z(), z(), 1, lr_decay=-1.0),   ValueError, r"\blr_decay\b.*>= 0"),
    (lambda: ops.adagrad_step(z(), z(), z(), 0),                  ValueError, r"\bstep\b.*>= 1"),
    (lambda: ops.adamax_step(z(), z(), z(), z(dtype=np.float64), 1), TypeError, r"\bexp_inf\b.*float32"),
    (lambda: ops.adamax_step(z(), z(), z(), z(), 1, beta2=1.0),   ValueError, r"\bbeta2\b.*\[0, 1\)"),
    (lambda: ops.radam_step(z(), z(), SHARED, SHARED, 1),         ValueError, r"\bexp_avg_sq\b.*share memory"),
    (lambda: ops.radam_step(z(), z(), z(), z(), 1, eps=-1.0),     ValueError, r"\beps\b.*>= 0"),
    (lambda: ops.nadam_step(z(), z(), z(), z(), z(1), 1, momentum_decay=-1.0), ValueError, r"\bmomentum_decay\b.*>= 0.*-1\.0"),
    (lambda: ops.nadam_step(z(), z(), z(), z(), z(2), 1),        ValueError, r"\bmu_product\b.*1 element.*\(2,\)"),
    (lambda: ops.nadam_step(z(), z(), z(), z(), 1.0, 1),         TypeError,  r"\bmu_product\b.*float32.*float"),
    (lambda: ops.nadam_step(z(), z(), z(), z(), z(1, np.float64), 1), TypeError, r"\bmu_product\b.*float32.*float64"),
    (lambda: ops.nadam_step(z(), z(), z(), z(), z(1), 0),        ValueError, r"\bstep\b.*>= 1"),
    (lambda: ops.adadelta_step(z(), z(), z(), z(), rho=1.5),     ValueError, r"\brho\b.*\[0, 1\].*1\.5"),
    (lambda: ops.adadelta_step(z(), z(), z(), z(5)),             ValueError, r"\bacc_delta\b.*elements"),
    (lambda: ops.asgd_step(z(), z(), z(), z(1), z(1), 1, t0=float("nan")), ValueError, r"\bt0\b.*finite.*nan"),
    (lambda: ops.asgd_step(z(), z(), z(), WIDE[:1], WIDE[:1], 1), ValueError, r"\bmu\b.*share memory.*\beta\b"),
    (lambda: ops.asgd_step(z(), z(), z(), read_only()[:1], z(1), 1), ValueError, r"\beta\b.*writeable"),
    (lambda: ops.asgd_step(z(), z(), z(), z(1), z(1), 1, weight_decay=-1.0), ValueError, r"\bweight_decay\b.*>= 0"),
    (lambda: ops.rprop_step(z(), z(), z(), z(), etaminus=1.0),   ValueError, r"\betaminus\b.*\[0, 1\).*1\.0"),
    (lambda: ops.rprop_step(z(), z(), z(), z(), etaminus=0.0),   ValueError, r"0 < etaminus < 1 < etaplus.*etaminus=0\.0"),
    (lambda: ops.rprop_step(z(), z(), z(), z(), etaplus=1.0),    ValueError, r"0 < etaminus < 1 < etaplus.*etaplus=1\.0"),
    (lambda: ops.rprop_step(z(), z(), z(), z(), step_size_min=2.0, step_size_max=1.0), ValueError, r"\bstep_size_min\b.*<= step_size_max.*2\.0.*1\.0"),
    (lambda: ops.rprop_step(z(), z(), z(), z(), step_size_max=-1.0), ValueError, r"\bstep_size_max\b.*>= 0"),
    (lambda: ops.rprop_step(z(), z(), SHARED, SHARED),           ValueError, r"\bstep_size\b.*share memory.*\bprev\b"),
]


@pytest.mark.parametrize("call, exc, match", BAD, ids=range(len(BAD)))
def test_bad_input_is_rejected_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_a_rejected_call_changes_nothing(rng):
    arrays = [rng.standard_normal(6).astype(np.float32) for _ in range(4)]
    before = [a.copy() for a in arrays]
    p, g, m, v = arrays
    with pytest.raises(ValueError, match="max_exp_avg_sq"):
        ops.adam_step(p, g, m, v, 1, max_exp_avg_sq=m)  # only the last check fails
    assert all(np.array_equal(a, b) for a, b in zip(arrays, before))


def test_any_shapes_with_the_same_number_of_elements(isa, rng):
    p = rng.standard_normal((3, 4)).astype(np.float32)
    g = rng.standard_normal(12).astype(np.float32)
    flat_p = p.reshape(-1).copy()
    m, v = np.zeros((2, 6), np.float32), np.zeros((12, 1), np.float32)
    ops.adam_step(p, g, m, v, 1)
    fm, fv = np.zeros(12, np.float32), np.zeros(12, np.float32)
    ops.adam_step(flat_p, g, fm, fv, 1)
    assert p.shape == (3, 4) and np.array_equal(p.reshape(-1), flat_p)
    assert np.array_equal(m.reshape(-1), fm) and np.array_equal(v.reshape(-1), fv)


def test_accepted_edge_cases(rng):
    g = rng.standard_normal(6).astype(np.float32)
    g.flags.writeable = False  # grad is only read
    p, buf = np.ones(6, np.float32), np.full(6, 7.0, np.float32)
    assert ops.sgd_step(p, g, buf, 0.1) is None  # momentum 0: buf is ignored
    assert (buf == 7.0).all() and np.allclose(p, 1 - np.float32(0.1) * g)
    empty = np.zeros((0, 5), np.float32)
    ops.adam_step(empty, np.zeros(0, np.float32), np.zeros((5, 0), np.float32), empty.copy(), 3)
    ops.rmsprop_step(np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32),
                     momentum=0.9, momentum_buf=np.zeros(0, np.float32))
    ops.adam_step(p, g, np.zeros(6, np.float32), np.zeros(6, np.float32), 2**62)


# ---- parity with torch.optim --------------------------------------------------------
SHAPE = (25, 40)


def torch_steps(make_opt, p0, grads):
    """20 steps of torch.optim on a copy of p0; returns (param, the optimizer's state)"""
    torch = pytest.importorskip("torch")
    t = torch.tensor(p0, requires_grad=True)
    opt = make_opt(torch.optim, [t])
    for g in grads:
        t.grad = torch.tensor(g)
        opt.step()
    return t.detach().numpy(), {k: v.numpy() for k, v in opt.state[t].items() if k != "step"}


def torch_parity(make_opt, buffers, ours, rng):
    """our 20 steps (state buffers flat, param 2-D) against torch's; buffers maps
    our state names to torch's"""
    p0 = rng.standard_normal(SHAPE).astype(np.float32)
    grads = [rng.standard_normal(SHAPE).astype(np.float32) for _ in range(STEPS)]
    want_p, want_state = torch_steps(make_opt, p0, grads)
    state = {"param": p0.copy()}
    for name in buffers:
        size, start = STARTS.get(name, (None, 0.0))
        state[name] = np.full(size or p0.size, start, np.float32)
    for t, g in enumerate(grads, start=1):
        ours(state, g, t)
    np.testing.assert_allclose(state["param"], want_p, rtol=1e-4, atol=1e-6)
    assert set(want_state) == set(buffers.values())
    for name, torch_name in buffers.items():
        np.testing.assert_allclose(state[name], want_state[torch_name].reshape(-1), rtol=1e-4,
                                   atol=1e-6, err_msg=name)


SGD_TORCH = [{}, {"momentum": 0.9}, {"momentum": 0.9, "dampening": 0.5, "weight_decay": 0.01},
             {"momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
             {"momentum": 0.9, "weight_decay": 0.01, "maximize": True}]


@pytest.mark.parametrize("opts", SGD_TORCH, ids=opt_id)
def test_sgd_matches_torch(opts, isa, rng):
    def ours(s, g, t):
        ops.sgd_step(s["param"], g, s.get("momentum_buf"), 0.05, first_step=t == 1, **opts)

    buffers = {"momentum_buf": "momentum_buffer"} if opts.get("momentum") else {}
    torch_parity(lambda optim, ps: optim.SGD(ps, lr=0.05, foreach=False, **opts), buffers, ours,
                 rng)


ADAM_TORCH = [{}, {"weight_decay": WD, "amsgrad": True}, {"decoupled": True, "weight_decay": WD},
              {"decoupled": True, "weight_decay": WD, "amsgrad": True},
              {"beta1": 0.3, "beta2": 0.9, "eps": 1e-6},
              {"weight_decay": WD, "amsgrad": True, "maximize": True},
              {"decoupled": True, "weight_decay": WD, "maximize": True}]


@pytest.mark.parametrize("opts", ADAM_TORCH, ids=opt_id)
def test_adam_matches_torch(opts, isa, rng):
    kw = dict(lr=1e-2, betas=(opts.get("beta1", 0.9), opts.get("beta2", 0.999)),
              eps=opts.get("eps", 1e-8), weight_decay=opts.get("weight_decay", 0.0),
              amsgrad=opts.get("amsgrad", False), maximize=opts.get("maximize", False),
              foreach=False)

    def make_opt(optim, ps):
        return (optim.AdamW if opts.get("decoupled") else optim.Adam)(ps, **kw)

    buffers = {name: name for name in adam_buffers(opts)}
    torch_parity(make_opt, buffers, adam_call(opts)[0], rng)


RMSPROP_TORCH = [{}, {"centered": True}, {"momentum": 0.9},
                 {"centered": True, "momentum": 0.9, "weight_decay": WD, "alpha": 0.9},
                 {"momentum": 0.9, "weight_decay": WD, "maximize": True}]


@pytest.mark.parametrize("opts", RMSPROP_TORCH, ids=opt_id)
def test_rmsprop_matches_torch(opts, isa, rng):
    kw = {k: v for k, v in opts.items() if k != "centered"}

    def ours(s, g, t):
        ops.rmsprop_step(s["param"], g, s["square_avg"], lr=1e-2, grad_avg=s.get("grad_avg"),
                         momentum_buf=s.get("momentum_buf"), **kw)

    buffers = {"square_avg": "square_avg"}
    if opts.get("centered"):
        buffers["grad_avg"] = "grad_avg"
    if opts.get("momentum"):
        buffers["momentum_buf"] = "momentum_buffer"
    torch_parity(lambda optim, ps: optim.RMSprop(ps, lr=1e-2, foreach=False, **opts), buffers,
                 ours, rng)


# NAdam, Adadelta, ASGD, Rprop: torch's keywords -> (our step, our state names = torch's)
MORE_TORCH = [
    ("NAdam", {"lr": 1e-2}),
    ("NAdam", {"lr": 1e-2, "betas": (0.5, 0.9), "momentum_decay": 0.1, "weight_decay": WD}),
    ("NAdam", {"lr": 1e-2, "weight_decay": WD, "decoupled_weight_decay": True, "maximize": True}),
    ("Adadelta", {"lr": 1.0}),
    ("Adadelta", {"lr": 0.5, "rho": 0.5, "weight_decay": WD, "maximize": True}),
    ("ASGD", {"lr": 1e-2}),
    ("ASGD", {"lr": 1e-2, "lambd": 0.5, "alpha": 0.5, "t0": 5, "weight_decay": WD,
              "maximize": True}),
    ("Rprop", {"lr": 1e-2}),
    ("Rprop", {"lr": 1e-2, "etas": (0.25, 2.0), "step_sizes": (5e-3, 2e-2), "maximize": True}),
]


def more_torch_step(name, kw):
    """our step with torch's keywords, and its state names"""
    beta1, beta2 = kw.get("betas", (0.9, 0.999))
    common = {k: kw[k] for k in ("weight_decay", "maximize") if k in kw}
    if name == "NAdam":
        return (lambda s, g, t: ops.nadam_step(
            s["param"], g, s["exp_avg"], s["exp_avg_sq"], s["mu_product"], t, lr=kw["lr"],
            beta1=beta1, beta2=beta2, momentum_decay=kw.get("momentum_decay", 4e-3),
            decoupled=kw.get("decoupled_weight_decay", False), **common),
            ["mu_product", "exp_avg", "exp_avg_sq"])
    if name == "Adadelta":
        return (lambda s, g, t: ops.adadelta_step(
            s["param"], g, s["square_avg"], s["acc_delta"], lr=kw["lr"], rho=kw.get("rho", 0.9),
            **common), ["square_avg", "acc_delta"])
    if name == "ASGD":
        return (lambda s, g, t: ops.asgd_step(
            s["param"], g, s["ax"], s["eta"], s["mu"], t, lr=kw["lr"],
            **{k: v for k, v in kw.items() if k != "lr"}), ["eta", "mu", "ax"])
    (etaminus, etaplus), (low, high) = kw.get("etas", (0.5, 1.2)), kw.get("step_sizes", (1e-6, 50))
    return (lambda s, g, t: ops.rprop_step(
        s["param"], g, s["prev"], s["step_size"], etaminus=etaminus, etaplus=etaplus,
        step_size_min=low, step_size_max=high, **common), ["prev", "step_size"])


@pytest.mark.parametrize("name, kw", MORE_TORCH, ids=lambda v: v if isinstance(v, str)
                         else opt_id(v))
def test_more_rules_match_torch(name, kw, isa, rng):
    ours, names = more_torch_step(name, kw)
    torch_parity(lambda optim, ps: getattr(optim, name)(ps, foreach=False, **kw),
                 {n: n for n in names}, ours, rng)
