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
  against one process with the N-times batch agree to float tolerance in
  either mode: the batch sum inside each weight-gradient GEMM is split
  differently.)
- overlap=True (needs model=): gradients are cut into buckets of about
  bucket_cap_mb, in the reverse order of the model's parameters (the order the
  backward completes them); a bucket's non-blocking Allreduce starts as soon as
  the backwards of every module owning its parameters are done (both owners of a
  tied weight), buckets always in index order so that every rank issues the
  same sequence. The buckets are armed by this optimizer's zero_grad() until the
  step, so a backward at another time sends nothing (without zero_grad every
  bucket goes at the step); one backward per step (a module's second backward
  raises RuntimeError: accumulate with overlap=False). It pays only where MPI
  moves data while the CPU computes (Open MPI has no progress thread; see
  benchmarks/RESULTS.md), hence off by default.

Copies (copy.deepcopy, pickle) of a DistributedOptimizer are DistributedOptimizers
with the same options over the copied state.
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Dict, List, Optional

import numpy as np

from fastnn._args import check_bool, check_choice, check_real
from fastnn.distributed import world
from fastnn.nn.module import Module
from fastnn.optim import Optimizer

__all__ = ["DistributedOptimizer"]

OPS = ("average", "sum")


class _Averaging:
    """Mixed in front of the wrapped optimizer's class."""

    @property
    def _gradient_averager(self) -> "_GradientAverager":
        return _averagers[self]

    def synchronize(self) -> None:
        """Average (or sum) the gradients over ranks now, unless already done since
        the last step."""
        self._gradient_averager.synchronize()

    @contextlib.contextmanager
    def skip_synchronize(self):
        """Inside: step() does not average (Horovod's recipe after an explicit
        synchronize(); here step() knows it already)."""
        averager = self._gradient_averager
        was, averager.synchronized = averager.synchronized, True
        try:
            yield
        finally:
            averager.synchronized = was

    def zero_grad(self, set_to_none: bool = True) -> None:
        super().zero_grad(set_to_none)
        self._gradient_averager.arm()

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        self._gradient_averager.synchronize()
        super().step()
        self._gradient_averager.synchronized = False
        return loss

    def __reduce_ex__(self, protocol):
        # a copy or an unpickled one is the same DistributedOptimizer over copied state
        return _rebuild, (type(self).__bases__[1], self.__dict__,
                          self._gradient_averager.options)


def _rebuild(base: type, state: dict, options: dict):
    plain = object.__new__(base)
    plain.__dict__.update(state)
    return DistributedOptimizer(plain, **options)


_classes: Dict[type, type] = {}
# each DistributedOptimizer's averager: kept beside it, not in the __dict__ it shares with
# the optimizer it wraps (which stays a plain optimizer, picklable as before)
_averagers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _distributed_class(cls: type) -> type:
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
    op = check_choice(op, "op", OPS)
    deterministic, overlap = check_bool(deterministic, "deterministic"), \
        check_bool(overlap, "overlap")
    if overlap and deterministic:
        raise ValueError("overlap=True reduces buckets with Allreduce; deterministic=True "
                         "gathers instead: choose one")
    if model is not None and not isinstance(model, Module):
        raise TypeError(f"model must be a fastnn.nn.Module, got {type(model).__name__}")
    if overlap != (model is not None):
        raise ValueError("overlap=True needs model= (the Module whose backward fills the "
                         "gradients), and model= is only for overlap=True")
    bucket_mb = check_real(bucket_cap_mb, "bucket_cap_mb", 0.0, low_open=True)
    wrapped = object.__new__(_distributed_class(type(optimizer)))
    wrapped.__dict__ = optimizer.__dict__
    _averagers[wrapped] = _GradientAverager(wrapped, dict(
        op=op, deterministic=deterministic, overlap=overlap, model=model,
        bucket_cap_mb=bucket_mb))
    return wrapped


class _GradientAverager:
    def __init__(self, optimizer, options: dict):
        self.optimizer = optimizer
        self.options = options
        self.synchronized = False
        self.buckets: Optional[_Buckets] = None
        if options["overlap"]:
            self.buckets = self.new_buckets()

    def new_buckets(self) -> "_Buckets":
        return _Buckets(self.optimizer, self.options["model"],
                        int(self.options["bucket_cap_mb"] * 2**20))

    def gradients(self) -> List[np.ndarray]:
        opt = self.optimizer
        return [opt._buffer(i).grad for i in range(len(opt.param_groups))]

    def arm(self) -> None:
        """A step's backward comes: let the overlap's buckets go as they fill."""
        if self.buckets is not None and world.get_world_size() > 1:
            if self.buckets.stale():
                self.buckets = self.new_buckets()
            self.buckets.armed = True

    def synchronize(self) -> None:
        if self.synchronized:
            return
        n = world.get_world_size()
        grads = self.gradients()
        if n > 1:
            if self.options["deterministic"]:
                for grad in grads:
                    world.sum_in_rank_order(world.allgather(grad), out=grad)
            elif self.buckets is not None:
                if not self.buckets.armed and self.buckets.stale():
                    self.buckets = self.new_buckets()
                self.buckets.finish()
            else:
                for grad in grads:
                    world.allreduce_(grad)
            if self.options["op"] == "average":
                scale = np.float32(1.0 / n)
                for grad in grads:
                    np.multiply(grad, scale, out=grad)
        self.synchronized = True


class _Buckets:
    """Overlap: slices of the groups' gradient buffers, reduced as the modules
    owning their parameters finish their backward, in bucket-index order. Armed
    by the optimizer's zero_grad() until the next synchronize(): a backward at
    any other time (a saliency map after step, an abandoned optimizer's hooks)
    sends nothing."""

    def __init__(self, optimizer, model: Module, bucket_bytes: int):
        self.optimizer = optimizer
        self.params = [[id(p) for p in g["params"]] for g in optimizer.param_groups]
        self.grads = [optimizer._buffer(i).grad for i in range(len(optimizer.param_groups))]
        self.slices: List[np.ndarray] = []    # bucket k's view of a gradient buffer
        self.slice_group: List[int] = []      # the group whose buffer bucket k views
        self.members: List[int] = []          # parameters per bucket
        self.bucket_of: Dict[int, int] = {}   # id(param) -> bucket
        for i, (group, grad) in enumerate(zip(optimizer.param_groups, self.grads)):
            end, size, count = grad.size, 0, 0
            offsets = np.cumsum([0] + [p.size for p in group["params"]])
            for k in range(len(group["params"]) - 1, -1, -1):
                p = group["params"][k]
                self.bucket_of[id(p)] = len(self.slices)
                size += p.size * grad.itemsize
                count += 1
                if size >= bucket_bytes or k == 0:
                    self.slices.append(grad[offsets[k]:end])
                    self.slice_group.append(i)
                    self.members.append(count)
                    end, size, count = offsets[k], 0, 0
        self.owners: Dict[int, list] = {}      # id(module) -> its own parameters here
        self.owner_count: Dict[int, int] = {}  # id(param) -> modules owning it (ties: 2)
        for module in model.modules():
            own = [p for p in module._parameters.values()
                   if p is not None and id(p) in self.bucket_of]
            if own:
                self.owners[id(module)] = own
                for p in own:
                    self.owner_count[id(p)] = self.owner_count.get(id(p), 0) + 1
                _hook_backward(module, self)
        self.armed = False
        self.reset()

    def stale(self) -> bool:
        """Whether the groups or their gradient buffers changed since (a param group
        added, parameters moved to another buffer, a deep copy of the optimizer)."""
        opt = self.optimizer
        if len(opt.param_groups) != len(self.grads):
            return True
        for i, group in enumerate(opt.param_groups):
            if [id(p) for p in group["params"]] != self.params[i] \
                    or opt._buffer(i).grad is not self.grads[i]:
                return True
        return not all(np.may_share_memory(s, self.grads[g])
                       for s, g in zip(self.slices, self.slice_group))

    def reset(self) -> None:
        self.remaining = list(self.members)
        self.waiting = dict(self.owner_count)
        self.done = set()
        self.next = 0
        self.requests = []

    def before_backward(self, module: Module) -> None:
        if self.armed and id(module) in self.done:
            raise RuntimeError(
                f"{type(module).__name__}.backward ran again after its gradients were sent: "
                f"DistributedOptimizer(overlap=True) takes one backward per step (call "
                f"step() first, or accumulate gradients with overlap=False)")

    def module_done(self, module: Module) -> None:
        """module's backward for this step is complete: buckets whose every owner is
        done go, in index order."""
        if not self.armed:
            return
        self.done.add(id(module))
        for p in self.owners.get(id(module), ()):
            self.waiting[id(p)] -= 1
            if self.waiting[id(p)] == 0:
                self.remaining[self.bucket_of[id(p)]] -= 1
        while self.next < len(self.slices) and self.remaining[self.next] == 0:
            self.requests += world.iallreduce_(self.slices[self.next])
            self.next += 1
        world.test_all(self.requests)

    def finish(self) -> None:
        """Send what is left, wait for all of it, disarm."""
        while self.next < len(self.slices):
            self.requests += world.iallreduce_(self.slices[self.next])
            self.next += 1
        world.wait_all(self.requests)
        self.armed = False
        self.reset()


class _BackwardHook:
    """Stands for one module's backward: calls it, then tells the buckets (while they
    exist) when the module has no backward left this step. A copy of the module
    (deepcopy, pickle) gets its class's plain backward instead."""

    def __init__(self, module: Module, buckets: _Buckets):
        self.module, self.buckets = module, weakref.ref(buckets)
        self.backward = type(module).backward.__get__(module)

    def __call__(self, *grad_outputs, **kwargs):
        buckets = self.buckets()
        if buckets is None:
            return self.backward(*grad_outputs, **kwargs)
        buckets.before_backward(self.module)
        result = self.backward(*grad_outputs, **kwargs)
        if not self.module.has_pending_backward():
            buckets.module_done(self.module)
        return result

    def __deepcopy__(self, memo):
        twin = memo.get(id(self.module))
        return self if twin is None else _class_backward(twin)

    def __reduce__(self):
        return _class_backward, (self.module,)


def _class_backward(module: Module):
    return type(module).backward.__get__(module)


def _hook_backward(module: Module, buckets: _Buckets) -> None:
    module.__dict__["backward"] = _BackwardHook(module, buckets)
