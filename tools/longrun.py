#!/usr/bin/env python3
"""Long-run check: memory must not grow over many training steps, save/load
cycles and rejected calls. docs/hardening.md says what it found.

    python tools/longrun.py                       # 10k steps, 500 cycles, 100k bad calls
    python tools/longrun.py --seconds 5 --steps 1000 --cycles 30 --bad-calls 5000

Three phases, each bounded by its share of --seconds (it stops early, saying so):
- train: a small MLP (32-64-64-10, ReLU and GELU) with Adam and cross-entropy, batch
  32, --steps steps; the loss must fall;
- saveload: --cycles rounds of fastnn.save / fastnn.load and save_checkpoint /
  load_checkpoint of that model, its optimizer and scheduler; what is loaded must
  equal what was saved;
- badcalls: --bad-calls calls of fastnn.ops and nn layers with bad shapes, dtypes,
  options and `out` arrays, on fresh arrays each time; each must raise TypeError or
  ValueError (anything else fails at once).
Each phase warms up (its first 10%), then samples the resident set size
(/proc/self/statm) ten times and traces Python allocations (tracemalloc). A phase
fails when the RSS grows by more than --max-growth-mb, or grows steadily (a linear fit
of the samples with r^2 > 0.9, rising at 8 of 9 steps, by more than 2 MB), or when
tracemalloc's traced memory grows by more than --max-traced-mb (its top lines are
printed). Exit status 1 on any failure; the last line is "longrun: ok" or
"longrun: FAILED".
"""
import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc

import numpy as np

PAGE = os.sysconf("SC_PAGESIZE") if hasattr(os, "sysconf") else 4096


def rss_mb():
    """resident set size, MB"""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE / 2**20
    except OSError:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # peak, KB on Linux


class Monitor:
    """RSS samples and tracemalloc over one phase of `total` iterations"""

    def __init__(self, name, total, args):
        self.name, self.total, self.args = name, total, args
        self.warm = max(1, total // 10)
        self.every = max(1, (total - self.warm) // 10)
        self.samples, self.snap0, self.traced0 = [], None, 0
        self.failures = []

    def tick(self, i):
        """call after iteration i (0-based); True to stop the phase (a runaway)"""
        done = i + 1
        if done == self.warm:
            gc.collect()
            self.samples.append(rss_mb())
            if self.args.trace:
                tracemalloc.start(4)
                self.snap0 = tracemalloc.take_snapshot()
                self.traced0 = tracemalloc.get_traced_memory()[0]
        elif done > self.warm and (done - self.warm) % self.every == 0:
            gc.collect()
            self.samples.append(rss_mb())
            if self.args.rss and self.samples[-1] - self.samples[0] > 4 * self.args.max_growth_mb:
                self.failures.append(f"RSS grew by {self.samples[-1] - self.samples[0]:.1f} MB "
                                     f"by iteration {done}: stopped early")
                return True
        return False

    def finish(self, done, seconds, note=""):
        gc.collect()
        if done > self.warm:
            self.samples.append(rss_mb())
        traced = None
        if self.snap0 is not None:
            traced = (tracemalloc.get_traced_memory()[0] - self.traced0) / 2**20
            if traced > self.args.max_traced_mb:
                top = tracemalloc.take_snapshot().compare_to(self.snap0, "lineno")[:8]
                self.failures.append(f"Python allocations grew by {traced:.2f} MB; top lines:\n    "
                                     + "\n    ".join(str(t) for t in top))
            tracemalloc.stop()
        s = self.samples
        growth = s[-1] - s[0] if len(s) >= 2 else 0.0
        if self.args.rss and len(s) >= 2:
            if growth > self.args.max_growth_mb:
                self.failures.append(f"RSS grew by {growth:.1f} MB (bound {self.args.max_growth_mb} MB)")
            elif len(s) >= 5 and growth > 2.0:
                x = np.arange(len(s), dtype=np.float64)
                y = np.asarray(s)
                slope, icpt = np.polyfit(x, y, 1)
                r2 = 1 - ((y - (slope * x + icpt)) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-12)
                rising = int((np.diff(y) > 0).sum())
                if r2 > 0.9 and rising >= 0.8 * (len(s) - 1):
                    self.failures.append(f"RSS grows steadily: +{growth:.1f} MB, {slope:.2f} MB per "
                                         f"sample, r^2 {r2:.2f}, rising at {rising} of {len(s) - 1} steps")
        print(f"{self.name}: {done} of {self.total} in {seconds:.1f}s{note}; RSS "
              + (f"{s[0]:.1f} -> {s[-1]:.1f} MB ({growth:+.2f})" if len(s) >= 2 else "not sampled")
              + (f", Python allocations {traced:+.3f} MB" if traced is not None else "")
              + (f"; samples {' '.join(f'{v:.1f}' for v in s)}" if self.args.verbose else ""),
              flush=True)
        for f in self.failures:
            print(f"  FAIL {self.name}: {f}", flush=True)
        return not self.failures


def make_model(seed):
    import fastnn
    from fastnn import nn

    fastnn.manual_seed(seed)
    return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 64), nn.GELU(),
                         nn.Linear(64, 10))


def phase_train(args, deadline):
    from fastnn import nn, optim

    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((1024, 32)).astype(np.float32)
    y = (X @ rng.standard_normal((32, 10))).argmax(axis=1)  # learnable labels
    model = make_model(args.seed)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    mon = Monitor("train", args.steps, args)
    t0, losses, done = time.monotonic(), [], 0
    for i in range(args.steps):
        j = (i * 32) % 1024
        opt.zero_grad()
        loss = loss_fn(model(X[j:j + 32]), y[j:j + 32])
        model.backward(loss_fn.backward(), input_grad=False)
        opt.step()
        losses.append(loss)
        done = i + 1
        if mon.tick(i) or time.monotonic() > deadline:
            break
    ok = mon.finish(done, time.monotonic() - t0, "" if done == args.steps else " (time share used)")
    first, last = np.mean(losses[:50]), np.mean(losses[-50:])
    if not np.isfinite(last) or (done >= 500 and not last < 0.8 * first):
        print(f"  FAIL train: the loss went {first:.3f} -> {last:.3f}")
        ok = False
    return ok


def phase_saveload(args, deadline):
    import fastnn
    from fastnn import optim

    rng = np.random.default_rng(args.seed + 1)
    model = make_model(args.seed)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    sched = optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    x = rng.standard_normal((8, 32)).astype(np.float32)
    mon = Monitor("saveload", args.cycles, args)
    t0, done, ok = time.monotonic(), 0, True
    with tempfile.TemporaryDirectory() as tmp:
        path, ck = os.path.join(tmp, "model.safetensors"), os.path.join(tmp, "ckpt.safetensors")
        model2 = make_model(args.seed + 7)
        opt2 = optim.Adam(model2.parameters(), lr=1e-3)
        sched2 = optim.lr_scheduler.StepLR(opt2, step_size=10, gamma=0.5)
        for i in range(args.cycles):
            for p in model.parameters():  # a step, so that there is optimizer state to save
                p.grad[...] = rng.standard_normal(p.shape)
            opt.step()
            sched.step()
            fastnn.save(model, path)
            loaded = fastnn.load(path)
            fastnn.save_checkpoint(ck, model, opt, sched, epoch=i, note="longrun")
            info = fastnn.load_checkpoint(ck, model2, opt2, sched2)
            if i % 25 == 0 or i == args.cycles - 1:
                want = model(x)
                if not (np.array_equal(loaded(x), want) and np.array_equal(model2(x), want)
                        and info.get("epoch") == i):
                    print(f"  FAIL saveload: cycle {i} loaded something else than it saved")
                    ok = False
                    break
                sd, sd2 = opt.state_dict(), opt2.state_dict()
                if sd["param_groups"] != sd2["param_groups"]:
                    print(f"  FAIL saveload: cycle {i}: optimizer options differ after loading")
                    ok = False
                    break
            del loaded
            done = i + 1
            if mon.tick(i) or time.monotonic() > deadline:
                break
    return mon.finish(done, time.monotonic() - t0,
                      "" if done == args.cycles else " (time share used)") and ok


def bad_calls(rng):
    """(description, call) pairs; each call must raise TypeError or ValueError. Every
    call makes its arrays fresh, so a leaked reference to an input shows as growth."""
    from fastnn import nn, ops

    f32 = np.float32

    def a(*shape, dtype=f32):
        return np.ones(shape, dtype)

    lin = nn.Linear(16, 8)
    ro = np.ones((64, 64), f32)
    ro.flags.writeable = False
    return [
        ("relu complex", lambda: ops.relu(a(64, 64, dtype=np.complex64))),
        ("relu out shape", lambda: ops.relu(a(64, 64), out=a(64, 63))),
        ("relu out dtype", lambda: ops.relu(a(64, 64), out=a(64, 64, dtype=np.float64))),
        ("relu out read-only", lambda: ops.relu(a(64, 64), out=ro)),
        ("gelu approximate", lambda: ops.gelu(a(64, 64), approximate="fast")),
        ("sigmoid_backward shapes", lambda: ops.sigmoid_backward(a(64, 64), a(64, 65))),
        ("softmax axis", lambda: ops.softmax(a(64, 64), axis=5)),
        ("log_softmax object", lambda: ops.log_softmax(np.array([[1.0, None]], dtype=object))),
        ("cross_entropy label", lambda: ops.cross_entropy(a(64, 10), np.full(64, 10))),
        ("cross_entropy probability shape", lambda: ops.cross_entropy(a(64, 10), np.zeros(64, f32))),
        ("mse_loss shapes", lambda: ops.mse_loss(a(64, 64), a(64, 32))),
        ("bce string", lambda: ops.binary_cross_entropy_with_logits(a(64), "abc")),
        ("matmul inner", lambda: ops.matmul(a(64, 32), a(31, 16))),
        ("matmul 4-d", lambda: ops.matmul(a(2, 2, 8, 8), a(8, 8))),
        ("matmul beta without out", lambda: ops.matmul(a(8, 8), a(8, 8), beta=1.0)),
        ("linear bias", lambda: ops.linear(a(64, 16), a(8, 16), a(9))),
        ("linear activation", lambda: ops.linear(a(64, 16), a(8, 16), activation="swish")),
        ("linear_backward grad shape", lambda: ops.linear_backward(a(64, 9), a(64, 16), a(8, 16))),
        ("sgd_step dtype", lambda: ops.sgd_step(a(256, dtype=np.float64), a(256), None, 0.1)),
        ("adam_step sizes", lambda: ops.adam_step(a(256), a(256), a(256), a(255), 1)),
        ("rmsprop_step read-only", lambda: ops.rmsprop_step(ro, a(64, 64), a(64, 64))),
        ("Linear forward shape", lambda: lin(a(64, 15))),
        ("Linear forward junk", lambda: lin("abc")),
    ]


def phase_badcalls(args, deadline):
    rng = np.random.default_rng(args.seed + 2)
    calls = bad_calls(rng)
    mon = Monitor("badcalls", args.bad_calls, args)
    t0, done = time.monotonic(), 0
    kept = []  # --plant-leak (tests/test_campaigns.py): what a leak would keep
    for i in range(args.bad_calls):
        desc, call = calls[i % len(calls)]
        if args.plant_leak == "rss":
            kept.append(np.ones(16384, np.float32))   # 64 KiB a call
        elif args.plant_leak == "python":
            kept.append([object() for _ in range(100)])
        try:
            call()
        except (TypeError, ValueError):
            pass
        except BaseException as e:  # noqa: BLE001 (the point: nothing else may come out)
            print(f"  FAIL badcalls: {desc} raised {type(e).__name__}: {e}")
            mon.finish(i + 1, time.monotonic() - t0)
            return False
        else:
            print(f"  FAIL badcalls: {desc} returned instead of raising")
            mon.finish(i + 1, time.monotonic() - t0)
            return False
        done = i + 1
        if mon.tick(i) or time.monotonic() > deadline:
            break
    return mon.finish(done, time.monotonic() - t0,
                      "" if done == args.bad_calls else " (time share used)")


PHASES = {"train": (phase_train, 0.5), "saveload": (phase_saveload, 0.3),
          "badcalls": (phase_badcalls, 0.2)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=240.0,
                    help="time bound; phases share it 50/30/20 (default 240)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--cycles", type=int, default=500)
    ap.add_argument("--bad-calls", type=int, default=100_000)
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--max-growth-mb", type=float, default=20.0)
    ap.add_argument("--max-traced-mb", type=float, default=2.0)
    ap.add_argument("--no-rss-check", dest="rss", action="store_false",
                    help="sample RSS but do not judge it (under a sanitizer it means nothing)")
    ap.add_argument("--no-trace", dest="trace", action="store_false", help="no tracemalloc")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the RSS samples")
    ap.add_argument("--threads", type=int, help="fastnn.set_num_threads (default: fastnn's)")
    ap.add_argument("--plant-leak", choices=["rss", "python"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sanitized = bool(os.environ.get("FASTNN_SANITIZED"))  # tools/sanitize.sh
    if sanitized:
        args.rss = False  # ASan's quarantine holds freed blocks: RSS grows by design
    names = [n for n in args.phases.split(",") if n]
    unknown = set(names) - set(PHASES)
    if unknown:
        ap.error(f"unknown phases {sorted(unknown)}")
    import fastnn

    if args.threads:
        fastnn.set_num_threads(args.threads)
    start = time.monotonic()
    share_total = sum(PHASES[n][1] for n in names)
    ok, used = True, 0.0
    print(f"longrun: seed {args.seed}, {args.seconds:.0f}s, ISA {fastnn._C.active_isa()}, "
          f"{fastnn.get_num_threads()} threads, RSS {rss_mb():.1f} MB at start"
          + ("" if args.rss else " (RSS sampled, not judged)"), flush=True)
    for n in names:
        fn, share = PHASES[n]
        used += share
        ok = fn(args, start + args.seconds * used / share_total) and ok
    print(f"longrun: {'ok' if ok else 'FAILED'} ({time.monotonic() - start:.0f}s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
