"""fastnn.optim against the inputs PyTorch's own optimizer tests generate.

Every OptimizerInfo of ``torch.testing._internal.common_optimizers.optim_db``
whose class has a namesake in ``fastnn.optim`` yields OptimizerInputs (the
constructor's keyword arguments, for the CPU); each is a test case:

* the same parameters (a weight (3, 4), a bias (3,) and a scalar) go to a torch
  optimizer and a fastnn one built with the same keywords (a 0-d tensor such as
  a tensor lr passed as its float);
* six steps with the same random gradients; after each step every parameter
  must match torch's (float32, rtol 1e-5, atol 1e-6), and at the end the state
  (state_dict()["state"]: the same keys, the same values) too.

A keyword fastnn does not take (construction raises TypeError/ValueError) is
skipped with the message, not failed; a case that runs and gives a different
result fails. tools/torch_coverage.py counts these outcomes.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")  # common_optimizers imports it
common_optimizers = pytest.importorskip("torch.testing._internal.common_optimizers")

from fastnn import nn, optim  # noqa: E402

RTOL, ATOL = 1e-5, 1e-6
STEPS = 6
SHAPES = [(3, 4), (3,), ()]


def _collect():
    cases = []
    for info in common_optimizers.optim_db:
        name = info.optim_cls.__name__
        if not hasattr(optim, name):
            continue
        for i, sample in enumerate(info.optim_inputs_func(device="cpu")):
            if sample.params is not None:
                continue  # inputs with their own params (param groups of tensors)
            cases.append(pytest.param(name, sample.kwargs, id=f"{name}-{i}-{sample.desc}"))
    return cases


CASES = _collect()


def plain(value):
    """A keyword's value for fastnn: 0-d tensors as floats, tuples kept."""
    if isinstance(value, torch.Tensor):
        return value.item()
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return value


@pytest.mark.parametrize("name,kwargs", CASES)
def test_optimizer_matches_torch(name, kwargs):
    rng = np.random.default_rng(0)
    start = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    ours = [nn.Parameter(a.copy()) for a in start]
    theirs = [torch.nn.Parameter(torch.from_numpy(a.copy())) for a in start]
    try:
        opt = getattr(optim, name)(ours, **{k: plain(v) for k, v in kwargs.items()})
    except (TypeError, ValueError) as err:
        pytest.skip(f"fastnn does not take these options: {type(err).__name__}: {err}")
    ref = getattr(torch.optim, name)(theirs, **kwargs)
    for step in range(STEPS):
        grads = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
        for p, t, g in zip(ours, theirs, grads):
            p.grad[...] = g
            t.grad = torch.from_numpy(g.copy())
        opt.step()
        ref.step()
        for k, (p, t) in enumerate(zip(ours, theirs)):
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=RTOL, atol=ATOL,
                                       err_msg=f"parameter {k} after step {step + 1}")
    mine, want = opt.state_dict()["state"], ref.state_dict()["state"]
    assert sorted(mine) == sorted(want)
    for index in want:
        assert sorted(mine[index]) == sorted(want[index]), (index, mine[index].keys())
        for key, value in want[index].items():
            np.testing.assert_allclose(np.asarray(mine[index][key], dtype=np.float64),
                                       np.asarray(value, dtype=np.float64), rtol=RTOL,
                                       atol=ATOL, err_msg=f"state {index}.{key}")
