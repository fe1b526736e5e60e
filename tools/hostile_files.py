"""Hostile-file mutation campaign for fastnn.load / load_state_dict / load_checkpoint.

Writes a few models (fastnn.save: Sequential with BatchNorm1d, nested containers,
losses) and checkpoints (fastnn.save_checkpoint: Adam with AMSGrad, SGD with
momentum, RMSprop; schedulers), mutates them (truncations, flipped bytes, header
lengths, huge shapes and offsets, wrong dtypes, duplicate keys, renamed tensors,
deep JSON, unknown classes, random config values, swapped metadata entries...)
and loads every mutant in child processes that run under a memory limit
(RLIMIT_AS) and a timeout, many files per child; a child that crashes or hangs
has its batch rerun one file per child to name the culprit.

Allowed outcomes, per loader and file:
  - it returns: fastnn.load gives a Module that saves and loads again;
    load_state_dict a dict of arrays; load_checkpoint restores a model, optimizer
    and scheduler that then take a training step;
  - it raises ValueError whose message names the file, and load_checkpoint left
    the model, optimizer and scheduler as they were.
Anything else fails the campaign: other exception types (TypeError included: a
file's contents are values, not arguments), a crash or signal, a timeout,
MemoryError.

Also checks that saving stays atomic when killed: a child saves two models in
turn onto one path while it is sent SIGKILL at random times; the path must
always hold one of them whole, and the next save removes the dead writer's
temporaries.

    python tools/hostile_files.py --seconds 60 --seed 1   # exit 1 on any failure
    python tools/hostile_files.py --files 40 --kills 2    # a fixed amount of work

Failing files are kept in --keep (default: a folder printed at the end).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback

CHILD_FLAG = "--child"
LOADERS = ("load", "load_state_dict", "load_checkpoint")


# ---- the files to mutate ------------------------------------------------------------

def _model(kind):
    from fastnn import nn
    if kind == "mlp_batchnorm":
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.Dropout(0.1),
                             nn.Linear(8, 3))
    if kind == "containers":
        return nn.Sequential(
            nn.Linear(4, 6), nn.Residual(nn.Sequential(nn.GELU(), nn.Linear(6, 6))),
            nn.Concat(nn.Identity(), nn.Sigmoid()), nn.BatchNorm1d(12, momentum=None),
            nn.ModuleList([nn.CrossEntropyLoss(label_smoothing=0.1), nn.HuberLoss(delta=0.5)]))
    if kind == "linear":
        return nn.Linear(4, 2, bias=False)
    if kind == "loss":
        return nn.CrossEntropyLoss(ignore_index=3)
    raise KeyError(kind)


MODELS = ("mlp_batchnorm", "containers", "linear", "loss")
CHECKPOINTS = ("adam_amsgrad", "sgd_momentum", "rmsprop_centered")


def _training(kind):
    """(model, optimizer, scheduler) of a checkpoint kind, freshly built."""
    from fastnn import optim
    from fastnn.optim import lr_scheduler
    model = _model("mlp_batchnorm")
    if kind == "adam_amsgrad":
        opt = optim.Adam(model.parameters(), lr=1e-2, amsgrad=True)
        sched = lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    elif kind == "sgd_momentum":
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        sched = lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=100)
    elif kind == "rmsprop_centered":
        opt = optim.RMSprop(model.parameters(), lr=1e-2, momentum=0.5, centered=True)
        sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    else:
        raise KeyError(kind)
    return model, opt, sched


def _train_step(model, opt, sched):
    import numpy as np

    import fastnn
    from fastnn import nn
    x = fastnn.random.generator().standard_normal((6, 4)).astype(np.float32)
    y = np.arange(6) % 3
    loss = nn.CrossEntropyLoss()
    opt.zero_grad()
    loss(model(x), y)
    model.backward(loss.backward())
    opt.step()
    sched.step()


def write_bases(folder, seed):
    """{name: path} of the unmutated files."""
    import fastnn
    from fastnn import optim
    from fastnn.optim import lr_scheduler
    fastnn.manual_seed(seed)
    bases = {}
    for kind in MODELS:
        model = _model(kind)
        if kind == "mlp_batchnorm":  # running statistics and weights off their init
            opt = optim.SGD(model.parameters(), lr=0.1)
            _train_step(model, opt, lr_scheduler.StepLR(opt, step_size=1))
        bases[f"model_{kind}"] = os.path.join(folder, f"model_{kind}.safetensors")
        fastnn.save(model, bases[f"model_{kind}"])
    for kind in CHECKPOINTS:
        model, opt, sched = _training(kind)
        for _ in range(3):
            _train_step(model, opt, sched)
        path = os.path.join(folder, f"checkpoint_{kind}.safetensors")
        fastnn.save_checkpoint(path, model, opt, sched, epoch=3, history=[0.5, 0.25],
                               note="three steps")
        bases[f"checkpoint_{kind}"] = path
    return bases


# ---- safetensors files as (header dict, data bytes) ----------------------------------

def split(raw: bytes):
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def join(header, data: bytes, text: str = None) -> bytes:
    text = json.dumps(header, separators=(",", ":")) if text is None else text
    body = text.encode("utf-8", "surrogatepass")
    return struct.pack("<Q", len(body)) + body + data


KNOWN_CLASSES = ["Linear", "Identity", "Flatten", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU",
                 "SiLU", "Softmax", "LogSoftmax", "Dropout", "BatchNorm1d", "Sequential",
                 "Residual", "Concat", "ModuleList", "CrossEntropyLoss", "MSELoss",
                 "BCEWithLogitsLoss", "L1Loss", "HuberLoss"]
OTHER_CLASSES = ["Module", "Parameter", "os.system", "__import__", "eval", "Conv2d", "",
                 "linear", "Sequential ", "_Loss", "Stateless", "Container", "x" * 300]
DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U64", "U32", "U16", "U8",
          "BOOL", "F8_E4M3", "F8_E5M2", "XYZ", "", "f32"]


def hostile_string(rng):
    n = rng.choice([1, 10, 1000, 30000])
    return rng.choice(['"' + '\\"' * n, "\\" * n, "[" * n, "{\"a\":" * n, "\u0000" * 3,
                       "\ud800", "é" * n, "." * n, "a." * n, "NaN", "1e999"])


def random_json(rng, depth=0):
    """A JSON value of any kind, with the values that break checks most often."""
    choices = ["int", "big", "float", "special", "str", "bool", "null", "list", "dict"]
    if depth > 3:
        choices = choices[:7]
    kind = rng.choice(choices)
    if kind == "int":
        return rng.choice([0, 1, -1, 2, 3, 4, 7, 8, 255, 2**31, -2**31, 2**53, 2**63 - 1])
    if kind == "big":
        return rng.choice([2**64, -2**64, 10**30, 10**400])
    if kind == "float":
        return rng.choice([0.0, -0.0, 0.5, 1.0, 1.5, -1.0, 1e-45, 1e300, -1e300, 1 - 1e-12])
    if kind == "special":
        return rng.choice([float("nan"), float("inf"), float("-inf")])
    if kind == "str":
        return rng.choice(["", "x", "mean", "sum", "none", "tanh", "F32", "0", "3"])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "null":
        return None
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["a", "class", "config", "children", "params", "lr"]):
            random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def deep_json(rng):
    n = rng.choice([100, 255, 257, 1000, 100000])
    return rng.choice(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n, "[" * n])


def _nodes(spec, out):
    """Every module spec (dict) in an architecture tree."""
    if isinstance(spec, dict):
        out.append(spec)
        for pair in spec.get("children", []) if isinstance(spec.get("children"), list) else []:
            if isinstance(pair, list) and len(pair) == 2:
                _nodes(pair[1], out)
    return out


def mutate_architecture(rng, arch):
    nodes = _nodes(arch, [])
    node = rng.choice(nodes)
    what = rng.randrange(9)
    if what == 0:
        node["class"] = rng.choice(KNOWN_CLASSES + OTHER_CLASSES)
        return f"class={node['class'][:20]!r}"
    if what == 1 and isinstance(node.get("config"), dict) and node["config"]:
        key = rng.choice(sorted(node["config"]))
        node["config"][key] = random_json(rng)
        return f"config[{key}]={node['config'][key]!r:.40}"
    if what == 2:
        node.setdefault("config", {})
        if isinstance(node["config"], dict):
            key = rng.choice(["in_features", "out_features", "num_features", "eps", "p", "x",
                              "__class__", "dim", "bias", "reduction", "delta", "momentum"])
            node["config"][key] = random_json(rng)
            return f"config[{key}] added"
    if what == 3:
        other = rng.choice(nodes)
        node["config"], other["config"] = other.get("config"), node.get("config")
        node.update({k: v for k, v in (("config", node["config"]),) if v is not None})
        return "configs swapped"
    if what == 4 and isinstance(node.get("children"), list) and node["children"]:
        pair = rng.choice(node["children"])
        if isinstance(pair, list) and pair:
            pair[0] = rng.choice(["0", "1", "00", "-1", "a.b", "_x", "training", "forward",
                                  "", 7, None, "x" * 300])
            return f"child renamed {pair[0]!r:.20}"
    if what == 5 and isinstance(node.get("children"), list):
        if node["children"] and rng.random() < 0.5:
            node["children"].append(rng.choice(node["children"]))
            return "child twice"
        node["children"] = node["children"][::-1]
        return "children reversed"
    if what == 6:
        key = rng.choice(sorted(node))
        del node[key]
        return f"{key} removed"
    if what == 7:
        node[rng.choice(["children", "config", "class", "extra"])] = random_json(rng)
        return "entry replaced"
    inner = json.loads(json.dumps(node))
    node.clear()
    node.update({"class": "Sequential", "children": [["0", inner]]})
    return "wrapped"


def mutate_header(rng, header, data):
    """Mutate the parsed header (and maybe the data); returns (header, data, text or None,
    description). text, when not None, is the raw header (for duplicate keys)."""
    tensors = [k for k in header if k != "__metadata__"]
    meta = header.get("__metadata__", {})
    what = rng.randrange(12)
    if what == 0 and tensors:  # shape
        key = rng.choice(tensors)
        shape = rng.choice([[2**40, 2**40], [0], [], [-1], [1] * 300, [2**63], [3.5],
                            [header[key]["shape"][0] + 1] if header[key]["shape"] else [1],
                            header[key]["shape"][::-1], [2**31, 2]])
        header[key]["shape"] = shape
        return header, data, None, f"{key}.shape={shape!r:.30}"
    if what == 1 and tensors:  # offsets
        key = rng.choice(tensors)
        begin, end = header[key]["data_offsets"]
        header[key]["data_offsets"] = rng.choice([[end, begin], [0, 2**63], [begin, end + 4],
                                                  [begin - 4, end - 4], [0, 0], [-1, 3],
                                                  [begin, 2**64 - 1]])
        return header, data, None, f"{key}.data_offsets"
    if what == 2 and tensors:  # dtype, with the data resized to match it or not
        key = rng.choice(tensors)
        header[key]["dtype"] = rng.choice(DTYPES)
        return header, data, None, f"{key}.dtype={header[key]['dtype']}"
    if what == 3 and tensors:  # a tensor renamed (dots, optimizer names, near misses)
        key = rng.choice(tensors)
        new = rng.choice([key + "x", key.replace("exp_avg", "exp_avgx"), "model." + key,
                          key.replace("model.", ""), "optimizer.state.99.exp_avg",
                          "optimizer.state.0." + "a" * 40, "a." * 5000, "", "__metadata__x",
                          key.replace(".0.", ".9."), key.upper()])
        if new == key:
            new = key + "x"
        header[new] = header.pop(key)
        return header, data, None, f"tensor {key} -> {new[:60]}"
    if what == 4 and tensors:  # a tensor removed (its bytes stay: a gap)
        key = rng.choice(tensors)
        del header[key]
        return header, data, None, f"tensor {key} removed"
    if what == 5 and tensors:  # a key twice, in the raw header
        key = rng.choice(tensors + ["__metadata__"])
        text = json.dumps(header, separators=(",", ":"))
        entry = json.dumps({key: header[key]}, separators=(",", ":"))[1:-1]
        text = text[:-1] + "," + entry + "}"
        return header, data, text, f"{key} twice in the header"
    if what == 6 and meta:  # a metadata entry twice
        key = rng.choice(sorted(meta))
        text = json.dumps(header, separators=(",", ":"))
        mark = '"__metadata__":{'
        dup = json.dumps({key: rng.choice([meta[key], "{}"])})[1:-1]
        text = text.replace(mark, mark + dup + ",", 1)
        return header, data, text, f"metadata[{key}] twice"
    if what == 7 and len(meta) >= 2:  # two metadata strings swapped
        a, b = rng.sample(sorted(meta), 2)
        meta[a], meta[b] = meta[b], meta[a]
        return header, data, None, f"metadata {a} <-> {b}"
    if what == 8 and meta:  # a metadata entry replaced
        key = rng.choice(sorted(meta))
        meta[key] = rng.choice([json.dumps(random_json(rng)), deep_json(rng),
                                hostile_string(rng), "", "{}", "[]", "null", "NaN"])
        return header, data, None, f"metadata[{key}] replaced"
    if what == 9 and meta:  # a metadata entry removed, or one not a string
        key = rng.choice(sorted(meta))
        if rng.random() < 0.5:
            del meta[key]
            return header, data, None, f"metadata[{key}] removed"
        meta[key] = random_json(rng)
        return header, data, None, f"metadata[{key}] not a string"
    if what == 10 and meta:  # inside a JSON entry
        key = rng.choice([k for k in ("architecture", "optimizer", "scheduler", "extra",
                                      "rng", "epoch") if k in meta] or sorted(meta))
        try:
            value = json.loads(meta[key])
        except (ValueError, RecursionError):
            value = None
        if key == "architecture" and isinstance(value, dict):
            desc = mutate_architecture(rng, value)
        else:
            desc = mutate_json_value(rng, value)
            value = desc[1]
            desc = desc[0]
        meta[key] = json.dumps(value)
        return header, data, None, f"{key}: {desc}"
    if what == 11:  # the whole header replaced by something else
        text = rng.choice([deep_json(rng), hostile_string(rng), json.dumps(random_json(rng)),
                           "{}", '{"__metadata__":{}}', " " * 100])
        return header, data, text, "header replaced"
    return header, data, None, "unchanged"


def mutate_json_value(rng, value):
    """(description, value) with one place inside value changed."""
    path, holder = [], None
    node = value
    for _ in range(rng.randint(1, 4)):
        if isinstance(node, dict) and node:
            key = rng.choice(sorted(node))
        elif isinstance(node, list) and node:
            key = rng.randrange(len(node))
        else:
            break
        holder, path = node, path + [key]
        node = node[key]
    if holder is None:
        return "replaced", random_json(rng)
    key = path[-1]
    action = rng.randrange(4)
    if action == 0 or not isinstance(holder, dict):
        holder[key] = random_json(rng)
        return f"{path!r:.40} = {holder[key]!r:.30}", value
    if action == 1:
        del holder[key]
        return f"{path!r:.40} removed", value
    if action == 2:
        holder[str(key) + "x"] = holder.pop(key)
        return f"{path!r:.40} renamed", value
    holder[rng.choice(["lr", "betas", "steps", "state", "params", "x", "initial_lr"])] = \
        random_json(rng)
    return f"{path[:-1]!r:.40} gained a key", value


NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
                "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1",
                "BOOL": "?"}


def mutate_arrays(rng, raw: bytes):
    """(bytes, description) of a mutant that safetensors reads without complaint: a
    tensor retyped, reshaped, given special values, renamed, copied or dropped, with
    the data laid out again; None when raw's tensors cannot be decoded."""
    import numpy as np
    import safetensors.numpy
    try:
        header, data = split(raw)
        meta = header.get("__metadata__", {})
        arrays = {k: np.frombuffer(data[v["data_offsets"][0]:v["data_offsets"][1]],
                                   NUMPY_DTYPES[v["dtype"]]).reshape(v["shape"])
                  for k, v in header.items() if k != "__metadata__"}
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, struct.error,
            RecursionError):
        return None
    if not arrays or not all(isinstance(v, str) for v in meta.values()):
        return None
    key = rng.choice(sorted(arrays))
    value = arrays[key]
    what = rng.randrange(6)
    if what == 0:
        dtype = rng.choice(sorted(NUMPY_DTYPES))
        with np.errstate(all="ignore"):
            arrays[key] = (np.full(value.shape, 1e300) if dtype == "F64" and rng.random() < 0.5
                           else value.astype(NUMPY_DTYPES[dtype]))
        desc = f"{key} as {dtype}"
    elif what == 1:
        shapes = [(value.size,), (1, value.size), (value.size, 1), value.shape[::-1],
                  (1,) + value.shape, value.shape + (1,)]
        arrays[key] = value.reshape(rng.choice(shapes))
        desc = f"{key} reshaped to {arrays[key].shape}"
    elif what == 2:
        special = rng.choice([np.nan, np.inf, -np.inf, 1e38, -1.0, 0.0, 2**31])
        arrays[key] = np.full(value.shape, special, value.dtype if value.dtype.kind == "f"
                              else np.float32)
        desc = f"{key} filled with {special}"
    elif what == 3:
        new = rng.choice([key.replace("exp_avg", "exp_avgx"), key.replace("momentum_buffer",
                          "momentum_buf"), key.replace("square_avg", "grad_avg"),
                          key + ".x", key.replace("model.", "optimizer.state.0."),
                          "optimizer.state.7." + key.rsplit(".", 1)[-1], "model.extra",
                          key.replace("weight", "bias")])
        if new == key:
            new = key + "x"
        arrays[new] = arrays.pop(key)
        desc = f"{key} renamed {new}"
    elif what == 4:
        arrays[rng.choice(["model.2.running_var_copy", key + "2", "optimizer.state.0.x",
                           "extra"])] = value.copy()
        desc = f"a copy of {key} added"
    else:
        del arrays[key]
        desc = f"{key} dropped"
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    try:
        return safetensors.numpy.save(arrays, metadata=meta or None), desc
    except Exception:  # noqa: BLE001 - a name or dtype safetensors will not write
        return None


def mutate_training_state(rng, raw: bytes):
    """(bytes, description): a checkpoint's optimizer or scheduler JSON with one
    option, step count or scheduler entry set to a random value; None if raw is no
    checkpoint."""
    try:
        header, data = split(raw)
        meta = header["__metadata__"]
        part = rng.choice([k for k in ("optimizer", "scheduler") if k in meta])
        value = json.loads(meta[part])
        if part == "optimizer":
            holder = rng.choice([value["param_groups"][0], value["steps"], value])
        else:
            holder = rng.choice([value["state"], value])
        key = rng.choice(sorted(holder))
    except (ValueError, KeyError, TypeError, IndexError, struct.error, RecursionError):
        return None
    if not isinstance(holder, dict):
        return None
    holder[key] = rng.choice([random_json(rng), random_json(rng), 1e300, -5, float("nan"),
                              1 - 1e-12, [0.9, 1.0], 10**30, "x"])
    meta[part] = json.dumps(value)
    return join(header, data), f"{part}[{key!r}] = {holder[key]!r:.40}"


def mutate_metadata_text(rng, raw: bytes):
    """(bytes, description): a metadata entry (the architecture, mostly) replaced by
    text that is slow to scan or parse: long runs of escapes, brackets, keys."""
    try:
        header, data = split(raw)
        meta = header["__metadata__"]
    except (ValueError, KeyError, TypeError, struct.error, RecursionError):
        return None
    if not isinstance(meta, dict):
        return None
    key = "architecture" if "architecture" in meta and rng.random() < 0.6 else \
        rng.choice(sorted(meta) or ["architecture"])
    n = rng.choice([1000, 30000, 300000])
    unit = rng.choice(['\\"', "\\\\", '"[', "[", '{"a":', '"x\\"",', '"k":1,', "a."])
    meta[key] = rng.choice(["", "[" * 300, '"']) + unit * n
    return join(header, data), f"metadata[{key}] = {n} x {unit!r}"


def mutate(rng, raw: bytes):
    """(bytes, description) of one mutant of raw: one to three mutations."""
    descriptions = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        kind = rng.randrange(15)
        if kind >= 10:
            done = (mutate_arrays if kind <= 11 else mutate_training_state if kind <= 13
                    else mutate_metadata_text)(rng, raw)
            if done is not None:
                raw, desc = done
                descriptions.append(desc)
                continue
            kind = rng.randrange(10)
        try:
            header, data = split(raw)
        except (ValueError, struct.error, RecursionError):
            header = None  # an earlier mutation broke the framing: bytes only
        if kind <= 5 and isinstance(header, dict):
            try:
                header, data, text, desc = mutate_header(rng, header, data)
            except (KeyError, TypeError, IndexError, AttributeError, ValueError,
                    RecursionError):
                text, desc = None, "header kept (an earlier mutation changed its shape)"
            raw = join(header, data, text)
        elif kind == 6:
            cut = rng.randrange(len(raw) + 1)
            raw, desc = raw[:cut], f"truncated at {cut}"
        elif kind == 7:
            b = bytearray(raw or b"\0")
            for _ in range(rng.randint(1, 8)):
                where = rng.randrange(len(b)) if rng.random() < 0.5 or len(b) < 9 else \
                    rng.randrange(8, min(len(b), 8 + struct.unpack("<Q", bytes(b[:8]))[0] + 1))
                b[where] = rng.randrange(256)
            raw, desc = bytes(b), "bytes flipped"
        elif kind == 8:
            value = rng.choice([0, 1, 7, len(raw), len(raw) - 8, 2**63, 2**64 - 1, 2**32,
                                100_000_001, 48 << 20, rng.randrange(len(raw) + 1)])
            raw, desc = struct.pack("<Q", value) + raw[8:], f"header length {value}"
        else:
            where = rng.randrange(len(raw) + 1)
            chunk = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
            raw = raw[:where] + chunk + raw[where:] if rng.random() < 0.5 else \
                raw[:where] + raw[where + len(chunk):]
            desc = "bytes inserted or deleted"
        descriptions.append(desc)
    return raw, "; ".join(descriptions)


# ---- the child: loads, judged ------------------------------------------------------------

def child_main(memory_bytes: int):
    """Read [[case id, path, base], ...] from stdin; print one JSON line per loader."""
    if memory_bytes:
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
    import faulthandler
    faulthandler.enable()
    import numpy as np

    import fastnn
    from fastnn.nn.module import Module
    cases = json.load(sys.stdin)
    scratch = tempfile.mkdtemp(prefix="fastnn-hostile-child-")
    for case, path, base in cases:
        for loader in LOADERS:
            start = time.perf_counter()
            verdict = judge(loader, path, base, scratch, fastnn, Module, np)
            print(json.dumps([case, loader, *verdict, time.perf_counter() - start]), flush=True)
    shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(["done"]), flush=True)


def _snapshot(model, opt, sched):
    import numpy as np
    state = {k: v.copy() for k, v in model.state_dict().items()}
    osd = opt.state_dict()
    return state, json.dumps(osd["param_groups"], sort_keys=True, default=str), {
        (i, k): np.array(v) for i, e in osd["state"].items() for k, v in e.items()}, \
        json.dumps(sched.state_dict(), sort_keys=True, default=str)


def _same(a, b) -> bool:
    import numpy as np
    (sa, ga, ta, ca), (sb, gb, tb, cb) = a, b
    return (sa.keys() == sb.keys() and all(np.array_equal(sa[k], sb[k], equal_nan=True)
                                           for k in sa)
            and ga == gb and ca == cb and ta.keys() == tb.keys()
            and all(np.array_equal(ta[k], tb[k], equal_nan=True) for k in ta))


def judge(loader, path, base, scratch, fastnn, Module, np):
    """[outcome, detail]: "returned", "ValueError" or "FAIL"."""
    kind = base.split("_", 1)[1]
    try:
        if loader == "load":
            model = fastnn.load(path)
            if not isinstance(model, Module):
                return ["FAIL", f"fastnn.load returned {type(model).__name__}"]
            again = os.path.join(scratch, "again.safetensors")
            fastnn.save(model, again)  # a valid model saves and loads back
            if repr(fastnn.load(again)) != repr(model):
                return ["FAIL", "the loaded model does not round-trip through save"]
        elif loader == "load_state_dict":
            sd = fastnn.load_state_dict(path)
            if not (isinstance(sd, dict) and all(isinstance(v, np.ndarray) for v in sd.values())):
                return ["FAIL", "load_state_dict did not return a dict of arrays"]
        else:
            model, opt, sched = _training(kind if kind in CHECKPOINTS else "adam_amsgrad")
            before = _snapshot(model, opt, sched)
            try:
                fastnn.load_checkpoint(path, model, opt, sched)
            except ValueError:
                if not _same(before, _snapshot(model, opt, sched)):
                    return ["FAIL", "a failed load_checkpoint changed the model, optimizer "
                                    "or scheduler"]
                raise
            try:
                _train_step(model, opt, sched)
            except Exception as err:  # noqa: BLE001
                return ["FAIL", f"load_checkpoint accepted state that fails at the next "
                                f"step: {type(err).__name__}: {err}"[:600]]
        return ["returned", ""]
    except ValueError as err:
        if path not in str(err):
            return ["FAIL", f"ValueError without the file's name: {err}"[:600]]
        return ["ValueError", str(err)[:200]]
    except BaseException as err:  # noqa: BLE001 - exactly what the campaign looks for
        return ["FAIL", f"{type(err).__name__}: {err}\n{traceback.format_exc()[-1500:]}"]


# ---- the parent --------------------------------------------------------------------------

def run_child(cases, args):
    """{(case, loader): [outcome, detail]} and a problem string (None if the child ended
    well)."""
    cmd = [sys.executable, os.path.abspath(__file__), CHILD_FLAG,
           "--memory-gib", str(args.memory_gib)]
    try:
        proc = subprocess.run(cmd, input=json.dumps(cases), capture_output=True, text=True,
                              timeout=args.timeout, errors="replace")
    except subprocess.TimeoutExpired as err:
        out = err.stdout.decode(errors="replace") if isinstance(err.stdout, bytes) else \
            (err.stdout or "")
        return _parse(out), f"timed out after {args.timeout} s"
    results = _parse(proc.stdout)
    if proc.returncode != 0 or not proc.stdout.rstrip().endswith('["done"]'):
        how = (f"killed by {signal.Signals(-proc.returncode).name}" if proc.returncode < 0
               else f"exit status {proc.returncode}")
        return results, f"{how}: {proc.stderr[-1500:]}"
    return results, None


def _parse(out):
    results = {}
    for line in out.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if len(item) == 5:
            results[item[0], item[1]] = item[2:]
    return results


def campaign_loads(args, bases, folder, rng, deadline, failures, counts):
    """Mutants of the bases, loaded in batches until the deadline."""
    raws = {name: open(path, "rb").read() for name, path in bases.items()}
    case_ids = 0
    # the unmutated files first: they must load
    batches = [[(name, raws[name], "unmutated") for name in sorted(raws)]]
    mutants = 0
    while batches or (time.monotonic() < deadline and mutants < args.files):
        if not batches:  # (the unmutated files go in any case)
            mutants += args.batch
            batch = []
            for _ in range(args.batch):
                base = rng.choice(sorted(raws))
                raw, desc = mutate(rng, raws[base])
                batch.append((base, raw, desc))
            batches.append(batch)
        batch = batches.pop(0)
        cases, described = [], {}
        for base, raw, desc in batch:
            case_ids += 1
            path = os.path.join(folder, f"case{case_ids:06d}.safetensors")
            with open(path, "wb") as fh:
                fh.write(raw)
            cases.append([case_ids, path, base])
            described[case_ids] = (base, desc, path)
        results, problem = run_child(cases, args)
        if problem is not None:  # rerun one by one to name the culprit
            results = {}
            for case in cases:
                one, why = run_child([case], args)
                results.update(one)
                if why is not None:  # the first loader without a result is the culprit
                    missing = [loader for loader in LOADERS if (case[0], loader) not in one]
                    for k, loader in enumerate(missing):
                        results[case[0], loader] = ["FAIL", f"the child {why}", 0.0] if k == 0 \
                            else ["skipped", "", 0.0]
        for case_id, path, base in cases:
            desc = described[case_id][1]
            counts["files"] += 1
            for loader in LOADERS:
                outcome, detail, seconds = results.get(
                    (case_id, loader), ["FAIL", "no result (the child died before it)", 0.0])
                if seconds > args.slow:
                    outcome, detail = "FAIL", f"took {seconds:.1f} s ({outcome} {detail})"
                if desc == "unmutated" and (outcome == "returned") != {
                        "load": base.startswith("model_"), "load_state_dict": True,
                        "load_checkpoint": base.startswith("checkpoint_")}[loader]:
                    outcome, detail = "FAIL", f"the unmutated file: {outcome} {detail}"
                counts[outcome] = counts.get(outcome, 0) + 1
                if outcome == "FAIL":
                    failures.append((base, desc, loader, detail, path))
            if not any(f[4] == path for f in failures):
                os.unlink(path)


SAVER = r"""
import sys
import numpy as np
import fastnn
from fastnn import nn
path, seed = sys.argv[1], int(sys.argv[2])
models = []
for i in range(2):
    fastnn.manual_seed(seed + i)
    models.append(nn.Sequential(nn.Linear(512, 1024), nn.BatchNorm1d(1024), nn.Linear(1024, 8)))
print("ready", flush=True)
i = 0
while True:
    fastnn.save(models[i % 2], path)
    i += 1
"""


def campaign_kills(args, folder, rng, deadline, failures, counts):
    """kill -9 a saver at random times: the target is always one of its two models."""
    import numpy as np

    import fastnn
    from fastnn import nn
    path = os.path.join(folder, "atomic.safetensors")
    seed = rng.randrange(2**31)
    fastnn.manual_seed(seed + 2)
    old = nn.Linear(1, 1)
    fastnn.save(old, path)  # the file the first kill may leave as it was
    expected = [old.state_dict()]
    for i in range(2):
        fastnn.manual_seed(seed + i)
        model = nn.Sequential(nn.Linear(512, 1024), nn.BatchNorm1d(1024), nn.Linear(1024, 8))
        expected.append(model.state_dict())
    while time.monotonic() < deadline and counts["kills"] < args.kills:
        proc = subprocess.Popen([sys.executable, "-c", SAVER, path, str(seed)],
                                stdout=subprocess.PIPE, text=True)
        try:
            proc.stdout.readline()
            time.sleep(rng.uniform(0.0, 0.4))
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
        counts["kills"] += 1
        try:
            got = fastnn.load_state_dict(path)
        except Exception as err:  # noqa: BLE001
            failures.append(("saver", "kill -9 mid-save", "load_state_dict",
                             f"the target does not load: {type(err).__name__}: {err}", path))
            return
        whole = [k for k, sd in enumerate(expected) if got.keys() == sd.keys() and all(
            np.array_equal(got[key], sd[key]) for key in sd)]
        if not whole:
            failures.append(("saver", "kill -9 mid-save", "load_state_dict",
                             "the target is neither the old file nor a saved model", path))
            return
        fastnn.save(nn.Linear(1, 1), os.path.join(folder, "after_kill.safetensors"))
        left = [n for n in os.listdir(folder) if n.endswith(".tmp")]
        if left:
            failures.append(("saver", "kill -9 mid-save", "save",
                             f"the next save left the dead writer's temporaries {left}", path))
            return


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=40, help="files per child process")
    parser.add_argument("--files", type=int, default=10**9,
                        help="stop after about this many mutants (default: the time decides)")
    parser.add_argument("--kills", type=int, default=10**9,
                        help="stop after this many savers killed (default: the time decides)")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds a child may take for its batch")
    parser.add_argument("--slow", type=float, default=5.0,
                        help="seconds one load may take (the files are small)")
    parser.add_argument("--memory-gib", type=float, default=2.0,
                        help="RLIMIT_AS of the children, GiB (0: none)")
    parser.add_argument("--kill-share", type=float, default=0.15,
                        help="share of the time for the kill -9 mid-save check (0: none)")
    parser.add_argument("--keep", default=None, help="folder for the failing files")
    parser.add_argument(CHILD_FLAG, action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(int(args.memory_gib * (1 << 30)))

    start = time.monotonic()
    rng = random.Random(args.seed)
    folder = tempfile.mkdtemp(prefix="fastnn-hostile-")
    failures, counts = [], {"files": 0, "kills": 0}
    try:
        bases = write_bases(folder, args.seed)
        load_deadline = start + args.seconds * (1 - args.kill_share)
        campaign_loads(args, bases, folder, rng, load_deadline, failures, counts)
        if args.kill_share > 0:  # at least one kill
            campaign_kills(args, folder, rng, max(start + args.seconds, time.monotonic() + 1),
                           failures, counts)
    finally:
        keep = args.keep or (tempfile.mkdtemp(prefix="fastnn-hostile-failures-")
                             if failures else None)
        for i, (base, desc, loader, detail, path) in enumerate(failures):
            if os.path.exists(path):
                os.makedirs(keep, exist_ok=True)
                shutil.copy(path, os.path.join(keep, f"failure{i}_{os.path.basename(path)}"))
        shutil.rmtree(folder, ignore_errors=True)
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k not in ("files",
                                                                                      "kills"))
    print(f"hostile_files: seed {args.seed}, {time.monotonic() - start:.0f} s: {counts['files']} "
          f"files x {len(LOADERS)} loaders ({outcomes}); {counts['kills']} saver(s) killed "
          f"mid-save")
    for i, (base, desc, loader, detail, path) in enumerate(failures[:50]):
        print(f"FAIL {i}: {loader} of {base} mutated by [{desc}]: {detail}")
    if failures:
        print(f"{len(failures)} failure(s); files kept in {keep}")
        return 1
    print("0 failures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
