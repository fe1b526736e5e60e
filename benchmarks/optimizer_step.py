"""One optimizer step on a 1M-float parameter: fastnn against torch.optim.

    python benchmarks/optimizer_step.py [--names Adagrad,Adamax,RAdam,Adam] [--rounds 3]
                                        [--threads 2] [--n 1000000]

Every (library, optimizer) runs in its own process, alternating over the rounds:
one Parameter with a fixed gradient, 20 warm-up steps, then the median of 200
step() calls (lr 1e-3, other options at their defaults; torch on its default
foreach path with torch.set_num_threads). Prints a Markdown table in microseconds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np


def worker(lib: str, name: str, n: int, threads: int) -> float:
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(n).astype(np.float32)
    g0 = rng.standard_normal(n).astype(np.float32)
    if lib == "fastnn":
        from fastnn import nn, optim
        p = nn.Parameter(p0)
        p.grad[...] = g0
        opt = getattr(optim, name)([p], lr=1e-3)
    else:
        import torch
        torch.set_num_threads(threads)
        p = torch.nn.Parameter(torch.from_numpy(p0))
        p.grad = torch.from_numpy(g0)
        opt = getattr(torch.optim, name)([p], lr=1e-3)
    for _ in range(20):
        opt.step()
    times = []
    for _ in range(200):
        start = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", default="Adagrad,Adamax,RAdam,Adam")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker, args.n, args.threads)))
        return
    env = dict(os.environ, FASTNN_NUM_THREADS=str(args.threads))
    times = {}
    for _ in range(args.rounds):
        for name in args.names.split(","):
            for lib in ("fastnn", "torch"):
                out = subprocess.run([sys.executable, __file__, "--worker", lib, name,
                                      "--n", str(args.n), "--threads", str(args.threads)],
                                     env=env, capture_output=True, text=True, check=True)
                times.setdefault((name, lib), []).append(json.loads(out.stdout))
    print("| optimizer | fastnn step (us) | torch step (us) | torch / fastnn (medians) |")
    print("|---|---|---|---|")
    for name in args.names.split(","):
        ours, theirs = times[(name, "fastnn")], times[(name, "torch")]
        print(f"| {name} | {', '.join(f'{t:.0f}' for t in ours)} | "
              f"{', '.join(f'{t:.0f}' for t in theirs)} | "
              f"{statistics.median(theirs) / statistics.median(ours):.1f}x |")


if __name__ == "__main__":
    main()
