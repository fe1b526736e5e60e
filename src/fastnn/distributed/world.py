"""The process group: which process this is, how many there are, and the few
collectives the rest of fastnn.distributed is built on.

    fastnn.distributed.init()                  # mpi4py's COMM_WORLD, or init(comm)
    fastnn.distributed.get_rank(), get_world_size(), get_local_rank(), barrier()

The engine is MPI through mpi4py (an optional extra: pip install "fastnn[mpi]").
Until init() is called, and when mpi4py is not installed, the world is this one
process: rank 0 of 1, barrier() returns at once and every collective is the
identity, so a script written for mpirun runs unchanged on a laptop.

init() also
- installs a sys.excepthook (with several ranks, outside an interactive session)
  that prints the traceback of an uncaught exception and then aborts the whole
  job (MPI_Abort), so an exception on one rank never leaves the others waiting
  in a collective (`python -m mpi4py train.py` does the same on its own);
- sets fastnn's threads per rank to the CPUs this process may use divided by
  the ranks on its host that may use the same CPUs, unless FASTNN_NUM_THREADS is
  set or num_threads is given (two ranks of two threads on two cores would fight
  over them);
- checks that every rank runs the same fastnn version on the same kernel path
  (FASTNN_ISA): replicas stay bitwise identical only if every rank computes the
  same bits.

The collectives below take C-contiguous NumPy arrays (float32, float64, int64) and
are the interface another engine (torch.distributed's Gloo, say) would
implement; nothing else in fastnn talks to mpi4py.
"""
from __future__ import annotations

import os
import sys
from typing import Optional

import numpy as np

from fastnn._args import check_int
from fastnn._config import __version__, runtime_info, set_num_threads

__all__ = ["init", "is_initialized", "get_rank", "get_world_size", "get_local_rank",
           "get_local_world_size", "barrier", "sum_over_ranks"]

# environment variables that launchers set in every rank they start
_LAUNCHER_SIZES = ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE")


class _World:
    """The communicator and the facts init() established (None: one process)."""
    comm = None
    mpi = None           # the mpi4py.MPI module
    rank = 0
    size = 1
    local_rank = 0
    local_size = 1
    initialized = False


_world = _World()


def launcher_size() -> int:
    """How many processes a launcher (mpirun, srun) says this job has; 1 if none."""
    for name in _LAUNCHER_SIZES:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def init(comm=None, num_threads: Optional[int] = None) -> None:
    """Join the job's process group: mpi4py's MPI.COMM_WORLD, or `comm` (an
    mpi4py communicator). Calling it again is a no-op. Without mpi4py installed
    it makes a world of this one process, unless a launcher started several
    processes (then ImportError: they would each train alone). num_threads:
    fastnn threads per rank (default: see the module docstring)."""
    if _world.initialized:
        if comm is not None and comm is not _world.comm:
            raise RuntimeError("fastnn.distributed.init was already called with another "
                               "communicator")
        return
    if num_threads is not None:
        check_int(num_threads, "num_threads", 1, 1024)
    try:
        from mpi4py import MPI
    except (ImportError, OSError, RuntimeError) as err:  # no mpi4py, or no MPI library
        if comm is not None or launcher_size() > 1:
            raise ImportError(
                f"fastnn.distributed.init needs mpi4py to join the {launcher_size()} "
                f"processes this job was started with: pip install \"fastnn[mpi]\" (and an MPI "
                f"library, e.g. apt-get install openmpi-bin libopenmpi-dev); {err}") from None
        _world.initialized = True
        if num_threads is not None:
            set_num_threads(num_threads)
        return
    if comm is None:
        comm = MPI.COMM_WORLD
    elif not isinstance(comm, MPI.Comm) or comm == MPI.COMM_NULL:
        raise TypeError(f"comm must be an mpi4py communicator, got {type(comm).__name__}")
    local = comm.Split_type(MPI.COMM_TYPE_SHARED)
    _world.comm, _world.mpi = comm, MPI
    _world.rank, _world.size = comm.Get_rank(), comm.Get_size()
    _world.local_rank, _world.local_size = local.Get_rank(), local.Get_size()
    # ranks bound to disjoint CPUs (--bind-to socket) each use their own; ranks sharing
    # the same CPUs divide them
    cpus = os.sched_getaffinity(0)
    sharing = sum(1 for other in local.allgather(sorted(cpus)) if set(other) & cpus)
    local.Free()
    try:
        _check_same_build()
    except RuntimeError:
        _world.comm = _world.mpi = None
        _world.rank, _world.size, _world.local_rank, _world.local_size = 0, 1, 0, 1
        raise
    _world.initialized = True
    if _world.size > 1 and not (sys.flags.interactive or hasattr(sys, "ps1")):
        _install_abort_hook()
    if num_threads is not None:
        set_num_threads(num_threads)
    elif not os.environ.get("FASTNN_NUM_THREADS", "").strip():
        set_num_threads(max(1, len(cpus) // sharing))


def _install_abort_hook() -> None:
    previous = sys.excepthook
    if getattr(previous, "_fastnn_aborts", False):
        return

    def abort_on_uncaught(exc_type, exc, tb):
        previous(exc_type, exc, tb)
        sys.stderr.flush()
        abort(1)

    abort_on_uncaught._fastnn_aborts = True
    sys.excepthook = abort_on_uncaught


def _check_same_build() -> None:
    mine = (__version__, runtime_info()["isa"])
    every = allgather_object(mine)
    differ = sorted({f"{v} on {isa}" for v, isa in every})
    if len(differ) > 1:
        raise RuntimeError(f"the ranks run different fastnn builds or kernel paths "
                           f"({', '.join(differ)}): their parameters would drift apart; "
                           f"install the same version everywhere and set FASTNN_ISA to one "
                           f"path every host has")


def is_initialized() -> bool:
    """Whether init() has been called."""
    return _world.initialized


def get_rank() -> int:
    """This process's rank, 0 .. world size - 1 (0 before init())."""
    return _world.rank


def get_world_size() -> int:
    """How many processes train together (1 before init())."""
    return _world.size


def get_local_rank() -> int:
    """This process's rank among those on its host."""
    return _world.local_rank


def get_local_world_size() -> int:
    """How many of the processes run on this host."""
    return _world.local_size


def barrier() -> None:
    """Wait until every rank has called barrier()."""
    if _world.comm is not None:
        _world.comm.Barrier()


def abort(code: int = 1) -> None:
    """End every process of the job at once (MPI_Abort); exits in one process."""
    if _world.comm is not None:
        _world.mpi.COMM_WORLD.Abort(code)
    os._exit(code)


# ---- collectives (internal interface) ------------------------------------------------

def _mpi_buffer(buf: np.ndarray, name: str):
    if not isinstance(buf, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array, got {type(buf).__name__}")
    if not buf.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if buf.dtype == np.float32:
        return [buf, _world.mpi.FLOAT]
    if buf.dtype == np.float64:
        return [buf, _world.mpi.DOUBLE]
    if buf.dtype == np.int64:
        return [buf, _world.mpi.INT64_T]
    raise TypeError(f"{name} must be float32, float64 or int64, got {buf.dtype}")


# Open MPI 4.1's Allreduce of one long buffer slows down past a few MB (2 ranks on one
# host: 16M floats take 27 ms in one call, 8 ms as 2 MiB pieces; benchmarks/RESULTS.md),
# so allreduce_ sends consecutive pieces of at most this many bytes.
ALLREDUCE_PIECE_BYTES = 2 << 20


def _pieces(buf: np.ndarray) -> list:
    """buf's consecutive 1-D pieces of at most ALLREDUCE_PIECE_BYTES, as MPI buffers."""
    _mpi_buffer(buf, "buf")
    flat = buf.reshape(-1)
    step = max(1, ALLREDUCE_PIECE_BYTES // buf.itemsize)
    return [_mpi_buffer(flat[i:i + step], "buf") for i in range(0, flat.size, step)]


def allreduce_(buf: np.ndarray) -> np.ndarray:
    """buf := the element-wise sum of every rank's buf, in place (one Allreduce per
    piece, see ALLREDUCE_PIECE_BYTES)."""
    if _world.comm is not None and _world.size > 1:
        for piece in _pieces(buf):
            _world.comm.Allreduce(_world.mpi.IN_PLACE, piece, op=_world.mpi.SUM)
    return buf


def iallreduce_(buf: np.ndarray) -> list:
    """Start allreduce_(buf), in the same pieces; returns their requests for wait_all /
    test_all (none in one process, where there is nothing to do)."""
    if _world.comm is None or _world.size == 1:
        return []
    return [_world.comm.Iallreduce(_world.mpi.IN_PLACE, piece, op=_world.mpi.SUM)
            for piece in _pieces(buf)]


def wait_all(requests: list) -> None:
    """Block until every started request is done."""
    if requests:
        _world.mpi.Request.Waitall(requests)


def test_all(requests: list) -> bool:
    """Let MPI move started requests on (Open MPI progresses only inside calls)."""
    return _world.mpi.Request.Testall(requests) if requests else True


def allgather(buf: np.ndarray) -> np.ndarray:
    """Every rank's buf stacked in rank order: shape (world size, *buf.shape)."""
    out = np.empty((_world.size,) + buf.shape, dtype=buf.dtype)
    if _world.comm is None or _world.size == 1:
        out[0] = buf
        return out
    _world.comm.Allgather(_mpi_buffer(np.ascontiguousarray(buf), "buf"),
                          _mpi_buffer(out, "out"))
    return out


def bcast_(buf: np.ndarray, root: int = 0) -> np.ndarray:
    """buf := root's buf on every rank, in place."""
    if _world.comm is not None and _world.size > 1:
        _world.comm.Bcast(_mpi_buffer(buf, "buf"), root=root)
    return buf


def bcast_object(obj, root: int = 0):
    """root's Python object (pickled) on every rank."""
    if _world.comm is None or _world.size == 1:
        return obj
    return _world.comm.bcast(obj, root=root)


def allgather_object(obj) -> list:
    """Every rank's Python object, in rank order."""
    if _world.comm is None or _world.size == 1:
        return [obj]
    return _world.comm.allgather(obj)


def sum_over_ranks(values) -> np.ndarray:
    """Every rank's values (numbers, float64) summed in rank order, left to right:
    the same bits on every rank (for metrics; gradients go through
    DistributedOptimizer)."""
    return sum_in_rank_order(allgather(np.ascontiguousarray(values, dtype=np.float64)))


def sum_in_rank_order(stacked: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """out := stacked[0] + stacked[1] + ..., left to right in stacked's dtype (what
    deterministic mode does with gathered gradients, and fit with its sums)."""
    if out is None:
        out = np.empty_like(stacked[0])
    np.copyto(out, stacked[0])
    for part in stacked[1:]:
        np.add(out, part, out=out)
    return out


def check_root(root) -> int:
    """root as a rank of this world: TypeError for a non-int, ValueError out of range."""
    root = check_int(root, "root")
    if root >= _world.size:
        raise ValueError(f"root must be a rank in [0, {_world.size}), got {root}")
    return root
