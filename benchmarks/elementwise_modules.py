"""Activation and loss modules, forward + backward: fastnn.nn against torch.nn.

    python benchmarks/elementwise_modules.py [--names ELU,Mish,CrossEntropyLoss,...]
                                             [--shape 256,4096] [--rounds 3] [--threads 2]

One training-step's worth of work per call: an activation's forward and the
backward of a fixed grad_out; a loss's forward (mean) and its backward (torch:
autograd from the scalar). Every (library, module) runs in its own process,
alternating over the rounds: 5 warm-up calls, then the median of 50. Inputs are
float32 of --shape (a loss's class axis is the last one; its integer labels or
targets are drawn once). Prints a Markdown table in microseconds with
torch / fastnn (above 1: fastnn is faster).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

# constructor arguments where the defaults say little; everything else default
KWARGS = {"Softplus": {"beta": 2.0}, "PReLU": {"num_parameters": -1}, "Threshold": {"threshold": 0.1, "value": 0.0}}
ACTIVATIONS = ("ReLU,GELU,SiLU,ELU,SELU,CELU,Softplus,Mish,Hardswish,Hardsigmoid,ReLU6,Hardtanh,"
               "PReLU,GLU,Softsign,LogSigmoid,Tanhshrink,Threshold,Softmin,Softshrink,Hardshrink")
LOSSES = ("CrossEntropyLoss,NLLLoss,BCELoss,BCEWithLogitsLoss,MSELoss,L1Loss,HuberLoss,SmoothL1Loss,"
          "KLDivLoss,SoftMarginLoss,MultiLabelSoftMarginLoss,PoissonNLLLoss")


def inputs(name: str, shape, rng):
    """(input, target or None, grad_out shape or None) for one module."""
    x = rng.standard_normal(shape).astype(np.float32)
    if not name.endswith("Loss"):
        out = list(shape)
        if name == "GLU":
            out[-1] //= 2
        return x, None, tuple(out)
    if name in ("CrossEntropyLoss", "NLLLoss"):
        return x, rng.integers(0, shape[-1], shape[:-1]), None
    if name == "BCELoss":
        return 1 / (1 + np.exp(-x)), rng.random(shape).astype(np.float32), None
    if name in ("BCEWithLogitsLoss", "MultiLabelSoftMarginLoss", "KLDivLoss", "PoissonNLLLoss"):
        return x, rng.random(shape).astype(np.float32), None
    if name == "SoftMarginLoss":
        return x, np.sign(rng.standard_normal(shape)).astype(np.float32), None
    return x, rng.standard_normal(shape).astype(np.float32), None


def worker(lib: str, name: str, shape, threads: int) -> float:
    rng = np.random.default_rng(0)
    x, target, grad_shape = inputs(name, shape, rng)
    g = rng.standard_normal(grad_shape).astype(np.float32) if grad_shape else None
    kwargs = dict(KWARGS.get(name, {}))
    if kwargs.get("num_parameters") == -1:
        kwargs["num_parameters"] = shape[1]
    if lib == "fastnn":
        from fastnn import nn
        m = getattr(nn, name)(**kwargs)

        def call():
            if target is None:
                m(x)
                m.backward(g)
            else:
                m(x, target)
                m.backward()
    else:
        import torch
        torch.set_num_threads(threads)
        m = getattr(torch.nn, name)(**kwargs)
        xt = torch.from_numpy(x).requires_grad_()
        tt = None if target is None else torch.from_numpy(target)
        gt = None if g is None else torch.from_numpy(g)

        def call():
            xt.grad = None
            if tt is None:
                m(xt).backward(gt)
            else:
                m(xt, tt).backward()
    for _ in range(5):
        call()
    times = []
    for _ in range(50):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", default=ACTIVATIONS + "," + LOSSES)
    parser.add_argument("--shape", default="256,4096")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    if args.worker:
        print(json.dumps(worker(*args.worker, shape, args.threads)))
        return
    env = dict(os.environ, FASTNN_NUM_THREADS=str(args.threads))
    names = args.names.split(",")
    times = {}
    for _ in range(args.rounds):
        for name in names:
            for lib in ("fastnn", "torch"):
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", lib, name, "--shape", args.shape,
                     "--threads", str(args.threads)],
                    env=env, check=True, capture_output=True, text=True).stdout
                times.setdefault((lib, name), []).append(json.loads(out))
    print(f"shape {shape}, {args.threads} threads, median of 50 calls, best of {args.rounds} "
          f"rounds (us)\n")
    print("| module | fastnn | torch | torch / fastnn |")
    print("|---|---:|---:|---:|")
    for name in names:
        f, t = min(times[("fastnn", name)]), min(times[("torch", name)])
        print(f"| {name} | {f:.0f} | {t:.0f} | {t / f:.2f}x |")


if __name__ == "__main__":
    main()
