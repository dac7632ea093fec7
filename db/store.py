"""Opening the store: workspace and URL resolution, the SQLAlchemy engine factory, sessions."""

from __future__ import annotations

import logging
import os
import random
import shutil
import sqlite3
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar
from urllib.parse import quote

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, create_engine

from db import models  # noqa: F401  (registers the tables on SQLModel's metadata)
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
# A write waits for the store's lock in short attempts with random pauses between them, so 20
# writers in a queue take turns instead of one starving on SQLite's own polling (issue 13 saw
# waits over 30 s); after WRITE_BUDGET_S the caller gets StoreBusy and decides (a rater is told,
# a job skips one progress write).
WRITE_ATTEMPT_MS = 50
WRITE_BUDGET_S = 20.0
WRITE_PAUSE_MAX_S = 0.05
# What a store write needs at the least on a full disk: SQLite's write-ahead log grows by pages.
STORE_HEADROOM_MB = 16
NO_STORE_HINT = "ddft demo or ddft data import creates one"

T = TypeVar("T")


class StoreError(UserError, RuntimeError):
    """The store could not be opened (bad URL, unwritable folder, not a ddft database), is gone
    (deleted or replaced under a running process), or its disk is full."""


class StoreBusy(StoreError):
    """Another process held the store's write lock for the whole write budget; nothing was
    written, and the same write may simply be tried again."""

    def __init__(self, message: str = "the store is busy, try again") -> None:
        super().__init__(message)


# The file each SQLite engine opened, with its identity at open: a store deleted or replaced
# under a running job is noticed instead of written to in vain (or re-created empty).
_STORE_FILES: "weakref.WeakKeyDictionary[Engine, tuple[Path, tuple[int, int]]]" = (
    weakref.WeakKeyDictionary())
# The line `open_store` said when it upgraded a store's schema, for callers that print it later.
_UPGRADES: "weakref.WeakKeyDictionary[Engine, str]" = weakref.WeakKeyDictionary()
# Told of every store this process opens, with its workspace (see `add_open_listener`).
_OPEN_LISTENERS: list[Callable[[Engine, Path], None]] = []


def add_open_listener(listener: Callable[[Engine, Path], None]) -> None:
    """Have `listener(engine, workspace)` called each time this process opens a store, once it
    is open (the `ddft` command starts the jobs waiting in the queue this way). A listener that
    raises does not stop the open; adding one twice adds it once."""
    if listener not in _OPEN_LISTENERS:
        _OPEN_LISTENERS.append(listener)


def _configure_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the TUI read while a job process writes; foreign keys are off by default in SQLite.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases and in-memory ones."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return None if not path or path == ":memory:" else Path(path)


def _file_identity(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino


def open_store(
    workspace: str | os.PathLike[str] | None = None, *, url: str | None = None,
    create: bool = True, announce: Callable[[str], None] | None = None,
) -> Engine:
    """Open the store; returns a SQLAlchemy engine. With `create` a missing store is made (and
    `announce` is told "created a new store at PATH"); a store of an older schema is upgraded
    (and `announce` told "upgraded the store at X from revision A to B", see `store_upgrade`);
    without `create`, a command that only reads never
    leaves an empty store behind. Connections to a SQLite file never create it: a store deleted
    or moved while open stays gone (see `check_store`).

    Raises StoreError when the database cannot be created or opened, and, without `create`,
    "no store at PATH" when there is none.
    """
    url = url or database_url(workspace)
    connect_args: dict = {}
    path = _sqlite_file(url)
    created = False
    if path is not None:
        if not path.exists():
            if not create:
                raise StoreError(f"no store at {path} ({NO_STORE_HINT})")
            try:
                make_private_folder(path.parent)
                make_private_file(path)
                sqlite3.connect(path).close()
            except (OSError, sqlite3.Error) as exc:
                raise StoreError(f"cannot create the store folder for {path}: {exc}") from exc
            created = True
        # Raters' names, judgments and cached replies: for the owner and group only. SQLite
        # gives the -wal and -shm the database's mode; a store made by an older ddft is
        # tightened here. A store owned by someone else (shared, read by a rater) stays as it is.
        for private in (path, path.with_name(path.name + "-wal"),
                        path.with_name(path.name + "-shm")):
            try:
                if private.exists():
                    make_private_file(private)
            except OSError:
                pass
        # mode=rw: a connection opened after the file vanished fails instead of making a new,
        # empty store beside the running job (and emptying the write-ahead log it still uses).
        file_uri = f"file:{quote(str(path.resolve()))}?mode=rw"
        connect_args = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000,
                        "uri": True}
    try:
        if path is not None:
            db_engine = create_engine(url, connect_args=connect_args, creator=lambda: (
                sqlite3.connect(file_uri, **connect_args)))
        else:
            db_engine = create_engine(url, connect_args=connect_args)
    except Exception as exc:  # bad URL or missing driver
        raise StoreError(f"cannot open store {url!r}: {exc}") from exc
    if db_engine.dialect.name == "sqlite":
        event.listen(db_engine, "connect", _configure_sqlite)
    if path is not None:
        try:
            _STORE_FILES[db_engine] = (path, _file_identity(path))
        except OSError as exc:
            raise StoreError(f"cannot open store {url!r}: {exc}") from exc
    elif not create:
        from sqlalchemy import inspect

        try:
            present = inspect(db_engine).has_table("job")
        except Exception as exc:
            raise StoreError(f"cannot open store {url!r}: {exc}") from exc
        if not present:
            raise StoreError(f"no store at {url} ({NO_STORE_HINT})")
    # The schema comes from db/migrations: a new store is made at the newest revision, an older
    # one (also one from before migrations) is upgraded, keeping every row.
    from db.migrations import upgrade_store

    where = str(path) if path is not None else db_engine.url.render_as_string(hide_password=True)
    try:
        upgraded = upgrade_store(db_engine, where=where)
    except Exception as exc:
        raise StoreError(f"cannot open store {url!r}: {exc}") from exc
    if upgraded is not None:
        logging.getLogger(__name__).info(upgraded)
        _UPGRADES[db_engine] = upgraded
        if announce is not None:
            announce(upgraded)
    if created and announce is not None:
        announce(f"created a new store at {path}")
    for listener in list(_OPEN_LISTENERS):
        try:
            listener(db_engine, resolve_workspace(workspace))
        except Exception:  # what a listener does is its own; the store is open all the same
            logging.getLogger(__name__).exception("a store-open listener failed")
    return db_engine


def store_upgrade(db_engine: Engine) -> str | None:
    """"upgraded the store at X from revision A to B" when `open_store` upgraded this store's
    schema as it opened it (also passed to its `announce` and logged), else None."""
    return _UPGRADES.get(db_engine)


def check_store(db_engine: Engine) -> None:
    """Nothing when the store's file is still the one `open_store` opened (always for other
    databases). Raises StoreError when it was deleted, moved or replaced since: what this
    process would write there is lost, so it must stop."""
    opened = _STORE_FILES.get(db_engine)
    if opened is None:
        return
    path, identity = opened
    try:
        now = _file_identity(path)
    except FileNotFoundError:
        raise StoreError(f"the store at {path} is gone (deleted or moved while in use)") from None
    except OSError as exc:
        raise StoreError(f"cannot reach the store at {path}: {exc.strerror or exc}") from exc
    if now != identity:
        raise StoreError(f"the store at {path} was replaced by another file while in use")


def is_store_busy(error: BaseException) -> bool:
    """Whether `error` says only that another writer held the store (try again later):
    SQLite's "database is locked", PostgreSQL's lock timeouts, deadlocks and serialization
    failures."""
    if isinstance(error, StoreBusy):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if getattr(error.orig, "sqlite_errorcode", None) in (5, 6, 261, 517):  # BUSY, LOCKED, …
        return True
    if getattr(error.orig, "sqlstate", None) in ("40001", "40P01", "55P03"):
        return True
    text = str(error.orig).lower()
    return "database is locked" in text or "database table is locked" in text


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno == 28  # ENOSPC
    if not isinstance(error, DBAPIError):
        return False
    if getattr(error.orig, "sqlite_errorcode", None) == 13:  # SQLITE_FULL
        return True
    if getattr(error.orig, "sqlstate", None) == "53100":  # PostgreSQL disk_full
        return True
    return "database or disk is full" in str(error.orig).lower()


def disk_full_error(folder: Path, *, needed_bytes: int | None = None,
                    what: str = "the store") -> StoreError:
    """One line for a full disk: the folder, the space it needs and what is free there."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        free = None
    needed = (f"about {needed_bytes / 2**20:.0f} MB" if needed_bytes is not None
              else f"at least {STORE_HEADROOM_MB} MB")
    have = "" if free is None else f", {free / 2**20:.0f} MB free"
    return StoreError(f"no space left for {what} in {folder}: it needs {needed}{have}; free "
                      f"some space and try again")


def _translate(db_engine: Engine, error: BaseException) -> BaseException | None:
    """The StoreError a person should see instead of `error`, or None to let it through."""
    if isinstance(error, StoreError) or not isinstance(error, DBAPIError):
        return None  # a file the caller wrote is the caller's to explain
    if _is_disk_full(error):
        opened = _STORE_FILES.get(db_engine)
        folder = opened[0].parent if opened else Path.cwd()
        return disk_full_error(folder)
    if is_store_busy(error):
        return StoreBusy()
    return None


def begin_write(session: Session, *, budget_s: float | None = None) -> None:
    """Take the store's write lock now, before reading what a write depends on (SQLite: BEGIN
    IMMEDIATE, so a writer never fails upgrading a read to a write). While another process holds
    the lock, wait in short attempts with random pauses, up to `budget_s` (WRITE_BUDGET_S when
    None). A session already in a transaction keeps it. Other databases lock rows as they
    write; nothing is taken here.

    Raises StoreBusy when the lock was not had within the budget (nothing was written)."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    dbapi = connection.connection.dbapi_connection
    if dbapi.in_transaction:
        return
    deadline = time.monotonic() + (WRITE_BUDGET_S if budget_s is None else budget_s)
    pause = 0.002
    connection.exec_driver_sql(f"PRAGMA busy_timeout={WRITE_ATTEMPT_MS}")
    try:
        while True:
            try:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                return
            except DBAPIError as exc:
                if not is_store_busy(exc):
                    raise
                if time.monotonic() + pause > deadline:
                    raise StoreBusy() from exc
            time.sleep(random.uniform(0, pause))
            pause = min(pause * 2, WRITE_PAUSE_MAX_S)
    finally:
        connection.exec_driver_sql(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def retry_when_busy(write: Callable[[], T], *, budget_s: float | None = None) -> T:
    """`write()` (a whole transaction: it opens and commits its own session), run again after a
    random pause while it fails only because the store is busy, up to `budget_s` in all
    (WRITE_BUDGET_S when None).

    Raises StoreBusy after the budget; anything else `write` raises passes through."""
    deadline = time.monotonic() + (WRITE_BUDGET_S if budget_s is None else budget_s)
    pause = 0.005
    while True:
        try:
            return write()
        except Exception as exc:
            if not is_store_busy(exc):
                raise
            if time.monotonic() + pause > deadline:
                if isinstance(exc, StoreBusy):
                    raise
                raise StoreBusy() from exc
        time.sleep(random.uniform(0, pause))
        pause = min(pause * 2, 0.5)


@contextmanager
def session_scope(db_engine: Engine, *, write: bool = False,
                  budget_s: float | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error. With `write`, the store's
    write lock is taken up front (`begin_write`): keep such a block short and its reads few.

    Raises StoreError when the store's file is gone or replaced (`check_store`) or its disk is
    full, StoreBusy when the store stayed locked past the write budget; other errors pass."""
    check_store(db_engine)
    with Session(db_engine, expire_on_commit=False) as session:
        try:
            if write:
                begin_write(session, budget_s=budget_s)
            yield session
            session.commit()
        except BaseException as exc:
            session.rollback()
            better = _translate(db_engine, exc)
            if better is not None:
                raise better from exc
            raise
