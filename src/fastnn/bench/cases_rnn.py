"""End-to-end RNN cases: one timed call is one training step (forward, loss, backward
through time, optimizer step, zero_grad) on a fixed batch, or one batch-1 inference.

    lstm         LSTM(64, 128), T=32 time-major, its last step -> Linear(128, 10),
                 cross-entropy, full BPTT, SGD lr 0.01; batch 32
    gru          the same with GRU(64, 128)
    lstm2        the same with LSTM(64, 128, num_layers=2)
    lstm2_infer  lstm2's forward over T=64 steps for one sequence, without gradients

fastnn  nn.Sequential(nn.LSTM / GRU, nn.RNNOutput("last"), nn.Linear), nn.CrossEntropyLoss,
        model.backward(loss_fn.backward(), input_grad=False), optim.SGD
numpy   lstm only: fastnn.baselines.numpy_lstm.NumpyLSTM.train_step (BPTT by hand)
torch   torch.nn.LSTM / GRU and Linear in a module with the same state_dict keys,
        F.cross_entropy, loss.backward() (its backward also computes dx), torch.optim.SGD;
        inference under torch.no_grad()

Inputs (seeded by case id, identical in every process): x ~ N(0, 1), uniform labels, and
the initial weights of a fastnn model built after fastnn.manual_seed(seed) (torch's
initialisation); every library loads them. The check compares the loss of the third
step (two warm-up steps first), or the logits of the inference, with fastnn's.

FLOPs of one LSTM training sample (reference/rnn.md): forward 2 T 4H (I + H), backward
dW_ih 2 T 4H I, dW_hh and dh 2 T 4H H each: 16.8 MFLOP without dx (fastnn, NumPy),
18.9 MFLOP with it (torch).
"""
from __future__ import annotations

import dataclasses
from typing import Dict

import numpy as np

from .cases_cnn import CnnCase, fastnn_case_call, torch_case_call
from .cases_mlp import TrainingOp, _warmed
from .core import normal, wanted_ops

SGD = ("sgd", (("lr", 0.01),))
RTOL = 1e-3


def rnn_modules(nn, op_name: str):
    """(recurrent module, head) of the case from the library nn (fastnn.nn or torch.nn)"""
    cls = nn.GRU if op_name == "gru" else nn.LSTM
    layers = 2 if op_name.startswith("lstm2") else 1
    return cls(64, 128, num_layers=layers), nn.Linear(128, 10)


@dataclasses.dataclass(frozen=True)
class RnnOp(TrainingOp):
    steps: int = 32

    def describe(self) -> str:
        cell = "GRU" if self.name == "gru" else "LSTM"
        layers = ", num_layers=2" if self.name.startswith("lstm2") else ""
        model = f"{cell}(64, 128{layers}), T={self.steps} -> last step -> Linear(128, 10)"
        if self.optimizer is None:
            return f"{model}, inference"
        return f"{model}, {self.optimizer_text()}"


@dataclasses.dataclass(frozen=True)
class RnnCase(CnnCase):
    """An RNN case; shape is (batch, steps, features)."""
    suite = "rnn"


def _make_inputs(op_name: str):
    def make(rng, shape):
        import fastnn
        from fastnn import nn
        fastnn.manual_seed(int(rng.integers(1 << 31)))
        rnn, head = rnn_modules(nn, op_name)
        model = nn.Sequential(rnn, nn.RNNOutput("last"), head)
        batch, steps, features = shape
        return {"state": {k: np.array(v) for k, v in model.state_dict().items()},
                "x": normal(rng, (steps, batch, features)),
                "y": rng.integers(0, 10, size=batch, dtype=np.int64)}
    return make


def _fastnn_builder(op: RnnOp):
    def build(inputs):
        from fastnn import nn
        rnn, head = rnn_modules(nn, op.name)
        return fastnn_case_call(nn.Sequential(rnn, nn.RNNOutput("last"), head), op, inputs)
    return build


def _numpy_builder(op: RnnOp):
    def build(inputs):
        from fastnn.baselines.numpy_lstm import NumpyLSTM
        net = NumpyLSTM(64, 128, 10, **op.options)
        net.load_state_dict(inputs["state"])
        x, y = inputs["x"], inputs["y"]
        return _warmed(lambda: net.train_step(x, y))
    return build


def _torch_builder(op: RnnOp):
    def build(inputs):
        import torch

        class Net(torch.nn.Module):
            def __init__(self):
                super().__init__()
                rnn, head = rnn_modules(torch.nn, op.name)
                self.add_module("0", rnn)  # the keys of fastnn's Sequential
                self.add_module("2", head)

            def forward(self, x):
                out, _ = self._modules["0"](x)
                return self._modules["2"](out[-1])

        return torch_case_call(Net(), op, inputs)
    return build


def _rnn_op(name: str, steps: int, optimizer, numpy: bool = False) -> RnnOp:
    op = RnnOp(name, _make_inputs(name), {}, rtol=RTOL, atol=1e-5 if optimizer is None else 0.0,
               steps=steps, optimizer=optimizer)
    op.impls.update(fastnn=_fastnn_builder(op), numpy=_numpy_builder(op) if numpy else None,
                    torch=_torch_builder(op))
    return op


RNN_OPS: Dict[str, RnnOp] = {op.name: op for op in (
    _rnn_op("lstm", 32, SGD, numpy=True),
    _rnn_op("gru", 32, SGD),
    _rnn_op("lstm2", 32, SGD),
    _rnn_op("lstm2_infer", 64, None),
)}
RNN_OP_NAMES = tuple(RNN_OPS)
RNN_BATCHES = {"lstm": 32, "gru": 32, "lstm2": 32, "lstm2_infer": 1}


def build_rnn_cases(ops=None) -> list:
    """The RNN case table (ids like "lstm/32": the batch size); `ops` keeps only those."""
    wanted = wanted_ops(RNN_OP_NAMES, ops, "RNN")
    return [RnnCase(RNN_OPS[name], str(RNN_BATCHES[name]),
                    (RNN_BATCHES[name], RNN_OPS[name].steps, 64))
            for name in RNN_OP_NAMES if name in wanted]
