"""The `fastnn` command: `fastnn bench` runs and prints its table; the console
script is installed next to this Python."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fastnn import bench, cli


def _console_script():
    bindir = Path(sys.executable).parent
    for name in ("fastnn", "fastnn.exe"):
        if (bindir / name).exists():
            return str(bindir / name)
    return shutil.which("fastnn")


def test_bench_quick_prints_table_for_both_libs(capsys):
    code = cli.main(["bench", "--quick", "--ops", "relu", "--libs", "fastnn,numpy"])
    out = capsys.readouterr().out
    assert code == 0, out
    header = next(line for line in out.splitlines() if line.startswith("case "))
    for column in ("fastnn", "numpy", "vs numpy", "fastnn GB/s"):
        assert column in header
    assert "torch" not in header
    rows = [line.split() for line in out.splitlines() if line.startswith("relu ")]
    assert len(rows) == 1                       # --quick: the 1M size only
    row = rows[0]
    assert row[1] == "1M"
    assert row[2 + 1] in ("us", "ms") and row[4 + 1] in ("us", "ms")   # two timings
    assert row[6].startswith("x") and float(row[6][1:]) > 0          # speed-up vs numpy
    assert "threads:  2" in out and "ISA path" in out


def test_bench_json_output(tmp_path):
    path = tmp_path / "bench.json"
    code = cli.main(["bench", "--quick", "--rounds", "1", "--ops", "mse_loss",
                     "--libs", "numpy", "--json", str(path)])
    assert code == 0
    import json
    doc = json.loads(path.read_text())
    (case,) = doc["cases"]
    assert case["case"] == "mse_loss/1M"
    assert set(case["times"]) == {"fastnn", "numpy"}   # fastnn is always included
    assert case["times"]["fastnn"]["median_s"] > 0 and case["speedup_vs_numpy"] > 0
    if bench.cpu_steal_ticks() is not None:   # Linux: the run's stolen share is recorded
        assert 0.0 <= doc["cpu_steal_during"] <= 100.0


def test_cpu_steal_ticks_reads_proc_stat(tmp_path, monkeypatch):
    import builtins
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 50 800 10 0 5 30 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open",
                        lambda path, *a, **k: real_open(stat if path == "/proc/stat" else path,
                                                        *a, **k))
    assert bench.cpu_steal_ticks() == (30, 1000)   # steal, user..steal
    stat.write_text("intr 1 2\n")
    assert bench.cpu_steal_ticks() is None


@pytest.mark.parametrize("argv", [["bench", "--ops", "nope"], ["bench", "--libs", "jax"],
                                  ["bench", "--sizes", "1Q"]])
def test_bench_rejects_bad_arguments(argv, capsys):
    assert cli.main(argv) == 2
    assert "fastnn bench:" in capsys.readouterr().err


def test_main_requires_a_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([])
    assert exc.value.code == 2


def test_size_parsing_round_trips():
    for n in (1 << 10, 1 << 20, 1 << 24, 1000):
        assert bench.parse_size(bench.format_size(n)) == n
    assert bench.parse_size("16M") == 1 << 24


def test_console_script_exists_and_bench_help_exits_0():
    script = _console_script()
    assert script is not None, f"no `fastnn` script next to {sys.executable} or on PATH"
    assert os.access(script, os.X_OK)
    proc = subprocess.run([script, "bench", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "--threads" in proc.stdout and "--quick" in proc.stdout
