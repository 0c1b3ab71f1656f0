"""The import graph reads as the pipeline: no cycle between modules, and no stage imports one above it.

Stages, bottom to top (DESIGN.md, "Layout"): the ground floor everyone may import, then reaching hosts,
judging them, provisioning, the run store, the bench, plan, report, and the CLI on top. A module may
import its own stage or any stage below; imports inside functions count too (they are still edges a
reader has to follow). `__main__` modules are entry points and may import the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import svdops

PACKAGE = Path(svdops.__file__).resolve().parent
STAGES = (
    ("ground", ("svdops", "svdops.errors", "svdops.versions", "svdops.findings", "svdops.scenarios", "svdops.nvml",
                "svdops.telemetry", "svdops.files", "svdops.paths", "svdops.extras", "svdops.text")),
    ("host", ("svdops.host",)),
    ("judge", ("svdops.judge",)),
    ("provision", ("svdops.provision",)),
    ("runs", ("svdops.runs",)),
    ("bench", ("svdops.bench",)),
    ("plan", ("svdops.plan",)),
    ("report", ("svdops.report",)),
    ("cli", ("svdops.cli",)),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str) -> set[str]:
    """Every svdops module this file imports, at module level or inside a function."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "svdops"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            if base.split(".")[0] != "svdops":
                continue
            for alias in node.names:  # `from svdops.judge import knowledge` imports a module
                found.add(f"{base}.{alias.name}" if (f"{base}.{alias.name}") in MODULES else base)
    return {m for m in found if m in MODULES} | {m.rpartition(".")[0] for m in found if m not in MODULES}


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def graph() -> dict[str, set[str]]:
    return {name: imports_of(path, name) - {name} for name, path in MODULES.items()}


def stage_of(module: str) -> int:
    best, rank = -1, -1
    for index, (_, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            exact_ground = index == 0 and module == prefix
            inside = exact_ground or (index > 0 and (module == prefix or module.startswith(prefix + ".")))
            if inside and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank >= 0, f"{module} belongs to no stage: add it to STAGES (and to DESIGN.md's layout)"
    return rank


def test_every_module_belongs_to_a_stage() -> None:
    for module in MODULES:
        if not module.endswith("__main__"):
            stage_of(module)


def test_no_stage_imports_a_stage_above_it() -> None:
    back_edges = []
    for module, targets in graph().items():
        if module.endswith("__main__"):
            continue
        for target in targets:
            if target in MODULES and stage_of(target) > stage_of(module):
                back_edges.append(f"{module} -> {target}")
    assert back_edges == []


def test_the_report_reads_runs_not_bench_internals() -> None:
    leaks = sorted(f"{m} -> {t}" for m, ts in graph().items() if m.startswith("svdops.report")
                   for t in ts if t.startswith("svdops.bench"))
    assert leaks == []


def test_no_import_cycle() -> None:
    edges = {m: {t for t in ts if t in MODULES} for m, ts in graph().items() if not m.endswith("__main__")}
    # a package's __init__ importing its own submodules (re-exports) is a cycle only through that edge
    cycles = [scc for scc in strongly_connected(edges) if len(scc) > 1]
    assert cycles == []


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            out.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return out


def test_the_checker_sees_a_back_edge_and_a_cycle() -> None:
    """The rules above must be able to fail: a report module importing the bench is a back edge,
    and two modules importing each other are one strongly connected component."""
    assert stage_of("svdops.report.frames") > stage_of("svdops.bench.config")
    assert strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"], ["c"]]
    assert imports_of(PACKAGE / "cli" / "main.py", "svdops.cli.main") >= {"svdops"}
