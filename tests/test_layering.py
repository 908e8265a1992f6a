"""The package's layering, read from its source with ast: no module uses
another module's private names, and no import circle exists."""

from __future__ import annotations

import ast
import collections
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def package_modules() -> dict[str, Path]:
    """aioxdp's modules by dotted name (protocols/ is installed as aioxdp.protocols)."""
    modules = {}
    for path in sorted((ROOT / "aioxdp").rglob("*.py")) + sorted((ROOT / "protocols").glob("*.py")):
        rel = path.relative_to(ROOT)
        if "_cffi" in rel.parts or path.name in ("_ffi_build.py", "_bpf_build.py"):
            continue  # build-time code, not imported at run time
        parts = list(rel.with_suffix("").parts)
        if parts[0] == "protocols":
            parts.insert(0, "aioxdp")
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def names_defined(tree: ast.AST) -> set[str]:
    """Every name a module binds: functions, classes, variables, attributes it assigns."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names.add(node.value)  # __slots__ entries
    return names


def private_uses(modules: dict[str, Path]) -> list[str]:
    """``from x import _name`` of a non-module, and ``obj._name`` where this
    module does not define ``_name`` itself (``self._x`` of a base class is
    the class's own business)."""
    found = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        own = names_defined(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("aioxdp")
            ):
                for alias in node.names:
                    private = alias.name.startswith("_") and not alias.name.startswith("__")
                    if private and f"{node.module}.{alias.name}" not in modules:
                        found.append(f"{name}:{node.lineno} imports {node.module}.{alias.name}")
            elif isinstance(node, ast.Attribute):
                attr = node.attr
                if not attr.startswith("_") or attr.startswith("__") or attr in own:
                    continue
                if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                    continue
                found.append(f"{name}:{node.lineno} uses {ast.unparse(node)}")
    return found


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Who imports whom at run time (function-level imports count; those under
    ``if TYPE_CHECKING`` do not run)."""
    graph: dict[str, set[str]] = collections.defaultdict(set)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        typing_only = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
                targets += [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target not in (name, "aioxdp"):
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    modules = package_modules()
    assert "aioxdp.interface" in modules
    assert "aioxdp.protocols.icmp" in modules
    assert private_uses(modules) == []


def test_the_private_name_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from aioxdp.ping import _helper\n\ndef f(nic):\n    return nic._transports\n")
    assert private_uses({"aioxdp.bad": bad}) == [
        "aioxdp.bad:1 imports aioxdp.ping._helper",
        "aioxdp.bad:4 uses nic._transports",
    ]


def test_no_import_circles() -> None:
    assert circles(import_graph(package_modules())) == []


def test_the_circle_check_sees_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_protocols_are_codecs_that_import_nothing_above_them() -> None:
    graph = import_graph(package_modules())
    for name, imports in graph.items():
        if name.startswith("aioxdp.protocols"):
            above = [m for m in imports if not m.startswith("aioxdp.protocols")]
            assert above == [], f"{name} imports {above}"
