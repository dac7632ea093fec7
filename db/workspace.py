"""Where the store lives: the workspace folder and the database URL, without importing SQLAlchemy
(the workbench resolves them before its first frame and opens the store after it)."""

from __future__ import annotations

import os
from pathlib import Path

DB_FILENAME = "ddft.db"
DEFAULT_WORKSPACE = "workspace"
# The workspace holds raters' names, judgments and cached replies: for its owner and group only.
PRIVATE_FOLDER_MODE = 0o750
PRIVATE_FILE_MODE = 0o640


def resolve_workspace(workspace: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: the argument, else $DDFT_WORKSPACE, else ./workspace (absolute)."""
    chosen = workspace or os.environ.get("DDFT_WORKSPACE") or DEFAULT_WORKSPACE
    return Path(chosen).expanduser().resolve()


def database_url(workspace: str | os.PathLike[str] | None = None) -> str:
    """$DDFT_DB_URL when set, else a SQLite file inside the workspace."""
    url = os.environ.get("DDFT_DB_URL")
    if url:
        return url
    return f"sqlite:///{resolve_workspace(workspace) / DB_FILENAME}"


def display_url(url: str) -> str:
    """`url` with its password, if any, replaced by ***, for titles and messages."""
    from db.redaction import redact_secrets

    return redact_secrets(url)


def make_private_folder(path: str | os.PathLike[str]) -> Path:
    """Create `path` (and missing parents) as a folder for its owner and group (0o750 at most;
    a stricter umask is kept); an existing folder keeps its mode. Returns the path.

    Raises OSError when it cannot be created.
    """
    path = Path(path)
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=PRIVATE_FOLDER_MODE)
        except FileExistsError:
            pass
    return path


def make_private_file(path: str | os.PathLike[str]) -> Path:
    """Make sure `path` is a file others cannot read: created empty with mode 0o640 (a stricter
    umask is kept) when missing, its permissions for others removed when it exists. SQLite gives
    a database's -wal and -shm files the database file's mode, so this, run before SQLite first
    opens a database, covers them too. Returns the path.

    Raises OSError when it cannot be created or changed.
    """
    path = Path(path)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))
    except FileExistsError:
        mode = path.stat().st_mode & 0o7777
        if mode & 0o007:
            os.chmod(path, mode & ~0o007)
    return path
