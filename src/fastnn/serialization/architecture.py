"""The module tree as JSON: describe() a model for fastnn.save; Plan checks a
file's architecture and the tensor shapes it implies before anything is built;
build() makes the modules.

A layer is {"class": name, "config": get_config()}; a container (a module
class inheriting fastnn.nn.container_protocol.Container) is {"class": name,
"children": [[name, spec], ...]} from named_children(), with "config":
container_config() when that is not empty. No container class is named here:
the protocol says what one is and how it is rebuilt.
"""
from __future__ import annotations

import functools
import inspect
from typing import Dict, NamedTuple, Optional

from fastnn.nn.container_protocol import Container
from fastnn.nn.module import Module
from fastnn.serialization.files import MAX_JSON_DEPTH, compare, dumps, short, to_json
from fastnn.serialization.registry import lookup

MAX_MODULE_DEPTH = 64        # containers nested in containers
MAX_MODULES = 100_000        # modules described by one architecture


# ---- describing a model (fastnn.save) ---------------------------------------------

def child_name_problem(name, container: type) -> Optional[str]:
    """Why `name` cannot be a child of `container` rebuilt from a file (None if it can)."""
    if not isinstance(name, str) or not 0 < len(name) <= 256:
        return f"child names must be strings of 1 to 256 characters, got {short(name)}"
    if "." in name or name.startswith("_") or name == "training" or hasattr(container, name):
        return f"{short(name)} cannot name a child of {container.__name__}"
    return None


def _unsaveable(where: str, cls: type, needs: str) -> TypeError:
    return TypeError(
        f"cannot save {where} ({cls.__module__}.{cls.__qualname__}): fastnn.save rebuilds "
        f"a module from its class name and {needs}; define {needs} returning its "
        f"constructor's keyword arguments and register the class with "
        f"fastnn.register_module (or save only its weights with fastnn.save_checkpoint)")


def _config_json(config, where: str, method: str) -> dict:
    """A get_config() / container_config() result as JSON (TypeError if it is not one)."""
    if not isinstance(config, dict):
        raise TypeError(f"{where}.{method}() must return a dict, got {type(config).__name__}")
    for key in config:
        if not isinstance(key, str) or not key.isidentifier():
            raise TypeError(f"{where}.{method}() keys must be argument names, got "
                            f"{short(key)}")
    return {k: to_json(v, f"{where}.{method}()[{k!r}]", dicts=False) for k, v in config.items()}


def describe(module: Module, where: str = "model", depth: int = 0) -> dict:
    """The JSON architecture of `module` (TypeError / ValueError if it cannot be saved)."""
    if depth > MAX_MODULE_DEPTH:
        raise ValueError(f"{where} is nested more than {MAX_MODULE_DEPTH} containers deep")
    cls = type(module)
    registered = lookup(cls.__name__)[0] is cls
    if isinstance(module, Container):
        if not registered:
            raise _unsaveable(where, cls, "container_config()")
        node = {"class": cls.__name__}
        config = _config_json(module.container_config(), where, "container_config")
        if config:
            node["config"] = config
        children = []
        for name, child in module.named_children():
            problem = child_name_problem(name, cls)
            if problem is not None:
                raise ValueError(f"cannot save {where}: {problem}")
            children.append([name, describe(child, f"{where}.{name}", depth + 1)])
        node["children"] = children
        return node
    try:
        config = module.get_config()
    except NotImplementedError:
        config = None
    if config is None or not registered:
        raise _unsaveable(where, cls, "get_config()")
    return {"class": cls.__name__, "config": _config_json(config, where, "get_config")}


# ---- checking a file's architecture (fastnn.load) ---------------------------------

def _check_config_value(value, depth: int) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    return (isinstance(value, list) and depth < MAX_JSON_DEPTH
            and all(_check_config_value(v, depth + 1) for v in value))


@functools.lru_cache(maxsize=256)
def _signature(cls: type) -> inspect.Signature:
    return inspect.signature(cls)


def _checked_config(cls: type, config, builtin: bool, where: str):
    """(config, cls's constructor signature) once config is a JSON object of JSON
    scalars and lists whose keys the constructor takes (ValueError otherwise)."""
    if not isinstance(config, dict):
        raise ValueError(f"{where}: config must be a JSON object, got {type(config).__name__}")
    for key, value in config.items():
        if not key.isidentifier() or key.startswith("_"):
            raise ValueError(f"{where}: {short(key)} is not an argument name")
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
                         f"{', '.join(map(short, unexpected))}")
    return config, sig


def _arguments(cls: type, config, builtin: bool, where: str) -> inspect.BoundArguments:
    """config checked and bound to cls's constructor, defaults applied (ValueError on
    any problem)."""
    config, sig = _checked_config(cls, config, builtin, where)
    try:
        bound = sig.bind(**config)
    except TypeError as err:
        raise ValueError(f"{where}: {cls.__name__}: {err}") from None
    bound.apply_defaults()
    return bound


def describes_itself(cls: type) -> bool:
    """Whether a (non-container) class defines get_config(), as fastnn.save needs."""
    return getattr(cls, "get_config", None) is not Module.get_config


def _state_shapes(cls: type, arguments: dict, where: str) -> Optional[Dict[str, tuple]]:
    """cls.state_shapes(arguments), its ValueError / TypeError as ValueError, its
    result checked to be {key: (shape, dtype)} or None."""
    try:
        state = cls.state_shapes(arguments)
    except Exception as err:  # noqa: BLE001 - the file's values broke the class's check
        raise ValueError(f"{where}: {err}" if isinstance(err, (TypeError, ValueError)) else
                         f"{where}: {cls.__name__}.state_shapes raised "
                         f"{type(err).__name__}: {err}") from None
    if state is None:
        return None
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, tuple) and len(v) == 2
            and isinstance(v[0], tuple) and all(type(n) is int and n >= 0 for n in v[0])
            and isinstance(v[1], str) for k, v in state.items()):
        raise TypeError(f"{cls.__qualname__}.state_shapes must return None or "
                        f"{{key: (shape tuple, dtype name)}}, got {short(state)}")
    return state


class Leaf(NamedTuple):
    cls: type
    bound: inspect.BoundArguments
    config: Optional[dict]  # built-ins only: what the built layer's get_config() must echo
    where: str


class Branch(NamedTuple):
    cls: type       # a Container class
    config: dict    # container_config(), as the file holds it
    builtin: bool   # a fastnn.nn container: its container_config() must echo config
    children: list  # [(name, Leaf or Branch)]
    where: str


class _PrefixTree:
    """Module paths ("" or "a.b.") as a tree of their names, so that whether a key
    lies under one of them takes time linear in the key (the key's prefixes as
    strings would take quadratic time in a key of many dots)."""

    def __init__(self, prefixes):
        self.root: dict = {}
        for prefix in prefixes:
            node = self.root
            for name in prefix.split(".")[:-1]:
                node = node.setdefault(name, {})
            node[None] = True  # a prefix ends here

    def covers(self, key: str) -> bool:
        node = self.root
        for name in key.split(".")[:-1]:
            if None in node:
                return True
            node = node.get(name)
            if node is None:
                return False
        return None in node


class Plan:
    """The checked architecture of one file, before anything is built: node()
    returns the tree of Leaf / Branch, and collects the tensors the layers'
    configs imply (state_shapes) for check_stored()."""

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
        cls, builtin = lookup(name)
        if cls is None:
            raise ValueError(f"{self.path}: {where} has the unknown class {short(name)}: only "
                             f"fastnn.nn's layers and classes registered with "
                             f"fastnn.register_module can be loaded")
        if issubclass(cls, Container):
            return self._container(cls, builtin, spec, prefix, where, depth)
        if not describes_itself(cls):
            raise ValueError(f"{self.path}: {where} names {name}, which fastnn.load cannot "
                             f"build: it does not define get_config(), so fastnn.save never "
                             f"writes it")
        if set(spec) != {"class", "config"}:
            raise ValueError(f"{self.path}: {where} ({name}) must have exactly the entries "
                             f"\"class\" and \"config\"")
        context = f"{self.path}: {where} ({name})"
        bound = _arguments(cls, spec["config"], builtin, context)
        state = _state_shapes(cls, dict(bound.arguments), context)
        if state is None:
            self.opaque.add(prefix)
        else:
            for key, shape_dtype in state.items():
                self.expected[prefix + key] = shape_dtype
        return Leaf(cls, bound, spec["config"] if builtin else None, where)

    def _container(self, cls, builtin, spec, prefix, where, depth):
        children = spec.get("children")
        if not {"class", "children"} <= set(spec) <= {"class", "config", "children"} \
                or not isinstance(children, list):
            raise ValueError(f"{self.path}: {where} ({cls.__name__}) must have the entries "
                             f"\"class\" and \"children\" (a list), and optionally \"config\"")
        config, _ = _checked_config(cls, spec.get("config", {}), builtin,
                                    f"{self.path}: {where} ({cls.__name__})")
        planned, seen = [], set()
        for i, pair in enumerate(children):
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError(f"{self.path}: {where} child {i} must be a [name, module] pair")
            name, child = pair
            problem = child_name_problem(name, cls)
            if problem is None and name in seen:
                problem = f"two children are named {name!r}"
            if problem is not None:
                raise ValueError(f"{self.path}: {where}: {problem}")
            seen.add(name)
            planned.append((name, self.node(child, f"{prefix}{name}.", f"{where}.{name}",
                                            depth + 1)))
        return Branch(cls, config, builtin, planned, where)

    def check_stored(self, stored: Dict[str, tuple]) -> None:
        """Compare the arrays the configs imply with the file's, before building."""
        opaque = _PrefixTree(self.opaque)
        problems = compare(self.expected, {k: v for k, v in stored.items()
                                           if k in self.expected or not opaque.covers(k)})
        if problems:
            raise ValueError(f"{self.path}: the tensors do not match the architecture: "
                             + "; ".join(problems))


# ---- building -----------------------------------------------------------------------

def _echo_problem(module: Module, method: str, config: dict, path: str, where: str) -> list:
    """The keys of config that a built module's own description (its get_config() or
    container_config()) reports otherwise."""
    try:
        echoed = getattr(module, method)()
        return [k for k in config if dumps(echoed.get(k)) != dumps(config[k])]
    except Exception as err:  # noqa: BLE001 - a module the file's values made cannot say
        raise ValueError(f"{path}: {where}: {type(module).__name__}.{method}() raised "
                         f"{type(err).__name__}: {err}") from None


def build(node, path: str) -> Module:
    """The module a planned node describes (ValueError naming path if the file's
    values do not make one)."""
    if isinstance(node, Branch):
        cls, where = node.cls, node.where
        children = [(name, build(child, path)) for name, child in node.children]
        try:
            module = cls.from_children(children, **node.config)
        except Exception as err:  # noqa: BLE001 - the file's values broke a constructor
            raise ValueError(f"{path}: {where}: {cls.__name__}.from_children raised "
                             f"{type(err).__name__}: {err}") from None
        names = [name for name, _ in module.named_children()]
        if not isinstance(module, cls) or names != [name for name, _ in children]:
            raise ValueError(f"{path}: {where}: {cls.__name__}.from_children did not rebuild "
                             f"the children {[n for n, _ in children]} (got {names})")
        if node.builtin:
            differ = _echo_problem(module, "container_config", node.config, path, where)
            if differ:
                raise ValueError(f"{path}: {where}: {cls.__name__} does not accept "
                                 + ", ".join(f"{k}={short(node.config[k])}" for k in differ))
        return module
    cls, bound, config, where = node
    try:
        module = cls(*bound.args, **bound.kwargs)
    except Exception as err:  # noqa: BLE001 - the file's values broke a constructor
        raise ValueError(f"{path}: {where}: {cls.__name__}(**config) raised "
                         f"{type(err).__name__}: {err}") from None
    if config is not None:  # built-ins: the layer must describe itself as the file does
        differ = _echo_problem(module, "get_config", config, path, where)
        if differ:
            raise ValueError(f"{path}: {where}: {cls.__name__} does not accept "
                             + ", ".join(f"{k}={short(config[k])}" for k in differ))
    return module
