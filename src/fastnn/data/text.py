"""Text corpora that need no download: the Python standard library's own .py sources.

    corpus = stdlib_corpus(max_bytes=2_000_000)           # characters; or level="byte"
    print(corpus.describe())                               # files, sizes, vocabulary, sha256
    x, y = corpus.batch("train", batch_size=16, block_size=128, rng=rng)   # (16, 128) each
    corpus.decode(x[0]), corpus.encode("def f():"), corpus.bigram_loss()

The files are the *.py under sysconfig's stdlib directory, without site-packages,
tests and idlelib, in sorted order of their relative paths, whole files up to
max_bytes. Every val_every-th file goes to validation, so the split is by file, as it
must be for code (a file's halves are too alike). The corpus differs between Python
versions: describe() (also logged to the "fastnn.data" logger) gives its sha256. A
Python without its .py sources (zip-only builds) gets fastnn's own sources instead.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import sysconfig
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np

from fastnn._args import check_int

__all__ = ["TextCorpus", "stdlib_corpus"]

LOG = logging.getLogger("fastnn.data")
EXCLUDED_DIRS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "__pycache__"}
UNKNOWN = "?"  # char level: what a character of the text outside the vocabulary becomes


@dataclasses.dataclass(frozen=True)
class TextCorpus:
    """A tokenised corpus: train and val are int64 token ids (each the split's files
    joined), vocab the characters (level "char") or None (level "byte": ids are the
    bytes, 256 of them)."""
    level: str
    train: np.ndarray
    val: np.ndarray
    vocab: Optional[str]
    files: Tuple[str, ...]
    val_files: Tuple[str, ...]
    sha256: str

    @property
    def vocab_size(self) -> int:
        return 256 if self.vocab is None else len(self.vocab)

    def encode(self, text: str) -> np.ndarray:
        """text as token ids (int64); at char level, characters outside the vocabulary
        become UNKNOWN when the vocabulary has it, else ValueError"""
        if self.vocab is None:
            return np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int64)
        index = {ch: i for i, ch in enumerate(self.vocab)}
        fallback = index.get(UNKNOWN)
        ids = [index.get(ch, fallback) for ch in text]
        if any(i is None for i in ids):
            bad = sorted({ch for ch, i in zip(text, ids) if i is None})
            raise ValueError(f"text has characters outside the corpus's vocabulary: {bad!r}")
        return np.asarray(ids, np.int64)

    def decode(self, ids) -> str:
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise ValueError(f"token ids must be in [0, {self.vocab_size}), got values in "
                             f"[{ids.min()}, {ids.max()}]")
        if self.vocab is None:
            return bytes(ids.astype(np.uint8)).decode("utf-8", errors="replace")
        return "".join(self.vocab[i] for i in ids)

    def split(self, name: str) -> np.ndarray:
        if name not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {name!r}")
        return self.train if name == "train" else self.val

    def batch(self, split: str, batch_size: int, block_size: int,
              rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
        """batch_size random windows of the split: inputs x (batch_size, block_size) and
        their next tokens y, the same windows shifted by one (int64 each)"""
        ids = self.split(split)
        B = check_int(batch_size, "batch_size", low=1)
        T = check_int(block_size, "block_size", low=1)
        if ids.size < T + 1:
            raise ValueError(f"block_size must be below the {split} split's {ids.size} tokens, "
                             f"got {T}")
        return self.windows(split, rng.integers(0, ids.size - T, size=B), T)

    def windows(self, split: str, starts, block_size: int) -> Tuple[np.ndarray, np.ndarray]:
        """the windows of the split at the given starts: x (len(starts), block_size) and
        y, x shifted by one token (an evaluation's fixed windows; batch draws them)"""
        ids = self.split(split)
        starts = np.asarray(starts, np.int64).reshape(-1)
        if starts.size and (starts.min() < 0 or starts.max() + block_size >= ids.size):
            raise ValueError(f"windows must lie inside the {split} split's {ids.size} tokens "
                             f"(start + block_size < {ids.size})")
        chunk = ids[starts[:, None] + np.arange(block_size + 1)]
        return chunk[:, :-1], chunk[:, 1:]

    def bigram_loss(self, smoothing: float = 1.0) -> float:
        """validation cross-entropy (nats per token) of an add-`smoothing` bigram model
        fit on the train split: the baseline a language model must beat"""
        V = self.vocab_size
        counts = np.full((V, V), float(smoothing))
        np.add.at(counts, (self.train[:-1], self.train[1:]), 1.0)
        logp = np.log(counts / counts.sum(axis=1, keepdims=True))
        return float(-logp[self.val[:-1], self.val[1:]].mean())

    def describe(self) -> str:
        vocab = "bytes (256)" if self.vocab is None else f"{len(self.vocab)} characters"
        return (f"{len(self.files)} files ({len(self.val_files)} for validation), "
                f"{self.train.size:,} train / {self.val.size:,} val tokens, {vocab}, "
                f"sha256 {self.sha256[:16]}")


def stdlib_files(root: Optional[Path] = None) -> Tuple[Path, List[str]]:
    """(root, the .py files under it as sorted relative paths) without site-packages,
    tests and idlelib. By default the standard library's, or fastnn's own sources when
    this Python has none."""
    if root is None:
        base, files = stdlib_files(Path(sysconfig.get_paths()["stdlib"]))
        return (base, files) if files else stdlib_files(Path(__file__).resolve().parent.parent)
    root = Path(root)
    return root, sorted(p.relative_to(root).as_posix() for p in root.rglob("*.py")
                        if not EXCLUDED_DIRS & set(p.relative_to(root).parts[:-1]))


def stdlib_corpus(max_bytes: int = 2_000_000, level: str = "char", val_every: int = 10,
                  root: Optional[Path] = None) -> TextCorpus:
    """The corpus of the stdlib's sources (see the module docstring): whole files in
    order while they fit max_bytes (at least one per split), every val_every-th file
    for validation. level "char": the vocabulary is the printable ASCII characters
    and newline that occur, anything else becomes UNKNOWN; "byte": the raw bytes."""
    cap = check_int(max_bytes, "max_bytes", low=1)
    every = check_int(val_every, "val_every", low=2)
    if level not in ("char", "byte"):
        raise ValueError(f"level must be 'char' or 'byte', got {level!r}")
    base, names = stdlib_files(root)
    texts, total = [], 0
    for name in names:
        data = (base / name).read_bytes()
        if texts and total + len(data) > cap and len(texts) >= every:
            break
        texts.append(data)
        total += len(data)
    if len(texts) < every:
        raise ValueError(f"the source tree {base} has {len(texts)} .py files; a corpus needs "
                         f"at least val_every = {every}")
    names = tuple(names[:len(texts)])
    if level == "char":
        texts = [_printable(t) for t in texts]
        present = np.zeros(128, bool)
        for t in texts:
            present[np.unique(np.frombuffer(t, np.uint8))] = True
        vocab = "".join(chr(c) for c in np.flatnonzero(present))
        table = np.cumsum(present) - 1  # ASCII code -> id
        tokens = [table[np.frombuffer(t, np.uint8)].astype(np.int64) for t in texts]
        digest_source = texts
    else:
        vocab = None
        tokens = [np.frombuffer(t, np.uint8).astype(np.int64) for t in texts]
        digest_source = texts
    is_val = [i % every == every - 1 for i in range(len(texts))]
    digest = hashlib.sha256()
    for name, data in zip(names, digest_source):
        digest.update(name.encode() + b"\0" + data + b"\0")
    corpus = TextCorpus(
        level=level,
        train=np.concatenate([t for t, v in zip(tokens, is_val) if not v]),
        val=np.concatenate([t for t, v in zip(tokens, is_val) if v]),
        vocab=vocab, files=names, val_files=tuple(n for n, v in zip(names, is_val) if v),
        sha256=digest.hexdigest())
    LOG.info("stdlib corpus: %s", corpus.describe())
    return corpus


def _printable(data: bytes) -> bytes:
    """UTF-8 source as printable ASCII and newlines, anything else UNKNOWN"""
    ascii_bytes = data.decode("utf-8", errors="replace").encode("ascii", errors="replace")
    codes = np.frombuffer(ascii_bytes, np.uint8).copy()  # "replace" gives "?" = UNKNOWN
    codes[((codes < 32) & (codes != 10)) | (codes == 127)] = ord(UNKNOWN)
    return codes.tobytes()
