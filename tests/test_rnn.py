"""fastnn.ops.rnn / rnn_backward and the recurrent modules without torch: a float64
NumPy reference (reference.rnn_layer), finite differences of it against the C
gradients, every ISA, thread counts bitwise, bad input, save / load, and models
built from modules alone."""
import numpy as np
import pytest

import fastnn
from fastnn import nn, ops, optim
from reference import rnn_layer

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
MODES = list(GATES)


def make(rng, mode, T, N, I, H, P=0, scale=0.4):
    f = lambda *s: (rng.standard_normal(s) * scale).astype(np.float32)  # noqa: E731
    G, R = GATES[mode], P or H
    return dict(x=f(T, N, I), w_ih=f(G * H, I), w_hh=f(G * H, R), b_ih=f(G * H), b_hh=f(G * H),
                h0=f(N, R), c0=f(N, H) if mode == "lstm" else None,
                w_hr=f(P, H) if P else None)


def sorted_lengths(rng, T, N):
    return np.sort(rng.integers(1, T + 1, N))[::-1].copy()


def call(a, mode, reverse=False, lengths=None):
    return ops.rnn(a["x"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], a["h0"], a["c0"], mode,
                   reverse, lengths, w_hr=a["w_hr"])


# (T, N, I, H, P): one or two sequences take the input projection out of the step loop,
# and with H = 150 split their units among the threads
CASES = [(5, 3, 4, 6, 0), (4, 40, 5, 37, 0), (3, 5, 9, 70, 0), (3, 8, 6, 300, 0),
         (4, 1, 5, 150, 0), (3, 2, 7, 37, 0)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("reverse", [False, True])
def test_forward_matches_reference(isa, rng, mode, case, reverse):
    T, N, I, H, P = case
    a = make(rng, mode, T, N, I, H, P, scale=0.2)
    for lengths in (None, sorted_lengths(rng, T, N)):
        y, h_n, c_n, ws = call(a, mode, reverse, lengths)
        ry, rh, rc = rnn_layer(**a, mode=mode, reverse=reverse, lengths=lengths)
        np.testing.assert_allclose(y, ry, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(h_n, rh, rtol=1e-4, atol=2e-5)
        if mode == "lstm":
            np.testing.assert_allclose(c_n, rc, rtol=1e-4, atol=2e-5)


def reference_loss(a, mode, reverse, lengths, gy, gh, gc):
    y, h, c = rnn_layer(**a, mode=mode, reverse=reverse, lengths=lengths)
    loss = (y * gy).sum() + (h * gh).sum()
    return loss + ((c * gc).sum() if c is not None else 0.0)


# (mode, P, (T, N, I, H)): small layers on one thread, and two sequences of 100-120
# units, whose input projection leaves the step loop and whose units the threads split
FD_CASES = [("lstm", 0, (4, 3, 3, 5)), ("gru", 0, (4, 3, 3, 5)), ("rnn_tanh", 0, (4, 3, 3, 5)),
            ("rnn_relu", 0, (4, 3, 3, 5)), ("lstm", 3, (4, 3, 3, 5)),
            ("lstm", 0, (3, 2, 3, 100)), ("gru", 0, (3, 2, 3, 120))]


@pytest.mark.parametrize("mode,P,shape", FD_CASES)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("ragged", [False, True])
def test_gradients_match_finite_differences(isa, mode, P, shape, reverse, ragged):
    """Central differences of the float64 reference at sampled entries of every input."""
    rng = np.random.default_rng(7)
    T, N, I, H = shape
    a = make(rng, mode, T, N, I, H, P)
    a64 = {k: None if v is None else v.astype(np.float64) for k, v in a.items()}
    lengths = np.array([T, T - 1, 1][:N]) if ragged else None
    R = P or H
    gy = rng.standard_normal((T, N, R)).astype(np.float32)
    gh = rng.standard_normal((N, R)).astype(np.float32)
    gc = rng.standard_normal((N, H)).astype(np.float32) if mode == "lstm" else None
    _, _, _, ws = call(a, mode, reverse, lengths)
    dx, dh0, dc0, dwi, dwh, dbi, dbh, dwr = ops.rnn_backward(
        gy, gh, gc, ws, a["x"], a["w_ih"], a["w_hh"], mode, reverse, lengths, w_hr=a["w_hr"])
    got = {"x": dx, "h0": dh0, "c0": dc0, "w_ih": dwi, "w_hh": dwh, "b_ih": dbi, "b_hh": dbh,
           "w_hr": dwr}
    eps = 1e-6
    for name, grad in got.items():
        if a64[name] is None:
            continue
        flat = a64[name].reshape(-1)
        for k in rng.choice(flat.size, min(flat.size, 12), replace=False):
            old = flat[k]
            flat[k] = old + eps
            up = reference_loss(a64, mode, reverse, lengths, gy, gh, gc)
            flat[k] = old - eps
            down = reference_loss(a64, mode, reverse, lengths, gy, gh, gc)
            flat[k] = old
            fd = (up - down) / (2 * eps)
            assert abs(grad.reshape(-1)[k] - fd) <= 2e-4 * max(1.0, abs(fd)), (name, k)


@pytest.mark.parametrize("mode,N,H,P", [(m, N, H, 0) for m in ("lstm", "gru")
                                         for N, H in ((64, 40), (8, 300), (3, 20), (1, 150),
                                                      (2, 100))]
                         + [("lstm", 40, 33, 7)])
def test_threads_bitwise(isa, mode, N, H, P):
    """The batch split, the unit split and one thread give the same bits."""
    rng = np.random.default_rng(3)
    a = make(rng, mode, 5, N, 6, H, P, scale=0.3)
    lengths = sorted_lengths(rng, 5, N)
    gy = rng.standard_normal((5, N, P or H)).astype(np.float32)
    results = []
    for n in (1, 2, 3):
        with fastnn.num_threads(n):
            y, h_n, c_n, ws = call(a, mode, True, lengths)
            back = ops.rnn_backward(gy, None, None, ws, a["x"], a["w_ih"], a["w_hh"], mode, True,
                                    lengths, w_hr=a["w_hr"])
        results.append([y, h_n] + [g for g in back if g is not None])
    for other in results[1:]:
        for r0, r1 in zip(results[0], other):
            np.testing.assert_array_equal(r0, r1)


def test_threads_bitwise_random_shapes_with_projections():
    """The batch split of projected layers (and plain ones) over random shapes, lengths
    and directions: fresh workspaces each call, so a read of stale memory would show."""
    rng = np.random.default_rng(11)
    for _ in range(25):
        T, N, I, H = (int(v) for v in (rng.integers(1, 6), rng.integers(32, 70),
                                       rng.integers(1, 12), rng.integers(2, 50)))
        P = int(rng.integers(1, H)) if rng.random() < 0.7 else 0
        mode = "lstm" if P else str(rng.choice(["lstm", "gru", "rnn_tanh"]))
        a = make(rng, mode, T, N, I, H, P, scale=0.3)
        lengths = sorted_lengths(rng, T, N) if rng.random() < 0.6 else None
        reverse = bool(rng.random() < 0.5)
        gy = rng.standard_normal((T, N, P or H)).astype(np.float32)
        results = []
        for n in (1, 2, 3):
            with fastnn.num_threads(n):
                y, h_n, c_n, ws = call(a, mode, reverse, lengths)
                back = ops.rnn_backward(gy, None, None, ws, a["x"], a["w_ih"], a["w_hh"], mode,
                                        reverse, lengths, w_hr=a["w_hr"])
            results.append([y, h_n] + [g for g in back if g is not None])
        for other in results[1:]:
            for r0, r1 in zip(results[0], other):
                np.testing.assert_array_equal(r0, r1)


def test_bidirectional_halves_and_accumulated_input_grad(rng):
    a = make(rng, "gru", 4, 3, 5, 6)
    b = make(rng, "gru", 4, 3, 5, 6)
    b["x"] = a["x"]
    out = np.zeros((4, 3, 12), np.float32)
    _, _, _, wa = call(dict(a), "gru", False)
    y0, *_ = ops.rnn(a["x"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], a["h0"], mode="gru",
                     out=out, out_offset=0)
    _, _, _, wb = ops.rnn(b["x"], b["w_ih"], b["w_hh"], b["b_ih"], b["b_hh"], b["h0"],
                          mode="gru", reverse=True, out=out, out_offset=6)
    assert y0 is out
    np.testing.assert_allclose(out[..., :6], rnn_layer(**a, mode="gru")[0], rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(out[..., 6:], rnn_layer(**b, mode="gru", reverse=True)[0],
                               rtol=1e-4, atol=2e-5)
    g = rng.standard_normal((4, 3, 12)).astype(np.float32)
    dx = ops.rnn_backward(g, None, None, wa, a["x"], a["w_ih"], a["w_hh"], "gru")[0]
    dx_b = ops.rnn_backward(g, None, None, wb, b["x"], b["w_ih"], b["w_hh"], "gru", True,
                            grad_output_offset=6)[0]
    acc = dx.copy()
    _, _, _, wb = ops.rnn(b["x"], b["w_ih"], b["w_hh"], b["b_ih"], b["b_hh"], b["h0"],
                          mode="gru", reverse=True)
    g_b = np.ascontiguousarray(g[..., 6:])
    ops.rnn_backward(g_b, None, None, wb, b["x"], b["w_ih"], b["w_hh"], "gru", True,
                     input_grad_out=acc)
    np.testing.assert_allclose(acc, dx + dx_b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    (dict(mode="lstmx"), "mode must be one of"),
    (dict(x_shape=(3, 2)), "input must be"),
    (dict(w_ih_shape=(10, 4)), "w_ih must be"),
    (dict(w_hh_shape=(24, 5)), "w_hh must have shape"),
    (dict(h0_shape=(2, 6)), "h0 must have shape"),
    (dict(lengths=[5, 6, 1]), "lengths must be in"),
    (dict(lengths=[1, 2, 3]), "sorted longest first"),
    (dict(lengths=[2, 1]), "lengths must have shape"),
    (dict(no_bhh=True), "both b_ih and b_hh"),
])
def test_bad_input_names_the_argument(rng, kwargs, match):
    a = make(rng, "lstm", 5, 3, 4, 6)
    mode = kwargs.get("mode", "lstm")
    x = np.zeros(kwargs["x_shape"], np.float32) if "x_shape" in kwargs else a["x"]
    w_ih = np.zeros(kwargs["w_ih_shape"], np.float32) if "w_ih_shape" in kwargs else a["w_ih"]
    w_hh = np.zeros(kwargs["w_hh_shape"], np.float32) if "w_hh_shape" in kwargs else a["w_hh"]
    h0 = np.zeros(kwargs["h0_shape"], np.float32) if "h0_shape" in kwargs else None
    b_hh = None if kwargs.get("no_bhh") else a["b_hh"]
    with pytest.raises(ValueError, match=match):
        ops.rnn(x, w_ih, w_hh, a["b_ih"], b_hh, h0, None, mode, lengths=kwargs.get("lengths"))


def test_bad_input_to_modules():
    m = nn.LSTM(4, 6, num_layers=2)
    with pytest.raises(ValueError, match="input_size"):
        m(np.zeros((5, 3, 3), np.float32))
    with pytest.raises(ValueError, match="Expected hidden size"):
        m(np.zeros((5, 3, 4), np.float32), (np.zeros((1, 3, 6)), np.zeros((2, 3, 6))))
    with pytest.raises(ValueError, match="pair"):
        m(np.zeros((5, 3, 4), np.float32), np.zeros((2, 3, 6)))
    with pytest.raises(ValueError, match="lengths must be in"):
        m(np.zeros((5, 3, 4), np.float32), lengths=[5, 0, 2])
    with pytest.raises(TypeError, match="dtype"):
        m(np.zeros((5, 3, 4), np.complex64))
    with pytest.raises(ValueError, match="proj_size"):
        nn.LSTM(4, 6, proj_size=6)
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(4, 6, nonlinearity="sigmoid")


def test_workspace_is_checked(rng):
    a = make(rng, "lstm", 3, 2, 4, 5)
    *_, ws = call(a, "lstm")
    with pytest.raises(ValueError, match="workspace"):
        ops.rnn_backward(None, None, None, ws[:-1], a["x"], a["w_ih"], a["w_hh"], "lstm")
    with pytest.raises(ValueError, match="workspace"):
        ops.rnn_backward(None, None, None, ws, a["x"], a["w_ih"][:15], a["w_hh"][:15], "gru")


@pytest.mark.parametrize("cls", [nn.LSTM, nn.GRU, nn.RNN])
def test_module_matches_reference_with_lengths_unsorted(rng, cls):
    m = cls(3, 5, num_layers=2, bidirectional=True, batch_first=True)
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    lengths = np.array([2, 6, 3, 6])
    out, state = m(x, lengths=lengths)
    mode = m.mode
    sd = {k: v for k, v in m.state_dict().items()}
    # layer by layer with the reference, each sequence alone (no padding at all)
    for n in range(4):
        seq = x[n, :lengths[n]][:, None]
        inp = seq
        for layer in range(2):
            halves = []
            for d, sfx in enumerate(("", "_reverse")):
                k = f"l{layer}{sfx}"
                y, _, _ = rnn_layer(inp, sd[f"weight_ih_{k}"], sd[f"weight_hh_{k}"],
                                    sd[f"bias_ih_{k}"], sd[f"bias_hh_{k}"], mode=mode,
                                    reverse=d == 1)
                halves.append(y)
            inp = np.concatenate(halves, axis=-1)
        np.testing.assert_allclose(out[n, :lengths[n]], inp[:, 0], rtol=1e-4, atol=2e-5)
        assert not out[n, lengths[n]:].any()


def test_cells_and_unbatched(rng):
    cell = nn.GRUCell(3, 4)
    x = rng.standard_normal(3).astype(np.float32)
    h = cell(x)
    ref = rnn_layer(x[None, None], cell.weight_ih.data, cell.weight_hh.data, cell.bias_ih.data,
                    cell.bias_hh.data, mode="gru")[1][0]
    np.testing.assert_allclose(h, ref, rtol=1e-5, atol=1e-6)
    assert cell.backward(np.ones(4, np.float32)).shape == (3,)


def test_embedding_kernels(isa, threads, rng):
    w = rng.standard_normal((50, 37)).astype(np.float32)
    idx = rng.integers(0, 50, (7, 900))
    np.testing.assert_array_equal(ops.embedding(idx, w), w[idx])
    g = rng.standard_normal((7, 900, 37)).astype(np.float32)
    want = np.zeros((50, 37))
    np.add.at(want, idx.reshape(-1), g.reshape(-1, 37).astype(np.float64))
    got = ops.embedding_backward(g, idx, 50)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    counts = np.bincount(idx.reshape(-1), minlength=50)
    got = ops.embedding_backward(g, idx, 50, padding_idx=4, scale_grad_by_freq=True)
    want = want / np.maximum(counts, 1)[:, None]
    want[4] = 0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_embedding_threads_bitwise(rng):
    idx = rng.integers(0, 30, 20000)
    g = rng.standard_normal((20000, 64)).astype(np.float32)
    outs = []
    for n in (1, 2, 3):
        with fastnn.num_threads(n):
            outs.append(ops.embedding_backward(g, idx, 30))
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_embedding_bad_input():
    e = nn.Embedding(10, 3)
    with pytest.raises(ValueError, match="index 10 is out of range"):
        e(np.array([1, 10]))
    with pytest.raises(ValueError, match="index -1 is out of range"):
        e(np.array([-1]))
    with pytest.raises(TypeError, match="integer indices"):
        e(np.array([1.0]))
    with pytest.raises(ValueError, match="Padding_idx"):
        nn.Embedding(10, 3, padding_idx=10)


@pytest.mark.parametrize("make_model", [
    lambda: nn.Sequential(nn.LSTM(4, 8, num_layers=2, bidirectional=True, proj_size=3),
                          nn.RNNOutput("last"), nn.Linear(6, 2)),
    lambda: nn.Sequential(nn.Embedding(12, 4, padding_idx=0), nn.GRU(4, 6, batch_first=True),
                          nn.RNNOutput("sequence"), nn.Linear(6, 12)),
])
def test_save_load_roundtrip(tmp_path, rng, make_model):
    model = make_model()
    x = rng.integers(0, 12, (3, 5)) if isinstance(model[0], nn.Embedding) else \
        rng.standard_normal((5, 3, 4)).astype(np.float32)
    with fastnn.no_grad():
        before = model(x)
    fastnn.save(model, tmp_path / "m.safetensors")
    again = fastnn.load(tmp_path / "m.safetensors")
    with fastnn.no_grad():
        np.testing.assert_array_equal(again(x), before)


def test_sequence_classifier_trains_from_modules_alone(rng):
    """Sign of the sum of a sequence: LSTM -> last step -> Linear, no hand-written backward."""
    fastnn.manual_seed(0)
    X = rng.standard_normal((256, 12, 1)).astype(np.float32)
    y = (X.sum(axis=(1, 2)) > 0).astype(np.int64)
    model = nn.Sequential(nn.LSTM(1, 16, batch_first=True), nn.RNNOutput("last", batch_first=True),
                          nn.Linear(16, 2))
    history = model.fit(X, y, loss="cross_entropy", optimizer=optim.Adam(model.parameters(), 0.01),
                        epochs=15, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    with fastnn.no_grad():
        acc = (model(X).argmax(1) == y).mean()
    assert acc > 0.9


def test_char_model_overfits_one_string():
    """Embedding -> LSTM -> per-step Linear on `this.s` (the Zen of Python, rot13)."""
    import this
    text = this.s[:200]
    chars = sorted(set(text))
    ids = np.array([chars.index(ch) for ch in text])
    V = len(chars)
    fastnn.manual_seed(1)
    model = nn.Sequential(nn.Embedding(V, 16), nn.LSTM(16, 64, batch_first=True),
                          nn.RNNOutput("sequence", batch_first=True), nn.Linear(64, V))
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=0.02)
    x, y = ids[None, :-1], ids[1:]
    first = None
    for _ in range(120):
        logits = model(x)[0]
        loss = loss_fn(logits, y)
        first = loss if first is None else first
        opt.zero_grad()
        model.backward(loss_fn.backward()[None])
        opt.step()
    assert loss < 0.1 * first
