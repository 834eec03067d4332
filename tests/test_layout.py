"""The house: imports flow one way, and every package folder is installed.

Layers, top to bottom (a layer may import those below it, never those above):

    keyclass.pipeline    the CLI, the pipeline factory, runners, prediction, reports
    keyclass.components  the TFX components and the Trainer module
    keyclass.serving     the exported model's layout, clients, in-process prediction

Imports are read from the source with ``ast`` (function-level imports included), so a
lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest
import tomli as tomllib  # pytest brings tomli on Python 3.10

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"pipeline": "keyclass.pipeline", "components": "keyclass.components", "serving": "keyclass.serving"}
LAYER = {"keyclass.pipeline": 2, "keyclass.components": 1, "keyclass.serving": 0}


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every installed module."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Every keyclass module ``path`` imports, at any depth of the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_pkg else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)
    return {m for m in found if m.startswith("keyclass.")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m in _imports(path, name) if m in modules and m != name}
    return graph


def _layer(module: str) -> int:
    return LAYER[".".join(module.split(".")[:2])]


def test_modules_import_only_their_own_layer_or_below():
    upward = [
        f"{src} imports {dst}"
        for src, dsts in sorted(_graph().items())
        for dst in sorted(dsts)
        if _layer(dst) > _layer(src)
    ]
    assert not upward, "imports that run back up:\n" + "\n".join(upward)


def test_no_module_import_cycle():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_package_imports_a_package_that_imports_it_back():
    """Package level: a module's package (folder) never imports a package that imports
    it back, counting a subpackage's imports of its parent and the other way round."""
    packages = {name for name, path in _modules().items() if path.name == "__init__.py"}

    def package(module: str) -> str:
        return module if module in packages else module.rsplit(".", 1)[0]

    edges: dict[str, set[str]] = defaultdict(set)
    for src, dsts in _graph().items():
        for dst in dsts:
            a, b = package(src), package(dst)
            if a != b:
                edges[a].add(b)
    back = sorted(f"{a} <-> {b}" for a in edges for b in edges[a] if a < b and a in edges.get(b, set()))
    assert not back, f"packages importing each other: {back}"


def test_the_cli_module_imports_nothing_heavy_at_module_level():
    """``keyclass --help`` and argument errors must not pay for TensorFlow, TFX or Beam:
    the CLI and everything it imports at module level stays light."""
    heavy = ("tensorflow", "tfx", "apache_beam", "ml_metadata", "tensorflow_data_validation", "keras")
    modules = _modules()
    seen, todo, bad = set(), ["keyclass.pipeline.cli"], []
    while todo:
        name = todo.pop()
        if name in seen or name not in modules:
            continue
        seen.add(name)
        tree = ast.parse(modules[name].read_text())
        for node in tree.body:  # module level only; lazy imports inside functions are fine
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            for n in names:
                if n.split(".")[0] in heavy:
                    bad.append(f"{name} imports {n}")
                todo.append(n)
    assert not bad, bad


def test_every_package_folder_is_installed():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(project["tool"]["setuptools"]["packages"])
    on_disk = {name for name, path in _modules().items() if path.name == "__init__.py"}
    assert on_disk == listed, f"missing from pyproject: {on_disk - listed}; listed but absent: {listed - on_disk}"


@pytest.mark.parametrize("name", ["pipeline", "components", "serving", "kubeflow"])
def test_no_generic_top_level_package_is_claimed(name):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["setuptools"]["packages"]
    assert not any(p == name or p.startswith(f"{name}.") for p in packages)
    assert not (ROOT / "kubeflow" / "__init__.py").exists()
