"""NumPy float64 reference implementations of every fastnn.ops kernel.

The oracle for tests: straightforward formulas in float64, no tricks beyond
what is needed to stay finite. Backward references take the same arguments
as the fastnn functions (the forward input or output as documented);
optimizer steps update float64 param and state arrays in place.
"""
import math

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)
_erfc = np.frompyfunc(math.erfc, 1, 1)


def f64(a):
    return np.asarray(a, dtype=np.float64)


def erf(x):
    return _erf(f64(x)).astype(np.float64)


def normal_cdf(x):
    return 0.5 * _erfc(-f64(x) / math.sqrt(2.0)).astype(np.float64)


def relu(x):
    x = f64(x)
    return np.where(x > 0, x, np.where(np.isnan(x), x, 0.0))


def relu_backward(g, x):
    return np.where(f64(x) > 0, f64(g), 0.0)


def leaky_relu(x, slope=0.01):
    x = f64(x)
    return np.where(x < 0, slope * x, x)


def leaky_relu_backward(g, x, slope=0.01):
    return np.where(f64(x) > 0, f64(g), slope * f64(g))


def sigmoid(x):
    x = f64(x)
    with np.errstate(over="ignore"):
        e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def sigmoid_backward(g, y):
    y = f64(y)
    return f64(g) * y * (1.0 - y)


def tanh(x):
    return np.tanh(f64(x))


def tanh_backward(g, y):
    return f64(g) * (1.0 - f64(y) ** 2)


# (1 + tanh(u)) / 2 = sigmoid(2u): the same function without float64's cancellation for x << 0
_GELU_K = math.sqrt(2.0 / math.pi)


def _gelu_tanh_s(x):
    with np.errstate(over="ignore", invalid="ignore"):
        return sigmoid(2.0 * _GELU_K * (x + 0.044715 * x ** 3))


def gelu(x, approximate="none"):
    x = f64(x)
    if approximate == "tanh":
        return x * _gelu_tanh_s(x)
    return x * normal_cdf(x)


def gelu_backward(g, x, approximate="none"):
    x = f64(x)
    if approximate == "tanh":
        s = _gelu_tanh_s(x)
        with np.errstate(over="ignore", invalid="ignore"):
            d = s + x * 2.0 * s * (1.0 - s) * _GELU_K * (1.0 + 3 * 0.044715 * x ** 2)
    else:
        d = normal_cdf(x) + x * np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
    return f64(g) * d


def silu(x):
    return f64(x) * sigmoid(x)


def silu_backward(g, x):
    x = f64(x)
    s = sigmoid(x)
    return f64(g) * s * (1.0 + x * (1.0 - s))


def softmax(x, axis=-1):
    x = f64(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis=-1):
    x = f64(x)
    m = x.max(axis=axis, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))


def softmax_backward(g, y, axis=-1):
    g, y = f64(g), f64(y)
    return y * (g - (g * y).sum(axis=axis, keepdims=True))


def log_softmax_backward(g, y, axis=-1):
    g, y = f64(g), f64(y)
    return g - np.exp(y) * g.sum(axis=axis, keepdims=True)


def cross_entropy(logits, labels, label_smoothing=0.0, ignore_index=-100):
    """(loss, grad) for logits (N, C), labels (N,), mean over rows not ignored."""
    x = f64(logits)
    labels = np.asarray(labels)
    n, c = x.shape
    keep = labels != ignore_index
    count = keep.sum()
    logp = log_softmax(x)
    target = np.full((n, c), label_smoothing / c)
    target[np.arange(n)[keep], labels[keep]] += 1.0 - label_smoothing
    target[~keep] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        loss = -(target * logp).sum() / count
        grad = (np.exp(logp) * keep[:, None] - target) / count if count else np.zeros_like(x)
    return loss, grad


def mse_loss(pred, target):
    d = f64(pred) - f64(target)
    return (d * d).mean(), 2.0 * d / d.size


def binary_cross_entropy_with_logits(x, t):
    x, t = f64(x), f64(t)
    loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    return loss.mean(), (sigmoid(x) - t) / x.size



# ---- per-element loss terms (reduction="none"), as torch.nn.functional defines them ----

def softplus(x):
    x = f64(x)
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def mse_terms(x, t):
    return (f64(x) - f64(t)) ** 2


def l1_terms(x, t):
    return np.abs(f64(x) - f64(t))


def smooth_l1_terms(x, t, beta=1.0):
    a = np.abs(f64(x) - f64(t))
    return a if beta == 0 else np.where(a < beta, 0.5 * a * a / beta, a - 0.5 * beta)


def huber_terms(x, t, delta=1.0):
    a = np.abs(f64(x) - f64(t))
    return np.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta))


def bce_terms(p, t, weight=None):
    p, t = f64(p), f64(t)
    with np.errstate(divide="ignore"):
        log_p, log_q = np.maximum(np.log(p), -100.0), np.maximum(np.log1p(-p), -100.0)
    terms = -(t * log_p + (1 - t) * log_q)
    return terms if weight is None else terms * f64(weight)


def bce_with_logits_terms(x, t, weight=None, pos_weight=None):
    x, t = f64(x), f64(t)
    pw = 1.0 if pos_weight is None else f64(pos_weight)
    terms = pw * t * softplus(-x) + (1 - t) * softplus(x)
    return terms if weight is None else terms * f64(weight)


def soft_margin_terms(x, t):
    return softplus(-f64(t) * f64(x))


def kl_div_terms(x, t, log_target=False):
    x, t = f64(x), f64(t)
    if log_target:
        return np.exp(t) * (t - x)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, t * (np.log(t) - x), 0.0)


def poisson_nll_terms(x, t, log_input=True, full=False, eps=1e-8):
    x, t = f64(x), f64(t)
    terms = np.exp(x) - t * x if log_input else x - t * np.log(x + eps)
    if full:
        with np.errstate(divide="ignore", invalid="ignore"):
            stirling = t * np.log(t) - t + 0.5 * np.log(2 * np.pi * t)
        terms = terms + np.where(t > 1, stirling, 0.0)
    return terms


def gaussian_nll_terms(x, t, var, full=False, eps=1e-6):
    v = np.maximum(f64(var), eps)
    terms = 0.5 * (np.log(v) + (f64(x) - f64(t)) ** 2 / v)
    return terms + 0.5 * math.log(2 * math.pi) if full else terms


def margin_ranking_terms(x1, x2, y, margin=0.0):
    return np.maximum(0.0, -f64(y) * (f64(x1) - f64(x2)) + margin)


def cosine_embedding_terms(x1, x2, y, margin=0.0):
    """per row of (N, D) or (D,); torch adds 1e-12 to each squared norm"""
    x1, x2 = f64(x1), f64(x2)
    cos = (x1 * x2).sum(-1) / np.sqrt(((x1 * x1).sum(-1) + 1e-12) * ((x2 * x2).sum(-1) + 1e-12))
    return np.where(f64(y) > 0, 1.0 - cos, np.maximum(0.0, cos - margin))


def multilabel_soft_margin_terms(x, t, weight=None):
    """per row of (N, C) or (C,): the mean over classes"""
    return bce_with_logits_terms(x, t, weight).mean(axis=-1)


def class_rows(x):
    """(C,) / (N, C, d...) -> (rows (R, C), the row shape)"""
    x = f64(x)
    if x.ndim == 1:
        return x[None], ()
    moved = np.moveaxis(x, 1, -1)
    return moved.reshape(-1, x.shape[1]), moved.shape[:-1]


def cross_entropy_terms(x, labels, weight=None, ignore_index=-100, label_smoothing=0.0,
                        log_probs=False):
    """per row losses (the labels' shape) of logits (or, log_probs, log-probabilities)
    against class indices, and the mean's divisor (the summed weight of the rows
    kept), as torch's cross_entropy / nll_loss."""
    rows, shape = class_rows(x)
    R, C = rows.shape
    y = np.asarray(labels).reshape(R)
    w = np.ones(C) if weight is None else f64(weight)
    logp = rows if log_probs else log_softmax(rows)
    keep = y != ignore_index
    yk = np.where(keep, y, 0)
    nll = -logp[np.arange(R), yk] * w[yk]
    smooth = -(logp * w).sum(-1) / C
    terms = np.where(keep, (1 - label_smoothing) * nll + label_smoothing * smooth, 0.0)
    return terms.reshape(shape), float((w[yk] * keep).sum())


def cross_entropy_probs_terms(x, probs, weight=None, label_smoothing=0.0):
    """per row losses against class probabilities (shaped like the logits)"""
    rows, shape = class_rows(x)
    t, _ = class_rows(probs)
    C = rows.shape[1]
    t = t * (1 - label_smoothing) + label_smoothing / C
    w = np.ones(C) if weight is None else f64(weight)
    return -(log_softmax(rows) * t * w).sum(-1).reshape(shape)

# ---- optimizer steps: in place on float64 param and state arrays, as torch.optim ----

def sgd_step(p, g, buf, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0,
             first_step=False, maximize=False):
    g = -f64(g) if maximize else f64(g)
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        buf[...] = g if first_step else momentum * buf + (1.0 - dampening) * g
        g = g + momentum * buf if nesterov else buf
    p -= lr * g


def adam_moments(p, g, m, v, lr, beta1, beta2, weight_decay, decoupled, maximize):
    """Adam's, RAdam's and NAdam's shared start: weight decay, then both moment
    estimates; returns the gradient used."""
    g = -f64(g) if maximize else f64(g)
    if weight_decay and decoupled:
        p *= 1.0 - lr * weight_decay
    elif weight_decay:
        g = g + weight_decay * p
    m += (1.0 - beta1) * (g - m)
    v[...] = beta2 * v + (1.0 - beta2) * g * g
    return g


def adam_step(p, g, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
              decoupled=False, max_exp_avg_sq=None, maximize=False):
    adam_moments(p, g, m, v, lr, beta1, beta2, weight_decay, decoupled, maximize)
    if max_exp_avg_sq is not None:
        np.maximum(max_exp_avg_sq, v, out=max_exp_avg_sq)
        v = max_exp_avg_sq
    denom = np.sqrt(v) / math.sqrt(1.0 - beta2 ** step) + eps
    p -= lr / (1.0 - beta1 ** step) * m / denom


def rmsprop_step(p, g, square_avg, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                 momentum=0.0, grad_avg=None, momentum_buf=None, maximize=False):
    g = -f64(g) if maximize else f64(g)
    if weight_decay:
        g = g + weight_decay * p
    square_avg[...] = alpha * square_avg + (1.0 - alpha) * g * g
    if grad_avg is not None:
        grad_avg += (1.0 - alpha) * (g - grad_avg)
        avg = np.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        avg = np.sqrt(square_avg) + eps
    if momentum > 0:
        momentum_buf[...] = momentum * momentum_buf + g / avg
        p -= lr * momentum_buf
    else:
        p -= lr * g / avg


def adagrad_step(p, g, sum_, step, lr=1e-2, lr_decay=0.0, weight_decay=0.0, eps=1e-10,
                 maximize=False):
    g = -f64(g) if maximize else f64(g)
    if weight_decay:
        g = g + weight_decay * p
    sum_ += g * g
    p -= lr / (1.0 + (step - 1) * lr_decay) * g / (np.sqrt(sum_) + eps)


def adamax_step(p, g, m, u, step, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                maximize=False):
    g = -f64(g) if maximize else f64(g)
    if weight_decay:
        g = g + weight_decay * p
    m += (1.0 - beta1) * (g - m)
    np.maximum(beta2 * u, np.abs(g) + eps, out=u)
    p -= lr / (1.0 - beta1 ** step) * m / u


def radam_step(p, g, m, v, step, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
               decoupled=False, maximize=False):
    adam_moments(p, g, m, v, lr, beta1, beta2, weight_decay, decoupled, maximize)
    bc1, bc2 = 1.0 - beta1 ** step, 1.0 - beta2 ** step
    rho_inf = 2.0 / (1.0 - beta2) - 1.0
    rho = rho_inf - 2.0 * step * beta2 ** step / bc2
    if rho > 5.0:
        rect = math.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
        p -= lr * rect * (m / bc1) * math.sqrt(bc2) / (np.sqrt(v) + eps)
    else:
        p -= lr * (m / bc1)


def nadam_step(p, g, m, v, mu_product, step, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8,
               weight_decay=0.0, momentum_decay=4e-3, decoupled=False, maximize=False):
    """mu_product: a 1-element array, updated"""
    g = adam_moments(p, g, m, v, lr, beta1, beta2, weight_decay, decoupled, maximize)
    mu = beta1 * (1.0 - 0.5 * 0.96 ** (step * momentum_decay))
    mu_next = beta1 * (1.0 - 0.5 * 0.96 ** ((step + 1) * momentum_decay))
    mu_product *= mu
    product = float(mu_product[0])
    denom = np.sqrt(v / (1.0 - beta2 ** step)) + eps
    p -= lr * (1.0 - mu) / (1.0 - product) * g / denom
    p -= lr * mu_next / (1.0 - product * mu_next) * m / denom


def adadelta_step(p, g, square_avg, acc_delta, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0.0,
                  maximize=False):
    g = -f64(g) if maximize else f64(g)
    if weight_decay:
        g = g + weight_decay * p
    square_avg[...] = rho * square_avg + (1.0 - rho) * g * g
    delta = np.sqrt(acc_delta + eps) / np.sqrt(square_avg + eps) * g
    acc_delta[...] = rho * acc_delta + (1.0 - rho) * delta * delta
    p -= lr * delta


def asgd_step(p, g, ax, eta, mu, step, lr=1e-2, lambd=1e-4, alpha=0.75, t0=1e6,
              weight_decay=0.0, maximize=False):
    """eta, mu: 1-element arrays, this step's, updated for the next"""
    g = -f64(g) if maximize else f64(g)
    if weight_decay:
        g = g + weight_decay * p
    p *= 1.0 - lambd * eta[0]
    p -= eta[0] * g
    ax[...] = ax + (p - ax) * mu[0] if mu[0] != 1.0 else p
    eta[0] = lr / (1.0 + lambd * lr * step) ** alpha
    mu[0] = 1.0 / max(1.0, step - t0)


def rprop_step(p, g, prev, step_size, etaminus=0.5, etaplus=1.2, step_size_min=1e-6,
               step_size_max=50.0, maximize=False):
    g = -f64(g) if maximize else f64(g)
    s = g * prev
    step_size *= np.where(s > 0, etaplus, np.where(s < 0, etaminus, 1.0))
    np.clip(step_size, step_size_min, step_size_max, out=step_size)
    g = np.where(s < 0, 0.0, g)
    p -= np.sign(g) * step_size
    prev[...] = g


def rnn_layer(x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, mode="lstm",
              reverse=False, lengths=None, w_hr=None):
    """One recurrent layer and direction in float64, torch's equations: x (T, N, I);
    returns (y (T, N, R), h_n (N, R), c_n (N, H) or None). lengths: steps past a
    sequence's length leave its state and give 0."""
    x, w_ih, w_hh = f64(x), f64(w_ih), f64(w_hh)
    T, N, _ = x.shape
    G = {"lstm": 4, "gru": 3}.get(mode, 1)
    H = w_ih.shape[0] // G
    R = H if w_hr is None else w_hr.shape[0]
    b_ih = np.zeros(G * H) if b_ih is None else f64(b_ih)
    b_hh = np.zeros(G * H) if b_hh is None else f64(b_hh)
    h = np.zeros((N, R)) if h0 is None else f64(h0)
    c = np.zeros((N, H)) if c0 is None else f64(c0)
    lengths = np.full(N, T) if lengths is None else np.asarray(lengths)
    y = np.zeros((T, N, R))
    sig = lambda a: 1.0 / (1.0 + np.exp(-a))  # noqa: E731
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        gi = x[t] @ w_ih.T + b_ih
        gh = h @ w_hh.T + b_hh
        c_new = c
        if mode == "lstm":
            i, f, g, o = np.split(gi + gh, 4, axis=1)
            c_new = sig(f) * c + sig(i) * np.tanh(g)
            h_new = sig(o) * np.tanh(c_new)
            if w_hr is not None:
                h_new = h_new @ f64(w_hr).T
        elif mode == "gru":
            ir, iz, i_n = np.split(gi, 3, axis=1)
            hr, hz, h_n = np.split(gh, 3, axis=1)
            r, z = sig(ir + hr), sig(iz + hz)
            n = np.tanh(i_n + r * h_n)
            h_new = (1 - z) * n + z * h
        else:
            a = gi + gh
            h_new = np.tanh(a) if mode == "rnn_tanh" else np.maximum(a, 0.0)
        live = (lengths > t)[:, None]
        h = np.where(live, h_new, h)
        c = np.where(live, c_new, c)
        y[t] = np.where(live, h_new, 0.0)
    return y, h, (c if mode == "lstm" else None)
