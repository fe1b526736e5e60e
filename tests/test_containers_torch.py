"""PyTorch parity of the containers that own backward: Residual and Concat
against the same blocks written as torch modules, one call and three calls
before the backwards (check_parity runs both)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from fastnn import nn  # noqa: E402
from test_nn_torch import check_parity, randn, torch_setup  # noqa: E402,F401


class TorchResidual(torch.nn.Module):
    def __init__(self, body, shortcut=None):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x):
        return self.body(x) + (x if self.shortcut is None else self.shortcut(x))


class TorchConcat(torch.nn.Module):
    def __init__(self, *branches, dim=1):
        super().__init__()
        for i, b in enumerate(branches):
            self.add_module(str(i), b)
        self.dim = dim

    def forward(self, x):
        return torch.cat([b(x) for b in self.children()], dim=self.dim)


def basic_block(m, residual):
    # a ResNet basic block on features: two layers with BatchNorm, a projection shortcut
    body = m.Sequential(m.Linear(8, 6), m.BatchNorm1d(6), m.ReLU(), m.Linear(6, 6),
                        m.BatchNorm1d(6))
    return m.Sequential(residual(body, m.Linear(8, 6)), m.ReLU())


def pre_ln_block(m, residual):
    # a pre-norm MLP sub-block (BatchNorm standing in for LayerNorm until it exists)
    return residual(m.Sequential(m.BatchNorm1d(8), m.Linear(8, 16), m.GELU(), m.Linear(16, 8)))


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("build", [basic_block, pre_ln_block], ids=["basic", "pre_norm"])
def test_residual_blocks(build, train, rng):
    fm, tm = build(nn, nn.Residual), build(torch.nn, TorchResidual)
    check_parity(fm, tm, randn(rng, (10, 8)), rng, train=train, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dim", [1, -1])
def test_concat_inception_like(dim, rng):
    def build(m, concat):
        return m.Sequential(concat(m.Linear(5, 3), m.Sequential(m.Linear(5, 4), m.Tanh()),
                                   m.Sequential(m.Linear(5, 2), m.Sigmoid()), dim=dim),
                            m.Linear(9, 2))
    fm, tm = build(nn, nn.Concat), build(torch.nn, TorchConcat)
    check_parity(fm, tm, randn(rng, (6, 5)), rng, rtol=1e-4, atol=1e-5)


def test_shared_module_in_both_paths(rng):
    def build(m, residual):
        lin = m.Linear(4, 4)
        return residual(m.Sequential(lin, m.Tanh(), lin), lin)
    fm, tm = build(nn, nn.Residual), build(torch.nn, TorchResidual)
    check_parity(fm, tm, randn(rng, (3, 4)), rng, rtol=1e-4, atol=1e-5)
