"""Upsample: nearest-neighbour resizing of (N, C, L) or (N, C, H, W), as PyTorch's
mode='nearest' (source index floor(i * scale) in float32, scale = 1 / scale_factor or
in / out). Other modes raise ValueError. NumPy indexing; backward sums the gradient of each
repeated pixel back onto it."""
from __future__ import annotations

import numpy as np

from fastnn._args import check_bool, check_int, check_real
from fastnn.nn.module import Module, Stateless

MODES = ("nearest",)


def _source_index(n_in: int, n_out: int, scale_factor) -> np.ndarray:
    """int64 (n_out,): the input index each output position copies."""
    if scale_factor is not None:
        scale = np.float32(1.0 / scale_factor)
    else:
        scale = np.float32(n_in) / np.float32(n_out)
    i = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(i, n_in - 1)


class Upsample(Stateless, Module):
    """Upsample(size=None, scale_factor=None, mode='nearest'): give exactly one of size
    (int or one per spatial axis) and scale_factor (float or one per axis)."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest",
                 align_corners=None, recompute_scale_factor=None):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"Upsample: mode must be 'nearest' (the only mode fastnn "
                             f"implements), got mode={mode!r}")
        if align_corners is not None:
            raise ValueError("Upsample: align_corners can only be set with the interpolating "
                             f"modes, not mode={mode!r}; got align_corners={align_corners!r}")
        if (size is None) == (scale_factor is None):
            raise ValueError("Upsample: give exactly one of size and scale_factor, got "
                             f"size={size!r}, scale_factor={scale_factor!r}")
        if isinstance(size, (tuple, list)):
            size = tuple(check_int(s, "size", 1) for s in size)
        elif size is not None:
            size = check_int(size, "size", 1)
        if isinstance(scale_factor, (tuple, list)):
            scale_factor = tuple(check_real(s, "scale_factor", 0.0, low_open=True)
                                 for s in scale_factor)
        elif scale_factor is not None:
            scale_factor = check_real(scale_factor, "scale_factor", 0.0, low_open=True)
        self.size = size
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = None
        self.recompute_scale_factor = (None if recompute_scale_factor is None else
                                       check_bool(recompute_scale_factor,
                                                  "recompute_scale_factor"))

    def _per_axis(self, value, nd: int, name: str) -> tuple:
        if isinstance(value, tuple):
            if len(value) != nd:
                raise ValueError(f"Upsample: {name} must have one value per spatial axis "
                                 f"({nd} for this input), got {value!r}")
            return value
        return (value,) * nd

    def _indices(self, shape: tuple) -> list:
        nd = len(shape) - 2
        spatial = shape[2:]
        if self.size is not None:
            outs = self._per_axis(self.size, nd, "size")
            scales = (None,) * nd
        else:
            scales = self._per_axis(self.scale_factor, nd, "scale_factor")
            outs = tuple(int(np.floor(n * s)) for n, s in zip(spatial, scales))
            for o in outs:
                if o < 1:
                    raise ValueError(f"Upsample: scale_factor={self.scale_factor!r} gives an "
                                     f"empty output for an input of shape {shape}")
            if self.recompute_scale_factor:
                scales = (None,) * nd
        return [_source_index(n, o, s) for n, o, s in zip(spatial, outs, scales)]

    def forward(self, input):
        x = np.asarray(input, dtype=np.float32)
        if x.ndim not in (3, 4) or 0 in x.shape[2:]:
            raise ValueError(f"Upsample: input must be (N, C, L) or (N, C, H, W) with non-empty "
                             f"spatial axes, got shape {x.shape}")
        idx = self._indices(x.shape)
        if x.ndim == 3:
            out = x[:, :, idx[0]]
        else:
            out = x[:, :, idx[0][:, None], idx[1][None, :]]
        self._save(x.shape, idx)
        return np.ascontiguousarray(out)

    def backward(self, grad_out, input_grad: bool = True):
        shape, idx = self._saved()
        if not input_grad:
            return None
        g = np.asarray(grad_out, dtype=np.float32)
        want = shape[:2] + tuple(len(i) for i in idx)
        if g.shape != want:
            raise ValueError(f"Upsample.backward: grad_out must have shape {want}, got {g.shape}")
        # sum along each axis in turn, in output order (np.add.at is sequential)
        for axis, i in enumerate(idx):
            ax = 2 + axis
            moved = np.moveaxis(g, ax, 0)
            acc = np.zeros((shape[ax],) + moved.shape[1:], dtype=np.float32)
            np.add.at(acc, i, moved)
            g = np.moveaxis(acc, 0, ax)
        return np.ascontiguousarray(g)

    def get_config(self) -> dict:
        return {"size": self.size, "scale_factor": self.scale_factor, "mode": self.mode,
                "recompute_scale_factor": self.recompute_scale_factor}

    def extra_repr(self) -> str:
        if self.scale_factor is not None:
            sf = (tuple(float(s) for s in self.scale_factor)
                  if isinstance(self.scale_factor, tuple) else float(self.scale_factor))
            return f"scale_factor={sf}, mode={self.mode!r}"
        return f"size={self.size}, mode={self.mode!r}"
