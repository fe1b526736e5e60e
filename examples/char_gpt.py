"""A character-level GPT on the Python standard library's own source, as a script.

    python examples/char_gpt.py                 # about two minutes on 2 cores
    python examples/char_gpt.py --steps 300     # shorter

fastnn demo --model gpt does the same under a time budget; this script is the plain
training loop to read and change. The text is fastnn.data.stdlib_corpus (nothing is
downloaded; every tenth file is held out for validation). The model is nanoGPT's
"baby GPT" for CPUs: fastnn.models.GPT with 4 layers, 4 heads, d 128 and a context
of 128 characters, trained with AdamW (nanoGPT's decay groups), a cosine schedule and
gradient clipping. It prints the validation loss against the bigram model's, then a
sample generated with the KV cache.
"""
import argparse

import numpy as np

import fastnn
from fastnn import nn, optim
from fastnn.data import stdlib_corpus
from fastnn.models import GPT


def main(steps: int = 1500, batch: int = 16, block_size: int = 128, n_layer: int = 4,
         n_embd: int = 128, seed: int = 0, verbose: bool = True) -> dict:
    fastnn.manual_seed(seed)
    corpus = stdlib_corpus()
    V = corpus.vocab_size
    model = GPT(V, block_size, n_layer=n_layer, n_head=4, n_embd=n_embd)
    matrices = [p for p in model.parameters() if p.ndim >= 2]
    vectors = [p for p in model.parameters() if p.ndim < 2]
    opt = optim.AdamW([{"params": matrices, "weight_decay": 0.1},
                       {"params": vectors, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99))
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    for step in range(1, steps + 1):
        x, y = corpus.batch("train", batch, block_size, rng)
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, V), y.reshape(-1))
        model.backward(loss_fn.backward().reshape(logits.shape))
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        schedule.step()
        if verbose and step % 100 == 0:
            print(f"step {step}: training loss {loss:.3f}")
    starts = np.linspace(0, corpus.val.size - block_size - 2, 64).astype(np.int64)
    x, y = corpus.windows("val", starts, block_size)
    with fastnn.no_grad():
        val = loss_fn(model(x).reshape(-1, V), y.reshape(-1))
    sample = corpus.decode(model.generate(corpus.encode("def ")[None], 300, temperature=0.8,
                                          top_k=20)[0])
    result = {"val_loss": val, "bigram_loss": corpus.bigram_loss(), "sample": sample}
    if verbose:
        print(f"validation loss {val:.3f} nats/char; the bigram model's "
              f"{result['bigram_loss']:.3f}")
        print(sample)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    main(parser.parse_args().steps)
