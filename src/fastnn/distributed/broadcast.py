"""Start every rank from the same state: root's parameters, buffers and
optimizer state copied to all the others.

    fastnn.distributed.broadcast_parameters(model, root=0)
    fastnn.distributed.broadcast_optimizer_state(optimizer, root=0)

Call both on every rank before training, even with equal seeds (Horovod's
recipe; torch's DistributedDataParallel does the first in its constructor).
fit() does it itself when it runs under MPI.
"""
from __future__ import annotations

import numpy as np

from fastnn.distributed.world import bcast_, bcast_object, check_root, get_rank, get_world_size
from fastnn.nn.module import Module
from fastnn.nn.parameter import Parameter
from fastnn.optim import Optimizer

__all__ = ["broadcast_parameters", "broadcast_optimizer_state"]


def broadcast_parameters(model, root: int = 0) -> None:
    """Overwrite model's parameters and buffers (BatchNorm's running statistics)
    with root's, in place: one call for the parameters (the model's flat buffer),
    one per buffer. `model` is a Module, or a dict of arrays such as a
    state_dict() whose arrays are the ones to overwrite."""
    root = check_root(root)
    if isinstance(model, Module):
        flat = model.flat_buffer().data
        arrays = [buf for _, buf in model.named_buffers()]
    elif isinstance(model, dict):
        flat = None
        arrays = [v.data if isinstance(v, Parameter) else v for v in model.values()]
    else:
        raise TypeError(f"broadcast_parameters takes a fastnn.nn.Module or a dict of arrays, "
                        f"got {type(model).__name__}")
    for arr in arrays:
        if not isinstance(arr, np.ndarray) or not arr.flags.c_contiguous:
            raise ValueError("broadcast_parameters: every array must be a C-contiguous NumPy "
                             "array (it is overwritten in place)")
    if get_world_size() == 1:
        return
    if flat is not None:
        bcast_(flat, root)
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
