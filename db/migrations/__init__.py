"""The store's schema history: Alembic migrations, and bringing a store to the newest one.

`open_store` calls `upgrade_store` on every open. A store already at the newest revision costs
one small query (Alembic itself is imported only when there is something to do). A brand-new
store is made by running the migrations; a store made before ddft had migrations (tables, no
`alembic_version`) is completed by the first migration (see its docstring) and carries on.

Adding a migration after changing db/models.py (one command, from the repository root):

    .venv/bin/alembic -c db/migrations/alembic.ini revision --autogenerate -m "what changed"

then read the new file in db/migrations/versions/ (autogenerate misses renames and server-side
details) and run tests/db/test_migrations.py, which fails while the models and the migrations
disagree.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent
# Serialises upgrades of one PostgreSQL database by several processes opening it at once.
_PG_UPGRADE_LOCK = 0x64646674  # "ddft"
_REVISION_LINE = re.compile(r"^(down_revision|revision)\b[^=\n]*=\s*([^\n#]+)", re.MULTILINE)


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    """Autogenerate's filter: the search objects live beside the tables and are made by the
    migrations themselves (SQLite's FTS5 table with the shadow tables it creates, PostgreSQL's
    full-text index); SQLModel's metadata does not describe them."""
    if type_ == "table":
        return not (name == "sample_fts" or (name or "").startswith("sample_fts_"))
    if type_ == "index":
        return name != "ix_sample_search"
    return True


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest revision, read from the version files' `revision` / `down_revision` lines
    without importing Alembic (tests/db/test_migrations.py checks it against Alembic's own)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for name, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")):
            found = set(re.findall(r"['\"]([^'\"]+)['\"]", value))
            (revisions if name == "revision" else parents).update(found)
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migrations in {MIGRATIONS / 'versions'} have heads "
                           f"{sorted(heads)}; merge them into one (alembic merge heads)")
    return heads.pop()


def _current_revision(connection: Connection) -> tuple[str | None, bool]:
    """(the store's revision or None, whether it holds any tables of ddft)."""
    inspector = inspect(connection)
    if inspector.has_table("alembic_version"):
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return revision, True
    return None, inspector.has_table("job") or inspector.has_table("sample")


def _take_upgrade_lock(connection: Connection) -> None:
    if connection.dialect.name == "sqlite":
        # The write lock from the start: a second process opening the store waits here, then
        # finds it upgraded. pysqlite runs the DDL that follows inside this transaction.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_UPGRADE_LOCK})


def upgrade_store(db_engine: Engine, *, where: str) -> str | None:
    """Bring the store to the newest revision. Returns "upgraded the store at WHERE from
    revision A to B" when an existing store was upgraded, None when it was already there or
    was brand new (made at the newest revision).

    Raises whatever the database raises (open_store turns it into StoreError); an upgrade that
    fails leaves the store as it was where the database can undo DDL (PostgreSQL, and SQLite
    for everything the migrations do)."""
    head = head_revision()
    with db_engine.connect() as connection:
        revision, has_tables = _current_revision(connection)
        connection.rollback()
    if revision == head:
        return None
    # Deferred: Alembic costs a tenth of a second to import, and only upgrades need it.
    from alembic import command
    from alembic.config import Config

    with db_engine.connect() as connection:
        _take_upgrade_lock(connection)
        revision, has_tables = _current_revision(connection)
        if revision != head:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        connection.commit()
    if revision == head or not has_tables:
        return None
    before = revision or "none (made before ddft had migrations)"
    return f"upgraded the store at {where} from revision {before} to {head}"
