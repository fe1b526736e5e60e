"""Shared checks for module tests: finite-difference gradients of a Module
(fd_check: one input, the module's own backward; fd_multi: any forward / backward pair
over several inputs, integer inputs excluded by the caller).

The objective is sum(module(x) * G) for a fixed random G, evaluated in
float64 from the module's float32 outputs; central differences with a step
large enough for float32 rounding, compared on a sample of coordinates.
"""
import numpy as np

from fastnn import no_grad


def objective(module, xs, Gs):
    """sum over the calls k of sum(module(xs[k]) * Gs[k]), the calls in order."""
    return float(sum(np.sum(np.asarray(module(x), np.float64) * G) for x, G in zip(xs, Gs)))


def _sample(n, rng, k=12):
    return rng.choice(n, size=min(n, k), replace=False)


def _central_differences(module, xs, Gs, flat, analytic, label, rng, eps):
    """(label, analytic, numeric) for a sample of the entries of `flat`, a view
    of an input or of a parameter that the module reads."""
    out = []
    for i in _sample(flat.size, rng):
        keep = flat[i]
        flat[i] = keep + eps
        up = objective(module, xs, Gs)
        flat[i] = keep - eps
        down = objective(module, xs, Gs)
        flat[i] = keep
        out.append((f"{label}[{i}]", analytic[i], (up - down) / (2 * eps)))
    return out


def fd_check(module, x, rng, eps=1e-2, rtol=2e-2, atol=2e-3, input_grad=True, calls=(1, 3)):
    """Compare module.backward with central differences for the input and every
    parameter; once per entry of `calls`, that many forwards (on different
    inputs) running before their backwards, which come in reverse order, so
    every call must backward from its own saved context."""
    gx = None
    for k in calls:
        gx_k = _fd_check_calls(module, x, rng, k, eps, rtol, atol, input_grad)
        gx = gx_k if gx is None else gx
    return gx


def _fd_check_calls(module, x, rng, k, eps, rtol, atol, input_grad):
    x = np.asarray(x, np.float32)
    xs = [x] + [(x + 0.5 * rng.standard_normal(x.shape)).astype(np.float32)
                for _ in range(k - 1)]
    ys = [np.asarray(module(xi)) for xi in xs]
    Gs = [rng.standard_normal(y.shape) for y in ys]
    module.zero_grad()
    for xi in xs:
        module(xi)
    gxs = [module.backward(G.astype(np.float32), input_grad=input_grad)
           for G in reversed(Gs)][::-1]
    checks = []
    for j, (xi, gx) in enumerate(zip(xs, gxs)):
        if input_grad:
            checks += _central_differences(module, xs, Gs, xi.reshape(-1),
                                           np.asarray(gx).reshape(-1), f"x{j}", rng, eps)
        else:
            assert gx is None
    for name, p in module.named_parameters():
        checks += _central_differences(module, xs, Gs, p.data.reshape(-1),
                                       p.grad.reshape(-1).copy(), name, rng, eps)
    scale = max(1.0, max(abs(n) for _, _, n in checks)) if checks else 1.0
    bad = [(w, a, n) for w, a, n in checks if abs(a - n) > atol * scale + rtol * abs(n)]
    assert not bad, f"{k} call(s): analytic vs numeric gradients differ: {bad[:5]}"
    return gxs[0]


def fd_multi(forward, backward, inputs, params, rng, eps=1e-2, samples=6):
    """Central differences of sum(forward(*inputs) * G) against backward(G) for every
    input (backward returns their gradients) and every (name, Parameter)."""
    out = forward(*inputs)
    G = rng.standard_normal(out.shape)
    for _, p in params:
        p.grad[...] = 0
    forward(*inputs)
    grads = backward(G.astype(np.float32))

    def f():
        with no_grad():
            return float(np.sum(np.asarray(forward(*inputs), np.float64) * G))
    targets = [(f"input {i}", a, g) for i, (a, g) in enumerate(zip(inputs, grads))]
    targets += [(name, p.data, p.grad.copy()) for name, p in params]
    for name, arr, grad in targets:
        flat, gflat = arr.reshape(-1), np.asarray(grad).reshape(-1)
        for i in rng.choice(flat.size, min(samples, flat.size), replace=False):
            keep = flat[i]
            flat[i] = keep + eps
            up = f()
            flat[i] = keep - eps
            down = f()
            flat[i] = keep
            num = (up - down) / (2 * eps)
            assert abs(gflat[i] - num) <= 3e-3 * max(1.0, abs(num)) + 3e-2 * abs(num), \
                (name, i, gflat[i], num)
