"""Does fusing an activation into the Linear GEMM epilogue pay? fastnn only.

    python benchmarks/epilogue_fusion.py [--names SiLU,Mish,...] [--sizes 32x64,64x256,256x1024]
                                         [--rounds 5] [--threads 2]

For each activation and size (batch x width) it times one training step's
forward and backward of Sequential(Linear(d, d), Act(), Linear(d, d)) twice:
fused (the activation in the first Linear's epilogue, as Sequential plans it)
and unfused (the same activation through a subclass that overrides forward,
which Sequential does not fuse). The two run alternately in one process, each
the median of 30 steps per round, best of the rounds; prints a Markdown table
in microseconds with unfused / fused (above 1: fusing pays).
"""
import argparse
import statistics
import time

import numpy as np

import fastnn
from fastnn import nn

NAMES = "ReLU,GELU,SiLU,Mish,Hardswish,ELU,SELU"


def unfused(cls):
    """cls with forward overridden: Sequential runs it as its own step."""
    return type("Unfused" + cls.__name__, (cls,), {"forward": lambda self, x: cls.forward(self, x)})


def step_time(model, x, g) -> float:
    times = []
    for _ in range(30):
        start = time.perf_counter()
        model(x)
        model.backward(g, input_grad=False)
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", default=NAMES)
    parser.add_argument("--sizes", default="32x64,64x256,256x1024")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{args.threads} threads, median of 30 steps, best of {args.rounds} rounds (us)\n")
    print("| activation | batch x width | fused | unfused | unfused / fused |")
    print("|---|---|---:|---:|---:|")
    with fastnn.num_threads(args.threads):
        for size in args.sizes.split(","):
            batch, width = (int(v) for v in size.split("x"))
            x = rng.standard_normal((batch, width)).astype(np.float32)
            g = rng.standard_normal((batch, width)).astype(np.float32)
            for name in args.names.split(","):
                cls = getattr(nn, name)
                models = {kind: nn.Sequential(nn.Linear(width, width), act(), nn.Linear(width, width))
                          for kind, act in (("fused", cls), ("unfused", unfused(cls)))}
                assert models["fused"]._plan()[0][0][1] is not None, f"{name} is not fused"
                assert models["unfused"]._plan()[0][0][1] is None
                best = {kind: float("inf") for kind in models}
                for _ in range(args.rounds):
                    for kind, model in models.items():
                        step_time(model, x, g)  # warm-up
                        best[kind] = min(best[kind], step_time(model, x, g))
                print(f"| {name} | {batch} x {width} | {best['fused']:.0f} | {best['unfused']:.0f} "
                      f"| {best['unfused'] / best['fused']:.2f}x |")


if __name__ == "__main__":
    main()
