"""The ``fastnn`` command.

    fastnn demo  [--dataset digits|mnist] [--epochs N] [--batch-size B] [--threads N]
    fastnn bench [--suite elementwise|gemm|mlp|cnn|rnn|transformer|all] [--threads N]
                 [--sizes 1M,16M]
                 [--ops relu,gelu,square,...] [--libs fastnn,numpy,torch] [--quick]
                 [--rounds R] [--json PATH]

Each subcommand is a pair of functions: ``_add_<name>(subparsers)`` declares
its arguments and ``_run_<name>(args) -> exit code`` runs it; register new
ones in ``SUBCOMMANDS``. The bench command's options, run and report are in
fastnn.bench.report (the benchmark tool is not part of the library: only this
command imports it).
"""
from __future__ import annotations

import argparse
import sys

from fastnn import demo


# --------------------------------------------------------------------------- #
# bench: the tool lives in fastnn.bench (beside the product, imported only here)
# --------------------------------------------------------------------------- #

def _add_bench(sub):
    from fastnn.bench import report
    p = sub.add_parser("bench", help="time fastnn against NumPy and PyTorch",
                       description=report.DESCRIPTION)
    report.add_arguments(p)
    p.set_defaults(func=_run_bench)


def _run_bench(args) -> int:
    from fastnn.bench import report
    return report.run(args)


# --------------------------------------------------------------------------- #
# entry point
# --------------------------------------------------------------------------- #

SUBCOMMANDS = [_add_bench, demo.add_subcommand]


def build_parser():
    from fastnn._config import __version__
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
