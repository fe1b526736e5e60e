"""Containers that own backward (Residual, Concat, Sequential with several
inputs and outputs): finite differences, shared modules, shape errors."""
import numpy as np
import pytest

from fastnn import nn
from nn_checks import fd_check


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


class Split(nn.Module):
    """x (N, 2D) -> (x[:, :D], x[:, D:]): two outputs, a gradient for each."""

    def forward(self, x):
        d = x.shape[1] // 2
        return np.ascontiguousarray(x[:, :d]), np.ascontiguousarray(x[:, d:])

    def backward(self, g_left, g_right, input_grad=True):
        shape = (g_left if g_left is not None else g_right).shape
        zeros = np.zeros(shape, np.float32)
        return np.concatenate([zeros if g_left is None else g_left,
                               zeros if g_right is None else g_right], axis=1)


class Mul(nn.Module):
    """(a, b) -> a * b: two inputs, a tuple of gradients back."""

    def forward(self, a, b):
        self._save(a, b)
        return a * b

    def backward(self, grad_out, input_grad=True):
        a, b = self._saved()
        return (grad_out * b, grad_out * a) if input_grad else None


def test_residual_identity_and_projection_shortcut(rng):
    # smooth activations: central differences across a ReLU kink are not a derivative
    block = nn.Residual(nn.Sequential(nn.Linear(5, 5), nn.Tanh(), nn.Linear(5, 5)))
    fd_check(block, rand(rng, 4, 5), rng)
    down = nn.Residual(nn.Sequential(nn.Linear(6, 3), nn.Tanh()), shortcut=nn.Linear(6, 3))
    fd_check(down, rand(rng, 4, 6), rng)
    fd_check(down, rand(rng, 4, 6), rng, input_grad=False)
    assert [n for n, _ in down.named_parameters()] == [
        "body.0.weight", "body.0.bias", "shortcut.weight", "shortcut.bias"]


def test_residual_with_a_module_shared_by_both_paths(rng):
    lin = nn.Linear(4, 4)
    fd_check(nn.Residual(nn.Sequential(lin, nn.Tanh()), shortcut=lin), rand(rng, 3, 4), rng)


def test_concat_branches_and_shared_branch(rng):
    cat = nn.Concat(nn.Linear(4, 3), nn.Sequential(nn.Linear(4, 2), nn.Tanh()), nn.Identity())
    y = cat(rand(rng, 5, 4))
    assert y.shape == (5, 9)
    fd_check(cat, rand(rng, 5, 4), rng)
    lin = nn.Linear(4, 2)
    fd_check(nn.Concat(lin, nn.Sequential(lin, nn.Sigmoid()), dim=-1), rand(rng, 3, 4), rng)


def test_nested_blocks_compose(rng):
    block = nn.Sequential(
        nn.Residual(nn.Concat(nn.Linear(6, 3), nn.Linear(6, 3))), nn.SiLU(),
        nn.Residual(nn.Sequential(nn.Linear(6, 6), nn.GELU()), shortcut=nn.Identity()),
        nn.Linear(6, 2))
    fd_check(block, rand(rng, 4, 6), rng)


def test_sequential_with_several_outputs_and_inputs(rng):
    model = nn.Sequential(nn.Linear(3, 8), Split(), Mul(), nn.Linear(4, 2))
    fd_check(model, rand(rng, 5, 3), rng)
    # a module with two inputs at the front: the input gradient is a tuple
    front = nn.Sequential(Mul(), nn.Linear(3, 2))
    a, b, g = rand(rng, 4, 3), rand(rng, 4, 3), rand(rng, 4, 2)
    front(a, b)
    ga, gb = front.backward(g)
    gh = g @ front[1].weight.data
    np.testing.assert_allclose(ga, gh * b, rtol=1e-5)
    np.testing.assert_allclose(gb, gh * a, rtol=1e-5)


def test_none_gradient_stands_for_zeros(rng):
    split = Split()
    x = rand(rng, 2, 4)
    split(x)
    g = split.backward(np.ones((2, 2), np.float32), None)
    np.testing.assert_array_equal(g, np.concatenate([np.ones((2, 2)), np.zeros((2, 2))], 1))


def test_container_shape_errors(rng):
    with pytest.raises(ValueError, match="shortcut"):
        nn.Residual(nn.Linear(4, 3))(rand(rng, 2, 4))
    with pytest.raises(ValueError, match="branch 1"):
        nn.Concat(nn.Linear(4, 3), nn.Flatten(0))(rand(rng, 2, 4))
    with pytest.raises(ValueError, match="at least one"):
        nn.Concat()
    with pytest.raises(TypeError, match="Modules"):
        nn.Residual(lambda x: x)
    cat = nn.Concat(nn.Linear(4, 3), nn.Linear(4, 1))
    cat(rand(rng, 2, 4))
    with pytest.raises(ValueError, match="4 entries along dim 1"):
        cat.backward(np.ones((2, 5), np.float32))


def test_container_repr():
    r = repr(nn.Residual(nn.Linear(2, 2)))
    assert r.startswith("Residual(\n  (body): Linear(in_features=2")
    assert "Concat(dim=1" in repr(nn.Concat(nn.Identity()))
