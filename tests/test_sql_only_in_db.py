"""Every query lives in db/: no module of engine/ or workbench/ builds or runs SQL itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("engine", "workbench")

# Query-building names of sqlmodel and sqlalchemy. Types (Session, Engine) and exceptions
# (IntegrityError, ...) may be imported anywhere: naming a session is not querying through it.
QUERY_NAMES = frozenset({
    "select", "col", "func", "text", "update", "delete", "insert", "or_", "and_", "not_",
    "exists", "literal", "literal_column", "case", "cast", "distinct", "desc", "asc",
    "bindparam", "join", "outerjoin", "union", "union_all", "tuple_", "null", "true", "false",
})
# What a session or connection runs queries with.
QUERY_METHODS = frozenset({"exec", "execute", "exec_driver_sql", "scalars", "scalar", "query",
                           "get"})

# Files others are still moving onto db/ while this rule lands. The integrator empties this
# list; a file here that holds no SQL any more fails the test, so the list cannot go stale.
STILL_MOVING: frozenset[str] = frozenset()


def _receiver_name(node: ast.expr) -> str:
    """`session` for `session.exec`, `_session` for `self._session.exec`, "" otherwise."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def sql_outside_db(source: str) -> list[str]:
    """Each place in a module's source that builds or runs SQL, as 'line N: what', in line order."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("sqlmodel", "sqlalchemy") and \
                        alias.name not in ("sqlalchemy.engine", "sqlalchemy.orm"):
                    found.append((node.lineno, f"import {alias.name}"))
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module.split(".")[0] not in ("sqlmodel", "sqlalchemy"):
                continue
            for alias in node.names:
                if alias.name in QUERY_NAMES or alias.name == "*" or \
                        module.startswith("sqlalchemy.sql"):
                    found.append((node.lineno, f"from {module} import {alias.name}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            receiver = _receiver_name(node.func.value).lower()
            if node.func.attr in QUERY_METHODS and ("session" in receiver
                                                    or "connection" in receiver):
                found.append((node.lineno, f"{receiver}.{node.func.attr}(...)"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


def _modules() -> list[Path]:
    return sorted(p for room in SCANNED for p in (ROOT / room).rglob("*.py"))


def test_no_module_outside_db_builds_or_runs_sql():
    offenders = {}
    for path in _modules():
        name = path.relative_to(ROOT).as_posix()
        if name in STILL_MOVING:
            continue
        found = sql_outside_db(path.read_text(encoding="utf-8"))
        if found:
            offenders[name] = found
    assert not offenders, "SQL outside db/ (move it into a query function of db/): " + "; ".join(
        f"{name}: {', '.join(found)}" for name, found in offenders.items())


def test_the_still_moving_list_names_only_files_that_still_hold_sql():
    done = [name for name in sorted(STILL_MOVING) if not (ROOT / name).is_file()
            or not sql_outside_db((ROOT / name).read_text(encoding="utf-8"))]
    assert not done, f"no SQL left in {', '.join(done)}: take them off STILL_MOVING"


@pytest.mark.parametrize("source", [
    "from sqlmodel import select\n",
    "from sqlmodel import Session, col\n",
    "from sqlalchemy import update\n",
    "from sqlalchemy.sql import expression\n",
    "import sqlmodel\n",
    "def f(session):\n    return session.exec(q)\n",
    "def f(self):\n    return self._session.execute(q)\n",
    "def f(session, Dataset):\n    return session.get(Dataset, 1)\n",
    "def f(connection):\n    connection.exec_driver_sql('BEGIN')\n",
    "def f():\n    from sqlmodel import func\n",
])
def test_the_scan_finds_sql(source):
    assert sql_outside_db(source)


@pytest.mark.parametrize("source", [
    "from sqlmodel import Session\n",
    "from sqlalchemy.engine import Engine\n",
    "import sqlalchemy.engine\n",
    "from sqlalchemy.exc import IntegrityError\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sqlmodel import Session\n",
    "def f(session):\n    return queries.list_variants(session)\n",
    "def f(params):\n    return params.get('x')\n",
])
def test_the_scan_lets_types_and_query_functions_be(source):
    assert not sql_outside_db(source)
