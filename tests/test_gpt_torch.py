"""fastnn.models.GPT against a nanoGPT-shaped torch model (fastnn.bench.torch_models.
TorchGPT) with the same weights: logits and every parameter gradient (the tied weight
included), over two training steps with AdamW; loading a nanoGPT state_dict with
torch.compile's prefix and old causal-mask buffers."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastnn  # noqa: E402
from fastnn import nn, optim  # noqa: E402
from fastnn.bench.torch_models import TorchGPT  # noqa: E402
from fastnn.models import GPT  # noqa: E402
from test_norm_torch import close  # noqa: E402
from test_nn_torch import torch_setup  # noqa: E402,F401


@pytest.mark.parametrize("bias", [True, False])
def test_matches_nanogpt(rng, bias):
    fastnn.manual_seed(1)
    fm = GPT(37, 16, n_layer=2, n_head=4, n_embd=32, bias=bias)
    tm = TorchGPT(37, 16, 2, 4, 32, bias)
    assert list(fm.state_dict()) == list(tm.state_dict())
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in fm.state_dict().items()})
    fopt, topt = optim.AdamW(fm.parameters(), lr=1e-2), torch.optim.AdamW(tm.parameters(),
                                                                          lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    for step in range(2):
        x, y = rng.integers(0, 37, (3, 16)), rng.integers(0, 37, (3, 16))
        logits = fm(x)
        loss = loss_fn(logits.reshape(-1, 37), y.reshape(-1))
        fm.backward(loss_fn.backward().reshape(logits.shape))
        tl = tm(torch.from_numpy(x))
        tloss = torch.nn.functional.cross_entropy(tl.reshape(-1, 37),
                                                  torch.from_numpy(y).reshape(-1))
        tloss.backward()
        close(logits, tl, f"step {step} logits")
        assert abs(loss - tloss.item()) < 1e-5
        tparams = dict(tm.named_parameters())
        assert [n for n, _ in fm.named_parameters()] == list(tparams)
        for name, p in fm.named_parameters():
            close(p.grad, tparams[name].grad, f"step {step} {name}.grad")
        fopt.step()
        topt.step()
        fopt.zero_grad()
        topt.zero_grad()


def test_loads_a_nanogpt_checkpoint(rng):
    tm = TorchGPT(20, 8, 1, 2, 16)
    sd = {f"_orig_mod.{k}": v for k, v in tm.state_dict().items()}
    sd["_orig_mod.transformer.h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 8, 8))
    fm = GPT(20, 8, 1, 2, 16)
    fm.load_nanogpt_state_dict(sd)
    x = rng.integers(0, 20, (2, 8))
    close(fm(x), tm(torch.from_numpy(x)), "logits")
