"""The thread pool under contention: 1 vs 2 threads, on a quiet machine and with
a busy-loop process pinned to one core, for fastnn, NumPy and PyTorch.

    python benchmarks/runtime.py [--rounds 3] [--seconds 0.6] [--libs fastnn,numpy,torch]
                                 [--compare PYTHON] [--json PATH]

Cases: a tiny sigmoid (64 floats: the per-call cost), a 1M-float sigmoid, a
256x256 matmul and one training step of a 784-256-128-10 MLP at batch 64 with
Adam (NumPy: fastnn.baselines.numpy_mlp, the same model by hand). Every
(library, thread count) runs in its own child process, all cases in one child,
the children alternating in order over `rounds` rounds; each child reports the
mean, median and 90th percentile of its per-call times. The hog is
`while True: pass` pinned to the last CPU this process may use; children are
not pinned. `--compare PYTHON` adds the fastnn of another interpreter (e.g. a
venv with an older build) as library "fastnn@PYTHON". Results go to stdout as
Markdown tables (benchmarks/RESULTS.md keeps them).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CASES = ("sigmoid_64", "sigmoid_1M", "matmul_256", "mlp_adam_64")


# ---- child: time the cases for one library and thread count ------------------------------

def _fastnn_cases(threads):
    import numpy as np
    import fastnn
    from fastnn import nn, ops, optim
    fastnn.set_num_threads(threads)
    rng = np.random.default_rng(0)
    tiny, big = rng.standard_normal(64, np.float32), rng.standard_normal(1 << 20, np.float32)
    a, b = rng.standard_normal((256, 256), np.float32), rng.standard_normal((256, 256), np.float32)
    X, y = rng.standard_normal((64, 784), np.float32), rng.integers(0, 10, 64)
    model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                          nn.Linear(128, 10))
    opt, loss_fn = optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(model(X), y)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
    return {"sigmoid_64": lambda: ops.sigmoid(tiny), "sigmoid_1M": lambda: ops.sigmoid(big),
            "matmul_256": lambda: ops.matmul(a, b), "mlp_adam_64": step}


def _numpy_cases(threads):
    import numpy as np
    from fastnn.baselines.numpy_mlp import NumpyMLP
    rng = np.random.default_rng(0)
    tiny, big = rng.standard_normal(64, np.float32), rng.standard_normal(1 << 20, np.float32)
    a, b = rng.standard_normal((256, 256), np.float32), rng.standard_normal((256, 256), np.float32)
    X, y = rng.standard_normal((64, 784), np.float32), rng.integers(0, 10, 64)
    mlp = NumpyMLP([784, 256, 128, 10], optimizer="adam", lr=1e-3, seed=0)

    def sigmoid(x):
        return 1.0 / (1.0 + np.exp(-x))
    return {"sigmoid_64": lambda: sigmoid(tiny), "sigmoid_1M": lambda: sigmoid(big),
            "matmul_256": lambda: a @ b, "mlp_adam_64": lambda: mlp.train_step(X, y)}


def _torch_cases(threads):
    import torch
    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    tiny, big = torch.randn(64, generator=g), torch.randn(1 << 20, generator=g)
    a, b = torch.randn(256, 256, generator=g), torch.randn(256, 256, generator=g)
    X, y = torch.randn(64, 784, generator=g), torch.randint(0, 10, (64,), generator=g)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(),
                                torch.nn.Linear(256, 128), torch.nn.ReLU(),
                                torch.nn.Linear(128, 10))
    opt, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss_fn(model(X), y).backward()
        opt.step()
    with torch.no_grad():
        cases = {"sigmoid_64": lambda: torch.sigmoid(tiny), "sigmoid_1M": lambda: torch.sigmoid(big),
                 "matmul_256": lambda: torch.mm(a, b)}
    cases["mlp_adam_64"] = step
    return cases


def _time(fn, seconds):
    clock = time.perf_counter
    end = clock() + seconds / 4
    while clock() < end:
        fn()
    times, end = [], clock() + seconds
    while len(times) < 20 or clock() < end:
        t0 = clock()
        fn()
        times.append(clock() - t0)
    times.sort()
    return {"mean": statistics.fmean(times), "median": statistics.median(times),
            "p90": times[int(0.9 * (len(times) - 1))], "calls": len(times)}


def child(lib, threads, seconds):
    builders = {"fastnn": _fastnn_cases, "numpy": _numpy_cases, "torch": _torch_cases}
    cases = builders[lib](threads)
    import gc
    gc.disable()
    print(json.dumps({name: _time(cases[name], seconds) for name in CASES}))


# ---- parent: the hog, the children, the tables ---------------------------------------------

def start_hog():
    cpu = sorted(os.sched_getaffinity(0))[-1]
    return subprocess.Popen([sys.executable, "-c", "while True: pass"],
                            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}))


def run_child(python, lib, threads, seconds):
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads), FASTNN_NUM_THREADS=str(threads))
    proc = subprocess.run([python, os.path.abspath(__file__), "--child", lib, str(threads),
                           str(seconds)], capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"{lib} ({python}) with {threads} threads failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pressure():
    try:
        with open("/proc/pressure/cpu") as f:
            return f.readline().strip()
    except OSError:
        return "n/a"


def measure(runs, rounds, seconds, hog):
    """{(label, threads): {case: {stat: median over rounds}}} for one condition."""
    hog_proc = start_hog() if hog else None
    try:
        time.sleep(0.5 if hog else 0)
        got = {key: [] for key in runs}
        keys = list(runs)
        for r in range(rounds):
            for key in keys if r % 2 == 0 else keys[::-1]:
                python, lib = runs[key]
                got[key].append(run_child(python, lib, key[1], seconds))
    finally:
        if hog_proc is not None:
            hog_proc.kill()
            hog_proc.wait()
    return {key: {case: {stat: statistics.median(res[case][stat] for res in results)
                         for stat in ("mean", "median", "p90")} for case in CASES}
            for key, results in got.items()}


def fmt(seconds):
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.3f} ms"


def table(quiet, loaded, labels, stat):
    lines = [f"| library | case | quiet 1 thr | quiet 2 thr | busy 1 thr | busy 2 thr "
             f"| busy 2 thr / busy 1 thr |", "|---|---|---|---|---|---|---|"]
    for label in labels:
        for case in CASES:
            q1, q2 = quiet[(label, 1)][case][stat], quiet[(label, 2)][case][stat]
            b1, b2 = loaded[(label, 1)][case][stat], loaded[(label, 2)][case][stat]
            lines.append(f"| {label} | {case} | {fmt(q1)} | {fmt(q2)} | {fmt(b1)} | {fmt(b2)} "
                         f"| {b2 / b1:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", nargs=3, metavar=("LIB", "THREADS", "SECONDS"), help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=0.6, help="timed seconds per case and child")
    p.add_argument("--libs", default="fastnn,numpy,torch")
    p.add_argument("--compare", metavar="PYTHON", help="also time the fastnn of this interpreter")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    if args.child:
        lib, threads, seconds = args.child
        return child(lib, int(threads), float(seconds))
    libs = [lib for lib in args.libs.split(",") if lib]
    if "torch" in libs:
        try:
            import torch  # noqa: F401
        except ImportError:
            libs.remove("torch")
    runs = {(lib, t): (sys.executable, lib) for lib in libs for t in (1, 2)}
    labels = list(libs)
    if args.compare:
        label = f"fastnn@{args.compare}"
        labels.insert(1, label)
        runs.update({(label, t): (args.compare, "fastnn") for t in (1, 2)})
    print(f"CPU pressure before: {pressure()}; CPUs: {sorted(os.sched_getaffinity(0))}; "
          f"rounds {args.rounds}, {args.seconds} s per case", flush=True)
    quiet = measure(runs, args.rounds, args.seconds, hog=False)
    loaded = measure(runs, args.rounds, args.seconds, hog=True)
    print(f"CPU pressure after: {pressure()}\n")
    for stat in ("mean", "median", "p90"):
        print(f"### {stat} time per call (median over rounds)\n")
        print(table(quiet, loaded, labels, stat) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"quiet": {f"{k[0]}/{k[1]}": v for k, v in quiet.items()},
                       "busy": {f"{k[0]}/{k[1]}": v for k, v in loaded.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
