"""Start every rank from the same state: root's parameters, buffers and
optimizer state copied to all the others.

    fastnn.distributed.broadcast_parameters(model, root=0)
    fastnn.distributed.broadcast_optimizer_state(optimizer, root=0)
    fastnn.distributed.broadcast_buffers(model)   # BatchNorm statistics, before eval

Call both on every rank before training, even with equal seeds (Horovod's
recipe; torch's DistributedDataParallel does the first in its constructor).
fit() does it itself when it runs under MPI.
"""
from __future__ import annotations

import numpy as np

from fastnn.distributed.world import (allgather_object, bcast_, bcast_object, check_root, get_rank,
                                      get_world_size)
from fastnn.nn.module import Module
from fastnn.nn.parameter import Parameter
from fastnn.optim import Optimizer

__all__ = ["broadcast_parameters", "broadcast_buffers", "broadcast_optimizer_state"]


def broadcast_parameters(model, root: int = 0) -> None:
    """Overwrite model's parameters and buffers (BatchNorm's running statistics)
    with root's, in place: one call for the parameters (the model's flat buffer),
    one per buffer. `model` is a Module, or a dict of arrays such as a
    state_dict() whose arrays are the ones to overwrite (sent in key order).
    ValueError on every rank when the ranks' models differ in size."""
    root = check_root(root)
    if isinstance(model, Module):
        flat = model.flat_buffer().data
        arrays = [flat] + [buf for _, buf in model.named_buffers()]
    elif isinstance(model, dict):
        arrays = [model[k].data if isinstance(model[k], Parameter) else model[k]
                  for k in sorted(model)]
    else:
        raise TypeError(f"broadcast_parameters takes a fastnn.nn.Module or a dict of arrays, "
                        f"got {type(model).__name__}")
    _broadcast_arrays(arrays, root, "broadcast_parameters")


def broadcast_buffers(model: Module, root: int = 0) -> None:
    """Overwrite model's buffers (BatchNorm's running statistics) with root's, as
    torch's DistributedDataParallel does (broadcast_buffers=True): each rank
    updates them from its own share of the data, so without this the ranks'
    models differ in eval mode. fit() does it before each validation and at the
    end; a loop of your own calls it before evaluating or saving."""
    root = check_root(root)
    if not isinstance(model, Module):
        raise TypeError(f"broadcast_buffers takes a fastnn.nn.Module, got "
                        f"{type(model).__name__}")
    _broadcast_arrays([buf for _, buf in model.named_buffers()], root, "broadcast_buffers")


def _broadcast_arrays(arrays: list, root: int, what: str) -> None:
    for arr in arrays:
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{what}: every array must be a NumPy array, got "
                            f"{type(arr).__name__}")
        if not arr.flags.c_contiguous:
            raise ValueError(f"{what}: every array must be C-contiguous (it is overwritten "
                             f"in place)")
    if get_world_size() == 1:
        return
    shapes = [(a.shape, a.dtype.str) for a in arrays]
    every = allgather_object(shapes)
    if any(other != every[root] for other in every):
        differ = [r for r, other in enumerate(every) if other != every[root]]
        raise ValueError(f"{what}: the arrays of rank(s) {differ} differ in number, shape "
                         f"or dtype from rank {root}'s: is the same model built everywhere?")
    for arr in arrays:
        bcast_(arr if arr.ndim else arr.reshape(1), root)


def broadcast_optimizer_state(optimizer, root: int = 0) -> None:
    """Give every rank root's optimizer state (step counts, moment estimates) and
    param-group options (lr, betas, ...), through state_dict / load_state_dict."""
    root = check_root(root)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"broadcast_optimizer_state takes a fastnn.optim optimizer, got "
                        f"{type(optimizer).__name__}")
    if get_world_size() == 1:
        return
    state = bcast_object(optimizer.state_dict() if get_rank() == root else None, root)
    if get_rank() != root:
        optimizer.load_state_dict(state)
