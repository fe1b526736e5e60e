"""The fuzzing machinery: both sides of the subprocess fuzz runs, and the call makers.

Used by tests/test_fuzz.py and tests/test_gemm_fuzz.py (a few thousand calls each, in
the default suite) and by tools/fuzz_campaign.py (time-bounded campaigns, with
float64 reference checks and the nn / optim entry points on top).

Parent: probe(child, seed, calls) runs a child script in a new interpreter, so that
a segfault, an abort or a hang is an outcome instead of the end of pytest; a child
that dies or hangs is rerun printing every call, to name the call that did it.
assert_child_survives(child, seed, calls) turns a bad outcome into a test failure.
Child: the script calls start() first and run(makers, check, calls, ...) last; a
maker is a function returning (fn, args, kwargs). ops_calls(R, NP) and
gemm_calls(R, NP) make the fastnn.ops calls, mostly wrong in some way; every call
must pass check(fn, args, kwargs, result, before) or raise one of ALLOWED. Each
call that does neither is printed as one `FINDING {json}` line on stdout.
"""
import faulthandler
import json
import os
import random
import subprocess
import sys
import time
import traceback
import warnings
from typing import NamedTuple

import numpy as np

ALLOWED = (TypeError, ValueError, MemoryError)  # np.exceptions.AxisError is a ValueError
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
CALL_TIMEOUT = float(os.environ.get("FASTNN_FUZZ_CALL_TIMEOUT", "60"))  # one call, seconds


# ---- parent side ----------------------------------------------------------------

def run_child(child, seed, calls, verbose=False, timeout=300, only=-1, path=()):
    """Run the child script; subprocess.TimeoutExpired if it outlives `timeout`.
    `only` >= 0 draws every call as usual but makes only that one (a replay);
    `path` adds folders to the child's PYTHONPATH (tests/ is always there)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [_TESTS_DIR, *path] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.run([sys.executable, "-c", child, str(seed), str(calls), str(int(verbose)),
                           str(only)], capture_output=True, text=True, timeout=timeout, env=env)


class Outcome(NamedTuple):
    status: str          # "ok", "failed" (findings), "crashed" (a signal, or an exit
    #                      mid-run: a sanitizer's halt), "hung"
    detail: str          # what happened, with the child's last stderr lines
    findings: list       # the FINDING records (dicts) the child printed
    last_calls: list     # for a crash or a hang: the last calls of the verbose rerun
    seconds: float


def _findings(stdout):
    out = []
    for line in stdout.splitlines():
        if line.startswith("FINDING "):
            try:
                out.append(json.loads(line[len("FINDING "):]))
            except ValueError:
                out.append({"call": line, "error": "unparsable FINDING line"})
    return out


def probe(child, seed, calls, timeout=300, path=()):
    """Run the child once; on a crash or a hang, again verbosely to find the call."""
    t0 = time.monotonic()
    try:
        proc = run_child(child, seed, calls, timeout=timeout, path=path)
    except subprocess.TimeoutExpired as e:
        status, detail, stdout = "hung", f"no exit after {timeout}s", e.stdout or ""
        if isinstance(stdout, bytes):
            stdout = stdout.decode(errors="replace")
    else:
        stdout = proc.stdout
        hung = "Timeout (" in proc.stderr and "most recent call first" in proc.stderr
        if hung:  # the child's per-call watchdog (faulthandler) fired
            status = "hung"
        elif proc.returncode < 0:
            status = "crashed"
        elif proc.returncode != 0 or f"{calls} calls ok" not in proc.stdout:
            status = "failed"
        else:
            status = "ok"
        detail = f"exit {proc.returncode}; stderr:\n{proc.stderr[-6000:]}"
    seconds = time.monotonic() - t0
    if status == "failed" and not _findings(stdout):
        status = "crashed"  # it exited mid-run (a sanitizer's halt, os._exit): find the call
    last = []
    if status in ("crashed", "hung"):
        try:
            again = run_child(child, seed, calls, verbose=True, timeout=timeout, path=path)
            err = again.stderr
        except subprocess.TimeoutExpired as e:
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
        last = [ln for ln in err.splitlines() if ln.startswith("#")][-5:]
        detail += "\nverbose rerun, stderr tail:\n" + "\n".join(err.strip().splitlines()[-40:])
    return Outcome(status, detail, _findings(stdout), last, seconds)


def assert_child_survives(child, seed, calls):
    """The child must exit 0 having made `calls` calls, none of them a finding."""
    import pytest

    res = probe(child, seed, calls)
    if res.status in ("crashed", "hung"):
        pytest.fail(f"child {res.status}; last calls before it:\n" + "\n".join(res.last_calls)
                    + "\n" + res.detail)
    assert res.status == "ok", res.detail


# ---- child side -----------------------------------------------------------------

_ONLY = [-1]


def start():
    """Crash reports on, memory capped (a runaway allocation becomes a MemoryError,
    not the OOM killer on the whole box), warnings off. Returns the command line's
    (seed, calls, verbose) and the two seeded generators (random, NumPy)."""
    faulthandler.enable()
    try:
        if os.environ.get("FASTNN_SANITIZED"):  # ASan's shadow memory is terabytes of address space
            raise ValueError
        import resource
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, hard))
    except (ImportError, ValueError, OSError):
        pass
    warnings.simplefilter("ignore")
    seed, calls, verbose = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1"
    _ONLY[0] = int(sys.argv[4]) if len(sys.argv) > 4 else -1
    return seed, calls, verbose, random.Random(seed), np.random.default_rng(seed)


def describe(a):
    if isinstance(a, np.ndarray):
        extra = ""
        if a.size and not a.flags.aligned:
            extra = ", unaligned"
        if a.size and a.size <= 6 and a.dtype.kind in "fiub":
            extra += f", values={a.tolist()}"
        return (f"{type(a).__name__}(shape={a.shape}, dtype={a.dtype}, strides={a.strides}, "
                f"writeable={a.flags.writeable}{extra})")
    r = repr(a)
    return r if len(r) < 80 else r[:77] + "..."


UNCOPIED = type("Uncopied", (), {"__repr__": lambda self: "UNCOPIED"})()


def _copy(a):
    """a copy of an input as it was before the call (UNCOPIED when too big)"""
    if isinstance(a, np.ndarray):
        if a.size > 1 << 21:
            return UNCOPIED
        try:
            return np.array(a, copy=True, subok=False)
        except (TypeError, ValueError, MemoryError):
            return UNCOPIED
    return a


def run(makers, check, calls, verbose, rng):
    """Make `calls` random calls on random ISA paths and thread counts, some with
    a bogus keyword, a missing argument or no `out` (not those whose fn has
    `_exact` set: calls drawn to be valid). Each must pass
    check(fn, args, kwargs, result, before), `before` being copies of (args,
    kwargs) taken before the call, or raise one of ALLOWED; exits 1 otherwise,
    after printing one FINDING line per bad call."""
    import fastnn
    from fastnn import _C

    isas = [n for n in _C.ISA_NAMES if n in _C.compiled_isas()
            and _C.ISA_NAMES.index(n) <= _C.ISA_NAMES.index(_C.best_isa())]
    failures, returned, only = [], 0, _ONLY[0]
    for i in range(calls):
        isa, threads = rng.choice(isas), rng.choice([1, 2])
        faulthandler.dump_traceback_later(CALL_TIMEOUT, exit=True)  # making and calling
        while True:
            try:  # NumPy itself refuses some of the argument shapes: draw again
                fn, args, kw = rng.choice(makers)()
                break
            except (ValueError, MemoryError):
                pass
        r = rng.random()
        if getattr(fn, "_exact", False):  # a call drawn to be valid: made as drawn
            pass
        elif r < 0.05:
            kw["bogus_keyword"] = 1  # TypeError
        elif r < 0.1 and args:
            args = args[:-1]  # missing argument: TypeError
        elif r < 0.15:
            kw.pop("out", None)
        if only >= 0 and i != only:
            faulthandler.cancel_dump_traceback_later()
            continue
        _C.init_isa(isa)
        fastnn.set_num_threads(threads)
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
        call = (f"#{i} [{isa}, {threads} thr] {name}(" + ", ".join(
            [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in kw.items()]) + ")")
        if verbose:
            print(call, file=sys.stderr, flush=True)
        before = ([_copy(a) for a in args], {k: _copy(v) for k, v in kw.items()})
        try:
            res = fn(*args, **kw)
        except ALLOWED:
            res = err = None
        except BaseException as e:
            res, err = None, e
        else:
            err = None
            returned += 1
            try:
                check(fn, args, kw, res, before)
            except BaseException as e:
                err = e
        faulthandler.cancel_dump_traceback_later()
        if err is not None:
            if isinstance(err, KeyboardInterrupt):
                raise err
            msg = "".join(traceback.format_exception_only(type(err), err)).strip()
            failures.append(call + "\n  -> " + msg)
            where = traceback.extract_tb(err.__traceback__)[-1:]
            print("FINDING " + json.dumps({
                "index": i, "fn": name, "call": call, "error": msg,
                "kind": "check" if res is not None or isinstance(err, AssertionError) else "raised",
                "where": f"{where[0].filename}:{where[0].lineno}" if where else ""}), flush=True)
    if failures:
        print(f"{len(failures)} of {calls} calls raised a disallowed exception or failed a check:",
              file=sys.stderr)
        for f in failures[:25]:
            print(f, file=sys.stderr)
        sys.exit(1)
    print(f"{calls} calls ok ({returned} returned a result, the rest raised)")


def check_result(fn, args, kw, res, before):
    """The result has the documented type: None for the in-place optimizer steps,
    (float, float32 array) for the losses, else a float32 array, `out` itself
    when one was given."""
    from fastnn import ops

    if fn in (ops.sgd_step, ops.adam_step, ops.rmsprop_step):  # in place
        assert res is None, res
        return
    if fn is ops.linear_backward and res is None:  # input_grad=False
        assert not (args[5] if len(args) > 5 else kw.get("input_grad", True)), \
            "linear_backward returned None with input_grad"
        return
    if fn in (ops.cross_entropy, ops.mse_loss, ops.binary_cross_entropy_with_logits):
        assert isinstance(res, tuple) and isinstance(res[0], float), res
        res = res[1]
    assert isinstance(res, np.ndarray) and res.dtype == np.float32, type(res)
    if isinstance(kw.get("out"), np.ndarray):
        assert res is kw["out"], "out= given but another array returned"


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


# ---- the calls: fastnn.ops (test_fuzz.py) ----------------------------------------

def ops_calls(R, NP):
    """Makers of calls to every fastnn.ops function but the GEMM family, mostly
    wrong in one way (junk, wrong dtype, shape, layout, options out of range)."""
    from fastnn import ops
    # ---- shapes and arrays ----------------------------------------------------------
    SHAPES = [(), (0,), (1,), (7,), (17,), (3, 5), (2, 3, 4), (4, 1, 3), (1000,), (3, 0, 4),
              (0, 10**9), (10**9, 0), (2, 0, 10**9), (0, 10**9, 10**9)]
    ARRAYS = Arrays(R, NP)
    ARRAY_MAKERS = ARRAYS.makers()


    def shape():
        return R.choice(SHAPES)


    def f32(shp=None):
        return ARRAYS.f32(shape() if shp is None else shp)


    JUNK = [None, [[1, 2], [3]], [[1.0, [2.0]], 3.0], [], [[]], 1.5, 0, True, 1j, "abc", b"xy",
            {"a": 1}, {1, 2}, object(), 2**100, [2**100], [None], [1, "a"], np.float32(3),
            np.float64("nan"), np.datetime64("2020-01-01"), range(5), (x for x in range(3)),
            np.array([1.0, None], dtype=object), np.empty((0, 10**9), np.float32),
            np.empty((10**9, 0), np.float64), np.empty(0, np.complex64), memoryview(b"abcd")]


    def array_for(shp):
        """mostly an array of shape shp (in some form), sometimes junk"""
        if R.random() < 0.15:
            return R.choice(JUNK)
        return R.choice(ARRAY_MAKERS)(shp)


    def array_any():
        return array_for(shape())


    def like(shp):
        """a second operand: usually the same shape, sometimes mismatched"""
        return array_for(shp if R.random() < 0.7 else shape())


    def out_for(shp, inputs):
        return ARRAYS.out_for(shp, inputs, shape)


    AXES = [-1, 0, 1, 2, -2, 3, -4, 100, -100, 2**70, 1.5, -0.5, "a", "1", None, True,
            np.int64(1), np.array([0, 1]), [0], (0,), 1j, float("nan")]
    APPROX = ["none", "tanh", "TANH", "None", "", "erf", None, 1, b"tanh", ["tanh"], np.str_("tanh"),
              np.array(["none", "tanh"]), object()]
    SLOPES = [0.01, 0.0, -1.0, 1e30, float("nan"), float("inf"), np.float64(0.2), 2, True, None,
              "a", [0.1], np.array([0.1, 0.2]), 1j, object(), {}, 1e400, 10**400]
    SMOOTHING = [0.0, 0.1, 1.0, -1, 2, float("nan"), float("inf"), -0.0, 1e-50, "a", None, [0.1],
                 1j, np.float32(0.5), True, object(), 10**400]
    IGNORE = [-100, 0, 1, -1, 2**62, -2**62, 2**63 - 1, -2**63, None, "a", 1j, [1], object(),
              2**63, -2**63 - 1, 1.7]


    def labels_for(logits):
        s = getattr(logits, "shape", None)
        if s is None or R.random() < 0.2:
            s = shape()
        ls = () if len(s) <= 1 else s[:1] + s[2:]
        if R.random() < 0.2:
            ls = shape()  # mismatched
        if np.prod(ls, dtype=object) > 10**6:  # e.g. logits (2, 0, 10**9): labels would be real
            ls = (0,) + ls[1:]
        C = s[1] if len(s) >= 2 else (s[0] if s else 1)
        k = R.randrange(12)
        if k < 3:
            return NP.integers(0, max(C, 1), ls)
        if k == 3:
            return NP.choice([-100, 0, C, C + 1, -1, -101, 2**62, -2**62, 2**63 - 1, -2**63], ls)
        if k == 4:
            return NP.integers(0, max(C, 1), ls).astype(R.choice(
                [np.float32, np.float64, bool, np.int8, np.uint8, np.uint64, np.int32, object, "U3"]))
        if k == 5:
            return np.full(ls, 2**64 - 1, np.uint64)
        if k == 6:
            return R.choice([0, 1, -100, 2**62, 2**70, 1.5, "0", None, [0, 1], [[0], [1, 2]],
                             np.int64(0), np.array(0), [2**70]])
        if k == 7:
            a = NP.integers(0, max(C, 1), tuple(2 * d for d in ls)) if ls else np.int64(0)
            return a[tuple(slice(None, None, 2) for _ in ls)] if ls else a
        if k == 8:
            a = NP.integers(0, max(C, 1), ls)
            a.flags.writeable = False
            return a
        return R.choice(JUNK)


    # ---- the calls ------------------------------------------------------------------
    def unary(name):
        def make():
            x = array_any()
            return getattr(ops, name), [x], {"out": out_for(getattr(x, "shape", ()), [x])}
        return make


    def binary(name, extra=None):
        def make():
            x = array_any()
            g = like(getattr(x, "shape", shape()))
            args = [g, x] + ([R.choice(extra)] if extra else [])
            return getattr(ops, name), args, {"out": out_for(getattr(x, "shape", ()), [g, x])}
        return make


    def with_param(name, pool):
        def make():
            x = array_any()
            return getattr(ops, name), [x, R.choice(pool)], {"out": out_for(getattr(x, "shape", ()), [x])}
        return make


    def cross_entropy():
        x = array_any()
        kw = {}
        if R.random() < 0.5:
            kw["label_smoothing"] = R.choice(SMOOTHING)
        if R.random() < 0.5:
            kw["ignore_index"] = R.choice(IGNORE)
        return ops.cross_entropy, [x, labels_for(x)], kw


    def pointwise_loss(name):
        def make():
            x = array_any()
            return getattr(ops, name), [x, like(getattr(x, "shape", shape()))], {}
        return make


    # optimizer steps: most calls valid (so that they reach the kernel), the others
    # with junk, the wrong size or layout, read-only, None, or another argument as a
    # buffer, or an option out of range or of the wrong type
    GOOD_HYPER = [0.0, 0.01, 0.5, 0.9, 0.999, np.float32(0.5), 1e-45, 0.0]
    BAD_HYPER = [1.0, 1.5, -0.1, -0.0, 1e30, 1e39, float("nan"), float("inf"), "0.1", None, 1j, [0.1],
                 np.array([0.1, 0.2]), True, object(), 10**400]
    FLAGS = [False, True, 0, 1, None, "", "yes", np.bool_(True), np.array([1, 0]), [], object()]
    STEP_COUNTS = [1, 2, 10**6, 2**63 - 1, 0, -1, 2**63, 1.5, "1", None, np.int64(3), True, 1j]
    FLAG_NAMES = ("nesterov", "first_step", "decoupled")


    def hyper():
        return R.choice(GOOD_HYPER if R.random() < 0.85 else BAD_HYPER)


    def buffer_for(shp, others):
        r = R.random()
        if r < 0.05:
            return R.choice(others)
        if r < 0.85:
            return np.zeros(shp, np.float32)
        return like(shp)


    def maybe_buffer(shp, others):
        return None if R.random() < 0.4 else buffer_for(shp, others)


    def param_and_grad():
        p = f32() if R.random() < 0.85 else array_any()
        shp = getattr(p, "shape", shape())
        return p, buffer_for(shp, [p]), shp


    def options(names):
        return {k: R.choice(FLAGS) if k in FLAG_NAMES else hyper() for k in names if R.random() < 0.5}


    def sgd_step():
        p, g, shp = param_and_grad()
        kw = options(["momentum", "dampening", "nesterov", "weight_decay", "first_step"])
        return ops.sgd_step, [p, g, maybe_buffer(shp, [p, g]), hyper()], kw


    def adam_step():
        p, g, shp = param_and_grad()
        m = buffer_for(shp, [p, g])
        v = buffer_for(shp, [p, g, m])
        kw = options(["lr", "beta1", "beta2", "eps", "weight_decay", "decoupled"])
        kw["max_exp_avg_sq"] = maybe_buffer(shp, [p, g, m, v])
        step = R.choice(STEP_COUNTS) if R.random() < 0.3 else R.randrange(1, 100)
        return ops.adam_step, [p, g, m, v, step], kw


    def rmsprop_step():
        p, g, shp = param_and_grad()
        sq = buffer_for(shp, [p, g])
        kw = options(["lr", "alpha", "eps", "weight_decay", "momentum"])
        kw["grad_avg"] = maybe_buffer(shp, [p, g, sq])
        kw["momentum_buf"] = maybe_buffer(shp, [p, g, sq, kw["grad_avg"]])
        return ops.rmsprop_step, [p, g, sq], kw


    MAKERS = ([unary(n) for n in ("relu", "sigmoid", "tanh", "silu", "exp", "erf")]
              + [with_param("leaky_relu", SLOPES), with_param("gelu", APPROX),
                 with_param("softmax", AXES), with_param("log_softmax", AXES)]
              + [binary(n) for n in ("relu_backward", "sigmoid_backward", "tanh_backward",
                                     "silu_backward")]
              + [binary("leaky_relu_backward", SLOPES), binary("gelu_backward", APPROX),
                 binary("softmax_backward", AXES), binary("log_softmax_backward", AXES)]
              + [cross_entropy, cross_entropy, cross_entropy]
              + [pointwise_loss("mse_loss"), pointwise_loss("binary_cross_entropy_with_logits")]
              + [sgd_step, adam_step, rmsprop_step] * 2)
    return MAKERS


# ---- the calls: matmul, linear, linear_bias_backward (test_gemm_fuzz.py) -----------

def gemm_calls(R, NP):
    """Makers of calls to matmul, linear and linear_bias_backward, mostly wrong
    in one way (shapes, transposes, scalars, activations, out)."""
    from fastnn import ops
    DIMS = [0, 1, 1, 2, 3, 4, 5, 7, 8, 13, 17, 33]
    HUGE = 10**10  # any non-empty array with such an axis is > 8 GiB: a quick MemoryError
    ARRAYS = Arrays(R, NP)
    ARRAY_MAKERS = ARRAYS.makers()
    f32 = ARRAYS.f32


    def dim():
        return R.choice(DIMS)


    JUNK = [None, [[1, 2], [3]], [], [[]], 1.5, 0, True, 1j, "abc", b"xy", {"a": 1}, object(),
            2**100, [[2**100]], [[None]], np.float32(3), range(5), np.array([[1.0, None]], dtype=object),
            np.empty((0, HUGE), np.float32), np.empty((HUGE, 0), np.float32),
            np.empty((2, HUGE, 0), np.float32), np.empty((0, 3), np.complex64), memoryview(b"abcd"),
            np.broadcast_to(np.float32(1), (HUGE, 2, 2)), np.broadcast_to(np.float32(1), (HUGE, 3)),
            np.zeros((2, 3, 4, 5), np.float32), np.zeros(7, np.float32), np.float32(1.0)]


    def array_for(shp):
        if R.random() < 0.12:
            return R.choice(JUNK)
        try:
            return R.choice(ARRAY_MAKERS)(shp)
        except (ValueError, MemoryError):
            return f32(shp)


    def random_shape():
        return tuple(dim() for _ in range(R.choice([1, 2, 3])))


    def out_for(shp, inputs):
        return ARRAYS.out_for(shp, inputs, random_shape)


    TRANS = [False, True, False, True, 0, 1, None, np.bool_(True), "yes", "", [1], [], np.array([1, 0])]
    SCALARS = [1.0, 1.0, 0.0, 0.0, -2, 0.5, np.float32(0.5), np.float64(-1), True, float("nan"),
               float("inf"), -float("inf"), 1e300, 10**400, "1", None, 1j, [1.0], np.array([2.0]),
               np.array([1.0, 1.0]), object(), np.int64(3), 1e-45]
    ACTS = [None, "none", "relu", "gelu", "sigmoid", "tanh", "RELU", "", "softmax", "gelu_tanh", 1,
            b"relu", ["relu"], np.str_("tanh"), np.array(["relu"]), object(), {}, True]


    def mm_shapes():
        """a's and b's shapes: mostly compatible 2-D / 3-D, sometimes not"""
        M, N, K, B = dim(), dim(), dim(), R.choice([1, 1, 2, 3, 0])
        ta, tb = R.choice(TRANS), R.choice(TRANS)
        try:
            fa, fb = bool(ta), bool(tb)
        except ValueError:
            fa = fb = False
        sa = (K, M) if fa else (M, K)
        sb = (N, K) if fb else (K, N)
        r = R.random()
        if r < 0.25:
            sa = (B,) + sa
        elif r < 0.4:
            sb = (B,) + sb
        elif r < 0.6:
            sa, sb = (B,) + sa, (R.choice([B, B, 1, 2]),) + sb
        if R.random() < 0.15:  # mismatched
            sb = tuple(R.choice([s, dim(), s + 1]) for s in sb)
        if R.random() < 0.05:
            sa = R.choice([(), (dim(),), (1, 2, 3, 4), (0, HUGE), (HUGE, 0), (2, 0, HUGE)])
        if R.random() < 0.05:
            sb = R.choice([(), (dim(),), (1, 2, 3, 4), (0, HUGE), (HUGE, 0), (2, HUGE, 0)])
        return sa, sb, ta, tb


    def matmul_call():
        sa, sb, ta, tb = mm_shapes()
        a, b = array_for(sa), array_for(sb)
        kw = {}
        if R.random() < 0.5:
            kw["trans_a"] = ta
        if R.random() < 0.5:
            kw["trans_b"] = tb
        if R.random() < 0.3:
            kw["alpha"] = R.choice(SCALARS)
        if R.random() < 0.3:
            kw["beta"] = R.choice(SCALARS)
        try:
            shp = np.matmul(np.empty(np.shape(a)[:-2] + (3, 3) if np.ndim(a) > 2 else (3, 3)),
                            np.empty(np.shape(b)[:-2] + (3, 3) if np.ndim(b) > 2 else (3, 3))).shape
            shp = shp[:-2] + (sa[-1] if kw.get("trans_a") is True else sa[-2] if len(sa) > 1 else 1,
                              sb[-2] if kw.get("trans_b") is True else sb[-1] if sb else 1)
        except Exception:
            shp = sa
        if R.random() < 0.6:
            kw["out"] = out_for(shp, [a, b])
        return ops.matmul, [a, b], kw


    def linear_call():
        n_in, n_out = dim(), dim()
        lead = R.choice([(), (dim(),), (dim(),), (2, dim()), (0,), (1, 2, 3)])
        xs = lead + (n_in,)
        if R.random() < 0.1:
            xs = R.choice([(), (n_in + 1,), (HUGE, 0), (0, HUGE)])
        ws = (n_out, n_in)
        if R.random() < 0.1:
            ws = R.choice([(n_in,), (n_out, n_in + 1), (1, n_out, n_in), (), (HUGE, 0), (0, HUGE)])
        x, w = array_for(xs), array_for(ws)
        args = [x, w]
        kw = {}
        if R.random() < 0.6:
            bs = R.choice([(n_out,), (n_out,), (n_out,), (n_out + 1,), (1, n_out), (), (0,)])
            kw["bias"] = array_for(bs)
        if R.random() < 0.6:
            kw["activation"] = R.choice(ACTS)
        if R.random() < 0.5:
            kw["out"] = out_for(lead + (n_out,), [x, w, kw.get("bias")])
        return ops.linear, args, kw


    def bias_grad_call():
        shp = R.choice([(), (dim(),), (dim(), dim()), (2, dim(), dim()), (0, HUGE), (HUGE, 0),
                        (1, 2, 3, 4)])
        g = array_for(shp)
        kw = {}
        if R.random() < 0.5:
            kw["out"] = out_for(shp[-1:] if shp else (1,), [g])
        return ops.linear_bias_backward, [g], kw


    MAKERS = [matmul_call, matmul_call, matmul_call, linear_call, linear_call, bias_grad_call]
    return MAKERS
