"""fastnn.nn against the inputs PyTorch's own module tests generate.

Every ModuleInfo of ``torch.testing._internal.common_modules.module_db`` whose
class has a namesake in ``fastnn.nn`` yields ModuleInputs (constructor args,
forward args) for training=True and training=False; each one is a test case
(parametrized at collection time over (class, mode, sample index)):

* both modules are built with the same constructor arguments (tensors as
  NumPy arrays, ``device``/``dtype`` keywords stripped), torch's state_dict is
  copied into fastnn and both are put in the same train/eval mode;
* one call: the forward output (or loss), the buffers afterwards, the input
  gradient (``fm.backward(g)`` for a random g shaped like the output; a loss's
  ``fm.backward()`` against ``pred.grad``) and every parameter gradient must
  match torch (float32, rtol 1e-4, atol 1e-5 scaled by the largest |value|);
* two calls on fresh copies: forward x and x * 0.5 + 0.1, then the backwards
  in reverse order; each input gradient and the summed parameter gradients
  must match torch's.

A sample using an option fastnn does not take (construction or forward raises
TypeError/ValueError: reduction='none', class weights, probability targets,
...) is skipped with the message, not failed.  A sample that runs and gives a
different result fails.
"""
import copy
import inspect
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")  # common_modules imports it
common_modules = pytest.importorskip("torch.testing._internal.common_modules")

from fastnn import nn  # noqa: E402
from test_nn_torch import torch_setup  # noqa: E402,F401  (seeds, one torch thread)

RTOL, ATOL = 1e-4, 1e-5
# torch's TransformerEncoder explains why it takes no nested-tensor fast path
# and KLDivLoss that its reduction="mean" is not the KL divergence
pytestmark = [pytest.mark.filterwarnings("ignore:enable_nested_tensor is True:UserWarning"),
              pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")]

LOSSES = {"CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss", "L1Loss", "HuberLoss",
          "SmoothL1Loss", "SoftMarginLoss", "BCELoss", "KLDivLoss", "PoissonNLLLoss",
          "GaussianNLLLoss", "NLLLoss", "MultiLabelSoftMarginLoss", "MarginRankingLoss",
          "CosineEmbeddingLoss"}
MODULES = {"Linear", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "Softmax",
           "BatchNorm2d", "GroupNorm", "LayerNorm", "RMSNorm", "Dropout1d", "Dropout2d",
           "LogSoftmax", "Dropout", "BatchNorm1d", "Flatten", "Identity",
           "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"}
MODULES |= {"MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d",
            "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "ZeroPad2d",
            "ConstantPad2d", "Upsample"}
# several inputs / outputs: (x, hx) -> (output, h_n) or (output, (h_n, c_n)); cells
# (x, hx) -> h or (h, c)
RECURRENT = {"RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"}
MODULES |= RECURRENT | {"Embedding"}
# several inputs (positions DATA_INPUTS[name] differentiated; the others masks and flags)
DATA_INPUTS = {"MultiheadAttention": 3, "TransformerEncoderLayer": 1, "TransformerEncoder": 1,
               "TransformerDecoderLayer": 2, "Transformer": 2}
MODULES |= set(DATA_INPUTS)
MODULES |= {"ELU", "SELU", "CELU", "Softplus", "Mish", "Hardswish", "Hardsigmoid", "ReLU6",
            "Hardtanh", "GLU", "Softsign", "LogSigmoid", "Tanhshrink", "Threshold", "Softmin",
            "Softshrink", "Hardshrink", "PReLU"}
NAMES = sorted((MODULES | LOSSES) & set(nn.__all__))

def _collect():
    cases = []
    by_name = {}
    for info in common_modules.module_db:
        name = info.module_cls.__name__
        if name in NAMES and info.module_cls is getattr(torch.nn, name, None):
            by_name.setdefault(name, info)
    for name in NAMES:
        info = by_name.get(name)
        if info is None:
            continue  # Dropout, Flatten, Identity have no ModuleInfo in module_db
        for training in (True, False):
            torch.manual_seed(zlib.crc32(f"{name}-{training}".encode()))
            samples = info.module_inputs_func(info, device="cpu", dtype=torch.float32,
                                              requires_grad=True, training=training)
            for i, sample in enumerate(samples):
                desc = getattr(sample, "desc", "") or ""
                case_id = f"{name}-{'train' if training else 'eval'}-{i}" + (f"-{desc}" if desc else "")
                cases.append(pytest.param(name, training, i, sample, id=case_id))
    return cases


CASES = _collect()


# ---- conversions --------------------------------------------------------------
def to_numpy(value):
    """Tensors (nested in lists/tuples/dicts) as NumPy copies, keeping the layout."""
    if isinstance(value, torch.Tensor):
        return np.array(value.detach().numpy(), copy=True)
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(v) for v in value)
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    return value


def fastnn_args(value):
    """Constructor arguments for fastnn: tensors as NumPy, torch layers given to a
    container (TransformerEncoder's encoder_layer, norm=) as their fastnn twins
    (their weights come with the state_dict), torch activations by name."""
    F = torch.nn.functional
    if value is F.relu:
        return "relu"
    if value is F.gelu:
        return "gelu"
    if isinstance(value, (torch.nn.TransformerEncoderLayer, torch.nn.TransformerDecoderLayer)):
        cls = getattr(nn, type(value).__name__)
        act = value.activation
        act = "relu" if act is F.relu else "gelu" if act is F.gelu else fastnn_args(act)
        return cls(value.self_attn.embed_dim, value.self_attn.num_heads,
                   value.linear1.out_features, value.dropout.p, act, value.norm1.eps,
                   value.self_attn.batch_first, value.norm_first,
                   value.linear1.bias is not None)
    if isinstance(value, torch.nn.LayerNorm):
        return nn.LayerNorm(value.normalized_shape, value.eps, value.elementwise_affine,
                            value.bias is not None)
    if isinstance(value, torch.nn.ReLU):
        return nn.ReLU()
    if isinstance(value, torch.nn.GELU):
        return nn.GELU(value.approximate)
    if isinstance(value, (list, tuple)):
        return type(value)(fastnn_args(v) for v in value)
    if isinstance(value, dict):
        return {k: fastnn_args(v) for k, v in value.items()}
    return to_numpy(value)


def leaf(array):
    """A torch leaf tensor over a copy of `array` (float: requires_grad)."""
    t = torch.from_numpy(np.array(array, copy=True))
    return t.requires_grad_() if t.is_floating_point() else t


def close(got, want, what):
    if isinstance(want, torch.Tensor):
        want = want.detach().numpy()
    want = np.asarray(want)
    assert isinstance(got, np.ndarray), f"{what}: got {type(got).__name__}, not an ndarray"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != torch's {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != torch's {want.shape}"
    if want.dtype.kind in "iub":
        np.testing.assert_array_equal(got, want, err_msg=what)
        return
    finite = want[np.isfinite(want)]
    scale = max(1.0, float(np.abs(finite).max())) if finite.size else 1.0
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL * scale, err_msg=what)


def close_loss(got, want, what):
    assert isinstance(got, float), f"{what}: got {type(got).__name__}, not a float"
    close(np.asarray(got, np.float32), want.detach().to(torch.float32), what)


def unsupported(where, exc):
    pytest.skip(f"fastnn does not support this sample ({where}): {type(exc).__name__}: {exc}")


# ---- building -----------------------------------------------------------------
def build(name, training, sample):
    """(torch module, fastnn module, forward args) for one sample; skips if
    fastnn rejects the constructor arguments."""
    args = sample.constructor_input.args
    kwargs = {k: v for k, v in sample.constructor_input.kwargs.items()
              if k not in ("device", "dtype")}
    tm = getattr(torch.nn, name)(*args, **kwargs)
    tm.train(training)
    try:
        fm = getattr(nn, name)(*fastnn_args(args), **fastnn_args(kwargs))
    except (TypeError, ValueError) as exc:
        unsupported("constructor", exc)
    # forward keywords (Linear's input=...) bound to torch's forward positions
    bound = inspect.signature(tm.forward).bind(*sample.forward_input.args,
                                               **sample.forward_input.kwargs)
    if name in DATA_INPUTS:  # masks and flags after a default: every position filled
        bound.apply_defaults()
    assert not bound.kwargs, f"forward keywords without a position: {bound.kwargs}"
    inputs = to_numpy(tuple(bound.args))
    if name == "Dropout" and training and fm.p != 0:
        pytest.skip("Dropout with p > 0 in training mode draws different masks")
    return tm, fm, inputs


def fresh_pair(tm0, name, training, sample):
    """A copy of torch's module and a fastnn module holding its state."""
    tm = copy.deepcopy(tm0)
    tm.train(training)
    fm = getattr(nn, name)(*fastnn_args(sample.constructor_input.args),
                           **fastnn_args({k: v for k, v in sample.constructor_input.kwargs.items()
                                          if k not in ("device", "dtype")}))
    fm.load_state_dict({k: v.detach().numpy().copy() for k, v in tm.state_dict().items()})
    fm.train(training)
    tm.zero_grad()
    fm.zero_grad()
    return tm, fm


def check_state(fm, tm, what):
    fstate, tstate = fm.state_dict(), tm.state_dict()
    assert list(fstate) == list(tstate), f"{what}: state_dict keys"
    for k, v in tstate.items():
        close(np.asarray(fstate[k]), v, f"{what}: state_dict[{k!r}]")


def check_param_grads(fm, tm, what):
    tparams = dict(tm.named_parameters())
    fparams = dict(fm.named_parameters())
    assert list(fparams) == list(tparams), f"{what}: parameter names"
    for k, p in fparams.items():
        if tparams[k].grad is None:
            assert not np.asarray(p.grad).any(), f"{what}: {k}.grad should stay zero"
        else:
            close(p.grad, tparams[k].grad, f"{what}: {k}.grad")


def fastnn_forward(fm, inputs):
    try:
        return fm(*[np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in inputs])
    except (TypeError, ValueError) as exc:
        unsupported("forward", exc)


# ---- the test -----------------------------------------------------------------
@pytest.mark.parametrize("name, training, index, sample", CASES)
def test_module_db_sample(name, training, index, sample):
    tm0, _, inputs = build(name, training, sample)
    rng = np.random.default_rng(index)
    if name in LOSSES:
        _check_loss(tm0, name, training, sample, inputs)
    elif name in RECURRENT:
        _check_recurrent(tm0, name, training, sample, inputs, rng)
    elif name in DATA_INPUTS:
        _check_multi(tm0, name, training, sample, inputs, rng)
    else:
        _check_module(tm0, name, training, sample, inputs, rng)


def _second(x):
    return np.asarray(x * np.float32(0.5) + np.float32(0.1), dtype=x.dtype)  # 0-d stays an array


def _check_module(tm0, name, training, sample, inputs, rng):
    assert len(inputs) == 1, "modules here take one input"
    x = inputs[0]

    # one call
    tm, fm = fresh_pair(tm0, name, training, sample)
    y = fastnn_forward(fm, (x,))
    xt = leaf(x)
    yt = tm(xt)
    close(y, yt, "forward")
    check_state(fm, tm, "after forward")
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.from_numpy(g.copy()))
    gx = fm.backward(g.copy())
    if xt.is_floating_point():
        close(gx, xt.grad, "input grad")
    else:
        assert gx is None, "integer inputs (indices) have no gradient"
    check_param_grads(fm, tm, "one call")

    # two calls, backwards in reverse order
    tm, fm = fresh_pair(tm0, name, training, sample)
    xs = [x, _second(x)]
    ys = [fastnn_forward(fm, (xi,)) for xi in xs]
    xts = [leaf(xi) for xi in xs]
    yts = [tm(xt) for xt in xts]
    for i, (yi, yti) in enumerate(zip(ys, yts)):
        close(yi, yti, f"two calls: forward {i}")
    check_state(fm, tm, "two calls: after forwards")
    gs = [rng.standard_normal(tuple(yti.shape)).astype(np.float32) for yti in yts]
    for yti, gi in zip(yts, gs):
        yti.backward(torch.from_numpy(gi.copy()))
    gxs = [fm.backward(gi.copy()) for gi in reversed(gs)][::-1]
    for i, (gxi, xti) in enumerate(zip(gxs, xts)):
        if xti.is_floating_point():
            close(gxi, xti.grad, f"two calls: input grad {i}")
    check_param_grads(fm, tm, "two calls (summed)")


# the inputs a loss differentiates (its backward returns their gradients, a tuple
# when there are several); the others are targets
LOSS_GRAD_INPUTS = {"GaussianNLLLoss": (0, 2), "CosineEmbeddingLoss": (0, 1),
                    "MarginRankingLoss": (0, 1)}


def _loss_call(tm, fm, name, inputs, rng, what):
    """One forward of both; torch's backward with a random grad_out when the loss is
    per element (reduction='none'). Returns (fastnn's grad_out, the differentiated
    torch leaves)."""
    loss = fastnn_forward(fm, inputs)
    graded = LOSS_GRAD_INPUTS.get(name, (0,))
    leaves = [a if not isinstance(a, np.ndarray) else leaf(a) if i in graded else
              torch.from_numpy(a.copy()) for i, a in enumerate(inputs)]
    lt = tm(*leaves)
    if lt.dim() == 0 and fm.reduction != "none":
        close_loss(loss, lt, what)
        lt.backward()
        grad_out = 1.0
    else:
        close(loss, lt, what)
        grad_out = rng.standard_normal(tuple(lt.shape)).astype(np.float32)
        lt.backward(torch.from_numpy(grad_out.copy()))
    return grad_out, [leaves[i] for i in graded]


def _check_loss_grads(got, leaves, what):
    got = got if isinstance(got, tuple) else (got,)
    assert len(got) == len(leaves), f"{what}: {len(got)} gradients for {len(leaves)} inputs"
    for i, (g, t) in enumerate(zip(got, leaves)):
        if isinstance(t, torch.Tensor):
            close(g, t.grad, f"{what}: input grad {i}")
        else:  # a float (GaussianNLLLoss's var): no gradient
            assert g is None, f"{what}: input grad {i} of a float should be None"


def _check_loss(tm0, name, training, sample, inputs):
    rng = np.random.default_rng(len(inputs))
    # one call
    tm, fm = fresh_pair(tm0, name, training, sample)
    grad_out, leaves = _loss_call(tm, fm, name, inputs, rng, "loss")
    _check_loss_grads(fm.backward(grad_out), leaves, "one call")

    # two calls, backwards in reverse order
    tm, fm = fresh_pair(tm0, name, training, sample)
    second = (_second(inputs[0]),) + tuple(inputs[1:])
    calls = [_loss_call(tm, fm, name, inp, rng, f"two calls: loss {i}")
             for i, inp in enumerate((inputs, second))]
    got = [fm.backward(g) for g, _ in reversed(calls)][::-1]
    for i, (g, (_, leaves)) in enumerate(zip(got, calls)):
        _check_loss_grads(g, leaves, f"two calls: {i}")


# ---- max pools with return_indices=True: forward gives (out, indices) ----------
# Both must match torch's; the gradient flows through `out` alone (indices carry
# none), so backward takes d out as for the other modules.
_check_single_output = _check_module


def _check_module(tm0, name, training, sample, inputs, rng):  # noqa: F811
    if not getattr(tm0, "return_indices", False):
        return _check_single_output(tm0, name, training, sample, inputs, rng)
    x, = inputs
    tm, fm = fresh_pair(tm0, name, training, sample)
    y, iy = fastnn_forward(fm, (x,))
    xt = leaf(x)
    yt, it = tm(xt)
    close(y, yt, "forward")
    close(iy, it, "indices")
    g = rng.standard_normal(tuple(yt.shape)).astype(np.float32)
    yt.backward(torch.from_numpy(g.copy()))
    close(fm.backward(g.copy()), xt.grad, "input grad")


# ---- recurrent modules: (x, hx) in, nested outputs out ---------------------------
def _flat(value):
    """The arrays / tensors of a nested output, in order."""
    if isinstance(value, (tuple, list)):
        return [a for v in value for a in _flat(v)]
    return [value]


def _recurrent_backward(fm, name, grads):
    """fm.backward with one gradient per output, in the module's structure."""
    if name in ("RNNCell", "GRUCell"):
        return fm.backward(grads[0])
    if name == "LSTMCell":
        return fm.backward(grads[0], grads[1])
    if name == "LSTM":
        return fm.backward(grads[0], (grads[1], grads[2]))
    return fm.backward(grads[0], grads[1])


def _recurrent_call(tm, fm, name, inputs, rng, what):
    """One forward of both with the same inputs; returns (fastnn grads, torch leaves)."""
    ys = fastnn_forward(fm, tuple(inputs))
    leaves = [leaf(a) for a in _flat(inputs)]
    it = iter(leaves)
    t_inputs = [next(it)] + ([tuple(next(it) for _ in inp) if isinstance(inp, tuple)
                              else next(it) for inp in inputs[1:]])
    yts = tm(*t_inputs)
    for i, (a, b) in enumerate(zip(_flat(ys), _flat(yts))):
        close(a, b, f"{what}: output {i}")
    gs = [rng.standard_normal(tuple(b.shape)).astype(np.float32) for b in _flat(yts)]
    torch.autograd.backward(_flat(yts), [torch.from_numpy(g.copy()) for g in gs])
    return gs, leaves


def _check_recurrent_grads(got, leaves, had_hx, what):
    got_flat = _flat(got) if had_hx else [got]
    for i, (a, t) in enumerate(zip(got_flat, leaves)):
        close(a, t.grad, f"{what}: input grad {i}")


def _check_recurrent(tm0, name, training, sample, inputs, rng):
    inputs = list(inputs)
    had_hx = len(inputs) > 1 and inputs[1] is not None
    tm, fm = fresh_pair(tm0, name, training, sample)
    gs, leaves = _recurrent_call(tm, fm, name, inputs, rng, "one call")
    _check_recurrent_grads(_recurrent_backward(fm, name, gs), leaves, had_hx, "one call")
    check_param_grads(fm, tm, "one call")

    # two calls, backwards in reverse order
    tm, fm = fresh_pair(tm0, name, training, sample)
    second = [_second(inputs[0])] + inputs[1:]
    calls = [_recurrent_call(tm, fm, name, inp, rng, f"two calls: {i}")
             for i, inp in enumerate((inputs, second))]
    got = [_recurrent_backward(fm, name, gs) for gs, _ in reversed(calls)][::-1]
    for i, (g, (_, leaves)) in enumerate(zip(got, calls)):
        _check_recurrent_grads(g, leaves, had_hx, f"two calls: {i}")
    check_param_grads(fm, tm, "two calls (summed)")


def _check_multi(tm0, name, training, sample, inputs, rng):
    """Attention and Transformer modules: outputs (and MultiheadAttention's weights),
    the gradients of the data inputs and of every parameter, one call."""
    n_data = DATA_INPUTS[name]
    tm, fm = fresh_pair(tm0, name, training, sample)
    targs = [leaf(a) if i < n_data else
             (torch.from_numpy(np.array(a)) if isinstance(a, np.ndarray) else a)
             for i, a in enumerate(inputs)]
    tout = tm(*targs)
    out = fastnn_forward(fm, inputs)
    weights = tweights = None
    if name == "MultiheadAttention":
        (out, weights), (tout, tweights) = out, tout
    if torch.isnan(tout).any() or (tweights is not None and torch.isnan(tweights).any()):
        pytest.skip("a query with every key masked: torch gives NaN, fastnn zeros "
                    "(documented in fastnn.nn.attention)")
    close(out, tout, "forward")
    if tweights is None:
        assert weights is None, "weights returned when torch returns none"
    else:
        close(weights, tweights, "attention weights")
    g = rng.standard_normal(tuple(tout.shape)).astype(np.float32)
    tout.backward(torch.from_numpy(g.copy()))
    grads = fm.backward(g.copy())
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert len(grads) == n_data, f"{len(grads)} input gradients for {n_data} inputs"
    for i, (got, t) in enumerate(zip(grads, targs)):
        close(got, t.grad, f"input grad {i}")
    check_param_grads(fm, tm, "one call")
