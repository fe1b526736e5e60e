"""ISA dispatch: FASTNN_ISA forces a path, forcing one the CPU lacks is a
clear error at import, and show_config() reports what runs."""
import io
import os
import subprocess
import sys

import pytest

import fastnn
from fastnn import _C


def run_python(code, **env):
    full_env = dict(os.environ, **env)
    full_env.pop("FASTNN_ISA", None) if "FASTNN_ISA" not in env else None
    return subprocess.run([sys.executable, "-c", code], env=full_env, capture_output=True,
                          text=True, timeout=120)


def test_default_is_the_best_path():
    r = run_python("from fastnn import _C; print(_C.active_isa(), _C.best_isa())")
    active, best = r.stdout.split()
    assert active == best


@pytest.mark.parametrize("name", _C.ISA_NAMES)
def test_forcing_a_path(name):
    r = run_python("from fastnn import _C; print(_C.active_isa())", FASTNN_ISA=name)
    if _C.ISA_NAMES.index(name) <= _C.ISA_NAMES.index(_C.best_isa()):
        assert r.returncode == 0 and r.stdout.strip() == name
    else:
        assert r.returncode != 0 and "is not available" in r.stderr


def test_unknown_path_is_a_clear_error():
    r = run_python("import fastnn", FASTNN_ISA="sse9")
    assert r.returncode != 0 and "FASTNN_ISA must be one of generic, avx2, avx512" in r.stderr


def test_show_config_names_everything():
    buf = io.StringIO()
    fastnn.show_config(file=buf)
    text = buf.getvalue()
    for word in (fastnn.__version__, "ISA path", _C.active_isa(), "threads", "thread pool", "denormals",
                 "compiler", "flags"):
        assert word in text
    assert "unknown" not in text.split("compiler:")[1].splitlines()[0]


def test_version_is_a_string():
    assert isinstance(fastnn.__version__, str) and fastnn.__version__[0].isdigit()
