"""safetensors files: atomic writing (and the removal of dead writers'
temporaries), safe reading (regular files only; the header read first for
duplicate keys and its size), fastnn's header, the JSON metadata in both
directions (linear-time depth check, duplicate keys refused) and the (shape,
dtype) checks of stored tensors.

Nothing here knows modules beyond ``Module._state_items()``; every failure to
read a file's contents is a ValueError naming the file.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import socket
import stat
import struct
import uuid
from typing import Dict, Optional

import numpy as np
import safetensors.numpy
from safetensors import safe_open

from fastnn._config import __version__

FORMAT = "fastnn"
FORMAT_VERSION = "1"
MAX_JSON_DEPTH = 256         # brackets nested in any JSON metadata entry
MAX_JSON_CHARS = 16 << 20    # characters of one JSON metadata entry
MAX_HEADER_BYTES = 48 << 20  # the safetensors header: tensor table and all metadata


# ---- JSON in both directions ------------------------------------------------------

def short(value, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters, for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def to_json(value, what: str, dicts: bool = True, depth: int = 0):
    """value as plain JSON types (tuples become lists, NumPy scalars Python ones);
    TypeError naming `what` for anything else."""
    if depth > MAX_JSON_DEPTH - 8:
        raise TypeError(f"{what} is nested too deeply to save")
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [to_json(v, f"{what}[{i}]", dicts, depth + 1) for i, v in enumerate(value)]
    if dicts and isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{what} has a key {short(k)} that is not a string")
            out[k] = to_json(v, f"{what}[{k!r}]", dicts, depth + 1)
        return out
    kinds = "None, bool, int, float, str, lists" + (" and dicts" if dicts else "")
    raise TypeError(f"{what} must hold only JSON values ({kinds}), got "
                    f"{type(value).__name__} {short(value)}")


def dumps(value) -> str:
    return json.dumps(value, separators=(",", ":"))


class DuplicateKey(ValueError):
    """A JSON object of a file names one key twice (json.loads would keep the last)."""


def _unique(pairs):
    """object_pairs_hook for json.loads: a dict, or DuplicateKey if a key repeats."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(f"the key {short(key)} appears twice in one object")
            seen.add(key)
    return out


def nests_deeper(text: str, limit: int) -> bool:
    """Whether brackets nest more than `limit` deep in JSON text, outside strings, in
    linear time (checked before json.loads, whose recursion a hostile file could
    otherwise exhaust). A
    quote delimits a string unless an odd run of backslashes stands before it (a
    backslash outside a string is a syntax error, which json.loads reports before
    it reads further); brackets count where an even number of delimiting quotes
    stands before them."""
    if text.count("[") + text.count("{") <= limit:
        return False
    b = np.frombuffer(text.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    index = np.int32 if b.size < 2**31 else np.int64
    at = np.arange(b.size, dtype=index)
    # each position's last byte (at or before it) that is not a backslash
    last_plain = np.maximum.accumulate(np.where(b == ord("\\"), index(-1), at))
    quotes = np.flatnonzero(b == ord('"'))
    before = last_plain[np.maximum(quotes - 1, 0)]
    before[quotes == 0] = -1
    del at, last_plain
    delimiters = np.zeros(b.size, dtype=np.int8)
    delimiters[quotes[(quotes - 1 - before) % 2 == 0]] = 1  # after an even backslash run
    outside = np.cumsum(delimiters, dtype=index) % 2 == 0  # a closing quote counts as out
    del delimiters
    step = (((b == ord("[")) | (b == ord("{"))) & outside).astype(np.int8)
    step -= ((b == ord("]")) | (b == ord("}"))) & outside
    return int(np.cumsum(step, dtype=index).max()) > limit


def loads(text: str, what: str, path: str):
    """json.loads of a metadata entry, size and depth capped, duplicate keys refused;
    ValueError naming path."""
    if len(text) > MAX_JSON_CHARS:
        raise ValueError(f"{path}: {what} is {len(text)} characters long, more than the "
                         f"{MAX_JSON_CHARS} fastnn reads")
    if nests_deeper(text, MAX_JSON_DEPTH):
        raise ValueError(f"{path}: {what} nests more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except DuplicateKey as err:
        raise ValueError(f"{path}: {what} is ambiguous: {err}") from None
    except (ValueError, RecursionError) as err:
        raise ValueError(f"{path}: {what} is not valid JSON ({err})") from None


# ---- writing ------------------------------------------------------------------------

def _writer_tag() -> str:
    """8 hex digits naming this machine and PID namespace (hostname, and on Linux the
    namespace's inode), so that a temporary's PID is only ever judged where it means
    the same process."""
    namespace = ""
    with contextlib.suppress(OSError):
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    return hashlib.sha1(f"{socket.gethostname()}:{namespace}".encode()).hexdigest()[:8]


# .{target name}.fastnn-{writer's pid}-{writer tag}-{random}.tmp
_TEMPORARY = re.compile(r"\..+\.fastnn-([1-9][0-9]{0,9})-([0-9a-f]{8})-[0-9a-f]{12}\.tmp", re.S)


def temporary_name(path: str) -> str:
    """A fresh name for the temporary file that becomes `path`, in its folder."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.fastnn-{os.getpid()}-{_writer_tag()}-"
                                f"{uuid.uuid4().hex[:12]}.tmp")


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process is there
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's live process (or not a PID we can judge)
    return True


def remove_stale_temporaries(folder: str) -> list:
    """Remove the temporaries that writers killed mid-save (kill -9, power loss
    after a reboot) left in folder: fastnn's names whose tag is this machine's
    and whose PID no longer runs. A live writer's, another machine's and
    anything not named by fastnn are kept. Returns the paths removed."""
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return []
    removed, tag = [], _writer_tag()
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            m = _TEMPORARY.fullmatch(entry.name)
            if m is None or m.group(2) != tag or _process_exists(int(m.group(1))):
                continue
            with contextlib.suppress(OSError):
                if entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
                    removed.append(entry.path)
    return removed


def write(path, tensors: Dict[str, np.ndarray], metadata: Dict[str, str]) -> None:
    """Write a safetensors file at path atomically: a temporary file in the same
    folder (named by temporary_name), fsynced, then renamed over path; removed again
    on any failure. Temporaries that killed writers left in the folder go first."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    remove_stale_temporaries(folder)
    for _ in range(100):
        tmp = temporary_name(path)
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


def header(content: str) -> Dict[str, str]:
    """The metadata entries every fastnn file starts with."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "content": content,
            "fastnn_version": __version__}


# ---- reading ------------------------------------------------------------------------

def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return f"mode {stat.filemode(mode)}"


class Reader:
    """An open safetensors file: its metadata, each tensor's (shape, dtype), and
    reads, with every failure as a ValueError naming the file."""

    def __init__(self, path):
        self.path = os.fspath(path)
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file: {self.path}") from None
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(f"{self.path} is a directory, not a saved model")
        if not stat.S_ISREG(info.st_mode):  # a FIFO or a device would block or never end
            raise ValueError(f"{self.path} is not a regular file ({_kind(info.st_mode)}); "
                             f"fastnn reads only files it can map")
        self._check_header()
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

    def _check_header(self) -> None:
        """Read the JSON header as safetensors will, refusing what it would let
        through: a key twice (safetensors keeps the last tensor or metadata entry
        of a name without a word) and headers past MAX_HEADER_BYTES. Structural
        problems it leaves to safetensors' own messages."""
        fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):  # replaced since the stat above
                raise ValueError(f"{self.path} is not a regular file "
                                 f"({_kind(info.st_mode)})")
            with os.fdopen(fd, "rb", closefd=False) as fh:
                start = fh.read(8)
                if len(start) < 8:
                    return
                size = struct.unpack("<Q", start)[0]
                if size > info.st_size - 8:
                    return  # safetensors says the header runs past the end
                if size > MAX_HEADER_BYTES:
                    raise ValueError(f"{self.path}: the safetensors header is {size} bytes "
                                     f"long, more than the {MAX_HEADER_BYTES} fastnn reads")
                raw = fh.read(size)
        finally:
            os.close(fd)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return  # safetensors' message
        if nests_deeper(text, MAX_JSON_DEPTH):
            raise ValueError(f"{self.path}: the safetensors header nests more than "
                             f"{MAX_JSON_DEPTH} levels deep")
        try:
            json.loads(text, object_pairs_hook=_unique)
        except DuplicateKey as err:
            raise ValueError(f"{self.path}: the safetensors header is ambiguous: {err}") \
                from None
        except (ValueError, RecursionError):
            return  # safetensors' message

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
                             f"{short(meta.get('format_version'))}; this fastnn reads "
                             f"version {FORMAT_VERSION}")
        return meta.get("content")

    def expect(self, content: str, instead: str) -> None:
        found = self.fastnn_content()
        if found is None:
            raise ValueError(f"{self.path} is a safetensors file but not one fastnn wrote (no "
                             f"fastnn metadata); fastnn.load_state_dict(path) reads its arrays")
        if found != content:
            raise ValueError(f"{self.path} holds a fastnn {short(found)}, not a {content}: "
                             f"{instead}")

    def json(self, key: str, required: bool = True):
        text = self.metadata.get(key)
        if text is None:
            if required:
                raise ValueError(f"{self.path}: the metadata has no {key!r} entry")
            return None
        return loads(text, f"metadata[{key!r}]", self.path)


def load_state_dict(path) -> Dict[str, np.ndarray]:
    """The arrays of a safetensors file as {key: ndarray}: a fastnn.save file's
    state_dict, a checkpoint's model arrays (without the "model." prefix), or any
    other safetensors file's tensors. For models fastnn.load cannot rebuild:
    model.load_state_dict(fastnn.load_state_dict(path))."""
    reader = Reader(path)
    keys = list(reader.stored)
    if reader.fastnn_content() == "checkpoint":
        keys = [k for k in keys if k.startswith("model.")]
        return {k[len("model."):]: reader.tensor(k) for k in keys}
    return {k: reader.tensor(k) for k in keys}


# ---- tensors against what a model holds -------------------------------------------

_DTYPE_NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64",
                "int32": "I32", "int16": "I16", "int8": "I8", "uint64": "U64", "uint32": "U32",
                "uint16": "U16", "uint8": "U8", "bool": "BOOL"}


def dtype_name(arr: np.ndarray) -> str:
    """arr's dtype as safetensors names it ("F32", "I64", ...)."""
    return _DTYPE_NAMES.get(arr.dtype.name, arr.dtype.name)


def state_signature(module) -> Dict[str, tuple]:
    """{state_dict key: (shape, safetensors dtype)} of a module, without copying."""
    return {k: (v.shape, dtype_name(v)) for k, v in module._state_items()}


def compare(expected: Dict[str, tuple], stored: Dict[str, tuple], limit: int = 8) -> list:
    """Problems between {key: (shape, dtype)} wanted and found, at most `limit` of each."""
    def listed(keys):
        return ", ".join(map(short, keys[:limit])) + (f" (+{len(keys) - limit} more)"
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
