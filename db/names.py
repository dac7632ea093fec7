"""The one rule for names people give things (variants, datasets, campaigns, raters): text that
is not empty, has no control characters and no blanks around it, at most MAX_NAME characters."""

from __future__ import annotations

import unicodedata

from db.errors import UserError

MAX_NAME = 100

# Cc: control characters (a newline, a tab, NUL); Cs: lone surrogates, which cannot be stored
# as UTF-8; Zl/Zp: line and paragraph separators. Any of them breaks a one-line listing or a
# shell command that names the thing.
_REFUSED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}


class NameRefused(UserError, ValueError):
    """A name breaks the rule of `check_name`."""


def check_name(kind: str, text: str) -> str | None:
    """The one-line problem with `text` as the name of a `kind` ("variant", "dataset",
    "campaign", "rater"), or None when it is a good name. Callers that take typed input strip
    it first (a typed name's surrounding blanks are a slip, not part of it); the stored name is
    exactly the text checked."""
    if not isinstance(text, str) or not text.strip():
        return f"{kind} name: expected some text, found none (nothing, or only blanks)"
    bad = next((ch for ch in text if unicodedata.category(ch) in _REFUSED_CATEGORIES), None)
    if bad is not None:
        return f"{kind} name {text!r}: expected no control characters, found {bad!r}"
    if text != text.strip():
        return f"{kind} name {text!r}: expected no blanks at the start or end"
    if len(text) > MAX_NAME:
        return f"{kind} name {text[:20]!r}…: expected at most {MAX_NAME} characters, found " \
               f"{len(text)}"
    return None


def require_name(kind: str, text: str) -> str:
    """`text`, when it is a good name of a `kind`. Raises NameRefused with `check_name`'s line
    otherwise."""
    problem = check_name(kind, text)
    if problem is not None:
        raise NameRefused(problem)
    return text
