"""Where the store lives: the workspace folder and the database URL, without importing SQLAlchemy
(the workbench resolves them before its first frame and opens the store after it)."""

from __future__ import annotations

import os
import re
from pathlib import Path

DB_FILENAME = "ddft.db"
DEFAULT_WORKSPACE = "workspace"


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
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
