"""Imports go one way (DESIGN.md, "Layers of the system"):
_C -> ops -> nn -> optim -> {data, training, callbacks, serialization, distributed} -> cli,
and bench is a tool beside the product that only the CLI's bench command imports.

Every import statement of every module under src/fastnn (those inside functions
too) is parsed with ast and checked against the layer table below."""
import ast
import pathlib
import subprocess
import sys

import pytest

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "fastnn"

# module (or package prefix) -> layer; a module may import only from its layer or below
LAYERS = {
    "fastnn._C": 0, "fastnn._build_config": 0, "fastnn._args": 0, "fastnn._config": 0,
    "fastnn.random": 0,
    "fastnn.ops": 1,
    "fastnn.nn": 2,
    "fastnn.optim": 3,
    "fastnn.data": 4, "fastnn.training": 4, "fastnn.callbacks": 4, "fastnn.serialization": 4,
    "fastnn.metrics": 4, "fastnn.baselines": 4, "fastnn.models": 4, "fastnn.distributed": 4,
    "fastnn": 5,           # the package itself: fastnn/__init__.py imports the library
    "fastnn.demo": 6, "fastnn.demo_gpt": 6, "fastnn.demo_distributed": 6,
    "fastnn.cli": 7,
}
TOOL = "fastnn.bench"      # beside the product
MAY_IMPORT_C = {"fastnn.ops"}  # besides layer 0 (fastnn._config holds the runtime facts)


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str) -> bool:
    """Is fastnn.x.y a module or package of the source tree (or the extension _C)?"""
    if name == "fastnn._C" or name == "fastnn._build_config":
        return True
    rel = pathlib.Path(*name.split("."))
    return (SRC / rel).with_suffix(".py").exists() or (SRC / rel / "__init__.py").exists()


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer(name: str):
    best = max((p for p in LAYERS if within(name, p)), key=len, default=None)
    return None if best is None else LAYERS[best]


def imports(path: pathlib.Path):
    """(imported fastnn module, enclosing function names, line) for every import in path."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(), str(path))

    def walk(node, functions):
        for child in ast.iter_child_nodes(node):
            inner = functions
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = functions + (child.name,)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, inner, child.lineno
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    source = ".".join(base + ([child.module] if child.module else []))
                else:
                    source = child.module
                for alias in child.names:
                    sub = f"{source}.{alias.name}"
                    yield (sub if is_module(sub) else source), inner, child.lineno
            yield from walk(child, inner)

    for target, functions, line in walk(tree, ()):
        if within(target, "fastnn"):
            yield target, functions, line


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = [module_name(p) for p in SOURCES
               if layer(module_name(p)) is None and not within(module_name(p), TOOL)]
    assert not missing, f"add {missing} to LAYERS in tests/test_layering.py"


def test_imports_go_one_way():
    bad = []
    for path in SOURCES:
        source = module_name(path)
        for target, functions, line in imports(path):
            where = f"{path.relative_to(SRC)}:{line}: {source} imports {target}"
            if within(target, TOOL):
                if within(source, TOOL):
                    continue
                if source != "fastnn.cli" or not functions or "bench" not in functions[0]:
                    bad.append(f"{where} (only the CLI's bench command may import the tool)")
                continue
            if target == "fastnn._C" and layer(source) != 0 and source not in MAY_IMPORT_C:
                bad.append(f"{where} (above ops, ask fastnn._config or fastnn.ops)")
                continue
            if within(source, TOOL):
                if within(target, "fastnn.cli"):
                    bad.append(f"{where} (the tool does not import the CLI)")
                continue
            if layer(target) is None:
                bad.append(f"{where} (unknown module)")
            elif layer(target) > layer(source):
                bad.append(f"{where} (layer {layer(source)} reaching up to {layer(target)})")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_violations(tmp_path, monkeypatch):
    """The parse finds imports inside functions, relative imports and `from fastnn import x`."""
    fake = tmp_path / "fastnn"
    (fake / "nn").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "nn" / "__init__.py").write_text("")
    (fake / "training.py").write_text("")
    (fake / "nn" / "module.py").write_text(
        "from fastnn import training\n"
        "def fit():\n    from .. import training\n    import fastnn.cli\n")
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path)
    found = [(t, f) for t, f, _ in imports(fake / "nn" / "module.py")]
    assert found == [("fastnn.training", ()), ("fastnn.training", ("fit",)),
                     ("fastnn.cli", ("fit",))]


@pytest.mark.parametrize("statement", ["import fastnn", "import fastnn.training",
                                       "from fastnn import serialization, demo"])
def test_the_library_does_not_load_the_bench_tool(statement):
    code = (f"{statement}\nimport sys\n"
            "print(sorted(m for m in sys.modules if m.startswith(('fastnn.bench', 'fastnn.cli'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_module_methods_come_from_training():
    import fastnn
    from fastnn import nn, training
    assert nn.Module.fit.__module__ == "fastnn.training"
    assert nn.Module.fit.__doc__ == "Keras-style training; see fastnn.training.fit."
    assert "fastnn.training" not in {t for t, _, _ in imports(PACKAGE / "nn" / "module.py")}
    assert fastnn.training is training
