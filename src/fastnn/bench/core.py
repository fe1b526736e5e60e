"""Shared pieces of the benchmark harness: settings, sizes, ``Op`` / ``Case``
and the result check. Nothing here imports fastnn or torch."""
from __future__ import annotations

import dataclasses
import zlib
from typing import Callable, Dict, Optional

import numpy as np

LIBS = ("fastnn", "numpy", "torch")
DEFAULT_THREADS = 2

# Timing settings: (rounds, seconds timed per worker request, warm-up seconds,
# and for GEMM runs the FMA-peak probe: seconds per probe call, best of how many)
FULL = dict(rounds=5, budget=0.25, warmup=0.05, peak_seconds=0.3, peak_repeats=5)
QUICK = dict(rounds=2, budget=0.06, warmup=0.02, peak_seconds=0.1, peak_repeats=3)


class CheckError(AssertionError):
    """An implementation's result differs from fastnn's."""


# --------------------------------------------------------------------------- #
# Sizes
# --------------------------------------------------------------------------- #

def format_size(n: int) -> str:
    """1048576 -> '1M', 262144 -> '256K', anything else as digits."""
    for suffix, unit in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= unit and n % unit == 0:
            return f"{n // unit}{suffix}"
    return str(n)


def parse_size(text: str) -> int:
    """'1M' -> 1 << 20, '256K' -> 1 << 18, '5000' -> 5000 (binary units)."""
    t = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(t[-1:], 1)
    digits = t[:-1] if scale != 1 else t
    try:
        n = int(digits) * scale
    except ValueError:
        raise ValueError(f"bad size {text!r}: use e.g. 1M, 16M, 256K or a plain count") from None
    if n < 1:
        raise ValueError(f"size must be positive, got {text!r}")
    return n


def normal(rng, shape, scale=1.0):
    """float32 N(0, scale^2) samples."""
    x = rng.standard_normal(shape, dtype=np.float32)
    if scale != 1.0:
        x *= np.float32(scale)
    return x


# --------------------------------------------------------------------------- #
# Ops and cases
# --------------------------------------------------------------------------- #

Builder = Callable[[dict], object]  # inputs -> callable, or {name: callable}


@dataclasses.dataclass(frozen=True)
class Op:
    name: str
    make_inputs: Callable
    impls: Dict[str, Optional[Builder]]
    rtol: float
    atol: float
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Case:
    op: Op
    size: str          # "1M", "16M", "4096x1000"; GEMM cases "512", "64x256x784"
    shape: tuple       # the shape make_inputs gets; GEMM cases (batch, M, N, K)

    @property
    def name(self) -> str:
        return self.op.name

    @property
    def id(self) -> str:
        return f"{self.op.name}/{self.size}"

    @property
    def elements(self) -> int:
        """Elements of the result."""
        return int(np.prod(self.shape))

    @property
    def shape_text(self) -> str:
        """The case's shape as printed in the table."""
        return self.size

    def inputs(self) -> dict:
        """The case's input arrays; the same in every process (seeded by id)."""
        rng = np.random.default_rng(zlib.crc32(self.id.encode()))
        shape = self.shape[0] if len(self.shape) == 1 else self.shape
        return self.op.make_inputs(rng, shape)

    def traffic_bytes(self, inputs: dict) -> int:
        """Compulsory memory traffic: inputs read once, one float32 result written."""
        return sum(v.nbytes for v in inputs.values()) + 4 * self.elements

    def builder(self, lib: str) -> Optional[Builder]:
        return self.op.impls.get(lib)

    @property
    def flops(self) -> int:
        """Floating-point operations per call (0: not a compute-bound case)."""
        return 0


# --------------------------------------------------------------------------- #
# Checking
# --------------------------------------------------------------------------- #

def _as_arrays(result) -> list:
    parts = result if isinstance(result, tuple) else (result,)
    out = []
    for p in parts:
        if hasattr(p, "detach"):      # torch.Tensor
            p = p.detach().numpy()
        out.append(np.asarray(p))
    return out


def check_result(case: Case, lib: str, result, reference) -> None:
    """Raise CheckError unless `result` matches fastnn's `reference`."""
    got, want = _as_arrays(result), _as_arrays(reference)
    if len(got) != len(want):
        raise CheckError(f"{case.id} [{lib}]: {len(got)} outputs, fastnn gives {len(want)}")
    for i, (g, w) in enumerate(zip(got, want)):
        scalar = w.ndim == 0
        rtol = max(case.op.rtol, 1e-4) if scalar else case.op.rtol
        atol = 0.0 if scalar else case.op.atol
        if g.shape != w.shape:
            raise CheckError(f"{case.id} [{lib}]: output {i} has shape {g.shape}, "
                             f"fastnn gives {w.shape}")
        if not np.allclose(g, w, rtol=rtol, atol=atol, equal_nan=True):
            bad = ~np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
            j = np.unravel_index(np.argmax(bad), bad.shape) if g.ndim else ()
            raise CheckError(
                f"{case.id} [{lib}]: output {i} differs from fastnn's in {int(bad.sum())} "
                f"place(s) (rtol={rtol}, atol={atol}); first at {tuple(int(k) for k in j)}: "
                f"{g[j]!r} vs {w[j]!r}")


def wanted_ops(names: tuple, ops, kind: str = "") -> tuple:
    """The op names a case table keeps: all of `names` when `ops` is None, else `ops`
    (ValueError naming the unknown ones and the choices)."""
    wanted = names if ops is None else tuple(ops)
    unknown = [o for o in wanted if o not in names]
    if unknown:
        raise ValueError(f"unknown {kind + ' ' if kind else ''}op(s) {', '.join(unknown)}; "
                         f"choose from {', '.join(names)}")
    return wanted
