"""Keys and URL credentials taken out of text before it is stored, logged or printed: the one
redaction every writer of job rows, job logs, model-client errors and the judge cache applies."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
# Environment variables whose values are secrets wherever they turn up (an error body that
# echoes the key it was sent, a traceback).
SECRET_VARIABLES = ("OPENAI_API_KEY",)
# Shorter values are not searched for: "abc" would mask ordinary words.
MIN_SECRET_LENGTH = 8

# scheme://user:password@ or scheme://token@ — the part before @ in a URL's authority.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/\s@?#]+)@")
# OpenAI-style keys (sk-…, sk-proj-…), Authorization header values, and api_key=… pairs.
# Narrow on purpose: the message they run over may be a recipe ("basic stock", "the secret").
_KEY_SHAPES = (
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), "sk-" + MASK),
    (re.compile(r"\b([Bb]earer|BEARER)(\s+)[A-Za-z0-9._~+/=\-]{8,}"), r"\1\2" + MASK),
    (re.compile(r"\b(Basic)(\s+)[A-Za-z0-9+/]{12,}={0,2}"), r"\1\2" + MASK),
    (re.compile(r"(?i)\b(api[_-]?key|access[_-]?token|auth[_-]?token)(\"?\s*[:=]\s*\"?)"
                r"[^\s\"',;&]{4,}"), r"\1\2" + MASK),
)


def _userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match.group("userinfo").partition(":")
    # user:password keeps the user (it says which account); a lone token is all secret.
    return f"{match.group('scheme')}{user}:{MASK}@" if colon else f"{match.group('scheme')}{MASK}@"


def redact_secrets(text: str, secrets: Iterable[str | None] = (), *, shapes: bool = True) -> str:
    """`text` with the values of `secrets` and of SECRET_VARIABLES in the environment replaced
    by ***, and, with `shapes`, URL credentials (`http://user:key@host` → `http://user:***@host`)
    and key-shaped tokens (`sk-…`, `Bearer …`, `api_key=…`) too. Raises nothing."""
    if not text:
        return text
    known = [s for s in (*secrets, *(os.environ.get(v) for v in SECRET_VARIABLES))
             if s and len(s) >= MIN_SECRET_LENGTH]
    for secret in sorted(set(known), key=len, reverse=True):
        text = text.replace(secret, MASK)
    if not shapes:
        return text
    text = _URL_CREDENTIALS.sub(_userinfo, text)
    for pattern, replacement in _KEY_SHAPES:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any, secrets: Iterable[str | None] = ()) -> Any:
    """`value` (text, or JSON-like lists and dicts of it) with every string redacted as
    `redact_secrets` does; other values as they are."""
    secrets = tuple(secrets)
    if isinstance(value, str):
        return redact_secrets(value, secrets)
    if isinstance(value, dict):
        return {k: redact_value(v, secrets) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v, secrets) for v in value)
    return value


def is_redacted_url(url: str) -> bool:
    """Whether `url` carries credentials that `redact_secrets` masked (`user:***@`)."""
    return bool(re.match(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s@?#]*" + re.escape(MASK) + "@", url))
