"""PyTorch parity of batch norm, group norm and channel dropout: fastnn.ops against
torch.nn.functional, and BatchNorm1d / BatchNorm2d / GroupNorm / Dropout1d / Dropout2d
against torch.nn over a grid of options, over several training steps (outputs, input
gradients, parameter gradients, running statistics, num_batches_tracked), then eval."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from fastnn import nn, ops  # noqa: E402
from test_nn_torch import torch_setup  # noqa: E402,F401  (seeds, one torch thread)

RTOL, ATOL = 1e-4, 1e-5


def close(got, want, what, rtol=RTOL, atol=ATOL):
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else np.asarray(want)
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype, what
    assert got.shape == want.shape, what
    if want.dtype.kind in "iu":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale, err_msg=what)


def randn(rng, shape, scale=1.0, shift=0.0):
    return (rng.standard_normal(shape) * scale + shift).astype(np.float32)


def leaf(a):
    return torch.from_numpy(a.copy()).requires_grad_()


def steps(fm, tm, shapes, rng, train_steps=3):
    """train_steps training steps, then an eval step: every output, gradient and buffer."""
    fm.load_state_dict({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})
    for step in range(train_steps + 1):
        training = step < train_steps
        fm.train(training)
        tm.train(training)
        fm.zero_grad()
        tm.zero_grad()
        shape = shapes[step % len(shapes)]
        x = randn(rng, shape, scale=1.0 + step, shift=0.5 * step)
        g = randn(rng, shape)
        xt = leaf(x)
        yt = tm(xt)
        y = fm(x)
        close(y, yt, f"step {step}: forward")
        yt.backward(torch.from_numpy(g))
        close(fm.backward(g), xt.grad, f"step {step}: input grad")
        tparams = dict(tm.named_parameters())
        for k, p in fm.named_parameters():
            close(p.grad, tparams[k].grad, f"step {step}: {k}.grad")
        fstate = fm.state_dict()
        assert list(fstate) == list(tm.state_dict())
        for k, v in tm.state_dict().items():
            close(np.asarray(fstate[k]), v, f"step {step}: {k}", rtol=1e-5, atol=1e-6)


BN_OPTIONS = [dict(), dict(momentum=None), dict(momentum=0.8, eps=1e-3), dict(affine=False),
              dict(track_running_stats=False), dict(affine=False, track_running_stats=False),
              dict(bias=False)]


@pytest.mark.parametrize("kwargs", BN_OPTIONS, ids=str)
@pytest.mark.parametrize("cls,shapes", [
    ("BatchNorm1d", [(8, 5)]), ("BatchNorm1d", [(4, 5, 7), (6, 5, 3)]), ("BatchNorm1d", [(70, 130)]),
    ("BatchNorm2d", [(2, 3, 6, 6)]), ("BatchNorm2d", [(4, 16, 5, 7), (3, 16, 2, 9)])], ids=str)
def test_batchnorm_parity(cls, shapes, kwargs, rng):
    C = shapes[0][1]
    tm = getattr(torch.nn, cls)(C, **kwargs)
    if tm.weight is not None:
        with torch.no_grad():
            tm.weight.copy_(torch.randn(C))
            if tm.bias is not None:
                tm.bias.copy_(torch.randn(C))
    steps(getattr(nn, cls)(C, **kwargs), tm, shapes, rng)


@pytest.mark.parametrize("kwargs", [dict(), dict(momentum=None), dict(track_running_stats=False)],
                         ids=str)
@pytest.mark.parametrize("cls,shapes", [
    ("BatchNorm1d", [(0, 5), (8, 5)]), ("BatchNorm1d", [(6, 5), (0, 5, 4), (2, 5, 0)]),
    ("BatchNorm2d", [(0, 3, 4, 4), (2, 3, 4, 4), (2, 3, 0, 4)])], ids=str)
def test_batchnorm_empty_batch_parity(cls, shapes, kwargs, rng):
    """An empty batch, in training or eval, as torch: an empty output and gradient,
    num_batches_tracked counts it, the running statistics stay."""
    C = shapes[0][1]
    steps(getattr(nn, cls)(C, **kwargs), getattr(torch.nn, cls)(C, **kwargs), shapes, rng)


@pytest.mark.parametrize("args,kwargs,shape", [
    ((3, 6), {}, (4, 6, 5)), ((3, 6, 1e-3), {"bias": False}, (4, 6, 5)), ((3, 12), {}, (4, 12)),
    ((1, 6), {}, (150, 6)), ((5, 5), {"affine": False}, (4, 5, 5)),
    ((2, 8), {}, (3, 8, 4, 5)), ((4, 32), {}, (2, 32, 9, 9))], ids=str)
def test_groupnorm_parity(args, kwargs, shape, rng):
    tm = torch.nn.GroupNorm(*args, **kwargs)
    if tm.weight is not None:
        with torch.no_grad():
            tm.weight.copy_(torch.randn(tm.weight.shape))
            if tm.bias is not None:
                tm.bias.copy_(torch.randn(tm.bias.shape))
    steps(nn.GroupNorm(*args, **kwargs), tm, [shape], rng, train_steps=2)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(5, 4), (3, 4, 9), (2, 4, 3, 5)], ids=str)
def test_functional_batch_norm_parity(shape, training, rng):
    C = shape[1]
    x, w, b = randn(rng, shape, 2.0, 1.0), randn(rng, (C,)), randn(rng, (C,))
    rm, rv = randn(rng, (C,)), np.abs(randn(rng, (C,))) + 0.5
    trm, trv = torch.from_numpy(rm.copy()), torch.from_numpy(rv.copy())
    want = F.batch_norm(torch.from_numpy(x), trm, trv, torch.from_numpy(w), torch.from_numpy(b),
                        training=training, momentum=0.3, eps=1e-4)
    got = ops.batch_norm(x, rm, rv, w, b, training=training, momentum=0.3, eps=1e-4)
    close(got, want, "output")
    close(rm, trm, "running_mean", 1e-5, 1e-6)
    close(rv, trv, "running_var", 1e-5, 1e-6)
    # F.batch_norm without running statistics in training
    close(ops.batch_norm(x, None, None, w, b, training=True),
          F.batch_norm(torch.from_numpy(x), None, None, torch.from_numpy(w),
                       torch.from_numpy(b), training=True), "no running stats")


@pytest.mark.parametrize("shape,G", [((4, 6, 5), 3), ((2, 8, 3, 3), 4), ((3, 4), 1)], ids=str)
def test_functional_group_norm_parity(shape, G, rng):
    C = shape[1]
    x, w, b, g = randn(rng, shape), randn(rng, (C,)), randn(rng, (C,)), randn(rng, shape)
    xt, wt, bt = leaf(x), leaf(w), leaf(b)
    yt = F.group_norm(xt, G, wt, bt, eps=1e-4)
    y, mean, invstd = ops.group_norm(x, G, w, b, eps=1e-4, return_stats=True)
    close(y, yt, "output")
    yt.backward(torch.from_numpy(g))
    dx, dw, db = ops.group_norm_backward(g, x, mean, invstd, G, w)
    close(dx, xt.grad, "dx")
    close(dw, wt.grad, "dweight")
    close(db, bt.grad, "dbias")


@pytest.mark.parametrize("cls,shape", [("Dropout2d", (2, 3, 4, 4)), ("Dropout1d", (2, 3, 5)),
                                       ("Dropout1d", (3, 5))])
def test_channel_dropout_parity(cls, shape, rng):
    """The masks differ (two random streams); eval, p=0 and p=1 agree exactly, and a
    kept channel is x / (1 - p) in both."""
    x = randn(rng, shape, shift=3.0)
    for p, train in ((0.5, False), (0.0, True), (1.0, True)):
        fm, tm = getattr(nn, cls)(p), getattr(torch.nn, cls)(p)
        fm.train(train)
        tm.train(train)
        close(fm(x), tm(torch.from_numpy(x)), f"p={p} train={train}")
    fm, tm = getattr(nn, cls)(0.5), getattr(torch.nn, cls)(0.5)
    y, yt = fm(x), tm(torch.from_numpy(x)).numpy()
    for out in (y, yt):
        kept = out != 0
        np.testing.assert_allclose(out[kept], x[kept] * 2, rtol=1e-6)
    assert repr(fm) == repr(tm)


def test_reprs_match_torch():
    for fm, tm in [(nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)),
                   (nn.BatchNorm2d(8, 1e-3, None, False, False),
                    torch.nn.BatchNorm2d(8, 1e-3, None, False, False)),
                   (nn.BatchNorm2d(4, bias=False), torch.nn.BatchNorm2d(4, bias=False)),
                   (nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4)),
                   (nn.GroupNorm(2, 4, affine=False), torch.nn.GroupNorm(2, 4, affine=False)),
                   (nn.Dropout2d(0.2, True), torch.nn.Dropout2d(0.2, True))]:
        assert repr(fm) == repr(tm)
