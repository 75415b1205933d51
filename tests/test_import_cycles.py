"""No import cycles among flowrl's modules (docs/architecture.md: imports point down only).

Every import statement counts, at module level or inside a function (a lazy import is still a dependency), except
those under ``if __name__ == "__main__":`` (that block runs only when the file is the program, as module
``__main__``, never on import) and under ``if TYPE_CHECKING:``. A package's ``__init__`` depends on what it imports
like any module; ``from pkg import name`` depends on ``pkg.name`` when that is a module, else on ``pkg``.
Run: pytest tests/test_import_cycles.py -q
"""

from __future__ import annotations

import ast
from pathlib import Path

import flowrl

ROOT = Path(flowrl.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _skipped(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = ast.unparse(node.test)
    return test in ("TYPE_CHECKING", "typing.TYPE_CHECKING") or test.replace("'", '"') == '__name__ == "__main__"'


def _imports(tree: ast.AST, module: str, is_package: bool, modules: set[str]) -> set[str]:
    out: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        for child in ast.iter_child_nodes(node):
            if _skipped(child):
                continue
            if isinstance(child, ast.Import):
                out |= {a.name for a in child.names}
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = module.split(".") if is_package else module.split(".")[:-1]
                    base = base[: len(base) - child.level + 1]
                    pkg = ".".join(base + ([child.module] if child.module else []))
                else:
                    pkg = child.module
                subs = {f"{pkg}.{a.name}" for a in child.names}
                out |= (subs & modules) | ({pkg} if subs - modules else set())
            stack.append(child)
    return out


def import_graph() -> dict[str, set[str]]:
    """flowrl module -> the flowrl modules it imports."""
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        targets = _imports(ast.parse(path.read_text()), name, path.name == "__init__.py", set(files))
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_flowrl_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)
