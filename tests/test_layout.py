"""The package's layout: every module imports, the import graph (imports inside functions
included; ``if TYPE_CHECKING:`` imports, which never run, left out) has no cycle, and the stage
packages depend only downwards (README, "How it is built")."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "chamtvm"

# Each package may import the packages listed after it (and itself), nothing above it.
LAYERS = ["cli", "pipeline", "api", "transform", "search", "deploy", "accuracy", "latency", "zoo", "devices", "table", "tuning",
          "measure", "lower", "space", "targets", "core"]


def module_imports() -> dict[str, set[str]]:
    """chamtvm module -> chamtvm modules it imports (resolved, relative imports included)."""
    graph: dict[str, set[str]] = {}
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        name = ".".join(parts)
        deps = set()
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                       for n in ast.walk(node)}
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue  # annotations only: no import at run time
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = parts if is_pkg else parts[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                if mod.startswith("chamtvm"):
                    for alias in node.names:  # `from pkg import submodule` is an import of the submodule
                        sub = f"{mod}.{alias.name}"
                        deps.add(sub if (PKG.parent / Path(*sub.split("."))).with_suffix(".py").exists()
                                 or (PKG.parent / Path(*sub.split(".")) / "__init__.py").exists() else mod)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("chamtvm")}
        graph[name] = deps - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if d not in graph:
                continue
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_has_no_cycle():
    cycle = find_cycle(module_imports())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_stage_packages_depend_only_downwards():
    bad = []
    for mod, deps in module_imports().items():
        src = _package(mod)
        if src not in LAYERS:
            continue
        for d in deps:
            dst = _package(d)
            if dst in LAYERS and LAYERS.index(dst) < LAYERS.index(src):
                bad.append(f"{mod} imports {d}")
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_every_package_folder_is_in_the_layer_list_and_documented():
    for init in PKG.glob("*/__init__.py"):
        name = init.parent.name
        assert name in LAYERS, f"chamtvm/{name} is not placed in tests/test_layout.py LAYERS (and the README)"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"chamtvm/{name}/__init__.py needs a docstring saying what flows in and out"


@pytest.mark.parametrize("name", sorted(m.name for m in pkgutil.walk_packages([str(PKG)], "chamtvm.")
                                        if not m.name.endswith("__main__")))
def test_every_module_imports_and_has_a_docstring(name):
    mod = importlib.import_module(name)
    assert (mod.__doc__ or "").strip(), f"{name} has no module docstring"


def package_graph() -> dict[str, set[str]]:
    """Stage package (LAYERS) -> the stage packages it imports directly."""
    out: dict[str, set[str]] = {p: set() for p in LAYERS}
    for mod, deps in module_imports().items():
        src = _package(mod)
        if src in out:
            out[src] |= {_package(d) for d in deps if _package(d) in out and _package(d) != src}
    return out


def dependency_diagram() -> str:
    """The README's diagram of how the packages import each other: per package (in LAYERS
    order) the packages it imports, leaving out arrows that follow from others."""
    graph = package_graph()

    def reach(p: str) -> set[str]:
        seen: set[str] = set()
        todo = list(graph[p])
        while todo:
            q = todo.pop()
            if q not in seen:
                seen.add(q)
                todo += graph[q]
        return seen

    width = max(map(len, LAYERS)) + 1
    lines = []
    for p in LAYERS:
        direct = graph[p]
        kept = [d for d in LAYERS if d in direct and not any(d in reach(o) for o in direct if o != d)]
        lines.append(f"{p:<{width}}──> {', '.join(kept)}" if kept else p)
    return "\n".join(lines)


DIAGRAM_MARK = "<!-- generated by tests/test_layout.py (dependency_diagram): python tests/test_layout.py -->"


def test_readme_diagram_matches_the_imports():
    text = (PKG.parent / "README.md").read_text()
    assert DIAGRAM_MARK in text, "README.md lost its generated dependency diagram"
    block = text.split(DIAGRAM_MARK, 1)[1].split("```", 2)[1]
    shown = block.split("\n", 1)[1].strip("\n")  # after the fence's language tag
    assert shown == dependency_diagram(), ("README.md's diagram differs from the imports; replace it with:\n"
                                           + dependency_diagram())


if __name__ == "__main__":
    print(dependency_diagram())
