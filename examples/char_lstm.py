"""A character-level LSTM language model on the Python standard library's own source.

    python examples/char_lstm.py                 # about a minute on 2 cores
    python examples/char_lstm.py --steps 200     # shorter

The text is this Python installation's standard library source, about 400 kB of its
.py files (fastnn.data.stdlib_corpus: nothing is downloaded, and every Python has it;
characters outside printable ASCII become "?"), every tenth file held out for
validation.

The model is built from modules alone, so it needs no hand-written backward:
    Embedding(V, 48) -> LSTM(48, 256, batch_first=True) -> RNNOutput("sequence")
    -> Linear(256, V)
trained with Adam (lr 3e-3, cosine schedule, gradient norm clipped at 1) on random
windows of 96 characters, 32 per batch, predicting each next character. The script
prints the validation loss (nats per character) against a bigram model of the same
training text (add-one smoothing), then a sample drawn one character at a time,
carrying the LSTM's state (h, c) from step to step.
"""
import argparse

import numpy as np

import fastnn
from fastnn import nn, optim
from fastnn.data import stdlib_corpus


def char_model(V: int, hidden: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Embedding(V, 48), nn.LSTM(48, hidden, batch_first=True),
                         nn.RNNOutput("sequence", batch_first=True), nn.Linear(hidden, V))


def evaluate(model, corpus, length: int = 256) -> float:
    """Mean next-character cross-entropy over non-overlapping windows of the val split."""
    loss_fn = nn.CrossEntropyLoss()
    n = (corpus.val.size - 1) // length
    x, y = corpus.windows("val", np.arange(n) * length, length)
    with fastnn.no_grad():
        logits = model(x)
    return loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def sample(model, corpus, prompt: str = "def ", length: int = 300, temperature: float = 0.8,
           seed: int = 0) -> str:
    """Characters drawn one at a time, the LSTM's state carried between steps."""
    rng = np.random.default_rng(seed)
    embedding, lstm, head = model[0], model[1], model[3]
    out, state = [], None
    with fastnn.no_grad():
        ids = corpus.encode(prompt)[None]
        for _ in range(length):
            h, state = lstm(embedding(ids), state)
            logits = head(h[:, -1])[0] / temperature
            p = np.exp(logits - logits.max())
            nxt = int(rng.choice(corpus.vocab_size, p=p / p.sum()))
            out.append(nxt)
            ids = np.array([[nxt]])
    return prompt + corpus.decode(out)


def main(steps: int = 1000, batch: int = 32, length: int = 96, hidden: int = 256,
         max_bytes: int = 400_000, seed: int = 0, verbose: bool = True) -> dict:
    fastnn.manual_seed(seed)
    corpus = stdlib_corpus(max_bytes)
    V = corpus.vocab_size
    baseline = corpus.bigram_loss()
    model = char_model(V, hidden)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    if verbose:
        print(f"text: the standard library's source, {corpus.describe()}")
    for step in range(1, steps + 1):
        x, y = corpus.batch("train", batch, length, rng)
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        model.backward(loss_fn.backward().reshape(logits.shape), input_grad=False)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        if verbose and (step % 100 == 0 or step == steps):
            print(f"step {step:5d}  train loss {loss:.3f}")
    val_loss = evaluate(model, corpus)
    text = sample(model, corpus, seed=seed)
    if verbose:
        print(f"validation loss {val_loss:.3f} nats/char; bigram model {baseline:.3f}")
        print("sample:\n" + text)
    return {"val_loss": val_loss, "bigram_loss": baseline, "sample": text}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()
    main(steps=args.steps, hidden=args.hidden)
