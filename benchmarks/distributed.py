"""Data-parallel training on one machine: 2 MPI ranks x 1 thread against 1
process x 2 threads (and x 1), with the same global batch; and the Allreduce
time per step against model size.

    python benchmarks/distributed.py [--rounds 3] [--steps 200] [--json PATH]

Training cases (per-step wall time of zero_grad, forward, loss, backward, the
gradient average and the Adam step, after a warm-up): "mlp" 784-256-128-10
(ReLU; 235k parameters) at a global batch of 128, "mlp_large" 784-1024-1024-10
(1.8M) at 128, "cnn" (the demo CNN, 20k parameters) on 28x28 images at 64. The
configurations, each in its own process (mpirun for the ranks) and alternating
in that order over `rounds` rounds: 1 process x 1 thread, 1 x 2 threads,
2 ranks x 1 thread (each half the batch), the same with overlap=True. Each
reports the median step and, for the ranks, the median time spent averaging
gradients (synchronize: the Allreduce, or with overlap what is left to wait for).

Allreduce case: 2 ranks, in-place float32 Allreduce of 1k .. 16M floats, the
median of 50 calls (10 for the largest), with the bytes a ring Allreduce sends
per rank, 2 (N - 1) / N x 4 bytes x floats.

Open MPI runs with --bind-to none (its default binds each rank to one core)
and OMPI_MCA_mpi_yield_when_idle=1; each rank uses FASTNN_NUM_THREADS=1.
Results go to stdout as Markdown tables (benchmarks/RESULTS.md keeps them).
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

MODELS = {"mlp": 128, "mlp_large": 128, "cnn": 64}   # model -> global batch
CONFIGS = (("1x1", 1, 1, False), ("1x2", 1, 2, False), ("2x1", 2, 1, False),
           ("2x1 overlap", 2, 1, True))               # name, ranks, threads, overlap
SIZES = (1 << 10, 1 << 14, 1 << 17, 1 << 20, 1 << 22, 1 << 24)


def build(name):
    from fastnn import nn
    if name == "mlp":
        return nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                             nn.Linear(128, 10)), (784,)
    if name == "mlp_large":
        return nn.Sequential(nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(),
                             nn.Linear(1024, 10)), (784,)
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 7 * 7, 10)), (1, 28, 28)


# ---- worker: one configuration (under mpirun when ranks > 1) ----------------------------

def worker_train(name: str, steps: int, overlap: bool) -> None:
    import fastnn
    import fastnn.distributed as dist
    from fastnn import nn, optim
    dist.init()
    rank, size = dist.get_rank(), dist.get_world_size()
    fastnn.manual_seed(0)
    model, shape = build(name)
    batch = MODELS[name] // size
    rng = np.random.default_rng(rank)
    pool = [(rng.standard_normal((batch,) + shape).astype(np.float32),
             rng.integers(0, 10, batch)) for _ in range(8)]
    opt = optim.Adam(model.parameters(), lr=1e-3)
    if size > 1:
        dist.broadcast_parameters(model)
        opt = dist.DistributedOptimizer(opt, overlap=overlap, model=model if overlap else None)
    loss_fn = nn.CrossEntropyLoss()
    step_times, sync_times = [], []
    for i in range(steps + 20):
        xb, yb = pool[i % len(pool)]
        t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(xb), yb)
        model.backward(loss_fn.backward(), input_grad=False)
        t1 = time.perf_counter()
        if size > 1:
            opt.synchronize()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i >= 20:
            step_times.append(t3 - t0)
            sync_times.append(t2 - t1)
    if rank == 0:
        print(json.dumps({"step_ms": 1e3 * statistics.median(step_times),
                          "sync_ms": 1e3 * statistics.median(sync_times),
                          "params": model.num_parameters(), "threads": fastnn.get_num_threads(),
                          "ranks": size}))


def worker_allreduce() -> None:
    import fastnn.distributed as dist
    from fastnn.distributed import world
    dist.init()
    out = {}
    for n in SIZES:
        buf = np.ones(n, np.float32)
        calls = 10 if n >= 1 << 22 else 50
        times = []
        for i in range(calls + 3):
            dist.barrier()
            t0 = time.perf_counter()
            world.allreduce_(buf)
            if i >= 3:
                times.append(time.perf_counter() - t0)
        out[n] = 1e3 * statistics.median(times)
    if dist.get_rank() == 0:
        print(json.dumps(out))


# ---- driver ---------------------------------------------------------------------------

def launch(ranks: int, threads: int, args) -> dict:
    env = dict(os.environ, FASTNN_NUM_THREADS=str(threads), OMP_NUM_THREADS="1",
               OMPI_MCA_mpi_yield_when_idle="1")
    cmd = [sys.executable, __file__, "--worker", *args]
    if ranks > 1:
        mpirun = shutil.which("mpirun")
        if mpirun is None:
            raise SystemExit("needs mpirun: apt-get install openmpi-bin libopenmpi-dev")
        cmd = [mpirun, "-np", str(ranks), "--bind-to", "none"] + \
            (["--allow-run-as-root"] if os.geteuid() == 0 else []) + cmd
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        if args.worker[0] == "allreduce":
            worker_allreduce()
        else:
            worker_train(args.worker[0], int(args.worker[1]), args.worker[2] == "overlap")
        return
    with open("/proc/pressure/cpu") as f:
        print("cpu pressure before:", f.readline().strip())
    results = {}
    for r in range(args.rounds):
        for name in args.models.split(","):
            for config, ranks, threads, overlap in CONFIGS:
                res = launch(ranks, threads, [name, str(args.steps),
                                              "overlap" if overlap else "plain"])
                results.setdefault(name, {}).setdefault(config, []).append(res)
        results.setdefault("allreduce", []).append(launch(2, 1, ["allreduce"]))
    print(f"\n{args.rounds} rounds, median of the per-round medians; global batch per model: "
          f"{MODELS}\n")
    print("| model | params | 1x1 step ms | 1x2 step ms | 2x1 step ms (of it averaging) "
          "| 2x1 overlap ms (waiting) | 1x2 / 2x1 | 1x1 / 2x1 |")
    print("|---|---|---|---|---|---|---|---|")
    med = lambda runs, key: statistics.median(r[key] for r in runs)
    for name in args.models.split(","):
        c = results[name]
        s = {k: med(v, "step_ms") for k, v in c.items()}
        sync = {k: med(v, "sync_ms") for k, v in c.items()}
        print(f"| {name} | {c['1x1'][0]['params']:,} | {s['1x1']:.3f} | {s['1x2']:.3f} | "
              f"{s['2x1']:.3f} ({sync['2x1']:.3f}) | {s['2x1 overlap']:.3f} "
              f"({sync['2x1 overlap']:.3f}) | {s['1x2'] / s['2x1']:.2f} | "
              f"{s['1x1'] / s['2x1']:.2f} |")
    print("\n| floats | MB | Allreduce ms (2 ranks) | ring bytes sent per rank | GB/s (bus) |")
    print("|---|---|---|---|---|")
    for n in SIZES:
        ms = statistics.median(r[str(n)] for r in results["allreduce"])
        sent = 2 * (2 - 1) / 2 * 4 * n
        print(f"| {n:,} | {4 * n / 2**20:.3f} | {ms:.4f} | {sent / 2**20:.3f} MB | "
              f"{sent / (ms * 1e-3) / 1e9:.2f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
