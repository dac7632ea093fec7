"""One client for OpenAI-compatible chat models, shared by the GPT judge and question generation:
retries with Retry-After and jitter, one-line key, auth, quota and endpoint errors, a bounded
thread pool that a cancel stops, and token and cost counts."""

from __future__ import annotations

import ipaddress
import os
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from db.errors import UserError
from db.redaction import is_redacted_url, redact_secrets

DEFAULT_BASE_URL = "https://api.openai.com/v1"
KEY_VARIABLE = "OPENAI_API_KEY"
BASE_URL_VARIABLE = "OPENAI_BASE_URL"

# US dollars per million (input, output) tokens; a model not listed has an unknown cost.
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-3.5-turbo-0125": (0.50, 1.50),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
}

MAX_ATTEMPTS = 6  # per request, for rate limits, time-outs, connection drops and 5xx
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0
# A longer Retry-After (a quota window) is cut to this, so a run never sleeps for an hour.
MAX_RETRY_AFTER_S = 300.0
# How often a pool whose requests are all slow asks should_stop: a cancel is seen this soon
# even while every worker sits out a back-off.
CANCEL_POLL_S = 0.2
# What the openai client is given when no key is sent (see ChatClient); never on the wire.
_NO_KEY = "no-key-for-a-local-server"

Messages = Sequence[Mapping[str, Any]]
T = TypeVar("T")
R = TypeVar("R")


# ---------------------------------------------------------------- errors


class LLMError(UserError):
    """A model cannot be asked as requested: a refused request (an unknown model, a bad
    argument) or a server that kept failing after MAX_ATTEMPTS. One line for people, with keys
    and URL credentials redacted (a 403 body may echo the key); what was stored before it is
    kept, and running again continues from there."""

    def __init__(self, message: str, *, secrets: Sequence[str | None] = ()):
        super().__init__(redact_secrets(message, secrets))


class LLMKeyError(LLMError):
    """No API key for a server that is not on this machine."""


class LLMAuthError(LLMError):
    """The server rejected the key, or asked for one that was not sent (401), or refused the
    key access (403)."""


class LLMQuotaError(LLMError):
    """The account behind the key has no quota left (429 insufficient_quota)."""


class LLMEndpointError(LLMError):
    """The base URL is not an http(s) URL, or nothing answers there."""


# ---------------------------------------------------------------- the endpoint


@dataclass(frozen=True)
class Endpoint:
    """Where to send requests and the key to send; `key` None sends no key (a local server).
    The key stays in memory: it is left out of repr and never written anywhere."""

    base_url: str
    key: str | None = field(default=None, repr=False)

    @property
    def local(self) -> bool:
        return is_local(self.base_url)


def is_local(url: str) -> bool:
    """Whether `url` names this machine (localhost, *.localhost or a loopback address)."""
    return is_local_host(urlsplit(url).hostname or "")


def is_local_host(host: str) -> bool:
    """Whether the host name or address `host` names this machine only (localhost,
    *.localhost or a loopback address)."""
    host = host.rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(model: str, base_url: str | None = None, api_key: str | None = None, *,
                   timeout_s: float = 15.0) -> Endpoint:
    """The endpoint `resolve_endpoint` finds, checked to answer with the key and to serve
    `model` (`ChatClient.check`), so that a command can refuse before it makes a job. Raises
    what they raise."""
    endpoint = resolve_endpoint(base_url, api_key)
    client = ChatClient(model=model, endpoint=endpoint, timeout_s=timeout_s)
    try:
        client.check()
    finally:
        client.close()
    return endpoint


def resolve_endpoint(base_url: str | None = None, api_key: str | None = None) -> Endpoint:
    """The endpoint from `base_url`, $OPENAI_BASE_URL or api.openai.com, and the key from
    `api_key` or $OPENAI_API_KEY. A server on this machine (localhost, 127.0.0.1, ::1) with no
    key set is asked without one, so a local OpenAI-compatible server needs no invented key.

    A job's stored base URL has its credentials redacted (`http://user:***@host`): they are
    taken from $OPENAI_BASE_URL when it names the same URL with them (`ddft judge --base-url`
    puts them there for its job).

    Raises LLMEndpointError for a base URL that is not http(s)://host... or whose credentials
    were redacted and are not in $OPENAI_BASE_URL, LLMKeyError when no key is set for a server
    elsewhere.
    """
    source = "the base URL" if base_url else f"${BASE_URL_VARIABLE}"
    from_environment = os.environ.get(BASE_URL_VARIABLE)
    if base_url and is_redacted_url(base_url):
        if not from_environment or redact_secrets(from_environment) != base_url:
            raise LLMEndpointError(f"the base URL {base_url}: its credentials are never "
                                   f"stored; set ${BASE_URL_VARIABLE} to the URL with them, or "
                                   f"put the key in ${KEY_VARIABLE}")
        base_url = from_environment
    url = base_url or from_environment or DEFAULT_BASE_URL
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises ValueError for a port that is not a number
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise LLMEndpointError(f"{source}: expected an http(s) URL such as "
                               f"http://localhost:8000/v1, found {url!r}")
    key = api_key or os.environ.get(KEY_VARIABLE) or None
    if key is None and not is_local(url):
        raise LLMKeyError(f"no API key for {url}: set {KEY_VARIABLE} (a server on this "
                          "machine needs none)")
    return Endpoint(base_url=url, key=key)


# ---------------------------------------------------------------- counts and prices


@dataclass(frozen=True)
class Usage:
    """Prompt and completion tokens, as the server reported them; they add up."""

    tokens_in: int = 0
    tokens_out: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.tokens_in + other.tokens_in, self.tokens_out + other.tokens_out)


def request_cost(model: str, tokens_in: int, tokens_out: int) -> float | None:
    """US dollars for this usage, or None for a model not in PRICES_PER_MTOK."""
    if model not in PRICES_PER_MTOK:
        return None
    price_in, price_out = PRICES_PER_MTOK[model]
    return (tokens_in * price_in + tokens_out * price_out) / 1_000_000


def usage_cost(usage: Mapping[str, Sequence[int]]) -> float | None:
    """US dollars for (tokens in, tokens out) by model; None when a model with tokens has no
    known price."""
    total = 0.0
    for model, (tokens_in, tokens_out) in usage.items():
        cost = request_cost(model, tokens_in, tokens_out)
        if cost is None:
            if tokens_in or tokens_out:
                return None
            continue
        total += cost
    return total


# ---------------------------------------------------------------- retries


def retry_after_s(exc: Exception) -> float | None:
    """The wait a refused request's response asks for (retry-after-ms, or Retry-After in
    seconds or as an HTTP date), or None when it names none."""
    response = getattr(exc, "response", None)
    if response is None:
        return None
    headers = response.headers
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return float(value)
        except ValueError:
            when = parsedate_to_datetime(value)
            return (when - datetime.now(timezone.utc)).total_seconds()
    except (TypeError, ValueError):
        return None


def backoff_delay(failures: int, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number `failures`: the server's Retry-After when it gives
    one (at least that long, at most MAX_RETRY_AFTER_S), else exponential back-off; both with
    jitter so that parallel requests spread out instead of returning together."""
    if retry_after is not None:
        return min(max(0.0, retry_after), MAX_RETRY_AFTER_S) * (1 + 0.25 * random.random())
    delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** (failures - 1))
    return delay * (0.75 + 0.5 * random.random())


# ---------------------------------------------------------------- the client


@dataclass(frozen=True)
class Completion:
    """What one `ChatClient.complete` call got, with what it cost to get it."""

    content: str | None  # None: no readable chat completion (see `unreadable`), or stopped
    model: str = ""  # the model the server says answered
    id: str = ""
    finish_reason: str = ""
    usage: Usage = Usage()
    requests: int = 0  # sent, retries included
    retries: int = 0
    unreadable: str = ""  # why the last body could not be read as a chat completion
    stopped: bool = False  # `stopping` was set before an answer came


class ChatClient:
    """One model behind one OpenAI-compatible endpoint, through the real `openai` client,
    shared by worker threads. Rate limits (429, honouring Retry-After), time-outs, dropped
    connections, 408/409 and 5xx are retried with jittered back-off, up to `max_attempts`
    sends a call; setting `stopping` ends every wait at once."""

    def __init__(self, *, model: str, endpoint: Endpoint, timeout_s: float,
                 max_attempts: int = MAX_ATTEMPTS):
        # openai (and httpx under it) load only for the commands that call a model.
        import openai

        self.model = model
        self.base_url = endpoint.base_url
        # What messages show (the URL without its credentials) and what they must never show.
        self.shown_url = redact_secrets(endpoint.base_url)
        self.secrets = (endpoint.key, urlsplit(endpoint.base_url).password)
        self.sends_key = endpoint.key is not None
        self.max_attempts = max_attempts
        self.stopping = threading.Event()
        self._server_answered = False
        self._extra_headers: dict[str, Any] = {}
        if endpoint.key is None:
            # The openai client refuses to start without a key ("Missing credentials") and
            # sends whatever key it holds as a bearer token. So it holds a placeholder, and
            # every request drops the Authorization header with `openai.omit`, the client's
            # way to leave a header out: a keyless local server gets no key at all, real or
            # invented, and the user's environment is not read for one.
            self._extra_headers = {"Authorization": openai.omit}
        # max_retries=0: retries happen here, where they are counted and honour `stopping`.
        self._client = openai.OpenAI(base_url=self.base_url, api_key=endpoint.key or _NO_KEY,
                                     max_retries=0, timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def check(self) -> None:
        """Ask the endpoint which models it serves (one GET /models, no retries): raises the
        error a judging or question job would end with — no key, a rejected key (401), a server
        that cannot be reached, a model it does not serve — before any job is made. A server
        that has no /models, refuses the list to this key (403) or answers with a 5xx is left
        to the job (its retries)."""
        import openai

        kwargs: dict[str, Any] = {"extra_headers": self._extra_headers} if self._extra_headers \
            else {}
        try:
            served = [model.id for model in self._client.models.list(**kwargs)]
        except openai.AuthenticationError as exc:
            raise self._auth_error(exc) from None
        except openai.PermissionDeniedError:
            # A key may be allowed chat and not the model list (a project key whose permissions
            # leave out Models): that says nothing against the job, which then finds out.
            return
        except openai.APIConnectionError as exc:  # time-outs included
            cause = exc.__cause__ or exc
            raise LLMEndpointError(f"cannot reach {self.shown_url}: "
                                   f"{self._one_line(str(cause))}; check --base-url or "
                                   f"${BASE_URL_VARIABLE}") from None
        except openai.APIStatusError as exc:
            if getattr(exc, "code", None) == "insufficient_quota":
                raise LLMQuotaError(
                    f"the account behind ${KEY_VARIABLE} has no quota left (429 "
                    f"insufficient_quota at {self.shown_url}): add credit or use another "
                    "key") from None
            return  # no /models here, or a passing failure: the job's retries decide
        except (ValueError, openai.APIResponseValidationError):
            return  # a /models the client cannot read says nothing about the chat endpoint
        if served and self.model not in served:
            shown = ", ".join(sorted(served)[:10]) + (" …" if len(served) > 10 else "")
            raise LLMError(f"{self.shown_url} does not serve model {self.model!r} (--model); "
                           f"it serves: {shown}", secrets=self.secrets)

    def complete(self, messages: Messages, *, temperature: float,
                 max_tokens: int | None = None, response_format: dict[str, Any] | None = None,
                 max_unreadable: int = 1) -> Completion:
        """The model's reply to `messages`. A body that is not a chat completion (a proxy's
        error page, a cut stream) is asked again up to `max_unreadable` times in all, then
        comes back with content None and `unreadable` set; content None with `stopped` set
        means `stopping` was set first.

        Raises LLMAuthError (401/403), LLMQuotaError (insufficient_quota), LLMEndpointError
        (nothing answers at the base URL), LLMError (a refused request, or a server that kept
        failing for max_attempts sends).
        """
        import openai

        kwargs: dict[str, Any] = {"model": self.model, "messages": list(messages),
                                  "temperature": temperature}
        if max_tokens is not None:
            # max_tokens, not max_completion_tokens: every OpenAI-compatible server reads it.
            kwargs["max_tokens"] = max_tokens
        if response_format is not None:
            kwargs["response_format"] = response_format
        if self._extra_headers:
            kwargs["extra_headers"] = self._extra_headers
        requests = retries = failures = unreadable = 0
        last_unreadable = ""
        while not self.stopping.is_set():
            requests += 1
            try:
                response = self._client.chat.completions.create(**kwargs)
            except openai.AuthenticationError as exc:
                self._server_answered = True
                raise self._auth_error(exc) from None
            except openai.PermissionDeniedError as exc:
                self._server_answered = True
                raise LLMAuthError(f"{self.shown_url} refused the key in ${KEY_VARIABLE} access "
                                   f"to model {self.model!r} (403 Forbidden): "
                                   f"{self._one_line(exc.message)}") from None
            except openai.APIConnectionError as exc:  # time-outs included
                if not self._server_answered and not isinstance(exc, openai.APITimeoutError):
                    cause = exc.__cause__ or exc
                    raise LLMEndpointError(
                        f"cannot reach {self.shown_url}: {self._one_line(str(cause))}; check "
                        f"--base-url or ${BASE_URL_VARIABLE}") from None
                failures = self._wait_to_retry(failures, exc)
                retries += 1
                continue
            except openai.APIStatusError as exc:
                self._server_answered = True
                if getattr(exc, "code", None) == "insufficient_quota":
                    raise LLMQuotaError(
                        f"the account behind ${KEY_VARIABLE} has no quota left (429 "
                        f"insufficient_quota at {self.shown_url}): add credit or use another "
                        "key") from None
                if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                    failures = self._wait_to_retry(failures, exc)
                    retries += 1
                    continue
                raise LLMError(f"{self.shown_url} refused the request for model "
                               f"{self.model!r} ({exc.status_code}): "
                               f"{self._one_line(exc.message)}") from None
            except (ValueError, openai.APIResponseValidationError) as exc:
                self._server_answered = True
                unreadable += 1
                last_unreadable = f"unreadable response body ({self._one_line(str(exc))})"
                if unreadable >= max_unreadable:
                    return Completion(content=None, requests=requests, retries=retries,
                                      unreadable=last_unreadable)
                retries += 1
                continue
            self._server_answered = True
            usage = getattr(response, "usage", None)
            choice = response.choices[0] if response.choices else None
            # A reply that echoes the key is kept without it (the judge caches and stores it).
            return Completion(
                content=redact_secrets((choice.message.content if choice is not None else None)
                                       or "", self.secrets, shapes=False),
                model=response.model or self.model, id=response.id or "",
                finish_reason=(choice.finish_reason or "") if choice is not None else "",
                usage=Usage((usage.prompt_tokens or 0) if usage else 0,
                            (usage.completion_tokens or 0) if usage else 0),
                requests=requests, retries=retries)
        return Completion(content=None, requests=requests, retries=retries,
                          unreadable=last_unreadable, stopped=True)

    def _one_line(self, text: str) -> str:
        """Server text for a message: one line, this client's key and URL password redacted."""
        return redact_secrets(_one_line(text), self.secrets)

    def _auth_error(self, exc: Exception) -> LLMAuthError:
        if not self.sends_key:
            return LLMAuthError(f"{self.shown_url} asks for an API key (401 Unauthorized) and "
                                f"none is set: set {KEY_VARIABLE}")
        return LLMAuthError(f"{self.shown_url} rejected the API key (401 Unauthorized): check "
                            f"{KEY_VARIABLE}")

    def _wait_to_retry(self, failures: int, exc: Exception) -> int:
        """Wait before the next send (cut short by `stopping`), or raise LLMError when the
        attempts are spent."""
        failures += 1
        if failures >= self.max_attempts:
            raise LLMError(f"{self.shown_url} kept failing; gave up after {failures} attempts: "
                           f"{self._one_line(str(exc))}", secrets=self.secrets)
        self.stopping.wait(backoff_delay(failures, retry_after_s(exc)))
        return failures


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------- the pool


def run_pool(
    *,
    next_item: Callable[[int], T | None],
    work: Callable[[T], R],
    on_done: Callable[[list[R]], None],
    concurrency: int,
    stopping: threading.Event,
    should_stop: Callable[[], bool] | None = None,
    name: str = "llm",
) -> bool:
    """Run `work` on items in at most `concurrency` threads. `next_item(in_flight)` gives the
    next item, or None when there is nothing to start now (it is asked again once something
    finishes; the run ends when nothing is in flight and it gives None). `on_done(results)`
    runs on the calling thread with each batch of finished results.

    `should_stop()` is asked before each start and every CANCEL_POLL_S while waiting; once it
    says so, nothing more starts, `stopping` is set (ending every back-off at once), and the run
    returns after the requests already sent, whose results still reach `on_done`. `stopping`
    is left set. Returns True when `should_stop` ended the run.

    Raises the first exception of a worker or of `on_done` once the others have returned
    (their results are handed to `on_done` first); ValueError when concurrency < 1.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    cancelled = False
    failure: BaseException | None = None
    pending: set[Future[R]] = set()

    def asked_to_stop() -> bool:
        nonlocal cancelled
        if not cancelled and should_stop is not None and should_stop():
            cancelled = True
            stopping.set()
        return cancelled

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name) as pool:
        try:
            while True:
                while failure is None and not stopping.is_set() and len(pending) < concurrency:
                    if asked_to_stop():
                        break
                    item = next_item(len(pending))
                    if item is None:
                        break
                    pending.add(pool.submit(work, item))
                if not pending:
                    break
                done, pending = wait(pending, timeout=CANCEL_POLL_S,
                                     return_when=FIRST_COMPLETED)
                finished: list[R] = []
                for future in done:
                    try:
                        finished.append(future.result())
                    except BaseException as exc:  # noqa: BLE001 — re-raised below, once the
                        # other workers have returned; what they finished is still kept.
                        failure = failure or exc
                        stopping.set()
                if finished:
                    try:
                        on_done(finished)
                    except BaseException as exc:  # noqa: BLE001 — as above
                        failure = failure or exc
                        stopping.set()
                asked_to_stop()
        finally:
            # An error or interrupt here must not leave workers retrying behind it.
            stopping.set()
    if failure is not None:
        raise failure
    return cancelled
