"""A character-level LSTM language model on the Python standard library's own source.

    python examples/char_lstm.py                 # about a minute on 2 cores
    python examples/char_lstm.py --steps 200     # shorter

The text is the top-level *.py files of this Python installation's standard library
(sorted by name, the first 400,000 characters): nothing is downloaded, and every
Python has it. Characters outside printable ASCII become one "unknown" symbol. The
last 10% is held out for validation.

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
import sysconfig
from pathlib import Path

import numpy as np

import fastnn
from fastnn import nn, optim

UNKNOWN = "\x00"


def stdlib_text(max_chars: int = 400_000) -> str:
    """The first max_chars characters of the stdlib's top-level .py files, by name."""
    parts, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        text = path.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        total += len(text)
        if total >= max_chars:
            break
    text = "".join(parts)[:max_chars]
    return "".join(ch if ch == "\n" or " " <= ch <= "~" else UNKNOWN for ch in text)


def encode(text: str):
    """(ids int64, the alphabet)"""
    chars = sorted(set(text))
    lookup = {ch: i for i, ch in enumerate(chars)}
    return np.array([lookup[ch] for ch in text], dtype=np.int64), chars


def bigram_loss(train: np.ndarray, val: np.ndarray, V: int) -> float:
    """Cross-entropy (nats per character) of an add-one bigram model of train on val."""
    counts = np.ones((V, V))
    np.add.at(counts, (train[:-1], train[1:]), 1.0)
    logp = np.log(counts / counts.sum(axis=1, keepdims=True))
    return float(-logp[val[:-1], val[1:]].mean())


def char_model(V: int, hidden: int = 256) -> nn.Sequential:
    return nn.Sequential(nn.Embedding(V, 48), nn.LSTM(48, hidden, batch_first=True),
                         nn.RNNOutput("sequence", batch_first=True), nn.Linear(hidden, V))


def windows(ids: np.ndarray, starts: np.ndarray, length: int):
    """(inputs (B, length), next characters (B, length)) of the windows at starts"""
    idx = starts[:, None] + np.arange(length + 1)
    chunk = ids[idx]
    return chunk[:, :-1], chunk[:, 1:]


def evaluate(model, ids: np.ndarray, length: int = 256) -> float:
    """Mean next-character cross-entropy over non-overlapping windows of ids."""
    loss_fn = nn.CrossEntropyLoss()
    n = (len(ids) - 1) // length
    x, y = windows(ids, np.arange(n) * length, length)
    with fastnn.no_grad():
        logits = model(x)
    return loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def sample(model, chars, prompt: str = "def ", length: int = 300, temperature: float = 0.8,
           seed: int = 0) -> str:
    """Characters drawn one at a time, the LSTM's state carried between steps."""
    rng = np.random.default_rng(seed)
    embedding, lstm, head = model[0], model[1], model[3]
    lookup = {ch: i for i, ch in enumerate(chars)}
    out, state = list(prompt), None
    with fastnn.no_grad():
        ids = np.array([[lookup.get(ch, 0) for ch in prompt]])
        for _ in range(length):
            h, state = lstm(embedding(ids), state)
            logits = head(h[:, -1])[0] / temperature
            p = np.exp(logits - logits.max())
            nxt = int(rng.choice(len(chars), p=p / p.sum()))
            out.append(chars[nxt])
            ids = np.array([[nxt]])
    return "".join(out).replace(UNKNOWN, "?")


def main(steps: int = 1000, batch: int = 32, length: int = 96, hidden: int = 256,
         max_chars: int = 400_000, seed: int = 0, verbose: bool = True) -> dict:
    fastnn.manual_seed(seed)
    ids, chars = encode(stdlib_text(max_chars))
    V = len(chars)
    cut = int(len(ids) * 0.9)
    train, val = ids[:cut], ids[cut:]
    baseline = bigram_loss(train, val, V)
    model = char_model(V, hidden)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    schedule = optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    if verbose:
        print(f"text: {len(ids):,} characters of the standard library's source, {V} symbols")
    for step in range(1, steps + 1):
        x, y = windows(train, rng.integers(0, len(train) - length - 1, batch), length)
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad()
        model.backward(loss_fn.backward().reshape(logits.shape), input_grad=False)
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        schedule.step()
        if verbose and (step % 100 == 0 or step == steps):
            print(f"step {step:5d}  train loss {loss:.3f}")
    val_loss = evaluate(model, val)
    text = sample(model, chars, seed=seed)
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
