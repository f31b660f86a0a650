"""The house rules for imports: the pure core imports neither Scrapy nor Twisted, and no module
of the package imports one that imports it back (at load time or inside a function)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "scrapy_sessionpool"
#: The pure core: usable outside a crawl, tested without a reactor.
CORE = sorted(f"core.{p.stem}" for p in (PACKAGE / "core").glob("*.py") if p.stem != "__init__")
#: Free of Scrapy and Twisted too, though they serve a crawl: the crawler's pools, the settings object,
#: the meta keys, the stores and the shared Redis pool (asyncio and redis-py only).
PURE = [
    *CORE,
    "manager",
    "settings",
    "meta",
    *sorted(f"{room}.{p.stem}" for room in ("stores", "shared") for p in (PACKAGE / room).glob("*.py")),
]


@pytest.mark.parametrize("module", PURE)
def test_the_core_imports_neither_scrapy_nor_twisted(module):
    code = f"""
import sys
class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("scrapy", "twisted"):
            raise ImportError(f"the core imported {{name}}")
sys.meta_path.insert(0, Refuse())
import scrapy_sessionpool.{module}
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr.strip().splitlines()[-1]


def imports_of(path: Path) -> set[str]:
    """The package modules ``path`` imports, anywhere but under ``if TYPE_CHECKING:``."""
    name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(
                    candidate
                    if (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists()
                    or (PACKAGE.parent / Path(*candidate.split(".")) / "__init__.py").exists()
                    else base
                )
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m.split(".")[0] == "scrapy_sessionpool" and m != name}


def test_no_import_cycles():
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        graph[name] = imports_of(path)
    cycles = []

    def walk(node: str, trail: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == "scrapy_sessionpool" or nxt.endswith(".__init__"):
                continue  # the package's __init__ only re-exports
            if nxt in trail:
                cycles.append(" -> ".join([*trail[trail.index(nxt) :], nxt]))
            elif len(trail) < 30:
                walk(nxt, [*trail, nxt])

    for start in sorted(graph):
        walk(start, [start])
    assert not cycles, sorted(set(cycles))[:10]


def test_the_core_imports_only_the_core():
    outside = {
        path.stem: sorted(m for m in imports_of(path) if not m.startswith("scrapy_sessionpool.core"))
        for path in (PACKAGE / "core").glob("*.py")
    }
    assert not {name: found for name, found in outside.items() if found}
