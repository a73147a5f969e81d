"""The direction of imports (docs/ARCHITECTURE.md): core and reports never import Prefect,
ccxt or DuckDB."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = {"core", "schemas", "venues", "store", "tasks", "flows", "trader", "reports"}
ALLOWED = {
    "schemas": {"schemas"},
    "core": {"core", "schemas"},
    "reports": {"reports", "core", "schemas"},
    "venues": {"venues", "core", "schemas"},
    "store": {"store", "core", "schemas"},
    "tasks": {"tasks", "core", "schemas", "store", "venues", "reports"},
    "flows": {"flows", "tasks", "core", "schemas", "store", "venues", "reports"},  # no CLI
    "trader": PROJECT,
}
FORBIDDEN_THIRD_PARTY = {
    "schemas": {"prefect", "ccxt", "duckdb"},
    "core": {"prefect", "ccxt", "duckdb"},
    "reports": {"prefect", "ccxt", "duckdb"},
    "venues": {"prefect", "duckdb"},
    "store": {"prefect", "ccxt"},
    "tasks": {"ccxt"},
}
# Rooms whose third-party imports are a closed list (the standard library is always allowed).
ONLY_THIRD_PARTY = {
    "reports": {"polars", "numpy", "plotly", "matplotlib"},
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def modules():
    for package in sorted(ALLOWED):
        for path in sorted((REPO / package).rglob("*.py")):
            yield package, path


@pytest.mark.parametrize(("package", "path"), list(modules()), ids=lambda v: str(v))
def test_imports_follow_the_layering(package, path):
    imported = imports_of(path)
    wrong_internal = (imported & PROJECT) - ALLOWED[package]
    wrong_external = imported & FORBIDDEN_THIRD_PARTY.get(package, set())
    if package in ONLY_THIRD_PARTY:
        outside = imported - PROJECT - set(sys.stdlib_module_names) - {"__future__"}
        wrong_external |= outside - ONLY_THIRD_PARTY[package]
    assert not wrong_internal, f"{path.relative_to(REPO)} imports {wrong_internal}"
    assert not wrong_external, f"{path.relative_to(REPO)} imports {wrong_external}"
