"""Shared checks for module tests: finite-difference gradients of a Module.

The objective is sum(module(x) * G) for a fixed random G, evaluated in
float64 from the module's float32 outputs; central differences with a step
large enough for float32 rounding, compared on a sample of coordinates.
"""
import numpy as np


def objective(module, x, G):
    return float(np.sum(np.asarray(module(x), np.float64) * G))


def _sample(n, rng, k=12):
    return rng.choice(n, size=min(n, k), replace=False)


def _central_differences(module, x, G, flat, analytic, label, rng, eps):
    """(label, analytic, numeric) for a sample of the entries of `flat`, a view
    of x or of a parameter that the module reads."""
    out = []
    for i in _sample(flat.size, rng):
        keep = flat[i]
        flat[i] = keep + eps
        up = objective(module, x, G)
        flat[i] = keep - eps
        down = objective(module, x, G)
        flat[i] = keep
        out.append((f"{label}[{i}]", analytic[i], (up - down) / (2 * eps)))
    return out


def fd_check(module, x, rng, eps=1e-2, rtol=2e-2, atol=2e-3, input_grad=True):
    """Compare module.backward with central differences for x and every parameter."""
    x = np.asarray(x, np.float32)
    y = np.asarray(module(x))
    G = rng.standard_normal(y.shape)
    module.zero_grad()
    module(x)
    gx = module.backward(G.astype(np.float32), input_grad=input_grad)
    checks = []
    if input_grad:
        checks += _central_differences(module, x, G, x.reshape(-1), np.asarray(gx).reshape(-1),
                                       "x", rng, eps)
    else:
        assert gx is None
    for name, p in module.named_parameters():
        checks += _central_differences(module, x, G, p.data.reshape(-1),
                                       p.grad.reshape(-1).copy(), name, rng, eps)
    scale = max(1.0, max(abs(n) for _, _, n in checks)) if checks else 1.0
    bad = [(w, a, n) for w, a, n in checks if abs(a - n) > atol * scale + rtol * abs(n)]
    assert not bad, f"analytic vs numeric gradients differ: {bad[:5]}"
    return gx
