"""`UserError`: the one base class of every mistake a person can fix (a bad name, file, setting
or row). The CLI prints it as one line and exits 1; a job logs it as one line and fails; the
workbench shows it as a notice. It lives in db, the room every other room imports, so that the
store, the evaluation room, the compute room and the workbench can all raise and catch it."""

from __future__ import annotations


class UserError(Exception):
    """A mistake in what was asked: its message is one line naming the file, line or key, what
    was expected and what was found. Never carries a traceback to the user."""
