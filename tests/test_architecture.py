"""The layout's promises, read from the source: no import cycles, and only the ledger writes it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Where each installed package's source lives in the checkout.
PACKAGES = {
    "creditctl": ROOT / "creditctl",
    "creditctl.db": ROOT / "db",
    "creditctl.scheduler": ROOT / "scheduler",
}
# The ledger's tables, as creditctl.db.tables names them.
LEDGER_TABLES = {"entries", "grants", "holds", "allocations"}
WRITES = {"insert", "update", "delete"}
LEDGER_SQL = re.compile(
    r"(?i)\b(insert\s+into|update|delete\s+from)\s+(ledger_entries|grants|holds|hold_allocations)\b"
)


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """Every module of ours that `name` imports, at the top or inside a function."""
    is_package = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{alias.name}" for alias in node.names]
            targets = [t if t in known else base for t in targets]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def module_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports_of(path, name, set(found)) for name, path in found.items()}


def area(module: str) -> str:
    """The part of the layout a module belongs to: its sub-package, or itself at the top."""
    parts = module.split(".")
    return ".".join(parts[:2])


def test_no_import_cycles():
    graph = module_graph()
    assert len(graph) > 40, "the module scan found too little; is the layout as expected?"
    assert cycles(graph) == []


def test_no_cycles_between_sub_packages():
    """ledger, accounts, billing, webhooks, ... depend on each other one way only."""
    areas: dict[str, set[str]] = {}
    for module, imported in module_graph().items():
        areas.setdefault(area(module), set()).update(
            area(other) for other in imported if area(other) != area(module)
        )
    assert cycles(areas) == []


def test_the_cycle_check_sees_a_cycle():
    """Control: two modules importing each other are reported."""
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


def ledger_writes(source: str) -> list[str]:
    """`entries.insert()`, `grants.update()`, `post_entry(...)` and SQL text writing them."""
    hits = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr in WRITES
            and isinstance(func.value, ast.Name)
            and func.value.id in LEDGER_TABLES
        ):
            hits.append(f"{func.value.id}.{func.attr}() at line {node.lineno}")
        # sa.insert(grants), sa.update(holds), delete(entries)
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        target = node.args[0] if node.args else None
        if called in WRITES and isinstance(target, ast.Name) and target.id in LEDGER_TABLES:
            hits.append(f"{called}({target.id}) at line {node.lineno}")
        if isinstance(func, ast.Name) and func.id in {"post_entry", "_expire", "take"}:
            hits.append(f"{func.id}() at line {node.lineno}")
    hits += [f"SQL {m.group(0)!r}" for m in LEDGER_SQL.finditer(source)]
    return hits


def test_only_the_ledger_writes_entries_and_grants():
    outside = {
        name: hits
        for name, path in modules().items()
        if not name.startswith("creditctl.ledger") and (hits := ledger_writes(path.read_text()))
    }
    assert outside == {}


def test_the_write_check_sees_a_write():
    """Control: a module writing a grant row itself is reported."""
    found = ledger_writes(
        "grants.update().values(remaining=0)\npost_entry(conn)\nsa.insert(holds)\n"
        "conn.exec_driver_sql('DELETE FROM hold_allocations WHERE 1')\n"
    )
    assert sorted(found) == [
        "SQL 'DELETE FROM hold_allocations'",
        "grants.update() at line 1",
        "insert(holds) at line 3",
        "post_entry() at line 2",
    ]
