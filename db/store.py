"""Opening the store: workspace and URL resolution, the SQLAlchemy engine factory, sessions."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from db import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from db.errors import UserError
from db.workspace import (  # noqa: F401  (re-exported: the store's callers import them here)
    DB_FILENAME,
    DEFAULT_WORKSPACE,
    database_url,
    make_private_file,
    make_private_folder,
    resolve_workspace,
)

BUSY_TIMEOUT_MS = 30_000


class StoreError(UserError, RuntimeError):
    """The store could not be opened (bad URL, unwritable folder, not a ddft database)."""


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the TUI read while a job process writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def open_store(
    workspace: str | os.PathLike[str] | None = None, *, url: str | None = None
) -> Engine:
    """Open (and on first use create) the store; returns a SQLAlchemy engine.

    Raises StoreError when the database cannot be created or opened.
    """
    url = url or database_url(workspace)
    connect_args: dict = {}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            try:
                make_private_folder(Path(path).parent)
                # Raters' names, judgments and cached replies: for the owner and group only.
                # SQLite gives the -wal and -shm the database's mode; a store made by an older
                # ddft is tightened here. One owned by someone else stays as it is.
                for private in (path, f"{path}-wal", f"{path}-shm"):
                    try:
                        if private == path or Path(private).exists():
                            make_private_file(private)
                    except OSError:
                        if not Path(private).exists():
                            raise
            except OSError as exc:
                raise StoreError(f"cannot create the store folder for {path}: {exc}") from exc
        connect_args = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
    try:
        db_engine = create_engine(url, connect_args=connect_args)
    except Exception as exc:  # bad URL or missing driver
        raise StoreError(f"cannot open store {url!r}: {exc}") from exc
    if db_engine.dialect.name == "sqlite":
        event.listen(db_engine, "connect", _configure_sqlite)
    try:
        _drop_empty_legacy_tables(db_engine)
        SQLModel.metadata.create_all(db_engine)
        _add_missing_columns(db_engine)
        if db_engine.dialect.name == "sqlite":
            _create_sqlite_search(db_engine)
    except Exception as exc:
        raise StoreError(f"cannot open store {url!r}: {exc}") from exc
    return db_engine


def _drop_empty_legacy_tables(db_engine: Engine) -> None:
    """Stores made before rating campaigns have a `rating` table of another shape that no
    ddft ever wrote to; it is dropped while empty so the campaign-aware table replaces it."""
    from sqlalchemy import inspect, text

    inspector = inspect(db_engine)
    if "rating" not in inspector.get_table_names():
        return
    if "item_id" in {c["name"] for c in inspector.get_columns("rating")}:
        return
    with db_engine.begin() as connection:
        if connection.execute(text("SELECT COUNT(*) FROM rating")).scalar():
            raise StoreError("the store's rating table predates campaigns and holds ratings; "
                             "copy them out before opening it with this ddft")
        connection.execute(text("DROP TABLE rating"))


def _add_missing_columns(db_engine: Engine) -> None:
    """Bring a store made by an older ddft up to date: columns added since are created with
    their defaults (ddft only ever adds columns, so this is the whole migration)."""
    import json

    from sqlalchemy import inspect, text

    inspector = inspect(db_engine)
    tables = {m.__tablename__: m for m in SQLModel.__subclasses__() if hasattr(m, "__table__")}
    statements = []
    for table in SQLModel.metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            field = tables[table.name].model_fields.get(column.name)
            value = None
            if field is not None:
                value = field.default_factory() if field.default_factory else field.default
            if value is None or value is ...:
                default = "NULL"
            elif isinstance(value, (dict, list)):
                default = "'" + json.dumps(value) + "'"
            elif isinstance(value, bool):
                default = "1" if value else "0"
            elif isinstance(value, (int, float)):
                default = repr(value)
            else:
                default = "'" + str(value).replace("'", "''") + "'"
            kind = column.type.compile(dialect=db_engine.dialect)
            null = "" if default == "NULL" else " NOT NULL"
            statements.append(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}'
                              f"{null} DEFAULT {default}")
    with db_engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
        # Indexes added since the store was made (create_all only indexes new tables).
        for table in SQLModel.metadata.sorted_tables:
            for index in table.indexes:
                index.create(connection, checkfirst=True)


# Full-text search over samples (SQLite FTS5). New samples are indexed in bulk by
# db.queries.add_samples (a per-row insert trigger made a 158,000-row import seven times slower);
# triggers keep the index in step with edits and deletions. Other databases fall back to
# substring matching in db.queries.
_FTS_DDL = (
    "CREATE VIRTUAL TABLE sample_fts USING fts5(prompt, answer, external_id, "
    "content='sample', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER IF NOT EXISTS sample_fts_ad AFTER DELETE ON sample BEGIN "
    "INSERT INTO sample_fts(sample_fts, rowid, prompt, answer, external_id) "
    "VALUES ('delete', old.id, old.prompt, old.answer, old.external_id); END",
    "CREATE TRIGGER IF NOT EXISTS sample_fts_au AFTER UPDATE OF prompt, answer, external_id "
    "ON sample BEGIN "
    "INSERT INTO sample_fts(sample_fts, rowid, prompt, answer, external_id) "
    "VALUES ('delete', old.id, old.prompt, old.answer, old.external_id); "
    "INSERT INTO sample_fts(rowid, prompt, answer, external_id) "
    "VALUES (new.id, new.prompt, new.answer, new.external_id); END",
)


def _create_sqlite_search(db_engine: Engine) -> None:
    from sqlalchemy import text

    with db_engine.begin() as connection:
        connection.execute(text("DROP TRIGGER IF EXISTS sample_fts_ai"))
        exists = connection.execute(
            text("SELECT 1 FROM sqlite_master WHERE name = 'sample_fts'")
        ).first()
        if exists:
            return
        for statement in _FTS_DDL:
            connection.execute(text(statement))
        # A store made before search existed gets its samples indexed once.
        connection.execute(text("INSERT INTO sample_fts(sample_fts) VALUES ('rebuild')"))


@contextmanager
def session_scope(db_engine: Engine) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    with Session(db_engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
