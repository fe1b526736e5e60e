"""Data-parallel training over MPI: the same script on every rank, each rank a
share of every batch, gradients averaged before each step.

    # mpirun -np 2 --bind-to none python -m mpi4py train.py
    import fastnn, fastnn.distributed as dist
    dist.init()                                   # mpi4py's COMM_WORLD
    model.fit(X, y, epochs=5, batch_size=64)      # per-rank batches; logs agree
    # or a loop of your own:
    sampler = dist.DistributedSampler(len(X), shuffle=True, seed=0)
    dist.broadcast_parameters(model); opt = dist.DistributedOptimizer(opt)
    dist.broadcast_optimizer_state(opt)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for xb, yb in fastnn.data.DataLoader(X, y, batch_size=64, sampler=sampler):
            opt.zero_grad(); loss_fn(model(xb), yb)
            model.backward(loss_fn.backward(), input_grad=False); opt.step()
        dist.save_checkpoint("ckpt.safetensors", model, opt, epoch=epoch)  # rank 0 writes

world: init, ranks, barrier and the collectives (mpi4py behind them); sampler:
DistributedSampler; broadcast: broadcast_parameters, broadcast_buffers,
broadcast_optimizer_state;
optimizer: DistributedOptimizer; checkpoints: save_checkpoint / load_checkpoint
by rank 0; replicas: what fit() does on several ranks. Without init(), or
without mpi4py, everything here works in one process as a world of one.
"""
from fastnn.distributed.broadcast import (broadcast_buffers, broadcast_optimizer_state,
                                          broadcast_parameters)
from fastnn.distributed.checkpoints import load_checkpoint, save_checkpoint
from fastnn.distributed.optimizer import DistributedOptimizer
from fastnn.distributed.sampler import DistributedSampler
from fastnn.distributed.world import (barrier, get_local_rank, get_local_world_size, get_rank,
                                      get_world_size, init, is_initialized, sum_over_ranks)

__all__ = ["init", "is_initialized", "get_rank", "get_world_size", "get_local_rank",
           "get_local_world_size", "barrier", "sum_over_ranks", "broadcast_parameters",
           "broadcast_buffers", "broadcast_optimizer_state", "DistributedOptimizer", "DistributedSampler",
           "save_checkpoint", "load_checkpoint"]
