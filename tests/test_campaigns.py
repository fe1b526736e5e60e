"""Short seeded slices of the hardening campaigns (docs/hardening.md), and proof that
each campaign catches what it is there to catch.

- tools/fuzz_campaign.py: a few seconds of the full mix (ops, gemm, valid calls with
  float64 references, nn, optim) must pass; a planted wrong result, a planted
  exception, a planted crash and a planted hang must each be reported, naming the call.
- tools/longrun.py: a slice of the three phases must pass; a planted leak (arrays, or
  Python objects) must fail it.
(tools/sanitize.sh needs its own build: .ci/run runs it. It runs this file too, where the
planted bugs and leaks are skipped: the alignment reports of finding F1 end the fuzz children
before a planted call, and ASan's quarantine makes RSS grow by design.)
"""
import json
import os
import subprocess
import sys

import pytest

SANITIZED = pytest.mark.skipif(bool(os.environ.get("FASTNN_SANITIZED")),
                               reason="under tools/sanitize.sh (see the module docstring)")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FUZZ = os.path.join(ROOT, "tools", "fuzz_campaign.py")
LONGRUN = os.path.join(ROOT, "tools", "longrun.py")


def run(args, env=None, timeout=180):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})), cwd=ROOT)


def test_fuzz_campaign_slice_passes(tmp_path):
    out = tmp_path / "findings.json"
    proc = run([FUZZ, "--seconds", "4", "--seed", "1", "--calls", "250", "--json", str(out)])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert proc.stdout.rstrip().endswith("fuzz campaign: ok")
    doc = json.loads(out.read_text())
    assert doc["calls"] >= 250 and doc["batches"] >= 1 and doc["findings"] == []


@SANITIZED
@pytest.mark.parametrize("plant, status", [
    ("wrong:relu", "finding"),      # a result 1e-3 off: the float64 reference sees it
    ("raise:softmax", "finding"),   # a RuntimeError: not an allowed exception
    ("crash:sigmoid", "crashed"),   # SIGABRT: the verbose rerun names the call
    ("hang:tanh", "hung"),          # the per-call watchdog
])
def test_fuzz_campaign_catches_a_planted_bug(tmp_path, plant, status):
    name = plant.split(":")[1]
    out = tmp_path / "findings.json"
    proc = run([FUZZ, "--seconds", "1", "--seed", "3", "--calls", "200", "--families", "valid",
                "--timeout", "60", "--json", str(out)],
               env={"FASTNN_CAMPAIGN_PLANT": plant, "FASTNN_FUZZ_CALL_TIMEOUT": "1.5"})
    assert proc.returncode == 1, proc.stdout[-4000:]
    assert proc.stdout.rstrip().endswith("fuzz campaign: FAILED")
    doc = json.loads(out.read_text())
    if status == "finding":
        assert any(f["fn"].startswith(name) for f in doc["findings"]), doc["findings"]
        f = next(f for f in doc["findings"] if f["fn"].startswith(name))
        # the replay makes that one call again, and fails on it again
        again = run([FUZZ, "--families", "valid", "--replay", f["replay"]],
                    env={"FASTNN_CAMPAIGN_PLANT": plant})
        assert again.returncode == 1 and f"#{f['index']} " in again.stderr
    else:
        # (each batch of the time bound meets the planted call: one or more of them)
        assert doc["problems"] and {p["status"] for p in doc["problems"]} == {status}, \
            doc["problems"]
        assert any(f" {name}[valid](" in c for c in doc["problems"][0]["last_calls"]), \
            doc["problems"][0]["last_calls"]


def test_longrun_slice_passes():
    seconds = "30" if os.environ.get("FASTNN_SANITIZED") else "8"  # ASan: ~5x slower
    proc = run([LONGRUN, "--seconds", seconds, "--steps", "600", "--cycles", "10",
                "--bad-calls", "2000", "--threads", "1"])
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("longrun: ok")
    for phase, count in [("train", 600), ("saveload", 10), ("badcalls", 2000)]:
        assert any(ln.startswith(f"{phase}: {count} of {count} ") for ln in lines), proc.stdout


@SANITIZED
@pytest.mark.parametrize("leak, message", [("rss", "RSS grew"),
                                           ("python", "Python allocations grew")])
def test_longrun_catches_a_planted_leak(leak, message):
    proc = run([LONGRUN, "--seconds", "20", "--phases", "badcalls", "--bad-calls", "1500",
                "--threads", "1", "--plant-leak", leak])
    assert proc.returncode == 1, proc.stdout[-4000:]
    assert "longrun: FAILED" in proc.stdout and message in proc.stdout, proc.stdout[-4000:]
