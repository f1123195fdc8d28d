"""tf_madan's module graph: no import cycle, small modules (STYLE.md: split above ~400 lines)."""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "tf_madan"
MAX_LINES = 420


def _imports():
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "tf_madan":
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tf_madan."):
                deps.add(node.module.split(".")[1])
        graph[name] = deps & set(modules)
    return graph


def test_no_import_cycle():
    graph = _imports()
    cycles = []

    def visit(name, path):
        for dep in sorted(graph[name]):
            if dep in path:
                cycles.append(path[path.index(dep) :] + [dep])
            elif len(path) < len(graph):
                visit(dep, path + [dep])

    for name in graph:
        visit(name, [name])
    assert not cycles, cycles[:3]


def test_modules_stay_small():
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {n: s for n, s in sizes.items() if s > MAX_LINES} == {}
