"""``fastnn demo --model gpt``: a character-level GPT trained on the Python standard
library's own source for a bounded time, then scored and sampled.

    fastnn demo --model gpt                    # about 3 minutes on 2 cores
    fastnn demo --model gpt --minutes 1        # shorter
    fastnn demo --model gpt --steps 300 --n-layer 2 --n-embd 64

The text is fastnn.data.stdlib_corpus(): the .py files of this Python's standard
library (2 MB of characters, every tenth file held out for validation; nothing is
downloaded). The model is fastnn.models.GPT (nanoGPT's layout: 4 layers, 4 heads,
d 128, context 128 by default), trained on random windows, 16 per batch, with AdamW
(betas 0.9 / 0.99, weight decay 0.1 on matrices only, as nanoGPT), a 100-step warm-up
then a cosine learning rate from 1e-3 to 1e-4 over the time budget, and gradients
clipped to norm 1. A progress bar (tqdm) shows the loss and tokens per second. At
the end the validation loss (nats per character) is compared with the bigram model
of the training text, and a sample is generated with the KV cache.
"""
from __future__ import annotations

import math
import time

import numpy as np

BATCH = 16


def _optimizer(model, lr: float):
    """AdamW with nanoGPT's groups: weight decay 0.1 on >= 2-D parameters, 0 on the rest."""
    from fastnn import optim
    decay = [p for p in model.parameters() if p.ndim >= 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    return optim.AdamW([{"params": decay, "weight_decay": 0.1},
                        {"params": other, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.99))


def learning_rate(progress: float, step: int, lr: float, min_lr: float, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then a cosine from lr to min_lr as progress
    (the fraction of the budget spent) goes from 0 to 1."""
    if step < warmup:
        return lr * (step + 1) / warmup
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * min(1.0, progress)))


def validation_loss(model, corpus, windows: int = 64) -> float:
    """Mean next-character cross-entropy over `windows` evenly spaced validation windows."""
    import fastnn
    from fastnn import nn
    T = model.block_size
    starts = np.linspace(0, corpus.val.size - T - 2, windows).astype(np.int64)
    x, y = corpus.windows("val", starts, T)
    loss_fn = nn.CrossEntropyLoss()
    with fastnn.no_grad():
        logits = model(x)
    return loss_fn(logits.reshape(-1, corpus.vocab_size), y.reshape(-1))


def run_gpt(minutes: float = 3.0, steps: int = 100_000, n_layer: int = 4, n_head: int = 4,
            n_embd: int = 128, block_size: int = 128, lr: float = 1e-3, seed: int = 0,
            show_progress: bool = True, verbose: bool = True) -> dict:
    """Train until `steps` steps or `minutes` minutes, whichever comes first; returns
    {"val_loss", "bigram_loss", "steps", "seconds", "tokens_per_s", "sample"}."""
    import fastnn
    from fastnn import models, nn, ops
    from fastnn.data import stdlib_corpus
    from tqdm import tqdm
    fastnn.manual_seed(seed)
    corpus = stdlib_corpus()
    V = corpus.vocab_size
    model = models.GPT(V, block_size, n_layer, n_head, n_embd)
    opt = _optimizer(model, lr)
    rng = np.random.default_rng(seed)
    budget = 60.0 * minutes
    if verbose:
        print(f"text: the standard library's source, {corpus.describe()}")
        print(f"model: {model.extra_repr()}, {model.num_parameters():,} parameters; "
              f"batch {BATCH} x {block_size} characters; budget {minutes:g} min or "
              f"{steps} steps")
    # the time budget usually ends the run first: the bar counts steps without a total
    bar = tqdm(disable=not show_progress, unit="step", mininterval=1.0, dynamic_ncols=True)
    start, step, loss = time.perf_counter(), 0, float("nan")
    while step < steps:
        elapsed = time.perf_counter() - start
        if elapsed >= budget:
            break
        rate = learning_rate(max(step / steps, elapsed / budget), step, lr, lr / 10, 100)
        for group in opt.param_groups:
            group["lr"] = rate
        x, y = corpus.batch("train", BATCH, block_size, rng)
        logits = model(x)
        rows = logits.reshape(-1, V)  # the cross-entropy gradient overwrites the logits
        loss, _ = ops.cross_entropy(rows, y.reshape(-1), out=rows)
        model.backward(logits)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        step += 1
        bar.update(1)
        if step % 10 == 0:
            tps = step * BATCH * block_size / (time.perf_counter() - start)
            left = max(0.0, budget - (time.perf_counter() - start))
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tps:,.0f}", left=f"{left:.0f}s",
                            refresh=False)
    bar.close()
    seconds = time.perf_counter() - start
    val, bigram = validation_loss(model, corpus), corpus.bigram_loss()
    fastnn.manual_seed(seed)
    text = corpus.decode(model.generate(corpus.encode("def ")[None], 300, temperature=0.8,
                                        top_k=20)[0])
    result = {"val_loss": val, "bigram_loss": bigram, "steps": step, "seconds": seconds,
              "tokens_per_s": step * BATCH * block_size / seconds, "sample": text}
    if verbose:
        print(f"fastnn: {step} steps in {seconds:.0f} s, {result['tokens_per_s']:,.0f} "
              f"tokens/s; last training loss {loss:.3f}")
        print(f"validation loss {val:.3f} nats/char vs the bigram model's {bigram:.3f}"
              f" ({'better' if val < bigram else 'NOT better'})")
        print("sample (temperature 0.8, top_k 20):\n" + text)
    return result
