"""The parent side of the subprocess fuzz tests (test_fuzz.py, test_gemm_fuzz.py):
run a child script that makes random bad calls and must exit normally."""
import subprocess
import sys

import pytest


def run_child(child, seed, calls, verbose=False):
    return subprocess.run([sys.executable, "-c", child, str(seed), str(calls), str(int(verbose))],
                          capture_output=True, text=True, timeout=300)


def assert_child_survives(child, seed, calls):
    """The child must exit 0 and report `calls` calls; a signal reruns it verbosely
    to show the last calls before the crash."""
    proc = run_child(child, seed, calls)
    if proc.returncode < 0:  # killed by a signal: rerun printing every call to find it
        again = run_child(child, seed, calls, verbose=True)
        last = again.stderr.strip().splitlines()[-40:]
        pytest.fail(f"child died with signal {-proc.returncode}; stderr:\n{proc.stderr[-4000:]}"
                    f"\nlast calls of a verbose rerun (rc {again.returncode}):\n" + "\n".join(last))
    assert proc.returncode == 0, f"child exited {proc.returncode}; stderr:\n{proc.stderr[-8000:]}"
    assert f"{calls} calls ok" in proc.stdout
