"""Worker processes (one library each) and the parent-side pool.

Thread pools of different libraries interfere when they share a process, so
the CLI runs each library in its own long-lived worker,
``python -m fastnn.bench --worker LIB --threads N --sizes ...``, started with
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS = N in its
environment (so NumPy's BLAS uses N threads). It reads one JSON request per
line on stdin and answers one JSON line on stdout. ``WorkerPool`` is the
parent side of that protocol. The pytest-benchmark suite instead runs
everything in one process (pytest-benchmark requires it).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
from typing import Dict, Optional

from .cases_elementwise import DEFAULT_SIZES, build_cases
from .cases_gemm import build_gemm_cases
from .cases_cnn import build_cnn_cases
from .cases_rnn import build_rnn_cases
from .cases_transformer import build_transformer_cases
from .cases_conv import build_conv_layer_cases
from .cases_mlp import build_mlp_cases
from .core import DEFAULT_THREADS, FULL, LIBS, Case, CheckError, parse_size
from .machine import library_versions
from .timing import (library_context, measure_fma_peak, prepare, reference_result, set_threads,
                     time_call, wait_threads_idle)

BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def worker_cases(sizes) -> list:
    """Every case a worker can time: the element-wise table at `sizes`, the GEMM
    table, the MLP training-step table, the CNN table and its conv layers, the RNN and
    transformer tables."""
    return (build_cases(sizes) + build_gemm_cases() + build_mlp_cases() + build_cnn_cases()
            + build_conv_layer_cases() + build_rnn_cases() + build_transformer_cases())


def worker_main(lib: str, threads: int, sizes) -> int:
    """Serve timing requests for `lib` on stdin/stdout, one JSON object per line.

    Requests: {"cmd": "time", "case": ID, "budget": s, "warmup": s},
    {"cmd": "fma_peak", "seconds": s, "repeats": n} (fastnn worker) and
    {"cmd": "quit"}. Answers to "time": {"ok": true, "seconds": median,
    "calls": n, "formulation": str, "bytes": int, "flops": int} or
    {"ok": false, "error": msg, "kind": k} with kind "check" (wrong result),
    "skip" (no implementation) or "error"; to "fma_peak": {"ok": true,
    "gflops": ..., "threads": ..., "iters": ..., "seconds": ...}.
    """
    proto = sys.stdout
    sys.stdout = sys.stderr          # stray prints must not corrupt the protocol

    def send(msg):
        proto.write(json.dumps(msg) + "\n")
        proto.flush()

    try:
        if lib == "torch":
            import torch  # noqa: F401
        set_threads(lib, threads)
    except ImportError as e:
        send({"ready": False, "error": f"{lib} is not importable: {e}"})
        return 0
    cases = {c.id: c for c in worker_cases(sizes)}
    info = library_versions(lib)
    wait_threads_idle()
    send({"ready": True, "info": info})

    current = None   # (case id, inputs, Prepared or exception)
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        if req.get("cmd") == "fma_peak":
            try:
                peak = measure_fma_peak(req.get("seconds", FULL["peak_seconds"]),
                                        req.get("repeats", FULL["peak_repeats"]))
                wait_threads_idle()
                send(dict(ok=True, **peak))
            except Exception as e:
                send({"ok": False, "kind": "error", "error": f"{type(e).__name__}: {e}"})
            continue
        case = cases.get(req.get("case"))
        if case is None:
            send({"ok": False, "kind": "error", "error": f"unknown case {req.get('case')!r}"})
            continue
        try:
            if current is None or current[0] != case.id:
                current = None
                gc.collect()
                inputs = case.inputs()
                ref_threads = None if lib == "fastnn" else 1  # one thread pool at a time
                ref = reference_result(case, inputs, ref_threads)
                prepared = prepare(case, lib, inputs, ref)
                del ref
                current = (case.id, inputs, prepared)
            _, inputs, prepared = current
            if prepared is None:
                send({"ok": False, "kind": "skip", "error": f"no {lib} implementation"})
                continue
            with library_context(lib):
                seconds, calls = time_call(prepared.fn, budget=req.get("budget", FULL["budget"]),
                                           warmup=req.get("warmup", FULL["warmup"]))
            settle = wait_threads_idle()   # before the next worker runs
            send({"ok": True, "seconds": seconds, "calls": calls,
                  "formulation": prepared.formulation, "bytes": case.traffic_bytes(inputs),
                  "flops": case.flops, "settle_s": settle})
        except CheckError as e:
            current = None
            send({"ok": False, "kind": "check", "error": str(e)})
        except Exception as e:  # report, keep serving
            current = None
            send({"ok": False, "kind": "error", "error": f"{type(e).__name__}: {e}"})
    return 0


class Worker:
    """Parent side of one worker process."""

    def __init__(self, lib: str, threads: int, sizes):
        self.lib = lib
        env = dict(os.environ)
        for var in BLAS_THREAD_VARS:   # read by NumPy's BLAS when it loads
            env[var] = str(threads)
        cmd = [sys.executable, "-m", "fastnn.bench", "--worker", lib, "--threads", str(threads),
               "--sizes", ",".join(str(n) for n in sizes)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1, env=env)

    def receive(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            code = self.proc.wait()
            raise RuntimeError(f"{self.lib} worker exited (code {code}) without answering")
        return json.loads(line)

    def request(self, msg: dict) -> dict:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return self.receive()

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write('{"cmd": "quit"}\n')
                self.proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class WorkerPool:
    """One worker per library. `start()` returns {lib: reason} for the
    libraries whose worker could not start (e.g. torch not installed)."""

    def __init__(self, libs, threads: int, sizes):
        self.libs, self.threads, self.sizes = list(libs), threads, tuple(sizes)
        self.workers: Dict[str, Worker] = {}
        self.info: Dict[str, dict] = {}

    def start(self) -> dict:
        pending = {lib: Worker(lib, self.threads, self.sizes) for lib in self.libs}
        failed = {}
        for lib, w in pending.items():
            try:
                hello = w.receive()
            except RuntimeError as e:
                hello = {"ready": False, "error": str(e)}
            if hello.get("ready"):
                self.workers[lib] = w
                self.info[lib] = hello.get("info", {})
            else:
                failed[lib] = hello.get("error", "did not start")
                w.close()
        self.libs = [lib for lib in self.libs if lib in self.workers]
        return failed

    def time_case(self, case: Case, rounds: int, budget: float, warmup: float) -> dict:
        """Time `case` in every worker, `rounds` times, reversing the order of
        the workers every other round. Returns {lib: result}, a result being
        {"seconds": median over rounds, "rounds": [...], ...} or an error dict."""
        results = {lib: {"rounds": []} for lib in self.libs}
        failed = {}
        for r in range(rounds):
            order = self.libs if r % 2 == 0 else self.libs[::-1]
            for lib in order:
                if lib in failed:
                    continue
                ans = self.workers[lib].request(
                    {"cmd": "time", "case": case.id, "budget": budget, "warmup": warmup})
                if not ans.get("ok"):
                    failed[lib] = ans
                    continue
                res = results[lib]
                res["rounds"].append(ans["seconds"])
                res["formulation"] = ans.get("formulation", "")
                res["bytes"] = ans["bytes"]
                res["flops"] = ans.get("flops", 0)
        for lib, res in results.items():
            if lib in failed:
                results[lib] = failed[lib]
            else:
                res["ok"] = True
                res["seconds"] = statistics.median(res["rounds"])
        return results

    def fma_peak(self, seconds: float, repeats: int) -> Optional[dict]:
        """fastnn's measured FMA peak on the pool's thread count (see
        timing.measure_fma_peak), from the fastnn worker; None if it failed."""
        if "fastnn" not in self.workers:
            return None
        ans = self.workers["fastnn"].request(
            {"cmd": "fma_peak", "seconds": seconds, "repeats": repeats})
        return ans if ans.get("ok") else None

    def close(self):
        for w in self.workers.values():
            w.close()
        self.workers.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()



def main(argv=None) -> int:
    """``python -m fastnn.bench``: a worker with --worker, else ``fastnn bench ARGS``."""
    p = argparse.ArgumentParser(
        prog="python -m fastnn.bench",
        description="Benchmark worker; without --worker, runs `fastnn bench`.")
    p.add_argument("--worker", choices=LIBS)
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS)
    p.add_argument("--sizes", default=",".join(str(n) for n in DEFAULT_SIZES))
    args, rest = p.parse_known_args(argv)
    if args.worker is None:
        from .report import main as bench_main
        return bench_main(argv if argv is not None else sys.argv[1:],
                          prog="python -m fastnn.bench")
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    return worker_main(args.worker, args.threads, sizes)
