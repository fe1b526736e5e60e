"""End-to-end training-step cases: one timed call is one full step of an MLP
(forward, loss, backward, optimizer step, zero_grad) on a fixed batch.

    mlp_sgd       784-256-128-10, ReLU, cross-entropy; SGD lr 0.01, momentum 0.9
    mlp_adam      the same network; Adam lr 1e-3 (betas 0.9, 0.999, eps 1e-8)
                  both at batch 32, 64, 256 and 1024
    overhead      8 x Linear(4, 4) with a ReLU between each pair, batch 1,
                  SGD lr 0.01, momentum 0.9: the computation is negligible, so
                  the step time is what the Python layers cost. Reported per
                  layer, a layer being one Linear and the ReLU after it
                  (Sequential fuses the two into one GEMM call): step time / 8.

fastnn  nn.Sequential(Linear, ReLU, ...), nn.CrossEntropyLoss, optim.SGD /
        optim.Adam: loss = loss_fn(model(x), y);
        model.backward(loss_fn.backward(), input_grad=False); opt.step();
        opt.zero_grad()
numpy   fastnn.baselines.numpy_mlp.NumpyMLP.train_step (hand-written backprop;
        gradients are overwritten, so it has no zero_grad)
torch   torch.nn.Sequential, F.cross_entropy, loss.backward(), torch.optim
        SGD / Adam with their defaults (foreach=None, which on CPU tensors
        is the per-parameter loop), opt.zero_grad(); the step runs under
        torch.enable_grad() (the bench runs torch under no_grad), x and y
        are tensors without requires_grad.

Inputs (seeded by case id, identical in every process): x ~ N(0, 1), labels
uniform in [0, classes), initial weights and biases uniform in
+-1/sqrt(fan_in) as nn.Linear's default. Every library starts from these
weights. The check: each builder takes two steps before handing over the
timed function, so the result compared with fastnn's (rtol 1e-4) is the
loss of the third step, which depends on the forward pass, the gradients
and two optimizer updates (momentum's first-step buffer, Adam's bias
corrections). The timed function returns the loss of its step as a float.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Optional

import numpy as np

from .core import Case, Op, normal, wanted_ops

MLP_SIZES = (784, 256, 128, 10)
MLP_BATCHES = (32, 64, 256, 1024)
OVERHEAD_LAYERS, OVERHEAD_WIDTH, OVERHEAD_BATCH = 8, 4, 1
OVERHEAD_SIZES = (OVERHEAD_WIDTH,) * (OVERHEAD_LAYERS + 1)
SGD = ("sgd", (("lr", 0.01), ("momentum", 0.9)))
ADAM = ("adam", (("lr", 1e-3),))
WARM_STEPS = 2    # steps each builder takes before the checked call
RTOL = 1e-4       # on the loss after WARM_STEPS updates


@dataclasses.dataclass(frozen=True)
class TrainingOp(Op):
    """an op whose timed call is a training step with `optimizer`"""
    optimizer: tuple = SGD           # (name, ((option, value), ...)); None: inference

    @property
    def optimizer_name(self) -> str:
        return self.optimizer[0]

    @property
    def options(self) -> dict:
        return dict(self.optimizer[1])

    def optimizer_text(self) -> str:
        opts = ", ".join(f"{k} {v:g}" for k, v in self.optimizer[1])
        return f"{self.optimizer_name} ({opts})"


@dataclasses.dataclass(frozen=True)
class MlpOp(TrainingOp):
    sizes: tuple = MLP_SIZES

    def describe(self) -> str:
        """The model, e.g. '784-256-128-10 sgd' or '8 x Linear(4,4) sgd'."""
        if self.name == "overhead":
            w = self.sizes[0]
            model = f"{len(self.sizes) - 1} x Linear({w},{w})"
        else:
            model = "-".join(map(str, self.sizes))
        return f"{model}, {self.optimizer_text()}"


@dataclasses.dataclass(frozen=True)
class MlpCase(Case):
    """A training-step case; shape is (batch, *layer sizes)."""
    suite = "mlp"

    @property
    def batch(self) -> int:
        return self.shape[0]

    @property
    def layers(self) -> int:
        """Linear layers (each with the ReLU after it, but the last)."""
        return len(self.shape) - 2

    @property
    def elements(self) -> int:
        """Samples per call: elements per second are samples per second."""
        return self.batch

    @property
    def shape_text(self) -> str:
        return self.op.describe()

    def traffic_bytes(self, inputs: dict) -> int:
        return 0


# --------------------------------------------------------------------------- #
# Inputs
# --------------------------------------------------------------------------- #

def _make_inputs(rng, shape):
    batch, sizes = shape[0], shape[1:]
    inputs = {"x": normal(rng, (batch, sizes[0])),
              "y": rng.integers(0, sizes[-1], size=batch, dtype=np.int64)}
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        bound = 1.0 / math.sqrt(fan_in)
        inputs[f"{2 * k}.weight"] = rng.uniform(-bound, bound, (fan_out, fan_in)).astype(np.float32)
        inputs[f"{2 * k}.bias"] = rng.uniform(-bound, bound, fan_out).astype(np.float32)
    return inputs


def initial_weights(inputs: dict) -> Dict[str, np.ndarray]:
    """The case's starting parameters under Sequential's keys ("0.weight", ...)."""
    return {k: v for k, v in inputs.items() if k.endswith((".weight", ".bias"))}


def mlp_layers(sizes, linear, relu) -> list:
    """[linear(sizes[0], sizes[1]), relu(), ..., linear(sizes[-2], sizes[-1])]:
    a ReLU after every layer but the last (the modules of any library)."""
    layers = []
    for k, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(linear(fan_in, fan_out))
        if k < len(sizes) - 2:
            layers.append(relu())
    return layers


def _warmed(step):
    for _ in range(WARM_STEPS):
        step()
    return step


# --------------------------------------------------------------------------- #
# One builder per library
# --------------------------------------------------------------------------- #

def _fastnn_builder(op: MlpOp):
    def build(inputs):
        from fastnn import nn
        model = nn.Sequential(*mlp_layers(op.sizes, nn.Linear, nn.ReLU))
        model.load_state_dict(initial_weights(inputs))
        return fastnn_training_step(model, op, inputs["x"], inputs["y"])
    return build


def fastnn_training_step(model, op, x, y):
    """one warmed-up training step of a fastnn model with op's optimizer (cross-entropy)"""
    from fastnn import nn, optim
    cls = {"sgd": optim.SGD, "adam": optim.Adam}[op.optimizer_name]
    opt = cls(model.parameters(), **op.options)
    loss_fn = nn.CrossEntropyLoss()

    def step():
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        opt.zero_grad()
        return loss

    return _warmed(step)


def _numpy_builder(op: MlpOp):
    def build(inputs):
        from fastnn.baselines.numpy_mlp import NumpyMLP
        net = NumpyMLP(op.sizes, optimizer=op.optimizer_name, **op.options)
        net.load_state_dict(initial_weights(inputs))
        x, y = inputs["x"], inputs["y"]
        return _warmed(lambda: net.train_step(x, y))
    return build


def _torch_builder(op: MlpOp):
    def build(inputs):
        import torch
        model = torch.nn.Sequential(*mlp_layers(op.sizes, torch.nn.Linear, torch.nn.ReLU))
        model.load_state_dict({k: torch.from_numpy(v.copy())
                               for k, v in initial_weights(inputs).items()})
        return torch_training_step(model, op, inputs["x"], inputs["y"])
    return build


def torch_training_step(model, op, x, y):
    """the same for a torch model; x, y NumPy (under enable_grad: the bench runs torch
    under no_grad)"""
    import torch
    import torch.nn.functional as F
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam}[op.optimizer_name]
    opt = cls(model.parameters(), **op.options)
    x, y = torch.from_numpy(x), torch.from_numpy(y)
    enable_grad = torch.enable_grad

    def step():
        with enable_grad():
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
        return loss.item()

    return _warmed(step)


def _mlp_op(name: str, sizes: tuple, optimizer: tuple, note: str = "") -> MlpOp:
    op = MlpOp(name, _make_inputs, {}, rtol=RTOL, atol=0.0, note=note, sizes=sizes,
               optimizer=optimizer)
    op.impls.update(fastnn=_fastnn_builder(op), numpy=_numpy_builder(op),
                    torch=_torch_builder(op))
    return op


# --------------------------------------------------------------------------- #
# The case table
# --------------------------------------------------------------------------- #

MLP_OPS = {op.name: op for op in (
    _mlp_op("mlp_sgd", MLP_SIZES, SGD),
    _mlp_op("mlp_adam", MLP_SIZES, ADAM),
    _mlp_op("overhead", OVERHEAD_SIZES, SGD,
            note=f"overhead: per-layer cost = step time / {OVERHEAD_LAYERS} "
                 f"(a layer = one Linear({OVERHEAD_WIDTH},{OVERHEAD_WIDTH}) and the ReLU after "
                 f"it, {2 * OVERHEAD_LAYERS - 1} modules in all), batch {OVERHEAD_BATCH}"),
)}
MLP_OP_NAMES = tuple(MLP_OPS)


def build_mlp_cases(ops=None, quick: bool = False) -> list:
    """The training-step case table (ids like "mlp_sgd/64", "overhead/1": the
    batch size); `ops` (names) keeps only those ops. `quick` is accepted for
    symmetry with the other suites and changes nothing (every case is short)."""
    wanted = wanted_ops(MLP_OP_NAMES, ops, "MLP")
    cases = []
    for name in MLP_OP_NAMES:
        if name not in wanted:
            continue
        op = MLP_OPS[name]
        batches = (OVERHEAD_BATCH,) if name == "overhead" else MLP_BATCHES
        cases += [MlpCase(op, str(b), (b,) + op.sizes) for b in batches]
    return cases


def overhead_per_layer(case: MlpCase, seconds: float) -> Optional[float]:
    """Seconds per layer per training step for the overhead case, else None."""
    if case.name != "overhead":
        return None
    return seconds / case.layers
