"""End-to-end CNN cases: one timed call is one training step (forward, loss,
backward, optimizer step, zero_grad) on a fixed batch, or one batch-1 inference.

    baseline      Conv2d(3,16,3,p=1)-ReLU-MaxPool2d(2)-Conv2d(16,32,3,p=1)-ReLU-
                  MaxPool2d(2)-Flatten-Linear(2048,10); 3x32x32, batch 32, SGD lr 0.01
    lenet5        Conv2d(1,6,5,p=2)-ReLU-MaxPool2d(2)-Conv2d(6,16,5)-ReLU-MaxPool2d(2)-
                  Flatten-Linear(400,120)-ReLU-Linear(120,84)-ReLU-Linear(84,10);
                  1x28x28, batch 64, Adam lr 1e-3
    resnet        stem Conv2d(3,32,3,p=1,bias=False)-BatchNorm2d-ReLU, three basic
                  blocks (conv-BN-ReLU-conv-BN plus identity, then ReLU), 3x16x16,
                  AdaptiveAvgPool2d(1)-Flatten-Linear(32,10); batch 32, SGD lr 0.01
                  momentum 0.9
    lenet5_infer  lenet5's forward on one image, without gradients (eval mode)

fastnn  nn.Sequential of the layers (nn.Residual for the blocks), nn.CrossEntropyLoss,
        model.backward(loss_fn.backward(), input_grad=False), optim.SGD / Adam
numpy   the baseline only: fastnn.baselines.numpy_cnn.NumpyCNN.train_step (im2col)
torch   the same layers from torch.nn (a two-line Residual module), F.cross_entropy,
        loss.backward(), torch.optim; inference under torch.no_grad()

Inputs (seeded by case id, identical in every process): x ~ N(0, 1), uniform labels,
and the initial weights of a fastnn model built after fastnn.manual_seed(seed) (torch's
default initialisation); every library loads them. The check compares the loss of the
third step (two warm-up steps first), or the logits of the inference, with fastnn's.
"""
from __future__ import annotations

import dataclasses
from typing import Dict

import numpy as np

from .cases_mlp import MlpCase, TrainingOp, _warmed, fastnn_training_step, torch_training_step
from .core import normal, wanted_ops

SGD = ("sgd", (("lr", 0.01),))
SGD_MOMENTUM = ("sgd", (("lr", 0.01), ("momentum", 0.9)))
ADAM = ("adam", (("lr", 1e-3),))
RTOL = 1e-3  # the loss after two updates through several convolutions in float32


def cnn_layers(nn, model: str, residual) -> list:
    """the layers of `model` from the library `nn` (fastnn.nn or torch.nn: the same
    names); residual(body) makes a block's x + body(x)"""
    if model == "baseline":
        return [nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                nn.Linear(2048, 10)]
    if model in ("lenet5", "lenet5_infer"):
        return [nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)]
    if model == "resnet":
        def block():
            return residual(nn.Sequential(
                nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                nn.Conv2d(32, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32)))
        layers = [nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU()]
        for _ in range(3):
            layers += [block(), nn.ReLU()]
        return layers + [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)]
    raise ValueError(f"unknown CNN model {model!r}")


@dataclasses.dataclass(frozen=True)
class CnnOp(TrainingOp):
    image: tuple = (3, 32, 32)

    def describe(self) -> str:
        image = "x".join(map(str, self.image))
        if self.optimizer is None:
            return f"{self.name} {image}, inference"
        return f"{self.name} {image}, {self.optimizer_text()}"


@dataclasses.dataclass(frozen=True)
class CnnCase(MlpCase):
    """A CNN case; shape is (batch, *image)."""
    suite = "cnn"

    @property
    def layers(self) -> int:
        return 1


def _make_inputs(model_name: str):
    def make(rng, shape):
        import fastnn
        from fastnn import nn
        fastnn.manual_seed(int(rng.integers(1 << 31)))
        model = nn.Sequential(*cnn_layers(nn, model_name, nn.Residual))
        inputs = {"state": {k: np.array(v) for k, v in model.state_dict().items()},
                  "x": normal(rng, shape), "y": rng.integers(0, 10, size=shape[0], dtype=np.int64)}
        return inputs
    return make


def fastnn_case_call(model, op, inputs):
    """the timed call of a fastnn model started from inputs["state"]: op's training step
    on (x, y), or without an optimizer one forward in eval mode without gradients"""
    import fastnn
    model.load_state_dict(inputs["state"])
    x, y = inputs["x"], inputs["y"]
    if op.optimizer is None:
        model.eval()

        def infer():
            with fastnn.no_grad():
                return model(x)
        return infer
    return fastnn_training_step(model, op, x, y)


def torch_case_call(model, op, inputs):
    """the same for a torch model (forward under torch.no_grad, logits as NumPy)"""
    import torch
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in inputs["state"].items()})
    if op.optimizer is None:
        model.eval()
        x = torch.from_numpy(inputs["x"])

        def infer():
            with torch.no_grad():
                return model(x).numpy()
        return infer
    return torch_training_step(model, op, inputs["x"], inputs["y"])


def _fastnn_builder(op: CnnOp):
    def build(inputs):
        from fastnn import nn
        return fastnn_case_call(nn.Sequential(*cnn_layers(nn, op.name, nn.Residual)), op, inputs)
    return build


def _numpy_builder(op: CnnOp):
    def build(inputs):
        from fastnn.baselines.numpy_cnn import NumpyCNN
        net = NumpyCNN(op.image, channels=(16, 32), num_classes=10, **op.options)
        net.load_state_dict(inputs["state"])
        x, y = inputs["x"], inputs["y"]
        return _warmed(lambda: net.train_step(x, y))
    return build


def _torch_builder(op: CnnOp):
    def build(inputs):
        import torch

        class Residual(torch.nn.Module):
            def __init__(self, body):
                super().__init__()
                self.body = body

            def forward(self, x):
                return x + self.body(x)

        return torch_case_call(torch.nn.Sequential(*cnn_layers(torch.nn, op.name, Residual)),
                               op, inputs)
    return build


def _cnn_op(name: str, image: tuple, optimizer, numpy: bool = False) -> CnnOp:
    op = CnnOp(name, _make_inputs(name), {}, rtol=RTOL, atol=1e-5 if optimizer is None else 0.0,
               image=image, optimizer=optimizer)
    op.impls.update(fastnn=_fastnn_builder(op), numpy=_numpy_builder(op) if numpy else None,
                    torch=_torch_builder(op))
    return op


CNN_OPS: Dict[str, CnnOp] = {op.name: op for op in (
    _cnn_op("baseline", (3, 32, 32), SGD, numpy=True),
    _cnn_op("lenet5", (1, 28, 28), ADAM),
    _cnn_op("resnet", (3, 16, 16), SGD_MOMENTUM),
    _cnn_op("lenet5_infer", (1, 28, 28), None),
)}
CNN_OP_NAMES = tuple(CNN_OPS)
CNN_BATCHES = {"baseline": 32, "lenet5": 64, "resnet": 32, "lenet5_infer": 1}


def build_cnn_cases(ops=None, quick: bool = False) -> list:
    """The CNN case table (ids like "baseline/32": the batch size); `ops` (names)
    keeps only those."""
    wanted = wanted_ops(CNN_OP_NAMES, ops, "CNN")
    return [CnnCase(CNN_OPS[name], str(CNN_BATCHES[name]),
                    (CNN_BATCHES[name],) + CNN_OPS[name].image)
            for name in CNN_OP_NAMES if name in wanted]
