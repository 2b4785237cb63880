"""core/ is the pure domain: it may import only the standard library and value/calendar data."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core"
ALLOWED_THIRD_PARTY = {"msgspec", "chinese_calendar", "holidays", "core"}
# Standard-library modules that talk to the outside world: core does no I/O.
FORBIDDEN_STDLIB = {"socket", "sqlite3", "http", "urllib", "subprocess", "ftplib", "smtplib"}
FORBIDDEN = {
    "litestar",
    "sqlalchemy",
    "alembic",
    "couchdb",
    "httpx",
    "requests",
    "webview",
    "sync",
    "central",
    "township",
    "village_node",
}


def imported_roots(path: Path) -> set[str]:
    """Top-level names of every absolute import in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    roots: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def allowed(root: str) -> bool:
    if root in FORBIDDEN or root in FORBIDDEN_STDLIB:
        return False
    return root in sys.stdlib_module_names or root in ALLOWED_THIRD_PARTY


FILES = sorted(CORE.rglob("*.py"))


def test_core_has_modules() -> None:
    assert any(f.name == "calendar.py" for f in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORE)))
def test_core_imports_are_pure(path: Path) -> None:
    bad = sorted(r for r in imported_roots(path) if not allowed(r))
    assert not bad, f"core/{path.relative_to(CORE)} imports {bad}"


def test_check_catches_forbidden_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import litestar\nfrom sqlalchemy.orm import Session\nimport sync.store\n"
        "from central import app\nimport sqlite3\nimport json\nfrom . import errors\n",
        encoding="utf-8",
    )
    roots = imported_roots(sample)
    assert sorted(r for r in roots if not allowed(r)) == [
        "central",
        "litestar",
        "sqlalchemy",
        "sqlite3",
        "sync",
    ]
