"""The package's arrows point one way: reads every ``import`` in ``src/deepfer`` with ``ast`` (those
inside functions too, since a lazy import is still a dependency) and checks the layering of
``STYLE.md`` and that no modules, and no subpackages (``deepfer.models``, ``deepfer.weights``, ...),
import each other, directly or through others."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "deepfer"
# The library's lower layers: what they may never import (the product and training layers above).
LOWER = ("data", "models", "layers", "vision", "weights", "labels", "errors", "files", "options", "version")
UPPER = ("inference", "explain", "serve", "train", "distributed", "cli")


def _modules(src: Path = SRC) -> dict[str, Path]:
    out = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """The deepfer module ``name`` refers to: itself, or the nearest enclosing module."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """module -> the deepfer modules it imports (``from pkg import mod`` counts as ``pkg.mod``)."""
    modules = _modules(src)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for name in names:
                if name.split(".")[0] != PACKAGE:
                    continue
                target = _target(name, modules)
                if target is not None and target != mod:
                    graph[mod].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """subpackage -> the subpackages its modules import: ``deepfer.models.checkpoint`` counts as
    ``deepfer.models``; a top-level module (``deepfer.errors``) is its own node."""
    def key(module: str) -> str:
        return ".".join(module.split(".")[:2])

    out: dict[str, set[str]] = {key(m): set() for m in graph}
    for m, targets in graph.items():
        out[key(m)] |= {key(t) for t in targets if key(t) != key(m)}
    return out


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_graph_sees_lazy_and_relative_imports() -> None:
    graph = import_graph()
    assert "deepfer.errors" in graph["deepfer.data"] or any(
        "deepfer.errors" in graph[m] for m in graph if m.startswith("deepfer.data.")
    )
    # deepfer/__init__.py imports the Recognizer inside a function: still an edge.
    assert any(t.startswith("deepfer.inference") for t in graph["deepfer"])


def test_finds_a_planted_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_finds_a_planted_package_cycle(tmp_path: Path) -> None:
    """Two subpackages that import each other through different modules: no module cycle, but a
    package cycle."""
    files = {"__init__.py": "", "a/__init__.py": "", "a/x.py": "from deepfer.b import y\n",
             "a/w.py": "", "b/__init__.py": "", "b/y.py": "", "b/z.py": "def f():\n    from ..a import w\n"}
    for name, text in files.items():
        (tmp_path / PACKAGE / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / PACKAGE / name).write_text(text)
    graph = import_graph(tmp_path)
    assert graph["deepfer.a.x"] == {"deepfer.b.y"} and graph["deepfer.b.z"] == {"deepfer.a.w"}
    assert _cycles(graph) == []
    assert _cycles(package_graph(graph)) == [["deepfer.a", "deepfer.b"]]


def test_lower_layers_never_import_the_upper_ones() -> None:
    bad = sorted(f"{m} -> {t}" for m, targets in import_graph().items() if _layer(m) in LOWER
                 for t in targets if _layer(t) in UPPER)
    assert not bad, "lower layers import upper ones:\n" + "\n".join(bad)


def test_library_never_imports_training_code() -> None:
    bad = sorted(f"{m} -> {t}" for m, targets in import_graph().items()
                 if _layer(m) in ("inference", "explain", "serve") for t in targets if _layer(t) == "train")
    assert not bad, "the library imports deepfer.train:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    cycles = _cycles(import_graph())
    assert not cycles, "modules that import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_no_package_cycles() -> None:
    cycles = _cycles(package_graph(import_graph()))
    assert not cycles, "subpackages that import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)
