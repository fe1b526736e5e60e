"""Both sides of the subprocess fuzz tests (test_fuzz.py, test_gemm_fuzz.py).

Parent: assert_child_survives(child, seed, calls) runs a child script in a new
interpreter, so that a segfault or abort fails the test instead of pytest.
Child: the script calls start() first and run(makers, check_result) last; in
between it defines its own makers, functions returning (fn, args, kwargs).
"""
import faulthandler
import os
import random
import subprocess
import sys
import traceback
import warnings

import numpy as np

ALLOWED = (TypeError, ValueError, MemoryError)  # np.exceptions.AxisError is a ValueError
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


# ---- parent side ----------------------------------------------------------------

def run_child(child, seed, calls, verbose=False):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [_TESTS_DIR] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.run([sys.executable, "-c", child, str(seed), str(calls), str(int(verbose))],
                          capture_output=True, text=True, timeout=300, env=env)


def assert_child_survives(child, seed, calls):
    """The child must exit 0 and report `calls` calls; a signal reruns it verbosely
    to show the last calls before the crash."""
    import pytest

    proc = run_child(child, seed, calls)
    if proc.returncode < 0:  # killed by a signal: rerun printing every call to find it
        again = run_child(child, seed, calls, verbose=True)
        last = again.stderr.strip().splitlines()[-40:]
        pytest.fail(f"child died with signal {-proc.returncode}; stderr:\n{proc.stderr[-4000:]}"
                    f"\nlast calls of a verbose rerun (rc {again.returncode}):\n" + "\n".join(last))
    assert proc.returncode == 0, f"child exited {proc.returncode}; stderr:\n{proc.stderr[-8000:]}"
    assert f"{calls} calls ok" in proc.stdout


# ---- child side -----------------------------------------------------------------

def start():
    """Crash reports on, memory capped (a runaway allocation becomes a MemoryError,
    not the OOM killer on the whole box), warnings off. Returns the command line's
    (seed, calls, verbose) and the two seeded generators (random, NumPy)."""
    faulthandler.enable()
    try:
        import resource
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, hard))
    except (ImportError, ValueError, OSError):
        pass
    warnings.simplefilter("ignore")
    seed, calls, verbose = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    return seed, calls, verbose, random.Random(seed), np.random.default_rng(seed)


def describe(a):
    if isinstance(a, np.ndarray):
        return (f"{type(a).__name__}(shape={a.shape}, dtype={a.dtype}, strides={a.strides}, "
                f"writeable={a.flags.writeable})")
    r = repr(a)
    return r if len(r) < 80 else r[:77] + "..."


def run(makers, check_result, calls, verbose, rng):
    """Make `calls` random calls on random ISA paths and thread counts, some with
    a bogus keyword, a missing argument or no `out`. Each must pass
    check_result(fn, result, kwargs) or raise one of ALLOWED; exits 1 otherwise."""
    import fastnn
    from fastnn import _C

    isas = [n for n in _C.ISA_NAMES if n in _C.compiled_isas()
            and _C.ISA_NAMES.index(n) <= _C.ISA_NAMES.index(_C.best_isa())]
    failures, returned = [], 0
    for i in range(calls):
        _C.init_isa(rng.choice(isas))
        fastnn.set_num_threads(rng.choice([1, 2]))
        while True:
            try:  # NumPy itself refuses some of the argument shapes: draw again
                fn, args, kw = rng.choice(makers)()
                break
            except (ValueError, MemoryError):
                pass
        r = rng.random()
        if r < 0.05:
            kw["bogus_keyword"] = 1  # TypeError
        elif r < 0.1 and args:
            args = args[:-1]  # missing argument: TypeError
        elif r < 0.15:
            kw.pop("out", None)
        call = (f"#{i} {fn.__name__}(" + ", ".join([describe(a) for a in args]
                + [f"{k}={describe(v)}" for k, v in kw.items()]) + ")")
        if verbose:
            print(call, file=sys.stderr, flush=True)
        try:
            check_result(fn, fn(*args, **kw), kw)
            returned += 1
        except ALLOWED:
            pass
        except BaseException as err:
            failures.append(call + "\n  -> " + "".join(
                traceback.format_exception_only(type(err), err)).strip())
    if failures:
        print(f"{len(failures)} of {calls} calls raised a disallowed exception:", file=sys.stderr)
        for f in failures[:25]:
            print(f, file=sys.stderr)
        sys.exit(1)
    print(f"{calls} calls ok ({returned} returned a result, the rest raised)")


WEIRD_DTYPES = [np.complex64, np.complex128, object, "U3", "S3", bool, np.int8, np.uint8,
                np.float16, np.float64, np.int64, np.uint64, "datetime64[D]", "timedelta64[s]",
                ">f4", "<f8", "V4"]
VALUES = [0.0, -0.0, 1e-45, -1e-40, 1e30, -1e30, np.inf, -np.inf, np.nan, 3.4e38, 1.0, -1.0]


class Arrays:
    """Array makers for a given shape, drawn from the child's generators: every
    layout, dtype and flag an input can come with."""

    def __init__(self, rng, np_rng):
        self.R, self.NP = rng, np_rng

    def f32(self, shp):
        if self.R.random() < 0.25:
            return np.array(self.NP.choice(VALUES, shp), dtype=np.float32)
        return (self.NP.standard_normal(shp) * self.R.choice([1.0, 1e3, 1e30])).astype(np.float32)

    def weird_dtype(self, shp):
        dt = self.R.choice(WEIRD_DTYPES)
        try:
            return np.zeros(shp, dtype=dt) if self.R.random() < 0.5 else self.f32(shp).astype(dt)
        except (TypeError, ValueError):
            return np.zeros(shp, dtype=dt)

    def noncontig(self, shp):
        return self.f32(tuple(2 * s for s in shp))[tuple(slice(None, None, 2) for _ in shp)]

    def negstride(self, shp):
        return self.f32(shp)[tuple(slice(None, None, -1) for _ in shp)]

    def readonly(self, shp):
        a = self.f32(shp)
        a.flags.writeable = False
        return a

    def transposed(self, shp):
        """the last two axes swapped: a column-major view"""
        if len(shp) < 2:
            return self.f32(shp)
        return np.swapaxes(self.f32(shp[:-2] + (shp[-1], shp[-2])), -1, -2)

    def wide(self, shp):
        """a slice of a wider array: rows farther apart than their length"""
        if not shp or 0 in shp:  # (10**9, 0) would become (10**9, 3)
            return self.f32(shp)
        return self.f32(shp[:-1] + (shp[-1] + 3,))[..., :shp[-1]]

    def bcast(self, shp):
        """some axes with stride 0"""
        if not shp:
            return self.f32(shp)
        src = tuple(1 if self.R.random() < 0.5 or s > 1000 else s for s in shp)
        return np.broadcast_to(self.f32(src), shp)

    def unaligned(self, shp):
        n = int(np.prod(shp, dtype=np.int64))
        if n > 1 << 20:
            return self.f32(shp)
        raw = np.zeros(4 * n + 8, np.uint8)
        return raw[1:1 + 4 * n].view(np.float32).reshape(shp)

    def odd_strides(self, shp):
        """a float32 view whose byte strides are not multiples of 4"""
        if len(shp) < 2 or 0 in shp or max(shp) > 1000:
            return self.f32(shp)
        strides = [4]
        for s in shp[:0:-1]:
            strides.insert(0, strides[0] * s + self.R.choice([1, 2, 3, 5]))
        span = sum((s - 1) * st for s, st in zip(shp, strides)) + 4
        raw = np.zeros((span + 11) // 4 * 4, np.uint8).view(np.float32)
        y = np.lib.stride_tricks.as_strided(raw, shp, tuple(strides))
        y[...] = self.f32(shp)
        return y

    def as_matrix(self, shp):
        return np.asmatrix(self.f32(shp if len(shp) == 2 else (3, 5)))

    def masked(self, shp):
        return np.ma.masked_array(self.f32(shp), mask=self.NP.random(shp) < 0.5)

    def pylist(self, shp):
        # (10**9, 0).tolist() is 10**9 empty lists: keep the list small
        shp = tuple(3 if s > 1000 else s for s in shp[:-1]) + shp[-1:]
        return self.f32(shp).tolist()

    def out_for(self, shp, inputs, other_shape):
        """an `out=` for a result of shape shp: None, right, or wrong in one way
        (dtype, other_shape(), layout, read-only, not an array), or aliasing one
        of `inputs` exactly or partly"""
        R = self.R
        k = R.randrange(17)
        if k < 4:
            return None
        if k == 4:
            return np.empty(shp, np.float32)
        if k == 5:
            return np.full(shp, np.nan, np.float32)
        if k == 6:
            return np.empty(shp, R.choice([np.float64, np.float16, np.int32, np.complex64, ">f4",
                                           object, bool]))
        if k == 7:
            return np.empty(other_shape(), np.float32)  # (usually) the wrong shape
        if k == 8:
            return self.noncontig(shp) if shp else np.empty((), np.float32)
        if k == 9:
            return self.readonly(shp)
        if k == 10:
            return R.choice([[0.0], 3.0, "out", b"out", object(), memoryview(bytearray(64)), 1j])
        if k == 11:
            return self.negstride(shp)
        if k == 12:
            return self.as_matrix(shp) if len(shp) == 2 else np.empty(shp, np.float32)
        arrs = [a for a in inputs if isinstance(a, np.ndarray) and a.dtype == np.float32]
        if not arrs:
            return np.empty(shp, np.float32)
        a = R.choice(arrs)
        if k in (13, 14):
            return a  # exactly an input (perhaps the wrong shape)
        base = a
        while isinstance(base.base, np.ndarray):
            base = base.base
        flat = base.reshape(-1) if base.flags.c_contiguous else None
        n = int(np.prod(shp, dtype=np.int64))
        if flat is not None and flat.size > n + 1:
            off = R.randrange(0, flat.size - n)
            try:
                return flat[off:off + n].reshape(shp)  # overlaps an input partly
            except ValueError:
                pass
        return a

    def makers(self):
        """every maker, plain float32 weighted up"""
        return [self.f32] * 4 + [self.weird_dtype, self.noncontig, self.negstride, self.readonly,
                                 self.transposed, self.wide, self.bcast, self.unaligned,
                                 self.odd_strides, self.as_matrix, self.masked, self.pylist]
