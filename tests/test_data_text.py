"""fastnn.data.stdlib_corpus / TextCorpus: the file list, the split by file, the cap,
the hash, both token levels, batches and windows, the bigram baseline, bad input."""
import math

import numpy as np
import pytest

from fastnn.data import TextCorpus, stdlib_corpus
from fastnn.data.text import stdlib_files


@pytest.fixture
def tree(tmp_path):
    """12 source files (one with non-ASCII and a tab), and files the corpus must skip"""
    for i in range(12):
        (tmp_path / f"m{i:02d}.py").write_text(f"def f{i}():\n    return {i}\n" * (i + 1))
    (tmp_path / "m03.py").write_text("s = 'caf\u00e9'\n\tx = 1\n")
    for skipped in ("test", "tests", "site-packages", "idlelib"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "skip.py").write_text("SKIPPED\n")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "inner.py").write_text("inner = 1\n")
    (tmp_path / "notes.txt").write_text("not python\n")
    return tmp_path


def test_files_exclude_tests_and_site_packages(tree):
    root, files = stdlib_files(tree)
    assert root == tree
    assert files == sorted(files) and "pkg/inner.py" in files
    assert not any("skip" in f or f.endswith(".txt") for f in files)
    assert len(files) == 13


def test_split_is_by_file_and_the_text_is_kept(tree):
    c = stdlib_corpus(10**6, root=tree, val_every=4)
    assert c.val_files == tuple(c.files[i] for i in range(3, len(c.files), 4))
    train_text = "".join((tree / f).read_text() for f in c.files if f not in c.val_files)
    val_text = "".join((tree / f).read_text() for f in c.val_files)
    printable = lambda t: "".join(ch if ch == "\n" or " " <= ch <= "~" else "?" for ch in t)
    assert c.decode(c.train) == printable(train_text)
    assert c.decode(c.val) == printable(val_text)
    assert "?" in c.vocab and "\t" not in c.vocab and c.vocab == "".join(sorted(c.vocab))
    assert c.train.dtype == np.int64 and c.vocab_size == len(c.vocab)


def test_cap_takes_whole_files_in_order(tree):
    c = stdlib_corpus(150, root=tree, val_every=3)   # 23 + 46 + 69 bytes, then 22 more
    assert len(c.files) == 3
    assert len(stdlib_corpus(10, root=tree, val_every=3).files) == 3   # at least val_every
    big = stdlib_corpus(10**6, root=tree, val_every=3)
    assert c.files == big.files[:3]
    assert c.train.size + c.val.size < big.train.size + big.val.size


def test_hash_identifies_the_corpus(tree):
    a = stdlib_corpus(10**6, root=tree, val_every=4)
    assert stdlib_corpus(10**6, root=tree, val_every=4).sha256 == a.sha256
    (tree / "m00.py").write_text("changed = True\n")
    assert stdlib_corpus(10**6, root=tree, val_every=4).sha256 != a.sha256
    assert a.sha256[:16] in a.describe()


def test_byte_level(tree):
    c = stdlib_corpus(10**6, root=tree, level="byte", val_every=4)
    assert c.vocab is None and c.vocab_size == 256
    raw = b"".join((tree / f).read_bytes() for f in c.files if f not in c.val_files)
    assert bytes(c.train.astype(np.uint8)) == raw
    assert c.decode(c.encode("caf\u00e9")) == "caf\u00e9"


def test_batch_windows_and_targets(tree):
    c = stdlib_corpus(10**6, root=tree, val_every=4)
    x, y = c.batch("train", 5, 7, np.random.default_rng(0))
    assert x.shape == y.shape == (5, 7) and x.dtype == np.int64
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    for row_x, row_y in zip(x, y):     # each window is a run of the train split
        starts = [s for s in range(c.train.size - 7) if np.array_equal(c.train[s:s + 7], row_x)]
        assert any(c.train[s + 7] == row_y[-1] for s in starts)
    wx, wy = c.windows("val", [0, 3], 4)
    np.testing.assert_array_equal(wx[1], c.val[3:7])
    np.testing.assert_array_equal(wy[1], c.val[4:8])


def test_bigram_loss_matches_a_direct_count():
    ids = np.array([0, 1, 0, 1, 1, 2, 0], np.int64)
    c = TextCorpus(level="char", train=ids, val=np.array([0, 1, 2], np.int64), vocab="abc",
                   files=("a",), val_files=("b",), sha256="0")
    # train bigrams: 0->1 x2, 1->0, 1->1, 1->2, 2->0; add-one over 3 symbols
    p01 = (2 + 1) / (2 + 3)
    p12 = (1 + 1) / (3 + 3)
    assert c.bigram_loss() == pytest.approx(-(math.log(p01) + math.log(p12)) / 2)


def test_the_stdlib_corpus():
    c = stdlib_corpus(300_000)
    assert c.vocab_size <= 96 and c.val.size > 1000
    assert 1.8 < c.bigram_loss() < 3.2       # bigram of code: ~2.3-2.5 nats per character
    assert c.decode(c.encode("def f():")) == "def f():"


def test_a_python_without_sources_falls_back_to_fastnns_own(tmp_path, monkeypatch):
    import sysconfig
    monkeypatch.setattr(sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    root, files = stdlib_files()
    assert root != tmp_path and "data/text.py" in files
    assert stdlib_files(tmp_path) == (tmp_path, [])   # a given root is taken as it is
    with pytest.raises(ValueError, match="0 .py files"):
        stdlib_corpus(root=tmp_path)


@pytest.mark.parametrize("kwargs,match", [
    ({"level": "word"}, "level"), ({"val_every": 1}, "val_every"), ({"max_bytes": 0}, "max_bytes"),
])
def test_bad_arguments(tree, kwargs, match):
    with pytest.raises(ValueError, match=match):
        stdlib_corpus(**{"root": tree, **kwargs})


def test_bad_batches_and_ids(tree):
    c = stdlib_corpus(10**6, root=tree, val_every=4)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="split"):
        c.batch("test", 2, 4, rng)
    with pytest.raises(ValueError, match="block_size"):
        c.batch("val", 2, c.val.size, rng)
    with pytest.raises(ValueError, match="batch_size"):
        c.batch("train", 0, 4, rng)
    with pytest.raises(ValueError, match="inside"):
        c.windows("val", [c.val.size - 2], 4)
    with pytest.raises(ValueError, match=r"\[0, "):
        c.decode([c.vocab_size])
    with pytest.raises(ValueError, match="outside"):
        TextCorpus("char", c.train, c.val, "ab", (), (), "").encode("abz")
