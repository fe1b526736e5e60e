"""DistributedOptimizer: average the gradients over ranks before each step.

    opt = fastnn.distributed.DistributedOptimizer(optim.Adam(model.parameters()))
    opt.zero_grad(); loss_fn(model(xb), yb); model.backward(loss_fn.backward())
    opt.step()            # Allreduce of each group's flat gradient buffer, then Adam

The returned optimizer is the one given, seen through a subclass of its own
class (named like it, so checkpoints and schedulers see an Adam): the two share
their state, use the returned one. Each param group's gradients are one flat
buffer already (fastnn.optim), so averaging is one in-place Allreduce per group,
then a multiply by 1 / world size. synchronize() does it early (before gradient
clipping, so that clipping sees the averaged gradients, as in one process);
step() then does not do it again.

- deterministic=True: the gradients are gathered (Allgather) and every rank sums
  them in rank order, g0 + g1 + ... + g(N-1), then multiplies by 1/N: the same
  bits on every rank by construction, and the bits of one process that computes
  each rank's share into a zeroed buffer and sums them in that order. It costs
  N times the gradient memory and more traffic than an Allreduce. (N ranks
  against one process with the N-times batch agree to about 1e-6 relative in
  either mode: the batch sum inside each weight-gradient GEMM is split
  differently.)
- overlap=True (needs model=): gradients are cut into buckets of about
  bucket_cap_mb, in the reverse order of the model's parameters (the order the
  backward completes them); a bucket's non-blocking Allreduce starts as soon as
  the backwards of every module owning its parameters are done, buckets always
  in index order so that every rank issues the same sequence. It pays only where
  MPI moves data while the CPU computes (Open MPI has no progress thread; see
  benchmarks/RESULTS.md), hence off by default.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from fastnn._args import check_real
from fastnn.distributed import world
from fastnn.nn.module import Module
from fastnn.optim import Optimizer

__all__ = ["DistributedOptimizer"]

OPS = ("average", "sum")


class _Averaging:
    """Mixed in front of the wrapped optimizer's class."""

    def synchronize(self) -> None:
        """Average (or sum) the gradients over ranks now, unless already done since
        the last step."""
        self._gradient_averager.synchronize()

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        self._gradient_averager.synchronize()
        super().step()
        self._gradient_averager.start_step()
        return loss


_classes: Dict[type, type] = {}


def _distributed_class(cls: type) -> type:
    if issubclass(cls, _Averaging):
        return cls
    if cls not in _classes:
        _classes[cls] = type(cls.__name__, (_Averaging, cls),
                             {"__doc__": f"{cls.__name__} whose step averages the gradients "
                                         f"over ranks first (DistributedOptimizer).",
                              "__module__": cls.__module__, "__qualname__": cls.__qualname__})
    return _classes[cls]


def DistributedOptimizer(optimizer, op: str = "average", deterministic: bool = False,
                         overlap: bool = False, model: Optional[Module] = None,
                         bucket_cap_mb: float = 25.0):
    """`optimizer` whose step() first averages ("average") or sums ("sum") every
    gradient over the ranks; see the module docstring. In one process it steps
    exactly as the optimizer given."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"DistributedOptimizer wraps a fastnn.optim optimizer, got "
                        f"{type(optimizer).__name__}")
    if isinstance(optimizer, _Averaging):
        raise ValueError("this optimizer is a DistributedOptimizer already")
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    if overlap and deterministic:
        raise ValueError("overlap=True reduces buckets with Allreduce; deterministic=True "
                         "gathers instead: choose one")
    if overlap and not isinstance(model, Module):
        raise ValueError(f"overlap=True needs model= (the Module whose backward fills the "
                         f"gradients), got {type(model).__name__}")
    bucket_bytes = int(check_real(bucket_cap_mb, "bucket_cap_mb", 0.0, low_open=True) * 2**20)
    wrapped = object.__new__(_distributed_class(type(optimizer)))
    wrapped.__dict__ = optimizer.__dict__
    wrapped._gradient_averager = _GradientAverager(wrapped, op, bool(deterministic),
                                                   model if overlap else None, bucket_bytes)
    return wrapped


class _GradientAverager:
    def __init__(self, optimizer, op: str, deterministic: bool, model, bucket_bytes: int):
        self.optimizer = optimizer
        self.op = op
        self.deterministic = deterministic
        self.synchronized = False
        self.model, self.bucket_bytes = model, bucket_bytes
        self.buckets: Optional[_Buckets] = None
        if model is not None:
            self.buckets = _Buckets(optimizer, model, bucket_bytes)

    def gradients(self) -> List[np.ndarray]:
        opt = self.optimizer
        return [opt._buffer(i).grad for i in range(len(opt.param_groups))]

    def synchronize(self) -> None:
        if self.synchronized:
            return
        n = world.get_world_size()
        grads = self.gradients()
        if n > 1:
            if self.deterministic:
                for grad in grads:
                    world.sum_in_rank_order(world.allgather(grad), out=grad)
            elif self.buckets is not None and not self.buckets.stale():
                self.buckets.finish()
            else:
                if self.buckets is not None:  # the parameters moved to new buffers
                    self.buckets.finish()
                    self.buckets = _Buckets(self.optimizer, self.model, self.bucket_bytes)
                for grad in grads:
                    world.allreduce_(grad)
            if self.op == "average":
                scale = np.float32(1.0 / n)
                for grad in grads:
                    np.multiply(grad, scale, out=grad)
        self.synchronized = True

    def start_step(self) -> None:
        self.synchronized = False
        if self.buckets is not None:
            self.buckets.reset()


class _Buckets:
    """Overlap: slices of the groups' gradient buffers, reduced as their
    parameters' owners finish their backward, in bucket-index order."""

    def __init__(self, optimizer, model: Module, bucket_bytes: int):
        self.optimizer = optimizer
        self.slices: List[np.ndarray] = []    # bucket k's view of a gradient buffer
        self.members: List[int] = []          # parameters per bucket
        self.bucket_of: Dict[int, int] = {}   # id(param) -> bucket
        self.grads = [optimizer._buffer(i).grad for i in range(len(optimizer.param_groups))]
        for group, grad in zip(optimizer.param_groups, self.grads):
            end, size, count = grad.size, 0, 0
            offsets = np.cumsum([0] + [p.size for p in group["params"]])
            for k in range(len(group["params"]) - 1, -1, -1):
                p = group["params"][k]
                self.bucket_of[id(p)] = len(self.slices)
                size += p.size * 4
                count += 1
                if size >= bucket_bytes or k == 0:
                    self.slices.append(grad[offsets[k]:end])
                    self.members.append(count)
                    end, size, count = offsets[k], 0, 0
        self.owners = {}
        for module in model.modules():
            own = [p for p in module._parameters.values()
                   if p is not None and id(p) in self.bucket_of]
            if own:
                self.owners[id(module)] = own
                _hook_backward(module, self)
        self.reset()

    def stale(self) -> bool:
        """Whether the groups' gradients now live in other buffers than the slices'."""
        opt = self.optimizer
        return any(opt._buffer(i).grad is not grad for i, grad in enumerate(self.grads))

    def reset(self) -> None:
        self.remaining = list(self.members)
        self.marked = set()
        self.next = 0
        self.requests = []

    def module_done(self, module: Module) -> None:
        """module's backward for this step is complete: its buckets may go."""
        for p in self.owners.get(id(module), ()):
            if id(p) not in self.marked:
                self.marked.add(id(p))
                self.remaining[self.bucket_of[id(p)]] -= 1
        while self.next < len(self.slices) and self.remaining[self.next] == 0:
            self.requests += world.iallreduce_(self.slices[self.next])
            self.next += 1
        world.test_all(self.requests)

    def finish(self) -> None:
        while self.next < len(self.slices):
            self.requests += world.iallreduce_(self.slices[self.next])
            self.next += 1
        world.wait_all(self.requests)
        self.requests = []


class _BackwardHook:
    """Stands for one module's backward: calls it, then tells the buckets when the
    module has no backward left this step. A copy of the module (deepcopy) gets
    its class's plain backward instead."""

    def __init__(self, module: Module, buckets: _Buckets):
        self.module, self.buckets = module, buckets
        self.backward = type(module).backward.__get__(module)

    def __call__(self, *grad_outputs, **kwargs):
        result = self.backward(*grad_outputs, **kwargs)
        if not self.module.has_pending_backward():
            self.buckets.module_done(self.module)
        return result

    def __deepcopy__(self, memo):
        twin = memo.get(id(self.module))
        return self if twin is None else type(twin).backward.__get__(twin)


def _hook_backward(module: Module, buckets: _Buckets) -> None:
    module.__dict__["backward"] = _BackwardHook(module, buckets)

