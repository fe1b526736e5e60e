"""Saving and loading: models and training checkpoints in safetensors files.

    fastnn.save(model, "model.safetensors")           # weights + architecture
    model = fastnn.load("model.safetensors")          # rebuilt, weights loaded, train mode
    sd = fastnn.load_state_dict("model.safetensors")  # only the arrays, for model.load_state_dict

    fastnn.save_checkpoint("ckpt.safetensors", model, optimizer, scheduler, epoch=3, best=0.91)
    info = fastnn.load_checkpoint("ckpt.safetensors", model, optimizer, scheduler)
    info["epoch"], info["best"]                       # 3, 0.91; the RNG state is restored too

    @fastnn.register_module                           # your own layer, loadable by fastnn.load
    class Block(nn.Module):
        def __init__(self, width): ...
        def get_config(self): return {"width": self.width}

Files. A model file holds model.state_dict() under its keys (int64 buffers such
as num_batches_tracked included) and, in the safetensors metadata,
"format": "fastnn", "format_version", "content": "model" and "architecture":
JSON of the module tree, {"class": name, "config": module.get_config()} for a
layer, {"class": "Sequential" or "ModuleList", "children": [[name, spec], ...]}
for a container. A checkpoint ("content": "checkpoint") holds the model's
arrays under "model.<key>", the optimizer's state arrays under
"optimizer.state.<index>.<name>", and JSON metadata for the optimizer's param
groups and per-parameter steps, the scheduler's state_dict, the epoch, the
extras and fastnn's random stream. Files are written to a temporary file in
the same folder, fsynced and renamed onto the target: a crash or an error
never leaves a half-written file, and an existing one stays as it was.

Safety. Loading never unpickles, evaluates or imports anything: class names
are looked up only among fastnn.nn's layers and classes registered with
register_module, configs must be JSON objects of JSON scalars and lists, and
the parameter shapes a built-in layer's config implies are checked against
the stored tensors before anything is allocated. Nesting depth, module count
and metadata size are capped. Whatever is wrong with the file's contents
(truncated, random bytes, another program's safetensors, hostile JSON, wrong
shapes) raises ValueError naming the file; a missing file raises
FileNotFoundError. A registered class is your code: its constructor runs
with the file's (checked) config values.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import re
import uuid
from collections import OrderedDict
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np
import safetensors.numpy
from safetensors import safe_open

from fastnn import nn
from fastnn.nn.containers import ModuleList, Sequential
from fastnn.nn.module import Module
from fastnn.random import get_rng_state, set_rng_state

__all__ = ["save", "load", "load_state_dict", "save_checkpoint", "load_checkpoint",
           "register_module"]

FORMAT = "fastnn"
FORMAT_VERSION = "1"
MAX_MODULE_DEPTH = 64        # containers nested in containers
MAX_JSON_DEPTH = 256         # brackets nested in any JSON metadata entry
MAX_MODULES = 100_000        # modules described by one architecture
MAX_JSON_CHARS = 16 << 20    # characters of one JSON metadata entry

_CONTAINERS = (Sequential, ModuleList)
_registered: Dict[str, type] = {}


# ---- the class registry -------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _builtins() -> Dict[str, type]:
    """fastnn.nn's module classes by name (every Module subclass in fastnn.nn.__all__)."""
    found = {}
    for name in nn.__all__:
        obj = getattr(nn, name)
        if isinstance(obj, type) and issubclass(obj, Module) and obj is not Module:
            found[name] = obj
    return found


def register_module(cls):
    """Make a Module subclass loadable by fastnn.load under its class name; returns cls,
    so it works as a decorator. The class must define get_config() returning its
    constructor's keyword arguments as JSON values (the file holds them, and
    fastnn.load calls cls(**config) with them)."""
    if not (isinstance(cls, type) and issubclass(cls, Module)):
        raise TypeError(f"register_module takes a subclass of fastnn.nn.Module, got {cls!r}")
    name = cls.__name__
    builtin = _builtins().get(name)
    if builtin is cls:
        return cls
    if builtin is not None:
        raise ValueError(f"cannot register {cls.__module__}.{cls.__qualname__}: {name!r} is "
                         f"fastnn.nn.{name}; give the class another name")
    old = _registered.get(name)
    if old is not None and old is not cls and \
            (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"cannot register {cls.__module__}.{cls.__qualname__}: {name!r} is "
                         f"already registered for {old.__module__}.{old.__qualname__}")
    _registered[name] = cls  # the same class defined again (a re-run notebook cell) replaces it
    return cls


def _lookup(name: str) -> Tuple[Optional[type], bool]:
    """(class, is_builtin) for a registered name, (None, False) otherwise."""
    builtin = _builtins().get(name)
    if builtin is not None:
        return builtin, True
    return _registered.get(name), False


# ---- shapes a built-in layer's config implies ---------------------------------------

def _int_arg(args: dict, name: str) -> int:
    value = args[name]
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {_short(value)}")
    return value


def _bool_arg(args: dict, name: str) -> bool:
    value = args[name]
    if type(value) is not bool:
        raise ValueError(f"{name} must be true or false, got {_short(value)}")
    return value


def _linear_state(args: dict) -> dict:
    n_in, n_out = _int_arg(args, "in_features"), _int_arg(args, "out_features")
    state = {"weight": ((n_out, n_in), "F32")}
    if _bool_arg(args, "bias"):
        state["bias"] = ((n_out,), "F32")
    return state


def _batchnorm_state(args: dict) -> dict:
    n = _int_arg(args, "num_features")
    state = {}
    if _bool_arg(args, "affine"):
        state.update(weight=((n,), "F32"), bias=((n,), "F32"))
    if _bool_arg(args, "track_running_stats"):
        state.update(running_mean=((n,), "F32"), running_var=((n,), "F32"),
                     num_batches_tracked=((), "I64"))
    return state


# class name -> function(constructor arguments) -> {key: (shape, safetensors dtype)}.
# A built-in layer with parameters needs an entry here, or fastnn.load would have to
# allocate it before it could compare sizes (tests/test_serialization.py checks).
_STATE_RULES = {"Linear": _linear_state, "BatchNorm1d": _batchnorm_state}
_STATELESS = {"Identity", "Flatten", "ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU",
              "Softmax", "LogSoftmax", "Dropout", "CrossEntropyLoss", "MSELoss",
              "BCEWithLogitsLoss", "L1Loss", "HuberLoss"}

_DTYPE_NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64",
                "int32": "I32", "int16": "I16", "int8": "I8", "uint64": "U64", "uint32": "U32",
                "uint16": "U16", "uint8": "U8", "bool": "BOOL"}


def _dtype_name(arr: np.ndarray) -> str:
    return _DTYPE_NAMES.get(arr.dtype.name, arr.dtype.name)


# ---- JSON in both directions ------------------------------------------------------

def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _to_json(value, what: str, dicts: bool = True, depth: int = 0):
    """value as plain JSON types (tuples become lists, NumPy scalars Python ones);
    TypeError naming `what` for anything else."""
    if depth > MAX_JSON_DEPTH - 8:
        raise TypeError(f"{what} is nested too deeply to save")
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_to_json(v, f"{what}[{i}]", dicts, depth + 1) for i, v in enumerate(value)]
    if dicts and isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{what} has a key {_short(k)} that is not a string")
            out[k] = _to_json(v, f"{what}[{k!r}]", dicts, depth + 1)
        return out
    kinds = "None, bool, int, float, str, lists" + (" and dicts" if dicts else "")
    raise TypeError(f"{what} must hold only JSON values ({kinds}), got "
                    f"{type(value).__name__} {_short(value)}")


def _dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')


def _json_depth(text: str) -> int:
    """How deeply brackets nest in text, outside strings (checked before json.loads,
    whose recursion a hostile file could otherwise exhaust)."""
    b = np.frombuffer(_JSON_STRING.sub("", text).encode(), dtype=np.uint8)
    if b.size == 0:
        return 0
    step = ((b == ord("[")) | (b == ord("{"))).astype(np.int64)
    step -= (b == ord("]")) | (b == ord("}"))
    return int(np.cumsum(step).max())


def _loads(text: str, what: str, path: str):
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"{path}: {what} is {len(text)} characters long, more than the "
                         f"{MAX_JSON_CHARS} fastnn reads")
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise ValueError(f"{path}: {what} nests more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{path}: {what} is not valid JSON ({err})") from None


# ---- writing ------------------------------------------------------------------------

def _write(path, tensors: Dict[str, np.ndarray], metadata: Dict[str, str]) -> None:
    """Write a safetensors file at path atomically: a temporary file in the same
    folder, fsynced, then renamed over path; removed again on any failure."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    for _ in range(100):
        tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"could not create a temporary file next to {path}")
    try:
        try:
            mode = os.fstat(fd).st_mode & 0o777  # 0o666 less the umask, as open() gives
        finally:
            os.close(fd)
        arrays = {k: v if v.flags.c_contiguous else v.copy() for k, v in tensors.items()}
        safetensors.numpy.save_file(arrays, tmp, metadata=metadata)
        os.chmod(tmp, mode)  # safetensors writes its files private (0600)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename durable (POSIX)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _header(content: str) -> Dict[str, str]:
    import fastnn
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "content": content,
            "fastnn_version": fastnn.__version__}


# ---- the architecture ---------------------------------------------------------------

def _child_name_problem(name, container: type) -> Optional[str]:
    """Why `name` cannot be a child of `container` rebuilt from a file (None if it can)."""
    if not isinstance(name, str) or not 0 < len(name) <= 256:
        return f"child names must be strings of 1 to 256 characters, got {_short(name)}"
    if "." in name or name.startswith("_") or name == "training" or hasattr(container, name):
        return f"{_short(name)} cannot name a child of {container.__name__}"
    return None


def _describe(module: Module, where: str, depth: int) -> dict:
    if depth > MAX_MODULE_DEPTH:
        raise ValueError(f"{where} is nested more than {MAX_MODULE_DEPTH} containers deep")
    cls = type(module)
    if cls in _CONTAINERS:
        children = []
        for name, child in module.named_children():
            problem = _child_name_problem(name, cls)
            if problem is not None:
                raise ValueError(f"cannot save {where}: {problem}")
            children.append([name, _describe(child, f"{where}.{name}", depth + 1)])
        return {"class": cls.__name__, "children": children}
    try:
        config = module.get_config()
    except NotImplementedError:
        config = None
    if config is None or _lookup(cls.__name__)[0] is not cls:
        raise TypeError(
            f"cannot save {where} ({cls.__module__}.{cls.__qualname__}): fastnn.save rebuilds "
            f"a module from its class name and get_config(); define get_config() returning "
            f"its constructor's keyword arguments and register the class with "
            f"fastnn.register_module (or save only its weights with fastnn.save_checkpoint)")
    if not isinstance(config, dict):
        raise TypeError(f"{where}.get_config() must return a dict, got {type(config).__name__}")
    for key in config:
        if not isinstance(key, str) or not key.isidentifier():
            raise TypeError(f"{where}.get_config() keys must be argument names, got "
                            f"{_short(key)}")
    return {"class": cls.__name__,
            "config": {k: _to_json(v, f"{where}.get_config()[{k!r}]", dicts=False)
                       for k, v in config.items()}}


def _check_config_value(value, depth: int) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return (isinstance(value, list) and depth < MAX_JSON_DEPTH
            and all(_check_config_value(v, depth + 1) for v in value))


@functools.lru_cache(maxsize=256)
def _signature(cls: type) -> inspect.Signature:
    return inspect.signature(cls)


def _arguments(cls: type, config, builtin: bool, where: str) -> inspect.BoundArguments:
    """config checked and bound to cls's constructor (ValueError on any problem)."""
    if not isinstance(config, dict):
        raise ValueError(f"{where}: config must be a JSON object, got {type(config).__name__}")
    for key, value in config.items():
        if not key.isidentifier() or key.startswith("_"):
            raise ValueError(f"{where}: {_short(key)} is not an argument name")
        if not _check_config_value(value, 0):
            raise ValueError(f"{where}: config[{key!r}] must be a JSON scalar or list")
    try:
        sig = _signature(cls)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: cannot read {cls.__name__}'s constructor ({err})") from None
    params = sig.parameters.values()
    named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    any_keyword = any(p.kind is p.VAR_KEYWORD for p in params)
    unexpected = [k for k in config if k not in named]
    if unexpected and (builtin or not any_keyword):
        raise ValueError(f"{where}: {cls.__name__} takes no argument(s) "
                         f"{', '.join(map(_short, unexpected))}")
    try:
        bound = sig.bind(**config)
    except TypeError as err:
        raise ValueError(f"{where}: {cls.__name__}: {err}") from None
    bound.apply_defaults()
    return bound


class _Leaf(NamedTuple):
    cls: type
    bound: inspect.BoundArguments
    config: Optional[dict]  # built-ins only: what the built layer's get_config() must echo
    where: str


class _Branch(NamedTuple):
    cls: type  # Sequential or ModuleList
    children: list  # [(name, _Leaf or _Branch)]


class _Plan:
    """The checked architecture, before anything is built."""

    def __init__(self, path: str):
        self.path = path
        self.count = 0
        self.expected: Dict[str, tuple] = {}  # key -> (shape, dtype) known from configs
        self.opaque = set()                    # key prefixes whose arrays only building tells

    def node(self, spec, prefix: str, where: str, depth: int):
        self.count += 1
        if self.count > MAX_MODULES:
            raise ValueError(f"{self.path}: the architecture has more than {MAX_MODULES} modules")
        if depth > MAX_MODULE_DEPTH:
            raise ValueError(f"{self.path}: the architecture nests more than "
                             f"{MAX_MODULE_DEPTH} containers deep")
        if not isinstance(spec, dict) or not isinstance(spec.get("class"), str):
            raise ValueError(f"{self.path}: {where} must be a JSON object with a \"class\" "
                             f"name")
        name = spec["class"]
        cls, builtin = _lookup(name)
        if cls is None:
            raise ValueError(f"{self.path}: {where} has the unknown class {_short(name)}: only "
                             f"fastnn.nn's layers and classes registered with "
                             f"fastnn.register_module can be loaded")
        if cls in _CONTAINERS:
            return self._container(cls, spec, prefix, where, depth)
        if set(spec) != {"class", "config"}:
            raise ValueError(f"{self.path}: {where} ({name}) must have exactly the entries "
                             f"\"class\" and \"config\"")
        bound = _arguments(cls, spec["config"], builtin, f"{self.path}: {where} ({name})")
        rule = _STATE_RULES.get(name) if builtin else None
        if rule is None and not (builtin and name in _STATELESS):
            self.opaque.add(prefix)
            return _Leaf(cls, bound, spec["config"] if builtin else None, where)
        try:
            state = rule(bound.arguments) if rule is not None else {}
        except ValueError as err:
            raise ValueError(f"{self.path}: {where} ({name}): {err}") from None
        for key, shape_dtype in state.items():
            self.expected[prefix + key] = shape_dtype
        return _Leaf(cls, bound, spec["config"], where)

    def _container(self, cls, spec, prefix, where, depth):
        children = spec.get("children")
        if set(spec) != {"class", "children"} or not isinstance(children, list):
            raise ValueError(f"{self.path}: {where} ({cls.__name__}) must have exactly the "
                             f"entries \"class\" and \"children\" (a list)")
        planned, seen = [], set()
        for i, pair in enumerate(children):
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError(f"{self.path}: {where} child {i} must be a [name, module] pair")
            name, child = pair
            problem = _child_name_problem(name, cls)
            if problem is None and cls is ModuleList and name != str(i):
                problem = f"ModuleList child {i} must be named \"{i}\", got {_short(name)}"
            if problem is None and name in seen:
                problem = f"two children are named {name!r}"
            if problem is not None:
                raise ValueError(f"{self.path}: {where}: {problem}")
            seen.add(name)
            planned.append((name, self.node(child, f"{prefix}{name}.", f"{where}.{name}",
                                            depth + 1)))
        return _Branch(cls, planned)

    def check_stored(self, stored: Dict[str, tuple]) -> None:
        """Compare the arrays the configs imply with the file's, before building."""
        def opaque(key):  # under a module whose arrays the configs do not tell?
            parts = key.split(".")
            prefixes = [""] + [".".join(parts[:i]) + "." for i in range(1, len(parts))]
            return any(p in self.opaque for p in prefixes)
        problems = _compare(self.expected, {k: v for k, v in stored.items()
                                            if k in self.expected or not opaque(k)})
        if problems:
            raise ValueError(f"{self.path}: the tensors do not match the architecture: "
                             + "; ".join(problems))


def _compare(expected: Dict[str, tuple], stored: Dict[str, tuple], limit: int = 8) -> list:
    """Problems between {key: (shape, dtype)} wanted and found, at most `limit` of each."""
    def listed(keys):
        return ", ".join(map(_short, keys[:limit])) + (f" (+{len(keys) - limit} more)"
                                                       if len(keys) > limit else "")
    missing = [k for k in expected if k not in stored]
    unexpected = [k for k in stored if k not in expected]
    wrong = [f"{k} is {stored[k][1]} {stored[k][0]}, expected {expected[k][1]} {expected[k][0]}"
             for k in expected if k in stored and tuple(stored[k]) != tuple(expected[k])]
    problems = []
    if missing:
        problems.append(f"missing tensor(s) {listed(missing)}")
    if unexpected:
        problems.append(f"unexpected tensor(s) {listed(unexpected)}")
    return problems + wrong[:limit]


def _build(node, path: str) -> Module:
    if isinstance(node, _Branch):
        built = [(name, _build(child, path)) for name, child in node.children]
        if node.cls is Sequential:
            return Sequential(OrderedDict(built))
        return ModuleList([m for _, m in built])
    cls, bound, config, where = node
    try:
        module = cls(*bound.args, **bound.kwargs)
    except Exception as err:  # noqa: BLE001 - the file's values broke a constructor
        raise ValueError(f"{path}: {where}: {cls.__name__}(**config) raised "
                         f"{type(err).__name__}: {err}") from None
    if config is not None:  # built-ins: the layer must describe itself as the file does
        echoed = module.get_config()
        differ = [k for k in config if _dumps(echoed.get(k)) != _dumps(config[k])]
        if differ:
            raise ValueError(f"{path}: {where}: {cls.__name__} does not accept "
                             + ", ".join(f"{k}={_short(config[k])}" for k in differ))
    return module


# ---- reading ------------------------------------------------------------------------

class _Reader:
    """An open safetensors file: its metadata, each tensor's (shape, dtype), and
    reads, with every failure as a ValueError naming the file."""

    def __init__(self, path):
        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise FileNotFoundError(f"no such file: {self.path}")
        if os.path.isdir(self.path):
            raise IsADirectoryError(f"{self.path} is a directory, not a saved model")
        try:
            self._file = safe_open(self.path, framework="np")
            self.metadata = self._file.metadata() or {}
            self.stored = {}
            for key in self._file.keys():
                sl = self._file.get_slice(key)
                self.stored[key] = (tuple(sl.get_shape()), sl.get_dtype())
        except OSError:
            raise
        except Exception as err:  # noqa: BLE001 - SafetensorError and kin: a broken file
            raise ValueError(f"{self.path} is not a readable safetensors file "
                             f"({type(err).__name__}: {err})") from None

    def tensor(self, key: str) -> np.ndarray:
        try:
            return np.array(self._file.get_tensor(key), copy=True)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{self.path}: cannot read tensor {key!r} "
                             f"({type(err).__name__}: {err})") from None

    def fastnn_content(self) -> Optional[str]:
        """"model" or "checkpoint" for fastnn's files, None for other safetensors files."""
        meta = self.metadata
        if meta.get("format") != FORMAT:
            return None
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{self.path} has fastnn format version "
                             f"{_short(meta.get('format_version'))}; this fastnn reads "
                             f"version {FORMAT_VERSION}")
        return meta.get("content")

    def expect(self, content: str, instead: str) -> None:
        found = self.fastnn_content()
        if found is None:
            raise ValueError(f"{self.path} is a safetensors file but not one fastnn wrote (no "
                             f"fastnn metadata); fastnn.load_state_dict(path) reads its arrays")
        if found != content:
            raise ValueError(f"{self.path} holds a fastnn {_short(found)}, not a {content}: "
                             f"{instead}")

    def json(self, key: str, required: bool = True):
        text = self.metadata.get(key)
        if text is None:
            if required:
                raise ValueError(f"{self.path}: the metadata has no {key!r} entry")
            return None
        return _loads(text, f"metadata[{key!r}]", self.path)


def load_state_dict(path) -> Dict[str, np.ndarray]:
    """The arrays of a safetensors file as {key: ndarray}: a fastnn.save file's
    state_dict, a checkpoint's model arrays (without the "model." prefix), or any
    other safetensors file's tensors. For models fastnn.load cannot rebuild:
    model.load_state_dict(fastnn.load_state_dict(path))."""
    reader = _Reader(path)
    keys = list(reader.stored)
    if reader.fastnn_content() == "checkpoint":
        keys = [k for k in keys if k.startswith("model.")]
        return {k[len("model."):]: reader.tensor(k) for k in keys}
    return {k: reader.tensor(k) for k in keys}


def _state_signature(module: Module) -> Dict[str, tuple]:
    """{state_dict key: (shape, safetensors dtype)}, without copying the arrays."""
    return {k: (v.shape, _dtype_name(v)) for k, v in module._state_items()}


# ---- models -------------------------------------------------------------------------

def save(model: Module, path) -> None:
    """Write model's state_dict and architecture to a .safetensors file at path
    (atomically: an existing file is replaced only once the new one is complete).
    Every module must be a container (Sequential, ModuleList), a fastnn.nn layer,
    or a class registered with fastnn.register_module that defines get_config();
    otherwise TypeError, and nothing is written."""
    if not isinstance(model, Module):
        raise TypeError(f"fastnn.save takes a fastnn.nn.Module, got {type(model).__name__}")
    architecture = _describe(model, "model", 0)
    slots = [v for m in _walk(model) for registry in ("_parameters", "_buffers")
             for v in m.__dict__[registry].values() if v is not None]
    if len({id(v) for v in slots}) != len(slots):
        raise ValueError("cannot save a model that uses one module or parameter in two places "
                         "(tied weights): fastnn.load would build them apart; save its "
                         "weights with fastnn.save_checkpoint and restore them with "
                         "model.load_state_dict(fastnn.load_state_dict(path))")
    _write(path, model.state_dict(), {**_header("model"), "architecture": _dumps(architecture)})


def _walk(module: Module):
    """Every module position in the tree, shared ones as often as they appear."""
    yield module
    for _, child in module.named_children():
        yield from _walk(child)


def load(path) -> Module:
    """Rebuild the model fastnn.save wrote at path and load its weights; it comes
    back in training mode, as a freshly built module. ValueError naming the file
    for anything wrong with its contents (see the module docstring)."""
    reader = _Reader(path)
    reader.expect("model", "use fastnn.load_checkpoint(path, model, ...)")
    plan = _Plan(reader.path)
    root = plan.node(reader.json("architecture"), "", "model", 0)
    plan.check_stored(reader.stored)
    model = _build(root, reader.path)
    problems = _compare(_state_signature(model), reader.stored)
    if problems:
        raise ValueError(f"{reader.path}: the tensors do not match the rebuilt model: "
                         + "; ".join(problems))
    state = {k: reader.tensor(k) for k in reader.stored}
    try:
        model.load_state_dict(state, strict=True)
    except ValueError as err:
        raise ValueError(f"{reader.path}: {err}") from None
    return model.train()


# ---- checkpoints --------------------------------------------------------------------

def save_checkpoint(path, model: Module, optimizer=None, scheduler=None, epoch=None,
                    **extra) -> None:
    """Write everything a resumed training run needs to one .safetensors file
    (atomically): model arrays, optimizer state, scheduler state, epoch, fastnn's
    random stream and `extra` (JSON values: ints, floats, strings, lists, dicts)."""
    if not isinstance(model, Module):
        raise TypeError(f"save_checkpoint takes a fastnn.nn.Module, got {type(model).__name__}")
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    metadata = _header("checkpoint")
    if optimizer is not None:
        sd = optimizer.state_dict()
        steps = {}
        for index, entry in sd["state"].items():
            steps[str(index)] = float(np.asarray(entry.get("step", 0)))
            for name, value in entry.items():
                if name != "step":
                    tensors[f"optimizer.state.{index}.{name}"] = np.array(value)
        metadata["optimizer"] = _dumps({
            "class": type(optimizer).__name__, "steps": steps,
            "param_groups": _to_json(sd["param_groups"], "the optimizer's param_groups")})
    if scheduler is not None:
        metadata["scheduler"] = _dumps({
            "class": type(scheduler).__name__,
            "state": _to_json(scheduler.state_dict(), "the scheduler's state_dict()")})
    metadata["epoch"] = _dumps(_to_json(epoch, "epoch"))
    metadata["extra"] = _dumps(_to_json(extra, "the extra keyword arguments"))
    metadata["rng"] = _dumps(get_rng_state())
    _write(path, tensors, metadata)


_OPT_KEY = re.compile(r"optimizer\.state\.(0|[1-9][0-9]{0,9})\.([A-Za-z_][A-Za-z0-9_]*)")


def _optimizer_state(reader: _Reader, optimizer) -> dict:
    """The checkpoint's optimizer state_dict, checked against `optimizer`'s type."""
    path = reader.path
    saved = reader.json("optimizer", required=False)
    if saved is None:
        raise ValueError(f"{path} holds no optimizer state; call load_checkpoint without "
                         f"an optimizer")
    if not isinstance(saved, dict) or set(saved) != {"class", "steps", "param_groups"}:
        raise ValueError(f"{path}: the optimizer metadata is malformed")
    name = type(optimizer).__name__
    if saved["class"] != name:
        raise ValueError(f"{path} holds the state of optimizer class "
                         f"{_short(saved['class'])}; the optimizer given is {name}")
    steps, groups = saved["steps"], saved["param_groups"]
    if not isinstance(steps, dict) or not isinstance(groups, list) or not all(
            isinstance(g, dict) and isinstance(g.get("params"), list)
            and all(type(i) is int for i in g["params"]) for g in groups):
        raise ValueError(f"{path}: the optimizer's param groups or steps are malformed")
    state = {}
    for index, step in steps.items():
        if not re.fullmatch(r"0|[1-9][0-9]{0,9}", index) or type(step) not in (int, float):
            raise ValueError(f"{path}: the optimizer's steps are malformed")
        state[int(index)] = {"step": float(step)}
    for key in reader.stored:
        m = _OPT_KEY.fullmatch(key)
        if key.startswith("optimizer.") and (m is None or int(m.group(1)) not in state):
            raise ValueError(f"{path}: unexpected tensor {_short(key)}")
        if m is not None:
            state[int(m.group(1))][m.group(2)] = reader.tensor(key)
    for group, current in zip(groups, optimizer.param_groups):
        for k, v in group.items():  # JSON made tuples (Adam's betas) lists
            if isinstance(current.get(k), tuple) and isinstance(v, list):
                group[k] = tuple(v)
    return {"state": state, "param_groups": groups}


def load_checkpoint(path, model: Module, optimizer=None, scheduler=None) -> dict:
    """Restore model, optimizer and scheduler (each optional but the model) and
    fastnn's random stream from a save_checkpoint file; returns {"epoch": ...,
    **extra}. Nothing is changed unless all of it loads: ValueError naming the file
    and what differs (another model, optimizer type, number of param groups...)."""
    reader = _Reader(path)
    reader.expect("checkpoint", "use fastnn.load(path)")
    path = reader.path
    stored = {k[len("model."):]: v for k, v in reader.stored.items() if k.startswith("model.")}
    other = [k for k in reader.stored if not k.startswith(("model.", "optimizer."))]
    problems = _compare(_state_signature(model), stored)
    if other:
        problems.append(f"unexpected tensor(s) {', '.join(map(_short, other[:8]))}")
    if problems:
        raise ValueError(f"{path}: the checkpoint does not fit this model: "
                         + "; ".join(problems))
    model_state = {k: reader.tensor("model." + k) for k in stored}
    opt_state = _optimizer_state(reader, optimizer) if optimizer is not None else None
    sched_state = None
    if scheduler is not None:
        saved = reader.json("scheduler", required=False)
        if saved is None:
            raise ValueError(f"{path} holds no scheduler state; call load_checkpoint without "
                             f"a scheduler")
        name = type(scheduler).__name__
        if not isinstance(saved, dict) or saved.get("class") != name or "state" not in saved:
            found = saved.get("class") if isinstance(saved, dict) else None
            raise ValueError(f"{path} holds the state of scheduler class {_short(found)}; "
                             f"the scheduler given is {name}")
        sched_state = saved["state"]
    epoch, extra, rng = reader.json("epoch"), reader.json("extra"), reader.json("rng")
    if not isinstance(extra, dict):
        raise ValueError(f"{path}: the extra metadata must be a JSON object")

    undo = [(model, model.state_dict())]
    try:
        model.load_state_dict(model_state, strict=True)
        for part, state in ((optimizer, opt_state), (scheduler, sched_state)):
            if part is not None:
                undo.append((part, part.state_dict()))
                part.load_state_dict(state)
        set_rng_state(rng)
    except Exception as err:  # noqa: BLE001 - put back what was loaded, then report
        for part, state in reversed(undo):
            with contextlib.suppress(Exception):
                part.load_state_dict(state)
        raise ValueError(f"{path}: cannot restore the checkpoint: {type(err).__name__}: "
                         f"{err}") from None
    return {"epoch": epoch, **{k: v for k, v in extra.items() if k != "epoch"}}
