"""The module contract: per-call contexts, no_grad, the stale-context rule,
declared fusion and model-owned flat buffers."""
import threading
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.nn import module as module_mod


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ---- the bug the contexts fix -----------------------------------------------------------
def test_module_called_twice_before_backward_gets_exact_weight_gradient(rng):
    # y = fc(fc(x)): dW = g^T h + (g W)^T x with h = fc(x), not twice the last term
    fc = nn.Linear(4, 4)
    x, g = rand(rng, 3, 4), rand(rng, 3, 4)
    W, b = fc.weight.data.astype(np.float64), fc.bias.data.astype(np.float64)
    h = x @ W.T + b
    fc.zero_grad()
    fc(fc(x))
    gx = fc.backward(fc.backward(g))
    gh = g @ W
    np.testing.assert_allclose(fc.weight.grad, g.T @ h + gh.T @ x, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fc.bias.grad, g.sum(0) + gh.sum(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, gh @ W, rtol=1e-5, atol=1e-5)


def test_shared_encoder_siamese(rng):
    enc = nn.Sequential(nn.Linear(5, 4), nn.Tanh())
    a, b = rand(rng, 2, 5), rand(rng, 2, 5)
    ga, gb = rand(rng, 2, 4), rand(rng, 2, 4)
    enc.zero_grad()
    enc(a)
    enc(b)
    db = enc.backward(gb)
    da = enc.backward(ga)
    separate = []
    for x, g in ((a, ga), (b, gb)):
        enc.zero_grad()
        enc(x)
        separate.append((enc.backward(g), enc[0].weight.grad.copy()))
    np.testing.assert_allclose(da, separate[0][0], rtol=1e-6)
    np.testing.assert_allclose(db, separate[1][0], rtol=1e-6)
    enc.zero_grad()
    enc(a)
    enc(b)
    enc.backward(gb)
    enc.backward(ga)
    np.testing.assert_allclose(enc[0].weight.grad, separate[0][1] + separate[1][1], rtol=1e-5)


def test_backward_without_forward_and_extra_backward():
    lin = nn.Linear(2, 2)
    with pytest.raises(RuntimeError, match="Linear.backward called before forward"):
        lin.backward(np.zeros((1, 2), np.float32))
    lin(np.ones((1, 2), np.float32))
    lin.backward(np.ones((1, 2), np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        lin.backward(np.ones((1, 2), np.float32))


# ---- no_grad ----------------------------------------------------------------------------
def test_no_grad_saves_nothing_and_restores():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = np.ones((2, 3), np.float32)
    assert fastnn.is_grad_enabled()
    with fastnn.no_grad():
        assert not fastnn.is_grad_enabled()
        y = model(x)
        with fastnn.enable_grad():
            assert fastnn.is_grad_enabled()
        assert not fastnn.is_grad_enabled()
    assert fastnn.is_grad_enabled()
    assert all(not m._contexts for m in model.modules())
    np.testing.assert_array_equal(y, model(x))  # same result with grad on
    model.backward(np.ones((2, 2), np.float32))
    with fastnn.no_grad():
        model(x)
    with pytest.raises(RuntimeError, match="no_grad"):
        model.backward(np.ones((2, 2), np.float32))


def test_no_grad_decorator_and_set_grad_enabled():
    @fastnn.no_grad()
    def inside():
        return fastnn.is_grad_enabled()

    assert inside() is False and fastnn.is_grad_enabled()

    @fastnn.set_grad_enabled(False)
    def inside2():
        return fastnn.is_grad_enabled()

    assert fastnn.is_grad_enabled()  # the decorator sets the mode only inside
    assert inside2() is False and fastnn.is_grad_enabled()
    fastnn.set_grad_enabled(False)
    try:
        assert not fastnn.is_grad_enabled()
    finally:
        fastnn.set_grad_enabled(True)
    with fastnn.set_grad_enabled(False):
        assert not fastnn.is_grad_enabled()
    assert fastnn.is_grad_enabled()
    with pytest.raises(ZeroDivisionError):
        with fastnn.no_grad():
            1 / 0
    assert fastnn.is_grad_enabled()  # restored after an exception


def test_grad_mode_is_per_thread():
    seen = []
    with fastnn.no_grad():
        t = threading.Thread(target=lambda: seen.append(fastnn.is_grad_enabled()))
        t.start()
        t.join()
    assert seen == [True]


def test_eval_mode_can_still_be_differentiated(rng):
    # saliency / frozen-BN fine-tuning: eval changes behaviour, not differentiability
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Dropout(0.5), nn.Linear(3, 2))
    model(rand(rng, 8, 4))  # running statistics move
    model.eval()
    x = rand(rng, 5, 4)
    model.zero_grad()
    model(x)
    gx = model.backward(np.ones((5, 2), np.float32))
    assert gx.shape == x.shape and np.isfinite(gx).all() and gx.any()
    assert model[0].weight.grad.any()


# ---- contexts that are never consumed ---------------------------------------------------
def test_optimizer_step_drops_stale_contexts(rng):
    model = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    opt = optim.SGD(model.parameters(), lr=0.1)
    for _ in range(5):  # validation-style forwards in grad mode, no backward
        model(rand(rng, 2, 3))
    assert len(model[0]._contexts) == 5
    model(rand(rng, 2, 3))
    model.backward(np.ones((2, 3), np.float32))
    opt.step()
    model(rand(rng, 2, 3))  # the first save of the new step drops the stale ones
    assert len(model[0]._contexts) == 1
    opt.step()
    with pytest.raises(RuntimeError, match="after an optimizer step"):
        model.backward(np.ones((2, 3), np.float32))
    assert not model[0]._contexts


def test_context_cap_warns_and_bounds_memory(monkeypatch, rng):
    monkeypatch.setattr(module_mod, "MAX_SAVED_CALLS", 4)
    lin = nn.Linear(2, 2)
    xs = [rand(rng, 1, 2) for _ in range(6)]
    with pytest.warns(RuntimeWarning, match="without a backward"):
        for x in xs:
            lin(x)
    assert len(lin._contexts) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lin(xs[0])  # warned once per module
    assert len(lin._contexts) == 4
    lin.clear_saved()
    assert not lin._contexts


def test_input_grad_false_drops_the_contexts_of_leading_modules(rng):
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(6, 3), nn.ReLU())
    model(rand(rng, 4, 2, 3))
    assert model.backward(np.ones((4, 3), np.float32), input_grad=False) is None
    assert all(not m._contexts for m in model.modules())


# ---- declared fusion --------------------------------------------------------------------
def test_fusion_is_declared(rng):
    assert nn.ReLU.epilogue == "relu" and nn.Sigmoid.epilogue == "sigmoid"
    assert nn.GELU().epilogue == "gelu" and nn.GELU("tanh").epilogue == "gelu_tanh"
    assert nn.SiLU.epilogue == "silu" and nn.Mish.epilogue == "mish"
    assert nn.Hardswish().epilogue == "hardswish" and nn.SELU().epilogue == "selu"
    assert nn.ELU().epilogue == "elu" and nn.ELU(alpha=0.5).epilogue is None  # alpha 1 only
    assert nn.LeakyReLU.epilogue is None and nn.Dropout.epilogue is None
    assert set(nn.Linear.epilogues) == {"relu", "gelu", "gelu_tanh", "sigmoid", "tanh", "silu",
                                        "mish", "hardswish", "elu", "selu"}


def test_subclasses_that_change_forward_are_not_fused(rng):
    class ClippedReLU(nn.ReLU):
        def forward(self, x):
            return np.minimum(super().forward(x), 1.0)

    class NoisyLinear(nn.Linear):
        def forward(self, x):
            return super().forward(x) + 1.0

    class PlainSubclass(nn.Linear):
        pass

    assert ClippedReLU.epilogue is None and NoisyLinear.epilogues == ()
    assert PlainSubclass.epilogues == nn.Linear.epilogues
    seq = nn.Sequential(nn.Linear(3, 3), ClippedReLU(), NoisyLinear(3, 3), nn.ReLU(),
                        PlainSubclass(3, 3), nn.Tanh())
    assert [e for _, e in seq._plan()[0]] == [None, None, None, None, "tanh"]


# ---- flat buffers owned by the model ----------------------------------------------------
def test_model_owns_its_flat_buffer_and_optimizer_groups_reuse_it(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    flat = model.flat_buffer()
    assert flat.data.size == model.num_parameters() and model.flat_buffer() is flat
    for p in model.parameters():
        assert np.shares_memory(p.data, flat.data) and np.shares_memory(p.grad, flat.grad)
    opt = optim.Adam([{"params": model[0].parameters()},
                      {"params": model[2].parameters(), "lr": 1e-2}])
    for i in range(2):  # each group is a view of the model's buffer
        buf = opt._buffer(i)
        assert np.shares_memory(buf.data, flat.data) and buf.base is flat
    model(rand(rng, 5, 3))
    model.backward(np.ones((5, 2), np.float32))
    before = flat.data.copy()
    opt.step()
    assert model.flat_buffer() is flat and not np.array_equal(before, flat.data)
    model.zero_grad()
    assert not flat.grad.any()


def test_single_group_optimizer_buffer_is_adopted_by_the_model():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    opt = optim.SGD(model.parameters(), lr=0.1)
    assert model.flat_buffer() is opt._buffer(0)


def test_non_consecutive_group_gets_its_own_storage():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    flat = model.flat_buffer()
    weights = [model[0].weight, model[1].weight]
    opt = optim.SGD([{"params": weights}, {"params": [model[0].bias, model[1].bias]}], lr=0.1)
    assert opt._buffer(0).base is None and flat.stale
    assert not np.shares_memory(opt._buffer(0).data, flat.data)


def test_dropout_and_losses_keep_one_context_per_call(rng):
    drop = nn.Dropout(0.5)
    x = np.ones((4, 50), np.float32)
    y1, y2 = drop(x), drop(x)
    assert not np.array_equal(y1, y2)  # two masks
    g = np.ones_like(x)
    np.testing.assert_array_equal(drop.backward(g), y2)  # the latest call's mask first
    np.testing.assert_array_equal(drop.backward(g), y1)
    loss = nn.MSELoss()
    a, b, t = rand(rng, 3, 2), rand(rng, 3, 2), rand(rng, 3, 2)
    loss(a, t)
    loss(b, t)
    np.testing.assert_allclose(loss.backward(), 2 * (b - t) / b.size, rtol=1e-6)
    np.testing.assert_allclose(loss.backward(), 2 * (a - t) / a.size, rtol=1e-6)
    bn = nn.BatchNorm1d(2)
    bn(a)
    bn(b * 3)
    gb = bn.backward(np.ones_like(b))
    ga = bn.backward(a)
    assert gb.shape == ga.shape == (3, 2) and not np.allclose(ga, gb)
