"""PyTorch parity of LayerNorm and RMSNorm: fastnn.ops against torch.nn.functional,
and nn.LayerNorm / nn.RMSNorm against torch.nn over their options (outputs, input
gradients, parameter gradients summed over two calls, state_dict keys)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from fastnn import nn, ops  # noqa: E402
from test_norm_torch import close, leaf, randn  # noqa: E402
from test_nn_torch import torch_setup  # noqa: E402,F401  (seeds, one torch thread)


@pytest.mark.parametrize("cls,kwargs", [
    ("LayerNorm", {}), ("LayerNorm", {"bias": False}), ("LayerNorm", {"eps": 1e-3}),
    ("LayerNorm", {"elementwise_affine": False}), ("RMSNorm", {}), ("RMSNorm", {"eps": 1e-5}),
    ("RMSNorm", {"elementwise_affine": False})])
@pytest.mark.parametrize("shape,norm", [((4, 10), 10), ((2, 7, 128), (128,)),
                                        ((3, 2, 5, 6), (5, 6)), ((1, 1), 1)])
def test_module_matches_torch(rng, cls, kwargs, shape, norm):
    tm = getattr(torch.nn, cls)(norm, **kwargs)
    with torch.no_grad():
        for p in tm.parameters():
            p.copy_(torch.from_numpy(randn(rng, tuple(p.shape), shift=1.0)))
    fm = getattr(nn, cls)(norm, **kwargs)
    assert list(fm.state_dict()) == list(tm.state_dict())
    fm.load_state_dict({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})
    xs = [randn(rng, shape, scale=2.0, shift=1.0), randn(rng, shape)]
    gs = [randn(rng, shape) for _ in xs]
    xts = [leaf(x) for x in xs]
    for x, xt in zip(xs, xts):
        close(fm(x), tm(xt), "forward")
    for xt, g in zip(xts, gs):
        tm(xt).backward(torch.from_numpy(g))
    gxs = [fm.backward(g) for g in reversed(gs)][::-1]
    for gx, xt in zip(gxs, xts):
        close(gx, xt.grad, "input grad")
    # a row of one value: xhat is exactly 0 here, torch's rounding leaves ~2e-5
    atol = 1e-4 if shape[-1] == 1 else 1e-5
    for name, p in fm.named_parameters():
        close(p.grad, dict(tm.named_parameters())[name].grad, f"{name}.grad", atol=atol)


def test_functional_matches_torch(rng):
    x = randn(rng, (6, 3, 40), scale=3.0)
    w, b = randn(rng, (40,)), randn(rng, (40,))
    close(ops.layer_norm(x, 40, w, b, 1e-5), F.layer_norm(torch.from_numpy(x), (40,),
                                                          torch.from_numpy(w),
                                                          torch.from_numpy(b)), "layer_norm")
    close(ops.layer_norm(x, (3, 40)), F.layer_norm(torch.from_numpy(x), (3, 40)), "no affine")
    close(ops.rms_norm(x, 40, w), F.rms_norm(torch.from_numpy(x), (40,), torch.from_numpy(w)),
          "rms_norm")
