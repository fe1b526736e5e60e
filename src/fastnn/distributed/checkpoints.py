"""Checkpoints of a data-parallel run: written by rank 0, resumed on any number
of ranks.

    fastnn.distributed.save_checkpoint("ckpt.safetensors", model, opt, epoch=epoch)
    info = fastnn.distributed.load_checkpoint("ckpt.safetensors", model, opt)

Every rank calls both. save_checkpoint writes on rank 0 only, atomically (a
temporary file, fsynced, renamed over the path: a job aborted mid-write leaves
the previous checkpoint whole), and returns on every rank once the file is
complete; an error writing it (a full disk) is raised on every rank. load_checkpoint
reads on rank 0 and broadcasts the model, optimizer and scheduler state and
the returned {"epoch", **extra} to the others, so the file needs to exist on
rank 0's host only; the saved random stream (rank 0's) is restored on rank 0,
the other ranks keep their own. The optimizer state is whole on every rank
(not sharded), so a checkpoint from N ranks resumes on M.
"""
from __future__ import annotations

import builtins

from fastnn.distributed import world
from fastnn.distributed.broadcast import broadcast_optimizer_state, broadcast_parameters
from fastnn.serialization import checkpoints

__all__ = ["save_checkpoint", "load_checkpoint"]


def _on_root(action):
    """action() on rank 0; an exception there is raised on every rank (the original
    on rank 0; elsewhere the same built-in type, or RuntimeError, with its message).
    Returns action's result on rank 0, None elsewhere."""
    result, failure = None, None
    if world.get_rank() == 0:
        try:
            result = action()
        except Exception as err:  # re-raised below, on every rank
            failure = err
    sent = world.bcast_object(None if failure is None else
                              (type(failure).__name__, str(failure)))
    if failure is not None:
        raise failure
    if sent is not None:
        name, message = sent
        kind = getattr(builtins, name, None)
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            kind, message = RuntimeError, f"{name} on rank 0: {message}"
        raise kind(message)
    return result


def save_checkpoint(path, model, optimizer=None, scheduler=None, epoch=None, **extra) -> None:
    """fastnn.save_checkpoint on rank 0 (see the module docstring)."""
    _on_root(lambda: checkpoints.save_checkpoint(path, model, optimizer, scheduler, epoch,
                                                 **extra))


def load_checkpoint(path, model, optimizer=None, scheduler=None) -> dict:
    """fastnn.load_checkpoint on rank 0, then its result on every rank."""
    info = _on_root(lambda: checkpoints.load_checkpoint(path, model, optimizer, scheduler))
    if world.get_world_size() == 1:
        return info
    broadcast_parameters(model)
    if optimizer is not None:
        broadcast_optimizer_state(optimizer)
    if scheduler is not None:
        state = world.bcast_object(scheduler.state_dict() if world.get_rank() == 0 else None)
        scheduler.load_state_dict(state)
    return world.bcast_object(info)
