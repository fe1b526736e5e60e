"""LayerNorm and RMSNorm (csrc/layer_norm.c, layer_norm_api.c) against float64
references and finite differences on every ISA path; the fused residual add;
gradients accumulated into grad_input; thread-count independence; the nn.LayerNorm
and nn.RMSNorm modules; bad inputs. Without torch (see test_layer_norm_torch.py)."""
import numpy as np
import pytest

import fastnn
from fastnn import nn, ops
from nn_checks import fd_check


def ln_ref(x, k, w=None, b=None, eps=1e-5, rms=False):
    """y, mean, rstd in float64 over the trailing k axes."""
    x64 = np.asarray(x, np.float64)
    axes = tuple(range(x64.ndim - k, x64.ndim))
    mean = np.zeros(x64.shape[:x64.ndim - k]) if rms else x64.mean(axis=axes)
    mk = mean.reshape(mean.shape + (1,) * k)
    var = ((x64 - mk) ** 2).mean(axis=axes)
    rstd = 1.0 / np.sqrt(var + eps)
    y = (x64 - mk) * rstd.reshape(mk.shape)
    if w is not None:
        y = y * np.asarray(w, np.float64)
    if b is not None:
        y = y + np.asarray(b, np.float64)
    return y, mean, rstd


def ln_backward_ref(g, x, k, w=None, eps=1e-5, rms=False):
    x64, g64 = np.asarray(x, np.float64), np.asarray(g, np.float64)
    lead = x64.shape[:x64.ndim - k]
    D = int(np.prod(x64.shape[x64.ndim - k:]))
    x2, g2 = x64.reshape(-1, D), g64.reshape(-1, D)
    mean = np.zeros((x2.shape[0], 1)) if rms else x2.mean(axis=1, keepdims=True)
    rstd = 1.0 / np.sqrt(((x2 - mean) ** 2).mean(axis=1, keepdims=True) + eps)
    xhat = (x2 - mean) * rstd
    wv = np.ones(D) if w is None else np.asarray(w, np.float64).reshape(-1)
    gw = g2 * wv
    dx = rstd * (gw - (0 if rms else gw.mean(axis=1, keepdims=True))
                 - xhat * (gw * xhat).mean(axis=1, keepdims=True))
    shape = x64.shape[x64.ndim - k:]
    return (dx.reshape(x64.shape), (g2 * xhat).sum(axis=0).reshape(shape),
            g2.sum(axis=0).reshape(shape))


def rand(rng, *shape, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(np.float32)


# (input shape, normalized_shape): one row, odd sizes around the vector widths, 2-D shapes
SHAPES = [((1, 1), (1,)), ((3, 7), (7,)), ((4, 5, 16), (16,)), ((2, 3, 33), (33,)),
          ((5, 128), (128,)), ((2, 3, 4, 5), (4, 5)), ((70, 17), (17,)), ((3, 1031), (1031,))]


@pytest.mark.parametrize("shape,norm", SHAPES)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_layer_norm_matches_float64(isa, rng, shape, norm, affine):
    x = rand(rng, *shape, scale=3.0, shift=2.0)
    w = rand(rng, *norm) if affine != "none" else None
    b = rand(rng, *norm) if affine == "both" else None
    y, mean, rstd = ops.layer_norm(x, norm, w, b, 1e-5, return_stats=True)
    y_ref, mean_ref, rstd_ref = ln_ref(x, len(norm), w, b)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rstd, rstd_ref, rtol=1e-6)
    g = rand(rng, *shape)
    dx, dw, db = ops.layer_norm_backward(g, x, mean, rstd, norm, w)
    dx_ref, dw_ref, db_ref = ln_backward_ref(g, x, len(norm), w)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-4)
    if w is None:
        assert dw is None and db is None
    else:
        np.testing.assert_allclose(dw, dw_ref, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(db, db_ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("shape,norm", SHAPES)
def test_rms_norm_matches_float64(isa, rng, shape, norm):
    x = rand(rng, *shape, scale=2.0, shift=1.0)
    w = rand(rng, *norm)
    y, rstd = ops.rms_norm(x, norm, w, 1e-6, return_stats=True)
    y_ref, _, rstd_ref = ln_ref(x, len(norm), w, None, 1e-6, rms=True)
    np.testing.assert_allclose(y, y_ref, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(rstd, rstd_ref, rtol=1e-6)
    g = rand(rng, *shape)
    dx, dw = ops.rms_norm_backward(g, x, rstd, norm, w)
    dx_ref, dw_ref, _ = ln_backward_ref(g, x, len(norm), w, 1e-6, rms=True)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-4, atol=1e-4)


def test_rms_norm_default_eps_is_float32_epsilon(rng):
    x = np.full((2, 4), 1e-4, np.float32)
    y = ops.rms_norm(x, 4)
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(y, 1e-4 / np.sqrt(1e-8 + eps), rtol=1e-5)


def test_constant_row_normalises_to_bias(isa):
    x = np.full((3, 40), 7.25, np.float32)
    b = np.arange(40, dtype=np.float32)
    y = ops.layer_norm(x, 40, np.ones(40, np.float32), b)
    np.testing.assert_array_equal(y, np.broadcast_to(b, x.shape))


def test_add_layer_norm_is_add_then_layer_norm(isa, rng):
    x, r = rand(rng, 6, 9, 48), rand(rng, 6, 9, 48)
    w, b = rand(rng, 48), rand(rng, 48)
    s, y, mean, rstd = ops.add_layer_norm(x, r, 48, w, b, return_stats=True)
    np.testing.assert_array_equal(s, x + r)
    y2, mean2, rstd2 = ops.layer_norm(x + r, 48, w, b, return_stats=True)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(mean, mean2)
    np.testing.assert_array_equal(rstd, rstd2)


def test_backward_adds_into_grad_input_and_grads(rng):
    x, g = rand(rng, 5, 20), rand(rng, 5, 20)
    w = rand(rng, 20)
    _, mean, rstd = ops.layer_norm(x, 20, w, None, return_stats=True)
    dx, dw, db = ops.layer_norm_backward(g, x, mean, rstd, 20, w)
    base = rand(rng, 5, 20)
    acc, gw, gb = base.copy(), np.ones(20, np.float32), np.full(20, 2.0, np.float32)
    out = ops.layer_norm_backward(g, x, mean, rstd, 20, w, True, gw, gb, acc)
    assert out[0] is acc and out[1] is gw and out[2] is gb
    np.testing.assert_allclose(acc, base + dx, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gw, 1.0 + dw, rtol=1e-6)
    np.testing.assert_allclose(gb, 2.0 + db, rtol=1e-6)
    assert ops.layer_norm_backward(g, x, mean, rstd, 20, w, input_grad=False)[0] is None


@pytest.mark.parametrize("M,D", [(1, 5), (7, 33), (300, 128), (1000, 64), (40, 3000)])
def test_threads_give_identical_bits(rng, M, D):
    x, g, r = rand(rng, M, D), rand(rng, M, D), rand(rng, M, D)
    w, b = rand(rng, D), rand(rng, D)
    results = []
    for n in (1, 2, 3):
        with fastnn.num_threads(n):
            s, y, mean, rstd = ops.add_layer_norm(x, r, D, w, b, return_stats=True)
            grads = ops.layer_norm_backward(g, s, mean, rstd, D, w)
            ry, rr = ops.rms_norm(x, D, w, return_stats=True)
            rgrads = ops.rms_norm_backward(g, x, rr, D, w)
            results.append((s, y, mean, rstd, ry, rr) + grads + rgrads)
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("cls,kwargs", [
    (nn.LayerNorm, {}), (nn.LayerNorm, {"bias": False}),
    (nn.LayerNorm, {"elementwise_affine": False}), (nn.RMSNorm, {"eps": 1e-5}),
    (nn.RMSNorm, {"elementwise_affine": False})])
@pytest.mark.parametrize("shape,norm", [((4, 6), 6), ((3, 2, 5, 4), (5, 4))])
def test_modules_finite_differences(isa, rng, cls, kwargs, shape, norm):
    m = cls(norm, **kwargs)
    for p in m.parameters():
        p.data[...] = rand(rng, *p.shape) + 1.0
    fd_check(m, rand(rng, *shape), rng, eps=1e-2, rtol=3e-2, atol=3e-3)


def test_module_parameters_and_forward_add(rng):
    ln = nn.LayerNorm((3, 4))
    assert [n for n, _ in ln.named_parameters()] == ["weight", "bias"]
    assert ln.weight.shape == (3, 4) and np.all(ln.weight.data == 1) and np.all(ln.bias.data == 0)
    assert [n for n, _ in nn.LayerNorm(4, bias=False).named_parameters()] == ["weight"]
    assert list(nn.LayerNorm(4, elementwise_affine=False).named_parameters()) == []
    assert [n for n, _ in nn.RMSNorm(4).named_parameters()] == ["weight"]
    ln = nn.LayerNorm(8)
    ln.weight.data[...] = rand(rng, 8)
    x, r, g = rand(rng, 5, 8), rand(rng, 5, 8), rand(rng, 5, 8)
    s, y = ln.forward_add(x, r)
    np.testing.assert_array_equal(s, x + r)
    np.testing.assert_array_equal(y, ln(x + r))
    ln.backward(g)  # the plain call's context
    up = rand(rng, 5, 8)
    got = ln.backward(g, grad_input=up.copy())
    ref = nn.LayerNorm(8)
    ref.weight.data[...] = ln.weight.data
    ref(x + r)
    np.testing.assert_allclose(got, up + ref.backward(g), rtol=1e-6, atol=1e-6)


def test_modules_save_and_load(tmp_path, rng):
    model = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.RMSNorm(8, eps=1e-4))
    for p in model.parameters():
        p.data[...] = rand(rng, *p.shape)
    path = tmp_path / "m.fastnn"
    fastnn.save(model, path)
    loaded = fastnn.load(path)
    x = rand(rng, 3, 6)
    np.testing.assert_array_equal(loaded(x), model(x))
    assert "eps=0.0001" in repr(loaded)


@pytest.mark.parametrize("call,match", [
    (lambda: ops.layer_norm(np.zeros((2, 3), np.float32), 4), "does not end with"),
    (lambda: ops.layer_norm(np.zeros((2, 3), np.float32), (2, 3, 1)), "does not end with"),
    (lambda: ops.layer_norm(np.zeros((2, 3), np.float32), ()), "non-empty"),
    (lambda: ops.layer_norm(np.zeros((2, 3), np.float32), 3, np.ones(4)), "weight must have"),
    (lambda: ops.layer_norm(np.zeros((2, 3), np.float32), 3, eps=-1.0), "eps"),
    (lambda: ops.rms_norm(np.zeros((2, 3), np.float32), 3, eps=float("nan")), "eps"),
    (lambda: ops.add_layer_norm(np.zeros((2, 3)), np.zeros((2, 4)), 3), "residual"),
    (lambda: ops.layer_norm_backward(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(3),
                                     np.zeros(2), 3), "mean must have"),
    (lambda: nn.LayerNorm(0), "normalized_shape"),
    (lambda: nn.LayerNorm(4)(np.zeros((2, 5), np.float32)), r"LayerNorm\(\(4,\)\) expects"),
    (lambda: nn.RMSNorm((2, 2))(np.zeros((2, 4), np.float32)), "expects input"),
])
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_dtype_raises_type_error():
    with pytest.raises(TypeError, match="input"):
        ops.layer_norm(np.array([["a", "b"]]), 2)
    with pytest.raises(TypeError, match="normalized_shape"):
        nn.LayerNorm("x")
