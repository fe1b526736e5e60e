"""The ``fastnn`` command.

    fastnn bench [--threads N] [--sizes 1M,16M] [--ops relu,gelu,...]
                 [--libs fastnn,numpy,torch] [--quick] [--rounds R] [--json PATH]

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares
its arguments and ``_run_<name>(args) -> exit code`` runs it; register new
ones (e.g. a ``demo``) in ``SUBCOMMANDS``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from fastnn import bench


# --------------------------------------------------------------------------- #
# bench
# --------------------------------------------------------------------------- #

def _csv(text):
    return [t.strip() for t in text.split(",") if t.strip()]


def _add_bench(sub):
    p = sub.add_parser(
        "bench", help="time fastnn against NumPy and PyTorch",
        description="Time each op in fastnn, NumPy and PyTorch (each library in its own worker "
                    "process, asked in alternating order over several rounds) and print the "
                    "per-case median time and fastnn's speed-up. Results are checked against "
                    "fastnn's before timing.")
    p.add_argument("--threads", type=int, default=bench.DEFAULT_THREADS,
                   help="threads for fastnn, torch and BLAS (default %(default)s)")
    p.add_argument("--sizes", default=None,
                   help="element counts for the element-wise ops, e.g. 1M,16M (the default); "
                        "softmax / cross_entropy (4096x1000) and mse / BCE (1M) are fixed")
    p.add_argument("--ops", default=None,
                   help="comma-separated ops (default: all): " + ",".join(bench.OP_NAMES))
    p.add_argument("--libs", default=",".join(bench.LIBS),
                   help="libraries to time (default %(default)s; torch is skipped if missing)")
    p.add_argument("--quick", action="store_true",
                   help="1M sizes only and fewer, shorter rounds (well under a minute)")
    p.add_argument("--rounds", type=int, default=None,
                   help=f"rounds per case (default {bench.FULL['rounds']}, "
                        f"{bench.QUICK['rounds']} with --quick)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")
    p.set_defaults(func=_run_bench)


def _fmt_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def _fmt_ratio(r):
    return f"x{r:.2f}" if r < 10 else f"x{r:.1f}"


def _run_bench(args) -> int:
    settings = dict(bench.QUICK if args.quick else bench.FULL)
    if args.rounds is not None:
        if args.rounds < 1:
            print("fastnn bench: --rounds must be >= 1", file=sys.stderr)
            return 2
        settings["rounds"] = args.rounds
    if args.threads < 1:
        print("fastnn bench: --threads must be >= 1", file=sys.stderr)
        return 2
    try:
        if args.quick:
            sizes = [1 << 20]
        elif args.sizes:
            sizes = [bench.parse_size(s) for s in _csv(args.sizes)]
        else:
            sizes = list(bench.DEFAULT_SIZES)
        cases = bench.build_cases(sizes, _csv(args.ops) if args.ops else None)
    except ValueError as e:
        print(f"fastnn bench: {e}", file=sys.stderr)
        return 2
    libs = _csv(args.libs)
    bad = [lib for lib in libs if lib not in bench.LIBS]
    if bad or not libs:
        print(f"fastnn bench: unknown library {', '.join(bad) or '(none)'}; choose from "
              f"{', '.join(bench.LIBS)}", file=sys.stderr)
        return 2
    if "fastnn" not in libs:
        libs.insert(0, "fastnn")  # speed-ups are relative to it
    libs = [lib for lib in bench.LIBS if lib in libs]

    pressure = bench.cpu_pressure()
    if pressure is not None and pressure > 5:
        print(f"warning: CPU pressure is high (/proc/pressure/cpu some avg10={pressure:.2f}); "
              f"other processes compete for the CPU and timings will be noisy", file=sys.stderr)

    out = sys.stdout
    stall0, t0 = bench.cpu_stall_total(), time.monotonic()
    with bench.WorkerPool(libs, args.threads, sizes) as pool:
        for lib, reason in pool.start().items():
            print(f"note: {lib} skipped: {reason}", file=sys.stderr)
        if "fastnn" not in pool.libs:
            print("fastnn bench: the fastnn worker did not start", file=sys.stderr)
            return 1
        libs = pool.libs
        header = _header(pool, args.threads, settings, pressure)
        print("\n".join(header), file=out)
        others = [lib for lib in libs if lib != "fastnn"]
        cols = (["case", "size"] + libs + [f"vs {lib}" for lib in others] + ["fastnn GB/s"])
        widths = ([max([4] + [len(c.name) for c in cases]), 10] + [11] * len(libs)
                  + [9] * len(others) + [11])
        fmt_row = lambda cells: "  ".join(  # noqa: E731
            (c.ljust(w) if i < 2 else c.rjust(w)) for i, (c, w) in enumerate(zip(cells, widths)))
        print(fmt_row(cols), file=out)
        print("  ".join("-" * w for w in widths), file=out)
        out.flush()

        records, problems, slower = [], [], {lib: [] for lib in others}
        for case in cases:
            res = pool.time_case(case, settings["rounds"], settings["budget"], settings["warmup"])
            cells = [case.name, case.size]
            for lib in libs:
                r = res[lib]
                if r.get("ok"):
                    cells.append(_fmt_time(r["seconds"]))
                else:
                    cells.append("n/a" if r.get("kind") == "skip" else "FAIL")
                    if r.get("kind") != "skip":
                        problems.append(r.get("error", "?"))
            base = res["fastnn"]
            for lib in others:
                r = res[lib]
                if base.get("ok") and r.get("ok"):
                    ratio = r["seconds"] / base["seconds"]
                    cells.append(_fmt_ratio(ratio))
                    if ratio < 1.0:
                        slower[lib].append(f"{case.id} ({_fmt_ratio(ratio)})")
                else:
                    cells.append("-")
            cells.append(f"{base['bytes'] / base['seconds'] / 1e9:.1f}" if base.get("ok") else "-")
            print(fmt_row(cells), file=out)
            out.flush()
            records.append(_record(case, res, libs))

    notes = sorted({c.op.note for c in cases if c.op.note})
    if notes:
        print("", file=out)
        for note in notes:
            print(f"note: {note}", file=out)
    chosen = sorted({(r["case"], lib, t["formulation"]) for r in records
                     for lib, t in r["times"].items() if t.get("formulation")})
    if chosen:
        print("formulations picked (fastest of several):", file=out)
        for case_id, lib, form in chosen:
            print(f"  {case_id:<40} {lib:<6} {form}", file=out)
    for lib, items in slower.items():
        print(f"fastnn slower than {lib}: {', '.join(items) if items else 'none'}", file=out)
    stall1, elapsed = bench.cpu_stall_total(), time.monotonic() - t0
    during = None
    if stall0 is not None and stall1 is not None and elapsed > 0:
        during = 100.0 * (stall1 - stall0) / 1e6 / elapsed
        print(f"CPU pressure during the run: {during:.1f}% (wall time {elapsed:.0f} s)", file=out)
        if during > 5:
            print(f"warning: CPU pressure averaged {during:.1f}% during the run; timings of "
                  f"multi-threaded code are unreliable under contention", file=sys.stderr)
    for msg in problems:
        print(f"error: {msg}", file=sys.stderr)

    if args.json:
        doc = {"machine": bench.cpu_model(), "threads": args.threads, "settings": settings,
               "cpu_pressure_avg10_before": pressure, "cpu_pressure_during": during,
               "wall_s": elapsed, "info": pool.info, "cases": records}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {args.json}", file=out)
    return 1 if problems else 0


def _header(pool, threads, settings, pressure):
    from fastnn import _C
    info = pool.info.get("fastnn", {})
    versions = [f"Python {platform.python_version()}", f"NumPy {info.get('numpy', '?')}"]
    if "torch" in pool.info:
        versions.append(f"torch {pool.info['torch'].get('torch', '?')}")
    lines = [
        f"fastnn bench: median per-call time; each library in its own process, "
        f"median of {settings['rounds']} rounds",
        f"machine:  {bench.cpu_model()} ({os.cpu_count()} logical CPUs), {platform.system()} "
        f"{platform.machine()}"
        + (f", CPU pressure avg10 {pressure:.2f}%" if pressure is not None else ""),
        f"threads:  {threads} (fastnn" + (", torch" if "torch" in pool.info else "")
        + ", BLAS); NumPy element-wise ops are single-threaded",
        f"fastnn:   {info.get('fastnn', '?')}, ISA path {info.get('isa', _C.active_isa())}, "
        f"OpenMP {'yes' if info.get('openmp') else 'no'}",
        f"versions: {', '.join(versions)}",
        "",
    ]
    return lines


def _record(case, res, libs):
    times = {}
    for lib in libs:
        r = res[lib]
        if r.get("ok"):
            times[lib] = {"median_s": r["seconds"], "rounds_s": r["rounds"],
                          "gb_per_s": r["bytes"] / r["seconds"] / 1e9,
                          "elements_per_s": case.elements / r["seconds"],
                          "formulation": r.get("formulation", "")}
        else:
            times[lib] = {"error": r.get("error"), "kind": r.get("kind")}
    rec = {"case": case.id, "op": case.name, "size": case.size, "shape": list(case.shape),
           "elements": case.elements, "times": times}
    base = times.get("fastnn", {})
    for lib in libs:
        if lib != "fastnn" and "median_s" in base and "median_s" in times[lib]:
            rec[f"speedup_vs_{lib}"] = times[lib]["median_s"] / base["median_s"]
    return rec


# --------------------------------------------------------------------------- #
# entry point
# --------------------------------------------------------------------------- #

SUBCOMMANDS = [_add_bench]


def build_parser():
    from fastnn import __version__
    parser = argparse.ArgumentParser(prog="fastnn", description="fastnn command-line tools")
    parser.add_argument("--version", action="version", version=f"fastnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv=None) -> int:
    """Run the fastnn command with `argv` (default sys.argv[1:]); returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
