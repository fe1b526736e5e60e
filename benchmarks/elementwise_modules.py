"""Activation and loss modules, forward + backward: fastnn.nn against torch.nn.

    python benchmarks/elementwise_modules.py [--names ELU,Mish,CrossEntropyLoss,...]
                                             [--shape 256,4096] [--rounds 3] [--threads 2]

One training-step's worth of work per call: an activation's forward and the
backward of a fixed grad_out; a loss's forward (mean, or the configuration
KWARGS gives a name such as "CrossEntropyLoss:weight") and its backward (torch:
autograd from the scalar, or from ones for reduction="none"). Every (library, module) runs in its own process,
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

# constructor arguments where the defaults say little; everything else default. A
# name "Class:label" is a second configuration of Class.
KWARGS = {"Softplus": {"beta": 2.0}, "PReLU": {"num_parameters": -1},
          "Threshold": {"threshold": 0.1, "value": 0.0},
          "CrossEntropyLoss:weight": {"weight": "classes", "label_smoothing": 0.1},
          "CrossEntropyLoss:none": {"reduction": "none"},
          "BCEWithLogitsLoss:pos_weight": {"pos_weight": "classes"},
          "MarginRankingLoss": {"margin": 0.1}, "CosineEmbeddingLoss": {"margin": 0.1}}
ACTIVATIONS = ("ReLU,GELU,SiLU,ELU,SELU,CELU,Softplus,Mish,Hardswish,Hardsigmoid,ReLU6,Hardtanh,"
               "PReLU,GLU,Softsign,LogSigmoid,Tanhshrink,Threshold,Softmin,Softshrink,Hardshrink")
LOSSES = ("CrossEntropyLoss,CrossEntropyLoss:weight,CrossEntropyLoss:none,NLLLoss,BCELoss,"
          "BCEWithLogitsLoss,BCEWithLogitsLoss:pos_weight,MSELoss,L1Loss,HuberLoss,SmoothL1Loss,"
          "KLDivLoss,SoftMarginLoss,MultiLabelSoftMarginLoss,PoissonNLLLoss,GaussianNLLLoss,"
          "MarginRankingLoss,CosineEmbeddingLoss")
# the forward arguments that are differentiated (the rest are targets)
GRADED = {"MarginRankingLoss": (0, 1), "CosineEmbeddingLoss": (0, 1), "GaussianNLLLoss": (0, 2)}


def inputs(cls: str, shape, rng):
    """(forward arguments, grad_out shape or None) for one module; the first
    argument is float32 of `shape`."""
    x = rng.standard_normal(shape).astype(np.float32)
    if not cls.endswith("Loss"):
        out = list(shape)
        if cls == "GLU":
            out[-1] //= 2
        return [x], tuple(out)
    like = lambda: rng.random(shape).astype(np.float32)  # noqa: E731
    signs = lambda *s: np.sign(rng.standard_normal(s)).astype(np.float32)  # noqa: E731
    if cls in ("CrossEntropyLoss", "NLLLoss"):
        return [x, rng.integers(0, shape[-1], shape[:-1])], None
    if cls == "BCELoss":
        return [1 / (1 + np.exp(-x)), like()], None
    if cls in ("BCEWithLogitsLoss", "MultiLabelSoftMarginLoss", "KLDivLoss", "PoissonNLLLoss"):
        return [x, like()], None
    if cls == "SoftMarginLoss":
        return [x, signs(*shape)], None
    if cls == "GaussianNLLLoss":
        return [x, rng.standard_normal(shape).astype(np.float32), like() + 0.1], None
    if cls == "MarginRankingLoss":
        return [x, rng.standard_normal(shape).astype(np.float32), signs(*shape)], None
    if cls == "CosineEmbeddingLoss":
        return [x, rng.standard_normal(shape).astype(np.float32), signs(shape[0])], None
    return [x, rng.standard_normal(shape).astype(np.float32)], None


def worker(lib: str, name: str, shape, threads: int) -> float:
    rng = np.random.default_rng(0)
    cls = name.split(":")[0]
    args, grad_shape = inputs(cls, shape, rng)
    g = rng.standard_normal(grad_shape).astype(np.float32) if grad_shape else None
    kwargs = dict(KWARGS.get(name, {}))
    if kwargs.get("num_parameters") == -1:
        kwargs["num_parameters"] = shape[1]
    for key in ("weight", "pos_weight"):
        if kwargs.get(key) == "classes":
            kwargs[key] = rng.random(shape[-1]).astype(np.float32) + 0.5
    reduced = kwargs.get("reduction", "mean") != "none"
    if lib == "fastnn":
        from fastnn import nn
        m = getattr(nn, cls)(**kwargs)
        grad_out = g if g is not None else 1.0 if reduced else None

        def call():
            out = m(*args)
            m.backward(grad_out if grad_out is not None else np.ones_like(out))
    else:
        import torch
        torch.set_num_threads(threads)
        kwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                  for k, v in kwargs.items()}
        m = getattr(torch.nn, cls)(**kwargs)
        graded = GRADED.get(cls, (0,))
        tensors = [torch.from_numpy(a) for a in args]
        for i in graded:
            tensors[i].requires_grad_()
        gt = None if g is None else torch.from_numpy(g)

        def call():
            for i in graded:
                tensors[i].grad = None
            out = m(*tensors)
            out.backward(gt if gt is not None or reduced else torch.ones_like(out))
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
