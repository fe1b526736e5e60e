"""Hostile files that once hung, slowed or crashed fastnn.load: metadata that made
the JSON depth check quadratic, duplicate keys, class names that cannot be built,
FIFOs and devices, and a few seconds of the mutation campaign (tools/hostile_files.py)."""
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import safetensors.numpy

import fastnn
from fastnn import nn, optim, serialization
from fastnn.nn.module import Module

ROOT = Path(__file__).resolve().parents[1]


def model_file(tmp_path, name="good.safetensors"):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    path = tmp_path / name
    fastnn.save(model, path)
    with safetensors.safe_open(str(path), framework="np") as f:
        meta = f.metadata()
    return model, path, meta


def raw_file(path, header_text, data=b""):
    text = header_text.encode()
    Path(path).write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


# ---- 1. linear time on hostile JSON -------------------------------------------------

def hostile_json(pattern, size):
    """JSON-ish text of about `size` characters that a backtracking string regex or a
    per-bracket rescan would take quadratic time over."""
    deep = "[" * 300  # past MAX_JSON_DEPTH's cheap bracket count, so the scan runs
    unit, head = {
        "escaped_quotes": ('\\"', '"'),                  # '"\"\"\"...' never terminated
        "deep_then_escaped_quotes": ('\\"', deep + '"'),
        "backslashes": ("\\\\", deep + '"'),
        "quote_bracket": ('"[', deep + '"\\'),
        "brackets": ("[", ""),
        "objects": ('{"a":', ""),
        "strings_in_deep_list": ('"x\\"",', deep),
        "many_keys": (None, "{"),
    }[pattern]
    if unit is None:  # distinct keys: the duplicate check must stay linear too
        body, n = [], 0
        while n < size:
            body.append(f'"k{len(body)}":1')
            n += len(body[-1]) + 1
        return head + ",".join(body) + "}"
    return head + unit * max(1, (size - len(head)) // len(unit))


PATTERNS = ["escaped_quotes", "deep_then_escaped_quotes", "backslashes", "quote_bracket",
            "brackets", "objects", "strings_in_deep_list", "many_keys"]

TIMING_CHILD = r"""
import json, sys, time, struct
sys.path.insert(0, sys.argv[3])
import numpy as np
import safetensors.numpy, fastnn
from test_hostile_files import hostile_json, PATTERNS
meta = json.loads(sys.argv[2])
folder = sys.argv[1]
out = {}


def timed_load(name, path):
    start = time.perf_counter()
    try:
        fastnn.load(path)
        kind = "returned"
    except ValueError as err:
        kind = "ValueError" if path in str(err) else "ValueError without the path"
    except BaseException as err:
        kind = type(err).__name__
    out[name] = [kind, time.perf_counter() - start]


for size in (64 << 10, 1 << 20):
    for pattern in PATTERNS:
        text = hostile_json(pattern, size)
        path = f"{folder}/{pattern}_{size}_metadata.safetensors"  # the architecture JSON
        safetensors.numpy.save_file({}, path, metadata={**meta, "architecture": text})
        timed_load(f"{pattern}/metadata/{size}", path)
        path = f"{folder}/{pattern}_{size}_header.safetensors"  # the safetensors header
        raw = text.encode()
        open(path, "wb").write(struct.pack("<Q", len(raw)) + raw)
        timed_load(f"{pattern}/header/{size}", path)
    path = f"{folder}/dotted_{size}.safetensors"  # a tensor "a.a.a...": quadratic prefixes
    safetensors.numpy.save_file({"a." * (size // 2): np.zeros(1, np.float32)}, path,
                                metadata=meta)
    timed_load(f"dotted_key/header/{size}", path)
print(json.dumps(out))
"""


def test_hostile_json_loads_in_linear_time(tmp_path):
    """64 KiB and 1 MiB of patterns that made the depth check's string regex
    quadratic (~5 s for 64 KiB), and a tensor key of many dots (whose prefixes the
    architecture check built as strings), are refused quickly; in a child, so that a
    regression fails by timeout instead of hanging the suite."""
    _, _, meta = model_file(tmp_path)
    proc = subprocess.run([sys.executable, "-c", TIMING_CHILD, str(tmp_path), json.dumps(meta),
                           str(Path(__file__).parent)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    times = json.loads(proc.stdout)
    assert {kind for kind, _ in times.values()} == {"ValueError"}, times
    cases = [(p, w) for p in PATTERNS for w in ("metadata", "header")] + [("dotted_key", "header")]
    for pattern, where in cases:
        small = times[f"{pattern}/{where}/{64 << 10}"][1]
        large = times[f"{pattern}/{where}/{1 << 20}"][1]
        assert large < 5.0, (pattern, where, large)
        assert large < 30 * small + 0.5, (pattern, where, small, large)  # 16x the size


# ---- 2. duplicate keys --------------------------------------------------------------

def test_duplicate_keys_are_refused(tmp_path):
    model, path, meta = model_file(tmp_path)
    lin = '{"class":"Linear","config":{"in_features":3,"out_features":4,"bias":true}}'
    bn = '{"class":"BatchNorm1d","config":{"num_features":4}}'
    archs = {
        "config_key": lin.replace('"bias":true', '"bias":true,"bias":false'),
        "class_key": lin.replace('{"class":"Linear"', '{"class":"Identity","class":"Linear"'),
    }
    tensors = model.state_dict()
    for case, leaf in archs.items():
        arch = '{"class":"Sequential","children":[["0",' + leaf + '],["1",' + bn + ']]}'
        json.loads(arch)  # plain json.loads takes it, keeping the last value
        target = tmp_path / f"{case}.safetensors"
        safetensors.numpy.save_file(tensors, str(target), metadata={**meta, "architecture": arch})
        with pytest.raises(ValueError, match="appears twice") as err:
            fastnn.load(target)
        assert str(target) in str(err.value)

    # in the safetensors header: a tensor named twice, a metadata entry named twice
    data = np.arange(4, dtype=np.float32).tobytes()
    entry = '{"dtype":"F32","shape":[4],"data_offsets":[0,16]}'
    twice = raw_file(tmp_path / "tensor_twice.safetensors",
                     '{"w":' + entry + ',"w":' + entry.replace("F32", "I32") + "}", data)
    with safetensors.safe_open(str(twice), framework="np") as f:
        assert list(f.keys()) == ["w"]  # safetensors itself keeps the last one silently
    meta_text = json.dumps({**meta, "architecture": "{}"})[:-1] + ',"content":"checkpoint"}'
    meta_twice = raw_file(tmp_path / "metadata_twice.safetensors",
                          '{"__metadata__":' + meta_text + ',"w":' + entry + "}", data)
    for target in (twice, meta_twice):
        for load in (fastnn.load, fastnn.load_state_dict,
                     lambda p: fastnn.load_checkpoint(p, model)):
            with pytest.raises(ValueError, match="appears twice") as err:
                load(target)
            assert str(target) in str(err.value)

    # in a checkpoint's optimizer metadata
    opt = optim.SGD(model.parameters(), lr=0.1)
    ck = tmp_path / "ck.safetensors"
    fastnn.save_checkpoint(ck, model, opt)
    with safetensors.safe_open(str(ck), framework="np") as f:
        ck_meta, ck_tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    ck_meta["optimizer"] = ck_meta["optimizer"].replace('"lr":0.1', '"lr":0.1,"lr":10.0')
    safetensors.numpy.save_file(ck_tensors, str(ck), metadata=ck_meta)
    with pytest.raises(ValueError, match="'lr' appears twice"):
        fastnn.load_checkpoint(ck, model, optim.SGD(model.parameters(), lr=0.1))


# ---- 3. classes that are known but cannot be built ----------------------------------

def test_every_known_class_loads_or_raises_value_error(tmp_path, monkeypatch):
    """Every name fastnn.load looks up, alone and as a child, with empty, default and
    ill-typed configs: a Module or ValueError, never NotImplementedError & co."""
    _, _, meta = model_file(tmp_path)

    class NoConfig(Module):  # a class in the lookup that does not describe itself
        def forward(self, x):
            return x

    class BadEcho(nn.Identity):  # its get_config() fails once built
        def get_config(self):
            raise NotImplementedError("no config")

    known = dict(serialization.registry.builtins())
    monkeypatch.setattr(serialization.registry, "builtins",
                        lambda: {**known, "NoConfig": NoConfig, "BadEcho": BadEcho})
    monkeypatch.setattr(serialization.registry, "_registered", {})
    fastnn.register_module(type("RegisteredNoConfig", (Module,), {}))
    configs = [{}, {"reduction": "none"}, {"ignore_index": "x"}, {"delta": -1.0},
               {"label_smoothing": [1]}, {"in_features": 3, "out_features": 2},
               {"num_features": 2.5}, {"dim": "x"}, {"p": 7}]
    path = tmp_path / "arch.safetensors"
    outcomes = {}
    for name in [*known, "NoConfig", "BadEcho", "RegisteredNoConfig"]:
        for config in configs:
            spec = {"class": name, "config": config}
            for arch in (spec, {"class": "Sequential", "children": [["0", spec]]},
                         {"class": "ModuleList", "children": [["0", spec]]}):
                safetensors.numpy.save_file({}, str(path),
                                            metadata={**meta, "architecture": json.dumps(arch)})
                try:
                    assert isinstance(fastnn.load(path), Module)
                    outcomes[name] = "loaded"
                except ValueError as err:
                    assert str(path) in str(err), err
    for name in ("NoConfig", "BadEcho", "RegisteredNoConfig"):
        assert name not in outcomes
        spec = {"class": name, "config": {}}
        safetensors.numpy.save_file({}, str(path), metadata={**meta,
                                                             "architecture": json.dumps(spec)})
        with pytest.raises(ValueError, match="get_config"):
            fastnn.load(path)
    for loss in ("CrossEntropyLoss", "MSELoss", "BCEWithLogitsLoss", "L1Loss", "HuberLoss"):
        assert outcomes[loss] == "loaded"


# ---- 4. FIFOs and devices -----------------------------------------------------------

FIFO_CHILD = r"""
import json, sys
import fastnn
from fastnn import nn
model = nn.Linear(2, 2)
loads = {"load": fastnn.load, "load_state_dict": fastnn.load_state_dict,
         "load_checkpoint": lambda p: fastnn.load_checkpoint(p, model)}
for path in sys.argv[1:]:
    for name, load in loads.items():
        try:
            load(path)
            print(json.dumps([path, name, "returned", ""]), flush=True)
        except BaseException as err:
            print(json.dumps([path, name, type(err).__name__, str(err)]), flush=True)
"""


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifos_and_devices_are_refused_without_blocking(tmp_path):
    """Opening a FIFO for reading blocks until a writer comes (with the GIL held
    inside safetensors, so no thread can time it out): the loads run in a child."""
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    targets = [str(fifo)] + [d for d in ("/dev/zero", "/dev/null") if os.path.exists(d)]
    proc = subprocess.run([sys.executable, "-c", FIFO_CHILD, *targets], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(results) == 3 * len(targets), proc.stdout
    for path, name, kind, msg in results:
        assert kind == "ValueError" and path in msg and "not a regular file" in msg, \
            (path, name, kind, msg)


# ---- the mutation campaign (tools/hostile_files.py), briefly --------------------------

CAMPAIGN = ROOT / "tools" / "hostile_files.py"


def run_campaign(tmp_path, *args, env=None):
    return subprocess.run([sys.executable, str(CAMPAIGN), "--keep", str(tmp_path / "kept"),
                           *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.skipif(not CAMPAIGN.exists(), reason="tools/ is not installed with the package")
def test_mutation_campaign_finds_nothing(tmp_path):
    proc = run_campaign(tmp_path, "--seconds", "60", "--files", "20", "--batch", "20",
                        "--kills", "1", "--seed", "7")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = proc.stdout.splitlines()[-2]
    files = int(summary.split(" files x ")[0].rsplit(" ", 1)[1])
    assert files == 7 + 20  # the unmutated files, then a batch of mutants
    assert "1 saver(s) killed" in summary and proc.stdout.endswith("0 failures\n")


@pytest.mark.skipif(not CAMPAIGN.exists(), reason="tools/ is not installed with the package")
def test_mutation_campaign_reports_a_planted_bug(tmp_path):
    """The campaign's children judge what they see: a fastnn.load that raises
    TypeError for every file fails it, with the file kept."""
    (tmp_path / "sitecustomize.py").write_text(
        "import fastnn\n"
        "def load(path):\n"
        "    raise TypeError('planted')\n"
        "fastnn.load = load\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    proc = run_campaign(tmp_path, "--seconds", "0", "--kill-share", "0", env=env)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "TypeError: planted" in proc.stdout and "failure(s); files kept in" in proc.stdout
    assert any((tmp_path / "kept").iterdir())
