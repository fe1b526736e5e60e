"""``fastnn bench``: its options, the run (cases, worker pool, FMA peak) and the
printed tables and JSON report. The CLI's bench command calls add_arguments()
and run(); ``python -m fastnn.bench`` calls main()."""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

from .cases_elementwise import DEFAULT_SIZES, OP_NAMES, build_cases
from .cases_gemm import GEMM_OP_NAMES, build_gemm_cases
from .cases_cnn import CNN_OP_NAMES, build_cnn_cases
from .cases_rnn import RNN_OP_NAMES, build_rnn_cases
from .cases_transformer import TRANSFORMER_OP_NAMES, build_transformer_cases
from .cases_conv import CONV_LAYER_OP_NAMES, build_conv_layer_cases
from .cases_mlp import MLP_OP_NAMES, build_mlp_cases
from .core import DEFAULT_THREADS, FULL, LIBS, QUICK, parse_size
from .machine import cpu_model, cpu_pressure, cpu_stall_total, cpu_steal_ticks
from .workers import WorkerPool

SUITES = ("elementwise", "gemm", "mlp", "cnn", "rnn", "transformer", "all")


def _csv(text):
    return [t.strip() for t in text.split(",") if t.strip()]


DESCRIPTION = ("Time each op in fastnn, NumPy and PyTorch (each library in its own worker "
               "process, asked in alternating order over several rounds) and print the "
               "per-case median time and fastnn's speed-up; GEMM cases print GFLOP/s and "
               "fastnn's share of the measured FMA peak; MLP and CNN cases print the time "
               "per training step and samples/s. Results are checked against "
               "fastnn's before timing.")


def add_arguments(p) -> None:
    """Declare the bench options on the argparse parser p."""
    p.add_argument("--suite", choices=SUITES, default="all",
                   help="element-wise/softmax/loss ops, GEMM (matmul, linear), MLP training "
                        "steps, CNN training steps and inference, or all of them "
                        "(default %(default)s)")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS,
                   help="threads for fastnn, torch and BLAS (default %(default)s)")
    p.add_argument("--sizes", default=None,
                   help="element counts for the element-wise ops, e.g. 1M,16M (the default); "
                        "softmax / cross_entropy (4096x1000) and mse / BCE (1M) are fixed")
    p.add_argument("--ops", default=None,
                   help="comma-separated ops (default: all): " + ",".join(OP_NAMES)
                        + "; GEMM: " + ",".join(GEMM_OP_NAMES)
                        + "; MLP: " + ",".join(MLP_OP_NAMES)
                        + "; CNN: " + ",".join(CNN_OP_NAMES + CONV_LAYER_OP_NAMES))
    p.add_argument("--libs", default=",".join(LIBS),
                   help="libraries to time (default %(default)s; torch is skipped if missing)")
    p.add_argument("--quick", action="store_true",
                   help="1M sizes only, no 2048^3 GEMM, fewer and shorter rounds "
                        "(well under a minute)")
    p.add_argument("--rounds", type=int, default=None,
                   help=f"rounds per case (default {FULL['rounds']}, "
                        f"{QUICK['rounds']} with --quick)")
    p.add_argument("--json", metavar="PATH", default=None, help="also write the results as JSON")


def main(argv=None, prog: str = "fastnn bench") -> int:
    """Parse the bench options from argv (default sys.argv[1:]) and run; the exit code."""
    parser = argparse.ArgumentParser(prog=prog, description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _fmt_time(seconds):
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


def _fmt_ratio(r):
    return f"x{r:.1f}" if r >= 10 else f"x{r:.2f}" if r >= 0.01 else f"x{r:.2g}"


def _select_cases(args, sizes):
    """(element-wise, GEMM, MLP, CNN, conv-layer, RNN and transformer cases) for --suite /
    --ops / --quick."""
    ops = _csv(args.ops) if args.ops else None
    want_ew = args.suite in ("elementwise", "all")
    want_gemm = args.suite in ("gemm", "all")
    want_mlp = args.suite in ("mlp", "all")
    want_cnn = args.suite in ("cnn", "all")
    want_rnn = args.suite in ("rnn", "all")
    want_tr = args.suite in ("transformer", "all")
    if ops is not None:
        known = ((OP_NAMES if want_ew else ()) + (GEMM_OP_NAMES if want_gemm else ())
                 + (MLP_OP_NAMES if want_mlp else ())
                 + (CNN_OP_NAMES + CONV_LAYER_OP_NAMES if want_cnn else ())
                 + (RNN_OP_NAMES if want_rnn else ())
                 + (TRANSFORMER_OP_NAMES if want_tr else ()))
        unknown = [o for o in ops if o not in known]
        if unknown or not ops:
            raise ValueError(f"unknown op(s) {', '.join(unknown) or '(none)'} for --suite "
                             f"{args.suite}; choose from {', '.join(known)}")
    ew_ops = None if ops is None else [o for o in ops if o in OP_NAMES]
    gemm_ops = None if ops is None else [o for o in ops if o in GEMM_OP_NAMES]
    mlp_ops = None if ops is None else [o for o in ops if o in MLP_OP_NAMES]
    ew = build_cases(sizes, ew_ops) if want_ew and ew_ops != [] else []
    gemm = (build_gemm_cases(gemm_ops, quick=args.quick)
            if want_gemm and gemm_ops != [] else [])
    cnn_ops = None if ops is None else [o for o in ops if o in CNN_OP_NAMES]
    layer_ops = None if ops is None else [o for o in ops if o in CONV_LAYER_OP_NAMES]
    mlp = build_mlp_cases(mlp_ops) if want_mlp and mlp_ops != [] else []
    cnn = build_cnn_cases(cnn_ops) if want_cnn and cnn_ops != [] else []
    layers = build_conv_layer_cases(layer_ops) if want_cnn and layer_ops != [] else []
    rnn_ops = None if ops is None else [o for o in ops if o in RNN_OP_NAMES]
    rnn = build_rnn_cases(rnn_ops) if want_rnn and rnn_ops != [] else []
    tr_ops = None if ops is None else [o for o in ops if o in TRANSFORMER_OP_NAMES]
    tr = build_transformer_cases(tr_ops) if want_tr and tr_ops != [] else []
    return ew, gemm, mlp, cnn, layers, rnn, tr


class _Table:
    """Column layout and per-case cells of one printed table."""

    def __init__(self, cols, widths, cells):
        self.cols, self.widths, self.cells = cols, widths, cells

    def row(self, cells):
        return "  ".join((c.ljust(w) if i < 2 else c.rjust(w))
                         for i, (c, w) in enumerate(zip(cells, self.widths)))

    def rule(self):
        return "  ".join("-" * w for w in self.widths)


def _status(r):
    return "n/a" if r.get("kind") == "skip" else "FAIL"


def _per_lib(res, libs, fmt):
    """A cell per library: fmt(its result), or n/a / FAIL."""
    return [fmt(res[lib]) if res[lib].get("ok") else _status(res[lib]) for lib in libs]


def _step_time(r):
    return _fmt_time(r["seconds"])


def _elementwise_table(cases, libs, others):
    def cells(case, res):
        out = [case.name, case.size] + _per_lib(res, libs, _step_time) + _ratios(res, others)
        base = res["fastnn"]
        out.append(f"{base['bytes'] / base['seconds'] / 1e9:.1f}" if base.get("ok") else "-")
        return out
    cols = ["case", "size"] + libs + [f"vs {lib}" for lib in others] + ["fastnn GB/s"]
    widths = ([max([4] + [len(c.name) for c in cases]), 10] + [11] * len(libs)
              + [9] * len(others) + [11])
    return _Table(cols, widths, cells)


def _gflops(r):
    return r["flops"] / r["seconds"] / 1e9


def _fmt_gflops(g):  # also used for % peak
    return f"{g:.1f}" if g >= 10 else f"{g:.2f}" if g >= 0.1 else f"{g:.2g}"


def _gemm_table(cases, libs, others, peak):
    def cells(case, res):
        out = [case.name, case.shape_text] + _per_lib(res, libs, lambda r: _fmt_gflops(_gflops(r)))
        out += _ratios(res, others)
        base = res["fastnn"]
        out.append(_fmt_gflops(100.0 * _gflops(base) / peak["gflops"])
                   if base.get("ok") and peak else "-")
        return out
    cols = (["case", "shape"] + [f"{lib} GFLOP/s" for lib in libs]
            + [f"vs {lib}" for lib in others] + ["fastnn % peak"])
    widths = ([max([4] + [len(c.name) for c in cases]),
               max([5] + [len(c.shape_text) for c in cases])]
              + [max(9, len(c)) for c in cols[2:]])
    return _Table(cols, widths, cells)


def _fmt_rate(r):
    return f"{r:,.0f}" if r >= 100 else f"{r:.3g}"


def _mlp_table(cases, libs, others):
    def cells(case, res):
        out = [case.name, case.size] + _per_lib(res, libs, _step_time) + _ratios(res, others)
        out += [_fmt_rate(case.batch / res[lib]["seconds"]) if res[lib].get("ok") else "-"
                for lib in libs]
        return out
    unit = getattr(cases[0], "unit", "samples") if cases else "samples"
    cols = (["case", "batch"] + [f"{lib} step" for lib in libs] + [f"vs {lib}" for lib in others]
            + [f"{lib} {unit}/s" for lib in libs])
    widths = ([max([4] + [len(c.name) for c in cases]), 5]
              + [max(11, len(c)) for c in cols[2:]])
    return _Table(cols, widths, cells)


def _mlp_caption(cases):
    models = {}
    for c in cases:
        models.setdefault(c.name, c.shape_text)
    suite = getattr(cases[0], "suite", "") if cases else ""
    if suite == "transformer":
        return ("Transformer: median time per call (a training step: forward, loss, backward, "
                "optimizer step, zero_grad; attention: forward + backward; generate: every "
                "token), tokens per second\n"
                + "\n".join(f"  {c.name}: {c.shape_text}" for c in cases))
    kind = {"cnn": "CNN", "rnn": "RNN"}.get(suite, "MLP")
    return (f"{kind} training: median time per step (forward, cross-entropy, backward, optimizer "
            "step, zero_grad; an inference case: one forward)\n"
            + "\n".join(f"  {name}: {text}" for name, text in models.items()))


def _overhead_line(case, res, libs):
    """The per-layer cost line for the overhead case."""
    parts = [f"{lib} {_fmt_time(res[lib]['seconds'] / case.layers)}" for lib in libs
             if res[lib].get("ok")]
    return (f"overhead per layer per training step (step time / {case.layers} layers, a layer "
            f"being a Linear and its ReLU): " + ", ".join(parts))


def _ratios(res, others):
    """fastnn's speed-up over each other library (its time / fastnn's)."""
    base = res["fastnn"]
    return [_fmt_ratio(res[lib]["seconds"] / base["seconds"])
            if base.get("ok") and res[lib].get("ok") else "-" for lib in others]


def run(args) -> int:
    """Run the benchmark the parsed options ask for and print its tables; the exit code."""
    settings = dict(QUICK if args.quick else FULL)
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
            sizes = [parse_size(s) for s in _csv(args.sizes)]
        else:
            sizes = list(DEFAULT_SIZES)
        ew_cases, gemm_cases, mlp_cases, cnn_cases, layer_cases, rnn_cases, tr_cases = \
            _select_cases(args, sizes)
    except ValueError as e:
        print(f"fastnn bench: {e}", file=sys.stderr)
        return 2
    libs = _csv(args.libs)
    bad = [lib for lib in libs if lib not in LIBS]
    if bad or not libs:
        print(f"fastnn bench: unknown library {', '.join(bad) or '(none)'}; choose from "
              f"{', '.join(LIBS)}", file=sys.stderr)
        return 2
    if "fastnn" not in libs:
        libs.insert(0, "fastnn")  # speed-ups are relative to it
    libs = [lib for lib in LIBS if lib in libs]

    pressure = cpu_pressure()
    if pressure is not None and pressure > 5:
        print(f"warning: CPU pressure is high (/proc/pressure/cpu some avg10={pressure:.2f}); "
              f"other processes compete for the CPU and timings will be noisy", file=sys.stderr)

    out = sys.stdout
    stall0, steal0, t0 = cpu_stall_total(), cpu_steal_ticks(), time.monotonic()
    peak = None
    records, problems = [], []
    with WorkerPool(libs, args.threads, sizes) as pool:
        for lib, reason in pool.start().items():
            print(f"note: {lib} skipped: {reason}", file=sys.stderr)
        if "fastnn" not in pool.libs:
            print("fastnn bench: the fastnn worker did not start", file=sys.stderr)
            return 1
        libs = pool.libs
        others = [lib for lib in libs if lib != "fastnn"]
        slower = {lib: [] for lib in others}
        if gemm_cases or layer_cases:
            peak = pool.fma_peak(settings["peak_seconds"], settings["peak_repeats"])
            if peak is None:
                print("warning: the FMA peak probe failed; no % peak column", file=sys.stderr)
        print("\n".join(_header(pool, args.threads, settings, pressure, peak)), file=out)
        tables = []
        if ew_cases:
            tables.append((ew_cases, _elementwise_table(ew_cases, libs, others), None))
        if gemm_cases:
            caption = ("GEMM: GFLOP/s = 2*M*N*K*batch / median time; "
                       "% peak = fastnn GFLOP/s / FMA peak")
            tables.append((gemm_cases, _gemm_table(gemm_cases, libs, others, peak), caption))
        for step_cases in (mlp_cases, cnn_cases, rnn_cases, tr_cases):
            if step_cases:
                tables.append((step_cases, _mlp_table(step_cases, libs, others),
                               _mlp_caption(step_cases)))
        if layer_cases:
            caption = ("CNN layers (Conv2d, stride 1): GFLOP/s = 2*N*O*OH*OW*C*KH*KW / median "
                       "time, the same for forward, input_grad (dx) and weight_grad (dW, db); "
                       "% peak = fastnn GFLOP/s / FMA peak")
            tables.append((layer_cases, _gemm_table(layer_cases, libs, others, peak), caption))
        overhead = []
        for i, (cases, table, caption) in enumerate(tables):
            if i:
                print("", file=out)
            if caption:
                print(caption, file=out)
            print(table.row(table.cols), file=out)
            print(table.rule(), file=out)
            out.flush()
            for case in cases:
                res = pool.time_case(case, settings["rounds"], settings["budget"],
                                     settings["warmup"])
                problems += [r.get("error", "?") for r in res.values()
                             if not r.get("ok") and r.get("kind") != "skip"]
                base = res["fastnn"]
                for lib in others:
                    if base.get("ok") and res[lib].get("ok"):
                        ratio = res[lib]["seconds"] / base["seconds"]
                        if ratio < 1.0:
                            slower[lib].append(f"{case.id} ({_fmt_ratio(ratio)})")
                print(table.row(table.cells(case, res)), file=out)
                out.flush()
                records.append(_record(case, res, libs, peak))
                if case.name == "overhead" and getattr(case, "suite", "") == "mlp":
                    overhead.append(_overhead_line(case, res, libs))
        for line in overhead:
            print(line, file=out)

    cases = ew_cases + gemm_cases + mlp_cases + cnn_cases + layer_cases + rnn_cases + tr_cases
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
    stall1, steal1, elapsed = cpu_stall_total(), cpu_steal_ticks(), time.monotonic() - t0
    during = stolen = None
    if steal0 is not None and steal1 is not None and steal1[1] > steal0[1]:
        stolen = 100.0 * (steal1[0] - steal0[0]) / (steal1[1] - steal0[1])
        print(f"CPU time stolen by the hypervisor during the run: {stolen:.1f}%", file=out)
        if stolen > 3:
            print(f"warning: {stolen:.1f}% of the CPU time went to other guests of the "
                  f"host; timings are unreliable, rerun when it is quiet", file=sys.stderr)
    if stall0 is not None and stall1 is not None and elapsed > 0:
        during = 100.0 * (stall1 - stall0) / 1e6 / elapsed
        print(f"CPU pressure during the run: {during:.1f}% (wall time {elapsed:.0f} s)", file=out)
        if during > 5:
            print(f"warning: CPU pressure averaged {during:.1f}% during the run; timings of "
                  f"multi-threaded code are unreliable under contention", file=sys.stderr)
    for msg in problems:
        print(f"error: {msg}", file=sys.stderr)

    if args.json:
        doc = {"machine": cpu_model(), "threads": args.threads, "suite": args.suite,
               "settings": settings, "cpu_pressure_avg10_before": pressure,
               "cpu_pressure_during": during, "cpu_steal_during": stolen, "wall_s": elapsed,
               "info": pool.info,
               "fma_peak": peak, "cases": records}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {args.json}", file=out)
    return 1 if problems else 0


def _header(pool, threads, settings, pressure, peak=None):
    from fastnn._config import runtime_info
    info = pool.info.get("fastnn", {})
    versions = [f"Python {platform.python_version()}", f"NumPy {info.get('numpy', '?')}"]
    if "torch" in pool.info:
        versions.append(f"torch {pool.info['torch'].get('torch', '?')}")
    lines = [
        f"fastnn bench: median per-call time; each library in its own process, "
        f"median of {settings['rounds']} rounds",
        f"machine:  {cpu_model()} ({os.cpu_count()} logical CPUs), {platform.system()} "
        f"{platform.machine()}"
        + (f", CPU pressure avg10 {pressure:.2f}%" if pressure is not None else ""),
        f"threads:  {threads} (fastnn" + (", torch" if "torch" in pool.info else "")
        + ", BLAS); NumPy element-wise ops are single-threaded",
        f"fastnn:   {info.get('fastnn', '?')}, "
        f"ISA path {info.get('isa') or runtime_info()['isa']}, "
        f"own thread pool (idle spin {info.get('spin_iterations', '?')} pauses)",
        f"versions: {', '.join(versions)}",
    ]
    if peak is not None:
        blocking = info.get("gemm_blocking")
        lines.append(
            f"FMA peak: {peak['gflops']:.1f} GFLOP/s on {peak['threads']} threads "
            f"(fastnn._config.fma_probe, best of {settings['peak_repeats']} x "
            f"{peak['seconds']:.2f} s)"
            + (", GEMM blocking MR,NR,KC,MC,NC = " + ",".join(map(str, blocking))
               if blocking else ""))
    if "numpy" in pool.info:
        np_info = pool.info["numpy"]
        blas_threads = np_info.get("blas_threads")
        lines.append(f"BLAS:     NumPy uses {np_info.get('blas', '?')}, "
                     f"{blas_threads if blas_threads is not None else '?'} threads"
                     + ("" if blas_threads in (None, threads) else
                        f" (asked for {threads}: timings are not comparable)"))
    lines.append("")
    return lines


def _record(case, res, libs, peak=None):
    times = {}
    for lib in libs:
        r = res[lib]
        if r.get("ok"):
            times[lib] = {"median_s": r["seconds"], "rounds_s": r["rounds"],
                          "gb_per_s": r["bytes"] / r["seconds"] / 1e9,
                          "elements_per_s": case.elements / r["seconds"],
                          "formulation": r.get("formulation", "")}
            if case.flops:
                times[lib]["gflops"] = _gflops(r)
        else:
            times[lib] = {"error": r.get("error"), "kind": r.get("kind")}
    rec = {"case": case.id, "op": case.name, "size": case.size, "shape": list(case.shape),
           "elements": case.elements, "times": times}
    if getattr(case, "suite", "") in ("mlp", "cnn", "rnn", "transformer"):
        rec.update(suite=case.suite, model=case.shape_text, batch=case.batch, layers=case.layers)
        for lib, t in times.items():
            if "median_s" in t:
                t[f"{getattr(case, 'unit', 'samples')}_per_s"] = case.batch / t["median_s"]
                if case.name == "overhead":
                    t["per_layer_s"] = t["median_s"] / case.layers
    elif case.flops:
        if getattr(case.shape, "_fields", None):  # a conv layer: its named dimensions
            rec.update(suite="cnn_layers", shape_text=case.shape_text, flops=case.flops,
                       layer=case.shape._asdict())
        else:
            batch, m, n, k = case.shape
            rec.update(suite="gemm", shape_text=case.shape_text, batch=batch, m=m, n=n, k=k,
                       flops=case.flops)
        if peak and "gflops" in times.get("fastnn", {}):
            rec["fastnn_pct_peak"] = 100.0 * times["fastnn"]["gflops"] / peak["gflops"]
    else:
        rec["suite"] = "elementwise"
    base = times.get("fastnn", {})
    for lib in libs:
        if lib != "fastnn" and "median_s" in base and "median_s" in times[lib]:
            rec[f"speedup_vs_{lib}"] = times[lib]["median_s"] / base["median_s"]
    return rec
