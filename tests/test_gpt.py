"""fastnn.models.GPT without torch: shapes, the tied LM head (one Parameter, both keys,
gradients of both uses summed), finite differences through the whole model, KV-cache
generation equal to recomputing the context (also past block_size), top_k and
temperature, save / load, bad inputs (see test_gpt_torch.py for nanoGPT parity)."""
import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.models import GPT
from nn_checks import fd_multi


def tiny(seed=0, **kw):
    fastnn.manual_seed(seed)
    args = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)
    args.update(kw)
    return GPT(**args)


def ids(rng, B, T, V=11):
    return rng.integers(0, V, (B, T))


def test_shapes_keys_and_tying(rng):
    m = tiny()
    logits = m(ids(rng, 3, 5))
    assert logits.shape == (3, 5, 11) and logits.dtype == np.float32
    keys = list(m.state_dict())
    assert keys[0] == "transformer.wte.weight" and keys[-1] == "lm_head.weight"
    assert "transformer.h.1.attn.c_attn.weight" in keys and "transformer.ln_f.bias" in keys
    assert m.lm_head.weight is m.transformer.wte.weight
    names = [n for n, _ in m.named_parameters()]
    assert "lm_head.weight" not in names and len(names) == len(set(names))
    assert m.num_parameters() == sum(p.size for p in m.parameters())
    assert "transformer.h.0.ln_1.bias" not in tiny(bias=False).state_dict()


def test_initialisation_as_nanogpt():
    m = tiny(n_embd=64, n_layer=4, vocab_size=500, block_size=64)
    std = {n: float(p.data.std()) for n, p in m.named_parameters() if p.ndim == 2}
    assert abs(std["transformer.wte.weight"] - 0.02) < 0.002
    assert abs(std["transformer.h.0.mlp.c_fc.weight"] - 0.02) < 0.002
    assert abs(std["transformer.h.0.mlp.c_proj.weight"] - 0.02 / np.sqrt(8)) < 0.001
    assert not m.transformer.h[0].attn.c_attn.bias.data.any()


def test_tied_gradient_is_the_sum_of_both_uses(rng):
    """The tied weight's gradient equals the embedding's plus the head's of an untied twin."""
    tied, untied = tiny(), tiny()
    untied.lm_head.weight = nn.Parameter(untied.transformer.wte.weight.data.copy())
    x = ids(rng, 2, 6)
    g = rng.standard_normal((2, 6, 11)).astype(np.float32)
    for m in (tied, untied):
        m.zero_grad()
        m(x)
        m.backward(g)
    want = untied.transformer.wte.weight.grad + untied.lm_head.weight.grad
    np.testing.assert_allclose(tied.transformer.wte.weight.grad, want, rtol=1e-5, atol=1e-7)
    assert untied.lm_head.weight.grad.any() and untied.transformer.wte.weight.grad.any()
    assert not tied.transformer.wpe.weight.grad[6:].any()  # positions past T get nothing


def test_finite_differences(rng):
    m = tiny(n_embd=8, n_head=2, n_layer=1)
    for p in m.parameters():
        p.data[...] = (rng.standard_normal(p.shape) * 0.3).astype(np.float32)
    x = ids(rng, 2, 5)  # token ids have no gradient: only the parameters are checked
    fd_multi(lambda: m(x), lambda g: (m.backward(g),), [], list(m.named_parameters()), rng,
             samples=4)


@pytest.mark.parametrize("top_k", [None, 3])
def test_cached_generation_equals_uncached(rng, top_k):
    m = tiny()
    prompt = ids(rng, 2, 3)
    fastnn.manual_seed(7)
    cached = m.generate(prompt, 12, temperature=0.9, top_k=top_k)  # crosses block_size 8
    fastnn.manual_seed(7)
    plain = m.generate(prompt, 12, temperature=0.9, top_k=top_k, use_cache=False)
    assert cached.shape == (2, 15)
    np.testing.assert_array_equal(cached, plain)
    np.testing.assert_array_equal(cached[:, :3], prompt)


def test_top_k_one_is_greedy(rng):
    m = tiny()
    prompt = ids(rng, 1, 2)
    out = m.generate(prompt, 4, top_k=1)
    context = prompt
    for _ in range(4):
        with fastnn.no_grad():
            nxt = m(context)[:, -1].argmax(axis=1)[:, None]
        context = np.concatenate([context, nxt], axis=1)
    np.testing.assert_array_equal(out, context)


def test_save_and_load(tmp_path, rng):
    m = tiny()
    path = tmp_path / "gpt.fastnn"
    fastnn.save(m, path)
    loaded = fastnn.load(path)
    x = ids(rng, 2, 4)
    np.testing.assert_array_equal(loaded(x), m(x))
    assert loaded.lm_head.weight is loaded.transformer.wte.weight


def test_trains_below_the_bigram_loss():
    """A few hundred steps on the standard library's characters beat a bigram model."""
    from fastnn import optim
    from fastnn.data import stdlib_corpus
    corpus = stdlib_corpus(300_000)
    fastnn.manual_seed(0)
    m = GPT(corpus.vocab_size, 32, n_layer=2, n_head=2, n_embd=48)
    opt = optim.AdamW(m.parameters(), lr=3e-3)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    for _ in range(250):
        x, y = corpus.batch("train", 16, 32, rng)
        logits = m(x)
        loss_fn(logits.reshape(-1, corpus.vocab_size), y.reshape(-1))
        m.backward(loss_fn.backward().reshape(logits.shape))
        opt.step()
        opt.zero_grad()
    x, y = corpus.windows("val", np.arange(64) * ((corpus.val.size - 40) // 64), 32)
    with fastnn.no_grad():
        val = loss_fn(m(x).reshape(-1, corpus.vocab_size), y.reshape(-1))
    assert val < corpus.bigram_loss()


@pytest.mark.parametrize("call,exc,match", [
    (lambda m: m(np.full((1, 3), 11)), ValueError, "token ids must be in"),
    (lambda m: m(np.full((1, 3), -1)), ValueError, "token ids must be in"),
    (lambda m: m(np.zeros((1, 9), np.int64)), ValueError, "longer than block_size"),
    (lambda m: m(np.zeros(3, np.int64)), ValueError, r"\(B, T\)"),
    (lambda m: m(np.zeros((1, 3), np.float32)), TypeError, "integer token ids"),
    (lambda m: m.generate(np.zeros((1, 2), np.int64), 2, temperature=0.0), ValueError,
     "temperature"),
    (lambda m: m.generate(np.zeros((1, 2), np.int64), 2, top_k=0), ValueError, "top_k"),
    (lambda m: GPT(10, 8, 1, 3, 8), ValueError, "divisible by n_head"),
])
def test_bad_inputs(call, exc, match):
    with pytest.raises(exc, match=match):
        call(tiny())
