"""Measure fastnn's vector math against float64 over EVERY float32 input.

For exp, sigmoid, tanh, erf and gelu (erf form) in fastnn.ops, and each ISA
path this CPU has, walks all 2**32 bit patterns in chunks (NaNs only checked
to propagate), computes the float64 reference with NumPy/SciPy and reports:
  - max error in ulps of the float32 result, over results that are normal floats,
  - max absolute error over subnormal results (float32 keeps < 24 bits there),
  - that +-inf and NaN inputs give the right limits / NaN.
Writes a Markdown table to stdout (docs/accuracy.md holds the last run).
Measured with denormals kept (fastnn.set_flush_denormal(False)): the math itself,
not the flush-to-zero kernels do by default.

    python tools/measure_accuracy.py [--isa avx512] [--funcs exp,tanh] [--step 1] [--check]

--step k samples every k-th bit pattern (k=1 is exhaustive; ~10 min per ISA).
Needs scipy for the float64 erf.
"""
import argparse
import sys

import numpy as np
from scipy import special

import fastnn
from fastnn import _C, ops

FLT_MIN = np.finfo(np.float32).tiny
# the bounds docs/accuracy.md states (tests/test_vmath_accuracy.py and --check hold us to them)
MAX_ULP = {"exp": 1.5, "log": 2.5, "sigmoid": 3.0, "tanh": 6.0, "erf": 2.0, "gelu": 8.0}
# subnormal results: about one subnormal ulp (1.4e-45), a few for gelu's product
MAX_ABS_SUBNORMAL = {"exp": 1.5e-45, "log": 1.5e-45, "sigmoid": 1.5e-45, "tanh": 1.5e-45, "erf": 1.5e-45,
                     "gelu": 5e-45}


def reference(name, x):
    x = x.astype(np.float64)
    with np.errstate(all="ignore"):
        if name == "exp":
            return np.exp(x)
        if name == "log":
            return np.log(x)
        if name == "sigmoid":
            return special.expit(x)
        if name == "tanh":
            return np.tanh(x)
        if name == "erf":
            return special.erf(x)
        if name == "gelu":
            return x * special.ndtr(x)
    raise ValueError(name)


def chunk_errors(name, bits):
    x = bits.view(np.float32)
    x = x[~np.isnan(x)]
    got = getattr(ops, name)(x).astype(np.float64)
    want = reference(name, x)
    with np.errstate(over="ignore"):
        want32 = want.astype(np.float32)
    finite = np.isfinite(want32) & np.isfinite(got)
    special_ok = np.array_equal(got[~finite], want32[~finite].astype(np.float64), equal_nan=True)
    normal = finite & (np.abs(want) >= FLT_MIN)
    ulp = np.spacing(np.abs(want32[normal])).astype(np.float64)
    err_ulp = np.abs(got[normal] - want[normal]) / ulp
    sub = finite & (np.abs(want) < FLT_MIN)
    abs_sub = np.abs(got[sub] - want[sub])
    worst = x[normal][np.argmax(err_ulp)] if err_ulp.size else None
    return (err_ulp.max(initial=0.0), worst, abs_sub.max(initial=0.0), special_ok)


def measure(name, step, chunk=1 << 24):
    previous = fastnn.get_flush_denormal()
    fastnn.set_flush_denormal(False)
    try:
        return _measure(name, step, chunk)
    finally:
        fastnn.set_flush_denormal(previous)


def _measure(name, step, chunk):
    max_ulp, worst_x, max_sub, specials = 0.0, None, 0.0, True
    for start in range(0, 1 << 32, chunk):
        bits = np.arange(start, start + chunk, step, dtype=np.uint64).astype(np.uint32)
        u, w, s, ok = chunk_errors(name, bits)
        if u > max_ulp:
            max_ulp, worst_x = u, w
        max_sub = max(max_sub, s)
        specials &= ok
    nan_in = np.array([np.nan, -np.nan], np.float32)
    specials &= bool(np.isnan(getattr(ops, name)(nan_in)).all())
    return max_ulp, worst_x, max_sub, specials


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--isa", default=",".join(i for i in _C.ISA_NAMES
                                             if _C.ISA_NAMES.index(i) <= _C.ISA_NAMES.index(_C.best_isa())))
    p.add_argument("--funcs", default=",".join(MAX_ULP))
    p.add_argument("--step", type=int, default=1)
    p.add_argument("--check", action="store_true", help="exit 1 if a bound in MAX_ULP is exceeded")
    args = p.parse_args(argv)
    failed = False
    print(f"fastnn {fastnn.__version__}; every {args.step}-th float32 bit pattern "
          f"({(1 << 32) // args.step:,} inputs per function)\n")
    print("| function | ISA | max error, normal results (ulp) | at x | max abs error, subnormal results | inf/NaN right |")
    print("|---|---|---|---|---|---|")
    for isa in args.isa.split(","):
        _C.init_isa(isa)
        for name in args.funcs.split(","):
            u, w, s, ok = measure(name, args.step)
            print(f"| {name} | {isa} | {u:.2f} | {w!r} | {s:.1e} | {'yes' if ok else 'NO'} |", flush=True)
            failed |= u > MAX_ULP[name] or s > MAX_ABS_SUBNORMAL[name] or not ok
    if args.check and failed:
        print("\nFAILED: an error bound of MAX_ULP / MAX_ABS_SUBNORMAL was exceeded")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
