"""torch parity of RNN, LSTM, GRU, their cells, RNNOutput and Embedding: outputs, final
states, the gradients of the input, the initial state and every parameter, for every
option; state_dict round trips both ways."""
import itertools

import numpy as np
import pytest

from fastnn import nn

torch = pytest.importorskip("torch")

RTOL, ATOL = 2e-4, 2e-5
CLASSES = {"RNN": (nn.RNN, torch.nn.RNN), "LSTM": (nn.LSTM, torch.nn.LSTM),
           "GRU": (nn.GRU, torch.nn.GRU)}


def pair(name, **kw):
    ours_cls, theirs_cls = CLASSES[name]
    theirs = theirs_cls(**kw).double()
    ours = ours_cls(**kw)
    ours.load_state_dict({k: v.detach().float().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def close(a, b, what):
    b = b.detach().numpy() if hasattr(b, "detach") else b
    scale = max(1.0, float(np.abs(b).max()) if np.size(b) else 1.0)
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL * scale, err_msg=what)


def run_both(name, kw, T=5, N=3, with_hx=True, lengths=None, seed=0):
    rng = np.random.default_rng(seed)
    ours, theirs = pair(name, **kw)
    D = 2 if kw.get("bidirectional") else 1
    L, H = kw.get("num_layers", 1), kw["hidden_size"]
    bf = kw.get("batch_first", False)
    x = rng.standard_normal((N, T, kw["input_size"]) if bf else (T, N, kw["input_size"]))
    x = x.astype(np.float32)
    h0 = rng.standard_normal((D * L, N, kw.get("proj_size") or H)).astype(np.float32)
    c0 = rng.standard_normal((D * L, N, H)).astype(np.float32)
    lstm = name == "LSTM"
    hx = ((h0, c0) if lstm else h0) if with_hx else None
    out, state = ours(x, hx, lengths=lengths)
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ht = torch.tensor(h0, dtype=torch.float64, requires_grad=True)
    ct = torch.tensor(c0, dtype=torch.float64, requires_grad=True)
    hxt = ((ht, ct) if lstm else ht) if with_hx else None
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=bf,
                                                      enforce_sorted=False)
    out_t, state_t = theirs(inp, hxt)
    if lengths is not None:
        out_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_t, batch_first=bf,
                                                          total_length=T)
    close(out, out_t, "output")
    if lstm:
        close(state[0], state_t[0], "h_n")
        close(state[1], state_t[1], "c_n")
    else:
        close(state, state_t, "h_n")
    g_out = rng.standard_normal(out.shape).astype(np.float32)
    g_h = rng.standard_normal(h0.shape).astype(np.float32)
    g_c = rng.standard_normal(c0.shape).astype(np.float32)
    ours.zero_grad()
    res = ours.backward(g_out, (g_h, g_c) if lstm else g_h)
    loss = (out_t * torch.tensor(g_out, dtype=torch.float64)).sum()
    if lstm:
        loss = loss + (state_t[0] * torch.tensor(g_h, dtype=torch.float64)).sum() + \
            (state_t[1] * torch.tensor(g_c, dtype=torch.float64)).sum()
    else:
        loss = loss + (state_t * torch.tensor(g_h, dtype=torch.float64)).sum()
    loss.backward()
    dx = res[0] if with_hx else res
    close(dx, xt.grad, "grad input")
    if with_hx:
        if lstm:
            close(res[1][0], ht.grad, "grad h0")
            close(res[1][1], ct.grad, "grad c0")
        else:
            close(res[1], ht.grad, "grad h0")
    tp = dict(theirs.named_parameters())
    for k, p in ours.named_parameters():
        close(p.grad, tp[k].grad, f"grad {k}")


OPTIONS = list(itertools.product(["RNN", "LSTM", "GRU"], [1, 2], [False, True], [False, True]))


@pytest.mark.parametrize("name,layers,bidir,batch_first", OPTIONS)
def test_modules_match_torch(name, layers, bidir, batch_first):
    kw = dict(input_size=4, hidden_size=6, num_layers=layers, bidirectional=bidir,
              batch_first=batch_first)
    run_both(name, kw)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_three_layers_no_bias_no_hx(name):
    run_both(name, dict(input_size=3, hidden_size=5, num_layers=3, bias=False), with_hx=False)


@pytest.mark.parametrize("layers,bidir,lengths", [(1, False, None), (2, True, None),
                                                  (2, True, [2, 5, 4])])
def test_lstm_projection(layers, bidir, lengths):
    run_both("LSTM", dict(input_size=4, hidden_size=7, proj_size=3, num_layers=layers,
                          bidirectional=bidir), N=3, lengths=lengths)


def test_relu_rnn():
    run_both("RNN", dict(input_size=4, hidden_size=7, nonlinearity="relu", num_layers=2))


@pytest.mark.parametrize("name,bidir,batch_first", list(itertools.product(
    ["RNN", "LSTM", "GRU"], [False, True], [False, True])))
def test_lengths_match_packed_sequences(name, bidir, batch_first):
    kw = dict(input_size=4, hidden_size=6, num_layers=2, bidirectional=bidir,
              batch_first=batch_first)
    run_both(name, kw, T=6, N=5, lengths=[3, 6, 1, 6, 4])


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_wide_shapes_cross_unit_blocks(name):
    # hidden sizes across the 32-unit blocks, batches on each thread split
    for H, N in ((33, 40), (70, 3), (300, 8)):
        run_both(name, dict(input_size=9, hidden_size=H, bidirectional=True), T=3, N=N)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_unbatched_input(name):
    rng = np.random.default_rng(1)
    ours, theirs = pair(name, input_size=3, hidden_size=4, num_layers=2)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    out, state = ours(x)
    out_t, state_t = theirs(torch.tensor(x, dtype=torch.float64))
    close(out, out_t, "output")
    close(state[0] if name == "LSTM" else state, state_t[0] if name == "LSTM" else state_t,
          "h_n")
    g = ours.backward(np.ones_like(out))
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    theirs(xt)[0].sum().backward()
    close(g, xt.grad, "grad input")


CELLS = {"RNNCell": (nn.RNNCell, torch.nn.RNNCell), "LSTMCell": (nn.LSTMCell, torch.nn.LSTMCell),
         "GRUCell": (nn.GRUCell, torch.nn.GRUCell)}


@pytest.mark.parametrize("name,bias", list(itertools.product(CELLS, [True, False])))
def test_cells_over_time_in_a_python_loop(name, bias):
    """A cell applied T times, then T backwards in reverse: per-call contexts."""
    rng = np.random.default_rng(2)
    ours_cls, theirs_cls = CELLS[name]
    theirs = theirs_cls(4, 5, bias=bias).double()
    ours = ours_cls(4, 5, bias=bias)
    ours.load_state_dict({k: v.detach().float().numpy() for k, v in theirs.state_dict().items()})
    lstm = name == "LSTMCell"
    T, N = 4, 3
    xs = rng.standard_normal((T, N, 4)).astype(np.float32)
    h = rng.standard_normal((N, 5)).astype(np.float32)
    c = rng.standard_normal((N, 5)).astype(np.float32)
    hs, state = [], ((h, c) if lstm else h)
    for t in range(T):
        state = ours(xs[t], state)
        hs.append(state[0] if lstm else state)
    xt = torch.tensor(xs, dtype=torch.float64, requires_grad=True)
    ht = torch.tensor(h, dtype=torch.float64, requires_grad=True)
    ct = torch.tensor(c, dtype=torch.float64, requires_grad=True)
    st, hts = ((ht, ct) if lstm else ht), []
    for t in range(T):
        st = theirs(xt[t], st)
        hts.append(st[0] if lstm else st)
    for a, b in zip(hs, hts):
        close(a, b, "h_t")
    gs = rng.standard_normal((T, N, 5)).astype(np.float32)
    sum(((b * torch.tensor(g, dtype=torch.float64)).sum() for b, g in zip(hts, gs))).backward()
    ours.zero_grad()
    g_state, dxs = None, [None] * T
    for t in range(T - 1, -1, -1):
        if lstm:
            gh = gs[t] if g_state is None else gs[t] + g_state[0]
            dx, g_state = ours.backward(gh, None if g_state is None else g_state[1])
        else:
            gh = gs[t] if g_state is None else gs[t] + g_state
            dx, g_state = ours.backward(gh)
        dxs[t] = dx
    close(np.stack(dxs), xt.grad, "grad input")
    close(g_state[0] if lstm else g_state, ht.grad, "grad h0")
    if lstm:
        close(g_state[1], ct.grad, "grad c0")
    tp = dict(theirs.named_parameters())
    for k, p in ours.named_parameters():
        close(p.grad, tp[k].grad, f"grad {k}")


@pytest.mark.parametrize("name", list(CLASSES) + list(CELLS))
def test_state_dict_round_trips_with_torch(name):
    ours_cls, theirs_cls = {**CLASSES, **CELLS}[name]
    kw = dict(input_size=3, hidden_size=4)
    if name in CLASSES:
        kw.update(num_layers=2, bidirectional=True)
    if name == "LSTM":
        kw.update(proj_size=2)
    ours, theirs = ours_cls(**kw), theirs_cls(**kw)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for (k, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items()):
        assert a.shape == tuple(b.shape), k
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    for k, v in theirs.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[k], v.numpy())


def test_init_range_matches_torch():
    m = nn.LSTM(8, 50, num_layers=2)
    bound = 1 / np.sqrt(50)
    for _, p in m.named_parameters():
        assert np.abs(p.data).max() <= bound
        assert np.abs(p.data).max() > 0.9 * bound


@pytest.mark.parametrize("opts", [{}, {"padding_idx": 2}, {"scale_grad_by_freq": True},
                                  {"padding_idx": -1, "scale_grad_by_freq": True},
                                  {"max_norm": 1.0}, {"max_norm": 0.5, "norm_type": 1.0}])
def test_embedding_matches_torch(opts):
    rng = np.random.default_rng(3)
    theirs = torch.nn.Embedding(7, 5, **opts)
    ours = nn.Embedding(7, 5, **opts)
    ours.load_state_dict({"weight": theirs.weight.detach().numpy().copy()})
    idx = rng.integers(0, 7, (4, 6))
    out = ours(idx)
    out_t = theirs(torch.tensor(idx))
    close(out, out_t, "output")
    np.testing.assert_allclose(ours.weight.data, theirs.weight.detach().numpy(), rtol=1e-6,
                               atol=1e-6)
    g = rng.standard_normal(out.shape).astype(np.float32)
    ours.zero_grad()
    assert ours.backward(g) is None
    (out_t * torch.tensor(g)).sum().backward()
    close(ours.weight.grad, theirs.weight.grad, "grad weight")


def test_embedding_from_pretrained_and_init():
    w = np.arange(12, dtype=np.float32).reshape(4, 3)
    ours = nn.Embedding.from_pretrained(w)
    theirs = torch.nn.Embedding.from_pretrained(torch.tensor(w))
    assert not ours.weight.requires_grad and not theirs.weight.requires_grad
    np.testing.assert_array_equal(ours([3, 0]), theirs(torch.tensor([3, 0])).numpy())
    e = nn.Embedding(10, 4, padding_idx=3)
    assert np.all(e.weight.data[3] == 0)
