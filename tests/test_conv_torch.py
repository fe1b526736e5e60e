"""Conv1d / Conv2d / ConvTranspose1d / ConvTranspose2d against PyTorch: forward, input
gradient and every parameter gradient over a grid of options."""
import itertools

import numpy as np
import pytest

from fastnn import nn

torch = pytest.importorskip("torch")

RTOL, ATOL = 1e-4, 1e-4


def compare(fm, tm, x, what, **fwd):
    fm.load_state_dict({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})
    xt = torch.tensor(x, requires_grad=True)
    yt = tm(xt, **fwd)
    y = fm(x.copy(), **fwd)
    np.testing.assert_allclose(y, yt.detach().numpy(), RTOL, ATOL, err_msg=f"{what}: forward")
    g = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    yt.backward(torch.from_numpy(g.copy()))
    dx = fm.backward(g.copy())
    np.testing.assert_allclose(dx, xt.grad.numpy(), RTOL, ATOL, err_msg=f"{what}: input grad")
    for (name, p), (tname, tp) in zip(fm.named_parameters(), tm.named_parameters()):
        assert name == tname
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), RTOL, ATOL,
                                   err_msg=f"{what}: {name}.grad")
    assert list(fm.state_dict()) == list(tm.state_dict())


CONV2D = [case for case in itertools.product(
    [1, 2, (2, 1)],                     # stride
    [0, 1, (2, 0), "same", "valid"],    # padding
    [1, (2, 1)],                        # dilation
    [1, 2],                             # groups
    [True, False],                      # bias
) if not (case[1] == "same" and case[0] != 1)]  # torch refuses 'same' with stride > 1 too


@pytest.mark.parametrize("stride, padding, dilation, groups, bias", CONV2D)
def test_conv2d_grid(stride, padding, dilation, groups, bias):
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, bias=bias)
    torch.manual_seed(0)
    tm = torch.nn.Conv2d(4, 6, (3, 2), **args)
    fm = nn.Conv2d(4, 6, (3, 2), **args)
    x = np.random.default_rng(0).standard_normal((2, 4, 9, 8)).astype(np.float32)
    compare(fm, tm, x, str(args))


@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same"])
def test_conv2d_padding_modes(mode, padding):
    torch.manual_seed(0)
    tm = torch.nn.Conv2d(3, 4, (4, 3), padding=padding, padding_mode=mode)
    fm = nn.Conv2d(3, 4, (4, 3), padding=padding, padding_mode=mode)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 7)).astype(np.float32)
    compare(fm, tm, x, f"{mode} {padding}")


def test_depthwise_and_unbatched():
    torch.manual_seed(0)
    tm = torch.nn.Conv2d(8, 16, 3, padding=1, groups=8)
    fm = nn.Conv2d(8, 16, 3, padding=1, groups=8)
    rng = np.random.default_rng(0)
    compare(fm, tm, rng.standard_normal((3, 8, 10, 10)).astype(np.float32), "depthwise")
    compare(fm, tm, rng.standard_normal((8, 10, 10)).astype(np.float32), "unbatched")


@pytest.mark.parametrize("stride, padding, dilation, groups, mode", [
    (1, 0, 1, 1, "zeros"), (2, 1, 1, 2, "zeros"), (1, "same", 2, 1, "zeros"),
    (3, 2, 1, 1, "reflect"), (1, "same", 1, 2, "circular"), (2, 1, 1, 1, "replicate"),
])
def test_conv1d(stride, padding, dilation, groups, mode):
    torch.manual_seed(0)
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                padding_mode=mode)
    tm = torch.nn.Conv1d(4, 6, 4, **args)
    fm = nn.Conv1d(4, 6, 4, **args)
    x = np.random.default_rng(0).standard_normal((2, 4, 13)).astype(np.float32)
    compare(fm, tm, x, str(args))


CONVT = [
    (1, 0, 0, 1, 1, True), (2, 1, 1, 1, 1, True), ((2, 3), (1, 0), (1, 2), 2, 1, False),
    (2, 0, 1, 1, 2, True), (1, 1, 0, 2, (2, 1), True), (3, 1, 2, 1, 1, True),
]


@pytest.mark.parametrize("stride, padding, output_padding, groups, dilation, bias", CONVT)
def test_conv_transpose2d(stride, padding, output_padding, groups, dilation, bias):
    args = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                dilation=dilation, bias=bias)
    torch.manual_seed(0)
    tm = torch.nn.ConvTranspose2d(4, 6, (3, 2), **args)
    fm = nn.ConvTranspose2d(4, 6, (3, 2), **args)
    x = np.random.default_rng(0).standard_normal((2, 4, 5, 6)).astype(np.float32)
    compare(fm, tm, x, str(args))


@pytest.mark.parametrize("stride, padding, output_padding, groups, dilation, bias", CONVT)
def test_conv_transpose1d(stride, padding, output_padding, groups, dilation, bias):
    s, p, o, d = (v[0] if isinstance(v, tuple) else v
                  for v in (stride, padding, output_padding, dilation))
    args = dict(stride=s, padding=p, output_padding=o, groups=groups, dilation=d, bias=bias)
    torch.manual_seed(0)
    tm = torch.nn.ConvTranspose1d(4, 6, 3, **args)
    fm = nn.ConvTranspose1d(4, 6, 3, **args)
    x = np.random.default_rng(0).standard_normal((2, 4, 7)).astype(np.float32)
    compare(fm, tm, x, str(args))


def test_conv_transpose2d_output_size():
    torch.manual_seed(0)
    tm = torch.nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    fm = nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    compare(fm, tm, x, "output_size", output_size=[8, 10])


def test_repr_matches_torch():
    for tm, fm in [
        (torch.nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False),
         nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)),
        (torch.nn.Conv1d(4, 8, 5, padding="same", groups=2, padding_mode="reflect"),
         nn.Conv1d(4, 8, 5, padding="same", groups=2, padding_mode="reflect")),
        (torch.nn.ConvTranspose2d(4, 8, 3, stride=2, output_padding=1, dilation=1),
         nn.ConvTranspose2d(4, 8, 3, stride=2, output_padding=1)),
    ]:
        assert repr(fm) == repr(tm)
