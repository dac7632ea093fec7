"""No import circles among db/, engine/ and workbench/, and the CLI imported only by itself.

The graph is read from the source with ast, so an import inside a function counts as much as one
at the top of a module: a circle that only closes at run time is still a circle. Importing
`a.b.c` is an edge to `a.b.c` (and `from a.b import c` to `a.b.c` when `c` is a module), never
to the parent packages Python initialises on the way, so that a package's `__init__` re-exporting
its own modules is not reported.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("db", "engine", "workbench")


def _modules() -> dict[str, Path]:
    """Every module of the three rooms, by dotted name."""
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _imported(tree: ast.AST, name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that module `name` (at `path`) imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from a.b import c` imports the module a.b.c when there is one, else a name of a.b.
            targets = [f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                       for alias in node.names]
        else:
            continue
        for target in targets:
            # `import a.b.c` of a name that is not a module (a typo, an attribute) counts as
            # its nearest module.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (at module level or inside a function)."""
    modules = _modules()
    return {name: _imported(ast.parse(path.read_text(), str(path)), name, path, modules)
            for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        # Iterative, so a deep chain of imports never hits the recursion limit.
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return [_path_through(graph, component) for component in components]


def _path_through(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A readable cycle inside `component`: from its first module back to it (breadth first)."""
    members = set(component)
    start = component[0]
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & members):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    return component


def test_the_graph_sees_function_level_imports():
    graph = import_graph()
    # engine.jobs.runner imports its handlers by name at run time, never by an import
    # statement; engine.cli.main imports engine.demo inside the `demo` command.
    assert "engine.demo" in graph["engine.cli.main"]
    assert "engine.jobs.handlers" not in graph["engine.jobs.runner"]


def test_the_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_there_are_no_import_cycles():
    cycles = _cycles(import_graph())
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def test_only_the_cli_imports_the_cli():
    graph = import_graph()
    offenders = sorted(f"{name} → {target}" for name, targets in graph.items()
                       if not name.startswith("engine.cli")
                       for target in targets if target == "engine.cli"
                       or target.startswith("engine.cli."))
    assert not offenders, "outside engine/cli, nothing imports the CLI:\n" + "\n".join(offenders)
