"""Embedding: a lookup table of rows by int64 index (fastnn.ops.embedding, csrc/embedding*.c).

torch.nn.Embedding's arguments, weight (num_embeddings, embedding_dim) initialised
N(0, 1) with the padding_idx row zeroed; from_pretrained. Forward gathers rows in C;
backward adds each output row's gradient to its table row in C (padding_idx rows get
none, scale_grad_by_freq divides by the index's count in the batch). max_norm renorms
the looked-up rows in place first, as torch does. An index outside [0, num_embeddings)
raises ValueError. The input (the indices) has no gradient: backward returns None.
"""
from __future__ import annotations

import numpy as np

from fastnn import ops
from fastnn._args import check_int
from fastnn.nn import init
from fastnn.nn.module import Module
from fastnn.nn.parameter import Parameter


class Embedding(Module):
    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx=None,
                 max_norm=None, norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                 sparse: bool = False, _weight=None, _freeze: bool = False):
        super().__init__()
        self.num_embeddings = check_int(num_embeddings, "num_embeddings", 0)
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", 0)
        if padding_idx is not None:
            padding_idx = check_int(padding_idx, "padding_idx", -self.num_embeddings)
            if padding_idx >= self.num_embeddings:
                raise ValueError(f"Padding_idx must be within num_embeddings, got "
                                 f"{padding_idx} for {self.num_embeddings} rows")
            if padding_idx < 0:
                padding_idx += self.num_embeddings
        self.padding_idx = padding_idx
        self.max_norm = None if max_norm is None else float(max_norm)
        self.norm_type = float(norm_type)
        self.scale_grad_by_freq = bool(scale_grad_by_freq)
        if sparse:
            raise ValueError("sparse=True gradients are not supported by fastnn; use "
                             "sparse=False (dense gradients)")
        self.sparse = False
        shape = (self.num_embeddings, self.embedding_dim)
        if _weight is None:
            self.weight = Parameter(np.empty(shape, np.float32), requires_grad=not _freeze)
            self.reset_parameters()
        else:
            w = np.array(_weight, dtype=np.float32)
            if w.shape != shape:
                raise ValueError(f"Shape of weight does not match num_embeddings and "
                                 f"embedding_dim: expected {shape}, got {w.shape}")
            self.weight = Parameter(w, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0.0

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx=None, max_norm=None,
                        norm_type: float = 2.0, scale_grad_by_freq: bool = False,
                        sparse: bool = False) -> "Embedding":
        """An Embedding whose table is a copy of embeddings (V, E); frozen by default."""
        w = np.asarray(embeddings)
        if w.ndim != 2:
            raise ValueError(f"Embeddings parameter is expected to be 2-dimensional, got "
                             f"shape {w.shape}")
        return cls(w.shape[0], w.shape[1], padding_idx, max_norm, norm_type,
                   scale_grad_by_freq, sparse, _weight=w, _freeze=freeze)

    def _renorm(self, idx: np.ndarray) -> None:
        """torch's embedding_renorm_: rows used by idx whose norm exceeds max_norm are
        scaled to max_norm / (norm + 1e-7), in place."""
        w = self.weight._data
        rows = np.unique(idx)
        rows = rows[(rows >= 0) & (rows < self.num_embeddings)]
        norms = np.linalg.norm(w[rows].astype(np.float64), ord=self.norm_type, axis=1)
        big = norms > self.max_norm
        if np.any(big):
            scale = (self.max_norm / (norms[big] + 1e-7)).astype(np.float32)
            w[rows[big]] *= scale[:, None]

    def forward(self, input):
        idx = np.asarray(input)
        if self.max_norm is not None and idx.dtype.kind in "iu":
            self._renorm(idx.astype(np.int64))
        out = ops.embedding(idx, self.weight._data)
        self._save(idx)
        return out

    def backward(self, grad_out, input_grad: bool = True):
        idx, = self._saved()
        if self.weight.requires_grad:
            ops.embedding_backward(grad_out, idx, self.num_embeddings, self.padding_idx,
                                   self.scale_grad_by_freq, self.weight._grad)
        return None

    def get_config(self) -> dict:
        return {"num_embeddings": self.num_embeddings, "embedding_dim": self.embedding_dim,
                "padding_idx": self.padding_idx, "max_norm": self.max_norm,
                "norm_type": self.norm_type, "scale_grad_by_freq": self.scale_grad_by_freq}

    @classmethod
    def state_shapes(cls, config: dict) -> dict:
        from fastnn.nn.container_protocol import config_int
        return {"weight": ((config_int(config, "num_embeddings"),
                            config_int(config, "embedding_dim")), "F32")}

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2.0:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += ", scale_grad_by_freq=True"
        return s
