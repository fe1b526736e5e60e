"""Convolution kernels and modules (csrc/conv/, _conv.pxi, nn/conv.py) against a NumPy
float64 reference and finite differences, on every ISA path; no torch here."""
import numpy as np
import pytest

import fastnn
from fastnn import nn, ops


# ---- float64 reference: direct sums over kernel taps ---------------------------
def ref_conv2d(x, w, b, stride, pads, dilation, groups):
    """x (N, C, H, W), w (O, C/g, KH, KW), pads ((top, bottom), (left, right))."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    N, C, H, W = x.shape
    O, Cg, KH, KW = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    xp = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    OH = (H + sum(pads[0]) - dh * (KH - 1) - 1) // sh + 1
    OW = (W + sum(pads[1]) - dw * (KW - 1) - 1) // sw + 1
    Og = O // groups
    y = np.zeros((N, O, OH, OW))
    for g in range(groups):
        xg = xp[:, g * Cg:(g + 1) * Cg]
        wg = w[g * Og:(g + 1) * Og]
        for kh in range(KH):
            for kw in range(KW):
                patch = xg[:, :, kh * dh:kh * dh + sh * (OH - 1) + 1:sh,
                           kw * dw:kw * dw + sw * (OW - 1) + 1:sw]
                y[:, g * Og:(g + 1) * Og] += np.einsum("ncij,oc->noij", patch, wg[:, :, kh, kw])
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


def ref_conv2d_dx(gy, w, xshape, stride, pads, dilation, groups):
    """The adjoint of ref_conv2d in x (also the transposed convolution's forward)."""
    gy, w = np.asarray(gy, np.float64), np.asarray(w, np.float64)
    N, C, H, W = xshape
    O, Cg, KH, KW = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    OH, OW = gy.shape[2:]
    Og = O // groups
    Hp = max(H + sum(pads[0]), dh * (KH - 1) + sh * (OH - 1) + 1)
    Wp = max(W + sum(pads[1]), dw * (KW - 1) + sw * (OW - 1) + 1)
    dxp = np.zeros((N, C, Hp, Wp))
    for g in range(groups):
        wg = w[g * Og:(g + 1) * Og]
        for kh in range(KH):
            for kw in range(KW):
                dxp[:, g * Cg:(g + 1) * Cg, kh * dh:kh * dh + sh * (OH - 1) + 1:sh,
                    kw * dw:kw * dw + sw * (OW - 1) + 1:sw] += np.einsum(
                        "noij,oc->ncij", gy[:, g * Og:(g + 1) * Og], wg[:, :, kh, kw])
    return dxp[:, :, pads[0][0]:pads[0][0] + H, pads[1][0]:pads[1][0] + W]


def ref_conv2d_dw(gy, x, wshape, stride, pads, dilation, groups):
    """The gradient of sum(gy * ref_conv2d(x, w)) in w: per tap, gy against the
    input window that tap reads."""
    gy, x = np.asarray(gy, np.float64), np.asarray(x, np.float64)
    O, Cg, KH, KW = wshape
    (sh, sw), (dh, dw) = stride, dilation
    OH, OW = gy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    Og = O // groups
    dwt = np.zeros(wshape)
    for g in range(groups):
        for kh in range(KH):
            for kw in range(KW):
                patch = xp[:, g * Cg:(g + 1) * Cg, kh * dh:kh * dh + sh * (OH - 1) + 1:sh,
                           kw * dw:kw * dw + sw * (OW - 1) + 1:sw]
                dwt[g * Og:(g + 1) * Og, :, kh, kw] = np.einsum(
                    "noij,ncij->oc", gy[:, g * Og:(g + 1) * Og], patch)
    return dwt


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def pairs(p):
    return ((p[0], p[0]), (p[1], p[1]))


# (x shape, w shape, stride, padding (as pairs), dilation, groups)
CASES = [
    ((2, 3, 7, 6), (4, 3, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    ((2, 4, 9, 8), (6, 2, 3, 2), (2, 1), ((1, 1), (2, 2)), (1, 2), 2),
    ((1, 4, 6, 7), (4, 1, 3, 3), (1, 2), ((2, 2), (1, 1)), (2, 1), 4),   # depthwise
    ((3, 2, 5, 5), (3, 2, 2, 2), (3, 3), ((0, 0), (0, 0)), (1, 1), 1),   # stride > kernel
    ((2, 2, 4, 4), (5, 2, 4, 4), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),   # kernel = input
    ((1, 1, 1, 1), (2, 1, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1), 1),   # 1x1 image
    ((2, 3, 1, 1), (2, 3, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),   # 1x1 image, padded
]


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_forward_backward_reference(isa, case, bias):
    xs, ws, st, pads, dl, g = CASES[case]
    rng = np.random.default_rng(case)
    x, w = rand(rng, *xs), rand(rng, *ws)
    b = rand(rng, ws[0]) if bias else None
    p = (pads[0][0], pads[1][0])
    y = ops.conv2d(x, w, b, st, p, dl, g)
    want = ref_conv2d(x, w, b, st, pads, dl, g)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    gy = rand(rng, *y.shape)
    dx, dw, db = ops.conv2d_backward(gy, x, w, st, p, dl, g, bias_grad=bias)
    np.testing.assert_allclose(dx, ref_conv2d_dx(gy, w, xs, st, pads, dl, g), rtol=1e-4,
                               atol=1e-4)
    assert (db is not None) == bias
    if bias:
        np.testing.assert_allclose(db, gy.astype(np.float64).sum((0, 2, 3)), rtol=1e-4,
                                   atol=1e-4)
    # dW = d/dw sum(gy * conv(x, w)): linear in w, so the reference's gradient
    # is exact by the basis vectors
    flat = np.zeros(w.size)
    for i in range(w.size):
        e = np.zeros(w.size)
        e[i] = 1.0
        flat[i] = (ref_conv2d(x, e.reshape(ws), None, st, pads, dl, g) * gy).sum()
    np.testing.assert_allclose(dw, flat.reshape(ws), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ref_conv2d_dw(gy, x, ws, st, pads, dl, g), flat.reshape(ws),
                               rtol=1e-9, atol=1e-9)


# Wide layers (16+ channels), where the direct path (conv/direct_api.c) runs every
# direction it can: several channel panels, pixel counts off the tile height, no-copy
# 'valid' images, dilation, asymmetric padding, 1x1 kernels; and where its input
# gradient hands over to im2col (stride 2, padding past (K - 1) d, few channels).
WIDE_CASES = [
    ((2, 16, 9, 11), (40, 16, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    ((3, 20, 8, 7), (33, 20, 3, 2), (1, 1), ((2, 2), (1, 1)), (2, 1)),
    ((2, 17, 10, 10), (16, 17, 5, 5), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    ((2, 16, 6, 7), (20, 16, 4, 4), (1, 1), ((1, 2), (1, 2)), (1, 1)),
    ((1, 32, 5, 5), (32, 32, 1, 1), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    ((2, 16, 9, 9), (18, 16, 3, 3), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    ((2, 16, 6, 6), (8, 16, 3, 3), (1, 1), ((3, 3), (3, 3)), (1, 1)),
    ((2, 3, 12, 12), (16, 3, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    ((1, 1, 28, 28), (6, 1, 5, 5), (1, 1), ((2, 2), (2, 2)), (1, 1)),
]


@pytest.mark.parametrize("case", range(len(WIDE_CASES)))
def test_wide_layers_every_direction(isa, case):
    xs, ws, st, pads, dl = WIDE_CASES[case]
    rng = np.random.default_rng(100 + case)
    x, w, b = rand(rng, *xs), rand(rng, *ws), rand(rng, ws[0])
    padding = "same" if pads[0][0] != pads[0][1] else (pads[0][0], pads[1][0])
    y = ops.conv2d(x, w, b, st, padding, dl, activation="relu")
    want = ref_conv2d(x, w, b, st, pads, dl, 1)
    np.testing.assert_allclose(y, np.maximum(want, 0), rtol=1e-4, atol=1e-3)
    gy = rand(rng, *y.shape)
    dx, dw, db = ops.conv2d_backward(gy, x, w, st, padding, dl)
    np.testing.assert_allclose(dx, ref_conv2d_dx(gy, w, xs, st, pads, dl, 1), rtol=1e-4,
                               atol=1e-3)
    np.testing.assert_allclose(dw, ref_conv2d_dw(gy, x, ws, st, pads, dl, 1), rtol=1e-4,
                               atol=1e-3)
    np.testing.assert_allclose(db, gy.astype(np.float64).sum((0, 2, 3)), rtol=1e-4, atol=1e-3)
    # each gradient alone (the others skipped) is the same
    alone = [ops.conv2d_backward(gy, x, w, st, padding, dl, 1, *flags)[i]
             for i, flags in enumerate([(True, False, False), (False, True, False),
                                        (False, False, True)])]
    for a, full in zip(alone, (dx, dw, db)):
        np.testing.assert_array_equal(a, full)


def test_same_padding_even_kernel_is_asymmetric(isa):
    rng = np.random.default_rng(1)
    x, w = rand(rng, 2, 3, 6, 7), rand(rng, 4, 3, 4, 2)
    y = ops.conv2d(x, w, None, 1, "same", (1, 3))
    # total = d (k - 1): rows 3 -> (1, 2), columns 3 -> (1, 2)
    want = ref_conv2d(x, w, None, (1, 1), ((1, 2), (1, 2)), (1, 3), 1)
    assert y.shape == (2, 4, 6, 7)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    gy = rand(rng, *y.shape)
    dx, _, _ = ops.conv2d_backward(gy, x, w, 1, "same", (1, 3))
    np.testing.assert_allclose(dx, ref_conv2d_dx(gy, w, x.shape, (1, 1), ((1, 2), (1, 2)),
                                                 (1, 3), 1), rtol=1e-4, atol=1e-4)
    assert ops.conv2d(x, w, None, 1, "valid").shape == (2, 4, 3, 6)


# (x shape, w shape, stride, pads, dilation, groups): the im2col path (groups), the direct
# tiles (16+ channels, flipped-kernel input gradient) and the first-layer row vectors
FD_CASES = [
    ((1, 4, 5, 6), (4, 2, 3, 2), (2, 1), ((1, 1), (0, 0)), (1, 2), 2),
    ((1, 16, 4, 5), (18, 16, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
    ((2, 2, 5, 17), (5, 2, 3, 3), (1, 1), ((1, 1), (1, 1)), (1, 1), 1),
]


@pytest.mark.parametrize("case", range(len(FD_CASES)))
def test_finite_differences(isa, case):
    """C gradients against central differences of the float64 reference loss."""
    rng = np.random.default_rng(7)
    xs, ws, st, pads, dl, g = FD_CASES[case]
    x, w, b = rand(rng, *xs), rand(rng, *ws), rand(rng, ws[0])
    p = (pads[0][0], pads[1][0])
    y = ops.conv2d(x, w, b, st, p, dl, g)
    gy = rand(rng, *y.shape)
    dx, dw, db = ops.conv2d_backward(gy, x, w, st, p, dl, g)

    def loss(xv, wv, bv):
        return (ref_conv2d(xv, wv, bv, st, pads, dl, g) * gy).sum()

    eps = 1e-3
    for arr, grad, which in ((x, dx, 0), (w, dw, 1), (b, db, 2)):
        base = [x.astype(np.float64), w.astype(np.float64), b.astype(np.float64)]
        for idx in list(np.ndindex(arr.shape))[::3 if arr.size < 300 else 37]:
            plus = [a.copy() for a in base]
            minus = [a.copy() for a in base]
            plus[which][idx] += eps
            minus[which][idx] -= eps
            fd = (loss(*plus) - loss(*minus)) / (2 * eps)
            assert abs(fd - grad[idx]) < 1e-3 * max(1.0, abs(fd)), (which, idx)


def test_conv1d_is_conv2d_with_height_one(isa):
    rng = np.random.default_rng(3)
    x, w, b = rand(rng, 3, 4, 11), rand(rng, 6, 2, 3), rand(rng, 6)
    y = ops.conv1d(x, w, b, 2, 1, 2, 2)
    want = ref_conv2d(x[:, :, None], w[:, :, None], b, (1, 2), ((0, 0), (1, 1)), (1, 2), 2)
    np.testing.assert_allclose(y, want[:, :, 0], rtol=1e-4, atol=1e-4)
    gy = rand(rng, *y.shape)
    dx, dw, db = ops.conv1d_backward(gy, x, w, 2, 1, 2, 2)
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (6,)
    np.testing.assert_allclose(dx, ref_conv2d_dx(gy[:, :, None], w[:, :, None], (3, 4, 1, 11),
                                                 (1, 2), ((0, 0), (1, 1)), (1, 2), 2)[:, :, 0],
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("stride, padding, output_padding, dilation, groups", [
    ((2, 2), (1, 1), (1, 1), (1, 1), 1),
    ((2, 3), (1, 0), (1, 2), (1, 2), 2),
    ((1, 1), (0, 0), (0, 0), (2, 1), 1),
])
def test_conv_transpose2d_reference(isa, stride, padding, output_padding, dilation, groups):
    rng = np.random.default_rng(5)
    x, w, b = rand(rng, 2, 4, 4, 5), rand(rng, 4, 3, 3, 2), rand(rng, 3 * groups)
    y = ops.conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)
    OH = (4 - 1) * stride[0] - 2 * padding[0] + dilation[0] * 2 + output_padding[0] + 1
    OW = (5 - 1) * stride[1] - 2 * padding[1] + dilation[1] * 1 + output_padding[1] + 1
    assert y.shape == (2, 3 * groups, OH, OW)
    pads = pairs(padding)
    want = ref_conv2d_dx(x, w, (2, 3 * groups, OH, OW), stride, pads, dilation, groups)
    np.testing.assert_allclose(y, want + b[None, :, None, None], rtol=1e-4, atol=1e-4)
    gy = rand(rng, *y.shape)
    dx, dw, db = ops.conv_transpose2d_backward(gy, x, w, stride, padding, output_padding,
                                               groups, dilation)
    # the transposed convolution's input gradient is the convolution of gy with w
    np.testing.assert_allclose(dx, ref_conv2d(gy, w, None, stride, pads, dilation, groups)
                               [:, :, :4, :5], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(db, gy.astype(np.float64).sum((0, 2, 3)), rtol=1e-4, atol=1e-4)
    # weight gradient by finite differences of the (linear) reference in w
    flat = np.zeros(w.size)
    for i in range(w.size):
        e = np.zeros(w.size)
        e[i] = 1.0
        flat[i] = (ref_conv2d_dx(x, e.reshape(w.shape), y.shape, stride, pads, dilation,
                                 groups) * gy).sum()
    np.testing.assert_allclose(dw, flat.reshape(w.shape), rtol=1e-4, atol=1e-4)


def test_conv_transpose_output_size_and_1d(isa):
    rng = np.random.default_rng(6)
    x, w = rand(rng, 1, 2, 5), rand(rng, 2, 3, 3)
    assert ops.conv_transpose1d(x, w, None, 2, 1).shape == (1, 3, 9)
    assert ops.conv_transpose1d(x, w, None, 2, 1, output_size=[10]).shape == (1, 3, 10)
    with pytest.raises(ValueError, match="output_size"):
        ops.conv_transpose1d(x, w, None, 2, 1, output_size=[11])
    y = ops.conv_transpose1d(x, w, None, 2, 1, 1)
    want = ref_conv2d_dx(x[:, :, None], w[:, :, None], (1, 3, 1, 10), (1, 2), ((0, 0), (1, 1)),
                         (1, 1), 1)
    np.testing.assert_allclose(y, want[:, :, 0], rtol=1e-4, atol=1e-4)


def test_skip_flags_and_empty_batch():
    rng = np.random.default_rng(8)
    x, w = rand(rng, 2, 3, 5, 5), rand(rng, 4, 3, 3, 3)
    gy = rand(rng, 2, 4, 3, 3)
    full = ops.conv2d_backward(gy, x, w)
    dx, dw, db = ops.conv2d_backward(gy, x, w, input_grad=False)
    assert dx is None
    np.testing.assert_array_equal(dw, full[1])
    np.testing.assert_array_equal(db, full[2])
    dx, dw, db = ops.conv2d_backward(gy, x, w, weight_grad=False, bias_grad=False)
    assert dw is None and db is None
    np.testing.assert_array_equal(dx, full[0])
    e = np.zeros((0, 3, 5, 5), np.float32)
    assert ops.conv2d(e, w).shape == (0, 4, 3, 3)
    dx, dw, db = ops.conv2d_backward(np.zeros((0, 4, 3, 3), np.float32), e, w)
    assert dx.shape == e.shape and not dw.any() and not db.any()


def test_unbatched(isa):
    rng = np.random.default_rng(9)
    x, w = rand(rng, 3, 6, 6), rand(rng, 2, 3, 3, 3)
    np.testing.assert_array_equal(ops.conv2d(x, w, None, 1, 1), ops.conv2d(x[None], w, None, 1,
                                                                              1)[0])
    dx, _, _ = ops.conv2d_backward(np.ones((2, 6, 6), np.float32), x, w, 1, 1)
    assert dx.shape == x.shape


def test_fused_relu(isa):
    rng = np.random.default_rng(10)
    x, w, b = rand(rng, 2, 3, 6, 6), rand(rng, 4, 3, 3, 3), rand(rng, 4)
    np.testing.assert_array_equal(ops.conv2d(x, w, b, 1, 1, activation="relu"),
                                  np.maximum(ops.conv2d(x, w, b, 1, 1), 0))


EPILOGUE_OPS = {"relu": ops.relu, "sigmoid": ops.sigmoid, "tanh": ops.tanh, "gelu": ops.gelu,
                "gelu_tanh": lambda y: ops.gelu(y, "tanh"), "silu": ops.silu, "mish": ops.mish,
                "hardswish": ops.hardswish, "elu": ops.elu, "selu": ops.selu}


@pytest.mark.parametrize("activation", [a for a in ops.ACTIVATIONS if a != "none"])
@pytest.mark.parametrize("xs, ws", [((2, 3, 6, 6), (4, 3, 3, 3)), ((1, 1, 28, 28), (8, 1, 5, 5)),
                                    ((4, 64, 7, 7), (64, 64, 1, 1)),
                                    ((2, 16, 20, 20), (24, 16, 3, 3))], ids=str)
def test_fused_activation_is_the_elementwise_op(isa, activation, xs, ws):
    """Every epilogue activation, on the direct and the im2col paths alike (the
    direct one once applied only relu)."""
    rng = np.random.default_rng(11)
    x, w, b = rand(rng, *xs), rand(rng, *ws), rand(rng, ws[0])
    got = ops.conv2d(x, w, b, 1, 1, activation=activation)
    np.testing.assert_array_equal(got, EPILOGUE_OPS[activation](ops.conv2d(x, w, b, 1, 1)))


@pytest.mark.parametrize("xs, ws, groups", [((5, 8, 20, 20), (16, 8, 3, 3), 1),
                                             ((1, 16, 64, 64), (16, 1, 3, 3), 16),
                                             ((1, 8, 90, 90), (8, 8, 3, 3), 1),
                                             ((7, 24, 12, 12), (40, 24, 3, 3), 1),
                                             ((1, 32, 40, 40), (32, 32, 3, 3), 1),
                                             ((9, 3, 33, 33), (16, 3, 3, 3), 1)])
def test_threads_bitwise(isa, xs, ws, groups):
    rng = np.random.default_rng(11)
    x, w, b = rand(rng, *xs), rand(rng, *ws), rand(rng, ws[0])
    results = []
    for n in (1, 2, 3):
        with fastnn.num_threads(n):
            y = ops.conv2d(x, w, b, 1, 1, 1, groups)
            gy = np.cos(y)
            results.append((y,) + ops.conv2d_backward(gy, x, w, 1, 1, 1, groups)
                           + ops.conv_transpose2d_backward(x, y, w, 1, 1, 0, groups))
    for other in results[1:]:
        for a, b_ in zip(results[0], other):
            np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("call, match", [
    (lambda x, w: ops.conv2d(x, w[:, :2]), "channels"),
    (lambda x, w: ops.conv2d(x, w, groups=2), "divisible by groups"),
    (lambda x, w: ops.conv2d(x, w, groups=0), "groups must be positive"),
    (lambda x, w: ops.conv2d(x[:, :, :2, :2], w), "larger than the padded input"),
    (lambda x, w: ops.conv2d(x[0, 0], w), "input must be 3-D"),
    (lambda x, w: ops.conv2d(x, w[0]), "weight must be 4-D"),
    (lambda x, w: ops.conv2d(x, w, padding=-1), "padding must be non-negative"),
    (lambda x, w: ops.conv2d(x, w, stride=0), "stride must be positive"),
    (lambda x, w: ops.conv2d(x, w, dilation=(1, 0)), "dilation must be positive"),
    (lambda x, w: ops.conv2d(x, w, stride=2, padding="same"), "strided"),
    (lambda x, w: ops.conv2d(x, w, padding="full"), "padding must be"),
    (lambda x, w: ops.conv2d(x, w, np.zeros(5, np.float32)), "bias must have shape"),
    (lambda x, w: ops.conv2d(x, w, stride=(1, 1, 1)), "stride must be an int or a tuple"),
    (lambda x, w: ops.conv2d_backward(np.zeros((2, 4, 3, 3), np.float32), x, w),
     "grad_output must have"),
    (lambda x, w: ops.conv_transpose2d(x, w, stride=2, output_padding=2), "output_padding"),
    (lambda x, w: ops.conv_transpose2d(x, w, padding=9), "empty"),
])
def test_bad_inputs(call, match):
    x = np.zeros((2, 3, 5, 5), np.float32)
    w = np.zeros((3, 3, 3, 3), np.float32)
    with pytest.raises(ValueError, match=match):
        call(x, w)


def test_bad_dtype():
    with pytest.raises(TypeError):
        ops.conv2d(np.zeros((1, 1, 3, 3), np.complex64), np.zeros((1, 1, 1, 1), np.float32))


# ---- modules --------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
def test_padding_modes_backward_folds(mode):
    rng = np.random.default_rng(12)
    m = nn.Conv2d(2, 3, 3, padding=(2, 1), padding_mode=mode)
    x = rand(rng, 2, 2, 5, 4)
    y = m(x)
    npmode = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}[mode]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (2, 2), (1, 1)), mode=npmode)
    want = ref_conv2d(xp, m.weight.data, m.bias.data, (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    gy = rand(rng, *y.shape)
    dx = m.backward(gy)
    eps = 1e-3
    for idx in list(np.ndindex(x.shape))[::5]:
        xa, xb = x.astype(np.float64), x.astype(np.float64)
        xa[idx] += eps
        xb[idx] -= eps
        fa = ref_conv2d(np.pad(xa, ((0, 0), (0, 0), (2, 2), (1, 1)), mode=npmode),
                        m.weight.data, None, (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
        fb = ref_conv2d(np.pad(xb, ((0, 0), (0, 0), (2, 2), (1, 1)), mode=npmode),
                        m.weight.data, None, (1, 1), ((0, 0), (0, 0)), (1, 1), 1)
        fd = ((fa - fb) * gy).sum() / (2 * eps)
        assert abs(fd - dx[idx]) < 1e-3 * max(1.0, abs(fd)), idx


def test_sequential_fuses_conv_relu():
    rng = np.random.default_rng(13)
    fused = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU())
    plain = nn.Conv2d(3, 4, 3, padding=1)
    plain.load_state_dict(fused[0].state_dict())
    relu = nn.ReLU()
    x = rand(rng, 2, 3, 6, 6)
    steps, _ = fused._plan()
    assert steps[0] == (fused[0], "relu")
    y = fused(x)
    np.testing.assert_array_equal(y, relu(plain(x)))
    gy = rand(rng, *y.shape)
    np.testing.assert_array_equal(fused.backward(gy), plain.backward(relu.backward(gy)))
    np.testing.assert_array_equal(fused[0].weight.grad, plain.weight.grad)
    np.testing.assert_array_equal(fused[0].bias.grad, plain.bias.grad)


@pytest.mark.parametrize("make", [
    lambda: nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, dilation=2, groups=2),
    lambda: nn.Conv1d(3, 6, 3, padding="same", bias=False, padding_mode="reflect"),
    lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
    lambda: nn.ConvTranspose1d(2, 3, 4, dilation=2),
])
def test_save_load_roundtrip(tmp_path, make):
    m = make()
    path = tmp_path / "conv.fnn"
    fastnn.save(m, path)
    m2 = fastnn.load(path)
    assert type(m2) is type(m) and repr(m2) == repr(m)
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(m2.state_dict()[k], v)
    x = np.random.default_rng(0).standard_normal(
        (2, m.in_channels) + (9,) * len(m.kernel_size)).astype(np.float32)
    np.testing.assert_array_equal(m(x), m2(x))


def test_module_constructor_errors():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(3, 4, 3, padding_mode="mirror")
    with pytest.raises(ValueError, match="zeros"):
        nn.ConvTranspose2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(TypeError):
        nn.Conv2d(3, 4, 2.5)


def test_init_bounds():
    m = nn.Conv2d(8, 4, 3)
    bound = 1 / np.sqrt(8 * 9)
    assert m.weight.data.shape == (4, 8, 3, 3)
    assert np.abs(m.weight.data).max() <= bound and np.abs(m.bias.data).max() <= bound
    assert nn.ConvTranspose2d(8, 4, 3, groups=2).weight.data.shape == (8, 2, 3, 3)


@pytest.mark.parametrize("layer", [
    nn.Conv1d(4, 6, 3, groups=2), nn.Conv2d(3, 8, (3, 2), bias=False),
    nn.ConvTranspose1d(4, 6, 3, groups=2), nn.ConvTranspose2d(3, 8, 2, stride=2)],
    ids=lambda m: type(m).__name__)
def test_state_shapes_match_the_layer(layer):
    """What fastnn.load checks before building (as test_serialization does for layers
    constructible without arguments)."""
    from fastnn import serialization
    args = serialization.architecture._arguments(type(layer), layer.get_config(), True,
                                                 type(layer).__name__).arguments
    assert type(layer).state_shapes(dict(args)) == serialization.files.state_signature(layer)
    with pytest.raises(ValueError, match="kernel_size"):
        type(layer).state_shapes(dict(args, kernel_size=[0] * len(layer.kernel_size)))
