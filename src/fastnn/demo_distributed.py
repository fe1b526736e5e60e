"""``fastnn demo --distributed``: the MLP demo trained data-parallel over MPI.

    fastnn demo --distributed                 # starts `mpirun -np 2` on this host itself
    fastnn demo --distributed --ranks 3 --dataset mnist
    mpirun -np 4 --hostfile hosts --bind-to none python -m mpi4py -m fastnn.cli demo --distributed

Every rank runs the same fit(): it takes its share of each epoch
(DistributedSampler), gradients are averaged before each step, and rank 0
prints the epochs, the test accuracy and the throughput of the whole job; at the
end every rank's parameters are compared with rank 0's, bit for bit. Started
outside an MPI job it launches one (`mpirun --bind-to none`, oversubscribed when
there are more ranks than CPUs, `--allow-run-as-root` when run as root), so it
needs Open MPI (apt-get install openmpi-bin libopenmpi-dev) and mpi4py
(pip install "fastnn[mpi]").
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import numpy as np


def launch(ranks: int, argv) -> int:
    """Run this demo under mpirun with `ranks` processes; returns mpirun's exit code."""
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        raise SystemExit("fastnn demo --distributed needs MPI: apt-get install openmpi-bin "
                         "libopenmpi-dev, then pip install \"fastnn[mpi]\"")
    try:
        import mpi4py  # noqa: F401  (the ranks import it)
    except ImportError:
        raise SystemExit("fastnn demo --distributed needs mpi4py: pip install \"fastnn[mpi]\"")
    cmd = [mpirun, "-np", str(ranks), "--bind-to", "none"]
    env = dict(os.environ)
    if ranks > len(os.sched_getaffinity(0)):
        cmd.append("--oversubscribe")
        env.setdefault("OMPI_MCA_mpi_yield_when_idle", "1")  # waiting ranks give way
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += [sys.executable, "-m", "mpi4py", "-m", "fastnn.cli", *argv]
    print(" ".join(cmd), flush=True)
    return subprocess.call(cmd, env=env)


def run_distributed(dataset: str, epochs: int, batch_size: int, lr: float, seed: int = 0):
    """This rank's part of the job; returns {"accuracy", "seconds", "identical"}."""
    import fastnn
    import fastnn.distributed as dist
    from fastnn import nn, optim
    from fastnn.demo import load_dataset, split, standardize
    from fastnn.distributed import world

    dist.init()
    rank, size = dist.get_rank(), dist.get_world_size()
    X, y, description = load_dataset(dataset)
    Xtr, ytr, Xte, yte = split(X, y, seed=seed)
    Xtr, Xte = standardize(Xtr, Xte)
    fastnn.manual_seed(seed + rank)   # rank 0's weights are broadcast; dropout differs
    model = nn.Sequential(nn.Linear(X.shape[1], 256), nn.ReLU(), nn.Dropout(0.1),
                          nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    if rank == 0:
        print(f"dataset: {description}; {len(Xtr)} training and {len(Xte)} test samples")
        print(f"{size} ranks x {fastnn.get_num_threads()} thread(s), batch {batch_size} per "
              f"rank ({batch_size * size} per step), Adam lr {lr}, {epochs} epochs", flush=True)
    start = time.perf_counter()
    model.fit(Xtr, ytr, optimizer=optim.Adam(model.parameters(), lr=lr), epochs=epochs,
              batch_size=batch_size, validation_data=(Xte, yte), verbose=2)
    seconds = time.perf_counter() - start
    accuracy = model.evaluate(Xte, yte)["accuracy"]
    every = world.allgather(model.flat_buffer().data)
    identical = all(np.array_equal(every[0], every[r]) for r in range(size))
    if rank == 0:
        print(f"test accuracy {accuracy:.2%}; {epochs * len(Xtr) / seconds:,.0f} training "
              f"samples/s over {size} ranks; parameters identical on every rank: "
              f"{'yes' if identical else 'NO'}", flush=True)
    return {"accuracy": accuracy, "seconds": seconds, "identical": identical}
