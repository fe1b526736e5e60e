"""Per-layer convolution cases of the CNN suite: each Conv2d of the CNN cases
(cases_cnn) in three directions, against PyTorch's own kernels.

    forward       y = conv2d(x, W) + b                     fastnn.ops.conv2d, F.conv2d
    input_grad    dx from dy                               conv2d_backward(input_grad only),
                                                           aten.convolution_backward
    weight_grad   dW (and db when the layer has a bias)    conv2d_backward(weight_grad,
                                                           bias_grad), the same in torch

Every direction is 2 N O OH OW (C / groups) KH KW floating-point operations; the
table prints GFLOP/s and fastnn's share of the FMA peak, as the GEMM table does.
Inputs: x ~ N(0, 1), W ~ N(0, 1 / (C KH KW)), b ~ N(0, 1/4), dy ~ N(0, 1 / (N OH OW))
(so y, dx and dW are all O(1) or smaller and one tolerance fits every case).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, NamedTuple

from .core import Case, Op, normal

RTOL, ATOL = 1e-4, 1e-5


class ConvLayer(NamedTuple):
    """A Conv2d layer at its place in a CNN case: input (N, C, H, W), O output
    channels, a K x K kernel, stride 1, `padding` on every side."""
    N: int
    C: int
    H: int
    W: int
    O: int
    K: int
    padding: int
    bias: bool

    @property
    def out_hw(self):
        return self.H + 2 * self.padding - self.K + 1, self.W + 2 * self.padding - self.K + 1

    @property
    def flops(self) -> int:
        oh, ow = self.out_hw
        return 2 * self.N * self.O * oh * ow * self.C * self.K * self.K

    def text(self) -> str:
        return (f"{self.N}x{self.C}x{self.H}x{self.W} * {self.O}x{self.C}x{self.K}x{self.K} "
                f"p{self.padding}{'' if self.bias else ' no bias'}")


# the distinct Conv2d layers of cases_cnn's models, named model.convI
LAYERS: Dict[str, ConvLayer] = {
    "baseline.conv1": ConvLayer(32, 3, 32, 32, 16, 3, 1, True),
    "baseline.conv2": ConvLayer(32, 16, 16, 16, 32, 3, 1, True),
    "lenet5.conv1": ConvLayer(64, 1, 28, 28, 6, 5, 2, True),
    "lenet5.conv2": ConvLayer(64, 6, 14, 14, 16, 5, 0, True),
    "resnet.stem": ConvLayer(32, 3, 16, 16, 32, 3, 1, False),
    "resnet.block": ConvLayer(32, 32, 16, 16, 32, 3, 1, False),
}
DIRECTIONS = ("forward", "input_grad", "weight_grad")


@dataclasses.dataclass(frozen=True)
class ConvLayerCase(Case):
    """One layer in one direction; size is the layer's name, shape its ConvLayer."""

    @property
    def name(self) -> str:
        return f"{self.size} {self.op.name[len('conv_'):]}"

    @property
    def flops(self) -> int:
        return self.shape.flops

    @property
    def elements(self) -> int:
        return self.shape.N * self.shape.O * math.prod(self.shape.out_hw)

    @property
    def shape_text(self) -> str:
        return self.shape.text()


def _inputs(rng, layer: ConvLayer) -> dict:
    oh, ow = layer.out_hw
    out = {"x": normal(rng, (layer.N, layer.C, layer.H, layer.W)),
           "w": normal(rng, (layer.O, layer.C, layer.K, layer.K),
                       1.0 / math.sqrt(layer.C * layer.K * layer.K)),
           "dy": normal(rng, (layer.N, layer.O, oh, ow), 1.0 / math.sqrt(layer.N * oh * ow))}
    if layer.bias:
        out["b"] = normal(rng, (layer.O,), 0.5)
    return out


def _fastnn(direction: str, layer: ConvLayer):
    def build(inputs):
        from fastnn import ops
        x, w, b, dy, p = inputs["x"], inputs["w"], inputs.get("b"), inputs["dy"], layer.padding
        if direction == "forward":
            return lambda: ops.conv2d(x, w, b, padding=p)
        if direction == "input_grad":
            return lambda: ops.conv2d_backward(dy, x, w, padding=p, input_grad=True,
                                               weight_grad=False, bias_grad=False)[0]

        def weight_grad():
            _, dw, db = ops.conv2d_backward(dy, x, w, padding=p, input_grad=False,
                                            weight_grad=True, bias_grad=layer.bias)
            return (dw, db) if layer.bias else dw
        return weight_grad
    return build


def _torch(direction: str, layer: ConvLayer):
    def build(inputs):
        import torch
        import torch.nn.functional as F
        x, w, dy = (torch.from_numpy(inputs[k]) for k in ("x", "w", "dy"))
        b = torch.from_numpy(inputs["b"]) if layer.bias else None
        p = layer.padding
        if direction == "forward":
            return lambda: F.conv2d(x, w, b, padding=p)
        mask = [direction == "input_grad", direction == "weight_grad",
                direction == "weight_grad" and layer.bias]

        def backward():
            dx, dw, db = torch.ops.aten.convolution_backward(
                dy, x, w, [layer.O] if layer.bias else None, [1, 1], [p, p], [1, 1], False,
                [0, 0], 1, mask)
            if direction == "input_grad":
                return dx
            return (dw, db) if layer.bias else dw
        return backward
    return build


def _conv_op(direction: str, layer: ConvLayer) -> Op:
    return Op(f"conv_{direction}", _inputs, {"fastnn": _fastnn(direction, layer),
                                             "numpy": None, "torch": _torch(direction, layer)},
              rtol=RTOL, atol=ATOL)


CONV_LAYER_OP_NAMES = tuple(f"conv_{d}" for d in DIRECTIONS)


def build_conv_layer_cases(ops=None) -> list:
    """Every layer of LAYERS in every direction (ids like "conv_forward/baseline.conv1");
    `ops` (names from CONV_LAYER_OP_NAMES) keeps only those directions."""
    wanted = CONV_LAYER_OP_NAMES if ops is None else tuple(ops)
    return [ConvLayerCase(_conv_op(d, layer), name, layer)
            for name, layer in LAYERS.items() for d in DIRECTIONS if f"conv_{d}" in wanted]
